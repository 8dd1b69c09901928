#!/usr/bin/python3
"""Writes the reference tensors that the C tests compare diffusion.c against:
tests/ref/<case>.safetensors, computed with the PyTorch twin (torch_twin.py) in
float32 on one thread.

Usage: /usr/bin/python3 scripts/gen_reference.py [--out DIR] [CASE ...]
       (default: every case into tests/ref/; use Debian's /usr/bin/python3)

Each file holds, for one model config (tests/ref/README.md has the full contract):
  metadata  "config" (the model's JSON config), "dropout_seed", "steps", "adamw"
            (JSON lr/beta1/beta2/eps/weight_decay), "clip" (max grad norm), "loss"
            ("mse_mean"), "case", "torch_version", "rng_blocks_per_forward"
  x, t, [y], target        inputs (t float32 timesteps, y int32 labels; target shaped
                           like the output: like x for a denoiser, (B, classes) for a
                           classifier)
  init.<name>              every parameter before training (state_dict names)
  eval_out                 eval-mode forward of the initial parameters
  out                      training forward at step 1, dropout from Philox(seed, counter 0)
  grad.<name>, grad.x      d loss / d parameter and d loss / d x at step 1, before clipping
  grad_norm                [1] total L2 norm of the parameter gradients at step 1
  loss                     [steps] the loss of each step
  final.<name>             parameters after `steps` steps of: training forward (the
                           Philox stream continuing), loss = mean((out - target)^2),
                           backward, clip_grad_norm_(clip), AdamW step
  final64.<name>           the same steps in float64 (F64): the yardstick for final.*

The autoencoder case (AUTOENCODER_CASES; tests/test_autoencoder.c) has a contract of
its own: x, R, M, V, init.*, the eval posterior and reconstruction, one training
forward (dropout and the posterior's eps from Philox(seed, counter 0)), its
posterior, and the gradients of sum(out R) + sum(mean M) + sum(logvar V); no
optimizer steps. It prints how far float32 lands from float64 for each tensor.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
import torch_twin  # noqa: E402

DROPOUT_SEED = 1234
STEPS = 3
ADAMW = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01}
CLIP = 1.0

CASES = {
    # the fmnist-tiny preset exactly
    "unet_tiny": dict(
        config=torch_twin.PRESETS["fmnist-tiny"], batch=2, t=[3, 999], y=None, seed=1),
    # fmnist-small's structure (2 blocks, attention at 7 and in the middle), narrower,
    # with 2 heads, 8 groups and 10 classes; label 10 is the null class
    "unet_small_reduced": dict(
        config=dict(kind="unet", in_channels=1, resolution=28, channels=16, ch_mult=[1, 2, 2],
                    num_res_blocks=2, attn_resolutions=[7], heads=2, groups=8, norm_eps=1e-6,
                    dropout=0.1, num_classes=10),
        batch=2, t=[3, 999], y=[3, 10], seed=2),
    "mlp": dict(
        config=dict(kind="mlp", dim=5, width=32, depth=2, dropout=0.1, num_classes=3),
        batch=6, t=[0, 1, 17, 250.5, 640, 999], y=[0, 1, 2, 3, 1, 0], seed=3),
    # attention at 28x28 (HW = 784) and 14x14, 4 heads, two levels, no dropout
    "unet_attn28": dict(
        config=dict(kind="unet", in_channels=1, resolution=28, channels=16, ch_mult=[1, 2],
                    num_res_blocks=1, attn_resolutions=[28, 14], heads=4, groups=4,
                    norm_eps=1e-6, dropout=0.0, num_classes=0),
        batch=2, t=[3, 999], y=None, seed=4),
    # batch 4 at 28x28 with 16 channels: 784 Winograd tiles, so the fast 3x3
    # path of conv2d (forward and backward data) is what is compared here
    "unet_winograd": dict(
        config=dict(kind="unet", in_channels=1, resolution=28, channels=16, ch_mult=[1, 2],
                    num_res_blocks=1, attn_resolutions=[], heads=1, groups=8, norm_eps=1e-6,
                    dropout=0.1, num_classes=0),
        batch=4, t=[3, 250, 600, 999], y=None, seed=6),
    # the same at batch 16: 784 tiles of 4x4 at 28x28, so the 3x3 convs there run
    # as Winograd F(4x4, 3x3) (forward and backward data), those at 14x14 as F(2x2)
    "unet_winograd4": dict(
        config=dict(kind="unet", in_channels=1, resolution=28, channels=16, ch_mult=[1, 2],
                    num_res_blocks=1, attn_resolutions=[], heads=1, groups=8, norm_eps=1e-6,
                    dropout=0.1, num_classes=0),
        batch=16, t=[3, 40, 99, 150, 250, 333, 420, 500, 600, 640, 700, 777, 850, 900, 950, 999], y=None,
        seed=11),
    # the FID classifier on non-square 2-channel images (12 x 10: strided convs on
    # odd sizes), 5 classes; it ignores t and y; the loss is the same MSE on its logits
    "classifier": dict(
        config=dict(kind="classifier", in_channels=2, height=12, width=10, channels=8, groups=4,
                    feature_dim=16, num_classes=5),
        batch=3, t=[0, 0, 0], y=None, seed=7),
    # the noise-aware classifier of classifier guidance: the same CNN with the
    # U-Net's time embedding added after each convolution
    "classifier_noisy": dict(
        config=dict(kind="classifier", in_channels=1, height=12, width=10, channels=8, groups=4,
                    feature_dim=16, num_classes=5, time_embed=1),
        batch=3, t=[0, 400, 999], y=None, seed=8),
    # the evaluation classifier's shape: a second convolution per stage, the
    # flattened last map (odd 3 x 3) into fc1, dropout before it
    "classifier_deep": dict(
        config=dict(kind="classifier", in_channels=1, height=12, width=10, channels=8, groups=4,
                    feature_dim=16, num_classes=5, extra_convs=1, flatten=1, dropout=0.25),
        batch=3, t=[0, 0, 0], y=None, seed=10),
}


def f32(t):
    return t.detach().cpu().numpy().astype(np.float32)

# The autoencoder (AutoencoderKL, latent diffusion): its own file contract
# (tests/ref/README.md), checked by tests/test_autoencoder.c. ch_mult [1, 2, 1]
# puts a 1x1 nin_shortcut on both sides of both paths (6 -> 12 and 12 -> 6) at 19k
# parameters; 12 -> 6 -> 3 gives an odd latent (3 x 3) to upsample from.
AUTOENCODER_CASES = {
    "autoencoder": dict(
        config=dict(kind="autoencoder", in_channels=2, resolution=12, channels=6, ch_mult=[1, 2, 1],
                    num_res_blocks=1, latent_channels=3, groups=3, norm_eps=1e-6, dropout=0.1),
        batch=2, seed=9),
}


def autoencoder_pass(model, x, R, M, V, seed, double=False):
    """Eval encode/decode, then one training forward with dropout and eps from
    Philox(seed, counter 0), and the backward of
    loss = sum(rec R) + sum(mean M) + sum(logvar V). Returns a dict of tensors and
    the counters (before eps, after the forward)."""
    cast = (lambda a: a.double()) if double else (lambda a: a)
    x, R, M, V = cast(x), cast(R), cast(M), cast(V)
    out = {}
    model.eval()
    with torch.no_grad():
        mean, logvar = model.encode(x)
        out["eval_mean"], out["eval_logvar"] = mean, logvar
        out["eval_out"] = model.decode(mean)
        out["eval_forward"] = model(x)  # the same as decode(mean)
    model.train()
    model.zero_grad(set_to_none=True)
    stream = torch_twin.PhiloxStream(seed, 0)
    xin = x.clone().requires_grad_(True)
    mean, logvar = model.encode(xin, stream)
    eps_block = stream.counter
    eps = torch.from_numpy(stream.normal(mean.numel())).reshape(mean.shape)
    rec = model.decode(mean + torch.exp(0.5 * logvar) * cast(eps), stream)
    loss = (rec * R).sum() + (mean * M).sum() + (logvar * V).sum()
    loss.backward()
    out.update({"out": rec, "mean": mean, "logvar": logvar, "eps": eps,
                "kl": torch_twin.posterior_kl(mean, logvar).mean().reshape(1), "grad.x": xin.grad})
    for n, p in model.named_parameters():
        out[f"grad.{n}"] = p.grad
    return {k: v.detach() for k, v in out.items()}, eps_block, stream.counter


def make_autoencoder_case(name, spec):
    torch.manual_seed(spec["seed"])
    cfg = torch_twin.make_config(spec["config"])
    model = torch_twin.build(cfg)
    B = spec["batch"]
    x = torch.randn(model.input_shape(B))
    R = torch.randn(model.output_shape(B))
    M = torch.randn(model.latent_shape(B))
    V = torch.randn(model.latent_shape(B))
    names = [n for n, _ in model.named_parameters()]
    assert names == list(model.state_dict().keys()), "state_dict has buffers: not expected"
    tensors = {"x": f32(x), "R": f32(R), "M": f32(M), "V": f32(V)}
    for n, p in model.named_parameters():
        tensors[f"init.{n}"] = f32(p)
    res, eps_block, blocks = autoencoder_pass(model, x, R, M, V, DROPOUT_SEED)
    assert torch.equal(res["eval_forward"], res["eval_out"])
    for k in ("eval_mean", "eval_logvar", "eval_out", "out", "mean", "logvar", "eps", "kl", "grad.x"):
        tensors[k] = f32(res[k])
    for n in names:
        tensors[f"grad.{n}"] = f32(res[f"grad.{n}"])

    # float32 noise: the same pass in float64 (same init, inputs, masks, eps)
    model64 = torch_twin.build(cfg).double()
    with torch.no_grad():
        for n, p in model64.named_parameters():
            p.copy_(torch.from_numpy(tensors[f"init.{n}"]).double())
    res64, _, _ = autoencoder_pass(model64, x, R, M, V, DROPOUT_SEED, double=True)
    noise = {}
    for k in ("eval_mean", "eval_logvar", "eval_out", "out", "mean", "logvar", "grad.x", "kl"):
        a, b = res[k].double(), res64[k]
        noise[k] = float((a - b).abs().max() / b.abs().max())
    g32 = torch.cat([res[f"grad.{n}"].double().flatten() for n in names])
    g64 = torch.cat([res64[f"grad.{n}"].flatten() for n in names])
    noise["all grads"] = float((g32 - g64).abs().max() / g64.abs().max())

    metadata = {
        "case": name,
        "config": torch_twin.config_json(cfg),
        "dropout_seed": str(DROPOUT_SEED),
        "loss": "sum(out*R)+sum(mean*M)+sum(logvar*V)",
        "eps_block": str(eps_block),
        "rng_blocks_per_forward": str(blocks),
        "torch_version": torch.__version__,
    }
    nparam = sum(p.numel() for p in model.parameters())
    return tensors, metadata, nparam, noise



def make_case(name, spec):
    torch.manual_seed(spec["seed"])
    cfg = torch_twin.make_config(spec["config"])
    model = torch_twin.build(cfg)
    x = torch.randn(model.input_shape(spec["batch"]))
    target = torch.randn(model.output_shape(spec["batch"]))
    t = torch.tensor(spec["t"], dtype=torch.float32)
    y = None if spec["y"] is None else torch.tensor(spec["y"], dtype=torch.int32)
    assert t.numel() == spec["batch"] and (y is None or y.numel() == spec["batch"])
    names = [n for n, _ in model.named_parameters()]
    assert names == list(model.state_dict().keys()), "state_dict has buffers: not expected"

    tensors = {"x": f32(x), "t": f32(t)}
    if y is not None:
        tensors["y"] = y.numpy().astype(np.int32)
    tensors["target"] = f32(target)
    for n, p in model.named_parameters():
        tensors[f"init.{n}"] = f32(p)

    model.eval()
    with torch.no_grad():
        tensors["eval_out"] = f32(model(x, t, y))

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=ADAMW["lr"],
                            betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
                            weight_decay=ADAMW["weight_decay"], foreach=False)
    stream = torch_twin.PhiloxStream(DROPOUT_SEED, 0)
    losses, counters = [], [0]
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        xin = x.clone().requires_grad_(step == 1)
        out = model(xin, t, y, stream)
        counters.append(stream.counter)
        loss = torch.mean((out - target) ** 2)
        loss.backward()
        if step == 1:
            tensors["out"] = f32(out)
            for n, p in model.named_parameters():
                tensors[f"grad.{n}"] = f32(p.grad)
            tensors["grad.x"] = f32(xin.grad)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        if step == 1:
            tensors["grad_norm"] = np.array([float(norm)], dtype=np.float32)
        opt.step()
        losses.append(float(loss))
    tensors["loss"] = np.array(losses, dtype=np.float32)
    for n, p in model.named_parameters():
        tensors[f"final.{n}"] = f32(p)

    # The same steps in float64, from the same initial parameters and dropout
    # masks: how far float32 PyTorch itself lands from exact arithmetic, which is
    # the yardstick for the C side's parameters after the steps.
    model64 = torch_twin.build(cfg).double()
    with torch.no_grad():
        for n, p in model64.named_parameters():
            p.copy_(torch.from_numpy(tensors[f"init.{n}"]).double())
    model64.train()
    opt64 = torch.optim.AdamW(model64.parameters(), lr=ADAMW["lr"],
                              betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
                              weight_decay=ADAMW["weight_decay"], foreach=False)
    stream64 = torch_twin.PhiloxStream(DROPOUT_SEED, 0)
    for step in range(1, STEPS + 1):
        opt64.zero_grad(set_to_none=True)
        out = model64(x.double(), t.double(), y, stream64)
        torch.mean((out - target.double()) ** 2).backward()
        torch.nn.utils.clip_grad_norm_(model64.parameters(), CLIP)
        opt64.step()
    for n, p in model64.named_parameters():
        tensors[f"final64.{n}"] = p.detach().numpy().astype(np.float64)

    per_forward = {c2 - c1 for c1, c2 in zip(counters, counters[1:])}
    assert len(per_forward) == 1, counters
    metadata = {
        "case": name,
        "config": torch_twin.config_json(cfg),
        "dropout_seed": str(DROPOUT_SEED),
        "steps": str(STEPS),
        "adamw": json.dumps(ADAMW, separators=(",", ":")),
        "clip": repr(CLIP),
        "loss": "mse_mean",
        "rng_blocks_per_forward": str(per_forward.pop()),
        "torch_version": torch.__version__,
    }
    return tensors, metadata, losses, float(tensors["grad_norm"][0])


def make_adamw_case():
    """The optimizer alone: STEPS steps of clip_grad_norm_ + AdamW on one parameter
    vector with given gradients spanning seven orders of magnitude, so that the C
    AdamW is compared with PyTorch's without the network's rounding in between."""
    torch.manual_seed(5)
    n = 4096
    init = torch.randn(n) * 0.1
    grads = torch.randn(STEPS, n) * torch.logspace(-6, 1, n)[None, :]
    param = init.clone().requires_grad_(True)
    opt = torch.optim.AdamW([param], lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]),
                            eps=ADAMW["eps"], weight_decay=ADAMW["weight_decay"], foreach=False)
    for k in range(STEPS):
        param.grad = grads[k].clone()
        torch.nn.utils.clip_grad_norm_([param], CLIP)
        opt.step()
    state = opt.state[param]
    tensors = {"init": f32(init), "grads": f32(grads), "final": f32(param),
               "exp_avg": f32(state["exp_avg"]), "exp_avg_sq": f32(state["exp_avg_sq"])}
    metadata = {"case": "adamw", "steps": str(STEPS), "clip": repr(CLIP),
                "adamw": json.dumps(ADAMW, separators=(",", ":")), "torch_version": torch.__version__}
    return tensors, metadata


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cases", nargs="*", help=f"cases (default all: {' '.join(CASES)})")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "tests", "ref"))
    args = ap.parse_args()
    unknown = [c for c in args.cases if c not in CASES and c not in AUTOENCODER_CASES and c != "adamw"]
    if unknown:
        print(f"gen_reference.py: unknown case(s) {unknown}; known: "
              f"{list(CASES) + list(AUTOENCODER_CASES) + ['adamw']}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    if not args.cases or "adamw" in args.cases:
        tensors, meta = make_adamw_case()
        path = os.path.join(args.out, "adamw.safetensors")
        safetensors_io.save(path, tensors, meta)
        print(f"adamw: {os.path.getsize(path) / 1e6:.2f} MB -> {path}")
    for name in [c for c in args.cases if c in AUTOENCODER_CASES] or ([] if args.cases else AUTOENCODER_CASES):
        tensors, meta, nparam, noise = make_autoencoder_case(name, AUTOENCODER_CASES[name])
        path = os.path.join(args.out, f"{name}.safetensors")
        safetensors_io.save(path, tensors, meta)
        print(f"{name}: {os.path.getsize(path) / 1e3:.0f} KB, {nparam:,} parameters, "
              f"{meta['rng_blocks_per_forward']} Philox blocks per forward (eps from block "
              f"{meta['eps_block']}) -> {path}")
        print("  float32 vs float64 (max|d| / max|f64|): "
              + ", ".join(f"{k} {v:.1e}" for k, v in noise.items()))
    for name in [c for c in args.cases if c in CASES] or ([] if args.cases else CASES):
        tensors, meta, losses, gnorm = make_case(name, CASES[name])
        path = os.path.join(args.out, f"{name}.safetensors")
        safetensors_io.save(path, tensors, meta)
        nparam = sum(v.size for k, v in tensors.items() if k.startswith("init."))
        print(f"{name}: {os.path.getsize(path) / 1e6:.2f} MB, {nparam:,} parameters, "
              f"grad_norm {gnorm:.4f}, loss " + " ".join(f"{v:.6f}" for v in losses)
              + f", {meta['rng_blocks_per_forward']} Philox blocks per forward -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

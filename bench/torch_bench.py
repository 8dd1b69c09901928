#!/usr/bin/python3
"""PyTorch's side of diffusion.c's speed comparison, run on the project's PyTorch
twin (scripts/torch_twin.py), float32, NCHW, CPU; with --bf16 under PyTorch's own
mixed precision, torch.autocast("cpu", dtype=torch.bfloat16) around the forward
and the loss (float32 weights and optimizer), and the lines name the preset
"<preset>+bf16".

Usage:
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_bench.py --preset fmnist-small \\
      [--threads 2] [--train-batch 128] [--steps 10] [--warmup 3] [--infer-batches 1 64] [--bf16]

Measures
  train  one DDPM training step (Ho et al. 2020, Algorithm 1): x0 uniform in [-1, 1]
         (fixed), t ~ U{0..999}, linear betas 1e-4..0.02, abar = cumprod(1 - beta),
         x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, loss = MSE(model(x_t, t), eps),
         backward, AdamW(lr 2e-4) step; the time of a step includes drawing t and eps.
         img_per_s = batch / median step time over --steps steps after --warmup.
         Dropout is torch's own (F.dropout), not the Philox masks used for testing.
  infer  eval-mode forward under no_grad at each --infer-batches size:
         img_per_s = batch / median forward time (at least --min-reps forwards and
         --min-time seconds after 2 warm-up forwards).
Prints machine-readable lines (key=value after the first three words):
  torch train fmnist-small batch=128 img_per_s=49.8 ms_per_step=2570.1 ...
  torch infer fmnist-small batch=64 img_per_s=174.0 ms_per_batch=367.8 ...
  torch peak_rss preset=fmnist-small mib=812.3
and, first, '#' comment lines describing the run (threads, torch version, env).
Use Debian's /usr/bin/python3 (it has torch).
"""
import argparse
import os
import platform
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import torch_twin  # noqa: E402


def autocast(bf16):
    """bfloat16 autocast on the CPU, or nothing."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def group_norm_in_float32():
    """PyTorch 1.13's CPU autocast leaves group_norm out of its float32 list and then
    fails on bfloat16 inputs with float32 affine weights: normalise in float32 (as
    diffusion.c does), the convolutions that follow cast back to bfloat16."""
    plain = F.group_norm

    def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
        return plain(x.float(), num_groups, weight, bias, eps)
    F.group_norm = group_norm


def train_step_times(model, batch, steps, warmup, seed=0, bf16=False):
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    abar = torch.cumprod(1.0 - betas, dim=0).float()
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(model.input_shape(batch), generator=g) * 2 - 1
    times, losses = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        t = torch.randint(0, 1000, (batch,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        a = abar[t].view(-1, *([1] * (x0.dim() - 1)))
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        with autocast(bf16):
            loss = F.mse_loss(model(xt, t).float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    return times, losses


def infer_times(model, batch, min_reps, min_time, seed=1, bf16=False):
    model.eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(model.input_shape(batch), generator=g)
    t = torch.randint(0, 1000, (batch,), generator=g)
    times = []
    with torch.no_grad(), autocast(bf16):
        for _ in range(2):
            model(x, t)
        start = time.perf_counter()
        while len(times) < min_reps or time.perf_counter() - start < min_time:
            t0 = time.perf_counter()
            model(x, t)
            times.append(time.perf_counter() - t0)
            if len(times) >= 1000:
                break
    return times


def peak_rss_mib():
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description="PyTorch baseline for diffusion.c's benchmarks")
    ap.add_argument("--preset", default="fmnist-small", choices=sorted(torch_twin.PRESETS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="timed training steps (0: skip training)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--infer-batches", type=int, nargs="*", default=[1, 64])
    ap.add_argument("--min-reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=3.0, help="seconds per inference batch size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast (PyTorch's mixed precision)")
    args = ap.parse_args()
    if args.threads < 1 or args.train_batch < 1 or args.steps < 0 or args.warmup < 0 \
            or any(b < 1 for b in args.infer_batches):
        ap.error("threads, batches must be >= 1; steps, warmup >= 0")

    label = args.preset + ("+bf16" if args.bf16 else "")
    if args.bf16:
        group_norm_in_float32()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = torch_twin.build(args.preset)
    env = {k: v for k, v in sorted(os.environ.items())
           if k.startswith(("OPENBLAS", "OMP", "MKL", "DNNL", "ONEDNN"))}
    print(f"# torch_bench.py preset={args.preset} config={torch_twin.config_json(model.cfg)}")
    print(f"# params={torch_twin.count_params(model)} python={platform.python_version()} "
          f"torch={torch.__version__} threads={torch.get_num_threads()} "
          f"mkldnn={torch.backends.mkldnn.is_available()} env={env}", flush=True)

    if args.steps > 0:
        times, losses = train_step_times(model, args.train_batch, args.steps, args.warmup, args.seed, args.bf16)
        med = statistics.median(times)
        print(f"torch train {label} batch={args.train_batch} "
              f"img_per_s={args.train_batch / med:.1f} ms_per_step={med * 1e3:.1f} "
              f"min_ms={min(times) * 1e3:.1f} max_ms={max(times) * 1e3:.1f} steps={len(times)} "
              f"threads={args.threads} loss_first={losses[0]:.4f} loss_last={losses[-1]:.4f}",
              flush=True)
    for b in args.infer_batches:
        times = infer_times(model, b, args.min_reps, args.min_time, args.seed + 1, args.bf16)
        med = statistics.median(times)
        print(f"torch infer {label} batch={b} img_per_s={b / med:.1f} "
              f"ms_per_batch={med * 1e3:.2f} min_ms={min(times) * 1e3:.2f} reps={len(times)} "
              f"threads={args.threads}", flush=True)
    print(f"torch peak_rss preset={label} mib={peak_rss_mib():.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

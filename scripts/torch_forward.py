#!/usr/bin/python3
"""Runs a checkpoint written by diffusion.c in the PyTorch twin.

Usage: /usr/bin/python3 scripts/torch_forward.py CHECKPOINT.safetensors INPUTS.safetensors OUTPUT.safetensors

CHECKPOINT: a safetensors file from dfn_model_save: metadata "config" holds the
    model's JSON config (torch_twin.py's docstring lists the keys); the tensors are
    the model's parameters, F32, named exactly as the twin's state_dict. The name
    map between C and PyTorch is the identity: no renaming happens here, so a name
    or shape that differs is an error, not something to translate. Other metadata
    (training state, ...) is ignored.
INPUTS: tensors "x" (B,C,H,W) or (B,dim), F32; "t" (B) timesteps, F32 (or any
    integer/float dtype); optional "y" (B) labels, I32/I64 (models with classes;
    without it they use the null class). An autoencoder takes x alone: t and y
    are ignored (t may be absent).
OUTPUT: written with one tensor "out", F32, the model's output (shaped like x for a
    denoiser and an autoencoder, (B, classes) for a classifier): the eval-mode
    forward (no dropout; an autoencoder decodes its posterior mean), computed in
    float32 on one thread. For an autoencoder also "mean" and "logvar" (B, z,
    H/f, W/f): its posterior q(z | x).

Exits 0 on success; on any problem prints a message naming the file and the
problem to stderr and exits 1 (2 for wrong usage).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


class Fail(Exception):
    pass


def load_model(path):
    import torch
    import torch_twin
    try:
        tensors, meta = safetensors_io.load(path)
    except safetensors_io.SafetensorsError as e:
        raise Fail(str(e))
    if "config" not in meta:
        raise Fail(f"{path}: no \"config\" in the metadata (keys: {sorted(meta)})")
    try:
        cfg = torch_twin.make_config(meta["config"])
        model = torch_twin.build(cfg)
    except torch_twin.ConfigError as e:
        raise Fail(f"{path}: bad config {meta['config']!r}: {e}")
    expected = model.state_dict()
    missing = [n for n in expected if n not in tensors]
    unexpected = [n for n in tensors if n not in expected]
    wrong = [f"{n}: file {list(tensors[n].shape)} {tensors[n].dtype}, model {list(v.shape)} float32"
             for n, v in expected.items()
             if n in tensors and (list(tensors[n].shape) != list(v.shape) or tensors[n].dtype != np.float32)]
    if missing or unexpected or wrong:
        lines = [f"{path}: tensors do not match the twin built from its config {meta['config']}"]
        if missing:
            lines.append(f"  missing ({len(missing)}): " + ", ".join(missing[:20]))
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): " + ", ".join(unexpected[:20]))
        if wrong:
            lines.append(f"  wrong shape or dtype ({len(wrong)}): " + "; ".join(wrong[:20]))
        raise Fail("\n".join(lines))
    state = {n: torch.from_numpy(np.ascontiguousarray(tensors[n])) for n in expected}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # should not happen after the checks above
        raise Fail(f"{path}: load_state_dict failed: {e}")
    for n, v in state.items():
        if not torch.isfinite(v).all():
            raise Fail(f"{path}: tensor {n} has NaN or Inf values")
    return model.eval()


def run(ckpt, inputs, output):
    import torch
    torch.set_num_threads(1)
    model = load_model(ckpt)
    try:
        inp, _ = safetensors_io.load(inputs)
    except safetensors_io.SafetensorsError as e:
        raise Fail(str(e))
    autoencoder = model.cfg["kind"] == "autoencoder"
    for k in ("x",) if autoencoder else ("x", "t"):
        if k not in inp:
            raise Fail(f"{inputs}: no tensor \"{k}\" (has: {sorted(inp)})")
    x = inp["x"]
    want = list(model.input_shape(x.shape[0] if x.ndim else 0))
    if x.ndim != len(want) or list(x.shape) != want:
        raise Fail(f"{inputs}: x has shape {list(x.shape)}, the model takes {['B'] + want[1:]}")
    if x.dtype != np.float32:
        raise Fail(f"{inputs}: x must be F32, got {x.dtype}")
    B = x.shape[0]
    if autoencoder:
        with torch.no_grad():
            rec, mean, logvar = model.reconstruct(torch.from_numpy(np.ascontiguousarray(x)))
        save(output, {"out": rec, "mean": mean, "logvar": logvar})
        return
    t = inp["t"]
    if t.shape != (B,):
        raise Fail(f"{inputs}: t has shape {list(t.shape)}, expected [{B}]")
    y = None
    if "y" in inp:
        y = inp["y"]
        if y.dtype.kind not in "iu" or y.shape != (B,):
            raise Fail(f"{inputs}: y must be [{B}] integers, got {list(y.shape)} {y.dtype}")
        nc = model.cfg["num_classes"]
        if nc == 0:
            raise Fail(f"{inputs}: has labels y but the model has no classes")
        if B and (y.min() < 0 or y.max() > nc):
            raise Fail(f"{inputs}: labels must be in 0..{nc} ({nc} = null class), got {y.min()}..{y.max()}")
        y = torch.from_numpy(y.astype(np.int64))
    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(x)),
                    torch.from_numpy(t.astype(np.float32)), y)
    save(output, {"out": out})


def save(output, tensors):
    try:
        safetensors_io.save(output, {k: v.numpy().astype(np.float32) for k, v in tensors.items()})
    except OSError as e:
        raise Fail(f"{output}: cannot write: {e.strerror}")


def main(argv):
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if len(argv) != 4:
        print(__doc__.strip().split("\n\n")[1] + "\n(--help for more)", file=sys.stderr)
        return 2
    try:
        run(argv[1], argv[2], argv[3])
    except Fail as e:
        print(f"torch_forward.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

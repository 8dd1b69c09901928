#!/usr/bin/python3
"""The PyTorch twin of diffusion.c's models: what the C engine is proven equal to.

Four model kinds, built from the same JSON config that the C side stores in its
checkpoints' metadata under "config":

  U-Net (images), the DDPM U-Net of Ho et al. 2020 with the parameter names of the
  project's reference torch_unet.py, generalised:
    {"kind": "unet", "in_channels": 1, "resolution": 28, "channels": 32,
     "ch_mult": [1, 2, 2], "num_res_blocks": 1, "attn_resolutions": [],
     "heads": 1, "groups": 32, "norm_eps": 1e-6, "dropout": 0.1, "num_classes": 0}
  MLP (vectors), a residual MLP with the same time embedding:
    {"kind": "mlp", "dim": 2, "width": 128, "depth": 3, "dropout": 0.0,
     "num_classes": 0}
  classifier (images -> class logits), the small CNN whose features FID and KID
  use: conv3x3 -> GN+SiLU -> conv3x3/2 -> GN+SiLU -> conv3x3/2 -> GN+SiLU ->
  global average pool -> fc1 -> SiLU [features] -> fc2 [logits]:
    {"kind": "classifier", "in_channels": 1, "height": 28, "width": 28,
     "channels": 32, "groups": 8, "feature_dim": 128, "num_classes": 10}
  It takes no time or label: forward(x, t, y, stream) ignores all but x.
  autoencoder (images -> latents -> images), the KL autoencoder of latent
  diffusion (Rombach et al. 2022, "AutoencoderKL"), with LDM's parameter names:
    {"kind": "autoencoder", "in_channels": 1, "resolution": 28, "channels": 32,
     "ch_mult": [1, 2, 2], "num_res_blocks": 1, "latent_channels": 4, "groups": 8,
     "norm_eps": 1e-6, "dropout": 0.0}
  The encoder halves the resolution len(ch_mult) - 1 times, so a latent is
  (latent_channels, resolution / f, resolution / f), f = 2**(len(ch_mult) - 1);
  see AutoencoderKL below. forward(x, eps=None, stream=None) -> reconstruction.

The state_dict names are the names of the C side's tensor table (the map between
the two is the identity). With heads = 1 and num_classes = 0 the U-Net is the
reference network exactly: a reference state_dict loads with strict=True and gives
the same outputs.

Generalisations of the reference:
  - GroupNorm(groups, eps) from the config (the reference: 32, 1e-6);
  - multi-head spatial self-attention: head h owns the D = C/heads consecutive
    channels h*D .. h*D+D-1; per head, w = softmax_keys(q^T k * D**-0.5) and
    out = v w^T (heads = 1 is the reference's single head);
  - class conditioning (num_classes > 0): "label_emb" = Embedding(num_classes + 1,
    temb width) added to the time embedding after its MLP; label num_classes is the
    null class (classifier-free guidance), used for every row when y is None.

Dropout: in training mode a forward takes an optional PhiloxStream (seed, counter)
and every dropout layer then draws its mask from Philox4x32-10 exactly as
src/core/rng.c and dfn_dropout_forward do (see philox4x32_10 and PhiloxStream
below), so C and PyTorch make the same masks. Layers run in forward order: the
down path's ResBlocks, mid_block1, mid_block2, the up path's ResBlocks (MLP: its
blocks in order; autoencoder: the encoder's ResBlocks, then the posterior's
noise eps, then the decoder's ResBlocks). A layer with p = 0 is the identity and
draws nothing. Without a stream, training-mode dropout is torch's own (F.dropout):
fine for benchmarks, not for comparisons with C.

Run `/usr/bin/python3 scripts/torch_twin.py [PRESET|CONFIG_JSON]` to print the
config, the parameter count and the state_dict names and shapes.
(Use Debian's /usr/bin/python3: it has torch.)
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ------------------------------------------------------------------ configs

UNET_DEFAULTS = {
    "kind": "unet", "in_channels": 1, "resolution": 28, "channels": 64, "ch_mult": [1, 2, 2],
    "num_res_blocks": 2, "attn_resolutions": [7], "heads": 1, "groups": 32, "norm_eps": 1e-6,
    "dropout": 0.1, "num_classes": 0,
}
MLP_DEFAULTS = {
    "kind": "mlp", "dim": 2, "width": 128, "depth": 3, "dropout": 0.0, "num_classes": 0,
}
CLASSIFIER_DEFAULTS = {
    "kind": "classifier", "in_channels": 1, "height": 28, "width": 28, "channels": 32,
    "groups": 8, "feature_dim": 128, "num_classes": 10, "time_embed": 0, "extra_convs": 0,
    "flatten": 0, "dropout": 0.0,
}
AUTOENCODER_DEFAULTS = {
    "kind": "autoencoder", "in_channels": 1, "resolution": 28, "channels": 32,
    "ch_mult": [1, 2, 2], "num_res_blocks": 1, "latent_channels": 4, "groups": 8,
    "norm_eps": 1e-6, "dropout": 0.0,
}
DEFAULTS = {"unet": UNET_DEFAULTS, "mlp": MLP_DEFAULTS, "classifier": CLASSIFIER_DEFAULTS,
            "autoencoder": AUTOENCODER_DEFAULTS}

# The reference U-Nets (the CONFIGS of the reference torch_unet.py).
PRESETS = {
    "fmnist-small": dict(UNET_DEFAULTS, channels=64, ch_mult=[1, 2, 2], num_res_blocks=2,
                         attn_resolutions=[7], heads=1, groups=32, norm_eps=1e-6, dropout=0.1),
    "fmnist-tiny": dict(UNET_DEFAULTS, channels=32, ch_mult=[1, 2, 2], num_res_blocks=1,
                        attn_resolutions=[], heads=1, groups=32, norm_eps=1e-6, dropout=0.1),
    "fmnist-fast": dict(UNET_DEFAULTS, channels=32, ch_mult=[1, 2, 2], num_res_blocks=1,
                        attn_resolutions=[], heads=1, groups=8, norm_eps=1e-6, dropout=0.1),
    "rgb64": dict(UNET_DEFAULTS, in_channels=3, resolution=64, channels=64, ch_mult=[1, 2, 2, 2],
                  num_res_blocks=2, attn_resolutions=[16], heads=1, groups=32, norm_eps=1e-6, dropout=0.1),
}


class ConfigError(ValueError):
    """A config that cannot be built; the message says which key and why."""


def make_config(cfg):
    """Returns a complete, validated copy of `cfg` (a dict, a JSON string or a preset
    name): missing keys take the defaults of the kind; keys of the other kind are
    ignored; unknown keys and inconsistent values raise ConfigError."""
    if isinstance(cfg, str):
        if cfg in PRESETS:
            cfg = PRESETS[cfg]
        else:
            try:
                cfg = json.loads(cfg)
            except json.JSONDecodeError as e:
                raise ConfigError(f"config is neither a preset ({', '.join(PRESETS)}) nor JSON: {e}")
    if not isinstance(cfg, dict):
        raise ConfigError(f"config must be a JSON object, got {type(cfg).__name__}")
    kind = cfg.get("kind", "unet")
    if kind not in DEFAULTS:
        raise ConfigError(f'config "kind" must be one of {", ".join(DEFAULTS)}, got {kind!r}')
    defaults = DEFAULTS[kind]
    unknown = [k for k in cfg if all(k not in d for d in DEFAULTS.values())]
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
    out = {k: cfg.get(k, v) for k, v in defaults.items()}
    for k in ("ch_mult", "attn_resolutions"):
        if k in out:
            out[k] = [int(v) for v in out[k]]
    for k, v in out.items():
        if k in ("kind", "ch_mult", "attn_resolutions"):
            continue
        if k in ("norm_eps", "dropout"):
            out[k] = float(v)
        else:
            if int(v) != v:
                raise ConfigError(f'config "{k}" must be an integer, got {v!r}')
            out[k] = int(v)
    if kind == "classifier":
        for k in ("in_channels", "height", "width", "channels", "groups", "feature_dim"):
            if out[k] < 1:
                raise ConfigError(f'config "{k}" must be >= 1, got {out[k]}')
        if out["channels"] % out["groups"]:
            raise ConfigError(f'config "groups" = {out["groups"]} must divide "channels" = {out["channels"]}')
        if out["num_classes"] < 2:
            raise ConfigError(f'config "num_classes" must be >= 2, got {out["num_classes"]}')
        if out["time_embed"] not in (0, 1):
            raise ConfigError(f'config "time_embed" must be 0 or 1, got {out["time_embed"]}')
        if not 0 <= out["extra_convs"] <= 3:
            raise ConfigError(f'config "extra_convs" must be 0..3, got {out["extra_convs"]}')
        if out["flatten"] not in (0, 1):
            raise ConfigError(f'config "flatten" must be 0 or 1, got {out["flatten"]}')
        if not 0.0 <= out["dropout"] < 1.0:
            raise ConfigError(f'config "dropout" must be in [0, 1), got {out["dropout"]}')
        return out
    if not 0.0 <= out["dropout"] < 1.0:
        raise ConfigError(f'config "dropout" must be in [0, 1), got {out["dropout"]}')
    if kind == "autoencoder":
        return _check_autoencoder(out)
    if out["num_classes"] < 0:
        raise ConfigError(f'config "num_classes" must be >= 0, got {out["num_classes"]}')
    if kind == "mlp":
        for k in ("dim", "width", "depth"):
            if out[k] < 1:
                raise ConfigError(f'config "{k}" must be >= 1, got {out[k]}')
        if out["width"] < 4:
            raise ConfigError(f'config "width" must be >= 4 (time embedding), got {out["width"]}')
        return out
    for k in ("in_channels", "resolution", "channels", "num_res_blocks", "heads", "groups"):
        if out[k] < 1:
            raise ConfigError(f'config "{k}" must be >= 1, got {out[k]}')
    if not out["ch_mult"] or any(m < 1 for m in out["ch_mult"]):
        raise ConfigError('config "ch_mult" must be a non-empty list of positive integers')
    if out["norm_eps"] <= 0:
        raise ConfigError(f'config "norm_eps" must be > 0, got {out["norm_eps"]}')
    if out["channels"] < 4:
        raise ConfigError(f'config "channels" must be >= 4 (time embedding), got {out["channels"]}')
    res, resolutions = out["resolution"], []
    for l, m in enumerate(out["ch_mult"]):
        resolutions.append(res)
        c = out["channels"] * m
        if c % out["groups"]:
            raise ConfigError(f"level {l}: {c} channels are not divisible by groups = {out['groups']}")
        if res in out["attn_resolutions"] and c % out["heads"]:
            raise ConfigError(f"level {l}: {c} channels are not divisible by heads = {out['heads']}")
        if l != len(out["ch_mult"]) - 1:
            if res % 2:
                raise ConfigError(f"level {l}: resolution {res} does not halve")
            res //= 2
    c = out["channels"] * out["ch_mult"][-1]
    if c % out["heads"]:
        raise ConfigError(f"middle: {c} channels are not divisible by heads = {out['heads']}")
    for r in out["attn_resolutions"]:
        if r not in resolutions:
            raise ConfigError(f"attention at resolution {r} never occurs (resolutions: {resolutions})")
    return out


def _check_autoencoder(out):
    for k in ("in_channels", "resolution", "channels", "num_res_blocks", "latent_channels",
              "groups"):
        if out[k] < 1:
            raise ConfigError(f'config "{k}" must be >= 1, got {out[k]}')
    if not out["ch_mult"] or any(m < 1 for m in out["ch_mult"]):
        raise ConfigError('config "ch_mult" must be a non-empty list of positive integers')
    if out["norm_eps"] <= 0:
        raise ConfigError(f'config "norm_eps" must be > 0, got {out["norm_eps"]}')
    res = out["resolution"]
    for l, m in enumerate(out["ch_mult"]):
        c = out["channels"] * m
        if c % out["groups"]:
            raise ConfigError(f"level {l}: {c} channels are not divisible by groups = {out['groups']}")
        if l != len(out["ch_mult"]) - 1:
            if res % 2:
                raise ConfigError(f"level {l}: resolution {res} does not halve")
            res //= 2
    return out


# ------------------------------------------------------------------ Philox4x32-10

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


def philox4x32_10(seed, blocks):
    """Philox4x32-10 (Salmon et al. 2011) as dfn_philox: key = (seed lo, seed hi),
    counter = (block lo, block hi, 0, 0). blocks: uint64 array (or int). Returns a
    uint32 array of shape blocks.shape + (4,)."""
    blocks = np.asarray(blocks, dtype=np.uint64)
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    c0 = blocks & _MASK32
    c1 = blocks >> _SHIFT32
    c2 = np.zeros_like(blocks)
    c3 = np.zeros_like(blocks)
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    for _ in range(10):
        p0 = _M0 * c0  # < 2**64: no overflow in uint64
        p1 = _M1 * c2
        n0 = (p1 >> _SHIFT32) ^ c1 ^ np.uint64(k0)
        n1 = p1 & _MASK32
        n2 = (p0 >> _SHIFT32) ^ c3 ^ np.uint64(k1)
        n3 = p0 & _MASK32
        c0, c1, c2, c3 = n0, n1, n2, n3
        k0 = (k0 + _W0) & 0xFFFFFFFF
        k1 = (k1 + _W1) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def _blocks(counter, nblocks):
    # counter + arange, wrapping modulo 2**64 like C's uint64_t
    return np.arange(nblocks, dtype=np.uint64) + np.uint64(int(counter) & 0xFFFFFFFFFFFFFFFF)


def u32_to_unit(w):
    """23 high bits to a float32 strictly inside (0, 1): ((w >> 9) + 0.5) * 2**-23,
    exact in float32 (as the C code: 24 bits would round up to 1.0 at the top)."""
    w = np.asarray(w, dtype=np.uint32)
    return ((w >> np.uint32(9)).astype(np.float32) + np.float32(0.5)) * np.float32(1.0 / 8388608.0)


def philox_uniform(seed, counter, n):
    """dfn_rng_uniform: element i from block counter + i//4, lane i%4. Returns
    (float32 array of n, new counter = counter + ceil(n/4))."""
    nb = (n + 3) // 4
    w = philox4x32_10(seed, _blocks(counter, nb)).reshape(-1)[:n]
    return u32_to_unit(w), (int(counter) + nb) & 0xFFFFFFFFFFFFFFFF


def philox_normal(seed, counter, n):
    """dfn_rng_normal (Box-Muller, in double, rounded to float32): elements 2j, 2j+1
    from block counter + j, lanes 0 and 1. Returns (float32 array, new counter).
    Uses Python's math (the C library's log/cos/sin) per element so the values are
    the C ones bit for bit; slow, meant for tests."""
    nb = (n + 1) // 2
    w = philox4x32_10(seed, _blocks(counter, nb))
    u1 = u32_to_unit(w[:, 0]).astype(np.float64)
    u2 = u32_to_unit(w[:, 1]).astype(np.float64)
    out = np.empty(2 * nb, dtype=np.float32)
    for j in range(nb):
        r = math.sqrt(-2.0 * math.log(u1[j]))
        th = 6.283185307179586 * u2[j]
        out[2 * j] = r * math.cos(th)
        out[2 * j + 1] = r * math.sin(th)
    return out[:n], (int(counter) + nb) & 0xFFFFFFFFFFFFFFFF


class PhiloxStream:
    """A dfn_rng: (seed, counter). Dropout layers of a training forward draw from it."""

    def __init__(self, seed, counter=0):
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self.counter = int(counter) & 0xFFFFFFFFFFFFFFFF

    def uniform(self, n):
        u, self.counter = philox_uniform(self.seed, self.counter, n)
        return u

    def normal(self, n):
        """dfn_rng_normal: n standard normals, the counter advanced by ceil(n/2)."""
        z, self.counter = philox_normal(self.seed, self.counter, n)
        return z

    def __repr__(self):
        return f"PhiloxStream(seed={self.seed}, counter={self.counter})"


def philox_dropout(x, p, stream):
    """dfn_dropout_forward on x (any shape, C order): element i kept iff the uniform
    of block counter + i//4, lane i%4 is >= p (float32 compare); kept values are
    multiplied by the float32 scale 1/(1-p). Advances the stream by ceil(n/4)."""
    u = stream.uniform(x.numel())
    p32 = np.float32(p)
    scale = np.float32(1.0) / (np.float32(1.0) - p32)
    m = np.where(u >= p32, scale, np.float32(0.0)).astype(np.float32)
    return x * torch.from_numpy(m).reshape(x.shape)


class Dropout(nn.Module):
    """Dropout with p from the config; reproducible from C when given a stream."""

    def __init__(self, p):
        super().__init__()
        self.p = float(p)

    def forward(self, x, stream=None):
        if not self.training or self.p == 0.0:
            return x
        if stream is None:
            return F.dropout(x, self.p, training=True)
        return philox_dropout(x, self.p, stream)

    def extra_repr(self):
        return f"p={self.p}"


# ------------------------------------------------------------------ shared pieces

def timestep_embedding(t, dim):
    """Sinusoidal embedding (Vaswani et al. 2017 sec. 3.5, as DDPM): [sin(t f_i),
    cos(t f_i)], f_i = exp(-ln(1e4) i / (half-1)) in float32, zero column appended
    for odd dim. t: (B) timesteps, any dtype (used as float32)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0)
                      * torch.arange(half, dtype=torch.float32, device=t.device) / (half - 1))
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


def _labels(y, batch, num_classes, device):
    """y (B) ints in 0..num_classes (num_classes = null) or None -> long tensor."""
    if y is None:
        return torch.full((batch,), num_classes, dtype=torch.long, device=device)
    y = torch.as_tensor(y, device=device).long().reshape(-1)
    if y.numel() != batch:
        raise ValueError(f"y has {y.numel()} labels for a batch of {batch}")
    if y.numel() and (int(y.min()) < 0 or int(y.max()) > num_classes):
        raise ValueError(f"labels must be in 0..{num_classes} ({num_classes} = null class), "
                         f"got {int(y.min())}..{int(y.max())}")
    return y


# ------------------------------------------------------------------ U-Net

class ResBlock(nn.Module):
    """h = conv1(silu(norm1(x))) + temb_proj(silu(temb));
    h = conv2(dropout(silu(norm2(h)))); out = skip(x) + h (skip: 1x1 conv if the
    channel count changes, else identity)."""

    def __init__(self, in_ch, out_ch, temb_ch, dropout, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_ch, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=eps)
        self.dropout = Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x, temb, stream=None):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h)), stream))
        return (x if self.skip is None else self.skip(x)) + h


class AttnBlock(nn.Module):
    """x + proj_out(MHA(norm(x))) over the H*W positions, heads of D = C/heads
    consecutive channels: w = softmax_keys(q^T k * D**-0.5), out = v w^T."""

    def __init__(self, c, heads, groups, eps):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, c, eps=eps)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        B, C, H, W = x.shape
        nh, D = self.heads, C // self.heads
        h = self.norm(x)
        q = self.q(h).reshape(B * nh, D, H * W).permute(0, 2, 1)  # B*nh, HW, D
        k = self.k(h).reshape(B * nh, D, H * W)                   # B*nh, D, HW
        w = torch.bmm(q, k) * (D ** -0.5)                         # B*nh, HWq, HWk
        w = F.softmax(w, dim=2)
        v = self.v(h).reshape(B * nh, D, H * W)                   # B*nh, D, HW
        h = torch.bmm(v, w.permute(0, 2, 1))                      # B*nh, D, HWq
        return x + self.proj_out(h.reshape(B, C, H, W))


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        cfg = make_config(dict(cfg, kind="unet"))
        self.cfg = cfg
        ch, g, eps, p = cfg["channels"], cfg["groups"], cfg["norm_eps"], cfg["dropout"]
        heads, attn_res = cfg["heads"], cfg["attn_resolutions"]
        temb_ch = 4 * ch
        self.temb = nn.Sequential(nn.Linear(ch, temb_ch), nn.SiLU(), nn.Linear(temb_ch, temb_ch))
        if cfg["num_classes"] > 0:
            self.label_emb = nn.Embedding(cfg["num_classes"] + 1, temb_ch)
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch, 3, padding=1)

        def attn(c, res):
            return AttnBlock(c, heads, g, eps) if res in attn_res else nn.Identity()

        self.down = nn.ModuleList()
        skip_chs = [ch]
        cur, res = ch, cfg["resolution"]
        nlev = len(cfg["ch_mult"])
        for l, m in enumerate(cfg["ch_mult"]):
            level = nn.Module()
            level.blocks = nn.ModuleList()
            level.attns = nn.ModuleList()
            for _ in range(cfg["num_res_blocks"]):
                level.blocks.append(ResBlock(cur, ch * m, temb_ch, p, g, eps))
                cur = ch * m
                level.attns.append(attn(cur, res))
                skip_chs.append(cur)
            if l != nlev - 1:
                level.downsample = Downsample(cur)
                res //= 2
                skip_chs.append(cur)
            else:
                level.downsample = None
            self.down.append(level)

        self.mid_block1 = ResBlock(cur, cur, temb_ch, p, g, eps)
        self.mid_attn = AttnBlock(cur, heads, g, eps)
        self.mid_block2 = ResBlock(cur, cur, temb_ch, p, g, eps)

        self.up = nn.ModuleList()
        for l in reversed(range(nlev)):
            level = nn.Module()
            level.blocks = nn.ModuleList()
            level.attns = nn.ModuleList()
            out = ch * cfg["ch_mult"][l]
            for _ in range(cfg["num_res_blocks"] + 1):
                level.blocks.append(ResBlock(cur + skip_chs.pop(), out, temb_ch, p, g, eps))
                cur = out
                level.attns.append(attn(cur, res))
            if l != 0:
                level.upsample = Upsample(cur)
                res *= 2
            else:
                level.upsample = None
            self.up.append(level)
        assert not skip_chs

        self.norm_out = nn.GroupNorm(g, cur, eps=eps)
        self.conv_out = nn.Conv2d(cur, cfg["in_channels"], 3, padding=1)

    def forward(self, x, t, y=None, stream=None):
        """x (B,C,H,W), t (B) timesteps, y (B) labels or None; stream: a PhiloxStream
        for dropout in training mode (None: torch's dropout)."""
        # float32 like the reference; cast for a model in another dtype (float64 checks)
        temb = self.temb(timestep_embedding(t, self.cfg["channels"]).to(x.dtype))
        if self.cfg["num_classes"] > 0:
            temb = temb + self.label_emb(_labels(y, x.shape[0], self.cfg["num_classes"], x.device))
        hs = [self.conv_in(x)]
        for level in self.down:
            for block, attn in zip(level.blocks, level.attns):
                hs.append(attn(block(hs[-1], temb, stream)))
            if level.downsample is not None:
                hs.append(level.downsample(hs[-1]))
        h = self.mid_block1(hs[-1], temb, stream)
        h = self.mid_attn(h)
        h = self.mid_block2(h, temb, stream)
        for level in self.up:
            for block, attn in zip(level.blocks, level.attns):
                h = attn(block(torch.cat([h, hs.pop()], dim=1), temb, stream))
            if level.upsample is not None:
                h = level.upsample(h)
        assert not hs
        return self.conv_out(F.silu(self.norm_out(h)))

    def input_shape(self, batch):
        c = self.cfg
        return (batch, c["in_channels"], c["resolution"], c["resolution"])

    def output_shape(self, batch):
        return self.input_shape(batch)


# ------------------------------------------------------------------ MLP

class MLPBlock(nn.Module):
    """u = fc1(silu(h)) + temb_proj(silu(emb)); u = dropout(silu(u)); h + fc2(u)."""

    def __init__(self, width, dropout):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.temb_proj = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.dropout = Dropout(dropout)

    def forward(self, h, emb, stream=None):
        u = self.fc1(F.silu(h)) + self.temb_proj(F.silu(emb))
        u = self.dropout(F.silu(u), stream)
        return h + self.fc2(u)


class MLP(nn.Module):
    """emb = temb(sinusoidal(t, W)) [+ label_emb(y)]; h = inp(x);
    h = blocks(h, emb); out = out(silu(h))."""

    def __init__(self, cfg):
        super().__init__()
        cfg = make_config(dict(cfg, kind="mlp"))
        self.cfg = cfg
        W = cfg["width"]
        self.temb = nn.Sequential(nn.Linear(W, W), nn.SiLU(), nn.Linear(W, W))
        if cfg["num_classes"] > 0:
            self.label_emb = nn.Embedding(cfg["num_classes"] + 1, W)
        self.inp = nn.Linear(cfg["dim"], W)
        self.blocks = nn.ModuleList([MLPBlock(W, cfg["dropout"]) for _ in range(cfg["depth"])])
        self.out = nn.Linear(W, cfg["dim"])

    def forward(self, x, t, y=None, stream=None):
        emb = self.temb(timestep_embedding(t, self.cfg["width"]).to(x.dtype))
        if self.cfg["num_classes"] > 0:
            emb = emb + self.label_emb(_labels(y, x.shape[0], self.cfg["num_classes"], x.device))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, emb, stream)
        return self.out(F.silu(h))

    def input_shape(self, batch):
        return (batch, self.cfg["dim"])

    def output_shape(self, batch):
        return self.input_shape(batch)


class Classifier(nn.Module):
    """Three stages: conv{i} 3x3 (stride 2 but the first) -> norm{i} GN+SiLU, then
    extra_convs times conv{i}_{k} 3x3 -> norm{i}_{k} GN+SiLU (k = 2..); channels
    ch, 2ch, 4ch. Head: mean over pixels (or, with flatten, the whole map) ->
    dropout -> fc1 -> SiLU (the features) -> fc2 (logits). GroupNorm eps is
    torch's default 1e-5."""

    def __init__(self, cfg):
        super().__init__()
        cfg = make_config(dict(cfg, kind="classifier"))
        self.cfg = cfg
        ch, g = cfg["channels"], cfg["groups"]
        if cfg["time_embed"]:  # a classifier of noisy images: the U-Net's time embedding
            self.temb = nn.Sequential(nn.Linear(ch, 4 * ch), nn.SiLU(), nn.Linear(4 * ch, 4 * ch))
        cin = cfg["in_channels"]
        for i, c in ((1, ch), (2, 2 * ch), (3, 4 * ch)):
            setattr(self, f"conv{i}", nn.Conv2d(cin, c, 3, stride=1 if i == 1 else 2, padding=1))
            if cfg["time_embed"]:
                setattr(self, f"temb_proj{i}", nn.Linear(4 * ch, c))
            setattr(self, f"norm{i}", nn.GroupNorm(g, c))
            for k in range(2, 2 + cfg["extra_convs"]):
                setattr(self, f"conv{i}_{k}", nn.Conv2d(c, c, 3, padding=1))
                setattr(self, f"norm{i}_{k}", nn.GroupNorm(g, c))
            cin = c
        h, w = cfg["height"], cfg["width"]
        for _ in range(2):
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        self.dropout = Dropout(cfg["dropout"])
        self.fc1 = nn.Linear(4 * ch * (h * w if cfg["flatten"] else 1), cfg["feature_dim"])
        self.fc2 = nn.Linear(cfg["feature_dim"], cfg["num_classes"])

    def features(self, x, t=None, stream=None):
        s = None
        if self.cfg["time_embed"]:
            s = F.silu(self.temb(timestep_embedding(t, self.cfg["channels"]).to(x.dtype)))
        h = x
        for i in (1, 2, 3):
            h = getattr(self, f"conv{i}")(h)
            if s is not None:
                h = h + getattr(self, f"temb_proj{i}")(s)[:, :, None, None]
            h = F.silu(getattr(self, f"norm{i}")(h))
            for k in range(2, 2 + self.cfg["extra_convs"]):
                h = F.silu(getattr(self, f"norm{i}_{k}")(getattr(self, f"conv{i}_{k}")(h)))
        h = h.flatten(1) if self.cfg["flatten"] else h.mean(dim=(2, 3))
        return F.silu(self.fc1(self.dropout(h, stream)))

    def forward(self, x, t=None, y=None, stream=None):
        return self.fc2(self.features(x, t, stream))

    def input_shape(self, batch):
        return (batch, self.cfg["in_channels"], self.cfg["height"], self.cfg["width"])

    def output_shape(self, batch):
        return (batch, self.cfg["num_classes"])


# ------------------------------------------------------------------ autoencoder

class AEResBlock(nn.Module):
    """The ResBlock of LDM's autoencoder: the U-Net's ResBlock without a time input.
    h = conv1(silu(norm1(x))); h = conv2(dropout(silu(norm2(h))));
    out = nin_shortcut(x) + h (nin_shortcut: 1x1 conv if the channel count
    changes, else identity)."""

    def __init__(self, in_ch, out_ch, dropout, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=eps)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=eps)
        self.dropout = Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x, stream=None):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h)), stream))
        return (x if self.nin_shortcut is None else self.nin_shortcut(x)) + h


class AEMid(nn.Module):
    """block_1, attn_1 (one head), block_2 at the lowest resolution."""

    def __init__(self, c, dropout, groups, eps):
        super().__init__()
        self.block_1 = AEResBlock(c, c, dropout, groups, eps)
        self.attn_1 = AttnBlock(c, 1, groups, eps)
        self.block_2 = AEResBlock(c, c, dropout, groups, eps)

    def forward(self, h, stream=None):
        return self.block_2(self.attn_1(self.block_1(h, stream)), stream)


class Encoder(nn.Module):
    """x -> conv_in -> per level l: num_res_blocks ResBlocks to channels * ch_mult[l]
    [-> downsample: 3x3 conv, stride 2, padding 1, except at the last level] ->
    mid -> norm_out, SiLU -> conv_out to 2 * latent_channels (the moments: mean,
    then log-variance)."""

    def __init__(self, cfg):
        super().__init__()
        ch, g, eps, p = cfg["channels"], cfg["groups"], cfg["norm_eps"], cfg["dropout"]
        nlev = len(cfg["ch_mult"])
        self.conv_in = nn.Conv2d(cfg["in_channels"], ch, 3, padding=1)
        self.down = nn.ModuleList()
        cur = ch
        for l, m in enumerate(cfg["ch_mult"]):
            level = nn.Module()
            level.block = nn.ModuleList()
            for _ in range(cfg["num_res_blocks"]):
                level.block.append(AEResBlock(cur, ch * m, p, g, eps))
                cur = ch * m
            level.downsample = Downsample(cur) if l != nlev - 1 else None
            self.down.append(level)
        self.mid = AEMid(cur, p, g, eps)
        self.norm_out = nn.GroupNorm(g, cur, eps=eps)
        self.conv_out = nn.Conv2d(cur, 2 * cfg["latent_channels"], 3, padding=1)

    def forward(self, x, stream=None):
        h = self.conv_in(x)
        for level in self.down:
            for block in level.block:
                h = block(h, stream)
            if level.downsample is not None:
                h = level.downsample(h)
        h = self.mid(h, stream)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """z -> conv_in to channels * ch_mult[-1] -> mid -> per level l from the last to
    the first: num_res_blocks + 1 ResBlocks to channels * ch_mult[l] [-> upsample:
    nearest 2x, 3x3 conv, except at level 0] -> norm_out, SiLU -> conv_out to
    in_channels. The levels keep the encoder's numbers (up.{l} works at the
    resolution of down.{l}), registered from the last to the first, the order in
    which they run, so the state_dict lists them in the C tensor table's order."""

    def __init__(self, cfg):
        super().__init__()
        ch, g, eps, p = cfg["channels"], cfg["groups"], cfg["norm_eps"], cfg["dropout"]
        nlev = len(cfg["ch_mult"])
        cur = ch * cfg["ch_mult"][-1]
        self.conv_in = nn.Conv2d(cfg["latent_channels"], cur, 3, padding=1)
        self.mid = AEMid(cur, p, g, eps)
        self.up = nn.ModuleDict()
        for l in reversed(range(nlev)):
            level = nn.Module()
            level.block = nn.ModuleList()
            for _ in range(cfg["num_res_blocks"] + 1):
                level.block.append(AEResBlock(cur, ch * cfg["ch_mult"][l], p, g, eps))
                cur = ch * cfg["ch_mult"][l]
            level.upsample = Upsample(cur) if l != 0 else None
            self.up[str(l)] = level
        self.norm_out = nn.GroupNorm(g, cur, eps=eps)
        self.conv_out = nn.Conv2d(cur, cfg["in_channels"], 3, padding=1)

    def forward(self, z, stream=None):
        h = self.mid(self.conv_in(z), stream)
        for level in self.up.values():  # levels L-1 .. 0
            for block in level.block:
                h = block(h, stream)
            if level.upsample is not None:
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class AutoencoderKL(nn.Module):
    """The KL-regularised autoencoder of latent diffusion (Rombach et al. 2022,
    sec. 3.1 and appendix G; LDM's AutoencoderKL, its ldm.modules.diffusionmodules.model
    Encoder/Decoder and DiagonalGaussianDistribution):

      moments = quant_conv(encoder(x))                  2z channels, 1x1 conv
      mean = moments[:, :z], logvar = clamp(moments[:, z:], -30, 20)
      q(z | x) = N(mean, diag(exp(logvar)))             the posterior
      z = mean + exp(logvar / 2) * eps, eps ~ N(0, I)   training (reparameterisation,
                                                        Kingma & Welling 2014 eq. 10)
      z = mean                                          eval
      rec = decoder(post_quant_conv(z))                 z channels, 1x1 conv

    The training loss adds beta * KL(q(z|x) || N(0, I)) = beta / 2 * sum(mean^2 +
    exp(logvar) - 1 - logvar) (Kingma & Welling 2014 appendix B) to the
    reconstruction loss; it is computed outside the model (dfn_kl_standard_normal,
    posterior_kl here). The clamp is LDM's: its gradient is 0 outside [-30, 20].

    One difference from LDM: the downsampling conv pads 1 on every side (the
    U-Net's Downsample, the C side's), where LDM pads (0, 1, 0, 1) and convolves
    unpadded; LDM weights load by name but do not give LDM's outputs.

    Parameter order (= the C tensor table): encoder, quant_conv, post_quant_conv,
    decoder."""

    def __init__(self, cfg):
        super().__init__()
        cfg = make_config(dict(cfg, kind="autoencoder"))
        self.cfg = cfg
        zc = cfg["latent_channels"]
        self.encoder = Encoder(cfg)
        self.quant_conv = nn.Conv2d(2 * zc, 2 * zc, 1)
        self.post_quant_conv = nn.Conv2d(zc, zc, 1)
        self.decoder = Decoder(cfg)

    def encode(self, x, stream=None):
        """x (B, C, H, W) -> (mean, logvar), each (B, z, H/f, W/f); logvar clamped."""
        moments = self.quant_conv(self.encoder(x, stream))
        zc = self.cfg["latent_channels"]
        return moments[:, :zc], torch.clamp(moments[:, zc:], -30.0, 20.0)

    def decode(self, z, stream=None):
        """z (B, latent_channels, H/f, W/f) -> images (B, C, H, W)."""
        return self.decoder(self.post_quant_conv(z), stream)

    def reconstruct(self, x, eps=None, stream=None):
        """-> (rec, mean, logvar). z = mean + exp(logvar / 2) * eps when eps is given;
        else in training mode eps is drawn from `stream` after the encoder, as
        dfn_rng_normal(rng, eps, B*z*h*w) does in the C forward (torch.randn
        without a stream); else (eval) z = mean."""
        mean, logvar = self.encode(x, stream)
        if eps is None and self.training:
            if stream is None:
                eps = torch.randn_like(mean)
            else:
                eps = torch.from_numpy(stream.normal(mean.numel())).reshape(mean.shape)
        if eps is None:
            z = mean
        else:
            z = mean + torch.exp(0.5 * logvar) * torch.as_tensor(eps).to(mean.dtype)
        return self.decode(z, stream), mean, logvar

    def forward(self, x, eps=None, stream=None):
        return self.reconstruct(x, eps, stream)[0]

    def input_shape(self, batch):
        c = self.cfg
        return (batch, c["in_channels"], c["resolution"], c["resolution"])

    def output_shape(self, batch):
        return self.input_shape(batch)

    def latent_shape(self, batch):
        c = self.cfg
        r = c["resolution"] >> (len(c["ch_mult"]) - 1)
        return (batch, c["latent_channels"], r, r)


def posterior_kl(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)) per batch row, summed over the rest:
    1/2 sum(mean^2 + exp(logvar) - 1 - logvar). Its mean over the batch is what
    dfn_kl_standard_normal returns."""
    return 0.5 * (mean ** 2 + torch.exp(logvar) - 1.0 - logvar).flatten(1).sum(1)


# ------------------------------------------------------------------ helpers

def build(cfg):
    """A model from a config (dict, JSON string or preset name), PyTorch default init
    drawn from torch's global generator."""
    cfg = make_config(cfg)
    return {"unet": UNet, "mlp": MLP, "classifier": Classifier,
            "autoencoder": AutoencoderKL}[cfg["kind"]](cfg)


def config_json(cfg):
    """The config as the compact JSON text stored in checkpoint metadata."""
    return json.dumps(make_config(cfg), separators=(",", ":"))


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__)
        return 0 if len(argv) == 2 else 2
    try:
        cfg = make_config(argv[1] if len(argv) == 2 else "fmnist-small")
    except ConfigError as e:
        print(f"torch_twin.py: {e}", file=sys.stderr)
        return 1
    model = build(cfg)
    print(config_json(cfg))
    print(f"parameters: {count_params(model):,}")
    for name, t in model.state_dict().items():
        print(f"  {name} {list(t.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

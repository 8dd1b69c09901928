/* silu.h - SiLU and its derivative over a vectorisable exp, for the loops of
 * elementwise.c and the fused GroupNorm+SiLU (groupnorm.c).
 *
 * glibc's expf() is a scalar call that gcc does not vectorise without
 * -ffast-math, and it would dominate a fused GroupNorm+SiLU. exp_f32() below is
 * an accurate (about 1 ulp) vectorisable replacement: the same value for the
 * same x wherever it is computed (vector body or scalar tail, either file).
 * Where the level has no FMA (generic on x86-64), exp_f32 multiplies and adds
 * (dfn_fmaf): SiLU then differs from the other levels in the last bit now and
 * then, still ~1 ulp. Included by files compiled once per level (kernels.h). */
#ifndef DFN_SILU_H
#define DFN_SILU_H

#include <stdint.h>
#include <string.h>

#include "nn/exp_poly.h"

static inline float bits_to_f32(int32_t i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* The clamp bounds of exp_f32, read through a volatile once per kernel call: with
 * literal bounds gcc specialises the clamped lanes (where everything is a
 * constant) and the vector loop carries three blended copies of the work; with
 * opaque bounds the clamp is one vmaxps and one vminps. */
static volatile const float exp_bounds[2] = {-87.3f, 88.5f};

/* exp(x) in float32 for SiLU, about 1 ulp on [-87.3, 88.0], vectorisable:
 *   exp(x) = 2^n e^r,  n = round(x / ln 2),  r = x - n ln 2 (Cody-Waite, two
 *   constants), |r| <= ln2/2;  e^r by its Taylor series to degree 7 (truncation
 *   r^8/8! < 6e-9 relative);  2^n built from its exponent bits.
 * x is first clamped to [lo, hi] = exp_bounds, so that n stays in [-126, 128]:
 * below -87.3 the result stays at exp(-87.3) ~ 1.2e-38 instead of going
 * subnormal (1 + e^-x and x e^-x s cannot tell); above 88.03, n = 128 builds
 * +inf exactly, the overflow of the true value (at 88.72) brought forward.
 * exp_f32(NaN) = exp(lo); silu_f32 and silu_grad_f32 still return NaN for NaN. */
static inline float exp_f32(float x, float lo, float hi) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f;        /* 16 significant bits: n ln2_hi exact */
    const float ln2_lo = 1.4286068202862268e-06f;   /* ln2 - ln2_hi */
    const float round_magic = 12582912.0f;          /* 1.5 * 2^23: adding it rounds to integer */
    x = x > lo ? x : lo; /* NaN becomes lo here: the conversion below stays defined, */
    x = x < hi ? x : hi; /* and SiLU's own factor x carries the NaN through */
    float nf = (x * log2e + round_magic) - round_magic;
    float r = dfn_fmaf(nf, -ln2_hi, x); /* exact either way: nf ln2_hi is */
    r = dfn_fmaf(nf, -ln2_lo, r);
    const float p = dfn_exp_poly7(r);
    return p * bits_to_f32(((int32_t)nf + 127) << 23); /* n = 128 gives the bits of +inf */
}

/* silu(x) = x sigmoid(x) = x / (1 + e^-x)  (Elfwing et al. 2018; Hendrycks &
 * Gimpel's SiLU), the same expression PyTorch's CPU kernel evaluates. */
static inline float silu_f32(float x, float lo, float hi) {
    return x / (1.0f + exp_f32(-x, lo, hi));
}

/* d silu / dx = s (1 + x (1 - s)), s = sigmoid(x) = 1 / (1 + e^-x).
 * For x > 0, 1 - s is taken as e^-x s (= e^-x / (1 + e^-x)) instead of the
 * difference, which would lose x ulp(1)/2 to cancellation; for x <= 0 the
 * difference is exact enough (s <= 1/2) and e^-x s could be inf * 0. */
static inline float silu_grad_f32(float x, float lo, float hi) {
    float e = exp_f32(-x, lo, hi);
    float s = 1.0f / (1.0f + e);
    float oms = x > 0.0f ? e * s : 1.0f - s;
    return s * (1.0f + x * oms);
}

#endif

/* exp_poly.h - the polynomial both vectorisable exps use (SiLU, softmax):
 * e^r for |r| <= ln2/2 by its degree-7 Taylor polynomial in Horner form,
 * after the caller's Cody-Waite reduction x = n ln2 + r.
 *
 * dfn_fmaf(a, b, c) = a b + c: fused (fmaf, one rounding) where the target has
 * FMA in hardware (AVX2 and AVX-512 levels, aarch64), else a multiply and an add:
 * without hardware FMA, fmaf is a library call that stops vectorisation. */
#ifndef DFN_EXP_POLY_H
#define DFN_EXP_POLY_H

#include <math.h>

#if defined(__FP_FAST_FMAF)
#define dfn_fmaf(a, b, c) fmaf((a), (b), (c))
#else
#define dfn_fmaf(a, b, c) ((a) * (b) + (c))
#endif

static inline float dfn_exp_poly7(float r) {
    float p = 1.0f / 5040.0f;
    p = dfn_fmaf(p, r, 1.0f / 720.0f);
    p = dfn_fmaf(p, r, 1.0f / 120.0f);
    p = dfn_fmaf(p, r, 1.0f / 24.0f);
    p = dfn_fmaf(p, r, 1.0f / 6.0f);
    p = dfn_fmaf(p, r, 0.5f);
    p = dfn_fmaf(p, r, 1.0f);
    p = dfn_fmaf(p, r, 1.0f);
    return p;
}

#endif

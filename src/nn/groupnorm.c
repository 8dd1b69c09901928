/* groupnorm.c - Group Normalization (Wu & He, "Group Normalization", ECCV 2018),
 * optionally fused with the SiLU that follows it in every U-Net block, and with
 * the elementwise work of a ResBlock around its second GroupNorm (nn.h's
 * dfn_groupnorm_fusion: the time embedding's broadcast add before it, dropout
 * after it), done in the same task's passes while its block is in cache.
 *
 * One task per (image, group): the group's C/G channels x HW values are
 * contiguous in NCHW, so a task reads one block of memory, which stays in L1/L2
 * across the task's passes. Statistics use the corrected two-pass algorithm
 * (Chan, Golub & LeVeque 1983): mean, then the sums of d = x - mean and d^2,
 * var = (sum d^2 - (sum d)^2 / M) / M; partial sums run in 32 float lanes over
 * blocks of at most SUM_BLOCK values and are combined in double. The weight and
 * bias gradients are per-(image, channel) partials reduced over the batch in
 * image order after the parallel loop, so every result is bit-identical for any
 * thread count. Tasks are handed out statically, a contiguous run of images per
 * thread, as the convolutions around it do, so that each core reads what it
 * wrote (which thread runs a task changes nothing in its result). */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "nn/kernels.h"
#include "nn/silu.h"
#include "nn/sum_f32.h"

/* Partial sums run in 32 float lanes: two 16-float vectors of GNU C's vector
 * extension (one AVX-512 register each at the avx512 level, two AVX registers at
 * avx2, four SSE2/NEON registers at generic: this file is compiled once per level,
 * kernels.h, always with the same order of operations), so the adds form
 * independent chains that stay in registers; a last
 * 16 values go to the first vector. Each lane takes at most SUM_BLOCK / 32 + 1
 * = 17 values; then the lanes are converted and added into 16 double lanes,
 * which are summed in lane order at the end; the last n % 16 values are added
 * in double. The order depends only on n, and float rounding never builds up. */
typedef float f32x16 __attribute__((vector_size(64)));
typedef double f64x16 __attribute__((vector_size(128)));
/* 16 floats at any address (the usual GNU C idiom for an unaligned vector load) */
typedef float f32x16u __attribute__((vector_size(64), aligned(4), may_alias));
#define LOAD16(p) (*(const f32x16u *)(p))
/* the double lanes of acc += a + b. Macros, not functions: no vector is passed
 * by value, so no ABI question arises on targets without AVX-512. */
#define FLUSH(acc, a, b) \
    ((acc) += __builtin_convertvector((a), f64x16) + __builtin_convertvector((b), f64x16))
#define SUM_BLOCK 512
/* Below this many values the layer runs on the calling thread. */
#define GN_SERIAL 32768

static inline double lanes_sum(const f64x16 *v) {
    double s = 0.0;
    for (int k = 0; k < 16; k++) s += (*v)[k];
    return s;
}

/* s1 = sum x, over x (n), in a fixed order. */
static double sum1(const float *restrict x, size_t n) {
    f64x16 acc = {0};
    size_t i = 0;
    while (i + 16 <= n) {
        const size_t e = DFN_MIN(n, i + SUM_BLOCK);
        f32x16 a = {0}, b = {0};
        for (; i + 32 <= e; i += 32) {
            a += LOAD16(x + i);
            b += LOAD16(x + i + 16);
        }
        if (i + 16 <= e) { /* the last 16 of the last block */
            a += LOAD16(x + i);
            i += 16;
        }
        FLUSH(acc, a, b);
    }
    double s = lanes_sum(&acc);
    for (; i < n; i++) s += x[i];
    return s;
}

/* s1 = sum (x - c), s2 = sum (x - c)^2, over x (n), in a fixed order. */
static void sum_dev(const float *restrict x, size_t n, float c, double *s1, double *s2) {
    f64x16 acc1 = {0}, acc2 = {0};
    size_t i = 0;
    while (i + 16 <= n) {
        const size_t e = DFN_MIN(n, i + SUM_BLOCK);
        f32x16 a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0};
        for (; i + 32 <= e; i += 32) {
            const f32x16 da = LOAD16(x + i) - c, db = LOAD16(x + i + 16) - c;
            a1 += da;
            b1 += db;
            a2 += da * da;
            b2 += db * db;
        }
        if (i + 16 <= e) {
            const f32x16 da = LOAD16(x + i) - c;
            a1 += da;
            a2 += da * da;
            i += 16;
        }
        FLUSH(acc1, a1, b1);
        FLUSH(acc2, a2, b2);
    }
    double t1 = lanes_sum(&acc1), t2 = lanes_sum(&acc2);
    for (; i < n; i++) {
        const double d = x[i] - c;
        t1 += d;
        t2 += d * d;
    }
    *s1 = t1;
    *s2 = t2;
}

/* s1 = sum g, s2 = sum g (x - c), over g, x (n), in a fixed order. */
static void sum_grad(const float *restrict g, const float *restrict x, size_t n, float c,
                     double *s1, double *s2) {
    f64x16 acc1 = {0}, acc2 = {0};
    size_t i = 0;
    while (i + 16 <= n) {
        const size_t e = DFN_MIN(n, i + SUM_BLOCK);
        f32x16 a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0};
        for (; i + 32 <= e; i += 32) {
            const f32x16 ga = LOAD16(g + i), gb = LOAD16(g + i + 16);
            a1 += ga;
            b1 += gb;
            a2 += ga * (LOAD16(x + i) - c);
            b2 += gb * (LOAD16(x + i + 16) - c);
        }
        if (i + 16 <= e) {
            const f32x16 ga = LOAD16(g + i);
            a1 += ga;
            a2 += ga * (LOAD16(x + i) - c);
            i += 16;
        }
        FLUSH(acc1, a1, b1);
        FLUSH(acc2, a2, b2);
    }
    double t1 = lanes_sum(&acc1), t2 = lanes_sum(&acc2);
    for (; i < n; i++) {
        t1 += g[i];
        t2 += (double)g[i] * (double)(x[i] - c);
    }
    *s1 = t1;
    *s2 = t2;
}

/* y (n) = (x (n) - mu) a + b: the affine-normalised values of one channel.
 * Forward and backward both use this exact expression, so the backward's
 * recomputed pre-activation is bit-identical to the forward's. */
static void norm_affine(float *restrict y, const float *restrict x, size_t n, float mu, float a,
                        float b) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = (x[i] - mu) * a + b;
}

/* y (n) = silu((x (n) - mu) a + b): norm_affine and SiLU in one pass, the same
 * bits as the two in turn. lo, hi: exp_bounds. */
static void norm_affine_silu(float *restrict y, const float *restrict x, size_t n, float mu, float a,
                             float b, float lo, float hi) {
#pragma omp simd simdlen(16)
    for (size_t i = 0; i < n; i++) y[i] = silu_f32((x[i] - mu) * a + b, lo, hi);
}

/* GroupNorm, Wu & He 2018 eq. 1-3, per image n and group g of C/G channels:
 *   mu = mean(x over the group's C/G x HW values), var = the biased variance,
 *   y[c,i] = (x[c,i] - mu) / sqrt(var + eps) * gamma_c + beta_c,
 * then out = silu(y) = y / (1 + e^-y) if silu, else out = y (torch.nn.GroupNorm
 * (G, C, eps) then torch.nn.SiLU). out, inp (N,C,HW); weight = gamma, bias = beta
 * (C) or NULL for 1 and 0; mean, rstd = 1/sqrt(var + eps) (N,G) saved for backward.
 * With f (nn.h's dfn_groupnorm_fusion), each task first adds its channels' shift
 * into inp, and the normalised values go through dropout on their way to out. */
void DFN_K(dfn_groupnorm_fused_forward)(float *out, float *mean, float *rstd, float *inp,
                                        const dfn_groupnorm_fusion *f, const float *weight,
                                        const float *bias, int N, int C, int HW, int G, float eps,
                                        int silu) {
    DFN_ASSERT(out && mean && rstd && inp);
    DFN_ASSERT(N >= 0 && C > 0 && HW > 0 && G > 0 && C % G == 0);
    const int cpg = C / G;
    const size_t M = (size_t)cpg * HW; /* values per group */
    const long tasks = (long)N * G;
    const float lo = exp_bounds[0], hi = exp_bounds[1];
    const float *shift = f ? f->shift : NULL;
    const int drop = f && f->p > 0.0f;
#pragma omp parallel for schedule(static) if (tasks * (long)M >= GN_SERIAL)
    for (long t = 0; t < tasks; t++) {
        const int n = (int)(t / G), g = (int)(t % G);
        const size_t off = ((size_t)n * C + (size_t)g * cpg) * HW;
        float *x = inp + off;
        float *y = out + off;
        if (shift) /* x[c,:] += shift[n,c]: dfn_add_channel_forward's sums */
            for (int k = 0; k < cpg; k++) {
                float *restrict xc = x + (size_t)k * HW;
                const float v = shift[(size_t)n * C + (size_t)g * cpg + k];
#pragma omp simd
                for (int i = 0; i < HW; i++) xc[i] += v;
            }
        /* pass 1: a first mean; pass 2: corrected mean and variance */
        float mu0 = (float)(sum1(x, M) / (double)M);
        double s1, s2;
        sum_dev(x, M, mu0, &s1, &s2);
        double dm = s1 / (double)M;
        double var = s2 / (double)M - dm * dm;
        if (var < 0.0) var = 0.0;
        float mu = (float)((double)mu0 + dm);
        float rs = (float)(1.0 / sqrt(var + (double)eps));
        mean[t] = mu;
        rstd[t] = rs;
        /* pass 3: normalise, scale, shift (and SiLU), then dropout into out from
         * the thread's scratch */
        float *z = drop ? dfn_scratch(0, M) : y;
        for (int k = 0; k < cpg; k++) {
            const int c = g * cpg + k;
            const float gam = weight ? weight[c] : 1.0f, bet = bias ? bias[c] : 0.0f;
            if (silu) norm_affine_silu(z + (size_t)k * HW, x + (size_t)k * HW, (size_t)HW, mu, rs * gam, bet, lo, hi);
            else norm_affine(z + (size_t)k * HW, x + (size_t)k * HW, (size_t)HW, mu, rs * gam, bet);
        }
        if (drop) DFN_K(dfn_dropout_span)(y, z, off, off + M, f->p, f->seed, f->block, 0);
    }
}

/* dy (n) = dout (n) silu'(y), y = (x (n) - mu) a + b recomputed as norm_affine
 * does (0 + the product: the bits of silu_backward onto zeros). */
static void silu_grad_affine(float *restrict dy, const float *restrict dout, const float *restrict x, size_t n,
                             float mu, float a, float b, float lo, float hi) {
#pragma omp simd simdlen(16)
    for (size_t i = 0; i < n; i++) dy[i] = 0.0f + dout[i] * silu_grad_f32((x[i] - mu) * a + b, lo, hi);
}

/* dinp[i] (n) (+)= a dy[i] + (x[i] - mu) k + k0 (the GroupNorm input gradient,
 * below); set: onto 0, the bits of accumulating onto zeros. */
static void gn_dinp(float *restrict dinp, const float *restrict dy, const float *restrict x,
                    size_t n, float mu, float a, float k, float k0, int set) {
    if (set) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) dinp[i] = 0.0f + (a * dy[i] + ((x[i] - mu) * k + k0));
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) dinp[i] += a * dy[i] + ((x[i] - mu) * k + k0);
    }
}

/* Backward of the forward above, out = [silu](y), y = xhat gamma_c + beta_c,
 * xhat = (x - mu) rstd, over a group of M = C/G x HW values:
 *   dy     = dout                       (silu = 0)
 *          = dout s (1 + y (1 - s)),  s = sigmoid(y)   (silu = 1; y recomputed)
 *   dgamma_c += sum_{n,i} dy xhat,  dbeta_c += sum_{n,i} dy,
 *   dx = rstd (gamma_c dy - S1/M - xhat S2/M),  S1 = sum dy gamma,  S2 = sum dy gamma xhat
 * (sums over the group). dweight, dbias (C) accumulate; dinp (N,C,HW) accumulates,
 * or is set where dinp_set; each may be NULL. dout, inp (N,C,HW); weight, bias (C)
 * or NULL; mean, rstd (N,G). With f, dout goes through the forward's dropout mask
 * first; dshift (N,C), with dinp, accumulates the sums of dinp over HW. */
void DFN_K(dfn_groupnorm_fused_backward)(float *dinp, int dinp_set, float *dshift, float *dweight,
                                         float *dbias, const float *dout, const dfn_groupnorm_fusion *f,
                                         const float *inp, const float *weight, const float *bias,
                                         const float *mean, const float *rstd, int N, int C, int HW,
                                         int G, int silu) {
    if (!dinp && !dweight && !dbias) return;
    DFN_ASSERT(dout && inp && mean && rstd && (!dshift || dinp));
    DFN_ASSERT(N >= 0 && C > 0 && HW > 0 && G > 0 && C % G == 0);
    const int cpg = C / G;
    const size_t M = (size_t)cpg * HW;
    const long tasks = (long)N * G;
    /* per-(image, channel) partials of dgamma and dbeta, reduced in image order below */
    const int want_wb = dweight || dbias;
    double *pw = want_wb ? (double *)dfn_scratch(1, 4 * (size_t)N * C) : NULL;
    double *pb = want_wb ? pw + (size_t)N * C : NULL;
    const float lo = exp_bounds[0], hi = exp_bounds[1];
    const int drop = f && f->p > 0.0f;
#pragma omp parallel for schedule(static) if (tasks * (long)M >= GN_SERIAL)
    for (long t = 0; t < tasks; t++) {
        const int n = (int)(t / G), g = (int)(t % G);
        const size_t off = ((size_t)n * C + (size_t)g * cpg) * HW;
        const float *x = inp + off;
        const float mu = mean[t], rs = rstd[t];
        const float *dy = dout + off;
        if (drop) { /* dout m / (1 - p) onto zeros: dfn_dropout_backward's bits */
            float *dd = dfn_scratch(2, M);
            memset(dd, 0, M * sizeof(float));
            DFN_K(dfn_dropout_span)(dd, dy, off, off + M, f->p, f->seed, f->block, 1);
            dy = dd;
        }
        if (silu) {
            /* dy = silu'(y) dout with y recomputed exactly as in the forward */
            float *dyb = dfn_scratch(0, M);
            for (int k = 0; k < cpg; k++) {
                const int c = g * cpg + k;
                const float gam = weight ? weight[c] : 1.0f, bet = bias ? bias[c] : 0.0f;
                silu_grad_affine(dyb + (size_t)k * HW, dy + (size_t)k * HW, x + (size_t)k * HW, (size_t)HW, mu,
                                 rs * gam, bet, lo, hi);
            }
            dy = dyb;
        }
        double S1 = 0.0, S2 = 0.0;
        for (int k = 0; k < cpg; k++) {
            const int c = g * cpg + k;
            const double gam = weight ? weight[c] : 1.0;
            double sdy, sdyx;
            sum_grad(dy + (size_t)k * HW, x + (size_t)k * HW, (size_t)HW, mu, &sdy, &sdyx);
            const double sdyxhat = sdyx * rs; /* sum dy xhat over the channel */
            if (want_wb) {
                pw[(size_t)n * C + c] = sdyxhat;
                pb[(size_t)n * C + c] = sdy;
            }
            S1 += gam * sdy;
            S2 += gam * sdyxhat;
        }
        if (dinp) {
            const float k1 = (float)(-(double)rs * (double)rs * S2 / (double)M);
            const float k0 = (float)(-(double)rs * S1 / (double)M);
            for (int k = 0; k < cpg; k++) {
                const int c = g * cpg + k;
                const float gam = weight ? weight[c] : 1.0f;
                gn_dinp(dinp + off + (size_t)k * HW, dy + (size_t)k * HW, x + (size_t)k * HW,
                        (size_t)HW, mu, rs * gam, k1, k0, dinp_set);
                if (dshift) /* dfn_add_channel_backward's sums */
                    dshift[(size_t)n * C + c] += (float)sum_f32(dinp + off + (size_t)k * HW, (size_t)HW);
            }
        }
    }
    if (want_wb) {
        for (int c = 0; c < C; c++) {
            double sw = 0.0, sb = 0.0;
            for (int n = 0; n < N; n++) {
                sw += pw[(size_t)n * C + c];
                sb += pb[(size_t)n * C + c];
            }
            if (dweight) dweight[c] += (float)sw;
            if (dbias) dbias[c] += (float)sb;
        }
    }
}

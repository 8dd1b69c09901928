/* test_conv2d_bf16.c - conv2d with bfloat16 products (dfn_set_precision):
 * forward, backward data and the Winograd weight gradient against float64 sums,
 * each output within the error that bfloat16 rounding predicts for it; the other
 * weight gradients, the bias and small convolutions float32 bit for bit; which
 * shapes run bfloat16 stated per shape; bit-identical results for 1, 2 and 3
 * threads; the setting's errors.
 *
 * The bound. Rounding to bfloat16 (8 significant bits, to nearest) changes a
 * number by at most u = 2^-8 of it (no input here is near the denormals, which
 * the conversion and vdpbf16ps flush), so a product of two rounded numbers is
 * within a factor (1 + u)^2 of |x w|; the float32 sum of K such terms (float32
 * unit e = 2^-24) is within gamma_K ~ K e of the sum of their magnitudes
 * (Higham, Accuracy and Stability, 3.1). Direct convolution, output y:
 *   |y_bf16 - y| <= ((1 + u)^2 (1 + (K + 2) e) - 1) sum_k |w_k| |x_k|.
 * Winograd F(2x2,3x3) rounds the transformed operands U = G g G^T and
 * V = B^T d B instead (their own float32 rounding a few e), and the output
 * transform adds the 16 products with coefficients 0 or +-1, so with
 * |U| <= |G| |g| |G^T| and |V| <= |B^T| |d| |B|:
 *   |y_bf16 - y| <= ((1 + u)^2 (1 + (C + 16) e) - 1)
 *                   sum_xi |A^T (x) A^T|_{y, xi} sum_c (|G||g_c||G^T|)_xi (|B^T||d_c||B|)_xi.
 * Gradients accumulate onto random values: one more float32 rounding, e of the
 * result, is added to their bounds.
 * The weight gradient of a 3x3 "same" conv with C >= 32 runs as Winograd
 * F(3x3, 2x2), dW = G^T [sum_tiles (A g A^T) .* (B^T d B)] G (conv2d_backward.c),
 * its products bfloat16 and summed over the T tiles of the batch in float32:
 *   |dW_bf16 - dW| <= ((1 + u)^2 (1 + (T + 16) e) - 1)
 *                     sum_{a,b} |G|_{a,kh} |G|_{b,kw} sum_tiles (|A||g||A^T|)_ab (|B^T||d||B|)_ab;
 * the other weight gradients and the bias stay float32, bit for bit.
 * A test that ran float32 by mistake would pass the bound: it also checks that
 * the result differs from float32 by far more than float32's own error. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "nn/kernels.h"
#include "nn/nn.h"
#include "test_util.h"

#define U_BF16 (1.0 / 256.0)
#define U_FP32 (1.0 / 16777216.0)

/* The factor of the header's bounds for sums of k float32 terms. */
static double bound_factor(double k) { return (1 + U_BF16) * (1 + U_BF16) * (1 + k * U_FP32) - 1; }

static float *alloc_fill(size_t n, unsigned seed) {
    float *x = dfn_malloc(n * sizeof(float) + 64);
    fill_uniform(x, n, seed);
    return x;
}

static size_t out_size(const dfn_conv2d_shape *s) {
    return (size_t)s->N * s->OC * dfn_conv2d_out_h(s) * dfn_conv2d_out_w(s);
}

/* y = conv(x, w) in float64 and, per output, the bound of the direct algorithm. */
static void conv_double(double *y, double *bound, const float *x, const float *w, const dfn_conv2d_shape *s) {
    const int OH = dfn_conv2d_out_h(s), OW = dfn_conv2d_out_w(s), K = s->C * s->KH * s->KW;
    for (int n = 0; n < s->N; n++)
        for (int oc = 0; oc < s->OC; oc++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double sum = 0, mag = 0;
                    for (int c = 0; c < s->C; c++)
                        for (int kh = 0; kh < s->KH; kh++)
                            for (int kw = 0; kw < s->KW; kw++) {
                                const int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                const double p = (double)w[(((size_t)oc * s->C + c) * s->KH + kh) * s->KW + kw] *
                                                 x[(((size_t)n * s->C + c) * s->H + ih) * s->W + iw];
                                sum += p;
                                mag += fabs(p);
                            }
                    const size_t o = (((size_t)n * s->OC + oc) * OH + oh) * OW + ow;
                    y[o] = sum;
                    bound[o] = bound_factor(K + 2) * mag;
                }
}

/* The Winograd bound of the header for a 3x3 "same" stride-1 conv. */
static void winograd_bound(double *bound, const float *x, const float *w, const dfn_conv2d_shape *s) {
    static const double G[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, .5, .5}, {0, 0, 1}}; /* |G| */
    static const double BT[4][4] = {{1, 0, 1, 0}, {0, 1, 1, 0}, {0, 1, 1, 0}, {0, 1, 0, 1}}; /* |B^T| */
    static const double AT[2][4] = {{1, 1, 1, 0}, {0, 1, 1, 1}};                                /* |A^T| */
    const int H = s->H, W = s->W, TH = (H + 1) / 2, TW = (W + 1) / 2;
    double *Q = malloc(sizeof(double) * 16 * s->OC * s->C); /* |G||g||G^T| per (oc, c) */
    for (int oc = 0; oc < s->OC; oc++)
        for (int c = 0; c < s->C; c++) {
            const float *g = w + ((size_t)oc * s->C + c) * 9;
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) {
                    double q = 0;
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++) q += G[a][i] * fabs(g[3 * i + j]) * G[b][j];
                    Q[((size_t)oc * s->C + c) * 16 + 4 * a + b] = q;
                }
        }
    double *P = malloc(sizeof(double) * 16 * s->C); /* |B^T||d||B| of one tile per channel */
    for (int n = 0; n < s->N; n++)
        for (int ty = 0; ty < TH; ty++)
            for (int tx = 0; tx < TW; tx++) {
                for (int c = 0; c < s->C; c++) {
                    double d[4][4];
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++) {
                            const int ih = 2 * ty - 1 + i, iw = 2 * tx - 1 + j;
                            d[i][j] = ih < 0 || ih >= H || iw < 0 || iw >= W
                                          ? 0
                                          : fabs(x[(((size_t)n * s->C + c) * H + ih) * W + iw]);
                        }
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++) {
                            double p = 0;
                            for (int i = 0; i < 4; i++)
                                for (int j = 0; j < 4; j++) p += BT[a][i] * d[i][j] * BT[b][j];
                            P[c * 16 + 4 * a + b] = p;
                        }
                }
                for (int oc = 0; oc < s->OC; oc++) {
                    double m[16] = {0}; /* sum_c Q P per xi */
                    for (int c = 0; c < s->C; c++)
                        for (int xi = 0; xi < 16; xi++) m[xi] += Q[((size_t)oc * s->C + c) * 16 + xi] * P[c * 16 + xi];
                    for (int r = 0; r < 2 && 2 * ty + r < H; r++)
                        for (int q = 0; q < 2 && 2 * tx + q < W; q++) {
                            double sum = 0;
                            for (int a = 0; a < 4; a++)
                                for (int b = 0; b < 4; b++) sum += AT[r][a] * AT[q][b] * m[4 * a + b];
                            bound[(((size_t)n * s->OC + oc) * H + 2 * ty + r) * W + 2 * tx + q] =
                                bound_factor(s->C + 16) * sum;
                        }
                }
            }
    free(Q);
    free(P);
}

/* got (bfloat16) against the float64 y within bound; fp32 (the float32 result)
 * must differ from got by more than float32 could: bfloat16 ran. Where the conv
 * is too small for bfloat16 (bf16 = 0: dfn_conv2d_runs_bf16) got must be fp32's
 * bits instead. */
static void check_bound(const char *name, int bf16, const float *got, const float *fp32, const double *y,
                        const double *bound, size_t n) {
    if (!bf16) {
        CHECK(memcmp(got, fp32, n * sizeof(float)) == 0, "%s: not the float32 result", name);
        printf("%-58s float32 (too small for bfloat16)\n", name);
        return;
    }
    double worst = 0, scale = 0, diff32 = 0;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs(got[i] - y[i]);
        if (!(e <= bound[i])) {
            if (!bad) first = i;
            bad++;
        }
        if (bound[i] > 0 && e / bound[i] > worst) worst = e / bound[i];
        scale = fmax(scale, fabs(y[i]));
        diff32 = fmax(diff32, fabs((double)got[i] - fp32[i]));
    }
    CHECK(bad == 0, "%s: %zu of %zu outputs outside the bfloat16 bound (first [%zu]: got %.8g, want %.8g, bound %.3g)",
          name, bad, n, first, got[first], y[first], bound[first]);
    CHECK(diff32 > 1e-4 * scale, "%s: bfloat16 result within %.3g of float32 (scale %.3g): no bfloat16 products ran",
          name, diff32, scale);
    printf("%-58s worst error / bound %.3f, |bf16 - fp32| / scale %.2e\n", name, worst, diff32 / scale);
}

/* dW in float64 and the bound of its Winograd form (header) for a 3x3 "same" conv. */
static void weight_grad_double(double *dw, double *bound, const float *x, const float *g, const dfn_conv2d_shape *s) {
    static const double G[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, .5, .5}, {0, 0, 1}};    /* |G| */
    static const double A[4][2] = {{1, 0}, {1, 1}, {1, 1}, {0, 1}};                       /* |A| */
    static const double BT[4][4] = {{1, 0, 1, 0}, {0, 1, 1, 0}, {0, 1, 1, 0}, {0, 1, 0, 1}}; /* |B^T| */
    const int H = s->H, W = s->W, TH = (H + 1) / 2, TW = (W + 1) / 2;
    const size_t nw = (size_t)s->OC * s->C * 9;
    double *m = calloc(nw / 9 * 16, sizeof(double)); /* sum over tiles of |U||V| per (oc, c, xi) */
    memset(dw, 0, nw * sizeof(double));
    for (int n = 0; n < s->N; n++)
        for (int oc = 0; oc < s->OC; oc++)
            for (int c = 0; c < s->C; c++) {
                const float *gi = g + ((size_t)n * s->OC + oc) * H * W, *xi = x + ((size_t)n * s->C + c) * H * W;
                double *d = dw + ((size_t)oc * s->C + c) * 9;
                for (int oh = 0; oh < H; oh++)
                    for (int ow = 0; ow < W; ow++)
                        for (int kh = 0; kh < 3; kh++)
                            for (int kw = 0; kw < 3; kw++) {
                                const int ih = oh - 1 + kh, iw = ow - 1 + kw;
                                if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                    d[kh * 3 + kw] += (double)gi[oh * W + ow] * xi[ih * W + iw];
                            }
                for (int ty = 0; ty < TH; ty++)
                    for (int tx = 0; tx < TW; tx++) {
                        double gt[2][2], dt[4][4];
                        for (int i = 0; i < 2; i++)
                            for (int j = 0; j < 2; j++) {
                                const int oh = 2 * ty + i, ow = 2 * tx + j;
                                gt[i][j] = oh < H && ow < W ? fabs(gi[oh * W + ow]) : 0;
                            }
                        for (int i = 0; i < 4; i++)
                            for (int j = 0; j < 4; j++) {
                                const int ih = 2 * ty - 1 + i, iw = 2 * tx - 1 + j;
                                dt[i][j] = ih >= 0 && ih < H && iw >= 0 && iw < W ? fabs(xi[ih * W + iw]) : 0;
                            }
                        for (int a = 0; a < 4; a++)
                            for (int b = 0; b < 4; b++) {
                                double u = 0, v = 0;
                                for (int i = 0; i < 2; i++)
                                    for (int j = 0; j < 2; j++) u += A[a][i] * gt[i][j] * A[b][j];
                                for (int i = 0; i < 4; i++)
                                    for (int j = 0; j < 4; j++) v += BT[a][i] * dt[i][j] * BT[b][j];
                                m[((size_t)oc * s->C + c) * 16 + 4 * a + b] += u * v;
                            }
                    }
            }
    const double k = bound_factor((double)s->N * TH * TW + 16);
    for (size_t w = 0; w < nw / 9; w++)
        for (int kh = 0; kh < 3; kh++)
            for (int kw = 0; kw < 3; kw++) {
                double sum = 0;
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++) sum += G[a][kh] * G[b][kw] * m[w * 16 + 4 * a + b];
                bound[w * 9 + kh * 3 + kw] = k * sum;
            }
    free(m);
}

static int winograd_runs(const dfn_conv2d_shape *s) { return dfn_nn_kernels_current()->conv2d_winograd_fits(s); }

/* A shape and where it must run bfloat16: forward (and its Winograd weight
 * gradient), backward data (stride 1). */
typedef struct {
    dfn_conv2d_shape s;
    int fwd, bwd;
} bf16_case;

/* The gradients start from random values r; y (float64) and its bound become
 * those of r + y. */
static void accumulated(double *y, double *bound, const float *r, size_t n) {
    for (size_t i = 0; i < n; i++) {
        y[i] += r[i];
        bound[i] += U_FP32 * (fabs(y[i]) + bound[i]);
    }
}

static void test_shape(bf16_case cs) {
    const dfn_conv2d_shape s = cs.s;
    char name[160];
    const size_t nin = (size_t)s.N * s.C * s.H * s.W, nw = (size_t)s.OC * s.C * s.KH * s.KW, nout = out_size(&s);
    float *x = alloc_fill(nin, 1), *w = alloc_fill(nw, 2), *b = alloc_fill(s.OC, 3), *dout = alloc_fill(nout, 4);
    float *y16 = dfn_malloc(nout * sizeof(float)), *y32 = dfn_malloc(nout * sizeof(float));
    double *y = dfn_malloc(nout * sizeof(double)), *bound = dfn_malloc(nout * sizeof(double));

    /* forward, no bias (the bias is added in float32 either way) */
    dfn_set_precision(DFN_PRECISION_BF16);
    dfn_conv2d_forward(y16, x, w, NULL, &s);
    dfn_set_precision(DFN_PRECISION_FP32);
    dfn_conv2d_forward(y32, x, w, NULL, &s);
    conv_double(y, bound, x, w, &s);
    if (winograd_runs(&s)) winograd_bound(bound, x, w, &s);
    snprintf(name, sizeof name, "forward N%d C%d %dx%d OC%d k%d s%d p%d%s", s.N, s.C, s.H, s.W, s.OC, s.KH,
             s.stride, s.pad, winograd_runs(&s) ? " (winograd)" : "");
    dfn_set_precision(DFN_PRECISION_BF16);
    const int fwd16 = dfn_conv2d_runs_bf16(&s);
    dfn_set_precision(DFN_PRECISION_FP32);
    CHECK(fwd16 == cs.fwd, "%s: runs %s, want %s", name, fwd16 ? "bfloat16" : "float32", cs.fwd ? "bfloat16" : "float32");
    check_bound(name, fwd16, y16, y32, y, bound, nout);

    /* backward, accumulating onto random gradients: data as the conv of dout by the
     * flipped, transposed kernel (stride 1), the Winograd weight gradient; the
     * other weight gradients, the bias and strided data stay float32 bit for bit */
    float *gi16 = alloc_fill(nin, 5), *gw16 = alloc_fill(nw, 6), *gb16 = alloc_fill(s.OC, 7);
    float *gi32 = alloc_fill(nin, 5), *gw32 = alloc_fill(nw, 6), *gb32 = alloc_fill(s.OC, 7);
    float *gi0 = alloc_fill(nin, 5), *gw0 = alloc_fill(nw, 6);
    dfn_set_precision(DFN_PRECISION_BF16);
    dfn_conv2d_backward(gi16, gw16, gb16, dout, x, w, &s);
    dfn_set_precision(DFN_PRECISION_FP32);
    dfn_conv2d_backward(gi32, gw32, gb32, dout, x, w, &s);
    CHECK(memcmp(gb16, gb32, s.OC * sizeof(float)) == 0, "%s: the bias gradient is not the float32 one", name);
    if (s.C >= 32 && s.KH == 3 && s.KW == 3 && s.stride == 1 && s.pad == 1) { /* Winograd dW, bfloat16 */
        double *gw = dfn_malloc(nw * sizeof(double)), *gwb = dfn_malloc(nw * sizeof(double));
        weight_grad_double(gw, gwb, x, dout, &s);
        accumulated(gw, gwb, gw0, nw);
        snprintf(name, sizeof name, "backward weight N%d C%d %dx%d OC%d (winograd)", s.N, s.C, s.H, s.W, s.OC);
        check_bound(name, fwd16, gw16, gw32, gw, gwb, nw);
        free(gw), free(gwb);
    } else {
        CHECK(memcmp(gw16, gw32, nw * sizeof(float)) == 0, "%s: the weight gradient is not the float32 one", name);
    }
    if (s.stride == 1 && s.KH == s.KW) {
        const dfn_conv2d_shape t = {s.N, s.OC, dfn_conv2d_out_h(&s), dfn_conv2d_out_w(&s), s.C,
                                    s.KH, s.KW, 1, s.KH - 1 - s.pad};
        float *wt = dfn_malloc(nw * sizeof(float)); /* wt[c][oc][kh][kw] = w[oc][c][K-1-kh][K-1-kw] */
        const int KK = s.KH * s.KW;
        for (int oc = 0; oc < s.OC; oc++)
            for (int c = 0; c < s.C; c++)
                for (int k = 0; k < KK; k++)
                    wt[((size_t)c * s.OC + oc) * KK + k] = w[((size_t)oc * s.C + c) * KK + KK - 1 - k];
        double *gi = dfn_malloc(nin * sizeof(double)), *gbound = dfn_malloc(nin * sizeof(double));
        conv_double(gi, gbound, dout, wt, &t);
        if (winograd_runs(&t)) winograd_bound(gbound, dout, wt, &t);
        accumulated(gi, gbound, gi0, nin);
        snprintf(name, sizeof name, "backward data N%d C%d %dx%d OC%d k%d p%d%s", s.N, s.C, s.H, s.W, s.OC,
                 s.KH, s.pad, winograd_runs(&t) ? " (winograd)" : "");
        dfn_set_precision(DFN_PRECISION_BF16);
        const int bwd16 = dfn_conv2d_runs_bf16(&t);
        dfn_set_precision(DFN_PRECISION_FP32);
        CHECK(bwd16 == cs.bwd, "%s: runs %s, want %s", name, bwd16 ? "bfloat16" : "float32",
              cs.bwd ? "bfloat16" : "float32");
        check_bound(name, bwd16, gi16, gi32, gi, gbound, nin);
        free(wt), free(gi), free(gbound);
    } else {
        CHECK(memcmp(gi16, gi32, nin * sizeof(float)) == 0, "%s: strided backward data is not the float32 one", name);
    }
    free(gi0), free(gw0);
    free(x), free(w), free(b), free(dout), free(y16), free(y32), free(y), free(bound);
    free(gi16), free(gw16), free(gb16), free(gi32), free(gw32), free(gb32);
}

/* Forward and backward in bfloat16 with `threads` threads, concatenated. */
static float *run_bf16(const dfn_conv2d_shape *s, int threads, size_t *len) {
    const size_t nin = (size_t)s->N * s->C * s->H * s->W, nw = (size_t)s->OC * s->C * s->KH * s->KW,
                 nout = out_size(s);
    float *x = alloc_fill(nin, 11), *w = alloc_fill(nw, 12), *b = alloc_fill(s->OC, 13), *dout = alloc_fill(nout, 14);
    *len = nout + nin + nw + s->OC;
    float *res = dfn_calloc(*len, sizeof(float));
    omp_set_num_threads(threads);
    dfn_set_precision(DFN_PRECISION_BF16);
    dfn_conv2d_forward(res, x, w, b, s);
    dfn_conv2d_backward(res + nout, res + nout + nin, res + nout + nin + nw, dout, x, w, s);
    dfn_set_precision(DFN_PRECISION_FP32);
#pragma omp parallel
    dfn_scratch_release();
    omp_set_num_threads(2);
    free(x), free(w), free(b), free(dout);
    return res;
}

#define SHAPE(N, C, H, W, OC, KH, KW, S, P) ((dfn_conv2d_shape){N, C, H, W, OC, KH, KW, S, P})

int main(void) {
    CHECK(!strcmp(dfn_precision_name(DFN_PRECISION_BF16), "bf16") && dfn_precision_from_name("fp32") == 0 &&
              dfn_precision_from_name("fp16") == -1 && strstr(dfn_last_error(), "bf16"),
          "precision names: %s", dfn_last_error());
    CHECK(dfn_set_precision((dfn_precision)7) == DFN_ERR_ARG && dfn_get_precision() == DFN_PRECISION_FP32,
          "dfn_set_precision(7) accepted");
    if (!dfn_cpu_has_bf16()) {
        CHECK(dfn_set_precision(DFN_PRECISION_BF16) == DFN_ERR_ARG && dfn_get_precision() == DFN_PRECISION_FP32,
              "bfloat16 accepted on a CPU without AVX512_BF16");
        printf("SKIPPED: this CPU has no AVX512_BF16 (the error above is checked)\n");
        return test_failed ? 1 : 77;
    }
    /* bfloat16 lives in the avx512 kernels: refused with another level in use, and
     * another level refused while it is set */
    CHECK(dfn_set_isa(DFN_ISA_AVX2) == DFN_OK, "avx2: %s", dfn_last_error());
    CHECK(dfn_set_precision(DFN_PRECISION_BF16) == DFN_ERR_ARG && strstr(dfn_last_error(), "avx512") &&
              dfn_get_precision() == DFN_PRECISION_FP32,
          "bfloat16 refused with the avx2 kernels: %s", dfn_last_error());
    CHECK(dfn_set_isa(DFN_ISA_AVX512) == DFN_OK, "avx512: %s", dfn_last_error());
    CHECK(dfn_set_precision(DFN_PRECISION_BF16) == DFN_OK && dfn_set_isa(DFN_ISA_GENERIC) == DFN_ERR_ARG &&
              dfn_get_isa() == DFN_ISA_AVX512,
          "another level refused while bfloat16 is set: %s", dfn_last_error());
    dfn_set_precision(DFN_PRECISION_FP32);

    /* {shape, forward (and Winograd dW) in bfloat16, backward data in bfloat16} */
    const bf16_case shapes[] = {
        {SHAPE(2, 3, 8, 8, 5, 3, 3, 1, 1), 0, 0},      /* too small: float32 */
        {SHAPE(16, 5, 8, 8, 16, 3, 3, 1, 1), 1, 0},    /* odd channels: a half-empty pair */
        {SHAPE(2, 5, 8, 8, 16, 3, 3, 1, 1), 0, 0},     /* batch too small (< 16 panels) */
        {SHAPE(1, 1, 28, 28, 32, 3, 3, 1, 1), 0, 0},   /* C = 1: float32 both ways */
        {SHAPE(4, 16, 28, 28, 16, 3, 3, 2, 1), 1, 0},  /* downsample (gathers) */
        {SHAPE(2, 9, 7, 7, 10, 3, 3, 2, 1), 0, 0},
        {SHAPE(17, 24, 7, 7, 17, 3, 3, 1, 1), 1, 1},   /* 7x7 direct, panels span images */
        {SHAPE(4, 20, 7, 7, 24, 1, 1, 1, 0), 0, 0},    /* 1x1: oneDNN's float32 products */
        {SHAPE(16, 40, 7, 7, 36, 1, 1, 1, 0), 0, 0},   /* ... at any size */
        {SHAPE(16, 40, 14, 14, 36, 1, 1, 2, 0), 1, 0}, /* 1x1 strided: direct, bfloat16 */
        {SHAPE(13, 17, 1, 1, 19, 1, 1, 1, 0), 0, 0},   /* P = 1 */
        {SHAPE(2, 4, 10, 9, 3, 5, 5, 1, 2), 0, 0},     /* 5x5, too few channels */
        {SHAPE(10, 8, 10, 9, 16, 5, 5, 1, 2), 1, 0},   /* 5x5 */
        {SHAPE(14, 17, 13, 15, 16, 3, 3, 1, 1), 1, 1}, /* Winograd: odd C, partial tiles and blocks */
        {SHAPE(4, 17, 29, 29, 20, 3, 3, 1, 1), 1, 1},  /* Winograd: widest window, ragged OC */
        {SHAPE(4, 24, 30, 30, 16, 3, 3, 1, 1), 1, 1},  /* Winograd forward and backward data */
        {SHAPE(7, 16, 16, 32, 20, 3, 3, 1, 1), 1, 1},  /* ... a full segment of 16 tiles */
        {SHAPE(3, 16, 20, 66, 16, 3, 3, 1, 1), 1, 1},  /* ... three segments, the last of one tile */
        {SHAPE(16, 40, 14, 14, 24, 3, 3, 1, 1), 1, 1}, /* ... pairs of tile rows, and Winograd dW */
        {SHAPE(17, 16, 13, 13, 16, 3, 3, 1, 1), 1, 1}, /* ... pairs across images (odd H, W) */
        {SHAPE(16, 64, 7, 7, 64, 3, 3, 1, 1), 1, 1},   /* the U-Net's 7x7 level */
        {SHAPE(12, 33, 9, 11, 17, 3, 3, 1, 1), 1, 1},  /* Winograd dW: odd sizes, ragged channels */
        {SHAPE(32, 40, 9, 9, 16, 3, 3, 2, 1), 1, 0},   /* strided: dW and data float32 */
        {SHAPE(2, 40, 9, 9, 13, 3, 3, 2, 1), 0, 0},
    };
    const dfn_conv2d_shape det_shapes[] = {
        SHAPE(16, 32, 28, 28, 32, 3, 3, 1, 1), /* Winograd */
        SHAPE(8, 64, 28, 28, 64, 3, 3, 2, 1),  /* direct, strided */
        SHAPE(32, 128, 7, 7, 128, 3, 3, 1, 1), /* direct */
        SHAPE(16, 64, 14, 14, 64, 3, 3, 2, 1), /* direct, strided, float32 dW and data */
    };
    /* both levels with bfloat16 where the CPU has them: avx512 (vdpbf16ps) and amx
     * (the products in AMX tiles), each held to the same bounds */
    for (int isa = DFN_ISA_AVX512; isa <= DFN_ISA_AMX; isa++) {
        if ((dfn_isa)isa > dfn_cpu_isa()) {
            printf("level %s: this CPU cannot run it, skipped\n", dfn_isa_name((dfn_isa)isa));
            continue;
        }
        CHECK(dfn_set_isa((dfn_isa)isa) == DFN_OK, "%s: %s", dfn_isa_name((dfn_isa)isa), dfn_last_error());
        printf("level %s\n", dfn_isa_name((dfn_isa)isa));
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) test_shape(shapes[i]);
        for (size_t i = 0; i < sizeof det_shapes / sizeof det_shapes[0]; i++) {
            size_t len, len2;
            float *r1 = run_bf16(&det_shapes[i], 1, &len);
            const int threads[] = {2, 3};
            for (int k = 0; k < 2; k++) {
                float *r = run_bf16(&det_shapes[i], threads[k], &len2);
                CHECK(memcmp(r1, r, len * sizeof(float)) == 0, "determinism shape %zu: %d threads differ from 1", i,
                      threads[k]);
                free(r);
            }
            free(r1);
        }
    }
#pragma omp parallel
    dfn_scratch_release();
    TEST_MAIN_END();
}

/* conv2d_backward.c - the backward pass of a conv2d through products with
 * panels of columns, at one instruction-set level (conv2d.c runs stride-1
 * backward data as a forward conv instead). Differentiates out = W col + bias:
 *   dinp  += col2im(W^T dout)                        (N,C,H,W)
 *   dW    += sum over columns of dout col^T           (OC, C*KH*KW)
 *   dbias += sum over columns of dout                 (OC)
 * Tasks: (image slot, channel block). A slot is a fixed range of images; its
 * weight gradient goes to its own partial, summed over slots in order at the
 * end. The weight gradient either
 *   - runs on channels-last copies of a few images at a time (C >= 32, KH*KW > 1):
 *       xt[g][pix][c] = inp[n0+g, c, pix],   gt[g][pix][oc] = dout[n0+g, oc, pix],
 *     so that for one tap (kh,kw) it is a product over pixels with both operands
 *     contiguous:  dW[oc,c,kh,kw] += sum_{g,oh,ow} gt[g][oh,ow][oc] * xt[g][ih,iw][c],
 *     ih = oh*S-P+kh, iw = ow*S-P+kw (only taps inside the image), summed in a
 *     DW_MR x DW_NR register tile (output x input channels), pixels ascending;
 *   - or im2col's the panels and multiplies with dfn_gemm (small C, where
 *     vectors over C would be mostly empty; 1x1, where the channels-last copies
 *     cost as much as the product). */
#include <string.h>

#include "nn/conv2d_internal.h"

/* dbias[oc] += sum_{n,p} dout[n,oc,p] in double: element p of every image goes to
 * lane p mod 32, and the lanes are summed at the end in a fixed order. */
void DFN_K(dfn_conv2d_backward_bias)(float *dbias, const float *dout, const dfn_conv2d_shape *s) {
    const int N = s->N, OC = s->OC;
    const int64_t P = (int64_t)dfn_conv2d_out_h(s) * dfn_conv2d_out_w(s);
#pragma omp parallel for schedule(static)
    for (int oc = 0; oc < OC; oc++) {
        double acc[32] = {0};
        for (int n = 0; n < N; n++) {
            const float *g = dout + ((int64_t)n * OC + oc) * P;
            int64_t p = 0;
            for (; p + 32 <= P; p += 32)
                for (int l = 0; l < 32; l++) acc[l] += g[p + l];
            for (int l = 0; p + l < P; l++) acc[l] += g[p + l];
        }
        double lanes[8], sum = 0;
        for (int l = 0; l < 8; l++) lanes[l] = (acc[l] + acc[8 + l]) + (acc[16 + l] + acc[24 + l]);
        for (int l = 0; l < 8; l++) sum += lanes[l];
        dbias[oc] += (float)sum;
    }
}

/* ------------------------------------------------------------ channels-last weight gradient */

/* dst[j*ldd + i] = src[i*lds + j] for i < rows, j < cols. */
#if VL == 16
static void transpose(float *restrict dst, ptrdiff_t ldd, const float *restrict src, ptrdiff_t lds,
                      int rows, int cols) {
    int i0 = 0;
    for (; i0 + 16 <= rows; i0 += 16) { /* 16x16 blocks in registers */
        int j0 = 0;
        for (; j0 + 16 <= cols; j0 += 16) {
            __m512 r[16], t[16];
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (ptrdiff_t)(i0 + i) * lds + j0);
            for (int i = 0; i < 16; i += 2) { /* per 128-bit lane: (r_i[4L+e], r_i+1[4L+e]) pairs */
                t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
                t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
            }
            for (int i = 0; i < 16; i += 4) { /* r[i+e], lane L: rows i..i+3, element 4L+e */
                __m512d a0 = _mm512_castps_pd(t[i]), a1 = _mm512_castps_pd(t[i + 1]);
                __m512d a2 = _mm512_castps_pd(t[i + 2]), a3 = _mm512_castps_pd(t[i + 3]);
                r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
                r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
                r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
                r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
            }
            for (int e = 0; e < 4; e++) { /* output row 4L+e = lane L of r[e], r[4+e], r[8+e], r[12+e] */
                __m512 x = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x88), y = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xdd);
                __m512 z = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x88), w = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xdd);
                float *d = dst + (ptrdiff_t)(j0 + e) * ldd + i0;
                _mm512_storeu_ps(d, _mm512_shuffle_f32x4(x, z, 0x88));
                _mm512_storeu_ps(d + 4 * ldd, _mm512_shuffle_f32x4(y, w, 0x88));
                _mm512_storeu_ps(d + 8 * ldd, _mm512_shuffle_f32x4(x, z, 0xdd));
                _mm512_storeu_ps(d + 12 * ldd, _mm512_shuffle_f32x4(y, w, 0xdd));
            }
        }
        for (int j = j0; j < cols; j++)
            for (int i = i0; i < i0 + 16; i++) dst[(ptrdiff_t)j * ldd + i] = src[(ptrdiff_t)i * lds + j];
    }
    for (int i = i0; i < rows; i++)
        for (int j = 0; j < cols; j++) dst[(ptrdiff_t)j * ldd + i] = src[(ptrdiff_t)i * lds + j];
}
#else
static void transpose(float *restrict dst, ptrdiff_t ldd, const float *restrict src, ptrdiff_t lds,
                      int rows, int cols) {
    enum { TB = 16 }; /* blocks of 16 x 16: both sides stay in L1 */
    for (int i0 = 0; i0 < rows; i0 += TB)
        for (int j0 = 0; j0 < cols; j0 += TB) {
            const int i1 = DFN_MIN(rows, i0 + TB), j1 = DFN_MIN(cols, j0 + TB);
            for (int j = j0; j < j1; j++)
                for (int i = i0; i < i1; i++) dst[(ptrdiff_t)j * ldd + i] = src[(ptrdiff_t)i * lds + j];
        }
}
#endif

/* Output positions o in [lo, hi) whose tap o*S + off lands in [0, I); O outputs. */
static void tap_range(int *lo, int *hi, int O, int I, int S, int off) {
    *lo = off >= 0 ? 0 : (-off + S - 1) / S;
    *hi = I - 1 - off < 0 ? 0 : DFN_MIN(O, (I - 1 - off) / S + 1);
    if (*hi < *lo) *hi = *lo;
}

/* The register tile: DW_MR output channels (broadcast) x DW_NV vectors of input channels. */
#if VL == 16
#define DW_MR 12
#define DW_NV 2
#else
#define DW_MR 4
#define DW_NV 3
#endif
#define DW_NR (DW_NV * VL) /* input channels per tile: 32, 24 or 12 */

/* One tap, a DW_MR x DW_NR tile: T[i][j] += sum_{g, oh in [oh0,oh1), ow in [ow0,ow1)} a[i] b[j] with
 *   a = A + g*a_img + (oh*OW + ow)*lda           (gt rows: A = gt + oc0, DW_MR readable)
 *   b = B + g*b_img + (ih*W + iw)*ldb, ih = oh*S + offh, iw = ow*S + offw   (xt: B = xt + c0)
 * summed over g, oh, ow ascending in registers, then added to T (DW_MR rows at stride ldt). */
__attribute__((noinline)) static void kernel_dw(float *restrict T, ptrdiff_t ldt, const float *A,
                                                int lda, int64_t a_img, const float *B, int ldb,
                                                int64_t b_img, int nimg, int oh0, int oh1, int ow0,
                                                int ow1, int OW, int W, int S, int offh, int offw) {
    vf e[DW_MR][DW_NV];
#pragma GCC unroll 12
    for (int i = 0; i < DW_MR; i++)
#pragma GCC unroll 3
        for (int v = 0; v < DW_NV; v++) e[i][v] = vf_zero();
    const ptrdiff_t bstep = (ptrdiff_t)S * ldb;
    for (int g = 0; g < nimg; g++)
        for (int oh = oh0; oh < oh1; oh++) {
            const float *a = A + g * a_img + ((ptrdiff_t)oh * OW + ow0) * lda;
            const float *b = B + g * b_img + ((ptrdiff_t)(oh * S + offh) * W + ow0 * S + offw) * ldb;
            for (int ow = ow0; ow < ow1; ow++, a += lda, b += bstep) {
                vf bv[DW_NV];
#pragma GCC unroll 3
                for (int v = 0; v < DW_NV; v++) bv[v] = vf_load(b + v * VL);
#pragma GCC unroll 12
                for (int i = 0; i < DW_MR; i++) {
                    const vf ai = vf_set1(a[i]);
#pragma GCC unroll 3
                    for (int v = 0; v < DW_NV; v++) e[i][v] = vf_fma(ai, bv[v], e[i][v]);
                }
            }
        }
#pragma GCC unroll 12
    for (int i = 0; i < DW_MR; i++)
#pragma GCC unroll 3
        for (int v = 0; v < DW_NV; v++) {
            float *t = T + i * ldt + v * VL;
            vf_store(t, vf_load(t) + e[i][v]);
        }
}

/* ------------------------------------------------------------ data and weight gradients */

void DFN_K(dfn_conv2d_backward_gemm)(float *dinp, float *dweight, const float *dout,
                                     const float *inp, const float *weight,
                                     const dfn_conv2d_shape *s) {
    if (!dinp && !dweight) return;
    const int OH = dfn_conv2d_out_h(s), OW = dfn_conv2d_out_w(s);
    const int N = s->N, C = s->C, OC = s->OC, KK = s->KH * s->KW, CKK = C * KK;
    const int64_t P = (int64_t)OH * OW;

    /* Image slots: S in {1,2,4,6,12} (divisible by 2 and 3 threads where
     * possible), S <= N and S*OC*CKK (the reduction) small next to N*P*OC*CKK
     * (the products). */
    static const int slot_choices[] = {12, 6, 4, 2, 1};
    int S = 1;
    for (int i = 0; i < 5; i++)
        if (slot_choices[i] <= N && slot_choices[i] * 256 <= N * P) { S = slot_choices[i]; break; }
    /* Images per product: enough columns (>= 384) for an efficient GEMM. */
    const int G = (int)DFN_MAX(1, DFN_MIN((int64_t)N, (384 + P - 1) / P));
    const int cl = dweight && C >= 32 && KK > 1; /* channels-last weight gradient */
    const int OCp = (OC + DW_MR - 1) / DW_MR * DW_MR, Cp = (C + DW_NR - 1) / DW_NR * DW_NR;
    const int64_t HW = (int64_t)s->H * s->W;
    /* Channel blocks (multiples of MR channels, so that MR-row tiles of C*KK never
     * straddle blocks; of DW_NR for the channels-last tiles): enough that there
     * are >= 8 tasks when C allows. */
    const int cmult = cl ? DW_NR : MR;
    int cblk = C;
    if (S < 8) {
        int want = (8 + S - 1) / S;
        cblk = ((C + want - 1) / want + cmult - 1) / cmult * cmult;
        if (cblk > C) cblk = C;
    }
    const int ncblk = (C + cblk - 1) / cblk;
    const int nrt = (CKK + MR - 1) / MR; /* MR-row tiles of dcol */

    /* Calling thread's slot 2: [S partial dW] [packed W^T] [map cache]. Partials
     * are (OC, CKK) as dW, or (KK, OCp, Cp) for the channels-last kernel. */
    const size_t wsz = cl ? (size_t)KK * OCp * Cp : (size_t)OC * CKK;
    const int need_maps = (dweight && !cl) || dinp; /* im2col or col2im */
    const size_t ncache = need_maps ? (dfn_map_cache_bytes(s, N * P / NR, 0) + 63) / 64 * 16 : 0;
    const size_t npart = dweight ? (size_t)S * wsz : 0, nwtp = dinp ? (size_t)nrt * OC * MR : 0;
    float *buf = dfn_scratch(2, npart + nwtp + 16 + ncache);
    float *part = buf;
    float *wtp = buf + npart;
    dfn_map_cache mc = {0, 0, NULL, NULL};
    if (need_maps) dfn_map_cache_init(&mc, dfn_align64(buf + npart + nwtp), s, N * P / NR, 0);
    if (dinp) { /* wtp[t][oc][i] = w[oc][t*MR+i] (zero past CKK): A operand of W^T dout */
#pragma omp parallel for schedule(static)
        for (int t = 0; t < nrt; t++)
            for (int oc = 0; oc < OC; oc++)
                for (int i = 0; i < MR; i++) {
                    int r = t * MR + i;
                    wtp[((size_t)t * OC + oc) * MR + i] = r < CKK ? weight[(size_t)oc * CKK + r] : 0.0f;
                }
    }

#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < S * ncblk; task++) {
        const int slot = task / ncblk, cb = task % ncblk;
        const int c0 = cb * cblk, c1 = DFN_MIN(C, c0 + cblk);
        const int nrows = (c1 - c0) * KK;
        const int n_begin = (int)((int64_t)N * slot / S), n_end = (int)((int64_t)N * (slot + 1) / S);
        dfn_tap_map *tmp = (dfn_tap_map *)dfn_scratch(3, (size_t)KK * NV * sizeof(dfn_tap_map) / sizeof(float) + 1);
        const int64_t CHW = (int64_t)C * s->H * s->W;
        float tile[MR * NR];
        float *pslot = part + slot * wsz;
        /* channels-last tiles cover c0 .. c1 rounded up to DW_NR (zero columns past C) */
        const int c1p = c1 == C ? Cp : c1;
        if (cl) /* this task's columns of its slot's partial start at zero */
            for (int64_t r = 0; r < (int64_t)KK * OCp; r++)
                memset(pslot + r * Cp + c0, 0, (size_t)(c1p - c0) * sizeof(float));
        for (int n0 = n_begin; n0 < n_end; n0 += G) {
            const int n1 = DFN_MIN(n_end, n0 + G), ng = n1 - n0;
            const int64_t J = ng * P, Jt = (J + NR - 1) / NR * NR;
            const int64_t npan = Jt / NR;
            /* slot 1 holds gt (OC, Jt) for im2col/col2im and/or gtt (J, OCp) channels-last */
            const int need_gt = (dweight && !cl) || dinp;
            float *gbuf = dfn_scratch(1, (need_gt ? (size_t)OC * Jt : 0) + (cl ? (size_t)J * OCp : 0));
            float *gt = gbuf, *gtt = gbuf + (need_gt ? (size_t)OC * Jt : 0);
            if (need_gt) /* gt[oc][(n-n0)*P + p] = dout[n,oc,p], zero tail */
                for (int oc = 0; oc < OC; oc++) {
                    float *row = gt + (int64_t)oc * Jt;
                    for (int n = n0; n < n1; n++)
                        memcpy(row + (n - n0) * P, dout + ((int64_t)n * OC + oc) * P, (size_t)P * sizeof(float));
                    memset(row + J, 0, (size_t)(Jt - J) * sizeof(float));
                }
            if (cl) {
                /* gtt[g][p][oc] = dout[n0+g, oc, p] (zero for oc >= OC), xt[g][pix][c] = inp[n0+g, c, pix]
                 * (zero for C <= c < Cp) */
                float *xt = dfn_scratch(0, (size_t)ng * HW * Cp);
                for (int g = 0; g < ng; g++) {
                    float *gg = gtt + g * P * OCp;
                    transpose(gg, OCp, dout + (int64_t)(n0 + g) * OC * P, P, OC, (int)P);
                    if (OCp > OC)
                        for (int64_t p = 0; p < P; p++) memset(gg + p * OCp + OC, 0, (size_t)(OCp - OC) * sizeof(float));
                    float *xg = xt + g * HW * Cp;
                    transpose(xg + c0, Cp, inp + ((int64_t)(n0 + g) * C + c0) * HW, HW, c1 - c0, (int)HW);
                    if (c1p > c1)
                        for (int64_t p = 0; p < HW; p++) memset(xg + p * Cp + c1, 0, (size_t)(c1p - c1) * sizeof(float));
                }
                /* pslot[kk][oc][c] += sum over pixels (kernel_dw), tile by tile */
                for (int kh = 0; kh < s->KH; kh++)
                    for (int kw = 0; kw < s->KW; kw++) {
                        int oh0, oh1, ow0, ow1;
                        tap_range(&oh0, &oh1, OH, s->H, s->stride, kh - s->pad);
                        tap_range(&ow0, &ow1, OW, s->W, s->stride, kw - s->pad);
                        if (oh0 == oh1 || ow0 == ow1) continue;
                        const int kk = kh * s->KW + kw;
                        for (int oc0 = 0; oc0 < OC; oc0 += DW_MR)
                            for (int ct = c0; ct < c1p; ct += DW_NR)
                                kernel_dw(pslot + ((int64_t)kk * OCp + oc0) * Cp + ct, Cp, gtt + oc0, OCp,
                                          P * OCp, xt + ct, Cp, HW * Cp, ng, oh0, oh1, ow0, ow1, OW, s->W,
                                          s->stride, kh - s->pad, kw - s->pad);
                    }
            } else if (dweight) {
                /* col rows of channels c0..c1 as (nrows, Jt); part[slot][:, c0*KK..] (+)= gt col^T */
                float *col = dfn_scratch(0, (size_t)nrows * Jt);
                for (int64_t pn = 0; pn < npan; pn++) {
                    int64_t ni;
                    const dfn_tap_map *map = dfn_panel_maps(&mc, s, n0 * P + pn * NR,
                                                            (int)DFN_MIN((int64_t)NR, J - pn * NR), tmp, NULL,
                                                            NULL, &ni);
                    im2col_panel(col + pn * NR, Jt, KK, 1, inp + ni * CHW, map, s, c0, c1);
                }
                dfn_gemm(0, 1, OC, nrows, (int)J, 1.0f, gt, (int)Jt, col, (int)Jt,
                         n0 == n_begin ? 0.0f : 1.0f, pslot + (size_t)c0 * KK, CKK);
            }
            if (dinp) {
                /* dcol = W^T gt, tile by tile, each scattered back at once */
                for (int64_t pn = 0; pn < npan; pn++) {
                    int64_t ni;
                    const dfn_tap_map *map = dfn_panel_maps(&mc, s, n0 * P + pn * NR,
                                                            (int)DFN_MIN((int64_t)NR, J - pn * NR), tmp, NULL,
                                                            NULL, &ni);
                    for (int r = c0 * KK; r < c1 * KK; r += MR) {
                        conv_tile(OC, wtp + (size_t)(r / MR) * OC * MR, gt + pn * NR, Jt, tile);
                        col2im_rows(dinp + ni * CHW, tile, r, DFN_MIN(MR, c1 * KK - r), map, s);
                    }
                }
            }
        }
    }

    if (dweight && !cl) { /* dW += sum over slots in order 0..S-1 */
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < wsz; i++) {
            float acc = part[i];
            for (int sl = 1; sl < S; sl++) acc += part[sl * wsz + i];
            dweight[i] += acc;
        }
    } else if (dweight) { /* dW[oc,c,kk] += sum over slots in order of part[slot][kk][oc][c] */
#pragma omp parallel for schedule(static)
        for (int oc = 0; oc < OC; oc++)
            for (int kk = 0; kk < KK; kk++) {
                const float *p0 = part + ((size_t)kk * OCp + oc) * Cp;
                float *d = dweight + (size_t)oc * C * KK + kk;
                for (int c = 0; c < C; c++) {
                    float acc = p0[c];
                    for (int sl = 1; sl < S; sl++) acc += p0[sl * wsz + c];
                    d[(size_t)c * KK] += acc;
                }
            }
    }
}

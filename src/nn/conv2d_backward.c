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
 *     or, for 3x3 "same" convs, as Winograd F(3x3, 2x2) on the same copies
 *     (below, 2.25x fewer multiplications);
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
/* r (VL rows of VL) transposed in place. */
static inline void transpose_block(vf r[VL]) {
#if VL == 8
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) { /* per 128-bit half: pairs (r_i[e], r_i+1[e]) */
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) { /* columns 4h+e of rows i..i+3 in half h of u[i+e] */
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int e = 0; e < 4; e++) {
        r[e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x20);
        r[4 + e] = _mm256_permute2f128_ps(u[e], u[4 + e], 0x31);
    }
#else
    const vf t0 = VF_SHUFFLE(r[0], r[1], 0, 4, 1, 5), t1 = VF_SHUFFLE(r[0], r[1], 2, 6, 3, 7);
    const vf t2 = VF_SHUFFLE(r[2], r[3], 0, 4, 1, 5), t3 = VF_SHUFFLE(r[2], r[3], 2, 6, 3, 7);
    r[0] = VF_SHUFFLE(t0, t2, 0, 1, 4, 5);
    r[1] = VF_SHUFFLE(t0, t2, 2, 3, 6, 7);
    r[2] = VF_SHUFFLE(t1, t3, 0, 1, 4, 5);
    r[3] = VF_SHUFFLE(t1, t3, 2, 3, 6, 7);
#endif
}

static void transpose(float *restrict dst, ptrdiff_t ldd, const float *restrict src, ptrdiff_t lds,
                      int rows, int cols) {
    int i0 = 0;
    for (; i0 + VL <= rows; i0 += VL) { /* VL x VL blocks in registers */
        int j0 = 0;
        for (; j0 + VL <= cols; j0 += VL) {
            vf r[VL];
            for (int i = 0; i < VL; i++) r[i] = vf_load(src + (ptrdiff_t)(i0 + i) * lds + j0);
            transpose_block(r);
            for (int j = 0; j < VL; j++) vf_store(dst + (ptrdiff_t)(j0 + j) * ldd + i0, r[j]);
        }
        for (int j = j0; j < cols; j++)
            for (int i = i0; i < i0 + VL; i++) dst[(ptrdiff_t)j * ldd + i] = src[(ptrdiff_t)i * lds + j];
    }
    for (int i = i0; i < rows; i++)
        for (int j = 0; j < cols; j++) dst[(ptrdiff_t)j * ldd + i] = src[(ptrdiff_t)i * lds + j];
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

#if VL == 16
/* kernel_dw's product for the Winograd weight gradient (one image row of tiles,
 * stride 1) from bfloat16 pairs of tiles (pack_pairs_bf16 of the transforms):
 * T[i][j] += sum_p A[p][i] . B[p][j], p < np ascending, A (pairs of U rows) at
 * stride lda, B (pairs of V rows) at stride ldb, DW_MR x DW_NR as kernel_dw. */
__attribute__((target("avx512bf16"), noinline)) static void kernel_dw_bf16(float *restrict T, ptrdiff_t ldt,
                                                                         const uint32_t *A, int lda,
                                                                         const uint32_t *B, int ldb, int np) {
    __m512 e[DW_MR][DW_NV];
#pragma GCC unroll 12
    for (int i = 0; i < DW_MR; i++) e[i][0] = e[i][1] = _mm512_setzero_ps();
    for (int p = 0; p < np; p++, A += lda, B += ldb) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(B), b1 = (__m512bh)_mm512_loadu_si512(B + 16);
#pragma GCC unroll 12
        for (int i = 0; i < DW_MR; i++) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32((int)A[i]);
            e[i][0] = _mm512_dpbf16_ps(e[i][0], a, b0);
            e[i][1] = _mm512_dpbf16_ps(e[i][1], a, b1);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < DW_MR; i++)
        for (int v = 0; v < DW_NV; v++) {
            float *t = T + i * ldt + v * VL;
            _mm512_storeu_ps(t, _mm512_add_ps(_mm512_loadu_ps(t), e[i][v]));
        }
}
#endif

/* ------------------------------------------------------------ Winograd weight gradient */

/* For a 3x3 conv with stride 1 and pad 1, cut dout into 2x2 tiles (tile t = (ty,tx)
 * holds output pixels (2ty+i, 2tx+j), zero outside the image); its 4x4 input patch
 * d[r][u] = inp[2ty-1+r, 2tx-1+u] is the one the forward's F(2x2,3x3) reads, and
 *   dW[kh,kw] += sum_{i,j} g[i][j] d[i+kh][j+kw]
 * is F(3x3, 2x2). Where the forward is out = A^T [(G w G^T) .* (B^T d B)] A
 * (conv2d_winograd.c), summing g . out over the tile for every w gives
 *   dW = G^T [ sum_tiles (A g A^T) .* (B^T d B) ] G
 * (the transposition principle): the same B^T, with A (4x2) = [1 0; 1 1; 1 -1; 0 -1]
 * as the transform of g and G^T (3x4) = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1]
 * back. So M[xi] (OC x C) = sum over tiles of U[xi][t][oc] V[xi][t][c] is a
 * product over tiles, 16 products of 1 multiplication per tile where the direct
 * sum has 36, run by kernel_dw on channels-last tile rows; the slots' M are
 * summed in order and transformed back in double at the end. */
#ifndef DW_WINOGRAD
#define DW_WINOGRAD 1 /* 0: every weight gradient runs direct */
#endif

static int dw_winograd_fits(const dfn_conv2d_shape *s) {
    return DW_WINOGRAD && s->KH == 3 && s->KW == 3 && s->stride == 1 && s->pad == 1;
}

/* The 16 pixels' channel rows of tile tb+q's 4x4 patch in xt (HW, ldx) channels-last,
 * NULL outside the image. */
static inline void dw_patch(const float *px[4][4], const float *xt, int ldx, int H, int W, int TW, int t) {
    const int ty = t / TW, tx = t % TW;
    for (int r = 0; r < 4; r++)
        for (int u = 0; u < 4; u++) {
            const int ih = 2 * ty - 1 + r, iw = 2 * tx - 1 + u;
            px[r][u] = ih >= 0 && ih < H && iw >= 0 && iw < W ? xt + ((ptrdiff_t)ih * W + iw) * ldx : NULL;
        }
}

/* y[xi] = (B^T d B)[xi] of a patch, channels c .. c+VL-1. */
static inline void dw_input_tile(vf y[16], const float *px[4][4], int c) {
    const vf z = vf_zero();
    vf e[4][4]; /* B^T d: rows d0-d2, d1+d2, d2-d1, d1-d3 */
    for (int u = 0; u < 4; u++) {
        const vf d0 = px[0][u] ? vf_load(px[0][u] + c) : z, d1 = px[1][u] ? vf_load(px[1][u] + c) : z;
        const vf d2 = px[2][u] ? vf_load(px[2][u] + c) : z, d3 = px[3][u] ? vf_load(px[3][u] + c) : z;
        e[0][u] = d0 - d2;
        e[1][u] = d1 + d2;
        e[2][u] = d2 - d1;
        e[3][u] = d1 - d3;
    }
    for (int a = 0; a < 4; a++) { /* (B^T d) B: the same on columns */
        y[4 * a] = e[a][0] - e[a][2];
        y[4 * a + 1] = e[a][1] + e[a][2];
        y[4 * a + 2] = e[a][2] - e[a][1];
        y[4 * a + 3] = e[a][1] - e[a][3];
    }
}

/* V[xi][q][c] (16 rows at stride xs, tile rows q at stride cw) = (B^T d B)[xi] of the
 * patch of tile tb+q, channels c < cw of xt (HW, ldx) channels-last (read from xt + c0). */
static void dw_input_transform(float *V, ptrdiff_t xs, int cw, const float *xt, int ldx, int H, int W,
                               int TW, int tb, int nt) {
    for (int q = 0; q < nt; q++) {
        const float *px[4][4];
        dw_patch(px, xt, ldx, H, W, TW, tb + q);
        float *v = V + (ptrdiff_t)q * cw;
        for (int c = 0; c < cw; c += VL) {
            vf y[16];
            dw_input_tile(y, px, c);
            for (int xi = 0; xi < 16; xi++) vf_store(v + xi * xs + c, y[xi]);
        }
    }
}

/* y[xi] = (A g A^T)[xi] of a tile's 2x2 dout pixels pg (NULL outside), output
 * channels oc .. oc+nl-1 (the rest 0). */
static inline void dw_grad_tile(vf y[16], const float *pg[2][2], int oc, int nl) {
    vf g[2][2];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            g[i][j] = vf_zero();
            if (pg[i][j] && nl == VL) g[i][j] = vf_load(pg[i][j] + oc);
            else if (pg[i][j])
                for (int l = 0; l < nl; l++) g[i][j][l] = pg[i][j][oc + l];
        }
    /* A g: rows g0, g0+g1, g0-g1, -g1; then the same on columns */
    const vf h[4][2] = {{g[0][0], g[0][1]}, {g[0][0] + g[1][0], g[0][1] + g[1][1]},
                        {g[0][0] - g[1][0], g[0][1] - g[1][1]}, {-g[1][0], -g[1][1]}};
    for (int a = 0; a < 4; a++) {
        y[4 * a] = h[a][0];
        y[4 * a + 1] = h[a][0] + h[a][1];
        y[4 * a + 2] = h[a][0] - h[a][1];
        y[4 * a + 3] = -h[a][1];
    }
}

/* The dout pixels of tile t, from gtt (OH*OW, OCp) channels-last. */
static inline void dw_grad_pixels(const float *pg[2][2], const float *gtt, int OCp, int OH, int OW, int TW, int t) {
    const int ty = t / TW, tx = t % TW;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            const int oh = 2 * ty + i, ow = 2 * tx + j;
            pg[i][j] = oh < OH && ow < OW ? gtt + ((ptrdiff_t)oh * OW + ow) * OCp : NULL;
        }
}

/* U[xi][q][oc] (16 rows at stride xs, tile rows q at stride OCp) = (A g A^T)[xi] of the
 * 2x2 dout pixels of tile tb+q, from gtt (OH*OW, OCp) channels-last. */
static void dw_grad_transform(float *U, ptrdiff_t xs, const float *gtt, int OCp, int OH, int OW,
                              int TW, int tb, int nt) {
    for (int q = 0; q < nt; q++) {
        const float *pg[2][2];
        dw_grad_pixels(pg, gtt, OCp, OH, OW, TW, tb + q);
        float *u = U + (ptrdiff_t)q * OCp;
        for (int oc = 0; oc < OCp; oc += VL) {
            const int nl = DFN_MIN(VL, OCp - oc); /* OCp is a multiple of DW_MR, not of VL */
            vf y[16];
            dw_grad_tile(y, pg, oc, nl);
            for (int xi = 0; xi < 16; xi++) {
                float *dst = u + xi * xs + oc;
                if (nl == VL) vf_store(dst, y[xi]);
                else
                    for (int l = 0; l < nl; l++) dst[l] = y[xi][l];
            }
        }
    }
}

#if VL == 16
/* Lanes `m` of y as the bfloat16 halves of the pairs at d: the low halves (the
 * high ones 0) for the first of two tiles, the high halves for the second. */
__attribute__((target("avx512bf16"))) static inline void store_pair_halves(uint32_t *d, int second, __mmask16 m,
                                                                           __m512 y) {
    const __m512i h = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(y));
    if (!second) _mm512_mask_storeu_epi32(d, m, h);
    else _mm512_mask_storeu_epi16(d, _pdep_u32(m, 0xAAAAAAAAu), _mm512_slli_epi32(h, 16));
}

/* dw_input_transform and dw_grad_transform straight into bfloat16 pairs of tiles
 * (pack_pairs_bf16's layout): Vp[xi][q/2][c], Up[xi][q/2][oc], tile q in the low
 * half when even, the high half of an odd nt's last pair 0. */
__attribute__((target("avx512bf16"))) static void dw_input_transform_bf16(uint32_t *Vp, ptrdiff_t xs, int cw,
                                                                          const float *xt, int ldx, int H, int W,
                                                                          int TW, int tb, int nt) {
    for (int q = 0; q < nt; q++) {
        const float *px[4][4];
        dw_patch(px, xt, ldx, H, W, TW, tb + q);
        uint32_t *v = Vp + (ptrdiff_t)(q / 2) * cw;
        for (int c = 0; c < cw; c += VL) {
            vf y[16];
            dw_input_tile(y, px, c);
            for (int xi = 0; xi < 16; xi++) store_pair_halves(v + xi * xs + c, q & 1, 0xFFFF, y[xi]);
        }
    }
}

__attribute__((target("avx512bf16"))) static void dw_grad_transform_bf16(uint32_t *Up, ptrdiff_t xs,
                                                                         const float *gtt, int OCp, int OH, int OW,
                                                                         int TW, int tb, int nt) {
    for (int q = 0; q < nt; q++) {
        const float *pg[2][2];
        dw_grad_pixels(pg, gtt, OCp, OH, OW, TW, tb + q);
        uint32_t *u = Up + (ptrdiff_t)(q / 2) * OCp;
        for (int oc = 0; oc < OCp; oc += VL) {
            const int nl = DFN_MIN(VL, OCp - oc);
            vf y[16];
            dw_grad_tile(y, pg, oc, nl);
            for (int xi = 0; xi < 16; xi++)
                store_pair_halves(u + xi * xs + oc, q & 1, (__mmask16)((1u << nl) - 1), y[xi]);
        }
    }
}
#endif

/* dW[oc,c,kh,kw] += (G^T M G)[kh][kw], M[xi] = the slots' part[sl][xi][oc][c] summed in
 * slot order (partials (S, 16, OCp, Cp)). */
static void dw_winograd_finish(float *dweight, const float *part, size_t wsz, int S, int OC, int C,
                               int OCp, int Cp) {
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
#pragma omp parallel for schedule(static)
    for (int oc = 0; oc < OC; oc++) {
        float *ms = dfn_scratch(0, (size_t)16 * C); /* ms[xi][c]: the slots' sum, row by row */
        for (int xi = 0; xi < 16; xi++) {
            const float *p = part + ((size_t)xi * OCp + oc) * Cp;
            float *restrict row = ms + (size_t)xi * C;
            memcpy(row, p, (size_t)C * sizeof(float));
            for (int sl = 1; sl < S; sl++) {
                const float *restrict q = p + sl * wsz;
                for (int c = 0; c < C; c++) row[c] += q[c];
            }
        }
        for (int c = 0; c < C; c++) {
            double m[16];
            for (int xi = 0; xi < 16; xi++) m[xi] = ms[(size_t)xi * C + c];
            float *d = dweight + ((size_t)oc * C + c) * 9;
            for (int kh = 0; kh < 3; kh++)
                for (int kw = 0; kw < 3; kw++) {
                    double acc = 0;
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++) acc += G[a][kh] * G[b][kw] * m[4 * a + b];
                    d[kh * 3 + kw] += (float)acc;
                }
        }
    }
}

/* ------------------------------------------------------------ data and weight gradients */

/* With `kind` bfloat16 the Winograd weight gradient's products are bfloat16 (avx512
 * only): its transforms are paired over tiles and summed by kernel_dw_bf16, or in
 * AMX tiles (the gradient's pairs transposed to rows of output channels, the sums
 * of a task in a float32 block acc[xi][oc][c] that amx_products adds into, tile
 * block after tile block, copied into the slot's partial at the task's end). */
static void backward_gemm(float *dinp, float *dweight, const float *dout, const float *inp,
                          const float *weight, const dfn_conv2d_shape *s, int kind) {
    const int bf16 = kind != PRODUCTS_FP32, amx = kind == PRODUCTS_AMX;
#if VL != 16
    (void)bf16, (void)amx;
#endif
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
    const int wino = cl && dw_winograd_fits(s);    /* ... as Winograd F(3x3, 2x2) */
    const int KX = wino ? 16 : KK;                 /* rows of the channels-last partials */
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
     * are (OC, CKK) as dW, or (KK, OCp, Cp) for the channels-last kernel, or
     * (16, OCp, Cp) for its Winograd form. */
    const size_t wsz = cl ? (size_t)KX * OCp * Cp : (size_t)OC * CKK;
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
        dfn_tap_map *tmp =
            need_maps ? (dfn_tap_map *)dfn_scratch(3, (size_t)KK * NV * sizeof(dfn_tap_map) / sizeof(float) + 1) : NULL;
        const int64_t CHW = (int64_t)C * s->H * s->W;
        float tile[MR * NR];
        float *pslot = part + slot * wsz;
        /* channels-last tiles cover c0 .. c1 rounded up to DW_NR (zero columns past C) */
        const int c1p = c1 == C ? Cp : c1;
        if (cl) /* this task's columns of its slot's partial start at zero */
            for (int64_t r = 0; r < (int64_t)KX * OCp; r++)
                memset(pslot + r * Cp + c0, 0, (size_t)(c1p - c0) * sizeof(float));
        /* Winograd's blocks of tiles: TB tiles whose U and V (slot 3) stay in L2; shape-only */
        const int TW = (OW + 1) / 2, T = (OH + 1) / 2 * TW, cw = c1p - c0;
        const int TB = DFN_MIN(T, DFN_MAX(8, 8192 / (OCp + cw)));
#if VL == 16
        /* AMX (slot 4): Up[xi] (pairs of tiles, OCp), Vp[xi] (np16 pairs, cw), Ua[xi]
         * (OC16 rows of np16 pairs), acc[xi] (OC16, cw) */
        const int np16 = ((TB + 1) / 2 + TR - 1) / TR * TR, OC16 = (OC + TR - 1) / TR * TR;
        const ptrdiff_t aups = (ptrdiff_t)(TB + 1) / 2 * OCp, avps = (ptrdiff_t)np16 * cw,
                        auas = (ptrdiff_t)OC16 * np16, accs = (ptrdiff_t)OC16 * cw;
        uint32_t *Aup = NULL, *Avp = NULL, *Aua = NULL;
        float *acc = NULL;
        if (amx && wino) {
            Aup = (uint32_t *)dfn_scratch(4, (size_t)16 * (aups + avps + auas + accs));
            Avp = Aup + 16 * aups, Aua = Avp + 16 * avps, acc = (float *)(Aua + 16 * auas);
            memset(Aua, 0, (size_t)16 * (auas + accs) * sizeof(uint32_t));
        }
#endif
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
                if (wino) {
                    /* pslot[xi][oc][c] += sum over the 2x2 tiles of U[xi][t][oc] V[xi][t][c], in
                     * blocks of TB tiles */
                    const ptrdiff_t us = (ptrdiff_t)TB * OCp, vs = (ptrdiff_t)TB * cw;
                    float *U = bf16 ? NULL : dfn_scratch(3, (size_t)16 * (us + vs)), *V = U ? U + 16 * us : NULL;
#if VL == 16
                    const ptrdiff_t ups = (ptrdiff_t)(TB + 1) / 2 * OCp, vps = (ptrdiff_t)(TB + 1) / 2 * cw;
                    uint32_t *Up = bf16 && !amx ? (uint32_t *)dfn_scratch(4, (size_t)16 * (ups + vps)) : NULL;
                    uint32_t *Vp = Up ? Up + 16 * ups : NULL;
#endif
                    for (int g = 0; g < ng; g++)
                        for (int tb = 0; tb < T; tb += TB) {
                            const int nt = DFN_MIN(TB, T - tb);
#if VL == 16
                            if (amx) { /* pairs of tiles, A as rows of output channels, zero past nt */
                                const int np = (nt + 1) / 2;
                                dw_grad_transform_bf16(Aup, aups, gtt + g * P * OCp, OCp, OH, OW, TW, tb, nt);
                                dw_input_transform_bf16(Avp, avps, cw, xt + g * HW * Cp + c0, Cp, s->H, s->W, TW,
                                                        tb, nt);
                                for (int xi = 0; xi < 16; xi++) {
                                    uint32_t *ua = Aua + xi * auas;
                                    memset(Avp + xi * avps + (ptrdiff_t)np * cw, 0,
                                           (size_t)(np16 - np) * cw * sizeof(uint32_t));
                                    transpose((float *)ua, np16, (const float *)(Aup + xi * aups), OCp, np, OC);
                                    if (np < np16)
                                        for (int oc = 0; oc < OC; oc++)
                                            memset(ua + (ptrdiff_t)oc * np16 + np, 0, (size_t)(np16 - np) * 4);
                                }
                                amx_begin();
                                for (int xi = 0; xi < 16; xi++)
                                    amx_products(OC16 / TR, np16 / TR, cw / 16, 1, Aua + xi * auas, np16,
                                                 Avp + xi * avps, cw, acc + xi * accs, cw);
                                amx_end();
                                continue;
                            }
                            if (bf16) { /* the same sums over pairs of tiles, transformed as pairs */
                                dw_grad_transform_bf16(Up, ups, gtt + g * P * OCp, OCp, OH, OW, TW, tb, nt);
                                dw_input_transform_bf16(Vp, vps, cw, xt + g * HW * Cp + c0, Cp, s->H, s->W, TW,
                                                        tb, nt);
                                for (int xi = 0; xi < 16; xi++)
                                    for (int ct = c0; ct < c1p; ct += DW_NR)
                                        for (int oc0 = 0; oc0 < OC; oc0 += DW_MR)
                                            kernel_dw_bf16(pslot + ((int64_t)xi * OCp + oc0) * Cp + ct, Cp,
                                                           Up + xi * ups + oc0, OCp, Vp + xi * vps + (ct - c0), cw,
                                                           (nt + 1) / 2);
                                continue;
                            }
#endif
                            dw_grad_transform(U, us, gtt + g * P * OCp, OCp, OH, OW, TW, tb, nt);
                            dw_input_transform(V, vs, cw, xt + g * HW * Cp + c0, Cp, s->H, s->W, TW, tb, nt);
                            for (int xi = 0; xi < 16; xi++)
                                for (int ct = c0; ct < c1p; ct += DW_NR)
                                    for (int oc0 = 0; oc0 < OC; oc0 += DW_MR)
                                        kernel_dw(pslot + ((int64_t)xi * OCp + oc0) * Cp + ct, Cp,
                                                  U + xi * us + oc0, OCp, 0, V + xi * vs + (ct - c0), cw, 0, 1,
                                                  0, 1, 0, nt, nt, nt, 1, 0, 0);
                        }
                } else
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
#if VL == 16
        if (acc) /* the task's AMX sums into its columns of the slot's partial */
            for (int xi = 0; xi < 16; xi++)
                for (int oc = 0; oc < OC; oc++)
                    memcpy(pslot + ((int64_t)xi * OCp + oc) * Cp + c0, acc + xi * accs + (ptrdiff_t)oc * cw,
                           (size_t)cw * sizeof(float));
#endif
    }

    if (dweight && !cl) { /* dW += sum over slots in order 0..S-1 */
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < wsz; i++) {
            float acc = part[i];
            for (int sl = 1; sl < S; sl++) acc += part[sl * wsz + i];
            dweight[i] += acc;
        }
    } else if (wino) {
        dw_winograd_finish(dweight, part, wsz, S, OC, C, OCp, Cp);
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

void DFN_K(dfn_conv2d_backward_gemm)(float *dinp, float *dweight, const float *dout, const float *inp,
                                     const float *weight, const dfn_conv2d_shape *s) {
    backward_gemm(dinp, dweight, dout, inp, weight, s, PRODUCTS_FP32);
}

#if VL == 16
void DFN_K(dfn_conv2d_backward_gemm_bf16)(float *dinp, float *dweight, const float *dout, const float *inp,
                                          const float *weight, const dfn_conv2d_shape *s) {
    backward_gemm(dinp, dweight, dout, inp, weight, s, PRODUCTS_BF16);
}

void DFN_K(dfn_conv2d_backward_gemm_amx)(float *dinp, float *dweight, const float *dout, const float *inp,
                                         const float *weight, const dfn_conv2d_shape *s) {
    backward_gemm(dinp, dweight, dout, inp, weight, s, PRODUCTS_AMX);
}
#endif

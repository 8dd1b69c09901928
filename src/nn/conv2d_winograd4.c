/* conv2d_winograd4.c - stride-1 3x3 "same" convolutions in float32 as Winograd
 * F(4x4, 3x3) (Lavin & Gray 2016), at one instruction-set level.
 *
 * The output is cut into 4x4 tiles (tile j = n*TH*TW + ty*TW + tx, TH = ceil(H/4),
 * TW = ceil(W/4)); tile j reads the 6x6 input patch d at rows 4ty-1.., cols 4tx-1..
 * (zero outside the image) and
 *   out tile = A^T [ sum_c (G g[oc,c] G^T) .* (B^T d[c] B) ] A
 * i.e. 36 products U[xi] (OC x C) V[xi] (C x tiles) per 16 outputs: 4x fewer
 * multiplications than the direct conv and 1.78x fewer than F(2x2, 3x3)
 * (conv2d_winograd.c). The matrices are Toom-Cook's for the interpolation points
 * 0, 1, -1, 1/2, -2 and infinity (rows scaled by powers of 2, which change no
 * rounding):
 *   B^T = [2 -3 -4  3 2 0;  0 -2  1  5 2 0;  0 2 -5  1 2 0;
 *          0 -2 -1  2 1 0;  0  1 -2 -1 2 0;  0 2 -3 -4 3 2],
 *   G   = [1/2 0 0;  1/6 1/6 1/6;  -1/6 1/6 -1/6;  -16/15 -8/15 -4/15;  1/30 -1/15 2/15;  0 0 1/2],
 *   A^T = [1 1 1 1 1 0;  0 1 -1 1/2 -2 0;  0 1 1 1/4 4 0;  0 1 -1 1/8 -8 1].
 * The larger transforms cost accuracy. Measured on float32 convs with 32..256
 * channels (uniform inputs, He-scaled weights, 28x28 and 64x64), the inf-norm
 * relative error against float64 is 1.3e-6..4.9e-6, against 5e-6..1.4e-5 with
 * Lavin's points 0, +-1, +-2 (whose 8s and 1/24s in A^T and G the point 1/2
 * balances: Barabasz et al., "Error analysis and improving the accuracy of
 * Winograd convolution for deep neural networks", 2020) and 2e-7..6e-7 for
 * F(2x2, 3x3). The U-Net with these points meets every PyTorch check
 * (tests/ref's unet_winograd4 case); with Lavin's, its parameters after three
 * AdamW steps strayed from float64 6.3x as far as PyTorch's (the check allows 4x).
 * bfloat16 products keep F(2x2): their rounding, not the transforms', dominates.
 *
 * Tasks as F(2x2)'s: (block of WB = 48 tiles, chunk of MR-channel output tiles),
 * shape-only, each transforming its block's input (all channels), running
 * conv_tile per (xi, MR output channels) with the channels as the sum index in
 * ascending order, and transforming back. The block's tiles may lie in several
 * tile rows (and images); so that VL of them are transformed at once whatever
 * the image width, each task first copies the block's windows into strips in
 * block order: for input row r of the patches,
 *   SA[r][4q + u] = d_q[r][u]      (u < 4: the patch's first four columns)
 *   SB[r][4q + u] = d_q[r][4 + u]  (u < 2: its last two)
 * copies of whole row pieces (a tile row's tiles in the block read consecutive
 * columns), from which even/odd shuffles take d[r][u] with a tile per lane. The
 * outputs go back the same way, through a strip per output row. */
#include <string.h>

#include "nn/conv2d_internal.h"

#define WB NR          /* tiles per block: the columns of conv_tile */
#define NXI 36         /* products per tile: the 6x6 transformed patch */
#define SL (4 * WB)    /* floats of a strip row: 4 per tile */
#define SLS (SL + VL)  /* their stride: a piece's last vector may run past it */
/* The stride of V[xi] and M[xi] (rows of WB floats): rows + 1/3 of a row, so that
 * the 36 rows a transform writes or reads at once do not share an L1 set (their
 * plain stride, a multiple of 4 KB for 64 channels, does). */
static inline ptrdiff_t xi_stride(int rows) { return (ptrdiff_t)rows * WB + 16; }
#ifndef DFN_CONV_WINOGRAD4
#define DFN_CONV_WINOGRAD4 1 /* 0: only F(2x2, 3x3) */
#endif

int winograd4_fits(const dfn_conv2d_shape *s) {
    if (!DFN_CONV_WINOGRAD4) return 0;
    if (s->KH != 3 || s->KW != 3 || s->stride != 1 || s->pad != 1 || s->C < 16 || s->OC < 8) return 0;
    const int TH = (s->H + 3) / 4, TW = (s->W + 3) / 4;
    /* tiles covering at most 4/3 of the image (14x14: 16x16 outputs, still 1.3x to
     * 1.6x faster than F(2x2) measured on its U-Net convs); narrower images are
     * untried */
    if (s->W < 14 || 3 * (16 * TH * TW) > 4 * s->H * s->W) return 0;
    const int64_t tiles = (int64_t)s->N * TH * TW;
    return tiles >= 16 * WB; /* >= 16 blocks: no output-channel chunks (as F(2x2)) */
}

/* up[xi][t][c][i] = (G g G^T)[xi] of g = w[t*MR+i, c] (3x3), zero past `rows`;
 * with `flip`, g = w[c, t*MR+i] rotated by 180 degrees (backward data), as
 * conv2d_winograd.c's pack_winograd. rows = OC (C), cols = C (OC). */
static void pack_winograd4(float *up, const float *w, int OC, int C, int flip) {
    static const double G[6][3] = {{1.0 / 2, 0, 0},
                                   {1.0 / 6, 1.0 / 6, 1.0 / 6},
                                   {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {-16.0 / 15, -8.0 / 15, -4.0 / 15},
                                   {1.0 / 30, -1.0 / 15, 2.0 / 15},
                                   {0, 0, 1.0 / 2}};
    const int rows = flip ? C : OC, cols = flip ? OC : C;
    const int ntiles = (rows + MR - 1) / MR;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntiles; t++)
        for (int c = 0; c < cols; c++) {
            double g[3][3][MR], gg[6][3][MR]; /* lane i: row t*MR+i */
            winograd_taps(g, w, t, c, rows, C, flip);
            for (int a = 0; a < 6; a++) /* G g */
                for (int k = 0; k < 3; k++)
                    for (int i = 0; i < MR; i++)
                        gg[a][k][i] = G[a][0] * g[0][k][i] + G[a][1] * g[1][k][i] + G[a][2] * g[2][k][i];
            for (int a = 0; a < 6; a++) /* (G g) G^T */
                for (int b = 0; b < 6; b++) {
                    float *u = up + (((size_t)(6 * a + b) * ntiles + t) * cols + c) * MR;
                    for (int i = 0; i < MR; i++)
                        u[i] = (float)(gg[a][0][i] * G[b][0] + gg[a][1][i] * G[b][1] + gg[a][2][i] * G[b][2]);
                }
        }
}

/* A piece of the strips: for the six rows r (NULL: outside the image, zeros),
 *   SA[r][x] = row_r[c0 + x],  SB[r][x] = row_r[c0 + 4 + x],  0 <= x < n,
 * reading only columns 0 <= c0 + x (+ 4) < W (zeros elsewhere); may write zeros
 * up to VL - 1 floats past n. */
static void copy_piece(float *SA, float *SB, const float *const rows[6], int W, int c0, int n) {
#if VL == 16
    /* the lanes inside the row, under masks computed once for the six rows */
    enum { MAXV = (SL + VL - 1) / VL };
    __mmask16 ma[MAXV], mb[MAXV];
    const int nv = (n + VL - 1) / VL;
    for (int v = 0; v < nv; v++) {
        ma[v] = vf_lane_range(-c0 - v * VL, W - c0 - v * VL);
        mb[v] = vf_lane_range(-c0 - 4 - v * VL, W - c0 - 4 - v * VL);
    }
    for (int r = 0; r < 6; r++) {
        float *a = SA + r * SLS, *b = SB + r * SLS;
        const float *row = rows[r];
        if (!row)
            for (int v = 0; v < nv; v++) vf_store(a + v * VL, vf_zero()), vf_store(b + v * VL, vf_zero());
        else
            for (int v = 0; v < nv; v++) {
                vf_store(a + v * VL, _mm512_maskz_loadu_ps(ma[v], dfn_fptr(row, (int64_t)c0 + v * VL)));
                vf_store(b + v * VL, _mm512_maskz_loadu_ps(mb[v], dfn_fptr(row, (int64_t)c0 + 4 + v * VL)));
            }
    }
#else
    for (int r = 0; r < 6; r++)
        for (int k = 0; k < 2; k++) { /* SA, then SB */
            float *restrict dst = (k ? SB : SA) + r * SLS;
            const float *restrict row = rows[r];
            const int c = c0 + 4 * k;
            const int lo = row ? DFN_MAX(0, -c) : n, hi = row ? DFN_MAX(lo, DFN_MIN(n, W - c)) : n;
            int x = 0;
            for (; x < lo; x++) dst[x] = 0.0f;
            for (; x + VL <= hi; x += VL) vf_store(dst + x, vf_load(row + c + x));
            for (; x < hi; x++) dst[x] = row[c + x];
            for (; x < n; x++) dst[x] = 0.0f;
        }
#endif
}

/* d[u][l] = p[4l + u], u < 4: the stride-4 lanes of p[0 .. 4VL). */
static inline void deinterleave4(vf d[4], const float *p) {
    const vf p0 = vf_load(p), p1 = vf_load(p + VL), p2 = vf_load(p + 2 * VL), p3 = vf_load(p + 3 * VL);
    const vf e01 = VF_SHUFFLE(p0, p1, VF_EVEN_LANES), o01 = VF_SHUFFLE(p0, p1, VF_ODD_LANES);
    const vf e23 = VF_SHUFFLE(p2, p3, VF_EVEN_LANES), o23 = VF_SHUFFLE(p2, p3, VF_ODD_LANES);
    d[0] = VF_SHUFFLE(e01, e23, VF_EVEN_LANES);
    d[1] = VF_SHUFFLE(o01, o23, VF_EVEN_LANES);
    d[2] = VF_SHUFFLE(e01, e23, VF_ODD_LANES);
    d[3] = VF_SHUFFLE(o01, o23, VF_ODD_LANES);
}

/* p[4l + u] = d[u][l]: deinterleave4 undone. */
static inline void interleave4(float *p, const vf d[4]) {
    const vf a0 = VF_SHUFFLE(d[0], d[2], VF_LOW_HALVES), a1 = VF_SHUFFLE(d[0], d[2], VF_HIGH_HALVES);
    const vf b0 = VF_SHUFFLE(d[1], d[3], VF_LOW_HALVES), b1 = VF_SHUFFLE(d[1], d[3], VF_HIGH_HALVES);
    vf_store(p, VF_SHUFFLE(a0, b0, VF_LOW_HALVES));
    vf_store(p + VL, VF_SHUFFLE(a0, b0, VF_HIGH_HALVES));
    vf_store(p + 2 * VL, VF_SHUFFLE(a1, b1, VF_LOW_HALVES));
    vf_store(p + 3 * VL, VF_SHUFFLE(a1, b1, VF_HIGH_HALVES));
}

/* y = B^T x for one line of six (products by powers of 2 are exact):
 *   y0 = 2 (x0 + x4) - 4 x2 + 3 (x3 - x1),   y5 = 2 (x1 + x5) - 4 x3 + 3 (x4 - x2),
 *   y1 = 2 (x4 - x1) + x2 + 5 x3,            y2 = 2 (x4 + x1) + x3 - 5 x2,
 *   y3 = (x4 - x2) + 2 (x3 - x1),            y4 = 2 (x4 - x2) - (x3 - x1). */
static inline void input_line(vf y[6], const vf x[6]) {
    const vf two = vf_set1(2.0f), three = vf_set1(3.0f), four = vf_set1(-4.0f), five = vf_set1(5.0f);
    const vf d31 = x[3] - x[1], d42 = x[4] - x[2];
    y[0] = vf_fma(three, d31, vf_fma(four, x[2], two * (x[0] + x[4])));
    y[1] = vf_fma(five, x[3], vf_fma(two, x[4] - x[1], x[2]));
    y[2] = vf_fma(-five, x[2], vf_fma(two, x[4] + x[1], x[3]));
    y[3] = vf_fma(two, d31, d42);
    y[4] = vf_fma(two, d42, -d31);
    y[5] = vf_fma(three, d42, vf_fma(four, x[3], two * (x[1] + x[5])));
}

/* y = A^T m for one line of six:
 *   y0 = (m0 + (m1 + m2)) + (m3 + m4),   y1 = (m1 - m2) - 2 m4 + m3 / 2,
 *   y2 = (m1 + m2) + 4 m4 + m3 / 4,      y3 = ((m1 - m2) - 8 m4 + m3 / 8) + m5. */
static inline void output_line(vf y[4], const vf m[6]) {
    const vf s12 = m[1] + m[2], d12 = m[1] - m[2];
    y[0] = (m[0] + s12) + (m[3] + m[4]);
    y[1] = vf_fma(vf_set1(0.5f), m[3], vf_fma(vf_set1(-2.0f), m[4], d12));
    y[2] = vf_fma(vf_set1(0.25f), m[3], vf_fma(vf_set1(4.0f), m[4], s12));
    y[3] = vf_fma(vf_set1(0.125f), m[3], vf_fma(vf_set1(-8.0f), m[4], d12)) + m[5];
}

/* The block's row pieces: tile rows R0 .. R1 (dfn_tile_row_of). */
typedef struct {
    int TH, TW;
    int64_t R0, R1;
} block_rows;

static block_rows block_rows_of(const dfn_conv2d_shape *s, int64_t j0, int nj) {
    const int TW = (s->W + 3) / 4;
    const block_rows b = {(s->H + 3) / 4, TW, j0 / TW, (j0 + nj - 1) / TW};
    return b;
}

/* V[xi][c][q] (C rows of WB per xi) = (B^T d B)[xi] of the block's tile q; columns
 * past nj hold the transforms of zero patches. */
static void input_transform(float *V, const float *inp, const dfn_conv2d_shape *s, int64_t j0, int nj) {
    const int C = s->C, H = s->H, W = s->W;
    const int64_t HW = (int64_t)H * W;
    const ptrdiff_t xs = xi_stride(C); /* between V[xi] and V[xi+1] */
    const block_rows br = block_rows_of(s, j0, nj);
    float *SA = dfn_scratch(3, (size_t)12 * SLS + 36 * VL), *SB = SA + 6 * SLS, *T = SB + 6 * SLS;
    memset(SA, 0, (size_t)12 * SLS * sizeof(float)); /* tiles past nj: zero patches */
    for (int c = 0; c < C; c++) {
        for (int64_t R = br.R0; R <= br.R1; R++) { /* the strips, piece by piece in block order */
            const dfn_tile_row tr = dfn_tile_row_of(R, br.TH, br.TW, j0, nj);
            const float *x = inp + (tr.n * C + c) * HW;
            const int n = 4 * (tr.txb - tr.txa), at = 4 * (tr.q0 + tr.txa);
            const float *rows[6];
            for (int r = 0; r < 6; r++) {
                const int ih = 4 * tr.ty - 1 + r;
                rows[r] = ih >= 0 && ih < H ? x + (int64_t)ih * W : NULL;
            }
            copy_piece(SA + at, SB + at, rows, W, 4 * tr.txa - 1, n);
        }
        for (int q = 0; q < WB; q += VL) { /* all of V's columns: conv_tile reads them */
            for (int r = 0; r < 6; r++) { /* the rows of d B: T[r][b] */
                vf d[6], e[4], y[6];
                deinterleave4(d, SA + r * SLS + 4 * q);
                deinterleave4(e, SB + r * SLS + 4 * q);
                d[4] = e[0], d[5] = e[1];
                input_line(y, d);
                for (int b = 0; b < 6; b++) vf_store(T + (6 * r + b) * VL, y[b]);
            }
            for (int b = 0; b < 6; b++) { /* B^T (d B) column by column */
                vf x[6], y[6];
                for (int r = 0; r < 6; r++) x[r] = vf_load(T + (6 * r + b) * VL);
                input_line(y, x);
                for (int a = 0; a < 6; a++) vf_store(V + (6 * a + b) * xs + (ptrdiff_t)c * WB + q, y[a]);
            }
        }
    }
}

/* o[0 .. n) = [a +] ([b +] src): as F(2x2)'s stores, the bias first, then add
 * (a + src where there is no bias). */
static inline void store_row(float *o, const float *a, const float *src, int n, float b, int biased) {
    const vf bv = vf_set1(b);
    int x = 0;
    for (; x + VL <= n; x += VL) {
        vf v = vf_load(src + x);
        if (!a || biased) v = bv + v;
        if (a) v = vf_load(a + x) + v;
        vf_store(o + x, v);
    }
#if VL == 16
    if (x < n) {
        const __mmask16 m = vf_lane_range(0, n - x);
        vf v = vf_load(src + x);
        if (!a || biased) v = bv + v;
        if (a) v = _mm512_maskz_loadu_ps(m, a + x) + v;
        _mm512_mask_storeu_ps(o + x, m, v);
    }
#else
    for (; x < n; x++) {
        float v = src[x];
        if (!a || biased) v = b + v;
        if (a) v = a[x] + v;
        o[x] = v;
    }
#endif
}

/* out (N,OC,H,W) = [add +] ([bias +] A^T M A) of the block's tiles, output
 * channels oc0 .. oc1-1; M[xi][oc - oc0][q] at stride xs per xi. */
static void output_transform(float *out, const float *add, const float *M, ptrdiff_t xs, const float *bias,
                             const dfn_conv2d_shape *s, int oc0, int oc1, int64_t j0, int nj) {
    const int OC = s->OC, H = s->H, W = s->W;
    const block_rows br = block_rows_of(s, j0, nj);
    float *O = dfn_scratch(3, (size_t)4 * SLS); /* O[i][4q + k]: output row i, column k of tile q */
    const int nv = (nj + VL - 1) / VL;
    for (int oc = oc0; oc < oc1; oc++) {
        const float *mo = M + (ptrdiff_t)(oc - oc0) * WB;
        for (int v = 0; v < nv; v++) {
            const int q = v * VL;
            vf t[4][6]; /* A^T M: t[i][b] */
            for (int b = 0; b < 6; b++) {
                vf m[6], y[4];
                for (int a = 0; a < 6; a++) m[a] = vf_load(mo + (6 * a + b) * xs + q);
                output_line(y, m);
                for (int i = 0; i < 4; i++) t[i][b] = y[i];
            }
            for (int i = 0; i < 4; i++) { /* (A^T M) A, row i, interleaved back to tile order */
                vf y[4];
                output_line(y, t[i]);
                interleave4(O + i * SLS + 4 * q, y);
            }
        }
        const float b = bias ? bias[oc] : 0.0f;
        for (int64_t R = br.R0; R <= br.R1; R++) {
            const dfn_tile_row tr = dfn_tile_row_of(R, br.TH, br.TW, j0, nj);
            const int n = DFN_MIN(4 * tr.txb, W) - 4 * tr.txa, at = 4 * (tr.q0 + tr.txa);
            for (int i = 0; i < 4 && 4 * tr.ty + i < H; i++) {
                const ptrdiff_t o = ((tr.n * OC + oc) * H + 4 * tr.ty + i) * W + 4 * tr.txa;
                store_row(out + o, add ? add + o : NULL, O + i * SLS + at, n, b, bias != NULL);
            }
        }
    }
}

/* out = [add +] ([bias +] conv(inp, U)), U from pack_winograd4; the shape fits. */
static void conv_winograd4(float *out, const float *add, const float *inp, const float *up, const float *bias,
                           const dfn_conv2d_shape *s) {
    const int C = s->C, ntiles = (s->OC + MR - 1) / MR;
    const int64_t NT = s->N * (int64_t)((s->H + 3) / 4) * ((s->W + 3) / 4);
    const int64_t nblk = (NT + WB - 1) / WB;
    int tiles_per_chunk;
    const int nchunks = dfn_tile_chunks(nblk, ntiles, &tiles_per_chunk);
    const int64_t ntasks = nblk * nchunks;
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < ntasks; task++) {
        const int64_t j0 = task / nchunks * WB;
        const int chunk = (int)(task % nchunks);
        const int nj = (int)DFN_MIN((int64_t)WB, NT - j0);
        const int t0 = chunk * tiles_per_chunk, t1 = DFN_MIN(ntiles, t0 + tiles_per_chunk);
        float *V = dfn_scratch(0, (size_t)NXI * xi_stride(C));
        input_transform(V, inp, s, j0, nj);
        const ptrdiff_t xs = xi_stride((t1 - t0) * MR); /* M[xi][oc - t0 MR][q] */
        float *M = dfn_scratch(1, (size_t)NXI * xs);
        for (int xi = 0; xi < NXI; xi++)
            for (int t = t0; t < t1; t++)
                conv_tile(C, up + ((size_t)xi * ntiles + t) * C * MR, V + xi * xi_stride(C), WB,
                          M + xi * xs + (ptrdiff_t)(t - t0) * MR * WB);
        output_transform(out, add, M, xs, bias, s, t0 * MR, DFN_MIN(s->OC, t1 * MR), j0, nj);
    }
}

void winograd4(float *out, const float *add, const float *inp, const float *weight, int flip, const float *bias,
               const dfn_conv2d_shape *s) {
    /* U in the calling thread's slot 2 (tasks use 0, 1 and 3) */
    const int ntiles = (s->OC + MR - 1) / MR;
    float *up = dfn_scratch(2, (size_t)NXI * ntiles * MR * s->C);
    if (flip) pack_winograd4(up, weight, s->C, s->OC, 1); /* s is the transposed conv's shape */
    else pack_winograd4(up, weight, s->OC, s->C, 0);
    conv_winograd4(out, add, inp, up, bias, s);
}

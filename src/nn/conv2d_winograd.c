/* conv2d_winograd.c - stride-1 3x3 convolutions with pad 1 ("same") as Winograd
 * F(2x2, 3x3) (Lavin & Gray 2016), at one instruction-set level.
 *
 * The output is cut into 2x2 tiles (global tile index j = n*TH*TW + ty*TW + tx,
 * TH = ceil(H/2), TW = ceil(W/2)); tile j reads the 4x4 input patch d at rows
 * 2ty-1.., cols 2tx-1.. (zero outside the image) and
 *   out tile = A^T [ sum_c (G g[oc,c] G^T) .* (B^T d[c] B) ] A
 * i.e. 16 products U[xi] (OC x C) V[xi] (C x tiles), 2.25x fewer multiplications
 * than the direct conv, with
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * Tasks: (block of 48 tiles, chunk of MR-channel output tiles), shape-only and
 * in runs of neighbouring blocks per thread as the direct path; each task
 * transforms its block's input (all channels), runs conv_tile per (xi, MR output
 * channels) with C as the sum index (channels ascending), and transforms back; a
 * fixed order in every step. The transforms
 * are adds and subtracts in the same order at every level; avx512 does 16 tiles
 * of a tile row per vector (a segment: one vector for images up to 32 wide), or
 * two tile rows of at most 7 tiles side by side (images up to 14 wide, whose single
 * rows would leave 9 of the 16 lanes idle), the other levels any width.
 * Float32 convs that F(4x4, 3x3) fits run there (conv2d_winograd4.c); bfloat16
 * products always run here. */
#include <string.h>

#include "nn/conv2d_internal.h"

#define WB NR /* tiles per block: the columns of conv_tile */
/* The row stride of V: a vector written from a row's last tile may run past the
 * block's 48 columns (lanes of no tile, rewritten or never read). */
#define WBS (WB + VL)
#ifndef DFN_CONV_WINOGRAD
#define DFN_CONV_WINOGRAD 1 /* 0: every conv runs direct */
#endif

int DFN_K(dfn_conv2d_winograd_fits)(const dfn_conv2d_shape *s) {
    if (!DFN_CONV_WINOGRAD) return 0;
    if (s->KH != 3 || s->KW != 3 || s->stride != 1 || s->pad != 1 || s->C < 16 || s->OC < 8) return 0;
    const int TW = (s->W + 1) / 2;
#if VL == 16
    /* narrow images (7x7) waste most lanes of the transforms and run faster direct */
    if (TW < 7) return 0;
#else
    if (TW < 4) return 0;
#endif
    const int64_t tiles = (int64_t)s->N * ((s->H + 1) / 2) * TW;
    /* >= 16 blocks: no output-channel chunks, whose tasks would each transform
     * the block's input again (batch 1 runs faster direct) */
    return tiles >= 16 * WB;
}

/* up[xi][t][c][i] = (G g G^T)[xi] of g = w[t*MR+i, c] (3x3), zero past `rows`;
 * with `flip`, g = w[c, t*MR+i] rotated by 180 degrees (the transposed conv of
 * stride-1 backward data). rows = OC (C), cols = C (OC). */
static void pack_winograd(float *up, const float *w, int OC, int C, int flip) {
    const int rows = flip ? C : OC, cols = flip ? OC : C;
    const int ntiles = (rows + MR - 1) / MR;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntiles; t++)
        for (int c = 0; c < cols; c++) {
            double g[3][3][MR], gg[4][3][MR], u[4][4][MR]; /* lane i: row t*MR+i */
            winograd_taps(g, w, t, c, rows, C, flip);
            for (int k = 0; k < 3; k++) /* G g: rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2 */
                for (int i = 0; i < MR; i++) {
                    gg[0][k][i] = g[0][k][i];
                    gg[1][k][i] = 0.5 * (g[0][k][i] + g[1][k][i] + g[2][k][i]);
                    gg[2][k][i] = 0.5 * (g[0][k][i] - g[1][k][i] + g[2][k][i]);
                    gg[3][k][i] = g[2][k][i];
                }
            for (int a = 0; a < 4; a++) /* (G g) G^T */
                for (int i = 0; i < MR; i++) {
                    u[a][0][i] = gg[a][0][i];
                    u[a][1][i] = 0.5 * (gg[a][0][i] + gg[a][1][i] + gg[a][2][i]);
                    u[a][2][i] = 0.5 * (gg[a][0][i] - gg[a][1][i] + gg[a][2][i]);
                    u[a][3][i] = gg[a][2][i];
                }
            for (int xi = 0; xi < 16; xi++)
                for (int i = 0; i < MR; i++)
                    up[(((size_t)xi * ntiles + t) * cols + c) * MR + i] = (float)u[xi / 4][xi % 4][i];
        }
}

#if VL == 16
#define SEG 16 /* tiles per vector: a segment of a tile row, tiles t0 .. t0+15 */

/* The tiles of one vector and their reads. A vector holds either a segment, tiles
 * t0 .. t0+15 of tile row R, or, where a tile row has at most 7 tiles (images at
 * most 14 wide, whose 7 tiles would leave 9 lanes idle), a pair: tile rows R and
 * R+1 side by side, row R's tiles in lanes 0 .. TW-1 and row R+1's in TW .. 2TW-1.
 * Either way lane l is the tile in block column q + l (a pair's rows are
 * neighbours in the block's tile order). For each of the four input rows r of
 * the windows, two reads of 16 columns, p0[r] and p1[r] under masks m0r[r] and
 * m1r[r] (channel 0; rows outside the image read zeros under empty masks): a
 * segment's window columns x0 .. x0+15 and x0+16 .. x0+31, x0 = 2 t0 - 1 (and
 * lane15: its last lane is a tile, which reads columns 32 and 33 from p2[r]); a
 * pair's window of each row, columns -1 .. 14. m: the lanes that are tiles of the
 * block; idx: where lane l finds window element u (transform_channel). */
typedef struct {
    int64_t q;
    int lane15;
    __mmask16 m, m0r[4], m1r[4], m2r[4];
    const float *p0[4], *p1[4], *p2[4];
    const __m512i *idx;
} tile_reads;

/* The window indices of the two kinds of vector: seg[u] lane l -> element 2l + u
 * of the 32 columns of p0, p1 (below 32; lane 15's 32 and 33 come from p2); pair[u]
 * lane l < TW -> element 2l + u of row R's window (p0), lane TW + l -> element
 * 2l + u of row R+1's (p1). */
typedef struct {
    __m512i seg[4], pair[4];
} window_indices;

static inline window_indices window_indices_of(int TW) {
    window_indices w;
    int32_t seg[4][16], pair[4][16];
    for (int u = 0; u < 4; u++)
        for (int l = 0; l < 16; l++) {
            seg[u][l] = DFN_MIN(31, 2 * l + u);
            pair[u][l] = l < TW ? 2 * l + u : l < 2 * TW ? 16 + 2 * (l - TW) + u : 0;
        }
    for (int u = 0; u < 4; u++) {
        w.seg[u] = _mm512_loadu_si512(seg[u]);
        w.pair[u] = _mm512_loadu_si512(pair[u]);
    }
    return w;
}

/* Pairs where a tile row has at most 7 tiles (a window of at most 16 columns). */
static inline int pairs_rows(const dfn_conv2d_shape *s) { return (s->W + 1) / 2 <= 7; }

/* The four input rows of tile row tr's windows from column x0 on (channel 0)
 * into p[r], with mask mw where the row is inside the image, else an empty mask. */
static inline void window_rows(const float *p[4], __mmask16 mr[4], const float *inp,
                               const dfn_conv2d_shape *s, const dfn_tile_row *tr, int x0, __mmask16 mw) {
    const int64_t HW = (int64_t)s->H * s->W;
    for (int r = 0; r < 4; r++) {
        const int ih = 2 * tr->ty - 1 + r, in = ih >= 0 && ih < s->H;
        p[r] = dfn_fptr(inp, tr->n * s->C * HW + (int64_t)(in ? ih : 0) * s->W + x0);
        mr[r] = in ? mw : 0;
    }
}

static inline tile_reads segment_reads(const float *inp, const dfn_conv2d_shape *s, const window_indices *w,
                                       int64_t R, int64_t j0, int nj, int t0) {
    const int W = s->W, TH = (s->H + 1) / 2, TW = (W + 1) / 2;
    tile_reads t;
    const dfn_tile_row tr = dfn_tile_row_of(R, TH, TW, j0, nj);
    const int x0 = 2 * t0 - 1;
    t.q = tr.q0 + t0;
    t.m = vf_lane_range(tr.txa - t0, tr.txb - t0);
    t.lane15 = t.m >> 15 & 1;
    t.idx = w->seg;
    /* lanes l of the reads at x0, x0 + 16, x0 + 32 whose column is inside the row */
    window_rows(t.p0, t.m0r, inp, s, &tr, x0, vf_lane_range(-x0, W - x0));
    window_rows(t.p1, t.m1r, inp, s, &tr, x0 + 16, vf_lane_range(-x0 - 16, W - x0 - 16));
    window_rows(t.p2, t.m2r, inp, s, &tr, x0 + 32, vf_lane_range(0, DFN_MIN(2, W - x0 - 32)));
    return t;
}

static inline tile_reads pair_reads(const float *inp, const dfn_conv2d_shape *s, const window_indices *w,
                                    int64_t R, int64_t j0, int nj) {
    const int W = s->W, TH = (s->H + 1) / 2, TW = (W + 1) / 2;
    tile_reads t;
    t.lane15 = 0;
    t.idx = w->pair;
    t.m = 0;
    for (int h = 0; h < 2; h++) {
        const dfn_tile_row tr = dfn_tile_row_of(R + h, TH, TW, j0, nj);
        const __mmask16 mh = vf_lane_range(h * TW + tr.txa, h * TW + tr.txb);
        if (h == 0) t.q = tr.q0;
        t.m |= mh;
        const float **p = h ? t.p1 : t.p0;
        __mmask16 *mr = h ? t.m1r : t.m0r;
        if (mh) window_rows(p, mr, inp, s, &tr, -1, vf_lane_range(1, W + 1));
        else /* row R+1 past the block (or the batch): nothing read */
            for (int r = 0; r < 4; r++) p[r] = inp, mr[r] = 0;
    }
    return t;
}

/* y[xi] = (B^T d B)[xi] of channel c's tiles in a vector, a tile per lane (lane
 * l's window row r is element idx[u][l] of the reads p0[r], p1[r]; lane 15 of a
 * segment blends its elements 32 and 33 in from p2[r]). */
static inline void transform_channel(__m512 y[16], const tile_reads *t, int c, int64_t HW) {
    __m512 d[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
        const float *a = dfn_fptr(t->p0[r], c * HW), *b = dfn_fptr(t->p1[r], c * HW);
        _mm_prefetch((const char *)dfn_fptr(a, 12 * HW), _MM_HINT_T0); /* 12 channels on */
        _mm_prefetch((const char *)dfn_fptr(a, 12 * HW + 15), _MM_HINT_T0);
        _mm_prefetch((const char *)dfn_fptr(b, 12 * HW), _MM_HINT_T0);
        _mm_prefetch((const char *)dfn_fptr(b, 12 * HW + 15), _MM_HINT_T0);
        const __m512 w0 = _mm512_maskz_loadu_ps(t->m0r[r], a);
        const __m512 w1 = _mm512_maskz_loadu_ps(t->m1r[r], b);
        for (int u = 0; u < 4; u++) d[r][u] = _mm512_permutex2var_ps(w0, t->idx[u], w1);
        if (t->lane15) {
            const __m512 w2 = _mm512_maskz_loadu_ps(t->m2r[r], dfn_fptr(t->p2[r], c * HW));
            d[r][2] = _mm512_mask_permutexvar_ps(d[r][2], 0x8000, _mm512_set1_epi32(0), w2);
            d[r][3] = _mm512_mask_permutexvar_ps(d[r][3], 0x8000, _mm512_set1_epi32(1), w2);
        }
    }
    __m512 e[4][4]; /* B^T d: rows d0-d2, d1+d2, d2-d1, d1-d3 */
#pragma GCC unroll 4
    for (int u = 0; u < 4; u++) {
        e[0][u] = _mm512_sub_ps(d[0][u], d[2][u]);
        e[1][u] = _mm512_add_ps(d[1][u], d[2][u]);
        e[2][u] = _mm512_sub_ps(d[2][u], d[1][u]);
        e[3][u] = _mm512_sub_ps(d[1][u], d[3][u]);
    }
#pragma GCC unroll 4
    for (int a = 0; a < 4; a++) { /* (B^T d) B: the same on columns */
        y[4 * a] = _mm512_sub_ps(e[a][0], e[a][2]);
        y[4 * a + 1] = _mm512_add_ps(e[a][1], e[a][2]);
        y[4 * a + 2] = _mm512_sub_ps(e[a][2], e[a][1]);
        y[4 * a + 3] = _mm512_sub_ps(e[a][1], e[a][3]);
    }
}

/* V[xi][c][q] (C, WBS rows per xi) = (B^T d B)[xi] of the tile in column q of the
 * block, a vector of tiles at a time. */
static void input_transform(float *V, const float *inp, const dfn_conv2d_shape *s, int64_t j0, int nj) {
    const int C = s->C;
    const int64_t HW = (int64_t)s->H * s->W;
    const int TW = (s->W + 1) / 2, pairs = pairs_rows(s);
    const window_indices wi = window_indices_of(TW);
    const int64_t R0 = j0 / TW, R1 = (j0 + nj - 1) / TW; /* tile rows n*TH + ty of the block */
    for (int64_t R = R0; R <= R1; R += pairs ? 2 : 1)
    for (int t0 = 0; t0 < (pairs ? 1 : TW); t0 += SEG) {
        const tile_reads t = pairs ? pair_reads(inp, s, &wi, R, j0, nj) : segment_reads(inp, s, &wi, R, j0, nj, t0);
        if (!t.m) continue;
        float *v = dfn_fptr(V, t.q);
        for (int c = 0; c < C; c++, v += WBS) {
            __m512 y[16];
            transform_channel(y, &t, c, HW);
#pragma GCC unroll 16
            for (int xi = 0; xi < 16; xi++) _mm512_mask_storeu_ps(v + (ptrdiff_t)xi * C * WBS, t.m, y[xi]);
        }
    }
}

/* The same transforms as bfloat16 pairs of channels (pack_pairs_bf16's layout):
 * Vp[xi][c/2][q] (rows of WB dwords, xs dwords per xi), channel 2p in the low half,
 * the high half of an odd C's last pair 0; columns past the block's tiles untouched. */
__attribute__((target("avx512bf16"))) static void input_transform_bf16(uint32_t *Vp, ptrdiff_t xs, const float *inp,
                                                                       const dfn_conv2d_shape *s, int64_t j0,
                                                                       int nj) {
    const int C = s->C;
    const int64_t HW = (int64_t)s->H * s->W;
    const int TW = (s->W + 1) / 2, pairs = pairs_rows(s);
    const window_indices wi = window_indices_of(TW);
    const int64_t R0 = j0 / TW, R1 = (j0 + nj - 1) / TW;
    for (int64_t R = R0; R <= R1; R += pairs ? 2 : 1)
    for (int t0 = 0; t0 < (pairs ? 1 : TW); t0 += SEG) {
        const tile_reads t = pairs ? pair_reads(inp, s, &wi, R, j0, nj) : segment_reads(inp, s, &wi, R, j0, nj, t0);
        if (!t.m) continue;
        const __mmask32 high = _pdep_u32(t.m, 0xAAAAAAAAu); /* the high words of the tiles' dwords */
        uint32_t *v = (uint32_t *)dfn_fptr((const float *)Vp, t.q);
        for (int c = 0; c < C; c++) {
            __m512 y[16];
            transform_channel(y, &t, c, HW);
            uint32_t *vc = v + (ptrdiff_t)(c / 2) * WB;
#pragma GCC unroll 16
            for (int xi = 0; xi < 16; xi++) { /* even channel: the whole dword (high 0); odd: its high word */
                const __m512i h = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(y[xi]));
                if (c % 2 == 0) _mm512_mask_storeu_epi32(vc + xi * xs, t.m, h);
                else _mm512_mask_storeu_epi16(vc + xi * xs, high, _mm512_slli_epi32(h, 16));
            }
        }
    }
}

/* o[lanes of m] = b + v, or with a (add at o's place) a + (b + v), a + v where
 * there is no bias; nothing where m is empty. */
static inline void store_outputs(float *o, const float *a, __mmask16 m, __m512 v, __m512 b, int biased) {
    if (!m) return;
    if (!a || biased) v = _mm512_add_ps(b, v);
    if (a) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, a), v);
    _mm512_mask_storeu_ps(o, m, v);
}

/* out (N,OC,H,W) = [add +] ([bias +] A^T M A) of every tile of the block, output channels
 * oc0 .. oc1-1; M[xi][oc - oc0][q] at stride xs per xi; the vectors of tiles of
 * the input transform (segments, or pairs of tile rows). */
static void output_transform(float *out, const float *add, const float *M, ptrdiff_t xs,
                             const float *bias, const dfn_conv2d_shape *s, int oc0, int oc1,
                             int64_t j0, int nj) {
    const int OC = s->OC, H = s->H, W = s->W, TH = (H + 1) / 2, TW = (W + 1) / 2, pairs = pairs_rows(s);
    /* interleave y0, y1 from lane L on, column 2k -> y0[L + k], 2k+1 -> y1[L + k]:
     * L = 0 and 8 (a segment's 32 columns), TW (a pair's second row) */
    const int first[3] = {0, 8, pairs ? TW : 0};
    int32_t iv[3][16];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 16; k++) iv[i][k] = DFN_MIN(15, first[i] + k / 2) + (k & 1) * 16;
    const __m512i jlo = _mm512_loadu_si512(iv[0]), jhi = _mm512_loadu_si512(iv[1]),
                  jrow2 = _mm512_loadu_si512(iv[2]);
    const int nrows = pairs ? 2 : 1;
    const int64_t R0 = j0 / TW, R1 = (j0 + nj - 1) / TW;
    for (int oc = oc0; oc < oc1; oc++) {
        const __m512 b = _mm512_set1_ps(bias ? bias[oc] : 0.0f);
        const float *mo = M + (ptrdiff_t)(oc - oc0) * WB;
        for (int64_t R = R0; R <= R1; R += nrows)
        for (int t0 = 0; t0 < (pairs ? 1 : TW); t0 += SEG) {
            dfn_tile_row tr[2];
            __mmask16 m = 0;
            for (int h = 0; h < nrows; h++) {
                tr[h] = dfn_tile_row_of(R + h, TH, TW, j0, nj);
                m |= pairs ? vf_lane_range(h * TW + tr[h].txa, h * TW + tr[h].txb)
                           : vf_lane_range(tr[h].txa - t0, tr[h].txb - t0);
            }
            if (!m) continue;
            const float *mp = dfn_fptr(mo, tr[0].q0 + t0);
            __m512 x[16];
#pragma GCC unroll 16
            for (int k = 0; k < 16; k++) x[k] = _mm512_maskz_loadu_ps(m, mp + k * xs);
            __m512 f[2][4]; /* A^T x: rows x0+x1+x2, x1-x2-x3 */
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                f[0][u] = _mm512_add_ps(_mm512_add_ps(x[u], x[4 + u]), x[8 + u]);
                f[1][u] = _mm512_sub_ps(_mm512_sub_ps(x[4 + u], x[8 + u]), x[12 + u]);
            }
#pragma GCC unroll 2
            for (int a = 0; a < 2; a++) {
                const __m512 y0 = _mm512_add_ps(_mm512_add_ps(f[a][0], f[a][1]), f[a][2]);
                const __m512 y1 = _mm512_sub_ps(_mm512_sub_ps(f[a][1], f[a][2]), f[a][3]);
                for (int h = 0; h < nrows; h++) {
                    const int oh = 2 * tr[h].ty + a;
                    if (tr[h].txa >= tr[h].txb || oh >= H) continue;
                    const int c0 = pairs ? 0 : 2 * t0; /* the output column of lane L's first value */
                    const int ca = 2 * tr[h].txa - c0, cb = DFN_MIN(2 * tr[h].txb, W) - c0;
                    const ptrdiff_t at = ((tr[h].n * OC + oc) * H + oh) * W + c0;
                    float *o = out + at;
                    const float *ad = add ? add + at : NULL;
                    store_outputs(o, ad, vf_lane_range(ca, cb), _mm512_permutex2var_ps(y0, h ? jrow2 : jlo, y1), b,
                                  bias != NULL);
                    if (!pairs) /* columns c0 + 16 .. c0 + 31 */
                        store_outputs(o + 16, ad ? ad + 16 : NULL, vf_lane_range(ca - 16, cb - 16),
                                      _mm512_permutex2var_ps(y0, jhi, y1), b, bias != NULL);
                }
            }
        }
    }
}
#else
/* The same transforms, VL tiles of a tile row at a time. Each of the four input
 * rows of a tile row is copied into a zero-padded row pad[1 .. W] (pad[0] and
 * everything past W are 0), so that tile tx reads d[r][u] = pad[2tx + u]: the
 * even and odd lanes of two vectors at pad + 2tx (u = 0, 1) and at pad + 2tx + 2
 * (u = 2, 3). Outputs are interleaved back the same way. */
/* d[u] = pad[2tx + u] for the VL tiles from tx on (p = pad + 2tx). */
static inline void load_patch_row(vf d[4], const float *p) {
    const vf p0 = vf_load(p), p1 = vf_load(p + VL), q0 = vf_load(p + 2), q1 = vf_load(p + 2 + VL);
    d[0] = VF_SHUFFLE(p0, p1, VF_EVEN_LANES);
    d[1] = VF_SHUFFLE(p0, p1, VF_ODD_LANES);
    d[2] = VF_SHUFFLE(q0, q1, VF_EVEN_LANES);
    d[3] = VF_SHUFFLE(q0, q1, VF_ODD_LANES);
}

/* Row a of (B^T d) B from row a of B^T d: e0-e2, e1+e2, e2-e1, e1-e3, stored as
 * V[4a + k] (rows at stride xs), every lane (those past the tile row are tiles of
 * the next row, written later, or no tile: WBS). */
static inline void store_transformed(float *v, ptrdiff_t xs, vf e0, vf e1, vf e2, vf e3) {
    vf_store(v, e0 - e2);
    vf_store(v + xs, e1 + e2);
    vf_store(v + 2 * xs, e2 - e1);
    vf_store(v + 3 * xs, e1 - e3);
}

static void input_transform(float *V, const float *inp, const dfn_conv2d_shape *s, int64_t j0, int nj) {
    const int C = s->C, H = s->H, W = s->W, TH = (H + 1) / 2, TW = (W + 1) / 2;
    const int64_t HW = (int64_t)H * W;
    const ptrdiff_t xs = (ptrdiff_t)C * WBS; /* between the rows V[xi] and V[xi+1] */
    const int len = 2 * TW + 2 * VL + 2; /* the reads of a last vector stay inside, in zeros */
    float *pad = dfn_scratch(3, (size_t)4 * len);
    memset(pad, 0, (size_t)4 * len * sizeof(float));
    const int64_t R0 = j0 / TW, R1 = (j0 + nj - 1) / TW;
    for (int64_t R = R0; R <= R1; R++) {
        const dfn_tile_row tr = dfn_tile_row_of(R, TH, TW, j0, nj);
        for (int c = 0; c < C; c++) {
            const float *x = inp + (tr.n * C + c) * HW;
            for (int r = 0; r < 4; r++) { /* a row is a few vectors: no library call */
                const int ih = 2 * tr.ty - 1 + r;
                float *restrict dst = pad + (size_t)r * len + 1;
                const int in = ih >= 0 && ih < H;
                const float *restrict src = in ? x + (int64_t)ih * W : x;
                int i = 0;
                for (; i + VL <= W; i += VL) vf_store(dst + i, in ? vf_load(src + i) : vf_zero());
                for (; i < W; i++) dst[i] = in ? src[i] : 0.0f;
            }
            for (int tx = tr.txa; tx < tr.txb; tx += VL) {
                float *v = V + (ptrdiff_t)c * WBS + (tr.q0 + tx);
                /* B^T d row by row (d0-d2, d1+d2, d2-d1, d1-d3), each finished at once:
                 * at most 12 vectors live */
                vf d0[4], d1[4], d2[4], d3[4];
                load_patch_row(d1, pad + len + 2 * tx);
                load_patch_row(d2, pad + 2 * len + 2 * tx);
                load_patch_row(d0, pad + 2 * tx);
                store_transformed(v, xs, d0[0] - d2[0], d0[1] - d2[1], d0[2] - d2[2], d0[3] - d2[3]);
                store_transformed(v + 4 * xs, xs, d1[0] + d2[0], d1[1] + d2[1], d1[2] + d2[2], d1[3] + d2[3]);
                store_transformed(v + 8 * xs, xs, d2[0] - d1[0], d2[1] - d1[1], d2[2] - d1[2], d2[3] - d1[3]);
                load_patch_row(d3, pad + 3 * len + 2 * tx);
                store_transformed(v + 12 * xs, xs, d1[0] - d3[0], d1[1] - d3[1], d1[2] - d3[2], d1[3] - d3[3]);
            }
        }
    }
}

static void output_transform(float *out, const float *add, const float *M, ptrdiff_t xs,
                             const float *bias, const dfn_conv2d_shape *s, int oc0, int oc1,
                             int64_t j0, int nj) {
    const int OC = s->OC, H = s->H, W = s->W, TH = (H + 1) / 2, TW = (W + 1) / 2;
    const int64_t R0 = j0 / TW, R1 = (j0 + nj - 1) / TW;
    for (int oc = oc0; oc < oc1; oc++) {
        const float b = bias ? bias[oc] : 0.0f;
        const vf bv = vf_set1(b);
        const float *mo = M + (ptrdiff_t)(oc - oc0) * WB;
        for (int64_t R = R0; R <= R1; R++) {
            const dfn_tile_row tr = dfn_tile_row_of(R, TH, TW, j0, nj);
            for (int tx = tr.txa; tx < tr.txb; tx += VL) {
                const int nl = DFN_MIN(VL, tr.txb - tx);
                vf f[2][4]; /* A^T x: rows x0+x1+x2, x1-x2-x3 */
                for (int u = 0; u < 4; u++) {
                    vf x[4]; /* x[a] = M[4a + u]; lanes past the tile row are never stored */
                    for (int a = 0; a < 4; a++) x[a] = vf_load(mo + ((4 * a + u) * xs + tr.q0 + tx));
                    f[0][u] = (x[0] + x[1]) + x[2];
                    f[1][u] = (x[1] - x[2]) - x[3];
                }
                for (int a = 0; a < 2; a++) {
                    const int oh = 2 * tr.ty + a;
                    if (oh >= H) break;
                    const vf y0 = (f[a][0] + f[a][1]) + f[a][2], y1 = (f[a][1] - f[a][2]) - f[a][3];
                    const vf lo = VF_SHUFFLE(y0, y1, VF_LOW_HALVES), hi = VF_SHUFFLE(y0, y1, VF_HIGH_HALVES);
                    const ptrdiff_t at = ((tr.n * OC + oc) * H + oh) * W + 2 * tx;
                    float *o = out + at;
                    const int nc = DFN_MIN(2 * nl, W - 2 * tx); /* columns 2tx .. of this row */
                    float part[2 * VL], *p = nc == 2 * VL ? o : part; /* the image's last columns via part */
                    vf v0 = lo, v1 = hi;
                    if (!add || bias) v0 = bv + v0, v1 = bv + v1;
                    if (add) {
                        const float *a = add + at;
                        if (p == part) memcpy(part, a, (size_t)nc * sizeof(float)), a = part;
                        v0 = vf_load(a) + v0, v1 = vf_load(a + VL) + v1;
                    }
                    vf_store(p, v0);
                    vf_store(p + VL, v1);
                    if (p == part) memcpy(o, part, (size_t)nc * sizeof(float));
                }
            }
        }
    }
}
#endif

/* The operands of one run: U from pack_winograd (float32; rows in tiles of MR), and
 * where the products are bfloat16 either its pairs over channels for conv_tile_bf16
 * (upp: block (xi, t) of Cp x MR dwords) or for AMX tiles (ua: xi, then R16 rows of
 * an output channel, each Kp16 pairs of input channels; zero past OC and C). */
typedef struct {
    const float *up;
    const uint32_t *upp, *ua;
    int R16, Kp16;
} winograd_weights;

/* The M of one task: M[xi][oc - oc0][q] = sum_c U[xi][oc][c] V[xi][c][q] for the
 * block's tiles, oc0 <= oc < oc1, rows at stride WB and xs = rows per xi * WB. */
typedef struct {
    float *M;
    ptrdiff_t xs;
    int oc0, oc1;
} winograd_products;

/* M for output-channel tiles t0 .. t1-1 of `rows` channels (slot 1; + the reads of a last vector). */
static winograd_products products_buffer(const dfn_conv2d_shape *s, int t0, int t1, int rows) {
    const winograd_products pr = {dfn_scratch(1, (size_t)16 * (t1 - t0) * rows * WB + VL),
                                  (ptrdiff_t)(t1 - t0) * rows * WB, t0 * rows, DFN_MIN(s->OC, t1 * rows)};
    return pr;
}

/* Columns nj .. ncols-1 of nrows rows of 4-byte elements at stride ld: zero (a block's missing tiles). */
static void clear_columns(void *V, int64_t nrows, ptrdiff_t ld, int nj, int ncols) {
    if (nj < ncols)
        for (int64_t r = 0; r < nrows; r++) memset((uint32_t *)V + r * ld + nj, 0, (size_t)(ncols - nj) * 4);
}

#if VL == 16
/* The task's products in AMX tiles: rows of 16 output channels tile rows t0 .. t1-1. */
static winograd_products products_amx(const winograd_weights *wt, const float *inp, const dfn_conv2d_shape *s,
                                      int64_t j0, int nj, int t0, int t1) {
    const int Cp = (s->C + 1) / 2, Kp = wt->Kp16, nr = t1 - t0;
    const ptrdiff_t vs = (ptrdiff_t)Kp * WB; /* dwords of V per xi */
    uint32_t *Vp = (uint32_t *)dfn_scratch(4, (size_t)16 * vs);
    for (int xi = 0; xi < 16; xi++) { /* pairs past C read as zeros, and so do columns past the block */
        if (Kp > Cp) memset(Vp + xi * vs + (ptrdiff_t)Cp * WB, 0, (size_t)(Kp - Cp) * WB * sizeof(uint32_t));
        clear_columns(Vp + xi * vs, Cp, WB, nj, WB);
    }
    input_transform_bf16(Vp, vs, inp, s, j0, nj);
    const winograd_products pr = products_buffer(s, t0, t1, TR);
    amx_begin();
    for (int xi = 0; xi < 16; xi++)
        amx_products(nr, Kp / TR, WB / 16, 0, wt->ua + ((size_t)xi * wt->R16 + (size_t)t0 * TR) * Kp, Kp,
                     Vp + xi * vs, WB, pr.M + xi * pr.xs, WB);
    amx_end();
    return pr;
}

/* The task's products from pairs of channels with vdpbf16ps: output-channel tiles t0 .. t1-1 of MR. */
static winograd_products products_bf16(const winograd_weights *wt, const float *inp, const dfn_conv2d_shape *s,
                                       int64_t j0, int nj, int t0, int t1) {
    const int Cp = (s->C + 1) / 2, ntiles = (s->OC + MR - 1) / MR;
    uint32_t *Vp = (uint32_t *)dfn_scratch(4, (size_t)16 * Cp * WB);
    clear_columns(Vp, 16 * Cp, WB, nj, WB);
    input_transform_bf16(Vp, (ptrdiff_t)Cp * WB, inp, s, j0, nj);
    const winograd_products pr = products_buffer(s, t0, t1, MR);
    for (int xi = 0; xi < 16; xi++)
        for (int t = t0; t < t1; t++)
            conv_tile_bf16(Cp, wt->upp + ((size_t)xi * ntiles + t) * Cp * MR, Vp + (size_t)xi * Cp * WB, WB,
                           pr.M + xi * pr.xs + (ptrdiff_t)(t - t0) * MR * WB);
    return pr;
}
#endif

/* The task's products in float32: output-channel tiles t0 .. t1-1 of MR. */
static winograd_products products_fp32(const winograd_weights *wt, const float *inp, const dfn_conv2d_shape *s,
                                       int64_t j0, int nj, int t0, int t1) {
    const int C = s->C, ntiles = (s->OC + MR - 1) / MR;
    float *V = dfn_scratch(0, (size_t)16 * C * WBS);
    clear_columns(V, 16 * C, WBS, nj, WBS);
    input_transform(V, inp, s, j0, nj);
    const winograd_products pr = products_buffer(s, t0, t1, MR);
    for (int xi = 0; xi < 16; xi++)
        for (int t = t0; t < t1; t++)
            conv_tile(C, wt->up + ((size_t)xi * ntiles + t) * C * MR, V + (size_t)xi * C * WBS, WBS,
                      pr.M + xi * pr.xs + (ptrdiff_t)(t - t0) * MR * WB);
    return pr;
}

/* out (N,OC,H,W) = [add +] (conv(inp (N,C,H,W), g) + bias (OC or NULL)), the products
 * from wt (bfloat16 where it has pairs: the transforms stay float32, the input
 * transform writes channel pairs); the shape fits (dfn_conv2d_winograd_fits). */
static void conv_winograd(float *out, const float *add, const float *inp, const winograd_weights *wt,
                          const float *bias, const dfn_conv2d_shape *s) {
    const int64_t NT = s->N * (int64_t)((s->H + 1) / 2) * ((s->W + 1) / 2);
    const int64_t nblk = (NT + WB - 1) / WB;
    /* tiles of output channels: MR rows, or TR in AMX tiles */
    const int rows = wt->ua ? TR : MR, ntiles = (s->OC + rows - 1) / rows;
    int tiles_per_chunk;
    const int nchunks = dfn_tile_chunks(nblk, ntiles, &tiles_per_chunk);
    const int64_t ntasks = nblk * nchunks;
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < ntasks; task++) {
        const int64_t blk = task / nchunks;
        const int chunk = (int)(task % nchunks);
        const int64_t j0 = blk * WB;
        const int nj = (int)DFN_MIN((int64_t)WB, NT - j0);
        const int t0 = chunk * tiles_per_chunk, t1 = DFN_MIN(ntiles, t0 + tiles_per_chunk);
#if VL == 16
        const winograd_products pr = wt->ua    ? products_amx(wt, inp, s, j0, nj, t0, t1)
                                     : wt->upp ? products_bf16(wt, inp, s, j0, nj, t0, t1)
                                               : products_fp32(wt, inp, s, j0, nj, t0, t1);
#else
        const winograd_products pr = products_fp32(wt, inp, s, j0, nj, t0, t1);
#endif
        output_transform(out, add, pr.M, pr.xs, bias, s, pr.oc0, pr.oc1, j0, nj);
    }
}

/* out = [add +] the conv of weight (or its flip), with the products of `kind`. */
static void winograd(float *out, const float *add, const float *inp, const float *weight, int flip,
                     const float *bias, const dfn_conv2d_shape *s, int kind) {
    /* U (and its pairs) in the calling thread's slot 2 (tasks use 0, 1, 3 and 4) */
    const int ntiles = (s->OC + MR - 1) / MR, Cp = (s->C + 1) / 2;
    const int R16 = (s->OC + TR - 1) / TR * TR, Kp16 = (Cp + TR - 1) / TR * TR;
    const size_t nup = (size_t)ntiles * MR * s->C * 16;
    const size_t npairs = kind == PRODUCTS_BF16 ? (size_t)16 * ntiles * Cp * MR
                          : kind == PRODUCTS_AMX ? (size_t)16 * R16 * Kp16
                                                 : 0;
    float *up = dfn_scratch(2, nup + npairs);
    if (flip) pack_winograd(up, weight, s->C, s->OC, 1); /* s is the transposed conv's shape */
    else pack_winograd(up, weight, s->OC, s->C, 0);
    winograd_weights wt = {up, NULL, NULL, R16, Kp16};
#if VL == 16
    uint32_t *pairs = (uint32_t *)(up + nup);
    if (kind == PRODUCTS_BF16) {
        for (int b = 0; b < 16 * ntiles; b++) /* block (xi, t): C x MR */
            pack_pairs_bf16(pairs + (size_t)b * Cp * MR, MR, up + (size_t)b * s->C * MR, MR, s->C, MR);
        wt.upp = pairs;
    } else if (kind == PRODUCTS_AMX) {
        for (int xi = 0; xi < 16; xi++) /* U[xi]: rows in tiles of MR, C channels */
            pack_amx_weights(pairs + (size_t)xi * R16 * Kp16, Kp16, R16, up + (size_t)xi * ntiles * s->C * MR,
                             s->OC, s->C);
        wt.ua = pairs;
    }
#else
    (void)kind; /* bfloat16 exists at the avx512 level only */
#endif
    conv_winograd(out, add, inp, &wt, bias, s);
}

/* float32: F(4x4, 3x3) where it fits (conv2d_winograd4.c), else F(2x2, 3x3) */
void DFN_K(dfn_conv2d_winograd)(float *out, const float *add, const float *inp, const float *weight,
                                int flip, const float *bias, const dfn_conv2d_shape *s) {
    if (winograd4_fits(s)) winograd4(out, add, inp, weight, flip, bias, s);
    else winograd(out, add, inp, weight, flip, bias, s, PRODUCTS_FP32);
}

#if VL == 16
void DFN_K(dfn_conv2d_winograd_bf16)(float *out, const float *add, const float *inp, const float *weight,
                                     int flip, const float *bias, const dfn_conv2d_shape *s) {
    winograd(out, add, inp, weight, flip, bias, s, PRODUCTS_BF16);
}

void DFN_K(dfn_conv2d_winograd_amx)(float *out, const float *add, const float *inp, const float *weight,
                                    int flip, const float *bias, const dfn_conv2d_shape *s) {
    winograd(out, add, inp, weight, flip, bias, s, PRODUCTS_AMX);
}
#endif

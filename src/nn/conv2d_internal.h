/* conv2d_internal.h - what the conv2d sources share: the register tile, the
 * panel maps, and the per-level functions one algorithm borrows from another.
 * conv2d.c describes the algorithms and chooses among them.
 *
 * Terms. Every output pixel of the batch is a "column" j = n*OH*OW + oh*OW + ow;
 * a row r indexes the C*KH*KW taps; col[r][j] is the input under tap r of column
 * j. Columns are cut into panels of NR = 48 (a panel may run over an image
 * boundary); a panel is three groups of 16 lanes, each group described by a
 * tap_map per tap (where its lanes read) and an out_map (where they write). */
#ifndef DFN_CONV2D_INTERNAL_H
#define DFN_CONV2D_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "nn/nn.h"

#define NR 48    /* columns of a panel and of the register tile */
#define LANES 16 /* lanes of a map group */
#define NV 3     /* map groups per panel: NR / LANES */
#define TR 16    /* rows of an AMX tile: output channels of C and A; pairs of channels of B */

/* The arithmetic of a conv's products (the algorithms take it as `kind`): float32,
 * bfloat16 pairs summed by vdpbf16ps (conv_tile_bf16), bfloat16 pairs in AMX tiles. */
enum { PRODUCTS_FP32, PRODUCTS_BF16, PRODUCTS_AMX };

/* ------------------------------------------------------------ panel maps (conv2d_maps.c) */

/* Where the 16 lanes of one group of a panel read from, for one tap (kh,kw).
 * Offsets are in floats from the start of channel 0 of the panel's first image
 * (add c*H*W for channel c). Shift mode (nseg >= 0): the lanes of segment s (bit
 * l of m[s]) read base + off[s] + l (at most 2 segments, one per image; nseg = 0:
 * every lane is padding). Gather mode (nseg = -1): lane l (bit l of gm) reads
 * base + goff + idx[l]. Lanes in no mask read 0. */
typedef struct {
    int nseg;
    uint16_t m[2], gm;
    int64_t off[2], goff;
    int32_t idx[16];
} dfn_tap_map;

/* Where the lanes of one group write in `out` (N,OC,OH*OW): the lanes of segment
 * s (bit l of m[s]) are image n's pixels, at out + oc*OH*OW + off[s] + l. */
typedef struct {
    int nseg;
    uint16_t m[16];
    int64_t off[16];
} dfn_out_map;

/* The maps of every full panel, computed once per call where panels repeat
 * (count > 0): entry e serves the panels that start at p0 = e * step within
 * their first image. */
typedef struct {
    int64_t step, count;
    dfn_tap_map *taps; /* (count, KH*KW, NV) */
    dfn_out_map *outs; /* (count, NV), or NULL */
} dfn_map_cache;

/* Bytes of the cache for `npanels` panels; 0 when maps per panel are cheaper. */
size_t dfn_map_cache_bytes(const dfn_conv2d_shape *s, int64_t npanels, int with_out);
/* Builds the cache in `ws` (dfn_map_cache_bytes of it, 64-byte aligned), in parallel. */
void dfn_map_cache_init(dfn_map_cache *mc, void *ws, const dfn_conv2d_shape *s, int64_t npanels,
                        int with_out);
/* The maps of the panel of columns j0 .. j0+ncols-1, relative to image *n0 = j0 / (OH*OW):
 * from the cache for a full panel, else built into tmp (KH*KW*NV maps) and otmp (NV). */
const dfn_tap_map *dfn_panel_maps(const dfn_map_cache *mc, const dfn_conv2d_shape *s, int64_t j0,
                                  int ncols, dfn_tap_map *tmp, dfn_out_map *otmp,
                                  const dfn_out_map **omap, int64_t *n0);

/* A float pointer `off` floats from `base`, computed on integers: a map's segment
 * may start before or after the buffer while its lanes stay inside. */
static inline float *dfn_fptr(const float *base, int64_t off) {
    return (float *)((uintptr_t)base + (uintptr_t)(off * (int64_t)sizeof(float)));
}

/* Chunks of output-channel tiles per column unit (panel, tile block) in a task
 * layout over `nunits` units and `ntiles` tiles: one chunk when there are >= 16
 * units, else enough chunks for >= 16 tasks where the shape allows (batch 1,
 * small images). Shape-only; *per_chunk tiles per chunk. */
static inline int dfn_tile_chunks(int64_t nunits, int ntiles, int *per_chunk) {
    int nchunks = 1;
    if (nunits < 16) nchunks = DFN_MIN(ntiles, (int)((16 + nunits - 1) / nunits));
    *per_chunk = (ntiles + nchunks - 1) / nchunks;
    return (ntiles + *per_chunk - 1) / *per_chunk;
}

/* A tile row of a Winograd block (tiles j = n*TH*TW + ty*TW + tx in blocks of
 * nj from j0): tile row R = n*TH + ty, its tile tx at column q0 + tx of the block,
 * tiles txa <= tx < txb in the block. */
typedef struct {
    int64_t n;
    int ty, q0, txa, txb;
} dfn_tile_row;

static inline dfn_tile_row dfn_tile_row_of(int64_t R, int TH, int TW, int64_t j0, int nj) {
    dfn_tile_row tr;
    tr.n = R / TH;
    tr.ty = (int)(R % TH);
    tr.q0 = (int)(R * TW - j0);
    tr.txa = DFN_MAX(0, -tr.q0);
    tr.txb = DFN_MIN(TW, nj - tr.q0);
    return tr;
}

/* A workspace pointer: the first 64-byte boundary at or after p. */
static inline void *dfn_align64(void *p) { return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

/* ------------------------------------------------------------ per level (conv2d_panel.c) */

#if defined(DFN_KERNEL_LEVEL)
#include "nn/kernels.h"
#include "nn/simd.h"

/* Rows of the register tile (output channels, or taps in backward data). */
#if VL == 16
#define MR 8
#else
#define MR 4
#endif

/* What the per-level sources share, under their level's names (kernels.h). */
#define conv_tile DFN_K(dfn_conv_tile)
#define im2col_panel DFN_K(dfn_im2col_panel)
#define col2im_rows DFN_K(dfn_col2im_rows)
#define pack_weights DFN_K(dfn_conv_pack_weights)
#define conv_tile_bf16 DFN_K(dfn_conv_tile_bf16)
#define pack_pairs_bf16 DFN_K(dfn_pack_pairs_bf16)

/* The register tile: c[i][v], row i < MR, vector v < 3 of its columns. */
static inline void tile_zero(vf c[MR][3]) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = c[i][2] = vf_zero();
}

/* One step of the sum: c[i][v] += a[i] b_v for every row. */
static inline void tile_fma(vf c[MR][3], const float *a, vf b0, vf b1, vf b2) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        const vf ai = vf_set1(a[i]);
        c[i][0] = vf_fma(ai, b0, c[i][0]);
        c[i][1] = vf_fma(ai, b1, c[i][1]);
        c[i][2] = vf_fma(ai, b2, c[i][2]);
    }
}

/* Rows of C (stride NR), columns j0 .. j0 + 3 VL - 1, from the tile. */
static inline void tile_store(float *C, int j0, vf c[MR][3]) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        vf_store(C + i * NR + j0, c[i][0]);
        vf_store(C + i * NR + j0 + VL, c[i][1]);
        vf_store(C + i * NR + j0 + 2 * VL, c[i][2]);
    }
}

/* C (MR,48) = A^T B: C[i][j] = sum_k A[k][i] B[k][j], k ascending (one rounding per
 * term where the level has FMA). A (K,MR) a packed panel of MR rows; B (K,48) rows at
 * stride ldb, each with 48 readable floats; C (MR,48) contiguous. */
void conv_tile(int K, const float *restrict A, const float *restrict B, ptrdiff_t ldb,
               float *restrict C);

/* im2col of one panel: for channels c0 <= c < c1 and taps kk,
 *   col[(c-c0)*rs_c + kk*rs_k][0..48) = inp[n, c, tap kk of the lane's pixel]
 * (rs_c = KK, rs_k = 1: rows in weight order (c,kh,kw); rs_c = 1, rs_k = C: (kh,kw,c)),
 * rows at stride ld; inp is the panel's first image, `map` its maps. */
void im2col_panel(float *col, ptrdiff_t ld, ptrdiff_t rs_c, ptrdiff_t rs_k, const float *inp,
                  const dfn_tap_map *map, const dfn_conv2d_shape *s, int c0, int c1);

/* col2im of rows r0 .. r0+nrows-1 (r = c*KK + kk) of one panel:
 * dinp[n, c, tap pixel of the lane] += dcol[r - r0][lane]; dcol (nrows, 48) contiguous. */
void col2im_rows(float *dinp, const float *dcol, int r0, int nrows, const dfn_tap_map *map,
                 const dfn_conv2d_shape *s);

/* Weights as the A operand of conv_tile, taps outer, channels inner:
 *   wp[t][kk][c][i] = w[t*MR+i, c, kk]    (zero past OC)
 * from w (OC, C, KK); with `flip`, the weights of the transposed, flipped conv
 * that stride-1 backward data computes (OC and C swapped):
 *   wp[t][kk][oc][i] = w[oc, t*MR+i, KK-1-kk]   (zero past C)
 * wp (ceil(rows/MR), KK, cols, MR), rows = OC (or C), cols = C (or OC). */
void pack_weights(float *wp, const float *w, int OC, int C, int KK, int flip);

/* ------------------------------------------------------------ Winograd (conv2d_winograd*.c) */

/* The 3x3 kernels of MR output channels, lane i for row t*MR+i, that the Winograd
 * packs transform: g[kh][kw][i] = w[t*MR+i, c, kh, kw] (w (rows, C, 3, 3)), or with
 * `flip` w[c, t*MR+i, 2-kh, 2-kw] (w (cols, C = rows, 3, 3): backward data's
 * flipped, transposed kernel); zero past `rows`. */
static inline void winograd_taps(double g[3][3][MR], const float *w, int t, int c, int rows, int C, int flip) {
    for (int i = 0; i < MR; i++) {
        const int r = t * MR + i;
        for (int k = 0; k < 9; k++)
            g[k / 3][k % 3][i] = r >= rows ? 0.0
                                 : flip    ? w[((size_t)c * C + r) * 9 + 8 - k]
                                           : w[((size_t)r * C + c) * 9 + k];
    }
}

/* Winograd F(4x4, 3x3) (conv2d_winograd4.c) */

#define winograd4 DFN_K(dfn_conv2d_winograd4)
#define winograd4_fits DFN_K(dfn_conv2d_winograd4_fits)

/* 1 where a float32 conv of shape s runs as F(4x4, 3x3): stride-1 3x3 "same",
 * enough 4x4 tiles covering at most 4/3 of the image; F(2x2, 3x3) fits every
 * such shape. */
int winograd4_fits(const dfn_conv2d_shape *s);

/* out = [add +] ([bias +] conv(inp, weight or its flip)) as dfn_conv_fn (kernels.h),
 * in float32, where winograd4_fits(s). */
void winograd4(float *out, const float *add, const float *inp, const float *weight, int flip, const float *bias,
               const dfn_conv2d_shape *s);

#if VL == 16
/* ------------------------------------------------------------ bfloat16 (AVX512_BF16) */

/* The operands of conv_tile in bfloat16 pairs: a sum over k becomes a sum over
 * pairs p = (k = 2p, 2p+1), one dword per pair and column, the even row in the
 * low half; bfloat16 is float32's upper 16 bits, rounded to nearest even.
 *   dst[p][j] = bf16(src[2p][j]) | bf16(src[2p+1][j]) << 16,  p < ceil(K/2)
 * (row K, past an odd K, reads as 0); rows at strides ldd and lds (elements).
 * Only where the CPU has AVX512_BF16 (dfn_cpu_has_bf16). */
void pack_pairs_bf16(uint32_t *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds, int K, int ncols);

/* C (MR,48) = A^T B as conv_tile, from pairs: C[i][j] = sum_p (A[p][i] . B[p][j]),
 * p ascending, each pair's two products exact and added to the float32 sum by
 * vdpbf16ps (Intel SDM: the odd product first, then the even, each rounded to
 * nearest even, denormals flushed). A (Kp, MR), B (Kp, 48) rows at stride ldb. */
void conv_tile_bf16(int Kp, const uint32_t *restrict A, const uint32_t *restrict B, ptrdiff_t ldb,
                    float *restrict C);

/* ------------------------------------------------------------ AMX tiles (the amx level) */

#define amx_begin DFN_K(dfn_amx_begin)
#define amx_end DFN_K(dfn_amx_end)
#define amx_products DFN_K(dfn_amx_products)
#define pack_amx_weights DFN_K(dfn_pack_amx_weights)

/* Configures the calling thread's tiles for amx_products (tiles 0-2: C, 16 rows of
 * 16 floats; 3: A, 16 rows of 16 pairs; 4-6: B, 16 pairs of rows of 16 columns);
 * amx_end releases them. Only where dfn_cpu_supports(DFN_ISA_AMX). */
void amx_begin(void);
void amx_end(void);

/* C (16 nr, 16 nc) (+)= A B between amx_begin and amx_end, from bfloat16 pairs as
 * conv_tile_bf16's: C[r][j] = (accumulate ? C[r][j] : 0) + sum_p (A[r][p] . B[p][j]),
 * p < 16 nk, 16 pairs per tdpbf16ps (Intel SDM: each pair's products exact, the even
 * product added first, then the odd, p ascending; denormals flushed). A (16 nr, 16 nk)
 * dwords at stride lda, a row per output; B (16 nk, 16 nc) at stride ldb, as
 * conv_tile_bf16's (nc = 3: a panel or block of 48 columns); C at stride ldc;
 * strides in elements, every row of A and B readable and finite. */
void amx_products(int nr, int nk, int nc, int accumulate, const uint32_t *A, ptrdiff_t lda, const uint32_t *B,
                  ptrdiff_t ldb, float *C, ptrdiff_t ldc);

/* conv_tile's A operand (ceil(rows/MR) tiles of (K, MR) floats, as pack_weights and
 * pack_winograd lay them out) as amx_products' A: ua[r][p] (R16 rows at stride lda)
 * = the bfloat16 pair of the tiles' a[2p][r], a[2p+1][r] (pack_pairs_bf16's rounding;
 * the high half of an odd K's last pair 0), zero past `rows` and past ceil(K/2). */
void pack_amx_weights(uint32_t *ua, ptrdiff_t lda, int R16, const float *wp, int rows, int K);
#endif
#endif

#endif

/* conv2d_panel.c - the pieces every conv2d algorithm is built from, at one
 * instruction-set level (compiled once per level, kernels.h): the register tile
 * C = A^T B, im2col and col2im of a panel through its maps, and the packing of
 * the weights as the tile's A operand. */
#include <string.h>

#include "nn/conv2d_internal.h"

/* ------------------------------------------------------------ the register tile */

/* MR x (3 vectors) accumulators stay in registers while k runs (8 x 48 with
 * AVX-512, 4 x 24 with AVX2 and 4 x 12 with SSE2/NEON: 24 or 12 of the 32 or 16
 * vector registers); a panel of 48 columns takes 48 / (3 VL) passes over A. */
void conv_tile(int K, const float *restrict A, const float *restrict B, ptrdiff_t ldb,
               float *restrict C) {
    for (int j0 = 0; j0 < NR; j0 += 3 * VL) {
        vf c[MR][3];
        tile_zero(c);
        const float *a = A, *b = B + j0;
        for (int k = 0; k < K; k++, a += MR, b += ldb) tile_fma(c, a, vf_load(b), vf_load(b + VL), vf_load(b + 2 * VL));
        tile_store(C, j0, c);
    }
}

#if VL == 16
/* The same tile from bfloat16 pairs: each vdpbf16ps does the work of two FMAs. */
__attribute__((target("avx512bf16"), noinline)) void conv_tile_bf16(int Kp, const uint32_t *restrict A,
                                                                    const uint32_t *restrict B,
                                                                    ptrdiff_t ldb, float *restrict C) {
    __m512 c[MR][3];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = c[i][2] = _mm512_setzero_ps();
    for (int p = 0; p < Kp; p++, A += MR, B += ldb) {
        const __m512bh b0 = (__m512bh)_mm512_loadu_si512(B), b1 = (__m512bh)_mm512_loadu_si512(B + 16),
                       b2 = (__m512bh)_mm512_loadu_si512(B + 32);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            const __m512bh a = (__m512bh)_mm512_set1_epi32((int)A[i]);
            c[i][0] = _mm512_dpbf16_ps(c[i][0], a, b0);
            c[i][1] = _mm512_dpbf16_ps(c[i][1], a, b1);
            c[i][2] = _mm512_dpbf16_ps(c[i][2], a, b2);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
        for (int v = 0; v < 3; v++) _mm512_storeu_ps(C + i * NR + 16 * v, c[i][v]);
}

__attribute__((target("avx512bf16"))) void pack_pairs_bf16(uint32_t *dst, ptrdiff_t ldd, const float *src,
                                                           ptrdiff_t lds, int K, int ncols) {
    int16_t order[32]; /* words lo[0], hi[0], lo[1], hi[1], ... of (lo | hi << 256) */
    for (int k = 0; k < 32; k++) order[k] = (int16_t)(k / 2 + (k & 1) * 16);
    const __m512i interleave = _mm512_loadu_si512(order);
    for (int p = 0; p < (K + 1) / 2; p++) {
        const float *lo = src + (ptrdiff_t)2 * p * lds, *hi = lo + lds;
        const int has_hi = 2 * p + 1 < K;
        uint32_t *d = dst + (ptrdiff_t)p * ldd;
        int j = 0;
        for (; j + 16 <= ncols; j += 16) { /* 16 pairs: one conversion of both rows, one permutation */
            const __m512 h = has_hi ? _mm512_loadu_ps(hi + j) : _mm512_setzero_ps();
            const __m512i w = (__m512i)_mm512_cvtne2ps_pbh(h, _mm512_loadu_ps(lo + j));
            _mm512_storeu_si512(d + j, _mm512_permutexvar_epi16(interleave, w));
        }
        for (; j < ncols; j += 8) {
            const __mmask8 m = ncols - j >= 8 ? 0xFF : (__mmask8)((1u << (ncols - j)) - 1);
            const __m256i l = _mm256_cvtepu16_epi32((__m128i)_mm256_cvtneps_pbh(_mm256_maskz_loadu_ps(m, lo + j)));
            const __m256i h =
                has_hi ? _mm256_cvtepu16_epi32((__m128i)_mm256_cvtneps_pbh(_mm256_maskz_loadu_ps(m, hi + j)))
                       : _mm256_setzero_si256();
            _mm256_mask_storeu_epi32(d + j, m, _mm256_or_si256(l, _mm256_slli_epi32(h, 16)));
        }
    }
}

/* ------------------------------------------------------------ AMX tiles */

typedef struct { /* LDTILECFG's 64 bytes, palette 1 */
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;

__attribute__((target("amx-tile"))) void amx_begin(void) {
    amx_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 7; t++) cfg.rows[t] = TR, cfg.colsb[t] = 64; /* 16 floats or 16 dwords a row */
    __asm__ volatile("" ::: "memory"); /* the intrinsic tells the compiler of 8 of the 64 bytes only */
    _tile_loadconfig(&cfg);
}

__attribute__((target("amx-tile"))) void amx_end(void) { _tile_release(); }

/* Tile registers are named in the instructions: C blocks 0-2 (three columns of
 * 16), A 3, B 4-6. The inline assembly of the tile loads does not tell the compiler
 * that it reads memory: the barrier first makes every store before the call visible. */
__attribute__((target("amx-tile,amx-bf16"))) void amx_products(int nr, int nk, int nc, int accumulate,
                                                              const uint32_t *A, ptrdiff_t lda, const uint32_t *B,
                                                              ptrdiff_t ldb, float *C, ptrdiff_t ldc) {
    __asm__ volatile("" ::: "memory");
    const long sa = (long)(lda * 4), sb = (long)(ldb * 4), sc = (long)(ldc * 4);
    for (int r = 0; r < nr; r++) {
        const uint32_t *a = A + (ptrdiff_t)r * TR * lda;
        for (int n = 0; n < nc; n += 3) { /* up to three column tiles per pass over A */
            float *c = C + (ptrdiff_t)r * TR * ldc + n * 16;
            const int w = DFN_MIN(3, nc - n);
            if (accumulate) {
                _tile_loadd(0, c, sc);
                if (w > 1) _tile_loadd(1, c + 16, sc);
                if (w > 2) _tile_loadd(2, c + 32, sc);
            } else {
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
            }
            for (int k = 0; k < nk; k++) {
                const uint32_t *b = B + (ptrdiff_t)k * TR * ldb + n * 16;
                _tile_loadd(3, a + k * TR, sa);
                _tile_loadd(4, b, sb);
                _tile_dpbf16ps(0, 3, 4);
                if (w > 1) {
                    _tile_loadd(5, b + 16, sb);
                    _tile_dpbf16ps(1, 3, 5);
                }
                if (w > 2) {
                    _tile_loadd(6, b + 32, sb);
                    _tile_dpbf16ps(2, 3, 6);
                }
            }
            _tile_stored(0, c, sc);
            if (w > 1) _tile_stored(1, c + 16, sc);
            if (w > 2) _tile_stored(2, c + 32, sc);
        }
    }
}

/* Tile by tile in parallel: its (K, MR) block as pairs (Kp, MR) in slot 0, then
 * transposed into its MR rows of ua. */
void pack_amx_weights(uint32_t *ua, ptrdiff_t lda, int R16, const float *wp, int rows, int K) {
    const int ntiles = (rows + MR - 1) / MR, Kp = (K + 1) / 2;
    memset(ua, 0, (size_t)R16 * lda * sizeof(uint32_t));
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntiles; t++) {
        uint32_t *tmp = (uint32_t *)dfn_scratch(0, (size_t)Kp * MR);
        pack_pairs_bf16(tmp, MR, wp + (size_t)t * K * MR, MR, K, MR);
        for (int i = 0; i < MR && t * MR + i < rows; i++)
            for (int p = 0; p < Kp; p++) ua[(ptrdiff_t)(t * MR + i) * lda + p] = tmp[p * MR + i];
    }
}
#endif

/* ------------------------------------------------------------ reads and writes through maps */

#if VL == 16
/* The 16 lanes of tap map `tm` read from channel base `base` (padding reads 0):
 * masked loads in shift mode, a gather otherwise. */
static inline void tap_load(float *dst, const dfn_tap_map *tm, const float *base) {
    if (tm->nseg >= 0) {
        __m512 x = _mm512_setzero_ps();
        for (int g = 0; g < tm->nseg; g++) x = _mm512_mask_loadu_ps(x, tm->m[g], dfn_fptr(base, tm->off[g]));
        _mm512_storeu_ps(dst, x);
        return;
    }
    const __m512i idx = _mm512_loadu_si512(tm->idx);
    _mm512_storeu_ps(dst, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), tm->gm, idx, dfn_fptr(base, tm->goff), 4));
}

/* base[lane's offset] += x[lane] for the lanes of `tm` (no two lanes share an
 * address: for a fixed tap, distinct output pixels read distinct input pixels). */
static inline void tap_add(const dfn_tap_map *tm, float *base, const float *x) {
    const __m512 xv = _mm512_loadu_ps(x);
    if (tm->nseg >= 0) {
        for (int g = 0; g < tm->nseg; g++) {
            float *p = dfn_fptr(base, tm->off[g]);
            const __m512 y = _mm512_maskz_loadu_ps(tm->m[g], p);
            _mm512_mask_storeu_ps(p, tm->m[g], _mm512_add_ps(y, xv));
        }
        return;
    }
    const __m512i idx = _mm512_loadu_si512(tm->idx);
    float *p = dfn_fptr(base, tm->goff);
    const __m512 y = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), tm->gm, idx, p, 4);
    _mm512_mask_i32scatter_ps(p, tm->gm, idx, _mm512_add_ps(y, xv), 4);
}
#else
/* The same with plain vectors: a whole group of one image is a copy, a shift
 * segment two masked loads (AVX2) or a loop over its lanes. */
static inline void tap_load(float *dst, const dfn_tap_map *tm, const float *base) {
    if (tm->nseg == 1 && tm->m[0] == 0xFFFF) {
        const float *p = dfn_fptr(base, tm->off[0]);
        for (int l = 0; l < LANES; l += VL) vf_store(dst + l, vf_load(p + l));
        return;
    }
    for (int l = 0; l < LANES; l += VL) vf_store(dst + l, vf_zero());
    if (tm->nseg >= 0) {
        for (int g = 0; g < tm->nseg; g++) {
#if VL == 8 /* lanes of other segments hold +0 here: or-ing in this one's bits keeps them */
            for (int h = 0; h < LANES; h += 8) {
                const __m256i mk = vf_lane_mask(tm->m[g] >> h & 0xFFu);
                const __m256 x = _mm256_maskload_ps(dfn_fptr(base, tm->off[g] + h), mk);
                _mm256_storeu_ps(dst + h, _mm256_or_ps(_mm256_loadu_ps(dst + h), x));
            }
#else
            for (int l = 0; l < LANES; l++)
                if (tm->m[g] >> l & 1) dst[l] = *dfn_fptr(base, tm->off[g] + l);
#endif
        }
        return;
    }
    for (int l = 0; l < LANES; l++)
        if (tm->gm >> l & 1) dst[l] = *dfn_fptr(base, tm->goff + tm->idx[l]);
}

static inline void tap_add(const dfn_tap_map *tm, float *base, const float *x) {
    if (tm->nseg >= 0) {
        for (int g = 0; g < tm->nseg; g++) {
            if (tm->m[g] == 0xFFFF) {
                float *restrict p = dfn_fptr(base, tm->off[g]);
                for (int l = 0; l < LANES; l++) p[l] += x[l];
                continue;
            }
            for (int l = 0; l < LANES; l++)
                if (tm->m[g] >> l & 1) *dfn_fptr(base, tm->off[g] + l) += x[l];
        }
        return;
    }
    for (int l = 0; l < LANES; l++)
        if (tm->gm >> l & 1) *dfn_fptr(base, tm->goff + tm->idx[l]) += x[l];
}
#endif

void im2col_panel(float *col, ptrdiff_t ld, ptrdiff_t rs_c, ptrdiff_t rs_k, const float *inp,
                  const dfn_tap_map *map, const dfn_conv2d_shape *s, int c0, int c1) {
    const int KK = s->KH * s->KW;
    const int64_t HW = (int64_t)s->H * s->W;
    for (int c = c0; c < c1; c++) {
        const float *base = inp + c * HW;
        for (int kk = 0; kk < KK; kk++) {
            float *row = col + ((c - c0) * rs_c + kk * rs_k) * ld;
            const dfn_tap_map *tm = &map[kk * NV];
            for (int v = 0; v < NV; v++) tap_load(row + v * LANES, &tm[v], base);
        }
    }
}

void col2im_rows(float *dinp, const float *dcol, int r0, int nrows, const dfn_tap_map *map,
                 const dfn_conv2d_shape *s) {
    const int KK = s->KH * s->KW;
    const int64_t HW = (int64_t)s->H * s->W;
    for (int i = 0; i < nrows; i++) {
        const int r = r0 + i, c = r / KK, kk = r % KK;
        float *base = dinp + c * HW;
        const dfn_tap_map *tm = &map[kk * NV];
        for (int v = 0; v < NV; v++) tap_add(&tm[v], base, dcol + (ptrdiff_t)i * NR + v * LANES);
    }
}

/* ------------------------------------------------------------ weights */

void pack_weights(float *wp, const float *w, int OC, int C, int KK, int flip) {
    const int rows = flip ? C : OC, cols = flip ? OC : C;
    const int ntiles = (rows + MR - 1) / MR;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntiles; t++)
        for (int kk = 0; kk < KK; kk++)
            for (int c = 0; c < cols; c++)
                for (int i = 0; i < MR; i++) {
                    const int r = t * MR + i;
                    float x = 0.0f;
                    if (r < rows)
                        x = flip ? w[((size_t)c * C + r) * KK + (KK - 1 - kk)] : w[((size_t)r * C + c) * KK + kk];
                    wp[(((size_t)t * KK + kk) * cols + c) * MR + i] = x;
                }
}

/* conv2d_direct.c - the direct convolution as a product of the weights with
 * the panels of columns (conv2d_internal.h), at one instruction-set level:
 *
 *   out[:, j] = W col[:, j] + bias,   W (OC, C*KH*KW), col (C*KH*KW, N*OH*OW).
 *
 * Tasks: (panel of 48 columns, chunk of MR-row output tiles), a layout that
 * depends only on the shape, handed out statically: each thread takes a run of
 * neighbouring panels, whose input rows overlap (a third less time than panels
 * dealt out one by one when the input comes from another core's cache). Each
 * task builds (or looks up) its panel's maps and then, per tile of MR output
 * channels, sums MR x 48 outputs in registers:
 *   - implicit GEMM (avx512 and avx2, where every tap map is in shift mode:
 *     stride 1 with OW == W): the kernel reads the input rows directly under
 *     masks, no im2col;
 *   - otherwise the panel is im2col'ed (C*KH*KW rows of 48) into L2 first and
 *     conv_tile runs on it.
 * The sums run over taps, then channels, ascending (implicit) or in the packed
 * row order (kk, c) (im2col): the same order, so the same bits either way. */
#include <string.h>

#include "nn/conv2d_internal.h"

#if VL == 16
/* The implicit-GEMM kernel: C (8,48) = sum_{kk, c} A[kk][c][i] * inp[c, tap kk of lane]:
 * for each tap the three groups of 16 pixels are (masked) shifted reads of each
 * input channel row. Needs every tap map of the panel in shift mode. A (KK, C, 8)
 * packed weights; inp (C, H*W) channel rows at stride HW, the maps' offsets
 * relative to it; C (8,48) contiguous. */
__attribute__((noinline)) static void kernel_implicit(int Cin, int KK, const float *restrict A,
                                                      const float *inp, int64_t HW,
                                                      const dfn_tap_map *map, float *restrict C) {
    vf c[MR][3];
    tile_zero(c);
    for (int kk = 0; kk < KK; kk++, A += (ptrdiff_t)Cin * MR) {
        const dfn_tap_map *tm = &map[kk * NV];
        if (tm[0].nseg == 0 && tm[1].nseg == 0 && tm[2].nseg == 0) continue; /* all padding */
        const float *p0 = tm[0].nseg > 0 ? dfn_fptr(inp, tm[0].off[0]) : inp;
        const float *p1 = tm[1].nseg > 0 ? dfn_fptr(inp, tm[1].off[0]) : inp;
        const float *p2 = tm[2].nseg > 0 ? dfn_fptr(inp, tm[2].off[0]) : inp;
        const __mmask16 m0 = tm[0].nseg > 0 ? tm[0].m[0] : 0, m1 = tm[1].nseg > 0 ? tm[1].m[0] : 0,
                        m2 = tm[2].nseg > 0 ? tm[2].m[0] : 0;
        const float *a = A;
        if (tm[0].nseg < 2 && tm[1].nseg < 2 && tm[2].nseg < 2) {
            for (int ch = 0; ch < Cin; ch++, a += MR, p0 += HW, p1 += HW, p2 += HW)
                tile_fma(c, a, _mm512_maskz_loadu_ps(m0, p0), _mm512_maskz_loadu_ps(m1, p1),
                         _mm512_maskz_loadu_ps(m2, p2));
        } else { /* a group runs over an image boundary: two reads merged per group */
            const float *q0 = tm[0].nseg > 1 ? dfn_fptr(inp, tm[0].off[1]) : inp;
            const float *q1 = tm[1].nseg > 1 ? dfn_fptr(inp, tm[1].off[1]) : inp;
            const float *q2 = tm[2].nseg > 1 ? dfn_fptr(inp, tm[2].off[1]) : inp;
            const __mmask16 n0 = tm[0].nseg > 1 ? tm[0].m[1] : 0, n1 = tm[1].nseg > 1 ? tm[1].m[1] : 0,
                            n2 = tm[2].nseg > 1 ? tm[2].m[1] : 0;
            for (int ch = 0; ch < Cin; ch++, a += MR, p0 += HW, p1 += HW, p2 += HW, q0 += HW, q1 += HW, q2 += HW)
                tile_fma(c, a, _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(m0, p0), n0, q0),
                         _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(m1, p1), n1, q1),
                         _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(m2, p2), n2, q2));
        }
    }
    tile_store(C, 0, c);
}

#elif VL == 8
/* The implicit-GEMM kernel with AVX2: C (4,48) as above, in two passes of three
 * 8-lane vectors (vector v holds lanes 8(v%2) .. of map group v/2); masked loads
 * (vmaskmovps) where a group has padding, or-ed where it spans two images. The
 * sums run in the order of the AVX-512 kernel and of conv_tile on im2col rows. */
__attribute__((noinline)) static void kernel_implicit(int Cin, int KK, const float *restrict A,
                                                      const float *inp, int64_t HW,
                                                      const dfn_tap_map *map, float *restrict C) {
    for (int pass = 0; pass < 2; pass++) {
        vf c[MR][3];
        tile_zero(c);
        for (int kk = 0; kk < KK; kk++) {
            const float *p[3], *q[3];
            __m256i m[3], n[3];
            int any = 0, full = 1, two = 0;
            for (int j = 0; j < 3; j++) {
                const int v = 3 * pass + j, h = v % 2 * 8;
                const dfn_tap_map *tm = &map[kk * NV + v / 2];
                const unsigned m0 = tm->nseg > 0 ? tm->m[0] >> h & 0xFFu : 0;
                const unsigned m1 = tm->nseg > 1 ? tm->m[1] >> h & 0xFFu : 0;
                p[j] = m0 ? dfn_fptr(inp, tm->off[0] + h) : inp;
                q[j] = m1 ? dfn_fptr(inp, tm->off[1] + h) : inp;
                m[j] = vf_lane_mask(m0);
                n[j] = vf_lane_mask(m1);
                any |= m0 | m1;
                full &= m0 == 0xFFu;
                two |= m1 != 0;
            }
            if (!any) continue; /* all padding */
            const float *a = A + (ptrdiff_t)kk * Cin * MR;
            for (int ch = 0; ch < Cin; ch++, a += MR) {
                const ptrdiff_t o = (ptrdiff_t)ch * HW;
                vf b[3];
                if (full) {
                    b[0] = vf_load(p[0] + o), b[1] = vf_load(p[1] + o), b[2] = vf_load(p[2] + o);
                } else {
#pragma GCC unroll 3
                    for (int j = 0; j < 3; j++) {
                        b[j] = _mm256_maskload_ps(p[j] + o, m[j]);
                        if (two) b[j] = _mm256_or_ps(b[j], _mm256_maskload_ps(q[j] + o, n[j]));
                    }
                }
                tile_fma(c, a, b[0], b[1], b[2]);
            }
        }
        tile_store(C, pass * 24, c);
    }
}
#endif

/* orow[segment lanes] = b + x[lane], or with arow (add's row at orow's place)
 * arow[...] + (b + x[lane]), arow[...] + x[lane] where there is no bias; one
 * group of LANES. */
#if VL == 16
static inline void store_group(float *orow, const float *arow, const dfn_out_map *om, const float *x, float b,
                               int biased) {
    const __m512 y = arow && !biased ? _mm512_loadu_ps(x) : _mm512_add_ps(_mm512_set1_ps(b), _mm512_loadu_ps(x));
    for (int g = 0; g < om->nseg; g++) {
        float *o = dfn_fptr(orow, om->off[g]);
        const __mmask16 m = om->m[g];
        _mm512_mask_storeu_ps(o, m, arow ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, dfn_fptr(arow, om->off[g])), y) : y);
    }
}
#elif VL == 8
static inline void store_group(float *orow, const float *arow, const dfn_out_map *om, const float *x, float b,
                               int biased) {
    const vf bv = vf_set1(b);
    for (int g = 0; g < om->nseg; g++)
        for (int h = 0; h < LANES; h += 8) {
            const unsigned m = om->m[g] >> h & 0xFFu;
            if (!m) continue;
            float *o = dfn_fptr(orow, om->off[g] + h);
            const float *a = arow ? dfn_fptr(arow, om->off[g] + h) : NULL;
            vf y = vf_load(x + h);
            if (!a || biased) y = bv + y;
            if (m == 0xFFu) { /* a plain store: AMD's masked stores are slow */
                vf_store(o, a ? vf_load(a) + y : y);
                continue;
            }
            const __m256i mk = vf_lane_mask(m);
            if (a) y = _mm256_maskload_ps(a, mk) + y;
            _mm256_maskstore_ps(o, mk, y);
        }
}
#else
static inline void store_group(float *orow, const float *arow, const dfn_out_map *om, const float *x, float b,
                               int biased) {
    for (int g = 0; g < om->nseg; g++) {
        if (om->m[g] == 0xFFFF) { /* all lanes inside the row */
            float *o = dfn_fptr(orow, om->off[g]);
            const float *a = arow ? dfn_fptr(arow, om->off[g]) : NULL; /* may be o */
            if (!a) {
                float *restrict ov = o;
                for (int l = 0; l < LANES; l++) ov[l] = b + x[l];
            } else if (biased) {
                for (int l = 0; l < LANES; l++) o[l] = a[l] + (b + x[l]);
            } else {
                for (int l = 0; l < LANES; l++) o[l] = a[l] + x[l];
            }
            continue;
        }
        for (int l = 0; l < LANES; l++)
            if (om->m[g] >> l & 1) {
                float *o = dfn_fptr(orow, om->off[g] + l);
                const float y = !arow || biased ? b + x[l] : x[l];
                *o = arow ? *dfn_fptr(arow, om->off[g] + l) + y : y;
            }
    }
}
#endif

/* out (N,OC,OH,OW) = [add +] ([bias (OC or NULL) +] conv(inp (N,C,H,W), wp)) (add may be out),
 * wp from pack_weights; cache_ws holds dfn_map_cache_bytes(s, panels, 1). With wpp
 * (wp's tiles as bfloat16 pairs, avx512 only) the products are bfloat16: each
 * panel is im2col'ed, paired and summed by conv_tile_bf16; with ua (the same
 * pairs as rows of AMX's A operand: ceil(OC/16)*16 rows of Kp16 pairs, zero past
 * OC and C*KH*KW) by amx_products, 16 output channels a tile. */
static void conv_forward_packed(float *out, const float *add, const float *inp, const float *wp,
                                const uint32_t *wpp, const uint32_t *ua, int Kp16, const float *bias,
                                const dfn_conv2d_shape *s, void *cache_ws) {
    const int OH = dfn_conv2d_out_h(s), OW = dfn_conv2d_out_w(s);
    const int KK = s->KH * s->KW, CKK = s->C * KK;
    const int64_t P = (int64_t)OH * OW, cols = s->N * P, HW = (int64_t)s->H * s->W;
    const int64_t npanels = (cols + NR - 1) / NR;
#if VL != 16
    (void)Kp16; /* bfloat16 exists at the avx512 level only */
#endif
    const int rows = ua ? TR : MR; /* output channels per tile */
    const int ntiles = (s->OC + rows - 1) / rows;
    int tiles_per_chunk;
    const int nchunks = dfn_tile_chunks(npanels, ntiles, &tiles_per_chunk);

    dfn_map_cache mc;
    dfn_map_cache_init(&mc, cache_ws, s, npanels, 1);
    const int64_t ntasks = npanels * nchunks;
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < ntasks; task++) {
        const int64_t panel = task / nchunks;
        const int chunk = (int)(task % nchunks);
        const int64_t j0 = panel * NR;
        const int ncols = (int)DFN_MIN((int64_t)NR, cols - j0);
        dfn_tap_map *tmp = (dfn_tap_map *)dfn_scratch(3, (size_t)KK * NV * sizeof(dfn_tap_map) / sizeof(float) + 1);
        dfn_out_map otmp[NV];
        const dfn_out_map *omap;
        int64_t n0;
        const dfn_tap_map *map = dfn_panel_maps(&mc, s, j0, ncols, tmp, otmp, &omap, &n0);
        const float *img = inp + n0 * s->C * HW; /* map offsets are relative to image n0 */
        float *oimg = out + n0 * s->OC * P;
        const float *aimg = add ? add + n0 * s->OC * P : NULL;
        float tile[TR * NR];
        int implicit = VL >= 8 && !wpp && !ua; /* masked loads: AVX-512 and AVX2 */
        for (int k = 0; k < KK * NV && implicit; k++) implicit &= map[k].nseg >= 0;
        float *col = NULL;
        if (!implicit) { /* col (KK*C, 48), rows (kk, c) to match wp */
            col = dfn_scratch(0, (size_t)CKK * NR);
            im2col_panel(col, NR, 1, s->C, img, map, s, 0, s->C);
        }
#if VL == 16
        uint32_t *colp = NULL; /* col as pairs of rows (for AMX, zero rows up to Kp16) */
        if (wpp || ua) {
            const int Kp = (CKK + 1) / 2;
            colp = (uint32_t *)dfn_scratch(4, (size_t)Kp16 * NR); /* Kp16 >= Kp */
            pack_pairs_bf16(colp, NR, col, NR, CKK, NR);
            if (ua && Kp16 > Kp) memset(colp + (size_t)Kp * NR, 0, (size_t)(Kp16 - Kp) * NR * sizeof(uint32_t));
            if (ua) amx_begin();
        }
#endif
        const int t1 = DFN_MIN(ntiles, (chunk + 1) * tiles_per_chunk);
        for (int t = chunk * tiles_per_chunk; t < t1; t++) {
            const float *a = wp + (size_t)t * CKK * MR;
#if VL == 16
            if (ua) amx_products(1, Kp16 / TR, NR / 16, 0, ua + (size_t)t * TR * Kp16, Kp16, colp, NR, tile, NR);
            else if (wpp) conv_tile_bf16((CKK + 1) / 2, wpp + (size_t)t * ((CKK + 1) / 2) * MR, colp, NR, tile);
            else
#endif
#if VL >= 8
            if (implicit) kernel_implicit(s->C, KK, a, img, HW, map, tile);
            else
#endif
                conv_tile(CKK, a, col, NR, tile);
            for (int i = 0; i < rows && t * rows + i < s->OC; i++) {
                const int oc = t * rows + i;
                for (int v = 0; v < NV; v++)
                    store_group(oimg + oc * P, aimg ? aimg + oc * P : NULL, &omap[v], tile + i * NR + v * LANES,
                                bias ? bias[oc] : 0.0f, bias != NULL);
            }
        }
#if VL == 16
        if (ua) amx_end();
#endif
    }
}

/* out (N,OC,OH,OW) = [add +] (conv(inp (N,C,H,W), weight (OC,C,KH,KW) or its flip) + bias (OC or
 * NULL), with the products of `kind`. */
static void conv_direct(float *out, const float *add, const float *inp, const float *weight, int flip,
                        const float *bias, const dfn_conv2d_shape *s, int kind) {
    const int KK = s->KH * s->KW, CKK = s->C * KK, ntiles = (s->OC + MR - 1) / MR, Kp = (CKK + 1) / 2;
    const int R16 = (s->OC + TR - 1) / TR * TR, Kp16 = (Kp + TR - 1) / TR * TR;
    /* packed weights, the map cache and the weights' pairs in the calling thread's
     * slot 2 (tasks use 0, 3, 4) */
    const size_t nwp = (size_t)ntiles * MR * CKK; /* floats, multiple of MR */
    const int64_t npanels = ((int64_t)s->N * dfn_conv2d_out_h(s) * dfn_conv2d_out_w(s) + NR - 1) / NR;
    const size_t ncache = (dfn_map_cache_bytes(s, npanels, 1) + 63) / 64 * 16;
    const size_t npairs = kind == PRODUCTS_BF16  ? (size_t)ntiles * Kp * MR
                          : kind == PRODUCTS_AMX ? (size_t)R16 * Kp16
                                                 : 0;
    float *wp = dfn_scratch(2, nwp + 16 + ncache + npairs);
    if (flip) pack_weights(wp, weight, s->C, s->OC, KK, 1); /* s is the transposed conv's shape */
    else pack_weights(wp, weight, s->OC, s->C, KK, 0);
    void *cache_ws = dfn_align64(wp + nwp);
    uint32_t *wpp = NULL, *ua = NULL;
#if VL == 16
    uint32_t *pairs = (uint32_t *)((float *)cache_ws + ncache);
    if (kind == PRODUCTS_BF16) {
        wpp = pairs;
        for (int t = 0; t < ntiles; t++)
            pack_pairs_bf16(wpp + (size_t)t * Kp * MR, MR, wp + (size_t)t * CKK * MR, MR, CKK, MR);
    } else if (kind == PRODUCTS_AMX) {
        ua = pairs;
        pack_amx_weights(ua, Kp16, R16, wp, s->OC, CKK);
    }
#endif
    conv_forward_packed(out, add, inp, wp, wpp, ua, Kp16, bias, s, cache_ws);
}

void DFN_K(dfn_conv2d_direct)(float *out, const float *add, const float *inp, const float *weight,
                              int flip, const float *bias, const dfn_conv2d_shape *s) {
    conv_direct(out, add, inp, weight, flip, bias, s, PRODUCTS_FP32);
}

#if VL == 16
void DFN_K(dfn_conv2d_direct_bf16)(float *out, const float *add, const float *inp, const float *weight,
                                   int flip, const float *bias, const dfn_conv2d_shape *s) {
    conv_direct(out, add, inp, weight, flip, bias, s, PRODUCTS_BF16);
}

void DFN_K(dfn_conv2d_direct_amx)(float *out, const float *add, const float *inp, const float *weight,
                                  int flip, const float *bias, const dfn_conv2d_shape *s) {
    conv_direct(out, add, inp, weight, flip, bias, s, PRODUCTS_AMX);
}
#endif

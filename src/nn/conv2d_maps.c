/* conv2d_maps.c - where the lanes of a panel read and write (conv2d_internal.h):
 * plain integer code, the same for every instruction-set level.
 *
 * A panel of 48 columns is three groups of 16 lanes. For one tap (kh,kw) a lane
 * reads input pixel (oh*S - P + kh, ow*S - P + kw) of its image, or nothing (0)
 * when that lies in the padding. Where the lanes of one image read consecutive
 * floats (stride 1 with OW == W: the offset is linear in the column) a group is
 * at most two shifted, masked reads ("shift mode"); otherwise it is a gather. */

#include "nn/conv2d_internal.h"

/* Fills map[(kh*KW+kw)*NV + v] (and omap[v] if non-NULL) for the panel of columns
 * j0 .. j0+ncols-1 (global column j = n*OH*OW + oh*OW + ow; lanes past ncols are
 * padding). */
static void build_maps(dfn_tap_map *map, dfn_out_map *omap, const dfn_conv2d_shape *s, int64_t j0,
                       int ncols) {
    const int OH = dfn_conv2d_out_h(s), OW = dfn_conv2d_out_w(s);
    const int64_t P = (int64_t)OH * OW, HW = (int64_t)s->H * s->W, CHW = s->C * HW;
    int ln[NR], lih[NR], liw[NR]; /* per lane: image, top-left tap's input row/col */
    for (int l = 0; l < NR; l++) {
        if (l < ncols) {
            int64_t j = j0 + l;
            int64_t p = j % P;
            ln[l] = (int)(j / P);
            lih[l] = (int)(p / OW) * s->stride - s->pad;
            liw[l] = (int)(p % OW) * s->stride - s->pad;
        } else {
            ln[l] = -1;
        }
    }
    if (omap)
        for (int v = 0; v < NV; v++) {
            dfn_out_map *om = &omap[v];
            om->nseg = 0;
            for (int l = 0; l < LANES; l++) {
                int n = ln[v * LANES + l];
                if (n < 0) break;
                const int64_t off = (int64_t)n * s->OC * P + (j0 + v * LANES - (int64_t)n * P);
                if (om->nseg == 0 || om->off[om->nseg - 1] != off) {
                    om->off[om->nseg] = off;
                    om->m[om->nseg] = 0;
                    om->nseg++;
                }
                om->m[om->nseg - 1] |= (uint16_t)(1u << l);
            }
        }
    for (int kh = 0; kh < s->KH; kh++)
        for (int kw = 0; kw < s->KW; kw++)
            for (int v = 0; v < NV; v++) {
                dfn_tap_map *tm = &map[(kh * s->KW + kw) * NV + v];
                int64_t off[LANES];
                uint16_t valid = 0;
                for (int l = 0; l < LANES; l++) {
                    int L = v * LANES + l;
                    if (ln[L] < 0) continue;
                    int ih = lih[L] + kh, iw = liw[L] + kw;
                    if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                    off[l] = ln[L] * CHW + (int64_t)ih * s->W + iw;
                    valid |= (uint16_t)(1u << l);
                }
                /* Shift mode if, per image, the valid lanes read consecutive floats. */
                tm->nseg = 0;
                int shift = 1;
                for (int l = 0; l < LANES && shift; l++) {
                    if (!(valid >> l & 1)) continue;
                    int64_t d = off[l] - l;
                    int seg = -1;
                    for (int g = 0; g < tm->nseg; g++)
                        if (tm->off[g] == d) seg = g;
                    if (seg < 0) {
                        if (tm->nseg == 2) { shift = 0; break; }
                        seg = tm->nseg++;
                        tm->off[seg] = d;
                        tm->m[seg] = 0;
                    }
                    tm->m[seg] |= (uint16_t)(1u << l);
                }
                if (!shift) { /* gather: offsets relative to the first valid lane */
                    tm->nseg = -1;
                    tm->gm = valid;
                    tm->goff = off[__builtin_ctz(valid)];
                    for (int l = 0; l < LANES; l++) {
                        int64_t d = (valid >> l & 1) ? off[l] - tm->goff : 0;
                        DFN_ASSERT(d >= INT32_MIN && d <= INT32_MAX);
                        tm->idx[l] = (int32_t)d;
                    }
                }
            }
}

/* Panels start at multiples of 48, so a full panel's maps, taken relative to the
 * image n0 = j0 / P it starts in, depend only on p0 = j0 mod P, one of
 * P / gcd(P, 48) values; moving to image n0 shifts every input offset by n0*C*H*W
 * and every output offset by n0*OC*OH*OW. */
static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Shape-only: no cache when it has fewer than two panels per entry. */
size_t dfn_map_cache_bytes(const dfn_conv2d_shape *s, int64_t npanels, int with_out) {
    const int64_t P = (int64_t)dfn_conv2d_out_h(s) * dfn_conv2d_out_w(s);
    const int64_t count = P / gcd64(P, NR);
    if (2 * count > npanels) return 0;
    return (size_t)count * (s->KH * s->KW * NV * sizeof(dfn_tap_map) +
                            (with_out ? NV * sizeof(dfn_out_map) : 0));
}

void dfn_map_cache_init(dfn_map_cache *mc, void *ws, const dfn_conv2d_shape *s, int64_t npanels,
                        int with_out) {
    const int64_t P = (int64_t)dfn_conv2d_out_h(s) * dfn_conv2d_out_w(s);
    const int KK = s->KH * s->KW;
    mc->count = 0;
    if (!dfn_map_cache_bytes(s, npanels, with_out)) return;
    mc->step = gcd64(P, NR);
    mc->count = P / mc->step;
    mc->taps = (dfn_tap_map *)ws;
    mc->outs = with_out ? (dfn_out_map *)(mc->taps + mc->count * KK * NV) : NULL;
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < mc->count; e++)
        build_maps(mc->taps + e * KK * NV, with_out ? mc->outs + e * NV : NULL, s, e * mc->step, NR);
}

const dfn_tap_map *dfn_panel_maps(const dfn_map_cache *mc, const dfn_conv2d_shape *s, int64_t j0,
                                  int ncols, dfn_tap_map *tmp, dfn_out_map *otmp,
                                  const dfn_out_map **omap, int64_t *n0) {
    const int64_t P = (int64_t)dfn_conv2d_out_h(s) * dfn_conv2d_out_w(s);
    *n0 = j0 / P;
    const int64_t p0 = j0 - *n0 * P;
    if (mc->count && ncols == NR) {
        const int64_t e = p0 / mc->step;
        if (omap) *omap = mc->outs + e * NV;
        return mc->taps + e * s->KH * s->KW * NV;
    }
    build_maps(tmp, omap ? otmp : NULL, s, p0, ncols);
    if (omap) *omap = otmp;
    return tmp;
}

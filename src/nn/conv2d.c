/* conv2d.c - 2-D convolution (cross-correlation, as torch.nn.Conv2d), NCHW float32.
 *
 *   out[n,oc,oh,ow] = bias[oc] + sum_{c,kh,kw} w[oc,c,kh,kw] * inp[n, c, oh*S-P+kh, ow*S-P+kw]
 *
 * with S = stride, P = zero padding (taps outside the image read 0).
 *
 * How it is computed. Every output pixel of the batch is a "column"
 * j = n*OH*OW + oh*OW + ow; row r = (kh*KW + kw)*C + c (or (c*KH + kh)*KW + kw)
 * indexes the C*KH*KW taps; col[r][j] is the input under tap r of column j.
 *   forward          out[:, j] = W col[:, j] + bias. Columns are cut into panels
 *                    of NR = 48 (a panel may run over an image boundary, which keeps
 *                    7x7 layers efficient); an 8 x 48 register tile of out is summed
 *                    by an AVX-512 kernel. For stride 1 with OW == W every tap of a
 *                    panel is a shifted, masked read of input rows, so the kernel
 *                    reads the input directly (implicit GEMM, no im2col); other
 *                    panels are im2col'ed (with gathers) into L2 first.
 *                    3x3 "same" convs on images 14..30 wide with enough tiles run
 *                    as Winograd F(2x2,3x3) instead (2.25x fewer multiplications;
 *                    see conv_winograd).
 *   backward data    stride 1: dinp is the stride-1 conv of dout with the flipped,
 *                    transposed kernel, run by the forward code (accumulating;
 *                    Winograd where the forward would use it);
 *                    other strides: dcol = W^T dout tile by tile, scattered back
 *                    (col2im) into the images of the task.
 *   backward weight  dW[oc,c,kh,kw] += sum_{n,oh,ow} dout[n,oc,oh,ow] inp[n,c,ih,iw]
 *                    on channels-last copies of a few images at a time, a 12 x 32
 *                    (out x in channels) register tile, pixels as the sum index
 *                    (C >= 32, KH*KW > 1); else im2col + dfn_gemm (oneDNN sgemm).
 *   backward bias    dbias[oc] += sum dout, in double, fixed lanes.
 *
 * Determinism: all work is split into tasks whose layout depends only on the
 * shape (panels, output-channel chunks, image slots, channel blocks); each task
 * runs single-threaded code with a fixed summation order and writes outputs no
 * other task writes; the weight gradients of the image slots are reduced in slot
 * order. So the bits do not depend on the number of threads or on which thread
 * ran which task (tests/test_conv2d.c checks 1, 2 and 3 threads).
 */
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "core.h"
#include "nn.h"

/* The fast kernels are AVX-512 code, compiled as such whatever the build flags
 * (a Debug or sanitizer build has no -march=native); the public functions check
 * the CPU at run time and use the reference loops on a CPU without AVX-512. */

#define MR 8  /* rows of the register tile (output channels, or taps in backward) */
#define NR 48 /* columns of the register tile (output pixels): three 16-float vectors */
#define NV 3  /* NR / 16 */

/* ------------------------------------------------------------ reference loops */

void dfn_conv2d_forward_reference(float *out, const float *inp, const float *weight,
                                  const float *bias, const dfn_conv2d_shape *s) {
    DFN_ASSERT(out && inp && weight && s);
    const int OH = dfn_conv2d_out_h(s), OW = dfn_conv2d_out_w(s);
    for (int n = 0; n < s->N; n++)
        for (int oc = 0; oc < s->OC; oc++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double acc = 0;
                    for (int c = 0; c < s->C; c++)
                        for (int kh = 0; kh < s->KH; kh++)
                            for (int kw = 0; kw < s->KW; kw++) {
                                int ih = oh * s->stride - s->pad + kh;
                                int iw = ow * s->stride - s->pad + kw;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                acc += (double)weight[((size_t)(oc * s->C + c) * s->KH + kh) * s->KW + kw] *
                                       inp[(((size_t)n * s->C + c) * s->H + ih) * s->W + iw];
                            }
                    if (bias) acc += bias[oc];
                    out[(((size_t)n * s->OC + oc) * OH + oh) * OW + ow] = (float)acc;
                }
}

/* Differentiates dfn_conv2d_forward_reference: with g = dout,
 *   dinp[n,c,ih,iw] += sum_{oc,kh,kw : ih = oh*S-P+kh, iw = ow*S-P+kw} w[oc,c,kh,kw] g[n,oc,oh,ow]
 *   dw[oc,c,kh,kw]  += sum_{n,oh,ow} g[n,oc,oh,ow] inp[n,c,oh*S-P+kh,ow*S-P+kw]
 *   dbias[oc]       += sum_{n,oh,ow} g[n,oc,oh,ow] */
void dfn_conv2d_backward_reference(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *inp, const float *weight, const dfn_conv2d_shape *s) {
    DFN_ASSERT(dout && inp && weight && s);
    const int OH = dfn_conv2d_out_h(s), OW = dfn_conv2d_out_w(s);
    const int S = s->stride, P = s->pad;
    if (dinp)
        for (int n = 0; n < s->N; n++)
            for (int c = 0; c < s->C; c++)
                for (int ih = 0; ih < s->H; ih++)
                    for (int iw = 0; iw < s->W; iw++) {
                        double acc = 0;
                        for (int oc = 0; oc < s->OC; oc++)
                            for (int kh = 0; kh < s->KH; kh++)
                                for (int kw = 0; kw < s->KW; kw++) {
                                    int th = ih + P - kh, tw = iw + P - kw; /* = oh*S, ow*S */
                                    if (th < 0 || tw < 0 || th % S || tw % S) continue;
                                    int oh = th / S, ow = tw / S;
                                    if (oh >= OH || ow >= OW) continue;
                                    acc += (double)weight[((size_t)(oc * s->C + c) * s->KH + kh) * s->KW + kw] *
                                           dout[(((size_t)n * s->OC + oc) * OH + oh) * OW + ow];
                                }
                        dinp[(((size_t)n * s->C + c) * s->H + ih) * s->W + iw] += (float)acc;
                    }
    if (dweight)
        for (int oc = 0; oc < s->OC; oc++)
            for (int c = 0; c < s->C; c++)
                for (int kh = 0; kh < s->KH; kh++)
                    for (int kw = 0; kw < s->KW; kw++) {
                        double acc = 0;
                        for (int n = 0; n < s->N; n++)
                            for (int oh = 0; oh < OH; oh++)
                                for (int ow = 0; ow < OW; ow++) {
                                    int ih = oh * S - P + kh, iw = ow * S - P + kw;
                                    if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                    acc += (double)dout[(((size_t)n * s->OC + oc) * OH + oh) * OW + ow] *
                                           inp[(((size_t)n * s->C + c) * s->H + ih) * s->W + iw];
                                }
                        dweight[((size_t)(oc * s->C + c) * s->KH + kh) * s->KW + kw] += (float)acc;
                    }
    if (dbias)
        for (int oc = 0; oc < s->OC; oc++) {
            double acc = 0;
            for (int n = 0; n < s->N; n++)
                for (int p = 0; p < OH * OW; p++) acc += dout[((size_t)n * s->OC + oc) * OH * OW + p];
            dbias[oc] += (float)acc;
        }
}

static void check_shape(const dfn_conv2d_shape *s) {
    DFN_ASSERT(s->N > 0 && s->C > 0 && s->H > 0 && s->W > 0 && s->OC > 0 && s->KH > 0 &&
               s->KW > 0 && s->stride > 0 && s->pad >= 0);
    DFN_ASSERT(dfn_conv2d_out_h(s) > 0 && dfn_conv2d_out_w(s) > 0);
}

/* ------------------------------------------------------------ the micro-kernel */

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi,bmi2")

/* The register tile: 24 accumulators c<i><v>, row i (0..7) of the tile, vector v
 * (16 columns) of it. DFN_FMA_ROWS adds a[i] * b<v> to every c<i><v>. */
#define DFN_TILE_DECL                                                                     \
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00; \
    __m512 c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;               \
    __m512 c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;               \
    __m512 c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
#define DFN_FMA_ROW(a, i, x0, x1, x2, b0, b1, b2)   \
    do {                                            \
        const __m512 ai_ = _mm512_set1_ps((a)[i]);  \
        x0 = _mm512_fmadd_ps(ai_, b0, x0);          \
        x1 = _mm512_fmadd_ps(ai_, b1, x1);          \
        x2 = _mm512_fmadd_ps(ai_, b2, x2);          \
    } while (0)
#define DFN_FMA_ROWS(a, b0, b1, b2)                      \
    do {                                                 \
        DFN_FMA_ROW(a, 0, c00, c01, c02, b0, b1, b2);    \
        DFN_FMA_ROW(a, 1, c10, c11, c12, b0, b1, b2);    \
        DFN_FMA_ROW(a, 2, c20, c21, c22, b0, b1, b2);    \
        DFN_FMA_ROW(a, 3, c30, c31, c32, b0, b1, b2);    \
        DFN_FMA_ROW(a, 4, c40, c41, c42, b0, b1, b2);    \
        DFN_FMA_ROW(a, 5, c50, c51, c52, b0, b1, b2);    \
        DFN_FMA_ROW(a, 6, c60, c61, c62, b0, b1, b2);    \
        DFN_FMA_ROW(a, 7, c70, c71, c72, b0, b1, b2);    \
    } while (0)
#define DFN_STORE_ROW(C, i, x0, x1, x2)              \
    do {                                             \
        _mm512_storeu_ps((C) + (i) * NR, x0);        \
        _mm512_storeu_ps((C) + (i) * NR + 16, x1);   \
        _mm512_storeu_ps((C) + (i) * NR + 32, x2);   \
    } while (0)
#define DFN_TILE_STORE(C)                        \
    do {                                         \
        DFN_STORE_ROW(C, 0, c00, c01, c02);      \
        DFN_STORE_ROW(C, 1, c10, c11, c12);      \
        DFN_STORE_ROW(C, 2, c20, c21, c22);      \
        DFN_STORE_ROW(C, 3, c30, c31, c32);      \
        DFN_STORE_ROW(C, 4, c40, c41, c42);      \
        DFN_STORE_ROW(C, 5, c50, c51, c52);      \
        DFN_STORE_ROW(C, 6, c60, c61, c62);      \
        DFN_STORE_ROW(C, 7, c70, c71, c72);      \
    } while (0)

/* C (8,48) = A^T B over k < K: C[i][j] = sum_k A[k][i] * B[k][j], k ascending.
 * A (K,8): a packed panel of 8 rows (zero-padded); B (K,48) rows at stride ldb,
 * every row holding 48 readable floats; C (8,48) a contiguous tile. */
__attribute__((noinline)) static void kernel_8x48(int K, const float *restrict A,
                                                  const float *restrict B, ptrdiff_t ldb,
                                                  float *restrict C) {
    DFN_TILE_DECL
    for (int k = 0; k < K; k++, A += MR, B += ldb) {
        const __m512 b0 = _mm512_loadu_ps(B), b1 = _mm512_loadu_ps(B + 16), b2 = _mm512_loadu_ps(B + 32);
        DFN_FMA_ROWS(A, b0, b1, b2);
    }
    DFN_TILE_STORE(C);
}

/* ------------------------------------------------------------ panel maps */

/* Where the 16 lanes of one vector of a panel read from, for one tap (kh,kw).
 * Offsets are in floats from the start of channel 0 of image 0 (add c*H*W for
 * channel c). Shift mode (nseg >= 0): lanes in segment s read base + off[s] + lane
 * under mask m[s] (at most 2 segments, one per image; nseg = 0: all lanes are
 * padding). Gather mode (nseg = -1): lane l reads base + goff + idx[l] under gm. */
typedef struct {
    int nseg;
    __mmask16 m[2], gm;
    int64_t off[2], goff;
    int32_t idx[16];
} tap_map;

/* Where the lanes of one vector of a panel write in `out` (N,OC,OH*OW): lanes of
 * segment s are image n's pixels, at out + oc*OH*OW + off[s] + lane under m[s]. */
typedef struct {
    int nseg;
    __mmask16 m[16];
    int64_t off[16];
} out_map;

/* A float pointer `off` floats from `base`, computed on integers: masked vector
 * accesses may start before or after the buffer while touching only lanes inside. */
static inline float *fptr(const float *base, int64_t off) {
    return (float *)((uintptr_t)base + (uintptr_t)(off * (int64_t)sizeof(float)));
}

/* Fills map[(kh*KW+kw)*NV + v] (and omap[v] if non-NULL) for the panel of columns
 * j0 .. j0+ncols-1 (global column j = n*OH*OW + oh*OW + ow; lanes past ncols are
 * padding). */
static void build_maps(tap_map *map, out_map *omap, const dfn_conv2d_shape *s, int64_t j0,
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
            out_map *om = &omap[v];
            om->nseg = 0;
            for (int l = 0; l < 16; l++) {
                int n = ln[v * 16 + l];
                if (n < 0) break;
                if (om->nseg == 0 || om->off[om->nseg - 1] != (int64_t)n * s->OC * P + (j0 + v * 16 - (int64_t)n * P)) {
                    om->off[om->nseg] = (int64_t)n * s->OC * P + (j0 + v * 16 - (int64_t)n * P);
                    om->m[om->nseg] = 0;
                    om->nseg++;
                }
                om->m[om->nseg - 1] |= (__mmask16)(1u << l);
            }
        }
    for (int kh = 0; kh < s->KH; kh++)
        for (int kw = 0; kw < s->KW; kw++)
            for (int v = 0; v < NV; v++) {
                tap_map *tm = &map[(kh * s->KW + kw) * NV + v];
                int64_t off[16];
                __mmask16 valid = 0;
                for (int l = 0; l < 16; l++) {
                    int L = v * 16 + l;
                    if (ln[L] < 0) continue;
                    int ih = lih[L] + kh, iw = liw[L] + kw;
                    if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                    off[l] = ln[L] * CHW + (int64_t)ih * s->W + iw;
                    valid |= (__mmask16)(1u << l);
                }
                /* Shift mode if, per image, the valid lanes read consecutive floats. */
                tm->nseg = 0;
                int shift = 1;
                for (int l = 0; l < 16 && shift; l++) {
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
                    tm->m[seg] |= (__mmask16)(1u << l);
                }
                if (!shift) { /* gather: offsets relative to the first valid lane */
                    tm->nseg = -1;
                    tm->gm = valid;
                    tm->goff = off[__builtin_ctz(valid)];
                    for (int l = 0; l < 16; l++) {
                        int64_t d = (valid >> l & 1) ? off[l] - tm->goff : 0;
                        DFN_ASSERT(d >= INT32_MIN && d <= INT32_MAX);
                        tm->idx[l] = (int32_t)d;
                    }
                }
            }
}

/* Maps of full panels, cached. Panels start at multiples of 48, so a full
 * panel's maps, taken relative to the image n0 = j0 / P it starts in, depend only
 * on p0 = j0 mod P, one of P / gcd(P, 48) values; moving to image n0 shifts every
 * input offset by n0*C*H*W and every output offset by n0*OC*OH*OW. */
typedef struct {
    int64_t step, count; /* p0 = e * step for entry e; count = 0: no cache */
    tap_map *taps;       /* (count, KK, NV) */
    out_map *outs;       /* (count, NV), or NULL */
} map_cache;

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Bytes of the cache for `npanels` panels (0 when building maps per panel is
 * cheaper: fewer than two panels per entry). Shape-only. */
static size_t map_cache_bytes(const dfn_conv2d_shape *s, int64_t npanels, int with_out) {
    const int64_t P = (int64_t)dfn_conv2d_out_h(s) * dfn_conv2d_out_w(s);
    const int64_t count = P / gcd64(P, NR);
    if (2 * count > npanels) return 0;
    return (size_t)count * (s->KH * s->KW * NV * sizeof(tap_map) + (with_out ? NV * sizeof(out_map) : 0));
}

/* Builds the cache in `ws` (map_cache_bytes of it, 64-byte aligned), in parallel. */
static void map_cache_init(map_cache *mc, void *ws, const dfn_conv2d_shape *s, int64_t npanels,
                           int with_out) {
    const int64_t P = (int64_t)dfn_conv2d_out_h(s) * dfn_conv2d_out_w(s);
    const int KK = s->KH * s->KW;
    mc->count = 0;
    if (!map_cache_bytes(s, npanels, with_out)) return;
    mc->step = gcd64(P, NR);
    mc->count = P / mc->step;
    mc->taps = (tap_map *)ws;
    mc->outs = with_out ? (out_map *)(mc->taps + mc->count * KK * NV) : NULL;
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < mc->count; e++)
        build_maps(mc->taps + e * KK * NV, with_out ? mc->outs + e * NV : NULL, s, e * mc->step, NR);
}

/* The maps of the panel of columns j0 .. j0+ncols-1, relative to image *n0 =
 * j0 / P: from the cache for a full panel, else built into tmp / otmp. */
static const tap_map *panel_maps(const map_cache *mc, const dfn_conv2d_shape *s, int64_t j0,
                                 int ncols, tap_map *tmp, out_map *otmp, const out_map **omap,
                                 int64_t *n0) {
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

/* The 16 lanes of tap map `tm` read from channel base `base` (padding reads 0). */
static inline __m512 tap_load(const tap_map *tm, const float *base) {
    if (tm->nseg >= 0) {
        __m512 x = _mm512_setzero_ps();
        for (int g = 0; g < tm->nseg; g++) x = _mm512_mask_loadu_ps(x, tm->m[g], fptr(base, tm->off[g]));
        return x;
    }
    __m512i idx = _mm512_loadu_si512(tm->idx);
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), tm->gm, idx, fptr(base, tm->goff), 4);
}

/* base[lane's offset] += x for the valid lanes of `tm` (no two lanes share an
 * address: for a fixed tap, distinct output pixels read distinct input pixels). */
static inline void tap_add(const tap_map *tm, float *base, __m512 x) {
    if (tm->nseg >= 0) {
        for (int g = 0; g < tm->nseg; g++) {
            float *p = fptr(base, tm->off[g]);
            __m512 y = _mm512_maskz_loadu_ps(tm->m[g], p);
            _mm512_mask_storeu_ps(p, tm->m[g], _mm512_add_ps(y, x));
        }
        return;
    }
    __m512i idx = _mm512_loadu_si512(tm->idx);
    float *p = fptr(base, tm->goff);
    __m512 y = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), tm->gm, idx, p, 4);
    _mm512_mask_i32scatter_ps(p, tm->gm, idx, _mm512_add_ps(y, x), 4);
}

/* The implicit-GEMM kernel: C (8,48) = sum_{kk, c} A[kk][c][i] * inp[c, tap kk of lane]
 * without building im2col: for each tap the three vectors of 48 pixels are
 * (masked) shifted reads of each input channel row. Needs every tap map of the
 * panel in shift mode. Summation order: taps ascending, then channels ascending.
 * A (KK, C, 8) packed weights; inp (C, H*W) channel rows at stride HW, offsets of
 * `map` relative to it; C (8,48) contiguous. */
__attribute__((noinline)) static void kernel_implicit(int Cin, int KK, const float *restrict A,
                                                      const float *inp, int64_t HW,
                                                      const tap_map *map, float *restrict C) {
    DFN_TILE_DECL
    for (int kk = 0; kk < KK; kk++, A += (ptrdiff_t)Cin * MR) {
        const tap_map *tm = &map[kk * NV];
        if (tm[0].nseg == 0 && tm[1].nseg == 0 && tm[2].nseg == 0) continue; /* all padding */
        const float *p0 = tm[0].nseg > 0 ? fptr(inp, tm[0].off[0]) : inp;
        const float *p1 = tm[1].nseg > 0 ? fptr(inp, tm[1].off[0]) : inp;
        const float *p2 = tm[2].nseg > 0 ? fptr(inp, tm[2].off[0]) : inp;
        const __mmask16 m0 = tm[0].nseg > 0 ? tm[0].m[0] : 0, m1 = tm[1].nseg > 0 ? tm[1].m[0] : 0,
                        m2 = tm[2].nseg > 0 ? tm[2].m[0] : 0;
        const float *a = A;
        if (tm[0].nseg < 2 && tm[1].nseg < 2 && tm[2].nseg < 2) {
            for (int c = 0; c < Cin; c++, a += MR, p0 += HW, p1 += HW, p2 += HW) {
                const __m512 b0 = _mm512_maskz_loadu_ps(m0, p0), b1 = _mm512_maskz_loadu_ps(m1, p1),
                             b2 = _mm512_maskz_loadu_ps(m2, p2);
                DFN_FMA_ROWS(a, b0, b1, b2);
            }
        } else { /* a vector runs over an image boundary: two reads merged per vector */
            const float *q0 = tm[0].nseg > 1 ? fptr(inp, tm[0].off[1]) : inp;
            const float *q1 = tm[1].nseg > 1 ? fptr(inp, tm[1].off[1]) : inp;
            const float *q2 = tm[2].nseg > 1 ? fptr(inp, tm[2].off[1]) : inp;
            const __mmask16 n0 = tm[0].nseg > 1 ? tm[0].m[1] : 0, n1 = tm[1].nseg > 1 ? tm[1].m[1] : 0,
                            n2 = tm[2].nseg > 1 ? tm[2].m[1] : 0;
            for (int c = 0; c < Cin; c++, a += MR, p0 += HW, p1 += HW, p2 += HW, q0 += HW, q1 += HW, q2 += HW) {
                const __m512 b0 = _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(m0, p0), n0, q0);
                const __m512 b1 = _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(m1, p1), n1, q1);
                const __m512 b2 = _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(m2, p2), n2, q2);
                DFN_FMA_ROWS(a, b0, b1, b2);
            }
        }
    }
    DFN_TILE_STORE(C);
}

/* im2col of one panel: for channels c0 <= c < c1 and taps kk,
 *   col[(c-c0)*rs_c + kk*rs_k][0..48) = inp[n, c, tap kk of the lane's pixel]
 * (rs_c = KK, rs_k = 1: rows in weight order (c,kh,kw); rs_c = 1, rs_k = C: (kh,kw,c)).
 * col rows at stride ld. */
static void im2col_panel(float *col, ptrdiff_t ld, ptrdiff_t rs_c, ptrdiff_t rs_k, const float *inp,
                         const tap_map *map, const dfn_conv2d_shape *s, int c0, int c1) {
    const int KK = s->KH * s->KW;
    const int64_t HW = (int64_t)s->H * s->W;
    for (int c = c0; c < c1; c++) {
        const float *base = inp + c * HW;
        for (int kk = 0; kk < KK; kk++) {
            float *row = col + ((c - c0) * rs_c + kk * rs_k) * ld;
            const tap_map *tm = &map[kk * NV];
            _mm512_storeu_ps(row, tap_load(&tm[0], base));
            _mm512_storeu_ps(row + 16, tap_load(&tm[1], base));
            _mm512_storeu_ps(row + 32, tap_load(&tm[2], base));
        }
    }
}

/* col2im of rows r0 .. r0+nrows-1 of one panel: dinp[n, c, tap pixel] += dcol[r][lane],
 * r = c*KK + kk. dcol (nrows, 48) contiguous. */
static void col2im_rows(float *dinp, const float *dcol, int r0, int nrows, const tap_map *map,
                        const dfn_conv2d_shape *s) {
    const int KK = s->KH * s->KW;
    const int64_t HW = (int64_t)s->H * s->W;
    for (int i = 0; i < nrows; i++) {
        int r = r0 + i, c = r / KK, kk = r % KK;
        float *base = dinp + c * HW;
        const tap_map *tm = &map[kk * NV];
        for (int v = 0; v < NV; v++) tap_add(&tm[v], base, _mm512_loadu_ps(dcol + (ptrdiff_t)i * NR + v * 16));
    }
}

/* ------------------------------------------------------------ weight-gradient kernel */

/* The weight gradient runs on channels-last copies of a few images,
 *   xt[g][pix][c] = inp[n0+g, c, pix],   gt[g][pix][oc] = dout[n0+g, oc, pix],
 * so that for one tap (kh,kw) it is a product over pixels with both operands
 * contiguous:  dW[oc,c,kh,kw] += sum_{g,oh,ow} gt[g][oh,ow][oc] * xt[g][ih,iw][c],
 * ih = oh*S-P+kh, iw = ow*S-P+kw (only taps inside the image). */

/* dst[j*ldd + i] = src[i*lds + j] for i < rows, j < cols (16x16 blocks in registers). */
static void transpose(float *restrict dst, ptrdiff_t ldd, const float *restrict src, ptrdiff_t lds,
                      int rows, int cols) {
    int i0 = 0;
    for (; i0 + 16 <= rows; i0 += 16) {
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

/* Output positions o in [lo, hi) whose tap o*S + off lands in [0, I); O outputs. */
static void tap_range(int *lo, int *hi, int O, int I, int S, int off) {
    *lo = off >= 0 ? 0 : (-off + S - 1) / S;
    *hi = I - 1 - off < 0 ? 0 : DFN_MIN(O, (I - 1 - off) / S + 1);
    if (*hi < *lo) *hi = *lo;
}

#define DW_MR 12 /* output channels per weight-gradient tile (broadcast) */
#define DW_NR 32 /* input channels per weight-gradient tile: two vectors */
#define DFN_DW_ROW(i)                                      \
    do {                                                   \
        const __m512 ai_ = _mm512_set1_ps(a[i]);           \
        e##i##0 = _mm512_fmadd_ps(ai_, b0, e##i##0);       \
        e##i##1 = _mm512_fmadd_ps(ai_, b1, e##i##1);       \
    } while (0)
#define DFN_DW_FLUSH(i)                                                                      \
    do {                                                                                     \
        float *t_ = T + (i) * ldt;                                                           \
        _mm512_mask_storeu_ps(t_, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, t_), e##i##0)); \
        _mm512_mask_storeu_ps(t_ + 16, m1,                                                   \
                              _mm512_add_ps(_mm512_maskz_loadu_ps(m1, t_ + 16), e##i##1));   \
    } while (0)

/* One tap, a 12 x 32 tile: T[i][j] += sum_{g, oh in [oh0,oh1), ow in [ow0,ow1)} a[i] b[j] with
 *   a = A + g*a_img + (oh*OW + ow)*lda           (gt rows: A = gt + oc0, 12 readable)
 *   b = B + g*b_img + (ih*W + iw)*ldb, ih = oh*S + offh, iw = ow*S + offw   (xt: B = xt + c0)
 * summed over g, oh, ow ascending in registers, then added to T (12 rows at stride
 * ldt; columns under masks m0, m1). */
__attribute__((noinline)) static void kernel_dw(float *restrict T, ptrdiff_t ldt, const float *A,
                                                int lda, int64_t a_img, const float *B, int ldb,
                                                int64_t b_img, int nimg, int oh0, int oh1, int ow0,
                                                int ow1, int OW, int W, int S, int offh, int offw,
                                                __mmask16 m0, __mmask16 m1) {
    __m512 e00 = _mm512_setzero_ps(), e01 = e00, e10 = e00, e11 = e00, e20 = e00, e21 = e00;
    __m512 e30 = e00, e31 = e00, e40 = e00, e41 = e00, e50 = e00, e51 = e00;
    __m512 e60 = e00, e61 = e00, e70 = e00, e71 = e00, e80 = e00, e81 = e00;
    __m512 e90 = e00, e91 = e00, e100 = e00, e101 = e00, e110 = e00, e111 = e00;
    const ptrdiff_t bstep = (ptrdiff_t)S * ldb;
    for (int g = 0; g < nimg; g++)
        for (int oh = oh0; oh < oh1; oh++) {
            const float *a = A + g * a_img + ((ptrdiff_t)oh * OW + ow0) * lda;
            const float *b = B + g * b_img + ((ptrdiff_t)(oh * S + offh) * W + ow0 * S + offw) * ldb;
            for (int ow = ow0; ow < ow1; ow++, a += lda, b += bstep) {
                const __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
                DFN_DW_ROW(0); DFN_DW_ROW(1); DFN_DW_ROW(2); DFN_DW_ROW(3);
                DFN_DW_ROW(4); DFN_DW_ROW(5); DFN_DW_ROW(6); DFN_DW_ROW(7);
                DFN_DW_ROW(8); DFN_DW_ROW(9); DFN_DW_ROW(10); DFN_DW_ROW(11);
            }
        }
    DFN_DW_FLUSH(0); DFN_DW_FLUSH(1); DFN_DW_FLUSH(2); DFN_DW_FLUSH(3);
    DFN_DW_FLUSH(4); DFN_DW_FLUSH(5); DFN_DW_FLUSH(6); DFN_DW_FLUSH(7);
    DFN_DW_FLUSH(8); DFN_DW_FLUSH(9); DFN_DW_FLUSH(10); DFN_DW_FLUSH(11);
}

/* ------------------------------------------------------------ forward */

/* Packs weights as the A operand of both kernels, taps outer, channels inner:
 *   wp[t][kk][c][i] = w[t*8+i, c, kk]    (zero past OC)
 * from w (OC, C, KK); with `flip_transpose`, the weights of the transposed,
 * flipped conv that stride-1 backward-data computes (OC and C swapped):
 *   wp[t][kk][oc][i] = w[oc, t*8+i, KK-1-kk]   (zero past C)
 * wp (ceil(rows/8), KK, cols, 8), rows = OC (or C), cols = C (or OC). */
static void pack_weights(float *wp, const float *w, int OC, int C, int KK, int flip_transpose) {
    const int rows = flip_transpose ? C : OC, cols = flip_transpose ? OC : C;
    const int ntiles = (rows + MR - 1) / MR;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntiles; t++)
        for (int kk = 0; kk < KK; kk++)
            for (int c = 0; c < cols; c++)
                for (int i = 0; i < MR; i++) {
                    const int r = t * MR + i;
                    float x = 0.0f;
                    if (r < rows)
                        x = flip_transpose ? w[((size_t)c * C + r) * KK + (KK - 1 - kk)]
                                           : w[((size_t)r * C + c) * KK + kk];
                    wp[(((size_t)t * KK + kk) * cols + c) * MR + i] = x;
                }
}

/* out (N,OC,OH,OW) = (accumulate ? out : bias (OC or NULL)) + conv(inp (N,C,H,W), wp),
 * wp from pack_weights. Tasks: (panel of 48 output pixels, chunk of 8-channel
 * output tiles); a panel uses the implicit kernel when all its reads are shifted
 * rows (stride 1 with OW == W), im2col + kernel_8x48 otherwise. */
static void conv_forward_packed(float *out, int accumulate, const float *inp, const float *wp,
                                const float *bias, const dfn_conv2d_shape *s, void *cache_ws) {
    const int OH = dfn_conv2d_out_h(s), OW = dfn_conv2d_out_w(s);
    const int KK = s->KH * s->KW, CKK = s->C * KK;
    const int64_t P = (int64_t)OH * OW, cols = s->N * P, HW = (int64_t)s->H * s->W;
    const int64_t npanels = (cols + NR - 1) / NR;
    const int ntiles = (s->OC + MR - 1) / MR;
    /* Few panels (batch 1, small images): also split the output channels, so
     * that there are >= 16 tasks when the shape allows. Shape-only. */
    int nchunks = 1;
    if (npanels < 16) nchunks = DFN_MIN(ntiles, (int)((16 + npanels - 1) / npanels));
    const int tiles_per_chunk = (ntiles + nchunks - 1) / nchunks;
    nchunks = (ntiles + tiles_per_chunk - 1) / tiles_per_chunk;

    map_cache mc;
    map_cache_init(&mc, cache_ws, s, npanels, 1);
    const int64_t ntasks = npanels * nchunks;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t task = 0; task < ntasks; task++) {
        const int64_t panel = task / nchunks;
        const int chunk = (int)(task % nchunks);
        const int64_t j0 = panel * NR;
        const int ncols = (int)DFN_MIN((int64_t)NR, cols - j0);
        tap_map *tmp = (tap_map *)dfn_scratch(3, (size_t)KK * NV * sizeof(tap_map) / sizeof(float) + 1);
        out_map otmp[NV];
        const out_map *omap;
        int64_t n0;
        const tap_map *map = panel_maps(&mc, s, j0, ncols, tmp, otmp, &omap, &n0);
        const float *img = inp + n0 * s->C * HW; /* map offsets are relative to image n0 */
        float *oimg = out + n0 * s->OC * P;
        float tile[MR * NR];
        int implicit = 1;
        for (int k = 0; k < KK * NV; k++) implicit &= map[k].nseg >= 0;
        float *col = NULL;
        if (!implicit) { /* col (KK*C, 48), rows (kk, c) to match wp */
            col = dfn_scratch(0, (size_t)CKK * NR);
            im2col_panel(col, NR, 1, s->C, img, map, s, 0, s->C);
        }
        const int t1 = DFN_MIN(ntiles, (chunk + 1) * tiles_per_chunk);
        for (int t = chunk * tiles_per_chunk; t < t1; t++) {
            const float *a = wp + (size_t)t * CKK * MR;
            if (implicit) kernel_implicit(s->C, KK, a, img, HW, map, tile);
            else kernel_8x48(CKK, a, col, NR, tile);
            for (int i = 0; i < MR && t * MR + i < s->OC; i++) {
                const int oc = t * MR + i;
                const __m512 b = _mm512_set1_ps(bias ? bias[oc] : 0.0f);
                float *orow = oimg + oc * P;
                for (int v = 0; v < NV; v++) {
                    const __m512 x = _mm512_loadu_ps(tile + i * NR + v * 16);
                    for (int g = 0; g < omap[v].nseg; g++) {
                        float *o = fptr(orow, omap[v].off[g]);
                        const __mmask16 m = omap[v].m[g];
                        const __m512 y = accumulate ? _mm512_maskz_loadu_ps(m, o) : b;
                        _mm512_mask_storeu_ps(o, m, _mm512_add_ps(y, x));
                    }
                }
            }
        }
    }
}


/* ------------------------------------------------------------ Winograd F(2x2, 3x3) */

/* Stride-1 3x3 convs with pad 1 ("same") on images up to 30 wide, when there
 * are enough tiles, run as Winograd F(2x2, 3x3) (Lavin & Gray 2016): the output
 * is cut into 2x2 tiles (global tile index j = n*TH*TW + ty*TW + tx, TH = ceil(H/2),
 * TW = ceil(W/2)); tile j reads the 4x4 input patch d at rows 2ty-1.., cols 2tx-1..
 * (zero outside the image) and
 *   out tile = A^T [ sum_c (G g[oc,c] G^T) .* (B^T d[c] B) ] A
 * i.e. 16 products U[xi] (OC x C) V[xi] (C x tiles), 2.25x fewer multiplications
 * than the direct conv. Tasks: (block of 48 tiles, chunk of 8-channel output tiles),
 * shape-only as the direct path; each task transforms its block's input (all
 * channels), runs kernel_8x48 per (xi, 8 output channels) with C as the sum
 * index (channels ascending), and transforms back; a fixed order in every step. */
#define WB NR /* tiles per block: the columns of kernel_8x48 */
#ifndef DFN_CONV_WINOGRAD
#define DFN_CONV_WINOGRAD 1 /* 0: every conv runs direct */
#endif

static int use_winograd(const dfn_conv2d_shape *s) {
    if (!DFN_CONV_WINOGRAD) return 0;
    if (s->KH != 3 || s->KW != 3 || s->stride != 1 || s->pad != 1 || s->C < 16 || s->OC < 8) return 0;
    const int TW = (s->W + 1) / 2;
    /* one 32-float window per input row of a tile row; narrow images (7x7) waste
     * most lanes of the transforms and run faster direct */
    if (TW > 15 || TW < 7) return 0;
    const int64_t tiles = (int64_t)s->N * ((s->H + 1) / 2) * TW;
    /* >= 16 blocks: no output-channel chunks, whose tasks would each transform
     * the block's input again (batch 1 runs faster direct) */
    return tiles >= 16 * WB;
}

/* up[xi][t][c][i] = (G g G^T)[xi] of g = w[t*8+i, c] (3x3), zero past `rows`;
 * with `flip_transpose`, g = w[c, t*8+i] rotated by 180 degrees (the transposed
 * conv of stride-1 backward data). rows = OC (C), cols = C (OC). */
static void pack_winograd(float *up, const float *w, int OC, int C, int flip_transpose) {
    const int rows = flip_transpose ? C : OC, cols = flip_transpose ? OC : C;
    const int ntiles = (rows + MR - 1) / MR;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ntiles; t++)
        for (int c = 0; c < cols; c++) {
            double g[3][3][MR], gg[4][3][MR], u[4][4][MR]; /* lane i: row t*8+i */
            for (int i = 0; i < MR; i++) {
                const int r = t * MR + i;
                for (int k = 0; k < 9; k++)
                    g[k / 3][k % 3][i] = r >= rows ? 0.0
                                         : flip_transpose ? w[((size_t)c * C + r) * 9 + 8 - k]
                                                          : w[((size_t)r * C + c) * 9 + k];
            }
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

static inline __mmask16 lane_range(int lo, int hi) { /* lanes lo <= l < hi of 0..15 */
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)((((uint32_t)1 << hi) - 1) & ~(((uint32_t)1 << lo) - 1));
}

/* out (N,OC,H,W) = (accumulate ? out : bias (OC or NULL)) + conv(inp (N,C,H,W), g),
 * up from pack_winograd; use_winograd(s) holds. */
static void conv_winograd(float *out, int accumulate, const float *inp, const float *up,
                          const float *bias, const dfn_conv2d_shape *s) {
    const int C = s->C, OC = s->OC, H = s->H, W = s->W;
    const int TH = (H + 1) / 2, TW = (W + 1) / 2;
    const int64_t HW = (int64_t)H * W, T = (int64_t)TH * TW, NT = s->N * T;
    const int64_t nblk = (NT + WB - 1) / WB;
    const int ntiles = (OC + MR - 1) / MR;
    int nchunks = 1;
    if (nblk < 16) nchunks = DFN_MIN(ntiles, (int)((16 + nblk - 1) / nblk));
    const int tiles_per_chunk = (ntiles + nchunks - 1) / nchunks;
    nchunks = (ntiles + tiles_per_chunk - 1) / tiles_per_chunk;
    /* lane tx of the tile row picks window element 2tx+u (u = 0..3) */
    int32_t idxv[4][16];
    for (int u = 0; u < 4; u++)
        for (int l = 0; l < 16; l++) idxv[u][l] = DFN_MIN(31, 2 * l + u);
    int32_t ilo[16], ihi[16]; /* interleave y0, y1 lanes: col 2tx -> y0[tx], 2tx+1 -> y1[tx] */
    for (int k = 0; k < 16; k++) ilo[k] = k / 2 + (k & 1) * 16, ihi[k] = (k + 16) / 2 + (k & 1) * 16;
    const int64_t ntasks = nblk * nchunks;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t task = 0; task < ntasks; task++) {
        const int64_t blk = task / nchunks;
        const int chunk = (int)(task % nchunks);
        const int64_t j0 = blk * WB;
        const int nj = (int)DFN_MIN((int64_t)WB, NT - j0);
        const int t0 = chunk * tiles_per_chunk, t1 = DFN_MIN(ntiles, t0 + tiles_per_chunk);
        const int nt = t1 - t0;
        float *V = dfn_scratch(0, (size_t)16 * C * WB);
        float *M = dfn_scratch(1, (size_t)16 * nt * MR * WB);
        const int64_t R0 = j0 / TW, R1 = (j0 + nj - 1) / TW; /* tile rows n*TH + ty of the block */
        if (nj < WB)
            for (int64_t r = 0; r < 16 * C; r++) memset(V + r * WB + nj, 0, (size_t)(WB - nj) * sizeof(float));
        const __m512i i0 = _mm512_loadu_si512(idxv[0]), i1 = _mm512_loadu_si512(idxv[1]);
        const __m512i i2 = _mm512_loadu_si512(idxv[2]), i3 = _mm512_loadu_si512(idxv[3]);
        const __mmask16 mw0 = lane_range(1, W + 1), mw1 = lane_range(0, W - 15);
        /* V[xi][c][q] = (B^T d B)[xi] of tile j0 + q */
        for (int64_t R = R0; R <= R1; R++) {
            const int64_t n = R / TH;
            const int ty = (int)(R % TH);
            const int q0 = (int)(R * TW - j0); /* column of lane 0 (tx = 0) */
            const __mmask16 m = lane_range(-q0, DFN_MIN(TW, nj - q0));
            const float *rows[4];
            __mmask16 m0r[4], m1r[4];
            for (int r = 0; r < 4; r++) { /* rows outside the image read as zeros (empty masks) */
                const int ih = 2 * ty - 1 + r, in = ih >= 0 && ih < H;
                rows[r] = inp + (int64_t)n * C * HW + (int64_t)(in ? ih : 0) * W;
                m0r[r] = in ? mw0 : 0;
                m1r[r] = in ? mw1 : 0;
            }
            float *v = fptr(V, q0);
            for (int c = 0; c < C; c++, v += WB) {
                __m512 d[4][4];
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    const float *row = rows[r] + c * HW;
                    _mm_prefetch((const char *)fptr(row, 12 * HW - 1), _MM_HINT_T0); /* 12 channels on */
                    _mm_prefetch((const char *)fptr(row, 12 * HW + 15), _MM_HINT_T0);
                    _mm_prefetch((const char *)fptr(row, 12 * HW + W - 1), _MM_HINT_T0);
                    const __m512 w0 = _mm512_maskz_loadu_ps(m0r[r], fptr(row, -1));
                    const __m512 w1 = _mm512_maskz_loadu_ps(m1r[r], fptr(row, 15));
                    d[r][0] = _mm512_permutex2var_ps(w0, i0, w1);
                    d[r][1] = _mm512_permutex2var_ps(w0, i1, w1);
                    d[r][2] = _mm512_permutex2var_ps(w0, i2, w1);
                    d[r][3] = _mm512_permutex2var_ps(w0, i3, w1);
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
                    const ptrdiff_t xs = (ptrdiff_t)4 * a * C * WB;
                    _mm512_mask_storeu_ps(v + xs, m, _mm512_sub_ps(e[a][0], e[a][2]));
                    _mm512_mask_storeu_ps(v + xs + (ptrdiff_t)C * WB, m, _mm512_add_ps(e[a][1], e[a][2]));
                    _mm512_mask_storeu_ps(v + xs + (ptrdiff_t)2 * C * WB, m, _mm512_sub_ps(e[a][2], e[a][1]));
                    _mm512_mask_storeu_ps(v + xs + (ptrdiff_t)3 * C * WB, m, _mm512_sub_ps(e[a][1], e[a][3]));
                }
            }
        }
        /* M[xi][oc - t0*8][q] = sum_c U[xi][oc][c] V[xi][c][q] */
        for (int xi = 0; xi < 16; xi++)
            for (int t = t0; t < t1; t++)
                kernel_8x48(C, up + ((size_t)xi * ntiles + t) * C * MR, V + (size_t)xi * C * WB, WB,
                            M + ((size_t)xi * nt + (t - t0)) * MR * WB);
        /* out tile = A^T M A: A^T rows (1,1,1,0), (0,1,-1,-1) */
        const __m512i jlo = _mm512_loadu_si512(ilo), jhi = _mm512_loadu_si512(ihi);
        const ptrdiff_t xs = (ptrdiff_t)nt * MR * WB;
        for (int oc = t0 * MR; oc < DFN_MIN(OC, t1 * MR); oc++) {
            const __m512 b = _mm512_set1_ps(bias ? bias[oc] : 0.0f);
            const float *mo = M + (ptrdiff_t)(oc - t0 * MR) * WB;
            for (int64_t R = R0; R <= R1; R++) {
                const int64_t n = R / TH;
                const int ty = (int)(R % TH);
                const int q0 = (int)(R * TW - j0);
                const int txa = DFN_MAX(0, -q0), txb = DFN_MIN(TW, nj - q0);
                const __mmask16 m = lane_range(txa, txb);
                const float *mp = fptr(mo, q0);
                __m512 x[16];
#pragma GCC unroll 16
                for (int k = 0; k < 16; k++) x[k] = _mm512_maskz_loadu_ps(m, mp + k * xs);
                __m512 f[2][4];
#pragma GCC unroll 4
                for (int u = 0; u < 4; u++) {
                    f[0][u] = _mm512_add_ps(_mm512_add_ps(x[u], x[4 + u]), x[8 + u]);
                    f[1][u] = _mm512_sub_ps(_mm512_sub_ps(x[4 + u], x[8 + u]), x[12 + u]);
                }
                const int ca = 2 * txa, cb = DFN_MIN(2 * txb, W);
                const __mmask16 mlo = lane_range(ca, cb), mhi = lane_range(ca - 16, cb - 16);
#pragma GCC unroll 2
                for (int a = 0; a < 2; a++) {
                    const int oh = 2 * ty + a;
                    if (oh >= H) break;
                    const __m512 y0 = _mm512_add_ps(_mm512_add_ps(f[a][0], f[a][1]), f[a][2]);
                    const __m512 y1 = _mm512_sub_ps(_mm512_sub_ps(f[a][1], f[a][2]), f[a][3]);
                    const __m512 lo = _mm512_permutex2var_ps(y0, jlo, y1), hi = _mm512_permutex2var_ps(y0, jhi, y1);
                    float *o = out + (((int64_t)n * OC + oc) * H + oh) * W;
                    if (accumulate) {
                        _mm512_mask_storeu_ps(o, mlo, _mm512_add_ps(_mm512_maskz_loadu_ps(mlo, o), lo));
                        _mm512_mask_storeu_ps(o + 16, mhi, _mm512_add_ps(_mm512_maskz_loadu_ps(mhi, o + 16), hi));
                    } else {
                        _mm512_mask_storeu_ps(o, mlo, _mm512_add_ps(b, lo));
                        _mm512_mask_storeu_ps(o + 16, mhi, _mm512_add_ps(b, hi));
                    }
                }
            }
        }
    }
}

/* out (N,OC,OH,OW) = conv(inp (N,C,H,W), weight (OC,C,KH,KW)) + bias (OC or NULL). */
static void forward_fast(float *out, const float *inp, const float *weight, const float *bias,
                         const dfn_conv2d_shape *s) {
    const int KK = s->KH * s->KW;
    /* packed weights in the calling thread's slot 2 (tasks use slots 0 and 3) */
    const size_t nwp = (size_t)(s->OC + MR - 1) / MR * MR * s->C * KK; /* floats, multiple of 8 */
    const int64_t npanels = ((int64_t)s->N * dfn_conv2d_out_h(s) * dfn_conv2d_out_w(s) + NR - 1) / NR;
    const size_t ncache = (map_cache_bytes(s, npanels, 1) + 63) / 64 * 16;
    if (use_winograd(s)) {
        float *up = dfn_scratch(2, nwp / KK * 16);
        pack_winograd(up, weight, s->OC, s->C, 0);
        conv_winograd(out, 0, inp, up, bias, s);
        return;
    }
    float *wp = dfn_scratch(2, nwp + 16 + ncache);
    pack_weights(wp, weight, s->OC, s->C, KK, 0);
    conv_forward_packed(out, 0, inp, wp, bias, s, (void *)((uintptr_t)(wp + nwp + 15) & ~(uintptr_t)63));
}

/* ------------------------------------------------------------ backward */

/* Differentiates dfn_conv2d_forward, out = W col + bias (see the top of the file):
 *   dinp  += col2im(W^T dout)                       (N,C,H,W)
 *   dW    += sum over columns of dout col^T          (OC, C*KH*KW)
 *   dbias += sum over columns of dout                (OC)
 * Tasks: (image slot, channel block). A slot is a fixed range of images; its
 * weight gradient goes to its own partial, summed over slots in order at the end. */
static void backward_fast(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, const dfn_conv2d_shape *s) {
    const int OH = dfn_conv2d_out_h(s), OW = dfn_conv2d_out_w(s);
    const int N = s->N, C = s->C, OC = s->OC, KK = s->KH * s->KW, CKK = C * KK;
    const int64_t P = (int64_t)OH * OW;

    if (dbias) {
        /* dbias[oc] += sum_{n,p} dout[n,oc,p], in double: element p of every image
         * goes to lane p mod 32 of four 8-lane accumulators, which are summed at
         * the end in a fixed order. */
#pragma omp parallel for schedule(static)
        for (int oc = 0; oc < OC; oc++) {
            __m512d d0 = _mm512_setzero_pd(), d1 = d0, d2 = d0, d3 = d0;
            for (int n = 0; n < N; n++) {
                const float *g = dout + ((int64_t)n * OC + oc) * P;
                for (int64_t p = 0; p < P; p += 32) {
                    const int64_t left = P - p;
                    const __mmask16 m0 = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
                    const __mmask16 m1 = left >= 32 ? 0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
                    const __m512 x0 = _mm512_maskz_loadu_ps(m0, g + p), x1 = _mm512_maskz_loadu_ps(m1, g + p + 16);
                    d0 = _mm512_add_pd(d0, _mm512_cvtps_pd(_mm512_castps512_ps256(x0)));
                    d1 = _mm512_add_pd(d1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(x0, 1)));
                    d2 = _mm512_add_pd(d2, _mm512_cvtps_pd(_mm512_castps512_ps256(x1)));
                    d3 = _mm512_add_pd(d3, _mm512_cvtps_pd(_mm512_extractf32x8_ps(x1, 1)));
                }
            }
            double lanes[8];
            _mm512_storeu_pd(lanes, _mm512_add_pd(_mm512_add_pd(d0, d1), _mm512_add_pd(d2, d3)));
            double acc = 0;
            for (int l = 0; l < 8; l++) acc += lanes[l];
            dbias[oc] += (float)acc;
        }
    }
    /* Stride 1, square kernel, pad <= K-1: backward-data is itself a stride-1 conv,
     *   dinp[n,c,ih,iw] += sum_{oc,kh',kw'} w[oc,c,K-1-kh',K-1-kw'] dout[n,oc,ih-P'+kh',iw-P'+kw']
     * with P' = K-1-P, which gives H x W back; it runs on the forward's kernels. */
    if (dinp && s->stride == 1 && s->KH == s->KW && s->pad <= s->KH - 1) {
        const dfn_conv2d_shape t = {N, OC, OH, OW, C, s->KH, s->KW, 1, s->KH - 1 - s->pad};
        DFN_ASSERT(dfn_conv2d_out_h(&t) == s->H && dfn_conv2d_out_w(&t) == s->W);
        const size_t nwp = (size_t)(C + MR - 1) / MR * MR * OC * KK;
        if (use_winograd(&t)) {
            float *up = dfn_scratch(2, nwp / KK * 16);
            pack_winograd(up, weight, OC, C, 1);
            conv_winograd(dinp, 1, dout, up, NULL, &t);
        } else {
            const int64_t npanels = ((int64_t)N * s->H * s->W + NR - 1) / NR;
            const size_t ncache = (map_cache_bytes(&t, npanels, 1) + 63) / 64 * 16;
            float *wp = dfn_scratch(2, nwp + 16 + ncache);
            pack_weights(wp, weight, OC, C, KK, 1);
            conv_forward_packed(dinp, 1, dout, wp, NULL, &t, (void *)((uintptr_t)(wp + nwp + 15) & ~(uintptr_t)63));
        }
        dinp = NULL; /* done */
    }
    if (!dinp && !dweight) return;

    /* Image slots: S in {1,2,4,6,12} (divisible by 2 and 3 threads where
     * possible), S <= N and S*OC*CKK (the reduction) small next to N*P*OC*CKK
     * (the products). */
    static const int slot_choices[] = {12, 6, 4, 2, 1};
    int S = 1;
    for (int i = 0; i < 5; i++)
        if (slot_choices[i] <= N && slot_choices[i] * 256 <= N * P) { S = slot_choices[i]; break; }
    /* Images per product: enough columns (>= 384) for an efficient GEMM. */
    const int G = (int)DFN_MAX(1, DFN_MIN((int64_t)N, (384 + P - 1) / P));
    /* The weight gradient: channels-last kernel (C >= 32, several taps) or im2col +
     * dfn_gemm (small C, where vectors over C would be mostly empty; 1x1, where
     * the channels-last copies cost as much as the product). */
    const int cl = dweight && C >= 32 && KK > 1;
    const int OCp = (OC + DW_MR - 1) / DW_MR * DW_MR, Cp = (C + DW_NR - 1) / DW_NR * DW_NR;
    const int64_t HW = (int64_t)s->H * s->W;
    /* Channel blocks (multiples of 8 channels, so that 8-row tiles of C*KK never
     * straddle blocks; of 32 for the channels-last tiles): enough that there are
     * >= 8 tasks when C allows. */
    const int cmult = cl ? DW_NR : MR;
    int cblk = C;
    if (S < 8) {
        int want = (8 + S - 1) / S;
        cblk = ((C + want - 1) / want + cmult - 1) / cmult * cmult;
        if (cblk > C) cblk = C;
    }
    const int ncblk = (C + cblk - 1) / cblk;
    const int nrt = (CKK + MR - 1) / MR; /* 8-row tiles of dcol */

    /* Calling thread's slot 2: [S partial dW] [packed W^T]. Partials are
     * (OC, CKK) as dW, or (KK, OCp, Cp) for the channels-last kernel. */
    const size_t wsz = cl ? (size_t)KK * OCp * Cp : (size_t)OC * CKK;
    const int need_maps = (dweight && !cl) || dinp; /* im2col or col2im */
    const size_t ncache = need_maps ? (map_cache_bytes(s, N * P / NR, 0) + 63) / 64 * 16 : 0;
    const size_t npart = dweight ? (size_t)S * wsz : 0, nwtp = dinp ? (size_t)nrt * OC * MR : 0;
    float *buf = dfn_scratch(2, npart + nwtp + 16 + ncache);
    float *part = buf;
    float *wtp = buf + npart;
    map_cache mc = {0, 0, NULL, NULL};
    if (need_maps)
        map_cache_init(&mc, (void *)((uintptr_t)(buf + npart + nwtp + 15) & ~(uintptr_t)63), s, N * P / NR, 0);
    if (dinp) { /* wtp[t][oc][i] = w[oc][t*8+i] (zero past CKK): A operand of W^T dout */
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
        tap_map *tmp = (tap_map *)dfn_scratch(3, (size_t)KK * NV * sizeof(tap_map) / sizeof(float) + 1);
        const int64_t CHW = (int64_t)C * s->H * s->W;
        float tile[MR * NR];
        float *pslot = part + slot * wsz;
        if (cl) /* this task's columns of its slot's partial start at zero */
            for (int64_t r = 0; r < (int64_t)KK * OCp; r++)
                memset(pslot + r * Cp + c0, 0, (size_t)(c1 - c0) * sizeof(float));
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
                /* gtt[g][p][oc] = dout[n0+g, oc, p] (zero for oc >= OC), xt[g][pix][c] = inp[n0+g, c, pix] */
                float *xt = dfn_scratch(0, (size_t)ng * HW * C);
                for (int g = 0; g < ng; g++) {
                    float *gg = gtt + g * P * OCp;
                    transpose(gg, OCp, dout + (int64_t)(n0 + g) * OC * P, P, OC, (int)P);
                    if (OCp > OC)
                        for (int64_t p = 0; p < P; p++) memset(gg + p * OCp + OC, 0, (size_t)(OCp - OC) * sizeof(float));
                    transpose(xt + g * HW * C + c0, C, inp + ((int64_t)(n0 + g) * C + c0) * HW, HW, c1 - c0, (int)HW);
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
                            for (int ct = c0; ct < c1; ct += DW_NR) {
                                const int nc = c1 - ct;
                                const __mmask16 m0 = nc >= 16 ? 0xFFFF : (__mmask16)((1u << nc) - 1);
                                const __mmask16 m1 = nc >= 32 ? 0xFFFF : nc <= 16 ? 0 : (__mmask16)((1u << (nc - 16)) - 1);
                                kernel_dw(pslot + ((int64_t)kk * OCp + oc0) * Cp + ct, Cp, gtt + oc0, OCp,
                                          P * OCp, xt + ct, C, HW * C, ng, oh0, oh1, ow0, ow1, OW, s->W,
                                          s->stride, kh - s->pad, kw - s->pad, m0, m1);
                            }
                    }
            } else if (dweight) {
                /* col rows of channels c0..c1 as (nrows, Jt); part[slot][:, c0*KK..] (+)= gt col^T */
                float *col = dfn_scratch(0, (size_t)nrows * Jt);
                for (int64_t pn = 0; pn < npan; pn++) {
                    int64_t ni;
                    const tap_map *map = panel_maps(&mc, s, n0 * P + pn * NR, (int)DFN_MIN((int64_t)NR, J - pn * NR),
                                                    tmp, NULL, NULL, &ni);
                    im2col_panel(col + pn * NR, Jt, KK, 1, inp + ni * CHW, map, s, c0, c1);
                }
                dfn_gemm(0, 1, OC, nrows, (int)J, 1.0f, gt, (int)Jt, col, (int)Jt,
                         n0 == n_begin ? 0.0f : 1.0f, pslot + (size_t)c0 * KK, CKK);
            }
            if (dinp) {
                /* dcol = W^T gt, tile by tile, each scattered back at once */
                for (int64_t pn = 0; pn < npan; pn++) {
                    int64_t ni;
                    const tap_map *map = panel_maps(&mc, s, n0 * P + pn * NR, (int)DFN_MIN((int64_t)NR, J - pn * NR),
                                                    tmp, NULL, NULL, &ni);
                    for (int r = c0 * KK; r < c1 * KK; r += MR) {
                        kernel_8x48(OC, wtp + (size_t)(r / MR) * OC * MR, gt + pn * NR, Jt, tile);
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

#pragma GCC pop_options

/* ------------------------------------------------------------ public entry points */

static int have_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

void dfn_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                        const dfn_conv2d_shape *s) {
    DFN_ASSERT(out && inp && weight && s);
    check_shape(s);
    if (have_avx512()) forward_fast(out, inp, weight, bias, s);
    else dfn_conv2d_forward_reference(out, inp, weight, bias, s);
}

void dfn_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, const dfn_conv2d_shape *s) {
    DFN_ASSERT(dout && inp && weight && s);
    check_shape(s);
    if (have_avx512()) backward_fast(dinp, dweight, dbias, dout, inp, weight, s);
    else dfn_conv2d_backward_reference(dinp, dweight, dbias, dout, inp, weight, s);
}

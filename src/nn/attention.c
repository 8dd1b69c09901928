/* attention.c - multi-head self-attention over the spatial positions of an image.
 *
 * Scaled dot-product attention (Vaswani et al. 2017, eq. 1),
 *     Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V,
 * applied as in the DDPM U-Net's AttnBlock (Ho et al. 2020): the queries, keys and
 * values are the HW pixels of one image, each a vector of channels. With `heads`
 * heads, head h owns the D = C/heads consecutive channels h*D .. h*D+D-1. For one
 * image and head, with q, k, v the (D, HW) slices of the NCHW tensors:
 *     att[i, j] = softmax_j( sum_d q[d, i] k[d, j] / sqrt(D) )     (HW, HW)
 *     out[d, i] = sum_j v[d, j] att[i, j]                          (D, HW)
 * which is PyTorch's
 *     w = softmax(bmm(q^T, k) * D**-0.5, dim=-1);  out = bmm(v, w^T).
 *
 * The products go through dfn_gemm, with its transpose flags standing in for the
 * transposes; the softmax runs 16 lanes at a time with an exp of our own (glibc's
 * expf is not vectorised without -ffast-math).
 *
 * Threads and determinism. The work of one (image, head) pair is cut into blocks
 * of query rows whose size depends on HW only. The forward pass treats every
 * (image, head, row block) as an independent task: each writes its own rows of
 * att and its own columns of out. The backward pass accumulates dv and dk over all
 * query rows, so its tasks are whole (image, head) pairs, each running over its
 * row blocks in order. When there are too few pairs to keep the threads busy
 * (fewer than ATT_SPLIT_PAIRS), backward takes the pairs one at a time and splits
 * each twice: first over query rows (dq and the softmax gradient), then over key
 * columns (dv and dk). No sum ever crosses a thread, every dfn_gemm runs on one
 * thread, and every layout depends on the shape only, so results are
 * bit-identical for any thread count.
 */
#include <math.h>
#include <stdint.h>

#include "core/core.h"
#include "nn/exp_poly.h"
#include "nn/kernels.h"

/* Query rows per block: blocks keep a block of att (rows x HW floats) in cache
 * between the GEMM that writes it and the softmax and GEMM that read it. */
#define ATT_BLOCK_ROWS 128
/* Below this many (image, head) pairs, backward splits each pair across threads. */
#define ATT_SPLIT_PAIRS 4

/* Query rows per block for HW positions: the fewest blocks of at most
 * ATT_BLOCK_ROWS rows, made as even as possible (only the last may be shorter). */
static int att_block_rows(int HW) {
    int nblk = (HW + ATT_BLOCK_ROWS - 1) / ATT_BLOCK_ROWS;
    return (HW + nblk - 1) / nblk;
}

/* ------------------------------------------------------------ softmax */

/* Two implementations of the same arithmetic: AVX-512 intrinsics (the avx512
 * level), and portable C that the compiler may vectorise (the others). Where the
 * target has FMA (avx2, aarch64) they give bit-identical results: every
 * operation is an IEEE add, multiply or fused multiply-add (fmaf) in the same
 * order, and sums run in ATT_LANES lanes, element j of a row going to lane
 * j % ATT_LANES whatever the vector width or the alignment of the row. Without
 * FMA (generic on x86) the exp multiplies and adds, with a shorter ln2_hi. */
#define ATT_LANES 16
/* Each implementation defines
 *   softmax_row(x, n): x (n) logits in, probabilities out. Subtracts the row max
 *     before exp (numerically stable), sums the exponentials in double, and
 *     multiplies by the reciprocal of the sum.
 *   softmax_backward_row(g, p, n): backward of p = softmax(x) for one row. g (n)
 *     holds datt = dL/dp on entry and dL/dx = p * (datt - sum_j datt[j] p[j]) on
 *     exit, the sum in double; p (n) the probabilities. */

/* exp(x) for x <= 0: x = n ln2 + r with n an integer and |r| <= ln2/2, so
 * exp(x) = 2^n exp(r), exp(r) by its Taylor series to r^7 (truncation below
 * 6e-9 relative; measured over every float in [-104, 0]: at most 0.94 ulp, and
 * the two implementations agree bit for bit on every non-positive float).
 * x is first raised to -104, whose exp rounds to 0 in float; the scaling by 2^n
 * rounds once, correctly, also into the subnormals. NaN stays NaN. */
#define EXP_SHIFT 12582912.0f              /* 1.5 * 2^23: y + EXP_SHIFT rounds y to an integer */
#define EXP_LOG2E 1.44269504088896341f
#if defined(__FP_FAST_FMAF)
#define EXP_LN2_HI 0.693147182464599609375f /* float(ln 2) */
#define EXP_LN2_LO -1.904654323148236e-09f  /* ln 2 - EXP_LN2_HI */
#else /* 16 significant bits: n EXP_LN2_HI is exact without a fused multiply-add */
#define EXP_LN2_HI 0.693145751953125f
#define EXP_LN2_LO 1.4286068202862268e-06f
#endif
#define EXP_MIN -104.0f

/* Sums the lanes in a fixed order. */
static double sum_lanes(const double acc[ATT_LANES]) {
    double s8[8];
    for (int l = 0; l < 8; l++) s8[l] = acc[l] + acc[l + 8];
    double s4[4];
    for (int l = 0; l < 4; l++) s4[l] = s8[l] + s8[l + 4];
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

#if defined(__AVX512F__)
#include <immintrin.h>

static inline __m512 exp_nonpositive16(__m512 x) {
    const __m512 xc = _mm512_max_ps(_mm512_set1_ps(EXP_MIN), x); /* x < MIN ? MIN : x */
    const __m512 shift = _mm512_set1_ps(EXP_SHIFT);
    const __m512 n = _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(EXP_LOG2E), shift), shift);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-EXP_LN2_HI), xc);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n); /* p * 2^n, rounded once */
}

/* lanes 0-7 and 8-15 of x, widened to double */
static inline __m512d lo8(__m512 x) { return _mm512_cvtps_pd(_mm512_castps512_ps256(x)); }
static inline __m512d hi8(__m512 x) {
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
}

static inline __mmask16 tail_mask(int rem) { return (__mmask16)((1u << rem) - 1u); }

static void softmax_row(float *x, int n) {
    const int nfull = n / 16 * 16, rem = n - nfull;
    const __mmask16 tm = tail_mask(rem);
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < nfull; j += 16) mv = _mm512_max_ps(_mm512_loadu_ps(x + j), mv);
    if (rem) mv = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tm, x + nfull), mv);
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mv));

    __m512d acc_lo = _mm512_setzero_pd(), acc_hi = _mm512_setzero_pd();
    for (int j = 0; j < nfull; j += 16) {
        const __m512 e = exp_nonpositive16(_mm512_sub_ps(_mm512_loadu_ps(x + j), m));
        _mm512_storeu_ps(x + j, e);
        acc_lo = _mm512_add_pd(acc_lo, lo8(e));
        acc_hi = _mm512_add_pd(acc_hi, hi8(e));
    }
    if (rem) {
        __m512 e = exp_nonpositive16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tm, x + nfull), m));
        e = _mm512_maskz_mov_ps(tm, e);
        _mm512_mask_storeu_ps(x + nfull, tm, e);
        acc_lo = _mm512_add_pd(acc_lo, lo8(e));
        acc_hi = _mm512_add_pd(acc_hi, hi8(e));
    }
    double acc[ATT_LANES];
    _mm512_storeu_pd(acc, acc_lo);
    _mm512_storeu_pd(acc + 8, acc_hi);
    const __m512 inv = _mm512_set1_ps((float)(1.0 / sum_lanes(acc)));
    for (int j = 0; j < nfull; j += 16) _mm512_storeu_ps(x + j, _mm512_mul_ps(_mm512_loadu_ps(x + j), inv));
    if (rem) _mm512_mask_storeu_ps(x + nfull, tm, _mm512_mul_ps(_mm512_maskz_loadu_ps(tm, x + nfull), inv));
}

static void softmax_backward_row(float *g, const float *p, int n) {
    const int nfull = n / 16 * 16, rem = n - nfull;
    const __mmask16 tm = tail_mask(rem);
    __m512d acc_lo = _mm512_setzero_pd(), acc_hi = _mm512_setzero_pd();
    for (int j = 0; j < nfull; j += 16) {
        const __m512 gv = _mm512_loadu_ps(g + j), pv = _mm512_loadu_ps(p + j);
        acc_lo = _mm512_fmadd_pd(lo8(gv), lo8(pv), acc_lo); /* the product is exact in double */
        acc_hi = _mm512_fmadd_pd(hi8(gv), hi8(pv), acc_hi);
    }
    if (rem) {
        const __m512 gv = _mm512_maskz_loadu_ps(tm, g + nfull), pv = _mm512_maskz_loadu_ps(tm, p + nfull);
        acc_lo = _mm512_fmadd_pd(lo8(gv), lo8(pv), acc_lo);
        acc_hi = _mm512_fmadd_pd(hi8(gv), hi8(pv), acc_hi);
    }
    double acc[ATT_LANES];
    _mm512_storeu_pd(acc, acc_lo);
    _mm512_storeu_pd(acc + 8, acc_hi);
    const __m512 s = _mm512_set1_ps((float)sum_lanes(acc));
    for (int j = 0; j < nfull; j += 16) {
        const __m512 gv = _mm512_loadu_ps(g + j), pv = _mm512_loadu_ps(p + j);
        _mm512_storeu_ps(g + j, _mm512_mul_ps(pv, _mm512_sub_ps(gv, s)));
    }
    if (rem) {
        const __m512 gv = _mm512_maskz_loadu_ps(tm, g + nfull), pv = _mm512_maskz_loadu_ps(tm, p + nfull);
        _mm512_mask_storeu_ps(g + nfull, tm, _mm512_mul_ps(pv, _mm512_sub_ps(gv, s)));
    }
}

#else /* portable C, the same arithmetic */

static inline float exp_nonpositive(float x) {
    const float xc = x < EXP_MIN ? EXP_MIN : x;
    const float t = dfn_fmaf(xc, EXP_LOG2E, EXP_SHIFT);
    const float n = t - EXP_SHIFT;
    float r = dfn_fmaf(n, -EXP_LN2_HI, xc);
    r = dfn_fmaf(n, -EXP_LN2_LO, r);
    const float p = dfn_exp_poly7(r);
    /* p * 2^n rounded once, as AVX-512's scalef: n >= -150, so 2^(n+64) is a
     * normal float and p * 2^(n+64) is exact; the multiply by 2^-64 rounds.
     * t = EXP_SHIFT + n exactly, so the low bits of t hold n and the exponent
     * field n + 64 + 127 is (bits(t) + 191) << 23 (the shift drops EXP_SHIFT's bits). */
    union { float f; uint32_t u; } tb = {t}, two;
    two.u = (tb.u + 191u) << 23;
    return (p * two.f) * 0x1p-64f;
}

static void softmax_row(float *x, int n) {
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int j = 0; j < n; j++) m = x[j] > m ? x[j] : m; /* exact in any order */
#pragma omp simd
    for (int j = 0; j < n; j++) x[j] = exp_nonpositive(x[j] - m);
    double acc[ATT_LANES] = {0};
    for (int j = 0; j < n; j++) acc[j % ATT_LANES] += (double)x[j];
    const float inv = (float)(1.0 / sum_lanes(acc));
#pragma omp simd
    for (int j = 0; j < n; j++) x[j] *= inv;
}

static void softmax_backward_row(float *g, const float *p, int n) {
    double acc[ATT_LANES] = {0};
    for (int j = 0; j < n; j++) acc[j % ATT_LANES] += (double)g[j] * (double)p[j];
    const float s = (float)sum_lanes(acc);
#pragma omp simd
    for (int j = 0; j < n; j++) g[j] = p[j] * (g[j] - s);
}

#endif

/* ------------------------------------------------------------ forward */

/* One block of query rows i0 .. i0+rows-1 of one (image, head) pair.
 * qh, kh, vh, oh (D, HW) are the pair's slices; ah (HW, HW) its probabilities. */
static void forward_block(float *oh, float *ah, const float *qh, const float *kh,
                          const float *vh, int D, int HW, float scale, int i0, int rows) {
    float *a = ah + (size_t)i0 * HW; /* (rows, HW) */
    /* a[i, j] = scale * sum_d q[d, i0+i] k[d, j]:  a = scale * q[:, block]^T k */
    dfn_gemm(1, 0, rows, HW, D, scale, qh + i0, HW, kh, HW, 0.0f, a, HW);
    for (int i = 0; i < rows; i++) softmax_row(a + (size_t)i * HW, HW);
    /* out[d, i0+i] = sum_j v[d, j] a[i, j]:  out[:, block] = v a^T */
    dfn_gemm(0, 1, D, rows, HW, 1.0f, vh, HW, a, HW, 0.0f, oh + i0, HW);
}

/* out (N,C,HW) = attention of q, k, v (N,C,HW) with `heads` heads of D = C/heads
 * channels; att (N,heads,HW,HW) receives the softmax probabilities.
 * out and att must not overlap q, k or v. */
void DFN_K(dfn_attention_forward)(float *out, float *att, const float *q, const float *k,
                                  const float *v, int N, int C, int HW, int heads) {
    DFN_ASSERT(out && att && q && k && v);
    DFN_ASSERT(N >= 0 && C > 0 && HW > 0 && heads > 0 && C % heads == 0);
    if (N == 0) return;
    const int D = C / heads;
    const float scale = (float)(1.0 / sqrt((double)D)); /* D**-0.5 */
    const int rb = att_block_rows(HW);
    const int nblk = (HW + rb - 1) / rb;
    const long ntasks = (long)N * heads * nblk;

#pragma omp parallel for schedule(dynamic, 1)
    for (long t = 0; t < ntasks; t++) {
        const size_t pair = (size_t)(t / nblk); /* n * heads + h */
        const int blk = (int)(t % nblk);
        /* channel h*D of image n starts at (n*C + h*D)*HW = pair*D*HW */
        const size_t off = pair * D * HW;
        const int i0 = blk * rb;
        forward_block(out + off, att + pair * HW * HW, q + off, k + off, v + off, D, HW, scale,
                      i0, DFN_MIN(rb, HW - i0));
    }
}

/* ------------------------------------------------------------ backward */

/* Backward of dfn_attention_forward:
 *     a   = scale * q^T k;  att = softmax_j(a);  out = v att^T
 * gives
 *     dv[d, j]   += sum_i dout[d, i] att[i, j]                (dv = dout att)
 *     datt[i, j]  = sum_d dout[d, i] v[d, j]                  (datt = dout^T v)
 *     da[i, j]    = att[i, j] (datt[i, j] - sum_j' datt[i, j'] att[i, j'])
 *     dq[d, i]   += scale * sum_j da[i, j] k[d, j]            (dq = scale k da^T)
 *     dk[d, j]   += scale * sum_i da[i, j] q[d, i]            (dk = scale q da)
 * dq, dk, dv (N,C,HW) accumulate, each may be NULL, and must not overlap the
 * inputs; dout, q, k, v (N,C,HW); att (N,heads,HW,HW) as the forward left it. */

/* One (image, head) pair on one thread, over its row blocks in order; dl is
 * scratch of rb * HW floats. The h-suffixed pointers are the pair's (D, HW) slices
 * (NULL gradients stay NULL), ah its (HW, HW) probabilities. */
static void backward_pair(float *dqh, float *dkh, float *dvh, const float *doh,
                          const float *qh, const float *kh, const float *vh, const float *ah,
                          float *dl, int D, int HW, float scale, int rb) {
    for (int i0 = 0; i0 < HW; i0 += rb) {
        const int rows = DFN_MIN(rb, HW - i0);
        const float *a = ah + (size_t)i0 * HW; /* (rows, HW) */
        if (dvh) /* dv += dout[:, block] a */
            dfn_gemm(0, 0, D, HW, rows, 1.0f, doh + i0, HW, a, HW, 1.0f, dvh, HW);
        if (!dqh && !dkh) continue;
        /* dl = datt[block, :] = dout[:, block]^T v, then the softmax backward */
        dfn_gemm(1, 0, rows, HW, D, 1.0f, doh + i0, HW, vh, HW, 0.0f, dl, HW);
        for (int i = 0; i < rows; i++)
            softmax_backward_row(dl + (size_t)i * HW, a + (size_t)i * HW, HW);
        if (dqh) /* dq[:, block] += scale * k dl^T */
            dfn_gemm(0, 1, D, rows, HW, scale, kh, HW, dl, HW, 1.0f, dqh + i0, HW);
        if (dkh) /* dk += scale * q[:, block] dl */
            dfn_gemm(0, 0, D, HW, rows, scale, qh + i0, HW, dl, HW, 1.0f, dkh, HW);
    }
}

/* One (image, head) pair split across the threads: query-row blocks for the
 * softmax gradient (into dl, (HW, HW), shared) and dq, then key-column blocks for
 * dv and dk. */
static void backward_pair_split(float *dqh, float *dkh, float *dvh, const float *doh,
                                const float *qh, const float *kh, const float *vh,
                                const float *ah, float *dl, int D, int HW, float scale,
                                int rb) {
    const int nblk = (HW + rb - 1) / rb;
    const int need_dl = dqh || dkh;
#pragma omp parallel
    {
        if (need_dl) {
#pragma omp for schedule(dynamic, 1)
            for (int b = 0; b < nblk; b++) {
                const int i0 = b * rb, rows = DFN_MIN(rb, HW - i0);
                float *g = dl + (size_t)i0 * HW; /* (rows, HW) */
                dfn_gemm(1, 0, rows, HW, D, 1.0f, doh + i0, HW, vh, HW, 0.0f, g, HW);
                for (int i = 0; i < rows; i++)
                    softmax_backward_row(g + (size_t)i * HW, ah + (size_t)(i0 + i) * HW, HW);
                if (dqh) /* dq[:, block] += scale * k dl[block, :]^T */
                    dfn_gemm(0, 1, D, rows, HW, scale, kh, HW, g, HW, 1.0f, dqh + i0, HW);
            }
        } /* the implicit barrier of `omp for`: dl is complete below */
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < nblk; b++) {
            const int j0 = b * rb, cols = DFN_MIN(rb, HW - j0);
            if (dvh) /* dv[:, block] += dout att[:, block] */
                dfn_gemm(0, 0, D, cols, HW, 1.0f, doh, HW, ah + j0, HW, 1.0f, dvh + j0, HW);
            if (dkh) /* dk[:, block] += scale * q dl[:, block] */
                dfn_gemm(0, 0, D, cols, HW, scale, qh, HW, dl + j0, HW, 1.0f, dkh + j0, HW);
        }
    }
}

void DFN_K(dfn_attention_backward)(float *dq, float *dk, float *dv, const float *dout,
                                   const float *q, const float *k, const float *v, const float *att,
                                   int N, int C, int HW, int heads) {
    DFN_ASSERT(dout && q && k && v && att);
    DFN_ASSERT(N >= 0 && C > 0 && HW > 0 && heads > 0 && C % heads == 0);
    if (N == 0 || (!dq && !dk && !dv)) return;
    const int D = C / heads;
    const float scale = (float)(1.0 / sqrt((double)D));
    const int rb = att_block_rows(HW);
    const long npairs = (long)N * heads;
#define ATT_SLICE(p, pair) ((p) ? (p) + (size_t)(pair) * D * HW : NULL)

    if (npairs < ATT_SPLIT_PAIRS) {
        /* dl for a whole pair, from the calling thread's scratch, shared */
        float *dl = (dq || dk) ? dfn_scratch(0, (size_t)HW * HW) : NULL;
        for (long pair = 0; pair < npairs; pair++) {
            const size_t off = (size_t)pair * D * HW;
            backward_pair_split(ATT_SLICE(dq, pair), ATT_SLICE(dk, pair), ATT_SLICE(dv, pair),
                                dout + off, q + off, k + off, v + off,
                                att + (size_t)pair * HW * HW, dl, D, HW, scale, rb);
        }
        return;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (long pair = 0; pair < npairs; pair++) {
        float *dl = dfn_scratch(0, (size_t)rb * HW);
        const size_t off = (size_t)pair * D * HW;
        backward_pair(ATT_SLICE(dq, pair), ATT_SLICE(dk, pair), ATT_SLICE(dv, pair), dout + off,
                      q + off, k + off, v + off, att + (size_t)pair * HW * HW, dl, D, HW, scale,
                      rb);
    }
#undef ATT_SLICE
}

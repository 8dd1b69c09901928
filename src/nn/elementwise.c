/* elementwise.c - SiLU, the elementwise add, inverted dropout, nearest 2x
 * upsampling, channel concatenation and the per-(image, channel) broadcast add.
 *
 * Every loop here is elementwise or a sum in a fixed order, parallel over tasks
 * whose split depends only on the sizes, so results are bit-identical for any
 * thread count. Tasks are handed out statically, a contiguous run per thread:
 * thread k then works on the images it wrote in the convolution before (the
 * same split by image), whose data is still in its core's cache. Inner loops
 * run over contiguous memory, with restrict pointers and `omp simd` (gcc -O2
 * vectorises only loops whose trip count it knows otherwise; simd never
 * reassociates anything here).
 *
 * SiLU and its derivative come from silu.h (a vectorisable exp), shared with
 * the fused GroupNorm+SiLU.
 *
 * Dropout draws a Philox block per 4 elements, 16 blocks per SIMD vector
 * (AVX-512 intrinsics at the avx512 level, 8 with AVX2 at avx2, a portable
 * `omp simd` loop otherwise; all give the bits of dfn_philox).
 *
 * Compiled once per instruction-set level (kernels.h). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/core.h"
#include "nn/kernels.h"
#include "nn/silu.h"
#include "nn/sum_f32.h"

/* Elements per parallel task of the flat elementwise loops (a multiple of 4,
 * so Philox blocks never straddle two tasks), and the size below which a loop
 * runs on the calling thread. */
#define ELEM_CHUNK 16384
#define ELEM_SERIAL 32768

/* ------------------------------------------------------------ exp and SiLU */

static void silu_fwd_kernel(float *restrict out, const float *restrict inp, size_t n) {
    const float lo = exp_bounds[0], hi = exp_bounds[1];
#pragma omp simd simdlen(16)
    for (size_t i = 0; i < n; i++) out[i] = silu_f32(inp[i], lo, hi);
}

static void silu_fwd_inplace_kernel(float *x, size_t n) {
    const float lo = exp_bounds[0], hi = exp_bounds[1];
#pragma omp simd simdlen(16)
    for (size_t i = 0; i < n; i++) x[i] = silu_f32(x[i], lo, hi);
}

static void silu_bwd_kernel(float *restrict dinp, const float *restrict dout,
                            const float *restrict inp, size_t n) {
    const float lo = exp_bounds[0], hi = exp_bounds[1];
#pragma omp simd simdlen(16)
    for (size_t i = 0; i < n; i++) dinp[i] += dout[i] * silu_grad_f32(inp[i], lo, hi);
}

/* out[i] = silu(inp[i]); out (n), inp (n); out may equal inp.
 * Runs on the calling thread alone when called inside a parallel region. */
void DFN_K(dfn_silu_forward)(float *out, const float *inp, size_t n) {
    DFN_ASSERT(out && inp);
    size_t tasks = (n + ELEM_CHUNK - 1) / ELEM_CHUNK;
    if (n < ELEM_SERIAL || omp_in_parallel()) {
        if (out == inp) silu_fwd_inplace_kernel(out, n);
        else silu_fwd_kernel(out, inp, n);
        return;
    }
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < tasks; t++) {
        size_t lo = t * ELEM_CHUNK, m = DFN_MIN(n - lo, (size_t)ELEM_CHUNK);
        if (out == inp) silu_fwd_inplace_kernel(out + lo, m);
        else silu_fwd_kernel(out + lo, inp + lo, m);
    }
}

/* Backward of out = silu(inp): dinp (n) += dout (n) * silu'(inp (n)).
 * dinp must not overlap dout or inp. */
void DFN_K(dfn_silu_backward)(float *dinp, const float *dout, const float *inp, size_t n) {
    if (!dinp) return;
    DFN_ASSERT(dout && inp);
    size_t tasks = (n + ELEM_CHUNK - 1) / ELEM_CHUNK;
    if (n < ELEM_SERIAL || omp_in_parallel()) {
        silu_bwd_kernel(dinp, dout, inp, n);
        return;
    }
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < tasks; t++) {
        size_t lo = t * ELEM_CHUNK, m = DFN_MIN(n - lo, (size_t)ELEM_CHUNK);
        silu_bwd_kernel(dinp + lo, dout + lo, inp + lo, m);
    }
}

/* ------------------------------------------------------------ add */

/* d (n) += x (n), in chunks over the threads (elementwise: the same bits for any
 * thread count); on the calling thread alone inside a parallel region. */
void DFN_K(dfn_add)(float *d, const float *x, size_t n) {
    DFN_ASSERT(d && x);
    size_t tasks = (n + ELEM_CHUNK - 1) / ELEM_CHUNK;
#pragma omp parallel for schedule(static) if (n >= ELEM_SERIAL && !omp_in_parallel())
    for (size_t t = 0; t < tasks; t++) {
        size_t lo = t * (size_t)ELEM_CHUNK, end = DFN_MIN(n, lo + ELEM_CHUNK);
        float *restrict dd = d;
        const float *restrict xx = x;
#pragma omp simd
        for (size_t i = lo; i < end; i++) dd[i] += xx[i];
    }
}

/* ------------------------------------------------------------ dropout */

/* One Philox4x32-10 round (Salmon et al. 2011; the same rounds as dfn_philox in
 * src/core/rng.c) on the counter words c0..c3 with round keys k0, k1. */
#define PHILOX_ROUND(k0, k1)                                      \
    do {                                                          \
        uint64_t p0_ = (uint64_t)0xD2511F53u * c0;                \
        uint64_t p1_ = (uint64_t)0xCD9E8D57u * c2;                \
        uint32_t n0_ = (uint32_t)(p1_ >> 32) ^ c1 ^ (k0);         \
        uint32_t n2_ = (uint32_t)(p0_ >> 32) ^ c3 ^ (k1);         \
        c1 = (uint32_t)p1_;                                       \
        c3 = (uint32_t)p0_;                                       \
        c0 = n0_;                                                 \
        c2 = n2_;                                                 \
    } while (0)

/* The round keys of Philox4x32-10 for `seed`: (k0, k1) += the Weyl constants per round. */
static void philox_keys(uint64_t seed, uint32_t k0[10], uint32_t k1[10]) {
    k0[0] = (uint32_t)seed;
    k1[0] = (uint32_t)(seed >> 32);
    for (int r = 1; r < 10; r++) {
        k0[r] = k0[r - 1] + 0x9E3779B9u;
        k1[r] = k1[r - 1] + 0xBB67AE85u;
    }
}

/* The uniform of a Philox word, as dfn_rng_uniform makes it: ((w >> 8) + 0.5) 2^-24. */
static inline float word_to_unit(uint32_t w) {
    return ((float)(w >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

/* The keep rule u(w) >= p as an integer threshold: u is a non-decreasing function
 * of v = w >> 8 (an exact conversion, a monotone rounding, an exact scaling), so
 * u(w) >= p  <=>  v >= T  <=>  w >= T << 8, T the least such v (binary search with
 * the float formula itself). u(2^24 - 1) rounds to 1.0 >= p, so T < 2^24. */
static uint32_t keep_threshold(float p) {
    uint32_t lo = 0, hi = (1u << 24) - 1; /* the answer lies in [lo, hi] */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (word_to_unit(mid << 8) >= p) hi = mid;
        else lo = mid + 1;
    }
    return lo << 8;
}

/* Elements [4 b0, 4 b1) of out (+)= x m / (1 - p): Philox block `block + j` gives
 * elements 4j .. 4j+3, word l kept iff it is >= thr (keep_threshold). One SIMD
 * lane per block, the ten rounds written out. accumulate = 0: out = ..., 1: out += ...
 * Dropped elements give +0 (even where x is inf or NaN), as in dropout_blocks_avx512. */
static void dropout_blocks(float *restrict out, const float *restrict x, size_t b0, size_t b1,
                           uint32_t thr, float scale, uint64_t seed, uint64_t block,
                           int accumulate) {
    uint32_t k0[10], k1[10];
    philox_keys(seed, k0, k1);
#pragma omp simd simdlen(16)
    for (size_t j = b0; j < b1; j++) {
        const uint64_t b = block + j;
        uint32_t c0 = (uint32_t)b, c1 = (uint32_t)(b >> 32), c2 = 0, c3 = 0;
        PHILOX_ROUND(k0[0], k1[0]);
        PHILOX_ROUND(k0[1], k1[1]);
        PHILOX_ROUND(k0[2], k1[2]);
        PHILOX_ROUND(k0[3], k1[3]);
        PHILOX_ROUND(k0[4], k1[4]);
        PHILOX_ROUND(k0[5], k1[5]);
        PHILOX_ROUND(k0[6], k1[6]);
        PHILOX_ROUND(k0[7], k1[7]);
        PHILOX_ROUND(k0[8], k1[8]);
        PHILOX_ROUND(k0[9], k1[9]);
        const float x0 = x[4 * j], x1 = x[4 * j + 1], x2 = x[4 * j + 2], x3 = x[4 * j + 3];
        const float y0 = c0 >= thr ? x0 * scale : 0.0f;
        const float y1 = c1 >= thr ? x1 * scale : 0.0f;
        const float y2 = c2 >= thr ? x2 * scale : 0.0f;
        const float y3 = c3 >= thr ? x3 * scale : 0.0f;
        if (accumulate) {
            out[4 * j] += y0;
            out[4 * j + 1] += y1;
            out[4 * j + 2] += y2;
            out[4 * j + 3] += y3;
        } else {
            out[4 * j] = y0;
            out[4 * j + 1] = y1;
            out[4 * j + 2] = y2;
            out[4 * j + 3] = y3;
        }
    }
}

#if defined(__AVX512F__) && defined(__BMI2__)
#include <immintrin.h>

/* 32x32 -> 64-bit products of the 16 lanes of a with m (m broadcast): returns the
 * high words, *lo the low words (even lanes by vpmuludq, odd lanes shifted down). */
static inline __m512i mul_hilo(__m512i a, __m512i m, __m512i *lo) {
    const __m512i pe = _mm512_mul_epu32(a, m);
    const __m512i po = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    *lo = _mm512_mask_blend_epi32(0xAAAA, pe, _mm512_slli_epi64(po, 32));
    return _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(pe, 32), po);
}

/* dropout_blocks for 16 blocks at a time with AVX-512 (the same Philox rounds and
 * the same keep rule, so bit-identical to it); returns the first block it did not do. */
static size_t dropout_blocks_avx512(float *restrict out, const float *restrict x, size_t b0,
                                    size_t b1, uint32_t thr, float scale, uint64_t seed,
                                    uint64_t block, int accumulate) {
    const __m512i M0 = _mm512_set1_epi32((int)0xD2511F53u), M1 = _mm512_set1_epi32((int)0xCD9E8D57u);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i thv = _mm512_set1_epi32((int)thr), one = _mm512_set1_epi32(1);
    const __m512 sv = _mm512_set1_ps(scale);
    uint32_t k0[10], k1[10];
    philox_keys(seed, k0, k1);
    __m512i K0[10], K1[10];
    for (int r = 0; r < 10; r++) K0[r] = _mm512_set1_epi32((int)k0[r]), K1[r] = _mm512_set1_epi32((int)k1[r]);
    size_t j = b0;
    for (; j + 16 <= b1; j += 16) {
        const uint64_t b = block + j;
        const __m512i base_lo = _mm512_set1_epi32((int)(uint32_t)b);
        __m512i c0 = _mm512_add_epi32(base_lo, iota);
        __m512i c1 = _mm512_set1_epi32((int)(uint32_t)(b >> 32));
        c1 = _mm512_mask_add_epi32(c1, _mm512_cmplt_epu32_mask(c0, base_lo), c1, one); /* carry */
        __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
        for (int r = 0; r < 10; r++) {
            __m512i lo0, lo1;
            const __m512i hi0 = mul_hilo(c0, M0, &lo0);
            const __m512i hi1 = mul_hilo(c2, M1, &lo1);
            c0 = _mm512_ternarylogic_epi32(hi1, c1, K0[r], 0x96); /* hi1 ^ c1 ^ k0 */
            c2 = _mm512_ternarylogic_epi32(hi0, c3, K1[r], 0x96); /* hi0 ^ c3 ^ k1 */
            c1 = lo1;
            c3 = lo0;
        }
        /* keep masks per word, then bit 4i + l of `keep` = word l of block i */
        const uint64_t keep = _pdep_u64(_mm512_cmpge_epu32_mask(c0, thv), 0x1111111111111111ull) |
                              _pdep_u64(_mm512_cmpge_epu32_mask(c1, thv), 0x2222222222222222ull) |
                              _pdep_u64(_mm512_cmpge_epu32_mask(c2, thv), 0x4444444444444444ull) |
                              _pdep_u64(_mm512_cmpge_epu32_mask(c3, thv), 0x8888888888888888ull);
        for (int q = 0; q < 4; q++) {
            const size_t e = 4 * j + 16 * (size_t)q;
            const __mmask16 mq = (__mmask16)(keep >> (16 * q));
            __m512 y = _mm512_maskz_mul_ps(mq, _mm512_loadu_ps(x + e), sv);
            if (accumulate) y = _mm512_add_ps(_mm512_loadu_ps(out + e), y);
            _mm512_storeu_ps(out + e, y);
        }
    }
    return j;
}
#elif defined(__AVX2__)
#include <immintrin.h>

/* 32x32 -> 64-bit products of the 8 lanes of a with m (m broadcast): the high
 * words, *lo the low words (as mul_hilo of the AVX-512 kernel, 8 lanes). */
static inline __m256i mul_hilo8(__m256i a, __m256i m, __m256i *lo) {
    const __m256i pe = _mm256_mul_epu32(a, m);
    const __m256i po = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
    *lo = _mm256_blend_epi32(pe, _mm256_slli_epi64(po, 32), 0xAA);
    return _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
}

/* dropout_blocks for 8 blocks at a time with AVX2 (the same Philox rounds and keep
 * rule, so bit-identical to it); returns the first block it did not do. */
static size_t dropout_blocks_avx2(float *restrict out, const float *restrict x, size_t b0,
                                  size_t b1, uint32_t thr, float scale, uint64_t seed,
                                  uint64_t block, int accumulate) {
    const __m256i M0 = _mm256_set1_epi32((int)0xD2511F53u), M1 = _mm256_set1_epi32((int)0xCD9E8D57u);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i sign = _mm256_set1_epi32(INT32_MIN); /* unsigned order by signed compares */
    const __m256i thv = _mm256_set1_epi32((int)thr);
    const __m256 sv = _mm256_set1_ps(scale);
    uint32_t k0[10], k1[10];
    philox_keys(seed, k0, k1);
    __m256i K0[10], K1[10];
    for (int r = 0; r < 10; r++) K0[r] = _mm256_set1_epi32((int)k0[r]), K1[r] = _mm256_set1_epi32((int)k1[r]);
    size_t j = b0;
    for (; j + 8 <= b1; j += 8) {
        const uint64_t b = block + j;
        const __m256i base_lo = _mm256_set1_epi32((int)(uint32_t)b);
        __m256i c0 = _mm256_add_epi32(base_lo, iota);
        const __m256i carry = _mm256_cmpgt_epi32(_mm256_xor_si256(base_lo, sign), _mm256_xor_si256(c0, sign));
        __m256i c1 = _mm256_sub_epi32(_mm256_set1_epi32((int)(uint32_t)(b >> 32)), carry); /* carry = -1 */
        __m256i c2 = _mm256_setzero_si256(), c3 = _mm256_setzero_si256();
        for (int r = 0; r < 10; r++) {
            __m256i lo0, lo1;
            const __m256i hi0 = mul_hilo8(c0, M0, &lo0);
            const __m256i hi1 = mul_hilo8(c2, M1, &lo1);
            c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), K0[r]);
            c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), K1[r]);
            c1 = lo1;
            c3 = lo0;
        }
        /* keep masks (word w >= thr: max(w, thr) == w), word l of block i ... */
        const __m256i k[4] = {_mm256_cmpeq_epi32(_mm256_max_epu32(c0, thv), c0),
                              _mm256_cmpeq_epi32(_mm256_max_epu32(c1, thv), c1),
                              _mm256_cmpeq_epi32(_mm256_max_epu32(c2, thv), c2),
                              _mm256_cmpeq_epi32(_mm256_max_epu32(c3, thv), c3)};
        /* ... to element order 4i + l: a 4 x 8 transpose (blocks i and i+4 share a register) */
        const __m256i a = _mm256_unpacklo_epi32(k[0], k[1]), bb = _mm256_unpackhi_epi32(k[0], k[1]);
        const __m256i c = _mm256_unpacklo_epi32(k[2], k[3]), d = _mm256_unpackhi_epi32(k[2], k[3]);
        const __m256i e0 = _mm256_unpacklo_epi64(a, c), e1 = _mm256_unpackhi_epi64(a, c);
        const __m256i e2 = _mm256_unpacklo_epi64(bb, d), e3 = _mm256_unpackhi_epi64(bb, d);
        const __m256i keep[4] = {_mm256_permute2x128_si256(e0, e1, 0x20), _mm256_permute2x128_si256(e2, e3, 0x20),
                                 _mm256_permute2x128_si256(e0, e1, 0x31), _mm256_permute2x128_si256(e2, e3, 0x31)};
        for (int q = 0; q < 4; q++) { /* dropped elements: the and gives +0 */
            const size_t e = 4 * j + 8 * (size_t)q;
            __m256 y = _mm256_and_ps(_mm256_mul_ps(_mm256_loadu_ps(x + e), sv), _mm256_castsi256_ps(keep[q]));
            if (accumulate) y = _mm256_add_ps(_mm256_loadu_ps(out + e), y);
            _mm256_storeu_ps(out + e, y);
        }
    }
    return j;
}
#endif

/* The last, partial block: elements [4 bl, n) with n - 4 bl in 1..3. */
static void dropout_tail(float *out, const float *x, size_t n, uint32_t thr, float scale,
                         uint64_t seed, uint64_t block, int accumulate) {
    const size_t bl = n / 4;
    uint32_t w[4];
    dfn_philox(seed, block + bl, w);
    for (size_t i = 4 * bl; i < n; i++) {
        const float y = w[i % 4] >= thr ? x[i] * scale : 0.0f;
        out[i] = accumulate ? out[i] + y : y;
    }
}

/* Blocks [b0, b1) by the fastest kernel there is, the rest portably. */
static void dropout_range(float *restrict out, const float *restrict x, size_t b0, size_t b1,
                          uint32_t thr, float scale, uint64_t seed, uint64_t block,
                          int accumulate) {
#if defined(__AVX512F__) && defined(__BMI2__)
    b0 = dropout_blocks_avx512(out, x, b0, b1, thr, scale, seed, block, accumulate);
#elif defined(__AVX2__)
    b0 = dropout_blocks_avx2(out, x, b0, b1, thr, scale, seed, block, accumulate);
#endif
    dropout_blocks(out, x, b0, b1, thr, scale, seed, block, accumulate);
}

/* out (n) (+)= m x (n) / (1 - p) over tasks of ELEM_CHUNK elements (whole
 * blocks, ELEM_CHUNK being a multiple of 4). out may equal x when accumulate = 0. */
static void dropout_apply(float *out, const float *x, size_t n, float p, uint64_t seed,
                          uint64_t block, int accumulate) {
    DFN_ASSERT(p >= 0.0f && p <= 1.0f);
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const uint32_t thr = keep_threshold(p);
    const size_t full = n / 4; /* whole blocks */
    const size_t per_task = ELEM_CHUNK / 4;
    const size_t tasks = (full + per_task - 1) / per_task;
#pragma omp parallel for schedule(static) if (n >= ELEM_SERIAL && !omp_in_parallel())
    for (size_t t = 0; t < tasks; t++) {
        const size_t b0 = t * per_task, b1 = DFN_MIN(full, b0 + per_task);
        if (out == x) { /* in place: the restrict kernels on a private copy of x */
            float tmp[256];
            for (size_t c = b0; c < b1; c += 64) {
                const size_t e = DFN_MIN(b1, c + 64);
                memcpy(tmp, x + 4 * c, 4 * (e - c) * sizeof(float));
                dropout_range(out + 4 * c, tmp, 0, e - c, thr, scale, seed, block + c, accumulate);
            }
        } else {
            dropout_range(out, x, b0, b1, thr, scale, seed, block, accumulate);
        }
    }
    if (n % 4) dropout_tail(out, x, n, thr, scale, seed, block, accumulate);
}

/* Elements [i0, i1) of a tensor under dropout_apply's mask (element i: block
 * `block + i/4`, word i%4), held from index 0 in x and in out (not x):
 * out[i - i0] (+)= m_i x[i - i0] / (1 - p), the bits of dropout_apply. One
 * thread: for the tasks of a caller that hold a span each (GroupNorm's blocks). */
void DFN_K(dfn_dropout_span)(float *out, const float *x, size_t i0, size_t i1, float p, uint64_t seed,
                             uint64_t block, int accumulate) {
    DFN_ASSERT(out && x && out != x && p >= 0.0f && p <= 1.0f);
    if (i1 <= i0) return;
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const uint32_t thr = keep_threshold(p);
    const size_t b0 = (i0 + 3) / 4, b1 = i1 / 4; /* the whole blocks, where b0 < b1 */
    if (b0 < b1)
        dropout_range(out + (4 * b0 - i0), x + (4 * b0 - i0), 0, b1 - b0, thr, scale, seed, block + b0,
                      accumulate);
    /* the words of the partial blocks at either end, [i0, head) and [tail, i1),
     * each inside one Philox block */
    const size_t head = DFN_MIN(i1, 4 * b0), tail = DFN_MAX(head, 4 * b1);
    for (int end = 0; end < 2; end++) {
        const size_t a = end ? tail : i0, e = end ? i1 : head;
        if (a >= e) continue;
        uint32_t w[4];
        dfn_philox(seed, block + a / 4, w);
        for (size_t i = a; i < e; i++) {
            const float y = w[i % 4] >= thr ? x[i - i0] * scale : 0.0f;
            out[i - i0] = accumulate ? out[i - i0] + y : y;
        }
    }
}

/* Inverted dropout (Srivastava et al. 2014): out_i = x_i m_i / (1 - p), m_i =
 * [u_i >= p], u_i the uniform of Philox(seed) block `block + i/4`, lane i%4.
 * out, inp (n); out may equal inp. p = 0 is an exact copy. */
void DFN_K(dfn_dropout_forward)(float *out, const float *inp, size_t n, float p, uint64_t seed,
                                uint64_t block) {
    DFN_ASSERT(out && inp);
    if (p == 0.0f) {
        if (out != inp) memcpy(out, inp, n * sizeof(float));
        return;
    }
    dropout_apply(out, inp, n, p, seed, block, 0);
}

/* Backward of out_i = x_i m_i / (1 - p): dinp_i (n) += dout_i (n) m_i / (1 - p),
 * the mask recomputed from (seed, block). */
void DFN_K(dfn_dropout_backward)(float *dinp, const float *dout, size_t n, float p, uint64_t seed,
                                 uint64_t block) {
    if (!dinp) return;
    DFN_ASSERT(dout);
    if (p == 0.0f) {
        DFN_K(dfn_add)(dinp, dout, n);
        return;
    }
    dropout_apply(dinp, dout, n, p, seed, block, 1);
}

/* ------------------------------------------------------------ upsample */

/* Nearest 2x: out[n,c,y,x] = inp[n,c,y/2,x/2]  (F.interpolate(scale_factor=2,
 * mode='nearest')). out (N,C,2H,2W), inp (N,C,H,W). Tasks: (image, channel) planes. */
void DFN_K(dfn_upsample2x_forward)(float *out, const float *inp, int N, int C, int H, int W) {
    DFN_ASSERT(out && inp && N >= 0 && C >= 0 && H >= 0 && W >= 0);
    long planes = (long)N * C;
    size_t hw = (size_t)H * W;
#pragma omp parallel for schedule(static) if (planes * (long)hw >= ELEM_SERIAL)
    for (long pl = 0; pl < planes; pl++) {
        const float *restrict src = inp + (size_t)pl * hw;
        float *restrict dst = out + (size_t)pl * 4 * hw;
        for (int y = 0; y < H; y++) {
            const float *restrict s = src + (size_t)y * W;
            float *restrict d0 = dst + (size_t)(2 * y) * 2 * W;
            float *restrict d1 = d0 + 2 * (size_t)W;
#pragma omp simd
            for (int x = 0; x < W; x++) {
                d0[2 * x] = s[x];
                d0[2 * x + 1] = s[x];
            }
            memcpy(d1, d0, 2 * (size_t)W * sizeof(float));
        }
    }
}

/* Backward of out[n,c,y,x] = inp[n,c,y/2,x/2]: dinp (N,C,H,W) += the sum of the
 * 2x2 block of dout (N,C,2H,2W), as (d[2y,2x] + d[2y,2x+1]) + (d[2y+1,2x] + d[2y+1,2x+1]). */
void DFN_K(dfn_upsample2x_backward)(float *dinp, const float *dout, int N, int C, int H, int W) {
    if (!dinp) return;
    DFN_ASSERT(dout && N >= 0 && C >= 0 && H >= 0 && W >= 0);
    long planes = (long)N * C;
    size_t hw = (size_t)H * W;
#pragma omp parallel for schedule(static) if (planes * (long)hw >= ELEM_SERIAL)
    for (long pl = 0; pl < planes; pl++) {
        float *restrict dst = dinp + (size_t)pl * hw;
        const float *restrict src = dout + (size_t)pl * 4 * hw;
        for (int y = 0; y < H; y++) {
            const float *restrict s0 = src + (size_t)(2 * y) * 2 * W;
            const float *restrict s1 = s0 + 2 * (size_t)W;
            float *restrict d = dst + (size_t)y * W;
#pragma omp simd
            for (int x = 0; x < W; x++)
                d[x] += (s0[2 * x] + s0[2 * x + 1]) + (s1[2 * x] + s1[2 * x + 1]);
        }
    }
}

/* ------------------------------------------------------------ concat */

/* out (N,Ca+Cb,HW) = [a (N,Ca,HW), b (N,Cb,HW)] along channels (torch.cat(dim=1)). */
void DFN_K(dfn_concat_forward)(float *out, const float *a, const float *b, int N, int Ca, int Cb,
                               int HW) {
    DFN_ASSERT(out && (a || Ca == 0) && (b || Cb == 0) && N >= 0 && Ca >= 0 && Cb >= 0 && HW >= 0);
    size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
#pragma omp parallel for schedule(static) if ((long)N * (long)(na + nb) >= ELEM_SERIAL)
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * (na + nb);
        if (na) memcpy(o, a + (size_t)n * na, na * sizeof(float));
        if (nb) memcpy(o + na, b + (size_t)n * nb, nb * sizeof(float));
    }
}

/* Backward of out = [a, b]: da (N,Ca,HW) += dout[:, :Ca], db (N,Cb,HW) += dout[:, Ca:];
 * either may be NULL. */
void DFN_K(dfn_concat_backward)(float *da, float *db, const float *dout, int N, int Ca, int Cb,
                                int HW) {
    DFN_ASSERT(dout && N >= 0 && Ca >= 0 && Cb >= 0 && HW >= 0);
    size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
#pragma omp parallel for schedule(static) if ((long)N * (long)(na + nb) >= ELEM_SERIAL)
    for (int n = 0; n < N; n++) {
        const float *g = dout + (size_t)n * (na + nb);
        if (da) DFN_K(dfn_add)(da + (size_t)n * na, g, na); /* serial within the loop */
        if (db) DFN_K(dfn_add)(db + (size_t)n * nb, g + na, nb);
    }
}

/* ------------------------------------------------------------ add_channel */

/* x[n,c,:] += v[n,c]: x (N,C,HW), v (N,C) (the ResBlock's timestep injection
 * h + Linear(emb)[:, :, None, None]). */
void DFN_K(dfn_add_channel_forward)(float *x, const float *v, int N, int C, int HW) {
    DFN_ASSERT(x && v && N >= 0 && C >= 0 && HW >= 0);
    long tasks = (long)N * C;
#pragma omp parallel for schedule(static) if (tasks * HW >= ELEM_SERIAL)
    for (long t = 0; t < tasks; t++) {
        float *restrict p = x + (size_t)t * HW;
        float s = v[t];
#pragma omp simd
        for (int i = 0; i < HW; i++) p[i] += s;
    }
}

/* Backward of x[n,c,:] += v[n,c]: dv (N,C) += sum over HW of dout (N,C,HW). */
void DFN_K(dfn_add_channel_backward)(float *dv, const float *dout, int N, int C, int HW) {
    if (!dv) return;
    DFN_ASSERT(dout && N >= 0 && C >= 0 && HW >= 0);
    long tasks = (long)N * C;
#pragma omp parallel for schedule(static) if (tasks * HW >= ELEM_SERIAL)
    for (long t = 0; t < tasks; t++) dv[t] += (float)sum_f32(dout + (size_t)t * HW, (size_t)HW);
}

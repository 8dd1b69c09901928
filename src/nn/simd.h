/* simd.h - one vector of floats at the level a kernel source is compiled for
 * (kernels.h): 16 lanes (avx512), 8 (avx2) or 4 (generic: SSE2 on x86-64, NEON
 * on aarch64). The type is GCC's vector extension (the x86 __m512 and __m256
 * are the same types), so + - * act lane by lane at every level; the helpers
 * below cover the rest. vf_fma is one rounding where the level has FMA and a
 * multiply then an add where it has not (generic: x86-64's baseline has none),
 * so a sum of products keeps its order, not always its bits, across levels. */
#ifndef DFN_SIMD_H
#define DFN_SIMD_H

#if defined(__AVX512F__)
#include <immintrin.h>
#include <stdint.h>
#define VL 16
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VL 8
#else
#define VL 4
#endif

typedef float vf __attribute__((vector_size(VL * 4)));
/* the same vector at any float's address (the GNU C idiom for unaligned access) */
typedef float vf_u __attribute__((vector_size(VL * 4), aligned(4), may_alias));

static inline vf vf_load(const float *p) { return *(const vf_u *)p; }
static inline void vf_store(float *p, vf x) { *(vf_u *)p = x; }
static inline vf vf_zero(void) { return (vf){0}; }
/* Lanes of the concatenation a:b picked by the constant indices that follow
 * (lane i of b is index VL + i); gcc >= 12 and clang both have the builtin. */
#define VF_SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)

/* Index lists for VF_SHUFFLE(a, b, ...): the even and the odd lanes of a:b, and
 * the lanes of a and b interleaved from their low halves (a0 b0 a1 b1 ...) and
 * from their high halves: EVEN and ODD split what LOW and HIGH interleave. */
#if VL == 16
#define VF_EVEN_LANES 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define VF_ODD_LANES 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#define VF_LOW_HALVES 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define VF_HIGH_HALVES 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#elif VL == 8
#define VF_EVEN_LANES 0, 2, 4, 6, 8, 10, 12, 14
#define VF_ODD_LANES 1, 3, 5, 7, 9, 11, 13, 15
#define VF_LOW_HALVES 0, 8, 1, 9, 2, 10, 3, 11
#define VF_HIGH_HALVES 4, 12, 5, 13, 6, 14, 7, 15
#else
#define VF_EVEN_LANES 0, 2, 4, 6
#define VF_ODD_LANES 1, 3, 5, 7
#define VF_LOW_HALVES 0, 4, 1, 5
#define VF_HIGH_HALVES 2, 6, 3, 7
#endif

#if VL == 16
static inline vf vf_set1(float a) { return _mm512_set1_ps(a); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); } /* a b + c */
/* The mask of lanes lo <= l < hi of 0..15 (either bound may be out of range). */
static inline __mmask16 vf_lane_range(int lo, int hi) {
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)((((uint32_t)1 << hi) - 1) & ~(((uint32_t)1 << lo) - 1));
}
#elif VL == 8
static inline vf vf_set1(float a) { return _mm256_set1_ps(a); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
/* The lanes of bits 0..7 of m as a mask for vmaskmovps (AVX2's masked loads and
 * stores, which touch no memory under the lanes left out). */
static inline __m256i vf_lane_mask(unsigned m) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)m), bit), bit);
}
#else
static inline vf vf_set1(float a) { return (vf){a, a, a, a}; }
static inline vf vf_fma(vf a, vf b, vf c) { return a * b + c; }
#endif

#endif

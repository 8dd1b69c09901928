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

#if VL == 16
static inline vf vf_set1(float a) { return _mm512_set1_ps(a); }
static inline vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); } /* a b + c */
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

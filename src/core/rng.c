/* rng.c - Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers:
 * as easy as 1, 2, 3", SC 2011), uniform and Box-Muller normal fills.
 *
 * The key is the 64-bit seed, the 128-bit counter is (block, 0): block b of a
 * stream is philox(seed, b). Fills are parallel over blocks; each element's
 * value depends only on (seed, its block, its lane). */
#include <math.h>
#include <omp.h>

#include "core/core.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void dfn_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

void dfn_philox(uint64_t seed, uint64_t block, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), 0, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    dfn_philox4x32_10(ctr, key, out);
}

dfn_rng dfn_rng_init(uint64_t seed) {
    dfn_rng r = {seed, 0};
    return r;
}

/* 23 random bits to a float strictly inside (0, 1): (k + 1/2) 2^-23 for
 * k = w >> 9 is (2k + 1) 2^-24, exact in float32, from 2^-24 to 1 - 2^-24.
 * (With 24 bits, k + 1/2 would need 25 and round up to 1.0 at the top.) */
static inline float u32_to_unit(uint32_t u) {
    return ((float)(u >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

void dfn_rng_uniform(dfn_rng *rng, float *out, size_t n) {
    size_t blocks = (n + 3) / 4;
    uint64_t base = rng->counter, seed = rng->seed;
#pragma omp parallel for schedule(static) if (blocks > 4096)
    for (size_t b = 0; b < blocks; b++) {
        uint32_t w[4];
        dfn_philox(seed, base + b, w);
        for (size_t l = 0; l < 4 && 4 * b + l < n; l++) out[4 * b + l] = u32_to_unit(w[l]);
    }
    rng->counter += blocks;
}

void dfn_rng_normal(dfn_rng *rng, float *out, size_t n) {
    size_t blocks = (n + 1) / 2;
    uint64_t base = rng->counter, seed = rng->seed;
#pragma omp parallel for schedule(static) if (blocks > 4096)
    for (size_t b = 0; b < blocks; b++) {
        uint32_t w[4];
        dfn_philox(seed, base + b, w);
        /* Box-Muller: r = sqrt(-2 ln u1), z0 = r cos(2 pi u2), z1 = r sin(2 pi u2) */
        double u1 = u32_to_unit(w[0]), u2 = u32_to_unit(w[1]);
        double r = sqrt(-2.0 * log(u1));
        double th = 6.283185307179586 * u2;
        out[2 * b] = (float)(r * cos(th));
        if (2 * b + 1 < n) out[2 * b + 1] = (float)(r * sin(th));
    }
    rng->counter += blocks;
}

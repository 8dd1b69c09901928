/* test_rng.c - Philox4x32-10 against the Random123 known-answer vectors, the
 * stream layout promised in diffusion.h, the distributions, and thread-count
 * independence of the parallel fills. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/core.h"
#include "test_util.h"

static void philox_matches_random123_known_answers(void) {
    static const uint32_t kat[3][10] = {
        /* ctr[4], key[2], expected out[4] (Random123 kat_vectors, philox4x32 10) */
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        dfn_philox4x32_10(kat[i], kat[i] + 4, out);
        CHECK(!memcmp(out, kat[i] + 6, sizeof out), "KAT %d: got %08x %08x %08x %08x", i, out[0],
              out[1], out[2], out[3]);
    }
}

static void stream_layout_is_block_and_lane(void) {
    dfn_rng r = dfn_rng_init(1234);
    float u[10];
    dfn_rng_uniform(&r, u, 10);
    CHECK(r.counter == 3, "uniform(10) uses 3 blocks, counter %llu", (unsigned long long)r.counter);
    uint32_t w[4];
    dfn_philox(1234, 2, w);
    CHECK(u[9] == ((float)(w[1] >> 9) + 0.5f) / 8388608.0f, "element 9 = block 2, lane 1");
    /* continuing the stream equals drawing it in one go */
    dfn_rng a = dfn_rng_init(7), b = dfn_rng_init(7);
    float one[16], two[16];
    dfn_rng_normal(&a, one, 16);
    dfn_rng_normal(&b, two, 6);
    dfn_rng_normal(&b, two + 6, 10);
    CHECK(!memcmp(one, two, sizeof one), "normal stream split 6+10 equals 16");
}

static void uniform_and_normal_have_the_right_moments(void) {
    size_t n = 1 << 20;
    float *x = malloc(n * sizeof(float));
    dfn_rng r = dfn_rng_init(42);
    dfn_rng_uniform(&r, x, n);
    double s = 0, s2 = 0, lo = 1, hi = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    double mean = s / n, var = s2 / n - mean * mean;
    /* standard errors: mean 0.29/sqrt(n) = 2.8e-4; bounds of 5 s.e. */
    CHECK(fabs(mean - 0.5) < 1.5e-3, "uniform mean %f", mean);
    CHECK(fabs(var - 1.0 / 12) < 1e-3, "uniform variance %f", var);
    CHECK(lo > 0.0 && hi < 1.0, "uniform in (0,1): [%g, %g]", lo, hi);
    dfn_rng_normal(&r, x, n);
    s = s2 = 0;
    double s4 = 0;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        s4 += (double)x[i] * x[i] * x[i] * x[i];
    }
    mean = s / n;
    var = s2 / n - mean * mean;
    CHECK(fabs(mean) < 5e-3, "normal mean %f", mean);
    CHECK(fabs(var - 1.0) < 7e-3, "normal variance %f", var);
    CHECK(fabs(s4 / n - 3.0) < 0.05, "normal fourth moment %f", s4 / n);
    free(x);
}

static void fills_are_identical_for_any_thread_count(void) {
    size_t n = 1000003;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    for (int pass = 0; pass < 2; pass++) {
        omp_set_num_threads(1);
        dfn_rng r1 = dfn_rng_init(99);
        if (pass) dfn_rng_normal(&r1, a, n); else dfn_rng_uniform(&r1, a, n);
        omp_set_num_threads(3);
        dfn_rng r3 = dfn_rng_init(99);
        if (pass) dfn_rng_normal(&r3, b, n); else dfn_rng_uniform(&r3, b, n);
        CHECK(!memcmp(a, b, n * sizeof(float)) && r1.counter == r3.counter,
              "%s fill differs between 1 and 3 threads", pass ? "normal" : "uniform");
    }
    free(a);
    free(b);
}

int main(void) {
    philox_matches_random123_known_answers();
    stream_layout_is_block_and_lane();
    uniform_and_normal_have_the_right_moments();
    fills_are_identical_for_any_thread_count();
    TEST_MAIN_END();
}

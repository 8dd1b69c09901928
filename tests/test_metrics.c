/* test_metrics.c - sample-quality metrics for vectors on known distributions:
 *   - two independent samples of one distribution: MMD^2, energy distance near
 *     0 (within 4 standard deviations measured over 8 independent pairs), sliced
 *     W2 at its noise floor; a shifted one: clearly positive;
 *   - MMD^2 against its closed form for Gaussians with a fixed bandwidth,
 *     N(0, I) vs N(mu, I): 2 (1 + 2/h^2)^{-D/2} (1 - exp(-|mu|^2 / (2 (2 + h^2)))),
 *     the mean of 4 estimates with n = 1500 within 0.015 (3 of its sd);
 *   - the median heuristic against a sort of all pairwise distances;
 *   - sliced W2 of x against x + mu: sqrt(mean (theta . mu)^2) ~ |mu| / sqrt(D)
 *     (within 10% over 512 directions); of x against x repeated twice: 0
 *     (unequal sizes); moments of x + mu: mean error |mu|, covariance error 0;
 *     of 2 x: 3 |Cov x|_F;
 *   - the same bits for 1 and 2 threads;
 *   - bad input: dimensions, sizes, NaN, projections. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "test_util.h"

static void gauss(float *x, size_t n, int D, float shift, uint64_t seed) {
    dfn_rng r = dfn_rng_init(seed);
    dfn_rng_normal(&r, x, n * D);
    for (size_t i = 0; i < n * D; i++) x[i] += shift;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_same_and_shifted(void) {
    const int D = 3, n = 400;
    float *x = malloc(sizeof(float) * n * D), *y = malloc(sizeof(float) * n * D);
    double mmd[8], en[8], sw[8];
    for (int r = 0; r < 8; r++) {
        gauss(x, n, D, 0.0f, 10 + r);
        gauss(y, n, D, 0.0f, 100 + r);
        CHECK(dfn_mmd2(&mmd[r], x, n, D, y, n, D, 0.0, NULL) == DFN_OK, "%s", dfn_last_error());
        CHECK(dfn_energy_distance(&en[r], x, n, D, y, n, D) == DFN_OK, "%s", dfn_last_error());
        CHECK(dfn_sliced_wasserstein(&sw[r], x, n, D, y, n, D, 64, 1) == DFN_OK, "%s",
              dfn_last_error());
    }
    double mm = 0, ms = 0, em = 0, es = 0, sm = 0;
    for (int r = 0; r < 8; r++) mm += mmd[r] / 8, em += en[r] / 8, sm += sw[r] / 8;
    for (int r = 0; r < 8; r++) ms += (mmd[r] - mm) * (mmd[r] - mm) / 7, es += (en[r] - em) * (en[r] - em) / 7;
    ms = sqrt(ms), es = sqrt(es);
    printf("same distribution (n=%d, D=%d): MMD^2 %.2e (sd %.1e), energy %.2e (sd %.1e), "
           "SW %.3f\n", n, D, mm, ms, em, es, sm);
    CHECK(fabs(mmd[0]) <= 4 * ms && fabs(en[0]) <= 4 * es, "same: mmd %g energy %g", mmd[0], en[0]);
    gauss(x, n, D, 0.0f, 10);
    gauss(y, n, D, 0.5f, 100);
    dfn_vector_metrics vm;
    CHECK(dfn_vector_metrics_compute(&vm, x, n, D, y, n, D, 7) == DFN_OK, "%s", dfn_last_error());
    printf("shifted by 0.5 per coordinate: MMD^2 %.4f (h %.3f), SW %.3f, energy %.4f, mean error "
           "%.3f, cov error %.3f\n", vm.mmd2, vm.mmd_bandwidth, vm.sliced_w2, vm.energy,
           vm.mean_error, vm.cov_error);
    CHECK(vm.mmd2 > 10 * ms && vm.energy > 10 * es && vm.sliced_w2 > 2 * sm &&
              fabs(vm.mean_error - 0.5 * sqrt(3.0)) < 0.2,
          "shifted not detected");
    free(x);
    free(y);
}

static void test_closed_forms(void) {
    const int D = 2, n = 1500;
    float *x = malloc(sizeof(float) * n * D), *y = malloc(sizeof(float) * 2 * n * D);
    gauss(x, n, D, 0.0f, 1);
    gauss(y, n, D, 0.0f, 2);
    const float mu = 0.7f; /* per coordinate */
    for (int i = 0; i < n * D; i++) y[i] += mu;
    const double h = 1.5, mu2 = D * mu * mu;
    const double want = 2 * pow(1 + 2 / (h * h), -D / 2.0) * (1 - exp(-mu2 / (2 * (2 + h * h))));
    double got, used, mean = 0.0;
    for (int r = 0; r < 4; r++) { /* sd of one estimate ~0.011 (measured) */
        gauss(x, n, D, 0.0f, 1 + 2 * r);
        gauss(y, n, D, mu, 2 + 2 * r);
        CHECK(dfn_mmd2(&got, x, n, D, y, n, D, h, &used) == DFN_OK && used == h, "%s",
              dfn_last_error());
        mean += got / 4;
    }
    printf("MMD^2 N(0,I) vs N(mu,I), h=%.1f: %.4f (mean of 4), closed form %.4f\n", h, mean,
           want);
    CHECK(fabs(mean - want) <= 0.015, "mmd closed form %g vs %g", mean, want);

    /* the median heuristic against sorting all pairwise distances */
    const int nm = 300;
    CHECK(dfn_mmd2(&got, x, nm, D, y, nm, D, 0.0, &used) == DFN_OK, "%s", dfn_last_error());
    const size_t P = (size_t)2 * nm * (2 * nm - 1) / 2;
    double *d = malloc(sizeof(double) * P);
    size_t o = 0;
    for (int i = 0; i < 2 * nm; i++)
        for (int j = i + 1; j < 2 * nm; j++) {
            const float *a = i < nm ? x + i * D : y + (i - nm) * D;
            const float *b = j < nm ? x + j * D : y + (j - nm) * D;
            double s = 0;
            for (int k = 0; k < D; k++) s += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
            d[o++] = sqrt(s);
        }
    qsort(d, P, sizeof(double), cmp_d);
    CHECK(used == d[(P - 1) / 2], "median %g vs %g", used, d[(P - 1) / 2]);
    free(d);

    /* sliced W2 of a pure shift; of a set against itself repeated */
    float *xs = malloc(sizeof(float) * n * D);
    for (int i = 0; i < n * D; i++) xs[i] = x[i] + mu;
    double sw;
    CHECK(dfn_sliced_wasserstein(&sw, x, n, D, xs, n, D, 512, 3) == DFN_OK, "%s", dfn_last_error());
    printf("SW of a shift |mu| = %.3f: %.4f, |mu|/sqrt(D) = %.4f\n", sqrt(mu2), sw,
           sqrt(mu2 / D));
    CHECK(fabs(sw - sqrt(mu2 / D)) <= 0.1 * sqrt(mu2 / D), "sw shift %g", sw);
    memcpy(y, x, sizeof(float) * n * D);
    memcpy(y + n * D, x, sizeof(float) * n * D);
    CHECK(dfn_sliced_wasserstein(&sw, x, n, D, y, 2 * n, D, 16, 3) == DFN_OK && sw < 1e-12,
          "sw of x vs x twice: %g", sw);
    double me, ce;
    CHECK(dfn_moment_errors(&me, &ce, x, n, D, xs, n, D) == DFN_OK, "%s", dfn_last_error());
    CHECK(fabs(me - sqrt(mu2)) < 1e-5 && ce < 1e-5, "shift moments %g %g", me, ce);
    for (int i = 0; i < n * D; i++) xs[i] = 2 * x[i];
    double c0;
    CHECK(dfn_moment_errors(NULL, &ce, x, n, D, xs, n, D) == DFN_OK, "%s", dfn_last_error());
    CHECK(dfn_moment_errors(NULL, &c0, x, n, D, x, 2, D) == DFN_OK, "%s", dfn_last_error());
    { /* |Cov x|_F directly */
        double m0 = 0, m1 = 0, c[3] = {0, 0, 0};
        for (int i = 0; i < n; i++) m0 += x[2 * i] / (double)n, m1 += x[2 * i + 1] / (double)n;
        for (int i = 0; i < n; i++) {
            double a = x[2 * i] - m0, b = x[2 * i + 1] - m1;
            c[0] += a * a / (n - 1), c[1] += a * b / (n - 1), c[2] += b * b / (n - 1);
        }
        const double f = sqrt(c[0] * c[0] + 2 * c[1] * c[1] + c[2] * c[2]);
        CHECK(fabs(ce - 3 * f) < 1e-5 * f, "cov error of 2x: %g vs %g", ce, 3 * f);
    }
    free(xs);
    free(x);
    free(y);
}

static void test_threads(void) {
    const int D = 4, n = 257;
    float *x = malloc(sizeof(float) * n * D), *y = malloc(sizeof(float) * n * D);
    gauss(x, n, D, 0.0f, 5);
    gauss(y, n, D, 0.2f, 6);
    dfn_vector_metrics a, b;
    const int t0 = dfn_get_threads();
    dfn_set_threads(1);
    dfn_vector_metrics_compute(&a, x, n, D, y, n - 3, D, 9);
    dfn_set_threads(2);
    dfn_vector_metrics_compute(&b, x, n, D, y, n - 3, D, 9);
    dfn_set_threads(t0);
    CHECK(memcmp(&a, &b, sizeof(a)) == 0, "metrics differ between 1 and 2 threads");
    free(x);
    free(y);
}

static void test_bad_input(void) {
    float x[6] = {0, 1, 2, 3, 4, 5}, y[6] = {1, 2, 3, 4, 5, 6};
    double v;
    CHECK(dfn_mmd2(&v, x, 3, 2, y, 2, 3, 0, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "different dimensions (2 and 3)"),
          "dims: %s", dfn_last_error());
    CHECK(dfn_energy_distance(&v, x, 1, 2, y, 3, 2) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "at least 2"),
          "size: %s", dfn_last_error());
    CHECK(dfn_moment_errors(&v, NULL, x, 3, 0, y, 3, 0) == DFN_ERR_ARG, "dim 0");
    y[3] = NAN;
    CHECK(dfn_sliced_wasserstein(&v, x, 3, 2, y, 3, 2, 8, 1) == DFN_ERR_NUMERIC &&
              strstr(dfn_last_error(), "second set: row 1 column 1"),
          "nan: %s", dfn_last_error());
    y[3] = 0;
    CHECK(dfn_sliced_wasserstein(&v, x, 3, 2, y, 3, 2, 0, 1) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "projections"),
          "projections: %s", dfn_last_error());
    dfn_vector_metrics vm;
    x[0] = INFINITY;
    CHECK(dfn_vector_metrics_compute(&vm, x, 3, 2, y, 3, 2, 1) == DFN_ERR_NUMERIC &&
              strstr(dfn_last_error(), "first set: row 0 column 0"),
          "inf: %s", dfn_last_error());
}

int main(void) {
    test_same_and_shifted();
    test_closed_forms();
    test_threads();
    test_bad_input();
    TEST_MAIN_END();
}

/* test_sample_util.h - what the sampler tests share: the test mixtures, sample
 * statistics (nearest-mean component fractions, mean, covariance) and the
 * sliced Wasserstein distance. */
#ifndef DFN_TEST_SAMPLE_UTIL_H
#define DFN_TEST_SAMPLE_UTIL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffusion.h"

/* The number of random directions of the sliced Wasserstein distance. */
#define SWD_PROJECTIONS 64

static inline int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Sliced 2-Wasserstein distance between two sets of n points in dim D:
 * sqrt(mean over SWD_PROJECTIONS unit directions (fixed, from seed 12345) of
 * W2^2 of the 1-D projections), W2 of equal-size sets = sorted matching. */
static inline double sliced_wasserstein(const float *a, const float *b, int n, int D) {
    dfn_rng rng = dfn_rng_init(12345);
    float *dir = malloc(sizeof(float) * (size_t)D);
    float *pa = malloc(sizeof(float) * (size_t)n), *pb = malloc(sizeof(float) * (size_t)n);
    double total = 0.0;
    for (int p = 0; p < SWD_PROJECTIONS; p++) {
        dfn_rng_normal(&rng, dir, (size_t)D);
        double nn = 0.0;
        for (int j = 0; j < D; j++) nn += (double)dir[j] * dir[j];
        nn = sqrt(nn);
        for (int i = 0; i < n; i++) {
            double sa = 0.0, sb = 0.0;
            for (int j = 0; j < D; j++) {
                sa += dir[j] / nn * a[(size_t)i * D + j];
                sb += dir[j] / nn * b[(size_t)i * D + j];
            }
            pa[i] = (float)sa;
            pb[i] = (float)sb;
        }
        qsort(pa, (size_t)n, sizeof(float), cmp_f);
        qsort(pb, (size_t)n, sizeof(float), cmp_f);
        double w = 0.0;
        for (int i = 0; i < n; i++) w += ((double)pa[i] - pb[i]) * ((double)pa[i] - pb[i]);
        total += w / n;
    }
    free(dir);
    free(pa);
    free(pb);
    return sqrt(total / SWD_PROJECTIONS);
}

/* Fractions of the n samples nearest to each component mean. */
static inline void component_fractions(double *frac, const dfn_mixture *m, const float *x, int n) {
    const int K = dfn_mixture_components(m), D = dfn_mixture_dim(m);
    for (int k = 0; k < K; k++) frac[k] = 0.0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        double bd = INFINITY;
        for (int k = 0; k < K; k++) {
            const float *mu = dfn_mixture_mean(m, k);
            double dd = 0.0;
            for (int j = 0; j < D; j++) dd += (x[(size_t)i * D + j] - mu[j]) * (x[(size_t)i * D + j] - mu[j]);
            if (dd < bd) bd = dd, best = k;
        }
        frac[best] += 1.0 / n;
    }
}

/* Sample mean (D) and covariance (D, D). */
static inline void moments(double *mean, double *cov, const float *x, int n, int D) {
    for (int j = 0; j < D; j++) {
        mean[j] = 0.0;
        for (int i = 0; i < n; i++) mean[j] += x[(size_t)i * D + j];
        mean[j] /= n;
    }
    for (int j = 0; j < D; j++)
        for (int k = 0; k < D; k++) {
            double c = 0.0;
            for (int i = 0; i < n; i++)
                c += (x[(size_t)i * D + j] - mean[j]) * (x[(size_t)i * D + k] - mean[k]);
            cov[j * D + k] = c / (n - 1);
        }
}

/* The mixture's exact mean and covariance (sum w (S + m m^T) - mu mu^T), from
 * many exact samples is not needed: computed from a large exact sample of
 * 200000 points (error ~ 1e-3) to keep the mixture opaque. */
static inline void exact_moments(double *mean, double *cov, const dfn_mixture *m) {
    const int n = 200000, D = dfn_mixture_dim(m);
    float *x = malloc(sizeof(float) * (size_t)n * D);
    dfn_rng rng = dfn_rng_init(777);
    dfn_mixture_sample(m, x, NULL, n, &rng);
    moments(mean, cov, x, n, D);
    free(x);
}

#endif

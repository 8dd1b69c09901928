/* kid.c - kernel inception distance (Binkowski et al. 2018, "Demystifying MMD
 * GANs", section 3 and appendix D) in the classifier's feature space.
 *
 * KID is the squared maximum mean discrepancy between the two feature
 * distributions under the cubic polynomial kernel
 *
 *     k(x, y) = (x.y / d + 1)^3,
 *
 * estimated without bias (Gretton et al. 2012, eq. 3) on subsets of m vectors
 * from each set:
 *
 *     MMD_u^2 = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(m(m-1)) sum_{i != j} k(y_i, y_j)
 *             - 2/m^2 sum_{i, j} k(x_i, y_j),
 *
 * averaged over `subsets` random draws (each subset without replacement, the
 * subsets independent of each other, as torch-fidelity and the paper's code
 * draw them); the standard deviation over the draws is reported beside it.
 *
 * The draws come from Philox(seed) in a fixed order before any kernel is
 * evaluated; the subsets are then parallel tasks, each computed by one thread
 * in a fixed order, and averaged in subset order: the bits do not depend on the
 * thread count. An unbiased estimate can be negative when both sets come from
 * one distribution.
 */
#include <math.h>
#include <string.h>

#include "eval/eval.h"

dfn_kid_params dfn_kid_params_init(void) {
    dfn_kid_params p;
    p.subset_size = 1000;
    p.subsets = 100;
    p.seed = 0;
    return p;
}

/* m distinct indices of 0..n-1 (a partial Fisher-Yates shuffle of perm, which
 * holds a permutation of 0..n-1 on entry), j = i + floor(u (n - i)) with u a
 * 32-bit Philox word (Lemire's multiply-shift; the bias is below n / 2^32). */
static void draw_subset(int *out, int *perm, size_t n, int m, uint64_t seed, uint64_t *block) {
    for (int i = 0; i < m; i++) {
        uint32_t words[4];
        dfn_philox(seed, (*block)++, words);
        size_t span = n - (size_t)i;
        size_t j = (size_t)i + (size_t)(((uint64_t)words[0] * span) >> 32);
        int tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
        out[i] = perm[i];
    }
}

static inline double dot(const double *a, const double *b, int d) {
    double s = 0.0;
    for (int k = 0; k < d; k++) s += a[k] * b[k];
    return s;
}

static inline double poly3(double xy, int d) {
    double u = xy / d + 1.0;
    return u * u * u;
}

/* Unbiased MMD^2 of the m rows of x and of y (m, d), double. */
static double mmd2_unbiased(const double *x, const double *y, int m, int d) {
    const size_t D = (size_t)d;
    double kxx = 0.0, kyy = 0.0, kxy = 0.0;
    for (int i = 0; i < m; i++) {
        const double *xi = x + (size_t)i * D, *yi = y + (size_t)i * D;
        for (int j = i + 1; j < m; j++) {
            kxx += poly3(dot(xi, x + (size_t)j * D, d), d);
            kyy += poly3(dot(yi, y + (size_t)j * D, d), d);
        }
        for (int j = 0; j < m; j++) kxy += poly3(dot(xi, y + (size_t)j * D, d), d);
    }
    double mm1 = (double)m * (double)(m - 1);
    return 2.0 * kxx / mm1 + 2.0 * kyy / mm1 - 2.0 * kxy / ((double)m * (double)m);
}

dfn_status dfn_kid_features(double *mean, double *std, const float *f1, size_t n1,
                            const float *f2, size_t n2, int d, const dfn_kid_params *p) {
    DFN_ASSERT(mean && f1 && f2 && d >= 1);
    dfn_kid_params defaults = dfn_kid_params_init();
    if (!p) p = &defaults;
    if (p->subset_size < 2 || p->subsets < 1)
        return dfn_set_error(DFN_ERR_ARG,
                             "KID: subset size (%d) must be >= 2 and subsets (%d) >= 1",
                             p->subset_size, p->subsets);
    if (n1 < 2 || n2 < 2)
        return dfn_set_error(DFN_ERR_ARG, "KID needs at least 2 samples per set, got %zu",
                             n1 < 2 ? n1 : n2);
    if (n1 > (size_t)0x7fffffff || n2 > (size_t)0x7fffffff)
        return dfn_set_error(DFN_ERR_ARG, "KID: more than 2^31 - 1 samples in a set");
    const size_t D = (size_t)d;
    for (size_t i = 0; i < n1 * D; i++)
        if (!isfinite(f1[i]))
            return dfn_set_error(DFN_ERR_NUMERIC, "KID: first set, vector %zu element %zu is %g",
                                 i / D, i % D, (double)f1[i]);
    for (size_t i = 0; i < n2 * D; i++)
        if (!isfinite(f2[i]))
            return dfn_set_error(DFN_ERR_NUMERIC, "KID: second set, vector %zu element %zu is %g",
                                 i / D, i % D, (double)f2[i]);
    const int m = (int)DFN_MIN((size_t)p->subset_size, DFN_MIN(n1, n2));
    const int S = p->subsets;

    /* every draw first, in a fixed order: subset s takes m from set 1, then m from set 2 */
    int *idx = dfn_malloc((size_t)S * 2 * (size_t)m * sizeof(int));
    int *perm1 = dfn_malloc(n1 * sizeof(int)), *perm2 = dfn_malloc(n2 * sizeof(int));
    uint64_t block = 0;
    for (int s = 0; s < S; s++) {
        for (size_t i = 0; i < n1; i++) perm1[i] = (int)i;
        for (size_t i = 0; i < n2; i++) perm2[i] = (int)i;
        draw_subset(idx + (size_t)s * 2 * m, perm1, n1, m, p->seed, &block);
        draw_subset(idx + ((size_t)s * 2 + 1) * m, perm2, n2, m, p->seed, &block);
    }
    free(perm1);
    free(perm2);

    double *mmd = dfn_malloc((size_t)S * sizeof(double));
#pragma omp parallel for schedule(dynamic, 1) if (S > 1)
    for (int s = 0; s < S; s++) {
        double *x = dfn_malloc((size_t)m * D * sizeof(double));
        double *y = dfn_malloc((size_t)m * D * sizeof(double));
        const int *ix = idx + (size_t)s * 2 * m, *iy = ix + m;
        for (int i = 0; i < m; i++)
            for (size_t k = 0; k < D; k++) {
                x[(size_t)i * D + k] = f1[(size_t)ix[i] * D + k];
                y[(size_t)i * D + k] = f2[(size_t)iy[i] * D + k];
            }
        mmd[s] = mmd2_unbiased(x, y, m, d);
        free(x);
        free(y);
    }
    double sum = 0.0;
    for (int s = 0; s < S; s++) sum += mmd[s];
    double mu = sum / S, var = 0.0;
    for (int s = 0; s < S; s++) var += (mmd[s] - mu) * (mmd[s] - mu);
    *mean = mu;
    if (std) *std = sqrt(var / S);
    free(mmd);
    free(idx);
    return DFN_OK;
}

dfn_status dfn_kid(double *mean, double *std, dfn_model *c, const dfn_dataset *samples,
                   const dfn_dataset *reference, const dfn_kid_params *p) {
    DFN_ASSERT(mean && c && samples && reference);
    dfn_status st = dfn_eval_check_sets(c, samples, reference, 2,
                                        "KID needs at least 2 samples per set");
    if (st != DFN_OK) return st;
    const int F = dfn_model_feature_dim(c);
    float *fa = dfn_eval_features(c, samples);
    float *fb = dfn_eval_features(c, reference);
    st = dfn_kid_features(mean, std, fa, dfn_dataset_count(samples), fb,
                          dfn_dataset_count(reference), F, p);
    free(fa);
    free(fb);
    return st;
}

/* metrics.c - sample quality for vectors: a generated set x against a reference
 * set y by
 *   MMD^2      unbiased, Gaussian kernel (Gretton et al. 2012 eq. 3; the median
 *              heuristic for the bandwidth, section 8),
 *   sliced W2  sqrt(mean over random directions of W_2^2 of the projections)
 *              (Rabin et al. 2011; Bonneel et al. 2015 eq. 10), each 1-D W_2^2
 *              the integral of the squared difference of the quantile functions,
 *   energy     2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely & Rizzo 2013 eq. 2),
 *   moments    |mean(x) - mean(y)|_2, |Cov(x) - Cov(y)|_F.
 * Pairwise sums: each row's sum is taken serially (in double), rows in parallel,
 * then the row sums in order: the bits do not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "eval/eval.h"

static dfn_status check_sets(const char *what, const float *x, size_t n, int dx, const float *y,
                             size_t m, int dy) {
    DFN_ASSERT(x && y);
    if (dx != dy)
        return dfn_set_error(DFN_ERR_ARG, "%s: the sets have different dimensions (%d and %d)",
                             what, dx, dy);
    if (dx < 1) return dfn_set_error(DFN_ERR_ARG, "%s: dimension %d, need >= 1", what, dx);
    if (n < 2 || m < 2)
        return dfn_set_error(DFN_ERR_ARG, "%s: %zu and %zu vectors; each set needs at least 2 "
                                          "(unbiased estimators, covariances; a full-rank "
                                          "covariance needs dim + 1 = %d)",
                             what, n, m, dx + 1);
    char name[96];
    snprintf(name, sizeof(name), "%s: first set", what);
    dfn_status st = dfn_eval_check_finite(name, x, n, (size_t)dx);
    if (st != DFN_OK) return st;
    snprintf(name, sizeof(name), "%s: second set", what);
    return dfn_eval_check_finite(name, y, m, (size_t)dx);
}

static double sqdist(const float *a, const float *b, int D) {
    double s = 0.0;
    for (int j = 0; j < D; j++) {
        const double e = (double)a[j] - b[j];
        s += e * e;
    }
    return s;
}

enum { K_GAUSS, K_DIST };

/* sum over i of sum over j (j != i when same) of k(a_i, b_j): k = exp(-d^2 g)
 * (K_GAUSS, g = 1/(2 h^2)) or the distance d (K_DIST). */
static double pair_sum(const float *a, size_t na, const float *b, size_t nb, int D, int same,
                       int kind, double g) {
    double *row = dfn_malloc(na * sizeof(double));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < na; i++) {
        double s = 0.0;
        for (size_t j = 0; j < nb; j++) {
            if (same && j == i) continue;
            const double d2 = sqdist(a + i * D, b + j * D, D);
            s += kind == K_GAUSS ? exp(-d2 * g) : sqrt(d2);
        }
        row[i] = s;
    }
    double s = 0.0;
    for (size_t i = 0; i < na; i++) s += row[i];
    free(row);
    return s;
}

/* The k-th smallest of v[0..n) (v reordered): Hoare's quickselect, middle pivot. */
static double select_kth(double *v, size_t n, size_t k) {
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const double pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                const double t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return v[k];
    }
    return v[k];
}

#define MEDIAN_POINTS 1000

/* The median distance between distinct pairs of the first MEDIAN_POINTS of x
 * and of y pooled (the lower middle for an even count). */
static double median_distance(const float *x, size_t n, const float *y, size_t m, int D) {
    const size_t nx = DFN_MIN(n, (size_t)MEDIAN_POINTS), ny = DFN_MIN(m, (size_t)MEDIAN_POINTS);
    const size_t N = nx + ny, P = N * (N - 1) / 2;
    double *d = dfn_malloc(P * sizeof(double));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N; i++) {
        const float *a = i < nx ? x + i * D : y + (i - nx) * D;
        size_t o = i * (2 * N - i - 1) / 2; /* pairs (i', j) with i' < i before row i */
        for (size_t j = i + 1; j < N; j++) {
            const float *b = j < nx ? x + j * D : y + (j - nx) * D;
            d[o++] = sqrt(sqdist(a, b, D));
        }
    }
    const double med = select_kth(d, P, (P - 1) / 2);
    free(d);
    return med;
}

dfn_status dfn_mmd2(double *out, const float *x, size_t n, int dim_x, const float *y, size_t m,
                    int dim_y, double bandwidth, double *used_bandwidth) {
    DFN_ASSERT(out);
    dfn_status st = check_sets("mmd", x, n, dim_x, y, m, dim_y);
    if (st != DFN_OK) return st;
    const int D = dim_x;
    double h = bandwidth > 0.0 ? bandwidth : median_distance(x, n, y, m, D);
    if (!(h > 0.0)) h = 1.0; /* all points equal: any bandwidth gives 0 */
    const double g = 1.0 / (2.0 * h * h);
    const double kxx = pair_sum(x, n, x, n, D, 1, K_GAUSS, g) / ((double)n * (n - 1));
    const double kyy = pair_sum(y, m, y, m, D, 1, K_GAUSS, g) / ((double)m * (m - 1));
    const double kxy = pair_sum(x, n, y, m, D, 0, K_GAUSS, g) / ((double)n * m);
    *out = kxx + kyy - 2.0 * kxy;
    if (used_bandwidth) *used_bandwidth = h;
    return DFN_OK;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* W_2^2 between the empirical distributions of sorted a (n) and b (m): the
 * integral over u in (0, 1) of (F_a^{-1}(u) - F_b^{-1}(u))^2, piecewise constant
 * between the breakpoints i/n and j/m (kept as integers over n m). */
static double w2_sorted(const double *a, size_t n, const double *b, size_t m) {
    size_t i = 0, j = 0;
    double cur = 0.0, s = 0.0;
    while (i < n && j < m) {
        const double pi = (double)(i + 1) * m, pj = (double)(j + 1) * n;
        const double next = pi < pj ? pi : pj;
        const double e = a[i] - b[j];
        s += (next - cur) * e * e;
        cur = next;
        if (pi <= next) i++;
        if (pj <= next) j++;
    }
    return s / ((double)n * m);
}

dfn_status dfn_sliced_wasserstein(double *out, const float *x, size_t n, int dim_x,
                                  const float *y, size_t m, int dim_y, int projections,
                                  uint64_t seed) {
    DFN_ASSERT(out);
    dfn_status st = check_sets("sliced wasserstein", x, n, dim_x, y, m, dim_y);
    if (st != DFN_OK) return st;
    if (projections < 1)
        return dfn_set_error(DFN_ERR_ARG, "sliced wasserstein: %d projections, need >= 1",
                             projections);
    const int D = dim_x;
    float *dir = dfn_malloc((size_t)projections * D * sizeof(float));
    dfn_rng rng = dfn_rng_init(seed);
    dfn_rng_normal(&rng, dir, (size_t)projections * D); /* normalised: uniform on the sphere */
    double *w = dfn_malloc((size_t)projections * sizeof(double));
#pragma omp parallel
    {
        double *pa = dfn_malloc(n * sizeof(double)), *pb = dfn_malloc(m * sizeof(double));
#pragma omp for schedule(static)
        for (int p = 0; p < projections; p++) {
            const float *th = dir + (size_t)p * D;
            double nn = 0.0;
            for (int j = 0; j < D; j++) nn += (double)th[j] * th[j];
            nn = nn > 0.0 ? 1.0 / sqrt(nn) : 0.0;
            for (size_t i = 0; i < n; i++) {
                double s = 0.0;
                for (int j = 0; j < D; j++) s += (double)th[j] * x[i * D + j];
                pa[i] = s * nn;
            }
            for (size_t i = 0; i < m; i++) {
                double s = 0.0;
                for (int j = 0; j < D; j++) s += (double)th[j] * y[i * D + j];
                pb[i] = s * nn;
            }
            qsort(pa, n, sizeof(double), cmp_double);
            qsort(pb, m, sizeof(double), cmp_double);
            w[p] = w2_sorted(pa, n, pb, m);
        }
        free(pa);
        free(pb);
    }
    double s = 0.0;
    for (int p = 0; p < projections; p++) s += w[p];
    *out = sqrt(s / projections);
    free(w);
    free(dir);
    return DFN_OK;
}

dfn_status dfn_energy_distance(double *out, const float *x, size_t n, int dim_x, const float *y,
                               size_t m, int dim_y) {
    DFN_ASSERT(out);
    dfn_status st = check_sets("energy distance", x, n, dim_x, y, m, dim_y);
    if (st != DFN_OK) return st;
    const int D = dim_x;
    const double dxy = pair_sum(x, n, y, m, D, 0, K_DIST, 0.0) / ((double)n * m);
    const double dxx = pair_sum(x, n, x, n, D, 1, K_DIST, 0.0) / ((double)n * (n - 1));
    const double dyy = pair_sum(y, m, y, m, D, 1, K_DIST, 0.0) / ((double)m * (m - 1));
    *out = 2.0 * dxy - dxx - dyy;
    return DFN_OK;
}

/* mean (D) and covariance (D x D, n - 1) of a (n, D), in double. */
static void moments(const float *a, size_t n, int D, double *mean, double *cov) {
    for (int j = 0; j < D; j++) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++) s += a[i * D + j];
        mean[j] = s / n;
    }
#pragma omp parallel for schedule(static)
    for (int j = 0; j < D; j++)
        for (int k = 0; k <= j; k++) {
            double s = 0.0;
            for (size_t i = 0; i < n; i++)
                s += ((double)a[i * D + j] - mean[j]) * ((double)a[i * D + k] - mean[k]);
            cov[(size_t)j * D + k] = cov[(size_t)k * D + j] = s / (n - 1);
        }
}

dfn_status dfn_moment_errors(double *mean_error, double *cov_error, const float *x, size_t n,
                             int dim_x, const float *y, size_t m, int dim_y) {
    dfn_status st = check_sets("moment errors", x, n, dim_x, y, m, dim_y);
    if (st != DFN_OK) return st;
    const int D = dim_x;
    double *mx = dfn_malloc((size_t)D * sizeof(double)), *my = dfn_malloc((size_t)D * sizeof(double));
    double *cx = dfn_malloc((size_t)D * D * sizeof(double));
    double *cy = dfn_malloc((size_t)D * D * sizeof(double));
    moments(x, n, D, mx, cx);
    moments(y, m, D, my, cy);
    double e = 0.0, f = 0.0;
    for (int j = 0; j < D; j++) e += (mx[j] - my[j]) * (mx[j] - my[j]);
    for (size_t k = 0; k < (size_t)D * D; k++) f += (cx[k] - cy[k]) * (cx[k] - cy[k]);
    if (mean_error) *mean_error = sqrt(e);
    if (cov_error) *cov_error = sqrt(f);
    free(mx);
    free(my);
    free(cx);
    free(cy);
    return DFN_OK;
}

dfn_status dfn_vector_metrics_compute(dfn_vector_metrics *out, const float *x, size_t n,
                                      int dim_x, const float *y, size_t m, int dim_y,
                                      uint64_t seed) {
    DFN_ASSERT(out);
    memset(out, 0, sizeof(*out));
    dfn_status st = dfn_mmd2(&out->mmd2, x, n, dim_x, y, m, dim_y, 0.0, &out->mmd_bandwidth);
    if (st == DFN_OK)
        st = dfn_sliced_wasserstein(&out->sliced_w2, x, n, dim_x, y, m, dim_y, 128, seed);
    if (st == DFN_OK) st = dfn_energy_distance(&out->energy, x, n, dim_x, y, m, dim_y);
    if (st == DFN_OK)
        st = dfn_moment_errors(&out->mean_error, &out->cov_error, x, n, dim_x, y, m, dim_y);
    return st;
}

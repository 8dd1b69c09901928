/* spectrum.c - seed 000's covariance view of a data set: the eigenvalue
 * spectrum of its covariance (a signal with structure is low-rank, white noise
 * is not), the similarity matrix of its dimensions, and "colored noise": white
 * noise mapped to the data's covariance, the Gaussian baseline generator that
 * a diffusion model has to beat. */
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "eval/eval.h"

dfn_status dfn_covariance_eigen(double *eigenvalues, double *eigenvectors, const double *cov,
                                int d) {
    DFN_ASSERT(eigenvalues && cov && d >= 1);
    const size_t D = (size_t)d;
    for (size_t i = 0; i < D * D; i++)
        if (!isfinite(cov[i]))
            return dfn_set_error(DFN_ERR_NUMERIC, "covariance entry (%zu, %zu) is %g", i / D, i % D,
                                 cov[i]);
    double *a = dfn_malloc(D * D * sizeof(double)), *w = dfn_malloc(D * sizeof(double));
    memcpy(a, cov, D * D * sizeof(double));
    /* LAPACK's divide-and-conquer symmetric eigensolver: ascending eigenvalues,
     * the eigenvectors as the columns of a (row-major) */
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, eigenvectors ? 'V' : 'N', 'U',
                                     (lapack_int)d, a, (lapack_int)d, w);
    dfn_status st = DFN_OK;
    if (info != 0) {
        st = dfn_set_error(DFN_ERR_NUMERIC, "the eigensolver (LAPACK dsyevd) failed on a %d x %d "
                                            "covariance (info %d)", d, d, (int)info);
    } else { /* descending, the vectors' columns with them */
        for (size_t k = 0; k < D; k++) eigenvalues[k] = w[D - 1 - k];
        if (eigenvectors)
            for (size_t i = 0; i < D; i++)
                for (size_t k = 0; k < D; k++) eigenvectors[i * D + k] = a[i * D + (D - 1 - k)];
    }
    free(a);
    free(w);
    return st;
}

dfn_status dfn_similarity_matrix(double *out, const float *x, size_t n, int d) {
    DFN_ASSERT(out && x && d >= 1);
    if (n < 1) return dfn_set_error(DFN_ERR_ARG, "the similarity matrix needs at least 1 vector");
    dfn_status st = dfn_eval_check_finite("similarity matrix", x, n, (size_t)d);
    if (st) return st;
    const size_t D = (size_t)d;
    /* S_ij = (1/n) sum_s 2 / (1 + exp|x_si - x_sj|): the logistic function of
     * minus the distance between two dimensions (seed 000's "Dst cov"), scaled
     * so that a dimension is 1 with itself and unrelated ones tend to 0. Each
     * entry is one sum in sample order, so any thread count gives its bits. */
#pragma omp parallel for schedule(dynamic, 1) if (n * D * D >= 1000000)
    for (int r = 0; r < d; r++) {
        for (int c = r; c < d; c++) {
            double s = 0.0;
            for (size_t i = 0; i < n; i++) {
                const double diff = fabs((double)x[i * D + (size_t)r] - (double)x[i * D + (size_t)c]);
                s += 2.0 / (1.0 + exp(diff));
            }
            s /= (double)n;
            out[(size_t)r * D + (size_t)c] = s;
            out[(size_t)c * D + (size_t)r] = s;
        }
    }
    return DFN_OK;
}

void dfn_colored_noise(float *out, size_t n, int d, const double *mean, const double *eigenvalues,
                       const double *eigenvectors, dfn_rng *rng) {
    DFN_ASSERT(out && mean && eigenvalues && eigenvectors && rng && d >= 1);
    const size_t D = (size_t)d;
    /* Cov = U S U^T, so x = mean + U S^(1/2) z with z ~ N(0, I) has covariance
     * U S^(1/2) I S^(1/2) U^T = Cov (seed 000, appendix). B = U S^(1/2),
     * eigenvalues that round-off pushed below zero taken as 0. */
    float *b = dfn_malloc(D * D * sizeof(float)), *z = dfn_malloc(n * D * sizeof(float));
    for (size_t i = 0; i < D; i++)
        for (size_t k = 0; k < D; k++)
            b[i * D + k] = (float)(eigenvectors[i * D + k] * sqrt(fmax(eigenvalues[k], 0.0)));
    dfn_rng_normal(rng, z, n * D);
    /* rows: x_s^T = z_s^T B^T; one GEMM on this thread, the same bits always */
    dfn_gemm(0, 1, (int)n, d, d, 1.0f, z, d, b, d, 0.0f, out, d);
    for (size_t s = 0; s < n; s++)
        for (size_t j = 0; j < D; j++) out[s * D + j] += (float)mean[j];
    free(b);
    free(z);
}

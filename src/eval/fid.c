/* fid.c - Frechet inception distance (Heusel et al. 2017) in the feature space
 * of diffusion.c's own classifier.
 *
 * Two feature sets are summarised by Gaussians N(mu1, S1), N(mu2, S2); their
 * Frechet (2-Wasserstein) distance is (Dowson & Landau 1982; Heusel et al.
 * 2017, eq. 6)
 *
 *     d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).
 *
 * S1 S2 is not symmetric, but with R = S1^(1/2) it is similar to the symmetric
 * positive semi-definite M = R S2 R (S1 S2 = R M R^-1 when S1 is invertible,
 * and by continuity otherwise), so tr (S1 S2)^(1/2) = sum_i sqrt(lambda_i(M)).
 * Both R and the eigenvalues of M come from LAPACK's symmetric eigensolver
 * (dsyev); eigenvalues that round-off pushed slightly below zero are clamped
 * to 0. This avoids the general matrix square root (scipy.linalg.sqrtm, a
 * Schur method) and its complex round-off parts.
 *
 * Statistics are accumulated in double in a fixed order; the covariance rows
 * are parallel tasks that each sum over all samples in index order, so the
 * bits do not depend on the thread count.
 */
#include <lapacke.h>
#include <math.h>
#include <string.h>

#include "eval/eval.h"

/* ================================================================ statistics */

/* The first non-finite element of n vectors of d floats, or 0 (and *at unset). */
static int find_non_finite(const float *x, size_t n, size_t d, size_t *at) {
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(x[i])) {
            *at = i;
            return 1;
        }
    return 0;
}

dfn_status dfn_feature_stats(double *mean, double *cov, const float *features, size_t n, int d) {
    DFN_ASSERT(mean && cov && features && d >= 1);
    if (n < 2)
        return dfn_set_error(DFN_ERR_ARG, "feature statistics need at least 2 vectors, got %zu",
                             n);
    size_t at;
    if (find_non_finite(features, n, (size_t)d, &at))
        return dfn_set_error(DFN_ERR_NUMERIC, "feature vector %zu, element %zu is %g",
                             at / (size_t)d, at % (size_t)d, (double)features[at]);
    const size_t D = (size_t)d;
    for (size_t j = 0; j < D; j++) mean[j] = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < D; j++) mean[j] += features[i * D + j];
    for (size_t j = 0; j < D; j++) mean[j] /= (double)n;
    /* centred features, transposed (d, n), so that each covariance entry is a
     * dot product of two contiguous rows */
    double *ct = dfn_malloc(D * n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < D; j++) ct[j * n + i] = (double)features[i * D + j] - mean[j];
#pragma omp parallel for schedule(dynamic, 1) if (n * D * D >= 1000000)
    for (int r = 0; r < d; r++) {
        const double *a = ct + (size_t)r * n;
        for (int c = r; c < d; c++) {
            const double *b = ct + (size_t)c * n;
            double s = 0.0;
            for (size_t i = 0; i < n; i++) s += a[i] * b[i];
            s /= (double)(n - 1);
            cov[(size_t)r * D + c] = s;
            cov[(size_t)c * D + r] = s;
        }
    }
    free(ct);
    return DFN_OK;
}

/* ================================================================ Frechet distance */

/* c (d,d) = a (d,d) b (d,d), row-major, double. */
static void matmul(double *c, const double *a, const double *b, int d) {
    const size_t D = (size_t)d;
    for (size_t i = 0; i < D; i++) {
        double *ci = c + i * D;
        for (size_t j = 0; j < D; j++) ci[j] = 0.0;
        for (size_t k = 0; k < D; k++) {
            double aik = a[i * D + k];
            const double *bk = b + k * D;
            for (size_t j = 0; j < D; j++) ci[j] += aik * bk[j];
        }
    }
}

/* Eigenvalues of the symmetric a (d,d), ascending into w; with vectors != 0, a
 * is overwritten by the eigenvectors (column k of the row-major array belongs to
 * w[k]). Returns LAPACK's info (0: success). */
static int sym_eig(double *a, double *w, int d, int vectors) {
    return (int)LAPACKE_dsyev(LAPACK_ROW_MAJOR, vectors ? 'V' : 'N', 'U', (lapack_int)d, a,
                              (lapack_int)d, w);
}

dfn_status dfn_frechet_distance(double *out, const double *mu1, const double *cov1,
                                const double *mu2, const double *cov2, int d) {
    DFN_ASSERT(out && mu1 && cov1 && mu2 && cov2 && d >= 1);
    const size_t D = (size_t)d, DD = D * D;
    for (size_t i = 0; i < D; i++)
        if (!isfinite(mu1[i]) || !isfinite(mu2[i]))
            return dfn_set_error(DFN_ERR_NUMERIC, "Frechet distance: a mean holds NaN or Inf");
    for (size_t i = 0; i < DD; i++)
        if (!isfinite(cov1[i]) || !isfinite(cov2[i]))
            return dfn_set_error(DFN_ERR_NUMERIC,
                                 "Frechet distance: a covariance holds NaN or Inf");
    dfn_status st = DFN_OK;
    double *v = dfn_malloc(DD * sizeof(double));   /* eigenvectors of S1 */
    double *r = dfn_malloc(DD * sizeof(double));   /* R = S1^(1/2) */
    double *t = dfn_malloc(DD * sizeof(double));   /* scratch */
    double *w = dfn_malloc(D * sizeof(double));    /* eigenvalues */
    /* R = V diag(sqrt(max(w, 0))) V^T, from the symmetrised S1 */
    for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j < D; j++) v[i * D + j] = 0.5 * (cov1[i * D + j] + cov1[j * D + i]);
    int info = sym_eig(v, w, d, 1);
    if (info != 0) {
        st = dfn_set_error(DFN_ERR_NUMERIC,
                           "Frechet distance: the eigensolver (LAPACK dsyev) failed on the first "
                           "covariance (info %d)",
                           info);
        goto done;
    }
    for (size_t k = 0; k < D; k++) w[k] = sqrt(w[k] > 0.0 ? w[k] : 0.0);
    for (size_t i = 0; i < D; i++)
        for (size_t k = 0; k < D; k++) t[i * D + k] = v[i * D + k] * w[k];
    for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j < D; j++) {
            double s = 0.0;
            for (size_t k = 0; k < D; k++) s += t[i * D + k] * v[j * D + k];
            r[i * D + j] = s;
        }
    /* M = R S2 R, symmetrised, and its eigenvalues */
    matmul(t, r, cov2, d);
    matmul(v, t, r, d);
    for (size_t i = 0; i < D; i++)
        for (size_t j = i + 1; j < D; j++) {
            double s = 0.5 * (v[i * D + j] + v[j * D + i]);
            v[i * D + j] = v[j * D + i] = s;
        }
    info = sym_eig(v, w, d, 0);
    if (info != 0) {
        st = dfn_set_error(DFN_ERR_NUMERIC,
                           "Frechet distance: the eigensolver (LAPACK dsyev) failed on "
                           "S1^(1/2) S2 S1^(1/2) (info %d)",
                           info);
        goto done;
    }
    double tr_root = 0.0, tr1 = 0.0, tr2 = 0.0, dmu = 0.0;
    for (size_t k = 0; k < D; k++) tr_root += sqrt(w[k] > 0.0 ? w[k] : 0.0);
    for (size_t i = 0; i < D; i++) {
        tr1 += cov1[i * D + i];
        tr2 += cov2[i * D + i];
        dmu += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]);
    }
    double d2 = dmu + tr1 + tr2 - 2.0 * tr_root;
    *out = d2 > 0.0 ? d2 : 0.0; /* round-off can leave -1e-15 for equal Gaussians */
done:
    free(v);
    free(r);
    free(t);
    free(w);
    return st;
}

dfn_status dfn_fid_features(double *out, const float *f1, size_t n1, const float *f2, size_t n2,
                            int d) {
    DFN_ASSERT(out && f1 && f2 && d >= 1);
    if (n1 < (size_t)d + 1 || n2 < (size_t)d + 1)
        return dfn_set_error(DFN_ERR_ARG,
                             "FID needs at least D+1 = %d samples per set, got %zu (%s set)",
                             d + 1, n1 < (size_t)d + 1 ? n1 : n2,
                             n1 < (size_t)d + 1 ? "first" : "second");
    const size_t D = (size_t)d;
    dfn_status st;
    double *mu1 = dfn_malloc(D * sizeof(double)), *mu2 = dfn_malloc(D * sizeof(double));
    double *s1 = dfn_malloc(D * D * sizeof(double)), *s2 = dfn_malloc(D * D * sizeof(double));
    if ((st = dfn_feature_stats(mu1, s1, f1, n1, d)) != DFN_OK) goto done;
    if ((st = dfn_feature_stats(mu2, s2, f2, n2, d)) != DFN_OK) goto done;
    st = dfn_frechet_distance(out, mu1, s1, mu2, s2, d);
done:
    free(mu1);
    free(mu2);
    free(s1);
    free(s2);
    return st;
}

/* ================================================================ image sets */

static void shape_text(char *buf, size_t size, const dfn_dataset *ds) {
    int dims[DFN_DATASET_MAX_DIMS];
    int nd = dfn_dataset_shape(ds, dims);
    if (nd == 3) snprintf(buf, size, "%dx%dx%d images", dims[0], dims[1], dims[2]);
    else snprintf(buf, size, "vectors of %d", dims[0]);
}

dfn_status dfn_eval_check_sets(const dfn_model *c, const dfn_dataset *samples,
                               const dfn_dataset *reference, size_t min_count, const char *need) {
    int da[DFN_DATASET_MAX_DIMS], db[DFN_DATASET_MAX_DIMS];
    int na = dfn_dataset_shape(samples, da), nb = dfn_dataset_shape(reference, db);
    int same = na == nb;
    for (int i = 0; i < na && same; i++) same = da[i] == db[i];
    if (!same) {
        char a[64], b[64];
        shape_text(a, sizeof a, samples);
        shape_text(b, sizeof b, reference);
        return dfn_set_error(DFN_ERR_ARG,
                             "the samples are %s but the reference set holds %s: both sets must "
                             "have the same shape",
                             a, b);
    }
    dfn_status st;
    int dims[DFN_DATASET_MAX_DIMS], nd = dfn_dataset_shape(samples, dims);
    if ((st = dfn_eval_check_classifier(c)) != DFN_OK ||
        (st = dfn_model_check_input(c, nd, dims, "samples")) != DFN_OK)
        return st;
    const dfn_dataset *sets[2] = {samples, reference};
    const char *names[2] = {"samples", "reference set"};
    for (int s = 0; s < 2; s++)
        if (dfn_dataset_count(sets[s]) < min_count)
            return dfn_set_error(DFN_ERR_ARG, "%s, got %zu in the %s", need,
                                 dfn_dataset_count(sets[s]), names[s]);
    for (int s = 0; s < 2; s++) {
        size_t at, d = dfn_dataset_sample_size(sets[s]);
        const float *x = dfn_dataset_sample(sets[s], 0);
        if (find_non_finite(x, dfn_dataset_count(sets[s]), d, &at))
            return dfn_set_error(DFN_ERR_NUMERIC, "%s: image %zu, element %zu is %g", names[s],
                                 at / d, at % d, (double)x[at]);
    }
    return DFN_OK;
}

float *dfn_eval_features(dfn_model *c, const dfn_dataset *ds) {
    size_t n = dfn_dataset_count(ds);
    int F = dfn_model_feature_dim(c);
    float *f = dfn_malloc(n * (size_t)F * sizeof(float));
    /* in float32 whatever the precision in use: bfloat16 and float32 models are
     * measured in the same features */
    const dfn_precision before = dfn_get_precision();
    if (before != DFN_PRECISION_FP32) dfn_set_precision(DFN_PRECISION_FP32);
    dfn_model_extract_features(c, f, dfn_dataset_sample(ds, 0), n);
    if (before != DFN_PRECISION_FP32) dfn_set_precision(before);
    return f;
}

dfn_status dfn_fid(double *out, dfn_model *c, const dfn_dataset *samples,
                   const dfn_dataset *reference) {
    DFN_ASSERT(out && c && samples && reference);
    dfn_status st = dfn_eval_check_classifier(c);
    if (st != DFN_OK) return st;
    const int F = dfn_model_feature_dim(c);
    char need[96];
    snprintf(need, sizeof need, "FID needs at least D+1 = %d samples per set", F + 1);
    /* the samples' errors first, as documented, then the reference's features */
    if ((st = dfn_eval_check_sets(c, samples, reference, (size_t)F + 1, need)) != DFN_OK) return st;
    dfn_feature_ref *r = NULL;
    if ((st = dfn_feature_ref_new(&r, c, reference)) != DFN_OK) return st;
    st = dfn_feature_ref_fid(r, samples, out);
    dfn_feature_ref_free(r);
    return st;
}

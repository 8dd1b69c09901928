/* feature_ref.c - a reference set's classifier features, extracted once
 * (dfn_feature_ref): FID and KID of many sample sets against one reference (a
 * model's samples and the held-out floor at the same N, a ladder of known
 * degradations, the FID monitor of a training run) without running the
 * classifier over the reference each time. FID's reference mean and
 * covariance are computed once as well; the arithmetic is dfn_fid_features'
 * and dfn_kid_features' (samples first, reference second), so the values are
 * the same bits as dfn_fid's and dfn_kid's, which are built on this. */
#include <stdlib.h>

#include "eval/eval.h"

struct dfn_feature_ref {
    dfn_model *classifier;        /* not owned */
    const dfn_dataset *reference; /* not owned */
    float *features;              /* (n, d) */
    size_t n;
    int d;
    double *mu, *cov; /* (d), (d, d) */
};

dfn_status dfn_feature_ref_new(dfn_feature_ref **out, dfn_model *classifier,
                               const dfn_dataset *reference) {
    DFN_ASSERT(out && classifier && reference);
    *out = NULL;
    dfn_status st = dfn_eval_check_classifier(classifier);
    if (st != DFN_OK) return st;
    const int d = dfn_model_feature_dim(classifier);
    char need[96];
    snprintf(need, sizeof need, "FID needs at least D+1 = %d samples per set", d + 1);
    if ((st = dfn_eval_check_sets(classifier, reference, reference, (size_t)d + 1, need)) != DFN_OK)
        return st;
    dfn_feature_ref *r = dfn_calloc(1, sizeof *r);
    r->classifier = classifier;
    r->reference = reference;
    r->d = d;
    r->n = dfn_dataset_count(reference);
    r->features = dfn_eval_features(classifier, reference);
    r->mu = dfn_malloc((size_t)d * sizeof(double));
    r->cov = dfn_malloc((size_t)d * d * sizeof(double));
    if ((st = dfn_feature_stats(r->mu, r->cov, r->features, r->n, d)) != DFN_OK) {
        dfn_feature_ref_free(r);
        return st;
    }
    *out = r;
    return DFN_OK;
}

void dfn_feature_ref_free(dfn_feature_ref *r) {
    if (!r) return;
    free(r->features);
    free(r->mu);
    free(r->cov);
    free(r);
}

size_t dfn_feature_ref_count(const dfn_feature_ref *r) { return r->n; }

dfn_status dfn_feature_ref_fid(const dfn_feature_ref *r, const dfn_dataset *samples, double *out) {
    DFN_ASSERT(r && samples && out);
    char need[96];
    snprintf(need, sizeof need, "FID needs at least D+1 = %d samples per set", r->d + 1);
    dfn_status st = dfn_eval_check_sets(r->classifier, samples, r->reference, (size_t)r->d + 1, need);
    if (st != DFN_OK) return st;
    const size_t D = (size_t)r->d, n = dfn_dataset_count(samples);
    float *f = dfn_eval_features(r->classifier, samples);
    double *mu = dfn_malloc(D * sizeof(double)), *cov = dfn_malloc(D * D * sizeof(double));
    st = dfn_feature_stats(mu, cov, f, n, r->d);
    if (st == DFN_OK) st = dfn_frechet_distance(out, mu, cov, r->mu, r->cov, r->d);
    free(f);
    free(mu);
    free(cov);
    return st;
}

dfn_status dfn_feature_ref_kid(const dfn_feature_ref *r, const dfn_dataset *samples,
                               const dfn_kid_params *p, double *mean, double *std) {
    DFN_ASSERT(r && samples && mean);
    dfn_status st = dfn_eval_check_sets(r->classifier, samples, r->reference, 2,
                                        "KID needs at least 2 samples per set");
    if (st != DFN_OK) return st;
    float *f = dfn_eval_features(r->classifier, samples);
    st = dfn_kid_features(mean, std, f, dfn_dataset_count(samples), r->features, r->n, r->d, p);
    free(f);
    return st;
}

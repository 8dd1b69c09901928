/* consistency.c - the numbers of consistency models: the boundary
 * parameterisation (Song et al. 2023 eq. 5 and appendix C), consistency
 * training's curriculum of levels and its lognormal choice of level (Song &
 * Dhariwal 2023, "Improved techniques for training consistency models",
 * sections 3.4-3.5). Levels are EDM's s = sigma/alpha, so that the same
 * description fits every process. */
#include <cjson/cJSON.h>
#include <math.h>

#include "core/core.h"
#include "diffusion/process.h"

/* c_skip(s) = sigma_min / s with s = sigma / alpha (process.h): on x,
 * c_skip / alpha = sigma_min / sigma; on D, 1 - c_skip = 1 - sigma_min alpha / sigma. */
void dfn_consistency_coefficients(const dfn_consistency *c, double alpha, double sigma,
                                  double *c_x, double *c_d) {
    *c_x = c->sigma_min / sigma;
    *c_d = 1.0 - c->sigma_min * alpha / sigma;
}

void dfn_consistency_apply(const dfn_consistency *c, float *f, const float *x, const float *x0,
                           double alpha, double sigma, size_t n) {
    double cx, cd;
    dfn_consistency_coefficients(c, alpha, sigma, &cx, &cd);
    for (size_t i = 0; i < n; i++) f[i] = (float)(cx * x[i] + cd * x0[i]);
}

int dfn_consistency_levels(long k, long K, int s0, int s1) {
    DFN_ASSERT(s0 >= 1 && s1 >= s0 && K >= 1);
    long kp = (long)floor((double)K / (log2((double)s1 / s0) + 1.0));
    if (kp < 1) kp = 1;
    const long doublings = k / kp;
    double n = doublings >= 30 ? (double)s1 : (double)s0 * (double)(1L << doublings);
    if (n > s1) n = s1;
    return (int)n + 1;
}

void dfn_consistency_level_cdf(double *cdf, const double *sig, int N, double p_mean,
                               double p_std) {
    DFN_ASSERT(N >= 2 && p_std > 0);
    double total = 0;
    for (int n = 0; n + 1 < N; n++) {
        const double hi = erf((log(sig[n + 1]) - p_mean) / (sqrt(2.0) * p_std));
        const double lo = erf((log(sig[n]) - p_mean) / (sqrt(2.0) * p_std));
        total += hi - lo;
        cdf[n] = total;
    }
    for (int n = 0; n + 1 < N; n++) /* (all levels far in the tails: uniform) */
        cdf[n] = total > 0 ? cdf[n] / total : (double)(n + 1) / (N - 1);
    cdf[N - 2] = 1.0;
}

char *dfn_consistency_to_json(const dfn_consistency *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "sigma_min", c->sigma_min);
    cJSON_AddNumberToObject(o, "sigma_max", c->sigma_max);
    char *text = cJSON_PrintUnformatted(o), *out = dfn_strdup(text);
    cJSON_free(text);
    cJSON_Delete(o);
    return out;
}

dfn_status dfn_consistency_from_json(dfn_consistency *c, const char *json) {
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return dfn_set_error(DFN_ERR_FORMAT, "consistency: not a JSON object");
    }
    static const char *const keys[] = {"sigma_min", "sigma_max"};
    double v[2];
    for (int i = 0; i < 2; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!cJSON_IsNumber(x)) {
            cJSON_Delete(o);
            return dfn_set_error(DFN_ERR_FORMAT, "consistency: \"%s\" must be a number", keys[i]);
        }
        v[i] = x->valuedouble;
    }
    cJSON_Delete(o);
    c->sigma_min = v[0];
    c->sigma_max = v[1];
    return DFN_OK;
}

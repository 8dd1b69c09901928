/* ddpm.c - DDPM ancestral sampling (Ho et al. 2020 alg. 2) and the x0 clipping
 * and dynamic thresholding that DDPM and DDIM apply to their x0 estimate. */
#include <math.h>
#include <string.h>

#include "sample/sample.h"

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* v clipped to [-r, r], NaN kept (fmin/fmax would turn a NaN from a broken
 * network into a bound, and the sampler would go on with plausible garbage). */
static inline double clip_keep_nan(double v, double r) { return v > r ? r : v < -r ? -r : v; }

void dfn_sampler_postprocess_x0(const dfn_sampler_params *p, float *x0, int batch, size_t dim) {
    if (p->dynamic_threshold) {
        /* Saharia et al. 2022 section 2.3: s = the p-th percentile of |x0| per
         * sample (linear interpolation, as torch.quantile), s = max(s, 1), then
         * x0 = clip(x0, -s, s) / s. */
        float *a = dfn_malloc(dim * sizeof(float));
        for (int b = 0; b < batch; b++) {
            float *xb = x0 + (size_t)b * dim;
            for (size_t i = 0; i < dim; i++) a[i] = fabsf(xb[i]);
            qsort(a, dim, sizeof(float), cmp_float);
            double pos = p->threshold_p * (double)(dim - 1);
            size_t lo = (size_t)floor(pos), hi = DFN_MIN(lo + 1, dim - 1);
            double s = a[lo] + (pos - (double)lo) * (a[hi] - a[lo]);
            s = fmin(fmax(s, 1.0), p->threshold_max);
            for (size_t i = 0; i < dim; i++) xb[i] = (float)(clip_keep_nan(xb[i], s) / s);
        }
        free(a);
    } else if (p->clip_x0) {
        const float r = (float)p->clip_range;
        for (size_t i = 0; i < (size_t)batch * dim; i++) x0[i] = (float)clip_keep_nan(x0[i], r);
    }
}

dfn_status dfn_sample_ddpm(dfn_denoiser *d, float *x, int batch, size_t dim,
                           const dfn_sampler_params *in, dfn_rng *rng, dfn_sample_stats *stats) {
    dfn_sampler_params p;
    const int T0 = d->schedule ? d->schedule->T : 0;
    dfn_status st = dfn_sampler_begin("ddpm", d, x, batch, dim, in, &p, DFN_FITS_DISCRETE, T0);
    if (st != DFN_OK) return st;
    const int T = dfn_sampler_scaled(T0, p.strength); /* an SDEdit start: the first T steps */
    if (p.steps != T)
        return dfn_set_error(DFN_ERR_ARG, "ddpm runs all T = %d steps (got steps = %d); for "
                                          "fewer steps use ddim (eta = 1 is ancestral)",
                             T0, in ? in->steps : 0);
    if ((int)p.variance < 0 || p.variance >= DFN_VARIANCE_COUNT)
        return dfn_set_error(DFN_ERR_ARG, "ddpm: variance %d is not a dfn_ddpm_variance",
                             (int)p.variance);
    const dfn_schedule *s = d->schedule;
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *x0 = dfn_malloc(n * sizeof(float)), *z = dfn_malloc(n * sizeof(float));
    double a, sg;
    dfn_schedule_alpha_sigma(s, T - 1, &a, &sg);
    dfn_sampler_start(&p, x, batch, dim, a, sg, 1.0, rng); /* x_T ~ N(0, I) */
    for (int i = T - 1; i >= 0; i--) {
        dfn_denoiser_eval(d, x0, DFN_PRED_X0, x, i, batch, dim);
        dfn_sampler_postprocess_x0(&p, x0, batch, dim);
        /* mu~_t(x_t, x0^) (eq. 7); with x0^ from eps this is eq. 11's mu_theta */
        const double c0 = s->posterior_coef_x0[i], ct = s->posterior_coef_xt[i];
        for (size_t k = 0; k < n; k++) x[k] = (float)(c0 * x0[k] + ct * x[k]);
        if (i > 0) { /* sigma_t^2 = b_t or b~_t (section 3.2); z = 0 at t = 1 */
            double var = p.variance == DFN_VARIANCE_BETA ? s->beta[i] : s->posterior_variance[i];
            dfn_sampler_add_noise(x, z, n, sqrt(var), rng);
        }
        if (i > 0) dfn_schedule_alpha_sigma(s, i - 1, &a, &sg);
        else a = 1.0, sg = 0.0;
        dfn_sampler_constrain(&p, x, a, sg, batch, dim);
        if ((st = dfn_sampler_step(&p, "ddpm", T - i, T, i, x, x0, batch, dim)) != DFN_OK) break;
    }
    free(x0);
    free(z);
    dfn_sampler_report(stats, d, nfe0, T, 0);
    return st;
}

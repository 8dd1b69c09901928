/* consistency.c - multistep consistency sampling (Song et al. 2023 alg. 1):
 * one evaluation of the consistency function f maps the prior straight to
 * data; each further step noises that estimate up to a lower level and maps it
 * down again. In EDM's levels s = sigma/alpha (x/alpha = x0 + s eps): start at
 * s_0 = sigma_max, x0 = f(x, s_0); then for i = 1..S-1
 *     x/alpha_i = x0 + sqrt(s_i^2 - sigma_min^2) z,   x0 = f(x, s_i)
 * (the sqrt: f's x0 is the trajectory's point at sigma_min, not noiseless
 * data). The levels s_0 > ... > s_{S-1} are the first S of Karras et al.'s
 * ladder (eq. 5, rho) of S + 1 levels from sigma_max to sigma_min. The
 * denoiser must be a consistency model's f (dfn_pipeline_denoiser of a
 * consistency checkpoint gives it): any x0 estimate would run, but only f's
 * makes this a sampler. */
#include <math.h>
#include <string.h>

#include "sample/sample.h"

dfn_status dfn_sample_consistency(dfn_denoiser *d, float *x, int batch, size_t dim,
                                  const dfn_sampler_params *in, dfn_rng *rng,
                                  dfn_sample_stats *stats) {
    const char *name = "consistency";
    dfn_sampler_params p;
    const unsigned fits = DFN_FITS_DISCRETE | DFN_FITS_VP | DFN_FITS_SUBVP | DFN_FITS_VE | DFN_FITS_FLOW;
    dfn_status st = dfn_sampler_begin(name, d, x, batch, dim, in, &p, fits, 1);
    if (st != DFN_OK) return st;
    if (p.steps > 64)
        return dfn_set_error(DFN_ERR_ARG, "%s: %d steps; multistep consistency sampling is for a "
                                          "few steps (1 to 64; 1, 2 and 4 are usual)", name, p.steps);
    double t_lo, t_hi;
    dfn_sampler_t_range(d, &p, &t_lo, &t_hi);
    const double smin = p.sigma_min > 0 ? p.sigma_min : exp(-dfn_denoiser_lambda(d, t_lo));
    double smax = p.sigma_max > 0 ? p.sigma_max : fmin(exp(-dfn_denoiser_lambda(d, t_hi)), 80.0);
    if (p.strength < 1.0) smax = fmin(smax, exp(-dfn_denoiser_lambda(d, t_hi))); /* SDEdit */
    if (!(smin > 0))
        return dfn_set_error(DFN_ERR_ARG, "%s: the sampling interval ends at level s = 0; give "
                                          "sigma_min (the consistency model's first level)", name);
    if (!(smax > smin))
        return dfn_set_error(DFN_ERR_ARG, "%s: sigma_max %g must exceed sigma_min %g", name, smax, smin);
    const int S = p.steps;
    double *sig = dfn_malloc(((size_t)S + 1) * sizeof(double));
    if ((st = dfn_sigmas_karras(sig, S + 1, smin, smax, p.rho)) != DFN_OK) {
        free(sig);
        return st;
    }
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *x0 = dfn_malloc(n * sizeof(float)), *z = dfn_malloc(n * sizeof(float));
    double t = dfn_denoiser_t_from_lambda(d, -log(sig[0])), a;
    dfn_denoiser_marginal(d, t, &a, NULL);
    dfn_sampler_start(&p, x, batch, dim, a, a * sig[0], a * sig[0], rng); /* x = alpha s_0 z */
    for (int i = 0; i < S; i++) {
        if (i > 0) { /* re-noise the estimate to s_i */
            t = dfn_denoiser_t_from_lambda(d, -log(sig[i]));
            dfn_denoiser_marginal(d, t, &a, NULL);
            dfn_rng_normal(rng, z, n);
            const double s = sqrt(sig[i] * sig[i] - smin * smin);
            for (size_t k = 0; k < n; k++) x[k] = (float)(a * (x0[k] + s * z[k]));
            dfn_sampler_constrain(&p, x, a, a * sig[i], batch, dim);
        }
        dfn_denoiser_eval(d, x0, DFN_PRED_X0, x, t, batch, dim);
        dfn_sampler_postprocess_x0(&p, x0, batch, dim);
        if (i == S - 1) {
            memcpy(x, x0, n * sizeof(float));
            dfn_sampler_constrain(&p, x, 1.0, 0.0, batch, dim);
        }
        if ((st = dfn_sampler_step(&p, name, i + 1, S, i == S - 1 ? t_lo : t, x, x0, batch, dim)) != DFN_OK)
            break;
    }
    free(sig);
    free(x0);
    free(z);
    dfn_sampler_report(stats, d, nfe0, S, 0);
    return st;
}

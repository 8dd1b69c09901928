/* karras.c - EDM sampling (Karras et al. 2022 alg. 2): Euler or Heun on the
 * sigma ladder of eq. 5 (rho = 7), with optional churn.
 *
 * EDM works in the scaled variables x~ = x / alpha, sigma~ = sigma / alpha = e^-lambda,
 * in which every process becomes VE: dx~/dsigma~ = (x~ - D(x~, sigma~)) / sigma~
 * (eq. 4 with s = 1). D is the x0 prediction at the process time with
 * lambda = -log sigma~ and x = alpha x~ (k-diffusion's VDenoiser/DiscreteEpsDDPMDenoiser
 * scaling c_in). The ladder runs from sigma_max down to sigma_min, then to 0. */
#include <math.h>
#include <string.h>

#include "sample/sample.h"

/* The constraint on x~ at sigma~ (0: data), applied in the process's own
 * coordinates x = alpha x~, as every other sampler applies it. */
static void constrain_scaled(dfn_denoiser *d, const dfn_sampler_params *p, float *xs, double sig,
                             int batch, size_t dim) {
    if (!p->constraint) return;
    double a = 1.0;
    if (sig > 0.0) dfn_denoiser_marginal(d, dfn_denoiser_t_from_lambda(d, -log(sig)), &a, NULL);
    const size_t n = (size_t)batch * dim;
    for (size_t i = 0; i < n; i++) xs[i] = (float)(a * xs[i]);
    dfn_sampler_constrain(p, xs, a, a * sig, batch, dim);
    for (size_t i = 0; i < n; i++) xs[i] = (float)(xs[i] / a);
}

/* out = D(x~, sigma~): the x0 estimate, x~ scaled to the process at lambda = -log sigma~,
 * clipped or thresholded as p asks (as DDIM treats its x0). */
static void edm_denoise(dfn_denoiser *d, const dfn_sampler_params *p, float *out, float *tmp,
                        const float *xs, double sig, int batch, size_t dim) {
    const double t = dfn_denoiser_t_from_lambda(d, -log(sig));
    double a;
    dfn_denoiser_marginal(d, t, &a, NULL);
    for (size_t i = 0; i < (size_t)batch * dim; i++) tmp[i] = (float)(a * xs[i]);
    dfn_denoiser_eval(d, out, DFN_PRED_X0, tmp, t, batch, dim);
    dfn_sampler_postprocess_x0(p, out, batch, dim);
}

static dfn_status karras(const char *name, int heun, dfn_denoiser *d, float *x, int batch,
                         size_t dim, const dfn_sampler_params *in, dfn_rng *rng,
                         dfn_sample_stats *stats) {
    dfn_sampler_params p;
    const unsigned fits = DFN_FITS_DISCRETE | DFN_FITS_VP | DFN_FITS_SUBVP | DFN_FITS_VE;
    dfn_status st = dfn_sampler_begin(name, d, x, batch, dim, in, &p, fits, 50);
    if (st != DFN_OK) return st;
    if (p.strength < 1.0 && p.sigma_max > 0)
        return dfn_set_error(DFN_ERR_ARG, "%s: sigma_max = %g and strength = %g both set the start "
                                          "level; give one", name, p.sigma_max, p.strength);
    double t_lo, t_hi;
    dfn_sampler_t_range(d, &p, &t_lo, &t_hi);
    const double smin = p.sigma_min > 0 ? p.sigma_min : exp(-dfn_denoiser_lambda(d, t_lo));
    const double smax = p.sigma_max > 0 ? p.sigma_max : exp(-dfn_denoiser_lambda(d, t_hi));
    const int N = p.steps;
    double *sig = dfn_malloc(((size_t)N + 1) * sizeof(double));
    st = dfn_sigmas_karras(sig, N, smin, smax, p.rho); /* eq. 5 */
    if (st != DFN_OK || !(p.s_churn >= 0.0 && p.s_noise >= 0.0)) {
        free(sig);
        return st != DFN_OK ? st
                            : dfn_set_error(DFN_ERR_ARG, "%s: s_churn = %g, s_noise = %g, need >= 0",
                                            name, p.s_churn, p.s_noise);
    }
    sig[N] = 0.0;
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *den = dfn_malloc(n * sizeof(float)), *dx = dfn_malloc(n * sizeof(float));
    float *tmp = dfn_malloc(n * sizeof(float)), *xn = dfn_malloc(n * sizeof(float));
    /* x~ starts at N(0, sigma_max^2 I) (alg. 2 line 1), or at the caller's x / alpha */
    double a0;
    dfn_denoiser_marginal(d, dfn_denoiser_t_from_lambda(d, -log(sig[0])), &a0, NULL);
    if (p.from_x && p.strength >= 1.0)
        for (size_t i = 0; i < n; i++) x[i] = (float)(x[i] / a0);
    /* x~ = x0 + sigma~ eps: the level (1, sigma~) in the scaled variables; the
     * constraint in the process's */
    dfn_sampler_params unconstrained = p;
    unconstrained.constraint = NULL;
    dfn_sampler_start(&unconstrained, x, batch, dim, 1.0, sig[0], sig[0], rng);
    constrain_scaled(d, &p, x, sig[0], batch, dim);
    for (int i = 0; i < N; i++) {
        /* churn (lines 4-6): gamma_i = min(S_churn/N, sqrt 2 - 1) inside [S_tmin, S_tmax] */
        const double gamma = (sig[i] >= p.s_tmin && sig[i] <= p.s_tmax)
                                 ? fmin(p.s_churn / N, sqrt(2.0) - 1.0) : 0.0;
        const double sh = sig[i] * (1.0 + gamma);
        if (gamma > 0.0) dfn_sampler_add_noise(x, tmp, n, p.s_noise * sqrt(sh * sh - sig[i] * sig[i]), rng);
        /* Euler (lines 7-8): d = (x^ - D(x^, sigma^)) / sigma^ */
        edm_denoise(d, &p, den, tmp, x, sh, batch, dim);
        for (size_t k = 0; k < n; k++) {
            dx[k] = (float)((x[k] - den[k]) / sh);
            xn[k] = (float)(x[k] + (sig[i + 1] - sh) * dx[k]);
        }
        if (heun && sig[i + 1] > 0.0) { /* 2nd-order correction (lines 9-11) */
            edm_denoise(d, &p, den, tmp, xn, sig[i + 1], batch, dim);
            for (size_t k = 0; k < n; k++) {
                double d2 = (xn[k] - den[k]) / sig[i + 1];
                xn[k] = (float)(x[k] + (sig[i + 1] - sh) * 0.5 * (dx[k] + d2));
            }
        }
        memcpy(x, xn, n * sizeof(float));
        constrain_scaled(d, &p, x, sig[i + 1], batch, dim);
        /* report x in the process's coordinates */
        double t_next = sig[i + 1] > 0 ? dfn_denoiser_t_from_lambda(d, -log(sig[i + 1])) : t_lo, a;
        dfn_denoiser_marginal(d, t_next, &a, NULL);
        if (sig[i + 1] == 0.0) a = 1.0;
        for (size_t k = 0; k < n; k++) tmp[k] = (float)(a * x[k]);
        if ((st = dfn_sampler_step(&p, name, i + 1, N, t_next, tmp, den, batch, dim)) != DFN_OK) break;
    }
    free(sig);
    free(den);
    free(dx);
    free(tmp);
    free(xn);
    dfn_sampler_report(stats, d, nfe0, N, 0);
    return st;
}

dfn_status dfn_sample_karras_euler(dfn_denoiser *d, float *x, int batch, size_t dim,
                                   const dfn_sampler_params *p, dfn_rng *rng,
                                   dfn_sample_stats *stats) {
    return karras("euler", 0, d, x, batch, dim, p, rng, stats);
}

dfn_status dfn_sample_karras_heun(dfn_denoiser *d, float *x, int batch, size_t dim,
                                  const dfn_sampler_params *p, dfn_rng *rng,
                                  dfn_sample_stats *stats) {
    return karras("heun", 1, d, x, batch, dim, p, rng, stats);
}

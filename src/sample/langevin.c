/* langevin.c - Langevin dynamics with a score, plain and annealed (Song & Ermon
 * 2019, "Generative modeling by estimating gradients of the data distribution"). */
#include <math.h>
#include <string.h>

#include "sample/sample.h"

/* Langevin dynamics (Song & Ermon 2019 eq. 4; Welling & Teh 2011):
 * x <- x + c grad log p(x) + sqrt(2c) z, at the process's lowest noise level. */
dfn_status dfn_sample_langevin(dfn_denoiser *d, float *x, int batch, size_t dim,
                               const dfn_sampler_params *in, dfn_rng *rng,
                               dfn_sample_stats *stats) {
    dfn_sampler_params p;
    const unsigned fits = DFN_FITS_DISCRETE | DFN_FITS_VP | DFN_FITS_SUBVP | DFN_FITS_VE;
    dfn_status st = dfn_sampler_begin("langevin", d, x, batch, dim, in, &p, fits, 1000);
    if (st != DFN_OK) return st;
    if (p.strength < 1.0)
        return dfn_set_error(DFN_ERR_ARG, "langevin: strength = %g; plain Langevin runs at one "
                                          "noise level, so it has no SDEdit start (use ddim, "
                                          "dpm++2m, euler-maruyama, ...)",
                             p.strength);
    if (!(p.langevin_c > 0.0 && isfinite(p.langevin_c)))
        return dfn_set_error(DFN_ERR_ARG, "langevin: step c = %g, need c > 0", p.langevin_c);
    double t, t_hi;
    dfn_denoiser_t_range(d, p.t_end, &t, &t_hi);
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *score = dfn_malloc(n * sizeof(float)), *z = dfn_malloc(n * sizeof(float));
    double a, s;
    dfn_denoiser_marginal(d, t, &a, &s);
    dfn_sampler_start(&p, x, batch, dim, a, s, dfn_denoiser_prior_std(d), rng);
    const double c = p.langevin_c;
    for (int k = 0; k < p.steps; k++) {
        dfn_denoiser_eval(d, score, DFN_PRED_SCORE, x, t, batch, dim);
        for (size_t i = 0; i < n; i++) x[i] = (float)(x[i] + c * score[i]);
        dfn_sampler_add_noise(x, z, n, sqrt(2.0 * c), rng);
        dfn_sampler_constrain(&p, x, a, s, batch, dim);
        if ((st = dfn_sampler_step(&p, "langevin", k + 1, p.steps, t, x, NULL, batch, dim)) != DFN_OK) {
            double alpha, sigma;
            dfn_denoiser_marginal(d, t, &alpha, &sigma);
            st = dfn_set_error(st,
                               "%s: the step c = %g is too large for the score at this noise level "
                               "(sigma = %.2g: |score| grows as 1/sigma^2 near the data); plain "
                               "Langevin needs c well below sigma^2 = %.2g here, or use the "
                               "annealed Langevin (VE) or reverse-SDE samplers (euler-maruyama, pc)",
                               dfn_last_error(), c, sigma, sigma * sigma);
            break;
        }
    }
    if (st == DFN_OK) st = dfn_sampler_denoise_final(d, &p, "langevin", x, t, batch, dim);
    free(score);
    free(z);
    dfn_sampler_report(stats, d, nfe0, p.steps, 0);
    return st;
}

/* Annealed Langevin dynamics (Song & Ermon 2019 alg. 1): for sigma_1 > ... > sigma_L
 * (geometric), alpha_i = eps sigma_i^2 / sigma_L^2, T steps of
 * x <- x + alpha_i/2 s(x, sigma_i) + sqrt(alpha_i) z; then, with denoise_final,
 * x <- x + sigma_L^2 s(x, sigma_L) = E[x0 | x] (Jolicoeur-Martineau et al. 2021). */
dfn_status dfn_sample_annealed_langevin(dfn_denoiser *d, float *x, int batch, size_t dim,
                                        const dfn_sampler_params *in, dfn_rng *rng,
                                        dfn_sample_stats *stats) {
    dfn_sampler_params p;
    const int default_steps = in ? in->levels * in->steps_per_level : 1000;
    dfn_status st = dfn_sampler_begin("annealed-langevin", d, x, batch, dim, in, &p, DFN_FITS_VE,
                                 default_steps > 0 ? default_steps : 1);
    if (st != DFN_OK) return st;
    if (p.levels < 1 || p.steps_per_level < 1)
        return dfn_set_error(DFN_ERR_ARG, "annealed-langevin: levels = %d, steps_per_level = %d, "
                                          "need >= 1",
                             p.levels, p.steps_per_level);
    if (!(p.langevin_eps > 0.0 && isfinite(p.langevin_eps)))
        return dfn_set_error(DFN_ERR_ARG, "annealed-langevin: eps = %g, need > 0", p.langevin_eps);
    const double smin = p.level_sigma_min > 0 ? p.level_sigma_min : d->sde->sigma_min;
    const double smax = p.level_sigma_max > 0 ? p.level_sigma_max : d->sde->sigma_max;
    double *sig = dfn_malloc((size_t)p.levels * sizeof(double));
    st = dfn_sigmas_geometric(sig, p.levels, smin, smax);
    if (st != DFN_OK) {
        free(sig);
        return st;
    }
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *score = dfn_malloc(n * sizeof(float)), *z = dfn_malloc(n * sizeof(float));
    /* an SDEdit start: the last round(strength * levels) levels */
    const int first = p.levels - dfn_sampler_scaled(p.levels, p.strength);
    dfn_sampler_start(&p, x, batch, dim, 1.0, sig[first], sig[first], rng);
    const int total = (p.levels - first) * p.steps_per_level;
    double t = 1.0;
    for (int i = first; i < p.levels && st == DFN_OK; i++) {
        t = dfn_denoiser_t_from_lambda(d, -log(sig[i])); /* VE: sigma(t) = sigma_i */
        const double a = p.langevin_eps * sig[i] * sig[i] / (sig[p.levels - 1] * sig[p.levels - 1]);
        for (int k = 0; k < p.steps_per_level; k++) {
            dfn_denoiser_eval(d, score, DFN_PRED_SCORE, x, t, batch, dim);
            for (size_t j = 0; j < n; j++) x[j] = (float)(x[j] + 0.5 * a * score[j]);
            dfn_sampler_add_noise(x, z, n, sqrt(a), rng);
            dfn_sampler_constrain(&p, x, 1.0, sig[i], batch, dim);
            st = dfn_sampler_step(&p, "annealed-langevin", (i - first) * p.steps_per_level + k + 1, total, t, x,
                                  NULL, batch, dim);
            if (st != DFN_OK) break;
        }
    }
    if (st == DFN_OK) st = dfn_sampler_denoise_final(d, &p, "annealed-langevin", x, t, batch, dim);
    free(sig);
    free(score);
    free(z);
    dfn_sampler_report(stats, d, nfe0, total, 0);
    return st;
}

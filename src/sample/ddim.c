/* ddim.c - DDIM (Song, Meng & Ermon 2021): eq. 12 over S <= T steps, and its
 * deterministic inversion (eta = 0). */
#include <math.h>
#include <string.h>

#include "sample/sample.h"

dfn_status dfn_spacing_timesteps(int *steps, int S, int T, dfn_spacing spacing) {
    DFN_ASSERT(steps != NULL);
    if (S < 1 || S > T)
        return dfn_set_error(DFN_ERR_ARG, "ddim: steps = %d, need 1 <= steps <= T = %d", S, T);
    for (int j = 0; j < S; j++) { /* diffusers' DDIMScheduler.set_timesteps, descending */
        switch (spacing) {
        case DFN_SPACING_LEADING: steps[j] = (S - 1 - j) * (T / S); break;
        case DFN_SPACING_TRAILING: steps[j] = (int)nearbyint(T - j * ((double)T / S)) - 1; break;
        case DFN_SPACING_LINSPACE:
            steps[j] = S == 1 ? 0 : (int)nearbyint((S - 1 - j) * ((double)(T - 1) / (S - 1)));
            break;
        default:
            return dfn_set_error(DFN_ERR_ARG, "ddim: spacing %d is not a dfn_spacing (known: "
                                              "leading, trailing, linspace)",
                                 (int)spacing);
        }
    }
    return DFN_OK;
}

/* Checks and the time steps (malloc'ed) for ddim and its inversion. */
static dfn_status ddim_begin(const char *name, dfn_denoiser *d, const float *x, int batch,
                             size_t dim, const dfn_sampler_params *in, dfn_sampler_params *p,
                             int **steps) {
    *steps = NULL;
    dfn_status st = dfn_sampler_begin(name, d, x, batch, dim, in, p, DFN_FITS_DISCRETE, 50);
    if (st != DFN_OK) return st;
    if (!(p->eta >= 0.0 && isfinite(p->eta)))
        return dfn_set_error(DFN_ERR_ARG, "%s: eta = %g, need eta >= 0", name, p->eta);
    /* an SDEdit start runs the spacing over the first strength * T steps */
    const int T = dfn_sampler_scaled(d->schedule->T, p->strength);
    if (p->steps > T)
        return dfn_set_error(DFN_ERR_ARG, "%s: steps = %d, more than the schedule's T = %d%s", name,
                             p->steps, T, p->strength < 1.0 ? " (scaled by the strength)" : "");
    *steps = dfn_malloc((size_t)p->steps * sizeof(int));
    st = dfn_spacing_timesteps(*steps, p->steps, T, p->spacing);
    if (st != DFN_OK) {
        free(*steps);
        *steps = NULL;
    }
    return st;
}

dfn_status dfn_sample_ddim(dfn_denoiser *d, float *x, int batch, size_t dim,
                           const dfn_sampler_params *in, dfn_rng *rng, dfn_sample_stats *stats) {
    dfn_sampler_params p;
    int *ts;
    dfn_status st = ddim_begin("ddim", d, x, batch, dim, in, &p, &ts);
    if (st != DFN_OK) return st;
    const double *ab = d->schedule->alpha_bar;
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *x0 = dfn_malloc(n * sizeof(float)), *eps = dfn_malloc(n * sizeof(float));
    dfn_sampler_start(&p, x, batch, dim, sqrt(ab[ts[0]]), sqrt(1.0 - ab[ts[0]]), 1.0, rng);
    for (int j = 0; j < p.steps; j++) {
        const int t = ts[j];
        const double a_t = ab[t], a_prev = j + 1 < p.steps ? ab[ts[j + 1]] : 1.0;
        dfn_sampler_eval_x0_eps(d, x0, eps, x, t, batch, dim);
        if (p.clip_x0 || p.dynamic_threshold) { /* eps consistent with the clipped x0 */
            dfn_sampler_postprocess_x0(&p, x0, batch, dim);
            dfn_prediction_convert(eps, DFN_PRED_EPS, x0, DFN_PRED_X0, x, sqrt(a_t),
                                   sqrt(1.0 - a_t), n);
        }
        /* eq. 16: sigma_t = eta sqrt((1 - abar_prev)/(1 - abar_t)) sqrt(1 - abar_t/abar_prev) */
        const double sig = p.eta * sqrt((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev));
        const double cx = sqrt(a_prev), ce = sqrt(fmax(0.0, 1.0 - a_prev - sig * sig));
        /* eq. 12: x_prev = sqrt(abar_prev) x0^ + sqrt(1 - abar_prev - sigma^2) eps + sigma z */
        for (size_t k = 0; k < n; k++) x[k] = (float)(cx * x0[k] + ce * eps[k]);
        if (sig > 0.0) dfn_sampler_add_noise(x, eps, n, sig, rng);
        dfn_sampler_constrain(&p, x, cx, sqrt(1.0 - a_prev), batch, dim);
        if ((st = dfn_sampler_step(&p, "ddim", j + 1, p.steps, t, x, x0, batch, dim)) != DFN_OK) break;
    }
    free(x0);
    free(eps);
    free(ts);
    dfn_sampler_report(stats, d, nfe0, p.steps, 0);
    return st;
}

dfn_status dfn_ddim_invert(dfn_denoiser *d, float *x, int batch, size_t dim,
                           const dfn_sampler_params *in, dfn_sample_stats *stats) {
    dfn_sampler_params p;
    int *ts;
    if (in && in->strength != 1.0)
        return dfn_set_error(DFN_ERR_ARG, "ddim inversion: strength = %g; inversion runs the "
                                          "whole range (strength 1)", in->strength);
    dfn_status st = ddim_begin("ddim inversion", d, x, batch, dim, in, &p, &ts);
    if (st != DFN_OK) return st;
    const double *ab = d->schedule->alpha_bar;
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *eps = dfn_malloc(n * sizeof(float));
    /* Eq. 12 with eta = 0 run upwards, the ODE of eq. 14 integrated forward:
     * from level abar_from to abar_to, eps taken at the current x and the
     * destination step (as diffusers' DDIMInverseScheduler), since the data
     * level abar = 1 is never a network input. */
    for (int j = p.steps - 1; j >= 0; j--) {
        const int t = ts[j];
        const double a_from = j + 1 < p.steps ? ab[ts[j + 1]] : 1.0, a_to = ab[t];
        dfn_denoiser_eval(d, eps, DFN_PRED_EPS, x, t, batch, dim);
        for (size_t k = 0; k < n; k++) {
            double x0 = (x[k] - sqrt(1.0 - a_from) * eps[k]) / sqrt(a_from);
            x[k] = (float)(sqrt(a_to) * x0 + sqrt(1.0 - a_to) * eps[k]);
        }
        st = dfn_sampler_step(&p, "ddim inversion", p.steps - j, p.steps, t, x, NULL, batch, dim);
        if (st != DFN_OK) break;
    }
    free(eps);
    free(ts);
    dfn_sampler_report(stats, d, nfe0, p.steps, 0);
    return st;
}

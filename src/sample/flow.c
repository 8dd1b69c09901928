/* flow.c - rectified flow (Liu et al. 2023, "Flow straight and fast"): the ODE
 * dx/dt = v(x, t) of eq. 1 with the project's convention x_t = (1 - t) x0 + t eps,
 * v = eps - x0, integrated by Euler from t = 1 (noise) to t = 0 (data). */
#include <math.h>
#include <string.h>

#include "sample/sample.h"

dfn_status dfn_flow_check_prediction(const char *name, const dfn_denoiser *d) {
    if (!d->sde || d->sde->kind != DFN_SDE_FLOW) return DFN_OK;
    /* the first step needs the velocity at t = 1, where alpha = 1 - t = 0: from an
     * eps or score prediction, x0 = (x - t eps) / (1 - t) is not defined there */
    if (d->kind == DFN_PRED_EPS || d->kind == DFN_PRED_SCORE)
        return dfn_set_error(DFN_ERR_ARG,
                             "%s: a model predicting %s cannot give the velocity at t = 1 "
                             "(x0 = (x - t eps) / (1 - t) divides by 0 there); train the flow "
                             "process to predict flow (its default), v or x0",
                             name, dfn_prediction_name(d->kind));
    return DFN_OK;
}

dfn_status dfn_sample_flow_euler(dfn_denoiser *d, float *x, int batch, size_t dim,
                                 const dfn_sampler_params *in, dfn_rng *rng,
                                 dfn_sample_stats *stats) {
    dfn_sampler_params p;
    dfn_status st = dfn_sampler_begin("flow-euler", d, x, batch, dim, in, &p, DFN_FITS_FLOW, 50);
    if (st != DFN_OK) return st;
    if ((st = dfn_flow_check_prediction("flow-euler", d)) != DFN_OK) return st;
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *v = dfn_malloc(n * sizeof(float));
    double t_lo, t_hi, a, s; /* [0, 1], or [0, strength] for an SDEdit start */
    dfn_sampler_t_range(d, &p, &t_lo, &t_hi);
    dfn_denoiser_marginal(d, t_hi, &a, &s);
    dfn_sampler_start(&p, x, batch, dim, a, s, 1.0, rng); /* x_1 = eps ~ N(0, I) */
    for (int i = 0; i < p.steps; i++) {
        const double t = t_hi + (double)i / p.steps * (t_lo - t_hi), dt = (t_lo - t_hi) / p.steps;
        dfn_denoiser_eval(d, v, DFN_PRED_FLOW, x, t, batch, dim);
        for (size_t k = 0; k < n; k++) x[k] = (float)(x[k] + dt * v[k]);
        dfn_denoiser_marginal(d, t + dt, &a, &s);
        dfn_sampler_constrain(&p, x, a, s, batch, dim);
        if ((st = dfn_sampler_step(&p, "flow-euler", i + 1, p.steps, t + dt, x, NULL, batch, dim)) != DFN_OK)
            break;
    }
    free(v);
    dfn_sampler_report(stats, d, nfe0, p.steps, 0);
    return st;
}

/* Liu et al. 2023 eq. 8 on the Euler path: with x_1 the start and x_0 the end,
 * x_1 - x_0 = sum_i v_i dt = the mean velocity (dt = 1/N), so
 * S = 1/N sum_i ||v_i - mean v||^2: the spread of the velocities along each path,
 * accumulated as 1/N sum_i ||v_i||^2 - ||mean v||^2, both in double. */
dfn_status dfn_flow_straightness(dfn_denoiser *d, float *x, int batch, size_t dim, int steps,
                                 dfn_rng *rng, double *straightness) {
    DFN_ASSERT(d && x && rng && straightness);
    if (!d->sde || d->sde->kind != DFN_SDE_FLOW)
        return dfn_set_error(DFN_ERR_ARG, "straightness: a rectified flow is needed (this model's "
                                          "process is %s)",
                             d->sde ? dfn_sde_kind_name(d->sde->kind) : "a discrete schedule");
    if (steps < 2 || batch < 1 || dim < 1)
        return dfn_set_error(DFN_ERR_ARG, "straightness: %d steps, batch %d (need >= 2 steps: one "
                                          "Euler step is straight by construction; batch >= 1)",
                             steps, batch);
    dfn_status st = dfn_flow_check_prediction("straightness", d);
    if (st != DFN_OK) return st;
    const size_t n = (size_t)batch * dim;
    float *v = dfn_malloc(n * sizeof(float));
    double *mean = dfn_calloc(n, sizeof(double));
    dfn_rng_normal(rng, x, n);
    double sq = 0;
    for (int i = 0; i < steps; i++) {
        const double t = 1.0 - (double)i / steps, dt = -1.0 / steps;
        dfn_denoiser_eval(d, v, DFN_PRED_FLOW, x, t, batch, dim);
        for (size_t k = 0; k < n; k++) {
            sq += (double)v[k] * v[k];
            mean[k] += (double)v[k] / steps;
            x[k] = (float)(x[k] + dt * v[k]);
        }
    }
    double chord = 0;
    for (size_t k = 0; k < n; k++) chord += mean[k] * mean[k];
    *straightness = (sq / steps - chord) / (double)n;
    free(v);
    free(mean);
    return DFN_OK;
}

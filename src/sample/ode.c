/* ode.c - the probability-flow ODE (Song et al. 2021 eq. 13)
 *     dx/dt = f(t) x - 1/2 g(t)^2 grad log p_t(x) = f x + g^2 / (2 sigma) eps(x, t),
 * from t = 1 to t_end, by Euler, Heun, classical RK4 (uniform steps in t), and
 * Dormand-Prince 5(4) with step control (Dormand & Prince 1980; Hairer, Norsett
 * & Wanner 1993 II.4), as score_sde's ode_sampler does with scipy's RK45.
 * For rectified flow the ODE is dx/dt = v itself (f x + g^2 / (2 sigma) eps
 * = (eps - x) / (1 - t) = eps - x0 = v, without the 0/0 at t = 1), so Heun,
 * RK4 and RK45 integrate a flow model as flow-euler does with Euler. */
#include <math.h>
#include <string.h>

#include "sample/rk45.h"
#include "sample/sample.h"

/* and a discrete schedule, as the VP SDE of dfn_denoiser_coefficients */
#define SDE_FITS (DFN_FITS_DISCRETE | DFN_FITS_VP | DFN_FITS_SUBVP | DFN_FITS_VE | DFN_FITS_FLOW)

/* k = dx/dt at (x, t): one evaluation. */
static void drift(dfn_denoiser *d, float *k, const float *x, double t, int batch, size_t dim) {
    if (d->sde && d->sde->kind == DFN_SDE_FLOW) { /* dx/dt = v */
        dfn_denoiser_eval(d, k, DFN_PRED_FLOW, x, t, batch, dim);
        return;
    }
    double f, g, a, s;
    dfn_denoiser_coefficients(d, t, &f, &g);
    dfn_denoiser_marginal(d, t, &a, &s);
    dfn_denoiser_eval(d, k, DFN_PRED_EPS, x, t, batch, dim);
    for (size_t i = 0; i < (size_t)batch * dim; i++) k[i] = (float)(f * x[i] + g * g / (2.0 * s) * k[i]);
}

/* y = x + h sum_j c_j k_j (c: m coefficients, k: m arrays of n). */
static void axpy_n(float *y, const float *x, double h, const double *c, float *const *k, int m,
                   size_t n) {
    for (size_t i = 0; i < n; i++) {
        double acc = 0.0;
        for (int j = 0; j < m; j++)
            if (c[j] != 0.0) acc += c[j] * k[j][i];
        y[i] = (float)(x[i] + h * acc);
    }
}

/* Fixed-step solvers: stages of an explicit Runge-Kutta tableau (Butcher 2016). */
typedef struct {
    int stages;
    double a[4][4], b[4], c[4];
} tableau;

static const tableau EULER = {1, {{0}}, {1}, {0}};
static const tableau HEUN = {2, {{0}, {1}}, {0.5, 0.5}, {0, 1}};
static const tableau RK4 = {4, {{0}, {0.5}, {0, 0.5}, {0, 0, 1}},
                            {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6}, {0, 0.5, 0.5, 1}};

static dfn_status ode_fixed(const char *name, const tableau *tb, dfn_denoiser *d, float *x,
                            int batch, size_t dim, const dfn_sampler_params *in, dfn_rng *rng,
                            dfn_sample_stats *stats) {
    dfn_sampler_params p;
    dfn_status st = dfn_sampler_begin(name, d, x, batch, dim, in, &p, SDE_FITS, 100);
    if (st == DFN_OK) st = dfn_flow_check_prediction(name, d);
    if (st != DFN_OK) return st;
    double t_lo, t_hi;
    dfn_sampler_t_range(d, &p, &t_lo, &t_hi);
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *k[4], *y = dfn_malloc(n * sizeof(float));
    for (int j = 0; j < tb->stages; j++) k[j] = dfn_malloc(n * sizeof(float));
    double a, s;
    dfn_denoiser_marginal(d, t_hi, &a, &s);
    dfn_sampler_start(&p, x, batch, dim, a, s, dfn_denoiser_prior_std(d), rng);
    const double h = (t_lo - t_hi) / p.steps;
    for (int i = 0; i < p.steps; i++) {
        const double t = t_hi + i * h;
        for (int j = 0; j < tb->stages; j++) {
            axpy_n(y, x, h, tb->a[j], k, j, n);
            drift(d, k[j], j ? y : x, t + tb->c[j] * h, batch, dim);
        }
        axpy_n(x, x, h, tb->b, k, tb->stages, n);
        dfn_denoiser_marginal(d, t + h, &a, &s);
        dfn_sampler_constrain(&p, x, a, s, batch, dim);
        if ((st = dfn_sampler_step(&p, name, i + 1, p.steps, t + h, x, NULL, batch, dim)) != DFN_OK) break;
    }
    if (st == DFN_OK) st = dfn_sampler_denoise_final(d, &p, name, x, t_lo, batch, dim);
    for (int j = 0; j < tb->stages; j++) free(k[j]);
    free(y);
    dfn_sampler_report(stats, d, nfe0, p.steps, 0);
    return st;
}

dfn_status dfn_sample_ode_euler(dfn_denoiser *d, float *x, int batch, size_t dim,
                                const dfn_sampler_params *p, dfn_rng *rng,
                                dfn_sample_stats *stats) {
    return ode_fixed("ode-euler", &EULER, d, x, batch, dim, p, rng, stats);
}
dfn_status dfn_sample_ode_heun(dfn_denoiser *d, float *x, int batch, size_t dim,
                               const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats) {
    return ode_fixed("ode-heun", &HEUN, d, x, batch, dim, p, rng, stats);
}
dfn_status dfn_sample_ode_rk4(dfn_denoiser *d, float *x, int batch, size_t dim,
                              const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats) {
    return ode_fixed("ode-rk4", &RK4, d, x, batch, dim, p, rng, stats);
}

/* The probability-flow drift as an rk45_rhs. */
typedef struct {
    dfn_denoiser *d;
    int batch;
    size_t dim;
    const dfn_sampler_params *p;
} rk45_ctx;

static void rk45_drift(void *ctx, float *k, const float *x, double t) {
    rk45_ctx *c = ctx;
    drift(c->d, k, x, t, c->batch, c->dim);
}

static dfn_status rk45_progress(void *ctx, int accepted, double t, float *x) {
    rk45_ctx *c = ctx;
    double a, s;
    dfn_denoiser_marginal(c->d, t, &a, &s);
    dfn_sampler_constrain(c->p, x, a, s, c->batch, c->dim);
    return dfn_sampler_step(c->p, "ode-rk45", accepted, 0, t, x, NULL, c->batch, c->dim);
}

/* Dormand-Prince 5(4) from t = 1 to t_end by the shared stepper (rk45.c). The
 * error norm is the RMS over the whole batch (one ODE, as score_sde flattens
 * the batch for scipy). */
dfn_status dfn_sample_ode_rk45(dfn_denoiser *d, float *x, int batch, size_t dim,
                               const dfn_sampler_params *in, dfn_rng *rng,
                               dfn_sample_stats *stats) {
    dfn_sampler_params p;
    dfn_status st = dfn_sampler_begin("ode-rk45", d, x, batch, dim, in, &p, SDE_FITS, 1);
    if (st == DFN_OK) st = dfn_flow_check_prediction("ode-rk45", d);
    if (st != DFN_OK) return st;
    if (!(p.rtol > 0.0 && p.atol > 0.0) || p.max_steps < 1)
        return dfn_set_error(DFN_ERR_ARG, "ode-rk45: rtol = %g, atol = %g, max_steps = %d: need "
                                          "positive tolerances and max_steps >= 1",
                             p.rtol, p.atol, p.max_steps);
    double t_lo, t_hi;
    dfn_sampler_t_range(d, &p, &t_lo, &t_hi);
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    double a, s;
    dfn_denoiser_marginal(d, t_hi, &a, &s);
    dfn_sampler_start(&p, x, batch, dim, a, s, dfn_denoiser_prior_std(d), rng);
    rk45_ctx c = {d, batch, dim, &p};
    rk45_options o = {p.rtol, p.atol, p.max_steps, rk45_progress, &c, p.constraint != NULL};
    int accepted = 0, rejected = 0;
    st = dfn_rk45_integrate("ode-rk45", rk45_drift, &c, x, n, t_hi, t_lo, &o, &accepted, &rejected);
    if (st == DFN_OK) st = dfn_sampler_denoise_final(d, &p, "ode-rk45", x, t_lo, batch, dim);
    dfn_sampler_report(stats, d, nfe0, accepted, rejected);
    return st;
}

/* ode.c - the probability-flow ODE (Song et al. 2021 eq. 13)
 *     dx/dt = f(t) x - 1/2 g(t)^2 grad log p_t(x) = f x + g^2 / (2 sigma) eps(x, t),
 * from t = 1 to t_end, by Euler, Heun, classical RK4 (uniform steps in t), and
 * Dormand-Prince 5(4) with step control (Dormand & Prince 1980; Hairer, Norsett
 * & Wanner 1993 II.4), as score_sde's ode_sampler does with scipy's RK45. */
#include <math.h>
#include <string.h>

#include "sample.h"

#define SDE_FITS (DFN_FITS_VP | DFN_FITS_SUBVP | DFN_FITS_VE)

/* k = dx/dt at (x, t): one evaluation. */
static void drift(dfn_denoiser *d, float *k, const float *x, double t, int batch, size_t dim) {
    double f, g, a, s;
    dfn_sde_coefficients(d->sde, t, &f, &g);
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
    dfn_status st = sample_begin(name, d, x, batch, dim, in, &p, SDE_FITS, 100);
    if (st != DFN_OK) return st;
    double t_lo, t_hi;
    dfn_denoiser_t_range(d, p.t_end, &t_lo, &t_hi);
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *k[4], *y = dfn_malloc(n * sizeof(float));
    for (int j = 0; j < tb->stages; j++) k[j] = dfn_malloc(n * sizeof(float));
    sample_prior(&p, x, n, dfn_sde_prior_std(d->sde), rng);
    const double h = (t_lo - t_hi) / p.steps;
    for (int i = 0; i < p.steps; i++) {
        const double t = t_hi + i * h;
        for (int j = 0; j < tb->stages; j++) {
            axpy_n(y, x, h, tb->a[j], k, j, n);
            drift(d, k[j], j ? y : x, t + tb->c[j] * h, batch, dim);
        }
        axpy_n(x, x, h, tb->b, k, tb->stages, n);
        sample_progress(&p, i + 1, p.steps, t + h, x, NULL, batch, dim);
    }
    sample_denoise_final(d, &p, x, t_lo, batch, dim);
    for (int j = 0; j < tb->stages; j++) free(k[j]);
    free(y);
    sample_report(stats, d, nfe0, p.steps, 0);
    return DFN_OK;
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

/* Dormand-Prince 5(4) (Hairer et al. 1993 table II.5.2): 7 stages, the last
 * one at the new point (first same as last), the 5th-order solution advances. */
static const double DP_C[7] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
static const double DP_A[7][6] = {
    {0},
    {1.0 / 5},
    {3.0 / 40, 9.0 / 40},
    {44.0 / 45, -56.0 / 15, 32.0 / 9},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}};
/* 5th minus 4th order weights: the local error estimate */
static const double DP_E[7] = {71.0 / 57600,  0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200,
                               22.0 / 525, -1.0 / 40};

dfn_status dfn_sample_ode_rk45(dfn_denoiser *d, float *x, int batch, size_t dim,
                               const dfn_sampler_params *in, dfn_rng *rng,
                               dfn_sample_stats *stats) {
    dfn_sampler_params p;
    dfn_status st = sample_begin("ode-rk45", d, x, batch, dim, in, &p, SDE_FITS, 1);
    if (st != DFN_OK) return st;
    if (!(p.rtol > 0.0 && p.atol > 0.0) || p.max_steps < 1)
        return dfn_set_error(DFN_ERR_ARG, "ode-rk45: rtol = %g, atol = %g, max_steps = %d: need "
                                          "positive tolerances and max_steps >= 1",
                             p.rtol, p.atol, p.max_steps);
    double t_lo, t_hi;
    dfn_denoiser_t_range(d, p.t_end, &t_lo, &t_hi);
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *k[7], *y = dfn_malloc(n * sizeof(float));
    for (int j = 0; j < 7; j++) k[j] = dfn_malloc(n * sizeof(float));
    sample_prior(&p, x, n, dfn_sde_prior_std(d->sde), rng);
    /* The error norm is the RMS over the whole batch (one ODE, as score_sde
     * flattens the batch for scipy); the step size follows Hairer et al. II.4
     * (safety 0.9, factor in [0.2, 10], exponent -1/5). */
    double t = t_hi, h = -0.01 * (t_hi - t_lo);
    drift(d, k[0], x, t, batch, dim);
    int accepted = 0, rejected = 0;
    while (t > t_lo) {
        if (accepted + rejected >= p.max_steps) {
            st = dfn_set_error(DFN_ERR_NUMERIC, "ode-rk45: %d steps without reaching t = %g "
                                                "(at t = %g); loosen rtol/atol or raise max_steps",
                               p.max_steps, t_lo, t);
            break;
        }
        const int last = t + h <= t_lo;
        if (last) h = t_lo - t;
        for (int j = 1; j < 7; j++) {
            axpy_n(y, x, h, DP_A[j], k, j, n);
            drift(d, k[j], y, t + DP_C[j] * h, batch, dim);
        }
        double err = 0.0; /* y holds the 5th-order solution (stage 7's point) */
        for (size_t i = 0; i < n; i++) {
            double e = 0.0;
            for (int j = 0; j < 7; j++) e += DP_E[j] * k[j][i];
            double sc = p.atol + p.rtol * fmax(fabs(x[i]), fabs(y[i]));
            err += (h * e / sc) * (h * e / sc);
        }
        err = sqrt(err / n);
        if (err <= 1.0) {
            t = last ? t_lo : t + h;
            memcpy(x, y, n * sizeof(float));
            float *tmp = k[0]; /* first same as last */
            k[0] = k[6];
            k[6] = tmp;
            accepted++;
            sample_progress(&p, accepted, 0, t, x, NULL, batch, dim);
        } else {
            rejected++;
        }
        double fac = err > 0.0 ? 0.9 * pow(err, -0.2) : 10.0;
        if (!(fac == fac)) fac = 0.2; /* NaN: shrink */
        h *= fmin(10.0, fmax(0.2, fac));
    }
    if (st == DFN_OK) sample_denoise_final(d, &p, x, t_lo, batch, dim);
    for (int j = 0; j < 7; j++) free(k[j]);
    free(y);
    sample_report(stats, d, nfe0, accepted, rejected);
    return st;
}

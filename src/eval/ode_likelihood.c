/* ode_likelihood.c - the exact log-likelihood of a diffusion model through its
 * probability-flow ODE (Song et al. 2021 eq. 13, appendix D.2; the
 * instantaneous change of variables of Chen et al. 2018 theorem 1):
 *     dx/dt = v(x, t),   d log p_t(x(t)) / dt = -tr(dv/dx),
 *     log p_{t_eps}(x(t_eps)) = log p_1(x(1)) + int_{t_eps}^1 tr(dv/dx) dt,
 * with the trace exactly (dim VJPs with basis vectors) or by Hutchinson's
 * estimator E[e^T J e] = tr J for probes with E[e e^T] = I (Hutchinson 1989;
 * Grathwohl et al. 2019, FFJORD), e^T J computed as a vector-Jacobian product.
 * The system [x, delta log p] is integrated by the shared Dormand-Prince stepper
 * (src/sample/rk45.c), as score_sde's likelihood.py does with scipy's RK45. */
#include <math.h>
#include <string.h>

#include "eval/eval.h"
#include "sample/rk45.h"

static const char *const divergence_names[DFN_DIVERGENCE_COUNT] = {"exact", "rademacher",
                                                                   "gaussian"};

const char *dfn_divergence_name(dfn_divergence div) {
    return dfn_name_of(divergence_names, DFN_DIVERGENCE_COUNT, (int)div);
}
int dfn_divergence_from_name(const char *name) {
    return dfn_name_lookup("divergence", name, divergence_names, DFN_DIVERGENCE_COUNT, NULL);
}

dfn_nll_params dfn_nll_params_init(void) {
    dfn_nll_params p;
    memset(&p, 0, sizeof(p));
    p.divergence = DFN_DIVERGENCE_RADEMACHER;
    p.probes = 1;
    p.draws = 1;
    p.rtol = 1e-5;
    p.atol = 1e-5;
    p.max_steps = 10000;
    p.t_eps = 0.0;
    p.dequantize = 0;
    return p;
}

/* The drift as v = cx x + cp pred(kind) at the integration variable tau, and
 * the denoiser's time t there:
 *   VP, sub-VP, VE (tau = t): v = f x - g^2/2 score = f x + g^2 / (2 sigma) eps
 *     (Song et al. 2021 eq. 13 with score = -eps/sigma);
 *   flow (tau = t): v is the flow prediction itself (Liu et al. 2023);
 *   a schedule: a VP process whose log SNR is linear between the steps
 *     (dfn_denoiser_marginal). For any x_t = alpha x0 + sigma eps the SDE with
 *     these marginals has f = d log alpha/dt, g^2 = -sigma^2 d log SNR/dt
 *     (Kingma et al. 2021 appendix A.1), which jump at every step in t. In
 *     tau = -log SNR, with alpha^2 = sigmoid(-tau), sigma^2 = sigmoid(tau),
 *     dx/dtau = -sigma^2/2 x + sigma/2 eps is smooth (kinks would cost the
 *     step control thousands of steps); t = dfn_denoiser_t_from_lambda(-tau/2). */
static void drift_coefficients(const dfn_denoiser *d, double tau, double *t,
                               dfn_prediction *kind, double *cx, double *cp) {
    if (d->schedule) {
        *t = dfn_denoiser_t_from_lambda(d, -0.5 * tau);
        const double s2 = 1.0 / (1.0 + exp(-tau)); /* sigma^2 = sigmoid(tau) */
        *kind = DFN_PRED_EPS;
        *cx = -0.5 * s2;
        *cp = 0.5 * sqrt(s2);
        return;
    }
    *t = tau;
    if (d->sde->kind == DFN_SDE_FLOW) {
        *kind = DFN_PRED_FLOW;
        *cx = 0.0;
        *cp = 1.0;
        return;
    }
    double a, s, f, g;
    dfn_denoiser_marginal(d, tau, &a, &s);
    dfn_sde_coefficients(d->sde, tau, &f, &g);
    *kind = DFN_PRED_EPS;
    *cx = f;
    *cp = g * g / (2.0 * s);
}

typedef struct {
    dfn_denoiser *d;
    int batch, P; /* points, rows per point (probes, or dim for the exact trace) */
    size_t dim;
    int exact;
    const float *v; /* (batch P, dim) probes */
    float *xrep, *pred, *jtv;
} ode_ctx;

/* k = [v(x, t) (batch, dim), tr(dv/dx) (batch)] for y = [x, delta]. */
static void ode_rhs(void *vctx, float *k, const float *y, double tau) {
    ode_ctx *c = vctx;
    const size_t D = c->dim, R = (size_t)c->batch * c->P;
    for (int b = 0; b < c->batch; b++)
        for (int p = 0; p < c->P; p++)
            memcpy(c->xrep + ((size_t)b * c->P + p) * D, y + (size_t)b * D, D * sizeof(float));
    dfn_prediction kind;
    double t, cx, cp;
    drift_coefficients(c->d, tau, &t, &kind, &cx, &cp);
    dfn_status st = dfn_denoiser_vjp(c->d, c->pred, c->jtv, kind, c->xrep, c->v, t, (int)R, D);
    DFN_ASSERT(st == DFN_OK); /* checked before integrating */
    for (int b = 0; b < c->batch; b++) {
        const float *xb = y + (size_t)b * D, *pb = c->pred + (size_t)b * c->P * D;
        for (size_t j = 0; j < D; j++) k[(size_t)b * D + j] = (float)(cx * xb[j] + cp * pb[j]);
        double tr = 0.0;
        for (int p = 0; p < c->P; p++) {
            const size_t r = ((size_t)b * c->P + p) * D;
            if (c->exact) {
                tr += c->jtv[r + p]; /* e_p^T J^T e_p = J_pp */
            } else {
                double e = 0.0;
                for (size_t j = 0; j < D; j++) e += (double)c->v[r + j] * c->jtv[r + j];
                tr += e / c->P;
            }
        }
        k[(size_t)c->batch * D + b] = (float)(cx * (double)D + cp * tr);
    }
}

dfn_status dfn_ode_nll(dfn_denoiser *d, const float *x, int batch, size_t dim,
                       const dfn_nll_params *in, dfn_rng *rng, double *nll, double *nll_se,
                       dfn_nll_result *res) {
    DFN_ASSERT(d && x && batch >= 1 && dim >= 1);
    dfn_nll_params p = in ? *in : dfn_nll_params_init();
    dfn_status st = dfn_denoiser_validate(d);
    if (st != DFN_OK) return st;
    if (!d->vjp)
        return dfn_set_error(DFN_ERR_ARG, "ode likelihood: the denoiser has no vector-Jacobian "
                                          "product (vjp); use dfn_model_denoiser or "
                                          "dfn_mixture_denoiser, or set d->vjp");
    if ((int)p.divergence < 0 || p.divergence >= DFN_DIVERGENCE_COUNT)
        return dfn_set_error(DFN_ERR_ARG, "ode likelihood: divergence %d is not a dfn_divergence",
                             (int)p.divergence);
    if (p.probes < 1 || p.draws < 1 || !(p.rtol > 0.0 && p.atol > 0.0) || p.max_steps < 1)
        return dfn_set_error(DFN_ERR_ARG, "ode likelihood: probes = %d, draws = %d, rtol = %g, "
                                          "atol = %g, max_steps = %d: need probes, draws, "
                                          "max_steps >= 1 and positive tolerances",
                             p.probes, p.draws, p.rtol, p.atol, p.max_steps);
    const int exact = p.divergence == DFN_DIVERGENCE_EXACT;
    DFN_ASSERT(rng || (exact && !p.dequantize));
    double t_lo, t_hi;
    if (d->schedule) {
        t_lo = p.t_eps > 0.0 ? p.t_eps : 0.0;
        t_hi = d->schedule->T - 1;
    } else {
        t_lo = p.t_eps;
        if (!(t_lo > 0.0)) t_lo = d->sde->kind == DFN_SDE_FLOW ? 1e-3 : 1e-5;
        t_hi = 1.0;
    }
    if (!(t_lo < t_hi) && !(d->schedule && d->schedule->T == 1 && t_lo == 0.0))
        return dfn_set_error(DFN_ERR_ARG, "ode likelihood: t_eps = %g is not below the end "
                                          "time %g",
                             p.t_eps, t_hi);
    st = dfn_eval_check_finite("ode likelihood: data", x, (size_t)batch, dim);
    if (st != DFN_OK) return st;
    const size_t n = (size_t)batch * dim;
    if (p.dequantize)
        for (size_t i = 0; i < n; i++)
            if (!(x[i] >= -1.0f && x[i] <= 1.0f))
                return dfn_set_error(DFN_ERR_ARG, "ode likelihood: dequantisation needs 8-bit "
                                                  "data in [-1, 1]; row %zu column %zu is %g",
                                     i / dim, i % dim, (double)x[i]);

    double tau_lo = t_lo, tau_hi = t_hi; /* a schedule: tau = -log SNR */
    if (d->schedule) {
        tau_lo = -2.0 * dfn_denoiser_lambda(d, t_lo);
        tau_hi = -2.0 * dfn_denoiser_lambda(d, t_hi);
    }
    const int P = exact ? (int)dim : p.probes;
    const size_t R = (size_t)batch * P;
    ode_ctx c = {d, batch, P, dim, exact, NULL, NULL, NULL, NULL};
    float *v = dfn_calloc(R * dim, sizeof(float));
    c.v = v;
    c.xrep = dfn_malloc(R * dim * sizeof(float));
    c.pred = dfn_malloc(R * dim * sizeof(float));
    c.jtv = dfn_malloc(R * dim * sizeof(float));
    float *y = dfn_malloc((n + batch) * sizeof(float));
    float *u = dfn_malloc((n + 1) * sizeof(float));
    double *vals = dfn_malloc((size_t)batch * p.draws * sizeof(double));
    if (exact)
        for (size_t r = 0; r < R; r++) v[r * dim + r % dim] = 1.0f;
    const double prior_std = d->sde ? dfn_sde_prior_std(d->sde) : 1.0;
    const double log_bin = p.dequantize ? (double)dim * log(127.5) : 0.0;
    const long nfe0 = d->nfe;
    int steps = 0, rejected = 0;
    rk45_options o = {p.rtol, p.atol, p.max_steps, NULL, NULL, 0};
    for (int k = 0; k < p.draws && st == DFN_OK; k++) {
        memcpy(y, x, n * sizeof(float));
        if (p.dequantize) { /* the bin of width 2/255 around each 8-bit value */
            dfn_rng_uniform(rng, u, n);
            for (size_t i = 0; i < n; i++) y[i] = (float)(y[i] + (u[i] - 0.5) * (2.0 / 255.0));
        }
        if (!exact) {
            dfn_rng_normal(rng, v, R * dim);
            if (p.divergence == DFN_DIVERGENCE_RADEMACHER)
                for (size_t i = 0; i < R * dim; i++) v[i] = v[i] < 0.0f ? -1.0f : 1.0f;
        }
        for (int b = 0; b < batch; b++) y[n + b] = 0.0f;
        int acc = 0, rej = 0;
        st = dfn_rk45_integrate("ode likelihood", ode_rhs, &c, y, n + batch, tau_lo, tau_hi, &o, &acc,
                            &rej);
        steps += acc;
        rejected += rej;
        for (int b = 0; b < batch && st == DFN_OK; b++) {
            double q = 0.0; /* log N(x(1); 0, prior_std^2 I) */
            for (size_t j = 0; j < dim; j++) q += (double)y[b * dim + j] * y[b * dim + j];
            const double log_prior = -0.5 * q / (prior_std * prior_std) -
                                     0.5 * dim * log(2.0 * 3.14159265358979323846 * prior_std * prior_std);
            vals[(size_t)b * p.draws + k] = -(log_prior + (double)y[n + b]) + log_bin;
        }
    }
    double sum = 0.0, sum2 = 0.0, var_est = 0.0;
    for (int b = 0; b < batch && st == DFN_OK; b++) {
        double m = 0.0, s2 = 0.0;
        for (int k = 0; k < p.draws; k++) m += vals[(size_t)b * p.draws + k];
        m /= p.draws;
        for (int k = 0; k < p.draws; k++) {
            const double e = vals[(size_t)b * p.draws + k] - m;
            s2 += e * e;
        }
        const double se = p.draws > 1 ? sqrt(s2 / (p.draws - 1) / p.draws) : 0.0;
        if (!isfinite(m)) {
            st = dfn_set_error(DFN_ERR_NUMERIC, "ode likelihood: the NLL of point %d is not "
                                                "finite (%g)",
                               b, m);
            break;
        }
        if (nll) nll[b] = m;
        if (nll_se) nll_se[b] = se;
        sum += m;
        sum2 += m * m;
        var_est += se * se;
    }
    if (res) {
        memset(res, 0, sizeof(*res));
        const double to_bpd = 1.0 / ((double)dim * log(2.0));
        const double mean = sum / batch;
        const double var = batch > 1 ? fmax(0.0, (sum2 - batch * mean * mean) / (batch - 1)) : 0.0;
        res->nll = mean;
        res->bpd = mean * to_bpd;
        res->bpd_se = sqrt(var / batch) * to_bpd;
        res->estimator_se = p.draws > 1 ? sqrt(var_est) / batch * to_bpd
                            : (exact && !p.dequantize) ? 0.0 : NAN;
        res->nfe = d->nfe - nfe0;
        res->steps = steps;
        res->rejected = rejected;
    }
    free(v);
    free(c.xrep);
    free(c.pred);
    free(c.jtv);
    free(y);
    free(u);
    free(vals);
    return st;
}

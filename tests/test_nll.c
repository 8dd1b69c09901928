/* test_nll.c - the exact likelihood through the probability-flow ODE, proven on
 * known densities:
 *   - the denoisers' VJPs (mixture: closed form; network: backward pass) against
 *     central finite differences, every prediction kind, guidance included;
 *     the network's parameter gradients are left as they were;
 *   - Hutchinson's estimator averages to the exact divergence (within 4
 *     standard errors over 4000 probes);
 *   - with the exact mixture denoiser, the ODE's log-likelihood with the exact
 *     divergence equals the true log density of the noised mixture at t_eps,
 *     log p_{t_eps}(x), within TOL_EXACT = 0.002 nats/dim per point, on a 2-D
 *     Gaussian mixture (VP, sub-VP, VE, flow, a discrete schedule) and a 5-D
 *     one with full covariances (VP, VE), both with mean 0; an off-centre
 *     mixture within TOL_PRIOR = 0.03 nats/dim (the prior N(0, I) is then off);
 *   - Hutchinson (8 draws per point) within 3 standard errors + 0.002 nats/dim
 *     of the truth on the batch mean;
 *   - dequantised 8-bit data: bits/dim = (-log p + dim log 127.5)/(dim ln 2);
 *   - bad input. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "test_util.h"

#define TOL_EXACT 2e-3 /* nats/dim, centred data */
#define TOL_PRIOR 0.03 /* nats/dim, data off centre (the prior mismatch) */

/* Means moved so that the mixture's mean is `centre` (weights w, or equal). */
static void centre_means(float *means, const float *w, int K, int D, float centre) {
    for (int j = 0; j < D; j++) {
        double mean = 0.0, wsum = 0.0;
        for (int k = 0; k < K; k++) {
            mean += (w ? w[k] : 1.0) * means[k * D + j];
            wsum += w ? w[k] : 1.0;
        }
        for (int k = 0; k < K; k++) means[k * D + j] += (float)(centre - mean / wsum);
    }
}

/* 2-D, three unequal components, the mixture's mean at (centre, centre). */
static dfn_mixture *mix2c(float centre) {
    float means[6] = {-1.0f, 0.5f, 1.0f, -0.5f, 0.2f, 1.2f};
    static const float stds[3] = {0.35f, 0.5f, 0.3f};
    static const float w[3] = {0.5f, 0.3f, 0.2f};
    centre_means(means, w, 3, 2, centre);
    dfn_mixture_params mp = {2, 3, w, means, NULL, stds};
    dfn_mixture *m;
    DFN_ASSERT(dfn_mixture_new(&m, &mp) == DFN_OK);
    return m;
}
static dfn_mixture *mix2(void) { return mix2c(0.0f); }

static dfn_mixture *mix5(void) { /* 5-D, two components with full covariances, mean 0 */
    float means[10], covs[50];
    for (int j = 0; j < 5; j++) {
        means[j] = 0.6f * (j % 2 ? 1.0f : -1.0f);
        means[5 + j] = -0.4f + 0.2f * j;
    }
    centre_means(means, NULL, 2, 5, 0.0f);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++)
                covs[k * 25 + i * 5 + j] = (i == j ? 0.3f + 0.1f * k : 0.0f) +
                                           (abs(i - j) == 1 ? (k ? -0.08f : 0.1f) : 0.0f);
    dfn_mixture_params mp = {5, 2, NULL, means, covs, NULL};
    dfn_mixture *m;
    DFN_ASSERT(dfn_mixture_new(&m, &mp) == DFN_OK);
    return m;
}

/* J^T v against central differences of <v, pred(x)>, directional: for random
 * u, u^T J^T v = d/de <v, pred(x + e u)>. */
static void check_vjp(const char *name, dfn_denoiser *d, int batch, int D, double t, double tol) {
    const size_t n = (size_t)batch * D;
    float *x = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    float *u = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    float *pred = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
    float *xp = malloc(n * sizeof(float)), *pp = malloc(n * sizeof(float));
    fill_uniform(x, n, 1);
    fill_uniform(v, n, 2);
    fill_uniform(u, n, 3);
    for (int kind = 0; kind < DFN_PRED_COUNT; kind++) {
        CHECK(dfn_denoiser_vjp(d, pred, out, (dfn_prediction)kind, x, v, t, batch, D) == DFN_OK,
              "%s: vjp: %s", name, dfn_last_error());
        dfn_denoiser_eval(d, ref, (dfn_prediction)kind, x, t, batch, D);
        check_tensor("vjp pred", pred, ref, n, 1e-6);
        double worst = 0.0, scale = 0.0;
        for (int b = 0; b < batch; b++) {
            double fd = 0.0, an = 0.0;
            const double h = 1e-2;
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                for (size_t i = 0; i < n; i++) xp[i] = (float)(x[i] + sgn * h * u[i]);
                dfn_denoiser_eval(d, pp, (dfn_prediction)kind, xp, t, batch, D);
                double dot = 0.0;
                for (int j = 0; j < D; j++) dot += (double)v[b * D + j] * pp[b * D + j];
                fd += sgn * dot / (2 * h);
            }
            for (int j = 0; j < D; j++) an += (double)u[b * D + j] * out[b * D + j];
            worst = fmax(worst, fabs(fd - an));
            scale = fmax(scale, fabs(fd));
        }
        CHECK(worst <= tol * fmax(1.0, scale), "%s kind %s: vjp vs finite difference: %.3g (scale %.3g)",
              name, dfn_prediction_name((dfn_prediction)kind), worst, scale);
    }
    free(x), free(v), free(u), free(out), free(pred), free(ref), free(xp), free(pp);
}

static void test_vjp(void) {
    dfn_mixture *m2 = mix2(), *m5 = mix5();
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP), ve = dfn_sde_init(DFN_SDE_VE);
    dfn_denoiser d;
    dfn_mixture_denoiser(&d, m2, DFN_PRED_EPS, NULL, &vp);
    check_vjp("mixture 2-D vp", &d, 6, 2, 0.3, 2e-3);
    dfn_mixture_denoiser(&d, m5, DFN_PRED_X0, NULL, &ve);
    check_vjp("mixture 5-D ve", &d, 4, 5, 0.5, 2e-3);
    dfn_sde flow = dfn_sde_init(DFN_SDE_FLOW);
    dfn_mixture_denoiser(&d, m2, DFN_PRED_FLOW, NULL, &flow);
    check_vjp("mixture 2-D flow t = 1", &d, 3, 2, 1.0, 2e-3);

    dfn_model_config cfg;
    dfn_model_config_init(&cfg, DFN_MODEL_MLP);
    cfg.mlp.dim = 3;
    cfg.mlp.width = 32;
    cfg.mlp.depth = 2;
    cfg.num_classes = 2;
    dfn_model *net;
    DFN_ASSERT(dfn_model_new(&net, &cfg, 5) == DFN_OK);
    const size_t np = dfn_model_num_params(net);
    float *g0 = malloc(np * sizeof(float));
    fill_uniform(dfn_model_grads(net), np, 9);
    memcpy(g0, dfn_model_grads(net), np * sizeof(float));
    dfn_model_denoiser(&d, net, DFN_PRED_V, NULL, &vp, 3, 1000.0);
    check_vjp("mlp vp (chunks of 3)", &d, 5, 3, 0.4, 1e-2);
    int labels[5] = {0, 1, 0, 1, 1};
    d.labels = labels;
    d.guidance = 2.5;
    check_vjp("mlp guided", &d, 5, 3, 0.4, 1e-2);
    CHECK(memcmp(g0, dfn_model_grads(net), np * sizeof(float)) == 0,
          "the network's gradients changed");
    free(g0);
    dfn_model_free(net);
    dfn_mixture_free(m2);
    dfn_mixture_free(m5);
}

/* Hutchinson: mean of v^T J v over many probes = tr J (exact: basis vectors). */
static void test_hutchinson_trace(void) {
    dfn_mixture *m = mix5();
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP);
    dfn_denoiser d;
    dfn_mixture_denoiser(&d, m, DFN_PRED_SCORE, NULL, &vp);
    const int D = 5, P = 4000;
    float x[5], e[25], out[25];
    fill_uniform(x, 5, 11);
    float *xs = malloc(sizeof(float) * P * D), *v = malloc(sizeof(float) * P * D),
          *o = malloc(sizeof(float) * P * D);
    float xr[25];
    for (int i = 0; i < D; i++) memcpy(xr + i * D, x, sizeof(x));
    memset(e, 0, sizeof(e));
    for (int i = 0; i < D; i++) e[i * D + i] = 1.0f;
    dfn_denoiser_vjp(&d, NULL, out, DFN_PRED_SCORE, xr, e, 0.3, D, D);
    double tr = 0.0;
    for (int i = 0; i < D; i++) tr += out[i * D + i];
    for (int type = 0; type < 2; type++) {
        dfn_rng rng = dfn_rng_init(100 + type);
        dfn_rng_normal(&rng, v, (size_t)P * D);
        if (type == 0)
            for (int i = 0; i < P * D; i++) v[i] = v[i] < 0 ? -1.0f : 1.0f;
        for (int p = 0; p < P; p++) memcpy(xs + p * D, x, sizeof(x));
        dfn_denoiser_vjp(&d, NULL, o, DFN_PRED_SCORE, xs, v, 0.3, P, D);
        double s = 0.0, s2 = 0.0;
        for (int p = 0; p < P; p++) {
            double q = 0.0;
            for (int j = 0; j < D; j++) q += (double)v[p * D + j] * o[p * D + j];
            s += q;
            s2 += q * q;
        }
        const double mean = s / P, se = sqrt((s2 / P - mean * mean) / P);
        printf("hutchinson %s: %.4f +- %.4f, exact trace %.4f\n",
               type ? "gaussian" : "rademacher", mean, se, tr);
        CHECK(fabs(mean - tr) <= 4 * se, "hutchinson %d: %g vs %g (se %g)", type, mean, tr, se);
    }
    free(xs), free(v), free(o);
    dfn_mixture_free(m);
}

/* The ODE NLL of points drawn from the mixture against -log p_{t_eps}(x). */
static void check_exact(const char *name, dfn_mixture *m, const dfn_schedule *sc,
                        const dfn_sde *sde, dfn_prediction kind, int batch, double tol) {
    const int D = dfn_mixture_dim(m);
    dfn_denoiser d;
    dfn_mixture_denoiser(&d, m, kind, sc, sde);
    float *x = malloc(sizeof(float) * batch * D);
    double *nll = malloc(sizeof(double) * batch), *lp = malloc(sizeof(double) * batch);
    dfn_rng rng = dfn_rng_init(7);
    dfn_mixture_sample(m, x, NULL, batch, &rng);
    dfn_nll_params p = dfn_nll_params_init();
    p.divergence = DFN_DIVERGENCE_EXACT;
    dfn_nll_result r;
    dfn_status st = dfn_ode_nll(&d, x, batch, D, &p, NULL, nll, NULL, &r);
    CHECK(st == DFN_OK, "%s: %s", name, dfn_last_error());
    double t_eps = sc ? 0.0 : (sde->kind == DFN_SDE_FLOW ? 1e-3 : 1e-5), a, s;
    dfn_denoiser_marginal(&d, t_eps, &a, &s);
    dfn_mixture_log_prob(m, lp, x, a, s, batch);
    double worst = 0.0, mean_err = 0.0, true_mean = 0.0;
    for (int b = 0; b < batch; b++) {
        worst = fmax(worst, fabs(nll[b] + lp[b]) / D);
        mean_err += (nll[b] + lp[b]) / batch;
        true_mean += -lp[b] / batch;
    }
    printf("%-22s D=%d: ODE NLL %.5f, true %.5f nats/sample; worst |error| %.2e nats/dim, "
           "mean error %+.2e; nfe %ld, steps %d+%d rejected\n",
           name, D, r.nll, true_mean, worst, mean_err, r.nfe, r.steps, r.rejected);
    CHECK(worst <= tol, "%s: worst error %.3g nats/dim", name, worst);
    free(x), free(nll), free(lp);
}

static void test_exact(void) {
    dfn_mixture *m2 = mix2(), *m5 = mix5();
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP), sub = dfn_sde_init(DFN_SDE_SUBVP),
            ve = dfn_sde_init(DFN_SDE_VE), flow = dfn_sde_init(DFN_SDE_FLOW);
    check_exact("vp eps", m2, NULL, &vp, DFN_PRED_EPS, 16, TOL_EXACT);
    check_exact("subvp x0", m2, NULL, &sub, DFN_PRED_X0, 16, TOL_EXACT);
    check_exact("ve score", m2, NULL, &ve, DFN_PRED_SCORE, 16, TOL_EXACT);
    check_exact("flow", m2, NULL, &flow, DFN_PRED_FLOW, 16, TOL_EXACT);
    dfn_schedule sc;
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_LINEAR);
    DFN_ASSERT(dfn_schedule_init(&sc, &sp) == DFN_OK);
    check_exact("discrete linear v", m2, &sc, NULL, DFN_PRED_V, 16, TOL_EXACT);
    dfn_schedule_free(&sc);
    check_exact("vp eps", m5, NULL, &vp, DFN_PRED_EPS, 8, TOL_EXACT);
    check_exact("ve eps", m5, NULL, &ve, DFN_PRED_EPS, 8, TOL_EXACT);
    /* Off-centre data: log p_1 is taken as N(0, prior_std^2 I) while the true
     * p_1 has mean alpha(1) E[x0] (VP: 0.0066 E[x0]; VE: E[x0] itself at
     * sigma_max = 50): an error of about x(1) . alpha(1) E[x0] / prior_std^2
     * nats, inherent to the method (score_sde's too). */
    dfn_mixture *off = mix2c(0.5f);
    check_exact("vp eps, mean 0.5", off, NULL, &vp, DFN_PRED_EPS, 16, TOL_PRIOR);
    check_exact("ve eps, mean 0.5", off, NULL, &ve, DFN_PRED_EPS, 16, TOL_PRIOR);
    dfn_mixture_free(off);
    dfn_mixture_free(m2);
    dfn_mixture_free(m5);
}

/* Hutchinson with several draws: the batch mean within 3 SE of the truth. */
static void test_hutchinson_nll(void) {
    dfn_mixture *m = mix5();
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP);
    dfn_denoiser d;
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, NULL, &vp);
    const int batch = 8, D = 5;
    float x[40];
    double nll[8], se[8], lp[8];
    dfn_rng rng = dfn_rng_init(8);
    dfn_mixture_sample(m, x, NULL, batch, &rng);
    double a, s;
    dfn_sde_marginal(&vp, 1e-5, &a, &s);
    dfn_mixture_log_prob(m, lp, x, a, s, batch);
    for (int type = DFN_DIVERGENCE_RADEMACHER; type <= DFN_DIVERGENCE_GAUSSIAN; type++) {
        dfn_nll_params p = dfn_nll_params_init();
        p.divergence = (dfn_divergence)type;
        p.draws = 8;
        dfn_nll_result r;
        CHECK(dfn_ode_nll(&d, x, batch, D, &p, &rng, nll, se, &r) == DFN_OK, "%s",
              dfn_last_error());
        double truth = 0.0;
        for (int b = 0; b < batch; b++) truth -= lp[b] / batch;
        const double est_se_nats = r.estimator_se * D * log(2.0);
        printf("hutchinson %-10s NLL %.4f +- %.4f (estimator se), true %.4f nats/sample\n",
               dfn_divergence_name(p.divergence), r.nll, est_se_nats, truth);
        CHECK(fabs(r.nll - truth) <= 3 * est_se_nats + TOL_EXACT * D,
              "hutchinson %s: %g vs %g (se %g)", dfn_divergence_name(p.divergence), r.nll, truth,
              est_se_nats);
        CHECK(est_se_nats > 0.0 && isfinite(est_se_nats), "estimator se %g", est_se_nats);
    }
    dfn_mixture_free(m);
}

/* 8-bit data: -log P(bin) ~ -log p(x) + D log 127.5 for a smooth density. */
static void test_dequantize(void) {
    static const float means[2] = {0.1f, -0.2f};
    static const float stds[1] = {0.4f};
    dfn_mixture_params mp = {2, 1, NULL, means, NULL, stds};
    dfn_mixture *m;
    DFN_ASSERT(dfn_mixture_new(&m, &mp) == DFN_OK);
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP);
    dfn_denoiser d;
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, NULL, &vp);
    const int batch = 8;
    float x[16];
    dfn_rng rng = dfn_rng_init(9);
    dfn_mixture_sample(m, x, NULL, batch, &rng);
    for (int i = 0; i < 16; i++) { /* onto the 8-bit grid */
        float k = roundf((fminf(fmaxf(x[i], -1.0f), 1.0f) + 1.0f) * 127.5f);
        x[i] = k / 127.5f - 1.0f;
    }
    double lp[8], a, s;
    dfn_sde_marginal(&vp, 1e-5, &a, &s);
    dfn_mixture_log_prob(m, lp, x, a, s, batch);
    dfn_nll_params p = dfn_nll_params_init();
    p.divergence = DFN_DIVERGENCE_EXACT;
    p.dequantize = 1;
    p.draws = 2;
    dfn_nll_result r;
    CHECK(dfn_ode_nll(&d, x, batch, 2, &p, &rng, NULL, NULL, &r) == DFN_OK, "%s",
          dfn_last_error());
    double want = 0.0;
    for (int b = 0; b < batch; b++) want += (-lp[b] + 2 * log(127.5)) / batch;
    want /= 2 * log(2.0);
    printf("dequantised: %.4f bits/dim (estimator se %.4f), want %.4f\n", r.bpd, r.estimator_se,
           want);
    CHECK(fabs(r.bpd - want) <= 0.01, "dequantised bpd %g vs %g", r.bpd, want);
    dfn_mixture_free(m);
}

static void test_bad_input(void) {
    dfn_mixture *m = mix2();
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP);
    dfn_denoiser d;
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, NULL, &vp);
    float x[4] = {0.1f, 0.2f, NAN, 0.0f};
    dfn_rng rng = dfn_rng_init(1);
    dfn_nll_params p = dfn_nll_params_init();
    CHECK(dfn_ode_nll(&d, x, 2, 2, &p, &rng, NULL, NULL, NULL) == DFN_ERR_NUMERIC &&
              strstr(dfn_last_error(), "row 1 column 0"),
          "NaN: %s", dfn_last_error());
    x[2] = 2.0f;
    p.dequantize = 1;
    CHECK(dfn_ode_nll(&d, x, 2, 2, &p, &rng, NULL, NULL, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "[-1, 1]"),
          "dequantise out of range: %s", dfn_last_error());
    p = dfn_nll_params_init();
    p.probes = 0;
    CHECK(dfn_ode_nll(&d, x, 2, 2, &p, &rng, NULL, NULL, NULL) == DFN_ERR_ARG, "probes 0");
    p = dfn_nll_params_init();
    p.max_steps = 3;
    CHECK(dfn_ode_nll(&d, x, 2, 2, &p, &rng, NULL, NULL, NULL) == DFN_ERR_NUMERIC &&
              strstr(dfn_last_error(), "max_steps"),
          "max_steps: %s", dfn_last_error());
    p = dfn_nll_params_init();
    d.vjp = NULL;
    CHECK(dfn_ode_nll(&d, x, 2, 2, &p, &rng, NULL, NULL, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "vjp"),
          "no vjp: %s", dfn_last_error());
    float out[4];
    CHECK(dfn_denoiser_vjp(&d, NULL, out, DFN_PRED_EPS, x, x + 2, 0.5, 1, 2) == DFN_ERR_ARG,
          "vjp without hook");
    CHECK(dfn_divergence_from_name("exact") == DFN_DIVERGENCE_EXACT &&
              dfn_divergence_from_name("nope") == -1 && strstr(dfn_last_error(), "rademacher"),
          "names: %s", dfn_last_error());
    dfn_mixture_free(m);
}

int main(void) {
    test_vjp();
    test_hutchinson_trace();
    test_exact();
    test_hutchinson_nll();
    test_dequantize();
    test_bad_input();
    TEST_MAIN_END();
}

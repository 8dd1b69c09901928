/* test_bound.c - the variational bound (Ho et al. 2020 eq. 5), proven on known
 * densities, and against the exact ODE likelihood of a trained network:
 *   - exact mixture denoiser, continuous 2-D data, Gaussian decoder, linear
 *     schedule T = 1000: the bound minus the true -log p(x0), averaged over
 *     400 samples of the data (E[bound] >= E[-log p_model] >= the entropy,
 *     Gibbs), is >= -3 standard errors, and with reverse variance b_t within
 *     BOUND_GAP = 0.05 nats/dim; b~_t gives a valid, looser bound; T = 50 a
 *     looser one than T = 1000;
 *   - the t-sampled estimate (K = 200 draws) within 3 standard errors (+0.01)
 *     of the all-terms value;
 *   - 8-bit data with the discretised decoder (variance b_t): within
 *     BOUND_GAP of the true -log P(bin), P(bin) ~ p(x) (2/255)^D for a smooth
 *     density inside (-1, 1), not below it by more than 3 standard errors;
 *   - a small MLP trained 400 steps on the 2-D mixture: the bound >= the ODE
 *     NLL (both in nats, batch means) within 3 of their standard errors;
 *   - bad input. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "test_util.h"

#define BOUND_GAP 0.05

static dfn_mixture *mix2(void) {
    static const float means[6] = {-0.9f, 0.3f, 0.9f, -0.5f, 0.1f, 0.8f};
    static const float stds[3] = {0.3f, 0.4f, 0.25f};
    static const float w[3] = {0.5f, 0.3f, 0.2f};
    dfn_mixture_params mp = {2, 3, w, means, NULL, stds};
    dfn_mixture *m;
    DFN_ASSERT(dfn_mixture_new(&m, &mp) == DFN_OK);
    return m;
}

static double true_nll(dfn_mixture *m, const float *x, int n) {
    double *lp = malloc(sizeof(double) * n), s = 0.0;
    dfn_mixture_log_prob(m, lp, x, 1.0, 0.0, n);
    for (int b = 0; b < n; b++) s -= lp[b] / n;
    free(lp);
    return s;
}

/* mean and standard error over points of bound - (-log p), nats/dim */
static void paired_gap(const double *bpd, const double *lp, int N, int D, double *gap,
                       double *se) {
    double s = 0.0, s2 = 0.0;
    for (int b = 0; b < N; b++) {
        const double e = bpd[b] * log(2.0) + lp[b] / D;
        s += e;
        s2 += e * e;
    }
    *gap = s / N;
    *se = sqrt(fmax(0.0, s2 / N - *gap * *gap) / (N - 1));
}

static void test_exact_denoiser(void) {
    dfn_mixture *m = mix2();
    const int N = 400, D = 2;
    float *x = malloc(sizeof(float) * N * D);
    dfn_rng rng = dfn_rng_init(3);
    dfn_mixture_sample(m, x, NULL, N, &rng);
    const double truth = true_nll(m, x, N) / D; /* nats/dim */
    dfn_schedule sc;
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_LINEAR);
    DFN_ASSERT(dfn_schedule_init(&sc, &sp) == DFN_OK);
    dfn_denoiser d;
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, &sc, NULL);
    dfn_bound_params p = dfn_bound_params_init();
    dfn_bound_result r;
    double *bpd = malloc(sizeof(double) * N), *lp = malloc(sizeof(double) * N);
    dfn_mixture_log_prob(m, lp, x, 1.0, 0.0, N);
    double gap, se;
    /* b_t: the true reverse variance of a smooth density at every step, nearly tight */
    p.variance = DFN_VARIANCE_BETA;
    CHECK(dfn_variational_bound(&d, x, N, D, &p, &rng, bpd, &r) == DFN_OK, "%s", dfn_last_error());
    const double exact = r.bpd * log(2.0);
    paired_gap(bpd, lp, N, D, &gap, &se);
    printf("bound T=1000 beta:       %.4f nats/dim (prior %.2e, kl %.4f, decoder %.4f bits/dim),"
           " true NLL %.4f nats/dim, bound - true = %+.4f +- %.4f; nfe %ld\n",
           exact, r.prior_bpd, r.kl_bpd, r.decoder_bpd, truth, gap, se, r.nfe);
    CHECK(gap >= -3 * se && gap <= BOUND_GAP, "beta: bound - true = %g +- %g", gap, se);
    CHECK(r.nfe == 1000 && r.bpd_se == 0.0, "nfe %ld se %g", r.nfe, r.bpd_se);
    /* b~_t: a valid bound, looser (too small a variance at the first steps) */
    p.variance = DFN_VARIANCE_BETA_TILDE;
    CHECK(dfn_variational_bound(&d, x, N, D, &p, &rng, bpd, &r) == DFN_OK, "%s", dfn_last_error());
    paired_gap(bpd, lp, N, D, &gap, &se);
    const double tilde = r.bpd * log(2.0);
    printf("bound T=1000 beta-tilde: %.4f nats/dim, bound - true = %+.4f +- %.4f\n", tilde, gap,
           se);
    CHECK(gap >= -3 * se && tilde > exact, "beta-tilde: %g +- %g", gap, se);

    p.variance = DFN_VARIANCE_BETA;
    p.t_samples = 200;
    CHECK(dfn_variational_bound(&d, x, N, D, &p, &rng, NULL, &r) == DFN_OK, "%s", dfn_last_error());
    printf("bound sampled K=200:     %.4f +- %.4f nats/dim\n", r.bpd * log(2.0),
           r.bpd_se * log(2.0));
    CHECK(fabs(r.bpd * log(2.0) - exact) <= 3 * r.bpd_se * log(2.0) + 0.01 && r.bpd_se > 0.0 &&
              r.nfe == 201,
          "sampled %g +- %g vs %g", r.bpd * log(2.0), r.bpd_se * log(2.0), exact);

    /* fewer steps: a looser bound */
    dfn_schedule s50;
    sp.T = 50;
    sp.beta_start = 1e-4 * 1000 / 50;
    sp.beta_end = 0.02 * 1000 / 50;
    DFN_ASSERT(dfn_schedule_init(&s50, &sp) == DFN_OK);
    dfn_mixture_denoiser(&d, m, DFN_PRED_X0, &s50, NULL);
    p = dfn_bound_params_init();
    p.variance = DFN_VARIANCE_BETA;
    CHECK(dfn_variational_bound(&d, x, N, D, &p, &rng, NULL, &r) == DFN_OK, "%s", dfn_last_error());
    printf("bound T=50:              %.4f nats/dim\n", r.bpd * log(2.0));
    CHECK(r.bpd * log(2.0) > exact, "T = 50 bound %g not above T = 1000's %g", r.bpd * log(2.0),
          exact);
    dfn_schedule_free(&s50);

    /* 8-bit data, from a narrower mixture that stays inside (-1, 1) */
    static const float means8[6] = {-0.36f, 0.12f, 0.36f, -0.2f, 0.04f, 0.32f};
    static const float stds8[3] = {0.15f, 0.2f, 0.125f};
    static const float w8[3] = {0.5f, 0.3f, 0.2f};
    dfn_mixture_params mp8 = {2, 3, w8, means8, NULL, stds8};
    dfn_mixture_free(m);
    DFN_ASSERT(dfn_mixture_new(&m, &mp8) == DFN_OK);
    dfn_mixture_sample(m, x, NULL, N, &rng);
    for (int i = 0; i < N * D; i++) {
        float k = roundf((fminf(fmaxf(x[i], -1.0f), 1.0f) + 1.0f) * 127.5f);
        x[i] = k / 127.5f - 1.0f;
    }
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, &sc, NULL);
    p.decoder = DFN_DECODER_8BIT;
    CHECK(dfn_variational_bound(&d, x, N, D, &p, &rng, bpd, &r) == DFN_OK, "%s", dfn_last_error());
    /* -log P(bin) ~ -log p(x) + D log(255/2) for a density smooth on the scale
     * of a bin, away from the open edge bins */
    const double want = (true_nll(m, x, N) / D + log(127.5)) / log(2.0);
    double mean_bpd = 0.0;
    for (int b = 0; b < N; b++) mean_bpd += bpd[b] / N;
    printf("bound 8-bit: %.4f bits/dim, true ~%.4f bits/dim\n", r.bpd, want);
    CHECK(fabs(mean_bpd - r.bpd) < 1e-9, "per-sample mean %g vs %g", mean_bpd, r.bpd);
    {
        double gsum = 0.0, gsum2 = 0.0;
        dfn_mixture_log_prob(m, lp, x, 1.0, 0.0, N);
        for (int b = 0; b < N; b++) {
            const double e = bpd[b] - (-lp[b] / D + log(127.5)) / log(2.0);
            gsum += e / N;
            gsum2 += e * e / N;
        }
        const double gse = sqrt(fmax(0.0, gsum2 - gsum * gsum) / (N - 1));
        printf("bound 8-bit - true: %+.4f +- %.4f bits/dim\n", gsum, gse);
        CHECK(gsum >= -3 * gse && gsum <= BOUND_GAP / log(2.0), "8-bit %g +- %g", gsum, gse);
    }
    free(bpd);
    free(lp);
    free(x);
    dfn_schedule_free(&sc);
    dfn_mixture_free(m);
}

/* A small MLP trained on the mixture with L_simple: bound >= ODE NLL. */
static void test_trained(void) {
    dfn_mixture *m = mix2();
    const int D = 2, B = 128, STEPS = 400, N = 200;
    dfn_model_config cfg;
    dfn_model_config_init(&cfg, DFN_MODEL_MLP);
    cfg.mlp.dim = D;
    cfg.mlp.width = 64;
    cfg.mlp.depth = 2;
    dfn_model *net;
    DFN_ASSERT(dfn_model_new(&net, &cfg, 1) == DFN_OK);
    dfn_schedule sc;
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_LINEAR);
    sp.T = 200;
    sp.beta_start = 1e-4 * 1000 / 200;
    sp.beta_end = 0.02 * 1000 / 200;
    DFN_ASSERT(dfn_schedule_init(&sc, &sp) == DFN_OK);
    dfn_objective obj = dfn_objective_init();
    const size_t np = dfn_model_num_params(net);
    float *mom = calloc(np, sizeof(float)), *vel = calloc(np, sizeof(float));
    float *x0 = malloc(sizeof(float) * B * D), *eps = malloc(sizeof(float) * B * D);
    float *xt = malloc(sizeof(float) * B * D), *tgt = malloc(sizeof(float) * B * D);
    float *pred = malloc(sizeof(float) * B * D), *dpred = malloc(sizeof(float) * B * D);
    float tf[128];
    int t[128];
    dfn_adamw_params ap = dfn_adamw_params_init();
    ap.lr = 3e-3;
    ap.weight_decay = 0.0;
    dfn_rng rng = dfn_rng_init(4);
    double loss = 0.0;
    for (int step = 1; step <= STEPS; step++) {
        dfn_mixture_sample(m, x0, NULL, B, &rng);
        dfn_rng_normal(&rng, eps, (size_t)B * D);
        dfn_sample_timesteps(t, B, sc.T, &rng);
        for (int b = 0; b < B; b++) tf[b] = (float)t[b];
        dfn_objective_batch_discrete(xt, tgt, NULL, &obj, &sc, x0, eps, t, B, D);
        dfn_model_zero_grad(net);
        dfn_model_forward(net, pred, xt, tf, NULL, B, DFN_TRAIN, &rng);
        loss = dfn_objective_loss(dpred, &obj, pred, tgt, NULL, B, D);
        dfn_model_backward(net, dpred, NULL);
        dfn_adamw_step(dfn_model_params(net), dfn_model_grads(net), mom, vel, np, step, &ap);
    }
    printf("trained MLP: final loss %.4f\n", loss);
    float *x = malloc(sizeof(float) * N * D);
    dfn_mixture_sample(m, x, NULL, N, &rng);
    dfn_denoiser d;
    dfn_model_denoiser(&d, net, DFN_PRED_EPS, &sc, NULL, 0, 1.0);
    dfn_bound_params bp = dfn_bound_params_init();
    dfn_bound_result br;
    CHECK(dfn_variational_bound(&d, x, N, D, &bp, &rng, NULL, &br) == DFN_OK, "%s",
          dfn_last_error());
    dfn_nll_params np_ = dfn_nll_params_init();
    np_.divergence = DFN_DIVERGENCE_EXACT;
    dfn_nll_result nr;
    double *nll = malloc(sizeof(double) * N), *bb = malloc(sizeof(double) * N);
    CHECK(dfn_ode_nll(&d, x, N, D, &np_, NULL, nll, NULL, &nr) == DFN_OK, "%s", dfn_last_error());
    CHECK(dfn_variational_bound(&d, x, N, D, &bp, &rng, bb, &br) == DFN_OK, "%s",
          dfn_last_error());
    double diff = 0.0, diff2 = 0.0; /* paired over points */
    for (int b = 0; b < N; b++) {
        const double e = bb[b] * D * log(2.0) - nll[b];
        diff += e / N;
        diff2 += e * e / N;
    }
    const double se = sqrt((diff2 - diff * diff) / (N - 1));
    const double truth = true_nll(m, x, N);
    printf("trained MLP (T=200): bound %.4f, ODE NLL %.4f (nfe %ld), true NLL %.4f nats/sample;"
           " bound - NLL = %.4f +- %.4f\n",
           br.bpd * D * log(2.0), nr.nll, nr.nfe, truth, diff, se);
    CHECK(diff >= -3 * se, "bound below the ODE NLL: %g +- %g", diff, se);
    CHECK(nr.nll >= truth - 3 * nr.bpd_se * D * log(2.0),
          "ODE NLL %g well below the entropy estimate %g", nr.nll, truth);
    free(nll), free(bb), free(x);
    free(mom), free(vel), free(x0), free(eps), free(xt), free(tgt), free(pred), free(dpred);
    dfn_schedule_free(&sc);
    dfn_model_free(net);
    dfn_mixture_free(m);
}

static void test_bad_input(void) {
    dfn_mixture *m = mix2();
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP);
    dfn_denoiser d;
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, NULL, &vp);
    float x[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    dfn_rng rng = dfn_rng_init(1);
    dfn_bound_params p = dfn_bound_params_init();
    CHECK(dfn_variational_bound(&d, x, 2, 2, &p, &rng, NULL, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "dfn_ode_nll"),
          "sde: %s", dfn_last_error());
    dfn_schedule sc;
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_LINEAR);
    sp.T = 10;
    DFN_ASSERT(dfn_schedule_init(&sc, &sp) == DFN_OK);
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, &sc, NULL);
    p.t_samples = 1;
    CHECK(dfn_variational_bound(&d, x, 2, 2, &p, &rng, NULL, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "t_samples"),
          "t_samples: %s", dfn_last_error());
    p = dfn_bound_params_init();
    p.decoder = DFN_DECODER_8BIT;
    x[3] = 1.5f;
    CHECK(dfn_variational_bound(&d, x, 2, 2, &p, &rng, NULL, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "row 1 column 1"),
          "8-bit range: %s", dfn_last_error());
    x[3] = INFINITY;
    CHECK(dfn_variational_bound(&d, x, 2, 2, &p, &rng, NULL, NULL) == DFN_ERR_NUMERIC,
          "inf: %s", dfn_last_error());
    CHECK(dfn_decoder_from_name("8bit") == DFN_DECODER_8BIT && dfn_decoder_from_name("x") == -1 &&
              strstr(dfn_last_error(), "gaussian"),
          "names");
    dfn_schedule_free(&sc);
    dfn_mixture_free(m);
}

int main(void) {
    test_exact_denoiser();
    test_trained();
    test_bad_input();
    TEST_MAIN_END();
}

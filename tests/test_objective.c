/* test_objective.c - prediction conversions (every pair, round trips, against the
 * exact targets), the losses and their gradients (central finite differences in
 * double), each weighting against its formula and the bound it comes from, the
 * training inputs of each recipe, the sampled timesteps, and bad options. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/core.h"
#include "test_util.h"

static double rel_diff(double a, double b) {
    double s = fabs(b) > 1e-300 ? fabs(b) : 1e-300;
    return fabs(a - b) / s;
}

/* Builds a schedule, recording a failure (and returning 0) if it cannot. */
static int schedule_ok(dfn_schedule *s, const dfn_schedule_params *p) {
    dfn_status st = dfn_schedule_init(s, p);
    CHECK(st == DFN_OK, "schedule %s: %s", dfn_beta_kind_name(p->kind), dfn_last_error());
    return st == DFN_OK;
}

/* (alpha, sigma) pairs: VP steps of a DDPM, VE, flow, and a general pair */
static const double pairs[][2] = {
    {0.99995, 0.0099999}, {0.9, 0.43588989435406735},
    {0.6, 0.8},           {0.05, 0.99874921777190895},
    {1.0, 0.5},           {1.0, 20.0},
    {0.7, 0.3},           {0.25, 0.75},
    {1.3, 0.4},
};
#define NPAIRS (sizeof pairs / sizeof pairs[0])

/* ---------------------------------------------------------------- predictions */

static void conversions_agree_with_exact_targets(void) {
    enum { N = 64 };
    float x0[N], eps[N], xt[N], tgt[DFN_PRED_COUNT][N], out[N];
    fill_uniform(x0, N, 11);
    fill_uniform(eps, N, 12);
    for (size_t p = 0; p < NPAIRS; p++) {
        const double a = pairs[p][0], s = pairs[p][1];
        for (int i = 0; i < N; i++)
            xt[i] = (float)(a * x0[i] + s * eps[i]);
        for (int k = 0; k < DFN_PRED_COUNT; k++)
            dfn_prediction_target(tgt[k], (dfn_prediction)k, x0, eps, a, s, N);
        /* the targets are the definitions */
        int ok = 1;
        for (int i = 0; i < N; i++) {
            ok &= tgt[DFN_PRED_EPS][i] == eps[i] && tgt[DFN_PRED_X0][i] == x0[i];
            ok &= fabs(tgt[DFN_PRED_V][i] - (a * eps[i] - s * x0[i])) < 1e-6;
            ok &= fabs(tgt[DFN_PRED_SCORE][i] - (-eps[i] / s)) < 1e-6 * fmax(1, fabs(eps[i] / s));
            ok &= fabs(tgt[DFN_PRED_FLOW][i] - (eps[i] - x0[i])) < 1e-6;
        }
        CHECK(ok, "targets at pair %zu", p);
        /* x_t is rounded to float, so conversions that divide by a small alpha or
         * sigma amplify that rounding: tolerance scales with the conditioning */
        double cond = (1.0 + fabs(s / a)) * (1.0 + fabs(a / s)) * (1.0 + s);
        for (int from = 0; from < DFN_PRED_COUNT; from++)
            for (int to = 0; to < DFN_PRED_COUNT; to++) {
                dfn_prediction_convert(out, (dfn_prediction)to, tgt[from], (dfn_prediction)from, xt,
                                       a, s, N);
                char name[64];
                snprintf(name, sizeof name, "%s->%s at (%g,%g)", dfn_prediction_name(from),
                         dfn_prediction_name(to), a, s);
                check_tensor(name, out, tgt[to], N, 2e-7 * cond);
            }
    }
}

/* pred -> other -> pred returns pred for every pair of kinds (1e-6 relative). */
static void conversions_round_trip_for_all_pairs(void) {
    enum { N = 256 };
    float xt[N], pred[N], mid[N], back[N];
    fill_uniform(xt, N, 21);
    for (size_t p = 0; p < NPAIRS; p++) {
        const double a = pairs[p][0], s = pairs[p][1];
        if (a < 0.1 || s < 0.1) continue; /* conditioning below; tested against targets above */
        for (int from = 0; from < DFN_PRED_COUNT; from++) {
            fill_uniform(pred, N, 22 + from);
            for (int to = 0; to < DFN_PRED_COUNT; to++) {
                dfn_prediction_convert(mid, (dfn_prediction)to, pred, (dfn_prediction)from, xt, a,
                                       s, N);
                dfn_prediction_convert(back, (dfn_prediction)from, mid, (dfn_prediction)to, xt, a,
                                       s, N);
                char name[64];
                snprintf(name, sizeof name, "%s->%s->%s at (%g,%g)", dfn_prediction_name(from),
                         dfn_prediction_name(to), dfn_prediction_name(from), a, s);
                check_tensor(name, back, pred, N, 1e-6);
            }
        }
    }
}

static void conversion_in_place_and_batched(void) {
    enum { B = 4, D = 33 };
    float xt[B * D], pred[B * D], out[B * D], ref[B * D];
    double al[B] = {0.9, 0.5, 1.0, 0.2}, sg[B] = {0.1, 0.8, 3.0, 0.9};
    fill_uniform(xt, B * D, 31);
    fill_uniform(pred, B * D, 32);
    for (int b = 0; b < B; b++)
        dfn_prediction_convert(ref + b * D, DFN_PRED_V, pred + b * D, DFN_PRED_X0, xt + b * D,
                               al[b], sg[b], D);
    dfn_prediction_convert_batch(out, DFN_PRED_V, pred, DFN_PRED_X0, xt, al, sg, B, D);
    CHECK(!memcmp(out, ref, sizeof out), "batch = per-sample conversion");
    memcpy(out, pred, sizeof out);
    dfn_prediction_convert_batch(out, DFN_PRED_V, out, DFN_PRED_X0, xt, al, sg, B, D);
    CHECK(!memcmp(out, ref, sizeof out), "in place over pred");
    memcpy(out, xt, sizeof out);
    dfn_prediction_convert_batch(out, DFN_PRED_V, pred, DFN_PRED_X0, out, al, sg, B, D);
    CHECK(!memcmp(out, ref, sizeof out), "in place over x_t");
    dfn_prediction_convert(out, DFN_PRED_EPS, pred, DFN_PRED_EPS, NULL, 0.5, 0.5, B * D);
    CHECK(!memcmp(out, pred, sizeof out), "same kind copies (x_t not needed)");
    /* the score of a VP step is -eps/sqrt(1-abar) (mission section 4) */
    float e = 0.5f, x = 0.1f, sc;
    dfn_prediction_convert(&sc, DFN_PRED_SCORE, &e, DFN_PRED_EPS, &x, 0.6, 0.8, 1);
    CHECK(fabs(sc - (-0.5 / 0.8)) < 1e-7, "score = -eps/sigma");
    for (int k = 0; k < DFN_PRED_COUNT; k++)
        CHECK(dfn_prediction_from_name(dfn_prediction_name(k)) == k, "prediction name %d", k);
    CHECK(dfn_prediction_from_name("epsilon") == -1 && strstr(dfn_last_error(), "epsilon") &&
              strstr(dfn_last_error(), "x0") && strstr(dfn_last_error(), "flow"),
          "unknown prediction: %s", dfn_last_error());
}

/* The gain is |d kind/d x0| at fixed x_t: check it by converting a perturbed x0. */
static void x0_gain_is_the_derivative(void) {
    for (size_t p = 0; p < NPAIRS; p++) {
        const double a = pairs[p][0], s = pairs[p][1];
        for (int k = 0; k < DFN_PRED_COUNT; k++) {
            float xt = 0.25f, x0a = 0.5f, x0b = 0.5f + 0.0078125f, ka, kb;
            dfn_prediction_convert(&ka, (dfn_prediction)k, &x0a, DFN_PRED_X0, &xt, a, s, 1);
            dfn_prediction_convert(&kb, (dfn_prediction)k, &x0b, DFN_PRED_X0, &xt, a, s, 1);
            double gain = fabs((double)kb - ka) / 0.0078125;
            double want = dfn_prediction_x0_gain((dfn_prediction)k, a, s);
            CHECK(rel_diff(gain, want) < 1e-3, "%s gain at (%g,%g): %g vs %g",
                  dfn_prediction_name(k), a, s, gain, want);
        }
    }
}

/* ---------------------------------------------------------------- losses */

static double ref_loss_elem(dfn_loss_kind k, double delta, double r) {
    if (k == DFN_LOSS_L2) return r * r;
    if (k == DFN_LOSS_L1) return fabs(r);
    return fabs(r) < delta ? 0.5 * r * r : delta * (fabs(r) - 0.5 * delta);
}

/* Values on a 2^-12 grid so that p +- h (h = 2^-10) is exact in float. */
static void fill_grid(float *x, size_t n, unsigned seed, float scale) {
    fill_uniform(x, n, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = ldexpf(roundf(ldexpf(x[i] * scale, 12)), -12);
}

static void losses_match_formula_and_finite_differences(void) {
    enum { B = 3, D = 40 };
    float pred[B * D], target[B * D], grad[B * D], weight[B] = {1.0f, 0.25f, 3.5f};
    fill_grid(pred, B * D, 41, 2.0f);
    fill_grid(target, B * D, 42, 2.0f);
    const double h = 1.0 / 1024;
    const struct {
        dfn_loss_kind kind;
        double delta;
    } cases[] = {
        {DFN_LOSS_L2, 1.0}, {DFN_LOSS_L1, 1.0}, {DFN_LOSS_HUBER, 1.0}, {DFN_LOSS_HUBER, 0.5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        dfn_loss_kind k = cases[c].kind;
        double delta = cases[c].delta;
        for (int weighted = 0; weighted < 2; weighted++) {
            const float *w = weighted ? weight : NULL;
            double L = dfn_loss(grad, k, delta, pred, target, w, B, D);
            double want = 0;
            for (int b = 0; b < B; b++)
                for (int d = 0; d < D; d++)
                    want += (w ? w[b] : 1.0) *
                            ref_loss_elem(k, delta, (double)pred[b * D + d] - target[b * D + d]);
            want /= B * D;
            CHECK(rel_diff(L, want) < 1e-13, "%s(%g) weighted=%d: loss %.17g want %.17g",
                  dfn_loss_kind_name(k), delta, weighted, L, want);
            CHECK(dfn_loss(NULL, k, delta, pred, target, w, B, D) == L, "loss without gradient");
            double worst = 0, scale = 0;
            int checked = 0;
            for (int i = 0; i < B * D; i++) {
                double r = (double)pred[i] - target[i];
                /* stay off the kinks, where the central difference straddles two pieces */
                if (fabs(r) <= 2 * h || fabs(fabs(r) - delta) <= 2 * h) continue;
                float keep = pred[i];
                pred[i] = (float)(keep + h);
                double lp = dfn_loss(NULL, k, delta, pred, target, w, B, D);
                pred[i] = (float)(keep - h);
                double lm = dfn_loss(NULL, k, delta, pred, target, w, B, D);
                pred[i] = keep;
                double fd = (lp - lm) / (2 * h);
                worst = fmax(worst, fabs(fd - grad[i]));
                scale = fmax(scale, fabs(fd));
                checked++;
            }
            CHECK(checked > B * D / 2, "%s: most elements checked (%d)", dfn_loss_kind_name(k),
                  checked);
            CHECK(worst <= 1e-6 * scale,
                  "%s(%g) weighted=%d: gradient vs central FD %.3e (scale %.3e)",
                  dfn_loss_kind_name(k), delta, weighted, worst, scale);
        }
    }
    /* the derivative at a kink is torch's: sign(0) = 0 for L1 */
    float p0 = 0.5f, t0 = 0.5f, g0;
    dfn_loss(&g0, DFN_LOSS_L1, 1.0, &p0, &t0, NULL, 1, 1);
    CHECK(g0 == 0.0f, "L1 gradient at r = 0 is 0");
    /* Huber with delta = 1 is smooth_l1 with beta = 1, and delta * smooth_l1(beta = delta) */
    float p1 = 2.0f, t1 = 0.0f;
    CHECK(dfn_loss(NULL, DFN_LOSS_HUBER, 0.5, &p1, &t1, NULL, 1, 1) == 0.5 * (2.0 - 0.25),
          "huber(delta=0.5) at r = 2");
}

static void loss_is_identical_for_any_thread_count(void) {
    const int B = 16, D = 8192; /* above the parallel threshold */
    float *p = malloc((size_t)B * D * sizeof(float)), *t = malloc((size_t)B * D * sizeof(float));
    float *g1 = malloc((size_t)B * D * sizeof(float)), *g4 = malloc((size_t)B * D * sizeof(float));
    float w[16];
    fill_uniform(p, (size_t)B * D, 51);
    fill_uniform(t, (size_t)B * D, 52);
    fill_uniform(w, 16, 53);
    int saved = dfn_get_threads();
    dfn_set_threads(1);
    double l1 = dfn_loss(g1, DFN_LOSS_HUBER, 0.3, p, t, w, B, D);
    dfn_set_threads(4);
    double l4 = dfn_loss(g4, DFN_LOSS_HUBER, 0.3, p, t, w, B, D);
    dfn_set_threads(saved);
    CHECK(l1 == l4 && !memcmp(g1, g4, (size_t)B * D * sizeof(float)),
          "1 vs 4 threads bit-identical");
    free(p);
    free(t);
    free(g1);
    free(g4);
}

/* ---------------------------------------------------------------- weightings */

static void weightings_match_their_formulas(void) {
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_LINEAR);
    dfn_schedule s;
    if (!schedule_ok(&s, &sp)) return;
    dfn_objective o = dfn_objective_init();
    CHECK(o.prediction == DFN_PRED_EPS && o.loss == DFN_LOSS_L2 &&
              o.weighting == DFN_WEIGHT_UNIFORM && o.huber_delta == 1.0 && o.min_snr_gamma == 5.0,
          "objective defaults");
    double worst_eps = 0, worst_x0 = 0, worst_v = 0, worst_vlb = 0, worst_vlb_x0 = 0, worst_s2 = 0;
    for (int i = 0; i < s.T; i++) {
        double ab = s.alpha_bar[i], snr = ab / (1 - ab), b = s.beta[i], a = 1 - b;
        double g = 5.0, m = snr < g ? snr : g;
        o.weighting = DFN_WEIGHT_UNIFORM;
        CHECK(dfn_objective_weight_discrete(&o, &s, i) == 1.0 || i % 100, "uniform = 1");
        o.weighting = DFN_WEIGHT_MIN_SNR;
        o.prediction = DFN_PRED_EPS;
        worst_eps = fmax(worst_eps, rel_diff(dfn_objective_weight_discrete(&o, &s, i), m / snr));
        o.prediction = DFN_PRED_X0;
        worst_x0 = fmax(worst_x0, rel_diff(dfn_objective_weight_discrete(&o, &s, i), m));
        o.prediction = DFN_PRED_V;
        worst_v = fmax(worst_v, rel_diff(dfn_objective_weight_discrete(&o, &s, i), m / (snr + 1)));
        o.weighting = DFN_WEIGHT_SIGMA2;
        o.prediction = DFN_PRED_SCORE;
        worst_s2 = fmax(worst_s2, rel_diff(dfn_objective_weight_discrete(&o, &s, i), 1 - ab));
        /* the true bound: b^2 / (2 b~ a (1 - abar)), b~ clipped at t = 1 */
        double prev = i ? s.alpha_bar[i - 1] : 1.0;
        double bt = i ? (1 - prev) / (1 - ab) * b : (1 - ab) / (1 - s.alpha_bar[1]) * s.beta[1];
        o.weighting = DFN_WEIGHT_VLB;
        o.prediction = DFN_PRED_EPS;
        double w_eps = dfn_objective_weight_discrete(&o, &s, i);
        worst_vlb = fmax(worst_vlb, rel_diff(w_eps, b * b / (2 * bt * a * (1 - ab))));
        /* the same term in x0: 1/(2 b~) ||coef_x0 (x0 - x0_th)||^2 (DDPM eq. 8 with eq. 7) */
        o.prediction = DFN_PRED_X0;
        double c0 = sqrt(prev) * b / (1 - ab);
        worst_vlb_x0 = fmax(worst_vlb_x0,
                            rel_diff(dfn_objective_weight_discrete(&o, &s, i), c0 * c0 / (2 * bt)));
    }
    CHECK(worst_eps < 1e-12, "min-snr eps = min(SNR,5)/SNR: %.3e", worst_eps);
    CHECK(worst_x0 < 1e-12, "min-snr x0 = min(SNR,5): %.3e", worst_x0);
    CHECK(worst_v < 1e-12, "min-snr v = min(SNR,5)/(SNR+1): %.3e", worst_v);
    CHECK(worst_s2 < 1e-12, "sigma2 = sigma^2: %.3e", worst_s2);
    CHECK(worst_vlb < 1e-12, "vlb eps = b^2/(2 b~ a (1-abar)): %.3e", worst_vlb);
    CHECK(worst_vlb_x0 < 1e-9, "vlb x0 = coef_x0^2/(2 b~) (t >= 2): %.3e", worst_vlb_x0);

    /* the eps-space VLB weight turns ||eps - eps_th||^2 into the KL's mean term
     * ||mu~ - mu_th||^2 / (2 b~) with mu_th = (x_t - b/sqrt(1-abar) eps_th)/sqrt(a) */
    o.weighting = DFN_WEIGHT_VLB;
    o.prediction = DFN_PRED_EPS;
    for (int i = 1; i < s.T; i += 111) {
        double x0 = 0.3, e = -0.7, eth = -0.2;
        double xt = s.sqrt_alpha_bar[i] * x0 + s.sqrt_one_minus_alpha_bar[i] * e;
        double mu = s.posterior_coef_x0[i] * x0 + s.posterior_coef_xt[i] * xt;
        double mu_th = (xt - s.beta[i] / s.sqrt_one_minus_alpha_bar[i] * eth) / sqrt(s.alpha[i]);
        double kl = (mu - mu_th) * (mu - mu_th) / (2 * s.posterior_variance[i]);
        double w = dfn_objective_weight_discrete(&o, &s, i);
        CHECK(rel_diff(w * (e - eth) * (e - eth), kl) < 1e-7, "vlb weight reproduces the KL at %d",
              i);
    }
    /* continuous weights take alpha, sigma; min-snr of a VE level */
    o.weighting = DFN_WEIGHT_MIN_SNR;
    o.prediction = DFN_PRED_EPS;
    CHECK(rel_diff(dfn_objective_weight(&o, 1.0, 0.1), 5.0 / 100.0) < 1e-15,
          "min-snr VE sigma 0.1");
    CHECK(dfn_objective_weight(&o, 1.0, 2.0) == 1.0, "min-snr at SNR < gamma is 1 for eps");
    dfn_schedule_free(&s);
}

/* ---------------------------------------------------------------- training inputs */

static void discrete_inputs_are_q_sample_and_targets(void) {
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_COSINE);
    dfn_schedule s;
    if (!schedule_ok(&s, &sp)) return;
    enum { B = 6, D = 10 };
    float x0[B * D], eps[B * D], xt[B * D], tgt[B * D], want[B * D], w[B];
    int t[B] = {0, 1, 250, 500, 998, 999};
    fill_uniform(x0, B * D, 61);
    fill_uniform(eps, B * D, 62);
    dfn_objective o = dfn_objective_init();
    for (int k = 0; k < DFN_PRED_COUNT; k++) {
        o.prediction = (dfn_prediction)k;
        o.weighting = k == DFN_PRED_SCORE ? DFN_WEIGHT_SIGMA2 : DFN_WEIGHT_MIN_SNR;
        dfn_objective_batch_discrete(xt, tgt, w, &o, &s, x0, eps, t, B, D);
        dfn_q_sample(want, &s, x0, eps, t, B, D);
        CHECK(!memcmp(xt, want, sizeof xt), "%s: x_t = q_sample", dfn_prediction_name(k));
        for (int b = 0; b < B; b++) {
            double a, sg;
            dfn_schedule_alpha_sigma(&s, t[b], &a, &sg);
            dfn_prediction_target(want + b * D, (dfn_prediction)k, x0 + b * D, eps + b * D, a, sg,
                                  D);
            CHECK(w[b] == (float)dfn_objective_weight_discrete(&o, &s, t[b]), "weight of sample %d",
                  b);
        }
        CHECK(!memcmp(tgt, want, sizeof tgt), "%s: targets", dfn_prediction_name(k));
    }
    /* a perfect eps prediction has zero loss; its conversion to x0 recovers x0 */
    o = dfn_objective_init();
    dfn_objective_batch_discrete(xt, tgt, NULL, &o, &s, x0, eps, t, B, D);
    CHECK(dfn_objective_loss(NULL, &o, tgt, tgt, NULL, B, D) == 0.0, "perfect prediction: loss 0");
    double al[B], sg[B];
    for (int b = 0; b < B; b++)
        dfn_schedule_alpha_sigma(&s, t[b], &al[b], &sg[b]);
    dfn_prediction_convert_batch(want, DFN_PRED_X0, eps, DFN_PRED_EPS, xt, al, sg, 4, D);
    check_tensor("x0 from eps (t <= 500)", want, x0, 4 * D, 1e-5);
    dfn_schedule_free(&s);
}

/* NCSN: score prediction with lambda = sigma^2 is the sigma-scaled (NCSNv2) loss on
 * -sigma * score with uniform weight. */
static void ncsn_score_and_sigma_scaled_losses_agree(void) {
    enum { L = 10, B = 8, D = 16 };
    double sigmas[L];
    CHECK(dfn_sigmas_geometric(sigmas, L, 0.01, 1.0) == DFN_OK, "ncsn sigmas");
    int labels[B];
    dfn_rng rng = dfn_rng_init(7);
    dfn_sample_timesteps(labels, B, L, &rng);
    double al[B], sg[B];
    for (int b = 0; b < B; b++) {
        al[b] = 1.0;
        sg[b] = sigmas[labels[b]];
    }
    float x0[B * D], eps[B * D], xt[B * D], tgt_s[B * D], tgt_e[B * D], w_s[B], w_e[B];
    float score[B * D], scaled[B * D];
    fill_uniform(x0, B * D, 71);
    dfn_rng_normal(&rng, eps, B * D);
    dfn_objective os = dfn_objective_init(), oe = dfn_objective_init();
    os.prediction = DFN_PRED_SCORE;
    os.weighting = DFN_WEIGHT_SIGMA2;
    dfn_objective_batch(xt, tgt_s, w_s, &os, x0, eps, al, sg, B, D);
    dfn_objective_batch(xt, tgt_e, w_e, &oe, x0, eps, al, sg, B, D);
    int ok = 1;
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            int i = b * D + d;
            ok &= xt[i] == (float)(x0[i] + sg[b] * eps[i]);
            ok &= fabs(tgt_s[i] + eps[i] / sg[b]) <= 1e-6 * fabs(eps[i] / sg[b]);
        }
    CHECK(ok, "ncsn: x_t = x0 + sigma eps, target -eps/sigma");
    fill_uniform(score, B * D, 72);
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            score[b * D + d] /= (float)sg[b];
            scaled[b * D + d] = (float)(-sg[b] * score[b * D + d]);
        }
    double ls = dfn_objective_loss(NULL, &os, score, tgt_s, w_s, B, D);
    double le = dfn_objective_loss(NULL, &oe, scaled, tgt_e, w_e, B, D);
    CHECK(rel_diff(ls, le) < 1e-5, "score+sigma2 loss %.9g = sigma-scaled eps loss %.9g", ls, le);
}

static void rectified_flow_inputs(void) {
    enum { B = 32, D = 4 };
    float t[B], x0[B * D], eps[B * D], xt[B * D], tgt[B * D], w[B];
    dfn_rng rng = dfn_rng_init(99);
    dfn_sample_times(t, B, 0.0, 1.0, &rng);
    fill_uniform(x0, B * D, 81);
    dfn_rng_normal(&rng, eps, B * D);
    dfn_sde fl = dfn_sde_init(DFN_SDE_FLOW);
    dfn_objective o = dfn_objective_init();
    o.prediction = DFN_PRED_FLOW;
    CHECK(dfn_objective_validate(&o, 0) == DFN_OK, "flow objective valid");
    dfn_objective_batch_sde(xt, tgt, w, &o, &fl, x0, eps, t, B, D);
    int ok = 1;
    for (int b = 0; b < B; b++) {
        ok &= t[b] > 0.0f && t[b] < 1.0f && w[b] == 1.0f;
        for (int d = 0; d < D; d++) {
            int i = b * D + d;
            ok &= xt[i] == (float)((1.0 - t[b]) * x0[i] + (double)t[b] * eps[i]);
            ok &= tgt[i] == (float)((double)eps[i] - x0[i]);
        }
    }
    CHECK(ok, "flow: x_t = (1-t) x0 + t eps, target eps - x0, t in (0,1)");
}

static void sampled_timesteps_are_uniform_and_seeded(void) {
    const int n = 100000, T = 10;
    int *t = malloc(n * sizeof(int)), count[10] = {0};
    dfn_rng r = dfn_rng_init(5);
    dfn_sample_timesteps(t, n, T, &r);
    CHECK(r.counter == (uint64_t)(n + 3) / 4, "one uniform per sample: counter %llu",
          (unsigned long long)r.counter);
    int in_range = 1;
    for (int i = 0; i < n; i++) {
        in_range &= t[i] >= 0 && t[i] < T;
        if (t[i] >= 0 && t[i] < T) count[t[i]]++;
    }
    CHECK(in_range, "steps in 0..T-1");
    double chi2 = 0, e = (double)n / T;
    for (int k = 0; k < T; k++)
        chi2 += (count[k] - e) * (count[k] - e) / e;
    CHECK(chi2 < 30.0, "uniform over steps: chi^2 = %.2f (9 dof)", chi2); /* p ~ 4e-4 */
    int t2[16];
    dfn_rng a = dfn_rng_init(5);
    dfn_sample_timesteps(t2, 16, T, &a);
    CHECK(!memcmp(t, t2, sizeof t2), "same seed, same steps");
    float ts[1000];
    dfn_rng c = dfn_rng_init(6);
    dfn_sample_times(ts, 1000, 1e-5, 1.0, &c);
    int ok = 1;
    double mean = 0;
    for (int i = 0; i < 1000; i++) {
        ok &= ts[i] > 1e-5f && ts[i] < 1.0f;
        mean += ts[i] / 1000.0;
    }
    CHECK(ok && fabs(mean - 0.5) < 5 * 0.29 / sqrt(1000.0), "times in (1e-5, 1), mean %.4f", mean);
    free(t);
}

static void bad_options_are_user_errors(void) {
    dfn_objective o = dfn_objective_init();
    CHECK(dfn_objective_validate(&o, 1) == DFN_OK && dfn_objective_validate(&o, 0) == DFN_OK,
          "defaults valid");
    o.weighting = DFN_WEIGHT_VLB;
    CHECK(dfn_objective_validate(&o, 1) == DFN_OK, "vlb on a schedule");
    CHECK(dfn_objective_validate(&o, 0) == DFN_ERR_ARG && strstr(dfn_last_error(), "vlb"),
          "vlb on a continuous process: %s", dfn_last_error());
    o = dfn_objective_init();
    o.loss = DFN_LOSS_HUBER;
    o.huber_delta = 0;
    CHECK(dfn_objective_validate(&o, 1) == DFN_ERR_ARG && strstr(dfn_last_error(), "delta"),
          "huber delta 0: %s", dfn_last_error());
    o = dfn_objective_init();
    o.weighting = DFN_WEIGHT_MIN_SNR;
    o.min_snr_gamma = -1;
    CHECK(dfn_objective_validate(&o, 1) == DFN_ERR_ARG && strstr(dfn_last_error(), "gamma"),
          "gamma < 0: %s", dfn_last_error());
    for (int k = 0; k < DFN_LOSS_COUNT; k++)
        CHECK(dfn_loss_kind_from_name(dfn_loss_kind_name(k)) == k, "loss name %d", k);
    CHECK(dfn_loss_kind_from_name("mse") == DFN_LOSS_L2, "mse alias");
    CHECK(dfn_loss_kind_from_name("l3") == -1 && strstr(dfn_last_error(), "huber"),
          "unknown loss: %s", dfn_last_error());
    for (int k = 0; k < DFN_WEIGHT_COUNT; k++)
        CHECK(dfn_weighting_from_name(dfn_weighting_name(k)) == k, "weighting name %d", k);
    CHECK(dfn_weighting_from_name("p2") == -1 && strstr(dfn_last_error(), "min-snr"),
          "unknown weighting: %s", dfn_last_error());
}

int main(void) {
    conversions_agree_with_exact_targets();
    conversions_round_trip_for_all_pairs();
    conversion_in_place_and_batched();
    x0_gain_is_the_derivative();
    losses_match_formula_and_finite_differences();
    loss_is_identical_for_any_thread_count();
    weightings_match_their_formulas();
    discrete_inputs_are_q_sample_and_targets();
    ncsn_score_and_sigma_scaled_losses_agree();
    rectified_flow_inputs();
    sampled_timesteps_are_uniform_and_seeded();
    bad_options_are_user_errors();
    TEST_MAIN_END();
}

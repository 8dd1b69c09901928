/* test_sample_api.c - the denoiser interface, the registry, bad input, bit
 * determinism, DDIM inversion, guidance, and Langevin with unequal weights. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "test_sample_util.h"
#include "test_util.h"

static dfn_mixture *two_modes(float sep, float w0) {
    const float mu[4] = {-sep, 0.0f, sep, 0.0f}, w[2] = {w0, 1.0f - w0}, sd[2] = {0.5f, 0.5f};
    dfn_mixture_params mp = {2, 2, w, mu, NULL, sd};
    dfn_mixture *m = NULL;
    CHECK(dfn_mixture_new(&m, &mp) == DFN_OK, "mixture: %s", dfn_last_error());
    return m;
}

static void mixture_score_is_the_gradient_of_its_log_density(void) {
    /* full covariance; score vs central differences of log p_t computed by
     * summing component densities in double */
    const float mu[4] = {0.3f, -0.2f, -0.4f, 0.5f}, cov[8] = {0.2f, 0.05f, 0.05f, 0.1f,
                                                              0.1f, -0.03f, -0.03f, 0.3f};
    dfn_mixture_params mp = {2, 2, NULL, mu, cov, NULL};
    dfn_mixture *m;
    CHECK(dfn_mixture_new(&m, &mp) == DFN_OK, "mixture");
    const double a = 0.8, s = 0.6;
    float x[2] = {0.1f, 0.2f}, eps[2];
    dfn_mixture_posterior(m, NULL, eps, x, a, s, 1);
    double lp[2][2];
    for (int j = 0; j < 2; j++)
        for (int sg = 0; sg < 2; sg++) {
            double xx[2] = {x[0], x[1]};
            xx[j] += sg ? 1e-4 : -1e-4;
            double p = 0;
            for (int k = 0; k < 2; k++) {
                double C[4];
                for (int i = 0; i < 4; i++) C[i] = a * a * cov[k * 4 + i] + (i % 3 == 0 ? s * s : 0);
                double det = C[0] * C[3] - C[1] * C[2];
                double d0 = xx[0] - a * mu[2 * k], d1 = xx[1] - a * mu[2 * k + 1];
                double q = (C[3] * d0 * d0 - 2 * C[1] * d0 * d1 + C[0] * d1 * d1) / det;
                p += 0.5 * exp(-0.5 * q) / (2 * 3.14159265358979323846 * sqrt(det));
            }
            lp[j][sg] = log(p);
        }
    for (int j = 0; j < 2; j++) {
        double fd = (lp[j][1] - lp[j][0]) / 2e-4, score = -eps[j] / s;
        CHECK(fabs(fd - score) < 1e-4 * (1 + fabs(fd)), "score[%d] %.6f vs finite difference %.6f", j,
              score, fd);
    }
    dfn_mixture_free(m);
}

static void bad_input_gets_a_clear_status(void) {
    dfn_mixture *m = two_modes(1.0f, 0.5f);
    dfn_sde ve = dfn_sde_init(DFN_SDE_VE), vp = dfn_sde_init(DFN_SDE_VP);
    dfn_schedule sch;
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_LINEAR);
    sp.T = 100;
    dfn_schedule_init(&sch, &sp);
    dfn_denoiser d;
    float x[8];
    dfn_rng rng = dfn_rng_init(1);
    dfn_sampler_params p = dfn_sampler_params_init();

    CHECK(dfn_sampler_find("dpm++9") == NULL && strstr(dfn_last_error(), "known: ddpm, ddim"),
          "unknown sampler lists the known: %s", dfn_last_error());
    CHECK(dfn_spacing_from_name("uniform") < 0 && strstr(dfn_last_error(), "leading, trailing, linspace"),
          "unknown spacing: %s", dfn_last_error());
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, NULL, &ve);
    CHECK(dfn_sample("dpm++2m", &d, x, 4, 2, &p, &rng, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "does not fit a ve process") && strstr(dfn_last_error(), "heun"),
          "dpm-solver on ve: %s", dfn_last_error());
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, NULL, &vp);
    CHECK(dfn_sample("annealed-langevin", &d, x, 4, 2, &p, &rng, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "it fits: ve"),
          "annealed langevin on vp: %s", dfn_last_error());
    CHECK(dfn_sample("ddim", &d, x, 4, 2, &p, &rng, NULL) == DFN_ERR_ARG, "ddim on a continuous vp");
    /* a flow model that predicts eps cannot give the velocity at t = 1 (alpha = 0): refused
     * before the first step, not NaN samples */
    dfn_sde flow = dfn_sde_init(DFN_SDE_FLOW);
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, NULL, &flow);
    for (int k = 0; k < 8; k++) x[k] = 7.0f;
    CHECK(dfn_sample("flow-euler", &d, x, 4, 2, &p, &rng, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "cannot give the velocity at t = 1") && x[0] == 7.0f,
          "flow-euler on an eps model: %s", dfn_last_error());
    dfn_mixture_denoiser(&d, m, DFN_PRED_V, NULL, &flow);
    CHECK(dfn_sample("flow-euler", &d, x, 4, 2, &p, &rng, NULL) == DFN_OK, "flow-euler on a v model: %s",
          dfn_last_error());
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, &sch, NULL);
    p.steps = 101;
    CHECK(dfn_sample("ddim", &d, x, 4, 2, &p, &rng, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "more than the schedule's T = 100"),
          "ddim steps > T: %s", dfn_last_error());
    p.steps = -1;
    CHECK(dfn_sample("euler", &d, x, 4, 2, &p, &rng, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "need at least 1"), "steps < 1: %s", dfn_last_error());
    p.steps = 50;
    CHECK(dfn_sample("ddpm", &d, x, 4, 2, &p, &rng, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "use ddim"), "ddpm with fewer steps: %s", dfn_last_error());
    dfn_denoiser both = d;
    both.sde = &vp;
    CHECK(dfn_sample("heun", &both, x, 4, 2, &p, &rng, NULL) == DFN_ERR_ARG, "two processes");
    dfn_mixture_params bad = {2, 1, NULL, (const float[]){0, 0}, (const float[]){1, 2, 2, 1}, NULL};
    dfn_mixture *mb;
    CHECK(dfn_mixture_new(&mb, &bad) == DFN_ERR_ARG && strstr(dfn_last_error(), "positive definite"),
          "indefinite covariance: %s", dfn_last_error());
    p = dfn_sampler_params_init();
    p.max_steps = 3;
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, NULL, &vp);
    CHECK(dfn_sample("ode-rk45", &d, x, 4, 2, &p, &rng, NULL) == DFN_ERR_NUMERIC &&
              strstr(dfn_last_error(), "max_steps"), "rk45 guard: %s", dfn_last_error());
    dfn_schedule_free(&sch);
    dfn_mixture_free(m);
}

static void registry_lists_every_sampler(void) {
    CHECK(dfn_num_samplers() >= 21, "%d samplers", dfn_num_samplers());
    for (int i = 0; i < dfn_num_samplers(); i++) {
        const dfn_sampler_info *s = dfn_sampler_get(i);
        CHECK(s && s->name && s->help && s->fits && s->fn && dfn_sampler_find(s->name) == s,
              "sampler %d", i);
    }
    CHECK(dfn_sampler_get(dfn_num_samplers()) == NULL, "past the end");
}

static int calls;
static void count_steps(void *ctx, int step, int steps, double t, const float *x, const float *x0,
                        int batch, size_t dim) {
    (void)ctx, (void)t, (void)x, (void)x0, (void)batch, (void)dim;
    if (step == calls + 1 && (steps == 0 || step <= steps)) calls++;
}

static void same_seed_same_bits_for_every_sampler(void) {
    dfn_mixture *m = two_modes(1.0f, 0.3f);
    dfn_sde sdes[4] = {dfn_sde_init(DFN_SDE_VP), dfn_sde_init(DFN_SDE_SUBVP), dfn_sde_init(DFN_SDE_VE),
                       dfn_sde_init(DFN_SDE_FLOW)};
    dfn_schedule sch;
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_COSINE);
    sp.T = 200;
    dfn_schedule_init(&sch, &sp);
    enum { B = 37 };
    for (int i = 0; i < dfn_num_samplers(); i++) {
        const dfn_sampler_info *s = dfn_sampler_get(i);
        dfn_denoiser d;
        if (s->fits & DFN_FITS_DISCRETE) dfn_mixture_denoiser(&d, m, DFN_PRED_V, &sch, NULL);
        else for (int k = 0; k < 4; k++)
            if (s->fits & (DFN_FITS_VP << k)) {
                /* a flow model predicts velocities: eps -> x0 divides by alpha = 0 at t = 1 */
                dfn_mixture_denoiser(&d, m, k == 3 ? DFN_PRED_FLOW : DFN_PRED_EPS, NULL, &sdes[k]);
                break;
            }
        dfn_sampler_params p = dfn_sampler_params_init();
        p.steps = strcmp(s->name, "ddpm") ? 10 : 200;
        p.levels = 3, p.steps_per_level = 4, p.s_churn = 1.0, p.eta = 0.5;
        p.callback = count_steps;
        float x1[B * 2], x2[B * 2], x3[B * 2];
        dfn_rng r1 = dfn_rng_init(9), r2 = dfn_rng_init(9), r3 = dfn_rng_init(10);
        dfn_sample_stats st;
        calls = 0;
        dfn_status a = s->fn(&d, x1, B, 2, &p, &r1, &st);
        d.max_batch = 5; /* chunking changes nothing */
        dfn_status b = s->fn(&d, x2, B, 2, &p, &r2, NULL);
        dfn_status c = s->fn(&d, x3, B, 2, &p, &r3, NULL);
        CHECK(a == DFN_OK && b == DFN_OK && c == DFN_OK, "%s runs: %s", s->name, dfn_last_error());
        CHECK(!memcmp(x1, x2, sizeof(x1)), "%s: same seed, same bits", s->name);
        CHECK(memcmp(x1, x3, sizeof(x1)), "%s: another seed, other samples", s->name);
        CHECK(calls == st.steps && st.nfe >= st.steps, "%s: %d callbacks, %d steps, nfe %ld", s->name,
              calls, st.steps, st.nfe);
        int finite = 1;
        for (int k = 0; k < B * 2; k++) finite &= isfinite(x1[k]);
        CHECK(finite, "%s: finite samples", s->name);
    }
    dfn_schedule_free(&sch);
    dfn_mixture_free(m);
}

/* x0 clipping and dynamic thresholding reach every sampler that forms an x0
 * estimate: the data at (+-3, 0) lie outside [-1, 1], so unclipped samples end
 * near +-3, clipped or thresholded ones inside [-1, 1] (the last step's x0). */
static void clipping_reaches_every_x0_sampler(void) {
    dfn_mixture *m = two_modes(3.0f, 0.5f);
    dfn_schedule sch;
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_LINEAR);
    sp.T = 200;
    dfn_schedule_init(&sch, &sp);
    static const char *const names[] = {"ddim", "dpm++2m", "dpm++2s", "dpm2m", "dpm++3m",
                                        "euler", "heun"};
    enum { B = 16 };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const dfn_sampler_info *s = dfn_sampler_find(names[i]);
        CHECK(s != NULL, "sampler %s exists", names[i]);
        if (!s) continue;
        float widest[3];
        for (int mode = 0; mode < 3; mode++) { /* 0: no clipping, 1: clip, 2: dynamic threshold */
            dfn_denoiser d;
            dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, &sch, NULL);
            dfn_sampler_params p = dfn_sampler_params_init();
            p.steps = 10;
            p.clip_x0 = mode == 1, p.dynamic_threshold = mode == 2;
            float x[B * 2];
            dfn_rng r = dfn_rng_init(3);
            CHECK(s->fn(&d, x, B, 2, &p, &r, NULL) == DFN_OK, "%s runs: %s", names[i], dfn_last_error());
            widest[mode] = 0.0f;
            for (int k = 0; k < B * 2; k++) widest[mode] = fmaxf(widest[mode], fabsf(x[k]));
        }
        CHECK(widest[0] > 2.0f, "%s without clipping reaches the data at |x| = 3 (max %.3f)", names[i],
              widest[0]);
        CHECK(widest[1] <= 1.0f && widest[2] <= 1.0f,
              "%s: clipped (max |x| %.3f) and thresholded (%.3f) samples inside [-1, 1]", names[i],
              widest[1], widest[2]);
    }
    dfn_schedule_free(&sch);
    dfn_mixture_free(m);
}

static void ddim_inversion_reconstructs(void) {
    dfn_mixture *m = two_modes(0.5f, 0.5f);
    dfn_schedule sch;
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_LINEAR);
    dfn_schedule_init(&sch, &sp);
    dfn_denoiser d;
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, &sch, NULL);
    enum { B = 64 };
    float x0[B * 2], x[B * 2];
    dfn_rng rng = dfn_rng_init(3);
    dfn_mixture_sample(m, x0, NULL, B, &rng);
    double prev = INFINITY;
    for (int S = 25; S <= 200; S *= 2) {
        dfn_sampler_params p = dfn_sampler_params_init();
        p.steps = S, p.clip_x0 = 0, p.from_x = 1;
        memcpy(x, x0, sizeof(x));
        CHECK(dfn_ddim_invert(&d, x, B, 2, &p, NULL) == DFN_OK, "invert: %s", dfn_last_error());
        double var = 0;
        for (int i = 0; i < B * 2; i++) var += (double)x[i] * x[i] / (B * 2);
        CHECK(var > 0.5 && var < 1.6, "x_T looks like N(0, I): var %.3f", var);
        CHECK(dfn_sample_ddim(&d, x, B, 2, &p, NULL, NULL) == DFN_OK, "reconstruct");
        double err = 0;
        for (int i = 0; i < B * 2; i++) { /* not fmax(): gcc 12 for aarch64 fails vectorising it (ICE) */
            const double e = fabs(x[i] - x0[i]);
            if (e > err) err = e;
        }
        printf("  ddim inversion + reconstruction, %3d steps: max error %.2e\n", S, err);
        /* first order: the error halves as the steps double */
        CHECK(err < 0.6 * prev && err < 0.2, "reconstruction error %.3e falls with steps", err);
        prev = err;
    }
    dfn_schedule_free(&sch);
    dfn_mixture_free(m);
}

/* A conditional toy: label c selects a mixture whose mean is shifted by c. */
static void shifted(void *ctx, float *out, const float *x, double t, double a, double s, const int *y,
                    int batch, size_t dim) {
    (void)ctx, (void)t;
    for (int b = 0; b < batch; b++)
        for (size_t j = 0; j < dim; j++) { /* eps of N(a m_y, (a^2 0.01 + s^2) I), m_y = y (or 0) */
            double mu = y && y[b] >= 0 ? y[b] : 0.0;
            out[b * dim + j] = (float)(s * (x[b * dim + j] - a * mu) / (a * a * 0.01 + s * s));
        }
}

static void guidance_mixes_conditional_and_unconditional(void) {
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP);
    dfn_denoiser d;
    dfn_denoiser_init(&d, shifted, NULL, DFN_PRED_EPS, NULL, &vp);
    int y[3] = {1, 1, 1};
    float x[3] = {0.2f, -0.1f, 0.5f}, e0[3], e1[3], eg[3];
    dfn_denoiser_eval(&d, e0, DFN_PRED_EPS, x, 0.5, 3, 1);
    d.labels = y;
    dfn_denoiser_eval(&d, e1, DFN_PRED_EPS, x, 0.5, 3, 1);
    d.guidance = 3.0;
    d.null_label = -1;
    d.max_batch = 2;
    dfn_denoiser_eval(&d, eg, DFN_PRED_EPS, x, 0.5, 3, 1);
    for (int i = 0; i < 3; i++)
        CHECK(fabs(eg[i] - (e0[i] + 3.0 * (e1[i] - e0[i]))) < 1e-5, "cfg[%d] %.6f", i, eg[i]);
    CHECK(d.nfe == 3, "a guided evaluation counts once (nfe %ld)", d.nfe);
}

/* Seed 002's experiment: with modes far apart, plain Langevin keeps the
 * fractions of its start (the score carries no information about the weights
 * between the modes); annealed Langevin recovers the weights 0.8 / 0.2. */
/* A denoiser whose network breaks below t = 0.5: NaN predictions. */
static void breaks_late(void *ctx, float *out, const float *x, double t, double a, double s, const int *y,
                        int batch, size_t dim) {
    (void)ctx, (void)a, (void)s, (void)y;
    for (size_t i = 0; i < (size_t)batch * dim; i++) out[i] = t < 0.5 * 200 ? NAN : 0.1f * x[i];
}

/* A network that breaks only below t = 0.05, where of a 10-step ODE only the final
 * denoising step (at t_min) evaluates it. */
static void breaks_at_the_end(void *ctx, float *out, const float *x, double t, double a, double s, const int *y,
                              int batch, size_t dim) {
    (void)ctx, (void)a, (void)s, (void)y;
    for (size_t i = 0; i < (size_t)batch * dim; i++) out[i] = t < 0.05 ? NAN : 0.1f * x[i]; /* 10 steps: the last at t = 0.1 */
}

static void non_finite_samples_stop_with_a_message(void) {
    /* a network that gives NaN half-way: every sampler stops at that step and says so */
    dfn_schedule sch;
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_LINEAR);
    sp.T = 200;
    dfn_schedule_init(&sch, &sp);
    dfn_denoiser d;
    dfn_denoiser_init(&d, breaks_late, NULL, DFN_PRED_EPS, &sch, NULL);
    float x[8 * 2];
    dfn_rng rng = dfn_rng_init(1);
    dfn_sampler_params p = dfn_sampler_params_init();
    p.steps = 10;
    CHECK(dfn_sample("ddim", &d, x, 8, 2, &p, &rng, NULL) == DFN_ERR_NUMERIC &&
              strstr(dfn_last_error(), "sampler 'ddim': step 6 of 10") &&
              strstr(dfn_last_error(), "in sample 0 of the batch"),
          "NaN half-way through ddim: %s", dfn_last_error());
    /* the final denoising step (x0 at t_min) is checked as every step is */
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP);
    dfn_denoiser_init(&d, breaks_at_the_end, NULL, DFN_PRED_EPS, NULL, &vp);
    CHECK(dfn_sample("ode-euler", &d, x, 8, 2, &p, &rng, NULL) == DFN_ERR_NUMERIC &&
              strstr(dfn_last_error(), "sampler 'ode-euler': the final denoising step"),
          "NaN in the final denoising step: %s", dfn_last_error());
    /* plain Langevin with a step too large for the score: it stops with advice */
    const float mu[4] = {-1, 0, 1, 0}, sd[2] = {0.01f, 0.01f};
    dfn_mixture_params mp = {2, 2, NULL, mu, NULL, sd};
    dfn_mixture *m = NULL;
    CHECK(dfn_mixture_new(&m, &mp) == DFN_OK, "mixture");
    dfn_sde subvp = dfn_sde_init(DFN_SDE_SUBVP);
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, NULL, &subvp);
    p = dfn_sampler_params_init();
    p.steps = 100;
    CHECK(dfn_sample("langevin", &d, x, 8, 2, &p, &rng, NULL) == DFN_ERR_NUMERIC &&
              strstr(dfn_last_error(), "sampler 'langevin': step") && strstr(dfn_last_error(), "sigma^2"),
          "langevin on a narrow sub-VP target: %s", dfn_last_error());
    /* a flow model that predicts eps cannot start at t = 1: refused before any step */
    dfn_sde flow = dfn_sde_init(DFN_SDE_FLOW);
    dfn_mixture_denoiser(&d, m, DFN_PRED_EPS, NULL, &flow);
    CHECK(dfn_sample("flow-euler", &d, x, 8, 2, NULL, &rng, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "cannot give the velocity at t = 1") && d.nfe == 0,
          "flow-euler with an eps model: %s", dfn_last_error());
    dfn_mixture_free(m);
    dfn_schedule_free(&sch);
}

static void langevin_ignores_weights_annealed_recovers_them(void) {
    dfn_mixture *m = two_modes(4.0f, 0.8f);
    dfn_sde ve = dfn_sde_init(DFN_SDE_VE);
    ve.sigma_min = 0.05, ve.sigma_max = 20;
    dfn_denoiser d;
    dfn_mixture_denoiser(&d, m, DFN_PRED_SCORE, NULL, &ve);
    enum { N = 2000 };
    float *x = malloc(sizeof(float) * N * 2);
    dfn_rng rng = dfn_rng_init(5);
    dfn_rng_normal(&rng, x, N * 2);
    double left0 = 0;
    for (int i = 0; i < N; i++) x[2 * i] *= 4.0f, left0 += x[2 * i] < 0 ? 1.0 / N : 0;
    dfn_sampler_params p = dfn_sampler_params_init();
    p.from_x = 1, p.steps = 2000, p.langevin_c = 0.01;
    CHECK(dfn_sample("langevin", &d, x, N, 2, &p, &rng, NULL) == DFN_OK, "langevin");
    double frac[2];
    component_fractions(frac, m, x, N);
    const double se = sqrt(0.8 * 0.2 / N);
    printf("  plain Langevin: start %.3f left, end %.3f left (weight 0.8)\n", left0, frac[0]);
    CHECK(fabs(frac[0] - left0) < 0.02 && fabs(frac[0] - 0.8) > 0.2,
          "plain Langevin keeps the start's fractions: %.3f vs %.3f", frac[0], left0);
    p = dfn_sampler_params_init();
    p.levels = 10, p.steps_per_level = 100;
    p.langevin_eps = 0.4 * ve.sigma_min * ve.sigma_min; /* alpha_i / sigma_i^2 = 0.4 */
    CHECK(dfn_sample("annealed-langevin", &d, x, N, 2, &p, &rng, NULL) == DFN_OK, "annealed");
    component_fractions(frac, m, x, N);
    printf("  annealed Langevin: %.3f left (weight 0.8, 5 SE = %.3f)\n", frac[0], 5 * se);
    CHECK(fabs(frac[0] - 0.8) < 5 * se + 0.02, "annealed recovers the weight: %.3f", frac[0]);
    free(x);
    dfn_mixture_free(m);
}

int main(void) {
    /* new memory full of NaN: a sampler that reads what it never wrote shows it */
    setenv("DFN_POISON", "1", 1);
    mixture_score_is_the_gradient_of_its_log_density();
    bad_input_gets_a_clear_status();
    registry_lists_every_sampler();
    same_seed_same_bits_for_every_sampler();
    clipping_reaches_every_x0_sampler();
    ddim_inversion_reconstructs();
    guidance_mixes_conditional_and_unconditional();
    langevin_ignores_weights_annealed_recovers_them();
    non_finite_samples_stop_with_a_message();
    TEST_MAIN_END();
}

/* test_fewstep.c - few-step generation, proven on exact oracles (a 2-D
 * Gaussian mixture, whose denoiser is known in closed form):
 *   - the consistency parameterisation keeps f(x, sigma_min) = x; the
 *     curriculum and the lognormal level proposal of improved consistency
 *     training are as Song & Dhariwal 2023 state them;
 *   - consistency distillation with the exact mixture as the teacher: the
 *     1-step student lands near the teacher's probability-flow ODE endpoint
 *     for the same start (an accurate Heun solve of the exact ODE), and its
 *     samples within a sliced-Wasserstein allowance of the mixture; 2 steps
 *     too; consistency training without a teacher learns the mixture as well;
 *   - reflow: pairs from the exact rectified flow of the mixture (the 1-rectified
 *     flow, exact), a network trained on them (2-rectified flow) has straighter
 *     paths (Liu et al. 2023 eq. 8) and better 1-step samples; distilling it at
 *     t = 1 improves the 1-step samples further;
 *   - bad input: a teacher on another process, no teacher, pairs with flips,
 *     a fixed time on a discrete process, rows that cannot hold pairs.
 * Under the sanitizers the same code runs with a tenth of the training and
 * without the statistical checks (the other builds of the suite make them). */
#include <string.h>

#include "test_sample_util.h"
#include "test_util.h"

#define N_EVAL 2000
#ifdef DFN_SANITIZED
/* the same code paths at a tenth of the training; the statistics are checked
 * by the suite's other builds */
#define STEPS(k) ((k) / 10)
#define QUALITY(cond, ...) ((void)0)
#define N_PAIRS 4000
#else
#define STEPS(k) (k)
#define QUALITY CHECK
#define N_PAIRS 20000
#endif

static dfn_mixture *make_mixture(void) {
    static const float w[4] = {0.3f, 0.3f, 0.2f, 0.2f};
    static const float mu[8] = {-0.6f, -0.5f, 0.6f, -0.5f, -0.5f, 0.6f, 0.6f, 0.5f};
    static const float sd[4] = {0.12f, 0.12f, 0.1f, 0.15f};
    dfn_mixture_params mp;
    memset(&mp, 0, sizeof mp);
    mp.dim = 2, mp.components = 4, mp.weights = w, mp.means = mu, mp.stds = sd;
    dfn_mixture *m = NULL;
    CHECK(dfn_mixture_new(&m, &mp) == DFN_OK, "mixture: %s", dfn_last_error());
    return m;
}

static dfn_dataset *mixture_data(dfn_mixture *m, int n, uint64_t seed) {
    float *x = malloc(sizeof(float) * 2 * (size_t)n);
    dfn_rng r = dfn_rng_init(seed);
    dfn_mixture_sample(m, x, NULL, n, &r);
    int dims[1] = {2};
    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_from_array(&ds, x, (size_t)n, 1, dims, NULL, 0) == DFN_OK, "dataset: %s", dfn_last_error());
    free(x);
    return ds;
}

static dfn_model *mlp(int width, uint64_t seed) {
    dfn_model_config cfg;
    dfn_model_config_preset(&cfg, "mlp-2d");
    cfg.mlp.width = width;
    cfg.mlp.depth = 3;
    dfn_model *m = NULL;
    CHECK(dfn_model_new(&m, &cfg, seed) == DFN_OK, "model: %s", dfn_last_error());
    return m;
}

static dfn_train_params quick(long steps) {
    dfn_train_params p = dfn_train_params_init();
    p.steps = steps;
    p.batch_size = 128;
    p.adamw.lr = 2e-3;
    p.val_every = 0;
    p.progress = 0;
    p.seed = 5;
    p.ema_decay = 0.995f;
    return p;
}

static void parameterisation(void) {
    const dfn_consistency c = {0.01, 80.0};
    double cx, cd;
    /* at sigma_min (alpha 0.8: sigma = 0.008): f = x / alpha exactly */
    dfn_consistency_coefficients(&c, 0.8, 0.8 * 0.01, &cx, &cd);
    CHECK(fabs(cx * 0.8 - 1.0) < 1e-15 && fabs(cd) < 1e-15, "boundary: c_x alpha %g, c_d %g", cx * 0.8, cd);
    dfn_consistency_coefficients(&c, 0.0, 1.0, &cx, &cd); /* a flow at t = 1: finite */
    CHECK(cx == 0.01 && cd == 1.0, "alpha 0: c_x %g, c_d %g", cx, cd);
    /* f = x/alpha - (s - smin) eps, one DDIM step to smin: x = alpha (x0 + s eps) with
     * D = x0 gives x0 + smin eps (alpha 0.6, s = 2, x0 = 0.3, eps = -1.2) */
    {
        const double a = 0.6, s2 = 2.0, x0v = 0.3, ev = -1.2, xv = a * (x0v + s2 * ev);
        dfn_consistency_coefficients(&c, a, a * s2, &cx, &cd);
        CHECK(fabs(cx * xv + cd * x0v - (x0v + 0.01 * ev)) < 1e-12, "a DDIM step to smin: %g vs %g",
              cx * xv + cd * x0v, x0v + 0.01 * ev);
    }
    /* iCT: N(0) = 11, doubling each K' = K / 8 steps up to s1 + 1 = 1281 */
    CHECK(dfn_consistency_levels(0, 8000, 10, 1280) == 11 &&
              dfn_consistency_levels(999, 8000, 10, 1280) == 11 &&
              dfn_consistency_levels(1000, 8000, 10, 1280) == 21 &&
              dfn_consistency_levels(7999, 8000, 10, 1280) == 1281 &&
              dfn_consistency_levels(100000, 8000, 10, 1280) == 1281,
          "curriculum N(k)");
    double sig[11], cdf[10];
    dfn_sigmas_karras(sig, 11, 0.002, 80, 7);
    for (int i = 0; i < 5; i++) { double t = sig[i]; sig[i] = sig[10 - i]; sig[10 - i] = t; }
    dfn_consistency_level_cdf(cdf, sig, 11, -1.1, 2.0);
    int mono = 1;
    for (int i = 1; i < 10; i++) mono &= cdf[i] >= cdf[i - 1];
    /* the mass of the pair around exp(-1.1) = 0.33 is the largest */
    int best = 0;
    for (int i = 1; i < 10; i++)
        if (cdf[i] - cdf[i - 1] > cdf[best] - (best ? cdf[best - 1] : 0)) best = i;
    CHECK(mono && cdf[9] == 1.0 && sig[best] < 0.33 && sig[best + 1] > 0.33 * 0.5,
          "lognormal proposal: monotone %d, last %g, mode pair [%g, %g]", mono, cdf[9], sig[best],
          sig[best + 1]);
    /* JSON round trip */
    char *j = dfn_consistency_to_json(&c);
    dfn_consistency back;
    CHECK(dfn_consistency_from_json(&back, j) == DFN_OK && back.sigma_min == c.sigma_min &&
              back.sigma_max == c.sigma_max,
          "json %s", j);
    free(j);
    CHECK(dfn_consistency_from_json(&back, "{\"sigma_min\": 1}") == DFN_ERR_FORMAT &&
              strstr(dfn_last_error(), "sigma_max"),
          "json missing key: %s", dfn_last_error());
}

/* Samples of a consistency model (pipe over the trained student) from the
 * starts x (n, 2) in process coordinates at the top level, `steps` steps. */
static void cm_sample(dfn_pipeline *pipe, float *x, int n, int steps, int from_x) {
    dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(pipe);
    sp.sampler_params.steps = steps;
    sp.sampler_params.from_x = from_x;
    sp.batch = 500;
    sp.seed = 77;
    CHECK(dfn_pipeline_sample(pipe, x, n, &sp, NULL) == DFN_OK, "consistency sample: %s", dfn_last_error());
}

static void distillation_and_training(void) {
    dfn_mixture *mix = make_mixture();
    dfn_dataset *data = mixture_data(mix, 20000, 1);
    dfn_process_params proc = dfn_process_params_init(); /* discrete linear, T = 1000 */
    dfn_schedule sch;
    CHECK(dfn_schedule_init(&sch, &proc.schedule) == DFN_OK, "schedule");
    dfn_denoiser teacher;
    dfn_mixture_denoiser(&teacher, mix, DFN_PRED_EPS, &sch, NULL);
    float *ref = malloc(sizeof(float) * 2 * N_EVAL), *x = malloc(sizeof(float) * 2 * N_EVAL);
    float *ode = malloc(sizeof(float) * 2 * N_EVAL), *start = malloc(sizeof(float) * 2 * N_EVAL);
    dfn_rng r = dfn_rng_init(99);
    dfn_mixture_sample(mix, ref, NULL, N_EVAL, &r);
    {
        float *other = malloc(sizeof(float) * 2 * N_EVAL);
        dfn_mixture_sample(mix, other, NULL, N_EVAL, &r);
        printf("sliced W2 floor (two exact sample sets of %d): %.4f\n", N_EVAL,
               sliced_wasserstein(ref, other, N_EVAL, 2));
        free(other);
    }

    /* distillation: student x0-prediction MLP, teacher = the exact mixture, Heun steps */
    dfn_model *student = mlp(128, 3);
    dfn_train_params p = quick(STEPS(2000));
    p.process = proc;
    p.objective.prediction = DFN_PRED_X0;
    p.consistency.method = DFN_CM_DISTILL;
    p.consistency.teacher = &teacher;
    p.consistency.heun = 1;
    p.consistency.levels = 18;
    p.consistency.target_ema = 0.9;
    CHECK(dfn_train(student, data, NULL, &p) == DFN_OK, "distill: %s", dfn_last_error());
    dfn_pipeline *pipe = NULL;
    CHECK(dfn_pipeline_new(&pipe, student, &proc, DFN_PRED_X0) == DFN_OK, "pipeline");
    dfn_consistency c = {0, 0};
    { /* the levels the task used: the process's first, and 80 */
        double a, s;
        dfn_schedule_alpha_sigma(&sch, 0, &a, &s);
        c.sigma_min = s / a;
        c.sigma_max = 80.0;
    }
    CHECK(dfn_pipeline_set_consistency(pipe, &c) == DFN_OK, "set consistency: %s", dfn_last_error());
    /* the same starts for the student and the exact ODE: x = alpha(80) 80 z */
    dfn_denoiser den;
    dfn_pipeline_denoiser(pipe, &den, 0);
    const double t80 = dfn_denoiser_t_from_lambda(&den, -log(80.0));
    double a80, s80;
    dfn_denoiser_marginal(&den, t80, &a80, &s80);
    dfn_rng_normal(&r, start, 2 * N_EVAL);
    for (int i = 0; i < 2 * N_EVAL; i++) start[i] = (float)(s80 * start[i]);
    memcpy(ode, start, sizeof(float) * 2 * N_EVAL);
    dfn_sampler_params hp = dfn_sampler_params_init();
    hp.steps = 200, hp.from_x = 1, hp.sigma_max = 80.0, hp.sigma_min = c.sigma_min, hp.clip_x0 = 0;
    CHECK(dfn_sample_karras_heun(&teacher, ode, N_EVAL, 2, &hp, &r, NULL) == DFN_OK, "exact ODE");
    memcpy(x, start, sizeof(float) * 2 * N_EVAL);
    cm_sample(pipe, x, N_EVAL, 1, 1);
    double dist = 0, spread = 0;
    for (int i = 0; i < N_EVAL; i++) {
        dist += hypot(x[2 * i] - ode[2 * i], x[2 * i + 1] - ode[2 * i + 1]);
        spread += hypot(ode[2 * i] - ref[2 * i], ode[2 * i + 1] - ref[2 * i + 1]);
    }
    dist /= N_EVAL, spread /= N_EVAL;
    const double swd_ode = sliced_wasserstein(ode, ref, N_EVAL, 2);
    const double swd1 = sliced_wasserstein(x, ref, N_EVAL, 2);
    cm_sample(pipe, x, N_EVAL, 2, 0);
    const double swd2 = sliced_wasserstein(x, ref, N_EVAL, 2);
    printf("distilled: mean |f(x_T) - ODE(x_T)| = %.4f (unpaired points: %.4f); sliced W2 to the "
           "mixture: 1 step %.4f, 2 steps %.4f, exact ODE %.4f\n",
           dist, spread, swd1, swd2, swd_ode);
    QUALITY(dist < 0.1, "the 1-step student lands within 0.1 of the teacher's ODE endpoint: %.4f", dist);
    QUALITY(swd1 < 0.06 && swd2 < 0.06, "distilled samples within 0.06 of the mixture: %.4f, %.4f", swd1, swd2);
    dfn_pipeline_free(pipe);

    /* consistency training, no teacher */
    dfn_model *ct = mlp(128, 4);
    p = quick(STEPS(1000));
    p.process = proc;
    p.objective.prediction = DFN_PRED_X0;
    p.consistency.method = DFN_CM_TRAIN;
    p.consistency.s1 = 160;
    CHECK(dfn_train(ct, data, NULL, &p) == DFN_OK, "consistency training: %s", dfn_last_error());
    CHECK(dfn_pipeline_new(&pipe, ct, &proc, DFN_PRED_X0) == DFN_OK, "pipeline");
    CHECK(dfn_pipeline_set_consistency(pipe, &c) == DFN_OK, "set consistency");
    cm_sample(pipe, x, N_EVAL, 1, 0);
    const double ct1 = sliced_wasserstein(x, ref, N_EVAL, 2);
    cm_sample(pipe, x, N_EVAL, 2, 0);
    const double ct2 = sliced_wasserstein(x, ref, N_EVAL, 2);
    printf("consistency training: sliced W2 1 step %.4f, 2 steps %.4f\n", ct1, ct2);
    QUALITY(ct1 < 0.12 && ct2 < 0.12, "trained samples within 0.12 of the mixture: %.4f, %.4f", ct1, ct2);
    dfn_pipeline_free(pipe);

    /* bad input: a teacher on another process */
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP);
    dfn_denoiser other;
    dfn_mixture_denoiser(&other, mix, DFN_PRED_EPS, NULL, &vp);
    p = quick(5);
    p.process = proc;
    p.consistency.method = DFN_CM_DISTILL;
    p.consistency.teacher = &other;
    CHECK(dfn_train(ct, data, NULL, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "process"),
          "a teacher on another process: %s", dfn_last_error());
    p.consistency.teacher = NULL;
    CHECK(dfn_train(ct, data, NULL, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "teacher"),
          "distillation without a teacher: %s", dfn_last_error());

    dfn_model_free(student);
    dfn_model_free(ct);
    dfn_schedule_free(&sch);
    dfn_dataset_free(data);
    dfn_mixture_free(mix);
    free(ref), free(x), free(ode), free(start);
}

/* 1-step Euler samples of a flow denoiser (x: n x 2 from the prior) and the
 * straightness of its paths (100 Euler steps). */
static double flow_one_step(dfn_denoiser *d, float *x, int n, uint64_t seed) {
    dfn_sampler_params sp = dfn_sampler_params_init();
    sp.steps = 1;
    dfn_rng r = dfn_rng_init(seed);
    CHECK(dfn_sample_flow_euler(d, x, n, 2, &sp, &r, NULL) == DFN_OK, "flow euler: %s", dfn_last_error());
    float *tmp = malloc(sizeof(float) * 2 * (size_t)n);
    double s = NAN;
    r = dfn_rng_init(seed);
    CHECK(dfn_flow_straightness(d, tmp, n, 2, 100, &r, &s) == DFN_OK, "straightness: %s", dfn_last_error());
    free(tmp);
    return s;
}

static void reflow(void) {
    dfn_mixture *mix = make_mixture();
    dfn_sde flow = dfn_sde_init(DFN_SDE_FLOW);
    dfn_denoiser exact;
    dfn_mixture_denoiser(&exact, mix, DFN_PRED_FLOW, NULL, &flow);
    /* pairs (x0, z): z ~ N(0, I), x0 the exact 1-rectified flow's ODE from z */
    const int n = N_PAIRS;
    float *z = malloc(sizeof(float) * 2 * n), *x0 = malloc(sizeof(float) * 2 * n);
    float *pairs = malloc(sizeof(float) * 4 * n);
    dfn_rng r = dfn_rng_init(31);
    dfn_rng_normal(&r, z, 2 * (size_t)n);
    memcpy(x0, z, sizeof(float) * 2 * n);
    dfn_sampler_params hp = dfn_sampler_params_init();
    hp.steps = 100, hp.from_x = 1, hp.clip_x0 = 0;
    CHECK(dfn_sample_ode_heun(&exact, x0, n, 2, &hp, &r, NULL) == DFN_OK, "pairs: %s", dfn_last_error());
    for (int i = 0; i < n; i++) {
        memcpy(pairs + 4 * i, x0 + 2 * i, 2 * sizeof(float));
        memcpy(pairs + 4 * i + 2, z + 2 * i, 2 * sizeof(float));
    }
    int dims[1] = {4};
    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_from_array(&ds, pairs, (size_t)n, 1, dims, NULL, 0) == DFN_OK, "pairs dataset");
    /* the 2-rectified flow: a network on the pairs */
    dfn_model *net = mlp(128, 6);
    dfn_train_params p = quick(STEPS(2000));
    p.process.continuous = 1;
    p.process.sde = flow;
    p.process.t_min = 1e-3;
    p.objective.prediction = DFN_PRED_FLOW;
    p.paired_noise = 1;
    CHECK(dfn_train(net, ds, NULL, &p) == DFN_OK, "2-rectified flow: %s", dfn_last_error());
    dfn_denoiser rf2;
    dfn_model_denoiser(&rf2, net, DFN_PRED_FLOW, NULL, &flow, 0, p.process.time_scale);

    float *ref = malloc(sizeof(float) * 2 * N_EVAL), *x = malloc(sizeof(float) * 2 * N_EVAL);
    dfn_mixture_sample(mix, ref, NULL, N_EVAL, &r);
    const double s1 = flow_one_step(&exact, x, N_EVAL, 5);
    const double w1 = sliced_wasserstein(x, ref, N_EVAL, 2);
    const double s2 = flow_one_step(&rf2, x, N_EVAL, 5);
    const double w2 = sliced_wasserstein(x, ref, N_EVAL, 2);
    printf("reflow: straightness 1-rectified (exact) %.4f, 2-rectified %.4f; 1-step sliced W2 "
           "%.4f -> %.4f\n", s1, s2, w1, w2);
    QUALITY(s2 < 0.5 * s1, "the 2-rectified flow's paths are straighter: %.4f vs %.4f", s2, s1);
    QUALITY(w2 < 0.5 * w1, "and its 1-step samples closer to the mixture: %.4f vs %.4f", w2, w1);

    /* distillation to one step: the same pairs at t = 1 only, from the 2-rectified flow */
    p.fixed_time = 1.0;
    p.steps = STEPS(1000);
    CHECK(dfn_train(net, ds, NULL, &p) == DFN_OK, "distillation: %s", dfn_last_error());
    flow_one_step(&rf2, x, N_EVAL, 5);
    const double w3 = sliced_wasserstein(x, ref, N_EVAL, 2);
    printf("reflow distilled at t = 1: 1-step sliced W2 %.4f\n", w3);
    QUALITY(w3 < 0.06, "distilled 1-step samples within 0.06 of the mixture: %.4f", w3);

    /* bad input: pairs with flips, a fixed time on a discrete process, odd rows */
    p.hflip = 1;
    CHECK(dfn_train(net, ds, NULL, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "flip"),
          "pairs with flips: %s", dfn_last_error());
    p.hflip = 0;
    p.process = dfn_process_params_init();
    CHECK(dfn_train(net, ds, NULL, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "fixed"),
          "a fixed time on a discrete process: %s", dfn_last_error());
    dfn_dataset *plain = NULL;
    int d3[1] = {3};
    CHECK(dfn_dataset_from_array(&plain, pairs, 100, 1, d3, NULL, 0) == DFN_OK, "odd");
    p = quick(5);
    p.paired_noise = 1;
    CHECK(dfn_train(net, plain, NULL, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "pairs"),
          "odd rows: %s", dfn_last_error());
    dfn_dataset_free(plain);
    dfn_model_free(net);
    dfn_dataset_free(ds);
    dfn_mixture_free(mix);
    free(z), free(x0), free(pairs), free(ref), free(x);
}

int main(void) {
    parameterisation();
    distillation_and_training();
    reflow();
    TEST_MAIN_END();
}

/* consistency_task.c - what a batch of a consistency model's training computes
 * (diffusion/train.h): consistency distillation (Song et al. 2023, "Consistency
 * models", alg. 2) and consistency training (alg. 3, with Song & Dhariwal 2023,
 * "Improved techniques for training consistency models").
 *
 * Levels are EDM's s = sigma/alpha on a Karras ladder s_0 < ... < s_{N-1} from
 * the process's first level sigma_min to sigma_max; level s is the process
 * time t(s) = t_from_lambda(-log s), where x = alpha (x0 + s eps). For a pair
 * (s_n, s_n+1) of adjacent levels:
 *   x_n+1 = alpha_n+1 (x0 + s_n+1 z)
 *   x_n   = distillation: one step of the teacher's probability-flow ODE, in
 *           y = x/alpha, dy/ds = eps(x, s) (DDIM is its Euler step, Heun adds
 *           the trapezoidal correction); training: alpha_n (x0 + s_n z), the
 *           same z (the ODE step of the score's unbiased estimate, Song et al.
 *           2023 section 5)
 *   loss  = lambda(n) d(f_theta(x_n+1), f_theta-(x_n))
 * with f = c_x x + c_d D (process.h), D the network's x0 estimate. The target
 * f_theta- runs first (without gradient; the student's dropout masks: the same
 * draws), so the student's forward leaves its activations for the backward.
 *
 * Randomness: per micro-batch and in this order the levels (one uniform each),
 * z, the label drops and the dropout masks. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "models/models.h"
#include "train/train.h"

static const char *const method_names[] = {"none", "cd", "ct"};

const char *dfn_cm_method_name(dfn_cm_method m) { return dfn_name_of(method_names, 3, (int)m); }
int dfn_cm_method_from_name(const char *name) {
    return dfn_name_lookup("consistency method", name, method_names, 3, NULL);
}

typedef struct {
    const dfn_train_params *p;
    const dfn_consistency_params *cp;
    dfn_pipeline *pipe; /* the student: process, prediction and its consistency levels */
    dfn_denoiser proc;  /* the process's helpers (levels <-> times) */
    char *objective_json;
    dfn_consistency c;
    int B, huber, N, max_levels;
    size_t D, P;
    double *sig, *lev_t, *lev_a, *lev_s, *cdf; /* the ladder now (ascending), per level */
    float *target_w;                          /* distillation's target network, or NULL */
    float *z, *xhi, *xlo, *tgt, *out, *f, *u, *tnet, *gx, *geps, *geps2;
    double *a, *s, *cd, *gain;
    int *n, *lo, *y, *gy, *idx;
} cm_state;

/* The process at level s: time, alpha, sigma. */
static void level(const cm_state *st, double s, double *t, double *a, double *sg) {
    *t = dfn_denoiser_t_from_lambda(&st->proc, -log(s));
    dfn_denoiser_marginal(&st->proc, *t, a, sg);
}

/* The network's time input at process time t (discrete: the step index). */
static float net_time(const cm_state *st, double t) {
    const dfn_process_params *pr = &st->p->process;
    return (float)(pr->continuous ? pr->time_scale * t : t);
}

static void build_ladder(cm_state *st, int N) {
    double *desc = dfn_malloc((size_t)N * sizeof(double));
    dfn_status ok = dfn_sigmas_karras(desc, N, st->c.sigma_min, st->c.sigma_max, st->cp->rho);
    DFN_ASSERT(ok == DFN_OK);
    for (int i = 0; i < N; i++) {
        st->sig[i] = desc[N - 1 - i];
        double sg;
        level(st, st->sig[i], &st->lev_t[i], &st->lev_a[i], &sg);
        st->lev_s[i] = sg;
    }
    free(desc);
    if (st->cp->method == DFN_CM_TRAIN)
        dfn_consistency_level_cdf(st->cdf, st->sig, N, st->cp->p_mean, st->cp->p_std);
    st->N = N;
}

static dfn_status check(const dfn_model *m, const dfn_dataset *ds, const dfn_train_params *p,
                        const char *what) {
    return dfn_diffusion_task.check(m, ds, p, what);
}

static void end(void *state) {
    cm_state *s = state;
    if (!s) return;
    dfn_pipeline_free(s->pipe);
    free(s->objective_json);
    free(s->sig), free(s->lev_t), free(s->lev_a), free(s->lev_s), free(s->cdf);
    free(s->target_w);
    free(s->z), free(s->xhi), free(s->xlo), free(s->tgt), free(s->out), free(s->f), free(s->u);
    free(s->tnet), free(s->gx), free(s->geps), free(s->geps2);
    free(s->a), free(s->s), free(s->cd), free(s->gain);
    free(s->n), free(s->lo), free(s->y), free(s->gy), free(s->idx);
    free(s);
}

/* 1 if the teacher integrates the student's process. */
static int same_process(const dfn_denoiser *t, const dfn_pipeline *pipe) {
    const dfn_schedule *ps = dfn_pipeline_schedule(pipe);
    const dfn_process_params *pp = dfn_pipeline_process(pipe);
    if (ps) {
        if (!t->schedule || t->schedule->T != ps->T) return 0;
        for (int i = 0; i < ps->T; i++)
            if (fabs(t->schedule->beta[i] - ps->beta[i]) > 1e-12 * ps->beta[i]) return 0; /* (JSON) */
        return 1;
    }
    const dfn_sde *a = t->sde, *b = &pp->sde;
    return a && a->kind == b->kind && a->beta_min == b->beta_min && a->beta_max == b->beta_max &&
           a->sigma_min == b->sigma_min && a->sigma_max == b->sigma_max;
}

static dfn_status begin(void **state, dfn_model *m, const dfn_train_params *p, int B) {
    *state = NULL;
    const dfn_consistency_params *cp = &p->consistency;
    dfn_status st = dfn_objective_validate(&p->objective, !p->process.continuous);
    if (st != DFN_OK) return st;
    cm_state *s = dfn_calloc(1, sizeof *s);
    s->p = p;
    s->cp = cp;
    if ((st = dfn_pipeline_new(&s->pipe, m, &p->process, p->objective.prediction)) != DFN_OK) {
        free(s);
        return st;
    }
    dfn_pipeline_denoiser(s->pipe, &s->proc, 0);
    if (cp->method == DFN_CM_DISTILL && !same_process(cp->teacher, s->pipe)) {
        end(s);
        return dfn_set_error(DFN_ERR_ARG, "the teacher's noise process is not the model's: a "
                                          "consistency student learns its teacher's ODE, on the "
                                          "same process");
    }
    /* the levels: the process's first (its t_min; step 0) to its last, at most sigma_max */
    const double t_first = p->process.continuous ? p->process.t_min : 0.0;
    double t_top, t_lo;
    dfn_denoiser_t_range(&s->proc, -1.0, &t_lo, &t_top);
    s->c.sigma_min = exp(-dfn_denoiser_lambda(&s->proc, t_first));
    s->c.sigma_max = fmin(exp(-dfn_denoiser_lambda(&s->proc, t_top)), cp->sigma_max);
    if ((st = dfn_pipeline_set_consistency(s->pipe, &s->c)) != DFN_OK) {
        end(s);
        return st;
    }
    s->huber = cp->pseudo_huber >= 0 ? cp->pseudo_huber : cp->method == DFN_CM_TRAIN;
    s->objective_json = dfn_objective_to_json(&p->objective);
    s->B = B;
    s->D = dfn_model_input_size(m);
    s->P = dfn_model_num_params(m);
    s->max_levels = cp->method == DFN_CM_DISTILL ? cp->levels : cp->s1 + 1;
    const size_t L = (size_t)s->max_levels, BD = (size_t)B * s->D;
    s->sig = dfn_malloc(L * sizeof(double));
    s->lev_t = dfn_malloc(L * sizeof(double));
    s->lev_a = dfn_malloc(L * sizeof(double));
    s->lev_s = dfn_malloc(L * sizeof(double));
    s->cdf = dfn_malloc(L * sizeof(double));
    build_ladder(s, cp->method == DFN_CM_DISTILL ? cp->levels
                                                 : dfn_consistency_levels(0, p->steps, cp->s0, cp->s1));
    if (cp->method == DFN_CM_DISTILL && cp->target_ema > 0) { /* theta- starts as theta */
        s->target_w = dfn_malloc(s->P * sizeof(float));
        memcpy(s->target_w, dfn_model_params(m), s->P * sizeof(float));
    }
    float **bufs[] = {&s->z, &s->xhi, &s->xlo, &s->tgt, &s->out, &s->f, &s->gx, &s->geps, &s->geps2};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) *bufs[i] = dfn_malloc(BD * sizeof(float));
    s->u = dfn_malloc((size_t)B * sizeof(float));
    s->tnet = dfn_malloc((size_t)B * sizeof(float));
    s->a = dfn_malloc(2 * (size_t)B * sizeof(double));
    s->s = dfn_malloc(2 * (size_t)B * sizeof(double));
    s->cd = dfn_malloc((size_t)B * sizeof(double));
    s->gain = dfn_malloc((size_t)B * sizeof(double));
    s->n = dfn_malloc((size_t)B * sizeof(int));
    s->lo = dfn_malloc((size_t)B * sizeof(int));
    s->y = dfn_malloc((size_t)B * sizeof(int));
    s->gy = dfn_malloc((size_t)B * sizeof(int));
    s->idx = dfn_malloc((size_t)B * sizeof(int));
    *state = s;
    return DFN_OK;
}

/* Step k's work: consistency training's curriculum N(k) (k - 1 steps done), and
 * the target network's EMA theta- = mu theta- + (1 - mu) theta after every
 * optimizer step (here, before the next one's batches: the same sequence for a
 * resumed run, whose first step here follows a step it saved). */
static void start_step(void *state, dfn_model *m, long k) {
    cm_state *s = state;
    if (s->cp->method == DFN_CM_TRAIN) {
        const int N = dfn_consistency_levels(k - 1, s->p->steps, s->cp->s0, s->cp->s1);
        if (N != s->N) build_ladder(s, N);
    }
    if (s->target_w && k >= 2) dfn_ema_update(s->target_w, dfn_model_params(m), s->P, (float)s->cp->target_ema);
}

static float *kept_weights(void *state, const char **prefix) {
    cm_state *s = state;
    *prefix = "target.";
    return s->target_w;
}

/* The teacher's ODE step from x_n+1 (level n + 1) to level n for the rows of
 * one level pair, gathered: y = x/alpha, y_n = y_n+1 + (s_n - s_n+1) eps (DDIM),
 * Heun averaging eps at both ends. */
static void teacher_step(cm_state *s, const int *y, int n, int count) {
    const size_t D = s->D, m = (size_t)count * D;
    dfn_denoiser t = *s->cp->teacher;
    t.labels = y ? s->gy : NULL;
    t.guidance = 1.0;
    t.guide = NULL;
    for (int j = 0; j < count; j++) {
        memcpy(s->gx + (size_t)j * D, s->xhi + (size_t)s->idx[j] * D, D * sizeof(float));
        if (y) s->gy[j] = y[s->idx[j]];
    }
    const double ah = s->lev_a[n + 1], al = s->lev_a[n], ds = s->sig[n] - s->sig[n + 1];
    dfn_denoiser_eval(&t, s->geps, DFN_PRED_EPS, s->gx, s->lev_t[n + 1], count, D);
    for (size_t i = 0; i < m; i++) s->gx[i] = (float)(al * (s->gx[i] / ah + ds * s->geps[i]));
    if (s->cp->heun) {
        float *x1 = s->geps2; /* x_n+1 again, for the corrected step */
        for (int j = 0; j < count; j++)
            memcpy(x1 + (size_t)j * D, s->xhi + (size_t)s->idx[j] * D, D * sizeof(float));
        float *e2 = s->f; /* (free until the student's forward) */
        dfn_denoiser_eval(&t, e2, DFN_PRED_EPS, s->gx, s->lev_t[n], count, D);
        for (size_t i = 0; i < m; i++)
            s->gx[i] = (float)(al * (x1[i] / ah + ds * 0.5 * ((double)s->geps[i] + e2[i])));
    }
    for (int j = 0; j < count; j++)
        memcpy(s->xlo + (size_t)s->idx[j] * D, s->gx + (size_t)j * D, D * sizeof(float));
}

/* f (B, D) of the network at x, row b at level row (lev[b]): forward, the
 * prediction as x0 (through the score's output scale), then f = c_x x + c_d D;
 * c_d and dD/dF per row into s->cd, s->gain when want_grad. */
static void consistency_fn(cm_state *s, dfn_model *m, float *f, const float *x, const int *lev,
                           const int *y, int B, int mode, dfn_rng *rng, int want_grad) {
    const size_t D = s->D;
    const dfn_prediction kind = s->p->objective.prediction;
    for (int b = 0; b < B; b++) s->tnet[b] = net_time(s, s->lev_t[lev[b]]);
    dfn_model_forward(m, f, x, s->tnet, y, B, mode, rng);
    for (int b = 0; b < B; b++) {
        const double a = s->lev_a[lev[b]], sg = s->lev_s[lev[b]];
        const double scale = dfn_prediction_network_scale(kind, a, sg);
        float *fb = f + (size_t)b * D;
        const float *xb = x + (size_t)b * D;
        if (scale != 1.0)
            for (size_t i = 0; i < D; i++) fb[i] = (float)(scale * fb[i]);
        dfn_prediction_convert(fb, DFN_PRED_X0, fb, kind, xb, a, sg, D);
        dfn_consistency_apply(&s->c, fb, xb, fb, a, sg, D);
        if (want_grad) { /* D is affine in the output F: dD/dF = D(F = 1, x = 0) */
            float one = 1.0f, zero = 0.0f, g;
            double cx, cd;
            dfn_consistency_coefficients(&s->c, a, sg, &cx, &cd);
            dfn_prediction_convert(&g, DFN_PRED_X0, &one, kind, &zero, a, sg, 1);
            s->cd[b] = cd;
            s->gain[b] = g * scale;
        }
    }
}

static double batch(void *state, dfn_model *m, const float *x0, const int *labels, int B,
                    int train, dfn_rng *rng, float grad_scale, double *metric) {
    (void)metric;
    cm_state *s = state;
    const dfn_train_params *p = s->p;
    const size_t D = s->D;
    const int N = s->N, distill = s->cp->method == DFN_CM_DISTILL;
    DFN_ASSERT(B <= s->B);
    /* the level pairs: uniform (distillation) or lognormal (training) */
    dfn_rng_uniform(rng, s->u, (size_t)B);
    int *hi = s->n, *lo = s->lo;
    for (int b = 0; b < B; b++) {
        int n = 0;
        if (distill) n = (int)(s->u[b] * (N - 1));
        else
            while (n < N - 2 && s->cdf[n] < s->u[b]) n++;
        n = n < 0 ? 0 : n > N - 2 ? N - 2 : n;
        lo[b] = n;
        hi[b] = n + 1;
    }
    dfn_rng_normal(rng, s->z, (size_t)B * D);
    const int K = dfn_model_get_config(m)->num_classes;
    const int *y = dfn_train_labels(s->y, labels, B, K, train ? p->p_uncond : 0, s->u, rng);
    for (int b = 0; b < B; b++) {
        const double ah = s->lev_a[hi[b]], sh = s->sig[hi[b]], al = s->lev_a[lo[b]], sl = s->sig[lo[b]];
        for (size_t i = 0; i < D; i++) {
            const size_t k = (size_t)b * D + i;
            s->xhi[k] = (float)(ah * (x0[k] + sh * s->z[k]));
            if (!distill) s->xlo[k] = (float)(al * (x0[k] + sl * s->z[k]));
        }
    }
    if (distill) /* one teacher call per level pair present */
        for (int n = 0; n + 1 < N; n++) {
            int count = 0;
            for (int b = 0; b < B; b++)
                if (lo[b] == n) s->idx[count++] = b;
            if (count) teacher_step(s, y, n, count);
        }
    /* the target f_theta-(x_n), with the student's dropout masks */
    const int mode = train ? DFN_TRAIN : DFN_EVAL;
    dfn_rng masks = *rng;
    float *own = NULL;
    if (s->target_w) own = dfn_model_exchange_params(m, s->target_w);
    consistency_fn(s, m, s->tgt, s->xlo, lo, y, B, mode, &masks, 0);
    if (s->target_w) s->target_w = dfn_model_exchange_params(m, own);
    /* the student f_theta(x_n+1) */
    consistency_fn(s, m, s->f, s->xhi, hi, y, B, mode, rng, 1);
    /* the distance, weighted: lambda = 1 (distillation), 1/(s_n+1 - s_n) (training) */
    const double c = 0.00054 * sqrt((double)D);
    double loss = 0;
    for (int b = 0; b < B; b++) {
        const float *fb = s->f + (size_t)b * D, *tb = s->tgt + (size_t)b * D;
        double ss = 0;
        for (size_t i = 0; i < D; i++) ss += ((double)fb[i] - tb[i]) * ((double)fb[i] - tb[i]);
        const double lambda = distill ? 1.0 : 1.0 / (s->sig[hi[b]] - s->sig[lo[b]]);
        const double r = sqrt(ss + c * c);
        loss += lambda * (s->huber ? r - c : ss / (double)D);
        if (!train) continue;
        /* d loss / d F = d loss / d f * c_d * dD/dF; the loss is the batch mean */
        const double g = lambda / B * (s->huber ? 1.0 / r : 2.0 / (double)D) * s->cd[b] * s->gain[b] *
                         grad_scale;
        float *db = s->out + (size_t)b * D;
        for (size_t i = 0; i < D; i++) db[i] = (float)(g * ((double)fb[i] - tb[i]));
    }
    if (train) dfn_model_backward(m, s->out, NULL);
    return loss / B;
}

static void describe(void *state, void *run) {
    cm_state *s = state;
    const dfn_consistency_params *cp = s->cp;
    char *process = dfn_process_to_json(dfn_pipeline_process(s->pipe), dfn_pipeline_schedule(s->pipe));
    cJSON_AddItemToObject(run, "process", cJSON_Parse(process));
    cJSON_AddItemToObject(run, "objective", cJSON_Parse(s->objective_json));
    free(process);
    cJSON *o = cJSON_AddObjectToObject(run, "consistency");
    cJSON_AddStringToObject(o, "method", dfn_cm_method_name(cp->method));
    if (cp->method == DFN_CM_DISTILL) {
        if (cp->teacher_name) cJSON_AddStringToObject(o, "teacher", cp->teacher_name);
        else cJSON_AddNullToObject(o, "teacher");
        cJSON_AddStringToObject(o, "teacher_step", cp->heun ? "heun" : "ddim");
        cJSON_AddNumberToObject(o, "levels", cp->levels);
        cJSON_AddNumberToObject(o, "target_ema", cp->target_ema);
    } else {
        cJSON_AddNumberToObject(o, "s0", cp->s0);
        cJSON_AddNumberToObject(o, "s1", cp->s1);
        /* N(k) is a schedule over the run's steps: a resumed run may not move it */
        cJSON_AddNumberToObject(o, "curriculum_steps", s->p->steps);
        cJSON_AddNumberToObject(o, "p_mean", cp->p_mean);
        cJSON_AddNumberToObject(o, "p_std", cp->p_std);
    }
    cJSON_AddStringToObject(o, "distance", s->huber ? "pseudo-huber" : "l2");
    cJSON_AddNumberToObject(o, "sigma_min", s->c.sigma_min);
    cJSON_AddNumberToObject(o, "sigma_max", s->c.sigma_max);
    cJSON_AddNumberToObject(o, "rho", cp->rho);
}

static dfn_status save(void *state, dfn_model *m, const char *path, const char *const *extra) {
    (void)m; /* the pipeline's model */
    cm_state *s = state;
    const char *meta[16];
    dfn_train_metadata(meta, 16, "objective", s->objective_json, extra);
    return dfn_pipeline_save(s->pipe, path, meta);
}

static dfn_status preview(void *state, dfn_model *m, const dfn_dataset *data, int count,
                          uint64_t seed, const char *prefix) {
    (void)m;
    cm_state *s = state;
    return dfn_train_preview_pipeline(s->pipe, s->p, data, count, seed, prefix);
}

static dfn_status draw(void *state, dfn_model *m, int count, uint64_t seed, const char *sampler,
                       int steps, float *out) {
    (void)m;
    return dfn_train_draw_pipeline(((cm_state *)state)->pipe, count, seed, sampler, steps, out);
}

const dfn_train_task dfn_consistency_task = {
    "consistency", NULL, check, begin, end, batch, describe, save, preview, NULL, start_step,
    kept_weights, draw};

/* classifier_task.c - what a batch of a classifier's training computes: the
 * logits, the mean softmax cross-entropy on the labels and its backward; the
 * validation metric is the accuracy.
 *
 * A time-conditioned classifier (time_embed) learns p(c | x_t, t) for
 * classifier guidance (Dhariwal & Nichol 2021 section 4): each image is noised
 * as the diffusion model's training noises it, x_t = alpha_t x0 + sigma_t eps on
 * the run's process at a uniformly drawn time (per micro-batch: the times, then
 * the noise), and the checkpoint records that process ("process" metadata) so
 * that guidance can refuse a classifier of another process. */
#include <math.h>
#include <string.h>

#include "models/models.h"
#include "train/train.h"

typedef struct {
    int B, K;
    float *logits, *dlogits;
    /* time-conditioned: the process, x_t, the times */
    int timed;
    const dfn_process_params *proc;
    dfn_schedule schedule; /* discrete processes */
    float *xt, *eps, *tnet, *tcont;
    int *tidx;
    double *alpha, *sigma;
    size_t D;
} classifier_state;

static dfn_status check(const dfn_model *m, const dfn_dataset *ds, const dfn_train_params *p,
                        const char *what) {
    (void)p;
    const int K = dfn_model_get_config(m)->num_classes;
    if (!dfn_dataset_labels((dfn_dataset *)ds) || dfn_dataset_num_classes(ds) == 0)
        return dfn_set_error(DFN_ERR_ARG, "%s: the images have no labels (a classifier needs them)",
                             what);
    if (dfn_dataset_num_classes(ds) > K)
        return dfn_set_error(DFN_ERR_ARG, "%s: %d classes, but the classifier has %d", what,
                             dfn_dataset_num_classes(ds), K);
    return DFN_OK;
}

static void end(void *state);

static dfn_status begin(void **state, dfn_model *m, const dfn_train_params *p, int B) {
    classifier_state *s = dfn_calloc(1, sizeof *s);
    s->B = B;
    s->K = dfn_model_get_config(m)->num_classes;
    s->logits = dfn_malloc((size_t)B * s->K * sizeof(float));
    s->dlogits = dfn_malloc((size_t)B * s->K * sizeof(float));
    s->timed = dfn_model_takes_time(m);
    *state = s;
    if (!s->timed) return DFN_OK;
    s->proc = &p->process;
    if (!p->process.continuous) {
        dfn_status st = dfn_schedule_init(&s->schedule, &p->process.schedule);
        if (st != DFN_OK) {
            end(s);
            *state = NULL;
            return st;
        }
    }
    s->D = dfn_model_input_size(m);
    s->xt = dfn_malloc((size_t)B * s->D * sizeof(float));
    s->eps = dfn_malloc((size_t)B * s->D * sizeof(float));
    s->tnet = dfn_malloc((size_t)B * sizeof(float));
    s->tcont = dfn_malloc((size_t)B * sizeof(float));
    s->tidx = dfn_malloc((size_t)B * sizeof(int));
    s->alpha = dfn_malloc((size_t)B * sizeof(double));
    s->sigma = dfn_malloc((size_t)B * sizeof(double));
    return DFN_OK;
}

static void end(void *state) {
    classifier_state *s = state;
    if (!s) return;
    free(s->logits);
    free(s->dlogits);
    if (s->timed && s->proc && !s->proc->continuous) dfn_schedule_free(&s->schedule);
    free(s->xt);
    free(s->eps);
    free(s->tnet);
    free(s->tcont);
    free(s->tidx);
    free(s->alpha);
    free(s->sigma);
    free(s);
}

/* x_t = alpha x0 + sigma eps at times drawn as the diffusion model's training
 * draws them (dfn_sample_timesteps / dfn_sample_times), then the noise. */
static const float *noised(classifier_state *s, const float *x0, int B, dfn_rng *rng) {
    const dfn_process_params *proc = s->proc;
    if (!proc->continuous) {
        dfn_sample_timesteps(s->tidx, B, s->schedule.T, rng);
        for (int b = 0; b < B; b++) {
            s->tnet[b] = (float)s->tidx[b];
            dfn_schedule_alpha_sigma(&s->schedule, s->tidx[b], &s->alpha[b], &s->sigma[b]);
        }
    } else {
        dfn_sample_times(s->tcont, B, proc->t_min, 1.0, rng);
        for (int b = 0; b < B; b++) {
            s->tnet[b] = (float)(proc->time_scale * s->tcont[b]);
            dfn_sde_marginal(&proc->sde, s->tcont[b], &s->alpha[b], &s->sigma[b]);
        }
    }
    dfn_rng_normal(rng, s->eps, (size_t)B * s->D);
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < s->D; i++) {
            const size_t k = (size_t)b * s->D + i;
            s->xt[k] = (float)(s->alpha[b] * x0[k] + s->sigma[b] * s->eps[k]);
        }
    return s->xt;
}

static double batch(void *state, dfn_model *m, const float *x, const int *y, int B, int train,
                    dfn_rng *rng, float grad_scale, double *metric) {
    classifier_state *s = state; /* noise only for a time-conditioned one; dropout from rng */
    DFN_ASSERT(y && B <= s->B);
    const int K = s->K;
    const float *in = s->timed ? noised(s, x, B, rng) : x;
    dfn_model_forward(m, s->logits, in, s->timed ? s->tnet : NULL, NULL, B,
                      train ? DFN_TRAIN : DFN_EVAL, train ? rng : NULL);
    double loss = dfn_softmax_cross_entropy(train ? s->dlogits : NULL, s->logits, y, B, K);
    if (metric) *metric = (double)dfn_logits_count_correct(s->logits, y, B, K);
    if (train) {
        if (grad_scale != 1.0f)
            for (size_t i = 0; i < (size_t)B * K; i++) s->dlogits[i] *= grad_scale;
        dfn_model_backward(m, s->dlogits, NULL);
    }
    return loss;
}

static dfn_status save(void *state, dfn_model *m, const char *path, const char *const *extra) {
    classifier_state *s = state;
    if (!s || !s->timed) return dfn_model_save(m, path, extra);
    char *process = dfn_process_to_json(s->proc, s->proc->continuous ? NULL : &s->schedule);
    const char *meta[16];
    dfn_train_metadata(meta, 16, "process", process, extra);
    dfn_status st = dfn_model_save(m, path, meta);
    free(process);
    return st;
}

const dfn_train_task dfn_classifier_task = {"classifier", "accuracy", check, begin, end,
                                            batch,        NULL,       save,  NULL,  NULL, NULL, NULL, NULL};

/* classifier_task.c - what a batch of a classifier's training computes: the
 * logits, the mean softmax cross-entropy on the labels and its backward; the
 * validation metric is the accuracy. */
#include <math.h>
#include <string.h>

#include "models/models.h"
#include "train/train.h"

typedef struct {
    int B, K;
    float *logits, *dlogits;
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

static dfn_status begin(void **state, dfn_model *m, const dfn_train_params *p, int B) {
    (void)p;
    classifier_state *s = dfn_calloc(1, sizeof *s);
    s->B = B;
    s->K = dfn_model_get_config(m)->num_classes;
    s->logits = dfn_malloc((size_t)B * s->K * sizeof(float));
    s->dlogits = dfn_malloc((size_t)B * s->K * sizeof(float));
    *state = s;
    return DFN_OK;
}

static void end(void *state) {
    classifier_state *s = state;
    if (!s) return;
    free(s->logits);
    free(s->dlogits);
    free(s);
}

static double batch(void *state, dfn_model *m, const float *x, const int *y, int B, int train,
                    dfn_rng *rng, float grad_scale, double *metric) {
    (void)rng; /* no dropout, no noise */
    classifier_state *s = state;
    DFN_ASSERT(y && B <= s->B);
    const int K = s->K;
    dfn_model_forward(m, s->logits, x, NULL, NULL, B, train ? DFN_TRAIN : DFN_EVAL, NULL);
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
    (void)state;
    return dfn_model_save(m, path, extra);
}

const dfn_train_task dfn_classifier_task = {"classifier", "accuracy", check, begin, end,
                                            batch,        NULL,       save,  NULL};

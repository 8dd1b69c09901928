/* accuracy.c - how often a classifier names the right class. */
#include "eval/eval.h"
#include "models/models.h"

#define ACCURACY_CHUNK 64 /* images per forward */

/* noisy: x = alpha x0 + sigma eps at network time t_net (a classifier of noisy images) */
static dfn_status accuracy(dfn_model *m, const dfn_dataset *ds, int noisy, double t_net,
                           double alpha, double sigma, uint64_t seed, double *accuracy) {
    DFN_ASSERT(m && ds && accuracy);
    dfn_status st;
    int dims[DFN_DATASET_MAX_DIMS], nd = dfn_dataset_shape(ds, dims);
    if (noisy && !(dfn_model_get_config(m)->kind == DFN_MODEL_CLASSIFIER && dfn_model_takes_time(m)))
        return dfn_set_error(DFN_ERR_ARG, "noisy accuracy: not a classifier of noisy images "
                                          "(train-classifier --noisy makes one)");
    if ((!noisy && (st = dfn_eval_check_classifier(m)) != DFN_OK) ||
        (st = dfn_model_check_input(m, nd, dims, "evaluation data")) != DFN_OK)
        return st;
    const int K = dfn_model_get_config(m)->num_classes;
    const int *labels = dfn_dataset_labels((dfn_dataset *)ds);
    if (!labels) return dfn_set_error(DFN_ERR_ARG, "evaluation data: the images have no labels");
    if (dfn_dataset_num_classes(ds) > K)
        return dfn_set_error(DFN_ERR_ARG, "evaluation data: %d classes, but the classifier has %d",
                             dfn_dataset_num_classes(ds), K);
    const size_t N = dfn_dataset_count(ds), in = dfn_dataset_sample_size(ds);
    const float *data = dfn_dataset_sample(ds, 0);
    float *logits = dfn_malloc((size_t)ACCURACY_CHUNK * K * sizeof(float));
    float *x = noisy ? dfn_malloc((size_t)ACCURACY_CHUNK * in * sizeof(float)) : NULL;
    float t[ACCURACY_CHUNK];
    for (int b = 0; b < ACCURACY_CHUNK; b++) t[b] = (float)t_net;
    dfn_rng rng = dfn_rng_init(seed);
    size_t correct = 0;
    for (size_t i = 0; i < N; i += ACCURACY_CHUNK) {
        int b = (int)DFN_MIN((size_t)ACCURACY_CHUNK, N - i);
        const float *xb = data + i * in;
        if (noisy) {
            dfn_rng_normal(&rng, x, (size_t)b * in);
            for (size_t k = 0; k < (size_t)b * in; k++)
                x[k] = (float)(alpha * xb[k] + sigma * x[k]);
            xb = x;
        }
        dfn_model_forward(m, logits, xb, noisy ? t : NULL, NULL, b, DFN_EVAL, NULL);
        correct += (size_t)dfn_logits_count_correct(logits, labels + i, b, K);
    }
    free(logits);
    free(x);
    *accuracy = (double)correct / (double)N;
    return DFN_OK;
}

dfn_status dfn_classifier_accuracy(dfn_model *m, const dfn_dataset *ds, double *acc) {
    return accuracy(m, ds, 0, 0.0, 1.0, 0.0, 0, acc);
}

dfn_status dfn_classifier_accuracy_noisy(dfn_model *m, const dfn_dataset *ds, double t_net,
                                         double alpha, double sigma, uint64_t seed, double *acc) {
    return accuracy(m, ds, 1, t_net, alpha, sigma, seed, acc);
}

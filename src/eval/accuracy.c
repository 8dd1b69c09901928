/* accuracy.c - how often a classifier names the right class. */
#include "eval/eval.h"
#include "models/models.h"

#define ACCURACY_CHUNK 64 /* images per forward */

dfn_status dfn_classifier_accuracy(dfn_model *m, const dfn_dataset *ds, double *accuracy) {
    DFN_ASSERT(m && ds && accuracy);
    dfn_status st;
    int dims[DFN_DATASET_MAX_DIMS], nd = dfn_dataset_shape(ds, dims);
    if ((st = dfn_eval_check_classifier(m)) != DFN_OK ||
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
    size_t correct = 0;
    for (size_t i = 0; i < N; i += ACCURACY_CHUNK) {
        int b = (int)DFN_MIN((size_t)ACCURACY_CHUNK, N - i);
        dfn_model_forward(m, logits, data + i * in, NULL, NULL, b, DFN_EVAL, NULL);
        correct += (size_t)dfn_logits_count_correct(logits, labels + i, b, K);
    }
    free(logits);
    *accuracy = (double)correct / (double)N;
    return DFN_OK;
}

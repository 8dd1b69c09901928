/* common.c - helpers of src/eval: the classifier check, finiteness. */
#include <math.h>
#include <string.h>

#include "eval/eval.h"

dfn_status dfn_eval_check_classifier(const dfn_model *m) {
    const char *path = dfn_model_path(m);
    if (dfn_model_get_config(m)->kind == DFN_MODEL_CLASSIFIER && dfn_model_takes_time(m))
        return dfn_set_error(DFN_ERR_ARG,
                             "%s%sa classifier of noisy images (time_embed, for classifier "
                             "guidance), not the clean-image classifier FID, KID and accuracy use",
                             path ? path : "", path ? ": " : "");
    if (dfn_model_get_config(m)->kind == DFN_MODEL_CLASSIFIER && dfn_model_feature_dim(m) > 0)
        return DFN_OK;
    return dfn_set_error(DFN_ERR_ARG,
                         "%s%sa %s model, not a classifier (diffusion train-classifier makes one)",
                         path ? path : "", path ? ": " : "",
                         dfn_model_kind_name(dfn_model_get_config(m)->kind));
}

dfn_status dfn_eval_check_finite(const char *what, const float *x, size_t n, size_t dim) {
    for (size_t i = 0; i < n * dim; i++)
        if (!isfinite(x[i]))
            return dfn_set_error(DFN_ERR_NUMERIC, "%s: row %zu column %zu is %g", what, i / dim,
                                 i % dim, (double)x[i]);
    return DFN_OK;
}

/* fuzz_checkpoint.c - a checkpoint as the program opens one: safetensors, then
 * its metadata (the model config JSON, the process and prediction), then the
 * network built from the config and its weights read (dfn_pipeline_load, and
 * dfn_model_load for a bare network or a classifier). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("model.safetensors", data, size);
    dfn_pipeline *p = NULL;
    if (dfn_pipeline_load(&p, path) == DFN_OK) {
        const dfn_model *m = dfn_pipeline_model(p);
        FUZZ_ASSERT(dfn_model_num_params(m) * 4 <= size, "%zu parameters from %zu bytes",
                    dfn_model_num_params(m), size);
        dfn_pipeline_free(p);
    } else {
        FUZZ_ASSERT(!p && strstr(dfn_last_error(), "model.safetensors"), "the message names the file: %s",
                    dfn_last_error());
    }
    dfn_model *m = NULL;
    if (dfn_model_load(&m, path) == DFN_OK) dfn_model_free(m);
    else FUZZ_ASSERT(!m, "no model on failure");
    return 0;
}

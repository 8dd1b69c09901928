/* fuzz_run.c - a run directory's config.json, as `train --resume` reads it
 * (dfn_train_params_from_run, src/train/run_dir.c): the model, the data
 * source, the process, the objective and the training settings. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_file("config.json", data, size);
    dfn_train_params p = dfn_train_params_init();
    dfn_model_config c;
    char *source = NULL;
    if (dfn_train_params_from_run(&p, &c, &source, fuzz_dir()) == DFN_OK) {
        FUZZ_ASSERT(dfn_model_config_validate(&c) == DFN_OK, "the model it reads can be built: %s", dfn_last_error());
        free(source);
    } else {
        FUZZ_ASSERT(!source && strstr(dfn_last_error(), "config.json"), "the message names the file: %s",
                    dfn_last_error());
    }
    return 0;
}

/* fuzz_mixture.c - `--data mixture:FILE` (tools/data_source.c): weights,
 * means, standard deviations or covariances as JSON, then 64 samples drawn. */
#include <math.h>

#include "../tools/data_source.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("mixture.json", data, size);
    char spec[700];
    snprintf(spec, sizeof spec, "mixture:%s", path);
    dfn_data_options o = {.n = 64, .seed = 1, .label_column = -1};
    dfn_dataset *ds = NULL;
    if (dfn_cli_load_data(&ds, spec, &o) == DFN_OK) {
        for (size_t i = 0; i < dfn_dataset_count(ds); i++)
            for (size_t j = 0; j < dfn_dataset_sample_size(ds); j++)
                FUZZ_ASSERT(isfinite(dfn_dataset_sample(ds, i)[j]), "a finite sample");
        dfn_dataset_free(ds);
    } else {
        FUZZ_ASSERT(!ds && strstr(dfn_last_error(), "mixture.json"), "the message names the file: %s",
                    dfn_last_error());
    }
    return 0;
}

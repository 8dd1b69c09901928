/* fuzz_csv.c - CSV files (src/data/csv.c): header detection, blank lines,
 * CRLF, label columns, numbers. The first byte picks the label column (none,
 * 0, 1). */
#include <math.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const int label = size ? (int)(data[0] % 3) - 1 : -1;
    const char *path = fuzz_file("x.csv", data, size);
    dfn_dataset *ds = NULL;
    if (dfn_dataset_load_csv(&ds, path, label) == DFN_OK) {
        const size_t n = dfn_dataset_count(ds), d = dfn_dataset_sample_size(ds);
        FUZZ_ASSERT(n * d <= size, "%zu x %zu numbers from %zu bytes", n, d, size);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++)
                FUZZ_ASSERT(isfinite(dfn_dataset_sample(ds, i)[j]), "a finite value");
        dfn_dataset_free(ds);
    } else {
        FUZZ_ASSERT(!ds && strstr(dfn_last_error(), "x.csv"), "the message names the file: %s", dfn_last_error());
    }
    return 0;
}

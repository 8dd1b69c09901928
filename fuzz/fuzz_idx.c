/* fuzz_idx.c - IDX files, plain or gzipped (src/data/idx.c): as an image file
 * alone, and as the label file of a one-image file (zlib reads both). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *images = fuzz_file("images-idx3-ubyte", data, size);
    dfn_dataset *ds = NULL;
    if (dfn_dataset_load_idx(&ds, images, NULL, 0) == DFN_OK) {
        FUZZ_ASSERT(dfn_dataset_sample_size(ds) * dfn_dataset_count(ds) <= 1100 * size + 65536,
                    "%zu samples of %zu from %zu bytes", dfn_dataset_count(ds), dfn_dataset_sample_size(ds), size);
        dfn_dataset_free(ds);
    } else {
        FUZZ_ASSERT(!ds && strstr(dfn_last_error(), "idx3"), "the message names the file: %s", dfn_last_error());
    }
    static const uint8_t one[] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 42};
    fuzz_file("one-idx3-ubyte", one, sizeof one);
    char one_path[600];
    snprintf(one_path, sizeof one_path, "%s/one-idx3-ubyte", fuzz_dir());
    const char *labels = fuzz_file("labels-idx1-ubyte", data, size);
    if (dfn_dataset_load_idx(&ds, one_path, labels, 10) == DFN_OK) dfn_dataset_free(ds);
    return 0;
}

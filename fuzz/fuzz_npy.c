/* fuzz_npy.c - the .npy reader (src/io/npy.c: the header's Python dict, dtype,
 * byte order, shape against the file's size) and `--data npy:FILE` on top. */
#include "../tools/data_source.h"
#include "fuzz.h"
#include "io/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("x.npy", data, size);
    dfn_npy_array a;
    if (dfn_npy_read(path, &a) == DFN_OK) {
        FUZZ_ASSERT(a.numel * dfn_dtype_size(a.dtype) <= size, "%zu elements from %zu bytes", a.numel, size);
        dfn_npy_free(&a);
    }
    dfn_dataset *ds = NULL;
    if (dfn_cli_load_npy(&ds, path) == DFN_OK) dfn_dataset_free(ds);
    else FUZZ_ASSERT(!ds && strstr(dfn_last_error(), "x.npy"), "the message names the file: %s", dfn_last_error());
    return 0;
}

/* fuzz_safetensors.c - the safetensors reader (src/io/safetensors.c): header
 * JSON, dtypes, shapes, offsets. What opens must be consistent: every tensor
 * found by its name, its bytes inside the file, convertible to float. */
#include "fuzz.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("x.safetensors", data, size);
    dfn_st_file *f = NULL;
    if (dfn_st_open(&f, path) != DFN_OK) {
        FUZZ_ASSERT(!f && strstr(dfn_last_error(), "x.safetensors"), "the message names the file: %s",
                    dfn_last_error());
        return 0;
    }
    size_t total = 0;
    for (int i = 0; i < dfn_st_num_tensors(f); i++) {
        const dfn_st_tensor *t = dfn_st_tensor_at(f, i);
        FUZZ_ASSERT(dfn_st_find(f, t->name) == t, "tensor '%s' found by name", t->name);
        FUZZ_ASSERT(t->nbytes == t->numel * dfn_dtype_size(t->dtype), "nbytes of '%s'", t->name);
        total += t->nbytes;
        float *x = malloc(t->numel * sizeof(float) + 1);
        dfn_dtype_to_f32(x, t->data, t->dtype, t->numel);
        free(x);
    }
    FUZZ_ASSERT(total <= size, "tensors of %zu bytes in a file of %zu", total, size);
    for (int i = 0; i < dfn_st_num_metadata(f); i++)
        FUZZ_ASSERT(dfn_st_metadata(f, dfn_st_metadata_key(f, i)) != NULL, "metadata by key");
    dfn_st_close(f);
    return 0;
}

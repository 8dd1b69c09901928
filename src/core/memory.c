/* memory.c - aligned allocation that fails loudly, and per-thread scratch buffers. */
#include <string.h>

#include "core.h"

void *dfn_malloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) {
        fprintf(stderr, "diffusion: out of memory allocating %zu bytes\n", bytes);
        abort();
    }
    return p;
}

void *dfn_calloc(size_t count, size_t size) {
    DFN_ASSERT(size == 0 || count <= SIZE_MAX / size);
    void *p = dfn_malloc(count * size);
    memset(p, 0, count * size);
    return p;
}

static _Thread_local float *scratch_buf[DFN_SCRATCH_SLOTS];
static _Thread_local size_t scratch_len[DFN_SCRATCH_SLOTS];

float *dfn_scratch(int slot, size_t n) {
    DFN_ASSERT(slot >= 0 && slot < DFN_SCRATCH_SLOTS);
    if (scratch_len[slot] < n) {
        free(scratch_buf[slot]);
        size_t grown = n + n / 4;
        scratch_buf[slot] = dfn_malloc(grown * sizeof(float));
        scratch_len[slot] = grown;
    }
    return scratch_buf[slot];
}

void dfn_scratch_release(void) {
    for (int i = 0; i < DFN_SCRATCH_SLOTS; i++) {
        free(scratch_buf[i]);
        scratch_buf[i] = NULL;
        scratch_len[i] = 0;
    }
}

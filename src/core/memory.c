/* memory.c - aligned allocation that fails loudly, zeroed pages for big
 * long-lived buffers, and per-thread scratch buffers. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, madvise */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include "core/core.h"

/* Poisoned allocations: with DFN_POISON=1 in the environment (and always in a
 * sanitizer build), new memory is filled with 0xFF bytes - a NaN in every
 * float and double lane, -1 in every int - so that code reading memory it
 * never wrote produces NaN or nonsense that a test sees, instead of the zeros
 * a fresh page happens to hold. */
static int poison;
static pthread_once_t poison_once = PTHREAD_ONCE_INIT;
static void poison_init(void) {
#ifdef DFN_SANITIZED
    poison = 1;
#else
    const char *env = getenv("DFN_POISON");
    poison = env && env[0] == '1';
#endif
}
static int poison_allocations(void) {
    pthread_once(&poison_once, poison_init);
    return poison;
}

void *dfn_malloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) {
        fprintf(stderr, "diffusion: out of memory allocating %zu bytes\n", bytes);
        abort();
    }
    if (poison_allocations()) memset(p, 0xFF, rounded ? rounded : 64);
    return p;
}

void *dfn_calloc(size_t count, size_t size) {
    DFN_ASSERT(size == 0 || count <= SIZE_MAX / size);
    void *p = dfn_malloc(count * size);
    memset(p, 0, count * size);
    return p;
}

void *dfn_alloc_pages(size_t bytes) {
#ifdef DFN_SANITIZED
    return dfn_calloc(bytes ? bytes : 1, 1);
#else
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "diffusion: out of memory mapping %zu bytes\n", bytes);
        abort();
    }
#ifdef MADV_HUGEPAGE
    madvise(p, bytes ? bytes : 1, MADV_HUGEPAGE); /* advice only: 4 KiB pages where refused */
#endif
    return p;
#endif
}

void dfn_free_pages(void *p, size_t bytes) {
    if (!p) return;
#ifdef DFN_SANITIZED
    (void)bytes;
    free(p);
#else
    munmap(p, bytes ? bytes : 1);
#endif
}

char *dfn_strdup(const char *s) {
    DFN_ASSERT(s);
    size_t n = strlen(s) + 1;
    char *p = dfn_malloc(n);
    memcpy(p, s, n);
    return p;
}

static _Thread_local float *scratch_buf[DFN_SCRATCH_SLOTS];
static _Thread_local size_t scratch_len[DFN_SCRATCH_SLOTS];

/* A thread's scratch is freed when the thread exits (an OpenMP team that
 * shrinks ends threads): a pthread key whose destructor runs then. */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void scratch_at_exit(void *unused) {
    (void)unused;
    dfn_scratch_release();
}
static void scratch_key_init(void) { pthread_key_create(&scratch_key, scratch_at_exit); }

float *dfn_scratch(int slot, size_t n) {
    DFN_ASSERT(slot >= 0 && slot < DFN_SCRATCH_SLOTS);
    if (scratch_len[slot] < n) {
        pthread_once(&scratch_once, scratch_key_init);
        pthread_setspecific(scratch_key, (void *)1); /* non-NULL: run the destructor */
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

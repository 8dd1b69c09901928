/* core.h - what every module of diffusion.c includes: asserts, error reporting,
 * memory (aligned allocation, per-thread scratch, growable buffers), names of
 * enum values, the clock, the single-threaded GEMM that the layers call and
 * the profiler's timers. Files are in core/files.h.
 *
 * Two kinds of failure (style.md, "Errors"):
 *   - programmer errors (a NULL buffer, a shape that cannot happen): DFN_ASSERT
 *     prints file and line and aborts;
 *   - user and I/O errors (a missing file, a bad config): the function returns
 *     a dfn_status and leaves a message for dfn_last_error() via dfn_set_error().
 */
#ifndef DFN_CORE_H
#define DFN_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "diffusion/core.h"

#define DFN_ASSERT(cond)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                       \
            abort();                                                              \
        }                                                                         \
    } while (0)

#define DFN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DFN_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Records a printf-style message for dfn_last_error() and returns `status`,
 * so that failure paths read `return dfn_set_error(DFN_ERR_IO, "%s: ...", path);` */
dfn_status dfn_set_error(dfn_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Allocation that never returns NULL: on out-of-memory it prints the size and aborts.
 * Memory is 64-byte aligned and released with free(). */
void *dfn_malloc(size_t bytes);
void *dfn_calloc(size_t count, size_t size);
/* Zeroed memory for big buffers that live as long as a model (its activation
 * arenas): anonymous pages the kernel maps, zeroed, on first touch (as 2 MiB
 * pages where it allows), so that sizing an arena costs neither a memset nor a
 * fault per 4 KiB page, and pages never touched (the gradient arena of a model
 * that only samples) cost nothing. Page-aligned; fails loudly as dfn_malloc.
 * Sanitizer builds take dfn_calloc, whose blocks AddressSanitizer tracks.
 * Freed by dfn_free_pages with the same size. */
void *dfn_alloc_pages(size_t bytes);
void dfn_free_pages(void *p, size_t bytes);
/* A malloc'ed copy of a string. */
char *dfn_strdup(const char *s);

/* A growable buffer of bytes, kept NUL-terminated so that text appended to it
 * is a C string. Zero-initialise ({0}) to start; free data with dfn_buf_free. */
typedef struct {
    char *data;
    size_t len, cap;
} dfn_buf;
void dfn_buf_append(dfn_buf *b, const void *data, size_t n);
void dfn_buf_printf(dfn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dfn_buf_free(dfn_buf *b);

/* Names of enum values, one table per enum: names[i] names value i.
 * dfn_name_of gives names[i], or "unknown" out of range. dfn_name_lookup gives
 * the value whose name (or alias: a list ending in {NULL, 0}, or NULL) is
 * `name`, else -1 and the message "unknown <what> 'name' (known: a, b, c)". */
typedef struct {
    const char *name;
    int value;
} dfn_name_alias;
const char *dfn_name_of(const char *const *names, int count, int i);
int dfn_name_lookup(const char *what, const char *name, const char *const *names, int count,
                    const dfn_name_alias *aliases);

/* Seconds on a monotonic clock (for durations only). */
double dfn_now_seconds(void);

/* The 64-bit FNV-1a hash of n bytes: a fingerprint of files, configurations
 * and weights (hash.c). */
uint64_t dfn_fnv1a(const void *bytes, size_t n);

/* A per-thread buffer of at least `n` floats that stays valid until the next call
 * with the same slot on the same thread. Layers use it for im2col columns and
 * partial sums; it grows and is reused, so a hot loop does not touch malloc.
 * There are DFN_SCRATCH_SLOTS independent slots per thread. */
#define DFN_SCRATCH_SLOTS 5
float *dfn_scratch(int slot, size_t n);
/* Frees the calling thread's scratch buffers. */
void dfn_scratch_release(void);

/* Row-major single-precision GEMM, C = alpha * op(A) op(B) + beta * C, with
 * op(A) M x K and op(B) K x N; lda/ldb/ldc are row strides. It always runs on
 * the calling thread alone: parallelism belongs to the caller, which splits the
 * work into tasks whose layout depends only on the problem's shape. That is how
 * every result in diffusion.c comes out bit-identical for any thread count. */
void dfn_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta,
              float *C, int ldc);

/* Per-layer-kind timing (profile.c): DFN_PROF(slot, statement) times the
 * statement when profiling is enabled. */
enum {
    DFN_PROF_CONV_FWD, DFN_PROF_CONV_BWD, DFN_PROF_NORM_FWD, DFN_PROF_NORM_BWD, DFN_PROF_ATTN_FWD,
    DFN_PROF_ATTN_BWD, DFN_PROF_LINEAR, DFN_PROF_ELEMENTWISE, DFN_PROF_OPTIM, DFN_PROF_COUNT
};
extern int dfn_prof_on;
extern double dfn_prof_seconds[DFN_PROF_COUNT];
extern long dfn_prof_calls[DFN_PROF_COUNT];
#define DFN_PROF(slot, stmt)                                                      \
    do {                                                                          \
        if (dfn_prof_on) {                                                        \
            double prof_t0_ = dfn_now_seconds();                                     \
            stmt;                                                                 \
            dfn_prof_seconds[slot] += dfn_now_seconds() - prof_t0_;                  \
            dfn_prof_calls[slot]++;                                               \
        } else {                                                                  \
            stmt;                                                                 \
        }                                                                         \
    } while (0)

/* The Philox4x32-10 bijection on a full 128-bit counter (dfn_philox is the
 * case ctr = (block lo, block hi, 0, 0), key = (seed lo, seed hi)). */
void dfn_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

#endif

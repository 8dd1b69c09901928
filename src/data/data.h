/* data.h - what the dataset files share: the dataset struct and a few helpers.
 *
 * A dataset is one float array (N, sample_size) plus an optional label array.
 * Loaders build their result completely in local variables and hand it to the
 * caller only when everything has been checked, so a failure never leaves a
 * half-made object behind. */
#ifndef DFN_DATA_H
#define DFN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "diffusion/data.h"

struct dfn_dataset {
    size_t n;                       /* samples */
    int ndim;                       /* 1 (vectors) or 3 (images, C H W) */
    int dims[DFN_DATASET_MAX_DIMS]; /* unused entries are 1 */
    size_t sample_size;             /* product of dims */
    float *data;                    /* (n, sample_size) */
    int *labels;                    /* (n) or NULL */
    int num_classes;                /* 0 when labels == NULL */
};

/* A stream of 32-bit random words read sequentially from Philox blocks
 * (seed, block), (seed, block + 1), ... four words per block. Integer draws
 * (shuffles, choices) use it instead of floats, so they are exact and unbiased. */
typedef struct {
    uint64_t seed;
    uint64_t block; /* next block to fetch */
    uint32_t words[4];
    int lane;       /* next unused word in words; 4 = none left */
} dfn_word_stream;

void dfn_word_stream_init(dfn_word_stream *s, uint64_t seed, uint64_t first_block);
uint32_t dfn_word_stream_next(dfn_word_stream *s);
/* Uniform integer in [0, bound) without bias (Lemire 2019, "Fast random
 * integer generation in an interval": multiply, and reject the few low
 * products that would make some results more likely). bound >= 1. */
uint32_t dfn_word_stream_below(dfn_word_stream *s, uint32_t bound);
/* Fisher-Yates (Knuth's Algorithm P): a uniformly random permutation of
 * perm[0..n), drawn from s. */
void dfn_shuffle(size_t *perm, size_t n, dfn_word_stream *s);

/* Mirrors one (C, H, W) image about its vertical axis, in place. */
void dfn_hflip_image(float *x, int c, int h, int w);

#endif

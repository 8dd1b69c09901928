/* batch.c - the batch iterator: a new random order every epoch, batches
 * copied into the caller's buffers, and a state of plain integers.
 *
 * All randomness is a pure function of (seed, epoch, position): epoch e's order
 * is the Fisher-Yates shuffle driven by Philox blocks starting at e * 2^33,
 * and the flip of the sample at position p of epoch e is one bit of block
 * e * 2^33 + 2^32 + p / 4 (lane p % 4). Nothing else is carried from batch to
 * batch, so (seed, epoch, position) is the whole state: a restored iterator
 * recomputes the epoch's order and continues bit for bit. */
#include <string.h>

#include "data/data.h"

struct dfn_batch_iter {
    const dfn_dataset *ds; /* not owned */
    dfn_batch_params p;
    uint64_t seed;         /* as given: saved in the state */
    uint64_t key;          /* Philox key derived from seed */
    uint64_t epoch, position;
    size_t *perm;          /* (n) the current epoch's order */
};

/* The iterator's own key, so that its streams do not coincide with those of a
 * model initialised from the same seed (both would start at block 0). */
static uint64_t derive_key(uint64_t seed) {
    uint32_t w[4];
    dfn_philox(seed, 0x6261746368000000ull /* "batch" */, w);
    return (uint64_t)w[1] << 32 | w[0];
}

#define EPOCH_BLOCKS ((uint64_t)1 << 33) /* Philox blocks reserved per epoch */
#define FLIP_OFFSET ((uint64_t)1 << 32)  /* second half of them: the flips */

static void make_order(dfn_batch_iter *it) {
    for (size_t i = 0; i < it->ds->n; i++) it->perm[i] = i;
    if (!it->p.shuffle) return;
    dfn_word_stream ws;
    dfn_word_stream_init(&ws, it->key, it->epoch * EPOCH_BLOCKS);
    dfn_shuffle(it->perm, it->ds->n, &ws);
}

static int flip_bit(const dfn_batch_iter *it) {
    uint32_t w[4];
    dfn_philox(it->key, it->epoch * EPOCH_BLOCKS + FLIP_OFFSET + it->position / 4, w);
    return (int)(w[it->position % 4] >> 31);
}

dfn_batch_params dfn_batch_params_init(int batch_size) {
    dfn_batch_params p = {.batch_size = batch_size, .shuffle = 1, .hflip = 0, .partial = 0};
    return p;
}

dfn_status dfn_batch_iter_new(dfn_batch_iter **out, const dfn_dataset *ds,
                              const dfn_batch_params *params, uint64_t seed) {
    DFN_ASSERT(out && ds && params);
    *out = NULL;
    if (params->batch_size < 1)
        return dfn_set_error(DFN_ERR_ARG, "batches: batch size %d; must be at least 1",
                             params->batch_size);
    if (params->hflip && ds->ndim != 3)
        return dfn_set_error(DFN_ERR_ARG, "batches: horizontal flips need images, but the "
                             "samples are vectors of %zu", ds->sample_size);
    /* Shuffles draw 32-bit integers and flips use 2^32 words per epoch. */
    if (ds->n > UINT32_MAX)
        return dfn_set_error(DFN_ERR_ARG, "batches: %zu samples; at most 2^32 - 1 supported",
                             ds->n);
    dfn_batch_iter *it = dfn_calloc(1, sizeof *it);
    it->ds = ds;
    it->p = *params;
    it->seed = seed;
    it->key = derive_key(seed);
    it->perm = dfn_malloc(ds->n * sizeof *it->perm);
    make_order(it);
    *out = it;
    return DFN_OK;
}

void dfn_batch_iter_free(dfn_batch_iter *it) {
    if (!it) return;
    free(it->perm);
    free(it);
}

int dfn_batch_iter_next(dfn_batch_iter *it, float *x, int *y) {
    DFN_ASSERT(it && (x || !y));
    const dfn_dataset *ds = it->ds;
    DFN_ASSERT(!y || ds->labels); /* labels asked of an unlabelled dataset */
    size_t m = ds->sample_size;
    int filled = 0;
    while (filled < it->p.batch_size) {
        size_t idx = it->perm[it->position];
        if (x) { /* (NULL: another process's batch, passed over unread) */
            float *dst = x + (size_t)filled * m;
            memcpy(dst, ds->data + idx * m, m * sizeof(float));
            if (it->p.hflip && flip_bit(it))
                dfn_hflip_image(dst, ds->dims[0], ds->dims[1], ds->dims[2]);
        }
        if (y) y[filled] = ds->labels[idx];
        filled++;
        if (++it->position == ds->n) { /* epoch done: the next one's order now */
            it->epoch++;
            it->position = 0;
            make_order(it);
            if (it->p.partial) break;
        }
    }
    return filled;
}

uint64_t dfn_batch_iter_epoch(const dfn_batch_iter *it) {
    DFN_ASSERT(it);
    return it->epoch;
}

dfn_batch_state dfn_batch_iter_state(const dfn_batch_iter *it) {
    DFN_ASSERT(it);
    dfn_batch_state s = {it->seed, it->epoch, it->position, it->ds->n};
    return s;
}

dfn_status dfn_batch_iter_restore(dfn_batch_iter *it, const dfn_batch_state *state) {
    DFN_ASSERT(it && state);
    if (state->count != it->ds->n)
        return dfn_set_error(DFN_ERR_ARG, "batches: the saved state is for a dataset of %llu "
                             "samples, this one has %zu", (unsigned long long)state->count,
                             it->ds->n);
    if (state->position >= it->ds->n)
        return dfn_set_error(DFN_ERR_ARG, "batches: saved position %llu is past the dataset's "
                             "%zu samples", (unsigned long long)state->position, it->ds->n);
    if (state->epoch >= ((uint64_t)1 << 30))
        return dfn_set_error(DFN_ERR_ARG, "batches: saved epoch %llu is out of range",
                             (unsigned long long)state->epoch);
    it->seed = state->seed;
    it->key = derive_key(state->seed);
    it->epoch = state->epoch;
    it->position = state->position;
    make_order(it);
    return DFN_OK;
}

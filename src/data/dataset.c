/* dataset.c - the dataset object: construction, copies, subsets, the
 * train/validation split, and the integer random draws the data code shares. */
#include <math.h>
#include <string.h>

#include "data/data.h"

/* ---------------------------------------------------------------- construction */

dfn_status dfn_dataset_new(dfn_dataset **out, size_t n, int ndim, const int *dims,
                           int num_classes) {
    DFN_ASSERT(out && dims);
    *out = NULL;
    if (n == 0) return dfn_set_error(DFN_ERR_ARG, "dataset: no samples (n = 0)");
    if (ndim < 1 || ndim > DFN_DATASET_MAX_DIMS)
        return dfn_set_error(DFN_ERR_ARG, "dataset: %d dimensions per sample; expected 1 (D), "
                             "2 (H, W) or 3 (C, H, W)", ndim);
    if (num_classes < 0)
        return dfn_set_error(DFN_ERR_ARG, "dataset: negative number of classes (%d)", num_classes);

    /* A 2-D sample (H, W) is a one-channel image. */
    int shape[DFN_DATASET_MAX_DIMS] = {1, 1, 1};
    int nd = ndim == 2 ? 3 : ndim;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 1)
            return dfn_set_error(DFN_ERR_ARG, "dataset: dimension %d of a sample is %d; must be "
                                 "at least 1", i, dims[i]);
        shape[ndim == 2 ? i + 1 : i] = dims[i];
    }
    size_t sample_size = 1;
    for (int i = 0; i < nd; i++) sample_size *= (size_t)shape[i]; /* each < 2^31: no overflow */
    if (n > SIZE_MAX / sizeof(float) / sample_size)
        return dfn_set_error(DFN_ERR_ARG, "dataset: %zu samples of %zu floats do not fit in memory",
                             n, sample_size);

    /* Plain allocations that report failure instead of aborting: a sample count
     * comes from user input (a file header, a command line), so running out of
     * memory is the user's problem to hear about, not a crash. */
    dfn_dataset *ds = calloc(1, sizeof *ds);
    size_t bytes = n * sample_size * sizeof(float);
    float *data = aligned_alloc(64, (bytes + 63) / 64 * 64);
    int *labels = num_classes > 0 ? calloc(n, sizeof(int)) : NULL;
    if (!ds || !data || (num_classes > 0 && !labels)) {
        free(ds);
        free(data);
        free(labels);
        return dfn_set_error(DFN_ERR_ARG, "dataset: out of memory for %zu samples of %zu floats "
                             "(%.1f MiB)", n, sample_size, bytes / 1048576.0);
    }
    memset(data, 0, bytes);
    ds->n = n;
    ds->ndim = nd;
    memcpy(ds->dims, shape, sizeof shape);
    ds->sample_size = sample_size;
    ds->data = data;
    ds->labels = labels;
    ds->num_classes = num_classes;
    *out = ds;
    return DFN_OK;
}

dfn_status dfn_dataset_from_array(dfn_dataset **out, const float *data, size_t n, int ndim,
                                  const int *dims, const int *labels, int num_classes) {
    DFN_ASSERT(out && data && dims);
    *out = NULL;
    dfn_dataset *ds = NULL;
    dfn_status st;
    if (labels && num_classes == 0) { /* infer the class count from the largest label */
        for (size_t i = 0; i < n; i++)
            if (labels[i] >= num_classes) num_classes = labels[i] + 1;
        if (num_classes == 0) num_classes = 1;
    }
    st = dfn_dataset_new(&ds, n, ndim, dims, labels ? num_classes : 0);
    if (st != DFN_OK) goto fail;

    size_t m = ds->sample_size;
    for (size_t i = 0; i < n * m; i++) {
        if (!isfinite(data[i])) {
            st = dfn_set_error(DFN_ERR_NUMERIC, "dataset: sample %zu, element %zu is %s", i / m,
                               i % m, isnan(data[i]) ? "NaN" : "infinite");
            goto fail;
        }
    }
    memcpy(ds->data, data, n * m * sizeof(float));
    if (labels) {
        for (size_t i = 0; i < n; i++) {
            if (labels[i] < 0 || labels[i] >= num_classes) {
                st = dfn_set_error(DFN_ERR_ARG, "dataset: label %d of sample %zu is out of range "
                                   "0..%d", labels[i], i, num_classes - 1);
                goto fail;
            }
        }
        memcpy(ds->labels, labels, n * sizeof(int));
    }
    *out = ds;
    return DFN_OK;
fail:
    dfn_dataset_free(ds);
    return st;
}

dfn_status dfn_dataset_subset(dfn_dataset **out, const dfn_dataset *ds, const size_t *indices,
                              size_t n) {
    DFN_ASSERT(out && ds && (indices || n == 0));
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        if (indices[i] >= ds->n)
            return dfn_set_error(DFN_ERR_ARG, "dataset subset: index %zu (entry %zu) is past the "
                                 "dataset's %zu samples", indices[i], i, ds->n);
    dfn_dataset *sub;
    dfn_status st = dfn_dataset_new(&sub, n, ds->ndim, ds->dims, ds->num_classes);
    if (st != DFN_OK) return st;
    size_t m = ds->sample_size;
    for (size_t i = 0; i < n; i++) {
        memcpy(sub->data + i * m, ds->data + indices[i] * m, m * sizeof(float));
        if (ds->labels) sub->labels[i] = ds->labels[indices[i]];
    }
    *out = sub;
    return DFN_OK;
}

dfn_status dfn_dataset_split(const dfn_dataset *ds, double val_fraction, uint64_t seed,
                             dfn_dataset **train, dfn_dataset **val) {
    DFN_ASSERT(ds && train && val);
    *train = *val = NULL;
    size_t *perm = NULL, *idx = NULL;
    unsigned char *is_val = NULL;
    dfn_dataset *tr = NULL, *va = NULL;
    dfn_status st;

    double want = val_fraction * (double)ds->n;
    size_t n_val = !(want >= 0) ? 0 : (size_t)floor(want + 0.5); /* !(>=) also catches NaN */
    if (!(val_fraction > 0 && val_fraction < 1) || n_val < 1 || n_val >= ds->n) {
        st = dfn_set_error(DFN_ERR_ARG, "dataset split: a validation fraction of %g of %zu samples "
                           "leaves one of the parts empty", val_fraction, ds->n);
        goto fail;
    }
    DFN_ASSERT(ds->n <= UINT32_MAX);
    /* The first n_val entries of a random permutation form the validation set;
     * both parts are then listed in the original order. */
    perm = dfn_malloc(ds->n * sizeof *perm);
    idx = dfn_malloc(ds->n * sizeof *idx);
    is_val = dfn_calloc(ds->n, 1);
    for (size_t i = 0; i < ds->n; i++) perm[i] = i;
    dfn_word_stream ws;
    dfn_word_stream_init(&ws, seed, 0);
    dfn_shuffle(perm, ds->n, &ws);
    for (size_t i = 0; i < n_val; i++) is_val[perm[i]] = 1;

    size_t k = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (!is_val[i]) idx[k++] = i;
    st = dfn_dataset_subset(&tr, ds, idx, k);
    if (st != DFN_OK) goto fail;
    k = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (is_val[i]) idx[k++] = i;
    st = dfn_dataset_subset(&va, ds, idx, k);
    if (st != DFN_OK) goto fail;

    free(perm);
    free(idx);
    free(is_val);
    *train = tr;
    *val = va;
    return DFN_OK;
fail:
    free(perm);
    free(idx);
    free(is_val);
    dfn_dataset_free(tr);
    dfn_dataset_free(va);
    return st;
}

void dfn_dataset_free(dfn_dataset *ds) {
    if (!ds) return;
    free(ds->data);
    free(ds->labels);
    free(ds);
}

/* ---------------------------------------------------------------- accessors */

size_t dfn_dataset_count(const dfn_dataset *ds) {
    DFN_ASSERT(ds);
    return ds->n;
}

int dfn_dataset_shape(const dfn_dataset *ds, int dims[DFN_DATASET_MAX_DIMS]) {
    DFN_ASSERT(ds && dims);
    for (int i = 0; i < DFN_DATASET_MAX_DIMS; i++) dims[i] = i < ds->ndim ? ds->dims[i] : 0;
    return ds->ndim;
}

size_t dfn_dataset_sample_size(const dfn_dataset *ds) {
    DFN_ASSERT(ds);
    return ds->sample_size;
}

float *dfn_dataset_data(dfn_dataset *ds) {
    DFN_ASSERT(ds);
    return ds->data;
}

const float *dfn_dataset_sample(const dfn_dataset *ds, size_t i) {
    DFN_ASSERT(ds && i < ds->n);
    return ds->data + i * ds->sample_size;
}

int *dfn_dataset_labels(dfn_dataset *ds) {
    DFN_ASSERT(ds);
    return ds->labels;
}

int dfn_dataset_num_classes(const dfn_dataset *ds) {
    DFN_ASSERT(ds);
    return ds->num_classes;
}

/* ---------------------------------------------------------------- integer draws */

void dfn_word_stream_init(dfn_word_stream *s, uint64_t seed, uint64_t first_block) {
    s->seed = seed;
    s->block = first_block;
    s->lane = 4;
}

uint32_t dfn_word_stream_next(dfn_word_stream *s) {
    if (s->lane == 4) {
        dfn_philox(s->seed, s->block++, s->words);
        s->lane = 0;
    }
    return s->words[s->lane++];
}

uint32_t dfn_word_stream_below(dfn_word_stream *s, uint32_t bound) {
    DFN_ASSERT(bound >= 1);
    /* x * bound / 2^32 maps a 32-bit word onto [0, bound). Each result owns
     * either floor(2^32 / bound) or one more of the 2^32 words; rejecting the
     * products whose low half falls below 2^32 mod bound evens them out. */
    uint64_t m = (uint64_t)dfn_word_stream_next(s) * bound;
    uint32_t low = (uint32_t)m;
    if (low < bound) {
        uint32_t threshold = (uint32_t)(-bound) % bound; /* 2^32 mod bound */
        while (low < threshold) {
            m = (uint64_t)dfn_word_stream_next(s) * bound;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

void dfn_shuffle(size_t *perm, size_t n, dfn_word_stream *s) {
    DFN_ASSERT(n <= UINT32_MAX);
    /* Walk down from the end; position i takes a uniformly chosen element of
     * the not-yet-placed prefix [0, i]. Every permutation is equally likely. */
    for (size_t i = n; i > 1; i--) {
        size_t j = dfn_word_stream_below(s, (uint32_t)i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

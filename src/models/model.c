/* model.c - the one interface of every network (diffusion/models.h): building
 * and initialising a model of any kind, its parameters, shapes, activation
 * arenas, forward and backward through the kind's functions (model.h). */
#include <string.h>

#include "core/dist.h"
#include "models/model.h"
#include "models/models.h"

static const dfn_model_ops *kind_ops(dfn_model_kind kind) {
    switch (kind) {
    case DFN_MODEL_UNET: return &dfn_unet_ops;
    case DFN_MODEL_MLP: return &dfn_mlp_ops;
    case DFN_MODEL_CLASSIFIER: return &dfn_classifier_ops;
    case DFN_MODEL_AUTOENCODER: return &dfn_autoencoder_ops;
    case DFN_MODEL_KIND_COUNT: break;
    }
    DFN_ASSERT(0 && "not a model kind");
    return NULL;
}

dfn_status dfn_model_new(dfn_model **out, const dfn_model_config *cfg, uint64_t seed) {
    DFN_ASSERT(out && cfg);
    *out = NULL;
    dfn_status st = dfn_model_config_validate(cfg);
    if (st != DFN_OK) return st;
    dfn_model *m = dfn_calloc(1, sizeof *m);
    m->cfg = *cfg;
    m->ops = kind_ops(cfg->kind);
    m->ops->build(m);
    m->params = dfn_calloc(m->tab.total, sizeof(float));
    m->grads = dfn_calloc(m->tab.total, sizeof(float));
    dfn_param_init(&m->tab, m->params, seed);
    *out = m;
    return DFN_OK;
}

size_t dfn_model_config_num_params(const dfn_model_config *cfg) {
    dfn_model *m = dfn_calloc(1, sizeof *m);
    m->cfg = *cfg;
    m->ops = kind_ops(cfg->kind);
    m->ops->build(m); /* the tensor table only: no parameters are allocated */
    size_t n = 0; /* the tensors' elements (tab.total also counts alignment padding) */
    for (int i = 0; i < m->tab.count; i++) n += m->tab.t[i].numel;
    dfn_model_free(m);
    return n;
}

void dfn_model_free(dfn_model *m) {
    if (!m) return; /* like free(NULL) */
    m->ops->free_impl(m);
    free(m->tab.t);
    free(m->params);
    free(m->grads);
    dfn_free_pages(m->acts.base, m->acts.cap * sizeof(float));
    dfn_free_pages(m->grad_acts.base, m->grad_acts.cap * sizeof(float));
    free(m->path);
    free(m);
}

const dfn_model_config *dfn_model_get_config(const dfn_model *m) { return &m->cfg; }
const char *dfn_model_path(const dfn_model *m) { return m->path; }
size_t dfn_model_num_params(const dfn_model *m) { return m->tab.total; }
float *dfn_model_params(dfn_model *m) { return m->params; }
float *dfn_model_grads(dfn_model *m) { return m->grads; }
void dfn_model_zero_grad(dfn_model *m) { memset(m->grads, 0, m->tab.total * sizeof(float)); }
int dfn_model_num_tensors(const dfn_model *m) { return m->tab.count; }

void dfn_model_fingerprint(const dfn_model *m, char out[17]) {
    const uint64_t h = dfn_fnv1a(m->params, m->tab.total * sizeof(float));
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

float *dfn_model_exchange_params(dfn_model *m, float *params) {
    DFN_ASSERT(m && params);
    float *old = m->params;
    m->params = params;
    return old;
}

const char *dfn_model_tensor_name(const dfn_model *m, int i) {
    DFN_ASSERT(i >= 0 && i < m->tab.count);
    return m->tab.t[i].name;
}

int dfn_model_tensor_shape(const dfn_model *m, int i, int shape[4]) {
    DFN_ASSERT(i >= 0 && i < m->tab.count);
    memcpy(shape, m->tab.t[i].shape, sizeof m->tab.t[i].shape);
    return m->tab.t[i].ndim;
}

size_t dfn_model_tensor_offset(const dfn_model *m, int i) {
    DFN_ASSERT(i >= 0 && i < m->tab.count);
    return m->tab.t[i].offset;
}

int dfn_model_find_tensor(const dfn_model *m, const char *name) {
    for (int i = 0; i < m->tab.count; i++)
        if (!strcmp(m->tab.t[i].name, name)) return i;
    return -1;
}

/* ---------------------------------------------------------------- shapes */

int dfn_model_input_shape(const dfn_model *m, int dims[3]) {
    return dfn_config_input_shape(&m->cfg, dims);
}

int dfn_model_output_shape(const dfn_model *m, int dims[3]) {
    return dfn_config_output_shape(&m->cfg, dims);
}

static size_t shape_size(int ndim, const int *dims) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)dims[d];
    return n;
}

size_t dfn_model_input_size(const dfn_model *m) {
    int dims[3], nd = dfn_model_input_shape(m, dims);
    return shape_size(nd, dims);
}

size_t dfn_model_output_size(const dfn_model *m) {
    int dims[3], nd = dfn_model_output_shape(m, dims);
    return shape_size(nd, dims);
}

int dfn_model_is_denoiser(const dfn_model *m) {
    return m->cfg.kind == DFN_MODEL_UNET || m->cfg.kind == DFN_MODEL_MLP;
}

int dfn_model_takes_time(const dfn_model *m) {
    return m->cfg.kind == DFN_MODEL_UNET || m->cfg.kind == DFN_MODEL_MLP ||
           (m->cfg.kind == DFN_MODEL_CLASSIFIER && m->cfg.classifier.time_embed);
}

/* "1x28x28" or "a vector of 50" into buf. */
static const char *shape_text(char *buf, size_t size, int ndim, const int *dims) {
    if (ndim == 3) snprintf(buf, size, "images %dx%dx%d", dims[0], dims[1], dims[2]);
    else if (ndim == 1) snprintf(buf, size, "vectors of %d", dims[0]);
    else snprintf(buf, size, "%d-dimensional samples", ndim);
    return buf;
}

dfn_status dfn_model_check_kind(const dfn_model *m, dfn_model_kind kind, const char *what) {
    DFN_ASSERT(m && what);
    if (m->cfg.kind == kind) return DFN_OK;
    const char *have = dfn_model_kind_name(m->cfg.kind), *want = dfn_model_kind_name(kind);
    return dfn_set_error(DFN_ERR_ARG, "%s: a%s %s, not a%s %s", what, strchr("aeiou", have[0]) ? "n" : "",
                         have, strchr("aeiou", want[0]) ? "n" : "", want);
}

dfn_status dfn_model_check_input(const dfn_model *m, int ndim, const int *dims, const char *what) {
    DFN_ASSERT(m && dims && what);
    int want[3], nw = dfn_model_input_shape(m, want);
    int same = ndim == nw;
    for (int d = 0; same && d < nw; d++) same = dims[d] == want[d];
    if (same) return DFN_OK;
    char have_text[64], want_text[64];
    return dfn_set_error(DFN_ERR_ARG, "%s: samples are %s, the %s%s%s%s takes %s", what,
                         shape_text(have_text, sizeof have_text, ndim, dims),
                         dfn_model_kind_name(m->cfg.kind), m->path ? " (" : "",
                         m->path ? m->path : "", m->path ? ")" : "",
                         shape_text(want_text, sizeof want_text, nw, want));
}

/* ---------------------------------------------------------------- running */

static void take_all(dfn_model *m, int B) {
    m->acts.used = 0;
    m->grad_acts.used = 0;
    m->ops->take(m, B);
}

/* Sizes the activation arenas for batch B (a counting pass, then one
 * allocation each) and hands out the buffers. */
void dfn_model_prepare(dfn_model *m, int B) {
    if (B > m->capacity) {
        dfn_free_pages(m->acts.base, m->acts.cap * sizeof(float));
        dfn_free_pages(m->grad_acts.base, m->grad_acts.cap * sizeof(float));
        m->acts = (dfn_arena){0};
        m->grad_acts = (dfn_arena){0};
        take_all(m, B);
        m->acts.cap = m->acts.used;
        m->grad_acts.cap = m->grad_acts.used;
        m->acts.base = dfn_alloc_pages(m->acts.cap * sizeof(float));
        m->grad_acts.base = dfn_alloc_pages(m->grad_acts.cap * sizeof(float));
        m->capacity = B;
    }
    take_all(m, B);
}

void dfn_model_forward(dfn_model *m, float *out, const float *x, const float *t, const int *y,
                       int batch, int mode, dfn_rng *rng) {
    DFN_ASSERT(m && out && x && batch > 0);
    DFN_ASSERT(t || !dfn_model_takes_time(m));
    DFN_ASSERT(mode == DFN_EVAL || mode == DFN_TRAIN || mode == DFN_EVAL_GRAD);
    DFN_ASSERT(mode != DFN_TRAIN || m->cfg.dropout == 0.0f || rng);
    dfn_model_prepare(m, batch);
    m->ops->forward(m, out, x, t, y, batch, mode == DFN_TRAIN, rng);
    m->last_batch = mode == DFN_EVAL ? 0 : batch;
    m->forward_batch = batch;
}

void dfn_model_backward(dfn_model *m, const float *dout, float *dx) {
    DFN_ASSERT(m && dout);
    DFN_ASSERT(m->last_batch > 0 && "dfn_model_backward needs a DFN_TRAIN or DFN_EVAL_GRAD forward first");
    m->ops->backward(m, dout, dx);
}

double dfn_model_flops_per_sample(const dfn_model *m) { return 2.0 * m->ops->macs(m); }

/* ---------------------------------------------------------------- features */

int dfn_model_feature_dim(const dfn_model *m) {
    if (m->cfg.kind != DFN_MODEL_CLASSIFIER) return 0;
    /* (classifier.c: the flatten head's features are its last map's mean) */
    return m->cfg.classifier.flatten ? 4 * m->cfg.classifier.channels : m->cfg.classifier.feature_dim;
}

void dfn_model_features(const dfn_model *m, float *features) {
    DFN_ASSERT(m && features && m->ops->features && dfn_model_feature_dim(m) > 0);
    DFN_ASSERT(m->forward_batch > 0 && "dfn_model_features needs a forward first");
    memcpy(features, m->ops->features(m),
           (size_t)m->forward_batch * dfn_model_feature_dim(m) * sizeof(float));
}

#define FEATURE_CHUNK 64 /* images per forward in dfn_model_extract_features */

void dfn_model_extract_features(dfn_model *m, float *features, const float *x, size_t n) {
    DFN_ASSERT(m && features && x && dfn_model_feature_dim(m) > 0);
    const size_t in = dfn_model_input_size(m), out = dfn_model_output_size(m);
    const int F = dfn_model_feature_dim(m);
    float *scratch = dfn_malloc((size_t)FEATURE_CHUNK * out * sizeof(float));
    /* under MPI each process takes a contiguous block of chunks (the same chunks
     * as one process would run, so the same bits), then all gather them */
    size_t *rows = dfn_dist_blocks((n + FEATURE_CHUNK - 1) / FEATURE_CHUNK, FEATURE_CHUNK, n);
    for (size_t i = rows[dfn_dist_rank()]; i < rows[dfn_dist_rank() + 1]; i += FEATURE_CHUNK) {
        int b = (int)DFN_MIN((size_t)FEATURE_CHUNK, n - i);
        dfn_model_forward(m, scratch, x + i * in, NULL, NULL, b, DFN_EVAL, NULL);
        memcpy(features + i * F, m->ops->features(m), (size_t)b * F * sizeof(float));
    }
    dfn_dist_allgather_rows(features, (size_t)F * sizeof(float), rows);
    free(rows);
    free(scratch);
}

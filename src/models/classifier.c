/* classifier.c - the small CNN whose penultimate layer is the feature space of
 * FID and KID (src/eval), trained on the labelled dataset itself.
 *
 *   x (B,C,H,W) -> conv1 3x3 (ch)        -> norm1 GN+SiLU
 *               -> conv2 3x3 /2 (2ch)    -> norm2 GN+SiLU
 *               -> conv3 3x3 /2 (4ch)    -> norm3 GN+SiLU
 *               -> global average pool (B,4ch)
 *               -> fc1 (F) -> SiLU       = the features (B,F)
 *               -> fc2 (classes)         = the logits
 *
 * A PyTorch twin is nn.Sequential-free code with the same attribute names
 * (conv1, norm1, ..., fc2) and GroupNorm(groups, ch, eps=1e-5); its
 * state_dict and the safetensors checkpoint hold the same tensors.
 *
 * Everything is built from the engine's layers (src/nn), which are
 * deterministic for any thread count, plus the pooling layer of nn/pool.c; the
 * training loop draws batches from dfn_batch_iter, so a seeded run gives the
 * same bits on 1 or many threads.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "io/safetensors.h"
#include "models/model.h"
#include "nn/nn.h"
#include "nn/pool.h"

#define CLASSIFIER_FORMAT "diffusion.c classifier"
#define CLASSIFIER_VERSION "1"
#define CLASSIFIER_EPS 1e-5f /* torch.nn.GroupNorm's default */
#define FEATURE_CHUNK 64     /* images per forward in dfn_classifier_features */

struct dfn_classifier {
    dfn_classifier_config cfg;
    dfn_param_table tab;
    float *params, *grads;
    dfn_wb conv1, norm1, conv2, norm2, conv3, norm3, fc1, fc2;
    int ch[3];          /* channels of the three stages */
    int hs[3], ws[3];   /* their spatial sizes */
    int capacity;       /* batch the activation buffers hold */
    int last_batch;     /* batch of the last forward (0: none) */
    float *acts;        /* one allocation for everything below */
    float *x, *h[3], *a[3], *mean[3], *rstd[3], *pool, *f, *s;
    float *grad_acts;   /* backward scratch: two ping-pong planes + vectors */
    float *g0, *g1, *ds, *df, *dpool;
    char *path;         /* the checkpoint it came from, for messages (or NULL) */
};

/* ================================================================ config */

void dfn_classifier_config_init(dfn_classifier_config *cfg, int in_channels, int height,
                                int width, int num_classes) {
    DFN_ASSERT(cfg);
    memset(cfg, 0, sizeof *cfg);
    cfg->in_channels = in_channels;
    cfg->height = height;
    cfg->width = width;
    cfg->channels = 32;
    cfg->groups = 8;
    cfg->feature_dim = 128;
    cfg->num_classes = num_classes;
}

dfn_status dfn_classifier_config_validate(const dfn_classifier_config *c) {
    DFN_ASSERT(c);
    const char *what = NULL;
    int value = 0;
    if (c->in_channels < 1 || c->in_channels > 64) what = "in_channels", value = c->in_channels;
    else if (c->height < 1 || c->height > 4096) what = "height", value = c->height;
    else if (c->width < 1 || c->width > 4096) what = "width", value = c->width;
    else if (c->channels < 1 || c->channels > 1024) what = "channels", value = c->channels;
    else if (c->feature_dim < 1 || c->feature_dim > 65536) what = "feature_dim", value = c->feature_dim;
    else if (c->num_classes < 2 || c->num_classes > 100000) what = "num_classes", value = c->num_classes;
    if (what)
        return dfn_set_error(DFN_ERR_CONFIG, "classifier config: %s = %d is out of range", what,
                             value);
    if (c->groups < 1 || c->channels % c->groups != 0)
        return dfn_set_error(DFN_ERR_CONFIG,
                             "classifier config: groups = %d must divide channels = %d",
                             c->groups, c->channels);
    return DFN_OK;
}

static char *config_to_json(const dfn_classifier_config *c) {
    cJSON *o = cJSON_CreateObject();
    DFN_ASSERT(o);
    cJSON_AddStringToObject(o, "kind", "classifier");
    cJSON_AddNumberToObject(o, "in_channels", c->in_channels);
    cJSON_AddNumberToObject(o, "height", c->height);
    cJSON_AddNumberToObject(o, "width", c->width);
    cJSON_AddNumberToObject(o, "channels", c->channels);
    cJSON_AddNumberToObject(o, "groups", c->groups);
    cJSON_AddNumberToObject(o, "feature_dim", c->feature_dim);
    cJSON_AddNumberToObject(o, "num_classes", c->num_classes);
    char *text = cJSON_PrintUnformatted(o);
    DFN_ASSERT(text);
    size_t len = strlen(text);
    char *out = dfn_malloc(len + 1);
    memcpy(out, text, len + 1);
    cJSON_free(text);
    cJSON_Delete(o);
    return out;
}

/* Parses the "config" metadata; every key is required and must be an integer. */
static dfn_status config_from_json(dfn_classifier_config *c, const char *json, const char *path) {
    dfn_status st = DFN_OK;
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: the \"config\" metadata is not a JSON object",
                           path);
        goto done;
    }
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
    if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "classifier") != 0) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: config \"kind\" is %s%s%s, expected \"classifier\"",
                           path, cJSON_IsString(kind) ? "\"" : "",
                           cJSON_IsString(kind) ? kind->valuestring : "missing",
                           cJSON_IsString(kind) ? "\"" : "");
        goto done;
    }
    struct {
        const char *key;
        int *dst;
    } keys[] = {{"in_channels", &c->in_channels}, {"height", &c->height},
                {"width", &c->width},             {"channels", &c->channels},
                {"groups", &c->groups},           {"feature_dim", &c->feature_dim},
                {"num_classes", &c->num_classes}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, keys[i].key);
        if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) ||
            fabs(item->valuedouble) > 1e9) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: config \"%s\" is %s", path, keys[i].key,
                               item ? "not an integer" : "missing");
            goto done;
        }
        *keys[i].dst = (int)item->valuedouble;
    }
done:
    cJSON_Delete(root);
    return st;
}

/* ================================================================ building */

static void build(dfn_classifier *m) {
    const dfn_classifier_config *c = &m->cfg;
    m->ch[0] = c->channels;
    m->ch[1] = 2 * c->channels;
    m->ch[2] = 4 * c->channels;
    m->hs[0] = c->height;
    m->ws[0] = c->width;
    for (int l = 1; l < 3; l++) { /* 3x3, stride 2, pad 1 */
        m->hs[l] = (m->hs[l - 1] - 1) / 2 + 1;
        m->ws[l] = (m->ws[l - 1] - 1) / 2 + 1;
    }
    dfn_param_table *t = &m->tab;
    m->conv1 = dfn_param_conv(t, "conv1", m->ch[0], c->in_channels, 3);
    m->norm1 = dfn_param_norm(t, "norm1", m->ch[0]);
    m->conv2 = dfn_param_conv(t, "conv2", m->ch[1], m->ch[0], 3);
    m->norm2 = dfn_param_norm(t, "norm2", m->ch[1]);
    m->conv3 = dfn_param_conv(t, "conv3", m->ch[2], m->ch[1], 3);
    m->norm3 = dfn_param_norm(t, "norm3", m->ch[2]);
    m->fc1 = dfn_param_linear(t, "fc1", c->feature_dim, m->ch[2]);
    m->fc2 = dfn_param_linear(t, "fc2", c->num_classes, c->feature_dim);
}

/* PyTorch's defaults (as models/model.c): U(-1/sqrt(fan_in), +) for conv and
 * linear weights and biases, GroupNorm 1 and 0, in table order from one stream. */
static void init_params(dfn_classifier *m, uint64_t seed) {
    dfn_rng rng = dfn_rng_init(seed);
    for (int i = 0; i < m->tab.count; i++) {
        const dfn_tensor_info *t = &m->tab.t[i];
        float *p = m->params + t->offset;
        if (t->init == INIT_UNIFORM_FAN_IN) {
            float bound = 1.0f / sqrtf((float)t->fan_in);
            dfn_rng_uniform(&rng, p, t->numel);
            for (size_t j = 0; j < t->numel; j++) p[j] = (2.0f * p[j] - 1.0f) * bound;
        } else if (t->init == INIT_ONES) {
            for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
        } else {
            DFN_ASSERT(t->init == INIT_ZEROS);
            memset(p, 0, t->numel * sizeof(float));
        }
    }
}

dfn_status dfn_classifier_new(dfn_classifier **out, const dfn_classifier_config *cfg,
                              uint64_t seed) {
    DFN_ASSERT(out && cfg);
    *out = NULL;
    dfn_status st = dfn_classifier_config_validate(cfg);
    if (st != DFN_OK) return st;
    dfn_classifier *m = dfn_calloc(1, sizeof *m);
    m->cfg = *cfg;
    build(m);
    m->params = dfn_calloc(m->tab.total, sizeof(float));
    m->grads = dfn_calloc(m->tab.total, sizeof(float));
    init_params(m, seed);
    *out = m;
    return DFN_OK;
}

void dfn_classifier_free(dfn_classifier *c) {
    if (!c) return;
    free(c->tab.t);
    free(c->params);
    free(c->grads);
    free(c->acts);
    free(c->grad_acts);
    free(c->path);
    free(c);
}

const dfn_classifier_config *dfn_classifier_get_config(const dfn_classifier *c) { return &c->cfg; }
size_t dfn_classifier_num_params(const dfn_classifier *c) { return c->tab.total; }
float *dfn_classifier_params(dfn_classifier *c) { return c->params; }
float *dfn_classifier_grads(dfn_classifier *c) { return c->grads; }
void dfn_classifier_zero_grad(dfn_classifier *c) {
    memset(c->grads, 0, c->tab.total * sizeof(float));
}

/* Elements of one image at stage l's resolution with n channels. */
static size_t plane(const dfn_classifier *m, int l, int n) {
    return (size_t)n * m->hs[l] * m->ws[l];
}

/* Sizes the activation buffers for batch B (grow only). */
static void reserve(dfn_classifier *m, int B) {
    if (B <= m->capacity) return;
    const dfn_classifier_config *c = &m->cfg;
    size_t Bz = (size_t)B, G = (size_t)c->groups;
    size_t sizes[16], total = 0;
    int k = 0;
    sizes[k++] = Bz * plane(m, 0, c->in_channels); /* x */
    for (int l = 0; l < 3; l++) {
        sizes[k++] = Bz * plane(m, l, m->ch[l]); /* h */
        sizes[k++] = Bz * plane(m, l, m->ch[l]); /* a */
        sizes[k++] = Bz * G;                     /* mean */
        sizes[k++] = Bz * G;                     /* rstd */
    }
    sizes[k++] = Bz * m->ch[2];        /* pool */
    sizes[k++] = Bz * c->feature_dim;  /* f */
    sizes[k++] = Bz * c->feature_dim;  /* s */
    for (int i = 0; i < k; i++) total += (sizes[i] + 15) / 16 * 16;
    free(m->acts);
    m->acts = dfn_malloc(total * sizeof(float));
    float *p = m->acts;
    float **dst[16];
    int j = 0;
    dst[j++] = &m->x;
    for (int l = 0; l < 3; l++) {
        dst[j++] = &m->h[l];
        dst[j++] = &m->a[l];
        dst[j++] = &m->mean[l];
        dst[j++] = &m->rstd[l];
    }
    dst[j++] = &m->pool;
    dst[j++] = &m->f;
    dst[j++] = &m->s;
    DFN_ASSERT(j == k);
    for (int i = 0; i < k; i++) {
        *dst[i] = p;
        p += (sizes[i] + 15) / 16 * 16;
    }
    /* backward: two planes as large as the largest stage, and the vectors */
    size_t big = 0;
    for (int l = 0; l < 3; l++) big = DFN_MAX(big, plane(m, l, m->ch[l]));
    big = DFN_MAX(big, plane(m, 0, c->in_channels));
    big = (Bz * big + 15) / 16 * 16;
    size_t vf = (Bz * c->feature_dim + 15) / 16 * 16, vp = (Bz * m->ch[2] + 15) / 16 * 16;
    free(m->grad_acts);
    m->grad_acts = dfn_malloc((2 * big + 2 * vf + vp) * sizeof(float));
    m->g0 = m->grad_acts;
    m->g1 = m->g0 + big;
    m->ds = m->g1 + big;
    m->df = m->ds + vf;
    m->dpool = m->df + vf;
    m->capacity = B;
}

static dfn_conv2d_shape conv_shape(const dfn_classifier *m, int l, int B) {
    dfn_conv2d_shape s;
    s.N = B;
    s.C = l == 0 ? m->cfg.in_channels : m->ch[l - 1];
    s.H = l == 0 ? m->hs[0] : m->hs[l - 1];
    s.W = l == 0 ? m->ws[0] : m->ws[l - 1];
    s.OC = m->ch[l];
    s.KH = s.KW = 3;
    s.stride = l == 0 ? 1 : 2;
    s.pad = 1;
    return s;
}

static const dfn_wb *conv_wb(const dfn_classifier *m, int l) {
    return l == 0 ? &m->conv1 : l == 1 ? &m->conv2 : &m->conv3;
}
static const dfn_wb *norm_wb(const dfn_classifier *m, int l) {
    return l == 0 ? &m->norm1 : l == 1 ? &m->norm2 : &m->norm3;
}

/* ================================================================ forward, backward */

void dfn_classifier_forward(dfn_classifier *m, float *logits, float *features, const float *x,
                            int B) {
    DFN_ASSERT(m && logits && x && B >= 1);
    reserve(m, B);
    const dfn_classifier_config *c = &m->cfg;
    const float *P = m->params;
    memcpy(m->x, x, (size_t)B * plane(m, 0, c->in_channels) * sizeof(float));
    const float *in = m->x;
    for (int l = 0; l < 3; l++) {
        dfn_conv2d_shape s = conv_shape(m, l, B);
        DFN_ASSERT(dfn_conv2d_out_h(&s) == m->hs[l] && dfn_conv2d_out_w(&s) == m->ws[l]);
        dfn_conv2d_forward(m->h[l], in, P + conv_wb(m, l)->w, P + conv_wb(m, l)->b, &s);
        dfn_groupnorm_forward(m->a[l], m->mean[l], m->rstd[l], m->h[l], P + norm_wb(m, l)->w,
                              P + norm_wb(m, l)->b, B, m->ch[l], m->hs[l] * m->ws[l], c->groups,
                              CLASSIFIER_EPS, 1);
        in = m->a[l];
    }
    dfn_avgpool_forward(m->pool, m->a[2], B, m->ch[2], m->hs[2] * m->ws[2]);
    dfn_linear_forward(m->f, m->pool, P + m->fc1.w, P + m->fc1.b, B, m->ch[2], c->feature_dim);
    dfn_silu_forward(m->s, m->f, (size_t)B * c->feature_dim);
    dfn_linear_forward(logits, m->s, P + m->fc2.w, P + m->fc2.b, B, c->feature_dim,
                       c->num_classes);
    if (features) memcpy(features, m->s, (size_t)B * c->feature_dim * sizeof(float));
    m->last_batch = B;
}

void dfn_classifier_backward(dfn_classifier *m, const float *dlogits, float *dx) {
    DFN_ASSERT(m && dlogits);
    DFN_ASSERT(m->last_batch > 0); /* a forward must come first */
    const dfn_classifier_config *c = &m->cfg;
    const int B = m->last_batch, F = c->feature_dim;
    const float *P = m->params;
    float *G = m->grads;
    const size_t nf = (size_t)B * F, np = (size_t)B * m->ch[2];

    memset(m->ds, 0, nf * sizeof(float));
    dfn_linear_backward(m->ds, G + m->fc2.w, G + m->fc2.b, dlogits, m->s, P + m->fc2.w, B, F,
                        c->num_classes);
    memset(m->df, 0, nf * sizeof(float));
    dfn_silu_backward(m->df, m->ds, m->f, nf);
    memset(m->dpool, 0, np * sizeof(float));
    dfn_linear_backward(m->dpool, G + m->fc1.w, G + m->fc1.b, m->df, m->pool, P + m->fc1.w, B,
                        m->ch[2], F);
    /* g0: d(loss)/d(a[l]); g1: d(loss)/d(h[l]) */
    memset(m->g0, 0, (size_t)B * plane(m, 2, m->ch[2]) * sizeof(float));
    dfn_avgpool_backward(m->g0, m->dpool, B, m->ch[2], m->hs[2] * m->ws[2]);
    for (int l = 2; l >= 0; l--) {
        const size_t n = (size_t)B * plane(m, l, m->ch[l]);
        memset(m->g1, 0, n * sizeof(float));
        dfn_groupnorm_backward(m->g1, G + norm_wb(m, l)->w, G + norm_wb(m, l)->b, m->g0, m->h[l],
                               P + norm_wb(m, l)->w, P + norm_wb(m, l)->b, m->mean[l],
                               m->rstd[l], B, m->ch[l], m->hs[l] * m->ws[l], c->groups, 1);
        dfn_conv2d_shape s = conv_shape(m, l, B);
        float *dinp = NULL;
        if (l > 0) {
            dinp = m->g0;
            memset(dinp, 0, (size_t)B * plane(m, l - 1, m->ch[l - 1]) * sizeof(float));
        } else if (dx) {
            dinp = dx;
            memset(dx, 0, (size_t)B * plane(m, 0, c->in_channels) * sizeof(float));
        }
        dfn_conv2d_backward(dinp, G + conv_wb(m, l)->w, G + conv_wb(m, l)->b, m->g1,
                            l == 0 ? m->x : m->a[l - 1], P + conv_wb(m, l)->w, &s);
    }
}

void dfn_classifier_features(dfn_classifier *m, float *features, const float *x, size_t n) {
    DFN_ASSERT(m && features && x);
    const dfn_classifier_config *c = &m->cfg;
    const size_t in = plane(m, 0, c->in_channels);
    float *logits = dfn_malloc((size_t)FEATURE_CHUNK * c->num_classes * sizeof(float));
    for (size_t i = 0; i < n; i += FEATURE_CHUNK) {
        int b = (int)DFN_MIN((size_t)FEATURE_CHUNK, n - i);
        dfn_classifier_forward(m, logits, features + i * c->feature_dim, x + i * in, b);
    }
    free(logits);
}

/* ================================================================ loss */

/* log softmax(z)_y = z_y - max - log sum_k exp(z_k - max); the gradient of the
 * mean over the batch is (softmax(z) - onehot(y)) / B. */
double dfn_softmax_cross_entropy(float *dlogits, const float *logits, const int *labels,
                                 int B, int K) {
    DFN_ASSERT(logits && labels && B >= 1 && K >= 1);
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        int y = labels[b];
        DFN_ASSERT(y >= 0 && y < K);
        double mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        double sum = 0.0;
        for (int k = 0; k < K; k++) sum += exp((double)z[k] - mx);
        double lse = mx + log(sum);
        total += lse - (double)z[y];
        if (dlogits) {
            float *d = dlogits + (size_t)b * K;
            for (int k = 0; k < K; k++)
                d[k] = (float)((exp((double)z[k] - lse) - (k == y ? 1.0 : 0.0)) / B);
        }
    }
    return total / B;
}

/* ================================================================ data checks */

dfn_status dfn_classifier_check_data(const dfn_classifier *m, const dfn_dataset *ds,
                                     const char *what) {
    DFN_ASSERT(m && ds && what);
    const dfn_classifier_config *c = &m->cfg;
    int dims[DFN_DATASET_MAX_DIMS];
    int nd = dfn_dataset_shape(ds, dims);
    const char *src = m->path ? m->path : "in memory";
    if (nd != 3)
        return dfn_set_error(DFN_ERR_ARG,
                             "%s: vectors of %d, but the classifier (%s) takes %dx%dx%d images",
                             what, dims[0], src, c->in_channels, c->height, c->width);
    if (dims[0] != c->in_channels || dims[1] != c->height || dims[2] != c->width)
        return dfn_set_error(DFN_ERR_ARG,
                             "%s: images are %dx%dx%d, but the classifier (%s) was built for "
                             "%dx%dx%d images",
                             what, dims[0], dims[1], dims[2], src, c->in_channels, c->height,
                             c->width);
    return DFN_OK;
}

/* ================================================================ training */

dfn_classifier_train_params dfn_classifier_train_params_init(void) {
    dfn_classifier_train_params p;
    memset(&p, 0, sizeof p);
    p.steps = 3000;
    p.batch_size = 128;
    p.adamw = dfn_adamw_params_init();
    p.adamw.lr = 2e-3;
    p.adamw.weight_decay = 0.05;
    p.warmup = 100;
    p.lr_min_ratio = 0.01;
    p.clip = 1.0;
    p.hflip = 0;
    p.seed = 0;
    p.log_every = 0;
    return p;
}

/* Linear warm-up, then cosine decay to lr * min_ratio. */
static double lr_at(const dfn_classifier_train_params *p, long step) {
    return dfn_lr_warmup_cosine(p->adamw.lr, p->warmup, p->steps, p->lr_min_ratio, step);
}

static dfn_status check_labels(const dfn_classifier *m, const dfn_dataset *ds, const char *what) {
    int K = dfn_dataset_num_classes(ds);
    if (!dfn_dataset_labels((dfn_dataset *)ds) || K == 0)
        return dfn_set_error(DFN_ERR_ARG, "%s: the images have no labels (a classifier needs them)",
                             what);
    if (K > m->cfg.num_classes)
        return dfn_set_error(DFN_ERR_ARG, "%s: %d classes, but the classifier has %d", what, K,
                             m->cfg.num_classes);
    return DFN_OK;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

dfn_status dfn_classifier_train(dfn_classifier *m, const dfn_dataset *train,
                                const dfn_classifier_train_params *p) {
    DFN_ASSERT(m && train && p);
    dfn_status st;
    if ((st = dfn_classifier_check_data(m, train, "training data")) != DFN_OK) return st;
    if ((st = check_labels(m, train, "training data")) != DFN_OK) return st;
    if (p->steps < 1 || p->batch_size < 1 || !(p->adamw.lr > 0) || p->warmup < 0)
        return dfn_set_error(DFN_ERR_ARG,
                             "classifier training: steps (%ld), batch (%d) and lr (%g) must be "
                             "positive, warmup (%ld) >= 0",
                             p->steps, p->batch_size, p->adamw.lr, p->warmup);
    const int B = p->batch_size, K = m->cfg.num_classes;
    const size_t n = m->tab.total, in = dfn_dataset_sample_size(train);
    dfn_batch_params bp = dfn_batch_params_init(B);
    bp.hflip = p->hflip;
    dfn_batch_iter *it = NULL;
    if ((st = dfn_batch_iter_new(&it, train, &bp, p->seed)) != DFN_OK) return st;
    float *x = dfn_malloc((size_t)B * in * sizeof(float));
    int *y = dfn_malloc((size_t)B * sizeof(int));
    float *logits = dfn_malloc((size_t)B * K * sizeof(float));
    float *dlogits = dfn_malloc((size_t)B * K * sizeof(float));
    float *mom = dfn_calloc(n, sizeof(float)), *vel = dfn_calloc(n, sizeof(float));
    double run_loss = 0.0, t0 = now_seconds();
    long run_correct = 0, run_count = 0;
    for (long step = 1; step <= p->steps; step++) {
        int got = dfn_batch_iter_next(it, x, y);
        DFN_ASSERT(got == B);
        dfn_classifier_zero_grad(m);
        dfn_classifier_forward(m, logits, NULL, x, B);
        double loss = dfn_softmax_cross_entropy(dlogits, logits, y, B, K);
        if (!isfinite(loss)) {
            st = dfn_set_error(DFN_ERR_NUMERIC,
                               "classifier training: the loss is %g at step %ld (try a lower "
                               "--lr)",
                               loss, step);
            goto done;
        }
        dfn_classifier_backward(m, dlogits, NULL);
        if (p->clip > 0) {
            double norm = dfn_clip_grad_norm(m->grads, n, p->clip);
            if (!isfinite(norm)) {
                st = dfn_set_error(DFN_ERR_NUMERIC,
                                   "classifier training: the gradient norm is %g at step %ld",
                                   norm, step);
                goto done;
            }
        }
        dfn_adamw_params ap = p->adamw;
        ap.lr = lr_at(p, step);
        dfn_adamw_step(m->params, m->grads, mom, vel, n, step, &ap);
        run_loss += loss;
        for (int b = 0; b < B; b++) {
            const float *z = logits + (size_t)b * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (z[k] > z[best]) best = k;
            run_correct += best == y[b];
        }
        run_count++;
        if (p->log_every > 0 && (step % p->log_every == 0 || step == p->steps)) {
            printf("step %6ld/%ld  loss %.4f  train acc %.4f  lr %.2e  %.1f s\n", step, p->steps,
                   run_loss / run_count, (double)run_correct / ((double)run_count * B), ap.lr,
                   now_seconds() - t0);
            fflush(stdout);
            run_loss = 0.0;
            run_correct = run_count = 0;
        }
    }
    st = DFN_OK;
done:
    free(x);
    free(y);
    free(logits);
    free(dlogits);
    free(mom);
    free(vel);
    dfn_batch_iter_free(it);
    return st;
}

dfn_status dfn_classifier_accuracy(dfn_classifier *m, const dfn_dataset *ds, double *accuracy) {
    DFN_ASSERT(m && ds && accuracy);
    dfn_status st;
    if ((st = dfn_classifier_check_data(m, ds, "evaluation data")) != DFN_OK) return st;
    if ((st = check_labels(m, ds, "evaluation data")) != DFN_OK) return st;
    const int K = m->cfg.num_classes;
    const size_t N = dfn_dataset_count(ds), in = dfn_dataset_sample_size(ds);
    const float *data = dfn_dataset_sample(ds, 0);
    const int *labels = dfn_dataset_labels((dfn_dataset *)ds);
    float *logits = dfn_malloc((size_t)FEATURE_CHUNK * K * sizeof(float));
    size_t correct = 0;
    for (size_t i = 0; i < N; i += FEATURE_CHUNK) {
        int b = (int)DFN_MIN((size_t)FEATURE_CHUNK, N - i);
        dfn_classifier_forward(m, logits, NULL, data + i * in, b);
        for (int j = 0; j < b; j++) {
            const float *z = logits + (size_t)j * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (z[k] > z[best]) best = k;
            correct += best == labels[i + j];
        }
    }
    free(logits);
    *accuracy = (double)correct / (double)N;
    return DFN_OK;
}

/* ================================================================ checkpoints */

dfn_status dfn_classifier_save(const dfn_classifier *m, const char *path,
                               const char *const *extra_metadata) {
    DFN_ASSERT(m && path);
    dfn_status st = DFN_OK;
    dfn_st_writer *w = dfn_st_writer_new();
    char *config = config_to_json(&m->cfg);
    char shape[64];
    snprintf(shape, sizeof shape, "[%d, %d, %d]", m->cfg.in_channels, m->cfg.height,
             m->cfg.width);
    for (const char *const *kv = extra_metadata; kv && kv[0]; kv += 2) {
        if (!kv[1]) {
            st = dfn_set_error(DFN_ERR_ARG, "%s: extra metadata key '%s' has no value", path,
                               kv[0]);
            goto done;
        }
        if (!strcmp(kv[0], "config") || !strcmp(kv[0], "format") ||
            !strcmp(kv[0], "format_version") || !strcmp(kv[0], "kind") ||
            !strcmp(kv[0], "data_shape")) {
            st = dfn_set_error(DFN_ERR_ARG,
                               "%s: extra metadata key '%s' is reserved for the checkpoint itself",
                               path, kv[0]);
            goto done;
        }
    }
    if ((st = dfn_st_writer_set_metadata(w, "format", CLASSIFIER_FORMAT)) != DFN_OK) goto done;
    if ((st = dfn_st_writer_set_metadata(w, "format_version", CLASSIFIER_VERSION)) != DFN_OK)
        goto done;
    if ((st = dfn_st_writer_set_metadata(w, "kind", "classifier")) != DFN_OK) goto done;
    if ((st = dfn_st_writer_set_metadata(w, "config", config)) != DFN_OK) goto done;
    if ((st = dfn_st_writer_set_metadata(w, "data_shape", shape)) != DFN_OK) goto done;
    for (const char *const *kv = extra_metadata; kv && kv[0]; kv += 2)
        if ((st = dfn_st_writer_set_metadata(w, kv[0], kv[1])) != DFN_OK) goto done;
    for (int i = 0; i < m->tab.count && st == DFN_OK; i++) {
        const dfn_tensor_info *t = &m->tab.t[i];
        st = dfn_st_writer_add_f32(w, t->name, t->ndim, t->shape, m->params + t->offset);
    }
    if (st == DFN_OK) st = dfn_st_writer_save(w, path);
done:
    free(config);
    dfn_st_writer_free(w);
    return st;
}

dfn_status dfn_classifier_load(dfn_classifier **out, const char *path) {
    DFN_ASSERT(out && path);
    *out = NULL;
    dfn_status st;
    dfn_classifier *m = NULL;
    dfn_st_file *f = NULL;
    dfn_classifier_config cfg;
    if ((st = dfn_st_open(&f, path)) != DFN_OK) goto fail;
    const char *format = dfn_st_metadata(f, "format");
    const char *version = dfn_st_metadata(f, "format_version");
    const char *config = dfn_st_metadata(f, "config");
    if (!format || strcmp(format, CLASSIFIER_FORMAT) != 0) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: not a diffusion.c classifier (metadata \"format\" is %s%s%s)%s",
                           path, format ? "\"" : "", format ? format : "missing",
                           format ? "\"" : "",
                           config ? "; a diffusion model checkpoint cannot serve as a classifier"
                                  : "");
        goto fail;
    }
    if (version && strcmp(version, CLASSIFIER_VERSION) != 0) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: classifier format_version \"%s\" is not supported (this build "
                           "reads version " CLASSIFIER_VERSION ")",
                           path, version);
        goto fail;
    }
    if (!config) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: no \"config\" in the safetensors metadata", path);
        goto fail;
    }
    if ((st = config_from_json(&cfg, config, path)) != DFN_OK) goto fail;
    if ((st = dfn_classifier_config_validate(&cfg)) != DFN_OK) {
        char inner[512];
        snprintf(inner, sizeof inner, "%s", dfn_last_error());
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: %s", path, inner);
        goto fail;
    }
    if ((st = dfn_classifier_new(&m, &cfg, 0)) != DFN_OK) goto fail;
    for (int i = 0; i < m->tab.count; i++) {
        const dfn_tensor_info *t = &m->tab.t[i];
        int64_t shape[4];
        for (int d = 0; d < t->ndim; d++) shape[d] = t->shape[d];
        if ((st = dfn_st_read_f32(f, t->name, t->ndim, shape, m->params + t->offset)) != DFN_OK)
            goto fail;
    }
    if (dfn_st_num_tensors(f) != m->tab.count) {
        for (int i = 0; i < dfn_st_num_tensors(f); i++) {
            const char *name = dfn_st_tensor_at(f, i)->name;
            int known = 0;
            for (int j = 0; j < m->tab.count && !known; j++) known = !strcmp(name, m->tab.t[j].name);
            if (!known) {
                st = dfn_set_error(DFN_ERR_FORMAT,
                                   "%s: unexpected tensor '%s' (not part of the classifier)",
                                   path, name);
                goto fail;
            }
        }
    }
    for (size_t i = 0; i < m->tab.total; i++)
        if (!isfinite(m->params[i])) {
            st = dfn_set_error(DFN_ERR_NUMERIC, "%s: the weights hold NaN or Inf", path);
            goto fail;
        }
    size_t len = strlen(path);
    m->path = dfn_malloc(len + 1);
    memcpy(m->path, path, len + 1);
    dfn_st_close(f);
    *out = m;
    return DFN_OK;
fail:
    dfn_classifier_free(m);
    dfn_st_close(f);
    return st;
}

/* model.c - configs, presets and validation; building, initialising and
 * running a model of either kind. */
#include <math.h>
#include <string.h>

#include "model.h"

static const char *const kind_names[] = {"unet", "mlp"};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == DFN_MODEL_KIND_COUNT,
               "kind_names must name every dfn_model_kind");

const char *dfn_model_kind_name(dfn_model_kind kind) {
    return (int)kind >= 0 && kind < DFN_MODEL_KIND_COUNT ? kind_names[kind] : "?";
}

int dfn_model_kind_from_name(const char *name) {
    for (int i = 0; i < DFN_MODEL_KIND_COUNT; i++)
        if (!strcmp(name, kind_names[i])) return i;
    return -1;
}

void dfn_model_config_init(dfn_model_config *cfg, dfn_model_kind kind) {
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    /* U-Net: the reference fmnist-small */
    cfg->in_channels = 1;
    cfg->resolution = 28;
    cfg->channels = 64;
    cfg->n_levels = 3;
    cfg->ch_mult[0] = 1;
    cfg->ch_mult[1] = 2;
    cfg->ch_mult[2] = 2;
    cfg->num_res_blocks = 2;
    cfg->n_attn = 1;
    cfg->attn_resolutions[0] = 7;
    cfg->heads = 1;
    cfg->groups = 32;
    cfg->norm_eps = 1e-6f;
    cfg->dropout = kind == DFN_MODEL_UNET ? 0.1f : 0.0f;
    /* MLP */
    cfg->dim = 2;
    cfg->width = 128;
    cfg->depth = 3;
    cfg->num_classes = 0;
}

typedef struct {
    const char *name, *help;
    void (*set)(dfn_model_config *);
} preset;

static void set_fmnist_small(dfn_model_config *c) { dfn_model_config_init(c, DFN_MODEL_UNET); }
static void set_fmnist_tiny(dfn_model_config *c) {
    dfn_model_config_init(c, DFN_MODEL_UNET);
    c->channels = 32;
    c->num_res_blocks = 1;
    c->n_attn = 0;
}
static void set_mlp_2d(dfn_model_config *c) { dfn_model_config_init(c, DFN_MODEL_MLP); }
static void set_mlp_curves(dfn_model_config *c) {
    dfn_model_config_init(c, DFN_MODEL_MLP);
    c->dim = 50;
    c->width = 256;
    c->depth = 4;
}

static const preset presets[] = {
    {"fmnist-tiny", "U-Net 1x28x28, ch 32, mult 1,2,2, 1 block/level, attention in the middle (1.06M params)", set_fmnist_tiny},
    {"fmnist-small", "U-Net 1x28x28, ch 64, mult 1,2,2, 2 blocks/level, attention at 7x7 (6.47M params)", set_fmnist_small},
    {"mlp-2d", "MLP for 2-D points, width 128, depth 3", set_mlp_2d},
    {"mlp-curves", "MLP for 50-dim curves, width 256, depth 4", set_mlp_curves},
};
#define N_PRESETS ((int)(sizeof presets / sizeof presets[0]))

int dfn_model_num_presets(void) { return N_PRESETS; }
const char *dfn_model_preset_name(int i) { return i >= 0 && i < N_PRESETS ? presets[i].name : NULL; }
const char *dfn_model_preset_help(int i) { return i >= 0 && i < N_PRESETS ? presets[i].help : NULL; }

dfn_status dfn_model_config_preset(dfn_model_config *cfg, const char *name) {
    for (int i = 0; i < N_PRESETS; i++) {
        if (!strcmp(name, presets[i].name)) {
            presets[i].set(cfg);
            return DFN_OK;
        }
    }
    char list[256] = "";
    for (int i = 0; i < N_PRESETS; i++) {
        strncat(list, presets[i].name, sizeof list - strlen(list) - 1);
        if (i + 1 < N_PRESETS) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return dfn_set_error(DFN_ERR_ARG, "unknown model preset '%s' (known: %s)", name, list);
}

static dfn_status check_groups(const dfn_model_config *c, int channels, const char *where) {
    if (channels % c->groups)
        return dfn_set_error(DFN_ERR_CONFIG,
                             "model config: %d channels at %s are not divisible by groups = %d",
                             channels, where, c->groups);
    return DFN_OK;
}

static dfn_status validate_unet(const dfn_model_config *c) {
    if (c->in_channels < 1 || c->in_channels > 64)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: in_channels = %d (must be 1..64)", c->in_channels);
    if (c->resolution < 1)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: resolution = %d (must be >= 1)", c->resolution);
    if (c->channels < 4)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: channels = %d (must be >= 4 for the time embedding)", c->channels);
    if (c->n_levels < 1 || c->n_levels > DFN_MAX_LEVELS)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: %d channel multipliers (must be 1..%d)", c->n_levels, DFN_MAX_LEVELS);
    if (c->num_res_blocks < 1 || c->num_res_blocks > 16)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: num_res_blocks = %d (must be 1..16)", c->num_res_blocks);
    if (c->n_attn < 0 || c->n_attn > DFN_MAX_LEVELS)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: %d attention resolutions (at most %d)", c->n_attn, DFN_MAX_LEVELS);
    if (c->groups < 1)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: groups = %d (must be >= 1)", c->groups);
    if (c->heads < 1)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: heads = %d (must be >= 1)", c->heads);
    if (!(c->norm_eps > 0.0f))
        return dfn_set_error(DFN_ERR_CONFIG, "model config: norm_eps = %g (must be > 0)", c->norm_eps);
    int res[DFN_MAX_LEVELS];
    res[0] = c->resolution;
    for (int l = 0; l < c->n_levels; l++) {
        if (c->ch_mult[l] < 1)
            return dfn_set_error(DFN_ERR_CONFIG, "model config: ch_mult[%d] = %d (must be >= 1)", l, c->ch_mult[l]);
        if (l > 0) {
            if (res[l - 1] % 2)
                return dfn_set_error(DFN_ERR_CONFIG,
                                     "model config: resolution %d does not halve at level %d "
                                     "(%d levels need a resolution divisible by %d)",
                                     res[l - 1], l, c->n_levels, 1 << (c->n_levels - 1));
            res[l] = res[l - 1] / 2;
        }
    }
    for (int a = 0; a < c->n_attn; a++) {
        int found = 0;
        for (int l = 0; l < c->n_levels; l++) found |= res[l] == c->attn_resolutions[a];
        if (!found) {
            char list[128] = "";
            for (int l = 0; l < c->n_levels; l++)
                snprintf(list + strlen(list), sizeof list - strlen(list), l ? ", %d" : "%d", res[l]);
            return dfn_set_error(DFN_ERR_CONFIG,
                                 "model config: attention at resolution %d, which never occurs "
                                 "(the levels have resolutions %s)",
                                 c->attn_resolutions[a], list);
        }
    }
    /* Every GroupNorm and attention, following the network's channel counts. */
    char where[96];
    int skip[4 * DFN_MAX_LEVELS * 17], n_skip = 0;
    int cur = c->channels;
    dfn_status st;
    skip[n_skip++] = cur;
    for (int l = 0; l < c->n_levels; l++) {
        int out = c->channels * c->ch_mult[l];
        for (int i = 0; i < c->num_res_blocks; i++) {
            snprintf(where, sizeof where, "down.%d.blocks.%d", l, i);
            if ((st = check_groups(c, cur, where)) || (st = check_groups(c, out, where))) return st;
            cur = out;
            skip[n_skip++] = cur;
        }
        if (l != c->n_levels - 1) skip[n_skip++] = cur;
    }
    for (int l = 0; l < c->n_levels; l++) {
        int attn = 0;
        for (int a = 0; a < c->n_attn; a++) attn |= c->attn_resolutions[a] == res[l];
        int ch = c->channels * c->ch_mult[l];
        if ((attn || l == c->n_levels - 1) && ch % c->heads)
            return dfn_set_error(DFN_ERR_CONFIG,
                                 "model config: %d channels at resolution %d are not divisible by heads = %d",
                                 ch, res[l], c->heads);
    }
    for (int l = c->n_levels - 1, j = 0; l >= 0; l--, j++) {
        int out = c->channels * c->ch_mult[l];
        for (int i = 0; i < c->num_res_blocks + 1; i++) {
            snprintf(where, sizeof where, "up.%d.blocks.%d (after concatenation)", j, i);
            if ((st = check_groups(c, cur + skip[--n_skip], where))) return st;
            cur = out;
            snprintf(where, sizeof where, "up.%d.blocks.%d", j, i);
            if ((st = check_groups(c, cur, where))) return st;
        }
    }
    return DFN_OK;
}

dfn_status dfn_model_config_validate(const dfn_model_config *c) {
    if ((int)c->kind < 0 || c->kind >= DFN_MODEL_KIND_COUNT)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: unknown model kind %d", (int)c->kind);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return dfn_set_error(DFN_ERR_CONFIG, "model config: dropout = %g (must be in [0, 1))", c->dropout);
    if (c->num_classes < 0 || c->num_classes > 100000)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: num_classes = %d (must be 0..100000)", c->num_classes);
    if (c->kind == DFN_MODEL_UNET) return validate_unet(c);
    if (c->dim < 1)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: dim = %d (must be >= 1)", c->dim);
    if (c->width < 4)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: width = %d (must be >= 4 for the time embedding)", c->width);
    if (c->depth < 1 || c->depth > 1000)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: depth = %d (must be 1..1000)", c->depth);
    return DFN_OK;
}

/* PyTorch's default initialisation (torch.nn.Linear / Conv2d reset_parameters:
 * kaiming_uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
 * weights and biases; GroupNorm 1 and 0; Embedding N(0, 1)), drawn from a
 * Philox stream in table order. */
static void init_params(dfn_model *m, uint64_t seed) {
    dfn_rng rng = dfn_rng_init(seed);
    for (int i = 0; i < m->tab.count; i++) {
        const dfn_tensor_info *t = &m->tab.t[i];
        float *p = m->params + t->offset;
        switch (t->init) {
        case INIT_UNIFORM_FAN_IN: {
            float bound = 1.0f / sqrtf((float)t->fan_in);
            dfn_rng_uniform(&rng, p, t->numel);
            for (size_t j = 0; j < t->numel; j++) p[j] = (2.0f * p[j] - 1.0f) * bound;
            break;
        }
        case INIT_ONES:
            for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
            break;
        case INIT_ZEROS:
            memset(p, 0, t->numel * sizeof(float));
            break;
        case INIT_NORMAL:
            dfn_rng_normal(&rng, p, t->numel);
            break;
        }
    }
}

dfn_status dfn_model_new(dfn_model **out, const dfn_model_config *cfg, uint64_t seed) {
    *out = NULL;
    dfn_status st = dfn_model_config_validate(cfg);
    if (st != DFN_OK) return st;
    dfn_model *m = dfn_calloc(1, sizeof *m);
    m->cfg = *cfg;
    if (cfg->kind == DFN_MODEL_UNET) dfn_unet_build(m);
    else dfn_mlp_build(m);
    m->params = dfn_calloc(m->tab.total, sizeof(float));
    m->grads = dfn_calloc(m->tab.total, sizeof(float));
    init_params(m, seed);
    *out = m;
    return DFN_OK;
}

void dfn_model_free(dfn_model *m) {
    if (!m) return; /* like free(NULL) */
    if (m->cfg.kind == DFN_MODEL_UNET) dfn_unet_free(m);
    else dfn_mlp_free(m);
    free(m->tab.t);
    free(m->params);
    free(m->grads);
    free(m->acts.base);
    free(m->grad_acts.base);
    free(m);
}

const dfn_model_config *dfn_model_get_config(const dfn_model *m) { return &m->cfg; }
size_t dfn_model_num_params(const dfn_model *m) { return m->tab.total; }
float *dfn_model_params(dfn_model *m) { return m->params; }
float *dfn_model_grads(dfn_model *m) { return m->grads; }
void dfn_model_zero_grad(dfn_model *m) { memset(m->grads, 0, m->tab.total * sizeof(float)); }
int dfn_model_num_tensors(const dfn_model *m) { return m->tab.count; }

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

static void take_all(dfn_model *m, int B) {
    m->acts.used = 0;
    m->grad_acts.used = 0;
    if (m->cfg.kind == DFN_MODEL_UNET) dfn_unet_take(m, B);
    else dfn_mlp_take(m, B);
}

/* Sizes the activation arenas for batch B (a counting pass, then one
 * allocation each) and hands out the buffers. */
static void prepare(dfn_model *m, int B) {
    if (B > m->capacity) {
        free(m->acts.base);
        free(m->grad_acts.base);
        m->acts = (dfn_arena){0};
        m->grad_acts = (dfn_arena){0};
        take_all(m, B);
        m->acts.cap = m->acts.used;
        m->grad_acts.cap = m->grad_acts.used;
        m->acts.base = dfn_calloc(m->acts.cap, sizeof(float));
        m->grad_acts.base = dfn_calloc(m->grad_acts.cap, sizeof(float));
        m->capacity = B;
    }
    take_all(m, B);
}

void dfn_model_forward(dfn_model *m, float *out, const float *x, const float *t, const int *y,
                       int batch, int mode, dfn_rng *rng) {
    DFN_ASSERT(m && out && x && t && batch > 0);
    DFN_ASSERT(mode == DFN_EVAL || mode == DFN_TRAIN || mode == DFN_EVAL_GRAD);
    DFN_ASSERT(mode != DFN_TRAIN || m->cfg.dropout == 0.0f || rng);
    int training = mode == DFN_TRAIN; /* dropout */
    prepare(m, batch);
    if (m->cfg.kind == DFN_MODEL_UNET) dfn_unet_forward(m, out, x, t, y, batch, training, rng);
    else dfn_mlp_forward(m, out, x, t, y, batch, training, rng);
    m->last_batch = mode == DFN_EVAL ? 0 : batch;
}

void dfn_model_backward(dfn_model *m, const float *dout, float *dx) {
    DFN_ASSERT(m && dout);
    DFN_ASSERT(m->last_batch > 0 && "dfn_model_backward needs a DFN_TRAIN or DFN_EVAL_GRAD forward first");
    if (m->cfg.kind == DFN_MODEL_UNET) dfn_unet_backward(m, dout, dx);
    else dfn_mlp_backward(m, dout, dx);
}

double dfn_model_flops_per_sample(const dfn_model *m) {
    return 2.0 * (m->cfg.kind == DFN_MODEL_UNET ? dfn_unet_macs(m) : dfn_mlp_macs(m));
}

/* config.c - model configs: the kinds' names, defaults, presets, validation
 * and per-sample shapes (JSON is in config_json.c). */
#include <string.h>

#include "models/model.h"

static const char *const kind_names[] = {"unet", "mlp", "classifier", "autoencoder"};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == DFN_MODEL_KIND_COUNT,
               "kind_names must name every dfn_model_kind");

const char *dfn_model_kind_name(dfn_model_kind kind) {
    return dfn_name_of(kind_names, DFN_MODEL_KIND_COUNT, (int)kind);
}

int dfn_model_kind_from_name(const char *name) {
    return dfn_name_lookup("model kind", name, kind_names, DFN_MODEL_KIND_COUNT, NULL);
}

void dfn_model_config_init(dfn_model_config *cfg, dfn_model_kind kind) {
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    cfg->num_classes = kind == DFN_MODEL_CLASSIFIER ? 10 : 0;
    cfg->dropout = kind == DFN_MODEL_UNET ? 0.1f : 0.0f;
    /* U-Net: the reference fmnist-small */
    dfn_unet_config *u = &cfg->unet;
    u->in_channels = 1;
    u->resolution = 28;
    u->channels = 64;
    u->n_levels = 3;
    u->ch_mult[0] = 1;
    u->ch_mult[1] = 2;
    u->ch_mult[2] = 2;
    u->num_res_blocks = 2;
    u->n_attn = 1;
    u->attn_resolutions[0] = 7;
    u->heads = 1;
    u->groups = 32;
    u->norm_eps = 1e-6f;
    /* MLP */
    cfg->mlp.dim = 2;
    cfg->mlp.width = 128;
    cfg->mlp.depth = 3;
    /* classifier: a small CNN for 28x28 gray images */
    dfn_classifier_config *k = &cfg->classifier;
    k->in_channels = 1;
    k->height = 28;
    k->width = 28;
    k->channels = 32;
    k->groups = 8;
    k->feature_dim = 128;
    /* autoencoder: f = 4 on 28x28 gray images, 4x7x7 latents */
    dfn_autoencoder_config *a = &cfg->autoencoder;
    a->in_channels = 1;
    a->resolution = 28;
    a->channels = 32;
    a->n_levels = 3;
    a->ch_mult[0] = 1;
    a->ch_mult[1] = 2;
    a->ch_mult[2] = 2;
    a->num_res_blocks = 1;
    a->latent_channels = 4;
    a->groups = 8;
    a->norm_eps = 1e-6f;
}

typedef struct {
    const char *name, *help;
    void (*set)(dfn_model_config *);
} preset;

static void set_fmnist_small(dfn_model_config *c) { dfn_model_config_init(c, DFN_MODEL_UNET); }
static void set_fmnist_tiny(dfn_model_config *c) {
    dfn_model_config_init(c, DFN_MODEL_UNET);
    c->unet.channels = 32;
    c->unet.num_res_blocks = 1;
    c->unet.n_attn = 0;
}
/* The recipe study's winner (docs/recipes.md): fmnist-tiny with 8 groups of 4
 * channels in its GroupNorms. */
static void set_fmnist_fast(dfn_model_config *c) {
    set_fmnist_tiny(c);
    c->unet.groups = 8;
}
/* The DDPM CIFAR-10 U-Net's shape (Ho et al. 2020: ch_mult 1,2,2,2, 2 blocks,
 * attention at 16x16, dropout 0.1) at half its width, on 64x64 RGB: the
 * benchmark's large model (bench/run.sh). */
static void set_rgb64(dfn_model_config *c) {
    dfn_model_config_init(c, DFN_MODEL_UNET);
    c->unet.in_channels = 3;
    c->unet.resolution = 64;
    c->unet.channels = 64;
    c->unet.n_levels = 4;
    c->unet.ch_mult[0] = 1;
    c->unet.ch_mult[1] = c->unet.ch_mult[2] = c->unet.ch_mult[3] = 2;
    c->unet.num_res_blocks = 2;
    c->unet.n_attn = 1;
    c->unet.attn_resolutions[0] = 16;
}
static void set_mlp_2d(dfn_model_config *c) { dfn_model_config_init(c, DFN_MODEL_MLP); }
static void set_mlp_curves(dfn_model_config *c) {
    dfn_model_config_init(c, DFN_MODEL_MLP);
    c->mlp.dim = 50;
    c->mlp.width = 256;
    c->mlp.depth = 4;
}
static void set_fmnist_classifier(dfn_model_config *c) {
    dfn_model_config_init(c, DFN_MODEL_CLASSIFIER);
}

static void set_fmnist_ae(dfn_model_config *c) { dfn_model_config_init(c, DFN_MODEL_AUTOENCODER); }
/* A U-Net for fmnist-ae's 4x7x7 latents: one level (7 does not halve), wider. */
static void set_latent_f4(dfn_model_config *c) {
    dfn_model_config_init(c, DFN_MODEL_UNET);
    c->unet.in_channels = 4;
    c->unet.resolution = 7;
    c->unet.channels = 96;
    c->unet.n_levels = 1;
    c->unet.ch_mult[0] = 1;
    c->unet.num_res_blocks = 2;
    c->unet.n_attn = 1;
    c->unet.attn_resolutions[0] = 7;
}

static const preset presets[] = {
    {"fmnist-fast", "fmnist-tiny with 8 GroupNorm groups: the best FID per CPU-minute (docs/recipes.md); train's default for images", set_fmnist_fast},
    {"fmnist-tiny", "U-Net 1x28x28, ch 32, mult 1,2,2, 1 block/level, attention in the middle (1.06M params)", set_fmnist_tiny},
    {"fmnist-small", "U-Net 1x28x28, ch 64, mult 1,2,2, 2 blocks/level, attention at 7x7 (6.47M params)", set_fmnist_small},
    {"rgb64", "U-Net 3x64x64 shaped as DDPM's CIFAR-10 model at half width: ch 64, mult 1,2,2,2, 2 blocks/level, attention at 16x16 (8.95M params)", set_rgb64},
    {"mlp-2d", "MLP for 2-D points, width 128, depth 3", set_mlp_2d},
    {"mlp-curves", "MLP for 50-dim curves, width 256, depth 4", set_mlp_curves},
    {"fmnist-classifier", "classifier 1x28x28 -> 10 classes, ch 32, 128 features (FID/KID)", set_fmnist_classifier},
    {"fmnist-ae", "KL autoencoder 1x28x28 -> 4x7x7 latents (f 4), ch 32, mult 1,2,2", set_fmnist_ae},
    {"latent-f4", "U-Net for 4x7x7 latents (train --autoencoder), ch 96, 1 level, 2 blocks, attention at 7", set_latent_f4},
};
#define N_PRESETS ((int)(sizeof presets / sizeof presets[0]))

int dfn_model_num_presets(void) { return N_PRESETS; }
const char *dfn_model_preset_name(int i) { return i >= 0 && i < N_PRESETS ? presets[i].name : NULL; }
const char *dfn_model_preset_help(int i) { return i >= 0 && i < N_PRESETS ? presets[i].help : NULL; }

dfn_status dfn_model_config_preset(dfn_model_config *cfg, const char *name) {
    const char *names[N_PRESETS];
    for (int i = 0; i < N_PRESETS; i++) names[i] = presets[i].name;
    int i = dfn_name_lookup("model preset", name, names, N_PRESETS, NULL);
    if (i < 0) return DFN_ERR_ARG;
    presets[i].set(cfg);
    return DFN_OK;
}

static dfn_status check_groups(const dfn_unet_config *c, int channels, const char *where) {
    if (channels % c->groups)
        return dfn_set_error(DFN_ERR_CONFIG,
                             "model config: %d channels at %s are not divisible by groups = %d",
                             channels, where, c->groups);
    return DFN_OK;
}

static dfn_status validate_unet(const dfn_unet_config *c) {
    if (c->in_channels < 1 || c->in_channels > 64)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: in_channels = %d (must be 1..64)", c->in_channels);
    if (c->resolution < 1 || c->resolution > 4096)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: resolution = %d (must be 1..4096)", c->resolution);
    if (c->channels < 4 || c->channels > 4096)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: channels = %d (must be 4..4096; at least 4 for the time embedding)", c->channels);
    if (c->n_levels < 1 || c->n_levels > DFN_MAX_LEVELS)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: %d channel multipliers (must be 1..%d)", c->n_levels, DFN_MAX_LEVELS);
    if (c->num_res_blocks < 1 || c->num_res_blocks > 16)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: num_res_blocks = %d (must be 1..16)", c->num_res_blocks);
    if (c->n_attn < 0 || c->n_attn > DFN_MAX_LEVELS)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: %d attention resolutions (at most %d)", c->n_attn, DFN_MAX_LEVELS);
    if (c->groups < 1)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: groups = %d (must be >= 1)", c->groups);
    if (c->heads < 1 || c->heads > 1024)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: heads = %d (must be 1..1024)", c->heads);
    if (!(c->norm_eps > 0.0f))
        return dfn_set_error(DFN_ERR_CONFIG, "model config: norm_eps = %g (must be > 0)", c->norm_eps);
    int res[DFN_MAX_LEVELS];
    res[0] = c->resolution;
    for (int l = 0; l < c->n_levels; l++) {
        if (c->ch_mult[l] < 1 || c->ch_mult[l] > 64 || c->channels * c->ch_mult[l] > 16384)
            return dfn_set_error(DFN_ERR_CONFIG, "model config: ch_mult[%d] = %d (must be 1..64, and "
                                 "channels x ch_mult at most 16384)", l, c->ch_mult[l]);
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

/* The MLP is meant for vectors such as points and curves; its input and output
 * layers grow as dim x width, so a dimension of hundreds of thousands (an image
 * flattened, a wide CSV) builds gigabytes before training starts. */
#define MLP_MAX_DIM 16384

static dfn_status validate_mlp(const dfn_mlp_config *c) {
    if (c->dim < 1)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: dim = %d (must be >= 1)", c->dim);
    if (c->dim > MLP_MAX_DIM)
        return dfn_set_error(DFN_ERR_CONFIG,
                             "model config: vectors of %d values are beyond what the MLP is meant "
                             "for (at most %d; images belong to a U-Net)",
                             c->dim, MLP_MAX_DIM);
    if (c->width < 4 || c->width > 65536)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: width = %d (must be 4..65536; at least 4 for the time embedding)", c->width);
    if (c->depth < 1 || c->depth > 1000)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: depth = %d (must be 1..1000)", c->depth);
    return DFN_OK;
}

static dfn_status validate_classifier(const dfn_classifier_config *c) {
    const char *what = NULL;
    int value = 0;
    if (c->in_channels < 1 || c->in_channels > 64) what = "in_channels", value = c->in_channels;
    else if (c->height < 1 || c->height > 4096) what = "height", value = c->height;
    else if (c->width < 1 || c->width > 4096) what = "width", value = c->width;
    else if (c->channels < 1 || c->channels > 1024) what = "channels", value = c->channels;
    else if (c->feature_dim < 1 || c->feature_dim > 65536) what = "feature_dim", value = c->feature_dim;
    else if (c->time_embed != 0 && c->time_embed != 1) what = "time_embed", value = c->time_embed;
    else if (c->extra_convs < 0 || c->extra_convs > 3) what = "extra_convs", value = c->extra_convs;
    else if (c->flatten != 0 && c->flatten != 1) what = "flatten", value = c->flatten;
    if (what)
        return dfn_set_error(DFN_ERR_CONFIG, "classifier config: %s = %d is out of range",
                             what, value);
    if (c->groups < 1 || c->channels % c->groups != 0)
        return dfn_set_error(DFN_ERR_CONFIG,
                             "classifier config: groups = %d must divide channels = %d",
                             c->groups, c->channels);
    return DFN_OK;
}

static dfn_status validate_autoencoder(const dfn_autoencoder_config *c, float dropout) {
    const char *what = NULL;
    int value = 0;
    if (c->in_channels < 1 || c->in_channels > 64) what = "in_channels", value = c->in_channels;
    else if (c->resolution < 1 || c->resolution > 4096) what = "resolution", value = c->resolution;
    else if (c->channels < 1 || c->channels > 4096) what = "channels", value = c->channels;
    else if (c->n_levels < 1 || c->n_levels > DFN_MAX_LEVELS) what = "the number of ch_mult entries", value = c->n_levels;
    else if (c->num_res_blocks < 1 || c->num_res_blocks > 16) what = "num_res_blocks", value = c->num_res_blocks;
    else if (c->latent_channels < 1 || c->latent_channels > 1024) what = "latent_channels", value = c->latent_channels;
    else if (c->groups < 1) what = "groups", value = c->groups;
    if (what)
        return dfn_set_error(DFN_ERR_CONFIG, "autoencoder config: %s = %d is out of range", what,
                             value);
    if (!(c->norm_eps > 0.0f))
        return dfn_set_error(DFN_ERR_CONFIG, "autoencoder config: norm_eps = %g (must be > 0)",
                             c->norm_eps);
    if (!(dropout >= 0.0f && dropout < 1.0f))
        return dfn_set_error(DFN_ERR_CONFIG, "autoencoder config: dropout = %g (must be in [0, 1))",
                             dropout);
    if (c->channels % c->groups)
        return dfn_set_error(DFN_ERR_CONFIG,
                             "autoencoder config: channels = %d are not divisible by groups = %d",
                             c->channels, c->groups);
    const int f = 1 << (c->n_levels - 1);
    if (c->resolution % f)
        return dfn_set_error(DFN_ERR_CONFIG,
                             "autoencoder config: the downsampling factor f = %d (%d levels) does "
                             "not divide the resolution %d",
                             f, c->n_levels, c->resolution);
    for (int l = 0; l < c->n_levels; l++) {
        if (c->ch_mult[l] < 1 || c->ch_mult[l] > 64 || c->channels * c->ch_mult[l] > 16384)
            return dfn_set_error(DFN_ERR_CONFIG, "autoencoder config: ch_mult[%d] = %d (must be "
                                 "1..64, and channels x ch_mult at most 16384)", l, c->ch_mult[l]);
        if ((c->channels * c->ch_mult[l]) % c->groups)
            return dfn_set_error(DFN_ERR_CONFIG,
                                 "autoencoder config: %d channels at level %d are not divisible by "
                                 "groups = %d",
                                 c->channels * c->ch_mult[l], l, c->groups);
    }
    return DFN_OK;
}

dfn_status dfn_model_config_validate(const dfn_model_config *c) {
    if ((int)c->kind < 0 || c->kind >= DFN_MODEL_KIND_COUNT)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: unknown model kind %d", (int)c->kind);
    if (c->kind == DFN_MODEL_CLASSIFIER) {
        if (c->num_classes < 2 || c->num_classes > 100000)
            return dfn_set_error(DFN_ERR_CONFIG,
                                 "classifier config: num_classes = %d (must be 2..100000)",
                                 c->num_classes);
        if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
            return dfn_set_error(DFN_ERR_CONFIG,
                                 "classifier config: dropout = %g (must be in [0, 1))", c->dropout);
        return validate_classifier(&c->classifier);
    }
    if (c->kind == DFN_MODEL_AUTOENCODER) {
        if (c->num_classes != 0)
            return dfn_set_error(DFN_ERR_CONFIG,
                                 "autoencoder config: num_classes = %d (an autoencoder has no classes)",
                                 c->num_classes);
        return validate_autoencoder(&c->autoencoder, c->dropout);
    }
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return dfn_set_error(DFN_ERR_CONFIG, "model config: dropout = %g (must be in [0, 1))", c->dropout);
    if (c->num_classes < 0 || c->num_classes > 100000)
        return dfn_set_error(DFN_ERR_CONFIG, "model config: num_classes = %d (must be 0..100000)", c->num_classes);
    return c->kind == DFN_MODEL_UNET ? validate_unet(&c->unet) : validate_mlp(&c->mlp);
}

int dfn_config_input_shape(const dfn_model_config *c, int dims[3]) {
    switch (c->kind) {
    case DFN_MODEL_UNET:
        dims[0] = c->unet.in_channels;
        dims[1] = dims[2] = c->unet.resolution;
        return 3;
    case DFN_MODEL_AUTOENCODER:
        dims[0] = c->autoencoder.in_channels;
        dims[1] = dims[2] = c->autoencoder.resolution;
        return 3;
    case DFN_MODEL_CLASSIFIER:
        dims[0] = c->classifier.in_channels;
        dims[1] = c->classifier.height;
        dims[2] = c->classifier.width;
        return 3;
    default:
        dims[0] = c->mlp.dim;
        dims[1] = dims[2] = 1;
        return 1;
    }
}

int dfn_config_output_shape(const dfn_model_config *c, int dims[3]) {
    if (c->kind != DFN_MODEL_CLASSIFIER) return dfn_config_input_shape(c, dims);
    dims[0] = c->num_classes;
    dims[1] = dims[2] = 1;
    return 1;
}

/* config_json.c - dfn_model_config <-> JSON text.
 *
 * The JSON is the contract with the PyTorch twin and with every checkpoint's
 * metadata, so its keys are fixed and checked exactly:
 *
 *   U-Net: {"kind":"unet","in_channels":1,"resolution":28,"channels":64,
 *           "ch_mult":[1,2,2],"num_res_blocks":2,"attn_resolutions":[7],
 *           "heads":1,"groups":32,"norm_eps":1e-06,"dropout":0.1,"num_classes":0}
 *   MLP:   {"kind":"mlp","dim":2,"width":128,"depth":3,"dropout":0.1,"num_classes":0}
 *   classifier: {"kind":"classifier","in_channels":1,"height":28,"width":28,
 *           "channels":32,"groups":8,"feature_dim":128,"num_classes":10}
 *           and "time_embed":1 for a time-conditioned one (absent: 0)
 *   autoencoder: {"kind":"autoencoder","in_channels":1,"resolution":28,"channels":32,
 *           "ch_mult":[1,2,2],"num_res_blocks":1,"latent_channels":4,"groups":8,
 *           "norm_eps":1e-06,"dropout":0}
 *
 * One key table per kind drives both directions, so what is written is
 * exactly what is read.
 * Parsing rejects an unknown kind, a missing, repeated or unknown key, a value
 * of the wrong type and arrays longer than DFN_MAX_LEVELS (DFN_ERR_CONFIG, the
 * message names the key), then runs dfn_model_config_validate, so a config
 * that parses is one that can be built.
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "core/json_fields.h"
#include "models/model.h"

/* ================================================================ keys */

#define KEY(name, type, field) DFN_JSON_FIELD(name, type, dfn_model_config, field)
#define ARRAY_KEY(name, field, count) \
    DFN_JSON_INT_ARRAY_FIELD(name, dfn_model_config, field, count, DFN_MAX_LEVELS)

/* Each kind's keys, in the order they are written. */
static const dfn_json_field unet_keys[] = {
    KEY("in_channels", DFN_JSON_INT, unet.in_channels),
    KEY("resolution", DFN_JSON_INT, unet.resolution),
    KEY("channels", DFN_JSON_INT, unet.channels),
    ARRAY_KEY("ch_mult", unet.ch_mult, unet.n_levels),
    KEY("num_res_blocks", DFN_JSON_INT, unet.num_res_blocks),
    ARRAY_KEY("attn_resolutions", unet.attn_resolutions, unet.n_attn),
    KEY("heads", DFN_JSON_INT, unet.heads),
    KEY("groups", DFN_JSON_INT, unet.groups),
    KEY("norm_eps", DFN_JSON_FLOAT, unet.norm_eps),
    KEY("dropout", DFN_JSON_FLOAT, dropout),
    KEY("num_classes", DFN_JSON_INT, num_classes),
};
static const dfn_json_field mlp_keys[] = {
    KEY("dim", DFN_JSON_INT, mlp.dim),
    KEY("width", DFN_JSON_INT, mlp.width),
    KEY("depth", DFN_JSON_INT, mlp.depth),
    KEY("dropout", DFN_JSON_FLOAT, dropout),
    KEY("num_classes", DFN_JSON_INT, num_classes),
};
static const dfn_json_field classifier_keys[] = {
    KEY("in_channels", DFN_JSON_INT, classifier.in_channels),
    KEY("height", DFN_JSON_INT, classifier.height),
    KEY("width", DFN_JSON_INT, classifier.width),
    KEY("channels", DFN_JSON_INT, classifier.channels),
    KEY("groups", DFN_JSON_INT, classifier.groups),
    KEY("feature_dim", DFN_JSON_INT, classifier.feature_dim),
    KEY("num_classes", DFN_JSON_INT, num_classes),
    DFN_JSON_OPTIONAL_INT_FIELD("time_embed", dfn_model_config, classifier.time_embed),
    DFN_JSON_OPTIONAL_INT_FIELD("extra_convs", dfn_model_config, classifier.extra_convs),
    DFN_JSON_OPTIONAL_INT_FIELD("flatten", dfn_model_config, classifier.flatten),
    DFN_JSON_OPTIONAL_FLOAT_FIELD("dropout", dfn_model_config, dropout),
};

static const dfn_json_field autoencoder_keys[] = {
    KEY("in_channels", DFN_JSON_INT, autoencoder.in_channels),
    KEY("resolution", DFN_JSON_INT, autoencoder.resolution),
    KEY("channels", DFN_JSON_INT, autoencoder.channels),
    ARRAY_KEY("ch_mult", autoencoder.ch_mult, autoencoder.n_levels),
    KEY("num_res_blocks", DFN_JSON_INT, autoencoder.num_res_blocks),
    KEY("latent_channels", DFN_JSON_INT, autoencoder.latent_channels),
    KEY("groups", DFN_JSON_INT, autoencoder.groups),
    KEY("norm_eps", DFN_JSON_FLOAT, autoencoder.norm_eps),
    KEY("dropout", DFN_JSON_FLOAT, dropout),
};

static const struct {
    const dfn_json_field *keys;
    int count;
} kind_keys[DFN_MODEL_KIND_COUNT] = {
    [DFN_MODEL_UNET] = {unet_keys, (int)(sizeof unet_keys / sizeof unet_keys[0])},
    [DFN_MODEL_MLP] = {mlp_keys, (int)(sizeof mlp_keys / sizeof mlp_keys[0])},
    [DFN_MODEL_CLASSIFIER] = {classifier_keys, (int)(sizeof classifier_keys / sizeof classifier_keys[0])},
    [DFN_MODEL_AUTOENCODER] = {autoencoder_keys, (int)(sizeof autoencoder_keys / sizeof autoencoder_keys[0])},
};
#define MAX_KEYS 16 /* at least the longest table above */

/* ================================================================ to JSON */

char *dfn_model_config_to_json(const dfn_model_config *cfg) {
    DFN_ASSERT(cfg && (int)cfg->kind >= 0 && cfg->kind < DFN_MODEL_KIND_COUNT);
    cJSON *o = cJSON_CreateObject();
    DFN_ASSERT(o);
    cJSON_AddStringToObject(o, "kind", dfn_model_kind_name(cfg->kind));
    /* in table order: equal configs, equal text */
    dfn_json_fields_write(o, cfg, kind_keys[cfg->kind].keys, kind_keys[cfg->kind].count);
    char *text = cJSON_PrintUnformatted(o);
    DFN_ASSERT(text);
    /* Hand back memory from malloc, as the header promises, whatever allocator
     * cJSON was configured with. */
    char *out = dfn_strdup(text);
    cJSON_free(text);
    cJSON_Delete(o);
    return out;
}

/* ================================================================ from JSON */

dfn_status dfn_model_config_from_json(dfn_model_config *cfg, const char *json) {
    DFN_ASSERT(cfg && json);
    dfn_status st = DFN_OK;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) {
        st = dfn_set_error(DFN_ERR_CONFIG, "config JSON: not valid JSON (error near byte %zu)",
                           end && end >= json ? (size_t)(end - json) : (size_t)0);
        goto fail;
    }
    if (!cJSON_IsObject(root)) {
        st = dfn_set_error(DFN_ERR_CONFIG, "config JSON: not a JSON object");
        goto fail;
    }

    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(root, "kind");
    if (!kind) {
        st = dfn_set_error(DFN_ERR_CONFIG,
                           "config JSON: missing key 'kind' (\"unet\", \"mlp\", \"classifier\" or \"autoencoder\")");
        goto fail;
    }
    int k = -1;
    for (int i = 0; cJSON_IsString(kind) && i < DFN_MODEL_KIND_COUNT; i++)
        if (!strcmp(kind->valuestring, dfn_model_kind_name((dfn_model_kind)i))) k = i;
    if (k < 0) {
        st = dfn_set_error(DFN_ERR_CONFIG,
                           "config JSON: key 'kind' must be \"unet\", \"mlp\", \"classifier\" or \"autoencoder\", got %s%s%s",
                           cJSON_IsString(kind) ? "\"" : "",
                           cJSON_IsString(kind) ? kind->valuestring : "a non-string",
                           cJSON_IsString(kind) ? "\"" : "");
        goto fail;
    }
    const dfn_json_field *keys = kind_keys[k].keys;
    const int n_keys = kind_keys[k].count;
    DFN_ASSERT(n_keys <= MAX_KEYS);

    /* Start from the kind's defaults so the fields of the other kinds are sane,
     * then require and read every key of this kind. */
    dfn_model_config c;
    dfn_model_config_init(&c, (dfn_model_kind)k);
    for (int i = 0; i < n_keys; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, keys[i].key);
        if (!item && !keys[i].optional) {
            st = dfn_set_error(DFN_ERR_CONFIG, "config JSON: missing key '%s' (kind \"%s\")",
                               keys[i].key, kind->valuestring);
            goto fail;
        }
        const char *want = dfn_json_field_read(&c, &keys[i], item);
        if (want) {
            st = dfn_set_error(DFN_ERR_CONFIG, "config JSON: key '%s' must be %s", keys[i].key, want);
            goto fail;
        }
    }

    /* Every key present must be known and appear once: a typo ("chanels") or
     * a key of the other kind should not be silently ignored. Counting per
     * known key keeps this linear however many keys a hostile file holds. */
    int seen[MAX_KEYS + 1] = {0};
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        int j = strcmp(item->string, "kind") == 0 ? n_keys : -1;
        for (int i = 0; j < 0 && i < n_keys; i++)
            if (strcmp(item->string, keys[i].key) == 0) j = i;
        if (j < 0) {
            st = dfn_set_error(DFN_ERR_CONFIG, "config JSON: unknown key '%s' for kind \"%s\"",
                               item->string, kind->valuestring);
            goto fail;
        }
        if (seen[j]++) {
            st = dfn_set_error(DFN_ERR_CONFIG, "config JSON: key '%s' appears twice",
                               item->string);
            goto fail;
        }
    }

    if ((st = dfn_model_config_validate(&c)) != DFN_OK) goto fail;
    *cfg = c;
fail:
    cJSON_Delete(root);
    return st;
}

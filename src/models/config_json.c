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
 *
 * One key table per kind drives both directions, so what is written is
 * exactly what is read.
 * Parsing rejects an unknown kind, a missing, repeated or unknown key, a value
 * of the wrong type and arrays longer than DFN_MAX_LEVELS (DFN_ERR_CONFIG, the
 * message names the key), then runs dfn_model_config_validate, so a config
 * that parses is one that can be built.
 */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "models/model.h"

/* ================================================================ keys */

typedef enum { K_INT, K_FLOAT, K_INT_ARRAY } key_type;

typedef struct {
    const char *name;
    key_type type;
    size_t offset;       /* of the int/float/array in dfn_model_config */
    size_t count_offset; /* K_INT_ARRAY: of the int that counts the entries */
} key_spec;

#define KEY(name, type, field) {name, type, offsetof(dfn_model_config, field), 0}
#define ARRAY_KEY(name, field, count) \
    {name, K_INT_ARRAY, offsetof(dfn_model_config, field), offsetof(dfn_model_config, count)}

/* Each kind's keys, in the order they are written. */
static const key_spec unet_keys[] = {
    KEY("in_channels", K_INT, unet.in_channels),
    KEY("resolution", K_INT, unet.resolution),
    KEY("channels", K_INT, unet.channels),
    ARRAY_KEY("ch_mult", unet.ch_mult, unet.n_levels),
    KEY("num_res_blocks", K_INT, unet.num_res_blocks),
    ARRAY_KEY("attn_resolutions", unet.attn_resolutions, unet.n_attn),
    KEY("heads", K_INT, unet.heads),
    KEY("groups", K_INT, unet.groups),
    KEY("norm_eps", K_FLOAT, unet.norm_eps),
    KEY("dropout", K_FLOAT, dropout),
    KEY("num_classes", K_INT, num_classes),
};
static const key_spec mlp_keys[] = {
    KEY("dim", K_INT, mlp.dim),
    KEY("width", K_INT, mlp.width),
    KEY("depth", K_INT, mlp.depth),
    KEY("dropout", K_FLOAT, dropout),
    KEY("num_classes", K_INT, num_classes),
};
static const key_spec classifier_keys[] = {
    KEY("in_channels", K_INT, classifier.in_channels),
    KEY("height", K_INT, classifier.height),
    KEY("width", K_INT, classifier.width),
    KEY("channels", K_INT, classifier.channels),
    KEY("groups", K_INT, classifier.groups),
    KEY("feature_dim", K_INT, classifier.feature_dim),
    KEY("num_classes", K_INT, num_classes),
};

static const struct {
    const key_spec *keys;
    int count;
} kind_keys[DFN_MODEL_KIND_COUNT] = {
    [DFN_MODEL_UNET] = {unet_keys, (int)(sizeof unet_keys / sizeof unet_keys[0])},
    [DFN_MODEL_MLP] = {mlp_keys, (int)(sizeof mlp_keys / sizeof mlp_keys[0])},
    [DFN_MODEL_CLASSIFIER] = {classifier_keys, (int)(sizeof classifier_keys / sizeof classifier_keys[0])},
};
#define MAX_KEYS ((int)(sizeof unet_keys / sizeof unet_keys[0]))

/* ================================================================ to JSON */

/* The shortest decimal that reads back as the same float: 1e-06, not
 * 9.9999999747524271e-07 (what the float's exact double value would print as).
 * cJSON then prints that double with 15 digits, which reproduces the decimal. */
static double short_decimal(float v) {
    char buf[32];
    if (!isfinite(v)) return (double)v;
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return strtod(buf, NULL);
}

static void add_int_array(cJSON *obj, const char *key, const int *v, int n) {
    cJSON *arr = cJSON_AddArrayToObject(obj, key);
    DFN_ASSERT(arr);
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(v[i]));
}

char *dfn_model_config_to_json(const dfn_model_config *cfg) {
    DFN_ASSERT(cfg && (int)cfg->kind >= 0 && cfg->kind < DFN_MODEL_KIND_COUNT);
    cJSON *o = cJSON_CreateObject();
    DFN_ASSERT(o);
    const char *base = (const char *)cfg;
    cJSON_AddStringToObject(o, "kind", dfn_model_kind_name(cfg->kind));
    for (int i = 0; i < kind_keys[cfg->kind].count; i++) { /* in table order: equal configs, equal text */
        const key_spec *k = &kind_keys[cfg->kind].keys[i];
        switch (k->type) {
        case K_INT: cJSON_AddNumberToObject(o, k->name, *(const int *)(base + k->offset)); break;
        case K_FLOAT:
            cJSON_AddNumberToObject(o, k->name, short_decimal(*(const float *)(base + k->offset)));
            break;
        case K_INT_ARRAY: {
            int n = *(const int *)(base + k->count_offset);
            DFN_ASSERT(n >= 0 && n <= DFN_MAX_LEVELS);
            add_int_array(o, k->name, (const int *)(base + k->offset), n);
            break;
        }
        }
    }
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



/* A JSON number that is a whole number within int range. */
static int json_int(const cJSON *item, int *out) {
    if (!cJSON_IsNumber(item)) return -1;
    double d = item->valuedouble;
    if (!(d >= INT_MIN && d <= INT_MAX) || d != floor(d)) return -1;
    *out = (int)d;
    return 0;
}

static dfn_status read_key(dfn_model_config *c, const cJSON *item, const key_spec *k) {
    char *base = (char *)c;
    switch (k->type) {
    case K_INT:
        if (json_int(item, (int *)(base + k->offset)) != 0)
            return dfn_set_error(DFN_ERR_CONFIG, "config JSON: key '%s' must be an integer",
                                 k->name);
        return DFN_OK;
    case K_FLOAT: {
        if (!cJSON_IsNumber(item))
            return dfn_set_error(DFN_ERR_CONFIG, "config JSON: key '%s' must be a number",
                                 k->name);
        *(float *)(base + k->offset) = (float)item->valuedouble;
        return DFN_OK;
    }
    case K_INT_ARRAY: {
        if (!cJSON_IsArray(item))
            return dfn_set_error(DFN_ERR_CONFIG,
                                 "config JSON: key '%s' must be an array of integers", k->name);
        int n = cJSON_GetArraySize(item);
        if (n > DFN_MAX_LEVELS)
            return dfn_set_error(DFN_ERR_CONFIG,
                                 "config JSON: key '%s' has %d entries, at most %d are allowed",
                                 k->name, n, DFN_MAX_LEVELS);
        int *values = (int *)(base + k->offset), i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, item) {
            if (json_int(e, &values[i++]) != 0)
                return dfn_set_error(DFN_ERR_CONFIG,
                                     "config JSON: key '%s' must be an array of integers",
                                     k->name);
        }
        *(int *)(base + k->count_offset) = n;
        return DFN_OK;
    }
    }
    DFN_ASSERT(0);
    return DFN_ERR_CONFIG;
}

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
                           "config JSON: missing key 'kind' (\"unet\", \"mlp\" or \"classifier\")");
        goto fail;
    }
    int k = -1;
    for (int i = 0; cJSON_IsString(kind) && i < DFN_MODEL_KIND_COUNT; i++)
        if (!strcmp(kind->valuestring, dfn_model_kind_name((dfn_model_kind)i))) k = i;
    if (k < 0) {
        st = dfn_set_error(DFN_ERR_CONFIG,
                           "config JSON: key 'kind' must be \"unet\", \"mlp\" or \"classifier\", got %s%s%s",
                           cJSON_IsString(kind) ? "\"" : "",
                           cJSON_IsString(kind) ? kind->valuestring : "a non-string",
                           cJSON_IsString(kind) ? "\"" : "");
        goto fail;
    }
    const key_spec *keys = kind_keys[k].keys;
    const int n_keys = kind_keys[k].count;

    /* Start from the kind's defaults so the fields of the other kinds are sane,
     * then require and read every key of this kind. */
    dfn_model_config c;
    dfn_model_config_init(&c, (dfn_model_kind)k);
    for (int i = 0; i < n_keys; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, keys[i].name);
        if (!item) {
            st = dfn_set_error(DFN_ERR_CONFIG, "config JSON: missing key '%s' (kind \"%s\")",
                               keys[i].name, kind->valuestring);
            goto fail;
        }
        if ((st = read_key(&c, item, &keys[i])) != DFN_OK) goto fail;
    }

    /* Every key present must be known and appear once: a typo ("chanels") or
     * a key of the other kind should not be silently ignored. Counting per
     * known key keeps this linear however many keys a hostile file holds. */
    int seen[MAX_KEYS + 1] = {0};
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        int j = strcmp(item->string, "kind") == 0 ? n_keys : -1;
        for (int i = 0; j < 0 && i < n_keys; i++)
            if (strcmp(item->string, keys[i].name) == 0) j = i;
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

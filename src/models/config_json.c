/* config_json.c - dfn_model_config <-> JSON text.
 *
 * The JSON is the contract with the PyTorch twin and with every checkpoint's
 * metadata, so its keys are fixed and checked exactly:
 *
 *   U-Net: {"kind":"unet","in_channels":1,"resolution":28,"channels":64,
 *           "ch_mult":[1,2,2],"num_res_blocks":2,"attn_resolutions":[7],
 *           "heads":1,"groups":32,"norm_eps":1e-06,"dropout":0.1,"num_classes":0}
 *   MLP:   {"kind":"mlp","dim":2,"width":128,"depth":3,"dropout":0.1,"num_classes":0}
 *
 * Parsing rejects an unknown kind, a missing, repeated or unknown key, a value
 * of the wrong type and arrays longer than DFN_MAX_LEVELS (DFN_ERR_CONFIG, the
 * message names the key), then runs dfn_model_config_validate, so a config
 * that parses is one that can be built.
 */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "core.h"

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
    DFN_ASSERT(cfg);
    DFN_ASSERT(cfg->kind == DFN_MODEL_UNET || cfg->kind == DFN_MODEL_MLP);
    DFN_ASSERT(cfg->n_levels >= 0 && cfg->n_levels <= DFN_MAX_LEVELS);
    DFN_ASSERT(cfg->n_attn >= 0 && cfg->n_attn <= DFN_MAX_LEVELS);
    cJSON *o = cJSON_CreateObject();
    DFN_ASSERT(o);
    /* Keys in a fixed order, so equal configs give equal text. */
    if (cfg->kind == DFN_MODEL_UNET) {
        cJSON_AddStringToObject(o, "kind", "unet");
        cJSON_AddNumberToObject(o, "in_channels", cfg->in_channels);
        cJSON_AddNumberToObject(o, "resolution", cfg->resolution);
        cJSON_AddNumberToObject(o, "channels", cfg->channels);
        add_int_array(o, "ch_mult", cfg->ch_mult, cfg->n_levels);
        cJSON_AddNumberToObject(o, "num_res_blocks", cfg->num_res_blocks);
        add_int_array(o, "attn_resolutions", cfg->attn_resolutions, cfg->n_attn);
        cJSON_AddNumberToObject(o, "heads", cfg->heads);
        cJSON_AddNumberToObject(o, "groups", cfg->groups);
        cJSON_AddNumberToObject(o, "norm_eps", short_decimal(cfg->norm_eps));
    } else {
        cJSON_AddStringToObject(o, "kind", "mlp");
        cJSON_AddNumberToObject(o, "dim", cfg->dim);
        cJSON_AddNumberToObject(o, "width", cfg->width);
        cJSON_AddNumberToObject(o, "depth", cfg->depth);
    }
    cJSON_AddNumberToObject(o, "dropout", short_decimal(cfg->dropout));
    cJSON_AddNumberToObject(o, "num_classes", cfg->num_classes);

    char *text = cJSON_PrintUnformatted(o);
    DFN_ASSERT(text);
    /* Hand back memory from malloc, as the header promises, whatever allocator
     * cJSON was configured with. */
    size_t n = strlen(text) + 1;
    char *out = malloc(n);
    DFN_ASSERT(out);
    memcpy(out, text, n);
    cJSON_free(text);
    cJSON_Delete(o);
    return out;
}

/* ================================================================ from JSON */

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

static const key_spec unet_keys[] = {
    KEY("in_channels", K_INT, in_channels),
    KEY("resolution", K_INT, resolution),
    KEY("channels", K_INT, channels),
    ARRAY_KEY("ch_mult", ch_mult, n_levels),
    KEY("num_res_blocks", K_INT, num_res_blocks),
    ARRAY_KEY("attn_resolutions", attn_resolutions, n_attn),
    KEY("heads", K_INT, heads),
    KEY("groups", K_INT, groups),
    KEY("norm_eps", K_FLOAT, norm_eps),
    KEY("dropout", K_FLOAT, dropout),
    KEY("num_classes", K_INT, num_classes),
};
static const key_spec mlp_keys[] = {
    KEY("dim", K_INT, dim),
    KEY("width", K_INT, width),
    KEY("depth", K_INT, depth),
    KEY("dropout", K_FLOAT, dropout),
    KEY("num_classes", K_INT, num_classes),
};

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
        st = dfn_set_error(DFN_ERR_CONFIG, "config JSON: missing key 'kind' (\"unet\" or \"mlp\")");
        goto fail;
    }
    if (!cJSON_IsString(kind) ||
        (strcmp(kind->valuestring, "unet") != 0 && strcmp(kind->valuestring, "mlp") != 0)) {
        st = dfn_set_error(DFN_ERR_CONFIG,
                           "config JSON: key 'kind' must be \"unet\" or \"mlp\", got %s%s%s",
                           cJSON_IsString(kind) ? "\"" : "",
                           cJSON_IsString(kind) ? kind->valuestring : "a non-string",
                           cJSON_IsString(kind) ? "\"" : "");
        goto fail;
    }
    int is_unet = strcmp(kind->valuestring, "unet") == 0;
    const key_spec *keys = is_unet ? unet_keys : mlp_keys;
    int n_keys = is_unet ? (int)(sizeof unet_keys / sizeof unet_keys[0])
                         : (int)(sizeof mlp_keys / sizeof mlp_keys[0]);

    /* Start from the kind's defaults so the fields of the other kind are sane,
     * then require and read every key of this kind. */
    dfn_model_config c;
    dfn_model_config_init(&c, is_unet ? DFN_MODEL_UNET : DFN_MODEL_MLP);
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
    int seen[1 + sizeof unet_keys / sizeof unet_keys[0]] = {0};
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

/* checkpoint.c - dfn_model_save / dfn_model_load: a model as a safetensors file.
 *
 * A checkpoint is an ordinary safetensors file that PyTorch can read with
 * safetensors.torch.load_file and feed to load_state_dict:
 *
 *   - one F32 tensor per parameter tensor, named exactly as in the PyTorch
 *     twin's state_dict (dfn_model_tensor_name) with its shape;
 *   - metadata "config" (dfn_model_config_to_json), "format" = "diffusion.c
 *     checkpoint", "format_version" = "1", plus the caller's extra pairs.
 *
 * Loading rebuilds the model from the stored config and then insists that the
 * file and the model agree tensor by tensor (presence, dtype, shape) and that
 * the file holds nothing the model lacks: a checkpoint for a different
 * architecture fails with a message naming the first disagreement rather than
 * loading garbage.
 */
#include <string.h>

#include "core.h"
#include "io/safetensors.h"

#define CHECKPOINT_FORMAT "diffusion.c checkpoint"
#define CHECKPOINT_VERSION "1"

/* The tensor table's int shape as the int64 shape the safetensors code uses. */
static int model_shape(const dfn_model *model, int i, int64_t shape[4]) {
    int s[4];
    int ndim = dfn_model_tensor_shape(model, i, s);
    DFN_ASSERT(ndim >= 0 && ndim <= 4);
    for (int d = 0; d < ndim; d++) shape[d] = s[d];
    return ndim;
}

/* prefix + name into a fresh buffer (freed by the caller). */
static char *prefixed(const char *prefix, const char *name) {
    size_t a = prefix ? strlen(prefix) : 0, b = strlen(name);
    char *s = dfn_malloc(a + b + 1);
    if (a) memcpy(s, prefix, a);
    memcpy(s + a, name, b + 1);
    return s;
}

dfn_status dfn_st_writer_add_model_tensors(dfn_st_writer *w, const dfn_model *model,
                                           const char *prefix, const float *base) {
    DFN_ASSERT(w && model && base);
    dfn_status st = DFN_OK;
    for (int i = 0; i < dfn_model_num_tensors(model) && st == DFN_OK; i++) {
        int64_t shape[4];
        int ndim = model_shape(model, i, shape);
        char *name = prefixed(prefix, dfn_model_tensor_name(model, i));
        st = dfn_st_writer_add(w, name, DFN_DTYPE_F32, ndim, shape,
                               base + dfn_model_tensor_offset(model, i));
        free(name);
    }
    return st;
}

dfn_status dfn_st_read_model_tensors(const dfn_st_file *f, const dfn_model *model,
                                     const char *prefix, float *base) {
    DFN_ASSERT(f && model && base);
    dfn_status st = DFN_OK;
    for (int i = 0; i < dfn_model_num_tensors(model) && st == DFN_OK; i++) {
        int64_t shape[4];
        int ndim = model_shape(model, i, shape);
        char *name = prefixed(prefix, dfn_model_tensor_name(model, i));
        st = dfn_st_read_f32(f, name, ndim, shape, base + dfn_model_tensor_offset(model, i));
        free(name);
    }
    return st;
}

dfn_status dfn_model_save(const dfn_model *model, const char *path,
                          const char *const *extra_metadata) {
    DFN_ASSERT(model && path);
    dfn_status st = DFN_OK;
    dfn_st_writer *w = dfn_st_writer_new();
    char *config = dfn_model_config_to_json(dfn_model_get_config(model));

    /* The extra pairs come first only to be checked: they may not override
     * the three keys that make the file a checkpoint. */
    for (const char *const *kv = extra_metadata; kv && kv[0]; kv += 2) {
        if (!kv[1]) {
            st = dfn_set_error(DFN_ERR_ARG, "%s: extra metadata key '%s' has no value", path,
                               kv[0]);
            goto fail;
        }
        if (!strcmp(kv[0], "config") || !strcmp(kv[0], "format") ||
            !strcmp(kv[0], "format_version")) {
            st = dfn_set_error(DFN_ERR_ARG,
                               "%s: extra metadata key '%s' is reserved for the checkpoint itself",
                               path, kv[0]);
            goto fail;
        }
    }
    if ((st = dfn_st_writer_set_metadata(w, "format", CHECKPOINT_FORMAT)) != DFN_OK) goto fail;
    if ((st = dfn_st_writer_set_metadata(w, "format_version", CHECKPOINT_VERSION)) != DFN_OK)
        goto fail;
    if ((st = dfn_st_writer_set_metadata(w, "config", config)) != DFN_OK) goto fail;
    for (const char *const *kv = extra_metadata; kv && kv[0]; kv += 2)
        if ((st = dfn_st_writer_set_metadata(w, kv[0], kv[1])) != DFN_OK) goto fail;

    /* dfn_model_params takes a mutable model (training writes through it);
     * saving only reads the array. */
    const float *params = dfn_model_params((dfn_model *)model);
    if ((st = dfn_st_writer_add_model_tensors(w, model, "", params)) != DFN_OK) goto fail;
    st = dfn_st_writer_save(w, path);
fail:
    free(config);
    dfn_st_writer_free(w);
    return st;
}

/* dfn_set_error formats into the buffer dfn_last_error returns, so a message
 * that quotes the previous one must copy it out first. */
static dfn_status wrap_error(dfn_status st, const char *path, const char *what) {
    char inner[512];
    snprintf(inner, sizeof inner, "%s", dfn_last_error());
    return dfn_set_error(st, "%s: %s: %s", path, what, inner);
}

dfn_status dfn_model_load(dfn_model **out, const char *path) {
    DFN_ASSERT(out && path);
    *out = NULL;
    dfn_status st;
    dfn_model *model = NULL;
    dfn_st_file *f = NULL;
    if ((st = dfn_st_open(&f, path)) != DFN_OK) goto fail;

    /* 1. Is it ours? The config is what we need; "format" and its version, if
     *    present, must be ones this code understands. */
    const char *format = dfn_st_metadata(f, "format");
    const char *version = dfn_st_metadata(f, "format_version");
    const char *config = dfn_st_metadata(f, "config");
    if (!config) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: not a diffusion.c checkpoint (no \"config\" in the safetensors "
                           "metadata)",
                           path);
        goto fail;
    }
    if (format && strcmp(format, CHECKPOINT_FORMAT) != 0) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: not a diffusion.c checkpoint (metadata \"format\" is \"%s\")",
                           path, format);
        goto fail;
    }
    if (version && strcmp(version, CHECKPOINT_VERSION) != 0) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: checkpoint format_version \"%s\" is not supported (this build "
                           "reads version " CHECKPOINT_VERSION ")",
                           path, version);
        goto fail;
    }

    /* 2. The architecture. */
    dfn_model_config cfg;
    if ((st = dfn_model_config_from_json(&cfg, config)) != DFN_OK) {
        st = wrap_error(st, path, "bad model config in the metadata");
        goto fail;
    }
    if ((st = dfn_model_new(&model, &cfg, 0)) != DFN_OK) {
        st = wrap_error(st, path, "cannot build the model of its config");
        goto fail;
    }

    /* 3. Tensors: nothing the model lacks, then every tensor it has. */
    for (int i = 0; i < dfn_st_num_tensors(f); i++) {
        const char *name = dfn_st_tensor_at(f, i)->name;
        if (dfn_model_find_tensor(model, name) < 0) {
            st = dfn_set_error(DFN_ERR_FORMAT,
                               "%s: unexpected tensor '%s' (the model of this config has no "
                               "such tensor)",
                               path, name);
            goto fail;
        }
    }
    if ((st = dfn_st_read_model_tensors(f, model, "", dfn_model_params(model))) != DFN_OK)
        goto fail;

    *out = model;
    model = NULL;
fail:
    if (model) dfn_model_free(model);
    dfn_st_close(f);
    return st;
}

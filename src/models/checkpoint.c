/* checkpoint.c - dfn_model_save / dfn_model_load: a model of any kind as a
 * safetensors file.
 *
 * A checkpoint is an ordinary safetensors file that PyTorch can read with
 * safetensors.torch.load_file and feed to load_state_dict:
 *
 *   - one F32 tensor per parameter tensor, named exactly as in the PyTorch
 *     twin's state_dict (dfn_model_tensor_name) with its shape;
 *   - metadata "format" = "diffusion.c checkpoint", "format_version" = "2",
 *     "config" (dfn_model_config_to_json, which names the kind), plus the
 *     caller's extra pairs (a pipeline's process and prediction, a trainer's
 *     step, a classifier's test accuracy); an autoencoder's latent scale, once
 *     measured, as "latent_scale" (%.17g).
 *
 * Version 1 files load too: diffusion models ("diffusion.c checkpoint" "1",
 * whose config JSON is the same) and classifiers ("diffusion.c classifier",
 * version "1", whose config is the classifier kind's JSON).
 *
 * Loading rebuilds the model from the stored config and then insists that the
 * file and the model agree tensor by tensor (presence, dtype, shape), that the
 * file holds nothing the model lacks, and that every weight is finite: a
 * checkpoint for a different architecture fails with a message naming the
 * first disagreement rather than loading garbage.
 */
#include <math.h>
#include <string.h>

#include "models/model.h"
#include "models/models.h"

#define CHECKPOINT_FORMAT "diffusion.c checkpoint"
#define CHECKPOINT_VERSION "2"
#define CLASSIFIER_FORMAT_V1 "diffusion.c classifier" /* read only */

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
    dfn_buf b = {0};
    dfn_buf_printf(&b, "%s%s", prefix ? prefix : "", name);
    return b.data;
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
            !strcmp(kv[0], "format_version") ||
            (model->cfg.kind == DFN_MODEL_AUTOENCODER && !strcmp(kv[0], "latent_scale"))) {
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
    if (model->cfg.kind == DFN_MODEL_AUTOENCODER && dfn_autoencoder_scale(model) > 0) {
        char scale[32];
        snprintf(scale, sizeof scale, "%.17g", dfn_autoencoder_scale(model));
        if ((st = dfn_st_writer_set_metadata(w, "latent_scale", scale)) != DFN_OK) goto fail;
    }
    if ((st = dfn_st_writer_add_model_tensors(w, model, "", model->params)) != DFN_OK) goto fail;
    st = dfn_st_writer_save(w, path);
fail:
    free(config);
    dfn_st_writer_free(w);
    return st;
}

dfn_status dfn_read_latent_scale(const dfn_st_file *f, double *scale) {
    const char *text = dfn_st_metadata(f, "latent_scale");
    *scale = 0;
    if (!text) return DFN_OK;
    char *end;
    const double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v) || !(v > 0))
        return dfn_set_error(DFN_ERR_FORMAT,
                             "%s: metadata \"latent_scale\" is \"%s\" (a positive number was "
                             "expected)",
                             dfn_st_path(f), text);
    *scale = v;
    return DFN_OK;
}

/* dfn_set_error formats into the buffer dfn_last_error returns, so a message
 * that quotes the previous one must copy it out first. */
static dfn_status wrap_error(dfn_status st, const char *path, const char *what) {
    char inner[512];
    snprintf(inner, sizeof inner, "%s", dfn_last_error());
    return dfn_set_error(st, "%s: %s: %s", path, what, inner);
}

/* Is the file's "format" / "format_version" one this code reads? */
static dfn_status check_format(const dfn_st_file *f, const char *path) {
    const char *format = dfn_st_metadata(f, "format");
    const char *version = dfn_st_metadata(f, "format_version");
    if (!dfn_st_metadata(f, "config"))
        return dfn_set_error(DFN_ERR_FORMAT,
                             "%s: not a diffusion.c checkpoint (no \"config\" in the safetensors "
                             "metadata)",
                             path);
    if (format && !strcmp(format, CLASSIFIER_FORMAT_V1)) {
        if (version && strcmp(version, "1") != 0)
            return dfn_set_error(DFN_ERR_FORMAT,
                                 "%s: classifier format_version \"%s\" is not supported (this "
                                 "build reads version 1 classifiers and version " CHECKPOINT_VERSION
                                 " checkpoints)",
                                 path, version);
        return DFN_OK;
    }
    if (format && strcmp(format, CHECKPOINT_FORMAT) != 0)
        return dfn_set_error(DFN_ERR_FORMAT,
                             "%s: not a diffusion.c checkpoint (metadata \"format\" is \"%s\")",
                             path, format);
    if (version && strcmp(version, "1") != 0 && strcmp(version, CHECKPOINT_VERSION) != 0)
        return dfn_set_error(DFN_ERR_FORMAT,
                             "%s: checkpoint format_version \"%s\" is not supported (this build "
                             "reads versions 1 and " CHECKPOINT_VERSION "; a newer diffusion.c "
                             "wrote it?)",
                             path, version);
    return DFN_OK;
}

dfn_status dfn_model_load(dfn_model **out, const char *path) {
    DFN_ASSERT(out && path);
    *out = NULL;
    dfn_st_file *f = NULL;
    dfn_status st = dfn_st_open(&f, path);
    if (st == DFN_OK) st = dfn_model_load_from(out, f);
    dfn_st_close(f);
    return st;
}

dfn_status dfn_model_load_from(dfn_model **out, const dfn_st_file *f) {
    DFN_ASSERT(out && f);
    *out = NULL;
    const char *path = dfn_st_path(f);
    dfn_status st;
    dfn_model *model = NULL;
    if ((st = check_format(f, path)) != DFN_OK) goto fail;

    /* The architecture. */
    dfn_model_config cfg;
    if ((st = dfn_model_config_from_json(&cfg, dfn_st_metadata(f, "config"))) != DFN_OK) {
        st = wrap_error(st, path, "bad model config in the metadata");
        goto fail;
    }
    /* The parameters the config asks for must fit in the file before they are
     * allocated: a few bytes of metadata may describe a network of gigabytes.
     * (At a byte a parameter at least, and 2^20 to spare: a file that misses a
     * tensor or two is left to the messages below, which name them.) */
    size_t file_bytes = 0;
    for (int i = 0; i < dfn_st_num_tensors(f); i++) file_bytes += dfn_st_tensor_at(f, i)->nbytes;
    const size_t want = dfn_model_config_num_params(&cfg);
    if (want > file_bytes + ((size_t)1 << 20)) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: its config describes a %s of %zu parameters, but the file holds "
                           "%zu bytes of tensors",
                           path, dfn_model_kind_name(cfg.kind), want, file_bytes);
        goto fail;
    }
    if ((st = dfn_model_new(&model, &cfg, 0)) != DFN_OK) {
        st = wrap_error(st, path, "cannot build the model of its config");
        goto fail;
    }

    /* Tensors: nothing the model lacks, then every tensor it has. */
    for (int i = 0; i < dfn_st_num_tensors(f); i++) {
        const char *name = dfn_st_tensor_at(f, i)->name;
        if (dfn_model_find_tensor(model, name) < 0) {
            st = dfn_set_error(DFN_ERR_FORMAT,
                               "%s: unexpected tensor '%s' (the %s of this config has no such "
                               "tensor)",
                               path, name, dfn_model_kind_name(cfg.kind));
            goto fail;
        }
    }
    if ((st = dfn_st_read_model_tensors(f, model, "", model->params)) != DFN_OK) goto fail;
    for (int i = 0; i < model->tab.count; i++) {
        const dfn_tensor_info *t = &model->tab.t[i];
        for (size_t j = 0; j < t->numel; j++)
            if (!isfinite(model->params[t->offset + j])) {
                st = dfn_set_error(DFN_ERR_NUMERIC, "%s: tensor '%s' holds %g at element %zu",
                                   path, t->name, (double)model->params[t->offset + j], j);
                goto fail;
            }
    }
    if (cfg.kind == DFN_MODEL_AUTOENCODER) {
        double scale;
        if ((st = dfn_read_latent_scale(f, &scale)) != DFN_OK) goto fail;
        dfn_autoencoder_set_scale(model, scale);
    }
    model->path = dfn_strdup(path);
    *out = model;
    model = NULL;
fail:
    dfn_model_free(model);
    return st;
}

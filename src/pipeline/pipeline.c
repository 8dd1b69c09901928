/* pipeline.c - a trained diffusion model ready to sample (diffusion/pipeline.h):
 * the network, the process it was trained on, what it predicts; loading and
 * saving it with that metadata; drawing samples with any sampler.
 *
 * Checkpoint metadata beside the model's own ("format", "config"):
 *   "process"     dfn_process_to_json: a discrete schedule stores its betas,
 *                 so no beta file is needed to sample;
 *   "prediction"  "eps", "x0", "v", "score" or "flow";
 *   "objective"   the training objective as the trainer recorded it (kept,
 *                 not interpreted; files before "prediction" existed carry
 *                 the prediction only there). */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "core/dist.h"
#include "diffusion/pipeline.h"
#include "io/safetensors.h"
#include "models/models.h"
#include "sample/sample.h"

struct dfn_pipeline {
    dfn_model *model;
    int owns_model;              /* loaded here, freed here */
    dfn_process_params process;
    dfn_schedule schedule;       /* discrete processes (zeroed otherwise) */
    dfn_prediction prediction;
    char *objective_json;        /* as recorded by the trainer, or NULL */
    char *path;                  /* the file it came from, or NULL */
    /* latent diffusion: the autoencoder whose decoder turns the sampled latents
     * into data (the model then works on scale * its latents), or NULL */
    dfn_model *ae;
    int owns_ae;
    char *ae_file;               /* as recorded in checkpoints */
    double scale;
    /* a consistency model: its f is the denoiser (NULL model: a diffusion model) */
    dfn_consistency_model cm;
};

static dfn_status check_denoiser(const dfn_model *model, const char *path) {
    if (dfn_model_is_denoiser(model)) return DFN_OK;
    return dfn_set_error(DFN_ERR_ARG,
                         "%s%sa %s is not a diffusion model (a pipeline needs a unet or an mlp)",
                         path ? path : "", path ? ": " : "",
                         dfn_model_kind_name(dfn_model_get_config(model)->kind));
}

dfn_status dfn_pipeline_new(dfn_pipeline **out, dfn_model *model,
                            const dfn_process_params *process, dfn_prediction prediction) {
    DFN_ASSERT(out && model && process);
    *out = NULL;
    dfn_status st;
    if ((st = check_denoiser(model, NULL)) != DFN_OK) return st;
    if ((int)prediction < 0 || prediction >= DFN_PRED_COUNT)
        return dfn_set_error(DFN_ERR_ARG, "pipeline: prediction %d is not a dfn_prediction",
                             (int)prediction);
    dfn_pipeline *p = dfn_calloc(1, sizeof *p);
    p->model = model;
    p->process = *process;
    p->process.schedule.path = NULL; /* borrowed; the schedule below holds the betas */
    p->prediction = prediction;
    if (!process->continuous) st = dfn_schedule_init(&p->schedule, &process->schedule);
    else st = dfn_sde_validate(&process->sde);
    if (st != DFN_OK) {
        free(p);
        return st;
    }
    *out = p;
    return DFN_OK;
}

void dfn_pipeline_free(dfn_pipeline *p) {
    if (!p) return;
    if (p->owns_model) dfn_model_free(p->model);
    if (p->owns_ae) dfn_model_free(p->ae);
    free(p->ae_file);
    dfn_schedule_free(&p->schedule);
    free(p->objective_json);
    free(p->path);
    free(p);
}

/* The prediction from "prediction", else from the "prediction" of "objective"
 * (checkpoints before the key existed); -1 when neither says. */
static int read_prediction(const dfn_st_file *f) {
    const char *name = dfn_st_metadata(f, "prediction");
    if (name) return dfn_prediction_from_name(name);
    const char *objective = dfn_st_metadata(f, "objective");
    if (!objective) return -2;
    cJSON *o = cJSON_Parse(objective);
    const cJSON *pred = cJSON_GetObjectItemCaseSensitive(o, "prediction");
    int k = cJSON_IsString(pred) ? dfn_prediction_from_name(pred->valuestring) : -1;
    if (!cJSON_IsString(pred)) dfn_set_error(DFN_ERR_FORMAT, "no \"prediction\" in \"objective\"");
    cJSON_Delete(o);
    return k;
}

dfn_status dfn_pipeline_set_autoencoder(dfn_pipeline *p, dfn_model *ae, const char *file) {
    DFN_ASSERT(p && ae);
    const char *name = dfn_model_path(ae) ? dfn_model_path(ae) : "the autoencoder";
    dfn_status st = dfn_model_check_kind(ae, DFN_MODEL_AUTOENCODER, name);
    if (st != DFN_OK) return st;
    if (p->cm.model) return dfn_set_error(DFN_ERR_ARG, "a latent consistency model is not supported");
    int dims[3];
    dfn_autoencoder_latent_shape(ae, dims);
    st = dfn_model_check_input(p->model, 3, dims, name);
    if (st != DFN_OK)
        return dfn_set_error(st, "%s (the model must take the autoencoder's latents)",
                             dfn_last_error());
    if (!(dfn_autoencoder_scale(ae) > 0))
        return dfn_set_error(DFN_ERR_ARG,
                             "%s: no latent scale (train-autoencoder measures it at the end of a "
                             "completed run)",
                             name);
    /* what checkpoints record: the name given, else the file's absolute path
     * (a relative one would be read beside the checkpoint) */
    char *record = file ? dfn_strdup(file) : NULL, cwd[4096];
    const char *own = dfn_model_path(ae);
    if (!record && own && own[0] == '/') record = dfn_strdup(own);
    else if (!record && own && getcwd(cwd, sizeof cwd)) {
        dfn_buf b = {0};
        dfn_buf_printf(&b, "%s/%s", cwd, own);
        record = b.data;
    }
    if (p->owns_ae && p->ae != ae) dfn_model_free(p->ae);
    if (p->ae != ae) p->owns_ae = 0;
    free(p->ae_file);
    p->ae = ae;
    p->ae_file = record;
    p->scale = dfn_autoencoder_scale(ae);
    return DFN_OK;
}

dfn_model *dfn_pipeline_autoencoder(const dfn_pipeline *p) { return p->ae; }

/* "dir/of/model.safetensors" + "ae.safetensors" -> "dir/of/ae.safetensors";
 * absolute names as they are. */
static char *beside(const char *checkpoint, const char *name) {
    const char *slash = strrchr(checkpoint, '/');
    dfn_buf b = {0};
    if (name[0] == '/' || !slash) dfn_buf_printf(&b, "%s", name);
    else dfn_buf_printf(&b, "%.*s/%s", (int)(slash - checkpoint), checkpoint, name);
    return b.data;
}

/* A latent model's autoencoder: ae_path, else the file its metadata names
 * (relative names are beside the checkpoint); its weights must be those the
 * model was trained on (the fingerprint), its scale the model's. */
static dfn_status load_autoencoder(dfn_pipeline *p, const dfn_st_file *f, const char *path,
                                   const char *ae_path) {
    const char *recorded = dfn_st_metadata(f, "autoencoder");
    const char *want = dfn_st_metadata(f, "autoencoder_fingerprint");
    if (!recorded) {
        if (ae_path)
            return dfn_set_error(DFN_ERR_ARG,
                                 "%s: not a latent diffusion model (it was trained on the data "
                                 "itself), so it takes no autoencoder (%s)",
                                 path, ae_path);
        return DFN_OK;
    }
    char *file = ae_path ? dfn_strdup(ae_path) : beside(path, recorded);
    dfn_model *ae = NULL;
    dfn_status st = dfn_model_load(&ae, file);
    if (st != DFN_OK) {
        if (!ae_path)
            st = dfn_set_error(st,
                               "%s is a latent diffusion model, and its autoencoder cannot be "
                               "read: %s (give the autoencoder it was trained with: "
                               "--autoencoder FILE)",
                               path, dfn_last_error());
        free(file);
        return st;
    }
    char have[17];
    dfn_model_fingerprint(ae, have);
    double scale = 0;
    if ((st = dfn_read_latent_scale(f, &scale)) == DFN_OK && (!want || !(scale > 0)))
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: a latent diffusion model without \"%s\" in its metadata", path,
                           want ? "latent_scale" : "autoencoder_fingerprint");
    else if (st == DFN_OK && dfn_model_check_kind(ae, DFN_MODEL_AUTOENCODER, file) != DFN_OK)
        st = dfn_set_error(DFN_ERR_ARG, "%s: its autoencoder %s", path, dfn_last_error());
    else if (st == DFN_OK && strcmp(have, want) != 0)
        st = dfn_set_error(DFN_ERR_ARG,
                           "%s was trained on the latents of another autoencoder than %s (weights "
                           "%s, these are %s)",
                           path, file, want, have);
    if (st == DFN_OK) {
        dfn_autoencoder_set_scale(ae, scale);
        if ((st = dfn_pipeline_set_autoencoder(p, ae, recorded)) != DFN_OK)
            st = dfn_set_error(st, "%s: %s", path, dfn_last_error());
    }
    if (st == DFN_OK) p->owns_ae = 1;
    else dfn_model_free(ae);
    free(file);
    return st;
}

dfn_status dfn_pipeline_load(dfn_pipeline **out, const char *path) {
    return dfn_pipeline_load_with_autoencoder(out, path, NULL);
}

dfn_status dfn_pipeline_load_with_autoencoder(dfn_pipeline **out, const char *path,
                                              const char *ae_path) {
    DFN_ASSERT(out && path);
    *out = NULL;
    dfn_st_file *f = NULL;
    dfn_pipeline *p = dfn_calloc(1, sizeof *p);
    p->owns_model = 1;
    dfn_status st;
    if ((st = dfn_st_open(&f, path)) != DFN_OK) goto fail;
    if ((st = dfn_model_load_from(&p->model, f)) != DFN_OK) goto fail;
    if ((st = check_denoiser(p->model, path)) != DFN_OK) goto fail;
    const char *process = dfn_st_metadata(f, "process");
    int pred = read_prediction(f);
    if (!process && pred == -2) {
        fprintf(stderr,
                "note: %s has no process metadata; assuming DDPM's linear schedule, T = 1000, "
                "eps prediction\n",
                path);
        p->process = dfn_process_params_init();
        p->prediction = DFN_PRED_EPS;
        st = dfn_schedule_init(&p->schedule, &p->process.schedule);
        if (st != DFN_OK) goto fail;
    } else {
        if (!process) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: no \"process\" in the metadata", path);
            goto fail;
        }
        if ((st = dfn_process_from_json(&p->process, &p->schedule, process)) != DFN_OK) {
            st = dfn_set_error(st, "%s: process metadata: %s", path, dfn_last_error());
            goto fail;
        }
        if (pred < 0) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: prediction metadata: %s", path,
                               pred == -2 ? "missing" : dfn_last_error());
            goto fail;
        }
        if (pred == DFN_PRED_SCORE && !dfn_st_metadata(f, "prediction")) {
            st = dfn_set_error(DFN_ERR_FORMAT,
                               "%s: a score model from before score networks output sigma * score "
                               "(dfn_prediction_network_scale): its outputs would be misread; "
                               "train it again",
                               path);
            goto fail;
        }
        p->prediction = (dfn_prediction)pred;
    }
    const char *objective = dfn_st_metadata(f, "objective");
    if (objective) p->objective_json = dfn_strdup(objective);
    if ((st = load_autoencoder(p, f, path, ae_path)) != DFN_OK) goto fail;
    const char *cm = dfn_st_metadata(f, "consistency");
    if (cm) {
        dfn_consistency c;
        if ((st = dfn_consistency_from_json(&c, cm)) != DFN_OK ||
            (st = dfn_pipeline_set_consistency(p, &c)) != DFN_OK) {
            st = dfn_set_error(st, "%s: consistency metadata: %s", path, dfn_last_error());
            goto fail;
        }
    }
    p->path = dfn_strdup(path);
    dfn_st_close(f);
    *out = p;
    return DFN_OK;
fail:
    dfn_st_close(f);
    dfn_pipeline_free(p);
    return st;
}

dfn_status dfn_pipeline_save(const dfn_pipeline *p, const char *path,
                             const char *const *extra_metadata) {
    DFN_ASSERT(p && path);
    char *process = dfn_process_to_json(&p->process, p->process.continuous ? NULL : &p->schedule);
    size_t n_extra = 0;
    for (const char *const *kv = extra_metadata; kv && kv[0]; kv += 2) n_extra++;
    const char **meta = dfn_calloc(2 * n_extra + 15, sizeof *meta);
    size_t k = 0;
    char print[17], scale[32];
    if (p->ae && !p->ae_file) {
        free(meta);
        free(process);
        return dfn_set_error(DFN_ERR_ARG,
                             "%s: the pipeline's autoencoder has no file for the checkpoint to name "
                             "(dfn_pipeline_set_autoencoder's file)",
                             path);
    }
    if (p->ae) {
        dfn_model_fingerprint(p->ae, print);
        snprintf(scale, sizeof scale, "%.17g", p->scale);
        meta[k++] = "autoencoder";
        meta[k++] = p->ae_file;
        meta[k++] = "autoencoder_fingerprint";
        meta[k++] = print;
        meta[k++] = "latent_scale";
        meta[k++] = scale;
    }
    char *cm = p->cm.model ? dfn_consistency_to_json(&p->cm.c) : NULL;
    if (cm) {
        meta[k++] = "consistency";
        meta[k++] = cm;
    }
    meta[k++] = "process";
    meta[k++] = process;
    meta[k++] = "prediction";
    meta[k++] = dfn_prediction_name(p->prediction);
    int has_objective = 0;
    for (const char *const *kv = extra_metadata; kv && kv[0]; kv += 2) {
        meta[k++] = kv[0];
        meta[k++] = kv[1];
        has_objective |= !strcmp(kv[0], "objective");
    }
    if (p->objective_json && !has_objective) {
        meta[k++] = "objective";
        meta[k++] = p->objective_json;
    }
    meta[k] = NULL;
    dfn_status st = dfn_model_save(p->model, path, meta);
    free(meta);
    free(process);
    free(cm);
    return st;
}

dfn_model *dfn_pipeline_model(const dfn_pipeline *p) { return p->model; }
const dfn_process_params *dfn_pipeline_process(const dfn_pipeline *p) { return &p->process; }
const dfn_schedule *dfn_pipeline_schedule(const dfn_pipeline *p) {
    return p->process.continuous ? NULL : &p->schedule;
}
dfn_prediction dfn_pipeline_prediction(const dfn_pipeline *p) { return p->prediction; }
int dfn_pipeline_sample_shape(const dfn_pipeline *p, int dims[3]) {
    return dfn_model_input_shape(p->ae ? p->ae : p->model, dims);
}
size_t dfn_pipeline_sample_size(const dfn_pipeline *p) {
    return dfn_model_input_size(p->ae ? p->ae : p->model);
}
double dfn_pipeline_latent_scale(const dfn_pipeline *p) { return p->ae ? p->scale : 0.0; }
int dfn_pipeline_is_image(const dfn_pipeline *p) {
    int dims[3];
    return dfn_pipeline_sample_shape(p, dims) == 3;
}
const char *dfn_pipeline_path(const dfn_pipeline *p) { return p->path; }

/* The sampler a process is best served by when nobody says: DPM-Solver++(2M)
 * (20 steps) for discrete schedules (docs/recipes.md: as good at 10 network
 * calls as EDM's Heun at 35 and DDIM at 50), VP and sub-VP, EDM's Heun for VE,
 * Euler for rectified flow. */
const char *dfn_pipeline_default_sampler(const dfn_pipeline *p) {
    if (p->cm.model) return "consistency";
    if (!p->process.continuous) return "dpm++2m";
    switch (p->process.sde.kind) {
    case DFN_SDE_VE: return "heun";
    case DFN_SDE_FLOW: return "flow-euler";
    default: return "dpm++2m";
    }
}

void dfn_pipeline_denoiser(dfn_pipeline *p, dfn_denoiser *d, int max_batch) {
    DFN_ASSERT(p && d);
    const int cont = p->process.continuous;
    if (p->cm.model)
        dfn_consistency_denoiser(d, &p->cm, cont ? NULL : &p->schedule,
                                 cont ? &p->process.sde : NULL, max_batch,
                                 cont ? p->process.time_scale : 1.0);
    else
        dfn_model_denoiser(d, p->model, p->prediction, cont ? NULL : &p->schedule,
                           cont ? &p->process.sde : NULL, max_batch,
                           cont ? p->process.time_scale : 1.0);
}

dfn_status dfn_pipeline_set_consistency(dfn_pipeline *p, const dfn_consistency *c) {
    DFN_ASSERT(p);
    if (!c) {
        memset(&p->cm, 0, sizeof p->cm);
        return DFN_OK;
    }
    if (!(c->sigma_min > 0 && c->sigma_max > c->sigma_min) || !isfinite(c->sigma_max))
        return dfn_set_error(DFN_ERR_ARG, "consistency levels sigma_min %g, sigma_max %g: need "
                                          "0 < sigma_min < sigma_max (finite)",
                             c->sigma_min, c->sigma_max);
    if (p->ae)
        return dfn_set_error(DFN_ERR_ARG, "a latent consistency model is not supported");
    p->cm.model = p->model;
    p->cm.kind = p->prediction;
    p->cm.c = *c;
    return DFN_OK;
}

const dfn_consistency *dfn_pipeline_consistency(const dfn_pipeline *p) {
    return p->cm.model ? &p->cm.c : NULL;
}

dfn_pipeline_sample_params dfn_pipeline_sample_params_init(const dfn_pipeline *p) {
    DFN_ASSERT(p);
    dfn_pipeline_sample_params sp;
    memset(&sp, 0, sizeof sp);
    sp.sampler = NULL;
    sp.sampler_params = dfn_sampler_params_init();
    /* vectors are not scaled to [-1, 1], nor are latents */
    sp.sampler_params.clip_x0 = dfn_pipeline_is_image(p) && !p->ae;
    sp.batch = 64;
    sp.label = -1;
    sp.guidance = 1.0;
    sp.seed = 0;
    return sp;
}

/* The denoiser of one run over the pipeline, set up as sp asks (labels,
 * classifier-free and classifier guidance), after the checks every run needs;
 * *labels (sp->batch, malloc'ed or NULL) for the caller to free. */
static dfn_status setup(dfn_pipeline *p, const dfn_pipeline_sample_params *sp, const char *name,
                        const dfn_sampler_info **info, dfn_denoiser *den, int **labels) {
    *labels = NULL;
    if (sp->batch < 1) return dfn_set_error(DFN_ERR_ARG, "sampling batch %d (must be >= 1)", sp->batch);
    *info = dfn_sampler_find(name);
    if (!*info) return DFN_ERR_ARG;
    dfn_pipeline_denoiser(p, den, sp->batch);
    const unsigned flag = dfn_denoiser_process_flag(den);
    if (!((*info)->fits & flag)) {
        char fitting[512];
        dfn_sampler_names_fitting(flag, fitting, sizeof fitting);
        return dfn_set_error(DFN_ERR_ARG,
                             "sampler '%s' does not fit this checkpoint's process (%s); these do: %s",
                             name,
                             p->process.continuous ? dfn_sde_kind_name(p->process.sde.kind)
                                                   : "discrete schedule",
                             fitting);
    }
    const int consistency_sampler = !strcmp(name, "consistency");
    if (p->cm.model && !consistency_sampler)
        return dfn_set_error(DFN_ERR_ARG,
                             "%s%sa consistency model: its network maps noise to data in one step "
                             "and is no denoiser for sampler '%s'; sample it with the sampler "
                             "'consistency' (1, 2 or 4 steps)",
                             p->path ? p->path : "", p->path ? " is " : "this is ", name);
    if (!p->cm.model && consistency_sampler)
        return dfn_set_error(DFN_ERR_ARG,
                             "sampler 'consistency' needs a consistency model (diffusion distill "
                             "--method cd, or train --objective ct); %s is a diffusion model: "
                             "sample it with %s",
                             p->path ? p->path : "this", dfn_pipeline_default_sampler(p));
    const int K = dfn_model_get_config(p->model)->num_classes;
    const int KC = sp->classifier ? dfn_model_get_config(sp->classifier)->num_classes : 0;
    if (p->ae && (sp->sampler_params.clip_x0 || sp->sampler_params.dynamic_threshold))
        return dfn_set_error(DFN_ERR_ARG,
                             "%s on a latent diffusion model: its latents are not in [-1, 1] "
                             "(the decoded images are clamped to it)",
                             sp->sampler_params.clip_x0 ? "x0 clipping" : "dynamic thresholding");
    if (p->ae && sp->sampler_params.from_x && !sp->init)
        return dfn_set_error(DFN_ERR_ARG,
                             "a start given in x (from_x) on a latent diffusion model: x holds "
                             "images, the start would be latents");
    if (sp->classifier && p->ae)
        return dfn_set_error(DFN_ERR_ARG,
                             "classifier guidance of a latent diffusion model would need a "
                             "classifier of its noisy latents; use classifier-free guidance "
                             "(a model trained with classes and --guidance)");
    if (sp->classifier && sp->label < 0)
        return dfn_set_error(DFN_ERR_ARG, "classifier guidance needs a class to guide towards");
    /* a label must be one of the classifier's, and of the model's if it has classes */
    if (sp->label >= 0 && sp->classifier && sp->label >= KC)
        return dfn_set_error(DFN_ERR_ARG, "class %d: the classifier has %d classes", sp->label, KC);
    if (sp->label >= 0 && (K > 0 ? sp->label >= K : !sp->classifier))
        return dfn_set_error(DFN_ERR_ARG, "class %d: the model has %d classes%s", sp->label, K,
                             K ? "" : " (it was trained unconditionally; classifier guidance "
                                      "needs a classifier)");
    if (sp->guidance != 1.0 && (sp->label < 0 || K == 0))
        return dfn_set_error(DFN_ERR_ARG,
                             "guidance %g needs a class to guide towards and a model trained "
                             "with classes (classifier-free guidance mixes the class's "
                             "prediction with the unconditional one)",
                             sp->guidance);
    if (!isfinite(sp->classifier_scale))
        return dfn_set_error(DFN_ERR_ARG, "classifier scale %g is not finite", sp->classifier_scale);
    if (sp->label >= 0) {
        *labels = dfn_malloc((size_t)sp->batch * sizeof(int));
        for (int b = 0; b < sp->batch; b++) (*labels)[b] = sp->label;
        den->labels = *labels;
        den->guidance = K > 0 ? sp->guidance : 1.0;
    }
    if (sp->classifier) {
        den->guide = dfn_classifier_guide;
        den->guide_ctx = sp->classifier;
        den->guide_scale = sp->classifier_scale;
    }
    return DFN_OK;
}

/* Latent diffusion (Rombach et al. 2022 section 3.3): the model works on
 * scale * z, z the autoencoder's posterior mean of an image, and its samples
 * are decoded as decoder(sample / scale), clamped to the data's [-1, 1]. */
static void encode_latents(dfn_pipeline *p, float *z, const float *x, int b) {
    dfn_autoencoder_encode(p->ae, z, NULL, x, b);
    const size_t n = (size_t)b * dfn_model_input_size(p->model);
    for (size_t i = 0; i < n; i++) z[i] = (float)(z[i] * p->scale);
}

static void decode_latents(dfn_pipeline *p, float *x, float *z, int b) {
    const size_t n = (size_t)b * dfn_model_input_size(p->model);
    for (size_t i = 0; i < n; i++) z[i] = (float)(z[i] / p->scale);
    dfn_autoencoder_decode(p->ae, x, z, b);
    const size_t m = (size_t)b * dfn_model_input_size(p->ae);
    for (size_t i = 0; i < m; i++) x[i] = x[i] < -1.0f ? -1.0f : x[i] > 1.0f ? 1.0f : x[i];
}

/* An inpainting mask (C, H, W) per sample -> the latents' (z, H/f, W/f): the
 * mean of each f x f block over the image channels, the same for every latent
 * channel (fractions blend, as a soft mask does). */
static void latent_mask(dfn_pipeline *p, float *out, const float *mask, int b) {
    int in[3], lat[3];
    dfn_model_input_shape(p->ae, in);
    dfn_autoencoder_latent_shape(p->ae, lat);
    const int f = in[1] / lat[1];
    const size_t D = (size_t)in[0] * in[1] * in[2], L = (size_t)lat[0] * lat[1] * lat[2];
    for (int s = 0; s < b; s++)
        for (int i = 0; i < lat[1]; i++)
            for (int j = 0; j < lat[2]; j++) {
                double sum = 0;
                for (int c = 0; c < in[0]; c++)
                    for (int u = 0; u < f; u++)
                        for (int v = 0; v < f; v++)
                            sum += mask[s * D + ((size_t)c * in[1] + i * f + u) * in[2] + j * f + v];
                const float m = (float)(sum / ((double)in[0] * f * f));
                for (int c = 0; c < lat[0]; c++) out[s * L + ((size_t)c * lat[1] + i) * lat[2] + j] = m;
            }
}

dfn_status dfn_pipeline_sample(dfn_pipeline *p, float *x, int n, const dfn_pipeline_sample_params *sp,
                               dfn_sample_stats *stats) {
    DFN_ASSERT(p && x && sp && n >= 0);
    const char *name = sp->sampler ? sp->sampler : dfn_pipeline_default_sampler(p);
    const dfn_sampler_info *info;
    dfn_denoiser den;
    int *labels;
    dfn_status st = setup(p, sp, name, &info, &den, &labels);
    if (st != DFN_OK) return st;
    const double strength = sp->sampler_params.strength;
    if (sp->mask && !sp->init) st = dfn_set_error(DFN_ERR_ARG, "inpainting: a mask needs the images (init)");
    else if (sp->mask && sp->sampler_params.constraint)
        st = dfn_set_error(DFN_ERR_ARG, "inpainting: the mask is the sampler's constraint; a second "
                                        "one (sampler_params.constraint) cannot be applied with it");
    else if (strength < 1.0 && !sp->init)
        st = dfn_set_error(DFN_ERR_ARG, "strength %g: an image-to-image start needs the input "
                                        "images (init)", strength);
    else if (sp->init && !sp->mask && !(strength < 1.0))
        st = dfn_set_error(DFN_ERR_ARG, "input images given, but neither a mask (inpainting) "
                                        "nor a strength below 1 (image-to-image)");
    if (st != DFN_OK) {
        free(labels);
        return st;
    }
    const size_t D = dfn_pipeline_sample_size(p);       /* of the data */
    const size_t L = dfn_model_input_size(p->model);    /* of what the sampler integrates */
    dfn_sampler_params spp = sp->sampler_params;
    if (p->cm.model) { /* a consistency model samples the levels it was trained on */
        if (!(spp.sigma_min > 0)) spp.sigma_min = p->cm.c.sigma_min;
        if (!(spp.sigma_max > 0)) spp.sigma_max = p->cm.c.sigma_max;
    }
    dfn_rng rng, known_rng;
    dfn_replace_constraint rc = {NULL, sp->mask, !sp->mask_per_sample, &known_rng};
    if (sp->mask) {
        spp.constraint = dfn_constraint_replace;
        spp.constraint_ctx = &rc;
    }
    /* the batches, a contiguous block of them per process (core/dist.h) */
    const int batches = n / sp->batch + (n % sp->batch != 0);
    size_t *first = dfn_dist_blocks((size_t)batches, 1, (size_t)batches);
    size_t *rows = dfn_dist_blocks((size_t)batches, (size_t)sp->batch, (size_t)n);
    const size_t lo = first[dfn_dist_rank()], hi = first[dfn_dist_rank() + 1];
    dfn_sample_stats *one = dfn_calloc((size_t)batches + 1, sizeof *one);
    /* a latent model samples latents (lat), started from the inputs' encodings
     * (known) under the mask pooled to the latents' resolution */
    float *lat = NULL, *known = NULL, *lat_mask = NULL;
    if (p->ae) {
        const int masks = sp->mask_per_sample ? sp->batch : 1;
        lat = dfn_malloc((size_t)sp->batch * L * sizeof(float));
        if (sp->init) known = dfn_malloc((size_t)sp->batch * L * sizeof(float));
        if (sp->mask) lat_mask = dfn_malloc((size_t)masks * L * sizeof(float));
        if (sp->mask && !sp->mask_per_sample) latent_mask(p, lat_mask, sp->mask, 1);
    }
    /* each sampler stops at the first NaN or Inf it leaves, naming it (dfn_sampler_step) */
    for (size_t j = lo; j < hi && st == DFN_OK; j++) {
        const int start = (int)j * sp->batch, b = DFN_MIN(sp->batch, n - start);
        float *xb = x + (size_t)start * D, *state = p->ae ? lat : xb;
        const float *init = sp->init ? sp->init + (size_t)start * D : NULL;
        const float *mask = sp->mask_per_sample && sp->mask ? sp->mask + (size_t)start * D : sp->mask;
        if (init && p->ae) {
            encode_latents(p, known, init, b);
            memcpy(lat, known, (size_t)b * L * sizeof(float));
            rc.known = known;
            if (mask && sp->mask_per_sample) latent_mask(p, lat_mask, mask, b);
            rc.mask = lat_mask;
        } else if (init) {
            if (xb != init) memcpy(xb, init, (size_t)b * D * sizeof(float));
            rc.known = init;
            rc.mask = mask;
        }
        /* batch j draws from block j * 2^40 on: its numbers do not depend on
         * which process runs it; the known part's noise has a stream of its own,
         * so that the sampler's draws are those of the same run without a mask */
        rng = dfn_rng_init(sp->seed);
        known_rng = dfn_rng_init(sp->seed ^ 0x6b6e6f776e5f7067ull);
        rng.counter = known_rng.counter = (uint64_t)j << 40;
        st = info->fn(&den, state, b, L, &spp, &rng, &one[j]);
        if (st == DFN_OK && p->ae) decode_latents(p, xb, lat, b);
    }
    free(lat);
    free(known);
    free(lat_mask);
    if ((st = dfn_dist_agree(st)) == DFN_OK) {
        dfn_dist_allgather_rows(x, D * sizeof(float), rows);
        dfn_dist_allgather_rows(one, sizeof *one, first);
    }
    dfn_sample_stats total = {0, 0, 0};
    for (int j = 0; j < batches; j++) {
        total.nfe += one[j].nfe;
        total.steps = one[j].steps;
        total.rejected += one[j].rejected;
    }
    free(one);
    free(first);
    free(rows);
    free(labels);
    if (stats) *stats = total;
    return st;
}

/* The samplers that draw noise on the way (a pair needs a deterministic map). */
static const char *stochastic_sampler(const char *name, const dfn_sampler_params *sp) {
    static const char *const always[] = {"ddpm", "langevin", "annealed-langevin",
                                         "euler-maruyama", "pc", "repaint"};
    for (size_t i = 0; i < sizeof always / sizeof *always; i++)
        if (!strcmp(name, always[i])) return "it draws noise at every step";
    if (!strcmp(name, "ddim") && sp->eta != 0) return "eta > 0 draws noise";
    if ((!strcmp(name, "euler") || !strcmp(name, "heun")) && sp->s_churn > 0)
        return "churn draws noise";
    if (!strcmp(name, "consistency") && sp->steps > 1) return "its steps after the first re-noise";
    return NULL;
}

dfn_status dfn_pipeline_pairs(dfn_pipeline *p, float *pairs, int n,
                              const dfn_pipeline_sample_params *sp, dfn_sample_stats *stats) {
    DFN_ASSERT(p && pairs && sp && n >= 0);
    const char *name = sp->sampler ? sp->sampler : dfn_pipeline_default_sampler(p);
    const char *why = stochastic_sampler(name, &sp->sampler_params);
    if (why)
        return dfn_set_error(DFN_ERR_ARG, "pairs need a deterministic map from noise to data; "
                                          "sampler '%s' is not one (%s): use an ODE sampler (ddim, "
                                          "dpm++2m, heun, ode-heun, flow-euler, ...)", name, why);
    if (p->ae)
        return dfn_set_error(DFN_ERR_ARG, "pairs of a latent diffusion model are not supported");
    if (sp->init || sp->mask || sp->sampler_params.strength < 1.0 || sp->sampler_params.constraint)
        return dfn_set_error(DFN_ERR_ARG, "pairs start from the prior: no inputs, mask, strength "
                                          "or constraint");
    const size_t D = dfn_model_input_size(p->model);
    float *x = dfn_malloc(((size_t)n * D + 1) * sizeof(float));
    dfn_denoiser den;
    dfn_pipeline_denoiser(p, &den, 0);
    const double std = dfn_denoiser_prior_std(&den);
    dfn_rng rng = dfn_rng_init(sp->seed ^ 0x7061697273ull); /* "pairs" */
    dfn_rng_normal(&rng, x, (size_t)n * D);
    for (size_t i = 0; i < (size_t)n * D; i++) /* the noise, then the start x_1 = std z */
        pairs[(i / D * 2 + 1) * D + i % D] = x[i], x[i] = (float)(std * x[i]);
    dfn_pipeline_sample_params q = *sp;
    q.sampler = name;
    q.sampler_params.from_x = 1;
    dfn_status st = dfn_pipeline_sample(p, x, n, &q, stats);
    if (st == DFN_OK)
        for (size_t b = 0; b < (size_t)n; b++) memcpy(pairs + b * 2 * D, x + b * D, D * sizeof(float));
    free(x);
    return st;
}

dfn_status dfn_pipeline_invert(dfn_pipeline *p, float *x, int n, const dfn_pipeline_sample_params *sp,
                               dfn_sample_stats *stats) {
    DFN_ASSERT(p && x && sp && n >= 0);
    if (p->ae)
        return dfn_set_error(DFN_ERR_ARG, "inversion: %s is a latent diffusion model; DDIM "
                                          "inversion of its latents is not offered",
                             p->path ? p->path : "the pipeline");
    if (p->process.continuous)
        return dfn_set_error(DFN_ERR_ARG, "inversion: DDIM inversion needs a discrete schedule; "
                                          "this checkpoint's process is %s",
                             dfn_sde_kind_name(p->process.sde.kind));
    const dfn_sampler_info *info;
    dfn_denoiser den;
    int *labels;
    dfn_status st = setup(p, sp, "ddim", &info, &den, &labels);
    if (st != DFN_OK) return st;
    const size_t D = dfn_pipeline_sample_size(p);
    dfn_sample_stats total = {0, 0, 0}, one;
    for (int start = 0; start < n; start += sp->batch) {
        const int b = DFN_MIN(sp->batch, n - start);
        st = dfn_ddim_invert(&den, x + (size_t)start * D, b, D, &sp->sampler_params, &one);
        if (st != DFN_OK) break;
        total.nfe += one.nfe;
        total.steps = one.steps;
    }
    free(labels);
    if (stats) *stats = total;
    return st;
}

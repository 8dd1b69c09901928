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
    /* Latent diffusion will add here the autoencoder whose decoder turns the
     * sampled latents into data, and the latent scale; dfn_pipeline_sample then
     * decodes. Until then the model works on the data itself. */
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

dfn_status dfn_pipeline_load(dfn_pipeline **out, const char *path) {
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
    const char **meta = dfn_calloc(2 * n_extra + 7, sizeof *meta);
    size_t k = 0;
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
    return st;
}

dfn_model *dfn_pipeline_model(const dfn_pipeline *p) { return p->model; }
const dfn_process_params *dfn_pipeline_process(const dfn_pipeline *p) { return &p->process; }
const dfn_schedule *dfn_pipeline_schedule(const dfn_pipeline *p) {
    return p->process.continuous ? NULL : &p->schedule;
}
dfn_prediction dfn_pipeline_prediction(const dfn_pipeline *p) { return p->prediction; }
int dfn_pipeline_sample_shape(const dfn_pipeline *p, int dims[3]) {
    return dfn_model_input_shape(p->model, dims);
}
size_t dfn_pipeline_sample_size(const dfn_pipeline *p) { return dfn_model_input_size(p->model); }
int dfn_pipeline_is_image(const dfn_pipeline *p) {
    int dims[3];
    return dfn_pipeline_sample_shape(p, dims) == 3;
}
const char *dfn_pipeline_path(const dfn_pipeline *p) { return p->path; }

/* The sampler a process is best served by when nobody says: DDIM (50 steps)
 * for discrete schedules, DPM-Solver++(2M) for VP and sub-VP, EDM's Heun for
 * VE, Euler for rectified flow. */
const char *dfn_pipeline_default_sampler(const dfn_pipeline *p) {
    if (!p->process.continuous) return "ddim";
    switch (p->process.sde.kind) {
    case DFN_SDE_VE: return "heun";
    case DFN_SDE_FLOW: return "flow-euler";
    default: return "dpm++2m";
    }
}

void dfn_pipeline_denoiser(dfn_pipeline *p, dfn_denoiser *d, int max_batch) {
    DFN_ASSERT(p && d);
    const int cont = p->process.continuous;
    dfn_model_denoiser(d, p->model, p->prediction, cont ? NULL : &p->schedule,
                       cont ? &p->process.sde : NULL, max_batch,
                       cont ? p->process.time_scale : 1.0);
}

dfn_pipeline_sample_params dfn_pipeline_sample_params_init(const dfn_pipeline *p) {
    DFN_ASSERT(p);
    dfn_pipeline_sample_params sp;
    memset(&sp, 0, sizeof sp);
    sp.sampler = NULL;
    sp.sampler_params = dfn_sampler_params_init();
    sp.sampler_params.clip_x0 = dfn_pipeline_is_image(p); /* vectors are not scaled to [-1, 1] */
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
    const int K = dfn_model_get_config(p->model)->num_classes;
    const int KC = sp->classifier ? dfn_model_get_config(sp->classifier)->num_classes : 0;
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
    const size_t D = dfn_pipeline_sample_size(p);
    dfn_sampler_params spp = sp->sampler_params;
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
    /* each sampler stops at the first NaN or Inf it leaves, naming it (dfn_sampler_step) */
    for (size_t j = lo; j < hi && st == DFN_OK; j++) {
        const int start = (int)j * sp->batch, b = DFN_MIN(sp->batch, n - start);
        float *xb = x + (size_t)start * D;
        if (sp->init) {
            if (xb != sp->init + (size_t)start * D) memcpy(xb, sp->init + (size_t)start * D, (size_t)b * D * sizeof(float));
            rc.known = sp->init + (size_t)start * D;
            rc.mask = sp->mask_per_sample && sp->mask ? sp->mask + (size_t)start * D : sp->mask;
        }
        /* batch j draws from block j * 2^40 on: its numbers do not depend on
         * which process runs it; the known part's noise has a stream of its own,
         * so that the sampler's draws are those of the same run without a mask */
        rng = dfn_rng_init(sp->seed);
        known_rng = dfn_rng_init(sp->seed ^ 0x6b6e6f776e5f7067ull);
        rng.counter = known_rng.counter = (uint64_t)j << 40;
        st = info->fn(&den, xb, b, D, &spp, &rng, &one[j]);
    }
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

dfn_status dfn_pipeline_invert(dfn_pipeline *p, float *x, int n, const dfn_pipeline_sample_params *sp,
                               dfn_sample_stats *stats) {
    DFN_ASSERT(p && x && sp && n >= 0);
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

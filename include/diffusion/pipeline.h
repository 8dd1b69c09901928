/* diffusion/pipeline.h - a trained diffusion model ready to use: the network
 * with its (EMA) weights, the noise process it was trained on, what it
 * predicts, and the shape of its samples - everything a checkpoint written by
 * dfn_train holds; for a latent diffusion model also the autoencoder whose
 * decoder turns its samples into images (Rombach et al. 2022: sampling,
 * SDEdit and inpainting run on its latents, the results come out decoded).
 * Load one, sample with any sampler, write the pictures:
 *
 *     dfn_pipeline *pipe;
 *     if (dfn_pipeline_load(&pipe, "runs/fmnist/model.safetensors") != DFN_OK) {
 *         fprintf(stderr, "%s\n", dfn_last_error());
 *         return 1;
 *     }
 *     dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(pipe);
 *     sp.sampler = "dpm++2m";
 *     sp.sampler_params.steps = 20;
 *     int dims[3], n = 64;
 *     dfn_pipeline_sample_shape(pipe, dims);                  // {1, 28, 28}
 *     float *x = malloc(n * dfn_pipeline_sample_size(pipe) * sizeof *x);
 *     if (dfn_pipeline_sample(pipe, x, n, &sp, NULL) == DFN_OK)
 *         dfn_png_write_grid("samples.png", x, n, dims[0], dims[1], dims[2], 8, 2);
 *     free(x);
 *     dfn_pipeline_free(pipe);
 *
 * (examples/sample_png.c is that program.) The pipeline is also what the
 * trainer's previews, `diffusion sample` and `diffusion eval` use.
 *
 *   src/pipeline/pipeline.c        load, save, the sample loop, inversion
 *   src/pipeline/model_denoiser.c  a dfn_model as a dfn_denoiser
 *   src/pipeline/classifier_guide.c  a classifier of noisy images as a guide
 *
 * Control (the same loop): classifier guidance (sp.classifier), SDEdit
 * (sp.init with sp.sampler_params.strength < 1), inpainting (sp.init and
 * sp.mask; sampler "repaint" to resample), DDIM inversion (dfn_pipeline_invert):
 *
 *     dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(pipe);
 *     sp.init = images;                        // n inputs, each of sample size
 *     sp.mask = mask;                          // 1 keep, 0 generate (one for all)
 *     sp.sampler = "repaint";
 *     dfn_pipeline_sample(pipe, out, n, &sp, NULL);
 */
#ifndef DIFFUSION_PIPELINE_H
#define DIFFUSION_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/core.h"
#include "diffusion/models.h"
#include "diffusion/process.h"
#include "diffusion/sample.h"

DFN_BEGIN_DECLS

typedef struct dfn_pipeline dfn_pipeline;

/* A pipeline over `model` (a unet or mlp; borrowed: it must outlive the
 * pipeline, which never frees it), trained on `process` (copied; a discrete
 * process's schedule is built here) to predict `prediction`. DFN_ERR_ARG for a
 * model that is not a denoiser; the process's own errors (a bad schedule, a beta
 * file that cannot be read). */
dfn_status dfn_pipeline_new(dfn_pipeline **out, dfn_model *model,
                            const dfn_process_params *process, dfn_prediction prediction);
/* Loads a checkpoint written by dfn_train or dfn_pipeline_save: the model (owned
 * by the pipeline) and the metadata "process" and "prediction" (older files:
 * the "prediction" of "objective"). A checkpoint without them is taken as
 * DDPM's (discrete linear schedule, T = 1000, eps prediction), with a note on
 * stderr. Errors as dfn_model_load's, plus bad process or prediction metadata
 * (DFN_ERR_FORMAT naming the file), or a model that is not a denoiser (a
 * classifier: DFN_ERR_ARG). */
dfn_status dfn_pipeline_load(dfn_pipeline **out, const char *path);
/* dfn_pipeline_load, with a latent diffusion model's autoencoder read from
 * ae_path instead of the file its metadata names (NULL: that file; a relative
 * name is taken beside the checkpoint). A latent model's checkpoint records
 * "autoencoder" (the file), "autoencoder_fingerprint" (a hash of its weights)
 * and "latent_scale". Errors (each names the files): the autoencoder cannot be
 * read (the message says to give it), it is another autoencoder than the
 * model was trained on (the fingerprints differ), ae_path for a model that is
 * not a latent one. */
dfn_status dfn_pipeline_load_with_autoencoder(dfn_pipeline **out, const char *path,
                                              const char *ae_path);
/* Latent diffusion for dfn_pipeline_new's pipelines: the model works on the
 * latents of `ae` (borrowed; an autoencoder with a measured latent scale, whose
 * latent shape the model takes), and sampling decodes them; `file` is the name
 * saved checkpoints record (relative names are read beside the checkpoint;
 * NULL: the absolute path of the file ae was loaded from). DFN_ERR_ARG naming
 * what does not fit. Inpainting of a latent model keeps the known part in the
 * latents (the mask averaged over each f x f block): the kept pixels come out
 * as the autoencoder's reconstruction of them. x0 clipping, dynamic
 * thresholding, a start in x (from_x), DDIM inversion and classifier guidance
 * are refused for latent models. */
dfn_status dfn_pipeline_set_autoencoder(dfn_pipeline *pipe, dfn_model *ae, const char *file);
/* The autoencoder of a latent pipeline (NULL for one on the data itself) and
 * its latent scale (0 without one). */
dfn_model *dfn_pipeline_autoencoder(const dfn_pipeline *pipe);
double dfn_pipeline_latent_scale(const dfn_pipeline *pipe);
/* dfn_model_save with the pipeline's metadata ("process", "prediction", and the
 * "objective" of a loaded checkpoint) and the caller's extra (key, value) pairs
 * (NULL-terminated, or NULL). */
dfn_status dfn_pipeline_save(const dfn_pipeline *pipe, const char *path,
                             const char *const *extra_metadata);
/* Frees the pipeline, and its model if it was loaded by dfn_pipeline_load. */
void dfn_pipeline_free(dfn_pipeline *pipe);

dfn_model *dfn_pipeline_model(const dfn_pipeline *pipe);
const dfn_process_params *dfn_pipeline_process(const dfn_pipeline *pipe);
/* The schedule of a discrete process (NULL for a continuous one). */
const dfn_schedule *dfn_pipeline_schedule(const dfn_pipeline *pipe);
/* What the network predicts (eps, x0, v, score, flow). */
dfn_prediction dfn_pipeline_prediction(const dfn_pipeline *pipe);
/* One sample: ndim 1 {D} or 3 {C, H, W} (the return value is ndim), and its
 * floats. Images are in [-1, 1] (x0 clipping is on by default for them, but
 * for latent models, whose latents are not in [-1, 1]: their decoded images
 * are clamped to it). For a latent model these are the decoded images' shape
 * and size; the model's own input is the latents'. */
int dfn_pipeline_sample_shape(const dfn_pipeline *pipe, int dims[3]);
size_t dfn_pipeline_sample_size(const dfn_pipeline *pipe);
int dfn_pipeline_is_image(const dfn_pipeline *pipe);
/* The file it was loaded from (NULL for dfn_pipeline_new). */
const char *dfn_pipeline_path(const dfn_pipeline *pipe);
/* "dpm++2m" for a discrete schedule, VP and sub-VP, "heun" (EDM) for VE,
 * "flow-euler" for rectified flow: what sampling uses unless told. */
const char *dfn_pipeline_default_sampler(const dfn_pipeline *pipe);

/* A denoiser over the pipeline's network: dfn_model_forward in eval mode,
 * timesteps as floats (a discrete schedule's step index, fractional between
 * steps; for a continuous process time_scale * t, as the network was trained),
 * in chunks of max_batch rows (<= 0: all); labels and guidance unset, the null
 * label the model's num_classes; with a vjp (for likelihoods) through the
 * network's backward. The pipeline must outlive d. */
void dfn_pipeline_denoiser(dfn_pipeline *pipe, dfn_denoiser *d, int max_batch);

/* A denoiser over any denoising model, for those who build their own: as
 * dfn_pipeline_denoiser, with the process given as one of schedule and sde. */
void dfn_model_denoiser(dfn_denoiser *d, dfn_model *model, dfn_prediction kind,
                        const dfn_schedule *schedule, const dfn_sde *sde, int max_batch,
                        double time_scale);

/* Consistency models (Song et al. 2023; diffusion/train.h trains them): the
 * consistency function f = c_x x + c_d D of a network whose prediction `kind`
 * gives D, its x0 estimate (process.h's dfn_consistency), as a denoiser of kind
 * x0 (no vjp). The struct must outlive d. */
typedef struct {
    dfn_model *model;   /* NULL: none */
    dfn_prediction kind;
    dfn_consistency c;
} dfn_consistency_model;
void dfn_consistency_denoiser(dfn_denoiser *d, dfn_consistency_model *cm,
                              const dfn_schedule *schedule, const dfn_sde *sde, int max_batch,
                              double time_scale);
/* Makes the pipeline a consistency model's (c copied; NULL: a diffusion model
 * again): its denoiser is then f, the only sampler it takes is "consistency"
 * (its default; sampling with another, or "consistency" with a diffusion model,
 * is refused with DFN_ERR_ARG), which samples the levels in c unless told, and
 * checkpoints record "consistency" (dfn_consistency_to_json). DFN_ERR_ARG for
 * levels out of order or a latent pipeline. */
dfn_status dfn_pipeline_set_consistency(dfn_pipeline *pipe, const dfn_consistency *c);
/* The levels of a consistency model's pipeline; NULL for a diffusion model. */
const dfn_consistency *dfn_pipeline_consistency(const dfn_pipeline *pipe);

typedef struct {
    const char *sampler;                /* a name of dfn_sampler_find; NULL: the default */
    dfn_sampler_params sampler_params;  /* steps, eta, spacing, ...; and the progress
                                           callback, called per batch */
    int batch;                          /* samples per sampler run [64] */
    int label;                          /* class of every sample; -1: unconditional [-1] */
    double guidance;                    /* classifier-free guidance scale, with a label [1] */
    uint64_t seed;                      /* [0] */
    /* classifier guidance, with a label: a classifier of noisy images
     * (dfn_pipeline_load_classifier; borrowed) and its scale s [NULL, 0] */
    dfn_model *classifier;
    double classifier_scale;
    /* inputs (n, sample size) of SDEdit (sampler_params.strength < 1: each output
     * starts from its input noised) and of inpainting (with mask), or NULL */
    const float *init;
    /* inpainting: 1 where init is kept, 0 where it is generated (fractions blend);
     * one mask of sample size for every input, or (n, sample size) when
     * mask_per_sample; the known part is replaced, at the state's noise level,
     * after every step (dfn_constraint_replace; so sampler_params.constraint
     * must then be NULL) [NULL] */
    const float *mask;
    int mask_per_sample;
} dfn_pipeline_sample_params;

/* Defaults for this pipeline: its default sampler, x0 clipping on for images
 * and off for vectors, the rest as dfn_sampler_params_init. */
dfn_pipeline_sample_params dfn_pipeline_sample_params_init(const dfn_pipeline *pipe);
/* n samples into x (n, sample size): batches of sp->batch, batch j drawing
 * from the generator seeded with sp->seed at block j * 2^40 on, so the result
 * depends on n, batch and seed, not on threads or processes (under MPI the
 * processes take contiguous blocks of batches and every one ends with all n).
 * stats (or NULL) receives the total NFE and the steps. Errors (DFN_ERR_ARG,
 * nothing written to x beyond what was drawn):
 * an unknown sampler, one that does not fit the process (the message names
 * those that do), a label out of range (of the model, or of the classifier
 * when there is one) or on an unconditional model without a classifier,
 * guidance other than 1 without a label, a classifier without a label, a mask
 * or a strength below 1 without init, init with neither, a mask with another
 * constraint; the sampler's own errors (a strength out of (0, 1], repaint's
 * jumps). With init, each output starts as a copy of its input (x may be init). */
dfn_status dfn_pipeline_sample(dfn_pipeline *pipe, float *x, int n,
                               const dfn_pipeline_sample_params *sp, dfn_sample_stats *stats);

/* Reflow's pairs (Liu et al. 2023, "Flow straight and fast", section 2.3):
 * pairs (n, 2 x sample size) receives rows (x0, z): z ~ N(0, I) from sp->seed,
 * and x0 what the sampler of sp (deterministic: an ODE sampler, DDIM with
 * eta 0, EDM without churn, 1-step consistency) makes of the start
 * prior_std z. A rectified flow trained on them (dfn_train_params.paired_noise)
 * is the 2-rectified flow. DFN_ERR_ARG for a sampler that draws noise (naming
 * why), a latent model, inputs or a mask; the sampler's own errors. */
dfn_status dfn_pipeline_pairs(dfn_pipeline *pipe, float *pairs, int n,
                              const dfn_pipeline_sample_params *sp, dfn_sample_stats *stats);

/* DDIM inversion (Song et al. 2021 sec. 4.3): x (n, sample size) in data, out
 * the x_T from which DDIM (eta 0, the same steps and spacing of sp) draws them
 * back; batches of sp->batch; a label and classifier-free guidance as sp says.
 * DFN_ERR_ARG for a continuous process (DDIM needs a discrete schedule). */
dfn_status dfn_pipeline_invert(dfn_pipeline *pipe, float *x, int n,
                               const dfn_pipeline_sample_params *sp, dfn_sample_stats *stats);

/* Loads a classifier of noisy images (diffusion train-classifier --noisy) for
 * classifier guidance of this pipeline. DFN_ERR_ARG for a clean-image
 * classifier or another kind, images of another shape, or another noise
 * process than the pipeline's (each message names the file); the loader's own
 * errors. The caller frees *out with dfn_model_free. */
dfn_status dfn_pipeline_load_classifier(const dfn_pipeline *pipe, dfn_model **out,
                                        const char *path);
/* grad (batch, dim) = d/dx log softmax(classifier(x, t))_y: the dfn_guide_fn of
 * classifier guidance (ctx: the classifier). */
void dfn_classifier_guide(void *ctx, float *grad, const float *x, double t, double alpha,
                          double sigma, const int *y, int batch, size_t dim);

DFN_END_DECLS

#endif

/* train.h - the training loop's internal pieces: what a batch computes for
 * each kind of model (a task), and what a run leaves on disk. Private to
 * src/train. */
#ifndef DFN_TRAIN_H
#define DFN_TRAIN_H

#include <stdio.h>

#include "core/core.h"
#include "diffusion/eval.h"
#include "diffusion/pipeline.h"
#include "diffusion/train.h"

/* ---------------------------------------------------------------- tasks */

/* What one batch of training computes, for one kind of model. The loop
 * (trainer.c) owns everything else: batches, optimizer, EMA, validation,
 * checkpoints, resume, log, progress. */
typedef struct {
    const char *name;        /* "diffusion", "classifier" */
    const char *metric_name; /* an extra validation column of log.csv, or NULL */
    /* Checks the data's labels against the model and settings before anything
     * is built (the loop has checked the shape): DFN_ERR_ARG naming `what`. */
    dfn_status (*check)(const dfn_model *m, const dfn_dataset *ds, const dfn_train_params *p,
                        const char *what);
    /* Per-run state for batches of B: buffers, a schedule; DFN_OK or an error. */
    dfn_status (*begin)(void **state, dfn_model *m, const dfn_train_params *p, int B);
    void (*end)(void *state);
    /* The loss of x (B, input size) with labels y (or NULL). train = 1: dropout
     * and label drops from rng, then the backward pass with d loss / d output
     * scaled by grad_scale (gradient accumulation); 0: evaluation (validation)
     * with numbers from rng. *metric (may be NULL) receives the batch's metric
     * sum (e.g. correct answers), if the task has one. */
    double (*batch)(void *state, dfn_model *m, const float *x, const int *y, int B, int train,
                    dfn_rng *rng, float grad_scale, double *metric);
    /* The run's description for config.json (a JSON object's members, e.g.
     * "process" and "objective"), added to `run` (a cJSON object), or NULL. */
    void (*describe)(void *state, void *run);
    /* Writes the model (its weights as they are now) to path with the extra
     * (key, value) pairs (NULL-terminated) and the task's own metadata. */
    dfn_status (*save)(void *state, dfn_model *m, const char *path, const char *const *extra);
    /* Sample previews into "<prefix>.png", or NULL when the task has none. */
    dfn_status (*preview)(void *state, dfn_model *m, const dfn_dataset *data, int count,
                          uint64_t seed, const char *prefix);
    /* At the end of a completed run, with the final weights in the model and
     * before model.safetensors is written: what the model records about the
     * training data (the autoencoder's latent scale), or NULL. */
    void (*finish)(void *state, dfn_model *m, const dfn_dataset *train);
    /* Before the batches of step k (1-based; the model holds the weights after
     * step k - 1): per-step work of the task (a consistency model's target
     * network and its curriculum), or NULL. */
    void (*start_step)(void *state, dfn_model *m, long k);
    /* Weights the task keeps beside the model's (as many; a consistency
     * distillation's target network), saved in latest.safetensors under
     * *prefix and restored on resume; NULL when it keeps none. */
    float *(*kept_weights)(void *state, const char **prefix);
    /* count samples of the model as its weights are now into out (count x the
     * data's sample size), from the noise of seed, with `sampler` (NULL: the
     * pipeline's default) in `steps`: what the FID monitor scores; NULL when
     * the task makes no samples. */
    dfn_status (*draw)(void *state, dfn_model *m, int count, uint64_t seed, const char *sampler,
                       int steps, float *out);
} dfn_train_task;

extern const dfn_train_task dfn_diffusion_task, dfn_classifier_task, dfn_autoencoder_task,
    dfn_consistency_task;

/* The class labels a denoiser's batch trains on (diffusion_task.c): none (NULL)
 * for a model without classes; else labels[b], the null class K for unlabelled
 * data, and each dropped to K with probability p_uncond (classifier-free
 * guidance; B uniforms from rng into scratch, only when p_uncond > 0). */
const int *dfn_train_labels(int *y, const int *labels, int B, int K, double p_uncond, float *scratch,
                            dfn_rng *rng);

/* A denoiser's preview (diffusion_task.c): count samples of the pipeline from
 * the noise of `seed` (50 steps of its default sampler, 30 for VE, 2 for a
 * consistency model): an image grid, a scatter over the data (2-D vectors) or
 * a line plot, into "<prefix>.png". */
dfn_status dfn_train_preview_pipeline(dfn_pipeline *pipe, const dfn_train_params *p,
                                      const dfn_dataset *data, int count, uint64_t seed,
                                      const char *prefix);

/* The pipeline's count samples for the FID monitor (diffusion_task.c), in
 * batches of 250: dfn_train_task.draw of the tasks that hold a pipeline. */
dfn_status dfn_train_draw_pipeline(dfn_pipeline *pipe, int count, uint64_t seed, const char *sampler,
                                   int steps, float *out);

/* ---------------------------------------------------------------- FID monitor */

/* FID during training (fid_monitor.c): the training images' features in the
 * classifier's space, extracted once; every fid_every steps the task draws
 * fid_samples samples from the EMA weights (the same noise each time) and
 * their FID against them is logged; the floor is the FID of as many held-out
 * images (the first of the validation set) against the same features. */
typedef struct {
    dfn_feature_ref *ref;
    dfn_dataset *held; /* the floor's images (NULL: no validation set that large) */
    double floor;      /* NaN without held-out images */
    float *x;          /* (fid_samples, D) the samples */
    int n, dims[3];
} dfn_fid_monitor;

/* Nothing to do (returns DFN_OK, m->ref NULL) unless p->fid_every > 0. */
dfn_status dfn_fid_monitor_begin(dfn_fid_monitor *m, const dfn_train_params *p,
                                 const dfn_train_task *task, const dfn_dataset *train,
                                 const dfn_dataset *val);
dfn_status dfn_fid_monitor_measure(dfn_fid_monitor *m, const dfn_train_params *p,
                                   const dfn_train_task *task, void *task_state, dfn_model *model,
                                   double *fid);
void dfn_fid_monitor_end(dfn_fid_monitor *m);

/* Latent diffusion: the n samples of ds encoded by the autoencoder into their
 * posterior means times its latent scale (a dataset of latents, labels kept).
 * The latents take z / (f^2 C) of the images' memory (a quarter for f = 4,
 * z = 4, gray images), so they are encoded once, in batches, before training. */
#define DFN_LATENT_SCALE_IMAGES 10000 /* training images the latent scale is measured on */
dfn_status dfn_encode_dataset(dfn_dataset **out, dfn_model *ae, double scale,
                              const dfn_dataset *ds);

/* Learning rate and EMA decay at step k (1-based). */
double dfn_train_lr(const dfn_train_params *p, long k);
float dfn_train_ema_decay(const dfn_train_params *p, long k);

/* ---------------------------------------------------------------- the run directory */

/* The run's config.json: {"model", the task's members, "train"} (malloc'ed). */
char *dfn_train_run_json(const dfn_train_params *p, const dfn_model *model,
                         const dfn_train_task *task, void *task_state);
/* 0 if two config.json texts describe the same run (everything equal except
 * train.steps, which a resumed run may raise); else 1 and the first difference
 * in what ("train.lr is 0.001 in the run, 0.002 now"). */
int dfn_run_configs_diff(const char *run, const char *now, char *what, size_t size);

/* Opens log.csv for appending. resume_step < 0: a new log with its header
 * (step,loss,val_loss,lr,grad_norm,img_per_s,seconds[,val_metric][,fid]);
 * otherwise the rows after resume_step (written after the last checkpoint of
 * an interrupted run) are dropped first, and the header is the run's own: a
 * run resumed with fid = 1 whose log has no fid column is refused
 * (DFN_ERR_ARG), *has_fid says whether rows carry the column. */
dfn_status dfn_train_open_log(FILE **out, const char *path, long resume_step,
                              const char *metric_name, int fid, int *has_fid);
/* One row of log.csv; NaN validation values and FIDs are left empty. */
void dfn_train_log_row(FILE *log, long step, double loss, double val_loss, double lr,
                       double grad_norm, double img_per_s, double seconds, int has_metric,
                       double val_metric, int has_fid, double fid);
/* loss.png from log.csv: training loss, validation loss and (on the same log
 * axis) the FID against step. */
/* meta (room for cap entries) = key, value, then the (key, value) pairs of
 * extra (NULL-terminated, or NULL) as far as they fit, then NULL: the metadata
 * a task's save adds to the trainer's. */
void dfn_train_metadata(const char **meta, int cap, const char *key, const char *value,
                        const char *const *extra);
dfn_status dfn_train_plot_log(const char *csv_path, const char *png_path);

#endif

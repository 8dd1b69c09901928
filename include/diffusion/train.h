/* diffusion/train.h - training: the optimizer (AdamW, clipping, the learning-
 * rate schedule, EMA), the diffusion objectives (targets, weightings, losses)
 * and the one training loop every network goes through.
 *   src/train/optim.c      AdamW, gradient clipping, EMA, the LR schedule
 *   src/train/objective.c  training inputs, targets, weights and losses
 *   src/train/trainer.c    the loop: steps, validation, checkpoints, resume, log
 *   src/train/diffusion_task.c classifier_task.c  what one batch computes */
#ifndef DIFFUSION_TRAIN_H
#define DIFFUSION_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/core.h"
#include "diffusion/data.h"
#include "diffusion/models.h"
#include "diffusion/process.h"
#include "diffusion/sample.h"

DFN_BEGIN_DECLS

/* ---------------------------------------------------------------- optimisation */

/* Scalars are doubles, as PyTorch's are Python floats: 1 - beta2 from a float
 * 0.999 would be off by 1.3e-5 relative. */
typedef struct {
    double lr;           /* 1e-3 */
    double beta1, beta2; /* 0.9, 0.999 */
    double eps;          /* 1e-8 */
    double weight_decay; /* 0.01 (decoupled, Loshchilov & Hutter 2019) */
} dfn_adamw_params;

dfn_adamw_params dfn_adamw_params_init(void);
/* One AdamW step (as torch.optim.AdamW): step counts from 1; m and v are the
 * moment arrays, zero before the first step; all arrays have n elements. */
void dfn_adamw_step(float *params, const float *grads, float *m, float *v, size_t n,
                    long step, const dfn_adamw_params *p);
/* The learning rate at step k (1-based): linear warm-up to lr over `warmup`
 * steps, then cosine decay to lr * min_ratio at step `steps`. */
double dfn_lr_warmup_cosine(double lr, long warmup, long steps, double min_ratio, long k);
/* Global L2 norm of the gradients (computed in double, fixed summation order). */
double dfn_grad_norm(const float *grads, size_t n);
/* Scales grads so that their norm is at most max_norm (as torch's
 * clip_grad_norm_); returns the norm before clipping. */
double dfn_clip_grad_norm(float *grads, size_t n, double max_norm);
/* ema = decay * ema + (1 - decay) * params. */
void dfn_ema_update(float *ema, const float *params, size_t n, float decay);

/* ---------------------------------------------------------------- objectives */

typedef enum {
    DFN_LOSS_L2,    /* "l2" (also "mse"): r^2 */
    DFN_LOSS_L1,    /* "l1": |r| */
    DFN_LOSS_HUBER, /* "huber": r^2/2 if |r| < delta, else delta (|r| - delta/2), as
                       torch.nn.HuberLoss (smooth_l1 with beta = huber / delta) */
    DFN_LOSS_COUNT
} dfn_loss_kind;

/* Per-sample loss weights. Each is a weight on the loss in the space of the
 * chosen prediction, derived for L2:
 *   uniform  1 (L_simple for eps, Ho et al. 2020 eq. 14)
 *   vlb      the variational bound's weight (discrete schedules only): for eps
 *            lambda_t = b_t^2 / (2 b~_t a_t (1 - abar_t)) (Ho et al. 2020 eq. 12
 *            against eq. 14), moved to other predictions with
 *            dfn_prediction_x0_gain. At t = 1, where b~_1 = 0, b~ is the clipped
 *            exp(posterior_log_variance_clipped) = b~_2, as improved-diffusion
 *            clips it (the bound's t = 1 term is really the decoder NLL).
 *   min-snr  min(SNR, gamma) in x0 space (Hang et al. 2023 section 3): eps
 *            min(SNR, gamma)/SNR, x0 min(SNR, gamma), v (VP)
 *            min(SNR, gamma)/(SNR + 1); SNR = alpha^2/sigma^2.
 *   sigma2   sigma^2 (Song & Ermon 2019 section 4.2, eqs. 5-6: lambda(sigma) =
 *            sigma^2), meant for score prediction, where it equals uniform
 *            weight on eps. */
typedef enum {
    DFN_WEIGHT_UNIFORM, /* "uniform" */
    DFN_WEIGHT_VLB,     /* "vlb" */
    DFN_WEIGHT_MIN_SNR, /* "min-snr" */
    DFN_WEIGHT_SIGMA2,  /* "sigma2" */
    DFN_WEIGHT_COUNT
} dfn_weighting;

const char *dfn_loss_kind_name(dfn_loss_kind kind);
int dfn_loss_kind_from_name(const char *name);  /* -1 + message for unknown names */
const char *dfn_weighting_name(dfn_weighting w);
int dfn_weighting_from_name(const char *name);  /* -1 + message for unknown names */

/* A training objective. Recipes:
 *   DDPM           prediction eps, uniform (on a dfn_schedule)
 *   x0 / v         prediction x0 or v; min-snr with gamma 5 is Hang et al.'s
 *   score SDE      prediction score, sigma2 (score_sde's likelihood-free
 *                  weighting: loss of eps) or prediction eps, uniform, on a dfn_sde
 *   NCSN           sigmas from dfn_sigmas_geometric, labels from
 *                  dfn_sample_timesteps, alpha = 1, sigma = sigmas[label]:
 *                  prediction score with sigma2 (the network outputs a plain
 *                  score, Song & Ermon 2019 eqs. 5-6), or NCSNv2's sigma-scaled
 *                  output (net = sigma * score = -eps): prediction eps with
 *                  uniform, the same loss with the output's sign flipped.
 *   rectified flow a dfn_sde of kind flow, t from dfn_sample_times(0, 1),
 *                  prediction flow, uniform (Liu et al. 2023 eq. 1).
 * Losses are means over all batch * dim elements of weight[b] * loss(r); NCSN's
 * and score_sde's sums over dimensions (and NCSN's 1/2) differ by a constant
 * factor only. */
typedef struct {
    dfn_prediction prediction; /* eps */
    dfn_loss_kind loss;        /* l2 */
    double huber_delta;        /* 1.0 */
    dfn_weighting weighting;   /* uniform */
    double min_snr_gamma;      /* 5.0 */
} dfn_objective;

dfn_objective dfn_objective_init(void);
/* DFN_ERR_ARG for huber_delta <= 0, min_snr_gamma <= 0, or vlb weighting on a
 * continuous process (discrete = 0). */
dfn_status dfn_objective_validate(const dfn_objective *obj, int discrete);

/* Training times from the seeded generator (dfn_rng_uniform; one uniform per
 * sample, rng advanced): integer steps t[b] = floor(u T) in 0..T-1, and
 * continuous t[b] = t_min + u (t_max - t_min) in (t_min, t_max) (score_sde uses
 * t_min = 1e-5, t_max = 1; rectified flow 0 and 1). */
void dfn_sample_timesteps(int *t, int batch, int T, dfn_rng *rng);
void dfn_sample_times(float *t, int batch, double t_min, double t_max, dfn_rng *rng);

/* The weight of one sample. `_discrete` takes a schedule step index and serves
 * every weighting; the other takes alpha, sigma and aborts on vlb. */
double dfn_objective_weight(const dfn_objective *obj, double alpha, double sigma);
double dfn_objective_weight_discrete(const dfn_objective *obj, const dfn_schedule *s, int i);

/* Network input x_t = alpha x0 + sigma eps, the target for obj->prediction and
 * the per-sample weight, for x0, eps of shape (batch, dim). x_t and target:
 * (batch, dim); weight: (batch), or NULL if not wanted. Three ways to give the
 * noise level of sample b: per-sample alpha[b], sigma[b]; a schedule step index
 * t[b]; a process time t[b]. */
void dfn_objective_batch(float *x_t, float *target, float *weight, const dfn_objective *obj,
                         const float *x0, const float *eps, const double *alpha,
                         const double *sigma, int batch, size_t dim);
void dfn_objective_batch_discrete(float *x_t, float *target, float *weight,
                                  const dfn_objective *obj, const dfn_schedule *s,
                                  const float *x0, const float *eps, const int *t, int batch,
                                  size_t dim);
void dfn_objective_batch_sde(float *x_t, float *target, float *weight, const dfn_objective *obj,
                             const dfn_sde *sde, const float *x0, const float *eps,
                             const float *t, int batch, size_t dim);

/* loss = 1/(batch dim) sum_b weight[b] sum_d loss(pred[b,d] - target[b,d]),
 * accumulated in double in a fixed order; weight NULL means 1. If dpred is not
 * NULL it receives d loss / d pred (overwritten), for the model's backward. The
 * L1 and Huber derivatives at a kink are torch's (sign(0) = 0). delta is used by
 * Huber only. */
double dfn_loss(float *dpred, dfn_loss_kind kind, double delta, const float *pred,
                const float *target, const float *weight, int batch, size_t dim);
/* dfn_loss with obj->loss and obj->huber_delta. */
double dfn_objective_loss(float *dpred, const dfn_objective *obj, const float *pred,
                          const float *target, const float *weight, int batch, size_t dim);

/* The classifier's loss, the mean softmax cross-entropy
 * -1/B sum_b log softmax(logits_b)[y_b], computed in double with the max
 * subtracted; dlogits (B, classes) gets its gradient (softmax - onehot) / B
 * (overwritten) unless NULL. */
double dfn_softmax_cross_entropy(float *dlogits, const float *logits, const int *labels,
                                 int batch, int classes);

/* The autoencoder's KL term: KL(N(mean, exp(logvar)) || N(0, I)) =
 * 1/2 sum (mean^2 + exp(logvar) - 1 - logvar) over the n values of each of the
 * batch rows, averaged over the batch (in double); dmean and dlogvar (or NULL)
 * receive scale times its gradient (overwritten). */
double dfn_kl_standard_normal(float *dmean, float *dlogvar, const float *mean,
                              const float *logvar, int batch, size_t n, double scale);

/* ---------------------------------------------------------------- the training loop */

/* Objective <-> JSON (checkpoint metadata "objective"). */
char *dfn_objective_to_json(const dfn_objective *obj);
dfn_status dfn_objective_from_json(dfn_objective *obj, const char *json);

/* Consistency models (Song et al. 2023; Song & Dhariwal 2023): a denoiser
 * trained so that its consistency function f = c_x x + c_d D (process.h's
 * dfn_consistency, D the network's x0 estimate) gives the same x0 at adjacent
 * levels s_n < s_n+1 of a Karras ladder (rho 7) from sigma_min to sigma_max:
 * loss = lambda(n) d(f_theta(x_n+1, s_n+1), f_theta-(x_n, s_n)), with
 *   distillation (Song et al. 2023 alg. 2): x_n+1 = alpha (x0 + s_n+1 z), x_n one
 *               ODE step of the teacher from it (DDIM, i.e. Euler in s, or Heun);
 *               N levels, n uniform, lambda 1; the target network theta- an EMA
 *               of the weights with rate target_ema (0: the weights themselves);
 *   training    (Song & Dhariwal 2023, improved CT): x_n = alpha (x0 + s_n z) with
 *               the same z; N(k) levels on the curriculum s0, s1
 *               (dfn_consistency_levels), n from the lognormal proposal,
 *               lambda = 1/(s_n+1 - s_n), theta- = the weights, no EMA target.
 * d is pseudo-Huber sqrt(||r||^2 + c^2) - c with c = 0.00054 sqrt(dim) (Song &
 * Dhariwal 2023 section 3.3) or the squared L2 distance's mean over dimensions;
 * the target network runs without gradient, with the student's dropout masks. */
typedef enum {
    DFN_CM_NONE,    /* a diffusion model */
    DFN_CM_DISTILL, /* "cd": consistency distillation from a teacher */
    DFN_CM_TRAIN,   /* "ct": consistency training, no teacher */
} dfn_cm_method;

typedef struct {
    dfn_cm_method method;  /* [none] */
    dfn_denoiser *teacher; /* distillation: the teacher (borrowed), on the model's
                              process: dfn_pipeline_denoiser of a checkpoint, or an
                              exact mixture denoiser; its labels are set per call [NULL] */
    const char *teacher_name; /* what config.json records of the teacher (a resumed run
                                 must be given the same) [NULL] */
    int heun;              /* distillation: the teacher's step is Heun (2 evaluations)
                              instead of DDIM [0] */
    int levels;            /* distillation: N [18] */
    int s0, s1;            /* training: the curriculum [10, 1280] */
    double target_ema;     /* distillation: mu [0.95] */
    int pseudo_huber;      /* 1 pseudo-Huber, 0 squared L2; -1: pseudo-Huber for training,
                              L2 for distillation [-1] */
    double p_mean, p_std;  /* training: the lognormal proposal [-1.1, 2] */
    double sigma_max;      /* the top level, at most the process's [80] */
    double rho;            /* the ladder's [7] */
} dfn_consistency_params;

const char *dfn_cm_method_name(dfn_cm_method m); /* "none", "cd", "ct" */
int dfn_cm_method_from_name(const char *name);   /* -1 + message for unknown names */

/* One loop trains every kind of model; what a batch computes follows from the
 * kind:
 *   unet, mlp   the diffusion objective (Ho et al. 2020 alg. 1): draw t and
 *               noise, regress `objective`'s target at x_t on `process`;
 *               labels (models with classes) dropped with p_uncond for
 *               classifier-free guidance;
 *               with an autoencoder (latent diffusion, Rombach et al. 2022)
 *               the model learns the autoencoder's scaled latents of the data
 *               (dfn_autoencoder_scale; encoded once before training) and its
 *               checkpoint names the autoencoder, so that sampling decodes;
 *   classifier  softmax cross-entropy on the labels (the data must have them);
 *               validation also reports the accuracy;
 *   autoencoder reconstruction error (recon_loss) + kl_weight x the KL term
 *               (see src/train/autoencoder_task.c); validation reports the
 *               PSNR of the reconstructions; a completed run measures the
 *               latent scale on the training data into model.safetensors.
 * Defaults in brackets are those of dfn_train_params_init, which suit the
 * denoisers; train-classifier's recipe is lr 2e-3, weight decay 0.05,
 * lr_min_ratio 0.01, ema_decay 0. */
typedef struct {
    const char *run_dir;    /* where everything goes (created); NULL: train in memory,
                               write nothing (no resume, checkpoints or previews) [NULL] */
    long steps;             /* optimizer steps [10000] */
    int batch_size;         /* [128] */
    int grad_accum;         /* micro-batches (shards) per step: the global batch is
                               batch_size x grad_accum; each shard's gradient is taken
                               alone and summed in shard order, so under MPI (core.h)
                               the processes share the shards, at most one process per
                               shard, with the bits of one process [1] */
    dfn_adamw_params adamw; /* [lr 2e-4, weight decay 0] */
    long warmup;            /* linear learning-rate warm-up steps; -1: automatic, min(200,
                               steps / 10); an explicit one must be shorter than the run,
                               so that the rate decays [-1] */
    double lr_min_ratio;    /* cosine decay to lr * this at the last step [0.1] */
    double clip;            /* max gradient norm (0: off) [1.0] */
    float ema_decay;        /* EMA of the weights; 0: none, the final model is the
                               trained weights themselves [0.999] */
    int ema_warmup;         /* 1: decay_k = min(decay, (1 + k) / (10 + k)) so that short
                               runs do not average in the random initial weights [1] */
    double p_uncond;        /* label dropout for classifier-free guidance (denoisers with
                               classes) [0.1] */
    int hflip;              /* random horizontal flips of images [0] */
    int bf16;               /* 1: the convolutions with bfloat16 products and float32 sums
                               (dfn_set_precision, for the run; weights, optimizer, EMA,
                               GroupNorm, loss stay float32); needs AVX512_BF16 and the
                               avx512 kernels. The run's precision whatever
                               dfn_set_precision said before; restored after [0] */
    int val_every;          /* validation every K steps (0: off) [500] */
    int val_batches;        /* batches of the validation set per evaluation (0: all) [4] */
    int ckpt_every;         /* keep ckpt-<step>.safetensors every K steps (0: only latest) [0] */
    int save_every;         /* rewrite latest.safetensors every K steps [500] */
    int sample_every;       /* write samples/step-<k>.png every K steps (0: off) [0] */
    int sample_count;       /* images in a preview grid (points in a scatter) [64] */
    int log_every;          /* log.csv row and progress every K steps [10] */
    int progress;           /* -1: a bar on a terminal, plain lines otherwise; 0: quiet [-1] */
    uint64_t seed;          /* [0] */
    int resume;             /* continue the run in run_dir bit-identically [0] */
    int force;              /* overwrite a run_dir that holds another run [0] */
    long stop_after;        /* stop (with a checkpoint) after this many steps of this
                               invocation, as an interruption would; 0: run to `steps` */
    dfn_process_params process; /* denoisers: the noise process [discrete linear, T 1000] */
    dfn_objective objective;    /* denoisers: target, loss, weighting [eps, l2, uniform] */
    dfn_model *autoencoder;     /* denoisers: train on this autoencoder's latents of the
                                   data (borrowed; loaded from a file, whose name
                                   model.safetensors records, with a fingerprint of its
                                   weights); the model takes its latent shape. Without a
                                   measured latent scale, one is measured on the training
                                   data [NULL] */
    dfn_loss_kind recon_loss;   /* autoencoders: reconstruction error, l1 or l2 [l1] */
    double kl_weight;           /* autoencoders: weight of the KL term [1e-6] */
    dfn_consistency_params consistency; /* denoisers: a consistency model instead (above);
                                   checkpoints then record "consistency" and sample with
                                   the consistency sampler */
    int paired_noise;           /* denoisers: each training sample is (data, its noise):
                                   2C x H x W (or 2D) floats, the data first; the noise
                                   is used instead of a fresh draw (reflow, Liu et al.
                                   2023: pairs from a model's ODE, dfn_pipeline_pairs) [0] */
    double fixed_time;          /* denoisers on a continuous process: every sample at
                                   this time instead of t ~ U(t_min, 1) (1 with pairs:
                                   distillation of a flow to one Euler step) [0: drawn] */
    int fid_every;              /* every K steps and at the end: the FID of fid_samples
                                   samples of the EMA weights (fid_sampler in fid_steps,
                                   the same noise each time) against the training images
                                   in fid_classifier's features, in log.csv's "fid"
                                   column, the progress line and loss.png; the floor (as
                                   many validation images against the same) is printed
                                   at the start. Denoisers of images only; a run begun
                                   without it cannot be resumed with it (0: off) [0] */
    int fid_samples;            /* [1000] */
    dfn_model *fid_classifier;  /* borrowed (diffusion train-classifier) [NULL] */
    const char *fid_sampler;    /* NULL: the pipeline's default [NULL] */
    int fid_steps;              /* [20] */
    const char *data_json;      /* what the data are, as JSON, recorded in config.json as
                                   "data" (the program records its --data and loader
                                   options); NULL: not recorded [NULL] */
} dfn_train_params;

dfn_train_params dfn_train_params_init(void);

/* The settings of the run in run_dir (its config.json), to continue it: *p
 * receives every recorded training setting, the process and the objective,
 * with run_dir and resume = 1, and what it wrote how often (log_every,
 * save_every, ckpt_every, sample_every, sample_count: these, and steps, a
 * resumed run may change; progress is dfn_train_params_init's); *model its model
 * config; *data (if not NULL) the data_json it recorded (malloc'ed; NULL if
 * none). A discrete process whose betas came from a file comes back without
 * the file's path (the betas themselves are in config.json): set
 * process.schedule.path before resuming. Raise p->steps to train longer.
 * Errors: DFN_ERR_IO when run_dir holds no config.json, DFN_ERR_FORMAT naming
 * the file and the key. */
dfn_status dfn_train_params_from_run(dfn_train_params *p, dfn_model_config *model, char **data,
                                     const char *run_dir);

/* Trains `model` on `train` (validation on `val`, may be NULL). On return the
 * model holds the final weights: the EMA weights if ema_decay > 0 (what
 * model.safetensors holds), else the trained ones. With a run_dir it leaves
 * there: config.json (model, process, objective, every setting), log.csv (step,
 * loss, val_loss, lr, grad_norm, img_per_s, seconds, and val_accuracy for a
 * classifier), latest.safetensors (the whole state: weights, EMA, AdamW moments,
 * step, random streams, format "diffusion.c training state" version 2: resume
 * continues bit-identically), best.safetensors (the EMA weights with the lowest
 * validation loss), model.safetensors (the final weights; for a denoiser with
 * its process and objective: a pipeline, see dfn_pipeline_load),
 * ckpt-<step>.safetensors if asked, loss.png and sample previews. A run_dir that
 * holds a different run is refused unless resume or force. Non-finite loss or
 * gradients stop training with DFN_ERR_NUMERIC and a message; the last good
 * latest.safetensors is kept. Resuming (resume = 1) needs the settings of the
 * run, as dfn_train_params_from_run reads them (only steps may grow): a
 * difference is refused with DFN_ERR_CONFIG naming it. */
dfn_status dfn_train(dfn_model *model, const dfn_dataset *train, const dfn_dataset *val,
                     const dfn_train_params *params);

DFN_END_DECLS

#endif

/* diffusion/sample.h - the denoiser interface, the exact denoiser of a Gaussian
 * mixture, and every sampler as a short function over a denoiser. */
#ifndef DIFFUSION_SAMPLE_H
#define DIFFUSION_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/core.h"
#include "diffusion/data.h"
#include "diffusion/process.h"

DFN_BEGIN_DECLS

/* Samplers
 *   src/sample/denoiser.c        the denoiser interface: noise levels, guidance, conversions
 *   src/sample/mixture.c         the exact denoiser of a Gaussian mixture
 *   src/sample/ddpm.c ddim.c langevin.c sde_solvers.c ode.c dpm_solver.c karras.c flow.c
 *                                one sampler family each
 *   src/sample/registry.c        the samplers by name, for command lines
 *
 * A sampler is a short function over a denoiser: it asks for a prediction of
 * the kind it needs (eps, x0, score, flow) at a noise level and never knows
 * what computes it: a network, or the exact score of a known distribution.
 *
 *     dfn_mixture *mix;                      // the target: a Gaussian mixture
 *     dfn_mixture_new(&mix, &mp);
 *     dfn_sde sde = dfn_sde_init(DFN_SDE_VP);
 *     dfn_denoiser d;
 *     dfn_mixture_denoiser(&d, mix, DFN_PRED_EPS, NULL, &sde);  // or dfn_pipeline_denoiser
 *     dfn_sampler_params p = dfn_sampler_params_init();
 *     p.steps = 20;
 *     dfn_rng rng = dfn_rng_init(42);
 *     dfn_sample_stats st;
 *     if (dfn_sample("dpm++2m", &d, x, batch, dim, &p, &rng, &st) != DFN_OK)
 *         fprintf(stderr, "%s\n", dfn_last_error());
 *     // x: (batch, dim) samples; st.nfe denoiser evaluations
 *
 * Noise levels. Every process is x_t = alpha x0 + sigma eps. A denoiser is
 * evaluated at a time t of its process:
 *   - a dfn_schedule: t is a step index in [0, T-1] (entry i = the papers'
 *     step i + 1, as the network saw in training), fractional between steps:
 *     the log-SNR is interpolated linearly in t (k-diffusion's DiscreteSchedule
 *     t_to_sigma / sigma_to_t); networks take fractional t as floats;
 *   - a dfn_sde: continuous t in [0, 1].
 * Samplers that work in sigma (EDM) or lambda = log(alpha/sigma) (DPM-Solver)
 * map back to t through dfn_denoiser_t_from_lambda.
 * ================================================================ */

/* out (batch, dim) = the prediction of the denoiser's kind for x (batch, dim)
 * at time t, where x = alpha x0 + sigma eps (alpha, sigma: the process at t,
 * handed over so that an exact denoiser needs no process of its own; a network
 * uses t). y: (batch) class labels, or NULL (unconditional). */
typedef void (*dfn_denoise_fn)(void *ctx, float *out, const float *x, double t, double alpha,
                               double sigma, const int *y, int batch, size_t dim);

/* Optional: the vector-Jacobian product of the same function, for likelihoods.
 * out (batch, dim) = J^T v row by row, J = d fn(x) / d x of the prediction fn
 * returns (rows are independent), v (batch, dim); pred (batch, dim), when not
 * NULL, receives fn(x) itself (what the product's forward pass computed).
 * Other arguments as dfn_denoise_fn's. */
typedef void (*dfn_denoise_vjp_fn)(void *ctx, float *pred, float *out, const float *x, double t,
                                   double alpha, double sigma, const float *v, const int *y,
                                   int batch, size_t dim);

/* Classifier guidance: grad (batch, dim) = d/dx log p(y | x) of a classifier of
 * noisy inputs, at x (batch, dim) = alpha x0 + sigma eps, network time t; y
 * (batch) the classes wanted. */
typedef void (*dfn_guide_fn)(void *ctx, float *grad, const float *x, double t, double alpha,
                             double sigma, const int *y, int batch, size_t dim);

typedef struct {
    dfn_denoise_fn fn;
    void *ctx;                    /* passed to fn */
    dfn_prediction kind;          /* what fn returns */
    const dfn_schedule *schedule; /* the process: exactly one of schedule and sde */
    const dfn_sde *sde;
    int max_batch;                /* fn sees at most this many rows per call (0: all) */
    /* Class conditioning, for the batch the sampler runs: labels (batch) or
     * NULL. With labels and guidance != 1, classifier-free guidance (Ho &
     * Salimans 2022 eq. 6): pred = pred(null) + s (pred(c) - pred(null)), from
     * one call on the doubled batch [x, x] with labels [y, null_label]. Every
     * conversion is affine in the prediction at fixed x, so mixing eps, x0, v,
     * score or flow predictions is the same guidance. */
    const int *labels;
    int null_label;               /* the unconditional class (a model's num_classes) */
    double guidance;              /* s: 1 (none) */
    long nfe;                     /* evaluations so far (a guided one counts once) */
    double time_scale;            /* fn receives time_scale * t (the network's time input
                                     for continuous processes, see dfn_process_params): 1 */
    dfn_denoise_vjp_fn vjp;       /* J^T v of fn, or NULL (set by dfn_pipeline_denoiser and
                                     dfn_mixture_denoiser; see dfn_denoiser_vjp): NULL */
    /* Classifier guidance (Dhariwal & Nichol 2021 alg. 2; Song et al. 2021 eq. 14):
     * with labels and a guide, the prediction (after classifier-free guidance, if
     * any) is shifted as the score grad log p(x) + s grad log p(y | x), i.e.
     * eps~ = eps - sigma s grad log p(y | x) (the same shift in every
     * prediction kind, through the conversion). */
    dfn_guide_fn guide;           /* NULL: none */
    void *guide_ctx;
    double guide_scale;           /* s [0] */
} dfn_denoiser;

/* A denoiser over fn with no labels, guidance 1, max_batch 0, nfe 0. */
void dfn_denoiser_init(dfn_denoiser *d, dfn_denoise_fn fn, void *ctx, dfn_prediction kind,
                       const dfn_schedule *schedule, const dfn_sde *sde);
/* DFN_ERR_ARG unless exactly one process is set (and valid) and kind is a
 * dfn_prediction; DFN_ERR_ARG for labels with a guidance that is not finite. */
dfn_status dfn_denoiser_validate(const dfn_denoiser *d);
/* The process at time t: alpha, sigma, lambda = log(alpha/sigma), and back.
 * dfn_denoiser_t_range gives the sampling interval: [0, T-1] for a schedule,
 * [t_end, 1] for an sde (t_end <= 0 picks score_sde's: 1e-3 for VP, sub-VP,
 * 1e-5 for VE, 0 for flow). t_from_lambda clamps to [0, T-1] for a schedule. */
void dfn_denoiser_marginal(const dfn_denoiser *d, double t, double *alpha, double *sigma);
double dfn_denoiser_lambda(const dfn_denoiser *d, double t);
double dfn_denoiser_t_from_lambda(const dfn_denoiser *d, double lambda);
void dfn_denoiser_t_range(const dfn_denoiser *d, double t_end, double *t_lo, double *t_hi);
/* The SDE dx = f(t) x dt + g(t) dw of the process, for the reverse SDE and the
 * probability-flow ODE: an sde's own (dfn_sde_coefficients); for a schedule
 * (t in steps) the VP SDE whose marginals are the schedule's with its log SNR
 * l(t) linear between steps: alpha^2 = sigmoid(l) gives f = d log alpha / dt =
 * sigma^2 l'(t) / 2 and g^2 = d sigma^2 / dt - 2 f sigma^2 = -sigma^2 l'(t),
 * with l' the slope of the step interval (t - 1, t] (of [0, 1] at t = 0). */
void dfn_denoiser_coefficients(const dfn_denoiser *d, double t, double *f, double *g);
/* The standard deviation of the prior at the top of the range: 1 for a
 * schedule, dfn_sde_prior_std for an sde. */
double dfn_denoiser_prior_std(const dfn_denoiser *d);
/* out (batch, dim) = the prediction of kind out_kind at x (batch, dim), time t:
 * calls fn (in chunks of max_batch rows, guided if set), then
 * dfn_prediction_convert. Adds 1 to d->nfe. out must not alias x. */
void dfn_denoiser_eval(dfn_denoiser *d, float *out, dfn_prediction out_kind, const float *x,
                       double t, int batch, size_t dim);

/* pred (batch, dim) = the out_kind prediction at x, time t (as dfn_denoiser_eval
 * gives it; pred may be NULL), and out (batch, dim) = J^T v row by row, J =
 * d pred / d x, through d->vjp (chunked by max_batch, guided as dfn_denoiser_eval
 * guides). Adds 1 to d->nfe. out must alias neither x nor v. DFN_ERR_ARG if
 * the denoiser has no vjp. */
dfn_status dfn_denoiser_vjp(dfn_denoiser *d, float *pred, float *out, dfn_prediction out_kind,
                            const float *x, const float *v, double t, int batch, size_t dim);

/* ---------------------------------------------------------------- the exact denoiser of a mixture */

/* p(x0) = sum_k w_k N(m_k, S_k). Noised, x_t = alpha x0 + sigma eps is again a
 * mixture, of N(alpha m_k, C_k), C_k = alpha^2 S_k + sigma^2 I, so everything a
 * sampler asks for is exact (with S_k = U diag(l) U^T, computed once):
 *   responsibilities r_k(x) = w_k N(x; alpha m_k, C_k) / sum_j (...)
 *   score  = -sum_k r_k C_k^{-1} (x - alpha m_k)
 *   eps    = -sigma score
 *   E[x0 | x] = sum_k r_k (m_k + alpha S_k C_k^{-1} (x - alpha m_k))  (Tweedie). */
typedef struct dfn_mixture dfn_mixture;

/* From the dataset generator's parameters (copied). DFN_ERR_ARG for
 * dim or components < 1, a negative or all-zero weight, a std <= 0, a
 * covariance that is not symmetric positive definite (names the component). */
dfn_status dfn_mixture_new(dfn_mixture **out, const dfn_mixture_params *params);
void dfn_mixture_free(dfn_mixture *m);
int dfn_mixture_dim(const dfn_mixture *m);
int dfn_mixture_components(const dfn_mixture *m);
/* Normalised weight of component k, and its mean (dim floats, borrowed). */
double dfn_mixture_weight(const dfn_mixture *m, int k);
const float *dfn_mixture_mean(const dfn_mixture *m, int k);
/* n exact samples x (n, dim) and their components (labels, or NULL): n
 * uniforms, then n * dim normals from rng. */
void dfn_mixture_sample(const dfn_mixture *m, float *x, int *labels, int n, dfn_rng *rng);
/* For x (n, dim) = alpha x0 + sigma eps: E[x0 | x] and E[eps | x] (either may
 * be NULL), in double internally. */
void dfn_mixture_posterior(const dfn_mixture *m, float *x0, float *eps, const float *x,
                           double alpha, double sigma, int n);
/* d: a denoiser returning `kind` exactly, on the given process (one of
 * schedule and sde). m must outlive d. */
void dfn_mixture_denoiser(dfn_denoiser *d, dfn_mixture *m, dfn_prediction kind,
                          const dfn_schedule *schedule, const dfn_sde *sde);

/* out[b] = log p_t(x_b) of the noised mixture, x_t = alpha x0 + sigma eps:
 * log sum_k w_k N(x; alpha m_k, alpha^2 S_k + sigma^2 I), in double; x (n, dim).
 * alpha = 1, sigma = 0 gives the data density itself. */
void dfn_mixture_log_prob(const dfn_mixture *m, double *out, const float *x, double alpha,
                          double sigma, int n);

/* The exact class posterior of a mixture whose components are the classes:
 * grad (n, dim) = d/dx log p(y | x) for x = alpha x0 + sigma eps (n, dim), y (n)
 * components. dfn_mixture_guide is the same as a dfn_guide_fn (ctx: the
 * mixture), the oracle of classifier guidance. */
void dfn_mixture_class_grad(const dfn_mixture *m, float *grad, const float *x, double alpha,
                            double sigma, const int *y, int n);
void dfn_mixture_guide(void *ctx, float *grad, const float *x, double t, double alpha,
                       double sigma, const int *y, int batch, size_t dim);
/* The conditional of the mixture given the coordinates where known[i] != 0
 * (values in x, dim floats): a mixture over the other coordinates (in their
 * order), in closed form (reweighted components, Gaussian conditioning).
 * DFN_ERR_ARG unless at least one coordinate is known and one is not. */
dfn_status dfn_mixture_condition(dfn_mixture **out, const dfn_mixture *m, const float *x,
                                 const float *known);

/* ---------------------------------------------------------------- sampler options */

/* DDIM time steps for S of T steps, as diffusers names them (indices, descending):
 *   leading   i = (S-1-j) floor(T/S)          (DDIM's "uniform"; diffusers' default)
 *   trailing  i = round(T - j T/S) - 1        (Lin et al. 2024 table 2; starts at T-1)
 *   linspace  i = round((S-1-j) (T-1)/(S-1))  (starts at T-1, ends at 0) */
typedef enum {
    DFN_SPACING_LEADING,  /* "leading" */
    DFN_SPACING_TRAILING, /* "trailing" */
    DFN_SPACING_LINSPACE, /* "linspace" */
    DFN_SPACING_COUNT
} dfn_spacing;
const char *dfn_spacing_name(dfn_spacing s);
int dfn_spacing_from_name(const char *name); /* -1 + message listing the names */
/* The S indices of `spacing` into steps (descending). DFN_ERR_ARG unless 1 <= S <= T. */
dfn_status dfn_spacing_timesteps(int *steps, int S, int T, dfn_spacing spacing);

/* DDPM's reverse variance (Ho et al. 2020 section 3.2): b~_t (diffusers'
 * "fixed_small") or b_t ("fixed_large"). */
typedef enum {
    DFN_VARIANCE_BETA_TILDE, /* "beta-tilde" */
    DFN_VARIANCE_BETA,       /* "beta" */
    DFN_VARIANCE_COUNT
} dfn_ddpm_variance;
const char *dfn_ddpm_variance_name(dfn_ddpm_variance v);
int dfn_ddpm_variance_from_name(const char *name); /* -1 + message */

/* DPM-Solver's time steps: uniform in lambda (Lu et al. 2022a section 3.4,
 * "logSNR") or in t ("time_uniform"). */
typedef enum {
    DFN_GRID_LAMBDA, /* "lambda" */
    DFN_GRID_TIME,   /* "time" */
    DFN_GRID_COUNT
} dfn_time_grid;
const char *dfn_time_grid_name(dfn_time_grid g);
int dfn_time_grid_from_name(const char *name); /* -1 + message */

/* A constraint on the sampler's state (Seed 001 def. 8.3: x_{t-1} = P_C(mu + sigma z)):
 * called on x (batch, dim) right after the start is drawn and after every step,
 * with the noise level of x, x = alpha x0 + sigma eps (alpha = 1, sigma = 0 once x
 * is data), and changes x in place. src/sample/constraint.c has two: replacement
 * of known coordinates (inpainting) and a box. */
typedef void (*dfn_constraint_fn)(void *ctx, float *x, double alpha, double sigma, int batch,
                                  size_t dim);

/* Called after each step with the state x (batch, dim) in the process's own
 * coordinates, at time t, and the x0 estimate of that step (or NULL): a CLI
 * records trajectories or shows progress. step counts 1..steps. */
typedef void (*dfn_sample_callback)(void *ctx, int step, int steps, double t, const float *x,
                                    const float *x0, int batch, size_t dim);

/* One options struct for every sampler; each reads the fields it needs.
 * Defaults from dfn_sampler_params_init() in brackets. */
typedef struct {
    int steps;         /* steps [0: the sampler's default: T for ddpm, 50 others; ddim <= T] */
    int from_x;        /* 0: draw the start from the prior with rng; 1: x holds it
                          (with strength < 1, x holds the input to noise instead) [0] */
    int denoise_final; /* end with x = E[x0 | x] at the last level (score_sde's
                          noise removal) for samplers that stop above zero
                          noise: langevin, em, pc, ode, dpm [1] */
    double t_end;      /* last time of sde samplers [0: see dfn_denoiser_t_range] */
    /* ddpm, ddim */
    dfn_ddpm_variance variance; /* [beta-tilde] */
    double eta;                 /* ddim: 0 deterministic, 1 DDPM-like [0] */
    dfn_spacing spacing;        /* [leading] */
    /* the x0 estimate of ddpm, ddim, dpm and dpm++ (eps made consistent with it),
       euler and heun (EDM's D), and the final denoising step (denoise_final) */
    int clip_x0;                /* clip the x0 estimate to [-clip_range, clip_range] [1] */
    double clip_range;          /* [1] */
    int dynamic_threshold;      /* Saharia et al. 2022 section 2.3, replaces clip_x0 [0] */
    double threshold_p;         /* percentile of |x0| per sample [0.995] */
    double threshold_max;       /* the percentile is clamped to [1, threshold_max]: [inf],
                                   Saharia et al.; diffusers clamps at sample_max_value */
    /* langevin */
    double langevin_c;        /* plain: x += c score + sqrt(2c) z [0.01] */
    double langevin_eps;      /* annealed: alpha_i = eps sigma_i^2 / sigma_L^2 [2e-5] */
    int levels;               /* annealed: L noise levels [10] */
    int steps_per_level;      /* annealed: T [100] */
    double level_sigma_min;   /* annealed: [0: the VE process's sigma_min, sigma_max] */
    double level_sigma_max;
    /* predictor-corrector */
    int predictor_em;    /* 0: reverse diffusion predictor, 1: Euler-Maruyama [0] */
    int corrector_steps; /* Langevin corrector steps per level [1] */
    double snr;          /* corrector signal-to-noise ratio r [0.16] */
    /* rk45 */
    double rtol, atol; /* [1e-5, 1e-5] */
    int max_steps;     /* accepted + rejected steps before DFN_ERR_NUMERIC [10000] */
    /* dpm-solver */
    dfn_time_grid time_grid; /* [lambda] */
    int lower_order_final;   /* multistep: lower order at the last steps when steps < 15 [1] */
    /* karras (EDM) */
    double sigma_min, sigma_max; /* [0: the process's range at t_end and at the start] */
    double rho;                  /* [7] */
    double s_churn, s_tmin, s_tmax, s_noise; /* [0, 0, inf, 1] */
    /* control (src/sample/constraint.c, repaint.c) */
    double strength;   /* SDEdit (Meng et al. 2022): in (0, 1]. Below 1, x holds an input
                          x0 that the sampler noises to the level at this fraction of its
                          time range, x = alpha x0 + sigma z, and denoises from there in
                          max(1, round(strength * steps)) steps; 1 starts from the prior [1] */
    dfn_constraint_fn constraint; /* applied to the start and after every step [NULL] */
    void *constraint_ctx;
    int jump_length;   /* repaint: go back up this many steps at each jump [10] */
    int jump_n_sample; /* repaint: times each stretch is sampled (1: no resampling) [10] */
    /* progress */
    dfn_sample_callback callback; /* [NULL] */
    void *callback_ctx;
} dfn_sampler_params;

dfn_sampler_params dfn_sampler_params_init(void);

typedef struct {
    long nfe;     /* denoiser evaluations of this run */
    int steps;    /* steps taken (rk45: accepted) */
    int rejected; /* rk45: rejected steps */
} dfn_sample_stats;

/* ---------------------------------------------------------------- samplers */

/* Every sampler: x (batch, dim) in/out (in when from_x), options p (NULL:
 * defaults), rng for every random draw (the same seed gives the same bits;
 * deterministic samplers use it only for the prior), stats (or NULL).
 * DFN_ERR_ARG with a message for bad options or a process the sampler does
 * not fit (naming those that do). */
typedef dfn_status (*dfn_sampler_fn)(dfn_denoiser *d, float *x, int batch, size_t dim,
                                     const dfn_sampler_params *p, dfn_rng *rng,
                                     dfn_sample_stats *stats);

/* Ho et al. 2020 alg. 2 / eq. 11 (discrete schedules; all T steps). */
dfn_status dfn_sample_ddpm(dfn_denoiser *d, float *x, int batch, size_t dim,
                           const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
/* Song et al. 2021 (DDIM) eq. 12 (discrete schedules). */
dfn_status dfn_sample_ddim(dfn_denoiser *d, float *x, int batch, size_t dim,
                           const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
/* DDIM inversion (eta = 0, Song et al. 2021 section 4.3 eq. 14): x (batch, dim)
 * from data to the last of the steps p->steps, p->spacing picks (x_T). Running
 * dfn_sample_ddim with from_x = 1 and the same steps reconstructs. */
dfn_status dfn_ddim_invert(dfn_denoiser *d, float *x, int batch, size_t dim,
                           const dfn_sampler_params *p, dfn_sample_stats *stats);
/* Langevin dynamics at the lowest noise level: x += c score + sqrt(2c) z. */
dfn_status dfn_sample_langevin(dfn_denoiser *d, float *x, int batch, size_t dim,
                               const dfn_sampler_params *p, dfn_rng *rng,
                               dfn_sample_stats *stats);
/* Song & Ermon 2019 alg. 1 over geometric sigmas (VE processes). */
dfn_status dfn_sample_annealed_langevin(dfn_denoiser *d, float *x, int batch, size_t dim,
                                        const dfn_sampler_params *p, dfn_rng *rng,
                                        dfn_sample_stats *stats);
/* Song et al. 2021 eq. 6 by Euler-Maruyama; predictor-corrector (alg. 4, 5). */
dfn_status dfn_sample_euler_maruyama(dfn_denoiser *d, float *x, int batch, size_t dim,
                                     const dfn_sampler_params *p, dfn_rng *rng,
                                     dfn_sample_stats *stats);
dfn_status dfn_sample_pc(dfn_denoiser *d, float *x, int batch, size_t dim,
                         const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
/* The probability-flow ODE (Song et al. 2021 eq. 13): Euler, Heun, RK4, and
 * Dormand-Prince 5(4) with step control. */
dfn_status dfn_sample_ode_euler(dfn_denoiser *d, float *x, int batch, size_t dim,
                                const dfn_sampler_params *p, dfn_rng *rng,
                                dfn_sample_stats *stats);
dfn_status dfn_sample_ode_heun(dfn_denoiser *d, float *x, int batch, size_t dim,
                               const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
dfn_status dfn_sample_ode_rk4(dfn_denoiser *d, float *x, int batch, size_t dim,
                              const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
dfn_status dfn_sample_ode_rk45(dfn_denoiser *d, float *x, int batch, size_t dim,
                               const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
/* DPM-Solver (Lu et al. 2022a, noise prediction) and DPM-Solver++ (2022b, data
 * prediction): order 1 (= DDIM), 2 and 3 multistep, 2 singlestep (2 NFE per
 * step), on VP processes. */
dfn_status dfn_sample_dpm(dfn_denoiser *d, float *x, int batch, size_t dim,
                          const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats,
                          int order, int multistep, int data_prediction);
/* Karras et al. 2022 alg. 2 (EDM): Euler (1st order) and Heun, with churn. */
dfn_status dfn_sample_karras_euler(dfn_denoiser *d, float *x, int batch, size_t dim,
                                   const dfn_sampler_params *p, dfn_rng *rng,
                                   dfn_sample_stats *stats);
dfn_status dfn_sample_karras_heun(dfn_denoiser *d, float *x, int batch, size_t dim,
                                  const dfn_sampler_params *p, dfn_rng *rng,
                                  dfn_sample_stats *stats);
/* RePaint (Lugmayr et al. 2022 alg. 1): ancestral steps on a uniform time grid of
 * p->steps, going back up jump_length steps by the forward process (x_t ~
 * q(x_t | x_s)) jump_n_sample - 1 times at every jump_length-th step, so that the
 * unknown part harmonises with the constraint (p->constraint, normally
 * dfn_constraint_replace) applied after every step. Any process with alpha > 0
 * on the grid: discrete, vp, sub-vp, ve, flow. */
dfn_status dfn_sample_repaint(dfn_denoiser *d, float *x, int batch, size_t dim,
                              const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
/* The RePaint time schedule: the indices into a grid of `steps` steps that the
 * sampler visits, from steps (the start) down to 0, up and down; n entries
 * (returned; out may be NULL to count). DFN_ERR_ARG (returned as -1, message
 * set) unless 1 <= jump_length <= steps and jump_n_sample >= 1. */
int dfn_repaint_schedule(int *out, int steps, int jump_length, int jump_n_sample);

/* ---------------------------------------------------------------- constraints */

/* Replacement of known coordinates (inpainting; partial conditioning of
 * vectors): x = m * (alpha x0 + sigma z) + (1 - m) * x with z ~ N(0, I) drawn
 * from rng, the known values x0 noised to the state's level (Song et al. 2021
 * appendix I.2; Lugmayr et al. 2022 eq. 8). m in [0, 1]: 1 known. */
typedef struct {
    const float *known; /* x0 (batch, dim) of the batch being sampled */
    const float *mask;  /* (batch, dim), or (dim) for every row when mask_shared */
    int mask_shared;
    dfn_rng *rng;       /* the noise of the known part (its own stream) */
} dfn_replace_constraint;
void dfn_constraint_replace(void *ctx, float *x, double alpha, double sigma, int batch,
                            size_t dim);

/* Projection onto the box [lo, hi] of every coordinate (Seed 001 def. 8.3; the
 * projection onto a convex set is 1-Lipschitz, theorem 8.5): x = min(max(x, lo), hi). */
typedef struct {
    double lo, hi;
} dfn_box_constraint;
void dfn_constraint_box(void *ctx, float *x, double alpha, double sigma, int batch, size_t dim);

/* Rectified flow (Liu et al. 2023): Euler on dx/dt = v from t = 1 to 0. */
dfn_status dfn_sample_flow_euler(dfn_denoiser *d, float *x, int batch, size_t dim,
                                 const dfn_sampler_params *p, dfn_rng *rng,
                                 dfn_sample_stats *stats);

/* Multistep consistency sampling (Song et al. 2023 alg. 1, src/sample/consistency.c)
 * of a consistency model's f (a denoiser whose x0 is f: dfn_pipeline_denoiser of
 * a consistency checkpoint): steps 1..64 [default 1], the levels the first
 * `steps` of a Karras ladder (rho) of steps + 1 from sigma_max to sigma_min, in
 * EDM's s = sigma/alpha [0: the levels at the sampling interval's ends (t_end's
 * and the top, at most 80); a consistency pipeline fills in the levels its
 * model was trained on]. Any process; DFN_ERR_ARG where the interval reaches
 * s = 0 (a flow at t_end = 0) and no sigma_min is given. */
dfn_status dfn_sample_consistency(dfn_denoiser *d, float *x, int batch, size_t dim,
                                  const dfn_sampler_params *p, dfn_rng *rng,
                                  dfn_sample_stats *stats);

/* The straightness of a flow's paths (Liu et al. 2023 eq. 8): S = int_0^1
 * E ||(x_1 - x_0) - v(x_t, t)||^2 dt along the ODE from t = 1 (noise) to 0
 * (data), measured with `steps` >= 2 Euler steps from prior draws (x: batch,
 * dim, receives the endpoints): the mean over steps and rows of the squared
 * deviation of the velocity from the path's mean velocity, per dimension. 0 for
 * straight paths (which one Euler step integrates exactly). A rectified flow
 * (sde kind flow) only: DFN_ERR_ARG otherwise. */
dfn_status dfn_flow_straightness(dfn_denoiser *d, float *x, int batch, size_t dim, int steps,
                                 dfn_rng *rng, double *straightness);

/* ---------------------------------------------------------------- the registry */

/* Which processes a sampler fits (bit flags). */
#define DFN_FITS_DISCRETE 1u /* a dfn_schedule */
#define DFN_FITS_VP 2u
#define DFN_FITS_SUBVP 4u
#define DFN_FITS_VE 8u
#define DFN_FITS_FLOW 16u

typedef struct {
    const char *name; /* "ddim", "dpm++2m", ... */
    const char *help; /* one line */
    unsigned fits;    /* DFN_FITS_* */
    dfn_sampler_fn fn;
} dfn_sampler_info;

/* The table, for "diffusion sample --list": i in 0..dfn_num_samplers()-1. */
int dfn_num_samplers(void);
const dfn_sampler_info *dfn_sampler_get(int i);
/* By name; NULL and a message listing the names for an unknown one. */
const dfn_sampler_info *dfn_sampler_find(const char *name);
/* The DFN_FITS_* flag of d's process. */
unsigned dfn_denoiser_process_flag(const dfn_denoiser *d);
/* Looks up `name` and runs it (errors as dfn_sampler_find and the sampler). */
dfn_status dfn_sample(const char *name, dfn_denoiser *d, float *x, int batch, size_t dim,
                      const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);

DFN_END_DECLS

#endif

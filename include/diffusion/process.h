/* diffusion/process.h - noise processes and what a network predicts: discrete
 * beta schedules, continuous processes (score SDEs, rectified flow), noise-level
 * ladders, the conversions between eps / x0 / v / score / flow predictions, and
 * the process description every checkpoint carries. Numbers only: nothing here
 * knows a network or a sampler. */
#ifndef DIFFUSION_PROCESS_H
#define DIFFUSION_PROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/core.h"

DFN_BEGIN_DECLS

/* Every process here is Gaussian given x_0:  x_t = alpha x_0 + sigma eps,
 * eps ~ N(0, I). Tensors are float32; per-sample coefficients (alpha, sigma,
 * variances) are double, as the schedules that produce them are.
 *   src/process/schedule.c    discrete beta schedules
 *   src/process/sde.c         continuous processes (score SDEs), sigma ladders
 *   src/process/prediction.c  conversions between eps / x0 / v / score / flow
 *   src/process/process_json.c the process a checkpoint records */

/* ---------------------------------------------------------------- discrete schedules */

/* Step indexing: every array below is 0-based, and entry i is the papers' step
 * t = i + 1 (t = 1..T). So beta[0] = b_1, alpha_bar[T-1] = abar_T, and the
 * integer a network sees as its timestep is the index i (as improved-diffusion
 * and diffusers do). */
typedef enum {
    DFN_BETA_LINEAR,    /* "linear": linspace(beta_start, beta_end, T) (Ho et al. 2020) */
    DFN_BETA_COSINE,    /* "cosine": Nichol & Dhariwal 2021 eq. 17, s = 0.008, clip 0.999 */
    DFN_BETA_SIGMOID,   /* "sigmoid": sigmoid(linspace(-6, 6, T)) (end - start) + start */
    DFN_BETA_CONSTANT,  /* "constant": beta_end at every step (DDPM's "const") */
    DFN_BETA_QUADRATIC, /* "quadratic": linspace(sqrt(start), sqrt(end), T)^2
                           (diffusers' "scaled_linear") */
    DFN_BETA_FILE,      /* "file": betas listed in a text file (params.path) */
    DFN_BETA_KIND_COUNT
} dfn_beta_kind;

/* "linear", "cosine", ... and back. dfn_beta_kind_from_name also accepts the
 * diffusers names "scaled_linear" (quadratic) and "squaredcos_cap_v2" (cosine);
 * for an unknown name it returns -1 and leaves a message listing the known
 * names for dfn_last_error(). */
const char *dfn_beta_kind_name(dfn_beta_kind kind);
int dfn_beta_kind_from_name(const char *name);

typedef struct {
    dfn_beta_kind kind;
    int T;              /* steps, 1000; ignored for DFN_BETA_FILE (the file decides) */
    double beta_start;  /* 1e-4: first beta of linear, sigmoid, quadratic */
    double beta_end;    /* 0.02: last beta of linear, sigmoid, quadratic; constant's beta */
    double cosine_s;    /* 0.008: cosine offset s */
    double max_beta;    /* 0.999: cosine betas are clipped to at most this */
    const char *path;   /* DFN_BETA_FILE: the file (borrowed, not kept) */
} dfn_schedule_params;

/* Defaults above for `kind`. The endpoints are used as given for every T, as in
 * DDPM (Ho et al. 2020, diffusion_utils_2.get_beta_schedule); improved-diffusion
 * instead rescales linear endpoints by 1000/T: to reproduce it, set
 * beta_start = 1e-4 * 1000/T and beta_end = 0.02 * 1000/T yourself. */
dfn_schedule_params dfn_schedule_params_init(dfn_beta_kind kind);

/* A schedule: T and per-step arrays (index i = step t = i + 1), all double.
 *   beta            b_t
 *   alpha           a_t = 1 - b_t
 *   alpha_bar       abar_t = prod_{s<=t} a_s
 *   alpha_bar_prev  abar_{t-1}, with abar_0 = 1
 *   sqrt_alpha_bar, sqrt_one_minus_alpha_bar
 *   snr             abar_t / (1 - abar_t);  log_snr its log
 *   posterior_variance      b~_t = (1 - abar_{t-1}) / (1 - abar_t) b_t  (0 at t = 1)
 *   posterior_log_variance_clipped  log b~_t, with the t = 1 entry replaced by
 *                   t = 2's (improved-diffusion); for T = 1, log b_1
 *   posterior_coef_x0  sqrt(abar_{t-1}) b_t / (1 - abar_t)
 *   posterior_coef_xt  sqrt(a_t) (1 - abar_{t-1}) / (1 - abar_t)
 * The arrays share one allocation owned by the struct: free it with
 * dfn_schedule_free, never the arrays one by one. */
typedef struct {
    int T;
    dfn_beta_kind kind;
    double *beta, *alpha, *alpha_bar, *alpha_bar_prev;
    double *sqrt_alpha_bar, *sqrt_one_minus_alpha_bar;
    double *snr, *log_snr;
    double *posterior_variance, *posterior_log_variance_clipped;
    double *posterior_coef_x0, *posterior_coef_xt;
} dfn_schedule;

/* Builds the schedule `p` describes into *s. Fails with DFN_ERR_ARG (T < 1, an
 * endpoint or s or max_beta out of range: every beta must lie in (0, 1)),
 * DFN_ERR_IO (beta file missing or unreadable) or DFN_ERR_FORMAT (a field that is
 * not a number, a beta outside (0, 1), no betas at all; the message names the
 * file and the line). On failure *s is zeroed and owns nothing. */
dfn_status dfn_schedule_init(dfn_schedule *s, const dfn_schedule_params *p);
/* The same from T betas given by the caller (copied; kind = DFN_BETA_FILE).
 * DFN_ERR_ARG if T < 1 or a beta lies outside (0, 1) (the message names its index). */
dfn_status dfn_schedule_from_betas(dfn_schedule *s, const double *betas, int T);
/* Reads a beta file: numbers separated by commas and/or newlines, blank lines
 * and '#' comments ignored. *betas is malloc'ed (the caller frees it). Errors
 * as dfn_schedule_init's. */
dfn_status dfn_read_betas(double **betas, int *T, const char *path);
/* Releases the arrays and zeroes *s; a zeroed struct may be freed again. */
void dfn_schedule_free(dfn_schedule *s);

/* The discrete-to-continuous link: step i as x_t = alpha x_0 + sigma eps,
 * alpha = sqrt(abar_t), sigma = sqrt(1 - abar_t). */
void dfn_schedule_alpha_sigma(const dfn_schedule *s, int i, double *alpha, double *sigma);

/* q(x_t | x_0), DDPM eq. 4: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, sample b
 * at step index t[b]. x_t, x0, eps: (batch, dim); x_t may alias x0 or eps. */
void dfn_q_sample(float *x_t, const dfn_schedule *s, const float *x0, const float *eps,
                  const int *t, int batch, size_t dim);
/* q(x_{t-1} | x_t, x_0) = N(mean, var I), DDPM eqs. 6-7: mean (batch, dim) =
 * coef_x0 x0 + coef_xt x_t; var and log_var_clipped (batch) per sample. Any of
 * the three outputs may be NULL (x0 and x_t are then unused if mean is). mean may
 * alias x0 or x_t. */
void dfn_q_posterior(float *mean, double *var, double *log_var_clipped, const dfn_schedule *s,
                     const float *x0, const float *x_t, const int *t, int batch, size_t dim);

/* ---------------------------------------------------------------- continuous processes */

/* Score SDEs (Song et al. 2021) dx = f(t) x dt + g(t) dw on t in [0, 1], and the
 * rectified-flow interpolation seen as one. All have p(x_t | x_0) = N(alpha(t) x_0,
 * sigma(t)^2 I):
 *   VP     (eq. 11) beta(t) = beta_min + t (beta_max - beta_min),
 *          alpha = exp(-1/2 int_0^t beta), sigma = sqrt(1 - alpha^2),
 *          f = -beta/2, g = sqrt(beta).
 *   sub-VP (eq. 12) the same alpha and f, sigma = 1 - alpha^2 (a std, not a
 *          variance: Song et al. appendix B), g = sqrt(beta (1 - alpha^4)).
 *   VE     (eq. 9, NCSN++) sigma(t) = sigma_min (sigma_max/sigma_min)^t, alpha = 1,
 *          f = 0, g = sigma(t) sqrt(2 log(sigma_max/sigma_min)).
 *          The std reported is sigma(t) itself, as score_sde's marginal_prob: the
 *          process is taken to start from data already blurred by N(0, sigma_min^2)
 *          (var(0) = sigma_min^2), which keeps sigma > 0 and the score finite at
 *          t = 0. The exact std from a noiseless x_0 would be
 *          sqrt(sigma(t)^2 - sigma_min^2); the two differ by < sigma_min^2/(2 sigma).
 *   flow   rectified flow (Liu et al. 2023): alpha = 1 - t, sigma = t; as an SDE
 *          f = -1/(1-t), g = sqrt(2t/(1-t)) (infinite at t = 1); its
 *          probability-flow drift is the velocity eps - x_0. */
typedef enum {
    DFN_SDE_VP,    /* "vp" */
    DFN_SDE_SUBVP, /* "subvp" (also accepted: "sub-vp") */
    DFN_SDE_VE,    /* "ve" */
    DFN_SDE_FLOW,  /* "flow" */
    DFN_SDE_KIND_COUNT
} dfn_sde_kind;

/* Names and back; from_name returns -1 for an unknown name and leaves a message
 * listing the known ones. */
const char *dfn_sde_kind_name(dfn_sde_kind kind);
int dfn_sde_kind_from_name(const char *name);

typedef struct {
    dfn_sde_kind kind;
    double beta_min, beta_max;   /* VP, sub-VP: 0.1, 20 */
    double sigma_min, sigma_max; /* VE: 0.01, 50 */
} dfn_sde;

/* The defaults above for `kind`. */
dfn_sde dfn_sde_init(dfn_sde_kind kind);
/* DFN_ERR_ARG unless 0 <= beta_min <= beta_max, beta_max > 0 (VP, sub-VP) and
 * 0 < sigma_min < sigma_max (VE). The functions below assume a valid process. */
dfn_status dfn_sde_validate(const dfn_sde *sde);
/* Marginal coefficients of p(x_t | x_0) at time t. */
void dfn_sde_marginal(const dfn_sde *sde, double t, double *alpha, double *sigma);
/* Drift coefficient f(t) (f(x, t) = f(t) x) and diffusion g(t). */
void dfn_sde_coefficients(const dfn_sde *sde, double t, double *f, double *g);
/* Std of the prior p_1 = N(0, std^2 I) that sampling starts from: 1 for VP,
 * sub-VP and flow, sigma_max for VE (score_sde's prior_sampling). */
double dfn_sde_prior_std(const dfn_sde *sde);
/* lambda(t) = log(alpha(t)/sigma(t)), DPM-Solver's half log-SNR (Lu et al. 2022
 * section 3.1) - half of the full log SNR that dfn_schedule.log_snr holds - and
 * its inverse in closed form (VP linear: t = 2L / (beta_min + sqrt(beta_min^2 +
 * 2 (beta_max - beta_min) L)), L = log(1 + e^{-2 lambda}), as DPM-Solver's
 * NoiseScheduleVP.inverse_lambda). The inverse solves the process's formula, so
 * a lambda outside [lambda(1), lambda(0)] maps to a t outside [0, 1]. */
double dfn_sde_lambda(const dfn_sde *sde, double t);
double dfn_sde_t_from_lambda(const dfn_sde *sde, double lambda);

/* Noise-level ladders for k-diffusion style samplers, written to sigmas[0..n-1]
 * in decreasing order (no trailing zero: k-diffusion appends one; add it if
 * your sampler wants it).
 *   karras:    sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho
 *              (Karras et al. 2022 eq. 5; rho = 7 there); n = 1 gives smax.
 *   geometric: sigma_i = smax (smin/smax)^(i/(n-1)), NCSN's sigma_1 > ... > sigma_L
 *              (Song & Ermon 2019 section 4.2); n = 1 gives smax.
 * DFN_ERR_ARG unless n >= 1, 0 < sigma_min <= sigma_max and rho > 0. */
dfn_status dfn_sigmas_karras(double *sigmas, int n, double sigma_min, double sigma_max,
                             double rho);
dfn_status dfn_sigmas_geometric(double *sigmas, int n, double sigma_min, double sigma_max);

/* ---------------------------------------------------------------- predictions */

/* What a network outputs, for x_t = alpha x0 + sigma eps:
 *   eps    the noise                     (Ho et al. 2020)
 *   x0     the clean data
 *   v      alpha eps - sigma x0          (Salimans & Ho 2022, section 4)
 *   score  grad log p(x_t) = -eps/sigma  (Song et al. 2021; Vincent 2011)
 *   flow   u = eps - x0, the velocity dx_t/dt of rectified flow (alpha = 1 - t,
 *          sigma = t; Liu et al. 2023). Defined as eps - x0 for any alpha, sigma. */
typedef enum {
    DFN_PRED_EPS,
    DFN_PRED_X0,
    DFN_PRED_V,
    DFN_PRED_SCORE,
    DFN_PRED_FLOW,
    DFN_PRED_COUNT
} dfn_prediction;

/* "eps", "x0", "v", "score", "flow" and back; from_name returns -1 for an unknown
 * name and leaves a message listing the known ones. */
const char *dfn_prediction_name(dfn_prediction kind);
int dfn_prediction_from_name(const char *name);

/* out = the pred_kind prediction `pred` at x_t, re-expressed as out_kind; n
 * elements sharing one alpha, sigma. Arithmetic in double; out may alias pred or
 * x_t; x_t may be NULL when out_kind == pred_kind (a copy). The conversion
 * divides by alpha (eps or score -> x0, v, flow), by sigma
 * (x0 -> eps, score, v, flow; anything -> score), by alpha^2 + sigma^2 (from v) or
 * by alpha + sigma (from flow); where that is 0 the result is Inf/NaN, as the
 * mathematics says. */
void dfn_prediction_convert(float *out, dfn_prediction out_kind, const float *pred,
                            dfn_prediction pred_kind, const float *x_t, double alpha,
                            double sigma, size_t n);
/* The same for a batch: (batch, dim) tensors, sample b at alpha[b], sigma[b]. */
void dfn_prediction_convert_batch(float *out, dfn_prediction out_kind, const float *pred,
                                  dfn_prediction pred_kind, const float *x_t,
                                  const double *alpha, const double *sigma, int batch,
                                  size_t dim);
/* The exact `kind` value for known x0 and eps (a training target): n elements. */
void dfn_prediction_target(float *out, dfn_prediction kind, const float *x0, const float *eps,
                           double alpha, double sigma, size_t n);
/* |d kind / d x0| at fixed x_t: an error e in x0 is an error gain * e in `kind`
 * (eps: alpha/sigma, x0: 1, v: (alpha^2 + sigma^2)/sigma, score: alpha/sigma^2,
 * flow: (alpha + sigma)/sigma). Weightings use it to move between targets. */
double dfn_prediction_x0_gain(dfn_prediction kind, double alpha, double sigma);
/* What a network trained to predict `kind` outputs, as a factor: prediction =
 * c_out * network output. 1 for every kind but the score, which networks
 * output as sigma * score (c_out = 1/sigma; Song & Ermon 2020, "Improved
 * techniques for training score-based generative models", technique 3): the
 * score's scale grows as 1/sigma towards the data, and a network asked for it
 * directly must span that range with its output (measured in test_ncsn:
 * annealed Langevin from such a network draws components 15-35% too wide);
 * scaled, its target -eps has unit scale at every level. The trainer and the
 * network-to-denoiser adapter apply it. */
double dfn_prediction_network_scale(dfn_prediction kind, double alpha, double sigma);

/* ---------------------------------------------------------------- consistency models */

/* A consistency model f(x_t, t) maps every point of a probability-flow ODE
 * trajectory to its start (Song et al. 2023). Levels are EDM's noise levels
 * s = sigma/alpha (x_t / alpha = x0 + s eps), so one description serves every
 * process (a discrete schedule, VP, VE, flow). The boundary condition
 * f(x, sigma_min) = x/alpha (Song et al. 2023 eq. 5) is built in as
 *     f = c_skip(s) x/alpha + (1 - c_skip(s)) D(x, t),   c_skip(s) = sigma_min / s,
 * D the network's own x0 estimate (its prediction converted to x0): with
 * eps = (x/alpha - D)/s this is f = x/alpha - (s - sigma_min) eps, one DDIM
 * step from s down to sigma_min. So a student initialised with its teacher's
 * weights starts as the teacher's one-step DDIM map, and its output keeps the
 * teacher's meaning at every level. (Song et al.'s c_skip = sigma_data^2 /
 * ((s - sigma_min)^2 + sigma_data^2) on a raw output c_out(s) F would give such
 * a student f = x0 + c_skip s eps at the start - 0.7 s eps at s = 0.34 - and
 * ask its eps output to grow as 1/(1 - c_skip) towards sigma_min: measured on
 * Fashion-MNIST, 1,400 steps of distillation from a DDPM teacher left the
 * samples visibly noisy.)
 *   sigma_min   the level of the process at its first time (t_min, or step 0)
 *   sigma_max   the highest level used: the process's last time, at most 80
 *               (EDM's sigma_max; a flow's s = t/(1-t) is infinite at t = 1) */
typedef struct {
    double sigma_min, sigma_max;
} dfn_consistency;

/* f = c_x x + c_d D at a level alpha, sigma of the process: c_x = c_skip(s)/alpha
 * = sigma_min / sigma (finite where alpha = 0: a flow at t = 1), c_d = 1 - c_skip(s)
 * = 1 - sigma_min alpha / sigma. */
void dfn_consistency_coefficients(const dfn_consistency *c, double alpha, double sigma,
                                  double *c_x, double *c_d);
/* f (n) = c_x x + c_d x0 for n elements at one level (f may alias either). */
void dfn_consistency_apply(const dfn_consistency *c, float *f, const float *x, const float *x0,
                           double alpha, double sigma, size_t n);
/* dfn_consistency <-> JSON {"sigma_min", "sigma_max"} (checkpoint
 * metadata "consistency"; malloc'ed); from_json: DFN_ERR_FORMAT naming the key. */
char *dfn_consistency_to_json(const dfn_consistency *c);
dfn_status dfn_consistency_from_json(dfn_consistency *c, const char *json);
/* Consistency training's number of levels at step k of K (Song & Dhariwal 2023
 * section 3.4, exponential curriculum): N(k) = min(s0 2^floor(k / K'), s1) + 1,
 * K' = floor(K / (log2(s1 / s0) + 1)); s0 = 10, s1 = 1280 there. */
int dfn_consistency_levels(long k, long K, int s0, int s1);
/* The probabilities of the N - 1 level pairs (s_n, s_n+1) of an ascending ladder
 * sig[0..N-1] under the lognormal proposal (Song & Dhariwal 2023 section 3.5):
 * p(n) prop. to erf((log s_n+1 - P_mean) / (sqrt 2 P_std)) - erf((log s_n - P_mean) /
 * (sqrt 2 P_std)); P_mean = -1.1, P_std = 2 there. cdf (N - 1) receives the
 * cumulative sums, normalised (cdf[N-2] = 1). */
void dfn_consistency_level_cdf(double *cdf, const double *sig, int N, double p_mean,
                               double p_std);

/* ---------------------------------------------------------------- the process of a model */

/* The noise process a model is trained on, and therefore sampled with; stored
 * in every checkpoint's metadata ("process") so that samplers know it.
 *   discrete:   DDPM steps 0..T-1 of a beta schedule; the network's time input
 *               is the step index;
 *   continuous: an SDE or rectified flow on t in [t_min, 1]; the network's time
 *               input is time_scale * t (1000 by default, so that the sinusoidal
 *               embedding resolves it as it does DDPM's steps; score_sde does
 *               the same with 999). */
typedef struct {
    int continuous;               /* 0: discrete schedule, 1: dfn_sde */
    dfn_schedule_params schedule; /* discrete */
    dfn_sde sde;                  /* continuous: VP, sub-VP, VE or flow */
    double t_min;                 /* continuous: training times ~ U(t_min, 1); 1e-5 (1e-3 flow) */
    double time_scale;            /* continuous: network time = time_scale * t; 1000 */
} dfn_process_params;

/* Discrete linear schedule, T = 1000. */
dfn_process_params dfn_process_params_init(void);
/* Process -> JSON (checkpoint metadata "process"; malloc'ed). A discrete
 * process stores the parameters of its schedule and its betas themselves (pass
 * its schedule), so a checkpoint needs no beta file to be sampled. */
char *dfn_process_to_json(const dfn_process_params *p, const dfn_schedule *schedule);
/* JSON -> process; for a discrete one also builds `schedule` from the stored
 * betas (free it with dfn_schedule_free), and the parameters come back as
 * stored (a "file" schedule without its path). DFN_ERR_FORMAT naming the
 * problem. */
dfn_status dfn_process_from_json(dfn_process_params *p, dfn_schedule *schedule, const char *json);

DFN_END_DECLS

#endif

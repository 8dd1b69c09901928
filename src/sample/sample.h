/* sample.h - what the sampler files share: the start of every sampler (checks
 * and defaults), the prior, the progress hook, the final denoising step and
 * the x0 clipping of DDPM and DDIM. Internal to src/sample. */
#ifndef DFN_SAMPLE_H
#define DFN_SAMPLE_H

#include <math.h>

#include "core/core.h"
#include "diffusion/sample.h"

/* Checks what every sampler needs (a valid denoiser on a process in `fits`,
 * batch and dim >= 1) and fills *p with the options (defaults when in is NULL)
 * and p->steps with default_steps when it is 0. DFN_ERR_ARG with a message
 * naming the sampler and, for a process it does not fit, the samplers that do. */
dfn_status dfn_sampler_begin(const char *name, dfn_denoiser *d, const float *x, int batch, size_t dim,
                        const dfn_sampler_params *in, dfn_sampler_params *p, unsigned fits,
                        int default_steps);
/* "euler, heun, ..." : the samplers that fit process flag `flag` (registry.c). */
void dfn_sampler_names_fitting(unsigned flag, char *buf, size_t size);
/* "vp, ve": the processes in a fits mask. */
void dfn_sampler_fits_names(unsigned fits, char *buf, size_t size);

/* round(strength * n), at least 1 (n itself for strength 1): the steps, T or
 * levels a sampler runs for an SDEdit start (p->strength). */
int dfn_sampler_scaled(int n, double strength);
/* The sampling interval of dfn_denoiser_t_range (with p->t_end), its top
 * lowered to t_lo + strength (t_hi - t_lo) for an SDEdit start. */
void dfn_sampler_t_range(const dfn_denoiser *d, const dfn_sampler_params *p, double *t_lo,
                         double *t_hi);
/* The start of every sampler, at the level x = alpha x0 + sigma eps of its first
 * time: with p->strength < 1, x (holding x0) noised to that level (SDEdit);
 * else the prior x = prior_std z unless p->from_x; then the constraint. */
void dfn_sampler_start(const dfn_sampler_params *p, float *x, int batch, size_t dim, double alpha,
                       double sigma, double prior_std, dfn_rng *rng);
/* p->constraint on x (batch, dim) at level (alpha, sigma), if there is one:
 * every sampler calls it on its state after each step. */
void dfn_sampler_constrain(const dfn_sampler_params *p, float *x, double alpha, double sigma,
                           int batch, size_t dim);
/* x = std z, z ~ N(0, I) from rng: the prior, unless p->from_x. */
void dfn_sampler_prior(const dfn_sampler_params *p, float *x, size_t n, double std, dfn_rng *rng);
/* x += scale z, z ~ N(0, I) from rng (z: scratch of n floats). */
void dfn_sampler_add_noise(float *x, float *z, size_t n, double scale, dfn_rng *rng);
/* End of a step: DFN_ERR_NUMERIC naming the sampler, the step and the sample
 * if x holds a NaN or Inf (the sampler then stops); else the user's hook, if any. */
dfn_status dfn_sampler_step(const dfn_sampler_params *p, const char *name, int step, int steps,
                            double t, const float *x, const float *x0, int batch, size_t dim);
/* x = E[x0 | x] at time t if p->denoise_final (one evaluation), then the
 * constraint at the data level (alpha 1, sigma 0); checked as
 * dfn_sampler_step checks a step, so that no sampler returns NaN or Inf; nothing
 * where sigma(t) = 0 (x is data there: rectified flow at t = 0). */
dfn_status dfn_sampler_denoise_final(dfn_denoiser *d, const dfn_sampler_params *p, const char *name,
                                     float *x, double t, int batch, size_t dim);
/* DFN_ERR_ARG naming the sampler when d is a rectified flow predicting eps or
 * score: the velocity at t = 1 (alpha = 0) needs x0 = (x - t eps) / (1 - t). */
dfn_status dfn_flow_check_prediction(const char *name, const dfn_denoiser *d);
/* DDPM / DDIM: clip x0 (batch, dim) to [-r, r] or threshold it dynamically, as p says. */
void dfn_sampler_postprocess_x0(const dfn_sampler_params *p, float *x0, int batch, size_t dim);
/* x0 and eps (batch, dim) at x, time t from one evaluation in the denoiser's
 * own kind, each converted from it (no round trip through the other). */
void dfn_sampler_eval_x0_eps(dfn_denoiser *d, float *x0, float *eps, const float *x, double t,
                        int batch, size_t dim);
/* stats->nfe = d->nfe - nfe0, steps; stats may be NULL. */
void dfn_sampler_report(dfn_sample_stats *stats, const dfn_denoiser *d, long nfe0, int steps,
                   int rejected);

#endif

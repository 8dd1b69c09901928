/* sde_solvers.c - the reverse-time SDE (Song et al. 2021 eq. 6, Anderson 1982)
 *     dx = [f(t) x - g(t)^2 grad log p_t(x)] dt + g(t) dw~,  t from 1 to t_end,
 * by Euler-Maruyama, and predictor-corrector sampling (alg. 4 VE, alg. 5 VP):
 * a reverse-diffusion (or Euler-Maruyama) predictor and a Langevin corrector.
 * Both run on the uniform grid t_i = 1 + i (t_end - 1) / N. Euler-Maruyama also
 * runs a discrete schedule, as the VP SDE of dfn_denoiser_coefficients (t from
 * T - 1 to 0). */
#include <math.h>
#include <string.h>

#include "sample/sample.h"

#define SDE_FITS (DFN_FITS_VP | DFN_FITS_SUBVP | DFN_FITS_VE)

static double grid_t(double t_lo, double t_hi, int i, int N) {
    return i == N ? t_lo : t_hi + (double)i / N * (t_lo - t_hi);
}

/* One Euler-Maruyama step of eq. 6 from t to t + dt (dt < 0). */
static void em_step(dfn_denoiser *d, float *x, float *score, float *z, double t, double dt,
                    int batch, size_t dim, dfn_rng *rng) {
    const size_t n = (size_t)batch * dim;
    double f, g;
    dfn_denoiser_coefficients(d, t, &f, &g);
    dfn_denoiser_eval(d, score, DFN_PRED_SCORE, x, t, batch, dim);
    for (size_t i = 0; i < n; i++) x[i] = (float)(x[i] + (f * x[i] - g * g * score[i]) * dt);
    dfn_sampler_add_noise(x, z, n, g * sqrt(-dt), rng);
}

dfn_status dfn_sample_euler_maruyama(dfn_denoiser *d, float *x, int batch, size_t dim,
                                     const dfn_sampler_params *in, dfn_rng *rng,
                                     dfn_sample_stats *stats) {
    dfn_sampler_params p;
    dfn_status st = dfn_sampler_begin("euler-maruyama", d, x, batch, dim, in, &p,
                                      DFN_FITS_DISCRETE | SDE_FITS, 1000);
    if (st != DFN_OK) return st;
    double t_lo, t_hi;
    dfn_sampler_t_range(d, &p, &t_lo, &t_hi);
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *score = dfn_malloc(n * sizeof(float)), *z = dfn_malloc(n * sizeof(float));
    double a0, s0;
    dfn_denoiser_marginal(d, t_hi, &a0, &s0);
    dfn_sampler_start(&p, x, batch, dim, a0, s0, dfn_denoiser_prior_std(d), rng);
    for (int i = 0; i < p.steps; i++) {
        const double t = grid_t(t_lo, t_hi, i, p.steps);
        const double t_next = grid_t(t_lo, t_hi, i + 1, p.steps);
        em_step(d, x, score, z, t, t_next - t, batch, dim, rng);
        dfn_denoiser_marginal(d, t_next, &a0, &s0);
        dfn_sampler_constrain(&p, x, a0, s0, batch, dim);
        if ((st = dfn_sampler_step(&p, "euler-maruyama", i + 1, p.steps, t, x, NULL, batch, dim)) != DFN_OK) break;
    }
    if (st == DFN_OK) st = dfn_sampler_denoise_final(d, &p, "euler-maruyama", x, t_lo, batch, dim);
    free(score);
    free(z);
    dfn_sampler_report(stats, d, nfe0, p.steps, 0);
    return st;
}

dfn_status dfn_sample_pc(dfn_denoiser *d, float *x, int batch, size_t dim,
                         const dfn_sampler_params *in, dfn_rng *rng, dfn_sample_stats *stats) {
    dfn_sampler_params p;
    dfn_status st = dfn_sampler_begin("pc", d, x, batch, dim, in, &p, SDE_FITS, 1000);
    if (st != DFN_OK) return st;
    if (p.corrector_steps < 0 || !(p.snr > 0.0))
        return dfn_set_error(DFN_ERR_ARG, "pc: corrector_steps = %d, snr = %g: need >= 0 and > 0",
                             p.corrector_steps, p.snr);
    double t_lo, t_hi;
    dfn_sampler_t_range(d, &p, &t_lo, &t_hi);
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *score = dfn_malloc(n * sizeof(float)), *z = dfn_malloc(n * sizeof(float));
    double a0, s0;
    dfn_denoiser_marginal(d, t_hi, &a0, &s0);
    dfn_sampler_start(&p, x, batch, dim, a0, s0, dfn_denoiser_prior_std(d), rng);
    for (int i = 0; i < p.steps; i++) {
        const double t = grid_t(t_lo, t_hi, i, p.steps), t_next = grid_t(t_lo, t_hi, i + 1, p.steps);
        /* The forward step t_next -> t exactly: x_t = a x_next + b z with
         * a = alpha(t)/alpha(t_next), b^2 = sigma(t)^2 - a^2 sigma(t_next)^2
         * (VE: a = 1, b^2 = sigma_i^2 - sigma_{i-1}^2; VP: a = sqrt(1 - beta_i)). */
        double al, sl, an, sn;
        dfn_denoiser_marginal(d, t, &al, &sl);
        dfn_denoiser_marginal(d, t_next, &an, &sn);
        const double a = al / an, b2 = fmax(0.0, sl * sl - a * a * sn * sn);
        /* Corrector (alg. 4/5): eps_i = 2 alpha_i (r ||z|| / ||s||)^2 with alpha_i = a^2
         * (VP: 1 - beta_i, VE: 1). As in score_sde's LangevinCorrector the norms
         * are per-sample norms averaged over the batch: per sample, ||s|| -> 0 at a
         * mode makes the step explode in low dimensions. So the step depends on
         * the batch as a whole (deterministically). */
        for (int c = 0; c < p.corrector_steps; c++) {
            dfn_denoiser_eval(d, score, DFN_PRED_SCORE, x, t, batch, dim);
            dfn_rng_normal(rng, z, n);
            double ns = 0.0, nz = 0.0;
            for (int bi = 0; bi < batch; bi++) {
                const float *sb = score + (size_t)bi * dim, *zb = z + (size_t)bi * dim;
                double s2 = 0.0, z2 = 0.0;
                for (size_t k = 0; k < dim; k++) s2 += (double)sb[k] * sb[k], z2 += (double)zb[k] * zb[k];
                ns += sqrt(s2) / batch;
                nz += sqrt(z2) / batch;
            }
            const double e = 2.0 * a * a * (p.snr * nz / fmax(ns, 1e-300)) * (p.snr * nz / fmax(ns, 1e-300));
            for (size_t k = 0; k < n; k++) x[k] = (float)(x[k] + e * score[k] + sqrt(2.0 * e) * z[k]);
        }
        if (p.predictor_em) {
            em_step(d, x, score, z, t, t_next - t, batch, dim, rng);
        } else {
            /* Reverse diffusion predictor (eq. 46-47): with the forward step
             * x_t = x_next + f(x_next) + G z, f(x) = (a - 1) x, G = b:
             * x_next = x - f(x) + b^2 s(x, t) + b z = (2 - a) x + b^2 s + b z. */
            dfn_denoiser_eval(d, score, DFN_PRED_SCORE, x, t, batch, dim);
            for (size_t k = 0; k < n; k++) x[k] = (float)((2.0 - a) * x[k] + b2 * score[k]);
            dfn_sampler_add_noise(x, z, n, sqrt(b2), rng);
        }
        dfn_sampler_constrain(&p, x, an, sn, batch, dim);
        if ((st = dfn_sampler_step(&p, "pc", i + 1, p.steps, t, x, NULL, batch, dim)) != DFN_OK) break;
    }
    if (st == DFN_OK) st = dfn_sampler_denoise_final(d, &p, "pc", x, t_lo, batch, dim);
    free(score);
    free(z);
    dfn_sampler_report(stats, d, nfe0, p.steps, 0);
    return st;
}

/* repaint.c - RePaint (Lugmayr et al. 2022, "RePaint: inpainting using denoising
 * diffusion probabilistic models", alg. 1): ancestral steps down a uniform grid
 * of levels, with the constraint (known region) imposed after each, and
 * resampling: at every jump_length-th level the state goes back up jump_length
 * levels by the forward process and comes down again, jump_n_sample - 1 times,
 * so that the generated part harmonises with the known one.
 *
 * Levels are positions 0..N of the grid: 0 is data (alpha 1, sigma 0), position
 * i >= 1 the time t_lo + (i - 1) / (N - 1) (t_hi - t_lo) (for a discrete
 * schedule with N = T: step i - 1, DDPM's own steps; see level()). Between any two levels
 * s < t, with a_ts = alpha_t / alpha_s and s_ts^2 = sigma_t^2 - a_ts^2 sigma_s^2
 * (Kingma et al. 2021 eq. 6-7):
 *   up:   x_t ~ q(x_t | x_s) = N(a_ts x_s, s_ts^2 I)
 *   down: x_s ~ q(x_s | x_t, x0^) = N(a_ts sigma_s^2 / sigma_t^2 x_t
 *                                    + alpha_s s_ts^2 / sigma_t^2 x0^,
 *                                    s_ts^2 sigma_s^2 / sigma_t^2 I)
 * (the DDPM posterior, eq. 7 of Ho et al. 2020, for any process). */
#include <math.h>
#include <string.h>

#include "sample/sample.h"

int dfn_repaint_schedule(int *out, int steps, int jump_length, int jump_n_sample) {
    /* positions: steps + 1, plus 2 j per resampling at each of the jump points */
    const int64_t points = steps >= 1 && jump_length >= 1 ? (steps - 1) / jump_length + 1 : 0;
    const int64_t total = (int64_t)steps + 1 + 2 * (int64_t)jump_length * points *
                                                   (jump_n_sample > 0 ? jump_n_sample - 1 : 0);
    if (steps >= 1 && jump_length >= 1 && jump_length <= steps && jump_n_sample >= 1 &&
        total > 100000000) {
        dfn_set_error(DFN_ERR_ARG, "repaint: jump_length = %d, jump_n_sample = %d for %d steps "
                                   "make up to %lld positions (at most 1e8)",
                      jump_length, jump_n_sample, steps, (long long)total);
        return -1;
    }
    if (steps < 1 || jump_length < 1 || jump_length > steps || jump_n_sample < 1) {
        dfn_set_error(DFN_ERR_ARG, "repaint: jump_length = %d, jump_n_sample = %d for %d steps: "
                                   "need 1 <= jump_length <= steps and jump_n_sample >= 1",
                      jump_length, jump_n_sample, steps);
        return -1;
    }
    /* jumps left at positions 1, 1 + j, 1 + 2j, ... with room for j levels above */
    int *jumps = dfn_calloc((size_t)steps + 1, sizeof(int));
    for (int pos = 1; pos + jump_length <= steps; pos += jump_length) jumps[pos] = jump_n_sample - 1;
    int n = 0, pos = steps;
    if (out) out[n] = pos;
    n++;
    while (pos > 0) {
        pos--;
        if (out) out[n] = pos;
        n++;
        if (jumps[pos] > 0) {
            jumps[pos]--;
            for (int k = 0; k < jump_length; k++) {
                pos++;
                if (out) out[n] = pos;
                n++;
            }
        }
    }
    free(jumps);
    return n;
}

/* alpha, sigma and time of grid position i. Where the interval reaches the
 * data itself (rectified flow: sigma(t_lo) = 0), positions 1..N are
 * t_lo + i / N (t_hi - t_lo) instead, so that only position 0 is noiseless. */
static void level(const dfn_denoiser *d, int i, int N, double t_lo, double t_hi, double *t,
                  double *alpha, double *sigma) {
    if (i == 0) {
        *t = t_lo;
        *alpha = 1.0;
        *sigma = 0.0;
        return;
    }
    double a_lo, s_lo;
    dfn_denoiser_marginal(d, t_lo, &a_lo, &s_lo);
    if (s_lo > 0.0) *t = N == 1 ? t_hi : t_lo + (double)(i - 1) / (N - 1) * (t_hi - t_lo);
    else *t = t_lo + (double)i / N * (t_hi - t_lo);
    dfn_denoiser_marginal(d, *t, alpha, sigma);
}

dfn_status dfn_sample_repaint(dfn_denoiser *d, float *x, int batch, size_t dim,
                              const dfn_sampler_params *in, dfn_rng *rng,
                              dfn_sample_stats *stats) {
    dfn_sampler_params p;
    const unsigned fits = DFN_FITS_DISCRETE | DFN_FITS_VP | DFN_FITS_SUBVP | DFN_FITS_VE |
                          DFN_FITS_FLOW;
    const int default_steps = d->schedule ? d->schedule->T : 250; /* RePaint's t_T = 250 */
    dfn_status st = dfn_sampler_begin("repaint", d, x, batch, dim, in, &p, fits, default_steps);
    if (st != DFN_OK) return st;
    if (d->sde && d->sde->kind == DFN_SDE_FLOW && p.strength >= 1.0 &&
        (d->kind == DFN_PRED_EPS || d->kind == DFN_PRED_SCORE))
        return dfn_set_error(DFN_ERR_ARG,
                             "repaint: a flow model predicting %s has no x0 at t = 1 (alpha = 0); "
                             "train the flow process to predict flow (its default), v or x0",
                             dfn_prediction_name(d->kind));
    const int N = p.steps;
    const int count = dfn_repaint_schedule(NULL, N, p.jump_length, p.jump_n_sample);
    if (count < 0) return DFN_ERR_ARG;
    int *sched = dfn_malloc((size_t)count * sizeof(int));
    dfn_repaint_schedule(sched, N, p.jump_length, p.jump_n_sample);
    double t_lo, t_hi;
    dfn_sampler_t_range(d, &p, &t_lo, &t_hi);
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *x0 = dfn_malloc(n * sizeof(float)), *z = dfn_malloc(n * sizeof(float));
    double t, a_t, s_t, a_s, s_s, ts;
    level(d, N, N, t_lo, t_hi, &t, &a_t, &s_t);
    dfn_sampler_start(&p, x, batch, dim, a_t, s_t, dfn_denoiser_prior_std(d), rng);
    int down = 0;
    for (int k = 1; k < count && st == DFN_OK; k++) {
        const int from = sched[k - 1], to = sched[k];
        if (to < from) { /* down: the posterior step with the x0 estimate */
            level(d, from, N, t_lo, t_hi, &t, &a_t, &s_t);
            level(d, to, N, t_lo, t_hi, &ts, &a_s, &s_s);
            dfn_denoiser_eval(d, x0, DFN_PRED_X0, x, t, batch, dim);
            dfn_sampler_postprocess_x0(&p, x0, batch, dim);
            const double a_ts = a_t / a_s, v_ts = s_t * s_t - a_ts * a_ts * s_s * s_s;
            const double cx = a_ts * s_s * s_s / (s_t * s_t), c0 = a_s * v_ts / (s_t * s_t);
            for (size_t i = 0; i < n; i++) x[i] = (float)(cx * x[i] + c0 * x0[i]);
            if (to > 0) dfn_sampler_add_noise(x, z, n, sqrt(fmax(0.0, v_ts * s_s * s_s) / (s_t * s_t)), rng);
            dfn_sampler_constrain(&p, x, a_s, s_s, batch, dim);
            down++;
            st = dfn_sampler_step(&p, "repaint", k, count - 1, ts, x, x0, batch, dim);
        } else { /* up: the forward process q(x_t | x_s) */
            level(d, from, N, t_lo, t_hi, &ts, &a_s, &s_s);
            level(d, to, N, t_lo, t_hi, &t, &a_t, &s_t);
            const double a_ts = a_t / a_s, v_ts = s_t * s_t - a_ts * a_ts * s_s * s_s;
            for (size_t i = 0; i < n; i++) x[i] = (float)(a_ts * x[i]);
            dfn_sampler_add_noise(x, z, n, sqrt(fmax(0.0, v_ts)), rng);
            st = dfn_sampler_step(&p, "repaint", k, count - 1, t, x, NULL, batch, dim);
        }
    }
    free(x0);
    free(z);
    free(sched);
    dfn_sampler_report(stats, d, nfe0, down, 0);
    return st;
}

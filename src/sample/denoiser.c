/* denoiser.c - the one interface every sampler calls: a prediction of a declared
 * kind at a time of a process (stable-diffusion.cpp's denoiser.hpp, k-diffusion's
 * external.py). Here live the process's noise levels as samplers see them, the
 * chunking of large batches, classifier-free guidance, and the conversion to the
 * kind a sampler wants (through dfn_prediction_convert, nowhere else). */
#include <math.h>
#include <string.h>

#include "sample/sample.h"

void dfn_denoiser_init(dfn_denoiser *d, dfn_denoise_fn fn, void *ctx, dfn_prediction kind,
                       const dfn_schedule *schedule, const dfn_sde *sde) {
    DFN_ASSERT(d != NULL);
    memset(d, 0, sizeof(*d));
    d->fn = fn;
    d->ctx = ctx;
    d->kind = kind;
    d->schedule = schedule;
    d->sde = sde;
    d->null_label = -1;
    d->guidance = 1.0;
    d->time_scale = 1.0;
}

dfn_status dfn_denoiser_validate(const dfn_denoiser *d) {
    DFN_ASSERT(d != NULL);
    if (!d->fn) return dfn_set_error(DFN_ERR_ARG, "denoiser: no function");
    if ((int)d->kind < 0 || d->kind >= DFN_PRED_COUNT)
        return dfn_set_error(DFN_ERR_ARG, "denoiser: prediction kind %d is not a dfn_prediction",
                             (int)d->kind);
    if (!d->schedule == !d->sde)
        return dfn_set_error(DFN_ERR_ARG, "denoiser: give exactly one process (a schedule or "
                                          "an sde), got %s",
                             d->schedule ? "both" : "none");
    if (d->schedule && d->schedule->T < 1)
        return dfn_set_error(DFN_ERR_ARG, "denoiser: schedule with T = %d", d->schedule->T);
    if (d->sde && dfn_sde_validate(d->sde) != DFN_OK) return DFN_ERR_ARG;
    if (d->labels && !isfinite(d->guidance))
        return dfn_set_error(DFN_ERR_ARG, "denoiser: guidance scale %g is not finite", d->guidance);
    if (d->guide && !isfinite(d->guide_scale))
        return dfn_set_error(DFN_ERR_ARG, "denoiser: classifier guidance scale %g is not finite",
                             d->guide_scale);
    if (d->guide && d->guide_scale != 0.0 && !d->labels)
        return dfn_set_error(DFN_ERR_ARG, "denoiser: classifier guidance needs the labels wanted");
    return DFN_OK;
}

/* A schedule between its steps: log SNR linear in t (k-diffusion's DiscreteSchedule
 * interpolates log sigma = -log SNR / 2 the same way), clamped to [0, T-1]. */
static double discrete_log_snr(const dfn_schedule *s, double t, int *exact) {
    if (!(t > 0.0)) t = 0.0;
    if (t > s->T - 1) t = s->T - 1;
    int i = (int)floor(t);
    double w = t - i;
    if (exact) *exact = w == 0.0 ? i : -1;
    if (w == 0.0) return s->log_snr[i];
    return (1.0 - w) * s->log_snr[i] + w * s->log_snr[i + 1];
}

void dfn_denoiser_marginal(const dfn_denoiser *d, double t, double *alpha, double *sigma) {
    DFN_ASSERT(d != NULL && (d->schedule || d->sde));
    if (d->sde) {
        dfn_sde_marginal(d->sde, t, alpha, sigma);
        return;
    }
    int i;
    double ls = discrete_log_snr(d->schedule, t, &i);
    if (i >= 0) { /* on a step: the schedule's own numbers */
        dfn_schedule_alpha_sigma(d->schedule, i, alpha, sigma);
        return;
    }
    /* alpha^2 = sigmoid(log SNR), sigma^2 = sigmoid(-log SNR) */
    if (alpha) *alpha = sqrt(1.0 / (1.0 + exp(-ls)));
    if (sigma) *sigma = sqrt(1.0 / (1.0 + exp(ls)));
}

double dfn_denoiser_lambda(const dfn_denoiser *d, double t) {
    DFN_ASSERT(d != NULL && (d->schedule || d->sde));
    if (d->sde) return dfn_sde_lambda(d->sde, t);
    return 0.5 * discrete_log_snr(d->schedule, t, NULL); /* lambda is half the log SNR */
}

double dfn_denoiser_t_from_lambda(const dfn_denoiser *d, double lambda) {
    DFN_ASSERT(d != NULL && (d->schedule || d->sde));
    if (d->sde) return dfn_sde_t_from_lambda(d->sde, lambda);
    const dfn_schedule *s = d->schedule;
    const double ls = 2.0 * lambda;
    if (s->T == 1 || ls >= s->log_snr[0]) return 0.0;
    if (ls <= s->log_snr[s->T - 1]) return s->T - 1;
    int lo = 0, hi = s->T - 1; /* log_snr[lo] > ls >= log_snr[hi], decreasing */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (s->log_snr[mid] > ls) lo = mid;
        else hi = mid;
    }
    return lo + (s->log_snr[lo] - ls) / (s->log_snr[lo] - s->log_snr[hi]);
}

void dfn_denoiser_t_range(const dfn_denoiser *d, double t_end, double *t_lo, double *t_hi) {
    DFN_ASSERT(d != NULL && (d->schedule || d->sde));
    if (d->schedule) {
        *t_lo = 0.0;
        *t_hi = d->schedule->T - 1;
        return;
    }
    if (!(t_end > 0.0)) { /* score_sde's sampling eps: 1e-3 for VP, 1e-5 for VE */
        switch (d->sde->kind) {
        case DFN_SDE_VE: t_end = 1e-5; break;
        case DFN_SDE_FLOW: t_end = 0.0; break;
        default: t_end = 1e-3; break;
        }
    }
    *t_lo = t_end;
    *t_hi = 1.0;
}

void dfn_denoiser_coefficients(const dfn_denoiser *d, double t, double *f, double *g) {
    DFN_ASSERT(d != NULL && (d->schedule || d->sde));
    if (d->sde) {
        dfn_sde_coefficients(d->sde, t, f, g);
        return;
    }
    const dfn_schedule *s = d->schedule;
    if (s->T < 2) { /* one step: no interval to move along */
        *f = *g = 0.0;
        return;
    }
    int i = (int)ceil(t) - 1; /* the interval (i, i + 1] that holds t */
    if (i < 0) i = 0;
    if (i > s->T - 2) i = s->T - 2;
    const double slope = s->log_snr[i + 1] - s->log_snr[i]; /* l'(t) < 0 */
    double sigma;
    dfn_denoiser_marginal(d, t, NULL, &sigma);
    *f = 0.5 * sigma * sigma * slope;
    *g = sigma * sqrt(fmax(-slope, 0.0));
}

double dfn_denoiser_prior_std(const dfn_denoiser *d) {
    DFN_ASSERT(d != NULL && (d->schedule || d->sde));
    return d->sde ? dfn_sde_prior_std(d->sde) : 1.0;
}

/* fn over rows [0, batch) in chunks of max_batch rows. */
static void call_chunked(dfn_denoiser *d, float *out, const float *x, double t, double a,
                         double s, const int *y, int batch, size_t dim) {
    const int chunk = d->max_batch > 0 ? d->max_batch : batch;
    for (int b0 = 0; b0 < batch; b0 += chunk) {
        const int nb = DFN_MIN(chunk, batch - b0);
        d->fn(d->ctx, out + (size_t)b0 * dim, x + (size_t)b0 * dim, d->time_scale * t, a, s,
              y ? y + b0 : NULL, nb, dim);
    }
}

void dfn_denoiser_eval(dfn_denoiser *d, float *out, dfn_prediction out_kind, const float *x,
                       double t, int batch, size_t dim) {
    DFN_ASSERT(d && d->fn && out && x && out != x && batch >= 0);
    double a, s;
    dfn_denoiser_marginal(d, t, &a, &s);
    const size_t n = (size_t)batch * dim;
    if (!d->labels || d->guidance == 1.0) {
        call_chunked(d, out, x, t, a, s, d->labels, batch, dim);
    } else if (d->guidance == 0.0) { /* the unconditional prediction alone */
        int *null = dfn_malloc((size_t)batch * sizeof(int) + 1);
        for (int b = 0; b < batch; b++) null[b] = d->null_label;
        call_chunked(d, out, x, t, a, s, null, batch, dim);
        free(null);
    } else {
        /* Classifier-free guidance (Ho & Salimans 2022 eq. 6) on the doubled
         * batch [x, x] with labels [y, null]. */
        float *x2 = dfn_malloc(2 * n * sizeof(float)), *o2 = dfn_malloc(2 * n * sizeof(float));
        int *y2 = dfn_malloc(2 * (size_t)batch * sizeof(int));
        memcpy(x2, x, n * sizeof(float));
        memcpy(x2 + n, x, n * sizeof(float));
        for (int b = 0; b < batch; b++) {
            y2[b] = d->labels[b];
            y2[batch + b] = d->null_label;
        }
        call_chunked(d, o2, x2, t, a, s, y2, 2 * batch, dim);
        const double g = d->guidance;
        for (size_t i = 0; i < n; i++)
            out[i] = (float)((double)o2[n + i] + g * ((double)o2[i] - (double)o2[n + i]));
        free(x2);
        free(o2);
        free(y2);
    }
    d->nfe++;
    if (d->guide && d->labels && d->guide_scale != 0.0 && s > 0.0 && a > 0.0) {
        /* eps~ = eps - sigma s grad_x log p(y | x_t) (Dhariwal & Nichol 2021 sec. 4.2),
         * i.e. score~ = score + s grad_x log p(y | x_t). Not at alpha = 0 (rectified
         * flow at t = 1): x_t is pure noise there, p(y | x_t) does not depend on x_t,
         * the gradient is 0, and eps -> x0 would divide by alpha. */
        float *grad = dfn_malloc((n + 1) * sizeof(float));
        const int chunk = d->max_batch > 0 ? d->max_batch : batch;
        for (int b0 = 0; b0 < batch; b0 += chunk) {
            const int nb = DFN_MIN(chunk, batch - b0);
            d->guide(d->guide_ctx, grad + (size_t)b0 * dim, x + (size_t)b0 * dim,
                     d->time_scale * t, a, s, d->labels + b0, nb, dim);
        }
        dfn_prediction_convert(out, DFN_PRED_EPS, out, d->kind, x, a, s, n);
        const double k = s * d->guide_scale;
        for (size_t i = 0; i < n; i++) out[i] = (float)((double)out[i] - k * grad[i]);
        free(grad);
        dfn_prediction_convert(out, out_kind, out, DFN_PRED_EPS, x, a, s, n);
        return;
    }
    dfn_prediction_convert(out, out_kind, out, d->kind, x, a, s, n);
}

void dfn_sampler_eval_x0_eps(dfn_denoiser *d, float *x0, float *eps, const float *x, double t,
                        int batch, size_t dim) {
    const size_t n = (size_t)batch * dim;
    double a, s;
    dfn_denoiser_eval(d, eps, d->kind, x, t, batch, dim);
    dfn_denoiser_marginal(d, t, &a, &s);
    dfn_prediction_convert(x0, DFN_PRED_X0, eps, d->kind, x, a, s, n);
    dfn_prediction_convert(eps, DFN_PRED_EPS, eps, d->kind, x, a, s, n);
}

/* The vjp hook over rows [0, batch) in chunks of max_batch rows. */
static void vjp_chunked(dfn_denoiser *d, float *pred, float *out, const float *x, const float *v,
                        double t, double a, double s, const int *y, int batch, size_t dim) {
    const int chunk = d->max_batch > 0 ? d->max_batch : batch;
    for (int b0 = 0; b0 < batch; b0 += chunk) {
        const int nb = DFN_MIN(chunk, batch - b0);
        const size_t o = (size_t)b0 * dim;
        d->vjp(d->ctx, pred + o, out + o, x + o, d->time_scale * t, a, s, v + o,
               y ? y + b0 : NULL, nb, dim);
    }
}

dfn_status dfn_denoiser_vjp(dfn_denoiser *d, float *pred, float *out, dfn_prediction out_kind,
                            const float *x, const float *v, double t, int batch, size_t dim) {
    DFN_ASSERT(d && out && x && v && out != x && out != v && batch >= 0);
    DFN_ASSERT((int)out_kind >= 0 && out_kind < DFN_PRED_COUNT);
    if (!d->vjp)
        return dfn_set_error(DFN_ERR_ARG, "denoiser: no vector-Jacobian product (vjp is NULL); "
                                          "dfn_model_denoiser and dfn_mixture_denoiser set one");
    if (d->guide && d->labels && d->guide_scale != 0.0)
        return dfn_set_error(DFN_ERR_ARG, "denoiser: no vector-Jacobian product through "
                                          "classifier guidance (likelihoods are of the model "
                                          "itself)");
    double a, s;
    dfn_denoiser_marginal(d, t, &a, &s);
    const size_t n = (size_t)batch * dim;
    float *p = pred ? pred : dfn_malloc((n + 1) * sizeof(float));
    if (!d->labels || d->guidance == 1.0) {
        vjp_chunked(d, p, out, x, v, t, a, s, d->labels, batch, dim);
    } else {
        /* Guidance is affine in the two predictions (Ho & Salimans 2022 eq. 6),
         * and so is its Jacobian: J = J(null) + s (J(c) - J(null)). */
        float *x2 = dfn_malloc(2 * n * sizeof(float)), *v2 = dfn_malloc(2 * n * sizeof(float));
        float *p2 = dfn_malloc(2 * n * sizeof(float)), *o2 = dfn_malloc(2 * n * sizeof(float));
        int *y2 = dfn_malloc(2 * (size_t)batch * sizeof(int));
        memcpy(x2, x, n * sizeof(float));
        memcpy(x2 + n, x, n * sizeof(float));
        memcpy(v2, v, n * sizeof(float));
        memcpy(v2 + n, v, n * sizeof(float));
        for (int b = 0; b < batch; b++) {
            y2[b] = d->labels[b];
            y2[batch + b] = d->null_label;
        }
        vjp_chunked(d, p2, o2, x2, v2, t, a, s, y2, 2 * batch, dim);
        const double g = d->guidance;
        for (size_t i = 0; i < n; i++) {
            p[i] = (float)((double)p2[n + i] + g * ((double)p2[i] - (double)p2[n + i]));
            out[i] = (float)((double)o2[n + i] + g * ((double)o2[i] - (double)o2[n + i]));
        }
        free(x2);
        free(v2);
        free(p2);
        free(o2);
        free(y2);
    }
    d->nfe++;
    /* Every conversion is linear in (prediction, x_t) with scalar coefficients:
     * out_kind = c_p pred + c_x x_t. Its Jacobian is c_p J + c_x I, so J^T v of
     * the converted prediction is the same conversion applied to (J^T v, v). */
    dfn_prediction_convert(out, out_kind, out, d->kind, v, a, s, n);
    if (pred) dfn_prediction_convert(pred, out_kind, pred, d->kind, x, a, s, n);
    else free(p);
    return DFN_OK;
}

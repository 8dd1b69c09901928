/* bound.c - the variational bound of a discrete-time diffusion model (Ho et al.
 * 2020 eq. 5; Sohl-Dickstein et al. 2015 eq. 14), in bits/dim, as
 * improved-diffusion's calc_bpd_loop computes it:
 *     -log p(x0) <= L_T + sum_{t=2..T} L_{t-1} + L_0,
 *     L_T     = KL(q(x_T | x0) || N(0, I)),
 *     L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)),  x_t ~ q(x_t | x0),
 *     L_0     = -log p(x0 | x1),                               x1 ~ q(x1 | x0).
 * q(x_{t-1} | x_t, x0) = N(coef_x0 x0 + coef_xt x_t, b~_t I) (DDPM eqs. 6-7);
 * p's mean is the same with the denoiser's x0 estimate in place of x0 (eq. 11
 * for an eps model, reached here through dfn_prediction_convert), its variance
 * fixed (section 3.2). The KL of two Gaussians per dimension is
 * 1/2 (log(v_p/v_q) + v_q/v_p - 1 + (m_q - m_p)^2 / v_p). */
#include <math.h>
#include <string.h>

#include "eval/eval.h"

static const char *const decoder_names[DFN_DECODER_COUNT] = {"gaussian", "8bit"};

const char *dfn_decoder_name(dfn_decoder dec) {
    return dfn_name_of(decoder_names, DFN_DECODER_COUNT, (int)dec);
}
int dfn_decoder_from_name(const char *name) {
    return dfn_name_lookup("decoder", name, decoder_names, DFN_DECODER_COUNT, NULL);
}

dfn_bound_params dfn_bound_params_init(void) {
    dfn_bound_params p;
    memset(&p, 0, sizeof(p));
    p.variance = DFN_VARIANCE_BETA_TILDE;
    p.decoder = DFN_DECODER_GAUSSIAN;
    p.t_samples = 0;
    p.clip_x0 = 0;
    return p;
}

#define LOG_2PI 1.8378770664093454836

/* log Q(z) = log P(N(0,1) > z), in the tail by the asymptotic series
 * (Abramowitz & Stegun 26.2.12) where erfc underflows. */
static double log_upper_tail(double z) {
    if (z < 25.0) return log(0.5 * erfc(z / sqrt(2.0)));
    const double z2 = z * z;
    return -0.5 * z2 - log(z) - 0.5 * LOG_2PI + log1p(-1.0 / z2 + 3.0 / (z2 * z2));
}

/* log P(bin of x | N(mean, var)) for 8-bit data in [-1, 1]: the bin
 * [x - 1/255, x + 1/255], open to -inf at x = -1 and to +inf at x = 1 (Ho et al.
 * 2020 eq. 13). Differences of tails on the side away from the mean keep their
 * precision: Phi(b) - Phi(a) = Q(a) - Q(b) = Q(a) (1 - Q(b)/Q(a)). */
static double log_discretised_gaussian(double x, double mean, double var) {
    const double s = sqrt(var), w = 1.0 / 255.0;
    const double lo = (x - w - mean) / s, hi = (x + w - mean) / s;
    const int bottom = x < -0.999, top = x > 0.999;
    if (bottom && top) return 0.0;
    if (bottom) return log_upper_tail(-hi);     /* Phi(hi) = Q(-hi) */
    if (top) return log_upper_tail(lo);         /* 1 - Phi(lo) = Q(lo) */
    if (lo >= 0.0) {
        const double la = log_upper_tail(lo), lb = log_upper_tail(hi);
        return la + log1p(-exp(lb - la));
    }
    if (hi <= 0.0) { /* mirror: Phi(hi) - Phi(lo) = Q(-hi) - Q(-lo) */
        const double la = log_upper_tail(-hi), lb = log_upper_tail(-lo);
        return la + log1p(-exp(lb - la));
    }
    return log1p(-0.5 * erfc(hi / sqrt(2.0)) - 0.5 * erfc(-lo / sqrt(2.0)));
}

/* term[b] (nats) for step index i (the papers' t = i + 1) at x_t. */
static void bound_term(dfn_denoiser *d, const dfn_bound_params *p, const float *x0,
                       const float *xt, float *x0hat, int i, int batch, size_t dim,
                       double *term) {
    const dfn_schedule *s = d->schedule;
    dfn_denoiser_eval(d, x0hat, DFN_PRED_X0, xt, (double)i, batch, dim);
    if (p->clip_x0)
        for (size_t k = 0; k < (size_t)batch * dim; k++)
            x0hat[k] = fminf(1.0f, fmaxf(-1.0f, x0hat[k]));
    const double cx0 = s->posterior_coef_x0[i], cxt = s->posterior_coef_xt[i];
    if (i == 0) { /* L_0: the decoder at the model's mean for x0 */
        const double var = p->variance == DFN_VARIANCE_BETA
                               ? s->beta[0]
                               : exp(s->posterior_log_variance_clipped[0]);
        for (int b = 0; b < batch; b++) {
            double nll = 0.0;
            for (size_t j = 0; j < dim; j++) {
                const size_t k = (size_t)b * dim + j;
                const double mean = cx0 * x0hat[k] + cxt * xt[k], x = x0[k];
                if (p->decoder == DFN_DECODER_8BIT) nll -= log_discretised_gaussian(x, mean, var);
                else nll += 0.5 * (LOG_2PI + log(var) + (x - mean) * (x - mean) / var);
            }
            term[b] = nll;
        }
        return;
    }
    const double vq = s->posterior_variance[i];
    const double vp = p->variance == DFN_VARIANCE_BETA ? s->beta[i] : vq;
    const double c = 0.5 * (log(vp / vq) + vq / vp - 1.0) * (double)dim;
    for (int b = 0; b < batch; b++) {
        double sq = 0.0; /* m_q - m_p = coef_x0 (x0 - x0hat) */
        for (size_t j = 0; j < dim; j++) {
            const size_t k = (size_t)b * dim + j;
            const double e = cx0 * ((double)x0[k] - x0hat[k]);
            sq += e * e;
        }
        term[b] = c + 0.5 * sq / vp;
    }
}

dfn_status dfn_variational_bound(dfn_denoiser *d, const float *x0, int batch, size_t dim,
                                 const dfn_bound_params *in, dfn_rng *rng, double *bpd,
                                 dfn_bound_result *res) {
    DFN_ASSERT(d && x0 && rng && batch >= 1 && dim >= 1);
    const dfn_bound_params p = in ? *in : dfn_bound_params_init();
    dfn_status st = dfn_denoiser_validate(d);
    if (st != DFN_OK) return st;
    if (!d->schedule)
        return dfn_set_error(DFN_ERR_ARG, "variational bound: needs a discrete schedule (the "
                                          "denoiser has a continuous %s process; use "
                                          "dfn_ode_nll)",
                             dfn_sde_kind_name(d->sde->kind));
    if (p.t_samples < 0 || p.t_samples == 1)
        return dfn_set_error(DFN_ERR_ARG, "variational bound: t_samples = %d: 0 (all terms) or "
                                          ">= 2 (an estimate with a standard error)",
                             p.t_samples);
    if ((int)p.decoder < 0 || p.decoder >= DFN_DECODER_COUNT || (int)p.variance < 0 ||
        p.variance >= DFN_VARIANCE_COUNT)
        return dfn_set_error(DFN_ERR_ARG, "variational bound: decoder %d or variance %d out of "
                                          "range",
                             (int)p.decoder, (int)p.variance);
    st = dfn_eval_check_finite("variational bound: data", x0, (size_t)batch, dim);
    if (st != DFN_OK) return st;
    const size_t n = (size_t)batch * dim;
    if (p.decoder == DFN_DECODER_8BIT)
        for (size_t k = 0; k < n; k++)
            if (!(x0[k] >= -1.0f && x0[k] <= 1.0f))
                return dfn_set_error(DFN_ERR_ARG, "variational bound: the 8-bit decoder needs "
                                                  "data in [-1, 1]; row %zu column %zu is %g",
                                     k / dim, k % dim, (double)x0[k]);
    const dfn_schedule *s = d->schedule;
    const int T = s->T;
    const long nfe0 = d->nfe;
    float *eps = dfn_malloc(n * sizeof(float)), *xt = dfn_malloc(n * sizeof(float));
    float *x0hat = dfn_malloc(n * sizeof(float));
    double *term = dfn_malloc((size_t)batch * sizeof(double));
    double *prior = dfn_malloc((size_t)batch * sizeof(double));
    double *sum = dfn_calloc((size_t)batch, sizeof(double));
    double *dec = dfn_calloc((size_t)batch, sizeof(double));
    /* L_T: KL(N(sqrt(abar_T) x0, (1 - abar_T) I) || N(0, I)) */
    const double ab = s->alpha_bar[T - 1];
    for (int b = 0; b < batch; b++) {
        double q = 0.0;
        for (size_t j = 0; j < dim; j++) q += (double)x0[(size_t)b * dim + j] * x0[(size_t)b * dim + j];
        prior[b] = 0.5 * (ab * q + (double)dim * ((1.0 - ab) - 1.0 - log1p(-ab)));
    }
    /* All terms: steps T-1..0. Sampled: L_0 exactly, then K steps i in 1..T-1
     * (the papers' t = 2..T) drawn from q(i) = 1/2 uniform + 1/2 (1/i) / H,
     * H = sum 1/i, each term weighted 1/q(i) (importance sampling with a
     * defensive mixture, Hesterberg 1995): with the exact mean, the KL at step
     * t is about dim / (2 t) for smooth data (the x0 error, of variance
     * ~sigma_t^2, over the reverse variance b_t), a harmonic series that a
     * uniform draw estimates with a large, heavy-tailed error. */
    const int K = p.t_samples ? p.t_samples + 1 : T;
    double *cdf = NULL;
    double H = 0.0;
    if (p.t_samples && T > 1) {
        cdf = dfn_malloc((size_t)T * sizeof(double));
        for (int i = 1; i < T; i++) H += 1.0 / i;
        double c = 0.0;
        for (int i = 1; i < T; i++) cdf[i] = (c += 0.5 / (T - 1) + 0.5 / (i * H));
    }
    double draw_sum = 0.0, draw_sum2 = 0.0; /* of the weighted per-draw batch means */
    for (int k = 0; k < K; k++) {
        int i = p.t_samples ? 0 : T - 1 - k;
        double weight = 1.0;
        if (p.t_samples && k > 0) {
            if (T < 2) break;
            float u;
            dfn_rng_uniform(rng, &u, 1);
            const double target = u * cdf[T - 1];
            int lo = 1, hi = T - 1; /* the first i with cdf[i] >= target */
            while (lo < hi) {
                const int mid = (lo + hi) / 2;
                if (cdf[mid] >= target) hi = mid;
                else lo = mid + 1;
            }
            i = lo;
            weight = 1.0 / ((0.5 / (T - 1) + 0.5 / (i * H)) * p.t_samples); /* 1 / (K q(i)) */
        }
        dfn_rng_normal(rng, eps, n);
        for (int b = 0; b < batch; b++) {
            const int ib = i;
            dfn_q_sample(xt + (size_t)b * dim, s, x0 + (size_t)b * dim, eps + (size_t)b * dim,
                         &ib, 1, dim);
        }
        bound_term(d, &p, x0, xt, x0hat, i, batch, dim, term);
        double m = 0.0;
        for (int b = 0; b < batch; b++) {
            if (i == 0) dec[b] = term[b];
            else sum[b] += weight * term[b];
            m += weight * term[b] / batch;
        }
        if (i != 0) {
            draw_sum += m;
            draw_sum2 += m * m;
        }
    }
    free(cdf);
    const double to_bpd = 1.0 / ((double)dim * log(2.0));
    double total = 0.0, tprior = 0.0, tdec = 0.0;
    for (int b = 0; b < batch; b++) {
        const double v = prior[b] + sum[b] + dec[b];
        if (!isfinite(v)) {
            st = dfn_set_error(DFN_ERR_NUMERIC, "variational bound: the bound of sample %d is "
                                                "not finite (%g)",
                               b, v);
            break;
        }
        if (bpd) bpd[b] = v * to_bpd;
        total += v / batch;
        tprior += prior[b] / batch;
        tdec += dec[b] / batch;
    }
    if (res && st == DFN_OK) {
        memset(res, 0, sizeof(*res));
        res->bpd = total * to_bpd;
        res->prior_bpd = tprior * to_bpd;
        res->decoder_bpd = tdec * to_bpd;
        res->kl_bpd = (total - tprior - tdec) * to_bpd;
        if (p.t_samples && T > 1) { /* sd of the K weighted draws (each 1/K of the sum) */
            const int Ks = p.t_samples;
            const double mean = draw_sum / Ks;
            const double var = fmax(0.0, (draw_sum2 - Ks * mean * mean) / (Ks - 1));
            res->bpd_se = sqrt(var * Ks) * to_bpd;
        }
        res->nfe = d->nfe - nfe0;
    }
    free(eps);
    free(xt);
    free(x0hat);
    free(term);
    free(prior);
    free(sum);
    free(dec);
    return st;
}

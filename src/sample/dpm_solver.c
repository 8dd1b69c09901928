/* dpm_solver.c - DPM-Solver (Lu et al. 2022a) and DPM-Solver++ (Lu et al. 2022b):
 * exponential integrators of the probability-flow ODE in lambda = log(alpha/sigma).
 * Over one step s -> t, h = lambda_t - lambda_s, the exact solution is
 *   data (++):  x_t = (sigma_t/sigma_s) x_s + sigma_t int_s^t e^lambda x0(lambda) dlambda
 *   noise:      x_t = (alpha_t/alpha_s) x_s - alpha_t int_s^t e^-lambda eps(lambda) dlambda
 * (2022b eq. 8, 2022a eq. 3.4); the solvers Taylor-expand x0 (eps) in lambda,
 * the derivatives estimated from earlier steps (multistep) or from an
 * intermediate point (singlestep). With phi_1 = e^{-h} - 1 (data) or e^h - 1
 * (noise), the updates for model values m0 (at s), m1, m2 (earlier) are
 *   order 1 (2022b eq. 9 / 2022a eq. 3.7; = DDIM):
 *     data  x_t = (sigma_t/sigma_s) x - alpha_t phi_1 m0
 *     noise x_t = (alpha_t/alpha_s) x - sigma_t phi_1 m0
 *   order 2 multistep (2022b alg. 2), D1 = (m0 - m1) / r0, r0 = h_prev / h:
 *     x_t = (order 1) - 1/2 c phi_1 D1, c = alpha_t (data) or sigma_t (noise)
 *   order 3 multistep (after the authors' multistep_dpm_solver_third_update, see the note):
 *     D1 = D1_0 + r0/(r0 + r1) (D1_0 - D1_1), D2 = (D1_0 - D1_1)/(r0 + r1),
 *     data  x_t = (order 1) + alpha_t phi_2 D1 - 2 alpha_t phi_3 D2,
 *           phi_2 = phi_1/h + 1, phi_3 = phi_2/h - 1/2
 *     noise x_t = (order 1) - sigma_t phi_2 D1 - 2 sigma_t phi_3 D2,
 *           phi_2 = phi_1/h - 1, phi_3 = phi_2/h - 1/2
 *   order 2 singlestep (2022a alg. 1 DPM-Solver-2, 2022b alg. 1 with r = 1/2):
 *     u = order 1 to s1 = t(lambda_s + h/2); x_t = (order 1) - c phi_1 (m(u, s1) - m0).
 * Multistep solvers start with lower orders (order 1, then 2), as the authors'
 * code does; the start-up error is damped by alpha_t ~ 0 at the first steps.
 *
 * Note on 3M: with D2 = (D1_0 - D1_1)/(r0 + r1) ~ h^2 x0''/2, the exact
 * integral sigma_t int e^lambda (lambda - lambda_s)^2/2 x0'' dlambda equals
 * -2 alpha_t phi_3 D2 (data; -2 sigma_t phi_3 D2 for noise), i.e.
 * alpha_t h^3 x0''/6 for small h. The reference codes (dpm-solver,
 * diffusers, k-diffusion) use -phi_3 D2, half of it, which leaves an O(h^3)
 * local error: global order 2 (measured 2.2 and falling in
 * tests/test_sample_order.c); with the factor 2 the measured order is >= 3. */
#include <math.h>
#include <string.h>

#include "sample/sample.h"

typedef struct {
    double t, lambda, alpha, sigma;
} level;

static level at(dfn_denoiser *d, double t) {
    level l;
    l.t = t;
    dfn_denoiser_marginal(d, t, &l.alpha, &l.sigma);
    l.lambda = log(l.alpha) - log(l.sigma);
    return l;
}

/* x = c_x x + sum_j c_j m_j over n elements. */
static void combine(float *out, double cx, const float *x, int m, const double *c,
                    float *const *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double acc = cx * x[i];
        for (int j = 0; j < m; j++) acc += c[j] * v[j][i];
        out[i] = (float)acc;
    }
}

/* The model output m at level l (x0 for ++, eps otherwise) after the x0 estimate
 * is clipped or thresholded as p asks (the reference code's correcting_x0_fn);
 * eps is made consistent with the corrected x0, as in DDIM. tmp: n floats (noise
 * form only). */
static void correct_x0(const dfn_sampler_params *p, float *m, int data, const float *x,
                       const level *l, float *tmp, int batch, size_t dim) {
    if (!p->clip_x0 && !p->dynamic_threshold) return;
    const size_t n = (size_t)batch * dim;
    if (data) {
        dfn_sampler_postprocess_x0(p, m, batch, dim);
        return;
    }
    dfn_prediction_convert(tmp, DFN_PRED_X0, m, DFN_PRED_EPS, x, l->alpha, l->sigma, n);
    dfn_sampler_postprocess_x0(p, tmp, batch, dim);
    dfn_prediction_convert(m, DFN_PRED_EPS, tmp, DFN_PRED_X0, x, l->alpha, l->sigma, n);
}

/* One multistep update s -> t of the given order with m[0] at s, m[1], m[2] at
 * the earlier levels lp[0], lp[1]. */
static void multistep_update(float *x, const level *s, const level *t, const level *lp,
                             float *const *m, int order, int data, size_t n) {
    const double h = t->lambda - s->lambda;
    const double phi1 = data ? expm1(-h) : expm1(h);
    const double cx = data ? t->sigma / s->sigma : t->alpha / s->alpha;
    const double c = data ? t->alpha : t->sigma; /* both signs: x_t = cx x - c phi_1 m0 ... */
    double w[3] = {-c * phi1, 0, 0};
    if (order == 2) {
        const double r0 = (s->lambda - lp[0].lambda) / h; /* D1 = (m0 - m1)/r0 */
        w[0] += -0.5 * c * phi1 / r0;
        w[1] = 0.5 * c * phi1 / r0;
    } else if (order == 3) {
        const double r0 = (s->lambda - lp[0].lambda) / h, r1 = (lp[0].lambda - lp[1].lambda) / h;
        const double phi2 = data ? phi1 / h + 1.0 : phi1 / h - 1.0, phi3 = phi2 / h - 0.5;
        /* D1_0 = (m0 - m1)/r0, D1_1 = (m1 - m2)/r1 as weights on (m0, m1, m2) */
        const double d10[3] = {1.0 / r0, -1.0 / r0, 0.0}, d11[3] = {0.0, 1.0 / r1, -1.0 / r1};
        const double sgn = data ? 1.0 : -1.0; /* data: + alpha phi_2 D1, noise: - sigma phi_2 D1 */
        for (int j = 0; j < 3; j++) {
            double D1 = d10[j] + r0 / (r0 + r1) * (d10[j] - d11[j]);
            double D2 = (d10[j] - d11[j]) / (r0 + r1);
            w[j] += sgn * c * phi2 * D1 - 2.0 * c * phi3 * D2; /* see the note above */
        }
    }
    combine(x, cx, x, order, w, m, n);
}

dfn_status dfn_sample_dpm(dfn_denoiser *d, float *x, int batch, size_t dim,
                          const dfn_sampler_params *in, dfn_rng *rng, dfn_sample_stats *stats,
                          int order, int multistep, int data) {
    char name[16];
    snprintf(name, sizeof(name), "dpm%s%d%s", data ? "++" : "", order,
             order == 1 ? "" : multistep ? "m" : "s");
    dfn_sampler_params p;
    const unsigned fits = DFN_FITS_DISCRETE | DFN_FITS_VP | DFN_FITS_SUBVP;
    dfn_status st = dfn_sampler_begin(name, d, x, batch, dim, in, &p, fits, 20);
    if (st != DFN_OK) return st;
    if (order < 1 || order > 3 || (!multistep && order != 2 && order != 1))
        return dfn_set_error(DFN_ERR_ARG, "%s: order %d %s is not implemented (multistep 1-3, "
                                          "singlestep 2)",
                             name, order, multistep ? "multistep" : "singlestep");
    if ((int)p.time_grid < 0 || p.time_grid >= DFN_GRID_COUNT)
        return dfn_set_error(DFN_ERR_ARG, "%s: time grid %d unknown (known: lambda, time)", name,
                             (int)p.time_grid);
    double t_lo, t_hi;
    dfn_sampler_t_range(d, &p, &t_lo, &t_hi);
    const int N = p.steps;
    const dfn_prediction kind = data ? DFN_PRED_X0 : DFN_PRED_EPS;
    /* time steps: uniform in lambda (2022a section 3.4) or in t */
    double *ts = dfn_malloc(((size_t)N + 1) * sizeof(double));
    const double l_hi = dfn_denoiser_lambda(d, t_hi), l_lo = dfn_denoiser_lambda(d, t_lo);
    for (int i = 0; i <= N; i++)
        ts[i] = i == 0 ? t_hi : i == N ? t_lo
                : p.time_grid == DFN_GRID_TIME
                    ? t_hi + (double)i / N * (t_lo - t_hi)
                    : dfn_denoiser_t_from_lambda(d, l_hi + (double)i / N * (l_lo - l_hi));
    const size_t n = (size_t)batch * dim;
    const long nfe0 = d->nfe;
    float *m[3], *u = dfn_malloc(n * sizeof(float));
    /* scratch of the noise form's x0 correction (the data form corrects m in place) */
    float *tmp = !data && (p.clip_x0 || p.dynamic_threshold) ? dfn_malloc(n * sizeof(float)) : NULL;
    for (int j = 0; j < 3; j++) m[j] = dfn_malloc(n * sizeof(float));
    level lp[2];
    const level l0 = at(d, ts[0]);
    dfn_sampler_start(&p, x, batch, dim, l0.alpha, l0.sigma, 1.0, rng);
    for (int i = 0; i < N; i++) {
        const level s = at(d, ts[i]), t = at(d, ts[i + 1]);
        float *oldest = m[2]; /* history: m[0] newest */
        m[2] = m[1];
        m[1] = m[0];
        m[0] = oldest;
        dfn_denoiser_eval(d, m[0], kind, x, s.t, batch, dim);
        correct_x0(&p, m[0], data, x, &s, tmp, batch, dim);
        if (multistep) {
            int ord = DFN_MIN(order, i + 1);
            if (p.lower_order_final && N < 15) ord = DFN_MIN(ord, N - i);
            multistep_update(x, &s, &t, lp, m, ord, data, n);
        } else if (order == 1) {
            multistep_update(x, &s, &t, lp, m, 1, data, n);
        } else { /* singlestep 2 */
            const level s1 = at(d, dfn_denoiser_t_from_lambda(d, s.lambda + 0.5 * (t.lambda - s.lambda)));
            memcpy(u, x, n * sizeof(float));
            multistep_update(u, &s, &s1, lp, m, 1, data, n);
            dfn_denoiser_eval(d, m[2], kind, u, s1.t, batch, dim);
            correct_x0(&p, m[2], data, u, &s1, tmp, batch, dim);
            const double h = t.lambda - s.lambda, phi1 = data ? expm1(-h) : expm1(h);
            const double c = data ? t.alpha : t.sigma;
            /* -c phi_1 m0 - c phi_1 (m(u, s1) - m0) = -c phi_1 m(u, s1): only m[2]
             * enters (m[1] holds nothing yet at the first step) */
            const double w = -c * phi1;
            combine(x, data ? t.sigma / s.sigma : t.alpha / s.alpha, x, 1, &w, &m[2], n);
        }
        lp[1] = lp[0];
        lp[0] = s;
        dfn_sampler_constrain(&p, x, t.alpha, t.sigma, batch, dim);
        st = dfn_sampler_step(&p, name, i + 1, N, t.t, x, data ? m[0] : NULL, batch, dim);
        if (st != DFN_OK) break;
    }
    if (st == DFN_OK) st = dfn_sampler_denoise_final(d, &p, name, x, t_lo, batch, dim);
    for (int j = 0; j < 3; j++) free(m[j]);
    free(u);
    free(tmp);
    free(ts);
    dfn_sampler_report(stats, d, nfe0, N, 0);
    return st;
}

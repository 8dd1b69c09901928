/* mixture.c - the exact denoiser of a Gaussian mixture p(x0) = sum_k w_k N(m_k, S_k).
 *
 * Under x_t = alpha x0 + sigma eps the mixture stays a mixture: component k
 * becomes N(alpha m_k, C_k), C_k = alpha^2 S_k + sigma^2 I. With S_k = U diag(l) U^T
 * (Jacobi, once) C_k = U diag(alpha^2 l + sigma^2) U^T, and for z = U^T (x - alpha m_k):
 *   log N(x; alpha m_k, C_k) = -1/2 sum_i z_i^2 / c_i - 1/2 sum_i log c_i + const,
 *   E[eps | x, k] = sigma C_k^{-1} (x - alpha m_k) = sigma U (z / c),
 *   E[x0 | x, k]  = m_k + alpha S_k C_k^{-1} (x - alpha m_k) = m_k + alpha U (l z / c)
 * (Gaussian conditioning; Bishop 2006 eq. 2.116), and the posterior means are
 * the responsibility-weighted sums. The score is -E[eps | x] / sigma (Tweedie;
 * Efron 2011), so every sampler can be run against the exact answer. */
#include <math.h>
#include <string.h>

#include <lapacke.h>

#include "sample/sample.h"

struct dfn_mixture {
    int D, K;
    double *w;       /* (K) normalised */
    float *means_f;  /* (K, D) as given */
    double *means;   /* (K, D) */
    double *U;       /* (K, D, D) eigenvectors in columns: U[k][i*D + j] = U_ij */
    double *l;       /* (K, D) eigenvalues */
};

/* Eigen-decomposition of the symmetric D x D matrix a (destroyed) by cyclic
 * Jacobi rotations (Golub & Van Loan 2013 alg. 8.5.3): a -> diag(l), v columns. */
static void jacobi_eigen(double *a, double *v, double *l, int D) {
    for (int i = 0; i < D * D; i++) v[i] = 0.0;
    for (int i = 0; i < D; i++) v[i * D + i] = 1.0;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, diag = 0.0;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                if (i != j) off += a[i * D + j] * a[i * D + j];
                else diag += a[i * D + i] * a[i * D + i];
            }
        if (off <= 1e-30 * diag) break;
        for (int p = 0; p < D; p++)
            for (int q = p + 1; q < D; q++) {
                double apq = a[p * D + q];
                if (apq == 0.0) continue;
                double theta = (a[q * D + q] - a[p * D + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < D; k++) { /* a = a J */
                    double akp = a[k * D + p], akq = a[k * D + q];
                    a[k * D + p] = c * akp - s * akq;
                    a[k * D + q] = s * akp + c * akq;
                }
                for (int k = 0; k < D; k++) { /* a = J^T a */
                    double apk = a[p * D + k], aqk = a[q * D + k];
                    a[p * D + k] = c * apk - s * aqk;
                    a[q * D + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < D; k++) { /* v = v J */
                    double vkp = v[k * D + p], vkq = v[k * D + q];
                    v[k * D + p] = c * vkp - s * vkq;
                    v[k * D + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < D; i++) l[i] = a[i * D + i];
}

dfn_status dfn_mixture_new(dfn_mixture **out, const dfn_mixture_params *p) {
    DFN_ASSERT(out && p);
    *out = NULL;
    const int D = p->dim, K = p->components;
    if (D < 1 || K < 1)
        return dfn_set_error(DFN_ERR_ARG, "mixture: dim = %d, components = %d, need >= 1", D, K);
    DFN_ASSERT(p->means != NULL);
    double wsum = 0.0;
    for (int k = 0; k < K; k++) {
        double w = p->weights ? p->weights[k] : 1.0;
        if (!(w >= 0.0 && isfinite(w)))
            return dfn_set_error(DFN_ERR_ARG, "mixture: weight %d is %g, need >= 0", k, w);
        wsum += w;
        if (!p->covs && p->stds && !(p->stds[k] > 0.0 && isfinite(p->stds[k])))
            return dfn_set_error(DFN_ERR_ARG, "mixture: std of component %d is %g, need > 0", k,
                                 p->stds[k]);
    }
    if (!(wsum > 0.0)) return dfn_set_error(DFN_ERR_ARG, "mixture: all weights are zero");
    dfn_mixture *m = dfn_calloc(1, sizeof(*m));
    m->D = D;
    m->K = K;
    m->w = dfn_malloc((size_t)K * sizeof(double));
    m->means_f = dfn_malloc((size_t)K * D * sizeof(float));
    m->means = dfn_malloc((size_t)K * D * sizeof(double));
    m->U = dfn_malloc((size_t)K * D * D * sizeof(double));
    m->l = dfn_malloc((size_t)K * D * sizeof(double));
    memcpy(m->means_f, p->means, (size_t)K * D * sizeof(float));
    double *a = dfn_malloc((size_t)D * D * sizeof(double));
    for (int k = 0; k < K; k++) {
        m->w[k] = (p->weights ? p->weights[k] : 1.0) / wsum;
        for (int i = 0; i < D; i++) m->means[(size_t)k * D + i] = p->means[(size_t)k * D + i];
        double *U = m->U + (size_t)k * D * D, *l = m->l + (size_t)k * D;
        if (!p->covs) {
            double s = p->stds ? p->stds[k] : 1.0;
            for (int i = 0; i < D * D; i++) U[i] = 0.0;
            for (int i = 0; i < D; i++) U[i * D + i] = 1.0, l[i] = s * s;
            continue;
        }
        const float *S = p->covs + (size_t)k * D * D;
        double scale = 0.0;
        for (int i = 0; i < D * D; i++) scale = fmax(scale, fabs((double)S[i]));
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                if (!(fabs((double)S[i * D + j] - S[j * D + i]) <= 1e-6 * scale)) {
                    free(a);
                    dfn_mixture_free(m);
                    return dfn_set_error(DFN_ERR_ARG,
                                         "mixture: covariance of component %d is not symmetric "
                                         "(entry %d,%d is %g, %d,%d is %g)",
                                         k, i, j, S[i * D + j], j, i, S[j * D + i]);
                }
                a[i * D + j] = 0.5 * ((double)S[i * D + j] + S[j * D + i]);
            }
        jacobi_eigen(a, U, l, D);
        for (int i = 0; i < D; i++)
            if (!(l[i] > 1e-12 * scale)) {
                const double bad = l[i];
                free(a);
                dfn_mixture_free(m);
                return dfn_set_error(DFN_ERR_ARG,
                                     "mixture: covariance of component %d is not positive "
                                     "definite (eigenvalue %g)",
                                     k, bad);
            }
    }
    free(a);
    *out = m;
    return DFN_OK;
}

void dfn_mixture_free(dfn_mixture *m) {
    if (!m) return;
    free(m->w);
    free(m->means_f);
    free(m->means);
    free(m->U);
    free(m->l);
    free(m);
}

int dfn_mixture_dim(const dfn_mixture *m) { return m->D; }
int dfn_mixture_components(const dfn_mixture *m) { return m->K; }
double dfn_mixture_weight(const dfn_mixture *m, int k) {
    DFN_ASSERT(k >= 0 && k < m->K);
    return m->w[k];
}
const float *dfn_mixture_mean(const dfn_mixture *m, int k) {
    DFN_ASSERT(k >= 0 && k < m->K);
    return m->means_f + (size_t)k * m->D;
}

void dfn_mixture_sample(const dfn_mixture *m, float *x, int *labels, int n, dfn_rng *rng) {
    DFN_ASSERT(m && x && rng && n >= 0);
    const int D = m->D;
    float *u = dfn_malloc(((size_t)n + 1) * sizeof(float));
    float *z = dfn_malloc(((size_t)n * D + 1) * sizeof(float));
    dfn_rng_uniform(rng, u, (size_t)n);
    dfn_rng_normal(rng, z, (size_t)n * D);
    for (int b = 0; b < n; b++) {
        int k = 0;
        double c = m->w[0];
        while (k < m->K - 1 && u[b] >= c) c += m->w[++k];
        const double *U = m->U + (size_t)k * D * D, *l = m->l + (size_t)k * D;
        const float *zb = z + (size_t)b * D;
        for (int i = 0; i < D; i++) { /* x = m_k + U diag(sqrt l) z */
            double acc = m->means[(size_t)k * D + i];
            for (int j = 0; j < D; j++) acc += U[i * D + j] * sqrt(l[j]) * zb[j];
            x[(size_t)b * D + i] = (float)acc;
        }
        if (labels) labels[b] = k;
    }
    free(u);
    free(z);
}

/* For row x: zc[k*D + j] = (U_k^T (x - alpha m_k))_j / c_kj and lz[k] = log w_k
 * - 1/2 sum_j z_j^2 / c_kj - 1/2 sum_j log c_kj (the log density up to
 * -D/2 log 2 pi); returns max_k lz[k]. */
static double component_terms(const dfn_mixture *m, const float *xb, double alpha, double sigma,
                              double *zc, double *lz) {
    const int D = m->D, K = m->K;
    double lmax = -INFINITY;
    for (int k = 0; k < K; k++) {
        const double *U = m->U + (size_t)k * D * D, *l = m->l + (size_t)k * D;
        const double *mu = m->means + (size_t)k * D;
        double q = 0.0, logdet = 0.0;
        for (int j = 0; j < D; j++) { /* z_j = (U^T (x - alpha m))_j */
            double zj = 0.0;
            for (int i = 0; i < D; i++) zj += U[i * D + j] * ((double)xb[i] - alpha * mu[i]);
            double c = alpha * alpha * l[j] + sigma * sigma;
            zc[(size_t)k * D + j] = zj / c;
            q += zj * zj / c;
            logdet += log(c);
        }
        lz[k] = m->w[k] > 0.0 ? log(m->w[k]) - 0.5 * q - 0.5 * logdet : -INFINITY;
        if (lz[k] > lmax) lmax = lz[k];
    }
    return lmax;
}

void dfn_mixture_posterior(const dfn_mixture *m, float *x0, float *eps, const float *x,
                           double alpha, double sigma, int n) {
    DFN_ASSERT(m && x && n >= 0);
    const int D = m->D, K = m->K;
#pragma omp parallel
    {
        double *zc = dfn_malloc((size_t)K * D * sizeof(double)); /* z/c per component */
        double *lz = dfn_malloc((size_t)K * sizeof(double));     /* log w_k N(...) */
        double *acc_x0 = dfn_malloc((size_t)D * sizeof(double));
        double *acc_eps = dfn_malloc((size_t)D * sizeof(double));
#pragma omp for schedule(static)
        for (int b = 0; b < n; b++) {
            const float *xb = x + (size_t)b * D;
            const double lmax = component_terms(m, xb, alpha, sigma, zc, lz);
            double rsum = 0.0;
            for (int k = 0; k < K; k++) rsum += (lz[k] = exp(lz[k] - lmax));
            for (int i = 0; i < D; i++) acc_x0[i] = acc_eps[i] = 0.0;
            for (int k = 0; k < K; k++) {
                const double r = lz[k] / rsum;
                if (r == 0.0) continue;
                const double *U = m->U + (size_t)k * D * D, *l = m->l + (size_t)k * D;
                const double *v = zc + (size_t)k * D;
                for (int i = 0; i < D; i++) {
                    double ue = 0.0, ux = 0.0; /* (U (z/c))_i, (U (l z/c))_i */
                    for (int j = 0; j < D; j++) {
                        ue += U[i * D + j] * v[j];
                        ux += U[i * D + j] * l[j] * v[j];
                    }
                    acc_eps[i] += r * sigma * ue;
                    acc_x0[i] += r * (m->means[(size_t)k * D + i] + alpha * ux);
                }
            }
            for (int i = 0; i < D; i++) {
                if (x0) x0[(size_t)b * D + i] = (float)acc_x0[i];
                if (eps) eps[(size_t)b * D + i] = (float)acc_eps[i];
            }
        }
        free(zc);
        free(lz);
        free(acc_x0);
        free(acc_eps);
    }
}

void dfn_mixture_log_prob(const dfn_mixture *m, double *out, const float *x, double alpha,
                          double sigma, int n) {
    DFN_ASSERT(m && out && x && n >= 0);
    const int D = m->D, K = m->K;
    const double log_2pi = 1.8378770664093454836; /* log 2 pi */
#pragma omp parallel
    {
        double *zc = dfn_malloc((size_t)K * D * sizeof(double));
        double *lz = dfn_malloc((size_t)K * sizeof(double));
#pragma omp for schedule(static)
        for (int b = 0; b < n; b++) { /* log sum_k exp(lz_k), max subtracted */
            const double lmax = component_terms(m, x + (size_t)b * D, alpha, sigma, zc, lz);
            double sum = 0.0;
            for (int k = 0; k < K; k++) sum += exp(lz[k] - lmax);
            out[b] = lmax + log(sum) - 0.5 * D * log_2pi;
        }
        free(zc);
        free(lz);
    }
}

/* J^T v of E[x0 | x] and of E[eps | x] in closed form. With responsibilities
 * r_k, g_k = -C_k^{-1} (x - alpha m_k), s = sum_k r_k g_k (the score),
 * d r_k / dx = r_k (g_k - s), and per component x0_k = m_k + alpha S_k C_k^{-1}
 * (x - alpha m_k) (Bishop 2006 eq. 2.116):
 *   J_s   = sum_k r_k (g_k g_k^T - C_k^{-1}) - s s^T   (symmetric)
 *   J_eps = -sigma J_s
 *   J_x0  = alpha sum_k r_k S_k C_k^{-1} + sum_k r_k x0_k (g_k - s)^T,
 * so J_x0^T v = alpha sum_k r_k C_k^{-1} S_k v + sum_k r_k (g_k - s)(x0_k . v),
 * C_k^{-1} S_k = U diag(l/c) U^T. Nothing divides by alpha: exact at alpha = 0
 * (flow at t = 1). In double; jx0, jeps (n, D), either may be NULL. */
static void mixture_vjp_x0_eps(const dfn_mixture *m, float *jx0, float *jeps, const float *x,
                               const float *v, double alpha, double sigma, int n) {
    const int D = m->D, K = m->K;
#pragma omp parallel
    {
        double *zc = dfn_malloc((size_t)K * D * sizeof(double));
        double *lz = dfn_malloc((size_t)K * sizeof(double));
        double *g = dfn_malloc((size_t)K * D * sizeof(double)); /* g_k */
        double *x0v = dfn_malloc((size_t)K * sizeof(double));   /* x0_k . v */
        double *gv = dfn_malloc((size_t)K * sizeof(double));    /* g_k . v */
        double *s = dfn_malloc((size_t)D * sizeof(double));
        double *ax = dfn_malloc((size_t)D * sizeof(double));
        double *ae = dfn_malloc((size_t)D * sizeof(double));
        double *uv = dfn_malloc((size_t)D * sizeof(double));
#pragma omp for schedule(static)
        for (int b = 0; b < n; b++) {
            const float *xb = x + (size_t)b * D, *vb = v + (size_t)b * D;
            const double lmax = component_terms(m, xb, alpha, sigma, zc, lz);
            double rsum = 0.0;
            for (int k = 0; k < K; k++) rsum += (lz[k] = exp(lz[k] - lmax));
            for (int i = 0; i < D; i++) s[i] = ax[i] = ae[i] = 0.0;
            for (int k = 0; k < K; k++) {
                const double r = lz[k] / rsum;
                lz[k] = r;
                if (r == 0.0) continue;
                const double *U = m->U + (size_t)k * D * D, *l = m->l + (size_t)k * D;
                const double *w = zc + (size_t)k * D, *mu = m->means + (size_t)k * D;
                double *gk = g + (size_t)k * D;
                gv[k] = x0v[k] = 0.0;
                for (int i = 0; i < D; i++) {
                    double ug = 0.0, ux = 0.0; /* (U (z/c))_i, (U (l z/c))_i */
                    for (int j = 0; j < D; j++) {
                        ug += U[i * D + j] * w[j];
                        ux += U[i * D + j] * l[j] * w[j];
                    }
                    gk[i] = -ug;
                    gv[k] += gk[i] * vb[i];
                    x0v[k] += (mu[i] + alpha * ux) * vb[i];
                    s[i] += r * gk[i];
                }
                for (int j = 0; j < D; j++) { /* uv = U^T v */
                    double acc_u = 0.0;
                    for (int i = 0; i < D; i++) acc_u += U[i * D + j] * vb[i];
                    uv[j] = acc_u / (alpha * alpha * l[j] + sigma * sigma);
                }
                for (int i = 0; i < D; i++) {
                    double civ = 0.0, csv = 0.0; /* (C^{-1} v)_i, (C^{-1} S v)_i */
                    for (int j = 0; j < D; j++) {
                        civ += U[i * D + j] * uv[j];
                        csv += U[i * D + j] * l[j] * uv[j];
                    }
                    ae[i] += r * (gk[i] * gv[k] - civ);
                    ax[i] += r * alpha * csv;
                }
            }
            double sv = 0.0, x0sv = 0.0; /* s . v, sum_k r_k x0_k . v */
            for (int i = 0; i < D; i++) sv += s[i] * vb[i];
            for (int k = 0; k < K; k++)
                if (lz[k] != 0.0) x0sv += lz[k] * x0v[k];
            for (int k = 0; k < K; k++) {
                if (lz[k] == 0.0) continue;
                const double *gk = g + (size_t)k * D;
                for (int i = 0; i < D; i++) ax[i] += lz[k] * gk[i] * x0v[k];
            }
            for (int i = 0; i < D; i++) {
                /* sum_k r_k (g_k - s)(x0_k . v) = sum_k r_k g_k (x0_k . v) - s x0sv */
                if (jx0) jx0[(size_t)b * D + i] = (float)(ax[i] - s[i] * x0sv);
                if (jeps) jeps[(size_t)b * D + i] = (float)(-sigma * (ae[i] - s[i] * sv));
            }
        }
        free(zc);
        free(lz);
        free(g);
        free(x0v);
        free(gv);
        free(s);
        free(ax);
        free(ae);
        free(uv);
    }
}

/* One denoise function per output kind: the kind is not part of the context, so
 * one mixture serves several denoisers. */
static void mixture_denoise(dfn_prediction kind, void *ctx, float *out, const float *x,
                            double alpha, double sigma, int batch, size_t dim) {
    const dfn_mixture *m = ctx;
    DFN_ASSERT(dim == (size_t)m->D);
    const size_t n = (size_t)batch * dim;
    float *x0 = dfn_malloc((n + 1) * sizeof(float)), *eps = dfn_malloc((n + 1) * sizeof(float));
    dfn_mixture_posterior(m, x0, eps, x, alpha, sigma, batch);
    dfn_prediction_target(out, kind, x0, eps, alpha, sigma, n);
    free(x0);
    free(eps);
}

/* The prediction as mixture_denoise gives it, and J^T v of it: every kind is
 * a fixed linear combination of x0 and eps (dfn_prediction_target), and so is
 * its Jacobian. */
static void mixture_vjp(dfn_prediction kind, void *ctx, float *pred, float *out, const float *x,
                        double alpha, double sigma, const float *v, int batch, size_t dim) {
    const dfn_mixture *m = ctx;
    DFN_ASSERT(dim == (size_t)m->D);
    const size_t n = (size_t)batch * dim;
    if (pred) mixture_denoise(kind, ctx, pred, x, alpha, sigma, batch, dim);
    float *jx0 = dfn_malloc((n + 1) * sizeof(float)), *jeps = dfn_malloc((n + 1) * sizeof(float));
    mixture_vjp_x0_eps(m, jx0, jeps, x, v, alpha, sigma, batch);
    dfn_prediction_target(out, kind, jx0, jeps, alpha, sigma, n);
    free(jx0);
    free(jeps);
}

#define MIXTURE_FN(name, kind)                                                                  \
    static void name(void *ctx, float *out, const float *x, double t, double alpha,             \
                     double sigma, const int *y, int batch, size_t dim) {                       \
        (void)t;                                                                                \
        (void)y;                                                                                \
        mixture_denoise(kind, ctx, out, x, alpha, sigma, batch, dim);                           \
    }
#define MIXTURE_VJP(name, kind)                                                                 \
    static void name(void *ctx, float *pred, float *out, const float *x, double t, double alpha, \
                     double sigma, const float *v, const int *y, int batch, size_t dim) {       \
        (void)t;                                                                                \
        (void)y;                                                                                \
        mixture_vjp(kind, ctx, pred, out, x, alpha, sigma, v, batch, dim);                      \
    }
MIXTURE_VJP(mixture_vjp_eps, DFN_PRED_EPS)
MIXTURE_VJP(mixture_vjp_x0, DFN_PRED_X0)
MIXTURE_VJP(mixture_vjp_v, DFN_PRED_V)
MIXTURE_VJP(mixture_vjp_score, DFN_PRED_SCORE)
MIXTURE_VJP(mixture_vjp_flow, DFN_PRED_FLOW)
MIXTURE_FN(mixture_eps, DFN_PRED_EPS)
MIXTURE_FN(mixture_x0, DFN_PRED_X0)
MIXTURE_FN(mixture_v, DFN_PRED_V)
MIXTURE_FN(mixture_score, DFN_PRED_SCORE)
MIXTURE_FN(mixture_flow, DFN_PRED_FLOW)

void dfn_mixture_denoiser(dfn_denoiser *d, dfn_mixture *m, dfn_prediction kind,
                          const dfn_schedule *schedule, const dfn_sde *sde) {
    static const dfn_denoise_fn fns[DFN_PRED_COUNT] = {mixture_eps, mixture_x0, mixture_v,
                                                       mixture_score, mixture_flow};
    DFN_ASSERT(d && m && (int)kind >= 0 && kind < DFN_PRED_COUNT);
    static const dfn_denoise_vjp_fn vjps[DFN_PRED_COUNT] = {
        mixture_vjp_eps, mixture_vjp_x0, mixture_vjp_v, mixture_vjp_score, mixture_vjp_flow};
    dfn_denoiser_init(d, fns[kind], m, kind, schedule, sde);
    d->vjp = vjps[kind];
}

/* ---------------------------------------------------------------- conditioning, classes */

/* The class posterior of a mixture whose components are the classes, under
 * noise: log p(y | x_t) = log r_y(x_t), so with g_k = -C_k^{-1} (x - alpha m_k)
 * and the score s = sum_k r_k g_k,
 *   grad_x log p(y | x_t) = g_y - s      (exact; what classifier guidance wants). */
void dfn_mixture_class_grad(const dfn_mixture *m, float *grad, const float *x, double alpha,
                            double sigma, const int *y, int n) {
    DFN_ASSERT(m && grad && x && y && n >= 0);
    const int D = m->D, K = m->K;
#pragma omp parallel
    {
        double *zc = dfn_malloc((size_t)K * D * sizeof(double));
        double *lz = dfn_malloc((size_t)K * sizeof(double));
        double *acc = dfn_malloc((size_t)D * sizeof(double));
#pragma omp for schedule(static)
        for (int b = 0; b < n; b++) {
            DFN_ASSERT(y[b] >= 0 && y[b] < K);
            const double lmax = component_terms(m, x + (size_t)b * D, alpha, sigma, zc, lz);
            double rsum = 0.0;
            for (int k = 0; k < K; k++) rsum += (lz[k] = exp(lz[k] - lmax));
            for (int i = 0; i < D; i++) acc[i] = 0.0;
            for (int k = 0; k < K; k++) { /* sum_k (delta_ky - r_k) g_k */
                const double c = (k == y[b] ? 1.0 : 0.0) - lz[k] / rsum;
                if (c == 0.0) continue;
                const double *U = m->U + (size_t)k * D * D, *w = zc + (size_t)k * D;
                for (int i = 0; i < D; i++) {
                    double ug = 0.0; /* (U (z/c))_i = -g_k,i */
                    for (int j = 0; j < D; j++) ug += U[i * D + j] * w[j];
                    acc[i] -= c * ug;
                }
            }
            for (int i = 0; i < D; i++) grad[(size_t)b * D + i] = (float)acc[i];
        }
        free(zc);
        free(lz);
        free(acc);
    }
}

void dfn_mixture_guide(void *ctx, float *grad, const float *x, double t, double alpha,
                       double sigma, const int *y, int batch, size_t dim) {
    (void)t;
    const dfn_mixture *m = ctx;
    DFN_ASSERT(m && (size_t)m->D == dim);
    dfn_mixture_class_grad(m, grad, x, alpha, sigma, y, batch);
}

/* Gaussian conditioning per component (Bishop 2006 eq. 2.81-2.82), with the
 * component weights reweighted by the known part's likelihood:
 *   w_k' ~ w_k N(x_K; m_kK, S_kKK),
 *   m_k' = m_kU + S_kUK S_kKK^{-1} (x_K - m_kK),
 *   S_k' = S_kUU - S_kUK S_kKK^{-1} S_kKU. */
dfn_status dfn_mixture_condition(dfn_mixture **out, const dfn_mixture *m, const float *x,
                                 const float *known) {
    DFN_ASSERT(out && m && x && known);
    *out = NULL;
    const int D = m->D, K = m->K;
    int q = 0;
    int *ki = dfn_malloc((size_t)D * sizeof(int)), *ui = dfn_malloc((size_t)D * sizeof(int));
    int u = 0;
    for (int i = 0; i < D; i++) {
        if (known[i] != 0.0f) ki[q++] = i;
        else ui[u++] = i;
    }
    if (q == 0 || u == 0) {
        free(ki);
        free(ui);
        return dfn_set_error(DFN_ERR_ARG, "mixture condition: %d of %d coordinates known; need at "
                                          "least one known and one unknown", q, D);
    }
    double *S = dfn_malloc((size_t)D * D * sizeof(double));
    double *A = dfn_malloc((size_t)q * q * sizeof(double));
    double *B = dfn_malloc((size_t)q * (u + 1) * sizeof(double)); /* [S_KU | r] */
    float *means = dfn_malloc((size_t)K * u * sizeof(float));
    float *covs = dfn_malloc((size_t)K * u * u * sizeof(float));
    double *logw = dfn_malloc((size_t)K * sizeof(double));
    dfn_status st = DFN_OK;
    double lmax = -INFINITY;
    for (int k = 0; k < K && st == DFN_OK; k++) {
        const double *U = m->U + (size_t)k * D * D, *l = m->l + (size_t)k * D;
        const double *mu = m->means + (size_t)k * D;
        for (int i = 0; i < D; i++) /* S = U diag(l) U^T */
            for (int j = 0; j < D; j++) {
                double acc = 0.0;
                for (int c = 0; c < D; c++) acc += U[i * D + c] * l[c] * U[j * D + c];
                S[i * D + j] = acc;
            }
        for (int a = 0; a < q; a++) {
            for (int b = 0; b < q; b++) A[a * q + b] = S[ki[a] * D + ki[b]];
            for (int b = 0; b < u; b++) B[a * (u + 1) + b] = S[ki[a] * D + ui[b]];
            B[a * (u + 1) + u] = (double)x[ki[a]] - mu[ki[a]];
        }
        lapack_int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', q, u + 1, A, q, B, u + 1);
        if (info != 0) {
            st = dfn_set_error(DFN_ERR_NUMERIC, "mixture condition: the known block of component "
                                                "%d's covariance is not positive definite", k);
            break;
        }
        double logdet = 0.0, quad = 0.0; /* A holds its Cholesky factor L */
        for (int a = 0; a < q; a++) {
            logdet += 2.0 * log(A[a * q + a]);
            quad += ((double)x[ki[a]] - mu[ki[a]]) * B[a * (u + 1) + u];
        }
        logw[k] = m->w[k] > 0.0 ? log(m->w[k]) - 0.5 * quad - 0.5 * logdet : -INFINITY;
        if (logw[k] > lmax) lmax = logw[k];
        for (int a = 0; a < u; a++) {
            double acc = mu[ui[a]]; /* m_U + S_UK y, y = A^{-1} r */
            for (int c = 0; c < q; c++) acc += S[ki[c] * D + ui[a]] * B[c * (u + 1) + u];
            means[(size_t)k * u + a] = (float)acc;
            for (int b = 0; b < u; b++) { /* S_UU - S_UK X, X = A^{-1} S_KU */
                double cv = S[ui[a] * D + ui[b]];
                for (int c = 0; c < q; c++) cv -= S[ki[c] * D + ui[a]] * B[c * (u + 1) + b];
                covs[((size_t)k * u + a) * u + b] = (float)cv;
            }
        }
    }
    if (st == DFN_OK) {
        float *w = dfn_malloc((size_t)K * sizeof(float));
        for (int k = 0; k < K; k++) w[k] = (float)exp(logw[k] - lmax);
        for (int k = 0; k < K; k++) /* symmetric to float round-off */
            for (int a = 0; a < u; a++)
                for (int b = 0; b < a; b++) {
                    float *c = covs + (size_t)k * u * u;
                    c[a * u + b] = c[b * u + a] = 0.5f * (c[a * u + b] + c[b * u + a]);
                }
        dfn_mixture_params p;
        memset(&p, 0, sizeof p);
        p.dim = u;
        p.components = K;
        p.weights = w;
        p.means = means;
        p.covs = covs;
        st = dfn_mixture_new(out, &p);
        free(w);
    }
    free(ki);
    free(ui);
    free(S);
    free(A);
    free(B);
    free(means);
    free(covs);
    free(logw);
    return st;
}

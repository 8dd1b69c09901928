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

#include "sample.h"

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

#define MIXTURE_FN(name, kind)                                                                  \
    static void name(void *ctx, float *out, const float *x, double t, double alpha,             \
                     double sigma, const int *y, int batch, size_t dim) {                       \
        (void)t;                                                                                \
        (void)y;                                                                                \
        mixture_denoise(kind, ctx, out, x, alpha, sigma, batch, dim);                           \
    }
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
    dfn_denoiser_init(d, fns[kind], m, kind, schedule, sde);
}

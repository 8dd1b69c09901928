/* toys.c - built-in data generators: seed 000's curves, the 2-D toy
 * distributions of the score-based and flow papers, Gaussian mixtures.
 *
 * Each generator makes one dfn_rng from its seed and draws everything it needs
 * in a fixed sequence of calls (first all uniforms, then all normals). The
 * fills are computed per Philox block, so the result depends on the seed only:
 * the same bytes for any number of threads, run after run. */
#include <math.h>
#include <string.h>

#include "data/data.h"

#define PI 3.141592653589793
#define TWO_PI 6.283185307179586

/* ---------------------------------------------------------------- curves */

dfn_curves_params dfn_curves_params_init(void) {
    dfn_curves_params p = {.dim = 50, .components = 3, .freq_min = 1.0f, .freq_max = 5.0f};
    return p;
}

dfn_status dfn_dataset_curves(dfn_dataset **out, size_t n, const dfn_curves_params *params,
                              uint64_t seed) {
    DFN_ASSERT(out);
    *out = NULL;
    dfn_curves_params p = params ? *params : dfn_curves_params_init();
    if (p.dim < 2 || p.components < 1 || p.components > 1000 ||
        !(p.freq_min >= 0 && p.freq_min <= p.freq_max && isfinite(p.freq_max)))
        return dfn_set_error(DFN_ERR_ARG, "curves: need dim >= 2 (got %d), 1..1000 components "
                             "(got %d) and 0 <= freq_min <= freq_max (got %g, %g)", p.dim,
                             p.components, p.freq_min, p.freq_max);
    dfn_dataset *ds;
    dfn_status st = dfn_dataset_new(&ds, n, 1, &p.dim, 0);
    if (st != DFN_OK) return st;

    /* Per curve, per sinusoid: three uniforms (frequency, phase, weight). */
    size_t K = (size_t)p.components, per_curve = 3 * K;
    float *u = dfn_malloc(n * per_curve * sizeof(float));
    dfn_rng rng = dfn_rng_init(seed);
    dfn_rng_uniform(&rng, u, n * per_curve);
    double *f = dfn_malloc(K * sizeof(double)), *phi = dfn_malloc(K * sizeof(double));
    double *w = dfn_malloc(K * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        const float *ui = u + i * per_curve;
        double w2 = 0;
        for (size_t k = 0; k < K; k++) {
            f[k] = p.freq_min + (p.freq_max - p.freq_min) * (double)ui[3 * k];
            phi[k] = TWO_PI * ui[3 * k + 1];
            w[k] = ui[3 * k + 2];
            w2 += w[k] * w[k];
        }
        /* sin^2 averages 1/2 over whole periods and distinct sinusoids are nearly
         * orthogonal, so the mean square of the sum is about sum w_k^2 / 2;
         * scaling the weights to sum w_k^2 = 2 gives unit scale. */
        double scale = sqrt(2.0 / w2);
        float *x = ds->data + i * (size_t)p.dim;
        for (int j = 0; j < p.dim; j++) {
            double t = (double)j / (p.dim - 1), v = 0;
            for (size_t k = 0; k < K; k++) v += w[k] * sin(TWO_PI * f[k] * t + phi[k]);
            x[j] = (float)(scale * v);
        }
    }
    free(u);
    free(f);
    free(phi);
    free(w);
    *out = ds;
    return DFN_OK;
}

/* ---------------------------------------------------------------- 2-D toys */

static dfn_status check_n_and_scale(const char *name, size_t n, const char *what, float v) {
    if (n == 0) return dfn_set_error(DFN_ERR_ARG, "%s: no samples requested (n = 0)", name);
    if (what && !(v >= 0 && isfinite(v)))
        return dfn_set_error(DFN_ERR_ARG, "%s: %s must be finite and >= 0 (got %g)", name, what, v);
    return DFN_OK;
}

dfn_status dfn_dataset_two_moons(dfn_dataset **out, size_t n, float noise, uint64_t seed) {
    DFN_ASSERT(out);
    *out = NULL;
    dfn_status st = check_n_and_scale("two moons", n, "noise", noise);
    if (st != DFN_OK) return st;
    dfn_dataset *ds;
    int dim = 2;
    if ((st = dfn_dataset_new(&ds, n, 1, &dim, 2)) != DFN_OK) return st;
    float *u = dfn_malloc(n * sizeof(float)), *z = dfn_malloc(2 * n * sizeof(float));
    dfn_rng rng = dfn_rng_init(seed);
    dfn_rng_uniform(&rng, u, n);
    dfn_rng_normal(&rng, z, 2 * n);
    /* Samples alternate upper, lower, upper, ...: the upper moon has ceil(n/2). */
    for (size_t i = 0; i < n; i++) {
        double a = PI * u[i], x, y;
        if (i % 2 == 0) {
            x = cos(a);
            y = sin(a);
        } else {
            x = 1.0 - cos(a);
            y = 0.5 - sin(a);
        }
        ds->data[2 * i] = (float)(x + noise * z[2 * i]);
        ds->data[2 * i + 1] = (float)(y + noise * z[2 * i + 1]);
        ds->labels[i] = (int)(i % 2);
    }
    free(u);
    free(z);
    *out = ds;
    return DFN_OK;
}

dfn_status dfn_dataset_eight_gaussians(dfn_dataset **out, size_t n, float radius, float std,
                                       uint64_t seed) {
    DFN_ASSERT(out);
    *out = NULL;
    dfn_status st = check_n_and_scale("eight gaussians", n, "std", std);
    if (st == DFN_OK) st = check_n_and_scale("eight gaussians", n, "radius", radius);
    if (st != DFN_OK) return st;
    dfn_dataset *ds;
    int dim = 2;
    if ((st = dfn_dataset_new(&ds, n, 1, &dim, 8)) != DFN_OK) return st;
    float *u = dfn_malloc(n * sizeof(float)), *z = dfn_malloc(2 * n * sizeof(float));
    dfn_rng rng = dfn_rng_init(seed);
    dfn_rng_uniform(&rng, u, n);
    dfn_rng_normal(&rng, z, 2 * n);
    for (size_t i = 0; i < n; i++) {
        /* u has 24 random bits, a multiple of 8 levels: k is exactly uniform. */
        int k = (int)(u[i] * 8.0f);
        double a = TWO_PI * k / 8;
        ds->data[2 * i] = (float)(radius * cos(a) + std * z[2 * i]);
        ds->data[2 * i + 1] = (float)(radius * sin(a) + std * z[2 * i + 1]);
        ds->labels[i] = k;
    }
    free(u);
    free(z);
    *out = ds;
    return DFN_OK;
}

dfn_status dfn_dataset_swiss_roll(dfn_dataset **out, size_t n, float noise, uint64_t seed) {
    DFN_ASSERT(out);
    *out = NULL;
    dfn_status st = check_n_and_scale("swiss roll", n, "noise", noise);
    if (st != DFN_OK) return st;
    dfn_dataset *ds;
    int dim = 2;
    if ((st = dfn_dataset_new(&ds, n, 1, &dim, 0)) != DFN_OK) return st;
    float *u = dfn_malloc(n * sizeof(float)), *z = dfn_malloc(2 * n * sizeof(float));
    dfn_rng rng = dfn_rng_init(seed);
    dfn_rng_uniform(&rng, u, n);
    dfn_rng_normal(&rng, z, 2 * n);
    for (size_t i = 0; i < n; i++) {
        /* The spiral r = t over t in [1.5 pi, 4.5 pi]: one and a half turns. */
        double t = 1.5 * PI * (1.0 + 2.0 * u[i]);
        ds->data[2 * i] = (float)(t * cos(t) / 5.0 + noise * z[2 * i]);
        ds->data[2 * i + 1] = (float)(t * sin(t) / 5.0 + noise * z[2 * i + 1]);
    }
    free(u);
    free(z);
    *out = ds;
    return DFN_OK;
}

dfn_status dfn_dataset_checkerboard(dfn_dataset **out, size_t n, uint64_t seed) {
    DFN_ASSERT(out);
    *out = NULL;
    dfn_status st = check_n_and_scale("checkerboard", n, NULL, 0);
    if (st != DFN_OK) return st;
    dfn_dataset *ds;
    int dim = 2;
    if ((st = dfn_dataset_new(&ds, n, 1, &dim, 0)) != DFN_OK) return st;
    float *u = dfn_malloc(3 * n * sizeof(float));
    dfn_rng rng = dfn_rng_init(seed);
    dfn_rng_uniform(&rng, u, 3 * n);
    for (size_t i = 0; i < n; i++) {
        /* x uniform on [-2, 2]; its column c = floor(x) + 2 allows the two rows r
         * with c + r even, one of them chosen by a coin; y uniform in that row. */
        double x = 4.0 * u[3 * i] - 2.0;
        int c = (int)floor(x) + 2;
        int r = (c % 2) + 2 * (u[3 * i + 1] < 0.5f);
        ds->data[2 * i] = (float)x;
        ds->data[2 * i + 1] = (float)(r - 2 + u[3 * i + 2]);
    }
    free(u);
    *out = ds;
    return DFN_OK;
}

/* ---------------------------------------------------------------- mixtures */

/* Cholesky factor of the symmetric d x d matrix a (row-major): a = L L^T with L
 * lower triangular, written to l. Returns 0 if a is not positive definite. */
static int cholesky(double *l, const float *a, int d) {
    for (int i = 0; i < d; i++) {
        for (int j = 0; j <= i; j++) {
            double s = a[i * d + j];
            for (int k = 0; k < j; k++) s -= l[i * d + k] * l[j * d + k];
            if (i == j) {
                if (!(s > 0)) return 0;
                l[i * d + i] = sqrt(s);
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
        for (int j = i + 1; j < d; j++) l[i * d + j] = 0;
    }
    return 1;
}

dfn_status dfn_dataset_gaussian_mixture(dfn_dataset **out, size_t n,
                                        const dfn_mixture_params *params, uint64_t seed) {
    DFN_ASSERT(out && params && params->means);
    *out = NULL;
    const dfn_mixture_params *p = params;
    int D = p->dim, K = p->components;
    double *cdf = NULL, *chol = NULL;
    float *u = NULL, *z = NULL;
    dfn_dataset *ds = NULL;
    dfn_status st;
    if (n == 0 || D < 1 || K < 1) {
        st = dfn_set_error(DFN_ERR_ARG, "gaussian mixture: need n >= 1, dim >= 1, components >= 1 "
                           "(got %zu, %d, %d)", n, D, K);
        goto fail;
    }
    cdf = dfn_malloc((size_t)K * sizeof(double));
    double total = 0;
    for (int k = 0; k < K; k++) {
        double wk = p->weights ? p->weights[k] : 1.0;
        if (!(wk >= 0 && isfinite(wk))) {
            st = dfn_set_error(DFN_ERR_ARG, "gaussian mixture: weight %d is %g; weights must be "
                               "finite and >= 0", k, wk);
            goto fail;
        }
        total += wk;
        cdf[k] = total;
    }
    if (!(total > 0)) {
        st = dfn_set_error(DFN_ERR_ARG, "gaussian mixture: all weights are zero");
        goto fail;
    }
    for (int k = 0; k < K; k++) cdf[k] /= total;
    cdf[K - 1] = 1.0; /* no rounding gap at the top */
    for (size_t i = 0; i < (size_t)K * D; i++) {
        if (!isfinite(p->means[i])) {
            st = dfn_set_error(DFN_ERR_ARG, "gaussian mixture: component %zu: mean %zu is not "
                               "finite", i / D, i % D);
            goto fail;
        }
    }
    if (p->covs) {
        chol = dfn_malloc((size_t)K * D * D * sizeof(double));
        for (int k = 0; k < K; k++) {
            const float *c = p->covs + (size_t)k * D * D;
            for (int i = 0; i < D * D; i++)
                if (!isfinite(c[i])) {
                    st = dfn_set_error(DFN_ERR_ARG, "gaussian mixture: component %d: covariance "
                                       "[%d][%d] = %g is not finite", k, i / D, i % D, c[i]);
                    goto fail;
                }
            for (int i = 0; i < D; i++)
                for (int j = 0; j < i; j++) {
                    double a = c[i * D + j], b = c[j * D + i];
                    if (!(fabs(a - b) <= 1e-6 * fmax(fabs(a), fabs(b)))) {
                        st = dfn_set_error(DFN_ERR_ARG, "gaussian mixture: component %d: "
                                           "covariance is not symmetric ([%d][%d] = %g, [%d][%d] "
                                           "= %g)", k, i, j, a, j, i, b);
                        goto fail;
                    }
                }
            if (!cholesky(chol + (size_t)k * D * D, c, D)) {
                st = dfn_set_error(DFN_ERR_ARG, "gaussian mixture: component %d: covariance is "
                                   "not positive definite", k);
                goto fail;
            }
        }
    } else if (p->stds) {
        for (int k = 0; k < K; k++)
            if (!(p->stds[k] > 0 && isfinite(p->stds[k]))) {
                st = dfn_set_error(DFN_ERR_ARG, "gaussian mixture: component %d: std %g; must be "
                                   "finite and > 0", k, p->stds[k]);
                goto fail;
            }
    }

    st = dfn_dataset_new(&ds, n, 1, &D, K);
    if (st != DFN_OK) goto fail;
    u = dfn_malloc(n * sizeof(float));
    z = dfn_malloc(n * (size_t)D * sizeof(float));
    dfn_rng rng = dfn_rng_init(seed);
    dfn_rng_uniform(&rng, u, n);
    dfn_rng_normal(&rng, z, n * (size_t)D);
    for (size_t i = 0; i < n; i++) {
        /* Component by inverse CDF, then x = mean + L z (L = chol(cov) or std I). */
        int k = 0;
        while (k < K - 1 && u[i] >= cdf[k]) k++;
        const float *mu = p->means + (size_t)k * D, *zi = z + i * D;
        float *x = ds->data + i * D;
        for (int a = 0; a < D; a++) {
            double v;
            if (chol) {
                const double *row = chol + ((size_t)k * D + a) * D;
                v = 0;
                for (int b = 0; b <= a; b++) v += row[b] * zi[b];
            } else {
                v = (p->stds ? p->stds[k] : 1.0) * zi[a];
            }
            x[a] = (float)(mu[a] + v);
            if (!isfinite(x[a])) { /* finite parameters, but beyond float at some draw */
                st = dfn_set_error(DFN_ERR_NUMERIC, "gaussian mixture: sample %zu of component %d "
                                   "overflows float32 (mean %g, spread %g): means and standard "
                                   "deviations must be far below 3.4e38", i, k, mu[a], v);
                goto fail;
            }
        }
        ds->labels[i] = k;
    }
    free(cdf);
    free(chol);
    free(u);
    free(z);
    *out = ds;
    return DFN_OK;
fail:
    free(cdf);
    free(chol);
    free(u);
    free(z);
    dfn_dataset_free(ds);
    return st;
}

/* ---------------------------------------------------------------- by name */

static const char *const toy_names[] = {"curves", "moons", "8gaussians", "swissroll",
                                        "checkerboard"};
_Static_assert(sizeof toy_names / sizeof toy_names[0] == DFN_TOY_COUNT,
               "toy_names must name every dfn_toy");

const char *dfn_toy_name(dfn_toy toy) { return dfn_name_of(toy_names, DFN_TOY_COUNT, (int)toy); }

int dfn_toy_from_name(const char *name) {
    return dfn_name_lookup("toy data set", name, toy_names, DFN_TOY_COUNT, NULL);
}

dfn_status dfn_dataset_toy(dfn_dataset **out, const char *name, size_t n, uint64_t seed) {
    DFN_ASSERT(out);
    *out = NULL;
    switch (dfn_toy_from_name(name)) {
    case DFN_TOY_CURVES: return dfn_dataset_curves(out, n, NULL, seed);
    case DFN_TOY_MOONS: return dfn_dataset_two_moons(out, n, 0.05f, seed);
    case DFN_TOY_EIGHT_GAUSSIANS: return dfn_dataset_eight_gaussians(out, n, 2.0f, 0.02f, seed);
    case DFN_TOY_SWISS_ROLL: return dfn_dataset_swiss_roll(out, n, 0.1f, seed);
    case DFN_TOY_CHECKERBOARD: return dfn_dataset_checkerboard(out, n, seed);
    default: {
        char list[128] = "";
        for (int i = 0; i < DFN_TOY_COUNT; i++) {
            strcat(list, i ? ", " : "");
            strcat(list, toy_names[i]);
        }
        return dfn_set_error(DFN_ERR_ARG, "unknown data set '%s' (built-in: %s)",
                             name ? name : "(null)", list);
    }
    }
}

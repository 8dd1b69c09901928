/* schedule.c - discrete beta schedules: the betas of each kind, the per-step
 * quantities derived from them, q(x_t | x_0) and the posterior q(x_{t-1} | x_t, x_0).
 *
 * Indexing: array index i is the papers' step t = i + 1 (see diffusion.h). */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "diffusion/process.h"

#define DFN_PI 3.14159265358979323846

static const char *const beta_kind_names[] = {
    "linear", "cosine", "sigmoid", "constant", "quadratic", "file",
};
_Static_assert(sizeof(beta_kind_names) / sizeof(beta_kind_names[0]) == DFN_BETA_KIND_COUNT,
               "beta_kind_names must name every dfn_beta_kind");

const char *dfn_beta_kind_name(dfn_beta_kind kind) {
    return dfn_name_of(beta_kind_names, DFN_BETA_KIND_COUNT, (int)kind);
}

int dfn_beta_kind_from_name(const char *name) {
    /* diffusers' names for the same schedules */
    static const dfn_name_alias aliases[] = {
        {"scaled_linear", DFN_BETA_QUADRATIC}, {"squaredcos_cap_v2", DFN_BETA_COSINE}, {NULL, 0}};
    return dfn_name_lookup("beta schedule", name, beta_kind_names, DFN_BETA_KIND_COUNT, aliases);
}

dfn_schedule_params dfn_schedule_params_init(dfn_beta_kind kind) {
    dfn_schedule_params p;
    p.kind = kind;
    p.T = 1000;
    p.beta_start = 1e-4;
    p.beta_end = 0.02;
    p.cosine_s = 0.008;
    p.max_beta = 0.999;
    p.path = NULL;
    return p;
}

/* numpy.linspace(a, b, n): a + i (b - a)/(n - 1), the last point exactly b;
 * n = 1 gives a. */
static double linspace_at(double a, double b, int n, int i) {
    if (n == 1) return a;
    if (i == n - 1) return b;
    return a + (double)i * ((b - a) / (double)(n - 1));
}

/* Nichol & Dhariwal 2021 eq. 17: f(t) = cos^2(((t/T + s)/(1 + s)) pi/2); here
 * u = t/T in [0, 1]. */
static double cosine_f(double u, double s) {
    double c = cos((u + s) / (1.0 + s) * DFN_PI * 0.5);
    return c * c;
}

static int beta_in_range(double b) { return b > 0.0 && b < 1.0; }

/* The betas of a parametric kind into beta[0..T-1]; p->kind != FILE. */
static void parametric_betas(double *beta, const dfn_schedule_params *p) {
    const int T = p->T;
    for (int i = 0; i < T; i++) {
        double b = 0.0;
        switch (p->kind) {
        case DFN_BETA_LINEAR: /* Ho et al. 2020 section 4: linear from b_1 to b_T */
            b = linspace_at(p->beta_start, p->beta_end, T, i);
            break;
        case DFN_BETA_COSINE: {
            /* Nichol & Dhariwal 2021 eq. 17 and below it: abar_t = f(t)/f(0),
             * b_t = 1 - abar_t/abar_{t-1} = 1 - f(t)/f(t-1), clipped to max_beta
             * to avoid singularities near t = T. */
            double r =
                cosine_f((double)(i + 1) / T, p->cosine_s) / cosine_f((double)i / T, p->cosine_s);
            b = DFN_MIN(1.0 - r, p->max_beta);
            break;
        }
        case DFN_BETA_SIGMOID: { /* GeoDiff (Xu et al. 2022) / diffusers "sigmoid" */
            double x = linspace_at(-6.0, 6.0, T, i);
            b = 1.0 / (1.0 + exp(-x)) * (p->beta_end - p->beta_start) + p->beta_start;
            break;
        }
        case DFN_BETA_CONSTANT: /* DDPM's "const": beta_end at every step */ b = p->beta_end; break;
        case DFN_BETA_QUADRATIC: { /* diffusers "scaled_linear" (Stable Diffusion) */
            double r = linspace_at(sqrt(p->beta_start), sqrt(p->beta_end), T, i);
            b = r * r;
            break;
        }
        default: DFN_ASSERT(0 && "not a parametric beta kind");
        }
        beta[i] = b;
    }
}

/* ---------------------------------------------------------------- beta files */

/* Trims spaces and tabs at both ends of [*b, *e). */
static void trim(const char **b, const char **e) {
    while (*b < *e && (**b == ' ' || **b == '\t' || **b == '\r'))
        (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
        (*e)--;
}

dfn_status dfn_read_betas(double **out, int *out_T, const char *path) {
    DFN_ASSERT(out != NULL && out_T != NULL && path != NULL);
    *out = NULL;
    *out_T = 0;
    dfn_status st = DFN_OK;
    double *betas = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t line_cap = 0;
    long lineno = 0;

    FILE *f = fopen(path, "r");
    if (!f)
        return dfn_set_error(DFN_ERR_IO, "%s: cannot open beta file: %s", path, strerror(errno));

    ssize_t len;
    while ((len = getline(&line, &line_cap, f)) >= 0) {
        lineno++;
        if ((size_t)len != strlen(line)) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s:%ld: a NUL byte in a text file", path, lineno);
            goto fail;
        }
        char *hash = strchr(line, '#');
        const char *end = hash ? hash : line + len;
        while (end > line && (end[-1] == '\n' || end[-1] == '\r'))
            end--;
        /* split on commas; a blank line or one trailing comma is fine */
        const char *field = line;
        int field_no = 0;
        for (;;) {
            const char *comma = memchr(field, ',', (size_t)(end - field));
            const char *fend = comma ? comma : end;
            const char *b = field, *e = fend;
            trim(&b, &e);
            field_no++;
            if (b == e) {
                int last = (comma == NULL);
                int blank_line = last && field_no == 1;
                int trailing_comma = last && field_no > 1;
                if (!blank_line && !trailing_comma) {
                    st = dfn_set_error(DFN_ERR_FORMAT,
                                       "%s:%ld: empty field %d (two commas in a row?)", path,
                                       lineno, field_no);
                    goto fail;
                }
            } else {
                char buf[128];
                size_t flen = (size_t)(e - b);
                if (flen >= sizeof buf) {
                    st = dfn_set_error(DFN_ERR_FORMAT, "%s:%ld: '%.20s...' is not a number", path,
                                       lineno, b);
                    goto fail;
                }
                memcpy(buf, b, flen);
                buf[flen] = '\0';
                char *stop;
                errno = 0;
                double v = strtod(buf, &stop);
                if (stop == buf || *stop != '\0' || !isfinite(v)) {
                    st = dfn_set_error(DFN_ERR_FORMAT, "%s:%ld: '%s' is not a number", path, lineno,
                                       buf);
                    goto fail;
                }
                if (!beta_in_range(v)) {
                    st = dfn_set_error(DFN_ERR_FORMAT,
                                       "%s:%ld: beta %s is outside (0, 1) (step %zu)", path, lineno,
                                       buf, n + 1);
                    goto fail;
                }
                if (n == (size_t)0x7fffffff) {
                    st = dfn_set_error(DFN_ERR_FORMAT, "%s:%ld: too many betas", path, lineno);
                    goto fail;
                }
                if (n == cap) {
                    cap = cap ? 2 * cap : 1024;
                    double *nb = realloc(betas, cap * sizeof(double));
                    if (!nb) {
                        fprintf(stderr, "out of memory reading %s\n", path);
                        abort();
                    }
                    betas = nb;
                }
                betas[n++] = v;
            }
            if (!comma) break;
            field = comma + 1;
        }
    }
    if (ferror(f)) {
        st = dfn_set_error(DFN_ERR_IO, "%s: read error after line %ld: %s", path, lineno,
                           strerror(errno));
        goto fail;
    }
    if (n == 0) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: no betas (%s)", path,
                           lineno ? "only blank lines and comments" : "the file is empty");
        goto fail;
    }
    fclose(f);
    free(line);
    *out = betas;
    *out_T = (int)n;
    return DFN_OK;

fail:
    fclose(f);
    free(line);
    free(betas);
    return st;
}

/* ---------------------------------------------------------------- derived quantities */

#define SCHEDULE_ARRAYS 12

/* Allocates the arrays of *s (one block) for T steps. */
static void schedule_alloc(dfn_schedule *s, int T) {
    memset(s, 0, sizeof *s);
    double *block = dfn_malloc((size_t)SCHEDULE_ARRAYS * (size_t)T * sizeof(double));
    double **arrays[SCHEDULE_ARRAYS] = {
        &s->beta,
        &s->alpha,
        &s->alpha_bar,
        &s->alpha_bar_prev,
        &s->sqrt_alpha_bar,
        &s->sqrt_one_minus_alpha_bar,
        &s->snr,
        &s->log_snr,
        &s->posterior_variance,
        &s->posterior_log_variance_clipped,
        &s->posterior_coef_x0,
        &s->posterior_coef_xt,
    };
    for (int k = 0; k < SCHEDULE_ARRAYS; k++)
        *arrays[k] = block + (size_t)k * T;
    s->T = T;
}

/* Everything from s->beta (DDPM section 2 and eqs. 4, 6, 7; improved-diffusion's
 * clipped log variance), in the operation order of improved-diffusion's
 * GaussianDiffusion.__init__ where it has one. */
static void schedule_derive(dfn_schedule *s) {
    const int T = s->T;
    double abar = 1.0;
    for (int i = 0; i < T; i++) {
        double b = s->beta[i];
        double a = 1.0 - b;
        double abar_prev = abar;
        abar *= a; /* abar_t = prod_{s<=t} a_s */
        double one_m = 1.0 - abar;
        s->alpha[i] = a;
        s->alpha_bar[i] = abar;
        s->alpha_bar_prev[i] = abar_prev;
        s->sqrt_alpha_bar[i] = sqrt(abar);
        s->sqrt_one_minus_alpha_bar[i] = sqrt(one_m);
        s->snr[i] = abar / one_m;
        s->log_snr[i] = log(abar) - log(one_m);
        /* DDPM eq. 7: b~_t = (1 - abar_{t-1})/(1 - abar_t) b_t */
        s->posterior_variance[i] = b * (1.0 - abar_prev) / one_m;
        /* DDPM eq. 7: mu~_t = sqrt(abar_{t-1}) b_t/(1 - abar_t) x0
         *                    + sqrt(a_t)(1 - abar_{t-1})/(1 - abar_t) x_t */
        s->posterior_coef_x0[i] = b * sqrt(abar_prev) / one_m;
        s->posterior_coef_xt[i] = (1.0 - abar_prev) * sqrt(a) / one_m;
    }
    /* log b~ with b~_1 = 0 replaced by b~_2 (improved-diffusion); T = 1 has no
     * second step, so its only entry uses log b_1 (the "fixed large" choice). */
    for (int i = 1; i < T; i++)
        s->posterior_log_variance_clipped[i] = log(s->posterior_variance[i]);
    s->posterior_log_variance_clipped[0] =
        T > 1 ? s->posterior_log_variance_clipped[1] : log(s->beta[0]);
}

dfn_status dfn_schedule_from_betas(dfn_schedule *s, const double *betas, int T) {
    DFN_ASSERT(s != NULL);
    memset(s, 0, sizeof *s);
    if (T < 1) return dfn_set_error(DFN_ERR_ARG, "beta schedule: T = %d, need at least 1 step", T);
    DFN_ASSERT(betas != NULL);
    for (int i = 0; i < T; i++)
        if (!beta_in_range(betas[i]))
            return dfn_set_error(DFN_ERR_ARG, "beta schedule: beta[%d] = %g is outside (0, 1)", i,
                                 betas[i]);
    schedule_alloc(s, T);
    memcpy(s->beta, betas, (size_t)T * sizeof(double));
    s->kind = DFN_BETA_FILE;
    schedule_derive(s);
    return DFN_OK;
}

dfn_status dfn_schedule_init(dfn_schedule *s, const dfn_schedule_params *p) {
    DFN_ASSERT(s != NULL && p != NULL);
    memset(s, 0, sizeof *s);
    const char *name = dfn_beta_kind_name(p->kind);
    if ((int)p->kind < 0 || p->kind >= DFN_BETA_KIND_COUNT)
        return dfn_set_error(DFN_ERR_ARG, "beta schedule: kind %d is not a dfn_beta_kind",
                             (int)p->kind);
    if (p->kind == DFN_BETA_FILE) {
        if (!p->path) return dfn_set_error(DFN_ERR_ARG, "beta schedule 'file': no path given");
        double *betas;
        int T;
        dfn_status st = dfn_read_betas(&betas, &T, p->path);
        if (st != DFN_OK) return st;
        st = dfn_schedule_from_betas(s, betas, T);
        free(betas);
        return st;
    }
    if (p->T < 1)
        return dfn_set_error(DFN_ERR_ARG, "beta schedule '%s': T = %d, need at least 1 step", name,
                             p->T);
    if (p->kind == DFN_BETA_COSINE) {
        if (!(p->cosine_s >= 0.0 && isfinite(p->cosine_s)))
            return dfn_set_error(DFN_ERR_ARG, "beta schedule 'cosine': s = %g, need s >= 0",
                                 p->cosine_s);
        if (!beta_in_range(p->max_beta))
            return dfn_set_error(DFN_ERR_ARG,
                                 "beta schedule 'cosine': max_beta = %g is outside (0, 1)",
                                 p->max_beta);
    } else {
        if (p->kind != DFN_BETA_CONSTANT && !beta_in_range(p->beta_start))
            return dfn_set_error(DFN_ERR_ARG,
                                 "beta schedule '%s': beta_start = %g is outside (0, 1)", name,
                                 p->beta_start);
        if (!beta_in_range(p->beta_end))
            return dfn_set_error(DFN_ERR_ARG, "beta schedule '%s': beta_end = %g is outside (0, 1)",
                                 name, p->beta_end);
    }
    schedule_alloc(s, p->T);
    s->kind = p->kind;
    parametric_betas(s->beta, p);
    /* every kind above keeps betas in (0, 1) for valid endpoints, but check: a
     * cosine schedule with a huge T can round a beta to 0 */
    for (int i = 0; i < p->T; i++) {
        if (!beta_in_range(s->beta[i])) {
            double b = s->beta[i];
            dfn_schedule_free(s);
            return dfn_set_error(DFN_ERR_ARG,
                                 "beta schedule '%s': beta[%d] = %g is outside (0, 1); "
                                 "change T or the endpoints",
                                 name, i, b);
        }
    }
    schedule_derive(s);
    return DFN_OK;
}

void dfn_schedule_free(dfn_schedule *s) {
    if (!s) return;
    free(s->beta); /* the base of the one block */
    memset(s, 0, sizeof *s);
}

void dfn_schedule_alpha_sigma(const dfn_schedule *s, int i, double *alpha, double *sigma) {
    DFN_ASSERT(s != NULL && i >= 0 && i < s->T);
    if (alpha) *alpha = s->sqrt_alpha_bar[i];
    if (sigma) *sigma = s->sqrt_one_minus_alpha_bar[i];
}

/* ---------------------------------------------------------------- q(x_t | x_0), posterior */

void dfn_q_sample(float *x_t, const dfn_schedule *s, const float *x0, const float *eps,
                  const int *t, int batch, size_t dim) {
    DFN_ASSERT(x_t && s && x0 && eps && t && batch >= 0);
    for (int b = 0; b < batch; b++)
        DFN_ASSERT(t[b] >= 0 && t[b] < s->T);
        /* DDPM eq. 4 reparametrised: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps */
#pragma omp parallel for schedule(static) if ((size_t)batch * dim > 65536)
    for (int b = 0; b < batch; b++) {
        const double ca = s->sqrt_alpha_bar[t[b]], cs = s->sqrt_one_minus_alpha_bar[t[b]];
        const size_t o = (size_t)b * dim;
        for (size_t d = 0; d < dim; d++)
            x_t[o + d] = (float)(ca * x0[o + d] + cs * eps[o + d]);
    }
}

void dfn_q_posterior(float *mean, double *var, double *log_var_clipped, const dfn_schedule *s,
                     const float *x0, const float *x_t, const int *t, int batch, size_t dim) {
    DFN_ASSERT(s && t && batch >= 0);
    for (int b = 0; b < batch; b++)
        DFN_ASSERT(t[b] >= 0 && t[b] < s->T);
    if (mean) {
        DFN_ASSERT(x0 && x_t);
        /* DDPM eq. 7 */
#pragma omp parallel for schedule(static) if ((size_t)batch * dim > 65536)
        for (int b = 0; b < batch; b++) {
            const double c0 = s->posterior_coef_x0[t[b]], ct = s->posterior_coef_xt[t[b]];
            const size_t o = (size_t)b * dim;
            for (size_t d = 0; d < dim; d++)
                mean[o + d] = (float)(c0 * x0[o + d] + ct * x_t[o + d]);
        }
    }
    for (int b = 0; b < batch; b++) {
        if (var) var[b] = s->posterior_variance[t[b]];
        if (log_var_clipped) log_var_clipped[b] = s->posterior_log_variance_clipped[t[b]];
    }
}

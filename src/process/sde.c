/* sde.c - continuous noise processes (Song et al. 2021, "Score-based generative
 * modeling through stochastic differential equations"), the rectified-flow
 * interpolation, and the sigma ladders of k-diffusion style samplers.
 *
 * Each process is linear, dx = f(t) x dt + g(t) dw, so p(x_t | x_0) is
 * N(alpha(t) x_0, sigma(t)^2 I) whose moments solve (Song et al. 2021 appendix B;
 * Sarkka & Solin 2019 ch. 5)
 *     d alpha/dt = f alpha,     d sigma^2/dt = 2 f sigma^2 + g^2.
 * The closed forms below solve those; tests/test_sde.c integrates them. */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "diffusion/process.h"

static const char *const sde_kind_names[] = {"vp", "subvp", "ve", "flow"};
_Static_assert(sizeof(sde_kind_names) / sizeof(sde_kind_names[0]) == DFN_SDE_KIND_COUNT,
               "sde_kind_names must name every dfn_sde_kind");

const char *dfn_sde_kind_name(dfn_sde_kind kind) {
    return dfn_name_of(sde_kind_names, DFN_SDE_KIND_COUNT, (int)kind);
}

int dfn_sde_kind_from_name(const char *name) {
    static const dfn_name_alias aliases[] = {{"sub-vp", DFN_SDE_SUBVP}, {NULL, 0}};
    return dfn_name_lookup("process", name, sde_kind_names, DFN_SDE_KIND_COUNT, aliases);
}

dfn_sde dfn_sde_init(dfn_sde_kind kind) {
    dfn_sde s;
    s.kind = kind;
    s.beta_min = 0.1; /* Song et al. 2021 appendix C: beta_min = 0.1, beta_max = 20 */
    s.beta_max = 20.0;
    s.sigma_min = 0.01; /* appendix C: sigma_min = 0.01, sigma_max = 50 (CIFAR-10) */
    s.sigma_max = 50.0;
    return s;
}

dfn_status dfn_sde_validate(const dfn_sde *sde) {
    DFN_ASSERT(sde != NULL);
    switch (sde->kind) {
    case DFN_SDE_VP:
    case DFN_SDE_SUBVP:
        if (!(isfinite(sde->beta_min) && isfinite(sde->beta_max) && sde->beta_min >= 0.0 &&
              sde->beta_max >= sde->beta_min && sde->beta_max > 0.0))
            return dfn_set_error(DFN_ERR_ARG,
                                 "%s process: need 0 <= beta_min <= beta_max, beta_max > 0 "
                                 "(got beta_min = %g, beta_max = %g)",
                                 dfn_sde_kind_name(sde->kind), sde->beta_min, sde->beta_max);
        return DFN_OK;
    case DFN_SDE_VE:
        if (!(isfinite(sde->sigma_max) && sde->sigma_min > 0.0 && sde->sigma_max > sde->sigma_min))
            return dfn_set_error(DFN_ERR_ARG,
                                 "ve process: need 0 < sigma_min < sigma_max (got sigma_min = %g, "
                                 "sigma_max = %g)",
                                 sde->sigma_min, sde->sigma_max);
        return DFN_OK;
    case DFN_SDE_FLOW: return DFN_OK;
    default:
        return dfn_set_error(DFN_ERR_ARG, "process kind %d is not a dfn_sde_kind", (int)sde->kind);
    }
}

/* VP and sub-VP: beta(t) = beta_min + t (beta_max - beta_min) (eq. 11's linear
 * beta, appendix C), and log alpha(t) = -1/2 int_0^t beta
 *                                    = -1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min. */
static double vp_beta(const dfn_sde *s, double t) {
    return s->beta_min + t * (s->beta_max - s->beta_min);
}
static double vp_log_alpha(const dfn_sde *s, double t) {
    return -0.25 * t * t * (s->beta_max - s->beta_min) - 0.5 * t * s->beta_min;
}
/* VE: log sigma(t) = log sigma_min + t log(sigma_max/sigma_min) (eq. 9 with the
 * geometric sigmas of NCSN++, appendix C). */
static double ve_log_sigma(const dfn_sde *s, double t) {
    return log(s->sigma_min) + t * log(s->sigma_max / s->sigma_min);
}

void dfn_sde_marginal(const dfn_sde *sde, double t, double *alpha, double *sigma) {
    DFN_ASSERT(sde != NULL);
    double a = 1.0, sg = 0.0;
    switch (sde->kind) {
    case DFN_SDE_VP: { /* eq. 29: N(x0 e^{-1/2 int beta}, (1 - e^{-int beta}) I) */
        double m = vp_log_alpha(sde, t);
        a = exp(m);
        sg = sqrt(-expm1(2.0 * m));
        break;
    }
    case DFN_SDE_SUBVP: { /* eq. 29: N(x0 e^{-1/2 int beta}, (1 - e^{-int beta})^2 I) */
        double m = vp_log_alpha(sde, t);
        a = exp(m);
        sg = -expm1(2.0 * m);
        break;
    }
    case DFN_SDE_VE: /* eq. 29 with sigma(0) taken as the data's blur; see diffusion.h */
        a = 1.0;
        sg = exp(ve_log_sigma(sde, t));
        break;
    case DFN_SDE_FLOW: /* Liu et al. 2023 eq. 1: x_t = (1 - t) x0 + t eps */
        a = 1.0 - t;
        sg = t;
        break;
    default: DFN_ASSERT(0 && "bad dfn_sde_kind");
    }
    if (alpha) *alpha = a;
    if (sigma) *sigma = sg;
}

void dfn_sde_coefficients(const dfn_sde *sde, double t, double *f, double *g) {
    DFN_ASSERT(sde != NULL);
    double ff = 0.0, gg = 0.0;
    switch (sde->kind) {
    case DFN_SDE_VP: /* eq. 11: dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw */
        ff = -0.5 * vp_beta(sde, t);
        gg = sqrt(vp_beta(sde, t));
        break;
    case DFN_SDE_SUBVP: /* eq. 12: g^2 = beta(t) (1 - e^{-2 int_0^t beta}) */
        ff = -0.5 * vp_beta(sde, t);
        gg = sqrt(vp_beta(sde, t) * -expm1(4.0 * vp_log_alpha(sde, t)));
        break;
    case DFN_SDE_VE: /* eq. 9: g = sqrt(d sigma^2/dt) = sigma(t) sqrt(2 log(smax/smin)) */
        ff = 0.0;
        gg = exp(ve_log_sigma(sde, t)) * sqrt(2.0 * log(sde->sigma_max / sde->sigma_min));
        break;
    case DFN_SDE_FLOW:
        /* f = d log alpha/dt = -1/(1-t); g^2 = d sigma^2/dt - 2 f sigma^2
         *   = 2t + 2t^2/(1-t) = 2t/(1-t) (Lu et al. 2022, DPM-Solver section 2.1) */
        ff = -1.0 / (1.0 - t);
        gg = sqrt(2.0 * t / (1.0 - t));
        break;
    default: DFN_ASSERT(0 && "bad dfn_sde_kind");
    }
    if (f) *f = ff;
    if (g) *g = gg;
}

double dfn_sde_prior_std(const dfn_sde *sde) {
    DFN_ASSERT(sde != NULL);
    return sde->kind == DFN_SDE_VE ? sde->sigma_max : 1.0;
}

double dfn_sde_lambda(const dfn_sde *sde, double t) {
    DFN_ASSERT(sde != NULL);
    switch (sde->kind) {
    case DFN_SDE_VP: { /* lambda = log alpha - 1/2 log(1 - alpha^2) (Lu et al. 2022 section 3.1) */
        double m = vp_log_alpha(sde, t);
        return m - 0.5 * log(-expm1(2.0 * m));
    }
    case DFN_SDE_SUBVP: {
        double m = vp_log_alpha(sde, t);
        return m - log(-expm1(2.0 * m));
    }
    case DFN_SDE_VE: return -ve_log_sigma(sde, t);
    case DFN_SDE_FLOW: return log1p(-t) - log(t);
    default: DFN_ASSERT(0 && "bad dfn_sde_kind");
    }
    return 0.0;
}

/* int_0^t beta = L  ->  t: 1/2 (bmax - bmin) t^2 + bmin t = L, the positive root
 * in the cancellation-free form 2L / (bmin + sqrt(bmin^2 + 2 (bmax - bmin) L))
 * (DPM-Solver's NoiseScheduleVP.inverse_lambda). */
static double vp_t_from_beta_integral(const dfn_sde *s, double L) {
    double d = s->beta_max - s->beta_min;
    return 2.0 * L / (s->beta_min + sqrt(s->beta_min * s->beta_min + 2.0 * d * L));
}

double dfn_sde_t_from_lambda(const dfn_sde *sde, double lambda) {
    DFN_ASSERT(sde != NULL);
    switch (sde->kind) {
    case DFN_SDE_VP: {
        /* alpha^2 = sigmoid(2 lambda), so int beta = -2 log alpha = log(1 + e^{-2 lambda}) */
        double x = -2.0 * lambda;
        double L = (x > 0 ? x : 0.0) + log1p(exp(-fabs(x)));
        return vp_t_from_beta_integral(sde, L);
    }
    case DFN_SDE_SUBVP: {
        /* alpha / (1 - alpha^2) = e^lambda: e^l a^2 + a - e^l = 0, positive root
         * a = 2 e^l / (1 + sqrt(1 + 4 e^{2l})) = 2 / (e^{-l} + sqrt(e^{-2l} + 4)) */
        double L;
        if (lambda >= 0.0) {
            double u = exp(-lambda);
            /* -2 log a = 2 log((u + sqrt(u^2 + 4))/2) = 2 log1p((u + u^2/(sqrt(u^2+4)+2))/2) */
            L = 2.0 * log1p(0.5 * (u + u * u / (sqrt(u * u + 4.0) + 2.0)));
        } else {
            double e2 = exp(2.0 * lambda);
            L = -2.0 * (lambda + log(2.0) - log1p(sqrt(1.0 + 4.0 * e2)));
        }
        return vp_t_from_beta_integral(sde, L);
    }
    case DFN_SDE_VE: /* lambda = -log sigma(t) */
        return (-lambda - log(sde->sigma_min)) / log(sde->sigma_max / sde->sigma_min);
    case DFN_SDE_FLOW: /* lambda = log((1-t)/t): t = 1/(1 + e^lambda) */
        return 1.0 / (1.0 + exp(lambda));
    default: DFN_ASSERT(0 && "bad dfn_sde_kind");
    }
    return 0.0;
}

/* ---------------------------------------------------------------- sigma ladders */

static dfn_status check_sigma_range(const char *what, int n, double smin, double smax) {
    if (n < 1) return dfn_set_error(DFN_ERR_ARG, "%s sigmas: n = %d, need at least 1", what, n);
    if (!(smin > 0.0 && smax >= smin && isfinite(smax)))
        return dfn_set_error(DFN_ERR_ARG, "%s sigmas: need 0 < sigma_min <= sigma_max (got %g, %g)",
                             what, smin, smax);
    return DFN_OK;
}

dfn_status dfn_sigmas_karras(double *sigmas, int n, double sigma_min, double sigma_max,
                             double rho) {
    dfn_status st = check_sigma_range("karras", n, sigma_min, sigma_max);
    if (st != DFN_OK) return st;
    if (!(rho > 0.0 && isfinite(rho)))
        return dfn_set_error(DFN_ERR_ARG, "karras sigmas: rho = %g, need rho > 0", rho);
    DFN_ASSERT(sigmas != NULL);
    /* Karras et al. 2022 eq. 5 (table 1, "time steps") */
    const double hi = pow(sigma_max, 1.0 / rho), lo = pow(sigma_min, 1.0 / rho);
    for (int i = 0; i < n; i++) {
        double ramp = n > 1 ? (double)i / (double)(n - 1) : 0.0;
        sigmas[i] = pow(hi + ramp * (lo - hi), rho);
    }
    return DFN_OK;
}

dfn_status dfn_sigmas_geometric(double *sigmas, int n, double sigma_min, double sigma_max) {
    dfn_status st = check_sigma_range("geometric", n, sigma_min, sigma_max);
    if (st != DFN_OK) return st;
    DFN_ASSERT(sigmas != NULL);
    /* Song & Ermon 2019 section 4.2: a geometric sequence sigma_1 > ... > sigma_L,
     * exp(linspace(log smax, log smin, L)) as in the NCSN code */
    const double lhi = log(sigma_max), llo = log(sigma_min);
    for (int i = 0; i < n; i++) {
        if (i == 0)
            sigmas[i] = sigma_max;
        else if (i == n - 1)
            sigmas[i] = sigma_min;
        else
            sigmas[i] = exp(lhi + (double)i * ((llo - lhi) / (double)(n - 1)));
    }
    return DFN_OK;
}

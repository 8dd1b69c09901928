/* test_sde.c - continuous processes: the closed-form marginals against a numerical
 * solution of the moment ODEs, drift and diffusion against the papers' formulas,
 * the log-SNR and its inverse, the sigma ladders, and bad parameters. */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "test_util.h"

static double rel_diff(double a, double b) {
    double s = fabs(b) > 1e-300 ? fabs(b) : 1e-300;
    return fabs(a - b) / s;
}

/* Builds a schedule, recording a failure (and returning 0) if it cannot. */
static int schedule_ok(dfn_schedule *s, const dfn_schedule_params *p) {
    dfn_status st = dfn_schedule_init(s, p);
    CHECK(st == DFN_OK, "schedule %s: %s", dfn_beta_kind_name(p->kind), dfn_last_error());
    return st == DFN_OK;
}

/* One classical RK4 step of length h of the moment ODEs of dx = f(t) x dt + g(t) dw,
 *   d mean/dt = f mean,   d var/dt = 2 f var + g^2,
 * from the coefficients at the step's start, middle and end. */
static void moments_rk4_step(const double f[3], const double g[3], double h, double *m, double *v) {
    double km1 = f[0] * *m, kv1 = 2 * f[0] * *v + g[0] * g[0];
    double km2 = f[1] * (*m + 0.5 * h * km1), kv2 = 2 * f[1] * (*v + 0.5 * h * kv1) + g[1] * g[1];
    double km3 = f[1] * (*m + 0.5 * h * km2), kv3 = 2 * f[1] * (*v + 0.5 * h * kv2) + g[1] * g[1];
    double km4 = f[2] * (*m + h * km3), kv4 = 2 * f[2] * (*v + h * kv3) + g[2] * g[2];
    *m += h / 6 * (km1 + 2 * km2 + 2 * km3 + km4);
    *v += h / 6 * (kv1 + 2 * kv2 + 2 * kv3 + kv4);
}

/* The moments from x(0) = x0 (var0 for a blurred start) by n RK4 steps from 0 to
 * t1. mean is per unit x0, so it is alpha. */
static void moments_rk4(const dfn_sde *sde, double t1, int n, double var0, double *alpha,
                        double *sigma) {
    double m = 1.0, v = var0, h = t1 / n;
    for (int k = 0; k < n; k++) {
        double t = k * h, f[3], g[3];
        dfn_sde_coefficients(sde, t, &f[0], &g[0]);
        dfn_sde_coefficients(sde, t + 0.5 * h, &f[1], &g[1]);
        dfn_sde_coefficients(sde, t + h, &f[2], &g[2]);
        moments_rk4_step(f, g, h, &m, &v);
    }
    *alpha = m;
    *sigma = sqrt(v);
}

static void marginals_solve_the_moment_odes(void) {
    for (int k = 0; k < DFN_SDE_KIND_COUNT; k++) {
        dfn_sde sde = dfn_sde_init((dfn_sde_kind)k);
        CHECK(dfn_sde_validate(&sde) == DFN_OK, "defaults of %s are valid", dfn_sde_kind_name(k));
        /* VE reports sigma(t), the std of a start already blurred by N(0, sigma_min^2) */
        double var0 = k == DFN_SDE_VE ? sde.sigma_min * sde.sigma_min : 0.0;
        const double times[] = {0.05, 0.3, 0.7, 1.0};
        for (int i = 0; i < 4; i++) {
            double t1 = times[i];
            if (k == DFN_SDE_FLOW && t1 == 1.0) t1 = 0.95; /* f is infinite at 1 */
            double a_ode, s_ode, a, s;
            moments_rk4(&sde, t1, 20000, var0, &a_ode, &s_ode);
            dfn_sde_marginal(&sde, t1, &a, &s);
            CHECK(rel_diff(a, a_ode) < 1e-9, "%s t=%g: alpha %.15g, ODE %.15g",
                  dfn_sde_kind_name(k), t1, a, a_ode);
            CHECK(rel_diff(s, s_ode) < 1e-9, "%s t=%g: sigma %.15g, ODE %.15g",
                  dfn_sde_kind_name(k), t1, s, s_ode);
        }
    }
    /* the VE choice made explicit: from a noiseless start the std is sqrt(s^2 - smin^2) */
    dfn_sde ve = dfn_sde_init(DFN_SDE_VE);
    double a_ode, s_ode, s;
    moments_rk4(&ve, 0.5, 20000, 0.0, &a_ode, &s_ode);
    dfn_sde_marginal(&ve, 0.5, NULL, &s);
    CHECK(rel_diff(s_ode, sqrt(s * s - 1e-4)) < 1e-9, "VE from x0 exactly: sqrt(sigma^2 - smin^2)");
}

/* Song et al. 2021 eqs. 9, 11, 12 and appendix C, written out again. */
static void coefficients_are_the_papers(void) {
    const double t = 0.37, b0 = 0.1, b1 = 20.0;
    double beta = b0 + t * (b1 - b0), intb = b0 * t + 0.5 * (b1 - b0) * t * t;
    double f, g, a, s;
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP);
    dfn_sde_coefficients(&vp, t, &f, &g);
    dfn_sde_marginal(&vp, t, &a, &s);
    CHECK(rel_diff(f, -0.5 * beta) < 1e-15 && rel_diff(g, sqrt(beta)) < 1e-15, "VP f, g");
    CHECK(rel_diff(a, exp(-0.5 * intb)) < 1e-14 && rel_diff(s, sqrt(1 - exp(-intb))) < 1e-14,
          "VP alpha, sigma");
    dfn_sde sub = dfn_sde_init(DFN_SDE_SUBVP);
    dfn_sde_coefficients(&sub, t, &f, &g);
    dfn_sde_marginal(&sub, t, &a, &s);
    CHECK(rel_diff(f, -0.5 * beta) < 1e-15 &&
              rel_diff(g, sqrt(beta * (1 - exp(-2 * intb)))) < 1e-14,
          "sub-VP f, g");
    CHECK(rel_diff(a, exp(-0.5 * intb)) < 1e-14 && rel_diff(s, 1 - exp(-intb)) < 1e-14,
          "sub-VP alpha, sigma = 1 - e^{-int beta}");
    dfn_sde ve = dfn_sde_init(DFN_SDE_VE);
    dfn_sde_coefficients(&ve, t, &f, &g);
    dfn_sde_marginal(&ve, t, &a, &s);
    double sig = 0.01 * pow(50.0 / 0.01, t);
    CHECK(a == 1.0 && rel_diff(s, sig) < 1e-14, "VE alpha = 1, sigma geometric");
    CHECK(f == 0.0 && rel_diff(g, sig * sqrt(2 * log(50.0 / 0.01))) < 1e-14, "VE f = 0, g");
    dfn_sde_marginal(&ve, 0.0, NULL, &s);
    CHECK(rel_diff(s, 0.01) < 1e-15, "VE sigma(0) = sigma_min");
    dfn_sde_marginal(&ve, 1.0, NULL, &s);
    CHECK(rel_diff(s, 50.0) < 1e-14, "VE sigma(1) = sigma_max");
    CHECK(dfn_sde_prior_std(&vp) == 1.0 && dfn_sde_prior_std(&sub) == 1.0 &&
              dfn_sde_prior_std(&ve) == 50.0,
          "prior std");
    dfn_sde_marginal(&vp, 1.0, &a, &s);
    CHECK(fabs(s - 1.0) < 1e-4 && a < 1e-2, "VP at t = 1 is close to N(0, 1): alpha %g", a);
}

/* Rectified flow seen as an SDE: its probability-flow drift f x - g^2/2 score, with
 * the exact score -eps/sigma, is the velocity eps - x0. */
static void flow_probability_flow_is_the_velocity(void) {
    dfn_sde fl = dfn_sde_init(DFN_SDE_FLOW);
    CHECK(dfn_sde_prior_std(&fl) == 1.0, "flow prior std 1");
    double worst = 0;
    for (double t = 0.05; t < 0.99; t += 0.1) {
        double a, s, f, g, x0 = 0.8, eps = -0.4;
        dfn_sde_marginal(&fl, t, &a, &s);
        dfn_sde_coefficients(&fl, t, &f, &g);
        double xt = a * x0 + s * eps;
        double drift = f * xt - 0.5 * g * g * (-eps / s);
        worst = fmax(worst, fabs(drift - (eps - x0)));
    }
    CHECK(worst < 1e-12, "probability-flow drift = eps - x0: %.3e", worst);
}

static void log_snr_and_its_inverse_round_trip(void) {
    for (int k = 0; k < DFN_SDE_KIND_COUNT; k++) {
        dfn_sde sde = dfn_sde_init((dfn_sde_kind)k);
        double worst_t = 0, worst_l = 0, worst_def = 0;
        for (int i = 1; i < 1000; i++) {
            double t = i / 1000.0, a, s;
            dfn_sde_marginal(&sde, t, &a, &s);
            double l = dfn_sde_lambda(&sde, t);
            worst_def = fmax(worst_def, fabs(l - log(a / s)));
            worst_t = fmax(worst_t, fabs(dfn_sde_t_from_lambda(&sde, l) - t));
        }
        /* and lambda -> t -> lambda over the process's whole range */
        double lmin = dfn_sde_lambda(&sde, 1.0), lmax = dfn_sde_lambda(&sde, 1e-4);
        for (int i = 0; i <= 100; i++) {
            double l = lmin + (lmax - lmin) * i / 100.0;
            worst_l = fmax(worst_l, fabs(dfn_sde_lambda(&sde, dfn_sde_t_from_lambda(&sde, l)) - l) /
                                        fmax(1.0, fabs(l)));
        }
        CHECK(worst_def < 1e-12, "%s: lambda = log(alpha/sigma): %.3e", dfn_sde_kind_name(k),
              worst_def);
        CHECK(worst_t < 1e-12, "%s: t(lambda(t)) = t: %.3e", dfn_sde_kind_name(k), worst_t);
        CHECK(worst_l < 1e-10, "%s: lambda(t(lambda)) = lambda: %.3e", dfn_sde_kind_name(k),
              worst_l);
        /* monotone: lambda decreases in t */
        int mono = 1;
        for (int i = 1; i < 100; i++)
            mono &= dfn_sde_lambda(&sde, i / 100.0) > dfn_sde_lambda(&sde, (i + 1) / 100.0);
        CHECK(mono, "%s: lambda strictly decreasing", dfn_sde_kind_name(k));
        /* far tails stay finite */
        double t1 = dfn_sde_t_from_lambda(&sde, 40.0), t2 = dfn_sde_t_from_lambda(&sde, -40.0);
        CHECK(isfinite(t1) && isfinite(t2) && t1 < t2, "%s: finite inverse in the tails: %g %g",
              dfn_sde_kind_name(k), t1, t2);
    }
    /* VP inverse against bisection on lambda(t), non-default betas */
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP);
    vp.beta_min = 0.5;
    vp.beta_max = 7.0;
    double l = 0.3, lo = 0, hi = 1;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (dfn_sde_lambda(&vp, mid) > l)
            lo = mid;
        else
            hi = mid;
    }
    CHECK(fabs(dfn_sde_t_from_lambda(&vp, l) - 0.5 * (lo + hi)) < 1e-13, "VP inverse = bisection");
    /* constant beta (beta_min = beta_max) still inverts */
    vp.beta_min = vp.beta_max = 2.0;
    CHECK(fabs(dfn_sde_t_from_lambda(&vp, dfn_sde_lambda(&vp, 0.6)) - 0.6) < 1e-12,
          "constant-beta VP inverse");
}

static void karras_and_geometric_sigmas(void) {
    double sg[10];
    CHECK(dfn_sigmas_karras(sg, 10, 0.002, 80.0, 7.0) == DFN_OK, "karras ok");
    double worst = 0;
    for (int i = 0; i < 10; i++) {
        double want =
            pow(pow(80.0, 1 / 7.0) + i / 9.0 * (pow(0.002, 1 / 7.0) - pow(80.0, 1 / 7.0)), 7);
        worst = fmax(worst, rel_diff(sg[i], want));
    }
    CHECK(worst < 1e-13, "karras eq. 5: %.3e", worst);
    CHECK(rel_diff(sg[0], 80.0) < 1e-14 && rel_diff(sg[9], 0.002) < 1e-12, "karras endpoints");
    int dec = 1;
    for (int i = 1; i < 10; i++)
        dec &= sg[i] < sg[i - 1];
    CHECK(dec, "karras decreasing");
    CHECK(dfn_sigmas_karras(sg, 1, 0.002, 80.0, 7.0) == DFN_OK && rel_diff(sg[0], 80.0) < 1e-14,
          "karras n = 1 gives sigma_max");

    CHECK(dfn_sigmas_geometric(sg, 10, 0.01, 1.0) == DFN_OK, "geometric ok");
    CHECK(sg[0] == 1.0 && sg[9] == 0.01, "geometric endpoints exact");
    double ratio = sg[1] / sg[0];
    worst = 0;
    for (int i = 1; i < 10; i++)
        worst = fmax(worst, rel_diff(sg[i] / sg[i - 1], ratio));
    CHECK(worst < 1e-13 && rel_diff(ratio, pow(0.01, 1 / 9.0)) < 1e-14, "constant ratio %.3e",
          worst);

    CHECK(dfn_sigmas_karras(sg, 0, 0.002, 80, 7) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "n = 0"),
          "karras n = 0: %s", dfn_last_error());
    CHECK(dfn_sigmas_karras(sg, 5, 0.0, 80, 7) == DFN_ERR_ARG, "karras sigma_min = 0");
    CHECK(dfn_sigmas_karras(sg, 5, 0.1, 80, 0) == DFN_ERR_ARG && strstr(dfn_last_error(), "rho"),
          "karras rho = 0");
    CHECK(dfn_sigmas_geometric(sg, 5, 2.0, 1.0) == DFN_ERR_ARG, "geometric min > max");
}

static void names_and_validation(void) {
    for (int k = 0; k < DFN_SDE_KIND_COUNT; k++)
        CHECK(dfn_sde_kind_from_name(dfn_sde_kind_name(k)) == k, "sde name %d round trip", k);
    CHECK(dfn_sde_kind_from_name("sub-vp") == DFN_SDE_SUBVP, "sub-vp alias");
    CHECK(dfn_sde_kind_from_name("vpsde") == -1 && strstr(dfn_last_error(), "vpsde") &&
              strstr(dfn_last_error(), "subvp") && strstr(dfn_last_error(), "flow"),
          "unknown process lists the known: %s", dfn_last_error());
    dfn_sde s = dfn_sde_init(DFN_SDE_VP);
    s.beta_max = 0.01;
    CHECK(dfn_sde_validate(&s) == DFN_ERR_ARG && strstr(dfn_last_error(), "beta_max"),
          "beta_max < beta_min: %s", dfn_last_error());
    s = dfn_sde_init(DFN_SDE_VE);
    s.sigma_min = 0;
    CHECK(dfn_sde_validate(&s) == DFN_ERR_ARG && strstr(dfn_last_error(), "sigma_min"),
          "sigma_min = 0: %s", dfn_last_error());
    s.kind = (dfn_sde_kind)42;
    CHECK(dfn_sde_validate(&s) == DFN_ERR_ARG, "bad kind");
}

/* Discrete schedules and continuous processes meet through (alpha, sigma): a
 * linear-beta DDPM with T steps is the VP SDE with beta(t) = T b_t, so abar at
 * step i approaches alpha(t)^2 at t = (i+1)/T (Song et al. 2021 appendix B). */
static void discrete_linear_schedule_approaches_vp(void) {
    dfn_schedule_params p = dfn_schedule_params_init(DFN_BETA_LINEAR);
    p.T = 1000;
    p.beta_start = 0.1 / p.T;
    p.beta_end = 20.0 / p.T;
    dfn_schedule s;
    if (!schedule_ok(&s, &p)) return;
    dfn_sde vp = dfn_sde_init(DFN_SDE_VP);
    double worst = 0;
    for (int i = 99; i < s.T; i += 100) {
        double a, sg, ad, sd;
        dfn_sde_marginal(&vp, (i + 1.0) / s.T, &a, &sg);
        dfn_schedule_alpha_sigma(&s, i, &ad, &sd);
        worst = fmax(worst, fabs(log(ad) - log(a)) / fabs(log(a)));
    }
    CHECK(worst < 0.01, "DDPM linear -> VP: log alpha within 1%% (%.3e)", worst);
    dfn_schedule_free(&s);
}

/* The VP SDE that samplers see for a discrete schedule (dfn_denoiser_coefficients):
 * integrating its moment ODEs from step 0 lands on the interpolated marginals of
 * dfn_denoiser_marginal at every step and between steps. */
static void discrete_schedule_sde_has_its_marginals(void) {
    dfn_schedule s;
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_COSINE);
    sp.T = 200;
    if (!schedule_ok(&s, &sp)) return;
    dfn_denoiser d;
    dfn_denoiser_init(&d, NULL, NULL, DFN_PRED_EPS, &s, NULL);
    double m, v, sig0;
    dfn_denoiser_marginal(&d, 0.0, &m, &sig0);
    v = sig0 * sig0;
    const int sub = 64; /* RK4 substeps per step interval; f, g are smooth inside one */
    double worst_a = 0.0, worst_s = 0.0;
    for (int k = 0; k < s.T - 1; k++) {
        for (int j = 0; j < sub; j++) {
            const double h = 1.0 / sub, t = k + j * h;
            double f[3], g[3];
            /* inside the interval (k, k + 1]: its left end is taken just inside it */
            dfn_denoiser_coefficients(&d, j == 0 ? t + 1e-12 : t, &f[0], &g[0]);
            dfn_denoiser_coefficients(&d, t + 0.5 * h, &f[1], &g[1]);
            dfn_denoiser_coefficients(&d, t + h, &f[2], &g[2]);
            moments_rk4_step(f, g, h, &m, &v);
            double a, sg;
            dfn_denoiser_marginal(&d, t + h, &a, &sg);
            worst_a = fmax(worst_a, fabs(m - a)); /* alpha in (0, 1]: absolute */
            worst_s = fmax(worst_s, rel_diff(sqrt(v), sg));
        }
    }
    CHECK(worst_a < 1e-9 && worst_s < 1e-9, "discrete schedule as a VP SDE: moments vs marginals, "
          "alpha off by %.3g (absolute), sigma by %.3g (relative)", worst_a, worst_s);
    double f, g;
    dfn_denoiser_coefficients(&d, 10.0, &f, &g);
    CHECK(f < 0 && g > 0, "discrete SDE: f < 0 (it shrinks x), g > 0: %g %g", f, g);
    dfn_schedule_free(&s);
}

int main(void) {
    marginals_solve_the_moment_odes();
    coefficients_are_the_papers();
    flow_probability_flow_is_the_velocity();
    log_snr_and_its_inverse_round_trip();
    karras_and_geometric_sigmas();
    names_and_validation();
    discrete_linear_schedule_approaches_vp();
    discrete_schedule_sde_has_its_marginals();
    TEST_MAIN_END();
}

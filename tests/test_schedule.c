/* test_schedule.c - discrete beta schedules: each kind's betas against its closed
 * form (recomputed here), every derived quantity against its definition, the
 * DDPM identities, the posterior by completing the square, q_sample statistics,
 * and the errors a user sees for bad names, values and beta files. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "test_util.h"

#define PI 3.14159265358979323846

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

/* The betas of each kind, written independently of schedule.c. */
static double ref_beta(const dfn_schedule_params *p, int i) {
    const int T = p->T;
    double frac = T > 1 ? (double)i / (T - 1) : 0.0;
    switch (p->kind) {
    case DFN_BETA_LINEAR: return p->beta_start * (1.0 - frac) + p->beta_end * frac;
    case DFN_BETA_COSINE: {
        double f1 = pow(cos(((double)(i + 1) / T + p->cosine_s) / (1 + p->cosine_s) * PI / 2), 2);
        double f0 = pow(cos(((double)i / T + p->cosine_s) / (1 + p->cosine_s) * PI / 2), 2);
        double b = 1.0 - f1 / f0;
        return b < p->max_beta ? b : p->max_beta;
    }
    case DFN_BETA_SIGMOID: {
        double x = -6.0 + 12.0 * frac;
        return (p->beta_end - p->beta_start) / (1.0 + exp(-x)) + p->beta_start;
    }
    case DFN_BETA_CONSTANT: return p->beta_end;
    case DFN_BETA_QUADRATIC: {
        double r = sqrt(p->beta_start) * (1.0 - frac) + sqrt(p->beta_end) * frac;
        return r * r;
    }
    default: return NAN;
    }
}

static void each_kind_matches_its_closed_form(void) {
    const int Ts[] = {1000, 10, 1};
    for (int k = 0; k < DFN_BETA_FILE; k++) {
        for (int ti = 0; ti < 3; ti++) {
            dfn_schedule_params p = dfn_schedule_params_init((dfn_beta_kind)k);
            p.T = Ts[ti];
            if (ti == 1) { /* endpoints other than the defaults are taken as given */
                p.beta_start = 3e-3;
                p.beta_end = 0.2;
            }
            dfn_schedule s;
            dfn_status st = dfn_schedule_init(&s, &p);
            CHECK(st == DFN_OK, "%s T=%d: %s", dfn_beta_kind_name(k), p.T, dfn_last_error());
            if (st != DFN_OK) continue;
            CHECK(s.T == p.T && s.kind == (dfn_beta_kind)k, "T and kind recorded");
            double worst = 0;
            for (int i = 0; i < s.T; i++)
                worst = fmax(worst, rel_diff(s.beta[i], ref_beta(&p, i)));
            CHECK(worst < 1e-12, "%s T=%d: betas off by %.3e", dfn_beta_kind_name(k), p.T, worst);
            if (k == DFN_BETA_LINEAR || k == DFN_BETA_QUADRATIC) {
                CHECK(rel_diff(s.beta[0], p.beta_start) < 1e-15, "%s starts at beta_start",
                      dfn_beta_kind_name(k));
                if (s.T > 1)
                    CHECK(rel_diff(s.beta[s.T - 1], p.beta_end) < 1e-15, "%s ends at beta_end",
                          dfn_beta_kind_name(k));
            }
            dfn_schedule_free(&s);
        }
    }
}

static void defaults_are_ddpm_and_improved_ddpm(void) {
    dfn_schedule_params p = dfn_schedule_params_init(DFN_BETA_LINEAR);
    CHECK(p.T == 1000 && p.beta_start == 1e-4 && p.beta_end == 0.02, "linear 1e-4 -> 0.02, T 1000");
    CHECK(p.cosine_s == 0.008 && p.max_beta == 0.999, "cosine s = 0.008, clip 0.999");
    dfn_schedule s;
    p.kind = DFN_BETA_COSINE;
    if (!schedule_ok(&s, &p)) return;
    CHECK(s.beta[999] == 0.999, "cosine clips its last beta to 0.999: %.17g", s.beta[999]);
    dfn_schedule_free(&s);
}

/* Every derived array against its definition, for every kind. */
static void derived_quantities_follow_their_definitions(void) {
    for (int k = 0; k < DFN_BETA_FILE; k++) {
        dfn_schedule_params p = dfn_schedule_params_init((dfn_beta_kind)k);
        p.T = 200;
        dfn_schedule s;
        if (!schedule_ok(&s, &p)) continue;
        double prod = 1.0, worst = 0.0;
        const char *worst_name = "";
#define CMP(name, got, want)                                                                       \
    do {                                                                                           \
        double e_ = rel_diff((got), (want));                                                       \
        if (!(e_ <= worst)) {                                                                      \
            worst = e_;                                                                            \
            worst_name = name;                                                                     \
        }                                                                                          \
    } while (0)
        for (int i = 0; i < s.T; i++) {
            double b = s.beta[i], a = 1.0 - b, prev = prod;
            prod *= a; /* abar_t = prod_{s<=t} (1 - b_s) */
            CMP("alpha", s.alpha[i], a);
            CMP("alpha_bar", s.alpha_bar[i], prod);
            CMP("alpha_bar_prev", s.alpha_bar_prev[i], prev);
            CMP("sqrt_alpha_bar", s.sqrt_alpha_bar[i] * s.sqrt_alpha_bar[i], prod);
            CMP("sqrt_one_minus_alpha_bar",
                s.sqrt_one_minus_alpha_bar[i] * s.sqrt_one_minus_alpha_bar[i], 1.0 - prod);
            CMP("snr", s.snr[i], prod / (1.0 - prod));
            CMP("log_snr", s.log_snr[i], log(prod / (1.0 - prod)));
            CMP("posterior_variance", s.posterior_variance[i], (1.0 - prev) / (1.0 - prod) * b);
            CMP("coef_x0", s.posterior_coef_x0[i], sqrt(prev) * b / (1.0 - prod));
            CMP("coef_xt", s.posterior_coef_xt[i], sqrt(a) * (1.0 - prev) / (1.0 - prod));
            if (i > 0)
                CMP("posterior_log_variance_clipped", s.posterior_log_variance_clipped[i],
                    log((1.0 - prev) / (1.0 - prod) * b));
        }
#undef CMP
        CHECK(worst < 1e-11, "%s: %s off by %.3e", dfn_beta_kind_name(k), worst_name, worst);
        CHECK(s.alpha_bar_prev[0] == 1.0, "abar_0 = 1");
        CHECK(s.posterior_variance[0] == 0.0, "b~_1 = 0 (x_0 is known at t = 1)");
        CHECK(s.posterior_log_variance_clipped[0] == s.posterior_log_variance_clipped[1],
              "log b~_1 clipped to log b~_2 (improved-diffusion)");
        CHECK(fabs(s.posterior_coef_x0[0] - 1.0) < 1e-12 && s.posterior_coef_xt[0] == 0.0,
              "posterior mean at t = 1 is x0: coefs %.17g %.17g", s.posterior_coef_x0[0],
              s.posterior_coef_xt[0]);
        dfn_schedule_free(&s);
    }
}

static void snr_is_strictly_decreasing(void) {
    for (int k = 0; k < DFN_BETA_FILE; k++) {
        dfn_schedule_params p = dfn_schedule_params_init((dfn_beta_kind)k);
        dfn_schedule s;
        if (!schedule_ok(&s, &p)) continue;
        int bad = -1;
        for (int i = 1; i < s.T; i++)
            if (!(s.snr[i] < s.snr[i - 1] && s.log_snr[i] < s.log_snr[i - 1])) {
                bad = i;
                break;
            }
        CHECK(bad < 0, "%s: SNR not decreasing at index %d", dfn_beta_kind_name(k), bad);
        dfn_schedule_free(&s);
    }
}

/* Nichol & Dhariwal eq. 17: abar_t = f(t)/f(0) wherever no beta was clipped. */
static void cosine_alpha_bar_is_the_cos2_formula(void) {
    dfn_schedule_params p = dfn_schedule_params_init(DFN_BETA_COSINE);
    dfn_schedule s;
    if (!schedule_ok(&s, &p)) return;
    double f0 = pow(cos(0.008 / 1.008 * PI / 2), 2), worst = 0;
    int clipped_at = s.T;
    for (int i = 0; i < s.T; i++) {
        if (s.beta[i] >= p.max_beta) {
            clipped_at = i;
            break;
        }
        double f = pow(cos(((i + 1.0) / s.T + 0.008) / 1.008 * PI / 2), 2);
        worst = fmax(worst, rel_diff(s.alpha_bar[i], f / f0));
    }
    CHECK(clipped_at >= s.T - 2, "only the last steps clip (first at %d)", clipped_at);
    CHECK(worst < 1e-9, "cosine abar vs f(t)/f(0): rel error %.3e", worst);
    dfn_schedule_free(&s);
}

/* The posterior q(x_{t-1} | x_t, x_0) is proportional to q(x_t | x_{t-1}) q(x_{t-1} | x_0):
 * -2 log of it is Q(y) = (x_t - sqrt(a) y)^2 / b + (y - sqrt(abar_prev) x0)^2 / (1 - abar_prev).
 * Q is quadratic, so its minimiser (the mean) is y0 - Q'(y0)/Q''(y0) and the variance
 * is 2/Q''; both derivatives by central differences (exact on a quadratic up to
 * rounding) - no algebra shared with schedule.c. */
static double posterior_Q(double y, double x0, double xt, double a, double b, double abar_prev) {
    double r1 = xt - sqrt(a) * y, r2 = y - sqrt(abar_prev) * x0;
    return r1 * r1 / b + r2 * r2 / (1.0 - abar_prev);
}

static void posterior_matches_completing_the_square(void) {
    dfn_schedule_params p = dfn_schedule_params_init(DFN_BETA_LINEAR);
    dfn_schedule s;
    if (!schedule_ok(&s, &p)) return;
    const int steps[] = {1, 2, 10, 100, 500, 999};
    const double pts[][2] = {{0.3, -1.2}, {-0.9, 0.4}, {1.0, 1.0}};
    double worst_mean = 0, worst_var = 0;
    for (size_t a = 0; a < sizeof steps / sizeof steps[0]; a++) {
        int i = steps[a];
        for (int q = 0; q < 3; q++) {
            double x0 = pts[q][0], xt = pts[q][1];
            double al = s.alpha[i], b = s.beta[i], ap = s.alpha_bar_prev[i];
            double y0 = 0.1, h = 1e-2;
            double qp = posterior_Q(y0 + h, x0, xt, al, b, ap),
                   qm = posterior_Q(y0 - h, x0, xt, al, b, ap);
            double q0 = posterior_Q(y0, x0, xt, al, b, ap);
            double d1 = (qp - qm) / (2 * h), d2 = (qp - 2 * q0 + qm) / (h * h);
            double mean = y0 - d1 / d2, var = 2.0 / d2;
            float fx0 = (float)x0, fxt = (float)xt;
            float got;
            double v, lv;
            dfn_q_posterior(&got, &v, &lv, &s, &fx0, &fxt, &i, 1, 1);
            double want_mean = s.posterior_coef_x0[i] * fx0 + s.posterior_coef_xt[i] * fxt;
            worst_mean = fmax(worst_mean, fabs(want_mean - mean) / fmax(1.0, fabs(mean)));
            worst_var = fmax(worst_var, rel_diff(v, var));
            CHECK(fabs(got - want_mean) <= 1e-6 * fmax(1.0, fabs(want_mean)), "q_posterior mean");
            CHECK(lv == s.posterior_log_variance_clipped[i], "q_posterior log variance");
        }
    }
    CHECK(worst_mean < 1e-6, "posterior mean vs completed square: %.3e", worst_mean);
    CHECK(worst_var < 1e-6, "posterior variance vs completed square: %.3e", worst_var);
    dfn_schedule_free(&s);
}

/* Mission section 1: mu_theta = (x_t - b/sqrt(1-abar) eps)/sqrt(a) with x_t built from
 * (x0, eps) equals the posterior mean coef_x0 x0 + coef_xt x_t. */
static void posterior_mean_from_eps_matches_coefficients(void) {
    dfn_schedule_params p = dfn_schedule_params_init(DFN_BETA_COSINE);
    dfn_schedule s;
    if (!schedule_ok(&s, &p)) return;
    double worst = 0;
    for (int i = 0; i < s.T - 1; i += 7) {
        double x0 = 0.7, eps = -1.3;
        double xt = s.sqrt_alpha_bar[i] * x0 + s.sqrt_one_minus_alpha_bar[i] * eps;
        double mu = (xt - s.beta[i] / s.sqrt_one_minus_alpha_bar[i] * eps) / sqrt(s.alpha[i]);
        double mean = s.posterior_coef_x0[i] * x0 + s.posterior_coef_xt[i] * xt;
        worst = fmax(worst, fabs(mu - mean));
    }
    CHECK(worst < 1e-12, "mu from eps vs posterior mean: %.3e", worst);
    dfn_schedule_free(&s);
}

/* x_t = sqrt(abar) x0 + sqrt(1-abar) eps over many draws: sample mean and variance
 * within 5 standard errors of sqrt(abar) x0 and 1 - abar. */
static void q_sample_has_the_right_moments(void) {
    dfn_schedule_params p = dfn_schedule_params_init(DFN_BETA_LINEAR);
    dfn_schedule s;
    if (!schedule_ok(&s, &p)) return;
    const int n = 200000;
    float *eps = malloc(n * sizeof(float)), *x0 = malloc(n * sizeof(float));
    float *xt = malloc(n * sizeof(float));
    int *t = malloc(n * sizeof(int));
    dfn_rng rng = dfn_rng_init(2024);
    const int steps[] = {0, 100, 499, 999};
    for (int a = 0; a < 4; a++) {
        int i = steps[a];
        dfn_rng_normal(&rng, eps, n);
        for (int k = 0; k < n; k++) {
            x0[k] = 1.5f;
            t[k] = i;
        }
        dfn_q_sample(xt, &s, x0, eps, t, n, 1);
        double sum = 0, sum2 = 0;
        for (int k = 0; k < n; k++)
            sum += xt[k];
        double mean = sum / n;
        for (int k = 0; k < n; k++)
            sum2 += (xt[k] - mean) * (xt[k] - mean);
        double var = sum2 / (n - 1);
        double want_mean = s.sqrt_alpha_bar[i] * 1.5, want_var = 1.0 - s.alpha_bar[i];
        double se_mean = sqrt(want_var / n), se_var = want_var * sqrt(2.0 / (n - 1));
        CHECK(fabs(mean - want_mean) < 5 * se_mean, "t index %d: mean %.6f want %.6f (se %.2e)", i,
              mean, want_mean, se_mean);
        CHECK(fabs(var - want_var) < 5 * se_var, "t index %d: var %.6g want %.6g (se %.2e)", i, var,
              want_var, se_var);
    }
    /* per-sample t in one batch: every element is its own formula */
    const int B = 5, D = 3;
    float bx0[15], beps[15], bxt[15];
    int bt[5] = {0, 999, 17, 500, 3};
    fill_uniform(bx0, 15, 1);
    fill_uniform(beps, 15, 2);
    dfn_q_sample(bxt, &s, bx0, beps, bt, B, D);
    int ok = 1;
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            float want = (float)(s.sqrt_alpha_bar[bt[b]] * bx0[b * D + d] +
                                 s.sqrt_one_minus_alpha_bar[bt[b]] * beps[b * D + d]);
            ok &= bxt[b * D + d] == want;
        }
    CHECK(ok, "batched q_sample uses each sample's own t");
    /* in place over eps */
    dfn_q_sample(beps, &s, bx0, beps, bt, B, D);
    CHECK(!memcmp(beps, bxt, sizeof bxt), "q_sample in place");
    free(eps);
    free(x0);
    free(xt);
    free(t);
    dfn_schedule_free(&s);
}

static void alpha_sigma_link_is_sqrt_alpha_bar(void) {
    dfn_schedule_params p = dfn_schedule_params_init(DFN_BETA_SIGMOID);
    dfn_schedule s;
    if (!schedule_ok(&s, &p)) return;
    int ok = 1;
    for (int i = 0; i < s.T; i++) {
        double a, sg;
        dfn_schedule_alpha_sigma(&s, i, &a, &sg);
        ok &= fabs(a * a - s.alpha_bar[i]) < 1e-15 && fabs(sg * sg - (1 - s.alpha_bar[i])) < 1e-15;
        ok &= fabs(a * a + sg * sg - 1.0) < 1e-15;
    }
    CHECK(ok, "alpha = sqrt(abar), sigma = sqrt(1-abar), alpha^2 + sigma^2 = 1");
    dfn_schedule_free(&s);
}

static void single_step_schedule_is_valid(void) {
    dfn_schedule_params p = dfn_schedule_params_init(DFN_BETA_LINEAR);
    p.T = 1;
    dfn_schedule s;
    if (!schedule_ok(&s, &p)) return;
    CHECK(s.beta[0] == 1e-4, "T = 1 linear uses beta_start");
    CHECK(s.posterior_log_variance_clipped[0] == log(1e-4),
          "T = 1: clipped log variance is log b_1");
    dfn_schedule_free(&s);
    dfn_schedule_free(&s); /* freeing a zeroed struct is harmless */
}

/* ---------------------------------------------------------------- names and files */

static void names_round_trip_and_unknown_lists_known(void) {
    for (int k = 0; k < DFN_BETA_KIND_COUNT; k++)
        CHECK(dfn_beta_kind_from_name(dfn_beta_kind_name(k)) == k, "name %d round trip", k);
    CHECK(dfn_beta_kind_from_name("scaled_linear") == DFN_BETA_QUADRATIC,
          "diffusers scaled_linear");
    CHECK(dfn_beta_kind_from_name("squaredcos_cap_v2") == DFN_BETA_COSINE, "diffusers cosine name");
    CHECK(dfn_beta_kind_from_name("cosinus") == -1, "unknown name gives -1");
    const char *msg = dfn_last_error();
    CHECK(strstr(msg, "cosinus") && strstr(msg, "linear") && strstr(msg, "cosine") &&
              strstr(msg, "sigmoid") && strstr(msg, "constant") && strstr(msg, "quadratic") &&
              strstr(msg, "file"),
          "message names the bad name and the known ones: %s", msg);
}

static void bad_parameters_are_user_errors(void) {
    dfn_schedule s;
    dfn_schedule_params p = dfn_schedule_params_init(DFN_BETA_LINEAR);
    p.T = 0;
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "T = 0"),
          "T < 1: %s", dfn_last_error());
    CHECK(s.beta == NULL && s.T == 0, "failed init leaves an empty struct");
    p.T = -5;
    p.kind = DFN_BETA_COSINE;
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_ARG, "T < 1 for cosine");
    p = dfn_schedule_params_init(DFN_BETA_LINEAR);
    p.beta_end = 1.5;
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "beta_end"),
          "beta_end out of range: %s", dfn_last_error());
    p = dfn_schedule_params_init(DFN_BETA_QUADRATIC);
    p.beta_start = 0.0;
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "beta_start"),
          "beta_start = 0: %s", dfn_last_error());
    p = dfn_schedule_params_init(DFN_BETA_COSINE);
    p.max_beta = 1.0;
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_ARG, "max_beta = 1");
    p = dfn_schedule_params_init(DFN_BETA_FILE);
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "path"),
          "file kind without a path: %s", dfn_last_error());
    double betas[3] = {0.1, 1.0, 0.2};
    CHECK(dfn_schedule_from_betas(&s, betas, 3) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "beta[1]"),
          "from_betas names the bad index: %s", dfn_last_error());
    CHECK(dfn_schedule_from_betas(&s, betas, 0) == DFN_ERR_ARG, "from_betas T = 0");
}

static char tmpdir[256];

static const char *write_file(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void beta_files_parse_and_errors_name_file_and_line(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfn_test_schedule_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp failed");
        return;
    }
    dfn_schedule s;
    dfn_schedule_params p = dfn_schedule_params_init(DFN_BETA_FILE);

    /* one per line, with a comment, a blank line and CRLF */
    p.path = write_file("lines.txt", "# my betas\n0.001\n\n0.002\r\n  0.5  \n");
    if (schedule_ok(&s, &p)) {
        CHECK(s.T == 3 && s.beta[0] == 0.001 && s.beta[1] == 0.002 && s.beta[2] == 0.5,
              "lines: T %d", s.T);
        CHECK(s.kind == DFN_BETA_FILE, "kind file");
        dfn_schedule_free(&s);
    }

    /* comma-separated, over two lines, trailing comma */
    p.path = write_file("commas.csv", "1e-4, 2e-4,3e-4,\n4e-4 ,5e-4");
    if (schedule_ok(&s, &p)) {
        CHECK(s.T == 5 && s.beta[4] == 5e-4 && s.beta[2] == 3e-4, "commas: T %d", s.T);
        dfn_schedule_free(&s);
    }

    /* the same numbers either way give the same schedule as from_betas */
    double want[5] = {1e-4, 2e-4, 3e-4, 4e-4, 5e-4};
    dfn_schedule r;
    CHECK(dfn_schedule_from_betas(&r, want, 5) == DFN_OK, "from_betas: %s", dfn_last_error());
    if (schedule_ok(&s, &p) && r.T == 5)
        CHECK(!memcmp(s.alpha_bar, r.alpha_bar, 5 * sizeof(double)), "file = from_betas");
    dfn_schedule_free(&s);
    dfn_schedule_free(&r);

    p.path = "/nonexistent/dir/betas.txt";
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_IO &&
              strstr(dfn_last_error(), "/nonexistent/dir/betas.txt"),
          "missing file named: %s", dfn_last_error());

    p.path = write_file("nan.txt", "0.1\n0.2\n0.3x\n");
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_FORMAT && strstr(dfn_last_error(), "nan.txt:3") &&
              strstr(dfn_last_error(), "0.3x") && strstr(dfn_last_error(), "not a number"),
          "non-number names file and line: %s", dfn_last_error());
    CHECK(s.beta == NULL, "failed file load owns nothing");

    p.path = write_file("inf.txt", "0.1, inf\n");
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_FORMAT && strstr(dfn_last_error(), "inf.txt:1"),
          "inf is not a number: %s", dfn_last_error());

    p.path = write_file("range.txt", "0.1\n0.2\n\n1.5\n");
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_FORMAT && strstr(dfn_last_error(), "range.txt:4") &&
              strstr(dfn_last_error(), "outside (0, 1)"),
          "out of range names file and line: %s", dfn_last_error());

    p.path = write_file("zero.txt", "0\n");
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_FORMAT && strstr(dfn_last_error(), "zero.txt:1"),
          "beta 0 is out of range: %s", dfn_last_error());

    p.path = write_file("empty.txt", "");
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_FORMAT && strstr(dfn_last_error(), "empty.txt") &&
              strstr(dfn_last_error(), "empty"),
          "empty file: %s", dfn_last_error());

    p.path = write_file("blank.txt", "\n# nothing\n   \n");
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_FORMAT && strstr(dfn_last_error(), "no betas"),
          "only comments: %s", dfn_last_error());

    p.path = write_file("gap.txt", "0.1,,0.2\n");
    CHECK(dfn_schedule_init(&s, &p) == DFN_ERR_FORMAT && strstr(dfn_last_error(), "gap.txt:1") &&
              strstr(dfn_last_error(), "empty field"),
          "empty field: %s", dfn_last_error());

    const char *names[] = {"lines.txt", "commas.csv", "nan.txt",   "inf.txt", "range.txt",
                           "zero.txt",  "empty.txt",  "blank.txt", "gap.txt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

int main(void) {
    each_kind_matches_its_closed_form();
    defaults_are_ddpm_and_improved_ddpm();
    derived_quantities_follow_their_definitions();
    snr_is_strictly_decreasing();
    cosine_alpha_bar_is_the_cos2_formula();
    posterior_matches_completing_the_square();
    posterior_mean_from_eps_matches_coefficients();
    q_sample_has_the_right_moments();
    alpha_sigma_link_is_sqrt_alpha_bar();
    single_step_schedule_is_valid();
    names_round_trip_and_unknown_lists_known();
    bad_parameters_are_user_errors();
    beta_files_parse_and_errors_name_file_and_line();
    TEST_MAIN_END();
}

/* registry.c - the samplers by name (for "diffusion sample --list" and
 * --sampler NAME), the option names, the defaults, and the checks every sampler
 * starts with. */
#include <math.h>
#include <string.h>

#include "sample/sample.h"

/* dpm_solver.c's entry points for each (order, kind) pair. */
#define DPM_ENTRY(fname, order, ms, data)                                                   \
    static dfn_status fname(dfn_denoiser *d, float *x, int batch, size_t dim,               \
                            const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *st) { \
        return dfn_sample_dpm(d, x, batch, dim, p, rng, st, order, ms, data);               \
    }
DPM_ENTRY(dpmpp_1, 1, 1, 1)
DPM_ENTRY(dpmpp_2m, 2, 1, 1)
DPM_ENTRY(dpmpp_3m, 3, 1, 1)
DPM_ENTRY(dpmpp_2s, 2, 0, 1)
DPM_ENTRY(dpm_1, 1, 1, 0)
DPM_ENTRY(dpm_2m, 2, 1, 0)
DPM_ENTRY(dpm_3m, 3, 1, 0)
DPM_ENTRY(dpm_2s, 2, 0, 0)

#define SDE_ALL (DFN_FITS_VP | DFN_FITS_SUBVP | DFN_FITS_VE)
/* the probability-flow ODE: also a schedule's (its VP SDE) and rectified flow's (dx/dt = v) */
#define ODE_ALL (DFN_FITS_DISCRETE | SDE_ALL | DFN_FITS_FLOW)
#define VP_ALL (DFN_FITS_DISCRETE | DFN_FITS_VP | DFN_FITS_SUBVP)

static const dfn_sampler_info samplers[] = {
    {"ddpm", "DDPM ancestral, all T steps (Ho et al. 2020 alg. 2)", DFN_FITS_DISCRETE,
     dfn_sample_ddpm},
    {"ddim", "DDIM with eta, S <= T steps, leading/trailing/linspace (Song et al. 2021 eq. 12)",
     DFN_FITS_DISCRETE, dfn_sample_ddim},
    {"langevin", "Langevin dynamics at the lowest noise level, x += c score + sqrt(2c) z",
     VP_ALL | SDE_ALL, dfn_sample_langevin},
    {"annealed-langevin", "annealed Langevin over geometric sigmas (Song & Ermon 2019 alg. 1)",
     DFN_FITS_VE, dfn_sample_annealed_langevin},
    {"euler-maruyama", "reverse SDE by Euler-Maruyama (Song et al. 2021 eq. 6)",
     DFN_FITS_DISCRETE | SDE_ALL, dfn_sample_euler_maruyama},
    {"pc", "predictor-corrector: reverse diffusion + Langevin corrector (Song et al. 2021 alg. 4-5)",
     SDE_ALL, dfn_sample_pc},
    {"ode-euler", "probability-flow ODE, Euler (Song et al. 2021 eq. 13)", ODE_ALL,
     dfn_sample_ode_euler},
    {"ode-heun", "probability-flow ODE, Heun (2nd order, 2 NFE per step)", ODE_ALL,
     dfn_sample_ode_heun},
    {"ode-rk4", "probability-flow ODE, classical Runge-Kutta (4th order, 4 NFE per step)", ODE_ALL,
     dfn_sample_ode_rk4},
    {"ode-rk45", "probability-flow ODE, adaptive Dormand-Prince 5(4) with rtol, atol", ODE_ALL,
     dfn_sample_ode_rk45},
    {"dpm++1", "DPM-Solver++ 1st order, data prediction (= DDIM) (Lu et al. 2022b)", VP_ALL,
     dpmpp_1},
    {"dpm++2m", "DPM-Solver++(2M), multistep 2nd order (Lu et al. 2022b alg. 2)", VP_ALL,
     dpmpp_2m},
    {"dpm++3m", "DPM-Solver++(3M), multistep 3rd order (Lu et al. 2022b)", VP_ALL, dpmpp_3m},
    {"dpm++2s", "DPM-Solver++(2S), singlestep 2nd order, 2 NFE per step (Lu et al. 2022b alg. 1)",
     VP_ALL, dpmpp_2s},
    {"dpm1", "DPM-Solver-1, noise prediction (= DDIM) (Lu et al. 2022a eq. 3.7)", VP_ALL, dpm_1},
    {"dpm2m", "DPM-Solver multistep 2nd order, noise prediction (Lu et al. 2022b eq. 3.7 form)",
     VP_ALL, dpm_2m},
    {"dpm3m", "DPM-Solver multistep 3rd order, noise prediction", VP_ALL, dpm_3m},
    {"dpm2s", "DPM-Solver-2, singlestep, noise prediction (Lu et al. 2022a alg. 1)", VP_ALL,
     dpm_2s},
    {"euler", "EDM Euler on Karras sigmas with optional churn (Karras et al. 2022 alg. 2)",
     VP_ALL | DFN_FITS_VE, dfn_sample_karras_euler},
    {"heun", "EDM Heun on Karras sigmas with optional churn (Karras et al. 2022 alg. 2)",
     VP_ALL | DFN_FITS_VE, dfn_sample_karras_heun},
    {"flow-euler", "rectified flow: Euler on dx/dt = v from t = 1 to 0 (Liu et al. 2023)",
     DFN_FITS_FLOW, dfn_sample_flow_euler},
    {"consistency", "multistep consistency sampling of a consistency model, 1-4 steps (Song et al. "
                    "2023 alg. 1)",
     ODE_ALL, dfn_sample_consistency},
    {"repaint", "RePaint: ancestral steps with resampling jumps, for inpainting (Lugmayr et al. "
                "2022 alg. 1)",
     VP_ALL | SDE_ALL | DFN_FITS_FLOW, dfn_sample_repaint},
};
#define NUM_SAMPLERS ((int)(sizeof(samplers) / sizeof(samplers[0])))

int dfn_num_samplers(void) { return NUM_SAMPLERS; }

const dfn_sampler_info *dfn_sampler_get(int i) {
    return i >= 0 && i < NUM_SAMPLERS ? &samplers[i] : NULL;
}

static void append(char *buf, size_t size, const char *s) {
    size_t len = strlen(buf);
    if (len + 1 < size) snprintf(buf + len, size - len, "%s%s", len ? ", " : "", s);
}

const dfn_sampler_info *dfn_sampler_find(const char *name) {
    DFN_ASSERT(name != NULL);
    for (int i = 0; i < NUM_SAMPLERS; i++)
        if (!strcmp(name, samplers[i].name)) return &samplers[i];
    char list[512] = "";
    for (int i = 0; i < NUM_SAMPLERS; i++) append(list, sizeof(list), samplers[i].name);
    dfn_set_error(DFN_ERR_ARG, "unknown sampler '%s' (known: %s)", name, list);
    return NULL;
}

unsigned dfn_denoiser_process_flag(const dfn_denoiser *d) {
    DFN_ASSERT(d != NULL);
    if (d->schedule) return DFN_FITS_DISCRETE;
    if (!d->sde) return 0;
    switch (d->sde->kind) {
    case DFN_SDE_VP: return DFN_FITS_VP;
    case DFN_SDE_SUBVP: return DFN_FITS_SUBVP;
    case DFN_SDE_VE: return DFN_FITS_VE;
    case DFN_SDE_FLOW: return DFN_FITS_FLOW;
    default: return 0;
    }
}

void dfn_sampler_names_fitting(unsigned flag, char *buf, size_t size) {
    buf[0] = '\0';
    for (int i = 0; i < NUM_SAMPLERS; i++)
        if (samplers[i].fits & flag) append(buf, size, samplers[i].name);
}

void dfn_sampler_fits_names(unsigned fits, char *buf, size_t size) {
    static const char *const names[] = {"discrete schedules", "vp", "subvp", "ve", "flow"};
    buf[0] = '\0';
    for (int i = 0; i < 5; i++)
        if (fits & (1u << i)) append(buf, size, names[i]);
}

dfn_status dfn_sample(const char *name, dfn_denoiser *d, float *x, int batch, size_t dim,
                      const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats) {
    const dfn_sampler_info *s = dfn_sampler_find(name);
    if (!s) return DFN_ERR_ARG;
    return s->fn(d, x, batch, dim, p, rng, stats);
}

/* ---------------------------------------------------------------- options */

static const char *const spacing_names[] = {"leading", "trailing", "linspace"};
_Static_assert(sizeof(spacing_names) / sizeof(spacing_names[0]) == DFN_SPACING_COUNT,
               "spacing_names must name every dfn_spacing");
static const char *const variance_names[] = {"beta-tilde", "beta"};
_Static_assert(sizeof(variance_names) / sizeof(variance_names[0]) == DFN_VARIANCE_COUNT,
               "variance_names must name every dfn_ddpm_variance");
static const char *const grid_names[] = {"lambda", "time"};
_Static_assert(sizeof(grid_names) / sizeof(grid_names[0]) == DFN_GRID_COUNT,
               "grid_names must name every dfn_time_grid");

const char *dfn_spacing_name(dfn_spacing s) {
    return dfn_name_of(spacing_names, DFN_SPACING_COUNT, (int)s);
}
int dfn_spacing_from_name(const char *name) {
    return dfn_name_lookup("timestep spacing", name, spacing_names, DFN_SPACING_COUNT, NULL);
}
const char *dfn_ddpm_variance_name(dfn_ddpm_variance v) {
    return dfn_name_of(variance_names, DFN_VARIANCE_COUNT, (int)v);
}
int dfn_ddpm_variance_from_name(const char *name) {
    static const dfn_name_alias aliases[] = {
        {"fixed_small", DFN_VARIANCE_BETA_TILDE}, {"fixed_large", DFN_VARIANCE_BETA}, {NULL, 0}};
    return dfn_name_lookup("DDPM variance", name, variance_names, DFN_VARIANCE_COUNT, aliases);
}
const char *dfn_time_grid_name(dfn_time_grid g) {
    return dfn_name_of(grid_names, DFN_GRID_COUNT, (int)g);
}
int dfn_time_grid_from_name(const char *name) {
    static const dfn_name_alias aliases[] = {{"logSNR", DFN_GRID_LAMBDA}, {NULL, 0}};
    return dfn_name_lookup("time grid", name, grid_names, DFN_GRID_COUNT, aliases);
}

dfn_sampler_params dfn_sampler_params_init(void) {
    dfn_sampler_params p;
    memset(&p, 0, sizeof(p));
    p.denoise_final = 1;
    p.variance = DFN_VARIANCE_BETA_TILDE;
    p.spacing = DFN_SPACING_LEADING;
    p.clip_x0 = 1;
    p.clip_range = 1.0;
    p.threshold_p = 0.995; /* Saharia et al. 2022 section 2.3 / appendix E */
    p.threshold_max = INFINITY;
    p.langevin_c = 0.01;
    p.langevin_eps = 2e-5; /* Song & Ermon 2019 section 5: eps = 2e-5, T = 100, L = 10 */
    p.levels = 10;
    p.steps_per_level = 100;
    p.corrector_steps = 1;
    p.snr = 0.16; /* score_sde's VE configs */
    p.rtol = 1e-5; /* score_sde's ode_sampler */
    p.atol = 1e-5;
    p.max_steps = 10000;
    p.time_grid = DFN_GRID_LAMBDA;
    p.lower_order_final = 1;
    p.rho = 7.0; /* Karras et al. 2022 eq. 5 */
    p.s_tmax = INFINITY;
    p.s_noise = 1.0;
    p.strength = 1.0;
    p.jump_length = 10; /* Lugmayr et al. 2022 section 4.1: j = 10, r = 10 */
    p.jump_n_sample = 10;
    return p;
}

/* ---------------------------------------------------------------- shared by the samplers */

dfn_status dfn_sampler_begin(const char *name, dfn_denoiser *d, const float *x, int batch, size_t dim,
                        const dfn_sampler_params *in, dfn_sampler_params *p, unsigned fits,
                        int default_steps) {
    DFN_ASSERT(d != NULL && p != NULL);
    *p = in ? *in : dfn_sampler_params_init();
    if (dfn_denoiser_validate(d) != DFN_OK) return DFN_ERR_ARG;
    if (!x || batch < 1 || dim < 1)
        return dfn_set_error(DFN_ERR_ARG, "%s: need a batch of at least one vector (batch = %d, "
                                          "dim = %zu)",
                             name, batch, dim);
    const unsigned flag = dfn_denoiser_process_flag(d);
    if (!(fits & flag)) {
        char have[32], want[96], alt[512];
        dfn_sampler_fits_names(flag, have, sizeof(have));
        dfn_sampler_fits_names(fits, want, sizeof(want));
        dfn_sampler_names_fitting(flag, alt, sizeof(alt));
        return dfn_set_error(DFN_ERR_ARG,
                             "sampler '%s' does not fit a %s process (it fits: %s); for %s use "
                             "one of: %s",
                             name, have, want, have, alt);
    }
    if (p->steps == 0) p->steps = default_steps;
    if (p->steps < 1)
        return dfn_set_error(DFN_ERR_ARG, "%s: steps = %d, need at least 1", name, p->steps);
    if (!(p->strength > 0.0 && p->strength <= 1.0))
        return dfn_set_error(DFN_ERR_ARG, "%s: strength = %g, need 0 < strength <= 1", name,
                             p->strength);
    p->steps = dfn_sampler_scaled(p->steps, p->strength);
    return DFN_OK;
}

int dfn_sampler_scaled(int n, double strength) {
    if (strength >= 1.0) return n;
    return DFN_MAX(1, (int)nearbyint(n * strength));
}

void dfn_sampler_t_range(const dfn_denoiser *d, const dfn_sampler_params *p, double *t_lo,
                         double *t_hi) {
    dfn_denoiser_t_range(d, p->t_end, t_lo, t_hi);
    if (p->strength < 1.0) *t_hi = *t_lo + p->strength * (*t_hi - *t_lo);
}

void dfn_sampler_start(const dfn_sampler_params *p, float *x, int batch, size_t dim, double alpha,
                       double sigma, double prior_std, dfn_rng *rng) {
    const size_t n = (size_t)batch * dim;
    if (p->strength < 1.0) { /* SDEdit (Meng et al. 2022 eq. 2): x_t = alpha x0 + sigma z */
        DFN_ASSERT(rng != NULL);
        float *z = dfn_malloc(n * sizeof(float));
        dfn_rng_normal(rng, z, n);
        for (size_t i = 0; i < n; i++) x[i] = (float)(alpha * x[i] + sigma * z[i]);
        free(z);
    } else {
        dfn_sampler_prior(p, x, n, prior_std, rng);
    }
    dfn_sampler_constrain(p, x, alpha, sigma, batch, dim);
}

void dfn_sampler_constrain(const dfn_sampler_params *p, float *x, double alpha, double sigma,
                           int batch, size_t dim) {
    if (p->constraint) p->constraint(p->constraint_ctx, x, alpha, sigma, batch, dim);
}

void dfn_sampler_prior(const dfn_sampler_params *p, float *x, size_t n, double std, dfn_rng *rng) {
    if (p->from_x) return;
    DFN_ASSERT(rng != NULL);
    dfn_rng_normal(rng, x, n);
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * x[i]);
}

void dfn_sampler_add_noise(float *x, float *z, size_t n, double scale, dfn_rng *rng) {
    DFN_ASSERT(rng != NULL);
    dfn_rng_normal(rng, z, n);
    for (size_t i = 0; i < n; i++) x[i] = (float)((double)x[i] + scale * z[i]);
}

/* DFN_ERR_NUMERIC naming the sampler, what left it and the sample at the first
 * NaN or Inf in x (batch, dim). */
static dfn_status check_finite(const char *name, const char *what, double t, const float *x, int batch,
                               size_t dim) {
    const size_t n = (size_t)batch * dim;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return dfn_set_error(DFN_ERR_NUMERIC,
                                 "sampler '%s': %s (t = %.4g) left %g in sample %zu of the batch "
                                 "(element %zu)",
                                 name, what, t, (double)x[i], i / dim, i % dim);
    return DFN_OK;
}

dfn_status dfn_sampler_step(const dfn_sampler_params *p, const char *name, int step, int steps,
                            double t, const float *x, const float *x0, int batch, size_t dim) {
    char what[48];
    snprintf(what, sizeof what, "step %d of %d", step, steps);
    dfn_status st = check_finite(name, what, t, x, batch, dim);
    if (st != DFN_OK) return st;
    if (p->callback) p->callback(p->callback_ctx, step, steps, t, x, x0, batch, dim);
    return DFN_OK;
}

dfn_status dfn_sampler_denoise_final(dfn_denoiser *d, const dfn_sampler_params *p, const char *name,
                                     float *x, double t, int batch, size_t dim) {
    if (!p->denoise_final) return DFN_OK;
    double alpha, sigma;
    dfn_denoiser_marginal(d, t, &alpha, &sigma);
    if (sigma <= 0.0) return DFN_OK; /* x is data already (rectified flow at t = 0) */
    const size_t n = (size_t)batch * dim;
    float *x0 = dfn_malloc(n * sizeof(float));
    dfn_denoiser_eval(d, x0, DFN_PRED_X0, x, t, batch, dim); /* Tweedie: E[x0 | x_t] */
    dfn_sampler_postprocess_x0(p, x0, batch, dim);           /* clipped as every x0 estimate */
    memcpy(x, x0, n * sizeof(float));
    free(x0);
    dfn_sampler_constrain(p, x, 1.0, 0.0, batch, dim); /* x is data now */
    return check_finite(name, "the final denoising step", t, x, batch, dim);
}

void dfn_sampler_report(dfn_sample_stats *stats, const dfn_denoiser *d, long nfe0, int steps,
                        int rejected) {
    if (!stats) return;
    stats->nfe = d->nfe - nfe0;
    stats->steps = steps;
    stats->rejected = rejected;
}

/* exact_score.c - the exact denoiser of a Gaussian mixture through two
 * samplers: DDPM on a discrete schedule and DPM-Solver++(2M) on the VP SDE,
 * printing component fractions, means and the sliced distance to the target.
 *
 *     ./example_exact_score
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <diffusion.h>

static void report(const char *name, const dfn_mixture *m, const float *x, int n, long nfe) {
    double frac[3] = {0, 0, 0}, mean[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        int best = 0;
        double bd = INFINITY;
        for (int k = 0; k < 3; k++) {
            const float *mu = dfn_mixture_mean(m, k);
            double d = (x[2 * i] - mu[0]) * (x[2 * i] - mu[0]) + (x[2 * i + 1] - mu[1]) * (x[2 * i + 1] - mu[1]);
            if (d < bd) bd = d, best = k;
        }
        frac[best] += 1.0 / n;
        mean[0] += x[2 * i] / n;
        mean[1] += x[2 * i + 1] / n;
    }
    printf("%-8s nfe %4ld  fractions %.3f %.3f %.3f (target %.1f %.1f %.1f)  mean (%.3f, %.3f)\n",
           name, nfe, frac[0], frac[1], frac[2], dfn_mixture_weight(m, 0), dfn_mixture_weight(m, 1),
           dfn_mixture_weight(m, 2), mean[0], mean[1]);
}

int main(void) {
    const float w[3] = {0.5f, 0.3f, 0.2f}, mu[6] = {-0.5f, -0.5f, 0.5f, -0.3f, 0.0f, 0.6f};
    const float sd[3] = {0.12f, 0.15f, 0.1f};
    dfn_mixture_params mp = {2, 3, w, mu, NULL, sd};
    dfn_mixture *mix;
    if (dfn_mixture_new(&mix, &mp) != DFN_OK) {
        fprintf(stderr, "%s\n", dfn_last_error());
        return 1;
    }
    enum { N = 4000 };
    float *x = malloc(sizeof(float) * N * 2);
    dfn_sample_stats st;

    dfn_schedule sch; /* DDPM: linear betas, T = 1000, exact eps */
    dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_LINEAR);
    dfn_schedule_init(&sch, &sp);
    dfn_denoiser d;
    dfn_mixture_denoiser(&d, mix, DFN_PRED_EPS, &sch, NULL);
    dfn_sampler_params p = dfn_sampler_params_init();
    dfn_rng rng = dfn_rng_init(42);
    if (dfn_sample("ddpm", &d, x, N, 2, &p, &rng, &st) != DFN_OK) {
        fprintf(stderr, "%s\n", dfn_last_error());
        return 1;
    }
    report("ddpm", mix, x, N, st.nfe);

    dfn_sde vp = dfn_sde_init(DFN_SDE_VP); /* DPM-Solver++(2M), 20 steps */
    dfn_mixture_denoiser(&d, mix, DFN_PRED_X0, NULL, &vp);
    p.steps = 20;
    if (dfn_sample("dpm++2m", &d, x, N, 2, &p, &rng, &st) != DFN_OK) {
        fprintf(stderr, "%s\n", dfn_last_error());
        return 1;
    }
    report("dpm++2m", mix, x, N, st.nfe);

    dfn_schedule_free(&sch);
    dfn_mixture_free(mix);
    free(x);
    return 0;
}

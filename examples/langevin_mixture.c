/* langevin_mixture.c - seed 002's experiment: Langevin dynamics with the exact
 * score of a two-component mixture p = 0.8 N(-4, 0.5^2) + 0.2 N(4, 0.5^2).
 * The score of p does not see the mixture weights far from the valley
 * between the modes, so plain Langevin started between them keeps its
 * starting split (about half in each mode); annealed Langevin (Song & Ermon
 * 2019 alg. 1), which starts from the score of p blurred by a large noise,
 * recovers 0.8 / 0.2 when its noise levels are fine enough. Both start from the same uniform draw on [-8, 8].
 * Writes DIR/langevin_plain.png and DIR/langevin_annealed.png (histograms
 * beside the true density) and prints the weights.
 *
 *     ./example_langevin_mixture DIR [--quick | --smoke]   (4000 or 200 samples, not 20000)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <diffusion.h>

#define W_SMALL 0.2
#define MU 4.0
#define SD 0.5

/* The fraction of samples in the small mode (x > 0). */
static double small_weight(const float *x, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) k += x[i] > 0.0f;
    return (double)k / n;
}

static int histogram(const char *dir, const char *name, const char *title, const float *x, int n) {
    enum { G = 401 };
    float gx[G], gy[G];
    for (int i = 0; i < G; i++) { /* p(x) = 0.8 N(x; -4, 0.25) + 0.2 N(x; 4, 0.25) */
        double v = -8.0 + 16.0 * i / (G - 1), a = (v + MU) / SD, b = (v - MU) / SD;
        gx[i] = (float)v;
        gy[i] = (float)(((1.0 - W_SMALL) * exp(-0.5 * a * a) + W_SMALL * exp(-0.5 * b * b)) /
                        (SD * sqrt(2.0 * 3.14159265358979323846)));
    }
    dfn_plot *p = dfn_plot_new(700, 420);
    dfn_plot_labels(p, title, "x", "density");
    dfn_plot_hist(p, x, (size_t)n, 80, -8.0, 8.0, "samples");
    dfn_plot_line(p, gx, gy, G, "true density 0.8 / 0.2");
    dfn_plot_style(p, 0x000000, 1.0f, 2.0f, 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    dfn_status st = dfn_plot_save(p, path);
    dfn_plot_free(p);
    if (st) fprintf(stderr, "%s\n", dfn_last_error());
    return st != DFN_OK;
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: %s DIR [--quick | --smoke]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    const int quick = argc > 2 && !strcmp(argv[2], "--quick"), smoke = argc > 2 && !strcmp(argv[2], "--smoke");
    const int n = smoke ? 200 : quick ? 4000 : 20000;
    const float w[2] = {1.0f - W_SMALL, W_SMALL}, mu[2] = {-MU, MU}, sd[2] = {SD, SD};
    dfn_mixture_params mp = {1, 2, w, mu, NULL, sd};
    dfn_mixture *mix;
    if (dfn_mixture_new(&mix, &mp) != DFN_OK) {
        fprintf(stderr, "%s\n", dfn_last_error());
        return 1;
    }
    /* VE process: p_sigma = p * N(0, sigma^2), whose exact score the mixture
     * gives at every sigma; levels from 10 (wider than the modes' distance) to 0.01 */
    dfn_sde ve = dfn_sde_init(DFN_SDE_VE);
    ve.sigma_max = 10.0;
    dfn_denoiser d;
    dfn_mixture_denoiser(&d, mix, DFN_PRED_EPS, NULL, &ve);
    float *start = malloc(sizeof(float) * n), *x = malloc(sizeof(float) * n);
    dfn_rng rng = dfn_rng_init(2);
    dfn_rng_uniform(&rng, start, (size_t)n);
    for (int i = 0; i < n; i++) start[i] = 16.0f * start[i] - 8.0f;

    dfn_sampler_params p = dfn_sampler_params_init();
    p.from_x = 1;
    p.clip_x0 = 0; /* points at +-4, not images in [-1, 1] */
    p.steps = 1000; /* plain: x += c score + sqrt(2c) z at sigma_min, c = 0.01 */
    p.langevin_c = 0.01;
    memcpy(x, start, sizeof(float) * n);
    dfn_status st = dfn_sample("langevin", &d, x, n, 1, &p, &rng, NULL);
    double plain = small_weight(x, n);
    int bad = st != DFN_OK;
    if (!bad) bad = histogram(dir, "langevin_plain.png", "plain Langevin, exact score: the start's split stays", x, n);

    /* Annealed: the split between the modes freezes at the level where they
     * separate (sigma about 2 here); between two coarse levels (ratio 2.15 for
     * 10 levels) the chains are assigned by the side of 0 they are on, where
     * the blurred components overlap, which pulls the weights toward 1/2 (to
     * about 0.77 / 0.23). Finer levels (ratio 1.15) follow the weights. */
    const int levels[2] = {10, 50}, per_level[2] = {100, 200};
    double annealed[2];
    for (int k = 0; k < 2 && !bad; k++) {
        p = dfn_sampler_params_init();
        p.from_x = 1;
        p.clip_x0 = 0; /* points at +-4, not images in [-1, 1]: no clipping of the final x0 */
        p.levels = levels[k]; /* sigma 10 .. 0.01, alpha_i = eps sigma_i^2 / sigma_L^2 */
        p.steps_per_level = per_level[k];
        p.langevin_eps = 2e-5;
        memcpy(x, start, sizeof(float) * n);
        bad = dfn_sample("annealed-langevin", &d, x, n, 1, &p, &rng, NULL) != DFN_OK;
        annealed[k] = small_weight(x, n);
    }
    if (!bad)
        bad = histogram(dir, "langevin_annealed.png", "annealed Langevin, exact scores: the weights return", x, n);
    if (bad) {
        if (st != DFN_OK || !strstr(dfn_last_error(), ".png")) fprintf(stderr, "%s\n", dfn_last_error());
    } else {
        printf("start: uniform on [-8, 8], small-mode weight %.4f\n", small_weight(start, n));
        printf("plain Langevin: weights %.4f / %.4f (target %.1f / %.1f; %d samples, 1000 steps)\n", 1.0 - plain,
               plain, 1.0 - W_SMALL, W_SMALL, n);
        for (int k = 0; k < 2; k++)
            printf("annealed Langevin, %d levels x %d steps: weights %.4f / %.4f (target %.1f / %.1f)\n",
                   levels[k], per_level[k], 1.0 - annealed[k], annealed[k], 1.0 - W_SMALL, W_SMALL);
    }
    free(start);
    free(x);
    dfn_mixture_free(mix);
    dfn_plot_release_caches();
    return bad;
}

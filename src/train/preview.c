/* preview.c - what a run shows of its progress: samples from the EMA weights,
 * a grid of images or a plot of vectors over the data. */
#include <math.h>
#include <string.h>

#include "core.h"
#include "train/train.h"

/* x (n, D) <- samples of the model with the EMA weights: DDIM with eta = 0
 * (Song et al. 2021 eq. 12) over `steps` evenly spaced steps, x0 clipped to
 * [-1, 1] for images. */
static void sample_ddim(dfn_model *model, const dfn_schedule *s, float *x, int n, size_t D,
                        int steps, int clip, uint64_t seed) {
    dfn_rng rng = dfn_rng_init(seed);
    dfn_rng_normal(&rng, x, (size_t)n * D);
    float *eps = dfn_malloc((size_t)n * D * sizeof(float)), *t = dfn_malloc((size_t)n * sizeof(float));
    for (int k = steps - 1; k >= 0; k--) {
        int i = (int)((long)k * s->T / steps), prev = k > 0 ? (int)((long)(k - 1) * s->T / steps) : -1;
        for (int b = 0; b < n; b++) t[b] = (float)i;
        dfn_model_forward(model, eps, x, t, NULL, n, 0, NULL);
        double a = s->alpha_bar[i], a_prev = prev >= 0 ? s->alpha_bar[prev] : 1.0;
        for (size_t j = 0; j < (size_t)n * D; j++) {
            double x0 = (x[j] - sqrt(1 - a) * eps[j]) / sqrt(a);
            if (clip) x0 = x0 < -1 ? -1 : x0 > 1 ? 1 : x0;
            double e = (x[j] - sqrt(a) * x0) / sqrt(1 - a);
            x[j] = (float)(sqrt(a_prev) * x0 + sqrt(1 - a_prev) * e);
        }
    }
    free(eps);
    free(t);
}

dfn_status dfn_train_preview(dfn_model *model, const float *ema, const dfn_dataset *data,
                             const dfn_train_params *p, const dfn_schedule *schedule,
                             const char *prefix) {
    if (p->process.continuous || p->objective.prediction != DFN_PRED_EPS) return DFN_OK;
    size_t P = dfn_model_num_params(model), D = dfn_dataset_sample_size(data);
    int n = p->sample_count;
    float *params = dfn_model_params(model), *saved = dfn_malloc(P * sizeof(float));
    float *x = dfn_malloc((size_t)n * D * sizeof(float));
    memcpy(saved, params, P * sizeof(float));
    memcpy(params, ema, P * sizeof(float));
    const dfn_model_config *cfg = dfn_model_get_config(model);
    int image = cfg->kind == DFN_MODEL_UNET;
    sample_ddim(model, schedule, x, n, D, 50, image, p->seed ^ 0x70726576696577ull); /* "preview" */
    memcpy(params, saved, P * sizeof(float));
    free(saved);

    char path[4200];
    dfn_status st;
    snprintf(path, sizeof path, "%s", prefix); /* the folder of prefix must exist */
    char *slash = strrchr(path, '/');
    if (slash) {
        *slash = 0;
        if ((st = dfn_make_dir(path))) goto done;
    }
    if (image) {
        snprintf(path, sizeof path, "%s.png", prefix);
        int cols = (int)ceil(sqrt((double)n));
        st = dfn_png_write_grid(path, x, n, cfg->in_channels, cfg->resolution, cfg->resolution, cols,
                                cfg->resolution < 64 ? 2 : 1);
    } else {
        snprintf(path, sizeof path, "%s.png", prefix);
        dfn_plot *plot = dfn_plot_new(700, 600);
        if (D == 2) {
            size_t nd = dfn_dataset_count(data) < 4096 ? dfn_dataset_count(data) : 4096;
            dfn_plot_labels(plot, "samples (EMA) over data", "x1", "x2");
            dfn_plot_scatter(plot, dfn_dataset_sample(data, 0), (int)nd, "data");
            dfn_plot_scatter(plot, x, n, "samples");
        } else {
            float *grid = dfn_malloc(D * sizeof(float));
            for (size_t j = 0; j < D; j++) grid[j] = (float)j;
            dfn_plot_labels(plot, "samples (EMA)", "index", "value");
            for (int b = 0; b < n && b < 8; b++) dfn_plot_line(plot, grid, x + (size_t)b * D, (int)D, NULL);
            free(grid);
        }
        st = dfn_plot_save(plot, path);
        dfn_plot_free(plot);
    }
done:
    free(x);
    return st;
}

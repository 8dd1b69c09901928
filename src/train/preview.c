/* preview.c - what a run shows of its progress: samples from the EMA weights,
 * a grid of images or a plot of vectors over the data. */
#include <math.h>
#include <string.h>

#include "core.h"
#include "train/train.h"

/* The sampler a preview uses for each process: DDIM (50 steps) for discrete
 * schedules, DPM-Solver++(2M) for VP and sub-VP, EDM's Heun for VE, Euler for
 * rectified flow. */
static const char *preview_sampler(const dfn_process_params *proc) {
    if (!proc->continuous) return "ddim";
    switch (proc->sde.kind) {
    case DFN_SDE_VE: return "heun";
    case DFN_SDE_FLOW: return "flow-euler";
    default: return "dpm++2m";
    }
}

dfn_status dfn_train_preview(dfn_model *model, const float *ema, const dfn_dataset *data,
                             const dfn_train_params *p, const dfn_schedule *schedule,
                             const char *prefix) {
    size_t P = dfn_model_num_params(model), D = dfn_dataset_sample_size(data);
    int n = p->sample_count;
    float *params = dfn_model_params(model), *saved = dfn_malloc(P * sizeof(float));
    float *x = dfn_malloc((size_t)n * D * sizeof(float));
    memcpy(saved, params, P * sizeof(float));
    memcpy(params, ema, P * sizeof(float));
    const dfn_model_config *cfg = dfn_model_get_config(model);
    int image = cfg->kind == DFN_MODEL_UNET;
    dfn_denoiser den;
    dfn_model_denoiser(&den, model, p->objective.prediction, p->process.continuous ? NULL : schedule,
                       p->process.continuous ? &p->process.sde : NULL, 256, p->process.time_scale);
    dfn_sampler_params sp = dfn_sampler_params_init();
    sp.steps = p->process.continuous && p->process.sde.kind == DFN_SDE_VE ? 30 : 50;
    sp.clip_x0 = image;
    dfn_rng rng = dfn_rng_init(p->seed ^ 0x70726576696577ull); /* "preview": the same noise each time */
    dfn_status st = dfn_sample(preview_sampler(&p->process), &den, x, n, D, &sp, &rng, NULL);
    memcpy(params, saved, P * sizeof(float));
    free(saved);
    if (st) goto done;

    char path[4200];
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

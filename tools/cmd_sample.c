/* cmd_sample.c - `diffusion sample`: a checkpoint + a sampler -> samples as a
 * PNG grid, .npy, CSV or a plot; optionally the reverse trajectory of a few
 * samples as one picture (seed 000's strip). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "core.h"
#include "diffusion.h"
#include "io/npy.h"
#include "model_source.h"
#include "train/train.h"
#include "tools.h"

#define MAX_ARGS 48

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

/* Progress and the trajectory of the first samples, through the sampler's callback. */
typedef struct {
    int progress;      /* draw a bar on stderr */
    double start;
    int traj_samples, traj_frames;
    size_t dim;
    float *traj;       /* (frames, samples, dim) */
    int *traj_step;    /* the step of each frame */
    int frames_done;
    int chunk_first;   /* this chunk holds sample 0 */
} progress_ctx;

static void on_step(void *vctx, int step, int steps, double t, const float *x, const float *x0,
                    int batch, size_t dim) {
    (void)t;
    (void)x0;
    progress_ctx *c = vctx;
    if (c->progress) {
        double el = now() - c->start;
        int width = 30, fill = steps > 0 ? (int)((double)width * (step + 1) / steps) : width;
        char bar[40];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] step %d/%d  %.1fs  ", bar, step + 1, steps, el);
        fflush(stderr);
    }
    if (c->traj && c->chunk_first && c->frames_done < c->traj_frames) {
        /* frames evenly spaced over the steps, the last one the final step */
        int want = (int)((long)(c->frames_done + 1) * steps / c->traj_frames) - 1;
        if (step >= want) {
            int k = c->traj_samples < batch ? c->traj_samples : batch;
            memcpy(c->traj + (size_t)c->frames_done * c->traj_samples * dim, x, (size_t)k * dim * sizeof(float));
            c->traj_step[c->frames_done++] = step + 1;
        }
    }
}

static dfn_status write_vectors_plot(const char *path, const float *x, int n, size_t dim) {
    dfn_plot *plot = dfn_plot_new(700, 600);
    if (dim == 2) {
        dfn_plot_labels(plot, "samples", "x1", "x2");
        dfn_plot_scatter(plot, x, n, "samples");
    } else {
        float *grid = dfn_malloc(dim * sizeof(float));
        for (size_t j = 0; j < dim; j++) grid[j] = (float)j;
        dfn_plot_labels(plot, "samples", "index", "value");
        for (int b = 0; b < n && b < 16; b++) dfn_plot_line(plot, grid, x + (size_t)b * dim, (int)dim, NULL);
        free(grid);
    }
    dfn_status st = dfn_plot_save(plot, path);
    dfn_plot_free(plot);
    return st;
}

static dfn_status write_csv(const char *path, const float *x, int n, size_t dim) {
    size_t cap = (size_t)n * dim * 18 + 16, len = 0;
    char *text = dfn_malloc(cap);
    text[0] = 0;
    for (int b = 0; b < n; b++)
        for (size_t j = 0; j < dim; j++)
            len += (size_t)snprintf(text + len, cap - len, "%.9g%c", x[(size_t)b * dim + j], j + 1 == dim ? '\n' : ',');
    dfn_status st = dfn_write_text_file(path, text);
    free(text);
    return st;
}

static void list_samplers(void) {
    printf("samplers (diffusion sample --sampler NAME):\n");
    for (int i = 0; i < dfn_num_samplers(); i++) {
        const dfn_sampler_info *s = dfn_sampler_get(i);
        printf("  %-16s %s\n", s->name, s->help);
    }
}

int cmd_sample(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *sampler = "ddim", *spacing = "leading", *variance = "beta-tilde";
    const char *trajectory = NULL, *grid_name = "lambda";
    int n = 64, batch = 64, steps = 0, threads = 0, label = -1, list = 0, no_clip = 0, dyn = 0;
    int traj_samples = 4, traj_frames = 10, quiet = 0, cols = 0;
    double guidance = 1.0, eta = 0.0, churn = 0.0, rtol = 1e-5, atol = 1e-5, snr = 0.16;
    uint64_t seed = 0;
    dfn_arg args[MAX_ARGS] = {
        {"--checkpoint", ARG_STRING, &ckpt, "FILE", "a model checkpoint (e.g. RUN/model.safetensors)", 0},
        {"--out", ARG_STRING, &out, "FILE", "samples: .png (grid, or plot for vectors), .npy, .csv", 0},
        {"--sampler", ARG_STRING, &sampler, "NAME", "see --list", 0},
        {"--list", ARG_FLAG, &list, "", "list the samplers", 0},
        {"--steps", ARG_INT, &steps, "N", "sampling steps (0: the sampler's default: T for ddpm, else 50)", 0},
        {"--n", ARG_INT, &n, "N", "number of samples", 0},
        {"--batch", ARG_INT, &batch, "B", "samples per network call", 0},
        {"--seed", ARG_U64, &seed, "S", "random seed", 0},
        {"--threads", ARG_INT, &threads, "N", "threads (0: all cores); results do not depend on it", 0},
        {"--class", ARG_INT, &label, "K", "class label for a model with classes (-1: unconditional)", 0},
        {"--guidance", ARG_DOUBLE, &guidance, "S", "classifier-free guidance scale (with --class)", 0},
        {"--eta", ARG_DOUBLE, &eta, "E", "ddim: 0 deterministic, 1 like ddpm", 0},
        {"--spacing", ARG_STRING, &spacing, "KIND", "ddpm/ddim timesteps: leading, trailing, linspace", 0},
        {"--variance", ARG_STRING, &variance, "KIND", "ddpm: beta-tilde or beta", 0},
        {"--no-clip", ARG_FLAG, &no_clip, "", "do not clip the x0 estimate to [-1, 1]", 0},
        {"--dynamic-threshold", ARG_FLAG, &dyn, "", "dynamic thresholding of x0 (Saharia et al. 2022)", 0},
        {"--time-grid", ARG_STRING, &grid_name, "KIND", "dpm-solver steps uniform in lambda or time", 0},
        {"--churn", ARG_DOUBLE, &churn, "S", "karras samplers: S_churn", 0},
        {"--rtol", ARG_DOUBLE, &rtol, "R", "rk45: relative tolerance", 0},
        {"--atol", ARG_DOUBLE, &atol, "A", "rk45: absolute tolerance", 0},
        {"--snr", ARG_DOUBLE, &snr, "R", "pc: corrector signal-to-noise ratio", 0},
        {"--trajectory", ARG_STRING, &trajectory, "FILE", "also write the reverse path of a few samples (.png)", 0},
        {"--trajectory-samples", ARG_INT, &traj_samples, "K", "samples in the trajectory picture", 0},
        {"--trajectory-frames", ARG_INT, &traj_frames, "F", "snapshots along the path", 0},
        {"--cols", ARG_INT, &cols, "C", "grid columns (0: square)", 0},
        {"--quiet", ARG_FLAG, &quiet, "", "no progress output", 0},
    };
    int n_args = 0;
    while (n_args < MAX_ARGS && args[n_args].name) n_args++;
    int rc = dfn_args_parse("sample", args, n_args, argc, argv, "--checkpoint FILE --out FILE [options]");
    if (rc) return rc == 1 ? 0 : 2;
    if (list) {
        list_samplers();
        return 0;
    }
    if (!ckpt || !out) {
        fprintf(stderr, "diffusion sample: --checkpoint FILE and --out FILE are required (--list names the samplers)\n");
        return 2;
    }
    if (n < 1 || batch < 1 || steps < 0 || threads < 0 || traj_samples < 1 || traj_frames < 1) {
        fprintf(stderr, "diffusion sample: --n, --batch, --trajectory-samples and --trajectory-frames must be >= 1, --steps and --threads >= 0\n");
        return 2;
    }
    if (!ends_with(out, ".png") && !ends_with(out, ".npy") && !ends_with(out, ".csv") && !ends_with(out, ".svg")) {
        fprintf(stderr, "diffusion sample: --out %s: use .png, .svg, .npy or .csv\n", out);
        return 2;
    }
    const dfn_sampler_info *info = dfn_sampler_find(sampler);
    if (!info) {
        fprintf(stderr, "diffusion sample: %s\n", dfn_last_error());
        return 2;
    }
    if (threads > 0) dfn_set_threads(threads);

    dfn_sampler_params sp = dfn_sampler_params_init();
    sp.steps = steps;
    sp.eta = eta;
    sp.clip_x0 = !no_clip;
    sp.dynamic_threshold = dyn;
    sp.s_churn = churn;
    sp.rtol = rtol;
    sp.atol = atol;
    sp.snr = snr;
    int k;
    if ((k = dfn_spacing_from_name(spacing)) < 0) goto bad_option;
    sp.spacing = (dfn_spacing)k;
    if ((k = dfn_ddpm_variance_from_name(variance)) < 0) goto bad_option;
    sp.variance = (dfn_ddpm_variance)k;
    if ((k = dfn_time_grid_from_name(grid_name)) < 0) goto bad_option;
    sp.time_grid = (dfn_time_grid)k;

    dfn_cli_model cm;
    memset(&cm, 0, sizeof cm);
    float *all = NULL;
    int *labels = NULL, status = 1;
    progress_ctx pc;
    memset(&pc, 0, sizeof pc);
    if (dfn_cli_model_load(&cm, ckpt, batch, quiet)) goto fail;
    const dfn_model_config *cfg = dfn_model_get_config(cm.model);
    if (label >= 0 && (cfg->num_classes == 0 || label >= cfg->num_classes)) {
        dfn_set_error(DFN_ERR_ARG, "--class %d: the model has %d classes%s", label, cfg->num_classes,
                      cfg->num_classes ? "" : " (it was trained unconditionally)");
        goto fail;
    }
    size_t dim = cm.dim;
    int image = cm.image;
    if (!image) sp.clip_x0 = 0; /* vectors are not scaled to [-1, 1] */
    dfn_denoiser den = cm.denoiser;
    const dfn_process_params proc = cm.process;
    if (!(info->fits & dfn_denoiser_process_flag(&den))) {
        dfn_set_error(DFN_ERR_ARG, "sampler '%s' does not fit this checkpoint's process (%s); see --list", sampler,
                      proc.continuous ? dfn_sde_kind_name(proc.sde.kind) : "discrete schedule");
        goto fail;
    }
    if (label >= 0) {
        labels = dfn_malloc((size_t)batch * sizeof(int));
        for (int b = 0; b < batch; b++) labels[b] = label;
        den.labels = labels;
        den.guidance = guidance;
    }
    all = dfn_malloc((size_t)n * dim * sizeof(float));
    pc.progress = !quiet && isatty(STDERR_FILENO);
    pc.start = now();
    pc.dim = dim;
    if (trajectory) {
        if (!ends_with(trajectory, ".png")) {
            dfn_set_error(DFN_ERR_ARG, "--trajectory %s: must be a .png", trajectory);
            goto fail;
        }
        pc.traj_samples = traj_samples < n ? traj_samples : n;
        pc.traj_frames = traj_frames;
        pc.traj = dfn_calloc((size_t)traj_frames * pc.traj_samples * dim, sizeof(float));
        pc.traj_step = dfn_calloc((size_t)traj_frames, sizeof(int));
    }
    sp.callback = on_step;
    sp.callback_ctx = &pc;
    dfn_rng rng = dfn_rng_init(seed);
    dfn_sample_stats stats, total = {0, 0, 0};
    double t0 = now();
    for (int start = 0; start < n; start += batch) {
        int b = n - start < batch ? n - start : batch;
        pc.chunk_first = start == 0;
        if (dfn_sample(sampler, &den, all + (size_t)start * dim, b, dim, &sp, &rng, &stats)) goto fail;
        total.nfe += stats.nfe;
        total.steps = stats.steps;
    }
    double secs = now() - t0;
    if (pc.progress) fprintf(stderr, "\n");

    dfn_status st;
    if (ends_with(out, ".npy")) {
        int64_t shape[4] = {n, 0, 0, 0};
        int nd = 2;
        if (image) {
            shape[1] = cfg->in_channels; shape[2] = cfg->resolution; shape[3] = cfg->resolution;
            nd = 4;
        } else {
            shape[1] = cfg->dim;
        }
        st = dfn_npy_write_f32(out, all, nd, shape);
    } else if (ends_with(out, ".csv")) {
        st = image ? dfn_set_error(DFN_ERR_ARG, "--out %s: CSV is for vectors; use .png or .npy for images", out)
                   : write_csv(out, all, n, dim);
    } else if (image) {
        st = ends_with(out, ".svg") ? dfn_set_error(DFN_ERR_ARG, "--out %s: image grids are PNG", out)
                                    : dfn_png_write_grid(out, all, n, cfg->in_channels, cfg->resolution,
                                                         cfg->resolution, cols, cfg->resolution < 64 ? 2 : 1);
    } else {
        st = write_vectors_plot(out, all, n, dim);
    }
    if (st) goto fail;
    if (trajectory && pc.frames_done > 0) {
        if (image) {
            const char **captions = dfn_calloc((size_t)pc.frames_done, sizeof *captions);
            char (*text)[32] = dfn_calloc((size_t)pc.frames_done, 32);
            for (int i = 0; i < pc.frames_done; i++) {
                snprintf(text[i], 32, "step %d", pc.traj_step[i]);
                captions[i] = text[i];
            }
            st = dfn_png_write_strip(trajectory, pc.traj, pc.frames_done, pc.traj_samples, cfg->in_channels,
                                     cfg->resolution, cfg->resolution, cfg->resolution < 64 ? 2 : 1, captions);
            free(captions);
            free(text);
        } else {
            st = write_vectors_plot(trajectory, pc.traj + (size_t)(pc.frames_done - 1) * pc.traj_samples * dim,
                                    pc.traj_samples, dim);
        }
        if (st) goto fail;
    }
    if (!quiet)
        printf("diffusion sample: %d samples with %s (%d steps, %ld network evaluations) in %.1f s, %.1f samples/s -> %s\n",
               n, sampler, total.steps, total.nfe, secs, n / secs, out);
    status = 0;
    goto done;
bad_option:
    fprintf(stderr, "diffusion sample: %s\n", dfn_last_error());
    return 2;
fail:
    if (pc.progress) fprintf(stderr, "\n");
    fprintf(stderr, "diffusion sample: %s\n", dfn_last_error());
done:
    free(pc.traj);
    free(pc.traj_step);
    free(all);
    free(labels);
    dfn_cli_model_free(&cm);
    dfn_plot_release_caches();
    return status;
}

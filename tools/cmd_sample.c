/* cmd_sample.c - `diffusion sample`: a checkpoint + a sampler -> samples as a
 * PNG grid, .npy, CSV or a plot; optionally the reverse trajectory of a few
 * samples as one picture (seed 000's strip). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "args.h"
#include "core/files.h"
#include "core/progress.h"
#include "diffusion.h"
#include "io/npy.h"
#include "tools.h"

#define MAX_ARGS 48

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

/* Progress and the trajectory of the first samples, through the sampler's callback. */
typedef struct {
    dfn_progress progress;
    int traj_samples, traj_frames;
    size_t dim;
    float *traj;       /* (frames, samples, dim) */
    int *traj_step;    /* the step of each frame */
    int frames_done;
    int last_step;     /* the callback's previous step: a smaller one starts a new batch */
    int batches_done;  /* the trajectory follows the first batch's samples */
} progress_ctx;

static void on_step(void *vctx, int step, int steps, double t, const float *x, const float *x0,
                    int batch, size_t dim) {
    (void)t;
    (void)x0;
    progress_ctx *c = vctx;
    if (step <= c->last_step) c->batches_done++;
    c->last_step = step;
    dfn_progress_update(&c->progress, step, steps, "steps (batch %d)", c->batches_done + 1);
    if (c->traj && c->batches_done == 0 && c->frames_done < c->traj_frames - 1) {
        /* frames after steps evenly spaced over 1..steps; the last frame is the
         * samples as returned (after a final denoising step, if any) */
        int want = (int)((long)(c->frames_done + 1) * steps / c->traj_frames);
        if (step >= want) {
            int k = c->traj_samples < batch ? c->traj_samples : batch;
            memcpy(c->traj + (size_t)c->frames_done * c->traj_samples * dim, x, (size_t)k * dim * sizeof(float));
            c->traj_step[c->frames_done++] = step;
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

/* The reverse paths of a few vectors: 2-D points as polylines from the first
 * frame to the last, the last frame marked; other vectors as one curve per frame
 * of the first sample, labelled with its step. */
static dfn_status write_vector_trajectory(const char *path, const float *traj, const int *step, int frames,
                                          int samples, size_t dim) {
    dfn_plot *plot = dfn_plot_new(700, 600);
    char label[32];
    if (dim == 2) {
        dfn_plot_labels(plot, "reverse paths", "x1", "x2");
        float *xs = dfn_malloc((size_t)frames * sizeof(float)), *ys = dfn_malloc((size_t)frames * sizeof(float));
        for (int s = 0; s < samples; s++) {
            for (int f = 0; f < frames; f++) {
                xs[f] = traj[((size_t)f * samples + s) * 2];
                ys[f] = traj[((size_t)f * samples + s) * 2 + 1];
            }
            dfn_plot_line(plot, xs, ys, frames, s == 0 ? "paths" : NULL);
            dfn_plot_style(plot, -1, 0.5f, 1.0f, 1);
        }
        dfn_plot_scatter(plot, traj + (size_t)(frames - 1) * samples * 2, samples, "final");
        free(xs);
        free(ys);
    } else {
        dfn_plot_labels(plot, "reverse path of a sample", "index", "value");
        for (int f = 0; f < frames; f++) {
            if (step[f] > 0) snprintf(label, sizeof label, "step %d", step[f]);
            else snprintf(label, sizeof label, "final");
            dfn_plot_line(plot, NULL, traj + (size_t)f * samples * dim, (int)dim, label);
        }
    }
    dfn_status st = dfn_plot_save(plot, path);
    dfn_plot_free(plot);
    return st;
}

static dfn_status write_csv(const char *path, const float *x, int n, size_t dim) {
    dfn_buf text = {0};
    for (int b = 0; b < n; b++)
        for (size_t j = 0; j < dim; j++)
            dfn_buf_printf(&text, "%.9g%c", x[(size_t)b * dim + j], j + 1 == dim ? '\n' : ',');
    dfn_status st = dfn_write_text_file(path, text.data ? text.data : "");
    dfn_buf_free(&text);
    return st;
}

static void list_samplers(void) {
    static const char *const process_names[] = {"discrete", "vp", "subvp", "ve", "flow"};
    printf("samplers (diffusion sample --sampler NAME), and the processes each fits:\n");
    for (int i = 0; i < dfn_num_samplers(); i++) {
        const dfn_sampler_info *s = dfn_sampler_get(i);
        char fits[64] = "";
        for (int k = 0; k < 5; k++)
            if (s->fits & (1u << k))
                snprintf(fits + strlen(fits), sizeof fits - strlen(fits), "%s%s", fits[0] ? "," : "",
                         process_names[k]);
        printf("  %-18s %-26s %s\n", s->name, fits, s->help);
    }
}

int cmd_sample(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *sampler = NULL, *spacing = "leading", *variance = "beta-tilde";
    const char *trajectory = NULL, *grid_name = "lambda";
    int n = 64, batch = 64, steps = 0, threads = 0, label = -1, list = 0, no_clip = 0, dyn = 0;
    int traj_samples = 4, traj_frames = 10, quiet = 0, cols = 0;
    double guidance = 1.0, eta = 0.0, churn = 0.0, rtol = 1e-5, atol = 1e-5, snr = 0.16;
    const dfn_sampler_params defaults = dfn_sampler_params_init();
    double langevin_c = defaults.langevin_c, langevin_eps = defaults.langevin_eps;
    int levels = defaults.levels, steps_per_level = defaults.steps_per_level;
    uint64_t seed = 0;
    dfn_arg args[MAX_ARGS] = {
        {"--checkpoint", ARG_STRING, &ckpt, "FILE", "a model checkpoint (e.g. RUN/model.safetensors)", 0},
        {"--out", ARG_STRING, &out, "FILE", "samples: .png (grid, or plot for vectors), .npy, .csv", 0},
        {"--sampler", ARG_STRING, &sampler, "NAME", "see --list (default: ddim for a discrete schedule, dpm++2m for vp/subvp, heun for ve, flow-euler)", 0},
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
        {"--langevin-c", ARG_DOUBLE, &langevin_c, "C", "langevin: step, x += c score + sqrt(2c) z", 0},
        {"--langevin-eps", ARG_DOUBLE, &langevin_eps, "E", "annealed-langevin: step at the last level (alpha_i = eps sigma_i^2 / sigma_L^2)", 0},
        {"--levels", ARG_INT, &levels, "L", "annealed-langevin: noise levels", 0},
        {"--steps-per-level", ARG_INT, &steps_per_level, "T", "annealed-langevin: steps per level", 0},
        {"--trajectory", ARG_STRING, &trajectory, "FILE", "also write the reverse path of a few samples: .png, or .npy (frames, samples, ...)", 0},
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
    if (sampler && !dfn_sampler_find(sampler)) {
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
    sp.langevin_c = langevin_c;
    sp.langevin_eps = langevin_eps;
    sp.levels = levels;
    sp.steps_per_level = steps_per_level;
    int k;
    if ((k = dfn_spacing_from_name(spacing)) < 0) goto bad_option;
    sp.spacing = (dfn_spacing)k;
    if ((k = dfn_ddpm_variance_from_name(variance)) < 0) goto bad_option;
    sp.variance = (dfn_ddpm_variance)k;
    if ((k = dfn_time_grid_from_name(grid_name)) < 0) goto bad_option;
    sp.time_grid = (dfn_time_grid)k;

    dfn_pipeline *pipe = NULL;
    float *all = NULL;
    int status = 1;
    progress_ctx pc;
    memset(&pc, 0, sizeof pc);
    if (trajectory && !ends_with(trajectory, ".png") && !ends_with(trajectory, ".npy")) {
        dfn_set_error(DFN_ERR_ARG, "--trajectory %s: must be a .png or .npy", trajectory);
        goto fail;
    }
    if (dfn_pipeline_load(&pipe, ckpt)) goto fail;
    int dims[3];
    const int image = dfn_pipeline_sample_shape(pipe, dims) == 3;
    const size_t dim = dfn_pipeline_sample_size(pipe);
    dfn_pipeline_sample_params psp = dfn_pipeline_sample_params_init(pipe);
    if (!image) sp.clip_x0 = 0; /* vectors are not scaled to [-1, 1] */
    psp.sampler = sampler;
    psp.sampler_params = sp;
    psp.batch = batch;
    psp.label = label;
    psp.guidance = guidance;
    psp.seed = seed;
    all = dfn_malloc((size_t)n * dim * sizeof(float));
    dfn_progress_init(&pc.progress, quiet ? 0 : 1);
    pc.dim = dim;
    if (trajectory) {
        pc.traj_samples = traj_samples < n ? traj_samples : n;
        pc.traj_frames = traj_frames;
        pc.traj = dfn_calloc((size_t)traj_frames * pc.traj_samples * dim, sizeof(float));
        pc.traj_step = dfn_calloc((size_t)traj_frames, sizeof(int));
    }
    psp.sampler_params.callback = on_step;
    psp.sampler_params.callback_ctx = &pc;
    dfn_sample_stats total;
    double t0 = dfn_now_seconds();
    if (dfn_pipeline_sample(pipe, all, n, &psp, &total)) goto fail;
    double secs = dfn_now_seconds() - t0;
    dfn_progress_end(&pc.progress);

    dfn_status st;
    if (ends_with(out, ".npy")) {
        int64_t shape[4] = {n, dims[0], dims[1], dims[2]};
        st = dfn_npy_write_f32(out, all, image ? 4 : 2, shape);
    } else if (ends_with(out, ".csv")) {
        st = image ? dfn_set_error(DFN_ERR_ARG, "--out %s: CSV is for vectors; use .png or .npy for images", out)
                   : write_csv(out, all, n, dim);
    } else if (image) {
        st = ends_with(out, ".svg") ? dfn_set_error(DFN_ERR_ARG, "--out %s: image grids are PNG", out)
                                    : dfn_png_write_grid(out, all, n, dims[0], dims[1], dims[2], cols,
                                                         dims[1] < 64 ? 2 : 1);
    } else {
        st = write_vectors_plot(out, all, n, dim);
    }
    if (st) goto fail;
    if (trajectory) { /* the last frame: the first samples as returned */
        memcpy(pc.traj + (size_t)pc.frames_done * pc.traj_samples * dim, all,
               (size_t)pc.traj_samples * dim * sizeof(float));
        pc.traj_step[pc.frames_done++] = 0;
    }
    if (trajectory && ends_with(trajectory, ".npy")) {
        int64_t shape[5] = {pc.frames_done, pc.traj_samples, dims[0], dims[1], dims[2]};
        if ((st = dfn_npy_write_f32(trajectory, pc.traj, image ? 5 : 3, shape))) goto fail;
    } else if (trajectory) {
        if (image) {
            const char **captions = dfn_calloc((size_t)pc.frames_done, sizeof *captions);
            char (*text)[32] = dfn_calloc((size_t)pc.frames_done, 32);
            for (int i = 0; i < pc.frames_done; i++) {
                if (pc.traj_step[i] > 0) snprintf(text[i], 32, "step %d", pc.traj_step[i]);
                else snprintf(text[i], 32, "final");
                captions[i] = text[i];
            }
            st = dfn_png_write_strip(trajectory, pc.traj, pc.frames_done, pc.traj_samples, dims[0], dims[1],
                                     dims[2], dims[1] < 64 ? 2 : 1, captions);
            free(captions);
            free(text);
        } else {
            st = write_vector_trajectory(trajectory, pc.traj, pc.traj_step, pc.frames_done, pc.traj_samples,
                                         dim);
        }
        if (st) goto fail;
    }
    if (!quiet)
        printf("diffusion sample: %d samples with %s (%d steps, %ld network evaluations) in %.1f s, %.1f samples/s -> %s\n",
               n, psp.sampler ? psp.sampler : dfn_pipeline_default_sampler(pipe), total.steps, total.nfe, secs,
               n / secs, out);
    status = 0;
    goto done;
bad_option:
    fprintf(stderr, "diffusion sample: %s\n", dfn_last_error());
    return 2;
fail:
    dfn_progress_end(&pc.progress);
    fprintf(stderr, "diffusion sample: %s\n", dfn_last_error());
done:
    free(pc.traj);
    free(pc.traj_step);
    free(all);
    dfn_pipeline_free(pipe);
    dfn_plot_release_caches();
    return status;
}

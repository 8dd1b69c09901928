/* cmd_sample.c - `diffusion sample`: a checkpoint + a sampler -> samples as a
 * PNG grid, .npy, CSV or a plot; optionally the reverse trajectory of a few
 * samples as one picture (seed 000's strip). The control commands share its
 * sampler options and output: `diffusion edit` (SDEdit), `inpaint` (a mask;
 * replacement or RePaint), `invert` (DDIM inversion, with the reconstruction
 * error) and `interpolate` (spherical interpolation of two noises, a strip). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "core/files.h"
#include "data/image_decode.h"
#include "data_source.h"
#include "core/progress.h"
#include "diffusion.h"
#include "io/npy.h"
#include "tools.h"

#define MAX_ARGS 48

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

typedef enum { MODE_SAMPLE, MODE_EDIT, MODE_INPAINT, MODE_INVERT, MODE_INTERPOLATE } mode;
static const char *const mode_names[] = {"sample", "edit", "inpaint", "invert", "interpolate"};

/* Images or vectors shaped as the pipeline's samples, from a .png file (one
 * image), an .npy file, or a data spec (fashion-mnist:test, images:DIR, ...):
 * at most `want` of them (*count gets how many). Another size or channel count
 * is refused, naming the file (resize it first). */
static dfn_status load_inputs(const char *spec, const dfn_pipeline *pipe, int want, float **out,
                              int *count) {
    *out = NULL;
    *count = 0;
    int dims[3];
    const int nd = dfn_pipeline_sample_shape(pipe, dims);
    const size_t D = dfn_pipeline_sample_size(pipe);
    if (dfn_ends_with(spec, ".png")) {
        if (nd != 3) return dfn_set_error(DFN_ERR_ARG, "%s: an image, but the model makes vectors", spec);
        size_t size;
        char *bytes = dfn_read_file(spec, &size);
        if (!bytes) return DFN_ERR_IO;
        dfn_image8 im;
        dfn_status st = dfn_image_decode(&im, spec, (const unsigned char *)bytes, size, dims[0]);
        free(bytes);
        if (st) return st;
        if (im.width != dims[2] || im.height != dims[1]) {
            free(im.pixels);
            return dfn_set_error(DFN_ERR_ARG, "%s: %dx%d pixels, the model takes %dx%d (resize it "
                                              "first)", spec, im.width, im.height, dims[2], dims[1]);
        }
        float *x = dfn_malloc(D * sizeof(float));
        for (int c = 0; c < dims[0]; c++) /* HWC bytes -> CHW in [-1, 1] */
            for (int i = 0; i < dims[1] * dims[2]; i++)
                x[(size_t)c * dims[1] * dims[2] + i] = im.pixels[(size_t)i * dims[0] + c] / 127.5f - 1.0f;
        free(im.pixels);
        *out = x;
        *count = 1;
        return DFN_OK;
    }
    char buf[1024];
    if (dfn_ends_with(spec, ".npy") && strncmp(spec, "npy:", 4)) snprintf(buf, sizeof buf, "npy:%s", spec);
    else snprintf(buf, sizeof buf, "%s", spec);
    dfn_data_options o = {(size_t)want, 0, nd == 3 ? dims[1] : 0, nd == 3 ? dims[0] : 0, -1, 0};
    dfn_dataset *ds = NULL;
    dfn_status st = dfn_cli_load_data(&ds, buf, &o);
    if (st) return st;
    int ddims[DFN_DATASET_MAX_DIMS];
    const int dnd = dfn_dataset_shape(ds, ddims);
    /* against what the pipeline makes (a latent model's: the decoded images) */
    const dfn_model *takes = dfn_pipeline_autoencoder(pipe) ? dfn_pipeline_autoencoder(pipe) : dfn_pipeline_model(pipe);
    st = dfn_model_check_input(takes, dnd, ddims, spec);
    if (!st) {
        const int n = (int)DFN_MIN((size_t)want, dfn_dataset_count(ds));
        float *x = dfn_malloc((size_t)n * D * sizeof(float));
        for (int i = 0; i < n; i++) memcpy(x + (size_t)i * D, dfn_dataset_sample(ds, i), D * sizeof(float));
        *out = x;
        *count = n;
    }
    dfn_dataset_free(ds);
    return st;
}

/* The inpainting mask: 1 where the input is generated (white in a PNG, as
 * diffusers' masks), 0 where it is kept; one for all inputs (sample size) or,
 * from an .npy, one per input. Returned as the pipeline wants it: 1 = known. */
static dfn_status load_mask(const char *path, const dfn_pipeline *pipe, int n, float **out,
                            int *per_sample) {
    int count;
    float *m;
    *per_sample = 0;
    dfn_status st = load_inputs(path, pipe, n, &m, &count);
    if (st) return dfn_set_error(st, "--mask: %s", dfn_last_error());
    const size_t D = dfn_pipeline_sample_size(pipe);
    const int png = dfn_ends_with(path, ".png");
    if (count != 1 && count != n) {
        free(m);
        return dfn_set_error(DFN_ERR_ARG, "--mask %s: %d masks for %d inputs (give one, or one each)",
                             path, count, n);
    }
    for (size_t i = 0; i < (size_t)count * D; i++) {
        double v = png ? (m[i] + 1.0) / 2.0 : m[i]; /* [-1, 1] pixels -> [0, 1] */
        if (!(v >= -1e-6 && v <= 1.0 + 1e-6)) {
            free(m);
            return dfn_set_error(DFN_ERR_ARG, "--mask %s: value %g at %zu, need 0..1", path, v, i);
        }
        m[i] = (float)(1.0 - fmin(1.0, fmax(0.0, v)));
    }
    *per_sample = count > 1;
    *out = m;
    return DFN_OK;
}

/* Spherical interpolation (Shoemake 1985; Song et al. 2021 DDIM sec. 5.4):
 * out = sin((1 - a) w) / sin w  x0 + sin(a w) / sin w  x1, w = angle(x0, x1). */
static void slerp(float *out, const float *x0, const float *x1, double a, size_t n) {
    double d = 0, n0 = 0, n1 = 0;
    for (size_t i = 0; i < n; i++) d += (double)x0[i] * x1[i], n0 += (double)x0[i] * x0[i], n1 += (double)x1[i] * x1[i];
    const double w = acos(fmax(-1.0, fmin(1.0, d / sqrt(n0 * n1))));
    const double c0 = w < 1e-6 ? 1.0 - a : sin((1.0 - a) * w) / sin(w);
    const double c1 = w < 1e-6 ? a : sin(a * w) / sin(w);
    for (size_t i = 0; i < n; i++) out[i] = (float)(c0 * x0[i] + c1 * x1[i]);
}

static dfn_status write_samples(const char *out, const float *all, int n, const int *dims, int image,
                                size_t dim, int cols) {
    if (dfn_ends_with(out, ".npy")) {
        int64_t shape[4] = {n, dims[0], dims[1], dims[2]};
        return dfn_npy_write_f32(out, all, image ? 4 : 2, shape);
    }
    if (dfn_ends_with(out, ".csv"))
        return image ? dfn_set_error(DFN_ERR_ARG, "--out %s: CSV is for vectors; use .png or .npy for images", out)
                     : write_csv(out, all, n, dim);
    if (image)
        return dfn_ends_with(out, ".svg") ? dfn_set_error(DFN_ERR_ARG, "--out %s: image grids are PNG", out)
                                      : dfn_png_write_grid(out, all, n, dims[0], dims[1], dims[2], cols,
                                                           dims[1] < 64 ? 2 : 1);
    return write_vectors_plot(out, all, n, dim);
}

static int run(mode md, int argc, char **argv) {
    const char *cmd = mode_names[md];
    const char *ckpt = NULL, *out = NULL, *sampler = NULL, *spacing = "leading", *variance = "beta-tilde";
    const char *trajectory = NULL, *grid_name = "lambda", *classifier = NULL, *input = NULL, *mask_path = NULL;
    const char *ae_path = NULL;
    const char *input_b = NULL, *box_text = NULL, *precision = NULL;
    int n = md == MODE_SAMPLE ? 64 : 8, batch = 64, steps = 0, threads = 0, label = -1, list = 0, no_clip = 0, dyn = 0;
    int traj_samples = 4, traj_frames = 10, quiet = 0, cols = 0, frames = 8;
    double guidance = 1.0, eta = 0.0, churn = 0.0, rtol = 1e-5, atol = 1e-5, snr = 0.16;
    double classifier_scale = 1.0;
    const char *strength_text = "0.6";
    const dfn_sampler_params defaults = dfn_sampler_params_init();
    double langevin_c = defaults.langevin_c, langevin_eps = defaults.langevin_eps;
    int levels = defaults.levels, steps_per_level = defaults.steps_per_level;
    int jump_length = defaults.jump_length, jump_n_sample = defaults.jump_n_sample;
    uint64_t seed = 0;
    dfn_arg args[MAX_ARGS];
    int n_args = 0;
#define ADD(...) (args[n_args++] = (dfn_arg){__VA_ARGS__, 0})
    ADD("--checkpoint", ARG_STRING, &ckpt, "FILE", "a model checkpoint (e.g. RUN/model.safetensors)");
    ADD("--autoencoder", ARG_STRING, &ae_path, "FILE", "a latent model: its autoencoder, instead of the file the checkpoint names");
    if (md == MODE_INVERT)
        ADD("--out", ARG_STRING, &out, "FILE", "the inverted noises x_T, .npy");
    else if (md == MODE_INTERPOLATE)
        ADD("--out", ARG_STRING, &out, "FILE", "the strip, .png (or .npy of the frames)");
    else
        ADD("--out", ARG_STRING, &out, "FILE", "samples: .png (grid, or plot for vectors), .npy, .csv");
    if (md == MODE_EDIT || md == MODE_INPAINT || md == MODE_INVERT)
        ADD("--input", ARG_STRING, &input, "SPEC", "inputs: a .png, an .npy, or data (fashion-mnist:test, images:DIR, ...); the first --n; another size is refused, PNG channels converted");
    if (md == MODE_INTERPOLATE) {
        ADD("--input", ARG_STRING, &input, "SPEC", "first end: an image (.png, .npy, data: its first item), inverted by DDIM; absent: a random noise");
        ADD("--input-b", ARG_STRING, &input_b, "SPEC", "second end, the same way (data: its second item when the same as --input)");
        ADD("--frames", ARG_INT, &frames, "F", "frames of the strip, ends included");
    }
    if (md == MODE_INPAINT)
        ADD("--mask", ARG_STRING, &mask_path, "FILE", "what to generate: white (1) generated, black (0) kept; .png for every input or .npy (one, or one per input)");
    if (md == MODE_EDIT)
        ADD("--strength", ARG_STRING, &strength_text, "S[,S...]", "SDEdit: noise the inputs to this fraction of the time range, in (0, 1] (steps scale with it); several: a strip, one column each");
    if (md != MODE_INTERPOLATE && md != MODE_INVERT)
        ADD("--sampler", ARG_STRING, &sampler, md == MODE_INPAINT ? "NAME" : "NAME",
            md == MODE_INPAINT ? "any sampler (replacement after every step), or repaint (resampling)"
                               : "see --list (default: dpm++2m for a discrete schedule, vp and subvp, heun for ve, flow-euler)");
    if (md == MODE_SAMPLE) ADD("--list", ARG_FLAG, &list, "", "list the samplers");
    ADD("--steps", ARG_INT, &steps, "N", "sampling steps (0: the sampler's default: T for ddpm, else 50)");
    if (md != MODE_INTERPOLATE) ADD("--n", ARG_INT, &n, "N", md == MODE_SAMPLE ? "number of samples" : "number of inputs used");
    ADD("--batch", ARG_INT, &batch, "B", "samples per network call");
    ADD("--seed", ARG_U64, &seed, "S", "random seed");
    ADD("--threads", ARG_INT, &threads, "N", "threads (0: all cores); results do not depend on it");
    ADD("--precision", ARG_STRING, &precision, "KIND", "the convolutions' products: fp32, or bf16 (bfloat16 with float32 sums, CPUs with AVX512_BF16)");
    ADD("--class", ARG_INT, &label, "K", "class label (a model with classes, or classifier guidance; -1: none)");
    ADD("--guidance", ARG_DOUBLE, &guidance, "S", "classifier-free guidance scale (with --class)");
    if (md != MODE_INVERT && md != MODE_INTERPOLATE) {
        ADD("--classifier", ARG_STRING, &classifier, "FILE", "classifier guidance: a classifier of noisy images (train-classifier --noisy)");
        ADD("--classifier-scale", ARG_DOUBLE, &classifier_scale, "S", "classifier guidance scale s (with --classifier and --class)");
    }
    if (md != MODE_INVERT && md != MODE_INTERPOLATE) ADD("--eta", ARG_DOUBLE, &eta, "E", "ddim: 0 deterministic, 1 like ddpm");
    ADD("--spacing", ARG_STRING, &spacing, "KIND", "ddpm/ddim timesteps: leading, trailing, linspace");
    if (md != MODE_INVERT && md != MODE_INTERPOLATE) /* inversion is the ODE backwards: no clipping */
        ADD("--no-clip", ARG_FLAG, &no_clip, "", "do not clip the x0 estimate to [-1, 1] (never clipped: vectors, latents)");
    if (md != MODE_INVERT && md != MODE_INTERPOLATE) {
        ADD("--variance", ARG_STRING, &variance, "KIND", "ddpm: beta-tilde or beta");
        ADD("--dynamic-threshold", ARG_FLAG, &dyn, "", "dynamic thresholding of x0 (Saharia et al. 2022)");
        ADD("--time-grid", ARG_STRING, &grid_name, "KIND", "dpm-solver steps uniform in lambda or time");
        ADD("--churn", ARG_DOUBLE, &churn, "S", "karras samplers: S_churn");
        ADD("--rtol", ARG_DOUBLE, &rtol, "R", "rk45: relative tolerance");
        ADD("--atol", ARG_DOUBLE, &atol, "A", "rk45: absolute tolerance");
        ADD("--snr", ARG_DOUBLE, &snr, "R", "pc: corrector signal-to-noise ratio");
        ADD("--langevin-c", ARG_DOUBLE, &langevin_c, "C", "langevin: step, x += c score + sqrt(2c) z");
        ADD("--langevin-eps", ARG_DOUBLE, &langevin_eps, "E", "annealed-langevin: step at the last level (alpha_i = eps sigma_i^2 / sigma_L^2)");
        ADD("--levels", ARG_INT, &levels, "L", "annealed-langevin: noise levels");
        ADD("--steps-per-level", ARG_INT, &steps_per_level, "T", "annealed-langevin: steps per level");
        ADD("--jump-length", ARG_INT, &jump_length, "J", "repaint: levels gone back up at each jump");
        ADD("--jump-n-sample", ARG_INT, &jump_n_sample, "R", "repaint: times each stretch is sampled (1: no resampling)");
    }
    if (md == MODE_SAMPLE) {
        ADD("--trajectory", ARG_STRING, &trajectory, "FILE", "also write the reverse path of a few samples: .png, or .npy (frames, samples, ...)");
        ADD("--trajectory-samples", ARG_INT, &traj_samples, "K", "samples in the trajectory picture");
        ADD("--trajectory-frames", ARG_INT, &traj_frames, "F", "snapshots along the path");
    }
    if (md == MODE_SAMPLE || md == MODE_EDIT)
        ADD("--box", ARG_STRING, &box_text, "LO,HI", "project every iterate onto [LO, HI] per coordinate (seed 001 def. 8.3)");
    if (md == MODE_SAMPLE) ADD("--cols", ARG_INT, &cols, "C", "grid columns (0: square)");
    ADD("--quiet", ARG_FLAG, &quiet, "", "no progress output");
#undef ADD
    DFN_ASSERT(n_args <= MAX_ARGS);
    static const char *const usage[] = {
        "--checkpoint FILE --out FILE [options]",
        "--checkpoint FILE --input SPEC --strength S --out FILE [options]",
        "--checkpoint FILE --input SPEC --mask FILE --out FILE [options]",
        "--checkpoint FILE --input SPEC --out NOISES.npy [options]",
        "--checkpoint FILE [--input SPEC --input-b SPEC] --out STRIP.png [options]"};
    int rc = dfn_args_parse(cmd, args, n_args, argc, argv, usage[md]);
    if (rc) return rc == 1 ? 0 : 2;
    if (list) {
        list_samplers();
        return 0;
    }
    if (!ckpt || !out) {
        fprintf(stderr, "diffusion %s: --checkpoint FILE and --out FILE are required%s\n", cmd,
                md == MODE_SAMPLE ? " (--list names the samplers)" : "");
        return 2;
    }
    if ((md == MODE_EDIT || md == MODE_INPAINT || md == MODE_INVERT) && !input) {
        fprintf(stderr, "diffusion %s: --input SPEC is required (the images to %s)\n", cmd,
                md == MODE_EDIT ? "edit" : md == MODE_INPAINT ? "inpaint" : "invert");
        return 2;
    }
    if (md == MODE_INPAINT && !mask_path) {
        fprintf(stderr, "diffusion inpaint: --mask FILE is required (white: generated, black: kept)\n");
        return 2;
    }
    double strengths[16];
    int n_strengths = 0;
    if (md == MODE_EDIT) { /* "0.3" or "0.2,0.4,0.6" */
        const char *c = strength_text;
        while (*c && n_strengths < 16) {
            char *end;
            const double v = strtod(c, &end);
            if (end == c || !(v > 0.0 && v <= 1.0) || (*end && *end != ',')) {
                fprintf(stderr, "diffusion edit: --strength %s: need numbers 0 < S <= 1, comma-separated\n",
                        strength_text);
                return 2;
            }
            strengths[n_strengths++] = v;
            c = *end ? end + 1 : end;
        }
        if (n_strengths == 0 || *c) {
            fprintf(stderr, "diffusion edit: --strength %s: one to 16 numbers 0 < S <= 1\n", strength_text);
            return 2;
        }
        if (n_strengths > 1 && !dfn_ends_with(out ? out : "", ".png")) {
            fprintf(stderr, "diffusion edit: --strength %s: several strengths make a strip: --out FILE.png\n",
                    strength_text);
            return 2;
        }
    }
    if (md == MODE_INTERPOLATE && (frames < 2 || frames > 64)) {
        fprintf(stderr, "diffusion interpolate: --frames %d: need 2..64\n", frames);
        return 2;
    }
    if ((input_b != NULL) != (md == MODE_INTERPOLATE && input != NULL) && md == MODE_INTERPOLATE) {
        fprintf(stderr, "diffusion interpolate: give both --input and --input-b, or neither (random noises)\n");
        return 2;
    }
    dfn_box_constraint box = {0, 0};
    if (box_text) {
        char *end;
        box.lo = strtod(box_text, &end);
        if (*end == ',') box.hi = strtod(end + 1, &end);
        if (*end || !(box.lo < box.hi) || !isfinite(box.lo) || !isfinite(box.hi)) {
            fprintf(stderr, "diffusion %s: --box %s: need two finite numbers LO,HI with LO < HI\n", cmd, box_text);
            return 2;
        }
    }
    if (classifier && label < 0) {
        fprintf(stderr, "diffusion %s: --classifier guides towards a --class K\n", cmd);
        return 2;
    }
    if (n < 1 || batch < 1 || steps < 0 || threads < 0 || traj_samples < 1 || traj_frames < 1) {
        fprintf(stderr, "diffusion %s: --n, --batch, --trajectory-samples and --trajectory-frames must be >= 1, --steps and --threads >= 0\n", cmd);
        return 2;
    }
    const int npy_only = md == MODE_INVERT;
    if (npy_only ? !dfn_ends_with(out, ".npy")
                 : (!dfn_ends_with(out, ".png") && !dfn_ends_with(out, ".npy") && !dfn_ends_with(out, ".csv") && !dfn_ends_with(out, ".svg"))) {
        fprintf(stderr, "diffusion %s: --out %s: use %s\n", cmd, out, npy_only ? ".npy" : ".png, .svg, .npy or .csv");
        return 2;
    }
    if (sampler && !dfn_sampler_find(sampler)) {
        fprintf(stderr, "diffusion %s: %s\n", cmd, dfn_last_error());
        return 2;
    }
    if (threads > 0) dfn_set_threads(threads);
    if (precision && dfn_args_set_precision(cmd, precision)) return 2;

    dfn_sampler_params sp = dfn_sampler_params_init();
    sp.steps = steps;
    sp.eta = eta;
    /* DDIM inversion runs eq. 12 backwards without clipping; the way back must not
     * clip either, or the round trip breaks (measured: rmse 0.19 with, 0.09 without,
     * 50 steps on Fashion-MNIST) */
    sp.clip_x0 = !no_clip && md != MODE_INVERT && md != MODE_INTERPOLATE;
    sp.dynamic_threshold = dyn;
    sp.s_churn = churn;
    sp.rtol = rtol;
    sp.atol = atol;
    sp.snr = snr;
    sp.langevin_c = langevin_c;
    sp.langevin_eps = langevin_eps;
    sp.levels = levels;
    sp.steps_per_level = steps_per_level;
    sp.jump_length = jump_length;
    sp.jump_n_sample = jump_n_sample;
    if (md == MODE_EDIT) sp.strength = strengths[0];
    if (box_text) {
        sp.constraint = dfn_constraint_box;
        sp.constraint_ctx = &box;
    }
    int k;
    if ((k = dfn_spacing_from_name(spacing)) < 0) goto bad_option;
    sp.spacing = (dfn_spacing)k;
    if ((k = dfn_ddpm_variance_from_name(variance)) < 0) goto bad_option;
    sp.variance = (dfn_ddpm_variance)k;
    if ((k = dfn_time_grid_from_name(grid_name)) < 0) goto bad_option;
    sp.time_grid = (dfn_time_grid)k;

    dfn_pipeline *pipe = NULL;
    dfn_model *clf = NULL;
    float *all = NULL, *inputs = NULL, *mask = NULL;
    int status = 1;
    progress_ctx pc;
    memset(&pc, 0, sizeof pc);
    if (trajectory && !dfn_ends_with(trajectory, ".png") && !dfn_ends_with(trajectory, ".npy")) {
        dfn_set_error(DFN_ERR_ARG, "--trajectory %s: must be a .png or .npy", trajectory);
        goto fail;
    }
    if (dfn_pipeline_load_with_autoencoder(&pipe, ckpt, ae_path)) goto fail;
    if ((md == MODE_INTERPOLATE || md == MODE_INVERT) && dfn_pipeline_autoencoder(pipe)) {
        dfn_set_error(DFN_ERR_ARG, "%s is a latent diffusion model: DDIM inversion and interpolation of "
                                   "its latents are not offered", ckpt);
        goto fail;
    }
    if (trajectory && dfn_pipeline_autoencoder(pipe)) {
        dfn_set_error(DFN_ERR_ARG, "--trajectory: %s is a latent diffusion model, whose path runs "
                                   "through its latents; not drawn", ckpt);
        goto fail;
    }
    int dims[3];
    const int image = dfn_pipeline_sample_shape(pipe, dims) == 3;
    const size_t dim = dfn_pipeline_sample_size(pipe);
    dfn_pipeline_sample_params psp = dfn_pipeline_sample_params_init(pipe);
    if (!image || dfn_pipeline_autoencoder(pipe)) sp.clip_x0 = 0; /* vectors and latents are not in [-1, 1] */
    if (classifier) {
        if (dfn_pipeline_load_classifier(pipe, &clf, classifier)) goto fail;
        psp.classifier = clf;
        psp.classifier_scale = classifier_scale;
    }
    psp.sampler = md == MODE_INVERT || md == MODE_INTERPOLATE ? "ddim" : sampler;
    psp.sampler_params = sp;
    psp.batch = batch;
    psp.label = label;
    psp.guidance = guidance;
    psp.seed = seed;
    if (input && md != MODE_INTERPOLATE) {
        int count;
        if (load_inputs(input, pipe, n, &inputs, &count)) goto fail;
        n = count;
        psp.init = md == MODE_EDIT && strengths[0] >= 1.0 ? NULL : inputs; /* 1: plain sampling */
    }
    if (mask_path) {
        if (load_mask(mask_path, pipe, n, &mask, &psp.mask_per_sample)) goto fail;
        psp.mask = mask;
    }
    dfn_progress_init(&pc.progress, quiet ? 0 : 1);
    pc.dim = dim;
    psp.sampler_params.callback = on_step;
    psp.sampler_params.callback_ctx = &pc;
    dfn_sample_stats total;
    double t0 = dfn_now_seconds();
    dfn_status st;
    if (md == MODE_INVERT) { /* x_T, then DDIM back from it: the reconstruction error */
        all = dfn_malloc((size_t)n * dim * sizeof(float));
        memcpy(all, inputs, (size_t)n * dim * sizeof(float));
        psp.init = NULL;
        if (dfn_pipeline_invert(pipe, all, n, &psp, &total)) goto fail;
        float *back = dfn_malloc((size_t)n * dim * sizeof(float));
        memcpy(back, all, (size_t)n * dim * sizeof(float));
        psp.sampler_params.from_x = 1;
        psp.sampler_params.eta = 0.0;
        st = dfn_pipeline_sample(pipe, back, n, &psp, NULL);
        double se = 0.0, mx = 0.0;
        for (size_t i = 0; st == DFN_OK && i < (size_t)n * dim; i++) {
            const double e = fabs((double)back[i] - inputs[i]);
            se += e * e;
            mx = fmax(mx, e);
        }
        free(back);
        if (st) goto fail;
        dfn_progress_end(&pc.progress);
        const double rmse = sqrt(se / ((double)n * dim));
        if ((st = write_samples(out, all, n, dims, image, dim, cols))) goto fail;
        printf("diffusion invert: %d inputs -> x_T in %s (%d DDIM steps, %.1f s); reconstruction by "
               "DDIM from x_T: rmse %.4f, max |error| %.4f%s\n",
               n, out, total.steps, dfn_now_seconds() - t0, rmse, mx,
               image ? " (pixels in [-1, 1])" : "");
        if (image) printf("diffusion invert: reconstruction PSNR %.2f dB (peak-to-peak 2)\n", 20.0 * log10(2.0 / fmax(rmse, 1e-12)));
        status = 0;
        goto done;
    }
    if (md == MODE_INTERPOLATE) { /* two noises (inverted inputs, or random), slerp, DDIM */
        float *ends = dfn_malloc(2 * dim * sizeof(float));
        if (input) {
            float *a = NULL, *b = NULL;
            int ca = 0, cb = 0;
            const int same = !strcmp(input, input_b);
            if (load_inputs(input, pipe, same ? 2 : 1, &a, &ca) || load_inputs(input_b, pipe, same ? 2 : 1, &b, &cb)) {
                free(a), free(b), free(ends);
                goto fail;
            }
            if (same && ca < 2) {
                free(a), free(b), free(ends);
                dfn_set_error(DFN_ERR_ARG, "--input %s: holds one item; the second end needs another", input);
                goto fail;
            }
            memcpy(ends, a, dim * sizeof(float));
            memcpy(ends + dim, same ? b + dim : b, dim * sizeof(float));
            free(a), free(b);
            if (dfn_pipeline_invert(pipe, ends, 2, &psp, NULL)) {
                free(ends);
                goto fail;
            }
        } else {
            dfn_rng r = dfn_rng_init(seed);
            dfn_rng_normal(&r, ends, 2 * dim);
        }
        all = dfn_malloc((size_t)frames * dim * sizeof(float));
        for (int f = 0; f < frames; f++) slerp(all + (size_t)f * dim, ends, ends + dim, (double)f / (frames - 1), dim);
        free(ends);
        psp.sampler_params.from_x = 1;
        psp.sampler_params.eta = 0.0;
        if (dfn_pipeline_sample(pipe, all, frames, &psp, &total)) goto fail;
        dfn_progress_end(&pc.progress);
        if (image && dfn_ends_with(out, ".png"))
            st = dfn_png_write_strip(out, all, frames, 1, dims[0], dims[1], dims[2], dims[1] < 64 ? 2 : 1, NULL);
        else
            st = write_samples(out, all, frames, dims, image, dim, cols);
        if (st) goto fail;
        if (!quiet)
            printf("diffusion interpolate: %d frames between %s (DDIM, %d steps) -> %s\n", frames,
                   input ? "two inverted inputs" : "two random noises", total.steps, out);
        status = 0;
        goto done;
    }
    all = dfn_malloc((size_t)n * dim * sizeof(float));
    if (trajectory) {
        pc.traj_samples = traj_samples < n ? traj_samples : n;
        pc.traj_frames = traj_frames;
        pc.traj = dfn_calloc((size_t)traj_frames * pc.traj_samples * dim, sizeof(float));
        pc.traj_step = dfn_calloc((size_t)traj_frames, sizeof(int));
    }
    if (dfn_pipeline_sample(pipe, all, n, &psp, &total)) goto fail;
    double secs = dfn_now_seconds() - t0;
    if ((md == MODE_EDIT || md == MODE_INPAINT) && image && dfn_ends_with(out, ".png")) {
        /* a strip, one row per input: the input (masked: generated part gray),
         * then the output at each strength */
        const int columns = 1 + (md == MODE_EDIT ? n_strengths : 1);
        float *strip = dfn_malloc((size_t)columns * n * dim * sizeof(float));
        const char *captions[17];
        char text[17][24];
        memcpy(strip, inputs, (size_t)n * dim * sizeof(float));
        if (mask)
            for (size_t i = 0; i < (size_t)n * dim; i++) {
                const float keep = mask[psp.mask_per_sample ? i : i % dim];
                strip[i] = keep * strip[i];
            }
        captions[0] = md == MODE_EDIT ? "input" : "masked";
        memcpy(strip + (size_t)n * dim, all, (size_t)n * dim * sizeof(float));
        for (int c = 1; c < columns; c++) {
            if (c > 1) { /* the next strength, same seed; at 1 the input is forgotten */
                psp.sampler_params.strength = strengths[c - 1];
                psp.init = strengths[c - 1] < 1.0 ? inputs : NULL;
                if (dfn_pipeline_sample(pipe, strip + (size_t)c * n * dim, n, &psp, NULL)) {
                    free(strip);
                    goto fail;
                }
            }
            if (md == MODE_EDIT) snprintf(text[c], sizeof text[c], "s=%g", strengths[c - 1]);
            else snprintf(text[c], sizeof text[c], "%s", psp.sampler ? psp.sampler : "result");
            captions[c] = text[c];
        }
        dfn_progress_end(&pc.progress);
        st = dfn_png_write_strip(out, strip, columns, n, dims[0], dims[1], dims[2], dims[1] < 64 ? 2 : 1,
                                 captions);
        free(strip);
        if (st) goto fail;
        if (!quiet)
            printf("diffusion %s: %d inputs with %s (%d steps at strength %g, %ld network evaluations) "
                   "-> %s (a strip: %s, then the output%s)\n",
                   cmd, n, psp.sampler ? psp.sampler : dfn_pipeline_default_sampler(pipe), total.steps,
                   md == MODE_EDIT ? strengths[0] : 1.0, total.nfe, out, captions[0],
                   n_strengths > 1 ? " at each strength" : "");
        status = 0;
        goto done;
    }
    dfn_progress_end(&pc.progress);

    if ((st = write_samples(out, all, n, dims, image, dim, cols))) goto fail;
    if (trajectory) { /* the last frame: the first samples as returned */
        memcpy(pc.traj + (size_t)pc.frames_done * pc.traj_samples * dim, all,
               (size_t)pc.traj_samples * dim * sizeof(float));
        pc.traj_step[pc.frames_done++] = 0;
    }
    if (trajectory && dfn_ends_with(trajectory, ".npy")) {
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
        printf("diffusion %s: %d samples with %s (%d steps, %ld network evaluations) in %.1f s, %.1f samples/s -> %s\n",
               cmd, n, psp.sampler ? psp.sampler : dfn_pipeline_default_sampler(pipe), total.steps, total.nfe, secs,
               n / secs, out);
    status = 0;
    goto done;
bad_option:
    fprintf(stderr, "diffusion %s: %s\n", cmd, dfn_last_error());
    return 2;
fail:
    dfn_progress_end(&pc.progress);
    fprintf(stderr, "diffusion %s: %s\n", cmd, dfn_last_error());
done:
    free(pc.traj);
    free(pc.traj_step);
    free(all);
    free(inputs);
    free(mask);
    dfn_model_free(clf);
    dfn_pipeline_free(pipe);
    return status;
}

int cmd_sample(int argc, char **argv) { return run(MODE_SAMPLE, argc, argv); }
int cmd_edit(int argc, char **argv) { return run(MODE_EDIT, argc, argv); }
int cmd_inpaint(int argc, char **argv) { return run(MODE_INPAINT, argc, argv); }
int cmd_invert(int argc, char **argv) { return run(MODE_INVERT, argc, argv); }
int cmd_interpolate(int argc, char **argv) { return run(MODE_INTERPOLATE, argc, argv); }

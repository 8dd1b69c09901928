/* diffusion.h - train, sample and evaluate diffusion models on a CPU, from C.
 *
 * The whole public surface of libdiffusion is this header. A first program:
 *
 *     #include <diffusion.h>
 *
 *     dfn_model_config cfg;
 *     if (dfn_model_config_preset(&cfg, "fmnist-tiny") != DFN_OK) { ... }
 *     dfn_model *net;
 *     if (dfn_model_new(&net, &cfg, 42) != DFN_OK) {
 *         fprintf(stderr, "%s\n", dfn_last_error());
 *         return 1;
 *     }
 *     // x: (B,1,28,28) noisy images, t: (B) timesteps  ->  eps: (B,1,28,28)
 *     dfn_model_forward(net, eps, x, t, NULL, B, 0, NULL);
 *     dfn_model_save(net, "net.safetensors");
 *     dfn_model_free(net);
 *
 * Conventions
 *   - Everything public starts with dfn_ (functions, types) or DFN_ (macros, enums).
 *   - Arrays are float32, row-major; images are NCHW.
 *   - Functions that can fail on user input or I/O return a dfn_status; on failure
 *     dfn_last_error() gives a message that names the file or option and the
 *     problem. Misuse by the programmer (NULL buffers, impossible sizes) aborts
 *     with file and line instead.
 *   - Objects are opaque handles made by dfn_*_new and released by dfn_*_free;
 *     the library frees only what it allocated.
 *   - Results are bit-identical for the same seed and inputs, run after run and
 *     for any number of threads: work is split into tasks whose layout depends
 *     on the problem's shape only.
 */
#ifndef DIFFUSION_H
#define DIFFUSION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DFN_VERSION "0.1.0"

/* ---------------------------------------------------------------- status */

typedef enum {
    DFN_OK = 0,
    DFN_ERR_ARG,     /* a bad argument or option value */
    DFN_ERR_IO,      /* a file could not be opened, read or written */
    DFN_ERR_FORMAT,  /* a file is truncated or not in the expected format */
    DFN_ERR_CONFIG,  /* a model or run configuration is inconsistent */
    DFN_ERR_NUMERIC, /* NaN or Inf where finite numbers are needed */
    DFN_STATUS_COUNT
} dfn_status;

/* "ok", "bad argument", ...; never NULL. */
const char *dfn_status_name(dfn_status status);
/* The message of the last failure on this thread ("" if none). */
const char *dfn_last_error(void);
const char *dfn_version(void);

/* Threads used by every parallel loop (default: the OpenMP default, all cores).
 * The number of threads changes speed, never results. */
void dfn_set_threads(int n);
int dfn_get_threads(void);

/* ---------------------------------------------------------------- random numbers */

/* A counter-based generator (Philox4x32-10, Salmon et al. 2011). The state is a
 * key (the seed) and a counter of 128-bit blocks already used, so any stream
 * position can be computed directly: parallel fills give the same numbers for
 * any thread count, and a saved state resumes a run exactly. */
typedef struct {
    uint64_t seed;
    uint64_t counter;
} dfn_rng;

dfn_rng dfn_rng_init(uint64_t seed);
/* Uniform floats in (0, 1): element i comes from block counter + i/4, lane i%4;
 * the counter advances by ceil(n/4). */
void dfn_rng_uniform(dfn_rng *rng, float *out, size_t n);
/* Standard normal floats by Box-Muller: elements 2j and 2j+1 come from block
 * counter + j (lanes 0 and 1); the counter advances by ceil(n/2). */
void dfn_rng_normal(dfn_rng *rng, float *out, size_t n);
/* One Philox block: four 32-bit words for (seed, block). */
void dfn_philox(uint64_t seed, uint64_t block, uint32_t out[4]);

/* ---------------------------------------------------------------- models */

typedef enum {
    DFN_MODEL_UNET, /* images: Ho et al. 2020 U-Net */
    DFN_MODEL_MLP,  /* vectors: residual MLP with the same time embedding */
    DFN_MODEL_KIND_COUNT
} dfn_model_kind;

#define DFN_MAX_LEVELS 8

typedef struct {
    dfn_model_kind kind;
    /* U-Net */
    int in_channels;              /* image channels (1 gray, 3 RGB) */
    int resolution;               /* square images, resolution x resolution */
    int channels;                 /* base channels; time embedding has 4x */
    int n_levels;                 /* entries used in ch_mult */
    int ch_mult[DFN_MAX_LEVELS];  /* channels of level l = channels * ch_mult[l] */
    int num_res_blocks;           /* ResBlocks per level on the way down */
    int n_attn;                   /* entries used in attn_resolutions */
    int attn_resolutions[DFN_MAX_LEVELS]; /* self-attention after ResBlocks at these sizes */
    int heads;                    /* attention heads (channels must divide) */
    int groups;                   /* GroupNorm groups */
    float norm_eps;               /* GroupNorm epsilon */
    float dropout;                /* dropout probability inside ResBlocks */
    /* MLP */
    int dim;                      /* vector length */
    int width;                    /* hidden width */
    int depth;                    /* residual blocks */
    /* both */
    int num_classes;              /* 0: unconditional; else labels 0..n-1 and n = null */
} dfn_model_config;

/* "unet", "mlp" and back; -1 for an unknown name. */
const char *dfn_model_kind_name(dfn_model_kind kind);
int dfn_model_kind_from_name(const char *name);

/* Defaults of each kind: U-Net 1x28x28, ch 64, mult (1,2,2), 2 blocks, attention
 * at 7, 1 head, 32 groups, eps 1e-6, dropout 0.1; MLP dim 2, width 128, depth 3. */
void dfn_model_config_init(dfn_model_config *cfg, dfn_model_kind kind);
/* Named presets: "fmnist-tiny", "fmnist-small" (the reference U-Nets), "mlp-2d",
 * "mlp-curves". DFN_ERR_ARG with the list of names for an unknown one. */
dfn_status dfn_model_config_preset(dfn_model_config *cfg, const char *name);
/* The presets, for listings: name and a one-line description (NULL past the end). */
int dfn_model_num_presets(void);
const char *dfn_model_preset_name(int i);
const char *dfn_model_preset_help(int i);
/* DFN_ERR_CONFIG with a message for anything that cannot be built: channels not
 * divisible by groups or heads, a resolution that does not halve, attention at a
 * resolution that never occurs, ... */
dfn_status dfn_model_config_validate(const dfn_model_config *cfg);
/* Config <-> JSON text (the checkpoint metadata). The string is malloc'ed. */
char *dfn_model_config_to_json(const dfn_model_config *cfg);
dfn_status dfn_model_config_from_json(dfn_model_config *cfg, const char *json);

typedef struct dfn_model dfn_model;

/* Builds a model with PyTorch's default initialisation, drawn from `seed`. */
dfn_status dfn_model_new(dfn_model **out, const dfn_model_config *cfg, uint64_t seed);
void dfn_model_free(dfn_model *model);
const dfn_model_config *dfn_model_get_config(const dfn_model *model);

/* Parameters, gradients: one flat array each, in the order of the tensor table. */
size_t dfn_model_num_params(const dfn_model *model);
float *dfn_model_params(dfn_model *model);
float *dfn_model_grads(dfn_model *model);
void dfn_model_zero_grad(dfn_model *model);
/* The tensor table: PyTorch state_dict names, shapes and offsets into the flat array. */
int dfn_model_num_tensors(const dfn_model *model);
const char *dfn_model_tensor_name(const dfn_model *model, int i);
int dfn_model_tensor_shape(const dfn_model *model, int i, int shape[4]); /* returns ndim */
size_t dfn_model_tensor_offset(const dfn_model *model, int i);
/* Index of a tensor by name, or -1. */
int dfn_model_find_tensor(const dfn_model *model, const char *name);

/* Floating-point operations of one forward pass per sample (1 multiply-add = 2),
 * counting convolutions, linear layers and attention products. */
double dfn_model_flops_per_sample(const dfn_model *model);

/* Forward pass over a batch. x and out: (B, C, H, W) for a U-Net, (B, dim) for an
 * MLP; t: (B) timesteps (floats: discrete steps or continuous times); y: (B)
 * labels or NULL (unconditional; a model with classes then uses the null class).
 * training = 1 applies dropout with numbers from rng (advanced) and keeps the
 * activations for dfn_model_backward; training = 0 ignores rng (may be NULL). */
void dfn_model_forward(dfn_model *model, float *out, const float *x, const float *t,
                       const int *y, int batch, int training, dfn_rng *rng);
/* Backward of the last training forward: accumulates d(loss)/d(params) into the
 * gradient array. dout: d(loss)/d(out), shaped like out. If dx is not NULL it
 * receives d(loss)/d(x) (overwritten). */
void dfn_model_backward(dfn_model *model, const float *dout, float *dx);

/* Checkpoints: safetensors, PyTorch tensor names, the config as JSON in the
 * metadata under "config". Saving writes "<path>.tmp" and renames it. Loading
 * checks every tensor's presence, dtype and shape, and names the file and the
 * tensor in its message. Extra metadata (key, value pairs; NULL-terminated list
 * or NULL) is stored beside the config. */
dfn_status dfn_model_save(const dfn_model *model, const char *path,
                          const char *const *extra_metadata);
dfn_status dfn_model_load(dfn_model **out, const char *path);

/* ---------------------------------------------------------------- optimisation */

typedef struct {
    float lr;           /* 1e-3 */
    float beta1, beta2; /* 0.9, 0.999 */
    float eps;          /* 1e-8 */
    float weight_decay; /* 0.01 (decoupled, Loshchilov & Hutter 2019) */
} dfn_adamw_params;

dfn_adamw_params dfn_adamw_params_init(void);
/* One AdamW step (as torch.optim.AdamW): step counts from 1; m and v are the
 * moment arrays, zero before the first step; all arrays have n elements. */
void dfn_adamw_step(float *params, const float *grads, float *m, float *v, size_t n,
                    long step, const dfn_adamw_params *p);
/* Global L2 norm of the gradients (computed in double, fixed summation order). */
double dfn_grad_norm(const float *grads, size_t n);
/* Scales grads so that their norm is at most max_norm (as torch's
 * clip_grad_norm_); returns the norm before clipping. */
double dfn_clip_grad_norm(float *grads, size_t n, double max_norm);
/* ema = decay * ema + (1 - decay) * params. */
void dfn_ema_update(float *ema, const float *params, size_t n, float decay);

/* ---------------------------------------------------------------- images and plots */

/* Images are float (C, H, W) planes, NCHW for batches, with values in [-1, 1]
 * (the models' range): v -> round((v + 1) * 127.5) clamped to 0..255, so -1 is
 * black, 1 white and NaN black. C = 1 writes an 8-bit gray PNG, C = 3 an RGB
 * one. path must end in ".png" (DFN_ERR_ARG otherwise). Like every writer
 * below, they write "<path>.tmp" and rename it over path: a reader never sees
 * half a file, and a failure (DFN_ERR_IO, naming the file) leaves no .tmp. */
dfn_status dfn_png_write(const char *path, const float *image, int channels, int height,
                         int width);

/* White pixels around and between the cells of grids and strips. */
#define DFN_GRID_BORDER 2
/* Height of a strip's caption band in pixels. */
#define DFN_CAPTION_HEIGHT 20

/* `batch` images (B, C, H, W) in a grid of `cols` columns (<= 0: ceil(sqrt(B)))
 * and as many rows as needed, filled row by row; each image is upscaled
 * `scale` times (nearest neighbour; <= 0 means 1). The PNG is
 * cols * (W*scale + 2) + 2 pixels wide and rows * (H*scale + 2) + 2 high;
 * cells past the last image stay white. */
dfn_status dfn_png_write_grid(const char *path, const float *images, int batch, int channels,
                              int height, int width, int cols, int scale);

/* A reverse trajectory: `steps` snapshots of the same `samples` images, stored
 * (steps, samples, C, H, W) as a sampler collects them, drawn with one row per
 * sample and one column per snapshot (left to right as stored), laid out as a
 * grid of `steps` columns. captions: NULL, or `steps` strings (NULL entries
 * allowed), e.g. "t=999", drawn above the columns in a white band of
 * DFN_CAPTION_HEIGHT pixels added on top. */
dfn_status dfn_png_write_strip(const char *path, const float *snapshots, int steps, int samples,
                               int channels, int height, int width, int scale,
                               const char *const *captions);

/* Plots: build a figure, add series, save it as PNG or SVG by the extension
 * (".png", ".svg"; anything else is DFN_ERR_ARG naming the file). The figure
 * keeps copies of everything added, so arrays may be freed right after. The
 * same figure gives the same PNG bytes on every save.
 *
 *     dfn_plot *p = dfn_plot_new(0, 0);
 *     dfn_plot_labels(p, "Training loss", "step", "MSE");
 *     dfn_plot_log_y(p, 1);
 *     dfn_plot_line(p, steps, train_loss, n, "train");
 *     dfn_plot_line(p, val_steps, val_loss, m, "validation");
 *     if (dfn_plot_save(p, "loss.png") != DFN_OK) fprintf(stderr, "%s\n", dfn_last_error());
 *     dfn_plot_free(p);
 *
 * Series take colours in turn from a 10-colour palette; those with a label get
 * a legend entry, placed in the corner of the axes where it hides the least
 * data. Non-finite values (and y <= 0 on a log axis) are skipped; a line breaks
 * there. */
typedef struct dfn_plot dfn_plot;

/* An empty figure of width x height pixels (SVG: points); <= 0 gives 800 x 500. */
dfn_plot *dfn_plot_new(int width, int height);
void dfn_plot_free(dfn_plot *plot);
/* Title and axis labels; any may be NULL (none). */
void dfn_plot_labels(dfn_plot *plot, const char *title, const char *xlabel, const char *ylabel);
/* Logarithmic y axis (decades, 1e-3 style labels); on = 0 turns it off. */
void dfn_plot_log_y(dfn_plot *plot, int on);
/* Fixed axis ranges; a pair with min >= max (or NaN) stays automatic: the data's
 * range plus a small margin, from 0 for histograms and bars. */
void dfn_plot_limits(dfn_plot *plot, double xmin, double xmax, double ymin, double ymax);

/* A polyline through (x[i], y[i]); x NULL means x = 0, 1, ..., n-1. */
void dfn_plot_line(dfn_plot *plot, const float *x, const float *y, int n, const char *label);
/* n 2-D points stored (n, 2) as x0 y0 x1 y1 ... (a batch of the 2-D data sets);
 * the default opacity falls with n so that dense regions show as darker. */
void dfn_plot_scatter(dfn_plot *plot, const float *xy, int n, const char *label);
/* A histogram of n values in `bins` bins (<= 0: 40) over [lo, hi] (lo >= hi:
 * the values' range), scaled as a density, count / (finite values * bin
 * width), so that a probability density drawn with dfn_plot_line overlays it.
 * Half transparent, so that several histograms can share the axes. */
void dfn_plot_hist(dfn_plot *plot, const float *values, size_t n, int bins, double lo, double hi,
                   const char *label);
/* Vertical bars of height y[i] at x[i] (x NULL: 0..n-1), e.g. an eigenvalue
 * spectrum; on a log axis they rise from the bottom of the axes. */
void dfn_plot_bars(dfn_plot *plot, const float *x, const float *y, int n, const char *label);
/* Restyles the series added last: colour 0xRRGGBB (< 0 keeps the palette's),
 * opacity in (0, 1] (<= 0 keeps the default), line width or point radius in
 * pixels (<= 0 keeps the default), and markers at a line's points (0/1). */
void dfn_plot_style(dfn_plot *plot, long rgb, float alpha, float size, int markers);
/* Makes the figure a heatmap of the (rows, cols) matrix m (row 0 on top) with a
 * colour bar, instead of x-y series. Colours span [vmin, vmax]; vmin >= vmax
 * picks the range: symmetric around 0 with a blue-white-red scale if m has
 * both signs (covariances), else [min, max] on a dark-to-light scale. */
void dfn_plot_heatmap(dfn_plot *plot, const float *m, int rows, int cols, double vmin,
                      double vmax);
/* Draws the figure into path: ".png" or ".svg" (case-insensitive). */
dfn_status dfn_plot_save(const dfn_plot *plot, const char *path);
/* Frees the font caches that cairo and fontconfig keep for the whole process
 * after the first text is drawn (they are rebuilt when needed). For the end of
 * a program run under a leak checker; no other thread may be drawing then. */
void dfn_plot_release_caches(void);

#ifdef __cplusplus
}
#endif
#endif

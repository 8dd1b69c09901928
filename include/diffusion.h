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

/* ---------------------------------------------------------------- datasets */

/* A dataset is N samples of one fixed shape, float32, stored contiguously
 * (sample i starts at data + i * sample_size), with optional integer labels
 * 0..num_classes-1. Two shapes occur: vectors (ndim 1, dims {D}) and images
 * (ndim 3, dims {C, H, W}, NCHW like everything else).
 *
 *     dfn_dataset *ds;
 *     if (dfn_dataset_load_fashion_mnist(&ds, NULL, "train") != DFN_OK) {
 *         fprintf(stderr, "%s\n", dfn_last_error());   // names the file and the problem
 *         return 1;
 *     }
 *     // 60000 x 1x28x28, pixels in [-1, 1], labels 0..9
 *     dfn_batch_iter *it;
 *     dfn_batch_params bp = dfn_batch_params_init(128);
 *     dfn_batch_iter_new(&it, ds, &bp, 42);
 *     int got = dfn_batch_iter_next(it, x, y);   // x: (128,1,28,28), y: (128)
 *     ...
 *     dfn_batch_iter_free(it);
 *     dfn_dataset_free(ds);
 *
 * Loaders and generators return DFN_OK and a new dataset in *out, or a status
 * with a message (file, line, column, sample as they apply) and *out = NULL;
 * nothing is left allocated on failure. The caller frees with dfn_dataset_free.
 * 8-bit images come out scaled to [-1, 1] by x / 127.5 - 1 (Ho et al. 2020),
 * so 0 -> -1 and 255 -> 1 exactly. Everything random is drawn from dfn_rng /
 * dfn_philox with the given seed: the same seed gives the same bytes, for any
 * number of threads. */

#define DFN_DATASET_MAX_DIMS 3

typedef struct dfn_dataset dfn_dataset;

/* A zero-filled dataset of n samples shaped dims[0..ndim) (ndim 1: {D}; 2: {H, W},
 * stored as {1, H, W}; 3: {C, H, W}). num_classes > 0 also allocates n labels
 * (zero). DFN_ERR_ARG for n = 0, a non-positive dimension, or a size that
 * does not fit in memory (reported, never an abort). */
dfn_status dfn_dataset_new(dfn_dataset **out, size_t n, int ndim, const int *dims,
                           int num_classes);
/* A copy of a float array: n samples shaped as in dfn_dataset_new (the hook for
 * .npy arrays N x D or N x C x H x W). labels: n labels or NULL; num_classes: 0
 * infers max label + 1. DFN_ERR_ARG for a label < 0 or >= num_classes,
 * DFN_ERR_NUMERIC for a NaN or Inf (the message gives sample and element). */
dfn_status dfn_dataset_from_array(dfn_dataset **out, const float *data, size_t n, int ndim,
                                  const int *dims, const int *labels, int num_classes);
/* A copy of the samples indices[0..n) (in that order, repeats allowed), labels
 * and class count included. DFN_ERR_ARG for n = 0 or an index out of range. */
dfn_status dfn_dataset_subset(dfn_dataset **out, const dfn_dataset *ds, const size_t *indices,
                              size_t n);
/* A deterministic train/validation split: round(val_fraction * N) samples chosen
 * by a permutation drawn from `seed` go to *val, the rest to *train; both keep
 * the original order. DFN_ERR_ARG unless both parts get at least one sample. */
dfn_status dfn_dataset_split(const dfn_dataset *ds, double val_fraction, uint64_t seed,
                             dfn_dataset **train, dfn_dataset **val);
void dfn_dataset_free(dfn_dataset *ds);

size_t dfn_dataset_count(const dfn_dataset *ds);
/* Copies the dimensions into dims (up to DFN_DATASET_MAX_DIMS) and returns ndim. */
int dfn_dataset_shape(const dfn_dataset *ds, int dims[DFN_DATASET_MAX_DIMS]);
/* Floats per sample (D, or C*H*W). */
size_t dfn_dataset_sample_size(const dfn_dataset *ds);
/* All samples, (N, sample_size); writable (preprocess in place). */
float *dfn_dataset_data(dfn_dataset *ds);
const float *dfn_dataset_sample(const dfn_dataset *ds, size_t i);
/* Labels (N), or NULL for an unlabelled dataset; num_classes is then 0. */
int *dfn_dataset_labels(dfn_dataset *ds);
int dfn_dataset_num_classes(const dfn_dataset *ds);

/* -- loaders */

/* MNIST-style IDX files, gzipped or plain (detected from the content): images
 * (magic 0x00000803, N x rows x cols uint8) and, if labels_path is not NULL,
 * labels (magic 0x00000801, N uint8). Gives N x 1 x rows x cols in [-1, 1].
 * num_classes: labels must be below it; 0 infers max label + 1. Errors: a
 * missing file (DFN_ERR_IO); wrong magic ("not an IDX image file (magic
 * 0x00000801)"), truncated data or gzip stream, label count different from the
 * image count, a label out of range (DFN_ERR_FORMAT). */
dfn_status dfn_dataset_load_idx(dfn_dataset **out, const char *images_path,
                                const char *labels_path, int num_classes);
/* Fashion-MNIST (or MNIST) from dir with the standard names
 * {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; split "train" (60000) or
 * "test" (10000); dir NULL means DFN_FASHION_MNIST_DIR. 10 classes. */
#define DFN_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"
dfn_status dfn_dataset_load_fashion_mnist(dfn_dataset **out, const char *dir,
                                          const char *split);

typedef struct {
    int channels; /* 1 gray, 3 RGB (converted as needed), 0: those of the first image,
                     and then every image must have them (gray+alpha counts as gray,
                     RGBA as RGB; alpha is dropped). Default 0. */
    int size;     /* output size, size x size; 0 keeps the images' own size. Default 0. */
    int resize;   /* 1: scale so the shorter side is `size` (area average when
                     shrinking, bilinear when enlarging), then center-crop;
                     0: no resampling: all images must have the same size and are
                     center-cropped to `size` when it is smaller. Default 1. */
} dfn_image_folder_params;

dfn_image_folder_params dfn_image_folder_params_init(void);
/* Every image file (.png .jpg .jpeg .bmp .tga .ppm .pgm .pnm, any case) directly
 * in dir, in byte order of file name, as N x C x size x size in [-1, 1],
 * unlabelled. params NULL means the defaults. Errors name the file: no images
 * in dir, an unreadable or corrupt image, a channel count different from the
 * first image's (channels = 0), a size different from the first image's
 * (resize = 0; both sizes given), an image smaller than `size` (resize = 0). */
dfn_status dfn_dataset_load_image_folder(dfn_dataset **out, const char *dir,
                                         const dfn_image_folder_params *params);

/* Vectors from CSV: one sample per line, comma-separated numbers; a first line
 * that is not all numbers is a header and skipped; blank lines are skipped.
 * label_column (0-based) holds non-negative integer labels and is not part of
 * the vector; -1 for none (then unlabelled). Messages count lines and columns
 * from 1, as editors do: "data.csv:17: column 3: 'abc' is not a number",
 * "data.csv:9: 4 columns, expected 5 as on line 1". */
dfn_status dfn_dataset_load_csv(dfn_dataset **out, const char *path, int label_column);

/* -- generators */

/* Seed 000's curves: x_i = sum_k w_k sin(2 pi f_k t_i + phi_k) on the grid
 * t_i = i / (dim - 1) in [0, 1], with f_k ~ U(freq_min, freq_max) cycles over
 * the grid, phi_k ~ U(0, 2 pi), and weights w_k ~ U(0, 1) rescaled so that
 * sum w_k^2 = 2: each curve's mean square is then about 1 (unit scale), and
 * |x_i| <= sqrt(2 components). Unlabelled, shape {dim}. */
typedef struct {
    int dim;        /* points per curve: 50 */
    int components; /* sinusoids per curve: 3 */
    float freq_min; /* 1 */
    float freq_max; /* 5 */
} dfn_curves_params;

dfn_curves_params dfn_curves_params_init(void);
/* params NULL means the defaults. */
dfn_status dfn_dataset_curves(dfn_dataset **out, size_t n, const dfn_curves_params *params,
                              uint64_t seed);

/* 2-D toys (Grathwohl et al. 2019, FFJORD; Song & Ermon 2019), shape {2}.
 * Two moons: the upper arc (cos a, sin a) and the lower (1 - cos a, 0.5 - sin a),
 * a ~ U(0, pi), plus N(0, noise^2) per coordinate; label = moon (0 upper, 1 lower),
 * half the samples each (the upper gets the odd one). */
dfn_status dfn_dataset_two_moons(dfn_dataset **out, size_t n, float noise, uint64_t seed);
/* Eight Gaussians: centres radius * (cos 2 pi k/8, sin 2 pi k/8), isotropic std,
 * component uniform; label = k. The usual toy is radius 2, std 0.02. */
dfn_status dfn_dataset_eight_gaussians(dfn_dataset **out, size_t n, float radius, float std,
                                       uint64_t seed);
/* Swiss roll: (t cos t, t sin t) / 5 with t = 1.5 pi (1 + 2u), u ~ U(0, 1), plus
 * N(0, noise^2) per coordinate (in the output's units); points lie within
 * about 3 of the origin. Unlabelled. */
dfn_status dfn_dataset_swiss_roll(dfn_dataset **out, size_t n, float noise, uint64_t seed);
/* Checkerboard: uniform on the 8 unit squares of [-2, 2]^2 whose
 * floor(x) + floor(y) is even. Unlabelled. */
dfn_status dfn_dataset_checkerboard(dfn_dataset **out, size_t n, uint64_t seed);

/* A Gaussian mixture in `dim` dimensions, label = component. */
typedef struct {
    int dim;              /* D */
    int components;       /* K */
    const float *weights; /* (K) non-negative, normalised here; NULL: equal */
    const float *means;   /* (K, D) */
    const float *covs;    /* (K, D, D) symmetric positive definite, or NULL */
    const float *stds;    /* (K) isotropic standard deviations, used when covs is
                             NULL; both NULL: 1 */
} dfn_mixture_params;

/* DFN_ERR_ARG for a negative or all-zero weight, a std <= 0, a covariance that
 * is not symmetric positive definite (names the component). */
dfn_status dfn_dataset_gaussian_mixture(dfn_dataset **out, size_t n,
                                        const dfn_mixture_params *params, uint64_t seed);

/* The generators by name with their default settings, for command lines:
 * "curves", "moons" (noise 0.05), "8gaussians" (radius 2, std 0.02),
 * "swissroll" (noise 0.1), "checkerboard". */
typedef enum {
    DFN_TOY_CURVES,
    DFN_TOY_MOONS,
    DFN_TOY_EIGHT_GAUSSIANS,
    DFN_TOY_SWISS_ROLL,
    DFN_TOY_CHECKERBOARD,
    DFN_TOY_COUNT
} dfn_toy;

const char *dfn_toy_name(dfn_toy toy); /* "?" past the end */
int dfn_toy_from_name(const char *name); /* -1 for an unknown name */
/* DFN_ERR_ARG with the list of names for an unknown one. */
dfn_status dfn_dataset_toy(dfn_dataset **out, const char *name, size_t n, uint64_t seed);

/* -- preprocessing */

/* 8-bit pixels to [-1, 1] (x / 127.5 - 1) and back (clamped, rounded). */
void dfn_pixels_to_unit(float *out, const uint8_t *in, size_t n);
void dfn_unit_to_pixels(uint8_t *out, const float *in, size_t n);
/* Per-feature mean and standard deviation over the samples (sample_size floats
 * each; computed in double in a fixed order). A constant feature gets std 1. */
void dfn_dataset_feature_stats(const dfn_dataset *ds, float *mean, float *std);
/* x = (x - mean) / std per feature, in place (use the training set's stats for
 * the validation set); dfn_unstandardize undoes it on n vectors of length d. */
void dfn_dataset_standardize(dfn_dataset *ds, const float *mean, const float *std);
void dfn_unstandardize(float *x, size_t n, size_t d, const float *mean, const float *std);
/* Flips each of the n images (C, H, W) left-right with probability 1/2, one
 * uniform draw per image from rng (advanced by ceil(n / 4)). */
void dfn_random_hflip(float *x, size_t n, int c, int h, int w, dfn_rng *rng);

/* -- batches */

typedef struct {
    int batch_size;
    int shuffle; /* 1: a new random order every epoch (Fisher-Yates); 0: in order. Default 1. */
    int hflip;   /* 1: flip each image left-right with probability 1/2 (images only). Default 0. */
    int partial; /* 0: every batch is full, a batch runs on into the next epoch;
                    1: the last batch of an epoch is short. Default 0. */
} dfn_batch_params;

dfn_batch_params dfn_batch_params_init(int batch_size);

/* Where an iterator stands: plain integers, to store in a checkpoint. Order and
 * flips are a function of (seed, epoch, position in the epoch) alone (epoch e's
 * order is a Fisher-Yates shuffle driven by Philox blocks of a key derived from
 * seed), so restoring a state continues bit for bit. */
typedef struct {
    uint64_t seed;
    uint64_t epoch;    /* epochs completed */
    uint64_t position; /* samples of the current epoch already delivered */
    uint64_t count;    /* the dataset's size, checked on restore */
} dfn_batch_state;

typedef struct dfn_batch_iter dfn_batch_iter;

/* The iterator reads ds, which must outlive it. DFN_ERR_ARG for batch_size < 1
 * or hflip on a dataset that is not images. */
dfn_status dfn_batch_iter_new(dfn_batch_iter **out, const dfn_dataset *ds,
                              const dfn_batch_params *params, uint64_t seed);
void dfn_batch_iter_free(dfn_batch_iter *it);
/* Fills x (batch_size * sample_size floats) and, if y is not NULL, y
 * (batch_size labels; the dataset must have labels); returns the number of
 * samples written: batch_size, or fewer for the last batch of an epoch with
 * partial = 1. */
int dfn_batch_iter_next(dfn_batch_iter *it, float *x, int *y);
/* Epochs completed so far. */
uint64_t dfn_batch_iter_epoch(const dfn_batch_iter *it);
dfn_batch_state dfn_batch_iter_state(const dfn_batch_iter *it);
/* DFN_ERR_ARG if the state was saved for a dataset of another size or its
 * position is past the end. */
dfn_status dfn_batch_iter_restore(dfn_batch_iter *it, const dfn_batch_state *state);

#ifdef __cplusplus
}
#endif
#endif

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
#include <stdio.h>

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

/* ---------------------------------------------------------------- instruction sets */

/* The layers' kernels (convolution, GroupNorm, attention, SiLU, dropout, ...)
 * exist once per instruction-set level, chosen at run time. The default is the
 * best level this CPU supports, unless the environment variable DFN_ISA names
 * another ("generic", "avx2", "avx512"; read once, at first use; an unknown
 * value, or one the CPU cannot run, prints a warning on stderr and the default
 * is used). Every level is deterministic for any thread count; two levels may
 * differ in the last bits. oneDNN's GEMM keeps the level in use at its first
 * call (so DFN_ISA caps it; dfn_set_isa later does not). */
typedef enum {
    DFN_ISA_GENERIC, /* portable C: any CPU, any architecture */
    DFN_ISA_AVX2,    /* x86-64 with AVX2, FMA, BMI1/2, F16C */
    DFN_ISA_AVX512,  /* x86-64 with AVX2 and AVX-512 F, DQ, BW, VL */
    DFN_ISA_COUNT
} dfn_isa;

/* The level the kernels use now. */
dfn_isa dfn_get_isa(void);
/* Switches the kernels to `isa` for the calls that follow (not while layers run
 * on other threads). DFN_ERR_ARG, and the level unchanged, if this CPU cannot
 * run it. */
dfn_status dfn_set_isa(dfn_isa isa);
/* The best level this CPU supports. */
dfn_isa dfn_cpu_isa(void);
/* "generic", "avx2", "avx512" ("unknown" out of range) and back; -1 and
 * DFN_ERR_ARG naming the known levels for an unknown name. */
const char *dfn_isa_name(dfn_isa isa);
int dfn_isa_from_name(const char *name);

/* Where the time goes: when enabled, every layer call of the networks and the
 * optimizer steps are timed by kind (conv2d forward/backward, GroupNorm,
 * attention, ...); dfn_profile_report prints milliseconds per kind divided by
 * `divide_by` (e.g. the number of steps timed). */
void dfn_profile_enable(int on);
void dfn_profile_reset(void);
void dfn_profile_report(FILE *f, double divide_by);

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
/* Uniform floats strictly inside (0, 1), (k + 1/2) / 2^23 with k the top 23 bits
 * of a Philox word: element i comes from block counter + i/4, lane i%4; the
 * counter advances by ceil(n/4). */
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
 * mode: DFN_EVAL (0) ignores rng (may be NULL); DFN_TRAIN (1) applies dropout
 * with numbers from rng (advanced) and keeps the activations for
 * dfn_model_backward; DFN_EVAL_GRAD (2) is the eval function (no dropout) with
 * its activations kept, for gradients of the evaluated network: vector-Jacobian
 * products (likelihoods), classifier guidance. */
enum { DFN_EVAL = 0, DFN_TRAIN = 1, DFN_EVAL_GRAD = 2 };
void dfn_model_forward(dfn_model *model, float *out, const float *x, const float *t,
                       const int *y, int batch, int mode, dfn_rng *rng);
/* Backward of the last DFN_TRAIN or DFN_EVAL_GRAD forward: accumulates
 * d(loss)/d(params) into the gradient array. dout: d(loss)/d(out), shaped like out. If dx is not NULL it
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

/* Scalars are doubles, as PyTorch's are Python floats: 1 - beta2 from a float
 * 0.999 would be off by 1.3e-5 relative. */
typedef struct {
    double lr;           /* 1e-3 */
    double beta1, beta2; /* 0.9, 0.999 */
    double eps;          /* 1e-8 */
    double weight_decay; /* 0.01 (decoupled, Loshchilov & Hutter 2019) */
} dfn_adamw_params;

dfn_adamw_params dfn_adamw_params_init(void);
/* One AdamW step (as torch.optim.AdamW): step counts from 1; m and v are the
 * moment arrays, zero before the first step; all arrays have n elements. */
void dfn_adamw_step(float *params, const float *grads, float *m, float *v, size_t n,
                    long step, const dfn_adamw_params *p);
/* The learning rate at step k (1-based): linear warm-up to lr over `warmup`
 * steps, then cosine decay to lr * min_ratio at step `steps`. */
double dfn_lr_warmup_cosine(double lr, long warmup, long steps, double min_ratio, long k);
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
/* ========================================================= * noise processes, predictions, objectives
 *   src/process/schedule.c  discrete beta schedules
 *   src/process/sde.c       continuous processes (score SDEs), sigma ladders
 *   src/process/prediction.c conversions between eps / x0 / v / score / flow
 *   src/train/objective.c   training inputs, targets, weights and losses
 *
 * Every process here is Gaussian given x_0:  x_t = alpha x_0 + sigma eps,
 * eps ~ N(0, I). Tensors are float32; per-sample coefficients (alpha, sigma,
 * variances) are double, as the schedules that produce them are.
 * ================================================================ */

/* ---------------------------------------------------------------- discrete schedules */

/* Step indexing: every array below is 0-based, and entry i is the papers' step
 * t = i + 1 (t = 1..T). So beta[0] = b_1, alpha_bar[T-1] = abar_T, and the
 * integer a network sees as its timestep is the index i (as improved-diffusion
 * and diffusers do). */
typedef enum {
    DFN_BETA_LINEAR,    /* "linear": linspace(beta_start, beta_end, T) (Ho et al. 2020) */
    DFN_BETA_COSINE,    /* "cosine": Nichol & Dhariwal 2021 eq. 17, s = 0.008, clip 0.999 */
    DFN_BETA_SIGMOID,   /* "sigmoid": sigmoid(linspace(-6, 6, T)) (end - start) + start */
    DFN_BETA_CONSTANT,  /* "constant": beta_end at every step (DDPM's "const") */
    DFN_BETA_QUADRATIC, /* "quadratic": linspace(sqrt(start), sqrt(end), T)^2
                           (diffusers' "scaled_linear") */
    DFN_BETA_FILE,      /* "file": betas listed in a text file (params.path) */
    DFN_BETA_KIND_COUNT
} dfn_beta_kind;

/* "linear", "cosine", ... and back. dfn_beta_kind_from_name also accepts the
 * diffusers names "scaled_linear" (quadratic) and "squaredcos_cap_v2" (cosine);
 * for an unknown name it returns -1 and leaves a message listing the known
 * names for dfn_last_error(). */
const char *dfn_beta_kind_name(dfn_beta_kind kind);
int dfn_beta_kind_from_name(const char *name);

typedef struct {
    dfn_beta_kind kind;
    int T;              /* steps, 1000; ignored for DFN_BETA_FILE (the file decides) */
    double beta_start;  /* 1e-4: first beta of linear, sigmoid, quadratic */
    double beta_end;    /* 0.02: last beta of linear, sigmoid, quadratic; constant's beta */
    double cosine_s;    /* 0.008: cosine offset s */
    double max_beta;    /* 0.999: cosine betas are clipped to at most this */
    const char *path;   /* DFN_BETA_FILE: the file (borrowed, not kept) */
} dfn_schedule_params;

/* Defaults above for `kind`. The endpoints are used as given for every T, as in
 * DDPM (Ho et al. 2020, diffusion_utils_2.get_beta_schedule); improved-diffusion
 * instead rescales linear endpoints by 1000/T: to reproduce it, set
 * beta_start = 1e-4 * 1000/T and beta_end = 0.02 * 1000/T yourself. */
dfn_schedule_params dfn_schedule_params_init(dfn_beta_kind kind);

/* A schedule: T and per-step arrays (index i = step t = i + 1), all double.
 *   beta            b_t
 *   alpha           a_t = 1 - b_t
 *   alpha_bar       abar_t = prod_{s<=t} a_s
 *   alpha_bar_prev  abar_{t-1}, with abar_0 = 1
 *   sqrt_alpha_bar, sqrt_one_minus_alpha_bar
 *   snr             abar_t / (1 - abar_t);  log_snr its log
 *   posterior_variance      b~_t = (1 - abar_{t-1}) / (1 - abar_t) b_t  (0 at t = 1)
 *   posterior_log_variance_clipped  log b~_t, with the t = 1 entry replaced by
 *                   t = 2's (improved-diffusion); for T = 1, log b_1
 *   posterior_coef_x0  sqrt(abar_{t-1}) b_t / (1 - abar_t)
 *   posterior_coef_xt  sqrt(a_t) (1 - abar_{t-1}) / (1 - abar_t)
 * The arrays share one allocation owned by the struct: free it with
 * dfn_schedule_free, never the arrays one by one. */
typedef struct {
    int T;
    dfn_beta_kind kind;
    double *beta, *alpha, *alpha_bar, *alpha_bar_prev;
    double *sqrt_alpha_bar, *sqrt_one_minus_alpha_bar;
    double *snr, *log_snr;
    double *posterior_variance, *posterior_log_variance_clipped;
    double *posterior_coef_x0, *posterior_coef_xt;
} dfn_schedule;

/* Builds the schedule `p` describes into *s. Fails with DFN_ERR_ARG (T < 1, an
 * endpoint or s or max_beta out of range: every beta must lie in (0, 1)),
 * DFN_ERR_IO (beta file missing or unreadable) or DFN_ERR_FORMAT (a field that is
 * not a number, a beta outside (0, 1), no betas at all; the message names the
 * file and the line). On failure *s is zeroed and owns nothing. */
dfn_status dfn_schedule_init(dfn_schedule *s, const dfn_schedule_params *p);
/* The same from T betas given by the caller (copied; kind = DFN_BETA_FILE).
 * DFN_ERR_ARG if T < 1 or a beta lies outside (0, 1) (the message names its index). */
dfn_status dfn_schedule_from_betas(dfn_schedule *s, const double *betas, int T);
/* Reads a beta file: numbers separated by commas and/or newlines, blank lines
 * and '#' comments ignored. *betas is malloc'ed (the caller frees it). Errors
 * as dfn_schedule_init's. */
dfn_status dfn_read_betas(double **betas, int *T, const char *path);
/* Releases the arrays and zeroes *s; a zeroed struct may be freed again. */
void dfn_schedule_free(dfn_schedule *s);

/* The discrete-to-continuous link: step i as x_t = alpha x_0 + sigma eps,
 * alpha = sqrt(abar_t), sigma = sqrt(1 - abar_t). */
void dfn_schedule_alpha_sigma(const dfn_schedule *s, int i, double *alpha, double *sigma);

/* q(x_t | x_0), DDPM eq. 4: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, sample b
 * at step index t[b]. x_t, x0, eps: (batch, dim); x_t may alias x0 or eps. */
void dfn_q_sample(float *x_t, const dfn_schedule *s, const float *x0, const float *eps,
                  const int *t, int batch, size_t dim);
/* q(x_{t-1} | x_t, x_0) = N(mean, var I), DDPM eqs. 6-7: mean (batch, dim) =
 * coef_x0 x0 + coef_xt x_t; var and log_var_clipped (batch) per sample. Any of
 * the three outputs may be NULL (x0 and x_t are then unused if mean is). mean may
 * alias x0 or x_t. */
void dfn_q_posterior(float *mean, double *var, double *log_var_clipped, const dfn_schedule *s,
                     const float *x0, const float *x_t, const int *t, int batch, size_t dim);

/* ---------------------------------------------------------------- continuous processes */

/* Score SDEs (Song et al. 2021) dx = f(t) x dt + g(t) dw on t in [0, 1], and the
 * rectified-flow interpolation seen as one. All have p(x_t | x_0) = N(alpha(t) x_0,
 * sigma(t)^2 I):
 *   VP     (eq. 11) beta(t) = beta_min + t (beta_max - beta_min),
 *          alpha = exp(-1/2 int_0^t beta), sigma = sqrt(1 - alpha^2),
 *          f = -beta/2, g = sqrt(beta).
 *   sub-VP (eq. 12) the same alpha and f, sigma = 1 - alpha^2 (a std, not a
 *          variance: Song et al. appendix B), g = sqrt(beta (1 - alpha^4)).
 *   VE     (eq. 9, NCSN++) sigma(t) = sigma_min (sigma_max/sigma_min)^t, alpha = 1,
 *          f = 0, g = sigma(t) sqrt(2 log(sigma_max/sigma_min)).
 *          The std reported is sigma(t) itself, as score_sde's marginal_prob: the
 *          process is taken to start from data already blurred by N(0, sigma_min^2)
 *          (var(0) = sigma_min^2), which keeps sigma > 0 and the score finite at
 *          t = 0. The exact std from a noiseless x_0 would be
 *          sqrt(sigma(t)^2 - sigma_min^2); the two differ by < sigma_min^2/(2 sigma).
 *   flow   rectified flow (Liu et al. 2023): alpha = 1 - t, sigma = t; as an SDE
 *          f = -1/(1-t), g = sqrt(2t/(1-t)) (infinite at t = 1); its
 *          probability-flow drift is the velocity eps - x_0. */
typedef enum {
    DFN_SDE_VP,    /* "vp" */
    DFN_SDE_SUBVP, /* "subvp" (also accepted: "sub-vp") */
    DFN_SDE_VE,    /* "ve" */
    DFN_SDE_FLOW,  /* "flow" */
    DFN_SDE_KIND_COUNT
} dfn_sde_kind;

/* Names and back; from_name returns -1 for an unknown name and leaves a message
 * listing the known ones. */
const char *dfn_sde_kind_name(dfn_sde_kind kind);
int dfn_sde_kind_from_name(const char *name);

typedef struct {
    dfn_sde_kind kind;
    double beta_min, beta_max;   /* VP, sub-VP: 0.1, 20 */
    double sigma_min, sigma_max; /* VE: 0.01, 50 */
} dfn_sde;

/* The defaults above for `kind`. */
dfn_sde dfn_sde_init(dfn_sde_kind kind);
/* DFN_ERR_ARG unless 0 <= beta_min <= beta_max, beta_max > 0 (VP, sub-VP) and
 * 0 < sigma_min < sigma_max (VE). The functions below assume a valid process. */
dfn_status dfn_sde_validate(const dfn_sde *sde);
/* Marginal coefficients of p(x_t | x_0) at time t. */
void dfn_sde_marginal(const dfn_sde *sde, double t, double *alpha, double *sigma);
/* Drift coefficient f(t) (f(x, t) = f(t) x) and diffusion g(t). */
void dfn_sde_coefficients(const dfn_sde *sde, double t, double *f, double *g);
/* Std of the prior p_1 = N(0, std^2 I) that sampling starts from: 1 for VP,
 * sub-VP and flow, sigma_max for VE (score_sde's prior_sampling). */
double dfn_sde_prior_std(const dfn_sde *sde);
/* lambda(t) = log(alpha(t)/sigma(t)), DPM-Solver's half log-SNR (Lu et al. 2022
 * section 3.1) - half of the full log SNR that dfn_schedule.log_snr holds - and
 * its inverse in closed form (VP linear: t = 2L / (beta_min + sqrt(beta_min^2 +
 * 2 (beta_max - beta_min) L)), L = log(1 + e^{-2 lambda}), as DPM-Solver's
 * NoiseScheduleVP.inverse_lambda). The inverse solves the process's formula, so
 * a lambda outside [lambda(1), lambda(0)] maps to a t outside [0, 1]. */
double dfn_sde_lambda(const dfn_sde *sde, double t);
double dfn_sde_t_from_lambda(const dfn_sde *sde, double lambda);

/* Noise-level ladders for k-diffusion style samplers, written to sigmas[0..n-1]
 * in decreasing order (no trailing zero: k-diffusion appends one; add it if
 * your sampler wants it).
 *   karras:    sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho
 *              (Karras et al. 2022 eq. 5; rho = 7 there); n = 1 gives smax.
 *   geometric: sigma_i = smax (smin/smax)^(i/(n-1)), NCSN's sigma_1 > ... > sigma_L
 *              (Song & Ermon 2019 section 4.2); n = 1 gives smax.
 * DFN_ERR_ARG unless n >= 1, 0 < sigma_min <= sigma_max and rho > 0. */
dfn_status dfn_sigmas_karras(double *sigmas, int n, double sigma_min, double sigma_max,
                             double rho);
dfn_status dfn_sigmas_geometric(double *sigmas, int n, double sigma_min, double sigma_max);

/* ---------------------------------------------------------------- predictions */

/* What a network outputs, for x_t = alpha x0 + sigma eps:
 *   eps    the noise                     (Ho et al. 2020)
 *   x0     the clean data
 *   v      alpha eps - sigma x0          (Salimans & Ho 2022, section 4)
 *   score  grad log p(x_t) = -eps/sigma  (Song et al. 2021; Vincent 2011)
 *   flow   u = eps - x0, the velocity dx_t/dt of rectified flow (alpha = 1 - t,
 *          sigma = t; Liu et al. 2023). Defined as eps - x0 for any alpha, sigma. */
typedef enum {
    DFN_PRED_EPS,
    DFN_PRED_X0,
    DFN_PRED_V,
    DFN_PRED_SCORE,
    DFN_PRED_FLOW,
    DFN_PRED_COUNT
} dfn_prediction;

/* "eps", "x0", "v", "score", "flow" and back; from_name returns -1 for an unknown
 * name and leaves a message listing the known ones. */
const char *dfn_prediction_name(dfn_prediction kind);
int dfn_prediction_from_name(const char *name);

/* out = the pred_kind prediction `pred` at x_t, re-expressed as out_kind; n
 * elements sharing one alpha, sigma. Arithmetic in double; out may alias pred or
 * x_t; x_t may be NULL when out_kind == pred_kind (a copy). The conversion
 * divides by alpha (eps or score -> x0, v, flow), by sigma
 * (x0 -> eps, score, v, flow; anything -> score), by alpha^2 + sigma^2 (from v) or
 * by alpha + sigma (from flow); where that is 0 the result is Inf/NaN, as the
 * mathematics says. */
void dfn_prediction_convert(float *out, dfn_prediction out_kind, const float *pred,
                            dfn_prediction pred_kind, const float *x_t, double alpha,
                            double sigma, size_t n);
/* The same for a batch: (batch, dim) tensors, sample b at alpha[b], sigma[b]. */
void dfn_prediction_convert_batch(float *out, dfn_prediction out_kind, const float *pred,
                                  dfn_prediction pred_kind, const float *x_t,
                                  const double *alpha, const double *sigma, int batch,
                                  size_t dim);
/* The exact `kind` value for known x0 and eps (a training target): n elements. */
void dfn_prediction_target(float *out, dfn_prediction kind, const float *x0, const float *eps,
                           double alpha, double sigma, size_t n);
/* |d kind / d x0| at fixed x_t: an error e in x0 is an error gain * e in `kind`
 * (eps: alpha/sigma, x0: 1, v: (alpha^2 + sigma^2)/sigma, score: alpha/sigma^2,
 * flow: (alpha + sigma)/sigma). Weightings use it to move between targets. */
double dfn_prediction_x0_gain(dfn_prediction kind, double alpha, double sigma);

/* ---------------------------------------------------------------- objectives */

typedef enum {
    DFN_LOSS_L2,    /* "l2" (also "mse"): r^2 */
    DFN_LOSS_L1,    /* "l1": |r| */
    DFN_LOSS_HUBER, /* "huber": r^2/2 if |r| < delta, else delta (|r| - delta/2), as
                       torch.nn.HuberLoss (smooth_l1 with beta = huber / delta) */
    DFN_LOSS_COUNT
} dfn_loss_kind;

/* Per-sample loss weights. Each is a weight on the loss in the space of the
 * chosen prediction, derived for L2:
 *   uniform  1 (L_simple for eps, Ho et al. 2020 eq. 14)
 *   vlb      the variational bound's weight (discrete schedules only): for eps
 *            lambda_t = b_t^2 / (2 b~_t a_t (1 - abar_t)) (Ho et al. 2020 eq. 12
 *            against eq. 14), moved to other predictions with
 *            dfn_prediction_x0_gain. At t = 1, where b~_1 = 0, b~ is the clipped
 *            exp(posterior_log_variance_clipped) = b~_2, as improved-diffusion
 *            clips it (the bound's t = 1 term is really the decoder NLL).
 *   min-snr  min(SNR, gamma) in x0 space (Hang et al. 2023 section 3): eps
 *            min(SNR, gamma)/SNR, x0 min(SNR, gamma), v (VP)
 *            min(SNR, gamma)/(SNR + 1); SNR = alpha^2/sigma^2.
 *   sigma2   sigma^2 (Song & Ermon 2019 section 4.2, eqs. 5-6: lambda(sigma) =
 *            sigma^2), meant for score prediction, where it equals uniform
 *            weight on eps. */
typedef enum {
    DFN_WEIGHT_UNIFORM, /* "uniform" */
    DFN_WEIGHT_VLB,     /* "vlb" */
    DFN_WEIGHT_MIN_SNR, /* "min-snr" */
    DFN_WEIGHT_SIGMA2,  /* "sigma2" */
    DFN_WEIGHT_COUNT
} dfn_weighting;

const char *dfn_loss_kind_name(dfn_loss_kind kind);
int dfn_loss_kind_from_name(const char *name);  /* -1 + message for unknown names */
const char *dfn_weighting_name(dfn_weighting w);
int dfn_weighting_from_name(const char *name);  /* -1 + message for unknown names */

/* A training objective. Recipes:
 *   DDPM           prediction eps, uniform (on a dfn_schedule)
 *   x0 / v         prediction x0 or v; min-snr with gamma 5 is Hang et al.'s
 *   score SDE      prediction score, sigma2 (score_sde's likelihood-free
 *                  weighting: loss of eps) or prediction eps, uniform, on a dfn_sde
 *   NCSN           sigmas from dfn_sigmas_geometric, labels from
 *                  dfn_sample_timesteps, alpha = 1, sigma = sigmas[label]:
 *                  prediction score with sigma2 (the network outputs a plain
 *                  score, Song & Ermon 2019 eqs. 5-6), or NCSNv2's sigma-scaled
 *                  output (net = sigma * score = -eps): prediction eps with
 *                  uniform, the same loss with the output's sign flipped.
 *   rectified flow a dfn_sde of kind flow, t from dfn_sample_times(0, 1),
 *                  prediction flow, uniform (Liu et al. 2023 eq. 1).
 * Losses are means over all batch * dim elements of weight[b] * loss(r); NCSN's
 * and score_sde's sums over dimensions (and NCSN's 1/2) differ by a constant
 * factor only. */
typedef struct {
    dfn_prediction prediction; /* eps */
    dfn_loss_kind loss;        /* l2 */
    double huber_delta;        /* 1.0 */
    dfn_weighting weighting;   /* uniform */
    double min_snr_gamma;      /* 5.0 */
} dfn_objective;

dfn_objective dfn_objective_init(void);
/* DFN_ERR_ARG for huber_delta <= 0, min_snr_gamma <= 0, or vlb weighting on a
 * continuous process (discrete = 0). */
dfn_status dfn_objective_validate(const dfn_objective *obj, int discrete);

/* Training times from the seeded generator (dfn_rng_uniform; one uniform per
 * sample, rng advanced): integer steps t[b] = floor(u T) in 0..T-1, and
 * continuous t[b] = t_min + u (t_max - t_min) in (t_min, t_max) (score_sde uses
 * t_min = 1e-5, t_max = 1; rectified flow 0 and 1). */
void dfn_sample_timesteps(int *t, int batch, int T, dfn_rng *rng);
void dfn_sample_times(float *t, int batch, double t_min, double t_max, dfn_rng *rng);

/* The weight of one sample. `_discrete` takes a schedule step index and serves
 * every weighting; the other takes alpha, sigma and aborts on vlb. */
double dfn_objective_weight(const dfn_objective *obj, double alpha, double sigma);
double dfn_objective_weight_discrete(const dfn_objective *obj, const dfn_schedule *s, int i);

/* Network input x_t = alpha x0 + sigma eps, the target for obj->prediction and
 * the per-sample weight, for x0, eps of shape (batch, dim). x_t and target:
 * (batch, dim); weight: (batch), or NULL if not wanted. Three ways to give the
 * noise level of sample b: per-sample alpha[b], sigma[b]; a schedule step index
 * t[b]; a process time t[b]. */
void dfn_objective_batch(float *x_t, float *target, float *weight, const dfn_objective *obj,
                         const float *x0, const float *eps, const double *alpha,
                         const double *sigma, int batch, size_t dim);
void dfn_objective_batch_discrete(float *x_t, float *target, float *weight,
                                  const dfn_objective *obj, const dfn_schedule *s,
                                  const float *x0, const float *eps, const int *t, int batch,
                                  size_t dim);
void dfn_objective_batch_sde(float *x_t, float *target, float *weight, const dfn_objective *obj,
                             const dfn_sde *sde, const float *x0, const float *eps,
                             const float *t, int batch, size_t dim);

/* loss = 1/(batch dim) sum_b weight[b] sum_d loss(pred[b,d] - target[b,d]),
 * accumulated in double in a fixed order; weight NULL means 1. If dpred is not
 * NULL it receives d loss / d pred (overwritten), for the model's backward. The
 * L1 and Huber derivatives at a kink are torch's (sign(0) = 0). delta is used by
 * Huber only. */
double dfn_loss(float *dpred, dfn_loss_kind kind, double delta, const float *pred,
                const float *target, const float *weight, int batch, size_t dim);
/* dfn_loss with obj->loss and obj->huber_delta. */
double dfn_objective_loss(float *dpred, const dfn_objective *obj, const float *pred,
                          const float *target, const float *weight, int batch, size_t dim);

/* ================================================================
 * end of: noise processes, predictions, objectives
 * ================================================================ */
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

/* ================================================================
 * samplers
 *   src/sample/denoiser.c        the denoiser interface: noise levels, guidance, conversions
 *   src/sample/model_denoiser.c  the adapter from a dfn_model
 *   src/sample/mixture.c         the exact denoiser of a Gaussian mixture
 *   src/sample/ddpm.c ddim.c langevin.c sde_solvers.c ode.c dpm_solver.c karras.c flow.c
 *                                one sampler family each
 *   src/sample/registry.c        the samplers by name, for command lines
 *
 * A sampler is a short function over a denoiser: it asks for a prediction of
 * the kind it needs (eps, x0, score, flow) at a noise level and never knows
 * what computes it: a network, or the exact score of a known distribution.
 *
 *     dfn_mixture *mix;                      // the target: a Gaussian mixture
 *     dfn_mixture_new(&mix, &mp);
 *     dfn_sde sde = dfn_sde_init(DFN_SDE_VP);
 *     dfn_denoiser d;
 *     dfn_mixture_denoiser(&d, mix, DFN_PRED_EPS, NULL, &sde);  // or dfn_model_denoiser
 *     dfn_sampler_params p = dfn_sampler_params_init();
 *     p.steps = 20;
 *     dfn_rng rng = dfn_rng_init(42);
 *     dfn_sample_stats st;
 *     if (dfn_sample("dpm++2m", &d, x, batch, dim, &p, &rng, &st) != DFN_OK)
 *         fprintf(stderr, "%s\n", dfn_last_error());
 *     // x: (batch, dim) samples; st.nfe denoiser evaluations
 *
 * Noise levels. Every process is x_t = alpha x0 + sigma eps. A denoiser is
 * evaluated at a time t of its process:
 *   - a dfn_schedule: t is a step index in [0, T-1] (entry i = the papers'
 *     step i + 1, as the network saw in training), fractional between steps:
 *     the log-SNR is interpolated linearly in t (k-diffusion's DiscreteSchedule
 *     t_to_sigma / sigma_to_t); networks take fractional t as floats;
 *   - a dfn_sde: continuous t in [0, 1].
 * Samplers that work in sigma (EDM) or lambda = log(alpha/sigma) (DPM-Solver)
 * map back to t through dfn_denoiser_t_from_lambda.
 * ================================================================ */

/* out (batch, dim) = the prediction of the denoiser's kind for x (batch, dim)
 * at time t, where x = alpha x0 + sigma eps (alpha, sigma: the process at t,
 * handed over so that an exact denoiser needs no process of its own; a network
 * uses t). y: (batch) class labels, or NULL (unconditional). */
typedef void (*dfn_denoise_fn)(void *ctx, float *out, const float *x, double t, double alpha,
                               double sigma, const int *y, int batch, size_t dim);

/* Optional: the vector-Jacobian product of the same function, for likelihoods.
 * out (batch, dim) = J^T v row by row, J = d fn(x) / d x of the prediction fn
 * returns (rows are independent), v (batch, dim); pred (batch, dim), when not
 * NULL, receives fn(x) itself (what the product's forward pass computed).
 * Other arguments as dfn_denoise_fn's. */
typedef void (*dfn_denoise_vjp_fn)(void *ctx, float *pred, float *out, const float *x, double t,
                                   double alpha, double sigma, const float *v, const int *y,
                                   int batch, size_t dim);

typedef struct {
    dfn_denoise_fn fn;
    void *ctx;                    /* passed to fn */
    dfn_prediction kind;          /* what fn returns */
    const dfn_schedule *schedule; /* the process: exactly one of schedule and sde */
    const dfn_sde *sde;
    int max_batch;                /* fn sees at most this many rows per call (0: all) */
    /* Class conditioning, for the batch the sampler runs: labels (batch) or
     * NULL. With labels and guidance != 1, classifier-free guidance (Ho &
     * Salimans 2022 eq. 6): pred = pred(null) + s (pred(c) - pred(null)), from
     * one call on the doubled batch [x, x] with labels [y, null_label]. Every
     * conversion is affine in the prediction at fixed x, so mixing eps, x0, v,
     * score or flow predictions is the same guidance. */
    const int *labels;
    int null_label;               /* the unconditional class (a model's num_classes) */
    double guidance;              /* s: 1 (none) */
    long nfe;                     /* evaluations so far (a guided one counts once) */
    double time_scale;            /* fn receives time_scale * t (the network's time input
                                     for continuous processes, see dfn_process_params): 1 */
    dfn_denoise_vjp_fn vjp;       /* J^T v of fn, or NULL (set by dfn_model_denoiser and
                                     dfn_mixture_denoiser; see dfn_denoiser_vjp): NULL */
} dfn_denoiser;

/* A denoiser over fn with no labels, guidance 1, max_batch 0, nfe 0. */
void dfn_denoiser_init(dfn_denoiser *d, dfn_denoise_fn fn, void *ctx, dfn_prediction kind,
                       const dfn_schedule *schedule, const dfn_sde *sde);
/* DFN_ERR_ARG unless exactly one process is set (and valid) and kind is a
 * dfn_prediction; DFN_ERR_ARG for labels with a guidance that is not finite. */
dfn_status dfn_denoiser_validate(const dfn_denoiser *d);
/* The process at time t: alpha, sigma, lambda = log(alpha/sigma), and back.
 * dfn_denoiser_t_range gives the sampling interval: [0, T-1] for a schedule,
 * [t_end, 1] for an sde (t_end <= 0 picks score_sde's: 1e-3 for VP, sub-VP,
 * 1e-5 for VE, 0 for flow). t_from_lambda clamps to [0, T-1] for a schedule. */
void dfn_denoiser_marginal(const dfn_denoiser *d, double t, double *alpha, double *sigma);
double dfn_denoiser_lambda(const dfn_denoiser *d, double t);
double dfn_denoiser_t_from_lambda(const dfn_denoiser *d, double lambda);
void dfn_denoiser_t_range(const dfn_denoiser *d, double t_end, double *t_lo, double *t_hi);
/* out (batch, dim) = the prediction of kind out_kind at x (batch, dim), time t:
 * calls fn (in chunks of max_batch rows, guided if set), then
 * dfn_prediction_convert. Adds 1 to d->nfe. out must not alias x. */
void dfn_denoiser_eval(dfn_denoiser *d, float *out, dfn_prediction out_kind, const float *x,
                       double t, int batch, size_t dim);

/* A denoiser over a network: dfn_model_forward in eval mode, timesteps as
 * floats (a discrete schedule's step index, fractional between steps; for a
 * continuous process time_scale * t, as the network was trained), in chunks of
 * max_batch rows (<= 0: all). null_label is the model's num_classes. The model
 * must outlive d. */
void dfn_model_denoiser(dfn_denoiser *d, dfn_model *model, dfn_prediction kind,
                        const dfn_schedule *schedule, const dfn_sde *sde, int max_batch,
                        double time_scale);

/* ---------------------------------------------------------------- the exact denoiser of a mixture */

/* p(x0) = sum_k w_k N(m_k, S_k). Noised, x_t = alpha x0 + sigma eps is again a
 * mixture, of N(alpha m_k, C_k), C_k = alpha^2 S_k + sigma^2 I, so everything a
 * sampler asks for is exact (with S_k = U diag(l) U^T, computed once):
 *   responsibilities r_k(x) = w_k N(x; alpha m_k, C_k) / sum_j (...)
 *   score  = -sum_k r_k C_k^{-1} (x - alpha m_k)
 *   eps    = -sigma score
 *   E[x0 | x] = sum_k r_k (m_k + alpha S_k C_k^{-1} (x - alpha m_k))  (Tweedie). */
typedef struct dfn_mixture dfn_mixture;

/* From the dataset generator's parameters (copied). DFN_ERR_ARG for
 * dim or components < 1, a negative or all-zero weight, a std <= 0, a
 * covariance that is not symmetric positive definite (names the component). */
dfn_status dfn_mixture_new(dfn_mixture **out, const dfn_mixture_params *params);
void dfn_mixture_free(dfn_mixture *m);
int dfn_mixture_dim(const dfn_mixture *m);
int dfn_mixture_components(const dfn_mixture *m);
/* Normalised weight of component k, and its mean (dim floats, borrowed). */
double dfn_mixture_weight(const dfn_mixture *m, int k);
const float *dfn_mixture_mean(const dfn_mixture *m, int k);
/* n exact samples x (n, dim) and their components (labels, or NULL): n
 * uniforms, then n * dim normals from rng. */
void dfn_mixture_sample(const dfn_mixture *m, float *x, int *labels, int n, dfn_rng *rng);
/* For x (n, dim) = alpha x0 + sigma eps: E[x0 | x] and E[eps | x] (either may
 * be NULL), in double internally. */
void dfn_mixture_posterior(const dfn_mixture *m, float *x0, float *eps, const float *x,
                           double alpha, double sigma, int n);
/* d: a denoiser returning `kind` exactly, on the given process (one of
 * schedule and sde). m must outlive d. */
void dfn_mixture_denoiser(dfn_denoiser *d, dfn_mixture *m, dfn_prediction kind,
                          const dfn_schedule *schedule, const dfn_sde *sde);

/* ---------------------------------------------------------------- sampler options */

/* DDIM time steps for S of T steps, as diffusers names them (indices, descending):
 *   leading   i = (S-1-j) floor(T/S)          (DDIM's "uniform"; diffusers' default)
 *   trailing  i = round(T - j T/S) - 1        (Lin et al. 2024 table 2; starts at T-1)
 *   linspace  i = round((S-1-j) (T-1)/(S-1))  (starts at T-1, ends at 0) */
typedef enum {
    DFN_SPACING_LEADING,  /* "leading" */
    DFN_SPACING_TRAILING, /* "trailing" */
    DFN_SPACING_LINSPACE, /* "linspace" */
    DFN_SPACING_COUNT
} dfn_spacing;
const char *dfn_spacing_name(dfn_spacing s);
int dfn_spacing_from_name(const char *name); /* -1 + message listing the names */
/* The S indices of `spacing` into steps (descending). DFN_ERR_ARG unless 1 <= S <= T. */
dfn_status dfn_spacing_timesteps(int *steps, int S, int T, dfn_spacing spacing);

/* DDPM's reverse variance (Ho et al. 2020 section 3.2): b~_t (diffusers'
 * "fixed_small") or b_t ("fixed_large"). */
typedef enum {
    DFN_VARIANCE_BETA_TILDE, /* "beta-tilde" */
    DFN_VARIANCE_BETA,       /* "beta" */
    DFN_VARIANCE_COUNT
} dfn_ddpm_variance;
const char *dfn_ddpm_variance_name(dfn_ddpm_variance v);
int dfn_ddpm_variance_from_name(const char *name); /* -1 + message */

/* DPM-Solver's time steps: uniform in lambda (Lu et al. 2022a section 3.4,
 * "logSNR") or in t ("time_uniform"). */
typedef enum {
    DFN_GRID_LAMBDA, /* "lambda" */
    DFN_GRID_TIME,   /* "time" */
    DFN_GRID_COUNT
} dfn_time_grid;
const char *dfn_time_grid_name(dfn_time_grid g);
int dfn_time_grid_from_name(const char *name); /* -1 + message */

/* Called after each step with the state x (batch, dim) in the process's own
 * coordinates, at time t, and the x0 estimate of that step (or NULL): a CLI
 * records trajectories or shows progress. step counts 1..steps. */
typedef void (*dfn_sample_callback)(void *ctx, int step, int steps, double t, const float *x,
                                    const float *x0, int batch, size_t dim);

/* One options struct for every sampler; each reads the fields it needs.
 * Defaults from dfn_sampler_params_init() in brackets. */
typedef struct {
    int steps;         /* steps [0: the sampler's default: T for ddpm, 50 others; ddim <= T] */
    int from_x;        /* 0: draw the start from the prior with rng; 1: x holds it [0] */
    int denoise_final; /* end with x = E[x0 | x] at the last level (score_sde's
                          noise removal) for samplers that stop above zero
                          noise: langevin, em, pc, ode, dpm [1] */
    double t_end;      /* last time of sde samplers [0: see dfn_denoiser_t_range] */
    /* ddpm, ddim */
    dfn_ddpm_variance variance; /* [beta-tilde] */
    double eta;                 /* ddim: 0 deterministic, 1 DDPM-like [0] */
    dfn_spacing spacing;        /* [leading] */
    int clip_x0;                /* clip the x0 estimate to [-clip_range, clip_range] [1] */
    double clip_range;          /* [1] */
    int dynamic_threshold;      /* Saharia et al. 2022 section 2.3, replaces clip_x0 [0] */
    double threshold_p;         /* percentile of |x0| per sample [0.995] */
    double threshold_max;       /* the percentile is clamped to [1, threshold_max]: [inf],
                                   Saharia et al.; diffusers clamps at sample_max_value */
    /* langevin */
    double langevin_c;        /* plain: x += c score + sqrt(2c) z [0.01] */
    double langevin_eps;      /* annealed: alpha_i = eps sigma_i^2 / sigma_L^2 [2e-5] */
    int levels;               /* annealed: L noise levels [10] */
    int steps_per_level;      /* annealed: T [100] */
    double level_sigma_min;   /* annealed: [0: the VE process's sigma_min, sigma_max] */
    double level_sigma_max;
    /* predictor-corrector */
    int predictor_em;    /* 0: reverse diffusion predictor, 1: Euler-Maruyama [0] */
    int corrector_steps; /* Langevin corrector steps per level [1] */
    double snr;          /* corrector signal-to-noise ratio r [0.16] */
    /* rk45 */
    double rtol, atol; /* [1e-5, 1e-5] */
    int max_steps;     /* accepted + rejected steps before DFN_ERR_NUMERIC [10000] */
    /* dpm-solver */
    dfn_time_grid time_grid; /* [lambda] */
    int lower_order_final;   /* multistep: lower order at the last steps when steps < 15 [1] */
    /* karras (EDM) */
    double sigma_min, sigma_max; /* [0: the process's range at t_end and at the start] */
    double rho;                  /* [7] */
    double s_churn, s_tmin, s_tmax, s_noise; /* [0, 0, inf, 1] */
    /* progress */
    dfn_sample_callback callback; /* [NULL] */
    void *callback_ctx;
} dfn_sampler_params;

dfn_sampler_params dfn_sampler_params_init(void);

typedef struct {
    long nfe;     /* denoiser evaluations of this run */
    int steps;    /* steps taken (rk45: accepted) */
    int rejected; /* rk45: rejected steps */
} dfn_sample_stats;

/* ---------------------------------------------------------------- samplers */

/* Every sampler: x (batch, dim) in/out (in when from_x), options p (NULL:
 * defaults), rng for every random draw (the same seed gives the same bits;
 * deterministic samplers use it only for the prior), stats (or NULL).
 * DFN_ERR_ARG with a message for bad options or a process the sampler does
 * not fit (naming those that do). */
typedef dfn_status (*dfn_sampler_fn)(dfn_denoiser *d, float *x, int batch, size_t dim,
                                     const dfn_sampler_params *p, dfn_rng *rng,
                                     dfn_sample_stats *stats);

/* Ho et al. 2020 alg. 2 / eq. 11 (discrete schedules; all T steps). */
dfn_status dfn_sample_ddpm(dfn_denoiser *d, float *x, int batch, size_t dim,
                           const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
/* Song et al. 2021 (DDIM) eq. 12 (discrete schedules). */
dfn_status dfn_sample_ddim(dfn_denoiser *d, float *x, int batch, size_t dim,
                           const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
/* DDIM inversion (eta = 0, Song et al. 2021 section 4.3 eq. 14): x (batch, dim)
 * from data to the last of the steps p->steps, p->spacing picks (x_T). Running
 * dfn_sample_ddim with from_x = 1 and the same steps reconstructs. */
dfn_status dfn_ddim_invert(dfn_denoiser *d, float *x, int batch, size_t dim,
                           const dfn_sampler_params *p, dfn_sample_stats *stats);
/* Langevin dynamics at the lowest noise level: x += c score + sqrt(2c) z. */
dfn_status dfn_sample_langevin(dfn_denoiser *d, float *x, int batch, size_t dim,
                               const dfn_sampler_params *p, dfn_rng *rng,
                               dfn_sample_stats *stats);
/* Song & Ermon 2019 alg. 1 over geometric sigmas (VE processes). */
dfn_status dfn_sample_annealed_langevin(dfn_denoiser *d, float *x, int batch, size_t dim,
                                        const dfn_sampler_params *p, dfn_rng *rng,
                                        dfn_sample_stats *stats);
/* Song et al. 2021 eq. 6 by Euler-Maruyama; predictor-corrector (alg. 4, 5). */
dfn_status dfn_sample_euler_maruyama(dfn_denoiser *d, float *x, int batch, size_t dim,
                                     const dfn_sampler_params *p, dfn_rng *rng,
                                     dfn_sample_stats *stats);
dfn_status dfn_sample_pc(dfn_denoiser *d, float *x, int batch, size_t dim,
                         const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
/* The probability-flow ODE (Song et al. 2021 eq. 13): Euler, Heun, RK4, and
 * Dormand-Prince 5(4) with step control. */
dfn_status dfn_sample_ode_euler(dfn_denoiser *d, float *x, int batch, size_t dim,
                                const dfn_sampler_params *p, dfn_rng *rng,
                                dfn_sample_stats *stats);
dfn_status dfn_sample_ode_heun(dfn_denoiser *d, float *x, int batch, size_t dim,
                               const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
dfn_status dfn_sample_ode_rk4(dfn_denoiser *d, float *x, int batch, size_t dim,
                              const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
dfn_status dfn_sample_ode_rk45(dfn_denoiser *d, float *x, int batch, size_t dim,
                               const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);
/* DPM-Solver (Lu et al. 2022a, noise prediction) and DPM-Solver++ (2022b, data
 * prediction): order 1 (= DDIM), 2 and 3 multistep, 2 singlestep (2 NFE per
 * step), on VP processes. */
dfn_status dfn_sample_dpm(dfn_denoiser *d, float *x, int batch, size_t dim,
                          const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats,
                          int order, int multistep, int data_prediction);
/* Karras et al. 2022 alg. 2 (EDM): Euler (1st order) and Heun, with churn. */
dfn_status dfn_sample_karras_euler(dfn_denoiser *d, float *x, int batch, size_t dim,
                                   const dfn_sampler_params *p, dfn_rng *rng,
                                   dfn_sample_stats *stats);
dfn_status dfn_sample_karras_heun(dfn_denoiser *d, float *x, int batch, size_t dim,
                                  const dfn_sampler_params *p, dfn_rng *rng,
                                  dfn_sample_stats *stats);
/* Rectified flow (Liu et al. 2023): Euler on dx/dt = v from t = 1 to 0. */
dfn_status dfn_sample_flow_euler(dfn_denoiser *d, float *x, int batch, size_t dim,
                                 const dfn_sampler_params *p, dfn_rng *rng,
                                 dfn_sample_stats *stats);

/* ---------------------------------------------------------------- the registry */

/* Which processes a sampler fits (bit flags). */
#define DFN_FITS_DISCRETE 1u /* a dfn_schedule */
#define DFN_FITS_VP 2u
#define DFN_FITS_SUBVP 4u
#define DFN_FITS_VE 8u
#define DFN_FITS_FLOW 16u

typedef struct {
    const char *name; /* "ddim", "dpm++2m", ... */
    const char *help; /* one line */
    unsigned fits;    /* DFN_FITS_* */
    dfn_sampler_fn fn;
} dfn_sampler_info;

/* The table, for "diffusion sample --list": i in 0..dfn_num_samplers()-1. */
int dfn_num_samplers(void);
const dfn_sampler_info *dfn_sampler_get(int i);
/* By name; NULL and a message listing the names for an unknown one. */
const dfn_sampler_info *dfn_sampler_find(const char *name);
/* The DFN_FITS_* flag of d's process. */
unsigned dfn_denoiser_process_flag(const dfn_denoiser *d);
/* Looks up `name` and runs it (errors as dfn_sampler_find and the sampler). */
dfn_status dfn_sample(const char *name, dfn_denoiser *d, float *x, int batch, size_t dim,
                      const dfn_sampler_params *p, dfn_rng *rng, dfn_sample_stats *stats);

/* ================================================================
 * end of: samplers
 * ================================================================ */

/* ---------------------------------------------------------------- training */

/* The noise process a model is trained on, and therefore sampled with; stored
 * in every checkpoint's metadata ("process") so that samplers know it.
 *   discrete:   DDPM steps 0..T-1 of a beta schedule; the network's time input
 *               is the step index;
 *   continuous: an SDE or rectified flow on t in [t_min, 1]; the network's time
 *               input is time_scale * t (1000 by default, so that the sinusoidal
 *               embedding resolves it as it does DDPM's steps; score_sde does
 *               the same with 999). */
typedef struct {
    int continuous;               /* 0: discrete schedule, 1: dfn_sde */
    dfn_schedule_params schedule; /* discrete */
    dfn_sde sde;                  /* continuous: VP, sub-VP, VE or flow */
    double t_min;                 /* continuous: training times ~ U(t_min, 1); 1e-5 (1e-3 flow) */
    double time_scale;            /* continuous: network time = time_scale * t; 1000 */
} dfn_process_params;

/* Discrete linear schedule, T = 1000. */
dfn_process_params dfn_process_params_init(void);
/* Process -> JSON (checkpoint metadata "process"; malloc'ed). A discrete
 * process stores its betas themselves (pass its schedule), so a checkpoint
 * needs no beta file to be sampled. */
char *dfn_process_to_json(const dfn_process_params *p, const dfn_schedule *schedule);
/* JSON -> process; for a discrete one also builds `schedule` from the stored
 * betas (free it with dfn_schedule_free). DFN_ERR_FORMAT naming the problem. */
dfn_status dfn_process_from_json(dfn_process_params *p, dfn_schedule *schedule, const char *json);
/* Objective <-> JSON (checkpoint metadata "objective"). */
char *dfn_objective_to_json(const dfn_objective *obj);
dfn_status dfn_objective_from_json(dfn_objective *obj, const char *json);

typedef struct {
    const char *run_dir;    /* where everything goes (created) */
    long steps;             /* optimizer steps, 10000 */
    int batch_size;         /* 128 */
    int grad_accum;         /* micro-batches per step, 1 */
    dfn_adamw_params adamw; /* lr 2e-4, weight decay 0 */
    long warmup;            /* linear learning-rate warm-up steps, 200 */
    double lr_min_ratio;    /* cosine decay to lr * this at the last step, 0.1 */
    double clip;            /* max gradient norm, 1.0 (0: off) */
    float ema_decay;        /* 0.999 */
    int ema_warmup;         /* 1: decay_k = min(decay, (1 + k) / (10 + k)) so that short
                               runs do not average in the random initial weights */
    double p_uncond;        /* label dropout for classifier-free guidance, 0.1 (models with classes) */
    int hflip;              /* random horizontal flips of images, 0 */
    int val_every;          /* validation loss every K steps (0: off), 500 */
    int val_batches;        /* batches of the validation set per evaluation, 4 */
    int ckpt_every;         /* keep ckpt-<step>.safetensors every K steps (0: only latest), 0 */
    int save_every;         /* rewrite latest.safetensors every K steps, 500 */
    int sample_every;       /* write samples/step-<k>.png every K steps (0: off), 0 */
    int sample_count;       /* images in a preview grid (points in a scatter), 64 */
    int log_every;          /* log.csv row and progress every K steps, 10 */
    int progress;           /* -1: a bar on a terminal, plain lines otherwise; 0: quiet */
    uint64_t seed;          /* 0 */
    int resume;             /* continue the run in run_dir bit-identically */
    int force;              /* overwrite a run_dir that holds another run */
    long stop_after;        /* stop (with a checkpoint) after this many steps of this
                               invocation, as an interruption would; 0: run to `steps` */
    dfn_process_params process;
    dfn_objective objective;
} dfn_train_params;

dfn_train_params dfn_train_params_init(void);

/* Trains `model` on `train` (validation loss on `val`, may be NULL) and leaves in
 * run_dir: config.json (model, process, objective, every setting), log.csv (step,
 * loss, val_loss, lr, grad_norm, img_per_s, seconds), latest.safetensors (the
 * full state: weights, EMA, AdamW moments, step, random streams: --resume
 * continues bit-identically), best.safetensors (EMA weights with the lowest
 * validation loss), model.safetensors (final EMA weights, what `diffusion
 * sample` reads), ckpt-<step>.safetensors if asked, loss.png and sample
 * previews. A run_dir that holds a different run is refused unless resume or
 * force. Non-finite loss or gradients stop training with DFN_ERR_NUMERIC and a
 * message; the last good latest.safetensors is kept. */
dfn_status dfn_train(dfn_model *model, const dfn_dataset *train, const dfn_dataset *val,
                     const dfn_train_params *params);

/* ================================================================
 * classifier, FID and KID
 *   src/models/classifier.c  a small CNN trained on the dataset itself
 *   src/eval/fid.c           feature statistics, Frechet distance, FID
 *   src/eval/kid.c           kernel inception distance
 *
 * FID and KID compare two sets of images in the feature space of a network.
 * The papers use Inception-v3 on ImageNet; diffusion.c instead trains its own
 * small classifier on the labelled training data (`diffusion train-classifier`)
 * and uses its penultimate layer: numbers are comparable between runs that use
 * the same classifier checkpoint, not with published Inception FIDs.
 * ================================================================ */

/* conv3x3(C -> ch) -> GN+SiLU -> conv3x3/2(ch -> 2ch) -> GN+SiLU ->
 * conv3x3/2(2ch -> 4ch) -> GN+SiLU -> global average pool -> linear(4ch -> F)
 * -> SiLU [= the features] -> linear(F -> classes) [= the logits]. */
typedef struct {
    int in_channels;  /* C of the images */
    int height, width;/* H, W of the images */
    int channels;     /* first convolution's channels ch: 32 */
    int groups;       /* GroupNorm groups (must divide ch): 8 */
    int feature_dim;  /* F: 128 */
    int num_classes;  /* 10 */
} dfn_classifier_config;

/* The defaults above for images C x H x W and `num_classes` classes. */
void dfn_classifier_config_init(dfn_classifier_config *cfg, int in_channels, int height,
                                int width, int num_classes);
/* DFN_ERR_CONFIG naming the field for anything that cannot be built. */
dfn_status dfn_classifier_config_validate(const dfn_classifier_config *cfg);

typedef struct dfn_classifier dfn_classifier;

/* PyTorch's default initialisation (as dfn_model_new), drawn from `seed`. */
dfn_status dfn_classifier_new(dfn_classifier **out, const dfn_classifier_config *cfg,
                              uint64_t seed);
void dfn_classifier_free(dfn_classifier *c);
const dfn_classifier_config *dfn_classifier_get_config(const dfn_classifier *c);
/* Parameters and gradients: one flat array each; tensors named as a PyTorch
 * twin's state_dict: conv1, norm1, conv2, norm2, conv3, norm3, fc1, fc2. */
size_t dfn_classifier_num_params(const dfn_classifier *c);
float *dfn_classifier_params(dfn_classifier *c);
float *dfn_classifier_grads(dfn_classifier *c);
void dfn_classifier_zero_grad(dfn_classifier *c);

/* logits (B, classes) of images x (B, C, H, W); features (B, F) or NULL. The
 * activations are kept (x is copied) for one dfn_classifier_backward. */
void dfn_classifier_forward(dfn_classifier *c, float *logits, float *features, const float *x,
                            int batch);
/* Backward of the last forward: accumulates d(loss)/d(params) into the
 * gradients; dx (B, C, H, W) receives d(loss)/d(x) (overwritten) unless NULL. */
void dfn_classifier_backward(dfn_classifier *c, const float *dlogits, float *dx);
/* Features (n, F) of n images (n, C, H, W), computed in batches of 64. */
void dfn_classifier_features(dfn_classifier *c, float *features, const float *x, size_t n);

/* Mean softmax cross-entropy -1/B sum_b log softmax(logits_b)[y_b], computed
 * in double with the max subtracted; dlogits (B, classes) gets its gradient
 * (softmax - onehot) / B (overwritten) unless NULL. */
double dfn_softmax_cross_entropy(float *dlogits, const float *logits, const int *labels,
                                 int batch, int classes);

typedef struct {
    long steps;             /* optimizer steps: 3000 */
    int batch_size;         /* 128 */
    dfn_adamw_params adamw; /* lr 2e-3, weight decay 0.05 */
    long warmup;            /* linear warm-up steps: 100 */
    double lr_min_ratio;    /* cosine decay to lr * this at the last step: 0.01 */
    double clip;            /* max gradient norm (0: off): 1 */
    int hflip;              /* random horizontal flips: 0 */
    uint64_t seed;          /* batch order and flips: 0 */
    int log_every;          /* a progress line on stdout every K steps (0: quiet): 0 */
} dfn_classifier_train_params;

dfn_classifier_train_params dfn_classifier_train_params_init(void);
/* Trains c on the labelled images `train` with AdamW. DFN_ERR_ARG for
 * unlabelled data, labels >= the classifier's classes or images of another
 * shape; DFN_ERR_NUMERIC (naming the step) for a non-finite loss. */
dfn_status dfn_classifier_train(dfn_classifier *c, const dfn_dataset *train,
                                const dfn_classifier_train_params *p);
/* Fraction of ds classified correctly (argmax of the logits, first on ties). */
dfn_status dfn_classifier_accuracy(dfn_classifier *c, const dfn_dataset *ds, double *accuracy);

/* Safetensors with metadata "format" = "diffusion.c classifier", "kind" =
 * "classifier", "config" (JSON: kind, in_channels, height, width, channels,
 * groups, feature_dim, num_classes), "data_shape" ("[C, H, W]") and the
 * caller's extra (key, value) pairs (NULL-terminated list or NULL). Written
 * atomically. Loading checks every tensor and names the file in its messages
 * (a diffusion model checkpoint is refused as one). */
dfn_status dfn_classifier_save(const dfn_classifier *c, const char *path,
                               const char *const *extra_metadata);
dfn_status dfn_classifier_load(dfn_classifier **out, const char *path);
/* DFN_ERR_ARG unless ds holds images of the classifier's C x H x W, with a
 * message naming `what` ("samples") and the classifier's file if loaded. */
dfn_status dfn_classifier_check_data(const dfn_classifier *c, const dfn_dataset *ds,
                                     const char *what);

/* -- Frechet distance (Heusel et al. 2017, eq. 6; Dowson & Landau 1982) */

/* Mean (d) and unbiased covariance (d, d; divisor n - 1) of n feature vectors
 * (n, d), in double. DFN_ERR_ARG for n < 2, DFN_ERR_NUMERIC for a non-finite
 * value. */
dfn_status dfn_feature_stats(double *mean, double *cov, const float *features, size_t n, int d);
/* d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)), the trace of the root as
 * tr((S1^(1/2) S2 S1^(1/2))^(1/2)) (the same eigenvalues), both roots by
 * LAPACK's symmetric eigensolver with negative round-off eigenvalues clamped
 * to 0. Covariances must be symmetric positive semi-definite.
 * DFN_ERR_NUMERIC for non-finite input or a failed eigensolver. */
dfn_status dfn_frechet_distance(double *out, const double *mu1, const double *cov1,
                                const double *mu2, const double *cov2, int d);
/* The Frechet distance of two feature sets (n1, d) and (n2, d). DFN_ERR_ARG
 * unless each set has at least d + 1 vectors (a full-rank covariance is
 * possible), DFN_ERR_NUMERIC for a non-finite value. */
dfn_status dfn_fid_features(double *out, const float *f1, size_t n1, const float *f2, size_t n2,
                            int d);
/* FID of the images `samples` against `reference` in c's feature space.
 * Errors (DFN_ERR_ARG unless noted): sets of different shapes, images the
 * classifier was not trained for, fewer than F + 1 images in a set, a NaN or
 * Inf pixel (DFN_ERR_NUMERIC, naming the set, the image and the element). */
dfn_status dfn_fid(double *out, dfn_classifier *c, const dfn_dataset *samples,
                   const dfn_dataset *reference);

/* -- kernel inception distance (Binkowski et al. 2018, section 3 / appendix) */

typedef struct {
    int subset_size; /* m vectors drawn (without replacement) from each set per
                        subset, at most the smaller set's size: 1000 */
    int subsets;     /* subsets averaged: 100 */
    uint64_t seed;   /* the draws: 0 */
} dfn_kid_params;

dfn_kid_params dfn_kid_params_init(void);
/* Unbiased MMD^2 (Gretton et al. 2012, eq. 3) with the cubic polynomial kernel
 * k(x, y) = (x.y / d + 1)^3, on `subsets` pairs of random subsets of size
 * m = min(subset_size, n1, n2); *mean and *std (population, ddof 0, as
 * torch-fidelity) over the subsets. std may be NULL. DFN_ERR_ARG for m < 2 or
 * bad params, DFN_ERR_NUMERIC for a non-finite value. */
dfn_status dfn_kid_features(double *mean, double *std, const float *f1, size_t n1,
                            const float *f2, size_t n2, int d, const dfn_kid_params *p);
/* KID of images, errors as dfn_fid (except the count: each set needs 2). p NULL:
 * defaults. */
dfn_status dfn_kid(double *mean, double *std, dfn_classifier *c, const dfn_dataset *samples,
                   const dfn_dataset *reference, const dfn_kid_params *p);

/* ================================================================
 * end of: classifier, FID and KID

 * likelihood and metrics
 *   src/sample/denoiser.c      dfn_denoiser_vjp, the hook the exact likelihood needs
 *   src/sample/mixture.c       dfn_mixture_log_prob, the truth to test against
 *   src/eval/bound.c           the variational bound (Ho et al. 2020 eq. 5)
 *   src/eval/ode_likelihood.c  the exact likelihood through the probability-flow
 *                              ODE (Song et al. 2021 appendix D.2)
 *   src/eval/metrics.c         sample quality for vectors: MMD, sliced Wasserstein,
 *                              energy distance, mean and covariance errors
 *
 * Units. nats per sample, and bits/dim = nats / (dim ln 2). For continuous
 * vectors these are differential (they can be negative). For 8-bit data
 * scaled to [-1, 1] (x = k / 127.5 - 1) both estimators bound the discrete
 * -log P(k): the bound through its discretised decoder, the ODE through
 * uniform dequantisation (below), so the two are comparable with each other
 * and with the papers' bits/dim.
 * ================================================================ */

/* pred (batch, dim) = the out_kind prediction at x, time t (as dfn_denoiser_eval
 * gives it; pred may be NULL), and out (batch, dim) = J^T v row by row, J =
 * d pred / d x, through d->vjp (chunked by max_batch, guided as dfn_denoiser_eval
 * guides). Adds 1 to d->nfe. out must alias neither x nor v. DFN_ERR_ARG if
 * the denoiser has no vjp. */
dfn_status dfn_denoiser_vjp(dfn_denoiser *d, float *pred, float *out, dfn_prediction out_kind,
                            const float *x, const float *v, double t, int batch, size_t dim);

/* out[b] = log p_t(x_b) of the noised mixture, x_t = alpha x0 + sigma eps:
 * log sum_k w_k N(x; alpha m_k, alpha^2 S_k + sigma^2 I), in double; x (n, dim).
 * alpha = 1, sigma = 0 gives the data density itself. */
void dfn_mixture_log_prob(const dfn_mixture *m, double *out, const float *x, double alpha,
                          double sigma, int n);

/* ---------------------------------------------------------------- the variational bound */

/* The decoder -log p(x0 | x1) of the bound's last term. */
typedef enum {
    DFN_DECODER_GAUSSIAN, /* "gaussian": N(x0; mu, var) density, continuous vectors */
    DFN_DECODER_8BIT,     /* "8bit": discretised Gaussian on 256 bins of width 2/255
                             centred at k/127.5 - 1, the edge bins open to -inf and
                             +inf (Ho et al. 2020 eq. 13) */
    DFN_DECODER_COUNT
} dfn_decoder;
const char *dfn_decoder_name(dfn_decoder dec);
int dfn_decoder_from_name(const char *name); /* -1 + message */

typedef struct {
    dfn_ddpm_variance variance; /* the reverse variance: b~_t or b_t [beta-tilde] */
    dfn_decoder decoder;        /* [gaussian] */
    int t_samples;              /* 0: all T terms; K >= 2: L_T and L_0 exactly and
                                   K steps of t = 2..T drawn (one per draw for the
                                   whole batch) from 1/2 uniform + 1/2 prop. to
                                   1/(t-1), the KL sum estimated by importance
                                   weights (K + 1 evaluations) [0] */
    int clip_x0;                /* clip the x0 estimate to [-1, 1] (images) [0] */
} dfn_bound_params;

dfn_bound_params dfn_bound_params_init(void);

typedef struct {
    double bpd;         /* the bound, bits/dim, mean over the batch */
    double bpd_se;      /* standard error of bpd over the t draws (0: all terms) */
    double prior_bpd;   /* the batch means of the parts: L_T, */
    double kl_bpd;      /* sum_{t=2..T} L_{t-1} (estimated when sampled), */
    double decoder_bpd; /* L_0 */
    long nfe;           /* denoiser evaluations */
} dfn_bound_result;

/* The variational bound -log p(x0) <= L = L_T + sum_{t=2..T} L_{t-1} + L_0
 * (Ho et al. 2020 eq. 5; Sohl-Dickstein et al. 2015) of a denoiser on a
 * discrete schedule, for x0 (batch, dim):
 *   L_T     = KL(q(x_T | x0) || N(0, I))
 *   L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)), x_t ~ q(x_t | x0)
 *             (one draw from rng per term), p's mean the posterior mean
 *             (DDPM eq. 7) at the denoiser's x0 estimate, its variance fixed
 *   L_0     = -log p(x0 | x1), x1 ~ q(x1 | x0), mean the x0 estimate at step 1,
 *             variance exp(posterior_log_variance_clipped[0]) = b~_2
 *             (beta-tilde, as improved-diffusion) or b_1 (beta).
 * With a fixed variance the bound is tight only if it matches the true
 * reverse variance: for continuous data and an exact denoiser b_t is nearly
 * tight, while b~_t, too small at the first steps, adds about
 * dim sum_t 1/(4 t^2) nats (measured: 0.56 nats/dim on a 2-D mixture, T = 1000).
 * bpd (batch, or NULL) receives each sample's bound in bits/dim; res (or NULL)
 * the summary. Errors: DFN_ERR_ARG for a continuous process (use dfn_ode_nll),
 * a t_samples of 1 or < 0, values outside [-1, 1] with the 8-bit decoder;
 * DFN_ERR_NUMERIC for non-finite data or a non-finite bound. */
dfn_status dfn_variational_bound(dfn_denoiser *d, const float *x0, int batch, size_t dim,
                                 const dfn_bound_params *p, dfn_rng *rng, double *bpd,
                                 dfn_bound_result *res);

/* ---------------------------------------------------------------- exact likelihood */

/* How the ODE's divergence tr(d drift / d x) is computed. */
typedef enum {
    DFN_DIVERGENCE_EXACT,      /* "exact": dim VJPs with the basis vectors (small dim) */
    DFN_DIVERGENCE_RADEMACHER, /* "rademacher": Hutchinson (1989), probes of +-1 */
    DFN_DIVERGENCE_GAUSSIAN,   /* "gaussian": Hutchinson with N(0, I) probes */
    DFN_DIVERGENCE_COUNT
} dfn_divergence;
const char *dfn_divergence_name(dfn_divergence div);
int dfn_divergence_from_name(const char *name); /* -1 + message */

typedef struct {
    dfn_divergence divergence; /* [rademacher] */
    int probes;        /* Hutchinson probes per point, averaged, fixed for one
                          integration (Grathwohl et al. 2019) [1] */
    int draws;         /* independent integrations per point (new probes, new
                          dequantisation): >= 2 gives per-point standard errors [1] */
    double rtol, atol; /* RK45 tolerances [1e-5, 1e-5] (score_sde's) */
    int max_steps;     /* accepted + rejected steps per integration [10000] */
    double t_eps;      /* where the ODE starts: the data are taken as x(t_eps)
                          [0: 1e-5 for VP, sub-VP and VE (score_sde), 1e-3 for flow,
                          step 0 (the papers' t = 1) for a schedule] */
    int dequantize;    /* 8-bit data in [-1, 1]: x + (u - 1/2) 2/255, u ~ U(0, 1),
                          and add dim log 127.5 nats (the bins' volume) [0] */
} dfn_nll_params;

dfn_nll_params dfn_nll_params_init(void);

typedef struct {
    double nll;          /* mean over the batch of -log p, nats per sample */
    double bpd;          /* the same in bits/dim */
    double bpd_se;       /* standard error of bpd as an estimate of the data's
                            expected NLL: spread over points (and draws) / sqrt */
    double estimator_se; /* standard error of bpd from the estimator alone (probes
                            and dequantisation, for these points): from the spread
                            over draws; 0 for exact without dequantisation; NaN
                            for a random estimator with draws = 1 */
    long nfe;            /* VJP evaluations */
    int steps, rejected; /* RK45 steps of all integrations */
} dfn_nll_result;

/* The exact likelihood of x (batch, dim) under the probability-flow ODE (Song
 * et al. 2021 eq. 13 and appendix D.2, the instantaneous change of variables of
 * Chen et al. 2018):
 *   dx/dt = v(x, t) = f(t) x - 1/2 g(t)^2 grad log p_t(x),
 *   log p_t_eps(x(t_eps)) = log p_1(x(1)) + int_{t_eps}^1 div v(x(t), t) dt,
 * integrated from t_eps to 1 by Dormand-Prince 5(4) (one system for the batch);
 * p_1 = N(0, prior_std^2 I). The drift comes from d's prediction: VP, sub-VP,
 * VE through dfn_sde_coefficients; flow as the velocity itself; a discrete
 * schedule as a continuous VP process with log SNR linear between the steps
 * (dfn_denoiser_marginal), integrated in tau = -log SNR, where
 * dx/dtau = -sigma^2/2 x + sigma/2 eps is smooth, from step t_eps to step T-1.
 * Needs d->vjp. nll (batch, or NULL): -log p per point in nats (mean over
 * draws); nll_se (batch, or NULL): its standard error over draws (0 with one
 * draw). Errors: DFN_ERR_ARG for bad options or no vjp; DFN_ERR_NUMERIC for
 * non-finite data, a non-finite result or max_steps exceeded. */
dfn_status dfn_ode_nll(dfn_denoiser *d, const float *x, int batch, size_t dim,
                       const dfn_nll_params *p, dfn_rng *rng, double *nll, double *nll_se,
                       dfn_nll_result *res);

/* ---------------------------------------------------------------- sample quality (vectors) */

/* Two sets of vectors, x (n, dim_x) and y (m, dim_y), e.g. generated samples
 * and a reference set. Errors of every function below: DFN_ERR_ARG when
 * dim_x != dim_y, a dimension < 1, or fewer than 2 vectors in a set (the
 * unbiased estimators and covariances need 2; a full-rank covariance needs
 * dim + 1); DFN_ERR_NUMERIC for a NaN or Inf (the message names the set, the
 * row and the column). Sums are in double, in an order that depends on the
 * sizes only (any thread count gives the same bits). */

/* Unbiased MMD^2 (Gretton et al. 2012 eq. 3) with the Gaussian kernel
 * k(a, b) = exp(-|a - b|^2 / (2 h^2)). bandwidth h > 0 as given, or <= 0 for
 * the median heuristic: h = the median distance between distinct pairs of the
 * pooled set (its first 1000 vectors of each set at most). *used_bandwidth (or
 * NULL) receives h. Can be slightly negative for equal distributions. */
dfn_status dfn_mmd2(double *out, const float *x, size_t n, int dim_x, const float *y, size_t m,
                    int dim_y, double bandwidth, double *used_bandwidth);
/* Sliced 2-Wasserstein distance (Rabin et al. 2011; Bonneel et al. 2015):
 * sqrt(mean over `projections` directions theta, uniform on the sphere from
 * `seed`, of W_2^2 between the 1-D projections), each W_2^2 exact between the
 * two empirical distributions (sizes may differ). projections >= 1. */
dfn_status dfn_sliced_wasserstein(double *out, const float *x, size_t n, int dim_x,
                                  const float *y, size_t m, int dim_y, int projections,
                                  uint64_t seed);
/* Energy distance (Szekely & Rizzo 2013 eq. 2) 2 E|X - Y| - E|X - X'| - E|Y - Y'|,
 * the within-set means over distinct pairs (U-statistics). */
dfn_status dfn_energy_distance(double *out, const float *x, size_t n, int dim_x, const float *y,
                               size_t m, int dim_y);
/* |mean(x) - mean(y)|_2 and |Cov(x) - Cov(y)|_F (covariances with n - 1);
 * either output may be NULL. */
dfn_status dfn_moment_errors(double *mean_error, double *cov_error, const float *x, size_t n,
                             int dim_x, const float *y, size_t m, int dim_y);

typedef struct {
    double mmd2, mmd_bandwidth;
    double sliced_w2;
    double energy;
    double mean_error, cov_error;
} dfn_vector_metrics;

/* All of the above: median-heuristic MMD, 128 projections from `seed`. */
dfn_status dfn_vector_metrics_compute(dfn_vector_metrics *out, const float *x, size_t n,
                                      int dim_x, const float *y, size_t m, int dim_y,
                                      uint64_t seed);

/* ================================================================
 * end of: likelihood and metrics
 * ================================================================ */

#ifdef __cplusplus
}
#endif
#endif

/* diffusion/data.h - datasets: loaders (IDX, image folders, CSV), generators
 * (seed 000's curves, 2-D toys, Gaussian mixtures), preprocessing and seeded,
 * resumable batch iterators. */
#ifndef DIFFUSION_DATA_H
#define DIFFUSION_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/core.h"

DFN_BEGIN_DECLS

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
/* Every image file (.png .jpg .jpeg, any case; decoded by libpng and
 * libjpeg-turbo, CRCs checked, a header's size checked against the file's)
 * directly in dir, in byte order of file name, as N x C x size x size in
 * [-1, 1], unlabelled; RGB to gray as PIL's convert("L"), alpha dropped.
 * params NULL means the defaults. Errors name the file: no images in dir, an
 * unreadable or corrupt image, a header claiming more than the file holds, a channel count different from the
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

const char *dfn_toy_name(dfn_toy toy); /* "unknown" past the end */
int dfn_toy_from_name(const char *name); /* -1 and a message for an unknown name */
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
/* The peak signal-to-noise ratio of an image x against its reference, both n
 * values in [-1, 1] (peak-to-peak 2): 10 log10(4 / MSE) dB, the MSE computed
 * in double (floored at 1e-20: identical images give 206 dB). */
double dfn_psnr(const float *x, const float *ref, size_t n);
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
 * partial = 1. x = NULL (and y = NULL) passes over the batch without reading
 * it: the position moves on as if it had been read (a batch another process
 * reads, in data-parallel training). */
int dfn_batch_iter_next(dfn_batch_iter *it, float *x, int *y);
/* Epochs completed so far. */
uint64_t dfn_batch_iter_epoch(const dfn_batch_iter *it);
dfn_batch_state dfn_batch_iter_state(const dfn_batch_iter *it);
/* DFN_ERR_ARG if the state was saved for a dataset of another size or its
 * position is past the end. */
dfn_status dfn_batch_iter_restore(dfn_batch_iter *it, const dfn_batch_state *state);

DFN_END_DECLS

#endif

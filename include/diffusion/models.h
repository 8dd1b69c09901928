/* diffusion/models.h - the trainable networks, all behind one interface.
 *
 * A dfn_model is any network the library trains: the U-Net and the MLP that
 * denoise, the classifier whose features FID and KID use, and the KL
 * autoencoder whose latents latent diffusion models learn. Every kind has
 *   - a config (dfn_model_config: the kind, then that kind's own fields),
 *     written into checkpoints as JSON;
 *   - one flat parameter array with PyTorch state_dict names, and a gradient
 *     array of the same layout (llm.c style), so an optimizer, an EMA or a
 *     checkpoint treats every network alike;
 *   - a forward pass over a batch and a backward pass that accumulates the
 *     parameter gradients (and optionally gives d loss / d input);
 *   - safetensors checkpoints that PyTorch reads with load_state_dict.
 *
 *     dfn_model_config cfg;
 *     dfn_model_config_preset(&cfg, "fmnist-tiny");
 *     dfn_model *net;
 *     if (dfn_model_new(&net, &cfg, 42) != DFN_OK) { fprintf(stderr, "%s\n", dfn_last_error()); ... }
 *     // x (B,1,28,28) noisy images, t (B) timesteps -> eps (B,1,28,28)
 *     dfn_model_forward(net, eps, x, t, NULL, B, DFN_EVAL, NULL);
 *     dfn_model_save(net, "net.safetensors", NULL);
 *     dfn_model_free(net);
 *
 *   src/models/model.c        the interface: build, parameters, forward, backward
 *   src/models/config.c       configs, presets, validation, JSON
 *   src/models/checkpoint.c   safetensors checkpoints
 *   src/models/graph.c        the op graph of the convolutional networks
 *   src/models/unet.c mlp.c classifier.c autoencoder.c  one network each
 */
#ifndef DIFFUSION_MODELS_H
#define DIFFUSION_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/core.h"

DFN_BEGIN_DECLS

/* ---------------------------------------------------------------- configs */

typedef enum {
    DFN_MODEL_UNET,       /* "unet": images -> images, the DDPM U-Net (Ho et al. 2020) */
    DFN_MODEL_MLP,        /* "mlp": vectors -> vectors, a residual MLP, the same time embedding */
    DFN_MODEL_CLASSIFIER, /* "classifier": images -> class logits and features (FID, KID) */
    DFN_MODEL_AUTOENCODER, /* "autoencoder": images -> latents -> images, a KL autoencoder
                              (Rombach et al. 2022) for latent diffusion */
    DFN_MODEL_KIND_COUNT
} dfn_model_kind;

#define DFN_MAX_LEVELS 8

/* The U-Net: conv_in, per level num_res_blocks ResBlocks (GroupNorm, SiLU, conv,
 * timestep projection, dropout) with self-attention at attn_resolutions and a
 * downsampling conv, a middle block, the mirrored up path with skip
 * concatenations, GroupNorm + SiLU + conv_out. */
typedef struct {
    int in_channels;              /* image channels (1 gray, 3 RGB) */
    int resolution;               /* square images, resolution x resolution */
    int channels;                 /* base channels; the time embedding has 4x */
    int n_levels;                 /* entries used in ch_mult */
    int ch_mult[DFN_MAX_LEVELS];  /* channels of level l = channels * ch_mult[l] */
    int num_res_blocks;           /* ResBlocks per level on the way down */
    int n_attn;                   /* entries used in attn_resolutions */
    int attn_resolutions[DFN_MAX_LEVELS]; /* self-attention after ResBlocks at these sizes */
    int heads;                    /* attention heads (channels must divide) */
    int groups;                   /* GroupNorm groups */
    float norm_eps;               /* GroupNorm epsilon */
} dfn_unet_config;

/* The MLP: emb = time embedding [+ label]; h = inp(x); depth blocks
 * h += fc2(dropout(silu(fc1(silu(h)) + temb_proj(silu(emb))))); out(silu(h)). */
typedef struct {
    int dim;   /* vector length, at most 16384 */
    int width; /* hidden width */
    int depth; /* residual blocks */
} dfn_mlp_config;

/* The classifier: conv3x3(C -> ch) -> GN+SiLU -> conv3x3/2(ch -> 2ch) -> GN+SiLU
 * -> conv3x3/2(2ch -> 4ch) -> GN+SiLU, each stage followed by extra_convs more
 * conv3x3 (same channels) -> GN+SiLU; then the head: global average pool (or,
 * with flatten, the whole 4ch x H/4 x W/4 map) -> dropout (training only, p =
 * the model config's dropout) -> linear(-> F) -> SiLU [= the features] ->
 * linear(F -> classes) [= the logits]. GroupNorm eps 1e-5 (torch's default).
 * The defaults (0, 0, dropout 0) are the first classifier's pooled head;
 * train-classifier's evaluation classifier is flatten with dropout 0.3 (92.7%
 * test accuracy on Fashion-MNIST, docs/recipes.md). */
typedef struct {
    int in_channels;   /* C of the images */
    int height, width; /* H, W of the images */
    int channels;      /* first convolution's channels ch */
    int groups;        /* GroupNorm groups (must divide ch) */
    int feature_dim;   /* F */
    int time_embed;    /* 1: a classifier of noisy inputs p(c | x_t, t) (classifier guidance):
                          the U-Net's time embedding (sinusoidal(t, ch) -> temb.0 -> SiLU ->
                          temb.2, 4ch wide) added after each stage's first convolution
                          through temb_proj1..3 (as in the U-Net's ResBlocks); 0: no time
                          input (the FID classifier) [0] */
    int extra_convs;   /* stride-1 conv3x3 + GN + SiLU after each stage's first, 0..3,
                          named conv<stage>_<k> / norm<stage>_<k>, k = 2.. [0] */
    int flatten;       /* 1: the head reads the whole last feature map, 0: its mean [0] */
} dfn_classifier_config;

/* The KL autoencoder of latent diffusion (Rombach et al. 2022, appendix G; the
 * "KL-f4" family scaled down), as its reference code lays it out:
 *   encoder: conv_in; per level l num_res_blocks ResBlocks (GroupNorm, SiLU,
 *            conv, dropout, conv; no time input) and a stride-2 conv except at
 *            the last level; mid: ResBlock, attention, ResBlock; GroupNorm,
 *            SiLU, conv_out -> 2 z channels; quant_conv (1x1): the mean and the
 *            log-variance of a diagonal Gaussian q(z | x), log-variance clamped
 *            to [-30, 20];
 *   decoder: post_quant_conv (1x1); conv_in; mid as the encoder's; per level,
 *            deepest first, num_res_blocks + 1 ResBlocks and a nearest 2x
 *            upsampling + conv except at level 0; GroupNorm, SiLU, conv_out.
 * The downsampling factor is f = 2^(n_levels - 1): 28x28 with ch_mult (1,2,2)
 * has f = 4 and 4 x 7 x 7 latents. The stride-2 convs pad 1 on each side (the
 * reference pads 0 left, 1 right: same size, other alignment). */
typedef struct {
    int in_channels;              /* image channels */
    int resolution;               /* square images; f must divide it */
    int channels;                 /* base channels */
    int n_levels;                 /* entries used in ch_mult; f = 2^(n_levels - 1) */
    int ch_mult[DFN_MAX_LEVELS];  /* channels of level l = channels * ch_mult[l] */
    int num_res_blocks;           /* ResBlocks per level in the encoder (+1 in the decoder) */
    int latent_channels;          /* z */
    int groups;                   /* GroupNorm groups */
    float norm_eps;               /* GroupNorm epsilon */
} dfn_autoencoder_config;

typedef struct {
    dfn_model_kind kind;
    /* every kind */
    int num_classes; /* unet, mlp: 0 unconditional, else labels 0..n-1 plus n, the
                        null class of classifier-free guidance; classifier: the
                        classes it tells apart (>= 2) */
    float dropout;   /* unet, autoencoder (inside ResBlocks), mlp (inside blocks); classifier: 0 */
    /* the fields of `kind` (the others are ignored) */
    dfn_unet_config unet;
    dfn_mlp_config mlp;
    dfn_classifier_config classifier;
    dfn_autoencoder_config autoencoder;
} dfn_model_config;

/* "unet", "mlp", "classifier" and back (-1 and a message for an unknown name). */
const char *dfn_model_kind_name(dfn_model_kind kind);
int dfn_model_kind_from_name(const char *name);

/* Defaults of each kind (the other kinds' fields get theirs too):
 *   unet        1x28x28, ch 64, mult (1,2,2), 2 blocks, attention at 7, 1 head,
 *               32 groups, eps 1e-6, dropout 0.1 (the reference fmnist-small)
 *   mlp         dim 2, width 128, depth 3, dropout 0
 *   classifier  1x28x28, ch 32, 8 groups, 128 features, 10 classes
 *   autoencoder 1x28x28, ch 32, mult (1,2,2) (f = 4), 1 block, z 4, 8 groups,
 *               eps 1e-6, dropout 0 */
void dfn_model_config_init(dfn_model_config *cfg, dfn_model_kind kind);
/* Named presets: "fmnist-tiny", "fmnist-small" (the reference U-Nets), "mlp-2d",
 * "mlp-curves", "fmnist-classifier", "fmnist-ae" (the autoencoder's defaults),
 * "latent-f4" (a U-Net for its 4x7x7 latents). DFN_ERR_ARG with the list of names for an
 * unknown one. */
dfn_status dfn_model_config_preset(dfn_model_config *cfg, const char *name);
/* The presets, for listings: name and a one-line description (NULL past the end). */
int dfn_model_num_presets(void);
const char *dfn_model_preset_name(int i);
const char *dfn_model_preset_help(int i);
/* DFN_ERR_CONFIG with a message naming the field for anything that cannot be
 * built: channels not divisible by groups or heads, a resolution that does not
 * halve, attention at a resolution that never occurs, ... */
dfn_status dfn_model_config_validate(const dfn_model_config *cfg);
/* Config <-> JSON text (the checkpoint metadata "config"): {"kind": ..., then
 * the kind's fields}. The string is malloc'ed. Parsing rejects unknown,
 * missing and repeated keys, naming them, then validates. */
char *dfn_model_config_to_json(const dfn_model_config *cfg);
dfn_status dfn_model_config_from_json(dfn_model_config *cfg, const char *json);

/* ---------------------------------------------------------------- a model */

typedef struct dfn_model dfn_model;

/* Builds a model with PyTorch's default initialisation (U(-1/sqrt(fan_in), +)
 * for conv and linear layers, GroupNorm 1 and 0, embeddings N(0, 1)), drawn from
 * `seed` in table order. DFN_ERR_CONFIG for a config that does not validate. */
dfn_status dfn_model_new(dfn_model **out, const dfn_model_config *cfg, uint64_t seed);
void dfn_model_free(dfn_model *model);
const dfn_model_config *dfn_model_get_config(const dfn_model *model);
/* The checkpoint the model was loaded from, for messages; NULL if built in memory. */
const char *dfn_model_path(const dfn_model *model);

/* What one sample is, in and out: ndim 1 {D} for vectors, 3 {C, H, W} for
 * images (NCHW batches); the return value is ndim. A U-Net maps images to
 * images, an MLP vectors to vectors, a classifier images to {num_classes}
 * logits. */
int dfn_model_input_shape(const dfn_model *model, int dims[3]);
int dfn_model_output_shape(const dfn_model *model, int dims[3]);
/* Floats per sample of input and output (the products of the shapes). */
size_t dfn_model_input_size(const dfn_model *model);
size_t dfn_model_output_size(const dfn_model *model);
/* 1 if the model takes a time input t: the denoisers (unet, mlp) and a
 * time-conditioned classifier (time_embed). */
int dfn_model_takes_time(const dfn_model *model);
/* 1 if the model is a denoiser (unet, mlp): images or vectors in, the same out. */
int dfn_model_is_denoiser(const dfn_model *model);
/* DFN_ERR_ARG unless the model is of `kind`: "<what>: a <its kind>, not a <kind>"
 * (what: the file or role it was given as). */
dfn_status dfn_model_check_kind(const dfn_model *model, dfn_model_kind kind, const char *what);
/* DFN_ERR_ARG unless samples shaped dims[0..ndim) are what the model takes, with
 * a message naming `what` ("training data"), the shapes and the model's file. */
dfn_status dfn_model_check_input(const dfn_model *model, int ndim, const int *dims,
                                 const char *what);

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
/* 16 hex digits of a 64-bit hash (FNV-1a) of the parameter array's bytes (its
 * alignment padding, always zero, included): tells one set of weights from
 * another (what a latent model records of its autoencoder). */
void dfn_model_fingerprint(const dfn_model *model, char out[17]);
/* Index of a tensor by name, or -1. */
int dfn_model_find_tensor(const dfn_model *model, const char *name);

/* Floating-point operations of one forward pass per sample (1 multiply-add = 2),
 * counting convolutions, linear layers and attention products. */
double dfn_model_flops_per_sample(const dfn_model *model);

/* Forward pass over a batch: x (batch, input size) -> out (batch, output size).
 * t: (batch) times for models that take one (discrete steps or continuous
 * times, as floats), ignored (may be NULL) otherwise; y: (batch) labels for a
 * denoiser with classes, or NULL (a model with classes then uses the null
 * class); ignored by a classifier.
 * mode: DFN_EVAL ignores rng (may be NULL); DFN_TRAIN applies dropout with
 * numbers from rng (advanced) and keeps the activations for dfn_model_backward;
 * DFN_EVAL_GRAD is the eval function (no dropout) with its activations kept, for
 * gradients of the evaluated network: vector-Jacobian products (likelihoods),
 * classifier guidance. */
enum { DFN_EVAL = 0, DFN_TRAIN = 1, DFN_EVAL_GRAD = 2 };
void dfn_model_forward(dfn_model *model, float *out, const float *x, const float *t,
                       const int *y, int batch, int mode, dfn_rng *rng);
/* Backward of the last DFN_TRAIN or DFN_EVAL_GRAD forward: accumulates
 * d(loss)/d(params) into the gradient array. dout: d(loss)/d(out), shaped like
 * out. If dx is not NULL it receives d(loss)/d(x) (overwritten). */
void dfn_model_backward(dfn_model *model, const float *dout, float *dx);

/* Features: the penultimate activation of kinds that have one (a classifier:
 * feature_dim floats per sample; 0 for the others). dfn_model_features copies
 * those of the last forward, (batch, feature_dim); dfn_model_extract_features
 * runs eval forwards over n inputs x (n, input size) in batches of 64 and
 * writes (n, feature_dim); under MPI (core.h) every process must call it: they
 * share the batches and all receive every feature. */
int dfn_model_feature_dim(const dfn_model *model);
void dfn_model_features(const dfn_model *model, float *features);
void dfn_model_extract_features(dfn_model *model, float *features, const float *x, size_t n);

/* ---------------------------------------------------------------- autoencoders */

/* An autoencoder's latents: {z, resolution / f, resolution / f} and their
 * floats per sample. dfn_model_forward of an autoencoder reconstructs: DFN_EVAL
 * decodes the posterior mean; DFN_TRAIN decodes a draw z = mean + exp(logvar /
 * 2) eps, eps from rng (the reparameterisation, Kingma & Welling 2014), with
 * activations kept for dfn_model_backward. */
int dfn_autoencoder_latent_shape(const dfn_model *ae, int dims[3]);
size_t dfn_autoencoder_latent_size(const dfn_model *ae);
/* q(z | x) of x (batch, input size): mean and logvar (batch, latent size),
 * either may be NULL; eval mode, any batch. */
void dfn_autoencoder_encode(dfn_model *ae, float *mean, float *logvar, const float *x, int batch);
/* x (batch, input size) = decoder(z), z (batch, latent size); eval mode. */
void dfn_autoencoder_decode(dfn_model *ae, float *x, const float *z, int batch);
/* The scale that brings the latents to unit variance (Stable Diffusion's
 * 0.18215): 1 / the standard deviation of the posterior means over the data,
 * recorded in the checkpoint by dfn_train (metadata "latent_scale"); 0 until
 * then. Diffusion runs on scale * z and decodes z / scale. */
double dfn_autoencoder_scale(const dfn_model *ae);
void dfn_autoencoder_set_scale(dfn_model *ae, double scale);
/* Measures that scale over n images x (n, input size): 1 / sqrt(mean of the
 * posterior means' squares - their mean squared), over every latent value,
 * accumulated in double in a fixed order. */
double dfn_autoencoder_measure_scale(dfn_model *ae, const float *x, size_t n);

/* ---------------------------------------------------------------- checkpoints */

/* A checkpoint is a safetensors file that PyTorch reads with
 * safetensors.torch.load_file and load_state_dict: one F32 tensor per parameter
 * tensor (PyTorch names), and metadata "format" = "diffusion.c checkpoint",
 * "format_version" = "2", "config" (dfn_model_config_to_json), plus the
 * caller's extra (key, value) pairs (NULL-terminated list, or NULL; the three
 * keys above are reserved). Saving writes "<path>.tmp" and renames it. Loading
 * builds the model of the stored config and insists that file and model agree
 * tensor by tensor (presence, dtype, shape, nothing extra) and that every
 * weight is finite; messages name the file and the tensor. Files of format
 * version 1 (models, and "diffusion.c classifier" files) load too. */
dfn_status dfn_model_save(const dfn_model *model, const char *path,
                          const char *const *extra_metadata);
dfn_status dfn_model_load(dfn_model **out, const char *path);

DFN_END_DECLS

#endif

/* model.h - the framework every network of src/models is built on: the
 * parameter table (named views into one flat allocation, PyTorch state_dict
 * names), activation arenas, and the table of a kind's functions behind the
 * public dfn_model_* calls. Private to src/models.
 *
 * A kind (unet.c, mlp.c, classifier.c) implements dfn_model_ops:
 *   build     fill m->tab (its tensors, in order) and m->impl from m->cfg;
 *   take      take every activation buffer of a batch of B from m->acts and
 *             m->grad_acts, always in the same order (with NULL bases it only
 *             counts: that is how the arenas are sized, once per batch size);
 *   forward   out = f(x, t, y) over the buffers taken; `training` applies
 *             dropout with numbers from rng (advanced);
 *   backward  of the last kept forward (m->last_batch): accumulates into
 *             m->grads, writes dx (B, input size) unless NULL;
 *   macs      multiply-accumulates of one forward per sample;
 *   features  the penultimate activation of the last forward, or NULL for a
 *             kind without features (the op may be NULL).
 * model.c does everything else: allocation and initialisation of the
 * parameters, sizing the arenas, dispatch, shapes. Adding a network is one
 * file with these functions plus its config in config.c. */
#ifndef DFN_MODEL_H
#define DFN_MODEL_H

#include <stddef.h>

#include "core/core.h"
#include "diffusion/models.h"

#define DFN_MAX_TENSOR_NAME 64

/* How a tensor is initialised (PyTorch's defaults, see params.c). */
typedef enum { INIT_UNIFORM_FAN_IN, INIT_ONES, INIT_ZEROS, INIT_NORMAL } dfn_init_kind;

/* One named parameter tensor: a view into the flat parameter array. */
typedef struct {
    char name[DFN_MAX_TENSOR_NAME];
    int ndim;
    int shape[4];
    size_t offset; /* in floats, into params / grads */
    size_t numel;
    dfn_init_kind init;
    int fan_in;
} dfn_tensor_info;

typedef struct {
    dfn_tensor_info *t;
    int count, cap;
    size_t total; /* floats */
} dfn_param_table;

/* Appends a tensor and returns its offset; the name is printf-formatted. */
size_t dfn_param_add(dfn_param_table *tab, dfn_init_kind init, int fan_in, int ndim,
                     const int *shape, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Offsets of a layer's weight and bias, named "<prefix>.weight" and "<prefix>.bias". */
typedef struct {
    size_t w, b;
} dfn_wb;
dfn_wb dfn_param_conv(dfn_param_table *tab, const char *prefix, int oc, int ic, int k);
dfn_wb dfn_param_linear(dfn_param_table *tab, const char *prefix, int out, int in);
dfn_wb dfn_param_norm(dfn_param_table *tab, const char *prefix, int c);
/* Every tensor of the table initialised into params, drawn from one Philox
 * stream of `seed` in table order. */
void dfn_param_init(const dfn_param_table *tab, float *params, uint64_t seed);

/* Activations: a bump allocator over one buffer that is sized for a batch by a
 * first "measuring" pass and then reused. */
typedef struct {
    float *base;
    size_t used, cap; /* floats */
} dfn_arena;
float *dfn_arena_take(dfn_arena *a, size_t n); /* base == NULL: only counts */

typedef struct dfn_model_ops dfn_model_ops;

struct dfn_model {
    dfn_model_config cfg;
    const dfn_model_ops *ops;
    dfn_param_table tab;
    float *params, *grads;
    int capacity;        /* batch the activation arenas are sized for */
    dfn_arena acts;      /* forward activations (and what backward needs) */
    dfn_arena grad_acts; /* gradients of activations */
    int last_batch;      /* batch of the last kept forward, 0 if none */
    int forward_batch;   /* batch of the last forward of any mode, 0 if none */
    void *impl;          /* the kind's own state */
    char *path;          /* the checkpoint it was loaded from, or NULL */
};

struct dfn_model_ops {
    void (*build)(dfn_model *m);
    void (*free_impl)(dfn_model *m);
    void (*take)(dfn_model *m, int B);
    void (*forward)(dfn_model *m, float *out, const float *x, const float *t, const int *y, int B,
                    int training, dfn_rng *rng);
    void (*backward)(dfn_model *m, const float *dout, float *dx);
    double (*macs)(const dfn_model *m);
    const float *(*features)(const dfn_model *m);
};

extern const dfn_model_ops dfn_unet_ops, dfn_mlp_ops, dfn_classifier_ops, dfn_autoencoder_ops;

/* Sizes the activation arenas for a batch of B (once per larger batch) and has
 * the kind take its buffers: what dfn_model_forward does before the kind's
 * forward, for kinds with entry points of their own (the autoencoder's
 * encode and decode). */
void dfn_model_prepare(dfn_model *m, int B);

/* The per-sample shapes of a (valid) config: input and output, ndim 1 or 3. */
int dfn_config_input_shape(const dfn_model_config *cfg, int dims[3]);
int dfn_config_output_shape(const dfn_model_config *cfg, int dims[3]);

/* Shared pieces of the denoisers' time conditioning (time_embed.c):
 * emb = temb.2(silu(temb.0(sinusoidal(t, dim)))) + label_emb(y), returned as silu(emb),
 * the form every block consumes. */
typedef struct {
    dfn_wb lin0, lin2;
    size_t label; /* offset of label_emb.weight, or (size_t)-1 */
    int dim, emb_dim, num_classes;
    /* activations (set per forward) */
    float *sin_emb, *h0, *s0, *emb, *silu_emb, *label_rows;
    int *labels;
    float *d_silu_emb; /* blocks accumulate into it */
    float *d_emb, *d_s0, *d_h0;
} dfn_time_embed;

void dfn_time_embed_params(dfn_time_embed *te, dfn_param_table *tab, int dim, int emb_dim,
                           int num_classes);
/* Takes its activation buffers from m's arenas (also in the sizing pass). */
void dfn_time_embed_take(dfn_time_embed *te, dfn_model *m, int B);
void dfn_time_embed_forward(dfn_time_embed *te, dfn_model *m, const float *t, const int *y, int B);
void dfn_time_embed_backward(dfn_time_embed *te, dfn_model *m, int B);

/* How many parameters the network of a valid config has, without allocating
 * them (a checkpoint's config is checked against its tensors before). */
size_t dfn_model_config_num_params(const dfn_model_config *cfg);

#endif

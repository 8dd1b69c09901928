/* model.h - what the U-Net and the MLP share: the parameter table (one flat
 * allocation, PyTorch state_dict names), activation arenas, and the dispatch
 * behind the public dfn_model_* functions. */
#ifndef DFN_MODEL_H
#define DFN_MODEL_H

#include <stddef.h>

#include "core.h"

#define DFN_MAX_TENSOR_NAME 64

/* One named parameter tensor: a view into the flat parameter array. */
typedef struct {
    char name[DFN_MAX_TENSOR_NAME];
    int ndim;
    int shape[4];
    size_t offset; /* in floats, into params / grads */
    size_t numel;
    /* PyTorch default initialisation of the tensor (see param_table_init). */
    enum { INIT_UNIFORM_FAN_IN, INIT_ONES, INIT_ZEROS, INIT_NORMAL } init;
    int fan_in;
} dfn_tensor_info;

typedef struct {
    dfn_tensor_info *t;
    int count, cap;
    size_t total; /* floats */
} dfn_param_table;

/* Appends a tensor and returns its offset; the name is printf-formatted. */
size_t dfn_param_add(dfn_param_table *tab, int init, int fan_in, int ndim, const int *shape,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Offsets of a layer's weight and bias, named "<prefix>.weight" and "<prefix>.bias". */
typedef struct {
    size_t w, b;
} dfn_wb;
dfn_wb dfn_param_conv(dfn_param_table *tab, const char *prefix, int oc, int ic, int k);
dfn_wb dfn_param_linear(dfn_param_table *tab, const char *prefix, int out, int in);
dfn_wb dfn_param_norm(dfn_param_table *tab, const char *prefix, int c);

/* Activations: a bump allocator over one buffer that is sized for a batch by a
 * first "measuring" pass and then reused. */
typedef struct {
    float *base;
    size_t used, cap; /* floats */
} dfn_arena;
float *dfn_arena_take(dfn_arena *a, size_t n); /* base == NULL: only counts */

struct dfn_model {
    dfn_model_config cfg;
    dfn_param_table tab;
    float *params, *grads;
    int capacity;        /* batch the activation arenas are sized for */
    dfn_arena acts;      /* forward activations (and what backward needs) */
    dfn_arena grad_acts; /* gradients of activations */
    int last_batch;      /* batch of the last training forward, 0 if none */
    void *impl;          /* the U-Net's or MLP's own state */
};

/* The kinds' hooks, implemented in unet.c and mlp.c:
 *   build:   fill m->tab and m->impl from m->cfg;
 *   take:    take every activation buffer of a batch of B from m->acts and
 *            m->grad_acts, always in the same order (with NULL bases it only
 *            counts: that is how the arenas are sized);
 *   forward, backward: compute over the buffers taken. */
void dfn_unet_build(dfn_model *m);
void dfn_unet_free(dfn_model *m);
void dfn_unet_take(dfn_model *m, int B);
void dfn_unet_forward(dfn_model *m, float *out, const float *x, const float *t, const int *y,
                      int B, int training, dfn_rng *rng);
void dfn_unet_backward(dfn_model *m, const float *dout, float *dx);

void dfn_mlp_build(dfn_model *m);
void dfn_mlp_free(dfn_model *m);
void dfn_mlp_take(dfn_model *m, int B);
void dfn_mlp_forward(dfn_model *m, float *out, const float *x, const float *t, const int *y,
                     int B, int training, dfn_rng *rng);
void dfn_mlp_backward(dfn_model *m, const float *dout, float *dx);

double dfn_unet_macs(const dfn_model *m);
double dfn_mlp_macs(const dfn_model *m);

/* Shared pieces of both networks' time conditioning:
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

#endif

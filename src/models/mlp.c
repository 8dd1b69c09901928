/* mlp.c - the denoiser for vectors (a 50-dim curve, 2-D points): a residual MLP
 * conditioned like the U-Net.
 *
 *   emb = temb.2(silu(temb.0(sinusoidal(t, W)))) [+ label_emb(y)]
 *   h_0 = inp(x)
 *   block i:  u = fc1(silu(h_i)) + temb_proj(silu(emb))
 *             h_{i+1} = h_i + fc2(dropout(silu(u)))
 *   out = out(silu(h_depth))
 *
 * Names (inp, blocks.{i}.fc1, ...) are the PyTorch twin's state_dict keys.
 */
#include <string.h>

#include "models/model.h"
#include "nn/nn.h"

typedef struct {
    dfn_wb fc1, temb_proj, fc2;
    float *s, *u, *a; /* silu(h_i), pre-activation u, dropout(silu(u)) */
    uint64_t drop_seed, drop_block;
    int dropped;
} mlp_block;

typedef struct {
    dfn_time_embed te;
    dfn_wb inp, outl;
    mlp_block *blocks;
    float **h, **dh;  /* depth + 1 nodes (B, W) and their gradients */
    float *s_out;     /* silu(h_depth) */
    float *x;         /* copy of the input */
    float *t0, *t1;   /* backward temporaries (B, max(W, dim)) */
} mlp;

static void build(dfn_model *m) {
    const dfn_mlp_config *c = &m->cfg.mlp;
    mlp *n = calloc(1, sizeof *n);
    DFN_ASSERT(n);
    m->impl = n;
    int W = c->width;
    dfn_time_embed_params(&n->te, &m->tab, W, W, m->cfg.num_classes);
    n->inp = dfn_param_linear(&m->tab, "inp", W, c->dim);
    n->blocks = calloc((size_t)c->depth, sizeof *n->blocks);
    n->h = calloc((size_t)c->depth + 1, sizeof *n->h);
    n->dh = calloc((size_t)c->depth + 1, sizeof *n->dh);
    DFN_ASSERT(n->blocks && n->h && n->dh);
    char name[DFN_MAX_TENSOR_NAME];
    for (int i = 0; i < c->depth; i++) {
        snprintf(name, sizeof name, "blocks.%d.fc1", i);
        n->blocks[i].fc1 = dfn_param_linear(&m->tab, name, W, W);
        snprintf(name, sizeof name, "blocks.%d.temb_proj", i);
        n->blocks[i].temb_proj = dfn_param_linear(&m->tab, name, W, W);
        snprintf(name, sizeof name, "blocks.%d.fc2", i);
        n->blocks[i].fc2 = dfn_param_linear(&m->tab, name, W, W);
    }
    n->outl = dfn_param_linear(&m->tab, "out", c->dim, W);
}

static void free_impl(dfn_model *m) {
    mlp *n = m->impl;
    if (!n) return;
    free(n->blocks);
    free(n->h);
    free(n->dh);
    free(n);
    m->impl = NULL;
}

static void take(dfn_model *m, int B) {
    mlp *n = m->impl;
    const dfn_mlp_config *c = &m->cfg.mlp;
    size_t bw = (size_t)B * c->width, bmax = (size_t)B * DFN_MAX(c->width, c->dim);
    dfn_time_embed_take(&n->te, m, B);
    n->x = dfn_arena_take(&m->acts, (size_t)B * c->dim);
    for (int i = 0; i <= c->depth; i++) {
        n->h[i] = dfn_arena_take(&m->acts, bw);
        n->dh[i] = dfn_arena_take(&m->grad_acts, bw);
    }
    for (int i = 0; i < c->depth; i++) {
        n->blocks[i].s = dfn_arena_take(&m->acts, bw);
        n->blocks[i].u = dfn_arena_take(&m->acts, bw);
        n->blocks[i].a = dfn_arena_take(&m->acts, bw);
    }
    n->s_out = dfn_arena_take(&m->acts, bw);
    n->t0 = dfn_arena_take(&m->grad_acts, bmax);
    n->t1 = dfn_arena_take(&m->grad_acts, bmax);
}

static void forward(dfn_model *m, float *out, const float *x, const float *t, const int *y,
                     int B, int training, dfn_rng *rng) {
    mlp *n = m->impl;
    const dfn_mlp_config *c = &m->cfg.mlp;
    const float *P = m->params;
    int W = c->width;
    size_t bw = (size_t)B * W;
    dfn_time_embed_forward(&n->te, m, t, y, B);
    memcpy(n->x, x, sizeof(float) * (size_t)B * c->dim);
    dfn_linear_forward(n->h[0], x, P + n->inp.w, P + n->inp.b, B, c->dim, W);
    for (int i = 0; i < c->depth; i++) {
        mlp_block *b = &n->blocks[i];
        /* u = fc1(silu(h)) + temb_proj(silu(emb)) */
        dfn_silu_forward(b->s, n->h[i], bw);
        dfn_linear_forward(b->u, b->s, P + b->fc1.w, P + b->fc1.b, B, W, W);
        dfn_linear_forward(b->a, n->te.silu_emb, P + b->temb_proj.w, P + b->temb_proj.b, B, W, W);
        for (size_t j = 0; j < bw; j++) b->u[j] += b->a[j];
        /* h_{i+1} = h_i + fc2(dropout(silu(u))) */
        dfn_silu_forward(b->a, b->u, bw);
        b->dropped = training && m->cfg.dropout > 0.0f;
        if (b->dropped) {
            DFN_ASSERT(rng);
            b->drop_seed = rng->seed;
            b->drop_block = rng->counter;
            dfn_dropout_forward(b->a, b->a, bw, m->cfg.dropout, rng->seed, rng->counter);
            rng->counter += (bw + 3) / 4;
        }
        dfn_linear_forward(n->h[i + 1], b->a, P + b->fc2.w, P + b->fc2.b, B, W, W);
        for (size_t j = 0; j < bw; j++) n->h[i + 1][j] += n->h[i][j];
    }
    dfn_silu_forward(n->s_out, n->h[c->depth], bw);
    dfn_linear_forward(out, n->s_out, P + n->outl.w, P + n->outl.b, B, W, c->dim);
}

static void backward(dfn_model *m, const float *dout, float *dx) {
    mlp *n = m->impl;
    const dfn_mlp_config *c = &m->cfg.mlp;
    const float *P = m->params;
    float *G = m->grads;
    int B = m->last_batch, W = c->width;
    size_t bw = (size_t)B * W;
    /* out = out(silu(h_L)) */
    memset(n->t0, 0, bw * sizeof(float));
    dfn_linear_backward(n->t0, G + n->outl.w, G + n->outl.b, dout, n->s_out, P + n->outl.w, B, W, c->dim);
    memset(n->dh[c->depth], 0, bw * sizeof(float));
    dfn_silu_backward(n->dh[c->depth], n->t0, n->h[c->depth], bw);
    for (int i = c->depth - 1; i >= 0; i--) {
        mlp_block *b = &n->blocks[i];
        /* h_{i+1} = h_i + fc2(a): the identity path first */
        memcpy(n->dh[i], n->dh[i + 1], bw * sizeof(float));
        memset(n->t0, 0, bw * sizeof(float));
        dfn_linear_backward(n->t0, G + b->fc2.w, G + b->fc2.b, n->dh[i + 1], b->a, P + b->fc2.w, B, W, W);
        float *d_a = n->t0;
        if (b->dropped) {
            memset(n->t1, 0, bw * sizeof(float));
            dfn_dropout_backward(n->t1, n->t0, bw, m->cfg.dropout, b->drop_seed, b->drop_block);
            d_a = n->t1;
        }
        float *d_u = d_a == n->t0 ? n->t1 : n->t0;
        memset(d_u, 0, bw * sizeof(float));
        dfn_silu_backward(d_u, d_a, b->u, bw);
        /* u = fc1(s) + temb_proj(silu(emb)) */
        dfn_linear_backward(n->te.d_silu_emb, G + b->temb_proj.w, G + b->temb_proj.b, d_u,
                            n->te.silu_emb, P + b->temb_proj.w, B, W, W);
        float *d_s = d_u == n->t0 ? n->t1 : n->t0;
        memset(d_s, 0, bw * sizeof(float));
        dfn_linear_backward(d_s, G + b->fc1.w, G + b->fc1.b, d_u, b->s, P + b->fc1.w, B, W, W);
        dfn_silu_backward(n->dh[i], d_s, n->h[i], bw);
    }
    if (dx) memset(dx, 0, sizeof(float) * (size_t)B * c->dim);
    dfn_linear_backward(dx, G + n->inp.w, G + n->inp.b, n->dh[0], n->x, P + n->inp.w, B, c->dim, W);
    dfn_time_embed_backward(&n->te, m, B);
}

static double macs(const dfn_model *m) {
    const dfn_mlp_config *c = &m->cfg.mlp;
    double W = c->width;
    return 2 * W * W + W * c->dim + c->depth * 3 * W * W + W * c->dim;
}

const dfn_model_ops dfn_mlp_ops = {build, free_impl, take, forward, backward, macs, NULL};

/* graph.c - convolutional networks as a list of ops over nodes (graph.h):
 * building, the activation buffers of a batch, forward, backward, and the
 * operation count. The U-Net (unet.c) and the autoencoder (autoencoder.c) are
 * graphs; their files only say which ops, in which order, under which names. */
#include <string.h>

#include "models/graph.h"
#include "nn/nn.h"

static int add_node(dfn_graph *u, int C, int res) {
    if (u->n_nodes == u->cap_nodes) {
        u->cap_nodes = u->cap_nodes ? 2 * u->cap_nodes : 32;
        u->nodes = realloc(u->nodes, (size_t)u->cap_nodes * sizeof *u->nodes);
        DFN_ASSERT(u->nodes);
    }
    dfn_graph_node *n = &u->nodes[u->n_nodes];
    memset(n, 0, sizeof *n);
    n->C = C;
    n->res = res;
    if ((size_t)C * res * res > u->max_chw) u->max_chw = (size_t)C * res * res;
    if (C > u->max_c) u->max_c = C;
    return u->n_nodes++;
}

static dfn_graph_op *add_op(dfn_graph *u, dfn_graph_op_kind kind, int in, int cin, int cout, int res) {
    if (u->n_ops == u->cap_ops) {
        u->cap_ops = u->cap_ops ? 2 * u->cap_ops : 32;
        u->ops = realloc(u->ops, (size_t)u->cap_ops * sizeof *u->ops);
        DFN_ASSERT(u->ops);
    }
    dfn_graph_op *o = &u->ops[u->n_ops++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->in = in;
    o->cin = cin;
    o->cout = cout;
    o->res = res;
    return o;
}

/* ResBlock (reference ResBlock): norm1, conv1, [temb_proj], norm2, conv2, [shortcut]. */
int dfn_graph_resblock(dfn_graph *u, dfn_param_table *tab, const char *prefix, int in, int cout) {
    int cin = u->nodes[in].C, res = u->nodes[in].res;
    char name[DFN_MAX_TENSOR_NAME];
    dfn_graph_op *o = add_op(u, OP_RES, in, cin, cout, res);
    snprintf(name, sizeof name, "%s.norm1", prefix);
    o->norm1 = dfn_param_norm(tab, name, cin);
    snprintf(name, sizeof name, "%s.conv1", prefix);
    o->conv1 = dfn_param_conv(tab, name, cout, cin, 3);
    if (u->temb_dim > 0) {
        snprintf(name, sizeof name, "%s.temb_proj", prefix);
        o->temb_proj = dfn_param_linear(tab, name, cout, u->temb_dim);
    }
    snprintf(name, sizeof name, "%s.norm2", prefix);
    o->norm2 = dfn_param_norm(tab, name, cout);
    snprintf(name, sizeof name, "%s.conv2", prefix);
    o->conv2 = dfn_param_conv(tab, name, cout, cout, 3);
    o->has_skip = cin != cout;
    if (o->has_skip) {
        snprintf(name, sizeof name, "%s.%s", prefix, u->shortcut ? u->shortcut : "skip");
        o->skip = dfn_param_conv(tab, name, cout, cin, 1);
    }
    return o->out = add_node(u, cout, res);
}

/* AttnBlock (reference AttnBlock): norm, q, k, v, proj_out; out = x + proj_out(attn). */
int dfn_graph_attn(dfn_graph *u, dfn_param_table *tab, const char *prefix, int in) {
    int C = u->nodes[in].C, res = u->nodes[in].res;
    char name[DFN_MAX_TENSOR_NAME];
    dfn_graph_op *o = add_op(u, OP_ATTN, in, C, C, res);
    snprintf(name, sizeof name, "%s.norm", prefix);
    o->norm1 = dfn_param_norm(tab, name, C);
    snprintf(name, sizeof name, "%s.q", prefix);
    o->q = dfn_param_conv(tab, name, C, C, 1);
    snprintf(name, sizeof name, "%s.k", prefix);
    o->kk = dfn_param_conv(tab, name, C, C, 1);
    snprintf(name, sizeof name, "%s.v", prefix);
    o->v = dfn_param_conv(tab, name, C, C, 1);
    snprintf(name, sizeof name, "%s.proj_out", prefix);
    o->proj = dfn_param_conv(tab, name, C, C, 1);
    return o->out = add_node(u, C, res);
}

int dfn_graph_conv(dfn_graph *u, dfn_param_table *tab, const char *prefix, int in, int cout, int k,
                    int stride) {
    int cin = u->nodes[in].C, res = u->nodes[in].res;
    dfn_graph_op *o = add_op(u, OP_CONV, in, cin, cout, res);
    o->k = k;
    o->stride = stride;
    o->conv = dfn_param_conv(tab, prefix, cout, cin, k);
    return o->out = add_node(u, cout, (res + 2 * (k / 2) - k) / stride + 1);
}

int dfn_graph_upsample(dfn_graph *u, dfn_param_table *tab, const char *prefix, int in) {
    int C = u->nodes[in].C, res = u->nodes[in].res;
    dfn_graph_op *o = add_op(u, OP_UP, in, C, C, res);
    o->conv = dfn_param_conv(tab, prefix, C, C, 3);
    if ((size_t)C * 4 * res * res > u->max_chw) u->max_chw = (size_t)C * 4 * res * res;
    return o->out = add_node(u, C, 2 * res);
}

int dfn_graph_concat(dfn_graph *u, int a, int b) {
    int Ca = u->nodes[a].C, Cb = u->nodes[b].C, res = u->nodes[a].res;
    DFN_ASSERT(u->nodes[b].res == res);
    dfn_graph_op *o = add_op(u, OP_CAT, a, Ca, Ca + Cb, res);
    o->in2 = b;
    return o->out = add_node(u, Ca + Cb, res);
}

int dfn_graph_input(dfn_graph *u, int C, int res) {
    DFN_ASSERT(u->n_nodes == 0);
    return add_node(u, C, res);
}

int dfn_graph_out(dfn_graph *u, dfn_param_table *tab, const char *norm_name,
                  const char *conv_name, int in, int cout) {
    int C = u->nodes[in].C, res = u->nodes[in].res;
    dfn_graph_op *o = add_op(u, OP_OUT, in, C, cout, res);
    o->norm1 = dfn_param_norm(tab, norm_name, C);
    o->conv = dfn_param_conv(tab, conv_name, cout, C, 3);
    return o->out = add_node(u, cout, res);
}

void dfn_graph_free(dfn_graph *u) {
    free(u->nodes);
    free(u->ops);
    u->nodes = NULL;
    u->ops = NULL;
    u->n_nodes = u->cap_nodes = u->n_ops = u->cap_ops = 0;
}

void dfn_graph_take(dfn_graph *u, dfn_model *m, int B) {
    dfn_arena *A = &m->acts, *G = &m->grad_acts;
    for (int i = 0; i < u->n_nodes; i++) {
        dfn_graph_node *n = &u->nodes[i];
        size_t sz = (size_t)B * n->C * n->res * n->res;
        n->act = dfn_arena_take(A, sz);
        n->grad = dfn_arena_take(G, sz);
    }
    for (int i = 0; i < 4; i++) u->tmp[i] = dfn_arena_take(G, (size_t)B * u->max_chw);
    u->dtp = dfn_arena_take(G, (size_t)B * u->max_c);
    for (int i = 0; i < u->n_ops; i++) {
        dfn_graph_op *o = &u->ops[i];
        size_t hw = (size_t)o->res * o->res;
        size_t stats = (size_t)B * u->groups;
        switch (o->kind) {
        case OP_RES:
            o->mean1 = dfn_arena_take(A, stats);
            o->rstd1 = dfn_arena_take(A, stats);
            o->a1 = dfn_arena_take(A, (size_t)B * o->cin * hw);
            o->h1 = dfn_arena_take(A, (size_t)B * o->cout * hw);
            if (u->temb_dim > 0) o->tp = dfn_arena_take(A, (size_t)B * o->cout);
            o->mean2 = dfn_arena_take(A, stats);
            o->rstd2 = dfn_arena_take(A, stats);
            o->a2 = dfn_arena_take(A, (size_t)B * o->cout * hw);
            break;
        case OP_ATTN:
            o->mean1 = dfn_arena_take(A, stats);
            o->rstd1 = dfn_arena_take(A, stats);
            o->a1 = dfn_arena_take(A, (size_t)B * o->cin * hw);
            o->qa = dfn_arena_take(A, (size_t)B * o->cin * hw);
            o->ka = dfn_arena_take(A, (size_t)B * o->cin * hw);
            o->va = dfn_arena_take(A, (size_t)B * o->cin * hw);
            o->att = dfn_arena_take(A, (size_t)B * u->heads * hw * hw);
            o->o = dfn_arena_take(A, (size_t)B * o->cin * hw);
            break;
        case OP_UP:
            o->up = dfn_arena_take(A, (size_t)B * o->cin * 4 * hw);
            break;
        case OP_OUT:
            o->mean1 = dfn_arena_take(A, stats);
            o->rstd1 = dfn_arena_take(A, stats);
            o->a1 = dfn_arena_take(A, (size_t)B * o->cin * hw);
            break;
        case OP_CONV:
        case OP_CAT:
            break;
        }
    }
}

/* Zeroing a gradient buffer, both threads on it. */
#define ZERO_CHUNK ((size_t)1 << 16)

static void zero(float *p, size_t n) {
    const int64_t nt = (int64_t)((n + ZERO_CHUNK - 1) / ZERO_CHUNK);
#pragma omp parallel for schedule(static) if (nt > 1)
    for (int64_t t = 0; t < nt; t++) {
        const size_t lo = (size_t)t * ZERO_CHUNK;
        memset(p + lo, 0, (DFN_MIN(n, lo + ZERO_CHUNK) - lo) * sizeof(float));
    }
}

static dfn_conv2d_shape conv_shape(int B, int cin, int res, int cout, int k, int stride) {
    dfn_conv2d_shape s = {B, cin, res, res, cout, k, k, stride, k / 2};
    return s;
}

void dfn_graph_forward(dfn_graph *u, const dfn_model *m, float *out, const float *x,
                       const float *semb, int B, int training, dfn_rng *rng) {
    const float *P = m->params;
    int G = u->groups;
    float eps = u->eps;
    int E = u->temb_dim;
    const dfn_graph_node *n0 = &u->nodes[0];
    memcpy(n0->act, x, sizeof(float) * (size_t)B * n0->C * n0->res * n0->res);

    for (int i = 0; i < u->n_ops; i++) {
        dfn_graph_op *o = &u->ops[i];
        const float *in = u->nodes[o->in].act;
        float *dst = u->nodes[o->out].act;
        int hw = o->res * o->res;
        size_t n_out = (size_t)B * o->cout * hw;
        switch (o->kind) {
        case OP_CONV: {
            dfn_conv2d_shape s = conv_shape(B, o->cin, o->res, o->cout, o->k, o->stride);
            DFN_PROF(DFN_PROF_CONV_FWD, dfn_conv2d_forward(dst, in, P + o->conv.w, P + o->conv.b, &s));
            break;
        }
        case OP_RES: {
            /* h1 = conv1(silu(norm1(x))) */
            DFN_PROF(DFN_PROF_NORM_FWD, dfn_groupnorm_forward(o->a1, o->mean1, o->rstd1, in, P + o->norm1.w, P + o->norm1.b,
                                  B, o->cin, hw, G, eps, 1));
            dfn_conv2d_shape s1 = conv_shape(B, o->cin, o->res, o->cout, 3, 1);
            DFN_PROF(DFN_PROF_CONV_FWD, dfn_conv2d_forward(o->h1, o->a1, P + o->conv1.w, P + o->conv1.b, &s1));
            if (E > 0)
                DFN_PROF(DFN_PROF_LINEAR, dfn_linear_forward(o->tp, semb, P + o->temb_proj.w, P + o->temb_proj.b, B, E, o->cout));
            o->dropped = training && m->cfg.dropout > 0.0f;
            if (o->dropped) {
                DFN_ASSERT(rng);
                o->drop_seed = rng->seed;
                o->drop_block = rng->counter;
                rng->counter += (n_out + 3) / 4;
            }
            /* a2 = dropout(silu(norm2(h1 [+= temb_proj(silu(emb))]))), the add and the
             * dropout in GroupNorm's passes */
            const dfn_groupnorm_fusion fu = {E > 0 ? o->tp : NULL, o->dropped ? m->cfg.dropout : 0.0f,
                                             o->drop_seed, o->drop_block};
            DFN_PROF(DFN_PROF_NORM_FWD, dfn_groupnorm_fused_forward(o->a2, o->mean2, o->rstd2, o->h1, &fu, P + o->norm2.w,
                                  P + o->norm2.b, B, o->cout, hw, G, eps, 1));
            /* out = skip(x) + h, the sum in conv2's stores: skip(x) is x, or the
             * 1x1 skip conv's output written into out first */
            const float *skip = in;
            if (o->has_skip) {
                dfn_conv2d_shape ss = conv_shape(B, o->cin, o->res, o->cout, 1, 1);
                DFN_PROF(DFN_PROF_CONV_FWD, dfn_conv2d_forward(dst, in, P + o->skip.w, P + o->skip.b, &ss));
                skip = dst;
            }
            dfn_conv2d_shape s2 = conv_shape(B, o->cout, o->res, o->cout, 3, 1);
            DFN_PROF(DFN_PROF_CONV_FWD, dfn_conv2d_forward_add(dst, o->a2, P + o->conv2.w, P + o->conv2.b, skip, &s2));
            break;
        }
        case OP_ATTN: {
            int C = o->cin;
            DFN_PROF(DFN_PROF_NORM_FWD, dfn_groupnorm_forward(o->a1, o->mean1, o->rstd1, in, P + o->norm1.w, P + o->norm1.b,
                                  B, C, hw, G, eps, 0));
            dfn_conv2d_shape s = conv_shape(B, C, o->res, C, 1, 1);
            DFN_PROF(DFN_PROF_CONV_FWD, dfn_conv2d_forward(o->qa, o->a1, P + o->q.w, P + o->q.b, &s));
            DFN_PROF(DFN_PROF_CONV_FWD, dfn_conv2d_forward(o->ka, o->a1, P + o->kk.w, P + o->kk.b, &s));
            DFN_PROF(DFN_PROF_CONV_FWD, dfn_conv2d_forward(o->va, o->a1, P + o->v.w, P + o->v.b, &s));
            DFN_PROF(DFN_PROF_ATTN_FWD, dfn_attention_forward(o->o, o->att, o->qa, o->ka, o->va, B, C, hw, u->heads));
            /* out = x + proj(o), the sum in proj's stores */
            DFN_PROF(DFN_PROF_CONV_FWD, dfn_conv2d_forward_add(dst, o->o, P + o->proj.w, P + o->proj.b, in, &s));
            break;
        }
        case OP_UP: {
            DFN_PROF(DFN_PROF_ELEMENTWISE, dfn_upsample2x_forward(o->up, in, B, o->cin, o->res, o->res));
            dfn_conv2d_shape s = conv_shape(B, o->cin, 2 * o->res, o->cout, 3, 1);
            DFN_PROF(DFN_PROF_CONV_FWD, dfn_conv2d_forward(dst, o->up, P + o->conv.w, P + o->conv.b, &s));
            break;
        }
        case OP_CAT:
            DFN_PROF(DFN_PROF_ELEMENTWISE, dfn_concat_forward(dst, in, u->nodes[o->in2].act, B, o->cin, o->cout - o->cin, hw));
            break;
        case OP_OUT: {
            DFN_PROF(DFN_PROF_NORM_FWD, dfn_groupnorm_forward(o->a1, o->mean1, o->rstd1, in, P + o->norm1.w, P + o->norm1.b,
                                  B, o->cin, hw, G, eps, 1));
            dfn_conv2d_shape s = conv_shape(B, o->cin, o->res, o->cout, 3, 1);
            DFN_PROF(DFN_PROF_CONV_FWD, dfn_conv2d_forward(dst, o->a1, P + o->conv.w, P + o->conv.b, &s));
            break;
        }
        }
    }
    const dfn_graph_node *last = &u->nodes[u->n_nodes - 1];
    memcpy(out, last->act, sizeof(float) * (size_t)B * last->C * last->res * last->res);
}


void dfn_graph_backward(dfn_graph *u, dfn_model *m, const float *dout, float *dx,
                        const float *semb, float *d_semb, int B) {
    const float *P = m->params;
    float *Gr = m->grads;
    int G = u->groups, E = u->temb_dim;

    for (int i = 0; i < u->n_nodes - 1; i++) {
        dfn_graph_node *n = &u->nodes[i];
        zero(n->grad, (size_t)B * n->C * n->res * n->res);
    }
    dfn_graph_node *last = &u->nodes[u->n_nodes - 1];
    memcpy(last->grad, dout, sizeof(float) * (size_t)B * last->C * last->res * last->res);

    for (int i = u->n_ops - 1; i >= 0; i--) {
        dfn_graph_op *o = &u->ops[i];
        const float *in = u->nodes[o->in].act;
        /* node 0 is the network input: its gradient is wanted only for dx */
        float *din = (o->in == 0 && !dx) ? NULL : u->nodes[o->in].grad;
        const float *g = u->nodes[o->out].grad;
        int hw = o->res * o->res;
        size_t n_out = (size_t)B * o->cout * hw;
        float *T0 = u->tmp[0], *T1 = u->tmp[1], *T2 = u->tmp[2], *T3 = u->tmp[3];
        switch (o->kind) {
        case OP_CONV: {
            dfn_conv2d_shape s = conv_shape(B, o->cin, o->res, o->cout, o->k, o->stride);
            DFN_PROF(DFN_PROF_CONV_BWD, dfn_conv2d_backward(din, Gr + o->conv.w, Gr + o->conv.b, g, in, P + o->conv.w, &s));
            break;
        }
        case OP_RES: {
            /* out = skip(x) + h */
            if (o->has_skip) {
                dfn_conv2d_shape ss = conv_shape(B, o->cin, o->res, o->cout, 1, 1);
                DFN_PROF(DFN_PROF_CONV_BWD, dfn_conv2d_backward(din, Gr + o->skip.w, Gr + o->skip.b, g, in, P + o->skip.w, &ss));
            } else {
                DFN_PROF(DFN_PROF_ELEMENTWISE, dfn_add(din, g, n_out));
            }
            /* h = conv2(dropout(silu(norm2(h1)))), h1 = conv1(...) [+ temb_proj(silu(emb))]:
             * the dropout's and the broadcast's backward in GroupNorm's passes */
            dfn_conv2d_shape s2 = conv_shape(B, o->cout, o->res, o->cout, 3, 1);
            DFN_PROF(DFN_PROF_CONV_BWD, dfn_conv2d_backward_set(T0, Gr + o->conv2.w, Gr + o->conv2.b, g, o->a2, P + o->conv2.w, &s2));
            const dfn_groupnorm_fusion fu = {NULL, o->dropped ? m->cfg.dropout : 0.0f, o->drop_seed, o->drop_block};
            float *d_h1 = T1;
            if (E > 0) zero(u->dtp, (size_t)B * o->cout);
            DFN_PROF(DFN_PROF_NORM_BWD, dfn_groupnorm_fused_backward(d_h1, E > 0 ? u->dtp : NULL, Gr + o->norm2.w,
                                   Gr + o->norm2.b, T0, &fu, o->h1, P + o->norm2.w, P + o->norm2.b, o->mean2,
                                   o->rstd2, B, o->cout, hw, G, 1));
            if (E > 0)
                DFN_PROF(DFN_PROF_LINEAR, dfn_linear_backward(d_semb, Gr + o->temb_proj.w, Gr + o->temb_proj.b, u->dtp,
                                    semb, P + o->temb_proj.w, B, E, o->cout));
            dfn_conv2d_shape s1 = conv_shape(B, o->cin, o->res, o->cout, 3, 1);
            DFN_PROF(DFN_PROF_CONV_BWD, dfn_conv2d_backward_set(T2, Gr + o->conv1.w, Gr + o->conv1.b, d_h1, o->a1, P + o->conv1.w, &s1));
            DFN_PROF(DFN_PROF_NORM_BWD, dfn_groupnorm_backward(din, Gr + o->norm1.w, Gr + o->norm1.b, T2, in, P + o->norm1.w,
                                   P + o->norm1.b, o->mean1, o->rstd1, B, o->cin, hw, G, 1));
            break;
        }
        case OP_ATTN: {
            int C = o->cin;
            size_t n = (size_t)B * C * hw;
            DFN_PROF(DFN_PROF_ELEMENTWISE, dfn_add(din, g, n));
            dfn_conv2d_shape s = conv_shape(B, C, o->res, C, 1, 1);
            DFN_PROF(DFN_PROF_CONV_BWD, dfn_conv2d_backward_set(T0, Gr + o->proj.w, Gr + o->proj.b, g, o->o, P + o->proj.w, &s));
            zero(T1, n);
            zero(T2, n);
            zero(T3, n);
            DFN_PROF(DFN_PROF_ATTN_BWD, dfn_attention_backward(T1, T2, T3, T0, o->qa, o->ka, o->va, o->att, B, C, hw, u->heads));
            DFN_PROF(DFN_PROF_CONV_BWD, dfn_conv2d_backward_set(T0, Gr + o->q.w, Gr + o->q.b, T1, o->a1, P + o->q.w, &s));
            DFN_PROF(DFN_PROF_CONV_BWD, dfn_conv2d_backward(T0, Gr + o->kk.w, Gr + o->kk.b, T2, o->a1, P + o->kk.w, &s));
            DFN_PROF(DFN_PROF_CONV_BWD, dfn_conv2d_backward(T0, Gr + o->v.w, Gr + o->v.b, T3, o->a1, P + o->v.w, &s));
            DFN_PROF(DFN_PROF_NORM_BWD, dfn_groupnorm_backward(din, Gr + o->norm1.w, Gr + o->norm1.b, T0, in, P + o->norm1.w,
                                   P + o->norm1.b, o->mean1, o->rstd1, B, C, hw, G, 0));
            break;
        }
        case OP_UP: {
            dfn_conv2d_shape s = conv_shape(B, o->cin, 2 * o->res, o->cout, 3, 1);
            DFN_PROF(DFN_PROF_CONV_BWD, dfn_conv2d_backward_set(T0, Gr + o->conv.w, Gr + o->conv.b, g, o->up, P + o->conv.w, &s));
            DFN_PROF(DFN_PROF_ELEMENTWISE, dfn_upsample2x_backward(din, T0, B, o->cin, o->res, o->res));
            break;
        }
        case OP_CAT:
            DFN_PROF(DFN_PROF_ELEMENTWISE, dfn_concat_backward(din, u->nodes[o->in2].grad, g, B, o->cin, o->cout - o->cin, hw));
            break;
        case OP_OUT: {
            dfn_conv2d_shape s = conv_shape(B, o->cin, o->res, o->cout, 3, 1);
            DFN_PROF(DFN_PROF_CONV_BWD, dfn_conv2d_backward_set(T0, Gr + o->conv.w, Gr + o->conv.b, g, o->a1, P + o->conv.w, &s));
            DFN_PROF(DFN_PROF_NORM_BWD, dfn_groupnorm_backward(din, Gr + o->norm1.w, Gr + o->norm1.b, T0, in, P + o->norm1.w,
                                   P + o->norm1.b, o->mean1, o->rstd1, B, o->cin, hw, G, 1));
            break;
        }
        }
    }
    if (dx) {
        const dfn_graph_node *n0 = &u->nodes[0];
        memcpy(dx, n0->grad, sizeof(float) * (size_t)B * n0->C * n0->res * n0->res);
    }
}

/* Multiply-accumulates of one forward per sample, counted as the reference
 * does: convolutions (out elements x in channels x k^2), linear layers, and the
 * two attention products (2 HW^2 C); normalisations and activations excluded. */
double dfn_graph_macs(const dfn_graph *u) {
    double E = u->temb_dim, macs = 0;
    for (int i = 0; i < u->n_ops; i++) {
        const dfn_graph_op *o = &u->ops[i];
        double hw = (double)o->res * o->res, ohw = (double)u->nodes[o->out].res * u->nodes[o->out].res;
        switch (o->kind) {
        case OP_CONV: macs += ohw * o->cout * o->cin * o->k * o->k; break;
        case OP_RES:
            macs += hw * o->cout * o->cin * 9 + E * o->cout + hw * o->cout * o->cout * 9;
            if (o->has_skip) macs += hw * o->cout * o->cin;
            break;
        case OP_ATTN: macs += 4 * hw * o->cin * o->cin + 2 * hw * hw * o->cin; break;
        case OP_UP: macs += ohw * o->cout * o->cin * 9; break;
        case OP_OUT: macs += hw * o->cout * o->cin * 9; break;
        case OP_CAT: break;
        }
    }
    return macs;
}


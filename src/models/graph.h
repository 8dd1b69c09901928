/* graph.h - the convolutional networks of src/models (the U-Net, the
 * autoencoder's encoder and decoder) as a list of ops over nodes. A node is an
 * activation (B, C, res, res) with a gradient buffer of the same size; an op
 * reads one or two nodes and writes one, keeping what its backward needs.
 * Forward runs the ops in order, backward in reverse, each accumulating into
 * its input nodes' gradients, so a skip connection's gradient simply sums the
 * two paths that read it. Node 0 is the input, the last node the output.
 *
 * The ops are the DDPM / latent-diffusion building blocks: convolutions,
 * ResBlocks (GroupNorm, SiLU, conv, [timestep projection], GroupNorm, SiLU,
 * dropout, conv, [1x1 shortcut]), self-attention blocks, nearest-neighbour 2x
 * upsampling + conv, channel concatenation, and the output head (GroupNorm,
 * SiLU, conv). Private to src/models. */
#ifndef DFN_GRAPH_H
#define DFN_GRAPH_H

#include "models/model.h"

typedef enum { OP_CONV, OP_RES, OP_ATTN, OP_UP, OP_CAT, OP_OUT } dfn_graph_op_kind;

typedef struct {
    int C, res;
    float *act, *grad;
} dfn_graph_node;

typedef struct {
    dfn_graph_op_kind kind;
    int in, in2, out;   /* node ids (in2: the skip of a concat) */
    int cin, cout, res; /* input channels, output channels, input resolution */
    int k, stride;      /* OP_CONV */
    /* parameters (offsets into the flat arrays) */
    dfn_wb conv, norm1, conv1, temb_proj, norm2, conv2, skip, q, kk, v, proj;
    int has_skip;
    /* activations kept for backward */
    float *mean1, *rstd1, *a1, *h1, *tp, *mean2, *rstd2, *a2;
    float *qa, *ka, *va, *att, *o, *up;
    uint64_t drop_seed, drop_block;
    int dropped; /* dropout was applied in the last forward */
} dfn_graph_op;

typedef struct {
    /* settings, before the first op is added */
    int groups;               /* GroupNorm groups */
    float eps;                /* GroupNorm epsilon */
    int heads;                /* attention heads */
    int temb_dim;             /* width of the time embedding the ResBlocks project
                                 (temb_proj); 0: ResBlocks without time input */
    const char *shortcut;     /* the name of a ResBlock's 1x1 shortcut ("skip") */
    /* built */
    dfn_graph_node *nodes;
    int n_nodes, cap_nodes;
    dfn_graph_op *ops;
    int n_ops, cap_ops;
    float *tmp[4]; /* backward temporaries and the skip path, max op size each */
    float *dtp;    /* (B, max channels) gradient of a temb projection */
    size_t max_chw;
    int max_c;
} dfn_graph;

/* Building: each returns the node it writes. Parameter names are prefix +
 * the reference's names (".norm1", ".conv1", ".temb_proj", ".norm2", ".conv2",
 * shortcut; ".norm", ".q", ".k", ".v", ".proj_out"; a conv's own prefix). */
int dfn_graph_input(dfn_graph *g, int C, int res);
int dfn_graph_conv(dfn_graph *g, dfn_param_table *tab, const char *prefix, int in, int cout, int k,
                   int stride);
int dfn_graph_resblock(dfn_graph *g, dfn_param_table *tab, const char *prefix, int in, int cout);
int dfn_graph_attn(dfn_graph *g, dfn_param_table *tab, const char *prefix, int in);
int dfn_graph_upsample(dfn_graph *g, dfn_param_table *tab, const char *prefix, int in);
int dfn_graph_concat(dfn_graph *g, int a, int b);
/* conv(silu(norm(x))): norm named norm_name, the 3x3 conv conv_name. */
int dfn_graph_out(dfn_graph *g, dfn_param_table *tab, const char *norm_name,
                  const char *conv_name, int in, int cout);
void dfn_graph_free(dfn_graph *g);

/* Takes the buffers of a batch of B from m's arenas (also in the sizing pass). */
void dfn_graph_take(dfn_graph *g, dfn_model *m, int B);
/* out = graph(x) with m's parameters. semb (B, temb_dim): silu of the time
 * embedding when temb_dim > 0. training: dropout (m->cfg.dropout) from rng. */
void dfn_graph_forward(dfn_graph *g, const dfn_model *m, float *out, const float *x,
                       const float *semb, int B, int training, dfn_rng *rng);
/* Backward of the last forward: accumulates into m->grads, into d_semb (B,
 * temb_dim) when temb_dim > 0, and writes dx (B, input) unless NULL. */
void dfn_graph_backward(dfn_graph *g, dfn_model *m, const float *dout, float *dx,
                        const float *semb, float *d_semb, int B);
/* Multiply-accumulates of one forward per sample (convolutions, linear layers,
 * the two attention products). */
double dfn_graph_macs(const dfn_graph *g);

#endif

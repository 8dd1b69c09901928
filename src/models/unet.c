/* unet.c - the DDPM U-Net (Ho et al. 2020, appendix B; the reference is
 * shared/reference/torch_unet.py), generalised: any channel multipliers, res
 * blocks per level, attention resolutions, heads, GroupNorm groups, optional
 * class labels.
 *
 * The network is a graph of ops over nodes (graph.h); this file says which
 * ops, in which order, under which names, and adds the time embedding.
 *
 *   h = conv_in(x)                                  hs = [h]
 *   per level l: num_res_blocks x (ResBlock, [Attn]) -> hs; Downsample -> hs
 *   mid: ResBlock, Attn, ResBlock
 *   per level l (deepest first): (num_res_blocks + 1) x (concat(h, hs.pop()),
 *        ResBlock, [Attn]); Upsample unless l == 0
 *   out = conv_out(silu(norm_out(h)))
 *
 * Parameter names are the reference's state_dict keys, so checkpoints map to
 * PyTorch one to one.
 */
#include <string.h>

#include "models/graph.h"

typedef struct {
    dfn_time_embed te;
    dfn_graph g;
} unet;

static int in_list(int v, const int *list, int n) {
    for (int i = 0; i < n; i++)
        if (list[i] == v) return 1;
    return 0;
}

static void build(dfn_model *m) {
    const dfn_unet_config *c = &m->cfg.unet;
    dfn_param_table *tab = &m->tab;
    unet *un = calloc(1, sizeof *un);
    DFN_ASSERT(un);
    m->impl = un;
    dfn_graph *u = &un->g;
    u->groups = c->groups;
    u->eps = c->norm_eps;
    u->heads = c->heads;
    u->temb_dim = 4 * c->channels;
    u->shortcut = "skip";
    char name[DFN_MAX_TENSOR_NAME];

    dfn_time_embed_params(&un->te, tab, c->channels, 4 * c->channels, m->cfg.num_classes);
    int x = dfn_graph_input(u, c->in_channels, c->resolution);
    int h = dfn_graph_conv(u, tab, "conv_in", x, c->channels, 3, 1);
    int hs[4 * DFN_MAX_LEVELS * 16], n_hs = 0;
    hs[n_hs++] = h;
    for (int l = 0; l < c->n_levels; l++) {
        int cout = c->channels * c->ch_mult[l];
        for (int i = 0; i < c->num_res_blocks; i++) {
            snprintf(name, sizeof name, "down.%d.blocks.%d", l, i);
            h = dfn_graph_resblock(u, tab, name, h, cout);
            if (in_list(u->nodes[h].res, c->attn_resolutions, c->n_attn)) {
                snprintf(name, sizeof name, "down.%d.attns.%d", l, i);
                h = dfn_graph_attn(u, tab, name, h);
            }
            hs[n_hs++] = h;
        }
        if (l != c->n_levels - 1) {
            snprintf(name, sizeof name, "down.%d.downsample.conv", l);
            h = dfn_graph_conv(u, tab, name, h, cout, 3, 2);
            hs[n_hs++] = h;
        }
    }
    int cur = u->nodes[h].C;
    h = dfn_graph_resblock(u, tab, "mid_block1", h, cur);
    h = dfn_graph_attn(u, tab, "mid_attn", h);
    h = dfn_graph_resblock(u, tab, "mid_block2", h, cur);
    for (int l = c->n_levels - 1, j = 0; l >= 0; l--, j++) {
        int cout = c->channels * c->ch_mult[l];
        for (int i = 0; i < c->num_res_blocks + 1; i++) {
            h = dfn_graph_concat(u, h, hs[--n_hs]);
            snprintf(name, sizeof name, "up.%d.blocks.%d", j, i);
            h = dfn_graph_resblock(u, tab, name, h, cout);
            if (in_list(u->nodes[h].res, c->attn_resolutions, c->n_attn)) {
                snprintf(name, sizeof name, "up.%d.attns.%d", j, i);
                h = dfn_graph_attn(u, tab, name, h);
            }
        }
        if (l != 0) {
            snprintf(name, sizeof name, "up.%d.upsample.conv", j);
            h = dfn_graph_upsample(u, tab, name, h);
        }
    }
    DFN_ASSERT(n_hs == 0);
    dfn_graph_out(u, tab, "norm_out", "conv_out", h, c->in_channels);
}

static void free_impl(dfn_model *m) {
    unet *u = m->impl;
    if (!u) return;
    dfn_graph_free(&u->g);
    free(u);
    m->impl = NULL;
}

static void take(dfn_model *m, int B) {
    unet *u = m->impl;
    dfn_time_embed_take(&u->te, m, B);
    dfn_graph_take(&u->g, m, B);
}

static void forward(dfn_model *m, float *out, const float *x, const float *t, const int *y,
                    int B, int training, dfn_rng *rng) {
    unet *u = m->impl;
    dfn_time_embed_forward(&u->te, m, t, y, B);
    dfn_graph_forward(&u->g, m, out, x, u->te.silu_emb, B, training, rng);
}

static void backward(dfn_model *m, const float *dout, float *dx) {
    unet *u = m->impl;
    dfn_graph_backward(&u->g, m, dout, dx, u->te.silu_emb, u->te.d_silu_emb, m->last_batch);
    dfn_time_embed_backward(&u->te, m, m->last_batch);
}

/* Multiply-accumulates of one forward per sample, counted as the reference
 * does: convolutions (out elements x in channels x k^2), linear layers, and the
 * two attention products (2 HW^2 C); normalisations and activations excluded. */
static double macs(const dfn_model *m) {
    const unet *u = m->impl;
    double E = u->te.emb_dim;
    return E * u->te.dim + E * E + dfn_graph_macs(&u->g);
}

const dfn_model_ops dfn_unet_ops = {build, free_impl, take, forward, backward, macs, NULL};

/* classifier.c - the small CNN whose penultimate layer is the feature space of
 * FID and KID (src/eval), trained on the labelled dataset itself through the
 * one training loop (src/train):
 *
 *   x (B,C,H,W) -> conv1 3x3 (ch)        [+ temb_proj1(silu(emb))] -> norm1 GN+SiLU
 *               -> conv2 3x3 /2 (2ch)    [+ temb_proj2(silu(emb))] -> norm2 GN+SiLU
 *               -> conv3 3x3 /2 (4ch)    [+ temb_proj3(silu(emb))] -> norm3 GN+SiLU
 *               -> global average pool (B,4ch)
 *               -> fc1 (F) -> SiLU       = the features (B,F)
 *               -> fc2 (classes)         = the logits
 *
 * The bracketed terms are there when the config asks for time_embed: a
 * classifier of noisy images p(c | x_t, t) for classifier guidance (Dhariwal &
 * Nichol 2021 section 4), with the U-Net's time embedding (time_embed.c, emb
 * 4ch wide) added per channel after each convolution as the U-Net's ResBlocks
 * add theirs.
 *
 * Its PyTorch twin has the same attribute names (conv1, norm1, ..., fc2) and
 * GroupNorm(groups, ch, eps=1e-5); its state_dict and the checkpoint hold the
 * same tensors. Built from the engine's layers (src/nn), deterministic for any
 * thread count.
 */
#include <string.h>

#include "models/model.h"
#include "models/models.h"
#include "nn/nn.h"
#include "nn/pool.h"

#define CLASSIFIER_EPS 1e-5f /* torch.nn.GroupNorm's default */

typedef struct {
    dfn_wb conv[3], norm[3], fc1, fc2, temb_proj[3];
    int timed;           /* time_embed */
    dfn_time_embed te;
    float *tp, *dtp;     /* (B, 4ch) a projection of the embedding, its gradient */
    int ch[3];        /* channels of the three stages */
    int hs[3], ws[3]; /* their spatial sizes */
    /* activations (taken per batch) */
    float *x, *h[3], *a[3], *mean[3], *rstd[3], *pool, *f, *s;
    /* backward: two planes as large as the largest stage, and the vectors */
    float *g0, *g1, *ds, *df, *dpool;
} classifier;

static void build(dfn_model *m) {
    const dfn_classifier_config *c = &m->cfg.classifier;
    classifier *k = dfn_calloc(1, sizeof *k);
    m->impl = k;
    k->ch[0] = c->channels;
    k->ch[1] = 2 * c->channels;
    k->ch[2] = 4 * c->channels;
    k->hs[0] = c->height;
    k->ws[0] = c->width;
    for (int l = 1; l < 3; l++) { /* 3x3, stride 2, pad 1 */
        k->hs[l] = (k->hs[l - 1] - 1) / 2 + 1;
        k->ws[l] = (k->ws[l - 1] - 1) / 2 + 1;
    }
    dfn_param_table *t = &m->tab;
    char name[16];
    k->timed = c->time_embed;
    if (k->timed) dfn_time_embed_params(&k->te, t, c->channels, 4 * c->channels, 0);
    for (int l = 0; l < 3; l++) {
        snprintf(name, sizeof name, "conv%d", l + 1);
        k->conv[l] = dfn_param_conv(t, name, k->ch[l], l ? k->ch[l - 1] : c->in_channels, 3);
        if (k->timed) {
            snprintf(name, sizeof name, "temb_proj%d", l + 1);
            k->temb_proj[l] = dfn_param_linear(t, name, k->ch[l], 4 * c->channels);
        }
        snprintf(name, sizeof name, "norm%d", l + 1);
        k->norm[l] = dfn_param_norm(t, name, k->ch[l]);
    }
    k->fc1 = dfn_param_linear(t, "fc1", c->feature_dim, k->ch[2]);
    k->fc2 = dfn_param_linear(t, "fc2", m->cfg.num_classes, c->feature_dim);
}

static void free_impl(dfn_model *m) {
    free(m->impl);
    m->impl = NULL;
}

/* Elements of one image at stage l's resolution with n channels. */
static size_t plane(const classifier *k, int l, int n) { return (size_t)n * k->hs[l] * k->ws[l]; }

static void take(dfn_model *m, int B) {
    classifier *k = m->impl;
    const dfn_classifier_config *c = &m->cfg.classifier;
    const size_t Bz = (size_t)B, G = (size_t)c->groups;
    dfn_arena *A = &m->acts, *D = &m->grad_acts;
    k->x = dfn_arena_take(A, Bz * plane(k, 0, c->in_channels));
    size_t big = plane(k, 0, c->in_channels);
    for (int l = 0; l < 3; l++) {
        k->h[l] = dfn_arena_take(A, Bz * plane(k, l, k->ch[l]));
        k->a[l] = dfn_arena_take(A, Bz * plane(k, l, k->ch[l]));
        k->mean[l] = dfn_arena_take(A, Bz * G);
        k->rstd[l] = dfn_arena_take(A, Bz * G);
        big = DFN_MAX(big, plane(k, l, k->ch[l]));
    }
    k->pool = dfn_arena_take(A, Bz * k->ch[2]);
    k->f = dfn_arena_take(A, Bz * c->feature_dim);
    k->s = dfn_arena_take(A, Bz * c->feature_dim);
    k->g0 = dfn_arena_take(D, Bz * big);
    k->g1 = dfn_arena_take(D, Bz * big);
    k->ds = dfn_arena_take(D, Bz * c->feature_dim);
    k->df = dfn_arena_take(D, Bz * c->feature_dim);
    k->dpool = dfn_arena_take(D, Bz * k->ch[2]);
    if (k->timed) {
        dfn_time_embed_take(&k->te, m, B);
        k->tp = dfn_arena_take(A, Bz * k->ch[2]);
        k->dtp = dfn_arena_take(D, Bz * k->ch[2]);
    }
}

static dfn_conv2d_shape conv_shape(const dfn_model *m, int l, int B) {
    const classifier *k = m->impl;
    dfn_conv2d_shape s;
    s.N = B;
    s.C = l == 0 ? m->cfg.classifier.in_channels : k->ch[l - 1];
    s.H = l == 0 ? k->hs[0] : k->hs[l - 1];
    s.W = l == 0 ? k->ws[0] : k->ws[l - 1];
    s.OC = k->ch[l];
    s.KH = s.KW = 3;
    s.stride = l == 0 ? 1 : 2;
    s.pad = 1;
    return s;
}

static void forward(dfn_model *m, float *logits, const float *x, const float *t, const int *y,
                    int B, int training, dfn_rng *rng) {
    (void)y, (void)training, (void)rng; /* no labels or dropout */
    classifier *k = m->impl;
    const dfn_classifier_config *c = &m->cfg.classifier;
    const float *P = m->params;
    if (k->timed) dfn_time_embed_forward(&k->te, m, t, NULL, B);
    memcpy(k->x, x, (size_t)B * plane(k, 0, c->in_channels) * sizeof(float));
    const float *in = k->x;
    for (int l = 0; l < 3; l++) {
        dfn_conv2d_shape s = conv_shape(m, l, B);
        DFN_ASSERT(dfn_conv2d_out_h(&s) == k->hs[l] && dfn_conv2d_out_w(&s) == k->ws[l]);
        dfn_conv2d_forward(k->h[l], in, P + k->conv[l].w, P + k->conv[l].b, &s);
        if (k->timed) { /* h += temb_proj(silu(emb)), per channel */
            dfn_linear_forward(k->tp, k->te.silu_emb, P + k->temb_proj[l].w, P + k->temb_proj[l].b,
                               B, k->te.emb_dim, k->ch[l]);
            dfn_add_channel_forward(k->h[l], k->tp, B, k->ch[l], k->hs[l] * k->ws[l]);
        }
        dfn_groupnorm_forward(k->a[l], k->mean[l], k->rstd[l], k->h[l], P + k->norm[l].w,
                              P + k->norm[l].b, B, k->ch[l], k->hs[l] * k->ws[l], c->groups,
                              CLASSIFIER_EPS, 1);
        in = k->a[l];
    }
    dfn_avgpool_forward(k->pool, k->a[2], B, k->ch[2], k->hs[2] * k->ws[2]);
    dfn_linear_forward(k->f, k->pool, P + k->fc1.w, P + k->fc1.b, B, k->ch[2], c->feature_dim);
    dfn_silu_forward(k->s, k->f, (size_t)B * c->feature_dim);
    dfn_linear_forward(logits, k->s, P + k->fc2.w, P + k->fc2.b, B, c->feature_dim,
                       m->cfg.num_classes);
}

static void backward(dfn_model *m, const float *dlogits, float *dx) {
    classifier *k = m->impl;
    const dfn_classifier_config *c = &m->cfg.classifier;
    const int B = m->last_batch, F = c->feature_dim;
    const float *P = m->params;
    float *G = m->grads;
    const size_t nf = (size_t)B * F, np = (size_t)B * k->ch[2];

    memset(k->ds, 0, nf * sizeof(float));
    dfn_linear_backward(k->ds, G + k->fc2.w, G + k->fc2.b, dlogits, k->s, P + k->fc2.w, B, F,
                        m->cfg.num_classes);
    memset(k->df, 0, nf * sizeof(float));
    dfn_silu_backward(k->df, k->ds, k->f, nf);
    memset(k->dpool, 0, np * sizeof(float));
    dfn_linear_backward(k->dpool, G + k->fc1.w, G + k->fc1.b, k->df, k->pool, P + k->fc1.w, B,
                        k->ch[2], F);
    /* g0: d(loss)/d(a[l]); g1: d(loss)/d(h[l]) */
    memset(k->g0, 0, (size_t)B * plane(k, 2, k->ch[2]) * sizeof(float));
    dfn_avgpool_backward(k->g0, k->dpool, B, k->ch[2], k->hs[2] * k->ws[2]);
    for (int l = 2; l >= 0; l--) {
        memset(k->g1, 0, (size_t)B * plane(k, l, k->ch[l]) * sizeof(float));
        dfn_groupnorm_backward(k->g1, G + k->norm[l].w, G + k->norm[l].b, k->g0, k->h[l],
                               P + k->norm[l].w, P + k->norm[l].b, k->mean[l], k->rstd[l], B,
                               k->ch[l], k->hs[l] * k->ws[l], c->groups, 1);
        if (k->timed) {
            memset(k->dtp, 0, (size_t)B * k->ch[l] * sizeof(float));
            dfn_add_channel_backward(k->dtp, k->g1, B, k->ch[l], k->hs[l] * k->ws[l]);
            dfn_linear_backward(k->te.d_silu_emb, G + k->temb_proj[l].w, G + k->temb_proj[l].b,
                                k->dtp, k->te.silu_emb, P + k->temb_proj[l].w, B, k->te.emb_dim,
                                k->ch[l]);
        }
        dfn_conv2d_shape s = conv_shape(m, l, B);
        float *dinp = NULL;
        if (l > 0) {
            dinp = k->g0;
            memset(dinp, 0, (size_t)B * plane(k, l - 1, k->ch[l - 1]) * sizeof(float));
        } else if (dx) {
            dinp = dx;
            memset(dx, 0, (size_t)B * plane(k, 0, c->in_channels) * sizeof(float));
        }
        dfn_conv2d_backward(dinp, G + k->conv[l].w, G + k->conv[l].b, k->g1,
                            l == 0 ? k->x : k->a[l - 1], P + k->conv[l].w, &s);
    }
    if (k->timed) dfn_time_embed_backward(&k->te, m, B);
}

/* Convolutions (out elements x in channels x 9) and the two linear layers. */
static double macs(const dfn_model *m) {
    const classifier *k = m->impl;
    const dfn_classifier_config *c = &m->cfg.classifier;
    double total = 0;
    for (int l = 0; l < 3; l++)
        total += (double)plane(k, l, k->ch[l]) * (l ? k->ch[l - 1] : c->in_channels) * 9;
    if (k->timed) /* the embedding's two layers and the three projections */
        total += (double)c->channels * 4 * c->channels + 16.0 * c->channels * c->channels +
                 4.0 * c->channels * (k->ch[0] + k->ch[1] + k->ch[2]);
    return total + (double)k->ch[2] * c->feature_dim + (double)c->feature_dim * m->cfg.num_classes;
}

static const float *features(const dfn_model *m) { return ((const classifier *)m->impl)->s; }

const dfn_model_ops dfn_classifier_ops = {build, free_impl, take, forward, backward, macs, features};

long dfn_logits_count_correct(const float *logits, const int *labels, int B, int K) {
    long correct = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (z[k] > z[best]) best = k;
        correct += best == labels[b];
    }
    return correct;
}

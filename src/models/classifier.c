/* classifier.c - the small CNN whose penultimate layer is the feature space of
 * FID and KID (src/eval), trained on the labelled dataset itself through the
 * one training loop (src/train):
 *
 *   x (B,C,H,W) -> conv1 3x3 (ch)        [+ temb_proj1(silu(emb))] -> norm1 GN+SiLU
 *               (-> conv1_k 3x3 (ch) -> norm1_k GN+SiLU, k = 2..1+extra_convs)
 *               -> conv2 3x3 /2 (2ch)    [+ temb_proj2(silu(emb))] -> norm2 GN+SiLU
 *               (-> conv2_k ...)
 *               -> conv3 3x3 /2 (4ch)    [+ temb_proj3(silu(emb))] -> norm3 GN+SiLU
 *               (-> conv3_k ...)
 *               -> global average pool (B,4ch), or with flatten the map (B,4ch*h*w)
 *               -> dropout (training, p = the config's dropout)
 *               -> fc1 (F) -> SiLU       = the features (B,F)
 *               -> fc2 (classes)         = the logits
 *
 * The bracketed terms are there when the config asks for time_embed: a
 * classifier of noisy images p(c | x_t, t) for classifier guidance (Dhariwal &
 * Nichol 2021 section 4), with the U-Net's time embedding (time_embed.c, emb
 * 4ch wide) added per channel after each stage's first convolution as the
 * U-Net's ResBlocks add theirs.
 *
 * Its PyTorch twin has the same attribute names (conv1, norm1, conv1_2, ...,
 * fc2) and GroupNorm(groups, ch, eps=1e-5); its state_dict and the checkpoint
 * hold the same tensors. Built from the engine's layers (src/nn), deterministic
 * for any thread count.
 */
#include <string.h>

#include "models/model.h"
#include "models/models.h"
#include "nn/nn.h"
#include "nn/pool.h"

#define CLASSIFIER_EPS 1e-5f /* torch.nn.GroupNorm's default */
#define MAX_EXTRA 3
#define MAX_CONVS (3 * (1 + MAX_EXTRA))

typedef struct {
    dfn_wb conv[MAX_CONVS], norm[MAX_CONVS], fc1, fc2, temb_proj[3];
    int n_conv, per_stage; /* 3 stages of per_stage = 1 + extra_convs convolutions */
    int timed;             /* time_embed */
    dfn_time_embed te;
    float *tp, *dtp;  /* (B, 4ch) a projection of the embedding, its gradient */
    int ch[3];        /* channels of the three stages */
    int hs[3], ws[3]; /* their spatial sizes */
    int head;         /* fc1's input width: 4ch (pooled) or 4ch*h*w (flatten) */
    /* activations (taken per batch); convolution i belongs to stage i / per_stage */
    float *x, *h[MAX_CONVS], *a[MAX_CONVS], *mean[MAX_CONVS], *rstd[MAX_CONVS];
    float *pool, *drop, *f, *s; /* head input, after dropout, fc1, SiLU */
    float *gap;                 /* flatten: the last map's mean over pixels (the features) */
    int dropped;                /* the last forward applied dropout */
    uint64_t drop_seed, drop_block;
    /* backward: two planes as large as the largest stage, and the vectors */
    float *g0, *g1, *ds, *df, *dpool, *ddrop;
} classifier;

static void build(dfn_model *m) {
    const dfn_classifier_config *c = &m->cfg.classifier;
    classifier *k = dfn_calloc(1, sizeof *k);
    m->impl = k;
    k->per_stage = 1 + c->extra_convs;
    k->n_conv = 3 * k->per_stage;
    k->ch[0] = c->channels;
    k->ch[1] = 2 * c->channels;
    k->ch[2] = 4 * c->channels;
    k->hs[0] = c->height;
    k->ws[0] = c->width;
    for (int l = 1; l < 3; l++) { /* 3x3, stride 2, pad 1 */
        k->hs[l] = (k->hs[l - 1] - 1) / 2 + 1;
        k->ws[l] = (k->ws[l - 1] - 1) / 2 + 1;
    }
    k->head = c->flatten ? k->ch[2] * k->hs[2] * k->ws[2] : k->ch[2];
    dfn_param_table *t = &m->tab;
    char name[48]; /* (room for two whole ints: -Wformat-truncation) */
    k->timed = c->time_embed;
    if (k->timed) dfn_time_embed_params(&k->te, t, c->channels, 4 * c->channels, 0);
    for (int i = 0; i < k->n_conv; i++) {
        const int l = i / k->per_stage, j = i % k->per_stage;
        const int in = i == 0 ? c->in_channels : k->ch[(i - 1) / k->per_stage];
        if (j == 0) snprintf(name, sizeof name, "conv%d", l + 1);
        else snprintf(name, sizeof name, "conv%d_%d", l + 1, j + 1);
        k->conv[i] = dfn_param_conv(t, name, k->ch[l], in, 3);
        if (k->timed && j == 0) {
            snprintf(name, sizeof name, "temb_proj%d", l + 1);
            k->temb_proj[l] = dfn_param_linear(t, name, k->ch[l], 4 * c->channels);
        }
        if (j == 0) snprintf(name, sizeof name, "norm%d", l + 1);
        else snprintf(name, sizeof name, "norm%d_%d", l + 1, j + 1);
        k->norm[i] = dfn_param_norm(t, name, k->ch[l]);
    }
    k->fc1 = dfn_param_linear(t, "fc1", c->feature_dim, k->head);
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
    for (int i = 0; i < k->n_conv; i++) {
        const int l = i / k->per_stage;
        k->h[i] = dfn_arena_take(A, Bz * plane(k, l, k->ch[l]));
        k->a[i] = dfn_arena_take(A, Bz * plane(k, l, k->ch[l]));
        k->mean[i] = dfn_arena_take(A, Bz * G);
        k->rstd[i] = dfn_arena_take(A, Bz * G);
        big = DFN_MAX(big, plane(k, l, k->ch[l]));
    }
    k->pool = dfn_arena_take(A, Bz * k->head);
    if (c->flatten) k->gap = dfn_arena_take(A, Bz * k->ch[2]);
    k->drop = dfn_arena_take(A, Bz * k->head);
    k->f = dfn_arena_take(A, Bz * c->feature_dim);
    k->s = dfn_arena_take(A, Bz * c->feature_dim);
    k->g0 = dfn_arena_take(D, Bz * big);
    k->g1 = dfn_arena_take(D, Bz * big);
    k->ds = dfn_arena_take(D, Bz * c->feature_dim);
    k->df = dfn_arena_take(D, Bz * c->feature_dim);
    k->dpool = dfn_arena_take(D, Bz * k->head);
    k->ddrop = dfn_arena_take(D, Bz * k->head);
    if (k->timed) {
        dfn_time_embed_take(&k->te, m, B);
        k->tp = dfn_arena_take(A, Bz * k->ch[2]);
        k->dtp = dfn_arena_take(D, Bz * k->ch[2]);
    }
}

/* Convolution i: a stage's first halves the size (but the first stage's). */
static dfn_conv2d_shape conv_shape(const dfn_model *m, int i, int B) {
    const classifier *k = m->impl;
    const int l = i / k->per_stage, first = i % k->per_stage == 0;
    const int lin = i == 0 ? 0 : (i - 1) / k->per_stage; /* the input's stage */
    dfn_conv2d_shape s;
    s.N = B;
    s.C = i == 0 ? m->cfg.classifier.in_channels : k->ch[lin];
    s.H = k->hs[lin];
    s.W = k->ws[lin];
    s.OC = k->ch[l];
    s.KH = s.KW = 3;
    s.stride = first && l > 0 ? 2 : 1;
    s.pad = 1;
    return s;
}

static void forward(dfn_model *m, float *logits, const float *x, const float *t, const int *y,
                    int B, int training, dfn_rng *rng) {
    (void)y; /* no labels */
    classifier *k = m->impl;
    const dfn_classifier_config *c = &m->cfg.classifier;
    const float *P = m->params;
    if (k->timed) dfn_time_embed_forward(&k->te, m, t, NULL, B);
    memcpy(k->x, x, (size_t)B * plane(k, 0, c->in_channels) * sizeof(float));
    const float *in = k->x;
    for (int i = 0; i < k->n_conv; i++) {
        const int l = i / k->per_stage;
        dfn_conv2d_shape s = conv_shape(m, i, B);
        DFN_ASSERT(dfn_conv2d_out_h(&s) == k->hs[l] && dfn_conv2d_out_w(&s) == k->ws[l]);
        dfn_conv2d_forward(k->h[i], in, P + k->conv[i].w, P + k->conv[i].b, &s);
        const int shifted = k->timed && i % k->per_stage == 0;
        if (shifted) /* h += temb_proj(silu(emb)), per channel, in the GroupNorm's passes */
            dfn_linear_forward(k->tp, k->te.silu_emb, P + k->temb_proj[l].w, P + k->temb_proj[l].b,
                               B, k->te.emb_dim, k->ch[l]);
        const dfn_groupnorm_fusion fu = {shifted ? k->tp : NULL, 0.0f, 0, 0};
        dfn_groupnorm_fused_forward(k->a[i], k->mean[i], k->rstd[i], k->h[i], &fu, P + k->norm[i].w,
                                    P + k->norm[i].b, B, k->ch[l], k->hs[l] * k->ws[l], c->groups,
                                    CLASSIFIER_EPS, 1);
        in = k->a[i];
    }
    const size_t nh = (size_t)B * k->head;
    if (c->flatten) { /* (B, 4ch, h, w) row by row; the features are its mean */
        memcpy(k->pool, in, nh * sizeof(float));
        dfn_avgpool_forward(k->gap, in, B, k->ch[2], k->hs[2] * k->ws[2]);
    } else
        dfn_avgpool_forward(k->pool, in, B, k->ch[2], k->hs[2] * k->ws[2]);
    k->dropped = training && m->cfg.dropout > 0.0f;
    if (k->dropped) {
        DFN_ASSERT(rng);
        k->drop_seed = rng->seed;
        k->drop_block = rng->counter;
        dfn_dropout_forward(k->drop, k->pool, nh, m->cfg.dropout, rng->seed, rng->counter);
        rng->counter += (nh + 3) / 4;
    }
    dfn_linear_forward(k->f, k->dropped ? k->drop : k->pool, P + k->fc1.w, P + k->fc1.b, B,
                       k->head, c->feature_dim);
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
    const size_t nf = (size_t)B * F, nh = (size_t)B * k->head;
    const size_t nlast = (size_t)B * plane(k, 2, k->ch[2]);

    memset(k->ds, 0, nf * sizeof(float));
    dfn_linear_backward(k->ds, G + k->fc2.w, G + k->fc2.b, dlogits, k->s, P + k->fc2.w, B, F,
                        m->cfg.num_classes);
    memset(k->df, 0, nf * sizeof(float));
    dfn_silu_backward(k->df, k->ds, k->f, nf);
    float *dhead = k->dropped ? k->ddrop : k->dpool; /* d(loss)/d(fc1's input) */
    memset(dhead, 0, nh * sizeof(float));
    dfn_linear_backward(dhead, G + k->fc1.w, G + k->fc1.b, k->df, k->dropped ? k->drop : k->pool,
                        P + k->fc1.w, B, k->head, F);
    if (k->dropped) {
        memset(k->dpool, 0, nh * sizeof(float));
        dfn_dropout_backward(k->dpool, k->ddrop, nh, m->cfg.dropout, k->drop_seed, k->drop_block);
    }
    /* g0: d(loss)/d(a[i]); g1: d(loss)/d(h[i]) */
    if (c->flatten) memcpy(k->g0, k->dpool, nlast * sizeof(float));
    else {
        memset(k->g0, 0, nlast * sizeof(float));
        dfn_avgpool_backward(k->g0, k->dpool, B, k->ch[2], k->hs[2] * k->ws[2]);
    }
    for (int i = k->n_conv - 1; i >= 0; i--) {
        const int l = i / k->per_stage;
        const int shifted = k->timed && i % k->per_stage == 0;
        if (shifted) memset(k->dtp, 0, (size_t)B * k->ch[l] * sizeof(float));
        /* g1 set; the time embedding's gradient sums in the same passes */
        dfn_groupnorm_fused_backward(k->g1, shifted ? k->dtp : NULL, G + k->norm[i].w, G + k->norm[i].b,
                                     k->g0, NULL, k->h[i], P + k->norm[i].w, P + k->norm[i].b, k->mean[i],
                                     k->rstd[i], B, k->ch[l], k->hs[l] * k->ws[l], c->groups, 1);
        if (shifted) {
            dfn_linear_backward(k->te.d_silu_emb, G + k->temb_proj[l].w, G + k->temb_proj[l].b,
                                k->dtp, k->te.silu_emb, P + k->temb_proj[l].w, B, k->te.emb_dim,
                                k->ch[l]);
        }
        dfn_conv2d_shape s = conv_shape(m, i, B);
        float *dinp = NULL;
        if (i > 0) {
            dinp = k->g0;
            memset(dinp, 0, (size_t)B * s.C * s.H * s.W * sizeof(float));
        } else if (dx) {
            dinp = dx;
            memset(dx, 0, (size_t)B * plane(k, 0, c->in_channels) * sizeof(float));
        }
        dfn_conv2d_backward(dinp, G + k->conv[i].w, G + k->conv[i].b, k->g1,
                            i == 0 ? k->x : k->a[i - 1], P + k->conv[i].w, &s);
    }
    if (k->timed) dfn_time_embed_backward(&k->te, m, B);
}

/* Convolutions (out elements x in channels x 9) and the two linear layers. */
static double macs(const dfn_model *m) {
    const classifier *k = m->impl;
    const dfn_classifier_config *c = &m->cfg.classifier;
    double total = 0;
    for (int i = 0; i < k->n_conv; i++) {
        const dfn_conv2d_shape s = conv_shape(m, i, 1);
        total += (double)plane(k, i / k->per_stage, s.OC) * s.C * 9;
    }
    if (k->timed) /* the embedding's two layers and the three projections */
        total += (double)c->channels * 4 * c->channels + 16.0 * c->channels * c->channels +
                 4.0 * c->channels * (k->ch[0] + k->ch[1] + k->ch[2]);
    return total + (double)k->head * c->feature_dim + (double)c->feature_dim * m->cfg.num_classes;
}

/* The features of FID and KID: SiLU(fc1) for the pooled head; for the flatten
 * head the last map's mean over pixels, as FID's Inception features are its
 * pool3 layer (Heusel et al. 2017): fc1 over the whole map fits the training
 * images so closely that its features put 10,000 training images at FID 0.96
 * from all 60,000 and the test images at 1.49, where the pooled map's are
 * (docs/recipes.md). */
static const float *features(const dfn_model *m) {
    const classifier *k = m->impl;
    return m->cfg.classifier.flatten ? k->gap : k->s;
}

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

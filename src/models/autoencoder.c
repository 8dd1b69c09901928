/* autoencoder.c - the KL autoencoder of latent diffusion (Rombach et al. 2022,
 * section 3 and appendix G; their AutoencoderKL), its encoder and decoder two
 * graphs of graph.h over one parameter table, and the diagonal Gaussian
 * posterior between them:
 *
 *   moments = quant_conv(encoder(x)),  mean, logvar = split(moments)
 *   logvar  = clamp(logvar, -30, 20)
 *   z       = mean + exp(logvar / 2) eps,  eps ~ N(0, I)   (training)
 *           = mean                                        (evaluation)
 *   x_rec   = decoder(post_quant_conv(z))
 *
 * The loss (src/train/autoencoder_task.c) adds kl_weight KL(q(z|x) || N(0, I))
 * to the reconstruction error; its gradient with respect to mean and logvar
 * comes in through dfn_autoencoder_backward. Names follow the reference's
 * state_dict (encoder.down.0.block.0.norm1.weight, decoder.mid.attn_1.q.bias,
 * quant_conv.weight, ...), so a checkpoint loads into the PyTorch twin
 * (scripts/torch_twin.py) strictly. */
#include <math.h>
#include <string.h>

#include "models/graph.h"
#include "models/models.h"

#define LOGVAR_MIN -30.0f
#define LOGVAR_MAX 20.0f
#define CODEC_CHUNK 64 /* images per forward in encode, decode and the scale */

typedef struct {
    dfn_graph enc, dec;
    int z, lres;    /* latent channels and resolution */
    size_t L;       /* floats of one latent: z lres^2 */
    double scale;   /* latent scale, 0 until measured */
    /* activations */
    float *moments; /* (B, 2z, lres, lres): the encoder's output */
    float *mean, *logvar, *eps, *zs; /* (B, L) each; logvar clamped */
    float *dz, *dmoments;
    int sampled;    /* the last forward drew eps */
} autoencoder;

static void setup(dfn_graph *g, const dfn_autoencoder_config *c) {
    g->groups = c->groups;
    g->eps = c->norm_eps;
    g->heads = 1;
    g->temb_dim = 0;
    g->shortcut = "nin_shortcut";
}

/* The middle of either side: ResBlock, attention, ResBlock. */
static int add_mid(dfn_graph *g, dfn_param_table *tab, const char *side, int h) {
    char name[DFN_MAX_TENSOR_NAME];
    const int C = g->nodes[h].C;
    snprintf(name, sizeof name, "%s.mid.block_1", side);
    h = dfn_graph_resblock(g, tab, name, h, C);
    snprintf(name, sizeof name, "%s.mid.attn_1", side);
    h = dfn_graph_attn(g, tab, name, h);
    snprintf(name, sizeof name, "%s.mid.block_2", side);
    return dfn_graph_resblock(g, tab, name, h, C);
}

static void build(dfn_model *m) {
    const dfn_autoencoder_config *c = &m->cfg.autoencoder;
    dfn_param_table *tab = &m->tab;
    autoencoder *a = dfn_calloc(1, sizeof *a);
    m->impl = a;
    const int top = c->n_levels - 1, z = c->latent_channels;
    a->z = z;
    a->lres = c->resolution >> top;
    a->L = (size_t)z * a->lres * a->lres;
    char name[DFN_MAX_TENSOR_NAME];

    dfn_graph *g = &a->enc;
    setup(g, c);
    int h = dfn_graph_input(g, c->in_channels, c->resolution);
    h = dfn_graph_conv(g, tab, "encoder.conv_in", h, c->channels, 3, 1);
    for (int l = 0; l < c->n_levels; l++) {
        for (int i = 0; i < c->num_res_blocks; i++) {
            snprintf(name, sizeof name, "encoder.down.%d.block.%d", l, i);
            h = dfn_graph_resblock(g, tab, name, h, c->channels * c->ch_mult[l]);
        }
        if (l != top) {
            snprintf(name, sizeof name, "encoder.down.%d.downsample.conv", l);
            h = dfn_graph_conv(g, tab, name, h, g->nodes[h].C, 3, 2);
        }
    }
    h = add_mid(g, tab, "encoder", h);
    h = dfn_graph_out(g, tab, "encoder.norm_out", "encoder.conv_out", h, 2 * z);
    dfn_graph_conv(g, tab, "quant_conv", h, 2 * z, 1, 1);

    g = &a->dec;
    setup(g, c);
    h = dfn_graph_input(g, z, a->lres);
    h = dfn_graph_conv(g, tab, "post_quant_conv", h, z, 1, 1);
    h = dfn_graph_conv(g, tab, "decoder.conv_in", h, c->channels * c->ch_mult[top], 3, 1);
    h = add_mid(g, tab, "decoder", h);
    for (int l = top; l >= 0; l--) {
        for (int i = 0; i < c->num_res_blocks + 1; i++) {
            snprintf(name, sizeof name, "decoder.up.%d.block.%d", l, i);
            h = dfn_graph_resblock(g, tab, name, h, c->channels * c->ch_mult[l]);
        }
        if (l != 0) {
            snprintf(name, sizeof name, "decoder.up.%d.upsample.conv", l);
            h = dfn_graph_upsample(g, tab, name, h);
        }
    }
    dfn_graph_out(g, tab, "decoder.norm_out", "decoder.conv_out", h, c->in_channels);
}

static void free_impl(dfn_model *m) {
    autoencoder *a = m->impl;
    if (!a) return;
    dfn_graph_free(&a->enc);
    dfn_graph_free(&a->dec);
    free(a);
    m->impl = NULL;
}

static void take(dfn_model *m, int B) {
    autoencoder *a = m->impl;
    dfn_graph_take(&a->enc, m, B);
    dfn_graph_take(&a->dec, m, B);
    const size_t n = (size_t)B * a->L;
    a->moments = dfn_arena_take(&m->acts, 2 * n);
    a->mean = dfn_arena_take(&m->acts, n);
    a->logvar = dfn_arena_take(&m->acts, n);
    a->eps = dfn_arena_take(&m->acts, n);
    a->zs = dfn_arena_take(&m->acts, n);
    a->dz = dfn_arena_take(&m->grad_acts, n);
    a->dmoments = dfn_arena_take(&m->grad_acts, 2 * n);
}

static float clamp_logvar(float v) {
    return v < LOGVAR_MIN ? LOGVAR_MIN : v > LOGVAR_MAX ? LOGVAR_MAX : v;
}

/* The encoder's moments of B images, split into mean and clamped logvar. */
static void posterior(autoencoder *a, const dfn_model *m, const float *x, int B, int training,
                      dfn_rng *rng) {
    dfn_graph_forward(&a->enc, m, a->moments, x, NULL, B, training, rng);
    for (int b = 0; b < B; b++) {
        const float *mo = a->moments + (size_t)b * 2 * a->L;
        memcpy(a->mean + (size_t)b * a->L, mo, a->L * sizeof(float));
        for (size_t i = 0; i < a->L; i++) a->logvar[(size_t)b * a->L + i] = clamp_logvar(mo[a->L + i]);
    }
}

static void forward(dfn_model *m, float *out, const float *x, const float *t, const int *y, int B,
                    int training, dfn_rng *rng) {
    (void)t;
    (void)y;
    autoencoder *a = m->impl;
    posterior(a, m, x, B, training, rng);
    const size_t n = (size_t)B * a->L;
    a->sampled = training;
    if (training) {
        /* the reparameterisation: z = mean + sigma eps, sigma = exp(logvar / 2) */
        DFN_ASSERT(rng && "an autoencoder's training forward draws its noise from rng");
        dfn_rng_normal(rng, a->eps, n);
        for (size_t i = 0; i < n; i++) a->zs[i] = a->mean[i] + expf(0.5f * a->logvar[i]) * a->eps[i];
    } else {
        memcpy(a->zs, a->mean, n * sizeof(float));
    }
    dfn_graph_forward(&a->dec, m, out, a->zs, NULL, B, training, rng);
}

void dfn_autoencoder_backward(dfn_model *m, const float *drec, const float *dmean,
                              const float *dlogvar, float *dx) {
    DFN_ASSERT(m && drec && m->cfg.kind == DFN_MODEL_AUTOENCODER);
    DFN_ASSERT(m->last_batch > 0 && "dfn_autoencoder_backward needs a kept forward first");
    autoencoder *a = m->impl;
    const int B = m->last_batch;
    dfn_graph_backward(&a->dec, m, drec, a->dz, NULL, NULL, B);
    /* through z = mean + exp(logvar / 2) eps and the clamp (whose gradient is 1
     * inside [-30, 20], as torch.clamp's, and 0 outside) into the moments */
    for (int b = 0; b < B; b++) {
        float *dmo = a->dmoments + (size_t)b * 2 * a->L;
        const float *mo = a->moments + (size_t)b * 2 * a->L;
        for (size_t i = 0; i < a->L; i++) {
            const size_t k = (size_t)b * a->L + i;
            float dm = a->dz[k], dl = 0.0f;
            if (a->sampled) dl = a->dz[k] * a->eps[k] * 0.5f * expf(0.5f * a->logvar[k]);
            if (dmean) dm += dmean[k];
            if (dlogvar) dl += dlogvar[k];
            const float raw = mo[a->L + i];
            dmo[i] = dm;
            dmo[a->L + i] = raw >= LOGVAR_MIN && raw <= LOGVAR_MAX ? dl : 0.0f;
        }
    }
    dfn_graph_backward(&a->enc, m, a->dmoments, dx, NULL, NULL, B);
}

static void backward(dfn_model *m, const float *dout, float *dx) {
    dfn_autoencoder_backward(m, dout, NULL, NULL, dx);
}

static double macs(const dfn_model *m) {
    const autoencoder *a = m->impl;
    return dfn_graph_macs(&a->enc) + dfn_graph_macs(&a->dec);
}

const dfn_model_ops dfn_autoencoder_ops = {build, free_impl, take, forward, backward, macs, NULL};

/* ---------------------------------------------------------------- the public calls */

static autoencoder *impl_of(const dfn_model *m) {
    DFN_ASSERT(m && m->cfg.kind == DFN_MODEL_AUTOENCODER && "not an autoencoder");
    return m->impl;
}

int dfn_autoencoder_latent_shape(const dfn_model *m, int dims[3]) {
    const autoencoder *a = impl_of(m);
    dims[0] = a->z;
    dims[1] = dims[2] = a->lres;
    return 3;
}

size_t dfn_autoencoder_latent_size(const dfn_model *m) { return impl_of(m)->L; }
double dfn_autoencoder_scale(const dfn_model *m) { return impl_of(m)->scale; }

void dfn_autoencoder_set_scale(dfn_model *m, double scale) {
    DFN_ASSERT(scale >= 0 && isfinite(scale));
    impl_of(m)->scale = scale;
}

void dfn_autoencoder_posterior(const dfn_model *m, const float **mean, const float **logvar) {
    const autoencoder *a = impl_of(m);
    DFN_ASSERT(m->forward_batch > 0 && "dfn_autoencoder_posterior needs a forward first");
    if (mean) *mean = a->mean;
    if (logvar) *logvar = a->logvar;
}

void dfn_autoencoder_encode(dfn_model *m, float *mean, float *logvar, const float *x, int batch) {
    autoencoder *a = impl_of(m);
    DFN_ASSERT(x && batch >= 0);
    const size_t D = dfn_model_input_size(m);
    for (int i = 0; i < batch; i += CODEC_CHUNK) {
        const int b = DFN_MIN(CODEC_CHUNK, batch - i);
        dfn_model_prepare(m, b);
        posterior(a, m, x + (size_t)i * D, b, 0, NULL);
        if (mean) memcpy(mean + (size_t)i * a->L, a->mean, (size_t)b * a->L * sizeof(float));
        if (logvar) memcpy(logvar + (size_t)i * a->L, a->logvar, (size_t)b * a->L * sizeof(float));
        m->last_batch = 0;
        m->forward_batch = b;
    }
}

void dfn_autoencoder_decode(dfn_model *m, float *x, const float *z, int batch) {
    autoencoder *a = impl_of(m);
    DFN_ASSERT(x && z && batch >= 0);
    const size_t D = dfn_model_input_size(m);
    for (int i = 0; i < batch; i += CODEC_CHUNK) {
        const int b = DFN_MIN(CODEC_CHUNK, batch - i);
        dfn_model_prepare(m, b);
        dfn_graph_forward(&a->dec, m, x + (size_t)i * D, z + (size_t)i * a->L, NULL, b, 0, NULL);
        m->last_batch = 0;
        m->forward_batch = 0; /* no posterior of this forward */
    }
}

double dfn_autoencoder_measure_scale(dfn_model *m, const float *x, size_t n) {
    autoencoder *a = impl_of(m);
    DFN_ASSERT(x && n > 0);
    const size_t D = dfn_model_input_size(m);
    float *mean = dfn_malloc((size_t)CODEC_CHUNK * a->L * sizeof(float));
    double sum = 0, sumsq = 0;
    for (size_t i = 0; i < n; i += CODEC_CHUNK) {
        const int b = (int)DFN_MIN((size_t)CODEC_CHUNK, n - i);
        dfn_autoencoder_encode(m, mean, NULL, x + i * D, b);
        for (size_t k = 0; k < (size_t)b * a->L; k++) {
            sum += mean[k];
            sumsq += (double)mean[k] * mean[k];
        }
    }
    free(mean);
    const double count = (double)n * a->L, var = sumsq / count - (sum / count) * (sum / count);
    return var > 0 ? 1.0 / sqrt(var) : 0.0;
}

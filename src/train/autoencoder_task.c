/* autoencoder_task.c - what a batch of a KL autoencoder's training computes
 * (Rombach et al. 2022, section 3 and appendix G, without the adversarial and
 * perceptual terms):
 *
 *   z = mean + exp(logvar / 2) eps,   x_rec = decoder(z)
 *   loss = 1/(B D) sum |x - x_rec|^p  +  kl_weight / D  KL(q(z|x) || N(0, I))
 *
 * with the reconstruction error L1 (p = 1, the reference's) or L2, and KL the
 * batch mean of dfn_kl_standard_normal. The reference sums the reconstruction
 * error over a sample's D values and averages over the batch; this loss is
 * theirs divided by D, so kl_weight means what it means there (1e-6 by
 * default). The validation metric is the PSNR of the reconstructions of the
 * posterior means, 10 log10(peak^2 / MSE) per image with peak 2 (images in
 * [-1, 1]), averaged over the images. At the end of training the latent scale
 * (1 / std of the posterior means over the first 10,000 training images) is
 * measured and written into the checkpoint. Previews: originals and their
 * reconstructions in alternate rows.
 *
 * Randomness: per micro-batch, the dropout masks of the encoder, then eps,
 * then the decoder's masks, from the stream the loop passes in. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "core/files.h"
#include "diffusion/io.h"
#include "models/models.h"
#include "train/train.h"

typedef struct {
    const dfn_train_params *p;
    int B;
    size_t D, L;
    float *rec, *drec, *dmean, *dlogvar;
} autoencoder_state;

static dfn_status check(const dfn_model *m, const dfn_dataset *ds, const dfn_train_params *p,
                        const char *what) {
    (void)m;
    (void)ds;
    (void)what;
    if (p->recon_loss != DFN_LOSS_L1 && p->recon_loss != DFN_LOSS_L2)
        return dfn_set_error(DFN_ERR_ARG,
                             "autoencoder: the reconstruction loss is l1 or l2, not %s",
                             dfn_loss_kind_name(p->recon_loss));
    if (!(p->kl_weight >= 0) || !isfinite(p->kl_weight))
        return dfn_set_error(DFN_ERR_ARG, "autoencoder: kl_weight = %g (must be >= 0)",
                             p->kl_weight);
    return DFN_OK;
}

static void end(void *state) {
    autoencoder_state *s = state;
    if (!s) return;
    free(s->rec), free(s->drec), free(s->dmean), free(s->dlogvar);
    free(s);
}

static dfn_status begin(void **state, dfn_model *m, const dfn_train_params *p, int B) {
    autoencoder_state *s = dfn_calloc(1, sizeof *s);
    s->p = p;
    s->B = B;
    s->D = dfn_model_input_size(m);
    s->L = dfn_autoencoder_latent_size(m);
    s->rec = dfn_malloc((size_t)B * s->D * sizeof(float));
    s->drec = dfn_malloc((size_t)B * s->D * sizeof(float));
    s->dmean = dfn_malloc((size_t)B * s->L * sizeof(float));
    s->dlogvar = dfn_malloc((size_t)B * s->L * sizeof(float));
    *state = s;
    return DFN_OK;
}

/* Sum over the batch of each image's PSNR. */
static double psnr_sum(const float *x, const float *rec, int B, size_t D) {
    double total = 0;
    for (int b = 0; b < B; b++) total += dfn_psnr(rec + (size_t)b * D, x + (size_t)b * D, D);
    return total;
}

static double batch(void *state, dfn_model *m, const float *x, const int *y, int B, int train,
                    dfn_rng *rng, float grad_scale, double *metric) {
    (void)y;
    autoencoder_state *s = state;
    const dfn_train_params *p = s->p;
    DFN_ASSERT(B <= s->B);
    /* validation reconstructs the posterior means (DFN_EVAL): the metric is of
     * what encode/decode give; training decodes a draw of the posterior */
    dfn_model_forward(m, s->rec, x, NULL, NULL, B, train ? DFN_TRAIN : DFN_EVAL, rng);
    double loss = dfn_loss(train ? s->drec : NULL, p->recon_loss, 1.0, s->rec, x, NULL, B, s->D);
    const float *mean, *logvar;
    dfn_autoencoder_posterior(m, &mean, &logvar);
    const double kl_scale = p->kl_weight / (double)s->D;
    loss += kl_scale * dfn_kl_standard_normal(train ? s->dmean : NULL, train ? s->dlogvar : NULL,
                                              mean, logvar, B, s->L, kl_scale * grad_scale);
    if (metric) *metric = psnr_sum(x, s->rec, B, s->D);
    if (train) {
        if (grad_scale != 1.0f)
            for (size_t i = 0; i < (size_t)B * s->D; i++) s->drec[i] *= grad_scale;
        dfn_autoencoder_backward(m, s->drec, s->dmean, s->dlogvar, NULL);
    }
    return loss;
}

static void describe(void *state, void *run) {
    autoencoder_state *s = state;
    cJSON *o = cJSON_AddObjectToObject(run, "autoencoder_loss");
    cJSON_AddStringToObject(o, "reconstruction", dfn_loss_kind_name(s->p->recon_loss));
    cJSON_AddNumberToObject(o, "kl_weight", s->p->kl_weight);
}

static dfn_status save(void *state, dfn_model *m, const char *path, const char *const *extra) {
    (void)state;
    return dfn_model_save(m, path, extra);
}

static void finish(void *state, dfn_model *m, const dfn_dataset *train) {
    (void)state;
    const size_t n = DFN_MIN(dfn_dataset_count(train), (size_t)DFN_LATENT_SCALE_IMAGES);
    const double scale = dfn_autoencoder_measure_scale(m, dfn_dataset_sample(train, 0), n);
    if (scale > 0 && isfinite(scale)) dfn_autoencoder_set_scale(m, scale); /* else none is recorded */
}

/* The first count / 2 training images (rows of 8) over their reconstructions. */
static dfn_status preview(void *state, dfn_model *m, const dfn_dataset *data, int count,
                          uint64_t seed, const char *prefix) {
    (void)seed;
    autoencoder_state *s = state;
    const int cols = 8, rows = DFN_MAX(1, count / (2 * cols));
    const int n = (int)DFN_MIN((size_t)rows * cols, dfn_dataset_count(data));
    float *grid = dfn_malloc((size_t)2 * rows * cols * s->D * sizeof(float));
    float *rec = dfn_malloc((size_t)n * s->D * sizeof(float));
    float *z = dfn_malloc((size_t)n * s->L * sizeof(float));
    const float *x = dfn_dataset_sample(data, 0);
    dfn_autoencoder_encode(m, z, NULL, x, n);
    dfn_autoencoder_decode(m, rec, z, n);
    for (size_t i = 0; i < (size_t)2 * rows * cols * s->D; i++) grid[i] = -1.0f;
    for (int i = 0; i < n; i++) {
        const int r = i / cols, c = i % cols;
        memcpy(grid + ((size_t)(2 * r) * cols + c) * s->D, x + (size_t)i * s->D, s->D * sizeof(float));
        memcpy(grid + ((size_t)(2 * r + 1) * cols + c) * s->D, rec + (size_t)i * s->D, s->D * sizeof(float));
    }
    int dims[3];
    dfn_model_input_shape(m, dims);
    dfn_buf path = {0};
    dfn_buf_printf(&path, "%s.png", prefix);
    dfn_status st = dfn_make_parent_dir(path.data);
    if (st == DFN_OK)
        st = dfn_png_write_grid(path.data, grid, 2 * rows * cols, dims[0], dims[1], dims[2], cols,
                                dims[1] < 64 ? 2 : 1);
    dfn_buf_free(&path);
    free(grid), free(rec), free(z);
    return st;
}

const dfn_train_task dfn_autoencoder_task = {"autoencoder", "psnr", check,   begin,  end, batch,
                                             describe,      save,   preview, finish, NULL, NULL, NULL};

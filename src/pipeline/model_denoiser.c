/* model_denoiser.c - a dfn_model as a denoiser: dfn_model_forward in eval mode,
 * the time as a float per row (a schedule's step index, fractional between
 * steps, or an sde's t), labels as given, the output scaled to the prediction
 * (dfn_prediction_network_scale: a score network outputs sigma * score).
 * Chunking and guidance are done by dfn_denoiser_eval. It lives with the
 * pipeline, above both the networks and the samplers, so that the samplers
 * never link a network. */
#include <string.h>

#include "core/core.h"
#include "diffusion/pipeline.h"

/* out (batch, dim) = scale * network(x, t, y); mode DFN_EVAL or DFN_EVAL_GRAD. */
static void run(dfn_model *model, float *out, const float *x, double t, const int *y, int batch,
                size_t dim, int mode, double scale) {
    float *tt = dfn_malloc((size_t)batch * sizeof(float));
    for (int b = 0; b < batch; b++) tt[b] = (float)t;
    dfn_model_forward(model, out, x, tt, y, batch, mode, NULL);
    if (scale != 1.0)
        for (size_t i = 0; i < (size_t)batch * dim; i++) out[i] = (float)(scale * out[i]);
    free(tt);
}

static void model_denoise(void *ctx, float *out, const float *x, double t, double alpha,
                          double sigma, const int *y, int batch, size_t dim) {
    (void)alpha, (void)sigma;
    run(ctx, out, x, t, y, batch, dim, DFN_EVAL, 1.0);
}

static void score_denoise(void *ctx, float *out, const float *x, double t, double alpha,
                          double sigma, const int *y, int batch, size_t dim) {
    run(ctx, out, x, t, y, batch, dim, DFN_EVAL,
        dfn_prediction_network_scale(DFN_PRED_SCORE, alpha, sigma));
}

/* J^T v of scale * network at x: a forward pass keeping activations
 * (DFN_EVAL_GRAD, no dropout: the same function as run), then the backward
 * pass with dout = scale v gives dx = J^T v. The backward also accumulates
 * parameter gradients; the model's gradient array is saved and restored
 * around it, so a VJP in the middle of training leaves the optimizer's
 * gradients untouched. */
static void vjp(dfn_model *model, float *pred, float *out, const float *x, double t,
                const float *v, const int *y, int batch, size_t dim, double scale) {
    const size_t np = dfn_model_num_params(model), n = (size_t)batch * dim;
    float *saved = dfn_malloc((np + 1) * sizeof(float));
    memcpy(saved, dfn_model_grads(model), np * sizeof(float));
    float *p = pred ? pred : dfn_malloc(n * sizeof(float));
    run(model, p, x, t, y, batch, dim, DFN_EVAL_GRAD, scale);
    float *sv = NULL;
    if (scale != 1.0) {
        sv = dfn_malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) sv[i] = (float)(scale * v[i]);
    }
    dfn_model_backward(model, sv ? sv : v, out);
    memcpy(dfn_model_grads(model), saved, np * sizeof(float));
    if (!pred) free(p);
    free(sv);
    free(saved);
}

static void model_vjp(void *ctx, float *pred, float *out, const float *x, double t, double alpha,
                      double sigma, const float *v, const int *y, int batch, size_t dim) {
    (void)alpha, (void)sigma;
    vjp(ctx, pred, out, x, t, v, y, batch, dim, 1.0);
}

static void score_vjp(void *ctx, float *pred, float *out, const float *x, double t, double alpha,
                      double sigma, const float *v, const int *y, int batch, size_t dim) {
    vjp(ctx, pred, out, x, t, v, y, batch, dim,
        dfn_prediction_network_scale(DFN_PRED_SCORE, alpha, sigma));
}

void dfn_model_denoiser(dfn_denoiser *d, dfn_model *model, dfn_prediction kind,
                        const dfn_schedule *schedule, const dfn_sde *sde, int max_batch,
                        double time_scale) {
    DFN_ASSERT(d && model);
    const int score = kind == DFN_PRED_SCORE;
    dfn_denoiser_init(d, score ? score_denoise : model_denoise, model, kind, schedule, sde);
    d->max_batch = max_batch > 0 ? max_batch : 0;
    d->null_label = dfn_model_get_config(model)->num_classes;
    d->time_scale = sde ? time_scale : 1.0;
    d->vjp = score ? score_vjp : model_vjp;
}

/* A consistency model's f (diffusion/pipeline.h): the network's prediction
 * converted to its x0 estimate D, then f = c_x x + c_d D (process.h). */
static void consistency_denoise(void *ctx, float *out, const float *x, double t, double alpha,
                                double sigma, const int *y, int batch, size_t dim) {
    const dfn_consistency_model *cm = ctx;
    const size_t n = (size_t)batch * dim;
    run(cm->model, out, x, t, y, batch, dim, DFN_EVAL,
        dfn_prediction_network_scale(cm->kind, alpha, sigma));
    dfn_prediction_convert(out, DFN_PRED_X0, out, cm->kind, x, alpha, sigma, n);
    dfn_consistency_apply(&cm->c, out, x, out, alpha, sigma, n);
}

void dfn_consistency_denoiser(dfn_denoiser *d, dfn_consistency_model *cm,
                              const dfn_schedule *schedule, const dfn_sde *sde, int max_batch,
                              double time_scale) {
    DFN_ASSERT(d && cm && cm->model);
    dfn_denoiser_init(d, consistency_denoise, cm, DFN_PRED_X0, schedule, sde);
    d->max_batch = max_batch > 0 ? max_batch : 0;
    d->null_label = dfn_model_get_config(cm->model)->num_classes;
    d->time_scale = sde ? time_scale : 1.0;
}

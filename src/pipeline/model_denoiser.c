/* model_denoiser.c - a dfn_model as a denoiser: dfn_model_forward in eval mode,
 * the time as a float per row (a schedule's step index, fractional between
 * steps, or an sde's t), labels as given. Chunking and guidance are done by
 * dfn_denoiser_eval. It lives with the pipeline, above both the networks and
 * the samplers, so that the samplers never link a network. */
#include <string.h>

#include "core/core.h"
#include "diffusion/pipeline.h"

static void model_denoise(void *ctx, float *out, const float *x, double t, double alpha,
                          double sigma, const int *y, int batch, size_t dim) {
    (void)alpha;
    (void)sigma;
    (void)dim;
    dfn_model *model = ctx;
    float *tt = dfn_malloc((size_t)batch * sizeof(float));
    for (int b = 0; b < batch; b++) tt[b] = (float)t;
    dfn_model_forward(model, out, x, tt, y, batch, 0, NULL);
    free(tt);
}

static void model_vjp(void *ctx, float *pred, float *out, const float *x, double t, double alpha,
                      double sigma, const float *v, const int *y, int batch, size_t dim);

void dfn_model_denoiser(dfn_denoiser *d, dfn_model *model, dfn_prediction kind,
                        const dfn_schedule *schedule, const dfn_sde *sde, int max_batch,
                        double time_scale) {
    DFN_ASSERT(d && model);
    dfn_denoiser_init(d, model_denoise, model, kind, schedule, sde);
    d->max_batch = max_batch > 0 ? max_batch : 0;
    d->null_label = dfn_model_get_config(model)->num_classes;
    d->time_scale = sde ? time_scale : 1.0;
    d->vjp = model_vjp;
}

/* J^T v of the network at x: a forward pass keeping activations (DFN_EVAL_GRAD,
 * no dropout: the same function as model_denoise), then the backward pass with
 * dout = v gives dx = J^T v. The backward also accumulates parameter gradients;
 * the model's gradient array is saved and restored around it, so a VJP in the
 * middle of training leaves the optimizer's gradients untouched. */
static void model_vjp(void *ctx, float *pred, float *out, const float *x, double t, double alpha,
                      double sigma, const float *v, const int *y, int batch, size_t dim) {
    (void)alpha;
    (void)sigma;
    dfn_model *model = ctx;
    const size_t np = dfn_model_num_params(model);
    float *saved = dfn_malloc((np + 1) * sizeof(float));
    memcpy(saved, dfn_model_grads(model), np * sizeof(float));
    float *tt = dfn_malloc((size_t)batch * sizeof(float));
    float *p = pred ? pred : dfn_malloc((size_t)batch * dim * sizeof(float));
    for (int b = 0; b < batch; b++) tt[b] = (float)t;
    dfn_model_forward(model, p, x, tt, y, batch, DFN_EVAL_GRAD, NULL);
    dfn_model_backward(model, v, out);
    memcpy(dfn_model_grads(model), saved, np * sizeof(float));
    if (!pred) free(p);
    free(tt);
    free(saved);
}

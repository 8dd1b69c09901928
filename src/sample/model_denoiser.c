/* model_denoiser.c - a dfn_model as a denoiser: dfn_model_forward in eval mode,
 * the time as a float per row (a schedule's step index, fractional between
 * steps, or an sde's t), labels as given. Chunking and guidance are done by
 * dfn_denoiser_eval. Kept apart so that the samplers never link the networks. */
#include "sample.h"

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

void dfn_model_denoiser(dfn_denoiser *d, dfn_model *model, dfn_prediction kind,
                        const dfn_schedule *schedule, const dfn_sde *sde, int max_batch,
                        double time_scale) {
    DFN_ASSERT(d && model);
    dfn_denoiser_init(d, model_denoise, model, kind, schedule, sde);
    d->max_batch = max_batch > 0 ? max_batch : 0;
    d->null_label = dfn_model_get_config(model)->num_classes;
    d->time_scale = sde ? time_scale : 1.0;
}

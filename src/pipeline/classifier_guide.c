/* classifier_guide.c - a classifier of noisy images as the guide of classifier
 * guidance (Dhariwal & Nichol 2021 section 4, alg. 1-2): the gradient
 * grad_x log p(y | x_t, t) = J^T (onehot(y) - softmax(logits)) through the
 * classifier's backward pass, and the checks that the classifier fits the
 * pipeline (a time-conditioned classifier of the same images and the same
 * noise process). It lives with the pipeline, above networks and samplers. */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "diffusion/pipeline.h"
#include "io/safetensors.h"
#include "models/models.h"

void dfn_classifier_guide(void *ctx, float *grad, const float *x, double t, double alpha,
                          double sigma, const int *y, int batch, size_t dim) {
    (void)alpha, (void)sigma;
    dfn_model *c = ctx;
    const int K = dfn_model_get_config(c)->num_classes;
    DFN_ASSERT(dfn_model_input_size(c) == dim);
    float *tt = dfn_malloc((size_t)batch * sizeof(float));
    float *logits = dfn_malloc((size_t)batch * K * sizeof(float));
    for (int b = 0; b < batch; b++) tt[b] = (float)t;
    dfn_model_forward(c, logits, x, tt, NULL, batch, DFN_EVAL_GRAD, NULL);
    for (int b = 0; b < batch; b++) { /* d log softmax_y / d logits = onehot(y) - softmax */
        float *z = logits + (size_t)b * K;
        double mx = z[0], sum = 0.0;
        for (int k = 1; k < K; k++) mx = fmax(mx, z[k]);
        for (int k = 0; k < K; k++) sum += exp(z[k] - mx);
        for (int k = 0; k < K; k++) z[k] = (float)((k == y[b]) - exp(z[k] - mx) / sum);
    }
    dfn_model_backward(c, logits, grad); /* grad = J^T dlogits */
    dfn_model_zero_grad(c);              /* the parameter gradients are not wanted */
    free(tt);
    free(logits);
}

/* 1 if the two processes give the same noise levels at the same network times. */
static int same_process(const dfn_process_params *a, const dfn_schedule *sa,
                        const dfn_process_params *b, const dfn_schedule *sb) {
    if (a->continuous != b->continuous) return 0;
    if (!a->continuous) {
        if (sa->T != sb->T) return 0;
        for (int i = 0; i < sa->T; i++)
            if (!(fabs(sa->alpha_bar[i] - sb->alpha_bar[i]) <= 1e-9)) return 0;
        return 1;
    }
    if (a->sde.kind != b->sde.kind || a->time_scale != b->time_scale) return 0;
    for (int i = 0; i <= 10; i++) {
        double t = 1e-3 + i * (1.0 - 1e-3) / 10, aa, as, ba, bs;
        dfn_sde_marginal(&a->sde, t, &aa, &as);
        dfn_sde_marginal(&b->sde, t, &ba, &bs);
        if (!(fabs(aa - ba) <= 1e-9 && fabs(as - bs) <= 1e-9 * fmax(1.0, as))) return 0;
    }
    return 1;
}

dfn_status dfn_pipeline_load_classifier(const dfn_pipeline *pipe, dfn_model **out,
                                        const char *path) {
    DFN_ASSERT(pipe && out && path);
    *out = NULL;
    dfn_st_file *f = NULL;
    dfn_model *c = NULL;
    dfn_process_params proc;
    dfn_schedule sch;
    memset(&sch, 0, sizeof sch);
    int have_schedule = 0;
    dfn_status st;
    if ((st = dfn_st_open(&f, path)) != DFN_OK) goto fail;
    if ((st = dfn_model_load_from(&c, f)) != DFN_OK) goto fail;
    const dfn_model_config *cfg = dfn_model_get_config(c);
    if (cfg->kind != DFN_MODEL_CLASSIFIER || !cfg->classifier.time_embed) {
        st = dfn_set_error(DFN_ERR_ARG, "%s: a %s%s, not a classifier of noisy images "
                                        "(diffusion train-classifier --noisy makes one)",
                           path, cfg->kind == DFN_MODEL_CLASSIFIER ? "clean-image " : "",
                           dfn_model_kind_name(cfg->kind));
        goto fail;
    }
    int dims[3];
    const int nd = dfn_pipeline_sample_shape(pipe, dims);
    if ((st = dfn_model_check_input(c, nd, dims, "the diffusion model's samples")) != DFN_OK)
        goto fail;
    const char *process = dfn_st_metadata(f, "process");
    if (!process) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: no \"process\" in the metadata (which noise the "
                                           "classifier was trained on)", path);
        goto fail;
    }
    if ((st = dfn_process_from_json(&proc, &sch, process)) != DFN_OK) {
        st = dfn_set_error(st, "%s: process metadata: %s", path, dfn_last_error());
        goto fail;
    }
    have_schedule = !proc.continuous;
    const dfn_process_params *pp = dfn_pipeline_process(pipe);
    if (!same_process(&proc, &sch, pp, dfn_pipeline_schedule(pipe))) {
        st = dfn_set_error(DFN_ERR_ARG, "%s: trained on another noise process (%s) than the "
                                        "diffusion model %s (%s); train it with --process-from "
                                        "the diffusion checkpoint",
                           path, proc.continuous ? dfn_sde_kind_name(proc.sde.kind) : "discrete",
                           dfn_pipeline_path(pipe) ? dfn_pipeline_path(pipe) : "",
                           pp->continuous ? dfn_sde_kind_name(pp->sde.kind) : "discrete");
        goto fail;
    }
    if (have_schedule) dfn_schedule_free(&sch);
    dfn_st_close(f);
    *out = c;
    return DFN_OK;
fail:
    if (have_schedule) dfn_schedule_free(&sch);
    dfn_st_close(f);
    dfn_model_free(c);
    return st;
}

/* objective.c - what a diffusion model is trained on: the noisy input x_t, the
 * target of the chosen prediction, a per-sample weight, and the loss with its
 * derivative for the model's backward.
 *
 * Weights are stated for the eps-space or x0-space loss and moved to the chosen
 * prediction with dfn_prediction_x0_gain: an L2 error e in x0 is an error
 * gain * e in the prediction, so weight_pred = weight_x0 / gain^2. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "diffusion/train.h"

static const char *const loss_names[] = {"l2", "l1", "huber"};
_Static_assert(sizeof(loss_names) / sizeof(loss_names[0]) == DFN_LOSS_COUNT,
               "loss_names must name every dfn_loss_kind");
static const char *const weighting_names[] = {"uniform", "vlb", "min-snr", "sigma2"};
_Static_assert(sizeof(weighting_names) / sizeof(weighting_names[0]) == DFN_WEIGHT_COUNT,
               "weighting_names must name every dfn_weighting");

const char *dfn_loss_kind_name(dfn_loss_kind kind) {
    return dfn_name_of(loss_names, DFN_LOSS_COUNT, (int)kind);
}

int dfn_loss_kind_from_name(const char *name) {
    static const dfn_name_alias aliases[] = {{"mse", DFN_LOSS_L2}, {NULL, 0}};
    return dfn_name_lookup("loss", name, loss_names, DFN_LOSS_COUNT, aliases);
}

const char *dfn_weighting_name(dfn_weighting w) {
    return dfn_name_of(weighting_names, DFN_WEIGHT_COUNT, (int)w);
}

int dfn_weighting_from_name(const char *name) {
    return dfn_name_lookup("loss weighting", name, weighting_names, DFN_WEIGHT_COUNT, NULL);
}

dfn_objective dfn_objective_init(void) {
    dfn_objective o;
    o.prediction = DFN_PRED_EPS;
    o.loss = DFN_LOSS_L2;
    o.huber_delta = 1.0;
    o.weighting = DFN_WEIGHT_UNIFORM;
    o.min_snr_gamma = 5.0; /* Hang et al. 2023 section 4: gamma = 5 */
    return o;
}

dfn_status dfn_objective_validate(const dfn_objective *obj, int discrete) {
    DFN_ASSERT(obj != NULL);
    if ((int)obj->prediction < 0 || obj->prediction >= DFN_PRED_COUNT)
        return dfn_set_error(DFN_ERR_ARG, "objective: prediction %d is not a dfn_prediction",
                             (int)obj->prediction);
    if ((int)obj->loss < 0 || obj->loss >= DFN_LOSS_COUNT)
        return dfn_set_error(DFN_ERR_ARG, "objective: loss %d is not a dfn_loss_kind",
                             (int)obj->loss);
    if ((int)obj->weighting < 0 || obj->weighting >= DFN_WEIGHT_COUNT)
        return dfn_set_error(DFN_ERR_ARG, "objective: weighting %d is not a dfn_weighting",
                             (int)obj->weighting);
    if (obj->loss == DFN_LOSS_HUBER && !(obj->huber_delta > 0.0 && isfinite(obj->huber_delta)))
        return dfn_set_error(DFN_ERR_ARG, "objective: huber delta = %g, need delta > 0",
                             obj->huber_delta);
    if (obj->weighting == DFN_WEIGHT_MIN_SNR &&
        !(obj->min_snr_gamma > 0.0 && isfinite(obj->min_snr_gamma)))
        return dfn_set_error(DFN_ERR_ARG, "objective: min-snr gamma = %g, need gamma > 0",
                             obj->min_snr_gamma);
    if (obj->weighting == DFN_WEIGHT_VLB && !discrete)
        return dfn_set_error(DFN_ERR_ARG,
                             "objective: the vlb weighting needs a discrete beta schedule, not a "
                             "continuous process");
    return DFN_OK;
}

/* ---------------------------------------------------------------- training times */

void dfn_sample_timesteps(int *t, int batch, int T, dfn_rng *rng) {
    DFN_ASSERT(t && rng && batch >= 0 && T >= 1);
    if (batch == 0) return;
    float *u = dfn_malloc((size_t)batch * sizeof(float));
    dfn_rng_uniform(rng, u, (size_t)batch);
    for (int b = 0; b < batch; b++) {
        int i = (int)floor((double)u[b] * T);     /* uniform on 0..T-1 (DDPM algorithm 1) */
        t[b] = i < 0 ? 0 : i > T - 1 ? T - 1 : i; /* u can round to 1.0f */
    }
    free(u);
}

void dfn_sample_times(float *t, int batch, double t_min, double t_max, dfn_rng *rng) {
    DFN_ASSERT(t && rng && batch >= 0 && t_min < t_max);
    if (batch == 0) return;
    float *u = dfn_malloc((size_t)batch * sizeof(float));
    dfn_rng_uniform(rng, u, (size_t)batch);
    /* keep the float results strictly inside (t_min, t_max): u can round to 1.0f,
     * and the cast to float can land on an end */
    const float lo = nextafterf((float)t_min, INFINITY), hi = nextafterf((float)t_max, -INFINITY);
    for (int b = 0; b < batch; b++) {
        float v = (float)(t_min + (double)u[b] * (t_max - t_min));
        t[b] = v < lo ? lo : v > hi ? hi : v;
    }
    free(u);
}

/* ---------------------------------------------------------------- weights */

/* min-SNR-gamma (Hang et al. 2023 section 3): min(SNR, gamma) on the x0-space loss. */
static double min_snr_weight(dfn_prediction kind, double gamma, double alpha, double sigma) {
    const double snr = (alpha * alpha) / (sigma * sigma);
    const double w_x0 = DFN_MIN(snr, gamma);
    switch (kind) {
    case DFN_PRED_EPS: return w_x0 / snr; /* Hang et al.: min(SNR, gamma)/SNR */
    case DFN_PRED_X0: return w_x0;
    default: {
        double gain = dfn_prediction_x0_gain(kind, alpha, sigma);
        return w_x0 / (gain * gain); /* v, VP: min(SNR, gamma)/(SNR + 1) */
    }
    }
}

double dfn_objective_weight(const dfn_objective *obj, double alpha, double sigma) {
    DFN_ASSERT(obj != NULL);
    switch (obj->weighting) {
    case DFN_WEIGHT_UNIFORM: return 1.0;
    case DFN_WEIGHT_MIN_SNR:
        return min_snr_weight(obj->prediction, obj->min_snr_gamma, alpha, sigma);
    case DFN_WEIGHT_SIGMA2: /* Song & Ermon 2019 section 4.2, eqs. 5-6: lambda = sigma^2 */
        return sigma * sigma;
    case DFN_WEIGHT_VLB:
        DFN_ASSERT(0 && "vlb weighting needs a schedule: use dfn_objective_weight_discrete");
        return 0.0;
    default: DFN_ASSERT(0 && "bad dfn_weighting");
    }
    return 0.0;
}

double dfn_objective_weight_discrete(const dfn_objective *obj, const dfn_schedule *s, int i) {
    DFN_ASSERT(obj && s && i >= 0 && i < s->T);
    double alpha, sigma;
    dfn_schedule_alpha_sigma(s, i, &alpha, &sigma);
    if (obj->weighting != DFN_WEIGHT_VLB) return dfn_objective_weight(obj, alpha, sigma);
    /* The bound's KL term L_{t-1} = 1/(2 s_t^2) ||mu~_t - mu_th||^2 (Ho et al. 2020
     * eq. 8) with the eps parametrisation (eq. 11) is
     *   b_t^2 / (2 s_t^2 a_t (1 - abar_t)) ||eps - eps_th||^2   (eq. 12),
     * here with s_t^2 = b~_t; b~_1 = 0 is clipped to b~_2 as improved-diffusion's
     * posterior_log_variance_clipped does. */
    const double b = s->beta[i], a = s->alpha[i];
    const double btilde = exp(s->posterior_log_variance_clipped[i]);
    const double w_eps = b * b / (2.0 * btilde * a * (1.0 - s->alpha_bar[i]));
    if (obj->prediction == DFN_PRED_EPS) return w_eps;
    /* the same bound in another prediction's space: ||d eps||^2 = SNR ||d x0||^2 */
    const double gain = dfn_prediction_x0_gain(obj->prediction, alpha, sigma);
    return w_eps * s->snr[i] / (gain * gain);
}

/* ---------------------------------------------------------------- inputs and targets */

/* x_t = alpha x0 + sigma eps and the target, for one sample of dim elements. */
static void sample_inputs(float *x_t, float *target, dfn_prediction kind, const float *x0,
                          const float *eps, double alpha, double sigma, size_t dim) {
    dfn_prediction_target(target, kind, x0, eps, alpha, sigma, dim);
    for (size_t d = 0; d < dim; d++)
        x_t[d] = (float)(alpha * x0[d] + sigma * eps[d]);
}

static void check_batch_args(const float *x_t, const float *target, const dfn_objective *obj,
                             const float *x0, const float *eps, int batch) {
    DFN_ASSERT(x_t && target && obj && x0 && eps && batch >= 0);
    /* outputs are written while inputs are still read */
    DFN_ASSERT(x_t != x0 && x_t != eps && target != x0 && target != eps && x_t != target);
}

void dfn_objective_batch(float *x_t, float *target, float *weight, const dfn_objective *obj,
                         const float *x0, const float *eps, const double *alpha,
                         const double *sigma, int batch, size_t dim) {
    check_batch_args(x_t, target, obj, x0, eps, batch);
    DFN_ASSERT(alpha && sigma);
#pragma omp parallel for schedule(static) if ((size_t)batch * dim > 65536)
    for (int b = 0; b < batch; b++) {
        const size_t o = (size_t)b * dim;
        sample_inputs(x_t + o, target + o, obj->prediction, x0 + o, eps + o, alpha[b], sigma[b],
                      dim);
    }
    if (weight)
        for (int b = 0; b < batch; b++)
            weight[b] = (float)dfn_objective_weight(obj, alpha[b], sigma[b]);
}

void dfn_objective_batch_discrete(float *x_t, float *target, float *weight,
                                  const dfn_objective *obj, const dfn_schedule *s, const float *x0,
                                  const float *eps, const int *t, int batch, size_t dim) {
    check_batch_args(x_t, target, obj, x0, eps, batch);
    DFN_ASSERT(s && t);
    for (int b = 0; b < batch; b++)
        DFN_ASSERT(t[b] >= 0 && t[b] < s->T);
#pragma omp parallel for schedule(static) if ((size_t)batch * dim > 65536)
    for (int b = 0; b < batch; b++) {
        const size_t o = (size_t)b * dim;
        /* DDPM eq. 4 / algorithm 1: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps */
        sample_inputs(x_t + o, target + o, obj->prediction, x0 + o, eps + o,
                      s->sqrt_alpha_bar[t[b]], s->sqrt_one_minus_alpha_bar[t[b]], dim);
    }
    if (weight)
        for (int b = 0; b < batch; b++)
            weight[b] = (float)dfn_objective_weight_discrete(obj, s, t[b]);
}

void dfn_objective_batch_sde(float *x_t, float *target, float *weight, const dfn_objective *obj,
                             const dfn_sde *sde, const float *x0, const float *eps, const float *t,
                             int batch, size_t dim) {
    check_batch_args(x_t, target, obj, x0, eps, batch);
    DFN_ASSERT(sde && t);
    double *coef = dfn_malloc(2 * (size_t)(batch > 0 ? batch : 1) * sizeof(double));
    double *alpha = coef, *sigma = coef + batch;
    for (int b = 0; b < batch; b++)
        dfn_sde_marginal(sde, t[b], &alpha[b], &sigma[b]);
    dfn_objective_batch(x_t, target, weight, obj, x0, eps, alpha, sigma, batch, dim);
    free(coef);
}

/* ---------------------------------------------------------------- losses */

/* loss(r) and d loss / d r for r = pred - target. */
static inline double loss1(dfn_loss_kind kind, double delta, double r, double *dr) {
    switch (kind) {
    case DFN_LOSS_L2: *dr = 2.0 * r; return r * r;
    case DFN_LOSS_L1: *dr = (r > 0.0) - (r < 0.0); return fabs(r);
    case DFN_LOSS_HUBER: { /* Huber 1964; torch.nn.HuberLoss */
        double ar = fabs(r);
        if (ar < delta) {
            *dr = r;
            return 0.5 * r * r;
        }
        *dr = delta * ((r > 0.0) - (r < 0.0));
        return delta * (ar - 0.5 * delta);
    }
    default: DFN_ASSERT(0 && "bad dfn_loss_kind");
    }
    return 0.0;
}

double dfn_loss(float *dpred, dfn_loss_kind kind, double delta, const float *pred,
                const float *target, const float *weight, int batch, size_t dim) {
    DFN_ASSERT(pred && target && batch >= 0);
    DFN_ASSERT((int)kind >= 0 && kind < DFN_LOSS_COUNT);
    DFN_ASSERT(kind != DFN_LOSS_HUBER || delta > 0.0);
    if (batch == 0 || dim == 0) return 0.0;
    const double scale = 1.0 / ((double)batch * (double)dim); /* mean over all elements */
    double *partial = dfn_malloc((size_t)batch * sizeof(double));
    /* one sample per task, summed in element order: the same bits for any thread count */
#pragma omp parallel for schedule(static) if ((size_t)batch * dim > 65536)
    for (int b = 0; b < batch; b++) {
        const size_t o = (size_t)b * dim;
        const double w = weight ? weight[b] : 1.0;
        const double gscale = w * scale;
        double sum = 0.0;
        for (size_t d = 0; d < dim; d++) {
            double dr;
            sum += loss1(kind, delta, (double)pred[o + d] - (double)target[o + d], &dr);
            if (dpred) dpred[o + d] = (float)(gscale * dr);
        }
        partial[b] = w * sum;
    }
    double total = 0.0;
    for (int b = 0; b < batch; b++)
        total += partial[b];
    free(partial);
    return total * scale;
}

double dfn_objective_loss(float *dpred, const dfn_objective *obj, const float *pred,
                          const float *target, const float *weight, int batch, size_t dim) {
    DFN_ASSERT(obj != NULL);
    return dfn_loss(dpred, obj->loss, obj->huber_delta, pred, target, weight, batch, dim);
}

/* ---------------------------------------------------------------- JSON (checkpoint metadata) */

char *dfn_objective_to_json(const dfn_objective *obj) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "prediction", dfn_prediction_name(obj->prediction));
    cJSON_AddStringToObject(o, "loss", dfn_loss_kind_name(obj->loss));
    cJSON_AddNumberToObject(o, "huber_delta", obj->huber_delta);
    cJSON_AddStringToObject(o, "weighting", dfn_weighting_name(obj->weighting));
    cJSON_AddNumberToObject(o, "min_snr_gamma", obj->min_snr_gamma);
    char *text = cJSON_PrintUnformatted(o);
    DFN_ASSERT(text);
    char *out = dfn_strdup(text); /* malloc'ed, whatever allocator cJSON uses */
    cJSON_free(text);
    cJSON_Delete(o);
    return out;
}

dfn_status dfn_objective_from_json(dfn_objective *obj, const char *json) {
    *obj = dfn_objective_init();
    cJSON *o = cJSON_Parse(json);
    if (!o) return dfn_set_error(DFN_ERR_FORMAT, "objective: not valid JSON");
    dfn_status st = DFN_OK;
    const cJSON *pred = cJSON_GetObjectItemCaseSensitive(o, "prediction");
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(o, "loss");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "weighting");
    int k;
    if (!cJSON_IsString(pred) || (k = dfn_prediction_from_name(pred->valuestring)) < 0) {
        st = dfn_set_error(DFN_ERR_FORMAT, "objective: unknown or missing \"prediction\"");
        goto done;
    }
    obj->prediction = (dfn_prediction)k;
    if (cJSON_IsString(loss) && (k = dfn_loss_kind_from_name(loss->valuestring)) >= 0) obj->loss = (dfn_loss_kind)k;
    if (cJSON_IsString(w) && (k = dfn_weighting_from_name(w->valuestring)) >= 0) obj->weighting = (dfn_weighting)k;
    const cJSON *delta = cJSON_GetObjectItemCaseSensitive(o, "huber_delta");
    const cJSON *gamma = cJSON_GetObjectItemCaseSensitive(o, "min_snr_gamma");
    if ((delta && !(cJSON_IsNumber(delta) && isfinite(delta->valuedouble))) ||
        (gamma && !(cJSON_IsNumber(gamma) && isfinite(gamma->valuedouble)))) {
        st = dfn_set_error(DFN_ERR_FORMAT, "objective: huber_delta and min_snr_gamma must be finite numbers");
        goto done;
    }
    if (delta) obj->huber_delta = delta->valuedouble;
    if (gamma) obj->min_snr_gamma = gamma->valuedouble;
done:
    cJSON_Delete(o);
    return st;
}

/* prediction.c - the one place where eps, x0, v, score and flow predictions are
 * turned into each other. Everything rests on x_t = alpha x0 + sigma eps:
 *
 *   eps   -> x0 = (x_t - sigma eps) / alpha                (Ho et al. 2020 eq. 15)
 *   x0    -> eps = (x_t - alpha x0) / sigma
 *   v     = alpha eps - sigma x0 (Salimans & Ho 2022 section 4); with x_t this is
 *           the 2x2 system [alpha sigma; -sigma alpha] (x0, eps) = (x_t, v):
 *           x0 = (alpha x_t - sigma v)/(alpha^2 + sigma^2),
 *           eps = (sigma x_t + alpha v)/(alpha^2 + sigma^2)  (VP: denominators 1)
 *   score = -eps / sigma (Song et al. 2021 eq. 7's target; Vincent 2011)
 *   flow  u = eps - x0 (Liu et al. 2023 eq. 1): [alpha sigma; -1 1] (x0, eps) = (x_t, u):
 *           x0 = (x_t - sigma u)/(alpha + sigma), eps = (x_t + alpha u)/(alpha + sigma)
 *
 * Each conversion goes through (x0, eps), computing only the half it needs. */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "diffusion/process.h"

static const char *const prediction_names[] = {"eps", "x0", "v", "score", "flow"};
_Static_assert(sizeof(prediction_names) / sizeof(prediction_names[0]) == DFN_PRED_COUNT,
               "prediction_names must name every dfn_prediction");

const char *dfn_prediction_name(dfn_prediction kind) {
    return dfn_name_of(prediction_names, DFN_PRED_COUNT, (int)kind);
}

int dfn_prediction_from_name(const char *name) {
    return dfn_name_lookup("prediction", name, prediction_names, DFN_PRED_COUNT, NULL);
}

/* Which of x0 and eps the output kind needs. */
static int needs_x0(dfn_prediction k) {
    return k == DFN_PRED_X0 || k == DFN_PRED_V || k == DFN_PRED_FLOW;
}
static int needs_eps(dfn_prediction k) { return k != DFN_PRED_X0; }

/* One element: (pred, x_t) -> out, in double. */
static inline double convert1(dfn_prediction out_kind, double p, dfn_prediction pred_kind,
                              double xt, double a, double s, int want_x0, int want_eps) {
    double x0 = 0.0, eps = 0.0;
    switch (pred_kind) {
    case DFN_PRED_EPS:
        eps = p;
        if (want_x0) x0 = (xt - s * eps) / a;
        break;
    case DFN_PRED_X0:
        x0 = p;
        if (want_eps) eps = (xt - a * x0) / s;
        break;
    case DFN_PRED_V: {
        double n2 = a * a + s * s;
        if (want_x0) x0 = (a * xt - s * p) / n2;
        if (want_eps) eps = (s * xt + a * p) / n2;
        break;
    }
    case DFN_PRED_SCORE:
        eps = -s * p;
        if (want_x0) x0 = (xt - s * eps) / a;
        break;
    case DFN_PRED_FLOW: {
        double n1 = a + s;
        if (want_x0) x0 = (xt - s * p) / n1;
        if (want_eps) eps = (xt + a * p) / n1;
        break;
    }
    default: break;
    }
    switch (out_kind) {
    case DFN_PRED_EPS: return eps;
    case DFN_PRED_X0: return x0;
    case DFN_PRED_V: return a * eps - s * x0;
    case DFN_PRED_SCORE: return -eps / s;
    case DFN_PRED_FLOW: return eps - x0;
    default: return 0.0;
    }
}

static void convert_span(float *out, dfn_prediction out_kind, const float *pred,
                         dfn_prediction pred_kind, const float *x_t, double alpha, double sigma,
                         size_t n) {
    if (out_kind == pred_kind) {
        if (out != pred) memmove(out, pred, n * sizeof(float));
        return;
    }
    const int wx0 = needs_x0(out_kind), weps = needs_eps(out_kind);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)convert1(out_kind, pred[i], pred_kind, x_t[i], alpha, sigma, wx0, weps);
}

static void check_kinds(dfn_prediction out_kind, dfn_prediction pred_kind) {
    DFN_ASSERT((int)out_kind >= 0 && out_kind < DFN_PRED_COUNT);
    DFN_ASSERT((int)pred_kind >= 0 && pred_kind < DFN_PRED_COUNT);
}

void dfn_prediction_convert(float *out, dfn_prediction out_kind, const float *pred,
                            dfn_prediction pred_kind, const float *x_t, double alpha, double sigma,
                            size_t n) {
    check_kinds(out_kind, pred_kind);
    DFN_ASSERT(out && pred && (x_t || out_kind == pred_kind));
    convert_span(out, out_kind, pred, pred_kind, x_t, alpha, sigma, n);
}

void dfn_prediction_convert_batch(float *out, dfn_prediction out_kind, const float *pred,
                                  dfn_prediction pred_kind, const float *x_t, const double *alpha,
                                  const double *sigma, int batch, size_t dim) {
    check_kinds(out_kind, pred_kind);
    DFN_ASSERT(out && pred && alpha && sigma && batch >= 0 && (x_t || out_kind == pred_kind));
#pragma omp parallel for schedule(static) if ((size_t)batch * dim > 65536)
    for (int b = 0; b < batch; b++) {
        const size_t o = (size_t)b * dim;
        convert_span(out + o, out_kind, pred + o, pred_kind, x_t ? x_t + o : NULL, alpha[b],
                     sigma[b], dim);
    }
}

void dfn_prediction_target(float *out, dfn_prediction kind, const float *x0, const float *eps,
                           double alpha, double sigma, size_t n) {
    DFN_ASSERT((int)kind >= 0 && kind < DFN_PRED_COUNT);
    DFN_ASSERT(out && x0 && eps);
    for (size_t i = 0; i < n; i++) {
        const double x = x0[i], e = eps[i];
        double v = 0.0;
        switch (kind) {
        case DFN_PRED_EPS: v = e; break;
        case DFN_PRED_X0: v = x; break;
        case DFN_PRED_V: v = alpha * e - sigma * x; break; /* Salimans & Ho 2022 section 4 */
        case DFN_PRED_SCORE: v = -e / sigma; break;        /* grad log N(x_t; alpha x0, sigma^2) */
        case DFN_PRED_FLOW: v = e - x; break;              /* Liu et al. 2023 eq. 1 */
        default: break;
        }
        out[i] = (float)v;
    }
}

/* c_out for a network trained to predict `kind` (prediction = c_out F): 1/sigma
 * for the score, whose network outputs sigma * score = -E[eps | x_t] (Song &
 * Ermon 2020, technique 3), 1 for every other kind. */
double dfn_prediction_network_scale(dfn_prediction kind, double alpha, double sigma) {
    (void)alpha;
    return kind == DFN_PRED_SCORE ? 1.0 / sigma : 1.0;
}

/* d kind / d x0 with x_t fixed, i.e. eps = (x_t - alpha x0)/sigma moving with x0:
 *   eps: -alpha/sigma    v: -alpha^2/sigma - sigma    score: alpha/sigma^2
 *   flow: -alpha/sigma - 1                             x0: 1 */
double dfn_prediction_x0_gain(dfn_prediction kind, double alpha, double sigma) {
    switch (kind) {
    case DFN_PRED_EPS: return fabs(alpha / sigma);
    case DFN_PRED_X0: return 1.0;
    case DFN_PRED_V: return fabs((alpha * alpha + sigma * sigma) / sigma);
    case DFN_PRED_SCORE: return fabs(alpha / (sigma * sigma));
    case DFN_PRED_FLOW: return fabs((alpha + sigma) / sigma);
    default: DFN_ASSERT(0 && "bad dfn_prediction");
    }
    return 0.0;
}

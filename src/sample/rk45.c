/* rk45.c - Dormand-Prince 5(4) with step control (Dormand & Prince 1980; Hairer,
 * Norsett & Wanner 1993 II.4), as scipy's RK45 that score_sde calls. */
#include <math.h>
#include <string.h>

#include "sample/rk45.h"

/* Hairer et al. 1993 table II.5.2: 7 stages, the last one at the new point
 * (first same as last), the 5th-order solution advances. */
static const double DP_C[7] = {0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1, 1};
static const double DP_A[7][6] = {
    {0},
    {1.0 / 5},
    {3.0 / 40, 9.0 / 40},
    {44.0 / 45, -56.0 / 15, 32.0 / 9},
    {19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729},
    {9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656},
    {35.0 / 384, 0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84}};
/* 5th minus 4th order weights: the local error estimate */
static const double DP_E[7] = {71.0 / 57600,  0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200,
                               22.0 / 525, -1.0 / 40};

/* y = x + h sum_j c_j k_j (c: m coefficients, k: m arrays of n). */
static void axpy_n(float *y, const float *x, double h, const double *c, float *const *k, int m,
                   size_t n) {
    for (size_t i = 0; i < n; i++) {
        double acc = 0.0;
        for (int j = 0; j < m; j++)
            if (c[j] != 0.0) acc += c[j] * k[j][i];
        y[i] = (float)(x[i] + h * acc);
    }
}

dfn_status dfn_rk45_integrate(const char *name, rk45_rhs f, void *ctx, float *x, size_t n, double t0,
                          double t1, const rk45_options *o, int *accepted_out,
                          int *rejected_out) {
    DFN_ASSERT(name && f && x && o && n > 0);
    dfn_status st = DFN_OK;
    float *k[7], *y = dfn_malloc(n * sizeof(float));
    for (int j = 0; j < 7; j++) k[j] = dfn_malloc(n * sizeof(float));
    const double dir = t1 >= t0 ? 1.0 : -1.0;
    double t = t0, h = 0.01 * (t1 - t0);
    f(ctx, k[0], x, t);
    int accepted = 0, rejected = 0;
    while (dir * (t1 - t) > 0.0) {
        if (accepted + rejected >= o->max_steps) {
            st = dfn_set_error(DFN_ERR_NUMERIC, "%s: %d steps without reaching t = %g "
                                                "(at t = %g); loosen rtol/atol or raise max_steps",
                               name, o->max_steps, t1, t);
            break;
        }
        const int last = dir * (t + h - t1) >= 0.0;
        if (last) h = t1 - t;
        for (int j = 1; j < 7; j++) {
            axpy_n(y, x, h, DP_A[j], k, j, n);
            f(ctx, k[j], y, t + DP_C[j] * h);
        }
        double err = 0.0; /* y holds the 5th-order solution (stage 7's point) */
        for (size_t i = 0; i < n; i++) {
            double e = 0.0;
            for (int j = 0; j < 7; j++) e += DP_E[j] * k[j][i];
            double sc = o->atol + o->rtol * fmax(fabs(x[i]), fabs(y[i]));
            err += (h * e / sc) * (h * e / sc);
        }
        err = sqrt(err / n);
        if (err <= 1.0) {
            t = last ? t1 : t + h;
            memcpy(x, y, n * sizeof(float));
            float *tmp = k[0]; /* first same as last */
            k[0] = k[6];
            k[6] = tmp;
            accepted++;
            if (o->on_accept && (st = o->on_accept(o->accept_ctx, accepted, t, x)) != DFN_OK) break;
            if (o->accept_changes_y && dir * (t1 - t) > 0.0) f(ctx, k[0], x, t);
        } else {
            rejected++;
        }
        double fac = err > 0.0 ? 0.9 * pow(err, -0.2) : 10.0;
        if (!(fac == fac)) fac = 0.2; /* NaN: shrink */
        h *= fmin(10.0, fmax(0.2, fac));
    }
    for (int j = 0; j < 7; j++) free(k[j]);
    free(y);
    if (accepted_out) *accepted_out = accepted;
    if (rejected_out) *rejected_out = rejected;
    return st;
}

/* rk45.h - the one Dormand-Prince 5(4) integrator with step control, shared by
 * the probability-flow ODE sampler (ode.c) and the exact likelihood
 * (src/eval/ode_likelihood.c). Internal. */
#ifndef DFN_RK45_H
#define DFN_RK45_H

#include "core/core.h"

/* k = dy/dt at (y, t); y and k hold n floats. */
typedef void (*rk45_rhs)(void *ctx, float *k, const float *y, double t);
/* Called after each accepted step (accepted counts from 1), or NULL; a status
 * other than DFN_OK stops the integration with it. It may change y (a
 * constraint) if the options say so. */
typedef dfn_status (*rk45_accept)(void *ctx, int accepted, double t, float *y);

typedef struct {
    double rtol, atol; /* per-component tolerance atol + rtol max(|y_old|, |y_new|) */
    int max_steps;     /* accepted + rejected steps before DFN_ERR_NUMERIC */
    rk45_accept on_accept;
    void *accept_ctx;
    int accept_changes_y; /* on_accept may change y: the derivative there is evaluated
                             again instead of reused (first same as last) */
} rk45_options;

/* Integrates y (n floats, in/out) from t0 to t1 (either direction) with the
 * Dormand-Prince 5(4) pair (Hairer, Norsett & Wanner 1993 table II.5.2; step
 * control II.4: RMS error norm over all n components, safety 0.9, factor in
 * [0.2, 10], exponent -1/5; first step 0.01 (t1 - t0)). DFN_ERR_NUMERIC after
 * max_steps steps, the message starting with `name`. accepted and rejected
 * (may be NULL) receive the step counts. */
dfn_status dfn_rk45_integrate(const char *name, rk45_rhs f, void *ctx, float *y, size_t n, double t0,
                          double t1, const rk45_options *o, int *accepted, int *rejected);

#endif

/* constraint.c - constraints on the sampler's state, applied after every step
 * (Seed 001 def. 8.3, x_{t-1} = P_C(mu_theta(x_t, t) + sigma_t eps)):
 * replacement of known coordinates at the state's noise level (inpainting,
 * partial conditioning) and projection onto a box. */
#include <math.h>

#include "sample/sample.h"

/* Known coordinates, noised to the level of x (Lugmayr et al. 2022 eq. 8, the
 * known part x_{t-1}^known ~ N(sqrt(abar) x0, (1 - abar) I); Song et al. 2021
 * appendix I.2 for any SDE): x = m (alpha x0 + sigma z) + (1 - m) x. */
void dfn_constraint_replace(void *ctx, float *x, double alpha, double sigma, int batch,
                            size_t dim) {
    const dfn_replace_constraint *c = ctx;
    DFN_ASSERT(c && c->known && c->mask && (c->rng || sigma == 0.0));
    const size_t n = (size_t)batch * dim;
    float *z = NULL;
    if (sigma > 0.0) {
        z = dfn_malloc(n * sizeof(float));
        dfn_rng_normal(c->rng, z, n);
    }
    for (size_t i = 0; i < n; i++) {
        const double m = c->mask[c->mask_shared ? i % dim : i];
        if (m == 0.0) continue;
        const double known = alpha * c->known[i] + (z ? sigma * z[i] : 0.0);
        x[i] = (float)(m * known + (1.0 - m) * x[i]);
    }
    free(z);
}

/* The projection onto [lo, hi]^dim, 1-Lipschitz (Seed 001 theorem 8.5). */
void dfn_constraint_box(void *ctx, float *x, double alpha, double sigma, int batch, size_t dim) {
    (void)alpha, (void)sigma;
    const dfn_box_constraint *c = ctx;
    DFN_ASSERT(c && c->lo <= c->hi);
    const size_t n = (size_t)batch * dim;
    for (size_t i = 0; i < n; i++) {
        if (x[i] < c->lo) x[i] = (float)c->lo;
        else if (x[i] > c->hi) x[i] = (float)c->hi;
    }
}

/* kl.c - the KL term of the autoencoder's loss: the divergence of a diagonal
 * Gaussian posterior q = N(mean, exp(logvar)) from the prior N(0, I), in
 * closed form (Kingma & Welling 2014, appendix B):
 *
 *   KL(q || p) = 1/2 sum_i (mean_i^2 + exp(logvar_i) - 1 - logvar_i)
 *
 *   d/d mean_i = mean_i,   d/d logvar_i = (exp(logvar_i) - 1) / 2,
 *
 * summed over a sample's values and averaged over the batch (Rombach et al.
 * 2022's kl_loss). */
#include <math.h>

#include "train/train.h"

double dfn_kl_standard_normal(float *dmean, float *dlogvar, const float *mean, const float *logvar,
                              int batch, size_t n, double scale) {
    DFN_ASSERT(mean && logvar && batch > 0);
    double total = 0;
    const double g = scale / batch;
    for (size_t k = 0; k < (size_t)batch * n; k++) {
        const double m = mean[k], lv = logvar[k], v = exp(lv);
        total += 0.5 * (m * m + v - 1.0 - lv);
        if (dmean) dmean[k] = (float)(g * m);
        if (dlogvar) dlogvar[k] = (float)(g * 0.5 * (v - 1.0));
    }
    return total / batch;
}

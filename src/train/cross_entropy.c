/* cross_entropy.c - the classifier's loss: mean softmax cross-entropy and its
 * gradient with respect to the logits. */
#include <math.h>

#include "core/core.h"
#include "diffusion/train.h"

/* log softmax(z)_y = z_y - max - log sum_k exp(z_k - max); the gradient of the
 * mean over the batch is (softmax(z) - onehot(y)) / B. */
double dfn_softmax_cross_entropy(float *dlogits, const float *logits, const int *labels,
                                 int B, int K) {
    DFN_ASSERT(logits && labels && B >= 1 && K >= 1);
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * K;
        int y = labels[b];
        DFN_ASSERT(y >= 0 && y < K);
        double mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        double sum = 0.0;
        for (int k = 0; k < K; k++) sum += exp((double)z[k] - mx);
        double lse = mx + log(sum);
        total += lse - (double)z[y];
        if (dlogits) {
            float *d = dlogits + (size_t)b * K;
            for (int k = 0; k < K; k++)
                d[k] = (float)((exp((double)z[k] - lse) - (k == y ? 1.0 : 0.0)) / B);
        }
    }
    return total / B;
}

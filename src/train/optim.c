/* optim.c - AdamW, gradient-norm clipping and the EMA of the weights, each one
 * loop over the flat parameter arrays. */
#include <math.h>

#include "core/core.h"
#include "diffusion/train.h"

dfn_adamw_params dfn_adamw_params_init(void) {
    dfn_adamw_params p = {1e-3, 0.9, 0.999, 1e-8, 0.01};
    return p;
}

/* AdamW (Loshchilov & Hutter 2019, algorithm 2), in the operation order of
 * torch.optim.AdamW so that results agree to rounding:
 *   p <- p (1 - lr wd)
 *   m <- b1 m + (1 - b1) g           v <- b2 v + (1 - b2) g^2
 *   p <- p - lr / (1 - b1^k) * m / (sqrt(v) / sqrt(1 - b2^k) + eps)          */
static void adamw_step(float *params, const float *grads, float *m, float *v, size_t n, long step,
                       const dfn_adamw_params *p) {
    DFN_ASSERT(step >= 1);
    const float decay = (float)(1.0 - p->lr * p->weight_decay);
    const float b1 = (float)p->beta1, b2 = (float)p->beta2;
    const float one_minus_b1 = (float)(1.0 - p->beta1), one_minus_b2 = (float)(1.0 - p->beta2);
    const double bc1 = 1.0 - pow(p->beta1, (double)step);
    const double bc2 = 1.0 - pow(p->beta2, (double)step);
    const float step_size = (float)(p->lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float eps = (float)p->eps;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        float w = params[i] * decay;
        float mi = m[i] * b1 + one_minus_b1 * g;
        float vi = v[i] * b2 + one_minus_b2 * g * g;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        params[i] = w - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

void dfn_adamw_step(float *params, const float *grads, float *m, float *v, size_t n, long step,
                    const dfn_adamw_params *p) {
    DFN_PROF(DFN_PROF_OPTIM, adamw_step(params, grads, m, v, n, step, p));
}

/* Linear warm-up over `warmup` steps, then cosine decay (Loshchilov & Hutter
 * 2017, eq. 5) to lr * min_ratio at step `steps`; k is 1-based. */
double dfn_lr_warmup_cosine(double lr, long warmup, long steps, double min_ratio, long k) {
    if (warmup > 0 && k <= warmup) return lr * (double)k / (double)warmup;
    long span = steps - warmup;
    if (span <= 0) return lr;
    double progress = (double)(k - warmup) / (double)span;
    if (progress > 1) progress = 1;
    double lo = lr * min_ratio;
    return lo + 0.5 * (lr - lo) * (1.0 + cos(3.14159265358979323846 * progress));
}

/* Sum of squares over fixed chunks (independent of the thread count), then the
 * chunks' partial sums in order: the same bits for any number of threads. */
#define NORM_CHUNK 16384
double dfn_grad_norm(const float *grads, size_t n) {
    size_t chunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double *partial = dfn_malloc((chunks ? chunks : 1) * sizeof(double));
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < chunks; c++) {
        size_t end = DFN_MIN(n, (c + 1) * NORM_CHUNK);
        double s = 0.0;
        for (size_t i = c * NORM_CHUNK; i < end; i++) s += (double)grads[i] * grads[i];
        partial[c] = s;
    }
    double total = 0.0;
    for (size_t c = 0; c < chunks; c++) total += partial[c];
    free(partial);
    return sqrt(total);
}

/* As torch.nn.utils.clip_grad_norm_: g <- g * max_norm / (norm + 1e-6) when
 * that factor is below 1. */
double dfn_clip_grad_norm(float *grads, size_t n, double max_norm) {
    double norm = dfn_grad_norm(grads, n);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) grads[i] *= c;
    }
    return norm;
}

/* Exponential moving average of the weights (Polyak averaging): ema <- d ema + (1 - d) p. */
static void ema_update(float *ema, const float *params, size_t n, float decay) {
    const float keep = decay, take = 1.0f - decay;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) ema[i] = keep * ema[i] + take * params[i];
}

void dfn_ema_update(float *ema, const float *params, size_t n, float decay) {
    DFN_PROF(DFN_PROF_OPTIM, ema_update(ema, params, n, decay));
}

/* pool.c - global average pooling over the spatial positions of each
 * (image, channel) plane.
 *
 * Each output is one plane's sum, accumulated in double in index order and
 * divided by HW once: the result does not depend on how planes are split over
 * threads (tasks are whole images), so it is bit-identical for any thread count. */
#include "core/core.h"
#include "nn/kernels.h"

/* Below this many input elements the layer runs on the calling thread. */
#define POOL_SERIAL 65536

void DFN_K(dfn_avgpool_forward)(float *out, const float *inp, int N, int C, int HW) {
    DFN_ASSERT(out && inp && N >= 0 && C >= 0 && HW > 0);
    const long work = (long)N * C * HW;
#pragma omp parallel for schedule(static) if (work >= POOL_SERIAL && N > 1)
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < C; c++) {
            const float *p = inp + ((size_t)n * C + c) * HW;
            double s = 0.0;
            for (int i = 0; i < HW; i++) s += p[i];
            out[(size_t)n * C + c] = (float)(s / HW);
        }
    }
}

/* d mean / d x_i = 1 / HW for every position i of the plane. */
void DFN_K(dfn_avgpool_backward)(float *dinp, const float *dout, int N, int C, int HW) {
    DFN_ASSERT(dinp && dout && N >= 0 && C >= 0 && HW > 0);
    const long work = (long)N * C * HW;
    const float inv = 1.0f / (float)HW;
#pragma omp parallel for schedule(static) if (work >= POOL_SERIAL && N > 1)
    for (int n = 0; n < N; n++) {
        for (int c = 0; c < C; c++) {
            float g = dout[(size_t)n * C + c] * inv;
            float *d = dinp + ((size_t)n * C + c) * HW;
            for (int i = 0; i < HW; i++) d[i] += g;
        }
    }
}

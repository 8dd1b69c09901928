/* sum_f32.h - the fixed-order float sum of the broadcast add's backward
 * (elementwise.c), which the fused GroupNorm (groupnorm.c) repeats for the same
 * bits. Included by files compiled once per level (kernels.h). */
#ifndef DFN_SUM_F32_H
#define DFN_SUM_F32_H

#include <stddef.h>

/* Sum of x (n) in a fixed order: blocks of 512 values in 16 float lanes (lane j
 * takes x[16k + j], at most 32 values), each block's lanes added into a double
 * in lane order, then the tail. */
static inline double sum_f32(const float *restrict x, size_t n) {
    double s = 0.0;
    size_t i = 0;
    while (i + 16 <= n) {
        const size_t e = i + 512 < n ? i + 512 : n;
        float acc[16] = {0};
        for (; i + 16 <= e; i += 16)
            for (int j = 0; j < 16; j++) acc[j] += x[i + j];
        for (int j = 0; j < 16; j++) s += acc[j];
    }
    for (; i < n; i++) s += x[i];
    return s;
}

#endif

/* conv2d_pointwise.c - 1x1 convolutions (stride 1, no padding) as matrix
 * products, image by image, with dfn_gemm (oneDNN's sgemm) at every
 * instruction-set level and in both precisions.
 *
 * Each image of an NCHW tensor is already a matrix, channels x pixels, so with
 * P = H*W and the weight W (OC, C):
 *   forward         out[n] (OC, P) = bias + W inp[n]           (C, P)
 *   backward data   dinp[n] (C, P) += W^T dout[n]              (OC, P)
 *                   (conv2d.c runs it as the forward of the transposed conv,
 *                   whose weight is W^T: `flip`)
 *   backward weight dW (OC, C)     += sum_n dout[n] inp[n]^T
 * No columns are copied. These products are short in K (tens to hundreds of
 * channels) and memory-bound, where oneDNN's blocking beats the register tiles
 * of the other paths (bench_conv2d: 2 to 3 times in float32 and in bfloat16),
 * so they run in float32 whatever the precision (dfn_conv2d_runs_bf16 says 0).
 *
 * Determinism: tasks are (image, block of pixels) for the products and image
 * slots for the weight gradient, laid out by the shape alone; each output is one
 * dfn_gemm call's (one thread, fixed order), and the slots' partial gradients
 * are summed in slot order, so the bits do not depend on the thread count. */
#include <string.h>

#include "core/core.h"
#include "nn/kernels.h"

int dfn_conv2d_is_pointwise(const dfn_conv2d_shape *s) {
    return s->KH == 1 && s->KW == 1 && s->stride == 1 && s->pad == 0;
}

/* Pixel blocks per image: >= 8 tasks in all where the images are few, blocks of
 * >= 64 pixels (whole images from 8 images on). */
static int pixel_blocks(const dfn_conv2d_shape *s) {
    const int64_t P = (int64_t)s->H * s->W;
    int b = (8 + s->N - 1) / s->N;
    if (b > P / 64) b = (int)(P / 64);
    return b < 1 ? 1 : b;
}

void dfn_conv2d_pointwise_forward(float *out, const float *add, const float *inp, const float *weight, int flip,
                                  const float *bias, const dfn_conv2d_shape *s) {
    const int C = s->C, OC = s->OC, nb = pixel_blocks(s);
    const int P = s->H * s->W;
    const int64_t ntasks = (int64_t)s->N * nb;
    /* out += W inp straight into out where that is all (the data gradient);
     * otherwise y = [bias +] W inp, into out (or, where add is out, the
     * thread's scratch slot 0), then out = add + y */
    const int into_out = add == out && !bias;
#pragma omp parallel for schedule(static)
    for (int64_t task = 0; task < ntasks; task++) {
        const int64_t n = task / nb;
        const int b = (int)(task % nb), p0 = (int)((int64_t)P * b / nb), p1 = (int)((int64_t)P * (b + 1) / nb);
        const int np = p1 - p0;
        float *o = out + n * OC * P + p0;
        float *y = o;
        int ys = P;
        if (add == out && !into_out) y = dfn_scratch(0, (size_t)OC * np), ys = np;
        if (bias) /* y = bias, then y += W inp */
            for (int oc = 0; oc < OC; oc++) {
                const float v = bias[oc];
                float *row = y + oc * ys;
                for (int p = 0; p < np; p++) row[p] = v;
            }
        /* flip: the weight is stored (C, OC) = (rows of the transposed conv's input, its outputs) */
        dfn_gemm(flip, 0, OC, np, C, 1.0f, weight, flip ? OC : C, inp + n * C * P + p0, P,
                 into_out || bias ? 1.0f : 0.0f, y, ys);
        if (add && !into_out)
            for (int oc = 0; oc < OC; oc++) {
                const float *a = add + n * OC * P + p0 + (int64_t)oc * P, *yr = y + oc * ys;
                float *orow = o + (int64_t)oc * P;
                for (int p = 0; p < np; p++) orow[p] = a[p] + yr[p];
            }
    }
}

void dfn_conv2d_pointwise_dweight(float *dweight, const float *dout, const float *inp,
                                  const dfn_conv2d_shape *s) {
    const int N = s->N, C = s->C, OC = s->OC;
    const int P = s->H * s->W;
    /* Image slots: 12 (divisible by 2, 3, 4 and 6 threads) or fewer for small batches */
    const int S = N < 12 ? N : 12;
    const size_t wsz = (size_t)OC * C;
    float *part = dfn_scratch(2, (size_t)S * wsz);
#pragma omp parallel for schedule(static)
    for (int slot = 0; slot < S; slot++) {
        const int n0 = (int)((int64_t)N * slot / S), n1 = (int)((int64_t)N * (slot + 1) / S);
        for (int n = n0; n < n1; n++) /* part[slot] (+)= dout[n] inp[n]^T */
            dfn_gemm(0, 1, OC, C, P, 1.0f, dout + (int64_t)n * OC * P, P, inp + (int64_t)n * C * P, P,
                     n == n0 ? 0.0f : 1.0f, part + slot * wsz, C);
    }
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < wsz; i++) { /* dW += the slots in order 0..S-1 */
        float acc = part[i];
        for (int sl = 1; sl < S; sl++) acc += part[sl * wsz + i];
        dweight[i] += acc;
    }
}

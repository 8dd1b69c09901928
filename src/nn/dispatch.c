/* dispatch.c - the nn.h entry points of the per-level layers: each calls the
 * kernels of the instruction-set level in use (kernels.h; conv2d has its own
 * entry points in conv2d.c, which also choose the algorithm). */
#include "core/core.h"
#include "nn/kernels.h"

extern const dfn_nn_kernels dfn_nn_kernels_generic;
#if defined(__x86_64__)
extern const dfn_nn_kernels dfn_nn_kernels_avx2, dfn_nn_kernels_avx512, dfn_nn_kernels_amx_avx512;
#endif

const dfn_nn_kernels *dfn_nn_kernels_current(void) {
    switch (dfn_get_isa()) {
#if defined(__x86_64__)
    case DFN_ISA_AMX: return &dfn_nn_kernels_amx_avx512;
    case DFN_ISA_AVX512: return &dfn_nn_kernels_avx512;
    case DFN_ISA_AVX2: return &dfn_nn_kernels_avx2;
#endif
    default: return &dfn_nn_kernels_generic;
    }
}

#define KERNELS (dfn_nn_kernels_current())

void dfn_groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int N, int C, int HW,
                           int G, float eps, int silu) {
    /* inp is written only through a fusion's shift */
    KERNELS->groupnorm_forward(out, mean, rstd, (float *)inp, NULL, weight, bias, N, C, HW, G, eps, silu);
}

void dfn_groupnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *bias,
                            const float *mean, const float *rstd, int N, int C, int HW,
                            int G, int silu) {
    KERNELS->groupnorm_backward(dinp, 0, NULL, dweight, dbias, dout, NULL, inp, weight, bias, mean, rstd, N,
                                C, HW, G, silu);
}

void dfn_groupnorm_fused_forward(float *out, float *mean, float *rstd, float *inp,
                                 const dfn_groupnorm_fusion *f, const float *weight,
                                 const float *bias, int N, int C, int HW, int G, float eps, int silu) {
    KERNELS->groupnorm_forward(out, mean, rstd, inp, f, weight, bias, N, C, HW, G, eps, silu);
}

void dfn_groupnorm_fused_backward(float *dinp, float *dshift, float *dweight, float *dbias,
                                  const float *dout, const dfn_groupnorm_fusion *f, const float *inp,
                                  const float *weight, const float *bias, const float *mean,
                                  const float *rstd, int N, int C, int HW, int G, int silu) {
    KERNELS->groupnorm_backward(dinp, 1, dshift, dweight, dbias, dout, f, inp, weight, bias, mean, rstd, N,
                                C, HW, G, silu);
}

void dfn_silu_forward(float *out, const float *inp, size_t n) { KERNELS->silu_forward(out, inp, n); }

void dfn_silu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    KERNELS->silu_backward(dinp, dout, inp, n);
}

void dfn_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed,
                         uint64_t block) {
    KERNELS->dropout_forward(out, inp, n, p, seed, block);
}

void dfn_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed,
                          uint64_t block) {
    KERNELS->dropout_backward(dinp, dout, n, p, seed, block);
}

void dfn_upsample2x_forward(float *out, const float *inp, int N, int C, int H, int W) {
    KERNELS->upsample2x_forward(out, inp, N, C, H, W);
}

void dfn_upsample2x_backward(float *dinp, const float *dout, int N, int C, int H, int W) {
    KERNELS->upsample2x_backward(dinp, dout, N, C, H, W);
}

void dfn_concat_forward(float *out, const float *a, const float *b, int N, int Ca, int Cb, int HW) {
    KERNELS->concat_forward(out, a, b, N, Ca, Cb, HW);
}

void dfn_concat_backward(float *da, float *db, const float *dout, int N, int Ca, int Cb, int HW) {
    KERNELS->concat_backward(da, db, dout, N, Ca, Cb, HW);
}

void dfn_add(float *d, const float *x, size_t n) { KERNELS->add(d, x, n); }

void dfn_add_channel_forward(float *x, const float *v, int N, int C, int HW) {
    KERNELS->add_channel_forward(x, v, N, C, HW);
}

void dfn_add_channel_backward(float *dv, const float *dout, int N, int C, int HW) {
    KERNELS->add_channel_backward(dv, dout, N, C, HW);
}

void dfn_attention_forward(float *out, float *att, const float *q, const float *k,
                           const float *v, int N, int C, int HW, int heads) {
    KERNELS->attention_forward(out, att, q, k, v, N, C, HW, heads);
}

void dfn_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                            const float *q, const float *k, const float *v, const float *att,
                            int N, int C, int HW, int heads) {
    KERNELS->attention_backward(dq, dk, dv, dout, q, k, v, att, N, C, HW, heads);
}

void dfn_avgpool_forward(float *out, const float *inp, int N, int C, int HW) {
    KERNELS->avgpool_forward(out, inp, N, C, HW);
}

void dfn_avgpool_backward(float *dinp, const float *dout, int N, int C, int HW) {
    KERNELS->avgpool_backward(dinp, dout, N, C, HW);
}

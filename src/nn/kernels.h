/* kernels.h - the layers that exist once per instruction-set level.
 *
 * CMakeLists.txt compiles the kernel sources of src/nn (DFN_KERNEL_SOURCES)
 * once per level, each time with that level's instruction-set flags and with
 * DFN_KERNEL_LEVEL defined to its name: generic (no flags: SSE2 on x86-64, NEON
 * on aarch64), avx2 and avx512 (x86-64 only). A kernel source names what it
 * exports with DFN_K(name), which appends the level (name_avx2), so the three
 * copies link side by side; kernel_table.c gathers each level's functions into
 * a dfn_nn_kernels table. The nn.h entry points (dispatch.c, conv2d.c) are
 * compiled once and call the table of the level in use (dfn_get_isa()).
 *
 * A new hot layer: add its function to the table below, define it with DFN_K
 * in a kernel source, list that source in DFN_KERNEL_SOURCES, and forward to it
 * from the nn.h entry point. */
#ifndef DFN_NN_KERNELS_H
#define DFN_NN_KERNELS_H

#include "core/core.h"
#include "nn/nn.h"
#include "nn/pool.h"

/* The level-specific conv2d pieces that conv2d.c composes (see conv2d_internal.h):
 *   direct, winograd   out = [add +] ([bias +] conv(inp, weight)), or with flip = 1
 *                      the stride-1 conv by the flipped, transposed weights that
 *                      backward data is; add (the shape of out, or NULL) may be
 *                      out itself (out accumulates); winograd only where
 *                      conv2d_winograd_fits;
 *   backward_bias      dbias (OC) += sums of dout;
 *   backward_gemm      dinp (any stride; NULL: skipped) and dweight (NULL:
 *                      skipped) by products with im2col'ed panels. */
typedef void dfn_conv_fn(float *out, const float *add, const float *inp, const float *weight,
                         int flip, const float *bias, const dfn_conv2d_shape *s);

typedef struct {
    dfn_isa isa;
    dfn_conv_fn *conv2d_direct;
    dfn_conv_fn *conv2d_winograd;
    int (*conv2d_winograd_fits)(const dfn_conv2d_shape *s);
    void (*conv2d_backward_bias)(float *dbias, const float *dout, const dfn_conv2d_shape *s);
    void (*conv2d_backward_gemm)(float *dinp, float *dweight, const float *dout, const float *inp,
                                 const float *weight, const dfn_conv2d_shape *s);
    /* direct and winograd with bfloat16 products and float32 sums (DFN_PRECISION_BF16):
     * at the avx512 and amx levels (amx: the products in AMX tiles), NULL at the others */
    dfn_conv_fn *conv2d_direct_bf16;
    dfn_conv_fn *conv2d_winograd_bf16;
    /* backward_gemm with the Winograd weight gradient's products in bfloat16 */
    void (*conv2d_backward_gemm_bf16)(float *dinp, float *dweight, const float *dout, const float *inp,
                                      const float *weight, const dfn_conv2d_shape *s);
    /* the nn.h / pool.h layers, same signatures */
    __typeof__(dfn_groupnorm_fused_forward) *groupnorm_forward;
    /* dfn_groupnorm_fused_backward, dinp set where dinp_set, else accumulated */
    void (*groupnorm_backward)(float *dinp, int dinp_set, float *dshift, float *dweight, float *dbias,
                               const float *dout, const dfn_groupnorm_fusion *f, const float *inp,
                               const float *weight, const float *bias, const float *mean,
                               const float *rstd, int N, int C, int HW, int G, int silu);
    __typeof__(dfn_silu_forward) *silu_forward;
    __typeof__(dfn_silu_backward) *silu_backward;
    __typeof__(dfn_dropout_forward) *dropout_forward;
    __typeof__(dfn_dropout_backward) *dropout_backward;
    __typeof__(dfn_add) *add;
    __typeof__(dfn_upsample2x_forward) *upsample2x_forward;
    __typeof__(dfn_upsample2x_backward) *upsample2x_backward;
    __typeof__(dfn_concat_forward) *concat_forward;
    __typeof__(dfn_concat_backward) *concat_backward;
    __typeof__(dfn_add_channel_forward) *add_channel_forward;
    __typeof__(dfn_add_channel_backward) *add_channel_backward;
    __typeof__(dfn_attention_forward) *attention_forward;
    __typeof__(dfn_attention_backward) *attention_backward;
    __typeof__(dfn_avgpool_forward) *avgpool_forward;
    __typeof__(dfn_avgpool_backward) *avgpool_backward;
} dfn_nn_kernels;

/* The table of the level in use (dfn_get_isa()). */
const dfn_nn_kernels *dfn_nn_kernels_current(void);

/* 1 if a conv of shape s (forward, or the transposed shape of backward data; its
 * weight gradient follows the forward's shape) runs with bfloat16 products now:
 * the precision in use is bfloat16, the level has the kernels, and the conv is
 * big enough (conv2d.c). */
int dfn_conv2d_runs_bf16(const dfn_conv2d_shape *s);

/* 1x1 convolutions (stride 1, no padding) as oneDNN products, image by image, at
 * every level (conv2d_pointwise.c): the forward (out = [add +] (W inp + bias); with
 * `flip` the weight is stored transposed, as for the backward data of conv2d.c)
 * and the weight gradient (dW += sum_n dout[n] inp[n]^T). */
int dfn_conv2d_is_pointwise(const dfn_conv2d_shape *s);
dfn_conv_fn dfn_conv2d_pointwise_forward;
void dfn_conv2d_pointwise_dweight(float *dweight, const float *dout, const float *inp,
                                  const dfn_conv2d_shape *s);

#if defined(DFN_KERNEL_LEVEL)
/* name_<level>: what a kernel source exports. */
#define DFN_K(name) DFN_K_(name, DFN_KERNEL_LEVEL)
#define DFN_K_(name, level) DFN_K__(name, level)
#define DFN_K__(name, level) name##_##level

/* The level's functions, as kernel_table.c collects them. */
dfn_conv_fn DFN_K(dfn_conv2d_direct), DFN_K(dfn_conv2d_winograd);
dfn_conv_fn DFN_K(dfn_conv2d_direct_bf16), DFN_K(dfn_conv2d_winograd_bf16); /* avx512 only */
dfn_conv_fn DFN_K(dfn_conv2d_direct_amx), DFN_K(dfn_conv2d_winograd_amx); /* avx512 only, the amx level's */
void DFN_K(dfn_conv2d_backward_gemm_amx)(float *dinp, float *dweight, const float *dout,
                                         const float *inp, const float *weight,
                                         const dfn_conv2d_shape *s); /* avx512 only, the amx level's */
int DFN_K(dfn_conv2d_winograd_fits)(const dfn_conv2d_shape *s);
void DFN_K(dfn_conv2d_backward_bias)(float *dbias, const float *dout, const dfn_conv2d_shape *s);
void DFN_K(dfn_conv2d_backward_gemm)(float *dinp, float *dweight, const float *dout,
                                     const float *inp, const float *weight,
                                     const dfn_conv2d_shape *s);
void DFN_K(dfn_conv2d_backward_gemm_bf16)(float *dinp, float *dweight, const float *dout,
                                          const float *inp, const float *weight,
                                          const dfn_conv2d_shape *s); /* avx512 only */
__typeof__(dfn_groupnorm_fused_forward) DFN_K(dfn_groupnorm_fused_forward);
void DFN_K(dfn_groupnorm_fused_backward)(float *dinp, int dinp_set, float *dshift, float *dweight,
                                         float *dbias, const float *dout, const dfn_groupnorm_fusion *f,
                                         const float *inp, const float *weight, const float *bias,
                                         const float *mean, const float *rstd, int N, int C, int HW,
                                         int G, int silu);
/* dropout's mask on elements [i0, i1) of a tensor, held from 0 in out and x
 * (not aliased): out (+)= m x / (1 - p), one thread (elementwise.c) */
void DFN_K(dfn_dropout_span)(float *out, const float *x, size_t i0, size_t i1, float p, uint64_t seed,
                             uint64_t block, int accumulate);
__typeof__(dfn_silu_forward) DFN_K(dfn_silu_forward);
__typeof__(dfn_silu_backward) DFN_K(dfn_silu_backward);
__typeof__(dfn_dropout_forward) DFN_K(dfn_dropout_forward);
__typeof__(dfn_dropout_backward) DFN_K(dfn_dropout_backward);
__typeof__(dfn_add) DFN_K(dfn_add);
__typeof__(dfn_upsample2x_forward) DFN_K(dfn_upsample2x_forward);
__typeof__(dfn_upsample2x_backward) DFN_K(dfn_upsample2x_backward);
__typeof__(dfn_concat_forward) DFN_K(dfn_concat_forward);
__typeof__(dfn_concat_backward) DFN_K(dfn_concat_backward);
__typeof__(dfn_add_channel_forward) DFN_K(dfn_add_channel_forward);
__typeof__(dfn_add_channel_backward) DFN_K(dfn_add_channel_backward);
__typeof__(dfn_attention_forward) DFN_K(dfn_attention_forward);
__typeof__(dfn_attention_backward) DFN_K(dfn_attention_backward);
__typeof__(dfn_avgpool_forward) DFN_K(dfn_avgpool_forward);
__typeof__(dfn_avgpool_backward) DFN_K(dfn_avgpool_backward);
extern const dfn_nn_kernels DFN_K(dfn_nn_kernels), DFN_K(dfn_nn_kernels_amx); /* _amx: avx512 only */
#endif

#endif

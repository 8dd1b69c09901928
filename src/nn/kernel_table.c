/* kernel_table.c - one level's kernels in a table (compiled once per level;
 * see kernels.h). */
#include "nn/kernels.h"

#if defined(__AVX512F__)
#define LEVEL DFN_ISA_AVX512
#elif defined(__AVX2__)
#define LEVEL DFN_ISA_AVX2
#else
#define LEVEL DFN_ISA_GENERIC
#endif

const dfn_nn_kernels DFN_K(dfn_nn_kernels) = {
    .isa = LEVEL,
    .conv2d_direct = DFN_K(dfn_conv2d_direct),
    .conv2d_winograd = DFN_K(dfn_conv2d_winograd),
    .conv2d_winograd_fits = DFN_K(dfn_conv2d_winograd_fits),
    .conv2d_backward_bias = DFN_K(dfn_conv2d_backward_bias),
    .conv2d_backward_gemm = DFN_K(dfn_conv2d_backward_gemm),
#if defined(__AVX512F__)
    .conv2d_direct_bf16 = DFN_K(dfn_conv2d_direct_bf16),
    .conv2d_winograd_bf16 = DFN_K(dfn_conv2d_winograd_bf16),
    .conv2d_backward_gemm_bf16 = DFN_K(dfn_conv2d_backward_gemm_bf16),
#endif
    .groupnorm_forward = DFN_K(dfn_groupnorm_forward),
    .groupnorm_backward = DFN_K(dfn_groupnorm_backward),
    .silu_forward = DFN_K(dfn_silu_forward),
    .silu_backward = DFN_K(dfn_silu_backward),
    .dropout_forward = DFN_K(dfn_dropout_forward),
    .dropout_backward = DFN_K(dfn_dropout_backward),
    .add = DFN_K(dfn_add),
    .upsample2x_forward = DFN_K(dfn_upsample2x_forward),
    .upsample2x_backward = DFN_K(dfn_upsample2x_backward),
    .concat_forward = DFN_K(dfn_concat_forward),
    .concat_backward = DFN_K(dfn_concat_backward),
    .add_channel_forward = DFN_K(dfn_add_channel_forward),
    .add_channel_backward = DFN_K(dfn_add_channel_backward),
    .attention_forward = DFN_K(dfn_attention_forward),
    .attention_backward = DFN_K(dfn_attention_backward),
    .avgpool_forward = DFN_K(dfn_avgpool_forward),
    .avgpool_backward = DFN_K(dfn_avgpool_backward),
};

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

/* The level's table; at avx512 also the amx level's (dfn_nn_kernels_amx_avx512),
 * the same kernels with the bfloat16 products (direct, Winograd, Winograd's weight
 * gradient) in AMX tiles. */
#define KERNEL_TABLE(level, direct_bf16, winograd_bf16, gemm_bf16) { \
    .isa = level, \
    .conv2d_direct = DFN_K(dfn_conv2d_direct), \
    .conv2d_winograd = DFN_K(dfn_conv2d_winograd), \
    .conv2d_winograd_fits = DFN_K(dfn_conv2d_winograd_fits), \
    .conv2d_backward_bias = DFN_K(dfn_conv2d_backward_bias), \
    .conv2d_backward_gemm = DFN_K(dfn_conv2d_backward_gemm), \
    BF16_ENTRIES(direct_bf16, winograd_bf16, gemm_bf16) \
    .groupnorm_forward = DFN_K(dfn_groupnorm_fused_forward), \
    .groupnorm_backward = DFN_K(dfn_groupnorm_fused_backward), \
    .silu_forward = DFN_K(dfn_silu_forward), \
    .silu_backward = DFN_K(dfn_silu_backward), \
    .dropout_forward = DFN_K(dfn_dropout_forward), \
    .dropout_backward = DFN_K(dfn_dropout_backward), \
    .add = DFN_K(dfn_add), \
    .upsample2x_forward = DFN_K(dfn_upsample2x_forward), \
    .upsample2x_backward = DFN_K(dfn_upsample2x_backward), \
    .concat_forward = DFN_K(dfn_concat_forward), \
    .concat_backward = DFN_K(dfn_concat_backward), \
    .add_channel_forward = DFN_K(dfn_add_channel_forward), \
    .add_channel_backward = DFN_K(dfn_add_channel_backward), \
    .attention_forward = DFN_K(dfn_attention_forward), \
    .attention_backward = DFN_K(dfn_attention_backward), \
    .avgpool_forward = DFN_K(dfn_avgpool_forward), \
    .avgpool_backward = DFN_K(dfn_avgpool_backward), \
}

#if defined(__AVX512F__)
#define BF16_ENTRIES(direct_bf16, winograd_bf16, gemm_bf16) \
    .conv2d_direct_bf16 = DFN_K(direct_bf16), \
    .conv2d_winograd_bf16 = DFN_K(winograd_bf16), \
    .conv2d_backward_gemm_bf16 = DFN_K(gemm_bf16),
const dfn_nn_kernels DFN_K(dfn_nn_kernels) = KERNEL_TABLE(LEVEL, dfn_conv2d_direct_bf16, dfn_conv2d_winograd_bf16,
                                                              dfn_conv2d_backward_gemm_bf16);
const dfn_nn_kernels DFN_K(dfn_nn_kernels_amx) = KERNEL_TABLE(DFN_ISA_AMX, dfn_conv2d_direct_amx, dfn_conv2d_winograd_amx,
                                                                      dfn_conv2d_backward_gemm_amx);
#else
#define BF16_ENTRIES(direct_bf16, winograd_bf16, gemm_bf16)
const dfn_nn_kernels DFN_K(dfn_nn_kernels) = KERNEL_TABLE(LEVEL, unused, unused, unused);
#endif

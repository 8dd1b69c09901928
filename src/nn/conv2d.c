/* conv2d.c - 2-D convolution (cross-correlation, as torch.nn.Conv2d), NCHW float32:
 * the public entry points, which choose the algorithm and the instruction-set level.
 *
 *   out[n,oc,oh,ow] = bias[oc] + sum_{c,kh,kw} w[oc,c,kh,kw] * inp[n, c, oh*S-P+kh, ow*S-P+kw]
 *
 * with S = stride, P = zero padding (taps outside the image read 0).
 *
 * The algorithms, one file each (conv2d_internal.h has the shared terms):
 *   1x1, stride 1    forward, backward data and weight as oneDNN products image
 *                    by image, in float32 at every level and precision
 *                    (conv2d_pointwise.c); for the other shapes:
 *   forward          3x3 "same" convs with enough tiles: in float32 Winograd
 *                    F(4x4,3x3) where 4x4 tiles cover at most 4/3 of the image
 *                    (conv2d_winograd4.c, 4x fewer multiplications), else
 *                    F(2x2,3x3) (conv2d_winograd.c, 2.25x fewer); the rest
 *                    direct, out[:, j] = W col[:, j] + bias over panels of 48
 *                    output pixels, implicit GEMM or im2col (conv2d_direct.c).
 *   backward data    stride 1 (square kernel, pad <= K-1): dinp is the stride-1
 *                    conv of dout with the flipped, transposed kernel,
 *                      dinp[n,c,ih,iw] += sum_{oc,kh',kw'} w[oc,c,K-1-kh',K-1-kw'] dout[n,oc,ih-P'+kh',iw-P'+kw']
 *                    with P' = K-1-P, run by the forward's algorithms (accumulating);
 *                    other strides: dcol = W^T dout tile by tile, scattered back
 *                    (col2im) (conv2d_backward.c).
 *   backward weight  dW[oc,c,kh,kw] += sum_{n,oh,ow} dout[n,oc,oh,ow] inp[n,c,ih,iw]
 *                    on channels-last copies, or im2col + dfn_gemm (conv2d_backward.c).
 *   backward bias    dbias[oc] += sum dout, in double, fixed lanes.
 * conv2d_reference.c holds the slow, obvious loops they are tested against.
 *
 * Precision (dfn_set_precision). With bfloat16, forward and backward data run
 * the same algorithms (Winograd as F(2x2,3x3) only) with the products of the register tile in bfloat16 pairs
 * (conv_tile_bf16: the direct path im2col's every panel, Winograd pairs its
 * transformed input), and so does the Winograd weight gradient (its transforms
 * paired over tiles); the other weight gradients and the bias stay float32, and
 * so do small convolutions (dfn_conv2d_runs_bf16: the first conv of a U-Net, and
 * the backward data of its last), where pairing costs more than it saves, and
 * the 1x1 ones, where oneDNN's float32 is faster than our bfloat16.
 *
 * Levels. The files above are compiled once per instruction-set level
 * (kernels.h): the register tiles are 8 x 48 (AVX-512), 4 x 24 (AVX2 + FMA) and
 * 4 x 12 (portable C with 4-float vectors); AVX-512 also reads the input under
 * masks (implicit GEMM, gathers) where the other levels copy panels first.
 *
 * Determinism: all work is split into tasks whose layout depends only on the
 * shape (and the level); each task runs single-threaded code with a fixed
 * summation order and writes outputs no other task writes; the weight gradients
 * of the image slots are reduced in slot order. So the bits do not depend on the
 * number of threads or on which thread ran which task (tests/test_conv2d.c
 * checks 1, 2 and 3 threads at every level).
 */
#include <string.h>

#include "core/core.h"
#include "nn/kernels.h"

static void check_shape(const dfn_conv2d_shape *s) {
    DFN_ASSERT(s->N > 0 && s->C > 0 && s->H > 0 && s->W > 0 && s->OC > 0 && s->KH > 0 &&
               s->KW > 0 && s->stride > 0 && s->pad >= 0);
    DFN_ASSERT(dfn_conv2d_out_h(s) > 0 && dfn_conv2d_out_w(s) > 0);
}

int dfn_conv2d_runs_bf16(const dfn_conv2d_shape *s) {
    const dfn_nn_kernels *k = dfn_nn_kernels_current();
    if (dfn_get_precision() != DFN_PRECISION_BF16 || !k->conv2d_direct_bf16 || dfn_conv2d_is_pointwise(s))
        return 0;
    /* the pairs of a panel (direct) or of a block's transforms (Winograd) pay for
     * themselves over enough output channels and products per output, and where
     * no two tasks pair the same panel (>= 16 panels: no output-channel chunks) */
    return s->OC >= 16 && s->C * s->KH * s->KW >= 32 &&
           (int64_t)s->N * dfn_conv2d_out_h(s) * dfn_conv2d_out_w(s) >= 16 * 48;
}

/* out = [add +] ([bias +] conv(inp, weight or its flip)) by the algorithm that
 * fits s, in the precision in use (dfn_conv2d_runs_bf16); add may be out. */
static void forward_any(const dfn_nn_kernels *k, float *out, const float *add, const float *inp,
                        const float *weight, int flip, const float *bias, const dfn_conv2d_shape *s) {
    if (dfn_conv2d_is_pointwise(s)) {
        dfn_conv2d_pointwise_forward(out, add, inp, weight, flip, bias, s);
        return;
    }
    const int bf16 = dfn_conv2d_runs_bf16(s);
    dfn_conv_fn *conv = k->conv2d_winograd_fits(s) ? (bf16 ? k->conv2d_winograd_bf16 : k->conv2d_winograd)
                                                   : (bf16 ? k->conv2d_direct_bf16 : k->conv2d_direct);
    conv(out, add, inp, weight, flip, bias, s);
}

/* out (N,OC,OH,OW) = conv(inp (N,C,H,W), weight (OC,C,KH,KW)) + bias (OC or NULL). */
void dfn_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                        const dfn_conv2d_shape *s) {
    DFN_ASSERT(out && inp && weight && s);
    check_shape(s);
    forward_any(dfn_nn_kernels_current(), out, NULL, inp, weight, 0, bias, s);
}

/* out = add + (conv + bias): the residual add in the convolution's own stores. */
void dfn_conv2d_forward_add(float *out, const float *inp, const float *weight, const float *bias,
                            const float *add, const dfn_conv2d_shape *s) {
    DFN_ASSERT(out && inp && weight && add && s);
    check_shape(s);
    forward_any(dfn_nn_kernels_current(), out, add, inp, weight, 0, bias, s);
}

/* dweight (OC,C,KH,KW) and dbias (OC) accumulate; dinp (N,C,H,W) accumulates, or
 * is set where !dinp_accumulate; each may be NULL. */
static void backward(float *dinp, int dinp_accumulate, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, const dfn_conv2d_shape *s) {
    DFN_ASSERT(dout && inp && weight && s);
    check_shape(s);
    const dfn_nn_kernels *k = dfn_nn_kernels_current();
    if (dbias) k->conv2d_backward_bias(dbias, dout, s);
    if (dinp && s->stride == 1 && s->KH == s->KW && s->pad <= s->KH - 1) {
        /* the transposed conv: input dout (N,OC,OH,OW), output dinp (N,C,H,W) */
        const dfn_conv2d_shape t = {s->N, s->OC, dfn_conv2d_out_h(s), dfn_conv2d_out_w(s), s->C,
                                    s->KH, s->KW, 1, s->KH - 1 - s->pad};
        DFN_ASSERT(dfn_conv2d_out_h(&t) == s->H && dfn_conv2d_out_w(&t) == s->W);
        forward_any(k, dinp, dinp_accumulate ? dinp : NULL, dout, weight, 1, NULL, &t);
        dinp = NULL; /* done */
    } else if (dinp && !dinp_accumulate) { /* col2im adds */
        memset(dinp, 0, sizeof(float) * (size_t)s->N * s->C * s->H * s->W);
    }
    if (dweight && dfn_conv2d_is_pointwise(s)) { /* its data gradient ran above */
        dfn_conv2d_pointwise_dweight(dweight, dout, inp, s);
        return;
    }
    const int bf16 = dfn_conv2d_runs_bf16(s);
    (bf16 ? k->conv2d_backward_gemm_bf16 : k->conv2d_backward_gemm)(dinp, dweight, dout, inp, weight, s);
}

void dfn_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                         const float *weight, const dfn_conv2d_shape *s) {
    backward(dinp, 1, dweight, dbias, dout, inp, weight, s);
}

void dfn_conv2d_backward_set(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                             const float *weight, const dfn_conv2d_shape *s) {
    backward(dinp, 0, dweight, dbias, dout, inp, weight, s);
}

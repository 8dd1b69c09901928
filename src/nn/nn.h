/* nn.h - the layers: each a forward/backward pair of free functions over
 * explicit float32 buffers (llm.c style).
 *
 * Conventions shared by every layer:
 *   - images are NCHW; "HW" is H*W; vectors are (B, C) row-major;
 *   - arguments: outputs first, then inputs, then sizes;
 *   - forward writes its outputs (and what backward needs, e.g. mean/rstd);
 *   - backward ACCUMULATES (+=) into every gradient it is given (dinp, dweight,
 *     dbias); a NULL gradient pointer means "not needed" and is skipped;
 *   - layers keep no hidden state; scratch memory comes from dfn_scratch();
 *   - threads: OpenMP over tasks whose decomposition depends only on the shape,
 *     each task single-threaded, reductions in a fixed order, so results are
 *     bit-identical for any thread count.
 */
#ifndef DFN_NN_H
#define DFN_NN_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ conv2d */

typedef struct {
    int N, C, H, W;      /* input: batch, channels, height, width */
    int OC, KH, KW;      /* output channels, kernel size */
    int stride, pad;     /* same stride and zero padding on both axes */
} dfn_conv2d_shape;

static inline int dfn_conv2d_out_h(const dfn_conv2d_shape *s) { return (s->H + 2 * s->pad - s->KH) / s->stride + 1; }
static inline int dfn_conv2d_out_w(const dfn_conv2d_shape *s) { return (s->W + 2 * s->pad - s->KW) / s->stride + 1; }

/* out (N,OC,OH,OW) = conv(inp (N,C,H,W), weight (OC,C,KH,KW)) + bias (OC, or NULL) */
void dfn_conv2d_forward(float *out, const float *inp, const float *weight, const float *bias,
                        const dfn_conv2d_shape *s);
/* The same plus add (N,OC,OH,OW), which may be out itself: out = add + (conv +
 * bias) in one pass over out (a residual connection's sum in the convolution's
 * stores), bit for bit the forward followed by dfn_add(out, add); except where
 * a 1x1 convolution without bias adds in place: oneDNN's out += W inp (the sum
 * the data gradient accumulates by), equal to rounding. */
void dfn_conv2d_forward_add(float *out, const float *inp, const float *weight, const float *bias,
                            const float *add, const dfn_conv2d_shape *s);
/* dinp (N,C,H,W) or NULL, dweight (OC,C,KH,KW), dbias (OC) or NULL; all accumulate */
void dfn_conv2d_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, const dfn_conv2d_shape *s);
/* The same with dinp set to the data gradient, not added to it (for a buffer
 * that would be zeroed first: no memset, and no read of it in the kernels). */
void dfn_conv2d_backward_set(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const dfn_conv2d_shape *s);
/* The slow, obvious loops the fast kernels are tested against. */
void dfn_conv2d_forward_reference(float *out, const float *inp, const float *weight,
                                  const float *bias, const dfn_conv2d_shape *s);
void dfn_conv2d_backward_reference(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *inp, const float *weight, const dfn_conv2d_shape *s);

/* ------------------------------------------------------------ normalisation */

/* GroupNorm (Wu & He 2018) over G groups of C/G channels, optionally followed by
 * SiLU (silu = 1: out = silu(gn(inp)), the U-Net's "norm then act").
 * out, inp (N,C,HW); weight, bias (C); mean, rstd (N,G) are saved for backward. */
void dfn_groupnorm_forward(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int N, int C, int HW,
                           int G, float eps, int silu);
/* Backward of the same call (same silu flag); recomputes the normalised values. */
void dfn_groupnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *bias,
                            const float *mean, const float *rstd, int N, int C, int HW,
                            int G, int silu);

/* What a ResBlock does around its second GroupNorm, fused into GroupNorm's
 * passes over each (image, group) block while the block is in cache:
 *   shift (N,C) or NULL: before normalising, inp[n,c,:] += shift[n,c] in place
 *     (the time embedding's h + temb[:, :, None, None]; inp then holds the sum,
 *     which backward reads); backward adds the sums of dinp over HW to dshift;
 *   p > 0: dropout of the (SiLU'd) normalised values with the mask of
 *     dfn_dropout_forward(out, out, N*C*HW, p, seed, block); backward applies
 *     it to dout first. p = 0: none.
 * The bits of dfn_add_channel_forward, the GroupNorm and dfn_dropout_forward in
 * turn (backward: of dfn_dropout_backward onto zeros, the GroupNorm backward
 * onto zeros and dfn_add_channel_backward). */
typedef struct {
    const float *shift;
    float p;
    uint64_t seed, block;
} dfn_groupnorm_fusion;

void dfn_groupnorm_fused_forward(float *out, float *mean, float *rstd, float *inp,
                                 const dfn_groupnorm_fusion *f, const float *weight,
                                 const float *bias, int N, int C, int HW, int G, float eps, int silu);
/* dinp (N,C,HW) is SET to the input gradient (no memset needed); dshift (N,C)
 * or NULL, dweight and dbias accumulate; f or NULL (f->shift is not read). */
void dfn_groupnorm_fused_backward(float *dinp, float *dshift, float *dweight, float *dbias,
                                  const float *dout, const dfn_groupnorm_fusion *f, const float *inp,
                                  const float *weight, const float *bias, const float *mean,
                                  const float *rstd, int N, int C, int HW, int G, int silu);

/* ------------------------------------------------------------ linear */

/* out (B,OC) = inp (B,IC) weight^T (weight (OC,IC)) + bias (OC, or NULL) */
void dfn_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                        int B, int IC, int OC);
void dfn_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int B, int IC, int OC);

/* ------------------------------------------------------------ elementwise */

/* SiLU: out = x * sigmoid(x). out may equal inp. */
void dfn_silu_forward(float *out, const float *inp, size_t n);
void dfn_silu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* Inverted dropout (Srivastava et al. 2014): element i is kept iff the uniform
 * number of block `block + i/4`, lane i%4, of Philox(seed) is >= p; kept values
 * are scaled by 1/(1-p). The mask is recomputed in backward from (seed, block),
 * so nothing is stored. Uses ceil(n/4) blocks. out may equal inp. */
void dfn_dropout_forward(float *out, const float *inp, size_t n, float p, uint64_t seed,
                         uint64_t block);
void dfn_dropout_backward(float *dinp, const float *dout, size_t n, float p, uint64_t seed,
                          uint64_t block);

/* d (n) += x (n): residual connections and gradient sums. */
void dfn_add(float *d, const float *x, size_t n);

/* Nearest-neighbour 2x upsampling: out (N,C,2H,2W) from inp (N,C,H,W). */
void dfn_upsample2x_forward(float *out, const float *inp, int N, int C, int H, int W);
void dfn_upsample2x_backward(float *dinp, const float *dout, int N, int C, int H, int W);

/* Channel concatenation: out (N,Ca+Cb,HW) = [a (N,Ca,HW), b (N,Cb,HW)]. */
void dfn_concat_forward(float *out, const float *a, const float *b, int N, int Ca, int Cb, int HW);
void dfn_concat_backward(float *da, float *db, const float *dout, int N, int Ca, int Cb, int HW);

/* Per-(image, channel) broadcast add: x (N,C,HW) += v (N,C) (timestep injection). */
void dfn_add_channel_forward(float *x, const float *v, int N, int C, int HW);
/* dv (N,C) += sum over HW of dout. */
void dfn_add_channel_backward(float *dv, const float *dout, int N, int C, int HW);

/* ------------------------------------------------------------ attention */

/* Multi-head self-attention over spatial positions (Vaswani et al. 2017 eq. 1):
 * per image and head h (channels h*D .. h*D+D-1, D = C/heads),
 *   att = softmax_k(q^T k / sqrt(D)),  out[c, i] = sum_j v[c, j] att[i, j].
 * out, q, k, v (N,C,HW); att (N,heads,HW,HW) probabilities kept for backward. */
void dfn_attention_forward(float *out, float *att, const float *q, const float *k,
                           const float *v, int N, int C, int HW, int heads);
void dfn_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                            const float *q, const float *k, const float *v, const float *att,
                            int N, int C, int HW, int heads);

/* ------------------------------------------------------------ embeddings */

/* Sinusoidal timestep embedding (Vaswani et al. 2017 sec. 3.5, as DDPM uses it):
 * out (B,dim) = [sin(t f_i), cos(t f_i)], f_i = exp((i * -ln(10000)) / (half-1)) in float32 (torch's order),
 * half = dim/2, zero-padded when dim is odd. No backward: t is not learned. */
void dfn_timestep_embedding(float *out, const float *t, int B, int dim);

/* Class-label embedding: out (B,dim) = table[labels[b]] (table (rows,dim)). */
void dfn_embedding_forward(float *out, const int *labels, const float *table, int B, int dim);
void dfn_embedding_backward(float *dtable, const float *dout, const int *labels, int B, int dim);

#endif

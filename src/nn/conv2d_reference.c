/* conv2d_reference.c - the slow, obvious loops the fast conv2d kernels are
 * tested against (in double, in the order the formulas read; no threads).
 *
 *   out[n,oc,oh,ow] = bias[oc] + sum_{c,kh,kw} w[oc,c,kh,kw] * inp[n, c, oh*S-P+kh, ow*S-P+kw]
 *
 * with S = stride, P = zero padding (taps outside the image read 0). */
#include "core/core.h"
#include "nn/nn.h"

void dfn_conv2d_forward_reference(float *out, const float *inp, const float *weight,
                                  const float *bias, const dfn_conv2d_shape *s) {
    DFN_ASSERT(out && inp && weight && s);
    const int OH = dfn_conv2d_out_h(s), OW = dfn_conv2d_out_w(s);
    for (int n = 0; n < s->N; n++)
        for (int oc = 0; oc < s->OC; oc++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double acc = 0;
                    for (int c = 0; c < s->C; c++)
                        for (int kh = 0; kh < s->KH; kh++)
                            for (int kw = 0; kw < s->KW; kw++) {
                                int ih = oh * s->stride - s->pad + kh;
                                int iw = ow * s->stride - s->pad + kw;
                                if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                acc += (double)weight[((size_t)(oc * s->C + c) * s->KH + kh) * s->KW + kw] *
                                       inp[(((size_t)n * s->C + c) * s->H + ih) * s->W + iw];
                            }
                    if (bias) acc += bias[oc];
                    out[(((size_t)n * s->OC + oc) * OH + oh) * OW + ow] = (float)acc;
                }
}

/* Differentiates dfn_conv2d_forward_reference: with g = dout,
 *   dinp[n,c,ih,iw] += sum_{oc,kh,kw : ih = oh*S-P+kh, iw = ow*S-P+kw} w[oc,c,kh,kw] g[n,oc,oh,ow]
 *   dw[oc,c,kh,kw]  += sum_{n,oh,ow} g[n,oc,oh,ow] inp[n,c,oh*S-P+kh,ow*S-P+kw]
 *   dbias[oc]       += sum_{n,oh,ow} g[n,oc,oh,ow] */
void dfn_conv2d_backward_reference(float *dinp, float *dweight, float *dbias, const float *dout,
                                   const float *inp, const float *weight, const dfn_conv2d_shape *s) {
    DFN_ASSERT(dout && inp && weight && s);
    const int OH = dfn_conv2d_out_h(s), OW = dfn_conv2d_out_w(s);
    const int S = s->stride, P = s->pad;
    if (dinp)
        for (int n = 0; n < s->N; n++)
            for (int c = 0; c < s->C; c++)
                for (int ih = 0; ih < s->H; ih++)
                    for (int iw = 0; iw < s->W; iw++) {
                        double acc = 0;
                        for (int oc = 0; oc < s->OC; oc++)
                            for (int kh = 0; kh < s->KH; kh++)
                                for (int kw = 0; kw < s->KW; kw++) {
                                    int th = ih + P - kh, tw = iw + P - kw; /* = oh*S, ow*S */
                                    if (th < 0 || tw < 0 || th % S || tw % S) continue;
                                    int oh = th / S, ow = tw / S;
                                    if (oh >= OH || ow >= OW) continue;
                                    acc += (double)weight[((size_t)(oc * s->C + c) * s->KH + kh) * s->KW + kw] *
                                           dout[(((size_t)n * s->OC + oc) * OH + oh) * OW + ow];
                                }
                        dinp[(((size_t)n * s->C + c) * s->H + ih) * s->W + iw] += (float)acc;
                    }
    if (dweight)
        for (int oc = 0; oc < s->OC; oc++)
            for (int c = 0; c < s->C; c++)
                for (int kh = 0; kh < s->KH; kh++)
                    for (int kw = 0; kw < s->KW; kw++) {
                        double acc = 0;
                        for (int n = 0; n < s->N; n++)
                            for (int oh = 0; oh < OH; oh++)
                                for (int ow = 0; ow < OW; ow++) {
                                    int ih = oh * S - P + kh, iw = ow * S - P + kw;
                                    if (ih < 0 || ih >= s->H || iw < 0 || iw >= s->W) continue;
                                    acc += (double)dout[(((size_t)n * s->OC + oc) * OH + oh) * OW + ow] *
                                           inp[(((size_t)n * s->C + c) * s->H + ih) * s->W + iw];
                                }
                        dweight[((size_t)(oc * s->C + c) * s->KH + kh) * s->KW + kw] += (float)acc;
                    }
    if (dbias)
        for (int oc = 0; oc < s->OC; oc++) {
            double acc = 0;
            for (int n = 0; n < s->N; n++)
                for (int p = 0; p < OH * OW; p++) acc += dout[((size_t)n * s->OC + oc) * OH * OW + p];
            dbias[oc] += (float)acc;
        }
}

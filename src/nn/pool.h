/* pool.h - global average pooling (the classifier's head; see nn.h for the
 * conventions every layer follows: outputs first, backward accumulates). */
#ifndef DFN_POOL_H
#define DFN_POOL_H

/* out (N,C) = mean over HW of inp (N,C,HW) (torch.nn.AdaptiveAvgPool2d(1) + flatten). */
void dfn_avgpool_forward(float *out, const float *inp, int N, int C, int HW);
/* dinp (N,C,HW) += dout (N,C) / HW. */
void dfn_avgpool_backward(float *dinp, const float *dout, int N, int C, int HW);

#endif

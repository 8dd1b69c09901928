/* embedding.c - the sinusoidal timestep embedding and the class-label table.
 *
 * Both are small ((B, dim) with dim a few hundred), so they run serially except
 * for large batches; the table gradient adds repeated labels in batch order
 * (each task owns a block of columns and walks the batch 0..B-1), so results are
 * bit-identical for any thread count. */
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "nn/nn.h"

/* Below this many output values the functions run on the calling thread. */
#define EMB_SERIAL 65536
/* Columns per task of the table gradient. */
#define EMB_COLS 64

/* Sinusoidal timestep embedding (Vaswani et al. 2017 sec. 3.5; Ho et al. 2020):
 *   half = dim/2,  f_i = exp(-ln(10000) i / (half - 1)),  i < half,
 *   out[b] = [sin(t_b f_0) .. sin(t_b f_{half-1}), cos(t_b f_0) .. cos(t_b f_{half-1})],
 *   and a trailing 0 when dim is odd.
 * Evaluated in float32 as PyTorch does: the scale -ln(10000)/(half-1) is computed
 * in double and rounded to float, f_i = expf((float)i * scale), arg = t_b f_i in
 * float, then sinf/cosf. out (B,dim), t (B). */
void dfn_timestep_embedding(float *out, const float *t, int B, int dim) {
    DFN_ASSERT(out && t && B >= 0 && dim >= 4);
    const int half = dim / 2;
    /* In the reference's float32 operation order, (i * -ln(1e4)) / (half - 1):
     * t up to 1000 multiplies any difference in the last bit of f_i. */
    const float neg_log = (float)-log(10000.0), denom = (float)(half - 1);
    float *freq = dfn_scratch(0, (size_t)half);
    for (int i = 0; i < half; i++) freq[i] = expf(((float)i * neg_log) / denom);
#pragma omp parallel for schedule(static) if ((long)B * dim >= EMB_SERIAL)
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * dim;
        const float tb = t[b];
        for (int i = 0; i < half; i++) {
            const float arg = tb * freq[i];
            o[i] = sinf(arg);
            o[half + i] = cosf(arg);
        }
        if (dim & 1) o[dim - 1] = 0.0f;
    }
}

/* Class-label embedding lookup: out[b, :] = table[labels[b], :].
 * out (B,dim), labels (B) (each >= 0 and below the table's rows), table (rows,dim). */
void dfn_embedding_forward(float *out, const int *labels, const float *table, int B, int dim) {
    DFN_ASSERT(out && labels && table && B >= 0 && dim >= 0);
    for (int b = 0; b < B; b++) {
        DFN_ASSERT(labels[b] >= 0);
        memcpy(out + (size_t)b * dim, table + (size_t)labels[b] * dim, (size_t)dim * sizeof(float));
    }
}

/* Backward of out[b] = table[labels[b]]: dtable[labels[b], :] += dout[b, :] (B,dim),
 * for b = 0, 1, ..., B-1 in that order, so repeated labels always add in the same
 * order. Tasks: blocks of EMB_COLS columns. */
void dfn_embedding_backward(float *dtable, const float *dout, const int *labels, int B, int dim) {
    if (!dtable) return;
    DFN_ASSERT(dout && labels && B >= 0 && dim >= 0);
    const int tasks = (dim + EMB_COLS - 1) / EMB_COLS;
#pragma omp parallel for schedule(static) if ((long)B * dim >= EMB_SERIAL)
    for (int tk = 0; tk < tasks; tk++) {
        const int c0 = tk * EMB_COLS, m = DFN_MIN(EMB_COLS, dim - c0);
        for (int b = 0; b < B; b++) {
            DFN_ASSERT(labels[b] >= 0);
            float *restrict d = dtable + (size_t)labels[b] * dim + c0;
            const float *restrict g = dout + (size_t)b * dim + c0;
#pragma omp simd
            for (int j = 0; j < m; j++) d[j] += g[j];
        }
    }
}

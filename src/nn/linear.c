/* linear.c - the fully connected layer (torch.nn.Linear), on dfn_gemm.
 *
 * dfn_gemm runs on the calling thread only, so parallelism comes from fixed
 * tasks: blocks of LIN_ROWS batch rows for out and dinp, blocks of LIN_ROWS
 * output features for dweight (each a GEMM over the whole batch, so no partial
 * sums are ever combined) and for dbias (a sum over the batch in row order).
 * The blocks depend only on the shape: bit-identical for any thread count.
 *
 * Every task first sets its own nthreads ICV to 1 (it does not leak out of the
 * region): oneDNN's sgemm decides whether to spread over threads by
 * omp_in_parallel() and omp_get_max_threads(), and inside an inactive region
 * (one thread, or an `if` that is false) it would otherwise start its own
 * threads, which made a small GEMM milliseconds slow on a busy machine. */
#include <omp.h>
#include <string.h>

#include "core/core.h"
#include "nn/nn.h"

/* Rows (batch rows or output features) per task. */
#define LIN_ROWS 32
/* Below this many multiply-adds the layer runs on the calling thread. */
#define LIN_SERIAL (1L << 18)

static int nblocks(int n) { return (n + LIN_ROWS - 1) / LIN_ROWS; }

/* out (B,OC) = inp (B,IC) weight^T + bias, weight (OC,IC), bias (OC) or NULL:
 * y_bo = sum_i x_bi W_oi + b_o  (torch.nn.Linear). Tasks: blocks of batch rows. */
void dfn_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                        int B, int IC, int OC) {
    DFN_ASSERT(out && inp && weight && B >= 0 && IC >= 0 && OC >= 0);
    const int tasks = nblocks(B);
    const long work = (long)B * IC * OC;
#pragma omp parallel for schedule(dynamic, 1) if (work >= LIN_SERIAL && tasks > 1)
    for (int t = 0; t < tasks; t++) {
        omp_set_num_threads(1); /* this task's GEMM on this thread alone */
        const int b0 = t * LIN_ROWS, m = DFN_MIN(LIN_ROWS, B - b0);
        float *o = out + (size_t)b0 * OC;
        if (bias)
            for (int r = 0; r < m; r++) memcpy(o + (size_t)r * OC, bias, (size_t)OC * sizeof(float));
        dfn_gemm(0, 1, m, OC, IC, 1.0f, inp + (size_t)b0 * IC, IC, weight, IC,
                 bias ? 1.0f : 0.0f, o, OC);
    }
}

/* Backward of y = x W^T + b:
 *   dinp (B,IC)    += dout (B,OC) W            (tasks: blocks of batch rows)
 *   dweight (OC,IC) += dout^T inp (B,IC)        (tasks: blocks of output features)
 *   dbias (OC)     += sum_b dout[b, :]          (tasks: blocks of output features)
 * Each may be NULL. */
void dfn_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                         const float *inp, const float *weight, int B, int IC, int OC) {
    DFN_ASSERT(dout && B >= 0 && IC >= 0 && OC >= 0);
    DFN_ASSERT(!dinp || weight);
    DFN_ASSERT(!dweight || inp);
    const int t_in = dinp ? nblocks(B) : 0;
    const int t_w = dweight ? nblocks(OC) : 0;
    const int t_b = dbias ? nblocks(OC) : 0;
    const int tasks = t_in + t_w + t_b;
    const long work = (long)B * IC * OC * ((dinp != NULL) + (dweight != NULL));
    /* each task writes its own block of one gradient; dynamic order is harmless */
#pragma omp parallel for schedule(dynamic, 1) if (work >= LIN_SERIAL && tasks > 1)
    for (int t = 0; t < tasks; t++) {
        omp_set_num_threads(1); /* this task's GEMM on this thread alone */
        if (t < t_in) {
            const int b0 = t * LIN_ROWS, m = DFN_MIN(LIN_ROWS, B - b0);
            dfn_gemm(0, 0, m, IC, OC, 1.0f, dout + (size_t)b0 * OC, OC, weight, IC, 1.0f,
                     dinp + (size_t)b0 * IC, IC);
        } else if (t < t_in + t_w) {
            const int o0 = (t - t_in) * LIN_ROWS, m = DFN_MIN(LIN_ROWS, OC - o0);
            dfn_gemm(1, 0, m, IC, B, 1.0f, dout + o0, OC, inp, IC, 1.0f,
                     dweight + (size_t)o0 * IC, IC);
        } else {
            const int o0 = (t - t_in - t_w) * LIN_ROWS, m = DFN_MIN(LIN_ROWS, OC - o0);
            double acc[LIN_ROWS] = {0};
            for (int b = 0; b < B; b++) {
                const float *restrict g = dout + (size_t)b * OC + o0;
#pragma omp simd
                for (int j = 0; j < m; j++) acc[j] += g[j];
            }
            for (int j = 0; j < m; j++) dbias[o0 + j] += (float)acc[j];
        }
    }
}

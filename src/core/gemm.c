/* gemm.c - the one matrix multiply every layer uses: oneDNN's sgemm, pinned to
 * the calling thread.
 *
 * oneDNN's JIT kernels use the best instruction set of the CPU whatever
 * OPENBLAS_CORETYPE says, unless capped to the kernels' level (cpu.c does so
 * before the first call), and run single-threaded when called inside an OpenMP
 * parallel region. Outside one we open a one-thread region ourselves: a GEMM
 * that split its K loop across threads would make results depend on the
 * thread count. */
#include <dnnl.h>
#include <omp.h>

#include "core/core.h"
#include "core/cpu.h"

static void gemm_here(int trans_a, int trans_b, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta,
                      float *C, int ldc) {
    dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K,
                                  alpha, A, lda, B, ldb, beta, C, ldc);
    DFN_ASSERT(st == dnnl_success);
}

void dfn_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
              const float *A, int lda, const float *B, int ldb, float beta,
              float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    (void)dfn_get_isa(); /* caps oneDNN to the level in use before its first call */
    if (K <= 0) { /* C = beta * C, as BLAS defines it */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    if (omp_in_parallel()) {
        gemm_here(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else {
        /* A one-thread region is inactive (omp_in_parallel() stays 0 inside),
         * so oneDNN would still use omp_get_max_threads(): set the region's
         * own thread count to 1, which lasts only as long as the region. */
#pragma omp parallel num_threads(1)
        {
            omp_set_num_threads(1);
            gemm_here(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        }
    }
}

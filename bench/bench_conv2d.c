/* bench_conv2d.c - GFLOP/s of dfn_conv2d_forward / dfn_conv2d_backward on the
 * U-Net's conv shapes (fmnist, 28x28 input).
 *
 * usage: bench_conv2d [threads (2)] [batch (all of 128 1)] [seconds per case (0.5)]
 * FLOPs: forward 2*N*OC*C*KH*KW*OH*OW; backward twice that (data + weights).
 * Each time is the fastest of repeated calls after a warm-up call.
 * A fourth argument runs only the cases whose shape contains it (e.g. "128->128").
 * "cpu" is GFLOP per second of process CPU time (all threads): on a machine
 * shared with other jobs, wall-clock times are inflated by time-slicing while
 * this stays close to the per-core rate (x threads = the unshared rate).
 * Where the CPU has AVX512_BF16, the same calls again with bfloat16 products
 * (dfn_set_precision: forward, backward data and the Winograd weight gradient) and the speed-up of
 * fwd+bwd over float32, measured in the same run. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "nn/nn.h"

typedef struct {
    const char *what;
    int C, H, OC, K, stride, pad;
} conv_case;

static const conv_case cases[] = {
    {"first conv", 1, 28, 32, 3, 1, 1},
    {"first conv", 1, 28, 64, 3, 1, 1},
    {"res 28", 32, 28, 32, 3, 1, 1},
    {"res 28", 64, 28, 64, 3, 1, 1},
    {"res 14", 64, 14, 128, 3, 1, 1},
    {"res 14", 128, 14, 128, 3, 1, 1},
    {"res 7", 128, 7, 128, 3, 1, 1},
    {"down 28->14", 64, 28, 64, 3, 2, 1},
    {"down 14->7", 128, 14, 128, 3, 2, 1},
    {"up concat 7", 256, 7, 128, 3, 1, 1},
    {"up concat 14", 256, 14, 128, 3, 1, 1},
    {"up concat 14", 192, 14, 128, 3, 1, 1},
    {"up concat 28", 192, 28, 64, 3, 1, 1},
    {"up concat 28", 128, 28, 64, 3, 1, 1},
    {"up concat 28", 96, 28, 64, 3, 1, 1},
    {"up concat 28", 96, 28, 32, 3, 1, 1},
    {"up concat 28", 64, 28, 32, 3, 1, 1},
    {"out conv", 32, 28, 1, 3, 1, 1}, /* fmnist-tiny */
    {"out conv", 64, 28, 1, 3, 1, 1},
    {"down 28->14", 32, 28, 32, 3, 2, 1}, /* fmnist-tiny */
    {"down 14->7", 64, 14, 64, 3, 2, 1},
    {"res 14", 64, 14, 64, 3, 1, 1},
    {"res 7", 64, 7, 64, 3, 1, 1},
    {"skip 1x1 28", 96, 28, 64, 1, 1, 0},
    {"skip 1x1 28", 96, 28, 32, 1, 1, 0}, /* fmnist-tiny */
    {"skip 1x1 28", 64, 28, 32, 1, 1, 0},
    {"skip 1x1 14", 128, 14, 64, 1, 1, 0},
    {"skip 1x1 14", 192, 14, 128, 1, 1, 0},
    {"attn 1x1 7", 128, 7, 128, 1, 1, 0},
    {"attn 1x1 14", 64, 14, 64, 1, 1, 0},
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Fastest of repeated calls over about `budget` seconds (the machine may be
 * shared: the minimum is the least disturbed run). */
#define TIME_MIN(result, cpu_result, budget, stmt)                           \
    do {                                                                        \
        double ts_[201];                                                        \
        int k_ = 0;                                                             \
        stmt; /* warm-up */                                                     \
        double start_ = omp_get_wtime(), cpu0_ = cpu_now();                     \
        while (k_ < 201 && (k_ < 3 || omp_get_wtime() - start_ < (budget))) {  \
            double t0_ = omp_get_wtime();                                       \
            stmt;                                                               \
            ts_[k_++] = omp_get_wtime() - t0_;                                  \
        }                                                                       \
        cpu_result = (cpu_now() - cpu0_) / k_;                                  \
        qsort(ts_, k_, sizeof(double), cmp_double);                             \
        result = ts_[0];                                                        \
    } while (0)

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int batch_arg = argc > 2 ? atoi(argv[2]) : 0;
    double budget = argc > 3 ? atof(argv[3]) : 0.5;
    omp_set_num_threads(threads);
    const int batches[] = {128, 1};
    printf("conv2d, %d threads; GFLOP/s (ms)\n", threads);
    const int bf16 = dfn_precision_available(DFN_PRECISION_BF16) == DFN_OK;
    printf("%-14s %-22s %5s %16s %16s %16s %9s%s\n", "layer", "shape", "N", "forward", "backward",
           "fwd+bwd", "cpu f+b", bf16 ? "      bf16 fwd      bf16 bwd  bf16/fp32" : "");
    double tot_flop = 0, tot_time = 0, tot_cpu = 0, tot_bf16 = 0;
    for (int bi = 0; bi < 2; bi++) {
        int N = batch_arg > 0 ? batch_arg : batches[bi];
        if (batch_arg > 0 && bi > 0) break;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const conv_case *c = &cases[i];
            char shape[64];
            snprintf(shape, sizeof shape, "%d->%d %dx%d k%d s%d", c->C, c->OC, c->H, c->H, c->K, c->stride);
            if (argc > 4 && !strstr(shape, argv[4])) continue;
            dfn_conv2d_shape s = {N, c->C, c->H, c->H, c->OC, c->K, c->K, c->stride, c->pad};
            int OH = dfn_conv2d_out_h(&s), OW = dfn_conv2d_out_w(&s);
            size_t nin = (size_t)N * s.C * s.H * s.W, nw = (size_t)s.OC * s.C * s.KH * s.KW;
            size_t nout = (size_t)N * s.OC * OH * OW;
            float *inp = dfn_malloc(nin * 4), *w = dfn_malloc(nw * 4), *b = dfn_malloc(s.OC * 4);
            float *out = dfn_malloc(nout * 4), *dout = dfn_malloc(nout * 4);
            float *dinp = dfn_malloc(nin * 4), *dw = dfn_malloc(nw * 4), *db = dfn_malloc(s.OC * 4);
            for (size_t k = 0; k < nin; k++) inp[k] = (float)((k * 7) % 13) * 0.1f - 0.6f;
            for (size_t k = 0; k < nw; k++) w[k] = (float)((k * 5) % 11) * 0.01f - 0.05f;
            for (size_t k = 0; k < nout; k++) dout[k] = (float)((k * 3) % 7) * 0.1f - 0.3f;
            memset(b, 0, s.OC * 4);
            memset(dinp, 0, nin * 4), memset(dw, 0, nw * 4), memset(db, 0, s.OC * 4);
            double flop = 2.0 * N * s.OC * s.C * s.KH * s.KW * OH * OW;
            double tf, tb, cf, cb;
            TIME_MIN(tf, cf, budget, dfn_conv2d_forward(out, inp, w, b, &s));
            TIME_MIN(tb, cb, budget, dfn_conv2d_backward(dinp, dw, db, dout, inp, w, &s));
            printf("%-14s %-22s %5d %7.1f (%6.2f) %7.1f (%6.2f) %7.1f (%6.2f) %9.1f", c->what, shape,
                   N, flop / tf * 1e-9, tf * 1e3, 2 * flop / tb * 1e-9, tb * 1e3,
                   3 * flop / (tf + tb) * 1e-9, (tf + tb) * 1e3, 3 * flop / (cf + cb) * 1e-9);
            if (bf16) {
                double hf, hb, hcf, hcb;
                dfn_set_precision(DFN_PRECISION_BF16);
                TIME_MIN(hf, hcf, budget, dfn_conv2d_forward(out, inp, w, b, &s));
                TIME_MIN(hb, hcb, budget, dfn_conv2d_backward(dinp, dw, db, dout, inp, w, &s));
                dfn_set_precision(DFN_PRECISION_FP32);
                printf(" %6.1f (%5.2f) %6.1f (%5.2f) %9.2fx", flop / hf * 1e-9, hf * 1e3, 2 * flop / hb * 1e-9,
                       hb * 1e3, (tf + tb) / (hf + hb));
                if (N == 128) tot_bf16 += hf + hb;
                (void)hcf, (void)hcb;
            }
            printf("\n");
            fflush(stdout);
            if (N == 128) tot_flop += 3 * flop, tot_time += tf + tb, tot_cpu += cf + cb;
            free(inp), free(w), free(b), free(out), free(dout), free(dinp), free(dw), free(db);
        }
    }
    if (tot_time > 0)
        printf("all N=128 cases, fwd+bwd: %.1f GFLOP/s (%.1f ms); %.1f GFLOP per CPU-second\n",
               tot_flop / tot_time * 1e-9, tot_time * 1e3, tot_flop / tot_cpu * 1e-9);
    if (tot_bf16 > 0)
        printf("all N=128 cases, fwd+bwd in bfloat16: %.1f GFLOP/s (%.1f ms), %.2fx float32\n",
               tot_flop / tot_bf16 * 1e-9, tot_bf16 * 1e3, tot_time / tot_bf16);
    return 0;
}

/* bench_unet.c - the C side of the speed comparison with PyTorch (bench/run.sh
 * runs both in one go). The same work as bench/torch_bench.py:
 *   train: batch 128, x0 uniform in [-1, 1], t uniform in 0..999, linear betas
 *          1e-4..0.02, x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, MSE on eps,
 *          backward, AdamW (lr 2e-4); images/s = batch / median step time;
 *   infer: eval forward at the given batches; images/s = batch / median time.
 * Prints machine-readable lines:
 *   c train <preset> batch=128 img_per_s=... ms_per_step=... gflops=...
 *   c infer <preset> batch=64 img_per_s=... ms=... gflops=...
 *   c peak_rss_mb=...
 * usage: bench_unet --preset NAME [--threads 2] [--steps 8] [--warmup 2]
 *                   [--train-batch 128] [--infer-batches 1,64] [--min-time 3]
 *                   [--profile]   (time per kind of layer in a training step)
 *                   [--precision fp32|bf16]   (the convolutions' products; the
 *                   lines then name the precision: "c train <preset>+bf16 ...") */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "diffusion.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    const char *preset = "fmnist-tiny", *infer_list = "1,64";
    int threads = 2, steps = 8, warmup = 2, train_batch = 128, profile = 0;
    double min_time = 3.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) preset = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--train-batch") && i + 1 < argc) train_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--infer-batches") && i + 1 < argc) infer_list = argv[++i];
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            const int p = dfn_precision_from_name(argv[++i]);
            if (p < 0 || dfn_set_precision((dfn_precision)p) != DFN_OK) {
                fprintf(stderr, "bench_unet: %s\n", dfn_last_error());
                return 2;
            }
        }
        else {
            fprintf(stderr, "bench_unet: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    dfn_set_threads(threads);
    char label[96]; /* the preset, +bf16 when the convolutions run bfloat16 */
    snprintf(label, sizeof label, "%s%s", preset, dfn_get_precision() == DFN_PRECISION_BF16 ? "+bf16" : "");
    dfn_model_config cfg;
    dfn_model *m;
    if (dfn_model_config_preset(&cfg, preset) != DFN_OK || dfn_model_new(&m, &cfg, 0) != DFN_OK) {
        fprintf(stderr, "bench_unet: %s\n", dfn_last_error());
        return 1;
    }
    double gflop = dfn_model_flops_per_sample(m) / 1e9;
    size_t D = (size_t)cfg.unet.in_channels * cfg.unet.resolution * cfg.unet.resolution;
    size_t P = dfn_model_num_params(m);
    printf("c model %s params=%zu gflop_per_image=%.3f threads=%d\n", label, P, gflop, threads);
    fflush(stdout);

    /* training step */
    if (steps > 0) {
        int B = train_batch;
        float *x0 = malloc(sizeof(float) * B * D), *xt = malloc(sizeof(float) * B * D);
        float *eps = malloc(sizeof(float) * B * D), *pred = malloc(sizeof(float) * B * D);
        float *dpred = malloc(sizeof(float) * B * D), *t = malloc(sizeof(float) * B);
        float *mom = calloc(P, sizeof(float)), *vel = calloc(P, sizeof(float));
        double abar[1000], prod = 1.0;
        for (int i = 0; i < 1000; i++) {
            prod *= 1.0 - (1e-4 + (0.02 - 1e-4) * i / 999.0);
            abar[i] = prod;
        }
        dfn_rng rng = dfn_rng_init(0);
        dfn_rng_uniform(&rng, x0, B * D);
        for (size_t i = 0; i < B * D; i++) x0[i] = 2 * x0[i] - 1;
        dfn_adamw_params opt = dfn_adamw_params_init();
        opt.lr = 2e-4f;
        double *times = malloc(sizeof(double) * (steps + warmup));
        double loss0 = 0, loss = 0;
        for (int s = 0; s < warmup + steps; s++) {
            if (profile && s == warmup) {
                dfn_profile_reset();
                dfn_profile_enable(1);
            }
            double t0 = now();
            dfn_rng_uniform(&rng, t, B);
            for (int b = 0; b < B; b++) t[b] = floorf(t[b] * 1000.0f);
            dfn_rng_normal(&rng, eps, B * D);
            for (int b = 0; b < B; b++) {
                double a = abar[(int)t[b]];
                for (size_t j = 0; j < D; j++)
                    xt[b * D + j] = (float)(sqrt(a) * x0[b * D + j] + sqrt(1 - a) * eps[b * D + j]);
            }
            dfn_model_forward(m, pred, xt, t, NULL, B, 1, &rng);
            double l = 0;
            for (size_t j = 0; j < B * D; j++) {
                double d = pred[j] - eps[j];
                l += d * d;
                dpred[j] = (float)(2.0 * d / (double)(B * D));
            }
            loss = l / (B * D);
            if (s == 0) loss0 = loss;
            dfn_model_zero_grad(m);
            dfn_model_backward(m, dpred, NULL);
            dfn_adamw_step(dfn_model_params(m), dfn_model_grads(m), mom, vel, P, s + 1, &opt);
            times[s] = now() - t0;
        }
        double total_time = 0;
        for (int s = warmup; s < warmup + steps; s++) total_time += times[s];
        if (profile) {
            dfn_profile_enable(0);
            printf("c profile %s: one training step (batch %d), mean of %d steps: %.1f ms\n", label, B,
                   steps, 1e3 * total_time / steps);
            dfn_profile_report(stdout, steps);
        }
        double med = median(times + warmup, steps);
        printf("c train %s batch=%d img_per_s=%.2f ms_per_step=%.1f gflops=%.1f loss=%.3f->%.3f\n",
               label, B, B / med, med * 1e3, 3 * gflop * B / med, loss0, loss);
        fflush(stdout);
        free(x0); free(xt); free(eps); free(pred); free(dpred); free(t); free(mom); free(vel); free(times);
    }

    /* inference */
    char *list = strdup(infer_list);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int B = atoi(tok);
        if (B < 1) continue;
        float *x = malloc(sizeof(float) * B * D), *out = malloc(sizeof(float) * B * D);
        float *t = malloc(sizeof(float) * B);
        dfn_rng rng = dfn_rng_init(1);
        dfn_rng_normal(&rng, x, B * D);
        for (int b = 0; b < B; b++) t[b] = (float)((b * 37) % 1000);
        for (int w = 0; w < 2; w++) dfn_model_forward(m, out, x, t, NULL, B, 0, NULL);
        int cap = 1000, n = 0;
        double *times = malloc(sizeof(double) * cap), start = now();
        while (n < cap && (n < 7 || now() - start < min_time)) {
            double t0 = now();
            dfn_model_forward(m, out, x, t, NULL, B, 0, NULL);
            times[n++] = now() - t0;
        }
        double med = median(times, n);
        if (profile) { /* a second pass over the same forwards, timed per layer */
            dfn_profile_reset();
            dfn_profile_enable(1);
            for (int r = 0; r < n; r++) dfn_model_forward(m, out, x, t, NULL, B, 0, NULL);
            dfn_profile_enable(0);
            printf("c profile %s: one forward (batch %d), mean of %d forwards\n", label, B, n);
            dfn_profile_report(stdout, n);
        }
        printf("c infer %s batch=%d img_per_s=%.2f ms=%.3f gflops=%.1f\n", label, B, B / med,
               med * 1e3, gflop * B / med);
        fflush(stdout);
        free(x); free(out); free(t); free(times);
    }
    free(list);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("c peak_rss_mb=%.1f\n", ru.ru_maxrss / 1024.0);
    dfn_model_free(m);
    return 0;
}

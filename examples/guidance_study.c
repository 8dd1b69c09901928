/* guidance_study.c - class-guided sampling measured: for classifier-free
 * guidance (Ho & Salimans 2022) and classifier guidance (Dhariwal & Nichol
 * 2021) at scales 0, 1, 3, 5, draw n samples of each class from a model
 * trained with classes (train --cond), and report the share the evaluation
 * classifier assigns to the requested class and the FID against the test set,
 * beside the train-vs-test floor at the same N. Both methods guide the same
 * network: CFG mixes its class and null predictions; classifier guidance adds
 * s grad log p(y | x_t) of a noisy classifier to its null (unconditional)
 * prediction, so scale 0 is the same unconditional sampling for both. Also
 * writes a grid per method at scale 3 (one row per class).
 *
 *     ./example_guidance_study COND.safetensors EVAL_CLF.safetensors NOISY_CLF.safetensors \
 *         [n_per_class (100)] [steps (50)] [grid prefix (guided)]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <diffusion.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s COND.safetensors EVAL_CLF.safetensors NOISY_CLF.safetensors "
                        "[n_per_class] [steps] [grid prefix]\n", argv[0]);
        return 2;
    }
    const int per = argc > 4 ? atoi(argv[4]) : 100, steps = argc > 5 ? atoi(argv[5]) : 50;
    const char *prefix = argc > 6 ? argv[6] : "guided";
    dfn_pipeline *pipe = NULL;
    dfn_model *eval = NULL, *noisy = NULL;
    dfn_dataset *test = NULL, *train = NULL;
    if (dfn_pipeline_load(&pipe, argv[1]) || dfn_model_load(&eval, argv[2]) ||
        dfn_pipeline_load_classifier(pipe, &noisy, argv[3]) ||
        dfn_dataset_load_fashion_mnist(&test, NULL, "test") ||
        dfn_dataset_load_fashion_mnist(&train, NULL, "train")) {
        fprintf(stderr, "%s\n", dfn_last_error());
        return 1;
    }
    const int K = 10, n = K * per;
    const size_t D = dfn_pipeline_sample_size(pipe);
    int dims[3];
    dfn_pipeline_sample_shape(pipe, dims);
    float *x = malloc((size_t)n * D * sizeof(float)), *logits = malloc((size_t)n * K * sizeof(float));
    /* the floor: n training images (every 60000/n-th) against the test set */
    {
        size_t *idx = malloc((size_t)n * sizeof(size_t));
        for (int i = 0; i < n; i++) idx[i] = (size_t)i * (60000 / n);
        dfn_dataset *sub = NULL;
        double floor_fid = NAN;
        if (dfn_dataset_subset(&sub, train, idx, (size_t)n) || dfn_fid(&floor_fid, eval, sub, test)) {
            fprintf(stderr, "%s\n", dfn_last_error());
            return 1;
        }
        printf("N = %d (%d per class), DDIM %d steps; FID floor (N train images vs the test set): %.4f\n",
               n, per, steps, floor_fid);
        dfn_dataset_free(sub);
        free(idx);
    }
    printf("%-28s %6s %12s %10s %8s\n", "method", "scale", "class share", "FID", "s/sample");
    const double scales[4] = {0, 1, 3, 5};
    for (int method = 0; method < 2; method++) {
        for (int si = 0; si < 4; si++) {
            if (method == 1 && scales[si] == 0) continue; /* the same unconditional run as CFG's 0 */
            double t0 = now();
            for (int k = 0; k < K; k++) {
                dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(pipe);
                sp.sampler_params.steps = steps;
                sp.batch = per;
                sp.label = k;
                sp.seed = 1000 + (uint64_t)k;
                if (method == 0) {
                    sp.guidance = scales[si];
                } else {
                    sp.guidance = 0.0; /* the null prediction, guided by the classifier */
                    sp.classifier = noisy;
                    sp.classifier_scale = scales[si];
                }
                if (dfn_pipeline_sample(pipe, x + (size_t)k * per * D, per, &sp, NULL)) {
                    fprintf(stderr, "%s\n", dfn_last_error());
                    return 1;
                }
            }
            const double secs = now() - t0;
            long hit = 0;
            for (int i = 0; i < n; i += 100) {
                const int b = n - i < 100 ? n - i : 100;
                dfn_model_forward(eval, logits + (size_t)i * K, x + (size_t)i * D, NULL, NULL, b, DFN_EVAL, NULL);
            }
            for (int i = 0; i < n; i++) {
                int best = 0;
                for (int c = 1; c < K; c++)
                    if (logits[(size_t)i * K + c] > logits[(size_t)i * K + best]) best = c;
                hit += best == i / per;
            }
            dfn_dataset *ds = NULL;
            double fid = NAN;
            if (dfn_dataset_from_array(&ds, x, (size_t)n, 3, dims, NULL, 0) || dfn_fid(&fid, eval, ds, test)) {
                fprintf(stderr, "%s\n", dfn_last_error());
                return 1;
            }
            dfn_dataset_free(ds);
            printf("%-28s %6.0f %12.3f %10.4f %8.3f\n",
                   scales[si] == 0 ? "none (unconditional)"
                   : method == 0   ? "classifier-free guidance"
                                   : "classifier guidance",
                   scales[si], (double)hit / n, fid, secs / n);
            fflush(stdout);
            if (scales[si] == 3) { /* 8 of each class, one row per class */
                float *grid = malloc((size_t)K * 8 * D * sizeof(float));
                for (int k = 0; k < K; k++)
                    memcpy(grid + (size_t)k * 8 * D, x + (size_t)k * per * D, 8 * D * sizeof(float));
                char path[512];
                snprintf(path, sizeof path, "%s_%s_s3.png", prefix, method == 0 ? "cfg" : "classifier");
                if (dfn_png_write_grid(path, grid, K * 8, dims[0], dims[1], dims[2], 8, 2))
                    fprintf(stderr, "%s\n", dfn_last_error());
                free(grid);
            }
        }
    }
    free(x);
    free(logits);
    dfn_dataset_free(test);
    dfn_dataset_free(train);
    dfn_model_free(eval);
    dfn_model_free(noisy);
    dfn_pipeline_free(pipe);
    return 0;
}

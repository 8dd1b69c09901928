/* test_model.c - model configs, presets, parameter tables, and the project's
 * determinism promise for a whole training step. (Agreement with PyTorch is
 * tested in test_torch_reference.c.) */
#include <omp.h>
#include <string.h>

#include "diffusion.h"
#include "test_util.h"

static void expect_config_error(const dfn_model_config *c, const char *needle) {
    dfn_status st = dfn_model_config_validate(c);
    CHECK(st == DFN_ERR_CONFIG && strstr(dfn_last_error(), needle),
          "expected a config error mentioning '%s', got status %d: %s", needle, st, dfn_last_error());
    dfn_model *m = (dfn_model *)1;
    st = dfn_model_new(&m, c, 0);
    CHECK(st == DFN_ERR_CONFIG && m == NULL, "dfn_model_new must refuse it too");
}

static void configs_that_cannot_be_built_are_refused_with_a_reason(void) {
    dfn_model_config c;
    dfn_model_config_preset(&c, "fmnist-small");
    c.unet.channels = 48; /* 48 % 32 */
    expect_config_error(&c, "not divisible by groups");
    dfn_model_config_preset(&c, "fmnist-tiny");
    c.unet.groups = 8;
    c.unet.channels = 24; c.unet.ch_mult[1] = 3; /* concat 72 + 24 fine, but 96 % 8 ok; make heads fail */
    c.unet.heads = 5;
    expect_config_error(&c, "heads");
    dfn_model_config_preset(&c, "fmnist-small");
    c.unet.resolution = 14; /* 14 -> 7 -> odd 7 cannot halve */
    expect_config_error(&c, "does not halve");
    dfn_model_config_preset(&c, "fmnist-small");
    c.unet.attn_resolutions[0] = 5;
    expect_config_error(&c, "never occurs");
    dfn_model_config_preset(&c, "fmnist-small");
    c.unet.ch_mult[1] = 0;
    expect_config_error(&c, "ch_mult");
    dfn_model_config_preset(&c, "fmnist-small");
    c.dropout = 1.0f;
    expect_config_error(&c, "dropout");
    dfn_model_config_preset(&c, "fmnist-small");
    c.unet.groups = 0;
    expect_config_error(&c, "groups");
    dfn_model_config_preset(&c, "mlp-2d");
    c.mlp.width = 2;
    expect_config_error(&c, "width");
    c.kind = (dfn_model_kind)7;
    expect_config_error(&c, "kind");
    /* concatenated channels must divide too: 64 + 32 with 64 groups */
    dfn_model_config_preset(&c, "fmnist-tiny");
    c.unet.channels = 64; c.unet.groups = 64; c.unet.ch_mult[0] = 1; c.unet.ch_mult[1] = 1; c.unet.ch_mult[2] = 1;
    CHECK(dfn_model_config_validate(&c) == DFN_OK, "64 channels, 64 groups, concat 128: fine: %s", dfn_last_error());
    c.unet.ch_mult[0] = 2; c.unet.ch_mult[1] = 3; /* up path concat 192 + 128 = 320 = 5 * 64: ok; 128+64=192 ok */
    c.unet.channels = 32; c.unet.groups = 64; /* 32 channels < 64 groups */
    expect_config_error(&c, "not divisible by groups");
}

static void unknown_preset_lists_the_known_ones(void) {
    dfn_model_config c;
    CHECK(dfn_model_config_preset(&c, "fmnist-huge") == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "fmnist-huge") && strstr(dfn_last_error(), "fmnist-tiny"),
          "unknown preset message: %s", dfn_last_error());
}

static void presets_match_the_reference_sizes(void) {
    dfn_model_config fast;
    CHECK(dfn_model_config_preset(&fast, "fmnist-fast") == DFN_OK && fast.unet.groups == 8 &&
              fast.unet.channels == 32,
          "fmnist-fast is fmnist-tiny with 8 groups");
    /* shared/reference/README.md: fmnist-small 6,469,889 parameters and 2.208
     * GFLOP per image; fmnist-tiny 1,062,497 and 0.373 (fmnist-fast: the same
     * shape with 8 GroupNorm groups, the same size); rgb64 8,952,067 as its
     * PyTorch twin (scripts/torch_twin.py) counts them, 11.784 GFLOP. */
    struct { const char *name; size_t params; double gflop; } want[] = {
        {"fmnist-small", 6469889, 2.208}, {"fmnist-tiny", 1062497, 0.373},
        {"fmnist-fast", 1062497, 0.373}, {"rgb64", 8952067, 11.784}};
    for (int i = 0; i < 4; i++) {
        dfn_model_config c;
        dfn_model *m;
        CHECK(dfn_model_config_preset(&c, want[i].name) == DFN_OK, "preset");
        CHECK(dfn_model_new(&m, &c, 0) == DFN_OK, "new: %s", dfn_last_error());
        size_t n = 0;
        for (int t = 0; t < dfn_model_num_tensors(m); t++) {
            int shape[4], nd = dfn_model_tensor_shape(m, t, shape);
            size_t k = 1;
            for (int d = 0; d < nd; d++) k *= shape[d];
            n += k;
        }
        CHECK(n == want[i].params, "%s: %zu parameters, want %zu", want[i].name, n, want[i].params);
        double g = dfn_model_flops_per_sample(m) / 1e9;
        CHECK(fabs(g - want[i].gflop) < 0.001, "%s: %.4f GFLOP, want %.3f", want[i].name, g, want[i].gflop);
        CHECK(dfn_model_find_tensor(m, "down.0.blocks.0.conv1.weight") >= 0 &&
                  dfn_model_find_tensor(m, "up.0.upsample.conv.bias") >= 0 &&
                  dfn_model_find_tensor(m, "mid_attn.proj_out.weight") >= 0 &&
                  dfn_model_find_tensor(m, "temb.2.weight") >= 0,
              "PyTorch names present");
        dfn_model_free(m);
    }
}

/* One training step (forward with dropout, MSE-like backward, clipping, AdamW);
 * returns the parameters after it in `after` (n floats). */
static void train_step(const dfn_model_config *c, int threads, float *after, size_t n, int B) {
    omp_set_num_threads(threads);
    dfn_model *m;
    if (dfn_model_new(&m, c, 11) != DFN_OK) { CHECK(0, "new: %s", dfn_last_error()); return; }
    size_t D = c->kind == DFN_MODEL_UNET ? (size_t)c->unet.in_channels * c->unet.resolution * c->unet.resolution
                                         : (size_t)c->mlp.dim;
    float *x = malloc(sizeof(float) * B * D), *out = malloc(sizeof(float) * B * D);
    float *t = malloc(sizeof(float) * B), *dx = malloc(sizeof(float) * B * D);
    int *y = malloc(sizeof(int) * B);
    fill_uniform(x, B * D, 3);
    for (int b = 0; b < B; b++) { t[b] = (float)(b * 131 % 1000); y[b] = b % (c->num_classes + 1); }
    dfn_rng rng = dfn_rng_init(5);
    size_t P = dfn_model_num_params(m);
    float *mo = calloc(P, sizeof(float)), *ve = calloc(P, sizeof(float));
    dfn_adamw_params opt = dfn_adamw_params_init();
    for (int step = 1; step <= 2; step++) {
        dfn_model_forward(m, out, x, t, c->num_classes ? y : NULL, B, 1, &rng);
        dfn_model_zero_grad(m);
        dfn_model_backward(m, out, dx); /* d(0.5 |out|^2) */
        dfn_clip_grad_norm(dfn_model_grads(m), P, 1.0);
        dfn_adamw_step(dfn_model_params(m), dfn_model_grads(m), mo, ve, P, step, &opt);
    }
    CHECK(P == n, "param count");
    memcpy(after, dfn_model_params(m), sizeof(float) * P);
    memcpy(after, dx, sizeof(float) * (D < P ? D : P)); /* fold dx into the comparison */
    free(x); free(out); free(t); free(dx); free(y); free(mo); free(ve);
    dfn_model_free(m);
}

static void a_training_step_is_bit_identical_across_runs_and_thread_counts(void) {
    dfn_model_config cfgs[2];
    dfn_model_config_preset(&cfgs[0], "fmnist-tiny");
    cfgs[0].unet.channels = 16; cfgs[0].unet.groups = 8; cfgs[0].unet.heads = 2; cfgs[0].num_classes = 3;
    cfgs[0].unet.n_attn = 1; cfgs[0].unet.attn_resolutions[0] = 14;
    dfn_model_config_preset(&cfgs[1], "mlp-2d");
    cfgs[1].dropout = 0.2f; cfgs[1].num_classes = 2;
    int batches[2] = {3, 64};
    for (int i = 0; i < 2; i++) {
        dfn_model *m;
        dfn_model_new(&m, &cfgs[i], 0);
        size_t P = dfn_model_num_params(m);
        dfn_model_free(m);
        float *a = malloc(P * sizeof(float)), *b = malloc(P * sizeof(float)), *c = malloc(P * sizeof(float));
        train_step(&cfgs[i], 1, a, P, batches[i]);
        train_step(&cfgs[i], 2, b, P, batches[i]);
        train_step(&cfgs[i], 2, c, P, batches[i]);
        CHECK(!memcmp(b, c, P * sizeof(float)), "model %d: two runs with 2 threads differ", i);
        CHECK(!memcmp(a, b, P * sizeof(float)), "model %d: 1 and 2 threads differ", i);
        free(a); free(b); free(c);
    }
    omp_set_num_threads(2);
}

int main(void) {
    configs_that_cannot_be_built_are_refused_with_a_reason();
    unknown_preset_lists_the_known_ones();
    presets_match_the_reference_sizes();
    a_training_step_is_bit_identical_across_runs_and_thread_counts();
    TEST_MAIN_END();
}

/* test_torch_reference.c - the engine against PyTorch.
 *
 * scripts/gen_reference.py (the PyTorch twin, Debian's python3-torch) wrote
 * tests/ref/<case>.safetensors: the initial parameters, inputs, the eval and
 * training outputs, the loss, every parameter gradient, d loss/d x, the gradient
 * norm, and the parameters after a few steps of (forward with dropout, MSE,
 * backward, clip to norm 1, AdamW). Dropout masks agree because both sides draw
 * them from the same Philox stream. Here the C engine repeats all of it from the
 * same initial parameters.
 *
 * Norm: for each tensor, max|c - torch| / max|torch| (inf-norm relative error);
 * every tensor must be within 1e-4. The worst tensor of each case is printed. */
#include <string.h>

#include "diffusion.h"
#include "io/safetensors.h"
#include "test_util.h"

#define TOL 1e-4

typedef struct {
    const char *name;
    double err;
} worst;

static void compare(worst *w, const char *case_name, const char *tensor, const float *got,
                    const float *want, size_t n) {
    char label[160];
    snprintf(label, sizeof label, "%s/%s", case_name, tensor);
    double e = rel_error(got, want, n);
    check_tensor(label, got, want, n, TOL);
    if (!(e <= w->err)) { /* also catches NaN */
        w->err = e;
        w->name = tensor;
    }
}

static float *read_f32(const dfn_st_file *f, const char *name, size_t expect) {
    const dfn_st_tensor *t;
    if (dfn_st_get(f, name, DFN_DTYPE_F32, -1, NULL, &t) != DFN_OK) {
        CHECK(0, "%s", dfn_last_error());
        return NULL;
    }
    if (expect && t->numel != expect) {
        CHECK(0, "%s: %zu elements, expected %zu", name, t->numel, expect);
        return NULL;
    }
    float *x = malloc(t->numel * sizeof(float));
    memcpy(x, t->data, t->numel * sizeof(float));
    return x;
}

static void run_case(const char *case_name) {
    char path[256];
    snprintf(path, sizeof path, "tests/ref/%s.safetensors", case_name);
    dfn_st_file *f;
    if (dfn_st_open(&f, path) != DFN_OK) {
        CHECK(0, "%s", dfn_last_error());
        return;
    }
    dfn_model_config cfg;
    dfn_model *m = NULL;
    const char *json = dfn_st_metadata(f, "config");
    CHECK(json && dfn_model_config_from_json(&cfg, json) == DFN_OK, "%s: config: %s", path, dfn_last_error());
    if (!json || dfn_model_new(&m, &cfg, 0) != DFN_OK) {
        CHECK(0, "%s: %s", path, dfn_last_error());
        dfn_st_close(f);
        return;
    }
    size_t P = dfn_model_num_params(m);
    float *params = dfn_model_params(m);
    CHECK(dfn_st_read_model_tensors(f, m, "init.", params) == DFN_OK, "%s", dfn_last_error());
    /* every init.* tensor of the file is a model tensor: nothing the twin has is missing here */
    int n_init = 0;
    for (int i = 0; i < dfn_st_num_tensors(f); i++) {
        const char *name = dfn_st_tensor_at(f, i)->name;
        if (!strncmp(name, "init.", 5)) {
            n_init++;
            CHECK(dfn_model_find_tensor(m, name + 5) >= 0, "%s: the twin has '%s', the C model does not", path, name + 5);
        }
    }
    CHECK(n_init == dfn_model_num_tensors(m), "%s: %d tensors in the twin, %d in C", path, n_init, dfn_model_num_tensors(m));

    const dfn_st_tensor *xt;
    if (dfn_st_get(f, "x", DFN_DTYPE_F32, -1, NULL, &xt) != DFN_OK) {
        CHECK(0, "%s", dfn_last_error());
        goto done;
    }
    int B = (int)xt->shape[0];
    size_t n = xt->numel;
    float *x = read_f32(f, "x", n), *t = read_f32(f, "t", B), *target = read_f32(f, "target", n);
    const dfn_st_tensor *yt = dfn_st_find(f, "y");
    const int *y = yt && yt->dtype == DFN_DTYPE_I32 ? (const int *)yt->data : NULL;
    CHECK(!cfg.num_classes || y, "%s: a model with classes needs y", path);
    float *out = malloc(n * sizeof(float)), *dout = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
    float *want = NULL;
    worst w = {"(none)", 0.0};

    /* eval forward */
    dfn_model_forward(m, out, x, t, y, B, 0, NULL);
    if ((want = read_f32(f, "eval_out", n))) compare(&w, case_name, "eval_out", out, want, n);
    free(want);

    const char *seed_s = dfn_st_metadata(f, "dropout_seed"), *steps_s = dfn_st_metadata(f, "steps");
    const char *adamw_s = dfn_st_metadata(f, "adamw");
    dfn_rng rng = dfn_rng_init(seed_s ? strtoull(seed_s, NULL, 10) : 0);
    int steps = steps_s ? atoi(steps_s) : 1;
    dfn_adamw_params opt = dfn_adamw_params_init();
    if (adamw_s) {
        const char *p;
        if ((p = strstr(adamw_s, "\"lr\":"))) opt.lr = strtof(p + 5, NULL);
        if ((p = strstr(adamw_s, "\"weight_decay\":"))) opt.weight_decay = strtof(p + 15, NULL);
        if ((p = strstr(adamw_s, "\"eps\":"))) opt.eps = strtof(p + 6, NULL);
        if ((p = strstr(adamw_s, "\"beta1\":"))) opt.beta1 = strtof(p + 8, NULL);
        if ((p = strstr(adamw_s, "\"beta2\":"))) opt.beta2 = strtof(p + 8, NULL);
    }
    float *losses = read_f32(f, "loss", steps);
    float *mom = calloc(P, sizeof(float)), *vel = calloc(P, sizeof(float));
    for (int s = 1; s <= steps; s++) {
        dfn_model_forward(m, out, x, t, y, B, 1, &rng);
        double loss = 0;
        for (size_t i = 0; i < n; i++) {
            double d = (double)out[i] - target[i];
            loss += d * d;
            dout[i] = (float)(2.0 * d / (double)n);
        }
        loss /= (double)n;
        if (losses) {
            float l = (float)loss;
            compare(&w, case_name, "loss", &l, &losses[s - 1], 1);
        }
        dfn_model_zero_grad(m);
        dfn_model_backward(m, dout, s == 1 ? dx : NULL);
        if (s == 1) {
            if ((want = read_f32(f, "out", n))) compare(&w, case_name, "out", out, want, n);
            free(want);
            if ((want = read_f32(f, "grad.x", n))) compare(&w, case_name, "grad.x", dx, want, n);
            free(want);
            float *g = dfn_model_grads(m);
            float *ref = calloc(P, sizeof(float));
            CHECK(dfn_st_read_model_tensors(f, m, "grad.", ref) == DFN_OK, "%s", dfn_last_error());
            for (int i = 0; i < dfn_model_num_tensors(m); i++) {
                int shape[4], nd = dfn_model_tensor_shape(m, i, shape);
                size_t k = 1;
                for (int d = 0; d < nd; d++) k *= shape[d];
                size_t off = dfn_model_tensor_offset(m, i);
                compare(&w, case_name, dfn_model_tensor_name(m, i), g + off, ref + off, k);
            }
            free(ref);
            float norm = (float)dfn_grad_norm(g, P);
            if ((want = read_f32(f, "grad_norm", 1))) compare(&w, case_name, "grad_norm", &norm, want, 1);
            free(want);
        }
        dfn_clip_grad_norm(dfn_model_grads(m), P, 1.0);
        dfn_adamw_step(params, dfn_model_grads(m), mom, vel, P, s, &opt);
    }
    float *ref = calloc(P, sizeof(float));
    CHECK(dfn_st_read_model_tensors(f, m, "final.", ref) == DFN_OK, "%s", dfn_last_error());
    for (int i = 0; i < dfn_model_num_tensors(m); i++) {
        int shape[4], nd = dfn_model_tensor_shape(m, i, shape);
        size_t k = 1;
        for (int d = 0; d < nd; d++) k *= shape[d];
        size_t off = dfn_model_tensor_offset(m, i);
        char label[96];
        snprintf(label, sizeof label, "final.%s", dfn_model_tensor_name(m, i));
        double e = rel_error(params + off, ref + off, k);
        check_tensor(label, params + off, ref + off, k, TOL);
        if (!(e <= w.err)) { w.err = e; w.name = "a final.* parameter"; }
    }
    printf("%-20s B=%d params=%zu steps=%d: worst tensor %s, rel error %.2e (tolerance %.0e)\n",
           case_name, B, P, steps, w.name, w.err, TOL);
    free(ref); free(mom); free(vel); free(losses);
    free(x); free(t); free(target); free(out); free(dout); free(dx);
done:
    dfn_model_free(m);
    dfn_st_close(f);
}

int main(void) {
    const char *cases[] = {"unet_tiny", "unet_small_reduced", "mlp", "unet_attn28"};
    for (int i = 0; i < 4; i++) run_case(cases[i]);
    TEST_MAIN_END();
}

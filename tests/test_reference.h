/* test_reference.h - comparing the engine's tensors with the reference
 * tensors that scripts/gen_reference.py (the PyTorch twin) wrote into
 * tests/ref/<case>.safetensors: reading them, the floored inf-norm relative
 * error, and the worst tensor of a case for its summary line. */
#ifndef DFN_TEST_REFERENCE_H
#define DFN_TEST_REFERENCE_H

#include "io/safetensors.h"
#include "test_util.h"

/* max|a - b| / max(max|b|, floor): rel_error with a floor under the
 * reference's scale, for tensors that are zero in exact arithmetic (the
 * PyTorch reference tests' parameter gradients). */
static inline double floored_error(const float *a, const float *b, size_t n, double floor) {
    double maxdiff = 0, maxref = floor;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= maxdiff)) maxdiff = d;
        if (fabs((double)b[i]) > maxref) maxref = fabs((double)b[i]);
    }
    return maxref > 0 ? maxdiff / maxref : maxdiff;
}

/* The worst tensor of a comparison, for the summary line. */
typedef struct {
    const char *name;
    double err;
} worst_tensor;

/* Records the error of tensor `tensor` of case `case_name` (a failure above
 * tol) and keeps the worst. */
static inline void compare_floor(worst_tensor *w, const char *case_name, const char *tensor, const float *got,
                          const float *want, size_t n, double floor, double tol) {
    double e = floored_error(got, want, n, floor);
    CHECK(e <= tol, "%s/%s (n=%zu): error %.3e > %.1e (first values: got %.8g want %.8g)", case_name,
          tensor, n, e, tol, got[0], want[0]);
    if (!(e <= w->err)) { /* also catches NaN */
        w->err = e;
        w->name = tensor;
    }
}

/* A malloc'ed copy of F32 tensor `name` of f, which must have `expect`
 * elements (0: any); NULL (and a failure) otherwise. */
static inline float *read_f32(const dfn_st_file *f, const char *name, size_t expect) {
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

/* The model's parameter gradients against the file's grad.* tensors (read into
 * ref, dfn_model_num_params floats), each with the floor 1e-3 x the largest
 * reference gradient (for tensors whose gradient is zero in exact arithmetic). */
static inline void compare_param_grads(worst_tensor *w, const char *case_name, const dfn_st_file *f,
                                       dfn_model *m, float *ref, double tol) {
    CHECK(dfn_st_read_model_tensors(f, m, "grad.", ref) == DFN_OK, "%s", dfn_last_error());
    const float *g = dfn_model_grads(m);
    double G = 0;
    for (size_t i = 0; i < dfn_model_num_params(m); i++) G = fmax(G, fabs(ref[i]));
    for (int i = 0; i < dfn_model_num_tensors(m); i++) {
        int shape[4], nd = dfn_model_tensor_shape(m, i, shape);
        size_t k = 1;
        for (int d = 0; d < nd; d++) k *= (size_t)shape[d];
        const size_t off = dfn_model_tensor_offset(m, i);
        compare_floor(w, case_name, dfn_model_tensor_name(m, i), g + off, ref + off, k, 1e-3 * G, tol);
    }
}

/* Opens the reference file `path` (*f, for the caller to close) and builds the
 * model of its "config" metadata with the initial parameters (init.*);
 * NULL, with a failure recorded and nothing left open, on any error. */
static inline dfn_model *reference_model(const char *path, dfn_st_file **f) {
    if (dfn_st_open(f, path) != DFN_OK) {
        CHECK(0, "%s", dfn_last_error());
        return NULL;
    }
    dfn_model_config cfg;
    dfn_model *m = NULL;
    const char *json = dfn_st_metadata(*f, "config");
    if (!json || dfn_model_config_from_json(&cfg, json) != DFN_OK || dfn_model_new(&m, &cfg, 0) != DFN_OK ||
        dfn_st_read_model_tensors(*f, m, "init.", dfn_model_params(m)) != DFN_OK) {
        CHECK(0, "%s: config %s: %s", path, json ? json : "(none)", dfn_last_error());
        dfn_model_free(m);
        dfn_st_close(*f);
        *f = NULL;
        return NULL;
    }
    return m;
}

#endif

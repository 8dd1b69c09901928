/* params.c - the parameter table: named views into one flat allocation, their
 * initialisation, and the activation arena. */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "models/model.h"

size_t dfn_param_add(dfn_param_table *tab, dfn_init_kind init, int fan_in, int ndim, const int *shape,
                     const char *fmt, ...) {
    if (tab->count == tab->cap) {
        tab->cap = tab->cap ? 2 * tab->cap : 64;
        dfn_tensor_info *grown = realloc(tab->t, (size_t)tab->cap * sizeof *grown);
        DFN_ASSERT(grown);
        tab->t = grown;
    }
    dfn_tensor_info *ti = &tab->t[tab->count++];
    memset(ti, 0, sizeof *ti);
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(ti->name, sizeof ti->name, fmt, ap);
    va_end(ap);
    DFN_ASSERT(len > 0 && len < (int)sizeof ti->name);
    DFN_ASSERT(ndim >= 1 && ndim <= 4);
    ti->ndim = ndim;
    ti->numel = 1;
    for (int d = 0; d < ndim; d++) {
        ti->shape[d] = shape[d];
        ti->numel *= (size_t)shape[d];
    }
    ti->init = init;
    ti->fan_in = fan_in;
    /* keep every tensor 16-float (64-byte) aligned inside the flat array */
    ti->offset = (tab->total + 15) / 16 * 16;
    tab->total = ti->offset + ti->numel;
    return ti->offset;
}

/* torch.nn.Conv2d: weight (oc, ic, k, k), bias (oc); both U(-1/sqrt(fan_in), +) by default. */
dfn_wb dfn_param_conv(dfn_param_table *tab, const char *prefix, int oc, int ic, int k) {
    int fan_in = ic * k * k;
    dfn_wb wb;
    wb.w = dfn_param_add(tab, INIT_UNIFORM_FAN_IN, fan_in, 4, (int[]){oc, ic, k, k}, "%s.weight", prefix);
    wb.b = dfn_param_add(tab, INIT_UNIFORM_FAN_IN, fan_in, 1, (int[]){oc}, "%s.bias", prefix);
    return wb;
}

/* torch.nn.Linear: weight (out, in), bias (out). */
dfn_wb dfn_param_linear(dfn_param_table *tab, const char *prefix, int out, int in) {
    dfn_wb wb;
    wb.w = dfn_param_add(tab, INIT_UNIFORM_FAN_IN, in, 2, (int[]){out, in}, "%s.weight", prefix);
    wb.b = dfn_param_add(tab, INIT_UNIFORM_FAN_IN, in, 1, (int[]){out}, "%s.bias", prefix);
    return wb;
}

/* torch.nn.GroupNorm: weight = 1, bias = 0. */
dfn_wb dfn_param_norm(dfn_param_table *tab, const char *prefix, int c) {
    dfn_wb wb;
    wb.w = dfn_param_add(tab, INIT_ONES, 0, 1, (int[]){c}, "%s.weight", prefix);
    wb.b = dfn_param_add(tab, INIT_ZEROS, 0, 1, (int[]){c}, "%s.bias", prefix);
    return wb;
}

float *dfn_arena_take(dfn_arena *a, size_t n) {
    size_t start = (a->used + 15) / 16 * 16;
    a->used = start + n;
    if (!a->base) return NULL;
    DFN_ASSERT(a->used <= a->cap);
    return a->base + start;
}

/* PyTorch's default initialisation (torch.nn.Linear / Conv2d reset_parameters:
 * kaiming_uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
 * weights and biases; GroupNorm 1 and 0; Embedding N(0, 1)), drawn from a
 * Philox stream in table order. */
void dfn_param_init(const dfn_param_table *tab, float *params, uint64_t seed) {
    dfn_rng rng = dfn_rng_init(seed);
    for (int i = 0; i < tab->count; i++) {
        const dfn_tensor_info *t = &tab->t[i];
        float *p = params + t->offset;
        switch (t->init) {
        case INIT_UNIFORM_FAN_IN: {
            float bound = 1.0f / sqrtf((float)t->fan_in);
            dfn_rng_uniform(&rng, p, t->numel);
            for (size_t j = 0; j < t->numel; j++) p[j] = (2.0f * p[j] - 1.0f) * bound;
            break;
        }
        case INIT_ONES:
            for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
            break;
        case INIT_ZEROS:
            memset(p, 0, t->numel * sizeof(float));
            break;
        case INIT_NORMAL:
            dfn_rng_normal(&rng, p, t->numel);
            break;
        }
    }
}

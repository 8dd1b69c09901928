/* test_conv2d.c - conv2d: the fast kernels of every instruction-set level this
 * CPU supports (dfn_set_isa) against the reference loops on many shapes, the
 * reference and fast backward against central finite differences, the fused
 * residual add (dfn_conv2d_forward_add) against the forward and dfn_add, and
 * bit-identical results for 1, 2 and 3 threads at every level. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "nn/kernels.h"
#include "nn/nn.h"
#include "test_util.h"

#define TOL_FAST 1e-5 /* fast vs reference, inf-norm relative error */
#define TOL_FD 1e-3   /* analytic vs central-difference gradient, inf-norm relative error */

typedef struct {
    size_t in, w, out;
} sizes;

static sizes sizes_of(const dfn_conv2d_shape *s) {
    sizes z;
    z.in = (size_t)s->N * s->C * s->H * s->W;
    z.w = (size_t)s->OC * s->C * s->KH * s->KW;
    z.out = (size_t)s->N * s->OC * dfn_conv2d_out_h(s) * dfn_conv2d_out_w(s);
    return z;
}

static float *alloc_fill(size_t n, unsigned seed) {
    float *x = dfn_malloc(n * sizeof(float) + 64);
    fill_uniform(x, n, seed);
    return x;
}

static float *copy_of(const float *x, size_t n) {
    float *y = dfn_malloc(n * sizeof(float) + 64);
    memcpy(y, x, n * sizeof(float));
    return y;
}

static void shape_name(char *buf, size_t len, const dfn_conv2d_shape *s, const char *what) {
    snprintf(buf, len, "[%s] %s N%d C%d %dx%d OC%d k%dx%d s%d p%d", dfn_isa_name(dfn_get_isa()), what,
             s->N, s->C, s->H, s->W, s->OC, s->KH, s->KW, s->stride, s->pad);
}

/* Fast vs reference: forward (with and without bias) and backward with every
 * combination of NULL gradients; gradients start from random values to check
 * that both accumulate (+=). */
static void test_against_reference(dfn_conv2d_shape s) {
    sizes z = sizes_of(&s);
    char name[160];
    float *inp = alloc_fill(z.in, 1), *w = alloc_fill(z.w, 2), *b = alloc_fill(s.OC, 3);
    float *dout = alloc_fill(z.out, 4);
    float *out = alloc_fill(z.out, 5), *out_ref = alloc_fill(z.out, 6);

    for (int use_bias = 0; use_bias < 2; use_bias++) {
        dfn_conv2d_forward(out, inp, w, use_bias ? b : NULL, &s);
        dfn_conv2d_forward_reference(out_ref, inp, w, use_bias ? b : NULL, &s);
        shape_name(name, sizeof name, &s, use_bias ? "forward+bias" : "forward");
        check_tensor(name, out, out_ref, z.out, TOL_FAST);
    }

    /* dfn_conv2d_forward_add: bit for bit the forward followed by dfn_add, into
     * another buffer and in place (add = out), in each precision the level has */
    float *res = alloc_fill(z.out, 10), *sum = alloc_fill(z.out, 11);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        if (bf16 && dfn_set_precision(DFN_PRECISION_BF16) != DFN_OK) break;
        for (int use_bias = 0; use_bias < 2; use_bias++) {
            dfn_conv2d_forward(out_ref, inp, w, use_bias ? b : NULL, &s);
            dfn_add(out_ref, res, z.out);
            dfn_conv2d_forward_add(out, inp, w, use_bias ? b : NULL, res, &s);
            memcpy(sum, res, z.out * sizeof(float));
            dfn_conv2d_forward_add(sum, inp, w, use_bias ? b : NULL, sum, &s);
            shape_name(name, sizeof name, &s, use_bias ? "forward_add+bias" : "forward_add");
            const int same = memcmp(out, out_ref, z.out * sizeof(float)) == 0,
                      same_in_place = memcmp(sum, out_ref, z.out * sizeof(float)) == 0;
            CHECK(same, "%s (%s): not the bits of forward + dfn_add", name, bf16 ? "bf16" : "fp32");
            if (dfn_conv2d_is_pointwise(&s) && !use_bias) /* oneDNN's out += W inp (nn.h) */
                CHECK(rel_error(sum, out_ref, z.out) <= TOL_FAST, "%s (%s) in place: error %g", name,
                      bf16 ? "bf16" : "fp32", rel_error(sum, out_ref, z.out));
            else
                CHECK(same_in_place, "%s (%s) in place: not the bits of forward + dfn_add", name,
                      bf16 ? "bf16" : "fp32");
        }
    }
    dfn_set_precision(DFN_PRECISION_FP32);
    free(res), free(sum);

    float *di0 = alloc_fill(z.in, 7), *dw0 = alloc_fill(z.w, 8), *db0 = alloc_fill(s.OC, 9);
    /* the reference gradients, accumulated once onto the starting values: a gradient
     * the reference skips keeps them, so every mask compares against these or those */
    float *dia = copy_of(di0, z.in), *dwa = copy_of(dw0, z.w), *dba = copy_of(db0, s.OC);
    dfn_conv2d_backward_reference(dia, dwa, dba, dout, inp, w, &s);
    for (int mask = 0; mask < 8; mask++) { /* bit 0: dinp, bit 1: dweight, bit 2: dbias */
        float *di = copy_of(di0, z.in), *dw = copy_of(dw0, z.w), *db = copy_of(db0, s.OC);
        float *dir = copy_of(mask & 1 ? dia : di0, z.in), *dwr = copy_of(mask & 2 ? dwa : dw0, z.w),
              *dbr = copy_of(mask & 4 ? dba : db0, s.OC);
        dfn_conv2d_backward(mask & 1 ? di : NULL, mask & 2 ? dw : NULL, mask & 4 ? db : NULL, dout,
                            inp, w, &s);
        /* Relative error of the accumulated gradient measured against the
         * gradient's own scale (not the random starting values). */
        for (size_t i = 0; i < z.in; i++) di[i] -= di0[i], dir[i] -= di0[i];
        for (size_t i = 0; i < z.w; i++) dw[i] -= dw0[i], dwr[i] -= dw0[i];
        for (int i = 0; i < s.OC; i++) db[i] -= db0[i], dbr[i] -= db0[i];
        if (mask == 7) {
            shape_name(name, sizeof name, &s, "dinp");
            check_tensor(name, di, dir, z.in, TOL_FAST);
            shape_name(name, sizeof name, &s, "dweight");
            check_tensor(name, dw, dwr, z.w, TOL_FAST);
            shape_name(name, sizeof name, &s, "dbias");
            check_tensor(name, db, dbr, s.OC, TOL_FAST);
        } else {
            /* A skipped gradient is untouched; a requested one matches. */
            int ok = 1;
            if (mask & 1) ok &= rel_error(di, dir, z.in) <= TOL_FAST;
            else ok &= memcmp(di, dir, z.in * sizeof(float)) == 0;
            if (mask & 2) ok &= rel_error(dw, dwr, z.w) <= TOL_FAST;
            else ok &= memcmp(dw, dwr, z.w * sizeof(float)) == 0;
            if (mask & 4) ok &= rel_error(db, dbr, s.OC) <= TOL_FAST;
            else ok &= memcmp(db, dbr, s.OC * sizeof(float)) == 0;
            shape_name(name, sizeof name, &s, "backward with NULL gradients");
            CHECK(ok, "%s (mask %d)", name, mask);
        }
        free(di), free(dw), free(db), free(dir), free(dwr), free(dbr);
    }
    { /* dfn_conv2d_backward_set: dinp overwritten (from random values), equal element
       * by element to the gradient accumulated onto zeros; dweight still accumulates */
        float *di = copy_of(di0, z.in), *dw = copy_of(dw0, z.w);
        float *dz = dfn_calloc(z.in, sizeof(float)), *dwz = copy_of(dw0, z.w);
        dfn_conv2d_backward_set(di, dw, NULL, dout, inp, w, &s);
        dfn_conv2d_backward(dz, dwz, NULL, dout, inp, w, &s);
        size_t bad = 0;
        for (size_t i = 0; i < z.in; i++) bad += di[i] != dz[i];
        shape_name(name, sizeof name, &s, "backward_set");
        CHECK(bad == 0 && memcmp(dw, dwz, z.w * sizeof(float)) == 0,
              "%s: %zu of %zu dinp differ from the accumulated gradient, or dweight differs", name, bad, z.in);
        free(di), free(dw), free(dz), free(dwz);
    }
    free(di0), free(dw0), free(db0), free(dia), free(dwa), free(dba);
    free(inp), free(w), free(b), free(dout), free(out), free(out_ref);
}

/* L = sum(out * R) accumulated in double, out from `fwd`. */
typedef void (*fwd_fn)(float *, const float *, const float *, const float *,
                       const dfn_conv2d_shape *);
static double loss(fwd_fn fwd, float *out, const float *inp, const float *w, const float *b,
                   const float *R, const dfn_conv2d_shape *s, size_t nout) {
    fwd(out, inp, w, b, s);
    double L = 0;
    for (size_t i = 0; i < nout; i++) L += (double)out[i] * R[i];
    return L;
}

/* Central differences dL/dx_i ~ (L(x_i+h) - L(x_i-h)) / 2h of every element of x. */
static void numeric_grad(float *g, float *x, size_t n, fwd_fn fwd, float *out, const float *inp,
                         const float *w, const float *b, const float *R, const dfn_conv2d_shape *s,
                         size_t nout) {
    const float h = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = loss(fwd, out, inp, w, b, R, s, nout);
        x[i] = keep - h;
        double lm = loss(fwd, out, inp, w, b, R, s, nout);
        x[i] = keep;
        g[i] = (float)((lp - lm) / (2.0 * h));
    }
}

/* The backward (reference or fast) against central differences of the reference
 * forward. Since out is linear in each of inp, w and b, central differences are
 * exact up to float rounding, so the tolerance can be tight (TOL_FD); a wrong
 * backward (e.g. a kernel not flipped, kh and kw swapped) is off by O(1), which
 * the negative control below confirms. */
static void test_finite_differences(dfn_conv2d_shape s, int fast) {
    sizes z = sizes_of(&s);
    char name[160];
    float *inp = alloc_fill(z.in, 11), *w = alloc_fill(z.w, 12), *b = alloc_fill(s.OC, 13);
    float *R = alloc_fill(z.out, 14), *out = alloc_fill(z.out, 15);
    float *gi = dfn_calloc(z.in, sizeof(float)), *gw = dfn_calloc(z.w, sizeof(float));
    float *gb = dfn_calloc(s.OC, sizeof(float));
    float *ni = dfn_malloc(z.in * sizeof(float)), *nw = dfn_malloc(z.w * sizeof(float));
    float *nb = dfn_malloc(s.OC * sizeof(float));

    /* dL/dout = R */
    if (fast) dfn_conv2d_backward(gi, gw, gb, R, inp, w, &s);
    else dfn_conv2d_backward_reference(gi, gw, gb, R, inp, w, &s);
    fwd_fn f = dfn_conv2d_forward_reference;
    numeric_grad(ni, inp, z.in, f, out, inp, w, b, R, &s, z.out);
    numeric_grad(nw, w, z.w, f, out, inp, w, b, R, &s, z.out);
    numeric_grad(nb, b, s.OC, f, out, inp, w, b, R, &s, z.out);
    const char *who = fast ? "finite differences (fast) " : "finite differences (reference) ";
    char what[64];
    snprintf(what, sizeof what, "%sdinp", who);
    shape_name(name, sizeof name, &s, what);
    check_tensor(name, gi, ni, z.in, TOL_FD);
    snprintf(what, sizeof what, "%sdweight", who);
    shape_name(name, sizeof name, &s, what);
    check_tensor(name, gw, nw, z.w, TOL_FD);
    snprintf(what, sizeof what, "%sdbias", who);
    shape_name(name, sizeof name, &s, what);
    check_tensor(name, gb, nb, s.OC, TOL_FD);

    /* Negative control: the same check must reject a dweight with kh and kw
     * swapped (a transposed kernel) when the kernel is square and non-trivial. */
    if (s.KH == s.KW && s.KH > 1) {
        float *t = dfn_malloc(z.w * sizeof(float));
        for (int oc = 0; oc < s.OC; oc++)
            for (int c = 0; c < s.C; c++)
                for (int kh = 0; kh < s.KH; kh++)
                    for (int kw = 0; kw < s.KW; kw++)
                        t[((size_t)(oc * s.C + c) * s.KH + kh) * s.KW + kw] =
                            gw[((size_t)(oc * s.C + c) * s.KH + kw) * s.KW + kh];
        double err = rel_error(t, nw, z.w);
        shape_name(name, sizeof name, &s, "negative control (transposed dweight rejected)");
        CHECK(err > 100 * TOL_FD, "%s: err %.3e", name, err);
        free(t);
    }
    free(inp), free(w), free(b), free(R), free(out), free(gi), free(gw), free(gb);
    free(ni), free(nw), free(nb);
}

/* Forward + backward with `threads` threads; returns the concatenated results. */
static float *run_all(const dfn_conv2d_shape *s, int threads, size_t *len) {
    sizes z = sizes_of(s);
    float *inp = alloc_fill(z.in, 21), *w = alloc_fill(z.w, 22), *b = alloc_fill(s->OC, 23);
    float *dout = alloc_fill(z.out, 24);
    *len = z.out + z.in + z.w + s->OC;
    float *res = dfn_malloc(*len * sizeof(float));
    fill_uniform(res, *len, 25); /* gradients accumulate onto these */
    omp_set_num_threads(threads);
    dfn_conv2d_forward(res, inp, w, b, s);
    dfn_conv2d_backward(res + z.out, res + z.out + z.in, res + z.out + z.in + z.w, dout, inp, w, s);
    /* Every thread of the team frees its scratch: a worker that exits when the
     * next team is smaller would otherwise leave its buffers behind. */
#pragma omp parallel
    dfn_scratch_release();
    omp_set_num_threads(2);
    free(inp), free(w), free(b), free(dout);
    return res;
}

static void test_determinism(dfn_conv2d_shape s) {
    char name[160];
    size_t len;
    float *r1 = run_all(&s, 1, &len);
    const int threads[] = {2, 3, 1};
    for (int i = 0; i < 3; i++) {
        size_t len2;
        float *r = run_all(&s, threads[i], &len2);
        shape_name(name, sizeof name, &s, "determinism");
        CHECK(len == len2 && memcmp(r1, r, len * sizeof(float)) == 0,
              "%s: %d threads differ from 1 thread", name, threads[i]);
        free(r);
    }
    free(r1);
}

#define SHAPE(N, C, H, W, OC, KH, KW, S, P) ((dfn_conv2d_shape){N, C, H, W, OC, KH, KW, S, P})

int main(void) {
    const dfn_conv2d_shape ref_shapes[] = {
        SHAPE(2, 3, 8, 8, 5, 3, 3, 1, 1),     /* 3x3 same, odd channel counts */
        SHAPE(1, 1, 28, 28, 32, 3, 3, 1, 1),  /* first conv, C = 1, batch 1 */
        SHAPE(3, 1, 7, 9, 4, 3, 3, 1, 1),     /* C = 1, non-square */
        SHAPE(2, 16, 28, 28, 16, 3, 3, 2, 1), /* downsample 28 -> 14 */
        SHAPE(3, 8, 14, 14, 12, 3, 3, 2, 1),  /* 14 -> 7 */
        SHAPE(2, 9, 7, 7, 10, 3, 3, 2, 1),    /* stride 2 on odd H: 7 -> 4 */
        SHAPE(5, 24, 7, 7, 17, 3, 3, 1, 1),   /* 7x7: panels span images */
        SHAPE(4, 20, 7, 7, 24, 1, 1, 1, 0),   /* 1x1 */
        SHAPE(1, 64, 14, 14, 40, 1, 1, 1, 0), /* 1x1 batch 1 */
        SHAPE(3, 5, 9, 11, 6, 1, 1, 2, 0),    /* 1x1 stride 2 (gathers) */
        SHAPE(2, 4, 10, 9, 3, 5, 5, 1, 2),    /* 5x5 same */
        SHAPE(2, 3, 10, 12, 5, 3, 3, 1, 0),   /* 3x3 no padding (gathers) */
        SHAPE(2, 6, 11, 9, 7, 4, 2, 3, 1),    /* rectangular kernel, stride 3 */
        SHAPE(3, 2, 5, 5, 3, 5, 5, 1, 3),     /* padding > needed */
        SHAPE(1, 33, 3, 3, 9, 3, 3, 1, 1),    /* P = 9 < 16: many images per vector */
        SHAPE(7, 3, 2, 2, 5, 1, 1, 1, 0),     /* P = 4 */
        SHAPE(13, 17, 1, 1, 19, 1, 1, 1, 0),  /* P = 1 (a linear layer) */
        SHAPE(1, 32, 28, 28, 32, 3, 3, 1, 1), /* batch 1, channel blocks */
        SHAPE(4, 96, 14, 14, 64, 3, 3, 1, 1), /* concat conv in the up path */
        SHAPE(30, 12, 7, 7, 8, 3, 3, 1, 1),   /* many image slots */
        SHAPE(2, 3, 6, 6, 4, 6, 6, 1, 0),     /* kernel = image: P = 1 per image */
        /* channels-last weight gradient (C >= 32): ragged tiles, strides, blocks */
        SHAPE(3, 40, 9, 9, 13, 3, 3, 2, 1),
        SHAPE(2, 35, 11, 10, 26, 1, 1, 1, 0),
        SHAPE(1, 70, 9, 9, 25, 3, 3, 1, 1),
        SHAPE(2, 33, 8, 8, 12, 5, 5, 2, 2),
        SHAPE(2, 64, 6, 7, 5, 3, 3, 1, 0),
        /* batches big enough for the cached panel maps (>= 2 panels per map) */
        SHAPE(6, 8, 28, 28, 10, 3, 3, 1, 1),
        SHAPE(24, 6, 28, 28, 9, 3, 3, 2, 1),
        SHAPE(100, 3, 7, 7, 4, 3, 3, 1, 1),
        SHAPE(100, 2, 7, 7, 3, 3, 3, 2, 1),
        /* Winograd F(2x2,3x3) (3x3 same, C >= 16, ceil(W/2) >= 7, >= 768 2x2 tiles):
         * odd H and W (partial tiles), W = 29 and 30, ragged OC; OC >= 16 also runs
         * backward data as Winograd */
        SHAPE(14, 16, 13, 15, 10, 3, 3, 1, 1),
        SHAPE(4, 17, 29, 29, 9, 3, 3, 1, 1),
        SHAPE(4, 24, 30, 30, 16, 3, 3, 1, 1),
        SHAPE(16, 40, 14, 14, 24, 3, 3, 1, 1),
        /* ... avx512's segments of 16 tiles: W = 31 and 32 (all 16 lanes, the window's
         * columns 32 and 33), 34 (a second segment of one tile), 47 (of eight, odd H),
         * 64 (two full segments) */
        SHAPE(7, 16, 13, 31, 16, 3, 3, 1, 1),
        SHAPE(7, 16, 16, 32, 20, 3, 3, 1, 1),
        SHAPE(8, 16, 13, 34, 9, 3, 3, 1, 1),
        SHAPE(3, 24, 33, 47, 20, 3, 3, 1, 1),
        SHAPE(2, 16, 64, 64, 16, 3, 3, 1, 1),
        /* ... and its pairs of tile rows (W <= 14, 7 tiles or fewer a row): odd H and W,
         * so pairs run across images (TH = 7); H = 12, W = 14 */
        SHAPE(17, 16, 13, 13, 16, 3, 3, 1, 1),
        SHAPE(19, 20, 12, 14, 12, 3, 3, 1, 1),
        /* Winograd F(4x4,3x3) (float32, W >= 14, >= 768 4x4 tiles covering at most
         * 4/3 of the image): 7-tile rows (W = 28) across blocks and images, the last
         * block ragged; partial tiles at the right and bottom (14 x 14, with OC = 16
         * also backward data as F(4x4)); 16-tile rows; 25-tile rows (a block holds
         * pieces of three), non-square with a partial bottom row of tiles */
        SHAPE(16, 16, 28, 28, 10, 3, 3, 1, 1),
        SHAPE(48, 16, 14, 14, 16, 3, 3, 1, 1),
        SHAPE(3, 16, 64, 64, 8, 3, 3, 1, 1),
        SHAPE(2, 17, 95, 100, 8, 3, 3, 1, 1),
        /* Winograd at the portable levels only: narrow (7, 9) images */
        SHAPE(48, 16, 7, 7, 12, 3, 3, 1, 1),
        SHAPE(40, 20, 9, 9, 10, 3, 3, 1, 1),
        /* Winograd weight gradient (3x3 same, C >= 32): one tile per image, odd sizes,
         * output channels not a multiple of any register tile, several tile blocks */
        SHAPE(3, 36, 2, 2, 13, 3, 3, 1, 1),
        SHAPE(2, 48, 5, 9, 7, 3, 3, 1, 1),
        SHAPE(2, 64, 14, 14, 160, 3, 3, 1, 1),
        /* channel counts that are not multiples of the tiles, stride 2, batch 1 */
        SHAPE(2, 50, 6, 6, 20, 3, 3, 2, 1),
        SHAPE(1, 16, 9, 9, 8, 3, 3, 2, 1),
        SHAPE(2, 7, 5, 5, 5, 1, 1, 1, 0),
    };
    for (int level = DFN_ISA_GENERIC; level <= (int)dfn_cpu_isa(); level++) {
        CHECK(dfn_set_isa((dfn_isa)level) == DFN_OK, "dfn_set_isa(%s): %s", dfn_isa_name((dfn_isa)level),
              dfn_last_error());
        printf("level %s\n", dfn_isa_name(dfn_get_isa()));
        for (size_t i = 0; i < sizeof ref_shapes / sizeof ref_shapes[0]; i++)
            test_against_reference(ref_shapes[i]);
    }

    const dfn_conv2d_shape fd_shapes[] = {
        SHAPE(2, 3, 5, 6, 4, 3, 3, 1, 1),
        SHAPE(2, 2, 7, 7, 3, 3, 3, 2, 1),
        SHAPE(1, 3, 4, 5, 2, 1, 1, 1, 0),
        SHAPE(2, 2, 6, 5, 3, 2, 3, 2, 0),
    };
    for (size_t i = 0; i < sizeof fd_shapes / sizeof fd_shapes[0]; i++) test_finite_differences(fd_shapes[i], 0);
    for (int level = DFN_ISA_GENERIC; level <= (int)dfn_cpu_isa(); level++) {
        dfn_set_isa((dfn_isa)level);
        for (size_t i = 0; i < sizeof fd_shapes / sizeof fd_shapes[0]; i++) test_finite_differences(fd_shapes[i], 1);
    }

    const dfn_conv2d_shape det_shapes[] = {
        SHAPE(16, 32, 28, 28, 32, 3, 3, 1, 1),
        SHAPE(8, 64, 28, 28, 64, 3, 3, 2, 1),
        SHAPE(32, 32, 28, 28, 24, 3, 3, 2, 1), /* cached maps, col2im */
        SHAPE(32, 128, 7, 7, 128, 3, 3, 1, 1),
        SHAPE(1, 64, 14, 14, 64, 3, 3, 1, 1),
        SHAPE(1, 128, 7, 7, 128, 3, 3, 1, 1),
        SHAPE(3, 96, 14, 14, 64, 1, 1, 1, 0),
        SHAPE(5, 1, 28, 28, 32, 3, 3, 1, 1),
        SHAPE(8, 20, 13, 27, 16, 3, 3, 1, 1), /* Winograd, odd sizes */
        SHAPE(64, 32, 7, 7, 32, 3, 3, 1, 1),  /* Winograd at the portable levels */
        SHAPE(12, 64, 14, 14, 48, 3, 3, 1, 1), /* Winograd weight gradient, slots, blocks */
    };
#ifdef DFN_SANITIZED
    /* Under ASan/UBSan the shapes above already take every level's code through
     * its paths; determinism on the large shapes is checked at one level only. */
    const int first_level = (int)dfn_cpu_isa();
#else
    const int first_level = DFN_ISA_GENERIC;
#endif
    for (int level = first_level; level <= (int)dfn_cpu_isa(); level++) {
        dfn_set_isa((dfn_isa)level);
        for (size_t i = 0; i < sizeof det_shapes / sizeof det_shapes[0]; i++)
            test_determinism(det_shapes[i]);
    }

#pragma omp parallel
    dfn_scratch_release();
    TEST_MAIN_END();
}

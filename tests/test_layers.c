/* test_layers.c - GroupNorm(+SiLU), linear, SiLU, dropout, upsample, concat,
 * add_channel and the embeddings: forward values against direct formulas in
 * double, every backward against central finite differences, and
 * bit-identical results for 1, 2 and 3 threads.
 *
 * Gradient checks: L = sum(out * R) with a fixed random R, accumulated in
 * double; dL/dx_i ~ (L(x_i + h) - L(x_i - h)) / (2h), h = 1e-2, for every
 * element of every differentiated input; the analytic gradient (backward called
 * with dout = R, on top of a random base to check that it accumulates) must
 * agree in inf-norm relative error (test_util.h) within GRAD_TOL = 1e-2 (seen:
 * 1e-4 and below). A wrong GroupNorm backward (the centring terms dropped) and a
 * wrong SiLU derivative are checked to miss it by 10x. GroupNorm's backward on
 * large shapes is also held to 1e-5 against the formula evaluated in double.
 *
 * DFN_BENCH=1 in the environment also times the layers on (128,64,28,28) after
 * the tests; DFN_BENCH=only times them alone. */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "nn/nn.h"
#include "test_util.h"

#define GRAD_TOL 1e-2

static float *falloc(size_t n) { return dfn_calloc(n ? n : 1, sizeof(float)); }

static float *frand(size_t n, unsigned seed, float lo, float hi) {
    float *x = falloc(n);
    fill_uniform(x, n, seed);
    for (size_t i = 0; i < n; i++) x[i] = lo + (x[i] + 1.0f) * 0.5f * (hi - lo);
    return x;
}

/* ------------------------------------------------------------ finite differences */

/* A forward pass over the inputs in ctx, writing its output (n_out) to out. */
typedef void (*fwd_fn)(void *ctx, float *out);

static double loss_of(fwd_fn f, void *ctx, float *out, const float *R, size_t n_out) {
    f(ctx, out);
    double L = 0.0;
    for (size_t i = 0; i < n_out; i++) L += (double)out[i] * R[i];
    return L;
}

/* fd (n) = central differences of L = sum(out R) with respect to each x[i]. */
static void fd_grad(float *fd, float *x, size_t n, fwd_fn f, void *ctx, float *out,
                    const float *R, size_t n_out, float h) {
    for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        const float xp = v + h, xm = v - h;
        x[i] = xp;
        const double Lp = loss_of(f, ctx, out, R, n_out);
        x[i] = xm;
        const double Lm = loss_of(f, ctx, out, R, n_out);
        x[i] = v;
        fd[i] = (float)((Lp - Lm) / ((double)xp - (double)xm));
    }
}

/* Checks grad - base (the accumulated part of a gradient) against fd; returns the error. */
static double check_grad(const char *name, const float *grad, const float *base, const float *fd,
                         size_t n, double tol) {
    float *d = falloc(n);
    for (size_t i = 0; i < n; i++) d[i] = grad[i] - (base ? base[i] : 0.0f);
    double err = rel_error(d, fd, n);
    check_tensor(name, d, fd, n, tol);
    printf("  %-40s grad rel err %.2e (tol %.0e)\n", name, err, tol);
    free(d);
    return err;
}

/* ------------------------------------------------------------ GroupNorm */

typedef struct {
    float *x, *w, *b, *mean, *rstd;
    int N, C, HW, G, silu;
    float eps;
} gn_ctx;

static void gn_fwd(void *p, float *out) {
    gn_ctx *c = p;
    dfn_groupnorm_forward(out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C, c->HW, c->G,
                          c->eps, c->silu);
}

/* Double-precision GroupNorm(+SiLU) of float inputs: the direct formula. */
static void gn_reference(double *y, const float *x, const float *w, const float *b, int N, int C,
                         int HW, int G, double eps, int silu, double *mu_out, double *rs_out) {
    int cpg = C / G;
    size_t M = (size_t)cpg * HW;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            const float *xg = x + ((size_t)n * C + (size_t)g * cpg) * HW;
            double mu = 0, var = 0;
            for (size_t i = 0; i < M; i++) mu += xg[i];
            mu /= (double)M;
            for (size_t i = 0; i < M; i++) var += (xg[i] - mu) * (xg[i] - mu);
            var /= (double)M;
            double rs = 1.0 / sqrt(var + eps);
            if (mu_out) mu_out[n * G + g] = mu;
            if (rs_out) rs_out[n * G + g] = rs;
            for (int k = 0; k < cpg; k++) {
                int c = g * cpg + k;
                for (int i = 0; i < HW; i++) {
                    size_t idx = ((size_t)n * C + c) * HW + i;
                    double v = (x[idx] - mu) * rs * (w ? w[c] : 1.0) + (b ? b[c] : 0.0);
                    y[idx] = silu ? v / (1.0 + exp(-v)) : v;
                }
            }
        }
}

static void test_groupnorm_forward(void) {
    printf("groupnorm forward\n");
    struct { int N, C, HW, G, silu; float offset; double tol; } cases[] = {
        {2, 8, 20, 4, 0, 0.0f, 1e-5},   {2, 8, 20, 4, 1, 0.0f, 1e-5},
        {3, 6, 7, 6, 0, 0.5f, 1e-5},    {3, 6, 7, 1, 1, 0.5f, 1e-5},
        {4, 64, 784, 32, 1, 0.0f, 1e-5}, {2, 64, 784, 1, 0, 0.0f, 1e-5},
        {2, 128, 49, 32, 0, 0.0f, 1e-5},
        /* mean 100, std ~0.6: the float-rounded mean costs ~ulp(100)/2/std = 7e-6 */
        {2, 32, 100, 8, 0, 100.0f, 2e-5},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int N = cases[ci].N, C = cases[ci].C, HW = cases[ci].HW, G = cases[ci].G;
        size_t n = (size_t)N * C * HW;
        float *x = frand(n, 11 + (unsigned)ci, -1.0f, 1.0f);
        for (size_t i = 0; i < n; i++) x[i] += cases[ci].offset + 0.3f * (float)((i / HW) % 5);
        float *w = frand((size_t)C, 12, 0.5f, 1.5f), *b = frand((size_t)C, 13, -0.3f, 0.3f);
        float *out = falloc(n), *mean = falloc((size_t)N * G), *rstd = falloc((size_t)N * G);
        double *yr = malloc(n * sizeof(double)), *mur = malloc(N * G * sizeof(double)),
               *rsr = malloc(N * G * sizeof(double));
        float *yrf = falloc(n), *murf = falloc((size_t)N * G), *rsrf = falloc((size_t)N * G);
        dfn_groupnorm_forward(out, mean, rstd, x, w, b, N, C, HW, G, 1e-5f, cases[ci].silu);
        gn_reference(yr, x, w, b, N, C, HW, G, 1e-5, cases[ci].silu, mur, rsr);
        for (size_t i = 0; i < n; i++) yrf[i] = (float)yr[i];
        for (int i = 0; i < N * G; i++) {
            murf[i] = (float)mur[i];
            rsrf[i] = (float)rsr[i];
        }
        char name[96];
        snprintf(name, sizeof name, "gn fwd N%d C%d HW%d G%d silu%d off%g", N, C, HW, G,
                 cases[ci].silu, cases[ci].offset);
        check_tensor(name, out, yrf, n, cases[ci].tol);
        printf("  %-40s rel err %.2e\n", name, rel_error(out, yrf, n));
        /* saved statistics: mean to float rounding, rstd relative */
        for (int i = 0; i < N * G; i++) {
            CHECK(fabs(mean[i] - mur[i]) <= 1e-6 * (1.0 + fabs(mur[i])) / rsr[i] + 4e-7 * fabs(mur[i]),
                  "%s mean[%d] %.9g vs %.9g", name, i, mean[i], mur[i]);
            CHECK(fabs(rstd[i] - rsr[i]) <= 1e-6 * rsr[i], "%s rstd[%d] %.9g vs %.9g", name, i,
                  rstd[i], rsr[i]);
        }
        free(x); free(w); free(b); free(out); free(mean); free(rstd);
        free(yr); free(mur); free(rsr); free(yrf); free(murf); free(rsrf);
    }
    /* without affine parameters each group has mean ~0 and variance ~1 (var/(var+eps)) */
    {
        int N = 3, C = 12, HW = 33, G = 3, cpg = C / G;
        size_t n = (size_t)N * C * HW;
        float *x = frand(n, 21, -2.0f, 3.0f), *out = falloc(n);
        float mean[9], rstd[9];
        dfn_groupnorm_forward(out, mean, rstd, x, NULL, NULL, N, C, HW, G, 1e-6f, 0);
        double worst_m = 0, worst_v = 0;
        for (int g = 0; g < N * G; g++) {
            const float *y = out + (size_t)g * cpg * HW;
            double m = 0, v = 0;
            for (int i = 0; i < cpg * HW; i++) m += y[i];
            m /= cpg * HW;
            for (int i = 0; i < cpg * HW; i++) v += (y[i] - m) * (y[i] - m);
            v /= cpg * HW;
            worst_m = fmax(worst_m, fabs(m));
            worst_v = fmax(worst_v, fabs(v - 1.0));
        }
        CHECK(worst_m < 1e-6, "normalised mean %.3e", worst_m);
        CHECK(worst_v < 1e-5, "normalised var - 1 %.3e", worst_v);
        printf("  %-40s |mean| %.1e |var-1| %.1e\n", "gn no-affine moments", worst_m, worst_v);
        free(x); free(out);
    }
}

/* Double-precision GroupNorm(+SiLU) backward, the textbook formula: dy = dout
 * (times silu'(y)), dxhat = dy gamma, dx = rstd (dxhat - mean dxhat - xhat mean(dxhat xhat)),
 * dgamma = sum dy xhat, dbeta = sum dy. Overwrites dx, dw, db. */
static void gn_backward_reference(double *dx, double *dw, double *db, const float *dout,
                                  const float *x, const float *w, const float *b, int N, int C,
                                  int HW, int G, double eps, int silu) {
    int cpg = C / G;
    size_t M = (size_t)cpg * HW;
    double *dxh = malloc(M * sizeof(double)), *xh = malloc(M * sizeof(double));
    for (int c = 0; c < C; c++) dw[c] = db[c] = 0.0;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            size_t off = ((size_t)n * C + (size_t)g * cpg) * HW;
            double mu = 0, var = 0;
            for (size_t i = 0; i < M; i++) mu += x[off + i];
            mu /= (double)M;
            for (size_t i = 0; i < M; i++) var += (x[off + i] - mu) * (x[off + i] - mu);
            var /= (double)M;
            double rs = 1.0 / sqrt(var + eps), m1 = 0, m2 = 0;
            for (size_t i = 0; i < M; i++) {
                int c = g * cpg + (int)(i / HW);
                xh[i] = (x[off + i] - mu) * rs;
                double y = xh[i] * w[c] + b[c], dy = dout[off + i];
                if (silu) {
                    double sg = 1.0 / (1.0 + exp(-y));
                    dy *= sg * (1.0 + y * (1.0 - sg));
                }
                dw[c] += dy * xh[i];
                db[c] += dy;
                dxh[i] = dy * w[c];
                m1 += dxh[i];
                m2 += dxh[i] * xh[i];
            }
            m1 /= (double)M;
            m2 /= (double)M;
            for (size_t i = 0; i < M; i++) dx[off + i] = rs * (dxh[i] - m1 - xh[i] * m2);
        }
    free(dxh);
    free(xh);
}

/* Large shapes (several SUM_BLOCKs per group, tails) against the double formula. */
static void test_groupnorm_backward_large(void) {
    printf("groupnorm backward, large shapes, vs double formula\n");
    struct { int N, C, HW, G, silu; } cases[] = {
        {2, 64, 784, 32, 1}, {2, 64, 784, 1, 0}, {3, 128, 49, 32, 1}, {2, 32, 1000, 32, 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int N = cases[ci].N, C = cases[ci].C, HW = cases[ci].HW, G = cases[ci].G, silu = cases[ci].silu;
        size_t n = (size_t)N * C * HW;
        float *x = frand(n, 251 + (unsigned)ci, -1.0f, 2.0f), *w = frand(C, 152, 0.5f, 1.5f),
              *b = frand(C, 153, -0.5f, 0.5f), *R = frand(n, 154, -1.0f, 1.0f);
        float *out = falloc(n), *mean = falloc((size_t)N * G), *rstd = falloc((size_t)N * G);
        float *dx = falloc(n), *dw = falloc(C), *db = falloc(C);
        double *rx = malloc(n * sizeof(double)), *rw = malloc(C * sizeof(double)), *rb = malloc(C * sizeof(double));
        float *fx = falloc(n), *fw = falloc(C), *fb = falloc(C);
        dfn_groupnorm_forward(out, mean, rstd, x, w, b, N, C, HW, G, 1e-5f, silu);
        dfn_groupnorm_backward(dx, dw, db, R, x, w, b, mean, rstd, N, C, HW, G, silu);
        gn_backward_reference(rx, rw, rb, R, x, w, b, N, C, HW, G, 1e-5, silu);
        for (size_t i = 0; i < n; i++) fx[i] = (float)rx[i];
        for (int c = 0; c < C; c++) {
            fw[c] = (float)rw[c];
            fb[c] = (float)rb[c];
        }
        char name[96];
        snprintf(name, sizeof name, "gn bwd N%d C%d HW%d G%d silu%d dinp", N, C, HW, G, silu);
        check_tensor(name, dx, fx, n, 1e-5);
        printf("  %-40s rel err %.2e\n", name, rel_error(dx, fx, n));
        snprintf(name, sizeof name, "gn bwd N%d C%d HW%d G%d silu%d dweight", N, C, HW, G, silu);
        check_tensor(name, dw, fw, C, 1e-5);
        printf("  %-40s rel err %.2e\n", name, rel_error(dw, fw, C));
        snprintf(name, sizeof name, "gn bwd N%d C%d HW%d G%d silu%d dbias", N, C, HW, G, silu);
        check_tensor(name, db, fb, C, 1e-5);
        printf("  %-40s rel err %.2e\n", name, rel_error(db, fb, C));
        free(x); free(w); free(b); free(R); free(out); free(mean); free(rstd); free(dx); free(dw);
        free(db); free(rx); free(rw); free(rb); free(fx); free(fw); free(fb);
    }
}

/* Wrong backward: dx = rstd gamma dy, the centring terms dropped. */
static void gn_wrong_dinp(float *dinp, const float *dout, const float *w, const float *rstd,
                          int N, int C, int HW, int G) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int i = 0; i < HW; i++) {
                size_t idx = ((size_t)n * C + c) * HW + i;
                dinp[idx] = dout[idx] * w[c] * rstd[n * G + c / (C / G)];
            }
}

static void test_groupnorm_backward(void) {
    printf("groupnorm backward\n");
    struct { int N, C, HW, G; } cases[] = {
        {2, 8, 20, 1}, {2, 8, 20, 2}, {2, 8, 20, 4}, {2, 8, 20, 8}, {2, 6, 5, 3}, {1, 4, 37, 4},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (int silu = 0; silu <= 1; silu++) {
            int N = cases[ci].N, C = cases[ci].C, HW = cases[ci].HW, G = cases[ci].G;
            size_t n = (size_t)N * C * HW;
            gn_ctx c = {frand(n, 31 + (unsigned)ci, -1.0f, 1.5f), frand(C, 32, 0.5f, 1.5f),
                        frand(C, 33, -0.5f, 0.5f), falloc(N * G), falloc(N * G),
                        N, C, HW, G, silu, 1e-5f};
            for (size_t i = 0; i < n; i++) c.x[i] += 0.2f * (float)((i / HW) % 3);
            float *out = falloc(n), *R = frand(n, 1034, -1.0f, 1.0f); /* not an affine map of x */
            float *dx = frand(n, 35, -1, 1), *dw = frand(C, 36, -1, 1), *db = frand(C, 37, -1, 1);
            float *dx0 = malloc(n * 4), *dw0 = malloc(C * 4), *db0 = malloc(C * 4);
            memcpy(dx0, dx, n * 4); memcpy(dw0, dw, C * 4); memcpy(db0, db, C * 4);
            gn_fwd(&c, out);
            dfn_groupnorm_backward(dx, dw, db, R, c.x, c.w, c.b, c.mean, c.rstd, N, C, HW, G, silu);
            float *fx = falloc(n), *fw = falloc(C), *fb = falloc(C);
            const float h = 1e-2f;
            fd_grad(fx, c.x, n, gn_fwd, &c, out, R, n, h);
            fd_grad(fw, c.w, C, gn_fwd, &c, out, R, n, h);
            fd_grad(fb, c.b, C, gn_fwd, &c, out, R, n, h);
            gn_fwd(&c, out); /* restore mean/rstd of the unperturbed input */
            char name[96];
            snprintf(name, sizeof name, "gn N%d C%d HW%d G%d silu%d dinp", N, C, HW, G, silu);
            check_grad(name, dx, dx0, fx, n, GRAD_TOL);
            snprintf(name, sizeof name, "gn N%d C%d HW%d G%d silu%d dweight", N, C, HW, G, silu);
            check_grad(name, dw, dw0, fw, C, GRAD_TOL);
            snprintf(name, sizeof name, "gn N%d C%d HW%d G%d silu%d dbias", N, C, HW, G, silu);
            check_grad(name, db, db0, fb, C, GRAD_TOL);
            if (!silu) {
                /* the check must catch a backward without the centring terms */
                float *wrong = falloc(n);
                gn_wrong_dinp(wrong, R, c.w, c.rstd, N, C, HW, G);
                double e = rel_error(wrong, fx, n);
                CHECK(e > 10 * GRAD_TOL, "wrong GN backward not caught: %.2e", e);
                free(wrong);
            }
            /* NULL gradients are skipped; each gradient alone is bit-identical */
            float *ax = falloc(n), *aw = falloc(C), *ab = falloc(C);
            float *bx = falloc(n), *bw = falloc(C), *bb = falloc(C);
            dfn_groupnorm_backward(ax, aw, ab, R, c.x, c.w, c.b, c.mean, c.rstd, N, C, HW, G, silu);
            dfn_groupnorm_backward(bx, NULL, NULL, R, c.x, c.w, c.b, c.mean, c.rstd, N, C, HW, G, silu);
            dfn_groupnorm_backward(NULL, bw, NULL, R, c.x, c.w, c.b, c.mean, c.rstd, N, C, HW, G, silu);
            dfn_groupnorm_backward(NULL, NULL, bb, R, c.x, c.w, c.b, c.mean, c.rstd, N, C, HW, G, silu);
            dfn_groupnorm_backward(NULL, NULL, NULL, R, c.x, c.w, c.b, c.mean, c.rstd, N, C, HW, G, silu);
            CHECK(!memcmp(ax, bx, n * 4) && !memcmp(aw, bw, C * 4) && !memcmp(ab, bb, C * 4),
                  "gn backward with NULL gradients differs");
            free(ax); free(aw); free(ab); free(bx); free(bw); free(bb);
            free(c.x); free(c.w); free(c.b); free(c.mean); free(c.rstd); free(out); free(R);
            free(dx); free(dw); free(db); free(dx0); free(dw0); free(db0); free(fx); free(fw);
            free(fb);
        }
    }
    /* affine parameters NULL: gamma = 1, beta = 0 */
    {
        int N = 2, C = 4, HW = 9, G = 2;
        size_t n = (size_t)N * C * HW;
        gn_ctx c = {frand(n, 41, -1, 1), NULL, NULL, falloc(N * G), falloc(N * G), N, C, HW, G, 1, 1e-5f};
        float *out = falloc(n), *R = frand(n, 42, -1, 1), *dx = falloc(n), *fx = falloc(n);
        gn_fwd(&c, out);
        dfn_groupnorm_backward(dx, NULL, NULL, R, c.x, NULL, NULL, c.mean, c.rstd, N, C, HW, G, 1);
        fd_grad(fx, c.x, n, gn_fwd, &c, out, R, n, 1e-2f);
        check_grad("gn no-affine silu1 dinp", dx, NULL, fx, n, GRAD_TOL);
        free(c.x); free(c.mean); free(c.rstd); free(out); free(R); free(dx); free(fx);
    }
}

/* ------------------------------------------------------------ linear */

typedef struct {
    float *x, *w, *b;
    int B, IC, OC;
} lin_ctx;

static void lin_fwd(void *p, float *out) {
    lin_ctx *c = p;
    dfn_linear_forward(out, c->x, c->w, c->b, c->B, c->IC, c->OC);
}

static void test_linear(void) {
    printf("linear\n");
    {   /* the layer must not change the caller's thread count */
        int before = omp_get_max_threads();
        float x[4 * 8] = {0}, w[8 * 8] = {0}, y[4 * 8];
        dfn_linear_forward(y, x, w, NULL, 4, 8, 8);
        dfn_linear_backward(x, w, NULL, y, x, w, 4, 8, 8);
        CHECK(omp_get_max_threads() == before, "linear changed omp_get_max_threads");
    }
    struct { int B, IC, OC, bias; } cases[] = {
        {5, 7, 3, 1}, {37, 19, 45, 1}, {37, 19, 45, 0}, {1, 64, 256, 1}, {130, 96, 70, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int B = cases[ci].B, IC = cases[ci].IC, OC = cases[ci].OC;
        lin_ctx c = {frand((size_t)B * IC, 51, -1, 1), frand((size_t)OC * IC, 52, -1, 1),
                     cases[ci].bias ? frand(OC, 53, -1, 1) : NULL, B, IC, OC};
        size_t no = (size_t)B * OC;
        float *out = falloc(no), *ref = falloc(no);
        lin_fwd(&c, out);
        for (int b = 0; b < B; b++)
            for (int o = 0; o < OC; o++) {
                double s = c.b ? c.b[o] : 0.0;
                for (int i = 0; i < IC; i++) s += (double)c.x[(size_t)b * IC + i] * c.w[(size_t)o * IC + i];
                ref[(size_t)b * OC + o] = (float)s;
            }
        char name[96];
        snprintf(name, sizeof name, "linear B%d IC%d OC%d bias%d fwd", B, IC, OC, cases[ci].bias);
        check_tensor(name, out, ref, no, 1e-5);
        printf("  %-40s rel err %.2e\n", name, rel_error(out, ref, no));
        if (B * IC * OC > 200000) { /* forward only for the big case */
            free(c.x); free(c.w); free(c.b); free(out); free(ref);
            continue;
        }
        float *R = frand(no, 54, -1, 1);
        float *dx = frand((size_t)B * IC, 55, -1, 1), *dw = frand((size_t)OC * IC, 56, -1, 1),
              *db = frand(OC, 57, -1, 1);
        float *dx0 = malloc((size_t)B * IC * 4), *dw0 = malloc((size_t)OC * IC * 4), *db0 = malloc(OC * 4);
        memcpy(dx0, dx, (size_t)B * IC * 4); memcpy(dw0, dw, (size_t)OC * IC * 4); memcpy(db0, db, OC * 4);
        dfn_linear_backward(dx, dw, c.b ? db : NULL, R, c.x, c.w, B, IC, OC);
        float *fx = falloc((size_t)B * IC), *fw = falloc((size_t)OC * IC), *fb = falloc(OC);
        fd_grad(fx, c.x, (size_t)B * IC, lin_fwd, &c, out, R, no, 1e-2f);
        fd_grad(fw, c.w, (size_t)OC * IC, lin_fwd, &c, out, R, no, 1e-2f);
        snprintf(name, sizeof name, "linear B%d IC%d OC%d dinp", B, IC, OC);
        check_grad(name, dx, dx0, fx, (size_t)B * IC, GRAD_TOL);
        snprintf(name, sizeof name, "linear B%d IC%d OC%d dweight", B, IC, OC);
        check_grad(name, dw, dw0, fw, (size_t)OC * IC, GRAD_TOL);
        if (c.b) {
            fd_grad(fb, c.b, OC, lin_fwd, &c, out, R, no, 1e-2f);
            snprintf(name, sizeof name, "linear B%d IC%d OC%d dbias", B, IC, OC);
            check_grad(name, db, db0, fb, OC, GRAD_TOL);
        } else {
            CHECK(!memcmp(db, db0, OC * 4), "dbias touched");
        }
        /* dinp NULL (the first layer): dweight and dbias unchanged by the skip */
        float *ew = falloc((size_t)OC * IC), *eb = falloc(OC), *fw2 = falloc((size_t)OC * IC), *fb2 = falloc(OC);
        dfn_linear_backward(NULL, ew, eb, R, c.x, c.w, B, IC, OC);
        dfn_linear_backward(NULL, fw2, NULL, R, c.x, c.w, B, IC, OC);
        dfn_linear_backward(NULL, NULL, fb2, R, c.x, c.w, B, IC, OC);
        CHECK(!memcmp(ew, fw2, (size_t)OC * IC * 4) && !memcmp(eb, fb2, OC * 4),
              "linear backward with NULL gradients differs");
        free(ew); free(eb); free(fw2); free(fb2);
        free(c.x); free(c.w); free(c.b); free(out); free(ref); free(R); free(dx); free(dw); free(db);
        free(dx0); free(dw0); free(db0); free(fx); free(fw); free(fb);
    }
}

/* ------------------------------------------------------------ silu */

typedef struct { float *x; size_t n; } vec_ctx;

static void silu_fwd(void *p, float *out) {
    vec_ctx *c = p;
    dfn_silu_forward(out, c->x, c->n);
}

static void test_silu(void) {
    printf("silu\n");
    /* a sweep over [-110, 110] and around 0: pointwise against double */
    size_t n = 200001;
    float *x = falloc(n), *y = falloc(n), *d = falloc(n), *one = falloc(n);
    for (size_t i = 0; i < n; i++) {
        double t = -1.0 + 2.0 * (double)i / (double)(n - 1);
        x[i] = (float)(i % 2 ? 110.0 * t : 8.0 * t * fabs(t));
        one[i] = 1.0f;
    }
    dfn_silu_forward(y, x, n);
    dfn_silu_backward(d, one, x, n);
    double worst = 0, worst_d = 0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i], s = 1.0 / (1.0 + exp(-v)), r = v * s, rd = s * (1.0 + v * (1.0 - s));
        double e = fabs(y[i] - r) / fmax(fabs(r), 1e-30);
        /* below x = -88.03, e^-x overflows to inf and x / (1 + inf) = -0 (PyTorch's
         * formula does so below -88.72); the true value is below 6e-37 there */
        if (v < -88.03) e = fabs(y[i] - r) <= 6e-37 ? 0.0 : 1.0;
        worst = fmax(worst, e);
        worst_d = fmax(worst_d, fabs(d[i] - rd));
    }
    CHECK(worst <= 4.8e-7, "silu pointwise rel err %.3e > 4 ulp", worst);
    CHECK(worst_d <= 1e-6, "silu' abs err %.3e", worst_d);
    printf("  %-40s max rel err %.2e (4 ulp = 4.8e-07); silu' max abs err %.2e\n",
           "silu vs double", worst, worst_d);
    /* special values and in place */
    float sp[6] = {0.0f, -0.0f, INFINITY, -1000.0f, NAN, 1e-30f}, so[6];
    dfn_silu_forward(so, sp, 6);
    CHECK(so[0] == 0.0f && so[2] == INFINITY && so[3] == 0.0f && isnan(so[4]) &&
              fabsf(so[5] - 5e-31f) < 1e-37f,
          "silu specials %g %g %g %g %g", so[0], so[2], so[3], so[4], so[5]);
    float one6[6] = {1, 1, 1, 1, 1, 1}, dso[6] = {0};
    dfn_silu_backward(dso, one6, sp, 6);
    /* (silu'(+inf) is inf * tiny, as in PyTorch's formula, where it is inf * 0 = NaN) */
    CHECK(dso[0] == 0.5f && dso[3] == 0.0f && isnan(dso[4]) && dso[5] == 0.5f,
          "silu' specials %g %g %g %g", dso[0], dso[3], dso[4], dso[5]);
    memcpy(d, x, n * 4);
    dfn_silu_forward(d, d, n);
    CHECK(!memcmp(d, y, n * 4), "in-place silu differs");
    /* finite differences on a small vector */
    size_t m = 300;
    vec_ctx c = {frand(m, 61, -6, 6), m};
    float *out = falloc(m), *R = frand(m, 62, -1, 1), *g = frand(m, 63, -1, 1), *g0 = malloc(m * 4),
          *fd = falloc(m);
    memcpy(g0, g, m * 4);
    dfn_silu_backward(g, R, c.x, m);
    fd_grad(fd, c.x, m, silu_fwd, &c, out, R, m, 1e-2f);
    check_grad("silu dinp", g, g0, fd, m, GRAD_TOL);
    float *wrong = falloc(m);
    for (size_t i = 0; i < m; i++) wrong[i] = R[i] / (1.0f + expf(-c.x[i])); /* sigmoid, not silu' */
    CHECK(rel_error(wrong, fd, m) > 10 * GRAD_TOL, "wrong silu' not caught");
    free(wrong);
    free(x); free(y); free(d); free(one); free(c.x); free(out); free(R); free(g); free(g0); free(fd);
}

/* ------------------------------------------------------------ dropout */

typedef struct { float *x; size_t n; float p; uint64_t seed, block; } drop_ctx;

static void drop_fwd(void *q, float *out) {
    drop_ctx *c = q;
    dfn_dropout_forward(out, c->x, c->n, c->p, c->seed, c->block);
}

static void test_dropout(void) {
    printf("dropout\n");
    size_t sizes[] = {1, 7, 1003, 100003};
    float ps[] = {0.1f, 0.5f, 0.9f};
    for (size_t si = 0; si < 4; si++)
        for (int pi = 0; pi < 3; pi++) {
            size_t n = sizes[si];
            float p = ps[pi];
            /* the last size starts just below 2^32 blocks: the counter's carry into its high word */
            uint64_t seed = 0x1234567890ull + si, block = si == 3 ? 0xFFFFFFF0ull : 1000 + 13 * si;
            float *x = frand(n, 71, -1, 1), *y = falloc(n), *ref = falloc(n);
            float scale = 1.0f / (1.0f - p);
            for (size_t i = 0; i < n; i++) {
                uint32_t w[4];
                dfn_philox(seed, block + i / 4, w);
                float u = ((float)(w[i % 4] >> 8) + 0.5f) * (1.0f / 16777216.0f);
                ref[i] = u >= p ? x[i] * scale : 0.0f;
            }
            dfn_dropout_forward(y, x, n, p, seed, block);
            CHECK(!memcmp(y, ref, n * 4), "dropout n=%zu p=%g differs from the Philox rule", n, p);
            /* backward: dinp += dout * mask * scale, i.e. the forward of dout, accumulated */
            float *g = frand(n, 72, -1, 1), *dx = frand(n, 73, -1, 1), *want = falloc(n);
            dfn_dropout_forward(want, g, n, p, seed, block);
            for (size_t i = 0; i < n; i++) want[i] += dx[i];
            dfn_dropout_backward(dx, g, n, p, seed, block);
            CHECK(!memcmp(dx, want, n * 4), "dropout backward n=%zu p=%g", n, p);
            /* in place */
            memcpy(ref, x, n * 4);
            dfn_dropout_forward(ref, ref, n, p, seed, block);
            CHECK(!memcmp(ref, y, n * 4), "in-place dropout differs");
            free(x); free(y); free(ref); free(g); free(dx); free(want);
        }
    /* statistics: the kept fraction of 2^20 elements within 4 standard errors of 1-p */
    {
        size_t n = 1u << 20;
        float *x = falloc(n), *y = falloc(n);
        for (size_t i = 0; i < n; i++) x[i] = 1.0f;
        for (int pi = 0; pi < 3; pi++) {
            float p = ps[pi];
            dfn_dropout_forward(y, x, n, p, 99, 5);
            size_t kept = 0;
            for (size_t i = 0; i < n; i++) kept += y[i] != 0.0f;
            double frac = (double)kept / n, se = sqrt(p * (1.0 - p) / n);
            CHECK(fabs(frac - (1.0 - p)) < 4 * se, "kept fraction %.5f for p=%g (se %.1e)", frac, p, se);
            printf("  %-40s kept %.5f, expected %.2f +- %.1e\n", "dropout statistics", frac, 1.0 - p, se);
            /* kept values are exactly 1/(1-p) */
            int bad = 0;
            for (size_t i = 0; i < n; i++) bad |= y[i] != 0.0f && y[i] != 1.0f / (1.0f - p);
            CHECK(!bad, "kept values not scaled by 1/(1-p)");
        }
        /* p = 0: exact copy; p = 1: all zero */
        float *z = frand(n, 74, -1e30f, 1e30f);
        dfn_dropout_forward(y, z, n, 0.0f, 7, 0);
        CHECK(!memcmp(y, z, n * 4), "p=0 is not an exact copy");
        dfn_dropout_forward(y, z, n, 1.0f, 7, 0);
        int nonzero = 0;
        for (size_t i = 0; i < n; i++) nonzero |= y[i] != 0.0f;
        CHECK(!nonzero, "p=1 keeps something");
        free(x); free(y); free(z);
    }
    /* finite differences (the mask fixed by the seed) */
    {
        size_t n = 257;
        drop_ctx c = {frand(n, 75, -1, 1), n, 0.3f, 42, 17};
        float *out = falloc(n), *R = frand(n, 76, -1, 1), *g = frand(n, 77, -1, 1), *g0 = malloc(n * 4),
              *fd = falloc(n);
        memcpy(g0, g, n * 4);
        dfn_dropout_backward(g, R, n, c.p, c.seed, c.block);
        fd_grad(fd, c.x, n, drop_fwd, &c, out, R, n, 1e-2f);
        check_grad("dropout dinp (p=0.3)", g, g0, fd, n, GRAD_TOL);
        free(c.x); free(out); free(R); free(g); free(g0); free(fd);
    }
}

/* ------------------------------------------------------------ fused GroupNorm */

/* dfn_groupnorm_fused_forward / _backward against the layers they fuse, called
 * in turn (add_channel, GroupNorm, dropout; dropout backward onto zeros,
 * GroupNorm backward onto zeros, add_channel backward): the same bits, on
 * groups whose blocks start and end inside Philox blocks (M = 98, 52), and one
 * large enough to run in parallel. */
static void test_groupnorm_fused(void) {
    printf("fused GroupNorm (time-embedding shift, dropout)\n");
    const struct { int N, C, G, HW; } shapes[] = {{3, 6, 3, 49}, {2, 8, 2, 13}, {8, 32, 8, 196}};
    for (int si = 0; si < 3; si++)
        for (int variant = 0; variant < 8; variant++) { /* bit 0: silu, 1: shift, 2: dropout */
            const int N = shapes[si].N, C = shapes[si].C, G = shapes[si].G, HW = shapes[si].HW;
            const int silu = variant & 1;
            const size_t n = (size_t)N * C * HW;
            float *x = frand(n, 81, -2, 2), *w = frand(C, 82, 0.5f, 1.5f), *b = frand(C, 83, -0.5f, 0.5f);
            float *shift = frand((size_t)N * C, 84, -1, 1), *R = frand(n, 85, -1, 1);
            const dfn_groupnorm_fusion f = {variant & 2 ? shift : NULL, variant & 4 ? 0.3f : 0.0f, 77, 1001};
            /* forward, the layers in turn */
            float *xa = falloc(n), *ya = falloc(n), *ma = falloc((size_t)N * G), *ra = falloc((size_t)N * G);
            memcpy(xa, x, n * 4);
            if (f.shift) dfn_add_channel_forward(xa, shift, N, C, HW);
            dfn_groupnorm_forward(ya, ma, ra, xa, w, b, N, C, HW, G, 1e-5f, silu);
            if (f.p > 0) dfn_dropout_forward(ya, ya, n, f.p, f.seed, f.block);
            /* fused */
            float *xb = falloc(n), *yb = falloc(n), *mb = falloc((size_t)N * G), *rb = falloc((size_t)N * G);
            memcpy(xb, x, n * 4);
            dfn_groupnorm_fused_forward(yb, mb, rb, xb, &f, w, b, N, C, HW, G, 1e-5f, silu);
            CHECK(!memcmp(xa, xb, n * 4) && !memcmp(ya, yb, n * 4) && !memcmp(ma, mb, (size_t)N * G * 4) &&
                      !memcmp(ra, rb, (size_t)N * G * 4),
                  "fused GroupNorm forward (%d,%d,%d) G=%d silu=%d shift=%d p=%g: not the bits of the layers in turn",
                  N, C, HW, G, silu, f.shift != NULL, f.p);
            /* backward, the layers in turn */
            float *dy = falloc(n), *dxa = falloc(n), *dwa = frand(C, 86, -1, 1), *dba = frand(C, 87, -1, 1);
            float *dsa = frand((size_t)N * C, 88, -1, 1);
            if (f.p > 0) dfn_dropout_backward(dy, R, n, f.p, f.seed, f.block);
            dfn_groupnorm_backward(dxa, dwa, dba, f.p > 0 ? dy : R, xa, w, b, ma, ra, N, C, HW, G, silu);
            dfn_add_channel_backward(dsa, dxa, N, C, HW);
            /* fused, dinp set over garbage */
            float *dxb = frand(n, 89, -9, 9), *dwb = frand(C, 86, -1, 1), *dbb = frand(C, 87, -1, 1);
            float *dsb = frand((size_t)N * C, 88, -1, 1);
            dfn_groupnorm_fused_backward(dxb, f.shift ? dsb : NULL, dwb, dbb, R, &f, xb, w, b, mb, rb, N, C, HW, G,
                                         silu);
            CHECK(!memcmp(dxa, dxb, n * 4) && !memcmp(dwa, dwb, (size_t)C * 4) && !memcmp(dba, dbb, (size_t)C * 4) &&
                      (!f.shift || !memcmp(dsa, dsb, (size_t)N * C * 4)),
                  "fused GroupNorm backward (%d,%d,%d) G=%d silu=%d shift=%d p=%g: not the bits of the layers in turn",
                  N, C, HW, G, silu, f.shift != NULL, f.p);
            free(x); free(w); free(b); free(shift); free(R);
            free(xa); free(ya); free(ma); free(ra); free(xb); free(yb); free(mb); free(rb);
            free(dy); free(dxa); free(dwa); free(dba); free(dsa); free(dxb); free(dwb); free(dbb); free(dsb);
        }
}

/* ------------------------------------------------------------ upsample, concat, add_channel */

typedef struct { float *x; int N, C, H, W; } up_ctx;

static void up_fwd(void *p, float *out) {
    up_ctx *c = p;
    dfn_upsample2x_forward(out, c->x, c->N, c->C, c->H, c->W);
}

typedef struct { float *a, *b; int N, Ca, Cb, HW; } cat_ctx;

static void cat_fwd(void *p, float *out) {
    cat_ctx *c = p;
    dfn_concat_forward(out, c->a, c->b, c->N, c->Ca, c->Cb, c->HW);
}

typedef struct { float *x, *v; int N, C, HW; } addc_ctx;

static void addc_fwd(void *p, float *out) {
    addc_ctx *c = p;
    memcpy(out, c->x, (size_t)c->N * c->C * c->HW * 4);
    dfn_add_channel_forward(out, c->v, c->N, c->C, c->HW);
}

static void test_shapes(void) {
    printf("upsample, concat, add_channel\n");
    {
        int N = 2, C = 3, H = 5, W = 7;
        size_t n = (size_t)N * C * H * W, no = 4 * n;
        up_ctx c = {frand(n, 81, -1, 1), N, C, H, W};
        float *out = falloc(no);
        up_fwd(&c, out);
        int bad = 0;
        for (int p = 0; p < N * C; p++)
            for (int y = 0; y < 2 * H; y++)
                for (int x = 0; x < 2 * W; x++)
                    bad |= out[((size_t)p * 2 * H + y) * 2 * W + x] != c.x[((size_t)p * H + y / 2) * W + x / 2];
        CHECK(!bad, "upsample forward");
        float *R = frand(no, 82, -1, 1), *g = frand(n, 83, -1, 1), *g0 = malloc(n * 4), *fd = falloc(n);
        memcpy(g0, g, n * 4);
        dfn_upsample2x_backward(g, R, N, C, H, W);
        fd_grad(fd, c.x, n, up_fwd, &c, out, R, no, 1e-2f);
        check_grad("upsample2x dinp", g, g0, fd, n, GRAD_TOL);
        free(c.x); free(out); free(R); free(g); free(g0); free(fd);
    }
    {
        int N = 3, Ca = 2, Cb = 3, HW = 10;
        size_t na = (size_t)N * Ca * HW, nb = (size_t)N * Cb * HW, no = na + nb;
        cat_ctx c = {frand(na, 84, -1, 1), frand(nb, 85, -1, 1), N, Ca, Cb, HW};
        float *out = falloc(no);
        cat_fwd(&c, out);
        int bad = 0;
        for (int n = 0; n < N; n++)
            for (int ch = 0; ch < Ca + Cb; ch++)
                for (int i = 0; i < HW; i++) {
                    float want = ch < Ca ? c.a[((size_t)n * Ca + ch) * HW + i]
                                         : c.b[((size_t)n * Cb + ch - Ca) * HW + i];
                    bad |= out[((size_t)n * (Ca + Cb) + ch) * HW + i] != want;
                }
        CHECK(!bad, "concat forward");
        float *R = frand(no, 86, -1, 1), *ga = frand(na, 87, -1, 1), *gb = frand(nb, 88, -1, 1);
        float *ga0 = malloc(na * 4), *gb0 = malloc(nb * 4), *fa = falloc(na), *fb = falloc(nb);
        memcpy(ga0, ga, na * 4); memcpy(gb0, gb, nb * 4);
        dfn_concat_backward(ga, gb, R, N, Ca, Cb, HW);
        fd_grad(fa, c.a, na, cat_fwd, &c, out, R, no, 1e-2f);
        fd_grad(fb, c.b, nb, cat_fwd, &c, out, R, no, 1e-2f);
        check_grad("concat da", ga, ga0, fa, na, GRAD_TOL);
        check_grad("concat db", gb, gb0, fb, nb, GRAD_TOL);
        memcpy(ga, ga0, na * 4);
        dfn_concat_backward(NULL, ga, R, N, Ca, Ca, HW); /* db only, as (Ca, Ca) */
        dfn_concat_backward(NULL, NULL, R, N, Ca, Cb, HW);
        free(c.a); free(c.b); free(out); free(R); free(ga); free(gb); free(ga0); free(gb0); free(fa); free(fb);
    }
    {
        int N = 3, C = 4, HW = 37;
        size_t n = (size_t)N * C * HW;
        addc_ctx c = {frand(n, 89, -1, 1), frand((size_t)N * C, 90, -1, 1), N, C, HW};
        float *out = falloc(n);
        addc_fwd(&c, out);
        int bad = 0;
        for (size_t i = 0; i < n; i++) bad |= out[i] != c.x[i] + c.v[i / HW];
        CHECK(!bad, "add_channel forward");
        float *R = frand(n, 91, -1, 1), *g = frand(N * C, 92, -1, 1), *g0 = malloc(N * C * 4),
              *fd = falloc(N * C);
        memcpy(g0, g, N * C * 4);
        dfn_add_channel_backward(g, R, N, C, HW);
        fd_grad(fd, c.v, (size_t)N * C, addc_fwd, &c, out, R, n, 1e-2f);
        check_grad("add_channel dv", g, g0, fd, (size_t)N * C, GRAD_TOL);
        /* against a double sum */
        double worst = 0;
        for (int t = 0; t < N * C; t++) {
            double s = g0[t];
            for (int i = 0; i < HW; i++) s += R[(size_t)t * HW + i];
            worst = fmax(worst, fabs(g[t] - s));
        }
        CHECK(worst < 1e-5, "add_channel dv vs double sum %.2e", worst);
        free(c.x); free(c.v); free(out); free(R); free(g); free(g0); free(fd);
    }
}

/* ------------------------------------------------------------ embeddings */

typedef struct { float *table; int *labels; int B, dim; } emb_ctx;

static void emb_fwd(void *p, float *out) {
    emb_ctx *c = p;
    dfn_embedding_forward(out, c->labels, c->table, c->B, c->dim);
}

static void test_embeddings(void) {
    printf("embeddings\n");
    int dims[] = {4, 5, 64, 128, 257};
    for (int di = 0; di < 5; di++) {
        int dim = dims[di], half = dim / 2, B = 40;
        float *t = falloc(B), *out = falloc((size_t)B * dim);
        for (int b = 0; b < B; b++) t[b] = b < 20 ? 0.5f * b : (float)(b * 25 % 1000);
        dfn_timestep_embedding(out, t, B, dim);
        double e_spec = 0, e_small = 0, e_large = 0;
        const float neg_log = (float)-log(10000.0), denom = (float)(half - 1);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < half; i++) {
                /* the spec: float32 frequencies and arguments, sin/cos in double */
                float fa = t[b] * expf(((float)i * neg_log) / denom); /* torch's order */
                double s1 = sin((double)fa), c1 = cos((double)fa);
                /* the formula entirely in double */
                double a = t[b] * exp(-log(10000.0) * i / (half - 1));
                double s2 = sin(a), c2 = cos(a);
                const float *o = out + (size_t)b * dim;
                e_spec = fmax(e_spec, fmax(fabs(o[i] - s1), fabs(o[half + i] - c1)));
                double e = fmax(fabs(o[i] - s2), fabs(o[half + i] - c2));
                if (t[b] <= 10.0f) e_small = fmax(e_small, e);
                else e_large = fmax(e_large, e);
            }
        CHECK(e_spec <= 1e-6, "timestep dim %d vs float-argument formula %.2e", dim, e_spec);
        CHECK(e_small <= 1e-5, "timestep dim %d t<=10 vs double formula %.2e", dim, e_small);
        /* t up to 1000: float32 arguments (as in PyTorch) are off by ~ulp(1000) = 6e-5 */
        CHECK(e_large <= 2e-4, "timestep dim %d t<1000 vs double formula %.2e", dim, e_large);
        if (dim & 1)
            for (int b = 0; b < B; b++) CHECK(out[(size_t)b * dim + dim - 1] == 0.0f, "odd dim pad");
        printf("  timestep dim %-3d err vs spec %.1e, vs double t<=10 %.1e, t<1000 %.1e\n", dim,
               e_spec, e_small, e_large);
        free(t); free(out);
    }
    /* class embedding with repeated labels */
    {
        int rows = 5, dim = 70, B = 23;
        emb_ctx c = {frand((size_t)rows * dim, 101, -1, 1), malloc(B * sizeof(int)), B, dim};
        for (int b = 0; b < B; b++) c.labels[b] = (b * 3) % 4; /* row 4 never used */
        float *out = falloc((size_t)B * dim);
        emb_fwd(&c, out);
        int bad = 0;
        for (int b = 0; b < B; b++) bad |= memcmp(out + (size_t)b * dim, c.table + (size_t)c.labels[b] * dim, dim * 4) != 0;
        CHECK(!bad, "embedding forward");
        size_t nt = (size_t)rows * dim, no = (size_t)B * dim;
        float *R = frand(no, 102, -1, 1), *g = frand(nt, 103, -1, 1), *g0 = malloc(nt * 4), *fd = falloc(nt);
        float *want = malloc(nt * 4);
        memcpy(g0, g, nt * 4);
        memcpy(want, g, nt * 4);
        for (int b = 0; b < B; b++)
            for (int j = 0; j < dim; j++) want[(size_t)c.labels[b] * dim + j] += R[(size_t)b * dim + j];
        dfn_embedding_backward(g, R, c.labels, B, dim);
        CHECK(!memcmp(g, want, nt * 4), "embedding backward not in batch order");
        fd_grad(fd, c.table, nt, emb_fwd, &c, out, R, no, 1e-2f);
        check_grad("embedding dtable (repeated labels)", g, g0, fd, nt, GRAD_TOL);
        free(c.table); free(c.labels); free(out); free(R); free(g); free(g0); free(fd); free(want);
    }
}

/* ------------------------------------------------------------ determinism */

/* Runs every layer forward and backward on shapes large enough to be split
 * over threads and returns a checksum-able buffer of all results. */
typedef struct { float *buf; size_t n, cap; } sink;

static void put(sink *s, const float *x, size_t n) {
    if (s->n + n > s->cap) {
        s->cap = 2 * (s->n + n);
        s->buf = realloc(s->buf, s->cap * sizeof(float));
    }
    memcpy(s->buf + s->n, x, n * 4);
    s->n += n;
}

static void run_all(sink *s) {
    s->n = 0;
    { /* GroupNorm + SiLU and plain, G = 32 and G = 1 */
        int N = 6, C = 64, HW = 784;
        size_t n = (size_t)N * C * HW;
        float *x = frand(n, 111, -1, 2), *w = frand(C, 112, 0.5f, 1.5f), *b = frand(C, 113, -1, 1);
        float *R = frand(n, 114, -1, 1), *out = falloc(n), *mean = falloc(N * 32), *rstd = falloc(N * 32);
        float *dx = falloc(n), *dw = falloc(C), *db = falloc(C);
        int Gs[2] = {32, 1};
        for (int gi = 0; gi < 2; gi++)
            for (int silu = 0; silu <= 1; silu++) {
                dfn_groupnorm_forward(out, mean, rstd, x, w, b, N, C, HW, Gs[gi], 1e-6f, silu);
                dfn_groupnorm_backward(dx, dw, db, R, x, w, b, mean, rstd, N, C, HW, Gs[gi], silu);
                put(s, out, n); put(s, mean, N * Gs[gi]); put(s, rstd, N * Gs[gi]);
                put(s, dx, n); put(s, dw, C); put(s, db, C);
            }
        free(x); free(w); free(b); free(R); free(out); free(mean); free(rstd); free(dx); free(dw); free(db);
    }
    /* linear: serial (below the threshold); one task of one row and of 32 rows
     * (shapes where oneDNN's sgemm, called outside an active parallel region,
     * gives other bits with 2 threads than with 1); parallel */
    for (int k = 0; k < 4; k++) {
        const int Bs[4] = {8, 1, 32, 128}, ICs[4] = {64, 512, 4096, 256}, OCs[4] = {32, 512, 512, 512};
        int B = Bs[k], IC = ICs[k], OC = OCs[k];
        float *x = frand((size_t)B * IC, 121, -1, 1), *w = frand((size_t)OC * IC, 122, -1, 1),
              *b = frand(OC, 123, -1, 1), *R = frand((size_t)B * OC, 124, -1, 1);
        float *out = falloc((size_t)B * OC), *dx = falloc((size_t)B * IC), *dw = falloc((size_t)OC * IC),
              *db = falloc(OC);
        dfn_linear_forward(out, x, w, b, B, IC, OC);
        dfn_linear_backward(dx, dw, db, R, x, w, B, IC, OC);
        put(s, out, (size_t)B * OC); put(s, dx, (size_t)B * IC); put(s, dw, (size_t)OC * IC); put(s, db, OC);
        free(x); free(w); free(b); free(R); free(out); free(dx); free(dw); free(db);
    }
    { /* elementwise */
        int N = 16, C = 32, H = 14, W = 14, HW = H * W;
        size_t n = (size_t)N * C * HW;
        float *x = frand(n, 131, -5, 5), *R = frand(4 * n, 132, -1, 1), *y = falloc(4 * n), *d = falloc(4 * n);
        float *v = frand((size_t)N * C, 133, -1, 1);
        dfn_silu_forward(y, x, n); put(s, y, n);
        memset(d, 0, n * 4); dfn_silu_backward(d, R, x, n); put(s, d, n);
        dfn_dropout_forward(y, x, n, 0.1f, 77, 3); put(s, y, n);
        dfn_dropout_backward(d, R, n, 0.1f, 77, 3); put(s, d, n);
        dfn_upsample2x_forward(y, x, N, C, H, W); put(s, y, 4 * n);
        memset(d, 0, n * 4); dfn_upsample2x_backward(d, R, N, C, H, W); put(s, d, n);
        dfn_concat_forward(y, x, R, N, C, C, HW); put(s, y, 2 * n);
        dfn_concat_backward(d, d + n, R, N, C, C, HW); put(s, d, 2 * n);
        dfn_add_channel_forward(y, v, N, C, HW); put(s, y, n);
        dfn_add_channel_backward(v, R, N, C, HW); put(s, v, (size_t)N * C);
        free(x); free(R); free(y); free(d); free(v);
    }
    { /* embeddings */
        int B = 4096, dim = 256, rows = 11;
        float *t = frand(B, 141, 0, 1000), *out = falloc((size_t)B * dim), *table = falloc((size_t)rows * dim);
        int *labels = malloc(B * sizeof(int));
        for (int b = 0; b < B; b++) labels[b] = (b * 7) % rows;
        dfn_timestep_embedding(out, t, B, dim); put(s, out, (size_t)B * dim);
        dfn_embedding_backward(table, out, labels, B, dim); put(s, table, (size_t)rows * dim);
        free(t); free(out); free(table); free(labels);
    }
}

static void test_determinism(void) {
    printf("determinism\n");
    sink ref = {0}, s = {0};
    omp_set_num_threads(1);
    run_all(&ref);
    dfn_scratch_release();
    int threads[] = {2, 3, 1, 2};
    for (int i = 0; i < 4; i++) {
        omp_set_num_threads(threads[i]);
        run_all(&s);
        /* free each worker's scratch before the team changes size: libgomp ends
         * surplus threads, and their thread-local buffers would be lost */
#pragma omp parallel
        dfn_scratch_release();
        int same = s.n == ref.n && !memcmp(s.buf, ref.buf, s.n * 4);
        CHECK(same, "results with %d threads differ from 1 thread", threads[i]);
        printf("  %d threads vs 1 thread: %s (%zu floats)\n", threads[i], same ? "bit-identical" : "DIFFERENT", s.n);
    }
    free(ref.buf); free(s.buf);
}

/* ------------------------------------------------------------ timing */

static double best_of(int reps, void (*f)(void *), void *ctx) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = omp_get_wtime();
        f(ctx);
        best = fmin(best, omp_get_wtime() - t0);
    }
    return best;
}

typedef struct {
    float *x, *w, *b, *out, *mean, *rstd, *dout, *dx, *dw, *db;
    int N, C, HW, G, silu;
} bench_ctx;

static void bench_gn_fwd(void *p) {
    bench_ctx *c = p;
    dfn_groupnorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, c->N, c->C, c->HW, c->G, 1e-6f, c->silu);
}
static void bench_gn_bwd(void *p) {
    bench_ctx *c = p;
    dfn_groupnorm_backward(c->dx, c->dw, c->db, c->dout, c->x, c->w, c->b, c->mean, c->rstd, c->N, c->C,
                           c->HW, c->G, c->silu);
}
static void bench_silu_fwd(void *p) {
    bench_ctx *c = p;
    dfn_silu_forward(c->out, c->x, (size_t)c->N * c->C * c->HW);
}
static void bench_silu_bwd(void *p) {
    bench_ctx *c = p;
    dfn_silu_backward(c->dx, c->dout, c->x, (size_t)c->N * c->C * c->HW);
}
static void bench_dropout(void *p) {
    bench_ctx *c = p;
    dfn_dropout_forward(c->out, c->x, (size_t)c->N * c->C * c->HW, 0.1f, 1, 0);
}
static void bench_add_channel_bwd(void *p) {
    bench_ctx *c = p;
    dfn_add_channel_backward(c->dw, c->dout, c->N, c->C, c->HW);
}

static void bench(void) {
    bench_ctx c = {0};
    c.N = 128; c.C = 64; c.HW = 784; c.G = 32;
    size_t n = (size_t)c.N * c.C * c.HW;
    c.x = frand(n, 1, -2, 2); c.dout = frand(n, 2, -1, 1); c.out = falloc(n); c.dx = falloc(n);
    c.w = frand(c.C, 3, 0.5f, 1.5f); c.b = frand(c.C, 4, -1, 1);
    c.dw = falloc((size_t)c.N * c.C); c.db = falloc(c.C);
    c.mean = falloc((size_t)c.N * c.G); c.rstd = falloc((size_t)c.N * c.G);
    printf("timing on (128,64,28,28), %d threads, best of 20\n", omp_get_max_threads());
    for (int silu = 0; silu <= 1; silu++) {
        c.silu = silu;
        double f = best_of(20, bench_gn_fwd, &c), b = best_of(20, bench_gn_bwd, &c);
        printf("  groupnorm%s forward %.2f ms, backward %.2f ms\n", silu ? "+silu" : "     ", f * 1e3, b * 1e3);
    }
    printf("  silu forward %.2f ms, backward %.2f ms\n", best_of(20, bench_silu_fwd, &c) * 1e3,
           best_of(20, bench_silu_bwd, &c) * 1e3);
    printf("  dropout forward %.2f ms\n", best_of(20, bench_dropout, &c) * 1e3);
    printf("  add_channel backward %.2f ms\n", best_of(20, bench_add_channel_bwd, &c) * 1e3);
    free(c.x); free(c.dout); free(c.out); free(c.dx); free(c.w); free(c.b); free(c.dw); free(c.db);
    free(c.mean); free(c.rstd);
}

int main(void) {
    const int threads = omp_get_max_threads();
    const char *bench_env = getenv("DFN_BENCH");
    if (bench_env && !strcmp(bench_env, "only")) {
        bench();
        return 0;
    }
    test_groupnorm_forward();
    test_groupnorm_backward();
    test_groupnorm_backward_large();
    test_linear();
    test_silu();
    test_dropout();
    test_groupnorm_fused();
    test_shapes();
    test_embeddings();
    test_determinism();
    omp_set_num_threads(threads);
    if (getenv("DFN_BENCH")) bench();
    TEST_MAIN_END();
}

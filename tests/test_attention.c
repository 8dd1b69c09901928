/* test_attention.c - multi-head self-attention (src/nn/attention.c) against a slow,
 * obvious double-precision reference, against central finite differences, and for
 * bit-identical results across thread counts.
 *
 *   ./test_attention            the tests
 *   ./test_attention --bench    also times forward and backward on two U-Net shapes
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "nn/nn.h"
#include "test_util.h"

/* ------------------------------------------------------------ reference */

/* Copies the (D, HW) slice of head h of image n out of x (N,C,HW) as xt (HW, D),
 * in double: the reference loops then run along contiguous rows. */
static void gather_t(double *xt, const float *x, int n, int h, int C, int HW, int D) {
    const float *xs = x + ((size_t)n * C + (size_t)h * D) * HW;
    for (int d = 0; d < D; d++)
        for (int i = 0; i < HW; i++) xt[(size_t)i * D + d] = xs[(size_t)d * HW + i];
}

static void scatter_t(float *x, const double *xt, int n, int h, int C, int HW, int D) {
    float *xs = x + ((size_t)n * C + (size_t)h * D) * HW;
    for (int d = 0; d < D; d++)
        for (int i = 0; i < HW; i++) xs[(size_t)d * HW + i] = (float)xt[(size_t)i * D + d];
}

/* Row i of the probabilities of one pair, straight from the definition:
 * a[j] = softmax_j(sum_d q[d,i] k[d,j] / sqrt(D)). qt, kt (HW, D); a (HW). */
static void ref_att_row(double *a, const double *qt, const double *kt, int i, int HW, int D) {
    const double scale = 1.0 / sqrt((double)D);
    double m = -INFINITY;
    for (int j = 0; j < HW; j++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += qt[(size_t)i * D + d] * kt[(size_t)j * D + d];
        a[j] = s * scale;
        if (a[j] > m) m = a[j];
    }
    double sum = 0;
    for (int j = 0; j < HW; j++) sum += a[j] = exp(a[j] - m);
    for (int j = 0; j < HW; j++) a[j] /= sum;
}

/* out (N,C,HW), att (N,heads,HW,HW) from q, k, v (N,C,HW):
 * att = softmax(q^T k / sqrt(D)), out[d,i] = sum_j v[d,j] att[i,j]. */
static void ref_forward(float *out, float *att, const float *q, const float *k, const float *v,
                        int N, int C, int HW, int heads) {
    const int D = C / heads;
    double *qt = malloc(sizeof(double) * HW * D), *kt = malloc(sizeof(double) * HW * D);
    double *vt = malloc(sizeof(double) * HW * D), *ot = malloc(sizeof(double) * HW * D);
    double *a = malloc(sizeof(double) * HW);
    for (int n = 0; n < N; n++)
        for (int h = 0; h < heads; h++) {
            gather_t(qt, q, n, h, C, HW, D);
            gather_t(kt, k, n, h, C, HW, D);
            gather_t(vt, v, n, h, C, HW, D);
            for (int i = 0; i < HW; i++) {
                ref_att_row(a, qt, kt, i, HW, D);
                float *arow = att + (((size_t)n * heads + h) * HW + i) * HW;
                for (int d = 0; d < D; d++) ot[(size_t)i * D + d] = 0;
                for (int j = 0; j < HW; j++) {
                    arow[j] = (float)a[j];
                    for (int d = 0; d < D; d++) ot[(size_t)i * D + d] += a[j] * vt[(size_t)j * D + d];
                }
            }
            scatter_t(out, ot, n, h, C, HW, D);
        }
    free(qt), free(kt), free(vt), free(ot), free(a);
}

/* Deliberate mistakes, to show that the finite-difference check catches them. */
enum { BUG_NONE, BUG_NO_ROWSUM, BUG_NO_SCALE, BUG_UNWEIGHTED_ROWSUM };

/* Gradients (N,C,HW), written (not accumulated), of L with dL/dout = dout:
 *   dv[d,j] = sum_i dout[d,i] att[i,j],   datt[i,j] = sum_d dout[d,i] v[d,j],
 *   dl[i,j] = att[i,j] (datt[i,j] - sum_j' datt[i,j'] att[i,j']),
 *   dq[d,i] = sum_j dl[i,j] k[d,j] / sqrt(D),   dk[d,j] = sum_i dl[i,j] q[d,i] / sqrt(D). */
static void ref_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                         const float *k, const float *v, int N, int C, int HW, int heads,
                         int bug) {
    const int D = C / heads;
    const double scale = bug == BUG_NO_SCALE ? 1.0 : 1.0 / sqrt((double)D);
    const size_t sz = sizeof(double) * HW * D;
    double *qt = malloc(sz), *kt = malloc(sz), *vt = malloc(sz), *gt = malloc(sz);
    double *dqt = malloc(sz), *dkt = malloc(sz), *dvt = malloc(sz);
    double *a = malloc(sizeof(double) * HW), *dl = malloc(sizeof(double) * HW);
    for (int n = 0; n < N; n++)
        for (int h = 0; h < heads; h++) {
            gather_t(qt, q, n, h, C, HW, D);
            gather_t(kt, k, n, h, C, HW, D);
            gather_t(vt, v, n, h, C, HW, D);
            gather_t(gt, dout, n, h, C, HW, D);
            memset(dqt, 0, sz), memset(dkt, 0, sz), memset(dvt, 0, sz);
            for (int i = 0; i < HW; i++) {
                ref_att_row(a, qt, kt, i, HW, D);
                const double *g = gt + (size_t)i * D;
                double rowsum = 0;
                for (int j = 0; j < HW; j++) {
                    double datt = 0;
                    for (int d = 0; d < D; d++) datt += g[d] * vt[(size_t)j * D + d];
                    dl[j] = datt;
                    rowsum += bug == BUG_UNWEIGHTED_ROWSUM ? datt : datt * a[j];
                }
                if (bug == BUG_NO_ROWSUM) rowsum = 0;
                for (int j = 0; j < HW; j++) {
                    dl[j] = a[j] * (dl[j] - rowsum);
                    for (int d = 0; d < D; d++) {
                        dvt[(size_t)j * D + d] += g[d] * a[j];
                        dqt[(size_t)i * D + d] += dl[j] * kt[(size_t)j * D + d] * scale;
                        dkt[(size_t)j * D + d] += dl[j] * qt[(size_t)i * D + d] * scale;
                    }
                }
            }
            scatter_t(dq, dqt, n, h, C, HW, D);
            scatter_t(dk, dkt, n, h, C, HW, D);
            scatter_t(dv, dvt, n, h, C, HW, D);
        }
    free(qt), free(kt), free(vt), free(gt), free(dqt), free(dkt), free(dvt), free(a), free(dl);
}

/* ------------------------------------------------------------ helpers */

typedef struct {
    int N, C, HW, heads;
    size_t nx, natt;
    float *q, *k, *v, *dout, *out, *att, *dq, *dk, *dv;
} problem;

static problem problem_new(int N, int C, int HW, int heads, unsigned seed, float amp) {
    problem p = {N, C, HW, heads, (size_t)N * C * HW, (size_t)N * heads * HW * HW,
                 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    float **xs[] = {&p.q, &p.k, &p.v, &p.dout, &p.out, &p.dq, &p.dk, &p.dv};
    for (int i = 0; i < 8; i++) *xs[i] = dfn_calloc(p.nx ? p.nx : 1, sizeof(float));
    p.att = dfn_calloc(p.natt ? p.natt : 1, sizeof(float));
    fill_uniform(p.q, p.nx, seed);
    fill_uniform(p.k, p.nx, seed + 1);
    fill_uniform(p.v, p.nx, seed + 2);
    fill_uniform(p.dout, p.nx, seed + 3);
    for (size_t i = 0; i < p.nx; i++) p.q[i] *= amp, p.k[i] *= amp;
    return p;
}

static void problem_free(problem *p) {
    free(p->q), free(p->k), free(p->v), free(p->dout), free(p->out), free(p->att);
    free(p->dq), free(p->dk), free(p->dv);
}

/* Forward, then backward into zeroed gradients. */
static void problem_run(problem *p) {
    dfn_attention_forward(p->out, p->att, p->q, p->k, p->v, p->N, p->C, p->HW, p->heads);
    memset(p->dq, 0, p->nx * sizeof(float));
    memset(p->dk, 0, p->nx * sizeof(float));
    memset(p->dv, 0, p->nx * sizeof(float));
    dfn_attention_backward(p->dq, p->dk, p->dv, p->dout, p->q, p->k, p->v, p->att, p->N, p->C,
                           p->HW, p->heads);
}

/* dfn_scratch buffers live per thread and are not freed when a thread ends:
 * free those of the OpenMP workers before their team can shrink (and at exit),
 * or LeakSanitizer reports them. */
static void release_all_scratch(void) {
#pragma omp parallel
    dfn_scratch_release();
    dfn_scratch_release();
}

static float *copy_of(const float *x, size_t n) {
    float *y = dfn_malloc((n ? n : 1) * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}

/* ------------------------------------------------------------ tests */

/* Out, att and the three gradients against the reference: inf-norm relative
 * error <= 1e-5 over the grid of shapes. */
static void matches_reference_on_all_shapes(void) {
    const int HWs[] = {49, 196, 784, 1, 4}, Cs[] = {16, 64, 128}, Hs[] = {1, 2, 4}, Ns[] = {1, 3};
    double worst[5] = {0};
    int nshapes = 0;
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 3; c++)
                for (int d = 0; d < 2; d++) {
                    int HW = HWs[a], C = Cs[b], heads = Hs[c], N = Ns[d];
#ifdef __SANITIZE_ADDRESS__
                    /* the slow reference is slower still under ASan: the largest
                     * shapes only in the optimised build (same code paths) */
                    if (HW == 784 && (N > 1 || C > 64)) continue;
#endif
                    nshapes++;
                    problem p = problem_new(N, C, HW, heads, 100u + a * 17 + b * 5 + c * 3 + d, 1.0f);
                    problem_run(&p);
                    float *out = dfn_malloc(p.nx * 4), *att = dfn_malloc(p.natt * 4);
                    float *dq = dfn_malloc(p.nx * 4), *dk = dfn_malloc(p.nx * 4), *dv = dfn_malloc(p.nx * 4);
                    ref_forward(out, att, p.q, p.k, p.v, N, C, HW, heads);
                    ref_backward(dq, dk, dv, p.dout, p.q, p.k, p.v, N, C, HW, heads, BUG_NONE);
                    const float *got[5] = {p.out, p.att, p.dq, p.dk, p.dv};
                    const float *want[5] = {out, att, dq, dk, dv};
                    const char *names[5] = {"out", "att", "dq", "dk", "dv"};
                    for (int t = 0; t < 5; t++) {
                        size_t n = t == 1 ? p.natt : p.nx;
                        char name[96];
                        snprintf(name, sizeof name, "%s N=%d C=%d HW=%d heads=%d", names[t], N, C, HW, heads);
                        check_tensor(name, got[t], want[t], n, 1e-5);
                        double e = rel_error(got[t], want[t], n);
                        if (!(e <= worst[t])) worst[t] = e;
                    }
                    free(out), free(att), free(dq), free(dk), free(dv);
                    problem_free(&p);
                }
    printf("reference, %d shapes: worst rel error out %.2e att %.2e dq %.2e dk %.2e dv %.2e\n",
           nshapes, worst[0], worst[1], worst[2], worst[3], worst[4]);
}

/* Logits in the thousands: exp would overflow without the max subtraction. */
static void softmax_is_stable_for_large_logits(void) {
    const int shapes[][4] = {{2, 16, 49, 2}, {1, 64, 196, 1}};
    for (int s = 0; s < 2; s++) {
        int N = shapes[s][0], C = shapes[s][1], HW = shapes[s][2], heads = shapes[s][3];
        problem p = problem_new(N, C, HW, heads, 7u + s, 40.0f); /* |logit| up to ~1e4 */
        problem_run(&p);
        float *out = dfn_malloc(p.nx * 4), *att = dfn_malloc(p.natt * 4);
        float *dq = dfn_malloc(p.nx * 4), *dk = dfn_malloc(p.nx * 4), *dv = dfn_malloc(p.nx * 4);
        ref_forward(out, att, p.q, p.k, p.v, N, C, HW, heads);
        ref_backward(dq, dk, dv, p.dout, p.q, p.k, p.v, N, C, HW, heads, BUG_NONE);
        /* the largest logit: exp of it would overflow float (exp(88.8) > FLT_MAX) */
        const int D = C / heads;
        double lmax = 0;
        for (int n = 0; n < N; n++)
            for (int c0 = 0; c0 < C; c0 += D)
                for (int i = 0; i < HW; i++)
                    for (int j = 0; j < HW; j++) {
                        double l = 0;
                        for (int d = c0; d < c0 + D; d++)
                            l += (double)p.q[((size_t)n * C + d) * HW + i] * p.k[((size_t)n * C + d) * HW + j];
                        l = fabs(l) / sqrt((double)D);
                        if (l > lmax) lmax = l;
                    }
        CHECK(lmax > 1000, "large logits: the largest logit is only %.1f", lmax);
        int finite = 1;
        for (size_t i = 0; i < p.natt; i++) finite &= isfinite(p.att[i]);
        for (size_t i = 0; i < p.nx; i++)
            finite &= isfinite(p.out[i]) && isfinite(p.dq[i]) && isfinite(p.dk[i]) && isfinite(p.dv[i]);
        CHECK(finite, "large logits: a result is not finite");
        /* rows sum to 1 */
        double worst = 0;
        for (size_t r = 0; r < p.natt / HW; r++) {
            double sum = 0;
            for (int j = 0; j < HW; j++) sum += p.att[r * HW + j];
            if (fabs(sum - 1) > worst) worst = fabs(sum - 1);
        }
        CHECK(worst <= 1e-5, "large logits: a row of att sums to 1 %+.3e", worst);
        /* Not 1e-5: a float logit of magnitude lmax carries a rounding error of
         * about lmax * 2^-24 ~ 1e-4 (PyTorch's float bmm too), and a probability
         * inherits it as a relative error; that is conditioning, not instability. */
        const double tol = 1e-5 + 16 * lmax * 0x1p-24;
        printf("large logits (max |logit| %.0f): tolerance %.1e\n", lmax, tol);
        check_tensor("large logits out", p.out, out, p.nx, tol);
        check_tensor("large logits att", p.att, att, p.natt, tol);
        check_tensor("large logits dq", p.dq, dq, p.nx, tol);
        check_tensor("large logits dk", p.dk, dk, p.nx, tol);
        check_tensor("large logits dv", p.dv, dv, p.nx, tol);
        free(out), free(att), free(dq), free(dk), free(dv);
        problem_free(&p);
    }
}

/* Backward adds to what the gradients hold; NULL gradients are skipped and change
 * nothing in the others. */
static void backward_accumulates_and_skips_null_gradients(void) {
    const int shapes[][4] = {{3, 32, 49, 2}, {1, 16, 196, 1}}; /* per-pair and split paths */
    for (int s = 0; s < 2; s++) {
        int N = shapes[s][0], C = shapes[s][1], HW = shapes[s][2], heads = shapes[s][3];
        problem p = problem_new(N, C, HW, heads, 31u + s, 1.0f);
        problem_run(&p); /* p.dq, p.dk, p.dv from zero */
        float *init[3], *acc[3];
        for (int g = 0; g < 3; g++) {
            init[g] = dfn_malloc(p.nx * 4);
            fill_uniform(init[g], p.nx, 900u + g);
            acc[g] = copy_of(init[g], p.nx);
        }
        dfn_attention_backward(acc[0], acc[1], acc[2], p.dout, p.q, p.k, p.v, p.att, N, C, HW, heads);
        const float *fresh[3] = {p.dq, p.dk, p.dv};
        for (int g = 0; g < 3; g++) {
            float *want = dfn_malloc(p.nx * 4);
            double worst = 0, scale = 0;
            for (size_t i = 0; i < p.nx; i++) {
                want[i] = init[g][i] + fresh[g][i];
                double e = fabs((double)acc[g][i] - want[i]);
                if (e > worst) worst = e;
                if (fabs(fresh[g][i]) > scale) scale = fabs(fresh[g][i]);
            }
            /* the sum is rounded once more, to a few ulps of init */
            CHECK(worst <= 4e-7 + 1e-5 * scale, "gradient %d does not accumulate: %.3e", g, worst);
            free(want);
        }
        /* every subset of gradients: each computed one bit-identical to the full call */
        for (int mask = 0; mask < 8; mask++) {
            float *g[3];
            for (int i = 0; i < 3; i++) g[i] = (mask >> i & 1) ? dfn_calloc(p.nx, 4) : NULL;
            dfn_attention_backward(g[0], g[1], g[2], p.dout, p.q, p.k, p.v, p.att, N, C, HW, heads);
            for (int i = 0; i < 3; i++)
                if (g[i]) {
                    CHECK(memcmp(g[i], fresh[i], p.nx * 4) == 0,
                          "gradient %d with mask %d differs from the full call (shape %d)", i, mask, s);
                    free(g[i]);
                }
        }
        for (int g = 0; g < 3; g++) free(init[g]), free(acc[g]);
        problem_free(&p);
    }
}

/* Bit-identical outputs and gradients for 1, 2 and 3 threads, and run after run,
 * on shapes that take every path (per-pair tasks, split pairs, many row blocks). */
static void results_are_bit_identical_for_any_thread_count(void) {
    const int shapes[][4] = {{1, 64, 784, 1}, {2, 32, 196, 1}, {3, 64, 196, 2},
                             {4, 128, 49, 1}, {1, 16, 4, 4},   {5, 48, 100, 3}};
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    const int saved = omp_get_max_threads();
    int identical = 1;
    for (int s = 0; s < nshapes; s++) {
        int N = shapes[s][0], C = shapes[s][1], HW = shapes[s][2], heads = shapes[s][3];
        problem p = problem_new(N, C, HW, heads, 55u + s, 3.0f);
        omp_set_num_threads(1);
        problem_run(&p);
        float *base[5] = {copy_of(p.out, p.nx), copy_of(p.att, p.natt), copy_of(p.dq, p.nx),
                          copy_of(p.dk, p.nx), copy_of(p.dv, p.nx)};
        const int threads[] = {2, 3, 1, 2};
        for (int t = 0; t < 4; t++) {
            release_all_scratch(); /* libgomp may end surplus threads when a team shrinks */
            omp_set_num_threads(threads[t]);
            memset(p.out, 0xff, p.nx * 4); /* NaN: stale values cannot pass */
            memset(p.att, 0xff, p.natt * 4);
            problem_run(&p);
            const float *now[5] = {p.out, p.att, p.dq, p.dk, p.dv};
            for (int i = 0; i < 5; i++) {
                int same = memcmp(now[i], base[i], (i == 1 ? p.natt : p.nx) * 4) == 0;
                CHECK(same, "tensor %d of shape %d differs with %d threads", i, s, threads[t]);
                identical &= same;
            }
        }
        for (int i = 0; i < 5; i++) free(base[i]);
        problem_free(&p);
    }
    omp_set_num_threads(saved);
    printf("determinism: %d shapes x threads {1,2,3,1,2}: %s\n", nshapes,
           identical ? "bit-identical (memcmp)" : "DIFFERENT");
}

/* The same results wherever the buffers start: the softmax sums by element index,
 * not by address, and oneDNN's sgemm packs its operands (checked here, since an
 * arena may place a tensor at any float offset). */
static void results_do_not_depend_on_buffer_alignment(void) {
    const int shapes[][4] = {{1, 64, 196, 1}, {3, 32, 49, 2}, {2, 24, 37, 3}};
    for (int s = 0; s < 3; s++) {
        int N = shapes[s][0], C = shapes[s][1], HW = shapes[s][2], heads = shapes[s][3];
        problem p = problem_new(N, C, HW, heads, 11u + s, 3.0f);
        problem_run(&p);
        for (int shift = 1; shift < 16; shift += 7) { /* 4 and 32 bytes past a 64-byte boundary */
            const size_t nx = p.nx, na = p.natt;
            float *buf[9];
            for (int i = 0; i < 9; i++) buf[i] = dfn_calloc((i == 5 ? na : nx) + 16, sizeof(float));
            float *q = buf[0] + shift, *k = buf[1] + shift, *v = buf[2] + shift, *g = buf[3] + shift;
            float *out = buf[4] + shift, *att = buf[5] + shift;
            float *dq = buf[6] + shift, *dk = buf[7] + shift, *dv = buf[8] + shift;
            memcpy(q, p.q, nx * 4), memcpy(k, p.k, nx * 4), memcpy(v, p.v, nx * 4);
            memcpy(g, p.dout, nx * 4);
            dfn_attention_forward(out, att, q, k, v, N, C, HW, heads);
            dfn_attention_backward(dq, dk, dv, g, q, k, v, att, N, C, HW, heads);
            int same = memcmp(out, p.out, nx * 4) == 0 && memcmp(att, p.att, na * 4) == 0 &&
                       memcmp(dq, p.dq, nx * 4) == 0 && memcmp(dk, p.dk, nx * 4) == 0 &&
                       memcmp(dv, p.dv, nx * 4) == 0;
            CHECK(same, "shape %d: results change with buffers %d floats off alignment", s, shift);
            for (int i = 0; i < 9; i++) free(buf[i]);
        }
        problem_free(&p);
    }
}

/* Central differences of L = sum(out * R), accumulated in double, for every element
 * of q, k and v, against the backward; also shows that the check fails for three
 * plausible wrong backwards. */
static void backward_matches_finite_differences(void) {
    const int N = 2, C = 8, HW = 5, heads = 2;
    const double tol = 2e-3;
    problem p = problem_new(N, C, HW, heads, 77u, 2.0f); /* logits up to ~8: a peaked softmax */
    problem_run(&p);                                      /* dout = R */
    float *num[3];
    float *xs[3] = {p.q, p.k, p.v};
    const float *ana[3] = {p.dq, p.dk, p.dv};
    float *out = dfn_malloc(p.nx * 4), *att = dfn_malloc(p.natt * 4);
    const float steps[2] = {1e-2f, 1e-3f};
    for (int st = 0; st < 2; st++) {
        const float eps = steps[st];
        double err[3];
        for (int t = 0; t < 3; t++) {
            num[t] = dfn_malloc(p.nx * 4);
            for (size_t i = 0; i < p.nx; i++) {
                const float x0 = xs[t][i];
                double L[2];
                for (int side = 0; side < 2; side++) {
                    xs[t][i] = x0 + (side ? -eps : eps);
                    dfn_attention_forward(out, att, p.q, p.k, p.v, N, C, HW, heads);
                    double s = 0;
                    for (size_t e = 0; e < p.nx; e++) s += (double)out[e] * p.dout[e];
                    L[side] = s;
                }
                xs[t][i] = x0;
                /* the step actually taken, in float */
                double h = ((double)(x0 + eps) - (double)(x0 - eps));
                num[t][i] = (float)((L[0] - L[1]) / h);
            }
            err[t] = rel_error(ana[t], num[t], p.nx);
            CHECK(err[t] <= tol, "finite differences, step %g, grad %d: rel error %.3e", eps, t, err[t]);
        }
        printf("finite differences (N=%d C=%d HW=%d heads=%d), step %g: rel error dq %.2e dk %.2e dv %.2e (tol %.0e)\n",
               N, C, HW, heads, (double)eps, err[0], err[1], err[2], tol);
        if (st == 0) {
            /* wrong backwards must fail the same check */
            const char *bugs[] = {"", "no softmax rowsum", "no 1/sqrt(D)", "unweighted rowsum"};
            for (int bug = BUG_NO_ROWSUM; bug <= BUG_UNWEIGHTED_ROWSUM; bug++) {
                float *g[3] = {dfn_malloc(p.nx * 4), dfn_malloc(p.nx * 4), dfn_malloc(p.nx * 4)};
                ref_backward(g[0], g[1], g[2], p.dout, p.q, p.k, p.v, N, C, HW, heads, bug);
                double e = fmax(rel_error(g[0], num[0], p.nx), rel_error(g[1], num[1], p.nx));
                CHECK(e > tol, "finite differences miss a backward with %s: %.3e", bugs[bug], e);
                printf("  wrong backward (%s): rel error %.2e, rejected\n", bugs[bug], e);
                for (int t = 0; t < 3; t++) free(g[t]);
            }
            /* and the correct reference passes it */
            float *g[3] = {dfn_malloc(p.nx * 4), dfn_malloc(p.nx * 4), dfn_malloc(p.nx * 4)};
            ref_backward(g[0], g[1], g[2], p.dout, p.q, p.k, p.v, N, C, HW, heads, BUG_NONE);
            for (int t = 0; t < 3; t++) {
                CHECK(rel_error(g[t], num[t], p.nx) <= tol, "reference backward fails finite differences");
                free(g[t]);
            }
        }
        for (int t = 0; t < 3; t++) free(num[t]);
    }
    free(out), free(att);
    problem_free(&p);
}

/* HW = 1: the softmax is 1, out = v, and all gradients but dv vanish. */
static void one_position_copies_v(void) {
    problem p = problem_new(3, 12, 1, 3, 5u, 5.0f);
    problem_run(&p);
    int ok = 1;
    for (size_t i = 0; i < p.natt; i++) ok &= p.att[i] == 1.0f;
    for (size_t i = 0; i < p.nx; i++)
        ok &= p.out[i] == p.v[i] && p.dq[i] == 0.0f && p.dk[i] == 0.0f && p.dv[i] == p.dout[i];
    CHECK(ok, "HW=1 does not reduce to out = v");
    problem_free(&p);
}

/* ------------------------------------------------------------ benchmark */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Wall-clock ms of forward and backward, best and median of reps (on a shared
 * machine, compare the best of runs taken back to back). */
static void bench(int N, int C, int HW, int heads, int reps) {
    problem p = problem_new(N, C, HW, heads, 1u, 1.0f);
    problem_run(&p); /* touch every page */
    double tf[64], tb[64];
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        dfn_attention_forward(p.out, p.att, p.q, p.k, p.v, N, C, HW, heads);
        double t1 = now_ms();
        dfn_attention_backward(p.dq, p.dk, p.dv, p.dout, p.q, p.k, p.v, p.att, N, C, HW, heads);
        double t2 = now_ms();
        tf[r] = t1 - t0, tb[r] = t2 - t1;
    }
    qsort(tf, reps, sizeof(double), cmp_double);
    qsort(tb, reps, sizeof(double), cmp_double);
    double gf = 4.0 * N * (double)C * HW * HW * 1e-9; /* forward: two products of HW*HW*C MACs */
    printf("bench N=%d C=%d HW=%d heads=%d threads=%d: forward %.2f ms (median %.2f, %.0f GFLOP/s), "
           "backward %.2f ms (median %.2f, %.0f GFLOP/s)\n",
           N, C, HW, heads, omp_get_max_threads(), tf[0], tf[reps / 2], gf / tf[0] * 1e3, tb[0],
           tb[reps / 2], 2 * gf / tb[0] * 1e3);
    problem_free(&p);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        omp_set_num_threads(2);
        int reps = argc > 2 ? atoi(argv[2]) : 10;
        if (reps < 1 || reps > 64) reps = 10;
        bench(128, 128, 49, 1, reps);
        bench(128, 64, 784, 1, reps);
        return 0;
    }
    one_position_copies_v();
    backward_matches_finite_differences();
    backward_accumulates_and_skips_null_gradients();
    results_are_bit_identical_for_any_thread_count();
    results_do_not_depend_on_buffer_alignment();
    softmax_is_stable_for_large_logits();
    matches_reference_on_all_shapes();
    release_all_scratch();
    TEST_MAIN_END();
}

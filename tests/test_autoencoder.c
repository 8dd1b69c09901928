/* test_autoencoder.c - the KL autoencoder of latent diffusion (Rombach et al.
 * 2022; a dfn_model of kind autoencoder) and its KL term, four ways:
 *
 * 1. Against PyTorch. scripts/gen_reference.py wrote tests/ref/autoencoder.safetensors
 *    with the twin's AutoencoderKL (scripts/torch_twin.py; the contract is in
 *    tests/ref/README.md): from the same initial parameters and input, the eval
 *    posterior (encode), the eval reconstruction (decode of the mean, and the
 *    DFN_EVAL forward), a training forward whose dropout masks and
 *    reparameterisation noise eps come from Philox(1234) in the same order on both
 *    sides (encoder ResBlocks, eps, decoder ResBlocks), its posterior, and the
 *    backward of loss = sum(rec R) + sum(mean M) + sum(logvar V) for random R, M, V:
 *    every parameter gradient and d loss / d x. Norms as test_torch_reference.c:
 *    outputs and d loss / d x max|c - torch| / max|torch| <= 1e-4; parameter
 *    gradients per tensor max|c - torch| / max(max|torch|, 1e-3 G) <= 1e-4, G the
 *    largest |gradient| of the file (the floor matters only for gradients that are
 *    zero in exact arithmetic, the attention k.bias). Also: the KL of the training
 *    posterior, the Philox blocks a forward draws, the twin's eps = dfn_rng_normal's,
 *    dfn_model_backward = dfn_autoencoder_backward without dmean/dlogvar, and the
 *    training step bit for bit on the default thread count (everything else runs
 *    on one thread: see main).
 * 2. Backward against central finite differences on a tiny autoencoder, through
 *    the whole training loss L = sum(rec R) + beta KL(q(z|x) || N(0, I)) with the
 *    KL term's gradient from dfn_kl_standard_normal fed in as dmean, dlogvar:
 *    dL/dv ~ (L(v + h) - L(v - h)) / (2h), h = 1e-2, for one element of every
 *    parameter tensor and 20 input elements; the dropout masks and eps are fixed
 *    by restarting the same Philox stream for every evaluation. Three losses: the
 *    training forward with reconstruction and KL, KL alone (only the encoder
 *    learns; the decoder's gradients must be exactly 0), and the DFN_EVAL_GRAD
 *    forward (z = mean). Tolerance 2e-2 inf-norm relative per set, as the
 *    classifier's check (float32 forwards; seen 5e-5 to 3e-4).
 * 3. dfn_kl_standard_normal against an estimate that does not use its closed
 *    form: KL(q || p) = E_q[log q(z) - log p(z)], by Monte Carlo over 10^6 draws
 *    z = mean + exp(logvar / 2) eps of a 2 x 3 posterior, where
 *    log q(z) - log p(z) = sum_i (-logvar_i / 2 - eps_i^2 / 2 + z_i^2 / 2) (the
 *    2 pi terms cancel); within 4 standard errors. Its gradient against central
 *    differences of itself, its batch averaging and its NULL outputs.
 * 4. The clamp of logvar to [-30, 20] (LDM's DiagonalGaussianDistribution): with
 *    the logvar rows of quant_conv zeroed and their biases at 25, -35 and 1.5, the
 *    posterior's logvar is exactly 20, -30 and 1.5, and no gradient crosses the
 *    clamp where it is active, not even the KL term's exp(20) / 2, while the
 *    unclamped channel gets exactly what the KL term sends it. */
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "diffusion.h"
#include "io/safetensors.h"
#include "models/models.h"
#include "test_reference.h"

#define TOL 1e-4
#define FD_TOL 2e-2

static float *falloc(size_t n) { return dfn_calloc(n ? n : 1, sizeof(float)); }

/* ------------------------------------------------------------ 1. against PyTorch */




static void compare_ref(worst_tensor *w, const dfn_st_file *f, const char *name, const float *got, size_t n) {
    float *want = read_f32(f, name, n);
    if (want) compare_floor(w, "autoencoder", name, got, want, n, 0.0, TOL);
    free(want);
}

static int default_threads = 1;

static void test_reference(void) {
    const char *path = "tests/ref/autoencoder.safetensors";
    printf("against PyTorch (%s)\n", path);
    dfn_st_file *f;
    dfn_model *m = reference_model(path, &f);
    if (!m) return;
    const dfn_model_config cfg = *dfn_model_get_config(m);
    CHECK(cfg.kind == DFN_MODEL_AUTOENCODER, "%s: kind %d", path, (int)cfg.kind);
    const size_t P = dfn_model_num_params(m);
    /* the same tensors on both sides; the twin registers them in the C table's order */
    int n_init = 0, same_order = 1;
    for (int i = 0; i < dfn_st_num_tensors(f); i++) {
        const char *name = dfn_st_tensor_at(f, i)->name;
        if (strncmp(name, "init.", 5)) continue;
        CHECK(dfn_model_find_tensor(m, name + 5) >= 0, "%s: the twin has '%s', the C model does not", path,
              name + 5);
        if (n_init >= dfn_model_num_tensors(m) || strcmp(name + 5, dfn_model_tensor_name(m, n_init)))
            same_order = 0;
        n_init++;
    }
    CHECK(n_init == dfn_model_num_tensors(m), "%s: %d tensors in the twin, %d in C", path, n_init,
          dfn_model_num_tensors(m));
    if (!same_order) printf("  note: the C tensor table is not in the twin's state_dict order\n");

    const dfn_st_tensor *xt, *mt;
    float *x = NULL, *R = NULL, *M = NULL, *V = NULL, *ref_mean = NULL;
    if (dfn_st_get(f, "x", DFN_DTYPE_F32, -1, NULL, &xt) != DFN_OK ||
        dfn_st_get(f, "eval_mean", DFN_DTYPE_F32, -1, NULL, &mt) != DFN_OK || xt->ndim != 4 || mt->ndim != 4) {
        CHECK(0, "%s: x and eval_mean must be 4-d: %s", path, dfn_last_error());
        goto done;
    }
    const int B = (int)xt->shape[0];
    const size_t D = dfn_model_input_size(m), L = dfn_autoencoder_latent_size(m);
    int dims[3];
    CHECK(dfn_autoencoder_latent_shape(m, dims) == 3 && dims[0] == mt->shape[1] && dims[1] == mt->shape[2] &&
              dims[2] == mt->shape[3] && L == (size_t)dims[0] * dims[1] * dims[2],
          "latent shape %d x %d x %d (size %zu), the twin's %lld x %lld x %lld", dims[0], dims[1], dims[2], L,
          (long long)mt->shape[1], (long long)mt->shape[2], (long long)mt->shape[3]);
    CHECK(dfn_model_output_size(m) == D && xt->numel == B * D, "shapes: input %zu, output %zu",
          D, dfn_model_output_size(m));
    x = read_f32(f, "x", B * D), R = read_f32(f, "R", B * D);
    M = read_f32(f, "M", B * L), V = read_f32(f, "V", B * L);
    ref_mean = read_f32(f, "eval_mean", B * L);
    if (!x || !R || !M || !V || !ref_mean) goto done;
    float *mean = falloc(B * L), *logvar = falloc(B * L), *rec = falloc(B * D), *dx = falloc(B * D);
    worst_tensor w = {"(none)", 0.0};

    /* eval: encode, decode (of the twin's mean: the decoder alone), the whole forward */
    dfn_autoencoder_encode(m, mean, logvar, x, B);
    compare_floor(&w, "autoencoder", "eval_mean", mean, ref_mean, B * L, 0.0, TOL);
    compare_ref(&w, f, "eval_logvar", logvar, B * L);
    dfn_autoencoder_decode(m, rec, ref_mean, B);
    compare_ref(&w, f, "eval_out", rec, B * D);
    dfn_model_forward(m, rec, x, NULL, NULL, B, DFN_EVAL, NULL);
    compare_ref(&w, f, "eval_out", rec, B * D);
    /* the kept eval forward computes the same function */
    float *rec2 = falloc(B * D);
    dfn_model_forward(m, rec2, x, NULL, NULL, B, DFN_EVAL_GRAD, NULL);
    CHECK(!memcmp(rec, rec2, B * D * sizeof(float)), "DFN_EVAL_GRAD forward differs from DFN_EVAL");

    /* training: dropout and eps from Philox(dropout_seed), as the twin drew them */
    const char *seed_s = dfn_st_metadata(f, "dropout_seed"), *blocks_s = dfn_st_metadata(f, "rng_blocks_per_forward");
    const char *eps_s = dfn_st_metadata(f, "eps_block");
    const uint64_t seed = seed_s ? strtoull(seed_s, NULL, 10) : 0;
    dfn_rng rng = dfn_rng_init(seed);
    dfn_model_forward(m, rec, x, NULL, NULL, B, DFN_TRAIN, &rng);
    CHECK(blocks_s && rng.counter == strtoull(blocks_s, NULL, 10),
          "a training forward drew %llu Philox blocks, the twin %s", (unsigned long long)rng.counter,
          blocks_s ? blocks_s : "(?)");
    compare_ref(&w, f, "out", rec, B * D);
    const float *pm, *pl;
    dfn_autoencoder_posterior(m, &pm, &pl);
    compare_ref(&w, f, "mean", pm, B * L);
    compare_ref(&w, f, "logvar", pl, B * L);
    /* the twin's eps is dfn_rng_normal's at the block where the encoder's dropout ended */
    {
        dfn_rng r = dfn_rng_init(seed);
        r.counter = eps_s ? strtoull(eps_s, NULL, 10) : 0;
        float *eps = falloc(B * L), *ref_eps = read_f32(f, "eps", B * L);
        dfn_rng_normal(&r, eps, B * L);
        CHECK(ref_eps && !memcmp(eps, ref_eps, B * L * sizeof(float)),
              "the twin's eps are not dfn_rng_normal's from block %s", eps_s ? eps_s : "(?)");
        free(eps);
        free(ref_eps);
    }
    float kl = (float)dfn_kl_standard_normal(NULL, NULL, pm, pl, B, L, 1.0);
    compare_ref(&w, f, "kl", &kl, 1);

    dfn_model_zero_grad(m);
    dfn_autoencoder_backward(m, R, M, V, dx);
    compare_ref(&w, f, "grad.x", dx, B * D);
    float *g = dfn_model_grads(m), *ref = falloc(P);
    compare_param_grads(&w, "autoencoder", f, m, ref, TOL);
    /* dfn_model_backward is dfn_autoencoder_backward without extra posterior gradients */
    {
        float *g1 = falloc(P), *dx1 = falloc(B * D);
        rng = dfn_rng_init(seed);
        dfn_model_forward(m, rec2, x, NULL, NULL, B, DFN_TRAIN, &rng);
        dfn_model_zero_grad(m);
        dfn_autoencoder_backward(m, R, NULL, NULL, dx1);
        memcpy(g1, g, P * sizeof(float));
        rng = dfn_rng_init(seed);
        dfn_model_forward(m, rec2, x, NULL, NULL, B, DFN_TRAIN, &rng);
        CHECK(!memcmp(rec, rec2, B * D * sizeof(float)), "two training forwards from one rng state differ");
        dfn_model_zero_grad(m);
        dfn_model_backward(m, R, dx);
        CHECK(!memcmp(g, g1, P * sizeof(float)) && !memcmp(dx, dx1, B * D * sizeof(float)),
              "dfn_model_backward != dfn_autoencoder_backward(drec, NULL, NULL)");
        /* the same bits on every thread count (the test runs on one) */
        if (default_threads > 1) {
            omp_set_num_threads(default_threads);
            rng = dfn_rng_init(seed);
            dfn_model_forward(m, rec2, x, NULL, NULL, B, DFN_TRAIN, &rng);
            dfn_model_zero_grad(m);
            dfn_model_backward(m, R, dx);
            CHECK(!memcmp(rec, rec2, B * D * sizeof(float)) && !memcmp(g, g1, P * sizeof(float)) &&
                      !memcmp(dx, dx1, B * D * sizeof(float)),
                  "a training step on %d threads differs from one on 1 thread", default_threads);
            omp_set_num_threads(1);
        }
        free(g1);
        free(dx1);
    }
    printf("  B=%d params=%zu latent %dx%dx%d: worst of outputs/grads %s at %.2e (tol %.0e)\n", B, P, dims[0],
           dims[1], dims[2], w.name, w.err, TOL);
    free(ref); free(mean); free(logvar); free(rec); free(rec2); free(dx);
done:
    free(x); free(R); free(M); free(V); free(ref_mean);
    dfn_model_free(m);
    dfn_st_close(f);
}

/* ------------------------------------------------------------ 2. finite differences */

/* A tiny autoencoder: 1 x 8 x 8 -> 3 x 4 x 4, ch 4, mult (1, 2), 2 groups. */
static dfn_model_config tiny_config(float dropout) {
    dfn_model_config c;
    dfn_model_config_init(&c, DFN_MODEL_AUTOENCODER);
    c.autoencoder.in_channels = 1;
    c.autoencoder.resolution = 8;
    c.autoencoder.channels = 4;
    c.autoencoder.n_levels = 2;
    c.autoencoder.ch_mult[0] = 1;
    c.autoencoder.ch_mult[1] = 2;
    c.autoencoder.num_res_blocks = 1;
    c.autoencoder.latent_channels = 3;
    c.autoencoder.groups = 2;
    c.dropout = dropout;
    return c;
}

typedef struct {
    dfn_model *m;
    const float *x, *R; /* R NULL: no reconstruction term */
    float *rec;
    int B, mode;
    double beta; /* weight of the KL term */
    dfn_rng rng0; /* every forward starts from this state: the same masks and eps */
} fd_ctx;

/* L = sum(rec R) + beta KL of the forward from c->rng0. */
static double fd_loss(fd_ctx *c) {
    dfn_rng rng = c->rng0;
    dfn_model_forward(c->m, c->rec, c->x, NULL, NULL, c->B, c->mode, &rng);
    const size_t D = dfn_model_output_size(c->m), L = dfn_autoencoder_latent_size(c->m);
    double loss = 0;
    if (c->R)
        for (size_t i = 0; i < (size_t)c->B * D; i++) loss += (double)c->rec[i] * c->R[i];
    if (c->beta != 0.0) {
        const float *mean, *logvar;
        dfn_autoencoder_posterior(c->m, &mean, &logvar);
        loss += c->beta * dfn_kl_standard_normal(NULL, NULL, mean, logvar, c->B, L, 1.0); /* unscaled */
    }
    return loss;
}

static void fd_case(const char *what, int mode, int with_rec, double beta) {
    dfn_model_config cfg = tiny_config(0.2f);
    dfn_model *m;
    if (dfn_model_new(&m, &cfg, 11) != DFN_OK) {
        CHECK(0, "tiny autoencoder: %s", dfn_last_error());
        return;
    }
    const int B = 2;
    const size_t D = dfn_model_input_size(m), L = dfn_autoencoder_latent_size(m), P = dfn_model_num_params(m);
    float *x = falloc(B * D), *R = falloc(B * D), *rec = falloc(B * D), *dx = falloc(B * D);
    float *dmean = falloc(B * L), *dlogvar = falloc(B * L), *noise = falloc(P), *zero = falloc(B * D);
    fill_uniform(x, B * D, 21);
    fill_uniform(R, B * D, 22);
    /* norm weights and biases away from their initial 1 and 0, the rest perturbed too */
    float *params = dfn_model_params(m);
    fill_uniform(noise, P, 23);
    for (size_t i = 0; i < P; i++) params[i] += 0.3f * noise[i];
    fd_ctx c = {m, x, with_rec ? R : NULL, rec, B, mode, beta, dfn_rng_init(99)};

    /* the analytic gradient: the KL term's through dmean, dlogvar */
    dfn_rng rng = c.rng0;
    dfn_model_forward(m, rec, x, NULL, NULL, B, mode, &rng);
    const float *mean, *logvar;
    dfn_autoencoder_posterior(m, &mean, &logvar);
    dfn_kl_standard_normal(dmean, dlogvar, mean, logvar, B, L, beta);
    dfn_model_zero_grad(m);
    dfn_autoencoder_backward(m, with_rec ? R : zero, beta != 0.0 ? dmean : NULL, beta != 0.0 ? dlogvar : NULL,
                             dx);
    const float *g = dfn_model_grads(m);

    /* one element of every tensor, and 20 inputs */
    const int T = dfn_model_num_tensors(m), NX = 20;
    float *an = falloc(T + NX), *fd = falloc(T + NX);
    int dec_nonzero = 0, enc_zero = 1;
    const float h = 1e-2f;
    for (int k = 0; k < T + NX; k++) {
        float *v;
        if (k < T) {
            int shape[4], nd = dfn_model_tensor_shape(m, k, shape);
            size_t n = 1;
            for (int d = 0; d < nd; d++) n *= shape[d];
            size_t i = dfn_model_tensor_offset(m, k) + (size_t)(((uint64_t)k * 2654435761u) % n);
            v = params + i;
            an[k] = g[i];
        } else {
            size_t i = (size_t)(((uint64_t)(k - T) * 40503u + 17) % (B * D));
            v = x + i;
            an[k] = dx[i];
        }
        const float old = *v;
        *v = old + h;
        const double Lp = fd_loss(&c);
        *v = old - h;
        const double Lm = fd_loss(&c);
        *v = old;
        fd[k] = (float)((Lp - Lm) / ((double)(old + h) - (double)(old - h)));
    }
    if (!with_rec) { /* KL alone: the decoder and post_quant_conv get nothing, the encoder something */
        for (int k = 0; k < T; k++) {
            const char *name = dfn_model_tensor_name(m, k);
            int shape[4], nd = dfn_model_tensor_shape(m, k, shape);
            size_t n = 1;
            for (int d = 0; d < nd; d++) n *= shape[d];
            const float *gk = g + dfn_model_tensor_offset(m, k);
            int any = 0;
            for (size_t i = 0; i < n; i++) any |= gk[i] != 0.0f;
            if (!strncmp(name, "decoder.", 8) || !strncmp(name, "post_quant_conv.", 16)) dec_nonzero |= any;
            else if (strstr(name, "conv") && strstr(name, "weight")) enc_zero &= !any;
        }
        CHECK(!dec_nonzero, "%s: a decoder gradient is not 0", what);
        CHECK(!enc_zero, "%s: every encoder conv weight gradient is 0", what);
    }
    double ep = rel_error(an, fd, T), ex = rel_error(an + T, fd + T, NX);
    printf("  %-44s params (%d tensors) rel err %.2e, input rel err %.2e (tol %.0e)\n", what, T, ep, ex, FD_TOL);
    check_tensor(what, an, fd, T, FD_TOL);
    check_tensor(what, an + T, fd + T, NX, FD_TOL);
    free(x); free(R); free(rec); free(dx); free(dmean); free(dlogvar); free(noise); free(zero);
    free(an); free(fd);
    dfn_model_free(m);
}

static void test_finite_differences(void) {
    printf("backward vs central finite differences (tiny autoencoder, dropout 0.2)\n");
    fd_case("training: sum(rec R) + 0.5 KL", DFN_TRAIN, 1, 0.5);
    fd_case("training: KL alone", DFN_TRAIN, 0, 1.0);
    fd_case("DFN_EVAL_GRAD (z = mean): sum(rec R) + 0.5 KL", DFN_EVAL_GRAD, 1, 0.5);
}

/* ------------------------------------------------------------ 3. the KL term */

static void test_kl(void) {
    printf("dfn_kl_standard_normal\n");
    enum { B = 2, N = 3 };
    const float mean[B * N] = {0.5f, -1.2f, 0.0f, 2.0f, 0.3f, -0.7f};
    const float logvar[B * N] = {-1.0f, 0.5f, 0.0f, -2.5f, 1.2f, 0.3f};
    const double kl = dfn_kl_standard_normal(NULL, NULL, mean, logvar, B, N, 1.0);

    /* Monte Carlo: X = 1/B sum_b sum_i (-lv/2 - eps^2/2 + z^2/2), one eps per value */
    const long S = 1000000;
    enum { CHUNK = 4096 };
    float *eps = falloc((size_t)CHUNK * B * N);
    dfn_rng rng = dfn_rng_init(2024);
    double sum = 0, sumsq = 0;
    for (long s0 = 0; s0 < S; s0 += CHUNK) {
        const long ns = S - s0 < CHUNK ? S - s0 : CHUNK;
        dfn_rng_normal(&rng, eps, (size_t)ns * B * N);
        for (long s = 0; s < ns; s++) {
            double X = 0;
            for (int i = 0; i < B * N; i++) {
                const double e = eps[s * B * N + i], z = mean[i] + exp(0.5 * logvar[i]) * e;
                X += -0.5 * logvar[i] - 0.5 * e * e + 0.5 * z * z;
            }
            X /= B;
            sum += X;
            sumsq += X * X;
        }
    }
    const double mc = sum / S, se = sqrt((sumsq / S - mc * mc) / (S - 1));
    printf("  closed form %.6f, Monte Carlo over %ld draws %.6f +- %.6f (%.2f standard errors)\n", kl, S, mc, se,
           fabs(kl - mc) / se);
    CHECK(fabs(kl - mc) <= 4 * se, "KL %.6f vs Monte Carlo %.6f +- %.6f", kl, mc, se);
    CHECK(se < 0.01 * kl, "the Monte Carlo estimate is too loose to tell (se %.3g)", se);
    free(eps);

    /* the batch average: the mean of the rows' own KLs */
    const double row0 = dfn_kl_standard_normal(NULL, NULL, mean, logvar, 1, N, 1.0);
    const double row1 = dfn_kl_standard_normal(NULL, NULL, mean + N, logvar + N, 1, N, 1.0);
    CHECK(fabs(kl - 0.5 * (row0 + row1)) <= 1e-12 * kl, "KL %.17g is not the mean of the rows' %.17g %.17g", kl,
          row0, row1);

    /* the gradient (scale 0.7, overwriting what was there) against central differences */
    const double scale = 0.7;
    float dmean[B * N], dlogvar[B * N], dm2[B * N], m[B * N], lv[B * N];
    for (int i = 0; i < B * N; i++) dmean[i] = dlogvar[i] = NAN;
    const double kl2 = dfn_kl_standard_normal(dmean, dlogvar, mean, logvar, B, N, scale);
    CHECK(kl2 == kl, "the value depends on the gradient outputs or the scale (%.17g vs %.17g)", kl2, kl);
    memcpy(m, mean, sizeof m);
    memcpy(lv, logvar, sizeof lv);
    double worst = 0;
    for (int k = 0; k < 2 * B * N; k++) {
        float *v = k < B * N ? &m[k] : &lv[k - B * N];
        const float an = k < B * N ? dmean[k] : dlogvar[k - B * N];
        const float old = *v, hh = 1e-3f;
        *v = old + hh;
        const double Lp = dfn_kl_standard_normal(NULL, NULL, m, lv, B, N, 1.0);
        *v = old - hh;
        const double Lm = dfn_kl_standard_normal(NULL, NULL, m, lv, B, N, 1.0);
        *v = old;
        const double fdv = scale * (Lp - Lm) / ((double)(old + hh) - (double)(old - hh));
        worst = fmax(worst, fabs(fdv - an) / fmax(fabs(fdv), 1e-3));
    }
    printf("  gradient vs central differences: worst rel err %.2e (tol 1e-4)\n", worst);
    CHECK(worst <= 1e-4, "KL gradient off by %.3e relative", worst);
    /* either output may be NULL, the other unchanged */
    for (int i = 0; i < B * N; i++) dm2[i] = NAN;
    dfn_kl_standard_normal(dm2, NULL, mean, logvar, B, N, scale);
    CHECK(!memcmp(dm2, dmean, sizeof dm2), "dmean with dlogvar NULL differs");
    for (int i = 0; i < B * N; i++) dm2[i] = NAN;
    dfn_kl_standard_normal(NULL, dm2, mean, logvar, B, N, scale);
    CHECK(!memcmp(dm2, dlogvar, sizeof dm2), "dlogvar with dmean NULL differs");
    /* the prior itself: KL 0, gradient 0 */
    const float zeros[B * N] = {0};
    CHECK(dfn_kl_standard_normal(dm2, NULL, zeros, zeros, B, N, 1.0) == 0.0 && dm2[0] == 0.0f,
          "KL(N(0, I) || N(0, I)) != 0");
}

/* ------------------------------------------------------------ 4. the logvar clamp */

static void test_clamp(void) {
    printf("logvar clamp to [-30, 20]\n");
    dfn_model_config cfg = tiny_config(0.0f);
    dfn_model *m;
    if (dfn_model_new(&m, &cfg, 5) != DFN_OK) {
        CHECK(0, "tiny autoencoder: %s", dfn_last_error());
        return;
    }
    const int B = 2, z = cfg.autoencoder.latent_channels; /* 3 */
    const size_t D = dfn_model_input_size(m), L = dfn_autoencoder_latent_size(m), hw = L / z;
    const int wi = dfn_model_find_tensor(m, "quant_conv.weight"), bi = dfn_model_find_tensor(m, "quant_conv.bias");
    if (wi < 0 || bi < 0) {
        CHECK(0, "no quant_conv.weight / quant_conv.bias");
        dfn_model_free(m);
        return;
    }
    float *params = dfn_model_params(m);
    float *W = params + dfn_model_tensor_offset(m, wi), *bias = params + dfn_model_tensor_offset(m, bi);
    /* quant_conv (2z, 2z, 1, 1): the logvar rows z..2z-1 constant: 25, -35, 1.5 */
    const float raw[3] = {25.0f, -35.0f, 1.5f}, want[3] = {20.0f, -30.0f, 1.5f};
    for (int c = 0; c < z; c++) {
        for (int k = 0; k < 2 * z; k++) W[(size_t)(z + c) * 2 * z + k] = 0.0f;
        bias[z + c] = raw[c];
    }
    float *x = falloc(B * D), *R = falloc(B * D), *rec = falloc(B * D), *dx = falloc(B * D);
    float *zero = falloc(B * D);
    float *mean = falloc(B * L), *logvar = falloc(B * L), *dmean = falloc(B * L), *dlogvar = falloc(B * L);
    fill_uniform(x, B * D, 31);
    fill_uniform(R, B * D, 32);
    dfn_autoencoder_encode(m, mean, logvar, x, B);
    int exact = 1;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < z; c++)
            for (size_t i = 0; i < hw; i++) exact &= logvar[(size_t)b * L + c * hw + i] == want[c];
    CHECK(exact, "logvar of moments 25, -35, 1.5 is not 20, -30, 1.5 (first: %g %g %g)", logvar[0],
          logvar[hw], logvar[2 * hw]);

    const float *g = dfn_model_grads(m);
    const float *gW = g + dfn_model_tensor_offset(m, wi), *gb = g + dfn_model_tensor_offset(m, bi);
    for (int mode = DFN_TRAIN; mode <= DFN_EVAL_GRAD; mode++) {
        /* training: reconstruction + KL, through eps exp(logvar / 2) too; eval_grad:
         * the KL term alone, whose gradient on logvar is scale (exp(logvar) - 1) / 2 / B */
        const int train = mode == DFN_TRAIN;
        dfn_rng rng = dfn_rng_init(8);
        dfn_model_forward(m, rec, x, NULL, NULL, B, mode, &rng);
        const float *pm, *pl;
        dfn_autoencoder_posterior(m, &pm, &pl);
        const double kl = dfn_kl_standard_normal(dmean, dlogvar, pm, pl, B, L, 1.0);
        dfn_model_zero_grad(m);
        dfn_autoencoder_backward(m, train ? R : zero, dmean, dlogvar, dx);
        int zero = 1, finite = isfinite(kl);
        for (size_t i = 0; i < dfn_model_num_params(m); i++) finite &= isfinite(g[i]);
        for (int c = 0; c < 2; c++) { /* the clamped channels */
            zero &= gb[z + c] == 0.0f;
            for (int k = 0; k < 2 * z; k++) zero &= gW[(size_t)(z + c) * 2 * z + k] == 0.0f;
        }
        CHECK(finite, "%s: a gradient or the KL is not finite", train ? "training" : "eval_grad");
        CHECK(zero, "%s: a gradient crossed the clamp (bias grads %g %g, dlogvar %g %g)",
              train ? "training" : "eval_grad", gb[z], gb[z + 1], dlogvar[0], dlogvar[hw]);
        CHECK(gb[z + 2] != 0.0f, "%s: no gradient on the unclamped logvar channel", train ? "training" : "eval_grad");
        if (!train) { /* exactly the KL term's, summed over the B hw values */
            const double expect = (double)hw * 0.5 * (exp(1.5) - 1.0);
            CHECK(fabs(gb[z + 2] - expect) <= 1e-5 * expect, "unclamped logvar bias gradient %.8g, expected %.8g",
                  gb[z + 2], expect);
        }
        printf("  %-9s KL %.4g, dlogvar at 20: %.3g, at -30: %.3g; quant_conv.bias grads (logvar) %g %g %.6g\n",
               train ? "training" : "eval_grad", kl, dlogvar[0], dlogvar[hw], gb[z], gb[z + 1], gb[z + 2]);
    }
    free(x); free(R); free(rec); free(dx); free(zero); free(mean); free(logvar); free(dmean); free(dlogvar);
    dfn_model_free(m);
}

/* ------------------------------------------------------------ config and shapes */

/* Parameters of an autoencoder, counted from its architecture (torch_twin.py's
 * AutoencoderKL, LDM's layout) without looking at the C tensor table. */
static size_t conv_params(size_t cin, size_t cout, size_t k) { return cout * cin * k * k + cout; }
static size_t res_params(size_t cin, size_t cout) {
    return 2 * cin + conv_params(cin, cout, 3) + 2 * cout + conv_params(cout, cout, 3) +
           (cin != cout ? conv_params(cin, cout, 1) : 0);
}
static size_t mid_params(size_t c) { return 2 * res_params(c, c) + 2 * c + 4 * conv_params(c, c, 1); }
static size_t architecture_params(const dfn_autoencoder_config *a) {
    const size_t z = a->latent_channels, top = a->n_levels - 1;
    size_t n = conv_params(a->in_channels, a->channels, 3), c = a->channels;
    for (int l = 0; l < a->n_levels; l++) { /* encoder */
        for (int i = 0; i < a->num_res_blocks; i++, c = (size_t)a->channels * a->ch_mult[l])
            n += res_params(c, (size_t)a->channels * a->ch_mult[l]);
        if ((size_t)l != top) n += conv_params(c, c, 3);
    }
    n += mid_params(c) + 2 * c + conv_params(c, 2 * z, 3);
    n += conv_params(2 * z, 2 * z, 1) + conv_params(z, z, 1); /* quant_conv, post_quant_conv */
    c = (size_t)a->channels * a->ch_mult[top];
    n += conv_params(z, c, 3) + mid_params(c); /* decoder */
    for (int l = (int)top; l >= 0; l--) {
        for (int i = 0; i <= a->num_res_blocks; i++, c = (size_t)a->channels * a->ch_mult[l])
            n += res_params(c, (size_t)a->channels * a->ch_mult[l]);
        if (l != 0) n += conv_params(c, c, 3);
    }
    return n + 2 * c + conv_params(c, a->in_channels, 3);
}

/* The sum of the tensor table's sizes (the flat array may pad between tensors). */
static size_t table_params(const dfn_model *m) {
    size_t count = 0;
    for (int t = 0; t < dfn_model_num_tensors(m); t++) {
        int shape[4], nd = dfn_model_tensor_shape(m, t, shape);
        size_t k = 1;
        for (int d = 0; d < nd; d++) k *= shape[d];
        count += k;
    }
    return count;
}

static void test_defaults(void) {
    printf("defaults and shapes\n");
    /* the twin's count for LDM's layout at (1, 2, 4):
     * /usr/bin/python3 scripts/torch_twin.py '{"kind":"autoencoder","ch_mult":[1,2,4]}' */
    dfn_model_config c;
    dfn_model_config_init(&c, DFN_MODEL_AUTOENCODER);
    c.autoencoder.n_levels = 3;
    c.autoencoder.ch_mult[0] = 1, c.autoencoder.ch_mult[1] = 2, c.autoencoder.ch_mult[2] = 4;
    CHECK(architecture_params(&c.autoencoder) == 2700933, "the count of (1, 2, 4) is %zu, the twin's 2,700,933",
          architecture_params(&c.autoencoder));
    for (int k = 0; k < 3; k++) {
        dfn_model_config_init(&c, DFN_MODEL_AUTOENCODER); /* k = 0: the defaults */
        if (k == 1) c = tiny_config(0.1f);
        if (k == 2) { /* odd latents (12 -> 6 -> 3), 3 blocks, channels shrinking */
            c.autoencoder.resolution = 12, c.autoencoder.channels = 6, c.autoencoder.ch_mult[1] = 2;
            c.autoencoder.ch_mult[2] = 1, c.autoencoder.num_res_blocks = 3, c.autoencoder.groups = 3;
        }
        dfn_model *m;
        if (dfn_model_new(&m, &c, 1) != DFN_OK) {
            CHECK(0, "autoencoder %d: %s", k, dfn_last_error());
            continue;
        }
        const dfn_autoencoder_config *a = &c.autoencoder;
        const int lres = a->resolution >> (a->n_levels - 1);
        int dims[3];
        CHECK(dfn_autoencoder_latent_shape(m, dims) == 3 && dims[0] == a->latent_channels && dims[1] == lres &&
                  dims[2] == lres && dfn_autoencoder_latent_size(m) == (size_t)dims[0] * lres * lres,
              "latents %d x %d x %d, expected %d x %d x %d", dims[0], dims[1], dims[2], a->latent_channels, lres,
              lres);
        CHECK(table_params(m) == architecture_params(a), "autoencoder %d: %zu parameters in the table, %zu by the "
              "architecture", k, table_params(m), architecture_params(a));
        CHECK(dfn_model_input_size(m) == (size_t)a->in_channels * a->resolution * a->resolution &&
                  dfn_model_output_size(m) == dfn_model_input_size(m) && !dfn_model_takes_time(m) &&
                  !dfn_model_is_denoiser(m),
              "an autoencoder maps images to images, without time, and denoises nothing");
        char *json = dfn_model_config_to_json(&c);
        dfn_model_config back;
        const dfn_autoencoder_config *r = &back.autoencoder;
        int same = json && dfn_model_config_from_json(&back, json) == DFN_OK &&
                   back.kind == DFN_MODEL_AUTOENCODER && r->in_channels == a->in_channels &&
                   r->resolution == a->resolution && r->channels == a->channels && r->n_levels == a->n_levels &&
                   r->num_res_blocks == a->num_res_blocks && r->latent_channels == a->latent_channels &&
                   r->groups == a->groups && r->norm_eps == a->norm_eps && back.dropout == c.dropout;
        for (int l = 0; same && l < a->n_levels; l++) same = r->ch_mult[l] == a->ch_mult[l];
        CHECK(same, "config JSON round trip: %s", json ? json : "(null)");
        printf("  %s: %zu parameters, latents %dx%dx%d\n", json ? json : "(null)", table_params(m), dims[0],
               dims[1], dims[2]);
        free(json);
        dfn_model_free(m);
    }
}

int main(void) {
    /* The nets here are tiny: a forward is well under a millisecond of work, and
     * with several threads the thousands of parallel regions of the ~1000
     * forwards cost more than the work (seconds, when another process holds a
     * core). One thread, except for the threads check in test_reference. */
    default_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    test_defaults();
    test_reference();
    test_finite_differences();
    test_kl();
    test_clamp();
    TEST_MAIN_END();
}

/* test_fid.c - Frechet distance against closed forms, feature statistics,
 * FID and KID on feature sets and on image sets through a classifier, and
 * every bad input. */
#include <stdint.h>

#include "core/core.h"
#include "diffusion.h"
#include "test_util.h"

/* ------------------------------------------------------------ helpers */

/* A random orthogonal d x d matrix: Gram-Schmidt on uniform columns, double. */
static void random_orthogonal(double *q, int d, unsigned seed) {
    float *u = dfn_malloc((size_t)d * d * sizeof(float));
    fill_uniform(u, (size_t)d * d, seed);
    for (int j = 0; j < d; j++) { /* column j */
        for (int i = 0; i < d; i++) q[i * d + j] = u[i * d + j];
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < j; k++) {
                double dp = 0;
                for (int i = 0; i < d; i++) dp += q[i * d + j] * q[i * d + k];
                for (int i = 0; i < d; i++) q[i * d + j] -= dp * q[i * d + k];
            }
        double nrm = 0;
        for (int i = 0; i < d; i++) nrm += q[i * d + j] * q[i * d + j];
        nrm = sqrt(nrm);
        for (int i = 0; i < d; i++) q[i * d + j] /= nrm;
    }
    free(u);
}

/* s = Q diag(e) Q^T */
static void spd_from(double *s, const double *q, const double *e, int d) {
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++) {
            double v = 0;
            for (int k = 0; k < d; k++) v += q[i * d + k] * e[k] * q[j * d + k];
            s[i * d + j] = v;
        }
}

static double relerr(double got, double want) {
    return fabs(got - want) / fmax(fabs(want), 1e-300);
}

/* n Gaussian vectors of dimension d: mean + scale[k] * z_k (float). */
static float *gaussian(size_t n, int d, double mean, const double *scale, uint64_t seed) {
    float *x = dfn_malloc(n * (size_t)d * sizeof(float));
    dfn_rng rng = dfn_rng_init(seed);
    dfn_rng_normal(&rng, x, n * (size_t)d);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < d; k++)
            x[i * d + k] = (float)(mean + (scale ? scale[k] : 1.0) * x[i * d + k]);
    return x;
}

/* ------------------------------------------------------------ closed forms */

static void test_frechet_closed_forms(void) {
    const int d = 16;
    double *q = dfn_malloc(d * d * sizeof(double)), *s1 = dfn_malloc(d * d * sizeof(double));
    double *s2 = dfn_malloc(d * d * sizeof(double));
    double mu1[16], mu2[16], e1[16], e2[16], out = -1;
    random_orthogonal(q, d, 3);
    for (int k = 0; k < d; k++) {
        e1[k] = 0.1 + 0.2 * k;
        e2[k] = 2.0 / (1 + k);
        mu1[k] = 0.1 * k;
        mu2[k] = -0.05 * k + 0.3;
    }
    spd_from(s1, q, e1, d);
    /* identical Gaussians */
    CHECK(dfn_frechet_distance(&out, mu1, s1, mu1, s1, d) == DFN_OK, "%s", dfn_last_error());
    double tr1 = 0;
    for (int k = 0; k < d; k++) tr1 += e1[k];
    printf("  identical Gaussians: d^2 = %.3e (trace %.1f)\n", out, tr1);
    CHECK(out >= 0 && out < 1e-10 * tr1, "identical Gaussians: d^2 = %g", out);
    /* commuting covariances (same eigenvectors): (S1 S2)^(1/2) = Q diag(sqrt(e1 e2)) Q^T,
     * so d^2 = |mu1 - mu2|^2 + sum (sqrt e1 - sqrt e2)^2 */
    spd_from(s2, q, e2, d);
    double want = 0;
    for (int k = 0; k < d; k++) {
        want += (mu1[k] - mu2[k]) * (mu1[k] - mu2[k]);
        want += (sqrt(e1[k]) - sqrt(e2[k])) * (sqrt(e1[k]) - sqrt(e2[k]));
    }
    CHECK(dfn_frechet_distance(&out, mu1, s1, mu2, s2, d) == DFN_OK, "%s", dfn_last_error());
    printf("  commuting covariances (d=16): d^2 = %.12g, closed form %.12g, rel err %.1e\n", out,
           want, relerr(out, want));
    CHECK(relerr(out, want) < 1e-6, "commuting: %.15g vs %.15g", out, want);
    /* symmetric in its arguments */
    double back = -1;
    dfn_frechet_distance(&back, mu2, s2, mu1, s1, d);
    CHECK(relerr(back, want) < 1e-6, "swapped: %.15g vs %.15g", back, want);
    /* diagonal covariances */
    double a[3 * 3] = {4, 0, 0, 0, 1, 0, 0, 0, 0.25}, b[3 * 3] = {1, 0, 0, 0, 9, 0, 0, 0, 0.25};
    double m1[3] = {0, 0, 0}, m2[3] = {1, 2, 2};
    /* 9 + (2-1)^2 + (1-3)^2 + 0 = 14 */
    CHECK(dfn_frechet_distance(&out, m1, a, m2, b, 3) == DFN_OK && relerr(out, 14.0) < 1e-12,
          "diagonal: %.15g vs 14", out);
    /* non-commuting 2 x 2: S1 S2 has positive eigenvalues l1, l2, so
     * tr (S1 S2)^(1/2) = sqrt(l1) + sqrt(l2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)) */
    double A[4] = {2.0, 0.7, 0.7, 1.0}, Bm[4] = {0.5, -0.2, -0.2, 3.0}, z[2] = {0, 0};
    double tr12 = A[0] * Bm[0] + A[1] * Bm[2] + A[2] * Bm[1] + A[3] * Bm[3];
    double detA = A[0] * A[3] - A[1] * A[2], detB = Bm[0] * Bm[3] - Bm[1] * Bm[2];
    double root = sqrt(tr12 + 2 * sqrt(detA * detB));
    want = (A[0] + A[3]) + (Bm[0] + Bm[3]) - 2 * root;
    CHECK(dfn_frechet_distance(&out, z, A, z, Bm, 2) == DFN_OK, "%s", dfn_last_error());
    printf("  non-commuting 2x2: d^2 = %.15g, closed form %.15g, rel err %.1e\n", out, want,
           relerr(out, want));
    CHECK(relerr(out, want) < 1e-6, "2x2: %.15g vs %.15g", out, want);
    /* a singular covariance (rank 1 of 2) still works: S1 = diag(1, 0), S2 = I:
     * tr (S1 S2)^(1/2) = 1, d^2 = 1 + 2 - 2 = 1 */
    double sing[4] = {1, 0, 0, 0}, eye[4] = {1, 0, 0, 1};
    CHECK(dfn_frechet_distance(&out, z, sing, z, eye, 2) == DFN_OK && relerr(out, 1.0) < 1e-6,
          "singular: %.15g vs 1", out);
    /* non-finite input */
    s2[5] = NAN;
    CHECK(dfn_frechet_distance(&out, mu1, s1, mu2, s2, d) == DFN_ERR_NUMERIC,
          "NaN covariance accepted");
    free(q), free(s1), free(s2);
}

/* ------------------------------------------------------------ statistics, FID of features */

static void test_feature_stats_and_fid(void) {
    const int d = 4;
    const size_t n = 500;
    float *f = gaussian(n, d, 0.5, NULL, 1);
    double mean[4], cov[16];
    CHECK(dfn_feature_stats(mean, cov, f, n, d) == DFN_OK, "%s", dfn_last_error());
    double worst = 0;
    for (int i = 0; i < d; i++) {
        double m = 0;
        for (size_t k = 0; k < n; k++) m += f[k * d + i];
        m /= n;
        worst = fmax(worst, fabs(m - mean[i]));
        for (int j = 0; j < d; j++) {
            double mj = 0, c = 0;
            for (size_t k = 0; k < n; k++) mj += f[k * d + j];
            mj /= n;
            for (size_t k = 0; k < n; k++) c += (f[k * d + i] - m) * (f[k * d + j] - mj);
            worst = fmax(worst, fabs(c / (n - 1) - cov[i * d + j]));
        }
    }
    CHECK(worst < 1e-12, "feature stats off by %g", worst);
    CHECK(dfn_feature_stats(mean, cov, f, 1, d) == DFN_ERR_ARG, "n = 1 accepted");
    free(f);

    /* a set against itself; two Gaussian sets: FID ~ |mu1 - mu2|^2 + sum (s1 - s2)^2 */
    const int D = 8;
    const size_t N = 4000;
    double sc[8];
    for (int k = 0; k < D; k++) sc[k] = 1.0 + 0.25 * k;
    float *a = gaussian(N, D, 0.0, NULL, 2), *b = gaussian(N, D, 0.5, sc, 3);
    double fid = -1;
    CHECK(dfn_fid_features(&fid, a, N, a, N, D) == DFN_OK, "%s", dfn_last_error());
    printf("  FID of a feature set against itself: %.3e\n", fid);
    CHECK(fid >= 0 && fid < 1e-9, "self FID %g", fid);
    double want = 0;
    for (int k = 0; k < D; k++) want += 0.25 + (sc[k] - 1) * (sc[k] - 1);
    CHECK(dfn_fid_features(&fid, a, N, b, N, D) == DFN_OK, "%s", dfn_last_error());
    printf("  FID of N(0, I) vs N(0.5, diag s^2) samples (n=%zu, d=%d): %.4f, population %.4f\n", N,
           D, fid, want);
    CHECK(fabs(fid - want) < 0.1 * want, "FID %g, population value %g", fid, want);
    /* too few samples */
    CHECK(dfn_fid_features(&fid, a, (size_t)D, b, N, D) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "FID needs at least D+1 = 9 samples per set, got 8"),
          "too few: %s", dfn_last_error());
    a[3 * D + 2] = INFINITY;
    CHECK(dfn_fid_features(&fid, a, N, b, N, D) == DFN_ERR_NUMERIC &&
              strstr(dfn_last_error(), "vector 3"),
          "inf feature: %s", dfn_last_error());
    free(a), free(b);
}

/* ------------------------------------------------------------ KID */

/* Unbiased MMD^2 with the cubic kernel over whole sets of equal size, directly. */
static double mmd_direct(const float *x, const float *y, int m, int d) {
    double kxx = 0, kyy = 0, kxy = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            double dxx = 0, dyy = 0, dxy = 0;
            for (int k = 0; k < d; k++) {
                dxx += (double)x[i * d + k] * x[j * d + k];
                dyy += (double)y[i * d + k] * y[j * d + k];
                dxy += (double)x[i * d + k] * y[j * d + k];
            }
            if (i != j) kxx += pow(dxx / d + 1, 3), kyy += pow(dyy / d + 1, 3);
            kxy += pow(dxy / d + 1, 3);
        }
    return (kxx + kyy) / ((double)m * (m - 1)) - 2 * kxy / ((double)m * m);
}

static void test_kid(void) {
    const int D = 8;
    const size_t N = 600;
    double sc[8];
    for (int k = 0; k < D; k++) sc[k] = 1.5;
    float *a = gaussian(N, D, 0.0, NULL, 5), *a2 = gaussian(N, D, 0.0, NULL, 6);
    float *b = gaussian(N, D, 0.3, sc, 7);
    dfn_kid_params p = dfn_kid_params_init();
    p.subset_size = 200;
    p.subsets = 20;
    double same = 0, same_sd = 0, diff = 0, diff_sd = 0;
    CHECK(dfn_kid_features(&same, &same_sd, a, N, a2, N, D, &p) == DFN_OK, "%s", dfn_last_error());
    CHECK(dfn_kid_features(&diff, &diff_sd, a, N, b, N, D, &p) == DFN_OK, "%s", dfn_last_error());
    printf("  KID same distribution %.5f +- %.5f, different %.5f +- %.5f\n", same, same_sd, diff,
           diff_sd);
    CHECK(fabs(same) < 3 * same_sd + 1e-3, "KID of one distribution %g +- %g", same, same_sd);
    CHECK(diff > 10 * fabs(same) && diff > 5 * diff_sd, "KID of different distributions %g", diff);
    /* the whole set as one subset: the estimator is invariant to the order drawn */
    const int m = 50;
    p.subset_size = m;
    p.subsets = 3;
    double mean = 0, sd = 1;
    CHECK(dfn_kid_features(&mean, &sd, a, m, b, m, D, &p) == DFN_OK, "%s", dfn_last_error());
    double want = mmd_direct(a, b, m, D);
    CHECK(relerr(mean, want) < 1e-9 && sd < 1e-9 * fabs(want), "KID %.15g vs direct %.15g (sd %g)",
          mean, want, sd);
    /* thread count does not change the bits */
    p.subset_size = 100;
    p.subsets = 8;
    double k1, s1, k2, s2;
    dfn_set_threads(1);
    dfn_kid_features(&k1, &s1, a, N, b, N, D, &p);
    dfn_set_threads(2);
    dfn_kid_features(&k2, &s2, a, N, b, N, D, &p);
    CHECK(!memcmp(&k1, &k2, sizeof k1) && !memcmp(&s1, &s2, sizeof s1),
          "KID differs between 1 and 2 threads");
    /* another seed draws other subsets */
    p.seed = 1;
    dfn_kid_features(&k2, &s2, a, N, b, N, D, &p);
    CHECK(k1 != k2, "the seed does not change the draws");
    /* bad inputs */
    CHECK(dfn_kid_features(&mean, NULL, a, 1, b, N, D, &p) == DFN_ERR_ARG, "n = 1 accepted");
    p.subset_size = 1;
    CHECK(dfn_kid_features(&mean, NULL, a, N, b, N, D, &p) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "subset size"),
          "subset 1: %s", dfn_last_error());
    p.subset_size = 10;
    b[7] = NAN;
    CHECK(dfn_kid_features(&mean, NULL, a, N, b, N, D, &p) == DFN_ERR_NUMERIC, "NaN accepted");
    free(a), free(a2), free(b);
}

/* ------------------------------------------------------------ image sets */

static dfn_dataset *images(size_t n, int c, int s, float level, uint64_t seed) {
    int dims[3] = {c, s, s};
    dfn_dataset *ds = NULL;
    if (dfn_dataset_new(&ds, n, 3, dims, 0) != DFN_OK) return NULL;
    float *x = dfn_dataset_data(ds);
    dfn_rng rng = dfn_rng_init(seed);
    size_t total = n * (size_t)c * s * s;
    dfn_rng_normal(&rng, x, total);
    for (size_t i = 0; i < total; i++) x[i] = level + 0.4f * x[i];
    return ds;
}

static void test_image_sets(void) {
    dfn_model_config cfg;
    dfn_model_config_init(&cfg, DFN_MODEL_CLASSIFIER);
    cfg.num_classes = 3;
    cfg.classifier.height = cfg.classifier.width = 8;
    cfg.classifier.channels = 8;
    cfg.classifier.groups = 4;
    cfg.classifier.feature_dim = 8;
    dfn_model *c = NULL;
    CHECK(dfn_model_new(&c, &cfg, 1) == DFN_OK, "%s", dfn_last_error());
    dfn_dataset *ref = images(300, 1, 8, -0.5f, 1), *same = images(300, 1, 8, -0.5f, 2);
    dfn_dataset *other = images(300, 1, 8, 0.3f, 3);
    double fid_self = -1, fid_same = -1, fid_other = -1;
    CHECK(dfn_fid(&fid_self, c, ref, ref) == DFN_OK, "%s", dfn_last_error());
    CHECK(dfn_fid(&fid_same, c, same, ref) == DFN_OK, "%s", dfn_last_error());
    CHECK(dfn_fid(&fid_other, c, other, ref) == DFN_OK, "%s", dfn_last_error());
    printf("  image FID: self %.2e, same distribution %.4f, other %.4f\n", fid_self, fid_same,
           fid_other);
    CHECK(fid_self < 1e-9, "FID of a set against itself %g", fid_self);
    CHECK(fid_other > 10 * fid_same, "FID does not separate (%g vs %g)", fid_other, fid_same);
    double kid_same, kid_other, sd;
    dfn_kid_params kp = dfn_kid_params_init();
    kp.subsets = 10;
    CHECK(dfn_kid(&kid_same, &sd, c, same, ref, &kp) == DFN_OK, "%s", dfn_last_error());
    CHECK(dfn_kid(&kid_other, &sd, c, other, ref, &kp) == DFN_OK, "%s", dfn_last_error());
    printf("  image KID: same distribution %.5f, other %.5f\n", kid_same, kid_other);
    CHECK(kid_other > 10 * fabs(kid_same) && kid_other > 0, "KID does not separate");

    /* one reference, many sets: the same bits as dfn_fid and dfn_kid */
    {
        dfn_feature_ref *r = NULL;
        double f1 = -1, f2 = -1, k1 = -1, k2 = -1, s1 = -1, s2 = -1;
        CHECK(dfn_feature_ref_new(&r, c, ref) == DFN_OK && dfn_feature_ref_count(r) == 300, "%s",
              dfn_last_error());
        CHECK(dfn_feature_ref_fid(r, other, &f1) == DFN_OK && f1 == fid_other, "feature_ref FID %.17g vs %.17g", f1,
              fid_other);
        CHECK(dfn_feature_ref_fid(r, same, &f2) == DFN_OK && f2 == fid_same, "feature_ref FID %.17g vs %.17g", f2,
              fid_same);
        CHECK(dfn_feature_ref_kid(r, other, &kp, &k1, &s1) == DFN_OK &&
                  dfn_kid(&k2, &s2, c, other, ref, &kp) == DFN_OK && k1 == k2 && s1 == s2,
              "feature_ref KID %.17g vs %.17g", k1, k2);
        dfn_dataset *few5 = images(5, 1, 8, 0, 6);
        CHECK(dfn_feature_ref_fid(r, few5, &f1) == DFN_ERR_ARG && strstr(dfn_last_error(), "D+1 = 9"),
              "feature_ref few: %s", dfn_last_error());
        dfn_dataset_free(few5);
        dfn_feature_ref_free(r);
        dfn_dataset *few8 = images(8, 1, 8, 0, 6);
        CHECK(dfn_feature_ref_new(&r, c, few8) == DFN_ERR_ARG && !r, "a reference of 8 images accepted");
        dfn_dataset_free(few8);
    }

    double out;
    /* sets of different shapes */
    dfn_dataset *rgb = images(300, 3, 8, 0, 4), *big = images(300, 1, 16, 0, 5);
    CHECK(dfn_fid(&out, c, rgb, ref) == DFN_ERR_ARG && strstr(dfn_last_error(), "3x8x8") &&
              strstr(dfn_last_error(), "1x8x8") && strstr(dfn_last_error(), "same shape"),
          "shapes: %s", dfn_last_error());
    /* images the classifier was not built for */
    CHECK(dfn_fid(&out, c, big, big) == DFN_ERR_ARG && strstr(dfn_last_error(), "classifier"),
          "classifier shape: %s", dfn_last_error());
    CHECK(dfn_kid(&out, NULL, c, big, big, NULL) == DFN_ERR_ARG, "kid classifier shape");
    /* too few */
    dfn_dataset *few = images(5, 1, 8, 0, 6);
    CHECK(dfn_fid(&out, c, few, ref) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "FID needs at least D+1 = 9 samples per set, got 5") &&
              strstr(dfn_last_error(), "samples"),
          "few: %s", dfn_last_error());
    /* vectors */
    int vd[1] = {64};
    dfn_dataset *vec = NULL, *vec2 = NULL;
    dfn_dataset_new(&vec, 300, 1, vd, 0);
    dfn_dataset_new(&vec2, 300, 1, vd, 0);
    CHECK(dfn_fid(&out, c, vec, vec2) == DFN_ERR_ARG && strstr(dfn_last_error(), "vectors"),
          "vectors: %s", dfn_last_error());
    /* non-finite pixels */
    dfn_dataset_data(same)[3 * 64 + 10] = NAN;
    CHECK(dfn_fid(&out, c, same, ref) == DFN_ERR_NUMERIC &&
              strstr(dfn_last_error(), "samples: image 3, element 10"),
          "NaN: %s", dfn_last_error());
    CHECK(dfn_kid(&out, NULL, c, ref, same, NULL) == DFN_ERR_NUMERIC &&
              strstr(dfn_last_error(), "reference set: image 3"),
          "NaN kid: %s", dfn_last_error());
    dfn_dataset_free(ref), dfn_dataset_free(same), dfn_dataset_free(other);
    dfn_dataset_free(rgb), dfn_dataset_free(big), dfn_dataset_free(few);
    dfn_dataset_free(vec), dfn_dataset_free(vec2);
    dfn_model_free(c);
}

/* ------------------------------------------------------------ degradations */

static void test_degradations(void) {
    enum { N = 3, C = 2, H = 9, W = 7 };
    const size_t n = (size_t)N * C * H * W;
    float *x = dfn_malloc(n * sizeof(float)), *y = dfn_malloc(n * sizeof(float));
    /* blur: a constant image stays; a point spreads into the normalised 2-D
     * Gaussian (separable), symmetric about it; the total is kept away from
     * the borders */
    for (size_t i = 0; i < n; i++) x[i] = 0.25f;
    CHECK(dfn_degrade_images(x, N, C, H, W, "blur:1", 0) == DFN_OK, "%s", dfn_last_error());
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(x[i] - 0.25));
    CHECK(worst < 1e-6, "blur changes a constant image by %g", worst);
    memset(x, 0, n * sizeof(float));
    x[(size_t)1 * H * W + 4 * W + 3] = 1; /* image 0, channel 1, the centre */
    CHECK(dfn_degrade_images(x, N, C, H, W, "blur:0.8", 0) == DFN_OK, "%s", dfn_last_error());
    const float *p = x + (size_t)H * W;
    double total = 0, g1 = 0;
    for (int j = -3; j <= 3; j++) g1 += exp(-0.5 * j * j / 0.64);
    for (int i = 0; i < H * W; i++) total += p[i];
    const double want_c = 1 / (g1 * g1), want_d = exp(-0.5 * 2 / 0.64) / (g1 * g1);
    CHECK(fabs(total - 1) < 1e-5 && fabs(p[4 * W + 3] - want_c) < 1e-6 &&
              fabs(p[3 * W + 2] - want_d) < 1e-6 && fabs(p[3 * W + 2] - p[5 * W + 4]) < 1e-7 &&
              fabs(p[4 * W + 2] - p[3 * W + 3]) < 1e-7, /* (mirrored sums, other orders) */
          "blur of a point: total %g, centre %g (want %g), diagonal %g (want %g)", total,
          p[4 * W + 3], want_c, p[3 * W + 2], want_d);
    for (int i = 0; i < H * W; i++) CHECK(x[i] == 0 && x[2 * H * W + i] == 0, "blur leaks across channels");
    /* noise: same seed, same bits; its spread is S; clamped to [-1, 1] */
    for (size_t i = 0; i < n; i++) x[i] = y[i] = 0;
    CHECK(dfn_degrade_images(x, N, C, H, W, "noise:0.1", 5) == DFN_OK &&
              dfn_degrade_images(y, N, C, H, W, "noise:0.1", 5) == DFN_OK && !memcmp(x, y, n * sizeof(float)),
          "noise not reproducible");
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    CHECK(fabs(sqrt(ss / n) - 0.1) < 0.01, "noise:0.1 has rms %g", sqrt(ss / n));
    for (size_t i = 0; i < n; i++) x[i] = 0.99f;
    dfn_degrade_images(x, N, C, H, W, "noise:0.5", 6);
    float lo = 1, hi = -1;
    for (size_t i = 0; i < n; i++) lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    CHECK(hi == 1.0f && lo >= -1.0f, "noise not clamped: [%g, %g]", lo, hi);
    /* pure noise: U(-1, 1), whatever the images were */
    dfn_degrade_images(x, N, C, H, W, "pure-noise", 7);
    double mean = 0;
    lo = 1, hi = -1;
    for (size_t i = 0; i < n; i++) mean += x[i], lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
    CHECK(lo >= -1 && hi <= 1 && hi - lo > 1.8 && fabs(mean / n) < 0.1, "pure noise: [%g, %g], mean %g", lo, hi,
          mean / n);
    const char *bad[] = {"blur", "blur:0", "blur:-1", "noise:x", "noise:0.1x", "swirl:1", "blur:nan"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(dfn_degrade_images(x, N, C, H, W, bad[i], 0) == DFN_ERR_ARG && strstr(dfn_last_error(), bad[i]),
              "degradation '%s' accepted: %s", bad[i], dfn_last_error());
    printf("  degradations: blur of a point = the normalised Gaussian, noise rms %.4f, pure noise in [%.3f, %.3f]\n",
           sqrt(ss / n), lo, hi);
    free(x), free(y);
}

int main(void) {
    test_degradations();
    test_frechet_closed_forms();
    test_feature_stats_and_fid();
    test_kid();
    test_image_sets();
    dfn_scratch_release();
    TEST_MAIN_END();
}

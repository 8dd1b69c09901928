/* test_data_gen.c - data generators (shapes, determinism across seeds and
 * thread counts, statistics against their definitions), preprocessing, the
 * train/validation split, and the batch iterator (each sample once per epoch,
 * fresh orders, bit-exact resume from a saved state). */
#include <stdint.h>

#include "diffusion.h"
#include "test_util.h"

#define PI 3.141592653589793

static int same_bytes(const dfn_dataset *a, const dfn_dataset *b) {
    if (dfn_dataset_count(a) != dfn_dataset_count(b) ||
        dfn_dataset_sample_size(a) != dfn_dataset_sample_size(b))
        return 0;
    size_t n = dfn_dataset_count(a) * dfn_dataset_sample_size(a);
    return !memcmp(dfn_dataset_sample(a, 0), dfn_dataset_sample(b, 0), n * sizeof(float));
}

/* ---------------------------------------------------------------- generators */

typedef dfn_status (*toy_fn)(dfn_dataset **, size_t, uint64_t);
static dfn_status toy_curves(dfn_dataset **o, size_t n, uint64_t s) {
    return dfn_dataset_curves(o, n, NULL, s);
}
static dfn_status toy_moons(dfn_dataset **o, size_t n, uint64_t s) {
    return dfn_dataset_two_moons(o, n, 0.1f, s);
}
static dfn_status toy_8g(dfn_dataset **o, size_t n, uint64_t s) {
    return dfn_dataset_eight_gaussians(o, n, 2.0f, 0.02f, s);
}
static dfn_status toy_roll(dfn_dataset **o, size_t n, uint64_t s) {
    return dfn_dataset_swiss_roll(o, n, 0.1f, s);
}
static dfn_status toy_board(dfn_dataset **o, size_t n, uint64_t s) {
    return dfn_dataset_checkerboard(o, n, s);
}

static void generators_are_deterministic_for_seeds_and_threads(void) {
    const struct {
        const char *name;
        toy_fn fn;
        int dim;
    } toys[] = {{"curves", toy_curves, 50}, {"moons", toy_moons, 2}, {"8gaussians", toy_8g, 2},
                {"swissroll", toy_roll, 2}, {"checkerboard", toy_board, 2}};
    int threads = dfn_get_threads();
    for (size_t t = 0; t < sizeof toys / sizeof toys[0]; t++) {
        /* 40000 samples: the rng fills run in parallel (more than 4096 blocks) */
        dfn_dataset *a = NULL, *b = NULL, *c = NULL, *d = NULL;
        dfn_set_threads(1);
        CHECK(toys[t].fn(&a, 40000, 7) == DFN_OK, "%s: %s", toys[t].name, dfn_last_error());
        dfn_set_threads(threads > 1 ? threads : 4);
        CHECK(toys[t].fn(&b, 40000, 7) == DFN_OK && toys[t].fn(&c, 40000, 8) == DFN_OK,
              "%s", toys[t].name);
        dfn_set_threads(threads);
        if (a && b && c) {
            int dims[3];
            CHECK(dfn_dataset_count(a) == 40000 && dfn_dataset_shape(a, dims) == 1 &&
                      dims[0] == toys[t].dim,
                  "%s: shape", toys[t].name);
            CHECK(same_bytes(a, b), "%s: same seed, 1 vs many threads: same bytes", toys[t].name);
            CHECK(!same_bytes(a, c), "%s: another seed gives other data", toys[t].name);
        }
        /* the same through the name table */
        CHECK(dfn_dataset_toy(&d, toys[t].name, 10, 3) == DFN_OK &&
                  dfn_dataset_sample_size(d) == (size_t)toys[t].dim,
              "dfn_dataset_toy(%s)", toys[t].name);
        CHECK(dfn_toy_from_name(toys[t].name) == (int)t && !strcmp(dfn_toy_name(t), toys[t].name),
              "toy name table");
        dfn_dataset_free(a);
        dfn_dataset_free(b);
        dfn_dataset_free(c);
        dfn_dataset_free(d);
    }
    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_toy(&ds, "spiral", 10, 1) == DFN_ERR_ARG && !ds &&
              strstr(dfn_last_error(), "unknown data set 'spiral'") &&
              strstr(dfn_last_error(), "8gaussians"),
          "unknown toy: %s", dfn_last_error());
    CHECK(dfn_dataset_two_moons(&ds, 0, 0.1f, 1) == DFN_ERR_ARG && !ds, "n = 0");
    CHECK(dfn_dataset_two_moons(&ds, 5, -1.0f, 1) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "noise"),
          "negative noise: %s", dfn_last_error());
}

static void curves_are_unit_scale_sums_of_sinusoids(void) {
    dfn_dataset *ds = NULL;
    dfn_curves_params p = dfn_curves_params_init();
    CHECK(p.dim == 50 && p.components == 3 && p.freq_min == 1 && p.freq_max == 5, "defaults");
    CHECK(dfn_dataset_curves(&ds, 5000, &p, 1) == DFN_OK, "%s", dfn_last_error());
    if (!ds) return;
    const float *x = dfn_dataset_data(ds);
    double s2 = 0, s = 0, bound = sqrt(2.0 * p.components) + 1e-5, worst = 0;
    size_t n = 5000 * 50;
    for (size_t i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
        worst = fmax(worst, fabs(x[i]));
    }
    double rms = sqrt(s2 / n);
    CHECK(rms > 0.85 && rms < 1.15, "curves: RMS %.3f, want about 1", rms);
    CHECK(fabs(s / n) < 0.05, "curves: mean %.3f, want about 0", s / n);
    CHECK(worst <= bound, "curves: max |x| %.3f exceeds sqrt(2K) = %.3f", worst, bound);
    /* smooth: neighbours differ by at most 2 pi f_max / 49 * sum |w| <= 2 pi 5/49 sqrt(6) */
    double step = 0, lim = 2 * PI * 5 / 49 * sqrt(6.0) + 1e-4;
    for (size_t i = 0; i < 5000; i++)
        for (int j = 0; j < 49; j++) step = fmax(step, fabs(x[i * 50 + j + 1] - x[i * 50 + j]));
    CHECK(step <= lim, "curves: largest step %.3f > %.3f", step, lim);
    /* one component at a fixed frequency is an exact sinusoid: its samples obey
     * x[j+1] + x[j-1] = 2 cos(2 pi f / 49) x[j] */
    dfn_dataset_free(ds);
    ds = NULL;
    p.components = 1;
    p.freq_min = p.freq_max = 3;
    CHECK(dfn_dataset_curves(&ds, 10, &p, 2) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        double c = 2 * cos(2 * PI * 3 / 49), err = 0;
        const float *y = dfn_dataset_sample(ds, 4);
        for (int j = 1; j < 49; j++) err = fmax(err, fabs(y[j + 1] + y[j - 1] - c * y[j]));
        CHECK(err < 1e-5, "single sinusoid recurrence error %.2e", err);
        double amp = 0;
        for (int j = 0; j < 50; j++) amp = fmax(amp, fabs(y[j]));
        CHECK(amp <= sqrt(2.0) + 1e-5 && amp > 1.2, "single sinusoid amplitude %.3f ~ sqrt 2", amp);
        dfn_dataset_free(ds);
        ds = NULL;
    }
    p.dim = 1;
    CHECK(dfn_dataset_curves(&ds, 10, &p, 2) == DFN_ERR_ARG && strstr(dfn_last_error(), "dim"),
          "dim 1 refused: %s", dfn_last_error());
}

static void eight_gaussians_have_their_means_and_weights(void) {
    size_t n = 80000;
    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_eight_gaussians(&ds, n, 2.0f, 0.02f, 11) == DFN_OK, "%s", dfn_last_error());
    if (!ds) return;
    CHECK(dfn_dataset_num_classes(ds) == 8, "8 classes");
    const float *x = dfn_dataset_data(ds);
    const int *y = dfn_dataset_labels(ds);
    double sum[8][2] = {{0}}, sq[8] = {0};
    size_t cnt[8] = {0};
    for (size_t i = 0; i < n; i++) {
        sum[y[i]][0] += x[2 * i];
        sum[y[i]][1] += x[2 * i + 1];
        cnt[y[i]]++;
    }
    for (size_t i = 0; i < n; i++) {
        int k = y[i];
        double dx = x[2 * i] - 2 * cos(2 * PI * k / 8), dy = x[2 * i + 1] - 2 * sin(2 * PI * k / 8);
        sq[k] += dx * dx + dy * dy;
    }
    for (int k = 0; k < 8; k++) {
        double p = 1.0 / 8, se = sqrt(p * (1 - p) / n), frac = (double)cnt[k] / n;
        CHECK(fabs(frac - p) < 5 * se, "component %d weight %.4f, want 0.125 +- %.4f", k, frac,
              5 * se);
        double mx = sum[k][0] / cnt[k], my = sum[k][1] / cnt[k];
        double tol = 5 * 0.02 / sqrt((double)cnt[k]);
        CHECK(fabs(mx - 2 * cos(2 * PI * k / 8)) < tol && fabs(my - 2 * sin(2 * PI * k / 8)) < tol,
              "component %d mean (%.4f, %.4f) off by more than %.1e", k, mx, my, tol);
        double sd = sqrt(sq[k] / (2.0 * cnt[k]));
        CHECK(fabs(sd - 0.02) < 0.02 * 0.05, "component %d std %.5f, want 0.02", k, sd);
    }
    dfn_dataset_free(ds);
}

static void moons_rolls_and_checkerboards_stay_in_their_bounds(void) {
    size_t n = 50001;
    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_two_moons(&ds, n, 0.0f, 5) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        const float *x = dfn_dataset_data(ds);
        const int *y = dfn_dataset_labels(ds);
        size_t upper = 0, off = 0;
        double my[2] = {0, 0}, mx[2] = {0, 0};
        for (size_t i = 0; i < n; i++) {
            upper += y[i] == 0;
            double cx = y[i] == 0 ? 0 : 1, cy = y[i] == 0 ? 0 : 0.5;
            double r = hypot(x[2 * i] - cx, x[2 * i + 1] - cy);
            int wrong_half = y[i] == 0 ? x[2 * i + 1] < -1e-6 : x[2 * i + 1] > 0.5 + 1e-6;
            off += fabs(r - 1) > 1e-5 || wrong_half;
            mx[y[i]] += x[2 * i];
            my[y[i]] += x[2 * i + 1];
        }
        CHECK(upper == (n + 1) / 2, "upper moon gets ceil(n/2): %zu", upper);
        CHECK(off == 0, "%zu noiseless moon points off their half circles", off);
        /* E[cos a] = 0 and E[sin a] = 2/pi for a ~ U(0, pi) */
        double se = 0.71 / sqrt(n / 2.0), mean_y = my[0] / upper, mean_x = mx[0] / upper;
        CHECK(fabs(mean_x) < 5 * se && fabs(mean_y - 2 / PI) < 5 * se,
              "upper moon mean (%.4f, %.4f), want (0, %.4f)", mean_x, mean_y, 2 / PI);
        dfn_dataset_free(ds);
        ds = NULL;
    }
    CHECK(dfn_dataset_two_moons(&ds, n, 0.1f, 5) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        const float *x = dfn_dataset_data(ds);
        size_t out = 0;
        for (size_t i = 0; i < n; i++)
            out += x[2 * i] < -1.6f || x[2 * i] > 2.6f || x[2 * i + 1] < -1.1f ||
                   x[2 * i + 1] > 1.6f;
        CHECK(out == 0, "%zu noisy moon points beyond 6 sigma of the arcs' box", out);
        dfn_dataset_free(ds);
        ds = NULL;
    }
    CHECK(dfn_dataset_swiss_roll(&ds, n, 0.0f, 5) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        const float *x = dfn_dataset_data(ds);
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            double r = hypot(x[2 * i], x[2 * i + 1]);
            off += r < 1.5 * PI / 5 - 1e-5 || r > 4.5 * PI / 5 + 1e-5;
        }
        CHECK(off == 0 && dfn_dataset_labels(ds) == NULL, "%zu roll points off radius range", off);
        dfn_dataset_free(ds);
        ds = NULL;
    }
    CHECK(dfn_dataset_checkerboard(&ds, 80000, 5) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        const float *x = dfn_dataset_data(ds);
        size_t off = 0, cnt[4][4] = {{0}};
        for (size_t i = 0; i < 80000; i++) {
            double a = x[2 * i], b = x[2 * i + 1];
            if (!(a >= -2 && a < 2 && b >= -2 && b < 2)) {
                off++;
                continue;
            }
            int c = (int)floor(a) + 2, r = (int)floor(b) + 2;
            off += (c + r) % 2 != 0;
            cnt[c][r]++;
        }
        CHECK(off == 0, "%zu checkerboard points on white squares or outside", off);
        double se = sqrt(0.125 * 0.875 / 80000);
        for (int c = 0; c < 4; c++)
            for (int r = (c % 2); r < 4; r += 2)
                CHECK(fabs(cnt[c][r] / 80000.0 - 0.125) < 5 * se, "square (%d,%d) share %.4f", c,
                      r, cnt[c][r] / 80000.0);
        dfn_dataset_free(ds);
    }
}

static void gaussian_mixture_matches_weights_means_and_covariances(void) {
    /* 2-D: a full-covariance component of weight 0.3 and an isotropic-looking one
     * given by its covariance too */
    const float w[2] = {3, 7}; /* normalised: 0.3, 0.7 */
    const float mu[4] = {-1, 2, 4, 0};
    const float cov[8] = {1.0f, 0.6f, 0.6f, 0.5f, 0.04f, 0, 0, 0.04f};
    dfn_mixture_params p = {.dim = 2, .components = 2, .weights = w, .means = mu, .covs = cov};
    size_t n = 100000;
    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_gaussian_mixture(&ds, n, &p, 3) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        const float *x = dfn_dataset_data(ds);
        const int *y = dfn_dataset_labels(ds);
        double cnt = 0, m[2] = {0, 0};
        for (size_t i = 0; i < n; i++)
            if (y[i] == 0) {
                cnt++;
                m[0] += x[2 * i];
                m[1] += x[2 * i + 1];
            }
        double frac = cnt / n, se = sqrt(0.3 * 0.7 / n);
        CHECK(fabs(frac - 0.3) < 5 * se, "weight of component 0: %.4f, want 0.3 +- %.4f", frac,
              5 * se);
        m[0] /= cnt;
        m[1] /= cnt;
        double c00 = 0, c01 = 0, c11 = 0;
        for (size_t i = 0; i < n; i++)
            if (y[i] == 0) {
                double a = x[2 * i] - m[0], b = x[2 * i + 1] - m[1];
                c00 += a * a, c01 += a * b, c11 += b * b;
            }
        c00 /= cnt, c01 /= cnt, c11 /= cnt;
        CHECK(fabs(m[0] + 1) < 5 * sqrt(1.0 / cnt) && fabs(m[1] - 2) < 5 * sqrt(0.5 / cnt),
              "component 0 mean (%.4f, %.4f)", m[0], m[1]);
        /* sample covariance entries have standard errors about sqrt(2/n_k) * scale */
        double tol = 5 * sqrt(2.0 / cnt);
        CHECK(fabs(c00 - 1.0) < tol && fabs(c01 - 0.6) < tol && fabs(c11 - 0.5) < tol,
              "component 0 covariance [[%.3f %.3f] [.. %.3f]], want [[1 0.6] [.. 0.5]]", c00, c01,
              c11);
        dfn_dataset_free(ds);
        ds = NULL;
    }
    /* 5-D, three isotropic components, equal weights */
    float mu5[15], sd[3] = {0.5f, 1.0f, 2.0f};
    for (int i = 0; i < 15; i++) mu5[i] = (float)(i / 5 * 10);
    dfn_mixture_params q = {.dim = 5, .components = 3, .means = mu5, .stds = sd};
    CHECK(dfn_dataset_gaussian_mixture(&ds, 30000, &q, 9) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        const float *x = dfn_dataset_data(ds);
        const int *y = dfn_dataset_labels(ds);
        double s2[3] = {0}, c[3] = {0};
        for (size_t i = 0; i < 30000; i++)
            for (int j = 0; j < 5; j++) {
                double d = x[i * 5 + j] - mu5[y[i] * 5];
                s2[y[i]] += d * d;
                c[y[i]] += 1.0 / 5;
            }
        for (int k = 0; k < 3; k++) {
            double sdk = sqrt(s2[k] / (5 * c[k]));
            CHECK(fabs(sdk / sd[k] - 1) < 0.03, "5-D component %d std %.3f, want %.1f", k, sdk,
                  sd[k]);
            CHECK(fabs(c[k] / 30000 - 1.0 / 3) < 5 * sqrt(2.0 / 9 / 30000), "equal weights");
        }
        CHECK(dfn_dataset_num_classes(ds) == 3, "labels = components");
        dfn_dataset_free(ds);
        ds = NULL;
    }
    /* bad parameters */
    const float notpd[4] = {1, 2, 2, 1}, asym[4] = {1, 0.5f, 0, 1}, negw[2] = {1, -1};
    p.covs = notpd;
    p.weights = NULL;
    CHECK(dfn_dataset_gaussian_mixture(&ds, 10, &p, 1) == DFN_ERR_ARG && !ds &&
              strstr(dfn_last_error(), "component 0: covariance is not positive definite"),
          "not PD: %s", dfn_last_error());
    p.covs = asym;
    CHECK(dfn_dataset_gaussian_mixture(&ds, 10, &p, 1) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "not symmetric"),
          "asymmetric: %s", dfn_last_error());
    p.covs = cov;
    p.weights = negw;
    CHECK(dfn_dataset_gaussian_mixture(&ds, 10, &p, 1) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "weight 1 is -1"),
          "negative weight: %s", dfn_last_error());
    float zero_sd[3] = {1, 0, 1};
    q.stds = zero_sd;
    CHECK(dfn_dataset_gaussian_mixture(&ds, 10, &q, 1) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "component 1: std 0"),
          "zero std: %s", dfn_last_error());
}

/* ---------------------------------------------------------------- preprocessing */

static void pixels_scale_exactly_and_round_trip(void) {
    uint8_t all[256], back[256];
    float u[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
    dfn_pixels_to_unit(u, all, 256);
    CHECK(u[0] == -1.0f && u[255] == 1.0f && fabsf(u[128] - 0.00392157f) < 1e-6f, "end points");
    dfn_unit_to_pixels(back, u, 256);
    CHECK(!memcmp(all, back, 256), "pixels -> [-1, 1] -> pixels is the identity");
    float odd[4] = {-3.0f, 7.0f, NAN, 0.999f};
    dfn_unit_to_pixels(back, odd, 4);
    CHECK(back[0] == 0 && back[1] == 255 && back[2] == 0 && back[3] == 255, "clamped");
}

static void standardize_gives_zero_mean_unit_std_and_inverts(void) {
    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_two_moons(&ds, 1000, 0.1f, 1) == DFN_OK, "moons");
    if (!ds) return;
    float *x = dfn_dataset_data(ds), orig[2000], mean[2], sd[2], m2[2], s2[2];
    memcpy(orig, x, sizeof orig);
    dfn_dataset_feature_stats(ds, mean, sd);
    dfn_dataset_standardize(ds, mean, sd);
    dfn_dataset_feature_stats(ds, m2, s2);
    CHECK(fabsf(m2[0]) < 1e-5f && fabsf(m2[1]) < 1e-5f && fabsf(s2[0] - 1) < 1e-5f &&
              fabsf(s2[1] - 1) < 1e-5f,
          "standardized: mean (%g, %g), std (%g, %g)", m2[0], m2[1], s2[0], s2[1]);
    dfn_unstandardize(x, 1000, 2, mean, sd);
    CHECK(rel_error(x, orig, 2000) < 1e-6, "unstandardize inverts");
    dfn_dataset_free(ds);
    /* a constant feature gets std 1 */
    float c[6] = {5, 1, 5, 2, 5, 3};
    int d = 2;
    CHECK(dfn_dataset_from_array(&ds, c, 3, 1, &d, NULL, 0) == DFN_OK, "array");
    dfn_dataset_feature_stats(ds, mean, sd);
    CHECK(mean[0] == 5 && sd[0] == 1 && mean[1] == 2 && fabsf(sd[1] - sqrtf(2.0f / 3)) < 1e-6f,
          "constant feature: mean %g std %g", mean[0], sd[0]);
    dfn_dataset_free(ds);
}

static void random_hflip_mirrors_about_half_deterministically(void) {
    enum { N = 2000, C = 2, H = 3, W = 5 };
    static float x[N * C * H * W], y[N * C * H * W], orig[N * C * H * W];
    fill_uniform(orig, N * C * H * W, 1);
    memcpy(x, orig, sizeof x);
    memcpy(y, orig, sizeof y);
    dfn_rng r1 = dfn_rng_init(5), r2 = dfn_rng_init(5);
    dfn_random_hflip(x, N, C, H, W, &r1);
    dfn_random_hflip(y, N, C, H, W, &r2);
    CHECK(!memcmp(x, y, sizeof x) && r1.counter == N / 4, "same rng, same flips");
    int flipped = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        const float *a = x + i * C * H * W, *o = orig + i * C * H * W;
        int same = !memcmp(a, o, C * H * W * sizeof(float)), mirrored = 1;
        for (int r = 0; r < C * H; r++)
            for (int c = 0; c < W; c++) mirrored &= a[r * W + c] == o[r * W + W - 1 - c];
        flipped += !same;
        bad += !same && !mirrored;
    }
    CHECK(bad == 0, "%d images neither original nor mirrored", bad);
    CHECK(abs(flipped - N / 2) < 5 * 23, "%d of %d flipped", flipped, N); /* se = sqrt(N)/2 */
}

/* ---------------------------------------------------------------- split */

static dfn_dataset *indexed(size_t n, int d) {
    float *x = malloc(n * d * sizeof(float));
    int *y = malloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < d; j++) x[i * d + j] = (float)i;
        y[i] = (int)(i % 7);
    }
    dfn_dataset *ds = NULL;
    if (dfn_dataset_from_array(&ds, x, n, 1, &d, y, 0) != DFN_OK) {
        fprintf(stderr, "%s\n", dfn_last_error());
        exit(2);
    }
    free(x);
    free(y);
    return ds;
}

static void split_is_deterministic_disjoint_and_ordered(void) {
    dfn_dataset *ds = indexed(1000, 2), *tr, *va, *tr2, *va2, *tr3, *va3;
    CHECK(dfn_dataset_split(ds, 0.1, 42, &tr, &va) == DFN_OK, "%s", dfn_last_error());
    CHECK(dfn_dataset_count(tr) == 900 && dfn_dataset_count(va) == 100, "sizes 900 + 100");
    char seen[1000] = {0};
    int dup = 0, order = 1;
    dfn_dataset *parts[2] = {tr, va};
    for (int p = 0; p < 2; p++)
        for (size_t i = 0; i < dfn_dataset_count(parts[p]); i++) {
            int id = (int)dfn_dataset_sample(parts[p], i)[0];
            dup += seen[id]++;
            if (i) order &= dfn_dataset_sample(parts[p], i - 1)[0] < id;
            CHECK(dfn_dataset_labels(parts[p])[i] == id % 7, "labels follow their samples");
        }
    CHECK(dup == 0 && order, "disjoint parts covering all, in the original order");
    CHECK(dfn_dataset_split(ds, 0.1, 42, &tr2, &va2) == DFN_OK && same_bytes(va, va2) &&
              same_bytes(tr, tr2),
          "same seed, same split");
    CHECK(dfn_dataset_split(ds, 0.1, 43, &tr3, &va3) == DFN_OK && !same_bytes(va, va3),
          "another seed, another split");
    dfn_dataset *a = NULL, *b = NULL;
    CHECK(dfn_dataset_split(ds, 0.0001, 1, &a, &b) == DFN_ERR_ARG && !a && !b &&
              strstr(dfn_last_error(), "leaves one of the parts empty"),
          "empty validation set refused: %s", dfn_last_error());
    CHECK(dfn_dataset_split(ds, 1.0, 1, &a, &b) == DFN_ERR_ARG, "fraction 1 refused");
    size_t idx[3] = {5, 5, 999};
    dfn_dataset *sub = NULL;
    CHECK(dfn_dataset_subset(&sub, ds, idx, 3) == DFN_OK && dfn_dataset_sample(sub, 2)[1] == 999 &&
              dfn_dataset_labels(sub)[2] == 999 % 7,
          "subset");
    dfn_dataset_free(sub);
    sub = NULL;
    idx[1] = 1000;
    CHECK(dfn_dataset_subset(&sub, ds, idx, 3) == DFN_ERR_ARG && !sub &&
              strstr(dfn_last_error(), "index 1000 (entry 1)"),
          "subset out of range: %s", dfn_last_error());
    dfn_dataset *all[] = {ds, tr, va, tr2, va2, tr3, va3};
    for (int i = 0; i < 7; i++) dfn_dataset_free(all[i]);
}

/* ---------------------------------------------------------------- batch iterator */

static void iterator_visits_every_sample_once_per_epoch(void) {
    enum { N = 1000, B = 64, D = 3, EPOCHS = 4 };
    dfn_dataset *ds = indexed(N, D);
    dfn_batch_params bp = dfn_batch_params_init(B);
    dfn_batch_iter *it = NULL;
    CHECK(dfn_batch_iter_new(&it, ds, &bp, 123) == DFN_OK, "%s", dfn_last_error());
    /* full batches run across epoch ends: collect EPOCHS * N draws */
    static int order[EPOCHS * N + B];
    float x[B * D];
    int y[B], got = 0, labels_ok = 1, rows_ok = 1;
    while (got < EPOCHS * N) {
        int k = dfn_batch_iter_next(it, x, y);
        CHECK(k == B, "full batch");
        for (int i = 0; i < k; i++) {
            order[got + i] = (int)x[i * D];
            labels_ok &= y[i] == order[got + i] % 7;
            rows_ok &= x[i * D + 1] == x[i * D] && x[i * D + 2] == x[i * D];
        }
        got += k;
    }
    CHECK(labels_ok && rows_ok, "labels and rows stay with their samples");
    CHECK(dfn_batch_iter_epoch(it) == (uint64_t)(got / N), "epoch counter %llu",
          (unsigned long long)dfn_batch_iter_epoch(it));
    for (int e = 0; e < EPOCHS; e++) {
        static char seen[N];
        memset(seen, 0, sizeof seen);
        int missing = 0, in_order = 1;
        for (int i = 0; i < N; i++) seen[order[e * N + i]] = 1;
        for (int i = 0; i < N; i++) missing += !seen[i];
        for (int i = 0; i < N; i++) in_order &= order[e * N + i] == i;
        CHECK(missing == 0, "epoch %d: %d samples never drawn", e, missing);
        CHECK(!in_order, "epoch %d is shuffled", e);
        if (e)
            CHECK(memcmp(order + e * N, order + (e - 1) * N, N * sizeof(int)),
                  "epoch %d differs from %d", e, e - 1);
    }
    dfn_batch_iter_free(it);

    /* partial = 1: short last batch, then the next epoch */
    bp.partial = 1;
    CHECK(dfn_batch_iter_new(&it, ds, &bp, 123) == DFN_OK, "partial");
    int sizes = 0, k = 0;
    for (int b = 0; b < N / B; b++) sizes += dfn_batch_iter_next(it, x, NULL);
    CHECK(sizes == N / B * B && dfn_batch_iter_epoch(it) == 0, "epoch not over yet");
    k = dfn_batch_iter_next(it, x, NULL);
    CHECK(k == N % B && dfn_batch_iter_epoch(it) == 1, "last batch %d samples, epoch %llu", k,
          (unsigned long long)dfn_batch_iter_epoch(it));
    CHECK(dfn_batch_iter_next(it, x, NULL) == B, "next epoch starts full");
    dfn_batch_iter_free(it);

    /* shuffle = 0: in order, wrapping around */
    bp = dfn_batch_params_init(B);
    bp.shuffle = 0;
    CHECK(dfn_batch_iter_new(&it, ds, &bp, 1) == DFN_OK, "unshuffled");
    int in_order = 1;
    for (int b = 0; b < 20; b++) {
        dfn_batch_iter_next(it, x, NULL);
        for (int i = 0; i < B; i++) in_order &= (int)x[i * D] == (b * B + i) % N;
    }
    CHECK(in_order, "shuffle = 0 keeps the dataset order");
    dfn_batch_iter_free(it);

    bp.batch_size = 0;
    CHECK(dfn_batch_iter_new(&it, ds, &bp, 1) == DFN_ERR_ARG && !it &&
              strstr(dfn_last_error(), "batch size 0"),
          "batch size 0: %s", dfn_last_error());
    bp.batch_size = 4;
    bp.hflip = 1;
    CHECK(dfn_batch_iter_new(&it, ds, &bp, 1) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "need images"),
          "hflip on vectors: %s", dfn_last_error());
    dfn_dataset_free(ds);
}

static void iterator_resumes_bit_for_bit_from_a_saved_state(void) {
    /* images with flips, so that the state must carry the flip stream too */
    enum { N = 300, C = 1, H = 2, W = 3, S = C * H * W, B = 16, BEFORE = 37, AFTER = 50 };
    static float data[N * S];
    fill_uniform(data, N * S, 3);
    int dims[3] = {C, H, W};
    static int labels[N];
    for (int i = 0; i < N; i++) labels[i] = i % 10;
    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_from_array(&ds, data, N, 3, dims, labels, 10) == DFN_OK, "images");
    dfn_batch_params bp = dfn_batch_params_init(B);
    bp.hflip = 1;
    dfn_batch_iter *a = NULL, *b = NULL;
    CHECK(dfn_batch_iter_new(&a, ds, &bp, 2024) == DFN_OK, "%s", dfn_last_error());
    float x[B * S];
    int y[B];
    for (int i = 0; i < BEFORE; i++) dfn_batch_iter_next(a, x, y);
    dfn_batch_state st = dfn_batch_iter_state(a);
    CHECK(st.seed == 2024 && st.count == N && st.epoch == BEFORE * B / N &&
              st.position == BEFORE * B % N,
          "state (%llu, %llu)", (unsigned long long)st.epoch, (unsigned long long)st.position);
    static float xa[AFTER * B * S], xb[AFTER * B * S];
    static int ya[AFTER * B], yb[AFTER * B];
    for (int i = 0; i < AFTER; i++) dfn_batch_iter_next(a, xa + i * B * S, ya + i * B);

    /* a fresh iterator with another seed, restored from the saved integers */
    CHECK(dfn_batch_iter_new(&b, ds, &bp, 1) == DFN_OK, "second iterator");
    CHECK(dfn_batch_iter_restore(b, &st) == DFN_OK, "%s", dfn_last_error());
    for (int i = 0; i < AFTER; i++) dfn_batch_iter_next(b, xb + i * B * S, yb + i * B);
    CHECK(!memcmp(xa, xb, sizeof xa) && !memcmp(ya, yb, sizeof ya),
          "restored iterator continues bit for bit");
    CHECK(dfn_batch_iter_epoch(a) == dfn_batch_iter_epoch(b), "same epoch after resuming");

    /* flips happened, and each delivered image is its sample or its mirror */
    int flipped = 0, bad = 0;
    for (int i = 0; i < AFTER * B; i++) {
        const float *img = xa + i * S;
        int found = -1, mirrored = 0;
        for (int j = 0; j < N && found < 0; j++) {
            const float *o = data + j * S;
            if (!memcmp(img, o, S * sizeof(float))) found = j;
            int m = 1;
            for (int r = 0; r < C * H; r++)
                for (int c = 0; c < W; c++) m &= img[r * W + c] == o[r * W + W - 1 - c];
            if (m && found < 0) found = j, mirrored = 1;
        }
        bad += found < 0 || labels[found] != ya[i];
        flipped += mirrored;
    }
    CHECK(bad == 0, "%d delivered images match no sample (or the wrong label)", bad);
    CHECK(abs(flipped - AFTER * B / 2) < 5 * 15, "%d of %d flipped", flipped, AFTER * B);

    /* states that cannot belong to this dataset */
    dfn_batch_state wrong = st;
    wrong.count = N + 1;
    CHECK(dfn_batch_iter_restore(b, &wrong) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "dataset of 301 samples, this one has 300"),
          "count mismatch: %s", dfn_last_error());
    wrong = st;
    wrong.position = N;
    CHECK(dfn_batch_iter_restore(b, &wrong) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "position 300 is past"),
          "position past end: %s", dfn_last_error());
    dfn_batch_iter_free(a);
    dfn_batch_iter_free(b);
    dfn_dataset_free(ds);
}

int main(void) {
    generators_are_deterministic_for_seeds_and_threads();
    curves_are_unit_scale_sums_of_sinusoids();
    eight_gaussians_have_their_means_and_weights();
    moons_rolls_and_checkerboards_stay_in_their_bounds();
    gaussian_mixture_matches_weights_means_and_covariances();
    pixels_scale_exactly_and_round_trip();
    standardize_gives_zero_mean_unit_std_and_inverts();
    random_hflip_mirrors_about_half_deterministically();
    split_is_deterministic_disjoint_and_ordered();
    iterator_visits_every_sample_once_per_epoch();
    iterator_resumes_bit_for_bit_from_a_saved_state();
    TEST_MAIN_END();
}

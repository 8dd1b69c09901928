/* test_plot.c - every kind of figure to PNG and SVG: the PNG decodes at the
 * figure's size, shows the series' colours where they should be, and comes out
 * byte-identical when saved twice; the SVG is an SVG document; bad extensions
 * and unwritable paths fail with the file's name and leave no "<path>.tmp".
 *
 * With DFN_PLOT_DIR=some/dir the figures are kept there (one of each kind, as
 * a person would look at them); otherwise a temporary directory is used and
 * removed, and a leftover file makes the removal, and the test, fail. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <stb/stb_image.h>

#include "diffusion.h"
#include "test_util.h"

static char dir[256];
static int keep;
static char written[64][512];
static int nwritten;

static const char *in_dir(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static int tmp_left(const char *path) {
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    return exists(tmp);
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)len + 1);
    *n = fread(d, 1, (size_t)len, f);
    d[*n] = 0;
    fclose(f);
    return d;
}

/* Saves to name.png and name.svg and checks both; returns the decoded PNG
 * (RGB, w x h) for pixel checks, or NULL. */
static unsigned char *save_both(const dfn_plot *p, const char *name, int w, int h) {
    char file[128];
    unsigned char *pix = NULL;
    for (int k = 0; k < 2; k++) {
        snprintf(file, sizeof file, "%s.%s", name, k ? "svg" : "png");
        const char *path = in_dir(file);
        snprintf(written[nwritten++], sizeof written[0], "%s", path);
        CHECK(dfn_plot_save(p, path) == DFN_OK, "%s: %s", file, dfn_last_error());
        CHECK(!tmp_left(path), "%s: .tmp left behind", file);
        size_t n = 0;
        unsigned char *data = read_all(path, &n);
        CHECK(data && n > 100, "%s: missing or tiny (%zu bytes)", file, n);
        if (!data) continue;
        /* Same figure, same bytes, for both formats. */
        CHECK(dfn_plot_save(p, path) == DFN_OK, "%s again", file);
        size_t n2 = 0;
        unsigned char *again = read_all(path, &n2);
        CHECK(again && n2 == n && !memcmp(again, data, n), "%s: bytes differ on a second save",
              file);
        free(again);
        if (k == 0) {
            int pw, ph, pc;
            pix = stbi_load_from_memory(data, (int)n, &pw, &ph, &pc, 3);
            CHECK(pix && pw == w && ph == h, "%s: decodes as %dx%d, want %dx%d", file, pw, ph, w,
                  h);
            if (pix && (pw != w || ph != h)) stbi_image_free(pix), pix = NULL;
        } else {
            CHECK(!strncmp((char *)data, "<?xml", 5) || !strncmp((char *)data, "<svg", 4),
                  "%s: does not start as SVG: %.20s", file, data);
            CHECK(strstr((char *)data, "</svg>") != NULL, "%s: no closing </svg>", file);
        }
        free(data);
    }
    return pix;
}

/* Pixels within `tol` of colour rgb, and the bounding box of them. */
typedef struct {
    long count;
    int x0, y0, x1, y1;
} blob;

static blob find_colour(const unsigned char *pix, int w, int h, uint32_t rgb, int tol) {
    blob b = {0, w, h, -1, -1};
    int r = rgb >> 16 & 255, g = rgb >> 8 & 255, bl = rgb & 255;
    for (int y = 0; pix && y < h; y++)
        for (int x = 0; x < w; x++) {
            const unsigned char *q = pix + 3 * (y * w + x);
            if (abs(q[0] - r) <= tol && abs(q[1] - g) <= tol && abs(q[2] - bl) <= tol) {
                b.count++;
                if (x < b.x0) b.x0 = x;
                if (x > b.x1) b.x1 = x;
                if (y < b.y0) b.y0 = y;
                if (y > b.y1) b.y1 = y;
            }
        }
    return b;
}

#define BLUE 0x1f77b4u /* the palette's first two colours */
#define ORANGE 0xff7f0eu

/* Training loss: two decaying curves on a log axis, a NaN gap in one. */
static void loss_curves(void) {
    enum { N = 400 };
    float step[N], train[N], val[N / 20], vstep[N / 20];
    for (int i = 0; i < N; i++) {
        step[i] = (float)(i * 25);
        train[i] = 0.03f + 0.9f * expf(-i / 40.0f) * (1 + 0.2f * sinf(i * 1.7f));
    }
    train[200] = NAN;
    for (int i = 0; i < N / 20; i++)
        vstep[i] = step[i * 20], val[i] = 0.035f + 0.9f * expf(-i / 2.0f);
    dfn_plot *p = dfn_plot_new(0, 0);
    dfn_plot_labels(p, "Training loss", "step", "MSE loss");
    dfn_plot_log_y(p, 1);
    dfn_plot_line(p, step, train, N, "train");
    dfn_plot_line(p, vstep, val, N / 20, "validation");
    dfn_plot_style(p, -1, 0, 2.5f, 1);
    unsigned char *pix = save_both(p, "loss", 800, 500);
    blob b = find_colour(pix, 800, 500, BLUE, 10), o = find_colour(pix, 800, 500, ORANGE, 10);
    CHECK(b.count > 300 && o.count > 100, "loss: %ld blue and %ld orange pixels", b.count, o.count);
    /* A decaying curve: its left end high, its right end low, across most of the width. */
    CHECK(b.x1 - b.x0 > 500 && b.y1 - b.y0 > 250, "loss: blue spans %d x %d px", b.x1 - b.x0,
          b.y1 - b.y0);
    CHECK(pix && pix[0] == 255 && pix[1] == 255 && pix[2] == 255, "loss: background not white");
    stbi_image_free(pix);
    dfn_plot_free(p);
}

/* A horizontal line must come out horizontal and a fixed range must hold. */
static void axes_map_data_to_pixels(void) {
    const float x[2] = {0, 10}, y[2] = {5, 5};
    dfn_plot *p = dfn_plot_new(400, 300);
    dfn_plot_limits(p, -10, 20, 0, 10);
    dfn_plot_line(p, x, y, 2, NULL);
    unsigned char *pix = save_both(p, "axes", 400, 300);
    blob b = find_colour(pix, 400, 300, BLUE, 40);
    /* x from 0 to 10 of -10..20: the middle third of the plot area. */
    int span = b.x1 - b.x0;
    CHECK(b.count > 50 && b.y1 - b.y0 <= 3, "axes: line rows %d..%d", b.y0, b.y1);
    CHECK(span > 90 && span < 140, "axes: a third of ~340 px expected, got %d", span);
    stbi_image_free(pix);
    dfn_plot_free(p);
}

/* 50-dimensional curves: several samples as lines over the coordinate index. */
static void many_curves(void) {
    dfn_plot *p = dfn_plot_new(0, 0);
    dfn_plot_labels(p, "Samples of 50-dim curves", "coordinate", "value");
    for (int k = 0; k < 6; k++) {
        float y[50];
        for (int i = 0; i < 50; i++) y[i] = sinf(i * 0.2f + k) * (1 + 0.1f * k);
        char label[16];
        snprintf(label, sizeof label, "sample %d", k);
        dfn_plot_line(p, NULL, y, 50, k < 3 ? label : NULL);
    }
    unsigned char *pix = save_both(p, "curves", 800, 500);
    CHECK(find_colour(pix, 800, 500, BLUE, 10).count > 200, "curves: no blue line");
    stbi_image_free(pix);
    dfn_plot_free(p);
}

static void scatter_data_vs_samples(void) {
    enum { N = 3000 };
    float *data = malloc(2 * N * sizeof *data), *samp = malloc(2 * N * sizeof *samp);
    float u[2 * N];
    fill_uniform(u, 2 * N, 5);
    for (int i = 0; i < N; i++) { /* two rings and a blob */
        double a = 3.14159265 * u[2 * i], r = i % 2 ? 1.0 : 2.0;
        data[2 * i] = (float)(r * cos(a) + 0.05 * u[(2 * i + 7) % (2 * N)]);
        data[2 * i + 1] = (float)(r * sin(a) + 0.05 * u[(2 * i + 13) % (2 * N)]);
        samp[2 * i] = data[2 * i] + 0.1f * u[(2 * i + 1)];
        samp[2 * i + 1] = data[2 * i + 1] + 0.1f * u[(2 * i + 3) % (2 * N)];
    }
    dfn_plot *p = dfn_plot_new(600, 600);
    dfn_plot_labels(p, "Data and samples", "x1", "x2");
    dfn_plot_scatter(p, data, N, "data");
    dfn_plot_scatter(p, samp, N, "samples");
    unsigned char *pix = save_both(p, "scatter", 600, 600);
    CHECK(pix && pix[3 * (300 * 600 + 300)] == 255, "scatter: the rings' centre is not empty");
    stbi_image_free(pix);
    dfn_plot_free(p);
    free(data);
    free(samp);
}

/* The forward process: histograms of x_t drifting to N(0, 1), with its density. */
static void histograms_with_density(void) {
    enum { N = 20000 };
    float *x0 = malloc(N * sizeof *x0), *xt = malloc(N * sizeof *xt), *xT = malloc(N * sizeof *xT);
    float u[N], g[N];
    fill_uniform(u, N, 1);
    fill_uniform(g, N, 2);
    for (int i = 0; i < N; i++) {
        /* a cheap normal: sum of uniforms; data: two spikes at +-1.5 */
        float z = 0;
        for (int k = 0; k < 6; k++) z += (float)(u[(i * 7 + k * 131) % N] * 0.7071);
        x0[i] = (g[i] > 0 ? 1.5f : -1.5f) + 0.1f * z;
        xt[i] = 0.7f * x0[i] + 0.71f * z;
        xT[i] = z;
    }
    float gx[200], gy[200];
    for (int i = 0; i < 200; i++) {
        gx[i] = -4 + 8.0f * i / 199;
        gy[i] = (float)(exp(-0.5 * gx[i] * gx[i]) / sqrt(2 * 3.14159265358979));
    }
    dfn_plot *p = dfn_plot_new(0, 0);
    dfn_plot_labels(p, "Forward process", "x", "density");
    dfn_plot_hist(p, x0, N, 60, -4, 4, "t = 0");
    dfn_plot_hist(p, xt, N, 60, -4, 4, "t = 250");
    dfn_plot_hist(p, xT, N, 60, -4, 4, "t = 1000");
    dfn_plot_line(p, gx, gy, 200, "N(0, 1)");
    dfn_plot_style(p, 0x000000, 1, 2, 0);
    unsigned char *pix = save_both(p, "hist", 800, 500);
    CHECK(find_colour(pix, 800, 500, 0, 30).count > 300, "hist: no black density curve");
    stbi_image_free(pix);
    /* A histogram integrates to the fraction of values in range: one here. */
    dfn_plot *q = dfn_plot_new(400, 300);
    const float v[5] = {0, 0.5f, 1, 1, NAN}; /* NaN: not counted */
    dfn_plot_hist(q, v, 5, 2, 0, 0, NULL);   /* auto range [0, 1]: densities 0.5 and 1.5 */
    unsigned char *qp = save_both(q, "hist_small", 400, 300);
    /* The fill: blue at alpha 0.45 over white. Its height in the middle of
     * each bin, in pixels, must be in the ratio of the densities, 1 : 3. */
    blob fill = find_colour(qp, 400, 300, 0x9ac2dd, 6);
    int col[2] = {fill.x0 + (fill.x1 - fill.x0) / 4, fill.x0 + 3 * (fill.x1 - fill.x0) / 4};
    int hgt[2] = {0, 0};
    for (int k = 0; qp && k < 2; k++)
        for (int y = 0; y < 300; y++) {
            const unsigned char *c = qp + 3 * (y * 400 + col[k]);
            hgt[k] += abs(c[0] - 0x9a) <= 6 && abs(c[1] - 0xc2) <= 6 && abs(c[2] - 0xdd) <= 6;
        }
    CHECK(hgt[1] > 100 && fabs(3.0 * hgt[0] / hgt[1] - 1) < 0.05, "hist bins %d and %d px high",
          hgt[0], hgt[1]);
    stbi_image_free(qp);
    dfn_plot_free(q);
    dfn_plot_free(p);
    free(x0);
    free(xt);
    free(xT);
}

static void covariance_heatmap(void) {
    enum { D = 24 };
    float cov[D * D];
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++)
            cov[i * D + j] =
                expf(-fabsf((float)(i - j)) / 4) * (i < D / 2 ? 1 : -1) * (j < D / 2 ? 1 : -1);
    dfn_plot *p = dfn_plot_new(600, 500);
    dfn_plot_labels(p, "Covariance of samples", "j", "i");
    dfn_plot_heatmap(p, cov, D, D, 0, 0);
    unsigned char *pix = save_both(p, "heatmap", 600, 500);
    /* Symmetric range [-1, 1]: the diagonal is the red end, far corners blue-ish. */
    blob red = find_colour(pix, 600, 500, 0xb2182b, 3);
    CHECK(red.count > 400, "heatmap: %ld pixels of the scale's red end", red.count);
    CHECK(red.x1 - red.x0 > 300 && red.y1 - red.y0 > 300, "heatmap: the diagonal spans %dx%d",
          red.x1 - red.x0, red.y1 - red.y0);
    stbi_image_free(pix);
    dfn_plot_free(p);

    /* Big matrices go in as one scaled image: in the SVG too. */
    enum { BIG = 300 };
    float *big = malloc(BIG * BIG * sizeof *big);
    for (int i = 0; i < BIG * BIG; i++) big[i] = i % BIG < BIG / 2 ? -1.0f : 1.0f;
    p = dfn_plot_new(500, 400);
    dfn_plot_heatmap(p, big, BIG, BIG, 0, 0);
    pix = save_both(p, "heatmap_big", 500, 400);
    blob lo = find_colour(pix, 500, 400, 0x2166ac, 3), hi = find_colour(pix, 500, 400, 0xb2182b, 3);
    CHECK(lo.count > 20000 && hi.count > 20000 && lo.x0 + 100 < hi.x0,
          "big heatmap: %ld blue px from x=%d, %ld red px from x=%d", lo.count, lo.x0, hi.count,
          hi.x0);
    size_t n = 0;
    unsigned char *svg = read_all(in_dir("heatmap_big.svg"), &n);
    CHECK(svg && strstr((char *)svg, "<image"), "big heatmap: no <image> in the SVG");
    free(svg);
    free(big);
    stbi_image_free(pix);
    dfn_plot_free(p);

    /* One sign: the sequential scale, explicit range. */
    p = dfn_plot_new(300, 300);
    dfn_plot_heatmap(p, cov, 3, 8, 0, 2);
    stbi_image_free(save_both(p, "heatmap_seq", 300, 300));
    dfn_plot_free(p);
}

static void eigenvalue_spectrum(void) {
    enum { D = 50 };
    float data[D], model[D];
    for (int i = 0; i < D; i++) {
        data[i] = 10 * powf(0.7f, (float)i);
        model[i] = data[i] * (1 + 0.3f * sinf((float)i)) + 1e-6f;
    }
    model[D - 1] = 0; /* not drawable on a log axis: skipped, no crash */
    dfn_plot *p = dfn_plot_new(0, 0);
    dfn_plot_labels(p, "Covariance spectrum", "index", "eigenvalue");
    dfn_plot_log_y(p, 1);
    dfn_plot_bars(p, NULL, data, D, "data");
    dfn_plot_line(p, NULL, model, D, "model");
    dfn_plot_style(p, -1, 0, 0, 1);
    unsigned char *pix = save_both(p, "spectrum", 800, 500);
    blob b = find_colour(pix, 800, 500, 0x3a88bf, 30); /* blue bars at alpha 0.85 */
    CHECK(b.count > 2000, "spectrum: %ld bar pixels", b.count);
    stbi_image_free(pix);
    dfn_plot_free(p);
}

/* 200k noisy steps: drawn in well under a second (the path is reduced to a
 * few points per pixel column; unreduced, cairo takes minutes), and still a
 * band from the lowest to the highest values. */
static void long_series_are_fast(void) {
    enum { N = 200000 };
    float *y = malloc(N * sizeof *y);
    for (int i = 0; i < N; i++) y[i] = i % 2 ? 1.0f : -1.0f;
    y[N / 2] = 3; /* one spike must survive the reduction */
    dfn_plot *p = dfn_plot_new(400, 300);
    dfn_plot_line(p, NULL, y, N, NULL);
    clock_t t0 = clock();
    unsigned char *pix = save_both(p, "long", 400, 300);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(secs < 20, "long series: %.1f s", secs);
    blob b = find_colour(pix, 400, 300, BLUE, 10);
    /* y range -1..3 (+5%): the band -1..1 is half the height, the spike on top. */
    CHECK(b.count > 20000 && b.y1 - b.y0 > 200, "long series: %ld px, rows %d..%d", b.count, b.y0,
          b.y1);
    stbi_image_free(pix);
    dfn_plot_free(p);
    free(y);
}

static void odd_inputs_still_draw(void) {
    dfn_plot_release_caches(); /* text after releasing the font caches: rebuilt */
    dfn_plot *p = dfn_plot_new(320, 200); /* nothing at all */
    stbi_image_free(save_both(p, "empty", 320, 200));
    dfn_plot_log_y(p, 1);
    const float y[3] = {-1, 0, NAN}; /* nothing positive on a log axis */
    dfn_plot_line(p, NULL, y, 3, "none");
    stbi_image_free(save_both(p, "empty_log", 320, 200));
    dfn_plot_free(p);
    p = dfn_plot_new(320, 200);
    const float c[2] = {3, 3}; /* one point: a range of zero width */
    dfn_plot_scatter(p, c, 1, NULL);
    dfn_plot_limits(p, 0, 0, NAN, NAN); /* stays automatic */
    stbi_image_free(save_both(p, "one_point", 320, 200));
    dfn_plot_limits(p, 1e16, 1e16 + 4, -1e30, 1e30); /* beyond double's integers: no hang */
    stbi_image_free(save_both(p, "far_limits", 320, 200));
    dfn_plot_free(p);
}

static void errors_name_the_file(void) {
    dfn_plot *p = dfn_plot_new(100, 100);
    const char *path = in_dir("plot.pdf");
    CHECK(dfn_plot_save(p, path) == DFN_ERR_ARG, "a .pdf name is accepted");
    CHECK(strstr(dfn_last_error(), path) && strstr(dfn_last_error(), ".png") &&
              strstr(dfn_last_error(), ".svg"),
          "message: %s", dfn_last_error());
    CHECK(!exists(path) && !tmp_left(path), "something written for .pdf");
    path = in_dir("plot");
    CHECK(dfn_plot_save(p, path) == DFN_ERR_ARG, "no extension accepted");
    path = in_dir("dotted.dir/plot");
    CHECK(dfn_plot_save(p, path) == DFN_ERR_ARG, "a dot in a directory name taken as extension");

    path = in_dir("UPPER.PNG"); /* case does not matter */
    CHECK(dfn_plot_save(p, path) == DFN_OK, "UPPER.PNG: %s", dfn_last_error());
    snprintf(written[nwritten++], sizeof written[0], "%s", path);

    path = in_dir("missing/dir/plot.svg");
    CHECK(dfn_plot_save(p, path) == DFN_ERR_IO, "missing directory not reported");
    CHECK(strstr(dfn_last_error(), path) != NULL, "message: %s", dfn_last_error());

    path = in_dir("adir.png");
    mkdir(path, 0755);
    CHECK(dfn_plot_save(p, path) == DFN_ERR_IO, "rename over a directory succeeded");
    CHECK(strstr(dfn_last_error(), path) != NULL, "message: %s", dfn_last_error());
    CHECK(!tmp_left(path), "a failed save left %s.tmp", path);
    rmdir(path);
    dfn_plot_free(p);
}

int main(void) {
    const char *d = getenv("DFN_PLOT_DIR");
    keep = d != NULL;
    if (keep) {
        snprintf(dir, sizeof dir, "%s", d);
        mkdir(dir, 0755);
    } else {
        snprintf(dir, sizeof dir, "/tmp/dfn_test_plot_XXXXXX");
        if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    }
    loss_curves();
    axes_map_data_to_pixels();
    many_curves();
    scatter_data_vs_samples();
    histograms_with_density();
    covariance_heatmap();
    eigenvalue_spectrum();
    long_series_are_fast();
    odd_inputs_still_draw();
    errors_name_the_file();
    if (!keep) {
        for (int i = 0; i < nwritten; i++) remove(written[i]);
        CHECK(rmdir(dir) == 0, "%s not empty after the test: %s", dir, strerror(errno));
    }
    dfn_plot_release_caches(); /* so that LeakSanitizer sees only real leaks */
    TEST_MAIN_END();
}

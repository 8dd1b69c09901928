/* test_png.c - the image writers: pixel values of gray and RGB PNGs read back
 * with stb_image, the grid and strip layouts (borders, upscaling, blank cells,
 * captions) against an independent computation, byte-identical repeats, and
 * errors that name the file and leave no "<path>.tmp" behind. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb/stb_image.h>

#include "diffusion.h"
#include "test_util.h"

static char dir[256];

/* dir/name; a few live at once. */
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
    fclose(f);
    return d;
}

/* The mapping of diffusion.h, written out independently. */
static int expect_byte(float v) {
    if (isnan(v) || v <= -1) return 0;
    if (v >= 1) return 255;
    return (int)floor((v + 1) * 127.5 + 0.5);
}

static void gray_values_and_clamping(void) {
    const float img[6] = {-1, 1, 0, 2, -3, NAN}; /* H = 2, W = 3 */
    const int want[6] = {0, 255, 128, 255, 0, 0};
    const char *path = in_dir("gray.png");
    CHECK(dfn_png_write(path, img, 1, 2, 3) == DFN_OK, "gray write: %s", dfn_last_error());
    int w, h, n;
    unsigned char *pix = stbi_load(path, &w, &h, &n, 0);
    CHECK(pix && w == 3 && h == 2 && n == 1, "gray: %dx%d with %d channels", w, h, n);
    for (int i = 0; pix && i < 6; i++)
        CHECK(pix[i] == want[i], "gray pixel %d: %d, want %d", i, pix[i], want[i]);
    CHECK(!tmp_left(path), "gray: .tmp left behind");
    stbi_image_free(pix);
}

static void rgb_planes_interleave(void) {
    /* C = 3, H = 1, W = 2: planes R, G, B */
    const float img[6] = {-1, 1, /* R */ 0, -1, /* G */ 1, 0.5f /* B */};
    const int want[6] = {0, 128, 255, 255, 0, 191};
    const char *path = in_dir("rgb.png");
    CHECK(dfn_png_write(path, img, 3, 1, 2) == DFN_OK, "rgb write: %s", dfn_last_error());
    int w, h, n;
    unsigned char *pix = stbi_load(path, &w, &h, &n, 0);
    CHECK(pix && w == 2 && h == 1 && n == 3, "rgb: %dx%d with %d channels", w, h, n);
    for (int i = 0; pix && i < 6; i++)
        CHECK(pix[i] == want[i], "rgb byte %d: %d, want %d", i, pix[i], want[i]);
    stbi_image_free(pix);
}

/* Expected grid pixel (x, y), channel ch, for cells laid out row by row. */
static int grid_expect(const float *const *cells, int rows, int cols, int H, int W, int scale,
                       int band, int x, int y, int ch) {
    const int b = DFN_GRID_BORDER, cw = W * scale + b, chh = H * scale + b;
    if (y < band) return -1; /* caption band: not checked here */
    y -= band;
    int c = (x - b) / cw, r = (y - b) / chh, xi = (x - b) % cw, yi = (y - b) % chh;
    if (x < b || y < b || c >= cols || r >= rows || xi >= W * scale || yi >= H * scale) return 255;
    const float *img = cells[r * cols + c];
    if (!img) return 255;
    return expect_byte(img[(ch * H + yi / scale) * W + xi / scale]);
}

static int compare_layout(const char *what, const char *path, const float *const *cells, int rows,
                          int cols, int C, int H, int W, int scale, int band) {
    int w, h, n, bad = 0;
    unsigned char *pix = stbi_load(path, &w, &h, &n, 0);
    int ww = cols * (W * scale + DFN_GRID_BORDER) + DFN_GRID_BORDER;
    int wh = band + rows * (H * scale + DFN_GRID_BORDER) + DFN_GRID_BORDER;
    CHECK(pix && w == ww && h == wh && n == C, "%s: %dx%dx%d, want %dx%dx%d", what, w, h, n, ww, wh,
          C);
    if (!pix || w != ww || h != wh || n != C) {
        stbi_image_free(pix);
        return 0;
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < C; ch++) {
                int want = grid_expect(cells, rows, cols, H, W, scale, band, x, y, ch);
                int got = pix[(y * w + x) * C + ch];
                if (want >= 0 && got != want && bad++ < 5)
                    fprintf(stderr, "  %s (%d,%d,%d): %d want %d\n", what, x, y, ch, got, want);
            }
    CHECK(bad == 0, "%s: %d pixels differ", what, bad);
    stbi_image_free(pix);
    return bad == 0;
}

static void grid_layout_border_upscale(void) {
    enum { B = 5, C = 1, H = 2, W = 3 };
    float imgs[B * C * H * W];
    for (int i = 0; i < B * C * H * W; i++) imgs[i] = -1 + 2.0f * i / (B * C * H * W - 1);
    const float *cells[6] = {imgs, imgs + 6, imgs + 12, imgs + 18, imgs + 24, NULL};
    const char *path = in_dir("grid.png");
    CHECK(dfn_png_write_grid(path, imgs, B, C, H, W, 3, 2) == DFN_OK, "grid: %s", dfn_last_error());
    compare_layout("grid 3 cols x2", path, cells, 2, 3, C, H, W, 2, 0);

    /* Spot checks at known positions: the border is white, the first cell's
     * top-left source pixel (-1) is black and fills a 2x2 block. */
    int w, h, n;
    unsigned char *pix = stbi_load(path, &w, &h, &n, 1);
    if (pix) {
        CHECK(pix[0] == 255 && pix[1 * w + 1] == 255, "grid border not white");
        CHECK(pix[2 * w + 2] == 0 && pix[2 * w + 3] == 0 && pix[3 * w + 2] == 0 &&
                  pix[3 * w + 3] == 0,
              "grid: the first pixel is not a black 2x2 block");
        CHECK(pix[(h - 3) * w + (w - 3)] == 255, "grid: the empty sixth cell is not white");
    }
    stbi_image_free(pix);

    /* cols <= 0: ceil(sqrt(5)) = 3 columns, the same picture. */
    path = in_dir("grid_auto.png");
    CHECK(dfn_png_write_grid(path, imgs, B, C, H, W, 0, 2) == DFN_OK, "grid auto: %s",
          dfn_last_error());
    compare_layout("grid auto cols", path, cells, 2, 3, C, H, W, 2, 0);

    /* RGB, one column, no upscale. */
    float rgb[2 * 3 * H * W];
    fill_uniform(rgb, 2 * 3 * H * W, 7);
    const float *rcells[2] = {rgb, rgb + 3 * H * W};
    path = in_dir("grid_rgb.png");
    CHECK(dfn_png_write_grid(path, rgb, 2, 3, H, W, 1, 0) == DFN_OK, "grid rgb: %s",
          dfn_last_error());
    compare_layout("grid rgb 1 col", path, rcells, 2, 1, 3, H, W, 1, 0);
}

static void strip_rows_are_trajectories(void) {
    enum { S = 3, K = 2, C = 3, H = 2, W = 2, SCALE = 12 };
    float snaps[S * K * C * H * W];
    fill_uniform(snaps, S * K * C * H * W, 3);
    /* Stored (S, K, ...); shown sample k on row k, snapshot s in column s. */
    const float *cells[K * S];
    for (int k = 0; k < K; k++)
        for (int s = 0; s < S; s++) cells[k * S + s] = snaps + (s * K + k) * C * H * W;

    const char *path = in_dir("strip.png");
    CHECK(dfn_png_write_strip(path, snaps, S, K, C, H, W, SCALE, NULL) == DFN_OK, "strip: %s",
          dfn_last_error());
    compare_layout("strip", path, cells, K, S, C, H, W, SCALE, 0);

    const char *caps[S] = {"t=999", NULL, "t=0"};
    path = in_dir("strip_captions.png");
    CHECK(dfn_png_write_strip(path, snaps, S, K, C, H, W, SCALE, caps) == DFN_OK,
          "strip captions: %s", dfn_last_error());
    compare_layout("strip captions", path, cells, K, S, C, H, W, SCALE, DFN_CAPTION_HEIGHT);
    int w, h, n;
    unsigned char *pix = stbi_load(path, &w, &h, &n, 1);
    if (pix) {
        /* Ink in the first and third column's band, none over the second. */
        int cw = W * SCALE + DFN_GRID_BORDER, ink[S] = {0};
        for (int y = 0; y < DFN_CAPTION_HEIGHT; y++)
            for (int x = 0; x < w; x++)
                if (pix[y * w + x] < 128) ink[x / cw < S ? x / cw : S - 1]++;
        CHECK(ink[0] > 10 && ink[1] == 0 && ink[2] > 10, "caption ink per column: %d %d %d", ink[0],
              ink[1], ink[2]);
    }
    stbi_image_free(pix);
}

static void same_input_same_bytes(void) {
    float imgs[4 * 28 * 28];
    fill_uniform(imgs, 4 * 28 * 28, 11);
    const char *a = in_dir("det_a.png"), *b = in_dir("det_b.png");
    const char *caps[4] = {"1000", "500", "100", "0"};
    CHECK(dfn_png_write_strip(a, imgs, 4, 1, 1, 28, 28, 3, caps) == DFN_OK, "det a");
    CHECK(dfn_png_write_strip(b, imgs, 4, 1, 1, 28, 28, 3, caps) == DFN_OK, "det b");
    size_t na = 0, nb = 0;
    unsigned char *da = read_all(a, &na), *db = read_all(b, &nb);
    CHECK(da && db && na == nb && !memcmp(da, db, na), "same strip, different bytes");
    free(da);
    free(db);
}

static void errors_name_the_file(void) {
    float img[4] = {0, 0, 0, 0};
    const char *path = in_dir("image.jpg");
    CHECK(dfn_png_write(path, img, 1, 2, 2) == DFN_ERR_ARG, "a .jpg name is accepted");
    CHECK(strstr(dfn_last_error(), path) && strstr(dfn_last_error(), ".png"), "message: %s",
          dfn_last_error());
    CHECK(!exists(path) && !tmp_left(path), "something written for a .jpg name");

    path = in_dir("noext");
    CHECK(dfn_png_write_grid(path, img, 1, 1, 2, 2, 1, 1) == DFN_ERR_ARG, "no extension accepted");
    CHECK(strstr(dfn_last_error(), path) != NULL, "message: %s", dfn_last_error());

    path = in_dir("no/such/dir/x.png");
    CHECK(dfn_png_write(path, img, 1, 2, 2) == DFN_ERR_IO, "missing directory not reported");
    CHECK(strstr(dfn_last_error(), path) != NULL, "message: %s", dfn_last_error());

    /* The destination is a directory: the temporary is written, the rename
     * fails, and the temporary must be gone again. */
    path = in_dir("adir.png");
    mkdir(path, 0755);
    CHECK(dfn_png_write(path, img, 1, 2, 2) == DFN_ERR_IO, "rename over a directory succeeded");
    CHECK(strstr(dfn_last_error(), path) != NULL, "message: %s", dfn_last_error());
    CHECK(!tmp_left(path), "a failed write left %s.tmp", path);
    rmdir(path);

    /* Too big to be meant. */
    path = in_dir("huge.png");
    CHECK(dfn_png_write_grid(path, img, 1, 1, 2, 2, 1, 100000) == DFN_ERR_ARG, "huge accepted");
    CHECK(strstr(dfn_last_error(), path) != NULL, "message: %s", dfn_last_error());
}

int main(void) {
    const char *keep = getenv("DFN_PLOT_DIR");
    if (keep) {
        snprintf(dir, sizeof dir, "%s", keep);
        mkdir(dir, 0755);
    } else {
        snprintf(dir, sizeof dir, "/tmp/dfn_test_png_XXXXXX");
        if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    }
    gray_values_and_clamping();
    rgb_planes_interleave();
    grid_layout_border_upscale();
    strip_rows_are_trajectories();
    same_input_same_bytes();
    errors_name_the_file();
    if (!keep) {
        const char *files[] = {"gray.png",           "rgb.png",      "grid.png",
                               "grid_auto.png",      "grid_rgb.png", "strip.png",
                               "strip_captions.png", "det_a.png",    "det_b.png"};
        for (size_t i = 0; i < sizeof files / sizeof *files; i++) remove(in_dir(files[i]));
        CHECK(rmdir(dir) == 0, "%s not empty after the test: %s", dir, strerror(errno));
    }
    dfn_plot_release_caches(); /* so that LeakSanitizer sees only real leaks */
    TEST_MAIN_END();
}

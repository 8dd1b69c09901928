/* test_data.c - the dataset loaders: the installed Fashion-MNIST, IDX files
 * written here (plain and gzipped) and every way they can be broken, folders of
 * PNG/JPEG images, CSV files, and copies of float arrays. Each bad input is
 * checked for its status and for what the message says. Files are written to a
 * fresh mkdtemp folder that is removed at the end. */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <stb/stb_image_write.h>

#include "diffusion.h"
#include "test_util.h"

static char tmpdir[64];

/* ---------------------------------------------------------------- helpers */

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    fclose(f);
}

static void write_text(const char *path, const char *text) {
    write_bytes(path, text, strlen(text));
}

static void write_gz(const char *path, const void *data, size_t n) {
    gzFile gz = gzopen(path, "wb");
    if (!gz || gzwrite(gz, data, (unsigned)n) != (int)n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(2);
    }
    gzclose(gz);
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) exit(2);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    if (fread(b, 1, *n, f) != *n) exit(2);
    fclose(f);
    return b;
}

static void rm_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static const char *mkdir_tmp(const char *name) {
    const char *p = tmp_path(name);
    rm_tree(p);
    mkdir(p, 0700);
    return p;
}

/* The failure of a call: its status, the message containing every given
 * fragment, and *out left NULL. */
#define CHECK_FAILS(call, out, want_status, ...)                                             \
    do {                                                                                     \
        dfn_status st_ = (call);                                                             \
        CHECK(st_ == (want_status), "%s: status %s, expected %s (message: %s)", #call,       \
              dfn_status_name(st_), dfn_status_name(want_status), dfn_last_error());         \
        CHECK((out) == NULL, "%s: output not NULL after failure", #call);                    \
        const char *frags_[] = {__VA_ARGS__};                                                \
        for (size_t i_ = 0; i_ < sizeof frags_ / sizeof frags_[0]; i_++)                     \
            CHECK(strstr(dfn_last_error(), frags_[i_]) != NULL,                              \
                  "%s: message \"%s\" lacks \"%s\"", #call, dfn_last_error(), frags_[i_]);   \
        if (out) {                                                                           \
            dfn_dataset_free(out);                                                           \
            out = NULL;                                                                      \
        }                                                                                    \
    } while (0)

/* A big-endian IDX header. */
static size_t idx_header(unsigned char *b, uint32_t magic, const uint32_t *dims, int nd) {
    uint32_t words[4] = {magic, dims[0], nd > 1 ? dims[1] : 0, nd > 2 ? dims[2] : 0};
    for (int i = 0; i <= nd; i++) {
        b[4 * i] = (unsigned char)(words[i] >> 24);
        b[4 * i + 1] = (unsigned char)(words[i] >> 16);
        b[4 * i + 2] = (unsigned char)(words[i] >> 8);
        b[4 * i + 3] = (unsigned char)words[i];
    }
    return 4 + 4 * (size_t)nd;
}

/* ---------------------------------------------------------------- Fashion-MNIST */

static void fashion_mnist_train_and_test_load_with_exact_scaling(void) {
    const char *splits[2] = {"train", "test"};
    const size_t counts[2] = {60000, 10000};
    const int first_labels[2][5] = {{9, 0, 0, 3, 0}, {9, 2, 1, 1, 6}};
    const long first_image_sum[2] = {76247, 33456}; /* sum of raw bytes of image 0 */
    for (int s = 0; s < 2; s++) {
        dfn_dataset *ds = NULL;
        dfn_status st = dfn_dataset_load_fashion_mnist(&ds, NULL, splits[s]);
        CHECK(st == DFN_OK, "fashion-mnist %s: %s (is dataset-fashion-mnist installed?)",
              splits[s], dfn_last_error());
        if (st != DFN_OK) continue;
        int dims[3];
        CHECK(dfn_dataset_count(ds) == counts[s], "count %zu", dfn_dataset_count(ds));
        CHECK(dfn_dataset_shape(ds, dims) == 3 && dims[0] == 1 && dims[1] == 28 && dims[2] == 28,
              "shape %dx%dx%d", dims[0], dims[1], dims[2]);
        CHECK(dfn_dataset_sample_size(ds) == 784, "sample size");
        CHECK(dfn_dataset_num_classes(ds) == 10, "classes %d", dfn_dataset_num_classes(ds));
        const float *x = dfn_dataset_data(ds);
        size_t n = counts[s] * 784, off_grid = 0;
        float lo = 1e9f, hi = -1e9f;
        for (size_t i = 0; i < n; i++) {
            lo = fminf(lo, x[i]);
            hi = fmaxf(hi, x[i]);
            float level = (x[i] + 1.0f) * 127.5f; /* back to 0..255: must be an integer */
            if (fabsf(level - roundf(level)) > 1e-3f) off_grid++;
        }
        CHECK(lo == -1.0f && hi == 1.0f, "%s: pixel range [%.9g, %.9g], want exactly [-1, 1]",
              splits[s], lo, hi);
        CHECK(off_grid == 0, "%zu values off the 256-level grid", off_grid);
        double sum0 = 0;
        for (int i = 0; i < 784; i++) sum0 += roundf((x[i] + 1.0f) * 127.5f);
        CHECK(sum0 == first_image_sum[s], "%s image 0 byte sum %.0f, want %ld", splits[s], sum0,
              first_image_sum[s]);
        const int *y = dfn_dataset_labels(ds);
        int hist[10] = {0};
        for (size_t i = 0; i < counts[s]; i++) hist[y[i]]++;
        for (int c = 0; c < 10; c++)
            CHECK(hist[c] == (int)counts[s] / 10, "%s class %d: %d images", splits[s], c, hist[c]);
        for (int i = 0; i < 5; i++)
            CHECK(y[i] == first_labels[s][i], "%s label %d = %d", splits[s], i, y[i]);
        dfn_dataset_free(ds);
    }
}

static void fashion_mnist_bad_split_and_missing_dir_are_reported(void) {
    dfn_dataset *ds = NULL;
    CHECK_FAILS(dfn_dataset_load_fashion_mnist(&ds, NULL, "validation"), ds, DFN_ERR_ARG,
                "unknown split 'validation'", "train or test");
    CHECK_FAILS(dfn_dataset_load_fashion_mnist(&ds, "/nonexistent/fmnist", "train"), ds,
                DFN_ERR_IO, "/nonexistent/fmnist/train-images-idx3-ubyte.gz",
                "No such file or directory");
}

/* ---------------------------------------------------------------- IDX written here */

enum { TN = 5, TH = 3, TW = 4 };

/* 5 images of 3x4 with bytes spanning 0..255, labels 0..3. */
static void tiny_idx(unsigned char *img, size_t *img_len, unsigned char *lab, size_t *lab_len) {
    uint32_t idims[3] = {TN, TH, TW}, ldims[1] = {TN};
    size_t h = idx_header(img, 0x00000803, idims, 3);
    for (int i = 0; i < TN * TH * TW; i++)
        img[h + i] = (unsigned char)(i * 255 / (TN * TH * TW - 1));
    *img_len = h + TN * TH * TW;
    h = idx_header(lab, 0x00000801, ldims, 1);
    const unsigned char labels[TN] = {3, 0, 2, 1, 3};
    memcpy(lab + h, labels, TN);
    *lab_len = h + TN;
}

static void check_tiny(dfn_dataset *ds, const unsigned char *img, const char *what) {
    int dims[3];
    CHECK(dfn_dataset_count(ds) == TN && dfn_dataset_shape(ds, dims) == 3 && dims[0] == 1 &&
              dims[1] == TH && dims[2] == TW,
          "%s: shape", what);
    CHECK(dfn_dataset_num_classes(ds) == 4, "%s: classes inferred as max label + 1 = 4, got %d",
          what, dfn_dataset_num_classes(ds));
    const float *x = dfn_dataset_data(ds);
    int bad = 0;
    for (int i = 0; i < TN * TH * TW; i++) bad += x[i] != (float)img[16 + i] / 127.5f - 1.0f;
    CHECK(bad == 0, "%s: %d pixels differ from byte / 127.5 - 1", what, bad);
    CHECK(x[0] == -1.0f && x[TN * TH * TW - 1] == 1.0f, "%s: 0 -> -1 and 255 -> 1", what);
    const int *y = dfn_dataset_labels(ds);
    CHECK(y[0] == 3 && y[1] == 0 && y[2] == 2 && y[3] == 1 && y[4] == 3, "%s: labels", what);
}

static void idx_written_plain_and_gzipped_round_trips(void) {
    unsigned char img[16 + TN * TH * TW], lab[8 + TN];
    size_t il, ll;
    tiny_idx(img, &il, lab, &ll);
    write_bytes(tmp_path("img.idx"), img, il);
    write_bytes(tmp_path("lab.idx"), lab, ll);
    write_gz(tmp_path("img.idx.gz"), img, il);
    write_gz(tmp_path("lab.idx.gz"), lab, ll);

    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_load_idx(&ds, tmp_path("img.idx"), tmp_path("lab.idx"), 0) == DFN_OK, "%s",
          dfn_last_error());
    if (ds) check_tiny(ds, img, "plain");
    dfn_dataset_free(ds);
    ds = NULL;
    CHECK(dfn_dataset_load_idx(&ds, tmp_path("img.idx.gz"), tmp_path("lab.idx.gz"), 0) == DFN_OK,
          "%s", dfn_last_error());
    if (ds) check_tiny(ds, img, "gzip");
    dfn_dataset_free(ds);
    ds = NULL;
    /* mixed, explicit class count, and images alone */
    CHECK(dfn_dataset_load_idx(&ds, tmp_path("img.idx.gz"), tmp_path("lab.idx"), 10) == DFN_OK &&
              dfn_dataset_num_classes(ds) == 10,
          "explicit 10 classes");
    dfn_dataset_free(ds);
    ds = NULL;
    CHECK(dfn_dataset_load_idx(&ds, tmp_path("img.idx"), NULL, 0) == DFN_OK &&
              dfn_dataset_labels(ds) == NULL && dfn_dataset_num_classes(ds) == 0,
          "images without labels are unlabelled");
    dfn_dataset_free(ds);
    /* the Fashion-MNIST helper finds plain files too */
    const char *dir = mkdir_tmp("fm");
    char p[600];
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", dir);
    write_bytes(p, img, il);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", dir);
    write_gz(p, lab, ll);
    ds = NULL;
    CHECK(dfn_dataset_load_fashion_mnist(&ds, dir, "test") == DFN_OK, "%s", dfn_last_error());
    if (ds) CHECK(dfn_dataset_count(ds) == TN && dfn_dataset_num_classes(ds) == 10, "helper");
    dfn_dataset_free(ds);
}

static void idx_bad_inputs_fail_with_named_causes(void) {
    unsigned char img[16 + TN * TH * TW], lab[8 + TN];
    size_t il, ll;
    tiny_idx(img, &il, lab, &ll);
    write_bytes(tmp_path("good-img"), img, il);
    write_bytes(tmp_path("good-lab"), lab, ll);
    dfn_dataset *ds = NULL;

    CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("missing"), NULL, 0), ds, DFN_ERR_IO,
                tmp_path("missing"), "cannot open", "No such file or directory");
    CHECK_FAILS(dfn_dataset_load_idx(&ds, tmpdir, NULL, 0), ds, DFN_ERR_IO, "is a directory");
    /* a label file where images are expected, and the other way round */
    CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("good-lab"), NULL, 0), ds, DFN_ERR_FORMAT,
                "good-lab: not an IDX image file (magic 0x00000801");
    CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("good-img"), tmp_path("good-img"), 0), ds,
                DFN_ERR_FORMAT, "not an IDX label file (magic 0x00000803");
    write_text(tmp_path("text.idx"), "hello, world\n");
    CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("text.idx"), NULL, 0), ds, DFN_ERR_FORMAT,
                "text.idx: not an IDX image file (magic 0x68656c6c");
    /* truncated: in the header, and in the data */
    write_bytes(tmp_path("short-header"), img, 10);
    CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("short-header"), NULL, 0), ds, DFN_ERR_FORMAT,
                "short-header: truncated", "header");
    write_bytes(tmp_path("short-data"), img, il - 7);
    CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("short-data"), NULL, 0), ds, DFN_ERR_FORMAT,
                "short-data: truncated", "5 images of 3x4 (60 bytes)", "only 53 bytes");
    write_bytes(tmp_path("short-labels"), lab, ll - 2);
    CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("good-img"), tmp_path("short-labels"), 0), ds,
                DFN_ERR_FORMAT, "short-labels: truncated", "5 labels", "only 3");
    /* a header whose sizes would need terabytes: truncated, not a crash */
    {
        unsigned char big[16 + 8];
        uint32_t dims[3] = {0x7fffffff, 1000, 1000};
        idx_header(big, 0x00000803, dims, 3);
        memset(big + 16, 7, 8);
        write_bytes(tmp_path("huge-header"), big, sizeof big);
        CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("huge-header"), NULL, 0), ds,
                    DFN_ERR_FORMAT, "huge-header: truncated");
        uint32_t zero[3] = {5, 0, 4};
        idx_header(big, 0x00000803, zero, 3);
        write_bytes(tmp_path("zero-dim"), big, sizeof big);
        CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("zero-dim"), NULL, 0), ds, DFN_ERR_FORMAT,
                    "zero-dim: dimension 1 of the IDX header is 0");
    }
    /* gzip: cut short, and damaged in the middle */
    write_gz(tmp_path("full.gz"), img, il);
    size_t gl;
    unsigned char *gz = read_all(tmp_path("full.gz"), &gl);
    write_bytes(tmp_path("cut.gz"), gz, gl / 2);
    CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("cut.gz"), NULL, 0), ds, DFN_ERR_FORMAT,
                "cut.gz: truncated or corrupt gzip data");
    write_bytes(tmp_path("no-trailer.gz"), gz, gl - 4); /* data complete, length field gone */
    CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("no-trailer.gz"), NULL, 0), ds, DFN_ERR_FORMAT,
                "no-trailer.gz", "gzip");
    gz[gl - 8] ^= 0xff; /* the CRC-32 of the trailer */
    write_bytes(tmp_path("bad-crc.gz"), gz, gl);
    CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("bad-crc.gz"), NULL, 0), ds, DFN_ERR_FORMAT,
                "bad-crc.gz: truncated or corrupt gzip data",
                "incorrect data check");
    free(gz);
    /* labels: count mismatch, out of range */
    {
        unsigned char l4[8 + 4];
        uint32_t d4[1] = {4};
        size_t h = idx_header(l4, 0x00000801, d4, 1);
        memset(l4 + h, 1, 4);
        write_bytes(tmp_path("four-labels"), l4, sizeof l4);
        CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("good-img"), tmp_path("four-labels"), 0),
                    ds, DFN_ERR_FORMAT, "four-labels: 4 labels, but", "good-img has 5 images");
        CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("good-img"), tmp_path("good-lab"), 3), ds,
                    DFN_ERR_FORMAT, "good-lab: label 3 of image 0 is out of range 0..2");
        CHECK_FAILS(dfn_dataset_load_idx(&ds, tmp_path("good-img"), tmp_path("good-lab"), -1), ds,
                    DFN_ERR_ARG, "-1 classes");
    }
}

/* ---------------------------------------------------------------- image folders */

/* A w x h image with c channels whose pixel (x, y, ch) is pattern(x, y, ch). */
static unsigned char pattern(int x, int y, int ch, int seed) {
    return (unsigned char)((x * 37 + y * 11 + ch * 71 + seed * 13) & 0xff);
}

static void write_png(const char *dir, const char *name, int w, int h, int c, int seed) {
    unsigned char *pix = malloc((size_t)w * h * c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++) pix[(y * w + x) * c + ch] = pattern(x, y, ch, seed);
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (!stbi_write_png(p, w, h, c, pix, w * c)) {
        fprintf(stderr, "cannot write %s\n", p);
        exit(2);
    }
    free(pix);
}

static float unit(unsigned char v) { return (float)v / 127.5f - 1.0f; }

static void image_folder_gray_sorted_by_name(void) {
    const char *dir = mkdir_tmp("gray");
    write_png(dir, "b.png", 8, 6, 1, 2);
    write_png(dir, "a.png", 8, 6, 1, 1);
    write_png(dir, "c.PNG", 8, 6, 1, 3);
    write_text(tmp_path("gray/notes.txt"), "not an image");
    write_text(tmp_path("gray/.hidden"), "neither");
    dfn_dataset *ds = NULL;
    dfn_image_folder_params p = dfn_image_folder_params_init();
    CHECK(dfn_dataset_load_image_folder(&ds, dir, &p) == DFN_OK, "%s", dfn_last_error());
    if (!ds) return;
    int dims[3];
    /* own size kept: 8x6 center-cropped to 6x6 (columns 1..6) */
    CHECK(dfn_dataset_count(ds) == 3 && dfn_dataset_shape(ds, dims) == 3 && dims[0] == 1 &&
              dims[1] == 6 && dims[2] == 6,
          "gray folder: %zu images of %dx%dx%d", dfn_dataset_count(ds), dims[0], dims[1], dims[2]);
    int bad = 0;
    for (int i = 0; i < 3; i++)
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 6; x++)
                bad += dfn_dataset_sample(ds, i)[y * 6 + x] != unit(pattern(x + 1, y, 0, i + 1));
    CHECK(bad == 0, "gray folder: %d pixels differ (order a, b, c; crop offset 1)", bad);
    CHECK(dfn_dataset_labels(ds) == NULL, "folders are unlabelled");
    dfn_dataset_free(ds);
}

static void image_folder_rgb_planes_crop_and_conversions(void) {
    const char *dir = mkdir_tmp("rgb");
    write_png(dir, "x1.png", 6, 4, 3, 5);
    write_png(dir, "x2.png", 6, 4, 4, 6); /* RGBA: alpha dropped, counts as RGB */
    dfn_dataset *ds = NULL;
    dfn_image_folder_params p = dfn_image_folder_params_init();
    p.size = 4; /* shorter side already 4: no resampling, crop columns 1..4 */
    CHECK(dfn_dataset_load_image_folder(&ds, dir, &p) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        int dims[3];
        dfn_dataset_shape(ds, dims);
        CHECK(dims[0] == 3 && dims[1] == 4 && dims[2] == 4, "rgb: %dx%dx%d", dims[0], dims[1],
              dims[2]);
        int bad = 0;
        for (int i = 0; i < 2; i++)
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < 4; y++)
                    for (int x = 0; x < 4; x++)
                        bad += dfn_dataset_sample(ds, i)[(ch * 4 + y) * 4 + x] !=
                               unit(pattern(x + 1, y, ch, 5 + i));
        CHECK(bad == 0, "rgb: %d values differ from the CHW planes of the crop", bad);
        dfn_dataset_free(ds);
        ds = NULL;
    }
    /* RGB -> gray on request, with PIL's convert("L"): L = (19595 R + 38470 G
     * + 7471 B + 2^15) >> 16 exactly; gray -> RGB replicates */
    p.channels = 1;
    CHECK(dfn_dataset_load_image_folder(&ds, dir, &p) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        int dims[3];
        dfn_dataset_shape(ds, dims);
        CHECK(dims[0] == 1, "converted to gray: %d channels", dims[0]);
        const float *g = dfn_dataset_sample(ds, 0); /* x0.png, 6 x 4, center-cropped to 4 x 4 */
        int bad = 0;
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++) {
                const unsigned r = pattern(x + 1, y, 0, 5), gr = pattern(x + 1, y, 1, 5), b = pattern(x + 1, y, 2, 5);
                const unsigned char want = (unsigned char)((19595 * r + 38470 * gr + 7471 * b + 32768) >> 16);
                bad += g[y * 4 + x] != unit(want);
            }
        CHECK(bad == 0, "RGB -> gray: %d of 16 pixels differ from PIL's luma", bad);
        dfn_dataset_free(ds);
        ds = NULL;
    }
    const char *gdir = mkdir_tmp("gray2rgb");
    write_png(gdir, "g.png", 5, 5, 1, 9);
    p = dfn_image_folder_params_init();
    p.channels = 3;
    CHECK(dfn_dataset_load_image_folder(&ds, gdir, &p) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        const float *x = dfn_dataset_sample(ds, 0);
        CHECK(!memcmp(x, x + 25, 25 * sizeof(float)) && !memcmp(x, x + 50, 25 * sizeof(float)) &&
                  x[7] == unit(pattern(2, 1, 0, 9)),
              "gray -> RGB repeats the plane");
        dfn_dataset_free(ds);
    }
}

static void image_folder_resizes_by_area_and_bilinear(void) {
    /* 8x8 made of constant 2x2 blocks: halving by area averaging is exact. */
    const char *dir = mkdir_tmp("resize");
    unsigned char big[64], small[4];
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) big[y * 8 + x] = (unsigned char)(((x / 2) * 4 + (y / 2)) * 15);
    char path[600];
    snprintf(path, sizeof path, "%s/blocks.png", dir);
    stbi_write_png(path, 8, 8, 1, big, 8);
    /* a 12x16 (w x h) portrait image of one gray level: any resampling keeps it */
    unsigned char flat[12 * 16];
    memset(flat, 200, sizeof flat);
    snprintf(path, sizeof path, "%s/flat.png", dir);
    stbi_write_png(path, 12, 16, 1, flat, 12);
    /* a 2x2 image enlarged to 4x4 */
    small[0] = 0, small[1] = 100, small[2] = 100, small[3] = 200;
    snprintf(path, sizeof path, "%s/small.png", dir);
    stbi_write_png(path, 2, 2, 1, small, 2);

    dfn_dataset *ds = NULL;
    dfn_image_folder_params p = dfn_image_folder_params_init();
    p.size = 4;
    CHECK(dfn_dataset_load_image_folder(&ds, dir, &p) == DFN_OK, "%s", dfn_last_error());
    if (!ds) return;
    CHECK(dfn_dataset_count(ds) == 3 && dfn_dataset_sample_size(ds) == 16, "resize: shapes");
    int bad = 0;
    const float *b = dfn_dataset_sample(ds, 0); /* blocks.png */
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) bad += b[y * 4 + x] != unit((unsigned char)((x * 4 + y) * 15));
    CHECK(bad == 0, "area halving of 2x2 blocks: %d pixels off", bad);
    const float *f = dfn_dataset_sample(ds, 1); /* flat.png: 12x16 -> 4x5 (rounded), crop 4x4 */
    bad = 0;
    for (int i = 0; i < 16; i++) bad += f[i] != unit(200);
    CHECK(bad == 0, "flat image stays flat through resize and crop");
    const float *s = dfn_dataset_sample(ds, 2); /* small.png enlarged */
    int monotone = 1;
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 3; x++) monotone &= s[y * 4 + x] <= s[y * 4 + x + 1];
    CHECK(monotone && s[0] >= unit(0) && s[15] <= unit(200) && s[0] < s[15],
          "bilinear enlargement is monotone between the corner values");
    dfn_dataset_free(ds);
}

static void image_folder_jpeg_loads(void) {
    const char *dir = mkdir_tmp("jpeg");
    unsigned char pix[16 * 16 * 3];
    for (int i = 0; i < 16 * 16 * 3; i++) pix[i] = 128;
    char path[600];
    snprintf(path, sizeof path, "%s/photo.jpg", dir);
    CHECK(stbi_write_jpg(path, 16, 16, 3, pix, 95), "write jpg");
    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_load_image_folder(&ds, dir, NULL) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        int dims[3];
        dfn_dataset_shape(ds, dims);
        float v = dfn_dataset_sample(ds, 0)[0];
        CHECK(dims[0] == 3 && dims[1] == 16 && fabsf(v - unit(128)) < 0.05f,
              "jpeg: %dx%dx%d, value %g", dims[0], dims[1], dims[2], v);
        dfn_dataset_free(ds);
    }
}

static void image_folder_bad_inputs_name_the_file(void) {
    dfn_dataset *ds = NULL;
    dfn_image_folder_params p = dfn_image_folder_params_init();
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, tmp_path("no-such-folder"), &p), ds, DFN_ERR_IO,
                "no-such-folder: cannot open folder");
    const char *empty = mkdir_tmp("empty");
    write_text(tmp_path("empty/readme.txt"), "no images here");
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, empty, &p), ds, DFN_ERR_IO,
                "empty: no image files");

    const char *corrupt = mkdir_tmp("corrupt");
    write_png(corrupt, "a.png", 4, 4, 1, 0);
    write_text(tmp_path("corrupt/b.png"), "this is not a PNG at all");
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, corrupt, &p), ds, DFN_ERR_FORMAT,
                "corrupt/b.png: not a PNG or JPEG image");
    /* a PNG whose header is intact but whose pixel data is cut off */
    const char *cut = mkdir_tmp("cut");
    write_png(cut, "a.png", 32, 32, 3, 1);
    char path[600];
    snprintf(path, sizeof path, "%s/a.png", cut);
    size_t n;
    unsigned char *png = read_all(path, &n);
    write_bytes(path, png, n / 2);
    free(png);
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, cut, &p), ds, DFN_ERR_FORMAT,
                "cut/a.png: not a readable PNG (a chunk at byte 33 claims");

    const char *mixc = mkdir_tmp("mixed-channels");
    write_png(mixc, "a.png", 4, 4, 1, 0);
    write_png(mixc, "b.png", 4, 4, 3, 0);
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, mixc, &p), ds, DFN_ERR_FORMAT,
                "mixed-channels/b.png: an RGB image, but a.png is gray");
    p.channels = 3; /* converting makes it fine */
    CHECK(dfn_dataset_load_image_folder(&ds, mixc, &p) == DFN_OK, "%s", dfn_last_error());
    dfn_dataset_free(ds);
    ds = NULL;

    p = dfn_image_folder_params_init();
    const char *mixs = mkdir_tmp("mixed-sizes");
    write_png(mixs, "a.png", 8, 8, 1, 0);
    write_png(mixs, "b.png", 6, 7, 1, 0);
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, mixs, &p), ds, DFN_ERR_FORMAT,
                "mixed-sizes/b.png: 6x7 pixels, but a.png is 8x8");
    p.resize = 0;
    p.size = 6;
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, mixs, &p), ds, DFN_ERR_FORMAT,
                "b.png: 6x7 pixels, but a.png is 8x8");
    p.resize = 1; /* resizing makes it fine */
    CHECK(dfn_dataset_load_image_folder(&ds, mixs, &p) == DFN_OK && dfn_dataset_count(ds) == 2,
          "%s", dfn_last_error());
    dfn_dataset_free(ds);
    ds = NULL;
    p.resize = 0;
    p.size = 16;
    const char *small = mkdir_tmp("too-small");
    write_png(small, "a.png", 8, 8, 1, 0);
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, small, &p), ds, DFN_ERR_FORMAT,
                "a.png: 8x8 pixels, smaller than the requested 16x16");
    p.channels = 2;
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, small, &p), ds, DFN_ERR_ARG,
                "2 channels requested");
}

/* A PNG chunk: length, type, data, CRC-32 of type and data (crc_fix is
 * xor-ed into the CRC: 0 for a correct one). */
static size_t png_chunk(unsigned char *out, const char *type, const void *data, uint32_t n,
                        uint32_t crc_fix) {
    const unsigned char len[4] = {n >> 24, n >> 16, n >> 8, n};
    memcpy(out, len, 4);
    memcpy(out + 4, type, 4);
    if (n) memcpy(out + 8, data, n);
    uint32_t crc = (uint32_t)crc32(0, out + 4, 4 + n) ^ crc_fix;
    const unsigned char c[4] = {crc >> 24, crc >> 16, crc >> 8, crc};
    memcpy(out + 8 + n, c, 4);
    return 12 + n;
}

/* A PNG that only has a header: IHDR (w, h, 8 bits, color type), an IDAT of
 * two bytes and IEND. */
static void write_png_header_only(const char *path, uint32_t w, uint32_t h, int color) {
    unsigned char f[64], ihdr[13] = {w >> 24, w >> 16, w >> 8, w, h >> 24, h >> 16, h >> 8, h,
                                     8, (unsigned char)color, 0, 0, 0};
    memcpy(f, "\x89PNG\r\n\x1a\n", 8);
    size_t n = 8 + png_chunk(f + 8, "IHDR", ihdr, 13, 0);
    n += png_chunk(f + n, "IDAT", "\x78\x9c", 2, 0);
    n += png_chunk(f + n, "IEND", NULL, 0, 0);
    write_bytes(path, f, n);
}

/* PNG goes through libpng: a chunk with a wrong CRC is refused, critical or
 * ancillary (stb_image accepted both); and no header makes the decoder take
 * more memory than the file can justify. */
static void image_decoding_checks_crcs_and_claims(void) {
    dfn_dataset *ds = NULL;
    dfn_image_folder_params p = dfn_image_folder_params_init();
    char path[600];
    size_t n;

    const char *hdr = mkdir_tmp("crc-ihdr");
    write_png(hdr, "a.png", 8, 8, 3, 1);
    snprintf(path, sizeof path, "%s/a.png", hdr);
    unsigned char *png = read_all(path, &n);
    png[8 + 8 + 13 + 1] ^= 0x40; /* a bit of IHDR's CRC */
    write_bytes(path, png, n);
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, hdr, &p), ds, DFN_ERR_FORMAT,
                "crc-ihdr/a.png: not a readable PNG (IHDR: CRC error)");

    const char *anc = mkdir_tmp("crc-text");
    snprintf(path, sizeof path, "%s/a.png", anc);
    png[8 + 8 + 13 + 1] ^= 0x40; /* IHDR intact again; a tEXt chunk after it, CRC wrong */
    unsigned char *withtext = malloc(n + 64);
    memcpy(withtext, png, 33);
    size_t m = 33 + png_chunk(withtext + 33, "tEXt", "Comment\0hi", 10, 1);
    memcpy(withtext + m, png + 33, n - 33);
    write_bytes(path, withtext, m + n - 33);
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, anc, &p), ds, DFN_ERR_FORMAT,
                "crc-text/a.png: not a readable PNG (tEXt: CRC error)");
    /* the same chunk with its CRC right is read */
    png_chunk(withtext + 33, "tEXt", "Comment\0hi", 10, 0);
    write_bytes(path, withtext, m + n - 33);
    CHECK(dfn_dataset_load_image_folder(&ds, anc, &p) == DFN_OK, "tEXt with a good CRC: %s",
          dfn_last_error());
    dfn_dataset_free(ds);
    ds = NULL;
    free(withtext);
    free(png);

    const char *big = mkdir_tmp("claims");
    snprintf(path, sizeof path, "%s/a.png", big);
    write_png_header_only(path, 20000, 20000, 0); /* 400 MB of gray in 59 bytes */
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, big, &p), ds, DFN_ERR_FORMAT,
                "claims/a.png: the header claims 20000 x 20000 pixels (400000000 bytes decoded), "
                "more than a file of 59 bytes can hold");
    write_png_header_only(path, 60000, 60000, 2);
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, big, &p), ds, DFN_ERR_FORMAT,
                "claims/a.png: the header claims 60000 x 60000 pixels, 10.1 GiB decoded");
    write_png_header_only(path, 70000, 1, 0);
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, big, &p), ds, DFN_ERR_FORMAT,
                "claims/a.png: the header claims 70000 x 1 pixels (1 to 65535 a side)");
    remove(path);
    /* a JPEG whose frame claims 30000 x 30000 gray pixels, then a scan header */
    static const unsigned char jpeg[] = {0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8, 0x75, 0x30, 0x75, 0x30, 1, 1, 0x11, 0,
                                         0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 0xFF, 0xD9};
    snprintf(path, sizeof path, "%s/b.jpg", big);
    write_bytes(path, jpeg, sizeof jpeg);
    CHECK_FAILS(dfn_dataset_load_image_folder(&ds, big, &p), ds, DFN_ERR_FORMAT,
                "claims/b.jpg: the header claims 30000 x 30000 pixels");
}

/* ---------------------------------------------------------------- CSV */

static void csv_with_header_labels_blank_lines_and_crlf(void) {
    write_text(tmp_path("good.csv"),
               "x, y ,label,z\r\n"
               "1.5,-2,3,0.25\r\n"
               "\r\n"
               " 4e-1 ,5,0,6\r\n"
               "7,8,1,-9.5\n");
    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_load_csv(&ds, tmp_path("good.csv"), 2) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        int dims[3];
        CHECK(dfn_dataset_count(ds) == 3 && dfn_dataset_shape(ds, dims) == 1 && dims[0] == 3,
              "csv: %zu rows of %d", dfn_dataset_count(ds), dims[0]);
        const float want[9] = {1.5f, -2, 0.25f, 0.4f, 5, 6, 7, 8, -9.5f};
        CHECK(!memcmp(dfn_dataset_data(ds), want, sizeof want), "csv values");
        const int *y = dfn_dataset_labels(ds);
        CHECK(y && y[0] == 3 && y[1] == 0 && y[2] == 1 && dfn_dataset_num_classes(ds) == 4,
              "csv labels");
        dfn_dataset_free(ds);
        ds = NULL;
    }
    write_text(tmp_path("nohead.csv"), "1,2\n3,4\n5,6");
    CHECK(dfn_dataset_load_csv(&ds, tmp_path("nohead.csv"), -1) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        const float want[6] = {1, 2, 3, 4, 5, 6};
        CHECK(dfn_dataset_count(ds) == 3 && !memcmp(dfn_dataset_data(ds), want, sizeof want) &&
                  dfn_dataset_labels(ds) == NULL,
              "csv without header or final newline");
        dfn_dataset_free(ds);
    }
}

static void csv_bad_inputs_name_line_and_column(void) {
    dfn_dataset *ds = NULL;
    CHECK_FAILS(dfn_dataset_load_csv(&ds, tmp_path("none.csv"), -1), ds, DFN_ERR_IO,
                "none.csv: cannot open");
    write_text(tmp_path("data.csv"), "a,b,c\n1,2,3\n4,5,6\n7,abc,9\n");
    CHECK_FAILS(dfn_dataset_load_csv(&ds, tmp_path("data.csv"), -1), ds, DFN_ERR_FORMAT,
                "data.csv:4: column 2: 'abc' is not a number");
    write_text(tmp_path("ragged.csv"), "1,2,3\n4,5,6\n7,8\n");
    CHECK_FAILS(dfn_dataset_load_csv(&ds, tmp_path("ragged.csv"), -1), ds, DFN_ERR_FORMAT,
                "ragged.csv:3: 2 columns, expected 3 as on line 1");
    write_text(tmp_path("long.csv"), "h1,h2\n1,2\n3,4,5\n");
    CHECK_FAILS(dfn_dataset_load_csv(&ds, tmp_path("long.csv"), -1), ds, DFN_ERR_FORMAT,
                "long.csv:3: 3 columns, expected 2 as on line 1");
    write_text(tmp_path("emptyfield.csv"), "1,2\n3,\n");
    CHECK_FAILS(dfn_dataset_load_csv(&ds, tmp_path("emptyfield.csv"), -1), ds, DFN_ERR_FORMAT,
                "emptyfield.csv:2: column 2: empty field");
    write_text(tmp_path("nan.csv"), "1,2\nnan,4\n");
    CHECK_FAILS(dfn_dataset_load_csv(&ds, tmp_path("nan.csv"), -1), ds, DFN_ERR_FORMAT,
                "nan.csv:2: column 1: 'nan' is not a finite number");
    write_text(tmp_path("label.csv"), "1,2\n3,1.5\n");
    CHECK_FAILS(dfn_dataset_load_csv(&ds, tmp_path("label.csv"), 1), ds, DFN_ERR_FORMAT,
                "label.csv:2: column 2: '1.5' is not a class label");
    CHECK_FAILS(dfn_dataset_load_csv(&ds, tmp_path("label.csv"), 5), ds, DFN_ERR_ARG,
                "label.csv:1: label column 5");
    write_text(tmp_path("onecol.csv"), "1\n2\n");
    CHECK_FAILS(dfn_dataset_load_csv(&ds, tmp_path("onecol.csv"), 0), ds, DFN_ERR_FORMAT,
                "onecol.csv:1: no column is left");
    write_text(tmp_path("empty.csv"), "\n\n");
    CHECK_FAILS(dfn_dataset_load_csv(&ds, tmp_path("empty.csv"), -1), ds, DFN_ERR_FORMAT,
                "empty.csv: no data rows (empty file)");
    write_text(tmp_path("header.csv"), "x,y\n");
    CHECK_FAILS(dfn_dataset_load_csv(&ds, tmp_path("header.csv"), -1), ds, DFN_ERR_FORMAT,
                "header.csv: no data rows (only a header)");
}

/* ---------------------------------------------------------------- arrays */

static void from_array_copies_and_checks(void) {
    float x[2 * 3 * 4];
    for (int i = 0; i < 24; i++) x[i] = (float)i;
    int dims[2] = {3, 4}, labels[2] = {1, 0};
    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_from_array(&ds, x, 2, 2, dims, labels, 0) == DFN_OK, "%s", dfn_last_error());
    if (ds) {
        int d[3];
        CHECK(dfn_dataset_shape(ds, d) == 3 && d[0] == 1 && d[1] == 3 && d[2] == 4,
              "(H, W) samples become (1, H, W)");
        x[5] = -1;
        labels[0] = 7;
        CHECK(dfn_dataset_data(ds)[5] == 5.0f && dfn_dataset_labels(ds)[0] == 1,
              "the dataset holds a copy");
        CHECK(dfn_dataset_num_classes(ds) == 2, "classes inferred");
        dfn_dataset_free(ds);
        ds = NULL;
    }
    x[5] = NAN;
    int vdim = 12;
    CHECK_FAILS(dfn_dataset_from_array(&ds, x, 2, 1, &vdim, NULL, 0), ds, DFN_ERR_NUMERIC,
                "sample 0, element 5 is NaN");
    x[5] = 0;
    labels[0] = 2;
    CHECK_FAILS(dfn_dataset_from_array(&ds, x, 2, 1, &vdim, labels, 2), ds, DFN_ERR_ARG,
                "label 2 of sample 0 is out of range 0..1");
    int bad_dims[3] = {1, 0, 4};
    CHECK_FAILS(dfn_dataset_from_array(&ds, x, 2, 3, bad_dims, NULL, 0), ds, DFN_ERR_ARG,
                "dimension 1 of a sample is 0");
    CHECK_FAILS(dfn_dataset_from_array(&ds, x, 0, 1, &vdim, NULL, 0), ds, DFN_ERR_ARG,
                "no samples");
    CHECK_FAILS(dfn_dataset_new(&ds, (size_t)1 << 62, 1, &vdim, 0), ds, DFN_ERR_ARG,
                "do not fit in memory");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfn_test_data_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    fashion_mnist_train_and_test_load_with_exact_scaling();
    fashion_mnist_bad_split_and_missing_dir_are_reported();
    idx_written_plain_and_gzipped_round_trips();
    idx_bad_inputs_fail_with_named_causes();
    image_folder_gray_sorted_by_name();
    image_folder_rgb_planes_crop_and_conversions();
    image_folder_resizes_by_area_and_bilinear();
    image_folder_jpeg_loads();
    image_folder_bad_inputs_name_the_file();
    image_decoding_checks_crcs_and_claims();
    csv_with_header_labels_blank_lines_and_crlf();
    csv_bad_inputs_name_line_and_column();
    from_array_copies_and_checks();
    rm_tree(tmpdir);
    TEST_MAIN_END();
}

/* test_npy.c - .npy reading (every supported dtype, versions 1.0-3.0, old
 * header spellings) and writing (byte layout numpy expects, round trip), and
 * one hand-made bad file per check: each must fail with the file name and the
 * problem in the message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "io/npy.h"
#include "test_tmpdir.h"
#include "test_util.h"


/* An .npy file from parts: version, the header dict (padded with spaces and
 * '\n' to a multiple of `align` bytes from the file start), then data. */
static const char *make_npy(const char *name, int major, const char *dict, int align,
                            const void *data, size_t n_data) {
    const char *path = tmp_path(name);
    size_t prefix = major == 1 ? 10 : 12, len = strlen(dict);
    char header[1024];
    memcpy(header, dict, len);
    while ((prefix + len + 1) % (size_t)align) header[len++] = ' ';
    header[len++] = '\n';
    FILE *fp = fopen(path, "wb");
    DFN_ASSERT(fp);
    unsigned char pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', (unsigned char)major, 0};
    for (size_t i = 0; i < prefix - 8; i++) pre[8 + i] = (unsigned char)(len >> (8 * i));
    fwrite(pre, 1, prefix, fp);
    fwrite(header, 1, len, fp);
    if (n_data) fwrite(data, 1, n_data, fp);
    fclose(fp);
    return path;
}

static void expect_read_error(const char *path, const char *kw1, const char *kw2) {
    dfn_npy_array a;
    dfn_status st = dfn_npy_read(path, &a);
    const char *msg = dfn_last_error();
    if (getenv("DFN_TEST_VERBOSE")) printf("  [%s] %s\n", dfn_status_name(st), dfn_last_error());
    CHECK(st != DFN_OK, "%s: expected an error (%s)", path, kw1);
    CHECK(a.data == NULL, "%s: no data on failure", path);
    CHECK(strstr(msg, path) != NULL, "message does not name the file: %s", msg);
    CHECK(strstr(msg, kw1) != NULL, "message lacks '%s': %s", kw1, msg);
    if (kw2) CHECK(strstr(msg, kw2) != NULL, "message lacks '%s': %s", kw2, msg);
    if (st == DFN_OK) dfn_npy_free(&a);
}

static void test_write_read(void) {
    const char *path = tmp_path("x.npy");
    float x[24];
    fill_uniform(x, 24, 1);
    int64_t shape[3] = {2, 3, 4};
    CHECK(dfn_npy_write_f32(path, x, 3, shape) == DFN_OK, "write: %s", dfn_last_error());

    /* Byte layout: magic, version 1.0, then the 62-character dict padded with
     * spaces and '\n' so that the data starts at byte 128 (a multiple of 64). */
    unsigned char raw[256];
    FILE *fp = fopen(path, "rb");
    size_t n = fp ? fread(raw, 1, sizeof raw, fp) : 0;
    if (fp) fclose(fp);
    CHECK(n == 128 + 96, "file size %zu, expected 224", n);
    CHECK(memcmp(raw, "\x93NUMPY\x01\x00", 8) == 0, "magic and version");
    CHECK(raw[8] + 256 * raw[9] == 118, "header length %d", raw[8] + 256 * raw[9]);
    CHECK(raw[72] == ' ' && raw[127] == '\n', "header padded with spaces, ends with a newline");
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }";
    CHECK(memcmp(raw + 10, dict, strlen(dict)) == 0, "header dict: %.54s", (const char *)raw + 10);
    CHECK(memcmp(raw + 128, x, 96) == 0, "data bytes");

    dfn_npy_array a;
    dfn_status st = dfn_npy_read(path, &a);
    CHECK(st == DFN_OK, "read: %s", dfn_last_error());
    if (st == DFN_OK) {
        CHECK(a.dtype == DFN_DTYPE_F32 && a.ndim == 3 && a.shape[0] == 2 && a.shape[1] == 3 &&
                  a.shape[2] == 4 && a.numel == 24,
              "shape and dtype");
        CHECK(memcmp(a.data, x, sizeof x) == 0, "bit-exact round trip");
        dfn_npy_free(&a);
        CHECK(a.data == NULL, "free clears");
    }

    /* 1-d (numpy spells the shape "(5,)") and 0-d arrays. */
    path = tmp_path("v.npy");
    int64_t s5[1] = {5};
    CHECK(dfn_npy_write_f32(path, x, 1, s5) == DFN_OK, "write 1-d");
    fp = fopen(path, "rb");
    n = fp ? fread(raw, 1, sizeof raw, fp) : 0;
    if (fp) fclose(fp);
    char text[129] = "";
    if (n >= 128) memcpy(text, raw + 10, 118);
    CHECK(n == 128 + 20 && strstr(text, "'shape': (5,), }"), "1-d header: %s", text);
    CHECK(dfn_npy_read(path, &a) == DFN_OK && a.ndim == 1 && a.numel == 5 &&
              memcmp(a.data, x, 20) == 0,
          "1-d round trip");
    dfn_npy_free(&a);

    path = tmp_path("s.npy");
    CHECK(dfn_npy_write_f32(path, x, 0, NULL) == DFN_OK, "write 0-d");
    CHECK(dfn_npy_read(path, &a) == DFN_OK && a.ndim == 0 && a.numel == 1 && a.data[0] == x[0],
          "0-d round trip");
    dfn_npy_free(&a);

    path = tmp_path("z.npy");
    int64_t s0[2] = {0, 3};
    CHECK(dfn_npy_write_f32(path, NULL, 2, s0) == DFN_OK, "write empty");
    CHECK(dfn_npy_read(path, &a) == DFN_OK && a.ndim == 2 && a.numel == 0, "empty round trip");
    dfn_npy_free(&a);

    char missing[300];
    snprintf(missing, sizeof missing, "%s/no_such_dir/x.npy", tmpdir);
    st = dfn_npy_write_f32(missing, x, 1, s5);
    CHECK(st == DFN_ERR_IO && strstr(dfn_last_error(), missing), "write into a missing dir: %s",
          dfn_last_error());
}

/* Files as numpy writes them for the other dtypes, converted by value. */
static void test_dtypes(void) {
    dfn_npy_array a;
    unsigned char u8[4] = {0, 1, 128, 255};
    const char *p = make_npy("u8.npy", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }",
                             64, u8, 4);
    CHECK(dfn_npy_read(p, &a) == DFN_OK && a.dtype == DFN_DTYPE_U8 && a.numel == 4 &&
              a.data[0] == 0 && a.data[2] == 128 && a.data[3] == 255,
          "uint8: %s", dfn_last_error());
    dfn_npy_free(&a);

    int16_t i16[3] = {-32768, -1, 32767};
    p = make_npy("i16.npy", 1, "{'descr': '<i2', 'fortran_order': False, 'shape': (3,), }", 64,
                 i16, sizeof i16);
    CHECK(dfn_npy_read(p, &a) == DFN_OK && a.dtype == DFN_DTYPE_I16 && a.data[0] == -32768 &&
              a.data[1] == -1 && a.data[2] == 32767,
          "int16: %s", dfn_last_error());
    dfn_npy_free(&a);

    int32_t i32[2] = {-123456, 7};
    p = make_npy("i32.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }", 64,
                 i32, sizeof i32);
    CHECK(dfn_npy_read(p, &a) == DFN_OK && a.dtype == DFN_DTYPE_I32 && a.data[0] == -123456 &&
              a.data[1] == 7,
          "int32: %s", dfn_last_error());
    dfn_npy_free(&a);

    int64_t i64[2] = {-9, INT64_C(1) << 40};
    p = make_npy("i64.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", 64,
                 i64, sizeof i64);
    CHECK(dfn_npy_read(p, &a) == DFN_OK && a.dtype == DFN_DTYPE_I64 && a.data[0] == -9 &&
              a.data[1] == 0x1p40f,
          "int64: %s", dfn_last_error());
    dfn_npy_free(&a);

    /* float64, big enough to cross the reader's conversion chunk (64 KiB). */
    enum { N = 20000 };
    double *f64 = malloc(N * sizeof(double));
    for (int i = 0; i < N; i++) f64[i] = 0.1 * i - 7;
    p = make_npy("f64.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (100, 200), }",
                 64, f64, N * sizeof(double));
    dfn_status st = dfn_npy_read(p, &a);
    CHECK(st == DFN_OK && a.dtype == DFN_DTYPE_F64 && a.numel == N, "float64: %s",
          dfn_last_error());
    if (st == DFN_OK) {
        int ok = 1;
        for (int i = 0; i < N; i++) ok &= a.data[i] == (float)f64[i];
        CHECK(ok, "float64 values round to nearest float");
    }
    dfn_npy_free(&a);
    free(f64);

    /* Versions 2.0 and 3.0 (4-byte header length), an old 16-byte aligned
     * header, Python 2 long integers, double quotes and odd spacing. */
    float f[2] = {1.5f, -2.5f};
    p = make_npy("v2.npy", 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 64, f, 8);
    CHECK(dfn_npy_read(p, &a) == DFN_OK && a.data[1] == -2.5f, "version 2.0: %s", dfn_last_error());
    dfn_npy_free(&a);
    p = make_npy("v3.npy", 3, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 64, f, 8);
    CHECK(dfn_npy_read(p, &a) == DFN_OK && a.data[0] == 1.5f, "version 3.0: %s", dfn_last_error());
    dfn_npy_free(&a);
    p = make_npy("old.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 2L), }", 16,
                 f, 8);
    CHECK(dfn_npy_read(p, &a) == DFN_OK && a.ndim == 2 && a.shape[1] == 2, "py2 header: %s",
          dfn_last_error());
    dfn_npy_free(&a);
    p = make_npy("spacing.npy", 1, "{ \"shape\":(2 ,) ,\"fortran_order\" : False,'descr':'<f4'}", 64,
                 f, 8);
    CHECK(dfn_npy_read(p, &a) == DFN_OK && a.numel == 2, "key order and spacing: %s",
          dfn_last_error());
    dfn_npy_free(&a);
}

static void test_bad_files(void) {
    float f[4] = {1, 2, 3, 4};
    expect_read_error(tmp_path("missing.npy"), "cannot open", "No such file");

    const char *p = tmp_path("empty.npy");
    FILE *fp = fopen(p, "wb");
    fclose(fp);
    expect_read_error(p, "not a .npy file", NULL);

    p = tmp_path("magic.npy");
    fp = fopen(p, "wb");
    fwrite("PK\x03\x04 this is a zip, not an npy", 1, 30, fp);
    fclose(fp);
    expect_read_error(p, "bad magic", NULL);

    p = make_npy("fortran.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 64,
                 f, 16);
    expect_read_error(p, "fortran_order=True", "not supported");

    /* The message the brief asks for, verbatim after the path. */
    p = make_npy("data.npy", 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 64, f,
                 16);
    dfn_npy_array a;
    CHECK(dfn_npy_read(p, &a) == DFN_ERR_FORMAT, "complex64 rejected");
    char want[400];
    snprintf(want, sizeof want,
             "%s: dtype '<c8' is not supported (use float32, float64, uint8, int16, int32 or "
             "int64)",
             p);
    CHECK(strcmp(dfn_last_error(), want) == 0, "message: %s", dfn_last_error());

    p = make_npy("bigendian.npy", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", 64,
                 f, 16);
    expect_read_error(p, "'>f4'", "big-endian");
    p = make_npy("object.npy", 1, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 64, f,
                 16);
    expect_read_error(p, "'|O'", "not supported");
    p = make_npy("struct.npy", 1,
                 "{'descr': [('x', '<f4'), ('y', '<f4')], 'fortran_order': False, 'shape': (2,), }",
                 64, f, 16);
    expect_read_error(p, "structured", NULL);
    p = make_npy("f2.npy", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 64, f, 4);
    expect_read_error(p, "'<f2'", "not supported");

    p = make_npy("truncated.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
                 64, f, 16);
    expect_read_error(p, "truncated data", "(3, 4)");
    p = make_npy("extra.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 64, f,
                 16);
    expect_read_error(p, "unexpected bytes after the data", NULL);

    p = tmp_path("trunc_header.npy");
    fp = fopen(p, "wb");
    fwrite("\x93NUMPY\x01\x00\x76\x00{'descr'", 1, 17, fp);
    fclose(fp);
    expect_read_error(p, "truncated header", NULL);

    p = make_npy("version.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 64,
                 f, 16);
    fp = fopen(p, "r+b");
    fseek(fp, 6, SEEK_SET);
    fputc(4, fp);
    fclose(fp);
    expect_read_error(p, "version 4.0", NULL);

    p = make_npy("nokey.npy", 1, "{'descr': '<f4', 'shape': (4,), }", 64, f, 16);
    expect_read_error(p, "no 'fortran_order'", NULL);
    p = make_npy("unknownkey.npy", 1,
                 "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", 64, f, 16);
    expect_read_error(p, "unexpected key 'x'", NULL);
    p = make_npy("repeat.npy", 1,
                 "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'shape': (4,)}", 64, f, 16);
    expect_read_error(p, "repeats the key 'shape'", NULL);
    p = make_npy("badshape.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }",
                 64, f, 16);
    expect_read_error(p, "'shape'", "non-negative");
    p = make_npy("notdict.npy", 1, "[1, 2]", 64, f, 16);
    expect_read_error(p, "not a Python dict", NULL);
    p = make_npy("junk.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), } junk", 64,
                 f, 16);
    expect_read_error(p, "after the header dict", NULL);
    p = make_npy("toobig.npy", 1,
                 "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
                 64, f, 16);
    expect_read_error(p, "too large", NULL);
}

/* Every prefix of a valid file is rejected; no single-byte corruption crashes. */
static void test_truncation_and_corruption(void) {
    const char *good = tmp_path("good.npy"), *bad = tmp_path("mutant.npy");
    float x[6] = {1, 2, 3, 4, 5, 6};
    CHECK(dfn_npy_write_f32(good, x, 2, (int64_t[]){2, 3}) == DFN_OK, "write");
    unsigned char buf[512];
    FILE *fp = fopen(good, "rb");
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    int ok = 1;
    for (size_t len = 0; len < n; len++) {
        fp = fopen(bad, "wb");
        if (len) fwrite(buf, 1, len, fp);
        fclose(fp);
        dfn_npy_array a;
        dfn_status st = dfn_npy_read(bad, &a);
        if (st == DFN_OK) dfn_npy_free(&a);
        ok &= st == DFN_ERR_FORMAT && strstr(dfn_last_error(), bad) != NULL;
    }
    CHECK(ok, "every truncation of a %zu-byte file is rejected", n);

    static const unsigned char values[] = {0, ' ', '\'', '(', ')', ',', '9', 'L', 0x80, 0xff};
    ok = 1;
    for (size_t pos = 0; pos < 128; pos++) { /* the header; data bytes are just values */
        for (size_t v = 0; v < sizeof values; v++) {
            unsigned char saved = buf[pos];
            buf[pos] = values[v];
            fp = fopen(bad, "wb");
            fwrite(buf, 1, n, fp);
            fclose(fp);
            buf[pos] = saved;
            dfn_npy_array a;
            dfn_status st = dfn_npy_read(bad, &a);
            if (st == DFN_OK) {
                ok &= a.numel * 4 <= n;
                dfn_npy_free(&a);
            } else {
                ok &= strstr(dfn_last_error(), bad) != NULL;
            }
        }
    }
    CHECK(ok, "single-byte header corruptions fail cleanly");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfn_test_npy_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_write_read();
    test_dtypes();
    test_bad_files();
    test_truncation_and_corruption();
    cleanup();
    TEST_MAIN_END();
}

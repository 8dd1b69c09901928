/* test_safetensors.c - the safetensors reader and writer: round trips of every
 * dtype, metadata escaping, lookups, and one hand-made bad file per check the
 * reader makes (each must fail with the file name and the problem in the
 * message). Files go to a fresh directory under /tmp. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "test_tmpdir.h"
#include "test_util.h"

/* ---------------------------------------------------------------- temp files */

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    DFN_ASSERT(fp);
    DFN_ASSERT(n == 0 || fwrite(data, 1, n, fp) == n);
    fclose(fp);
}

/* A safetensors file from parts: the 8-byte length field (len_field, or the
 * header's real length when len_field is UINT64_MAX), the header text and
 * n_data bytes of data (a ramp 0, 1, 2, ...). */
static const char *make_st(const char *name, uint64_t len_field, const char *header,
                           size_t n_data) {
    const char *path = tmp_path(name);
    size_t hl = strlen(header);
    if (len_field == UINT64_MAX) len_field = hl;
    unsigned char *buf = malloc(8 + hl + n_data + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(len_field >> (8 * i));
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < n_data; i++) buf[8 + hl + i] = (unsigned char)i;
    write_bytes(path, buf, 8 + hl + n_data);
    free(buf);
    return path;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Opening path must fail; the message must name the file and contain each keyword. */
static void expect_open_error(const char *path, const char *kw1, const char *kw2) {
    dfn_st_file *f = (dfn_st_file *)1;
    dfn_status st = dfn_st_open(&f, path);
    const char *msg = dfn_last_error();
    if (getenv("DFN_TEST_VERBOSE")) printf("  [%s] %s\n", dfn_status_name(st), dfn_last_error());
    CHECK(st != DFN_OK, "%s: expected an error (%s)", path, kw1);
    CHECK(f == NULL, "%s: *out must be NULL on failure", path);
    CHECK(strstr(msg, path) != NULL, "message does not name the file: %s", msg);
    CHECK(strstr(msg, kw1) != NULL, "message lacks '%s': %s", kw1, msg);
    if (kw2) CHECK(strstr(msg, kw2) != NULL, "message lacks '%s': %s", kw2, msg);
    if (st == DFN_OK) dfn_st_close(f);
}

/* ---------------------------------------------------------------- round trips */

static void test_round_trip(void) {
    const char *path = tmp_path("round.safetensors");
    float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 6};
    double scalar = 3.141592653589793;
    unsigned char u8[3] = {0, 7, 255};
    int64_t i64[2] = {-5, INT64_C(1) << 40};
    uint16_t f16[4] = {0x3c00, 0xc000, 0x7bff, 0x0001}; /* 1, -2, 65504, 2^-24 */
    uint16_t bf16[2] = {0x3f80, 0xc0a0};                 /* 1, -5 */
    unsigned char b[2] = {1, 0};
    int16_t i16[3] = {-32768, 0, 32767};
    int8_t i8[2] = {-128, 127};
    int32_t i32[2] = {-7, 1 << 30};

    dfn_st_writer *w = dfn_st_writer_new();
    int64_t s23[2] = {2, 3}, s3[1] = {3}, s2[1] = {2}, s4[1] = {4}, s04[2] = {0, 4};
    /* Odd-sized tensors first, so later offsets are not aligned: the reader
     * must not care. */
    CHECK(dfn_st_writer_add(w, "u8", DFN_DTYPE_U8, 1, s3, u8) == DFN_OK, "add u8");
    CHECK(dfn_st_writer_add_f32(w, "a.weight", 2, (int[]){2, 3}, a) == DFN_OK, "add f32");
    CHECK(dfn_st_writer_add(w, "scalar", DFN_DTYPE_F64, 0, NULL, &scalar) == DFN_OK, "add f64");
    CHECK(dfn_st_writer_add(w, "i64", DFN_DTYPE_I64, 1, s2, i64) == DFN_OK, "add i64");
    CHECK(dfn_st_writer_add(w, "f16", DFN_DTYPE_F16, 1, s4, f16) == DFN_OK, "add f16");
    CHECK(dfn_st_writer_add(w, "bf16", DFN_DTYPE_BF16, 1, s2, bf16) == DFN_OK, "add bf16");
    CHECK(dfn_st_writer_add(w, "empty", DFN_DTYPE_F32, 2, s04, NULL) == DFN_OK, "add empty");
    CHECK(dfn_st_writer_add(w, "bool", DFN_DTYPE_BOOL, 1, s2, b) == DFN_OK, "add bool");
    CHECK(dfn_st_writer_add(w, "i16", DFN_DTYPE_I16, 1, s3, i16) == DFN_OK, "add i16");
    CHECK(dfn_st_writer_add(w, "i8", DFN_DTYPE_I8, 1, s2, i8) == DFN_OK, "add i8");
    CHECK(dfn_st_writer_add(w, "i32", DFN_DTYPE_I32, 1, s2, i32) == DFN_OK, "add i32");
    CHECK(dfn_st_writer_add(w, "na\"me\\ \xc3\xa9", DFN_DTYPE_U8, 1, s3, u8) == DFN_OK,
          "add a name that needs escaping");
    CHECK(dfn_st_writer_set_metadata(w, "step", "100") == DFN_OK, "metadata");
    CHECK(dfn_st_writer_set_metadata(w, "note", "line1\nline2 \"quoted\" \\ \t\x01") == DFN_OK,
          "metadata with escapes");
    CHECK(dfn_st_writer_set_metadata(w, "step", "200") == DFN_OK, "metadata overwrite");
    CHECK(dfn_st_writer_save(w, path) == DFN_OK, "save: %s", dfn_last_error());
    dfn_st_writer_free(w);

    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(!file_exists(tmp), "the temporary file must be renamed away");

    /* The header length makes the data section start 8-byte aligned. */
    FILE *fp = fopen(path, "rb");
    unsigned char lenb[8];
    CHECK(fp && fread(lenb, 1, 8, fp) == 8, "read length");
    if (fp) fclose(fp);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | lenb[i];
    CHECK((8 + hl) % 8 == 0, "header length %llu not padded to 8", (unsigned long long)hl);

    dfn_st_file *f;
    dfn_status st = dfn_st_open(&f, path);
    CHECK(st == DFN_OK, "open: %s", dfn_last_error());
    if (st != DFN_OK) return;
    CHECK(strcmp(dfn_st_path(f), path) == 0, "path");
    CHECK(dfn_st_num_tensors(f) == 12, "12 tensors, got %d", dfn_st_num_tensors(f));
    static const char *order[] = {"u8", "a.weight", "scalar", "i64", "f16", "bf16",
                                  "empty", "bool", "i16", "i8", "i32", "na\"me\\ \xc3\xa9"};
    for (int i = 0; i < 12 && i < dfn_st_num_tensors(f); i++)
        CHECK(strcmp(dfn_st_tensor_at(f, i)->name, order[i]) == 0, "order %d: %s", i,
              dfn_st_tensor_at(f, i)->name);

    const dfn_st_tensor *t = dfn_st_find(f, "a.weight");
    CHECK(t && t->dtype == DFN_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
              t->numel == 6 && t->nbytes == 24 && memcmp(t->data, a, 24) == 0,
          "a.weight round trip");
    t = dfn_st_find(f, "scalar");
    CHECK(t && t->dtype == DFN_DTYPE_F64 && t->ndim == 0 && t->numel == 1 &&
              memcmp(t->data, &scalar, 8) == 0,
          "scalar round trip");
    t = dfn_st_find(f, "empty");
    CHECK(t && t->numel == 0 && t->nbytes == 0 && t->ndim == 2 && t->shape[0] == 0, "empty");
    t = dfn_st_find(f, "i64");
    CHECK(t && t->dtype == DFN_DTYPE_I64 && memcmp(t->data, i64, 16) == 0, "i64");
    t = dfn_st_find(f, "na\"me\\ \xc3\xa9");
    CHECK(t && memcmp(t->data, u8, 3) == 0, "escaped name");
    CHECK(dfn_st_find(f, "nope") == NULL, "find missing -> NULL");

    /* Conversions to float32. */
    float out[4];
    t = dfn_st_find(f, "f16");
    dfn_dtype_to_f32(out, t->data, t->dtype, 4);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 65504.0f && out[3] == 0x1p-24f,
          "f16 -> f32: %g %g %g %g", out[0], out[1], out[2], out[3]);
    t = dfn_st_find(f, "bf16");
    dfn_dtype_to_f32(out, t->data, t->dtype, 2);
    CHECK(out[0] == 1.0f && out[1] == -5.0f, "bf16 -> f32: %g %g", out[0], out[1]);
    t = dfn_st_find(f, "u8");
    dfn_dtype_to_f32(out, t->data, t->dtype, 3);
    CHECK(out[0] == 0 && out[1] == 7 && out[2] == 255, "u8 -> f32");
    t = dfn_st_find(f, "i16");
    dfn_dtype_to_f32(out, t->data, t->dtype, 3);
    CHECK(out[0] == -32768 && out[2] == 32767, "i16 -> f32");
    t = dfn_st_find(f, "i8");
    dfn_dtype_to_f32(out, t->data, t->dtype, 2);
    CHECK(out[0] == -128 && out[1] == 127, "i8 -> f32");
    t = dfn_st_find(f, "bool");
    dfn_dtype_to_f32(out, t->data, t->dtype, 2);
    CHECK(out[0] == 1 && out[1] == 0, "bool -> f32");
    t = dfn_st_find(f, "scalar");
    dfn_dtype_to_f32(out, t->data, t->dtype, 1);
    CHECK(out[0] == (float)scalar, "f64 -> f32");

    CHECK(dfn_st_num_metadata(f) == 2, "2 metadata entries");
    CHECK(dfn_st_metadata(f, "step") && strcmp(dfn_st_metadata(f, "step"), "200") == 0,
          "metadata step (overwritten)");
    CHECK(dfn_st_metadata(f, "note") &&
              strcmp(dfn_st_metadata(f, "note"), "line1\nline2 \"quoted\" \\ \t\x01") == 0,
          "metadata escapes round trip");
    CHECK(dfn_st_metadata(f, "missing") == NULL, "missing metadata -> NULL");
    CHECK(strcmp(dfn_st_metadata_key(f, 0), "step") == 0 &&
              strcmp(dfn_st_metadata_value(f, 0), "200") == 0,
          "metadata by index");

    /* dfn_st_get / dfn_st_read_f32: the checks a checkpoint load relies on. */
    float back[6];
    CHECK(dfn_st_read_f32(f, "a.weight", 2, s23, back) == DFN_OK && memcmp(back, a, 24) == 0,
          "read_f32");
    CHECK(dfn_st_get(f, "a.weight", DFN_DTYPE_F32, -1, NULL, &t) == DFN_OK && t, "get any shape");

    st = dfn_st_read_f32(f, "conv_in.weight", 2, s23, back);
    CHECK(st == DFN_ERR_FORMAT && strstr(dfn_last_error(), path) &&
              strstr(dfn_last_error(), "missing tensor 'conv_in.weight'"),
          "missing tensor: %s", dfn_last_error());
    st = dfn_st_read_f32(f, "scalar", 0, NULL, back);
    CHECK(st == DFN_ERR_FORMAT && strstr(dfn_last_error(), "'scalar' has dtype F64, expected F32"),
          "wrong dtype: %s", dfn_last_error());
    int64_t s32[2] = {3, 2};
    st = dfn_st_read_f32(f, "a.weight", 2, s32, back);
    CHECK(st == DFN_ERR_FORMAT && strstr(dfn_last_error(), "[2, 3]") &&
              strstr(dfn_last_error(), "[3, 2]") && strstr(dfn_last_error(), "a.weight"),
          "wrong shape: %s", dfn_last_error());
    st = dfn_st_read_f32(f, "a.weight", 1, s4, back);
    CHECK(st == DFN_ERR_FORMAT && strstr(dfn_last_error(), "expected [4]"), "wrong rank: %s",
          dfn_last_error());
    dfn_st_close(f);

    /* Saving again over the same path replaces the file. */
    w = dfn_st_writer_new();
    CHECK(dfn_st_writer_add(w, "only", DFN_DTYPE_U8, 1, s2, u8) == DFN_OK, "add");
    CHECK(dfn_st_writer_save(w, path) == DFN_OK, "resave: %s", dfn_last_error());
    dfn_st_writer_free(w);
    CHECK(dfn_st_open(&f, path) == DFN_OK && dfn_st_num_tensors(f) == 1 &&
              dfn_st_num_metadata(f) == 0,
          "replaced file");
    dfn_st_close(f);

    /* An empty writer makes a valid file with no tensors. */
    const char *empty = tmp_path("empty_writer.safetensors");
    w = dfn_st_writer_new();
    CHECK(dfn_st_writer_save(w, empty) == DFN_OK, "save empty");
    dfn_st_writer_free(w);
    CHECK(dfn_st_open(&f, empty) == DFN_OK && dfn_st_num_tensors(f) == 0, "open empty: %s",
          dfn_last_error());
    dfn_st_close(f);
}

/* Files written by others: no padding, metadata after tensors, spaces around. */
static void test_foreign_files(void) {
    dfn_st_file *f;
    const char *p = make_st("foreign.safetensors", UINT64_MAX,
                            "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                            " \"a\" : {\"shape\":[1],\"dtype\":\"F32\",\"data_offsets\":[0,4]},"
                            "\"__metadata__\":{\"format\":\"pt\"}}   ",
                            6);
    dfn_status st = dfn_st_open(&f, p);
    CHECK(st == DFN_OK, "foreign file: %s", dfn_last_error());
    if (st != DFN_OK) return;
    CHECK(dfn_st_num_tensors(f) == 2 && strcmp(dfn_st_tensor_at(f, 0)->name, "a") == 0,
          "tensors in data order");
    const dfn_st_tensor *b = dfn_st_find(f, "b");
    CHECK(b && ((const unsigned char *)b->data)[0] == 4 && ((const unsigned char *)b->data)[1] == 5,
          "b's bytes are bytes 4..5 of the data section");
    CHECK(strcmp(dfn_st_metadata(f, "format"), "pt") == 0, "metadata");
    dfn_st_close(f);

    /* Zero-sized tensors can sit anywhere a tensor boundary is. */
    p = make_st("zero.safetensors", UINT64_MAX,
                "{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                4);
    CHECK(dfn_st_open(&f, p) == DFN_OK, "zero-sized tensor: %s", dfn_last_error());
    dfn_st_close(f);
}

/* ---------------------------------------------------------------- bad files */

#define T(name, off) "\"" name "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" off "}"

static void test_bad_files(void) {
    expect_open_error(tmp_path("does_not_exist.safetensors"), "cannot open", "No such file");
    expect_open_error(tmpdir, "not a regular file", NULL);

    const char *p = tmp_path("empty.safetensors");
    write_bytes(p, "", 0);
    expect_open_error(p, "empty", NULL);

    p = tmp_path("short.safetensors");
    write_bytes(p, "\x10\x00\x00", 3);
    expect_open_error(p, "too short", "header length");

    p = make_st("beyond.safetensors", 1000, "{}", 0);
    expect_open_error(p, "header length 1000 exceeds", NULL);
    p = make_st("huge_len.safetensors", UINT64_MAX - 1, "{}", 0);
    expect_open_error(p, "exceeds", NULL);

    p = make_st("badjson.safetensors", UINT64_MAX, "{\"a\": {\"dtype\": \"F32\",, }", 0);
    expect_open_error(p, "not valid JSON", NULL);
    p = make_st("notobj.safetensors", UINT64_MAX, "[1, 2]", 0);
    expect_open_error(p, "does not start with '{'", NULL);
    p = make_st("trailing.safetensors", UINT64_MAX, "{} x", 0);
    expect_open_error(p, "after its JSON object", NULL);
    p = make_st("utf8.safetensors", UINT64_MAX, "{\"\xff\":1}", 0);
    expect_open_error(p, "UTF-8", NULL);

    p = make_st("range.safetensors", UINT64_MAX, "{" T("w", "[0,8]") "," T("far", "[1000,1008]") "}",
                16);
    expect_open_error(p, "'far'", "outside the data section");

    p = make_st("count.safetensors", UINT64_MAX,
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 16);
    expect_open_error(p, "'w'", "need 24");

    /* A well-formed header whose data was cut off (e.g. a copy interrupted). */
    p = make_st("truncdata.safetensors", UINT64_MAX, "{" T("a", "[0,8]") "," T("b", "[8,16]") "}",
                12);
    expect_open_error(p, "'b'", "truncated");

    p = make_st("dtype.safetensors", UINT64_MAX,
                "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    expect_open_error(p, "'w'", "unsupported dtype 'F8_E4M3'");

    p = make_st("overlap.safetensors", UINT64_MAX, "{" T("a", "[0,8]") "," T("b", "[4,12]") "}", 12);
    expect_open_error(p, "overlap", "'b'");
    p = make_st("gap.safetensors", UINT64_MAX, "{" T("a", "[0,8]") "," T("b", "[12,20]") "}", 20);
    expect_open_error(p, "gap", "'b'");
    p = make_st("extra.safetensors", UINT64_MAX, "{" T("a", "[0,8]") "}", 12);
    expect_open_error(p, "extra bytes", NULL);
    p = make_st("dup.safetensors", UINT64_MAX, "{" T("a", "[0,8]") "," T("a", "[8,16]") "}", 16);
    expect_open_error(p, "duplicate tensor 'a'", NULL);

    p = make_st("negshape.safetensors", UINT64_MAX,
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,0]}}", 0);
    expect_open_error(p, "'w'", "non-negative");
    p = make_st("fracshape.safetensors", UINT64_MAX,
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,0]}}", 0);
    expect_open_error(p, "'w'", "non-negative integers");
    p = make_st("nooffsets.safetensors", UINT64_MAX, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0);
    expect_open_error(p, "'w'", "data_offsets");
    p = make_st("badoffsets.safetensors", UINT64_MAX, "{" T("w", "[8,0]") "}", 8);
    expect_open_error(p, "'w'", "begin <= end");
    p = make_st("offsets3.safetensors", UINT64_MAX, "{" T("w", "[0,8,16]") "}", 8);
    expect_open_error(p, "'w'", "data_offsets");
    p = make_st("bigshape.safetensors", UINT64_MAX,
                "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],"
                "\"data_offsets\":[0,8]}}",
                8);
    expect_open_error(p, "'w'", "too large");
    p = make_st("notensorobj.safetensors", UINT64_MAX, "{\"w\":[1,2]}", 0);
    expect_open_error(p, "'w'", "not a JSON object");
    p = make_st("meta.safetensors", UINT64_MAX, "{\"__metadata__\":{\"step\":100}}", 0);
    expect_open_error(p, "'step'", "not a string");
    p = make_st("metadup.safetensors", UINT64_MAX,
                "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0);
    expect_open_error(p, "duplicate metadata key 'k'", NULL);
}

static void test_writer_errors(void) {
    dfn_st_writer *w = dfn_st_writer_new();
    float x[2] = {1, 2};
    int64_t s2[1] = {2}, sneg[1] = {-1};
    CHECK(dfn_st_writer_add(w, "x", DFN_DTYPE_F32, 1, s2, x) == DFN_OK, "add");
    CHECK(dfn_st_writer_add(w, "x", DFN_DTYPE_F32, 1, s2, x) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "duplicate tensor 'x'"),
          "duplicate: %s", dfn_last_error());
    CHECK(dfn_st_writer_add(w, "__metadata__", DFN_DTYPE_F32, 1, s2, x) == DFN_ERR_ARG,
          "reserved name");
    CHECK(dfn_st_writer_add(w, "bad\xff", DFN_DTYPE_F32, 1, s2, x) == DFN_ERR_ARG, "bad UTF-8");
    CHECK(dfn_st_writer_add(w, "neg", DFN_DTYPE_F32, 1, sneg, x) == DFN_ERR_ARG, "negative dim");
    int64_t s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK(dfn_st_writer_add(w, "deep", DFN_DTYPE_F32, 9, s9, x) == DFN_ERR_ARG, "too many dims");

    char path[300];
    snprintf(path, sizeof path, "%s/no_such_dir/out.safetensors", tmpdir);
    dfn_status st = dfn_st_writer_save(w, path);
    CHECK(st == DFN_ERR_IO && strstr(dfn_last_error(), path), "save into a missing dir: %s",
          dfn_last_error());
    dfn_st_writer_free(w);
}

/* Every prefix of a valid file must be rejected with the file's name in the
 * message, and no single-byte corruption may crash the reader (run under the
 * sanitizers to catch out-of-bounds reads): it either fails cleanly or, when
 * the change is harmless (a digit of a value, a padding space), opens. */
static void test_truncation_and_corruption(void) {
    const char *good = tmp_path("good.safetensors"), *bad = tmp_path("mutant.safetensors");
    float x[6] = {1, 2, 3, 4, 5, 6};
    unsigned char u[3] = {9, 8, 7};
    dfn_st_writer *w = dfn_st_writer_new();
    dfn_st_writer_add_f32(w, "x", 2, (int[]){2, 3}, x);
    dfn_st_writer_add(w, "u", DFN_DTYPE_U8, 1, (int64_t[]){3}, u);
    dfn_st_writer_set_metadata(w, "k", "v");
    CHECK(dfn_st_writer_save(w, good) == DFN_OK, "save");
    dfn_st_writer_free(w);

    unsigned char buf[512];
    FILE *fp = fopen(good, "rb");
    size_t n = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    int truncation_ok = 1;
    for (size_t len = 0; len < n; len++) {
        write_bytes(bad, buf, len);
        dfn_st_file *f;
        dfn_status st = dfn_st_open(&f, bad);
        if (st == DFN_OK) dfn_st_close(f);
        truncation_ok &= st == DFN_ERR_FORMAT && strstr(dfn_last_error(), bad) != NULL;
    }
    CHECK(truncation_ok, "every truncation of a %zu-byte file is rejected", n);

    static const unsigned char values[] = {0, ' ', '"', '[', '{', '}', ',', '9', 0x80, 0xff};
    int corruption_ok = 1, opened = 0;
    for (size_t pos = 0; pos < n; pos++) {
        for (size_t v = 0; v < sizeof values; v++) {
            unsigned char saved = buf[pos];
            if (saved == values[v]) continue;
            buf[pos] = values[v];
            write_bytes(bad, buf, n);
            buf[pos] = saved;
            dfn_st_file *f;
            dfn_status st = dfn_st_open(&f, bad);
            if (st == DFN_OK) {
                opened++;
                /* Whatever opened must still be self-consistent. */
                for (int i = 0; i < dfn_st_num_tensors(f); i++) {
                    const dfn_st_tensor *t = dfn_st_tensor_at(f, i);
                    corruption_ok &= dfn_st_find(f, t->name) == t;
                }
                dfn_st_close(f);
            } else {
                corruption_ok &= strstr(dfn_last_error(), bad) != NULL;
            }
        }
    }
    CHECK(corruption_ok, "single-byte corruptions fail cleanly (%d opened)", opened);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfn_test_st_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    CHECK(strcmp(dfn_dtype_name(DFN_DTYPE_BF16), "BF16") == 0 && dfn_dtype_size(DFN_DTYPE_I64) == 8,
          "dtype table");
    dfn_dtype d;
    CHECK(dfn_dtype_from_name("BOOL", &d) == 0 && d == DFN_DTYPE_BOOL, "dtype from name");
    CHECK(dfn_dtype_from_name("F8_E5M2", &d) == -1, "unknown dtype name");
    char buf[64];
    CHECK(strcmp(dfn_format_shape(buf, sizeof buf, 0, NULL), "[]") == 0, "format scalar shape");
    CHECK(strcmp(dfn_format_shape(buf, sizeof buf, 3, (int64_t[]){64, 1, 3}), "[64, 1, 3]") == 0,
          "format shape");
    CHECK(strlen(dfn_format_shape(buf, 6, 3, (int64_t[]){64, 1, 3})) == 5, "truncated format");

    test_round_trip();
    test_foreign_files();
    test_bad_files();
    test_writer_errors();
    test_truncation_and_corruption();
    cleanup();
    TEST_MAIN_END();
}

/* test_checkpoint.c - model config JSON and checkpoints.
 *
 * Config JSON: exact text for the default U-Net, round trips, and one error per
 * rule (unknown kind, missing/unknown/repeated key, wrong type, long array,
 * invalid JSON, failed validation). Checkpoints: a save/load round trip is
 * bit-exact and keeps the config; files made with the safetensors writer that
 * differ from a real checkpoint in one way each (missing tensor, extra tensor,
 * wrong shape, F64 instead of F32, no config, corrupt config, invalid config,
 * foreign format) fail with the file name and the problem in the message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "io/safetensors.h"
#include "models/models.h"
#include "test_tmpdir.h"
#include "test_util.h"


/* A U-Net small enough to build in milliseconds: 1x8x8 images, channels 8 and
 * 16, attention at 4x4. */
static dfn_model_config tiny_unet(void) {
    dfn_model_config c;
    dfn_model_config_init(&c, DFN_MODEL_UNET);
    c.unet.in_channels = 1;
    c.unet.resolution = 8;
    c.unet.channels = 8;
    c.unet.n_levels = 2;
    c.unet.ch_mult[0] = 1;
    c.unet.ch_mult[1] = 2;
    c.unet.num_res_blocks = 1;
    c.unet.n_attn = 1;
    c.unet.attn_resolutions[0] = 4;
    c.unet.heads = 2;
    c.unet.groups = 4;
    c.num_classes = 10;
    return c;
}

/* Field-by-field equality of the fields that matter for the kind. */
static int same_config(const dfn_model_config *a, const dfn_model_config *b) {
    if (a->kind != b->kind || a->dropout != b->dropout || a->num_classes != b->num_classes)
        return 0;
    if (a->kind == DFN_MODEL_MLP) return a->mlp.dim == b->mlp.dim && a->mlp.width == b->mlp.width && a->mlp.depth == b->mlp.depth;
    if (a->unet.in_channels != b->unet.in_channels || a->unet.resolution != b->unet.resolution ||
        a->unet.channels != b->unet.channels || a->unet.n_levels != b->unet.n_levels ||
        a->unet.num_res_blocks != b->unet.num_res_blocks || a->unet.n_attn != b->unet.n_attn ||
        a->unet.heads != b->unet.heads || a->unet.groups != b->unet.groups || a->unet.norm_eps != b->unet.norm_eps)
        return 0;
    for (int i = 0; i < a->unet.n_levels; i++)
        if (a->unet.ch_mult[i] != b->unet.ch_mult[i]) return 0;
    for (int i = 0; i < a->unet.n_attn; i++)
        if (a->unet.attn_resolutions[i] != b->unet.attn_resolutions[i]) return 0;
    return 1;
}

/* ---------------------------------------------------------------- config JSON */

static void expect_config_error(const char *json, const char *kw) {
    dfn_model_config c;
    dfn_model_config_init(&c, DFN_MODEL_MLP);
    dfn_model_config before = c;
    dfn_status st = dfn_model_config_from_json(&c, json);
    if (getenv("DFN_TEST_VERBOSE")) printf("  [%s] %s\n", dfn_status_name(st), dfn_last_error());
    CHECK(st == DFN_ERR_CONFIG, "expected DFN_ERR_CONFIG for %s, got %d", json, (int)st);
    CHECK(strstr(dfn_last_error(), kw) != NULL, "message lacks '%s': %s", kw, dfn_last_error());
    CHECK(memcmp(&c, &before, sizeof c) == 0, "config must be unchanged on failure");
}

static void test_config_json(void) {
    dfn_model_config c, back;
    dfn_model_config_init(&c, DFN_MODEL_UNET);
    char *json = dfn_model_config_to_json(&c);
    const char *want =
        "{\"kind\":\"unet\",\"in_channels\":1,\"resolution\":28,\"channels\":64,\"ch_mult\":[1,2,2],"
        "\"num_res_blocks\":2,\"attn_resolutions\":[7],\"heads\":1,\"groups\":32,"
        "\"norm_eps\":1e-06,\"dropout\":0.1,\"num_classes\":0}";
    CHECK(strcmp(json, want) == 0, "default U-Net JSON:\n  got  %s\n  want %s", json, want);
    CHECK(dfn_model_config_from_json(&back, json) == DFN_OK, "parse: %s", dfn_last_error());
    CHECK(same_config(&c, &back), "U-Net config round trip");
    free(json);

    c = tiny_unet();
    json = dfn_model_config_to_json(&c);
    CHECK(dfn_model_config_from_json(&back, json) == DFN_OK && same_config(&c, &back),
          "tiny U-Net round trip: %s", json);
    free(json);

    dfn_model_config_init(&c, DFN_MODEL_MLP);
    c.num_classes = 3;
    c.dropout = 0.25f;
    json = dfn_model_config_to_json(&c);
    CHECK(strcmp(json, "{\"kind\":\"mlp\",\"dim\":2,\"width\":128,\"depth\":3,\"dropout\":0.25,"
                       "\"num_classes\":3}") == 0,
          "MLP JSON: %s", json);
    CHECK(dfn_model_config_from_json(&back, json) == DFN_OK && same_config(&c, &back),
          "MLP round trip");
    free(json);

    /* Whitespace and key order do not matter (the PyTorch twin may indent). */
    CHECK(dfn_model_config_from_json(&back, "{ \"width\": 64, \"kind\": \"mlp\", \"depth\": 2,\n"
                                            "  \"dim\": 2, \"num_classes\": 0, \"dropout\": 0 }") ==
                  DFN_OK &&
              back.kind == DFN_MODEL_MLP && back.mlp.width == 64 && back.mlp.depth == 2,
          "indented MLP JSON: %s", dfn_last_error());

    expect_config_error("{\"kind\":\"transformer\",\"dim\":2}", "'kind'");
    expect_config_error("{\"dim\":2}", "missing key 'kind'");
    expect_config_error("{\"kind\":\"mlp\",\"dim\":2,\"width\":128,\"dropout\":0,\"num_classes\":0}",
                        "missing key 'depth'");
    expect_config_error("{\"kind\":\"mlp\",\"dim\":\"2\",\"width\":128,\"depth\":3,\"dropout\":0,"
                        "\"num_classes\":0}",
                        "'dim' must be an integer");
    expect_config_error("{\"kind\":\"mlp\",\"dim\":2.5,\"width\":128,\"depth\":3,\"dropout\":0,"
                        "\"num_classes\":0}",
                        "'dim' must be an integer");
    expect_config_error("{\"kind\":\"mlp\",\"dim\":2,\"width\":128,\"depth\":3,\"dropout\":\"x\","
                        "\"num_classes\":0}",
                        "'dropout' must be a finite number");
    expect_config_error("{\"kind\":\"mlp\",\"dim\":2,\"width\":128,\"depth\":3,\"dropout\":0,"
                        "\"num_classes\":0,\"widht\":3}",
                        "unknown key 'widht'");
    expect_config_error("{\"kind\":\"mlp\",\"dim\":2,\"width\":128,\"depth\":3,\"dropout\":0,"
                        "\"num_classes\":0,\"dim\":3}",
                        "'dim' appears twice");
    expect_config_error("{\"kind\":\"unet\",\"in_channels\":1,\"resolution\":28,\"channels\":64,"
                        "\"ch_mult\":[1,1,1,1,1,1,1,1,1],\"num_res_blocks\":2,"
                        "\"attn_resolutions\":[7],\"heads\":1,\"groups\":32,\"norm_eps\":1e-6,"
                        "\"dropout\":0.1,\"num_classes\":0}",
                        "'ch_mult' must be an array of at most 8 integers, not 9");
    expect_config_error("{\"kind\":\"unet\",\"in_channels\":1,\"resolution\":28,\"channels\":64,"
                        "\"ch_mult\":[1,\"2\"],\"num_res_blocks\":2,"
                        "\"attn_resolutions\":[7],\"heads\":1,\"groups\":32,\"norm_eps\":1e-6,"
                        "\"dropout\":0.1,\"num_classes\":0}",
                        "'ch_mult' must be an array of integers");
    expect_config_error("{\"kind\":\"mlp\",", "not valid JSON");
    expect_config_error("[1,2]", "not a JSON object");

    /* Parses, but cannot be built: validation's own message comes through. */
    c = tiny_unet();
    c.unet.groups = 3; /* 8 channels do not split into 3 groups */
    json = dfn_model_config_to_json(&c);
    CHECK(dfn_model_config_from_json(&back, json) == DFN_ERR_CONFIG && dfn_last_error()[0],
          "invalid config rejected");
    free(json);
}

/* ---------------------------------------------------------------- checkpoints */

static void round_trip(const dfn_model_config *cfg, const char *file) {
    const char *path = tmp_path(file);
    dfn_model *m = NULL, *back = NULL;
    dfn_status st = dfn_model_new(&m, cfg, 42);
    CHECK(st == DFN_OK, "model_new: %s", dfn_last_error());
    if (st != DFN_OK) return;
    const char *extra[] = {"step", "123", "ema_decay", "0.999", NULL};
    st = dfn_model_save(m, path, extra);
    CHECK(st == DFN_OK, "save: %s", dfn_last_error());
    st = dfn_model_load(&back, path);
    CHECK(st == DFN_OK, "load: %s", dfn_last_error());
    if (st == DFN_OK) {
        CHECK(same_config(dfn_model_get_config(m), dfn_model_get_config(back)), "same config");
        CHECK(dfn_model_num_params(back) == dfn_model_num_params(m), "same parameter count");
        CHECK(memcmp(dfn_model_params(back), dfn_model_params(m),
                     dfn_model_num_params(m) * sizeof(float)) == 0,
              "parameters bit-exact after load");
        dfn_model_free(back);
    }

    /* The file itself: metadata and one F32 tensor per model tensor, in order. */
    dfn_st_file *f;
    st = dfn_st_open(&f, path);
    CHECK(st == DFN_OK, "open checkpoint: %s", dfn_last_error());
    if (st == DFN_OK) {
        CHECK(!strcmp(dfn_st_metadata(f, "format"), "diffusion.c checkpoint"), "format");
        CHECK(!strcmp(dfn_st_metadata(f, "format_version"), "2"), "format_version");
        CHECK(!strcmp(dfn_st_metadata(f, "step"), "123") &&
                  !strcmp(dfn_st_metadata(f, "ema_decay"), "0.999"),
              "extra metadata");
        char *json = dfn_model_config_to_json(cfg);
        CHECK(!strcmp(dfn_st_metadata(f, "config"), json), "config metadata");
        free(json);
        CHECK(dfn_st_num_tensors(f) == dfn_model_num_tensors(m), "tensor count");
        for (int i = 0; i < dfn_model_num_tensors(m) && i < dfn_st_num_tensors(f); i++) {
            const dfn_st_tensor *t = dfn_st_tensor_at(f, i);
            int shape[4], nd = dfn_model_tensor_shape(m, i, shape);
            int ok = !strcmp(t->name, dfn_model_tensor_name(m, i)) && t->dtype == DFN_DTYPE_F32 &&
                     t->ndim == nd;
            for (int d = 0; ok && d < nd; d++) ok = t->shape[d] == shape[d];
            CHECK(ok, "tensor %d (%s) matches the table", i, t->name);
        }
        dfn_st_close(f);
    }
    dfn_model_free(m);
}

/* How a hand-made checkpoint differs from a real one. */
typedef enum {
    BAD_NONE,
    BAD_MISSING_TENSOR, /* leave out tensor 0 */
    BAD_EXTRA_TENSOR,   /* add "bogus.weight" */
    BAD_SHAPE,          /* store the chosen tensor flattened to 1-d */
    BAD_DTYPE,          /* store the chosen tensor as F64 */
} bad_kind;

/* Writes model m's tensors as a checkpoint, with one defect, and `config` as
 * the "config" metadata (NULL: no config metadata). */
static void write_bad(const char *path, dfn_model *m, bad_kind bad, int victim,
                      const char *config, const char *format) {
    dfn_st_writer *w = dfn_st_writer_new();
    if (config) dfn_st_writer_set_metadata(w, "config", config);
    if (format) dfn_st_writer_set_metadata(w, "format", format);
    const float *params = dfn_model_params(m);
    double *f64 = NULL;
    for (int i = 0; i < dfn_model_num_tensors(m); i++) {
        int shape[4], nd = dfn_model_tensor_shape(m, i, shape);
        const char *name = dfn_model_tensor_name(m, i);
        const float *data = params + dfn_model_tensor_offset(m, i);
        size_t numel = 1;
        for (int d = 0; d < nd; d++) numel *= (size_t)shape[d];
        if (i == victim && bad == BAD_MISSING_TENSOR) continue;
        if (i == victim && bad == BAD_SHAPE) {
            int flat[1] = {(int)numel};
            CHECK(dfn_st_writer_add_f32(w, name, 1, flat, data) == DFN_OK, "add");
            continue;
        }
        if (i == victim && bad == BAD_DTYPE) {
            f64 = malloc(numel * sizeof(double));
            int64_t s[4];
            for (size_t k = 0; k < numel; k++) f64[k] = data[k];
            for (int d = 0; d < nd; d++) s[d] = shape[d];
            CHECK(dfn_st_writer_add(w, name, DFN_DTYPE_F64, nd, s, f64) == DFN_OK, "add f64");
            continue;
        }
        CHECK(dfn_st_writer_add_f32(w, name, nd, shape, data) == DFN_OK, "add");
    }
    float bogus[3] = {1, 2, 3};
    if (bad == BAD_EXTRA_TENSOR)
        CHECK(dfn_st_writer_add_f32(w, "bogus.weight", 1, (int[]){3}, bogus) == DFN_OK, "add bogus");
    CHECK(dfn_st_writer_save(w, path) == DFN_OK, "save bad file: %s", dfn_last_error());
    dfn_st_writer_free(w);
    free(f64);
}

static void expect_load_error(const char *path, const char *kw1, const char *kw2) {
    dfn_model *m = (dfn_model *)1;
    dfn_status st = dfn_model_load(&m, path);
    const char *msg = dfn_last_error();
    if (getenv("DFN_TEST_VERBOSE")) printf("  [%s] %s\n", dfn_status_name(st), dfn_last_error());
    CHECK(st != DFN_OK, "%s: expected an error (%s)", path, kw1);
    CHECK(m == NULL, "%s: *out must be NULL on failure", path);
    CHECK(strstr(msg, path) != NULL, "message does not name the file: %s", msg);
    CHECK(strstr(msg, kw1) != NULL, "message lacks '%s': %s", kw1, msg);
    if (kw2) CHECK(strstr(msg, kw2) != NULL, "message lacks '%s': %s", kw2, msg);
    if (st == DFN_OK) dfn_model_free(m);
}

static void test_bad_checkpoints(void) {
    dfn_model_config cfg = tiny_unet();
    dfn_model *m = NULL;
    if (dfn_model_new(&m, &cfg, 7) != DFN_OK) {
        CHECK(0, "model_new: %s", dfn_last_error());
        return;
    }
    char *config = dfn_model_config_to_json(&cfg);
    char buf[512];

    /* The control: a hand-made file without defects loads. */
    const char *p = tmp_path("handmade.safetensors");
    write_bad(p, m, BAD_NONE, -1, config, NULL);
    dfn_model *back = NULL;
    CHECK(dfn_model_load(&back, p) == DFN_OK, "hand-made checkpoint loads: %s", dfn_last_error());
    if (back) dfn_model_free(back);

    p = tmp_path("missing.safetensors");
    write_bad(p, m, BAD_MISSING_TENSOR, 0, config, NULL);
    snprintf(buf, sizeof buf, "missing tensor '%s'", dfn_model_tensor_name(m, 0));
    expect_load_error(p, buf, NULL);

    p = tmp_path("extra.safetensors");
    write_bad(p, m, BAD_EXTRA_TENSOR, -1, config, NULL);
    expect_load_error(p, "unexpected tensor 'bogus.weight'", NULL);

    /* The tiny model's tensors under the config of a network of 4096 channels:
     * refused before its billions of parameters are allocated. */
    dfn_model_config huge = cfg;
    huge.unet.channels = 4096;
    huge.unet.groups = 32;
    char *huge_json = dfn_model_config_to_json(&huge);
    p = tmp_path("huge.safetensors");
    write_bad(p, m, BAD_NONE, -1, huge_json, NULL);
    expect_load_error(p, "its config describes a unet of", "bytes of tensors");
    free(huge_json);

    /* Wrong shape: the first tensor with more than one dimension, flattened. */
    int victim = -1, shape[4], nd = 0;
    for (int i = 0; i < dfn_model_num_tensors(m) && victim < 0; i++)
        if ((nd = dfn_model_tensor_shape(m, i, shape)) > 1) victim = i;
    CHECK(victim >= 0, "the model has a tensor of rank > 1");
    if (victim >= 0) {
        p = tmp_path("shape.safetensors");
        write_bad(p, m, BAD_SHAPE, victim, config, NULL);
        int64_t s[4], numel = 1;
        for (int d = 0; d < nd; d++) numel *= (s[d] = shape[d]);
        char want[128], got[64];
        snprintf(buf, sizeof buf, "tensor '%s' has shape [%lld]", dfn_model_tensor_name(m, victim),
                 (long long)numel);
        snprintf(want, sizeof want, "expected %s", dfn_format_shape(got, sizeof got, nd, s));
        expect_load_error(p, buf, want);

        p = tmp_path("dtype.safetensors");
        write_bad(p, m, BAD_DTYPE, victim, config, NULL);
        snprintf(buf, sizeof buf, "tensor '%s' has dtype F64, expected F32",
                 dfn_model_tensor_name(m, victim));
        expect_load_error(p, buf, NULL);
    }

    p = tmp_path("noconfig.safetensors");
    write_bad(p, m, BAD_NONE, -1, NULL, NULL);
    expect_load_error(p, "not a diffusion.c checkpoint", "config");

    p = tmp_path("foreign.safetensors");
    write_bad(p, m, BAD_NONE, -1, config, "pt");
    expect_load_error(p, "not a diffusion.c checkpoint", "\"pt\"");

    /* Format versions: 1 (the files written before classifiers joined the one
     * framework) still loads; a version from the future is refused by name. */
    p = tmp_path("version1.safetensors");
    write_bad(p, m, BAD_NONE, -1, config, "diffusion.c checkpoint");
    {
        dfn_st_file *f = NULL;
        dfn_st_writer *w = dfn_st_writer_new();
        CHECK(dfn_st_open(&f, p) == DFN_OK, "open");
        for (int i = 0; f && i < dfn_st_num_metadata(f); i++)
            dfn_st_writer_set_metadata(w, dfn_st_metadata_key(f, i), dfn_st_metadata_value(f, i));
        for (int i = 0; f && i < dfn_st_num_tensors(f); i++) {
            const dfn_st_tensor *t = dfn_st_tensor_at(f, i);
            dfn_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
        }
        const char *p3 = tmp_path("version3.safetensors");
        dfn_st_writer_set_metadata(w, "format_version", "1");
        CHECK(dfn_st_writer_save(w, p) == DFN_OK, "save v1");
        dfn_model *v1 = NULL;
        CHECK(dfn_model_load(&v1, p) == DFN_OK, "a version 1 checkpoint loads: %s", dfn_last_error());
        dfn_model_free(v1);
        dfn_st_writer_set_metadata(w, "format_version", "3");
        CHECK(dfn_st_writer_save(w, p3) == DFN_OK, "save v3");
        expect_load_error(p3, "format_version \"3\" is not supported", NULL);
        dfn_st_writer_free(w);
        dfn_st_close(f);
    }

    /* A weight that is not finite. */
    {
        float *params = dfn_model_params(m);
        float keep = params[5];
        params[5] = NAN;
        p = tmp_path("nan.safetensors");
        write_bad(p, m, BAD_NONE, -1, config, NULL);
        params[5] = keep;
        expect_load_error(p, "holds", "nan at element 5");
    }

    p = tmp_path("corrupt.safetensors");
    write_bad(p, m, BAD_NONE, -1, "{\"kind\": \"unet\", \"in_channels\": ", NULL);
    expect_load_error(p, "config", "not valid JSON");

    dfn_model_config invalid = cfg;
    invalid.unet.groups = 3;
    char *bad_json = dfn_model_config_to_json(&invalid);
    p = tmp_path("invalid.safetensors");
    write_bad(p, m, BAD_NONE, -1, bad_json, NULL);
    expect_load_error(p, "bad model config", NULL);
    free(bad_json);

    /* The config of a different model: every tensor disagrees, the first
     * problem is reported. */
    dfn_model_config mlp;
    dfn_model_config_init(&mlp, DFN_MODEL_MLP);
    char *mlp_json = dfn_model_config_to_json(&mlp);
    p = tmp_path("mismatch.safetensors");
    write_bad(p, m, BAD_NONE, -1, mlp_json, NULL);
    expect_load_error(p, "tensor", NULL);
    free(mlp_json);

    expect_load_error(tmp_path("nonexistent.safetensors"), "cannot open", NULL);

    /* Not a safetensors file at all. */
    p = tmp_path("garbage.safetensors");
    FILE *fp = fopen(p, "wb");
    fputs("this is not a checkpoint", fp);
    fclose(fp);
    expect_load_error(p, "header length", NULL);

    /* Saving: reserved or incomplete extra metadata, unwritable paths. */
    p = tmp_path("reserved.safetensors");
    const char *reserved[] = {"config", "x", NULL};
    CHECK(dfn_model_save(m, p, reserved) == DFN_ERR_ARG && strstr(dfn_last_error(), "reserved"),
          "reserved extra key: %s", dfn_last_error());
    const char *odd[] = {"step", NULL};
    CHECK(dfn_model_save(m, p, odd) == DFN_ERR_ARG && strstr(dfn_last_error(), "'step'"),
          "extra key without value: %s", dfn_last_error());
    char nodir[300];
    snprintf(nodir, sizeof nodir, "%s/no_such_dir/net.safetensors", tmpdir);
    CHECK(dfn_model_save(m, nodir, NULL) == DFN_ERR_IO && strstr(dfn_last_error(), nodir),
          "save into a missing dir: %s", dfn_last_error());

    free(config);
    dfn_model_free(m);
}

/* Model-shaped extra arrays (optimizer moments) under a prefix. */
static void test_model_arrays(void) {
    dfn_model_config cfg;
    dfn_model_config_init(&cfg, DFN_MODEL_MLP);
    dfn_model *m = NULL;
    if (dfn_model_new(&m, &cfg, 3) != DFN_OK) {
        CHECK(0, "model_new: %s", dfn_last_error());
        return;
    }
    size_t n = dfn_model_num_params(m);
    float *mom = malloc(n * sizeof(float)), *back = calloc(n, sizeof(float));
    fill_uniform(mom, n, 5);
    const char *p = tmp_path("state.safetensors");
    dfn_st_writer *w = dfn_st_writer_new();
    CHECK(dfn_st_writer_add_model_tensors(w, m, "adam_m.", mom) == DFN_OK, "add moments");
    CHECK(dfn_st_writer_set_metadata(w, "step", "10") == DFN_OK, "meta");
    CHECK(dfn_st_writer_save(w, p) == DFN_OK, "save state: %s", dfn_last_error());
    dfn_st_writer_free(w);
    dfn_st_file *f;
    CHECK(dfn_st_open(&f, p) == DFN_OK, "open state: %s", dfn_last_error());
    CHECK(dfn_st_read_model_tensors(f, m, "adam_m.", back) == DFN_OK &&
              memcmp(mom, back, n * sizeof(float)) == 0,
          "moments round trip: %s", dfn_last_error());
    CHECK(dfn_st_read_model_tensors(f, m, "adam_v.", back) == DFN_ERR_FORMAT &&
              strstr(dfn_last_error(), "missing tensor 'adam_v."),
          "missing prefix: %s", dfn_last_error());
    dfn_st_close(f);
    free(mom);
    free(back);
    dfn_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfn_test_ckpt_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_config_json();

    dfn_model_config cfg = tiny_unet();
    round_trip(&cfg, "unet.safetensors");
    dfn_model_config_init(&cfg, DFN_MODEL_MLP);
    cfg.num_classes = 4;
    round_trip(&cfg, "mlp.safetensors");
    if (dfn_model_config_preset(&cfg, "fmnist-tiny") == DFN_OK) round_trip(&cfg, "fmnist.safetensors");

    test_bad_checkpoints();
    test_model_arrays();
    cleanup();
    TEST_MAIN_END();
}

/* test_classifier.c - the global-average-pool layer and the FID classifier (a
 * dfn_model of kind classifier): gradients against central finite differences,
 * training through the one training loop on a small synthetic image set,
 * determinism across thread counts, checkpoints (and version 1 classifier
 * files) and their errors. */
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "diffusion.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "nn/pool.h"
#include "test_util.h"

static char tmpdir[] = "/tmp/dfn_classifier_XXXXXX";

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

/* ------------------------------------------------------------ pool layer */

static double pool_loss(const float *x, const float *R, float *out, int N, int C, int HW) {
    dfn_avgpool_forward(out, x, N, C, HW);
    double L = 0.0;
    for (int i = 0; i < N * C; i++) L += (double)out[i] * R[i];
    return L;
}

static void test_pool(void) {
    const int N = 2, C = 3, HW = 7;
    const size_t n = (size_t)N * C * HW;
    float *x = dfn_malloc(n * sizeof(float)), *R = dfn_malloc(N * C * sizeof(float));
    float *out = dfn_malloc(N * C * sizeof(float)), *dx = dfn_malloc(n * sizeof(float));
    float *fd = dfn_malloc(n * sizeof(float)), *base = dfn_malloc(n * sizeof(float));
    fill_uniform(x, n, 1);
    fill_uniform(R, (size_t)N * C, 2);
    fill_uniform(base, n, 3);
    /* forward against the obvious mean */
    dfn_avgpool_forward(out, x, N, C, HW);
    double worst = 0;
    for (int p = 0; p < N * C; p++) {
        double s = 0;
        for (int i = 0; i < HW; i++) s += x[(size_t)p * HW + i];
        worst = fmax(worst, fabs(out[p] - s / HW));
    }
    CHECK(worst < 1e-6, "avgpool forward off by %g", worst);
    /* backward accumulates onto base */
    memcpy(dx, base, n * sizeof(float));
    dfn_avgpool_backward(dx, R, N, C, HW);
    for (size_t i = 0; i < n; i++) dx[i] -= base[i];
    const float h = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = v + h;
        double Lp = pool_loss(x, R, out, N, C, HW);
        x[i] = v - h;
        double Lm = pool_loss(x, R, out, N, C, HW);
        x[i] = v;
        fd[i] = (float)((Lp - Lm) / (2.0 * h));
    }
    double err = rel_error(dx, fd, n);
    printf("  avgpool backward vs finite differences: rel err %.2e\n", err);
    check_tensor("avgpool dinp", dx, fd, n, 1e-3);
    free(x), free(R), free(out), free(dx), free(fd), free(base);
}

/* ------------------------------------------------------------ classifier gradients */

static const float *ce_times; /* the time input of a time-conditioned classifier, or NULL */
static double ce_loss(dfn_model *c, const float *x, const int *y, int B, float *logits) {
    dfn_model_forward(c, logits, x, ce_times, NULL, B, DFN_EVAL, NULL);
    return dfn_softmax_cross_entropy(NULL, logits, y, B, dfn_model_get_config(c)->num_classes);
}

/* A classifier config for C x H x W images and K classes, as small as asked. */
static dfn_model_config classifier_config(int C, int H, int W, int K, int ch, int groups, int F) {
    dfn_model_config cfg;
    dfn_model_config_init(&cfg, DFN_MODEL_CLASSIFIER);
    cfg.num_classes = K;
    cfg.classifier.in_channels = C;
    cfg.classifier.height = H;
    cfg.classifier.width = W;
    cfg.classifier.channels = ch;
    cfg.classifier.groups = groups;
    cfg.classifier.feature_dim = F;
    return cfg;
}

/* The train-classifier recipe, in memory (no run directory). */
static dfn_train_params classifier_params(long steps, int batch, long warmup, uint64_t seed) {
    dfn_train_params p = dfn_train_params_init();
    p.steps = steps;
    p.batch_size = batch;
    p.adamw.lr = 2e-3;
    p.adamw.weight_decay = 0.05;
    p.warmup = warmup;
    p.lr_min_ratio = 0.01;
    p.ema_decay = 0;
    p.val_every = 0;
    p.progress = 0;
    p.seed = seed;
    return p;
}

/* timed: the time-conditioned classifier (classifier guidance), t = 3, 400, 999;
 * deep: the evaluation classifier's shape (a second convolution per stage, the
 * flattened 4 x 2 x 2 map into fc1; its dropout is compared with PyTorch's in
 * test_torch_reference) */
static void test_classifier_grad(int timed, int deep) {
    dfn_model_config cfg = classifier_config(2, 6, 5, 3, 4, 2, 6);
    cfg.classifier.time_embed = timed;
    cfg.classifier.extra_convs = deep;
    cfg.classifier.flatten = deep;
    static const float times[3] = {3.0f, 400.0f, 999.0f};
    ce_times = timed ? times : NULL;
    dfn_model *c;
    CHECK(dfn_model_new(&c, &cfg, 7) == DFN_OK, "new: %s", dfn_last_error());
    /* features: SiLU(fc1) (6), or with flatten the last map's mean (4 x 4 channels) */
    CHECK(dfn_model_feature_dim(c) == (deep ? 16 : 6) && dfn_model_output_size(c) == 3 &&
              dfn_model_input_size(c) == 60 && dfn_model_takes_time(c) == timed &&
              !dfn_model_is_denoiser(c),
          "classifier shapes");
    const int B = 3, K = 3;
    const size_t in = 2 * 6 * 5, P = dfn_model_num_params(c);
    float *x = dfn_malloc(B * in * sizeof(float)), *dx = dfn_malloc(B * in * sizeof(float));
    float *logits = dfn_malloc(B * K * sizeof(float)), *dlog = dfn_malloc(B * K * sizeof(float));
    float *feat = dfn_malloc((size_t)B * dfn_model_feature_dim(c) * sizeof(float));
    int y[3] = {0, 2, 1};
    fill_uniform(x, B * in, 11);
    /* biases and norm parameters away from their initial 0 / 1 */
    float *params = dfn_model_params(c);
    float *noise = dfn_malloc(P * sizeof(float));
    fill_uniform(noise, P, 12);
    for (size_t i = 0; i < P; i++) params[i] += 0.3f * noise[i];
    free(noise);

    dfn_model_zero_grad(c);
    dfn_model_forward(c, logits, x, ce_times, NULL, B, DFN_TRAIN, NULL);
    dfn_model_features(c, feat);
    double L0 = dfn_softmax_cross_entropy(dlog, logits, y, B, K);
    CHECK(isfinite(L0) && L0 > 0, "loss %g", L0);
    dfn_model_backward(c, dlog, dx);
    const float *g = dfn_model_grads(c);

    /* the loss's own gradient: central differences in double */
    {
        double worst = 0, scale = 0;
        for (int i = 0; i < B * K; i++) {
            float v = logits[i];
            const double hh = 1e-3;
            logits[i] = (float)(v + hh);
            double Lp = dfn_softmax_cross_entropy(NULL, logits, y, B, K);
            logits[i] = (float)(v - hh);
            double Lm = dfn_softmax_cross_entropy(NULL, logits, y, B, K);
            logits[i] = v;
            double fdv = (Lp - Lm) / ((double)(float)(v + hh) - (double)(float)(v - hh));
            worst = fmax(worst, fabs(fdv - dlog[i]));
            scale = fmax(scale, fabs(dlog[i]));
        }
        CHECK(worst <= 1e-3 * scale, "cross-entropy gradient off by %g (scale %g)", worst, scale);
    }

    /* 60 parameters picked across every tensor, and 20 input elements */
    enum { NP = 60, NX = 20 };
    float an[NP + NX], fd[NP + NX];
    const float h = 1e-2f;
    for (int k = 0; k < NP + NX; k++) {
        float *v;
        if (k < NP) {
            size_t i = (size_t)(((uint64_t)k * 2654435761u) % P);
            v = params + i;
            an[k] = g[i];
        } else {
            size_t i = (size_t)(((uint64_t)(k - NP) * 40503u + 17) % (B * in));
            v = x + i;
            an[k] = dx[i];
        }
        float old = *v;
        *v = old + h;
        double Lp = ce_loss(c, x, y, B, logits);
        *v = old - h;
        double Lm = ce_loss(c, x, y, B, logits);
        *v = old;
        fd[k] = (float)((Lp - Lm) / ((double)(old + h) - (double)(old - h)));
    }
    double ep = rel_error(an, fd, NP), ex = rel_error(an + NP, fd + NP, NX);
    printf("  classifier%s backward vs finite differences: params rel err %.2e, input rel err "
           "%.2e\n", timed ? " (time-conditioned)" : deep ? " (extra convolutions, flattened)" : "", ep, ex);
    check_tensor("classifier dparams (sampled)", an, fd, NP, 2e-2);
    check_tensor("classifier dx (sampled)", an + NP, fd + NP, NX, 2e-2);
    /* backward accumulates: a second pass doubles the gradients */
    float *g1 = dfn_malloc(P * sizeof(float));
    memcpy(g1, g, P * sizeof(float));
    dfn_model_forward(c, logits, x, ce_times, NULL, B, DFN_TRAIN, NULL);
    dfn_model_backward(c, dlog, NULL);
    double worst = 0;
    for (size_t i = 0; i < P; i++) worst = fmax(worst, fabs(g[i] - 2 * g1[i]));
    CHECK(worst < 1e-6, "backward does not accumulate (off by %g)", worst);
    free(g1), free(x), free(dx), free(logits), free(dlog), free(feat);
    dfn_model_free(c);
}

/* ------------------------------------------------------------ synthetic images */

/* Three classes of 1 x S x S images in [-1, 1] plus noise: 0 a bright top
 * half, 1 a bright left half, 2 a bright centre square. */
static dfn_dataset *synthetic(size_t n, int S, uint64_t seed) {
    int dims[3] = {1, S, S};
    dfn_dataset *ds;
    if (dfn_dataset_new(&ds, n, 3, dims, 3) != DFN_OK) return NULL;
    float *x = dfn_dataset_data(ds);
    int *y = dfn_dataset_labels(ds);
    dfn_rng rng = dfn_rng_init(seed);
    float *z = dfn_malloc((size_t)S * S * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        int k = (int)(i % 3);
        y[i] = k;
        dfn_rng_normal(&rng, z, (size_t)S * S);
        for (int r = 0; r < S; r++)
            for (int col = 0; col < S; col++) {
                int on = k == 0 ? r < S / 2
                       : k == 1 ? col < S / 2
                                : (r >= S / 4 && r < S - S / 4 && col >= S / 4 && col < S - S / 4);
                x[i * S * S + (size_t)r * S + col] = (on ? 0.5f : -0.5f) + 0.6f * z[r * S + col];
            }
    }
    free(z);
    return ds;
}

static dfn_model *small_classifier(int S, uint64_t seed) {
    dfn_model_config cfg = classifier_config(1, S, S, 3, 8, 4, 16);
    dfn_model *c = NULL;
    if (dfn_model_new(&c, &cfg, seed) != DFN_OK) return NULL;
    return c;
}

static void test_training(void) {
    dfn_dataset *train = synthetic(600, 8, 1), *test = synthetic(300, 8, 2);
    dfn_model *c = small_classifier(8, 3);
    double acc0 = 0, acc = 0;
    CHECK(dfn_classifier_accuracy(c, test, &acc0) == DFN_OK, "%s", dfn_last_error());
    dfn_train_params p = classifier_params(200, 32, 20, 5);
    CHECK(dfn_train(c, train, NULL, &p) == DFN_OK, "train: %s", dfn_last_error());
    CHECK(dfn_classifier_accuracy(c, test, &acc) == DFN_OK, "%s", dfn_last_error());
    printf("  synthetic 3-class 8x8 images: test accuracy %.3f before, %.3f after 200 steps\n", acc0,
           acc);
    CHECK(acc >= 0.95, "accuracy %.3f after training (want >= 0.95)", acc);

    /* unlabelled data, wrong shapes */
    dfn_dataset *unl = NULL, *wrong = synthetic(10, 16, 1);
    int dims[3] = {1, 8, 8};
    CHECK(dfn_dataset_new(&unl, 10, 3, dims, 0) == DFN_OK, "new");
    CHECK(dfn_train(c, unl, NULL, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "no labels"),
          "unlabelled: %s", dfn_last_error());
    CHECK(dfn_train(c, wrong, NULL, &p) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "1x16x16") && strstr(dfn_last_error(), "1x8x8"),
          "wrong shape: %s", dfn_last_error());
    CHECK(dfn_classifier_accuracy(c, wrong, &acc) == DFN_ERR_ARG, "accuracy on a wrong shape");

    /* checkpoint round trip */
    const char *path = tmp_path("clf.safetensors");
    const char *extra[] = {"test_accuracy", "0.99", NULL};
    CHECK(dfn_model_save(c, path, extra) == DFN_OK, "save: %s", dfn_last_error());
    dfn_model *d = NULL;
    CHECK(dfn_model_load(&d, path) == DFN_OK, "load: %s", dfn_last_error());
    if (d) {
        CHECK(dfn_model_num_params(d) == dfn_model_num_params(c) &&
                  !memcmp(dfn_model_params(d), dfn_model_params(c),
                          dfn_model_num_params(c) * sizeof(float)),
              "loaded parameters differ");
        double acc2 = 0;
        dfn_classifier_accuracy(d, test, &acc2);
        CHECK(acc2 == acc, "accuracy after load %.4f != %.4f", acc2, acc);
        /* a loaded classifier names its file when the data do not fit */
        CHECK(dfn_classifier_accuracy(d, wrong, &acc2) == DFN_ERR_ARG &&
                  strstr(dfn_last_error(), path) && strstr(dfn_last_error(), "1x16x16"),
              "wrong data: %s", dfn_last_error());
        dfn_model_free(d);
    }
    dfn_st_file *f = NULL;
    CHECK(dfn_st_open(&f, path) == DFN_OK, "open");
    if (f) {
        const char *format = dfn_st_metadata(f, "format"), *version = dfn_st_metadata(f, "format_version");
        const char *cfg = dfn_st_metadata(f, "config"), *ta = dfn_st_metadata(f, "test_accuracy");
        CHECK(format && !strcmp(format, "diffusion.c checkpoint") && version && !strcmp(version, "2"),
              "format metadata");
        CHECK(cfg && strstr(cfg, "\"kind\":\"classifier\"") && strstr(cfg, "\"feature_dim\":16") &&
                  strstr(cfg, "\"num_classes\":3") && strstr(cfg, "\"height\":8"),
              "config metadata %s", cfg ? cfg : "-");
        CHECK(ta && !strcmp(ta, "0.99"), "extra metadata");
        CHECK(dfn_st_find(f, "conv1.weight") && dfn_st_find(f, "fc2.bias"), "tensor names");
        dfn_st_close(f);
    }
    dfn_model_free(c);
    dfn_dataset_free(train), dfn_dataset_free(test), dfn_dataset_free(unl), dfn_dataset_free(wrong);
}

/* ------------------------------------------------------------ checkpoint errors */

static void test_checkpoint_errors(void) {
    dfn_model *c = NULL;
    const char *missing = tmp_path("nope.safetensors");
    CHECK(dfn_model_load(&c, missing) == DFN_ERR_IO && !c &&
              strstr(dfn_last_error(), "nope.safetensors"),
          "missing: %s", dfn_last_error());
    const char *junk = tmp_path("junk.safetensors");
    FILE *fp = fopen(junk, "wb");
    fputs("this is not a safetensors file at all", fp);
    fclose(fp);
    CHECK(dfn_model_load(&c, junk) == DFN_ERR_FORMAT && !c && strstr(dfn_last_error(), junk),
          "corrupt: %s", dfn_last_error());
    /* a diffusion model checkpoint */
    dfn_model_config mc;
    dfn_model_config_preset(&mc, "mlp-2d");
    dfn_model *model = NULL;
    const char *mpath = tmp_path("model.safetensors");
    CHECK(dfn_model_new(&model, &mc, 1) == DFN_OK && dfn_model_save(model, mpath, NULL) == DFN_OK,
          "model save");
    dfn_model_free(model);
    CHECK(dfn_model_load(&model, mpath) == DFN_OK, "model load: %s", dfn_last_error());
    dfn_dataset *imgs = synthetic(200, 8, 3);
    double acc = 0, fid = 0;
    CHECK(dfn_classifier_accuracy(model, imgs, &acc) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "not a classifier") && strstr(dfn_last_error(), mpath),
          "model as classifier: %s", dfn_last_error());
    CHECK(dfn_fid(&fid, model, imgs, imgs) == DFN_ERR_ARG && strstr(dfn_last_error(), "not a classifier"),
          "model as classifier (FID): %s", dfn_last_error());
    dfn_model_free(model);
    dfn_dataset_free(imgs);
    /* a truncated classifier */
    dfn_model *good = small_classifier(8, 1);
    const char *gpath = tmp_path("good.safetensors"), *tpath = tmp_path("trunc.safetensors");
    CHECK(dfn_model_save(good, gpath, NULL) == DFN_OK, "save");
    FILE *in = fopen(gpath, "rb"), *out = fopen(tpath, "wb");
    char buf[4096];
    size_t got = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, got / 2, out);
    fclose(in), fclose(out);
    CHECK(dfn_model_load(&c, tpath) == DFN_ERR_FORMAT && !c && strstr(dfn_last_error(), tpath),
          "truncated: %s", dfn_last_error());
    /* a checkpoint whose tensor has another shape */
    dfn_st_writer *w = dfn_st_writer_new();
    dfn_st_file *f = NULL;
    dfn_st_open(&f, gpath);
    for (int i = 0; i < dfn_st_num_metadata(f); i++)
        dfn_st_writer_set_metadata(w, dfn_st_metadata_key(f, i), dfn_st_metadata_value(f, i));
    for (int i = 0; i < dfn_st_num_tensors(f); i++) {
        const dfn_st_tensor *t = dfn_st_tensor_at(f, i);
        int64_t shape[DFN_ST_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        if (!strcmp(t->name, "fc1.bias")) shape[0] = 1;
        dfn_st_writer_add(w, t->name, t->dtype, t->ndim, shape, t->data);
    }
    const char *bpath = tmp_path("badshape.safetensors");
    CHECK(dfn_st_writer_save(w, bpath) == DFN_OK, "save bad shape");
    dfn_st_writer_free(w);
    dfn_st_close(f);
    CHECK(dfn_model_load(&c, bpath) == DFN_ERR_FORMAT && !c &&
              strstr(dfn_last_error(), "fc1.bias"),
          "bad shape: %s", dfn_last_error());
    /* a version 1 classifier file ("diffusion.c classifier", with "kind" and
     * "data_shape") loads as the same model */
    w = dfn_st_writer_new();
    dfn_st_open(&f, gpath);
    dfn_st_writer_set_metadata(w, "format", "diffusion.c classifier");
    dfn_st_writer_set_metadata(w, "format_version", "1");
    dfn_st_writer_set_metadata(w, "kind", "classifier");
    dfn_st_writer_set_metadata(w, "config", dfn_st_metadata(f, "config"));
    dfn_st_writer_set_metadata(w, "data_shape", "[1, 8, 8]");
    for (int i = 0; i < dfn_st_num_tensors(f); i++) {
        const dfn_st_tensor *t = dfn_st_tensor_at(f, i);
        dfn_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    const char *v1path = tmp_path("v1.safetensors");
    CHECK(dfn_st_writer_save(w, v1path) == DFN_OK, "save v1");
    dfn_st_writer_free(w);
    dfn_st_close(f);
    CHECK(dfn_model_load(&c, v1path) == DFN_OK && c &&
              !memcmp(dfn_model_params(c), dfn_model_params(good), dfn_model_num_params(good) * sizeof(float)),
          "version 1 classifier: %s", dfn_last_error());
    dfn_model_free(c);
    c = NULL;
    /* config errors */
    dfn_model_config cfg = classifier_config(1, 8, 8, 3, 8, 5, 16);
    CHECK(dfn_model_new(&c, &cfg, 0) == DFN_ERR_CONFIG && !c &&
              strstr(dfn_last_error(), "groups"),
          "groups: %s", dfn_last_error());
    cfg = classifier_config(1, 8, 8, 1, 8, 4, 16);
    CHECK(dfn_model_new(&c, &cfg, 0) == DFN_ERR_CONFIG && !c &&
              strstr(dfn_last_error(), "num_classes"),
          "one class: %s", dfn_last_error());
    dfn_model_free(good);
}

/* ------------------------------------------------------------ determinism */

static void train_once(int threads, float *params_out, float *feat_out, size_t *np) {
    dfn_set_threads(threads);
    dfn_dataset *train = synthetic(256, 16, 9);
    dfn_model_config cfg = classifier_config(1, 16, 16, 3, 16, 8, 32);
    dfn_model *c = NULL;
    dfn_model_new(&c, &cfg, 4);
    dfn_train_params p = classifier_params(6, 64, 2, 8);
    p.hflip = 1;
    CHECK(dfn_train(c, train, NULL, &p) == DFN_OK, "%s", dfn_last_error());
    *np = dfn_model_num_params(c);
    memcpy(params_out, dfn_model_params(c), *np * sizeof(float));
    dfn_model_extract_features(c, feat_out, dfn_dataset_sample(train, 0), 100);
    dfn_model_free(c);
    dfn_dataset_free(train);
}

static void test_determinism(void) {
    float *p1 = dfn_malloc(1 << 22), *p2 = dfn_malloc(1 << 22);
    float *f1 = dfn_malloc(100 * 32 * sizeof(float)), *f2 = dfn_malloc(100 * 32 * sizeof(float));
    size_t n1 = 0, n2 = 0;
    train_once(1, p1, f1, &n1);
    train_once(2, p2, f2, &n2);
    CHECK(n1 == n2 && !memcmp(p1, p2, n1 * sizeof(float)),
          "trained parameters differ between 1 and 2 threads");
    CHECK(!memcmp(f1, f2, 100 * 32 * sizeof(float)), "features differ between 1 and 2 threads");
    printf("  determinism: %zu parameters and 100x32 features bit-identical on 1 and 2 threads\n",
           n1);
    free(p1), free(p2), free(f1), free(f2);
}

/* ------------------------------------------------------------ the command */

static void put_be32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    fwrite(b, 1, 4, f);
}

/* The synthetic set as uncompressed IDX files (images, labels). */
static void write_idx(const char *img, const char *lab, size_t n, int S) {
    dfn_dataset *ds = synthetic(n, S, 21);
    FILE *fi = fopen(img, "wb"), *fl = fopen(lab, "wb");
    put_be32(fi, 0x803), put_be32(fi, (uint32_t)n), put_be32(fi, (uint32_t)S),
        put_be32(fi, (uint32_t)S);
    put_be32(fl, 0x801), put_be32(fl, (uint32_t)n);
    uint8_t *px = dfn_malloc(n * S * S);
    dfn_unit_to_pixels(px, dfn_dataset_data(ds), n * S * S);
    fwrite(px, 1, n * S * S, fi);
    for (size_t i = 0; i < n; i++) fputc(dfn_dataset_labels(ds)[i], fl);
    fclose(fi), fclose(fl);
    free(px);
    dfn_dataset_free(ds);
}

static void test_cli(void) {
    const char *bin = getenv("DFN_BIN");
    if (!bin) {
        printf("  (DFN_BIN not set: command-line checks skipped; ctest sets it)\n");
        return;
    }
    const char *img = tmp_path("img.idx"), *lab = tmp_path("lab.idx");
    write_idx(img, lab, 400, 8);
    char cmd[2048], out[8192];
    const char *ckpt = tmp_path("cli.safetensors");
    snprintf(cmd, sizeof cmd,
             "%s train-classifier --data idx:%s,%s --out %s --steps 80 --batch 32 --channels 8 "
             "--groups 4 --features 16 --warmup 10 --quiet --threads 1 2>&1",
             bin, img, lab, ckpt);
    int rc = test_run_command(cmd, out, sizeof out);
    printf("  %s", out);
    CHECK(rc == 0 && strstr(out, "test accuracy") && strstr(out, "10% of idx:"),
          "train-classifier: rc %d: %s", rc, out);
    const char *acc = strstr(out, "test accuracy ");
    CHECK(acc && atof(acc + 14) >= 0.9, "CLI accuracy %s", acc ? acc + 14 : "-");
    dfn_model *c = NULL;
    /* the flatten head's features: the last map's mean, 4 x 8 channels */
    CHECK(dfn_model_load(&c, ckpt) == DFN_OK && dfn_model_feature_dim(c) == 32,
          "load the CLI's checkpoint: %s (features %d)", dfn_last_error(), c ? dfn_model_feature_dim(c) : -1);
    dfn_model_free(c);
    /* eval fid / kid print one number each: "FID: 0.0123  (100 samples ...)"
     * (FID was printed as "FID: 0.00100.0000") */
    {
        dfn_dataset *ds = synthetic(100, 8, 5);
        const int64_t shape[4] = {100, 1, 8, 8};
        const char *npy = tmp_path("samples.npy");
        CHECK(ds && dfn_npy_write_f32(npy, dfn_dataset_data(ds), 4, shape) == DFN_OK, "samples .npy");
        dfn_dataset_free(ds);
        snprintf(cmd, sizeof cmd, "%s eval fid --samples %s --data idx:%s,%s --classifier %s --n 100 2>&1", bin, npy,
                 img, lab, ckpt);
        rc = test_run_command(cmd, out, sizeof out);
        printf("  %s", out);
        char *end = NULL;
        const double fid = !strncmp(out, "FID: ", 5) ? strtod(out + 5, &end) : -1;
        CHECK(rc == 0 && end && !strncmp(end, "  (100 samples from ", 20) && fid >= 0 && fid < 1,
              "eval fid: one number, small for samples of the data's distribution: rc %d: %s", rc, out);
        snprintf(cmd, sizeof cmd, "%s eval kid --samples %s --data idx:%s,%s --classifier %s --n 100 2>&1", bin, npy,
                 img, lab, ckpt);
        rc = test_run_command(cmd, out, sizeof out);
        end = NULL;
        if (!strncmp(out, "KID: ", 5)) strtod(out + 5, &end);
        CHECK(rc == 0 && end && !strncmp(end, " +- ", 4), "eval kid: rc %d: %s", rc, out);
    }
    snprintf(cmd, sizeof cmd, "%s train-classifier --data idx:%s,%s 2>&1", bin, img, lab);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 2 && strstr(out, "--out"), "missing --out: rc %d: %s", rc, out);
    snprintf(cmd, sizeof cmd, "%s train-classifier --data idx:%s --out %s 2>&1", bin, img, ckpt);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 2 && strstr(out, "no labels"), "unlabelled: rc %d: %s", rc, out);
    snprintf(cmd, sizeof cmd, "%s train-classifier --data idx:%s/none --out %s 2>&1", bin, tmpdir,
             ckpt);
    rc = test_run_command(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "none"), "missing data: rc %d: %s", rc, out);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp");
        TEST_MAIN_END();
    }
    test_pool();
    test_classifier_grad(0, 0);
    test_classifier_grad(1, 0);
    test_classifier_grad(0, 1);
    test_training();
    test_checkpoint_errors();
    test_determinism();
    test_cli();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    dfn_scratch_release();
    TEST_MAIN_END();
}

/* test_checkpoint_torch.c - a checkpoint written by the C side loads into the
 * PyTorch twin (scripts/torch_forward.py: names map one to one, strict load)
 * and reproduces the C forward output to 1e-4 (inf-norm relative error); for an
 * autoencoder also its posterior (dfn_autoencoder_encode's mean and logvar).
 * Needs Debian's python3-torch; where it is missing the test reports itself
 * skipped (exit code 77, ctest's SKIP_RETURN_CODE). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diffusion.h"
#include "io/safetensors.h"
#include "test_util.h"

#define PYTHON "/usr/bin/python3"

static void round_trip(const char *dir, const dfn_model_config *cfg, int B, const char *name) {
    dfn_model *m;
    if (dfn_model_new(&m, cfg, 7) != DFN_OK) {
        CHECK(0, "%s: %s", name, dfn_last_error());
        return;
    }
    const dfn_model_config *c = dfn_model_get_config(m);
    const size_t D = dfn_model_input_size(m), O = dfn_model_output_size(m);
    const int labels = c->num_classes > 0 && dfn_model_is_denoiser(m); /* a denoiser with classes */
    float *x = malloc(sizeof(float) * B * D), *out = malloc(sizeof(float) * B * O), *t = malloc(sizeof(float) * B);
    int *y = malloc(sizeof(int) * B);
    dfn_rng rng = dfn_rng_init(3);
    dfn_rng_normal(&rng, x, B * D);
    for (int b = 0; b < B; b++) {
        t[b] = (float)(b * 317 % 1000);
        y[b] = c->num_classes ? b % (c->num_classes + 1) : 0;
    }
    dfn_model_forward(m, out, x, t, labels ? y : NULL, B, 0, NULL);
    const int ae = c->kind == DFN_MODEL_AUTOENCODER;
    const size_t L = ae ? dfn_autoencoder_latent_size(m) : 0;
    float *mean = ae ? malloc(sizeof(float) * B * L) : NULL, *logvar = ae ? malloc(sizeof(float) * B * L) : NULL;
    if (ae) dfn_autoencoder_encode(m, mean, logvar, x, B);
    char ckpt[512], in[512], res[512], cmd[2048];
    snprintf(ckpt, sizeof ckpt, "%s/%s.safetensors", dir, name);
    snprintf(in, sizeof in, "%s/%s_in.safetensors", dir, name);
    snprintf(res, sizeof res, "%s/%s_out.safetensors", dir, name);
    CHECK(dfn_model_save(m, ckpt, NULL) == DFN_OK, "save: %s", dfn_last_error());
    dfn_st_writer *w = dfn_st_writer_new();
    int dims[3], nd = dfn_model_input_shape(m, dims);
    int64_t xs[4] = {B, dims[0], dims[1], dims[2]}, ts[1] = {B};
    dfn_st_writer_add(w, "x", DFN_DTYPE_F32, nd + 1, xs, x);
    dfn_st_writer_add(w, "t", DFN_DTYPE_F32, 1, ts, t);
    if (labels) dfn_st_writer_add(w, "y", DFN_DTYPE_I32, 1, ts, y);
    CHECK(dfn_st_writer_save(w, in) == DFN_OK, "inputs: %s", dfn_last_error());
    dfn_st_writer_free(w);
    snprintf(cmd, sizeof cmd, PYTHON " scripts/torch_forward.py %s %s %s", ckpt, in, res);
    int rc = system(cmd);
    CHECK(rc == 0, "%s: torch_forward.py failed (%d)", name, rc);
    dfn_st_file *f;
    if (rc == 0 && dfn_st_open(&f, res) == DFN_OK) {
        const dfn_st_tensor *o;
        if (dfn_st_get(f, "out", DFN_DTYPE_F32, -1, NULL, &o) == DFN_OK && o->numel == B * O) {
            double e = rel_error(o->data, out, B * O);
            check_tensor(name, o->data, out, B * O, 1e-4);
            printf("%-14s PyTorch forward of the C checkpoint vs C: rel error %.2e\n", name, e);
        } else {
            CHECK(0, "%s: no output tensor", res);
        }
        const char *post[2] = {"mean", "logvar"};
        for (int k = 0; ae && k < 2; k++) {
            const float *want = k ? logvar : mean;
            if (dfn_st_get(f, post[k], DFN_DTYPE_F32, -1, NULL, &o) == DFN_OK && o->numel == B * L) {
                double e = rel_error(o->data, want, B * L);
                check_tensor(post[k], o->data, want, B * L, 1e-4);
                printf("%-14s PyTorch posterior %-6s vs dfn_autoencoder_encode: rel error %.2e\n", name, post[k], e);
            } else {
                CHECK(0, "%s: no %s tensor of %zu values", res, post[k], (size_t)B * L);
            }
        }
        dfn_st_close(f);
    }
    free(x); free(out); free(t); free(y); free(mean); free(logvar);
    dfn_model_free(m);
}

int main(void) {
    if (system(PYTHON " -c 'import torch' > /dev/null 2>&1") != 0) {
        printf("SKIPPED: PyTorch is not installed (apt-get install python3-torch python3-numpy)\n");
        return 77;
    }
    char dir[] = "/tmp/dfn_ckpt_torch_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp");
        TEST_MAIN_END();
    }
    dfn_model_config c;
    dfn_model_config_preset(&c, "fmnist-tiny");
    round_trip(dir, &c, 3, "fmnist-tiny");
    dfn_model_config_preset(&c, "fmnist-small");
    c.unet.channels = 32; c.unet.groups = 8; c.unet.heads = 2; c.num_classes = 10;
    round_trip(dir, &c, 2, "unet-classes");
    dfn_model_config_preset(&c, "mlp-2d");
    c.num_classes = 4;
    round_trip(dir, &c, 16, "mlp-classes");
    dfn_model_config_preset(&c, "fmnist-classifier");
    round_trip(dir, &c, 5, "classifier");
    c.classifier.time_embed = 1; /* the classifier of classifier guidance */
    round_trip(dir, &c, 5, "classifier-noisy");
    dfn_model_config_init(&c, DFN_MODEL_AUTOENCODER); /* fmnist-ae: 1x28x28 -> 4x7x7 */
    c.dropout = 0.1f; /* in the config, not in an eval forward */
    round_trip(dir, &c, 2, "autoencoder");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}

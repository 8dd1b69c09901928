/* test_latent.c - latent diffusion through the pipeline: a model trained on an
 * autoencoder's latents names it in its checkpoint, loads it back, samples
 * decoded images (the same bits for any thread count), inpaints through the
 * latents, and refuses what does not fit: a missing or another autoencoder, a
 * model of another latent shape, flips of encoded data, DDIM inversion,
 * likelihood-free guidance by a pixel classifier. The autoencoder's latent
 * scale is 1 / the standard deviation of the posterior means. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diffusion.h"
#include "test_util.h"

static char tmpdir[] = "/tmp/dfn_latent_XXXXXX";

static const char *in_tmp(const char *name) {
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static dfn_model *tiny_autoencoder(uint64_t seed) {
    dfn_model_config c;
    dfn_model_config_init(&c, DFN_MODEL_AUTOENCODER);
    c.autoencoder.resolution = 8;
    c.autoencoder.channels = 4;
    c.autoencoder.n_levels = 2;
    c.autoencoder.ch_mult[0] = 1;
    c.autoencoder.ch_mult[1] = 2;
    c.autoencoder.groups = 2;
    c.autoencoder.latent_channels = 2;
    dfn_model *m = NULL;
    CHECK(dfn_model_new(&m, &c, seed) == DFN_OK, "autoencoder: %s", dfn_last_error());
    return m;
}

static dfn_model *tiny_unet(int in_channels, int resolution) {
    dfn_model_config c;
    dfn_model_config_preset(&c, "fmnist-tiny");
    c.unet.in_channels = in_channels;
    c.unet.resolution = resolution;
    c.unet.channels = 8;
    c.unet.groups = 4;
    c.unet.n_levels = 1;
    c.unet.ch_mult[0] = 1;
    dfn_model *m = NULL;
    CHECK(dfn_model_new(&m, &c, 5) == DFN_OK, "unet: %s", dfn_last_error());
    return m;
}

static int all_in(const float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        if (!(x[i] >= lo && x[i] <= hi)) return 0;
    return 1;
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp");
        TEST_MAIN_END();
    }
    dfn_set_threads(2);
    const size_t n = 96;
    float *img = malloc(n * 64 * sizeof(float));
    dfn_rng r = dfn_rng_init(3);
    dfn_rng_uniform(&r, img, n * 64);
    for (size_t i = 0; i < n * 64; i++) img[i] = 2 * img[i] - 1;
    dfn_dataset *images;
    CHECK(dfn_dataset_from_array(&images, img, n, 3, (int[]){1, 8, 8}, NULL, 0) == DFN_OK, "images");

    /* the latent scale: 1 / std of the posterior means over the data */
    dfn_model *ae = tiny_autoencoder(1);
    const size_t L = dfn_autoencoder_latent_size(ae);
    CHECK(L == 2 * 4 * 4, "latents 2x4x4 (%zu)", L);
    float *mean = malloc(n * L * sizeof(float));
    dfn_autoencoder_encode(ae, mean, NULL, img, (int)n);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n * L; i++) s += mean[i], s2 += (double)mean[i] * mean[i];
    const double want = 1.0 / sqrt(s2 / (n * L) - (s / (n * L)) * (s / (n * L)));
    const double scale = dfn_autoencoder_measure_scale(ae, img, n);
    CHECK(fabs(scale - want) <= 1e-9 * want, "latent scale %.12g, 1/std of the means %.12g", scale, want);
    dfn_autoencoder_set_scale(ae, scale);
    CHECK(dfn_model_save(ae, in_tmp("ae.safetensors"), NULL) == DFN_OK, "save: %s", dfn_last_error());
    dfn_model_free(ae);
    CHECK(dfn_model_load(&ae, in_tmp("ae.safetensors")) == DFN_OK, "load: %s", dfn_last_error());
    CHECK(dfn_autoencoder_scale(ae) == scale, "the scale survives the checkpoint");

    /* a U-Net on the latents, trained briefly through the one loop */
    dfn_model *unet = tiny_unet(2, 4);
    dfn_train_params p = dfn_train_params_init();
    p.run_dir = in_tmp("run");
    p.steps = 6;
    p.batch_size = 16;
    p.val_every = 0;
    p.save_every = 6;
    p.sample_count = 4;
    p.progress = 0;
    p.autoencoder = ae;
    CHECK(dfn_train(unet, images, NULL, &p) == DFN_OK, "latent training: %s", dfn_last_error());
    CHECK(access(in_tmp("run/autoencoder.safetensors"), F_OK) == 0, "the run keeps its autoencoder");
    CHECK(access(in_tmp("run/samples/final.png"), F_OK) == 0, "decoded previews");

    dfn_pipeline *pipe = NULL;
    CHECK(dfn_pipeline_load(&pipe, in_tmp("run/model.safetensors")) == DFN_OK, "load: %s", dfn_last_error());
    if (pipe) {
        int dims[3];
        CHECK(dfn_pipeline_sample_shape(pipe, dims) == 3 && dims[0] == 1 && dims[1] == 8 && dims[2] == 8,
              "a latent pipeline's samples are the images");
        CHECK(dfn_pipeline_latent_scale(pipe) == scale, "its scale is the autoencoder's");
        dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(pipe);
        CHECK(!sp.sampler_params.clip_x0, "latents are not clipped to [-1, 1]");
        sp.sampler_params.steps = 5;
        sp.batch = 4;
        const int k = 10;
        float *a = malloc(k * 64 * sizeof(float)), *b = malloc(k * 64 * sizeof(float));
        dfn_set_threads(1);
        CHECK(dfn_pipeline_sample(pipe, a, k, &sp, NULL) == DFN_OK, "sample: %s", dfn_last_error());
        dfn_set_threads(2);
        CHECK(dfn_pipeline_sample(pipe, b, k, &sp, NULL) == DFN_OK, "sample: %s", dfn_last_error());
        CHECK(!memcmp(a, b, k * 64 * sizeof(float)), "the same bits with 1 and 2 threads");
        CHECK(all_in(a, k * 64, -1, 1), "decoded images in [-1, 1]");

        /* inpainting with everything known ends on the known latents, decoded:
         * the autoencoder's reconstructions of the inputs */
        float *mask = malloc(64 * sizeof(float)), *z = malloc(k * L * sizeof(float));
        for (int i = 0; i < 64; i++) mask[i] = 1.0f;
        sp.init = img;
        sp.mask = mask;
        CHECK(dfn_pipeline_sample(pipe, a, k, &sp, NULL) == DFN_OK, "inpaint: %s", dfn_last_error());
        dfn_autoencoder_encode(ae, z, NULL, img, k);
        for (size_t i = 0; i < k * L; i++) z[i] = (float)((float)(z[i] * scale) / scale);
        dfn_autoencoder_decode(ae, b, z, k);
        for (int i = 0; i < k * 64; i++) b[i] = b[i] < -1 ? -1 : b[i] > 1 ? 1 : b[i];
        CHECK(rel_error(a, b, k * 64) < 1e-5, "a fully known inpainting decodes the encoded inputs (%.2e)",
              rel_error(a, b, k * 64));
        sp.mask = NULL;
        sp.init = NULL;
        sp.sampler_params.from_x = 1;
        CHECK(dfn_pipeline_sample(pipe, a, k, &sp, NULL) == DFN_ERR_ARG && strstr(dfn_last_error(), "from_x"),
              "a start in x (images, not latents) is refused: %s", dfn_last_error());
        sp.sampler_params.from_x = 0;
        sp.sampler_params.dynamic_threshold = 1;
        CHECK(dfn_pipeline_sample(pipe, a, k, &sp, NULL) == DFN_ERR_ARG && strstr(dfn_last_error(), "thresholding"),
              "dynamic thresholding of latents is refused: %s", dfn_last_error());
        sp.sampler_params.dynamic_threshold = 0;
        CHECK(dfn_pipeline_set_autoencoder(pipe, dfn_pipeline_autoencoder(pipe), NULL) == DFN_OK &&
                  dfn_model_num_params(dfn_pipeline_autoencoder(pipe)) > 0,
              "setting the pipeline's own autoencoder again keeps it");
        CHECK(dfn_pipeline_invert(pipe, a, k, &sp, NULL) == DFN_ERR_ARG &&
                  strstr(dfn_last_error(), "latent"),
              "inversion of a latent model is refused: %s", dfn_last_error());
        free(mask), free(z), free(a), free(b);
        dfn_pipeline_free(pipe);
    }

    /* refusals: configs that cannot be built, ... */
    dfn_model_config bad;
    dfn_model_config_init(&bad, DFN_MODEL_AUTOENCODER);
    bad.autoencoder.n_levels = 4; /* f = 8 on 28x28 */
    CHECK(dfn_model_config_validate(&bad) == DFN_ERR_CONFIG && strstr(dfn_last_error(), "does not divide"),
          "f must divide the resolution: %s", dfn_last_error());
    dfn_model_config_init(&bad, DFN_MODEL_AUTOENCODER);
    bad.autoencoder.channels = 4;
    bad.autoencoder.ch_mult[0] = bad.autoencoder.ch_mult[1] = bad.autoencoder.ch_mult[2] = 2;
    CHECK(dfn_model_config_validate(&bad) == DFN_ERR_CONFIG && strstr(dfn_last_error(), "groups"),
          "conv_in's channels must be divisible by the groups: %s", dfn_last_error());
    /* ... and models, data and autoencoders that do not fit */
    p.run_dir = NULL;
    p.hflip = 1;
    CHECK(dfn_train(unet, images, NULL, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "hflip"),
          "flips of encoded data: %s", dfn_last_error());
    p.hflip = 0;
    dfn_model *wrong = tiny_unet(1, 8);
    CHECK(dfn_train(wrong, images, NULL, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "latents"),
          "a model of the images' shape on latents: %s", dfn_last_error());
    dfn_pipeline *pp = NULL;
    dfn_process_params proc = dfn_process_params_init();
    CHECK(dfn_pipeline_new(&pp, wrong, &proc, DFN_PRED_EPS) == DFN_OK, "pipeline");
    CHECK(dfn_pipeline_set_autoencoder(pp, ae, NULL) == DFN_ERR_ARG, "another latent shape: %s",
          dfn_last_error());
    dfn_pipeline_free(pp);
    dfn_model_free(wrong);
    CHECK(dfn_pipeline_load_with_autoencoder(&pp, in_tmp("run/model.safetensors"), in_tmp("run/best.safetensors")) != DFN_OK,
          "a U-Net given as the autoencoder: %s", dfn_last_error());
    dfn_model *other = tiny_autoencoder(2);
    dfn_autoencoder_set_scale(other, 1.0);
    CHECK(dfn_model_save(other, in_tmp("other.safetensors"), NULL) == DFN_OK, "save other");
    CHECK(dfn_pipeline_load_with_autoencoder(&pp, in_tmp("run/model.safetensors"), in_tmp("other.safetensors")) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "another autoencoder"),
          "another autoencoder's weights: %s", dfn_last_error());
    CHECK(rename(in_tmp("run/autoencoder.safetensors"), in_tmp("moved.safetensors")) == 0, "move");
    CHECK(dfn_pipeline_load(&pp, in_tmp("run/model.safetensors")) == DFN_ERR_IO &&
              strstr(dfn_last_error(), "--autoencoder"),
          "a missing autoencoder is named, with the way out: %s", dfn_last_error());
    CHECK(dfn_pipeline_load_with_autoencoder(&pp, in_tmp("run/model.safetensors"), in_tmp("moved.safetensors")) == DFN_OK,
          "given where it is: %s", dfn_last_error());
    dfn_pipeline_free(pp);
    dfn_model_free(other);

    dfn_model_free(unet);
    dfn_model_free(ae);
    dfn_dataset_free(images);
    free(img);
    free(mean);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    dfn_plot_release_caches();
    TEST_MAIN_END();
}

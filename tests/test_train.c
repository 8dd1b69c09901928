/* test_train.c - the trainer: resuming is bit-identical to an uninterrupted
 * run, run directories are protected, divergence stops cleanly, bad data are
 * refused, and the learning-rate and EMA schedules follow their formulas. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diffusion.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "train/train.h"

static char tmpdir[] = "/tmp/dfn_train_XXXXXX";

static char *path_in(const char *run, const char *file) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s%s%s", tmpdir, run, file ? "/" : "", file ? file : "");
    return buf[k];
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* log.csv without the timing columns (img/s, seconds). */
static char *log_without_timing(const char *path) {
    size_t n;
    char *text = (char *)slurp(path, &n);
    if (!text) return NULL;
    text[n] = 0;
    char *out = calloc(n + 1, 1);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        int commas = 0;
        for (char *c = line; *c; c++)
            if (*c == ',' && ++commas == 5) *c = 0;
        strcat(out, line);
        strcat(out, "\n");
    }
    free(text);
    return out;
}

static dfn_model *latent_ae; /* set: the runs train on its latents */
static const dfn_consistency_params *cm_case; /* set: the runs train a consistency model */

static dfn_train_params small_params(const char *run) {
    dfn_train_params p = dfn_train_params_init();
    p.autoencoder = latent_ae;
    p.run_dir = path_in(run, NULL);
    p.steps = 24;
    p.batch_size = 16;
    p.warmup = 5;
    p.save_every = 4;
    p.val_every = 8;
    p.val_batches = 2;
    p.log_every = 4;
    p.progress = 0;
    p.sample_count = 0;
    p.seed = 9;
    p.adamw.lr = 1e-3;
    if (cm_case) p.consistency = *cm_case;
    return p;
}

static void run(const dfn_model_config *cfg, const dfn_dataset *train, const dfn_dataset *val,
                dfn_train_params *p, dfn_status want, const char *what) {
    dfn_model *m;
    if (dfn_model_new(&m, cfg, p->seed) != DFN_OK) {
        CHECK(0, "model: %s", dfn_last_error());
        return;
    }
    dfn_status st = dfn_train(m, train, val, p);
    CHECK(st == want, "%s: status %d, want %d: %s", what, st, want, dfn_last_error());
    dfn_model_free(m);
}

static void resume_is_bit_identical(const dfn_model_config *cfg, const dfn_dataset *train,
                                    const dfn_dataset *val, const char *name) {
    char once[64], split[64];
    snprintf(once, sizeof once, "%s-once", name);
    snprintf(split, sizeof split, "%s-split", name);
    dfn_train_params a = small_params(once);
    run(cfg, train, val, &a, DFN_OK, "uninterrupted");
    dfn_train_params b = small_params(split);
    b.stop_after = 10; /* not a multiple of save_every: the log has rows past the checkpoint */
    run(cfg, train, val, &b, DFN_OK, "first half");
    CHECK(access(path_in(split, "model.safetensors"), F_OK) != 0, "an interrupted run has no final model");
    b.stop_after = 0;
    b.resume = 1;
    run(cfg, train, val, &b, DFN_OK, "resumed");
    CHECK(same_file(path_in(once, "latest.safetensors"), path_in(split, "latest.safetensors")),
          "%s: latest.safetensors differs between 24 steps and 8 + resume + 16", name);
    CHECK(same_file(path_in(once, "model.safetensors"), path_in(split, "model.safetensors")),
          "%s: model.safetensors differs after resume", name);
    CHECK(same_file(path_in(once, "best.safetensors"), path_in(split, "best.safetensors")),
          "%s: best.safetensors differs after resume", name);
    char *la = log_without_timing(path_in(once, "log.csv")), *lb = log_without_timing(path_in(split, "log.csv"));
    CHECK(la && lb && !strcmp(la, lb), "%s: log.csv rows differ after resume:\n%s---\n%s", name, la, lb);
    free(la);
    free(lb);
}

static void run_directories_are_protected(const dfn_model_config *cfg, const dfn_dataset *train) {
    dfn_train_params p = small_params("mlp-once"); /* holds a finished run */
    run(cfg, train, NULL, &p, DFN_ERR_ARG, "same directory without --resume or --force");
    CHECK(strstr(dfn_last_error(), "already holds a training run") && strstr(dfn_last_error(), "--force"),
          "message: %s", dfn_last_error());
    p.resume = 1;
    p.batch_size = 8; /* a different run */
    run(cfg, train, NULL, &p, DFN_ERR_CONFIG, "--resume with other settings");
    CHECK(strstr(dfn_last_error(), "same model, data, process") &&
              strstr(dfn_last_error(), "train.batch_size is 16 in the run, 8 now"),
          "message: %s", dfn_last_error());
    dfn_train_params q = small_params("nothing-here");
    q.resume = 1;
    run(cfg, train, NULL, &q, DFN_ERR_ARG, "--resume of an empty directory");
    CHECK(strstr(dfn_last_error(), "nothing to resume"), "message: %s", dfn_last_error());
    p = small_params("mlp-once");
    p.force = 1;
    p.steps = 4;
    p.warmup = 1;
    run(cfg, train, NULL, &p, DFN_OK, "--force starts over");
}

static void divergence_stops_and_keeps_the_last_good_state(const dfn_model_config *cfg,
                                                           const dfn_dataset *train) {
    dfn_train_params p = small_params("diverge");
    p.adamw.lr = 1e30;
    p.warmup = 0;
    p.clip = 0;
    p.save_every = 1;
    p.val_every = 0;
    run(cfg, train, NULL, &p, DFN_ERR_NUMERIC, "lr 1e30");
    CHECK(strstr(dfn_last_error(), "diverged at step") && strstr(dfn_last_error(), "latest.safetensors"),
          "message: %s", dfn_last_error());
    dfn_st_file *f;
    CHECK(dfn_st_open(&f, path_in("diverge", "latest.safetensors")) == DFN_OK, "the last good state is readable");
    if (f) {
        const char *step = dfn_st_metadata(f, "step");
        CHECK(step && atol(step) >= 1, "last good step %s", step ? step : "?");
        dfn_st_close(f);
    }
}

static void bad_data_is_refused(const dfn_model_config *mlp, const dfn_dataset *train) {
    dfn_train_params p = small_params("bad");
    p.batch_size = 100000;
    run(mlp, train, NULL, &p, DFN_ERR_ARG, "batch larger than the data");
    CHECK(strstr(dfn_last_error(), "fewer than the batch size"), "message: %s", dfn_last_error());
    dfn_model_config c = *mlp;
    c.mlp.dim = 3;
    p = small_params("bad");
    run(&c, train, NULL, &p, DFN_ERR_ARG, "vectors of the wrong length");
    CHECK(strstr(dfn_last_error(), "vectors of 3"), "message: %s", dfn_last_error());
    dfn_model_config u;
    dfn_model_config_preset(&u, "fmnist-tiny");
    run(&u, train, NULL, &p, DFN_ERR_ARG, "a U-Net on vectors");
    CHECK(strstr(dfn_last_error(), "images"), "message: %s", dfn_last_error());
    p.objective.weighting = DFN_WEIGHT_VLB;
    p.process.continuous = 1;
    run(mlp, train, NULL, &p, DFN_ERR_ARG, "vlb weighting on a continuous process");
    p = small_params("bad");
    p.warmup = p.steps;
    run(mlp, train, NULL, &p, DFN_ERR_ARG, "a warm-up as long as the run");
    CHECK(strstr(dfn_last_error(), "would never decay"), "message: %s", dfn_last_error());
}

static void schedules_follow_their_formulas(void) {
    dfn_train_params p = dfn_train_params_init();
    p.steps = 1000;
    p.warmup = 100;
    p.adamw.lr = 1e-3;
    p.lr_min_ratio = 0.1;
    CHECK(fabs(dfn_train_lr(&p, 50) - 5e-4) < 1e-12, "half-way through warm-up: %g", dfn_train_lr(&p, 50));
    CHECK(fabs(dfn_train_lr(&p, 100) - 1e-3) < 1e-12, "end of warm-up");
    CHECK(fabs(dfn_train_lr(&p, 550) - (1e-4 + 0.5 * 9e-4)) < 1e-12, "cosine midpoint: %g", dfn_train_lr(&p, 550));
    CHECK(fabs(dfn_train_lr(&p, 1000) - 1e-4) < 1e-12, "last step reaches lr * lr_min_ratio");
    CHECK(dfn_train_ema_decay(&p, 1) == (float)(2.0 / 11.0), "EMA warm-up at step 1");
    CHECK(dfn_train_ema_decay(&p, 100000) == p.ema_decay, "EMA decay reached");
    p.ema_warmup = 0;
    CHECK(dfn_train_ema_decay(&p, 1) == p.ema_decay, "no warm-up");
    /* the default warm-up is a tenth of a short run (at most 200 steps): a
     * 200-step run warms up for 20 steps and decays to lr * lr_min_ratio */
    p = dfn_train_params_init();
    p.steps = 200;
    p.adamw.lr = 1e-3;
    CHECK(p.warmup == -1, "automatic warm-up by default");
    CHECK(fabs(dfn_train_lr(&p, 10) - 5e-4) < 1e-12, "automatic warm-up: 20 steps (%g at 10)", dfn_train_lr(&p, 10));
    CHECK(fabs(dfn_train_lr(&p, 200) - 1e-3 * p.lr_min_ratio) < 1e-12, "a 200-step run decays: %g",
          dfn_train_lr(&p, 200));
    p.steps = 100000;
    CHECK(fabs(dfn_train_lr(&p, 100) - 5e-4) < 1e-12, "automatic warm-up at most 200 steps");
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        CHECK(0, "mkdtemp");
        TEST_MAIN_END();
    }
    dfn_set_threads(2);
    schedules_follow_their_formulas();

    /* an MLP with dropout and classes on labelled 2-D points */
    dfn_dataset *all, *train, *val;
    float w[3] = {0.5f, 0.3f, 0.2f}, means[6] = {-2, 0, 2, 0, 0, 2}, stds[3] = {0.3f, 0.3f, 0.3f};
    dfn_mixture_params mp = {2, 3, w, means, NULL, stds};
    CHECK(dfn_dataset_gaussian_mixture(&all, 600, &mp, 4) == DFN_OK, "mixture: %s", dfn_last_error());
    CHECK(dfn_dataset_split(all, 0.2, 1, &train, &val) == DFN_OK, "split");
    dfn_model_config mlp;
    dfn_model_config_preset(&mlp, "mlp-2d");
    mlp.mlp.width = 32;
    mlp.mlp.depth = 2;
    mlp.dropout = 0.1f;
    mlp.num_classes = 3;
    resume_is_bit_identical(&mlp, train, val, "mlp");
    /* consistency distillation from the exact mixture (a target network kept
     * beside the weights, Heun steps) and consistency training (its curriculum
     * of levels follows the step) */
    {
        dfn_mixture *mix = NULL;
        CHECK(dfn_mixture_new(&mix, &mp) == DFN_OK, "mixture");
        dfn_schedule sch;
        dfn_schedule_params sp = dfn_schedule_params_init(DFN_BETA_LINEAR);
        CHECK(dfn_schedule_init(&sch, &sp) == DFN_OK, "schedule");
        dfn_denoiser teacher;
        dfn_mixture_denoiser(&teacher, mix, DFN_PRED_EPS, &sch, NULL);
        dfn_consistency_params cm = dfn_train_params_init().consistency;
        cm.method = DFN_CM_DISTILL;
        cm.teacher = &teacher;
        cm.heun = 1;
        cm.target_ema = 0.9;
        cm_case = &cm;
        resume_is_bit_identical(&mlp, train, val, "cd");
        cm = dfn_train_params_init().consistency;
        cm.method = DFN_CM_TRAIN;
        cm.s0 = 2;
        cm.s1 = 16;
        resume_is_bit_identical(&mlp, train, val, "ct");
        cm_case = NULL;
        dfn_schedule_free(&sch);
        dfn_mixture_free(mix);
    }
    run_directories_are_protected(&mlp, train);
    divergence_stops_and_keeps_the_last_good_state(&mlp, train);
    bad_data_is_refused(&mlp, train);

    /* a small U-Net with dropout on 8x8 images */
    size_t n = 64;
    float *img = malloc(n * 64 * sizeof(float));
    dfn_rng r = dfn_rng_init(2);
    dfn_rng_uniform(&r, img, n * 64);
    for (size_t i = 0; i < n * 64; i++) img[i] = 2 * img[i] - 1;
    dfn_dataset *images;
    CHECK(dfn_dataset_from_array(&images, img, n, 3, (int[]){1, 8, 8}, NULL, 0) == DFN_OK, "images");
    dfn_model_config u;
    dfn_model_config_preset(&u, "fmnist-tiny");
    u.unet.resolution = 8;
    u.unet.channels = 8;
    u.unet.groups = 4;
    u.unet.ch_mult[0] = 1; u.unet.ch_mult[1] = 2; u.unet.n_levels = 2;
    resume_is_bit_identical(&u, images, images, "unet");

    /* the KL autoencoder of latent diffusion on the same images (1x8x8 ->
     * 2x4x4), and a U-Net on the latents of the one it trained */
    dfn_model_config ae;
    dfn_model_config_init(&ae, DFN_MODEL_AUTOENCODER);
    ae.autoencoder.resolution = 8;
    ae.autoencoder.channels = 4;
    ae.autoencoder.n_levels = 2;
    ae.autoencoder.ch_mult[0] = 1;
    ae.autoencoder.ch_mult[1] = 2;
    ae.autoencoder.groups = 2;
    ae.autoencoder.latent_channels = 2;
    resume_is_bit_identical(&ae, images, images, "autoencoder");
    dfn_model *trained = NULL;
    CHECK(dfn_model_load(&trained, path_in("autoencoder-once", "model.safetensors")) == DFN_OK,
          "the trained autoencoder: %s", dfn_last_error());
    if (trained) {
        CHECK(dfn_autoencoder_scale(trained) > 0, "a completed run records the latent scale (%g)",
              dfn_autoencoder_scale(trained));
        latent_ae = trained;
        dfn_model_config lu = u;
        lu.unet.in_channels = 2;
        lu.unet.resolution = 4;
        lu.unet.n_levels = 1;
        resume_is_bit_identical(&lu, images, images, "latent");
        CHECK(same_file(path_in("latent-once", "autoencoder.safetensors"),
                        path_in("latent-split", "autoencoder.safetensors")),
              "a latent run keeps its autoencoder");
        latent_ae = NULL;
        dfn_model_free(trained);
    }

    dfn_dataset_free(all);
    dfn_dataset_free(train);
    dfn_dataset_free(val);
    dfn_dataset_free(images);
    free(img);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    dfn_plot_release_caches();
    TEST_MAIN_END();
}

/* test_pipeline.c - the pipeline object (a trained model ready to sample) and
 * the one training loop as a library user meets them:
 *   - dfn_train with a run directory leaves model.safetensors, which
 *     dfn_pipeline_load reads back with the run's process and prediction, and
 *     whose weights are the model's final (EMA) weights;
 *   - dfn_train without a run directory trains in memory and writes nothing;
 *   - a pipeline saved and loaded again samples the same bits; sampling equals
 *     running the sampler over dfn_pipeline_denoiser batch by batch, and does
 *     not depend on the thread count;
 *   - bad input: a classifier as a pipeline, classes and guidance that do not
 *     fit, a sampler for another process, a checkpoint without metadata. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "core/files.h"
#include "test_tmpdir.h"
#include "test_util.h"

static dfn_dataset *moons(size_t n, uint64_t seed) {
    dfn_dataset *ds = NULL;
    CHECK(dfn_dataset_two_moons(&ds, n, 0.05f, seed) == DFN_OK, "moons: %s", dfn_last_error());
    return ds;
}

static dfn_model *small_mlp(int num_classes, uint64_t seed) {
    dfn_model_config cfg;
    dfn_model_config_preset(&cfg, "mlp-2d");
    cfg.mlp.width = 32;
    cfg.mlp.depth = 2;
    cfg.num_classes = num_classes;
    dfn_model *m = NULL;
    CHECK(dfn_model_new(&m, &cfg, seed) == DFN_OK, "model: %s", dfn_last_error());
    return m;
}

static dfn_train_params quick_params(const char *run_dir) {
    dfn_train_params p = dfn_train_params_init();
    p.run_dir = run_dir;
    p.steps = 30;
    p.batch_size = 64;
    p.warmup = 5;
    p.adamw.lr = 1e-3;
    p.val_every = 0;
    p.save_every = 0;
    p.sample_count = 16;
    p.progress = 0;
    p.seed = 3;
    return p;
}

static int files_in(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void trainer_writes_a_pipeline(void) {
    dfn_dataset *data = moons(512, 1);
    dfn_model *m = small_mlp(0, 2);
    const char *run = tmp_path("run");
    dfn_train_params p = quick_params(run);
    p.process.continuous = 1;
    p.process.sde = dfn_sde_init(DFN_SDE_VP);
    p.objective.prediction = DFN_PRED_V;
    CHECK(dfn_train(m, data, NULL, &p) == DFN_OK, "train: %s", dfn_last_error());
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", run);
    dfn_pipeline *pipe = NULL;
    CHECK(dfn_pipeline_load(&pipe, path) == DFN_OK, "load: %s", dfn_last_error());
    if (pipe) {
        const dfn_process_params *proc = dfn_pipeline_process(pipe);
        CHECK(proc->continuous && proc->sde.kind == DFN_SDE_VP && !dfn_pipeline_schedule(pipe),
              "the run's process");
        CHECK(dfn_pipeline_prediction(pipe) == DFN_PRED_V, "the run's prediction");
        CHECK(!strcmp(dfn_pipeline_default_sampler(pipe), "dpm++2m"), "default sampler for VP");
        CHECK(!dfn_pipeline_is_image(pipe) && dfn_pipeline_sample_size(pipe) == 2, "shape");
        CHECK(!strcmp(dfn_pipeline_path(pipe), path), "path");
        /* the file holds the model's final weights: the EMA weights */
        dfn_model *loaded = dfn_pipeline_model(pipe);
        CHECK(dfn_model_num_params(loaded) == dfn_model_num_params(m) &&
                  !memcmp(dfn_model_params(loaded), dfn_model_params(m),
                          dfn_model_num_params(m) * sizeof(float)),
              "model.safetensors holds the weights dfn_train leaves in the model");
        dfn_pipeline_free(pipe);
    }
    snprintf(path, sizeof path, "%s/samples/final.png", run);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL, "the final preview %s", path);
    if (f) fclose(f);
    dfn_model_free(m);
    dfn_dataset_free(data);
}

static void training_in_memory_writes_nothing(void) {
    dfn_dataset *data = moons(512, 1);
    dfn_model *a = small_mlp(0, 2), *b = small_mlp(0, 2);
    dfn_train_params p = quick_params(NULL);
    const char *cwd_probe = tmp_path("mem");
    CHECK(dfn_make_dir(cwd_probe) == DFN_OK, "mkdir");
    CHECK(dfn_train(a, data, NULL, &p) == DFN_OK, "train in memory: %s", dfn_last_error());
    CHECK(files_in(cwd_probe) == 0, "nothing written");
    /* the same run with a directory leaves the same weights in the model */
    p.run_dir = tmp_path("mem-with-dir");
    CHECK(dfn_train(b, data, NULL, &p) == DFN_OK, "train with files: %s", dfn_last_error());
    CHECK(!memcmp(dfn_model_params(a), dfn_model_params(b), dfn_model_num_params(a) * sizeof(float)),
          "in memory and on disk: the same weights");
    /* no EMA: the model keeps the trained weights */
    dfn_model *c = small_mlp(0, 2);
    p = quick_params(NULL);
    p.ema_decay = 0;
    CHECK(dfn_train(c, data, NULL, &p) == DFN_OK, "train without EMA: %s", dfn_last_error());
    CHECK(memcmp(dfn_model_params(a), dfn_model_params(c), dfn_model_num_params(a) * sizeof(float)),
          "EMA and trained weights differ");
    p.resume = 1;
    CHECK(dfn_train(c, data, NULL, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "run directory"),
          "resume without a directory: %s", dfn_last_error());
    p = quick_params(NULL);
    p.ema_decay = 1.0f;
    CHECK(dfn_train(c, data, NULL, &p) == DFN_ERR_ARG && strstr(dfn_last_error(), "EMA decay"),
          "EMA decay 1: %s", dfn_last_error());
    dfn_model_free(a), dfn_model_free(b), dfn_model_free(c);
    dfn_dataset_free(data);
}

static void sample_all(dfn_pipeline *pipe, float *x, int n, const char *sampler, int threads) {
    dfn_set_threads(threads);
    dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(pipe);
    sp.sampler = sampler;
    sp.sampler_params.steps = 12;
    sp.batch = 7;
    sp.seed = 11;
    dfn_sample_stats st;
    CHECK(dfn_pipeline_sample(pipe, x, n, &sp, &st) == DFN_OK, "sample: %s", dfn_last_error());
    CHECK(st.nfe > 0 && st.steps == 12, "stats: nfe %ld, steps %d", st.nfe, st.steps);
}

static void pipelines_save_load_and_sample(void) {
    dfn_model *m = small_mlp(3, 5);
    dfn_process_params proc = dfn_process_params_init();
    proc.schedule.kind = DFN_BETA_COSINE;
    proc.schedule.T = 200;
    dfn_pipeline *pipe = NULL;
    CHECK(dfn_pipeline_new(&pipe, m, &proc, DFN_PRED_EPS) == DFN_OK, "new: %s", dfn_last_error());
    if (!pipe) return;
    CHECK(dfn_pipeline_schedule(pipe) && dfn_pipeline_schedule(pipe)->T == 200, "schedule built");
    const int n = 20;
    float *x1 = dfn_malloc(n * 2 * sizeof(float)), *x2 = dfn_malloc(n * 2 * sizeof(float));
    float *x3 = dfn_malloc(n * 2 * sizeof(float));
    sample_all(pipe, x1, n, "ddim", 1);
    sample_all(pipe, x2, n, "ddim", 2);
    CHECK(!memcmp(x1, x2, n * 2 * sizeof(float)), "the same bits on 1 and 2 threads");

    /* the same as the sampler over the pipeline's denoiser, batch by batch, batch
     * j drawing from block j * 2^40 of the seed's stream */
    dfn_denoiser d;
    dfn_pipeline_denoiser(pipe, &d, 7);
    dfn_sampler_params sp = dfn_sampler_params_init();
    sp.steps = 12;
    sp.clip_x0 = 0;
    for (int s = 0; s < n; s += 7) {
        dfn_rng rng = dfn_rng_init(11);
        rng.counter = (uint64_t)(s / 7) << 40;
        CHECK(dfn_sample("ddim", &d, x3 + s * 2, n - s < 7 ? n - s : 7, 2, &sp, &rng, NULL) == DFN_OK,
              "dfn_sample: %s", dfn_last_error());
    }
    CHECK(!memcmp(x1, x3, n * 2 * sizeof(float)), "pipeline sampling = the sampler over its denoiser");

    /* save, load, the same samples */
    const char *path = tmp_path("pipe.safetensors");
    const char *extra[] = {"note", "hello", NULL};
    CHECK(dfn_pipeline_save(pipe, path, extra) == DFN_OK, "save: %s", dfn_last_error());
    dfn_pipeline *back = NULL;
    CHECK(dfn_pipeline_load(&back, path) == DFN_OK, "load: %s", dfn_last_error());
    if (back) {
        CHECK(dfn_pipeline_prediction(back) == DFN_PRED_EPS &&
                  dfn_pipeline_process(back)->schedule.kind == DFN_BETA_COSINE &&
                  dfn_pipeline_schedule(back)->T == 200,
              "process and prediction kept");
        sample_all(back, x2, n, "ddim", 2);
        CHECK(!memcmp(x1, x2, n * 2 * sizeof(float)), "a loaded pipeline samples the same bits");

        /* class-conditional sampling and guidance */
        dfn_pipeline_sample_params gp = dfn_pipeline_sample_params_init(back);
        gp.label = 2;
        gp.guidance = 3.0;
        CHECK(dfn_pipeline_sample(back, x2, n, &gp, NULL) == DFN_OK, "guided: %s", dfn_last_error());
        gp.label = 3;
        CHECK(dfn_pipeline_sample(back, x2, n, &gp, NULL) == DFN_ERR_ARG &&
                  strstr(dfn_last_error(), "class 3") && strstr(dfn_last_error(), "3 classes"),
              "class out of range: %s", dfn_last_error());
        gp.label = -1;
        CHECK(dfn_pipeline_sample(back, x2, n, &gp, NULL) == DFN_ERR_ARG &&
                  strstr(dfn_last_error(), "needs a class"),
              "guidance without a class: %s", dfn_last_error());
        gp.guidance = 1;
        gp.sampler = "flow-euler";
        CHECK(dfn_pipeline_sample(back, x2, n, &gp, NULL) == DFN_ERR_ARG &&
                  strstr(dfn_last_error(), "does not fit this checkpoint's process (discrete "
                                           "schedule)") &&
                  strstr(dfn_last_error(), "ddim"),
              "sampler for another process: %s", dfn_last_error());
        gp.sampler = "dpm++9";
        CHECK(dfn_pipeline_sample(back, x2, n, &gp, NULL) == DFN_ERR_ARG &&
                  strstr(dfn_last_error(), "unknown sampler 'dpm++9'"),
              "unknown sampler: %s", dfn_last_error());
        dfn_pipeline_free(back);
    }
    dfn_pipeline_free(pipe);
    dfn_model_free(m);
    free(x1), free(x2), free(x3);
}

/* Control through the pipeline: inpainting keeps the known part exactly and is
 * deterministic; SDEdit at strength 1 is plain sampling; inversion round trips;
 * misuse is refused. */
static void pipeline_control(void) {
    dfn_model *m = small_mlp(3, 6);
    dfn_process_params proc = dfn_process_params_init();
    proc.schedule.T = 100;
    dfn_pipeline *pipe = NULL;
    CHECK(dfn_pipeline_new(&pipe, m, &proc, DFN_PRED_EPS) == DFN_OK, "new: %s", dfn_last_error());
    if (!pipe) return;
    enum { n = 9 };
    float init[n * 2], a[n * 2], b[n * 2], mask[2] = {1.0f, 0.0f};
    for (int i = 0; i < n * 2; i++) init[i] = 0.1f * (float)(i % 7) - 0.3f;
    dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(pipe);
    sp.sampler_params.steps = 10;
    sp.batch = 4; /* batches of 4, 4, 1: the mask and inputs follow the batches */
    sp.init = init;
    sp.mask = mask;
    CHECK(dfn_pipeline_sample(pipe, a, n, &sp, NULL) == DFN_OK, "inpaint: %s", dfn_last_error());
    int kept = 1;
    for (int i = 0; i < n; i++) kept &= a[2 * i] == init[2 * i];
    CHECK(kept, "inpainting keeps the known coordinate exactly");
    dfn_set_threads(1);
    CHECK(dfn_pipeline_sample(pipe, b, n, &sp, NULL) == DFN_OK, "inpaint again");
    dfn_set_threads(2);
    CHECK(!memcmp(a, b, sizeof a), "inpainting: the same bits on 1 and 2 threads");
    sp.sampler = "repaint";
    sp.sampler_params.jump_length = 3;
    sp.sampler_params.jump_n_sample = 2;
    CHECK(dfn_pipeline_sample(pipe, b, n, &sp, NULL) == DFN_OK, "repaint: %s", dfn_last_error());
    kept = 1;
    for (int i = 0; i < n; i++) kept &= b[2 * i] == init[2 * i];
    CHECK(kept, "repaint keeps the known coordinate exactly");
    /* SDEdit at strength 1 is plain sampling; at 0.3 it starts from the inputs */
    sp = dfn_pipeline_sample_params_init(pipe);
    sp.sampler_params.steps = 10;
    CHECK(dfn_pipeline_sample(pipe, a, n, &sp, NULL) == DFN_OK, "plain");
    sp.init = init;
    sp.sampler_params.strength = 1.0;
    CHECK(dfn_pipeline_sample(pipe, b, n, &sp, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "neither a mask"), "inputs without a use: %s", dfn_last_error());
    sp.init = NULL;
    sp.sampler_params.strength = 0.3;
    CHECK(dfn_pipeline_sample(pipe, b, n, &sp, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "needs the input images"), "strength without inputs: %s",
          dfn_last_error());
    sp.init = init;
    dfn_sample_stats st;
    CHECK(dfn_pipeline_sample(pipe, b, n, &sp, &st) == DFN_OK && st.steps == 3,
          "SDEdit at 0.3: %d steps of 10 (%s)", st.steps, dfn_last_error());
    sp = dfn_pipeline_sample_params_init(pipe);
    sp.mask = mask;
    CHECK(dfn_pipeline_sample(pipe, b, n, &sp, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "a mask needs the images"), "mask without inputs");
    dfn_box_constraint box = {-1, 1};
    sp.init = init;
    sp.sampler_params.constraint = dfn_constraint_box;
    sp.sampler_params.constraint_ctx = &box;
    CHECK(dfn_pipeline_sample(pipe, b, n, &sp, NULL) == DFN_ERR_ARG &&
              strstr(dfn_last_error(), "second"), "a mask and another constraint: %s", dfn_last_error());
    /* DDIM inversion, then DDIM from x_T: back to the inputs (a random network:
     * only the arithmetic of the round trip is checked, to a loose 1e-2) */
    sp = dfn_pipeline_sample_params_init(pipe);
    sp.sampler_params.steps = 100;
    sp.sampler_params.clip_x0 = 0;
    memcpy(a, init, sizeof a);
    CHECK(dfn_pipeline_invert(pipe, a, n, &sp, NULL) == DFN_OK, "invert: %s", dfn_last_error());
    sp.sampler_params.from_x = 1;
    CHECK(dfn_pipeline_sample(pipe, a, n, &sp, NULL) == DFN_OK, "back: %s", dfn_last_error());
    double worst = 0;
    for (int i = 0; i < n * 2; i++) worst = fmax(worst, fabs((double)a[i] - init[i]));
    CHECK(worst < 1e-2, "inversion round trip off by %g", worst);
    /* classifier guidance needs a class; a class beyond the model's classes */
    sp = dfn_pipeline_sample_params_init(pipe);
    sp.label = 5;
    CHECK(dfn_pipeline_sample(pipe, b, n, &sp, NULL) == DFN_ERR_ARG && strstr(dfn_last_error(), "class 5"),
          "class out of range: %s", dfn_last_error());
    dfn_pipeline_free(pipe);
    dfn_model_free(m);
}

static void bad_pipelines(void) {
    dfn_model_config cfg;
    dfn_model_config_preset(&cfg, "fmnist-classifier");
    dfn_model *clf = NULL;
    CHECK(dfn_model_new(&clf, &cfg, 1) == DFN_OK, "classifier: %s", dfn_last_error());
    dfn_process_params proc = dfn_process_params_init();
    dfn_pipeline *pipe = (dfn_pipeline *)1;
    CHECK(dfn_pipeline_new(&pipe, clf, &proc, DFN_PRED_EPS) == DFN_ERR_ARG && !pipe &&
              strstr(dfn_last_error(), "not a diffusion model"),
          "a classifier as a pipeline: %s", dfn_last_error());
    const char *cpath = tmp_path("clf.safetensors");
    CHECK(dfn_model_save(clf, cpath, NULL) == DFN_OK, "save classifier");
    pipe = (dfn_pipeline *)1;
    CHECK(dfn_pipeline_load(&pipe, cpath) == DFN_ERR_ARG && !pipe && strstr(dfn_last_error(), cpath) &&
              strstr(dfn_last_error(), "not a diffusion model"),
          "a classifier checkpoint as a pipeline: %s", dfn_last_error());
    dfn_model_free(clf);

    /* a bare model checkpoint: DDPM's defaults, with a note */
    dfn_model *m = small_mlp(0, 1);
    const char *mpath = tmp_path("bare.safetensors");
    CHECK(dfn_model_save(m, mpath, NULL) == DFN_OK, "save bare");
    CHECK(dfn_pipeline_load(&pipe, mpath) == DFN_OK && pipe && !dfn_pipeline_process(pipe)->continuous &&
              dfn_pipeline_schedule(pipe)->T == 1000 && dfn_pipeline_prediction(pipe) == DFN_PRED_EPS,
          "bare checkpoint: %s", dfn_last_error());
    dfn_pipeline_free(pipe);
    /* bad metadata */
    const char *bad[] = {"process", "{\"type\": \"sideways\"}", "prediction", "eps", NULL};
    const char *bpath = tmp_path("badproc.safetensors");
    CHECK(dfn_model_save(m, bpath, bad) == DFN_OK, "save bad process");
    CHECK(dfn_pipeline_load(&pipe, bpath) == DFN_ERR_FORMAT && strstr(dfn_last_error(), bpath) &&
              strstr(dfn_last_error(), "process"),
          "bad process metadata: %s", dfn_last_error());
    const char *badp[] = {"process", "{\"type\": \"continuous\", \"sde\": \"vp\", \"beta_min\": 0.1, "
                                     "\"beta_max\": 20, \"sigma_min\": 0.01, \"sigma_max\": 50, "
                                     "\"t_min\": 1e-5, \"time_scale\": 1000}",
                          "prediction", "noise", NULL};
    CHECK(dfn_model_save(m, bpath, badp) == DFN_OK, "save bad prediction");
    CHECK(dfn_pipeline_load(&pipe, bpath) == DFN_ERR_FORMAT && strstr(dfn_last_error(), "noise"),
          "bad prediction metadata: %s", dfn_last_error());
    const char *pred_only[] = {"prediction", "v", NULL};
    CHECK(dfn_model_save(m, bpath, pred_only) == DFN_OK, "save prediction only");
    CHECK(dfn_pipeline_load(&pipe, bpath) == DFN_ERR_FORMAT && strstr(dfn_last_error(), "no \"process\""),
          "prediction without process: %s", dfn_last_error());
    dfn_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dfn_test_pipeline_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    dfn_set_threads(2);
    trainer_writes_a_pipeline();
    training_in_memory_writes_nothing();
    pipelines_save_load_and_sample();
    pipeline_control();
    bad_pipelines();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir); /* run directories hold subfolders */
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    dfn_plot_release_caches();
    dfn_scratch_release();
    TEST_MAIN_END();
}

/* cmd_train_classifier.c - `diffusion train-classifier`: the small CNN whose
 * features FID and KID use (a dfn_model of kind classifier), trained through
 * the one training loop (dfn_train) on the labelled data, checked on a test
 * set, saved as a checkpoint. With --noisy, the same CNN with a time input,
 * trained on images noised by a diffusion process: the classifier of
 * classifier guidance (diffusion sample --classifier). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "core/core.h"
#include "data_source.h"
#include "diffusion.h"
#include "tools.h"

#define MAX_ARGS 40

/* The classifier's recipe: the loop's settings where they differ from a
 * denoiser's. */
static dfn_train_params classifier_recipe(void) {
    dfn_train_params p = dfn_train_params_init();
    p.steps = 3000;
    p.batch_size = 128;
    p.adamw.lr = 2e-3;
    p.adamw.weight_decay = 0.05;
    p.lr_min_ratio = 0.01;
    p.clip = 1.0;
    p.ema_decay = 0.0f; /* the trained weights themselves */
    p.val_every = 0;    /* the test accuracy at the end */
    p.log_every = 100;
    return p;
}

int cmd_train_classifier(int argc, char **argv) {
    dfn_train_params p = classifier_recipe();
    const char *data = "fashion-mnist", *val_spec = NULL, *out = NULL, *run = NULL;
    int threads = 0, quiet = 0, image_size = 0, image_channels = 0, label_column = -1;
    int channels = 32, groups = 8, features = 128, noisy = 0, extra_convs = 0, no_hflip = 0;
    float dropout = -1.0f;
    const char *head = NULL;
    const char *process_from = NULL;
    double val_fraction = 0.1;
    dfn_arg args[MAX_ARGS] = {
        {"--data", ARG_STRING, &data, "SPEC", "labelled images: fashion-mnist[:train|:test], mnist:DIR, idx:IMG,LAB, npy:FILE", 0},
        {"--out", ARG_STRING, &out, "FILE", "classifier checkpoint to write (required)", 0},
        {"--run", ARG_STRING, &run, "DIR", "also keep a run directory (log.csv, latest.safetensors for --resume)", 0},
        {"--val", ARG_STRING, &val_spec, "SPEC", "test data for the accuracy (default: fashion-mnist:test for fashion-mnist, else a split of --data)", 0},
        {"--val-fraction", ARG_DOUBLE, &val_fraction, "F", "without --val (and not fashion-mnist): hold out this fraction of --data", 0},
        {"--image-size", ARG_INT, &image_size, "S", "images: resize/crop to S x S (0: first image's size)", 0},
        {"--image-channels", ARG_INT, &image_channels, "C", "images: 1 gray or 3 RGB (0: first image's)", 0},
        {"--label-column", ARG_INT, &label_column, "K", "csv: column holding integer labels", 0},
        {"--channels", ARG_INT, &channels, "C", "channels of the first convolution (then 2C, 4C)", 0},
        {"--groups", ARG_INT, &groups, "G", "GroupNorm groups", 0},
        {"--features", ARG_INT, &features, "F", "width of fc1 (with --head pool also the FID/KID features; with flatten they are the last map's mean, 4C)", 0},
        {"--extra-convs", ARG_INT, &extra_convs, "K", "stride-1 3x3 convolutions after each stage's first, 0..3", 0},
        {"--head", ARG_STRING, &head, "KIND", "fc1 reads the last feature map: flatten or pool (its mean) (default: flatten, with --noisy pool)", 0},
        {"--dropout", ARG_FLOAT, &dropout, "P", "dropout before fc1 while training (-1: 0.3, with --noisy 0)", 0},
        {"--noisy", ARG_FLAG, &noisy, "", "a classifier of noisy images p(c | x_t, t) for classifier guidance", 0},
        {"--process-from", ARG_STRING, &process_from, "CKPT", "with --noisy: the noise process of this diffusion checkpoint (default: discrete linear, T = 1000, as train's)", 0},
        {"--steps", ARG_LONG, &p.steps, "N", "optimizer steps", 0},
        {"--batch", ARG_INT, &p.batch_size, "B", "batch size", 0},
        {"--accum", ARG_INT, &p.grad_accum, "K", "micro-batches (shards) per step: the global batch is B x K; under mpirun the processes share them", 0},
        {"--lr", ARG_DOUBLE, &p.adamw.lr, "LR", "peak learning rate (AdamW)", 0},
        {"--weight-decay", ARG_DOUBLE, &p.adamw.weight_decay, "W", "AdamW decoupled weight decay", 0},
        {"--warmup", ARG_LONG, &p.warmup, "N", "linear learning-rate warm-up steps (-1: min(200, steps/10))", 0},
        {"--lr-min-ratio", ARG_DOUBLE, &p.lr_min_ratio, "R", "cosine decay ends at lr * R", 0},
        {"--clip", ARG_DOUBLE, &p.clip, "C", "clip the gradient norm to C (0: off)", 0},
        {"--hflip", ARG_FLAG, &p.hflip, "", "random horizontal flips (the default but with --noisy)", 0},
        {"--no-hflip", ARG_FLAG, &no_hflip, "", "no random horizontal flips", 0},
        {"--ema", ARG_FLOAT, &p.ema_decay, "D", "EMA decay of the weights (0: none; the EMA weights are saved)", 0},
        {"--val-every", ARG_INT, &p.val_every, "K", "validation loss and accuracy every K steps (0: only at the end)", 0},
        {"--resume", ARG_FLAG, &p.resume, "", "continue the run in --run exactly where it stopped", 0},
        {"--log-every", ARG_INT, &p.log_every, "K", "progress line every K steps", 0},
        {"--seed", ARG_U64, &p.seed, "S", "random seed (weights, batches)", 0},
        {"--threads", ARG_INT, &threads, "N", "threads (0: all cores); results do not depend on it", 0},
        {"--quiet", ARG_FLAG, &quiet, "", "only the final accuracy line", 0},
    };
    int n_args = 0;
    while (n_args < MAX_ARGS && args[n_args].name) n_args++;
    int rc = dfn_args_parse("train-classifier", args, n_args, argc, argv, "--out FILE [options]");
    if (rc) return rc == 1 ? 0 : 2;
    if (!out) {
        fprintf(stderr, "diffusion train-classifier: --out FILE is required (the classifier checkpoint)\n");
        return 2;
    }
    if (threads < 0) {
        fprintf(stderr, "diffusion train-classifier: --threads must be >= 0\n");
        return 2;
    }
    if (head && strcmp(head, "flatten") != 0 && strcmp(head, "pool") != 0) {
        fprintf(stderr, "diffusion train-classifier: --head must be flatten or pool, got '%s'\n", head);
        return 2;
    }
    if (extra_convs < 0 || extra_convs > 3) {
        fprintf(stderr, "diffusion train-classifier: --extra-convs must be 0..3\n");
        return 2;
    }
    if (!(dropout == -1.0f || (dropout >= 0.0f && dropout < 1.0f))) {
        fprintf(stderr, "diffusion train-classifier: --dropout must be in [0, 1)\n");
        return 2;
    }
    /* the evaluation classifier's recipe (92.7% on Fashion-MNIST, docs/recipes.md):
     * the flattened map, dropout 0.3, flips; a noisy classifier for guidance
     * keeps the pooled head without them */
    if (!head) head = noisy ? "pool" : "flatten";
    if (dropout < 0) dropout = noisy ? 0.0f : 0.3f;
    if (p.hflip && no_hflip) {
        fprintf(stderr, "diffusion train-classifier: --hflip or --no-hflip, not both\n");
        return 2;
    }
    if (!noisy && !no_hflip) p.hflip = 1;
    if (process_from && !noisy) {
        fprintf(stderr, "diffusion train-classifier: --process-from goes with --noisy\n");
        return 2;
    }
    if (threads > 0) dfn_set_threads(threads);
    p.run_dir = run;
    if (process_from) { /* the diffusion model's own process */
        dfn_pipeline *pipe = NULL;
        if (dfn_pipeline_load(&pipe, process_from) != DFN_OK) {
            fprintf(stderr, "diffusion train-classifier: --process-from %s: %s\n", process_from,
                    dfn_last_error());
            return 1;
        }
        p.process = *dfn_pipeline_process(pipe);
        /* the training rebuilds a discrete schedule from its parameters: they must
         * give the checkpoint's own betas (not so for betas read from a file, whose
         * path a checkpoint does not keep) */
        int same = 1;
        if (!p.process.continuous) {
            dfn_schedule sch;
            const dfn_schedule *own = dfn_pipeline_schedule(pipe);
            same = p.process.schedule.kind != DFN_BETA_FILE &&
                   dfn_schedule_init(&sch, &p.process.schedule) == DFN_OK;
            if (same) {
                same = sch.T == own->T;
                for (int i = 0; same && i < sch.T; i++) same = fabs(sch.beta[i] - own->beta[i]) <= 1e-12;
                dfn_schedule_free(&sch);
            }
        }
        dfn_pipeline_free(pipe);
        if (!same) {
            fprintf(stderr, "diffusion train-classifier: --process-from %s: its betas (%s) cannot be "
                            "rebuilt from the parameters the checkpoint keeps\n", process_from,
                    dfn_beta_kind_name(p.process.schedule.kind));
            return 1;
        }
    }
    p.progress = quiet ? 0 : -1;

    dfn_data_options dopt = {1000, p.seed, image_size, image_channels, label_column, 0};
    dfn_dataset *train = NULL, *val = NULL, *all = NULL;
    dfn_model *c = NULL;
    int status = 1;
    char val_name[512];
    if (dfn_cli_load_data(&all, data, &dopt)) goto fail;
    if (val_spec) {
        if (dfn_cli_load_data(&val, val_spec, &dopt)) goto fail;
        snprintf(val_name, sizeof val_name, "%s", val_spec);
        train = all;
        all = NULL;
    } else if (!strncmp(data, "fashion-mnist", 13) && strcmp(data, "fashion-mnist:test") != 0) {
        if (dfn_dataset_load_fashion_mnist(&val, DFN_FASHION_MNIST_DIR, "test")) goto fail;
        snprintf(val_name, sizeof val_name, "fashion-mnist:test");
        train = all;
        all = NULL;
    } else {
        if (!(val_fraction > 0 && val_fraction < 1)) {
            fprintf(stderr, "diffusion train-classifier: --val-fraction must be in (0, 1)\n");
            status = 2;
            goto done;
        }
        if (dfn_dataset_split(all, val_fraction, p.seed, &train, &val)) goto fail;
        snprintf(val_name, sizeof val_name, "%.0f%% of %s held out", 100 * val_fraction, data);
    }
    int dims[DFN_DATASET_MAX_DIMS];
    if (dfn_dataset_shape(train, dims) != 3) {
        fprintf(stderr, "diffusion train-classifier: %s holds vectors; the classifier needs images\n", data);
        status = 2;
        goto done;
    }
    if (dfn_dataset_num_classes(train) < 2) {
        fprintf(stderr, "diffusion train-classifier: %s has %s; the classifier needs labels of at least 2 classes\n",
                data, dfn_dataset_num_classes(train) ? "one class" : "no labels");
        status = 2;
        goto done;
    }
    dfn_model_config cfg;
    dfn_model_config_init(&cfg, DFN_MODEL_CLASSIFIER);
    cfg.num_classes = dfn_dataset_num_classes(train);
    cfg.classifier.in_channels = dims[0];
    cfg.classifier.height = dims[1];
    cfg.classifier.width = dims[2];
    cfg.classifier.channels = channels;
    cfg.classifier.groups = groups;
    cfg.classifier.feature_dim = features;
    cfg.classifier.time_embed = noisy;
    cfg.classifier.extra_convs = extra_convs;
    cfg.classifier.flatten = !strcmp(head, "flatten");
    cfg.dropout = dropout;
    if (dfn_model_new(&c, &cfg, p.seed)) goto fail;
    if (!quiet) {
        printf("diffusion train-classifier: %zu training images %dx%dx%d, %d classes; %zu parameters; "
               "%ld steps of batch %d; test on %s\n",
               dfn_dataset_count(train), dims[0], dims[1], dims[2], cfg.num_classes,
               dfn_model_num_params(c), p.steps, p.batch_size, val_name);
        fflush(stdout);
    }
    double t0 = dfn_now_seconds();
    if (dfn_train(c, train, val, &p)) goto fail;
    double train_s = dfn_now_seconds() - t0;
    double acc = 0;
    char acc_text[160] = "", steps_text[32], secs_text[32], *process = NULL;
    if (!noisy) {
        if (dfn_classifier_accuracy(c, val, &acc)) goto fail;
        snprintf(acc_text, sizeof acc_text, "%.4f", acc);
    } else { /* at four noise levels: fractions 0, 1/4, 1/2, 3/4 of the process's time */
        dfn_schedule sch;
        const int disc = !p.process.continuous;
        if (disc && dfn_schedule_init(&sch, &p.process.schedule)) goto fail;
        process = dfn_process_to_json(&p.process, disc ? &sch : NULL);
        for (int k = 0; k < 4; k++) {
            double t, a, s, t_net;
            if (disc) {
                t = floor(k * sch.T / 4.0);
                dfn_schedule_alpha_sigma(&sch, (int)t, &a, &s);
                t_net = t;
            } else {
                t = k == 0 ? p.process.t_min : k / 4.0;
                dfn_sde_marginal(&p.process.sde, t, &a, &s);
                t_net = p.process.time_scale * t;
            }
            if (dfn_classifier_accuracy_noisy(c, val, t_net, a, s, 1, &acc)) {
                if (disc) dfn_schedule_free(&sch);
                free(process);
                goto fail;
            }
            size_t len = strlen(acc_text);
            snprintf(acc_text + len, sizeof acc_text - len, "%s%.4f at t=%g (sigma %.3f)",
                     k ? ", " : "", acc, t, s);
        }
        if (disc) dfn_schedule_free(&sch);
    }
    snprintf(steps_text, sizeof steps_text, "%ld", p.steps);
    snprintf(secs_text, sizeof secs_text, "%.1f", train_s);
    const char *extra[] = {"data", data, "test_data", val_name, "test_accuracy", acc_text,
                           "steps", steps_text, "train_seconds", secs_text,
                           process ? "process" : NULL, process, NULL};
    dfn_status saved = dfn_model_save(c, out, extra);
    free(process);
    if (saved) goto fail;
    printf("diffusion train-classifier: test accuracy %s on %s (%zu images) after %ld steps, %.1f s; "
           "classifier in %s\n",
           acc_text, val_name, dfn_dataset_count(val), p.steps, train_s, out);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "diffusion train-classifier: %s\n", dfn_last_error());
    status = dfn_last_error()[0] ? 1 : 2;
done:
    dfn_model_free(c);
    dfn_dataset_free(train);
    dfn_dataset_free(val);
    dfn_dataset_free(all);
    return status;
}

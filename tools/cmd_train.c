/* cmd_train.c - `diffusion train`: data + model + process + objective +
 * optimiser settings -> a run directory (see dfn_train in diffusion.h).
 *
 * With --resume the run directory's config.json supplies every setting the
 * command line leaves out (the data and their options, the model, the process,
 * the objective, the training settings): `diffusion train --out DIR --resume`
 * continues any run. An option given again must agree with the run; the trainer
 * refuses one that does not, naming it (--steps may grow).
 *
 * `diffusion train-autoencoder` is the same command for the KL autoencoder of
 * latent diffusion (its own recipe and options: --latent-channels, --kl-weight,
 * --loss l1|l2); `diffusion train --autoencoder AE` then trains a diffusion
 * model on its latents (a resumed run finds it as DIR/autoencoder.safetensors).
 *
 * Few-step models: `diffusion train --objective ct` trains a consistency model
 * without a teacher; `diffusion distill --teacher CKPT --method cd|reflow` makes
 * a student of the teacher's architecture, initialised with its weights: cd is
 * consistency distillation on --data (the teacher's process and prediction);
 * reflow draws (image, noise) pairs from the teacher's ODE into DIR/pairs.npy
 * (kept for --resume) and trains a rectified flow on them (--one-step: at t = 1
 * only, the distillation of a rectified flow to one Euler step). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "core/files.h"
#include "io/npy.h"
#include "core/core.h"
#include "core/json_fields.h"
#include "data_source.h"
#include "diffusion.h"
#include "tools.h"

#define MAX_ARGS 80

/* The data and their loader options, as config.json records them ("data") so
 * that --resume can load them again: the two specs, then one table for the rest. */
typedef struct {
    const char *spec, *val; /* --data, --val (NULL: none) */
    double val_fraction;
    long n;
    int image_size, image_channels, label_column;
    int limit; /* the first `limit` samples of --data only (0: all) */
} data_settings;

#define DATA_FIELD(key, type, member) DFN_JSON_FIELD(key, type, data_settings, member)
static const dfn_json_field data_fields[] = {
    DATA_FIELD("val_fraction", DFN_JSON_DOUBLE, val_fraction),
    DATA_FIELD("n", DFN_JSON_LONG, n),
    DATA_FIELD("image_size", DFN_JSON_INT, image_size),
    DATA_FIELD("image_channels", DFN_JSON_INT, image_channels),
    DATA_FIELD("label_column", DFN_JSON_INT, label_column),
    DFN_JSON_OPTIONAL_INT_FIELD("limit", data_settings, limit),
};
#define N_DATA_FIELDS ((int)(sizeof data_fields / sizeof data_fields[0]))

static char *write_data_json(const data_settings *d) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "spec", d->spec);
    if (d->val) cJSON_AddStringToObject(o, "val", d->val);
    else cJSON_AddNullToObject(o, "val");
    dfn_json_fields_write(o, d, data_fields, N_DATA_FIELDS);
    char *text = cJSON_PrintUnformatted(o);
    char *out = dfn_strdup(text);
    cJSON_free(text);
    cJSON_Delete(o);
    return out;
}

/* The reverse, into *d; its specs are malloc'ed into *spec and *val (NULL when
 * the run had no --val). */
static dfn_status read_data_json(const char *json, data_settings *d, char **spec, char **val) {
    cJSON *o = cJSON_Parse(json);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "spec"), *v = cJSON_GetObjectItemCaseSensitive(o, "val");
    int ok = cJSON_IsString(s) && (cJSON_IsString(v) || cJSON_IsNull(v));
    for (int i = 0; ok && i < N_DATA_FIELDS; i++)
        ok = !dfn_json_field_read(d, &data_fields[i], cJSON_GetObjectItemCaseSensitive(o, data_fields[i].key));
    if (ok) {
        d->spec = *spec = dfn_strdup(s->valuestring);
        d->val = *val = cJSON_IsString(v) ? dfn_strdup(v->valuestring) : NULL;
    }
    cJSON_Delete(o);
    return ok ? DFN_OK
              : dfn_set_error(DFN_ERR_FORMAT, "the run's config.json describes its data as %.100s, not as "
                                              "this program writes them: give --data", json);
}

enum { MODE_TRAIN, MODE_AUTOENCODER, MODE_DISTILL };

/* reflow: n (image, noise) pairs of the teacher's ODE into path (npy, N x 2C x H
 * x W or N x 2D), unless the file is there already. */
static dfn_status write_pairs(dfn_pipeline *teacher, const char *path, int n, const char *sampler,
                              int steps, uint64_t seed, int quiet) {
    FILE *f = fopen(path, "rb");
    if (f) { /* (a resumed run's) */
        fclose(f);
        return DFN_OK;
    }
    int dims[3];
    const int nd = dfn_model_input_shape(dfn_pipeline_model(teacher), dims);
    const size_t D = dfn_model_input_size(dfn_pipeline_model(teacher));
    float *pairs = dfn_malloc((size_t)n * 2 * D * sizeof(float));
    dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(teacher);
    sp.sampler = sampler;
    sp.sampler_params.steps = steps;
    sp.batch = 256;
    sp.seed = seed;
    double t0 = dfn_now_seconds();
    dfn_sample_stats st;
    dfn_status rc = dfn_pipeline_pairs(teacher, pairs, n, &sp, &st);
    int64_t shape[4] = {n, 2 * dims[0], nd == 3 ? dims[1] : 0, nd == 3 ? dims[2] : 0};
    if (!rc) rc = dfn_npy_write_f32(path, pairs, nd + 1, shape);
    if (!rc && !quiet)
        printf("distill: %d pairs from the teacher's ODE (%s, %d steps, %.1f s) -> %s\n", n,
               sampler, st.steps, dfn_now_seconds() - t0, path);
    free(pairs);
    return rc;
}

static int train_command(int argc, char **argv, int mode) {
    const int autoencoder = mode == MODE_AUTOENCODER, distill = mode == MODE_DISTILL;
    const char *cmd = autoencoder ? "train-autoencoder" : distill ? "distill" : "train";
    dfn_train_params p = dfn_train_params_init();
    if (autoencoder) { /* the autoencoder's recipe */
        p.steps = 3000;
        p.batch_size = 64;
        p.adamw.lr = 1e-3;
        p.val_every = 1000;
    }
    const char *out = NULL, *preset = NULL, *ae_path = NULL;
    /* few-step models */
    const char *objective = "diffusion", *teacher_path = NULL, *method = NULL, *teacher_step = "ddim";
    const char *distance = NULL, *pair_sampler = NULL, *fid_classifier = NULL;
    int n_pairs = 10000, pair_steps = 20, one_step = 0;
    dfn_pipeline *teacher = NULL;
    dfn_denoiser teacher_den;
    char *teacher_name = NULL;
    int latent_channels = 0;
    dfn_model *ae = NULL;
    const char *model_kind = NULL, *ch_mult = NULL, *attn = NULL, *schedule = "linear", *sde = NULL;
    const char *betas_file = NULL, *prediction = NULL, *loss = autoencoder ? "l1" : "l2", *weighting = "uniform";
    int channels = 0, res_blocks = 0, heads = 0, groups = 0, width = 0, depth = 0, cond = 0;
    int threads = 0, T = 1000, quiet = 0, no_ema_warmup = 0;
    const char *precision = NULL;
    double dropout = -1, epochs = 0, beta_start = 1e-4, beta_end = 0.02;
    data_settings ds = {"fashion-mnist", NULL, -1, 20000, 0, 0, -1, 0};
    p.sample_every = 0;
    dfn_arg args[MAX_ARGS] = {
        {"--data", ARG_STRING, &ds.spec, "SPEC", "fashion-mnist[:train|:test], mnist:DIR, idx:IMG[,LAB], images:DIR, npy:FILE, csv:FILE, toy:NAME, mixture:FILE (JSON)", 0},
        {"--out", ARG_STRING, &out, "DIR", "run directory (required)", 0},
        {"--val", ARG_STRING, &ds.val, "SPEC", "validation data (default: fashion-mnist:test for fashion-mnist, else a split)", 0},
        {"--val-fraction", ARG_DOUBLE, &ds.val_fraction, "F", "hold out this fraction of --data for validation (-1: 0.05 when no --val)", 0},
        {"--n", ARG_LONG, &ds.n, "N", "samples drawn by toy: generators", 0},
        {"--limit", ARG_INT, &ds.limit, "N", "train on the first N samples of --data only (0: all), e.g. a handful of images", 0},
        {"--image-size", ARG_INT, &ds.image_size, "S", "images: resize/crop to S x S (0: first image's size)", 0},
        {"--image-channels", ARG_INT, &ds.image_channels, "C", "images: 1 gray or 3 RGB (0: first image's)", 0},
        {"--label-column", ARG_INT, &ds.label_column, "K", "csv: column holding integer labels (-1: none)", 0},
        {"--preset", ARG_STRING, &preset, "NAME", "fmnist-fast, fmnist-tiny, fmnist-small, rgb64, mlp-2d, mlp-curves, latent-f4; fmnist-ae for train-autoencoder (default: by data: fmnist-fast for images)", 0},
        {"--autoencoder", ARG_STRING, &ae_path, "FILE", "latent diffusion: train on the latents of this autoencoder (diffusion train-autoencoder)", 0},
        {"--latent-channels", ARG_INT, &latent_channels, "Z", "train-autoencoder: latent channels (0: preset's)", 0},
        {"--kl-weight", ARG_DOUBLE, &p.kl_weight, "W", "train-autoencoder: weight of the KL term", 0},
        {"--model", ARG_STRING, &model_kind, "KIND", "unet or mlp (default: by data)", 0},
        {"--channels", ARG_INT, &channels, "C", "U-Net base channels (0: preset's)", 0},
        {"--ch-mult", ARG_STRING, &ch_mult, "LIST", "U-Net channel multipliers, e.g. 1,2,2", 0},
        {"--res-blocks", ARG_INT, &res_blocks, "N", "U-Net ResBlocks per level (0: preset's)", 0},
        {"--attn", ARG_STRING, &attn, "LIST", "U-Net attention resolutions, e.g. 7 or '' for none", 0},
        {"--heads", ARG_INT, &heads, "H", "attention heads (0: preset's)", 0},
        {"--groups", ARG_INT, &groups, "G", "GroupNorm groups (0: preset's)", 0},
        {"--dropout", ARG_DOUBLE, &dropout, "P", "dropout probability (-1: preset's)", 0},
        {"--width", ARG_INT, &width, "W", "MLP width (0: preset's)", 0},
        {"--depth", ARG_INT, &depth, "D", "MLP residual blocks (0: preset's)", 0},
        {"--cond", ARG_FLAG, &cond, "", "condition on the data's class labels (classifier-free guidance)", 0},
        {"--schedule", ARG_STRING, &schedule, "KIND", "discrete betas: linear, cosine, sigmoid, constant, quadratic", 0},
        {"--T", ARG_INT, &T, "T", "discrete steps", 0},
        {"--beta-start", ARG_DOUBLE, &beta_start, "B", "first beta (linear, sigmoid, quadratic)", 0},
        {"--beta-end", ARG_DOUBLE, &beta_end, "B", "last beta", 0},
        {"--betas", ARG_STRING, &betas_file, "FILE", "read the betas from a file (one per line or comma-separated)", 0},
        {"--sde", ARG_STRING, &sde, "KIND", "train a continuous process instead: vp, subvp, ve, flow", 0},
        {"--prediction", ARG_STRING, &prediction, "KIND", "network target: eps, x0, v, score, flow (default: flow for --sde flow, x0 for --objective ct, v for images on the discrete schedule, else eps; distill --method cd: the teacher's)", 0},
        {"--loss", ARG_STRING, &loss, "KIND", "l2, l1, huber (train-autoencoder: the reconstruction error, l1 or l2)", 0},
        {"--weighting", ARG_STRING, &weighting, "KIND", "uniform, vlb, min-snr, sigma2 (min-snr for images on the discrete schedule, else uniform)", 0},
        {"--min-snr-gamma", ARG_DOUBLE, &p.objective.min_snr_gamma, "G", "gamma of min-SNR weighting", 0},
        {"--huber-delta", ARG_DOUBLE, &p.objective.huber_delta, "D", "delta of the Huber loss", 0},
        {"--steps", ARG_LONG, &p.steps, "N", "optimizer steps", 0},
        {"--epochs", ARG_DOUBLE, &epochs, "E", "train for E passes over the data instead of --steps", 0},
        {"--batch", ARG_INT, &p.batch_size, "B", "batch size (images: 64)", 0},
        {"--accum", ARG_INT, &p.grad_accum, "K", "micro-batches (shards) per step: the global batch is B x K; under mpirun the processes share them", 0},
        {"--lr", ARG_DOUBLE, &p.adamw.lr, "LR", "peak learning rate (AdamW) (images: 1e-3)", 0},
        {"--weight-decay", ARG_DOUBLE, &p.adamw.weight_decay, "W", "AdamW decoupled weight decay", 0},
        {"--warmup", ARG_LONG, &p.warmup, "N", "linear learning-rate warm-up steps (-1: min(200, steps/10); images: min(100, steps/10))", 0},
        {"--lr-min-ratio", ARG_DOUBLE, &p.lr_min_ratio, "R", "cosine decay ends at lr * R", 0},
        {"--clip", ARG_DOUBLE, &p.clip, "C", "clip the gradient norm to C (0: off)", 0},
        {"--ema", ARG_FLOAT, &p.ema_decay, "D", "EMA decay of the weights", 0},
        {"--no-ema-warmup", ARG_FLAG, &no_ema_warmup, "", "use the EMA decay from step 1", 0},
        {"--p-uncond", ARG_DOUBLE, &p.p_uncond, "P", "with --cond: drop labels with probability P", 0},
        {"--hflip", ARG_FLAG, &p.hflip, "", "random horizontal flips of images", 0},
        {"--precision", ARG_STRING, &precision, "KIND", "the convolutions' products: fp32, or bf16 (bfloat16 with float32 sums, CPUs with AVX512_BF16; recorded, a resumed run keeps it)", 0},
        {"--val-every", ARG_INT, &p.val_every, "K", "validation loss every K steps (0: off)", 0},
        {"--val-batches", ARG_INT, &p.val_batches, "N", "validation batches per evaluation", 0},
        {"--save-every", ARG_INT, &p.save_every, "K", "rewrite latest.safetensors every K steps", 0},
        {"--ckpt-every", ARG_INT, &p.ckpt_every, "K", "also keep ckpt-<step>.safetensors every K steps (0: off)", 0},
        {"--sample-every", ARG_INT, &p.sample_every, "K", "write samples/step-<k>.png every K steps (0: off)", 0},
        {"--samples", ARG_INT, &p.sample_count, "N", "samples in a preview (0: none at the end either)", 0},
        {"--log-every", ARG_INT, &p.log_every, "K", "log.csv row and progress every K steps", 0},
        {"--fid-every", ARG_INT, &p.fid_every, "K", "FID every K steps and at the end (log.csv, loss.png), beside its floor; needs --fid-classifier (0: off)", 0},
        {"--fid-classifier", ARG_STRING, &fid_classifier, "FILE", "--fid-every: the evaluation classifier (diffusion train-classifier)", 0},
        {"--fid-n", ARG_INT, &p.fid_samples, "N", "--fid-every: samples per FID (the floor: as many validation images)", 0},
        {"--fid-sampler", ARG_STRING, &p.fid_sampler, "NAME", "--fid-every: their sampler (default: the model's default)", 0},
        {"--fid-steps", ARG_INT, &p.fid_steps, "S", "--fid-every: its steps", 0},
        {"--seed", ARG_U64, &p.seed, "S", "random seed", 0},
        {"--threads", ARG_INT, &threads, "N", "threads (0: all cores); results do not depend on it", 0},
        {"--resume", ARG_FLAG, &p.resume, "", "continue the run in --out exactly where it stopped", 0},
        {"--force", ARG_FLAG, &p.force, "", "overwrite a run directory that holds another run", 0},
        {"--stop-after", ARG_LONG, &p.stop_after, "N", "stop after N steps of this invocation (resume later)", 0},
        {"--quiet", ARG_FLAG, &quiet, "", "no progress output", 0},
        {"--objective", ARG_STRING, &objective, "KIND", "train: diffusion, or ct (consistency training, Song & Dhariwal 2023; sample with --sampler consistency)", 0},
        {"--teacher", ARG_STRING, &teacher_path, "CKPT", "distill: the teacher (required); the student takes its architecture and weights", 0},
        {"--method", ARG_STRING, &method, "KIND", "distill: cd (consistency distillation) or reflow (2-rectified flow from the teacher's ODE pairs)", 0},
        {"--levels", ARG_INT, &p.consistency.levels, "N", "cd: levels of the discretisation (Song et al. 2023: 18 on CIFAR-10)", 0},
        {"--max-levels", ARG_INT, &p.consistency.s1, "S1", "ct: the curriculum's last level count - 1 (1280)", 0},
        {"--teacher-step", ARG_STRING, &teacher_step, "KIND", "cd: the teacher's ODE step, ddim or heun (2 evaluations)", 0},
        {"--target-ema", ARG_DOUBLE, &p.consistency.target_ema, "MU", "cd: EMA rate of the target network (0: the weights)", 0},
        {"--distance", ARG_STRING, &distance, "KIND", "cd, ct: l2 or pseudo-huber (default: l2 for cd, pseudo-huber for ct)", 0},
        {"--pairs", ARG_INT, &n_pairs, "N", "reflow: pairs drawn from the teacher", 0},
        {"--pair-sampler", ARG_STRING, &pair_sampler, "NAME", "reflow: the teacher's deterministic sampler (default: dpm++2m for VP processes, else the teacher's)", 0},
        {"--pair-steps", ARG_INT, &pair_steps, "N", "reflow: its steps", 0},
        {"--one-step", ARG_FLAG, &one_step, "", "reflow: train at t = 1 only (distil a rectified-flow teacher to one Euler step)", 0},
    };
    int n_args = 0;
    while (n_args < MAX_ARGS && args[n_args].name) n_args++;
    int rc = dfn_args_parse(cmd, args, n_args, argc, argv, "--out DIR [options]");
    if (rc) return rc == 1 ? 0 : 2;
    if (!out) {
        fprintf(stderr, "diffusion %s: --out DIR is required (the run directory)\n", cmd);
        return 2;
    }
    if (threads < 0) {
        fprintf(stderr, "diffusion %s: --threads must be >= 0\n", cmd);
        return 2;
    }
    if (threads > 0) dfn_set_threads(threads);
    p.run_dir = out;
    p.ema_warmup = !no_ema_warmup;

    dfn_dataset *train = NULL, *val = NULL, *all = NULL;
    dfn_model *model = NULL, *fid_model = NULL;
    int status = 1;
    dfn_model_config cfg;
    char *stored_data = NULL, *data_json = NULL, *stored_spec = NULL, *stored_val = NULL;
    /* A resumed run starts from its config.json; each option given on this
     * command line then replaces the run's value (and the trainer refuses it
     * if that changes the run). A new run starts from the defaults. */
#define GIVEN(name) (dfn_args_find(args, n_args, name)->seen)
    if (p.resume) {
        dfn_train_params given = p;
        if (dfn_train_params_from_run(&p, &cfg, &stored_data, out)) goto fail;
        dfn_args_copy_seen(args, n_args, &p, &given, sizeof p); /* the training settings */
        p.run_dir = out;
        p.resume = 1;
        p.progress = given.progress;
        if (GIVEN("--no-ema-warmup")) p.ema_warmup = 0;
        if (!distill && !p.process.continuous && p.process.schedule.kind == DFN_BETA_FILE && !betas_file) {
            dfn_set_error(DFN_ERR_ARG, "%s: the run's betas came from a file: give --betas FILE again to resume", out);
            goto fail;
        }
        if (!stored_data) {
            if (!GIVEN("--data")) {
                dfn_set_error(DFN_ERR_ARG, "%s/config.json does not say what the data were: give --data", out);
                goto fail;
            }
        } else {
            data_settings given_data = ds;
            if (read_data_json(stored_data, &ds, &stored_spec, &stored_val)) goto fail;
            dfn_args_copy_seen(args, n_args, &ds, &given_data, sizeof ds); /* options given again win */
        }
    }
    if (quiet) p.progress = 0;
    if (precision) {
        const int k = dfn_precision_from_name(precision);
        if (k < 0) {
            fprintf(stderr, "diffusion %s: --precision: %s\n", cmd, dfn_last_error());
            status = 2;
            goto done;
        }
        p.bf16 = k == DFN_PRECISION_BF16;
    }
    if (p.bf16) { /* before any data or model is read: can this machine run it? */
        if (dfn_precision_available(DFN_PRECISION_BF16) != DFN_OK) {
            if (precision) {
                fprintf(stderr, "diffusion %s: --precision bf16: %s\n", cmd, dfn_last_error());
                status = 2;
            } else {
                fprintf(stderr, "diffusion %s: %s was trained with bfloat16 convolutions (config.json: \"bf16\": 1) "
                                "and resumes only where they run: %s\n", cmd, out, dfn_last_error());
                status = 1;
            }
            goto done;
        }
    }
    {   /* few-step options belong to their commands */
        const char *cd_only[] = {"--levels", "--teacher-step", "--target-ema"};
        const char *distill_only[] = {"--teacher", "--method", "--pairs", "--pair-sampler", "--pair-steps", "--one-step"};
        for (size_t i = 0; !distill && i < sizeof distill_only / sizeof *distill_only; i++)
            if (GIVEN(distill_only[i])) {
                fprintf(stderr, "diffusion %s: %s is diffusion distill's\n", cmd, distill_only[i]);
                status = 2;
                goto done;
            }
        if (distill && (GIVEN("--objective") || GIVEN("--max-levels"))) {
            fprintf(stderr, "diffusion distill: --objective and --max-levels are diffusion train's (--objective ct)\n");
            status = 2;
            goto done;
        }
        if (!distill && !GIVEN("--objective") && p.resume && p.consistency.method == DFN_CM_TRAIN) objective = "ct";
        if (strcmp(objective, "diffusion") && strcmp(objective, "ct")) {
            fprintf(stderr, "diffusion %s: --objective '%s': diffusion or ct\n", cmd, objective);
            status = 2;
            goto done;
        }
        const int ct = !strcmp(objective, "ct");
        if (autoencoder && ct) {
            fprintf(stderr, "diffusion %s: --objective ct is for diffusion models\n", cmd);
            status = 2;
            goto done;
        }
        if (!ct && !distill && (GIVEN("--max-levels") || GIVEN("--distance"))) {
            fprintf(stderr, "diffusion %s: --max-levels and --distance go with --objective ct\n", cmd);
            status = 2;
            goto done;
        }
        for (size_t i = 0; !distill && i < sizeof cd_only / sizeof *cd_only; i++)
            if (GIVEN(cd_only[i])) {
                fprintf(stderr, "diffusion %s: %s is diffusion distill --method cd's\n", cmd, cd_only[i]);
                status = 2;
                goto done;
            }
        if (ct) p.consistency.method = DFN_CM_TRAIN;
        if (distance) {
            if (strcmp(distance, "l2") && strcmp(distance, "pseudo-huber")) {
                fprintf(stderr, "diffusion %s: --distance '%s': l2 or pseudo-huber\n", cmd, distance);
                status = 2;
                goto done;
            }
            p.consistency.pseudo_huber = !strcmp(distance, "pseudo-huber");
        }
    }
    if (distill) {
        if (!teacher_path) {
            fprintf(stderr, "diffusion distill: --teacher CKPT is required (a diffusion model checkpoint)\n");
            status = 2;
            goto done;
        }
        if (!method) method = p.resume ? (p.consistency.method == DFN_CM_DISTILL ? "cd" : "reflow") : NULL;
        if (!method || (strcmp(method, "cd") && strcmp(method, "reflow"))) {
            fprintf(stderr, "diffusion distill: --method %s: cd or reflow\n", method ? method : "is required");
            status = 2;
            goto done;
        }
        const int cd = !strcmp(method, "cd");
        if (cd && (GIVEN("--pairs") || GIVEN("--pair-sampler") || GIVEN("--pair-steps") || one_step)) {
            fprintf(stderr, "diffusion distill: --pairs, --pair-sampler, --pair-steps and --one-step are --method reflow's\n");
            status = 2;
            goto done;
        }
        if (!cd && (GIVEN("--levels") || GIVEN("--teacher-step") || GIVEN("--target-ema") || GIVEN("--distance"))) {
            fprintf(stderr, "diffusion distill: --levels, --teacher-step, --target-ema and --distance are --method cd's\n");
            status = 2;
            goto done;
        }
        const char *arch[] = {"--preset", "--model", "--channels", "--ch-mult", "--res-blocks", "--attn", "--heads",
                              "--groups", "--dropout", "--width", "--depth", "--cond", "--autoencoder", "--sde",
                              "--schedule", "--T", "--betas", "--beta-start", "--beta-end"};
        for (size_t i = 0; i < sizeof arch / sizeof *arch; i++)
            if (GIVEN(arch[i])) {
                fprintf(stderr, "diffusion distill: %s: the student takes the teacher's architecture and process\n", arch[i]);
                status = 2;
                goto done;
            }
        if (!cd && prediction) {
            fprintf(stderr, "diffusion distill: --prediction: a rectified flow predicts the velocity (flow)\n");
            status = 2;
            goto done;
        }
        if (n_pairs < 1 || pair_steps < 1) {
            fprintf(stderr, "diffusion distill: --pairs and --pair-steps must be >= 1\n");
            status = 2;
            goto done;
        }
        if (dfn_pipeline_load(&teacher, teacher_path)) goto fail;
        if (dfn_pipeline_autoencoder(teacher)) {
            dfn_set_error(DFN_ERR_ARG, "%s: a latent diffusion model; distilling one is not supported", teacher_path);
            goto fail;
        }
        if (cd && dfn_pipeline_consistency(teacher)) {
            dfn_set_error(DFN_ERR_ARG, "%s: a consistency model already; the teacher of consistency distillation is a diffusion model", teacher_path);
            goto fail;
        }
        char print[17];
        dfn_model_fingerprint(dfn_pipeline_model(teacher), print);
        dfn_buf tn = {0};
        dfn_buf_printf(&tn, "%s (weights %s)", teacher_path, print);
        teacher_name = tn.data;
        if (cd) {
            if (strcmp(teacher_step, "ddim") && strcmp(teacher_step, "heun")) {
                fprintf(stderr, "diffusion distill: --teacher-step '%s': ddim or heun\n", teacher_step);
                status = 2;
                goto done;
            }
            p.consistency.method = DFN_CM_DISTILL;
            if (!p.resume || GIVEN("--teacher-step")) p.consistency.heun = !strcmp(teacher_step, "heun");
            p.consistency.teacher_name = teacher_name;
            dfn_pipeline_denoiser(teacher, &teacher_den, 0);
            p.consistency.teacher = &teacher_den;
            if (!p.resume) p.process = *dfn_pipeline_process(teacher); /* (a resumed run: its own) */
            /* the student's output: the teacher's kind unless told (--prediction v
             * reads the teacher's eps weights as v: a worse start, but no 1/alpha
             * amplification of the output's errors at the top levels) */
            if (!p.resume) p.objective.prediction = dfn_pipeline_prediction(teacher);
            if (prediction) {
                const int pk = dfn_prediction_from_name(prediction);
                if (pk < 0) goto fail;
                p.objective.prediction = (dfn_prediction)pk;
            }
        } else { /* reflow: a rectified flow on pairs of the teacher's ODE */
            const dfn_process_params *tp = dfn_pipeline_process(teacher);
            if (dfn_pipeline_consistency(teacher)) { /* its one deterministic step */
                if (!pair_sampler) pair_sampler = "consistency";
                if (!GIVEN("--pair-steps")) pair_steps = 1;
            }
            if (!pair_sampler)
                pair_sampler = !tp->continuous || tp->sde.kind == DFN_SDE_VP || tp->sde.kind == DFN_SDE_SUBVP
                                   ? "dpm++2m" : dfn_pipeline_default_sampler(teacher);
            p.process = dfn_process_params_init();
            p.process.continuous = 1;
            p.process.sde = dfn_sde_init(DFN_SDE_FLOW);
            p.process.t_min = 1e-3;
            p.objective.prediction = DFN_PRED_FLOW;
            p.paired_noise = 1;
            if (!p.resume || one_step) p.fixed_time = one_step ? 1.0 : 0.0;
            if (dfn_make_dir(out)) goto fail;
            dfn_buf pp = {0};
            dfn_buf_printf(&pp, "%s/pairs.npy", out);
            /* the pairs are the run's data: a resumed run reads its own, a new one
             * draws them (a directory holding another run is refused first) */
            FILE *held = NULL;
            if (!p.resume && !p.force) {
                dfn_buf cj = {0};
                dfn_buf_printf(&cj, "%s/config.json", out);
                held = fopen(cj.data, "rb");
                dfn_buf_free(&cj);
            }
            if (held) {
                fclose(held);
                dfn_buf_free(&pp);
                dfn_set_error(DFN_ERR_ARG, "%s already holds a training run: --resume to continue it, "
                                           "--force to start over", out);
                goto fail;
            }
            FILE *have = p.resume ? fopen(pp.data, "rb") : NULL;
            if (have) fclose(have);
            else if (p.resume) {
                dfn_set_error(DFN_ERR_IO, "%s is missing: the run's (data, noise) pairs cannot be "
                                          "drawn again to resume it; start over with --force", pp.data);
                dfn_buf_free(&pp);
                goto fail;
            } else {
                remove(pp.data); /* (an earlier, failed attempt's) */
            }
            dfn_status wst = write_pairs(teacher, pp.data, n_pairs, pair_sampler, pair_steps, p.seed, quiet);
            free(stored_spec);
            dfn_buf spec = {0};
            dfn_buf_printf(&spec, "npy:%s", pp.data);
            ds.spec = stored_spec = spec.data;
            ds.val = NULL;
            if (!GIVEN("--val-fraction")) ds.val_fraction = 0.05;
            dfn_buf_free(&pp);
            if (wst) goto fail;
        }
        /* the student: the teacher's architecture (its weights below) */
        cfg = *dfn_model_get_config(dfn_pipeline_model(teacher));
    }
    if (autoencoder && ae_path) {
        fprintf(stderr, "diffusion %s: --autoencoder goes with diffusion train (a diffusion model on its latents)\n", cmd);
        status = 2;
        goto done;
    }
    /* latent diffusion: the autoencoder given, or the run's own copy */
    if (!autoencoder && (ae_path || p.resume)) {
        dfn_buf run_ae = {0};
        if (!ae_path) {
            dfn_buf_printf(&run_ae, "%s/autoencoder.safetensors", out);
            FILE *fa = fopen(run_ae.data, "rb");
            if (fa) fclose(fa), ae_path = run_ae.data;
        }
        dfn_status ast = ae_path ? dfn_model_load(&ae, ae_path) : DFN_OK;
        if (!ast && ae) ast = dfn_model_check_kind(ae, DFN_MODEL_AUTOENCODER, ae_path);
        dfn_buf_free(&run_ae);
        ae_path = NULL;
        if (ast) goto fail;
        p.autoencoder = ae;
    }

    /* data */
    if (ds.n < 1 || ds.limit < 0) {
        fprintf(stderr, "diffusion %s: --n must be >= 1, --limit >= 0\n", cmd);
        status = 2;
        goto done;
    }
    dfn_data_options dopt = {(size_t)ds.n, p.seed, ds.image_size, ds.image_channels, ds.label_column,
                             (size_t)ds.limit};
    data_json = write_data_json(&ds);
    p.data_json = data_json;
    if (dfn_cli_load_data(&all, ds.spec, &dopt)) goto fail;
    if (ds.val) {
        dfn_data_options vopt = dopt;
        vopt.seed = p.seed + 1;
        vopt.limit = 0;
        if (dfn_cli_load_data(&val, ds.val, &vopt)) goto fail;
        train = all;
        all = NULL;
    } else if (!strncmp(ds.spec, "fashion-mnist", 13) && ds.val_fraction < 0) {
        if (dfn_dataset_load_fashion_mnist(&val, DFN_FASHION_MNIST_DIR, "test")) goto fail;
        train = all;
        all = NULL;
    } else {
        double f = ds.val_fraction < 0 ? (dfn_dataset_count(all) >= 1000 ? 0.05 : 0.0) : ds.val_fraction;
        if (f > 0) {
            if (dfn_dataset_split(all, f, p.seed, &train, &val)) goto fail;
        } else {
            train = all;
            all = NULL;
        }
    }

    /* the data against the settings, before anything is built */
    if (dfn_dataset_count(train) < (size_t)p.batch_size) {
        dfn_set_error(DFN_ERR_ARG, "training data: %zu samples, fewer than the batch size %d",
                      dfn_dataset_count(train), p.batch_size);
        goto fail;
    }

    /* model */
    int dims[DFN_DATASET_MAX_DIMS], nd = dfn_dataset_shape(train, dims);
    if (ae) { /* the model learns the latents */
        if (dfn_model_check_input(ae, nd, dims, "training data")) goto fail;
        nd = dfn_autoencoder_latent_shape(ae, dims);
    }
    int is_image = nd == 3;
    if (autoencoder && !is_image) {
        fprintf(stderr, "diffusion %s: %s holds vectors; an autoencoder needs images\n", cmd, ds.spec);
        status = 2;
        goto done;
    }
    /* A new diffusion model of pixels gets the recipe study's winner where the
     * command line is silent (docs/recipes.md: the best FID per CPU-minute of the
     * screened recipes): fmnist-fast, 64 images a step at lr 1e-3 after 100 steps
     * of warm-up (a tenth of a shorter run), and on the discrete schedule
     * v-prediction with min-SNR-5 weights. */
    const int image_recipe = is_image && !autoencoder && !ae && !distill && !p.resume &&
                             !strcmp(objective, "diffusion");
    const int image_warmup = image_recipe && !GIVEN("--warmup"); /* (set once the steps are known) */
    if (image_recipe) {
        if (!GIVEN("--batch")) p.batch_size = 64;
        if (!GIVEN("--lr")) p.adamw.lr = 1e-3;
        if (!sde && !prediction) prediction = "v";
        if (!sde && !GIVEN("--weighting")) weighting = "min-snr";
    }
    if (!distill && (!p.resume || GIVEN("--preset") || GIVEN("--model"))) { /* from the preset and the data */
        if (!preset) preset = autoencoder ? "fmnist-ae" : ae ? "latent-f4" : is_image ? "fmnist-fast" : dims[0] == 2 ? "mlp-2d" : "mlp-curves";
        if (dfn_model_config_preset(&cfg, preset)) goto fail;
        if ((cfg.kind == DFN_MODEL_AUTOENCODER) != autoencoder) {
            fprintf(stderr, "diffusion %s: --preset %s is %s\n", cmd, preset,
                    autoencoder ? "not an autoencoder" : "an autoencoder: use diffusion train-autoencoder");
            status = 2;
            goto done;
        }
        if (cfg.kind == DFN_MODEL_AUTOENCODER) {
            cfg.autoencoder.in_channels = dims[0];
            cfg.autoencoder.resolution = dims[1];
            if (dims[1] != dims[2]) {
                fprintf(stderr, "diffusion %s: %s: images are %dx%d; the autoencoder needs square images (--image-size)\n", cmd, ds.spec, dims[1], dims[2]);
                status = 2;
                goto done;
            }
        }
        if (cfg.kind == DFN_MODEL_CLASSIFIER) {
            fprintf(stderr, "diffusion %s: --preset %s is a classifier: use diffusion train-classifier\n", cmd, preset);
            status = 2;
            goto done;
        }
        if (model_kind && !autoencoder) {
            int k = dfn_model_kind_from_name(model_kind);
            if (k < 0) {
                fprintf(stderr, "diffusion %s: --model '%s': unknown (unet, mlp)\n", cmd, model_kind);
                status = 2;
                goto done;
            }
            if (k == DFN_MODEL_CLASSIFIER) {
                fprintf(stderr, "diffusion %s: --model classifier: use diffusion train-classifier\n", cmd);
                status = 2;
                goto done;
            }
            if ((dfn_model_kind)k != cfg.kind) {
                dfn_model_config_init(&cfg, (dfn_model_kind)k);
                if (k == DFN_MODEL_UNET) cfg.unet.groups = 8;
            }
        }
        if (cfg.kind == DFN_MODEL_AUTOENCODER) {
            /* its shape is set above */
        } else if (cfg.kind == DFN_MODEL_UNET) {
            /* latent-f4's attention is at its one level, whatever size the latents are */
            if (!strcmp(preset, "latent-f4")) cfg.unet.attn_resolutions[0] = dims[1];
            if (!is_image) {
                fprintf(stderr, "diffusion %s: a U-Net needs images; %s holds vectors of %d (use --model mlp)\n", cmd, ds.spec, dims[0]);
                status = 2;
                goto done;
            }
            cfg.unet.in_channels = dims[0];
            cfg.unet.resolution = dims[1];
            if (dims[1] != dims[2]) {
                fprintf(stderr, "diffusion %s: %s: images are %dx%d; the U-Net needs square images (--image-size)\n", cmd, ds.spec, dims[1], dims[2]);
                status = 2;
                goto done;
            }
        } else {
            cfg.mlp.dim = (int)dfn_dataset_sample_size(train);
        }
    }
    /* the model options given (a resumed run: over its own config) */
    if (cfg.kind == DFN_MODEL_AUTOENCODER) {
        dfn_autoencoder_config *a = &cfg.autoencoder;
        if (channels) a->channels = channels;
        if (res_blocks) a->num_res_blocks = res_blocks;
        if (groups) a->groups = groups;
        if (latent_channels) a->latent_channels = latent_channels;
        if (dropout >= 0) cfg.dropout = (float)dropout;
        if (ch_mult && (a->n_levels = dfn_parse_int_list(cmd, "--ch-mult", ch_mult, a->ch_mult, DFN_MAX_LEVELS)) < 0) {
            status = 2;
            goto done;
        }
        if (attn || heads || width || depth || cond) {
            fprintf(stderr, "diffusion %s: --attn, --heads, --width, --depth and --cond are not the autoencoder's\n", cmd);
            status = 2;
            goto done;
        }
        if (!p.resume || GIVEN("--loss")) {
            int k = dfn_loss_kind_from_name(loss);
            if (k < 0) goto fail;
            p.recon_loss = (dfn_loss_kind)k;
        }
    } else {
        if (latent_channels || GIVEN("--kl-weight")) {
            fprintf(stderr, "diffusion %s: --latent-channels and --kl-weight are diffusion train-autoencoder's\n", cmd);
            status = 2;
            goto done;
        }
        if (channels) cfg.unet.channels = channels;
        if (res_blocks) cfg.unet.num_res_blocks = res_blocks;
        if (heads) cfg.unet.heads = heads;
        if (groups) cfg.unet.groups = groups;
        if (width) cfg.mlp.width = width;
        if (depth) cfg.mlp.depth = depth;
        if (dropout >= 0) cfg.dropout = (float)dropout;
        if (ch_mult && (cfg.unet.n_levels = dfn_parse_int_list(cmd, "--ch-mult", ch_mult, cfg.unet.ch_mult, DFN_MAX_LEVELS)) < 0) {
            status = 2;
            goto done;
        }
        if (attn && (cfg.unet.n_attn = dfn_parse_int_list(cmd, "--attn", attn, cfg.unet.attn_resolutions, DFN_MAX_LEVELS)) < 0) {
            status = 2;
            goto done;
        }
        if (cond) {
            cfg.num_classes = dfn_dataset_num_classes(train);
            if (cfg.num_classes == 0) {
                fprintf(stderr, "diffusion %s: --cond needs labelled data; %s has no labels\n", cmd, ds.spec);
                status = 2;
                goto done;
            }
        }
    }

    /* process and objective (a student's: the teacher's, above) */
    if (!distill && (!p.resume || GIVEN("--sde") || GIVEN("--schedule") || GIVEN("--betas"))) {
        if (sde) {
            int k = dfn_sde_kind_from_name(sde);
            if (k < 0) goto fail;
            p.process.continuous = 1;
            p.process.sde = dfn_sde_init((dfn_sde_kind)k);
            p.process.t_min = k == DFN_SDE_FLOW ? 1e-3 : 1e-5;
        } else {
            int k = betas_file ? DFN_BETA_FILE : dfn_beta_kind_from_name(schedule);
            if (k < 0) goto fail;
            p.process.continuous = 0;
            p.process.schedule = dfn_schedule_params_init((dfn_beta_kind)k);
        }
    }
    if (!distill && (!p.resume || GIVEN("--T"))) p.process.schedule.T = T;
    if (!distill && (!p.resume || GIVEN("--beta-start"))) p.process.schedule.beta_start = beta_start;
    if (!distill && (!p.resume || GIVEN("--beta-end"))) p.process.schedule.beta_end = beta_end;
    if (betas_file) p.process.schedule.path = betas_file;
    int k;
    /* a flow process learns the velocity unless told otherwise */
    if (!prediction && !p.resume && !distill)
        prediction = p.process.continuous && p.process.sde.kind == DFN_SDE_FLOW ? "flow"
                     : p.consistency.method == DFN_CM_TRAIN                   ? "x0" /* (f = c_skip x + (1 - c_skip) x0) */
                                                                              : "eps";
    if (prediction) {
        if ((k = dfn_prediction_from_name(prediction)) < 0) goto fail;
        p.objective.prediction = (dfn_prediction)k;
    }
    if (!p.resume || GIVEN("--loss")) {
        if ((k = dfn_loss_kind_from_name(loss)) < 0) goto fail;
        p.objective.loss = (dfn_loss_kind)k;
    }
    if (!p.resume || GIVEN("--weighting")) {
        if ((k = dfn_weighting_from_name(weighting)) < 0) goto fail;
        p.objective.weighting = (dfn_weighting)k;
    }
#undef GIVEN
    if (autoencoder) p.objective = dfn_objective_init(); /* (not the autoencoder's) */
    if (epochs > 0) p.steps = (long)ceil(epochs * (double)dfn_dataset_count(train) / ((double)p.batch_size * p.grad_accum));
    if (image_warmup) p.warmup = DFN_MIN(100, p.steps / 10);

    if (dfn_model_new(&model, &cfg, p.seed)) goto fail;
    if (teacher) /* the student starts as the teacher (a resumed run: as it was) */
        memcpy(dfn_model_params(model), dfn_model_params(dfn_pipeline_model(teacher)),
               dfn_model_num_params(model) * sizeof(float));
    if (!quiet) {
        char *json = dfn_model_config_to_json(&cfg);
        printf("diffusion %s: %zu training samples%s, model %s (%zu parameters), %ld steps of batch %d -> %s\n", cmd,
               dfn_dataset_count(train), val ? " (+ validation)" : "", json, dfn_model_num_params(model),
               p.steps, p.batch_size, out);
        free(json);
        fflush(stdout);
    }
    if (fid_classifier && !p.fid_every) {
        dfn_set_error(DFN_ERR_ARG, "--fid-classifier goes with --fid-every K");
        goto fail;
    }
    if (p.fid_every > 0) {
        if (!fid_classifier) {
            dfn_set_error(DFN_ERR_ARG, "--fid-every needs --fid-classifier FILE (diffusion train-classifier makes one)");
            goto fail;
        }
        if (dfn_model_load(&fid_model, fid_classifier) ||
            dfn_model_check_kind(fid_model, DFN_MODEL_CLASSIFIER, fid_classifier))
            goto fail;
        p.fid_classifier = fid_model;
    }
    if (dfn_train(model, train, val, &p)) goto fail;
    if (!quiet && autoencoder)
        printf("diffusion %s: done; autoencoder in %s/model.safetensors (latent scale %.6g), log in %s/log.csv\n",
               cmd, out, dfn_autoencoder_scale(model), out);
    else if (!quiet)
        printf("diffusion %s: done; model in %s/model.safetensors, log in %s/log.csv\n", cmd, out, out);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "diffusion %s: %s\n", cmd, dfn_last_error());
    status = dfn_last_error()[0] ? 1 : 2;
done:
    free(stored_data);
    free(data_json);
    free(stored_spec);
    free(stored_val);
    dfn_model_free(model);
    dfn_model_free(ae);
    dfn_model_free(fid_model);
    dfn_pipeline_free(teacher);
    free(teacher_name);
    dfn_dataset_free(train);
    dfn_dataset_free(val);
    dfn_dataset_free(all);
    return status;
}

int cmd_train(int argc, char **argv) { return train_command(argc, argv, MODE_TRAIN); }
int cmd_train_autoencoder(int argc, char **argv) { return train_command(argc, argv, MODE_AUTOENCODER); }
int cmd_distill(int argc, char **argv) { return train_command(argc, argv, MODE_DISTILL); }

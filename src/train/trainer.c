/* trainer.c - the one training loop, for every kind of model: batches, AdamW
 * with warm-up and cosine decay, gradient clipping and accumulation, an EMA of
 * the weights, validation, checkpoints that resume bit-identically, a log and
 * a progress display. What a batch computes is the task's (train.h): the
 * diffusion objective for a denoiser, cross-entropy for a classifier.
 *
 * Shards. A step's global batch is grad_accum micro-batches (shards) of
 * batch_size. Each shard's gradient is computed alone and the step's gradient
 * is their sum taken left to right in shard order; under MPI (core/dist.h) the
 * ranks take contiguous blocks of shards and pass the running sum along, so
 * the bits are the same for any number of processes (and, as before, threads).
 *
 * Randomness: shard a of a step draws from the Philox stream (seed) at block
 * counter + a * 2^32, where counter advances by grad_accum * 2^32 per step, so
 * any rank can draw any shard's numbers; the batch iterator has its own stream
 * (a rank passes over the other ranks' batches unread); validation uses a fresh
 * stream of its own each time, so evaluating never changes training. Saving
 * the stream positions with the weights, EMA and AdamW moments is what makes
 * resume exact, with any number of processes.
 *
 * EMA weights. The network runs whichever parameter array it holds; the
 * trainer keeps the other one aside and exchanges the two (use_ema, O(1)) to
 * validate, save or preview the EMA weights. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "core/dist.h"
#include "core/files.h"
#include "core/progress.h"
#include "io/safetensors.h"
#include "models/models.h"
#include "train/train.h"

#define STATE_FORMAT "diffusion.c training state"
#define STATE_VERSION "3" /* 3: per-shard random streams (2: one stream through the micro-batches) */

dfn_train_params dfn_train_params_init(void) {
    dfn_train_params p;
    memset(&p, 0, sizeof p);
    p.steps = 10000;
    p.batch_size = 128;
    p.grad_accum = 1;
    p.adamw = dfn_adamw_params_init();
    p.adamw.lr = 2e-4;
    p.adamw.weight_decay = 0.0;
    p.warmup = -1;
    p.lr_min_ratio = 0.1;
    p.clip = 1.0;
    p.ema_decay = 0.999f;
    p.ema_warmup = 1;
    p.p_uncond = 0.1;
    p.val_every = 500;
    p.val_batches = 4;
    p.save_every = 500;
    p.sample_count = 64;
    p.log_every = 10;
    p.fid_samples = 1000;
    p.fid_steps = 20;
    p.progress = -1;
    p.process = dfn_process_params_init();
    p.objective = dfn_objective_init();
    p.recon_loss = DFN_LOSS_L1;
    p.kl_weight = 1e-6;
    p.consistency.levels = 18;
    p.consistency.s0 = 10;
    p.consistency.s1 = 1280;
    p.consistency.target_ema = 0.95;
    p.consistency.pseudo_huber = -1;
    p.consistency.p_mean = -1.1;
    p.consistency.p_std = 2.0;
    p.consistency.sigma_max = 80.0;
    p.consistency.rho = 7.0;
    return p;
}

/* The warm-up: as asked, or automatic (-1): a tenth of the run, at most 200 steps. */
static long warmup_steps(const dfn_train_params *p) {
    return p->warmup >= 0 ? p->warmup : DFN_MIN(200, p->steps / 10);
}

/* Learning rate at step k (1-based): warm-up, then cosine decay. */
double dfn_train_lr(const dfn_train_params *p, long k) {
    return dfn_lr_warmup_cosine(p->adamw.lr, warmup_steps(p), p->steps, p->lr_min_ratio, k);
}

/* EMA decay at step k: with warm-up, min(decay, (1 + k) / (10 + k)). */
float dfn_train_ema_decay(const dfn_train_params *p, long k) {
    if (!p->ema_warmup) return p->ema_decay;
    double warm = (1.0 + (double)k) / (10.0 + (double)k);
    return warm < p->ema_decay ? (float)warm : p->ema_decay;
}

/* The whole training state beside the model. */
typedef struct {
    const dfn_train_params *p;
    dfn_model *model;
    const dfn_train_task *task;
    void *ts; /* the task's state */
    const dfn_dataset *train, *val;
    size_t P, D;
    int B, labelled;
    float *spare;     /* the weights the model does not hold: the EMA weights, or the
                         trained ones while the EMA weights run (NULL: no EMA) */
    int ema_in_model; /* the model holds the EMA weights now */
    float *m, *v;     /* AdamW moments */
    long step;
    int has_state; /* resuming from latest.safetensors (0: a run killed before its first save) */
    dfn_rng rng;
    dfn_batch_iter *it;
    double best_val;
    double loss_acc; /* training losses since the last log row, and their count */
    int loss_n;
    float *x0;
    int *y;
    /* shards: the step's gradient (acc); on ranks > 0 their shards' gradients
     * until the running sum arrives (own); each shard's loss; the first shard of
     * every rank (ranks + 1 entries) */
    float *acc, **own;
    double *shard_loss;
    size_t *rank_first;
    char *run_json;
    dfn_buf path;
} trainer;

static const char *run_file(trainer *tr, const char *name) {
    tr->path.len = 0;
    dfn_buf_printf(&tr->path, "%s/%s", tr->p->run_dir, name);
    return tr->path.data;
}

/* The one place the EMA weights go in and out of the network. */
static void use_ema(trainer *tr, int on) {
    if (!tr->spare || on == tr->ema_in_model) return;
    tr->spare = dfn_model_exchange_params(tr->model, tr->spare);
    tr->ema_in_model = on;
}
static float *trained_weights(trainer *tr) {
    return tr->ema_in_model ? tr->spare : dfn_model_params(tr->model);
}
static float *ema_weights(trainer *tr) {
    return !tr->spare ? NULL : tr->ema_in_model ? dfn_model_params(tr->model) : tr->spare;
}

/* Validation loss (and the task's metric) of the EMA weights on the first
 * val_batches batches of val, with draws from a stream that is the same at
 * every evaluation. */
static double validate(trainer *tr, double *metric) {
    *metric = NAN;
    const size_t nval = tr->val ? dfn_dataset_count(tr->val) : 0;
    int batches = (int)(nval / (size_t)tr->B);
    if (tr->p->val_batches > 0 && tr->p->val_batches < batches) batches = tr->p->val_batches;
    if (batches < 1) return NAN;
    use_ema(tr, 1);
    dfn_rng vrng = dfn_rng_init(tr->p->seed ^ 0x76616C6964617465ull); /* "validate" */
    const int *labels = dfn_dataset_labels((dfn_dataset *)tr->val);
    double total = 0, metric_sum = 0;
    for (int k = 0; k < batches; k++) {
        const size_t first = (size_t)k * tr->B;
        double m = 0;
        total += tr->task->batch(tr->ts, tr->model, dfn_dataset_sample(tr->val, first),
                                 labels ? labels + first : NULL, tr->B, 0, &vrng, 1.0f, &m);
        metric_sum += m;
    }
    use_ema(tr, 0);
    if (tr->task->metric_name) *metric = metric_sum / ((double)batches * tr->B);
    return total / batches;
}

/* latest.safetensors: weights, EMA, moments and every counter. */
static dfn_status save_state(trainer *tr) {
    dfn_st_writer *w = dfn_st_writer_new();
    dfn_status st;
    char buf[64];
    dfn_batch_state bs = dfn_batch_iter_state(tr->it);
    char *config = dfn_model_config_to_json(dfn_model_get_config(tr->model));
    const char *kept_prefix = NULL;
    float *kept = tr->task->kept_weights ? tr->task->kept_weights(tr->ts, &kept_prefix) : NULL;
    if ((st = dfn_st_writer_add_model_tensors(w, tr->model, "", trained_weights(tr))) ||
        (tr->spare && (st = dfn_st_writer_add_model_tensors(w, tr->model, "ema.", ema_weights(tr)))) ||
        (kept && (st = dfn_st_writer_add_model_tensors(w, tr->model, kept_prefix, kept))) ||
        (st = dfn_st_writer_add_model_tensors(w, tr->model, "adam_m.", tr->m)) ||
        (st = dfn_st_writer_add_model_tensors(w, tr->model, "adam_v.", tr->v)))
        goto done;
#define META(key, fmt, value)                                             \
    snprintf(buf, sizeof buf, fmt, value);                                \
    if ((st = dfn_st_writer_set_metadata(w, key, buf))) goto done;
    META("step", "%ld", tr->step);
    META("rng_seed", "%llu", (unsigned long long)tr->rng.seed);
    META("rng_counter", "%llu", (unsigned long long)tr->rng.counter);
    META("iter_seed", "%llu", (unsigned long long)bs.seed);
    META("iter_epoch", "%llu", (unsigned long long)bs.epoch);
    META("iter_position", "%llu", (unsigned long long)bs.position);
    META("iter_count", "%llu", (unsigned long long)bs.count);
    META("best_val", "%.17g", tr->best_val);
    META("log_loss_sum", "%.17g", tr->loss_acc);
    META("log_loss_count", "%d", tr->loss_n);
#undef META
    if ((st = dfn_st_writer_set_metadata(w, "format", STATE_FORMAT)) ||
        (st = dfn_st_writer_set_metadata(w, "format_version", STATE_VERSION)) ||
        (st = dfn_st_writer_set_metadata(w, "config", config)) ||
        (st = dfn_st_writer_set_metadata(w, "run", tr->run_json)))
        goto done;
    st = dfn_st_writer_save(w, run_file(tr, "latest.safetensors"));
done:
    free(config);
    dfn_st_writer_free(w);
    return st;
}

static int meta_u64(const dfn_st_file *f, const char *key, unsigned long long *out) {
    const char *s = dfn_st_metadata(f, key);
    if (!s) return 0;
    char *end;
    *out = strtoull(s, &end, 10);
    return *end == 0;
}

static dfn_status load_state(trainer *tr) {
    const char *path = run_file(tr, "latest.safetensors");
    dfn_st_file *f;
    dfn_status st = dfn_st_open(&f, path);
    if (st) return st;
    char *config = dfn_model_config_to_json(dfn_model_get_config(tr->model));
    const char *format = dfn_st_metadata(f, "format"), *version = dfn_st_metadata(f, "format_version");
    unsigned long long step, seed, counter, iseed, iepoch, ipos, icount;
    const char *kept_prefix = NULL;
    float *kept = tr->task->kept_weights ? tr->task->kept_weights(tr->ts, &kept_prefix) : NULL;
    if (!format || strcmp(format, STATE_FORMAT) != 0) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: not a diffusion.c training state (format %s)", path,
                           format ? format : "missing");
        goto done;
    }
    if (!version || strcmp(version, STATE_VERSION) != 0) { /* none: version 1 */
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: training state format_version \"%s\" is not supported (this build "
                           "reads version " STATE_VERSION "; versions 1 and 2 drew their random "
                           "numbers otherwise and would not continue the run exactly: finish it "
                           "with the build that started it, or start over)",
                           path, version ? version : "1");
        goto done;
    }
    if (!meta_u64(f, "step", &step) || !meta_u64(f, "rng_seed", &seed) ||
        !meta_u64(f, "rng_counter", &counter) || !meta_u64(f, "iter_seed", &iseed) ||
        !meta_u64(f, "iter_epoch", &iepoch) || !meta_u64(f, "iter_position", &ipos) ||
        !meta_u64(f, "iter_count", &icount) || !dfn_st_metadata(f, "best_val")) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: not a diffusion.c training state (counters missing)", path);
        goto done;
    }
    const char *cfg = dfn_st_metadata(f, "config");
    if (!cfg || strcmp(cfg, config)) {
        st = dfn_set_error(DFN_ERR_CONFIG, "%s: holds a different model configuration than this run", path);
        goto done;
    }
    if ((st = dfn_st_read_model_tensors(f, tr->model, "", trained_weights(tr))) ||
        (tr->spare && (st = dfn_st_read_model_tensors(f, tr->model, "ema.", ema_weights(tr)))) ||
        (kept && (st = dfn_st_read_model_tensors(f, tr->model, kept_prefix, kept))) ||
        (st = dfn_st_read_model_tensors(f, tr->model, "adam_m.", tr->m)) ||
        (st = dfn_st_read_model_tensors(f, tr->model, "adam_v.", tr->v)))
        goto done;
    tr->step = (long)step;
    tr->rng.seed = seed;
    tr->rng.counter = counter;
    tr->best_val = strtod(dfn_st_metadata(f, "best_val"), NULL);
    const char *acc = dfn_st_metadata(f, "log_loss_sum"), *cnt = dfn_st_metadata(f, "log_loss_count");
    tr->loss_acc = acc ? strtod(acc, NULL) : 0;
    tr->loss_n = cnt ? atoi(cnt) : 0;
    dfn_batch_state bs = {iseed, iepoch, ipos, icount};
    st = dfn_batch_iter_restore(tr->it, &bs);
done:
    free(config);
    dfn_st_close(f);
    return st;
}

/* A model checkpoint of the EMA weights (what samplers and evaluations read). */
static dfn_status save_model(trainer *tr, const char *name) {
    char step[32];
    snprintf(step, sizeof step, "%ld", tr->step);
    const char *meta[] = {"step", step, NULL};
    use_ema(tr, 1);
    dfn_status st = tr->task->save(tr->ts, tr->model, run_file(tr, name), meta);
    use_ema(tr, 0);
    return st;
}

static dfn_status preview(trainer *tr, const char *name) {
    if (!tr->task->preview || tr->p->sample_count < 1) return DFN_OK;
    use_ema(tr, 1);
    dfn_status st = tr->task->preview(tr->ts, tr->model, tr->train, tr->p->sample_count,
                                      tr->p->seed ^ 0x70726576696577ull, /* "preview": the same noise each time */
                                      run_file(tr, name));
    use_ema(tr, 0);
    return st;
}

/* Prepares run_dir: refuses another run's directory unless resume or force. */
static dfn_status prepare_run_dir(trainer *tr) {
    const dfn_train_params *p = tr->p;
    dfn_status st = dfn_dist_agree(dfn_make_dir(p->run_dir));
    if (st || (st = dfn_dist_check_shared_dir(p->run_dir))) return st;
    int has_run = dfn_path_exists(run_file(tr, "config.json"));
    if (p->resume) {
        if (!has_run)
            return dfn_set_error(DFN_ERR_ARG, "%s: nothing to resume (no config.json)", p->run_dir);
        /* without latest.safetensors (stopped before its first save) the run
         * starts again from step 0, with its settings */
        tr->has_state = dfn_path_exists(run_file(tr, "latest.safetensors"));
        char *old = dfn_read_text_file(run_file(tr, "config.json"));
        if (!old) return dfn_set_error(DFN_ERR_IO, "%s/config.json: cannot read", p->run_dir);
        char what[512];
        int differ = dfn_run_configs_diff(old, tr->run_json, what, sizeof what);
        free(old);
        if (differ)
            return dfn_set_error(DFN_ERR_CONFIG,
                                 "%s/config.json: resuming needs the same model, data, process, "
                                 "objective and training settings as the run (steps may grow): %s",
                                 p->run_dir, what);
        return DFN_OK;
    }
    if (has_run && !p->force)
        st = dfn_set_error(DFN_ERR_ARG,
                           "%s already holds a training run (config.json); use --resume to continue "
                           "it or --force to start over",
                           p->run_dir);
    /* every rank has looked before rank 0 writes; then they agree on the write */
    if ((st = dfn_dist_agree(st))) return st;
    if (dfn_dist_rank() == 0) {
        if (has_run) {
            const char *names[] = {"latest.safetensors", "best.safetensors", "model.safetensors",
                                   "log.csv", "loss.png", "autoencoder.safetensors", NULL};
            for (int i = 0; names[i]; i++) unlink(run_file(tr, names[i]));
        }
        st = dfn_write_text_file(run_file(tr, "config.json"), tr->run_json);
    }
    return dfn_dist_agree(st);
}

static dfn_status check_params(const dfn_train_params *p, const dfn_model *model) {
    if (p->steps < 1 || p->batch_size < 1 || p->grad_accum < 1)
        return dfn_set_error(DFN_ERR_ARG, "steps, batch size and grad accumulation must be >= 1");
    if (!(p->adamw.lr > 0))
        return dfn_set_error(DFN_ERR_ARG, "the learning rate (%g) must be > 0", p->adamw.lr);
    if (p->warmup < -1 || (p->warmup > 0 && p->warmup >= p->steps))
        return dfn_set_error(DFN_ERR_ARG,
                             "a warm-up of %ld steps in a run of %ld: the learning rate would never "
                             "decay; give a warm-up shorter than the run (-1: automatic, a tenth "
                             "of it)",
                             p->warmup, p->steps);
    if (!(p->ema_decay >= 0.0f && p->ema_decay < 1.0f))
        return dfn_set_error(DFN_ERR_ARG, "EMA decay %g must be in [0, 1) (0: no EMA)", p->ema_decay);
    if ((!p->run_dir || !*p->run_dir) && p->resume)
        return dfn_set_error(DFN_ERR_ARG, "resume needs the run directory of the run");
    if (p->log_every < 1) return dfn_set_error(DFN_ERR_ARG, "log every %d steps: must be >= 1", p->log_every);
    if (p->fid_every < 0 || (p->fid_every > 0 && (p->fid_samples < 2 || p->fid_steps < 0)))
        return dfn_set_error(DFN_ERR_ARG, "FID every %d steps of %d samples in %d sampler steps: "
                                          "must be >= 0, >= 2 and >= 0", p->fid_every, p->fid_samples,
                             p->fid_steps);
    if (p->grad_accum < dfn_dist_size())
        return dfn_set_error(DFN_ERR_ARG,
                             "%d processes, but a step has only %d shard%s (--accum): run at most "
                             "%d processes, or raise --accum (the global batch is --batch x --accum)",
                             dfn_dist_size(), p->grad_accum, p->grad_accum == 1 ? "" : "s",
                             p->grad_accum);
    if (p->data_json) {
        cJSON *d = cJSON_Parse(p->data_json);
        cJSON_Delete(d);
        if (!d) return dfn_set_error(DFN_ERR_ARG, "data_json is not valid JSON: %.80s", p->data_json);
    }
    const dfn_consistency_params *cm = &p->consistency;
    if (cm->method != DFN_CM_NONE) {
        if (!dfn_model_is_denoiser(model))
            return dfn_set_error(DFN_ERR_ARG, "a consistency model is a denoiser (a unet or an mlp), "
                                              "not a %s",
                                 dfn_model_kind_name(dfn_model_get_config(model)->kind));
        if (cm->method == DFN_CM_DISTILL && !cm->teacher)
            return dfn_set_error(DFN_ERR_ARG, "consistency distillation needs a teacher");
        if (cm->method == DFN_CM_TRAIN && cm->teacher)
            return dfn_set_error(DFN_ERR_ARG, "consistency training (ct) uses no teacher; "
                                              "with one, distill (cd)");
        if (p->autoencoder || p->paired_noise || p->fixed_time != 0)
            return dfn_set_error(DFN_ERR_ARG, "a consistency model with %s is not supported",
                                 p->autoencoder ? "an autoencoder (latent consistency models)"
                                 : p->paired_noise ? "(data, noise) pairs" : "a fixed time");
        if (cm->levels < 2 || cm->s0 < 1 || cm->s1 < cm->s0)
            return dfn_set_error(DFN_ERR_ARG, "consistency levels: N = %d (>= 2), s0 = %d, s1 = %d "
                                              "(1 <= s0 <= s1)", cm->levels, cm->s0, cm->s1);
        if (!(cm->target_ema >= 0 && cm->target_ema < 1) ||
            !(cm->sigma_max > 0) || !(cm->rho > 0) || !(cm->p_std > 0) || !isfinite(cm->p_mean))
            return dfn_set_error(DFN_ERR_ARG, "consistency: target EMA %g must be in [0, 1); "
                                              "sigma_max %g, rho %g, P_std %g > 0",
                                 cm->target_ema, cm->sigma_max, cm->rho, cm->p_std);
    }
    if (p->paired_noise && p->hflip)
        return dfn_set_error(DFN_ERR_ARG, "hflip with (data, noise) pairs: a flipped image is not "
                                          "what its noise maps to");
    if (p->paired_noise && !dfn_model_is_denoiser(model))
        return dfn_set_error(DFN_ERR_ARG, "(data, noise) pairs are for a diffusion model");
    if (p->fixed_time != 0 && !(p->process.continuous && p->fixed_time > 0 && p->fixed_time <= 1))
        return dfn_set_error(DFN_ERR_ARG, "a fixed training time %g: needs a continuous process "
                                          "and a time in (0, 1]", p->fixed_time);
    return DFN_OK;
}

static dfn_status check_data(trainer *tr, const dfn_dataset *ds, int min_count, const char *what) {
    int dims[DFN_DATASET_MAX_DIMS], nd = dfn_dataset_shape(ds, dims);
    if (tr->p->paired_noise) { /* (data, noise) pairs: twice the channels or the length */
        if (dims[0] % 2)
            return dfn_set_error(DFN_ERR_ARG, "%s: %d %s cannot hold (data, noise) pairs (odd)",
                                 what, dims[0], nd == 3 ? "channels" : "values");
        dims[0] /= 2;
    }
    dfn_status st = dfn_model_check_input(tr->model, nd, dims, what);
    if (st == DFN_OK) st = tr->task->check(tr->model, ds, tr->p, what);
    if (st != DFN_OK) return st;
    if (dfn_dataset_count(ds) < (size_t)min_count)
        return dfn_set_error(DFN_ERR_ARG, "%s: %zu samples, fewer than the batch size %d", what,
                             dfn_dataset_count(ds), min_count);
    return DFN_OK;
}

/* Latent diffusion: train and val replaced by their autoencoder latents
 * (*lat_train, *lat_val, for the caller to free), after the checks that the
 * autoencoder fits the data and the model. */
static dfn_status encode_data(const dfn_dataset **train, const dfn_dataset **val,
                              dfn_dataset **lat_train, dfn_dataset **lat_val, dfn_model *model,
                              const dfn_train_params *p) {
    dfn_model *ae = p->autoencoder;
    const char *name = dfn_model_path(ae) ? dfn_model_path(ae) : "the autoencoder";
    dfn_status st = dfn_model_check_kind(ae, DFN_MODEL_AUTOENCODER, name);
    if (st != DFN_OK) return st;
    if (!dfn_model_is_denoiser(model))
        return dfn_set_error(DFN_ERR_ARG,
                             "an autoencoder's latents are for a diffusion model (a unet or an "
                             "mlp), not for a %s",
                             dfn_model_kind_name(dfn_model_get_config(model)->kind));
    if (p->hflip)
        return dfn_set_error(DFN_ERR_ARG,
                             "hflip with an autoencoder: the latents are encoded once, and "
                             "flipping a latent is not encoding the flipped image");
    int dims[DFN_DATASET_MAX_DIMS], nd = dfn_dataset_shape(*train, dims), lat[3];
    st = dfn_model_check_input(ae, nd, dims, "training data");
    if (st == DFN_OK && *val) {
        nd = dfn_dataset_shape(*val, dims);
        st = dfn_model_check_input(ae, nd, dims, "validation data");
    }
    if (st != DFN_OK) return st;
    dfn_autoencoder_latent_shape(ae, lat);
    if ((st = dfn_model_check_input(model, 3, lat, "the autoencoder's latents")) != DFN_OK)
        return st;
    if (!(dfn_autoencoder_scale(ae) > 0)) {
        const size_t n = DFN_MIN(dfn_dataset_count(*train), (size_t)DFN_LATENT_SCALE_IMAGES);
        const double scale = dfn_autoencoder_measure_scale(ae, dfn_dataset_sample(*train, 0), n);
        if (!(scale > 0) || !isfinite(scale))
            return dfn_set_error(DFN_ERR_NUMERIC,
                                 "%s: its latents of the training data %s", name,
                                 isnan(scale) ? "are not finite" : "do not vary");
        dfn_autoencoder_set_scale(ae, scale);
    }
    const double scale = dfn_autoencoder_scale(ae);
    if ((st = dfn_encode_dataset(lat_train, ae, scale, *train)) != DFN_OK) return st;
    if (*val && (st = dfn_encode_dataset(lat_val, ae, scale, *val)) != DFN_OK) return st;
    *train = *lat_train;
    if (*val) *val = *lat_val;
    return DFN_OK;
}

static dfn_status train_run(dfn_model *model, const dfn_dataset *train, const dfn_dataset *val,
                            const dfn_train_params *p) {
    trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.p = p;
    tr.model = model;
    const dfn_model_kind kind = dfn_model_get_config(model)->kind;
    tr.task = dfn_model_is_denoiser(model) && p->consistency.method != DFN_CM_NONE
                  ? &dfn_consistency_task
              : dfn_model_is_denoiser(model)      ? &dfn_diffusion_task
              : kind == DFN_MODEL_AUTOENCODER ? &dfn_autoencoder_task
                                                  : &dfn_classifier_task;
    tr.best_val = INFINITY;
    const int files = p->run_dir && *p->run_dir;
    dfn_status st = DFN_OK;
    FILE *log = NULL;
    dfn_progress progress = {0};
    dfn_fid_monitor fidm = {0};

    dfn_dataset *lat_train = NULL, *lat_val = NULL; /* latent diffusion's data */
    st = check_params(p, model);
    if (!st && p->autoencoder) st = encode_data(&train, &val, &lat_train, &lat_val, model, p);
    tr.train = train;
    tr.val = val;
    if (!st) st = check_data(&tr, train, p->batch_size, "training data");
    if (!st && val) st = check_data(&tr, val, 1, "validation data");
    if ((st = dfn_dist_agree(st))) { /* (under MPI: every rank, or none, goes on) */
        dfn_dataset_free(lat_train);
        dfn_dataset_free(lat_val);
        return st;
    }

    tr.B = p->batch_size;
    tr.D = dfn_dataset_sample_size(train);
    tr.P = dfn_model_num_params(model);
    tr.labelled = dfn_dataset_labels((dfn_dataset *)train) != NULL;
    st = tr.task->begin(&tr.ts, model, p, tr.B);
    dfn_status all = dfn_dist_agree(st);
    if (all) {
        if (!st) tr.task->end(tr.ts);
        dfn_dataset_free(lat_train);
        dfn_dataset_free(lat_val);
        return all;
    }
    tr.run_json = dfn_train_run_json(p, model, tr.task, tr.ts);
    /* the ranks must train the same model on the same data (files that differ
     * between machines would otherwise make the replicas drift, or hang) */
    char what[160];
    if (dfn_dist_differs(tr.run_json, strlen(tr.run_json), "a training configuration", what, sizeof what) ||
        dfn_dist_differs(dfn_dataset_sample(train, 0), dfn_dataset_count(train) * tr.D * sizeof(float),
                         "training data", what, sizeof what) ||
        (val && dfn_dist_differs(dfn_dataset_sample(val, 0), dfn_dataset_count(val) * tr.D * sizeof(float),
                                 "validation data", what, sizeof what))) {
        st = dfn_set_error(DFN_ERR_ARG, "%s (do the files differ between machines?)", what);
        goto done;
    }
    if (files && (st = prepare_run_dir(&tr))) goto done;
    /* a latent model's run keeps its autoencoder, which model.safetensors names */
    if (files && p->autoencoder &&
        (st = dfn_dist_agree(dfn_model_save(p->autoencoder, run_file(&tr, "autoencoder.safetensors"), NULL))))
        goto done;

    dfn_batch_params bp = dfn_batch_params_init(tr.B);
    bp.hflip = p->hflip;
    if ((st = dfn_batch_iter_new(&tr.it, train, &bp, p->seed ^ 0x6261746368ull))) goto done; /* "batch" */
    if (p->ema_decay > 0) {
        tr.spare = dfn_malloc(tr.P * sizeof(float));
        memcpy(tr.spare, dfn_model_params(model), tr.P * sizeof(float));
    }
    tr.m = dfn_calloc(tr.P, sizeof(float));
    tr.v = dfn_calloc(tr.P, sizeof(float));
    tr.rng = dfn_rng_init(p->seed);
    tr.x0 = dfn_malloc((size_t)tr.B * tr.D * sizeof(float));
    tr.y = dfn_malloc((size_t)tr.B * sizeof(int));
    const int S = p->grad_accum, rank = dfn_dist_rank();
    tr.rank_first = dfn_dist_blocks((size_t)S, 1, (size_t)S);
    const size_t shard_lo = tr.rank_first[rank], shard_hi = tr.rank_first[rank + 1]; /* this rank's */
    const int own_count = rank == 0 ? 0 : (int)(shard_hi - shard_lo);
    tr.acc = dfn_malloc(tr.P * sizeof(float));
    tr.own = dfn_calloc((size_t)own_count + 1, sizeof(float *));
    for (int j = 0; j < own_count; j++) tr.own[j] = dfn_malloc(tr.P * sizeof(float));
    tr.shard_loss = dfn_calloc((size_t)S, sizeof(double));

    if (p->resume && tr.has_state) st = load_state(&tr);
    int log_fid = 0;
    if (!st && files)
        st = dfn_train_open_log(&log, run_file(&tr, "log.csv"), p->resume ? tr.step : -1,
                                tr.task->metric_name, p->fid_every > 0, &log_fid);
    if (!st) st = dfn_fid_monitor_begin(&fidm, p, tr.task, train, val);
    if ((st = dfn_dist_agree(st))) goto done; /* every rank is ready, or none goes on */
    if (fidm.ref && p->progress && dfn_dist_rank() == 0) {
        char floor[96] = "no floor: fewer validation images than samples";
        if (!isnan(fidm.floor))
            snprintf(floor, sizeof floor, "floor %.4f (as many validation images)", fidm.floor);
        printf("FID every %d steps: %d samples (%s, %d steps) vs %zu training images; %s\n",
               p->fid_every, fidm.n, p->fid_sampler ? p->fid_sampler : "the default sampler",
               p->fid_steps, dfn_feature_ref_count(fidm.ref), floor);
        fflush(stdout);
    }

    const long first_step = tr.step;
    double t_start = dfn_now_seconds(), t_mark = t_start;
    long mark_step = tr.step;
    dfn_progress_init(&progress, p->progress);
    while (tr.step < p->steps && (p->stop_after <= 0 || tr.step - first_step < p->stop_after)) {
        const long k = tr.step + 1;
        const double lr = dfn_train_lr(p, k);
        if (tr.task->start_step) tr.task->start_step(tr.ts, model, k);
        /* this rank's shards, each gradient alone (scaled by 1/S: the mean over
         * the global batch); the others' batches are passed over unread */
        for (int a = 0; a < S; a++) {
            if ((size_t)a < shard_lo || (size_t)a >= shard_hi) {
                dfn_batch_iter_next(tr.it, NULL, NULL);
                continue;
            }
            dfn_batch_iter_next(tr.it, tr.x0, tr.labelled ? tr.y : NULL);
            dfn_model_zero_grad(model);
            dfn_rng shard_rng = {tr.rng.seed, tr.rng.counter + ((uint64_t)a << 32)};
            tr.shard_loss[a] = tr.task->batch(tr.ts, model, tr.x0, tr.labelled ? tr.y : NULL, tr.B, 1,
                                              &shard_rng, 1.0f / S, NULL);
            const float *g = dfn_model_grads(model);
            if (a == 0) memcpy(tr.acc, g, tr.P * sizeof(float));
            else if (rank == 0) dfn_dist_add(tr.acc, g, tr.P); /* the sum so far is known here */
            else memcpy(tr.own[a - shard_lo], g, tr.P * sizeof(float));
        }
        tr.rng.counter += (uint64_t)S << 32;
        /* the gradient: sum over shards 0, 1, ..., S - 1 in order, on every rank */
        dfn_dist_ordered_sum(tr.acc, tr.own, own_count, tr.P);
        dfn_dist_allgather_rows(tr.shard_loss, sizeof(double), tr.rank_first);
        double loss = 0;
        for (int a = 0; a < S; a++) loss += tr.shard_loss[a] / S;
        float *grads = tr.acc;
        double gnorm = p->clip > 0 ? dfn_clip_grad_norm(grads, tr.P, p->clip) : dfn_grad_norm(grads, tr.P);
        if (!isfinite(loss) || !isfinite(gnorm)) {
            st = dfn_set_error(DFN_ERR_NUMERIC,
                               "training diverged at step %ld (loss %g, gradient norm %g)%s%s%s: "
                               "lower the learning rate (now %g) or clip gradients%s",
                               k, loss, gnorm, files ? "; " : "",
                               files ? run_file(&tr, "latest.safetensors") : "",
                               files ? " holds the last good state" : "", p->adamw.lr,
                               files ? ", then --resume" : "");
            goto done;
        }
        dfn_adamw_params opt = p->adamw;
        opt.lr = lr;
        dfn_adamw_step(dfn_model_params(model), grads, tr.m, tr.v, tr.P, k, &opt);
        if (tr.spare) dfn_ema_update(tr.spare, dfn_model_params(model), tr.P, dfn_train_ema_decay(p, k));
        tr.step = k;
        tr.loss_acc += loss;
        tr.loss_n++;

        double val_loss = NAN, val_metric = NAN;
        const int is_last = tr.step == p->steps;
        const int validating = val && p->val_every > 0 && (tr.step % p->val_every == 0 || is_last);
        if (validating) {
            val_loss = validate(&tr, &val_metric);
            if (val_loss < tr.best_val) {
                tr.best_val = val_loss;
                if (files) st = save_model(&tr, "best.safetensors");
            }
        }
        double fid = NAN;
        if (fidm.ref && (tr.step % p->fid_every == 0 || is_last)) {
            const double t0 = dfn_now_seconds();
            use_ema(&tr, 1);
            st = dfn_fid_monitor_measure(&fidm, p, tr.task, tr.ts, model, &fid);
            use_ema(&tr, 0);
            if ((st = dfn_dist_agree(st))) goto done;
            const double spent = dfn_now_seconds() - t0; /* (not training: kept out of the times) */
            t_start += spent;
            t_mark += spent;
        }
        if (tr.step % p->log_every == 0 || is_last || !isnan(val_loss) || !isnan(fid)) {
            double t = dfn_now_seconds();
            double ips = (double)(tr.step - mark_step) * tr.B * p->grad_accum / (t - t_mark);
            double mean_loss = tr.loss_acc / tr.loss_n;
            if (log)
                dfn_train_log_row(log, tr.step, mean_loss, val_loss, lr, gnorm, ips, t - t_start,
                                  tr.task->metric_name != NULL, val_metric, log_fid, fid);
            char metric[96] = "";
            if (!isnan(val_metric)) snprintf(metric, sizeof metric, " val %s %.4f", tr.task->metric_name, val_metric);
            if (!isnan(fid)) {
                const size_t len = strlen(metric);
                snprintf(metric + len, sizeof metric - len, " FID %.4f", fid);
                if (!isnan(fidm.floor))
                    snprintf(metric + strlen(metric), sizeof metric - strlen(metric), " (%.1fx floor)",
                             fid / fidm.floor);
            }
            dfn_progress_update(&progress, tr.step - first_step, p->steps - first_step,
                                "loss %.5f lr %.3e grad_norm %.4f img/s %.1f%s", mean_loss, lr,
                                gnorm, ips, metric);
            t_mark = t;
            mark_step = tr.step;
            tr.loss_acc = 0;
            tr.loss_n = 0;
        }
        if (!files) continue;
        /* files: rank 0 writes; the ranks agree on the outcome (before previews,
         * which sample on every rank, and before the next step) */
        if (validating && (st = dfn_dist_agree(st))) goto done;
        const int previewing = p->sample_every > 0 && tr.step % p->sample_every == 0 && !is_last;
        const int keeping = p->ckpt_every > 0 && tr.step % p->ckpt_every == 0;
        const int saving = (p->save_every > 0 && tr.step % p->save_every == 0) || is_last;
        if (previewing) {
            char name[64];
            snprintf(name, sizeof name, "samples/step-%06ld", tr.step);
            st = preview(&tr, name);
        }
        if (keeping) {
            char name[64];
            snprintf(name, sizeof name, "ckpt-%06ld.safetensors", tr.step);
            if (!st) st = save_model(&tr, name);
        }
        if (!st && saving) st = save_state(&tr);
        if ((previewing || keeping || saving) && (st = dfn_dist_agree(st))) goto done;
    }
    dfn_progress_end(&progress);
    const double t_loop = dfn_now_seconds() - t_start, exchanged = dfn_dist_seconds();
    if (tr.step == p->steps && tr.task->finish) {
        use_ema(&tr, 1);
        tr.task->finish(tr.ts, model, train);
        use_ema(&tr, 0);
    }
    if (files) st = save_state(&tr);
    if (files && !st && tr.step == p->steps) {
        st = save_model(&tr, "model.safetensors");
        fclose(log);
        log = NULL;
        if (!st && dfn_dist_rank() == 0) {
            dfn_buf csv = {0};
            dfn_buf_printf(&csv, "%s", run_file(&tr, "log.csv"));
            st = dfn_train_plot_log(csv.data, run_file(&tr, "loss.png"));
            dfn_buf_free(&csv);
        }
    }
    if ((st = dfn_dist_agree(st))) goto done; /* (the previews sample on every rank) */
    if (files && tr.step == p->steps && (st = preview(&tr, "samples/final"))) goto done;
    if (dfn_dist_size() > 1 && tr.step > first_step)
        printf("%d processes: %.1f ms per step, of which %.1f ms in exchanges (rank 0)\n", dfn_dist_size(),
               1e3 * t_loop / (double)(tr.step - first_step), 1e3 * exchanged / (double)(tr.step - first_step));
    use_ema(&tr, 1); /* the model leaves with the final weights: the EMA weights */
done:
    dfn_progress_end(&progress);
    dfn_fid_monitor_end(&fidm);
    if (st != DFN_OK) use_ema(&tr, 0);
    if (log) fclose(log);
    tr.task->end(tr.ts);
    free(tr.run_json);
    dfn_buf_free(&tr.path);
    dfn_batch_iter_free(tr.it);
    free(tr.spare);
    free(tr.m);
    free(tr.v);
    free(tr.x0);
    free(tr.y);
    free(tr.acc);
    for (int j = 0; tr.own && tr.own[j]; j++) free(tr.own[j]);
    free(tr.own);
    free(tr.shard_loss);
    free(tr.rank_first);
    dfn_dataset_free(lat_train);
    dfn_dataset_free(lat_val);
    return st;
}

void dfn_train_metadata(const char **meta, int cap, const char *key, const char *value,
                        const char *const *extra) {
    DFN_ASSERT(meta && cap >= 3);
    int k = 0;
    meta[k++] = key;
    meta[k++] = value;
    for (const char *const *kv = extra; kv && kv[0] && k + 2 < cap; kv += 2) {
        meta[k++] = kv[0];
        meta[k++] = kv[1];
    }
    meta[k] = NULL;
}

/* The run in the precision it records (p->bf16), whatever dfn_set_precision said
 * before (a resumed run is the same computation); the precision afterwards as
 * before. */
dfn_status dfn_train(dfn_model *model, const dfn_dataset *train, const dfn_dataset *val,
                     const dfn_train_params *p) {
    DFN_ASSERT(model && train && p);
    const dfn_precision before = dfn_get_precision();
    dfn_status st = dfn_dist_agree(dfn_set_precision(p->bf16 ? DFN_PRECISION_BF16 : DFN_PRECISION_FP32));
    if (st) { /* (the message says what this machine lacks) */
        dfn_set_precision(before);
        return st;
    }
    st = train_run(model, train, val, p);
    dfn_set_precision(before);
    return st;
}

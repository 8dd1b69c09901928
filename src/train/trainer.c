/* trainer.c - the training loop (Ho et al. 2020 alg. 1, with the practice of
 * improved-diffusion and diffusers): sample t and noise, regress the objective's
 * target, AdamW with warm-up and cosine decay, gradient clipping, an EMA of the
 * weights, validation, checkpoints that resume bit-identically.
 *
 * Randomness: one Philox stream (seed) draws, per micro-batch and in this order,
 * the times, the noise, the label drops and the dropout masks; the batch
 * iterator has its own; validation uses a fresh stream of its own each time, so
 * evaluating never changes training. Saving the two stream positions with the
 * weights, EMA and AdamW moments is what makes --resume exact. */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "io/safetensors.h"
#include "train/train.h"

dfn_train_params dfn_train_params_init(void) {
    dfn_train_params p;
    memset(&p, 0, sizeof p);
    p.steps = 10000;
    p.batch_size = 128;
    p.grad_accum = 1;
    p.adamw = dfn_adamw_params_init();
    p.adamw.lr = 2e-4;
    p.adamw.weight_decay = 0.0;
    p.warmup = 200;
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
    p.progress = -1;
    p.process = dfn_process_params_init();
    p.objective = dfn_objective_init();
    return p;
}

/* Learning rate at step k (1-based): warm-up, then cosine decay. */
double dfn_train_lr(const dfn_train_params *p, long k) {
    return dfn_lr_warmup_cosine(p->adamw.lr, p->warmup, p->steps, p->lr_min_ratio, k);
}

/* EMA decay at step k: with warm-up, min(decay, (1 + k) / (10 + k)). */
float dfn_train_ema_decay(const dfn_train_params *p, long k) {
    if (!p->ema_warmup) return p->ema_decay;
    double warm = (1.0 + (double)k) / (10.0 + (double)k);
    return warm < p->ema_decay ? (float)warm : p->ema_decay;
}

dfn_status dfn_make_dir(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return dfn_set_error(DFN_ERR_ARG, "%s: path too long", path);
    for (char *q = buf + 1; *q; q++) {
        if (*q != '/') continue;
        *q = 0;
        if (mkdir(buf, 0777) && errno != EEXIST)
            return dfn_set_error(DFN_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *q = '/';
    }
    if (mkdir(buf, 0777) && errno != EEXIST)
        return dfn_set_error(DFN_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) || !S_ISDIR(st.st_mode))
        return dfn_set_error(DFN_ERR_IO, "%s: not a directory", buf);
    return DFN_OK;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The whole training state beside the model. */
typedef struct {
    const dfn_train_params *p;
    dfn_model *model;
    const dfn_dataset *train, *val;
    dfn_schedule sched;
    size_t P, D;
    int B, labelled;
    float *ema, *m, *v;
    long step;
    dfn_rng rng;
    dfn_batch_iter *it;
    double best_val;
    double loss_acc; /* training losses since the last log row, and their count */
    int loss_n;
    /* batch buffers */
    float *x0, *eps, *xt, *target, *weight, *pred, *dpred, *tnet, *tcont;
    int *tidx, *y;
    char *config_json, *process_json, *objective_json;
    char path[4096];
} trainer;

static const char *run_file(trainer *tr, const char *name) {
    snprintf(tr->path, sizeof tr->path, "%s/%s", tr->p->run_dir, name);
    return tr->path;
}

/* One micro-batch: draws t, noise and label drops, builds x_t and the target,
 * runs the network (training mode: dropout from the same stream) and returns
 * the loss; d loss/d prediction, scaled by `scale`, goes to tr->dpred. */
static double micro_batch(trainer *tr, int training, dfn_rng *rng, float scale) {
    const dfn_train_params *p = tr->p;
    const dfn_model_config *cfg = dfn_model_get_config(tr->model);
    int B = tr->B;
    size_t D = tr->D;
    if (!p->process.continuous) {
        dfn_sample_timesteps(tr->tidx, B, tr->sched.T, rng);
        for (int b = 0; b < B; b++) tr->tnet[b] = (float)tr->tidx[b];
    } else {
        dfn_sample_times(tr->tcont, B, p->process.t_min, 1.0, rng);
        for (int b = 0; b < B; b++) tr->tnet[b] = (float)(p->process.time_scale * tr->tcont[b]);
    }
    dfn_rng_normal(rng, tr->eps, (size_t)B * D);
    const int *labels = NULL;
    if (cfg->num_classes > 0) {
        if (training && p->p_uncond > 0) {
            float *u = tr->weight; /* scratch until the objective fills it */
            dfn_rng_uniform(rng, u, (size_t)B);
            for (int b = 0; b < B; b++)
                if (u[b] < p->p_uncond) tr->y[b] = cfg->num_classes;
        }
        labels = tr->y;
    }
    if (!p->process.continuous)
        dfn_objective_batch_discrete(tr->xt, tr->target, tr->weight, &p->objective, &tr->sched,
                                     tr->x0, tr->eps, tr->tidx, B, D);
    else
        dfn_objective_batch_sde(tr->xt, tr->target, tr->weight, &p->objective, &p->process.sde,
                                tr->x0, tr->eps, tr->tcont, B, D);
    dfn_model_forward(tr->model, tr->pred, tr->xt, tr->tnet, labels, B, training, rng);
    double loss = dfn_objective_loss(tr->dpred, &p->objective, tr->pred, tr->target, tr->weight, B, D);
    if (scale != 1.0f)
        for (size_t i = 0; i < (size_t)B * D; i++) tr->dpred[i] *= scale;
    return loss;
}

/* Copies the next batch into x0 (and labels into y). */
static void next_batch(trainer *tr) {
    dfn_batch_iter_next(tr->it, tr->x0, tr->labelled ? tr->y : NULL);
    const dfn_model_config *cfg = dfn_model_get_config(tr->model);
    if (cfg->num_classes > 0 && !tr->labelled)
        for (int b = 0; b < tr->B; b++) tr->y[b] = cfg->num_classes;
}

/* Validation loss of the EMA weights on the first val_batches batches of val,
 * with times and noise from a stream that is the same at every evaluation. */
static double validate(trainer *tr) {
    if (!tr->val || dfn_dataset_count(tr->val) < (size_t)tr->B) return NAN;
    float *params = dfn_model_params(tr->model);
    float *saved = dfn_malloc(tr->P * sizeof(float));
    memcpy(saved, params, tr->P * sizeof(float));
    memcpy(params, tr->ema, tr->P * sizeof(float));
    dfn_rng vrng = dfn_rng_init(tr->p->seed ^ 0x76616C6964617465ull); /* "validate" */
    size_t nval = dfn_dataset_count(tr->val);
    int batches = tr->p->val_batches;
    if ((size_t)batches * tr->B > nval) batches = (int)(nval / tr->B);
    double total = 0;
    const int *labels = dfn_dataset_num_classes(tr->val) > 0 ? dfn_dataset_labels((dfn_dataset *)tr->val) : NULL;
    for (int k = 0; k < batches; k++) {
        memcpy(tr->x0, dfn_dataset_sample(tr->val, (size_t)k * tr->B), (size_t)tr->B * tr->D * sizeof(float));
        const dfn_model_config *cfg = dfn_model_get_config(tr->model);
        for (int b = 0; b < tr->B; b++)
            tr->y[b] = cfg->num_classes > 0 && labels ? labels[(size_t)k * tr->B + b] : cfg->num_classes;
        total += micro_batch(tr, 0, &vrng, 1.0f);
    }
    memcpy(params, saved, tr->P * sizeof(float));
    free(saved);
    return batches > 0 ? total / batches : NAN;
}

/* latest.safetensors: weights, EMA, moments and every counter. */
static dfn_status save_state(trainer *tr) {
    dfn_st_writer *w = dfn_st_writer_new();
    dfn_status st;
    char buf[64];
    float *params = dfn_model_params(tr->model);
    dfn_batch_state bs = dfn_batch_iter_state(tr->it);
    if ((st = dfn_st_writer_add_model_tensors(w, tr->model, "", params)) ||
        (st = dfn_st_writer_add_model_tensors(w, tr->model, "ema.", tr->ema)) ||
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
    if ((st = dfn_st_writer_set_metadata(w, "format", "diffusion.c training state")) ||
        (st = dfn_st_writer_set_metadata(w, "config", tr->config_json)) ||
        (st = dfn_st_writer_set_metadata(w, "process", tr->process_json)) ||
        (st = dfn_st_writer_set_metadata(w, "objective", tr->objective_json)))
        goto done;
    st = dfn_st_writer_save(w, run_file(tr, "latest.safetensors"));
done:
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
    unsigned long long step, seed, counter, iseed, iepoch, ipos, icount;
    if (!meta_u64(f, "step", &step) || !meta_u64(f, "rng_seed", &seed) ||
        !meta_u64(f, "rng_counter", &counter) || !meta_u64(f, "iter_seed", &iseed) ||
        !meta_u64(f, "iter_epoch", &iepoch) || !meta_u64(f, "iter_position", &ipos) ||
        !meta_u64(f, "iter_count", &icount) || !dfn_st_metadata(f, "best_val")) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: not a diffusion.c training state (counters missing)", path);
        goto done;
    }
    const char *cfg = dfn_st_metadata(f, "config");
    if (!cfg || strcmp(cfg, tr->config_json)) {
        st = dfn_set_error(DFN_ERR_CONFIG, "%s: holds a different model configuration than this run", path);
        goto done;
    }
    if ((st = dfn_st_read_model_tensors(f, tr->model, "", dfn_model_params(tr->model))) ||
        (st = dfn_st_read_model_tensors(f, tr->model, "ema.", tr->ema)) ||
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
    dfn_st_close(f);
    return st;
}

/* Writes an EMA model checkpoint (what samplers read): the model's config plus
 * the process and objective it was trained with. */
static dfn_status save_ema_model(trainer *tr, const char *name) {
    float *params = dfn_model_params(tr->model);
    float *saved = dfn_malloc(tr->P * sizeof(float));
    memcpy(saved, params, tr->P * sizeof(float));
    memcpy(params, tr->ema, tr->P * sizeof(float));
    char step[32];
    snprintf(step, sizeof step, "%ld", tr->step);
    const char *meta[] = {"process", tr->process_json, "objective", tr->objective_json, "step", step, NULL};
    dfn_status st = dfn_model_save(tr->model, run_file(tr, name), meta);
    memcpy(params, saved, tr->P * sizeof(float));
    free(saved);
    return st;
}

/* Prepares run_dir: refuses another run's directory unless resume or force. */
static dfn_status prepare_run_dir(trainer *tr, const char *run_json) {
    const dfn_train_params *p = tr->p;
    dfn_status st = dfn_make_dir(p->run_dir);
    if (st) return st;
    const char *cfg_path = run_file(tr, "config.json");
    int has_run = file_exists(cfg_path);
    if (p->resume) {
        if (!has_run || !file_exists(run_file(tr, "latest.safetensors")))
            return dfn_set_error(DFN_ERR_ARG, "%s: nothing to resume (no config.json and latest.safetensors)", p->run_dir);
        char *old = dfn_read_text_file(run_file(tr, "config.json"));
        if (!old) return dfn_set_error(DFN_ERR_IO, "%s/config.json: cannot read", p->run_dir);
        int same = dfn_run_configs_match(old, run_json);
        free(old);
        if (!same)
            return dfn_set_error(DFN_ERR_CONFIG,
                                 "%s/config.json: --resume needs the same model, process, objective and "
                                 "training settings as the run being resumed (steps may grow)",
                                 p->run_dir);
        return DFN_OK;
    }
    if (has_run && !p->force)
        return dfn_set_error(DFN_ERR_ARG,
                             "%s already holds a training run (config.json); use --resume to continue "
                             "it or --force to start over",
                             p->run_dir);
    if (has_run) {
        const char *names[] = {"latest.safetensors", "best.safetensors", "model.safetensors",
                               "log.csv", "loss.png", NULL};
        for (int i = 0; names[i]; i++) unlink(run_file(tr, names[i]));
    }
    return dfn_write_text_file(run_file(tr, "config.json"), run_json);
}

static void progress_line(trainer *tr, double loss, double lr, double gnorm, double ips,
                          double elapsed, long first_step) {
    const dfn_train_params *p = tr->p;
    long done = tr->step - first_step, left = p->steps - tr->step;
    double eta = done > 0 ? elapsed / done * left : 0;
    if (p->progress == 0) return;
    if (p->progress < 0 && isatty(STDERR_FILENO)) {
        int width = 30, fill = (int)(width * (double)tr->step / p->steps);
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] %ld/%ld loss %.4f lr %.2e |g| %.3f %.0f img/s ETA %02d:%02d  ", bar,
                tr->step, p->steps, loss, lr, gnorm, ips, (int)(eta / 60), (int)eta % 60);
        fflush(stderr);
    } else {
        printf("step %ld/%ld loss %.5f lr %.3e grad_norm %.4f img/s %.1f eta %.0fs\n", tr->step,
               p->steps, loss, lr, gnorm, ips, eta);
        fflush(stdout);
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

dfn_status dfn_train(dfn_model *model, const dfn_dataset *train, const dfn_dataset *val,
                     const dfn_train_params *p) {
    trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.p = p;
    tr.model = model;
    tr.train = train;
    tr.val = val;
    tr.best_val = INFINITY;
    dfn_status st = DFN_OK;
    FILE *log = NULL;
    char *run_json = NULL;
    const dfn_model_config *cfg = dfn_model_get_config(model);

    if (!p->run_dir || !*p->run_dir) return dfn_set_error(DFN_ERR_ARG, "training needs a run directory");
    if (p->steps < 1 || p->batch_size < 1 || p->grad_accum < 1)
        return dfn_set_error(DFN_ERR_ARG, "steps, batch size and grad accumulation must be >= 1");
    if ((st = dfn_objective_validate(&p->objective, !p->process.continuous))) return st;
    if ((st = dfn_train_check_data(model, train, p->batch_size, "training data"))) return st;
    if (val && (st = dfn_train_check_data(model, val, 1, "validation data"))) return st;

    tr.B = p->batch_size;
    tr.D = dfn_dataset_sample_size(train);
    tr.P = dfn_model_num_params(model);
    tr.labelled = dfn_dataset_num_classes(train) > 0 && cfg->num_classes > 0;
    if (!p->process.continuous) {
        if ((st = dfn_schedule_init(&tr.sched, &p->process.schedule))) return st;
    } else if ((st = dfn_sde_validate(&p->process.sde))) {
        return st;
    }
    tr.config_json = dfn_model_config_to_json(cfg);
    tr.process_json = dfn_process_to_json(&p->process, p->process.continuous ? NULL : &tr.sched);
    tr.objective_json = dfn_objective_to_json(&p->objective);
    run_json = dfn_train_run_json(p, tr.config_json, tr.process_json, tr.objective_json);
    if ((st = prepare_run_dir(&tr, run_json))) goto done;

    dfn_batch_params bp = dfn_batch_params_init(tr.B);
    bp.hflip = p->hflip;
    if ((st = dfn_batch_iter_new(&tr.it, train, &bp, p->seed ^ 0x6261746368ull))) goto done; /* "batch" */
    tr.ema = dfn_malloc(tr.P * sizeof(float));
    tr.m = dfn_calloc(tr.P, sizeof(float));
    tr.v = dfn_calloc(tr.P, sizeof(float));
    memcpy(tr.ema, dfn_model_params(model), tr.P * sizeof(float));
    tr.rng = dfn_rng_init(p->seed);
    size_t BD = (size_t)tr.B * tr.D;
    tr.x0 = dfn_malloc(BD * sizeof(float));
    tr.eps = dfn_malloc(BD * sizeof(float));
    tr.xt = dfn_malloc(BD * sizeof(float));
    tr.target = dfn_malloc(BD * sizeof(float));
    tr.pred = dfn_malloc(BD * sizeof(float));
    tr.dpred = dfn_malloc(BD * sizeof(float));
    tr.weight = dfn_malloc((size_t)tr.B * sizeof(float));
    tr.tnet = dfn_malloc((size_t)tr.B * sizeof(float));
    tr.tcont = dfn_malloc((size_t)tr.B * sizeof(float));
    tr.tidx = dfn_malloc((size_t)tr.B * sizeof(int));
    tr.y = dfn_malloc((size_t)tr.B * sizeof(int));

    if (p->resume && (st = load_state(&tr))) goto done;
    if ((st = dfn_train_open_log(&log, run_file(&tr, "log.csv"), p->resume ? tr.step : -1))) goto done;

    long first_step = tr.step;
    double t_start = now_seconds(), t_mark = t_start;
    long mark_step = tr.step;
    while (tr.step < p->steps && (p->stop_after <= 0 || tr.step - first_step < p->stop_after)) {
        long k = tr.step + 1;
        double lr = dfn_train_lr(p, k);
        dfn_model_zero_grad(model);
        double loss = 0;
        for (int a = 0; a < p->grad_accum; a++) {
            next_batch(&tr);
            loss += micro_batch(&tr, 1, &tr.rng, 1.0f / p->grad_accum) / p->grad_accum;
            dfn_model_backward(model, tr.dpred, NULL);
        }
        float *grads = dfn_model_grads(model);
        double gnorm = p->clip > 0 ? dfn_clip_grad_norm(grads, tr.P, p->clip) : dfn_grad_norm(grads, tr.P);
        if (!isfinite(loss) || !isfinite(gnorm)) {
            st = dfn_set_error(DFN_ERR_NUMERIC,
                               "training diverged at step %ld (loss %g, gradient norm %g); %s "
                               "holds the last good state: lower the learning rate (now %g) or "
                               "clip gradients, then --resume",
                               k, loss, gnorm, run_file(&tr, "latest.safetensors"), p->adamw.lr);
            goto done;
        }
        dfn_adamw_params opt = p->adamw;
        opt.lr = lr;
        dfn_adamw_step(dfn_model_params(model), grads, tr.m, tr.v, tr.P, k, &opt);
        dfn_ema_update(tr.ema, dfn_model_params(model), tr.P, dfn_train_ema_decay(p, k));
        tr.step = k;
        tr.loss_acc += loss;
        tr.loss_n++;

        double val_loss = NAN;
        int is_last = tr.step == p->steps;
        if (val && p->val_every > 0 && (tr.step % p->val_every == 0 || is_last)) {
            val_loss = validate(&tr);
            if (val_loss < tr.best_val) {
                tr.best_val = val_loss;
                if ((st = save_ema_model(&tr, "best.safetensors"))) goto done;
            }
        }
        if (tr.step % p->log_every == 0 || is_last || !isnan(val_loss)) {
            double t = now_seconds();
            double ips = (double)(tr.step - mark_step) * tr.B * p->grad_accum / (t - t_mark);
            double mean_loss = tr.loss_acc / tr.loss_n;
            fprintf(log, "%ld,%.6g,%s,%.6g,%.6g,%.2f,%.1f\n", tr.step, mean_loss,
                    isnan(val_loss) ? "" : (snprintf(tr.path, sizeof tr.path, "%.6g", val_loss), tr.path),
                    lr, gnorm, ips, t - t_start);
            fflush(log);
            progress_line(&tr, mean_loss, lr, gnorm, ips, t - t_start, first_step);
            t_mark = t;
            mark_step = tr.step;
            tr.loss_acc = 0;
            tr.loss_n = 0;
        }
        if (p->sample_every > 0 && tr.step % p->sample_every == 0 && !is_last) {
            char name[64];
            snprintf(name, sizeof name, "samples/step-%06ld", tr.step);
            if ((st = dfn_train_preview(model, tr.ema, train, p, &tr.sched, run_file(&tr, name)))) goto done;
        }
        if (p->ckpt_every > 0 && tr.step % p->ckpt_every == 0) {
            char name[64];
            snprintf(name, sizeof name, "ckpt-%06ld.safetensors", tr.step);
            if ((st = save_ema_model(&tr, name))) goto done;
        }
        if ((p->save_every > 0 && tr.step % p->save_every == 0) || is_last)
            if ((st = save_state(&tr))) goto done;
    }
    if (p->progress < 0 && isatty(STDERR_FILENO)) fprintf(stderr, "\n");
    if ((st = save_state(&tr))) goto done;
    if (tr.step == p->steps) {
        if ((st = save_ema_model(&tr, "model.safetensors"))) goto done;
        fclose(log);
        log = NULL;
        char csv[4200];
        snprintf(csv, sizeof csv, "%s", run_file(&tr, "log.csv"));
        if ((st = dfn_train_plot_log(csv, run_file(&tr, "loss.png")))) goto done;
        if (p->sample_count > 0) {
            if ((st = dfn_train_preview(model, tr.ema, train, p, &tr.sched, run_file(&tr, "samples/final"))))
                goto done;
        }
    }
done:
    if (log) fclose(log);
    free(run_json);
    free(tr.config_json);
    free(tr.process_json);
    free(tr.objective_json);
    dfn_batch_iter_free(tr.it);
    if (!p->process.continuous) dfn_schedule_free(&tr.sched);
    free(tr.ema); free(tr.m); free(tr.v);
    free(tr.x0); free(tr.eps); free(tr.xt); free(tr.target); free(tr.pred); free(tr.dpred);
    free(tr.weight); free(tr.tnet); free(tr.tcont); free(tr.tidx); free(tr.y);
    return st;
}

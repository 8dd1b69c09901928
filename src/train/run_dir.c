/* run_dir.c - what a training run leaves on disk besides checkpoints: its
 * config.json, log.csv and loss plot. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "core/files.h"
#include "core/json_fields.h"
#include "diffusion/plot.h"
#include "train/train.h"

/* The training settings config.json records, in the order written; one table
 * for both directions (writing a run's config.json, reading it to resume). */
#define FIELD(key, type, member) DFN_JSON_FIELD(key, type, dfn_train_params, member)
static const dfn_json_field train_fields[] = {
    FIELD("steps", DFN_JSON_LONG, steps),
    FIELD("batch_size", DFN_JSON_INT, batch_size),
    FIELD("grad_accum", DFN_JSON_INT, grad_accum),
    FIELD("lr", DFN_JSON_DOUBLE, adamw.lr),
    FIELD("beta1", DFN_JSON_DOUBLE, adamw.beta1),
    FIELD("beta2", DFN_JSON_DOUBLE, adamw.beta2),
    FIELD("adam_eps", DFN_JSON_DOUBLE, adamw.eps),
    FIELD("weight_decay", DFN_JSON_DOUBLE, adamw.weight_decay),
    FIELD("warmup", DFN_JSON_LONG, warmup),
    FIELD("lr_min_ratio", DFN_JSON_DOUBLE, lr_min_ratio),
    FIELD("clip", DFN_JSON_DOUBLE, clip),
    FIELD("ema_decay", DFN_JSON_FLOAT, ema_decay),
    FIELD("ema_warmup", DFN_JSON_INT, ema_warmup),
    FIELD("p_uncond", DFN_JSON_DOUBLE, p_uncond),
    FIELD("hflip", DFN_JSON_INT, hflip),
    DFN_JSON_OPTIONAL_INT_FIELD("bf16", dfn_train_params, bf16),
    DFN_JSON_OPTIONAL_INT_FIELD("paired_noise", dfn_train_params, paired_noise),
    DFN_JSON_OPTIONAL_DOUBLE_FIELD("fixed_time", dfn_train_params, fixed_time),
    FIELD("val_every", DFN_JSON_INT, val_every),
    FIELD("val_batches", DFN_JSON_INT, val_batches),
    FIELD("seed", DFN_JSON_U64, seed),
    /* what the run writes (RESUME_MAY_CHANGE): kept for --resume, may be changed there */
    FIELD("log_every", DFN_JSON_INT, log_every),
    FIELD("save_every", DFN_JSON_INT, save_every),
    FIELD("ckpt_every", DFN_JSON_INT, ckpt_every),
    FIELD("sample_every", DFN_JSON_INT, sample_every),
    FIELD("samples", DFN_JSON_INT, sample_count),
};
/* The train settings a resumed run may change: how long it goes on, and what it
 * writes on the way; the rest must be the run's. */
static const char *const RESUME_MAY_CHANGE[] = {"steps", "log_every", "save_every", "ckpt_every",
                                                 "sample_every", "samples"};
#define N_TRAIN_FIELDS ((int)(sizeof train_fields / sizeof train_fields[0]))

char *dfn_train_run_json(const dfn_train_params *p, const dfn_model *model,
                         const dfn_train_task *task, void *task_state) {
    cJSON *o = cJSON_CreateObject();
    char *model_json = dfn_model_config_to_json(dfn_model_get_config(model));
    cJSON_AddItemToObject(o, "model", cJSON_Parse(model_json));
    free(model_json);
    if (p->data_json) cJSON_AddItemToObject(o, "data", cJSON_Parse(p->data_json));
    if (task->describe) task->describe(task_state, o);
    cJSON *t = cJSON_AddObjectToObject(o, "train");
    dfn_json_fields_write(t, p, train_fields, N_TRAIN_FIELDS);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    DFN_ASSERT(text);
    dfn_buf b = {0};
    dfn_buf_printf(&b, "%s\n", text);
    cJSON_free(text);
    return b.data;
}

/* The first difference of two JSON values, as "key.key: A there, B here". */
static int json_diff(const cJSON *a, const cJSON *b, dfn_buf *path, dfn_buf *out) {
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        const size_t len = path->len;
        const cJSON *x;
        cJSON_ArrayForEach(x, a) {
            dfn_buf_printf(path, "%s%s", len ? "." : "", x->string);
            if (json_diff(x, cJSON_GetObjectItemCaseSensitive(b, x->string), path, out)) return 1;
            path->len = len;
            path->data[len] = 0;
        }
        cJSON_ArrayForEach(x, b) {
            if (cJSON_GetObjectItemCaseSensitive(a, x->string)) continue;
            dfn_buf_printf(path, "%s%s", len ? "." : "", x->string);
            return json_diff(NULL, x, path, out);
        }
        return 0;
    }
    if (a && b && cJSON_Compare(a, b, 1)) return 0;
    char *ta = a ? cJSON_PrintUnformatted(a) : NULL, *tb = b ? cJSON_PrintUnformatted(b) : NULL;
    dfn_buf_printf(out, "%s is %.60s%s in the run, %.60s%s now", path->data ? path->data : "",
                   ta ? ta : "absent", ta && strlen(ta) > 60 ? "..." : "", tb ? tb : "absent",
                   tb && strlen(tb) > 60 ? "..." : "");
    cJSON_free(ta);
    cJSON_free(tb);
    return 1;
}

int dfn_run_configs_diff(const char *run, const char *now, char *what, size_t size) {
    cJSON *x = cJSON_Parse(run), *y = cJSON_Parse(now);
    int differ = 1;
    if (x && y) {
        cJSON *tx = cJSON_GetObjectItemCaseSensitive(x, "train");
        cJSON *ty = cJSON_GetObjectItemCaseSensitive(y, "train");
        for (size_t i = 0; i < sizeof RESUME_MAY_CHANGE / sizeof *RESUME_MAY_CHANGE; i++) {
            if (tx) cJSON_DeleteItemFromObjectCaseSensitive(tx, RESUME_MAY_CHANGE[i]);
            if (ty) cJSON_DeleteItemFromObjectCaseSensitive(ty, RESUME_MAY_CHANGE[i]);
        }
        dfn_buf path = {0}, out = {0};
        differ = json_diff(x, y, &path, &out);
        if (differ && what) snprintf(what, size, "%s", out.data);
        dfn_buf_free(&path);
        dfn_buf_free(&out);
    } else if (what) {
        snprintf(what, size, "not valid JSON");
    }
    cJSON_Delete(x);
    cJSON_Delete(y);
    return differ;
}

/* The "consistency" object of config.json back into *c (the teacher itself is
 * not recorded: a resumed distillation is given it again). */
static dfn_status read_consistency(dfn_consistency_params *c, const cJSON *o) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "method");
    const int method = cJSON_IsString(m) ? dfn_cm_method_from_name(m->valuestring) : -1;
    if (method < 0) return dfn_set_error(DFN_ERR_FORMAT, "consistency.method must be \"cd\" or \"ct\"");
    c->method = (dfn_cm_method)method;
    static const struct {
        const char *key;
        int is_int;
        size_t offset;
    } nums[] = {
        {"levels", 1, offsetof(dfn_consistency_params, levels)},
        {"target_ema", 0, offsetof(dfn_consistency_params, target_ema)},
        {"s0", 1, offsetof(dfn_consistency_params, s0)},
        {"s1", 1, offsetof(dfn_consistency_params, s1)},
        {"p_mean", 0, offsetof(dfn_consistency_params, p_mean)},
        {"p_std", 0, offsetof(dfn_consistency_params, p_std)},
        {"sigma_max", 0, offsetof(dfn_consistency_params, sigma_max)},
        {"rho", 0, offsetof(dfn_consistency_params, rho)},
    };
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, nums[i].key);
        if (!x) continue; /* (each method records its own) */
        if (!cJSON_IsNumber(x) || (nums[i].is_int && (x->valuedouble != floor(x->valuedouble) ||
                                                      fabs(x->valuedouble) > 1e9)))
            return dfn_set_error(DFN_ERR_FORMAT, "consistency.%s must be %s", nums[i].key,
                                 nums[i].is_int ? "a whole number" : "a number");
        if (nums[i].is_int) *(int *)((char *)c + nums[i].offset) = x->valueint;
        else *(double *)((char *)c + nums[i].offset) = x->valuedouble;
    }
    const cJSON *dist = cJSON_GetObjectItemCaseSensitive(o, "distance");
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "teacher_step");
    if (cJSON_IsString(dist)) c->pseudo_huber = !strcmp(dist->valuestring, "pseudo-huber");
    if (cJSON_IsString(step)) c->heun = !strcmp(step->valuestring, "heun");
    return DFN_OK;
}

dfn_status dfn_train_params_from_run(dfn_train_params *p, dfn_model_config *model, char **data,
                                     const char *run_dir) {
    DFN_ASSERT(p && model && run_dir);
    if (data) *data = NULL;
    dfn_buf path = {0};
    dfn_buf_printf(&path, "%s/config.json", run_dir);
    dfn_status st = DFN_OK;
    char *text = dfn_read_text_file(path.data);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    dfn_train_params q = dfn_train_params_init();
    if (!text) {
        st = dfn_set_error(DFN_ERR_IO, "%s: no run to continue here (%s)", run_dir, dfn_last_error());
        goto done;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "model");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "train");
    if (!cJSON_IsObject(m) || !cJSON_IsObject(t)) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: not a run's config.json (\"model\" and \"train\" "
                                           "needed)", path.data);
        goto done;
    }
    char *model_json = cJSON_PrintUnformatted(m);
    st = dfn_model_config_from_json(model, model_json);
    cJSON_free(model_json);
    if (st) {
        st = dfn_set_error(st, "%s: model: %s", path.data, dfn_last_error());
        goto done;
    }
    for (int i = 0; i < N_TRAIN_FIELDS; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(t, train_fields[i].key);
        const char *want = item ? dfn_json_field_read(&q, &train_fields[i], item) : NULL;
        if (want) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: train.%s must be %s", path.data, train_fields[i].key, want);
            goto done;
        }
    }
    const cJSON *proc = cJSON_GetObjectItemCaseSensitive(o, "process");
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(o, "objective");
    if (proc) {
        char *json = cJSON_PrintUnformatted(proc);
        dfn_schedule sched;
        memset(&sched, 0, sizeof sched);
        st = dfn_process_from_json(&q.process, &sched, json);
        dfn_schedule_free(&sched);
        cJSON_free(json);
        if (st) {
            st = dfn_set_error(st, "%s: %s", path.data, dfn_last_error());
            goto done;
        }
    }
    if (obj) {
        char *json = cJSON_PrintUnformatted(obj);
        st = dfn_objective_from_json(&q.objective, json);
        cJSON_free(json);
        if (st) {
            st = dfn_set_error(st, "%s: %s", path.data, dfn_last_error());
            goto done;
        }
    }
    /* an autoencoder's loss (autoencoder_task.c writes it) */
    const cJSON *ael = cJSON_GetObjectItemCaseSensitive(o, "autoencoder_loss");
    if (ael) {
        const cJSON *rl = cJSON_GetObjectItemCaseSensitive(ael, "reconstruction");
        const cJSON *kw = cJSON_GetObjectItemCaseSensitive(ael, "kl_weight");
        const int k = cJSON_IsString(rl) ? dfn_loss_kind_from_name(rl->valuestring) : -1;
        if (k < 0 || !cJSON_IsNumber(kw)) {
            st = dfn_set_error(DFN_ERR_FORMAT,
                               "%s: autoencoder_loss must hold \"reconstruction\" (l1, l2) and "
                               "\"kl_weight\" (a number)",
                               path.data);
            goto done;
        }
        q.recon_loss = (dfn_loss_kind)k;
        q.kl_weight = kw->valuedouble;
    }
    /* a consistency model's settings (consistency_task.c writes them) */
    const cJSON *cm = cJSON_GetObjectItemCaseSensitive(o, "consistency");
    if (cm && (st = read_consistency(&q.consistency, cm)) != DFN_OK) {
        st = dfn_set_error(st, "%s: %s", path.data, dfn_last_error());
        goto done;
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "data");
    if (data && d) {
        char *json = cJSON_PrintUnformatted(d);
        *data = dfn_strdup(json);
        cJSON_free(json);
    }
    q.run_dir = run_dir;
    q.resume = 1;
    *p = q;
done:
    cJSON_Delete(o);
    free(text);
    dfn_buf_free(&path);
    return st;
}

#define LOG_HEADER "step,loss,val_loss,lr,grad_norm,img_per_s,seconds"

dfn_status dfn_train_open_log(FILE **out, const char *path, long resume_step,
                              const char *metric_name, int fid, int *has_fid) {
    *out = NULL;
    *has_fid = fid;
    dfn_buf kept = {0};
    char *old = resume_step >= 0 ? dfn_read_text_file(path) : NULL;
    if (!old) { /* a new log */
        dfn_buf_printf(&kept, LOG_HEADER "%s%s%s\n", metric_name ? ",val_" : "",
                       metric_name ? metric_name : "", fid ? ",fid" : "");
    } else { /* keep the header and the rows up to the resumed step */
        const char *nl = strchr(old, '\n');
        const size_t hl = nl ? (size_t)(nl - old) : strlen(old);
        *has_fid = hl >= 4 && !strncmp(old + hl - 4, ",fid", 4);
        if (fid && !*has_fid) {
            free(old);
            return dfn_set_error(DFN_ERR_ARG, "%s has no fid column: the run was started without "
                                              "an FID every K steps, so it cannot be resumed with one",
                                 path);
        }
        for (char *line = old, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next) *next++ = 0;
            char *end;
            long step = strtol(line, &end, 10);
            if (line == old || (end != line && *end == ',' && step <= resume_step))
                dfn_buf_printf(&kept, "%s\n", line);
        }
        free(old);
    }
    dfn_status st = dfn_write_text_file(path, kept.data);
    dfn_buf_free(&kept);
    if (st) return st;
    *out = dfn_open_append(path);
    if (!*out) return dfn_set_error(DFN_ERR_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    return DFN_OK;
}

void dfn_train_log_row(FILE *log, long step, double loss, double val_loss, double lr,
                       double grad_norm, double img_per_s, double seconds, int has_metric,
                       double val_metric, int has_fid, double fid) {
    fprintf(log, "%ld,%.6g,", step, loss);
    if (!isnan(val_loss)) fprintf(log, "%.6g", val_loss);
    fprintf(log, ",%.6g,%.6g,%.2f,%.1f", lr, grad_norm, img_per_s, seconds);
    if (has_metric) {
        fputc(',', log);
        if (!isnan(val_metric)) fprintf(log, "%.6g", val_metric);
    }
    if (has_fid) {
        fputc(',', log);
        if (!isnan(fid)) fprintf(log, "%.6g", fid);
    }
    fputc('\n', log);
    fflush(log);
}

/* Appends one float to a dfn_buf used as a growable float array. */
static void push(dfn_buf *b, double v) {
    float f = (float)v;
    dfn_buf_append(b, &f, sizeof f);
}

dfn_status dfn_train_plot_log(const char *csv_path, const char *png_path) {
    char *text = dfn_read_text_file(csv_path);
    if (!text) return dfn_set_error(DFN_ERR_IO, "%s: cannot read the training log", csv_path);
    /* the fid column, if any, is the header's last */
    const char *nl = strchr(text, '\n');
    const size_t hl = nl ? (size_t)(nl - text) : strlen(text);
    const int has_fid = hl >= 4 && !strncmp(text + hl - 4, ",fid", 4);
    dfn_buf step = {0}, loss = {0}, vstep = {0}, vloss = {0}, fstep = {0}, fid = {0};
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        char *p = line + 1, *end;
        double s = strtod(p, &end);
        if (*end != ',') continue;
        double l = strtod(end + 1, &p);
        if (*p != ',') continue;
        double v = p[1] == ',' ? NAN : strtod(p + 1, NULL);
        push(&step, s);
        push(&loss, l);
        if (!isnan(v)) {
            push(&vstep, s);
            push(&vloss, v);
        }
        const char *eol = strchr(p, '\n'), *last = NULL;
        for (const char *c = p; *c && c != eol; c++)
            if (*c == ',') last = c;
        if (has_fid && last && last[1] != '\n' && last[1] != 0) {
            push(&fstep, s);
            push(&fid, strtod(last + 1, NULL));
        }
    }
    dfn_plot *plot = dfn_plot_new(800, 500);
    dfn_plot_labels(plot, fid.len ? "training loss and FID" : "training loss", "step",
                    fid.len ? "loss, FID" : "loss");
    dfn_plot_log_y(plot, 1);
    if (step.len)
        dfn_plot_line(plot, (const float *)step.data, (const float *)loss.data,
                      (int)(step.len / sizeof(float)), "train");
    if (vstep.len)
        dfn_plot_line(plot, (const float *)vstep.data, (const float *)vloss.data,
                      (int)(vstep.len / sizeof(float)), "validation");
    if (fid.len)
        dfn_plot_line(plot, (const float *)fstep.data, (const float *)fid.data,
                      (int)(fid.len / sizeof(float)), "FID");
    dfn_status st = dfn_plot_save(plot, png_path);
    dfn_plot_free(plot);
    dfn_buf_free(&step);
    dfn_buf_free(&loss);
    dfn_buf_free(&vstep);
    dfn_buf_free(&vloss);
    dfn_buf_free(&fstep);
    dfn_buf_free(&fid);
    free(text);
    return st;
}

/* run_dir.c - what a training run leaves on disk besides checkpoints: its
 * config.json, log.csv and loss plot. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "core/files.h"
#include "diffusion/plot.h"
#include "train/train.h"

char *dfn_train_run_json(const dfn_train_params *p, const dfn_model *model,
                         const dfn_train_task *task, void *task_state) {
    cJSON *o = cJSON_CreateObject();
    char *model_json = dfn_model_config_to_json(dfn_model_get_config(model));
    cJSON_AddItemToObject(o, "model", cJSON_Parse(model_json));
    free(model_json);
    if (task->describe) task->describe(task_state, o);
    cJSON *t = cJSON_AddObjectToObject(o, "train");
    cJSON_AddNumberToObject(t, "steps", (double)p->steps);
    cJSON_AddNumberToObject(t, "batch_size", p->batch_size);
    cJSON_AddNumberToObject(t, "grad_accum", p->grad_accum);
    cJSON_AddNumberToObject(t, "lr", p->adamw.lr);
    cJSON_AddNumberToObject(t, "beta1", p->adamw.beta1);
    cJSON_AddNumberToObject(t, "beta2", p->adamw.beta2);
    cJSON_AddNumberToObject(t, "adam_eps", p->adamw.eps);
    cJSON_AddNumberToObject(t, "weight_decay", p->adamw.weight_decay);
    cJSON_AddNumberToObject(t, "warmup", (double)p->warmup);
    cJSON_AddNumberToObject(t, "lr_min_ratio", p->lr_min_ratio);
    cJSON_AddNumberToObject(t, "clip", p->clip);
    cJSON_AddNumberToObject(t, "ema_decay", p->ema_decay);
    cJSON_AddNumberToObject(t, "ema_warmup", p->ema_warmup);
    cJSON_AddNumberToObject(t, "p_uncond", p->p_uncond);
    cJSON_AddNumberToObject(t, "hflip", p->hflip);
    cJSON_AddNumberToObject(t, "val_every", p->val_every);
    cJSON_AddNumberToObject(t, "val_batches", p->val_batches);
    cJSON_AddNumberToObject(t, "seed", (double)p->seed);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    DFN_ASSERT(text);
    dfn_buf b = {0};
    dfn_buf_printf(&b, "%s\n", text);
    cJSON_free(text);
    return b.data;
}

int dfn_run_configs_match(const char *a, const char *b) {
    cJSON *x = cJSON_Parse(a), *y = cJSON_Parse(b);
    int same = 0;
    if (x && y) {
        cJSON *tx = cJSON_GetObjectItemCaseSensitive(x, "train");
        cJSON *ty = cJSON_GetObjectItemCaseSensitive(y, "train");
        if (tx) cJSON_DeleteItemFromObjectCaseSensitive(tx, "steps");
        if (ty) cJSON_DeleteItemFromObjectCaseSensitive(ty, "steps");
        same = cJSON_Compare(x, y, 1);
    }
    cJSON_Delete(x);
    cJSON_Delete(y);
    return same;
}

#define LOG_HEADER "step,loss,val_loss,lr,grad_norm,img_per_s,seconds"

dfn_status dfn_train_open_log(FILE **out, const char *path, long resume_step,
                              const char *metric_name) {
    *out = NULL;
    dfn_buf kept = {0};
    char *old = resume_step >= 0 ? dfn_read_text_file(path) : NULL;
    if (!old) { /* a new log */
        dfn_buf_printf(&kept, LOG_HEADER "%s%s\n", metric_name ? ",val_" : "",
                       metric_name ? metric_name : "");
    } else { /* keep the header and the rows up to the resumed step */
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
    *out = fopen(path, "a");
    if (!*out) return dfn_set_error(DFN_ERR_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    return DFN_OK;
}

void dfn_train_log_row(FILE *log, long step, double loss, double val_loss, double lr,
                       double grad_norm, double img_per_s, double seconds, int has_metric,
                       double val_metric) {
    fprintf(log, "%ld,%.6g,", step, loss);
    if (!isnan(val_loss)) fprintf(log, "%.6g", val_loss);
    fprintf(log, ",%.6g,%.6g,%.2f,%.1f", lr, grad_norm, img_per_s, seconds);
    if (has_metric) {
        fputc(',', log);
        if (!isnan(val_metric)) fprintf(log, "%.6g", val_metric);
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
    dfn_buf step = {0}, loss = {0}, vstep = {0}, vloss = {0};
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
    }
    dfn_plot *plot = dfn_plot_new(800, 500);
    dfn_plot_labels(plot, "training loss", "step", "loss");
    dfn_plot_log_y(plot, 1);
    if (step.len)
        dfn_plot_line(plot, (const float *)step.data, (const float *)loss.data,
                      (int)(step.len / sizeof(float)), "train");
    if (vstep.len)
        dfn_plot_line(plot, (const float *)vstep.data, (const float *)vloss.data,
                      (int)(vstep.len / sizeof(float)), "validation");
    dfn_status st = dfn_plot_save(plot, png_path);
    dfn_plot_free(plot);
    dfn_buf_free(&step);
    dfn_buf_free(&loss);
    dfn_buf_free(&vstep);
    dfn_buf_free(&vloss);
    free(text);
    return st;
}

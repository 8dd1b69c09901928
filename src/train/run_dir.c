/* run_dir.c - what a training run leaves on disk besides checkpoints: its
 * config.json, log.csv and loss plot; and the checks that the data fit the model. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "core.h"
#include "io/atomic_file.h"
#include "train/train.h"

char *dfn_train_run_json(const dfn_train_params *p, const char *model_json,
                         const char *process_json, const char *objective_json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "model", cJSON_Parse(model_json));
    cJSON_AddItemToObject(o, "process", cJSON_Parse(process_json));
    cJSON_AddItemToObject(o, "objective", cJSON_Parse(objective_json));
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
    size_t n = strlen(text);
    char *with_newline = dfn_malloc(n + 2);
    memcpy(with_newline, text, n);
    with_newline[n] = '\n';
    with_newline[n + 1] = 0;
    free(text);
    return with_newline;
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

dfn_status dfn_train_check_data(const dfn_model *model, const dfn_dataset *ds, int min_count,
                                const char *what) {
    const dfn_model_config *c = dfn_model_get_config(model);
    int dims[DFN_DATASET_MAX_DIMS], nd = dfn_dataset_shape(ds, dims);
    if (c->kind == DFN_MODEL_UNET) {
        if (nd != 3 || dims[0] != c->in_channels || dims[1] != c->resolution || dims[2] != c->resolution)
            return dfn_set_error(DFN_ERR_ARG, "%s: samples are %s%d%s%d%s%d, the model needs images %dx%dx%d",
                                 what, nd == 3 ? "" : "not images: ", dims[0], nd > 1 ? "x" : "",
                                 nd > 1 ? dims[1] : 0, nd > 2 ? "x" : "", nd > 2 ? dims[2] : 0,
                                 c->in_channels, c->resolution, c->resolution);
    } else if (nd != 1 || dims[0] != c->dim) {
        return dfn_set_error(DFN_ERR_ARG, "%s: samples have %zu values, the model needs vectors of %d", what,
                             dfn_dataset_sample_size(ds), c->dim);
    }
    if (dfn_dataset_count(ds) < (size_t)min_count)
        return dfn_set_error(DFN_ERR_ARG, "%s: %zu samples, fewer than the batch size %d", what,
                             dfn_dataset_count(ds), min_count);
    if (c->num_classes > 0 && dfn_dataset_num_classes(ds) > c->num_classes)
        return dfn_set_error(DFN_ERR_ARG, "%s: %d classes, the model has %d", what,
                             dfn_dataset_num_classes(ds), c->num_classes);
    return DFN_OK;
}

#define LOG_HEADER "step,loss,val_loss,lr,grad_norm,img_per_s,seconds\n"

dfn_status dfn_train_open_log(FILE **out, const char *path, long resume_step) {
    *out = NULL;
    if (resume_step >= 0) {
        /* keep the header and the rows up to the resumed step */
        char *old = dfn_read_text_file(path);
        if (!old) old = strdup(LOG_HEADER);
        size_t cap = strlen(old) + 1, len = 0;
        char *kept = dfn_malloc(cap);
        kept[0] = 0;
        for (char *line = old, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next) *next++ = 0;
            char *end;
            long step = strtol(line, &end, 10);
            if (line == old || (end != line && *end == ',' && step <= resume_step))
                len += (size_t)snprintf(kept + len, cap - len, "%s\n", line);
        }
        free(old);
        dfn_status st = dfn_write_text_file(path, kept);
        free(kept);
        if (st) return st;
    } else {
        dfn_status st = dfn_write_text_file(path, LOG_HEADER);
        if (st) return st;
    }
    *out = fopen(path, "a");
    if (!*out) return dfn_set_error(DFN_ERR_IO, "%s: cannot open for appending: %s", path, strerror(errno));
    return DFN_OK;
}

dfn_status dfn_train_plot_log(const char *csv_path, const char *png_path) {
    char *text = dfn_read_text_file(csv_path);
    if (!text) return dfn_set_error(DFN_ERR_IO, "%s: cannot read the training log", csv_path);
    size_t cap = 1024, n = 0, nv = 0;
    float *step = dfn_malloc(cap * sizeof(float)), *loss = dfn_malloc(cap * sizeof(float));
    float *vstep = dfn_malloc(cap * sizeof(float)), *vloss = dfn_malloc(cap * sizeof(float));
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        char *p = line + 1, *end;
        double s = strtod(p, &end);
        if (*end != ',') continue;
        double l = strtod(end + 1, &p);
        if (*p != ',') continue;
        double v = p[1] == ',' ? NAN : strtod(p + 1, NULL);
        if (n == cap) {
            cap *= 2;
            step = realloc(step, cap * sizeof(float));
            loss = realloc(loss, cap * sizeof(float));
            vstep = realloc(vstep, cap * sizeof(float));
            vloss = realloc(vloss, cap * sizeof(float));
            DFN_ASSERT(step && loss && vstep && vloss);
        }
        step[n] = (float)s;
        loss[n++] = (float)l;
        if (!isnan(v)) {
            vstep[nv] = (float)s;
            vloss[nv++] = (float)v;
        }
    }
    dfn_plot *plot = dfn_plot_new(800, 500);
    dfn_plot_labels(plot, "training loss", "step", "loss");
    dfn_plot_log_y(plot, 1);
    dfn_plot_line(plot, step, loss, (int)n, "train");
    if (nv > 0) dfn_plot_line(plot, vstep, vloss, (int)nv, "validation (EMA)");
    dfn_status st = dfn_plot_save(plot, png_path);
    dfn_plot_free(plot);
    free(step); free(loss); free(vstep); free(vloss); free(text);
    return st;
}

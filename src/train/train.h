/* train.h - the trainer's internal pieces (run directory, log, previews). */
#ifndef DFN_TRAIN_H
#define DFN_TRAIN_H

#include <stdio.h>

#include "diffusion.h"

/* Learning rate and EMA decay at step k (1-based). */
double dfn_train_lr(const dfn_train_params *p, long k);
float dfn_train_ema_decay(const dfn_train_params *p, long k);

/* The run's config.json: {"model", "process", "objective", "train"}. */
char *dfn_train_run_json(const dfn_train_params *p, const char *model_json,
                         const char *process_json, const char *objective_json);
/* Two config.json texts describe the same run (everything equal except
 * train.steps, which a resumed run may raise). */
int dfn_run_configs_match(const char *a, const char *b);

/* The dataset fits the model (shape, labels) and holds at least min_count samples. */
dfn_status dfn_train_check_data(const dfn_model *model, const dfn_dataset *ds, int min_count,
                                const char *what);

/* Opens log.csv for appending. resume_step < 0: a new log with its header;
 * otherwise the rows after resume_step (written after the last checkpoint of
 * an interrupted run) are dropped first. */
dfn_status dfn_train_open_log(FILE **out, const char *path, long resume_step);
/* loss.png from log.csv: training loss and validation loss against step. */
dfn_status dfn_train_plot_log(const char *csv_path, const char *png_path);

/* Sample previews from the EMA weights: images -> "<prefix>.png" (a grid),
 * 2-D vectors -> a scatter over the data, other vectors -> a line plot. */
dfn_status dfn_train_preview(dfn_model *model, const float *ema, const dfn_dataset *data,
                             const dfn_train_params *p, const dfn_schedule *schedule,
                             const char *prefix);

/* mkdir -p. */
dfn_status dfn_make_dir(const char *path);

/* Whole small text files; write is atomic (temp + rename). */
char *dfn_read_text_file(const char *path);
dfn_status dfn_write_text_file(const char *path, const char *text);

#endif

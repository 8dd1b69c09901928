/* model_source.h - a checkpoint as a denoiser: the model, the noise process and
 * the objective it was trained with (its metadata), for sample and eval. */
#ifndef DFN_MODEL_SOURCE_H
#define DFN_MODEL_SOURCE_H

#include "diffusion.h"

typedef struct {
    dfn_model *model;
    dfn_schedule schedule; /* discrete processes */
    dfn_process_params process;
    dfn_objective objective;
    dfn_denoiser denoiser;
    size_t dim;            /* values per sample */
    int image;             /* a U-Net */
} dfn_cli_model;

/* Loads path; a checkpoint without process metadata is taken as DDPM's linear
 * schedule (T = 1000, eps), with a note on stderr unless quiet. batch: rows per
 * network call. */
dfn_status dfn_cli_model_load(dfn_cli_model *m, const char *path, int batch, int quiet);
void dfn_cli_model_free(dfn_cli_model *m);

#endif

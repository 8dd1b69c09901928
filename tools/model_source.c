/* model_source.c - see model_source.h. */
#include <string.h>

#include "core.h"
#include "io/safetensors.h"
#include "model_source.h"

dfn_status dfn_cli_model_load(dfn_cli_model *m, const char *path, int batch, int quiet) {
    memset(m, 0, sizeof *m);
    m->objective = dfn_objective_init();
    dfn_st_file *f = NULL;
    dfn_status st;
    if ((st = dfn_model_load(&m->model, path)) || (st = dfn_st_open(&f, path))) goto fail;
    const char *pj = dfn_st_metadata(f, "process"), *oj = dfn_st_metadata(f, "objective");
    if (pj) {
        if ((st = dfn_process_from_json(&m->process, &m->schedule, pj))) {
            st = dfn_set_error(st, "%s: process metadata: %s", path, dfn_last_error());
            goto fail;
        }
    } else {
        m->process = dfn_process_params_init();
        if ((st = dfn_schedule_init(&m->schedule, &m->process.schedule))) goto fail;
        if (!quiet)
            fprintf(stderr, "note: %s has no process metadata; assuming DDPM's linear schedule, T = 1000, "
                            "eps prediction\n", path);
    }
    if (oj && (st = dfn_objective_from_json(&m->objective, oj))) {
        st = dfn_set_error(st, "%s: objective metadata: %s", path, dfn_last_error());
        goto fail;
    }
    dfn_st_close(f);
    f = NULL;
    const dfn_model_config *cfg = dfn_model_get_config(m->model);
    m->image = cfg->kind == DFN_MODEL_UNET;
    m->dim = m->image ? (size_t)cfg->in_channels * cfg->resolution * cfg->resolution : (size_t)cfg->dim;
    int cont = m->process.continuous;
    dfn_model_denoiser(&m->denoiser, m->model, m->objective.prediction, cont ? NULL : &m->schedule,
                       cont ? &m->process.sde : NULL, batch, cont ? m->process.time_scale : 1.0);
    if ((st = dfn_denoiser_validate(&m->denoiser))) goto fail;
    return DFN_OK;
fail:
    dfn_st_close(f);
    dfn_cli_model_free(m);
    return st;
}

void dfn_cli_model_free(dfn_cli_model *m) {
    dfn_model_free(m->model);
    dfn_schedule_free(&m->schedule);
    memset(m, 0, sizeof *m);
}

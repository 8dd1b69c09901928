/* process_json.c - the noise process a model was trained on, as JSON, for
 * checkpoint metadata and run directories (cJSON). */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "core/core.h"
#include "diffusion/process.h"

dfn_process_params dfn_process_params_init(void) {
    dfn_process_params p;
    memset(&p, 0, sizeof p);
    p.continuous = 0;
    p.schedule = dfn_schedule_params_init(DFN_BETA_LINEAR);
    p.sde = dfn_sde_init(DFN_SDE_VP);
    p.t_min = 1e-5;
    p.time_scale = 1000.0;
    return p;
}

char *dfn_process_to_json(const dfn_process_params *p, const dfn_schedule *s) {
    cJSON *o = cJSON_CreateObject();
    if (!p->continuous) {
        DFN_ASSERT(s);
        cJSON_AddStringToObject(o, "type", "discrete");
        cJSON_AddStringToObject(o, "schedule", dfn_beta_kind_name(p->schedule.kind));
        cJSON_AddNumberToObject(o, "T", s->T);
        /* the parameters that made the betas (to set up the same process again),
         * then the betas themselves (to sample without them) */
        if (p->schedule.kind != DFN_BETA_FILE) {
            cJSON_AddNumberToObject(o, "beta_start", p->schedule.beta_start);
            cJSON_AddNumberToObject(o, "beta_end", p->schedule.beta_end);
            cJSON_AddNumberToObject(o, "cosine_s", p->schedule.cosine_s);
            cJSON_AddNumberToObject(o, "max_beta", p->schedule.max_beta);
        }
        cJSON *betas = cJSON_AddArrayToObject(o, "betas");
        for (int i = 0; i < s->T; i++) cJSON_AddItemToArray(betas, cJSON_CreateNumber(s->beta[i]));
    } else {
        cJSON_AddStringToObject(o, "type", "continuous");
        cJSON_AddStringToObject(o, "sde", dfn_sde_kind_name(p->sde.kind));
        cJSON_AddNumberToObject(o, "beta_min", p->sde.beta_min);
        cJSON_AddNumberToObject(o, "beta_max", p->sde.beta_max);
        cJSON_AddNumberToObject(o, "sigma_min", p->sde.sigma_min);
        cJSON_AddNumberToObject(o, "sigma_max", p->sde.sigma_max);
        cJSON_AddNumberToObject(o, "t_min", p->t_min);
        cJSON_AddNumberToObject(o, "time_scale", p->time_scale);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    DFN_ASSERT(text);
    return text;
}

/* A finite number under key (1), or nothing there or not one (0: JSON has no
 * Inf or NaN, but cJSON reads 1e999 as Inf). */
static int get_number(const cJSON *o, const char *key, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return 0;
    *out = v->valuedouble;
    return 1;
}

dfn_status dfn_process_from_json(dfn_process_params *p, dfn_schedule *s, const char *json) {
    *p = dfn_process_params_init();
    dfn_status st = DFN_OK;
    cJSON *o = cJSON_Parse(json);
    if (!o) return dfn_set_error(DFN_ERR_FORMAT, "process: not valid JSON");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (!cJSON_IsString(type)) {
        st = dfn_set_error(DFN_ERR_FORMAT, "process: missing \"type\"");
    } else if (!strcmp(type->valuestring, "discrete")) {
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "schedule");
        const cJSON *betas = cJSON_GetObjectItemCaseSensitive(o, "betas");
        int T = cJSON_GetArraySize(betas);
        if (!cJSON_IsArray(betas) || T < 1) {
            st = dfn_set_error(DFN_ERR_FORMAT, "process: a discrete process needs its \"betas\"");
            goto done;
        }
        double *b = dfn_malloc((size_t)T * sizeof(double));
        int i = 0;
        const cJSON *item;
        cJSON_ArrayForEach(item, betas) {
            if (!cJSON_IsNumber(item)) break;
            b[i++] = item->valuedouble;
        }
        if (i != T) st = dfn_set_error(DFN_ERR_FORMAT, "process: betas[%d] is not a number", i);
        else st = dfn_schedule_from_betas(s, b, T);
        free(b);
        if (st) goto done;
        int k = cJSON_IsString(kind) ? dfn_beta_kind_from_name(kind->valuestring) : -1;
        p->schedule = dfn_schedule_params_init(k >= 0 ? (dfn_beta_kind)k : DFN_BETA_FILE);
        s->kind = p->schedule.kind;
        p->schedule.T = T;
        get_number(o, "beta_start", &p->schedule.beta_start); /* absent in older files */
        get_number(o, "beta_end", &p->schedule.beta_end);
        get_number(o, "cosine_s", &p->schedule.cosine_s);
        get_number(o, "max_beta", &p->schedule.max_beta);
    } else if (!strcmp(type->valuestring, "continuous")) {
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "sde");
        int k = cJSON_IsString(kind) ? dfn_sde_kind_from_name(kind->valuestring) : -1;
        if (k < 0) {
            st = dfn_set_error(DFN_ERR_FORMAT, "process: unknown or missing \"sde\"");
            goto done;
        }
        p->continuous = 1;
        p->sde = dfn_sde_init((dfn_sde_kind)k);
        if (!get_number(o, "beta_min", &p->sde.beta_min) || !get_number(o, "beta_max", &p->sde.beta_max) ||
            !get_number(o, "sigma_min", &p->sde.sigma_min) || !get_number(o, "sigma_max", &p->sde.sigma_max) ||
            !get_number(o, "t_min", &p->t_min) || !get_number(o, "time_scale", &p->time_scale)) {
            st = dfn_set_error(DFN_ERR_FORMAT, "process: a continuous process needs beta_min, beta_max, "
                                               "sigma_min, sigma_max, t_min and time_scale");
            goto done;
        }
        if (!(p->t_min >= 0 && p->t_min < 1) || !(p->time_scale > 0)) {
            st = dfn_set_error(DFN_ERR_FORMAT, "process: t_min = %g must be in [0, 1) and time_scale = %g "
                               "positive", p->t_min, p->time_scale);
            goto done;
        }
        st = dfn_sde_validate(&p->sde);
    } else {
        st = dfn_set_error(DFN_ERR_FORMAT, "process: unknown type '%s' (discrete or continuous)", type->valuestring);
    }
done:
    cJSON_Delete(o);
    return st;
}

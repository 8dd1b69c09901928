/* fuzz_config.c - the JSON in checkpoint metadata: the model config
 * (src/models/config_json.c), the process (src/process/process_json.c) and
 * the objective (src/train/objective.c). What parses must print back to text
 * that parses to the same thing. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;

    dfn_model_config c, back;
    if (dfn_model_config_from_json(&c, text) == DFN_OK) {
        char *json = dfn_model_config_to_json(&c);
        FUZZ_ASSERT(dfn_model_config_from_json(&back, json) == DFN_OK, "%s reads back: %s", json, dfn_last_error());
        char *again = dfn_model_config_to_json(&back);
        FUZZ_ASSERT(!strcmp(json, again), "%s prints back as %s", json, again);
        free(json);
        free(again);
    }

    dfn_process_params p;
    dfn_schedule s;
    memset(&s, 0, sizeof s);
    if (dfn_process_from_json(&p, &s, text) == DFN_OK) {
        char *json = dfn_process_to_json(&p, p.continuous ? NULL : &s);
        dfn_process_params q;
        dfn_schedule s2;
        memset(&s2, 0, sizeof s2);
        FUZZ_ASSERT(dfn_process_from_json(&q, &s2, json) == DFN_OK, "%s reads back: %s", json, dfn_last_error());
        FUZZ_ASSERT(q.continuous == p.continuous, "the same kind of process");
        dfn_schedule_free(&s2);
        free(json);
    }
    dfn_schedule_free(&s);

    dfn_objective o;
    if (dfn_objective_from_json(&o, text) == DFN_OK) {
        char *json = dfn_objective_to_json(&o);
        dfn_objective o2;
        FUZZ_ASSERT(dfn_objective_from_json(&o2, json) == DFN_OK, "%s reads back", json);
        FUZZ_ASSERT(o2.prediction == o.prediction && o2.weighting == o.weighting, "%s", json);
        free(json);
    }
    free(text);
    return 0;
}

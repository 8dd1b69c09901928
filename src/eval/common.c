/* common.c - helpers of src/eval: name lookup with a helpful message, finiteness. */
#include <math.h>
#include <string.h>

#include "eval.h"

int dfn_eval_lookup(const char *what, const char *name, const char *const *names, int count) {
    for (int i = 0; name && i < count; i++)
        if (!strcmp(name, names[i])) return i;
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; i < count && len < sizeof(list); i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", names[i]);
    dfn_set_error(DFN_ERR_ARG, "unknown %s '%s' (known: %s)", what, name ? name : "(null)", list);
    return -1;
}

dfn_status dfn_eval_check_finite(const char *what, const float *x, size_t n, size_t dim) {
    for (size_t i = 0; i < n * dim; i++)
        if (!isfinite(x[i]))
            return dfn_set_error(DFN_ERR_NUMERIC, "%s: row %zu column %zu is %g", what, i / dim,
                                 i % dim, (double)x[i]);
    return DFN_OK;
}

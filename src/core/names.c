/* names.c - the one way to map enum values to names and back (see core.h). */
#include <string.h>

#include "core/core.h"

const char *dfn_name_of(const char *const *names, int count, int i) {
    return i >= 0 && i < count && names[i] ? names[i] : "unknown";
}

int dfn_name_lookup(const char *what, const char *name, const char *const *names, int count,
                    const dfn_name_alias *aliases) {
    DFN_ASSERT(what && names && count >= 0);
    if (name) {
        for (int i = 0; i < count; i++)
            if (names[i] && !strcmp(name, names[i])) return i;
        for (const dfn_name_alias *a = aliases; a && a->name; a++)
            if (!strcmp(name, a->name)) return a->value;
    }
    dfn_buf known = {0};
    for (int i = 0; i < count; i++)
        if (names[i]) dfn_buf_printf(&known, "%s%s", known.len ? ", " : "", names[i]);
    dfn_set_error(DFN_ERR_ARG, "unknown %s '%s' (known: %s)", what, name ? name : "(null)",
                  known.data ? known.data : "");
    dfn_buf_free(&known);
    return -1;
}

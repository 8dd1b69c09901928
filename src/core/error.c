/* error.c - status names and the per-thread last-error message. */
#include <stdarg.h>
#include <stdio.h>

#include "core.h"

static _Thread_local char last_error[1024];

static const char *const status_names[] = {
    "ok", "bad argument", "I/O error", "bad file format", "bad configuration",
    "non-finite numbers",
};
_Static_assert(sizeof(status_names) / sizeof(status_names[0]) == DFN_STATUS_COUNT,
               "status_names must name every dfn_status");

const char *dfn_status_name(dfn_status status) {
    if ((int)status < 0 || status >= DFN_STATUS_COUNT) return "unknown status";
    return status_names[status];
}

const char *dfn_last_error(void) { return last_error; }

const char *dfn_version(void) { return DFN_VERSION; }

dfn_status dfn_set_error(dfn_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

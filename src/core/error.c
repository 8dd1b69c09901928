/* error.c - status names and the per-thread last-error message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

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

/* Formats into a local buffer first, so that a message may quote the previous
 * one: dfn_set_error(st, "%s: %s", path, dfn_last_error()). */
dfn_status dfn_set_error(dfn_status status, const char *fmt, ...) {
    char buf[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(last_error, buf, sizeof last_error);
    return status;
}

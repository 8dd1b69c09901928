/* progress.h - what a long run shows while it works: a bar with an ETA on a
 * terminal, or plain lines when the output goes to a file or a pipe. The
 * trainer and the sampling commands share it. */
#ifndef DFN_PROGRESS_H
#define DFN_PROGRESS_H

#include <stdarg.h>

#include "core/core.h"

typedef struct {
    int bar;      /* draw a bar on stderr (a terminal) */
    int lines;    /* print plain lines on stdout instead */
    int drawn;    /* a bar is on the screen (end it with a newline) */
    double start; /* dfn_now_seconds() at init */
} dfn_progress;

/* want: -1 a bar on a terminal and plain lines otherwise, 0 nothing, 1 a bar
 * on a terminal and nothing otherwise. */
void dfn_progress_init(dfn_progress *pr, int want);
/* done of total units finished; the printf-style text follows the counts:
 * "[#####.....] 40/100 loss 0.12 ETA 01:30" on a terminal, or
 * "step 40/100 loss 0.12 eta 90s" as a line. */
void dfn_progress_update(dfn_progress *pr, long done, long total, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Ends a bar on the screen with a newline (before other output). */
void dfn_progress_end(dfn_progress *pr);

#endif

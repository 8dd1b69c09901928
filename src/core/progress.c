/* progress.c - a progress bar on a terminal, plain lines elsewhere (see progress.h). */
#include <stdio.h>
#include <unistd.h>

#include "core/progress.h"

void dfn_progress_init(dfn_progress *pr, int want) {
    pr->bar = want != 0 && isatty(STDERR_FILENO);
    pr->lines = want < 0 && !pr->bar;
    pr->drawn = 0;
    pr->start = dfn_now_seconds();
}

void dfn_progress_update(dfn_progress *pr, long done, long total, const char *fmt, ...) {
    if (!pr->bar && !pr->lines) return;
    char text[256] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
    }
    double elapsed = dfn_now_seconds() - pr->start;
    double eta = done > 0 && total > done ? elapsed / done * (total - done) : 0;
    if (pr->bar) {
        enum { WIDTH = 30 };
        char bar[WIDTH + 1];
        int fill = total > 0 ? (int)(WIDTH * (double)done / total) : WIDTH;
        for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = 0;
        fprintf(stderr, "\r[%s] %ld/%ld %s ETA %02d:%02d  ", bar, done, total, text,
                (int)(eta / 60), (int)eta % 60);
        fflush(stderr);
        pr->drawn = 1;
    } else {
        printf("step %ld/%ld %s eta %.0fs\n", done, total, text, eta);
        fflush(stdout);
    }
}

void dfn_progress_end(dfn_progress *pr) {
    if (pr->drawn) fprintf(stderr, "\n");
    pr->drawn = 0;
}

/* profile.c - where the time goes: wall-clock seconds per kind of layer call,
 * collected when enabled (dfn_profile_enable) and printed by dfn_profile_report.
 * Off by default; the cost when off is one branch per layer call. */
#include <string.h>

#include "core/core.h"

int dfn_prof_on;
double dfn_prof_seconds[DFN_PROF_COUNT];
long dfn_prof_calls[DFN_PROF_COUNT];

static const char *const prof_names[] = {
    "conv2d forward", "conv2d backward", "groupnorm(+silu) forward", "groupnorm(+silu) backward",
    "attention forward", "attention backward", "linear (time embedding)", "elementwise and copies",
    "optimizer (AdamW, clipping, EMA)",
};
_Static_assert(sizeof prof_names / sizeof prof_names[0] == DFN_PROF_COUNT, "a name per profile slot");


void dfn_profile_enable(int on) { dfn_prof_on = on; }

void dfn_profile_reset(void) {
    memset(dfn_prof_seconds, 0, sizeof dfn_prof_seconds);
    memset(dfn_prof_calls, 0, sizeof dfn_prof_calls);
}

void dfn_profile_report(FILE *f, double divide_by) {
    double total = 0;
    for (int i = 0; i < DFN_PROF_COUNT; i++) total += dfn_prof_seconds[i];
    for (int i = 0; i < DFN_PROF_COUNT; i++)
        if (dfn_prof_calls[i])
            fprintf(f, "  %-34s %9.1f ms %5.1f%%  (%ld calls)\n", prof_names[i],
                    1e3 * dfn_prof_seconds[i] / divide_by, total > 0 ? 100 * dfn_prof_seconds[i] / total : 0,
                    (long)(dfn_prof_calls[i] / divide_by));
    fprintf(f, "  %-34s %9.1f ms\n", "total (timed layers)", 1e3 * total / divide_by);
}

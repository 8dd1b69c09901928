/* fuzz_betas.c - a file of betas (`--schedule file:PATH`, dfn_read_betas in
 * src/process/schedule.c), then the schedule built from them. */
#include <math.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_file("betas.txt", data, size);
    double *betas = NULL;
    int T = 0;
    if (dfn_read_betas(&betas, &T, path) != DFN_OK) {
        FUZZ_ASSERT(!betas && strstr(dfn_last_error(), "betas.txt"), "the message names the file: %s",
                    dfn_last_error());
        return 0;
    }
    FUZZ_ASSERT(T >= 1 && (size_t)T <= size, "%d betas from %zu bytes", T, size);
    dfn_schedule s;
    memset(&s, 0, sizeof s);
    if (dfn_schedule_from_betas(&s, betas, T) == DFN_OK) {
        for (int t = 0; t < T; t++) {
            double a, sg;
            dfn_schedule_alpha_sigma(&s, t, &a, &sg);
            FUZZ_ASSERT(isfinite(a) && isfinite(sg), "alpha, sigma finite at %d", t);
        }
    }
    dfn_schedule_free(&s);
    free(betas);
    return 0;
}

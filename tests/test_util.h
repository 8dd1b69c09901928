/* test_util.h - the checks every test file uses.
 *
 * CHECK(cond, ...) records a failure with a message and goes on; check_tensor()
 * compares two arrays and reports the max abs and relative error and the first
 * mismatches; TEST_MAIN_END prints "N passed, N failed" and returns non-zero on
 * any failure. Relative error of a tensor is max|a-b| / max(max|b|, tiny):
 * the worst element measured against the tensor's scale (an inf-norm relative
 * error), so tiny elements of a large tensor do not dominate. */
#ifndef DFN_TEST_UTIL_H
#define DFN_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/core.h"
#include "diffusion.h"

static int test_passed, test_failed;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) {                                                             \
            test_passed++;                                                      \
        } else {                                                                \
            test_failed++;                                                      \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
        }                                                                       \
    } while (0)

/* Inf-norm relative error of a against reference b. */
static inline double rel_error(const float *a, const float *b, size_t n) {
    double maxdiff = 0, maxref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= maxdiff)) maxdiff = d; /* NaN propagates as a failure */
        if (fabs((double)b[i]) > maxref) maxref = fabs((double)b[i]);
    }
    return maxdiff / (maxref > 1e-30 ? maxref : 1e-30);
}

/* Compares a (computed) with b (reference); passes if rel_error <= tol.
 * Prints a one-line summary always when verbose, and the first mismatches on failure. */
static inline int check_tensor(const char *name, const float *a, const float *b, size_t n,
                               double tol) {
    double err = rel_error(a, b, n);
    int ok = err <= tol; /* false for NaN */
    if (ok) {
        test_passed++;
    } else {
        test_failed++;
        double maxref = 0;
        for (size_t i = 0; i < n; i++)
            if (fabs(b[i]) > maxref) maxref = fabs(b[i]);
        fprintf(stderr, "FAIL tensor %s (n=%zu): rel error %.3e > %.1e\n", name, n, err, tol);
        int shown = 0;
        for (size_t i = 0; i < n && shown < 5; i++) {
            if (!(fabs((double)a[i] - b[i]) <= tol * maxref)) {
                fprintf(stderr, "  [%zu] got %.8g want %.8g\n", i, a[i], b[i]);
                shown++;
            }
        }
    }
    return ok;
}

/* Deterministic test data: a small LCG, uniform in [-1, 1). */
static inline void fill_uniform(float *x, size_t n, unsigned seed) {
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)((s >> 8) * (1.0 / 16777216.0) * 2.0 - 1.0);
    }
}

/* The diffusion program under test (ctest sets DFN_BIN); without it the test
 * is skipped (exit 77, which ctest reports as skipped). */
static inline const char *test_program(void) {
    const char *bin = getenv("DFN_BIN");
    if (!bin) {
        printf("SKIPPED: DFN_BIN (the diffusion program) is not set; run through ctest\n");
        exit(77);
    }
    return bin;
}

/* Runs the shell command `cmd`, its stdout into out (n bytes, NUL-terminated,
 * the rest dropped); returns the exit code, -1 for a signal, -2 if it did not run. */
static inline int test_run_command(const char *cmd, char *out, size_t n) {
    FILE *p = popen(cmd, "r");
    if (!p) return -2;
    size_t len = fread(out, 1, n - 1, p);
    out[len] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define TEST_MAIN_END()                                                         \
    do {                                                                        \
        printf("%s: %d passed, %d failed\n", __FILE__, test_passed, test_failed); \
        return test_failed ? 1 : 0;                                             \
    } while (0)

#endif

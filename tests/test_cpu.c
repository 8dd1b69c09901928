/* test_cpu.c - the instruction-set levels: names and their table, what this CPU
 * supports, dfn_set_isa / dfn_get_isa, and the DFN_ISA variable as the program
 * reads it (`diffusion --version` names the level in use). */
#include <string.h>

#include "core/core.h"
#include "test_util.h"

/* Runs `DFN_ISA=value bin --version`; stdout and stderr into out; the exit code. */
static int version_with(const char *bin, const char *value, char *out, size_t n) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "DFN_ISA='%s' %s --version 2>&1", value, bin);
    return test_run_command(cmd, out, n);
}

static void names_round_trip(void) {
    for (int k = 0; k < DFN_ISA_COUNT; k++)
        CHECK(dfn_isa_from_name(dfn_isa_name((dfn_isa)k)) == k, "name of level %d: %s", k, dfn_isa_name((dfn_isa)k));
    CHECK(!strcmp(dfn_isa_name(DFN_ISA_GENERIC), "generic") && !strcmp(dfn_isa_name(DFN_ISA_AVX2), "avx2") &&
              !strcmp(dfn_isa_name(DFN_ISA_AVX512), "avx512"),
          "level names");
    CHECK(!strcmp(dfn_isa_name(DFN_ISA_COUNT), "unknown"), "out-of-range name");
    CHECK(dfn_isa_from_name("sse9") == -1 && strstr(dfn_last_error(), "sse9") &&
              strstr(dfn_last_error(), "avx512"),
          "unknown name: %s", dfn_last_error());
}

static void set_and_get_every_supported_level(void) {
    const dfn_isa best = dfn_cpu_isa(), start = dfn_get_isa();
    printf("this CPU supports up to %s; in use: %s\n", dfn_isa_name(best), dfn_isa_name(start));
    CHECK(best >= DFN_ISA_GENERIC && best < DFN_ISA_COUNT, "dfn_cpu_isa() = %d", (int)best);
    for (int k = 0; k <= (int)best; k++) {
        CHECK(dfn_set_isa((dfn_isa)k) == DFN_OK && dfn_get_isa() == (dfn_isa)k, "set %s", dfn_isa_name((dfn_isa)k));
    }
    for (int k = best + 1; k < DFN_ISA_COUNT; k++) { /* levels above the CPU's are refused */
        CHECK(dfn_set_isa((dfn_isa)k) == DFN_ERR_ARG && strstr(dfn_last_error(), dfn_isa_name((dfn_isa)k)),
              "set %s on a CPU without it: %s", dfn_isa_name((dfn_isa)k), dfn_last_error());
    }
    const dfn_isa before = dfn_get_isa();
    CHECK(dfn_set_isa(DFN_ISA_COUNT) == DFN_ERR_ARG && dfn_get_isa() == before, "DFN_ISA_COUNT refused");
    CHECK(dfn_set_isa((dfn_isa)-1) == DFN_ERR_ARG && dfn_get_isa() == before, "-1 refused");
    dfn_set_isa(start);
}

static void environment_variable_picks_the_level(void) {
    const char *bin = getenv("DFN_BIN");
    if (!bin) {
        printf("  (DFN_BIN not set: the DFN_ISA checks through the program are skipped)\n");
        return;
    }
    char out[4096], want[128];
    const char *best = dfn_isa_name(dfn_cpu_isa());
    for (int k = 0; k <= (int)dfn_cpu_isa(); k++) {
        CHECK(version_with(bin, dfn_isa_name((dfn_isa)k), out, sizeof out) == 0, "--version: %s", out);
        snprintf(want, sizeof want, "(kernels: %s; this CPU: %s", dfn_isa_name((dfn_isa)k), best);
        CHECK(strstr(out, want) && !strstr(out, "DFN_ISA"), "DFN_ISA=%s: %s", dfn_isa_name((dfn_isa)k), out);
    }
    /* whether the CPU has bfloat16 products (--precision bf16) */
    CHECK(version_with(bin, best, out, sizeof out) == 0 &&
              strstr(out, dfn_cpu_has_bf16() ? "bfloat16: yes" : "bfloat16: no"),
          "--version names bfloat16 as the CPU has it (%d): %s", dfn_cpu_has_bf16(), out);
    if (dfn_cpu_has_bf16())
        CHECK(version_with(bin, "avx2", out, sizeof out) == 0 && strstr(out, "bfloat16: no (it needs the avx512"),
              "DFN_ISA=avx2: no bfloat16: %s", out);
    /* an unknown value: one warning that names it and the level used instead */
    CHECK(version_with(bin, "avx1024", out, sizeof out) == 0, "--version with a bad DFN_ISA: %s", out);
    snprintf(want, sizeof want, "using %s", best);
    CHECK(strstr(out, "DFN_ISA=avx1024") && strstr(out, want), "DFN_ISA=avx1024: %s", out);
    if (dfn_cpu_isa() < DFN_ISA_AVX512) { /* a level this CPU cannot run */
        CHECK(version_with(bin, "avx512", out, sizeof out) == 0 && strstr(out, "DFN_ISA=avx512") &&
                  strstr(out, want),
              "DFN_ISA=avx512 on a CPU without it: %s", out);
    }
    printf("  %s", out);
}

int main(void) {
    names_round_trip();
    set_and_get_every_supported_level();
    environment_variable_picks_the_level();
    TEST_MAIN_END();
}

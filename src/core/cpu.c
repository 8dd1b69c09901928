/* cpu.c - which instruction-set level the kernels use.
 *
 * Levels: generic (portable C, any CPU and architecture), avx2 (x86-64 with
 * AVX2, FMA, BMI1/2, F16C) and avx512 (avx2 plus AVX-512 F/DQ/BW/VL), the same
 * feature sets that CMakeLists.txt compiles each level's kernels for; and amx,
 * the avx512 kernels with bfloat16 products in AMX tiles, where the CPU has
 * AVX512_BF16, AMX-TILE and AMX-BF16 and Linux grants the process the tiles'
 * state (arch_prctl ARCH_REQ_XCOMP_PERM; asked once, at the first check). The level
 * in use is the best the CPU supports unless the environment variable DFN_ISA
 * names another; it is read once, at the first call that needs the level. A
 * value that is no level, or one this CPU cannot run, gives a one-line warning
 * on stderr and the best level instead.
 *
 * oneDNN's sgemm (dfn_gemm) is capped to the level at the same moment, before
 * its first call, so that a level's speed is the speed of that instruction set
 * alone: AVX2 for avx2, SSE4.1 for generic on x86. oneDNN takes a cap only
 * before it has generated code, so dfn_set_isa switches our kernels and leaves
 * oneDNN at the level of the first use. */
#define _DEFAULT_SOURCE /* syscall */
#include <dnnl.h>
#include <pthread.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "core/core.h"
#include "core/cpu.h"

static const char *const isa_names[] = {"generic", "avx2", "avx512", "amx"};
_Static_assert(sizeof isa_names / sizeof isa_names[0] == DFN_ISA_COUNT,
               "isa_names must name every dfn_isa");

const char *dfn_isa_name(dfn_isa isa) {
    if ((int)isa < 0 || isa >= DFN_ISA_COUNT) return "unknown";
    return isa_names[isa];
}

static int isa_lookup(const char *name) {
    for (int k = 0; k < DFN_ISA_COUNT; k++)
        if (!strcmp(name, isa_names[k])) return k;
    return -1;
}

int dfn_isa_from_name(const char *name) {
    DFN_ASSERT(name != NULL);
    const int k = isa_lookup(name);
    if (k < 0)
        dfn_set_error(DFN_ERR_ARG, "unknown instruction set '%s' (known: generic, avx2, avx512, amx)", name);
    return k;
}

#if defined(__x86_64__)
/* F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports has no name for it. */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

/* AMX-TILE and AMX-BF16 (CPUID leaf 7: EDX bits 24 and 22), the tiles' state
 * enabled by the OS (XCR0 bits 17 and 18), and Linux's permission for this
 * process to use it (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), which
 * a kernel before 5.16, or valgrind, refuses: no amx then). Asked once. */
static int amx_granted = -1;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static void amx_request(void) {
    int ok = 0;
#if defined(__linux__)
    unsigned a, b, c, d;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d >> 24 & 1) && (d >> 22 & 1) && (c >> 27 & 1)) {
        unsigned lo, hi; /* xgetbv(0), OSXSAVE (CPUID.1:ECX bit 27) checked above */
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        const long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
        ok = (lo >> 17 & 3) == 3 && syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
    }
#endif
    __atomic_store_n(&amx_granted, ok, __ATOMIC_RELEASE);
}

static int cpu_has_amx(void) {
    pthread_once(&amx_once, amx_request);
    return __atomic_load_n(&amx_granted, __ATOMIC_ACQUIRE);
}
#endif

int dfn_cpu_supports(dfn_isa isa) {
    if (isa == DFN_ISA_GENERIC) return 1;
#if defined(__x86_64__)
    __builtin_cpu_init(); /* the checks below include the OS's support of the registers */
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                     __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") && cpu_has_f16c();
    if (isa == DFN_ISA_AVX2) return avx2;
    const int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    if (isa == DFN_ISA_AVX512) return avx512;
    if (isa == DFN_ISA_AMX) return avx512 && dfn_cpu_has_bf16() && cpu_has_amx();
#endif
    return 0;
}

dfn_isa dfn_cpu_isa(void) {
    for (int k = DFN_ISA_COUNT - 1; k > 0; k--)
        if (dfn_cpu_supports((dfn_isa)k)) return (dfn_isa)k;
    return DFN_ISA_GENERIC;
}

static int isa_in_use = -1; /* a dfn_isa once isa_init has run; atomic accesses */
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;

/* Caps oneDNN to the instruction set of `isa` (x86 only; nothing for the best). */
static void cap_onednn(dfn_isa isa) {
#if defined(__x86_64__)
    if (isa >= DFN_ISA_AVX512 || isa == dfn_cpu_isa()) return; /* avx512: oneDNN's fp32 GEMM has no AMX */
    dnnl_set_max_cpu_isa(isa == DFN_ISA_AVX2 ? dnnl_cpu_isa_avx2 : dnnl_cpu_isa_sse41);
#else
    (void)isa;
#endif
}

static void isa_init(void) {
    const dfn_isa best = dfn_cpu_isa();
    dfn_isa use = best;
    const char *env = getenv("DFN_ISA");
    if (env && *env) {
        const int k = isa_lookup(env);
        if (k < 0)
            fprintf(stderr, "diffusion: DFN_ISA=%s is not an instruction set (generic, avx2, avx512, amx); using %s\n",
                    env, isa_names[best]);
        else if (!dfn_cpu_supports((dfn_isa)k))
            fprintf(stderr, "diffusion: DFN_ISA=%s: this CPU cannot run it; using %s\n", env,
                    isa_names[best]);
        else
            use = (dfn_isa)k;
    }
    cap_onednn(use);
    __atomic_store_n(&isa_in_use, (int)use, __ATOMIC_RELEASE);
}

dfn_isa dfn_get_isa(void) {
    int k = __atomic_load_n(&isa_in_use, __ATOMIC_ACQUIRE);
    if (k < 0) {
        pthread_once(&isa_once, isa_init);
        k = __atomic_load_n(&isa_in_use, __ATOMIC_ACQUIRE);
    }
    return (dfn_isa)k;
}

dfn_status dfn_set_isa(dfn_isa isa) {
    if ((int)isa < 0 || isa >= DFN_ISA_COUNT)
        return dfn_set_error(DFN_ERR_ARG, "dfn_set_isa: %d is not a dfn_isa", (int)isa);
    if (!dfn_cpu_supports(isa))
        return dfn_set_error(DFN_ERR_ARG, "dfn_set_isa: this CPU cannot run %s (it supports up to %s)",
                             isa_names[isa], isa_names[dfn_cpu_isa()]);
    if (isa < DFN_ISA_AVX512 && dfn_get_precision() == DFN_PRECISION_BF16)
        return dfn_set_error(DFN_ERR_ARG, "dfn_set_isa: bfloat16 products (dfn_set_precision) run in the avx512 "
                                          "and amx kernels only: set float32 first");
    (void)dfn_get_isa(); /* DFN_ISA and the oneDNN cap are settled first */
    __atomic_store_n(&isa_in_use, (int)isa, __ATOMIC_RELEASE);
    return DFN_OK;
}

/* precision.c - the arithmetic of the convolutions' products: float32 or
 * bfloat16 (diffusion/core.h).
 *
 * bfloat16 needs AVX512_BF16 (CPUID leaf 7, sub-leaf 1, EAX bit 5: Intel since
 * Cooper Lake, AMD since Zen 4) and the avx512 level in use, whose kernels hold
 * the bfloat16 tiles (src/nn/conv2d_panel.c); dfn_set_isa refuses another level
 * while bfloat16 is set. The setting is process-wide, as the instruction-set
 * level is; the convolutions read it at each call. */
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "core/core.h"
#include "core/cpu.h"

static const char *const precision_names[] = {"fp32", "bf16"};
_Static_assert(sizeof precision_names / sizeof precision_names[0] == DFN_PRECISION_COUNT,
               "precision_names must name every dfn_precision");

static int precision_in_use = DFN_PRECISION_FP32; /* atomic accesses */

const char *dfn_precision_name(dfn_precision p) {
    if ((int)p < 0 || p >= DFN_PRECISION_COUNT) return "unknown";
    return precision_names[p];
}

int dfn_precision_from_name(const char *name) {
    DFN_ASSERT(name != NULL);
    for (int k = 0; k < DFN_PRECISION_COUNT; k++)
        if (!strcmp(name, precision_names[k])) return k;
    dfn_set_error(DFN_ERR_ARG, "unknown precision '%s' (known: fp32, bf16)", name);
    return -1;
}

int dfn_cpu_has_bf16(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!dfn_cpu_supports(DFN_ISA_AVX512)) return 0;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
#else
    return 0;
#endif
}

dfn_precision dfn_get_precision(void) {
    return (dfn_precision)__atomic_load_n(&precision_in_use, __ATOMIC_ACQUIRE);
}

dfn_status dfn_precision_available(dfn_precision p) {
    if ((int)p < 0 || p >= DFN_PRECISION_COUNT)
        return dfn_set_error(DFN_ERR_ARG, "dfn_set_precision: %d is not a dfn_precision", (int)p);
    if (p == DFN_PRECISION_BF16 && !dfn_cpu_has_bf16())
        return dfn_set_error(DFN_ERR_ARG, "this CPU has no bfloat16 products (AVX512_BF16 with AVX-512 "
                                          "F/DQ/BW/VL)");
    if (p == DFN_PRECISION_BF16 && dfn_get_isa() < DFN_ISA_AVX512)
        return dfn_set_error(DFN_ERR_ARG, "bfloat16 products run in the avx512 and amx kernels, and the kernels in use "
                                          "are %s (DFN_ISA or dfn_set_isa)", dfn_isa_name(dfn_get_isa()));
    return DFN_OK;
}

dfn_status dfn_set_precision(dfn_precision p) {
    const dfn_status st = dfn_precision_available(p);
    if (st) return st;
    __atomic_store_n(&precision_in_use, (int)p, __ATOMIC_RELEASE);
    return DFN_OK;
}

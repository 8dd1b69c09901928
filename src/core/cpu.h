/* cpu.h - the instruction-set level of the kernels, inside the library.
 *
 * The public side (dfn_isa, dfn_get_isa, dfn_set_isa, dfn_cpu_isa, names) is in
 * diffusion.h. The layers of src/nn exist once per level (src/nn/kernels.h) and
 * ask dfn_get_isa() which to run; dfn_gemm asks too, so that oneDNN is capped to
 * the level before its first call. */
#ifndef DFN_CPU_H
#define DFN_CPU_H

#include "diffusion/core.h"

/* 1 if this CPU (and its operating system) can run the kernels of `isa`. */
int dfn_cpu_supports(dfn_isa isa);

#endif

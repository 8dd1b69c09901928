/* diffusion/core.h - what every part of libdiffusion shares: the version,
 * status codes and error messages, threads, profiling and the seeded random
 * generator. Included by <diffusion.h>; see there for the tutorial. */
#ifndef DIFFUSION_CORE_H
#define DIFFUSION_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Every public section of the header opens with DFN_BEGIN_DECLS and closes
 * with DFN_END_DECLS: C linkage for C++ callers, and default visibility for
 * what it declares (the library is built with -fvisibility=hidden, so that
 * only what these headers declare is exported from libdiffusion.so). */
#ifdef __cplusplus
#define DFN_EXTERN_C_BEGIN extern "C" {
#define DFN_EXTERN_C_END }
#else
#define DFN_EXTERN_C_BEGIN
#define DFN_EXTERN_C_END
#endif
#if defined(__GNUC__)
#define DFN_BEGIN_DECLS DFN_EXTERN_C_BEGIN _Pragma("GCC visibility push(default)")
#define DFN_END_DECLS _Pragma("GCC visibility pop") DFN_EXTERN_C_END
#else
#define DFN_BEGIN_DECLS DFN_EXTERN_C_BEGIN
#define DFN_END_DECLS DFN_EXTERN_C_END
#endif

DFN_BEGIN_DECLS

#define DFN_VERSION "0.1.0"

/* ---------------------------------------------------------------- status */

typedef enum {
    DFN_OK = 0,
    DFN_ERR_ARG,     /* a bad argument or option value */
    DFN_ERR_IO,      /* a file could not be opened, read or written */
    DFN_ERR_FORMAT,  /* a file is truncated or not in the expected format */
    DFN_ERR_CONFIG,  /* a model or run configuration is inconsistent */
    DFN_ERR_NUMERIC, /* NaN or Inf where finite numbers are needed */
    DFN_STATUS_COUNT
} dfn_status;

/* "ok", "bad argument", ...; never NULL. */
const char *dfn_status_name(dfn_status status);
/* The message of the last failure on this thread ("" if none). */
const char *dfn_last_error(void);
const char *dfn_version(void);

/* Threads used by every parallel loop (default: the OpenMP default, all cores).
 * The number of threads changes speed, never results. */
void dfn_set_threads(int n);
int dfn_get_threads(void);

/* ---------------------------------------------------------------- instruction sets */

/* The layers' kernels (convolution, GroupNorm, attention, SiLU, dropout, ...)
 * exist once per instruction-set level, chosen at run time. The default is the
 * best level this CPU supports, unless the environment variable DFN_ISA names
 * another ("generic", "avx2", "avx512", "amx"; read once, at first use; an unknown
 * value, or one the CPU cannot run, prints a warning on stderr and the default
 * is used). Every level is deterministic for any thread count; two levels may
 * differ in the last bits. oneDNN's GEMM keeps the level in use at its first
 * call (so DFN_ISA caps it; dfn_set_isa later does not). */
typedef enum {
    DFN_ISA_GENERIC, /* portable C: any CPU, any architecture */
    DFN_ISA_AVX2,    /* x86-64 with AVX2, FMA, BMI1/2, F16C */
    DFN_ISA_AVX512,  /* x86-64 with AVX2 and AVX-512 F, DQ, BW, VL */
    DFN_ISA_AMX,     /* avx512 plus AVX512_BF16 and AMX tiles (AMX-TILE, AMX-BF16, with the
                      * operating system's permission): float32 as avx512, bit for bit;
                      * bfloat16 products in tiles */
    DFN_ISA_COUNT
} dfn_isa;

/* The level the kernels use now. */
dfn_isa dfn_get_isa(void);
/* Switches the kernels to `isa` for the calls that follow (not while layers run
 * on other threads). DFN_ERR_ARG, and the level unchanged, if this CPU cannot
 * run it. */
dfn_status dfn_set_isa(dfn_isa isa);
/* The best level this CPU supports. */
dfn_isa dfn_cpu_isa(void);
/* "generic", "avx2", "avx512", "amx" ("unknown" out of range) and back; -1 and
 * DFN_ERR_ARG naming the known levels for an unknown name. */
const char *dfn_isa_name(dfn_isa isa);
int dfn_isa_from_name(const char *name);

/* ---------------------------------------------------------------- precision */

/* The arithmetic of the convolutions' products (forward; backward data, which is
 * a convolution too; the Winograd weight gradient of 3x3 convs). DFN_PRECISION_FP32,
 * the default: float32 throughout. DFN_PRECISION_BF16: the two operands of each
 * product are rounded to bfloat16 (float32's upper 16 bits, to nearest even,
 * denormals flushed), multiplied exactly and summed in float32 in a fixed order
 * (AVX512_BF16's vdpbf16ps, twice float32's rate on AMD Zen 4; at the amx level the
 * same products run in AMX tiles, tdpbf16ps, in their own fixed order); the Winograd transforms,
 * biases, small and 1x1 convolutions (oneDNN's float32 products, faster there)
 * and everything outside the convolutions stay float32, and so do the
 * evaluation classifier's features (FID, KID), so that models of either
 * precision are measured alike. Deterministic for any thread
 * count, like float32. Needs the avx512 or amx level in use. */
typedef enum {
    DFN_PRECISION_FP32,
    DFN_PRECISION_BF16,
    DFN_PRECISION_COUNT
} dfn_precision;

/* The precision in use (DFN_PRECISION_FP32 until set). */
dfn_precision dfn_get_precision(void);
/* Switches the convolutions to `p` for the calls that follow (not while layers
 * run on other threads). DFN_ERR_ARG, and the precision unchanged, for bfloat16
 * on a CPU without AVX512_BF16 or with a level below avx512 in use
 * (dfn_set_isa, in turn, refuses other levels while bfloat16 is set). */
dfn_status dfn_set_precision(dfn_precision p);
/* DFN_OK if `p` can be set now, else DFN_ERR_ARG saying why (dfn_set_precision's
 * check, without switching). */
dfn_status dfn_precision_available(dfn_precision p);
/* 1 if this CPU runs bfloat16 products (AVX512_BF16 and AVX-512 F/DQ/BW/VL). */
int dfn_cpu_has_bf16(void);
/* "fp32", "bf16" ("unknown" out of range) and back; -1 and DFN_ERR_ARG naming
 * the known ones for an unknown name. */
const char *dfn_precision_name(dfn_precision p);
int dfn_precision_from_name(const char *name);


/* Where the time goes: when enabled, every layer call of the networks and the
 * optimizer steps are timed by kind (conv2d forward/backward, GroupNorm,
 * attention, ...); dfn_profile_report prints milliseconds per kind divided by
 * `divide_by` (e.g. the number of steps timed). */
void dfn_profile_enable(int on);
void dfn_profile_reset(void);
void dfn_profile_report(FILE *f, double divide_by);

/* ---------------------------------------------------------------- processes (MPI) */

/* Data-parallel runs over MPI (`mpirun -np P diffusion train ...`). A program
 * calls dfn_dist_init first thing and returns dfn_dist_finish(code) from main.
 * When the library was built with MPI (`diffusion --version` says) and the
 * program was started by mpirun, the P processes then share the work: training
 * splits each step's shards (dfn_train_params.grad_accum micro-batches) among
 * them, sampling its batches, evaluation its feature extraction; and every rank
 * ends with the same bits as one process would (the sums are taken in a fixed
 * order, never by MPI_Allreduce). Rank 0 alone writes files and prints; the
 * other ranks' standard output is discarded and their standard error kept back,
 * shown only if a rank fails where rank 0 did not. Without mpirun, or without
 * MPI, there is one rank and nothing changes. */
/* DFN_OK, or DFN_ERR_ARG when started by mpirun with several processes but
 * built without MPI (each would run alone). */
dfn_status dfn_dist_init(int *argc, char ***argv);
/* The exit code of the whole run from this rank's: waits for every rank to
 * finish and returns the first non-zero code of any rank (0 if none); a rank
 * that failed alone has its kept-back messages printed. A rank that failed
 * waits at most 30 s: if the others do not arrive (they wait in an exchange
 * for it), everything is stopped (MPI_Abort) rather than left hanging. Then
 * MPI_Finalize. */
int dfn_dist_finish(int code);
int dfn_dist_rank(void); /* 0 .. size - 1 */
int dfn_dist_size(void); /* 1 without MPI */
int dfn_dist_built_with_mpi(void);

/* ---------------------------------------------------------------- random numbers */

/* A counter-based generator (Philox4x32-10, Salmon et al. 2011). The state is a
 * key (the seed) and a counter of 128-bit blocks already used, so any stream
 * position can be computed directly: parallel fills give the same numbers for
 * any thread count, and a saved state resumes a run exactly. */
typedef struct {
    uint64_t seed;
    uint64_t counter;
} dfn_rng;

dfn_rng dfn_rng_init(uint64_t seed);
/* Uniform floats strictly inside (0, 1), (k + 1/2) / 2^23 with k the top 23 bits
 * of a Philox word: element i comes from block counter + i/4, lane i%4; the
 * counter advances by ceil(n/4). */
void dfn_rng_uniform(dfn_rng *rng, float *out, size_t n);
/* Standard normal floats by Box-Muller: elements 2j and 2j+1 come from block
 * counter + j (lanes 0 and 1); the counter advances by ceil(n/2). */
void dfn_rng_normal(dfn_rng *rng, float *out, size_t n);
/* One Philox block: four 32-bit words for (seed, block). */
void dfn_philox(uint64_t seed, uint64_t block, uint32_t out[4]);

DFN_END_DECLS

#endif

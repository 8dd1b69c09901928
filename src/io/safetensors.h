/* safetensors.h - read and write safetensors files (Hugging Face's tensor format),
 * plus the element types shared with the .npy reader.
 *
 * The format (https://huggingface.co/docs/safetensors):
 *
 *     [8 bytes]  N, the header length, an unsigned little-endian 64-bit integer
 *     [N bytes]  the header: a UTF-8 JSON object, may end in padding spaces
 *     [rest]     the data section: every tensor's bytes, little-endian, C order
 *
 * The header maps each tensor name to {"dtype": "F32", "shape": [2, 3],
 * "data_offsets": [begin, end]}, byte offsets relative to the start of the data
 * section, and may hold "__metadata__": an object of string -> string. The
 * tensors must tile the data section exactly: no overlaps, no gaps, nothing
 * after the last tensor (so a file cannot hide extra bytes).
 *
 * Reading (dfn_st_open) loads and checks the whole file up front: the header
 * length against the file size, the JSON, every dtype, shape and offset pair,
 * byte counts against shapes, overlaps and gaps. A file that passes can then be
 * indexed without further checks. Every error is "<path>: <problem>", naming
 * the tensor or key at fault, with DFN_ERR_IO (cannot read) or DFN_ERR_FORMAT.
 *
 * Writing (dfn_st_writer) collects (name, dtype, shape, data) entries and
 * metadata, then writes them in one go through io/atomic_file.h: tensors in
 * the order added, the header padded with spaces to a multiple of 8 bytes so
 * that the data section starts 8-byte aligned.
 *
 * Beyond model checkpoints (models/checkpoint.c) this is the general way to
 * store arrays: a trainer saves its optimizer moments or EMA weights under a
 * prefix (models/models.h).
 */
#ifndef DFN_SAFETENSORS_H
#define DFN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/core.h"

/* ---------------------------------------------------------------- element types */

/* The element types diffusion.c reads and writes (safetensors names in
 * comments). .npy files use the same enum to report their stored type. */
typedef enum {
    DFN_DTYPE_F32,  /* "F32"  IEEE binary32 */
    DFN_DTYPE_F64,  /* "F64"  IEEE binary64 */
    DFN_DTYPE_F16,  /* "F16"  IEEE binary16 */
    DFN_DTYPE_BF16, /* "BF16" bfloat16: the top 16 bits of a binary32 */
    DFN_DTYPE_I64,  /* "I64" */
    DFN_DTYPE_I32,  /* "I32" */
    DFN_DTYPE_I16,  /* "I16" */
    DFN_DTYPE_I8,   /* "I8" */
    DFN_DTYPE_U8,   /* "U8" */
    DFN_DTYPE_BOOL, /* "BOOL" one byte, 0 or 1 */
    DFN_DTYPE_COUNT
} dfn_dtype;

/* "F32", "F64", ... (the safetensors spelling). */
const char *dfn_dtype_name(dfn_dtype dtype);
/* Bytes per element: 4, 8, 2, 2, 8, 4, 2, 1, 1, 1. */
size_t dfn_dtype_size(dfn_dtype dtype);
/* Parses a safetensors dtype name; returns 0 and sets *out, or -1 if unknown. */
int dfn_dtype_from_name(const char *name, dfn_dtype *out);

/* Converts n elements of any dtype to float32 (integers and bools by value,
 * F64 rounded to nearest, F16/BF16 exactly). src need not be aligned. */
void dfn_dtype_to_f32(float *dst, const void *src, dfn_dtype dtype, size_t n);

/* Formats a shape as "[2, 3, 4]" ("[]" for a scalar) into buf; returns buf. */
char *dfn_format_shape(char *buf, size_t size, int ndim, const int64_t *shape);

/* ---------------------------------------------------------------- reading */

/* Tensors may have at most this many dimensions (safetensors itself has no
 * limit; nothing in diffusion.c needs more). */
#define DFN_ST_MAX_DIMS 8

typedef struct {
    const char *name;
    dfn_dtype dtype;
    int ndim;                        /* 0 for a scalar */
    int64_t shape[DFN_ST_MAX_DIMS];
    size_t numel;                    /* product of the shape (1 for a scalar) */
    size_t nbytes;                   /* numel * dfn_dtype_size(dtype) */
    /* nbytes bytes, little-endian, C order. The data section is read into a
     * 64-byte aligned buffer, so data is aligned as far as its begin offset is:
     * always true for F32 tensors in files from dfn_st_writer that hold only
     * 4- and 8-byte types. Use memcpy or dfn_dtype_to_f32 when unsure. */
    const void *data;
} dfn_st_tensor;

typedef struct dfn_st_file dfn_st_file;

/* Reads and validates the whole file. On success *out owns everything (release
 * with dfn_st_close); on failure *out is NULL and dfn_last_error() says why. */
dfn_status dfn_st_open(dfn_st_file **out, const char *path);
void dfn_st_close(dfn_st_file *f);

/* The path the file was opened with (for messages). */
const char *dfn_st_path(const dfn_st_file *f);

/* Tensors in data-section order (for files from dfn_st_writer: the order added). */
int dfn_st_num_tensors(const dfn_st_file *f);
const dfn_st_tensor *dfn_st_tensor_at(const dfn_st_file *f, int i);
/* The tensor called name, or NULL (binary search; no error is recorded). */
const dfn_st_tensor *dfn_st_find(const dfn_st_file *f, const char *name);

/* "__metadata__" entries, in header order, and lookup by key (NULL if absent). */
int dfn_st_num_metadata(const dfn_st_file *f);
const char *dfn_st_metadata_key(const dfn_st_file *f, int i);
const char *dfn_st_metadata_value(const dfn_st_file *f, int i);
const char *dfn_st_metadata(const dfn_st_file *f, const char *key);

/* Looks up a tensor that must exist with the given dtype and shape (ndim < 0:
 * any shape). DFN_ERR_FORMAT otherwise, with messages such as
 *     "run/net.safetensors: missing tensor 'conv_in.weight'"
 *     "run/net.safetensors: tensor 'conv_in.weight' has dtype F64, expected F32"
 *     "run/net.safetensors: tensor 'conv_in.weight' has shape [64, 3, 3, 3], expected [64, 1, 3, 3]"
 * out may be NULL when only the check matters. */
dfn_status dfn_st_get(const dfn_st_file *f, const char *name, dfn_dtype dtype, int ndim,
                      const int64_t *shape, const dfn_st_tensor **out);

/* dfn_st_get for an F32 tensor, then copies its numel floats to out. */
dfn_status dfn_st_read_f32(const dfn_st_file *f, const char *name, int ndim,
                           const int64_t *shape, float *out);

/* ---------------------------------------------------------------- writing */

typedef struct dfn_st_writer dfn_st_writer;

dfn_st_writer *dfn_st_writer_new(void);
void dfn_st_writer_free(dfn_st_writer *w);

/* Adds a tensor. name and shape are copied; data is NOT: it must stay valid
 * (and unchanged) until dfn_st_writer_save. DFN_ERR_ARG for a duplicate name,
 * the reserved name "__metadata__", a name that is not valid UTF-8, more than
 * DFN_ST_MAX_DIMS dimensions, a negative dimension, or a size that overflows. */
dfn_status dfn_st_writer_add(dfn_st_writer *w, const char *name, dfn_dtype dtype, int ndim,
                             const int64_t *shape, const void *data);

/* Convenience: an F32 tensor with an int shape (as dfn_model_tensor_shape gives). */
dfn_status dfn_st_writer_add_f32(dfn_st_writer *w, const char *name, int ndim,
                                 const int *shape, const float *data);

/* Sets a "__metadata__" entry (both strings copied; a key set twice keeps the
 * last value). DFN_ERR_ARG if either is not valid UTF-8. */
dfn_status dfn_st_writer_set_metadata(dfn_st_writer *w, const char *key, const char *value);

/* Writes the file atomically ("<path>.tmp", then rename). The writer is not
 * changed and may be saved again. DFN_ERR_IO naming the path on failure. */
dfn_status dfn_st_writer_save(const dfn_st_writer *w, const char *path);

#endif

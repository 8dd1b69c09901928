/* npy.h - NumPy .npy arrays: read as float32, write float32.
 *
 * The format (numpy/lib/format.py, "NEP 1"):
 *
 *     "\x93NUMPY"  6-byte magic
 *     major, minor 1 byte each: 1.0, 2.0 or 3.0
 *     HEADER_LEN   2 bytes little-endian (1.0) or 4 bytes (2.0, 3.0)
 *     header       a Python dict literal, ASCII/latin-1 (3.0: UTF-8), padded
 *                  with spaces and ended by '\n' so that the data starts at a
 *                  multiple of 64 bytes (16 in old files), e.g.
 *                  {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 *     data         numel elements, raw
 *
 * The reader accepts little-endian C-order arrays of float32, float64, uint8,
 * int16, int32 and int64 and converts them to float32 (values, not scaled:
 * uint8 pixels come back as 0..255). It rejects Fortran order, big-endian and
 * structured/object dtypes, bad magic and truncated data, with messages such as
 *     "data.npy: dtype '<c8' is not supported (use float32, float64, uint8,
 *      int16, int32 or int64)"
 * The writer stores float32 (descr '<f4') in version 1.0 with the header padded
 * to 64 bytes, atomically (io/atomic_file.h), so numpy.load reads it.
 */
#ifndef DFN_NPY_H
#define DFN_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/core.h"
#include "io/safetensors.h" /* dfn_dtype */

#define DFN_NPY_MAX_DIMS 8

typedef struct {
    float *data;     /* numel floats (malloc'ed; released by dfn_npy_free) */
    size_t numel;    /* product of the shape; 1 for a 0-d array */
    int ndim;
    int64_t shape[DFN_NPY_MAX_DIMS];
    dfn_dtype dtype; /* the element type stored in the file, before conversion */
} dfn_npy_array;

/* Reads path into *out (zeroed first; on failure nothing needs freeing).
 * DFN_ERR_IO if the file cannot be read, DFN_ERR_FORMAT for a bad file. */
dfn_status dfn_npy_read(const char *path, dfn_npy_array *out);
void dfn_npy_free(dfn_npy_array *a);

/* "(3, 4)", "(3,)" or "()": a shape as numpy prints it, into buf (returned). */
char *dfn_npy_format_shape(char *buf, size_t size, int ndim, const int64_t *shape);

/* Writes a C-order float32 array of the given shape (ndim 0..DFN_NPY_MAX_DIMS;
 * 0 writes one scalar) to path through "<path>.tmp" + rename. */
dfn_status dfn_npy_write_f32(const char *path, const float *data, int ndim,
                             const int64_t *shape);

#endif

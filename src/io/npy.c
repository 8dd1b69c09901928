/* npy.c - the .npy reader and writer (format in npy.h).
 *
 * The header is a Python dict literal, which numpy itself reads with
 * ast.literal_eval. We parse the small subset numpy writes - string keys, a
 * string, True/False and a tuple of integers - by hand, so an unexpected header
 * becomes a clear error instead of an eval.
 */
#include "io/npy.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "core/files.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "diffusion.c's file formats assume a little-endian host"
#endif

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};
/* numpy itself refuses headers above 10000 bytes unless told otherwise; a
 * megabyte is far beyond any real header and keeps allocations bounded. */
#define MAX_HEADER_BYTES (1u << 20)
#define SUPPORTED_DTYPES "use float32, float64, uint8, int16, int32 or int64"

/* "(3, 4)", "(3,)" or "()": shapes in messages look like numpy prints them. */
char *dfn_npy_format_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t len = 0;
    buf[0] = '\0';
    for (int d = 0; d <= ndim && len < size; d++) {
        int n = d == ndim ? snprintf(buf + len, size - len, "%s)", ndim == 0 ? "(" : ndim == 1 ? "," : "")
                          : snprintf(buf + len, size - len, "%s%" PRId64, d ? ", " : "(", shape[d]);
        if (n < 0) break;
        len += (size_t)n;
    }
    return buf;
}

/* NumPy's name of a supported type, for messages. */
static const char *numpy_name(dfn_dtype dtype) {
    switch (dtype) {
    case DFN_DTYPE_F32: return "float32";
    case DFN_DTYPE_F64: return "float64";
    case DFN_DTYPE_U8: return "uint8";
    case DFN_DTYPE_I16: return "int16";
    case DFN_DTYPE_I32: return "int32";
    case DFN_DTYPE_I64: return "int64";
    default: return dfn_dtype_name(dtype);
    }
}

/* ================================================================ header parsing */

typedef struct {
    const char *p, *end; /* the unread rest of the header */
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int accept(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes ('<f4' or "<f4") into out; 0 on success. */
static int parse_string(cursor *c, char *out, size_t size) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || n + 1 >= size) return -1;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return -1;
    c->p++;
    out[n] = '\0';
    return 0;
}

/* Matches a bare word (True, False) exactly. */
static int accept_word(cursor *c, const char *word) {
    skip_ws(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, word, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* A tuple of non-negative integers: "()", "(3,)", "(3, 4)", "(3L, 4L)" (Python 2). */
static int parse_shape(cursor *c, int *ndim, int64_t *shape) {
    if (!accept(c, '(')) return -1;
    *ndim = 0;
    for (;;) {
        if (accept(c, ')')) return 0;
        skip_ws(c);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9') return -1;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10) return -1;
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && (*c->p == 'L' || *c->p == 'l')) c->p++;
        if (*ndim >= DFN_NPY_MAX_DIMS) return -2;
        shape[(*ndim)++] = v;
        if (accept(c, ')')) return 0;
        if (!accept(c, ',')) return -1;
    }
}

/* What a descr names: element type, size and whether the file's byte order
 * matches ours. Returns 0 for a supported little-endian type. */
static dfn_status parse_descr(const char *path, const char *descr, dfn_dtype *out) {
    static const struct {
        const char *code;
        dfn_dtype dtype;
    } table[] = {
        {"f4", DFN_DTYPE_F32}, {"f8", DFN_DTYPE_F64}, {"u1", DFN_DTYPE_U8},
        {"i2", DFN_DTYPE_I16}, {"i4", DFN_DTYPE_I32}, {"i8", DFN_DTYPE_I64},
    };
    /* descr = byte order ('<' little, '>' big, '|' not applicable, '=' native)
     * followed by a kind letter and the item size in bytes. */
    char order = descr[0];
    if (order == '<' || order == '>' || order == '|' || order == '=') {
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
            if (strcmp(descr + 1, table[i].code) != 0) continue;
            size_t size = dfn_dtype_size(table[i].dtype);
            if (size > 1 && order == '>')
                return dfn_set_error(DFN_ERR_FORMAT,
                                     "%s: dtype '%s' is big-endian, which is not supported "
                                     "(convert with arr.astype('<%s'))",
                                     path, descr, descr + 1);
            if (size > 1 && order == '|') break; /* '|' only makes sense for bytes */
            *out = table[i].dtype;
            return DFN_OK;
        }
    }
    return dfn_set_error(DFN_ERR_FORMAT, "%s: dtype '%s' is not supported (" SUPPORTED_DTYPES ")",
                         path, descr);
}

/* Parses the header dict into dtype and shape; rejects Fortran order. */
static dfn_status parse_header(const char *path, const char *text, size_t len, dfn_npy_array *a) {
    cursor c = {text, text + len};
    char key[32], descr[64] = "";
    int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0;
    if (!accept(&c, '{'))
        return dfn_set_error(DFN_ERR_FORMAT, "%s: header is not a Python dict literal", path);
    for (;;) {
        if (accept(&c, '}')) break;
        if (parse_string(&c, key, sizeof key) != 0 || !accept(&c, ':'))
            return dfn_set_error(DFN_ERR_FORMAT, "%s: cannot parse the header dict near byte %zu",
                                 path, (size_t)(c.p - text));
        int *have;
        if (strcmp(key, "descr") == 0) {
            have = &have_descr;
            skip_ws(&c);
            if (c.p < c.end && *c.p == '[')
                return dfn_set_error(DFN_ERR_FORMAT,
                                     "%s: structured dtypes are not supported (" SUPPORTED_DTYPES
                                     ")",
                                     path);
            if (parse_string(&c, descr, sizeof descr) != 0)
                return dfn_set_error(DFN_ERR_FORMAT, "%s: header 'descr' is not a dtype string",
                                     path);
        } else if (strcmp(key, "fortran_order") == 0) {
            have = &have_order;
            if (accept_word(&c, "True")) fortran = 1;
            else if (accept_word(&c, "False")) fortran = 0;
            else
                return dfn_set_error(DFN_ERR_FORMAT,
                                     "%s: header 'fortran_order' is not True or False", path);
        } else if (strcmp(key, "shape") == 0) {
            have = &have_shape;
            int r = parse_shape(&c, &a->ndim, a->shape);
            if (r == -2)
                return dfn_set_error(DFN_ERR_FORMAT,
                                     "%s: more than %d dimensions are not supported", path,
                                     DFN_NPY_MAX_DIMS);
            if (r != 0)
                return dfn_set_error(DFN_ERR_FORMAT,
                                     "%s: header 'shape' is not a tuple of non-negative integers",
                                     path);
        } else {
            return dfn_set_error(DFN_ERR_FORMAT, "%s: header has an unexpected key '%s'", path,
                                 key);
        }
        if ((*have)++)
            return dfn_set_error(DFN_ERR_FORMAT, "%s: header repeats the key '%s'", path, key);
        if (accept(&c, '}')) break;
        if (!accept(&c, ','))
            return dfn_set_error(DFN_ERR_FORMAT, "%s: cannot parse the header dict near byte %zu",
                                 path, (size_t)(c.p - text));
    }
    skip_ws(&c);
    if (c.p != c.end)
        return dfn_set_error(DFN_ERR_FORMAT, "%s: unexpected bytes after the header dict", path);
    if (!have_descr || !have_order || !have_shape)
        return dfn_set_error(DFN_ERR_FORMAT, "%s: header has no '%s'", path,
                             !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    if (fortran)
        return dfn_set_error(DFN_ERR_FORMAT,
                             "%s: fortran_order=True is not supported (save a C-order array, "
                             "e.g. np.ascontiguousarray(arr))",
                             path);
    return parse_descr(path, descr, &a->dtype);
}

/* ================================================================ reading */

void dfn_npy_free(dfn_npy_array *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

dfn_status dfn_npy_read(const char *path, dfn_npy_array *out) {
    DFN_ASSERT(path && out);
    memset(out, 0, sizeof *out);
    dfn_status st = DFN_OK;
    dfn_npy_array a = {0};
    char *header = NULL;
    unsigned char *chunk = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        st = dfn_set_error(DFN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = dfn_set_error(DFN_ERR_IO, "%s: cannot read: not a regular file", path);
        goto fail;
    }
    uint64_t file_size = (uint64_t)sb.st_size;

    /* 1. Magic and version. */
    unsigned char pre[12];
    if (file_size < 10 || fread(pre, 1, 10, fp) != 10) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: not a .npy file (%" PRIu64 " bytes, too short for the header)",
                           path, file_size);
        goto fail;
    }
    if (memcmp(pre, npy_magic, 6) != 0) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: not a .npy file (bad magic, expected \\x93NUMPY)",
                           path);
        goto fail;
    }
    int major = pre[6], minor = pre[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: .npy format version %d.%d is not supported (1.0, 2.0 or 3.0)",
                           path, major, minor);
        goto fail;
    }
    /* 2. Header length: 2 bytes in 1.0, 4 bytes in 2.0/3.0 (little-endian). */
    uint64_t prefix = major == 1 ? 10 : 12, header_len;
    if (major == 1) {
        header_len = (uint64_t)pre[8] | (uint64_t)pre[9] << 8;
    } else {
        if (file_size < 12 || fread(pre + 10, 1, 2, fp) != 2) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: truncated header", path);
            goto fail;
        }
        header_len = (uint64_t)pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 |
                     (uint64_t)pre[11] << 24;
    }
    if (header_len > MAX_HEADER_BYTES) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the %u-byte limit",
                           path, header_len, MAX_HEADER_BYTES);
        goto fail;
    }
    if (prefix + header_len > file_size) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: truncated header (%" PRIu64 " bytes announced, %" PRIu64
                           " in the file)",
                           path, header_len, file_size - prefix);
        goto fail;
    }
    header = dfn_malloc((size_t)header_len + 1);
    if (header_len && fread(header, 1, (size_t)header_len, fp) != header_len) {
        st = dfn_set_error(DFN_ERR_IO, "%s: cannot read the header: %s", path, strerror(errno));
        goto fail;
    }
    header[header_len] = '\0';
    if ((st = parse_header(path, header, (size_t)header_len, &a)) != DFN_OK) goto fail;

    /* 3. Sizes: numel and bytes, with overflow checks, against the file. */
    size_t es = dfn_dtype_size(a.dtype), numel = 1;
    for (int d = 0; d < a.ndim; d++) {
        if (a.shape[d] != 0 && numel > SIZE_MAX / es / (size_t)a.shape[d]) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: shape is too large", path);
            goto fail;
        }
        numel *= (size_t)a.shape[d];
    }
    uint64_t need = (uint64_t)numel * es, have = file_size - prefix - header_len;
    char sbuf[256];
    if (have < need) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: truncated data: shape %s of %s needs %" PRIu64
                           " bytes, the file has %" PRIu64 " after the header",
                           path, dfn_npy_format_shape(sbuf, sizeof sbuf, a.ndim, a.shape),
                           numpy_name(a.dtype), need, have);
        goto fail;
    }
    if (have > need) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: %" PRIu64 " unexpected bytes after the data of shape %s", path,
                           have - need, dfn_npy_format_shape(sbuf, sizeof sbuf, a.ndim, a.shape));
        goto fail;
    }

    /* 4. Data: float32 straight into the result; other types through a small
     *    buffer, converted chunk by chunk so a big uint8 data set does not need
     *    a second full-size copy. */
    a.numel = numel;
    a.data = dfn_malloc(numel * sizeof(float));
    if (a.dtype == DFN_DTYPE_F32) {
        if (numel && fread(a.data, 4, numel, fp) != numel) {
            st = dfn_set_error(DFN_ERR_IO, "%s: cannot read the data: %s", path, strerror(errno));
            goto fail;
        }
    } else {
        enum { CHUNK = 1 << 16 };
        chunk = dfn_malloc(CHUNK);
        size_t per = CHUNK / es;
        for (size_t i = 0; i < numel; i += per) {
            size_t n = DFN_MIN(per, numel - i);
            if (fread(chunk, es, n, fp) != n) {
                st = dfn_set_error(DFN_ERR_IO, "%s: cannot read the data: %s", path,
                                   strerror(errno));
                goto fail;
            }
            dfn_dtype_to_f32(a.data + i, chunk, a.dtype, n);
        }
    }
    *out = a;
    a.data = NULL;
fail:
    if (fp) fclose(fp);
    free(header);
    free(chunk);
    free(a.data);
    return st;
}

/* ================================================================ writing */

dfn_status dfn_npy_write_f32(const char *path, const float *data, int ndim,
                             const int64_t *shape) {
    DFN_ASSERT(path && ndim >= 0 && ndim <= DFN_NPY_MAX_DIMS && (shape || ndim == 0));
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        DFN_ASSERT(shape[d] >= 0);
        DFN_ASSERT(shape[d] == 0 || numel <= SIZE_MAX / 4 / (size_t)shape[d]);
        numel *= (size_t)shape[d];
    }
    DFN_ASSERT(data || numel == 0);

    /* The dict as numpy writes it, then spaces and '\n' up to a multiple of 64
     * bytes counted from the start of the file (10 bytes of magic, version and
     * length come first), so the data is 64-byte aligned for memory mapping. */
    char header[512], sbuf[256];
    int len = snprintf(header, sizeof header,
                       "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }",
                       dfn_npy_format_shape(sbuf, sizeof sbuf, ndim, shape));
    DFN_ASSERT(len > 0 && (size_t)len < sizeof header - 64);
    while ((10 + len + 1) % 64 != 0) header[len++] = ' ';
    header[len++] = '\n';

    unsigned char pre[10];
    memcpy(pre, npy_magic, 6);
    pre[6] = 1; /* version 1.0: a 2-byte header length suffices */
    pre[7] = 0;
    pre[8] = (unsigned char)(len & 0xff);
    pre[9] = (unsigned char)(len >> 8);

    dfn_atomic_file af;
    dfn_status st = dfn_atomic_open(&af, path);
    if (st != DFN_OK) return st;
    dfn_atomic_write(&af, pre, sizeof pre);
    dfn_atomic_write(&af, header, (size_t)len);
    dfn_atomic_write(&af, data, numel * sizeof(float));
    return dfn_atomic_commit(&af);
}

/* safetensors.c - the safetensors reader and writer (format in safetensors.h).
 *
 * The reader treats every file as hostile: each number in the header is checked
 * before it is used to index memory, and every failure becomes a message that
 * names the file and the tensor, never an out-of-bounds read. The JSON itself
 * is parsed by cJSON; everything after that (types, ranges, overlaps) is here.
 */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "core/files.h"

/* Tensor bytes are copied to and from memory as they are, which is only right
 * on a little-endian machine (every CPU this library targets). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "diffusion.c's file formats assume a little-endian host"
#endif

/* The reference implementation refuses headers above 100 MB; so do we, so that a
 * corrupt length cannot make us allocate gigabytes before the JSON fails. */
#define MAX_HEADER_BYTES (100u << 20)
/* Integers above 2^53 do not survive cJSON's doubles exactly. */
#define MAX_JSON_INT 9007199254740992.0

/* ================================================================ element types */

static const struct {
    const char *name;
    size_t size;
} dtype_info[DFN_DTYPE_COUNT] = {
    [DFN_DTYPE_F32] = {"F32", 4}, [DFN_DTYPE_F64] = {"F64", 8},  [DFN_DTYPE_F16] = {"F16", 2},
    [DFN_DTYPE_BF16] = {"BF16", 2}, [DFN_DTYPE_I64] = {"I64", 8}, [DFN_DTYPE_I32] = {"I32", 4},
    [DFN_DTYPE_I16] = {"I16", 2}, [DFN_DTYPE_I8] = {"I8", 1},    [DFN_DTYPE_U8] = {"U8", 1},
    [DFN_DTYPE_BOOL] = {"BOOL", 1},
};

const char *dfn_dtype_name(dfn_dtype dtype) {
    DFN_ASSERT((int)dtype >= 0 && dtype < DFN_DTYPE_COUNT);
    return dtype_info[dtype].name;
}

size_t dfn_dtype_size(dfn_dtype dtype) {
    DFN_ASSERT((int)dtype >= 0 && dtype < DFN_DTYPE_COUNT);
    return dtype_info[dtype].size;
}

int dfn_dtype_from_name(const char *name, dfn_dtype *out) {
    for (int i = 0; i < DFN_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (dfn_dtype)i;
            return 0;
        }
    }
    return -1;
}

/* IEEE binary16 -> binary32, exactly. A half is 1 sign, 5 exponent (bias 15)
 * and 10 mantissa bits; a float has 8 exponent bits (bias 127) and 23 mantissa
 * bits, so normal numbers just move their fields (exponent + 127 - 15). */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) { /* infinity or NaN: keep the payload */
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) { /* normal */
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else { /* zero or subnormal: mant * 2^-24, exact in a float */
        float f = (float)mant * 0x1p-24f;
        memcpy(&bits, &f, 4);
        bits |= sign;
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

void dfn_dtype_to_f32(float *dst, const void *src, dfn_dtype dtype, size_t n) {
    DFN_ASSERT((dst && src) || n == 0);
    const unsigned char *p = src;
    size_t es = dfn_dtype_size(dtype);
    /* memcpy per element: src may sit at any byte offset in a file buffer, and
     * the compiler turns a fixed-size memcpy into a plain (unaligned) load. */
    for (size_t i = 0; i < n; i++, p += es) {
        switch (dtype) {
        case DFN_DTYPE_F32: memcpy(&dst[i], p, 4); break;
        case DFN_DTYPE_F64: { double v; memcpy(&v, p, 8); dst[i] = (float)v; break; }
        case DFN_DTYPE_F16: { uint16_t v; memcpy(&v, p, 2); dst[i] = half_to_float(v); break; }
        case DFN_DTYPE_BF16: {
            uint16_t v;
            memcpy(&v, p, 2);
            uint32_t bits = (uint32_t)v << 16; /* bfloat16 is a truncated float */
            memcpy(&dst[i], &bits, 4);
            break;
        }
        case DFN_DTYPE_I64: { int64_t v; memcpy(&v, p, 8); dst[i] = (float)v; break; }
        case DFN_DTYPE_I32: { int32_t v; memcpy(&v, p, 4); dst[i] = (float)v; break; }
        case DFN_DTYPE_I16: { int16_t v; memcpy(&v, p, 2); dst[i] = (float)v; break; }
        case DFN_DTYPE_I8: dst[i] = (float)(int8_t)p[0]; break;
        case DFN_DTYPE_U8: dst[i] = (float)p[0]; break;
        case DFN_DTYPE_BOOL: dst[i] = p[0] ? 1.0f : 0.0f; break;
        default: DFN_ASSERT(0);
        }
    }
}

char *dfn_format_shape(char *buf, size_t size, int ndim, const int64_t *shape) {
    DFN_ASSERT(buf && size > 0 && (shape || ndim == 0));
    /* Appends piece by piece; a too-small buffer just truncates the text. */
    size_t len = 0;
    buf[0] = '\0';
    for (int d = 0; d <= ndim && len < size; d++) {
        int n = d == ndim ? snprintf(buf + len, size - len, "%s]", ndim ? "" : "[")
                          : snprintf(buf + len, size - len, "%s%" PRId64, d ? ", " : "[", shape[d]);
        if (n < 0) break;
        len += (size_t)n;
    }
    return buf;
}

/* ================================================================ small helpers */

static char *copy_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = dfn_malloc(n);
    memcpy(p, s, n);
    return p;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
 * U+10FFFF. The format requires a UTF-8 header; cJSON does not check. */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

/* Product of the dimensions, with overflow checks: 0 on success, -1 if the
 * element count or byte count does not fit in a size_t (or in JSON's exact
 * integers). */
static int shape_bytes(int ndim, const int64_t *shape, size_t elem_size, size_t *numel,
                       size_t *nbytes) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0) return -1;
        size_t dim = (size_t)shape[d];
        if (dim != 0 && n > SIZE_MAX / dim) return -1;
        n *= dim;
    }
    if (elem_size != 0 && n > SIZE_MAX / elem_size) return -1;
    if ((double)(n * elem_size) > MAX_JSON_INT) return -1;
    *numel = n;
    *nbytes = n * elem_size;
    return 0;
}

/* A JSON number that is a whole number in [0, 2^53]. */
static int json_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return -1;
    double d = item->valuedouble;
    if (!(d >= 0 && d <= MAX_JSON_INT) || d != (double)(uint64_t)d) return -1;
    *out = (uint64_t)d;
    return 0;
}

/* ================================================================ reader */

struct dfn_st_file {
    char *path;
    int n_tensors;
    dfn_st_tensor *tensors; /* sorted by data offset */
    int *by_name;           /* indices into tensors, sorted by name */
    int n_meta;
    char **meta_keys, **meta_values;
    unsigned char *data; /* the data section, 64-byte aligned */
};

/* Per-tensor data kept only while the header is checked. */
typedef struct {
    uint64_t begin, end;
    int index; /* position in the header, to report the first problem found */
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* qsort has no context argument, so name sorts go through this pointer. The
 * reader holds it only inside one call (sorting is not re-entrant across
 * threads, but the array it points to is local to that call). */
static _Thread_local const dfn_st_tensor *sort_tensors;
static int cmp_by_name(const void *a, const void *b) {
    return strcmp(sort_tensors[*(const int *)a].name, sort_tensors[*(const int *)b].name);
}
static int cmp_strptr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void dfn_st_close(dfn_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->tensors);
    free(f->by_name);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->data);
    free(f->path);
    free(f);
}

/* Reads the "__metadata__" object into f. */
static dfn_status parse_metadata(dfn_st_file *f, const cJSON *meta) {
    const char *path = f->path;
    if (!cJSON_IsObject(meta))
        return dfn_set_error(DFN_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", path);
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = dfn_calloc((size_t)n + 1, sizeof(char *));
    f->meta_values = dfn_calloc((size_t)n + 1, sizeof(char *));
    const cJSON *item;
    cJSON_ArrayForEach(item, meta) {
        if (!cJSON_IsString(item))
            return dfn_set_error(DFN_ERR_FORMAT,
                                 "%s: metadata value of '%s' is not a string (safetensors "
                                 "metadata maps strings to strings)",
                                 path, item->string);
        f->meta_keys[f->n_meta] = copy_string(item->string);
        f->meta_values[f->n_meta] = copy_string(item->valuestring);
        f->n_meta++;
    }
    /* Duplicate keys: sort copies of the key pointers and compare neighbours. */
    dfn_status st = DFN_OK;
    char **sorted = dfn_malloc(((size_t)n + 1) * sizeof(char *));
    memcpy(sorted, f->meta_keys, (size_t)n * sizeof(char *));
    qsort(sorted, (size_t)n, sizeof(char *), cmp_strptr);
    for (int i = 1; i < n; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: duplicate metadata key '%s'", path, sorted[i]);
            break;
        }
    }
    free(sorted);
    return st;
}

/* Checks one tensor entry of the header and fills t (except data) and sp. */
static dfn_status parse_tensor(const char *path, const cJSON *item, uint64_t data_size,
                               dfn_st_tensor *t, span *sp) {
    const char *name = item->string;
    if (!cJSON_IsObject(item))
        return dfn_set_error(DFN_ERR_FORMAT, "%s: tensor '%s' is not a JSON object", path, name);

    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!dtype || !shape || !offsets)
        return dfn_set_error(DFN_ERR_FORMAT, "%s: tensor '%s' has no \"%s\"", path, name,
                             !dtype ? "dtype" : !shape ? "shape" : "data_offsets");

    if (!cJSON_IsString(dtype))
        return dfn_set_error(DFN_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is not a string", path,
                             name);
    if (dfn_dtype_from_name(dtype->valuestring, &t->dtype) != 0)
        return dfn_set_error(DFN_ERR_FORMAT,
                             "%s: tensor '%s' has unsupported dtype '%s' (supported: F32, F64, "
                             "F16, BF16, I64, I32, I16, I8, U8, BOOL)",
                             path, name, dtype->valuestring);

    if (!cJSON_IsArray(shape))
        return dfn_set_error(DFN_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not an array", path,
                             name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > DFN_ST_MAX_DIMS)
        return dfn_set_error(DFN_ERR_FORMAT,
                             "%s: tensor '%s' has %d dimensions, at most %d are supported", path,
                             name, ndim, DFN_ST_MAX_DIMS);
    t->ndim = ndim;
    int d = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        uint64_t v;
        if (json_uint(dim, &v) != 0)
            return dfn_set_error(DFN_ERR_FORMAT,
                                 "%s: tensor '%s': \"shape\" must hold non-negative integers",
                                 path, name);
        t->shape[d++] = (int64_t)v;
    }
    if (shape_bytes(ndim, t->shape, dfn_dtype_size(t->dtype), &t->numel, &t->nbytes) != 0)
        return dfn_set_error(DFN_ERR_FORMAT, "%s: tensor '%s': shape is too large", path, name);

    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        json_uint(offsets->child, &sp->begin) != 0 ||
        json_uint(offsets->child->next, &sp->end) != 0 || sp->begin > sp->end)
        return dfn_set_error(DFN_ERR_FORMAT,
                             "%s: tensor '%s': \"data_offsets\" must be [begin, end], integers "
                             "with 0 <= begin <= end",
                             path, name);
    if (sp->end > data_size)
        return dfn_set_error(DFN_ERR_FORMAT,
                             "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                             "] lie outside the data section of %" PRIu64
                             " bytes (file truncated?)",
                             path, name, sp->begin, sp->end, data_size);
    if (sp->end - sp->begin != t->nbytes) {
        char buf[256];
        return dfn_set_error(DFN_ERR_FORMAT,
                             "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                             "] hold %" PRIu64 " bytes, but dtype %s and shape %s need %zu",
                             path, name, sp->begin, sp->end, sp->end - sp->begin,
                             dfn_dtype_name(t->dtype),
                             dfn_format_shape(buf, sizeof buf, ndim, t->shape), t->nbytes);
    }
    return DFN_OK;
}

/* The tensors must tile [0, data_size): sorted by offset, each begins where the
 * previous one ended. That rules out overlaps (two names for the same bytes),
 * gaps and trailing bytes (room to hide data in a file that looks fine). */
static dfn_status check_tiling(const char *path, const dfn_st_tensor *t, span *sp, int n,
                               uint64_t data_size) {
    qsort(sp, (size_t)n, sizeof *sp, cmp_span);
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        if (sp[i].begin < pos)
            return dfn_set_error(DFN_ERR_FORMAT,
                                 "%s: tensors '%s' and '%s' overlap (data_offsets [%" PRIu64
                                 ", %" PRIu64 "] and [%" PRIu64 ", %" PRIu64 "])",
                                 path, t[sp[i - 1].index].name, t[sp[i].index].name,
                                 sp[i - 1].begin, sp[i - 1].end, sp[i].begin, sp[i].end);
        if (sp[i].begin > pos)
            return dfn_set_error(DFN_ERR_FORMAT,
                                 "%s: gap in the data section: bytes [%" PRIu64 ", %" PRIu64
                                 ") before tensor '%s' belong to no tensor",
                                 path, pos, sp[i].begin, t[sp[i].index].name);
        pos = sp[i].end;
    }
    if (pos != data_size)
        return dfn_set_error(DFN_ERR_FORMAT,
                             "%s: the data section has %" PRIu64 " bytes but the tensors cover "
                             "only %" PRIu64 " (extra bytes at the end)",
                             path, data_size, pos);
    return DFN_OK;
}

/* Reads exactly n bytes or fails with a message naming the file. */
static dfn_status read_exact(FILE *fp, void *buf, size_t n, const char *path, const char *what) {
    if (n == 0 || fread(buf, 1, n, fp) == n) return DFN_OK;
    if (ferror(fp))
        return dfn_set_error(DFN_ERR_IO, "%s: cannot read %s: %s", path, what, strerror(errno));
    return dfn_set_error(DFN_ERR_FORMAT, "%s: file ended while reading %s (truncated?)", path,
                         what);
}

dfn_status dfn_st_open(dfn_st_file **out, const char *path) {
    DFN_ASSERT(out && path);
    *out = NULL;
    dfn_status st = DFN_OK;
    FILE *fp = NULL;
    char *header = NULL;
    cJSON *root = NULL;
    span *spans = NULL;
    dfn_st_file *f = dfn_calloc(1, sizeof *f);
    f->path = copy_string(path);

    fp = fopen(path, "rb");
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
    if (file_size == 0) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: empty file (a safetensors file starts with an 8-byte header "
                           "length)",
                           path);
        goto fail;
    }
    if (file_size < 8) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: file is %" PRIu64 " bytes, too short for the 8-byte header "
                           "length (truncated?)",
                           path, file_size);
        goto fail;
    }

    /* 1. The header length: 8 bytes, little-endian, assembled byte by byte so
     *    that the code does not depend on the host's byte order. */
    unsigned char len_bytes[8];
    if ((st = read_exact(fp, len_bytes, 8, path, "the header length")) != DFN_OK) goto fail;
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = (header_len << 8) | len_bytes[i];
    if (header_len > file_size - 8) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: header length %" PRIu64 " exceeds the %" PRIu64
                           " bytes after it (truncated or not a safetensors file?)",
                           path, header_len, file_size - 8);
        goto fail;
    }
    if (header_len > MAX_HEADER_BYTES) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: header length %" PRIu64 " exceeds the %u-byte limit",
                           path, header_len, MAX_HEADER_BYTES);
        goto fail;
    }
    if (header_len < 2) {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: header length %" PRIu64 " is too small for a JSON object", path,
                           header_len);
        goto fail;
    }

    /* 2. The header: UTF-8 JSON, starting with '{', maybe padded with spaces. */
    header = dfn_malloc((size_t)header_len + 1);
    if ((st = read_exact(fp, header, (size_t)header_len, path, "the header")) != DFN_OK) goto fail;
    header[header_len] = '\0';
    if (header[0] != '{') {
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: header does not start with '{' (not a safetensors file?)", path);
        goto fail;
    }
    if (!valid_utf8((const unsigned char *)header, (size_t)header_len)) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: header is not valid UTF-8", path);
        goto fail;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(header, (size_t)header_len, &end, 0);
    if (!root) {
        size_t at = end && end >= header ? (size_t)(end - header) : 0;
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: header is not valid JSON (error near byte %zu of %" PRIu64 ")",
                           path, at, header_len);
        goto fail;
    }
    /* cJSON stops after the object (and whitespace); the rest must be padding. */
    for (const char *p = end; p < header + header_len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st = dfn_set_error(DFN_ERR_FORMAT,
                               "%s: header has bytes after its JSON object (at byte %zu)", path,
                               (size_t)(p - header));
            goto fail;
        }
    }
    if (!cJSON_IsObject(root)) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: header is not a JSON object", path);
        goto fail;
    }

    /* 3. Entries: "__metadata__" and tensors. */
    uint64_t data_size = file_size - 8 - header_len;
    int n_items = cJSON_GetArraySize(root);
    f->tensors = dfn_calloc((size_t)n_items + 1, sizeof *f->tensors);
    spans = dfn_calloc((size_t)n_items + 1, sizeof *spans);
    int seen_metadata = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (seen_metadata++) {
                st = dfn_set_error(DFN_ERR_FORMAT, "%s: duplicate \"__metadata__\"", path);
                goto fail;
            }
            if ((st = parse_metadata(f, item)) != DFN_OK) goto fail;
            continue;
        }
        dfn_st_tensor *t = &f->tensors[f->n_tensors];
        span *sp = &spans[f->n_tensors];
        if ((st = parse_tensor(path, item, data_size, t, sp)) != DFN_OK) goto fail;
        t->name = copy_string(item->string);
        sp->index = f->n_tensors++;
    }

    /* 4. Names unique (JSON allows repeated keys; cJSON keeps them all). */
    f->by_name = dfn_malloc(((size_t)f->n_tensors + 1) * sizeof(int));
    for (int i = 0; i < f->n_tensors; i++) f->by_name[i] = i;
    sort_tensors = f->tensors;
    qsort(f->by_name, (size_t)f->n_tensors, sizeof(int), cmp_by_name);
    for (int i = 1; i < f->n_tensors; i++) {
        const char *a = f->tensors[f->by_name[i - 1]].name, *b = f->tensors[f->by_name[i]].name;
        if (strcmp(a, b) == 0) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: duplicate tensor '%s'", path, b);
            goto fail;
        }
    }

    /* 5. Offsets tile the data section. */
    if ((st = check_tiling(path, f->tensors, spans, f->n_tensors, data_size)) != DFN_OK) goto fail;

    /* 6. The data, into its own aligned buffer; tensors are re-ordered by offset. */
    f->data = dfn_malloc((size_t)data_size);
    if ((st = read_exact(fp, f->data, (size_t)data_size, path, "the data section")) != DFN_OK)
        goto fail;
    dfn_st_tensor *sorted = dfn_calloc((size_t)f->n_tensors + 1, sizeof *sorted);
    int *rank = dfn_malloc(((size_t)f->n_tensors + 1) * sizeof(int));
    for (int i = 0; i < f->n_tensors; i++) {
        sorted[i] = f->tensors[spans[i].index];
        sorted[i].data = f->data + spans[i].begin;
        rank[spans[i].index] = i;
    }
    for (int i = 0; i < f->n_tensors; i++) f->by_name[i] = rank[f->by_name[i]];
    free(rank);
    free(f->tensors);
    f->tensors = sorted;

    *out = f;
    f = NULL;
fail:
    if (fp) fclose(fp);
    cJSON_Delete(root);
    free(header);
    free(spans);
    dfn_st_close(f);
    return st;
}

const char *dfn_st_path(const dfn_st_file *f) { return f->path; }
int dfn_st_num_tensors(const dfn_st_file *f) { return f->n_tensors; }

const dfn_st_tensor *dfn_st_tensor_at(const dfn_st_file *f, int i) {
    DFN_ASSERT(i >= 0 && i < f->n_tensors);
    return &f->tensors[i];
}

const dfn_st_tensor *dfn_st_find(const dfn_st_file *f, const char *name) {
    DFN_ASSERT(f && name);
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const dfn_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0) return t;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

int dfn_st_num_metadata(const dfn_st_file *f) { return f->n_meta; }

const char *dfn_st_metadata_key(const dfn_st_file *f, int i) {
    DFN_ASSERT(i >= 0 && i < f->n_meta);
    return f->meta_keys[i];
}

const char *dfn_st_metadata_value(const dfn_st_file *f, int i) {
    DFN_ASSERT(i >= 0 && i < f->n_meta);
    return f->meta_values[i];
}

const char *dfn_st_metadata(const dfn_st_file *f, const char *key) {
    DFN_ASSERT(f && key);
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

dfn_status dfn_st_get(const dfn_st_file *f, const char *name, dfn_dtype dtype, int ndim,
                      const int64_t *shape, const dfn_st_tensor **out) {
    DFN_ASSERT(f && name && (ndim < 0 || shape || ndim == 0));
    if (out) *out = NULL;
    const dfn_st_tensor *t = dfn_st_find(f, name);
    if (!t) return dfn_set_error(DFN_ERR_FORMAT, "%s: missing tensor '%s'", f->path, name);
    if (t->dtype != dtype)
        return dfn_set_error(DFN_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected %s",
                             f->path, name, dfn_dtype_name(t->dtype), dfn_dtype_name(dtype));
    if (ndim >= 0) {
        int same = t->ndim == ndim;
        for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
        if (!same) {
            char got[256], want[256];
            return dfn_set_error(DFN_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s",
                                 f->path, name, dfn_format_shape(got, sizeof got, t->ndim, t->shape),
                                 dfn_format_shape(want, sizeof want, ndim, shape));
        }
    }
    if (out) *out = t;
    return DFN_OK;
}

dfn_status dfn_st_read_f32(const dfn_st_file *f, const char *name, int ndim,
                           const int64_t *shape, float *out) {
    DFN_ASSERT(out);
    const dfn_st_tensor *t;
    dfn_status st = dfn_st_get(f, name, DFN_DTYPE_F32, ndim, shape, &t);
    if (st != DFN_OK) return st;
    if (t->nbytes) memcpy(out, t->data, t->nbytes);
    return DFN_OK;
}

/* ================================================================ writer */

typedef struct {
    char *name;
    dfn_dtype dtype;
    int ndim;
    int64_t shape[DFN_ST_MAX_DIMS];
    size_t nbytes;
    const void *data;
} writer_entry;

typedef struct {
    char *key, *value;
} writer_meta;

struct dfn_st_writer {
    writer_entry *entries;
    int n, cap;
    writer_meta *meta;
    int n_meta, meta_cap;
};

dfn_st_writer *dfn_st_writer_new(void) { return dfn_calloc(1, sizeof(dfn_st_writer)); }

void dfn_st_writer_free(dfn_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->entries[i].name);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->entries);
    free(w->meta);
    free(w);
}

/* Grows an array of `size`-byte elements to hold at least n + 1 (doubling). */
static void *grow(void *p, int n, int *cap, size_t size) {
    if (n < *cap) return p;
    int new_cap = *cap ? *cap * 2 : 16;
    DFN_ASSERT(new_cap > n);
    void *q = dfn_malloc((size_t)new_cap * size);
    if (n) memcpy(q, p, (size_t)n * size);
    free(p);
    *cap = new_cap;
    return q;
}

dfn_status dfn_st_writer_add(dfn_st_writer *w, const char *name, dfn_dtype dtype, int ndim,
                             const int64_t *shape, const void *data) {
    DFN_ASSERT(w && name && (shape || ndim == 0));
    DFN_ASSERT((int)dtype >= 0 && dtype < DFN_DTYPE_COUNT);
    if (strcmp(name, "__metadata__") == 0)
        return dfn_set_error(DFN_ERR_ARG, "safetensors: a tensor cannot be named \"__metadata__\"");
    if (!valid_utf8((const unsigned char *)name, strlen(name)))
        return dfn_set_error(DFN_ERR_ARG, "safetensors: tensor name '%s' is not valid UTF-8", name);
    if (ndim < 0 || ndim > DFN_ST_MAX_DIMS)
        return dfn_set_error(DFN_ERR_ARG, "safetensors: tensor '%s' has %d dimensions (0..%d allowed)",
                             name, ndim, DFN_ST_MAX_DIMS);
    writer_entry e = {.dtype = dtype, .ndim = ndim, .data = data};
    for (int d = 0; d < ndim; d++) e.shape[d] = shape[d];
    size_t numel;
    if (shape_bytes(ndim, e.shape, dfn_dtype_size(dtype), &numel, &e.nbytes) != 0)
        return dfn_set_error(DFN_ERR_ARG, "safetensors: tensor '%s' has a negative or too large shape",
                             name);
    DFN_ASSERT(data || e.nbytes == 0);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->entries[i].name, name) == 0)
            return dfn_set_error(DFN_ERR_ARG, "safetensors: duplicate tensor '%s'", name);
    w->entries = grow(w->entries, w->n, &w->cap, sizeof *w->entries);
    e.name = copy_string(name);
    w->entries[w->n++] = e;
    return DFN_OK;
}

dfn_status dfn_st_writer_add_f32(dfn_st_writer *w, const char *name, int ndim, const int *shape,
                                 const float *data) {
    DFN_ASSERT(ndim >= 0 && (shape || ndim == 0));
    int64_t s[DFN_ST_MAX_DIMS];
    if (ndim > DFN_ST_MAX_DIMS)
        return dfn_set_error(DFN_ERR_ARG, "safetensors: tensor '%s' has %d dimensions (0..%d allowed)",
                             name, ndim, DFN_ST_MAX_DIMS);
    for (int d = 0; d < ndim; d++) s[d] = shape[d];
    return dfn_st_writer_add(w, name, DFN_DTYPE_F32, ndim, s, data);
}

dfn_status dfn_st_writer_set_metadata(dfn_st_writer *w, const char *key, const char *value) {
    DFN_ASSERT(w && key && value);
    if (!valid_utf8((const unsigned char *)key, strlen(key)) ||
        !valid_utf8((const unsigned char *)value, strlen(value)))
        return dfn_set_error(DFN_ERR_ARG, "safetensors: metadata '%s' is not valid UTF-8", key);
    for (int i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = copy_string(value);
            return DFN_OK;
        }
    }
    w->meta = grow(w->meta, w->n_meta, &w->meta_cap, sizeof *w->meta);
    w->meta[w->n_meta].key = copy_string(key);
    w->meta[w->n_meta].value = copy_string(value);
    w->n_meta++;
    return DFN_OK;
}

/* A growable string for the header JSON. We print the header ourselves rather
 * than with cJSON because cJSON prints numbers through doubles ("1e+16"), and
 * offsets must be plain integers for other readers. */
typedef struct {
    char *s;
    size_t len, cap;
} strbuf;

static void sb_append(strbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap) cap *= 2;
        char *p = dfn_malloc(cap);
        if (b->len) memcpy(p, b->s, b->len);
        free(b->s);
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(strbuf *b, const char *s) { sb_append(b, s, strlen(s)); }

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    DFN_ASSERT(n >= 0 && (size_t)n < sizeof tmp); /* only used for short numbers */
    sb_append(b, tmp, (size_t)n);
}

/* A JSON string literal: quotes, backslashes and control characters escaped;
 * other bytes (valid UTF-8, checked on add) are copied. */
static void sb_json_string(strbuf *b, const char *s) {
    sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\r': sb_puts(b, "\\r"); break;
        case '\t': sb_puts(b, "\\t"); break;
        default:
            if (*p < 0x20) sb_printf(b, "\\u%04x", *p);
            else sb_append(b, (const char *)p, 1);
        }
    }
    sb_puts(b, "\"");
}

dfn_status dfn_st_writer_save(const dfn_st_writer *w, const char *path) {
    DFN_ASSERT(w && path);
    strbuf h = {0};
    sb_puts(&h, "{");
    if (w->n_meta) {
        sb_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) sb_puts(&h, ",");
            sb_json_string(&h, w->meta[i].key);
            sb_puts(&h, ":");
            sb_json_string(&h, w->meta[i].value);
        }
        sb_puts(&h, "}");
    }
    uint64_t offset = 0;
    for (int i = 0; i < w->n; i++) {
        const writer_entry *e = &w->entries[i];
        if (i || w->n_meta) sb_puts(&h, ",");
        sb_json_string(&h, e->name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dfn_dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++) sb_printf(&h, d ? ",%" PRId64 : "%" PRId64, e->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", offset, offset + e->nbytes);
        offset += e->nbytes;
    }
    sb_puts(&h, "}");
    /* Pad with spaces (allowed trailing JSON whitespace) so that 8 + header
     * length is a multiple of 8: the data section then starts 8-byte aligned,
     * and a reader that maps the file can use F32/F64 tensors in place. */
    while (h.len % 8) sb_puts(&h, " ");

    unsigned char len_bytes[8];
    for (int i = 0; i < 8; i++) len_bytes[i] = (unsigned char)((uint64_t)h.len >> (8 * i));

    dfn_atomic_file af;
    dfn_status st = dfn_atomic_open(&af, path);
    if (st != DFN_OK) goto fail;
    dfn_atomic_write(&af, len_bytes, 8);
    dfn_atomic_write(&af, h.s, h.len);
    for (int i = 0; i < w->n; i++) dfn_atomic_write(&af, w->entries[i].data, w->entries[i].nbytes);
    st = dfn_atomic_commit(&af);
fail:
    free(h.s);
    return st;
}

/* idx.c - MNIST / Fashion-MNIST IDX files, gzipped or plain.
 *
 * The IDX format (LeCun et al., yann.lecun.com/exdb/mnist) is a 4-byte magic
 * number, then one big-endian uint32 size per dimension, then the data in
 * row-major order:
 *
 *     magic  00 00 08 03     (two zero bytes, type 0x08 = unsigned byte, 3 dimensions)
 *     sizes  N, rows, cols   (big-endian uint32 each)
 *     data   N * rows * cols bytes
 *
 * Label files have magic 00 00 08 01 and one dimension, N. zlib's gzread reads
 * gzip streams and passes plain files through unchanged, so both kinds load
 * with the same code. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/data.h"

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u

/* Opens path for gzread. open() first, so that a missing file reports errno
 * faithfully (gzopen does not promise to). */
static dfn_status open_gz(const char *path, gzFile *out) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return dfn_set_error(DFN_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        close(fd);
        return dfn_set_error(DFN_ERR_IO, "%s: is a directory, not an IDX file", path);
    }
    gzFile gz = gzdopen(fd, "rb"); /* owns fd from here on */
    if (!gz) {
        close(fd);
        return dfn_set_error(DFN_ERR_IO, "%s: cannot open (out of memory in zlib)", path);
    }
    *out = gz;
    return DFN_OK;
}

/* Reads up to n bytes; returns how many came. A read error or a damaged gzip
 * stream (truncated, bad checksum) sets *zerr to zlib's message. */
static size_t gz_read_all(gzFile gz, void *buf, size_t n, const char **zerr) {
    unsigned char *p = buf;
    size_t got = 0;
    *zerr = NULL;
    while (got < n) {
        size_t want = n - got;
        if (want > (1u << 30)) want = 1u << 30; /* gzread counts in unsigned int */
        int r = gzread(gz, p + got, (unsigned)want);
        if (r > 0) got += (size_t)r;
        if (r < (int)want) {
            int errnum = Z_OK;
            const char *msg = gzerror(gz, &errnum);
            if (errnum != Z_OK) {
                /* gzerror prefixes the name it was opened under, "<fd:3>: " after
                 * gzdopen; our messages name the path themselves. */
                const char *colon = strstr(msg, ": ");
                if (!strncmp(msg, "<fd:", 4) && colon) msg = colon + 2;
                *zerr = errnum == Z_ERRNO ? strerror(errno) : msg;
            }
            break;
        }
    }
    return got;
}

static uint32_t be32(const unsigned char *b) {
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads one IDX file of unsigned bytes with the given magic and ndims
 * dimensions: sizes into dims, the data (malloc'ed) into *bytes. `what` names
 * the kind of file for messages ("image", "label"). */
static dfn_status read_idx(const char *path, uint32_t magic, int ndims, const char *what,
                           uint32_t *dims, unsigned char **bytes) {
    *bytes = NULL;
    gzFile gz = NULL;
    unsigned char *data = NULL, header[4 + 4 * 3];
    const char *zerr;
    dfn_status st = open_gz(path, &gz);
    if (st != DFN_OK) return st;

    size_t hlen = 4 + 4 * (size_t)ndims;
    size_t got = gz_read_all(gz, header, 4, &zerr);
    if (got == 4 && be32(header) != magic) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: not an IDX %s file (magic 0x%08x, expected "
                           "0x%08x)", path, what, be32(header), magic);
        goto fail;
    }
    if (got == 4) got += gz_read_all(gz, header + 4, hlen - 4, &zerr);
    if (got < hlen) {
        st = zerr ? dfn_set_error(DFN_ERR_FORMAT, "%s: truncated or corrupt gzip data (zlib: %s)",
                                  path, zerr)
                  : dfn_set_error(DFN_ERR_FORMAT, "%s: truncated: %zu bytes, too short for an "
                                  "IDX %s header (%zu bytes)", path, got, what, hlen);
        goto fail;
    }

    size_t total = 1;
    for (int i = 0; i < ndims; i++) {
        dims[i] = be32(header + 4 + 4 * i);
        if (dims[i] == 0 || dims[i] > INT_MAX) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: dimension %d of the IDX header is %u",
                               path, i, dims[i]);
            goto fail;
        }
        if (total > SIZE_MAX / 4 / dims[i]) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: the IDX header's sizes overflow memory", path);
            goto fail;
        }
        total *= dims[i];
    }

    /* The header's sizes are not trusted with one big allocation: a corrupt
     * header could ask for terabytes. The buffer grows with the data that
     * actually arrives, so a short file fails as "truncated", not as a crash. */
    size_t cap = total < ((size_t)64 << 20) ? total : ((size_t)64 << 20), have = 0;
    data = malloc(cap);
    if (!data) goto oom;
    for (;;) {
        have += gz_read_all(gz, data + have, cap - have, &zerr);
        if (have < cap || cap == total) break;
        size_t grown = cap > total / 2 ? total : 2 * cap;
        unsigned char *p = realloc(data, grown);
        if (!p) goto oom;
        data = p;
        cap = grown;
    }
    if (have < total) {
        if (zerr)
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: truncated or corrupt gzip data after %zu of "
                               "%zu data bytes (zlib: %s)", path, have, total, zerr);
        else if (ndims == 3)
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: truncated: the header promises %u images of "
                               "%ux%u (%zu bytes) but only %zu bytes follow", path, dims[0],
                               dims[1], dims[2], total, have);
        else
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: truncated: the header promises %u %ss but "
                               "only %zu follow", path, dims[0], what, have);
        goto fail;
    }
    /* Read on to the end of the stream, so that zlib checks the gzip trailer's
     * CRC and length: damage after the last data byte is reported too. Bytes
     * after the data are allowed (and ignored). */
    unsigned char sink[256];
    while (gz_read_all(gz, sink, sizeof sink, &zerr) == sizeof sink) {}
    if (zerr) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: truncated or corrupt gzip data (zlib: %s)", path,
                           zerr);
        goto fail;
    }
    gzclose(gz);
    *bytes = data;
    return DFN_OK;
oom:
    st = dfn_set_error(DFN_ERR_IO, "%s: out of memory reading %zu bytes", path, total);
fail:
    free(data);
    if (gz) gzclose(gz);
    return st;
}

dfn_status dfn_dataset_load_idx(dfn_dataset **out, const char *images_path,
                                const char *labels_path, int num_classes) {
    DFN_ASSERT(out && images_path);
    *out = NULL;
    unsigned char *pixels = NULL, *labels = NULL;
    dfn_dataset *ds = NULL;
    uint32_t idims[3], ldims[1];
    dfn_status st;
    if (num_classes < 0 || num_classes > 256) {
        st = dfn_set_error(DFN_ERR_ARG, "%s: %d classes; IDX labels are bytes, so 1..256 (or 0 "
                           "to infer)", labels_path ? labels_path : images_path, num_classes);
        goto fail;
    }

    st = read_idx(images_path, IDX_MAGIC_IMAGES, 3, "image", idims, &pixels);
    if (st != DFN_OK) goto fail;
    if (labels_path) {
        st = read_idx(labels_path, IDX_MAGIC_LABELS, 1, "label", ldims, &labels);
        if (st != DFN_OK) goto fail;
        if (ldims[0] != idims[0]) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: %u labels, but %s has %u images", labels_path,
                               ldims[0], images_path, idims[0]);
            goto fail;
        }
        int max_label = 0;
        for (uint32_t i = 0; i < ldims[0]; i++)
            if (labels[i] > max_label) max_label = labels[i];
        if (num_classes == 0) num_classes = max_label + 1;
        for (uint32_t i = 0; i < ldims[0]; i++) {
            if (labels[i] >= num_classes) {
                st = dfn_set_error(DFN_ERR_FORMAT, "%s: label %d of image %u is out of range "
                                   "0..%d", labels_path, labels[i], i, num_classes - 1);
                goto fail;
            }
        }
    }

    int dims[3] = {1, (int)idims[1], (int)idims[2]};
    st = dfn_dataset_new(&ds, idims[0], 3, dims, labels ? num_classes : 0);
    if (st != DFN_OK) goto fail;
    dfn_pixels_to_unit(ds->data, pixels, ds->n * ds->sample_size);
    if (labels)
        for (size_t i = 0; i < ds->n; i++) ds->labels[i] = labels[i];
    free(pixels);
    free(labels);
    *out = ds;
    return DFN_OK;
fail:
    free(pixels);
    free(labels);
    dfn_dataset_free(ds);
    return st;
}

/* dir/name, with ".gz" when that file exists or when neither does (so a
 * missing file is reported under the name the distribution uses). */
static void idx_path(char *buf, size_t cap, const char *dir, const char *name) {
    struct stat sb;
    snprintf(buf, cap, "%s/%s", dir, name);
    if (stat(buf, &sb) == 0) return;
    snprintf(buf, cap, "%s/%s.gz", dir, name);
}

dfn_status dfn_dataset_load_fashion_mnist(dfn_dataset **out, const char *dir,
                                          const char *split) {
    DFN_ASSERT(out);
    *out = NULL;
    if (!dir) dir = DFN_FASHION_MNIST_DIR;
    const char *prefix;
    if (split && !strcmp(split, "train"))
        prefix = "train";
    else if (split && (!strcmp(split, "test") || !strcmp(split, "t10k")))
        prefix = "t10k";
    else
        return dfn_set_error(DFN_ERR_ARG, "fashion-mnist: unknown split '%s' (use train or test)",
                             split ? split : "(null)");
    char images[4096], labels[4096], name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
    idx_path(images, sizeof images, dir, name);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
    idx_path(labels, sizeof labels, dir, name);
    return dfn_dataset_load_idx(out, images, labels, 10);
}

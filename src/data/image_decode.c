/* image_decode.c - image file bytes -> 8-bit pixels: PNG by libpng, JPEG by
 * libjpeg-turbo, sizes checked first (image_decode.h). */
#include "data/image_decode.h"

#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>


#define MAX_SIDE 65535
#define MAX_DECODED (1ull << 30)
#define MAX_RATIO 1100 /* decoded bytes per file byte */

/* The header's claim against what the file can hold. */
static dfn_status check_claim(const char *name, size_t size, long w, long h, int bytes_per_pixel) {
    if (w < 1 || h < 1 || w > MAX_SIDE || h > MAX_SIDE)
        return dfn_set_error(DFN_ERR_FORMAT, "%s: the header claims %ld x %ld pixels (1 to %d a side)",
                             name, w, h, MAX_SIDE);
    const unsigned long long decoded = (unsigned long long)w * h * bytes_per_pixel;
    if (decoded > MAX_DECODED)
        return dfn_set_error(DFN_ERR_FORMAT, "%s: the header claims %ld x %ld pixels, %.1f GiB decoded "
                             "(at most 1 GiB an image)", name, w, h, decoded / 1073741824.0);
    if (decoded > (unsigned long long)MAX_RATIO * size + 65536)
        return dfn_set_error(DFN_ERR_FORMAT, "%s: the header claims %ld x %ld pixels (%llu bytes decoded), "
                             "more than a file of %zu bytes can hold", name, w, h, decoded, size);
    return DFN_OK;
}

/* ---------------------------------------------------------------- PNG (libpng) */

typedef struct {
    const unsigned char *p;
    size_t left;
    char message[200];
    jmp_buf jump;
} png_source;

static void png_read_bytes(png_structp png, png_bytep out, size_t n) {
    png_source *s = png_get_io_ptr(png);
    if (n > s->left) png_error(png, "the file ends early");
    memcpy(out, s->p, n);
    s->p += n;
    s->left -= n;
}

static void png_fail(png_structp png, png_const_charp message) {
    png_source *s = png_get_error_ptr(png);
    snprintf(s->message, sizeof s->message, "%s", message);
    longjmp(s->jump, 1);
}

static void png_ignore_warning(png_structp png, png_const_charp message) { (void)png, (void)message; }

static int is_png(const unsigned char *b, size_t n) { return n >= 8 && !png_sig_cmp(b, 0, 8); }

/* Every chunk's claimed length against the bytes left: libpng allocates a
 * chunk's claimed size before reading it (2 GB for a tEXt of 69 bytes). */
static dfn_status png_check_chunks(const char *name, const unsigned char *b, size_t size) {
    size_t at = 8;
    while (at < size) {
        if (size - at < 12)
            return dfn_set_error(DFN_ERR_FORMAT, "%s: not a readable PNG (the file ends inside a chunk "
                                 "header at byte %zu)", name, at);
        const uint32_t len = (uint32_t)b[at] << 24 | (uint32_t)b[at + 1] << 16 | (uint32_t)b[at + 2] << 8 | b[at + 3];
        if (len > size - at - 12)
            return dfn_set_error(DFN_ERR_FORMAT, "%s: not a readable PNG (a chunk at byte %zu claims %u "
                                 "bytes; the file has %zu after it)", name, at, len, size - at - 12);
        if (!memcmp(b + at + 4, "IEND", 4)) break;
        at += 12 + (size_t)len;
    }
    return DFN_OK;
}

/* Reads the header (info) and, if pixels is not NULL, the image: expanded to
 * 8 bits (palette to RGB, low bit depths up, 16 bits down), alpha dropped. */
static dfn_status png_decode(const char *name, const unsigned char *bytes, size_t size, int *w,
                             int *h, int *c, unsigned char **pixels) {
    /* volatile: changed between setjmp and a possible longjmp */
    unsigned char *volatile pix = NULL;
    png_bytep *volatile rows = NULL;
    dfn_status st = png_check_chunks(name, bytes, size);
    if (st != DFN_OK) return st;
    png_source src;
    memset(&src, 0, sizeof src);
    src.p = bytes, src.left = size;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_fail, png_ignore_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return dfn_set_error(DFN_ERR_IO, "%s: out of memory starting libpng", name);
    }
    if (setjmp(src.jump)) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: not a readable PNG (%s)", name, src.message);
        goto done;
    }
    png_set_read_fn(png, &src, png_read_bytes);
    /* a chunk whose CRC is wrong, critical or not, is an error */
    png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX); /* check_claim's, with its message */
    png_set_chunk_cache_max(png, 256);
    png_set_chunk_malloc_max(png, 1u << 22);
    png_read_info(png, info);
    const png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    const int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    /* the raw (filtered, one byte per row more) data the file must inflate */
    const int raw_bits = depth * png_get_channels(png, info);
    const unsigned long long raw = ((unsigned long long)width * raw_bits + 7) / 8 + 1;
    const int out_c = (color & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    if ((st = check_claim(name, size, (long)width, (long)height, out_c)) != DFN_OK) goto done;
    if (raw * height > 1032ull * size + 65536) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: the header claims %lu x %lu pixels at %d bits, more than "
                           "a PNG of %zu bytes can hold", name, (unsigned long)width,
                           (unsigned long)height, raw_bits, size);
        goto done;
    }
    *w = (int)width, *h = (int)height, *c = out_c;
    if (!pixels) goto done;
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if ((int)png_get_channels(png, info) != out_c || png_get_rowbytes(png, info) != (size_t)width * out_c)
        png_error(png, "unexpected layout after expansion");
    pix = dfn_malloc((size_t)width * height * out_c);
    rows = dfn_malloc(height * sizeof *rows);
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pix + (size_t)y * width * out_c;
    png_read_image(png, rows);
    png_read_end(png, NULL); /* the chunks after the image, CRCs included */
    *pixels = pix;
    pix = NULL;
done:
    free(rows);
    free(pix);
    png_destroy_read_struct(&png, &info, NULL);
    return st;
}

/* ---------------------------------------------------------------- JPEG (libjpeg-turbo) */

typedef struct {
    struct jpeg_error_mgr pub;
    char message[JMSG_LENGTH_MAX];
    jmp_buf jump;
} jpeg_errors;

static void jpeg_fail(j_common_ptr cinfo) {
    jpeg_errors *e = (jpeg_errors *)cinfo->err;
    e->pub.format_message(cinfo, e->message);
    longjmp(e->jump, 1);
}

static void jpeg_quiet(j_common_ptr cinfo, int level) { (void)cinfo, (void)level; }

/* A progressive file may hold any number of scans, each a pass over the whole
 * image: more than this many is refused (a few bytes each, they would take
 * minutes). */
#define MAX_JPEG_SCANS 500

static void jpeg_count_scans(j_common_ptr cinfo) {
    if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > MAX_JPEG_SCANS) {
        jpeg_errors *e = (jpeg_errors *)cinfo->err;
        snprintf(e->message, sizeof e->message, "more than %d scans", MAX_JPEG_SCANS);
        longjmp(e->jump, 1);
    }
}

static int is_jpeg(const unsigned char *b, size_t n) { return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }

/* As png_decode: the header, then if pixels is not NULL the image, as gray
 * (one component) or RGB (libjpeg converts YCbCr, CMYK is refused). */
static dfn_status jpeg_decode(const char *name, const unsigned char *bytes, size_t size, int *w,
                              int *h, int *c, unsigned char **pixels) {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr progress = {.progress_monitor = jpeg_count_scans};
    jpeg_errors err;
    unsigned char *volatile pix = NULL;
    dfn_status st = DFN_OK;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_fail;
    err.pub.emit_message = jpeg_quiet;
    if (setjmp(err.jump)) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: not a readable JPEG (%s)", name, err.message);
        goto done;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &progress;
    cinfo.mem->max_memory_to_use = 512L << 20;
    jpeg_mem_src(&cinfo, bytes, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    const int comps = cinfo.num_components;
    if (comps != 1 && comps != 3) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: a JPEG of %d components (gray or color only)", name, comps);
        goto done;
    }
    if ((st = check_claim(name, size, (long)cinfo.image_width, (long)cinfo.image_height, comps)) != DFN_OK)
        goto done;
    *w = (int)cinfo.image_width, *h = (int)cinfo.image_height, *c = comps;
    if (!pixels) goto done;
    cinfo.out_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if ((int)cinfo.output_components != comps || (int)cinfo.output_width != *w ||
        (int)cinfo.output_height != *h) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: not a readable JPEG (unexpected output layout)", name);
        goto done;
    }
    pix = dfn_malloc((size_t)*w * *h * comps);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = pix + (size_t)cinfo.output_scanline * *w * comps;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    *pixels = pix;
    pix = NULL;
done:
    free(pix);
    jpeg_destroy_decompress(&cinfo);
    return st;
}

/* ---------------------------------------------------------------- entry points */

static dfn_status unknown(const char *name) {
    return dfn_set_error(DFN_ERR_FORMAT, "%s: not a PNG or JPEG image", name);
}

dfn_status dfn_image_info(const char *name, const unsigned char *bytes, size_t size, int *width,
                          int *height, int *channels) {
    if (is_png(bytes, size)) return png_decode(name, bytes, size, width, height, channels, NULL);
    if (is_jpeg(bytes, size)) return jpeg_decode(name, bytes, size, width, height, channels, NULL);
    return unknown(name);
}

/* n pixels of c_in channels (1 or 3) to c_out (1 or 3). RGB to gray: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, the
 * BT.601 weights 0.299, 0.587, 0.114 in 16-bit fixed point, as PIL does. */
static void convert(unsigned char *out, int c_out, const unsigned char *in, int c_in, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = in + i * c_in;
        if (c_in == 1) {
            for (int k = 0; k < c_out; k++) out[i * c_out + k] = p[0];
        } else if (c_out == 3) {
            out[3 * i] = p[0], out[3 * i + 1] = p[1], out[3 * i + 2] = p[2];
        } else {
            out[i] = (unsigned char)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 32768u) >> 16);
        }
    }
}

dfn_status dfn_image_decode(dfn_image8 *out, const char *name, const unsigned char *bytes,
                            size_t size, int channels) {
    DFN_ASSERT(out && name && (bytes || !size) && (channels == 0 || channels == 1 || channels == 3));
    memset(out, 0, sizeof *out);
    unsigned char *native = NULL;
    int w, h, c;
    dfn_status st;
    if (is_png(bytes, size)) {
        st = png_decode(name, bytes, size, &w, &h, &c, &native);
        if (st != DFN_OK) return st;
    } else if (is_jpeg(bytes, size)) {
        st = jpeg_decode(name, bytes, size, &w, &h, &c, &native);
        if (st != DFN_OK) return st;
    } else {
        return unknown(name);
    }
    if (channels && channels != c) {
        unsigned char *conv = dfn_malloc((size_t)w * h * channels);
        convert(conv, channels, native, c, (size_t)w * h);
        free(native);
        native = conv;
        c = channels;
    }
    out->pixels = native, out->width = w, out->height = h, out->channels = c;
    return DFN_OK;
}

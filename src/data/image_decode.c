/* image_decode.c - image file bytes -> 8-bit pixels: PNG by libpng, JPEG / BMP
 * / PGM / PPM by stb_image, sizes checked first (image_decode.h). */
#include "data/image_decode.h"

#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <stb/stb_image.h>

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

/* Reads the header (info) and, if pixels is not NULL, the image: expanded to
 * 8 bits (palette to RGB, low bit depths up, 16 bits down), alpha dropped. */
static dfn_status png_decode(const char *name, const unsigned char *bytes, size_t size, int *w,
                             int *h, int *c, unsigned char **pixels) {
    /* volatile: changed between setjmp and a possible longjmp */
    unsigned char *volatile pix = NULL;
    png_bytep *volatile rows = NULL;
    png_source src;
    memset(&src, 0, sizeof src);
    src.p = bytes, src.left = size;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_fail, png_ignore_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return dfn_set_error(DFN_ERR_IO, "%s: out of memory starting libpng", name);
    }
    dfn_status st = DFN_OK;
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

/* ---------------------------------------------------------------- the rest (stb_image) */

/* The formats handed to stb, recognised by their first bytes (TGA, which has
 * none, is not among them; nor stb's GIF, PSD, HDR and PIC). */
static int stb_format(const unsigned char *b, size_t n) {
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return 1; /* JPEG */
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return 1;                    /* BMP */
    return n >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6');         /* PGM / PPM */
}

static dfn_status stb_header(const char *name, const unsigned char *bytes, size_t size, int *w,
                             int *h, int *comp) {
    if (size > (size_t)INT32_MAX)
        return dfn_set_error(DFN_ERR_FORMAT, "%s: %zu bytes, too large an image file", name, size);
    if (!stbi_info_from_memory(bytes, (int)size, w, h, comp))
        return dfn_set_error(DFN_ERR_FORMAT, "%s: not a readable image (%s)", name,
                             stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
    return check_claim(name, size, *w, *h, *comp);
}

/* ---------------------------------------------------------------- entry points */

static dfn_status unknown(const char *name) {
    return dfn_set_error(DFN_ERR_FORMAT, "%s: not a PNG, JPEG, BMP or binary PGM/PPM image", name);
}

dfn_status dfn_image_info(const char *name, const unsigned char *bytes, size_t size, int *width,
                          int *height, int *channels) {
    if (is_png(bytes, size)) return png_decode(name, bytes, size, width, height, channels, NULL);
    if (!stb_format(bytes, size)) return unknown(name);
    int comp;
    dfn_status st = stb_header(name, bytes, size, width, height, &comp);
    *channels = comp <= 2 ? 1 : 3;
    return st;
}

/* n pixels of c_in channels (1 to 4; alpha, the 2nd or 4th, dropped) to c_out
 * (1 or 3). RGB to gray: L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, the
 * BT.601 weights 0.299, 0.587, 0.114 in 16-bit fixed point, as PIL does. */
static void convert(unsigned char *out, int c_out, const unsigned char *in, int c_in, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = in + i * c_in;
        if (c_in <= 2) {
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
    } else if (stb_format(bytes, size)) {
        int hw, hh, hc;
        if ((st = stb_header(name, bytes, size, &hw, &hh, &hc)) != DFN_OK) return st;
        unsigned char *p = stbi_load_from_memory(bytes, (int)size, &w, &h, &c, 0);
        if (!p)
            return dfn_set_error(DFN_ERR_FORMAT, "%s: corrupt image (%s)", name,
                                 stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
        if (w != hw || h != hh) {
            stbi_image_free(p);
            return dfn_set_error(DFN_ERR_FORMAT, "%s: corrupt image (header and data disagree)", name);
        }
        /* into our own allocation: stb's is freed with stbi_image_free */
        const int keep = c <= 2 ? 1 : 3;
        native = dfn_malloc((size_t)w * h * keep);
        convert(native, keep, p, c, (size_t)w * h);
        stbi_image_free(p);
        c = keep;
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

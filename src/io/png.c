/* png.c - images as PNG files: one image, a grid of a batch, a reverse-trajectory strip.
 *
 * The models work on floats in [-1, 1]; a picture has bytes in 0..255. The
 * mapping is the affine one, v -> round((v + 1) * 127.5), clamped, so -1 is
 * black, 1 white and 0 the middle gray 128.
 *
 * All three writers go through one routine, write_cells(): a picture is a grid
 * of equally sized cells, each holding one (C, H, W) image upscaled by an
 * integer factor (nearest neighbour: every source pixel becomes a scale x scale
 * block, so 28 x 28 Fashion-MNIST digits stay crisp instead of blurry), cells
 * separated by a white border. A single image is the 1 x 1 grid without
 * border. A strip may carry a caption band on top; its text is drawn by cairo
 * into an 8-bit alpha mask, which we then blend in as black ink on white.
 *
 * Encoding is stb_image_write's (Debian's libstb), into memory; the bytes are
 * then written to "<path>.tmp" and renamed over path, so that a reader (a
 * browser refreshing a sample grid during training) never sees half a file.
 */
#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <stb/stb_image_write.h>

#include "core/core.h"
#include "core/files.h"
#include "diffusion/io.h"

/* The largest side we agree to write: far above any sensible grid, the limit of
 * cairo's image surfaces (captions), and it keeps every size below inside int. */
#define MAX_SIDE 32767

/* ---------------------------------------------------------------- file output */


/* Image writers only write PNG: a name ending in anything else is almost
 * certainly a mistake, and better caught now than by an image viewer. */
static dfn_status check_png_name(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (!dot || strcasecmp(dot, ".png") != 0)
        return dfn_set_error(DFN_ERR_ARG,
                             "%s: images are written as PNG, the name must end in .png", path);
    return DFN_OK;
}

/* stb calls this with consecutive pieces of the encoded file. */
typedef struct {
    unsigned char *data;
    size_t size, cap;
} membuf;

static void membuf_append(void *ctx, void *data, int size) {
    membuf *b = ctx;
    if (b->size + (size_t)size > b->cap) {
        size_t cap = DFN_MAX(b->cap * 2, b->size + (size_t)size);
        unsigned char *grown = dfn_malloc(cap);
        if (b->size) memcpy(grown, b->data, b->size);
        free(b->data);
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->size, data, (size_t)size);
    b->size += (size_t)size;
}

/* ---------------------------------------------------------------- pixels */

static inline uint8_t to_byte(float v) {
    if (!(v > -1.0f)) return 0; /* also NaN: a broken sample shows up black */
    if (v >= 1.0f) return 255;
    return (uint8_t)floorf((v + 1.0f) * 127.5f + 0.5f);
}

/* The caption band: cairo renders the text as coverage (0 = paper, 255 = ink)
 * into an A8 surface of the band's size. Each caption is centred on its
 * column; the font shrinks (down to 7 px) when the widest caption would not
 * fit the column, so narrow 28-pixel columns still get legible numbers. */
static dfn_status draw_captions(const char *path, uint8_t *ink, int width, int band, int cols,
                                int cell_w, int border, const char *const *captions) {
    dfn_status st = DFN_OK;
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_A8, width, band);
    cairo_t *cr = cairo_create(s);
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_set_font_options(cr, fo);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

    double size = 12, widest = 0;
    cairo_set_font_size(cr, size);
    for (int c = 0; c < cols; c++) {
        cairo_text_extents_t te;
        cairo_text_extents(cr, captions[c] ? captions[c] : "", &te);
        widest = DFN_MAX(widest, te.x_advance);
    }
    if (widest > cell_w - 2) size = DFN_MAX(7.0, size * (cell_w - 2) / widest);
    cairo_set_font_size(cr, size);
    cairo_set_source_rgba(cr, 0, 0, 0, 1);
    for (int c = 0; c < cols; c++) {
        if (!captions[c]) continue;
        cairo_text_extents_t te;
        cairo_text_extents(cr, captions[c], &te);
        double cx = border + c * (cell_w + border) + 0.5 * cell_w;
        cairo_move_to(cr, cx - 0.5 * te.x_advance, 0.5 * band + 0.36 * size);
        cairo_show_text(cr, captions[c]);
    }
    cairo_surface_flush(s);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        st = dfn_set_error(DFN_ERR_IO, "%s: cairo failed drawing captions: %s", path,
                           cairo_status_to_string(cairo_status(cr)));
        goto done;
    }
    const unsigned char *data = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < band; y++)
        memcpy(ink + (size_t)y * width, data + (size_t)y * stride, (size_t)width);
done:
    cairo_font_options_destroy(fo);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    return st;
}

/* The routine behind every writer: rows x cols cells, cell (r, c) showing the
 * (C, H, W) image cells[r * cols + c] (NULL: left blank), scaled, with
 * `border` white pixels around and between cells and, if captions is not
 * NULL, a band of DFN_CAPTION_HEIGHT pixels on top with one caption per column. */
static dfn_status write_cells(const char *path, const float *const *cells, int rows, int cols,
                              int C, int H, int W, int scale, int border,
                              const char *const *captions) {
    dfn_status st = check_png_name(path);
    uint8_t *pix = NULL, *ink = NULL;
    membuf out = {0};
    if (st != DFN_OK) return st;
    DFN_ASSERT(C == 1 || C == 3);
    DFN_ASSERT(rows > 0 && cols > 0 && H > 0 && W > 0);
    if (scale <= 0) scale = 1;

    int band = captions ? DFN_CAPTION_HEIGHT : 0;
    long cell_w = (long)W * scale, cell_h = (long)H * scale;
    long width = cols * (cell_w + border) + border;
    long height = band + rows * (cell_h + border) + border;
    if (cell_w > MAX_SIDE || cell_h > MAX_SIDE || width > MAX_SIDE || height > MAX_SIDE) {
        st = dfn_set_error(DFN_ERR_ARG,
                           "%s: the image would be %ld x %ld pixels (at most %d a side)", path,
                           width, height, MAX_SIDE);
        goto done;
    }

    /* White paper, then each cell: pixel (x, y) of a cell shows source pixel
     * (x / scale, y / scale), channels interleaved as PNG wants (HWC). */
    size_t row_bytes = (size_t)width * C;
    pix = dfn_malloc(row_bytes * (size_t)height);
    memset(pix, 255, row_bytes * (size_t)height);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            const float *img = cells[r * cols + c];
            if (!img) continue;
            long x0 = border + c * (cell_w + border), y0 = band + border + r * (cell_h + border);
            for (long y = 0; y < cell_h; y++) {
                uint8_t *dst = pix + (size_t)(y0 + y) * row_bytes + (size_t)x0 * C;
                const float *src = img + (y / scale) * W;
                for (long x = 0; x < cell_w; x++)
                    for (int ch = 0; ch < C; ch++)
                        dst[x * C + ch] = to_byte(src[(size_t)ch * H * W + x / scale]);
            }
        }
    }
    if (band) {
        ink = dfn_malloc((size_t)width * band);
        st = draw_captions(path, ink, (int)width, band, cols, (int)cell_w, border, captions);
        if (st != DFN_OK) goto done;
        for (size_t i = 0; i < (size_t)width * band; i++)
            for (int ch = 0; ch < C; ch++) pix[i * C + ch] = (uint8_t)(255 - ink[i]);
    }

    if (!stbi_write_png_to_func(membuf_append, &out, (int)width, (int)height, C, pix,
                                (int)row_bytes)) {
        st = dfn_set_error(DFN_ERR_IO, "%s: PNG encoding failed", path);
        goto done;
    }
    st = dfn_atomic_write_file(path, out.data, out.size);
done:
    free(out.data);
    free(ink);
    free(pix);
    return st;
}

/* ---------------------------------------------------------------- public writers */

dfn_status dfn_png_write(const char *path, const float *image, int channels, int height,
                         int width) {
    DFN_ASSERT(path && image);
    const float *cell = image;
    return write_cells(path, &cell, 1, 1, channels, height, width, 1, 0, NULL);
}

dfn_status dfn_png_write_grid(const char *path, const float *images, int batch, int channels,
                              int height, int width, int cols, int scale) {
    DFN_ASSERT(path && images && batch > 0);
    if (cols <= 0) {
        cols = 1;
        while (cols * cols < batch) cols++; /* ceil(sqrt(batch)): a square-ish grid */
    }
    cols = DFN_MIN(cols, batch);
    int rows = (batch + cols - 1) / cols;
    size_t per_image = (size_t)channels * height * width;
    const float **cells = dfn_calloc((size_t)rows * cols, sizeof *cells);
    for (int i = 0; i < batch; i++) cells[i] = images + i * per_image;
    dfn_status st =
        write_cells(path, cells, rows, cols, channels, height, width, scale, DFN_GRID_BORDER, NULL);
    free(cells);
    return st;
}

dfn_status dfn_png_write_strip(const char *path, const float *snapshots, int steps, int samples,
                               int channels, int height, int width, int scale,
                               const char *const *captions) {
    DFN_ASSERT(path && snapshots && steps > 0 && samples > 0);
    /* Stored (steps, samples, C, H, W); drawn with sample k on row k and
     * snapshot s in column s, so each row reads as one trajectory. */
    size_t per_image = (size_t)channels * height * width;
    const float **cells = dfn_malloc((size_t)steps * samples * sizeof *cells);
    for (int k = 0; k < samples; k++)
        for (int s = 0; s < steps; s++)
            cells[k * steps + s] = snapshots + ((size_t)s * samples + k) * per_image;
    dfn_status st = write_cells(path, cells, samples, steps, channels, height, width, scale,
                                DFN_GRID_BORDER, captions);
    free(cells);
    return st;
}

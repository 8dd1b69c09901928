/* diffusion/io.h - files in the formats users already have: PNG images, grids
 * and trajectory strips of images. Every writer of the library writes
 * "<path>.tmp" and renames it over path, so a reader never sees half a file. */
#ifndef DIFFUSION_IO_H
#define DIFFUSION_IO_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/core.h"

DFN_BEGIN_DECLS

/* Images are float (C, H, W) planes, NCHW for batches, with values in [-1, 1]
 * (the models' range): v -> round((v + 1) * 127.5) clamped to 0..255, so -1 is
 * black, 1 white and NaN black. C = 1 writes an 8-bit gray PNG, C = 3 an RGB
 * one. path must end in ".png" (DFN_ERR_ARG otherwise). Like every writer
 * below, they write "<path>.tmp" and rename it over path: a reader never sees
 * half a file, and a failure (DFN_ERR_IO, naming the file) leaves no .tmp. */
dfn_status dfn_png_write(const char *path, const float *image, int channels, int height,
                         int width);

/* White pixels around and between the cells of grids and strips. */
#define DFN_GRID_BORDER 2
/* Height of a strip's caption band in pixels. */
#define DFN_CAPTION_HEIGHT 20

/* `batch` images (B, C, H, W) in a grid of `cols` columns (<= 0: ceil(sqrt(B)))
 * and as many rows as needed, filled row by row; each image is upscaled
 * `scale` times (nearest neighbour; <= 0 means 1). The PNG is
 * cols * (W*scale + 2) + 2 pixels wide and rows * (H*scale + 2) + 2 high;
 * cells past the last image stay white. */
dfn_status dfn_png_write_grid(const char *path, const float *images, int batch, int channels,
                              int height, int width, int cols, int scale);

/* A reverse trajectory: `steps` snapshots of the same `samples` images, stored
 * (steps, samples, C, H, W) as a sampler collects them, drawn with one row per
 * sample and one column per snapshot (left to right as stored), laid out as a
 * grid of `steps` columns. captions: NULL, or `steps` strings (NULL entries
 * allowed), e.g. "t=999", drawn above the columns in a white band of
 * DFN_CAPTION_HEIGHT pixels added on top. */
dfn_status dfn_png_write_strip(const char *path, const float *snapshots, int steps, int samples,
                               int channels, int height, int width, int scale,
                               const char *const *captions);

DFN_END_DECLS

#endif

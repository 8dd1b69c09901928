/* image_decode.h - one image file's bytes as 8-bit pixels, for the image-folder
 * loader (images.c) and the fuzzing harness.
 *
 * PNG is decoded by libpng, which checks every chunk's CRC and zlib's Adler-32
 * and takes limits on sizes and chunk memory; JPEG by libjpeg-turbo (memory
 * capped, at most 500 progressive scans); both fuzzed for years by OSS-Fuzz
 * and here (fuzz/fuzz_image.c). Not stb_image: its own notes say it is not
 * meant for untrusted files, it ignores CRCs, and our fuzzing found its JPEG
 * decoder writing past a Huffman table and its PNM reader overflowing an int.
 * Other formats (BMP, PPM, ...) are refused: convert them to PNG.
 *
 * Before any pixel memory is taken, the header's claimed size is checked
 * against what a file of this size can hold: at most 65535 pixels a side, at
 * most 1 GiB decoded, and decoded bytes at most 1100 times the file's bytes
 * (deflate's limit is 1032:1; a JPEG codes an 8 x 8 block in at least a bit
 * per component). Alpha is dropped; gray and RGB are converted as asked, RGB
 * to gray with the BT.601 luma weights PIL's convert("L") uses. */
#ifndef DFN_DATA_IMAGE_DECODE_H
#define DFN_DATA_IMAGE_DECODE_H

#include <stddef.h>

#include "core/core.h"

typedef struct {
    unsigned char *pixels; /* (height, width, channels), malloc'ed */
    int width, height;
    int channels; /* 1 (gray) or 3 (RGB) */
} dfn_image8;

/* Width, height and channels (1 or 3, after dropping alpha) from the header.
 * `name` (the file's path) prefixes every message. */
dfn_status dfn_image_info(const char *name, const unsigned char *bytes, size_t size, int *width,
                          int *height, int *channels);

/* The pixels, converted to `channels` (1 or 3; 0 keeps the file's). On
 * failure out->pixels is NULL and the message names the file and the problem. */
dfn_status dfn_image_decode(dfn_image8 *out, const char *name, const unsigned char *bytes,
                            size_t size, int channels);

#endif

/* images.c - a folder of PNG and JPEG images as one dataset, decoded by
 * image_decode.c (libpng, libjpeg-turbo) and resampled by stb_image_resize
 * (Debian's libstb).
 *
 * Each image goes through: decode to 8-bit gray or RGB (alpha dropped) -> optionally scale so the shorter side is `size` -> center-crop to
 * size x size -> planes (HWC -> CHW) -> x / 127.5 - 1. Resampling stays in 8 bits
 * (rounded), so the result keeps the 256 levels of the source, as the usual
 * PIL-then-ToTensor pipeline does. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <string.h>

#include <stb/stb_image_resize.h>

#include "core/files.h"
#include "data/data.h"
#include "data/image_decode.h"

dfn_image_folder_params dfn_image_folder_params_init(void) {
    dfn_image_folder_params p = {.channels = 0, .size = 0, .resize = 1};
    return p;
}

static int has_image_extension(const char *name) {
    static const char *const exts[] = {"png", "jpg", "jpeg"};
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0; /* no extension, or a hidden file like ".png" */
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        const char *a = dot + 1, *b = exts[i];
        while (*a && *b && tolower((unsigned char)*a) == *b) a++, b++;
        if (!*a && !*b) return 1;
    }
    return 0;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names of the image files directly in dir, sorted; *count of them. */
static dfn_status list_images(const char *dir, char ***names_out, size_t *count) {
    *names_out = NULL;
    *count = 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    dfn_status st = DFN_OK;
    DIR *d = opendir(dir);
    if (!d) return dfn_set_error(DFN_ERR_IO, "%s: cannot open folder (%s)", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!has_image_extension(e->d_name)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(names, cap * sizeof *names);
            if (!p) goto oom;
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) goto oom;
        n++;
    }
    closedir(d);
    d = NULL;
    if (n == 0) {
        st = dfn_set_error(DFN_ERR_IO, "%s: no image files in folder (looked for .png .jpg .jpeg; "
                           "convert other formats to PNG first)", dir);
        goto fail;
    }
    /* readdir's order is the file system's; sorting makes sample i the same
     * file on every machine. */
    qsort(names, n, sizeof *names, compare_names);
    *names_out = names;
    *count = n;
    return DFN_OK;
oom:
    st = dfn_set_error(DFN_ERR_IO, "%s: out of memory listing the folder", dir);
fail:
    if (d) closedir(d);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

/* The size that brings the shorter side of a w x h image to `size`, keeping the
 * aspect ratio (rounded, and never below size). */
static void scaled_size(int w, int h, int size, int *nw, int *nh) {
    if (w <= h) {
        *nw = size;
        *nh = (int)(((long long)h * size + w / 2) / w);
    } else {
        *nh = size;
        *nw = (int)(((long long)w * size + h / 2) / h);
    }
    if (*nw < size) *nw = size;
    if (*nh < size) *nh = size;
}

/* One decoded image (HWC, 8-bit, c channels) of w x h into (c, size, size)
 * floats at out: resample if asked, center-crop, convert. Returns 0 if stb
 * fails to resample (out of memory). */
static int place_image(float *out, const unsigned char *pix, int w, int h, int c, int size,
                       int resize) {
    unsigned char *scaled = NULL;
    int nw = w, nh = h;
    if (resize) scaled_size(w, h, size, &nw, &nh);
    if (nw != w || nh != h) {
        /* Shrinking averages the source pixels each output pixel covers (a box
         * filter: area resampling); enlarging interpolates linearly between the
         * nearest source pixels (a tent filter: bilinear). */
        stbir_filter f = nw < w ? STBIR_FILTER_BOX : STBIR_FILTER_TRIANGLE;
        scaled = malloc((size_t)nw * nh * c);
        if (!scaled ||
            !stbir_resize(pix, w, h, 0, scaled, nw, nh, 0, STBIR_TYPE_UINT8, c,
                          STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP, f, f,
                          STBIR_COLORSPACE_LINEAR, NULL)) {
            free(scaled);
            return 0;
        }
        pix = scaled;
        w = nw;
        h = nh;
    }
    int x0 = (w - size) / 2, y0 = (h - size) / 2;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < size; y++) {
            float *row = out + ((size_t)ch * size + y) * size;
            const unsigned char *src = pix + ((size_t)(y0 + y) * w + x0) * c + ch;
            for (int x = 0; x < size; x++) row[x] = (float)src[(size_t)x * c] / 127.5f - 1.0f;
        }
    free(scaled);
    return 1;
}

dfn_status dfn_dataset_load_image_folder(dfn_dataset **out, const char *dir,
                                         const dfn_image_folder_params *params) {
    DFN_ASSERT(out && dir);
    *out = NULL;
    dfn_image_folder_params p = params ? *params : dfn_image_folder_params_init();
    char **names = NULL, path[4096];
    size_t n = 0;
    unsigned char *bytes = NULL;
    dfn_image8 img = {0};
    dfn_dataset *ds = NULL;
    dfn_status st;
    if (p.channels != 0 && p.channels != 1 && p.channels != 3) {
        st = dfn_set_error(DFN_ERR_ARG, "%s: %d channels requested; use 1 (gray), 3 (RGB) or 0 "
                           "(as the first image)", dir, p.channels);
        goto fail;
    }
    if (p.size < 0) {
        st = dfn_set_error(DFN_ERR_ARG, "%s: negative image size %d requested", dir, p.size);
        goto fail;
    }
    st = list_images(dir, &names, &n);
    if (st != DFN_OK) goto fail;

    /* First pass over the headers only: every size and channel problem is
     * found before any pixel is decoded, and the first image fixes the
     * dataset's shape. */
    int w0 = 0, h0 = 0, c0 = 0, c = p.channels, size = p.size;
    for (size_t i = 0; i < n; i++) {
        int w, h, comp;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t bytes_size;
        if (!(bytes = (unsigned char *)dfn_read_file(path, &bytes_size))) {
            st = DFN_ERR_IO; /* the message names the file */
            goto fail;
        }
        st = dfn_image_info(path, bytes, bytes_size, &w, &h, &comp);
        free(bytes);
        bytes = NULL;
        if (st != DFN_OK) goto fail;
        if (i == 0) {
            w0 = w, h0 = h, c0 = comp;
            if (!c) c = c0;
            if (!size) size = w < h ? w : h;
            continue;
        }
        if (!p.channels && comp != c0) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: %s image, but %s is %s (set channels to 1 or "
                               "3 to convert)", path, c0 == 1 ? "an RGB" : "a gray", names[0],
                               c0 == 1 ? "gray" : "RGB");
            goto fail;
        }
        if (!(p.resize && p.size) && (w != w0 || h != h0)) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: %dx%d pixels, but %s is %dx%d (images of "
                               "different sizes need resize = 1 and a size)", path, w, h,
                               names[0], w0, h0);
            goto fail;
        }
    }
    if (!(p.resize && p.size) && (w0 < size || h0 < size)) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s/%s: %dx%d pixels, smaller than the requested "
                           "%dx%d (set resize = 1 to scale up)", dir, names[0], w0, h0, size,
                           size);
        goto fail;
    }
    /* Without resampling, a non-square image is center-cropped to its shorter
     * side (or to size). */

    int dims[3] = {c, size, size};
    st = dfn_dataset_new(&ds, n, 3, dims, 0);
    if (st != DFN_OK) goto fail;
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t bytes_size;
        if (!(bytes = (unsigned char *)dfn_read_file(path, &bytes_size))) {
            st = DFN_ERR_IO; /* the message names the file */
            goto fail;
        }
        st = dfn_image_decode(&img, path, bytes, bytes_size, c);
        free(bytes);
        bytes = NULL;
        if (st != DFN_OK) goto fail;
        const int w = img.width, h = img.height;
        if (!(p.resize && p.size) && (w != w0 || h != h0)) { /* changed since the first pass */
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: %dx%d pixels, but %s is %dx%d", path, w, h,
                               names[0], w0, h0);
            goto fail;
        }
        if (!place_image(ds->data + i * ds->sample_size, img.pixels, w, h, c, size,
                         p.resize && p.size)) {
            st = dfn_set_error(DFN_ERR_IO, "%s: out of memory resizing %dx%d to %d", path, w, h,
                               size);
            goto fail;
        }
        free(img.pixels);
        img.pixels = NULL;
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    *out = ds;
    return DFN_OK;
fail:
    free(bytes);
    free(img.pixels);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    dfn_dataset_free(ds);
    return st;
}

/* degrade.c - known degradations of images, the yardstick a sample-quality
 * metric must order correctly before it is trusted to rank models (Heusel et
 * al. 2017 section 4 did the same for FID with noise, blur and swirls):
 *
 *   noise:S     x + S z, z ~ N(0, 1) per pixel, clamped to [-1, 1]
 *   blur:S      a Gaussian blur of standard deviation S pixels, separable, the
 *               kernel cut at 3S (at least one pixel each side) and normalised,
 *               the image's edge pixels repeated beyond its borders
 *   pure-noise  every pixel replaced by U(-1, 1)
 *
 * Images are (n, C, H, W) in [-1, 1]; the draws are Philox(seed) in pixel
 * order, so a set degrades to the same bits every time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"

/* One row of length len (stride step) convolved with the kernel k[-r..r]. */
static void blur_line(float *out, const float *in, size_t len, size_t step, const float *k, int r) {
    for (size_t i = 0; i < len; i++) {
        double acc = 0;
        for (int j = -r; j <= r; j++) {
            long at = (long)i + j;
            at = at < 0 ? 0 : at >= (long)len ? (long)len - 1 : at;
            acc += (double)k[j] * in[(size_t)at * step];
        }
        out[i * step] = (float)acc;
    }
}

static void blur(float *x, size_t n, int C, int H, int W, double sigma) {
    const int r = DFN_MAX(1, (int)ceil(3 * sigma));
    float *kbuf = dfn_malloc((size_t)(2 * r + 1) * sizeof(float)), *k = kbuf + r;
    double sum = 0;
    for (int j = -r; j <= r; j++) sum += exp(-0.5 * j * j / (sigma * sigma));
    for (int j = -r; j <= r; j++) k[j] = (float)(exp(-0.5 * j * j / (sigma * sigma)) / sum);
    const size_t plane = (size_t)H * W;
#pragma omp parallel
    {
        float *tmp = dfn_malloc(plane * sizeof(float));
#pragma omp for schedule(static)
        for (long p = 0; p < (long)(n * (size_t)C); p++) {
            float *img = x + (size_t)p * plane;
            for (int y = 0; y < H; y++) /* rows into tmp */
                blur_line(tmp + (size_t)y * W, img + (size_t)y * W, (size_t)W, 1, k, r);
            for (int c = 0; c < W; c++) /* then columns back */
                blur_line(img + c, tmp + c, (size_t)H, (size_t)W, k, r);
        }
        free(tmp);
    }
    free(kbuf);
}

dfn_status dfn_degrade_images(float *x, size_t n, int C, int H, int W, const char *spec,
                              uint64_t seed) {
    DFN_ASSERT(x && spec && C > 0 && H > 0 && W > 0);
    const size_t count = n * (size_t)C * H * W;
    dfn_rng rng = dfn_rng_init(seed);
    char *end = NULL;
    if (!strcmp(spec, "pure-noise")) {
        dfn_rng_uniform(&rng, x, count);
        for (size_t i = 0; i < count; i++) x[i] = 2 * x[i] - 1;
        return DFN_OK;
    }
    const int is_noise = !strncmp(spec, "noise:", 6), is_blur = !strncmp(spec, "blur:", 5);
    const double s = is_noise ? strtod(spec + 6, &end) : is_blur ? strtod(spec + 5, &end) : NAN;
    if (!(is_noise || is_blur) || !end || *end || !(s > 0 && s <= 1000))
        return dfn_set_error(DFN_ERR_ARG,
                             "degradation '%s': expected noise:S (S > 0, on the [-1, 1] scale), "
                             "blur:S (S > 0 pixels) or pure-noise", spec);
    if (is_blur) {
        blur(x, n, C, H, W, s);
        return DFN_OK;
    }
    float *z = dfn_malloc(count * sizeof(float));
    dfn_rng_normal(&rng, z, count);
    for (size_t i = 0; i < count; i++) {
        const float v = x[i] + (float)s * z[i];
        x[i] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
    }
    free(z);
    return DFN_OK;
}

/* preprocess.c - pixel scaling, per-feature standardisation, random flips,
 * and the PSNR of an image against its reference. */
#include <math.h>
#include <string.h>

#include "data/data.h"

/* x / 127.5 - 1 (Ho et al. 2020, section 3.3: "image data consists of integers
 * in {0, ..., 255} scaled linearly to [-1, 1]"). 255 / 127.5 is exactly 2 in
 * binary floating point, so the end points come out as exactly -1 and 1. */
void dfn_pixels_to_unit(float *out, const uint8_t *in, size_t n) {
    DFN_ASSERT((out && in) || n == 0);
    for (size_t i = 0; i < n; i++) out[i] = (float)in[i] / 127.5f - 1.0f;
}

void dfn_unit_to_pixels(uint8_t *out, const float *in, size_t n) {
    DFN_ASSERT((out && in) || n == 0);
    for (size_t i = 0; i < n; i++) {
        float v = (in[i] + 1.0f) * 127.5f;
        /* Round half up; clamp to [0, 255]. NaN fails both comparisons: 0. */
        out[i] = v >= 255.0f ? 255 : v > 0.0f ? (uint8_t)(v + 0.5f) : 0;
    }
}

void dfn_dataset_feature_stats(const dfn_dataset *ds, float *mean, float *std) {
    DFN_ASSERT(ds && mean && std);
    size_t m = ds->sample_size;
    double *sum = dfn_calloc(m, sizeof(double)), *sq = dfn_calloc(m, sizeof(double));
    /* Two passes (mean, then squared deviations) avoid the cancellation of
     * E[x^2] - E[x]^2 when a feature's mean is large against its spread. */
    for (size_t i = 0; i < ds->n; i++) {
        const float *x = ds->data + i * m;
        for (size_t j = 0; j < m; j++) sum[j] += x[j];
    }
    for (size_t j = 0; j < m; j++) sum[j] /= (double)ds->n;
    for (size_t i = 0; i < ds->n; i++) {
        const float *x = ds->data + i * m;
        for (size_t j = 0; j < m; j++) {
            double d = x[j] - sum[j];
            sq[j] += d * d;
        }
    }
    for (size_t j = 0; j < m; j++) {
        double s = sqrt(sq[j] / (double)ds->n);
        mean[j] = (float)sum[j];
        std[j] = s > 1e-12 ? (float)s : 1.0f; /* a constant feature is only shifted */
    }
    free(sum);
    free(sq);
}

void dfn_dataset_standardize(dfn_dataset *ds, const float *mean, const float *std) {
    DFN_ASSERT(ds && mean && std);
    size_t m = ds->sample_size;
    for (size_t j = 0; j < m; j++) DFN_ASSERT(std[j] > 0);
    for (size_t i = 0; i < ds->n; i++) {
        float *x = ds->data + i * m;
        for (size_t j = 0; j < m; j++) x[j] = (x[j] - mean[j]) / std[j];
    }
}

void dfn_unstandardize(float *x, size_t n, size_t d, const float *mean, const float *std) {
    DFN_ASSERT((x && mean && std) || n == 0);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) x[i * d + j] = x[i * d + j] * std[j] + mean[j];
}

void dfn_hflip_image(float *x, int c, int h, int w) {
    for (int r = 0; r < c * h; r++) {
        float *row = x + (size_t)r * w;
        for (int a = 0, b = w - 1; a < b; a++, b--) {
            float t = row[a];
            row[a] = row[b];
            row[b] = t;
        }
    }
}

void dfn_random_hflip(float *x, size_t n, int c, int h, int w, dfn_rng *rng) {
    DFN_ASSERT((x || n == 0) && rng && c > 0 && h > 0 && w > 0);
    float *u = dfn_malloc((n ? n : 1) * sizeof(float));
    dfn_rng_uniform(rng, u, n);
    for (size_t i = 0; i < n; i++)
        if (u[i] < 0.5f) dfn_hflip_image(x + i * (size_t)c * h * w, c, h, w);
    free(u);
}

double dfn_psnr(const float *x, const float *ref, size_t n) {
    DFN_ASSERT(x && ref && n > 0);
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)x[i] - ref[i];
        se += d * d;
    }
    return 10.0 * log10(4.0 / DFN_MAX(se / n, 1e-20));
}

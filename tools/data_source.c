/* data_source.c - `--data SPEC`: where the training (or reference) data come from.
 *
 *   fashion-mnist[:train|:test]   Debian's dataset-fashion-mnist
 *   mnist:DIR[:train|:test]       MNIST-style gzipped IDX files in DIR
 *   idx:IMAGES[,LABELS]           one IDX image file (and its labels)
 *   images:DIR                    a folder of PNG/JPEG images (--image-size, --image-channels)
 *   npy:FILE                      N x D vectors or N x C x H x W images (uint8 scaled to [-1, 1])
 *   csv:FILE                      N rows of D numbers (--label-column for labels)
 *   toy:NAME                      moons, 8gaussians, swissroll, checkerboard, curves (--n samples)
 *   mixture:FILE                  a Gaussian mixture from JSON (--n samples):
 *                                 {"weights": [0.7, 0.3], "means": [[-2, 0], [2, 0]],
 *                                  "stds": [0.5, 0.5]}   or "covs": [[[..d x d..]], ...]
 *
 * and dfn_data_options.limit (--limit N) keeps the first N samples of any of them.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "core/files.h"
#include "data_source.h"
#include "io/npy.h"

dfn_status dfn_cli_load_npy(dfn_dataset **out, const char *path) {
    *out = NULL;
    dfn_npy_array a;
    dfn_status st = dfn_npy_read(path, &a);
    if (st) return st;
    int dims[3], nd = 0;
    if (a.ndim == 2) {
        dims[0] = (int)a.shape[1];
        nd = 1;
    } else if (a.ndim == 3 || a.ndim == 4) {
        dims[0] = a.ndim == 4 ? (int)a.shape[1] : 1;
        dims[1] = (int)a.shape[a.ndim - 2];
        dims[2] = (int)a.shape[a.ndim - 1];
        nd = 3;
    } else {
        char shape[128];
        st = dfn_set_error(DFN_ERR_FORMAT,
                           "%s: an array of shape %s (%d dimension%s); expected N x D vectors, "
                           "N x H x W or N x C x H x W images",
                           path, dfn_npy_format_shape(shape, sizeof shape, a.ndim, a.shape), a.ndim,
                           a.ndim == 1 ? "" : "s");
        dfn_npy_free(&a);
        return st;
    }
    if (a.dtype == DFN_DTYPE_U8)
        for (size_t i = 0; i < a.numel; i++) a.data[i] = a.data[i] / 127.5f - 1.0f;
    st = dfn_dataset_from_array(out, a.data, (size_t)a.shape[0], nd, dims, NULL, 0);
    if (st) st = dfn_set_error(st, "%s: %s", path, dfn_last_error());
    dfn_npy_free(&a);
    return st;
}

/* dir/name.gz if it exists, else dir/name (the loader reports a missing file). */
static const char *idx_file(char *buf, size_t n, const char *dir, const char *name) {
    struct stat st;
    if (snprintf(buf, n, "%s/%s.gz", dir, name) < (int)n && stat(buf, &st) == 0) return buf;
    if (snprintf(buf, n, "%s/%s", dir, name) >= (int)n) buf[0] = 0;
    return buf;
}

/* n finite (as floats) numbers from a JSON array of exactly n, into out; 0 if
 * it is not one. */
static int json_vector(const cJSON *a, float *out, int n) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return 0;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) {
        if (!cJSON_IsNumber(v) || !isfinite((float)v->valuedouble)) return 0;
        out[i++] = (float)v->valuedouble;
    }
    return 1;
}

/* rows arrays of cols numbers each (json_vector), row after row. */
static int json_rows(const cJSON *a, float *out, int rows, int cols) {
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != rows) return 0;
    int r = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) if (!json_vector(v, out + (size_t)r++ * cols, cols)) return 0;
    return 1;
}

static dfn_status load_mixture(dfn_dataset **out, const char *path, const dfn_data_options *o) {
    char *text = dfn_read_text_file(path);
    if (!text) return dfn_set_error(DFN_ERR_IO, "%s: cannot read the mixture description", path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) return dfn_set_error(DFN_ERR_FORMAT, "%s: not valid JSON", path);
    dfn_status st = DFN_OK;
    enum { MAXK = 64, MAXD = 64 };
    float *w = dfn_malloc(MAXK * sizeof(float)), *mu = dfn_malloc(MAXK * MAXD * sizeof(float));
    float *sd = dfn_malloc(MAXK * sizeof(float)), *cov = NULL;
    const cJSON *jw = cJSON_GetObjectItemCaseSensitive(j, "weights");
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(j, "means");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "stds");
    const cJSON *jc = cJSON_GetObjectItemCaseSensitive(j, "covs");
    const int K = cJSON_IsArray(jw) ? cJSON_GetArraySize(jw) : 0;
    const int D = cJSON_IsArray(jm) ? cJSON_GetArraySize(cJSON_GetArrayItem(jm, 0)) : 0;
    if (K < 1 || K > MAXK || D < 1 || D > MAXD || !json_vector(jw, w, K) || !json_rows(jm, mu, K, D)) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: needs \"weights\" (K numbers) and \"means\" (K lists of D "
                                          "numbers), K <= %d, D <= %d, every number finite", path, MAXK, MAXD);
        goto done;
    }
    dfn_mixture_params mp = {D, K, w, mu, NULL, NULL};
    if (js) {
        if (!json_vector(js, sd, K)) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: \"stds\" needs %d finite numbers", path, K);
            goto done;
        }
        mp.stds = sd;
    } else if (jc) {
        cov = dfn_malloc((size_t)K * D * D * sizeof(float));
        const cJSON *m;
        int k = 0, ok = cJSON_IsArray(jc) && cJSON_GetArraySize(jc) == K;
        cJSON_ArrayForEach(m, jc) if (ok) ok = json_rows(m, cov + (size_t)k++ * D * D, D, D);
        if (!ok) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s: \"covs\" needs %d matrices of %d x %d finite numbers",
                               path, K, D, D);
            goto done;
        }
        mp.covs = cov;
    } else {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: needs \"stds\" or \"covs\"", path);
        goto done;
    }
    st = dfn_dataset_gaussian_mixture(out, o->n, &mp, o->seed);
    if (st) st = dfn_set_error(st, "%s: %s", path, dfn_last_error());
done:
    free(w), free(mu), free(sd), free(cov);
    cJSON_Delete(j);
    return st;
}

static dfn_status load_source(dfn_dataset **out, const char *spec, const dfn_data_options *o) {
    *out = NULL;
    const char *colon = strchr(spec, ':');
    size_t klen = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *arg = colon ? colon + 1 : "";
    char kind[32];
    snprintf(kind, sizeof kind, "%.*s", (int)(klen < sizeof kind ? klen : sizeof kind - 1), spec);
    if (!strcmp(kind, "fashion-mnist")) {
        const char *split = *arg ? arg : "train";
        return dfn_dataset_load_fashion_mnist(out, DFN_FASHION_MNIST_DIR, split);
    }
    if (!strcmp(kind, "mnist")) {
        char dir[2048], img[4096], lab[4096];
        snprintf(dir, sizeof dir, "%s", arg);
        const char *split = "train";
        char *c = strrchr(dir, ':');
        if (c && (!strcmp(c + 1, "train") || !strcmp(c + 1, "test"))) {
            split = !strcmp(c + 1, "test") ? "test" : "train";
            *c = 0;
        }
        const char *stem = !strcmp(split, "test") ? "t10k" : "train";
        char name[64];
        snprintf(name, sizeof name, "%s-images-idx3-ubyte", stem);
        idx_file(img, sizeof img, dir, name);
        snprintf(name, sizeof name, "%s-labels-idx1-ubyte", stem);
        idx_file(lab, sizeof lab, dir, name);
        return dfn_dataset_load_idx(out, img, lab, 10);
    }
    if (!strcmp(kind, "idx")) {
        char img[2048];
        snprintf(img, sizeof img, "%s", arg);
        char *comma = strchr(img, ',');
        const char *labels = NULL;
        if (comma) {
            *comma = 0;
            labels = comma + 1;
        }
        return dfn_dataset_load_idx(out, img, labels, labels ? 10 : 0);
    }
    if (!strcmp(kind, "images")) {
        dfn_image_folder_params p = dfn_image_folder_params_init();
        p.size = o->image_size;
        p.channels = o->image_channels;
        return dfn_dataset_load_image_folder(out, arg, &p);
    }
    if (!strcmp(kind, "npy")) return dfn_cli_load_npy(out, arg);
    if (!strcmp(kind, "csv")) return dfn_dataset_load_csv(out, arg, o->label_column);
    if (!strcmp(kind, "toy")) return dfn_dataset_toy(out, arg, o->n, o->seed);
    if (!strcmp(kind, "mixture")) return load_mixture(out, arg, o);
    return dfn_set_error(DFN_ERR_ARG,
                                "--data '%s': unknown source (fashion-mnist[:train|:test], mnist:DIR, "
                                "idx:IMAGES[,LABELS], images:DIR, npy:FILE, csv:FILE, toy:NAME, mixture:FILE)",
                                spec);
}

dfn_status dfn_cli_load_data(dfn_dataset **out, const char *spec, const dfn_data_options *o) {
    dfn_status st = load_source(out, spec, o);
    if (st || o->limit == 0 || dfn_dataset_count(*out) <= o->limit) return st;
    size_t *first = dfn_malloc(o->limit * sizeof(size_t)); /* seed 000's handful of images */
    for (size_t i = 0; i < o->limit; i++) first[i] = i;
    dfn_dataset *all = *out;
    st = dfn_dataset_subset(out, all, first, o->limit);
    free(first);
    dfn_dataset_free(all);
    return st;
}

/* cmd_analyze.c - `diffusion analyze DATA`: seed 000's covariance view of a
 * data set. The covariance of its dimensions (and the seed's similarity
 * matrix) as heat maps; its eigenvalue spectrum beside that of white noise of
 * the same shape (a signal with structure is low-rank); the share of variance
 * in the top k components; and "colored noise", white noise mapped to the
 * data's covariance (x = mean + U S^(1/2) z), written as samples: the Gaussian
 * baseline generator. Its MMD^2 and sliced Wasserstein distance to the data
 * are printed beside those of held-out data (the floor), white noise and,
 * with --checkpoint, a diffusion model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "core/core.h"
#include "core/files.h"
#include "data_source.h"
#include "diffusion.h"
#include "io/npy.h"
#include "tools.h"

#define MAX_ARGS 24
#define MAX_TOP 16

/* A heat map of the (d, d) double matrix m. */
static dfn_status save_heatmap(const char *dir, const char *name, const char *title, const double *m, int d) {
    float *f = dfn_malloc((size_t)d * d * sizeof(float));
    for (size_t i = 0; i < (size_t)d * d; i++) f[i] = (float)m[i];
    dfn_plot *p = dfn_plot_new(640, 560);
    dfn_plot_labels(p, title, "dimension", "dimension");
    dfn_plot_heatmap(p, f, d, d, 0, 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    dfn_status st = dfn_plot_save(p, path);
    dfn_plot_free(p);
    free(f);
    return st;
}

/* Covariance (d, d) and descending eigenvalues (d) of n vectors. */
static dfn_status spectrum_of(double *eig, double *mean, double *cov, const float *x, size_t n, int d) {
    dfn_status st = dfn_feature_stats(mean, cov, x, n, d);
    return st ? st : dfn_covariance_eigen(eig, NULL, cov, d);
}

/* share[k] = the share of the total variance in the top k + 1 of the d
 * descending eigenvalues (negative round-off counted as 0). */
static void variance_shares(double *share, const double *eig, int d) {
    double all = 0.0, top = 0.0;
    for (int i = 0; i < d; i++) all += fmax(eig[i], 0.0);
    for (int i = 0; i < d; i++) {
        top += fmax(eig[i], 0.0);
        share[i] = all > 0 ? top / all : 0.0;
    }
}

/* The fewest components whose share reaches frac. */
static int components_for(const double *share, int d, double frac) {
    int k = 1;
    while (k < d && share[k - 1] < frac) k++;
    return k;
}

/* The first m samples of the data, the colored noise and (if any) the model
 * drawn together: 2-D points as scatters, other vectors as curves in one
 * colour per set (samples.png); images as a grid per generator
 * (colored.png, model.png). */
static dfn_status save_samples(const char *dir, float *const sets[3], int m, const int *dims, int nd) {
    static const char *const label[3] = {"data", "colored noise", "model"}, *const file[3] = {NULL, "colored", "model"};
    static const long colour[3] = {0x1f77b4, 0xd62728, 0x2ca02c};
    const int n_sets = sets[2] ? 3 : 2;
    char path[4096];
    const size_t dim = nd == 3 ? (size_t)dims[0] * dims[1] * dims[2] : (size_t)dims[0];
    const char *const *names = label;
    if (nd == 3) {
        for (int k = 1; k < n_sets; k++) { /* the data themselves are not redrawn */
            snprintf(path, sizeof path, "%s/%s.png", dir, file[k]);
            dfn_status st = dfn_png_write_grid(path, sets[k], m < 64 ? m : 64, dims[0], dims[1], dims[2], 0,
                                               dims[1] < 64 ? 2 : 1);
            if (st) return st;
        }
        return DFN_OK;
    }
    dfn_plot *p = dfn_plot_new(800, 500);
    dfn_plot_labels(p, dim == 2 ? "data and generators" : "curves: data and generators", dim == 2 ? "x1" : "dimension",
                    dim == 2 ? "x2" : "value");
    for (int k = 0; k < n_sets; k++) {
        if (dim == 2) {
            dfn_plot_scatter(p, sets[k], m < 1000 ? m : 1000, names[k]);
            dfn_plot_style(p, colour[k], 0.35f, 0, 0);
            continue;
        }
        for (int b = 0; b < 4 && b < m; b++) {
            dfn_plot_line(p, NULL, sets[k] + (size_t)b * dim, (int)dim, b == 0 ? names[k] : NULL);
            dfn_plot_style(p, colour[k], 0.8f, 1.5f, 0);
        }
    }
    snprintf(path, sizeof path, "%s/samples.png", dir);
    dfn_status st = dfn_plot_save(p, path);
    dfn_plot_free(p);
    return st;
}

int cmd_analyze(int argc, char **argv) {
    const char *data = NULL, *out = NULL, *ckpt = NULL, *sampler = NULL, *top_arg = "1,2,5,10,20";
    long n_toy = 20000, samples = 2000, max_dim = 4096;
    int threads = 0, limit = 0, image_size = 0, image_channels = 0, steps = 0;
    uint64_t seed = 0;
    if (argc >= 2 && argv[1][0] != '-') { /* diffusion analyze DATA [options] */
        data = argv[1];
        argc--, argv++;
    }
    dfn_arg args[MAX_ARGS] = {
        {"--data", ARG_STRING, &data, "SPEC", "the data (or give it first): fashion-mnist, toy:curves, npy:FILE, ... as for train", 0},
        {"--out", ARG_STRING, &out, "DIR", "directory for the pictures and colored.npy (required)", 0},
        {"--n", ARG_LONG, &n_toy, "N", "samples drawn by toy: generators", 0},
        {"--limit", ARG_INT, &limit, "N", "the first N samples of the data only (0: all)", 0},
        {"--image-size", ARG_INT, &image_size, "S", "images: resize/crop to S x S", 0},
        {"--image-channels", ARG_INT, &image_channels, "C", "images: 1 gray or 3 RGB", 0},
        {"--samples", ARG_LONG, &samples, "M", "colored-noise (and model) samples, and the size of each compared set", 0},
        {"--top", ARG_STRING, &top_arg, "LIST", "print the share of variance in the top k components for each k", 0},
        {"--max-dim", ARG_LONG, &max_dim, "D", "refuse data of more dimensions (the covariances take 3 D^2 doubles)", 0},
        {"--checkpoint", ARG_STRING, &ckpt, "FILE", "also compare a diffusion model's samples", 0},
        {"--sampler", ARG_STRING, &sampler, "NAME", "with --checkpoint: the sampler (default: the process's)", 0},
        {"--steps", ARG_INT, &steps, "N", "with --checkpoint: sampler steps (0: its default)", 0},
        {"--seed", ARG_U64, &seed, "S", "random seed", 0},
        {"--threads", ARG_INT, &threads, "N", "threads (0: all cores); results do not depend on it", 0},
    };
    int n_args = 0;
    while (n_args < MAX_ARGS && args[n_args].name) n_args++;
    int rc = dfn_args_parse("analyze", args, n_args, argc, argv, "DATA --out DIR [options]");
    if (rc) return rc == 1 ? 0 : 2;
    if (!data || !out) {
        fprintf(stderr, "diffusion analyze: give the data (diffusion analyze DATA) and --out DIR\n");
        return 2;
    }
    int top[MAX_TOP], n_top = dfn_parse_int_list("analyze", "--top", top_arg, top, MAX_TOP);
    if (n_top < 1) return 2;
    if (n_toy < 1 || samples < 2 || max_dim < 1 || limit < 0 || threads < 0 || steps < 0) {
        fprintf(stderr, "diffusion analyze: --n and --max-dim must be >= 1, --samples >= 2, --limit, --steps and "
                        "--threads >= 0\n");
        return 2;
    }
    if (threads > 0) dfn_set_threads(threads);

    int status = 1;
    dfn_dataset *ds = NULL;
    dfn_pipeline *pipe = NULL;
    double *mean = NULL, *cov = NULL, *eig = NULL, *vec = NULL, *ncov = NULL, *neig = NULL, *nmean = NULL;
    double *ceig = NULL;
    float *white = NULL, *colored = NULL, *model = NULL;
    char path[4096];
    dfn_data_options dopt = {(size_t)n_toy, seed, image_size, image_channels, -1, (size_t)limit};
    if (dfn_cli_load_data(&ds, data, &dopt)) goto fail;
    int dims[DFN_DATASET_MAX_DIMS], nd = dfn_dataset_shape(ds, dims);
    const size_t n = dfn_dataset_count(ds), dim = dfn_dataset_sample_size(ds);
    const int d = (int)dim;
    if (dim > (size_t)max_dim) {
        dfn_set_error(DFN_ERR_ARG, "%s: samples of %zu values; the covariance view needs 3 matrices of %zu x %zu "
                                   "doubles, %.1f GiB (raise --max-dim to %zu to allow it, or --image-size to shrink)",
                      data, dim, dim, dim, 3.0 * dim * dim * 8 / 1073741824.0, dim);
        goto fail;
    }
    if (n < 2) {
        dfn_set_error(DFN_ERR_ARG, "%s: %zu sample; a covariance needs at least 2", data, n);
        goto fail;
    }
    if (dfn_make_dir(out)) goto fail;
    const float *x = dfn_dataset_sample(ds, 0);
    const size_t D = dim;
    mean = dfn_malloc(D * sizeof(double));
    nmean = dfn_malloc(D * sizeof(double));
    cov = dfn_malloc(D * D * sizeof(double));
    ncov = dfn_malloc(D * D * sizeof(double));
    vec = dfn_malloc(D * D * sizeof(double));
    eig = dfn_malloc(D * sizeof(double));
    neig = dfn_malloc(D * sizeof(double));
    ceig = dfn_malloc(D * sizeof(double));
    printf("%s: %zu samples of %zu values\n", data, n, dim);

    /* the data: covariance, its eigen-decomposition, the similarity matrix */
    if (dfn_feature_stats(mean, cov, x, n, d) || dfn_covariance_eigen(eig, vec, cov, d)) goto fail;
    if (save_heatmap(out, "covariance.png", "covariance of the data's dimensions", cov, d)) goto fail;
    const size_t n_sim = n < 2000 ? n : 2000; /* n d^2 exponentials: the first 2000 samples tell it */
    if (dfn_similarity_matrix(ncov, x, n_sim, d)) goto fail;
    if (save_heatmap(out, "similarity.png", "similarity 2 / (1 + exp|x_i - x_j|) of the dimensions", ncov, d)) goto fail;
    if (!(eig[0] > 0.0)) {
        dfn_set_error(DFN_ERR_ARG, "%s: every sample is the same (the covariance is 0): nothing to analyze", data);
        goto fail;
    }
    int rank = 0;
    for (int i = 0; i < d; i++) rank += eig[i] > 1e-6 * eig[0];
    if (n <= dim)
        printf("note: %zu samples for %zu dimensions: the covariance is singular (rank <= N - 1 = %zu); its "
               "eigenvalues past that are round-off, taken as 0, so the colored noise lies in the span of the data\n",
               n, dim, n - 1);
    double trace = 0.0;
    for (int i = 0; i < d; i++) trace += cov[(size_t)i * D + i];
    printf("covariance: trace %.6g, largest eigenvalue %.6g, effective rank %d of %d (eigenvalues above 1e-6 of "
           "the largest); similarity matrix over the first %zu samples\n", trace, eig[0], rank, d, n_sim);

    /* white noise of the same shape: a flat spectrum (Marchenko-Pastur around 1) */
    dfn_rng rng = dfn_rng_init(seed);
    white = dfn_malloc(n * D * sizeof(float));
    dfn_rng_normal(&rng, white, n * D);
    if (spectrum_of(neig, nmean, ncov, white, n, d)) goto fail;
    if (save_heatmap(out, "noise_covariance.png", "covariance of white noise, same shape", ncov, d)) goto fail;
    double *share[2] = {dfn_malloc(D * sizeof(double)), dfn_malloc(D * sizeof(double))};
    variance_shares(share[0], eig, d);
    variance_shares(share[1], neig, d);
    printf("%-34s", "share of variance in the top k:");
    for (int i = 0; i < n_top; i++)
        if (top[i] >= 1 && top[i] <= d) printf("  k=%-3d", top[i]);
    for (int s = 0; s < 2; s++) {
        printf("\n%-34s", s ? "  white noise" : "  data");
        for (int i = 0; i < n_top; i++)
            if (top[i] >= 1 && top[i] <= d) printf("  %.4f", share[s][top[i] - 1]);
    }
    printf("\ncomponents for 90%% of the variance: data %d, white noise %d; for 99%%: data %d\n",
           components_for(share[0], d, 0.9), components_for(share[1], d, 0.9), components_for(share[0], d, 0.99));
    free(share[0]);
    free(share[1]);

    /* colored noise: white noise with the data's mean and covariance */
    const size_t m = (size_t)samples;
    colored = dfn_malloc(m * D * sizeof(float));
    dfn_colored_noise(colored, m, d, mean, eig, vec, &rng);
    if (spectrum_of(ceig, nmean, ncov, colored, m, d)) goto fail;
    if (save_heatmap(out, "colored_covariance.png", "covariance of the colored noise", ncov, d)) goto fail;
    const int kc = rank < 10 ? (rank > 0 ? rank : 1) : 10;
    double worst = 0.0, diff2 = 0.0, norm2 = 0.0;
    for (int i = 0; i < kc; i++) worst = fmax(worst, fabs(ceig[i] - eig[i]) / eig[i]);
    for (size_t i = 0; i < D * D; i++) {
        diff2 += (ncov[i] - cov[i]) * (ncov[i] - cov[i]);
        norm2 += cov[i] * cov[i];
    }
    /* a covariance estimated from m Gaussian samples is off by E|C^ - C|_F^2 =
     * (tr(C)^2 + |C|_F^2) / m (E (C^_ij - C_ij)^2 = (C_ii C_jj + C_ij^2) / m) */
    printf("colored noise (%zu samples) vs the data: covariance off by %.4f of its norm (sampling alone: %.4f); "
           "top %d eigenvalues within %.4f relative (sampling: about %.4f each)\n",
           m, sqrt(diff2 / norm2), sqrt((trace * trace + norm2) / (double)m / norm2), kc, worst, sqrt(2.0 / (double)m));
    int64_t shape[4] = {(int64_t)m, dims[0], nd == 3 ? dims[1] : 0, nd == 3 ? dims[2] : 0};
    snprintf(path, sizeof path, "%s/colored.npy", out);
    if (dfn_npy_write_f32(path, colored, nd == 3 ? 4 : 2, shape)) goto fail;

    /* the spectra */
    dfn_plot *sp = dfn_plot_new(800, 500);
    dfn_plot_labels(sp, "eigenvalues of the covariance", "component", "eigenvalue");
    dfn_plot_log_y(sp, 1);
    const double *spectra[3] = {eig, neig, ceig};
    const char *spectra_names[3] = {"data", "white noise", "colored noise"};
    float *yv = dfn_malloc(D * sizeof(float));
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < D; i++) yv[i] = (float)spectra[k][i];
        dfn_plot_line(sp, NULL, yv, d, spectra_names[k]);
        dfn_plot_style(sp, -1, 0.9f, k == 2 ? 1.0f : 2.0f, d <= 100);
    }
    free(yv);
    snprintf(path, sizeof path, "%s/spectrum.png", out);
    dfn_status pst = dfn_plot_save(sp, path);
    dfn_plot_free(sp);
    if (pst) goto fail;

    /* a diffusion model's samples */
    if (ckpt) {
        if (dfn_pipeline_load(&pipe, ckpt)) goto fail;
        int mdims[3], mnd = dfn_pipeline_sample_shape(pipe, mdims);
        if (mnd != nd || memcmp(mdims, dims, (size_t)nd * sizeof(int))) {
            dfn_set_error(DFN_ERR_ARG, "--checkpoint %s makes samples of %zu values in another shape than "
                                       "%s's (%zu values)", ckpt, dfn_pipeline_sample_size(pipe), data, dim);
            goto fail;
        }
        model = dfn_malloc(m * D * sizeof(float));
        dfn_pipeline_sample_params spp = dfn_pipeline_sample_params_init(pipe);
        spp.sampler = sampler;
        spp.sampler_params.steps = steps;
        spp.seed = seed;
        if (dfn_pipeline_sample(pipe, model, (int)m, &spp, NULL)) goto fail;
        snprintf(path, sizeof path, "%s/model.npy", out);
        if (dfn_npy_write_f32(path, model, nd == 3 ? 4 : 2, shape)) goto fail;
    }

    /* each generator against the data: the first m samples are the reference,
     * the next m (where there are) the floor that a perfect generator reaches */
    const size_t ref_n = n / 2 < m ? n / 2 : m;
    const char *names[5] = {"data", "held-out data", "white noise", "colored noise", "model"};
    float *sets[5] = {(float *)x, (float *)x + ref_n * D, white + ref_n * D, colored, model}; /* ref_n <= n / 2 */
    printf("against %zu samples of the data (sliced Wasserstein: 128 directions):\n", ref_n);
    printf("  %-16s %12s %12s %18s\n", "", "MMD^2", "SWD", "RMS: mean, sd");
    for (int k = 0; k < 5; k++) {
        if (!sets[k]) continue;
        /* each sample's RMS |x| / sqrt(D): its spread tells a set of fixed-scale
         * signals from a Gaussian of the same covariance */
        double r1 = 0.0, r2 = 0.0;
        for (size_t b = 0; b < ref_n; b++) {
            double q = 0.0;
            for (size_t j = 0; j < D; j++) q += (double)sets[k][b * D + j] * sets[k][b * D + j];
            q = sqrt(q / (double)D);
            r1 += q, r2 += q * q;
        }
        r1 /= (double)ref_n;
        const double rsd = sqrt(fmax(r2 / (double)ref_n - r1 * r1, 0.0));
        if (k == 0) {
            printf("  %-16s %12s %12s %10.4f %7.4f\n", names[k], "", "", r1, rsd);
            continue;
        }
        double mmd, swd;
        if (dfn_mmd2(&mmd, sets[k], ref_n, d, x, ref_n, d, 0, NULL) ||
            dfn_sliced_wasserstein(&swd, sets[k], ref_n, d, x, ref_n, d, 128, seed))
            goto fail;
        printf("  %-16s %12.6f %12.6f %10.4f %7.4f%s\n", names[k], mmd, swd, r1, rsd, k == 1 ? "   (the floor)" : "");
    }
    if (save_samples(out, (float *[3]){(float *)x, colored, model}, (int)ref_n, dims, nd)) goto fail;
    printf("wrote %s: covariance.png similarity.png noise_covariance.png colored_covariance.png spectrum.png "
           "%s colored.npy%s\n", out, nd == 3 ? (model ? "colored.png model.png" : "colored.png") : "samples.png",
           model ? " model.npy" : "");
    status = 0;
    goto done;
fail:
    fprintf(stderr, "diffusion analyze: %s\n", dfn_last_error());
done:
    dfn_pipeline_free(pipe);
    dfn_dataset_free(ds);
    free(mean), free(cov), free(eig), free(vec), free(ncov), free(neig), free(nmean), free(ceig);
    free(white), free(colored), free(model);
    return status;
}

/* cmd_forward.c - `diffusion forward DATA`: the forward process drawn (seed
 * 000 section 1, seed 003's picture of beta). The Markov chain
 * x_t = sqrt(1 - b_t) x_{t-1} + sqrt(b_t) z (DDPM eq. 2) is run step by step
 * on the data; at chosen t it draws curves (vectors), points (2-D) or a strip
 * per image, and the histogram of all values drifting to N(0, 1); a table
 * holds the measured RMS beside the closed form sqrt(abar_t E[x0^2] + 1 - abar_t)
 * (DDPM eq. 4) and the Kolmogorov-Smirnov distance to N(0, 1). Every beta
 * schedule's b_t, abar_t and SNR are plotted at the same T. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "core/core.h"
#include "core/files.h"
#include "data_source.h"
#include "diffusion.h"
#include "tools.h"

#define MAX_ARGS 24
#define MAX_TIMES 16

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* sup_x |F_n(x) - Phi(x)| of n values (sorted in place). */
static double ks_normal(float *v, size_t n) {
    qsort(v, n, sizeof(float), cmp_float);
    double d = 0.0;
    for (size_t i = 0; i < n; i++) {
        double phi = 0.5 * erfc(-v[i] / sqrt(2.0));
        d = fmax(d, fmax(fabs((double)(i + 1) / n - phi), fabs(phi - (double)i / n)));
    }
    return d;
}

/* b_t, abar_t and SNR_t of every beta schedule at T, the given endpoints. */
static dfn_status plot_schedules(const char *dir, int T, double beta_start, double beta_end) {
    static const char *const what[3] = {"beta", "abar", "snr"};
    static const char *const ylabel[3] = {"beta_t", "abar_t", "SNR_t = abar_t / (1 - abar_t)"};
    dfn_plot *plot[3];
    for (int k = 0; k < 3; k++) {
        plot[k] = dfn_plot_new(700, 450);
        char title[96];
        snprintf(title, sizeof title, "%s of each beta schedule, T = %d", what[k], T);
        dfn_plot_labels(plot[k], title, "t", ylabel[k]);
    }
    dfn_plot_log_y(plot[2], 1);
    float *x = dfn_malloc((size_t)T * sizeof(float)), *y = dfn_malloc((size_t)T * sizeof(float));
    for (int i = 0; i < T; i++) x[i] = (float)(i + 1);
    dfn_status st = DFN_OK;
    for (int kind = 0; kind < DFN_BETA_KIND_COUNT && !st; kind++) {
        if (kind == DFN_BETA_FILE) continue;
        dfn_schedule_params sp = dfn_schedule_params_init((dfn_beta_kind)kind);
        sp.T = T;
        sp.beta_start = beta_start;
        sp.beta_end = beta_end;
        dfn_schedule s;
        if ((st = dfn_schedule_init(&s, &sp))) break;
        const double *src[3] = {s.beta, s.alpha_bar, s.snr};
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < T; i++) y[i] = (float)src[k][i];
            dfn_plot_line(plot[k], x, y, T, dfn_beta_kind_name((dfn_beta_kind)kind));
        }
        dfn_schedule_free(&s);
    }
    for (int k = 0; k < 3; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/schedule_%s.png", dir, what[k]);
        if (!st) st = dfn_plot_save(plot[k], path);
        dfn_plot_free(plot[k]);
    }
    free(x);
    free(y);
    return st;
}

int cmd_forward(int argc, char **argv) {
    const char *data = NULL, *out = NULL, *schedule = "linear", *times_arg = NULL;
    long n_toy = 2000, max = 2000;
    int T = 100, show = 4, threads = 0, limit = 0, image_size = 0, image_channels = 0;
    double beta_start = -1, beta_end = -1;
    uint64_t seed = 0;
    if (argc >= 2 && argv[1][0] != '-') { /* diffusion forward DATA [options] */
        data = argv[1];
        argc--, argv++;
    }
    dfn_arg args[MAX_ARGS] = {
        {"--data", ARG_STRING, &data, "SPEC", "the data (or give it first): fashion-mnist, toy:curves, npy:FILE, ... as for train", 0},
        {"--out", ARG_STRING, &out, "DIR", "directory for the pictures (required)", 0},
        {"--n", ARG_LONG, &n_toy, "N", "samples drawn by toy: generators", 0},
        {"--limit", ARG_INT, &limit, "N", "the first N samples of the data only (0: all)", 0},
        {"--max", ARG_LONG, &max, "N", "samples run through the chain (the first N)", 0},
        {"--image-size", ARG_INT, &image_size, "S", "images: resize/crop to S x S", 0},
        {"--image-channels", ARG_INT, &image_channels, "C", "images: 1 gray or 3 RGB", 0},
        {"--T", ARG_INT, &T, "T", "steps of the chain (seed 000: 100)", 0},
        {"--schedule", ARG_STRING, &schedule, "KIND", "linear, cosine, sigmoid, constant, quadratic", 0},
        {"--beta-start", ARG_DOUBLE, &beta_start, "B", "first beta (-1: 1e-4 * 1000/T, improved-diffusion's scaling)", 0},
        {"--beta-end", ARG_DOUBLE, &beta_end, "B", "last beta (-1: 0.02 * 1000/T)", 0},
        {"--times", ARG_STRING, &times_arg, "LIST", "steps drawn, e.g. 0,10,25,50,100 (default 0, T/10, T/4, T/2, 3T/4, T)", 0},
        {"--show", ARG_INT, &show, "K", "images in the strip / curves drawn", 0},
        {"--seed", ARG_U64, &seed, "S", "random seed", 0},
        {"--threads", ARG_INT, &threads, "N", "threads (0: all cores)", 0},
    };
    int n_args = 0;
    while (n_args < MAX_ARGS && args[n_args].name) n_args++;
    int rc = dfn_args_parse("forward", args, n_args, argc, argv, "DATA --out DIR [options]");
    if (rc) return rc == 1 ? 0 : 2;
    if (!data || !out) {
        fprintf(stderr, "diffusion forward: give the data (diffusion forward DATA) and --out DIR\n");
        return 2;
    }
    if (T < 1 || n_toy < 1 || max < 1 || show < 1 || limit < 0 || threads < 0) {
        fprintf(stderr, "diffusion forward: --T, --n, --max and --show must be >= 1, --limit and --threads >= 0\n");
        return 2;
    }
    if (beta_start < 0) beta_start = 1e-4 * 1000.0 / T;
    if (beta_end < 0) beta_end = 0.02 * 1000.0 / T;
    int times[MAX_TIMES], n_times;
    if (times_arg) {
        if ((n_times = dfn_parse_int_list("forward", "--times", times_arg, times, MAX_TIMES)) < 1) return 2;
        for (int i = 0; i < n_times; i++)
            if (times[i] < 0 || times[i] > T || (i > 0 && times[i] <= times[i - 1])) {
                fprintf(stderr, "diffusion forward: --times %s: steps must rise within 0..T = %d\n", times_arg, T);
                return 2;
            }
    } else {
        const int def[6] = {0, T / 10, T / 4, T / 2, 3 * T / 4, T};
        n_times = 0;
        for (int i = 0; i < 6; i++)
            if (n_times == 0 || def[i] > times[n_times - 1]) times[n_times++] = def[i];
    }
    int kind = dfn_beta_kind_from_name(schedule);
    if (kind < 0 || kind == DFN_BETA_FILE) {
        fprintf(stderr, "diffusion forward: --schedule %s: %s\n", schedule,
                kind < 0 ? dfn_last_error() : "a beta file is not drawn here");
        return 2;
    }
    if (threads > 0) dfn_set_threads(threads);

    int status = 1;
    dfn_dataset *ds = NULL;
    dfn_schedule s = {0};
    float *x = NULL, *z = NULL, *snap = NULL, *hist = NULL;
    dfn_plot *curves = NULL, *hplot = NULL;
    char path[4096];
    dfn_data_options dopt = {(size_t)n_toy, seed, image_size, image_channels, -1, (size_t)limit};
    if (dfn_cli_load_data(&ds, data, &dopt)) goto fail;
    if (dfn_make_dir(out)) goto fail;
    dfn_schedule_params sp = dfn_schedule_params_init((dfn_beta_kind)kind);
    sp.T = T;
    sp.beta_start = beta_start;
    sp.beta_end = beta_end;
    if (dfn_schedule_init(&s, &sp)) goto fail;

    int dims[DFN_DATASET_MAX_DIMS], nd = dfn_dataset_shape(ds, dims);
    const int image = nd == 3;
    const size_t dim = dfn_dataset_sample_size(ds);
    const size_t n = dfn_dataset_count(ds) < (size_t)max ? dfn_dataset_count(ds) : (size_t)max;
    if (show > (int)n) show = (int)n;
    x = dfn_malloc(n * dim * sizeof(float));
    z = dfn_malloc(n * dim * sizeof(float));
    memcpy(x, dfn_dataset_sample(ds, 0), n * dim * sizeof(float));
    snap = dfn_malloc((size_t)n_times * show * dim * sizeof(float));
    double ms0 = 0.0; /* E[x0^2] over all values */
    for (size_t i = 0; i < n * dim; i++) ms0 += (double)x[i] * x[i];
    ms0 /= (double)(n * dim);

    if (!image) {
        curves = dfn_plot_new(800, 500);
        char title[128];
        snprintf(title, sizeof title, dim == 2 ? "forward diffusion of %s, T = %d" : "forward diffusion of one sample of %s, T = %d",
                 data, T);
        dfn_plot_labels(curves, title, dim == 2 ? "x1" : "dimension", dim == 2 ? "x2" : "value");
    }
    hplot = dfn_plot_new(800, 500);
    dfn_plot_labels(hplot, "values drifting to N(0, 1)", "value", "density");
    hist = dfn_malloc(n * dim * sizeof(float));
    printf("forward process of %s: %zu samples of %zu values, %s betas %.3g..%.3g, T = %d\n", data, n, dim,
           schedule, beta_start, beta_end, T);
    printf("%6s %10s %10s %11s %10s %10s %10s\n", "t", "sqrt(abar)", "SNR", "RMS closed", "RMS chain", "mean",
           "KS to N01");
    dfn_rng rng = dfn_rng_init(seed);
    int next = 0;
    for (int t = 0; t <= T && next < n_times; t++) {
        if (t > 0) { /* DDPM eq. 2: one step of the chain */
            const double b = s.beta[t - 1], keep = sqrt(1.0 - b), add = sqrt(b);
            dfn_rng_normal(&rng, z, n * dim);
            for (size_t i = 0; i < n * dim; i++) x[i] = (float)(keep * x[i] + add * z[i]);
        }
        if (t != times[next]) continue;
        const double abar = t > 0 ? s.alpha_bar[t - 1] : 1.0;
        double mean = 0.0, ms = 0.0;
        for (size_t i = 0; i < n * dim; i++) mean += x[i], ms += (double)x[i] * x[i];
        mean /= (double)(n * dim);
        ms /= (double)(n * dim);
        memcpy(hist, x, n * dim * sizeof(float));
        const double ks = ks_normal(hist, n * dim);
        printf("%6d %10.4f %10.4g %11.4f %10.4f %10.4f %10.4f\n", t, sqrt(abar),
               t > 0 ? s.snr[t - 1] : INFINITY, sqrt(abar * ms0 + 1.0 - abar), sqrt(ms), mean, ks);
        char label[32];
        snprintf(label, sizeof label, "t = %d", t);
        dfn_plot_hist(hplot, x, n * dim, 60, -4.0, 4.0, label);
        memcpy(snap + (size_t)next * show * dim, x, (size_t)show * dim * sizeof(float));
        if (curves && dim == 2) {
            dfn_plot_scatter(curves, x, (int)n, label);
        } else if (curves) {
            dfn_plot_line(curves, NULL, x, (int)dim, label);
            dfn_plot_style(curves, -1, 0.9f, 1.5f, 1);
        }
        next++;
    }
    /* the N(0, 1) density over the histograms */
    float gx[161], gy[161];
    for (int i = 0; i <= 160; i++) {
        gx[i] = (float)(-4.0 + i * 0.05);
        gy[i] = (float)(exp(-0.5 * gx[i] * gx[i]) / sqrt(2.0 * 3.14159265358979323846));
    }
    dfn_plot_line(hplot, gx, gy, 161, "N(0, 1)");
    dfn_plot_style(hplot, 0x000000, 1.0f, 2.0f, 0);
    snprintf(path, sizeof path, "%s/forward_hist.png", out);
    if (dfn_plot_save(hplot, path)) goto fail;
    printf("wrote %s\n", path);
    if (image) {
        char *cap[MAX_TIMES];
        for (int i = 0; i < n_times; i++) {
            cap[i] = dfn_malloc(16);
            snprintf(cap[i], 16, "t=%d", times[i]);
        }
        snprintf(path, sizeof path, "%s/forward_strip.png", out);
        dfn_status st = dfn_png_write_strip(path, snap, n_times, show, dims[0], dims[1], dims[2],
                                            dims[1] < 64 ? 2 : 1, (const char *const *)cap);
        for (int i = 0; i < n_times; i++) free(cap[i]);
        if (st) goto fail;
    } else {
        snprintf(path, sizeof path, "%s/forward_curves.png", out);
        if (dfn_plot_save(curves, path)) goto fail;
    }
    printf("wrote %s\n", path);
    if (plot_schedules(out, T, beta_start, beta_end)) goto fail;
    printf("wrote %s/schedule_beta.png, schedule_abar.png, schedule_snr.png\n", out);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "diffusion forward: %s\n", dfn_last_error());
done:
    dfn_plot_free(curves);
    dfn_plot_free(hplot);
    free(x), free(z), free(snap), free(hist);
    dfn_schedule_free(&s);
    dfn_dataset_free(ds);
    return status;
}

/* sample_png.c - load a trained model, sample, write a PNG: the first program of
 * <diffusion.h>, using the public API only.
 *
 *     cc sample_png.c $(pkg-config --cflags --libs diffusion) -o sample_png
 *     ./sample_png runs/fmnist/model.safetensors samples.png [n [sampler [steps]]]
 *
 * Images come out as a grid; vectors (2-D points, curves) as a plot of them. */
#include <stdio.h>
#include <stdlib.h>

#include <diffusion.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CHECKPOINT OUT.png [n [sampler [steps]]]\n", argv[0]);
        return 2;
    }
    const int n = argc > 3 ? atoi(argv[3]) : 64;
    if (n < 1) {
        fprintf(stderr, "%s: n must be >= 1\n", argv[0]);
        return 2;
    }
    dfn_pipeline *pipe;
    if (dfn_pipeline_load(&pipe, argv[1]) != DFN_OK) {
        fprintf(stderr, "%s\n", dfn_last_error()); /* names the file and the problem */
        return 1;
    }
    dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(pipe);
    if (argc > 4) sp.sampler = argv[4];             /* any of `diffusion sample --list` */
    if (argc > 5) sp.sampler_params.steps = atoi(argv[5]);
    int dims[3];
    const int ndim = dfn_pipeline_sample_shape(pipe, dims);
    float *x = malloc((size_t)n * dfn_pipeline_sample_size(pipe) * sizeof *x);
    dfn_status st = x ? dfn_pipeline_sample(pipe, x, n, &sp, NULL) : DFN_ERR_ARG;
    if (st == DFN_OK && ndim == 3) {
        st = dfn_png_write_grid(argv[2], x, n, dims[0], dims[1], dims[2], 0, 2);
    } else if (st == DFN_OK) {
        dfn_plot *plot = dfn_plot_new(0, 0);
        if (dims[0] == 2) dfn_plot_scatter(plot, x, n, "samples");
        else
            for (int i = 0; i < n && i < 16; i++) dfn_plot_line(plot, NULL, x + (size_t)i * dims[0], dims[0], NULL);
        st = dfn_plot_save(plot, argv[2]);
        dfn_plot_free(plot);
    }
    if (st != DFN_OK) fprintf(stderr, "%s\n", x ? dfn_last_error() : "out of memory");
    else printf("%d samples from %s -> %s\n", n, argv[1], argv[2]);
    free(x);
    dfn_pipeline_free(pipe);
    dfn_plot_release_caches();
    return st == DFN_OK ? 0 : 1;
}

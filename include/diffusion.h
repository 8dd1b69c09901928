/* diffusion.h - train, sample and evaluate diffusion models on a CPU, from C.
 *
 * The whole public surface of libdiffusion is this header: include it, link
 * with `pkg-config --cflags --libs diffusion`. A first program - load a
 * trained model, draw 64 samples, write them as a PNG grid:
 *
 *     #include <diffusion.h>
 *
 *     int main(void) {
 *         dfn_pipeline *pipe;
 *         if (dfn_pipeline_load(&pipe, "runs/fmnist/model.safetensors") != DFN_OK) {
 *             fprintf(stderr, "%s\n", dfn_last_error());   // names the file and the problem
 *             return 1;
 *         }
 *         dfn_pipeline_sample_params sp = dfn_pipeline_sample_params_init(pipe);
 *         sp.sampler = "dpm++2m";                           // any of `diffusion sample --list`
 *         sp.sampler_params.steps = 20;
 *         int dims[3];
 *         dfn_pipeline_sample_shape(pipe, dims);            // {1, 28, 28}
 *         float *x = malloc(64 * dfn_pipeline_sample_size(pipe) * sizeof *x);
 *         dfn_status st = dfn_pipeline_sample(pipe, x, 64, &sp, NULL);
 *         if (st == DFN_OK) st = dfn_png_write_grid("samples.png", x, 64, dims[0], dims[1], dims[2], 8, 2);
 *         if (st != DFN_OK) fprintf(stderr, "%s\n", dfn_last_error());
 *         free(x);
 *         dfn_pipeline_free(pipe);
 *         return st == DFN_OK ? 0 : 1;
 *     }
 *
 * and training one (what `diffusion train` does):
 *
 *     dfn_dataset *data;
 *     dfn_dataset_load_fashion_mnist(&data, NULL, "train");   // 60000 x 1x28x28 in [-1, 1]
 *     dfn_model_config cfg;
 *     dfn_model_config_preset(&cfg, "fmnist-tiny");
 *     dfn_model *net;
 *     dfn_model_new(&net, &cfg, 42);
 *     dfn_train_params tp = dfn_train_params_init();
 *     tp.run_dir = "runs/fmnist";
 *     tp.steps = 5000;
 *     dfn_train(net, data, NULL, &tp);                        // runs/fmnist/model.safetensors
 *
 * The sections, in the order they build on each other:
 *   diffusion/core.h      version, status and errors, threads, instruction sets, random numbers
 *   diffusion/data.h      datasets: loaders, generators, preprocessing, batches
 *   diffusion/process.h   noise schedules, SDEs, predictions and their conversions
 *   diffusion/models.h    the networks (U-Net, MLP, classifier, autoencoder) behind one interface
 *   diffusion/io.h        PNG images, grids and strips
 *   diffusion/plot.h      line, scatter, histogram, bar and heat-map figures
 *   diffusion/sample.h    the denoiser interface, every sampler, constraints (inpainting, boxes)
 *   diffusion/pipeline.h  a trained model ready to sample, guide, edit, inpaint, invert
 *   diffusion/train.h     optimizer, objectives, the training loop
 *   diffusion/eval.h      likelihoods, FID/KID, vector metrics, the covariance view
 *
 * Conventions
 *   - Everything public starts with dfn_ (functions, types) or DFN_ (macros, enums).
 *   - Arrays are float32, row-major; images are NCHW.
 *   - Functions that can fail on user input or I/O return a dfn_status; on failure
 *     dfn_last_error() gives a message that names the file or option and the
 *     problem. Misuse by the programmer (NULL buffers, impossible sizes) aborts
 *     with file and line instead.
 *   - Objects are opaque handles made by dfn_*_new (or _load) and released by
 *     dfn_*_free; the library frees only what it allocated.
 *   - Results are bit-identical for the same seed and inputs, run after run and
 *     for any number of threads: work is split into tasks whose layout depends
 *     on the problem's shape only.
 */
#ifndef DIFFUSION_H
#define DIFFUSION_H

#include "diffusion/core.h"
#include "diffusion/data.h"
#include "diffusion/process.h"
#include "diffusion/models.h"
#include "diffusion/io.h"
#include "diffusion/plot.h"
#include "diffusion/sample.h"
#include "diffusion/pipeline.h"
#include "diffusion/train.h"
#include "diffusion/eval.h"

#endif

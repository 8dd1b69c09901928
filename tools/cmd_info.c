/* cmd_info.c - `diffusion info`: a model's configuration and parameter table,
 * from a preset or a checkpoint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffusion.h"
#include "tools.h"

static void info_usage(FILE *f) {
    fprintf(f,
            "usage: diffusion info (--preset NAME | --checkpoint FILE) [--tensors]\n"
            "  --preset NAME       fmnist-fast, fmnist-tiny, fmnist-small, mlp-2d, mlp-curves, latent-f4\n"
            "  --checkpoint FILE   a .safetensors checkpoint written by diffusion\n"
            "  --tensors           also list every parameter tensor\n");
}

int cmd_info(int argc, char **argv) {
    const char *preset = NULL, *ckpt = NULL;
    int tensors = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) { info_usage(stdout); return 0; }
        else if (!strcmp(argv[i], "--preset") && i + 1 < argc) preset = argv[++i];
        else if (!strcmp(argv[i], "--checkpoint") && i + 1 < argc) ckpt = argv[++i];
        else if (!strcmp(argv[i], "--tensors")) tensors = 1;
        else {
            fprintf(stderr, "diffusion info: unknown or incomplete option '%s'\n", argv[i]);
            info_usage(stderr);
            return 2;
        }
    }
    if (!preset == !ckpt) {
        fprintf(stderr, "diffusion info: give exactly one of --preset or --checkpoint\n");
        return 2;
    }
    dfn_model *m = NULL;
    dfn_status st;
    if (preset) {
        dfn_model_config cfg;
        st = dfn_model_config_preset(&cfg, preset);
        if (st == DFN_OK) st = dfn_model_new(&m, &cfg, 0);
    } else {
        st = dfn_model_load(&m, ckpt);
    }
    if (st != DFN_OK) {
        fprintf(stderr, "diffusion info: %s\n", dfn_last_error());
        return 1;
    }
    char *json = dfn_model_config_to_json(dfn_model_get_config(m));
    printf("config: %s\nparameters: %zu\ntensors: %d\nforward: %.1f MFLOP per sample\n", json,
           dfn_model_num_params(m), dfn_model_num_tensors(m), 1e-6 * dfn_model_flops_per_sample(m));
    if (dfn_model_get_config(m)->kind == DFN_MODEL_AUTOENCODER) {
        int z[3];
        dfn_autoencoder_latent_shape(m, z);
        printf("latents: %dx%dx%d", z[0], z[1], z[2]);
        if (dfn_autoencoder_scale(m) > 0) printf(", latent scale %.6g", dfn_autoencoder_scale(m));
        printf("\n");
    }
    free(json);
    if (tensors) {
        for (int i = 0; i < dfn_model_num_tensors(m); i++) {
            int shape[4], nd = dfn_model_tensor_shape(m, i, shape);
            printf("  %-40s (", dfn_model_tensor_name(m, i));
            for (int d = 0; d < nd; d++) printf(d ? ", %d" : "%d", shape[d]);
            printf(")\n");
        }
    }
    dfn_model_free(m);
    return 0;
}

/* data_source.h - `--data SPEC` for the subcommands (see data_source.c). */
#ifndef DFN_DATA_SOURCE_H
#define DFN_DATA_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion.h"

typedef struct {
    size_t n;           /* toy generators: samples */
    uint64_t seed;      /* toy generators */
    int image_size;     /* image folders: resize/crop to this (0: the first image's) */
    int image_channels; /* image folders: 1 or 3 (0: the first image's) */
    int label_column;   /* csv: column of integer labels, -1 none */
    size_t limit;       /* keep the first `limit` samples only (0: all) */
} dfn_data_options;

dfn_status dfn_cli_load_data(dfn_dataset **out, const char *spec, const dfn_data_options *o);
/* An .npy file of N x D vectors or N x [C x] H x W images (uint8 scaled to [-1, 1]). */
dfn_status dfn_cli_load_npy(dfn_dataset **out, const char *path);

#endif

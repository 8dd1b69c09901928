/* main.c - the `diffusion` program: a table of subcommands, one file each. */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "core/dist.h"
#include "diffusion.h"
#include "tools.h"

static const dfn_command commands[] = {
    {"train", "train a diffusion model on images or vectors; writes a run directory", cmd_train},
    {"sample", "generate samples from a checkpoint with any sampler (--list); guidance", cmd_sample},
    {"edit", "image-to-image (SDEdit): noise inputs to a strength, denoise them", cmd_edit},
    {"inpaint", "fill the masked part of inputs (replacement, or RePaint)", cmd_inpaint},
    {"invert", "DDIM inversion of inputs to their noises x_T, with the reconstruction error", cmd_invert},
    {"interpolate", "spherical interpolation between two noises (inverted inputs), as a strip", cmd_interpolate},
    {"eval", "likelihood (bound, ODE) and sample quality (FID, KID, MMD, SWD)", cmd_eval},
    {"analyze", "a data set's covariance, spectrum and colored-noise baseline (seed 000)", cmd_analyze},
    {"forward", "the forward process drawn: curves, histograms, image strips, schedules", cmd_forward},
    {"info", "print a model's configuration and parameter table", cmd_info},
    {"train-autoencoder", "train the KL autoencoder of latent diffusion (then: train --autoencoder)", cmd_train_autoencoder},
    {"distill", "few-step students of a teacher: consistency distillation (cd), 2-rectified flow (reflow)", cmd_distill},
    {"train-classifier", "train the small CNN of FID and KID, or (--noisy) of classifier guidance", cmd_train_classifier},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f) {
    fprintf(f,
            "usage: diffusion <command> [options]   (diffusion <command> --help for its options)\n\n"
            "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n  --help           this text\n  --version        print the version\n");
}

/* Under mpirun: the same build, kernels and arguments on every rank, or none starts. */
static int check_ranks(int argc, char **argv) {
    dfn_buf all = {0};
    dfn_buf_printf(&all, "%s %s %s", dfn_version(), __DATE__, __TIME__);
    char what[160];
    int differ = dfn_dist_differs(all.data, all.len, "a build of diffusion", what, sizeof what);
    if (!differ) { /* other kernels would give other bits (a CPU without AVX-512, DFN_ISA) */
        const char *isa = dfn_isa_name(dfn_get_isa());
        differ = dfn_dist_differs(isa, strlen(isa), "kernels (DFN_ISA, or the CPU's instruction set)", what,
                                  sizeof what);
    }
    if (!differ) {
        all.len = 0;
        for (int i = 1; i < argc; i++) dfn_buf_printf(&all, "%s\x1f", argv[i]); /* (a separator no argument holds) */
        differ = dfn_dist_differs(all.data, all.len, "arguments", what, sizeof what);
    }
    dfn_buf_free(&all);
    if (differ) fprintf(stderr, "diffusion: %s; every rank must run the same command\n", what);
    return differ;
}

static int run(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("diffusion %s (kernels: %s; this CPU:", dfn_version(), dfn_isa_name(dfn_get_isa()));
        for (int k = dfn_cpu_isa(); k >= 0; k--) printf(" %s", dfn_isa_name((dfn_isa)k));
        printf(")\nbfloat16: %s\n", !dfn_cpu_has_bf16()                  ? "no (this CPU has no AVX512_BF16)"
                                     : dfn_get_isa() < DFN_ISA_AVX512  ? "no (it needs the avx512 or amx kernels)"
                                                                       : "yes (--precision bf16)");
        printf("MPI: %s\n", dfn_dist_built_with_mpi() ? "yes (mpirun -np P diffusion ...)" : "no (one process)");
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            int rc = commands[i].run(argc - 1, argv + 1);
            dfn_plot_release_caches(); /* the font caches of any picture drawn (leak checkers) */
            return rc;
        }
    fprintf(stderr, "diffusion: unknown command '%s' (run 'diffusion --help' for the list)\n", argv[1]);
    return 2;
}

int main(int argc, char **argv) {
    if (dfn_dist_init(&argc, &argv)) {
        fprintf(stderr, "diffusion: %s\n", dfn_last_error());
        return 1;
    }
    if (check_ranks(argc, argv)) return dfn_dist_finish(2);
    return dfn_dist_finish(run(argc, argv));
}

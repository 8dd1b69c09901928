/* tools.h - what the subcommands of the `diffusion` program share. */
#ifndef DFN_TOOLS_H
#define DFN_TOOLS_H

#include <stdio.h>

typedef struct {
    const char *name;
    const char *help;
    int (*run)(int argc, char **argv); /* argv[0] is the command's name */
} dfn_command;

int cmd_info(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_train_autoencoder(int argc, char **argv);
int cmd_distill(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_edit(int argc, char **argv);
int cmd_inpaint(int argc, char **argv);
int cmd_invert(int argc, char **argv);
int cmd_interpolate(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train_classifier(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_forward(int argc, char **argv);

#endif

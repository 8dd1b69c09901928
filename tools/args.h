/* args.h - table-driven option parsing for the subcommands: every option has a
 * name, a type, where its value goes and a help line that shows its default,
 * so `--help` documents exactly what the parser accepts. */
#ifndef DFN_ARGS_H
#define DFN_ARGS_H

#include <stdint.h>
#include <stdio.h>

typedef enum { ARG_FLAG, ARG_INT, ARG_LONG, ARG_U64, ARG_DOUBLE, ARG_FLOAT, ARG_STRING } dfn_arg_kind;

typedef struct {
    const char *name; /* "--steps" */
    dfn_arg_kind kind;
    void *value;      /* int* (FLAG, INT), long*, uint64_t*, double*, float*, const char** */
    const char *meta; /* "N" */
    const char *help; /* one line; the default is printed after it */
    int seen;         /* set by the parser */
} dfn_arg;

/* Parses argv[1..argc-1] into the table. Returns 0 on success, 1 if --help
 * was printed, 2 after printing a message naming the bad option on stderr. */
int dfn_args_parse(const char *cmd, dfn_arg *args, int n, int argc, char **argv,
                   const char *usage_line);
void dfn_args_help(FILE *f, const char *cmd, const dfn_arg *args, int n, const char *usage_line);
/* The table entry for name (for "was it given?"). */
const dfn_arg *dfn_args_find(const dfn_arg *args, int n, const char *name);
/* 1 if any of the options named in `names` (NULL-terminated) was given. */
int dfn_args_any_seen(const dfn_arg *args, int n, const char *const *names);
/* For a table whose values point into the struct `target` (size bytes): copies
 * the value of every option given from `saved` (a copy of target taken right
 * after parsing) back into target, after target was refilled from elsewhere
 * (the settings of a run being resumed). */
void dfn_args_copy_seen(const dfn_arg *args, int n, void *target, const void *saved, size_t size);
/* 1 if s ends with suffix, ignoring case (".png", ".NPY"). */
int dfn_ends_with(const char *s, const char *suffix);
/* --precision's value (fp32, bf16) switched on for this process (dfn_set_precision):
 * 0, or 2 after a message on stderr (an unknown name, a CPU without bfloat16). */
int dfn_args_set_precision(const char *cmd, const char *text);
/* "1,2,2" -> {1, 2, 2}; returns the count, or -1 (message on stderr) if bad. */
int dfn_parse_int_list(const char *cmd, const char *opt, const char *text, int *out, int max);

#endif

/* args.c - see args.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "args.h"
#include "diffusion.h"

static void print_default(FILE *f, const dfn_arg *a) {
    switch (a->kind) {
    case ARG_FLAG: break;
    case ARG_INT: fprintf(f, " (default %d)", *(int *)a->value); break;
    case ARG_LONG: fprintf(f, " (default %ld)", *(long *)a->value); break;
    case ARG_U64: fprintf(f, " (default %llu)", (unsigned long long)*(uint64_t *)a->value); break;
    case ARG_DOUBLE: fprintf(f, " (default %g)", *(double *)a->value); break;
    case ARG_FLOAT: fprintf(f, " (default %g)", *(float *)a->value); break;
    case ARG_STRING:
        if (*(const char **)a->value) fprintf(f, " (default %s)", *(const char **)a->value);
        break;
    }
}

void dfn_args_help(FILE *f, const char *cmd, const dfn_arg *args, int n, const char *usage_line) {
    fprintf(f, "usage: diffusion %s %s\n\noptions:\n", cmd, usage_line);
    for (int i = 0; i < n; i++) {
        const dfn_arg *a = &args[i];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", a->name, a->kind == ARG_FLAG ? "" : " ",
                 a->kind == ARG_FLAG ? "" : a->meta);
        fprintf(f, "  %-24s %s", left, a->help);
        print_default(f, a);
        fprintf(f, "\n");
    }
    fprintf(f, "  %-24s %s\n", "--help", "this text");
}

const dfn_arg *dfn_args_find(const dfn_arg *args, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(args[i].name, name)) return &args[i];
    return NULL;
}

static int parse_value(const char *cmd, dfn_arg *a, const char *text) {
    char *end;
    errno = 0;
    switch (a->kind) {
    case ARG_INT: case ARG_LONG: {
        long v = strtol(text, &end, 10);
        if (*text == 0 || *end || errno || (a->kind == ARG_INT && (v < -2147483647L || v > 2147483647L))) goto bad;
        if (a->kind == ARG_INT) *(int *)a->value = (int)v;
        else *(long *)a->value = v;
        return 0;
    }
    case ARG_U64: {
        if (*text == '-') goto bad;
        unsigned long long v = strtoull(text, &end, 10);
        if (*text == 0 || *end || errno) goto bad;
        *(uint64_t *)a->value = v;
        return 0;
    }
    case ARG_DOUBLE: case ARG_FLOAT: {
        double v = strtod(text, &end);
        if (*text == 0 || *end || errno || v != v) goto bad;
        if (a->kind == ARG_DOUBLE) *(double *)a->value = v;
        else *(float *)a->value = (float)v;
        return 0;
    }
    case ARG_STRING: *(const char **)a->value = text; return 0;
    case ARG_FLAG: return 0;
    }
bad:
    fprintf(stderr, "diffusion %s: %s needs a %s, got '%s'\n", cmd, a->name,
            a->kind == ARG_DOUBLE || a->kind == ARG_FLOAT ? "number"
            : a->kind == ARG_U64                         ? "non-negative integer"
                                                         : "whole number",
            text);
    return 2;
}

int dfn_args_parse(const char *cmd, dfn_arg *args, int n, int argc, char **argv,
                   const char *usage_line) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            dfn_args_help(stdout, cmd, args, n, usage_line);
            return 1;
        }
        char name[64];
        const char *eq = strchr(argv[i], '=');
        const char *value = NULL;
        if (eq && (size_t)(eq - argv[i]) < sizeof name) {
            memcpy(name, argv[i], (size_t)(eq - argv[i]));
            name[eq - argv[i]] = 0;
            value = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", argv[i]);
        }
        dfn_arg *a = (dfn_arg *)dfn_args_find(args, n, name);
        if (!a) {
            fprintf(stderr, "diffusion %s: unknown option '%s' (see 'diffusion %s --help')\n", cmd, argv[i], cmd);
            return 2;
        }
        a->seen = 1;
        if (a->kind == ARG_FLAG) {
            if (value) {
                fprintf(stderr, "diffusion %s: %s takes no value\n", cmd, name);
                return 2;
            }
            *(int *)a->value = 1;
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "diffusion %s: %s needs a value (%s)\n", cmd, name, a->meta);
                return 2;
            }
            value = argv[++i];
        }
        if (parse_value(cmd, a, value)) return 2;
    }
    return 0;
}

int dfn_parse_int_list(const char *cmd, const char *opt, const char *text, int *out, int max) {
    int n = 0;
    const char *p = text;
    if (!*p) return 0;
    while (1) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 100000 || (*end && *end != ',')) {
            fprintf(stderr, "diffusion %s: %s expects comma-separated whole numbers, got '%s'\n", cmd, opt, text);
            return -1;
        }
        if (n == max) {
            fprintf(stderr, "diffusion %s: %s takes at most %d numbers\n", cmd, opt, max);
            return -1;
        }
        out[n++] = (int)v;
        if (!*end) break;
        p = end + 1;
    }
    return n;
}

int dfn_args_any_seen(const dfn_arg *args, int n, const char *const *names) {
    for (const char *const *name = names; *name; name++) {
        const dfn_arg *a = dfn_args_find(args, n, *name);
        if (a && a->seen) return 1;
    }
    return 0;
}

static size_t value_size(dfn_arg_kind kind) {
    switch (kind) {
    case ARG_FLAG:
    case ARG_INT: return sizeof(int);
    case ARG_LONG: return sizeof(long);
    case ARG_U64: return sizeof(uint64_t);
    case ARG_DOUBLE: return sizeof(double);
    case ARG_FLOAT: return sizeof(float);
    case ARG_STRING: return sizeof(const char *);
    }
    return 0;
}

void dfn_args_copy_seen(const dfn_arg *args, int n, void *target, const void *saved, size_t size) {
    const char *lo = target, *hi = lo + size;
    for (int i = 0; i < n; i++) {
        const char *at = args[i].value;
        if (!args[i].seen || at < lo || at >= hi) continue;
        const size_t off = (size_t)(at - lo), len = value_size(args[i].kind);
        if (off + len <= size) memcpy((char *)target + off, (const char *)saved + off, len);
    }
}

int dfn_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

int dfn_args_set_precision(const char *cmd, const char *text) {
    const int p = dfn_precision_from_name(text);
    if (p < 0 || dfn_set_precision((dfn_precision)p) != DFN_OK) {
        fprintf(stderr, "diffusion %s: --precision %s: %s\n", cmd, text, dfn_last_error());
        return 2;
    }
    return 0;
}

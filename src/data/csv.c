/* csv.c - vectors from comma-separated text, one sample per line.
 *
 * The format accepted is the plain one that spreadsheets and numpy.savetxt(...,
 * delimiter=",") write: numbers separated by commas, optional spaces around
 * them, "\n" or "\r\n" line ends. A first line that is not all numbers is taken
 * as a header; blank lines are skipped; quoting is not supported (a quoted
 * number is reported as not a number). Errors name file, line and column,
 * counted from 1. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "data/data.h"

/* Splits line in place at commas, trimming blanks around each field, into
 * fields (which must have room for one more entry than the line has commas);
 * returns the field count. */
static int split_fields(char *line, char **fields) {
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        char *start = p;
        while (*p && *p != ',') p++;
        char *end = p;
        int last = *p != ',';
        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) end--;
        *end = '\0'; /* may overwrite the comma at p: `last` was read before */
        fields[n++] = start;
        if (last) break;
        p++;
    }
    return n;
}

static size_t count_char(const char *s, char c) {
    size_t n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

/* A field for a message: quoted, cut at 40 characters. */
static void quote_field(char *buf, size_t cap, const char *field) {
    if (strlen(field) > 40)
        snprintf(buf, cap, "'%.37s...'", field);
    else
        snprintf(buf, cap, "'%s'", field);
}

/* strtod over the whole field: 0 on success, -1 if it is not a number, -2 if
 * it is not finite ("nan", "inf", 1e999): training on those only spreads NaN. */
static int parse_number(const char *s, float *out) {
    if (!*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end) return -1;
    if (!isfinite(v) || fabs(v) > 3.4028234663852886e38 /* FLT_MAX */) return -2;
    *out = (float)v;
    return 0;
}

static int parse_label(const char *s, int *out) {
    if (!*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < 0 || v >= INT_MAX) return -1;
    *out = (int)v;
    return 0;
}

/* Removes the line end ("\n", "\r\n") and reports whether anything but blanks
 * is left. */
static int chomp_is_blank(char *line) {
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t') return 0;
    return 1;
}

/* Grows *p (an array of `size`-byte elements) to hold at least `need`. */
static int grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    if (c > SIZE_MAX / size) return 0;
    void *q = realloc(*p, c * size);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

dfn_status dfn_dataset_load_csv(dfn_dataset **out, const char *path, int label_column) {
    DFN_ASSERT(out && path);
    *out = NULL;
    FILE *f = NULL;
    char *line = NULL, **fields = NULL, shown[48];
    size_t line_cap = 0, fields_cap = 0;
    float *values = NULL;
    int *labels = NULL;
    size_t rows = 0, values_cap = 0, labels_cap = 0;
    int ncols = 0, width = 0, max_label = -1;
    long lineno = 0, first_line = 0;
    dfn_dataset *ds = NULL;
    dfn_status st;

    if (label_column < -1) {
        st = dfn_set_error(DFN_ERR_ARG, "%s: label column %d; use a column index from 0, or -1 "
                           "for none", path, label_column);
        goto fail;
    }
    f = fopen(path, "r");
    if (!f) {
        st = dfn_set_error(DFN_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
        goto fail;
    }
    errno = 0;
    while (getline(&line, &line_cap, f) >= 0) {
        lineno++;
        if (chomp_is_blank(line)) continue;
        if (!grow((void **)&fields, &fields_cap, count_char(line, ',') + 1, sizeof *fields))
            goto oom;
        int n = split_fields(line, fields);

        if (!first_line) {
            /* The first line fixes the column count; if any of its fields is
             * not a number it is a header, and the data start on the next. */
            first_line = lineno;
            ncols = n;
            if (label_column >= ncols) {
                st = dfn_set_error(DFN_ERR_ARG, "%s:%ld: label column %d (counting from 0) is "
                                   "past the line's %d columns", path, lineno, label_column,
                                   ncols);
                goto fail;
            }
            width = ncols - (label_column >= 0);
            if (width < 1) {
                st = dfn_set_error(DFN_ERR_FORMAT, "%s:%ld: no column is left for the vector "
                                   "besides the label", path, lineno);
                goto fail;
            }
            int header = 0;
            for (int j = 0; j < n && !header; j++) {
                float v;
                header = parse_number(fields[j], &v) != 0;
            }
            if (header) continue;
        }
        if (n != ncols) {
            st = dfn_set_error(DFN_ERR_FORMAT, "%s:%ld: %d columns, expected %d as on line %ld",
                               path, lineno, n, ncols, first_line);
            goto fail;
        }
        if (!grow((void **)&values, &values_cap, (rows + 1) * (size_t)width, sizeof *values))
            goto oom;
        if (label_column >= 0 &&
            !grow((void **)&labels, &labels_cap, rows + 1, sizeof *labels))
            goto oom;
        float *row = values + rows * (size_t)width;
        for (int j = 0, k = 0; j < n; j++) {
            if (j == label_column) {
                if (parse_label(fields[j], &labels[rows]) != 0) {
                    quote_field(shown, sizeof shown, fields[j]);
                    st = dfn_set_error(DFN_ERR_FORMAT, "%s:%ld: column %d: %s is not a class "
                                       "label (an integer >= 0)", path, lineno, j + 1, shown);
                    goto fail;
                }
                if (labels[rows] > max_label) max_label = labels[rows];
                continue;
            }
            int bad = parse_number(fields[j], &row[k++]);
            if (bad && !fields[j][0]) {
                st = dfn_set_error(DFN_ERR_FORMAT, "%s:%ld: column %d: empty field, expected a "
                                   "number", path, lineno, j + 1);
                goto fail;
            }
            if (bad) {
                quote_field(shown, sizeof shown, fields[j]);
                st = dfn_set_error(DFN_ERR_FORMAT, "%s:%ld: column %d: %s is not a %snumber",
                                   path, lineno, j + 1, shown, bad == -2 ? "finite " : "");
                goto fail;
            }
        }
        rows++;
        errno = 0;
    }
    if (ferror(f)) {
        st = dfn_set_error(DFN_ERR_IO, "%s:%ld: read error (%s)", path, lineno + 1,
                           strerror(errno ? errno : EIO));
        goto fail;
    }
    if (rows == 0) {
        st = dfn_set_error(DFN_ERR_FORMAT, "%s: no data rows%s", path,
                           first_line ? " (only a header)" : " (empty file)");
        goto fail;
    }

    st = dfn_dataset_new(&ds, rows, 1, &width, label_column >= 0 ? max_label + 1 : 0);
    if (st != DFN_OK) goto fail;
    memcpy(ds->data, values, rows * (size_t)width * sizeof(float));
    if (labels) memcpy(ds->labels, labels, rows * sizeof(int));
    fclose(f);
    free(line);
    free(fields);
    free(values);
    free(labels);
    *out = ds;
    return DFN_OK;
oom:
    st = dfn_set_error(DFN_ERR_IO, "%s:%ld: out of memory after %zu rows", path, lineno, rows);
fail:
    if (f) fclose(f);
    free(line);
    free(fields);
    free(values);
    free(labels);
    dfn_dataset_free(ds);
    return st;
}

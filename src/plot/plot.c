/* plot.c - the figures of training and of the experiments, drawn with cairo.
 *
 * A dfn_plot is a list of series (lines, scatters, histograms, bars) or one
 * heatmap, plus a title and axis labels. Nothing is drawn until
 * dfn_plot_save(), which lays the figure out and draws it on a cairo surface:
 * an image surface encoded to PNG, or an SVG surface. Both get the same
 * drawing calls, so the two files show the same figure.
 *
 * Drawing goes in four steps:
 *   1. ranges: the data's extent on each axis (in log10 units for a log y
 *      axis), padded, or the user's limits;
 *   2. ticks: "nice" steps of 1, 2 or 5 times a power of ten, or decades on a
 *      log axis; the widest tick label decides the left margin;
 *   3. the plot area: what is left of the figure after the margins. A frame
 *      maps data to pixels, px = ax + (x - x0) / (x1 - x0) * aw, with y upwards;
 *   4. grid, series (clipped to the area), frame, labels, legend.
 *
 * Text uses cairo's "toy" font API with DejaVu Sans (fonts-dejavu-core). Hinting
 * is off so that glyph positions do not depend on the machine's fontconfig
 * preferences and the PNG and the SVG place text alike.
 */
#include <cairo-svg.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/core.h"
#include "core/files.h"
#include "diffusion/plot.h"

#define PI 3.14159265358979323846
#define FONT "DejaVu Sans"
#define FONT_TICK 12.0
#define FONT_LABEL 14.0
#define FONT_TITLE 16.0
#define TICK_LEN 5.0
#define MAX_TICKS 48

enum { LINE, SCATTER, HIST, BARS };

typedef struct {
    int kind, n;  /* n points, or n bins for HIST */
    float *x, *y; /* HIST: x holds the n + 1 bin edges, y the n densities */
    char *label;  /* NULL: no legend entry */
    uint32_t rgb;
    float alpha, size;
    int markers;
} series;

struct dfn_plot {
    int width, height, log_y;
    char *title, *xlabel, *ylabel;
    double lim[4]; /* xmin, xmax, ymin, ymax as given */
    series *s;
    int ns, cap;
    float *heat; /* heatmap instead of series, rows x cols */
    int rows, cols;
    double vmin, vmax;
};

/* Ten well-separated colours (the "category10" palette of d3/matplotlib). */
static const uint32_t palette[10] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                     0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
/* Colour scales as five evenly spaced stops, interpolated linearly between:
 * blue-white-red for signed data (ColorBrewer RdBu) and a dark-to-light one
 * that stays readable in gray (viridis' end points and quartiles). */
static const uint32_t diverging[5] = {0x2166ac, 0x67a9cf, 0xf7f7f7, 0xef8a62, 0xb2182b};
static const uint32_t sequential[5] = {0x440154, 0x3b528b, 0x21918c, 0x5ec962, 0xfde725};

/* ---------------------------------------------------------------- building */

static char *dup_or_null(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    return memcpy(dfn_malloc(n), s, n);
}

static float *copy_floats(const float *x, size_t n) {
    float *c = dfn_malloc(DFN_MAX(n, 1) * sizeof *c);
    if (n) memcpy(c, x, n * sizeof *c);
    return c;
}

dfn_plot *dfn_plot_new(int width, int height) {
    DFN_ASSERT(width <= 16384 && height <= 16384);
    dfn_plot *p = dfn_calloc(1, sizeof *p);
    p->width = width > 0 ? width : 800;
    p->height = height > 0 ? height : 500;
    for (int i = 0; i < 4; i++) p->lim[i] = NAN;
    return p;
}

void dfn_plot_free(dfn_plot *p) {
    if (!p) return;
    for (int i = 0; i < p->ns; i++) {
        free(p->s[i].x);
        free(p->s[i].y);
        free(p->s[i].label);
    }
    free(p->s);
    free(p->heat);
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    free(p);
}

void dfn_plot_labels(dfn_plot *p, const char *title, const char *xlabel, const char *ylabel) {
    DFN_ASSERT(p);
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    p->title = dup_or_null(title);
    p->xlabel = dup_or_null(xlabel);
    p->ylabel = dup_or_null(ylabel);
}

void dfn_plot_log_y(dfn_plot *p, int on) { p->log_y = on != 0; }

void dfn_plot_limits(dfn_plot *p, double xmin, double xmax, double ymin, double ymax) {
    p->lim[0] = xmin, p->lim[1] = xmax, p->lim[2] = ymin, p->lim[3] = ymax;
}

static series *add_series(dfn_plot *p, int kind, int n, const char *label) {
    DFN_ASSERT(p && n >= 0 && !p->heat);
    if (p->ns == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 8;
        series *grown = dfn_malloc((size_t)p->cap * sizeof *grown);
        if (p->ns) memcpy(grown, p->s, (size_t)p->ns * sizeof *grown);
        free(p->s);
        p->s = grown;
    }
    series *s = &p->s[p->ns];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->n = n;
    s->label = dup_or_null(label);
    s->rgb = palette[p->ns % 10];
    s->alpha = kind == HIST ? 0.45f : kind == BARS ? 0.85f : 1.0f;
    s->size = kind == SCATTER ? 2.5f : 1.8f;
    p->ns++;
    return s;
}

/* x NULL -> 0, 1, ..., n-1 */
static float *x_or_index(const float *x, int n) {
    if (x) return copy_floats(x, (size_t)n);
    float *c = dfn_malloc((size_t)DFN_MAX(n, 1) * sizeof *c);
    for (int i = 0; i < n; i++) c[i] = (float)i;
    return c;
}

void dfn_plot_line(dfn_plot *p, const float *x, const float *y, int n, const char *label) {
    DFN_ASSERT(y || n == 0);
    series *s = add_series(p, LINE, n, label);
    s->x = x_or_index(x, n);
    s->y = copy_floats(y, (size_t)n);
}

void dfn_plot_bars(dfn_plot *p, const float *x, const float *y, int n, const char *label) {
    DFN_ASSERT(y || n == 0);
    series *s = add_series(p, BARS, n, label);
    s->x = x_or_index(x, n);
    s->y = copy_floats(y, (size_t)n);
}

void dfn_plot_scatter(dfn_plot *p, const float *xy, int n, const char *label) {
    DFN_ASSERT(xy || n == 0);
    series *s = add_series(p, SCATTER, n, label);
    s->x = dfn_malloc((size_t)DFN_MAX(n, 1) * sizeof(float));
    s->y = dfn_malloc((size_t)DFN_MAX(n, 1) * sizeof(float));
    for (int i = 0; i < n; i++) s->x[i] = xy[2 * i], s->y[i] = xy[2 * i + 1];
    /* Opaque points for a few hundred; fainter for thousands, so that density
     * shows as darkness instead of one solid blob. */
    s->alpha = (float)DFN_MIN(0.9, DFN_MAX(0.15, 0.9 * sqrt(400.0 / DFN_MAX(n, 1))));
}

void dfn_plot_hist(dfn_plot *p, const float *v, size_t n, int bins, double lo, double hi,
                   const char *label) {
    DFN_ASSERT(v || n == 0);
    if (bins <= 0) bins = 40;
    if (!(lo < hi)) { /* the finite values' range */
        lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < n; i++)
            if (isfinite(v[i])) lo = DFN_MIN(lo, v[i]), hi = DFN_MAX(hi, v[i]);
        if (!(lo <= hi)) lo = 0, hi = 1;
        if (lo == hi) lo -= 0.5, hi += 0.5;
    }
    series *s = add_series(p, HIST, bins, label);
    s->x = dfn_malloc((size_t)(bins + 1) * sizeof(float));
    s->y = dfn_calloc((size_t)bins, sizeof(float));
    double w = (hi - lo) / bins;
    for (int b = 0; b <= bins; b++) s->x[b] = (float)(lo + b * w);
    size_t count = 0, *per_bin = dfn_calloc((size_t)bins, sizeof *per_bin);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        count++;
        if (v[i] < lo || v[i] > hi) continue;
        int b = DFN_MIN(bins - 1, (int)((v[i] - lo) / w)); /* v == hi joins the last bin */
        per_bin[b]++;
    }
    for (int b = 0; b < bins; b++) s->y[b] = count ? (float)(per_bin[b] / (count * w)) : 0.0f;
    free(per_bin);
}

void dfn_plot_style(dfn_plot *p, long rgb, float alpha, float size, int markers) {
    DFN_ASSERT(p && p->ns > 0);
    series *s = &p->s[p->ns - 1];
    if (rgb >= 0) s->rgb = (uint32_t)rgb & 0xffffff;
    if (alpha > 0) s->alpha = DFN_MIN(alpha, 1.0f);
    if (size > 0) s->size = size;
    s->markers = markers != 0;
}

void dfn_plot_heatmap(dfn_plot *p, const float *m, int rows, int cols, double vmin, double vmax) {
    DFN_ASSERT(p && m && rows > 0 && cols > 0 && p->ns == 0);
    free(p->heat);
    p->heat = copy_floats(m, (size_t)rows * cols);
    p->rows = rows, p->cols = cols;
    if (!(vmin < vmax)) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < (size_t)rows * cols; i++)
            if (isfinite(m[i])) lo = DFN_MIN(lo, m[i]), hi = DFN_MAX(hi, m[i]);
        if (!(lo <= hi)) lo = 0, hi = 1;
        if (lo < 0 && hi > 0) hi = DFN_MAX(-lo, hi), lo = -hi;
        if (lo == hi) lo -= 0.5, hi += 0.5;
        vmin = lo, vmax = hi;
    }
    p->vmin = vmin, p->vmax = vmax;
}

/* ---------------------------------------------------------------- ranges and ticks */

/* Maps data to pixels. Log axes work in log10 units throughout: y0, y1 and
 * tick positions are exponents. */
typedef struct {
    double ax, ay, aw, ah; /* plot area, pixels */
    double x0, x1, y0, y1; /* visible data range */
    int log_y, flip_y;     /* flip_y: y grows downwards (heatmap rows) */
} frame;

/* cairo keeps coordinates in 24.8 fixed point; far-off points (a zoomed-in
 * range) are pulled in so they cannot wrap around. */
static double clampc(double v) { return DFN_MAX(-1e6, DFN_MIN(1e6, v)); }
static double px(const frame *f, double x) {
    return clampc(f->ax + (x - f->x0) / (f->x1 - f->x0) * f->aw);
}
/* y in data units; NaN when it has no place (non-finite, <= 0 on a log axis). */
static double py(const frame *f, double y) {
    if (f->log_y) y = y > 0 ? log10(y) : NAN;
    if (!isfinite(y)) return NAN;
    double t = (y - f->y0) / (f->y1 - f->y0);
    return clampc(f->flip_y ? f->ay + t * f->ah : f->ay + (1 - t) * f->ah);
}
/* Where bars and histograms start: y = 0, or the bottom of a log axis. */
static double base_y(const frame *f) { return f->log_y ? f->ay + f->ah + 1 : py(f, 0); }

static double bar_half_width(const series *s) {
    return s->n > 1 ? 0.4 * fabs((double)s->x[s->n - 1] - s->x[0]) / (s->n - 1) : 0.4;
}

static void grow(double r[2], double v) {
    if (isfinite(v)) r[0] = DFN_MIN(r[0], v), r[1] = DFN_MAX(r[1], v);
}

/* Fills f->x0..y1 from the series (or the user's limits). */
static void data_ranges(const dfn_plot *p, frame *f) {
    double xr[2] = {INFINITY, -INFINITY}, yr[2] = {INFINITY, -INFINITY};
    int from_zero = 0;
#define TY(v) (p->log_y ? ((v) > 0 ? log10(v) : NAN) : (double)(v))
    for (int k = 0; k < p->ns; k++) {
        const series *s = &p->s[k];
        if (s->kind == HIST || s->kind == BARS) from_zero = 1;
        for (int i = 0; i < s->n; i++) {
            double y = TY(s->y[i]);
            if (s->kind == HIST) {
                grow(xr, s->x[i]), grow(xr, s->x[i + 1]), grow(yr, y);
            } else if (s->kind == BARS) {
                double h = bar_half_width(s);
                if (isfinite(y)) grow(xr, s->x[i] - h), grow(xr, s->x[i] + h), grow(yr, y);
            } else if (isfinite(y) && isfinite(s->x[i])) {
                grow(xr, s->x[i]), grow(yr, y);
            }
        }
    }
    if (from_zero && !p->log_y) grow(yr, 0);
    double *r[2] = {xr, yr};
    for (int a = 0; a < 2; a++) {
        if (!(r[a][0] <= r[a][1])) r[a][0] = 0, r[a][1] = 1; /* no data */
        if (r[a][0] == r[a][1]) r[a][0] -= 0.5, r[a][1] += 0.5;
        double pad = (r[a][1] - r[a][0]) * (a ? 0.05 : 0.03);
        if (!(a == 1 && from_zero && !p->log_y && r[a][0] == 0)) r[a][0] -= pad;
        r[a][1] += pad;
        double lo = p->lim[2 * a], hi = p->lim[2 * a + 1];
        if (a == 1 && p->log_y) lo = lo > 0 ? log10(lo) : NAN, hi = hi > 0 ? log10(hi) : NAN;
        if (lo < hi) r[a][0] = lo, r[a][1] = hi;
    }
#undef TY
    f->x0 = xr[0], f->x1 = xr[1], f->y0 = yr[0], f->y1 = yr[1];
}

typedef struct {
    int n, nminor;
    double pos[MAX_TICKS], minor[2 * MAX_TICKS];
    char text[MAX_TICKS][24];
} ticks;

static void add_tick(ticks *t, double pos, const char *text) {
    if (t->n == MAX_TICKS) return;
    t->pos[t->n] = pos;
    snprintf(t->text[t->n++], sizeof t->text[0], "%s", text);
}

/* About `target` ticks at multiples of a step of 1, 2 or 5 times a power of
 * ten, labelled with just enough decimals for that step. */
static void linear_ticks(ticks *t, double lo, double hi, double target, int integer) {
    double raw = (hi - lo) / target, mag = pow(10, floor(log10(raw))), m = raw / mag;
    double step = (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * mag;
    if (integer && step < 1) step = 1;
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    int sci = DFN_MAX(fabs(lo), fabs(hi)) >= 1e6 || decimals > 5;
    memset(t, 0, sizeof *t);
    double k0 = ceil(lo / step - 1e-9), k1 = floor(hi / step + 1e-9);
    /* (counted, not k++: far from 0, k + 1 may round back to k) */
    for (int i = 0; k0 + i <= k1 && i < MAX_TICKS; i++) {
        char s[24];
        double v = (k0 + i) * step + 0.0; /* + 0.0 turns -0 (from ceil(-0.3)) into 0 */
        if (sci)
            snprintf(s, sizeof s, "%.3g", v);
        else
            snprintf(s, sizeof s, "%.*f", decimals, v);
        add_tick(t, v, s);
    }
}

/* Ticks of a log axis over exponents [lo, hi]. Three or more powers of ten
 * inside: one tick per decade (or every few decades), with unlabelled minor
 * ticks at 2..9 times each. Fewer: labelled ticks at 1, 2, 5 times powers of
 * ten, or at every integer multiple when that gives fewer than three. */
static void log_ticks(ticks *t, double lo, double hi, double target) {
    char s[24];
    memset(t, 0, sizeof *t);
    int d0 = (int)ceil(lo - 1e-9), d1 = (int)floor(hi + 1e-9);
    if (d1 - d0 >= 2) {
        int every = DFN_MAX(1, (int)ceil((d1 - d0 + 1) / target));
        for (int d = d0; d <= d1; d++) {
            if (((d % every) + every) % every) continue;
            if (d >= -4 && d <= 4)
                snprintf(s, sizeof s, "%g", pow(10, d));
            else
                snprintf(s, sizeof s, "1e%d", d);
            add_tick(t, d, s);
        }
        if (hi - lo <= 8)
            for (int d = (int)floor(lo); d <= d1; d++)
                for (int m = 2; m <= 9 && t->nminor < 2 * MAX_TICKS; m++)
                    if (d + log10(m) >= lo && d + log10(m) <= hi)
                        t->minor[t->nminor++] = d + log10(m);
        return;
    }
    static const int sets[2][10] = {{1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    for (int k = 0; k < 2 && t->n < 3; k++) {
        t->n = 0;
        for (int d = (int)floor(lo); d <= (int)ceil(hi); d++)
            for (int j = 0; j < 10 && sets[k][j]; j++) {
                double e = d + log10(sets[k][j]);
                if (e < lo - 1e-9 || e > hi + 1e-9) continue;
                snprintf(s, sizeof s, "%g", sets[k][j] * pow(10, d));
                add_tick(t, e, s);
            }
    }
}

/* ---------------------------------------------------------------- drawing helpers */

static void set_rgb(cairo_t *cr, uint32_t rgb, double alpha) {
    cairo_set_source_rgba(cr, (rgb >> 16 & 255) / 255.0, (rgb >> 8 & 255) / 255.0,
                          (rgb & 255) / 255.0, alpha);
}

static void set_font(cairo_t *cr, double size, int bold) {
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_width(cairo_t *cr, const char *s) {
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    return te.x_advance;
}

/* Draws s in the current font with the point (x, y) at the relative position
 * (ha, va) of the text's box: ha 0 left .. 1 right, va 0 top .. 1 baseline,
 * where the box is as tall as a capital letter (0.73 em in DejaVu Sans), so
 * digits and capitals centre exactly. vertical: rotated to read upwards. */
static void text_at(cairo_t *cr, const char *s, double x, double y, double ha, double va,
                    int vertical) {
    cairo_matrix_t font;
    cairo_get_font_matrix(cr, &font); /* yy: the font size */
    double cap = 0.73 * font.yy;
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (vertical) cairo_rotate(cr, -PI / 2);
    cairo_move_to(cr, -ha * text_width(cr, s), cap * (1 - va));
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

static void colormap(const uint32_t *stops, double t, double rgb[3]) {
    t = isfinite(t) ? DFN_MAX(0.0, DFN_MIN(1.0, t)) * 4 : 0;
    int i = DFN_MIN(3, (int)t);
    double f = t - i;
    for (int c = 0; c < 3; c++) {
        int sh = 16 - 8 * c;
        rgb[c] = ((stops[i] >> sh & 255) * (1 - f) + (stops[i + 1] >> sh & 255) * f) / 255.0;
    }
}

/* Liang-Barsky: does the segment (x0,y0)-(x1,y1) meet the box [bx0,bx1]x[by0,by1]? */
static int segment_hits(double x0, double y0, double x1, double y1, const double b[4]) {
    double t0 = 0, t1 = 1, dx = x1 - x0, dy = y1 - y0;
    double pp[4] = {-dx, dx, -dy, dy}, q[4] = {x0 - b[0], b[2] - x0, y0 - b[1], b[3] - y0};
    for (int i = 0; i < 4; i++) {
        if (pp[i] == 0) {
            if (q[i] < 0) return 0;
            continue;
        }
        double r = q[i] / pp[i];
        if (pp[i] < 0 && r > t0) t0 = r;
        if (pp[i] > 0 && r < t1) t1 = r;
        if (t0 > t1) return 0;
    }
    return 1;
}

static int rect_hits(double xa, double ya, double xb, double yb, const double b[4]) {
    return DFN_MAX(xa, xb) >= b[0] && DFN_MIN(xa, xb) <= b[2] && DFN_MAX(ya, yb) >= b[1] &&
           DFN_MIN(ya, yb) <= b[3];
}

/* How much data the box [x0, y0, x1, y1] (pixels) would hide: segments,
 * points and bars that reach into it. */
static long data_under(const dfn_plot *p, const frame *f, const double b[4]) {
    long hits = 0;
    for (int k = 0; k < p->ns; k++) {
        const series *s = &p->s[k];
        for (int i = 0; i < s->n; i++) {
            double x = px(f, s->x[i]), y = py(f, s->y[i]);
            if (s->kind == HIST) {
                hits += isfinite(y) && rect_hits(x, y, px(f, s->x[i + 1]), base_y(f), b);
            } else if (s->kind == BARS) {
                double h = bar_half_width(s);
                hits += isfinite(y) &&
                        rect_hits(px(f, s->x[i] - h), y, px(f, s->x[i] + h), base_y(f), b);
            } else if (s->kind == SCATTER || i == 0) {
                hits += isfinite(x + y) && x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3];
            } else {
                double xp = px(f, s->x[i - 1]), yp = py(f, s->y[i - 1]);
                hits += isfinite(x + y + xp + yp) && segment_hits(xp, yp, x, y, b);
            }
        }
    }
    return hits;
}

/* ---------------------------------------------------------------- drawing the figure */

/* The path of a line series. A long one (a loss curve of 10^5 steps) puts
 * hundreds of points into each pixel column, and stroking a path that folds
 * over itself that often makes cairo crawl (minutes). Of a run of consecutive
 * points inside one pixel column only four can show: the first, the lowest,
 * the highest and the last (the "M4" reduction), so the path keeps just those:
 * the same picture from at most four points per column. A non-finite point
 * (or y <= 0 on a log axis) lifts the pen: the line breaks there. */
typedef struct {
    double x, y;
} point;

static void line_path(cairo_t *cr, const frame *f, const series *s) {
    point first = {0}, lo = {0}, hi = {0}, last = {0};
    int lo_i = 0, hi_i = 0, run = 0; /* run: points in the current column so far */
    for (int i = 0; i <= s->n; i++) {
        point q = {NAN, NAN};
        if (i < s->n) q.x = px(f, s->x[i]), q.y = py(f, s->y[i]);
        int ok = isfinite(q.x + q.y);
        if (run && (!ok || floor(q.x) != floor(first.x))) { /* close the column */
            point a = lo_i <= hi_i ? lo : hi, b = lo_i <= hi_i ? hi : lo;
            if (run > 2) cairo_line_to(cr, a.x, a.y), cairo_line_to(cr, b.x, b.y);
            if (run > 1) cairo_line_to(cr, last.x, last.y);
            run = 0;
        }
        if (!ok) {
            cairo_new_sub_path(cr);
            continue;
        }
        if (run == 0) { /* a new column starts with its first point */
            if (cairo_has_current_point(cr))
                cairo_line_to(cr, q.x, q.y);
            else
                cairo_move_to(cr, q.x, q.y);
            first = lo = hi = q, lo_i = hi_i = i;
        }
        if (q.y < lo.y) lo = q, lo_i = i;
        if (q.y > hi.y) hi = q, hi_i = i;
        last = q;
        run++;
    }
}

static void draw_series(cairo_t *cr, const frame *f, const series *s) {
    set_rgb(cr, s->rgb, s->alpha);
    if (s->kind == LINE) {
        line_path(cr, f, s);
        cairo_set_line_width(cr, s->size);
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
        cairo_stroke(cr); /* one stroke: an alpha line does not darken where it crosses itself */
        for (int i = 0; s->markers && i < s->n; i++) {
            double x = px(f, s->x[i]), y = py(f, s->y[i]);
            if (!isfinite(x + y)) continue;
            cairo_new_sub_path(cr);
            cairo_arc(cr, x, y, s->size + 1.5, 0, 2 * PI);
        }
        cairo_fill(cr);
    } else if (s->kind == SCATTER) {
        for (int i = 0; i < s->n; i++) {
            double x = px(f, s->x[i]), y = py(f, s->y[i]);
            if (!isfinite(x + y)) continue;
            cairo_arc(cr, x, y, s->size, 0, 2 * PI);
            cairo_fill(cr); /* one fill per point, so overlaps add up */
        }
    } else if (s->kind == BARS) {
        double h = bar_half_width(s), y0 = base_y(f);
        for (int i = 0; i < s->n; i++) {
            double y = py(f, s->y[i]), xa = px(f, s->x[i] - h), xb = px(f, s->x[i] + h);
            if (isfinite(y)) cairo_rectangle(cr, xa, y, xb - xa, y0 - y);
        }
        cairo_fill(cr);
    } else { /* HIST: translucent bars, then their outline as one step curve */
        double y0 = base_y(f);
        for (int i = 0; i < s->n; i++) {
            double y = py(f, s->y[i]), xa = px(f, s->x[i]), xb = px(f, s->x[i + 1]);
            if (isfinite(y)) cairo_rectangle(cr, xa, y, xb - xa, y0 - y);
        }
        cairo_fill(cr);
        cairo_move_to(cr, px(f, s->x[0]), y0);
        for (int i = 0; i < s->n; i++) {
            double y = py(f, s->y[i]);
            if (!isfinite(y)) y = y0;
            cairo_line_to(cr, px(f, s->x[i]), y);
            cairo_line_to(cr, px(f, s->x[i + 1]), y);
        }
        cairo_line_to(cr, px(f, s->x[s->n]), y0);
        set_rgb(cr, s->rgb, 1);
        cairo_set_line_width(cr, 1);
        cairo_stroke(cr);
    }
}

/* The legend: a box of (swatch, label) rows. legend_size() measures it (0: no
 * labelled series); legend_corner() finds a corner of the plot area where it
 * hides no data, trying top right, top left, bottom right, bottom left; when
 * every corner would hide some, draw() moves it outside, right of the axes. */
#define LEGEND_ROW 18.0
#define LEGEND_SWATCH 24.0
#define LEGEND_PAD 8.0

static int legend_size(cairo_t *cr, const dfn_plot *p, double *bw, double *bh) {
    int rows = 0;
    double wmax = 0;
    set_font(cr, FONT_TICK, 0);
    for (int k = 0; k < p->ns; k++)
        if (p->s[k].label) rows++, wmax = DFN_MAX(wmax, text_width(cr, p->s[k].label));
    *bw = LEGEND_PAD + LEGEND_SWATCH + 6 + wmax + LEGEND_PAD;
    *bh = 10 + rows * LEGEND_ROW;
    return rows > 0;
}

static int legend_corner(const dfn_plot *p, const frame *f, double bw, double bh, double *x,
                         double *y) {
    const double inset = 8;
    for (int c = 0; c < 4; c++) {
        double bx = c % 2 == 0 ? f->ax + f->aw - inset - bw : f->ax + inset;
        double by = c < 2 ? f->ay + inset : f->ay + f->ah - inset - bh;
        double b[4] = {bx, by, bx + bw, by + bh};
        if (data_under(p, f, b) == 0) {
            *x = round(bx), *y = round(by);
            return 1;
        }
    }
    return 0;
}

static void draw_legend(cairo_t *cr, const dfn_plot *p, double bx, double by, double bw,
                        double bh) {
    cairo_rectangle(cr, bx + 0.5, by + 0.5, bw, bh);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    set_font(cr, FONT_TICK, 0);
    double x = bx + LEGEND_PAD, y = by + 5 + LEGEND_ROW / 2;
    for (int k = 0; k < p->ns; k++) {
        const series *s = &p->s[k];
        if (!s->label) continue;
        set_rgb(cr, s->rgb, s->kind == SCATTER ? DFN_MAX(s->alpha, 0.6f) : s->alpha);
        if (s->kind == LINE) {
            cairo_move_to(cr, x, y);
            cairo_line_to(cr, x + LEGEND_SWATCH, y);
            cairo_set_line_width(cr, s->size);
            cairo_stroke(cr);
            if (s->markers) cairo_arc(cr, x + LEGEND_SWATCH / 2, y, s->size + 1.5, 0, 2 * PI);
        } else if (s->kind == SCATTER) {
            cairo_arc(cr, x + LEGEND_SWATCH / 2, y, 4, 0, 2 * PI);
        } else {
            cairo_rectangle(cr, x + 3, y - 5, LEGEND_SWATCH - 6, 10);
        }
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text_at(cr, s->label, x + LEGEND_SWATCH + 6, y, 0, 0.5, 0);
        y += LEGEND_ROW;
    }
}

static void cell_colour(const dfn_plot *p, const uint32_t *stops, double v, double rgb[3]) {
    if (isfinite(v))
        colormap(stops, (v - p->vmin) / (p->vmax - p->vmin), rgb);
    else
        rgb[0] = rgb[1] = rgb[2] = 0.6; /* NaN cells: gray */
}

/* The heatmap's cells and its colour bar (at bar_x, as tall as the plot area). */
static void draw_heatmap(cairo_t *cr, const dfn_plot *p, const frame *f, double bar_x,
                         const ticks *ct) {
    const uint32_t *stops = p->vmin < 0 && p->vmax > 0 ? diverging : sequential;
    double rgb[3];
    if ((long)p->rows * p->cols <= 128 * 128) {
        /* One rectangle per cell. Edges are rounded to whole pixels, so that
         * neighbouring cells meet without the faint seam of two antialiased edges. */
        for (int r = 0; r < p->rows; r++) {
            double ya = round(f->ay + r * f->ah / p->rows);
            double yb = round(f->ay + (r + 1) * f->ah / p->rows);
            for (int c = 0; c < p->cols; c++) {
                double xa = round(f->ax + c * f->aw / p->cols);
                double xb = round(f->ax + (c + 1) * f->aw / p->cols);
                cell_colour(p, stops, p->heat[(size_t)r * p->cols + c], rgb);
                cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
                cairo_rectangle(cr, xa, ya, xb - xa, yb - ya);
                cairo_fill(cr);
            }
        }
    } else {
        /* Big matrices (pixel covariances): one image pixel per cell, scaled
         * onto the area, blocky when cells are larger than a pixel, averaged
         * when smaller. An SVG then embeds one PNG instead of 10^5 rectangles. */
        cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, p->cols, p->rows);
        unsigned char *data = cairo_image_surface_get_data(img);
        int stride = cairo_image_surface_get_stride(img);
        for (int r = 0; data && r < p->rows; r++)
            for (int c = 0; c < p->cols; c++) {
                cell_colour(p, stops, p->heat[(size_t)r * p->cols + c], rgb);
                uint32_t v = (uint32_t)lround(rgb[0] * 255) << 16 |
                             (uint32_t)lround(rgb[1] * 255) << 8 | (uint32_t)lround(rgb[2] * 255);
                memcpy(data + (size_t)r * stride + 4 * (size_t)c, &v, 4); /* native-endian xRGB */
            }
        cairo_surface_mark_dirty(img);
        cairo_save(cr);
        cairo_translate(cr, f->ax, f->ay);
        cairo_scale(cr, f->aw / p->cols, f->ah / p->rows);
        cairo_set_source_surface(cr, img, 0, 0);
        cairo_pattern_set_filter(cairo_get_source(cr),
                                 f->aw >= p->cols ? CAIRO_FILTER_NEAREST : CAIRO_FILTER_GOOD);
        cairo_paint(cr);
        cairo_restore(cr);
        cairo_surface_destroy(img);
    }
    /* The colour bar: the same stops as a vertical gradient, vmax on top. */
    const double bw = 16;
    cairo_pattern_t *g = cairo_pattern_create_linear(0, f->ay + f->ah, 0, f->ay);
    for (int i = 0; i < 5; i++) {
        colormap(stops, i / 4.0, rgb);
        cairo_pattern_add_color_stop_rgb(g, i / 4.0, rgb[0], rgb[1], rgb[2]);
    }
    cairo_rectangle(cr, bar_x, f->ay, bw, f->ah);
    cairo_set_source(cr, g);
    cairo_fill(cr);
    cairo_pattern_destroy(g);
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, bar_x + 0.5, f->ay + 0.5, bw - 1, f->ah - 1);
    cairo_stroke(cr);
    set_font(cr, FONT_TICK, 0);
    for (int i = 0; i < ct->n; i++) {
        double y =
            round(f->ay + f->ah - (ct->pos[i] - p->vmin) / (p->vmax - p->vmin) * f->ah) + 0.5;
        cairo_move_to(cr, bar_x + bw, y);
        cairo_line_to(cr, bar_x + bw + TICK_LEN, y);
        cairo_stroke(cr);
        text_at(cr, ct->text[i], bar_x + bw + TICK_LEN + 3, y, 0, 0.5, 0);
    }
}

static void draw(const dfn_plot *p, cairo_t *cr) {
    const double W = p->width, H = p->height;
    frame f = {0};
    ticks xt, yt, ct = {0};
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);

    /* 1, 2: ranges and ticks (about one per 100 px across, 60 px up). */
    if (p->heat) {
        f.x0 = -0.5, f.x1 = p->cols - 0.5, f.y0 = -0.5, f.y1 = p->rows - 0.5, f.flip_y = 1;
        linear_ticks(&xt, 0, p->cols - 1 + 1e-9, DFN_MIN(8, p->cols), 1);
        linear_ticks(&yt, 0, p->rows - 1 + 1e-9, DFN_MIN(8, p->rows), 1);
        linear_ticks(&ct, p->vmin, p->vmax, 6, 0);
    } else {
        f.log_y = p->log_y;
        data_ranges(p, &f);
        linear_ticks(&xt, f.x0, f.x1, DFN_MAX(3, DFN_MIN(10, W / 100)), 0);
        if (f.log_y)
            log_ticks(&yt, f.y0, f.y1, DFN_MAX(3, DFN_MIN(10, H / 60)));
        else
            linear_ticks(&yt, f.y0, f.y1, DFN_MAX(3, DFN_MIN(10, H / 60)), 0);
    }

    /* 3: margins around the plot area, from the text that goes there. */
    set_font(cr, FONT_TICK, 0);
    double ywide = 0, cwide = 0;
    for (int i = 0; i < yt.n; i++) ywide = DFN_MAX(ywide, text_width(cr, yt.text[i]));
    for (int i = 0; i < ct.n; i++) cwide = DFN_MAX(cwide, text_width(cr, ct.text[i]));
    double left = 12 + (p->ylabel ? FONT_LABEL + 10 : 0) + ywide + TICK_LEN + 4;
    double top = p->title ? 16 + FONT_TITLE + 14 : 16;
    double bottom = TICK_LEN + 6 + FONT_TICK + (p->xlabel ? 12 + FONT_LABEL : 0) + 14;
    double right = p->heat ? 24 + 16 + TICK_LEN + 4 + cwide + 12 : 24;
    f.ax = round(left), f.ay = round(top);
    f.aw = DFN_MAX(10, round(W - left - right)), f.ah = DFN_MAX(10, round(H - top - bottom));
    if (p->heat) { /* square cells; the whole figure centred in what is left over */
        double cell = DFN_MIN(f.aw / p->cols, f.ah / p->rows);
        double aw = round(cell * p->cols), ah = round(cell * p->rows);
        cairo_translate(cr, floor((f.aw - aw) / 2), floor((f.ah - ah) / 2));
        f.aw = aw, f.ah = ah;
    }
    double lx = 0, ly = 0, lw, lh;
    int legend = !p->heat && legend_size(cr, p, &lw, &lh);
    if (legend && !legend_corner(p, &f, lw, lh, &lx, &ly)) {
        f.aw = DFN_MAX(10, f.aw - round(lw) - 12); /* make room beside the axes */
        lx = f.ax + f.aw + 12, ly = f.ay;
    }

    /* 4: grid lines, series clipped to the area, frame, ticks, text. */
    cairo_set_line_width(cr, 1);
    if (!p->heat) {
        cairo_set_source_rgb(cr, 0.91, 0.91, 0.91);
        for (int i = 0; i < xt.n; i++) {
            double x = round(px(&f, xt.pos[i])) + 0.5;
            cairo_move_to(cr, x, f.ay);
            cairo_line_to(cr, x, f.ay + f.ah);
        }
        for (int i = 0; i < yt.n; i++) {
            double y = round(py(&f, f.log_y ? pow(10, yt.pos[i]) : yt.pos[i])) + 0.5;
            cairo_move_to(cr, f.ax, y);
            cairo_line_to(cr, f.ax + f.aw, y);
        }
        cairo_stroke(cr);
        cairo_save(cr);
        cairo_rectangle(cr, f.ax, f.ay, f.aw, f.ah);
        cairo_clip(cr);
        for (int k = 0; k < p->ns; k++) draw_series(cr, &f, &p->s[k]);
        cairo_restore(cr);
    } else {
        draw_heatmap(cr, p, &f, f.ax + f.aw + 24, &ct);
    }
    cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, f.ax + 0.5, f.ay + 0.5, f.aw - 1, f.ah - 1);
    cairo_stroke(cr);

    set_font(cr, FONT_TICK, 0);
    for (int i = 0; i < xt.n; i++) {
        double x = round(px(&f, xt.pos[i])) + 0.5;
        cairo_move_to(cr, x, f.ay + f.ah);
        cairo_line_to(cr, x, f.ay + f.ah + TICK_LEN);
        text_at(cr, xt.text[i], x, f.ay + f.ah + TICK_LEN + 6, 0.5, 0, 0);
    }
    for (int i = 0; i < yt.n; i++) {
        double y = round(py(&f, f.log_y ? pow(10, yt.pos[i]) : yt.pos[i])) + 0.5;
        cairo_move_to(cr, f.ax, y);
        cairo_line_to(cr, f.ax - TICK_LEN, y);
        text_at(cr, yt.text[i], f.ax - TICK_LEN - 4, y, 1, 0.5, 0);
    }
    for (int i = 0; i < yt.nminor; i++) {
        double y = round(py(&f, pow(10, yt.minor[i]))) + 0.5;
        cairo_move_to(cr, f.ax, y);
        cairo_line_to(cr, f.ax - TICK_LEN / 2, y);
    }
    cairo_stroke(cr);

    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    set_font(cr, FONT_LABEL, 0);
    if (p->xlabel) text_at(cr, p->xlabel, f.ax + f.aw / 2, f.ay + f.ah + bottom - 12, 0.5, 1, 0);
    if (p->ylabel) text_at(cr, p->ylabel, 12, f.ay + f.ah / 2, 0.5, 0, 1);
    set_font(cr, FONT_TITLE, 1);
    if (p->title) text_at(cr, p->title, f.ax + f.aw / 2, 16, 0.5, 0, 0);
    if (legend) draw_legend(cr, p, lx, ly, lw, lh);
}

/* ---------------------------------------------------------------- saving */

typedef struct {
    unsigned char *data;
    size_t size, cap;
} membuf;

/* cairo hands the encoded file over in pieces; they are collected in memory
 * and written in one go by dfn_atomic_write_file(). */
static cairo_status_t membuf_append(void *ctx, const unsigned char *data, unsigned int n) {
    membuf *b = ctx;
    if (b->size + n > b->cap) {
        size_t cap = DFN_MAX(2 * b->cap, b->size + n);
        unsigned char *grown = dfn_malloc(cap);
        if (b->size) memcpy(grown, b->data, b->size);
        free(b->data);
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->size, data, n);
    b->size += n;
    return CAIRO_STATUS_SUCCESS;
}

/* cairo names an SVG's top group and embedded images after a counter shared
 * by all surfaces of the process ("surface37", "image42"), so saving the same
 * figure twice would give two different documents. Renumbering those names
 * 1, 2, ... in order of appearance (wherever they stand as id="name" or
 * href="#name") makes the bytes depend on the figure alone. */
static void svg_renumber(membuf *b) {
    static const char *const names[2] = {"surface", "image"};
    long seen[2][256];
    int nseen[2] = {0, 0};
    /* Each rename grows by at most 2 bytes while it consumes at least 8. */
    unsigned char *out = dfn_malloc(b->size + b->size / 4 + 64), *o = out;
    size_t i = 0;
    while (i < b->size) {
        int k = -1;
        size_t len = 0;
        if (b->data[i] == '"' || b->data[i] == '#')
            for (int c = 0; c < 2 && k < 0; c++) {
                len = strlen(names[c]);
                if (i + 1 + len < b->size && !memcmp(b->data + i + 1, names[c], len) &&
                    b->data[i + 1 + len] >= '0' && b->data[i + 1 + len] <= '9')
                    k = c;
            }
        if (k < 0) {
            *o++ = b->data[i++];
            continue;
        }
        memcpy(o, b->data + i, 1 + len);
        o += 1 + len, i += 1 + len;
        long v = 0;
        while (i < b->size && b->data[i] >= '0' && b->data[i] <= '9')
            v = 10 * v + (b->data[i++] - '0');
        int j = 0;
        while (j < nseen[k] && seen[k][j] != v) j++;
        if (j == nseen[k] && j < 256) seen[k][nseen[k]++] = v;
        o +=
            sprintf((char *)o, "%ld", j < 256 ? j + 1 : 1000 + v); /* (past 256: distinct anyway) */
    }
    free(b->data);
    b->data = out;
    b->size = b->cap = (size_t)(o - out);
}


dfn_status dfn_plot_save(const dfn_plot *p, const char *path) {
    DFN_ASSERT(p && path);
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    int png = dot && !strcasecmp(dot, ".png"), svg = dot && !strcasecmp(dot, ".svg");
    if (!png && !svg)
        return dfn_set_error(DFN_ERR_ARG,
                             "%s: unknown plot format; supported extensions: .png, .svg", path);

    dfn_status st = DFN_OK;
    membuf out = {0};
    cairo_surface_t *s =
        png ? cairo_image_surface_create(CAIRO_FORMAT_RGB24, p->width, p->height)
            : cairo_svg_surface_create_for_stream(membuf_append, &out, p->width, p->height);
    cairo_t *cr = cairo_create(s);
    draw(p, cr);
    cairo_status_t cs = cairo_status(cr);
    cairo_destroy(cr);
    if (cs == CAIRO_STATUS_SUCCESS) {
        if (png) {
            cs = cairo_surface_write_to_png_stream(s, membuf_append, &out);
        } else {
            cairo_surface_finish(s); /* the SVG document is complete only now */
            cs = cairo_surface_status(s);
            if (cs == CAIRO_STATUS_SUCCESS) svg_renumber(&out);
        }
    }
    cairo_surface_destroy(s);
    if (cs != CAIRO_STATUS_SUCCESS) {
        st = dfn_set_error(DFN_ERR_IO, "%s: cairo could not draw the plot: %s", path,
                           cairo_status_to_string(cs));
        goto done;
    }
    st = dfn_atomic_write_file(path, out.data, out.size);
done:
    free(out.data);
    return st;
}

void dfn_plot_release_caches(void) {
    cairo_debug_reset_static_data(); /* cairo's font faces, which hold fontconfig patterns */
    FcFini();                        /* then fontconfig's configuration and font list */
}

/* diffusion/plot.h - figures drawn with cairo: lines, scatters, histograms,
 * bars and heat maps, saved as PNG or SVG. */
#ifndef DIFFUSION_PLOT_H
#define DIFFUSION_PLOT_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/core.h"

DFN_BEGIN_DECLS

/* Plots: build a figure, add series, save it as PNG or SVG by the extension
 * (".png", ".svg"; anything else is DFN_ERR_ARG naming the file). The figure
 * keeps copies of everything added, so arrays may be freed right after. The
 * same figure gives the same PNG bytes on every save.
 *
 *     dfn_plot *p = dfn_plot_new(0, 0);
 *     dfn_plot_labels(p, "Training loss", "step", "MSE");
 *     dfn_plot_log_y(p, 1);
 *     dfn_plot_line(p, steps, train_loss, n, "train");
 *     dfn_plot_line(p, val_steps, val_loss, m, "validation");
 *     if (dfn_plot_save(p, "loss.png") != DFN_OK) fprintf(stderr, "%s\n", dfn_last_error());
 *     dfn_plot_free(p);
 *
 * Series take colours in turn from a 10-colour palette; those with a label get
 * a legend entry, placed in the corner of the axes where it hides the least
 * data. Non-finite values (and y <= 0 on a log axis) are skipped; a line breaks
 * there. */
typedef struct dfn_plot dfn_plot;

/* An empty figure of width x height pixels (SVG: points); <= 0 gives 800 x 500. */
dfn_plot *dfn_plot_new(int width, int height);
void dfn_plot_free(dfn_plot *plot);
/* Title and axis labels; any may be NULL (none). */
void dfn_plot_labels(dfn_plot *plot, const char *title, const char *xlabel, const char *ylabel);
/* Logarithmic y axis (decades, 1e-3 style labels); on = 0 turns it off. */
void dfn_plot_log_y(dfn_plot *plot, int on);
/* Fixed axis ranges; a pair with min >= max (or NaN) stays automatic: the data's
 * range plus a small margin, from 0 for histograms and bars. */
void dfn_plot_limits(dfn_plot *plot, double xmin, double xmax, double ymin, double ymax);

/* A polyline through (x[i], y[i]); x NULL means x = 0, 1, ..., n-1. */
void dfn_plot_line(dfn_plot *plot, const float *x, const float *y, int n, const char *label);
/* n 2-D points stored (n, 2) as x0 y0 x1 y1 ... (a batch of the 2-D data sets);
 * the default opacity falls with n so that dense regions show as darker. */
void dfn_plot_scatter(dfn_plot *plot, const float *xy, int n, const char *label);
/* A histogram of n values in `bins` bins (<= 0: 40) over [lo, hi] (lo >= hi:
 * the values' range), scaled as a density, count / (finite values * bin
 * width), so that a probability density drawn with dfn_plot_line overlays it.
 * Half transparent, so that several histograms can share the axes. */
void dfn_plot_hist(dfn_plot *plot, const float *values, size_t n, int bins, double lo, double hi,
                   const char *label);
/* Vertical bars of height y[i] at x[i] (x NULL: 0..n-1), e.g. an eigenvalue
 * spectrum; on a log axis they rise from the bottom of the axes. */
void dfn_plot_bars(dfn_plot *plot, const float *x, const float *y, int n, const char *label);
/* Restyles the series added last: colour 0xRRGGBB (< 0 keeps the palette's),
 * opacity in (0, 1] (<= 0 keeps the default), line width or point radius in
 * pixels (<= 0 keeps the default), and markers at a line's points (0/1). */
void dfn_plot_style(dfn_plot *plot, long rgb, float alpha, float size, int markers);
/* Makes the figure a heatmap of the (rows, cols) matrix m (row 0 on top) with a
 * colour bar, instead of x-y series. Colours span [vmin, vmax]; vmin >= vmax
 * picks the range: symmetric around 0 with a blue-white-red scale if m has
 * both signs (covariances), else [min, max] on a dark-to-light scale. */
void dfn_plot_heatmap(dfn_plot *plot, const float *m, int rows, int cols, double vmin,
                      double vmax);
/* Draws the figure into path: ".png" or ".svg" (case-insensitive). */
dfn_status dfn_plot_save(const dfn_plot *plot, const char *path);
/* Frees the font caches that cairo and fontconfig keep for the whole process
 * after the first text is drawn (they are rebuilt when needed). For the end of
 * a program run under a leak checker; no other thread may be drawing then. */
void dfn_plot_release_caches(void);


DFN_END_DECLS

#endif

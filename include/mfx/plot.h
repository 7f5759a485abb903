/* mfx/plot.h: a small SVG line-chart writer, the one every mfx plot is
 * drawn with (`mfx db plot`: a tuning's best-so-far time per trial;
 * `mfx experts --plot`: latency against tokens per expert).
 *
 *   mfx_plot p = {.out = f, .title = "linear M=64,N=64,K=64", .x_label = "trial",
 *                 .y_label = "median time (ms, log scale)", .x_lo = 1, .x_hi = n,
 *                 .y_lo = 0.1, .y_hi = 10, .y_log = 1, .x_whole = 1};
 *   mfx_plot_begin(&p);                       canvas, title, axes, ticks, grid
 *   mfx_plot_line(&p, x, y, n, "#1f77b4");    a polyline through (x[i], y[i])
 *   mfx_plot_points(&p, x, y, n, "#999", 2.5);
 *   if (mfx_plot_end(&p) != MFX_OK) ...       </svg>; a write error is an error
 *
 * Coordinates are data values; the writer maps them into the frame (a
 * degenerate range, lo == hi, maps to its middle). Every text is escaped
 * for XML. Runtime only: libc and libm. */
#ifndef MFX_PLOT_H
#define MFX_PLOT_H

#include <stdio.h>

#include "mfx/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MFX_PLOT_WIDTH 760.0  /* the canvas, px; the frame's margins: */
#define MFX_PLOT_HEIGHT 440.0
#define MFX_PLOT_LEFT 80.0
#define MFX_PLOT_RIGHT 20.0   /* plus legend_width */
#define MFX_PLOT_TOP 40.0
#define MFX_PLOT_BOTTOM 50.0

typedef struct {
  FILE *out;
  const char *title, *x_label, *y_label;
  double x_lo, x_hi, y_lo, y_hi; /* the axes' data ranges (y_log: both > 0) */
  int y_log;                     /* y on a log10 scale, grid at 1, 2 and 5 x 10^k */
  int x_whole;                   /* x ticks at whole numbers only (trial numbers) */
  double legend_width;           /* room right of the frame for mfx_plot_legend, px */
} mfx_plot;

/* The canvas, the title, both axes with their ticks, labels and grid. */
void mfx_plot_begin(mfx_plot *p);
/* Data to canvas coordinates. */
double mfx_plot_x(const mfx_plot *p, double x);
double mfx_plot_y(const mfx_plot *p, double y);
/* A line through the n points (x[i], y[i]), 2 px wide. */
void mfx_plot_line(const mfx_plot *p, const double *x, const double *y, int n,
                   const char *color);
/* A straight line from (x0, y0) to (x1, y1), 1 px; dashed or solid. */
void mfx_plot_segment(const mfx_plot *p, double x0, double y0, double x1, double y1,
                      const char *color, int dashed);
/* A dot of `radius` px at each point. */
void mfx_plot_points(const mfx_plot *p, const double *x, const double *y, int n,
                     const char *color, double radius);
/* A small `mark` (such as "x") just above the x axis at each x[i]: points
 * without a value, such as failed trials. */
void mfx_plot_axis_marks(const mfx_plot *p, const double *x, int n, const char *color,
                         const char *mark);
/* Legend row `row` right of the frame: a color box, `text`, and a smaller
 * `note` under it (NULL: none). */
void mfx_plot_legend(const mfx_plot *p, int row, const char *color, const char *text,
                     const char *note);
/* Closes the SVG and flushes; MFX_ERR_IO when anything failed to write. */
mfx_status mfx_plot_end(mfx_plot *p);

#ifdef __cplusplus
}
#endif

#endif

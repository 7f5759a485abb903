/* The SVG line-chart writer (mfx/plot.h): one frame, axes with ticks on a
 * 1-2-5 grid (linear, or log10 for y), lines, dots, marks and a legend.
 * libc and libm only. */
#include "mfx/plot.h"

#include <math.h>

static double plot_frame_right(const mfx_plot *p) {
  return MFX_PLOT_WIDTH - MFX_PLOT_RIGHT - p->legend_width;
}

static double plot_frame_bottom(void) { return MFX_PLOT_HEIGHT - MFX_PLOT_BOTTOM; }

static void plot_escaped(FILE *f, const char *s) {
  for (; s != NULL && *s; s++) {
    if (*s == '&') fputs("&amp;", f);
    else if (*s == '<') fputs("&lt;", f);
    else if (*s == '>') fputs("&gt;", f);
    else if (*s == '"') fputs("&quot;", f);
    else fputc(*s, f);
  }
}

/* v's place in [lo, hi] as a fraction (0.5 for a degenerate range). */
static double plot_fraction(double v, double lo, double hi) {
  return hi > lo ? (v - lo) / (hi - lo) : 0.5;
}

double mfx_plot_x(const mfx_plot *p, double x) {
  return MFX_PLOT_LEFT + plot_fraction(x, p->x_lo, p->x_hi) * (plot_frame_right(p) - MFX_PLOT_LEFT);
}

double mfx_plot_y(const mfx_plot *p, double y) {
  double f = p->y_log ? plot_fraction(log10(y), log10(p->y_lo), log10(p->y_hi))
                      : plot_fraction(y, p->y_lo, p->y_hi);
  return plot_frame_bottom() - f * (plot_frame_bottom() - MFX_PLOT_TOP);
}

/* A tick step of 1, 2 or 5 times a power of ten giving about 5 ticks. */
static double plot_step(double range) {
  if (!(range > 0.0)) return 1.0;
  double raw = range / 5.0, p = pow(10.0, floor(log10(raw)));
  return raw / p < 1.5 ? p : raw / p < 3.5 ? 2 * p : raw / p < 7.5 ? 5 * p : 10 * p;
}

static void plot_y_tick(const mfx_plot *p, double v) {
  double y = mfx_plot_y(p, v);
  fprintf(p->out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>",
          MFX_PLOT_LEFT, y, plot_frame_right(p), y);
  fprintf(p->out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
          MFX_PLOT_LEFT - 6, y + 4, v);
}

static void plot_y_ticks(const mfx_plot *p) {
  if (p->y_log) {
    static const double steps[] = {1.0, 2.0, 5.0};
    double lo = log10(p->y_lo), hi = log10(p->y_hi);
    for (int e = (int)floor(lo); e <= (int)ceil(hi); e++)
      for (int k = 0; k < 3; k++) {
        double v = steps[k] * pow(10.0, e);
        if (log10(v) >= lo && log10(v) <= hi) plot_y_tick(p, v);
      }
    return;
  }
  double step = plot_step(p->y_hi - p->y_lo);
  for (double v = ceil(p->y_lo / step) * step; v <= p->y_hi; v += step) plot_y_tick(p, v);
}

static void plot_x_ticks(const mfx_plot *p) {
  double step = plot_step(p->x_hi - p->x_lo), y0 = plot_frame_bottom();
  if (p->x_whole && step < 1.0) step = 1.0;
  for (double v = ceil(p->x_lo / step) * step; v <= p->x_hi; v += step) {
    double x = mfx_plot_x(p, v);
    fprintf(p->out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\"/>", x,
            y0, x, y0 + 5);
    fprintf(p->out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", x, y0 + 18,
            v);
  }
}

static void plot_axes(const mfx_plot *p) {
  double x0 = MFX_PLOT_LEFT, x1 = plot_frame_right(p), y0 = plot_frame_bottom();
  plot_y_ticks(p);
  plot_x_ticks(p);
  fprintf(p->out, "<path d=\"M%.1f %.1fV%.1fH%.1f\" stroke=\"#000\" fill=\"none\"/>\n", x0,
          MFX_PLOT_TOP, y0, x1);
  fprintf(p->out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (x0 + x1) / 2,
          MFX_PLOT_HEIGHT - 12);
  plot_escaped(p->out, p->x_label);
  fprintf(p->out, "</text>\n<text transform=\"translate(18 %.1f) rotate(-90)\" "
                  "text-anchor=\"middle\">", (y0 + MFX_PLOT_TOP) / 2);
  plot_escaped(p->out, p->y_label);
  fputs("</text>\n", p->out);
}

void mfx_plot_begin(mfx_plot *p) {
  fprintf(p->out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" "
                  "height=\"100%%\" fill=\"#fff\"/>\n<text x=\"%g\" y=\"22\" font-size=\"14\">",
          MFX_PLOT_WIDTH, MFX_PLOT_HEIGHT, MFX_PLOT_LEFT);
  plot_escaped(p->out, p->title);
  fputs("</text>\n", p->out);
  plot_axes(p);
}

void mfx_plot_line(const mfx_plot *p, const double *x, const double *y, int n,
                   const char *color) {
  fprintf(p->out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
  for (int i = 0; i < n; i++)
    fprintf(p->out, "%s%.1f,%.1f", i ? " " : "", mfx_plot_x(p, x[i]), mfx_plot_y(p, y[i]));
  fputs("\"/>\n", p->out);
}

void mfx_plot_segment(const mfx_plot *p, double x0, double y0, double x1, double y1,
                      const char *color, int dashed) {
  fprintf(p->out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"%s/>\n",
          mfx_plot_x(p, x0), mfx_plot_y(p, y0), mfx_plot_x(p, x1), mfx_plot_y(p, y1), color,
          dashed ? " stroke-dasharray=\"6 4\"" : "");
}

void mfx_plot_points(const mfx_plot *p, const double *x, const double *y, int n,
                     const char *color, double radius) {
  for (int i = 0; i < n; i++)
    fprintf(p->out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%g\" fill=\"%s\"/>\n",
            mfx_plot_x(p, x[i]), mfx_plot_y(p, y[i]), radius, color);
}

void mfx_plot_axis_marks(const mfx_plot *p, const double *x, int n, const char *color,
                         const char *mark) {
  for (int i = 0; i < n; i++) {
    fprintf(p->out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"%s\" "
                    "text-anchor=\"middle\">", mfx_plot_x(p, x[i]), plot_frame_bottom() - 3,
            color);
    plot_escaped(p->out, mark);
    fputs("</text>\n", p->out);
  }
}

void mfx_plot_legend(const mfx_plot *p, int row, const char *color, const char *text,
                     const char *note) {
  double y = MFX_PLOT_TOP + 10 + 40.0 * row, x = plot_frame_right(p) + 20;
  fprintf(p->out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>", x,
          y - 10, color);
  fprintf(p->out, "<text x=\"%.1f\" y=\"%.1f\">", x + 18, y);
  plot_escaped(p->out, text);
  fputs("</text>", p->out);
  if (note != NULL) {
    fprintf(p->out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", x + 18, y + 15);
    plot_escaped(p->out, note);
    fputs("</text>", p->out);
  }
  fputs("\n", p->out);
}

mfx_status mfx_plot_end(mfx_plot *p) {
  fputs("</svg>\n", p->out);
  if (fflush(p->out) != 0 || ferror(p->out))
    return mfx_fail(MFX_ERR_IO, "plot: cannot write the SVG");
  return MFX_OK;
}

/*
 * svg.h — the pieces of SVG drawing the CLI's charts share (`plexus plot`,
 * `plexus bench --svg`): nicely rounded axes, value-to-pixel mapping and
 * XML text escaping. Text is written with stdio; no library.
 */
#ifndef PLEXUS_CLI_SVG_H
#define PLEXUS_CLI_SVG_H

#include <stdio.h>

typedef struct svg_axis {
    double lo, hi, step; /* rounded to ticks */
    int decimals;        /* for tick labels */
} svg_axis;

/* Bounds and a tick step of 1, 2 or 5 times a power of ten, about `target`
 * ticks; integer steps only when `integers`. Non-finite bounds give [0, 1]. */
void svg_axis_fit(svg_axis *a, double lo, double hi, int target, int integers);

/* The pixel of value v on axis a drawn from pixel `from` (a->lo) to `to`. */
double svg_map(const svg_axis *a, double v, double from, double to);

/* Writes text with &, <, >, " escaped and control bytes replaced. */
void svg_escape(FILE *out, const char *text);

#endif

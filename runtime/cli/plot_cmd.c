/*
 * plot_cmd.c — `plexus plot METRICS.jsonl [--out FILE.svg] [--json]`: draws
 * the JSON lines `plexus train --metrics` writes as a standalone SVG (text
 * written here, no library): the loss per step (thin) and per epoch (with
 * the validation loss) on the top panel, training and validation accuracy
 * per epoch on the bottom one, each with axes, ticks, labels and a legend.
 *
 * Accepted lines (blank lines are skipped; anything else is an error that
 * names FILE:LINE):
 *   {"type": "step", "epoch": E, "step": S, "global_step": G, "loss": L|null, "lr": R}
 *   {"type": "epoch", "epoch": E, "loss": L|null, "accuracy": A|null,
 *    "val_loss": V|null, "val_accuracy": W|null, "seconds": T}
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "svg.h"

const char cli_plot_usage[] = "plot METRICS.jsonl [--out FILE.svg] [--json]";

typedef struct step_point {
    double x, loss;
} step_point;

typedef struct epoch_point {
    double epoch, loss, accuracy, val_loss, val_accuracy;
    double end_step; /* global step at the epoch's end, NaN if no step line came before */
} epoch_point;

typedef struct metrics {
    step_point *steps;
    int64_t n_steps, cap_steps;
    epoch_point *epochs;
    int64_t n_epochs, cap_epochs;
} metrics;

static void metrics_free(metrics *m)
{
    free(m->steps);
    free(m->epochs);
    memset(m, 0, sizeof *m);
}

static int grow(void **items, int64_t *cap, int64_t n, size_t size)
{
    if (n < *cap)
        return 0;
    int64_t next = *cap ? *cap * 2 : 256;
    void *p = realloc(*items, size * (size_t)next);
    if (p == NULL)
        return -1;
    *items = p;
    *cap = next;
    return 0;
}

/* A required (or, with optional, possibly absent) number; null reads as NaN
 * where nullable. Returns 0, or -1 after printing the error. */
static int get_number(const char *file, long line, const cJSON *obj, const char *key, int nullable, int optional,
                      double *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (item == NULL && optional) {
        *out = NAN;
        return 0;
    }
    if (cJSON_IsNumber(item) && isfinite(item->valuedouble)) {
        *out = item->valuedouble;
        return 0;
    }
    if (cJSON_IsNull(item) && nullable) {
        *out = NAN;
        return 0;
    }
    fprintf(stderr, "plexus plot: %s:%ld: \"%s\" %s; expected a number%s\n", file, line, key,
            item == NULL ? "is missing" : "is not a number", nullable ? " or null" : "");
    return -1;
}

static int read_metrics(const char *path, metrics *m)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "plexus plot: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    char *text = NULL;
    size_t cap = 0;
    ssize_t len;
    long line = 0;
    int rc = 0;
    double last_step = NAN;
    /* Both arrays exist even when empty, so &m->epochs[0].x is valid. */
    if (grow((void **)&m->steps, &m->cap_steps, 0, sizeof *m->steps) ||
        grow((void **)&m->epochs, &m->cap_epochs, 0, sizeof *m->epochs)) {
        fclose(f);
        fprintf(stderr, "plexus plot: out of memory\n");
        return -1;
    }
    while (rc == 0 && (len = getline(&text, &cap, f)) >= 0) {
        line++;
        size_t k = 0;
        while (k < (size_t)len && (text[k] == ' ' || text[k] == '\t' || text[k] == '\r' || text[k] == '\n'))
            k++;
        if (k == (size_t)len)
            continue;
        if (strlen(text) != (size_t)len) {
            fprintf(stderr, "plexus plot: %s:%ld: contains a NUL byte\n", path, line);
            rc = -1;
            break;
        }
        const char *end = NULL;
        cJSON *obj = cJSON_ParseWithOpts(text, &end, 0);
        if (obj != NULL && end != NULL)
            while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
                end++;
        if (obj == NULL || !cJSON_IsObject(obj) || (end != NULL && *end != '\0')) {
            fprintf(stderr, "plexus plot: %s:%ld: %s\n", path, line,
                    obj == NULL            ? "not valid JSON"
                    : !cJSON_IsObject(obj) ? "not a JSON object"
                                           : "text after the JSON object");
            cJSON_Delete(obj);
            rc = -1;
            break;
        }
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
        if (!cJSON_IsString(type) ||
            (strcmp(type->valuestring, "step") != 0 && strcmp(type->valuestring, "epoch") != 0)) {
            fprintf(stderr, "plexus plot: %s:%ld: \"type\" must be \"step\" or \"epoch\"%s%s%s\n", path, line,
                    cJSON_IsString(type) ? ", got \"" : "", cJSON_IsString(type) ? type->valuestring : "",
                    cJSON_IsString(type) ? "\"" : "");
            cJSON_Delete(obj);
            rc = -1;
            break;
        }
        if (strcmp(type->valuestring, "step") == 0) {
            double epoch, step, global_step, loss, lr;
            if (get_number(path, line, obj, "epoch", 0, 0, &epoch) ||
                get_number(path, line, obj, "step", 0, 0, &step) ||
                get_number(path, line, obj, "global_step", 0, 0, &global_step) ||
                get_number(path, line, obj, "loss", 1, 0, &loss) || get_number(path, line, obj, "lr", 1, 1, &lr))
                rc = -1;
            else if (grow((void **)&m->steps, &m->cap_steps, m->n_steps, sizeof *m->steps)) {
                fprintf(stderr, "plexus plot: out of memory\n");
                rc = -1;
            } else {
                m->steps[m->n_steps++] = (step_point){.x = global_step, .loss = loss};
                last_step = global_step;
            }
        } else {
            epoch_point e;
            double seconds;
            if (get_number(path, line, obj, "epoch", 0, 0, &e.epoch) ||
                get_number(path, line, obj, "loss", 1, 0, &e.loss) ||
                get_number(path, line, obj, "accuracy", 1, 0, &e.accuracy) ||
                get_number(path, line, obj, "val_loss", 1, 1, &e.val_loss) ||
                get_number(path, line, obj, "val_accuracy", 1, 1, &e.val_accuracy) ||
                get_number(path, line, obj, "seconds", 1, 1, &seconds))
                rc = -1;
            else if (grow((void **)&m->epochs, &m->cap_epochs, m->n_epochs, sizeof *m->epochs)) {
                fprintf(stderr, "plexus plot: out of memory\n");
                rc = -1;
            } else {
                e.end_step = last_step;
                m->epochs[m->n_epochs++] = e;
            }
        }
        cJSON_Delete(obj);
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "plexus plot: %s: read error: %s\n", path, strerror(errno));
        rc = -1;
    }
    free(text);
    fclose(f);
    if (rc == 0 && m->n_steps == 0 && m->n_epochs == 0) {
        fprintf(stderr, "plexus plot: %s: no step or epoch lines\n", path);
        rc = -1;
    }
    return rc;
}

/* ---- drawing -------------------------------------------------------------- */

enum { SVG_W = 900, SVG_H = 660, PLOT_L = 80, PLOT_R = 700, LEGEND_X = 720 };

typedef struct panel {
    double top, bottom; /* pixel rows of the plot area */
    svg_axis x, y;
} panel;

static void draw_axes(FILE *out, const panel *p, const char *title, const char *xlabel, const char *ylabel)
{
    fprintf(out, "<rect x=\"%d\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"#fff\" stroke=\"#444\"/>\n", PLOT_L,
            p->top, PLOT_R - PLOT_L, p->bottom - p->top);
    fprintf(out, "<text x=\"%d\" y=\"%.1f\" font-size=\"15\" font-weight=\"bold\">%s</text>\n", PLOT_L, p->top - 10,
            title);
    for (int k = 0;; k++) {
        double v = p->y.lo + k * p->y.step;
        if (v > p->y.hi + p->y.step * 1e-6)
            break;
        double py = svg_map(&p->y, v, p->bottom, p->top);
        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", PLOT_L, py, PLOT_R,
                py);
        fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#444\"/>\n", PLOT_L - 5, py, PLOT_L,
                py);
        fprintf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n", PLOT_L - 8, py + 4, p->y.decimals,
                v);
    }
    for (int k = 0;; k++) {
        double v = p->x.lo + k * p->x.step;
        if (v > p->x.hi + p->x.step * 1e-6)
            break;
        double px = svg_map(&p->x, v, PLOT_L, PLOT_R);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", px, p->top, px,
                p->bottom);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", px, p->bottom, px,
                p->bottom + 5);
        fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.*f</text>\n", px, p->bottom + 19,
                p->x.decimals, v);
    }
    fprintf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", (PLOT_L + PLOT_R) / 2, p->bottom + 38,
            xlabel);
    double cy = (p->top + p->bottom) / 2;
    fprintf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 %d %.1f)\">%s</text>\n", 22,
            cy, 22, cy, ylabel);
}

/* A polyline through the finite points; NaNs break it. */
static void draw_series(FILE *out, const panel *p, const double *xs, const double *ys, int64_t n, size_t stride,
                        const char *color, double width, const char *dash, int markers)
{
    fprintf(out, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\"%s%s%s stroke-linejoin=\"round\" d=\"", color,
            width, dash ? " stroke-dasharray=\"" : "", dash ? dash : "", dash ? "\"" : "");
    int pen_down = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = *(const double *)((const char *)xs + (size_t)i * stride);
        double y = *(const double *)((const char *)ys + (size_t)i * stride);
        if (!isfinite(x) || !isfinite(y)) {
            pen_down = 0;
            continue;
        }
        fprintf(out, "%c%.1f %.1f ", pen_down ? 'L' : 'M', svg_map(&p->x, x, PLOT_L, PLOT_R),
                svg_map(&p->y, y, p->bottom, p->top));
        pen_down = 1;
    }
    fprintf(out, "\"/>\n");
    if (!markers)
        return;
    for (int64_t i = 0; i < n; i++) {
        double x = *(const double *)((const char *)xs + (size_t)i * stride);
        double y = *(const double *)((const char *)ys + (size_t)i * stride);
        if (isfinite(x) && isfinite(y))
            fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                    svg_map(&p->x, x, PLOT_L, PLOT_R), svg_map(&p->y, y, p->bottom, p->top), color);
    }
}

static void legend_entry(FILE *out, double top, int row, const char *color, double width, const char *dash,
                         const char *label)
{
    double y = top + 14 + row * 20;
    fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%.1f\"%s%s%s/>\n",
            LEGEND_X, y, LEGEND_X + 28, y, color, width, dash ? " stroke-dasharray=\"" : "", dash ? dash : "",
            dash ? "\"" : "");
    fprintf(out, "<text x=\"%d\" y=\"%.1f\">%s</text>\n", LEGEND_X + 36, y + 4, label);
}

static void range_of(const double *vals, int64_t n, size_t stride, double *lo, double *hi)
{
    for (int64_t i = 0; i < n; i++) {
        double v = *(const double *)((const char *)vals + (size_t)i * stride);
        if (!isfinite(v))
            continue;
        *lo = isfinite(*lo) && *lo < v ? *lo : v;
        *hi = isfinite(*hi) && *hi > v ? *hi : v;
    }
}

static int any_finite(const double *vals, int64_t n, size_t stride)
{
    double lo = NAN, hi = NAN;
    range_of(vals, n, stride, &lo, &hi);
    return isfinite(lo);
}

/* Long runs: average consecutive steps into at most `max` points so the SVG
 * stays small. */
static int64_t thin_steps(step_point *s, int64_t n, int64_t max)
{
    if (n <= max)
        return n;
    int64_t per = (n + max - 1) / max, out = 0;
    for (int64_t start = 0; start < n; start += per) {
        double sx = 0, sy = 0;
        int64_t k = 0;
        for (int64_t i = start; i < n && i < start + per; i++)
            if (isfinite(s[i].loss)) {
                sx += s[i].x;
                sy += s[i].loss;
                k++;
            }
        s[out++] = k ? (step_point){sx / (double)k, sy / (double)k} : (step_point){s[start].x, NAN};
    }
    return out;
}

static int write_svg(const char *path, const char *source, metrics *m)
{
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        fprintf(stderr, "plexus plot: %s: cannot write: %s\n", path, strerror(errno));
        return -1;
    }
    int64_t step_lines = m->n_steps;
    m->n_steps = thin_steps(m->steps, m->n_steps, 2000);
    const size_t es = sizeof(epoch_point), ss = sizeof(step_point);
    /* The loss panel is over global steps when there are step lines, else
     * over epochs; epoch means sit at the step that ended their epoch. */
    int by_step = m->n_steps > 0;
    double *epoch_x = malloc(sizeof(double) * (size_t)(m->n_epochs + 1));
    if (epoch_x == NULL) {
        fclose(out);
        fprintf(stderr, "plexus plot: out of memory\n");
        return -1;
    }
    for (int64_t i = 0; i < m->n_epochs; i++)
        epoch_x[i] = by_step ? m->epochs[i].end_step : m->epochs[i].epoch;

    panel top = {.top = 50, .bottom = 300};
    double xlo = NAN, xhi = NAN, ylo = NAN, yhi = NAN;
    if (by_step)
        range_of(&m->steps[0].x, m->n_steps, ss, &xlo, &xhi);
    range_of(epoch_x, m->n_epochs, sizeof(double), &xlo, &xhi);
    if (by_step)
        range_of(&m->steps[0].loss, m->n_steps, ss, &ylo, &yhi);
    range_of(&m->epochs[0].loss, m->n_epochs, es, &ylo, &yhi);
    range_of(&m->epochs[0].val_loss, m->n_epochs, es, &ylo, &yhi);
    if (isfinite(ylo) && ylo > 0 && ylo < 0.5 * yhi)
        ylo = 0; /* a loss axis reads best from zero */
    svg_axis_fit(&top.x, by_step ? (isfinite(xlo) && xlo > 0 ? 0 : xlo) : xlo, xhi, 8, 1);
    svg_axis_fit(&top.y, ylo, yhi, 6, 0);

    panel bottom = {.top = 390, .bottom = 600};
    xlo = xhi = ylo = yhi = NAN;
    range_of(&m->epochs[0].epoch, m->n_epochs, es, &xlo, &xhi);
    range_of(&m->epochs[0].accuracy, m->n_epochs, es, &ylo, &yhi);
    range_of(&m->epochs[0].val_accuracy, m->n_epochs, es, &ylo, &yhi);
    if (isfinite(xlo) && xlo == xhi) {
        xlo -= 1;
        xhi += 1;
    }
    svg_axis_fit(&bottom.x, isfinite(xlo) ? (xlo > 1 ? xlo - 1 : 0) : 0, isfinite(xhi) ? xhi : 1, 8, 1);
    if (isfinite(ylo) && ylo >= 0 && yhi <= 1) {
        svg_axis_fit(&bottom.y, ylo, yhi, 5, 0);
        bottom.y.lo = bottom.y.lo < 0 ? 0 : bottom.y.lo;
        bottom.y.hi = bottom.y.hi > 1 ? 1 : bottom.y.hi;
    } else
        svg_axis_fit(&bottom.y, ylo, yhi, 5, 0);

    fprintf(out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n",
            SVG_W, SVG_H, SVG_W, SVG_H);
    fprintf(out, "<title>");
    svg_escape(out, source);
    fprintf(out, "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fafafa\"/>\n");
    fprintf(out, "<text x=\"%d\" y=\"24\" font-size=\"13\" fill=\"#555\">", PLOT_L);
    svg_escape(out, source);
    fprintf(out, ": %lld step%s, %lld epoch%s</text>\n", (long long)step_lines, step_lines == 1 ? "" : "s",
            (long long)m->n_epochs, m->n_epochs == 1 ? "" : "s");

    static const char *const train_color = "#1f5fbf", *const step_color = "#8fb3e8", *const val_color = "#e0701a";
    draw_axes(out, &top, "Loss", by_step ? "step" : "epoch", "loss");
    int row = 0;
    if (by_step) {
        draw_series(out, &top, &m->steps[0].x, &m->steps[0].loss, m->n_steps, ss, step_color, 0.8, NULL, 0);
        legend_entry(out, top.top, row++, step_color, 0.8, NULL, "loss per step");
    }
    if (m->n_epochs > 0) {
        /* epoch_x is a plain array: pair it with each epoch's loss. */
        double *ys = malloc(sizeof(double) * (size_t)m->n_epochs);
        double *vs = malloc(sizeof(double) * (size_t)m->n_epochs);
        if (ys != NULL && vs != NULL) {
            for (int64_t i = 0; i < m->n_epochs; i++) {
                ys[i] = m->epochs[i].loss;
                vs[i] = m->epochs[i].val_loss;
            }
            draw_series(out, &top, epoch_x, ys, m->n_epochs, sizeof(double), train_color, 2.0, NULL, 1);
            legend_entry(out, top.top, row++, train_color, 2.0, NULL, "loss per epoch");
            if (any_finite(vs, m->n_epochs, sizeof(double))) {
                draw_series(out, &top, epoch_x, vs, m->n_epochs, sizeof(double), val_color, 2.0, "6 4", 1);
                legend_entry(out, top.top, row++, val_color, 2.0, "6 4", "validation loss");
            }
        }
        free(ys);
        free(vs);
    }

    draw_axes(out, &bottom, "Accuracy", "epoch", "accuracy");
    row = 0;
    if (any_finite(&m->epochs[0].accuracy, m->n_epochs, es)) {
        draw_series(out, &bottom, &m->epochs[0].epoch, &m->epochs[0].accuracy, m->n_epochs, es, train_color, 2.0, NULL,
                    1);
        legend_entry(out, bottom.top, row++, train_color, 2.0, NULL, "training accuracy");
    }
    if (any_finite(&m->epochs[0].val_accuracy, m->n_epochs, es)) {
        draw_series(out, &bottom, &m->epochs[0].epoch, &m->epochs[0].val_accuracy, m->n_epochs, es, val_color, 2.0,
                    "6 4", 1);
        legend_entry(out, bottom.top, row++, val_color, 2.0, "6 4", "validation accuracy");
    }
    if (row == 0)
        fprintf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#888\">no epoch has ended yet</text>\n",
                (PLOT_L + PLOT_R) / 2, (bottom.top + bottom.bottom) / 2);
    fprintf(out, "</svg>\n");
    free(epoch_x);
    int bad = ferror(out);
    if (fclose(out) != 0 || bad) {
        fprintf(stderr, "plexus plot: %s: write error\n", path);
        return -1;
    }
    return 0;
}

int cmd_plot(int argc, char **argv)
{
    const char *C = "plot";
    const char *path = NULL, *out_path = NULL;
    int json = 0, options_done = 0;
    for (int i = 0; i < argc; i++) {
        int r;
        if (options_done || argv[i][0] != '-' || argv[i][1] == '\0') {
            if (path != NULL) {
                fprintf(stderr, "plexus plot: one metrics file expected, got '%s' too\n", argv[i]);
                fprintf(stderr, "usage: plexus %s\n", cli_plot_usage);
                return CLI_USAGE;
            }
            path = argv[i];
        } else if (strcmp(argv[i], "--") == 0) {
            options_done = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if ((r = cli_option(C, argc, argv, &i, "--out", &out_path)) != 0) {
            if (r < 0 || out_path[0] == '\0') {
                if (r > 0)
                    fprintf(stderr, "plexus plot: --out needs a non-empty value\n");
                fprintf(stderr, "usage: plexus %s\n", cli_plot_usage);
                return CLI_USAGE;
            }
        } else {
            fprintf(stderr, "plexus plot: unknown option '%s'\nusage: plexus %s\n", argv[i], cli_plot_usage);
            return CLI_USAGE;
        }
    }
    if (path == NULL) {
        fprintf(stderr, "plexus plot: no metrics file given\nusage: plexus %s\n", cli_plot_usage);
        return CLI_USAGE;
    }
    /* Default: METRICS.jsonl -> METRICS.svg (the extension replaced). */
    char *default_out = NULL;
    if (out_path == NULL) {
        size_t n = strlen(path);
        const char *slash = strrchr(path, '/');
        const char *dot = strrchr(path, '.');
        if (dot != NULL && (slash == NULL || dot > slash + 1) &&
            (strcmp(dot, ".jsonl") == 0 || strcmp(dot, ".json") == 0 || strcmp(dot, ".ndjson") == 0))
            n = (size_t)(dot - path);
        default_out = malloc(n + 5);
        if (default_out == NULL)
            return CLI_ERROR;
        memcpy(default_out, path, n);
        memcpy(default_out + n, ".svg", 5);
        out_path = default_out;
    }
    metrics m = {0};
    int rc = CLI_OK;
    if (read_metrics(path, &m) || write_svg(out_path, path, &m))
        rc = CLI_ERROR;
    if (rc == CLI_OK) {
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "svg", out_path);
            cJSON_AddNumberToObject(o, "steps", (double)m.n_steps);
            cJSON_AddNumberToObject(o, "epochs", (double)m.n_epochs);
            char *text = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
            if (text != NULL)
                puts(text);
            free(text);
        } else
            printf("wrote %s\n", out_path);
    }
    metrics_free(&m);
    free(default_out);
    return rc;
}

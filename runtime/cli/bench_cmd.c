/*
 * bench_cmd.c — `plexus bench`: how fast each backend runs ops and whole
 * training steps, how far its results are from the reference's, and what
 * the router picks.
 *
 *   plexus bench --ops [--op NAME[,NAME...]] [--quick] [--list] [--backends A,B] [--json] [--svg FILE]
 *   plexus bench --model MODEL.json [--steps N] [--warmup N] [--data DIR] [--limit-train N]
 *                [--inference-batch N] [--inference-runs N] [--backends A,B] [--json] [--svg FILE]
 *
 * Configurations. Each is a context of its own, opened with a backend
 * ranking (plx_context_options.backends), named after the backend it
 * measures:
 *   --ops    "X": the context has backend X alone, so X itself is timed; an
 *            op X declines shows as "—" (the reason is in --json).
 *   --model  "X,cpu_blas": X runs every node it takes, the reference
 *            cpu_blas the rest; "cpu_blas" alone for the reference.
 *   both     "auto": no ranking, the router's cost-based choice (the
 *            backend it picked is shown).
 * --backends A,B limits the backends measured to those named (each must be
 * loaded; "auto" may be named too and is always measured). PLEXUS_BACKENDS
 * does not apply: the configurations above are the point of the command.
 * For --ops the reference cpu_blas always runs (its results are what the
 * others are checked against, its time what they are compared with), even
 * when --backends leaves it out of the table.
 *
 * --ops runs a fixed suite (matmul sizes, convolutions from common CNNs and
 * their backward ops, pooling, norms, elementwise, softmax) on random
 * inputs that are the same for every configuration; each case is run once
 * (the result is compared with cpu_blas's: max |y - y_ref| / max |y_ref|
 * over every output), then timed for about 0.25 s (--quick: a six-case
 * suite and 0.02 s) and the median run reported, as GFLOP/s for matmul
 * and convolutions and GB/s (each input and output byte counted once) for
 * the rest. --op keeps the cases whose name contains one of the NAMEs or
 * whose op is named ("matmul", "pool", "core.softmax"); --list prints the
 * suite.
 *
 * --model runs plx_model_bench (abi/plexus.h) in each configuration on a
 * freshly loaded model: warm-up and timed training steps on the model's own
 * data, then inference batches; time per step, examples/s, inference time
 * and images/s, and each op's share of the step.
 *
 * Output: a Markdown table on stdout (progress on stderr); --json prints one
 * JSON object as the last line instead: for --model its keys are the
 * configurations ("cpu_blas", "onednn", ..., "auto"), each holding at least
 * ms_per_step and examples_per_second (or "error"). --svg FILE also draws
 * the comparison as a bar chart, written atomically.
 *
 * Exit status: 0; 1 when a benchmark fails (the message names the
 * configuration); 2 for bad arguments (unknown option, missing or bad
 * value, unknown backend, an --svg path that cannot be written).
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "svg.h"

const char cli_bench_usage[] =
    "bench --ops [--op NAME[,NAME...]] [--quick] [--list] [--dtype f32|bf16] [--backends A,B] [--json]\n"
    "        [--svg FILE]\n"
    "  plexus bench --model MODEL.json [--steps N] [--warmup N] [--data DIR] [--limit-train N]\n"
    "        [--inference-batch N] [--inference-runs N] [--backends A,B] [--json] [--svg FILE]\n"
    "  plexus bench --calibrate [--ops [--op NAME,...] [--quick] | --model MODEL.json [...]]";

#define C_BENCH "bench"
#define REFERENCE "cpu_blas"
#define MAX_BACKENDS 16
#define MAX_CONFIGS (MAX_BACKENDS + 2)
#define MAX_OP_ROWS 256

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage_error(void)
{
    fprintf(stderr, "usage: plexus %s\n", cli_bench_usage);
    return CLI_USAGE;
}

static int bad_argument(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_argument(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("plexus bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return usage_error();
}

static const char *fmt_ms(char *buf, size_t cap, double ms)
{
    if (!isfinite(ms))
        snprintf(buf, cap, "—");
    else if (ms >= 100)
        snprintf(buf, cap, "%.1f", ms);
    else if (ms >= 10)
        snprintf(buf, cap, "%.2f", ms);
    else if (ms >= 1)
        snprintf(buf, cap, "%.3f", ms);
    else
        snprintf(buf, cap, "%.4f", ms);
    return buf;
}

/* Thousands separated: "12,345". */
static const char *fmt_count(char *buf, size_t cap, double v)
{
    if (!isfinite(v)) {
        snprintf(buf, cap, "—");
        return buf;
    }
    if (v < 100) {
        snprintf(buf, cap, "%.1f", v);
        return buf;
    }
    char digits[64];
    snprintf(digits, sizeof digits, "%.0f", v);
    size_t n = strlen(digits), used = 0;
    for (size_t i = 0; i < n && used + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[used++] = ',';
        buf[used++] = digits[i];
    }
    buf[used] = '\0';
    return buf;
}

/* ---- configurations ------------------------------------------------------------ */

typedef struct bench_config {
    char name[64];     /* a backend's name, or "auto" */
    char ranking[160]; /* plx_context_options.backends; "" for none */
    int shown;         /* in the output (0: the --ops reference the user left out) */
} bench_config;

typedef struct bench_setup {
    char loaded[MAX_BACKENDS][64]; /* every loaded backend, load order */
    int n_loaded;
    bench_config configs[MAX_CONFIGS];
    int n_configs;
    int32_t threads;
} bench_setup;

static plx_context *open_ranked(const char *ranking)
{
    plx_context *ctx = NULL;
    return cli_open_context(C_BENCH, ranking, 0, &ctx) == 0 ? ctx : NULL;
}

static int is_loaded(const bench_setup *s, const char *name)
{
    for (int i = 0; i < s->n_loaded; i++)
        if (strcmp(s->loaded[i], name) == 0)
            return 1;
    return 0;
}

static void add_config(bench_setup *s, const char *name, const char *ranking, int shown)
{
    for (int i = 0; i < s->n_configs; i++)
        if (strcmp(s->configs[i].name, name) == 0) {
            s->configs[i].shown |= shown;
            return;
        }
    if (s->n_configs == MAX_CONFIGS)
        return;
    bench_config *c = &s->configs[s->n_configs++];
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->ranking, sizeof c->ranking, "%s", ranking);
    c->shown = shown;
}

/* The ranking that measures backend `name`. */
static void ranking_for(const bench_setup *s, const char *name, int ops, char *buf, size_t cap)
{
    if (strcmp(name, "auto") == 0)
        snprintf(buf, cap, "%s", "");
    else if (ops || strcmp(name, REFERENCE) == 0 || !is_loaded(s, REFERENCE))
        snprintf(buf, cap, "%s", name);
    else
        snprintf(buf, cap, "%s,%s", name, REFERENCE);
}

/* Finds the loaded backends and turns --backends (NULL: all) into the
 * configurations. Returns CLI_OK, CLI_USAGE (unknown name, printed) or
 * CLI_ERROR. */
static int setup_configs(bench_setup *s, const char *backends, int ops)
{
    memset(s, 0, sizeof *s);
    plx_context *ctx = open_ranked(NULL);
    if (ctx == NULL)
        return CLI_ERROR;
    s->threads = plx_context_num_threads(ctx);
    for (size_t b = 0; b < plx_backend_count(ctx) && s->n_loaded < MAX_BACKENDS; b++) {
        plx_backend_info bi = {.struct_size = sizeof bi};
        if (plx_backend_get(ctx, b, &bi) == PLX_OK && bi.name != NULL)
            snprintf(s->loaded[s->n_loaded++], sizeof s->loaded[0], "%s", bi.name);
    }
    plx_context_close(ctx);
    char loaded_list[MAX_BACKENDS * 66] = "";
    for (int i = 0; i < s->n_loaded; i++) {
        size_t used = strlen(loaded_list);
        snprintf(loaded_list + used, sizeof loaded_list - used, "%s%s", i ? ", " : "", s->loaded[i]);
    }
    if (s->n_loaded == 0) {
        fprintf(stderr, "plexus bench: no backend is loaded (see plexus plugins)\n");
        return CLI_ERROR;
    }
    if (ops && !is_loaded(s, REFERENCE)) {
        fprintf(stderr, "plexus bench: the reference backend %s is not loaded (loaded: %s)\n", REFERENCE, loaded_list);
        return CLI_ERROR;
    }
    char ranking[160];
    /* The reference first: its results (--ops) and times are the baseline. */
    if (ops) {
        ranking_for(s, REFERENCE, ops, ranking, sizeof ranking);
        add_config(s, REFERENCE, ranking, 0);
    }
    if (backends == NULL) {
        if (is_loaded(s, REFERENCE)) {
            ranking_for(s, REFERENCE, ops, ranking, sizeof ranking);
            add_config(s, REFERENCE, ranking, 1);
        }
        for (int i = 0; i < s->n_loaded; i++) {
            ranking_for(s, s->loaded[i], ops, ranking, sizeof ranking);
            add_config(s, s->loaded[i], ranking, 1);
        }
    } else {
        const char *p = backends;
        if (*p == '\0')
            return bad_argument("--backends needs a comma-separated list of backend names (loaded: %s)", loaded_list);
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char name[64];
            if (len == 0 || len >= sizeof name)
                return bad_argument("--backends '%s': empty or over-long name (loaded: %s)", backends, loaded_list);
            memcpy(name, p, len);
            name[len] = '\0';
            if (strcmp(name, "auto") != 0 && !is_loaded(s, name))
                return bad_argument("--backends: no loaded backend is named '%s' (loaded: %s; or auto)", name,
                                    loaded_list);
            if (strcmp(name, "auto") != 0) {
                ranking_for(s, name, ops, ranking, sizeof ranking);
                add_config(s, name, ranking, 1);
            }
            p += len;
            if (*p == ',') {
                p++;
                if (*p == '\0')
                    return bad_argument("--backends '%s' ends with a comma", backends);
            }
        }
    }
    add_config(s, "auto", "", 1);
    return CLI_OK;
}

/* ---- charts ---------------------------------------------------------------------- */

/* A horizontal grouped bar chart: groups down the page, one bar per series. */
typedef struct bar_chart {
    const char *title;
    const char *xlabel;
    int n_groups, n_series;
    const char *const *groups;
    const char *const *series;
    const double *values;     /* [group * n_series + series]; NaN: no bar (labelled "—") */
    const char *const *notes; /* per value, printed after the bar, or NULL */
} bar_chart;

enum { BAR_H = 12, GROUP_GAP = 10, BAR_W = 500 };

/* Horizontal layout: group labels right-aligned at label_x, bars from
 * bar_l to bar_r, room for value labels after them. */
typedef struct chart_layout {
    double label_x, bar_l, bar_r;
    int width;
} chart_layout;

static const char *const palette[] = {"#1f5fbf", "#e0701a", "#2a9d4a", "#b8336a", "#6a4fb3", "#8c6d1f", "#2aa3b8"};

/* Draws c with its top at y; returns the y below it. */
static double draw_bar_chart(FILE *out, const bar_chart *c, const chart_layout *l, double y)
{
    const double bar_l = l->bar_l, bar_r = l->bar_r;
    double hi = 0;
    for (int i = 0; i < c->n_groups * c->n_series; i++)
        if (isfinite(c->values[i]) && c->values[i] > hi)
            hi = c->values[i];
    svg_axis ax;
    svg_axis_fit(&ax, 0, hi > 0 ? hi : 1, 6, 0);
    ax.lo = 0;
    fprintf(out, "<text x=\"%d\" y=\"%.1f\" font-size=\"15\" font-weight=\"bold\">", 20, y + 16);
    svg_escape(out, c->title);
    fprintf(out, "</text>\n");
    /* Legend. */
    double lx = bar_l;
    for (int s = 0; s < c->n_series; s++) {
        const char *color = palette[s % (int)(sizeof palette / sizeof palette[0])];
        fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", lx, y + 26, color);
        fprintf(out, "<text x=\"%.1f\" y=\"%.1f\">", lx + 16, y + 36);
        svg_escape(out, c->series[s]);
        fprintf(out, "</text>\n");
        lx += 30 + 7.5 * (double)strlen(c->series[s]);
    }
    double top = y + 48;
    double group_h = c->n_series * (BAR_H + 2) + GROUP_GAP;
    double bottom = top + c->n_groups * group_h;
    /* Grid and ticks. */
    for (int k = 0;; k++) {
        double v = ax.lo + k * ax.step;
        if (v > ax.hi + ax.step * 1e-6)
            break;
        double px = svg_map(&ax, v, bar_l, bar_r);
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", px, top, px,
                bottom);
        fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.*f</text>\n", px, bottom + 16, ax.decimals,
                v);
    }
    fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\"/>\n", bar_l, top, bar_l,
            bottom);
    fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", (bar_l + bar_r) / 2, bottom + 34);
    svg_escape(out, c->xlabel);
    fprintf(out, "</text>\n");
    for (int g = 0; g < c->n_groups; g++) {
        double gy = top + g * group_h + GROUP_GAP / 2.0;
        fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", l->label_x,
                gy + c->n_series * (BAR_H + 2) / 2.0 + 4);
        svg_escape(out, c->groups[g]);
        fprintf(out, "</text>\n");
        for (int s = 0; s < c->n_series; s++) {
            double v = c->values[g * c->n_series + s];
            double by = gy + s * (BAR_H + 2);
            const char *color = palette[s % (int)(sizeof palette / sizeof palette[0])];
            double w = isfinite(v) && v > 0 ? svg_map(&ax, v, bar_l, bar_r) - bar_l : 0;
            if (w > 0)
                fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>", bar_l, by,
                        w, BAR_H, color);
            else
                fprintf(out, "<g><title>");
            svg_escape(out, c->series[s]);
            fprintf(out, "</title>%s\n", w > 0 ? "</rect>" : "</g>");
            fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#333\">", bar_l + w + 4, by + BAR_H - 2);
            if (isfinite(v) && v >= 1000)
                fprintf(out, "%.0f", v);
            else if (isfinite(v))
                fprintf(out, "%.3g", v);
            else
                fprintf(out, "—");
            if (c->notes != NULL && c->notes[g * c->n_series + s] != NULL) {
                fprintf(out, " ");
                svg_escape(out, c->notes[g * c->n_series + s]);
            }
            fprintf(out, "</text>\n");
        }
    }
    return bottom + 50;
}

/* Writes the charts as one SVG to path, atomically. */
static int write_charts(const char *path, const char *title, const bar_chart *charts, int n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    if (out == NULL) {
        fprintf(stderr, "plexus bench: out of memory\n");
        return -1;
    }
    double height = 60;
    size_t longest = 10;
    for (int i = 0; i < n; i++) {
        height += 48 + charts[i].n_groups * (charts[i].n_series * (BAR_H + 2) + GROUP_GAP) + 50;
        for (int g = 0; g < charts[i].n_groups; g++)
            longest = strlen(charts[i].groups[g]) > longest ? strlen(charts[i].groups[g]) : longest;
    }
    /* About 7 pixels a character at font-size 12. */
    chart_layout layout;
    layout.label_x = 20 + 7.0 * (double)longest;
    layout.bar_l = layout.label_x + 10;
    layout.bar_r = layout.bar_l + BAR_W;
    layout.width = (int)layout.bar_r + 140;
    fprintf(out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%.0f\" viewBox=\"0 0 %d %.0f\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n",
            layout.width, height, layout.width, height);
    fprintf(out, "<title>");
    svg_escape(out, title);
    fprintf(out, "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fafafa\"/>\n");
    fprintf(out, "<text x=\"20\" y=\"24\" font-size=\"13\" fill=\"#555\">");
    svg_escape(out, title);
    fprintf(out, "</text>\n");
    double y = 40;
    for (int i = 0; i < n; i++)
        y = draw_bar_chart(out, &charts[i], &layout, y);
    fprintf(out, "</svg>\n");
    int bad = ferror(out);
    fclose(out);
    int rc = bad ? -1 : cli_write_file_atomic(C_BENCH, path, buf, len);
    if (bad)
        fprintf(stderr, "plexus bench: out of memory\n");
    free(buf);
    return rc;
}

/* The directory of path must exist and be writable, and path must not be a
 * directory: checked before any benchmark runs. */
static int check_writable(const char *flag, const char *path)
{
    if (path[0] == '\0')
        return bad_argument("%s needs a non-empty value", flag);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return bad_argument("%s %s: is a directory", flag, path);
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if (access(dir, W_OK | X_OK) != 0)
        return bad_argument("%s %s: cannot write in %s: %s", flag, path, dir, strerror(errno));
    return CLI_OK;
}

/* ---- the op suite ------------------------------------------------------------------ */

typedef struct op_input {
    int32_t ndim;
    int64_t dims[4];
    float lo, hi; /* uniform random values */
} op_input;

typedef union op_attrs {
    plx_matmul_attrs matmul;
    plx_conv2d_attrs conv;
    plx_conv2d_backward_attrs conv_backward;
    plx_pool2d_attrs pool;
    plx_batch_norm_attrs batch_norm;
    plx_layer_norm_attrs layer_norm;
    plx_softmax_attrs softmax;
} op_attrs;

typedef struct op_case {
    char name[96];
    const char *op;
    int quick; /* in the --quick suite */
    int32_t n_in, n_out;
    op_input in[5];
    op_attrs attrs;
    int has_attrs;
    double flops; /* > 0: rated in GFLOP/s, else in GB/s */
} op_case;

typedef struct op_suite {
    op_case cases[48];
    int n;
} op_suite;

static op_case *add_case(op_suite *s, const char *op, int quick, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static op_case *add_case(op_suite *s, const char *op, int quick, const char *fmt, ...)
{
    op_case *c = &s->cases[s->n++];
    memset(c, 0, sizeof *c);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->name, sizeof c->name, fmt, ap);
    va_end(ap);
    c->op = op;
    c->quick = quick;
    c->n_out = 1;
    return c;
}

static void set_input(op_case *c, float lo, float hi, int32_t ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    op_input *in = &c->in[c->n_in++];
    in->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3};
    memcpy(in->dims, d, sizeof d);
    in->lo = lo;
    in->hi = hi;
}

static void add_matmul(op_suite *s, int quick, int64_t m, int64_t k, int64_t n, int trans_b, const char *what)
{
    op_case *c =
        add_case(s, "core.matmul", quick, "matmul %lldx%lldx%lld%s%s%s%s", (long long)m, (long long)k, (long long)n,
                 trans_b ? " (b transposed)" : "", what ? " (" : "", what ? what : "", what ? ")" : "");
    set_input(c, -1, 1, 2, m, k, 0, 0);
    if (trans_b)
        set_input(c, -1, 1, 2, n, k, 0, 0);
    else
        set_input(c, -1, 1, 2, k, n, 0, 0);
    c->attrs.matmul = (plx_matmul_attrs)PLX_MATMUL_ATTRS_DEFAULT;
    c->attrs.matmul.trans_b = trans_b;
    c->has_attrs = 1;
    c->flops = 2.0 * (double)m * (double)k * (double)n;
}

typedef struct conv_shape {
    int64_t n, c, h, w, k, r, s;
    int32_t stride, pad, groups;
} conv_shape;

static int64_t conv_out(int64_t size, int64_t kernel, int32_t stride, int32_t pad)
{
    return (size + 2 * pad - kernel) / stride + 1;
}

static void conv_label(char *buf, size_t cap, const conv_shape *v)
{
    snprintf(buf, cap, "%lldx%lld%s%s %lld->%lld %lldx%lld N%lld", (long long)v->r, (long long)v->s,
             v->stride > 1 ? (v->stride == 2 ? "/2" : "/4") : "", v->groups > 1 ? " depthwise" : "", (long long)v->c,
             (long long)v->k, (long long)v->h, (long long)v->w, (long long)v->n);
}

/* which: 0 forward, 1 backward data, 2 backward weight. */
static void add_conv(op_suite *s, int quick, int which, conv_shape v, const char *what)
{
    static const char *const ops[] = {"core.conv2d", "core.conv2d_backward_data", "core.conv2d_backward_weight"};
    char label[96];
    conv_label(label, sizeof label, &v);
    op_case *c = add_case(s, ops[which], quick, "%s %s (%s)", ops[which] + 5, label, what);
    int64_t p = conv_out(v.h, v.r, v.stride, v.pad), q = conv_out(v.w, v.s, v.stride, v.pad);
    int64_t cg = v.c / v.groups;
    if (which == 0) {
        set_input(c, -1, 1, 4, v.n, v.c, v.h, v.w);
        set_input(c, -0.2f, 0.2f, 4, v.k, cg, v.r, v.s);
        c->attrs.conv = (plx_conv2d_attrs)PLX_CONV2D_ATTRS_DEFAULT;
        c->attrs.conv.stride[0] = c->attrs.conv.stride[1] = v.stride;
        c->attrs.conv.padding[0] = c->attrs.conv.padding[1] = v.pad;
        c->attrs.conv.groups = v.groups;
    } else {
        set_input(c, -1, 1, 4, v.n, v.k, p, q);
        if (which == 1)
            set_input(c, -0.2f, 0.2f, 4, v.k, cg, v.r, v.s);
        else
            set_input(c, -1, 1, 4, v.n, v.c, v.h, v.w);
        plx_conv2d_backward_attrs a = PLX_CONV2D_BACKWARD_ATTRS_DEFAULT;
        a.stride[0] = a.stride[1] = v.stride;
        a.padding[0] = a.padding[1] = v.pad;
        a.groups = v.groups;
        int64_t x_shape[4] = {v.n, v.c, v.h, v.w}, w_shape[4] = {v.k, cg, v.r, v.s};
        memcpy(a.out_shape, which == 1 ? x_shape : w_shape, sizeof a.out_shape);
        c->attrs.conv_backward = a;
    }
    c->has_attrs = 1;
    c->flops = 2.0 * (double)v.n * (double)v.k * (double)p * (double)q * (double)cg * (double)v.r * (double)v.s;
}

static void add_pool(op_suite *s, int quick, const char *op, int64_t n, int64_t ch, int64_t h, int64_t w,
                     int32_t kernel, int32_t stride, int32_t pad, const char *what)
{
    op_case *c = add_case(s, op, quick, "%s %dx%d%s%s N%lld C%lld %lldx%lld (%s)", op + 5, (int)kernel, (int)kernel,
                          stride != kernel ? (stride == 2 ? "/2" : "/1") : "", pad ? " pad 1" : "", (long long)n,
                          (long long)ch, (long long)h, (long long)w, what);
    int backward = strstr(op, "backward") != NULL;
    if (backward)
        set_input(c, -1, 1, 4, n, ch, conv_out(h, kernel, stride, pad), conv_out(w, kernel, stride, pad));
    set_input(c, -1, 1, 4, n, ch, h, w);
    c->attrs.pool = (plx_pool2d_attrs)PLX_POOL2D_ATTRS_DEFAULT;
    c->attrs.pool.kernel[0] = c->attrs.pool.kernel[1] = kernel;
    c->attrs.pool.stride[0] = c->attrs.pool.stride[1] = stride;
    c->attrs.pool.padding[0] = c->attrs.pool.padding[1] = pad;
    c->has_attrs = 1;
}

static void build_suite(op_suite *s)
{
    s->n = 0;
    add_matmul(s, 1, 64, 784, 256, 0, "MLP layer");
    add_matmul(s, 0, 256, 256, 256, 0, NULL);
    add_matmul(s, 0, 1024, 1024, 1024, 0, NULL);
    add_matmul(s, 0, 512, 1024, 1024, 1, "dense weight gradient shape");

    conv_shape fashion1 = {64, 1, 28, 28, 32, 5, 5, 1, 2, 1}, fashion2 = {64, 32, 14, 14, 64, 5, 5, 1, 2, 1};
    conv_shape resnet3x3 = {8, 64, 56, 56, 64, 3, 3, 1, 1, 1}, resnet1x1 = {8, 256, 56, 56, 64, 1, 1, 1, 0, 1};
    conv_shape alexnet = {8, 3, 224, 224, 64, 11, 11, 4, 2, 1}, mobilenet = {8, 128, 56, 56, 128, 3, 3, 1, 1, 128};
    add_conv(s, 1, 0, fashion1, "Fashion-MNIST CNN conv1");
    add_conv(s, 0, 0, fashion2, "Fashion-MNIST CNN conv2");
    add_conv(s, 0, 0, resnet3x3, "ResNet-50 conv2_x");
    add_conv(s, 0, 0, resnet1x1, "ResNet-50 bottleneck 1x1");
    add_conv(s, 0, 0, alexnet, "AlexNet conv1");
    add_conv(s, 0, 0, mobilenet, "MobileNet");
    add_conv(s, 0, 1, fashion2, "Fashion-MNIST CNN conv2");
    add_conv(s, 0, 2, fashion2, "Fashion-MNIST CNN conv2");

    add_pool(s, 1, "core.max_pool2d", 64, 32, 28, 28, 2, 2, 0, "Fashion-MNIST CNN");
    add_pool(s, 0, "core.max_pool2d_backward", 64, 32, 28, 28, 2, 2, 0, "Fashion-MNIST CNN");
    add_pool(s, 0, "core.max_pool2d", 8, 64, 112, 112, 3, 2, 1, "ResNet stem");
    add_pool(s, 0, "core.avg_pool2d", 64, 64, 14, 14, 2, 2, 0, "Fashion-MNIST CNN conv2 size");
    op_case *c = add_case(s, "core.global_avg_pool2d", 0, "global_avg_pool2d N8 C2048 7x7 (ResNet-50 head)");
    set_input(c, -1, 1, 4, 8, 2048, 7, 7);

    c = add_case(s, "core.batch_norm", 0, "batch_norm training N32 C64 56x56");
    set_input(c, -1, 1, 4, 32, 64, 56, 56);
    set_input(c, 0.5f, 1.5f, 1, 64, 0, 0, 0);
    set_input(c, -0.5f, 0.5f, 1, 64, 0, 0, 0);
    set_input(c, -0.5f, 0.5f, 1, 64, 0, 0, 0);
    set_input(c, 0.5f, 1.5f, 1, 64, 0, 0, 0);
    c->n_out = 3;
    c->attrs.batch_norm = (plx_batch_norm_attrs)PLX_BATCH_NORM_ATTRS_DEFAULT;
    c->has_attrs = 1;
    c = add_case(s, "core.layer_norm", 1, "layer_norm 512x768 (Transformer)");
    set_input(c, -1, 1, 2, 512, 768, 0, 0);
    set_input(c, 0.5f, 1.5f, 1, 768, 0, 0, 0);
    set_input(c, -0.5f, 0.5f, 1, 768, 0, 0, 0);
    c->n_out = 3;
    c->attrs.layer_norm = (plx_layer_norm_attrs)PLX_LAYER_NORM_ATTRS_DEFAULT;
    c->has_attrs = 1;

    c = add_case(s, "core.add", 1, "add 1024x4096");
    set_input(c, -1, 1, 2, 1024, 4096, 0, 0);
    set_input(c, -1, 1, 2, 1024, 4096, 0, 0);
    c = add_case(s, "core.mul", 0, "mul 1024x4096 by a row of 4096 (broadcast)");
    set_input(c, -1, 1, 2, 1024, 4096, 0, 0);
    set_input(c, -1, 1, 1, 4096, 0, 0, 0);
    c = add_case(s, "core.relu", 0, "relu 1024x4096");
    set_input(c, -1, 1, 2, 1024, 4096, 0, 0);
    c = add_case(s, "core.gelu", 0, "gelu 1024x4096");
    set_input(c, -3, 3, 2, 1024, 4096, 0, 0);

    c = add_case(s, "core.softmax", 1, "softmax 1024x1000 (classifier)");
    set_input(c, -5, 5, 2, 1024, 1000, 0, 0);
    c = add_case(s, "core.log_softmax", 0, "log_softmax 1024x1000 (classifier)");
    set_input(c, -5, 5, 2, 1024, 1000, 0, 0);
    c = add_case(s, "core.softmax", 0, "softmax 8x12x128x128 (attention)");
    set_input(c, -5, 5, 4, 8, 12, 128, 128);
}

/* Whether case c is kept by the --op filter (comma-separated tokens). */
static int case_matches(const op_case *c, const char *token, size_t len)
{
    char t[96];
    if (len == 0 || len >= sizeof t)
        return 0;
    memcpy(t, token, len);
    t[len] = '\0';
    return strcmp(c->op, t) == 0 || strstr(c->name, t) != NULL;
}

/* Marks the selected cases; returns CLI_OK or CLI_USAGE (a token that
 * matches nothing, printed). */
static int select_cases(const op_suite *s, const char *filter, int quick, int *selected)
{
    for (int i = 0; i < s->n; i++)
        selected[i] = !quick || s->cases[i].quick;
    if (filter == NULL)
        return CLI_OK;
    if (filter[0] == '\0')
        return bad_argument("--op needs a value: op names or parts of benchmark names (see --ops --list)");
    int keep[48] = {0};
    const char *p = filter;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        int any = 0;
        for (int i = 0; i < s->n; i++)
            if (selected[i] && case_matches(&s->cases[i], p, len)) {
                keep[i] = 1;
                any = 1;
            }
        if (!any)
            return bad_argument("--op '%.*s' matches no benchmark of the %ssuite (see plexus bench --ops%s --list)",
                                (int)len, p, quick ? "--quick " : "", quick ? " --quick" : "");
        p += len;
        if (*p == ',')
            p++;
    }
    for (int i = 0; i < s->n; i++)
        selected[i] = keep[i];
    return CLI_OK;
}

/* ---- running one case -------------------------------------------------------------- */

typedef struct case_result {
    int ran; /* 0: declined (reason) or failed */
    char reason[512];
    char backend[64]; /* the backend that ran it */
    double ms;        /* median of the timed runs; NaN if not timed */
    int runs;
    double max_rel_error; /* against the reference; NaN when unknown */
    double bytes;         /* inputs + outputs */
} case_result;

typedef struct reference {
    float *out[3];
    int64_t n[3];
    int ok;
} reference;

static void reference_free(reference *r)
{
    for (int i = 0; i < 3; i++)
        free(r->out[i]);
    memset(r, 0, sizeof *r);
}

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The line explaining why `backend` declines the call, from plx_op_explain. */
static void decline_reason(plx_context *ctx, const op_case *c, plx_tensor *const *ins, const char *backend, char *out,
                           size_t cap)
{
    char buf[4096] = "";
    const char *last = plx_last_error(ctx);
    snprintf(out, cap, "%s", last != NULL && last[0] ? last : "declined");
    plx_op_explain(ctx, c->op, c->has_attrs ? &c->attrs : NULL, ins, (size_t)c->n_in, buf, sizeof buf);
    size_t blen = strlen(backend);
    for (char *line = strtok(buf, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        while (*line == ' ')
            line++;
        if (strncmp(line, backend, blen) == 0 && line[blen] == ' ') {
            line += blen;
            while (*line == ' ')
                line++;
            snprintf(out, cap, "%s", line);
            return;
        }
    }
}

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* How a case's inputs are made: f32; f32 holding values exactly
 * representable in bf16 (the reference of a --dtype bf16 run); bf16. */
enum { DTYPE_F32 = 0, DTYPE_F32_BF16_VALUES = 1, DTYPE_BF16 = 2 };

/* Round to nearest even; NaN stays NaN. */
static uint16_t bf16_from_f32(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float f32_from_bf16(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* An f32 or bf16 output as f32 values. */
static void output_as_f32(const plx_tensor *t, float *out)
{
    int64_t n = plx_tensor_numel(t);
    if (plx_tensor_desc_get(t)->dtype.bits == 16) {
        const uint16_t *b = plx_tensor_data(t);
        for (int64_t k = 0; k < n; k++)
            out[k] = f32_from_bf16(b[k]);
    } else
        memcpy(out, plx_tensor_data(t), sizeof(float) * (size_t)n);
}

/* Runs case c (index ci) once in ctx, checks it against (or, when
 * ref->ok == 0 and capture, records) the reference, then times it for
 * `budget` seconds when budget > 0. */
static void run_case(plx_context *ctx, const op_case *c, int ci, const char *backend_name, int capture, int dtype_mode, reference *ref,
                     double budget, int min_runs, case_result *r)
{
    memset(r, 0, sizeof *r);
    r->ms = NAN;
    r->max_rel_error = NAN;
    plx_tensor *ins[5] = {NULL}, *outs[3] = {NULL};
    for (int i = 0; i < c->n_in; i++) {
        plx_dtype dt = dtype_mode == DTYPE_BF16 ? PLX_BF16 : PLX_F32;
        if (plx_tensor_create(ctx, dt, c->in[i].ndim, c->in[i].dims, &ins[i]) != PLX_OK) {
            snprintf(r->reason, sizeof r->reason, "%s", plx_last_error(ctx));
            goto done;
        }
        uint64_t rng = 0x5eedull * (uint64_t)(ci + 1) + (uint64_t)i * 7919u;
        float *x = plx_tensor_data(ins[i]);
        uint16_t *xb = plx_tensor_data(ins[i]);
        int64_t n = plx_tensor_numel(ins[i]);
        for (int64_t k = 0; k < n; k++) {
            float v = c->in[i].lo + (c->in[i].hi - c->in[i].lo) * (float)((splitmix(&rng) >> 40) * (1.0 / 16777216.0));
            if (dtype_mode == DTYPE_BF16)
                xb[k] = bf16_from_f32(v);
            else
                x[k] = dtype_mode == DTYPE_F32_BF16_VALUES ? f32_from_bf16(bf16_from_f32(v)) : v;
        }
    }
    const void *attrs = c->has_attrs ? &c->attrs : NULL;
    plx_status st = plx_op_run(ctx, c->op, attrs, ins, (size_t)c->n_in, outs, (size_t)c->n_out);
    if (st != PLX_OK) {
        decline_reason(ctx, c, ins, backend_name, r->reason, sizeof r->reason);
        goto done;
    }
    r->ran = 1;
    snprintf(r->backend, sizeof r->backend, "%s", plx_last_backend(ctx));
    for (int i = 0; i < c->n_in; i++)
        r->bytes += (double)plx_tensor_numel(ins[i]) * (double)((plx_tensor_desc_get(ins[i])->dtype.bits + 7) / 8);
    for (int o = 0; o < c->n_out; o++)
        r->bytes += (double)plx_tensor_numel(outs[o]) * (double)((plx_tensor_desc_get(outs[o])->dtype.bits + 7) / 8);
    if (capture && !ref->ok) {
        ref->ok = 1;
        for (int o = 0; o < c->n_out && o < 3; o++) {
            ref->n[o] = plx_tensor_numel(outs[o]);
            ref->out[o] = malloc(sizeof(float) * (size_t)(ref->n[o] + 1));
            if (ref->out[o] == NULL) {
                ref->ok = 0;
                break;
            }
            output_as_f32(outs[o], ref->out[o]);
        }
    }
    if (ref->ok) {
        double worst = 0.0;
        for (int o = 0; o < c->n_out && o < 3; o++) {
            if (plx_tensor_numel(outs[o]) != ref->n[o]) {
                worst = INFINITY;
                break;
            }
            float *y = malloc(sizeof(float) * (size_t)(ref->n[o] + 1));
            if (y == NULL) {
                worst = NAN;
                break;
            }
            output_as_f32(outs[o], y);
            double diff = 0.0, mag = 0.0;
            for (int64_t k = 0; k < ref->n[o]; k++) {
                double d = fabs((double)y[k] - (double)ref->out[o][k]);
                diff = d > diff || isnan(d) ? d : diff;
                mag = fabs((double)ref->out[o][k]) > mag ? fabs((double)ref->out[o][k]) : mag;
            }
            free(y);
            double e = mag > 0 ? diff / mag : diff;
            worst = e > worst || isnan(e) ? e : worst;
        }
        r->max_rel_error = worst;
    }
    if (budget > 0) {
        enum { MAX_RUNS = 200 };
        double times[MAX_RUNS], spent = 0.0;
        int runs = 0;
        /* One more untimed run: the first one allocated the outputs. */
        st = plx_op_run(ctx, c->op, attrs, ins, (size_t)c->n_in, outs, (size_t)c->n_out);
        while (runs < MAX_RUNS && (runs < min_runs || spent < budget)) {
            double t0 = now_seconds();
            if (st == PLX_OK)
                st = plx_op_run(ctx, c->op, attrs, ins, (size_t)c->n_in, outs, (size_t)c->n_out);
            double dt = now_seconds() - t0;
            if (st != PLX_OK) {
                r->ran = 0;
                snprintf(r->reason, sizeof r->reason, "failed on a timed run: %s", plx_last_error(ctx));
                goto done;
            }
            times[runs++] = dt;
            spent += dt;
        }
        qsort(times, (size_t)runs, sizeof times[0], by_double);
        r->runs = runs;
        r->ms = (runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2])) * 1e3;
    }
done:
    for (int o = 0; o < 3; o++)
        plx_tensor_free(outs[o]);
    for (int i = 0; i < 5; i++)
        plx_tensor_free(ins[i]);
}

/* ---- --ops ---------------------------------------------------------------------------- */

typedef struct ops_options {
    const char *filter;
    int quick, list, json;
    int bf16; /* --dtype bf16: inputs and outputs bf16 (reference: cpu_blas in f32 on the same values) */
    const char *svg_path;
} ops_options;

static double case_rate(const op_case *c, const case_result *r)
{
    if (!r->ran || !isfinite(r->ms) || r->ms <= 0)
        return NAN;
    return (c->flops > 0 ? c->flops : r->bytes) / (r->ms * 1e-3) / 1e9;
}

static const char *config_label(char *buf, size_t cap, const bench_config *cfg, const case_result *r)
{
    if (strcmp(cfg->name, "auto") == 0 && r != NULL && r->ran)
        snprintf(buf, cap, "auto → %s", r->backend);
    else
        snprintf(buf, cap, "%s", cfg->name);
    return buf;
}

static int run_ops(const ops_options *o, const char *backends)
{
    static op_suite suite;
    build_suite(&suite);
    int selected[48];
    int rc = select_cases(&suite, o->filter, o->quick, selected);
    if (rc != CLI_OK)
        return rc;
    if (o->list) {
        for (int i = 0; i < suite.n; i++)
            if (selected[i])
                printf("%-18s %s%s\n", suite.cases[i].op + 5, suite.cases[i].name,
                       suite.cases[i].quick ? "  [quick]" : "");
        return CLI_OK;
    }
    bench_setup setup;
    if ((rc = setup_configs(&setup, backends, 1)) != CLI_OK)
        return rc;
    int nc = setup.n_configs;
    plx_context *ctx[MAX_CONFIGS] = {NULL};
    for (int k = 0; k < nc; k++)
        if ((ctx[k] = open_ranked(setup.configs[k].ranking)) == NULL) {
            for (int j = 0; j < k; j++)
                plx_context_close(ctx[j]);
            return CLI_ERROR;
        }
    int n_sel = 0;
    for (int i = 0; i < suite.n; i++)
        n_sel += selected[i];
    case_result *results = calloc((size_t)(suite.n * nc), sizeof *results);
    if (results == NULL) {
        for (int k = 0; k < nc; k++)
            plx_context_close(ctx[k]);
        fprintf(stderr, "plexus bench: out of memory\n");
        return CLI_ERROR;
    }
    /* One configuration after another, not interleaved per case: backends'
     * thread pools (OpenBLAS's, oneDNN's OpenMP team) keep spinning for a
     * while after their last call, and on a small machine a pool spinning
     * next to another backend's slowed its runs ten- to a hundredfold.
     * So each configuration runs every case after a pause, and the
     * reference's outputs are kept for the others to be checked against. */
    static reference refs[48];
    double budget = o->quick ? 0.02 : 0.25;
    int min_runs = o->quick ? 2 : 3;
    for (int k = 0; k < nc; k++) {
        if (k > 0) {
            struct timespec pause = {0, o->quick ? 100000000L : 300000000L};
            nanosleep(&pause, NULL);
        }
        int done = 0;
        for (int i = 0; i < suite.n; i++) {
            if (!selected[i])
                continue;
            fprintf(stderr, "plexus bench: %s [%d/%d] %s\n", setup.configs[k].name, ++done, n_sel, suite.cases[i].name);
            run_case(ctx[k], &suite.cases[i], i, setup.configs[k].name, k == 0,
                     !o->bf16 ? DTYPE_F32 : k == 0 ? DTYPE_F32_BF16_VALUES : DTYPE_BF16, &refs[i], budget, min_runs,
                     &results[i * nc + k]);
            if (k == 0 && !results[i * nc].ran)
                reference_free(&refs[i]);
        }
    }
    for (int i = 0; i < suite.n; i++)
        reference_free(&refs[i]);
    for (int k = 0; k < nc; k++)
        plx_context_close(ctx[k]);

    /* configs[0] is the reference, timed whether shown or not. */
    if (o->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "threads", setup.threads);
        cJSON_AddStringToObject(root, "reference", REFERENCE);
        cJSON_AddStringToObject(root, "dtype", o->bf16 ? "bf16" : "f32");
        cJSON_AddBoolToObject(root, "quick", o->quick != 0);
        cJSON *names = cJSON_AddArrayToObject(root, "backends");
        for (int k = 0; k < nc; k++)
            if (setup.configs[k].shown)
                cJSON_AddItemToArray(names, cJSON_CreateString(setup.configs[k].name));
        cJSON *arr = cJSON_AddArrayToObject(root, "ops");
        for (int i = 0; i < suite.n; i++) {
            if (!selected[i])
                continue;
            const op_case *c = &suite.cases[i];
            cJSON *oj = cJSON_CreateObject();
            cJSON_AddStringToObject(oj, "name", c->name);
            cJSON_AddStringToObject(oj, "op", c->op);
            cJSON_AddStringToObject(oj, "metric", c->flops > 0 ? "GFLOP/s" : "GB/s");
            cli_json_number(oj, "flops", c->flops > 0 ? c->flops : NAN);
            cli_json_number(oj, "bytes", results[i * nc].bytes > 0 ? results[i * nc].bytes : NAN);
            cJSON *shapes = cJSON_AddArrayToObject(oj, "inputs");
            for (int k = 0; k < c->n_in; k++) {
                cJSON *dims = cJSON_CreateArray();
                for (int d = 0; d < c->in[k].ndim; d++)
                    cJSON_AddItemToArray(dims, cJSON_CreateNumber((double)c->in[k].dims[d]));
                cJSON_AddItemToArray(shapes, dims);
            }
            cJSON *res = cJSON_AddObjectToObject(oj, "results");
            const case_result *ref = &results[i * nc];
            for (int k = 0; k < nc; k++) {
                if (!setup.configs[k].shown)
                    continue;
                const case_result *r = &results[i * nc + k];
                cJSON *rj = cJSON_AddObjectToObject(res, setup.configs[k].name);
                if (!r->ran) {
                    cJSON_AddStringToObject(rj, "declined", r->reason);
                    continue;
                }
                cJSON_AddStringToObject(rj, "backend", r->backend);
                cli_json_number(rj, "ms", r->ms);
                cJSON_AddNumberToObject(rj, "runs", r->runs);
                cli_json_number(rj, "rate", case_rate(c, r));
                cli_json_number(rj, "speedup", ref->ran && r->ms > 0 ? ref->ms / r->ms : NAN);
                cli_json_number(rj, "max_rel_error", r->max_rel_error);
            }
            cJSON_AddItemToArray(arr, oj);
        }
        if (cli_print_json(root))
            rc = CLI_ERROR;
    } else {
        printf("## plexus bench --ops%s%s: %d thread%s, reference %s%s\n\n", o->quick ? " --quick" : "",
               o->bf16 ? " --dtype bf16" : "", (int)setup.threads, setup.threads == 1 ? "" : "s", REFERENCE,
               o->bf16 ? " in f32 on the same bf16 values (its own row)" : "");
        printf("| benchmark | backend | ms | rate | vs %s | max rel. error |\n", REFERENCE);
        printf("|---|---|---:|---:|---:|---:|\n");
        for (int i = 0; i < suite.n; i++) {
            if (!selected[i])
                continue;
            const op_case *c = &suite.cases[i];
            const case_result *ref = &results[i * nc];
            int first = 1;
            for (int k = 0; k < nc; k++) {
                if (!setup.configs[k].shown)
                    continue;
                const case_result *r = &results[i * nc + k];
                char label[96], ms[32], err[32], rate[48], speed[32];
                config_label(label, sizeof label, &setup.configs[k], r);
                if (!r->ran) {
                    printf("| %s | %s | — | — | — | — |\n", first ? c->name : "", label);
                } else {
                    double v = case_rate(c, r);
                    if (isfinite(v))
                        snprintf(rate, sizeof rate, "%.1f %s", v, c->flops > 0 ? "GFLOP/s" : "GB/s");
                    else
                        snprintf(rate, sizeof rate, "—");
                    if (ref->ran && r->ms > 0)
                        snprintf(speed, sizeof speed, "%.2f×", ref->ms / r->ms);
                    else
                        snprintf(speed, sizeof speed, "—");
                    if (!isfinite(r->max_rel_error))
                        snprintf(err, sizeof err, "%s", isnan(r->max_rel_error) ? "—" : "inf");
                    else if (r->max_rel_error == 0)
                        snprintf(err, sizeof err, "0");
                    else
                        snprintf(err, sizeof err, "%.1e", r->max_rel_error);
                    printf("| %s | %s | %s | %s | %s | %s |\n", first ? c->name : "", label,
                           fmt_ms(ms, sizeof ms, r->ms), rate, speed, err);
                }
                first = 0;
            }
        }
        printf("\nrate: GFLOP/s for matmul and convolutions, else GB/s (every input and output byte once); "
               "ms: median run.\nmax rel. error: max |y - y_ref| / max |y_ref| over the outputs, against %s on the "
               "same inputs.\n— : the backend declines the op (--json gives the reason).\n%s",
               REFERENCE,
               o->bf16 ? "--dtype bf16: the other rows take and give bf16 tensors; bytes count 2 per element.\n" : "");
    }

    if (rc == CLI_OK && o->svg_path != NULL) {
        int ns = 0;
        const char *series[MAX_CONFIGS];
        int series_cfg[MAX_CONFIGS];
        char labels[MAX_CONFIGS][64];
        for (int k = 0; k < nc; k++)
            if (setup.configs[k].shown) {
                snprintf(labels[ns], sizeof labels[0], "%s", setup.configs[k].name);
                series[ns] = labels[ns];
                series_cfg[ns++] = k;
            }
        const char **groups = calloc((size_t)n_sel + 1, sizeof *groups);
        double *values = calloc((size_t)(n_sel * ns) + 1, sizeof *values);
        const char **notes = calloc((size_t)(n_sel * ns) + 1, sizeof *notes);
        int g = 0;
        if (groups != NULL && values != NULL && notes != NULL) {
            for (int i = 0; i < suite.n; i++) {
                if (!selected[i])
                    continue;
                groups[g] = suite.cases[i].name;
                const case_result *ref = &results[i * nc];
                for (int s = 0; s < ns; s++) {
                    const case_result *r = &results[i * nc + series_cfg[s]];
                    values[g * ns + s] = r->ran && ref->ran && r->ms > 0 ? ref->ms / r->ms : NAN;
                    notes[g * ns + s] = !r->ran                                                  ? "declined"
                                        : strcmp(setup.configs[series_cfg[s]].name, "auto") == 0 ? r->backend
                                                                                                 : NULL;
                }
                g++;
            }
            char title[128];
            snprintf(title, sizeof title, "plexus bench --ops%s, %d threads", o->quick ? " --quick" : "",
                     (int)setup.threads);
            bar_chart chart = {.title = "Speed relative to " REFERENCE " (higher is faster)",
                               .xlabel = "× " REFERENCE " speed (" REFERENCE " time / backend time)",
                               .n_groups = n_sel,
                               .n_series = ns,
                               .groups = groups,
                               .series = series,
                               .values = values,
                               .notes = notes};
            if (write_charts(o->svg_path, title, &chart, 1))
                rc = CLI_ERROR;
        } else {
            fprintf(stderr, "plexus bench: out of memory\n");
            rc = CLI_ERROR;
        }
        free(groups);
        free(values);
        free(notes);
    }
    free(results);
    return rc;
}

/* ---- --model --------------------------------------------------------------------------- */

typedef struct op_row {
    char op[64];
    char backend[64];
    int32_t nodes;
    double ms, share;
} op_row;

typedef struct model_run {
    const bench_config *cfg;
    int ok;
    char error[1024];
    plx_bench_result res;
    op_row *train_ops, *infer_ops;
    int n_train, n_infer;
    char placement[256]; /* nodes of the training plan per backend */
    char model_name[128];
} model_run;

typedef struct model_options {
    const char *path;
    plx_bench_options bench;
    int json;
    const char *svg_path;
} model_options;

static void copy_rows(const plx_bench_op_time *src, int32_t n, op_row **out, int *n_out)
{
    *out = calloc((size_t)n + 1, sizeof **out);
    *n_out = 0;
    if (*out == NULL)
        return;
    for (int32_t i = 0; i < n; i++) {
        op_row *r = &(*out)[(*n_out)++];
        snprintf(r->op, sizeof r->op, "%s", src[i].op ? src[i].op : "?");
        snprintf(r->backend, sizeof r->backend, "%s", src[i].backend ? src[i].backend : "?");
        r->nodes = src[i].nodes;
        r->ms = src[i].ms;
        r->share = src[i].share;
    }
}

static void placement_of(model_run *run)
{
    char names[MAX_BACKENDS][64];
    int counts[MAX_BACKENDS] = {0}, n = 0;
    for (int i = 0; i < run->n_train; i++) {
        int k = 0;
        while (k < n && strcmp(names[k], run->train_ops[i].backend) != 0)
            k++;
        if (k == n) {
            if (n == MAX_BACKENDS)
                continue;
            snprintf(names[n++], sizeof names[0], "%s", run->train_ops[i].backend);
        }
        counts[k] += run->train_ops[i].nodes;
    }
    run->placement[0] = '\0';
    for (int k = 0; k < n; k++) {
        size_t used = strlen(run->placement);
        snprintf(run->placement + used, sizeof run->placement - used, "%s%s %d", k ? ", " : "", names[k], counts[k]);
    }
}

/* Opens the configuration's context, loads the model and benchmarks it. */
static void bench_model_config(const model_options *o, const bench_config *cfg, model_run *run)
{
    memset(run, 0, sizeof *run);
    run->cfg = cfg;
    plx_context *ctx = open_ranked(cfg->ranking);
    if (ctx == NULL) {
        snprintf(run->error, sizeof run->error, "cannot open a context ranked '%s'", cfg->ranking);
        return;
    }
    plx_model *model = NULL;
    plx_status st = plx_model_load(ctx, o->path, &model);
    if (st != PLX_OK) {
        const char *msg = plx_last_error(ctx);
        snprintf(run->error, sizeof run->error, "%s%s%s", strstr(msg, o->path) ? "" : o->path,
                 strstr(msg, o->path) ? "" : ": ", msg[0] ? msg : plx_status_text(st));
        plx_context_close(ctx);
        return;
    }
    plx_model_info info = {.struct_size = sizeof info};
    if (plx_model_info_get(model, &info) == PLX_OK && info.name != NULL)
        snprintf(run->model_name, sizeof run->model_name, "%s", info.name);
    plx_bench_op_time *train = calloc(MAX_OP_ROWS, sizeof *train), *infer = calloc(MAX_OP_ROWS, sizeof *infer);
    if (train == NULL || infer == NULL) {
        snprintf(run->error, sizeof run->error, "out of memory");
    } else {
        for (int i = 0; i < MAX_OP_ROWS; i++)
            train[i].struct_size = infer[i].struct_size = (uint32_t)sizeof train[0];
        run->res.struct_size = (uint32_t)sizeof run->res;
        run->res.train_ops = train;
        run->res.train_ops_cap = MAX_OP_ROWS;
        run->res.inference_ops = infer;
        run->res.inference_ops_cap = MAX_OP_ROWS;
        st = plx_model_bench(model, &o->bench, &run->res);
        if (st != PLX_OK) {
            const char *msg = plx_last_error(ctx);
            snprintf(run->error, sizeof run->error, "%s", msg[0] ? msg : plx_status_text(st));
        } else {
            run->ok = 1;
            copy_rows(train, run->res.n_train_ops < MAX_OP_ROWS ? run->res.n_train_ops : MAX_OP_ROWS, &run->train_ops,
                      &run->n_train);
            copy_rows(infer, run->res.n_inference_ops < MAX_OP_ROWS ? run->res.n_inference_ops : MAX_OP_ROWS,
                      &run->infer_ops, &run->n_infer);
            placement_of(run);
        }
        /* The arrays were borrowed for the call; the strings in them belong to ctx. */
        run->res.train_ops = run->res.inference_ops = NULL;
    }
    free(train);
    free(infer);
    plx_model_free(model);
    plx_context_close(ctx);
}

static cJSON *op_rows_json(const op_row *rows, int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "op", rows[i].op);
        cJSON_AddStringToObject(o, "backend", rows[i].backend);
        cJSON_AddNumberToObject(o, "nodes", rows[i].nodes);
        cli_json_number(o, "ms", rows[i].ms);
        cli_json_number(o, "share", rows[i].share);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

/* One op's time in a run: summed over backends; `via` lists them. */
static double op_time_in(const model_run *run, const char *op, double *share, char *via, size_t cap)
{
    double ms = 0;
    *share = 0;
    via[0] = '\0';
    int found = 0;
    for (int i = 0; i < run->n_train; i++)
        if (strcmp(run->train_ops[i].op, op) == 0) {
            ms += run->train_ops[i].ms;
            *share += run->train_ops[i].share;
            size_t used = strlen(via);
            snprintf(via + used, cap - used, "%s%s", found ? "+" : "", run->train_ops[i].backend);
            found = 1;
        }
    return found ? ms : NAN;
}

static void print_model_tables(const model_options *o, const bench_setup *setup, const model_run *runs,
                               const char *model_name)
{
    const plx_bench_result *first = NULL;
    for (int k = 0; k < setup->n_configs && first == NULL; k++)
        if (runs[k].ok)
            first = &runs[k].res;
    printf("## plexus bench --model %s (%s): ", o->path, model_name);
    if (first != NULL)
        printf("batch %lld, %d timed steps after %d warm-up, %d thread%s\n\n", (long long)first->batch_size,
               (int)first->steps, (int)first->warmup_steps, (int)setup->threads, setup->threads == 1 ? "" : "s");
    else
        printf("%d thread%s\n\n", (int)setup->threads, setup->threads == 1 ? "" : "s");
    const model_run *ref = NULL;
    for (int k = 0; k < setup->n_configs; k++)
        if (strcmp(runs[k].cfg->name, REFERENCE) == 0 && runs[k].ok)
            ref = &runs[k];
    char ib[32] = "";
    if (first != NULL && first->inference_batch > 0)
        snprintf(ib, sizeof ib, " (batch %lld)", (long long)first->inference_batch);
    printf("| backend | ranking | ms/step | median | examples/s | vs %s | inference ms/batch%s | images/s | nodes by "
           "backend |\n",
           REFERENCE, ib);
    printf("|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    for (int k = 0; k < setup->n_configs; k++) {
        const model_run *r = &runs[k];
        const char *ranking = r->cfg->ranking[0] ? r->cfg->ranking : "none (router's choice)";
        if (!r->ok) {
            printf("| %s | %s | failed: %s | | | | | | |\n", r->cfg->name, ranking, r->error);
            continue;
        }
        char ms[32], med[32], eps[32], ims[32], ips[32], vs[32];
        if (ref != NULL && r->res.ms_per_step > 0)
            snprintf(vs, sizeof vs, "%.2f×", ref->res.ms_per_step / r->res.ms_per_step);
        else
            snprintf(vs, sizeof vs, "—");
        printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r->cfg->name, ranking,
               fmt_ms(ms, sizeof ms, r->res.ms_per_step), fmt_ms(med, sizeof med, r->res.ms_per_step_median),
               fmt_count(eps, sizeof eps, r->res.examples_per_second), vs,
               fmt_ms(ims, sizeof ims, r->res.inference_ms_per_batch),
               fmt_count(ips, sizeof ips, r->res.inference_images_per_second), r->placement);
    }
    /* Time per op of the training step: the ops that take most time anywhere. */
    enum { TOP = 12 };
    const char *ops[MAX_OP_ROWS];
    double weight[MAX_OP_ROWS];
    int n_ops = 0;
    for (int k = 0; k < setup->n_configs; k++)
        for (int i = 0; i < runs[k].n_train; i++) {
            int j = 0;
            while (j < n_ops && strcmp(ops[j], runs[k].train_ops[i].op) != 0)
                j++;
            if (j == n_ops) {
                if (n_ops == MAX_OP_ROWS)
                    continue;
                ops[n_ops] = runs[k].train_ops[i].op;
                weight[n_ops++] = 0;
            }
            weight[j] = runs[k].train_ops[i].share > weight[j] ? runs[k].train_ops[i].share : weight[j];
        }
    if (n_ops == 0)
        return;
    /* Selection sort by weight, descending (a few dozen ops). */
    for (int a = 0; a < n_ops; a++) {
        int best = a;
        for (int b = a + 1; b < n_ops; b++)
            if (weight[b] > weight[best])
                best = b;
        const char *t = ops[a];
        ops[a] = ops[best];
        ops[best] = t;
        double w = weight[a];
        weight[a] = weight[best];
        weight[best] = w;
    }
    printf("\nTime per training step by op: ms (share of the step)%s\n\n",
           " and, where it is not the column's backend, where it ran");
    printf("| op |");
    for (int k = 0; k < setup->n_configs; k++)
        printf(" %s |", runs[k].cfg->name);
    printf("\n|---|");
    for (int k = 0; k < setup->n_configs; k++)
        printf("---:|");
    printf("\n");
    for (int j = 0; j < n_ops && j < TOP; j++) {
        printf("| %s |", ops[j]);
        for (int k = 0; k < setup->n_configs; k++) {
            double share;
            char via[160], ms[32];
            double t = runs[k].ok ? op_time_in(&runs[k], ops[j], &share, via, sizeof via) : NAN;
            if (!isfinite(t))
                printf(" — |");
            else if (strcmp(via, runs[k].cfg->name) == 0)
                printf(" %s (%.0f%%) |", fmt_ms(ms, sizeof ms, t), share * 100);
            else
                printf(" %s (%.0f%%) %s |", fmt_ms(ms, sizeof ms, t), share * 100, via);
        }
        printf("\n");
    }
    if (n_ops > TOP)
        printf("\n%d more op%s in --json.\n", n_ops - TOP, n_ops - TOP == 1 ? "" : "s");
}

static int run_model(const model_options *o, const char *backends)
{
    bench_setup setup;
    int rc = setup_configs(&setup, backends, 0);
    if (rc != CLI_OK)
        return rc;
    model_run runs[MAX_CONFIGS];
    int failed = 0;
    char model_name[128] = "model";
    for (int k = 0; k < setup.n_configs; k++) {
        const bench_config *cfg = &setup.configs[k];
        fprintf(stderr, "plexus bench: %s (ranking: %s): %d warm-up and %d timed steps, %d inference batches\n",
                cfg->name, cfg->ranking[0] ? cfg->ranking : "none", (int)o->bench.warmup_steps, (int)o->bench.steps,
                o->bench.inference_batch > 0 ? (int)o->bench.inference_runs : 0);
        bench_model_config(o, cfg, &runs[k]);
        if (!runs[k].ok) {
            fprintf(stderr, "plexus bench: %s: %s\n", cfg->name, runs[k].error);
            failed++;
            /* The first configuration failing (an unreadable model or
             * data) would fail every other the same way. */
            if (k == 0) {
                for (int j = 0; j <= k; j++) {
                    free(runs[j].train_ops);
                    free(runs[j].infer_ops);
                }
                return CLI_ERROR;
            }
        }
    }
    for (int k = setup.n_configs - 1; k >= 0; k--)
        if (runs[k].model_name[0])
            snprintf(model_name, sizeof model_name, "%s", runs[k].model_name);
    if (o->json) {
        cJSON *root = cJSON_CreateObject();
        for (int k = 0; k < setup.n_configs; k++) {
            const model_run *r = &runs[k];
            cJSON *e = cJSON_AddObjectToObject(root, r->cfg->name);
            cJSON_AddStringToObject(e, "ranking", r->cfg->ranking);
            cJSON_AddStringToObject(e, "model", model_name);
            cJSON_AddNumberToObject(e, "threads", setup.threads);
            if (!r->ok) {
                cJSON_AddStringToObject(e, "error", r->error);
                continue;
            }
            const plx_bench_result *b = &r->res;
            cli_json_number(e, "ms_per_step", b->ms_per_step);
            cli_json_number(e, "ms_per_step_min", b->ms_per_step_min);
            cli_json_number(e, "ms_per_step_median", b->ms_per_step_median);
            cli_json_number(e, "examples_per_second", b->examples_per_second);
            cli_json_number(e, "seconds_per_epoch", b->ms_per_step * 1e-3 * (double)b->steps_per_epoch);
            cJSON_AddNumberToObject(e, "batch_size", (double)b->batch_size);
            cJSON_AddNumberToObject(e, "steps_per_epoch", (double)b->steps_per_epoch);
            cJSON_AddNumberToObject(e, "steps", b->steps);
            cJSON_AddNumberToObject(e, "warmup_steps", b->warmup_steps);
            cJSON_AddNumberToObject(e, "inference_batch", (double)b->inference_batch);
            cJSON_AddNumberToObject(e, "inference_runs", b->inference_runs);
            cli_json_number(e, "inference_ms_per_batch", b->inference_ms_per_batch);
            cli_json_number(e, "inference_images_per_second", b->inference_images_per_second);
            cJSON_AddNumberToObject(e, "train_nodes", b->train_nodes);
            cJSON_AddNumberToObject(e, "inference_nodes", b->inference_nodes);
            cJSON_AddStringToObject(e, "placement", r->placement);
            cJSON_AddItemToObject(e, "train_ops", op_rows_json(r->train_ops, r->n_train));
            cJSON_AddItemToObject(e, "inference_ops", op_rows_json(r->infer_ops, r->n_infer));
        }
        if (cli_print_json(root))
            rc = CLI_ERROR;
    } else
        print_model_tables(o, &setup, runs, model_name);

    if (rc == CLI_OK && o->svg_path != NULL) {
        const char *groups[MAX_CONFIGS];
        char labels[MAX_CONFIGS][240];
        double train_v[MAX_CONFIGS], infer_v[MAX_CONFIGS];
        const char *series[1] = {"examples/s"}, *iseries[1] = {"images/s"};
        for (int k = 0; k < setup.n_configs; k++) {
            const model_run *r = &runs[k];
            snprintf(labels[k], sizeof labels[0], "%s%s%s%s", r->cfg->name, r->cfg->ranking[0] ? " (" : "",
                     r->cfg->ranking, r->cfg->ranking[0] ? ")" : "");
            groups[k] = labels[k];
            train_v[k] = r->ok ? r->res.examples_per_second : NAN;
            infer_v[k] = r->ok ? r->res.inference_images_per_second : NAN;
        }
        char title[512];
        snprintf(title, sizeof title, "plexus bench --model %s (%s), %d threads", o->path, model_name,
                 (int)setup.threads);
        bar_chart charts[2] = {
            {.title = "Training: examples per second (higher is faster)",
             .xlabel = "examples/s",
             .n_groups = setup.n_configs,
             .n_series = 1,
             .groups = groups,
             .series = series,
             .values = train_v},
            {.title = "Inference: images per second",
             .xlabel = "images/s",
             .n_groups = setup.n_configs,
             .n_series = 1,
             .groups = groups,
             .series = iseries,
             .values = infer_v},
        };
        if (write_charts(o->svg_path, title, charts, o->bench.inference_batch > 0 ? 2 : 1))
            rc = CLI_ERROR;
    }
    for (int k = 0; k < setup.n_configs; k++) {
        free(runs[k].train_ops);
        free(runs[k].infer_ops);
    }
    return rc != CLI_OK ? rc : failed ? CLI_ERROR : CLI_OK;
}

/* ---- the command ------------------------------------------------------------------------ */

/* ---- calibration ------------------------------------------------------------------ */

/* Prints what calibration did and saves the cache; CLI_OK or CLI_ERROR. */
static int save_calibration(plx_context *ctx, const char *what)
{
    plx_cost_cache_info info;
    if (cli_save_calibration(C_BENCH, ctx, &info))
        return CLI_ERROR;
    fprintf(stderr, "plexus bench: calibrated %s: %lld kernel times measured (%lld known already), saved to %s\n",
            what, (long long)info.measured, (long long)info.loaded, info.path);
    return CLI_OK;
}

static plx_context *open_calibrating(void)
{
    plx_context *ctx = NULL;
    return cli_open_context(C_BENCH, NULL, 1, &ctx) == 0 ? ctx : NULL;
}

/* Times every candidate backend of every node of the model's training step
 * and inference batch (the shapes the benchmark runs), by building its
 * plans in a calibrating context. */
static int calibrate_model(const model_options *o)
{
    plx_context *ctx = open_calibrating();
    if (ctx == NULL)
        return CLI_ERROR;
    plx_model *model = NULL;
    plx_status st = plx_model_load(ctx, o->path, &model);
    if (st == PLX_OK) {
        plx_bench_options b = o->bench;
        b.warmup_steps = 0;
        b.steps = 1;
        b.inference_runs = 1;
        plx_bench_result r = {.struct_size = sizeof r};
        st = plx_model_bench(model, &b, &r);
    }
    int rc = st == PLX_OK ? save_calibration(ctx, o->path) : CLI_ERROR;
    if (st != PLX_OK)
        cli_report(C_BENCH, ctx, st);
    plx_model_free(model);
    plx_context_close(ctx);
    return rc;
}

/* Routes (and so times) every selected case of the op suite once. */
static int calibrate_ops(const ops_options *o)
{
    static op_suite suite;
    build_suite(&suite);
    int selected[48];
    int rc = select_cases(&suite, o->filter, o->quick, selected);
    if (rc != CLI_OK)
        return rc;
    plx_context *ctx = open_calibrating();
    if (ctx == NULL)
        return CLI_ERROR;
    int n_sel = 0, done = 0;
    for (int i = 0; i < suite.n; i++)
        n_sel += selected[i];
    for (int i = 0; i < suite.n; i++) {
        if (!selected[i])
            continue;
        fprintf(stderr, "plexus bench: calibrating [%d/%d] %s\n", ++done, n_sel, suite.cases[i].name);
        reference none = {0};
        case_result r;
        run_case(ctx, &suite.cases[i], i, "auto", 0, o->bf16 ? DTYPE_BF16 : DTYPE_F32, &none, 0.0, 0, &r);
        reference_free(&none);
    }
    rc = save_calibration(ctx, "the op suite");
    plx_context_close(ctx);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    const char *C = C_BENCH;
    int ops = 0;
    const char *backends = NULL, *v = NULL, *ops_only = NULL, *model_only = NULL;
    ops_options oo = {0};
    model_options mo = {0};
    plx_bench_options_init(&mo.bench);
    int json = 0, calibrate = 0;
    const char *svg_path = NULL;
    for (int i = 0; i < argc; i++) {
        int r;
        int64_t n;
        if (argv[i][0] != '-' || argv[i][1] == '\0')
            return bad_argument("unexpected argument '%s' (the model file goes after --model)", argv[i]);
        if (strcmp(argv[i], "--ops") == 0) {
            ops = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--quick") == 0) {
            oo.quick = 1;
            ops_only = ops_only ? ops_only : "--quick";
        } else if (strcmp(argv[i], "--list") == 0) {
            oo.list = 1;
            ops_only = ops_only ? ops_only : "--list";
        } else if ((r = cli_option(C, argc, argv, &i, "--op", &oo.filter)) != 0) {
            if (r < 0)
                return usage_error();
            ops_only = ops_only ? ops_only : "--op";
        } else if ((r = cli_option(C, argc, argv, &i, "--model", &mo.path)) != 0) {
            if (r < 0)
                return usage_error();
            if (mo.path[0] == '\0')
                return bad_argument("--model needs a model file");
        } else if ((r = cli_option(C, argc, argv, &i, "--backends", &backends)) != 0) {
            if (r < 0)
                return usage_error();
        } else if ((r = cli_option(C, argc, argv, &i, "--svg", &svg_path)) != 0) {
            if (r < 0)
                return usage_error();
        } else if ((r = cli_option(C, argc, argv, &i, "--steps", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--steps", v, 1, 1000000, &n))
                return usage_error();
            mo.bench.steps = (int32_t)n;
            model_only = model_only ? model_only : "--steps";
        } else if ((r = cli_option(C, argc, argv, &i, "--warmup", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--warmup", v, 0, 1000000, &n))
                return usage_error();
            mo.bench.warmup_steps = (int32_t)n;
            model_only = model_only ? model_only : "--warmup";
        } else if ((r = cli_option(C, argc, argv, &i, "--limit-train", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--limit-train", v, 1, INT64_MAX, &n))
                return usage_error();
            mo.bench.limit_train = n;
            model_only = model_only ? model_only : "--limit-train";
        } else if ((r = cli_option(C, argc, argv, &i, "--inference-batch", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--inference-batch", v, 0, 1000000, &n))
                return usage_error();
            mo.bench.inference_batch = n;
            model_only = model_only ? model_only : "--inference-batch";
        } else if ((r = cli_option(C, argc, argv, &i, "--inference-runs", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--inference-runs", v, 1, 1000000, &n))
                return usage_error();
            mo.bench.inference_runs = (int32_t)n;
            model_only = model_only ? model_only : "--inference-runs";
        } else if ((r = cli_option(C, argc, argv, &i, "--data", &mo.bench.data_dir)) != 0) {
            if (r < 0)
                return usage_error();
            if (mo.bench.data_dir[0] == '\0')
                return bad_argument("--data needs a non-empty value");
            model_only = model_only ? model_only : "--data";
        } else if (strcmp(argv[i], "--calibrate") == 0) {
            calibrate = 1;
        } else if ((r = cli_option(C, argc, argv, &i, "--dtype", &v)) != 0) {
            if (r < 0)
                return usage_error();
            if (strcmp(v, "bf16") != 0 && strcmp(v, "f32") != 0)
                return bad_argument("--dtype takes f32 or bf16, got '%s'", v);
            oo.bf16 = strcmp(v, "bf16") == 0;
            ops_only = ops_only ? ops_only : "--dtype";
        } else {
            fprintf(stderr, "plexus bench: unknown option '%s'\n", argv[i]);
            return usage_error();
        }
    }
    if (ops && mo.path != NULL)
        return bad_argument("--ops and --model are separate runs; give one of them");
    if (calibrate && !ops && mo.path == NULL) {
        if (model_only != NULL)
            return bad_argument("%s applies to --model", model_only);
        if (json || svg_path != NULL || backends != NULL)
            return bad_argument("--calibrate alone only measures; add --ops or --model to benchmark too");
        /* Calibration alone: the whole op suite (or the --op selection). */
        unsetenv("PLEXUS_BACKENDS");
        return calibrate_ops(&oo);
    }
    if (!ops && mo.path == NULL)
        return bad_argument("say what to benchmark: --ops (the op suite) or --model MODEL.json");
    if (ops && model_only != NULL)
        return bad_argument("%s applies to --model, not --ops", model_only);
    if (!ops && ops_only != NULL)
        return bad_argument("%s applies to --ops, not --model", ops_only);
    if (svg_path != NULL && check_writable("--svg", svg_path) != CLI_OK)
        return CLI_USAGE;
    /* The configurations name their own rankings. */
    unsetenv("PLEXUS_BACKENDS");
    /* --calibrate first: the runs below (auto above all) route by it. */
    if (calibrate && !oo.list) {
        int rc = ops ? calibrate_ops(&oo) : calibrate_model(&mo);
        if (rc != CLI_OK)
            return rc;
    }
    if (ops) {
        oo.json = json;
        oo.svg_path = svg_path;
        return run_ops(&oo, backends);
    }
    mo.json = json;
    mo.svg_path = svg_path;
    return run_model(&mo, backends);
}

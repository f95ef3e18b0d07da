/*
 * train_cmd.c — `plexus train`, `eval`, `predict` and `plan`: thin clients of
 * the model API in abi/plexus.h, plus the argument helpers every command
 * file shares (cli.h).
 *
 *   plexus train MODEL.json [--epochs N] [--data DIR] [--out FILE] [--resume FILE]
 *                [--backend NAMES] [--json] [--metrics FILE] [--check-numerics]
 *                [--max-steps N] [--limit-train N] [--limit-test N]
 *   plexus eval CHECKPOINT [--data DIR] [--limit N] [--backend NAMES] [--json]
 *   plexus predict CHECKPOINT INPUT... [--top K] [--index I] [--count N] [--backend NAMES] [--json]
 *   plexus plan MODEL [--inference] [--explain] [--backend NAMES] [--json]
 *
 * Wherever a checkpoint is expected a model file works too (it starts with
 * '{'), and the other way round for plan: a model file's weights are its
 * seeded initial values (or its "init_from" file).
 *
 * train: a live progress line on stderr when it is a terminal, else one line
 * per epoch; --json prints the result as the last line of stdout (NaN as
 * null). The first SIGINT stops after the current step, writes --out and
 * exits 130; a second one kills at once.
 *
 * predict inputs: binary PGM (P5) and PPM (P6, planar [3, H, W]) images of
 * 8 or 16 bits, and unsigned-byte IDX files (gzip'd or not; records
 * --index I to I + --count N - 1). Pixels are scaled to [0, 1] as the data
 * pipeline does, then normalized as the model's training data was
 * (plx_model_info_get: the model file's mean/std, or the training set's
 * statistics a checkpoint records). An input whose shape differs from
 * the model's input (leading 1s aside; any shape of as many values for a
 * flat input) is an error naming the file and both shapes.
 */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cli.h"

const char cli_train_usage[] =
    "train MODEL.json [--epochs N] [--data DIR] [--out FILE] [--resume FILE] [--backend NAMES]\n"
    "        [--json] [--metrics FILE] [--check-numerics] [--max-steps N] [--limit-train N] [--limit-test N]\n"
    "        [--calibrate]";
const char cli_eval_usage[] = "eval CHECKPOINT [--data DIR] [--limit N] [--backend NAMES] [--json]";
const char cli_predict_usage[] =
    "predict CHECKPOINT INPUT... [--top K] [--index I] [--count N] [--backend NAMES] [--json]";
const char cli_plan_usage[] =
    "plan MODEL.json|CHECKPOINT [--inference] [--explain] [--calibrate] [--backend NAMES] [--json]";

/* ---- shared helpers ------------------------------------------------------- */

int cli_parse_int(const char *cmd, const char *flag, const char *text, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = text[0] == '\0' ? 0 : strtoll(text, &end, 10);
    if (text[0] == '\0' || end == NULL || *end != '\0' || errno == ERANGE || v < lo || v > hi) {
        fprintf(stderr, "plexus %s: %s expects an integer from %lld to %lld, got '%s'\n", cmd, flag, (long long)lo,
                (long long)hi, text);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

int cli_option(const char *cmd, int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '\0') {
        if (value == NULL)
            return 1;
        if (*i + 1 >= argc) {
            fprintf(stderr, "plexus %s: %s needs a value\n", cmd, name);
            return -1;
        }
        *value = argv[++*i];
        return 1;
    }
    if (arg[n] == '=' && value != NULL) {
        *value = arg + n + 1;
        return 1;
    }
    return 0;
}

int cli_open_context(const char *cmd, const char *backends, int calibrate, plx_context **ctx)
{
    plx_context_options opts;
    plx_context_options_init(&opts);
    opts.backends = backends != NULL && backends[0] != '\0' ? backends : NULL;
    opts.calibrate = calibrate;
    plx_status st = plx_context_open(&opts, ctx);
    if (st != PLX_OK) {
        cli_report(cmd, NULL, st);
        return -1;
    }
    plx_cost_cache_info info = {.struct_size = sizeof info};
    if (calibrate && (plx_cost_cache_info_get(*ctx, &info) != PLX_OK || info.path == NULL)) {
        fprintf(stderr, "plexus %s: --calibrate needs a calibration cache file (PLEXUS_COST_CACHE is 'none', "
                        "or neither XDG_CACHE_HOME nor HOME is set)\n", cmd);
        plx_context_close(*ctx);
        *ctx = NULL;
        return -1;
    }
    return 0;
}

int cli_save_calibration(const char *cmd, plx_context *ctx, plx_cost_cache_info *info)
{
    info->struct_size = (uint32_t)sizeof *info;
    plx_status st = plx_cost_cache_info_get(ctx, info);
    if (st == PLX_OK)
        st = plx_cost_cache_save(ctx);
    if (st != PLX_OK) {
        cli_report(cmd, ctx, st);
        return -1;
    }
    return 0;
}

void cli_report(const char *cmd, const plx_context *ctx, plx_status status)
{
    const char *msg = plx_last_error(ctx);
    fprintf(stderr, "plexus %s: %s\n", cmd, msg != NULL && msg[0] != '\0' ? msg : plx_status_text(status));
}

/* Writes what calibration measured to the cache file; says so on stderr. */
static int save_calibration(const char *cmd, plx_context *ctx)
{
    plx_cost_cache_info info;
    if (cli_save_calibration(cmd, ctx, &info))
        return -1;
    fprintf(stderr, "plexus %s: calibration: %lld kernel times measured, %lld reused; saved to %s\n", cmd,
            (long long)info.measured, (long long)info.loaded, info.path);
    return 0;
}

/* As cli_report, making sure the message names `path`. */
static void report_about(const char *cmd, const plx_context *ctx, plx_status status, const char *path)
{
    const char *msg = plx_last_error(ctx);
    if (msg == NULL || msg[0] == '\0')
        msg = plx_status_text(status);
    if (strstr(msg, path) != NULL)
        fprintf(stderr, "plexus %s: %s\n", cmd, msg);
    else
        fprintf(stderr, "plexus %s: %s: %s\n", cmd, path, msg);
}

static int usage_error(const char *synopsis)
{
    fprintf(stderr, "usage: plexus %s\n", synopsis);
    return CLI_USAGE;
}

static int unknown_option(const char *cmd, const char *arg, const char *synopsis)
{
    fprintf(stderr, "plexus %s: unknown option '%s'\n", cmd, arg);
    return usage_error(synopsis);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_json_number(cJSON *obj, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(obj, key, v);
    else
        cJSON_AddNullToObject(obj, key);
}

int cli_print_json(cJSON *obj)
{
    char *text = obj != NULL ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (text == NULL) {
        fprintf(stderr, "plexus: out of memory\n");
        return -1;
    }
    puts(text);
    free(text);
    fflush(stdout);
    return 0;
}

/* 1 if the file's first non-blank byte is '{' (a JSON model file), 0 if not
 * (a checkpoint), -1 if it cannot be read (the runtime then says why). */
static int looks_like_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    int c;
    do
        c = fgetc(f);
    while (c == ' ' || c == '\t' || c == '\n' || c == '\r');
    fclose(f);
    return c == '{';
}

/* A model from a JSON model file or from a checkpoint. */
static int load_any(const char *cmd, plx_context *ctx, const char *path, plx_model **model)
{
    plx_status st =
        looks_like_json(path) == 1 ? plx_model_load(ctx, path, model) : plx_model_load_checkpoint(ctx, path, model);
    if (st != PLX_OK) {
        report_about(cmd, ctx, st, path);
        return -1;
    }
    return 0;
}

/* A context on `backends` and the model at `path` (as load_any); on error
 * says why and leaves nothing open. */
static int open_context_and_model(const char *cmd, const char *backends, int calibrate, const char *path,
                                  plx_context **ctx, plx_model **model)
{
    *model = NULL;
    if (cli_open_context(cmd, backends, calibrate, ctx))
        return -1;
    if (load_any(cmd, *ctx, path, model)) {
        plx_context_close(*ctx);
        return -1;
    }
    return 0;
}

static const char *format_bytes(char *buf, size_t cap, double bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 4) {
        bytes /= 1024.0;
        u++;
    }
    snprintf(buf, cap, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
    return buf;
}

/* ---- train ------------------------------------------------------------------ */

/* Set by the SIGINT handler, polled by plx_model_train between steps. */
static volatile int train_interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    train_interrupted = 1;
}

typedef struct progress_view {
    int tty;        /* stderr is a terminal: redraw one line */
    int columns;    /* terminal width */
    int line_shown; /* a progress line is on screen */
    double last_draw;
    double epoch_start;
} progress_view;

static const char *format_duration(char *buf, size_t cap, double seconds)
{
    if (!isfinite(seconds) || seconds < 0)
        seconds = 0;
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, cap, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

static void clear_progress_line(progress_view *v)
{
    if (v->tty && v->line_shown) {
        fputs("\r\033[K", stderr);
        v->line_shown = 0;
    }
}

static void draw_progress(progress_view *v, const plx_train_progress *p)
{
    double frac = p->steps_per_epoch > 0 ? (double)p->step / (double)p->steps_per_epoch : 0.0;
    frac = frac > 1 ? 1 : frac < 0 ? 0 : frac;
    char eta[32], rate[32], head[64], tail[160], bar[40], line[256];
    if (p->examples_per_second >= 1e4)
        snprintf(rate, sizeof rate, "%.0fk", p->examples_per_second / 1e3);
    else
        snprintf(rate, sizeof rate, "%.0f", p->examples_per_second);
    snprintf(head, sizeof head, "epoch %d/%d step %lld/%lld ", (int)p->epoch, (int)p->epochs, (long long)p->step,
             (long long)p->steps_per_epoch);
    snprintf(tail, sizeof tail, " %3d%% ETA %s loss %.4f acc %.1f%% %s ex/s", (int)(frac * 100),
             format_duration(eta, sizeof eta, p->eta_seconds), p->loss, p->accuracy * 100, rate);
    /* The bar takes what the terminal leaves, within [8, 30] columns. */
    int width = v->columns - 1 - (int)strlen(head) - (int)strlen(tail) - 2;
    width = width > 30 ? 30 : width < 8 ? 8 : width;
    int filled = (int)(frac * width);
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '=' : (i == filled ? '>' : ' ');
    bar[width] = '\0';
    int n = snprintf(line, sizeof line, "%s[%s]%s", head, bar, tail);
    /* A line wider than the terminal would wrap and defeat the redraw. */
    if (n > 0 && v->columns > 1 && n >= v->columns)
        line[v->columns - 1] = '\0';
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    v->line_shown = 1;
}

static void on_progress(void *user, const plx_train_progress *p)
{
    progress_view *v = user;
    double now = now_seconds();
    if (v->epoch_start == 0)
        v->epoch_start = now;
    if (!p->epoch_done) {
        if (v->tty && (now - v->last_draw >= 0.1 || p->step == p->steps_per_epoch)) {
            draw_progress(v, p);
            v->last_draw = now;
        }
        return;
    }
    clear_progress_line(v);
    char val[96] = "";
    if (isfinite(p->val_loss))
        snprintf(val, sizeof val, " val_loss %.4f val_accuracy %.4f", p->val_loss, p->val_accuracy);
    fprintf(stderr, "epoch %d/%d: loss %.4f accuracy %.4f%s %.2f s\n", (int)p->epoch, (int)p->epochs, p->loss,
            p->accuracy, val, now - v->epoch_start);
    fflush(stderr);
    v->epoch_start = now;
}

int cmd_train(int argc, char **argv)
{
    const char *C = "train";
    const char *model_path = NULL, *backends = NULL, *v = NULL;
    int json = 0, calibrate = 0;
    plx_train_options opts;
    memset(&opts, 0, sizeof opts);
    opts.struct_size = (uint32_t)sizeof opts;
    int options_done = 0;
    for (int i = 0; i < argc; i++) {
        int r;
        int64_t n;
        if (options_done || argv[i][0] != '-' || argv[i][1] == '\0') {
            if (model_path != NULL) {
                fprintf(stderr, "plexus train: one model file expected, got '%s' too\n", argv[i]);
                return usage_error(cli_train_usage);
            }
            model_path = argv[i];
            continue;
        }
        if (strcmp(argv[i], "--") == 0) {
            options_done = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--calibrate") == 0) {
            calibrate = 1;
        } else if (strcmp(argv[i], "--check-numerics") == 0) {
            opts.check_numerics = 1;
        } else if ((r = cli_option(C, argc, argv, &i, "--epochs", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--epochs", v, 1, 1000000, &n))
                return usage_error(cli_train_usage);
            opts.epochs = (int32_t)n;
        } else if ((r = cli_option(C, argc, argv, &i, "--max-steps", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--max-steps", v, 1, INT64_MAX, &n))
                return usage_error(cli_train_usage);
            opts.max_steps = n;
        } else if ((r = cli_option(C, argc, argv, &i, "--limit-train", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--limit-train", v, 1, INT64_MAX, &n))
                return usage_error(cli_train_usage);
            opts.limit_train = n;
        } else if ((r = cli_option(C, argc, argv, &i, "--limit-test", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--limit-test", v, 1, INT64_MAX, &n))
                return usage_error(cli_train_usage);
            opts.limit_test = n;
        } else if ((r = cli_option(C, argc, argv, &i, "--data", &opts.data_dir)) != 0) {
            if (r < 0)
                return usage_error(cli_train_usage);
        } else if ((r = cli_option(C, argc, argv, &i, "--out", &opts.out_path)) != 0) {
            if (r < 0)
                return usage_error(cli_train_usage);
        } else if ((r = cli_option(C, argc, argv, &i, "--resume", &opts.resume_path)) != 0) {
            if (r < 0)
                return usage_error(cli_train_usage);
        } else if ((r = cli_option(C, argc, argv, &i, "--metrics", &opts.metrics_path)) != 0) {
            if (r < 0)
                return usage_error(cli_train_usage);
        } else if ((r = cli_option(C, argc, argv, &i, "--backend", &backends)) != 0) {
            if (r < 0)
                return usage_error(cli_train_usage);
        } else {
            return unknown_option(C, argv[i], cli_train_usage);
        }
    }
    if (model_path == NULL) {
        fprintf(stderr, "plexus train: no model file given\n");
        return usage_error(cli_train_usage);
    }
    const char *empty = opts.data_dir != NULL && opts.data_dir[0] == '\0'           ? "--data"
                        : opts.out_path != NULL && opts.out_path[0] == '\0'         ? "--out"
                        : opts.resume_path != NULL && opts.resume_path[0] == '\0'   ? "--resume"
                        : opts.metrics_path != NULL && opts.metrics_path[0] == '\0' ? "--metrics"
                                                                                    : NULL;
    if (empty != NULL) {
        fprintf(stderr, "plexus train: %s needs a non-empty value\n", empty);
        return usage_error(cli_train_usage);
    }

    /* The checkpoint is first written after an epoch: find out now, not
     * then, that it cannot be. */
    if (opts.out_path != NULL) {
        char out_dir[4096];
        const char *slash = strrchr(opts.out_path, '/');
        if (slash == NULL)
            snprintf(out_dir, sizeof out_dir, ".");
        else
            snprintf(out_dir, sizeof out_dir, "%.*s", slash == opts.out_path ? 1 : (int)(slash - opts.out_path),
                     opts.out_path);
        if (access(out_dir, W_OK | X_OK) != 0) {
            fprintf(stderr, "plexus train: --out %s: cannot write in %s: %s\n", opts.out_path, out_dir,
                    strerror(errno));
            return CLI_ERROR;
        }
    }

    plx_context *ctx;
    plx_model *model;
    if (open_context_and_model(C, backends, calibrate, model_path, &ctx, &model))
        return CLI_ERROR;

    progress_view view = {.tty = isatty(STDERR_FILENO), .columns = 80};
    struct winsize ws;
    if (view.tty && ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        view.columns = ws.ws_col;
    opts.progress = on_progress;
    opts.progress_user = &view;
    opts.interrupt = &train_interrupted;

    /* The first Ctrl-C asks for a clean stop after the current step; a
     * second one (the handler resets) ends the process at once. */
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND;
    train_interrupted = 0;
    sigaction(SIGINT, &sa, &old_sa);

    plx_train_result res;
    memset(&res, 0, sizeof res);
    res.struct_size = (uint32_t)sizeof res;
    plx_status st = plx_model_train(model, &opts, &res);
    sigaction(SIGINT, &old_sa, NULL);
    clear_progress_line(&view);
    int interrupted = st == PLX_UNAVAILABLE && train_interrupted;
    /* The runtime writes --out at epoch ends and on stops; a resumed run
     * that has nothing left to do writes nothing. */
    int wrote = opts.out_path != NULL && (res.steps > 0 || res.epochs > 0);
    int rc = CLI_OK;
    if (st != PLX_OK && !interrupted) {
        cli_report(C, ctx, st);
        rc = CLI_ERROR;
    } else if (calibrate && save_calibration(C, ctx)) {
        rc = CLI_ERROR;
    } else if (interrupted) {
        if (wrote)
            fprintf(stderr, "interrupted; checkpoint written to %s\n", opts.out_path);
        else
            fprintf(stderr, "interrupted; no checkpoint written%s\n", opts.out_path == NULL ? " (no --out)" : "");
        rc = CLI_INTERRUPTED;
    }
    if (rc != CLI_ERROR) {
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cli_json_number(o, "test_accuracy", res.test_accuracy);
            cli_json_number(o, "test_loss", res.test_loss);
            cJSON_AddNumberToObject(o, "epochs", res.epochs);
            cJSON_AddNumberToObject(o, "steps", (double)res.steps);
            cli_json_number(o, "seconds_per_epoch", res.seconds_per_epoch);
            cli_json_number(o, "examples_per_second", res.examples_per_second);
            cJSON_AddNumberToObject(o, "peak_memory_bytes", (double)res.peak_memory_bytes);
            cli_json_number(o, "best_val_accuracy", res.best_val_accuracy);
            cJSON_AddBoolToObject(o, "stopped_early", res.stopped_early != 0);
            cJSON_AddBoolToObject(o, "interrupted", interrupted);
            if (wrote)
                cJSON_AddStringToObject(o, "checkpoint", opts.out_path);
            else
                cJSON_AddNullToObject(o, "checkpoint");
            if (cli_print_json(o))
                rc = CLI_ERROR;
        } else {
            char mem[32];
            if (isfinite(res.test_accuracy))
                printf("test accuracy %.4f, test loss %.4f\n", res.test_accuracy, res.test_loss);
            else if (!interrupted)
                printf("no test set evaluated\n");
            printf("%d epoch%s, %lld steps, %.3f s per epoch, %.0f examples/s, peak memory %s\n", (int)res.epochs,
                   res.epochs == 1 ? "" : "s", (long long)res.steps,
                   isfinite(res.seconds_per_epoch) ? res.seconds_per_epoch : 0.0, res.examples_per_second,
                   format_bytes(mem, sizeof mem, (double)res.peak_memory_bytes));
            if (isfinite(res.best_val_accuracy))
                printf("best validation accuracy %.4f\n", res.best_val_accuracy);
            if (res.stopped_early)
                printf("stopped early; the best weights were restored\n");
            if (wrote && !interrupted)
                printf("checkpoint written to %s\n", opts.out_path);
            else if (opts.out_path != NULL && !wrote)
                printf("no step was run (the run had already reached its epochs); %s was not written\n", opts.out_path);
        }
    }
    plx_model_free(model);
    plx_context_close(ctx);
    return rc;
}

/* ---- eval ------------------------------------------------------------------- */

static void print_confusion(const int64_t *confusion, int32_t classes)
{
    int64_t most = 0;
    for (int64_t i = 0; i < (int64_t)classes * classes; i++)
        most = confusion[i] > most ? confusion[i] : most;
    int width = snprintf(NULL, 0, "%lld", (long long)most);
    int label_width = snprintf(NULL, 0, "%d", (int)(classes - 1));
    width = width > label_width ? width : label_width;
    int row_label = label_width > 4 ? label_width : 4;
    printf("confusion matrix (rows: true class, columns: predicted class)\n");
    printf("%*s ", row_label, "");
    for (int32_t c = 0; c < classes; c++)
        printf(" %*d", width, (int)c);
    printf("  recall\n");
    for (int32_t r = 0; r < classes; r++) {
        int64_t total = 0;
        for (int32_t c = 0; c < classes; c++)
            total += confusion[(int64_t)r * classes + c];
        printf("%*d:", row_label, (int)r);
        for (int32_t c = 0; c < classes; c++)
            printf(" %*lld", width, (long long)confusion[(int64_t)r * classes + c]);
        if (total > 0)
            printf("  %.4f\n", (double)confusion[(int64_t)r * classes + r] / (double)total);
        else
            printf("  -\n");
    }
}

int cmd_eval(int argc, char **argv)
{
    const char *C = "eval";
    const char *path = NULL, *data_dir = NULL, *backends = NULL, *v = NULL;
    int64_t limit = 0;
    int json = 0, options_done = 0;
    for (int i = 0; i < argc; i++) {
        int r;
        if (options_done || argv[i][0] != '-' || argv[i][1] == '\0') {
            if (path != NULL) {
                fprintf(stderr, "plexus eval: one checkpoint expected, got '%s' too\n", argv[i]);
                return usage_error(cli_eval_usage);
            }
            path = argv[i];
        } else if (strcmp(argv[i], "--") == 0) {
            options_done = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if ((r = cli_option(C, argc, argv, &i, "--limit", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--limit", v, 1, INT64_MAX, &limit))
                return usage_error(cli_eval_usage);
        } else if ((r = cli_option(C, argc, argv, &i, "--data", &data_dir)) != 0) {
            if (r < 0)
                return usage_error(cli_eval_usage);
        } else if ((r = cli_option(C, argc, argv, &i, "--backend", &backends)) != 0) {
            if (r < 0)
                return usage_error(cli_eval_usage);
        } else {
            return unknown_option(C, argv[i], cli_eval_usage);
        }
    }
    if (path == NULL) {
        fprintf(stderr, "plexus eval: no checkpoint given\n");
        return usage_error(cli_eval_usage);
    }
    plx_context *ctx;
    plx_model *model;
    if (open_context_and_model(C, backends, 0, path, &ctx, &model))
        return CLI_ERROR;
    plx_eval_result res;
    memset(&res, 0, sizeof res);
    res.struct_size = (uint32_t)sizeof res;
    plx_status st = plx_model_evaluate(model, data_dir, limit, &res);
    int rc = CLI_OK;
    if (st != PLX_OK) {
        cli_report(C, ctx, st);
        rc = CLI_ERROR;
    } else if (json) {
        cJSON *o = cJSON_CreateObject();
        cli_json_number(o, "accuracy", res.accuracy);
        cli_json_number(o, "loss", res.loss);
        cli_json_number(o, "top5_accuracy", res.top5_accuracy);
        cJSON_AddNumberToObject(o, "examples", (double)res.examples);
        cJSON_AddNumberToObject(o, "classes", res.classes);
        cJSON *rows = cJSON_AddArrayToObject(o, "confusion");
        for (int32_t r = 0; r < res.classes && res.confusion != NULL; r++) {
            cJSON *row = cJSON_CreateArray();
            for (int32_t c = 0; c < res.classes; c++)
                cJSON_AddItemToArray(row, cJSON_CreateNumber((double)res.confusion[(int64_t)r * res.classes + c]));
            cJSON_AddItemToArray(rows, row);
        }
        if (cli_print_json(o))
            rc = CLI_ERROR;
    } else {
        printf("%s: %lld examples, %d classes\n", path, (long long)res.examples, (int)res.classes);
        printf("accuracy  %.4f\n", res.accuracy);
        printf("loss      %.4f\n", res.loss);
        if (isfinite(res.top5_accuracy))
            printf("top-5     %.4f\n", res.top5_accuracy);
        else
            printf("top-5     n/a (fewer than 6 classes)\n");
        if (res.confusion != NULL && res.classes > 0)
            print_confusion(res.confusion, res.classes);
    }
    plx_model_free(model);
    plx_context_close(ctx);
    return rc;
}

/* ---- predict: reading the model file and the inputs --------------------------- */

/* What predict needs of the model: the input shape, the class count and the
 * normalization its training data got. */
typedef struct model_facts {
    int32_t ndim;
    int64_t shape[PLX_MAX_DIMS];
    int64_t numel;
    int64_t classes;
    int32_t n_norm; /* 0: no normalization */
    double mean[16], std[16];
} model_facts;

static char *read_whole_file(const char *path, size_t max_bytes, size_t *len, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, cap, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t used = 0, room = 4096;
    char *buf = malloc(room + 1);
    while (buf != NULL) {
        size_t n = fread(buf + used, 1, room - used, f);
        used += n;
        if (used < room)
            break;
        if (room >= max_bytes) {
            snprintf(err, cap, "%s: larger than %zu bytes", path, max_bytes);
            free(buf);
            buf = NULL;
            break;
        }
        room = room * 2 > max_bytes ? max_bytes : room * 2;
        char *grown = realloc(buf, room + 1);
        if (grown == NULL) {
            free(buf);
            buf = NULL;
            snprintf(err, cap, "out of memory");
        }
        buf = grown;
    }
    if (buf != NULL && ferror(f)) {
        snprintf(err, cap, "%s: read error: %s", path, strerror(errno));
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf != NULL) {
        buf[used] = '\0';
        *len = used;
    }
    return buf;
}

static int model_facts_of(const plx_model *model, model_facts *mf, char *err, size_t cap)
{
    memset(mf, 0, sizeof *mf);
    plx_model_info info = {.struct_size = sizeof info};
    if (plx_model_info_get(model, &info) != PLX_OK) {
        snprintf(err, cap, "cannot read the model's input shape");
        return -1;
    }
    mf->ndim = info.input_ndim;
    mf->numel = 1;
    for (int32_t d = 0; d < info.input_ndim; d++) {
        mf->shape[d] = info.input_shape[d];
        mf->numel *= info.input_shape[d];
    }
    mf->classes = info.classes;
    if (info.norm_channels >= 1 && info.norm_channels <= 16 && mf->numel % info.norm_channels == 0) {
        mf->n_norm = info.norm_channels;
        for (int32_t c = 0; c < info.norm_channels; c++) {
            mf->mean[c] = info.norm_mean[c];
            mf->std[c] = info.norm_std[c] > 0 ? info.norm_std[c] : 1.0;
        }
    }
    return 0;
}

/* Samples read from the inputs, one after another. */
typedef struct sample_set {
    float *values;      /* n * per */
    const char **files; /* borrowed from argv */
    int64_t *index;     /* IDX record index, -1 for images */
    int64_t n, cap, per;
} sample_set;

static void sample_set_free(sample_set *s)
{
    free(s->values);
    free(s->files);
    free(s->index);
    memset(s, 0, sizeof *s);
}

/* Room for one more sample; returns its values (per floats) or NULL. */
static float *sample_add(sample_set *s, const char *file, int64_t index)
{
    if (s->n == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 16;
        float *values = realloc(s->values, sizeof(float) * (size_t)(cap * s->per));
        if (values == NULL)
            return NULL;
        s->values = values;
        const char **files = realloc(s->files, sizeof(char *) * (size_t)cap);
        if (files == NULL)
            return NULL;
        s->files = files;
        int64_t *idx = realloc(s->index, sizeof(int64_t) * (size_t)cap);
        if (idx == NULL)
            return NULL;
        s->index = idx;
        s->cap = cap;
    }
    s->files[s->n] = file;
    s->index[s->n] = index;
    return s->values + s->n++ * s->per;
}

static const char *format_shape(char *buf, size_t cap, const int64_t *dims, int32_t ndim)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, cap, "[");
    for (int32_t d = 0; d < ndim && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", d ? ", " : "", (long long)dims[d]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}

/* An input of shape `dims` fits the model when both agree once leading 1s
 * are dropped, or when the model takes a flat vector of as many values. */
static int check_fits(const char *what, const int64_t *dims, int32_t ndim, const model_facts *mf)
{
    int64_t numel = 1;
    for (int32_t d = 0; d < ndim; d++)
        numel *= dims[d];
    int32_t a = 0, b = 0;
    while (a < ndim - 1 && dims[a] == 1)
        a++;
    while (b < mf->ndim - 1 && mf->shape[b] == 1)
        b++;
    int fits = ndim - a == mf->ndim - b;
    for (int32_t k = 0; fits && a + k < ndim; k++)
        fits = dims[a + k] == mf->shape[b + k];
    if (!fits && mf->ndim - b == 1)
        fits = numel == mf->numel;
    if (fits)
        return 0;
    char got[128], want[128];
    fprintf(stderr, "plexus predict: %s: the input is %s (%lld values), but the model's input is %s (%lld values)\n",
            what, format_shape(got, sizeof got, dims, ndim), (long long)numel,
            format_shape(want, sizeof want, mf->shape, mf->ndim), (long long)mf->numel);
    return -1;
}

static void normalize_sample(float *x, const model_facts *mf)
{
    if (mf->n_norm == 0)
        return;
    int64_t inner = mf->numel / mf->n_norm;
    for (int32_t c = 0; c < mf->n_norm; c++)
        for (int64_t k = 0; k < inner; k++)
            x[c * inner + k] = (float)((x[c * inner + k] - mf->mean[c]) / mf->std[c]);
}

/* Binary PGM (P5, one channel) or PPM (P6, three channels, stored planar as
 * the model's [C, H, W]); 8- or 16-bit; values scaled to [0, 1]. */
static int read_pnm(const char *path, const model_facts *mf, sample_set *out)
{
    char err[1200];
    size_t len = 0;
    unsigned char *data = (unsigned char *)read_whole_file(path, (size_t)1 << 30, &len, err, sizeof err);
    if (data == NULL) {
        fprintf(stderr, "plexus predict: %s\n", err);
        return -1;
    }
    int channels = data[1] == '6' ? 3 : 1;
    size_t at = 2;
    long long fields[3];
    int ok = 1;
    for (int k = 0; k < 3 && ok; k++) {
        for (;;) {
            while (at < len && (data[at] == ' ' || data[at] == '\t' || data[at] == '\n' || data[at] == '\r'))
                at++;
            if (at < len && data[at] == '#') {
                while (at < len && data[at] != '\n')
                    at++;
                continue;
            }
            break;
        }
        long long v = 0;
        size_t start = at;
        while (at < len && data[at] >= '0' && data[at] <= '9' && v <= 1000000)
            v = v * 10 + (data[at++] - '0');
        ok = at > start && v >= 1 && v <= (k == 2 ? 65535 : 1000000);
        fields[k] = v;
    }
    /* Exactly one whitespace byte separates the header from the pixels. */
    ok = ok && at < len && (data[at] == ' ' || data[at] == '\t' || data[at] == '\n' || data[at] == '\r');
    if (!ok) {
        fprintf(stderr, "plexus predict: %s: bad P%c header (expected width, height and maxval from 1 to 65535)\n",
                path, channels == 3 ? '6' : '5');
        free(data);
        return -1;
    }
    at++;
    int64_t w = fields[0], h = fields[1], maxval = fields[2];
    int bytes = maxval > 255 ? 2 : 1;
    int64_t dims[3] = {channels, h, w};
    if (check_fits(path, dims, 3, mf)) {
        free(data);
        return -1;
    }
    int64_t count = channels * h * w;
    if ((uint64_t)(len - at) < (uint64_t)count * (uint64_t)bytes) {
        fprintf(stderr, "plexus predict: %s: truncated: %lld bytes of pixels expected, %zu found\n", path,
                (long long)count * bytes, len - at);
        free(data);
        return -1;
    }
    float *x = sample_add(out, path, -1);
    if (x == NULL) {
        fprintf(stderr, "plexus predict: out of memory\n");
        free(data);
        return -1;
    }
    const unsigned char *px = data + at;
    for (int64_t y = 0; y < h; y++)
        for (int64_t xx = 0; xx < w; xx++)
            for (int c = 0; c < channels; c++) {
                int64_t src = (y * w + xx) * channels + c;
                unsigned v = bytes == 2 ? (unsigned)px[2 * src] << 8 | px[2 * src + 1] : px[src];
                x[(int64_t)c * h * w + y * w + xx] = (float)v / (float)maxval;
            }
    normalize_sample(x, mf);
    free(data);
    return 0;
}

/* Unsigned-byte IDX images (gzip'd or not), records [first, first + count),
 * scaled to [0, 1] as the data pipeline does. */
static int read_idx(const char *path, int64_t first, int64_t count, const model_facts *mf, sample_set *out)
{
    gzFile f = gzopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "plexus predict: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    unsigned char head[4 + 4 * 8];
    unsigned char *record = NULL;
    if (gzread(f, head, 4) != 4 || head[0] != 0 || head[1] != 0) {
        fprintf(stderr, "plexus predict: %s: not an IDX file (bad magic)\n", path);
        goto done;
    }
    int ndim = head[3];
    if (head[2] != 0x08 || ndim < 2 || ndim > 5) {
        fprintf(stderr,
                "plexus predict: %s: IDX type 0x%02x with %d dimensions; predict reads unsigned-byte images "
                "(type 0x08, [N, ...] with at least 2 dimensions)\n",
                path, head[2], ndim);
        goto done;
    }
    if (gzread(f, head + 4, (unsigned)(4 * ndim)) != 4 * ndim) {
        fprintf(stderr, "plexus predict: %s: truncated IDX header\n", path);
        goto done;
    }
    int64_t dims[5], per = 1;
    for (int d = 0; d < ndim; d++) {
        const unsigned char *b = head + 4 + 4 * d;
        dims[d] = (int64_t)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
        if (d > 0) {
            if (dims[d] == 0 || dims[d] > (1 << 24) || (per *= dims[d]) > ((int64_t)1 << 28)) {
                fprintf(stderr, "plexus predict: %s: bad IDX dimension %d (%lld)\n", path, d, (long long)dims[d]);
                goto done;
            }
        }
    }
    if (first >= dims[0] || count > dims[0] - first) {
        fprintf(stderr, "plexus predict: %s: has %lld records; --index %lld --count %lld is out of range\n", path,
                (long long)dims[0], (long long)first, (long long)count);
        goto done;
    }
    if (check_fits(path, dims + 1, ndim - 1, mf))
        goto done;
    record = malloc((size_t)per);
    if (record == NULL) {
        fprintf(stderr, "plexus predict: out of memory\n");
        goto done;
    }
    if (gzseek(f, (z_off_t)(4 + 4 * ndim) + (z_off_t)(first * per), SEEK_SET) < 0) {
        fprintf(stderr, "plexus predict: %s: truncated before record %lld\n", path, (long long)first);
        goto done;
    }
    for (int64_t r = 0; r < count; r++) {
        if (gzread(f, record, (unsigned)per) != (int)per) {
            fprintf(stderr, "plexus predict: %s: truncated in record %lld\n", path, (long long)(first + r));
            goto done;
        }
        float *x = sample_add(out, path, first + r);
        if (x == NULL) {
            fprintf(stderr, "plexus predict: out of memory\n");
            goto done;
        }
        for (int64_t k = 0; k < per; k++)
            x[k] = (float)record[k] / 255.0f;
        normalize_sample(x, mf);
    }
    rc = 0;
done:
    free(record);
    gzclose(f);
    return rc;
}

static int read_input(const char *path, int64_t first, int64_t count, const model_facts *mf, sample_set *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "plexus predict: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    unsigned char magic[2] = {0, 0};
    size_t n = fread(magic, 1, 2, f);
    fclose(f);
    if (n == 2 && magic[0] == 'P' && (magic[1] == '5' || magic[1] == '6'))
        return read_pnm(path, mf, out);
    if (n == 2 && ((magic[0] == 0x1f && magic[1] == 0x8b) || (magic[0] == 0 && magic[1] == 0)))
        return read_idx(path, first, count, mf, out);
    fprintf(stderr, "plexus predict: %s: not a binary PGM (P5), PPM (P6) or IDX image file\n", path);
    return -1;
}

/* ---- predict ------------------------------------------------------------------- */

int cmd_predict(int argc, char **argv)
{
    const char *C = "predict";
    const char *path = NULL, *backends = NULL, *v = NULL;
    int64_t top = 5, first = 0, count = 1;
    int json = 0, options_done = 0, n_inputs = 0;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    if (inputs == NULL)
        return CLI_ERROR;
    for (int i = 0; i < argc; i++) {
        int r;
        if (options_done || argv[i][0] != '-' || argv[i][1] == '\0') {
            if (path == NULL)
                path = argv[i];
            else
                inputs[n_inputs++] = argv[i];
        } else if (strcmp(argv[i], "--") == 0) {
            options_done = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if ((r = cli_option(C, argc, argv, &i, "--top", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--top", v, 1, 1 << 20, &top))
                goto usage;
        } else if ((r = cli_option(C, argc, argv, &i, "--index", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--index", v, 0, UINT32_MAX, &first))
                goto usage;
        } else if ((r = cli_option(C, argc, argv, &i, "--count", &v)) != 0) {
            if (r < 0 || cli_parse_int(C, "--count", v, 1, UINT32_MAX, &count))
                goto usage;
        } else if ((r = cli_option(C, argc, argv, &i, "--backend", &backends)) != 0) {
            if (r < 0)
                goto usage;
        } else {
            fprintf(stderr, "plexus predict: unknown option '%s'\n", argv[i]);
            goto usage;
        }
    }
    if (path == NULL || n_inputs == 0) {
        fprintf(stderr, "plexus predict: %s\n", path == NULL ? "no checkpoint given" : "no input given");
        goto usage;
    }

    plx_context *ctx;
    plx_model *model;
    if (open_context_and_model(C, backends, 0, path, &ctx, &model)) {
        free(inputs);
        return CLI_ERROR;
    }
    int rc = CLI_ERROR;
    plx_tensor *x = NULL, *probs = NULL;
    sample_set samples = {0};
    int64_t *order = NULL;
    model_facts mf;
    char err[1200];
    if (model_facts_of(model, &mf, err, sizeof err)) {
        fprintf(stderr, "plexus predict: %s: %s\n", path, err);
        goto out;
    }
    samples.per = mf.numel;
    for (int i = 0; i < n_inputs; i++)
        if (read_input(inputs[i], first, count, &mf, &samples))
            goto out;
    int64_t dims[PLX_MAX_DIMS];
    dims[0] = samples.n;
    for (int32_t d = 0; d < mf.ndim; d++)
        dims[d + 1] = mf.shape[d];
    plx_status st = plx_tensor_create(ctx, PLX_F32, mf.ndim + 1, dims, &x);
    if (st == PLX_OK) {
        memcpy(plx_tensor_data(x), samples.values, sizeof(float) * (size_t)(samples.n * samples.per));
        st = plx_model_predict(model, x, &probs);
    }
    if (st != PLX_OK) {
        cli_report(C, ctx, st);
        goto out;
    }
    const plx_tensor_desc *pd = plx_tensor_desc_get(probs);
    int64_t classes = pd->ndim == 2 ? pd->shape[1] : 0;
    if (pd->ndim != 2 || pd->shape[0] != samples.n || classes < 1) {
        fprintf(stderr, "plexus predict: the runtime returned probabilities of an unexpected shape\n");
        goto out;
    }
    if (top > classes)
        top = classes;
    order = malloc(sizeof(int64_t) * (size_t)classes);
    if (order == NULL)
        goto out;
    const float *p = plx_tensor_data(probs);
    cJSON *root = json ? cJSON_CreateObject() : NULL;
    cJSON *list = json ? cJSON_AddArrayToObject(root, "predictions") : NULL;
    for (int64_t s = 0; s < samples.n; s++) {
        const float *row = p + s * classes;
        /* Top-K by selection: K is small; ties keep the lower class first. */
        for (int64_t c = 0; c < classes; c++)
            order[c] = c;
        for (int64_t k = 0; k < top; k++) {
            int64_t best = k;
            for (int64_t c = k + 1; c < classes; c++)
                if (row[order[c]] > row[order[best]] || (row[order[c]] == row[order[best]] && order[c] < order[best]))
                    best = c;
            int64_t t = order[k];
            order[k] = order[best];
            order[best] = t;
        }
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "input", samples.files[s]);
            if (samples.index[s] >= 0)
                cJSON_AddNumberToObject(o, "index", (double)samples.index[s]);
            cJSON_AddNumberToObject(o, "class", (double)order[0]);
            cJSON *tops = cJSON_AddArrayToObject(o, "top");
            for (int64_t k = 0; k < top; k++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddNumberToObject(e, "class", (double)order[k]);
                cJSON_AddNumberToObject(e, "probability", (double)row[order[k]]);
                cJSON_AddItemToArray(tops, e);
            }
            cJSON_AddItemToArray(list, o);
        } else {
            if (samples.index[s] >= 0)
                printf("%s[%lld]:", samples.files[s], (long long)samples.index[s]);
            else
                printf("%s:", samples.files[s]);
            for (int64_t k = 0; k < top; k++)
                printf("%s %lld (%.2f%%)", k ? "," : "", (long long)order[k], (double)row[order[k]] * 100.0);
            printf("\n");
        }
    }
    rc = CLI_OK;
    if (json && cli_print_json(root))
        rc = CLI_ERROR;
out:
    free(order);
    sample_set_free(&samples);
    plx_tensor_free(x);
    plx_tensor_free(probs);
    plx_model_free(model);
    plx_context_close(ctx);
    free(inputs);
    return rc;
usage:
    free(inputs);
    return usage_error(cli_predict_usage);
}

/* ---- plan ---------------------------------------------------------------------- */

typedef struct plan_sink {
    cJSON *lines; /* NULL: print */
} plan_sink;

static void emit_plan_line(void *user, const char *line)
{
    plan_sink *sink = user;
    if (sink->lines == NULL) {
        puts(line);
        return;
    }
    /* One JSON string per text line (explanations span several). */
    const char *start = line;
    for (;;) {
        const char *nl = strchr(start, '\n');
        size_t n = nl != NULL ? (size_t)(nl - start) : strlen(start);
        char *piece = malloc(n + 1);
        if (piece == NULL)
            return;
        memcpy(piece, start, n);
        piece[n] = '\0';
        if (n > 0 || nl == NULL)
            cJSON_AddItemToArray(sink->lines, cJSON_CreateString(piece));
        free(piece);
        if (nl == NULL || nl[1] == '\0')
            break;
        start = nl + 1;
    }
}

int cmd_plan(int argc, char **argv)
{
    const char *C = "plan";
    const char *path = NULL, *backends = NULL;
    int json = 0, inference = 0, explain = 0, calibrate = 0, options_done = 0;
    for (int i = 0; i < argc; i++) {
        int r;
        if (options_done || argv[i][0] != '-' || argv[i][1] == '\0') {
            if (path != NULL) {
                fprintf(stderr, "plexus plan: one model file expected, got '%s' too\n", argv[i]);
                return usage_error(cli_plan_usage);
            }
            path = argv[i];
        } else if (strcmp(argv[i], "--") == 0) {
            options_done = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--inference") == 0) {
            inference = 1;
        } else if (strcmp(argv[i], "--explain") == 0) {
            explain = 1;
        } else if (strcmp(argv[i], "--calibrate") == 0) {
            calibrate = 1;
        } else if ((r = cli_option(C, argc, argv, &i, "--backend", &backends)) != 0) {
            if (r < 0)
                return usage_error(cli_plan_usage);
        } else {
            return unknown_option(C, argv[i], cli_plan_usage);
        }
    }
    if (path == NULL) {
        fprintf(stderr, "plexus plan: no model file given\n");
        return usage_error(cli_plan_usage);
    }
    plx_context *ctx;
    plx_model *model;
    if (open_context_and_model(C, backends, calibrate, path, &ctx, &model))
        return CLI_ERROR;
    plan_sink sink = {.lines = NULL};
    cJSON *root = NULL;
    if (json) {
        root = cJSON_CreateObject();
        sink.lines = cJSON_AddArrayToObject(root, "lines");
    }
    plx_status st = plx_model_plan(model, !inference, explain, emit_plan_line, &sink);
    int rc = CLI_OK;
    if (st != PLX_OK) {
        fflush(stdout);
        cli_report(C, ctx, st);
        cJSON_Delete(root);
        rc = CLI_ERROR;
    } else if (json && cli_print_json(root)) {
        rc = CLI_ERROR;
    }
    if (rc == CLI_OK && calibrate && save_calibration(C, ctx))
        rc = CLI_ERROR;
    plx_model_free(model);
    plx_context_close(ctx);
    return rc;
}

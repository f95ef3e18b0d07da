/*
 * cli.h — what the command files of the plexus CLI share. Every command is
 * a thin client of abi/plexus.h: it parses its arguments, calls the public
 * API and prints. Exit codes: 0 success, 1 an error (the message names the
 * file or value at fault), 2 bad arguments (the command's usage follows),
 * 130 interrupted by SIGINT.
 */
#ifndef PLEXUS_CLI_H
#define PLEXUS_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "../../abi/plexus.h"

enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2, CLI_INTERRUPTED = 130 };

/* Commands: argv holds the arguments after the command name. */
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* One-line synopses of the commands above, for plexus's usage text. */
extern const char cli_train_usage[], cli_eval_usage[], cli_predict_usage[], cli_plan_usage[], cli_plot_usage[];
extern const char cli_bench_usage[];

/* Parses all of `text` as a base-10 integer in [lo, hi]. On failure prints
 * "plexus CMD: FLAG expects an integer from lo to hi, got 'text'" to stderr
 * and returns -1; 0 on success. */
int cli_parse_int(const char *cmd, const char *flag, const char *text, int64_t lo, int64_t hi, int64_t *out);

/* Matches argv[*i] against "--name" or "--name=value". For an option that
 * takes a value (`value` non-NULL), the value is "=value" or the next
 * argument (then *i advances); a missing value prints an error and returns
 * -1. Returns 1 on a match, 0 when argv[*i] is another argument. */
int cli_option(const char *cmd, int argc, char **argv, int *i, const char *name, const char **value);

/* Opens a context ranked/restricted to `backends` (NULL or "": PLEXUS_BACKENDS
 * or all); with `calibrate`, timing candidate backends (--calibrate), which
 * needs a calibration cache file to save to. Prints the error and returns -1
 * on failure (nothing left open). */
int cli_open_context(const char *cmd, const char *backends, int calibrate, plx_context **ctx);

/* Saves what calibration measured (plx_cost_cache_save) and fills *info
 * with the counts and the path; prints the error and returns -1 on failure. */
int cli_save_calibration(const char *cmd, plx_context *ctx, plx_cost_cache_info *info);

/* JSON output (cJSON). NaN and infinity, which JSON lacks, become null. */
struct cJSON;
void cli_json_number(struct cJSON *obj, const char *key, double v);
/* Prints obj as one line on stdout and frees it; -1 (message on stderr)
 * when out of memory. */
int cli_print_json(struct cJSON *obj);

/* "plexus CMD: <plx_last_error(ctx)>" (or the status text when the message
 * is empty) on stderr. */
void cli_report(const char *cmd, const plx_context *ctx, plx_status status);

/* Replaces `path` with `size` bytes of `data` atomically (temp file in the
 * same directory, fsync, rename: readers see the old file or the whole new
 * one). On failure prints "plexus CMD: <path and reason>" and returns -1. */
int cli_write_file_atomic(const char *cmd, const char *path, const void *data, size_t size);

#endif

/*
 * cli_harness.h — header-only harness for tests that run the freshly built
 * `plexus` CLI as a user does (test_cli_train.c, test_cli_bench.c): a
 * temporary directory under the build directory that every command runs
 * in, each command's stdout and stderr captured separately, the JSON the
 * CLI prints parsed, and tiny IDX data sets written there.
 *
 * It gives the including file (one test program each, so plain names):
 *   dir                   the test directory, made by cli_dir_setup
 *   out_text, err_text    stdout and stderr of the last run / run_env
 *   run, run_env          run the CLI there; the exit status (a crash fails)
 *   EXPECT_STDOUT/STDERR  fail unless the captured text contains a needle
 *   path_in_dir, write_file, write_text, read_file, file_exists
 *   json_*, last_json_line  cJSON, looked up with dlsym: the test binary
 *                         does not link cJSON, and uses the copy
 *                         libplexus.so loads (libcjson.so.1 otherwise)
 *   write_idx_files       an IDX image file and its label file
 *
 * Every test fails through cmocka (fail_msg, assert_*), never exits.
 */
#ifndef PLX_TEST_CLI_HARNESS_H
#define PLX_TEST_CLI_HARNESS_H

#include <cJSON.h>
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../test_util.h"

#define CLI PLX_TEST_BUILD_DIR "/plexus"

static char dir[1024];
static char out_text[1 << 18], err_text[1 << 16];

/* ---- the test directory ------------------------------------------------------ */

/* For a group setup: a clean environment for the CLI (no plugin path,
 * backend list, strict mode or log level from the caller; two threads) and
 * a fresh directory named prefix + six random characters. 0, or -1 when the
 * directory cannot be made. */
static inline int cli_dir_setup(const char *prefix)
{
    unsetenv("PLEXUS_PLUGIN_PATH");
    unsetenv("PLEXUS_BACKENDS");
    unsetenv("PLEXUS_STRICT");
    unsetenv("PLEXUS_LOG_LEVEL");
    setenv("PLEXUS_NUM_THREADS", "2", 1);
    return tu_make_temp_dir(dir, sizeof dir, prefix);
}

/* The group teardown: removes the directory unless PLX_KEEP_TEST_DIR is set. */
static inline int cli_dir_teardown(void **state)
{
    (void)state;
    if (getenv("PLX_KEEP_TEST_DIR") == NULL)
        tu_remove_dir(dir);
    return 0;
}

/* ---- cJSON through dlsym ------------------------------------------------------ */

static cJSON *(*json_parse)(const char *);
static void (*json_delete)(cJSON *);
static cJSON *(*json_get)(const cJSON *, const char *);

static inline void load_cjson(void)
{
    if (json_parse != NULL)
        return;
    /* RTLD_DEFAULT is a null handle: check the lookup, not the handle. */
    void *h = RTLD_DEFAULT;
    if (dlsym(h, "cJSON_Parse") == NULL) {
        h = dlopen("libcjson.so.1", RTLD_NOW | RTLD_GLOBAL);
        assert_non_null(h);
    }
    *(void **)&json_parse = dlsym(h, "cJSON_Parse");
    *(void **)&json_delete = dlsym(h, "cJSON_Delete");
    *(void **)&json_get = dlsym(h, "cJSON_GetObjectItemCaseSensitive");
    assert_non_null(json_parse);
    assert_non_null(json_delete);
    assert_non_null(json_get);
}

/* Members of an array or object (0 for NULL). */
static inline int json_count(const cJSON *array)
{
    int n = 0;
    for (const cJSON *c = array != NULL ? array->child : NULL; c != NULL; c = c->next)
        n++;
    return n;
}

/* The i-th member, or NULL. */
static inline const cJSON *json_at(const cJSON *array, int i)
{
    const cJSON *c = array != NULL ? array->child : NULL;
    while (c != NULL && i-- > 0)
        c = c->next;
    return c;
}

/* obj[key]; fails the test, printing stdout, when there is none. */
static inline const cJSON *json_child(const cJSON *obj, const char *key)
{
    const cJSON *item = json_get(obj, key);
    if (item == NULL)
        fail_msg("no \"%s\" in the JSON output:\n%s", key, out_text);
    return item;
}

/* obj[key] as a number; fails the test when missing or not a number. */
static inline double json_num(const cJSON *obj, const char *key)
{
    const cJSON *item = json_child(obj, key);
    if (!(item->type & cJSON_Number))
        fail_msg("\"%s\" is not a number in the JSON output:\n%s", key, out_text);
    return item->valuedouble;
}

/* obj has key, and its value is null. */
static inline int json_is_null(const cJSON *obj, const char *key)
{
    const cJSON *item = json_get(obj, key);
    return item != NULL && (item->type & 0xff) == cJSON_NULL;
}

/* Parses the last non-empty line of the captured stdout; the caller frees
 * it with json_delete. Fails the test when it is not JSON. */
static inline cJSON *last_json_line(void)
{
    load_cjson();
    size_t n = strlen(out_text);
    while (n > 0 && out_text[n - 1] == '\n')
        n--;
    size_t start = n;
    while (start > 0 && out_text[start - 1] != '\n')
        start--;
    static char line[1 << 18];
    assert_true(n - start < sizeof line);
    memcpy(line, out_text + start, n - start);
    line[n - start] = '\0';
    cJSON *j = json_parse(line);
    if (j == NULL)
        fail_msg("the last stdout line is not JSON:\n%s\nstderr:\n%s", line, err_text);
    return j;
}

/* ---- files and running the CLI ------------------------------------------------- */

static inline void path_in_dir(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* Writes dir/name; fails the test when it cannot. */
static inline void write_file(const char *name, const void *data, size_t len)
{
    char path[4200];
    path_in_dir(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static inline void write_text(const char *name, const char *text)
{
    write_file(name, text, strlen(text));
}

/* Reads up to cap - 1 bytes of path (a full path) into buf, terminated;
 * the bytes read (0 and "" when it cannot be opened). */
static inline size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        buf[0] = '\0';
        return 0;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return n;
}

static inline int file_exists(const char *name)
{
    char path[4200];
    path_in_dir(path, sizeof path, name);
    struct stat st;
    return stat(path, &st) == 0;
}

/* Runs the CLI in the test directory with `args` (shell words) and the
 * environment assignments `env` (shell words, may be ""), stdout and stderr
 * captured separately into out_text and err_text; returns the exit status.
 * A crash fails the test. */
static inline int run_env(const char *env, const char *args)
{
    char command[16384];
    snprintf(command, sizeof command, "cd '%s' && %s '%s' %s >'%s/.stdout' 2>'%s/.stderr' </dev/null", dir, env, CLI,
             args, dir, dir);
    int status = system(command);
    char path[4200];
    path_in_dir(path, sizeof path, ".stdout");
    read_file(path, out_text, sizeof out_text);
    path_in_dir(path, sizeof path, ".stderr");
    read_file(path, err_text, sizeof err_text);
    if (status == -1 || !WIFEXITED(status))
        fail_msg("plexus %s: did not exit normally (status %d)\nstderr:\n%s", args, status, err_text);
    return WEXITSTATUS(status);
}

static inline int run(const char *args)
{
    return run_env("", args);
}

/* Fails the test unless text contains needle; `what` names the text. */
static inline void expect_in(const char *text, const char *needle, const char *what)
{
    if (strstr(text, needle) == NULL)
        fail_msg("%s does not contain\n  %s\n%s was:\n%s", what, needle, what, text);
}

#define EXPECT_STDERR(needle) expect_in(err_text, needle, "stderr")
#define EXPECT_STDOUT(needle) expect_in(out_text, needle, "stdout")

/* ---- IDX data ------------------------------------------------------------------ */

static inline void put_u32_be(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes dir/images_name (n images of side x side bytes, `pixels`) and
 * dir/labels_name (n bytes, `labels`) in the IDX format (big-endian
 * headers, magic 0x803 and 0x801). */
static inline void write_idx_files(const char *images_name, const char *labels_name, int n, int side,
                                   const unsigned char *pixels, const unsigned char *labels)
{
    size_t pixel_bytes = (size_t)n * (size_t)side * (size_t)side;
    unsigned char *images = malloc(16 + pixel_bytes), *label_file = malloc(8 + (size_t)n);
    assert_non_null(images);
    assert_non_null(label_file);
    put_u32_be(images, 0x00000803);
    put_u32_be(images + 4, (uint32_t)n);
    put_u32_be(images + 8, (uint32_t)side);
    put_u32_be(images + 12, (uint32_t)side);
    memcpy(images + 16, pixels, pixel_bytes);
    put_u32_be(label_file, 0x00000801);
    put_u32_be(label_file + 4, (uint32_t)n);
    memcpy(label_file + 8, labels, (size_t)n);
    write_file(images_name, images, 16 + pixel_bytes);
    write_file(labels_name, label_file, 8 + (size_t)n);
    free(images);
    free(label_file);
}

#endif

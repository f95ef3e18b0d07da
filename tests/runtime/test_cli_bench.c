/*
 * test_cli_bench.c — `plexus bench` as a user runs it, and the public
 * plx_model_bench under it: the freshly built CLI on the quick op suite (or
 * a filtered part of it) and on a tiny model with tiny IDX data written
 * into a temporary directory under the build directory (256 training
 * images of 8x8 random pixels). Checks the Markdown table, the --json
 * shapes (an entry per loaded backend and "auto", positive times, small
 * errors against the reference), that --svg writes a well-formed SVG, and
 * that bad arguments exit 2 with a message naming what is wrong.
 *
 * Speed is never asserted here (bench/ measures it); only that times are
 * positive and results close to the reference's. cli_harness.h runs the
 * CLI and parses the JSON it prints.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_harness.h"

enum { N_TRAIN = 256, SIDE = 8 };

/* Backends the CLI will load (the same plugin directory as tu_open's). */
static char backends[8][64];
static int n_backends;

/* A small XML check: every tag closes in order, attributes are quoted, and
 * the document is one <svg> element. Enough to catch broken output. */
static void expect_well_formed_svg(const char *name)
{
    char path[4200];
    static char svg[1 << 20];
    path_in_dir(path, sizeof path, name);
    size_t n = read_file(path, svg, sizeof svg);
    if (n == 0)
        fail_msg("%s was not written", name);
    assert_true(n < sizeof svg - 1);
    assert_true(strncmp(svg, "<svg ", 5) == 0);
    char stack[64][32];
    int depth = 0, roots = 0;
    for (const char *p = svg; *p;) {
        if (*p != '<') {
            if (depth == 0 && *p != '\n' && *p != ' ')
                fail_msg("%s: text outside the root element at offset %ld", name, (long)(p - svg));
            p++;
            continue;
        }
        const char *end = strchr(p, '>');
        if (end == NULL)
            fail_msg("%s: unterminated tag at offset %ld", name, (long)(p - svg));
        int quotes = 0;
        for (const char *q = p; q < end; q++)
            quotes += *q == '"';
        if (quotes % 2)
            fail_msg("%s: unbalanced quotes in a tag at offset %ld", name, (long)(p - svg));
        int closing = p[1] == '/', self_closing = end[-1] == '/';
        const char *tag = p + 1 + closing;
        size_t len = strcspn(tag, " />\n");
        if (len == 0 || len >= sizeof stack[0])
            fail_msg("%s: bad tag name at offset %ld", name, (long)(p - svg));
        if (closing) {
            if (depth == 0 || strncmp(stack[depth - 1], tag, len) != 0 || stack[depth - 1][len] != '\0')
                fail_msg("%s: </%.*s> does not close the open element", name, (int)len, tag);
            depth--;
        } else if (!self_closing) {
            if (depth == 0)
                roots++;
            assert_true(depth < 64);
            memcpy(stack[depth], tag, len);
            stack[depth++][len] = '\0';
        }
        p = end + 1;
    }
    if (depth != 0 || roots != 1)
        fail_msg("%s: %d elements left open, %d root elements", name, depth, roots);
}

/* ---- data and model -------------------------------------------------------------- */

/* n images of random pixels with random labels in [0, 4). */
static void write_idx(const char *images_name, const char *labels_name, int n, uint64_t *rng)
{
    unsigned char *pixels = malloc((size_t)n * SIDE * SIDE), *labels = malloc((size_t)n);
    assert_non_null(pixels);
    assert_non_null(labels);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < SIDE * SIDE; k++)
            pixels[(size_t)i * SIDE * SIDE + (size_t)k] = (unsigned char)(tu_rng_next(rng) >> 56);
        labels[i] = (unsigned char)(tu_rng_next(rng) % 4);
    }
    write_idx_files(images_name, labels_name, n, SIDE, pixels, labels);
    free(pixels);
    free(labels);
}

/* A small CNN, so that convolutions, pooling, matmul and elementwise ops
 * all appear in the step (and a backend like onednn takes some of them). */
static void write_model(void)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\n"
             "  \"name\": \"tiny_cnn\",\n"
             "  \"seed\": 3,\n"
             "  \"input\": {\"shape\": [1, 8, 8]},\n"
             "  \"classes\": 4,\n"
             "  \"layers\": [{\"type\": \"conv2d\", \"name\": \"conv\", \"filters\": 4, \"kernel\": 3,\n"
             "              \"padding\": 1},\n"
             "             {\"type\": \"relu\"}, {\"type\": \"max_pool2d\", \"kernel\": 2},\n"
             "             {\"type\": \"flatten\"}, {\"type\": \"dense\", \"name\": \"fc\", \"units\": 4}],\n"
             "  \"training\": {\n"
             "    \"loss\": \"cross_entropy\",\n"
             "    \"optimizer\": {\"type\": \"adam\", \"lr\": 0.01},\n"
             "    \"batch_size\": 32,\n"
             "    \"epochs\": 1,\n"
             "    \"data\": {\"format\": \"idx\", \"dir\": \"%s\",\n"
             "             \"train_images\": \"train-images.idx\", \"train_labels\": \"train-labels.idx\",\n"
             "             \"test_images\": \"test-images.idx\", \"test_labels\": \"test-labels.idx\",\n"
             "             \"normalize\": {\"mean\": [0.5], \"std\": [0.29]}}\n"
             "  }\n"
             "}\n",
             dir);
    write_file("model.json", text, strlen(text));
}

static int group_setup(void **state)
{
    (void)state;
    unsetenv("PLEXUS_CALIBRATE");
    setenv("PLEXUS_COST_CACHE", "none", 1);
    if (cli_dir_setup(PLX_TEST_BUILD_DIR "/cli_bench_"))
        return -1;
    uint64_t rng = 777;
    write_idx("train-images.idx", "train-labels.idx", N_TRAIN, &rng);
    write_idx("test-images.idx", "test-labels.idx", 32, &rng);
    write_model();
    plx_context *ctx = tu_open();
    for (size_t b = 0; b < plx_backend_count(ctx) && n_backends < 8; b++) {
        plx_backend_info bi = {.struct_size = sizeof bi};
        if (plx_backend_get(ctx, b, &bi) == PLX_OK)
            snprintf(backends[n_backends++], sizeof backends[0], "%s", bi.name);
    }
    plx_context_close(ctx);
    return n_backends > 0 ? 0 : -1;
}

static int is_loaded(const char *name)
{
    for (int i = 0; i < n_backends; i++)
        if (strcmp(backends[i], name) == 0)
            return 1;
    return 0;
}

/* ---- --ops ---------------------------------------------------------------------- */

static void test_ops_quick_table(void **state)
{
    (void)state;
    int rc = run("bench --ops --quick");
    if (rc != 0)
        fail_msg("exit %d\nstderr:\n%s", rc, err_text);
    EXPECT_STDOUT("| benchmark | backend | ms | rate | vs cpu_blas | max rel. error |");
    EXPECT_STDOUT("| matmul 64x784x256 (MLP layer) | cpu_blas |");
    EXPECT_STDOUT("conv2d 5x5 1->32 28x28 N64");
    EXPECT_STDOUT("max_pool2d");
    EXPECT_STDOUT("layer_norm");
    EXPECT_STDOUT("| add 1024x4096 |");
    EXPECT_STDOUT("softmax 1024x1000");
    EXPECT_STDOUT("GFLOP/s");
    EXPECT_STDOUT("GB/s");
    EXPECT_STDOUT("| auto → ");
    for (int i = 0; i < n_backends; i++) {
        char row[600];
        snprintf(row, sizeof row, "| %s |", backends[i]);
        EXPECT_STDOUT(row);
    }
}

static void test_ops_json(void **state)
{
    (void)state;
    int rc = run("bench --ops --quick --op matmul,core.softmax,pool --json");
    if (rc != 0)
        fail_msg("exit %d\nstderr:\n%s", rc, err_text);
    cJSON *j = last_json_line();
    assert_true(json_num(j, "threads") >= 1);
    const cJSON *names = json_child(j, "backends");
    assert_int_equal(json_count(names), n_backends + 1);
    const cJSON *ops = json_child(j, "ops");
    assert_int_equal(json_count(ops), 3);
    int declined = 0;
    for (const cJSON *o = ops->child; o != NULL; o = o->next) {
        const char *op = json_child(o, "op")->valuestring;
        assert_true(strcmp(op, "core.matmul") == 0 || strcmp(op, "core.softmax") == 0 ||
                    strcmp(op, "core.max_pool2d") == 0);
        const char *metric = json_child(o, "metric")->valuestring;
        assert_string_equal(metric, strcmp(op, "core.matmul") == 0 ? "GFLOP/s" : "GB/s");
        const cJSON *res = json_child(o, "results");
        assert_int_equal(json_count(res), n_backends + 1);
        for (const cJSON *r = res->child; r != NULL; r = r->next) {
            if (json_get(r, "declined") != NULL) {
                /* Only a backend restricted to itself can decline; the
                 * reference and auto always run. */
                assert_true(strcmp(r->string, "cpu_blas") != 0 && strcmp(r->string, "auto") != 0);
                assert_true(strlen(json_get(r, "declined")->valuestring) > 0);
                declined++;
                continue;
            }
            assert_true(json_num(r, "ms") > 0);
            assert_true(json_num(r, "runs") >= 2);
            assert_true(json_num(r, "rate") > 0);
            assert_true(json_num(r, "speedup") > 0);
            double err = json_num(r, "max_rel_error");
            if (!(err >= 0 && err < 1e-4))
                fail_msg("%s on %s: max relative error %g", op, r->string, err);
            const char *ran_on = json_child(r, "backend")->valuestring;
            if (strcmp(r->string, "auto") != 0)
                assert_string_equal(ran_on, r->string);
            else
                assert_true(is_loaded(ran_on));
        }
    }
    (void)declined;
    json_delete(j);
}

/* --dtype bf16: every backend gets bf16 tensors, cpu_blas (f32 only) is the
 * reference in f32 on the same values. Where no backend takes bf16 (no
 * oneDNN, or a CPU without AVX512-BF16) the rows say why. */
static void test_ops_bf16(void **state)
{
    (void)state;
    int rc = run("bench --ops --quick --op matmul,conv2d --dtype bf16 --json");
    if (rc != 0)
        fail_msg("exit %d\nstderr:\n%s", rc, err_text);
    cJSON *j = last_json_line();
    assert_string_equal(json_child(j, "dtype")->valuestring, "bf16");
    const cJSON *ops = json_child(j, "ops");
    assert_true(json_count(ops) >= 2);
    int ran_bf16 = 0;
    for (const cJSON *o = ops->child; o != NULL; o = o->next) {
        const cJSON *res = json_child(o, "results");
        for (const cJSON *r = res->child; r != NULL; r = r->next) {
            if (strcmp(r->string, "cpu_blas") == 0) {
                assert_null(json_get(r, "declined")); /* the f32 reference */
                continue;
            }
            if (json_get(r, "declined") != NULL) {
                assert_true(strlen(json_get(r, "declined")->valuestring) > 0);
                continue;
            }
            double err = json_num(r, "max_rel_error");
            if (!(err > 0 && err < 2e-2)) /* bf16 keeps 8 bits of mantissa */
                fail_msg("%s on %s in bf16: max relative error %g", json_child(o, "op")->valuestring, r->string,
                         err);
            ran_bf16++;
        }
    }
    if (ran_bf16 == 0)
        printf("note: no loaded backend takes bf16 here; the rows above only checked the declines\n");
    json_delete(j);
    assert_int_equal(run("bench --ops --dtype f64"), 2);
    EXPECT_STDERR("--dtype takes f32 or bf16, got 'f64'");
    assert_int_equal(run("bench --model model.json --dtype bf16"), 2);
    EXPECT_STDERR("--dtype applies to --ops, not --model");
}

/* A third backend that implements only core.add ("planted", a test plugin
 * that claims to be far cheaper than anything else): it runs add, declines
 * the rest with its reason, and the router picks it for add. */
static void test_ops_declined_backend(void **state)
{
    (void)state;
    char env[2048];
    struct stat st;
    snprintf(env, sizeof env, "%s/planted/libplexus-planted.so", PLX_TEST_BAD_PLUGIN_DIR);
    if (stat(env, &st) != 0)
        skip(); /* test plugins are built by `make test` */
    snprintf(env, sizeof env, "PLEXUS_PLUGIN_PATH='%s/planted'", PLX_TEST_BAD_PLUGIN_DIR);
    int rc = run_env(env, "bench --ops --quick --op add,softmax --backends planted,cpu_blas");
    if (rc != 0)
        fail_msg("exit %d\nstderr:\n%s", rc, err_text);
    EXPECT_STDOUT("|  | planted | — | — | — | — |");
    EXPECT_STDOUT("| auto → planted |");
    rc = run_env(env, "bench --ops --quick --op add,softmax --backends planted --json");
    if (rc != 0)
        fail_msg("exit %d\nstderr:\n%s", rc, err_text);
    cJSON *j = last_json_line();
    const cJSON *ops = json_child(j, "ops");
    assert_int_equal(json_count(ops), 2);
    for (const cJSON *o = ops->child; o != NULL; o = o->next) {
        const char *op = json_child(o, "op")->valuestring;
        const cJSON *planted = json_child(json_child(o, "results"), "planted");
        const cJSON *autoj = json_child(json_child(o, "results"), "auto");
        if (strcmp(op, "core.add") == 0) {
            assert_null(json_get(planted, "declined"));
            assert_true(json_num(planted, "max_rel_error") < 1e-6);
            assert_string_equal(json_child(autoj, "backend")->valuestring, "planted");
        } else {
            const char *why = json_child(planted, "declined")->valuestring;
            if (strstr(why, "core.softmax") == NULL && strstr(why, "not implement") == NULL)
                fail_msg("the reason planted declines softmax: '%s'", why);
            /* Some other backend (which one is the router's business). */
            const char *ran_on = json_child(autoj, "backend")->valuestring;
            assert_true(strcmp(ran_on, "planted") != 0 && is_loaded(ran_on));
        }
    }
    json_delete(j);
}

static void test_ops_filter_list_and_backends(void **state)
{
    (void)state;
    assert_int_equal(run("bench --ops --list"), 0);
    EXPECT_STDOUT("matmul 1024x1024x1024");
    EXPECT_STDOUT("conv2d_backward_weight");
    EXPECT_STDOUT("batch_norm");
    EXPECT_STDOUT("[quick]");
    assert_int_equal(run("bench --ops --list --op conv2d_backward"), 0);
    assert_null(strstr(out_text, "matmul"));
    EXPECT_STDOUT("conv2d_backward_data");
    /* --backends keeps the reference out of the table but still checks against it. */
    assert_int_equal(run("bench --ops --quick --op add --backends auto --json"), 0);
    cJSON *j = last_json_line();
    const cJSON *res = json_child(json_child(j, "ops")->child, "results");
    assert_int_equal(json_count(res), 1);
    assert_true(json_num(json_child(res, "auto"), "max_rel_error") < 1e-6);
    json_delete(j);
}

static void test_ops_svg(void **state)
{
    (void)state;
    char path[4200];
    path_in_dir(path, sizeof path, "ops.svg");
    unlink(path);
    int entries = tu_count_entries(dir);
    assert_int_equal(run("bench --ops --quick --op matmul,softmax --svg ops.svg"), 0);
    EXPECT_STDOUT("| benchmark |");
    expect_well_formed_svg("ops.svg");
    static char svg[1 << 20];
    read_file(path, svg, sizeof svg);
    expect_in(svg, "Speed relative to cpu_blas", "ops.svg");
    expect_in(svg, "matmul 64x784x256", "ops.svg");
    /* No temp file is left next to it. */
    assert_int_equal(tu_count_entries(dir), entries + 1);
}

/* ---- --model ------------------------------------------------------------------------- */

static void test_model_json(void **state)
{
    (void)state;
    int rc = run("bench --model model.json --steps 3 --warmup 1 --limit-train 128 --inference-batch 16 "
                 "--inference-runs 2 --json");
    if (rc != 0)
        fail_msg("exit %d\nstderr:\n%s", rc, err_text);
    cJSON *j = last_json_line();
    assert_int_equal(json_count(j), n_backends + 1);
    for (int i = 0; i <= n_backends; i++) {
        const char *name = i < n_backends ? backends[i] : "auto";
        const cJSON *e = json_get(j, name);
        if (e == NULL)
            fail_msg("no entry \"%s\" in:\n%s", name, out_text);
        if (json_get(e, "error") != NULL)
            fail_msg("%s failed: %s", name, json_get(e, "error")->valuestring);
        assert_true(json_num(e, "ms_per_step") > 0);
        assert_true(json_num(e, "examples_per_second") > 0);
        assert_true(json_num(e, "ms_per_step_min") <= json_num(e, "ms_per_step"));
        assert_true(json_num(e, "ms_per_step_min") <= json_num(e, "ms_per_step_median"));
        assert_int_equal((int)json_num(e, "batch_size"), 32);
        assert_int_equal((int)json_num(e, "steps_per_epoch"), 4); /* 128 examples, batches of 32 */
        assert_int_equal((int)json_num(e, "steps"), 3);
        assert_int_equal((int)json_num(e, "inference_batch"), 16);
        assert_true(json_num(e, "inference_images_per_second") > 0);
        assert_string_equal(json_child(e, "model")->valuestring, "tiny_cnn");
        /* Per-op shares cover the whole step. */
        const cJSON *ops = json_child(e, "train_ops");
        assert_true(json_count(ops) >= 5);
        double share = 0, nodes = 0;
        for (const cJSON *o = ops->child; o != NULL; o = o->next) {
            share += json_num(o, "share");
            nodes += json_num(o, "nodes");
            assert_true(is_loaded(json_child(o, "backend")->valuestring));
        }
        assert_true(fabs(share - 1.0) < 1e-6);
        assert_int_equal((int)nodes, (int)json_num(e, "train_nodes"));
        const char *ranking = json_child(e, "ranking")->valuestring;
        if (strcmp(name, "auto") == 0)
            assert_string_equal(ranking, "");
        else
            assert_true(strncmp(ranking, name, strlen(name)) == 0);
    }
    json_delete(j);
}

/* --calibrate times every candidate backend and saves the costs; the
 * benchmark that follows routes "auto" by them. Needs two backends to
 * have a choice to time. */
static void test_calibrate(void **state)
{
    (void)state;
    char cache[4200], env[4300];
    path_in_dir(cache, sizeof cache, "costs/cache.json");
    snprintf(env, sizeof env, "PLEXUS_COST_CACHE='%s'", cache);
    int rc = run_env(env, "bench --calibrate --model model.json --steps 2 --warmup 0 --limit-train 64 "
                          "--inference-batch 8 --inference-runs 1 --json");
    if (rc != 0)
        fail_msg("exit %d\nstderr:\n%s", rc, err_text);
    EXPECT_STDERR("plexus bench: calibrated model.json: ");
    EXPECT_STDERR(cache);
    char text[1 << 16];
    read_file(cache, text, sizeof text);
    expect_in(text, "\"format\":\t\"plexus-costs\"", cache);
    if (n_backends > 1) {
        expect_in(text, "core.conv2d(", cache);
        const char *m = strstr(err_text, "calibrated model.json: ");
        assert_non_null(m);
        assert_true(strtol(m + strlen("calibrated model.json: "), NULL, 10) > 0);
    } else
        printf("note: only %s is loaded; calibration has no choice to time\n", backends[0]);
    cJSON *j = last_json_line();
    assert_non_null(json_get(j, "auto"));
    json_delete(j);

    /* Again: everything is known, nothing is timed twice. */
    rc = run_env(env, "bench --calibrate --op matmul --quick");
    assert_int_equal(rc, 0);
    EXPECT_STDERR("calibrated the op suite: ");

    /* No cache file to write to, and arguments that make no sense. */
    assert_int_equal(run("bench --calibrate --op matmul --quick"), 1);
    EXPECT_STDERR("--calibrate needs a calibration cache file");
    assert_int_equal(run_env(env, "bench --calibrate --json"), 2);
    EXPECT_STDERR("--calibrate alone only measures");
    assert_int_equal(run_env(env, "bench --calibrate --steps 3"), 2);
    EXPECT_STDERR("--steps applies to --model");
    unlink(cache);
    path_in_dir(cache, sizeof cache, "costs");
    rmdir(cache);
}

static void test_model_table_and_svg(void **state)
{
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "bench --model model.json --steps 2 --warmup 0 --limit-train 64 "
             "--inference-batch 8 --inference-runs 1 --backends cpu_blas --svg model.svg");
    int rc = run(cmd);
    if (rc != 0)
        fail_msg("exit %d\nstderr:\n%s", rc, err_text);
    EXPECT_STDOUT("## plexus bench --model model.json (tiny_cnn): batch 32, 2 timed steps after 0 warm-up");
    EXPECT_STDOUT("| backend | ranking | ms/step | median | examples/s | vs cpu_blas |");
    EXPECT_STDOUT("| cpu_blas | cpu_blas |");
    EXPECT_STDOUT("| auto | none (router's choice) |");
    EXPECT_STDOUT("Time per training step by op");
    /* --backends cpu_blas: the reference and auto, nothing else. */
    if (is_loaded("onednn"))
        assert_null(strstr(out_text, "| onednn |"));
    expect_well_formed_svg("model.svg");
    char path[4200];
    static char svg[1 << 20];
    path_in_dir(path, sizeof path, "model.svg");
    read_file(path, svg, sizeof svg);
    expect_in(svg, "Training: examples per second", "model.svg");
    expect_in(svg, "Inference: images per second", "model.svg");
    /* Replaced in place on a second run. */
    assert_int_equal(run(cmd), 0);
    expect_well_formed_svg("model.svg");
}

/* The public API directly: option checks, the caller's op arrays and caps. */
static void test_model_bench_api(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    plx_model *model = NULL;
    char path[4200];
    path_in_dir(path, sizeof path, "model.json");
    assert_int_equal(plx_model_load(ctx, path, &model), PLX_OK);
    plx_bench_options opts;
    plx_bench_options_init(&opts);
    assert_int_equal(opts.steps, 20);
    assert_int_equal(opts.warmup_steps, 3);
    assert_int_equal((int)opts.inference_batch, 256);
    plx_bench_result res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    opts.steps = 0;
    assert_int_equal(plx_model_bench(model, &opts, &res), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(plx_last_error(ctx), "steps"));
    assert_int_equal(plx_model_bench(model, &opts, NULL), PLX_INVALID_ARGUMENT);
    assert_int_equal(plx_model_bench(NULL, &opts, &res), PLX_INVALID_ARGUMENT);

    opts.steps = 2;
    opts.warmup_steps = 0;
    opts.limit_train = 64;
    opts.inference_batch = 40;
    opts.inference_runs = 1;
    plx_bench_op_time train[3], infer[40];
    memset(train, 0xab, sizeof train);
    for (int i = 0; i < 2; i++)
        train[i].struct_size = sizeof train[0];
    for (int i = 0; i < 40; i++)
        infer[i].struct_size = sizeof infer[0];
    res.train_ops = train;
    res.train_ops_cap = 2; /* fewer than the step has: only the largest two */
    res.inference_ops = infer;
    res.inference_ops_cap = 40;
    assert_int_equal(plx_model_bench(model, &opts, &res), PLX_OK);
    assert_int_equal(res.struct_size, sizeof res);
    assert_true(res.train_ops == train && res.train_ops_cap == 2);
    assert_true(res.n_train_ops > 2);
    assert_true(train[0].ms >= train[1].ms && train[1].ms > 0);
    assert_string_equal(train[0].backend, "cpu_blas");
    assert_true(strncmp(train[0].op, "core.", 5) == 0);
    /* The third element was not written. */
    unsigned char pattern[sizeof train[2]];
    memset(pattern, 0xab, sizeof pattern);
    assert_memory_equal(&train[2], pattern, sizeof pattern);
    assert_true(res.n_inference_ops > 0 && res.n_inference_ops <= 40);
    double share = 0;
    for (int i = 0; i < res.n_inference_ops; i++)
        share += infer[i].share;
    assert_true(fabs(share - 1) < 1e-6);
    assert_int_equal(res.steps, 2);
    assert_int_equal((int)res.batch_size, 32);
    assert_int_equal((int)res.steps_per_epoch, 2);
    assert_true(res.ms_per_step > 0 && res.examples_per_second > 0);
    assert_true(res.ms_per_step_min > 0 && res.ms_per_step_min <= res.ms_per_step_median);
    assert_int_equal((int)res.inference_batch, 40);
    assert_true(res.inference_ms_per_batch > 0 && res.inference_images_per_second > 0);
    assert_true(res.train_nodes > res.inference_nodes && res.inference_nodes > 0);

    /* A shorter result struct (as from an older header) gets what fits. */
    plx_bench_result old;
    memset(&old, 0, sizeof old);
    old.struct_size = (uint32_t)offsetof(plx_bench_result, train_nodes);
    old.train_nodes = -7;
    opts.inference_batch = 0;
    assert_int_equal(plx_model_bench(model, &opts, &old), PLX_OK);
    assert_true(old.ms_per_step > 0);
    assert_int_equal(old.train_nodes, -7); /* past its size: untouched */
    assert_int_equal(old.struct_size, offsetof(plx_bench_result, train_nodes));

    /* Missing data: a clear error naming the file. */
    opts.data_dir = "/nonexistent-plexus-data";
    assert_int_equal(plx_model_bench(model, &opts, &res) != PLX_OK, 1);
    assert_non_null(strstr(plx_last_error(ctx), "/nonexistent-plexus-data/train-images.idx"));
    assert_non_null(strstr(plx_last_error(ctx), "cannot load the training data"));
    plx_model_free(model);
    plx_context_close(ctx);
}

/* ---- bad arguments ------------------------------------------------------------------- */

static void test_bad_arguments(void **state)
{
    (void)state;
    static const struct {
        const char *args, *needle;
    } cases[] = {
        {"bench", "--ops (the op suite) or --model MODEL.json"},
        {"bench --ops --model model.json", "give one of them"},
        {"bench --frobnicate", "unknown option '--frobnicate'"},
        {"bench model.json", "unexpected argument 'model.json'"},
        {"bench --model", "--model needs a value"},
        {"bench --model ''", "--model needs a model file"},
        {"bench --model model.json --steps 0", "--steps expects an integer from 1"},
        {"bench --model model.json --steps -3", "--steps expects an integer from 1"},
        {"bench --model model.json --steps x", "got 'x'"},
        {"bench --model model.json --warmup -1", "--warmup expects an integer from 0"},
        {"bench --model model.json --limit-train 0", "--limit-train expects"},
        {"bench --model model.json --inference-runs 0", "--inference-runs expects"},
        {"bench --model model.json --data ''", "--data needs a non-empty value"},
        {"bench --model model.json --quick", "--quick applies to --ops"},
        {"bench --model model.json --op matmul", "--op applies to --ops"},
        {"bench --ops --steps 3", "--steps applies to --model"},
        {"bench --ops --op nosuchop", "--op 'nosuchop' matches no benchmark"},
        {"bench --ops --op ''", "--op needs a value"},
        {"bench --ops --backends cpu_blas,nosuch", "no loaded backend is named 'nosuch'"},
        {"bench --model model.json --backends nosuch", "no loaded backend is named 'nosuch'"},
        {"bench --ops --backends ''", "--backends needs"},
        {"bench --ops --backends cpu_blas,", "ends with a comma"},
        {"bench --ops --backends", "--backends needs a value"},
        {"bench --ops --svg no/such/dir/x.svg", "cannot write in no/such/dir"},
        {"bench --ops --svg .", "--svg .: is a directory"},
        {"bench --ops --svg ''", "--svg needs a non-empty value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run(cases[i].args);
        if (rc != 2)
            fail_msg("plexus %s: exit %d, expected 2\nstderr:\n%s", cases[i].args, rc, err_text);
        EXPECT_STDERR(cases[i].needle);
        EXPECT_STDERR("usage: plexus bench");
        assert_int_equal(out_text[0], '\0');
    }
    /* Errors that are not the arguments' fault: exit 1, naming the file. */
    assert_int_equal(run("bench --model nosuch.json --steps 1"), 1);
    EXPECT_STDERR("nosuch.json");
    assert_int_equal(run("bench --model model.json --steps 1 --data ./nodata"), 1);
    EXPECT_STDERR("nodata/train-images.idx");
    EXPECT_STDERR("cannot load the training data");
    assert_int_equal(run("--help"), 0);
    EXPECT_STDOUT("bench --ops");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_quick_table),
        cmocka_unit_test(test_ops_json),
        cmocka_unit_test(test_ops_bf16),
        cmocka_unit_test(test_ops_declined_backend),
        cmocka_unit_test(test_ops_filter_list_and_backends),
        cmocka_unit_test(test_ops_svg),
        cmocka_unit_test(test_model_json),
        cmocka_unit_test(test_model_table_and_svg),
        cmocka_unit_test(test_calibrate),
        cmocka_unit_test(test_model_bench_api),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, group_setup, cli_dir_teardown);
}

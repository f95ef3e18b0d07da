/*
 * test_cli_train.c — `plexus train / eval / predict / plan / plot` as a user
 * runs them: the freshly built CLI on a tiny model and tiny IDX data
 * written into a temporary directory under the build directory (256
 * training and 64 test images of 8x8 random pixels; the label is the
 * quadrant with the largest sum, which a small MLP learns). Checks the
 * --json outputs, the metrics lines, SIGINT handling, resume, and that bad
 * inputs give the right exit status and a message naming what is wrong.
 * cli_harness.h runs the CLI and parses the JSON it prints.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli_harness.h"

enum { N_TRAIN = 256, N_TEST = 64, SIDE = 8, CLASSES = 4 };

static unsigned char test_labels[N_TEST];

/* ---- the data and the model ---------------------------------------------------- */

/* n images of random pixels, each labelled with the quadrant of largest
 * sum; the labels also go to labels_out when not NULL. */
static void write_idx(const char *images_name, const char *labels_name, int n, uint64_t *rng, unsigned char *labels_out)
{
    unsigned char *pixels = malloc((size_t)n * SIDE * SIDE), *labels = malloc((size_t)n);
    assert_non_null(pixels);
    assert_non_null(labels);
    for (int i = 0; i < n; i++) {
        unsigned char *px = pixels + (size_t)i * SIDE * SIDE;
        int sums[4] = {0, 0, 0, 0};
        for (int k = 0; k < SIDE * SIDE; k++) {
            px[k] = (unsigned char)(tu_rng_next(rng) >> 56);
            sums[(k / SIDE) / (SIDE / 2) * 2 + (k % SIDE) / (SIDE / 2)] += px[k];
        }
        int best = 0;
        for (int q = 1; q < 4; q++)
            best = sums[q] > sums[best] ? q : best;
        labels[i] = (unsigned char)best;
        if (labels_out != NULL)
            labels_out[i] = (unsigned char)best;
    }
    write_idx_files(images_name, labels_name, n, SIDE, pixels, labels);
    free(pixels);
    free(labels);
}

/* The model file; `layers` replaces the layer list when non-NULL, and
 * `classes_key` may drop the "classes" key. */
static void write_model(const char *name, const char *layers, int with_classes)
{
    char text[8192];
    snprintf(text, sizeof text,
             "{\n"
             "  \"name\": \"tiny\",\n"
             "  \"seed\": 7,\n"
             "  \"input\": {\"shape\": [1, 8, 8]},\n"
             "%s"
             "  \"layers\": %s,\n"
             "  \"training\": {\n"
             "    \"loss\": \"cross_entropy\",\n"
             "    \"optimizer\": {\"type\": \"adam\", \"lr\": 0.01},\n"
             "    \"batch_size\": 32,\n"
             "    \"epochs\": 2,\n"
             "    \"validation_split\": 0.125,\n"
             "    \"data\": {\"format\": \"idx\", \"dir\": \"%s\",\n"
             "             \"train_images\": \"train-images.idx\", \"train_labels\": \"train-labels.idx\",\n"
             "             \"test_images\": \"test-images.idx\", \"test_labels\": \"test-labels.idx\",\n"
             "             \"normalize\": {\"mean\": [0.5], \"std\": [0.29]}}\n"
             "  }\n"
             "}\n",
             with_classes ? "  \"classes\": 4,\n" : "",
             layers != NULL
                 ? layers
                 : "[{\"type\": \"flatten\"}, {\"type\": \"dense\", \"name\": \"fc1\", \"units\": 32},\n"
                   "             {\"type\": \"relu\"}, {\"type\": \"dense\", \"name\": \"fc2\", \"units\": 4}]",
             dir);
    write_text(name, text);
}

static int group_setup(void **state)
{
    (void)state;
    if (cli_dir_setup(PLX_TEST_BUILD_DIR "/cli_train_"))
        return -1;
    uint64_t rng = 12345;
    write_idx("train-images.idx", "train-labels.idx", N_TRAIN, &rng, NULL);
    write_idx("test-images.idx", "test-labels.idx", N_TEST, &rng, test_labels);
    write_model("model.json", NULL, 1);
    return 0;
}

/* The checkpoint of a 2-epoch run, trained once by whichever test needs it first. */
static double trained_test_accuracy = NAN;

static void ensure_trained(void)
{
    if (file_exists("ckpt.safetensors") && isfinite(trained_test_accuracy))
        return;
    int rc = run("train model.json --json --out ckpt.safetensors --metrics m.jsonl");
    if (rc != 0)
        fail_msg("train failed (%d):\n%s", rc, err_text);
    cJSON *j = last_json_line();
    trained_test_accuracy = json_num(j, "test_accuracy");
    json_delete(j);
}

/* ---- train ------------------------------------------------------------------- */

static void test_train_json(void **state)
{
    (void)state;
    char ckpt[4200];
    path_in_dir(ckpt, sizeof ckpt, "ckpt.safetensors");
    unlink(ckpt);
    trained_test_accuracy = NAN;
    int rc = run("train model.json --json --out ckpt.safetensors --metrics m.jsonl");
    if (rc != 0)
        fail_msg("exit %d\nstderr:\n%s", rc, err_text);
    cJSON *j = last_json_line();
    double acc = json_num(j, "test_accuracy");
    assert_true(acc >= 0 && acc <= 1);
    assert_true(json_num(j, "test_loss") > 0);
    assert_int_equal((int)json_num(j, "epochs"), 2);
    /* 256 examples, 1/8 held out for validation, batches of 32: 7 a epoch. */
    assert_int_equal((int)json_num(j, "steps"), 14);
    assert_true(json_num(j, "seconds_per_epoch") > 0);
    assert_true(json_num(j, "examples_per_second") > 0);
    assert_true(json_num(j, "peak_memory_bytes") > 0);
    double best = json_num(j, "best_val_accuracy");
    assert_true(best >= 0 && best <= 1);
    const cJSON *early = json_get(j, "stopped_early");
    assert_non_null(early);
    assert_true(early->type & cJSON_False);
    json_delete(j);
    trained_test_accuracy = acc;
    /* The model learns something (chance is 0.25). */
    if (acc < 0.35)
        fail_msg("test accuracy %.3f after 2 epochs; expected > 0.35", acc);
    assert_true(file_exists("ckpt.safetensors"));
    /* Not a terminal: one plain line per epoch, no redraws. */
    EXPECT_STDERR("epoch 1/2: loss ");
    EXPECT_STDERR("epoch 2/2: loss ");
    EXPECT_STDERR("val_accuracy");
    assert_null(strchr(err_text, '\r'));
}

static void test_train_metrics_lines(void **state)
{
    (void)state;
    ensure_trained();
    load_cjson();
    char path[4200];
    path_in_dir(path, sizeof path, "m.jsonl");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    int steps = 0, epochs = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        cJSON *j = json_parse(line);
        if (j == NULL)
            fail_msg("m.jsonl: not JSON: %s", line);
        const cJSON *type = json_get(j, "type");
        assert_non_null(type);
        if (strcmp(type->valuestring, "step") == 0) {
            steps++;
            assert_int_equal((int)json_num(j, "global_step"), steps);
            assert_true(json_num(j, "loss") > 0);
        } else {
            assert_string_equal(type->valuestring, "epoch");
            epochs++;
            assert_int_equal((int)json_num(j, "epoch"), epochs);
            double acc = json_num(j, "accuracy"), val = json_num(j, "val_accuracy");
            assert_true(json_num(j, "val_loss") > 0);
            if (!(acc >= 0 && acc <= 1 && val >= 0 && val <= 1)) {
                json_delete(j);
                fclose(f);
                fail_msg("m.jsonl: accuracy %g, val_accuracy %g are not in [0, 1]: %s", acc, val, line);
            }
        }
        json_delete(j);
    }
    fclose(f);
    assert_int_equal(steps, 14);
    assert_int_equal(epochs, 2);
}

static void test_train_text_and_limits(void **state)
{
    (void)state;
    /* 64 examples: 56 for training after the split, one batch an epoch. */
    assert_int_equal(run("train model.json --epochs 3 --limit-train 64 --limit-test 16 --check-numerics"), 0);
    EXPECT_STDOUT("test accuracy ");
    EXPECT_STDOUT("3 epochs, 3 steps");
    EXPECT_STDERR("epoch 3/3: ");
    assert_int_equal(run("train model.json --max-steps 2 --json --backend cpu_blas"), 0);
    cJSON *j = last_json_line();
    assert_int_equal((int)json_num(j, "steps"), 2);
    assert_true(json_is_null(j, "checkpoint"));
    json_delete(j);
}

static void test_train_resume(void **state)
{
    (void)state;
    ensure_trained();
    assert_int_equal(run("train model.json --max-steps 3 --out part.ckpt --json"), 0);
    assert_true(file_exists("part.ckpt"));
    assert_int_equal(run("train model.json --resume part.ckpt --out resumed.ckpt --json --metrics r.jsonl"), 0);
    cJSON *j = last_json_line();
    assert_int_equal((int)json_num(j, "steps"), 11);
    /* Resuming continues exactly: the same weights as the straight run. */
    assert_float_equal(json_num(j, "test_accuracy"), trained_test_accuracy, 1e-9);
    json_delete(j);
}

static void test_train_interrupt(void **state)
{
    (void)state;
    char out_path[4200], err_path[4200], metrics[4200];
    path_in_dir(out_path, sizeof out_path, "int.stdout");
    path_in_dir(err_path, sizeof err_path, "int.stderr");
    path_in_dir(metrics, sizeof metrics, "int.jsonl");
    unlink(metrics);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (chdir(dir) != 0 || freopen(out_path, "w", stdout) == NULL || freopen(err_path, "w", stderr) == NULL)
            _exit(99);
        execl(CLI, CLI, "train", "model.json", "--epochs", "1000000", "--out", "int.ckpt", "--metrics", "int.jsonl",
              "--json", (char *)NULL);
        _exit(98);
    }
    /* Interrupt once training runs (the metrics file has a step line). */
    struct stat st;
    int started = 0;
    for (int i = 0; i < 600 && !started; i++) {
        started = stat(metrics, &st) == 0 && st.st_size > 0;
        if (!started) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    kill(pid, SIGINT);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    read_file(err_path, err_text, sizeof err_text);
    read_file(out_path, out_text, sizeof out_text);
    if (!started)
        fail_msg("training did not start within 30 s:\n%s", err_text);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 130)
        fail_msg("expected exit 130, got status %d\nstderr:\n%s", status, err_text);
    EXPECT_STDERR("interrupted; checkpoint written to int.ckpt");
    cJSON *j = last_json_line();
    const cJSON *interrupted = json_get(j, "interrupted");
    assert_non_null(interrupted);
    assert_true(interrupted->type & cJSON_True);
    json_delete(j);
    /* The checkpoint is usable. */
    assert_int_equal(run("eval int.ckpt --json"), 0);
}

/* ---- eval -------------------------------------------------------------------- */

static void test_eval_json(void **state)
{
    (void)state;
    ensure_trained();
    assert_int_equal(run("eval ckpt.safetensors --json"), 0);
    cJSON *j = last_json_line();
    assert_float_equal(json_num(j, "accuracy"), trained_test_accuracy, 1e-9);
    assert_true(json_num(j, "loss") > 0);
    assert_true(json_is_null(j, "top5_accuracy")); /* 4 classes */
    assert_int_equal((int)json_num(j, "examples"), N_TEST);
    assert_int_equal((int)json_num(j, "classes"), CLASSES);
    const cJSON *conf = json_get(j, "confusion");
    assert_int_equal(json_count(conf), CLASSES);
    int total = 0, diagonal = 0;
    for (int r = 0; r < CLASSES; r++) {
        const cJSON *row = json_at(conf, r);
        assert_int_equal(json_count(row), CLASSES);
        for (int c = 0; c < CLASSES; c++) {
            total += (int)json_at(row, c)->valuedouble;
            diagonal += r == c ? (int)json_at(row, c)->valuedouble : 0;
        }
    }
    assert_int_equal(total, N_TEST);
    assert_float_equal((double)diagonal / N_TEST, trained_test_accuracy, 1e-9);
    json_delete(j);

    assert_int_equal(run("eval ckpt.safetensors --limit 10 --json"), 0);
    j = last_json_line();
    assert_int_equal((int)json_num(j, "examples"), 10);
    json_delete(j);
}

static void test_eval_text(void **state)
{
    (void)state;
    ensure_trained();
    assert_int_equal(run("eval ckpt.safetensors --data ."), 0);
    EXPECT_STDOUT("64 examples, 4 classes");
    EXPECT_STDOUT("accuracy ");
    EXPECT_STDOUT("top-5     n/a");
    EXPECT_STDOUT("confusion matrix");
    EXPECT_STDOUT("recall");
}

/* ---- predict ------------------------------------------------------------------ */

static void test_predict_idx_matches_eval(void **state)
{
    (void)state;
    ensure_trained();
    /* Every test record: predict applies the model's normalization, so its
     * top class agrees with evaluation. */
    assert_int_equal(run("predict ckpt.safetensors test-images.idx --index 0 --count 64 --top 4 --json"), 0);
    cJSON *j = last_json_line();
    const cJSON *preds = json_get(j, "predictions");
    assert_int_equal(json_count(preds), N_TEST);
    int correct = 0;
    for (int i = 0; i < N_TEST; i++) {
        const cJSON *p = json_at(preds, i);
        assert_int_equal((int)json_num(p, "index"), i);
        assert_string_equal(json_get(p, "input")->valuestring, "test-images.idx");
        const cJSON *top = json_get(p, "top");
        assert_int_equal(json_count(top), 4);
        double sum = 0, prev = 2;
        for (int k = 0; k < 4; k++) {
            double prob = json_num(json_at(top, k), "probability");
            assert_true(prob <= prev);
            prev = prob;
            sum += prob;
        }
        assert_float_equal(sum, 1.0, 1e-4);
        int cls = (int)json_num(p, "class");
        assert_int_equal(cls, (int)json_num(json_at(top, 0), "class"));
        correct += cls == test_labels[i];
    }
    json_delete(j);
    assert_float_equal((double)correct / N_TEST, trained_test_accuracy, 1e-9);

    assert_int_equal(run("predict ckpt.safetensors test-images.idx --index 5 --count 2 --top 2"), 0);
    EXPECT_STDOUT("test-images.idx[5]: ");
    EXPECT_STDOUT("test-images.idx[6]: ");
}

static void test_predict_pgm(void **state)
{
    (void)state;
    ensure_trained();
    unsigned char img[64 + 32];
    int head = snprintf((char *)img, 32, "P5\n# a comment\n8 8\n255\n");
    for (int k = 0; k < 64; k++)
        img[head + k] = (unsigned char)((k % 8) < 4 && k < 32 ? 250 : 10); /* top-left quadrant bright */
    write_file("digit.pgm", img, (size_t)head + 64);
    assert_int_equal(run("predict ckpt.safetensors digit.pgm --top 3"), 0);
    EXPECT_STDOUT("digit.pgm: ");
    assert_int_equal(run("predict ckpt.safetensors --json digit.pgm digit.pgm"), 0);
    cJSON *j = last_json_line();
    assert_int_equal(json_count(json_get(j, "predictions")), 2);
    const cJSON *top = json_get(json_at(json_get(j, "predictions"), 0), "top");
    assert_int_equal(json_count(top), CLASSES); /* --top 5 clamps to the classes */
    json_delete(j);

    /* A 10x10 image for an 8x8 model: the file and both sizes are named. */
    unsigned char big[100 + 16];
    head = snprintf((char *)big, 16, "P5 10 10 255\n");
    memset(big + head, 0, 100);
    write_file("big.pgm", big, (size_t)head + 100);
    assert_int_equal(run("predict ckpt.safetensors big.pgm"), 1);
    EXPECT_STDERR("big.pgm");
    EXPECT_STDERR("[1, 10, 10]");
    EXPECT_STDERR("[1, 8, 8]");
    /* Truncated pixels, not an image, a missing file. */
    write_file("short.pgm", "P5 8 8 255\n0123", 15);
    assert_int_equal(run("predict ckpt.safetensors short.pgm"), 1);
    EXPECT_STDERR("short.pgm: truncated");
    write_text("notes.txt", "hello");
    assert_int_equal(run("predict ckpt.safetensors notes.txt"), 1);
    EXPECT_STDERR("notes.txt: not a binary PGM");
    assert_int_equal(run("predict ckpt.safetensors nothere.pgm"), 1);
    EXPECT_STDERR("nothere.pgm");
    assert_int_equal(run("predict ckpt.safetensors test-images.idx --index 64"), 1);
    EXPECT_STDERR("has 64 records");
}

/* ---- plan ------------------------------------------------------------------- */

static void test_plan(void **state)
{
    (void)state;
    assert_int_equal(run("plan model.json"), 0);
    EXPECT_STDOUT("# training graph of tiny");
    EXPECT_STDOUT("cpu_blas");
    EXPECT_STDOUT("core.matmul");
    assert_int_equal(run("plan model.json --inference --json --backend cpu_blas"), 0);
    cJSON *j = last_json_line();
    const cJSON *lines = json_get(j, "lines");
    assert_true(json_count(lines) > 2);
    expect_in(json_at(lines, 0)->valuestring, "# inference graph of tiny", "the first plan line");
    json_delete(j);
    assert_int_equal(run("plan model.json --inference --explain"), 0);
    EXPECT_STDOUT("cpu_blas");
    ensure_trained();
    assert_int_equal(run("plan ckpt.safetensors --inference"), 0);
    EXPECT_STDOUT("# inference graph of tiny");
}

/* --calibrate on plan and train: every candidate of a node with a choice is
 * timed and the cache file written; a corrupt cache is reported (warning
 * naming the file) and rebuilt. */
static void test_calibrate(void **state)
{
    (void)state;
    char cache[4200], env[4400];
    path_in_dir(cache, sizeof cache, "costs.json");
    snprintf(env, sizeof env, "PLEXUS_COST_CACHE='%s'", cache);
    assert_int_equal(run_env(env, "plan model.json --calibrate"), 0);
    EXPECT_STDOUT("candidates: ");
    EXPECT_STDERR("plexus plan: calibration: ");
    EXPECT_STDERR(cache);
    char text[1 << 16];
    read_file(cache, text, sizeof text);
    expect_in(text, "plexus-costs", cache);
    write_file("costs.json", "{\"format\": \"plexus-costs\", \"vers", 31);
    assert_int_equal(run_env(env, "train model.json --max-steps 2 --limit-test 8 --calibrate --json"), 0);
    EXPECT_STDERR("calibration cache");
    EXPECT_STDERR("ignored: it is not valid JSON");
    EXPECT_STDERR("plexus train: calibration: ");
    read_file(cache, text, sizeof text);
    expect_in(text, "plexus-costs", cache);
    assert_int_equal(run_env(env, "plan model.json"), 0); /* reads it back without a warning */
    if (strstr(err_text, "ignored") != NULL)
        fail_msg("the rebuilt cache was not accepted:\n%s", err_text);
    unlink(cache);
    /* Nowhere to save: refused before any work. */
    assert_int_equal(run_env("PLEXUS_COST_CACHE=none", "train model.json --calibrate --max-steps 2"), 1);
    EXPECT_STDERR("plexus train: --calibrate needs a calibration cache file");
}

/* ---- plot ------------------------------------------------------------------- */

static void test_plot_training_metrics(void **state)
{
    (void)state;
    ensure_trained();
    char path[4200], svg[1 << 16];
    path_in_dir(path, sizeof path, "m.svg");
    unlink(path);
    assert_int_equal(run("plot m.jsonl"), 0);
    assert_true(read_file(path, svg, sizeof svg) > 0);
    expect_in(svg, "<svg", "m.svg");
    expect_in(svg, "</svg>", "m.svg");
    expect_in(svg, "loss per step", "m.svg");
    expect_in(svg, "validation accuracy", "m.svg");
}

static void test_plot_handwritten(void **state)
{
    (void)state;
    write_text("hand.jsonl",
               "{\"type\": \"step\", \"epoch\": 1, \"step\": 1, \"global_step\": 1, \"loss\": 2.3, \"lr\": 0.1}\n"
               "{\"type\": \"step\", \"epoch\": 1, \"step\": 2, \"global_step\": 2, \"loss\": null, \"lr\": 0.1}\n"
               "\n"
               "{\"type\": \"epoch\", \"epoch\": 1, \"loss\": 2.1, \"accuracy\": 0.3, \"val_loss\": null, "
               "\"val_accuracy\": null, \"seconds\": 1.5}\n"
               "{\"type\": \"step\", \"epoch\": 2, \"step\": 1, \"global_step\": 3, \"loss\": 1.2, \"lr\": 0.05}\n"
               "{\"type\": \"epoch\", \"epoch\": 2, \"loss\": 1.3, \"accuracy\": 0.6, \"val_loss\": 1.4, "
               "\"val_accuracy\": 0.55, \"seconds\": 1.4}\n");
    assert_int_equal(run("plot hand.jsonl --out 'hand plot.svg' --json"), 0);
    cJSON *j = last_json_line();
    assert_string_equal(json_get(j, "svg")->valuestring, "hand plot.svg");
    assert_int_equal((int)json_num(j, "steps"), 3);
    assert_int_equal((int)json_num(j, "epochs"), 2);
    json_delete(j);
    char path[4200], svg[1 << 16];
    path_in_dir(path, sizeof path, "hand plot.svg");
    assert_true(read_file(path, svg, sizeof svg) > 0);
    expect_in(svg, "<svg", "the SVG");
    expect_in(svg, "</svg>", "the SVG");
    expect_in(svg, "<title>hand.jsonl</title>", "the SVG");
    /* Epoch lines only: the loss panel is over epochs. */
    write_text("epochs.jsonl", "{\"type\": \"epoch\", \"epoch\": 1, \"loss\": 2.1, \"accuracy\": 0.3}\n");
    assert_int_equal(run("plot epochs.jsonl"), 0);
    assert_true(file_exists("epochs.svg"));
}

static void test_plot_malformed(void **state)
{
    (void)state;
    write_text("bad.jsonl",
               "{\"type\": \"step\", \"epoch\": 1, \"step\": 1, \"global_step\": 1, \"loss\": 2.3, \"lr\": 0.1}\n"
               "{\"type\": \"step\", \"epoch\": 1, \"step\": 2, \"global_step\": 2, \"loss\": 2.2, \"lr\": 0.1}\n"
               "{\"type\": \"step\", \"epoch\": 1, \"step\": 3, \"global_st\n");
    assert_int_equal(run("plot bad.jsonl"), 1);
    EXPECT_STDERR("bad.jsonl:3: not valid JSON");
    write_text("bad2.jsonl", "{\"type\": \"step\", \"epoch\": 1, \"step\": 1}\n");
    assert_int_equal(run("plot bad2.jsonl"), 1);
    EXPECT_STDERR("bad2.jsonl:1: \"global_step\" is missing");
    write_text("bad3.jsonl", "\n{\"type\": \"epoch\", \"epoch\": \"one\", \"loss\": 1, \"accuracy\": 0.5}\n");
    assert_int_equal(run("plot bad3.jsonl"), 1);
    EXPECT_STDERR("bad3.jsonl:2: \"epoch\" is not a number");
    write_text("bad4.jsonl", "{\"type\": \"batch\"}\n");
    assert_int_equal(run("plot bad4.jsonl"), 1);
    EXPECT_STDERR("bad4.jsonl:1: \"type\" must be \"step\" or \"epoch\", got \"batch\"");
    write_text("bad5.jsonl", "[1, 2]\n");
    assert_int_equal(run("plot bad5.jsonl"), 1);
    EXPECT_STDERR("bad5.jsonl:1: not a JSON object");
    write_text("empty.jsonl", "\n\n");
    assert_int_equal(run("plot empty.jsonl"), 1);
    EXPECT_STDERR("empty.jsonl: no step or epoch lines");
    assert_int_equal(run("plot missing.jsonl"), 1);
    EXPECT_STDERR("missing.jsonl: cannot open");
}

/* ---- bad inputs -------------------------------------------------------------- */

static void test_bad_model_files(void **state)
{
    (void)state;
    write_model("unknown_layer.json", "[{\"type\": \"flatten\"}, {\"type\": \"denseish\", \"units\": 4}]", 1);
    assert_int_equal(run("train unknown_layer.json"), 1);
    EXPECT_STDERR("unknown_layer.json");
    EXPECT_STDERR("$.layers[1]");
    EXPECT_STDERR("denseish");
    write_model("no_classes.json", NULL, 0);
    assert_int_equal(run("train no_classes.json --epochs 1"), 1);
    EXPECT_STDERR("no_classes.json");
    EXPECT_STDERR("classes");
    assert_int_equal(run("plan no_classes.json"), 1);
    EXPECT_STDERR("no_classes.json");
    write_text("broken.json", "{\"name\": \"x\",\n \"input\": {\"shape\": [1, 8, 8]}\n");
    assert_int_equal(run("train broken.json"), 1);
    EXPECT_STDERR("broken.json");
    assert_int_equal(run("train nosuch.json"), 1);
    EXPECT_STDERR("nosuch.json");
    assert_int_equal(run("train model.json --out no/such/dir/x.ckpt"), 1);
    EXPECT_STDERR("no/such/dir");
    assert_int_equal(run("train model.json --metrics no/such/dir/m.jsonl"), 1);
    EXPECT_STDERR("no/such/dir/m.jsonl");
    /* The data directory the model names is overridden by --data. */
    assert_int_equal(run("train model.json --data ./nodata --epochs 1"), 1);
    EXPECT_STDERR("nodata");
}

static void test_bad_arguments(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "train model.json --epochs abc",
        "train model.json --epochs 0",
        "train model.json --epochs 12x",
        "train model.json --epochs 99999999999999999999",
        "train model.json --epochs",
        "train model.json --max-steps -1",
        "train model.json --limit-train ''",
        "train model.json --frobnicate",
        "train model.json other.json",
        "train",
        "train model.json --out ''",
        "eval",
        "eval ckpt.safetensors --limit 0",
        "eval ckpt.safetensors --json=yes",
        "predict ckpt.safetensors",
        "predict ckpt.safetensors x.pgm --top 0",
        "predict ckpt.safetensors x.pgm --index -3",
        "plan",
        "plan model.json --training",
        "plot",
        "plot a.jsonl b.jsonl",
        "plot a.jsonl --out",
        "frobnicate",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run(cases[i]);
        if (rc != 2)
            fail_msg("plexus %s: exit %d, expected 2\nstderr:\n%s", cases[i], rc, err_text);
        EXPECT_STDERR("usage");
    }
    assert_int_equal(run("train model.json --epochs abc"), 2);
    EXPECT_STDERR("--epochs expects an integer from 1 to 1000000, got 'abc'");
    assert_int_equal(run("--help"), 0);
    EXPECT_STDOUT("train MODEL.json");
    EXPECT_STDOUT("plot METRICS.jsonl");
    /* The existing commands still work. */
    assert_int_equal(run("version"), 0);
    assert_int_equal(run("ops"), 0);
    EXPECT_STDOUT("core.matmul");
}

static void test_bad_checkpoints(void **state)
{
    (void)state;
    ensure_trained();
    assert_int_equal(run("eval no/such/ckpt.safetensors"), 1);
    EXPECT_STDERR("no/such/ckpt.safetensors");
    assert_int_equal(run("predict no/such/ckpt.safetensors x.pgm"), 1);
    EXPECT_STDERR("no/such/ckpt.safetensors");
    assert_int_equal(run("train model.json --resume no/such/ckpt.safetensors"), 1);
    EXPECT_STDERR("no/such/ckpt.safetensors");

    /* Truncated at every interesting length: errors, never crashes. */
    char path[4200];
    path_in_dir(path, sizeof path, "ckpt.safetensors");
    static char bytes[1 << 20];
    size_t n = read_file(path, bytes, sizeof bytes);
    assert_true(n > 64 && n < sizeof bytes - 1);
    size_t cuts[] = {0, 4, 8, 9, 100, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file("cut.safetensors", bytes, cuts[i]);
        int rc = run("eval cut.safetensors");
        if (rc != 1)
            fail_msg("eval of a checkpoint cut to %zu of %zu bytes: exit %d\n%s", cuts[i], n, rc, err_text);
        EXPECT_STDERR("cut.safetensors");
        assert_int_equal(run("predict cut.safetensors test-images.idx"), 1);
        assert_int_equal(run("train model.json --resume cut.safetensors"), 1);
    }
    /* A model file is not a checkpoint to resume from. */
    assert_int_equal(run("train model.json --resume model.json"), 1);
    EXPECT_STDERR("model.json");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_json),
        cmocka_unit_test(test_train_metrics_lines),
        cmocka_unit_test(test_train_text_and_limits),
        cmocka_unit_test(test_train_resume),
        cmocka_unit_test(test_train_interrupt),
        cmocka_unit_test(test_eval_json),
        cmocka_unit_test(test_eval_text),
        cmocka_unit_test(test_predict_idx_matches_eval),
        cmocka_unit_test(test_predict_pgm),
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_calibrate),
        cmocka_unit_test(test_plot_training_metrics),
        cmocka_unit_test(test_plot_handwritten),
        cmocka_unit_test(test_plot_malformed),
        cmocka_unit_test(test_bad_model_files),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_bad_checkpoints),
    };
    return cmocka_run_group_tests(tests, group_setup, cli_dir_teardown);
}

/*
 * test_embed.c — a host application end to end: train a tiny model through
 * the API and save it (plx_model_save), install Plexus into a temporary
 * prefix, build examples/embed (classify) against it with pkg-config, run
 * it on an IDX file (plain and gzip'd) and check every output line: the
 * class and probability must be what plx_model_predict gives in this
 * process for the same images, and the accuracy line must add up. Bad
 * arguments and a missing checkpoint fail with a message.
 *
 * Skipped (with the reason) when make, cc or pkg-config is not available;
 * the gzip part is skipped when gzip is.
 */
#include <sys/wait.h>

#include "example_support.h"

static ex_env env;
static char bin_dir[PATH_MAX + 32], classify[PATH_MAX + 64];

enum { N_TRAIN = 384, N_TEST = 48, FIRST = 5, COUNT = 40 };

static int teardown(void **state)
{
    (void)state;
    ex_remove_dir(&env);
    return 0;
}

/* Runs classify with args, output to out_name in the temp dir; returns its
 * exit status. */
static int run_classify(const char *args, const char *out_name)
{
    char out[PATH_MAX + 64], cmd[8 * PATH_MAX];
    ex_path(&env, out_name, out, sizeof out);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s' 2>&1", env.dir, classify, args, out);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Checks classify's output against the in-process probabilities
 * probs [COUNT, 4] of images FIRST.. and their labels. */
static void check_output(const char *out_name, const float *probs, const unsigned char *labels)
{
    char path[PATH_MAX + 64];
    ex_path(&env, out_name, path, sizeof path);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    int64_t i = 0, correct = 0;
    int saw_accuracy = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        long long image = -1, cls = -1, right = -1, total = -1;
        double p = -1, acc = -1;
        int label = -1;
        if (sscanf(line, "image %lld: class %lld p=%lf label %d", &image, &cls, &p, &label) == 4) {
            if (i >= COUNT)
                fail_msg("more lines than images: %s", line);
            const float *row = probs + i * 4;
            int64_t best = 0;
            for (int c = 1; c < 4; c++)
                if (row[c] > row[best])
                    best = c;
            if (image != FIRST + i || cls != best || fabs(p - (double)row[best]) > 2e-6 || label != labels[i])
                fail_msg("line %lld: '%s' but in-process: image %lld class %lld p=%.6f label %d", (long long)i, line,
                         (long long)(FIRST + i), (long long)best, (double)row[best], labels[i]);
            correct += best == labels[i];
            i++;
        } else if (sscanf(line, "accuracy %lf (%lld/%lld)", &acc, &right, &total) == 3) {
            assert_int_equal(right, correct);
            assert_int_equal(total, COUNT);
            assert_true(fabs(acc - (double)correct / COUNT) < 1e-4);
            saw_accuracy = 1;
        } else
            fail_msg("unexpected output line: %s", line);
    }
    fclose(f);
    assert_int_equal(i, COUNT);
    assert_true(saw_accuracy);
    print_message("  %s: %d lines match plx_model_predict (accuracy %lld/%d)\n", out_name, COUNT, (long long)correct,
                  COUNT);
}

static void test_embed_classify(void **state)
{
    (void)state;
    static const char *const tools[] = {"make", "cc", "pkg-config"};
    if (!ex_have_tools(tools, 3)) {
        skip();
        return;
    }
    ex_make_dir(&env, "test_embed");
    ex_write_dataset(&env, N_TRAIN, N_TEST);

    /* 1. Train and save through the API. The model normalizes its inputs,
     * which classify must be told (--mean/--std). */
    plx_context *ctx = ex_open(NULL);
    char data[PATH_MAX * 2], json[PATH_MAX * 4], ckpt[PATH_MAX + 64];
    ex_data_json(&env, "4", data, sizeof data);
    data[strlen(data) - 1] = '\0'; /* append to the data object */
    snprintf(json, sizeof json,
             "{\"name\": \"tiny_mlp\", \"seed\": 5, \"input\": {\"shape\": [1, 8, 8]}, \"classes\": 4, "
             "\"layers\": [{\"type\": \"flatten\"}, {\"type\": \"dense\", \"name\": \"fc1\", \"units\": 12}, "
             "{\"type\": \"relu\"}, {\"type\": \"dense\", \"name\": \"fc2\", \"units\": 4}], "
             "\"training\": {\"optimizer\": {\"type\": \"adam\", \"lr\": 0.003}, \"batch_size\": 32, \"epochs\": 2, "
             "\"data\": %s, \"normalize\": {\"mean\": [0.25], \"std\": [0.3]}}}}",
             data);
    plx_model *trained = ex_parse(ctx, json, "tiny_mlp.json");
    ex_losses losses = {0};
    ex_train(trained, ctx, &losses);
    ex_path(&env, "model.safetensors", ckpt, sizeof ckpt);
    ex_save(trained, ctx, ckpt);

    /* 2. What plx_model_predict says in this process, for the same images
     * normalized the same way, from the trained model and from the
     * checkpoint. */
    unsigned char images[N_TEST * EX_PIXELS], labels[N_TEST];
    ex_make_images(0x7e57, N_TEST, images, labels, NULL); /* as ex_write_dataset's test set */
    int64_t shape[4] = {COUNT, 1, EX_SIDE, EX_SIDE};
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 4, shape), *probs = NULL, *probs2 = NULL;
    for (int64_t i = 0; i < COUNT * EX_PIXELS; i++)
        tu_f32(x)[i] = ((float)images[FIRST * EX_PIXELS + i] / 255.0f - 0.25f) / 0.3f;
    assert_int_equal(plx_model_predict(trained, x, &probs), PLX_OK);
    plx_model *loaded = NULL;
    if (plx_model_load_checkpoint(ctx, ckpt, &loaded) != PLX_OK)
        fail_msg("plx_model_load_checkpoint: %s", plx_last_error(ctx));
    assert_int_equal(plx_model_predict(loaded, x, &probs2), PLX_OK);
    tu_assert_close(tu_f32(probs2), tu_f32(probs), COUNT * 4, 0.0f, 0.0f, "checkpoint vs trained model");

    /* 3. Build classify against the installed prefix. */
    ex_install(&env);
    ex_path(&env, "bin", bin_dir, sizeof bin_dir);
    snprintf(classify, sizeof classify, "%s/classify", bin_dir);
    ex_build_example(&env, "embed", bin_dir,
                     env.sanitize ? "CFLAGS='-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer' "
                                    "LDFLAGS=-fsanitize=address,undefined"
                                  : NULL);

    /* 4. Run it: plugins come from the prefix (next to libplexus.so). */
    unsetenv("PLEXUS_PLUGIN_PATH");
    unsetenv("PLEXUS_BACKENDS");
    char args[PATH_MAX];
    snprintf(args, sizeof args,
             "model.safetensors test-images --first %d --count %d --labels test-labels4 --mean 0.25 --std 0.3", FIRST,
             COUNT);
    int rc = run_classify(args, "out.txt");
    if (rc != 0) {
        char out[PATH_MAX + 64];
        ex_path(&env, "out.txt", out, sizeof out);
        ex_print_file(out);
        fail_msg("classify exited with %d", rc);
    }
    check_output("out.txt", tu_f32(probs), labels + FIRST);

    /* The same images gzip'd. */
    if (ex_have_tool("gzip")) {
        char cmd[2 * PATH_MAX];
        snprintf(cmd, sizeof cmd, "cd '%s' && gzip -c test-images >test-images.gz && gzip -c test-labels4 >labels.gz",
                 env.dir);
        assert_int_equal(system(cmd), 0);
        snprintf(args, sizeof args,
                 "model.safetensors test-images.gz --first %d --count %d --labels labels.gz --mean 0.25 --std 0.3",
                 FIRST, COUNT);
        assert_int_equal(run_classify(args, "out_gz.txt"), 0);
        check_output("out_gz.txt", tu_f32(probs), labels + FIRST);
    } else
        print_message("  skipping the gzip'd input: gzip is not installed\n");

    /* Errors: a missing checkpoint names it; bad arguments print usage. */
    char out[PATH_MAX + 64];
    assert_int_equal(run_classify("missing.safetensors test-images", "err.txt"), 1);
    ex_path(&env, "err.txt", out, sizeof out);
    if (!ex_file_contains(out, "missing.safetensors"))
        fail_msg("the error does not name the missing checkpoint");
    assert_int_equal(run_classify("model.safetensors", "usage.txt"), 2);
    ex_path(&env, "usage.txt", out, sizeof out);
    assert_true(ex_file_contains(out, "usage: classify"));
    assert_int_equal(run_classify("model.safetensors test-labels4", "notimages.txt"), 1);
    ex_path(&env, "notimages.txt", out, sizeof out);
    assert_true(ex_file_contains(out, "expected images"));

    plx_tensor_free(probs);
    plx_tensor_free(probs2);
    plx_tensor_free(x);
    plx_model_free(loaded);
    plx_model_free(trained);
    plx_context_close(ctx);
    ex_remove_dir(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_embed_classify, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

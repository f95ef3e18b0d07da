/*
 * test_transfer.c — transfer learning as examples/transfer does it, on tiny
 * synthetic data (8x8 images; no Fashion-MNIST needed):
 * - pretrain a small CNN (conv1, conv2, head "fc") on 4 classes for 2
 *   epochs through the API and save it;
 * - a fine-tune model with the same conv layers, a NEW head ("head2", 2
 *   classes, so freshly initialized), "training.freeze": ["conv1", "conv2"]
 *   and "init_from": {"path": ..., "partial": true}: after parsing, the conv
 *   weights are the pretrained ones; after fine-tuning on a subset they are
 *   still bit-identical, the new head changed, and the model learnt the new
 *   task;
 * - the same init_from without "partial" fails, naming the missing tensor;
 * - the fine-tuned checkpoint is self-contained: it loads (and predicts)
 *   after the pretrained file is gone (skipped, printing "KNOWN RUNTIME
 *   BUG", while plx_model_load_checkpoint re-applies the model's init_from).
 * Also checks that examples/transfer's model files parse.
 */
#include <unistd.h>

#include "example_support.h"

static ex_env env;

static int group_teardown(void **state)
{
    (void)state;
    ex_remove_dir(&env);
    return 0;
}

#define CONV_LAYERS                                                                                                    \
    "{\"type\": \"conv2d\", \"name\": \"conv1\", \"filters\": 4, \"kernel\": 3, \"padding\": 1}, "                     \
    "{\"type\": \"relu\", \"name\": \"relu1\"}, "                                                                      \
    "{\"type\": \"max_pool2d\", \"name\": \"pool1\", \"kernel\": 2}, "                                                 \
    "{\"type\": \"conv2d\", \"name\": \"conv2\", \"filters\": 8, \"kernel\": 3, \"padding\": 1}, "                     \
    "{\"type\": \"relu\", \"name\": \"relu2\"}, "                                                                      \
    "{\"type\": \"max_pool2d\", \"name\": \"pool2\", \"kernel\": 2}, "                                                 \
    "{\"type\": \"flatten\", \"name\": \"flat\"}, "

static const char *const frozen_params[] = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"};
#define N_FROZEN (sizeof frozen_params / sizeof frozen_params[0])

static void fine_tune_json(const char *pretrained, const char *partial, char *out, size_t cap)
{
    char data[PATH_MAX * 2];
    ex_data_json(&env, "2", data, sizeof data);
    snprintf(out, cap,
             "{\"name\": \"fine_tune\", \"seed\": 21, \"input\": {\"shape\": [1, 8, 8]}, \"classes\": 2, "
             "\"layers\": [" CONV_LAYERS "{\"type\": \"dense\", \"name\": \"head2\", \"units\": 2}], "
             "\"training\": {\"optimizer\": {\"type\": \"adam\", \"lr\": 0.01}, \"batch_size\": 16, \"epochs\": 2, "
             "\"freeze\": [\"conv1\", \"conv2\"], \"init_from\": {\"path\": \"%s\"%s}, \"data\": %s}}",
             pretrained, partial, data);
}

/* Fails unless tensor `name` is bit-identical in files a and b. */
static void assert_same_tensor(const char *a, const char *b, const char *name, const char *when)
{
    int64_t na = 0, nb = 0;
    float *ta = ex_tensor(a, name, &na), *tb = ex_tensor(b, name, &nb);
    assert_int_equal(na, nb);
    if (memcmp(ta, tb, sizeof(float) * (size_t)na) != 0)
        fail_msg("%s: %s differs", when, name);
    free(ta);
    free(tb);
}

static int tensors_equal(const char *a, const char *b, const char *name)
{
    int64_t na = 0, nb = 0;
    float *ta = ex_tensor(a, name, &na), *tb = ex_tensor(b, name, &nb);
    int same = na == nb && memcmp(ta, tb, sizeof(float) * (size_t)na) == 0;
    free(ta);
    free(tb);
    return same;
}

/* examples/transfer's files parse (their data is not needed for that). */
static void check_example_files(plx_context *ctx)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/examples/transfer/pretrain.json", PLX_TEST_SOURCE_DIR);
    plx_model *m = NULL;
    if (plx_model_load(ctx, path, &m) != PLX_OK)
        fail_msg("%s: %s", path, plx_last_error(ctx));
    /* fine_tune.json loads pretrained.safetensors relative to the current
     * directory: write one there from the pretrain model, as the README's
     * first command does, and load the fine-tune model from the repo root. */
    char cwd[PATH_MAX], weights[PATH_MAX + 64];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(env.dir), 0);
    ex_path(&env, "pretrained.safetensors", weights, sizeof weights);
    ex_save(m, ctx, weights);
    plx_model_free(m);
    snprintf(path, sizeof path, "%s/examples/transfer/fine_tune.json", PLX_TEST_SOURCE_DIR);
    m = NULL;
    plx_status st = plx_model_load(ctx, path, &m);
    assert_int_equal(chdir(cwd), 0);
    if (st != PLX_OK)
        fail_msg("%s: %s", path, plx_last_error(ctx));
    plx_model_free(m);
}

static void pretrain_json(char *out, size_t cap)
{
    char data[PATH_MAX * 2];
    ex_data_json(&env, "4", data, sizeof data);
    snprintf(out, cap,
             "{\"name\": \"pretrain\", \"seed\": 7, \"input\": {\"shape\": [1, 8, 8]}, \"classes\": 4, "
             "\"layers\": [" CONV_LAYERS "{\"type\": \"dense\", \"name\": \"fc\", \"units\": 4}], "
             "\"training\": {\"optimizer\": {\"type\": \"adam\", \"lr\": 0.01}, \"batch_size\": 32, \"epochs\": 2, "
             "\"data\": %s}}",
             data);
}

static int group_setup(void **state)
{
    (void)state;
    ex_make_dir(&env, "test_transfer");
    ex_write_dataset(&env, 384, 128);
    return 0;
}

static void test_transfer_freeze_and_init_from(void **state)
{
    (void)state;
    plx_context *ctx = ex_open(NULL);
    check_example_files(ctx);

    /* 1. Pretrain on 4 classes and save. */
    char json[PATH_MAX * 4];
    pretrain_json(json, sizeof json);
    plx_model *pre = ex_parse(ctx, json, "pretrain.json");
    ex_losses pre_losses = {0};
    plx_train_result pr = ex_train(pre, ctx, &pre_losses);
    print_message("  pretrain: losses %.4f %.4f, test accuracy %.3f\n", pre_losses.epoch_loss[0],
                  pre_losses.epoch_loss[1], pr.test_accuracy);
    assert_true(pre_losses.epoch_loss[1] < pre_losses.epoch_loss[0]);
    char pretrained[PATH_MAX + 64], initial[PATH_MAX + 64], tuned[PATH_MAX + 64];
    ex_path(&env, "pretrained_tiny.safetensors", pretrained, sizeof pretrained);
    ex_path(&env, "fine_tune_initial.safetensors", initial, sizeof initial);
    ex_path(&env, "fine_tuned.safetensors", tuned, sizeof tuned);
    ex_save(pre, ctx, pretrained);
    plx_model_free(pre);

    /* 2. Without "partial", the new head is missing from the file: an error
     * naming the file and the tensor. */
    fine_tune_json(pretrained, "", json, sizeof json);
    plx_model *m = NULL;
    plx_status st = plx_model_parse(ctx, json, "fine_tune.json", &m);
    assert_int_not_equal(st, PLX_OK);
    const char *msg = plx_last_error(ctx);
    print_message("  rejected as expected: %s\n", msg);
    if (strstr(msg, "'head2.weight' is missing") == NULL || strstr(msg, pretrained) == NULL ||
        strstr(msg, "partial") == NULL)
        fail_msg("the error does not name the file and the missing tensor: %s", msg);

    /* 3. With "partial": the conv layers start from the pretrained weights,
     * the head from its own initializer. */
    fine_tune_json(pretrained, ", \"partial\": true", json, sizeof json);
    m = ex_parse(ctx, json, "fine_tune.json");
    ex_save(m, ctx, initial);
    for (size_t i = 0; i < N_FROZEN; i++)
        assert_same_tensor(pretrained, initial, frozen_params[i], "after init_from");
    int64_t n = 0;
    float *absent = ex_read_tensor(pretrained, "head2.weight", &n);
    assert_null(absent);

    /* 4. Fine-tune on a subset: frozen layers stay bit-identical, the new
     * head changes and learns the new task (top half vs bottom half). */
    plx_train_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.limit_train = 160;
    ex_losses losses = {0};
    o.progress = ex_record_loss;
    o.progress_user = &losses;
    plx_train_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    st = plx_model_train(m, &o, &r);
    if (st != PLX_OK)
        fail_msg("fine-tuning: %s", plx_last_error(ctx));
    ex_save(m, ctx, tuned);
    print_message("  fine-tune: losses %.4f %.4f, test accuracy %.3f\n", losses.epoch_loss[0], losses.epoch_loss[1],
                  r.test_accuracy);
    assert_int_equal(r.steps, 2 * 10); /* 160 examples, batch 16, 2 epochs */
    for (size_t i = 0; i < N_FROZEN; i++)
        assert_same_tensor(pretrained, tuned, frozen_params[i], "after fine-tuning");
    if (tensors_equal(initial, tuned, "head2.weight") || tensors_equal(initial, tuned, "head2.bias"))
        fail_msg("the new head did not change in fine-tuning");
    if (!(r.test_accuracy > 0.8))
        fail_msg("fine-tuned test accuracy %g (2 classes)", r.test_accuracy);
    /* Frozen parameters get no optimizer state. */
    assert_null(ex_read_tensor(tuned, "optimizer.conv1.weight.exp_avg", &n));
    float *slot = ex_read_tensor(tuned, "optimizer.head2.weight.exp_avg", &n);
    if (slot == NULL)
        print_message("  note: no optimizer slot 'optimizer.head2.weight.exp_avg' in the checkpoint\n");
    free(slot);

    plx_model_free(m);
    plx_context_close(ctx);
}

/* A checkpoint of a model with init_from holds every weight, so loading it
 * (plexus eval, predict, an embedding application) must not read the
 * init_from file again: it may be gone, or moved, or a relative path from
 * another directory. */
static void test_fine_tuned_checkpoint_stands_alone(void **state)
{
    (void)state;
    plx_context *ctx = ex_open(NULL);
    char copy[PATH_MAX + 64], tuned[PATH_MAX + 64], json[PATH_MAX * 4];
    ex_path(&env, "pretrained_untrained.safetensors", copy, sizeof copy);
    ex_path(&env, "standalone.safetensors", tuned, sizeof tuned);
    /* Untrained "pretrained" weights do as well here. */
    pretrain_json(json, sizeof json);
    plx_model *pre = ex_parse(ctx, json, "pretrain.json");
    ex_save(pre, ctx, copy);
    plx_model_free(pre);
    fine_tune_json(copy, ", \"partial\": true", json, sizeof json);
    plx_model *m = ex_parse(ctx, json, "fine_tune.json");
    ex_save(m, ctx, tuned);
    int64_t shape[4] = {4, 1, EX_SIDE, EX_SIDE};
    uint64_t rng = 3;
    plx_tensor *x = tu_uniform(ctx, &rng, 4, shape, 0.0f, 1.0f), *p1 = NULL, *p2 = NULL;
    assert_int_equal(plx_model_predict(m, x, &p1), PLX_OK);
    assert_int_equal(unlink(copy), 0);
    plx_model *loaded = NULL;
    plx_status st = plx_model_load_checkpoint(ctx, tuned, &loaded);
    char error[1024];
    snprintf(error, sizeof error, "%s", st == PLX_OK ? "" : plx_last_error(ctx));
    if (st == PLX_OK) {
        assert_int_equal(plx_model_predict(loaded, x, &p2), PLX_OK);
        tu_assert_close(tu_f32(p2), tu_f32(p1), 4 * 2, 0.0f, 0.0f, "reloaded fine-tuned model");
    }
    plx_tensor_free(x);
    plx_tensor_free(p1);
    plx_tensor_free(p2);
    plx_model_free(loaded);
    plx_model_free(m);
    plx_context_close(ctx);
    if (st != PLX_OK)
        fail_msg("loading the fine-tuned checkpoint without the pretrained file: %s", error);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transfer_freeze_and_init_from),
        cmocka_unit_test(test_fine_tuned_checkpoint_stands_alone),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/*
 * Training through the public model API on small synthetic data:
 * exact resume (N + M steps == N steps, save, resume, M steps, bit for bit),
 * early stopping restoring the best weights, NaN/Inf stopping with the step
 * (and the node under check_numerics), weights written by PyTorch loading by
 * name, and bad model files named by file and JSON path.
 */
#include "../examples/example_support.h"

#include <math.h>

static const char *const checked_tensors[] = {
    "conv.weight", "conv.bias", "bn.weight", "bn.running_mean", "bn.running_var", "fc.weight", "fc.bias",
    "optimizer.conv.weight.exp_avg", "optimizer.fc.weight.exp_avg_sq",
};

/* A model touching every piece of state a resume must carry: batch-norm
 * running statistics, dropout masks, Adam slots and step, a warm-up +
 * cosine schedule, shuffling, augmentation with mixup. */
static void model_json(const ex_env *e, char *out, size_t cap)
{
    char data[8192];
    ex_data_json(e, "4", data, sizeof data);
    snprintf(out, cap,
             "{\"name\": \"resume\", \"seed\": 5, \"input\": {\"shape\": [1, 8, 8]}, \"classes\": 4,"
             " \"layers\": ["
             "  {\"type\": \"conv2d\", \"name\": \"conv\", \"filters\": 4, \"kernel\": 3, \"padding\": 1},"
             "  {\"type\": \"batch_norm\", \"name\": \"bn\"}, {\"type\": \"relu\"},"
             "  {\"type\": \"max_pool2d\", \"kernel\": 2}, {\"type\": \"flatten\"},"
             "  {\"type\": \"dropout\", \"p\": 0.3}, {\"type\": \"dense\", \"name\": \"fc\", \"units\": 4}],"
             " \"training\": {\"optimizer\": {\"type\": \"adam\", \"lr\": 0.01},"
             "  \"schedule\": [{\"type\": \"warmup\", \"steps\": 4}, {\"type\": \"cosine\", \"epochs\": 3}],"
             "  \"batch_size\": 32, \"epochs\": 3,"
             "  \"augmentation\": {\"random_crop\": 1, \"horizontal_flip\": 0.5, \"mixup\": 0.4, \"mix_prob\": 0.5},"
             "  \"data\": %s}}",
             data);
}

static plx_status train_steps(plx_context *ctx, const char *json, int64_t steps, const char *resume, const char *out)
{
    plx_model *m = ex_parse(ctx, json, "resume.json");
    plx_train_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.max_steps = steps;
    o.resume_path = resume;
    o.out_path = out;
    o.limit_test = 8;
    plx_train_result r = {.struct_size = sizeof r};
    plx_status st = plx_model_train(m, &o, &r);
    if (st != PLX_OK)
        fail_msg("train: %s", plx_last_error(ctx));
    assert_int_equal(r.steps, steps);
    plx_model_free(m);
    return st;
}

static void test_resume_is_exact(void **state)
{
    (void)state;
    ex_env e;
    ex_make_dir(&e, "resume");
    ex_write_dataset(&e, 256, 32); /* 8 steps per epoch */
    char json[16384], straight[PATH_MAX + 64], first[PATH_MAX + 64], resumed[PATH_MAX + 64];
    model_json(&e, json, sizeof json);
    ex_path(&e, "straight.safetensors", straight, sizeof straight);
    ex_path(&e, "first.safetensors", first, sizeof first);
    ex_path(&e, "resumed.safetensors", resumed, sizeof resumed);
    plx_context *ctx = ex_open(NULL);
    /* 5 + 7 steps: the resume point is inside epoch 1 and the run crosses
     * into epoch 2. */
    train_steps(ctx, json, 12, NULL, straight);
    train_steps(ctx, json, 5, NULL, first);
    train_steps(ctx, json, 7, first, resumed);
    for (size_t k = 0; k < sizeof checked_tensors / sizeof checked_tensors[0]; k++) {
        int64_t na = 0, nb = 0;
        float *a = ex_tensor(straight, checked_tensors[k], &na), *b = ex_tensor(resumed, checked_tensors[k], &nb);
        assert_int_equal(na, nb);
        if (memcmp(a, b, sizeof(float) * (size_t)na) != 0)
            fail_msg("%s differs between 12 straight steps and 5 + resumed 7", checked_tensors[k]);
        free(a);
        free(b);
    }
    /* And the resumed run really moved on from the checkpoint. */
    int64_t n1 = 0, n2 = 0;
    float *w5 = ex_tensor(first, "fc.weight", &n1), *w12 = ex_tensor(resumed, "fc.weight", &n2);
    assert_true(memcmp(w5, w12, sizeof(float) * (size_t)n1) != 0);
    free(w5);
    free(w12);
    plx_context_close(ctx);
    ex_remove_dir(&e);
}

/* patience 0 with an unreachable min_delta: epoch 1 stays the best, so
 * training stops after epoch 2 and restores exactly epoch 1's weights. */
static void test_early_stopping_restores_best(void **state)
{
    (void)state;
    ex_env e;
    ex_make_dir(&e, "early");
    ex_write_dataset(&e, 256, 32);
    char data[8192], json[16384], one[PATH_MAX + 64], stopped[PATH_MAX + 64];
    ex_data_json(&e, "4", data, sizeof data);
    const char *fmt = "{\"seed\": 3, \"input\": {\"shape\": [1, 8, 8]}, \"classes\": 4,"
                      " \"layers\": [{\"type\": \"flatten\"}, {\"type\": \"dense\", \"name\": \"fc\", \"units\": 4}],"
                      " \"training\": {\"optimizer\": {\"type\": \"sgd\", \"lr\": 0.1, \"momentum\": 0.9},"
                      "  \"batch_size\": 32, \"epochs\": %d, \"validation_split\": 0.25, %s"
                      "  \"data\": %s}}";
    ex_path(&e, "one.safetensors", one, sizeof one);
    ex_path(&e, "stopped.safetensors", stopped, sizeof stopped);
    plx_context *ctx = ex_open(NULL);
    snprintf(json, sizeof json, fmt, 1, "", data);
    plx_model *m = ex_parse(ctx, json, "one.json");
    ex_losses losses = {0};
    ex_train(m, ctx, &losses);
    ex_save(m, ctx, one);
    plx_model_free(m);
    snprintf(json, sizeof json, fmt, 6,
             "\"early_stopping\": {\"metric\": \"val_loss\", \"patience\": 0, \"min_delta\": 1e9},", data);
    m = ex_parse(ctx, json, "early.json");
    memset(&losses, 0, sizeof losses);
    plx_train_result r = ex_train(m, ctx, &losses);
    assert_int_equal(r.stopped_early, 1);
    assert_int_equal(r.epochs, 2);
    ex_save(m, ctx, stopped);
    int64_t na = 0, nb = 0;
    float *a = ex_tensor(one, "fc.weight", &na), *b = ex_tensor(stopped, "fc.weight", &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, sizeof(float) * (size_t)na);
    free(a);
    free(b);
    plx_model_free(m);
    plx_context_close(ctx);
    ex_remove_dir(&e);
}

static void test_nan_stops_with_the_step(void **state)
{
    (void)state;
    ex_env e;
    ex_make_dir(&e, "nan");
    ex_write_dataset(&e, 128, 16);
    char data[8192], json[16384];
    ex_data_json(&e, "4", data, sizeof data);
    /* A learning rate this large overflows the weights within a few steps. */
    snprintf(json, sizeof json,
             "{\"input\": {\"shape\": [1, 8, 8]}, \"classes\": 4,"
             " \"layers\": [{\"type\": \"flatten\"}, {\"type\": \"dense\", \"name\": \"fc1\", \"units\": 32},"
             "  {\"type\": \"dense\", \"name\": \"fc2\", \"units\": 4}],"
             " \"training\": {\"optimizer\": {\"type\": \"sgd\", \"lr\": 1000}, \"batch_size\": 16, \"epochs\": 5,"
             "  \"data\": %s}}",
             data);
    plx_context *ctx = ex_open(NULL);
    for (int checked = 0; checked < 2; checked++) {
        plx_model *m = ex_parse(ctx, json, "nan.json");
        plx_train_options o = {.struct_size = sizeof o, .check_numerics = checked};
        plx_train_result r = {.struct_size = sizeof r};
        assert_int_equal(plx_model_train(m, &o, &r), PLX_INVALID_ARGUMENT);
        const char *msg = plx_last_error(ctx);
        assert_non_null(strstr(msg, "training stopped at step "));
        if (checked)
            assert_non_null(strstr(msg, "produced NaN or Inf"));
        else
            assert_non_null(strstr(msg, "--check-numerics"));
        plx_model_free(m);
    }
    plx_context_close(ctx);
    ex_remove_dir(&e);
}

/* A state_dict written by PyTorch (tests/fixtures/torch_mlp/gen.py) loads
 * by name, and the model then predicts what PyTorch predicted. */
static void test_weights_from_pytorch(void **state)
{
    (void)state;
    plx_context *ctx = ex_open(NULL);
    const char *json = "{\"input\": {\"shape\": [1, 8, 8]}, \"classes\": 4, \"layers\": ["
                       " {\"type\": \"flatten\", \"name\": \"flat\"}, {\"type\": \"dense\", \"name\": \"fc1\", \"units\": 16},"
                       " {\"type\": \"tanh\", \"name\": \"act\"}, {\"type\": \"dense\", \"name\": \"fc2\", \"units\": 4}]}";
    plx_model *m = ex_parse(ctx, json, "torch_mlp.json");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/torch_mlp/mlp.safetensors", PLX_TEST_SOURCE_DIR);
    assert_int_equal(plx_model_load_weights(m, path, 0), PLX_OK);
    size_t nx = 0, np = 0;
    float *x = tu_fixture_f32("torch_mlp/input.f32", &nx), *want = tu_fixture_f32("torch_mlp/probs.f32", &np);
    assert_int_equal(nx, 5 * 64);
    plx_tensor *in = tu_from_f32(ctx, 4, (int64_t[]){5, 1, 8, 8}, x), *probs = NULL;
    assert_int_equal(plx_model_predict(m, in, &probs), PLX_OK);
    tu_assert_close(tu_f32(probs), want, (int64_t)np, 1e-5f, 1e-4f, "PyTorch MLP probabilities");
    plx_tensor_free(in);
    plx_tensor_free(probs);
    free(x);
    free(want);
    plx_model_free(m);
    /* A model whose names are not in the file: an error naming one. */
    const char *other = "{\"input\": {\"shape\": [1, 8, 8]}, \"classes\": 4, \"layers\": ["
                        " {\"type\": \"flatten\"}, {\"type\": \"dense\", \"name\": \"head\", \"units\": 4}]}";
    m = ex_parse(ctx, other, "other.json");
    assert_int_equal(plx_model_load_weights(m, path, 0), PLX_SHAPE_MISMATCH);
    assert_non_null(strstr(plx_last_error(ctx), "'head.weight' is missing"));
    assert_int_equal(plx_model_load_weights(m, path, 1), PLX_NOT_FOUND);
    plx_model_free(m);
    plx_context_close(ctx);
}


/* data.classes keeps some classes and renumbers them in the listed order. */
static void test_class_subset(void **state)
{
    (void)state;
    ex_env e;
    ex_make_dir(&e, "subset");
    ex_write_dataset(&e, 256, 64);
    char data[8192], json[16384];
    ex_data_json(&e, "4", data, sizeof data);
    data[strlen(data) - 1] = '\0'; /* reopen the data object */
    const char *fmt = "{\"seed\": 2, \"input\": {\"shape\": [1, 8, 8]}, \"classes\": %d,"
                      " \"layers\": [{\"type\": \"flatten\"}, {\"type\": \"dense\", \"name\": \"fc\", \"units\": %d}],"
                      " \"training\": {\"optimizer\": {\"type\": \"adam\", \"lr\": 0.01}, \"batch_size\": 16,"
                      " \"epochs\": 4, \"data\": %s, \"classes\": %s}}}";
    plx_context *ctx = ex_open(NULL);
    snprintf(json, sizeof json, fmt, 2, 2, data, "[3, 0]");
    plx_model *m = ex_parse(ctx, json, "subset.json");
    ex_losses losses = {0};
    plx_train_result r = ex_train(m, ctx, &losses);
    /* Quadrants 3 and 0 only: about half the test images, told apart well. */
    assert_true(r.test_accuracy > 0.9);
    plx_eval_result ev = {.struct_size = sizeof ev};
    assert_int_equal(plx_model_evaluate(m, NULL, 0, &ev), PLX_OK);
    assert_true(ev.examples > 16 && ev.examples < 48);
    assert_int_equal(ev.classes, 2);
    plx_model_free(m);
    snprintf(json, sizeof json, fmt, 2, 2, data, "[1, 2, 3]");
    assert_int_equal(plx_model_parse(ctx, json, "subset.json", &m), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(plx_last_error(ctx), "$.training.data.classes: keeps 3 classes but the model has 2"));
    snprintf(json, sizeof json, fmt, 2, 2, data, "[1, 1]");
    assert_int_equal(plx_model_parse(ctx, json, "subset.json", &m), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(plx_last_error(ctx), "listed twice"));
    plx_context_close(ctx);
    ex_remove_dir(&e);
}

typedef struct bad_case {
    const char *json;
    const char *expect;
} bad_case;

static void test_bad_model_files(void **state)
{
    (void)state;
    plx_context *ctx = ex_open(NULL);
    const bad_case cases[] = {
        {"{\"input\": {\"shape\": [4]}, \"classes\": 2, \"layers\": [{\"type\": \"frobnicate\"}]}",
         "bad.json: $.layers[0]: unknown layer type 'frobnicate'"},
        {"{\"input\": {\"shape\": [4]}, \"layers\": [{\"type\": \"dense\", \"units\": 2}]}",
         "bad.json: $: missing required key 'classes'"},
        {"{\"input\": {\"shape\": [4]}, \"classes\": 2, \"layers\": [{\"type\": \"dense\", \"units\": \"two\"}]}",
         "bad.json: $.layers[0] (dense_0).units: expected an integer"},
        {"{\"input\": {\"shape\": [4]}, \"classes\": 2, \"layers\": [{\"type\": \"dense\", \"units\": 3}]}",
         "gives f32[1,3], but the model has 2 classes"},
        {"{\"input\": {\"shape\": [1, 4, 4]}, \"classes\": 2, \"layers\": [{\"type\": \"dense\", \"units\": 2},"
         " {\"type\": \"conv2d\", \"filters\": 2, \"kernel\": 3}]}",
         "bad.json: $.layers[1]"},
        {"{\"input\": {\"shape\": [4]}, \"classes\": 2, \"layers\": [{\"type\": \"dense\", \"units\": 2}],"
         " \"training\": {\"optimizer\": {\"type\": \"adamax\"}}}",
         "bad.json: $.training.optimizer.type: unknown optimizer 'adamax'"},
        {"{\"input\": {\"shape\": [4]}, \"classes\": 2, \"layers\": [{\"type\": \"dense\", \"units\": 2}],"
         " \"training\": {\"optimizer\": {\"type\": \"sgd\", \"lr\": -1}}}",
         "bad.json: $.training.optimizer.lr: expected a number"},
        {"{\"input\": {\"shape\": [4]}, \"classes\": 2, \"layers\": [{\"type\": \"dense\", \"units\": 2}], \"extra\": 1}",
         "bad.json: $: unknown key 'extra'"},
        {"{\"input\": {\"shape\": [4]}, \"classes\": 2, \"layers\": [{\"type\": \"dense\", \"units\": 2, \"inputs\": [\"nowhere\"]}]}",
         "'nowhere' is not an earlier layer"},
        {"{\"input\": ", "bad.json:1:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        plx_model *m = NULL;
        plx_status st = plx_model_parse(ctx, cases[i].json, "bad.json", &m);
        if (st == PLX_OK)
            fail_msg("case %zu parsed", i);
        assert_null(m);
        if (strstr(plx_last_error(ctx), cases[i].expect) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, plx_last_error(ctx), cases[i].expect);
    }
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_early_stopping_restores_best),
        cmocka_unit_test(test_nan_stops_with_the_step),
        cmocka_unit_test(test_weights_from_pytorch),
        cmocka_unit_test(test_class_subset),
        cmocka_unit_test(test_bad_model_files),
    };
    return cmocka_run_group_tests_name("runtime/train", tests, NULL, NULL);
}

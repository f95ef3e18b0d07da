/*
 * test_custom_layer.c — a third-party LAYER plugin end to end: install
 * Plexus into a temporary prefix, build examples/custom_layer against the
 * INSTALLED headers through pkg-config, load it next to build/plugins, and
 * use its layer types by name in model files:
 * - the plugin exports only its entry and lists acme.swish_dense and
 *   acme.gated with their keys;
 * - examples/custom_layer/model.json builds;
 * - each layer computes what it documents (checked against a reference
 *   computed here from the parameters in a checkpoint);
 * - a model using both trains on tiny synthetic data: the loss falls, the
 *   layers' parameters ("<layer>.weight", the learned "<layer>.beta") exist
 *   and change, so their gradients came from the runtime's autodiff;
 * - config errors (an unknown key, a wrong type, a bad value) name the key.
 *
 * Skipped (with the reason) when make, cc or pkg-config is not available.
 */
#include <dlfcn.h>

#include "example_support.h"

static ex_env env;
static char plugin_dir[PATH_MAX + 32];

/* Installs Plexus and builds the example into env.dir/plugins; writes the
 * synthetic data set. Returns 0 when the test must be skipped. */
static int setup_example(void)
{
    static const char *const tools[] = {"make", "cc", "pkg-config"};
    if (!ex_have_tools(tools, 3))
        return 0;
    ex_make_dir(&env, "test_custom_layer");
    ex_install(&env);
    ex_path(&env, "plugins", plugin_dir, sizeof plugin_dir);
    ex_build_example(&env, "custom_layer", plugin_dir, NULL);
    ex_write_dataset(&env, 384, 128);
    return 1;
}

static int teardown(void **state)
{
    (void)state;
    ex_remove_dir(&env); /* also after a failure */
    return 0;
}

static plx_status try_parse(plx_context *ctx, const char *layers, plx_model **out)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"input\": {\"shape\": [1, 8, 8]}, \"classes\": 4, \"layers\": [{\"type\": \"flatten\"}, %s]}", layers);
    *out = NULL;
    return plx_model_parse(ctx, json, "bad.json", out);
}

/* A config error: parsing fails and the message contains every needle. */
static void expect_config_error(plx_context *ctx, const char *layers, const char *const *needles, size_t n)
{
    plx_model *m = NULL;
    plx_status st = try_parse(ctx, layers, &m);
    if (st == PLX_OK) {
        plx_model_free(m);
        fail_msg("accepted a bad config: %s", layers);
    }
    const char *msg = plx_last_error(ctx);
    for (size_t i = 0; i < n; i++)
        if (strstr(msg, needles[i]) == NULL)
            fail_msg("the error for %s does not name '%s': %s", layers, needles[i], msg);
    print_message("  rejected as expected: %s\n", msg);
}

static float sigmoidf_ref(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* softmax of logits[n] into p[n]. */
static void softmax_ref(const float *logits, int n, float *p)
{
    float mx = logits[0];
    for (int i = 1; i < n; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((double)(logits[i] - mx));
    for (int i = 0; i < n; i++)
        p[i] = (float)(exp((double)(logits[i] - mx)) / sum);
}

/* z[u] = x . W[u] + b[u] for x [in], W [units, in]. */
static void linear_ref(const float *x, const float *w, const float *b, int in, int units, float *z)
{
    for (int u = 0; u < units; u++) {
        double acc = b ? b[u] : 0.0;
        for (int k = 0; k < in; k++)
            acc += (double)x[k] * w[u * in + k];
        z[u] = (float)acc;
    }
}

/* The model's probabilities for a batch of images against a reference
 * computed from its checkpointed parameters by `ref` (logits of one image). */
static void check_forward(plx_context *ctx, const char *layer_json, const char *ckpt_name,
                          void (*ref)(const char *ckpt, const float *x, float *logits))
{
    char json[2048], ckpt[PATH_MAX + 64];
    snprintf(json, sizeof json,
             "{\"seed\": 11, \"input\": {\"shape\": [1, 8, 8]}, \"classes\": 4, "
             "\"layers\": [{\"type\": \"flatten\"}, %s]}",
             layer_json);
    plx_model *m = ex_parse(ctx, json, "forward.json");
    ex_path(&env, ckpt_name, ckpt, sizeof ckpt);
    ex_save(m, ctx, ckpt);

    enum { N = 5 };
    unsigned char images[N * EX_PIXELS];
    ex_make_images(99, N, images, NULL, NULL);
    int64_t shape[4] = {N, 1, EX_SIDE, EX_SIDE};
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 4, shape), *probs = NULL;
    for (int i = 0; i < N * EX_PIXELS; i++)
        tu_f32(x)[i] = (float)images[i] / 255.0f;
    plx_status st = plx_model_predict(m, x, &probs);
    if (st != PLX_OK)
        fail_msg("plx_model_predict: %s", plx_last_error(ctx));
    for (int i = 0; i < N; i++) {
        float logits[4], want[4];
        ref(ckpt, tu_f32(x) + i * EX_PIXELS, logits);
        softmax_ref(logits, 4, want);
        tu_assert_close(tu_f32(probs) + i * 4, want, 4, 1e-5f, 1e-4f, layer_json);
    }
    plx_tensor_free(probs);
    plx_tensor_free(x);
    plx_model_free(m);
}

/* acme.swish_dense with units 4 and a constant beta of 1.5. */
static void swish_ref(const char *ckpt, const float *x, float *logits)
{
    int64_t nw = 0, nb = 0;
    float *w = ex_tensor(ckpt, "swish.weight", &nw), *b = ex_tensor(ckpt, "swish.bias", &nb);
    assert_int_equal(nw, 4 * EX_PIXELS);
    assert_int_equal(nb, 4);
    /* A constant beta is not a parameter. */
    int64_t n = 0;
    float *beta = ex_read_tensor(ckpt, "swish.beta", &n);
    assert_null(beta);
    float z[4];
    linear_ref(x, w, b, EX_PIXELS, 4, z);
    for (int u = 0; u < 4; u++)
        logits[u] = z[u] * sigmoidf_ref(1.5f * z[u]);
    free(w);
    free(b);
}

/* acme.swish_dense without bias and with a learned beta (initially 0.5). */
static void swish_learned_ref(const char *ckpt, const float *x, float *logits)
{
    int64_t nw = 0, nbeta = 0;
    float *w = ex_tensor(ckpt, "swish.weight", &nw), *beta = ex_tensor(ckpt, "swish.beta", &nbeta);
    assert_int_equal(nbeta, 1);
    assert_true(beta[0] == 0.5f);
    int64_t n = 0;
    assert_null(ex_read_tensor(ckpt, "swish.bias", &n));
    float z[4];
    linear_ref(x, w, NULL, EX_PIXELS, 4, z);
    for (int u = 0; u < 4; u++)
        logits[u] = z[u] * sigmoidf_ref(beta[0] * z[u]);
    free(w);
    free(beta);
}

/* acme.gated with units 4. */
static void gated_ref(const char *ckpt, const float *x, float *logits)
{
    int64_t n = 0;
    float *vw = ex_tensor(ckpt, "glu.value_weight", &n), *vb = ex_tensor(ckpt, "glu.value_bias", &n);
    float *gw = ex_tensor(ckpt, "glu.gate_weight", &n), *gb = ex_tensor(ckpt, "glu.gate_bias", &n);
    float v[4], g[4];
    linear_ref(x, vw, vb, EX_PIXELS, 4, v);
    linear_ref(x, gw, gb, EX_PIXELS, 4, g);
    for (int u = 0; u < 4; u++)
        logits[u] = v[u] * sigmoidf_ref(g[u]);
    free(vw);
    free(vb);
    free(gw);
    free(gb);
}

static const char *const train_layers =
    "{\"type\": \"flatten\", \"name\": \"flat\"}, "
    "{\"type\": \"acme.swish_dense\", \"name\": \"swish\", \"units\": 16, \"beta\": 1.0, \"learn_beta\": true}, "
    "{\"type\": \"acme.gated\", \"name\": \"glu\", \"units\": 8}, "
    "{\"type\": \"dense\", \"name\": \"head\", \"units\": 4}";

/* Whether any element differs. */
static int changed(const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 1;
    return 0;
}

static void test_custom_layer_plugin(void **state)
{
    (void)state;
    if (!setup_example()) {
        skip();
        return;
    }
    char plugin_file[PATH_MAX + 64];
    snprintf(plugin_file, sizeof plugin_file, "%s/libplexus-acme_layers.so", plugin_dir);

    /* The plugin exports its entry and nothing else. */
    void *h = dlopen(plugin_file, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL)
        fail_msg("dlopen %s: %s", plugin_file, dlerror());
    assert_non_null(dlsym(h, "plx_plugin_entry"));
    assert_null(dlsym(h, "swish_dense_build"));
    assert_null(dlsym(h, "acme_fail"));
    dlclose(h);

    plx_context *ctx = ex_open(plugin_dir);
    /* Loaded, with its two layer types and their keys. */
    int found = 0;
    for (size_t i = 0; i < plx_layer_count(ctx); i++) {
        plx_layer_info li = {.struct_size = sizeof li};
        assert_int_equal(plx_layer_get(ctx, i, &li), PLX_OK);
        if (strncmp(li.name, "acme.", 5) != 0)
            continue;
        found++;
        plx_plugin_info pi = {.struct_size = sizeof pi};
        assert_int_equal(plx_plugin_get(ctx, (size_t)li.plugin_index, &pi), PLX_OK);
        assert_string_equal(pi.name, "acme_layers");
        assert_int_equal(pi.status, PLX_PLUGIN_LOADED);
        if (strcmp(li.name, "acme.swish_dense") == 0) {
            assert_int_equal(li.n_keys, 4);
            plx_layer_key_info ki = {.struct_size = sizeof ki};
            assert_int_equal(plx_layer_key_get(ctx, i, 1, &ki), PLX_OK);
            assert_string_equal(ki.name, "beta");
            assert_string_equal(ki.type, "float");
            assert_int_equal(ki.required, 0);
            assert_string_equal(ki.default_json, "1.0");
        } else
            assert_string_equal(li.name, "acme.gated");
    }
    assert_int_equal(found, 2);

    /* The example's model file parses and builds with the plugin loaded. */
    char model_path[PATH_MAX];
    snprintf(model_path, sizeof model_path, "%s/examples/custom_layer/model.json", PLX_TEST_SOURCE_DIR);
    plx_model *example = NULL;
    if (plx_model_load(ctx, model_path, &example) != PLX_OK)
        fail_msg("%s: %s", model_path, plx_last_error(ctx));
    plx_model_free(example);

    /* Forward values match the documented formulas. */
    check_forward(ctx, "{\"type\": \"acme.swish_dense\", \"name\": \"swish\", \"units\": 4, \"beta\": 1.5}",
                  "swish.safetensors", swish_ref);
    check_forward(ctx,
                  "{\"type\": \"acme.swish_dense\", \"name\": \"swish\", \"units\": 4, \"beta\": 0.5, "
                  "\"learn_beta\": true, \"use_bias\": false}",
                  "swish_learned.safetensors", swish_learned_ref);
    check_forward(ctx, "{\"type\": \"acme.gated\", \"name\": \"glu\", \"units\": 4}", "gated.safetensors", gated_ref);

    /* Training through the custom layers. */
    char data[PATH_MAX * 2], json[PATH_MAX * 4];
    ex_data_json(&env, "4", data, sizeof data);
    snprintf(json, sizeof json,
             "{\"name\": \"tiny_acme\", \"seed\": 3, \"input\": {\"shape\": [1, 8, 8]}, \"classes\": 4, "
             "\"layers\": [%s], \"training\": {\"optimizer\": {\"type\": \"adam\", \"lr\": 0.01}, "
             "\"batch_size\": 32, \"epochs\": 3, \"data\": %s}}",
             train_layers, data);
    plx_model *m = ex_parse(ctx, json, "tiny_acme.json");
    char before[PATH_MAX + 64], after[PATH_MAX + 64];
    ex_path(&env, "before.safetensors", before, sizeof before);
    ex_path(&env, "after.safetensors", after, sizeof after);
    ex_save(m, ctx, before);
    ex_losses losses = {0};
    plx_train_result r = ex_train(m, ctx, &losses);
    ex_save(m, ctx, after);
    print_message("  losses by epoch: %.4f %.4f %.4f; test accuracy %.3f\n", losses.epoch_loss[0],
                  losses.epoch_loss[1], losses.epoch_loss[2], r.test_accuracy);
    assert_int_equal(losses.n, 3);
    assert_int_equal(r.epochs, 3);
    if (!(losses.epoch_loss[2] < losses.epoch_loss[0] * 0.8))
        fail_msg("the loss did not fall: %g -> %g", losses.epoch_loss[0], losses.epoch_loss[2]);
    if (!(r.test_accuracy > 0.7))
        fail_msg("test accuracy %g after training (4 classes, chance 0.25)", r.test_accuracy);
    const char *params[] = {"swish.weight", "swish.bias", "swish.beta", "glu.value_weight", "glu.gate_weight",
                            "head.weight"};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        int64_t n0 = 0, n1 = 0;
        float *p0 = ex_tensor(before, params[i], &n0), *p1 = ex_tensor(after, params[i], &n1);
        assert_int_equal(n0, n1);
        if (!changed(p0, p1, n0))
            fail_msg("%s did not change in training", params[i]);
        free(p0);
        free(p1);
    }
    plx_model_free(m);

    /* Config errors name the key (the runtime checks keys against the
     * layer's table) or the layer and key (the plugin's own checks). */
    expect_config_error(ctx, "{\"type\": \"acme.swish_dense\", \"units\": 4, \"betta\": 2}",
                        (const char *const[]){"bad.json", "betta", "acme.swish_dense", "beta"}, 4);
    expect_config_error(ctx, "{\"type\": \"acme.gated\", \"units\": 4, \"gate\": \"sigmoid\"}",
                        (const char *const[]){".gate: unknown key", "acme.gated"}, 2);
    expect_config_error(ctx, "{\"type\": \"acme.swish_dense\", \"units\": 4, \"beta\": \"big\"}",
                        (const char *const[]){"bad.json", "beta"}, 2);
    expect_config_error(ctx, "{\"type\": \"acme.swish_dense\", \"name\": \"s1\", \"units\": 0}",
                        (const char *const[]){"s1", "acme.swish_dense", "'units'"}, 3);
    expect_config_error(ctx, "{\"type\": \"acme.gated\"}", (const char *const[]){"units", "acme.gated"}, 2);
    plx_context_close(ctx);

    /* Without the plugin, a model naming its layers says which types exist. */
    ctx = ex_open(NULL);
    expect_config_error(ctx, "{\"type\": \"acme.gated\", \"units\": 4}",
                        (const char *const[]){"unknown layer type 'acme.gated'"}, 1);
    plx_context_close(ctx);
    ex_remove_dir(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_custom_layer_plugin, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_layers.c — the built-in layer types (plugins/layers), loaded from
 * build/plugins like any third-party plugin and built through layer_build()
 * exactly as a model file would build them. For each type: output shapes,
 * forward values against naive references computed here (with the layer's
 * parameters bound to tensors the test fills), parameter names, shapes and
 * initializers, gradients against finite differences, and bad configs
 * rejected with messages naming the layer and the key.
 *
 * A gradient check whose graph reaches an op that has no gradient rule yet
 * (rules are added op family by op family) prints why and is skipped rather
 * than failed; every other autodiff error fails.
 */
#include <cJSON.h>

#include "../../../runtime/layer_config.h"
#include "../../../runtime/param_init.h"
#include "graph_check.h"

#define LT_MAX_VALUES 1024

/* One graph with layers built into it, the tensors bound to its persistent
 * values (made on first use, uniform in [-1, 1)), and its plan. */
typedef struct lt {
    plx_context *ctx;
    plx_graph *g;
    plx_tensor *t[LT_MAX_VALUES];
    exec_plan *plan;
    uint64_t rng;
} lt;

static int skipped_checks;

static void lt_open(lt *t)
{
    memset(t, 0, sizeof *t);
    t->ctx = tu_open();
    assert_int_equal(graph_new(t->ctx, &t->g), PLX_OK);
    t->rng = 0x5eed;
}

static void lt_close(lt *t)
{
    plan_free(t->plan);
    for (int32_t i = 0; i < LT_MAX_VALUES; i++)
        plx_tensor_free(t->t[i]);
    graph_free(t->g);
    plx_context_close(t->ctx);
}

static int32_t lt_input(lt *t, const char *name, plx_dtype dtype, int32_t ndim, const int64_t *dims)
{
    int32_t id;
    if (graph_add_named(t->g, VALUE_INPUT, name, dtype, ndim, dims, NULL, &id) != PLX_OK)
        fail_msg("input %s: %s", name, plx_last_error(t->ctx));
    return id;
}

static int32_t lt_f32_input(lt *t, const char *name, int32_t ndim, const int64_t *dims)
{
    return lt_input(t, name, PLX_F32, ndim, dims);
}

/* Builds one layer of `type` configured by `json` (the layer's object in a
 * model file); writes its output on success. */
static plx_status lt_try(lt *t, const char *type, const char *json, const char *name, const int32_t *in, int32_t n_in,
                         int32_t training, uint64_t seed, int32_t *out)
{
    const layer_record *rec = layer_find(t->ctx, type);
    if (rec == NULL)
        fail_msg("layer type %s is not registered", type);
    cJSON *obj = cJSON_Parse(json);
    if (obj == NULL)
        fail_msg("bad test JSON: %s", json);
    int32_t outs[4] = {-1, -1, -1, -1}, n = 0;
    plx_status st =
        layer_build(t->ctx, t->g, rec, obj, name, "test.json: $.layers[0]", in, n_in, training, seed, outs, 4, &n);
    cJSON_Delete(obj);
    if (st == PLX_OK) {
        assert_int_equal(n, 1);
        *out = outs[0];
    }
    return st;
}

static int32_t lt_layer(lt *t, const char *type, const char *json, const char *name, const int32_t *in, int32_t n_in,
                        int32_t training)
{
    int32_t out = -1;
    if (lt_try(t, type, json, name, in, n_in, training, 7, &out) != PLX_OK)
        fail_msg("%s %s: %s", type, json, plx_last_error(t->ctx));
    return out;
}

static int32_t lt_named(lt *t, const char *name)
{
    int32_t v = graph_find(t->g, name);
    if (v < 0)
        fail_msg("no value named %s", name);
    return v;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The tensor bound to persistent value v. */
static plx_tensor *lt_tensor(lt *t, int32_t v)
{
    assert_true(v >= 0 && v < t->g->n_values && v < LT_MAX_VALUES);
    if (t->t[v] != NULL)
        return t->t[v];
    const graph_value *gv = &t->g->values[v];
    assert_int_not_equal(gv->kind, VALUE_TEMP);
    plx_tensor *x = tu_tensor(t->ctx, gv->meta.dtype, gv->meta.ndim, gv->meta.dims);
    if (gv->meta.dtype.code == PLX_DTYPE_CODE_FLOAT) {
        bool positive = ends_with(gv->name, "running_var");
        float *p = tu_f32(x);
        for (int64_t i = 0; i < plx_tensor_numel(x); i++)
            p[i] = positive ? tu_rand_uniform(&t->rng, 0.5f, 1.5f) : tu_rand_uniform(&t->rng, -1.0f, 1.0f);
    }
    t->t[v] = x;
    return x;
}

static float *lt_f32(lt *t, int32_t v)
{
    return tu_f32(lt_tensor(t, v));
}

/* Plans (once) for keep[], binds every persistent value and runs. */
static void lt_run(lt *t, const int32_t *keep, int32_t n_keep)
{
    if (t->plan == NULL) {
        if (plan_build(t->g, keep, n_keep, &t->plan) != PLX_OK)
            fail_msg("plan: %s", plx_last_error(t->ctx));
        for (int32_t v = 0; v < t->g->n_values; v++)
            if (t->g->values[v].kind != VALUE_TEMP)
                assert_int_equal(plan_bind(t->plan, v, lt_tensor(t, v)), PLX_OK);
    }
    if (plan_run(t->plan) != PLX_OK)
        fail_msg("run: %s", plx_last_error(t->ctx));
}

static const float *lt_out(lt *t, int32_t v)
{
    const float *p = plan_value_data(t->plan, v);
    assert_non_null(p);
    return p;
}

static int64_t numel_of(lt *t, int32_t v)
{
    const tensor_meta *m = &t->g->values[v].meta;
    int64_t n = 1;
    for (int32_t d = 0; d < m->ndim; d++)
        n *= m->dims[d];
    return n;
}

static void expect_shape(lt *t, int32_t v, int32_t ndim, const int64_t *dims)
{
    const tensor_meta *m = &t->g->values[v].meta;
    bool ok = m->ndim == ndim;
    for (int32_t d = 0; ok && d < ndim; d++)
        ok = m->dims[d] == dims[d];
    if (!ok) {
        char got[128], want[128];
        size_t u = 0, w = 0;
        for (int32_t d = 0; d < m->ndim; d++)
            u += (size_t)snprintf(got + u, sizeof got - u, "%lld,", (long long)m->dims[d]);
        for (int32_t d = 0; d < ndim; d++)
            w += (size_t)snprintf(want + w, sizeof want - w, "%lld,", (long long)dims[d]);
        fail_msg("shape [%s] (ndim %d), expected [%s] (ndim %d)", u ? got : "", (int)m->ndim, w ? want : "", (int)ndim);
    }
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define EXPECT_SHAPE(t, v, nd, ...) expect_shape((t), (v), (nd), SHAPE(__VA_ARGS__))

/* Checks persistent value `name`: its kind, shape and initializer kind. */
static const graph_value *expect_persistent(lt *t, const char *name, value_kind kind, int32_t ndim, const int64_t *dims,
                                            int32_t init_kind)
{
    int32_t v = lt_named(t, name);
    const graph_value *gv = &t->g->values[v];
    if (gv->kind != kind)
        fail_msg("%s has kind %d, expected %d", name, (int)gv->kind, (int)kind);
    expect_shape(t, v, ndim, dims);
    if (gv->init.kind != init_kind)
        fail_msg("%s has initializer kind %d, expected %d", name, (int)gv->init.kind, (int)init_kind);
    return gv;
}

/* L = sum(out * w) for a fixed random w; checks dL/dv for each wrt[i]
 * against central differences of the same plan. Returns false (printing
 * why) when an op on the path has no gradient rule yet. */
static bool lt_check_grads(lt *t, const char *what, int32_t out, const int32_t *wrt, int32_t n_wrt, float eps,
                           float tol, int max_points)
{
    assert_true(n_wrt <= 8);
    const tensor_meta om = t->g->values[out].meta;
    int32_t w = lt_f32_input(t, "probe_w", om.ndim, om.dims);
    int32_t prod, loss, mul_in[2] = {out, w};
    assert_int_equal(graph_add_op(t->g, PLX_OP_MUL, NULL, mul_in, 2, &prod, 1), PLX_OK);
    assert_int_equal(graph_add_op(t->g, PLX_OP_SUM, NULL, &prod, 1, &loss, 1), PLX_OK);
    int32_t grads[8];
    if (autodiff(t->g, loss, wrt, n_wrt, grads) != PLX_OK) {
        const char *msg = plx_last_error(t->ctx);
        if (strstr(msg, "has no gradient rule") != NULL) {
            print_message("[  SKIP    ] %s: gradient check skipped: %s\n", what, msg);
            skipped_checks++;
            return false;
        }
        fail_msg("%s: autodiff: %s", what, msg);
    }
    int32_t keep[9];
    keep[0] = loss;
    for (int32_t i = 0; i < n_wrt; i++)
        keep[1 + i] = grads[i];
    lt_run(t, keep, 1 + n_wrt);
    /* Every analytic gradient is copied before the finite-difference runs
     * overwrite the plan's values. */
    float *analytic[8];
    for (int32_t i = 0; i < n_wrt; i++) {
        int64_t n = numel_of(t, wrt[i]);
        analytic[i] = malloc(sizeof(float) * (size_t)(n ? n : 1));
        assert_non_null(analytic[i]);
        memcpy(analytic[i], lt_out(t, grads[i]), sizeof(float) * (size_t)n);
    }
    for (int32_t i = 0; i < n_wrt; i++) {
        int64_t n = numel_of(t, wrt[i]);
        float *x = lt_f32(t, wrt[i]);
        int64_t step = n <= max_points ? 1 : (n + max_points - 1) / max_points;
        for (int64_t e = 0; e < n; e += step) {
            float saved = x[e];
            x[e] = saved + eps;
            lt_run(t, keep, 1 + n_wrt);
            double lp = *lt_out(t, loss);
            x[e] = saved - eps;
            lt_run(t, keep, 1 + n_wrt);
            double lm = *lt_out(t, loss);
            x[e] = saved;
            double fd = (lp - lm) / (2.0 * (double)eps), an = analytic[i][e];
            double scale = fabs(fd) > 1.0 ? fabs(fd) : 1.0;
            if (!(fabs(fd - an) <= (double)tol * scale))
                fail_msg("%s: d/d %s[%lld]: finite difference %.7g, autodiff %.7g", what, t->g->values[wrt[i]].name,
                         (long long)e, fd, an);
        }
        free(analytic[i]);
    }
    return true;
}

/* ---- The plugin and its types -------------------------------------------- */

static const char *const all_types[] = {
    "dense",      "conv2d",      "max_pool2d", "avg_pool2d", "global_avg_pool2d",
    "batch_norm", "layer_norm",  "dropout",    "embedding",  "relu",
    "leaky_relu", "elu",         "gelu",       "sigmoid",    "tanh",
    "softmax",    "log_softmax", "add",        "concat",     "flatten",
};

static void test_plugin_registers_every_type(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    bool found = false;
    for (size_t i = 0; i < plx_plugin_count(ctx); i++) {
        plx_plugin_info info = {.struct_size = sizeof info};
        assert_int_equal(plx_plugin_get(ctx, i, &info), PLX_OK);
        if (strcmp(info.name, "layers") != 0)
            continue;
        found = true;
        if (info.status != PLX_PLUGIN_LOADED)
            fail_msg("the layers plugin was refused: %s", info.reason);
        assert_int_equal(info.backend_index, -1);
        assert_int_equal(info.abi_major, 1);
        assert_int_equal(info.abi_minor, PLX_ABI_MINOR);
    }
    assert_true(found);
    for (size_t i = 0; i < sizeof all_types / sizeof all_types[0]; i++) {
        const layer_record *rec = layer_find(ctx, all_types[i]);
        if (rec == NULL)
            fail_msg("layer type %s is missing", all_types[i]);
        assert_non_null(rec->type.description);
    }
    assert_true(plx_layer_count(ctx) >= sizeof all_types / sizeof all_types[0]);
    /* Keys as model files see them: names, required, defaults. */
    const layer_record *conv = layer_find(ctx, "conv2d");
    static const char *const conv_keys[] = {"filters",  "kernel", "stride",   "padding",
                                            "dilation", "groups", "use_bias", "init"};
    assert_int_equal(conv->type.n_keys, 8);
    for (int32_t k = 0; k < 8; k++)
        assert_string_equal(conv->keys[k].name, conv_keys[k]);
    assert_true(conv->keys[0].required && conv->keys[1].required && !conv->keys[2].required);
    assert_string_equal(conv->keys[7].default_json, "\"default\"");
    const layer_record *add = layer_find(ctx, "add");
    assert_int_equal(add->type.min_inputs, 2);
    assert_int_equal(add->type.max_inputs, -1);
    assert_int_equal(add->type.n_keys, 0);
    plx_context_close(ctx);
}

/* ---- dense ---------------------------------------------------------------- */

static void ref_dense(const float *x, const float *w, const float *b, float *y, int64_t rows, int64_t in, int64_t units)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t u = 0; u < units; u++) {
            double s = b ? b[u] : 0.0;
            for (int64_t k = 0; k < in; k++)
                s += (double)x[r * in + k] * w[u * in + k];
            y[r * units + u] = (float)s;
        }
}

static void test_dense_forward(void **state)
{
    (void)state;
    /* Ranks 2, 3 and 1; with and without bias. */
    const struct {
        int32_t ndim;
        int64_t dims[3];
        const char *json;
        bool bias;
    } cases[] = {
        {2, {4, 5}, "{\"units\": 3}", true},
        {3, {2, 3, 5}, "{\"units\": 7}", true},
        {1, {5}, "{\"units\": 2, \"use_bias\": false}", false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lt t;
        lt_open(&t);
        int32_t x = lt_f32_input(&t, "x", cases[c].ndim, cases[c].dims);
        int32_t y = lt_layer(&t, "dense", cases[c].json, "fc1", &x, 1, 1);
        int32_t w = lt_named(&t, "fc1.weight");
        int64_t units = t.g->values[w].meta.dims[0], in = 5;
        int64_t yshape[3];
        memcpy(yshape, cases[c].dims, sizeof yshape);
        yshape[cases[c].ndim - 1] = units;
        expect_shape(&t, y, cases[c].ndim, yshape);
        assert_int_equal(graph_find(t.g, "fc1.bias") >= 0, cases[c].bias);
        lt_run(&t, &y, 1);
        int64_t rows = numel_of(&t, x) / in;
        float *want = malloc(sizeof(float) * (size_t)(rows * units));
        ref_dense(lt_f32(&t, x), lt_f32(&t, w), cases[c].bias ? lt_f32(&t, lt_named(&t, "fc1.bias")) : NULL, want, rows,
                  in, units);
        tu_assert_close(lt_out(&t, y), want, rows * units, 1e-5f, 1e-5f, "dense");
        free(want);
        lt_close(&t);
    }
}

static void test_dense_params(void **state)
{
    (void)state;
    lt t;
    lt_open(&t);
    int32_t x = lt_f32_input(&t, "x", 2, SHAPE(8, 20));
    lt_layer(&t, "dense", "{\"units\": 10}", "fc1", &x, 1, 1);
    /* PyTorch Linear: kaiming_uniform(a=sqrt(5)) = uniform(+-1/sqrt(fan_in)), bias alike. */
    const float bound = 1.0f / sqrtf(20.0f);
    const graph_value *w = expect_persistent(&t, "fc1.weight", VALUE_PARAM, 2, SHAPE(10, 20), PLX_INIT_UNIFORM);
    assert_true(w->trainable);
    assert_float_equal(w->init.a, -bound, 1e-6);
    assert_float_equal(w->init.b, bound, 1e-6);
    const graph_value *b = expect_persistent(&t, "fc1.bias", VALUE_PARAM, 1, SHAPE(10), PLX_INIT_UNIFORM);
    assert_float_equal(b->init.a, -bound, 1e-6);
    assert_float_equal(b->init.b, bound, 1e-6);
    /* The runtime's fill stays inside the bound and spans it. */
    plx_tensor *wt = tu_tensor(t.ctx, PLX_F32, 2, SHAPE(10, 20));
    assert_int_equal(param_init_fill(t.ctx, wt, &w->init, 1, param_stream_of(w->name), w->name), PLX_OK);
    float lo = 1e9f, hi = -1e9f;
    for (int64_t i = 0; i < 200; i++) {
        lo = fminf(lo, tu_f32(wt)[i]);
        hi = fmaxf(hi, tu_f32(wt)[i]);
    }
    assert_true(lo >= -bound && hi < bound && lo < -0.8f * bound && hi > 0.8f * bound);
    plx_tensor_free(wt);

    /* Other initializers: the weight's kind, a zero bias. */
    const struct {
        const char *json;
        int32_t weight, bias;
    } inits[] = {
        {"{\"units\": 3, \"init\": \"xavier_uniform\"}", PLX_INIT_XAVIER_UNIFORM, PLX_INIT_ZEROS},
        {"{\"units\": 3, \"init\": \"xavier_normal\"}", PLX_INIT_XAVIER_NORMAL, PLX_INIT_ZEROS},
        {"{\"units\": 3, \"init\": \"he_uniform\"}", PLX_INIT_HE_UNIFORM, PLX_INIT_ZEROS},
        {"{\"units\": 3, \"init\": \"he_normal\"}", PLX_INIT_HE_NORMAL, PLX_INIT_ZEROS},
        {"{\"units\": 3, \"init\": \"zeros\"}", PLX_INIT_ZEROS, PLX_INIT_ZEROS},
    };
    for (size_t i = 0; i < sizeof inits / sizeof inits[0]; i++) {
        char name[16], wname[32], bname[32];
        snprintf(name, sizeof name, "fc%d", (int)(i + 2));
        snprintf(wname, sizeof wname, "%s.weight", name);
        snprintf(bname, sizeof bname, "%s.bias", name);
        lt_layer(&t, "dense", inits[i].json, name, &x, 1, 1);
        expect_persistent(&t, wname, VALUE_PARAM, 2, SHAPE(3, 20), inits[i].weight);
        expect_persistent(&t, bname, VALUE_PARAM, 1, SHAPE(3), inits[i].bias);
    }
    /* Layer nodes carry the instance's scope. */
    for (int32_t n = 0; n < t.g->n_nodes; n++)
        assert_non_null(strstr(t.g->nodes[n].scope, "fc"));
    lt_close(&t);
}

static void test_dense_grads(void **state)
{
    (void)state;
    const struct {
        int32_t ndim;
        int64_t dims[3];
    } cases[] = {{2, {3, 5}}, {3, {2, 3, 4}}};
    for (size_t c = 0; c < 2; c++) {
        lt t;
        lt_open(&t);
        int32_t x = lt_f32_input(&t, "x", cases[c].ndim, cases[c].dims);
        int32_t y = lt_layer(&t, "dense", "{\"units\": 4}", "fc", &x, 1, 1);
        int32_t wrt[3] = {x, lt_named(&t, "fc.weight"), lt_named(&t, "fc.bias")};
        lt_check_grads(&t, "dense", y, wrt, 3, 1e-2f, 2e-3f, 64);
        lt_close(&t);
    }
}

/* ---- conv2d --------------------------------------------------------------- */

typedef struct conv_case {
    int64_t n, c, h, w, k, r, s;
    int32_t stride[2], pad[2], dil[2], groups;
    const char *json;
    int64_t p, q; /* expected output size */
} conv_case;

static void ref_conv2d(const conv_case *cc, const float *x, const float *w, const float *bias, float *y)
{
    int64_t cg = cc->c / cc->groups, kg = cc->k / cc->groups;
    for (int64_t n = 0; n < cc->n; n++)
        for (int64_t k = 0; k < cc->k; k++)
            for (int64_t p = 0; p < cc->p; p++)
                for (int64_t q = 0; q < cc->q; q++) {
                    double s = bias ? bias[k] : 0.0;
                    int64_t g = k / kg;
                    for (int64_t c = 0; c < cg; c++)
                        for (int64_t r = 0; r < cc->r; r++)
                            for (int64_t t = 0; t < cc->s; t++) {
                                int64_t ih = p * cc->stride[0] - cc->pad[0] + r * cc->dil[0];
                                int64_t iw = q * cc->stride[1] - cc->pad[1] + t * cc->dil[1];
                                if (ih < 0 || ih >= cc->h || iw < 0 || iw >= cc->w)
                                    continue;
                                s += (double)x[((n * cc->c + g * cg + c) * cc->h + ih) * cc->w + iw] *
                                     w[((k * cg + c) * cc->r + r) * cc->s + t];
                            }
                    y[((n * cc->k + k) * cc->p + p) * cc->q + q] = (float)s;
                }
}

static const conv_case conv_cases[] = {
    {2, 3, 5, 5, 4, 3, 3, {1, 1}, {0, 0}, {1, 1}, 1, "{\"filters\": 4, \"kernel\": 3}", 3, 3},
    {1,
     4,
     7,
     6,
     6,
     3,
     2,
     {2, 1},
     {1, 0},
     {1, 1},
     2,
     "{\"filters\": 6, \"kernel\": [3, 2], \"stride\": [2, 1], \"padding\": [1, 0], \"groups\": 2}",
     4,
     5},
    {2,
     2,
     7,
     7,
     3,
     3,
     3,
     {2, 2},
     {2, 2},
     {2, 2},
     1,
     "{\"filters\": 3, \"kernel\": 3, \"stride\": 2, \"padding\": 2, \"dilation\": 2, \"use_bias\": false}",
     4,
     4},
};

static void test_conv2d_forward(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof conv_cases / sizeof conv_cases[0]; c++) {
        const conv_case *cc = &conv_cases[c];
        lt t;
        lt_open(&t);
        int32_t x = lt_f32_input(&t, "x", 4, SHAPE(cc->n, cc->c, cc->h, cc->w));
        int32_t y = lt_layer(&t, "conv2d", cc->json, "conv1", &x, 1, 1);
        EXPECT_SHAPE(&t, y, 4, cc->n, cc->k, cc->p, cc->q);
        bool has_bias = strstr(cc->json, "use_bias") == NULL;
        int32_t w = lt_named(&t, "conv1.weight");
        expect_shape(&t, w, 4, SHAPE(cc->k, cc->c / cc->groups, cc->r, cc->s));
        assert_int_equal(graph_find(t.g, "conv1.bias") >= 0, has_bias);
        lt_run(&t, &y, 1);
        int64_t n = cc->n * cc->k * cc->p * cc->q;
        float *want = malloc(sizeof(float) * (size_t)n);
        ref_conv2d(cc, lt_f32(&t, x), lt_f32(&t, w), has_bias ? lt_f32(&t, lt_named(&t, "conv1.bias")) : NULL, want);
        tu_assert_close(lt_out(&t, y), want, n, 1e-5f, 1e-4f, cc->json);
        free(want);
        lt_close(&t);
    }
}

static void test_conv2d_params(void **state)
{
    (void)state;
    lt t;
    lt_open(&t);
    int32_t x = lt_f32_input(&t, "x", 4, SHAPE(1, 6, 8, 8));
    lt_layer(&t, "conv2d", "{\"filters\": 8, \"kernel\": [3, 5], \"groups\": 2}", "conv1", &x, 1, 1);
    /* fan_in = C/groups * kh * kw = 3 * 15 */
    const float bound = 1.0f / sqrtf(45.0f);
    const graph_value *w = expect_persistent(&t, "conv1.weight", VALUE_PARAM, 4, SHAPE(8, 3, 3, 5), PLX_INIT_UNIFORM);
    assert_float_equal(w->init.a, -bound, 1e-6);
    assert_float_equal(w->init.b, bound, 1e-6);
    const graph_value *b = expect_persistent(&t, "conv1.bias", VALUE_PARAM, 1, SHAPE(8), PLX_INIT_UNIFORM);
    assert_float_equal(b->init.b, bound, 1e-6);
    lt_layer(&t, "conv2d", "{\"filters\": 4, \"kernel\": 1, \"init\": \"he_normal\"}", "conv2", &x, 1, 1);
    expect_persistent(&t, "conv2.weight", VALUE_PARAM, 4, SHAPE(4, 6, 1, 1), PLX_INIT_HE_NORMAL);
    expect_persistent(&t, "conv2.bias", VALUE_PARAM, 1, SHAPE(4), PLX_INIT_ZEROS);
    lt_close(&t);
}

static void test_conv2d_grads(void **state)
{
    (void)state;
    lt t;
    lt_open(&t);
    int32_t x = lt_f32_input(&t, "x", 4, SHAPE(2, 4, 5, 5));
    int32_t y = lt_layer(&t, "conv2d",
                         "{\"filters\": 4, \"kernel\": [3, 2], \"stride\": [2, 1], \"padding\": 1, \"groups\": 2}",
                         "conv", &x, 1, 1);
    int32_t wrt[3] = {x, lt_named(&t, "conv.weight"), lt_named(&t, "conv.bias")};
    lt_check_grads(&t, "conv2d", y, wrt, 3, 1e-2f, 3e-3f, 60);
    lt_close(&t);
}

/* ---- pooling -------------------------------------------------------------- */

typedef struct pool_case {
    bool is_max;
    const char *json;
    int64_t n, c, h, w;
    int32_t k[2], s[2], pad[2], dil[2];
    bool count_include_pad;
    int64_t p, q; /* expected output size */
} pool_case;

/* As PyTorch's kernels: max pads with -inf; avg divides by the window
 * clipped to the padded input (count_include_pad) or to the input. */
static float ref_pool_at(const pool_case *pc, const float *plane, int64_t oh, int64_t ow)
{
    if (pc->is_max) {
        float m = -INFINITY;
        for (int32_t i = 0; i < pc->k[0]; i++)
            for (int32_t j = 0; j < pc->k[1]; j++) {
                int64_t h = oh * pc->s[0] - pc->pad[0] + i * pc->dil[0];
                int64_t w = ow * pc->s[1] - pc->pad[1] + j * pc->dil[1];
                if (h >= 0 && h < pc->h && w >= 0 && w < pc->w)
                    m = fmaxf(m, plane[h * pc->w + w]);
            }
        return m;
    }
    int64_t hs = oh * pc->s[0] - pc->pad[0], ws = ow * pc->s[1] - pc->pad[1];
    int64_t he = hs + pc->k[0] < pc->h + pc->pad[0] ? hs + pc->k[0] : pc->h + pc->pad[0];
    int64_t we = ws + pc->k[1] < pc->w + pc->pad[1] ? ws + pc->k[1] : pc->w + pc->pad[1];
    int64_t size = (he - hs) * (we - ws);
    hs = hs > 0 ? hs : 0;
    ws = ws > 0 ? ws : 0;
    he = he < pc->h ? he : pc->h;
    we = we < pc->w ? we : pc->w;
    if (!pc->count_include_pad)
        size = (he - hs) * (we - ws);
    double s = 0.0;
    for (int64_t h = hs; h < he; h++)
        for (int64_t w = ws; w < we; w++)
            s += plane[h * pc->w + w];
    return (float)(s / (double)size);
}

static const pool_case pool_cases[] = {
    {true, "{\"kernel\": 2}", 2, 3, 6, 6, {2, 2}, {2, 2}, {0, 0}, {1, 1}, true, 3, 3},
    {true,
     "{\"kernel\": 3, \"stride\": 2, \"padding\": 1, \"ceil_mode\": true}",
     1,
     2,
     7,
     7,
     {3, 3},
     {2, 2},
     {1, 1},
     {1, 1},
     true,
     4,
     4},
    {true, "{\"kernel\": 2, \"dilation\": 2, \"stride\": 1}", 1, 1, 5, 5, {2, 2}, {1, 1}, {0, 0}, {2, 2}, true, 3, 3},
    {true, "{\"kernel\": [2, 3], \"stride\": [1, 2]}", 1, 2, 4, 7, {2, 3}, {1, 2}, {0, 0}, {1, 1}, true, 3, 3},
    {false, "{\"kernel\": 3, \"stride\": 2, \"padding\": 1}", 2, 2, 5, 5, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true, 3, 3},
    {false,
     "{\"kernel\": 3, \"stride\": 2, \"padding\": 1, \"count_include_pad\": false}",
     2,
     2,
     5,
     5,
     {3, 3},
     {2, 2},
     {1, 1},
     {1, 1},
     false,
     3,
     3},
    {false,
     "{\"kernel\": 3, \"stride\": 2, \"padding\": 1, \"ceil_mode\": true}",
     1,
     1,
     6,
     6,
     {3, 3},
     {2, 2},
     {1, 1},
     {1, 1},
     true,
     4,
     4},
    {false, "{\"kernel\": [2, 2]}", 1, 3, 4, 6, {2, 2}, {2, 2}, {0, 0}, {1, 1}, true, 2, 3},
};

static void test_pool_forward(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof pool_cases / sizeof pool_cases[0]; c++) {
        const pool_case *pc = &pool_cases[c];
        lt t;
        lt_open(&t);
        int32_t x = lt_f32_input(&t, "x", 4, SHAPE(pc->n, pc->c, pc->h, pc->w));
        int32_t y = lt_layer(&t, pc->is_max ? "max_pool2d" : "avg_pool2d", pc->json, "pool", &x, 1, 1);
        EXPECT_SHAPE(&t, y, 4, pc->n, pc->c, pc->p, pc->q);
        /* Pooling has no parameters. */
        for (int32_t v = 0; v < t.g->n_values; v++)
            assert_true(t.g->values[v].kind != VALUE_PARAM && t.g->values[v].kind != VALUE_STATE);
        lt_run(&t, &y, 1);
        int64_t planes = pc->n * pc->c, n = planes * pc->p * pc->q;
        float *want = malloc(sizeof(float) * (size_t)n);
        const float *xs = lt_f32(&t, x);
        for (int64_t pl = 0; pl < planes; pl++)
            for (int64_t oh = 0; oh < pc->p; oh++)
                for (int64_t ow = 0; ow < pc->q; ow++)
                    want[(pl * pc->p + oh) * pc->q + ow] = ref_pool_at(pc, xs + pl * pc->h * pc->w, oh, ow);
        tu_assert_close(lt_out(&t, y), want, n, 1e-6f, 1e-5f, pc->json);
        free(want);
        lt_close(&t);
    }
    /* global_avg_pool2d: [N, C, 1, 1] means. */
    lt t;
    lt_open(&t);
    int32_t x = lt_f32_input(&t, "x", 4, SHAPE(2, 3, 4, 5));
    int32_t y = lt_layer(&t, "global_avg_pool2d", "{}", "gap", &x, 1, 1);
    EXPECT_SHAPE(&t, y, 4, 2, 3, 1, 1);
    lt_run(&t, &y, 1);
    float want[6];
    for (int64_t pl = 0; pl < 6; pl++) {
        double s = 0.0;
        for (int64_t i = 0; i < 20; i++)
            s += lt_f32(&t, x)[pl * 20 + i];
        want[pl] = (float)(s / 20.0);
    }
    tu_assert_close(lt_out(&t, y), want, 6, 1e-6f, 1e-5f, "global_avg_pool2d");
    lt_close(&t);
}

static void test_pool_grads(void **state)
{
    (void)state;
    const char *types[] = {"avg_pool2d", "global_avg_pool2d", "max_pool2d"};
    const char *jsons[] = {"{\"kernel\": 3, \"stride\": 2, \"padding\": 1}", "{}", "{\"kernel\": 2}"};
    for (int i = 0; i < 3; i++) {
        lt t;
        lt_open(&t);
        int32_t x = lt_f32_input(&t, "x", 4, SHAPE(2, 2, 4, 4));
        int32_t y = lt_layer(&t, types[i], jsons[i], "pool", &x, 1, 1);
        if (i == 2) {
            /* Distinct values far apart, so the max is stable under the step. */
            float *xs = lt_f32(&t, x);
            for (int64_t e = 0; e < 64; e++)
                xs[e] = (float)((e * 37) % 64) * 0.1f;
        }
        lt_check_grads(&t, types[i], y, &x, 1, 1e-2f, 2e-3f, 64);
        lt_close(&t);
    }
}

/* ---- flatten -------------------------------------------------------------- */

static void test_flatten(void **state)
{
    (void)state;
    lt t;
    lt_open(&t);
    int32_t x = lt_f32_input(&t, "x", 4, SHAPE(2, 3, 4, 5));
    int32_t a = lt_layer(&t, "flatten", "{}", "flat1", &x, 1, 1);
    EXPECT_SHAPE(&t, a, 2, 2, 60);
    int32_t b = lt_layer(&t, "flatten", "{\"start_dim\": 2}", "flat2", &x, 1, 1);
    EXPECT_SHAPE(&t, b, 3, 2, 3, 20);
    int32_t c = lt_layer(&t, "flatten", "{\"start_dim\": 0}", "flat3", &x, 1, 1);
    EXPECT_SHAPE(&t, c, 1, 120);
    int32_t d = lt_layer(&t, "flatten", "{\"start_dim\": 1, \"end_dim\": 2}", "flat4", &x, 1, 1);
    EXPECT_SHAPE(&t, d, 3, 2, 12, 5);
    int32_t e = lt_layer(&t, "flatten", "{\"start_dim\": -2}", "flat5", &x, 1, 1);
    EXPECT_SHAPE(&t, e, 3, 2, 3, 20);
    /* Nothing to merge: the input itself. */
    int32_t f = lt_layer(&t, "flatten", "{}", "flat6", &a, 1, 1);
    assert_int_equal(f, a);
    int32_t keep[5] = {a, b, c, d, e};
    lt_run(&t, keep, 5);
    const float *xs = lt_f32(&t, x);
    for (int k = 0; k < 5; k++)
        tu_assert_close(lt_out(&t, keep[k]), xs, 120, 0.0f, 0.0f, "flatten keeps row-major order");
    lt_close(&t);
}

/* ---- batch_norm ----------------------------------------------------------- */

static void test_batch_norm(void **state)
{
    (void)state;
    const int64_t N = 4, C = 3, HW = 6;
    for (int training = 1; training >= 0; training--) {
        lt t;
        lt_open(&t);
        int32_t x = lt_f32_input(&t, "x", 4, SHAPE(N, C, 2, 3));
        int32_t y = lt_layer(&t, "batch_norm", "{\"eps\": 0.001, \"momentum\": 0.2}", "bn1", &x, 1, training);
        EXPECT_SHAPE(&t, y, 4, N, C, 2, 3);
        int32_t gamma = lt_named(&t, "bn1.weight"), beta = lt_named(&t, "bn1.bias");
        int32_t rm = lt_named(&t, "bn1.running_mean"), rv = lt_named(&t, "bn1.running_var");
        expect_persistent(&t, "bn1.weight", VALUE_PARAM, 1, SHAPE(C), PLX_INIT_ONES);
        expect_persistent(&t, "bn1.bias", VALUE_PARAM, 1, SHAPE(C), PLX_INIT_ZEROS);
        expect_persistent(&t, "bn1.running_mean", VALUE_STATE, 1, SHAPE(C), PLX_INIT_ZEROS);
        expect_persistent(&t, "bn1.running_var", VALUE_STATE, 1, SHAPE(C), PLX_INIT_ONES);
        /* Values before the step (the run updates the running stats in place). */
        float rm0[3], rv0[3];
        memcpy(rm0, lt_f32(&t, rm), sizeof rm0);
        memcpy(rv0, lt_f32(&t, rv), sizeof rv0);
        lt_run(&t, &y, 1);
        const float *xs = lt_f32(&t, x), *g = lt_f32(&t, gamma), *bb = lt_f32(&t, beta);
        float want[4 * 3 * 6];
        for (int64_t c = 0; c < C; c++) {
            double mean = 0.0, var = 0.0;
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < HW; i++)
                    mean += xs[(n * C + c) * HW + i];
            mean /= (double)(N * HW);
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < HW; i++) {
                    double dlt = xs[(n * C + c) * HW + i] - mean;
                    var += dlt * dlt;
                }
            double biased = var / (double)(N * HW), unbiased = var / (double)(N * HW - 1);
            double use_mean = training ? mean : rm0[c], use_var = training ? biased : rv0[c];
            for (int64_t n = 0; n < N; n++)
                for (int64_t i = 0; i < HW; i++) {
                    int64_t k = (n * C + c) * HW + i;
                    want[k] = (float)((xs[k] - use_mean) / sqrt(use_var + 1e-3) * g[c] + bb[c]);
                }
            /* PyTorch's running statistics: unbiased variance, momentum. */
            float want_rm = training ? (float)(0.8 * rm0[c] + 0.2 * mean) : rm0[c];
            float want_rv = training ? (float)(0.8 * rv0[c] + 0.2 * unbiased) : rv0[c];
            assert_float_equal(lt_f32(&t, rm)[c], want_rm, 1e-5);
            assert_float_equal(lt_f32(&t, rv)[c], want_rv, 1e-5);
        }
        tu_assert_close(lt_out(&t, y), want, N * C * HW, 1e-5f, 1e-4f,
                        training ? "batch_norm (training)" : "batch_norm (inference)");
        lt_close(&t);
    }
    /* [N, C] input (BatchNorm1d). */
    lt t;
    lt_open(&t);
    int32_t x = lt_f32_input(&t, "x", 2, SHAPE(5, 4));
    int32_t y = lt_layer(&t, "batch_norm", "{}", "bn", &x, 1, 1);
    EXPECT_SHAPE(&t, y, 2, 5, 4);
    expect_persistent(&t, "bn.weight", VALUE_PARAM, 1, SHAPE(4), PLX_INIT_ONES);
    lt_close(&t);
}

static void test_batch_norm_grads(void **state)
{
    (void)state;
    for (int training = 1; training >= 0; training--) {
        lt t;
        lt_open(&t);
        int32_t x = lt_f32_input(&t, "x", 4, SHAPE(3, 2, 2, 2));
        int32_t y = lt_layer(&t, "batch_norm", "{}", "bn", &x, 1, training);
        int32_t wrt[3] = {x, lt_named(&t, "bn.weight"), lt_named(&t, "bn.bias")};
        lt_check_grads(&t, training ? "batch_norm (training)" : "batch_norm (inference)", y, wrt, 3, 1e-2f, 5e-3f, 24);
        lt_close(&t);
    }
}

/* ---- layer_norm ----------------------------------------------------------- */

static void test_layer_norm(void **state)
{
    (void)state;
    for (int dims = 1; dims <= 2; dims++) {
        lt t;
        lt_open(&t);
        int32_t x = lt_f32_input(&t, "x", 3, SHAPE(2, 3, 4));
        char json[64];
        snprintf(json, sizeof json, "{\"normalized_dims\": %d, \"eps\": 1e-4}", dims);
        int32_t y = lt_layer(&t, "layer_norm", json, "ln", &x, 1, 1);
        EXPECT_SHAPE(&t, y, 3, 2, 3, 4);
        if (dims == 1) {
            expect_persistent(&t, "ln.weight", VALUE_PARAM, 1, SHAPE(4), PLX_INIT_ONES);
            expect_persistent(&t, "ln.bias", VALUE_PARAM, 1, SHAPE(4), PLX_INIT_ZEROS);
        } else {
            expect_persistent(&t, "ln.weight", VALUE_PARAM, 2, SHAPE(3, 4), PLX_INIT_ONES);
            expect_persistent(&t, "ln.bias", VALUE_PARAM, 2, SHAPE(3, 4), PLX_INIT_ZEROS);
        }
        lt_run(&t, &y, 1);
        const float *xs = lt_f32(&t, x), *g = lt_f32(&t, lt_named(&t, "ln.weight")),
                    *b = lt_f32(&t, lt_named(&t, "ln.bias"));
        int64_t inner = dims == 1 ? 4 : 12, outer = 24 / inner;
        float want[24];
        for (int64_t o = 0; o < outer; o++) {
            double mean = 0.0, var = 0.0;
            for (int64_t i = 0; i < inner; i++)
                mean += xs[o * inner + i];
            mean /= (double)inner;
            for (int64_t i = 0; i < inner; i++)
                var += (xs[o * inner + i] - mean) * (xs[o * inner + i] - mean);
            var /= (double)inner;
            for (int64_t i = 0; i < inner; i++)
                want[o * inner + i] = (float)((xs[o * inner + i] - mean) / sqrt(var + 1e-4) * g[i] + b[i]);
        }
        tu_assert_close(lt_out(&t, y), want, 24, 1e-5f, 1e-4f, "layer_norm");
        lt_close(&t);
    }
}

static void test_layer_norm_grads(void **state)
{
    (void)state;
    lt t;
    lt_open(&t);
    int32_t x = lt_f32_input(&t, "x", 3, SHAPE(3, 2, 4));
    int32_t y = lt_layer(&t, "layer_norm", "{\"normalized_dims\": 2}", "ln", &x, 1, 1);
    int32_t wrt[3] = {x, lt_named(&t, "ln.weight"), lt_named(&t, "ln.bias")};
    lt_check_grads(&t, "layer_norm", y, wrt, 3, 1e-2f, 5e-3f, 24);
    lt_close(&t);
}

/* ---- dropout -------------------------------------------------------------- */

static const plx_dropout_attrs *last_dropout(lt *t)
{
    for (int32_t n = t->g->n_nodes - 1; n >= 0; n--)
        if (t->g->nodes[n].op_id == PLX_OP_DROPOUT)
            return (const plx_dropout_attrs *)t->g->nodes[n].attrs;
    fail_msg("no core.dropout node");
    return NULL;
}

static void test_dropout(void **state)
{
    (void)state;
    lt t;
    lt_open(&t);
    int32_t x = lt_f32_input(&t, "x", 2, SHAPE(64, 64));
    /* Inference: the input itself, no node. */
    int32_t nodes = t.g->n_nodes;
    assert_int_equal(lt_layer(&t, "dropout", "{\"p\": 0.3}", "drop0", &x, 1, 0), x);
    assert_int_equal(t.g->n_nodes, nodes);
    /* p = 0 in training is the identity too. */
    assert_int_equal(lt_layer(&t, "dropout", "{\"p\": 0}", "drop1", &x, 1, 1), x);
    /* Training: core.dropout keyed by the instance seed, offset 0. */
    int32_t a, b, c;
    assert_int_equal(lt_try(&t, "dropout", "{\"p\": 0.25}", "drop2", &x, 1, 1, 1234, &a), PLX_OK);
    const plx_dropout_attrs *da = last_dropout(&t);
    assert_int_equal(da->seed, 1234);
    assert_int_equal(da->offset, 0);
    assert_float_equal(da->p, 0.25, 1e-7);
    assert_int_equal(lt_try(&t, "dropout", "{\"p\": 0.25}", "drop3", &x, 1, 1, 1234, &b), PLX_OK);
    assert_int_equal(lt_try(&t, "dropout", "{}", "drop4", &x, 1, 1, 99, &c), PLX_OK);
    assert_float_equal(last_dropout(&t)->p, 0.5, 1e-7);
    EXPECT_SHAPE(&t, a, 2, 64, 64);
    int32_t keep[3] = {a, b, c};
    lt_run(&t, keep, 3);
    const float *xs = lt_f32(&t, x), *ya = lt_out(&t, a), *yb = lt_out(&t, b), *yc = lt_out(&t, c);
    int64_t zeros = 0, differ = 0;
    for (int64_t i = 0; i < 4096; i++) {
        if (ya[i] == 0.0f)
            zeros++;
        else
            assert_float_equal(ya[i], xs[i] / 0.75f, 1e-5);
        assert_true(ya[i] == yb[i]); /* same seed, same mask */
        differ += (ya[i] == 0.0f) != (yc[i] == 0.0f);
    }
    assert_true(zeros > 4096 * 0.2 && zeros < 4096 * 0.3);
    assert_true(differ > 1000); /* another seed, another mask */
    lt_close(&t);
}

static void test_dropout_grads(void **state)
{
    (void)state;
    lt t;
    lt_open(&t);
    int32_t x = lt_f32_input(&t, "x", 2, SHAPE(4, 8));
    int32_t y = lt_layer(&t, "dropout", "{\"p\": 0.4}", "drop", &x, 1, 1);
    lt_check_grads(&t, "dropout", y, &x, 1, 1e-2f, 2e-3f, 32);
    lt_close(&t);
}

/* ---- embedding ------------------------------------------------------------ */

static void test_embedding(void **state)
{
    (void)state;
    lt t;
    lt_open(&t);
    int32_t idx = lt_input(&t, "tokens", PLX_I64, 2, SHAPE(2, 3));
    int32_t y = lt_layer(&t, "embedding", "{\"num_embeddings\": 10, \"embedding_dim\": 4}", "emb", &idx, 1, 1);
    EXPECT_SHAPE(&t, y, 3, 2, 3, 4);
    const graph_value *w = expect_persistent(&t, "emb.weight", VALUE_PARAM, 2, SHAPE(10, 4), PLX_INIT_NORMAL);
    assert_float_equal(w->init.a, 0.0, 0.0);
    assert_float_equal(w->init.b, 1.0, 0.0);
    const int64_t tokens[6] = {0, 9, 3, 3, 7, 1};
    memcpy(plx_tensor_data(lt_tensor(&t, idx)), tokens, sizeof tokens);
    lt_run(&t, &y, 1);
    float want[24];
    for (int i = 0; i < 6; i++)
        memcpy(&want[i * 4], lt_f32(&t, lt_named(&t, "emb.weight")) + tokens[i] * 4, 4 * sizeof(float));
    tu_assert_close(lt_out(&t, y), want, 24, 0.0f, 0.0f, "embedding");
    /* padding_idx reaches the op; i32 indices work too. */
    int32_t idx32 = lt_input(&t, "tokens32", PLX_I32, 1, SHAPE(5));
    lt_layer(&t, "embedding", "{\"num_embeddings\": 6, \"embedding_dim\": 2, \"padding_idx\": 0}", "emb2", &idx32, 1,
             1);
    const graph_node *n = &t.g->nodes[t.g->n_nodes - 1];
    assert_int_equal(n->op_id, PLX_OP_EMBEDDING);
    assert_int_equal(((const plx_embedding_attrs *)n->attrs)->padding_idx, 0);
    assert_int_equal(((const plx_embedding_attrs *)n->attrs)->num_embeddings, 6);
    lt_close(&t);

    /* The realized init is normal(0, 1). */
    lt_open(&t);
    idx = lt_input(&t, "tokens", PLX_I64, 1, SHAPE(3));
    lt_layer(&t, "embedding", "{\"num_embeddings\": 1000, \"embedding_dim\": 20}", "emb", &idx, 1, 1);
    w = &t.g->values[lt_named(&t, "emb.weight")];
    plx_tensor *wt = tu_tensor(t.ctx, PLX_F32, 2, SHAPE(1000, 20));
    assert_int_equal(param_init_fill(t.ctx, wt, &w->init, 3, param_stream_of(w->name), w->name), PLX_OK);
    double s = 0.0, s2 = 0.0;
    for (int64_t i = 0; i < 20000; i++) {
        s += tu_f32(wt)[i];
        s2 += (double)tu_f32(wt)[i] * tu_f32(wt)[i];
    }
    double mean = s / 20000.0, std = sqrt(s2 / 20000.0 - mean * mean);
    assert_true(fabs(mean) < 0.05 && fabs(std - 1.0) < 0.05);
    plx_tensor_free(wt);
    lt_close(&t);
}

static void test_embedding_grads(void **state)
{
    (void)state;
    lt t;
    lt_open(&t);
    int32_t idx = lt_input(&t, "tokens", PLX_I64, 2, SHAPE(2, 4));
    int32_t y = lt_layer(&t, "embedding", "{\"num_embeddings\": 5, \"embedding_dim\": 3}", "emb", &idx, 1, 1);
    const int64_t tokens[8] = {0, 4, 2, 2, 1, 4, 4, 0}; /* repeats accumulate; row 3 unused */
    memcpy(plx_tensor_data(lt_tensor(&t, idx)), tokens, sizeof tokens);
    int32_t w = lt_named(&t, "emb.weight");
    lt_check_grads(&t, "embedding", y, &w, 1, 1e-2f, 2e-3f, 15);
    lt_close(&t);
}

/* ---- activations ---------------------------------------------------------- */

static double ref_gelu(double x, bool approx)
{
    if (approx)
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

static void test_activations(void **state)
{
    (void)state;
    const struct {
        const char *type, *json;
        int which;
    } acts[] = {
        {"relu", "{}", 0},
        {"leaky_relu", "{}", 1},
        {"leaky_relu", "{\"negative_slope\": 0.2}", 2},
        {"elu", "{}", 3},
        {"elu", "{\"alpha\": 0.5}", 4},
        {"gelu", "{}", 5},
        {"gelu", "{\"approximate\": \"tanh\"}", 6},
        {"sigmoid", "{}", 7},
        {"tanh", "{}", 8},
    };
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        lt t;
        lt_open(&t);
        int32_t x = lt_f32_input(&t, "x", 3, SHAPE(2, 3, 5));
        int32_t y = lt_layer(&t, acts[a].type, acts[a].json, "act", &x, 1, 1);
        EXPECT_SHAPE(&t, y, 3, 2, 3, 5);
        float *xs = lt_f32(&t, x);
        for (int i = 0; i < 30; i++)
            xs[i] = (float)(i - 15) * 0.25f; /* covers both sides of 0 */
        lt_run(&t, &y, 1);
        float want[30];
        for (int i = 0; i < 30; i++) {
            double v = xs[i], r = 0.0;
            switch (acts[a].which) {
            case 0:
                r = v > 0 ? v : 0.0;
                break;
            case 1:
                r = v > 0 ? v : 0.01 * v;
                break;
            case 2:
                r = v > 0 ? v : 0.2 * v;
                break;
            case 3:
                r = v > 0 ? v : expm1(v);
                break;
            case 4:
                r = v > 0 ? v : 0.5 * expm1(v);
                break;
            case 5:
                r = ref_gelu(v, false);
                break;
            case 6:
                r = ref_gelu(v, true);
                break;
            case 7:
                r = 1.0 / (1.0 + exp(-v));
                break;
            default:
                r = tanh(v);
                break;
            }
            want[i] = (float)r;
        }
        char what[96];
        snprintf(what, sizeof what, "%s %s", acts[a].type, acts[a].json);
        tu_assert_close(lt_out(&t, y), want, 30, 1e-5f, 1e-4f, what);
        lt_close(&t);
    }
}

static void test_softmax(void **state)
{
    (void)state;
    for (int log_form = 0; log_form <= 1; log_form++)
        for (int axis_case = 0; axis_case < 3; axis_case++) {
            static const char *const jsons[] = {"{}", "{\"axis\": 1}", "{\"axis\": -3}"};
            static const int axes[] = {2, 1, 0};
            lt t;
            lt_open(&t);
            int64_t dims[3] = {2, 3, 4};
            int32_t x = lt_f32_input(&t, "x", 3, dims);
            int32_t y = lt_layer(&t, log_form ? "log_softmax" : "softmax", jsons[axis_case], "sm", &x, 1, 1);
            EXPECT_SHAPE(&t, y, 3, 2, 3, 4);
            lt_run(&t, &y, 1);
            const float *xs = lt_f32(&t, x);
            int axis = axes[axis_case];
            int64_t strides[3] = {12, 4, 1};
            float want[24];
            for (int64_t i = 0; i < 24; i++) {
                int64_t coord = (i / strides[axis]) % dims[axis], base = i - coord * strides[axis];
                double mx = -INFINITY, s = 0.0;
                for (int64_t k = 0; k < dims[axis]; k++)
                    mx = fmax(mx, xs[base + k * strides[axis]]);
                for (int64_t k = 0; k < dims[axis]; k++)
                    s += exp(xs[base + k * strides[axis]] - mx);
                want[i] = log_form ? (float)(xs[i] - mx - log(s)) : (float)(exp(xs[i] - mx) / s);
            }
            tu_assert_close(lt_out(&t, y), want, 24, 1e-6f, 1e-5f, jsons[axis_case]);
            lt_close(&t);
        }
}

/* ---- add / concat --------------------------------------------------------- */

static void test_add(void **state)
{
    (void)state;
    lt t;
    lt_open(&t);
    int32_t in[3] = {lt_f32_input(&t, "a", 3, SHAPE(2, 3, 4)), lt_f32_input(&t, "b", 1, SHAPE(4)),
                     lt_f32_input(&t, "c", 2, SHAPE(3, 1))};
    int32_t y = lt_layer(&t, "add", "{}", "res", in, 3, 1);
    EXPECT_SHAPE(&t, y, 3, 2, 3, 4);
    int32_t y2 = lt_layer(&t, "add", "{}", "res2", in, 2, 1);
    int32_t keep[2] = {y, y2};
    lt_run(&t, keep, 2);
    const float *a = lt_f32(&t, in[0]), *b = lt_f32(&t, in[1]), *c = lt_f32(&t, in[2]);
    float want[24], want2[24];
    for (int i = 0; i < 24; i++) {
        want2[i] = a[i] + b[i % 4];
        want[i] = want2[i] + c[(i / 4) % 3];
    }
    tu_assert_close(lt_out(&t, y), want, 24, 1e-6f, 1e-6f, "add of 3");
    tu_assert_close(lt_out(&t, y2), want2, 24, 1e-6f, 1e-6f, "add of 2");
    lt_close(&t);

    lt_open(&t);
    int32_t g[3] = {lt_f32_input(&t, "a", 3, SHAPE(2, 3, 4)), lt_f32_input(&t, "b", 1, SHAPE(4)),
                    lt_f32_input(&t, "c", 2, SHAPE(3, 1))};
    y = lt_layer(&t, "add", "{}", "res", g, 3, 1);
    lt_check_grads(&t, "add", y, g, 3, 1e-2f, 2e-3f, 24);
    lt_close(&t);
}

static void test_concat(void **state)
{
    (void)state;
    lt t;
    lt_open(&t);
    int32_t in[3] = {lt_f32_input(&t, "a", 3, SHAPE(2, 3, 4)), lt_f32_input(&t, "b", 3, SHAPE(2, 1, 4)),
                     lt_f32_input(&t, "c", 3, SHAPE(2, 2, 4))};
    int32_t y = lt_layer(&t, "concat", "{}", "cat", in, 3, 1);
    EXPECT_SHAPE(&t, y, 3, 2, 6, 4);
    int32_t z_in[2] = {in[0], lt_f32_input(&t, "d", 3, SHAPE(2, 3, 2))};
    int32_t z = lt_layer(&t, "concat", "{\"axis\": -1}", "cat2", z_in, 2, 1);
    EXPECT_SHAPE(&t, z, 3, 2, 3, 6);
    int32_t keep[2] = {y, z};
    lt_run(&t, keep, 2);
    const float *a = lt_f32(&t, in[0]), *b = lt_f32(&t, in[1]), *c = lt_f32(&t, in[2]), *d = lt_f32(&t, z_in[1]);
    float want[48], want2[36];
    for (int n = 0; n < 2; n++)
        for (int r = 0; r < 6; r++)
            for (int k = 0; k < 4; k++)
                want[(n * 6 + r) * 4 + k] = r < 3   ? a[(n * 3 + r) * 4 + k]
                                            : r < 4 ? b[n * 4 + k]
                                                    : c[(n * 2 + r - 4) * 4 + k];
    for (int n = 0; n < 2; n++)
        for (int r = 0; r < 3; r++)
            for (int k = 0; k < 6; k++)
                want2[(n * 3 + r) * 6 + k] = k < 4 ? a[(n * 3 + r) * 4 + k] : d[(n * 3 + r) * 2 + k - 4];
    tu_assert_close(lt_out(&t, y), want, 48, 0.0f, 0.0f, "concat axis 1");
    tu_assert_close(lt_out(&t, z), want2, 36, 0.0f, 0.0f, "concat axis -1");
    lt_close(&t);

    lt_open(&t);
    int32_t g[2] = {lt_f32_input(&t, "a", 3, SHAPE(2, 3, 4)), lt_f32_input(&t, "b", 3, SHAPE(2, 2, 4))};
    y = lt_layer(&t, "concat", "{\"axis\": 1}", "cat", g, 2, 1);
    lt_check_grads(&t, "concat", y, g, 2, 1e-2f, 2e-3f, 24);
    lt_close(&t);
}

/* ---- A small network: layers chained as a model file would chain them ---- */

static void test_small_cnn_builds(void **state)
{
    (void)state;
    lt t;
    lt_open(&t);
    int32_t v = lt_f32_input(&t, "image", 4, SHAPE(2, 1, 8, 8));
    v = lt_layer(&t, "conv2d", "{\"filters\": 4, \"kernel\": 3, \"padding\": 1}", "conv1", &v, 1, 1);
    v = lt_layer(&t, "batch_norm", "{}", "bn1", &v, 1, 1);
    int32_t skip = v;
    v = lt_layer(&t, "relu", "{}", "relu1", &v, 1, 1);
    int32_t both[2] = {v, skip};
    v = lt_layer(&t, "add", "{}", "res1", both, 2, 1);
    v = lt_layer(&t, "max_pool2d", "{\"kernel\": 2}", "pool1", &v, 1, 1);
    v = lt_layer(&t, "flatten", "{}", "flat", &v, 1, 1);
    v = lt_layer(&t, "dropout", "{\"p\": 0.1}", "drop", &v, 1, 1);
    v = lt_layer(&t, "dense", "{\"units\": 10}", "fc", &v, 1, 1);
    v = lt_layer(&t, "log_softmax", "{}", "out", &v, 1, 1);
    EXPECT_SHAPE(&t, v, 2, 2, 10);
    expect_persistent(&t, "fc.weight", VALUE_PARAM, 2, SHAPE(10, 64), PLX_INIT_UNIFORM);
    lt_run(&t, &v, 1);
    const float *y = lt_out(&t, v);
    for (int n = 0; n < 2; n++) {
        double s = 0.0;
        for (int k = 0; k < 10; k++)
            s += exp(y[n * 10 + k]);
        assert_float_equal(s, 1.0, 1e-4);
    }
    lt_close(&t);
}

/* ---- Bad configs ---------------------------------------------------------- */

static void expect_bad(const char *type, const char *json, int32_t ndim, const int64_t *dims, plx_dtype dtype,
                       int32_t n_in, plx_status want, const char *const *needles)
{
    lt t;
    lt_open(&t);
    int32_t in[3];
    for (int32_t i = 0; i < n_in; i++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", (int)i);
        in[i] = lt_input(&t, name, dtype, ndim, dims);
    }
    int32_t out = -1;
    plx_status st = lt_try(&t, type, json, "bad1", in, n_in, 1, 7, &out);
    const char *msg = plx_last_error(t.ctx);
    if (st != want)
        fail_msg("%s %s: status %d, expected %d (%s)", type, json, (int)st, (int)want, msg);
    for (const char *const *n = needles; *n != NULL; n++)
        if (strstr(msg, *n) == NULL)
            fail_msg("%s %s: message \"%s\" lacks \"%s\"", type, json, msg, *n);
    lt_close(&t);
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_bad_configs(void **state)
{
    (void)state;
    const int64_t *v2 = SHAPE(2, 3), *v4 = SHAPE(2, 3, 8, 8);
    /* Checked by the runtime against the declared keys. */
    expect_bad("dense", "{\"units\": 4, \"unitz\": 3}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("test.json", "bad1", "unitz", "unknown key", "dense", "units, use_bias, init"));
    expect_bad("dense", "{\"units\": \"seven\"}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1", ".units", "expected an integer"));
    expect_bad("dense", "{\"units\": 2.5}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT, NEEDLES(".units", "integer"));
    expect_bad("dense", "{}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1", "missing required key 'units'", "dense"));
    expect_bad("conv2d", "{\"filters\": 4, \"kernel\": \"3\"}", 4, v4, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES(".kernel", "list of"));
    expect_bad("dropout", "{\"p\": true}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT, NEEDLES(".p", "a number"));
    expect_bad("add", "{}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT, NEEDLES("bad1", "add", "takes 2 or more inputs"));
    expect_bad("relu", "{\"alpha\": 1}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT, NEEDLES("alpha", "no keys"));
    /* Checked by the layers' builds. */
    expect_bad("dense", "{\"units\": 0}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("test.json", "bad1: dense: 'units' must be > 0, got 0"));
    expect_bad("dense", "{\"units\": 3, \"init\": \"glorot\"}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: dense", "'init'", "glorot", "xavier_uniform"));
    expect_bad("dense", "{\"units\": 3}", 2, v2, PLX_I64, 1, PLX_DTYPE_MISMATCH, NEEDLES("bad1: dense", "i64[2,3]"));
    expect_bad("conv2d", "{\"filters\": 4, \"kernel\": 3}", 2, v2, PLX_F32, 1, PLX_SHAPE_MISMATCH,
               NEEDLES("test.json", "bad1: conv2d: needs a 4-D NCHW input, got f32[2,3]"));
    expect_bad("conv2d", "{\"filters\": 4, \"kernel\": 0}", 4, v4, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: conv2d", "'kernel' must be >= 1"));
    expect_bad("conv2d", "{\"filters\": 4, \"kernel\": [3, 3, 3]}", 4, v4, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: conv2d", "'kernel' takes one integer or two", "got 3"));
    expect_bad("conv2d", "{\"filters\": 0, \"kernel\": 3}", 4, v4, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: conv2d", "'filters' must be > 0"));
    expect_bad("conv2d", "{\"filters\": 4, \"kernel\": 3, \"groups\": 2}", 4, v4, PLX_F32, 1, PLX_SHAPE_MISMATCH,
               NEEDLES("bad1: conv2d", "'groups' 2 must divide"));
    expect_bad("conv2d", "{\"filters\": 4, \"kernel\": 3, \"stride\": 0}", 4, v4, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("'stride' must be >= 1"));
    expect_bad("conv2d", "{\"filters\": 4, \"kernel\": 3, \"padding\": -1}", 4, v4, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("'padding' must be >= 0"));
    /* A kernel larger than the padded input: the op's shape check names the layer. */
    expect_bad("conv2d", "{\"filters\": 4, \"kernel\": 9}", 4, v4, PLX_F32, 1, PLX_SHAPE_MISMATCH,
               NEEDLES("test.json", "bad1", "core.conv2d"));
    expect_bad("max_pool2d", "{\"kernel\": 2}", 3, SHAPE(3, 8, 8), PLX_F32, 1, PLX_SHAPE_MISMATCH,
               NEEDLES("bad1: max_pool2d: needs a 4-D NCHW input"));
    expect_bad("avg_pool2d", "{\"kernel\": 2, \"padding\": 2}", 4, v4, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: avg_pool2d", "'padding' (2, 2) must be at most half of 'kernel'"));
    expect_bad("max_pool2d", "{\"kernel\": 2, \"stride\": [1, 2, 3]}", 4, v4, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("'stride' takes one integer or two"));
    expect_bad("global_avg_pool2d", "{}", 2, v2, PLX_F32, 1, PLX_SHAPE_MISMATCH,
               NEEDLES("bad1: global_avg_pool2d: needs a 4-D NCHW input"));
    expect_bad("dropout", "{\"p\": 1}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: dropout: 'p' must be in [0, 1), got 1"));
    expect_bad("dropout", "{\"p\": -0.1}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT, NEEDLES("'p' must be in [0, 1)"));
    expect_bad("batch_norm", "{\"momentum\": 2}", 4, v4, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: batch_norm: 'momentum' must be in [0, 1]"));
    expect_bad("batch_norm", "{\"eps\": 0}", 4, v4, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: batch_norm: 'eps' must be > 0"));
    expect_bad("batch_norm", "{}", 1, SHAPE(5), PLX_F32, 1, PLX_SHAPE_MISMATCH,
               NEEDLES("bad1: batch_norm: needs an input [N, C, ...]"));
    expect_bad("layer_norm", "{\"normalized_dims\": 3}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: layer_norm: 'normalized_dims' must be in [1, 2]"));
    expect_bad("embedding", "{\"num_embeddings\": 10}", 1, SHAPE(4), PLX_I64, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("missing required key 'embedding_dim'"));
    expect_bad("embedding", "{\"num_embeddings\": 10, \"embedding_dim\": 4}", 1, SHAPE(4), PLX_F32, 1,
               PLX_DTYPE_MISMATCH, NEEDLES("bad1: embedding: needs integer (i64 or i32) indices, got f32[4]"));
    expect_bad("embedding", "{\"num_embeddings\": 10, \"embedding_dim\": 4, \"padding_idx\": 10}", 1, SHAPE(4), PLX_I64,
               1, PLX_INVALID_ARGUMENT, NEEDLES("bad1: embedding: 'padding_idx'"));
    expect_bad("embedding", "{\"num_embeddings\": 0, \"embedding_dim\": 4}", 1, SHAPE(4), PLX_I64, 1,
               PLX_INVALID_ARGUMENT, NEEDLES("'num_embeddings' must be > 0"));
    expect_bad("gelu", "{\"approximate\": \"fast\"}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: gelu: 'approximate'", "fast"));
    expect_bad("softmax", "{\"axis\": 2}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: softmax: 'axis' 2 is out of range"));
    expect_bad("log_softmax", "{\"axis\": -3}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: log_softmax: 'axis' -3"));
    expect_bad("concat", "{\"axis\": 5}", 2, v2, PLX_F32, 2, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: concat: 'axis' 5 is out of range"));
    expect_bad("flatten", "{\"start_dim\": 2}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: flatten: 'start_dim' 2 and 'end_dim' -1"));
    expect_bad("flatten", "{\"start_dim\": 1, \"end_dim\": 0}", 2, v2, PLX_F32, 1, PLX_INVALID_ARGUMENT,
               NEEDLES("bad1: flatten"));
    /* Inputs that do not broadcast: the op's check, naming the layer. */
    {
        lt t;
        lt_open(&t);
        int32_t in[2] = {lt_f32_input(&t, "a", 2, SHAPE(2, 3)), lt_f32_input(&t, "b", 2, SHAPE(2, 4))};
        int32_t out;
        assert_int_equal(lt_try(&t, "add", "{}", "res9", in, 2, 1, 7, &out), PLX_SHAPE_MISMATCH);
        assert_non_null(strstr(plx_last_error(t.ctx), "res9"));
        assert_non_null(strstr(plx_last_error(t.ctx), "core.add"));
        lt_close(&t);
    }
}

static int report_skips(void **state)
{
    (void)state;
    if (skipped_checks > 0)
        print_message("%d gradient check(s) skipped: ops without gradient rules yet (see the SKIP lines)\n",
                      skipped_checks);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plugin_registers_every_type),
        cmocka_unit_test(test_dense_forward),
        cmocka_unit_test(test_dense_params),
        cmocka_unit_test(test_dense_grads),
        cmocka_unit_test(test_conv2d_forward),
        cmocka_unit_test(test_conv2d_params),
        cmocka_unit_test(test_conv2d_grads),
        cmocka_unit_test(test_pool_forward),
        cmocka_unit_test(test_pool_grads),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_batch_norm),
        cmocka_unit_test(test_batch_norm_grads),
        cmocka_unit_test(test_layer_norm),
        cmocka_unit_test(test_layer_norm_grads),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_dropout_grads),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_embedding_grads),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_small_cnn_builds),
        cmocka_unit_test(test_bad_configs),
    };
    return cmocka_run_group_tests_name("plugins/layers", tests, NULL, report_skips);
}

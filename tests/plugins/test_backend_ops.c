/*
 * Every op on every backend against the reference (as ggml's
 * test-backend-ops): for each backend loaded from build/plugins, each op it
 * implements is run on sample calls with random data, and its outputs (and
 * the inputs it updates in place) are compared with cpu_blas's.
 *
 * cpu_blas itself is checked against itself with a different thread budget
 * (1 thread vs 2), which catches races and chunking bugs in its parallel
 * kernels. Samples cover every core op; a test fails if the catalog gains an
 * op without a sample here.
 */
#include "../test_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct input_spec {
    plx_dtype dtype;
    int32_t ndim;
    int64_t shape[4];
    float lo, hi; /* value range; for integer dtypes, [lo, hi] inclusive */
} input_spec;

typedef struct op_sample {
    const char *op;
    const void *attrs;
    int32_t n_in;
    input_spec in[5];
    int32_t n_out;
    uint32_t mutated; /* inputs to compare after the call */
} op_sample;

#define F(nd, ...) {PLX_F32, nd, {__VA_ARGS__}, -1.0f, 1.0f}
#define FP(nd, ...) {PLX_F32, nd, {__VA_ARGS__}, 0.1f, 2.0f}
#define I(hi, nd, ...) {PLX_I64, nd, {__VA_ARGS__}, 0.0f, (float)(hi)}
#define B(nd, ...) {PLX_BOOL, nd, {__VA_ARGS__}, 0.0f, 1.0f}

static const plx_leaky_relu_attrs leaky = {sizeof leaky, 0.1f};
static const plx_elu_attrs elu = {sizeof elu, 0.7f};
static const plx_gelu_attrs gelu_tanh = {sizeof gelu_tanh, 1};
static const plx_softplus_attrs softplus = {sizeof softplus, 2.0f, 5.0f};
static const plx_clamp_attrs clamp = {sizeof clamp, -0.5f, 0.4f, 1, 1};
static const plx_reduce_attrs red_mid = {sizeof red_mid, 1, {1}, 1};
static const plx_argmax_attrs argmax = {sizeof argmax, -1, 0};
static const plx_matmul_attrs mm_tb = {sizeof mm_tb, 0, 1};
static const plx_conv2d_attrs conv = {sizeof conv, {2, 1}, {1, 2}, {1, 1}, 2};
static const plx_conv2d_backward_attrs conv_bd = {sizeof conv_bd, {2, 1}, {1, 2}, {1, 1}, 2, {2, 4, 9, 7}};
static const plx_conv2d_backward_attrs conv_bw = {sizeof conv_bw, {2, 1}, {1, 2}, {1, 1}, 2, {6, 2, 3, 3}};
static const plx_pool2d_attrs pool = {sizeof pool, {3, 2}, {2, 2}, {1, 1}, {1, 1}, 1, 0};
static const plx_batch_norm_attrs bn = {sizeof bn, 1e-5f, 0.1f, 1};
static const plx_layer_norm_attrs ln = {sizeof ln, 1e-5f, 1};
static const plx_softmax_attrs sm = {sizeof sm, 1};
static const plx_loss_attrs loss = {sizeof loss, PLX_REDUCTION_MEAN, 0.1f, -100, 0.5f};
static const plx_dropout_attrs drop = {sizeof drop, 0.3f, 1234, 77};
static const plx_embedding_attrs emb = {sizeof emb, 11, 2};
static const plx_cast_attrs cast = {sizeof cast, {PLX_DTYPE_CODE_INT, 32, 1}};
static const plx_reshape_attrs reshape = {sizeof reshape, 2, {-1, 6}};
static const plx_permute_attrs permute = {sizeof permute, 3, {2, 0, 1}};
static const plx_concat_attrs concat = {sizeof concat, 1};
static const plx_slice_attrs slice = {sizeof slice, 2, {0, 2}, {1, -4}, {3, 100}, {1, 2}};
static const plx_pad_attrs pad = {sizeof pad, 2, {1, 0}, {2, 3}, PLX_PAD_REFLECT, 0.0f};
static const plx_fill_attrs fill = {sizeof fill, {PLX_DTYPE_CODE_FLOAT, 32, 1}, 2, {5, 3}, 2.5};
static const plx_random_attrs rnd = {sizeof rnd, 2, {7, 9}, -2.0f, 3.0f, 99, 5};
static const plx_sgd_attrs sgd = {sizeof sgd, 0.1f, 0.9f, 0.0f, 0.01f, 1, 2};
static const plx_adam_attrs adam = {sizeof adam, 0.01f, 0.9f, 0.999f, 1e-8f, 0.01f, 1, 1, 3};
static const plx_rmsprop_attrs rms = {sizeof rms, 0.01f, 0.9f, 1e-8f, 0.0f, 0.5f, 1};
static const plx_adagrad_attrs adagrad = {sizeof adagrad, 0.1f, 0.01f, 0.0f, 1e-10f, 2};
static const plx_clip_grad_norm_attrs clip = {sizeof clip, 0.5f, 2.0f};

#define UNARY(name, spec, attrs) {"core." name, attrs, 1, {spec}, 1, 0}, {"core." name "_grad", attrs, 2, {F(2, 5, 33), spec}, 1, 0}

static const op_sample samples[] = {
    UNARY("neg", F(2, 5, 33), NULL),
    UNARY("abs", F(2, 5, 33), NULL),
    UNARY("exp", F(2, 5, 33), NULL),
    UNARY("log", FP(2, 5, 33), NULL),
    UNARY("sqrt", FP(2, 5, 33), NULL),
    UNARY("rsqrt", FP(2, 5, 33), NULL),
    UNARY("square", F(2, 5, 33), NULL),
    UNARY("relu", F(2, 5, 33), NULL),
    UNARY("leaky_relu", F(2, 5, 33), &leaky),
    UNARY("elu", F(2, 5, 33), &elu),
    UNARY("gelu", F(2, 5, 33), &gelu_tanh),
    UNARY("sigmoid", F(2, 5, 33), NULL),
    UNARY("tanh", F(2, 5, 33), NULL),
    UNARY("softplus", F(2, 5, 33), &softplus),
    UNARY("clamp", F(2, 5, 33), &clamp),
    {"core.add", NULL, 2, {F(3, 3, 1, 17), F(2, 4, 17)}, 1, 0},
    {"core.sub", NULL, 2, {F(2, 4, 17), F(1, 17)}, 1, 0},
    {"core.mul", NULL, 2, {F(3, 2, 3, 17), F(3, 2, 3, 17)}, 1, 0},
    {"core.div", NULL, 2, {F(2, 4, 17), FP(2, 4, 1)}, 1, 0},
    {"core.pow", NULL, 2, {FP(2, 4, 17), F(2, 4, 17)}, 1, 0},
    {"core.maximum", NULL, 2, {F(2, 4, 17), F(0, 0)}, 1, 0},
    {"core.minimum", NULL, 2, {F(2, 4, 17), F(2, 1, 17)}, 1, 0},
    {"core.eq", NULL, 2, {I(3, 2, 4, 9), I(3, 1, 9)}, 1, 0},
    {"core.ne", NULL, 2, {I(3, 2, 4, 9), I(3, 2, 4, 9)}, 1, 0},
    {"core.lt", NULL, 2, {F(2, 4, 9), F(1, 9)}, 1, 0},
    {"core.le", NULL, 2, {F(2, 4, 9), F(2, 4, 9)}, 1, 0},
    {"core.gt", NULL, 2, {F(2, 4, 9), F(2, 4, 1)}, 1, 0},
    {"core.ge", NULL, 2, {F(2, 4, 9), F(2, 4, 9)}, 1, 0},
    {"core.where", NULL, 3, {B(2, 4, 9), F(2, 4, 9), F(1, 9)}, 1, 0},
    {"core.sum", &red_mid, 1, {F(3, 3, 37, 5)}, 1, 0},
    {"core.mean", NULL, 1, {F(3, 3, 37, 5)}, 1, 0},
    {"core.max", &red_mid, 1, {F(3, 3, 37, 5)}, 1, 0},
    {"core.min", &red_mid, 1, {F(3, 3, 37, 5)}, 1, 0},
    {"core.argmax", &argmax, 1, {F(2, 6, 19)}, 1, 0},
    {"core.matmul", &mm_tb, 2, {F(3, 3, 17, 23), F(2, 29, 23)}, 1, 0},
    {"core.conv2d", &conv, 3, {F(4, 2, 4, 9, 7), F(4, 6, 2, 3, 3), F(1, 6)}, 1, 0},
    {"core.conv2d_backward_data", &conv_bd, 2, {F(4, 2, 6, 5, 9), F(4, 6, 2, 3, 3)}, 1, 0},
    {"core.conv2d_backward_weight", &conv_bw, 2, {F(4, 2, 6, 5, 9), F(4, 2, 4, 9, 7)}, 1, 0},
    {"core.max_pool2d", &pool, 1, {F(4, 2, 3, 9, 8)}, 1, 0},
    {"core.max_pool2d_backward", &pool, 2, {F(4, 2, 3, 5, 5), F(4, 2, 3, 9, 8)}, 1, 0},
    {"core.avg_pool2d", &pool, 1, {F(4, 2, 3, 9, 8)}, 1, 0},
    {"core.avg_pool2d_backward", &pool, 2, {F(4, 2, 3, 5, 5), F(4, 2, 3, 9, 8)}, 1, 0},
    {"core.global_avg_pool2d", NULL, 1, {F(4, 2, 3, 9, 8)}, 1, 0},
    {"core.global_avg_pool2d_backward", NULL, 2, {F(4, 2, 3, 1, 1), F(4, 2, 3, 9, 8)}, 1, 0},
    {"core.batch_norm", &bn, 5, {F(4, 4, 3, 5, 6), F(1, 3), F(1, 3), F(1, 3), FP(1, 3)}, 3, 0x18},
    {"core.batch_norm_backward", &bn, 5, {F(4, 4, 3, 5, 6), F(4, 4, 3, 5, 6), F(1, 3), F(1, 3), FP(1, 3)}, 3, 0},
    {"core.layer_norm", &ln, 3, {F(3, 4, 3, 21), F(1, 21), F(1, 21)}, 3, 0},
    {"core.layer_norm_backward", &ln, 5, {F(3, 4, 3, 21), F(3, 4, 3, 21), F(1, 21), F(2, 4, 3), FP(2, 4, 3)}, 3, 0},
    {"core.softmax", &sm, 1, {F(3, 4, 13, 3)}, 1, 0},
    {"core.softmax_backward", &sm, 2, {F(3, 4, 13, 3), FP(3, 4, 13, 3)}, 1, 0},
    {"core.log_softmax", &sm, 1, {F(3, 4, 13, 3)}, 1, 0},
    {"core.log_softmax_backward", &sm, 2, {F(3, 4, 13, 3), F(3, 4, 13, 3)}, 1, 0},
    {"core.cross_entropy", &loss, 2, {F(2, 9, 7), I(6, 1, 9)}, 1, 0},
    {"core.cross_entropy_backward", &loss, 3, {F(0, 0), F(2, 9, 7), I(6, 1, 9)}, 1, 0},
    {"core.nll_loss", &loss, 2, {F(2, 9, 7), I(6, 1, 9)}, 1, 0},
    {"core.nll_loss_backward", &loss, 3, {F(0, 0), F(2, 9, 7), I(6, 1, 9)}, 1, 0},
    {"core.bce_with_logits", &loss, 2, {F(2, 5, 7), FP(2, 5, 7)}, 1, 0},
    {"core.bce_with_logits_backward", &loss, 3, {F(0, 0), F(2, 5, 7), FP(2, 5, 7)}, 1, 0},
    {"core.mse_loss", &loss, 2, {F(2, 5, 7), F(2, 5, 7)}, 1, 0},
    {"core.mse_loss_backward", &loss, 3, {F(0, 0), F(2, 5, 7), F(2, 5, 7)}, 1, 0},
    {"core.l1_loss", &loss, 2, {F(2, 5, 7), F(2, 5, 7)}, 1, 0},
    {"core.l1_loss_backward", &loss, 3, {F(0, 0), F(2, 5, 7), F(2, 5, 7)}, 1, 0},
    {"core.huber_loss", &loss, 2, {F(2, 5, 7), F(2, 5, 7)}, 1, 0},
    {"core.huber_loss_backward", &loss, 3, {F(0, 0), F(2, 5, 7), F(2, 5, 7)}, 1, 0},
    {"core.dropout", &drop, 1, {F(2, 13, 17)}, 1, 0},
    {"core.dropout_backward", &drop, 1, {F(2, 13, 17)}, 1, 0},
    {"core.embedding", &emb, 2, {F(2, 11, 6), I(10, 2, 3, 5)}, 1, 0},
    {"core.embedding_backward", &emb, 2, {F(3, 3, 5, 6), I(10, 2, 3, 5)}, 1, 0},
    {"core.copy", NULL, 1, {F(3, 2, 3, 5)}, 1, 0},
    {"core.cast", &cast, 1, {F(2, 4, 6)}, 1, 0},
    {"core.reshape", &reshape, 1, {F(3, 2, 3, 6)}, 1, 0},
    {"core.permute", &permute, 1, {F(3, 2, 3, 5)}, 1, 0},
    {"core.concat", &concat, 3, {F(2, 3, 2), F(2, 3, 5), F(2, 3, 1)}, 1, 0},
    {"core.slice", &slice, 1, {F(3, 4, 3, 9)}, 1, 0},
    {"core.pad", &pad, 1, {F(2, 4, 6)}, 1, 0},
    {"core.fill", &fill, 0, {{{0}, 0, {0}, 0, 0}}, 1, 0},
    {"core.random_uniform", &rnd, 0, {{{0}, 0, {0}, 0, 0}}, 1, 0},
    {"core.random_normal", &rnd, 0, {{{0}, 0, {0}, 0, 0}}, 1, 0},
    {"core.sgd_update", &sgd, 3, {F(2, 7, 5), F(2, 7, 5), F(2, 7, 5)}, 0, 0x5},
    {"core.adam_update", &adam, 5, {F(2, 7, 5), F(2, 7, 5), F(2, 7, 5), FP(2, 7, 5), FP(2, 7, 5)}, 0, 0x1d},
    {"core.rmsprop_update", &rms, 5, {F(2, 7, 5), F(2, 7, 5), FP(2, 7, 5), F(2, 7, 5), F(2, 7, 5)}, 0, 0x1d},
    {"core.adagrad_update", &adagrad, 3, {F(2, 7, 5), F(2, 7, 5), FP(2, 7, 5)}, 0, 0x5},
    {"core.clip_grad_norm", &clip, 3, {F(2, 7, 5), F(1, 9), F(3, 2, 2, 2)}, 1, 0x7},
};
#define N_SAMPLES (sizeof samples / sizeof samples[0])

static void fill_random(plx_tensor *t, const input_spec *s, uint64_t *rng)
{
    int64_t n = plx_tensor_numel(t);
    void *p = plx_tensor_data(t);
    for (int64_t i = 0; i < n; i++) {
        if (s->dtype.code == PLX_DTYPE_CODE_FLOAT)
            ((float *)p)[i] = tu_rand_uniform(rng, s->lo, s->hi);
        else if (s->dtype.code == PLX_DTYPE_CODE_BOOL)
            ((uint8_t *)p)[i] = (uint8_t)tu_rand_int(rng, 0, 1);
        else
            ((int64_t *)p)[i] = tu_rand_int(rng, (int64_t)s->lo, (int64_t)s->hi);
    }
}

/* Values of any dtype as doubles, for comparison. */
static double value_at(const plx_tensor *t, int64_t i)
{
    const plx_tensor_desc *d = plx_tensor_desc_get(t);
    const void *p = plx_tensor_data(t);
    if (d->dtype.code == PLX_DTYPE_CODE_FLOAT && d->dtype.bits == 32)
        return ((const float *)p)[i];
    if (d->dtype.code == PLX_DTYPE_CODE_INT && d->dtype.bits == 64)
        return (double)((const int64_t *)p)[i];
    if (d->dtype.code == PLX_DTYPE_CODE_INT && d->dtype.bits == 32)
        return ((const int32_t *)p)[i];
    return ((const uint8_t *)p)[i];
}

static void compare(const char *what, const plx_tensor *got, const plx_tensor *want)
{
    int64_t n = plx_tensor_numel(want);
    assert_int_equal(plx_tensor_numel(got), n);
    for (int64_t i = 0; i < n; i++) {
        double g = value_at(got, i), w = value_at(want, i);
        if (isnan(g) && isnan(w))
            continue;
        if (!(fabs(g - w) <= 1e-4 + 1e-4 * fabs(w)))
            fail_msg("%s: element %lld: got %.8g, reference %.8g", what, (long long)i, g, w);
    }
}

/* Runs sample s on ctx with inputs made from seed; returns outputs and the
 * (possibly updated) inputs. */
static plx_status run_sample(plx_context *ctx, const op_sample *s, uint64_t seed, plx_tensor **ins,
                             plx_tensor **outs)
{
    uint64_t rng = seed;
    for (int32_t i = 0; i < s->n_in; i++) {
        ins[i] = tu_tensor(ctx, s->in[i].dtype, s->in[i].ndim, s->in[i].shape);
        fill_random(ins[i], &s->in[i], &rng);
    }
    for (int32_t i = 0; i < s->n_out; i++)
        outs[i] = NULL;
    return plx_op_run(ctx, s->op, s->attrs, ins, (size_t)s->n_in, outs, (size_t)s->n_out);
}

static void free_all(plx_tensor **t, int32_t n)
{
    for (int32_t i = 0; i < n; i++)
        plx_tensor_free(t[i]);
}

/* Checks every sample the backend of `ctx` implements against `ref`. */
static int check_backend(plx_context *ctx, plx_context *ref, const char *label)
{
    int checked = 0;
    for (size_t k = 0; k < N_SAMPLES; k++) {
        const op_sample *s = &samples[k];
        char explain[4096];
        plx_tensor *probe_in[5];
        uint64_t rng = 1;
        for (int32_t i = 0; i < s->n_in; i++) {
            probe_in[i] = tu_tensor(ctx, s->in[i].dtype, s->in[i].ndim, s->in[i].shape);
            fill_random(probe_in[i], &s->in[i], &rng);
        }
        plx_status routable = plx_op_explain(ctx, s->op, s->attrs, probe_in, (size_t)s->n_in, explain, sizeof explain);
        free_all(probe_in, s->n_in);
        if (routable != PLX_OK) {
            if (strcmp(label, "cpu_blas (2 threads vs 1)") == 0) /* the reference must take every sample */
                fail_msg("%s: %s", s->op, explain);
            continue; /* this backend does not take this call */
        }
        plx_tensor *in_a[5], *out_a[3], *in_b[5], *out_b[3];
        uint64_t seed = 1000 + k;
        plx_status st = run_sample(ctx, s, seed, in_a, out_a);
        if (st != PLX_OK)
            fail_msg("%s: %s failed: %s", label, s->op, plx_last_error(ctx));
        st = run_sample(ref, s, seed, in_b, out_b);
        if (st != PLX_OK)
            fail_msg("reference: %s failed: %s", s->op, plx_last_error(ref));
        char what[160];
        for (int32_t i = 0; i < s->n_out; i++) {
            snprintf(what, sizeof what, "%s: %s output %d", label, s->op, (int)i);
            compare(what, out_a[i], out_b[i]);
        }
        for (int32_t i = 0; i < s->n_in; i++)
            if (s->mutated & (1u << i)) {
                snprintf(what, sizeof what, "%s: %s updated input %d", label, s->op, (int)i);
                compare(what, in_a[i], in_b[i]);
            }
        free_all(in_a, s->n_in);
        free_all(in_b, s->n_in);
        free_all(out_a, s->n_out);
        free_all(out_b, s->n_out);
        checked++;
    }
    return checked;
}

static void test_every_core_op_has_a_sample(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    for (int32_t id = 0; id < PLX_OP_CORE_COUNT_; id++) {
        const char *name = plx_op_name(ctx, id);
        bool found = false;
        for (size_t k = 0; k < N_SAMPLES && !found; k++)
            found = strcmp(samples[k].op, name) == 0;
        if (!found)
            fail_msg("no sample call for %s in tests/plugins/test_backend_ops.c", name);
    }
    plx_context_close(ctx);
}

static plx_context *open_threads(const char *backends, int32_t threads)
{
    const char *const paths[] = {PLX_TEST_PLUGIN_DIR};
    plx_context_options o;
    tu_options_init(&o, paths, 1);
    o.backends = backends;
    o.num_threads = threads;
    return tu_open_options(&o);
}

/* cpu_blas runs every sample, and gives the same results on 2 threads as on 1. */
static void test_cpu_blas_threads_agree(void **state)
{
    (void)state;
    plx_context *one = open_threads("cpu_blas", 1), *two = open_threads("cpu_blas", 2);
    int checked = check_backend(two, one, "cpu_blas (2 threads vs 1)");
    assert_int_equal(checked, (int)N_SAMPLES);
    plx_context_close(one);
    plx_context_close(two);
}

/* Every other backend built into build/plugins, on the ops it takes. */
static void test_other_backends_match_reference(void **state)
{
    (void)state;
    plx_context *all = tu_open();
    plx_context *ref = open_threads("cpu_blas", 2);
    int others = 0;
    for (size_t b = 0; b < plx_backend_count(all); b++) {
        plx_backend_info bi = {.struct_size = sizeof bi};
        assert_int_equal(plx_backend_get(all, b, &bi), PLX_OK);
        if (strcmp(bi.name, "cpu_blas") == 0)
            continue;
        others++;
        plx_context *only = open_threads(bi.name, 2);
        int checked = check_backend(only, ref, bi.name);
        printf("backend %s: %d sample calls match cpu_blas\n", bi.name, checked);
        plx_context_close(only);
    }
    plx_context_close(ref);
    plx_context_close(all);
    if (others == 0) {
        printf("skipped: only cpu_blas is built into %s; no other backend to compare with it\n",
               PLX_TEST_PLUGIN_DIR);
        skip();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_core_op_has_a_sample),
        cmocka_unit_test(test_cpu_blas_threads_agree),
        cmocka_unit_test(test_other_backends_match_reference),
    };
    return cmocka_run_group_tests_name("plugins/backend_ops", tests, NULL, NULL);
}

/* Eager dispatch: validation of calls, attribute structs from older headers,
 * caller-made outputs, explanations, and concurrent use of one context. */
#include "../test_util.h"

#include <pthread.h>
#include <string.h>

static void test_unknown_op_and_counts(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 1, (int64_t[]){3}), *y = NULL;
    assert_int_equal(plx_op_run(ctx, "core.frobnicate", NULL, &x, 1, &y, 1), PLX_NOT_FOUND);
    assert_non_null(strstr(plx_last_error(ctx), "core.frobnicate"));
    assert_int_equal(plx_op_run(ctx, NULL, NULL, &x, 1, &y, 1), PLX_INVALID_ARGUMENT);
    plx_tensor *two[2] = {x, x};
    assert_int_equal(plx_op_run(ctx, "core.relu", NULL, two, 2, &y, 1), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(plx_last_error(ctx), "core.relu: takes 1 input, got 2"));
    assert_int_equal(plx_op_run(ctx, "core.relu", NULL, &x, 1, NULL, 1), PLX_INVALID_ARGUMENT);
    plx_tensor *null_in[1] = {NULL};
    assert_int_equal(plx_op_run(ctx, "core.relu", NULL, null_in, 1, &y, 1), PLX_INVALID_ARGUMENT);
    assert_null(y);
    int32_t id = -1;
    assert_int_equal(plx_op_find(ctx, "core.matmul", &id), PLX_OK);
    assert_int_equal(id, PLX_OP_MATMUL);
    assert_string_equal(plx_op_name(ctx, id), "core.matmul");
    assert_int_equal(plx_op_run_id(ctx, 0x7fff0000, NULL, &x, 1, &y, 1), PLX_NOT_FOUND);
    plx_tensor_free(x);
    plx_context_close(ctx);
}

static void test_shape_errors_name_op_and_shapes(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *a = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){2, 3});
    plx_tensor *b = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){4, 5});
    plx_tensor *ab[2] = {a, b}, *y = NULL;
    assert_int_equal(plx_op_run(ctx, "core.add", NULL, ab, 2, &y, 1), PLX_SHAPE_MISMATCH);
    const char *msg = plx_last_error(ctx);
    assert_non_null(strstr(msg, "core.add"));
    assert_non_null(strstr(msg, "f32[2,3]"));
    assert_non_null(strstr(msg, "f32[4,5]"));
    assert_null(y);
    plx_tensor_free(a);
    plx_tensor_free(b);
    plx_context_close(ctx);
}

/* A caller-made output must match the inferred result; it then receives it. */
static void test_caller_outputs(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 7;
    plx_tensor *x = tu_uniform(ctx, &rng, 2, (int64_t[]){3, 4}, -1, 1);
    plx_tensor *wrong = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){4, 3});
    assert_int_equal(plx_op_run(ctx, "core.abs", NULL, &x, 1, &wrong, 1), PLX_SHAPE_MISMATCH);
    assert_non_null(strstr(plx_last_error(ctx), "output 0 is f32[4,3] but the result is f32[3,4]"));
    plx_tensor *wrong_dtype = tu_tensor(ctx, PLX_I64, 2, (int64_t[]){3, 4});
    assert_int_equal(plx_op_run(ctx, "core.abs", NULL, &x, 1, &wrong_dtype, 1), PLX_SHAPE_MISMATCH);
    plx_tensor *out = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){3, 4});
    plx_tensor *keep = out;
    tu_run(ctx, "core.abs", NULL, &x, 1, &out, 1);
    assert_ptr_equal(out, keep);
    for (int i = 0; i < 12; i++)
        assert_true(tu_f32(out)[i] == (tu_f32(x)[i] < 0 ? -tu_f32(x)[i] : tu_f32(x)[i]));
    plx_tensor_free(x);
    plx_tensor_free(wrong);
    plx_tensor_free(wrong_dtype);
    plx_tensor_free(out);
    plx_context_close(ctx);
}

/* An attrs struct from older headers (shorter struct_size) gets today's
 * defaults for the fields it lacks; a garbage struct_size is refused. */
static void test_attrs_struct_size(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *x = tu_from_f32(ctx, 1, (int64_t[]){4}, (float[]){-2, -1, 1, 2});
    plx_tensor *y = NULL;
    /* Only struct_size: negative_slope takes its default, 0.01. */
    uint32_t only_size = sizeof(uint32_t);
    tu_run(ctx, "core.leaky_relu", &only_size, &x, 1, &y, 1);
    tu_assert_close(tu_f32(y), (float[]){-0.02f, -0.01f, 1, 2}, 4, 1e-7f, 0, "leaky_relu defaults");
    plx_tensor_free(y);
    y = NULL;
    plx_leaky_relu_attrs a = {sizeof a, 0.5f};
    tu_run(ctx, "core.leaky_relu", &a, &x, 1, &y, 1);
    tu_assert_close(tu_f32(y), (float[]){-1, -0.5f, 1, 2}, 4, 1e-7f, 0, "leaky_relu slope 0.5");
    plx_tensor_free(y);
    y = NULL;
    uint32_t garbage = 0;
    assert_int_equal(plx_op_run(ctx, "core.leaky_relu", &garbage, &x, 1, &y, 1), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(plx_last_error(ctx), "struct_size"));
    plx_tensor_free(x);
    plx_context_close(ctx);
}

static void test_explain(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *a = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){8, 16});
    plx_tensor *b = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){16, 4});
    plx_tensor *ab[2] = {a, b};
    char buf[2048];
    assert_int_equal(plx_op_explain(ctx, "core.matmul", NULL, ab, 2, buf, sizeof buf), PLX_OK);
    assert_non_null(strstr(buf, "core.matmul(f32[8,16], f32[16,4])"));
    assert_non_null(strstr(buf, "-> cpu_blas cpu0"));
    /* A call that cannot be valid explains why. */
    plx_tensor *ba[2] = {b, b};
    assert_int_equal(plx_op_explain(ctx, "core.matmul", NULL, ba, 2, buf, sizeof buf), PLX_SHAPE_MISMATCH);
    assert_non_null(strstr(buf, "core.matmul"));
    plx_tensor_free(a);
    plx_tensor_free(b);
    plx_context_close(ctx);
}

typedef struct worker_arg {
    plx_context *ctx;
    int seed;
    int failures;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *w = p;
    uint64_t rng = (uint64_t)w->seed;
    for (int iter = 0; iter < 50; iter++) {
        int64_t m = 1 + (int64_t)(tu_rng_next(&rng) % 40), k = 1 + (int64_t)(tu_rng_next(&rng) % 40);
        plx_tensor *a = NULL, *b = NULL, *y = NULL;
        plx_tensor_create(w->ctx, PLX_F32, 2, (int64_t[]){m, k}, &a);
        plx_tensor_create(w->ctx, PLX_F32, 2, (int64_t[]){m, k}, &b);
        float *pa = plx_tensor_data(a), *pb = plx_tensor_data(b);
        for (int64_t i = 0; i < m * k; i++) {
            pa[i] = (float)(i % 13);
            pb[i] = (float)w->seed;
        }
        plx_tensor *ab[2] = {a, b};
        if (plx_op_run(w->ctx, "core.add", NULL, ab, 2, &y, 1) != PLX_OK)
            w->failures++;
        else
            for (int64_t i = 0; i < m * k; i++)
                if (((float *)plx_tensor_data(y))[i] != (float)(i % 13) + (float)w->seed)
                    w->failures++;
        /* Errors stay on the thread that made them. */
        plx_tensor *bad[2] = {a, NULL};
        plx_tensor *y2 = NULL;
        if (plx_op_run(w->ctx, "core.add", NULL, bad, 2, &y2, 1) != PLX_INVALID_ARGUMENT ||
            strstr(plx_last_error(w->ctx), "input 1 is NULL") == NULL)
            w->failures++;
        plx_tensor_free(a);
        plx_tensor_free(b);
        plx_tensor_free(y);
    }
    return NULL;
}

static void test_concurrent_use(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    pthread_t th[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){ctx, i + 1, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    plx_context_close(ctx);
}

static void test_context_options(void **state)
{
    (void)state;
    plx_context *ctx = NULL;
    plx_context_options o;
    plx_context_options_init(&o);
    o.struct_size = 2;
    assert_int_equal(plx_context_open(&o, &ctx), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(plx_last_error(NULL), "struct_size"));
    plx_context_options_init(&o);
    o.num_threads = -3;
    assert_int_equal(plx_context_open(&o, &ctx), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(plx_last_error(NULL), "num_threads"));
    plx_context_options_init(&o);
    o.ignore_env = 1;
    o.no_default_dirs = 1;
    o.backends = "cpu_blas,,x";
    assert_int_equal(plx_context_open(&o, &ctx), PLX_INVALID_ARGUMENT);
    assert_null(ctx);
    assert_int_equal(plx_context_open(NULL, NULL), PLX_INVALID_ARGUMENT);
    /* An older, shorter options struct is accepted (fields past it default). */
    plx_context_options_init(&o);
    o.struct_size = (uint32_t)offsetof(plx_context_options, backends);
    const char *paths[] = {PLX_TEST_PLUGIN_DIR};
    o.plugin_paths = paths;
    o.n_plugin_paths = 1;
    o.ignore_env = 1;
    o.no_default_dirs = 1;
    assert_int_equal(plx_context_open(&o, &ctx), PLX_OK);
    assert_true(plx_context_num_threads(ctx) >= 1);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_op_and_counts),
        cmocka_unit_test(test_shape_errors_name_op_and_shapes),
        cmocka_unit_test(test_caller_outputs),
        cmocka_unit_test(test_attrs_struct_size),
        cmocka_unit_test(test_explain),
        cmocka_unit_test(test_concurrent_use),
        cmocka_unit_test(test_context_options),
    };
    return cmocka_run_group_tests_name("runtime/dispatch", tests, NULL, NULL);
}

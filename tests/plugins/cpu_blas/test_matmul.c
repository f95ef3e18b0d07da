/* Tests of core.matmul on cpu_blas against a naive double-precision
 * reference: batch broadcasting, every transpose combination, strided
 * inputs, degenerate sizes and bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../test_util.h"

typedef struct matmul_case {
    int32_t a_ndim;
    int64_t a_shape[PLX_MAX_DIMS];
    int32_t b_ndim;
    int64_t b_shape[PLX_MAX_DIMS];
    int32_t trans_a, trans_b;
} matmul_case;

/* y = op(a) x op(b) with NumPy batch broadcasting, in double. `y_shape`
 * receives the output shape and the return value is its element count. */
static double *reference_matmul(const float *a, const int64_t *as, int32_t an, const float *b, const int64_t *bs,
                                int32_t bn, int32_t ta, int32_t tb, int64_t *y_shape, int32_t *y_ndim)
{
    int64_t m = ta ? as[an - 1] : as[an - 2], k = ta ? as[an - 2] : as[an - 1];
    int64_t n = tb ? bs[bn - 2] : bs[bn - 1];
    int32_t batch_nd = (an > bn ? an : bn) - 2;
    int64_t batch = 1;
    for (int32_t d = 0; d < batch_nd; d++) {
        int32_t da = d - (batch_nd - (an - 2)), db = d - (batch_nd - (bn - 2));
        int64_t sa = da >= 0 ? as[da] : 1, sb = db >= 0 ? bs[db] : 1;
        y_shape[d] = sa == 1 ? sb : sa;
        batch *= y_shape[d];
    }
    y_shape[batch_nd] = m;
    y_shape[batch_nd + 1] = n;
    *y_ndim = batch_nd + 2;
    double *y = calloc((size_t)(batch * m * n) + 1, sizeof(double));
    assert_non_null(y);
    for (int64_t bi = 0; bi < batch; bi++) {
        /* Decompose the batch index and map it into a's and b's batches. */
        int64_t rest = bi, a_off = 0, b_off = 0, a_stride = 1, b_stride = 1;
        for (int32_t d = batch_nd - 1; d >= 0; d--) {
            int64_t i = rest % y_shape[d];
            rest /= y_shape[d];
            int32_t da = d - (batch_nd - (an - 2)), db = d - (batch_nd - (bn - 2));
            if (da >= 0) {
                a_off += (as[da] == 1 ? 0 : i) * a_stride;
                a_stride *= as[da];
            }
            if (db >= 0) {
                b_off += (bs[db] == 1 ? 0 : i) * b_stride;
                b_stride *= bs[db];
            }
        }
        const float *am = a + a_off * m * k, *bm = b + b_off * k * n;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0.0;
                for (int64_t l = 0; l < k; l++) {
                    double av = ta ? am[l * m + i] : am[i * k + l];
                    double bv = tb ? bm[j * k + l] : bm[l * n + j];
                    acc += av * bv;
                }
                y[(bi * m + i) * n + j] = acc;
            }
    }
    return y;
}

static void check_against_reference(plx_tensor *y, const double *want, int64_t count, float tol, const char *what)
{
    assert_int_equal(plx_tensor_numel(y), count);
    float *w = malloc((size_t)count * sizeof(float) + 4);
    assert_non_null(w);
    for (int64_t i = 0; i < count; i++)
        w[i] = (float)want[i];
    tu_assert_close(tu_f32(y), w, count, tol, tol, what);
    free(w);
}

static void run_case(plx_context *ctx, uint64_t *rng, const matmul_case *c)
{
    plx_tensor *a = tu_uniform(ctx, rng, c->a_ndim, c->a_shape, -1.0f, 1.0f);
    plx_tensor *b = tu_uniform(ctx, rng, c->b_ndim, c->b_shape, -1.0f, 1.0f);
    plx_matmul_attrs attrs = PLX_MATMUL_ATTRS_DEFAULT;
    attrs.trans_a = c->trans_a;
    attrs.trans_b = c->trans_b;
    plx_tensor *y = NULL;
    tu_run(ctx, "core.matmul", &attrs, (plx_tensor *[]){a, b}, 2, &y, 1);
    int64_t y_shape[PLX_MAX_DIMS];
    int32_t y_ndim;
    double *want = reference_matmul(tu_f32(a), c->a_shape, c->a_ndim, tu_f32(b), c->b_shape, c->b_ndim, c->trans_a,
                                    c->trans_b, y_shape, &y_ndim);
    const plx_tensor_desc *d = plx_tensor_desc_get(y);
    assert_int_equal(d->ndim, y_ndim);
    int64_t count = 1;
    for (int32_t i = 0; i < y_ndim; i++) {
        assert_int_equal(d->shape[i], y_shape[i]);
        count *= y_shape[i];
    }
    char what[160];
    snprintf(what, sizeof what, "matmul a ndim %d b ndim %d ta %d tb %d", (int)c->a_ndim, (int)c->b_ndim,
             (int)c->trans_a, (int)c->trans_b);
    check_against_reference(y, want, count, 1e-4f, what);
    free(want);
    plx_tensor_free(a);
    plx_tensor_free(b);
    plx_tensor_free(y);
}

/* Shapes as seen by a plain product [.., M, K] x [.., K, N]; the stored
 * shapes swap the last two dims where the case transposes. */
static matmul_case make_case(int32_t a_ndim, const int64_t *a_batch, int32_t b_ndim, const int64_t *b_batch,
                             int64_t m, int64_t k, int64_t n, int32_t ta, int32_t tb)
{
    matmul_case c;
    memset(&c, 0, sizeof c);
    c.a_ndim = a_ndim;
    c.b_ndim = b_ndim;
    for (int32_t d = 0; d < a_ndim - 2; d++)
        c.a_shape[d] = a_batch[d];
    for (int32_t d = 0; d < b_ndim - 2; d++)
        c.b_shape[d] = b_batch[d];
    c.a_shape[a_ndim - 2] = ta ? k : m;
    c.a_shape[a_ndim - 1] = ta ? m : k;
    c.b_shape[b_ndim - 2] = tb ? n : k;
    c.b_shape[b_ndim - 1] = tb ? k : n;
    c.trans_a = ta;
    c.trans_b = tb;
    return c;
}

static void test_matmul_2d_all_transposes(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 1;
    static const int64_t sizes[][3] = {{1, 1, 1}, {3, 7, 5}, {17, 3, 1}, {1, 17, 9}, {33, 65, 17}, {64, 48, 80}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int32_t ta = 0; ta < 2; ta++)
            for (int32_t tb = 0; tb < 2; tb++) {
                matmul_case c = make_case(2, NULL, 2, NULL, sizes[s][0], sizes[s][1], sizes[s][2], ta, tb);
                run_case(ctx, &rng, &c);
            }
    plx_context_close(ctx);
}

static void test_matmul_batched_broadcast(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 2;
    for (int32_t ta = 0; ta < 2; ta++)
        for (int32_t tb = 0; tb < 2; tb++) {
            /* Same batch on both sides. */
            matmul_case c = make_case(3, (int64_t[]){4}, 3, (int64_t[]){4}, 5, 7, 3, ta, tb);
            run_case(ctx, &rng, &c);
            /* b is one matrix shared by the batch (the folded path when !ta). */
            c = make_case(4, (int64_t[]){2, 3}, 2, NULL, 7, 9, 5, ta, tb);
            run_case(ctx, &rng, &c);
            /* a is one matrix shared by the batch. */
            c = make_case(2, NULL, 3, (int64_t[]){5}, 3, 4, 17, ta, tb);
            run_case(ctx, &rng, &c);
            /* Both broadcast against each other: [2,1] x [1,3] -> [2,3]. */
            c = make_case(4, (int64_t[]){2, 1}, 4, (int64_t[]){1, 3}, 6, 5, 4, ta, tb);
            run_case(ctx, &rng, &c);
            /* Different ranks with size-1 dims: [3,1,1] x [4,1] -> [3,4,1]. */
            c = make_case(5, (int64_t[]){3, 1, 1}, 4, (int64_t[]){4, 1}, 2, 3, 3, ta, tb);
            run_case(ctx, &rng, &c);
            /* b's batch dims are all 1: still one shared matrix. */
            c = make_case(3, (int64_t[]){6}, 4, (int64_t[]){1, 1}, 4, 8, 3, ta, tb);
            run_case(ctx, &rng, &c);
        }
    plx_context_close(ctx);
}

/* Many small products go to the thread pool; big ones to OpenBLAS's threads. */
static void test_matmul_batched_small_and_large(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 3;
    matmul_case c = make_case(3, (int64_t[]){67}, 3, (int64_t[]){67}, 9, 16, 11, 0, 1);
    run_case(ctx, &rng, &c);
    c = make_case(4, (int64_t[]){3, 100}, 4, (int64_t[]){1, 100}, 16, 32, 17, 1, 1);
    run_case(ctx, &rng, &c);
    c = make_case(3, (int64_t[]){3}, 3, (int64_t[]){3}, 70, 80, 90, 1, 0);
    run_case(ctx, &rng, &c);
    c = make_case(3, (int64_t[]){5}, 2, NULL, 61, 130, 70, 0, 0);
    run_case(ctx, &rng, &c);
    plx_context_close(ctx);
}

/* A transposed view of another tensor's memory: the runtime compacts it
 * before the kernel sees it. */
static void test_matmul_strided_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 4;
    const int64_t m = 5, k = 7, n = 6;
    plx_tensor *base = tu_uniform(ctx, &rng, 2, (int64_t[]){k, m}, -1.0f, 1.0f);
    int64_t view_shape[2] = {m, k}, view_strides[2] = {1, m};
    plx_tensor_desc view = {plx_tensor_data(base), {PLX_DL_CPU, 0}, 2, PLX_F32, view_shape, view_strides, 0};
    plx_tensor *a = NULL;
    assert_int_equal(plx_tensor_wrap(ctx, &view, NULL, NULL, &a), PLX_OK);
    plx_tensor *b = tu_uniform(ctx, &rng, 2, (int64_t[]){k, n}, -1.0f, 1.0f);
    plx_tensor *y = NULL;
    tu_run(ctx, "core.matmul", NULL, (plx_tensor *[]){a, b}, 2, &y, 1);
    /* The view is base^T, so the reference multiplies base with trans_a. */
    int64_t y_shape[PLX_MAX_DIMS];
    int32_t y_ndim;
    double *want = reference_matmul(tu_f32(base), (int64_t[]){k, m}, 2, tu_f32(b), (int64_t[]){k, n}, 2, 1, 0,
                                    y_shape, &y_ndim);
    check_against_reference(y, want, m * n, 1e-5f, "matmul of a transposed view");
    free(want);
    plx_tensor_free(y);
    plx_tensor_free(a);
    plx_tensor_free(b);
    plx_tensor_free(base);
    plx_context_close(ctx);
}

static void test_matmul_degenerate_sizes(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 5;
    /* K == 0: every output element is an empty sum. */
    plx_tensor *a = tu_tensor(ctx, PLX_F32, 3, (int64_t[]){2, 3, 0});
    plx_tensor *b = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){0, 4});
    plx_tensor *y = tu_uniform(ctx, &rng, 3, (int64_t[]){2, 3, 4}, 5.0f, 6.0f); /* caller-given, not zero */
    tu_run(ctx, "core.matmul", NULL, (plx_tensor *[]){a, b}, 2, &y, 1);
    for (int64_t i = 0; i < 24; i++)
        assert_true(tu_f32(y)[i] == 0.0f);
    plx_tensor_free(a);
    plx_tensor_free(b);
    plx_tensor_free(y);
    /* An empty batch and an empty M. */
    a = tu_tensor(ctx, PLX_F32, 3, (int64_t[]){0, 3, 2});
    b = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){2, 4});
    y = NULL;
    tu_run(ctx, "core.matmul", NULL, (plx_tensor *[]){a, b}, 2, &y, 1);
    assert_int_equal(plx_tensor_numel(y), 0);
    plx_tensor_free(a);
    plx_tensor_free(y);
    a = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){0, 2});
    y = NULL;
    tu_run(ctx, "core.matmul", NULL, (plx_tensor *[]){a, b}, 2, &y, 1);
    assert_int_equal(plx_tensor_desc_get(y)->shape[0], 0);
    assert_int_equal(plx_tensor_desc_get(y)->shape[1], 4);
    plx_tensor_free(a);
    plx_tensor_free(b);
    plx_tensor_free(y);
    plx_context_close(ctx);
}

static void expect_failure(plx_context *ctx, const plx_matmul_attrs *attrs, plx_tensor *a, plx_tensor *b,
                           plx_status want, const char *const *substrings)
{
    plx_tensor *y = NULL;
    plx_status st = plx_op_run(ctx, "core.matmul", attrs, (plx_tensor *[]){a, b}, 2, &y, 1);
    assert_int_equal(st, want);
    assert_null(y);
    const char *msg = plx_last_error(ctx);
    for (const char *const *s = substrings; *s != NULL; s++)
        if (strstr(msg, *s) == NULL)
            fail_msg("error message \"%s\" lacks \"%s\"", msg, *s);
}

static void test_matmul_bad_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *a23 = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){2, 3});
    plx_tensor *b45 = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){4, 5});
    plx_tensor *b35 = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){3, 5});
    plx_tensor *v3 = tu_tensor(ctx, PLX_F32, 1, (int64_t[]){3});
    plx_tensor *i23 = tu_tensor(ctx, PLX_I64, 2, (int64_t[]){2, 3});
    plx_tensor *a223 = tu_tensor(ctx, PLX_F32, 3, (int64_t[]){2, 2, 3});
    plx_tensor *b335 = tu_tensor(ctx, PLX_F32, 3, (int64_t[]){3, 3, 5});

    expect_failure(ctx, NULL, a23, b45, PLX_SHAPE_MISMATCH,
                   (const char *[]){"core.matmul", "inner dims differ", "f32[2,3]", "f32[4,5]", NULL});
    plx_matmul_attrs tb = PLX_MATMUL_ATTRS_DEFAULT;
    tb.trans_b = 1;
    expect_failure(ctx, &tb, a23, b35, PLX_SHAPE_MISMATCH,
                   (const char *[]){"core.matmul", "inner dims differ", "(transposed)", "K=5", NULL});
    expect_failure(ctx, NULL, a23, v3, PLX_SHAPE_MISMATCH, (const char *[]){"at least 2 dims", "f32[3]", NULL});
    expect_failure(ctx, NULL, i23, b35, PLX_DTYPE_MISMATCH, (const char *[]){"core.matmul", "i64[2,3]", NULL});
    expect_failure(ctx, NULL, a23, (plx_tensor *)i23, PLX_DTYPE_MISMATCH, (const char *[]){"same dtype", NULL});
    expect_failure(ctx, NULL, a223, b335, PLX_SHAPE_MISMATCH,
                   (const char *[]){"do not broadcast", "f32[2,2,3]", "f32[3,3,5]", NULL});
    plx_matmul_attrs bad = PLX_MATMUL_ATTRS_DEFAULT;
    bad.trans_a = 2;
    expect_failure(ctx, &bad, a23, b35, PLX_INVALID_ARGUMENT, (const char *[]){"trans_a", NULL});

    plx_tensor_free(a23);
    plx_tensor_free(b45);
    plx_tensor_free(b35);
    plx_tensor_free(v3);
    plx_tensor_free(i23);
    plx_tensor_free(a223);
    plx_tensor_free(b335);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_2d_all_transposes),
        cmocka_unit_test(test_matmul_batched_broadcast),
        cmocka_unit_test(test_matmul_batched_small_and_large),
        cmocka_unit_test(test_matmul_strided_input),
        cmocka_unit_test(test_matmul_degenerate_sizes),
        cmocka_unit_test(test_matmul_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

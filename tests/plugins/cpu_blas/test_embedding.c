/* test_embedding.c — core.embedding and core.embedding_backward on cpu_blas:
 * naive gather and scatter-add references over random shapes with i64 and
 * i32 indices, repeated indices, padding_idx, a strided weight, sizes that
 * take the parallel paths, finite differences, and bad input (out-of-range
 * indices named with their position). */
#include "../../test_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define expect_failure tu_expect_failure1

/* Indices in [0, rows) (repeats likely when count > rows), as i64 or i32. */
static plx_tensor *random_indices(plx_context *ctx, uint64_t *rng, bool wide, int32_t ndim, const int64_t *shape,
                                  int64_t rows, int64_t **values)
{
    plx_tensor *t = tu_tensor(ctx, wide ? PLX_I64 : PLX_I32, ndim, shape);
    int64_t n = plx_tensor_numel(t);
    *values = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) {
        (*values)[i] = tu_rand_int(rng, 0, rows - 1);
        if (wide)
            ((int64_t *)plx_tensor_data(t))[i] = (*values)[i];
        else
            ((int32_t *)plx_tensor_data(t))[i] = (int32_t)(*values)[i];
    }
    return t;
}

static void check_forward(plx_context *ctx, plx_tensor *weight, const float *weight_values, plx_tensor *indices,
                          const int64_t *idx, const plx_embedding_attrs *attrs, const char *what)
{
    const plx_tensor_desc *wd = plx_tensor_desc_get(weight), *id = plx_tensor_desc_get(indices);
    int64_t dim = wd->shape[1], n = plx_tensor_numel(indices);
    plx_tensor *in[2] = {weight, indices}, *y = NULL;
    tu_run(ctx, "core.embedding", attrs, in, 2, &y, 1);
    const plx_tensor_desc *yd = plx_tensor_desc_get(y);
    assert_int_equal(yd->ndim, id->ndim + 1);
    for (int32_t d = 0; d < id->ndim; d++)
        assert_int_equal(yd->shape[d], id->shape[d]);
    assert_int_equal(yd->shape[id->ndim], dim);
    float *want = malloc(sizeof(float) * (size_t)(n * dim + 1));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < dim; j++)
            want[i * dim + j] = weight_values[idx[i] * dim + j];
    tu_assert_close(tu_f32(y), want, n * dim, 0, 0, what);
    free(want);
    plx_tensor_free(y);
}

static void test_embedding_forward(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 1;
    const int64_t vocab[] = {1, 3, 17, 50};
    const int64_t dims[] = {1, 7, 33};
    for (int trial = 0; trial < 24; trial++) {
        int64_t rows = vocab[trial % 4], dim = dims[trial % 3];
        plx_tensor *weight = tu_uniform(ctx, &rng, 2, (int64_t[]){rows, dim}, -1.0f, 1.0f);
        int32_t ndim = (int32_t)tu_rand_int(&rng, 0, 3);
        int64_t shape[3] = {tu_rand_int(&rng, 1, 7), tu_rand_int(&rng, 1, 5), tu_rand_int(&rng, 0, 3)};
        int64_t *idx;
        plx_tensor *indices = random_indices(ctx, &rng, trial % 2 == 0, ndim, shape, rows, &idx);
        plx_embedding_attrs attrs = {sizeof attrs, trial % 3 == 0 ? rows : 0, trial % 5 == 0 ? rows - 1 : -1};
        check_forward(ctx, weight, tu_f32(weight), indices, idx, &attrs, "embedding");
        free(idx);
        plx_tensor_free(indices);
        plx_tensor_free(weight);
    }
    /* Many lookups (split across threads). */
    plx_tensor *weight = tu_uniform(ctx, &rng, 2, (int64_t[]){1000, 64}, -1.0f, 1.0f);
    int64_t *idx;
    plx_tensor *indices = random_indices(ctx, &rng, true, 2, (int64_t[]){50, 101}, 1000, &idx);
    check_forward(ctx, weight, tu_f32(weight), indices, idx, NULL, "embedding, many lookups");
    free(idx);
    plx_tensor_free(indices);
    plx_tensor_free(weight);

    /* A transposed view as the table: the runtime makes it compact first. */
    float mem[5 * 4];
    for (int i = 0; i < 20; i++)
        mem[i] = (float)i;
    int64_t wshape[2] = {4, 5}, wstrides[2] = {1, 4};
    plx_tensor_desc d = {.data = mem, .device = {PLX_DL_CPU, 0}, .ndim = 2, .dtype = PLX_F32, .shape = wshape,
                         .strides = wstrides};
    plx_tensor *view = NULL;
    assert_int_equal(plx_tensor_wrap(ctx, &d, NULL, NULL, &view), PLX_OK);
    float logical[20];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 5; c++)
            logical[r * 5 + c] = mem[c * 4 + r];
    int64_t fixed[3] = {3, 0, 3};
    plx_tensor *ind = tu_from_i64(ctx, 1, (int64_t[]){3}, fixed);
    check_forward(ctx, view, logical, ind, fixed, NULL, "embedding of a transposed table");
    plx_tensor_free(ind);
    plx_tensor_free(view);

    /* A bf16 table: rows are copied bit for bit. */
    plx_tensor *half = tu_tensor(ctx, PLX_BF16, 2, (int64_t[]){6, 3});
    uint16_t *hv = plx_tensor_data(half);
    for (int i = 0; i < 18; i++)
        hv[i] = (uint16_t)(0x3f80 + i);
    int64_t pick[4] = {5, 0, 5, 2};
    plx_tensor *hi = tu_from_i64(ctx, 1, (int64_t[]){4}, pick), *hy = NULL;
    tu_run(ctx, "core.embedding", NULL, (plx_tensor *[]){half, hi}, 2, &hy, 1);
    assert_true(plx_dtype_equal(plx_tensor_desc_get(hy)->dtype, PLX_BF16));
    const uint16_t *got = plx_tensor_data(hy);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            assert_int_equal(got[i * 3 + j], hv[pick[i] * 3 + j]);
    plx_tensor_free(hy);
    plx_tensor_free(hi);
    plx_tensor_free(half);
    plx_context_close(ctx);
}

/* dweight[v] = sum of dy rows whose index is v (none for padding_idx). */
static void backward_reference(const float *dy, const int64_t *idx, int64_t n, int64_t rows, int64_t dim,
                               int64_t padding_idx, float *dw)
{
    double *acc = calloc((size_t)(rows * dim), sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] == padding_idx)
            continue;
        for (int64_t j = 0; j < dim; j++)
            acc[idx[i] * dim + j] += dy[i * dim + j];
    }
    for (int64_t k = 0; k < rows * dim; k++)
        dw[k] = (float)acc[k];
    free(acc);
}

static void check_backward(plx_context *ctx, uint64_t *rng, int64_t rows, int64_t dim, int32_t ndim,
                           const int64_t *shape, bool wide, int64_t padding_idx, const char *what)
{
    int64_t *idx;
    plx_tensor *indices = random_indices(ctx, rng, wide, ndim, shape, rows, &idx);
    int64_t n = plx_tensor_numel(indices);
    int64_t dy_shape[PLX_MAX_DIMS];
    memcpy(dy_shape, shape, sizeof(int64_t) * (size_t)ndim);
    dy_shape[ndim] = dim;
    plx_tensor *dy = tu_uniform(ctx, rng, ndim + 1, dy_shape, -1.0f, 1.0f), *dw = NULL;
    plx_embedding_attrs attrs = {sizeof attrs, rows, padding_idx};
    plx_tensor *in[2] = {dy, indices};
    tu_run(ctx, "core.embedding_backward", &attrs, in, 2, &dw, 1);
    const plx_tensor_desc *d = plx_tensor_desc_get(dw);
    assert_int_equal(d->ndim, 2);
    assert_int_equal(d->shape[0], rows);
    assert_int_equal(d->shape[1], dim);
    float *want = malloc(sizeof(float) * (size_t)(rows * dim));
    backward_reference(tu_f32(dy), idx, n, rows, dim, padding_idx, want);
    tu_assert_close(tu_f32(dw), want, rows * dim, 1e-5f, 1e-5f, what);
    if (padding_idx >= 0)
        for (int64_t j = 0; j < dim; j++)
            assert_true(tu_f32(dw)[padding_idx * dim + j] == 0.0f);
    free(want);
    free(idx);
    plx_tensor_free(dw);
    plx_tensor_free(dy);
    plx_tensor_free(indices);
}

static void test_embedding_backward(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 2;
    for (int trial = 0; trial < 20; trial++) {
        int64_t rows = tu_rand_int(&rng, 1, 17), dim = tu_rand_int(&rng, 1, 9);
        int32_t ndim = (int32_t)tu_rand_int(&rng, 0, 2);
        int64_t shape[2] = {tu_rand_int(&rng, 1, 20), tu_rand_int(&rng, 1, 3)};
        int64_t padding_idx = trial % 3 == 0 ? tu_rand_int(&rng, 0, rows - 1) : -1;
        check_backward(ctx, &rng, rows, dim, ndim, shape, trial % 2 == 0, padding_idx, "embedding_backward");
    }
    /* Every index repeated: few rows, many lookups. */
    check_backward(ctx, &rng, 2, 5, 1, (int64_t[]){300}, true, -1, "embedding_backward, repeated indices");
    /* Parallel over row blocks, then over column blocks (few rows). */
    check_backward(ctx, &rng, 501, 65, 2, (int64_t[]){40, 50}, true, 7, "embedding_backward, row blocks");
    check_backward(ctx, &rng, 3, 300, 1, (int64_t[]){900}, false, 1, "embedding_backward, column blocks");
    /* No lookups at all: dweight is all zero. */
    check_backward(ctx, &rng, 4, 3, 1, (int64_t[]){0}, true, -1, "embedding_backward, no indices");
    plx_context_close(ctx);
}

/* Forward is linear in the table: its gradient is embedding_backward. */
static void test_embedding_finite_differences(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 3;
    int64_t rows = 7, dim = 5;
    plx_tensor *weight = tu_uniform(ctx, &rng, 2, (int64_t[]){rows, dim}, -1.0f, 1.0f);
    int64_t *idx;
    plx_tensor *indices = random_indices(ctx, &rng, true, 2, (int64_t[]){3, 4}, rows, &idx);
    plx_tensor *dy = tu_uniform(ctx, &rng, 3, (int64_t[]){3, 4, dim}, -1.0f, 1.0f), *dw = NULL;
    plx_embedding_attrs attrs = {sizeof attrs, rows, -1};
    tu_run(ctx, "core.embedding_backward", &attrs, (plx_tensor *[]){dy, indices}, 2, &dw, 1);
    plx_tensor *in[2] = {weight, indices};
    tu_check_fd(ctx, "core.embedding", &attrs, in, 2, 1, 0, tu_f32(dy), 0, tu_f32(dw), 35, 1e-2f, 2e-3f);
    free(idx);
    plx_tensor_free(dw);
    plx_tensor_free(dy);
    plx_tensor_free(indices);
    plx_tensor_free(weight);
    plx_context_close(ctx);
}

static void test_embedding_bad_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *weight = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){10, 4});
    int64_t bad[6] = {1, 2, 3, 12, 0, 9};
    plx_tensor *indices = tu_from_i64(ctx, 2, (int64_t[]){2, 3}, bad);
    expect_failure(ctx, "core.embedding", NULL, (plx_tensor *[]){weight, indices}, 2, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"core.embedding", "index 12", "position [1,0]", "[0, 10)"}, 4);
    plx_tensor *neg = tu_tensor(ctx, PLX_I32, 1, (int64_t[]){3});
    ((int32_t *)plx_tensor_data(neg))[2] = -1;
    expect_failure(ctx, "core.embedding", NULL, (plx_tensor *[]){weight, neg}, 2, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"index -1", "position [2]"}, 2);
    plx_tensor *dy = tu_tensor(ctx, PLX_F32, 3, (int64_t[]){2, 3, 4});
    plx_embedding_attrs v10 = {sizeof v10, 10, -1};
    expect_failure(ctx, "core.embedding_backward", &v10, (plx_tensor *[]){dy, indices}, 2, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"core.embedding_backward", "index 12", "position [1,0]"}, 3);
    expect_failure(ctx, "core.embedding_backward", NULL, (plx_tensor *[]){dy, indices}, 2, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"num_embeddings"}, 1);
    plx_embedding_attrs bad_padding = {sizeof bad_padding, 10, 10};
    expect_failure(ctx, "core.embedding_backward", &bad_padding, (plx_tensor *[]){dy, indices}, 2,
                   PLX_INVALID_ARGUMENT, (const char *const[]){"padding_idx 10"}, 1);
    plx_tensor *dy_wrong = tu_tensor(ctx, PLX_F32, 3, (int64_t[]){3, 2, 4});
    expect_failure(ctx, "core.embedding_backward", &v10, (plx_tensor *[]){dy_wrong, indices}, 2, PLX_SHAPE_MISMATCH,
                   (const char *const[]){"f32[3,2,4]", "i64[2,3]"}, 2);
    plx_tensor *float_indices = tu_tensor(ctx, PLX_F32, 1, (int64_t[]){3});
    expect_failure(ctx, "core.embedding", NULL, (plx_tensor *[]){weight, float_indices}, 2, PLX_DTYPE_MISMATCH,
                   (const char *const[]){"i64 or i32", "f32[3]"}, 2);
    plx_tensor *flat_weight = tu_tensor(ctx, PLX_F32, 1, (int64_t[]){10});
    expect_failure(ctx, "core.embedding", NULL, (plx_tensor *[]){flat_weight, neg}, 2, PLX_SHAPE_MISMATCH,
                   (const char *const[]){"weight", "f32[10]"}, 2);
    plx_embedding_attrs wrong_rows = {sizeof wrong_rows, 11, -1};
    expect_failure(ctx, "core.embedding", &wrong_rows, (plx_tensor *[]){weight, indices}, 2, PLX_SHAPE_MISMATCH,
                   (const char *const[]){"num_embeddings 11", "f32[10,4]"}, 2);
    plx_tensor_free(flat_weight);
    plx_tensor_free(float_indices);
    plx_tensor_free(dy_wrong);
    plx_tensor_free(dy);
    plx_tensor_free(neg);
    plx_tensor_free(indices);
    plx_tensor_free(weight);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedding_forward),
        cmocka_unit_test(test_embedding_backward),
        cmocka_unit_test(test_embedding_finite_differences),
        cmocka_unit_test(test_embedding_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

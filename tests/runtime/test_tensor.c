/* Tensors: creation, wrapping caller memory, strided views, validation of
 * descriptors from outside, DLPack export lifetime. */
#include "../test_util.h"

#include <stdint.h>
#include <string.h>

static void test_create_and_validate(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *t = NULL;
    assert_int_equal(plx_tensor_create(ctx, PLX_F32, 3, (int64_t[]){2, 0, 5}, &t), PLX_OK);
    assert_int_equal(plx_tensor_numel(t), 0);
    assert_non_null(plx_tensor_data(t));
    plx_tensor_free(t);

    t = NULL;
    assert_int_equal(plx_tensor_create(ctx, PLX_F32, 0, NULL, &t), PLX_OK); /* scalar */
    assert_int_equal(plx_tensor_numel(t), 1);
    assert_true(tu_f32(t)[0] == 0.0f);
    plx_tensor_free(t);

    t = NULL;
    assert_int_equal(plx_tensor_create(ctx, PLX_F32, 2, (int64_t[]){3, -1}, &t), PLX_INVALID_ARGUMENT);
    assert_null(t);
    assert_non_null(strstr(plx_last_error(ctx), "negative"));
    assert_int_equal(plx_tensor_create(ctx, PLX_F32, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, &t),
                     PLX_INVALID_ARGUMENT);
    assert_int_equal(plx_tensor_create(ctx, PLX_F32, 3, (int64_t[]){INT64_MAX / 2, 4, 4}, &t), PLX_OVERFLOW);
    assert_non_null(strstr(plx_last_error(ctx), "overflow"));
    plx_dtype bad = {.code = 9, .bits = 32, .lanes = 1};
    assert_int_equal(plx_tensor_create(ctx, bad, 1, (int64_t[]){4}, &t), PLX_DTYPE_MISMATCH);
    assert_int_equal(plx_tensor_create(ctx, PLX_F32, 1, NULL, &t), PLX_INVALID_ARGUMENT);
    assert_null(t);
    plx_tensor_free(NULL);
    plx_context_close(ctx);
    plx_context_close(NULL);
}

static int released;
static void on_release(void *arg)
{
    released += *(int *)arg;
}

static void test_wrap_borrows(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    float mem[12];
    for (int i = 0; i < 12; i++)
        mem[i] = (float)i;
    int64_t shape[2] = {3, 4};
    plx_tensor_desc d = {.data = mem, .device = {PLX_DL_CPU, 0}, .ndim = 2, .dtype = PLX_F32, .shape = shape};
    plx_tensor *t = NULL;
    int one = 1;
    released = 0;
    assert_int_equal(plx_tensor_wrap(ctx, &d, on_release, &one, &t), PLX_OK);
    assert_ptr_equal(plx_tensor_data(t), mem);
    shape[0] = 99; /* the descriptor was copied */
    assert_int_equal(plx_tensor_desc_get(t)->shape[0], 3);
    plx_tensor *y = NULL;
    tu_run(ctx, "core.neg", NULL, &t, 1, &y, 1);
    for (int i = 0; i < 12; i++)
        assert_true(tu_f32(y)[i] == -(float)i);
    plx_tensor_free(y);
    assert_int_equal(released, 0);
    plx_tensor_free(t);
    assert_int_equal(released, 1);

    /* Bad descriptors from outside: NULL data, negative dims, device memory. */
    plx_tensor_desc bad = d;
    shape[0] = 3;
    bad.data = NULL;
    assert_int_equal(plx_tensor_wrap(ctx, &bad, NULL, NULL, &t), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(plx_last_error(ctx), "data is NULL"));
    bad = d;
    bad.device.device_type = PLX_DL_CUDA;
    assert_int_equal(plx_tensor_wrap(ctx, &bad, NULL, NULL, &t), PLX_UNSUPPORTED);
    int64_t neg_strides[2] = {-4, 1};
    bad = d;
    bad.strides = neg_strides;
    assert_int_equal(plx_tensor_wrap(ctx, &bad, NULL, NULL, &t), PLX_OVERFLOW);
    assert_int_equal(plx_tensor_wrap(ctx, NULL, NULL, NULL, &t), PLX_INVALID_ARGUMENT);
    plx_context_close(ctx);
}

/* A transposed view (strides 1, 3) goes through ops as its logical values. */
static void test_strided_view_is_made_compact(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    float mem[6] = {1, 2, 3, 4, 5, 6}; /* [2,3] row-major */
    int64_t shape[2] = {3, 2}, strides[2] = {1, 3};
    plx_tensor_desc d = {.data = mem, .device = {PLX_DL_CPU, 0}, .ndim = 2, .dtype = PLX_F32, .shape = shape,
                         .strides = strides};
    plx_tensor *view = NULL, *y = NULL;
    assert_int_equal(plx_tensor_wrap(ctx, &d, NULL, NULL, &view), PLX_OK);
    tu_run(ctx, "core.neg", NULL, &view, 1, &y, 1);
    const float want[6] = {-1, -4, -2, -5, -3, -6};
    tu_assert_close(tu_f32(y), want, 6, 0, 0, "neg of transposed view");
    plx_tensor_free(y);
    plx_tensor_free(view);
    plx_context_close(ctx);
}

static void test_dlpack_export_outlives_tensor(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *t = tu_tensor(ctx, PLX_I64, 1, (int64_t[]){5});
    int64_t *p = plx_tensor_data(t);
    for (int i = 0; i < 5; i++)
        p[i] = i * 7;
    plx_dl_managed_tensor *a = NULL, *b = NULL;
    assert_int_equal(plx_tensor_to_dlpack(t, &a), PLX_OK);
    assert_int_equal(plx_tensor_to_dlpack(t, &b), PLX_OK);
    plx_tensor_free(t);
    assert_int_equal(((int64_t *)a->dl_tensor.data)[4], 28);
    a->deleter(a);
    assert_int_equal(((int64_t *)b->dl_tensor.data)[3], 21);
    assert_true(plx_dtype_equal(b->dl_tensor.dtype, PLX_I64));
    b->deleter(b);
    assert_int_equal(plx_tensor_to_dlpack(NULL, &a), PLX_INVALID_ARGUMENT);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_validate),
        cmocka_unit_test(test_wrap_borrows),
        cmocka_unit_test(test_strided_view_is_made_compact),
        cmocka_unit_test(test_dlpack_export_outlives_tensor),
    };
    return cmocka_run_group_tests_name("runtime/tensor", tests, NULL, NULL);
}

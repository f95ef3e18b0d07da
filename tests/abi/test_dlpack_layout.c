/* The tensor descriptor and managed tensor must be layout-compatible with
 * DLPack (Debian's dlpack/dlpack.h), so tensors pass to and from other
 * frameworks with no copy. Checked field by field, and by round-tripping a
 * real DLManagedTensor through the runtime. */
#include "../test_util.h"

#include <dlpack/dlpack.h>
#include <stdlib.h>
#include <string.h>

#define SAME_FIELD(ours, theirs, f)                                         \
    assert_int_equal(offsetof(ours, f), offsetof(theirs, f));               \
    assert_int_equal(sizeof(((ours *)0)->f), sizeof(((theirs *)0)->f))

static void test_struct_layout(void **state)
{
    (void)state;
    assert_int_equal(sizeof(plx_dl_device), sizeof(DLDevice));
    assert_int_equal(offsetof(plx_dl_device, device_type), offsetof(DLDevice, device_type));
    assert_int_equal(offsetof(plx_dl_device, device_id), offsetof(DLDevice, device_id));
    assert_int_equal(sizeof(plx_dtype), sizeof(DLDataType));
    SAME_FIELD(plx_dtype, DLDataType, code);
    SAME_FIELD(plx_dtype, DLDataType, bits);
    SAME_FIELD(plx_dtype, DLDataType, lanes);
    assert_int_equal(sizeof(plx_tensor_desc), sizeof(DLTensor));
    SAME_FIELD(plx_tensor_desc, DLTensor, data);
    SAME_FIELD(plx_tensor_desc, DLTensor, device);
    SAME_FIELD(plx_tensor_desc, DLTensor, ndim);
    SAME_FIELD(plx_tensor_desc, DLTensor, dtype);
    SAME_FIELD(plx_tensor_desc, DLTensor, shape);
    SAME_FIELD(plx_tensor_desc, DLTensor, strides);
    SAME_FIELD(plx_tensor_desc, DLTensor, byte_offset);
    assert_int_equal(sizeof(plx_dl_managed_tensor), sizeof(DLManagedTensor));
    SAME_FIELD(plx_dl_managed_tensor, DLManagedTensor, dl_tensor);
    SAME_FIELD(plx_dl_managed_tensor, DLManagedTensor, manager_ctx);
    SAME_FIELD(plx_dl_managed_tensor, DLManagedTensor, deleter);
}

static void test_enum_values(void **state)
{
    (void)state;
    assert_int_equal(PLX_DL_CPU, kDLCPU);
    assert_int_equal(PLX_DL_CUDA, kDLCUDA);
    assert_int_equal(PLX_DL_CUDA_HOST, kDLCUDAHost);
    assert_int_equal(PLX_DL_OPENCL, kDLOpenCL);
    assert_int_equal(PLX_DL_VULKAN, kDLVulkan);
    assert_int_equal(PLX_DL_METAL, kDLMetal);
    assert_int_equal(PLX_DL_ROCM, kDLROCM);
    assert_int_equal(PLX_DTYPE_CODE_INT, kDLInt);
    assert_int_equal(PLX_DTYPE_CODE_UINT, kDLUInt);
    assert_int_equal(PLX_DTYPE_CODE_FLOAT, kDLFloat);
    assert_int_equal(PLX_DTYPE_CODE_BFLOAT, kDLBfloat);
}

typedef struct producer {
    DLManagedTensor managed;
    int64_t shape[2];
    float data[6];
    int *deleted;
} producer;

static void producer_deleter(DLManagedTensor *self)
{
    producer *p = self->manager_ctx;
    (*p->deleted)++;
    free(p);
}

/* A DLManagedTensor made with DLPack's own types goes in, is computed on, and
 * comes back out as one, sharing memory all the way. */
static void test_dlpack_round_trip(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    int deleted = 0;
    producer *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->deleted = &deleted;
    p->shape[0] = 2;
    p->shape[1] = 3;
    for (int i = 0; i < 6; i++)
        p->data[i] = (float)i - 2.5f;
    p->managed.dl_tensor = (DLTensor){.data = p->data,
                                      .device = {kDLCPU, 0},
                                      .ndim = 2,
                                      .dtype = {kDLFloat, 32, 1},
                                      .shape = p->shape,
                                      .strides = NULL,
                                      .byte_offset = 0};
    p->managed.manager_ctx = p;
    p->managed.deleter = producer_deleter;

    plx_tensor *x = NULL;
    assert_int_equal(plx_tensor_from_dlpack(ctx, (plx_dl_managed_tensor *)&p->managed, &x), PLX_OK);
    assert_ptr_equal(plx_tensor_data(x), p->data); /* zero copy */
    plx_tensor *y = NULL;
    tu_run(ctx, "core.relu", NULL, &x, 1, &y, 1);

    plx_dl_managed_tensor *out = NULL;
    assert_int_equal(plx_tensor_to_dlpack(y, &out), PLX_OK);
    DLManagedTensor *dl = (DLManagedTensor *)out;
    assert_ptr_equal(dl->dl_tensor.data, plx_tensor_data(y));
    assert_int_equal(dl->dl_tensor.ndim, 2);
    assert_int_equal(dl->dl_tensor.shape[1], 3);
    assert_int_equal(dl->dl_tensor.dtype.code, kDLFloat);
    assert_int_equal(dl->dl_tensor.device.device_type, kDLCPU);
    plx_tensor_free(y); /* the export keeps the memory alive */
    const float *r = dl->dl_tensor.data;
    for (int i = 0; i < 6; i++)
        assert_true(r[i] == (p->data[i] > 0 ? p->data[i] : 0.0f));
    dl->deleter(dl);

    assert_int_equal(deleted, 0);
    plx_tensor_free(x);
    assert_int_equal(deleted, 1); /* the producer's deleter ran exactly once */
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_struct_layout),
        cmocka_unit_test(test_enum_values),
        cmocka_unit_test(test_dlpack_round_trip),
    };
    return cmocka_run_group_tests_name("abi/dlpack_layout", tests, NULL, NULL);
}

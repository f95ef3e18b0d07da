/*
 * tensor.c — host tensors: created, wrapping caller memory, or imported
 * from DLPack; exported to DLPack with zero copy. Storage is reference
 * counted so an export outlives the plx_tensor it came from.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct tensor_storage {
    atomic_int refs;
    void *owned;                          /* malloc'd memory, or NULL */
    void (*release)(void *arg);           /* caller's release for wrapped memory */
    void *release_arg;
    plx_dl_managed_tensor *imported;      /* DLPack producer to notify */
} tensor_storage;

typedef struct dlpack_export {
    plx_dl_managed_tensor managed;
    int64_t shape[PLX_MAX_DIMS];
    int64_t strides[PLX_MAX_DIMS];
    tensor_storage *storage;
} dlpack_export;

static void storage_release(tensor_storage *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    free(s->owned);
    if (s->release != NULL)
        s->release(s->release_arg);
    if (s->imported != NULL && s->imported->deleter != NULL)
        s->imported->deleter(s->imported);
    free(s);
}

bool desc_is_compact(const plx_tensor_desc *t)
{
    if (t->strides == NULL)
        return true;
    int64_t expect = 1;
    for (int32_t i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != expect)
            return false;
        expect *= t->shape[i];
    }
    return true;
}

void meta_from_desc(tensor_meta *m, const plx_tensor_desc *d)
{
    meta_set(m, d->dtype, d->ndim, d->shape);
}

/* Bytes from `data` to the end of the last element a (possibly strided)
 * descriptor reaches, or -1 on overflow or when negative strides reach
 * before `data`. */
static int64_t span_bytes(const plx_tensor_desc *d, size_t elem)
{
    __int128 lo = 0, hi = 0;
    for (int32_t i = 0; i < d->ndim; i++) {
        if (d->shape[i] == 0)
            return 0;
        int64_t stride = d->strides ? d->strides[i] : 1;
        __int128 reach = (__int128)stride * (d->shape[i] - 1);
        if (reach < 0)
            lo += reach;
        else
            hi += reach;
    }
    if (d->strides == NULL) {
        __int128 n = 1;
        for (int32_t i = 0; i < d->ndim; i++) {
            n *= d->shape[i];
            if (n > ((__int128)1 << 62))
                return -1;
        }
        hi = n - 1;
    }
    __int128 offset = (__int128)d->byte_offset;
    if (lo * (__int128)elem + offset < 0)
        return -1;
    __int128 bytes = (hi + 1) * (__int128)elem + offset;
    if (bytes > ((__int128)1 << 62))
        return -1;
    return (int64_t)bytes;
}

plx_status desc_validate(const plx_context *ctx, const plx_tensor_desc *d, const char *what)
{
    if (d == NULL)
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: descriptor is NULL", what);
    if (d->ndim < 0 || d->ndim > PLX_MAX_DIMS)
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: ndim %d is outside [0, %d]", what, (int)d->ndim,
                        PLX_MAX_DIMS);
    if (d->ndim > 0 && d->shape == NULL)
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: shape is NULL with ndim %d", what, (int)d->ndim);
    if (!dtype_is_known(d->dtype))
        return ctx_fail(ctx, PLX_DTYPE_MISMATCH, "%s: unsupported dtype (code %u, bits %u, lanes %u)", what,
                        (unsigned)d->dtype.code, (unsigned)d->dtype.bits, (unsigned)d->dtype.lanes);
    for (int32_t i = 0; i < d->ndim; i++)
        if (d->shape[i] < 0)
            return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: dim %d is negative (%lld)", what, (int)i,
                            (long long)d->shape[i]);
    if (d->device.device_type != PLX_DL_CPU && d->device.device_type != PLX_DL_CUDA_HOST)
        return ctx_fail(ctx, PLX_UNSUPPORTED, "%s: only host memory can be wrapped (device type %d)", what,
                        (int)d->device.device_type);
    int64_t bytes = span_bytes(d, plx_dtype_size(d->dtype));
    if (bytes < 0)
        return ctx_fail(ctx, PLX_OVERFLOW, "%s: size overflows or strides reach before the data", what);
    if (bytes > 0 && d->data == NULL)
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: data is NULL for a non-empty tensor", what);
    size_t elem = plx_dtype_size(d->dtype);
    if (elem > 0 && ((uintptr_t)d->data + d->byte_offset) % elem != 0)
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: data + byte_offset is not aligned to the %zu-byte element",
                        what, elem);
    return PLX_OK;
}

static plx_tensor *tensor_new(plx_context *ctx, const plx_tensor_desc *d)
{
    plx_tensor *t = calloc(1, sizeof *t);
    tensor_storage *s = calloc(1, sizeof *s);
    if (t == NULL || s == NULL) {
        free(t);
        free(s);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    t->ctx = ctx;
    t->storage = s;
    t->desc = *d;
    for (int32_t i = 0; i < d->ndim; i++) {
        t->shape[i] = d->shape[i];
        if (d->strides != NULL)
            t->strides[i] = d->strides[i];
    }
    t->desc.shape = t->shape;
    t->desc.strides = d->strides != NULL && !desc_is_compact(d) ? t->strides : NULL;
    return t;
}

PLX_API plx_status plx_tensor_create(plx_context *ctx, plx_dtype dtype, int32_t ndim, const int64_t *shape,
                                     plx_tensor **out)
{
    if (ctx == NULL || out == NULL)
        return ctx ? ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plx_tensor_create: out is NULL") : PLX_INVALID_ARGUMENT;
    int64_t zero_shape[1] = {0};
    plx_tensor_desc d = {.data = zero_shape, /* placeholder, replaced below */
                         .device = {PLX_DL_CPU, 0},
                         .ndim = ndim,
                         .dtype = dtype,
                         .shape = (int64_t *)shape};
    plx_status st = desc_validate(ctx, &d, "plx_tensor_create");
    if (st != PLX_OK)
        return st;
    int64_t bytes = span_bytes(&d, plx_dtype_size(dtype));
    /* 64-byte aligned, never 0 bytes, so empty tensors have a valid pointer. */
    size_t alloc = ((size_t)(bytes > 0 ? bytes : 1) + 63u) & ~(size_t)63u;
    void *mem = aligned_alloc(64, alloc);
    if (mem == NULL)
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plx_tensor_create: cannot allocate %lld bytes", (long long)bytes);
    memset(mem, 0, alloc);
    d.data = mem;
    plx_tensor *t = tensor_new(ctx, &d);
    if (t == NULL) {
        free(mem);
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plx_tensor_create: out of memory");
    }
    t->storage->owned = mem;
    *out = t;
    return PLX_OK;
}

PLX_API plx_status plx_tensor_wrap(plx_context *ctx, const plx_tensor_desc *desc, void (*release)(void *arg),
                                   void *release_arg, plx_tensor **out)
{
    if (ctx == NULL || out == NULL)
        return ctx ? ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plx_tensor_wrap: out is NULL") : PLX_INVALID_ARGUMENT;
    plx_status st = desc_validate(ctx, desc, "plx_tensor_wrap");
    if (st != PLX_OK)
        return st;
    plx_tensor *t = tensor_new(ctx, desc);
    if (t == NULL)
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plx_tensor_wrap: out of memory");
    t->storage->release = release;
    t->storage->release_arg = release_arg;
    *out = t;
    return PLX_OK;
}

PLX_API plx_status plx_tensor_from_dlpack(plx_context *ctx, plx_dl_managed_tensor *managed, plx_tensor **out)
{
    if (ctx == NULL || out == NULL || managed == NULL)
        return ctx ? ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plx_tensor_from_dlpack: NULL argument")
                   : PLX_INVALID_ARGUMENT;
    plx_status st = desc_validate(ctx, &managed->dl_tensor, "plx_tensor_from_dlpack");
    if (st != PLX_OK)
        return st;
    plx_tensor *t = tensor_new(ctx, &managed->dl_tensor);
    if (t == NULL)
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plx_tensor_from_dlpack: out of memory");
    t->storage->imported = managed;
    *out = t;
    return PLX_OK;
}

static void export_deleter(plx_dl_managed_tensor *self)
{
    dlpack_export *e = (dlpack_export *)self;
    storage_release(e->storage);
    free(e);
}

PLX_API plx_status plx_tensor_to_dlpack(plx_tensor *tensor, plx_dl_managed_tensor **out)
{
    if (tensor == NULL || out == NULL)
        return tensor ? ctx_fail(tensor->ctx, PLX_INVALID_ARGUMENT, "plx_tensor_to_dlpack: out is NULL")
                      : PLX_INVALID_ARGUMENT;
    dlpack_export *e = calloc(1, sizeof *e);
    if (e == NULL)
        return ctx_fail(tensor->ctx, PLX_OUT_OF_MEMORY, "plx_tensor_to_dlpack: out of memory");
    e->managed.dl_tensor = tensor->desc;
    for (int32_t i = 0; i < tensor->desc.ndim; i++) {
        e->shape[i] = tensor->shape[i];
        e->strides[i] = tensor->desc.strides ? tensor->desc.strides[i] : 0;
    }
    e->managed.dl_tensor.shape = e->shape;
    e->managed.dl_tensor.strides = tensor->desc.strides ? e->strides : NULL;
    e->managed.manager_ctx = e;
    e->managed.deleter = export_deleter;
    e->storage = tensor->storage;
    atomic_fetch_add(&tensor->storage->refs, 1);
    *out = &e->managed;
    return PLX_OK;
}

PLX_API void plx_tensor_free(plx_tensor *tensor)
{
    if (tensor == NULL)
        return;
    storage_release(tensor->storage);
    free(tensor);
}

PLX_API const plx_tensor_desc *plx_tensor_desc_get(const plx_tensor *tensor)
{
    return tensor != NULL ? &tensor->desc : NULL;
}

PLX_API void *plx_tensor_data(const plx_tensor *tensor)
{
    return tensor != NULL ? plx_desc_ptr(&tensor->desc) : NULL;
}

PLX_API int64_t plx_tensor_numel(const plx_tensor *tensor)
{
    return tensor != NULL ? plx_desc_numel(&tensor->desc) : 0;
}

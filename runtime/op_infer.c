/* op_infer.c — helpers shared by the ops' shape/dtype inference. */
#include <stdio.h>
#include <string.h>

#include "op_catalog.h"

plx_status infer_fail(op_infer_args *args, plx_status status, const char *fmt, ...)
{
    if (args->msg != NULL && args->msg_cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(args->msg, args->msg_cap, fmt, ap);
        va_end(ap);
    }
    return status;
}

bool dtype_is_float(plx_dtype t)
{
    return t.lanes == 1 && ((t.code == PLX_DTYPE_CODE_FLOAT && (t.bits == 32 || t.bits == 16 || t.bits == 64)) ||
                            (t.code == PLX_DTYPE_CODE_BFLOAT && t.bits == 16));
}

bool dtype_is_integer(plx_dtype t)
{
    return t.lanes == 1 && (t.code == PLX_DTYPE_CODE_INT || t.code == PLX_DTYPE_CODE_UINT) &&
           (t.bits == 8 || t.bits == 16 || t.bits == 32 || t.bits == 64);
}

bool dtype_is_known(plx_dtype t)
{
    return dtype_is_float(t) || dtype_is_integer(t) ||
           (t.lanes == 1 && t.code == PLX_DTYPE_CODE_BOOL && t.bits == 8);
}

const char *dtype_name(plx_dtype t)
{
    if (t.lanes != 1)
        return "?";
    switch (t.code) {
    case PLX_DTYPE_CODE_FLOAT:
        return t.bits == 32 ? "f32" : t.bits == 16 ? "f16" : t.bits == 64 ? "f64" : "?";
    case PLX_DTYPE_CODE_BFLOAT:
        return t.bits == 16 ? "bf16" : "?";
    case PLX_DTYPE_CODE_INT:
        return t.bits == 8 ? "i8" : t.bits == 16 ? "i16" : t.bits == 32 ? "i32" : t.bits == 64 ? "i64" : "?";
    case PLX_DTYPE_CODE_UINT:
        return t.bits == 8 ? "u8" : t.bits == 16 ? "u16" : t.bits == 32 ? "u32" : t.bits == 64 ? "u64" : "?";
    case PLX_DTYPE_CODE_BOOL:
        return t.bits == 8 ? "bool" : "?";
    default:
        return "?";
    }
}

const char *meta_format(const tensor_meta *m, char *buf, size_t cap)
{
    size_t used = 0;
    int n = snprintf(buf, cap, "%s[", dtype_name(m->dtype));
    if (n < 0 || (size_t)n >= cap)
        return buf;
    used = (size_t)n;
    for (int32_t i = 0; i < m->ndim && used < cap; i++) {
        n = snprintf(buf + used, cap - used, i ? ",%lld" : "%lld", (long long)m->dims[i]);
        if (n < 0)
            return buf;
        used += (size_t)n;
    }
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}

int64_t meta_numel(const tensor_meta *m)
{
    int64_t n = 1;
    for (int32_t i = 0; i < m->ndim; i++)
        n *= m->dims[i];
    return n;
}

bool meta_same_shape(const tensor_meta *a, const tensor_meta *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int32_t i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

void meta_set(tensor_meta *m, plx_dtype dtype, int32_t ndim, const int64_t *dims)
{
    memset(m, 0, sizeof(*m));
    m->dtype = dtype;
    m->ndim = ndim;
    for (int32_t i = 0; i < ndim; i++)
        m->dims[i] = dims[i];
}

plx_status infer_require_float(op_infer_args *args, int32_t i, const char *role)
{
    char b[128];
    if (!dtype_is_float(args->inputs[i].dtype))
        return infer_fail(args, PLX_DTYPE_MISMATCH, "%s (input %d) must be a float tensor, got %s",
                          role, (int)i, meta_format(&args->inputs[i], b, sizeof b));
    return PLX_OK;
}

plx_status infer_require_dtype(op_infer_args *args, int32_t i, plx_dtype dtype, const char *role)
{
    char b[128];
    if (!plx_dtype_equal(args->inputs[i].dtype, dtype))
        return infer_fail(args, PLX_DTYPE_MISMATCH, "%s (input %d) must be %s, got %s", role, (int)i,
                          dtype_name(dtype), meta_format(&args->inputs[i], b, sizeof b));
    return PLX_OK;
}

plx_status infer_require_same_dtype(op_infer_args *args, int32_t i, int32_t j)
{
    char a[128], b[128];
    if (!plx_dtype_equal(args->inputs[i].dtype, args->inputs[j].dtype))
        return infer_fail(args, PLX_DTYPE_MISMATCH, "inputs %d and %d must have the same dtype, got %s and %s",
                          (int)i, (int)j, meta_format(&args->inputs[i], a, sizeof a),
                          meta_format(&args->inputs[j], b, sizeof b));
    return PLX_OK;
}

plx_status infer_require_same_shape(op_infer_args *args, int32_t i, int32_t j)
{
    char a[128], b[128];
    if (!meta_same_shape(&args->inputs[i], &args->inputs[j]))
        return infer_fail(args, PLX_SHAPE_MISMATCH, "inputs %d and %d must have the same shape, got %s and %s",
                          (int)i, (int)j, meta_format(&args->inputs[i], a, sizeof a),
                          meta_format(&args->inputs[j], b, sizeof b));
    return PLX_OK;
}

plx_status infer_require_ndim(op_infer_args *args, int32_t i, int32_t ndim, const char *role)
{
    char b[128];
    if (args->inputs[i].ndim != ndim)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "%s (input %d) must have %d dims, got %s", role, (int)i,
                          (int)ndim, meta_format(&args->inputs[i], b, sizeof b));
    return PLX_OK;
}

plx_status infer_broadcast(op_infer_args *args, const int32_t *idx, int32_t n, tensor_meta *out)
{
    int32_t nd = 0;
    for (int32_t k = 0; k < n; k++)
        if (args->inputs[idx[k]].ndim > nd)
            nd = args->inputs[idx[k]].ndim;
    int64_t dims[PLX_MAX_DIMS];
    for (int32_t d = 0; d < nd; d++) {
        int64_t size = 1;
        for (int32_t k = 0; k < n; k++) {
            const tensor_meta *m = &args->inputs[idx[k]];
            int32_t md = d - (nd - m->ndim);
            if (md < 0)
                continue;
            int64_t s = m->dims[md];
            if (s == size || s == 1)
                continue;
            if (size == 1) {
                size = s;
                continue;
            }
            char msg[512] = "";
            size_t used = 0;
            for (int32_t j = 0; j < n && used < sizeof msg; j++) {
                char b[128];
                int w = snprintf(msg + used, sizeof msg - used, "%s%s", j ? " and " : "",
                                 meta_format(&args->inputs[idx[j]], b, sizeof b));
                if (w < 0)
                    break;
                used += (size_t)w;
            }
            return infer_fail(args, PLX_SHAPE_MISMATCH, "shapes %s do not broadcast (dim %d: %lld vs %lld)", msg,
                              (int)d, (long long)size, (long long)s);
        }
        dims[d] = size;
    }
    out->ndim = nd;
    for (int32_t d = 0; d < nd; d++)
        out->dims[d] = dims[d];
    return PLX_OK;
}

plx_status infer_axis(op_infer_args *args, int32_t axis, int32_t ndim, int32_t *out)
{
    int32_t a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= ndim)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "axis %d is out of range for a %d-dim tensor", (int)axis,
                          (int)ndim);
    *out = a;
    return PLX_OK;
}

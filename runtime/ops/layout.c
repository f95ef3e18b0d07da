/* Core ops of the layout family: arity, attrs and shape inference. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../autodiff.h"
#include "../op_catalog.h"

static const plx_concat_attrs concat_default = PLX_CONCAT_ATTRS_DEFAULT;

/* Dims this large cannot come from a real tensor; bounding pads and fill
 * shapes by it keeps every sum below INT64_MAX. */
#define LAYOUT_DIM_LIMIT ((int64_t)1 << 48)

/* "[2,-1,3]" into buf; returns buf. */
static const char *format_dims(const int64_t *dims, int32_t n, char *buf, size_t cap)
{
    size_t used = 0;
    int w = snprintf(buf, cap, "[");
    if (w < 0 || (size_t)w >= cap)
        return buf;
    used = (size_t)w;
    for (int32_t i = 0; i < n && used < cap; i++) {
        w = snprintf(buf + used, cap - used, i ? ",%lld" : "%lld", (long long)dims[i]);
        if (w < 0)
            return buf;
        used += (size_t)w;
    }
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}

static const char *format_dims32(const int32_t *dims, int32_t n, char *buf, size_t cap)
{
    int64_t wide[PLX_MAX_DIMS];
    for (int32_t i = 0; i < n && i < PLX_MAX_DIMS; i++)
        wide[i] = dims[i];
    return format_dims(wide, n < PLX_MAX_DIMS ? n : PLX_MAX_DIMS, buf, cap);
}

/* Validates an explicit output shape from attrs (fill). */
static plx_status check_attr_shape(op_infer_args *args, int32_t ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > PLX_MAX_DIMS)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "attrs.ndim is %d, must be in [0, %d]", (int)ndim,
                          PLX_MAX_DIMS);
    char b[256];
    double numel = 1.0;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 0 || shape[i] > LAYOUT_DIM_LIMIT)
            return infer_fail(args, PLX_INVALID_ARGUMENT, "attrs.shape %s has a bad dim %lld at %d",
                              format_dims(shape, ndim, b, sizeof b), (long long)shape[i], (int)i);
        numel *= (double)shape[i];
    }
    if (numel > (double)LAYOUT_DIM_LIMIT)
        return infer_fail(args, PLX_OVERFLOW, "attrs.shape %s has too many elements",
                          format_dims(shape, ndim, b, sizeof b));
    return PLX_OK;
}

static plx_status infer_copy(op_infer_args *args)
{
    args->outputs[0] = args->inputs[0];
    return PLX_OK;
}

static plx_status infer_cast(op_infer_args *args)
{
    const plx_cast_attrs *attrs = args->attrs;
    if (!dtype_is_known(attrs->dtype))
        return infer_fail(args, PLX_INVALID_ARGUMENT,
                          "attrs.dtype (code %u, bits %u, lanes %u) is not a known dtype; set it to the target",
                          (unsigned)attrs->dtype.code, (unsigned)attrs->dtype.bits, (unsigned)attrs->dtype.lanes);
    const tensor_meta *x = &args->inputs[0];
    meta_set(&args->outputs[0], attrs->dtype, x->ndim, x->dims);
    return PLX_OK;
}

static plx_status infer_reshape(op_infer_args *args)
{
    const plx_reshape_attrs *attrs = args->attrs;
    const tensor_meta *x = &args->inputs[0];
    char sx[128], ss[256];
    if (attrs->ndim < 0 || attrs->ndim > PLX_MAX_DIMS)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "attrs.ndim is %d, must be in [0, %d]", (int)attrs->ndim,
                          PLX_MAX_DIMS);
    int32_t inferred = -1;
    int64_t known = 1;
    for (int32_t i = 0; i < attrs->ndim; i++) {
        int64_t d = attrs->shape[i];
        if (d == -1) {
            if (inferred >= 0)
                return infer_fail(args, PLX_INVALID_ARGUMENT, "shape %s has more than one -1",
                                  format_dims(attrs->shape, attrs->ndim, ss, sizeof ss));
            inferred = i;
            continue;
        }
        if (d < 0 || d > LAYOUT_DIM_LIMIT)
            return infer_fail(args, PLX_INVALID_ARGUMENT, "shape %s has a bad dim %lld",
                              format_dims(attrs->shape, attrs->ndim, ss, sizeof ss), (long long)d);
        known *= d;
        if (known > LAYOUT_DIM_LIMIT)
            return infer_fail(args, PLX_SHAPE_MISMATCH, "cannot reshape %s to %s: element counts differ",
                              meta_format(x, sx, sizeof sx), format_dims(attrs->shape, attrs->ndim, ss, sizeof ss));
    }
    int64_t numel = meta_numel(x);
    int64_t dims[PLX_MAX_DIMS];
    memcpy(dims, attrs->shape, sizeof(int64_t) * (size_t)attrs->ndim);
    if (inferred >= 0) {
        if (known == 0)
            return infer_fail(args, PLX_SHAPE_MISMATCH,
                              "cannot reshape %s to %s: the -1 dim is ambiguous when the other dims hold 0 elements",
                              meta_format(x, sx, sizeof sx), format_dims(attrs->shape, attrs->ndim, ss, sizeof ss));
        if (numel % known != 0)
            return infer_fail(args, PLX_SHAPE_MISMATCH, "cannot reshape %s (%lld elements) to %s",
                              meta_format(x, sx, sizeof sx), (long long)numel,
                              format_dims(attrs->shape, attrs->ndim, ss, sizeof ss));
        dims[inferred] = numel / known;
    } else if (known != numel) {
        return infer_fail(args, PLX_SHAPE_MISMATCH, "cannot reshape %s (%lld elements) to %s (%lld elements)",
                          meta_format(x, sx, sizeof sx), (long long)numel,
                          format_dims(attrs->shape, attrs->ndim, ss, sizeof ss), (long long)known);
    }
    meta_set(&args->outputs[0], x->dtype, attrs->ndim, dims);
    return PLX_OK;
}

static plx_status infer_permute(op_infer_args *args)
{
    const plx_permute_attrs *attrs = args->attrs;
    const tensor_meta *x = &args->inputs[0];
    char sx[128], sp[128];
    if (attrs->ndim != x->ndim)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "attrs.ndim is %d but x is %s", (int)attrs->ndim,
                          meta_format(x, sx, sizeof sx));
    bool seen[PLX_MAX_DIMS] = {false};
    int64_t dims[PLX_MAX_DIMS];
    for (int32_t i = 0; i < x->ndim; i++) {
        int32_t p = attrs->perm[i] < 0 ? attrs->perm[i] + x->ndim : attrs->perm[i];
        if (p < 0 || p >= x->ndim || seen[p])
            return infer_fail(args, PLX_INVALID_ARGUMENT, "perm %s is not a permutation of the %d dims of x %s",
                              format_dims32(attrs->perm, attrs->ndim, sp, sizeof sp), (int)x->ndim,
                              meta_format(x, sx, sizeof sx));
        seen[p] = true;
        dims[i] = x->dims[p];
    }
    meta_set(&args->outputs[0], x->dtype, x->ndim, dims);
    return PLX_OK;
}

static plx_status infer_concat(op_infer_args *args)
{
    const plx_concat_attrs *attrs = args->attrs;
    const tensor_meta *x0 = &args->inputs[0];
    char s0[128], si[128];
    plx_status st;
    if (x0->ndim < 1)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "cannot concatenate 0-dim tensors (input 0 is %s)",
                          meta_format(x0, s0, sizeof s0));
    int32_t axis;
    if ((st = infer_axis(args, attrs->axis, x0->ndim, &axis)) != PLX_OK)
        return st;
    int64_t total = 0;
    for (int32_t k = 0; k < args->n_inputs; k++) {
        const tensor_meta *xk = &args->inputs[k];
        if ((st = infer_require_same_dtype(args, 0, k)) != PLX_OK)
            return st;
        bool ok = xk->ndim == x0->ndim;
        for (int32_t d = 0; ok && d < x0->ndim; d++)
            ok = d == axis || xk->dims[d] == x0->dims[d];
        if (!ok)
            return infer_fail(args, PLX_SHAPE_MISMATCH,
                              "input %d %s does not match input 0 %s outside axis %d", (int)k,
                              meta_format(xk, si, sizeof si), meta_format(x0, s0, sizeof s0), (int)axis);
        total += xk->dims[axis];
    }
    tensor_meta *y = &args->outputs[0];
    meta_set(y, x0->dtype, x0->ndim, x0->dims);
    y->dims[axis] = total;
    return PLX_OK;
}

/* Python's slice.indices for step > 0: clamps start and end into [0, dim]. */
static int64_t clamp_slice_bound(int64_t v, int64_t dim)
{
    if (v < 0) {
        v = v < -dim ? 0 : v + dim;
    }
    return v > dim ? dim : v;
}

static plx_status infer_slice(op_infer_args *args)
{
    const plx_slice_attrs *attrs = args->attrs;
    const tensor_meta *x = &args->inputs[0];
    char sx[128];
    if (attrs->n_axes < 0 || attrs->n_axes > x->ndim)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "attrs.n_axes is %d, must be in [0, %d] for x %s",
                          (int)attrs->n_axes, (int)x->ndim, meta_format(x, sx, sizeof sx));
    tensor_meta *y = &args->outputs[0];
    meta_set(y, x->dtype, x->ndim, x->dims);
    bool seen[PLX_MAX_DIMS] = {false};
    for (int32_t k = 0; k < attrs->n_axes; k++) {
        int32_t axis;
        plx_status st = infer_axis(args, attrs->axes[k], x->ndim, &axis);
        if (st != PLX_OK)
            return st;
        if (seen[axis])
            return infer_fail(args, PLX_INVALID_ARGUMENT, "axis %d is listed twice (x %s)", (int)attrs->axes[k],
                              meta_format(x, sx, sizeof sx));
        seen[axis] = true;
        int64_t step = attrs->steps[k] == 0 ? 1 : attrs->steps[k];
        if (step < 0)
            return infer_fail(args, PLX_INVALID_ARGUMENT, "step %lld on axis %d must be > 0 (x %s)",
                              (long long)step, (int)attrs->axes[k], meta_format(x, sx, sizeof sx));
        int64_t dim = x->dims[axis];
        int64_t start = clamp_slice_bound(attrs->starts[k], dim);
        int64_t end = clamp_slice_bound(attrs->ends[k], dim);
        y->dims[axis] = end > start ? (end - start - 1) / step + 1 : 0;
    }
    return PLX_OK;
}

static plx_status infer_pad(op_infer_args *args)
{
    const plx_pad_attrs *attrs = args->attrs;
    const tensor_meta *x = &args->inputs[0];
    char sx[128];
    if (attrs->ndim != x->ndim)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "attrs.ndim is %d but x is %s", (int)attrs->ndim,
                          meta_format(x, sx, sizeof sx));
    if (attrs->mode != PLX_PAD_CONSTANT && attrs->mode != PLX_PAD_REFLECT && attrs->mode != PLX_PAD_REPLICATE)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "attrs.mode %d is not constant (0), reflect (1) or replicate (2)",
                          (int)attrs->mode);
    tensor_meta *y = &args->outputs[0];
    meta_set(y, x->dtype, x->ndim, x->dims);
    for (int32_t d = 0; d < x->ndim; d++) {
        int64_t before = attrs->before[d], after = attrs->after[d], dim = x->dims[d];
        if (before < 0 || after < 0 || before > LAYOUT_DIM_LIMIT || after > LAYOUT_DIM_LIMIT)
            return infer_fail(args, PLX_INVALID_ARGUMENT, "padding (%lld, %lld) on dim %d must be >= 0 (x %s)",
                              (long long)before, (long long)after, (int)d, meta_format(x, sx, sizeof sx));
        if (attrs->mode == PLX_PAD_REFLECT && (before >= dim || after >= dim) && (before > 0 || after > 0))
            return infer_fail(args, PLX_INVALID_ARGUMENT,
                              "reflect padding (%lld, %lld) on dim %d must be less than its size %lld (x %s)",
                              (long long)before, (long long)after, (int)d, (long long)dim,
                              meta_format(x, sx, sizeof sx));
        if (attrs->mode == PLX_PAD_REPLICATE && dim == 0 && (before > 0 || after > 0))
            return infer_fail(args, PLX_INVALID_ARGUMENT,
                              "replicate padding (%lld, %lld) on dim %d needs a non-empty dim (x %s)",
                              (long long)before, (long long)after, (int)d, meta_format(x, sx, sizeof sx));
        y->dims[d] = dim + before + after;
    }
    return PLX_OK;
}

static plx_status infer_fill(op_infer_args *args)
{
    const plx_fill_attrs *attrs = args->attrs;
    if (!dtype_is_known(attrs->dtype))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "attrs.dtype (code %u, bits %u, lanes %u) is not a known dtype",
                          (unsigned)attrs->dtype.code, (unsigned)attrs->dtype.bits, (unsigned)attrs->dtype.lanes);
    plx_status st = check_attr_shape(args, attrs->ndim, attrs->shape);
    if (st != PLX_OK)
        return st;
    if (dtype_is_integer(attrs->dtype)) {
        /* As torch.full: an integer fill value must fit the dtype. */
        double lo, hi;
        int bits = attrs->dtype.bits;
        if (attrs->dtype.code == PLX_DTYPE_CODE_UINT) {
            lo = 0.0;
            hi = ldexp(1.0, bits) - 1.0;
        } else {
            lo = -ldexp(1.0, bits - 1);
            hi = ldexp(1.0, bits - 1) - 1.0;
        }
        double v = trunc(attrs->value);
        if (!(v >= lo && v <= hi))
            return infer_fail(args, PLX_INVALID_ARGUMENT, "value %g cannot be converted to %s without overflow",
                              attrs->value, dtype_name(attrs->dtype));
    }
    meta_set(&args->outputs[0], attrs->dtype, attrs->ndim, attrs->shape);
    return PLX_OK;
}

/* ---- Gradient rules ------------------------------------------------------ */

/* Every layout op moves elements without changing them, so each gradient
 * moves dy back: the adjoint of a gather is a scatter, built here from
 * slices, zero pads, reshapes and sums. */

static int32_t slice_axis(grad_ctx *gc, int32_t v, int32_t axis, int64_t start, int64_t end)
{
    if (v < 0)
        return -1;
    const tensor_meta *m = grad_meta(gc, v);
    if (start == 0 && end == m->dims[axis])
        return v;
    plx_slice_attrs a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.n_axes = 1;
    a.axes[0] = axis;
    a.starts[0] = start;
    a.ends[0] = end;
    a.steps[0] = 1;
    return grad_op(gc, PLX_OP_SLICE, &a, &v, 1);
}

/* Zero padding of one axis; keeps v's dtype. */
static int32_t pad_axis(grad_ctx *gc, int32_t v, int32_t axis, int64_t before, int64_t after)
{
    if (v < 0)
        return -1;
    if (before == 0 && after == 0)
        return v;
    const tensor_meta *m = grad_meta(gc, v);
    plx_pad_attrs a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.ndim = m->ndim;
    a.before[axis] = before;
    a.after[axis] = after;
    a.mode = PLX_PAD_CONSTANT;
    return grad_op(gc, PLX_OP_PAD, &a, &v, 1);
}

static int32_t add_values(grad_ctx *gc, int32_t a, int32_t b)
{
    if (a < 0 || b < 0)
        return -1;
    int32_t in[2] = {a, b};
    return grad_op(gc, PLX_OP_ADD, NULL, in, 2);
}

static int32_t sum_axis_keep(grad_ctx *gc, int32_t v, int32_t axis)
{
    if (v < 0)
        return -1;
    plx_reduce_attrs r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.n_axes = 1;
    r.axes[0] = axis;
    r.keepdims = 1;
    return grad_op(gc, PLX_OP_SUM, &r, &v, 1);
}

static plx_status grad_copy(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    (void)gc;
    (void)n;
    if (dy[0] >= 0 && need[0])
        dx[0] = dy[0];
    return PLX_OK;
}

/* Float-to-float casts pass dy back in x's dtype. Casts from or to integer
 * or bool values have no gradient: an integer output carries none, and an
 * integer input never asks for one. */
static plx_status grad_cast(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    if (dy[0] < 0 || !need[0])
        return PLX_OK;
    const tensor_meta *x = grad_meta(gc, n->in[0]);
    const tensor_meta *g = grad_meta(gc, dy[0]);
    if (!dtype_is_float(x->dtype) || !dtype_is_float(grad_meta(gc, n->out[0])->dtype))
        return PLX_OK;
    if (plx_dtype_equal(g->dtype, x->dtype)) {
        dx[0] = dy[0];
        return PLX_OK;
    }
    plx_cast_attrs c = {sizeof c, x->dtype};
    dx[0] = grad_op(gc, PLX_OP_CAST, &c, &dy[0], 1);
    return dx[0] < 0 ? grad_status(gc) : PLX_OK;
}

static plx_status grad_reshape_rule(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need,
                                    int32_t *dx)
{
    if (dy[0] < 0 || !need[0])
        return PLX_OK;
    dx[0] = grad_reshape(gc, dy[0], grad_meta(gc, n->in[0]));
    return dx[0] < 0 ? grad_status(gc) : PLX_OK;
}

/* y.dims[i] = x.dims[perm[i]], so dx permutes dy by the inverse. */
static plx_status grad_permute(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    if (dy[0] < 0 || !need[0])
        return PLX_OK;
    const plx_permute_attrs *a = (const plx_permute_attrs *)n->attrs;
    plx_permute_attrs inv;
    memset(&inv, 0, sizeof inv);
    inv.struct_size = sizeof inv;
    inv.ndim = a->ndim;
    for (int32_t i = 0; i < a->ndim; i++) {
        int32_t p = a->perm[i] < 0 ? a->perm[i] + a->ndim : a->perm[i];
        inv.perm[p] = i;
    }
    dx[0] = grad_op(gc, PLX_OP_PERMUTE, &inv, &dy[0], 1);
    return dx[0] < 0 ? grad_status(gc) : PLX_OK;
}

/* Input k gets its own stretch of dy along the axis. */
static plx_status grad_concat(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    if (dy[0] < 0)
        return PLX_OK;
    const plx_concat_attrs *a = (const plx_concat_attrs *)n->attrs;
    int32_t ndim = grad_meta(gc, n->out[0])->ndim;
    int32_t axis = a->axis < 0 ? a->axis + ndim : a->axis;
    int64_t offset = 0;
    for (int32_t k = 0; k < n->n_in; k++) {
        int64_t len = grad_meta(gc, n->in[k])->dims[axis];
        if (need[k]) {
            dx[k] = slice_axis(gc, dy[0], axis, offset, offset + len);
            if (dx[k] < 0)
                return grad_status(gc);
        }
        offset += len;
    }
    return PLX_OK;
}

/* Spreads the `len` entries of v along `axis` to every step-th position:
 * [.., len, ..] -> [.., (len - 1) * step + 1, ..] with zeros between. Done on
 * a 3-d view [outer, len, inner] so it never needs an extra dim. */
static int32_t interleave_zeros(grad_ctx *gc, int32_t v, int32_t axis, int64_t step)
{
    const tensor_meta m = *grad_meta(gc, v);
    int64_t len = m.dims[axis], outer = 1, inner = 1;
    if (len <= 1 || step == 1)
        return v;
    for (int32_t d = 0; d < axis; d++)
        outer *= m.dims[d];
    for (int32_t d = axis + 1; d < m.ndim; d++)
        inner *= m.dims[d];
    tensor_meta view = {.dtype = m.dtype, .ndim = 3, .dims = {outer, len, inner}};
    int32_t r = grad_reshape(gc, v, &view);
    int32_t padded = pad_axis(gc, r, 2, 0, (step - 1) * inner);
    tensor_meta spread = {.dtype = m.dtype, .ndim = 3, .dims = {outer, len * step, inner}};
    int32_t s = padded < 0 ? -1 : grad_reshape(gc, padded, &spread);
    int32_t cut = slice_axis(gc, s, 1, 0, (len - 1) * step + 1);
    tensor_meta back = m;
    back.dims[axis] = (len - 1) * step + 1;
    return cut < 0 ? -1 : grad_reshape(gc, cut, &back);
}

/* dy lands at positions start, start + step, ... of each sliced axis and
 * zeros fill the rest: interleave zeros for steps > 1, then zero-pad. */
static plx_status grad_slice(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    if (dy[0] < 0 || !need[0])
        return PLX_OK;
    const plx_slice_attrs *a = (const plx_slice_attrs *)n->attrs;
    const tensor_meta x = *grad_meta(gc, n->in[0]);
    int32_t g = dy[0];
    for (int32_t k = 0; k < a->n_axes && g >= 0; k++) {
        int32_t axis = a->axes[k] < 0 ? a->axes[k] + x.ndim : a->axes[k];
        int64_t step = a->steps[k] == 0 ? 1 : a->steps[k];
        int64_t dim = x.dims[axis];
        int64_t start = clamp_slice_bound(a->starts[k], dim);
        g = interleave_zeros(gc, g, axis, step);
        if (g < 0)
            break;
        int64_t covered = grad_meta(gc, g)->dims[axis];
        g = pad_axis(gc, g, axis, start, dim - start - covered);
    }
    if (g < 0)
        return grad_status(gc);
    dx[0] = g;
    return PLX_OK;
}

/* Reverses v along `axis`: the two halves, each reversed, swapped. Depth
 * log2(len), about 2 * len nodes, no allocation. */
static int32_t reverse_axis(grad_ctx *gc, int32_t v, int32_t axis)
{
    if (v < 0)
        return -1;
    int64_t len = grad_meta(gc, v)->dims[axis];
    if (len <= 1)
        return v;
    int64_t half = len / 2;
    int32_t first = reverse_axis(gc, slice_axis(gc, v, axis, 0, half), axis);
    int32_t second = first < 0 ? -1 : reverse_axis(gc, slice_axis(gc, v, axis, half, len), axis);
    if (second < 0)
        return -1;
    plx_concat_attrs c = {sizeof c, axis};
    int32_t parts[2] = {second, first};
    return grad_op(gc, PLX_OP_CONCAT, &c, parts, 2);
}

/* The adjoint of padding one axis (x has n entries on it): the middle of g,
 * plus what the padded entries copied from x added back to their sources. */
static int32_t unpad_axis(grad_ctx *gc, int32_t g, int32_t axis, int64_t n, int64_t before, int64_t after,
                          int32_t mode)
{
    if (before == 0 && after == 0)
        return g;
    int32_t mid = slice_axis(gc, g, axis, before, before + n);
    if (mode == PLX_PAD_CONSTANT || mid < 0)
        return mid;
    int32_t left = before > 0 ? slice_axis(gc, g, axis, 0, before) : -2;
    int32_t right = after > 0 ? slice_axis(gc, g, axis, before + n, before + n + after) : -2;
    if (left == -1 || right == -1)
        return -1;
    if (mode == PLX_PAD_REPLICATE) {
        /* Every padded entry copies the edge. */
        if (left >= 0)
            mid = add_values(gc, mid, pad_axis(gc, sum_axis_keep(gc, left, axis), axis, 0, n - 1));
        if (right >= 0 && mid >= 0)
            mid = add_values(gc, mid, pad_axis(gc, sum_axis_keep(gc, right, axis), axis, n - 1, 0));
        return mid;
    }
    /* Reflect: left-pad entry k copies x[before - k] and right-pad entry i
     * copies x[n - 2 - i], so each side, reversed, lands on x[1 .. before]
     * and x[n - 1 - after .. n - 2] (the edge entries are not repeated). */
    if (left >= 0)
        mid = add_values(gc, mid, pad_axis(gc, reverse_axis(gc, left, axis), axis, 1, n - 1 - before));
    if (right >= 0 && mid >= 0)
        mid = add_values(gc, mid, pad_axis(gc, reverse_axis(gc, right, axis), axis, n - 1 - after, 1));
    return mid;
}

/* Padding is separable (each axis pads the result of the others), so its
 * adjoint undoes one axis at a time. */
static plx_status grad_pad(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    if (dy[0] < 0 || !need[0])
        return PLX_OK;
    const plx_pad_attrs *a = (const plx_pad_attrs *)n->attrs;
    const tensor_meta x = *grad_meta(gc, n->in[0]);
    int32_t g = dy[0];
    for (int32_t d = 0; d < x.ndim && g >= 0; d++)
        g = unpad_axis(gc, g, d, x.dims[d], a->before[d], a->after[d], a->mode);
    if (g < 0)
        return grad_status(gc);
    dx[0] = g;
    return PLX_OK;
}

/* Data movement: one unit of work per byte-ish element moved. */
static double work_move(const op_infer_args *args)
{
    return args->n_outputs > 0 ? (double)meta_numel(&args->outputs[0]) : 0.0;
}

const op_def op_defs_layout[] = {
    {PLX_OP_COPY, 1, 1, 1, 0, 0, NULL, infer_copy, work_move, grad_copy},
    {PLX_OP_CAST, 1, 1, 1, 0, sizeof(plx_cast_attrs), NULL, infer_cast, work_move, grad_cast},
    {PLX_OP_RESHAPE, 1, 1, 1, 0, sizeof(plx_reshape_attrs), NULL, infer_reshape, work_move, grad_reshape_rule},
    {PLX_OP_PERMUTE, 1, 1, 1, 0, sizeof(plx_permute_attrs), NULL, infer_permute, work_move, grad_permute},
    {PLX_OP_CONCAT, 1, -1, 1, 0, sizeof(plx_concat_attrs), &concat_default, infer_concat, work_move, grad_concat},
    {PLX_OP_SLICE, 1, 1, 1, 0, sizeof(plx_slice_attrs), NULL, infer_slice, work_move, grad_slice},
    {PLX_OP_PAD, 1, 1, 1, 0, sizeof(plx_pad_attrs), NULL, infer_pad, work_move, grad_pad},
    {PLX_OP_FILL, 0, 0, 1, 0, sizeof(plx_fill_attrs), NULL, infer_fill, work_move},
};
const size_t op_defs_layout_count = sizeof(op_defs_layout) / sizeof(op_defs_layout[0]);

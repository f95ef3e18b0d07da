/* Core ops of the embedding family: lookup and its scatter-add backward. */
#include <string.h>

#include "../autodiff.h"
#include "../op_catalog.h"

static const plx_embedding_attrs embedding_default = PLX_EMBEDDING_ATTRS_DEFAULT;

static plx_status require_index_dtype(op_infer_args *args, int32_t i)
{
    char b[128];
    plx_dtype t = args->inputs[i].dtype;
    if (!plx_dtype_equal(t, PLX_I64) && !plx_dtype_equal(t, PLX_I32))
        return infer_fail(args, PLX_DTYPE_MISMATCH, "indices (input %d) must be i64 or i32, got %s", (int)i,
                          meta_format(&args->inputs[i], b, sizeof b));
    return PLX_OK;
}

/* padding_idx is -1 (none) or a row of the table. */
static plx_status check_padding_idx(op_infer_args *args, int64_t padding_idx, int64_t rows)
{
    if (padding_idx != -1 && (padding_idx < 0 || padding_idx >= rows))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "padding_idx %lld must be -1 (none) or in [0, %lld)",
                          (long long)padding_idx, (long long)rows);
    return PLX_OK;
}

static plx_status infer_embedding(op_infer_args *args)
{
    const plx_embedding_attrs *attrs = args->attrs;
    const tensor_meta *weight = &args->inputs[0], *indices = &args->inputs[1];
    char sw[128], si[128];
    plx_status st;
    if ((st = infer_require_float(args, 0, "weight")) != PLX_OK || (st = require_index_dtype(args, 1)) != PLX_OK ||
        (st = infer_require_ndim(args, 0, 2, "weight")) != PLX_OK)
        return st;
    if (indices->ndim >= PLX_MAX_DIMS)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "indices %s leave no room for the embedding dim (max %d dims)",
                          meta_format(indices, si, sizeof si), PLX_MAX_DIMS);
    int64_t rows = weight->dims[0];
    if (attrs->num_embeddings != 0 && attrs->num_embeddings != rows)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "num_embeddings %lld does not match weight %s",
                          (long long)attrs->num_embeddings, meta_format(weight, sw, sizeof sw));
    if ((st = check_padding_idx(args, attrs->padding_idx, rows)) != PLX_OK)
        return st;
    tensor_meta *y = &args->outputs[0];
    meta_set(y, weight->dtype, indices->ndim, indices->dims);
    y->dims[indices->ndim] = weight->dims[1];
    y->ndim = indices->ndim + 1;
    return PLX_OK;
}

static plx_status infer_embedding_backward(op_infer_args *args)
{
    const plx_embedding_attrs *attrs = args->attrs;
    const tensor_meta *dy = &args->inputs[0], *indices = &args->inputs[1];
    char sd[128], si[128];
    plx_status st;
    if ((st = infer_require_float(args, 0, "dy")) != PLX_OK || (st = require_index_dtype(args, 1)) != PLX_OK)
        return st;
    bool ok = dy->ndim == indices->ndim + 1;
    for (int32_t d = 0; ok && d < indices->ndim; d++)
        ok = dy->dims[d] == indices->dims[d];
    if (!ok)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "dy %s must be indices %s with one trailing embedding dim",
                          meta_format(dy, sd, sizeof sd), meta_format(indices, si, sizeof si));
    if (attrs->num_embeddings <= 0)
        return infer_fail(args, PLX_INVALID_ARGUMENT,
                          "attrs.num_embeddings is %lld; it must be set (> 0) to size dweight",
                          (long long)attrs->num_embeddings);
    if ((st = check_padding_idx(args, attrs->padding_idx, attrs->num_embeddings)) != PLX_OK)
        return st;
    int64_t dims[2] = {attrs->num_embeddings, dy->dims[dy->ndim - 1]};
    meta_set(&args->outputs[0], dy->dtype, 2, dims);
    return PLX_OK;
}

/* Backward zeroes the table and adds one row per index. */
static double work_embedding_backward(const op_infer_args *args)
{
    return (double)meta_numel(&args->inputs[0]) + (double)meta_numel(&args->outputs[0]);
}

/* dweight = embedding_backward(dy, indices), a scatter-add that skips
 * padding_idx. The forward may leave num_embeddings 0 (taken from the
 * weight), so the backward's V comes from the weight's shape. The indices
 * have no gradient. */
static plx_status grad_embedding(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need,
                                 int32_t *dx)
{
    if (dy[0] < 0 || !need[0])
        return PLX_OK;
    plx_embedding_attrs a;
    memcpy(&a, n->attrs, sizeof a);
    a.struct_size = sizeof a;
    a.num_embeddings = grad_meta(gc, n->in[0])->dims[0];
    int32_t in[2] = {dy[0], n->in[1]};
    dx[0] = grad_op(gc, PLX_OP_EMBEDDING_BACKWARD, &a, in, 2);
    return dx[0] < 0 ? grad_status(gc) : PLX_OK;
}

const op_def op_defs_embedding[] = {
    {PLX_OP_EMBEDDING, 2, 2, 1, 0, sizeof(plx_embedding_attrs), &embedding_default, infer_embedding, NULL,
     grad_embedding},
    {PLX_OP_EMBEDDING_BACKWARD, 2, 2, 1, 0, sizeof(plx_embedding_attrs), &embedding_default,
     infer_embedding_backward, work_embedding_backward},
};
const size_t op_defs_embedding_count = sizeof(op_defs_embedding) / sizeof(op_defs_embedding[0]);

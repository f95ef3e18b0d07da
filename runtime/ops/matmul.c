/* Core ops of the matmul family: arity, attrs and shape inference. */
#include "../autodiff.h"
#include "../op_catalog.h"

static const plx_matmul_attrs matmul_default = PLX_MATMUL_ATTRS_DEFAULT;

/* Rows and columns of a's or b's last two dims as the product sees them. */
static void matrix_dims(const tensor_meta *m, int32_t transposed, int64_t *rows, int64_t *cols)
{
    int64_t r = m->dims[m->ndim - 2], c = m->dims[m->ndim - 1];
    *rows = transposed ? c : r;
    *cols = transposed ? r : c;
}

static plx_status infer_matmul(op_infer_args *args)
{
    const plx_matmul_attrs *attrs = args->attrs;
    const tensor_meta *a = &args->inputs[0], *b = &args->inputs[1];
    char sa[128], sb[128];
    plx_status st;
    if ((st = infer_require_float(args, 0, "a")) != PLX_OK || (st = infer_require_same_dtype(args, 0, 1)) != PLX_OK)
        return st;
    if ((attrs->trans_a != 0 && attrs->trans_a != 1) || (attrs->trans_b != 0 && attrs->trans_b != 1))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "trans_a and trans_b must be 0 or 1, got %d and %d",
                          (int)attrs->trans_a, (int)attrs->trans_b);
    if (a->ndim < 2 || b->ndim < 2)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "a and b must have at least 2 dims, got a %s and b %s",
                          meta_format(a, sa, sizeof sa), meta_format(b, sb, sizeof sb));
    int64_t m, ka, kb, n;
    matrix_dims(a, attrs->trans_a, &m, &ka);
    matrix_dims(b, attrs->trans_b, &kb, &n);
    if (ka != kb)
        return infer_fail(args, PLX_SHAPE_MISMATCH,
                          "inner dims differ: a %s%s gives K=%lld, b %s%s gives K=%lld", meta_format(a, sa, sizeof sa),
                          attrs->trans_a ? " (transposed)" : "", (long long)ka, meta_format(b, sb, sizeof sb),
                          attrs->trans_b ? " (transposed)" : "", (long long)kb);

    /* Batch dims (all but the last two) broadcast NumPy-style. */
    int32_t batch_a = a->ndim - 2, batch_b = b->ndim - 2;
    int32_t batch = batch_a > batch_b ? batch_a : batch_b;
    int64_t dims[PLX_MAX_DIMS];
    for (int32_t d = 0; d < batch; d++) {
        int32_t da = d - (batch - batch_a), db = d - (batch - batch_b);
        int64_t size_a = da >= 0 ? a->dims[da] : 1, size_b = db >= 0 ? b->dims[db] : 1;
        if (size_a != size_b && size_a != 1 && size_b != 1)
            return infer_fail(args, PLX_SHAPE_MISMATCH,
                              "batch dims of a %s and b %s do not broadcast (batch dim %d: %lld vs %lld)",
                              meta_format(a, sa, sizeof sa), meta_format(b, sb, sizeof sb), (int)d,
                              (long long)size_a, (long long)size_b);
        dims[d] = size_a == 1 ? size_b : size_a;
    }
    dims[batch] = m;
    dims[batch + 1] = n;
    meta_set(&args->outputs[0], a->dtype, batch + 2, dims);
    return PLX_OK;
}

static double work_matmul(const op_infer_args *args)
{
    const plx_matmul_attrs *attrs = args->attrs;
    int64_t m, k;
    matrix_dims(&args->inputs[0], attrs->trans_a, &m, &k);
    /* y holds batch * M * N elements; each costs K multiply-adds. */
    return 2.0 * (double)meta_numel(&args->outputs[0]) * (double)k;
}


/* y = op(A) op(B) with op a transpose when the attr says so:
 *   d op(A) = dy op(B)^T,  d op(B) = op(A)^T dy,
 * each written as one matmul with transposes chosen so that the result comes
 * out in A's (B's) stored layout; then summed over broadcast batch dims. */
static plx_status grad_matmul(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    if (dy[0] < 0)
        return PLX_OK;
    const plx_matmul_attrs *a = (const plx_matmul_attrs *)n->attrs;
    int32_t A = n->in[0], B = n->in[1], g = dy[0];
    if (need[0]) {
        plx_matmul_attrs m = PLX_MATMUL_ATTRS_DEFAULT;
        int32_t in[2];
        if (!a->trans_a) { /* dA = dy op(B)^T */
            in[0] = g;
            in[1] = B;
            m.trans_b = !a->trans_b;
        } else { /* dA_stored = op(B) dy^T */
            in[0] = B;
            in[1] = g;
            m.trans_a = a->trans_b;
            m.trans_b = 1;
        }
        int32_t v = grad_op(gc, PLX_OP_MATMUL, &m, in, 2);
        dx[0] = grad_sum_to(gc, v, grad_meta(gc, A));
        if (dx[0] < 0)
            return grad_status(gc);
    }
    if (need[1]) {
        plx_matmul_attrs m = PLX_MATMUL_ATTRS_DEFAULT;
        int32_t in[2];
        if (!a->trans_b) { /* dB = op(A)^T dy */
            in[0] = A;
            in[1] = g;
            m.trans_a = !a->trans_a;
        } else { /* dB_stored = dy^T op(A) */
            in[0] = g;
            in[1] = A;
            m.trans_a = 1;
            m.trans_b = a->trans_a;
        }
        int32_t v = grad_op(gc, PLX_OP_MATMUL, &m, in, 2);
        dx[1] = grad_sum_to(gc, v, grad_meta(gc, B));
        if (dx[1] < 0)
            return grad_status(gc);
    }
    return PLX_OK;
}

const op_def op_defs_matmul[] = {
    {PLX_OP_MATMUL, 2, 2, 1, 0, sizeof(plx_matmul_attrs), &matmul_default, infer_matmul, work_matmul, grad_matmul},
};
const size_t op_defs_matmul_count = sizeof(op_defs_matmul) / sizeof(op_defs_matmul[0]);

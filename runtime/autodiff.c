/* autodiff.c — reverse-mode differentiation; see autodiff.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"

struct grad_ctx {
    plx_graph *g;
    plx_status status;
};

plx_graph *grad_graph(grad_ctx *gc)
{
    return gc->g;
}

plx_status grad_status(const grad_ctx *gc)
{
    return gc->status != PLX_OK ? gc->status : PLX_INTERNAL;
}

const tensor_meta *grad_meta(grad_ctx *gc, int32_t value)
{
    return &gc->g->values[value].meta;
}

plx_status grad_op_multi(grad_ctx *gc, int32_t op_id, const void *attrs, const int32_t *in, int32_t n_in,
                         int32_t *out, int32_t n_out)
{
    if (gc->status != PLX_OK)
        return gc->status;
    for (int32_t i = 0; i < n_in; i++)
        if (in[i] < 0)
            return gc->status = ctx_fail(gc->g->ctx, PLX_INTERNAL, "%s: gradient rule passed a missing value to %s",
                                         gc->g->scope, op_name_of(gc->g->ctx, op_id));
    gc->status = graph_add_op(gc->g, op_id, attrs, in, n_in, out, n_out);
    return gc->status;
}

int32_t grad_op(grad_ctx *gc, int32_t op_id, const void *attrs, const int32_t *in, int32_t n_in)
{
    int32_t out = -1;
    if (grad_op_multi(gc, op_id, attrs, in, n_in, &out, 1) != PLX_OK)
        return -1;
    return out;
}

int32_t grad_fill(grad_ctx *gc, float value, const tensor_meta *shape)
{
    plx_fill_attrs a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.dtype = PLX_F32;
    a.ndim = shape->ndim;
    for (int32_t d = 0; d < shape->ndim; d++)
        a.shape[d] = shape->dims[d];
    a.value = value;
    return grad_op(gc, PLX_OP_FILL, &a, NULL, 0);
}

int32_t grad_reshape(grad_ctx *gc, int32_t v, const tensor_meta *target)
{
    if (v < 0)
        return -1;
    const tensor_meta *m = grad_meta(gc, v);
    if (meta_same_shape(m, target))
        return v;
    plx_reshape_attrs a;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    a.ndim = target->ndim;
    for (int32_t d = 0; d < target->ndim; d++)
        a.shape[d] = target->dims[d];
    return grad_op(gc, PLX_OP_RESHAPE, &a, &v, 1);
}

int32_t grad_sum_to(grad_ctx *gc, int32_t v, const tensor_meta *target)
{
    if (v < 0)
        return -1;
    const tensor_meta m = *grad_meta(gc, v);
    if (meta_same_shape(&m, target))
        return v;
    /* Axes of v that are broadcast relative to target: leading extra dims,
     * and dims where target has 1 and v does not. */
    plx_reduce_attrs r;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.keepdims = 1;
    int32_t lead = m.ndim - target->ndim;
    for (int32_t d = 0; d < m.ndim; d++) {
        int32_t td = d - lead;
        if (td < 0 || (target->dims[td] == 1 && m.dims[d] != 1))
            r.axes[r.n_axes++] = d;
    }
    int32_t summed = v;
    if (r.n_axes > 0)
        summed = grad_op(gc, PLX_OP_SUM, &r, &v, 1);
    return grad_reshape(gc, summed, target);
}

int32_t grad_expand(grad_ctx *gc, int32_t v, const tensor_meta *target)
{
    if (v < 0)
        return -1;
    if (meta_same_shape(grad_meta(gc, v), target))
        return v;
    int32_t zeros = grad_fill(gc, 0.0f, target);
    int32_t in[2] = {zeros, v};
    return zeros < 0 ? -1 : grad_op(gc, PLX_OP_ADD, NULL, in, 2);
}

int32_t grad_or_zeros(grad_ctx *gc, int32_t dy, int32_t like)
{
    if (dy >= 0)
        return dy;
    return grad_fill(gc, 0.0f, grad_meta(gc, like));
}

plx_status autodiff(plx_graph *g, int32_t loss, const int32_t *wrt, int32_t n_wrt, int32_t *grads)
{
    plx_context *ctx = g->ctx;
    if (loss < 0 || loss >= g->n_values || !dtype_is_float(g->values[loss].meta.dtype))
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "autodiff: the loss must be a float value of the graph");
    int32_t n_fwd_nodes = g->n_nodes;
    int32_t n_fwd_values = g->n_values;
    bool *needs = calloc((size_t)n_fwd_values + 1, sizeof *needs);
    int32_t *grad_of = malloc(sizeof(int32_t) * ((size_t)n_fwd_values + 1));
    if (needs == NULL || grad_of == NULL) {
        free(needs);
        free(grad_of);
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "autodiff: out of memory");
    }
    for (int32_t v = 0; v < n_fwd_values; v++)
        grad_of[v] = -1;
    for (int32_t i = 0; i < n_wrt; i++) {
        if (wrt[i] < 0 || wrt[i] >= n_fwd_values) {
            free(needs);
            free(grad_of);
            return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "autodiff: value %d is not in the graph", (int)wrt[i]);
        }
        needs[wrt[i]] = true;
    }
    /* Forward: which values depend on the requested ones. */
    for (int32_t ni = 0; ni < n_fwd_nodes; ni++) {
        const graph_node *n = &g->nodes[ni];
        bool any = false;
        for (int32_t i = 0; i < n->n_in; i++)
            any |= needs[n->in[i]];
        for (int32_t o = 0; o < n->n_out; o++)
            needs[n->out[o]] = any;
    }
    grad_ctx gc = {.g = g, .status = PLX_OK};
    const char *saved_scope = g->scope;
    char scope[300];
    snprintf(scope, sizeof scope, "backward");
    g->scope = scope;
    plx_status st = PLX_OK;
    grad_of[loss] = grad_fill(&gc, 1.0f, &g->values[loss].meta);
    if (grad_of[loss] < 0)
        st = grad_status(&gc);
    for (int32_t ni = n_fwd_nodes - 1; ni >= 0 && st == PLX_OK; ni--) {
        /* Copy: rules add nodes, which may move g->nodes. */
        graph_node n = g->nodes[ni];
        bool any_dy = false, any_need = false;
        for (int32_t o = 0; o < n.n_out; o++)
            any_dy |= grad_of[n.out[o]] >= 0;
        bool need[64] = {false};
        int32_t dy[8], dx[64];
        if (n.n_in > 64 || n.n_out > 8) {
            st = ctx_fail(ctx, PLX_UNSUPPORTED, "autodiff: node %d has too many inputs", (int)ni);
            break;
        }
        for (int32_t i = 0; i < n.n_in; i++) {
            need[i] = needs[n.in[i]] && dtype_is_float(g->values[n.in[i]].meta.dtype);
            any_need |= need[i];
            dx[i] = -1;
        }
        if (!any_dy || !any_need)
            continue;
        for (int32_t o = 0; o < n.n_out; o++)
            dy[o] = grad_of[n.out[o]];
        const op_def *def = op_catalog_get(n.op_id);
        snprintf(scope, sizeof scope, "backward of %s", n.scope ? n.scope : "");
        if (def == NULL || def->grad == NULL) {
            char what[768];
            graph_describe_node(g, ni, what, sizeof what);
            st = ctx_fail(ctx, PLX_UNSUPPORTED, "autodiff: %s has no gradient rule, but its input needs a gradient",
                          what);
            break;
        }
        /* The rule reads the node through a stable copy of its arrays. */
        int32_t io[72];
        memcpy(io, n.in, sizeof(int32_t) * (size_t)n.n_in);
        memcpy(io + n.n_in, n.out, sizeof(int32_t) * (size_t)n.n_out);
        n.in = io;
        n.out = io + n.n_in;
        st = def->grad(&gc, &n, dy, need, dx);
        if (st != PLX_OK)
            break;
        for (int32_t i = 0; i < n.n_in && st == PLX_OK; i++) {
            if (!need[i] || dx[i] < 0)
                continue;
            int32_t v = n.in[i];
            if (!meta_same_shape(&g->values[dx[i]].meta, &g->values[v].meta)) {
                char a[160], b[160], what[768];
                graph_describe_node(g, ni, what, sizeof what);
                st = ctx_fail(ctx, PLX_INTERNAL, "autodiff: the gradient rule of %s gave input %d a %s gradient for a %s input",
                              what, (int)i, meta_format(&g->values[dx[i]].meta, a, sizeof a),
                              meta_format(&g->values[v].meta, b, sizeof b));
                break;
            }
            if (grad_of[v] < 0)
                grad_of[v] = dx[i];
            else {
                int32_t sum_in[2] = {grad_of[v], dx[i]};
                grad_of[v] = grad_op(&gc, PLX_OP_ADD, NULL, sum_in, 2);
                if (grad_of[v] < 0)
                    st = grad_status(&gc);
            }
        }
    }
    snprintf(scope, sizeof scope, "backward");
    for (int32_t i = 0; i < n_wrt && st == PLX_OK; i++) {
        grads[i] = grad_of[wrt[i]] >= 0 ? grad_of[wrt[i]] : grad_fill(&gc, 0.0f, &g->values[wrt[i]].meta);
        if (grads[i] < 0)
            st = grad_status(&gc);
    }
    g->scope = saved_scope;
    free(needs);
    free(grad_of);
    return st;
}

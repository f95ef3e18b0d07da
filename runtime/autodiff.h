/*
 * autodiff.h — internal: reverse-mode differentiation over a graph, and the
 * helpers that gradient rules (op_def.grad, next to each op's inference in
 * runtime/ops/<family>.c) use to add their nodes.
 *
 * autodiff() walks the forward nodes in reverse, asks each node's rule for
 * its inputs' gradients given its outputs' gradients, and sums the
 * gradients of values used more than once. Only values that depend on the
 * requested ones are differentiated. A node whose input needs a gradient but
 * whose op has no rule is an error naming the node.
 */
#ifndef PLX_AUTODIFF_H
#define PLX_AUTODIFF_H

#include "graph.h"

/* Adds the backward graph of `loss` (any float value; seeded with ones) with
 * respect to values wrt[0..n) and writes their gradient value ids to grads
 * (a zeros value when the loss does not depend on one). */
plx_status autodiff(plx_graph *g, int32_t loss, const int32_t *wrt, int32_t n_wrt, int32_t *grads);

/* ---- For gradient rules. Each returns a value id, or -1 after recording
 * the error in gc (the rule then returns grad_status(gc)). -------------- */
typedef struct grad_ctx grad_ctx;

plx_graph *grad_graph(grad_ctx *gc);
plx_status grad_status(const grad_ctx *gc);
const tensor_meta *grad_meta(grad_ctx *gc, int32_t value);

/* One-output op. */
int32_t grad_op(grad_ctx *gc, int32_t op_id, const void *attrs, const int32_t *in, int32_t n_in);
/* Several outputs into out[n_out]; returns the status. */
plx_status grad_op_multi(grad_ctx *gc, int32_t op_id, const void *attrs, const int32_t *in, int32_t n_in,
                         int32_t *out, int32_t n_out);
/* A constant-filled f32 value of the given shape. */
int32_t grad_fill(grad_ctx *gc, float value, const tensor_meta *shape);
/* Sums v over the dims broadcasting added or stretched, so it gets the
 * shape of `target` (the inverse of broadcasting). */
int32_t grad_sum_to(grad_ctx *gc, int32_t v, const tensor_meta *target);
/* Broadcasts v to the shape of `target` (v's shape must broadcast to it). */
int32_t grad_expand(grad_ctx *gc, int32_t v, const tensor_meta *target);
/* Reshape to target's shape (same element count). */
int32_t grad_reshape(grad_ctx *gc, int32_t v, const tensor_meta *target);
/* dy, or zeros of `like`'s shape when dy is -1. */
int32_t grad_or_zeros(grad_ctx *gc, int32_t dy, int32_t like);

#endif

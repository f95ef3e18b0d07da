/*
 * fuse.c — graph rewrites that let one kernel do the work of two.
 *
 * conv2d + relu: a core.relu whose input is a core.conv2d's output (and
 * that output's only other readers are core.relu_grad nodes, as autodiff
 * makes them) becomes the convolution's fused activation
 * (plx_conv2d_attrs.activation): the convolution writes the activated
 * result, the relu node disappears, the pre-activation tensor is never
 * stored, and the relu_grad nodes read the activated output instead (for
 * relu, y > 0 exactly where x > 0, so the gradient is the same). Backends
 * apply the activation in the convolution's own pass (oneDNN as a post-op),
 * saving a read and a write of the whole tensor.
 *
 * A fusion is made only when some loaded backend accepts the fused call
 * (plugins built for ABI < 1.2 never see one). PLEXUS_FUSE=0 turns fusion
 * off (for comparisons and debugging).
 */
#include <stdlib.h>
#include <string.h>

#include "executor.h"

static bool is_kept(const int32_t *keep, int32_t n_keep, int32_t v)
{
    for (int32_t i = 0; i < n_keep; i++)
        if (keep[i] == v)
            return true;
    return false;
}

/* Would any backend run conv node `ci` with a fused relu? */
static bool fused_conv_routable(plx_graph *g, int32_t ci, const plx_conv2d_attrs *fused)
{
    const graph_node *n = &g->nodes[ci];
    plx_tensor_desc descs[4];
    tensor_meta metas[4];
    if (n->n_in + n->n_out > 4)
        return false;
    plx_op_call call = node_call(g, n, fused, descs, metas);
    char quiet[8];
    int32_t b, d;
    /* with an explain buffer the router reports instead of failing loudly */
    return router_route(g->ctx, op_catalog_get(n->op_id), &call, metas, metas + n->n_in, &b, &d, quiet,
                        sizeof quiet) == PLX_OK;
}

int32_t graph_fuse(plx_graph *g, const int32_t *keep, int32_t n_keep)
{
    if (!g->ctx->fuse)
        return 0;
    int32_t fused = 0;
    for (int32_t ci = 0; ci < g->n_nodes; ci++) {
        graph_node *c = &g->nodes[ci];
        if (c->op_id != PLX_OP_CONV2D || c->n_out != 1 || c->attrs == NULL ||
            c->attrs_size < sizeof(plx_conv2d_attrs))
            continue;
        plx_conv2d_attrs a;
        memcpy(&a, c->attrs, sizeof a);
        int32_t v = c->out[0];
        if (a.activation != PLX_ACTIVATION_NONE || g->values[v].kind != VALUE_TEMP || is_kept(keep, n_keep, v))
            continue;
        /* Readers of v: one relu (after the conv), and relu_grads reading it
         * as their x; nothing else. */
        int32_t relu = -1;
        bool ok = true;
        for (int32_t ni = ci + 1; ni < g->n_nodes && ok; ni++) {
            const graph_node *n = &g->nodes[ni];
            for (int32_t i = 0; i < n->n_in && ok; i++) {
                if (n->in[i] != v)
                    continue;
                if (n->op_id == PLX_OP_RELU && relu < 0 && n->n_in == 1)
                    relu = ni;
                else if (!(n->op_id == PLX_OP_RELU_GRAD && i == 1 && n->in[0] != v))
                    ok = false;
            }
        }
        if (!ok || relu < 0)
            continue;
        a.activation = PLX_ACTIVATION_RELU;
        if (!fused_conv_routable(g, ci, &a))
            continue;
        graph_node *r = &g->nodes[relu];
        int32_t y = r->out[0];
        memcpy(c->attrs, &a, sizeof a);
        c->out[0] = y;
        g->values[y].producer = ci;
        g->values[v].producer = -1;
        for (int32_t ni = ci + 1; ni < g->n_nodes; ni++) {
            graph_node *n = &g->nodes[ni];
            if (n->op_id == PLX_OP_RELU_GRAD && n->n_in == 2 && n->in[1] == v)
                n->in[1] = y;
        }
        /* The relu node stays in the array (ids are positions) but reads
         * and writes nothing, so no plan ever runs it. */
        r->n_in = 0;
        r->n_out = 0;
        fused++;
    }
    return fused;
}

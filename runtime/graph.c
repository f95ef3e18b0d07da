/* graph.c — building the define-then-run graph; see graph.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

plx_status graph_new(plx_context *ctx, plx_graph **out)
{
    plx_graph *g = calloc(1, sizeof *g);
    if (g == NULL)
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "graph: out of memory");
    g->ctx = ctx;
    g->scope = "";
    *out = g;
    return PLX_OK;
}

void graph_free(plx_graph *g)
{
    if (g == NULL)
        return;
    for (int32_t i = 0; i < g->n_values; i++)
        free(g->values[i].name);
    for (int32_t i = 0; i < g->n_nodes; i++) {
        free(g->nodes[i].attrs);
        free(g->nodes[i].in);
        free(g->nodes[i].scope);
    }
    free(g->values);
    free(g->nodes);
    free(g);
}

static plx_status new_value(plx_graph *g, int32_t *id)
{
    if (g->n_values == g->cap_values) {
        int32_t cap = g->cap_values ? g->cap_values * 2 : 64;
        graph_value *grown = realloc(g->values, sizeof *grown * (size_t)cap);
        if (grown == NULL)
            return ctx_fail(g->ctx, PLX_OUT_OF_MEMORY, "graph: out of memory");
        g->values = grown;
        g->cap_values = cap;
    }
    *id = g->n_values++;
    memset(&g->values[*id], 0, sizeof g->values[*id]);
    g->values[*id].producer = -1;
    return PLX_OK;
}

int32_t graph_find(const plx_graph *g, const char *name)
{
    for (int32_t i = 0; i < g->n_values; i++)
        if (g->values[i].name != NULL && strcmp(g->values[i].name, name) == 0)
            return i;
    return -1;
}

plx_status graph_add_named(plx_graph *g, value_kind kind, const char *name, plx_dtype dtype, int32_t ndim,
                           const int64_t *dims, const plx_initializer *init, int32_t *out)
{
    if (name == NULL || name[0] == '\0' || strlen(name) > 255)
        return ctx_fail(g->ctx, PLX_INVALID_ARGUMENT, "%s: a graph value needs a name of 1 to 255 characters",
                        g->scope);
    if (graph_find(g, name) >= 0)
        return ctx_fail(g->ctx, PLX_INVALID_ARGUMENT, "%s: the name '%s' is already used in this graph", g->scope,
                        name);
    if (ndim < 0 || ndim > PLX_MAX_DIMS || (ndim > 0 && dims == NULL))
        return ctx_fail(g->ctx, PLX_INVALID_ARGUMENT, "%s: '%s' has an invalid rank %d", g->scope, name, (int)ndim);
    for (int32_t d = 0; d < ndim; d++)
        if (dims[d] < 0)
            return ctx_fail(g->ctx, PLX_INVALID_ARGUMENT, "%s: '%s' has a negative dim", g->scope, name);
    if (!dtype_is_known(dtype))
        return ctx_fail(g->ctx, PLX_DTYPE_MISMATCH, "%s: '%s' has an unknown dtype", g->scope, name);
    int32_t id;
    plx_status st = new_value(g, &id);
    if (st != PLX_OK)
        return st;
    graph_value *v = &g->values[id];
    meta_set(&v->meta, dtype, ndim, dims);
    v->kind = kind;
    v->name = strdup(name);
    v->trainable = kind == VALUE_PARAM;
    v->init.struct_size = (uint32_t)sizeof v->init;
    if (init != NULL) {
        /* A plugin's initializer may be shorter (older minor): zero-extend. */
        size_t n = init->struct_size < sizeof v->init ? init->struct_size : sizeof v->init;
        memcpy(&v->init, init, n);
        v->init.struct_size = (uint32_t)sizeof v->init;
    }
    if (v->name == NULL) {
        g->n_values--;
        return ctx_fail(g->ctx, PLX_OUT_OF_MEMORY, "graph: out of memory");
    }
    *out = id;
    return PLX_OK;
}

void graph_describe_node(const plx_graph *g, int32_t node, char *buf, size_t cap)
{
    const graph_node *n = &g->nodes[node];
    tensor_meta metas[16];
    int32_t k = n->n_in < 16 ? n->n_in : 16;
    for (int32_t i = 0; i < k; i++)
        metas[i] = g->values[n->in[i]].meta;
    char shapes[512];
    metas_format(metas, k, shapes, sizeof shapes);
    bool fused_relu = n->op_id == PLX_OP_CONV2D && n->attrs != NULL && n->attrs_size >= sizeof(plx_conv2d_attrs) &&
                      ((const plx_conv2d_attrs *)n->attrs)->activation == PLX_ACTIVATION_RELU;
    snprintf(buf, cap, "%s%s%s(%s)%s", n->scope && n->scope[0] ? n->scope : "", n->scope && n->scope[0] ? ": " : "",
             op_name_of(g->ctx, n->op_id), shapes, fused_relu ? " +relu" : "");
}

plx_status graph_add_op(plx_graph *g, int32_t op_id, const void *attrs, const int32_t *in, int32_t n_in,
                        int32_t *out, int32_t n_out)
{
    const char *name = op_name_of(g->ctx, op_id);
    const op_def *def = op_catalog_get(op_id);
    const char *scope = g->scope && g->scope[0] ? g->scope : "graph";
    if (name == NULL || def == NULL)
        return ctx_fail(g->ctx, PLX_UNSUPPORTED, "%s: op id %d has no catalog entry and cannot join a graph", scope,
                        (int)op_id);
    char msg[PLX_ERROR_CAP];
    unsigned char attrs_buf[PLX_OP_ATTRS_CAP];
    size_t attrs_size = 0;
    plx_status st = op_check_arity(def, name, n_in, n_out, msg, sizeof msg);
    if (st == PLX_OK)
        st = op_normalize_attrs(def, name, attrs, attrs_buf, &attrs_size, msg, sizeof msg);
    if (st != PLX_OK)
        return ctx_fail(g->ctx, st, "%s: %s", scope, msg);
    tensor_meta *metas = malloc(sizeof *metas * (size_t)(n_in + n_out + 1));
    if (metas == NULL)
        return ctx_fail(g->ctx, PLX_OUT_OF_MEMORY, "graph: out of memory");
    for (int32_t i = 0; i < n_in; i++) {
        if (in[i] < 0 || in[i] >= g->n_values) {
            free(metas);
            return ctx_fail(g->ctx, PLX_INVALID_ARGUMENT, "%s: %s input %d is not a value of this graph", scope, name,
                            (int)i);
        }
        metas[i] = g->values[in[i]].meta;
    }
    st = op_infer_outputs(def, name, attrs_size ? attrs_buf : NULL, metas, n_in, metas + n_in, n_out, msg,
                          sizeof msg);
    if (st != PLX_OK) {
        free(metas);
        return ctx_fail(g->ctx, st, "%s: %s", scope, msg);
    }
    if (g->n_nodes == g->cap_nodes) {
        int32_t cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
        graph_node *grown = realloc(g->nodes, sizeof *grown * (size_t)cap);
        if (grown == NULL) {
            free(metas);
            return ctx_fail(g->ctx, PLX_OUT_OF_MEMORY, "graph: out of memory");
        }
        g->nodes = grown;
        g->cap_nodes = cap;
    }
    graph_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op_id = op_id;
    n->n_in = n_in;
    n->n_out = n_out;
    n->in = malloc(sizeof(int32_t) * (size_t)(n_in + n_out + 1));
    n->scope = strdup(scope);
    if (attrs_size) {
        n->attrs = malloc(attrs_size);
        if (n->attrs != NULL)
            memcpy(n->attrs, attrs_buf, attrs_size);
        n->attrs_size = attrs_size;
    }
    if (n->in == NULL || n->scope == NULL || (attrs_size && n->attrs == NULL)) {
        free(n->in);
        free(n->scope);
        free(n->attrs);
        free(metas);
        return ctx_fail(g->ctx, PLX_OUT_OF_MEMORY, "graph: out of memory");
    }
    n->out = n->in + n_in;
    if (n_in > 0) /* sources (core.fill) pass in == NULL; memcpy from NULL is undefined even for 0 bytes */
        memcpy(n->in, in, sizeof(int32_t) * (size_t)n_in);
    int32_t node_id = g->n_nodes++;
    for (int32_t i = 0; i < n_out; i++) {
        int32_t v;
        st = new_value(g, &v);
        if (st != PLX_OK) {
            free(metas);
            return st;
        }
        g->values[v].meta = metas[n_in + i];
        g->values[v].kind = VALUE_TEMP;
        g->values[v].producer = node_id;
        g->nodes[node_id].out[i] = v;
        out[i] = v;
    }
    free(metas);
    return PLX_OK;
}

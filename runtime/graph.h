/*
 * graph.h — internal: the define-then-run graph of core ops.
 *
 * A graph holds values (tensors known by dtype and shape) and nodes (one
 * core op each, reading and writing values). It is built once — by layers
 * through the host API, by autodiff, by the optimizer — then placed,
 * memory-planned and run many times (executor.h). Every node is shape-checked
 * by the op catalog's infer as it is added, so errors name the node's scope
 * (the layer), the op and the shapes at build time, never at run time.
 */
#ifndef PLX_GRAPH_H
#define PLX_GRAPH_H

#include "internal.h"

typedef enum value_kind {
    VALUE_INPUT = 0, /* fed per step (images, labels) */
    VALUE_PARAM = 1, /* trainable weights, persistent */
    VALUE_STATE = 2, /* persistent non-trainable: optimizer slots, BN running stats */
    VALUE_TEMP = 3   /* produced by a node, lives in the step's memory plan */
} value_kind;

typedef struct graph_value {
    tensor_meta meta;
    value_kind kind;
    int32_t producer;  /* node index for VALUE_TEMP, else -1 */
    char *name;        /* inputs, params, state: unique name ("conv1.weight"); temps: NULL */
    bool trainable;    /* params: not frozen */
    plx_initializer init; /* params and state: how plan users fill them first */
} graph_value;

typedef struct graph_node {
    int32_t op_id;
    unsigned char *attrs; /* normalized full struct, or NULL */
    size_t attrs_size;
    int32_t n_in, n_out;
    int32_t *in, *out;    /* value ids */
    char *scope;          /* layer or pass that added it ("conv1", "backward", "optimizer") */
} graph_node;

typedef struct plx_graph {
    plx_context *ctx;
    graph_value *values;
    int32_t n_values, cap_values;
    graph_node *nodes;
    int32_t n_nodes, cap_nodes;
    const char *scope; /* current scope for added nodes (borrowed) */
} plx_graph;

plx_status graph_new(plx_context *ctx, plx_graph **out);
void graph_free(plx_graph *g);

/* Adds an input/param/state value. Names must be unique among named values.
 * Returns the value id in *out. */
plx_status graph_add_named(plx_graph *g, value_kind kind, const char *name, plx_dtype dtype, int32_t ndim,
                           const int64_t *dims, const plx_initializer *init, int32_t *out);
/* Value id by name, or -1. */
int32_t graph_find(const plx_graph *g, const char *name);

/* Adds a node running op_id on `in`; infers and creates its output values
 * (ids into out[n_out]). attrs as plx_op_run takes them (NULL: defaults).
 * Fails with a message naming the scope, op and shapes. */
plx_status graph_add_op(plx_graph *g, int32_t op_id, const void *attrs, const int32_t *in, int32_t n_in,
                        int32_t *out, int32_t n_out);

/* "scope: core.conv2d(f32[..], ...)" for messages. */
void graph_describe_node(const plx_graph *g, int32_t node, char *buf, size_t cap);

#endif

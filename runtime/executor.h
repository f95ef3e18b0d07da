/*
 * executor.h — internal: turning a graph into a plan and running it.
 *
 * plan_build keeps the nodes needed for the requested values plus every node
 * that updates persistent state (optimizer steps, batch-norm running stats),
 * routes each through the router once, and lays out every temporary value in
 * one arena, reusing memory by liveness (best fit, 64-byte aligned), so the
 * step's memory is known before the first run. Persistent values (inputs,
 * params, state) are tensors the caller binds. plan_run then only calls
 * kernels: no allocation, no routing, no shape checks per step.
 *
 * Layouts: a temporary whose producer and every reader run on one backend
 * that has a layout of its own for it (plx_backend_api.layout_bytes) and
 * accepts those calls so, stays in that layout between them (oneDNN's
 * blocked layouts along a conv -> pool -> conv chain): no reorders inside
 * the chain, only at its edges. Values the caller keeps are always plain.
 *
 * Devices: today every backend computes on host memory, so values need no
 * copies; a node routed to a device with its own memory is refused at
 * plan time with a message (copy nodes come with the first such backend).
 */
#ifndef PLX_EXECUTOR_H
#define PLX_EXECUTOR_H

#include "graph.h"

typedef struct exec_step {
    int32_t node;
    int32_t backend;
    int32_t device;
    plx_op_call call;
    plx_tensor_desc *descs; /* n_in then n_out */
    uint8_t *layouts;       /* PLX_LAYOUT_* per tensor (n_in then n_out), NULL: all plain */
    int32_t routed_backend; /* the router's own pick when the step was moved to extend a chain, else -1 */
} exec_step;

typedef struct exec_plan {
    plx_graph *graph;      /* borrowed; must not change while the plan lives */
    exec_step *steps;
    int32_t n_steps;
    int64_t *offset;       /* per value: arena offset of temps, -1 for others/unused */
    uint64_t *backend_layout_bytes; /* per value: > 0 when kept in its backend's own layout */
    plx_tensor **bound;    /* per value: the caller's tensor for persistent values */
    unsigned char *arena;
    size_t arena_bytes;
    /* Profiling (plan_profile): nanoseconds spent in each step, summed over
     * runs; NULL when off. */
    double *step_ns;
    int64_t profiled_runs;
} exec_plan;

/* Turns per-step timing on (or off), resetting the sums. */
plx_status plan_profile(exec_plan *p, bool on);
/* Writes the time per op (summed over its nodes, per run) and its share,
 * largest first. */
void plan_profile_report(const exec_plan *p, void (*emit)(void *user, const char *line), void *user);

/* The node's call with data-free descriptors of its values' shapes in descs
 * and their metas in metas (n_in + n_out entries each, the caller's; the
 * shapes point into the graph), running with `attrs`. */
plx_op_call node_call(plx_graph *g, const graph_node *n, const void *attrs, plx_tensor_desc *descs,
                      tensor_meta *metas);

/* fuse.c: rewrites node patterns into fused ops (conv2d + relu) where some
 * backend takes the fused call, leaving values in `keep` alone. Returns the
 * number of fusions. Off when the context's fuse flag is (PLEXUS_FUSE=0). */
int32_t graph_fuse(plx_graph *g, const int32_t *keep, int32_t n_keep);

/* Builds a plan computing values keep[0..n_keep) (they stay readable after
 * plan_run) and every state update. Fails naming the node that no backend
 * can run. */
plx_status plan_build(plx_graph *g, const int32_t *keep, int32_t n_keep, exec_plan **out);
void plan_free(exec_plan *p);

/* Binds a persistent value (input, param, state) to a tensor of exactly its
 * dtype and shape (compact host memory). The tensor is borrowed until the
 * plan is freed or the value rebound. */
plx_status plan_bind(exec_plan *p, int32_t value, plx_tensor *t);

/* Runs every step in order. All persistent values used must be bound. */
plx_status plan_run(exec_plan *p);

/* As plan_run, but after each step checks its float outputs (and inputs it
 * updates) for NaN or Inf; stops at the first such step, naming its node
 * in the error (PLX_INVALID_ARGUMENT) and in *bad_node. */
plx_status plan_run_checked(exec_plan *p, int32_t *bad_node);

/* Data of any value after a run (temps from the arena, persistent from
 * their tensor); NULL if the value is not materialized by this plan. */
void *plan_value_data(const exec_plan *p, int32_t value);

/* Bytes of the temporaries' arena (the step's peak working memory). */
size_t plan_arena_bytes(const exec_plan *p);

/* Writes one line per step: node, backend, device, and the router's reasons
 * (explain != 0 adds every candidate). */
void plan_describe(const exec_plan *p, int explain, void (*emit)(void *user, const char *line), void *user);

#endif

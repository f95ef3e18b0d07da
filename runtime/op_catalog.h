/*
 * op_catalog.h — internal: what the runtime knows about each core op, in one
 * place per op: arity, which inputs it updates, its attribute struct and
 * defaults, and its shape/dtype inference with validation. The backends only
 * ever see calls that passed `infer`.
 *
 * Each op family (runtime/ops/<family>.c) defines a table
 *     const op_def op_defs_<family>[]; const size_t op_defs_<family>_count;
 * which op_catalog.c gathers by id. Gradient rules (autodiff) join each op
 * here in a later change.
 */
#ifndef PLX_OP_CATALOG_H
#define PLX_OP_CATALOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "../abi/plexus_ops.h"

/* dtype and shape of a tensor, without data. */
typedef struct tensor_meta {
    plx_dtype dtype;
    int32_t ndim;
    int64_t dims[PLX_MAX_DIMS];
} tensor_meta;

typedef struct op_infer_args {
    const struct op_def *def;
    const void *attrs;            /* full current struct (defaults filled), NULL if the op has none */
    int32_t n_inputs;
    const tensor_meta *inputs;    /* validated: ndim in range, dims >= 0, known dtype */
    int32_t n_outputs;
    tensor_meta *outputs;         /* infer fills these */
    char *msg;                    /* detail on failure, written with infer_fail() */
    size_t msg_cap;
} op_infer_args;

typedef plx_status (*op_infer_fn)(op_infer_args *args);

/* Gradient rule (autodiff.h has the helpers rules build with). dy[o] is the
 * gradient value of output o, or -1 when nothing downstream needs it (treat
 * as zeros). need[i] says whether input i wants a gradient; the rule writes
 * dx[i] (a value id) for those, or leaves -1 when the input has none (an
 * index, a target). */
struct grad_ctx;
struct graph_node;
typedef plx_status (*op_grad_fn)(struct grad_ctx *gc, const struct graph_node *node, const int32_t *dy,
                                 const bool *need, int32_t *dx);
/* Work in "flop-equivalents" for the default cost estimate. */
typedef double (*op_work_fn)(const op_infer_args *args);

#define OP_MUTATES_ALL_INPUTS 0xffffffffu

typedef struct op_def {
    int32_t id;                 /* PLX_OP_* */
    int32_t min_inputs;
    int32_t max_inputs;         /* -1: unbounded (concat, clip_grad_norm) */
    int32_t n_outputs;
    uint32_t mutated_inputs;    /* bit i: input i is updated in place */
    size_t attrs_size;          /* sizeof the attrs struct, 0 if none */
    const void *attrs_default;  /* the PLX_*_ATTRS_DEFAULT value, or NULL (all zero but struct_size) */
    op_infer_fn infer;
    op_work_fn work;            /* NULL: number of output elements */
    op_grad_fn grad;            /* NULL: the op has no gradient (indices, sources, updates) */
} op_def;

/* The def of a core op id, or NULL. */
const op_def *op_catalog_get(int32_t op_id);

/* ---- Helpers for infer functions (op_infer.c) ---------------------------- */

/* Writes the detail message and returns `status`. */
plx_status infer_fail(op_infer_args *args, plx_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "f32[2,3,4]" into buf; returns buf. */
const char *meta_format(const tensor_meta *m, char *buf, size_t cap);
int64_t meta_numel(const tensor_meta *m);
bool meta_same_shape(const tensor_meta *a, const tensor_meta *b);
void meta_set(tensor_meta *m, plx_dtype dtype, int32_t ndim, const int64_t *dims);

bool dtype_is_float(plx_dtype t);   /* f32, f16, bf16, f64 */
bool dtype_is_integer(plx_dtype t); /* signed/unsigned ints */
bool dtype_is_known(plx_dtype t);
const char *dtype_name(plx_dtype t); /* "f32", "i64", ..., "?" */

/* Requires input i to be a float dtype (f32/f16/bf16/f64). */
plx_status infer_require_float(op_infer_args *args, int32_t i, const char *role);
/* Requires input i to have the given dtype. */
plx_status infer_require_dtype(op_infer_args *args, int32_t i, plx_dtype dtype, const char *role);
/* Requires inputs i and j to have the same dtype. */
plx_status infer_require_same_dtype(op_infer_args *args, int32_t i, int32_t j);
/* Requires inputs i and j to have the same shape. */
plx_status infer_require_same_shape(op_infer_args *args, int32_t i, int32_t j);
/* Requires input i to have rank `ndim`. */
plx_status infer_require_ndim(op_infer_args *args, int32_t i, int32_t ndim, const char *role);
/* Broadcasts the shapes of `n` inputs (indices idx[]) NumPy-style into *out's
 * ndim/dims (dtype untouched). Fails naming the shapes. */
plx_status infer_broadcast(op_infer_args *args, const int32_t *idx, int32_t n, tensor_meta *out);
/* Normalizes an axis in [-ndim, ndim) to [0, ndim); fails otherwise. */
plx_status infer_axis(op_infer_args *args, int32_t axis, int32_t ndim, int32_t *out);

/* ---- Checking a call against the catalog (shared by eager dispatch and
 * graph building). Each writes a complete message ("core.relu: takes 1
 * input, got 2") into msg on failure. ------------------------------------ */

plx_status op_check_arity(const op_def *def, const char *name, int32_t n_in, int32_t n_out, char *msg,
                          size_t cap);
/* Defaults, then as much of the caller's struct as both know; struct_size
 * set to the full size. buf holds at least PLX_OP_ATTRS_CAP bytes; *size is
 * the normalized size (0 when the op has no attrs). */
#define PLX_OP_ATTRS_CAP 512
plx_status op_normalize_attrs(const op_def *def, const char *name, const void *attrs, unsigned char *buf,
                              size_t *size, char *msg, size_t cap);
/* Runs the op's inference; on failure the message is "name(in shapes): detail".
 * Also rejects outputs too large to address. */
plx_status op_infer_outputs(const op_def *def, const char *name, const void *attrs, const tensor_meta *in,
                            int32_t n_in, tensor_meta *out, int32_t n_out, char *msg, size_t cap);
/* "f32[2,3], i64[2]" */
void metas_format(const tensor_meta *m, int32_t n, char *buf, size_t cap);

#endif

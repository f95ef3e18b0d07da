/*
 * onednn.h — internal to the onednn plugin: the plugin state, the execution
 * plans built once per (op, shapes, attrs) and cached, and the table each op
 * family file (conv.c, matmul.c, pool.c) contributes.
 *
 * Every op takes and returns plain row-major NCHW / [..., M, K] tensors at
 * the boundary. Inside a plan a primitive may use oneDNN's blocked layouts;
 * the plan then carries the reorders from and to the plain tensors, so no
 * blocked layout ever leaves a run() call.
 */
#ifndef PLX_ONEDNN_H
#define PLX_ONEDNN_H

#include <pthread.h>
#include <stdbool.h>

#include <dnnl.h>

#include "../../abi/plexus_plugin.h"

/* ---- execution plans ------------------------------------------------------ */

enum {
    ONE_ARG_INPUT = 0,  /* call->inputs[index] */
    ONE_ARG_OUTPUT = 1, /* call->outputs[index] */
    ONE_ARG_TEMP = 2    /* plan temporary `index`, shared by the plan's steps */
};

#define ONE_MAX_ARGS 5
#define ONE_MAX_STEPS 2
#define ONE_MAX_TEMPS 2

/* One argument of a primitive: where its data comes from, the layout the
 * caller's tensor has (user_md) and the one the primitive wants (prim_md).
 * When they differ, `reorder` converts user -> prim before the step (inputs)
 * or prim -> user after it (outputs). */
typedef struct one_arg {
    int dnnl_arg; /* DNNL_ARG_SRC, ... */
    int kind;     /* ONE_ARG_* */
    int index;
    dnnl_memory_desc_t user_md;
    dnnl_memory_desc_t prim_md;
    dnnl_primitive_t reorder; /* NULL: the primitive reads/writes the tensor in place */
} one_arg;

typedef struct one_step {
    dnnl_primitive_t prim;
    int n_args;
    one_arg args[ONE_MAX_ARGS];
} one_step;

/* Everything run() needs for one cached (op, shapes, attrs). Primitives are
 * immutable once made; per-call buffers (reorder targets, temporaries) are
 * allocated by each run. */
typedef struct one_plan {
    int threads; /* OpenMP team size it was built for and runs with */
    int n_steps;
    one_step steps[ONE_MAX_STEPS];
    int n_temps;
    dnnl_memory_desc_t temp_md[ONE_MAX_TEMPS];
} one_plan;

/* ---- plugin state ---------------------------------------------------------- */

typedef struct one_cache_entry one_cache_entry;

typedef struct one_state {
    const plx_host_api *host;
    int32_t threads;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    /* Guards the cache and serializes execution on the one stream: oneDNN's
     * OpenMP teams would otherwise oversubscribe the thread budget when two
     * runtime threads call in at once. */
    pthread_mutex_t lock;
    one_cache_entry **buckets;
    size_t n_entries;
    const char *names[16];
    size_t n_names;
} one_state;

/* ---- op families ------------------------------------------------------------ */

/* Cheap checks on attrs and shapes beyond "every tensor is f32, non-empty";
 * returns true if supported, else writes a reason. NULL: none. */
typedef bool (*one_check_fn)(const plx_op_call *call, char *reason, size_t cap);
/* Builds the plan (primitive descriptors, primitives, reorders). On failure
 * returns the oneDNN status and writes what failed to reason; the plan is
 * then released by the caller with one_plan_free. */
typedef dnnl_status_t (*one_build_fn)(one_state *s, const plx_op_call *call, one_plan *plan, char *reason,
                                      size_t cap);
/* Estimated run time in ns. */
typedef double (*one_estimate_fn)(const plx_op_call *call);

typedef struct one_kernel {
    int32_t op_id;
    size_t attrs_size; /* bytes of the attribute struct that key the cache */
    one_check_fn check;
    one_build_fn build;
    one_estimate_fn estimate;
} one_kernel;

#define ONE_DECLARE_FAMILY(family)                                          \
    extern const one_kernel one_kernels_##family[];                         \
    extern const size_t one_kernels_##family##_count
ONE_DECLARE_FAMILY(conv);
ONE_DECLARE_FAMILY(matmul);
ONE_DECLARE_FAMILY(pool);

#define ONE_FAMILY_TABLE(family, ...)                                       \
    const one_kernel one_kernels_##family[] = {__VA_ARGS__};                \
    const size_t one_kernels_##family##_count =                             \
        sizeof(one_kernels_##family) / sizeof(one_kernels_##family[0])

/* ---- plan helpers (plan.c) -------------------------------------------------- */

/* Adds a step running the primitive of pd (pd stays the caller's). */
dnnl_status_t one_plan_add_step(one_plan *plan, const_dnnl_primitive_desc_t pd, one_step **out);

/* Binds argument dnnl_arg of step (made from pd) to a call tensor (kind
 * ONE_ARG_INPUT / ONE_ARG_OUTPUT, user_md its plain layout) or to a plan
 * temporary (ONE_ARG_TEMP, user_md NULL: it takes the primitive's layout;
 * later binds of the same temporary must agree). */
dnnl_status_t one_step_bind(const one_state *s, one_plan *plan, one_step *step, const_dnnl_primitive_desc_t pd,
                            int dnnl_arg, int kind, int index, const dnnl_memory_desc_t *user_md);

/* Runs the plan on the call's tensors. The caller holds s->lock. */
plx_status one_plan_execute(one_state *s, const one_plan *plan, const plx_op_call *call);

/* Destroys the plan's primitives (safe on a partly built plan). */
void one_plan_free(one_plan *plan);

/* Plain row-major f32 descriptor of dims. */
dnnl_status_t one_md_plain(dnnl_memory_desc_t *md, int ndims, const int64_t *dims);
/* f32 descriptor whose layout the primitive chooses. */
dnnl_status_t one_md_any(dnnl_memory_desc_t *md, int ndims, const int64_t *dims);

/* Name of a oneDNN status, for messages ("out_of_memory"). */
const char *one_status_name(dnnl_status_t st);

/* Writes "<what> failed: <status>" to reason and returns st. */
dnnl_status_t one_fail(dnnl_status_t st, char *reason, size_t cap, const char *what);

/* Bytes of all inputs and outputs of a call (f32). */
double one_call_bytes(const plx_op_call *call);

#endif

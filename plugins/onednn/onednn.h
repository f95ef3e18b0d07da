/*
 * onednn.h — internal to the onednn plugin: the plugin state, the execution
 * plans built once per (op, dtypes, shapes, attrs) and cached, and the table
 * each op family file (conv.c, matmul.c, pool.c, eltwise.c, binary.c,
 * norm.c, softmax.c, reduce.c) contributes.
 *
 * Every op takes and returns plain row-major tensors at the boundary (NCHW
 * for images). Inside a plan a primitive may use oneDNN's blocked layouts;
 * the plan then carries the reorders from and to the plain tensors, so no
 * blocked layout ever leaves a run() call.
 *
 * oneDNN API differences between 2.x and 3.x are confined to compat.h.
 */
#ifndef PLX_ONEDNN_H
#define PLX_ONEDNN_H

#include <pthread.h>
#include <stdbool.h>

#include "../../abi/plexus_plugin.h"
#include "compat.h"

/* ---- execution plans ------------------------------------------------------ */

enum {
    ONE_ARG_INPUT = 0,  /* call->inputs[index] */
    ONE_ARG_OUTPUT = 1, /* call->outputs[index] */
    ONE_ARG_TEMP = 2    /* plan temporary `index`, shared by the plan's steps */
};

#define ONE_MAX_ARGS 10
#define ONE_MAX_STEPS 3
#define ONE_MAX_TEMPS 2

/* One argument of a primitive: where its data comes from, the layout the
 * caller's tensor has (user_md) and the one the primitive wants (prim_md).
 * When they differ, `reorder` converts user -> prim before the step (inputs)
 * or prim -> user after it (outputs). Both descriptors are owned. */
typedef struct one_arg {
    int dnnl_arg; /* DNNL_ARG_SRC, ... */
    int kind;     /* ONE_ARG_* */
    int index;
    one_md user_md;
    one_md prim_md;
    dnnl_primitive_t reorder; /* NULL: the primitive reads/writes the tensor in place */
} one_arg;

struct one_state;

/* A step done in C between primitives (running statistics, 1/sqrt(var +
 * eps)): it reads and writes the call's tensors and the plan temporaries
 * (temps[i] is temporary i's memory, in the layout the plan declared). */
typedef plx_status (*one_host_fn)(struct one_state *s, const plx_op_call *call, void *const *temps);

/* A primitive with its arguments, or (prim NULL) a host step. */
typedef struct one_step {
    dnnl_primitive_t prim;
    one_host_fn host;
    int n_args;
    one_arg args[ONE_MAX_ARGS];
} one_step;

/* Everything run() needs for one cached (op, dtypes, shapes, attrs).
 * Primitives are immutable once made; per-call buffers (reorder targets,
 * temporaries) are allocated by each run. */
typedef struct one_plan {
    int threads; /* OpenMP team size it was built for and runs with */
    int n_steps;
    one_step steps[ONE_MAX_STEPS];
    int n_temps;
    one_md temp_md[ONE_MAX_TEMPS];
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
    const char *names[PLX_OP_CORE_COUNT_];
    size_t n_names;
    /* bf16 runs natively here (AVX512-BF16 or AMX); otherwise bf16 calls
     * are declined, naming the ISA oneDNN found (isa_name). */
    bool bf16;
    bool amx; /* AMX tiles: bf16 convolutions and matmuls run ~3x faster than f32 */
    char isa_name[48];
    /* Fault injection (PLEXUS_ONEDNN_FAIL): ops whose primitive creation
     * is made to fail, to exercise the fallback path. */
    bool fail_op[PLX_OP_CORE_COUNT_];
} one_state;

/* ---- op families ------------------------------------------------------------ */

/* Element types a kernel takes. Every float tensor of a call has the same
 * dtype: f32, or bf16 where the kernel says so (and the CPU has it). */
#define ONE_DT_F32 1u
#define ONE_DT_BF16 2u

/* Cheap checks on attrs and shapes beyond dtypes and "no tensor is empty";
 * returns true if supported, else writes the reason. NULL: none. */
typedef bool (*one_check_fn)(const plx_op_call *call, char *reason, size_t cap);
/* Builds the plan (primitive descriptors, primitives, reorders). On failure
 * returns the oneDNN status and writes what failed to reason; the plan is
 * then released by the caller with one_plan_free. */
typedef dnnl_status_t (*one_build_fn)(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap);
/* Estimated run time in ns on one thread (onednn.c scales it to the
 * plan's thread count). s gives the CPU's features (bf16, AMX). */
typedef double (*one_estimate_fn)(const struct one_state *s, const plx_op_call *call);

typedef struct one_kernel {
    int32_t op_id;
    size_t attrs_size; /* bytes of the attribute struct that key the cache */
    unsigned dtypes;   /* ONE_DT_* */
    one_check_fn check;
    one_build_fn build;
    one_estimate_fn estimate;
} one_kernel;

#define ONE_DECLARE_FAMILY(family)                                                                                     \
    extern const one_kernel one_kernels_##family[];                                                                    \
    extern const size_t one_kernels_##family##_count
ONE_DECLARE_FAMILY(conv);
ONE_DECLARE_FAMILY(matmul);
ONE_DECLARE_FAMILY(pool);
ONE_DECLARE_FAMILY(eltwise);
ONE_DECLARE_FAMILY(binary);
ONE_DECLARE_FAMILY(norm);
ONE_DECLARE_FAMILY(softmax);
ONE_DECLARE_FAMILY(reduce);

#define ONE_FAMILY_TABLE(family, ...)                                                                                  \
    const one_kernel one_kernels_##family[] = {__VA_ARGS__};                                                           \
    const size_t one_kernels_##family##_count = sizeof(one_kernels_##family) / sizeof(one_kernels_##family[0])

/* ---- plan helpers (plan.c) -------------------------------------------------- */

/* One argument of a step: execution argument dnnl_arg of its primitive
 * bound to a call tensor (kind ONE_ARG_INPUT / ONE_ARG_OUTPUT, index into
 * call->inputs / outputs, user_md its plain layout) or to plan temporary
 * `index` (ONE_ARG_TEMP, user_md NULL: the temporary takes the primitive's
 * layout, or the one already declared, which must then agree). user_md is
 * read when the step is added, so a table of bindings may be written
 * before its descriptors are made. dnnl_arg ONE_NO_ARG skips the entry
 * (for an argument only some calls have). */
typedef struct one_binding {
    int dnnl_arg;
    int kind;
    int index;
    const one_md *user_md;
} one_binding;

/* Not a oneDNN execution argument in any version (3.x names it
 * DNNL_ARG_UNDEF). */
#define ONE_NO_ARG 0

#define ONE_COUNT_OF(array) ((int)(sizeof(array) / sizeof((array)[0])))

/* Adds a step running the primitive of pd (pd stays the caller's) with
 * args[0 .. n_args) bound in order; where a primitive input's layout
 * differs from the call tensor's, the step carries the reorder. On failure
 * writes "oneDNN <what> primitive failed: ..." or "oneDNN binding <what>
 * arguments failed: ..." to reason. */
dnnl_status_t one_plan_add_bound_step(const one_state *s, one_plan *plan, const_dnnl_primitive_desc_t pd,
                                      const one_binding *args, int n_args, const char *what, char *reason, size_t cap);

/* Adds a host step. */
dnnl_status_t one_plan_add_host(one_plan *plan, one_host_fn fn);

/* Declares plan temporary `index` with layout md (for temporaries a host
 * step fills: give them a plain layout). */
dnnl_status_t one_plan_temp(one_plan *plan, int index, one_md_ref md);

/* Destroys a primitive descriptor; NULL is a no-op. */
void one_pd_destroy(dnnl_primitive_desc_t pd);

/* Whether the primitive of pd takes execution argument dnnl_arg. */
bool one_pd_takes(const_dnnl_primitive_desc_t pd, int dnnl_arg);

/* Runs the plan on the call's tensors. The caller holds s->lock. */
plx_status one_plan_execute(one_state *s, const one_plan *plan, const plx_op_call *call);

/* The implementation name ("ref:any") of the first primitive of the plan
 * that runs oneDNN's reference (non-JIT, unoptimized) code, or NULL. */
const char *one_plan_reference_impl(const one_plan *plan);

/* Destroys the plan's primitives and descriptors (safe on a partly built
 * or zeroed plan). */
void one_plan_free(one_plan *plan);

/* oneDNN element type of a tensor (f32 or bf16; precheck allows no other). */
dnnl_data_type_t one_dt(const plx_tensor_desc *t);
/* Plain row-major descriptor of dims (ndims 0 is taken as [1]). */
dnnl_status_t one_md_plain(one_md *md, int ndims, const int64_t *dims, dnnl_data_type_t dt);

/* The plugin's own layout (PLX_LAYOUT_BACKEND, ABI 1.2) of a 4-D NCHW
 * tensor: nChw16c with AVX-512 (nChw8c with AVX2), oneDNN's blocked layout
 * for its convolutions and pooling, for channel counts that are multiples
 * of the block (no padding); none on older CPUs. Inside
 * a chain of conv2d / pooling calls the executor keeps tensors in it, so
 * no reorder runs between them. */
bool one_layout_possible(const plx_tensor_desc *t);
/* Whether tensor `index` of the call (inputs, then outputs) is in it. */
bool one_layout_is_own(const plx_op_call *call, int32_t index);
/* Plain or the own layout, as the call says for tensor `index`. */
dnnl_status_t one_md_user(one_md *md, const plx_op_call *call, int32_t index, int ndims, const int64_t *dims,
                          dnnl_data_type_t dt);
/* plx_backend_api.layout_bytes. */
uint64_t one_layout_bytes(void *state, int32_t device, const plx_tensor_desc *t);
/* Descriptor whose layout the primitive chooses. */
dnnl_status_t one_md_any(one_md *md, int ndims, const int64_t *dims, dnnl_data_type_t dt);
/* Releases n descriptors; one_mds_clear empties them first (for cleanup
 * paths that may run before all were made). */
void one_mds_clear(one_md *mds, int n);
void one_mds_release(one_md *mds, int n);

/* Name of a oneDNN status, for messages ("out_of_memory"). */
const char *one_status_name(dnnl_status_t st);

/* Writes "oneDNN <what> failed: <status>" to reason and returns st. */
dnnl_status_t one_fail(dnnl_status_t st, char *reason, size_t cap, const char *what);

/* Bytes of all inputs and outputs of a call, at their dtypes. */
double one_call_bytes(const plx_op_call *call);

/* Cost model shared by the memory-bound families: a fixed cost per call
 * (primitive execution, wrapping tensors, stream wait) plus the bytes of
 * every input and output, times `passes`, at the sustained single-thread
 * bandwidth of oneDNN's JIT kernels. Measured on one thread of a Xeon with
 * AVX-512 and AMX (oneDNN 2.6.3): relu over 1M-8M floats moves 22-24 bytes
 * per ns, a 4096-element relu costs ~1 us beyond its bytes. */
#define ONE_CALL_NS 1000.0
#define ONE_BYTES_PER_NS 20.0
double one_estimate_memory_bound(const plx_op_call *call, double passes);

/* Speed-up of bf16 over f32 for the compute-bound families (measured with
 * AMX: a 3x3 convolution 3.5-4x, a 512^3 matmul 2.9x; without AMX oneDNN
 * uses AVX512-BF16 dot products, assumed 1.5x). */
double one_bf16_speedup(const struct one_state *s, const plx_op_call *call, double with_amx);

#endif

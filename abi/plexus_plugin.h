/*
 * plexus_plugin.h — the contract between the Plexus runtime and a plugin.
 *
 * A plugin is a shared object exporting exactly one symbol,
 *
 *     const plx_plugin_desc *plx_plugin_entry(void);
 *
 * returning a pointer to a static descriptor. Calling it must have no side
 * effects; loading the object (dlopen, RTLD_NOW | RTLD_LOCAL) must have none
 * either. Build with -fvisibility=hidden and mark only the entry PLX_EXPORT.
 *
 * Versioning: the descriptor's first three fields (struct_size, abi_major,
 * abi_minor) never change. If abi_major differs from the runtime's, nothing
 * else is read. Every struct that crosses the boundary starts with its
 * struct_size; members are only appended; the reader never reads past the
 * writer's size, and a missing or NULL slot means "not provided".
 *
 * Errors: every fallible call returns a plx_status. Put the detail in a
 * message with host->set_error (the runtime adds the plugin's name). Never
 * abort, exit or longjmp across this boundary.
 *
 * Ownership: whoever allocates frees, through its own table. Pointers passed
 * into a call are borrowed for the duration of that call only.
 *
 * Threads: the runtime may call a plugin from several threads at once, on
 * distinct devices or with distinct buffers; a plugin keeps no global mutable
 * state (put it in the `state` made by init). Kernels use host->parallel_for
 * for parallel loops, so every backend shares the context's thread budget.
 */
#ifndef PLEXUS_PLUGIN_H
#define PLEXUS_PLUGIN_H

#include "plexus_ops.h"
#include "plexus_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PLX_EXPORT __attribute__((visibility("default")))
#else
#define PLX_EXPORT
#endif

#define PLX_PLUGIN_ENTRY_SYMBOL "plx_plugin_entry"

/* Reads member `m` of a struct written by the other side, or `fallback` when
 * the writer's struct_size says the member is not there. */
#define PLX_HAS_MEMBER(p, type, m)                                          \
    ((p) != NULL && (size_t)(p)->struct_size >= offsetof(type, m) + sizeof((p)->m))

/* ---- What the runtime gives a plugin ------------------------------------- */

/* ---- Graph-building types (ABI 1.1) ------------------------------------- */

/* A value (tensor) of a graph under construction. */
typedef int32_t plx_value;
/* The runtime's graph and a layer's validated configuration (opaque). */
struct plx_graph;
struct plx_layer_config;

/* Parameter initializers. fan_in / fan_out follow PyTorch: shape[1] and
 * shape[0] times the receptive field (product of dims 2..). */
enum {
    PLX_INIT_ZEROS = 0,
    PLX_INIT_ONES = 1,
    PLX_INIT_CONSTANT = 2,       /* a */
    PLX_INIT_XAVIER_UNIFORM = 3, /* gain (default 1) */
    PLX_INIT_XAVIER_NORMAL = 4,
    PLX_INIT_HE_UNIFORM = 5,     /* Kaiming, fan_in, gain (default sqrt(2), ReLU) */
    PLX_INIT_HE_NORMAL = 6,
    PLX_INIT_UNIFORM = 7,        /* [a, b) */
    PLX_INIT_NORMAL = 8          /* mean a, std b */
};

typedef struct plx_initializer {
    uint32_t struct_size;
    int32_t kind; /* PLX_INIT_* */
    float a, b;
    float gain; /* 0: the kind's default */
} plx_initializer;

/* Body of one parallel loop chunk: handles [begin, end). */
typedef void (*plx_range_fn)(void *arg, int64_t begin, int64_t end);

typedef struct plx_host_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    /* Opaque runtime handle; pass it back as the first argument. */
    void *host;

    /* Writes a line to the context's log. `plugin` names the caller. */
    void (*log)(void *host, int level, const char *plugin, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 4, 5)))
#endif
        ;

    /* Sets the calling thread's error message for the call in progress and
     * returns `code`, so a kernel can `return host->set_error(host->host,
     * PLX_INVALID_ARGUMENT, "...")`. The runtime prefixes the plugin and op. */
    plx_status (*set_error)(void *host, plx_status code, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* Runs fn over [0, n) split into chunks of at least `grain` items on the
     * context's thread pool (the caller's thread takes part) and returns
     * when all chunks are done. Chunks are disjoint; their order is not
     * specified. Calls from inside fn run serially. Thread-safe. */
    void (*parallel_for)(void *host, int64_t n, int64_t grain, plx_range_fn fn, void *arg);

    /* The context's thread budget (>= 1). A backend with its own threads
     * (OpenBLAS, oneDNN, a GPU driver) uses no more than this. */
    int32_t (*num_threads)(void *host);

    /* Interns an op name, returning its id (core ops: their PLX_OP_* value;
     * others: >= PLX_OP_CUSTOM_BASE), or -1 if the name is malformed. Only
     * valid during init (the registry is read-only afterwards). */
    int32_t (*op_intern)(void *host, const char *name);

    /* Name of an op id, or NULL. Thread-safe. */
    const char *(*op_name)(void *host, int32_t op_id);

    /* ---- ABI 1.1: building graphs, for layer types. Valid only inside a
     * layer's build(); `g` is the graph being built. Errors set the message
     * (naming the layer, op and shapes) and return non-OK; build() should
     * return that status. ---- */

    /* Adds a node running `op` ("core.conv2d") on inputs; its outputs'
     * shapes are inferred and checked here. attrs as plx_op_run takes them. */
    plx_status (*graph_op)(void *host, struct plx_graph *g, const char *op, const void *attrs,
                           const plx_value *inputs, int32_t n_inputs, plx_value *outputs, int32_t n_outputs);
    /* Declares a trainable parameter of the layer being built; `name` is
     * relative ("weight" in layer "conv1" is "conv1.weight" in checkpoints). */
    plx_status (*graph_param)(void *host, struct plx_graph *g, const char *name, int32_t ndim,
                              const int64_t *shape, const plx_initializer *init, plx_value *out);
    /* Declares persistent, non-trainable state (batch-norm running stats). */
    plx_status (*graph_state)(void *host, struct plx_graph *g, const char *name, int32_t ndim,
                              const int64_t *shape, const plx_initializer *init, plx_value *out);
    /* dtype and shape of a value (shape has room for PLX_MAX_DIMS). */
    plx_status (*graph_value_info)(void *host, const struct plx_graph *g, plx_value value, plx_dtype *dtype,
                                   int32_t *ndim, int64_t *shape);
    /* Reads a validated config value of the layer (the runtime checked its
     * type against the layer's keys and applied defaults). */
    plx_status (*config_int)(void *host, const struct plx_layer_config *config, const char *key, int64_t *out);
    plx_status (*config_float)(void *host, const struct plx_layer_config *config, const char *key,
                               double *out);
    plx_status (*config_bool)(void *host, const struct plx_layer_config *config, const char *key,
                              int32_t *out);
    /* The string lives as long as the config. */
    plx_status (*config_string)(void *host, const struct plx_layer_config *config, const char *key,
                                const char **out);
    /* Up to cap integers; *count gets how many the value has (a scalar
     * counts as one, so "kernel": 3 and "kernel": [3, 3] both work). */
    plx_status (*config_ints)(void *host, const struct plx_layer_config *config, const char *key,
                              int64_t *out, int32_t cap, int32_t *count);
} plx_host_api;

/* ---- What a backend gives the runtime ------------------------------------ */

enum {
    PLX_DEVICE_KIND_CPU = 0,
    PLX_DEVICE_KIND_GPU = 1,
    PLX_DEVICE_KIND_ACCELERATOR = 2,
    PLX_DEVICE_KIND_OTHER = 3
};

/* Capability bits of a device. */
#define PLX_DEVICE_CAP_HOST_MEMORY (1u << 0) /* computes on host memory: tensors are shared, never copied */
#define PLX_DEVICE_CAP_F16 (1u << 1)
#define PLX_DEVICE_CAP_BF16 (1u << 2)
#define PLX_DEVICE_CAP_ASYNC (1u << 3) /* run() may return before the work is done; synchronize() waits */

typedef struct plx_device_info {
    uint32_t struct_size;
    const char *name;          /* e.g. "cpu0", owned by the plugin, static */
    int32_t kind;              /* PLX_DEVICE_KIND_* */
    plx_dl_device dl_device;   /* where its buffers live, as DLPack says */
    uint64_t memory_bytes;     /* total memory, 0 if unknown */
    uint64_t caps;             /* PLX_DEVICE_CAP_* */
    double copy_bytes_per_ns;  /* host<->device bandwidth; 0 for host memory */
} plx_device_info;

/* One op invocation. Inputs and outputs are compact row-major (except
 * core.copy's input); outputs are allocated by the runtime on the device
 * the call runs on. For support and cost queries, data pointers are NULL. */
/* Memory layouts of a call's tensors (ABI 1.2). */
enum {
    PLX_LAYOUT_PLAIN = 0,  /* compact row-major, as the descriptor says */
    PLX_LAYOUT_BACKEND = 1 /* the executing backend's own layout for this shape (see layout_bytes) */
};

typedef struct plx_op_call {
    uint32_t struct_size;
    int32_t op_id;              /* PLX_OP_* or an interned custom id */
    const char *op_name;        /* "core.add" */
    const void *attrs;          /* full current attribute struct, or NULL if the op has none */
    int32_t n_inputs;
    const plx_tensor_desc *inputs;
    int32_t n_outputs;
    const plx_tensor_desc *outputs;
    /* ABI 1.2: PLX_LAYOUT_* of each tensor, inputs then outputs; NULL (or a
     * shorter struct) means all plain. A PLX_LAYOUT_BACKEND tensor was
     * written by an earlier call of the same backend (a chain inside one
     * backend, e.g. oneDNN's blocked layouts), is as large as layout_bytes
     * said, and is never read by the runtime or another backend. Such calls
     * reach run() only after supports() accepted them with these layouts. */
    const uint8_t *layouts;
} plx_op_call;

typedef struct plx_backend_api {
    uint32_t struct_size;
    const char *name; /* "cpu_blas"; [a-z0-9_]+, unique among loaded backends */

    /* Devices this backend drives right now (>= 1 for a usable backend). */
    int32_t (*device_count)(void *state);
    /* Fills *out (out->struct_size is set by the caller; write no further). */
    plx_status (*device_info)(void *state, int32_t device, plx_device_info *out);

    /* Device memory. alloc returns memory aligned to at least 64 bytes;
     * free(NULL) is a no-op. */
    plx_status (*buffer_alloc)(void *state, int32_t device, uint64_t bytes, void **out);
    void (*buffer_free)(void *state, int32_t device, void *ptr);
    /* Copies between two same-shape descriptors, either of which may be on
     * the host (PLX_DL_CPU) and the other on `device`. NULL for backends
     * with PLX_DEVICE_CAP_HOST_MEMORY. */
    plx_status (*copy)(void *state, int32_t device, const plx_tensor_desc *src,
                       const plx_tensor_desc *dst);
    /* Waits for all work queued on the device. NULL if run() is synchronous. */
    plx_status (*synchronize)(void *state, int32_t device);

    /* Every op this backend implements for some inputs (names). The array and
     * strings are static or live in state. */
    const char *const *(*op_names)(void *state, size_t *count);

    /* Whether `call` (validated by the runtime; data pointers NULL) can run
     * on `device`: 1 yes, 0 no with a short reason written to reason[cap]. */
    int32_t (*supports)(void *state, int32_t device, const plx_op_call *call, char *reason,
                        size_t reason_cap);

    /* Estimated run time in nanoseconds (inputs already on the device).
     * NULL or a negative result: the runtime estimates from op size. */
    double (*estimate_ns)(void *state, int32_t device, const plx_op_call *call);

    /* Runs the op. Errors carry a message through host->set_error. */
    plx_status (*run)(void *state, int32_t device, const plx_op_call *call);

    /* ABI 1.2: bytes a tensor shaped like `t` (data NULL) takes in this
     * backend's own layout, or 0 when it has none for such a tensor. The
     * graph executor keeps a value in that layout when the backend runs its
     * producer and every reader and accepts them so (supports() with the
     * call's layouts set); everything else stays plain. NULL: none. */
    uint64_t (*layout_bytes)(void *state, int32_t device, const plx_tensor_desc *t);
} plx_backend_api;

/* ---- What a layer type gives the runtime (ABI 1.1) ---------------------- */

enum {
    PLX_CONFIG_INT = 0,
    PLX_CONFIG_FLOAT = 1,
    PLX_CONFIG_BOOL = 2,
    PLX_CONFIG_STRING = 3,
    PLX_CONFIG_INTS = 4 /* an integer or a list of integers */
};

/* One configuration key a layer accepts in model files. */
typedef struct plx_config_key {
    uint32_t struct_size;
    const char *name;          /* "filters" */
    int32_t type;              /* PLX_CONFIG_* */
    int32_t required;          /* 1: must be given; 0: default_json applies */
    const char *default_json;  /* default as JSON text ("3", "[1, 1]", "\"same\"", "true"), NULL if required */
    const char *doc;           /* one line, for error messages and listings */
} plx_config_key;

typedef struct plx_layer_build {
    uint32_t struct_size;
    const char *name;                      /* the instance's name in the model ("conv1") */
    const struct plx_layer_config *config; /* validated against the type's keys */
    int32_t training;                      /* 1: the training graph; 0: inference */
    uint64_t seed;                         /* per-instance seed (dropout masks) */
    struct plx_graph *graph;
    int32_t n_inputs;
    const plx_value *inputs;
} plx_layer_build;

/* A layer type: its config keys and a build() that adds core ops (and its
 * parameters) to the graph through the host API. Backward comes from the
 * runtime's autodiff over those ops. */
typedef struct plx_layer_type {
    uint32_t struct_size;
    const char *name;        /* as used in model files: "dense", or "acme.gated" for third parties */
    const char *description; /* one line */
    /* n_keys entries, all with the same struct_size: the runtime steps
     * through the array by keys[0].struct_size, so the key struct can grow. */
    const plx_config_key *keys;
    int32_t n_keys;
    int32_t min_inputs;      /* usually 1; add/concat take 2 or more */
    int32_t max_inputs;      /* -1: unbounded */
    /* Writes up to max_outputs values and their count. */
    plx_status (*build)(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                        int32_t max_outputs, int32_t *n_outputs);
} plx_layer_type;

/* ---- The descriptor ----------------------------------------------------- */

typedef struct plx_plugin_desc {
    /* Fixed forever: */
    uint32_t struct_size;
    uint16_t abi_major; /* PLX_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor; /* PLX_ABI_MINOR the plugin was built with */
    /* ABI 1.0: */
    const char *name;        /* [a-z0-9_]+, unique among loaded plugins */
    const char *version;     /* free-form, e.g. "1.2.0"; keys calibration caches */
    const char *description; /* one line */

    /* Whether the plugin can work on this machine (a driver present, a CPU
     * feature). Return PLX_OK, or PLX_UNAVAILABLE with a reason in
     * reason[cap]. NULL: usable. Must not allocate anything that outlives
     * the call. */
    plx_status (*probe)(const plx_host_api *host, char *reason, size_t reason_cap);
    /* Creates the plugin's state; `host` stays valid until shutdown. NULL:
     * no state (state is NULL). On failure, set an error and return it. */
    plx_status (*init)(const plx_host_api *host, void **state);
    /* Frees the state. Called in reverse load order at context close, while
     * the runtime is intact. NULL: nothing to free. */
    void (*shutdown)(void *state);

    /* The backend this plugin provides, or NULL. */
    const plx_backend_api *backend;

    /* ABI 1.1: layer types this plugin provides (an array of pointers, so
     * each struct can grow on its own). */
    const plx_layer_type *const *layers;
    int32_t n_layers;
} plx_plugin_desc;

typedef const plx_plugin_desc *(*plx_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif /* PLEXUS_PLUGIN_H */

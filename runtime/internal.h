/*
 * internal.h — the runtime's private structures, shared by its files.
 * Nothing here is API: applications use abi/plexus.h, plugins
 * abi/plexus_plugin.h.
 */
#ifndef PLX_INTERNAL_H
#define PLX_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "../abi/plexus.h"
#include "../abi/plexus_plugin.h"
#include "op_catalog.h"

#define PLX_ERROR_CAP 1024

/* ---- status.c: per-thread messages -------------------------------------- */

typedef struct thread_state {
    struct plx_context *ctx;
    struct thread_state *next; /* in ctx->threads */
    char error[PLX_ERROR_CAP];
    const char *last_backend;
} thread_state;

/* The calling thread's state for ctx (created on first use); NULL only when
 * out of memory. */
thread_state *thread_state_get(const struct plx_context *ctx);
/* Sets the calling thread's message (printf-style) and returns `status`. */
plx_status ctx_fail(const struct plx_context *ctx, plx_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
plx_status ctx_failv(const struct plx_context *ctx, plx_status status, const char *fmt, va_list ap);
/* Message for a failed plx_context_open (ctx == NULL). */
plx_status open_fail(plx_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void threads_init(struct plx_context *ctx);
void threads_release(struct plx_context *ctx);

/* ---- hashing ------------------------------------------------------------ */
#define PLX_FNV1A_INIT 1469598103934665603ull
/* FNV-1a over n bytes, continuing from h (PLX_FNV1A_INIT to start). Route
 * and cost caches key on it; parameter streams too, so its values must not
 * change (saved runs depend on them). */
static inline uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- log ---------------------------------------------------------------- */
void ctx_log(const struct plx_context *ctx, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- thread_pool.c ------------------------------------------------------ */
typedef struct thread_pool thread_pool;
plx_status thread_pool_create(int32_t threads, thread_pool **out);
void thread_pool_free(thread_pool *pool);
void thread_pool_run(thread_pool *pool, int64_t n, int64_t grain, plx_range_fn fn, void *arg);

/* ---- registry ----------------------------------------------------------- */

typedef struct plugin_record {
    char *path;
    char *name;
    char *version;
    char *description;
    int32_t status; /* PLX_PLUGIN_LOADED / REFUSED */
    char *reason;
    uint16_t abi_major, abi_minor;
    void *handle;               /* dlopen handle while loaded */
    plx_plugin_desc desc;       /* the plugin's descriptor, zero-extended to our size */
    void *state;                /* from init */
    bool initialized;
    int32_t backend_index;
} plugin_record;

typedef struct backend_record {
    char *name;
    int32_t plugin_index;
    plx_backend_api api;        /* zero-extended copy: NULL slots mean "not provided" */
    void *state;
    int32_t n_devices;
    plx_device_info *devices;   /* zero-extended copies */
    int32_t rank;               /* position in the user's ranking, -1 if none */
    int32_t *op_ids;            /* ops it lists, interned */
    size_t n_ops;
    uint8_t *implements;        /* by op id index (see op_index) */
} backend_record;

/* A layer type from a plugin, zero-extended to today's structs. */
typedef struct layer_record {
    char *name;
    int32_t plugin_index;
    plx_layer_type type;
    plx_config_key *keys; /* n = type.n_keys, zero-extended copies */
} layer_record;

typedef struct route_entry route_entry;
typedef struct cost_entry cost_entry;

typedef struct plx_context {
    plx_context_options opts;   /* copy, strings duplicated below */
    char *backends_spec;        /* ranking string in effect, or NULL */
    char **ranking;             /* parsed names */
    size_t n_ranking;
    bool strict;
    bool allow_insecure;
    bool fuse;                  /* graph fusions on (PLEXUS_FUSE, default 1) */
    bool backend_layouts;       /* chains kept in a backend's own layout (PLEXUS_LAYOUTS, default 1) */
    int32_t num_threads;
    int32_t log_level;

    plugin_record *plugins;
    size_t n_plugins, cap_plugins;
    layer_record *layers;
    size_t n_layers;
    backend_record *backends;
    size_t n_backends;

    /* ops: core ids first, then custom names (ids PLX_OP_CUSTOM_BASE + i) */
    char **custom_ops;
    size_t n_custom_ops, cap_custom_ops;
    bool registry_frozen;

    plx_host_api host_api;
    thread_pool *pool;

    pthread_key_t thread_key;
    pthread_mutex_t threads_lock;
    thread_state *threads;

    pthread_mutex_t route_lock;
    route_entry **routes;       /* hash table of cached decisions */
    size_t route_cap, route_count;

    /* Measured kernel times (cost_cache.c), guarded by cost_lock. */
    pthread_mutex_t cost_lock;
    cost_entry **costs;
    size_t cost_cap, cost_count;
    char *cost_path;            /* calibration cache file, NULL for none */
    char cost_cpu[256];         /* this CPU, as the cache file names it */
    bool calibrate;
    int64_t cost_loaded, cost_dropped, cost_measured;
} plx_context;

/* Op ids -> dense index into backend_record.implements. */
size_t op_index_count(const plx_context *ctx);
int64_t op_index(int32_t op_id);
const char *op_name_of(const plx_context *ctx, int32_t op_id);
int32_t op_lookup(const plx_context *ctx, const char *name);
int32_t op_intern(plx_context *ctx, const char *name);

/* cpu_tune.c: sets OPENBLAS_CORETYPE from the CPU's features (once per
 * process, if the user has not) before plugins load OpenBLAS. */
void cpu_tune_blas(const struct plx_context *ctx);

/* loader.c */
plx_status loader_load_all(plx_context *ctx);
void loader_unload_all(plx_context *ctx);

/* context.c */
void host_api_init(plx_context *ctx);

/* layer_host.c: the layer side of the plugin ABI */
/* Validates and registers the plugin's layer types; false (with *reason
 * written) if the plugin must be refused. */
bool layers_register(plx_context *ctx, int32_t plugin_index, char *reason, size_t cap);
void layers_free(plx_context *ctx);
/* Forgets the layer types of a plugin being refused after registration. */
void layers_drop_plugin(plx_context *ctx, int32_t plugin_index);
const layer_record *layer_find(const plx_context *ctx, const char *name);
void host_api_init_layers(plx_host_api *h);

/* dispatch.c */
void routes_free(plx_context *ctx);
/* Picks the backend and device for a call (data pointers NULL) whose
 * inputs/outputs are described by in_meta/out_meta. With `explain`, writes
 * every candidate and the winner there instead of failing loudly. */
plx_status router_route(plx_context *ctx, const op_def *def, const plx_op_call *call, const tensor_meta *in_meta,
                        const tensor_meta *out_meta, int32_t *backend, int32_t *device, char *explain, size_t cap);
/* The cost (measured, else estimated, plus copies) of running the call on
 * one backend and device; PLX_UNSUPPORTED when that one cannot. */
plx_status router_cost_of(plx_context *ctx, const op_def *def, const plx_op_call *call, const tensor_meta *in_meta,
                          const tensor_meta *out_meta, int32_t backend, int32_t device, double *ns);
/* One line naming every candidate with its cost, measured or estimated,
 * the winner starred: "*onednn 1.234 ms measured, cpu_blas 3.402 ms est.". */
plx_status router_summarize(plx_context *ctx, const op_def *def, const plx_op_call *call, const tensor_meta *in_meta,
                            const tensor_meta *out_meta, char *summary, size_t cap);

/* cost_cache.c: measured kernel times and the calibration cache file */
/* Reads options/environment and the cache file (after plugins loaded).
 * Fails only on a malformed PLEXUS_CALIBRATE; file problems are warnings. */
plx_status cost_cache_open(plx_context *ctx);
void cost_cache_free(plx_context *ctx);
/* "core.add(f32[2,3],f32[3])->(f32[2,3]) attrs=..." from a call's
 * descriptors and attribute bytes; 0 if it does not fit in cap. */
size_t cost_signature(const plx_op_call *call, char *buf, size_t cap);
/* The measured time of a call's signature on backend/device (under this
 * context's thread budget); *ns < 0 means it failed when timed. */
bool cost_lookup(plx_context *ctx, const backend_record *b, int32_t dev, const char *signature, double *ns);
/* Candidates of one call to time (cost_measure). */
typedef struct cost_candidate {
    const backend_record *backend;
    int32_t device;
    double ns;     /* out: fastest run; -1 failed (why), -2 not timed (why) */
    char why[256];
} cost_candidate;
/* Times the call on scratch data on every candidate, round-robin, and
 * records each result (failures too; "not timed" is not recorded). */
void cost_measure(plx_context *ctx, cost_candidate *cands, int32_t n, const plx_op_call *call,
                  const char *signature);

/* tensor.c */
struct plx_tensor {
    plx_context *ctx;
    plx_tensor_desc desc;
    int64_t shape[PLX_MAX_DIMS];
    int64_t strides[PLX_MAX_DIMS];
    struct tensor_storage *storage;
};
/* True if t's strides are NULL or describe compact row-major layout. */
bool desc_is_compact(const plx_tensor_desc *t);
/* Fills a tensor_meta from a descriptor. */
void meta_from_desc(tensor_meta *m, const plx_tensor_desc *d);
/* Validates a descriptor from outside: rank, dims, dtype, overflow, data. */
plx_status desc_validate(const plx_context *ctx, const plx_tensor_desc *d, const char *what);

#endif

/*
 * plexus.h — the Plexus host API, for applications that embed the runtime.
 *
 *   plx_context *ctx;
 *   if (plx_context_open(NULL, &ctx) != PLX_OK) { ... plx_last_error(ctx) ... }
 *   plx_tensor *a, *b, *y = NULL;
 *   plx_tensor_create(ctx, PLX_F32, 2, (int64_t[]){64, 64}, &a); ...
 *   plx_op_run(ctx, "core.matmul", NULL, (plx_tensor *[]){a, b}, 2, &y, 1);
 *   plx_tensor_free(y); ... plx_context_close(ctx);
 *
 * Conventions, for every function below unless it says otherwise:
 * - Fallible functions return a plx_status; on failure the calling thread's
 *   message (plx_last_error) names the op, plugin, dtypes and shapes, and
 *   output parameters are left untouched.
 * - Pointers passed in are borrowed for the call; strings returned are owned
 *   by the context and live until it closes.
 * - plx_*_free(NULL) and plx_context_close(NULL) are no-ops.
 * - A context may be used from several threads at once. Queries are
 *   thread-safe; a tensor may be written by one thread at a time.
 * - No function aborts or exits the process.
 */
#ifndef PLEXUS_H
#define PLEXUS_H

#include "plexus_ops.h"
#include "plexus_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define PLX_API __attribute__((visibility("default")))
#else
#define PLX_API
#endif

typedef struct plx_context plx_context;
typedef struct plx_tensor plx_tensor;

/* ---- Status ------------------------------------------------------------- */

/* "PLX_SHAPE_MISMATCH"-style name, or "PLX_UNKNOWN" for a bad code. Static. */
PLX_API const char *plx_status_name(plx_status status);
/* Human text ("shape mismatch"). Static. */
PLX_API const char *plx_status_text(plx_status status);
/* The calling thread's message from its last failed call on ctx ("" if
 * none). Valid until the thread's next call on ctx. ctx may be NULL, giving
 * the message of a failed plx_context_open on this thread. */
PLX_API const char *plx_last_error(const plx_context *ctx);

/* ---- Context ------------------------------------------------------------ */

/* Log callback; `level` is PLX_LOG_*. Called from any thread. */
typedef void (*plx_log_fn)(void *user, int level, const char *message);

typedef struct plx_context_options {
    uint32_t struct_size; /* sizeof(plx_context_options) */
    /* Plugin files or directories searched first, in this order. */
    const char *const *plugin_paths;
    size_t n_plugin_paths;
    /* Ignore PLEXUS_PLUGIN_PATH, PLEXUS_BACKENDS, PLEXUS_STRICT,
     * PLEXUS_NUM_THREADS and PLEXUS_ALLOW_INSECURE_PLUGINS. */
    int32_t ignore_env;
    /* Do not search the directory next to libplexus.so nor the install dir. */
    int32_t no_default_dirs;
    /* Backend ranking/restriction, "onednn,cpu_blas": only these, in this
     * preference order. NULL: PLEXUS_BACKENDS, else all, by cost alone. */
    const char *backends;
    /* 1: a node that cannot run on the top-ranked backend able to take it
     * is an error instead of a logged fallback. -1 (or PLEXUS_STRICT=1 when
     * 0): likewise from the environment. */
    int32_t strict;
    /* Load plugins from group- or world-writable files/directories. */
    int32_t allow_insecure_plugins;
    /* Thread budget for all backends; 0: PLEXUS_NUM_THREADS, else every
     * online core. */
    int32_t num_threads;
    /* Log sink; NULL: warnings and errors go to stderr. */
    plx_log_fn log_fn;
    void *log_user;
    /* Lowest PLX_LOG_* level passed to the log sink; plx_context_options_init
     * sets PLX_LOG_WARN (PLEXUS_LOG_LEVEL=debug|info|warn|error overrides). */
    int32_t log_level;
    /* Measured routing. Calibration cache: a JSON file of kernel
     * times measured per (backend, plugin version, device, thread budget,
     * op, dtypes, shapes, attributes); the router prefers these over the
     * backends' own estimates. NULL: PLEXUS_COST_CACHE, else
     * $XDG_CACHE_HOME/plexus/costs.json, else ~/.cache/plexus/costs.json
     * (with ignore_env: none). "" or "none": no cache. A cache that is
     * unreadable, corrupt, or from another CPU is ignored with a warning;
     * entries from another version of a loaded plugin are dropped with a
     * warning. It is read at open and written only by plx_cost_cache_save. */
    const char *cost_cache;
    /* 1: when a node or eager call has more than one candidate and some
     * candidate has no measured time yet, time each on scratch data (a
     * warm-up run, then the fastest of several) before choosing. 0:
     * PLEXUS_CALIBRATE=1 turns it on. */
    int32_t calibrate;
} plx_context_options;

/* Fills *opts with defaults (struct_size set, log level WARN). */
PLX_API void plx_context_options_init(plx_context_options *opts);

/* Opens a context: discovers and loads plugins in search-path order
 * (explicit paths, PLEXUS_PLUGIN_PATH, the directory next to libplexus.so,
 * the compiled-in install dir; never the current directory), builds the
 * registry and thread pool. opts may be NULL for defaults. A plugin that is
 * broken, built for another ABI major, or unusable here is recorded with the
 * reason and skipped; opening still succeeds. Fails (PLX_NOT_FOUND) only if
 * an explicit path does not exist, or on bad options / out of memory. */
PLX_API plx_status plx_context_open(const plx_context_options *opts, plx_context **out);

/* What the context knows of measured kernel times. */
typedef struct plx_cost_cache_info {
    uint32_t struct_size;
    const char *path;   /* the cache file, NULL when none; lives as long as ctx */
    int64_t loaded;     /* entries read from the file and in use */
    int64_t dropped;    /* entries read but ignored (another plugin version, bad values) */
    int64_t measured;   /* entries measured by this context (calibration) */
    int32_t calibrate;  /* calibration on */
} plx_cost_cache_info;

PLX_API plx_status plx_cost_cache_info_get(const plx_context *ctx, plx_cost_cache_info *info);

/* Writes every known measurement (those read, those measured, and the
 * file's entries for backends not loaded now) to the cache file, atomically
 * (temp file, fsync, rename); creates its directory if missing. Fails with
 * PLX_INVALID_ARGUMENT when the context has no cache file, PLX_IO_ERROR
 * naming the path. Thread-safe. */
PLX_API plx_status plx_cost_cache_save(plx_context *ctx);

/* Shuts plugins down in reverse load order and frees everything the context
 * owns. Tensors still alive must not be used afterwards (free them first). */
PLX_API void plx_context_close(plx_context *ctx);

/* The thread budget in effect. */
PLX_API int32_t plx_context_num_threads(const plx_context *ctx);

/* ---- Plugins, backends, devices, ops (read-only after open) ------------- */

enum { PLX_PLUGIN_LOADED = 0, PLX_PLUGIN_REFUSED = 1 };

typedef struct plx_plugin_info {
    uint32_t struct_size;
    const char *path;        /* file examined */
    const char *name;        /* "" if never learnt */
    const char *version;     /* "" if never learnt */
    const char *description;
    int32_t status;          /* PLX_PLUGIN_LOADED / PLX_PLUGIN_REFUSED */
    const char *reason;      /* why refused ("" when loaded) */
    uint16_t abi_major, abi_minor; /* as the plugin declared (0 if unknown) */
    int32_t backend_index;   /* index for plx_backend_get, or -1 */
} plx_plugin_info;

/* Every plugin file examined, in examination order. */
PLX_API size_t plx_plugin_count(const plx_context *ctx);
/* info->struct_size must be set by the caller. */
PLX_API plx_status plx_plugin_get(const plx_context *ctx, size_t index, plx_plugin_info *info);

typedef struct plx_backend_info {
    uint32_t struct_size;
    const char *name;
    const char *plugin_name;
    int32_t n_devices;
    int32_t rank;            /* position in the user's ranking, -1 unranked */
    size_t n_ops;            /* ops it implements (plx_backend_op_name) */
} plx_backend_info;

PLX_API size_t plx_backend_count(const plx_context *ctx);
PLX_API plx_status plx_backend_get(const plx_context *ctx, size_t index, plx_backend_info *info);
/* Name of the i-th op the backend implements, or NULL. */
PLX_API const char *plx_backend_op_name(const plx_context *ctx, size_t backend, size_t i);

typedef struct plx_device_desc {
    uint32_t struct_size;
    const char *name;
    int32_t kind;            /* PLX_DEVICE_KIND_* (plexus_plugin.h values) */
    plx_dl_device dl_device;
    uint64_t memory_bytes;
    uint64_t caps;
} plx_device_desc;

PLX_API plx_status plx_device_get(const plx_context *ctx, size_t backend, int32_t device,
                                  plx_device_desc *desc);

typedef struct plx_layer_info {
    uint32_t struct_size;
    const char *name;        /* "dense", "acme.gated" */
    const char *description;
    int32_t plugin_index;    /* for plx_plugin_get */
    int32_t n_keys;          /* configuration keys (plx_layer_key_get) */
} plx_layer_info;

/* Layer types provided by loaded plugins, in load order. */
PLX_API size_t plx_layer_count(const plx_context *ctx);
PLX_API plx_status plx_layer_get(const plx_context *ctx, size_t index, plx_layer_info *info);

typedef struct plx_layer_key_info {
    uint32_t struct_size;
    const char *name;
    const char *type;          /* "int", "float", "bool", "string", "ints" */
    int32_t required;
    const char *default_json;  /* "" when required */
    const char *doc;
} plx_layer_key_info;

PLX_API plx_status plx_layer_key_get(const plx_context *ctx, size_t layer, int32_t key, plx_layer_key_info *info);

/* Number of ops known (core ops and those interned by plugins). */
PLX_API size_t plx_op_count(const plx_context *ctx);
/* Name of op `id`, or NULL. */
PLX_API const char *plx_op_name(const plx_context *ctx, int32_t id);
/* Id of an op name; PLX_NOT_FOUND if no one registered it. */
PLX_API plx_status plx_op_find(const plx_context *ctx, const char *name, int32_t *id);

/* ---- Tensors ------------------------------------------------------------ */

/* Creates a zero-filled compact tensor in host memory. shape may be NULL
 * when ndim == 0 (a scalar). Fails on negative dims, ndim > PLX_MAX_DIMS,
 * an unknown dtype or a byte size that overflows. Free with plx_tensor_free. */
PLX_API plx_status plx_tensor_create(plx_context *ctx, plx_dtype dtype, int32_t ndim,
                                     const int64_t *shape, plx_tensor **out);

/* Wraps caller memory described by *desc (host memory, any strides)
 * without copying. The descriptor is copied; the memory is borrowed: it must
 * stay valid until the tensor is freed, at which point `release(release_arg)`
 * runs if non-NULL. */
PLX_API plx_status plx_tensor_wrap(plx_context *ctx, const plx_tensor_desc *desc,
                                   void (*release)(void *arg), void *release_arg,
                                   plx_tensor **out);

/* Takes ownership of a DLPack managed tensor (zero copy); its deleter runs
 * when the Plexus tensor and every export of it are freed. On failure the
 * caller keeps ownership. */
PLX_API plx_status plx_tensor_from_dlpack(plx_context *ctx, plx_dl_managed_tensor *managed,
                                          plx_tensor **out);

/* Exports a tensor as a DLPack managed tensor sharing its memory (zero
 * copy). The consumer calls managed->deleter(managed) once; the memory stays
 * valid until then even if the plx_tensor is freed first. */
PLX_API plx_status plx_tensor_to_dlpack(plx_tensor *tensor, plx_dl_managed_tensor **out);

/* Frees the tensor (its memory when no export still holds it). */
PLX_API void plx_tensor_free(plx_tensor *tensor);

/* The tensor's descriptor; valid while the tensor lives. */
PLX_API const plx_tensor_desc *plx_tensor_desc_get(const plx_tensor *tensor);
/* Address of the first element (data + byte_offset). */
PLX_API void *plx_tensor_data(const plx_tensor *tensor);
/* Element count. */
PLX_API int64_t plx_tensor_numel(const plx_tensor *tensor);

/* ---- Running ops eagerly ------------------------------------------------ */

/* Runs one op through the router: validates dtypes, shapes and attrs,
 * infers output shapes, picks the backend (user ranking, support, cost
 * including copies; decisions are cached per op/dtypes/shapes/attrs), makes
 * strided inputs compact, and runs it.
 * `attrs` points to the op's attribute struct (struct_size set; shorter
 * structs from older headers get defaults for missing fields) or NULL for
 * defaults. For each output, outputs[i] == NULL makes the runtime create the
 * tensor (the caller frees it); a non-NULL output must already have the
 * inferred dtype and shape and receives the result. Inputs marked (mut) in
 * plexus_ops.h are updated in place. */
PLX_API plx_status plx_op_run(plx_context *ctx, const char *op, const void *attrs,
                              plx_tensor *const *inputs, size_t n_inputs,
                              plx_tensor **outputs, size_t n_outputs);

/* As plx_op_run with an op id from plx_op_find (skips the name lookup). */
PLX_API plx_status plx_op_run_id(plx_context *ctx, int32_t op_id, const void *attrs,
                                 plx_tensor *const *inputs, size_t n_inputs,
                                 plx_tensor **outputs, size_t n_outputs);

/* Writes into buf[cap] (NUL-terminated, truncated if needed) which backend
 * and device the router picks for this call and why: every candidate with
 * its cost or the reason it cannot take the call. Returns the status a run
 * would fail with at the routing stage (PLX_OK if some backend takes it). */
PLX_API plx_status plx_op_explain(plx_context *ctx, const char *op, const void *attrs,
                                  plx_tensor *const *inputs, size_t n_inputs, char *buf,
                                  size_t cap);

/* Name of the backend that ran the calling thread's last successful op on
 * ctx ("" if none). For tests and diagnostics. */
PLX_API const char *plx_last_backend(const plx_context *ctx);

/* ---- Models: define, train, evaluate, predict (ABI 1.1) ------------------
 *
 * A model file is JSON (see docs/model-format.md): an input shape, a graph of
 * named layers (a list is the sequential short form; "inputs" names other
 * layers for skips), and a "training" section (loss, optimizer, schedule,
 * batch size, epochs, regularization, augmentation, data). Unknown keys and
 * bad values are errors naming the file, the JSON path and what was
 * expected. Layer types come from plugins (plugins/layers and third
 * parties). A model owns its parameters, optimizer state and the compiled
 * training/inference plans; it is used by one thread at a time.
 */
typedef struct plx_model plx_model;

/* Parses and validates a model file and builds its graphs (parameters are
 * initialized from the model's seed). */
PLX_API plx_status plx_model_load(plx_context *ctx, const char *path, plx_model **out);
/* The same from JSON text; `origin` names it in error messages. */
PLX_API plx_status plx_model_parse(plx_context *ctx, const char *json_text, const char *origin, plx_model **out);
PLX_API void plx_model_free(plx_model *model);

/* Progress of a training run, passed to the callback after every step and
 * at the end of every epoch. */
typedef struct plx_train_progress {
    uint32_t struct_size;
    int32_t epoch;           /* 1-based */
    int32_t epochs;
    int64_t step;            /* steps done in this epoch */
    int64_t steps_per_epoch;
    int64_t global_step;
    double loss;             /* running mean over the epoch so far */
    double accuracy;         /* running training accuracy over the epoch so far */
    double examples_per_second;
    double eta_seconds;      /* for the whole run */
    float lr;
    int32_t epoch_done;      /* 1 at the end of an epoch: val_* are set */
    double val_loss, val_accuracy; /* NaN when there is no validation set */
} plx_train_progress;

typedef void (*plx_progress_fn)(void *user, const plx_train_progress *progress);

typedef struct plx_train_options {
    uint32_t struct_size;
    int32_t epochs;             /* 0: the model file's */
    const char *data_dir;       /* NULL: the model file's */
    const char *out_path;       /* checkpoint written at each epoch end and at the end (NULL: none) */
    const char *resume_path;    /* continue exactly from this checkpoint (NULL: start fresh) */
    const char *metrics_path;   /* JSON lines per step and per epoch (NULL: none) */
    int32_t check_numerics;     /* 1: on NaN/Inf, name the first node that produced it */
    int64_t max_steps;          /* > 0: stop after this many steps in total (tests, resume checks) */
    int64_t limit_train;        /* > 0: use only the first N training examples */
    int64_t limit_test;         /* > 0: evaluate on only the first N test examples */
    plx_progress_fn progress;
    void *progress_user;
    /* Polled between steps; when it becomes non-zero, training stops after
     * the current step, writes the checkpoint (if out_path) and returns
     * PLX_UNAVAILABLE ("interrupted"). Pass the address of a flag a SIGINT
     * handler sets. */
    const volatile int *interrupt;
} plx_train_options;

typedef struct plx_train_result {
    uint32_t struct_size;
    double test_accuracy;       /* NaN when no test set is configured */
    double test_loss;
    int32_t epochs;             /* epochs completed */
    int64_t steps;
    double seconds_per_epoch;   /* mean wall time of a training epoch (without evaluation) */
    double examples_per_second; /* training examples per second */
    uint64_t peak_memory_bytes; /* parameters + gradients + optimizer state + activations arena */
    double best_val_accuracy;   /* NaN without validation */
    int32_t stopped_early;      /* early stopping triggered (best weights restored) */
} plx_train_result;

/* Trains as the model file says (overridden by opts). */
PLX_API plx_status plx_model_train(plx_model *model, const plx_train_options *opts, plx_train_result *result);

typedef struct plx_eval_result {
    uint32_t struct_size;
    double accuracy, loss;
    double top5_accuracy;       /* NaN with fewer than 6 classes */
    int64_t examples;
    int32_t classes;
    const int64_t *confusion;   /* classes x classes (row: true class), owned by the model */
} plx_eval_result;

/* Evaluates on the model's test set (data_dir overrides its directory). */
PLX_API plx_status plx_model_evaluate(plx_model *model, const char *data_dir, int64_t limit,
                                      plx_eval_result *result);

typedef struct plx_model_info {
    uint32_t struct_size;
    const char *name;
    int32_t input_ndim;             /* one example's rank */
    int64_t input_shape[PLX_MAX_DIMS - 1];
    int64_t classes;
    /* Per-channel normalization the training data got (x - mean) / std;
     * inputs to plx_model_predict must be normalized the same way. 0
     * channels: none; 1: one statistic for all channels. */
    int32_t norm_channels;
    float norm_mean[16];
    float norm_std[16];
    int64_t parameters;             /* trainable and frozen weights, in elements */
    int64_t global_step;            /* training steps done */
    int32_t epochs_done;
} plx_model_info;

/* What a model takes and gives. Strings live as long as the model. */
PLX_API plx_status plx_model_info_get(const plx_model *model, plx_model_info *info);

/* Class probabilities for a batch of inputs shaped [N, ...input shape]. *out
 * is created ([N, classes]); the caller frees it. */
PLX_API plx_status plx_model_predict(plx_model *model, const plx_tensor *inputs, plx_tensor **out);

/* Writes a checkpoint (safetensors: weights, optimizer state; metadata: the
 * model file, step, RNG, scheduler and data position) atomically. */
PLX_API plx_status plx_model_save(plx_model *model, const char *path);
/* Rebuilds a model from a checkpoint alone (the model file is inside). */
PLX_API plx_status plx_model_load_checkpoint(plx_context *ctx, const char *path, plx_model **out);
/* Copies weights by name from a safetensors file (written by Plexus or
 * another tool) into the model; names missing from the file, or present with
 * another shape, are errors unless `partial` (then they are listed in the
 * log and keep their values). */
PLX_API plx_status plx_model_load_weights(plx_model *model, const char *path, int32_t partial);

/* Writes the placement of every node of the training (training = 1) or
 * inference graph: backend, device, estimated cost and why, one line each. */
PLX_API plx_status plx_model_plan(plx_model *model, int32_t training, int32_t explain,
                                  void (*emit)(void *user, const char *line), void *user);

/* ---- Benchmarking a model ------------------------------------------------
 *
 * plx_model_bench times the model's compiled training step (forward, loss,
 * backward, optimizer update: one run of the training plan, as
 * plx_model_train times it) on real batches of its training data, then
 * forward passes of its inference plan at a fixed batch, with the time of
 * every node summed per (op, backend). Placement is the context's: open the
 * context with plx_context_options.backends = "onednn,cpu_blas" to measure
 * a ranking, or with no ranking for the router's own choice.
 */

typedef struct plx_bench_options {
    uint32_t struct_size;       /* sizeof(plx_bench_options) */
    int32_t warmup_steps;       /* untimed training steps first (default 3; 0: none) */
    int32_t steps;              /* timed training steps, >= 1 (default 20) */
    const char *data_dir;       /* NULL: the model file's data.dir */
    int64_t limit_train;        /* > 0: only the first N training examples (0: all) */
    int64_t inference_batch;    /* examples per inference batch (default 256; 0: no inference timing) */
    int32_t inference_runs;     /* timed inference batches, >= 1 (default 5), after one untimed */
} plx_bench_options;

/* Fills *opts with the defaults above (struct_size set). */
PLX_API void plx_bench_options_init(plx_bench_options *opts);

/* Time of one op on one backend within a plan run. */
typedef struct plx_bench_op_time {
    uint32_t struct_size;       /* set by the caller on every element */
    const char *op;             /* "core.conv2d"; owned by the context */
    const char *backend;        /* the backend these nodes ran on; owned by the context */
    int32_t nodes;              /* nodes of this op placed on this backend */
    double ms;                  /* per training step (inference batch), summed over those nodes */
    double share;               /* fraction of the summed time of every node, 0..1 */
} plx_bench_op_time;

typedef struct plx_bench_result {
    uint32_t struct_size;
    /* In (read by plx_model_bench, kept): arrays of *_cap elements for the
     * per-op times of the training step and of an inference batch, or
     * NULL / 0. The caller allocates them and sets each element's
     * struct_size (the runtime steps through the array by elements[0]'s). */
    plx_bench_op_time *train_ops;
    int32_t train_ops_cap;
    plx_bench_op_time *inference_ops;
    int32_t inference_ops_cap;
    /* Out. */
    /* (op, backend) pairs found, written largest time first; a count above
     * the cap means only the largest `cap` were written. */
    int32_t n_train_ops;
    int32_t n_inference_ops;
    int64_t batch_size;         /* training batch (the model file's) */
    int64_t steps_per_epoch;    /* of the training set used (after the validation split, last partial batch dropped) */
    int32_t warmup_steps, steps;
    double ms_per_step;         /* mean time of the timed training steps */
    double ms_per_step_min;     /* the fastest of them */
    double ms_per_step_median;  /* their median (steadier than the mean on a busy machine) */
    double examples_per_second; /* batch_size / mean step time */
    int32_t train_nodes;        /* nodes in the training plan */
    int64_t inference_batch;    /* 0 when not measured */
    int32_t inference_runs;
    double inference_ms_per_batch;      /* mean; NaN when not measured */
    double inference_images_per_second; /* NaN when not measured */
    int32_t inference_nodes;
} plx_bench_result;

/* Benchmarks `model` as described above. Batches come from the model's
 * training data (opts->data_dir overrides its directory, opts->limit_train
 * keeps a prefix), shuffled and augmented as the model file says, prepared
 * outside the timed region; inference batches are the first training
 * examples (repeated when there are fewer). The steps really train: the
 * model's weights, optimizer state and global step advance by
 * warmup_steps + steps, as plx_model_train would (use a fresh model to
 * compare configurations). opts NULL: defaults. Fails with
 * PLX_INVALID_ARGUMENT on bad options, on a model without a data section
 * or with fewer training examples than one batch, with the data loader's
 * status (PLX_IO_ERROR, PLX_NOT_FOUND...) naming the file when the data
 * cannot be read, and with the router's status naming the node when some
 * node cannot be placed; on failure *result is left untouched (its arrays
 * may have been written).
 * result->struct_size must be set (the in-fields above read within it).
 * Per-node times cost two clock reads per node (tens of nanoseconds), also
 * inside the timed steps. The model is used by one thread at a time. */
PLX_API plx_status plx_model_bench(plx_model *model, const plx_bench_options *opts, plx_bench_result *result);

#ifdef __cplusplus
}
#endif
#endif /* PLEXUS_H */

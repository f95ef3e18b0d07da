/*
 * old_minor.c — a backend as a plugin built against older headers would be:
 * it carries its own copies of the boundary structs, truncated where its
 * headers ended (the backend table ends at `run`, the descriptor at
 * `backend`, the device info at `copy_bytes_per_ns`), and sets every
 * struct_size from those copies. The runtime must load it and route ops to
 * it, never reading past the sizes it declares: each table is followed in
 * memory by slots that abort, which a reader ignoring struct_size would take
 * for the members appended since.
 *
 * With the headers at ABI 1.0 these copies are exactly the 1.0 layout (the
 * static asserts below pin every member to today's offset), so today the
 * plugin is "same minor"; as soon as a minor appends members, it becomes the
 * older-minor plugin that must keep loading, with no change here.
 *
 * Implements core.neg and core.add (same-shape f32) on host memory.
 */
#include "plugin_common.h"

#define OLD_ABI_MINOR 0

typedef struct old_device_info {
    uint32_t struct_size;
    const char *name;
    int32_t kind;
    plx_dl_device dl_device;
    uint64_t memory_bytes;
    uint64_t caps;
    double copy_bytes_per_ns;
} old_device_info;

typedef struct old_op_call {
    uint32_t struct_size;
    int32_t op_id;
    const char *op_name;
    const void *attrs;
    int32_t n_inputs;
    const plx_tensor_desc *inputs;
    int32_t n_outputs;
    const plx_tensor_desc *outputs;
} old_op_call;

typedef struct old_host_api {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    void *host;
    void (*log)(void *host, int level, const char *plugin, const char *fmt, ...);
    plx_status (*set_error)(void *host, plx_status code, const char *fmt, ...);
    void (*parallel_for)(void *host, int64_t n, int64_t grain, plx_range_fn fn, void *arg);
    int32_t (*num_threads)(void *host);
    int32_t (*op_intern)(void *host, const char *name);
    const char *(*op_name)(void *host, int32_t op_id);
} old_host_api;

typedef struct old_backend_api {
    uint32_t struct_size;
    const char *name;
    int32_t (*device_count)(void *state);
    plx_status (*device_info)(void *state, int32_t device, old_device_info *out);
    plx_status (*buffer_alloc)(void *state, int32_t device, uint64_t bytes, void **out);
    void (*buffer_free)(void *state, int32_t device, void *ptr);
    plx_status (*copy)(void *state, int32_t device, const plx_tensor_desc *src, const plx_tensor_desc *dst);
    plx_status (*synchronize)(void *state, int32_t device);
    const char *const *(*op_names)(void *state, size_t *count);
    int32_t (*supports)(void *state, int32_t device, const old_op_call *call, char *reason, size_t reason_cap);
    double (*estimate_ns)(void *state, int32_t device, const old_op_call *call);
    plx_status (*run)(void *state, int32_t device, const old_op_call *call);
} old_backend_api;

typedef struct old_plugin_desc {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    const char *name;
    const char *version;
    const char *description;
    plx_status (*probe)(const old_host_api *host, char *reason, size_t reason_cap);
    plx_status (*init)(const old_host_api *host, void **state);
    void (*shutdown)(void *state);
    const old_backend_api *backend;
} old_plugin_desc;

/* The copies are a prefix of today's structs, member for member. */
#define SAME_OFFSET(old, cur, m) _Static_assert(offsetof(old, m) == offsetof(cur, m), #old "." #m " moved")
SAME_OFFSET(old_device_info, plx_device_info, copy_bytes_per_ns);
SAME_OFFSET(old_device_info, plx_device_info, caps);
SAME_OFFSET(old_op_call, plx_op_call, outputs);
SAME_OFFSET(old_host_api, plx_host_api, set_error);
SAME_OFFSET(old_host_api, plx_host_api, op_name);
SAME_OFFSET(old_backend_api, plx_backend_api, op_names);
SAME_OFFSET(old_backend_api, plx_backend_api, supports);
SAME_OFFSET(old_backend_api, plx_backend_api, run);
SAME_OFFSET(old_plugin_desc, plx_plugin_desc, name);
SAME_OFFSET(old_plugin_desc, plx_plugin_desc, init);
SAME_OFFSET(old_plugin_desc, plx_plugin_desc, backend);
_Static_assert(sizeof(old_backend_api) <= sizeof(plx_backend_api), "old table longer than today's");
_Static_assert(sizeof(old_plugin_desc) <= sizeof(plx_plugin_desc), "old descriptor longer than today's");

typedef struct old_state {
    const old_host_api *host;
} old_state;

static void poison_slot(void)
{
    abort(); /* a reader went past this plugin's struct_size */
}

static plx_status old_init(const old_host_api *host, void **state)
{
    /* An older plugin reads only the host members it knows, after checking
     * the host's table is at least that long. */
    if (host->struct_size < sizeof(old_host_api) || host->abi_major != PLX_ABI_MAJOR)
        return PLX_ABI_MISMATCH;
    old_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return host->set_error(host->host, PLX_OUT_OF_MEMORY, "old_minor: out of memory");
    s->host = host;
    *state = s;
    return PLX_OK;
}

static void old_shutdown(void *state)
{
    tp_note_shutdown("old_minor");
    free(state);
}

static int32_t old_device_count(void *state)
{
    (void)state;
    return 1;
}

static plx_status old_device_info_fn(void *state, int32_t device, old_device_info *out)
{
    (void)state;
    if (device != 0)
        return PLX_NOT_FOUND;
    /* Writes only the members its headers know (the caller's struct may be
     * longer; it is zero-extended by the runtime). */
    out->name = "oldcpu";
    out->kind = PLX_DEVICE_KIND_CPU;
    out->dl_device = (plx_dl_device){PLX_DL_CPU, 0};
    out->memory_bytes = 0;
    out->caps = PLX_DEVICE_CAP_HOST_MEMORY;
    out->copy_bytes_per_ns = 0.0;
    return PLX_OK;
}

static const char *const old_ops[] = {"core.neg", "core.add"};

static const char *const *old_op_names(void *state, size_t *count)
{
    (void)state;
    *count = sizeof old_ops / sizeof old_ops[0];
    return old_ops;
}

/* The runtime's call struct may be longer than ours; we read our prefix. */
static plx_op_call as_call(const old_op_call *c)
{
    plx_op_call call;
    memset(&call, 0, sizeof call);
    call.struct_size = (uint32_t)sizeof call;
    call.op_id = c->op_id;
    call.op_name = c->op_name;
    call.attrs = c->attrs;
    call.n_inputs = c->n_inputs;
    call.inputs = c->inputs;
    call.n_outputs = c->n_outputs;
    call.outputs = c->outputs;
    return call;
}

static int32_t old_supports(void *state, int32_t device, const old_op_call *c, char *reason, size_t cap)
{
    (void)state;
    plx_op_call call = as_call(c);
    if (device != 0 || (c->op_id != PLX_OP_NEG && c->op_id != PLX_OP_ADD)) {
        snprintf(reason, cap, "old_minor: op not implemented");
        return 0;
    }
    return tp_check_same_shape_f32(&call, "old_minor", reason, cap);
}

static plx_status old_run(void *state, int32_t device, const old_op_call *c)
{
    old_state *s = state;
    if (device != 0)
        return s->host->set_error(s->host->host, PLX_NOT_FOUND, "old_minor: no device %d", (int)device);
    const float *a = (const float *)plx_desc_ptr(&c->inputs[0]);
    const float *b = c->n_inputs > 1 ? (const float *)plx_desc_ptr(&c->inputs[1]) : NULL;
    float *y = (float *)plx_desc_ptr(&c->outputs[0]);
    if (!tp_elementwise_f32(c->op_id, a, b, y, plx_desc_numel(&c->outputs[0])))
        return s->host->set_error(s->host->host, PLX_UNSUPPORTED, "old_minor: op %s is not implemented",
                                  c->op_name);
    return PLX_OK;
}

/* Each table, then what a reader ignoring struct_size would see next. */
static const struct {
    old_backend_api api;
    void (*appended_since[8])(void);
} backend = {
    .api =
        {
            .struct_size = sizeof(old_backend_api),
            .name = "old_minor",
            .device_count = old_device_count,
            .device_info = old_device_info_fn,
            .op_names = old_op_names,
            .supports = old_supports,
            .estimate_ns = NULL,
            .run = old_run,
        },
    .appended_since = {poison_slot, poison_slot, poison_slot, poison_slot, poison_slot, poison_slot, poison_slot,
                       poison_slot},
};

static const struct {
    old_plugin_desc desc;
    void (*appended_since[8])(void);
} plugin = {
    .desc =
        {
            .struct_size = sizeof(old_plugin_desc),
            .abi_major = PLX_ABI_MAJOR,
            .abi_minor = OLD_ABI_MINOR,
            .name = "old_minor",
            .version = "0.9.0",
            .description = "test: a backend built against older, shorter ABI structs",
            .probe = NULL,
            .init = old_init,
            .shutdown = old_shutdown,
            .backend = &backend.api,
        },
    .appended_since = {poison_slot, poison_slot, poison_slot, poison_slot, poison_slot, poison_slot, poison_slot,
                       poison_slot},
};

PLX_EXPORT const old_plugin_desc *plx_plugin_entry(void);

PLX_EXPORT const old_plugin_desc *plx_plugin_entry(void)
{
    return &plugin.desc;
}

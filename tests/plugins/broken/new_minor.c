/*
 * new_minor.c — a backend built against NEWER headers than the runtime's:
 * it declares abi_minor = PLX_ABI_MINOR + 5 and its descriptor, backend
 * table, device info and host table have members appended after today's
 * (so its struct_size values are larger). The runtime must load it, read
 * only the prefix it knows, and never call the appended slots (they abort).
 * The plugin, in turn, reads the host table only up to the host's
 * struct_size: the appended host slot it would like is missing, so it falls
 * back and says so in the log.
 *
 * Implements core.neg and core.sub (same-shape f32) on host memory.
 */
#include "plugin_common.h"

/* The "newer" structs: today's members, then appended ones. */
typedef struct new_host_api {
    plx_host_api v1;
    void *(*alloc_scratch)(void *host, size_t bytes);
} new_host_api;

typedef struct new_device_info {
    plx_device_info v1;
    int32_t numa_node;
} new_device_info;

typedef struct new_backend_api {
    plx_backend_api v1;
    plx_status (*compile_graph)(void *state, const void *graph);
    uint64_t flags;
} new_backend_api;

typedef struct new_plugin_desc {
    plx_plugin_desc v1;
    void (*suspend)(void *state);
    const char *license;
} new_plugin_desc;

typedef struct new_state {
    const plx_host_api *host;
    float *scratch;
} new_state;

static plx_status compile_graph_slot(void *state, const void *graph)
{
    (void)state;
    (void)graph;
    abort(); /* the runtime does not know this slot exists */
}

static void suspend_slot(void *state)
{
    (void)state;
    abort();
}

static plx_status new_init(const plx_host_api *host, void **state)
{
    if (host->abi_major != PLX_ABI_MAJOR || host->struct_size < offsetof(plx_host_api, op_name) + sizeof host->op_name)
        return PLX_ABI_MISMATCH;
    new_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return host->set_error(host->host, PLX_OUT_OF_MEMORY, "new_minor: out of memory");
    s->host = host;
    const new_host_api *newer = (const new_host_api *)(const void *)host;
    if (host->struct_size >= offsetof(new_host_api, alloc_scratch) + sizeof newer->alloc_scratch &&
        newer->alloc_scratch != NULL) {
        s->scratch = newer->alloc_scratch(host->host, 64);
    } else {
        host->log(host->host, PLX_LOG_INFO, "new_minor", "host table is %u bytes, ABI %u.%u: no alloc_scratch, using malloc",
                  (unsigned)host->struct_size, (unsigned)host->abi_major, (unsigned)host->abi_minor);
        s->scratch = malloc(64);
    }
    *state = s;
    return PLX_OK;
}

static void new_shutdown(void *state)
{
    new_state *s = state;
    tp_note_shutdown("new_minor");
    free(s->scratch);
    free(s);
}

static int32_t new_device_count(void *state)
{
    (void)state;
    return 1;
}

static plx_status new_device_info_fn(void *state, int32_t device, plx_device_info *out)
{
    (void)state;
    if (device != 0)
        return PLX_NOT_FOUND;
    tp_host_device(out, "newcpu");
    /* Appended member: written only when the caller's struct has room. */
    new_device_info *newer = (new_device_info *)(void *)out;
    if (out->struct_size >= offsetof(new_device_info, numa_node) + sizeof newer->numa_node)
        newer->numa_node = 0;
    return PLX_OK;
}

static const char *const new_ops[] = {"core.neg", "core.sub"};

static const char *const *new_op_names(void *state, size_t *count)
{
    (void)state;
    *count = sizeof new_ops / sizeof new_ops[0];
    return new_ops;
}

static int32_t new_supports(void *state, int32_t device, const plx_op_call *call, char *reason, size_t cap)
{
    (void)state;
    if (device != 0 || (call->op_id != PLX_OP_NEG && call->op_id != PLX_OP_SUB)) {
        snprintf(reason, cap, "new_minor: op not implemented");
        return 0;
    }
    return tp_check_same_shape_f32(call, "new_minor", reason, cap);
}

static plx_status new_run(void *state, int32_t device, const plx_op_call *call)
{
    new_state *s = state;
    if (device != 0)
        return s->host->set_error(s->host->host, PLX_NOT_FOUND, "new_minor: no device %d", (int)device);
    return tp_run_host(s->host, "new_minor", call);
}

static const new_backend_api backend = {
    .v1 =
        {
            .struct_size = sizeof(new_backend_api),
            .name = "new_minor",
            .device_count = new_device_count,
            .device_info = new_device_info_fn,
            .op_names = new_op_names,
            .supports = new_supports,
            .run = new_run,
        },
    .compile_graph = compile_graph_slot,
    .flags = ~0ull,
};

static const new_plugin_desc plugin = {
    .v1 =
        {
            .struct_size = sizeof(new_plugin_desc),
            .abi_major = PLX_ABI_MAJOR,
            .abi_minor = PLX_ABI_MINOR + 5,
            .name = "new_minor",
            .version = "2.0.0",
            .description = "test: a backend built against newer headers with appended members",
            .init = new_init,
            .shutdown = new_shutdown,
            .backend = &backend.v1,
        },
    .suspend = suspend_slot,
    .license = "MIT",
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &plugin.v1;
}

/*
 * kernel_error.c — a backend whose kernels fail. core.add fails with a
 * message through host->set_error; core.neg fails with a bare status and no
 * message. The caller of plx_op_run must get the status and a message that
 * names the op, shapes, backend, plugin and device, followed by the
 * kernel's message (or the status text when there is none), and no output.
 */
#include "plugin_common.h"

typedef struct ke_state {
    const plx_host_api *host;
} ke_state;

static plx_status ke_init(const plx_host_api *host, void **state)
{
    ke_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return PLX_OUT_OF_MEMORY;
    s->host = host;
    *state = s;
    return PLX_OK;
}

static void ke_shutdown(void *state)
{
    tp_note_shutdown("kernel_error");
    free(state);
}

static int32_t ke_device_count(void *state)
{
    (void)state;
    return 1;
}

static plx_status ke_device_info(void *state, int32_t device, plx_device_info *out)
{
    (void)state;
    (void)device;
    tp_host_device(out, "kecpu");
    return PLX_OK;
}

static const char *const ke_ops[] = {"core.add", "core.neg"};

static const char *const *ke_op_names(void *state, size_t *count)
{
    (void)state;
    *count = sizeof ke_ops / sizeof ke_ops[0];
    return ke_ops;
}

static plx_status ke_run(void *state, int32_t device, const plx_op_call *call)
{
    ke_state *s = state;
    (void)device;
    if (call->op_id == PLX_OP_NEG)
        return PLX_INTERNAL;
    return s->host->set_error(s->host->host, PLX_INVALID_ARGUMENT, "kernel_error: refusing on purpose (%lld elements)",
                              (long long)plx_desc_numel(&call->outputs[0]));
}

static const plx_backend_api backend = {
    .struct_size = sizeof(plx_backend_api),
    .name = "kernel_error",
    .device_count = ke_device_count,
    .device_info = ke_device_info,
    .op_names = ke_op_names,
    .run = ke_run,
};

static const plx_plugin_desc plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = "kernel_error",
    .version = "1.0.0",
    .description = "test: kernels that fail",
    .init = ke_init,
    .shutdown = ke_shutdown,
    .backend = &backend,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &plugin;
}

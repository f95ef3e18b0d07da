/*
 * missing_slot.c — a backend table without a required slot (run is NULL).
 * The loader must refuse it naming the slot ("backend missing_slot: required
 * slot run is NULL") and, since init already ran, shut it down at once.
 */
#include "plugin_common.h"

static plx_status ms_init(const plx_host_api *host, void **state)
{
    (void)host;
    *state = malloc(16); /* freed by shutdown, which must run after the refusal */
    return *state != NULL ? PLX_OK : PLX_OUT_OF_MEMORY;
}

static void ms_shutdown(void *state)
{
    tp_note_shutdown("missing_slot");
    free(state);
}

static int32_t ms_device_count(void *state)
{
    (void)state;
    return 1;
}

static plx_status ms_device_info(void *state, int32_t device, plx_device_info *out)
{
    (void)state;
    (void)device;
    tp_host_device(out, "mscpu");
    return PLX_OK;
}

static const char *const ms_ops[] = {"core.neg"};

static const char *const *ms_op_names(void *state, size_t *count)
{
    (void)state;
    *count = 1;
    return ms_ops;
}

static const plx_backend_api backend = {
    .struct_size = sizeof(plx_backend_api),
    .name = "missing_slot",
    .device_count = ms_device_count,
    .device_info = ms_device_info,
    .op_names = ms_op_names,
    .run = NULL,
};

static const plx_plugin_desc plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = "missing_slot",
    .version = "1.0.0",
    .description = "test: backend table without run",
    .init = ms_init,
    .shutdown = ms_shutdown,
    .backend = &backend,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &plugin;
}

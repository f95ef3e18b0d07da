/*
 * init_fail.c — a plugin whose init fails with a message set through the
 * host (as one that cannot open its device or parse its config would). The
 * loader must list it refused with "init failed: PLX_INTERNAL: <message>",
 * never register its backend, and never call its shutdown (init made no
 * state) nor anything in its backend table.
 */
#include "plugin_common.h"

static void must_not_be_called(void *state)
{
    (void)state;
    abort();
}

static int32_t no_devices(void *state)
{
    (void)state;
    abort();
}

static plx_status fail_init(const plx_host_api *host, void **state)
{
    (void)state;
    return host->set_error(host->host, PLX_INTERNAL, "frobnicator table is corrupt (checksum %08x)", 0xdeadbeefu);
}

static const char *const *no_ops(void *state, size_t *count)
{
    (void)state;
    (void)count;
    abort();
}

static plx_status no_run(void *state, int32_t device, const plx_op_call *call)
{
    (void)state;
    (void)device;
    (void)call;
    abort();
}

static plx_status no_info(void *state, int32_t device, plx_device_info *out)
{
    (void)state;
    (void)device;
    (void)out;
    abort();
}

static const plx_backend_api backend = {
    .struct_size = sizeof(plx_backend_api),
    .name = "init_fail",
    .device_count = no_devices,
    .device_info = no_info,
    .op_names = no_ops,
    .run = no_run,
};

static const plx_plugin_desc plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = "init_fail",
    .version = "1.0.0",
    .description = "test: init fails with a message",
    .init = fail_init,
    .shutdown = must_not_be_called,
    .backend = &backend,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &plugin;
}

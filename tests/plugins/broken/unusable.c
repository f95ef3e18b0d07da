/*
 * unusable.c — a plugin whose probe says it cannot work on this machine
 * (as a GPU backend without its driver would). The loader must list it
 * refused with "unusable here: no frobnicator device" and call nothing else:
 * its init and shutdown abort.
 */
#include "plugin_common.h"

static plx_status probe_absent(const plx_host_api *host, char *reason, size_t cap)
{
    (void)host;
    snprintf(reason, cap, "no frobnicator device");
    return PLX_UNAVAILABLE;
}

static plx_status must_not_init(const plx_host_api *host, void **state)
{
    (void)host;
    (void)state;
    abort();
}

static void must_not_shutdown(void *state)
{
    (void)state;
    abort();
}

static const plx_plugin_desc plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = "unusable",
    .version = "1.0.0",
    .description = "test: probe says unusable here",
    .probe = probe_absent,
    .init = must_not_init,
    .shutdown = must_not_shutdown,
    .backend = NULL,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &plugin;
}

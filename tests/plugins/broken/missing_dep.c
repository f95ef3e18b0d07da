/*
 * missing_dep.c — a plugin linked against libplexus_testdep.so, which is not
 * on the library search path at run time (as a backend whose vendor library
 * is not installed). dlopen fails; the loader must list it refused with the
 * dlerror text, which names the missing library.
 */
#include "plugin_common.h"

int plx_testdep_answer(void);

static plx_status dep_probe(const plx_host_api *host, char *reason, size_t cap)
{
    (void)host;
    if (plx_testdep_answer() != 42) {
        snprintf(reason, cap, "libplexus_testdep gave the wrong answer");
        return PLX_UNAVAILABLE;
    }
    return PLX_OK;
}

static const plx_plugin_desc plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = "missing_dep",
    .version = "1.0.0",
    .description = "test: depends on a library that is not installed",
    .probe = dep_probe,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &plugin;
}

/*
 * dup.c — built three times (DUP_VARIANT 1, 2, 3) into one directory, so a
 * single directory scan meets name clashes in name order:
 *   libplexus-dup_a.so  plugin "dup",   backend "dup"    loads
 *   libplexus-dup_b.so  plugin "dup",   backend "dup_b"  refused: duplicate plugin
 *   libplexus-dup_c.so  plugin "dup_c", backend "dup"    refused: duplicate backend
 * dup_b is refused before its init runs; dup_c after (the backend name is
 * checked at registration), so its shutdown must run at once.
 */
#include "plugin_common.h"

#if DUP_VARIANT == 1
#define PLUGIN_NAME "dup"
#define BACKEND_NAME "dup"
#define FILE_TAG "dup_a"
#elif DUP_VARIANT == 2
#define PLUGIN_NAME "dup"
#define BACKEND_NAME "dup_b"
#define FILE_TAG "dup_b"
#elif DUP_VARIANT == 3
#define PLUGIN_NAME "dup_c"
#define BACKEND_NAME "dup"
#define FILE_TAG "dup_c"
#else
#error "build with -DDUP_VARIANT=1, 2 or 3"
#endif

typedef struct dup_state {
    const plx_host_api *host;
} dup_state;

static plx_status dup_init(const plx_host_api *host, void **state)
{
    dup_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return PLX_OUT_OF_MEMORY;
    s->host = host;
    *state = s;
    return PLX_OK;
}

static void dup_shutdown(void *state)
{
    tp_note_shutdown(FILE_TAG);
    free(state);
}

static int32_t dup_device_count(void *state)
{
    (void)state;
    return 1;
}

static plx_status dup_device_info(void *state, int32_t device, plx_device_info *out)
{
    (void)state;
    (void)device;
    tp_host_device(out, "dupcpu");
    return PLX_OK;
}

static const char *const dup_ops[] = {"core.neg"};

static const char *const *dup_op_names(void *state, size_t *count)
{
    (void)state;
    *count = 1;
    return dup_ops;
}

static int32_t dup_supports(void *state, int32_t device, const plx_op_call *call, char *reason, size_t cap)
{
    (void)state;
    (void)device;
    return tp_check_same_shape_f32(call, BACKEND_NAME, reason, cap);
}

static plx_status dup_run(void *state, int32_t device, const plx_op_call *call)
{
    dup_state *s = state;
    (void)device;
    return tp_run_host(s->host, BACKEND_NAME, call);
}

static const plx_backend_api backend = {
    .struct_size = sizeof(plx_backend_api),
    .name = BACKEND_NAME,
    .device_count = dup_device_count,
    .device_info = dup_device_info,
    .op_names = dup_op_names,
    .supports = dup_supports,
    .run = dup_run,
};

static const plx_plugin_desc plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = PLUGIN_NAME,
    .version = FILE_TAG,
    .description = "test: name clashes",
    .init = dup_init,
    .shutdown = dup_shutdown,
    .backend = &backend,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &plugin;
}

/*
 * misc.c — smaller malformed plugins, one per MISC_VARIANT, each in its own
 * directory, each refused with its own reason:
 *   1 entry_null    plx_plugin_entry returns NULL
 *   2 tiny_desc     descriptor struct_size too small for the fixed fields
 *   3 bad_name      plugin name not [a-z0-9_]+
 *   4 zero_devices  backend reports no devices (shut down after refusal)
 *   5 no_copy       device with its own memory but no copy slot
 *   6 short_table   backend table shorter than ABI 1.0's (ends before run)
 */
#include "plugin_common.h"

#if MISC_VARIANT == 1
#define TAG "entry_null"
#elif MISC_VARIANT == 2
#define TAG "tiny_desc"
#elif MISC_VARIANT == 3
#define TAG "bad_name"
#elif MISC_VARIANT == 4
#define TAG "zero_devices"
#elif MISC_VARIANT == 5
#define TAG "no_copy"
#elif MISC_VARIANT == 6
#define TAG "short_table"
#else
#error "build with -DMISC_VARIANT=1..6"
#endif

static plx_status misc_init(const plx_host_api *host, void **state)
{
    (void)host;
    *state = malloc(8);
    return *state != NULL ? PLX_OK : PLX_OUT_OF_MEMORY;
}

static void misc_shutdown(void *state)
{
    tp_note_shutdown(TAG);
    free(state);
}

static int32_t misc_device_count(void *state)
{
    (void)state;
    return MISC_VARIANT == 4 ? 0 : 1;
}

static plx_status misc_device_info(void *state, int32_t device, plx_device_info *out)
{
    (void)state;
    (void)device;
    tp_host_device(out, MISC_VARIANT == 5 ? "fake0" : "misccpu");
    if (MISC_VARIANT == 5) {
        out->caps = 0;
        out->dl_device = (plx_dl_device){PLX_DL_EXT_DEV, 0};
    }
    return PLX_OK;
}

static plx_status misc_alloc(void *state, int32_t device, uint64_t bytes, void **out)
{
    (void)state;
    (void)device;
    *out = aligned_alloc(64, (size_t)(bytes + 63u) / 64u * 64u);
    return *out != NULL ? PLX_OK : PLX_OUT_OF_MEMORY;
}

static void misc_free(void *state, int32_t device, void *ptr)
{
    (void)state;
    (void)device;
    free(ptr);
}

static const char *const misc_ops[] = {"core.neg"};

static const char *const *misc_op_names(void *state, size_t *count)
{
    (void)state;
    *count = 1;
    return misc_ops;
}

static plx_status misc_run(void *state, int32_t device, const plx_op_call *call)
{
    (void)state;
    (void)device;
    (void)call;
    abort(); /* never registered, so never called */
}

static const plx_backend_api backend = {
#if MISC_VARIANT == 6
    .struct_size = offsetof(plx_backend_api, run),
#else
    .struct_size = sizeof(plx_backend_api),
#endif
    .name = TAG,
    .device_count = misc_device_count,
    .device_info = misc_device_info,
    .buffer_alloc = misc_alloc,
    .buffer_free = misc_free,
    .copy = NULL,
    .op_names = misc_op_names,
    .run = misc_run,
};

static const plx_plugin_desc plugin = {
#if MISC_VARIANT == 2
    .struct_size = 4,
#else
    .struct_size = sizeof(plx_plugin_desc),
#endif
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
#if MISC_VARIANT == 3
    .name = "Bad-Name",
#else
    .name = TAG,
#endif
    .version = "1.0.0",
    .description = "test: malformed in one way",
    .init = misc_init,
    .shutdown = misc_shutdown,
    .backend = &backend,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return MISC_VARIANT == 1 ? NULL : &plugin;
}

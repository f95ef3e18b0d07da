/*
 * planted.c — a second host-memory backend for routing tests. It implements
 * core.add for same-shape f32 inputs and claims (via estimate_ns) to be far
 * cheaper than anything else, so:
 *  - unranked, the router must pick it by cost;
 *  - a ranking "cpu_blas,planted" must make cpu_blas win anyway;
 *  - with "planted,cpu_blas", a broadcasting add (which it declines with a
 *    reason) falls back to cpu_blas, or fails in strict mode naming the
 *    reason.
 * Its support and cost queries also check the runtime's promise that they
 * see no data pointers.
 *
 * Built with PLANTED_SLOW=1 it is "slow": the same claim, but each run
 * sleeps 3 ms first, so measured routing (calibration) must find it out.
 * Built with PLANTED_HUGE_LAYOUT=1 it is "hugelayout": it claims a layout
 * of its own (ABI 1.2) whose size is absurd (near 2^64, which would wrap
 * the executor's arena arithmetic), and accepts any layouts; the runtime
 * must refuse the size and keep values plain.
 */
#include "plugin_common.h"

#include <time.h>

#if defined(PLANTED_SLOW)
#define PLANTED_NAME "slow"
#define PLANTED_DEVICE "slowcpu"
#elif defined(PLANTED_HUGE_LAYOUT)
#define PLANTED_NAME "hugelayout"
#define PLANTED_DEVICE "hugecpu"
#else
#define PLANTED_NAME "planted"
#define PLANTED_DEVICE "plantcpu"
#endif

typedef struct planted_state {
    const plx_host_api *host;
} planted_state;

static plx_status planted_init(const plx_host_api *host, void **state)
{
    planted_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return PLX_OUT_OF_MEMORY;
    s->host = host;
    *state = s;
    return PLX_OK;
}

static void planted_shutdown(void *state)
{
    tp_note_shutdown(PLANTED_NAME);
    free(state);
}

static int32_t planted_device_count(void *state)
{
    (void)state;
    return 1;
}

static plx_status planted_device_info(void *state, int32_t device, plx_device_info *out)
{
    (void)state;
    if (device != 0)
        return PLX_NOT_FOUND;
    tp_host_device(out, PLANTED_DEVICE);
    return PLX_OK;
}

static const char *const planted_ops[] = {"core.add"};

static const char *const *planted_op_names(void *state, size_t *count)
{
    (void)state;
    *count = 1;
    return planted_ops;
}

static int has_data(const plx_op_call *call)
{
    for (int32_t i = 0; i < call->n_inputs; i++)
        if (call->inputs[i].data != NULL)
            return 1;
    for (int32_t i = 0; i < call->n_outputs; i++)
        if (call->outputs[i].data != NULL)
            return 1;
    return 0;
}

static int32_t planted_supports(void *state, int32_t device, const plx_op_call *call, char *reason, size_t cap)
{
    (void)state;
    if (has_data(call)) {
        snprintf(reason, cap, "planted: the support query was given data pointers");
        return 0;
    }
    if (device != 0 || call->op_id != PLX_OP_ADD) {
        snprintf(reason, cap, "planted: op not implemented");
        return 0;
    }
    return tp_check_same_shape_f32(call, "planted", reason, cap);
}

static double planted_estimate_ns(void *state, int32_t device, const plx_op_call *call)
{
    (void)state;
    (void)device;
    return has_data(call) ? 1e12 : 1.0; /* "very cheap" */
}

#ifdef PLANTED_HUGE_LAYOUT
static uint64_t planted_layout_bytes(void *state, int32_t device, const plx_tensor_desc *t)
{
    (void)state;
    (void)device;
    (void)t;
    return UINT64_MAX - 5;
}
#endif

static plx_status planted_run(void *state, int32_t device, const plx_op_call *call)
{
    planted_state *s = state;
    (void)device;
#ifdef PLANTED_SLOW
    struct timespec pause = {0, 3000000};
    while (nanosleep(&pause, &pause) != 0)
        ;
#endif
    return tp_run_host(s->host, PLANTED_NAME, call);
}

static const plx_backend_api backend = {
    .struct_size = sizeof(plx_backend_api),
    .name = PLANTED_NAME,
    .device_count = planted_device_count,
    .device_info = planted_device_info,
    .op_names = planted_op_names,
    .supports = planted_supports,
    .estimate_ns = planted_estimate_ns,
    .run = planted_run,
#ifdef PLANTED_HUGE_LAYOUT
    .layout_bytes = planted_layout_bytes,
#endif
};

static const plx_plugin_desc plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = PLANTED_NAME,
    .version = "1.0.0",
    .description = "test: a cheap-claiming host backend for routing",
    .init = planted_init,
    .shutdown = planted_shutdown,
    .backend = &backend,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &plugin;
}

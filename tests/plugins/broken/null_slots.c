/*
 * null_slots.c — the smallest valid backend: every optional slot is NULL
 * (probe, init, shutdown, supports, estimate_ns, synchronize, copy and the
 * buffer functions), so it has no state and computes on host memory. It
 * must load and work: NULL means "not provided", and the runtime falls back
 * (always usable, no state, accepts every call, estimates cost itself).
 *
 * Implements core.mul and core.neg for same-shape f32. With no support
 * query it is offered every call of those ops, so run() itself refuses
 * others (without a message: it has no host table to write one with).
 */
#include "plugin_common.h"

static int32_t ns_device_count(void *state)
{
    (void)state;
    return 1;
}

static plx_status ns_device_info(void *state, int32_t device, plx_device_info *out)
{
    if (state != NULL || device != 0)
        return PLX_NOT_FOUND;
    tp_host_device(out, "nullcpu");
    return PLX_OK;
}

static const char *const ns_ops[] = {"core.mul", "core.neg"};

static const char *const *ns_op_names(void *state, size_t *count)
{
    (void)state;
    *count = sizeof ns_ops / sizeof ns_ops[0];
    return ns_ops;
}

static plx_status ns_run(void *state, int32_t device, const plx_op_call *call)
{
    char reason[64];
    if (state != NULL || device != 0 || !tp_check_same_shape_f32(call, "null_slots", reason, sizeof reason))
        return PLX_UNSUPPORTED;
    const float *a = plx_desc_ptr(&call->inputs[0]);
    const float *b = call->n_inputs > 1 ? plx_desc_ptr(&call->inputs[1]) : NULL;
    if (!tp_elementwise_f32(call->op_id, a, b, plx_desc_ptr(&call->outputs[0]), plx_desc_numel(&call->outputs[0])))
        return PLX_UNSUPPORTED;
    return PLX_OK;
}

static const plx_backend_api backend = {
    .struct_size = sizeof(plx_backend_api),
    .name = "null_slots",
    .device_count = ns_device_count,
    .device_info = ns_device_info,
    .buffer_alloc = NULL,
    .buffer_free = NULL,
    .copy = NULL,
    .synchronize = NULL,
    .op_names = ns_op_names,
    .supports = NULL,
    .estimate_ns = NULL,
    .run = ns_run,
};

static const plx_plugin_desc plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = "null_slots",
    .version = NULL, /* optional too: listed as "" */
    .description = NULL,
    .probe = NULL,
    .init = NULL,
    .shutdown = NULL,
    .backend = &backend,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &plugin;
}

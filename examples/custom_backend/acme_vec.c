/*
 * acme_vec.c — an example third-party Plexus backend, built out of tree
 * against the installed headers (see README.md and the Makefile).
 *
 * It implements three core ops for same-shape f32 tensors on host memory:
 * core.relu, core.add and core.mul. Anything else (other ops, other dtypes,
 * broadcasting) it declines through its support query, with a reason, and
 * the router gives the call to another backend (cpu_blas implements every
 * core op).
 *
 * What it shows:
 *  - one exported symbol, plx_plugin_entry, returning a static descriptor;
 *    everything else is static and the build uses -fvisibility=hidden;
 *  - every struct_size set from the headers it was built with, and host
 *    table members read only after checking the host's struct_size
 *    (PLX_HAS_MEMBER), so it keeps working with newer and older runtimes;
 *  - per-context state made by init and freed by shutdown (no globals);
 *  - parallel loops through host->parallel_for, so it shares the runtime's
 *    thread budget instead of starting threads of its own;
 *  - errors returned as a status with a message via host->set_error.
 */
#include <plexus_plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct acme_state {
    const plx_host_api *host;
    int have_parallel_for;
} acme_state;

static plx_status acme_init(const plx_host_api *host, void **state)
{
    if (!PLX_HAS_MEMBER(host, plx_host_api, set_error) || host->set_error == NULL)
        return PLX_ABI_MISMATCH;
    acme_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return host->set_error(host->host, PLX_OUT_OF_MEMORY, "acme_vec: out of memory");
    s->host = host;
    s->have_parallel_for = PLX_HAS_MEMBER(host, plx_host_api, parallel_for) && host->parallel_for != NULL;
    *state = s;
    return PLX_OK;
}

static void acme_shutdown(void *state)
{
    free(state);
}

static int32_t acme_device_count(void *state)
{
    (void)state;
    return 1;
}

static plx_status acme_device_info(void *state, int32_t device, plx_device_info *out)
{
    (void)state;
    if (device != 0)
        return PLX_NOT_FOUND;
    out->name = "acme0";
    out->kind = PLX_DEVICE_KIND_CPU;
    out->dl_device = (plx_dl_device){PLX_DL_CPU, 0};
    out->memory_bytes = 0;
    out->caps = PLX_DEVICE_CAP_HOST_MEMORY; /* shares tensors with the runtime: no copies */
    out->copy_bytes_per_ns = 0.0;
    return PLX_OK;
}

static const char *const acme_ops[] = {"core.relu", "core.add", "core.mul"};

static const char *const *acme_op_names(void *state, size_t *count)
{
    (void)state;
    *count = sizeof acme_ops / sizeof acme_ops[0];
    return acme_ops;
}

static int is_f32(const plx_tensor_desc *d)
{
    return d->dtype.code == PLX_DTYPE_CODE_FLOAT && d->dtype.bits == 32 && d->dtype.lanes == 1;
}

static int same_shape(const plx_tensor_desc *a, const plx_tensor_desc *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int32_t i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

static int32_t acme_supports(void *state, int32_t device, const plx_op_call *call, char *reason, size_t cap)
{
    (void)state;
    if (device != 0 || (call->op_id != PLX_OP_RELU && call->op_id != PLX_OP_ADD && call->op_id != PLX_OP_MUL)) {
        snprintf(reason, cap, "acme_vec does not implement %s", call->op_name);
        return 0;
    }
    for (int32_t i = 0; i < call->n_inputs; i++) {
        if (!is_f32(&call->inputs[i])) {
            snprintf(reason, cap, "acme_vec: f32 only");
            return 0;
        }
        if (!same_shape(&call->inputs[i], &call->outputs[0])) {
            snprintf(reason, cap, "acme_vec: no broadcasting (inputs must have the output's shape)");
            return 0;
        }
    }
    return 1;
}

/* A made-up cost model: a fixed call overhead plus a per-element cost. A
 * real backend would return numbers it has measured; the router compares
 * them with the other backends' estimates to pick the cheapest. */
static double acme_estimate_ns(void *state, int32_t device, const plx_op_call *call)
{
    (void)state;
    (void)device;
    return 100.0 + 0.02 * (double)plx_desc_numel(&call->outputs[0]);
}

typedef struct acme_job {
    int32_t op_id;
    const float *a, *b;
    float *y;
} acme_job;

static void acme_chunk(void *arg, int64_t begin, int64_t end)
{
    const acme_job *j = arg;
    switch (j->op_id) {
    case PLX_OP_RELU:
        for (int64_t i = begin; i < end; i++)
            j->y[i] = j->a[i] > 0.0f ? j->a[i] : 0.0f;
        break;
    case PLX_OP_ADD:
        for (int64_t i = begin; i < end; i++)
            j->y[i] = j->a[i] + j->b[i];
        break;
    default: /* PLX_OP_MUL */
        for (int64_t i = begin; i < end; i++)
            j->y[i] = j->a[i] * j->b[i];
        break;
    }
}

static plx_status acme_run(void *state, int32_t device, const plx_op_call *call)
{
    acme_state *s = state;
    const plx_host_api *h = s->host;
    char reason[128];
    if (!acme_supports(state, device, call, reason, sizeof reason))
        return h->set_error(h->host, PLX_UNSUPPORTED, "%s", reason);
    acme_job job = {
        .op_id = call->op_id,
        .a = plx_desc_ptr(&call->inputs[0]),
        .b = call->n_inputs > 1 ? plx_desc_ptr(&call->inputs[1]) : NULL,
        .y = plx_desc_ptr(&call->outputs[0]),
    };
    int64_t n = plx_desc_numel(&call->outputs[0]);
    if (s->have_parallel_for)
        h->parallel_for(h->host, n, 16384, acme_chunk, &job);
    else
        acme_chunk(&job, 0, n);
    return PLX_OK;
}

static const plx_backend_api acme_backend = {
    .struct_size = sizeof(plx_backend_api),
    .name = "acme_vec",
    .device_count = acme_device_count,
    .device_info = acme_device_info,
    .buffer_alloc = NULL, /* host memory: the runtime's tensors are used in place */
    .buffer_free = NULL,
    .copy = NULL,
    .synchronize = NULL, /* run() is synchronous */
    .op_names = acme_op_names,
    .supports = acme_supports,
    .estimate_ns = acme_estimate_ns,
    .run = acme_run,
};

static const plx_plugin_desc acme_plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = "acme_vec",
    .version = "1.0.0",
    .description = "example third-party backend: relu, add and mul in f32",
    .probe = NULL, /* always usable: plain C, no device to look for */
    .init = acme_init,
    .shutdown = acme_shutdown,
    .backend = &acme_backend,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &acme_plugin;
}

/*
 * cpu_blas.c — the reference backend: descriptor, device, support query,
 * cost estimate and dispatch over the op family tables.
 *
 * It computes on host memory (tensors are shared with the runtime, never
 * copied), uses OpenBLAS for GEMM-shaped work and the runtime's thread pool
 * for everything else. OpenBLAS gets the context's thread budget; since our
 * pool's workers sleep while a GEMM runs, the two never oversubscribe.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_blas.h"

typedef struct family_ref {
    const cpu_kernel *table;
    const size_t *count;
} family_ref;

static const family_ref families[] = {
    {cpu_kernels_elementwise, &cpu_kernels_elementwise_count},
    {cpu_kernels_reduce, &cpu_kernels_reduce_count},
    {cpu_kernels_matmul, &cpu_kernels_matmul_count},
    {cpu_kernels_conv, &cpu_kernels_conv_count},
    {cpu_kernels_pool, &cpu_kernels_pool_count},
    {cpu_kernels_norm, &cpu_kernels_norm_count},
    {cpu_kernels_softmax, &cpu_kernels_softmax_count},
    {cpu_kernels_loss, &cpu_kernels_loss_count},
    {cpu_kernels_random, &cpu_kernels_random_count},
    {cpu_kernels_embedding, &cpu_kernels_embedding_count},
    {cpu_kernels_layout, &cpu_kernels_layout_count},
    {cpu_kernels_optim, &cpu_kernels_optim_count},
};

static const char *const core_names[PLX_OP_CORE_COUNT_] = {
#define NAME_(id, name) name,
    PLX_CORE_OPS(NAME_)
#undef NAME_
};

/* Per-context state: the kernel index by op id and the op name list. */
typedef struct cpu_backend_state {
    cpu_state base;
    const cpu_kernel *by_id[PLX_OP_CORE_COUNT_];
    const char *names[PLX_OP_CORE_COUNT_];
    size_t n_names;
} cpu_backend_state;

static plx_status cpu_init(const plx_host_api *host, void **state)
{
    if (host->parallel_for == NULL || host->set_error == NULL || host->num_threads == NULL)
        return PLX_ABI_MISMATCH;
    cpu_backend_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return host->set_error(host->host, PLX_OUT_OF_MEMORY, "cpu_blas: out of memory");
    s->base.host = host;
    s->base.threads = host->num_threads(host->host);
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (size_t i = 0; i < *families[f].count; i++) {
            const cpu_kernel *k = &families[f].table[i];
            if (k->run != NULL && k->op_id >= 0 && k->op_id < PLX_OP_CORE_COUNT_)
                s->by_id[k->op_id] = k;
        }
    for (int32_t id = 0; id < PLX_OP_CORE_COUNT_; id++)
        if (s->by_id[id] != NULL)
            s->names[s->n_names++] = core_names[id];
    /* OpenBLAS threads count against the same budget as our pool. */
    openblas_set_num_threads(s->base.threads);
    *state = s;
    return PLX_OK;
}

static void cpu_shutdown(void *state)
{
    free(state);
}

static int32_t cpu_device_count(void *state)
{
    (void)state;
    return 1;
}

static plx_status cpu_device_info(void *state, int32_t device, plx_device_info *out)
{
    (void)state;
    if (device != 0)
        return PLX_NOT_FOUND;
    out->name = "cpu0";
    out->kind = PLX_DEVICE_KIND_CPU;
    out->dl_device = (plx_dl_device){PLX_DL_CPU, 0};
    out->memory_bytes = 0;
    out->caps = PLX_DEVICE_CAP_HOST_MEMORY;
    out->copy_bytes_per_ns = 0.0;
    return PLX_OK;
}

static const char *const *cpu_op_names(void *state, size_t *count)
{
    cpu_backend_state *s = state;
    *count = s->n_names;
    return s->names;
}

static bool is_f32_or_nonfloat(plx_dtype t)
{
    bool is_float = t.code == PLX_DTYPE_CODE_FLOAT || t.code == PLX_DTYPE_CODE_BFLOAT;
    return !is_float || (t.code == PLX_DTYPE_CODE_FLOAT && t.bits == 32);
}

static int32_t cpu_supports(void *state, int32_t device, const plx_op_call *call, char *reason, size_t cap)
{
    cpu_backend_state *s = state;
    if (device != 0 || call->op_id < 0 || call->op_id >= PLX_OP_CORE_COUNT_ || s->by_id[call->op_id] == NULL) {
        snprintf(reason, cap, "op not implemented");
        return 0;
    }
    const cpu_kernel *k = s->by_id[call->op_id];
    if (k->supports != NULL)
        return k->supports(call, reason, cap) ? 1 : 0;
    for (int32_t i = 0; i < call->n_inputs + call->n_outputs; i++) {
        const plx_tensor_desc *d = i < call->n_inputs ? &call->inputs[i] : &call->outputs[i - call->n_inputs];
        if (!is_f32_or_nonfloat(d->dtype)) {
            snprintf(reason, cap, "float tensors must be f32 (%s %d is not)", i < call->n_inputs ? "input" : "output",
                     (int)(i < call->n_inputs ? i : i - call->n_inputs));
            return 0;
        }
    }
    return 1;
}

static plx_status cpu_run(void *state, int32_t device, const plx_op_call *call)
{
    cpu_backend_state *s = state;
    if (device != 0 || call->op_id < 0 || call->op_id >= PLX_OP_CORE_COUNT_ || s->by_id[call->op_id] == NULL)
        return CPU_FAIL(&s->base, PLX_UNSUPPORTED, "op %s is not implemented", call->op_name);
    return s->by_id[call->op_id]->run(&s->base, call);
}

static const plx_backend_api cpu_backend = {
    .struct_size = sizeof(plx_backend_api),
    .name = "cpu_blas",
    .device_count = cpu_device_count,
    .device_info = cpu_device_info,
    .buffer_alloc = NULL,
    .buffer_free = NULL,
    .copy = NULL,
    .synchronize = NULL,
    .op_names = cpu_op_names,
    .supports = cpu_supports,
    .estimate_ns = NULL, /* the runtime's estimate from op work is calibrated for this backend */
    .run = cpu_run,
};

static const plx_plugin_desc cpu_plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = "cpu_blas",
    .version = "0.1.0",
    .description = "reference CPU backend: every core op in f32 on OpenBLAS and the runtime thread pool",
    .probe = NULL,
    .init = cpu_init,
    .shutdown = cpu_shutdown,
    .backend = &cpu_backend,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &cpu_plugin;
}

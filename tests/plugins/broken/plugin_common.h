/*
 * plugin_common.h — small helpers shared by the test plugins in this
 * directory (deliberately broken and third-party-style backends loaded by
 * tests/runtime/test_loader.c). Everything here is static: a test plugin
 * exports nothing but plx_plugin_entry.
 */
#ifndef PLX_TEST_PLUGIN_COMMON_H
#define PLX_TEST_PLUGIN_COMMON_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../../abi/plexus_plugin.h"

/* Appends "<name>\n" to the file named by $PLX_TEST_SHUTDOWN_LOG, if set, so
 * a test can see which plugins were shut down and in what order. */
static inline void tp_note_shutdown(const char *name)
{
    const char *path = getenv("PLX_TEST_SHUTDOWN_LOG");
    if (path == NULL || *path == '\0')
        return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    char line[128];
    int n = snprintf(line, sizeof line, "%s\n", name);
    if (n > 0 && (size_t)n < sizeof line) {
        ssize_t w = write(fd, line, (size_t)n);
        (void)w;
    }
    close(fd);
}

static inline int tp_is_f32(const plx_tensor_desc *d)
{
    return d->dtype.code == PLX_DTYPE_CODE_FLOAT && d->dtype.bits == 32 && d->dtype.lanes == 1;
}

static inline int tp_same_shape(const plx_tensor_desc *a, const plx_tensor_desc *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int32_t i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

/* 1 when every input and output is f32 with output 0's shape; otherwise 0
 * with a reason. */
static inline int32_t tp_check_same_shape_f32(const plx_op_call *call, const char *who, char *reason, size_t cap)
{
    if (call->n_outputs < 1) {
        snprintf(reason, cap, "%s: no output", who);
        return 0;
    }
    for (int32_t i = 0; i < call->n_inputs + call->n_outputs; i++) {
        const plx_tensor_desc *d = i < call->n_inputs ? &call->inputs[i] : &call->outputs[i - call->n_inputs];
        if (!tp_is_f32(d)) {
            snprintf(reason, cap, "%s: f32 only", who);
            return 0;
        }
        if (!tp_same_shape(d, &call->outputs[0])) {
            snprintf(reason, cap, "%s: only same-shape inputs (no broadcasting)", who);
            return 0;
        }
    }
    return 1;
}

/* y = f(a[, b]) over n compact f32 elements, for the few ops these plugins
 * implement. Returns 0 for an op it does not know. */
static inline int tp_elementwise_f32(int32_t op_id, const float *a, const float *b, float *y, int64_t n)
{
    switch (op_id) {
    case PLX_OP_NEG:
        for (int64_t i = 0; i < n; i++)
            y[i] = -a[i];
        return 1;
    case PLX_OP_RELU:
        for (int64_t i = 0; i < n; i++)
            y[i] = a[i] > 0.0f ? a[i] : 0.0f;
        return 1;
    case PLX_OP_ADD:
        for (int64_t i = 0; i < n; i++)
            y[i] = a[i] + b[i];
        return 1;
    case PLX_OP_SUB:
        for (int64_t i = 0; i < n; i++)
            y[i] = a[i] - b[i];
        return 1;
    case PLX_OP_MUL:
        for (int64_t i = 0; i < n; i++)
            y[i] = a[i] * b[i];
        return 1;
    default:
        return 0;
    }
}

/* Runs one of the ops above on host-memory descriptors (as a kernel does). */
static inline plx_status tp_run_host(const plx_host_api *host, const char *who, const plx_op_call *call)
{
    const float *a = call->n_inputs > 0 ? (const float *)plx_desc_ptr(&call->inputs[0]) : NULL;
    const float *b = call->n_inputs > 1 ? (const float *)plx_desc_ptr(&call->inputs[1]) : NULL;
    float *y = (float *)plx_desc_ptr(&call->outputs[0]);
    if (!tp_elementwise_f32(call->op_id, a, b, y, plx_desc_numel(&call->outputs[0])))
        return host->set_error(host->host, PLX_UNSUPPORTED, "%s: op %s is not implemented", who, call->op_name);
    return PLX_OK;
}

/* Fills a host-memory CPU device. */
static inline void tp_host_device(plx_device_info *out, const char *name)
{
    out->name = name;
    out->kind = PLX_DEVICE_KIND_CPU;
    out->dl_device = (plx_dl_device){PLX_DL_CPU, 0};
    out->memory_bytes = 0;
    out->caps = PLX_DEVICE_CAP_HOST_MEMORY;
    out->copy_bytes_per_ns = 0.0;
}

#endif

/*
 * devmem.c — a backend with its own (fake) device memory: its device has no
 * PLX_DEVICE_CAP_HOST_MEMORY, and buffer_alloc/buffer_free/copy manage
 * "device" buffers (malloc'd, but the runtime must not know that). It
 * exercises the runtime's copy-in / run / copy-out path:
 *  - run() refuses any tensor that is not one of its live device buffers;
 *  - copy() requires exactly one side on the device, the other on the host;
 *  - freed buffers are scribbled over, so a runtime that read results from
 *    device memory without copying them out would see garbage;
 *  - at shutdown it logs its counters (INFO) and any leaked buffers (ERROR),
 *    which the test reads through the context's log callback.
 * Implements core.add, core.relu and core.neg for same-shape f32.
 */
#include <pthread.h>

#include "plugin_common.h"

#define MAX_BUFFERS 256

typedef struct dev_state {
    const plx_host_api *host;
    pthread_mutex_t lock;
    void *live[MAX_BUFFERS];
    size_t live_bytes[MAX_BUFFERS];
    size_t allocs, frees, copies_in, copies_out, runs, bad_frees;
} dev_state;

static plx_status dev_init(const plx_host_api *host, void **state)
{
    dev_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return host->set_error(host->host, PLX_OUT_OF_MEMORY, "devmem: out of memory");
    s->host = host;
    pthread_mutex_init(&s->lock, NULL);
    *state = s;
    return PLX_OK;
}

static void dev_shutdown(void *state)
{
    dev_state *s = state;
    size_t live = 0;
    for (size_t i = 0; i < MAX_BUFFERS; i++)
        if (s->live[i] != NULL) {
            live++;
            free(s->live[i]);
        }
    s->host->log(s->host->host, PLX_LOG_INFO, "devmem",
                 "stats allocs=%zu frees=%zu copies_in=%zu copies_out=%zu runs=%zu", s->allocs, s->frees,
                 s->copies_in, s->copies_out, s->runs);
    if (live != 0 || s->bad_frees != 0)
        s->host->log(s->host->host, PLX_LOG_ERROR, "devmem", "%zu device buffers leaked, %zu bad frees", live,
                     s->bad_frees);
    pthread_mutex_destroy(&s->lock);
    tp_note_shutdown("devmem");
    free(s);
}

static int32_t dev_device_count(void *state)
{
    (void)state;
    return 1;
}

static plx_status dev_device_info(void *state, int32_t device, plx_device_info *out)
{
    (void)state;
    if (device != 0)
        return PLX_NOT_FOUND;
    out->name = "fake0";
    out->kind = PLX_DEVICE_KIND_ACCELERATOR;
    out->dl_device = (plx_dl_device){PLX_DL_EXT_DEV, 0};
    out->memory_bytes = 1ull << 30;
    out->caps = 0; /* its own memory */
    out->copy_bytes_per_ns = 1.0;
    return PLX_OK;
}

static plx_status dev_alloc(void *state, int32_t device, uint64_t bytes, void **out)
{
    dev_state *s = state;
    if (device != 0)
        return s->host->set_error(s->host->host, PLX_NOT_FOUND, "devmem: no device %d", (int)device);
    size_t rounded = (size_t)((bytes + 63u) / 64u * 64u);
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (p == NULL)
        return s->host->set_error(s->host->host, PLX_OUT_OF_MEMORY, "devmem: cannot allocate %llu bytes",
                                  (unsigned long long)bytes);
    memset(p, 0xA5, rounded ? rounded : 64);
    pthread_mutex_lock(&s->lock);
    size_t slot = MAX_BUFFERS;
    for (size_t i = 0; i < MAX_BUFFERS && slot == MAX_BUFFERS; i++)
        if (s->live[i] == NULL)
            slot = i;
    if (slot < MAX_BUFFERS) {
        s->live[slot] = p;
        s->live_bytes[slot] = (size_t)bytes;
        s->allocs++;
    }
    pthread_mutex_unlock(&s->lock);
    if (slot == MAX_BUFFERS) {
        free(p);
        return s->host->set_error(s->host->host, PLX_OUT_OF_MEMORY, "devmem: more than %d live buffers",
                                  MAX_BUFFERS);
    }
    *out = p;
    return PLX_OK;
}

static void dev_free(void *state, int32_t device, void *ptr)
{
    dev_state *s = state;
    (void)device;
    if (ptr == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    size_t slot = MAX_BUFFERS;
    for (size_t i = 0; i < MAX_BUFFERS; i++)
        if (s->live[i] == ptr)
            slot = i;
    if (slot < MAX_BUFFERS) {
        memset(ptr, 0x5A, s->live_bytes[slot]);
        s->live[slot] = NULL;
        s->frees++;
    } else
        s->bad_frees++;
    pthread_mutex_unlock(&s->lock);
    if (slot < MAX_BUFFERS)
        free(ptr);
}

/* Bytes of live device buffer `p`, or 0 if p is not one. */
static size_t live_size(dev_state *s, const void *p)
{
    size_t bytes = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < MAX_BUFFERS; i++)
        if (s->live[i] != NULL && s->live[i] == p)
            bytes = s->live_bytes[i] ? s->live_bytes[i] : 1;
    pthread_mutex_unlock(&s->lock);
    return bytes;
}

static size_t desc_bytes(const plx_tensor_desc *d)
{
    return (size_t)plx_desc_numel(d) * plx_dtype_size(d->dtype);
}

static int is_compact(const plx_tensor_desc *d)
{
    if (d->strides == NULL)
        return 1;
    int64_t expect = 1;
    for (int32_t i = d->ndim; i-- > 0;) {
        if (d->shape[i] != 1 && d->strides[i] != expect)
            return 0;
        expect *= d->shape[i];
    }
    return 1;
}

static plx_status dev_copy(void *state, int32_t device, const plx_tensor_desc *src, const plx_tensor_desc *dst)
{
    dev_state *s = state;
    const plx_host_api *h = s->host;
    if (device != 0)
        return h->set_error(h->host, PLX_NOT_FOUND, "devmem: no device %d", (int)device);
    int in = src->device.device_type == PLX_DL_CPU && dst->device.device_type == PLX_DL_EXT_DEV;
    int out = src->device.device_type == PLX_DL_EXT_DEV && dst->device.device_type == PLX_DL_CPU;
    if (!in && !out)
        return h->set_error(h->host, PLX_INVALID_ARGUMENT, "devmem: copy from device type %d to %d",
                            (int)src->device.device_type, (int)dst->device.device_type);
    if (!tp_same_shape(src, dst) || !plx_dtype_equal(src->dtype, dst->dtype))
        return h->set_error(h->host, PLX_SHAPE_MISMATCH, "devmem: copy between different shapes or dtypes");
    if (!is_compact(src) || !is_compact(dst))
        return h->set_error(h->host, PLX_UNSUPPORTED, "devmem: strided copies are not supported");
    const plx_tensor_desc *dev_side = in ? dst : src;
    size_t bytes = desc_bytes(src);
    if (dev_side->byte_offset != 0 || live_size(s, dev_side->data) < bytes)
        return h->set_error(h->host, PLX_INVALID_ARGUMENT, "devmem: %s is not a device buffer of %zu bytes",
                            in ? "destination" : "source", bytes);
    memcpy(plx_desc_ptr(dst), plx_desc_ptr(src), bytes);
    pthread_mutex_lock(&s->lock);
    if (in)
        s->copies_in++;
    else
        s->copies_out++;
    pthread_mutex_unlock(&s->lock);
    return PLX_OK;
}

static const char *const dev_ops[] = {"core.add", "core.relu", "core.neg"};

static const char *const *dev_op_names(void *state, size_t *count)
{
    (void)state;
    *count = sizeof dev_ops / sizeof dev_ops[0];
    return dev_ops;
}

static int32_t dev_supports(void *state, int32_t device, const plx_op_call *call, char *reason, size_t cap)
{
    (void)state;
    if (device != 0) {
        snprintf(reason, cap, "devmem: no such device");
        return 0;
    }
    return tp_check_same_shape_f32(call, "devmem", reason, cap);
}

static double dev_estimate_ns(void *state, int32_t device, const plx_op_call *call)
{
    (void)state;
    (void)device;
    return 10.0 + 0.001 * (double)plx_desc_numel(&call->outputs[0]);
}

static plx_status dev_run(void *state, int32_t device, const plx_op_call *call)
{
    dev_state *s = state;
    const plx_host_api *h = s->host;
    if (device != 0)
        return h->set_error(h->host, PLX_NOT_FOUND, "devmem: no device %d", (int)device);
    for (int32_t i = 0; i < call->n_inputs + call->n_outputs; i++) {
        const plx_tensor_desc *d = i < call->n_inputs ? &call->inputs[i] : &call->outputs[i - call->n_inputs];
        const char *role = i < call->n_inputs ? "input" : "output";
        int idx = (int)(i < call->n_inputs ? i : i - call->n_inputs);
        if (d->device.device_type != PLX_DL_EXT_DEV)
            return h->set_error(h->host, PLX_INVALID_ARGUMENT, "devmem: %s %d is on device type %d, not mine",
                                role, idx, (int)d->device.device_type);
        if (live_size(s, d->data) < desc_bytes(d))
            return h->set_error(h->host, PLX_INVALID_ARGUMENT, "devmem: %s %d is not one of my device buffers",
                                role, idx);
    }
    pthread_mutex_lock(&s->lock);
    s->runs++;
    pthread_mutex_unlock(&s->lock);
    return tp_run_host(h, "devmem", call);
}

static const plx_backend_api backend = {
    .struct_size = sizeof(plx_backend_api),
    .name = "devmem",
    .device_count = dev_device_count,
    .device_info = dev_device_info,
    .buffer_alloc = dev_alloc,
    .buffer_free = dev_free,
    .copy = dev_copy,
    .synchronize = NULL,
    .op_names = dev_op_names,
    .supports = dev_supports,
    .estimate_ns = dev_estimate_ns,
    .run = dev_run,
};

static const plx_plugin_desc plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = "devmem",
    .version = "1.0.0",
    .description = "test: a backend with its own (fake) device memory",
    .init = dev_init,
    .shutdown = dev_shutdown,
    .backend = &backend,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &plugin;
}

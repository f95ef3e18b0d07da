/* registry.c — ops (core and interned), and the read-only queries over
 * plugins, backends and devices. Built during plx_context_open, read-only
 * after, so every query here is thread-safe without locks. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const core_op_names[PLX_OP_CORE_COUNT_] = {
#define PLX_OP_NAME_(id, name) name,
    PLX_CORE_OPS(PLX_OP_NAME_)
#undef PLX_OP_NAME_
};

size_t op_index_count(const plx_context *ctx)
{
    return (size_t)PLX_OP_CORE_COUNT_ + ctx->n_custom_ops;
}

int64_t op_index(int32_t op_id)
{
    if (op_id >= 0 && op_id < PLX_OP_CORE_COUNT_)
        return op_id;
    if (op_id >= PLX_OP_CUSTOM_BASE)
        return (int64_t)PLX_OP_CORE_COUNT_ + (op_id - PLX_OP_CUSTOM_BASE);
    return -1;
}

const char *op_name_of(const plx_context *ctx, int32_t op_id)
{
    if (op_id >= 0 && op_id < PLX_OP_CORE_COUNT_)
        return core_op_names[op_id];
    if (ctx != NULL && op_id >= PLX_OP_CUSTOM_BASE && (size_t)(op_id - PLX_OP_CUSTOM_BASE) < ctx->n_custom_ops)
        return ctx->custom_ops[op_id - PLX_OP_CUSTOM_BASE];
    return NULL;
}

/* Core names are looked up by binary search over a sorted index built from
 * the static table once (immutable afterwards). */
static int32_t sorted_core[PLX_OP_CORE_COUNT_];
static pthread_once_t sorted_once = PTHREAD_ONCE_INIT;

static int cmp_core(const void *a, const void *b)
{
    return strcmp(core_op_names[*(const int32_t *)a], core_op_names[*(const int32_t *)b]);
}

static void sort_core(void)
{
    for (int32_t i = 0; i < PLX_OP_CORE_COUNT_; i++)
        sorted_core[i] = i;
    qsort(sorted_core, PLX_OP_CORE_COUNT_, sizeof sorted_core[0], cmp_core);
}

int32_t op_lookup(const plx_context *ctx, const char *name)
{
    if (name == NULL)
        return -1;
    pthread_once(&sorted_once, sort_core);
    size_t lo = 0, hi = PLX_OP_CORE_COUNT_;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(name, core_op_names[sorted_core[mid]]);
        if (c == 0)
            return sorted_core[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    for (size_t i = 0; ctx != NULL && i < ctx->n_custom_ops; i++)
        if (strcmp(ctx->custom_ops[i], name) == 0)
            return PLX_OP_CUSTOM_BASE + (int32_t)i;
    return -1;
}

/* "namespace.op": both parts [a-z0-9_]+, at most 127 characters. */
static bool op_name_valid(const char *name)
{
    size_t len = strlen(name);
    const char *dot = strchr(name, '.');
    if (len == 0 || len > 127 || dot == NULL || dot == name || dot[1] == '\0' || strchr(dot + 1, '.') != NULL)
        return false;
    for (const char *p = name; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' || *p == '.'))
            return false;
    return true;
}

int32_t op_intern(plx_context *ctx, const char *name)
{
    if (name == NULL || !op_name_valid(name))
        return -1;
    int32_t id = op_lookup(ctx, name);
    if (id >= 0)
        return id;
    if (ctx->registry_frozen || strncmp(name, "core.", 5) == 0)
        return -1; /* core is closed to plugins: its ops need a catalog entry */
    if (ctx->n_custom_ops == ctx->cap_custom_ops) {
        size_t cap = ctx->cap_custom_ops ? ctx->cap_custom_ops * 2 : 16;
        char **grown = realloc(ctx->custom_ops, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        ctx->custom_ops = grown;
        ctx->cap_custom_ops = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return -1;
    ctx->custom_ops[ctx->n_custom_ops] = copy;
    return PLX_OP_CUSTOM_BASE + (int32_t)ctx->n_custom_ops++;
}

PLX_API size_t plx_op_count(const plx_context *ctx)
{
    return ctx != NULL ? op_index_count(ctx) : 0;
}

PLX_API const char *plx_op_name(const plx_context *ctx, int32_t id)
{
    return op_name_of(ctx, id);
}

PLX_API plx_status plx_op_find(const plx_context *ctx, const char *name, int32_t *id)
{
    if (ctx == NULL || name == NULL || id == NULL)
        return ctx ? ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plx_op_find: NULL argument") : PLX_INVALID_ARGUMENT;
    int32_t found = op_lookup(ctx, name);
    if (found < 0)
        return ctx_fail(ctx, PLX_NOT_FOUND, "unknown op '%s'", name);
    *id = found;
    return PLX_OK;
}

/* ---- plugins, backends, devices ------------------------------------------ */

#define CHECK_INFO(ctx, info, type, fn)                                     \
    do {                                                                    \
        if ((ctx) == NULL || (info) == NULL)                                \
            return PLX_INVALID_ARGUMENT;                                    \
        if ((info)->struct_size < sizeof(uint32_t))                         \
            return ctx_fail((ctx), PLX_INVALID_ARGUMENT, fn ": struct_size not set"); \
    } while (0)

/* Writes `full` into the caller's struct, never past its struct_size. */
static void copy_out(void *dst, const void *full, size_t full_size)
{
    uint32_t caller_size;
    memcpy(&caller_size, dst, sizeof caller_size);
    size_t n = caller_size < full_size ? caller_size : full_size;
    memcpy(dst, full, n);
    memcpy(dst, &caller_size, sizeof caller_size);
}

PLX_API size_t plx_plugin_count(const plx_context *ctx)
{
    return ctx != NULL ? ctx->n_plugins : 0;
}

PLX_API plx_status plx_plugin_get(const plx_context *ctx, size_t index, plx_plugin_info *info)
{
    CHECK_INFO(ctx, info, plx_plugin_info, "plx_plugin_get");
    if (index >= ctx->n_plugins)
        return ctx_fail(ctx, PLX_NOT_FOUND, "plx_plugin_get: index %zu out of range (%zu plugins)", index,
                        ctx->n_plugins);
    const plugin_record *p = &ctx->plugins[index];
    plx_plugin_info full = {
        .struct_size = (uint32_t)sizeof full,
        .path = p->path,
        .name = p->name ? p->name : "",
        .version = p->version ? p->version : "",
        .description = p->description ? p->description : "",
        .status = p->status,
        .reason = p->reason ? p->reason : "",
        .abi_major = p->abi_major,
        .abi_minor = p->abi_minor,
        .backend_index = p->backend_index,
    };
    copy_out(info, &full, sizeof full);
    return PLX_OK;
}

PLX_API size_t plx_backend_count(const plx_context *ctx)
{
    return ctx != NULL ? ctx->n_backends : 0;
}

PLX_API plx_status plx_backend_get(const plx_context *ctx, size_t index, plx_backend_info *info)
{
    CHECK_INFO(ctx, info, plx_backend_info, "plx_backend_get");
    if (index >= ctx->n_backends)
        return ctx_fail(ctx, PLX_NOT_FOUND, "plx_backend_get: index %zu out of range (%zu backends)", index,
                        ctx->n_backends);
    const backend_record *b = &ctx->backends[index];
    plx_backend_info full = {
        .struct_size = (uint32_t)sizeof full,
        .name = b->name,
        .plugin_name = ctx->plugins[b->plugin_index].name,
        .n_devices = b->n_devices,
        .rank = b->rank,
        .n_ops = b->n_ops,
    };
    copy_out(info, &full, sizeof full);
    return PLX_OK;
}

PLX_API const char *plx_backend_op_name(const plx_context *ctx, size_t backend, size_t i)
{
    if (ctx == NULL || backend >= ctx->n_backends || i >= ctx->backends[backend].n_ops)
        return NULL;
    return op_name_of(ctx, ctx->backends[backend].op_ids[i]);
}

PLX_API plx_status plx_device_get(const plx_context *ctx, size_t backend, int32_t device, plx_device_desc *desc)
{
    CHECK_INFO(ctx, desc, plx_device_desc, "plx_device_get");
    if (backend >= ctx->n_backends)
        return ctx_fail(ctx, PLX_NOT_FOUND, "plx_device_get: backend %zu out of range", backend);
    const backend_record *b = &ctx->backends[backend];
    if (device < 0 || device >= b->n_devices)
        return ctx_fail(ctx, PLX_NOT_FOUND, "plx_device_get: backend %s has no device %d", b->name, (int)device);
    const plx_device_info *d = &b->devices[device];
    plx_device_desc full = {
        .struct_size = (uint32_t)sizeof full,
        .name = d->name ? d->name : "",
        .kind = d->kind,
        .dl_device = d->dl_device,
        .memory_bytes = d->memory_bytes,
        .caps = d->caps,
    };
    copy_out(desc, &full, sizeof full);
    return PLX_OK;
}

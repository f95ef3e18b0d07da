/*
 * layers.c — the built-in layer types as a plugin: the descriptor (no
 * backend, only layer types) and the helpers the family files share.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "layers.h"

/* ---- Shared helpers ------------------------------------------------------ */

plx_status layer_fail(const plx_host_api *host, const plx_layer_build *b, const char *type, plx_status code,
                      const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return host->set_error(host->host, code, "%s: %s: %s", b->name ? b->name : "(unnamed)", type, detail);
}

plx_status layer_input(const plx_host_api *host, const plx_layer_build *b, int32_t i, layer_value_info *out)
{
    memset(out, 0, sizeof *out);
    return host->graph_value_info(host->host, b->graph, b->inputs[i], &out->dtype, &out->ndim, out->shape);
}

static const char *dtype_text(plx_dtype t)
{
    switch (t.code) {
    case PLX_DTYPE_CODE_FLOAT:
        return t.bits == 32 ? "f32" : t.bits == 16 ? "f16" : t.bits == 64 ? "f64" : "float";
    case PLX_DTYPE_CODE_BFLOAT:
        return "bf16";
    case PLX_DTYPE_CODE_INT:
        return t.bits == 64 ? "i64" : t.bits == 32 ? "i32" : t.bits == 16 ? "i16" : "i8";
    case PLX_DTYPE_CODE_UINT:
        return "u8";
    case PLX_DTYPE_CODE_BOOL:
        return "bool";
    default:
        return "?";
    }
}

const char *layer_format(const layer_value_info *v, char *buf, size_t cap)
{
    size_t used = 0;
    int w = snprintf(buf, cap, "%s[", dtype_text(v->dtype));
    used = w > 0 ? (size_t)w : 0;
    for (int32_t d = 0; d < v->ndim && used < cap; d++) {
        w = snprintf(buf + used, cap - used, "%s%lld", d ? "," : "", (long long)v->shape[d]);
        used += w > 0 ? (size_t)w : 0;
    }
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}

plx_status layer_require_float(const plx_host_api *host, const plx_layer_build *b, const char *type,
                               const layer_value_info *x)
{
    if (x->dtype.code == PLX_DTYPE_CODE_FLOAT || x->dtype.code == PLX_DTYPE_CODE_BFLOAT)
        return PLX_OK;
    char s[128];
    return layer_fail(host, b, type, PLX_DTYPE_MISMATCH, "needs a floating-point input, got %s",
                      layer_format(x, s, sizeof s));
}

plx_status layer_output(plx_value v, plx_value *outputs, int32_t max_outputs, int32_t *n_outputs)
{
    if (max_outputs < 1)
        return PLX_INVALID_ARGUMENT;
    outputs[0] = v;
    *n_outputs = 1;
    return PLX_OK;
}

plx_status layer_pair(const plx_host_api *host, const plx_layer_build *b, const char *type, const char *key,
                      int64_t min, const int32_t *fallback, int32_t out[2])
{
    int64_t v[3] = {0, 0, 0};
    int32_t count = 0;
    plx_status st = host->config_ints(host->host, b->config, key, v, 3, &count);
    if (st != PLX_OK)
        return st;
    if (count == 0 && fallback != NULL) {
        out[0] = fallback[0];
        out[1] = fallback[1];
        return PLX_OK;
    }
    if (count != 1 && count != 2)
        return layer_fail(host, b, type, PLX_INVALID_ARGUMENT,
                          "'%s' takes one integer or two (height, width), got %d values", key, (int)count);
    if (count == 1)
        v[1] = v[0];
    for (int i = 0; i < 2; i++) {
        if (v[i] < min || v[i] > INT32_MAX)
            return layer_fail(host, b, type, PLX_INVALID_ARGUMENT, "'%s' must be >= %lld, got (%lld, %lld)", key,
                              (long long)min, (long long)v[0], (long long)v[1]);
        out[i] = (int32_t)v[i];
    }
    return PLX_OK;
}

plx_status layer_reshape(const plx_host_api *host, const plx_layer_build *b, plx_value x, int32_t ndim,
                         const int64_t *shape, plx_value *out)
{
    plx_reshape_attrs r = {sizeof r, ndim, {0}};
    for (int32_t d = 0; d < ndim; d++)
        r.shape[d] = shape[d];
    return host->graph_op(host->host, b->graph, "core.reshape", &r, &x, 1, out, 1);
}

plx_initializer layer_init_of(int32_t kind)
{
    plx_initializer init = {sizeof init, kind, 0.0f, 0.0f, 0.0f};
    return init;
}

plx_status layer_weight_init(const plx_host_api *host, const plx_layer_build *b, const char *type, double fan_in,
                             plx_initializer *weight, plx_initializer *bias)
{
    const char *name = NULL;
    plx_status st = host->config_string(host->host, b->config, "init", &name);
    if (st != PLX_OK)
        return st;
    static const struct {
        const char *name;
        int32_t kind;
    } kinds[] = {
        {"xavier_uniform", PLX_INIT_XAVIER_UNIFORM},
        {"xavier_normal", PLX_INIT_XAVIER_NORMAL},
        {"he_uniform", PLX_INIT_HE_UNIFORM},
        {"he_normal", PLX_INIT_HE_NORMAL},
        {"zeros", PLX_INIT_ZEROS},
    };
    *bias = layer_init_of(PLX_INIT_ZEROS);
    if (strcmp(name, "default") == 0) {
        /* PyTorch's reset_parameters: kaiming_uniform_(a=sqrt(5)) has
         * bound gain*sqrt(3/fan_in) with gain sqrt(2/(1+5)), i.e.
         * 1/sqrt(fan_in); the bias uses the same bound. */
        float bound = fan_in > 0 ? (float)(1.0 / sqrt(fan_in)) : 0.0f;
        *weight = layer_init_of(PLX_INIT_UNIFORM);
        weight->a = -bound;
        weight->b = bound;
        *bias = *weight;
        return PLX_OK;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(name, kinds[i].name) == 0) {
            *weight = layer_init_of(kinds[i].kind);
            return PLX_OK;
        }
    return layer_fail(host, b, type, PLX_INVALID_ARGUMENT,
                      "'init' is \"%s\"; expected one of \"default\", \"xavier_uniform\", \"xavier_normal\", "
                      "\"he_uniform\", \"he_normal\", \"zeros\"",
                      name);
}

/* ---- The descriptor ------------------------------------------------------- */

static const plx_layer_type *const layer_types[] = {
    &layer_dense,      &layer_conv2d,      &layer_max_pool2d, &layer_avg_pool2d, &layer_global_avg_pool2d,
    &layer_batch_norm, &layer_layer_norm,  &layer_dropout,    &layer_embedding,  &layer_relu,
    &layer_leaky_relu, &layer_elu,         &layer_gelu,       &layer_sigmoid,    &layer_tanh,
    &layer_softmax,    &layer_log_softmax, &layer_add,        &layer_concat,     &layer_flatten,
};

static const plx_plugin_desc layers_plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = "layers",
    .version = "0.1.0",
    .description = "built-in layer types (dense, conv2d, pooling, norms, dropout, embedding, activations, merges)",
    .probe = NULL,
    .init = NULL,
    .shutdown = NULL,
    .backend = NULL,
    .layers = layer_types,
    .n_layers = (int32_t)(sizeof layer_types / sizeof layer_types[0]),
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &layers_plugin;
}

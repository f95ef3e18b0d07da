/*
 * layer_host.c — the layer half of the plugin ABI: registering plugins'
 * layer types, validating a layer's configuration from a model file against
 * its declared keys, and the host API a layer's build() uses to add ops,
 * parameters and state to the graph.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "graph.h"
#include "layer_config.h"

/* ---- registration -------------------------------------------------------- */

/* "dense", "acme.gated": [a-z0-9_]+ with at most one namespace dot. */
static bool layer_name_valid(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 64)
        return false;
    int dots = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '.') {
            if (++dots > 1 || p == s || p[1] == '\0')
                return false;
        } else if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            return false;
    }
    return true;
}

static bool key_name_valid(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            return false;
    return strcmp(s, "type") != 0 && strcmp(s, "name") != 0 && strcmp(s, "inputs") != 0;
}

const layer_record *layer_find(const plx_context *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->n_layers; i++)
        if (strcmp(ctx->layers[i].name, name) == 0)
            return &ctx->layers[i];
    return NULL;
}

static void layer_record_free(layer_record *l)
{
    free(l->name);
    free(l->keys);
}

void layers_drop_plugin(plx_context *ctx, int32_t plugin_index)
{
    size_t kept = 0;
    for (size_t i = 0; i < ctx->n_layers; i++) {
        if (ctx->layers[i].plugin_index == plugin_index)
            layer_record_free(&ctx->layers[i]);
        else
            ctx->layers[kept++] = ctx->layers[i];
    }
    ctx->n_layers = kept;
}

void layers_free(plx_context *ctx)
{
    for (size_t i = 0; i < ctx->n_layers; i++)
        layer_record_free(&ctx->layers[i]);
    free(ctx->layers);
    ctx->layers = NULL;
    ctx->n_layers = 0;
}

/* Checks a key's default parses as its type. */
static bool default_valid(const plx_config_key *k)
{
    if (k->required)
        return true;
    if (k->default_json == NULL)
        return false;
    cJSON *v = cJSON_Parse(k->default_json);
    if (v == NULL)
        return false;
    char why[64];
    bool ok = layer_config_check_type(v, k->type, why, sizeof why);
    cJSON_Delete(v);
    return ok;
}

bool layers_register(plx_context *ctx, int32_t plugin_index, char *reason, size_t cap)
{
    const plugin_record *r = &ctx->plugins[plugin_index];
    if (r->desc.n_layers == 0)
        return true;
    if (r->desc.n_layers < 0 || r->desc.n_layers > 1024 || r->desc.layers == NULL) {
        snprintf(reason, cap, "layer table: n_layers is %d with layers %s", (int)r->desc.n_layers,
                 r->desc.layers ? "set" : "NULL");
        return false;
    }
    size_t first = ctx->n_layers;
    for (int32_t i = 0; i < r->desc.n_layers; i++) {
        const plx_layer_type *src = r->desc.layers[i];
        if (src == NULL || src->struct_size < offsetof(plx_layer_type, build) + sizeof(src->build)) {
            snprintf(reason, cap, "layer type %d: %s", (int)i,
                     src == NULL ? "NULL entry" : "struct too small for ABI 1.1");
            goto refuse;
        }
        layer_record l;
        memset(&l, 0, sizeof l);
        memcpy(&l.type, src, src->struct_size < sizeof l.type ? src->struct_size : sizeof l.type);
        l.type.struct_size = (uint32_t)sizeof l.type;
        l.plugin_index = plugin_index;
        if (!layer_name_valid(l.type.name)) {
            snprintf(reason, cap, "layer type name '%s' is not [a-z0-9_]+ (with an optional namespace.)",
                     l.type.name ? l.type.name : "(null)");
            goto refuse;
        }
        if (l.type.build == NULL || l.type.min_inputs < 0 ||
            (l.type.max_inputs >= 0 && l.type.max_inputs < l.type.min_inputs) || l.type.n_keys < 0 ||
            l.type.n_keys > 256 || (l.type.n_keys > 0 && l.type.keys == NULL)) {
            snprintf(reason, cap, "layer type %s: invalid table (build, input counts or keys)", l.type.name);
            goto refuse;
        }
        const layer_record *dup = layer_find(ctx, l.type.name);
        if (dup != NULL) {
            snprintf(reason, cap, "duplicate: layer type %s is already provided by %s", l.type.name,
                     ctx->plugins[dup->plugin_index].path);
            goto refuse;
        }
        size_t stride = l.type.n_keys > 0 ? l.type.keys[0].struct_size : 0;
        if (l.type.n_keys > 0 && stride < offsetof(plx_config_key, doc) + sizeof(void *)) {
            snprintf(reason, cap, "layer type %s: config key struct_size %zu is too small", l.type.name, stride);
            goto refuse;
        }
        l.keys = calloc((size_t)l.type.n_keys + 1, sizeof *l.keys);
        l.name = strdup(l.type.name);
        layer_record *grown = realloc(ctx->layers, sizeof *grown * (ctx->n_layers + 1));
        if (l.keys == NULL || l.name == NULL || grown == NULL) {
            if (grown != NULL)
                ctx->layers = grown;
            layer_record_free(&l);
            snprintf(reason, cap, "out of memory");
            goto refuse;
        }
        ctx->layers = grown;
        for (int32_t k = 0; k < l.type.n_keys; k++) {
            const plx_config_key *key = (const plx_config_key *)((const char *)l.type.keys + (size_t)k * stride);
            memcpy(&l.keys[k], key, stride < sizeof l.keys[k] ? stride : sizeof l.keys[k]);
            l.keys[k].struct_size = (uint32_t)sizeof l.keys[k];
            if (!key_name_valid(l.keys[k].name) || l.keys[k].type < PLX_CONFIG_INT ||
                l.keys[k].type > PLX_CONFIG_INTS || !default_valid(&l.keys[k])) {
                snprintf(reason, cap, "layer type %s: config key %d ('%s') has a bad name, type or default",
                         l.type.name, (int)k, l.keys[k].name ? l.keys[k].name : "(null)");
                layer_record_free(&l);
                goto refuse;
            }
        }
        l.type.keys = l.keys;
        ctx->layers[ctx->n_layers++] = l;
    }
    return true;
refuse:
    while (ctx->n_layers > first)
        layer_record_free(&ctx->layers[--ctx->n_layers]);
    return false;
}

PLX_API size_t plx_layer_count(const plx_context *ctx)
{
    return ctx != NULL ? ctx->n_layers : 0;
}

PLX_API plx_status plx_layer_get(const plx_context *ctx, size_t index, plx_layer_info *info)
{
    if (ctx == NULL || info == NULL || info->struct_size < sizeof(uint32_t))
        return ctx ? ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plx_layer_get: bad arguments") : PLX_INVALID_ARGUMENT;
    if (index >= ctx->n_layers)
        return ctx_fail(ctx, PLX_NOT_FOUND, "plx_layer_get: index %zu out of range (%zu layer types)", index,
                        ctx->n_layers);
    const layer_record *l = &ctx->layers[index];
    plx_layer_info full = {.struct_size = (uint32_t)sizeof full, .name = l->name,
                           .description = l->type.description ? l->type.description : "",
                           .plugin_index = l->plugin_index, .n_keys = l->type.n_keys};
    uint32_t caller = info->struct_size;
    memcpy(info, &full, caller < sizeof full ? caller : sizeof full);
    info->struct_size = caller;
    return PLX_OK;
}

static const char *type_name(int32_t t)
{
    static const char *const names[] = {"int", "float", "bool", "string", "ints"};
    return t >= 0 && t <= PLX_CONFIG_INTS ? names[t] : "?";
}

PLX_API plx_status plx_layer_key_get(const plx_context *ctx, size_t layer, int32_t key, plx_layer_key_info *info)
{
    if (ctx == NULL || info == NULL || info->struct_size < sizeof(uint32_t))
        return ctx ? ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plx_layer_key_get: bad arguments") : PLX_INVALID_ARGUMENT;
    if (layer >= ctx->n_layers || key < 0 || key >= ctx->layers[layer].type.n_keys)
        return ctx_fail(ctx, PLX_NOT_FOUND, "plx_layer_key_get: no key %d of layer type %zu", (int)key, layer);
    const plx_config_key *k = &ctx->layers[layer].keys[key];
    plx_layer_key_info full = {.struct_size = (uint32_t)sizeof full, .name = k->name, .type = type_name(k->type),
                               .required = k->required, .default_json = k->default_json ? k->default_json : "",
                               .doc = k->doc ? k->doc : ""};
    uint32_t caller = info->struct_size;
    memcpy(info, &full, caller < sizeof full ? caller : sizeof full);
    info->struct_size = caller;
    return PLX_OK;
}

/* ---- host API: graph building ------------------------------------------- */

static plx_status host_graph_op(void *host, struct plx_graph *g, const char *op, const void *attrs,
                                const plx_value *inputs, int32_t n_inputs, plx_value *outputs, int32_t n_outputs)
{
    plx_context *ctx = host;
    if (g == NULL || op == NULL || (n_inputs > 0 && inputs == NULL) || n_outputs < 0 || n_inputs < 0 ||
        (n_outputs > 0 && outputs == NULL))
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: graph_op: bad arguments", g ? g->scope : "layer");
    int32_t id = op_lookup(ctx, op);
    if (id < 0)
        return ctx_fail(ctx, PLX_NOT_FOUND, "%s: unknown op '%s'", g->scope, op);
    return graph_add_op(g, id, attrs, inputs, n_inputs, outputs, n_outputs);
}

static plx_status add_persistent(void *host, struct plx_graph *g, value_kind kind, const char *name, int32_t ndim,
                                 const int64_t *shape, const plx_initializer *init, plx_value *out)
{
    plx_context *ctx = host;
    if (g == NULL || name == NULL || out == NULL)
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "layer: graph_param/graph_state: bad arguments");
    if (init != NULL && init->struct_size < offsetof(plx_initializer, kind) + sizeof(init->kind))
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: initializer of '%s' has struct_size %u", g->scope, name,
                        (unsigned)init->struct_size);
    if (init != NULL && (init->kind < PLX_INIT_ZEROS || init->kind > PLX_INIT_NORMAL))
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: initializer of '%s' has unknown kind %d", g->scope, name,
                        (int)init->kind);
    for (const char *p = name; *p; p++)
        if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_'))
            return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: parameter name '%s' is not [a-z0-9_]+", g->scope, name);
    char full[300];
    snprintf(full, sizeof full, "%s.%s", g->scope, name);
    return graph_add_named(g, kind, full, PLX_F32, ndim, shape, init, out);
}

static plx_status host_graph_param(void *host, struct plx_graph *g, const char *name, int32_t ndim,
                                   const int64_t *shape, const plx_initializer *init, plx_value *out)
{
    return add_persistent(host, g, VALUE_PARAM, name, ndim, shape, init, out);
}

static plx_status host_graph_state(void *host, struct plx_graph *g, const char *name, int32_t ndim,
                                   const int64_t *shape, const plx_initializer *init, plx_value *out)
{
    return add_persistent(host, g, VALUE_STATE, name, ndim, shape, init, out);
}

static plx_status host_graph_value_info(void *host, const struct plx_graph *g, plx_value value, plx_dtype *dtype,
                                        int32_t *ndim, int64_t *shape)
{
    plx_context *ctx = host;
    if (g == NULL || value < 0 || value >= g->n_values)
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "graph_value_info: %d is not a value of the graph", (int)value);
    const tensor_meta *m = &g->values[value].meta;
    if (dtype != NULL)
        *dtype = m->dtype;
    if (ndim != NULL)
        *ndim = m->ndim;
    if (shape != NULL)
        for (int32_t d = 0; d < m->ndim; d++)
            shape[d] = m->dims[d];
    return PLX_OK;
}

void host_api_init_layers(plx_host_api *h)
{
    h->graph_op = host_graph_op;
    h->graph_param = host_graph_param;
    h->graph_state = host_graph_state;
    h->graph_value_info = host_graph_value_info;
    h->config_int = layer_config_int;
    h->config_float = layer_config_float;
    h->config_bool = layer_config_bool;
    h->config_string = layer_config_string;
    h->config_ints = layer_config_ints;
}

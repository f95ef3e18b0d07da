/* layer_config.c — see layer_config.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layer_config.h"

static bool is_integer(const cJSON *v)
{
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    return isfinite(d) && d == floor(d) && fabs(d) <= 9007199254740992.0;
}

bool layer_config_check_type(const cJSON *v, int32_t type, char *why, size_t cap)
{
    switch (type) {
    case PLX_CONFIG_INT:
        if (is_integer(v))
            return true;
        snprintf(why, cap, "an integer");
        return false;
    case PLX_CONFIG_FLOAT:
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
            return true;
        snprintf(why, cap, "a number");
        return false;
    case PLX_CONFIG_BOOL:
        if (cJSON_IsBool(v))
            return true;
        snprintf(why, cap, "true or false");
        return false;
    case PLX_CONFIG_STRING:
        if (cJSON_IsString(v))
            return true;
        snprintf(why, cap, "a string");
        return false;
    case PLX_CONFIG_INTS:
        if (is_integer(v))
            return true;
        if (cJSON_IsArray(v) && cJSON_GetArraySize(v) <= 16) {
            const cJSON *e;
            cJSON_ArrayForEach(e, v) if (!is_integer(e)) goto bad;
            return true;
        }
    bad:
        snprintf(why, cap, "an integer or a list of at most 16 integers");
        return false;
    default:
        snprintf(why, cap, "a value of an unknown type");
        return false;
    }
}

void layer_config_free(struct plx_layer_config *c)
{
    if (c == NULL)
        return;
    cJSON_Delete(c->values);
    free(c->where);
    free(c);
}

plx_status layer_config_new(plx_context *ctx, const layer_record *type, const cJSON *obj, const char *where,
                            struct plx_layer_config **out)
{
    struct plx_layer_config *c = calloc(1, sizeof *c);
    if (c == NULL)
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "out of memory");
    c->ctx = ctx;
    c->type = type;
    c->values = cJSON_CreateObject();
    c->where = strdup(where);
    if (c->values == NULL || c->where == NULL) {
        layer_config_free(c);
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "out of memory");
    }
    const cJSON *member;
    cJSON_ArrayForEach(member, obj)
    {
        const char *k = member->string;
        if (strcmp(k, "type") == 0 || strcmp(k, "name") == 0 || strcmp(k, "inputs") == 0)
            continue;
        bool known = false;
        for (int32_t i = 0; i < type->type.n_keys && !known; i++)
            known = strcmp(type->keys[i].name, k) == 0;
        if (!known) {
            char list[512] = "";
            size_t used = 0;
            for (int32_t i = 0; i < type->type.n_keys && used < sizeof list; i++) {
                int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", type->keys[i].name);
                used += w > 0 ? (size_t)w : 0;
            }
            plx_status st = ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s.%s: unknown key for layer type %s (expected one of: %s)",
                                     where, k, type->name, type->type.n_keys ? list : "no keys");
            layer_config_free(c);
            return st;
        }
    }
    for (int32_t i = 0; i < type->type.n_keys; i++) {
        const plx_config_key *key = &type->keys[i];
        const cJSON *given = cJSON_GetObjectItemCaseSensitive(obj, key->name);
        cJSON *value = NULL;
        if (given != NULL) {
            char why[96];
            if (!layer_config_check_type(given, key->type, why, sizeof why)) {
                plx_status st = ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s.%s: expected %s%s%s", where, key->name, why,
                                         key->doc ? " — " : "", key->doc ? key->doc : "");
                layer_config_free(c);
                return st;
            }
            value = cJSON_Duplicate(given, 1);
        } else if (key->required) {
            plx_status st = ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: missing required key '%s' for layer type %s%s%s",
                                     where, key->name, type->name, key->doc ? " — " : "", key->doc ? key->doc : "");
            layer_config_free(c);
            return st;
        } else
            value = cJSON_Parse(key->default_json);
        if (value == NULL || !cJSON_AddItemToObject(c->values, key->name, value)) {
            cJSON_Delete(value);
            layer_config_free(c);
            return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "out of memory");
        }
    }
    *out = c;
    return PLX_OK;
}

static const cJSON *lookup(const struct plx_layer_config *c, const char *key, int32_t type, plx_status *st)
{
    *st = PLX_OK;
    if (c == NULL || key == NULL) {
        *st = PLX_INVALID_ARGUMENT;
        return NULL;
    }
    for (int32_t i = 0; i < c->type->type.n_keys; i++)
        if (strcmp(c->type->keys[i].name, key) == 0) {
            if (c->type->keys[i].type != type && !(type == PLX_CONFIG_INTS && c->type->keys[i].type == PLX_CONFIG_INT)) {
                *st = ctx_fail(c->ctx, PLX_INVALID_ARGUMENT, "%s: layer type %s reads key '%s' as another type than it declared",
                               c->where, c->type->name, key);
                return NULL;
            }
            return cJSON_GetObjectItemCaseSensitive(c->values, key);
        }
    *st = ctx_fail(c->ctx, PLX_NOT_FOUND, "%s: layer type %s reads key '%s', which it does not declare", c->where,
                   c->type->name, key);
    return NULL;
}

plx_status layer_config_int(void *host, const struct plx_layer_config *c, const char *key, int64_t *out)
{
    (void)host;
    plx_status st;
    const cJSON *v = lookup(c, key, PLX_CONFIG_INT, &st);
    if (v == NULL)
        return st != PLX_OK ? st : PLX_INTERNAL;
    *out = (int64_t)v->valuedouble;
    return PLX_OK;
}

plx_status layer_config_float(void *host, const struct plx_layer_config *c, const char *key, double *out)
{
    (void)host;
    plx_status st;
    const cJSON *v = lookup(c, key, PLX_CONFIG_FLOAT, &st);
    if (v == NULL)
        return st != PLX_OK ? st : PLX_INTERNAL;
    *out = v->valuedouble;
    return PLX_OK;
}

plx_status layer_config_bool(void *host, const struct plx_layer_config *c, const char *key, int32_t *out)
{
    (void)host;
    plx_status st;
    const cJSON *v = lookup(c, key, PLX_CONFIG_BOOL, &st);
    if (v == NULL)
        return st != PLX_OK ? st : PLX_INTERNAL;
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return PLX_OK;
}

plx_status layer_config_string(void *host, const struct plx_layer_config *c, const char *key, const char **out)
{
    (void)host;
    plx_status st;
    const cJSON *v = lookup(c, key, PLX_CONFIG_STRING, &st);
    if (v == NULL)
        return st != PLX_OK ? st : PLX_INTERNAL;
    *out = v->valuestring;
    return PLX_OK;
}

plx_status layer_config_ints(void *host, const struct plx_layer_config *c, const char *key, int64_t *out,
                             int32_t cap, int32_t *count)
{
    (void)host;
    plx_status st;
    const cJSON *v = lookup(c, key, PLX_CONFIG_INTS, &st);
    if (v == NULL)
        return st != PLX_OK ? st : PLX_INTERNAL;
    if (cJSON_IsNumber(v)) {
        if (cap > 0)
            out[0] = (int64_t)v->valuedouble;
        *count = 1;
        return PLX_OK;
    }
    int32_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (n < cap)
            out[n] = (int64_t)e->valuedouble;
        n++;
    }
    *count = n;
    return PLX_OK;
}

#include "graph.h"

plx_status layer_build(plx_context *ctx, struct plx_graph *g, const layer_record *type, const cJSON *obj,
                       const char *instance, const char *where, const int32_t *inputs, int32_t n_inputs,
                       int32_t training, uint64_t seed, int32_t *outputs, int32_t max_outputs,
                       int32_t *n_outputs)
{
    char at[512];
    snprintf(at, sizeof at, "%s (%s)", where, instance);
    if (n_inputs < type->type.min_inputs || (type->type.max_inputs >= 0 && n_inputs > type->type.max_inputs)) {
        int lo = (int)type->type.min_inputs, hi = (int)type->type.max_inputs;
        char range[64];
        if (hi < 0)
            snprintf(range, sizeof range, "%d or more inputs", lo);
        else if (hi == lo)
            snprintf(range, sizeof range, "%d input%s", lo, lo == 1 ? "" : "s");
        else
            snprintf(range, sizeof range, "%d to %d inputs", lo, hi);
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: layer type %s takes %s, got %d", at, type->name, range,
                        (int)n_inputs);
    }
    struct plx_layer_config *config = NULL;
    plx_status st = layer_config_new(ctx, type, obj, at, &config);
    if (st != PLX_OK)
        return st;
    const char *saved = g->scope;
    g->scope = instance;
    plx_layer_build b = {.struct_size = (uint32_t)sizeof b, .name = instance, .config = config,
                         .training = training, .seed = seed, .graph = g, .n_inputs = n_inputs, .inputs = inputs};
    int32_t n = 0;
    thread_state *ts = thread_state_get(ctx);
    if (ts != NULL)
        ts->error[0] = '\0';
    st = type->type.build(&ctx->host_api, &b, outputs, max_outputs, &n);
    g->scope = saved;
    layer_config_free(config);
    if (st != PLX_OK) {
        char detail[PLX_ERROR_CAP];
        snprintf(detail, sizeof detail, "%s", ts != NULL && ts->error[0] ? ts->error : plx_status_text(st));
        /* Messages from graph_op already name the layer; add the file and path. */
        return ctx_fail(ctx, st, "%s: %s", where, detail);
    }
    if (n < 1 || n > max_outputs)
        return ctx_fail(ctx, PLX_PLUGIN_ERROR, "%s: layer type %s returned %d outputs", at, type->name, (int)n);
    for (int32_t i = 0; i < n; i++)
        if (outputs[i] < 0 || outputs[i] >= g->n_values)
            return ctx_fail(ctx, PLX_PLUGIN_ERROR, "%s: layer type %s returned an invalid value", at, type->name);
    *n_outputs = n;
    return PLX_OK;
}

/*
 * layer_config.h — internal: a layer instance's configuration from a model
 * file, validated against the keys its type declares (unknown keys, wrong
 * types and missing required keys are errors naming the file and JSON path),
 * with defaults applied; and the host API accessors layers read it with.
 */
#ifndef PLX_LAYER_CONFIG_H
#define PLX_LAYER_CONFIG_H

#include <cJSON.h>

#include "internal.h"

struct plx_layer_config {
    plx_context *ctx;
    const layer_record *type;
    cJSON *values; /* owned: one member per declared key */
    char *where;   /* "model.json: $.layers[2] (conv1)" */
};

/* Whether JSON value v has config type `type`; writes what was expected. */
bool layer_config_check_type(const cJSON *v, int32_t type, char *why, size_t cap);

/* Validates `obj` (a layer object of a model file; its "type", "name" and
 * "inputs" members are the model's and skipped). `where` prefixes errors. */
plx_status layer_config_new(plx_context *ctx, const layer_record *type, const cJSON *obj, const char *where,
                            struct plx_layer_config **out);
void layer_config_free(struct plx_layer_config *c);

plx_status layer_config_int(void *host, const struct plx_layer_config *c, const char *key, int64_t *out);
plx_status layer_config_float(void *host, const struct plx_layer_config *c, const char *key, double *out);
plx_status layer_config_bool(void *host, const struct plx_layer_config *c, const char *key, int32_t *out);
plx_status layer_config_string(void *host, const struct plx_layer_config *c, const char *key, const char **out);
plx_status layer_config_ints(void *host, const struct plx_layer_config *c, const char *key, int64_t *out,
                             int32_t cap, int32_t *count);

/* Builds one layer instance into g: validates its config (obj: the layer's
 * JSON object; `where` names it in errors, e.g. "model.json: $.layers[2]"),
 * checks the input count, sets the graph scope to the instance name and
 * calls the type's build(). */
struct plx_graph;
plx_status layer_build(plx_context *ctx, struct plx_graph *g, const layer_record *type, const cJSON *obj,
                       const char *instance, const char *where, const int32_t *inputs, int32_t n_inputs,
                       int32_t training, uint64_t seed, int32_t *outputs, int32_t max_outputs,
                       int32_t *n_outputs);

#endif

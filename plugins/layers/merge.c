/*
 * merge.c — layers joining two or more inputs: add (elementwise sum with
 * broadcasting, for residual connections) and concat (along one axis).
 */
#include "layers.h"

static const plx_config_key concat_keys[] = {
    LAYER_KEY("axis", PLX_CONFIG_INT, 0, "1",
              "the axis to join along (1: channels of NCHW); negative counts from the end"),
};

static plx_status add_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs, int32_t max_outputs,
                            int32_t *n_outputs)
{
    plx_status st;
    for (int32_t i = 0; i < b->n_inputs; i++) {
        layer_value_info x;
        if ((st = layer_input(host, b, i, &x)) != PLX_OK || (st = layer_require_float(host, b, "add", &x)) != PLX_OK)
            return st;
    }
    plx_value sum = b->inputs[0];
    for (int32_t i = 1; i < b->n_inputs; i++) {
        plx_value in[2] = {sum, b->inputs[i]};
        if ((st = host->graph_op(host->host, b->graph, "core.add", NULL, in, 2, &sum, 1)) != PLX_OK)
            return st;
    }
    return layer_output(sum, outputs, max_outputs, n_outputs);
}

static plx_status concat_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                               int32_t max_outputs, int32_t *n_outputs)
{
    int64_t axis = 1;
    plx_status st = host->config_int(host->host, b->config, "axis", &axis);
    if (st != PLX_OK)
        return st;
    layer_value_info x;
    if ((st = layer_input(host, b, 0, &x)) != PLX_OK)
        return st;
    char sx[128];
    if (x.ndim < 1 || axis < -(int64_t)x.ndim || axis >= x.ndim)
        return layer_fail(host, b, "concat", PLX_INVALID_ARGUMENT, "'axis' %lld is out of range for input 0 %s",
                          (long long)axis, layer_format(&x, sx, sizeof sx));
    plx_concat_attrs a = {sizeof a, (int32_t)axis};
    plx_value y;
    if ((st = host->graph_op(host->host, b->graph, "core.concat", &a, b->inputs, b->n_inputs, &y, 1)) != PLX_OK)
        return st;
    return layer_output(y, outputs, max_outputs, n_outputs);
}

const plx_layer_type layer_add = {
    .struct_size = sizeof(plx_layer_type),
    .name = "add",
    .description = "elementwise sum of 2 or more inputs with broadcasting (residual connections)",
    .keys = NULL,
    .n_keys = 0,
    .min_inputs = 2,
    .max_inputs = -1,
    .build = add_build,
};

const plx_layer_type layer_concat = {
    .struct_size = sizeof(plx_layer_type),
    .name = "concat",
    .description = "joins 2 or more inputs along an axis (torch.cat)",
    .keys = concat_keys,
    .n_keys = LAYER_KEY_COUNT(concat_keys),
    .min_inputs = 2,
    .max_inputs = -1,
    .build = concat_build,
};

/*
 * dropout.c — inverted dropout, as torch.nn.Dropout. The training graph
 * runs core.dropout keyed by the instance's seed with counter offset 0 (the
 * runtime moves the offset each step, so every step draws a new mask and a
 * resumed run draws the same ones); the inference graph is the identity and
 * adds no node at all.
 */
#include "layers.h"

static const plx_config_key dropout_keys[] = {
    LAYER_KEY("p", PLX_CONFIG_FLOAT, 0, "0.5", "probability of zeroing an element, in [0, 1)"),
};

static plx_status dropout_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                int32_t max_outputs, int32_t *n_outputs)
{
    double p = 0.0;
    plx_status st = host->config_float(host->host, b->config, "p", &p);
    if (st != PLX_OK)
        return st;
    if (!(p >= 0.0 && p < 1.0))
        return layer_fail(host, b, "dropout", PLX_INVALID_ARGUMENT, "'p' must be in [0, 1), got %g", p);
    layer_value_info x;
    if ((st = layer_input(host, b, 0, &x)) != PLX_OK || (st = layer_require_float(host, b, "dropout", &x)) != PLX_OK)
        return st;
    if (!b->training || p == 0.0)
        return layer_output(b->inputs[0], outputs, max_outputs, n_outputs);
    plx_dropout_attrs a = {sizeof a, (float)p, b->seed, 0};
    plx_value y;
    if ((st = host->graph_op(host->host, b->graph, "core.dropout", &a, b->inputs, 1, &y, 1)) != PLX_OK)
        return st;
    return layer_output(y, outputs, max_outputs, n_outputs);
}

const plx_layer_type layer_dropout = {
    .struct_size = sizeof(plx_layer_type),
    .name = "dropout",
    .description = "zeroes elements with probability p in training and scales the rest by 1/(1-p) (torch.nn.Dropout)",
    .keys = dropout_keys,
    .n_keys = LAYER_KEY_COUNT(dropout_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .build = dropout_build,
};

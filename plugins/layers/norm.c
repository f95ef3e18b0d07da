/*
 * norm.c — batch and layer normalization, as torch.nn.BatchNorm{1,2,3}d and
 * torch.nn.LayerNorm with their affine parameters "weight" (ones) and
 * "bias" (zeros). Batch norm keeps "running_mean" (zeros) and "running_var"
 * (ones) as state: the training graph normalizes with the batch statistics
 * and core.batch_norm updates the running ones in place; the inference
 * graph normalizes with the running ones.
 */
#include <math.h>

#include "layers.h"

static const plx_config_key batch_norm_keys[] = {
    LAYER_KEY("eps", PLX_CONFIG_FLOAT, 0, "1e-5", "added to the variance (> 0)"),
    LAYER_KEY("momentum", PLX_CONFIG_FLOAT, 0, "0.1",
              "running = (1 - momentum) * running + momentum * batch, in [0, 1]"),
};

static const plx_config_key layer_norm_keys[] = {
    LAYER_KEY("normalized_dims", PLX_CONFIG_INT, 0, "1", "normalize over the last N dims (N >= 1)"),
    LAYER_KEY("eps", PLX_CONFIG_FLOAT, 0, "1e-5", "added to the variance (> 0)"),
};

static plx_status read_eps(const plx_host_api *host, const plx_layer_build *b, const char *type, double *eps)
{
    plx_status st = host->config_float(host->host, b->config, "eps", eps);
    if (st != PLX_OK)
        return st;
    if (!(*eps > 0.0) || !isfinite(*eps))
        return layer_fail(host, b, type, PLX_INVALID_ARGUMENT, "'eps' must be > 0, got %g", *eps);
    return PLX_OK;
}

static plx_status batch_norm_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                   int32_t max_outputs, int32_t *n_outputs)
{
    double eps = 0.0, momentum = 0.0;
    plx_status st;
    if ((st = read_eps(host, b, "batch_norm", &eps)) != PLX_OK ||
        (st = host->config_float(host->host, b->config, "momentum", &momentum)) != PLX_OK)
        return st;
    if (!(momentum >= 0.0 && momentum <= 1.0))
        return layer_fail(host, b, "batch_norm", PLX_INVALID_ARGUMENT, "'momentum' must be in [0, 1], got %g",
                          momentum);
    layer_value_info x;
    if ((st = layer_input(host, b, 0, &x)) != PLX_OK || (st = layer_require_float(host, b, "batch_norm", &x)) != PLX_OK)
        return st;
    char sx[128];
    if (x.ndim < 2 || x.shape[1] < 1)
        return layer_fail(host, b, "batch_norm", PLX_SHAPE_MISMATCH,
                          "needs an input [N, C, ...] with at least 2 dims and C > 0, got %s",
                          layer_format(&x, sx, sizeof sx));
    int64_t channels = x.shape[1];
    plx_initializer ones = layer_init_of(PLX_INIT_ONES), zeros = layer_init_of(PLX_INIT_ZEROS);
    plx_value in[5] = {b->inputs[0], -1, -1, -1, -1};
    if ((st = host->graph_param(host->host, b->graph, "weight", 1, &channels, &ones, &in[1])) != PLX_OK ||
        (st = host->graph_param(host->host, b->graph, "bias", 1, &channels, &zeros, &in[2])) != PLX_OK ||
        (st = host->graph_state(host->host, b->graph, "running_mean", 1, &channels, &zeros, &in[3])) != PLX_OK ||
        (st = host->graph_state(host->host, b->graph, "running_var", 1, &channels, &ones, &in[4])) != PLX_OK)
        return st;
    plx_batch_norm_attrs a = {sizeof a, (float)eps, (float)momentum, b->training ? 1 : 0};
    plx_value out[3];
    if ((st = host->graph_op(host->host, b->graph, "core.batch_norm", &a, in, 5, out, 3)) != PLX_OK)
        return st;
    return layer_output(out[0], outputs, max_outputs, n_outputs);
}

static plx_status layer_norm_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                   int32_t max_outputs, int32_t *n_outputs)
{
    double eps = 0.0;
    int64_t dims = 1;
    plx_status st;
    if ((st = read_eps(host, b, "layer_norm", &eps)) != PLX_OK ||
        (st = host->config_int(host->host, b->config, "normalized_dims", &dims)) != PLX_OK)
        return st;
    layer_value_info x;
    if ((st = layer_input(host, b, 0, &x)) != PLX_OK || (st = layer_require_float(host, b, "layer_norm", &x)) != PLX_OK)
        return st;
    char sx[128];
    if (dims < 1 || dims > x.ndim)
        return layer_fail(host, b, "layer_norm", PLX_INVALID_ARGUMENT,
                          "'normalized_dims' must be in [1, %d] for the input %s, got %lld", (int)x.ndim,
                          layer_format(&x, sx, sizeof sx), (long long)dims);
    const int64_t *shape = &x.shape[x.ndim - dims];
    plx_initializer ones = layer_init_of(PLX_INIT_ONES), zeros = layer_init_of(PLX_INIT_ZEROS);
    plx_value in[3] = {b->inputs[0], -1, -1};
    if ((st = host->graph_param(host->host, b->graph, "weight", (int32_t)dims, shape, &ones, &in[1])) != PLX_OK ||
        (st = host->graph_param(host->host, b->graph, "bias", (int32_t)dims, shape, &zeros, &in[2])) != PLX_OK)
        return st;
    plx_layer_norm_attrs a = {sizeof a, (float)eps, (int32_t)dims};
    plx_value out[3];
    if ((st = host->graph_op(host->host, b->graph, "core.layer_norm", &a, in, 3, out, 3)) != PLX_OK)
        return st;
    return layer_output(out[0], outputs, max_outputs, n_outputs);
}

const plx_layer_type layer_batch_norm = {
    .struct_size = sizeof(plx_layer_type),
    .name = "batch_norm",
    .description = "batch normalization over dim 1 of [N, C, ...] (torch.nn.BatchNorm1d/2d/3d)",
    .keys = batch_norm_keys,
    .n_keys = LAYER_KEY_COUNT(batch_norm_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .build = batch_norm_build,
};

const plx_layer_type layer_layer_norm = {
    .struct_size = sizeof(plx_layer_type),
    .name = "layer_norm",
    .description = "layer normalization over the last N dims (torch.nn.LayerNorm)",
    .keys = layer_norm_keys,
    .n_keys = LAYER_KEY_COUNT(layer_norm_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .build = layer_norm_build,
};

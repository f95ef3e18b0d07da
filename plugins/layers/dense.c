/*
 * dense.c — the fully connected layer, as torch.nn.Linear: y = x W^T + b
 * with weight [units, in_features] and bias [units], so a PyTorch
 * state_dict loads by name. Inputs of any rank >= 1 ([..., in_features])
 * are flattened to one matrix for a single GEMM and reshaped back.
 */
#include "layers.h"

static const plx_config_key dense_keys[] = {
    LAYER_KEY("units", PLX_CONFIG_INT, 1, NULL, "output features (> 0)"),
    LAYER_KEY("use_bias", PLX_CONFIG_BOOL, 0, "true", "add a learned bias"),
    LAYER_KEY("init", PLX_CONFIG_STRING, 0, "\"default\"",
              "weight initializer: default (PyTorch), xavier_uniform, xavier_normal, he_uniform, he_normal, zeros"),
};

static plx_status dense_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                              int32_t max_outputs, int32_t *n_outputs)
{
    int64_t units = 0;
    int32_t use_bias = 1;
    plx_status st;
    if ((st = host->config_int(host->host, b->config, "units", &units)) != PLX_OK ||
        (st = host->config_bool(host->host, b->config, "use_bias", &use_bias)) != PLX_OK)
        return st;
    if (units < 1)
        return layer_fail(host, b, "dense", PLX_INVALID_ARGUMENT, "'units' must be > 0, got %lld", (long long)units);
    layer_value_info x;
    if ((st = layer_input(host, b, 0, &x)) != PLX_OK || (st = layer_require_float(host, b, "dense", &x)) != PLX_OK)
        return st;
    char sx[128];
    if (x.ndim < 1 || x.shape[x.ndim - 1] < 1)
        return layer_fail(host, b, "dense", PLX_SHAPE_MISMATCH,
                          "needs an input [..., in_features] with in_features > 0, got %s",
                          layer_format(&x, sx, sizeof sx));
    int64_t in_features = x.shape[x.ndim - 1];
    plx_initializer winit, binit;
    if ((st = layer_weight_init(host, b, "dense", (double)in_features, &winit, &binit)) != PLX_OK)
        return st;
    int64_t wshape[2] = {units, in_features};
    plx_value w, bias = -1;
    if ((st = host->graph_param(host->host, b->graph, "weight", 2, wshape, &winit, &w)) != PLX_OK)
        return st;
    if (use_bias && (st = host->graph_param(host->host, b->graph, "bias", 1, &units, &binit, &bias)) != PLX_OK)
        return st;

    /* One GEMM over all leading dims: [rows, in] x [units, in]^T. */
    plx_value x2 = b->inputs[0];
    if (x.ndim != 2) {
        int64_t rows = 1;
        for (int32_t d = 0; d + 1 < x.ndim; d++)
            rows *= x.shape[d];
        int64_t flat[2] = {rows, in_features};
        if ((st = layer_reshape(host, b, x2, 2, flat, &x2)) != PLX_OK)
            return st;
    }
    plx_matmul_attrs mm = {sizeof mm, 0, 1};
    plx_value in[2] = {x2, w}, y;
    if ((st = host->graph_op(host->host, b->graph, "core.matmul", &mm, in, 2, &y, 1)) != PLX_OK)
        return st;
    if (use_bias) {
        plx_value add_in[2] = {y, bias};
        if ((st = host->graph_op(host->host, b->graph, "core.add", NULL, add_in, 2, &y, 1)) != PLX_OK)
            return st;
    }
    if (x.ndim != 2) {
        int64_t shape[PLX_MAX_DIMS];
        for (int32_t d = 0; d + 1 < x.ndim; d++)
            shape[d] = x.shape[d];
        shape[x.ndim - 1] = units;
        if ((st = layer_reshape(host, b, y, x.ndim, shape, &y)) != PLX_OK)
            return st;
    }
    return layer_output(y, outputs, max_outputs, n_outputs);
}

const plx_layer_type layer_dense = {
    .struct_size = sizeof(plx_layer_type),
    .name = "dense",
    .description = "fully connected: y = x W^T + b (torch.nn.Linear); weight [units, in], bias [units]",
    .keys = dense_keys,
    .n_keys = LAYER_KEY_COUNT(dense_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .build = dense_build,
};

/*
 * pool.c — pooling over NCHW, as torch.nn.MaxPool2d, AvgPool2d and
 * AdaptiveAvgPool2d(1) (global_avg_pool2d, output [N, C, 1, 1]). No
 * parameters. An unset stride means "the kernel size", as PyTorch's None.
 */
#include "layers.h"

static const plx_config_key max_pool2d_keys[] = {
    LAYER_KEY("kernel", PLX_CONFIG_INTS, 1, NULL, "window size: k or [kh, kw] (> 0)"),
    LAYER_KEY("stride", PLX_CONFIG_INTS, 0, "[]", "stride: s or [sh, sw] (> 0); unset: the kernel size"),
    LAYER_KEY("padding", PLX_CONFIG_INTS, 0, "0", "implicit -inf padding: p or [ph, pw] (at most half the kernel)"),
    LAYER_KEY("dilation", PLX_CONFIG_INTS, 0, "1", "window dilation: d or [dh, dw] (> 0)"),
    LAYER_KEY("ceil_mode", PLX_CONFIG_BOOL, 0, "false", "round the output size up instead of down"),
};

static const plx_config_key avg_pool2d_keys[] = {
    LAYER_KEY("kernel", PLX_CONFIG_INTS, 1, NULL, "window size: k or [kh, kw] (> 0)"),
    LAYER_KEY("stride", PLX_CONFIG_INTS, 0, "[]", "stride: s or [sh, sw] (> 0); unset: the kernel size"),
    LAYER_KEY("padding", PLX_CONFIG_INTS, 0, "0", "implicit zero padding: p or [ph, pw] (at most half the kernel)"),
    LAYER_KEY("ceil_mode", PLX_CONFIG_BOOL, 0, "false", "round the output size up instead of down"),
    LAYER_KEY("count_include_pad", PLX_CONFIG_BOOL, 0, "true", "count padded zeros in the average's divisor"),
};

static plx_status require_nchw(const plx_host_api *host, const plx_layer_build *b, const char *type)
{
    layer_value_info x;
    plx_status st;
    if ((st = layer_input(host, b, 0, &x)) != PLX_OK || (st = layer_require_float(host, b, type, &x)) != PLX_OK)
        return st;
    char sx[128];
    if (x.ndim != 4)
        return layer_fail(host, b, type, PLX_SHAPE_MISMATCH, "needs a 4-D NCHW input, got %s",
                          layer_format(&x, sx, sizeof sx));
    return PLX_OK;
}

static plx_status pool_build(const plx_host_api *host, const plx_layer_build *b, bool is_max, plx_value *outputs,
                             int32_t max_outputs, int32_t *n_outputs)
{
    const char *type = is_max ? "max_pool2d" : "avg_pool2d";
    plx_pool2d_attrs a = PLX_POOL2D_ATTRS_DEFAULT;
    int32_t ceil_mode = 0, count_include_pad = 1;
    plx_status st;
    if ((st = layer_pair(host, b, type, "kernel", 1, NULL, a.kernel)) != PLX_OK ||
        (st = layer_pair(host, b, type, "stride", 1, a.kernel, a.stride)) != PLX_OK ||
        (st = layer_pair(host, b, type, "padding", 0, NULL, a.padding)) != PLX_OK ||
        (st = host->config_bool(host->host, b->config, "ceil_mode", &ceil_mode)) != PLX_OK)
        return st;
    if (is_max) {
        if ((st = layer_pair(host, b, type, "dilation", 1, NULL, a.dilation)) != PLX_OK)
            return st;
    } else if ((st = host->config_bool(host->host, b->config, "count_include_pad", &count_include_pad)) != PLX_OK)
        return st;
    for (int i = 0; i < 2; i++)
        if (a.padding[i] > a.kernel[i] / 2)
            return layer_fail(host, b, type, PLX_INVALID_ARGUMENT,
                              "'padding' (%d, %d) must be at most half of 'kernel' (%d, %d)", (int)a.padding[0],
                              (int)a.padding[1], (int)a.kernel[0], (int)a.kernel[1]);
    a.ceil_mode = ceil_mode;
    a.count_include_pad = count_include_pad;
    if ((st = require_nchw(host, b, type)) != PLX_OK)
        return st;
    plx_value y;
    st = host->graph_op(host->host, b->graph, is_max ? "core.max_pool2d" : "core.avg_pool2d", &a, b->inputs, 1, &y, 1);
    if (st != PLX_OK)
        return st;
    return layer_output(y, outputs, max_outputs, n_outputs);
}

static plx_status max_pool2d_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                   int32_t max_outputs, int32_t *n_outputs)
{
    return pool_build(host, b, true, outputs, max_outputs, n_outputs);
}

static plx_status avg_pool2d_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                   int32_t max_outputs, int32_t *n_outputs)
{
    return pool_build(host, b, false, outputs, max_outputs, n_outputs);
}

static plx_status global_avg_pool2d_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                          int32_t max_outputs, int32_t *n_outputs)
{
    plx_status st = require_nchw(host, b, "global_avg_pool2d");
    if (st != PLX_OK)
        return st;
    plx_value y;
    if ((st = host->graph_op(host->host, b->graph, "core.global_avg_pool2d", NULL, b->inputs, 1, &y, 1)) != PLX_OK)
        return st;
    return layer_output(y, outputs, max_outputs, n_outputs);
}

const plx_layer_type layer_max_pool2d = {
    .struct_size = sizeof(plx_layer_type),
    .name = "max_pool2d",
    .description = "2-D max pooling over NCHW (torch.nn.MaxPool2d)",
    .keys = max_pool2d_keys,
    .n_keys = LAYER_KEY_COUNT(max_pool2d_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .build = max_pool2d_build,
};

const plx_layer_type layer_avg_pool2d = {
    .struct_size = sizeof(plx_layer_type),
    .name = "avg_pool2d",
    .description = "2-D average pooling over NCHW (torch.nn.AvgPool2d)",
    .keys = avg_pool2d_keys,
    .n_keys = LAYER_KEY_COUNT(avg_pool2d_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .build = avg_pool2d_build,
};

const plx_layer_type layer_global_avg_pool2d = {
    .struct_size = sizeof(plx_layer_type),
    .name = "global_avg_pool2d",
    .description = "mean over H and W of NCHW, giving [N, C, 1, 1] (torch.nn.AdaptiveAvgPool2d(1))",
    .keys = NULL,
    .n_keys = 0,
    .min_inputs = 1,
    .max_inputs = 1,
    .build = global_avg_pool2d_build,
};

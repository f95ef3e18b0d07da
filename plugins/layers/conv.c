/*
 * conv.c — 2-D convolution over NCHW, as torch.nn.Conv2d: weight
 * [filters, in_channels/groups, kH, kW], bias [filters], PyTorch's default
 * initialization. The bias rides on core.conv2d's optional third input.
 */
#include "layers.h"

static const plx_config_key conv2d_keys[] = {
    LAYER_KEY("filters", PLX_CONFIG_INT, 1, NULL, "output channels (> 0, divisible by groups)"),
    LAYER_KEY("kernel", PLX_CONFIG_INTS, 1, NULL, "kernel size: k or [kh, kw] (> 0)"),
    LAYER_KEY("stride", PLX_CONFIG_INTS, 0, "1", "stride: s or [sh, sw] (> 0)"),
    LAYER_KEY("padding", PLX_CONFIG_INTS, 0, "0", "zero padding on each side: p or [ph, pw] (>= 0)"),
    LAYER_KEY("dilation", PLX_CONFIG_INTS, 0, "1", "kernel dilation: d or [dh, dw] (> 0)"),
    LAYER_KEY("groups", PLX_CONFIG_INT, 0, "1", "channel groups (> 0; divides in and out channels)"),
    LAYER_KEY("use_bias", PLX_CONFIG_BOOL, 0, "true", "add a learned bias per output channel"),
    LAYER_KEY("init", PLX_CONFIG_STRING, 0, "\"default\"",
              "weight initializer: default (PyTorch), xavier_uniform, xavier_normal, he_uniform, he_normal, zeros"),
};

static plx_status conv2d_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                               int32_t max_outputs, int32_t *n_outputs)
{
    int64_t filters = 0, groups = 1;
    int32_t use_bias = 1, kernel[2], stride[2], padding[2], dilation[2];
    plx_status st;
    if ((st = host->config_int(host->host, b->config, "filters", &filters)) != PLX_OK ||
        (st = host->config_int(host->host, b->config, "groups", &groups)) != PLX_OK ||
        (st = host->config_bool(host->host, b->config, "use_bias", &use_bias)) != PLX_OK ||
        (st = layer_pair(host, b, "conv2d", "kernel", 1, NULL, kernel)) != PLX_OK ||
        (st = layer_pair(host, b, "conv2d", "stride", 1, NULL, stride)) != PLX_OK ||
        (st = layer_pair(host, b, "conv2d", "padding", 0, NULL, padding)) != PLX_OK ||
        (st = layer_pair(host, b, "conv2d", "dilation", 1, NULL, dilation)) != PLX_OK)
        return st;
    if (filters < 1)
        return layer_fail(host, b, "conv2d", PLX_INVALID_ARGUMENT, "'filters' must be > 0, got %lld",
                          (long long)filters);
    if (groups < 1 || groups > INT32_MAX)
        return layer_fail(host, b, "conv2d", PLX_INVALID_ARGUMENT, "'groups' must be > 0, got %lld", (long long)groups);
    layer_value_info x;
    if ((st = layer_input(host, b, 0, &x)) != PLX_OK || (st = layer_require_float(host, b, "conv2d", &x)) != PLX_OK)
        return st;
    char sx[128];
    if (x.ndim != 4)
        return layer_fail(host, b, "conv2d", PLX_SHAPE_MISMATCH, "needs a 4-D NCHW input, got %s",
                          layer_format(&x, sx, sizeof sx));
    int64_t channels = x.shape[1];
    if (channels < 1 || channels % groups != 0 || filters % groups != 0)
        return layer_fail(host, b, "conv2d", PLX_SHAPE_MISMATCH,
                          "'groups' %lld must divide the input channels (input %s) and 'filters' %lld",
                          (long long)groups, layer_format(&x, sx, sizeof sx), (long long)filters);

    int64_t wshape[4] = {filters, channels / groups, kernel[0], kernel[1]};
    double fan_in = (double)wshape[1] * (double)kernel[0] * (double)kernel[1];
    plx_initializer winit, binit;
    if ((st = layer_weight_init(host, b, "conv2d", fan_in, &winit, &binit)) != PLX_OK)
        return st;
    plx_value in[3] = {b->inputs[0], -1, -1};
    if ((st = host->graph_param(host->host, b->graph, "weight", 4, wshape, &winit, &in[1])) != PLX_OK)
        return st;
    if (use_bias && (st = host->graph_param(host->host, b->graph, "bias", 1, &filters, &binit, &in[2])) != PLX_OK)
        return st;
    plx_conv2d_attrs a = {
        sizeof a, {stride[0], stride[1]}, {padding[0], padding[1]}, {dilation[0], dilation[1]}, (int32_t)groups};
    plx_value y;
    if ((st = host->graph_op(host->host, b->graph, "core.conv2d", &a, in, use_bias ? 3 : 2, &y, 1)) != PLX_OK)
        return st;
    return layer_output(y, outputs, max_outputs, n_outputs);
}

const plx_layer_type layer_conv2d = {
    .struct_size = sizeof(plx_layer_type),
    .name = "conv2d",
    .description = "2-D convolution over NCHW (torch.nn.Conv2d); weight [filters, C/groups, kh, kw], bias [filters]",
    .keys = conv2d_keys,
    .n_keys = LAYER_KEY_COUNT(conv2d_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .build = conv2d_build,
};

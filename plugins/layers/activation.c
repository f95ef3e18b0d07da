/*
 * activation.c — parameter-free elementwise activations and the softmax
 * pair, each one core op with PyTorch's defaults: relu, leaky_relu
 * (negative_slope 0.01), elu (alpha 1), gelu (approximate "none" | "tanh"),
 * sigmoid, tanh, softmax and log_softmax (axis -1).
 */
#include <math.h>
#include <string.h>

#include "layers.h"

static const plx_config_key leaky_relu_keys[] = {
    LAYER_KEY("negative_slope", PLX_CONFIG_FLOAT, 0, "0.01", "slope for x < 0"),
};
static const plx_config_key elu_keys[] = {
    LAYER_KEY("alpha", PLX_CONFIG_FLOAT, 0, "1.0", "alpha * (exp(x) - 1) for x < 0"),
};
static const plx_config_key gelu_keys[] = {
    LAYER_KEY("approximate", PLX_CONFIG_STRING, 0, "\"none\"", "\"none\" (exact, erf) or \"tanh\""),
};
static const plx_config_key softmax_keys[] = {
    LAYER_KEY("axis", PLX_CONFIG_INT, 0, "-1", "the axis to normalize over; negative counts from the end"),
};

/* Adds `op` on the (f32) input. */
static plx_status unary(const plx_host_api *host, const plx_layer_build *b, const char *type, const char *op,
                        const void *attrs, plx_value *outputs, int32_t max_outputs, int32_t *n_outputs)
{
    layer_value_info x;
    plx_status st;
    if ((st = layer_input(host, b, 0, &x)) != PLX_OK || (st = layer_require_float(host, b, type, &x)) != PLX_OK)
        return st;
    plx_value y;
    if ((st = host->graph_op(host->host, b->graph, op, attrs, b->inputs, 1, &y, 1)) != PLX_OK)
        return st;
    return layer_output(y, outputs, max_outputs, n_outputs);
}

static plx_status read_finite(const plx_host_api *host, const plx_layer_build *b, const char *type, const char *key,
                              float *out)
{
    double v = 0.0;
    plx_status st = host->config_float(host->host, b->config, key, &v);
    if (st != PLX_OK)
        return st;
    if (!isfinite((float)v))
        return layer_fail(host, b, type, PLX_INVALID_ARGUMENT, "'%s' = %g does not fit a float", key, v);
    *out = (float)v;
    return PLX_OK;
}

static plx_status relu_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                             int32_t max_outputs, int32_t *n_outputs)
{
    return unary(host, b, "relu", "core.relu", NULL, outputs, max_outputs, n_outputs);
}

static plx_status leaky_relu_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                   int32_t max_outputs, int32_t *n_outputs)
{
    plx_leaky_relu_attrs a = PLX_LEAKY_RELU_ATTRS_DEFAULT;
    plx_status st = read_finite(host, b, "leaky_relu", "negative_slope", &a.negative_slope);
    if (st != PLX_OK)
        return st;
    return unary(host, b, "leaky_relu", "core.leaky_relu", &a, outputs, max_outputs, n_outputs);
}

static plx_status elu_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs, int32_t max_outputs,
                            int32_t *n_outputs)
{
    plx_elu_attrs a = PLX_ELU_ATTRS_DEFAULT;
    plx_status st = read_finite(host, b, "elu", "alpha", &a.alpha);
    if (st != PLX_OK)
        return st;
    return unary(host, b, "elu", "core.elu", &a, outputs, max_outputs, n_outputs);
}

static plx_status gelu_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                             int32_t max_outputs, int32_t *n_outputs)
{
    const char *approximate = NULL;
    plx_status st = host->config_string(host->host, b->config, "approximate", &approximate);
    if (st != PLX_OK)
        return st;
    plx_gelu_attrs a = PLX_GELU_ATTRS_DEFAULT;
    if (strcmp(approximate, "tanh") == 0)
        a.approximate_tanh = 1;
    else if (strcmp(approximate, "none") != 0)
        return layer_fail(host, b, "gelu", PLX_INVALID_ARGUMENT,
                          "'approximate' is \"%s\"; expected \"none\" or \"tanh\"", approximate);
    return unary(host, b, "gelu", "core.gelu", &a, outputs, max_outputs, n_outputs);
}

static plx_status sigmoid_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                int32_t max_outputs, int32_t *n_outputs)
{
    return unary(host, b, "sigmoid", "core.sigmoid", NULL, outputs, max_outputs, n_outputs);
}

static plx_status tanh_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                             int32_t max_outputs, int32_t *n_outputs)
{
    return unary(host, b, "tanh", "core.tanh", NULL, outputs, max_outputs, n_outputs);
}

static plx_status softmax_common(const plx_host_api *host, const plx_layer_build *b, const char *type, const char *op,
                                 plx_value *outputs, int32_t max_outputs, int32_t *n_outputs)
{
    int64_t axis = -1;
    plx_status st = host->config_int(host->host, b->config, "axis", &axis);
    if (st != PLX_OK)
        return st;
    layer_value_info x;
    if ((st = layer_input(host, b, 0, &x)) != PLX_OK)
        return st;
    char sx[128];
    if (x.ndim < 1 || axis < -(int64_t)x.ndim || axis >= x.ndim)
        return layer_fail(host, b, type, PLX_INVALID_ARGUMENT, "'axis' %lld is out of range for the input %s",
                          (long long)axis, layer_format(&x, sx, sizeof sx));
    plx_softmax_attrs a = {sizeof a, (int32_t)axis};
    return unary(host, b, type, op, &a, outputs, max_outputs, n_outputs);
}

static plx_status softmax_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                int32_t max_outputs, int32_t *n_outputs)
{
    return softmax_common(host, b, "softmax", "core.softmax", outputs, max_outputs, n_outputs);
}

static plx_status log_softmax_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                    int32_t max_outputs, int32_t *n_outputs)
{
    return softmax_common(host, b, "log_softmax", "core.log_softmax", outputs, max_outputs, n_outputs);
}

#define ACTIVATION(type_name, desc, key_table, n, build_fn)                                                            \
    const plx_layer_type layer_##type_name = {                                                                         \
        .struct_size = sizeof(plx_layer_type),                                                                         \
        .name = #type_name,                                                                                            \
        .description = desc,                                                                                           \
        .keys = key_table,                                                                                             \
        .n_keys = n,                                                                                                   \
        .min_inputs = 1,                                                                                               \
        .max_inputs = 1,                                                                                               \
        .build = build_fn,                                                                                             \
    }

ACTIVATION(relu, "max(x, 0) (torch.nn.ReLU)", NULL, 0, relu_build);
ACTIVATION(leaky_relu, "x for x >= 0, negative_slope * x below (torch.nn.LeakyReLU)", leaky_relu_keys,
           LAYER_KEY_COUNT(leaky_relu_keys), leaky_relu_build);
ACTIVATION(elu, "x for x > 0, alpha * (exp(x) - 1) below (torch.nn.ELU)", elu_keys, LAYER_KEY_COUNT(elu_keys),
           elu_build);
ACTIVATION(gelu, "x * Phi(x), exact or tanh-approximated (torch.nn.GELU)", gelu_keys, LAYER_KEY_COUNT(gelu_keys),
           gelu_build);
ACTIVATION(sigmoid, "1 / (1 + exp(-x)) (torch.nn.Sigmoid)", NULL, 0, sigmoid_build);
ACTIVATION(tanh, "tanh(x) (torch.nn.Tanh)", NULL, 0, tanh_build);
ACTIVATION(softmax, "exp(x) / sum(exp(x)) along axis (torch.nn.Softmax)", softmax_keys, LAYER_KEY_COUNT(softmax_keys),
           softmax_build);
ACTIVATION(log_softmax, "x - logsumexp(x) along axis (torch.nn.LogSoftmax)", softmax_keys,
           LAYER_KEY_COUNT(softmax_keys), log_softmax_build);

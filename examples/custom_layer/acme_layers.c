/*
 * acme_layers.c — a third-party LAYER plugin for Plexus, built outside the
 * Plexus tree against the installed headers (see README.md). It adds two
 * layer types that model files name like built-ins:
 *
 *   "acme.swish_dense"  y = z * sigmoid(beta * z), z = x W^T + b
 *                       keys: units (required), beta (1.0), learn_beta
 *                       (false: beta is a constant; true: a trained
 *                       parameter "<layer>.beta" starting at beta), use_bias
 *   "acme.gated"        y = (x Wv^T + bv) * sigmoid(x Wg^T + bg), a gated
 *                       linear unit; keys: units (required)
 *
 * Layers never compute: build() adds core ops (core.matmul, core.add,
 * core.mul, core.sigmoid, core.fill) and parameters through the host table.
 * Their gradients come from the runtime's autodiff over those core ops, and
 * every backend that implements the ops runs them, so this file has no
 * gradient code and no kernels. It never links against libplexus.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <plexus_plugin.h>

/* ---- Keys --------------------------------------------------------------- */

#define ACME_KEY(name, type, required, default_json, doc)                                                              \
    {                                                                                                                  \
        sizeof(plx_config_key), (name), (type), (required), (default_json), (doc)                                      \
    }
#define ACME_COUNT(a) ((int32_t)(sizeof(a) / sizeof((a)[0])))

static const plx_config_key swish_dense_keys[] = {
    ACME_KEY("units", PLX_CONFIG_INT, 1, NULL, "output features (> 0)"),
    ACME_KEY("beta", PLX_CONFIG_FLOAT, 0, "1.0", "swish slope: z * sigmoid(beta * z) (finite)"),
    ACME_KEY("learn_beta", PLX_CONFIG_BOOL, 0, "false", "train beta as a parameter '<layer>.beta' starting at beta"),
    ACME_KEY("use_bias", PLX_CONFIG_BOOL, 0, "true", "add a learned bias before the activation"),
};

static const plx_config_key gated_keys[] = {
    ACME_KEY("units", PLX_CONFIG_INT, 1, NULL, "output features (> 0)"),
};

/* ---- Helpers ------------------------------------------------------------ */

/* Sets "<instance>: <type>: <detail>" as the error and returns code (the
 * runtime adds the file and JSON path of the layer). */
static plx_status acme_fail(const plx_host_api *host, const plx_layer_build *b, const char *type, plx_status code,
                            const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static plx_status acme_fail(const plx_host_api *host, const plx_layer_build *b, const char *type, plx_status code,
                            const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return host->set_error(host->host, code, "%s: %s: %s", b->name ? b->name : "(unnamed)", type, detail);
}

static plx_status read_units(const plx_host_api *host, const plx_layer_build *b, const char *type, int64_t *units)
{
    plx_status st = host->config_int(host->host, b->config, "units", units);
    if (st != PLX_OK)
        return st;
    if (*units < 1 || *units > (1 << 24))
        return acme_fail(host, b, type, PLX_INVALID_ARGUMENT, "'units' must be in [1, 16777216], got %lld",
                         (long long)*units);
    return PLX_OK;
}

/* The input's feature count: the layer takes an f32 [batch, features]. */
static plx_status read_features(const plx_host_api *host, const plx_layer_build *b, const char *type,
                                int64_t *features)
{
    plx_dtype dtype;
    int32_t ndim = 0;
    int64_t shape[PLX_MAX_DIMS];
    plx_status st = host->graph_value_info(host->host, b->graph, b->inputs[0], &dtype, &ndim, shape);
    if (st != PLX_OK)
        return st;
    if (!(dtype.code == PLX_DTYPE_CODE_FLOAT && dtype.bits == 32) || ndim != 2 || shape[1] < 1)
        return acme_fail(host, b, type, PLX_SHAPE_MISMATCH,
                         "needs an f32 input [batch, features] (add a \"flatten\" layer before it), got a %d-D input",
                         (int)ndim);
    *features = shape[1];
    return PLX_OK;
}

/* A torch.nn.Linear: x [N, in] -> x W^T + b [N, units], with parameters
 * "<prefix>weight" [units, in] and "<prefix>bias" [units] initialized as
 * PyTorch does (uniform in +-1/sqrt(in)). */
static plx_status linear(const plx_host_api *host, const plx_layer_build *b, const char *prefix, int64_t in,
                         int64_t units, int use_bias, plx_value *out)
{
    char wname[64], bname[64];
    snprintf(wname, sizeof wname, "%sweight", prefix);
    snprintf(bname, sizeof bname, "%sbias", prefix);
    float bound = (float)(1.0 / sqrt((double)in));
    plx_initializer init = {sizeof init, PLX_INIT_UNIFORM, -bound, bound, 0.0f};
    int64_t wshape[2] = {units, in};
    plx_value w, bias;
    plx_status st = host->graph_param(host->host, b->graph, wname, 2, wshape, &init, &w);
    if (st != PLX_OK)
        return st;
    plx_matmul_attrs mm = {sizeof mm, 0, 1}; /* x [N, in] @ W^T */
    plx_value mm_in[2] = {b->inputs[0], w};
    if ((st = host->graph_op(host->host, b->graph, "core.matmul", &mm, mm_in, 2, out, 1)) != PLX_OK || !use_bias)
        return st;
    if ((st = host->graph_param(host->host, b->graph, bname, 1, &units, &init, &bias)) != PLX_OK)
        return st;
    plx_value add_in[2] = {*out, bias};
    return host->graph_op(host->host, b->graph, "core.add", NULL, add_in, 2, out, 1);
}

static plx_status mul(const plx_host_api *host, const plx_layer_build *b, plx_value x, plx_value y, plx_value *out)
{
    plx_value in[2] = {x, y};
    return host->graph_op(host->host, b->graph, "core.mul", NULL, in, 2, out, 1);
}

static plx_status sigmoid(const plx_host_api *host, const plx_layer_build *b, plx_value x, plx_value *out)
{
    return host->graph_op(host->host, b->graph, "core.sigmoid", NULL, &x, 1, out, 1);
}

static plx_status one_output(plx_value v, plx_value *outputs, int32_t max_outputs, int32_t *n_outputs)
{
    if (max_outputs < 1)
        return PLX_INVALID_ARGUMENT;
    outputs[0] = v;
    *n_outputs = 1;
    return PLX_OK;
}

/* ---- acme.swish_dense --------------------------------------------------- */

static plx_status swish_dense_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                    int32_t max_outputs, int32_t *n_outputs)
{
    static const char *type = "acme.swish_dense";
    int64_t units = 0, in = 0;
    double beta = 1.0;
    int32_t learn_beta = 0, use_bias = 1;
    plx_status st;
    if ((st = read_units(host, b, type, &units)) != PLX_OK ||
        (st = host->config_float(host->host, b->config, "beta", &beta)) != PLX_OK ||
        (st = host->config_bool(host->host, b->config, "learn_beta", &learn_beta)) != PLX_OK ||
        (st = host->config_bool(host->host, b->config, "use_bias", &use_bias)) != PLX_OK)
        return st;
    if (!isfinite((float)beta))
        return acme_fail(host, b, type, PLX_INVALID_ARGUMENT, "'beta' = %g does not fit a float", beta);
    if ((st = read_features(host, b, type, &in)) != PLX_OK)
        return st;

    plx_value z, beta_v, bz, gate, y;
    if ((st = linear(host, b, "", in, units, use_bias, &z)) != PLX_OK)
        return st;
    int64_t one = 1;
    if (learn_beta) {
        plx_initializer init = {sizeof init, PLX_INIT_CONSTANT, (float)beta, 0.0f, 0.0f};
        st = host->graph_param(host->host, b->graph, "beta", 1, &one, &init, &beta_v);
    } else {
        /* A constant: a source op, so autodiff stops there. */
        plx_fill_attrs fill;
        memset(&fill, 0, sizeof fill);
        fill.struct_size = sizeof fill;
        fill.dtype = PLX_F32;
        fill.ndim = 1;
        fill.shape[0] = 1;
        fill.value = beta;
        st = host->graph_op(host->host, b->graph, "core.fill", &fill, NULL, 0, &beta_v, 1);
    }
    if (st != PLX_OK || (st = mul(host, b, z, beta_v, &bz)) != PLX_OK || (st = sigmoid(host, b, bz, &gate)) != PLX_OK ||
        (st = mul(host, b, z, gate, &y)) != PLX_OK)
        return st;
    return one_output(y, outputs, max_outputs, n_outputs);
}

static const plx_layer_type swish_dense_type = {
    .struct_size = sizeof(plx_layer_type),
    .name = "acme.swish_dense",
    .description = "dense then swish: z * sigmoid(beta * z), z = x W^T + b; weight [units, in], bias [units]",
    .keys = swish_dense_keys,
    .n_keys = ACME_COUNT(swish_dense_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .build = swish_dense_build,
};

/* ---- acme.gated --------------------------------------------------------- */

static plx_status gated_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                              int32_t max_outputs, int32_t *n_outputs)
{
    static const char *type = "acme.gated";
    int64_t units = 0, in = 0;
    plx_status st;
    if ((st = read_units(host, b, type, &units)) != PLX_OK || (st = read_features(host, b, type, &in)) != PLX_OK)
        return st;
    plx_value value, gate_logits, gate, y;
    if ((st = linear(host, b, "value_", in, units, 1, &value)) != PLX_OK ||
        (st = linear(host, b, "gate_", in, units, 1, &gate_logits)) != PLX_OK ||
        (st = sigmoid(host, b, gate_logits, &gate)) != PLX_OK || (st = mul(host, b, value, gate, &y)) != PLX_OK)
        return st;
    return one_output(y, outputs, max_outputs, n_outputs);
}

static const plx_layer_type gated_type = {
    .struct_size = sizeof(plx_layer_type),
    .name = "acme.gated",
    .description = "gated linear unit: (x Wv^T + bv) * sigmoid(x Wg^T + bg); value_weight, gate_weight [units, in]",
    .keys = gated_keys,
    .n_keys = ACME_COUNT(gated_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .build = gated_build,
};

/* ---- The descriptor ----------------------------------------------------- */

/* Layer types need the graph-building part of the host table (ABI 1.1). A
 * runtime of the same major but an older minor loads the plugin, and this
 * probe then says why it cannot be used instead of crashing in build(). */
static plx_status acme_probe(const plx_host_api *host, char *reason, size_t reason_cap)
{
    if (!PLX_HAS_MEMBER(host, plx_host_api, config_ints) || host->graph_op == NULL || host->graph_param == NULL) {
        snprintf(reason, reason_cap, "needs a runtime with ABI >= 1.1 (graph building for layer types)");
        return PLX_UNAVAILABLE;
    }
    return PLX_OK;
}

static const plx_layer_type *const acme_layer_types[] = {&swish_dense_type, &gated_type};

static const plx_plugin_desc acme_layers_plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = "acme_layers",
    .version = "1.0.0",
    .description = "example third-party layer types: acme.swish_dense, acme.gated",
    .probe = acme_probe,
    .init = NULL,
    .shutdown = NULL,
    .backend = NULL,
    .layers = acme_layer_types,
    .n_layers = ACME_COUNT(acme_layer_types),
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    return &acme_layers_plugin;
}

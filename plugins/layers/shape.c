/*
 * shape.c — layers that only change a tensor's shape: flatten, as
 * torch.nn.Flatten (dims start_dim..end_dim merged into one; the defaults
 * keep the batch dim and flatten the rest).
 */
#include "layers.h"

static const plx_config_key flatten_keys[] = {
    LAYER_KEY("start_dim", PLX_CONFIG_INT, 0, "1", "first dim to merge; negative counts from the end"),
    LAYER_KEY("end_dim", PLX_CONFIG_INT, 0, "-1", "last dim to merge; negative counts from the end"),
};

static plx_status flatten_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                int32_t max_outputs, int32_t *n_outputs)
{
    int64_t start = 1, end = -1;
    plx_status st;
    if ((st = host->config_int(host->host, b->config, "start_dim", &start)) != PLX_OK ||
        (st = host->config_int(host->host, b->config, "end_dim", &end)) != PLX_OK)
        return st;
    layer_value_info x;
    if ((st = layer_input(host, b, 0, &x)) != PLX_OK)
        return st;
    /* A 0-D tensor flattens like a 1-D one of one element, as in PyTorch. */
    int32_t ndim = x.ndim > 0 ? x.ndim : 1;
    if (x.ndim == 0)
        x.shape[0] = 1;
    int64_t s = start < 0 ? start + ndim : start, e = end < 0 ? end + ndim : end;
    char sx[128];
    if (s < 0 || s >= ndim || e < 0 || e >= ndim || s > e)
        return layer_fail(host, b, "flatten", PLX_INVALID_ARGUMENT,
                          "'start_dim' %lld and 'end_dim' %lld do not give a range of dims of the input %s",
                          (long long)start, (long long)end, layer_format(&x, sx, sizeof sx));
    int64_t shape[PLX_MAX_DIMS];
    int32_t n = 0;
    for (int64_t d = 0; d < s; d++)
        shape[n++] = x.shape[d];
    int64_t merged = 1;
    for (int64_t d = s; d <= e; d++)
        merged *= x.shape[d];
    shape[n++] = merged;
    for (int64_t d = e + 1; d < ndim; d++)
        shape[n++] = x.shape[d];
    if (n == x.ndim) {
        bool same = true;
        for (int32_t d = 0; d < n; d++)
            same = same && shape[d] == x.shape[d];
        if (same)
            return layer_output(b->inputs[0], outputs, max_outputs, n_outputs);
    }
    plx_value y;
    if ((st = layer_reshape(host, b, b->inputs[0], n, shape, &y)) != PLX_OK)
        return st;
    return layer_output(y, outputs, max_outputs, n_outputs);
}

const plx_layer_type layer_flatten = {
    .struct_size = sizeof(plx_layer_type),
    .name = "flatten",
    .description = "merges dims start_dim..end_dim into one (torch.nn.Flatten)",
    .keys = flatten_keys,
    .n_keys = LAYER_KEY_COUNT(flatten_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .build = flatten_build,
};

/*
 * embedding.c — a lookup table, as torch.nn.Embedding: weight
 * [num_embeddings, embedding_dim] drawn from normal(0, 1); integer (i64 or
 * i32) indices of any shape give [..., embedding_dim].
 *
 * padding_idx: that row gets no gradient, as in PyTorch. PyTorch also
 * zeroes the row at initialization; an initializer here describes a whole
 * tensor, so the row starts as normal(0, 1) draws like the others (a model
 * that needs it zero loads it from a checkpoint, where PyTorch saved it
 * zero). -1 means no padding row (PyTorch's None).
 */
#include "layers.h"

static const plx_config_key embedding_keys[] = {
    LAYER_KEY("num_embeddings", PLX_CONFIG_INT, 1, NULL, "rows of the table: indices are in [0, num_embeddings)"),
    LAYER_KEY("embedding_dim", PLX_CONFIG_INT, 1, NULL, "size of each vector (> 0)"),
    LAYER_KEY("padding_idx", PLX_CONFIG_INT, 0, "-1", "a row that gets no gradient, or -1 for none"),
};

static plx_status embedding_build(const plx_host_api *host, const plx_layer_build *b, plx_value *outputs,
                                  int32_t max_outputs, int32_t *n_outputs)
{
    int64_t rows = 0, dim = 0, padding_idx = -1;
    plx_status st;
    if ((st = host->config_int(host->host, b->config, "num_embeddings", &rows)) != PLX_OK ||
        (st = host->config_int(host->host, b->config, "embedding_dim", &dim)) != PLX_OK ||
        (st = host->config_int(host->host, b->config, "padding_idx", &padding_idx)) != PLX_OK)
        return st;
    if (rows < 1)
        return layer_fail(host, b, "embedding", PLX_INVALID_ARGUMENT, "'num_embeddings' must be > 0, got %lld",
                          (long long)rows);
    if (dim < 1)
        return layer_fail(host, b, "embedding", PLX_INVALID_ARGUMENT, "'embedding_dim' must be > 0, got %lld",
                          (long long)dim);
    if (padding_idx != -1 && (padding_idx < 0 || padding_idx >= rows))
        return layer_fail(host, b, "embedding", PLX_INVALID_ARGUMENT,
                          "'padding_idx' must be -1 (none) or in [0, %lld), got %lld", (long long)rows,
                          (long long)padding_idx);
    layer_value_info idx;
    if ((st = layer_input(host, b, 0, &idx)) != PLX_OK)
        return st;
    char si[128];
    if (idx.dtype.code != PLX_DTYPE_CODE_INT || (idx.dtype.bits != 64 && idx.dtype.bits != 32))
        return layer_fail(host, b, "embedding", PLX_DTYPE_MISMATCH, "needs integer (i64 or i32) indices, got %s",
                          layer_format(&idx, si, sizeof si));
    if (idx.ndim >= PLX_MAX_DIMS)
        return layer_fail(host, b, "embedding", PLX_SHAPE_MISMATCH,
                          "indices %s leave no room for the embedding dim (at most %d dims)",
                          layer_format(&idx, si, sizeof si), PLX_MAX_DIMS - 1);
    plx_initializer init = layer_init_of(PLX_INIT_NORMAL);
    init.a = 0.0f;
    init.b = 1.0f;
    int64_t wshape[2] = {rows, dim};
    plx_value in[2] = {-1, b->inputs[0]};
    if ((st = host->graph_param(host->host, b->graph, "weight", 2, wshape, &init, &in[0])) != PLX_OK)
        return st;
    plx_embedding_attrs a = {sizeof a, rows, padding_idx};
    plx_value y;
    if ((st = host->graph_op(host->host, b->graph, "core.embedding", &a, in, 2, &y, 1)) != PLX_OK)
        return st;
    return layer_output(y, outputs, max_outputs, n_outputs);
}

const plx_layer_type layer_embedding = {
    .struct_size = sizeof(plx_layer_type),
    .name = "embedding",
    .description = "lookup table: integer indices [...] -> [..., embedding_dim] (torch.nn.Embedding)",
    .keys = embedding_keys,
    .n_keys = LAYER_KEY_COUNT(embedding_keys),
    .min_inputs = 1,
    .max_inputs = 1,
    .build = embedding_build,
};

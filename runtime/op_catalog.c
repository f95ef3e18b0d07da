/* op_catalog.c — gathers every family's op_def table into one by-id index. */
#include "op_catalog.h"

#include <pthread.h>

#define DECLARE_FAMILY(family)                                              \
    extern const op_def op_defs_##family[];                                 \
    extern const size_t op_defs_##family##_count
DECLARE_FAMILY(elementwise);
DECLARE_FAMILY(reduce);
DECLARE_FAMILY(matmul);
DECLARE_FAMILY(conv);
DECLARE_FAMILY(pool);
DECLARE_FAMILY(norm);
DECLARE_FAMILY(softmax);
DECLARE_FAMILY(loss);
DECLARE_FAMILY(random);
DECLARE_FAMILY(embedding);
DECLARE_FAMILY(layout);
DECLARE_FAMILY(optim);

typedef struct family_table {
    const op_def *defs;
    const size_t *count;
} family_table;

static const family_table families[] = {
    {op_defs_elementwise, &op_defs_elementwise_count},
    {op_defs_reduce, &op_defs_reduce_count},
    {op_defs_matmul, &op_defs_matmul_count},
    {op_defs_conv, &op_defs_conv_count},
    {op_defs_pool, &op_defs_pool_count},
    {op_defs_norm, &op_defs_norm_count},
    {op_defs_softmax, &op_defs_softmax_count},
    {op_defs_loss, &op_defs_loss_count},
    {op_defs_random, &op_defs_random_count},
    {op_defs_embedding, &op_defs_embedding_count},
    {op_defs_layout, &op_defs_layout_count},
    {op_defs_optim, &op_defs_optim_count},
};

/* The by-id index is immutable data derived from static tables: built once,
 * thread-safely, and never changed (no mutable global state). */
static const op_def *by_id[PLX_OP_CORE_COUNT_];
static pthread_once_t by_id_once = PTHREAD_ONCE_INIT;

static void build_index(void)
{
    for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++)
        for (size_t i = 0; i < *families[f].count; i++) {
            const op_def *d = &families[f].defs[i];
            if (d->id >= 0 && d->id < PLX_OP_CORE_COUNT_ && d->infer != NULL)
                by_id[d->id] = d;
        }
}

const op_def *op_catalog_get(int32_t op_id)
{
    pthread_once(&by_id_once, build_index);
    if (op_id < 0 || op_id >= PLX_OP_CORE_COUNT_)
        return NULL;
    return by_id[op_id];
}

#include <stdio.h>
#include <string.h>

void metas_format(const tensor_meta *m, int32_t n, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < n && used < cap; i++) {
        char b[160];
        int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", meta_format(&m[i], b, sizeof b));
        if (w < 0)
            return;
        used += (size_t)w;
    }
}

plx_status op_check_arity(const op_def *def, const char *name, int32_t n_in, int32_t n_out, char *msg, size_t cap)
{
    if (n_in < def->min_inputs || (def->max_inputs >= 0 && n_in > def->max_inputs)) {
        if (def->max_inputs == def->min_inputs)
            snprintf(msg, cap, "%s: takes %d input%s, got %d", name, (int)def->min_inputs,
                     def->min_inputs == 1 ? "" : "s", (int)n_in);
        else if (def->max_inputs < 0)
            snprintf(msg, cap, "%s: takes at least %d inputs, got %d", name, (int)def->min_inputs, (int)n_in);
        else
            snprintf(msg, cap, "%s: takes %d to %d inputs, got %d", name, (int)def->min_inputs,
                     (int)def->max_inputs, (int)n_in);
        return PLX_INVALID_ARGUMENT;
    }
    if (n_out != def->n_outputs) {
        snprintf(msg, cap, "%s: has %d output%s, got %d", name, (int)def->n_outputs, def->n_outputs == 1 ? "" : "s",
                 (int)n_out);
        return PLX_INVALID_ARGUMENT;
    }
    return PLX_OK;
}

plx_status op_normalize_attrs(const op_def *def, const char *name, const void *attrs, unsigned char *buf,
                              size_t *size, char *msg, size_t cap)
{
    *size = 0;
    if (def->attrs_size == 0)
        return PLX_OK;
    if (def->attrs_size > PLX_OP_ATTRS_CAP) {
        snprintf(msg, cap, "%s: attrs struct too large", name);
        return PLX_INTERNAL;
    }
    memset(buf, 0, def->attrs_size);
    if (def->attrs_default != NULL)
        memcpy(buf, def->attrs_default, def->attrs_size);
    if (attrs != NULL) {
        uint32_t given;
        memcpy(&given, attrs, sizeof given);
        if (given < sizeof(uint32_t) || given > 65536) {
            snprintf(msg, cap, "%s: attrs struct_size %u is invalid (set it to sizeof the attrs struct)", name,
                     (unsigned)given);
            return PLX_INVALID_ARGUMENT;
        }
        memcpy(buf, attrs, given < def->attrs_size ? given : def->attrs_size);
    }
    uint32_t full = (uint32_t)def->attrs_size;
    memcpy(buf, &full, sizeof full);
    *size = def->attrs_size;
    return PLX_OK;
}

plx_status op_infer_outputs(const op_def *def, const char *name, const void *attrs, const tensor_meta *in,
                            int32_t n_in, tensor_meta *out, int32_t n_out, char *msg, size_t cap)
{
    char detail[1024] = "";
    op_infer_args a = {.def = def, .attrs = attrs, .n_inputs = n_in, .inputs = in, .n_outputs = n_out,
                       .outputs = out, .msg = detail, .msg_cap = sizeof detail};
    memset(out, 0, sizeof(tensor_meta) * (size_t)n_out);
    plx_status st = def->infer(&a);
    if (st != PLX_OK) {
        char shapes[512];
        metas_format(in, n_in, shapes, sizeof shapes);
        snprintf(msg, cap, "%s(%s): %s", name, shapes, detail[0] ? detail : "invalid call");
        return st;
    }
    for (int32_t i = 0; i < n_out; i++) {
        int64_t n = 1;
        for (int32_t d = 0; d < out[i].ndim; d++) {
            if (out[i].dims[d] < 0 || (out[i].dims[d] > 0 && n > ((int64_t)1 << 58) / out[i].dims[d])) {
                snprintf(msg, cap, "%s: output %d would be too large", name, (int)i);
                return PLX_OVERFLOW;
            }
            n *= out[i].dims[d];
        }
    }
    return PLX_OK;
}

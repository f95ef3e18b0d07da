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

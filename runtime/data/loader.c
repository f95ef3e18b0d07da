/*
 * loader.c (data) — the batch loader: one worker thread prepares the next
 * batch (gather + augment) while the caller trains on the current one.
 *
 * Two batch slots. Batch number s (counted from creation) always lives in
 * slot s % 2; the worker fills slot s % 2 once the caller has handed it
 * back, so it runs at most one batch ahead of the one in use (two while the
 * caller holds none). A batch is a pure function of its data position
 * (epoch order and augmentation draws are counter-based), so whether the
 * worker is ahead, behind, or absent (prefetch off) changes no value.
 *
 * Not to be confused with runtime/loader.c, the plugin loader.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

typedef struct batch_slot {
    data_batch batch;
    bool ready;        /* filled, not yet handed to the caller */
    plx_status status; /* how filling it went */
    data_error error;  /* why, when status != PLX_OK */
} batch_slot;

struct loader {
    const dataset *ds;
    loader_options opts;
    augment_options augment; /* copy of *opts.augment */
    bool has_augment, mixes;
    int64_t batches_per_epoch;

    /* Producer side: touched only by whichever thread fills batches (the
     * worker, or the caller when prefetch is off). */
    data_position fill_pos;
    uint64_t fill_seq;
    int64_t *order;      /* epoch order of order_epoch */
    int64_t order_epoch; /* -1: none yet */

    /* Consumer side. */
    data_position next_pos;
    uint64_t take_seq;
    int held;          /* slot the caller holds, -1 none */
    plx_status failed; /* sticky error */
    data_error failed_error;

    batch_slot slots[2];
    bool sync_ready; /* lock and condition initialized */
    bool thread_started;
    pthread_t thread;
    pthread_mutex_t lock; /* guards ready, held, stop */
    pthread_cond_t changed;
    bool stop;
};

static data_position advance(const loader *ld, data_position p)
{
    if (++p.batch >= ld->batches_per_epoch) {
        p.batch = 0;
        p.epoch++;
    }
    return p;
}

/* Prepares the batch at `pos` into slot->batch. Runs outside the lock:
 * the slot is the producer's until it is marked ready. */
static plx_status fill_batch(loader *ld, batch_slot *slot, data_position pos, data_error *err)
{
    const dataset *ds = ld->ds;
    data_batch *b = &slot->batch;
    if (ld->opts.debug_fail_at > 0 && ld->fill_seq + 1 == (uint64_t)ld->opts.debug_fail_at)
        return data_fail(err, PLX_INTERNAL, "injected failure (debug_fail_at = %" PRId64 ")", ld->opts.debug_fail_at);
    if (pos.epoch != ld->order_epoch) {
        data_epoch_order(ds->n, ld->opts.shuffle, pos.seed, pos.epoch, ld->order);
        ld->order_epoch = pos.epoch;
    }
    int64_t start = pos.batch * ld->opts.batch_size;
    int64_t count = ds->n - start < ld->opts.batch_size ? ds->n - start : ld->opts.batch_size;
    b->count = count;
    b->shape[0] = count;
    b->label_shape[0] = count;
    b->position = pos;
    memcpy(b->indices, ld->order + start, (size_t)count * sizeof *b->indices);
    dataset_gather(ds, b->indices, count, b->features, b->labels);
    if (!ld->has_augment)
        return PLX_OK;
    image_batch ib = {.data = b->features, .n = count, .examples = b->indices, .epoch = pos.epoch, .seed = pos.seed};
    if (ds->sample_ndim == 3) {
        ib.c = ds->sample_shape[0];
        ib.h = ds->sample_shape[1];
        ib.w = ds->sample_shape[2];
    } else {
        /* Only mixup reaches here (augment_validate): any shape is a row. */
        ib.c = 1;
        ib.h = 1;
        ib.w = ds->sample_size;
    }
    plx_status st = augment_apply(&ld->augment, &ib, b->mix_lambda, b->mix_partner, err);
    if (st != PLX_OK)
        return st;
    if (ld->mixes)
        for (int64_t i = 0; i < count; i++)
            b->mix_labels[i] = b->labels[b->mix_partner[i]];
    return PLX_OK;
}

/* Fills the next batch in sequence into its slot and advances. */
static void produce_one(loader *ld, batch_slot *slot)
{
    data_error err;
    data_position pos = ld->fill_pos;
    slot->status = fill_batch(ld, slot, pos, &err);
    if (slot->status != PLX_OK)
        data_fail(&slot->error, slot->status, "data loader: batch %" PRId64 " of epoch %" PRId64 ": %s", pos.batch,
                  pos.epoch, err.message);
    ld->fill_pos = advance(ld, pos);
    ld->fill_seq++;
}

static void *worker_main(void *arg)
{
    loader *ld = arg;
    pthread_mutex_lock(&ld->lock);
    for (;;) {
        int k = (int)(ld->fill_seq % 2);
        batch_slot *slot = &ld->slots[k];
        while (!ld->stop && (slot->ready || ld->held == k))
            pthread_cond_wait(&ld->changed, &ld->lock);
        if (ld->stop)
            break;
        pthread_mutex_unlock(&ld->lock);
        produce_one(ld, slot);
        pthread_mutex_lock(&ld->lock);
        slot->ready = true;
        pthread_cond_broadcast(&ld->changed);
        if (slot->status != PLX_OK)
            break; /* the caller sees the error on reaching this batch; nothing after it is wanted */
    }
    pthread_mutex_unlock(&ld->lock);
    return NULL;
}

static void slot_free(batch_slot *s)
{
    free(s->batch.features);
    free(s->batch.labels);
    free(s->batch.indices);
    free(s->batch.mix_lambda);
    free(s->batch.mix_partner);
    free(s->batch.mix_labels);
}

static bool slot_alloc(loader *ld, batch_slot *s)
{
    const dataset *ds = ld->ds;
    size_t n = (size_t)ld->opts.batch_size;
    data_batch *b = &s->batch;
    b->ndim = ds->sample_ndim + 1;
    memcpy(b->shape + 1, ds->sample_shape, (size_t)ds->sample_ndim * sizeof *b->shape);
    b->features = malloc(n * (size_t)ds->sample_size * sizeof *b->features);
    b->labels = malloc(n * sizeof *b->labels);
    b->indices = malloc(n * sizeof *b->indices);
    bool ok = b->features != NULL && b->labels != NULL && b->indices != NULL;
    if (ld->mixes) {
        b->mix_lambda = malloc(n * sizeof *b->mix_lambda);
        b->mix_partner = malloc(n * sizeof *b->mix_partner);
        b->mix_labels = malloc(n * sizeof *b->mix_labels);
        ok = ok && b->mix_lambda != NULL && b->mix_partner != NULL && b->mix_labels != NULL;
    }
    return ok;
}

plx_status loader_create(const dataset *ds, const loader_options *opts, const data_position *start, loader **out,
                         data_error *err)
{
    if (ds == NULL || opts == NULL || out == NULL)
        return data_fail(err, PLX_INVALID_ARGUMENT, "loader_create: NULL argument");
    if (opts->batch_size < 1 || opts->batch_size > DATA_MAX_EXAMPLES)
        return data_fail(err, PLX_INVALID_ARGUMENT, "data loader: batch size %" PRId64 " (must be >= 1)",
                         opts->batch_size);
    if (opts->debug_fail_at < 0)
        return data_fail(err, PLX_INVALID_ARGUMENT, "data loader: debug_fail_at is negative");
    /* Batch buffers must fit size_t (dataset_create bounded n * size, but
     * the batch size may exceed n). */
    if ((uint64_t)opts->batch_size > SIZE_MAX / sizeof(float) / 2 / (uint64_t)ds->sample_size)
        return data_fail(err, PLX_OVERFLOW, "data loader: batch of %" PRId64 " samples of %" PRId64 " values overflows",
                         opts->batch_size, ds->sample_size);
    plx_status st = augment_validate(opts->augment, ds->sample_ndim, ds->sample_shape, err);
    if (st != PLX_OK)
        return st;
    int64_t bpe = data_batches_per_epoch(ds->n, opts->batch_size, opts->drop_last);
    if (bpe == 0)
        return data_fail(err, PLX_INVALID_ARGUMENT,
                         "data loader: no batches: %" PRId64 " examples, batch size %" PRId64 "%s", ds->n,
                         opts->batch_size, opts->drop_last ? ", dropping the last partial batch" : "");
    data_position pos = {0, 0, opts->seed};
    if (start != NULL) {
        pos = *start;
        if (pos.epoch < 0 || pos.batch < 0 || pos.batch > bpe)
            return data_fail(err, PLX_INVALID_ARGUMENT,
                             "data loader: data position epoch %" PRId64 " batch %" PRId64
                             " does not fit an epoch of %" PRId64 " batches (dataset or batch size changed?)",
                             pos.epoch, pos.batch, bpe);
        if (pos.batch == bpe) {
            pos.batch = 0;
            pos.epoch++;
        }
    }

    loader *ld = calloc(1, sizeof *ld);
    if (ld == NULL)
        return data_fail(err, PLX_OUT_OF_MEMORY, "data loader: out of memory");
    ld->ds = ds;
    ld->opts = *opts;
    if (opts->augment != NULL) {
        ld->augment = *opts->augment;
        ld->opts.augment = &ld->augment;
    }
    ld->has_augment = augment_enabled(opts->augment);
    ld->mixes = augment_mixes(opts->augment);
    ld->batches_per_epoch = bpe;
    ld->fill_pos = pos;
    ld->next_pos = pos;
    ld->order_epoch = -1;
    ld->held = -1;
    ld->failed = PLX_OK;
    ld->order = malloc((size_t)ds->n * sizeof *ld->order);
    bool ok = ld->order != NULL;
    for (int k = 0; k < 2 && ok; k++)
        ok = slot_alloc(ld, &ld->slots[k]);
    if (!ok) {
        loader_free(ld);
        return data_fail(err, PLX_OUT_OF_MEMORY, "data loader: out of memory for batches of %" PRId64,
                         opts->batch_size);
    }
    pthread_mutex_init(&ld->lock, NULL);
    pthread_cond_init(&ld->changed, NULL);
    ld->sync_ready = true;
    if (opts->prefetch) {
        int rc = pthread_create(&ld->thread, NULL, worker_main, ld);
        if (rc != 0) {
            loader_free(ld);
            return data_fail(err, PLX_INTERNAL, "data loader: cannot start the worker thread: %s", strerror(rc));
        }
        ld->thread_started = true;
    }
    *out = ld;
    return PLX_OK;
}

plx_status loader_next(loader *ld, const data_batch **out, data_error *err)
{
    if (ld == NULL || out == NULL)
        return data_fail(err, PLX_INVALID_ARGUMENT, "loader_next: NULL argument");
    if (ld->failed != PLX_OK)
        return data_fail(err, ld->failed, "%s", ld->failed_error.message);
    batch_slot *slot;
    if (!ld->thread_started) {
        slot = &ld->slots[0];
        produce_one(ld, slot);
    } else {
        int k = (int)(ld->take_seq % 2);
        slot = &ld->slots[k];
        pthread_mutex_lock(&ld->lock);
        if (ld->held >= 0) {
            /* Hand the previous batch back: the worker may refill it now. */
            ld->slots[ld->held].ready = false;
            ld->held = -1;
            pthread_cond_broadcast(&ld->changed);
        }
        while (!slot->ready)
            pthread_cond_wait(&ld->changed, &ld->lock);
        ld->held = k;
        pthread_mutex_unlock(&ld->lock);
    }
    ld->take_seq++;
    if (slot->status != PLX_OK) {
        ld->failed = slot->status;
        ld->failed_error = slot->error;
        return data_fail(err, ld->failed, "%s", ld->failed_error.message);
    }
    ld->next_pos = advance(ld, slot->batch.position);
    *out = &slot->batch;
    return PLX_OK;
}

data_position loader_position(const loader *ld)
{
    return ld->next_pos;
}

int64_t loader_batches_per_epoch(const loader *ld)
{
    return ld->batches_per_epoch;
}

void loader_free(loader *ld)
{
    if (ld == NULL)
        return;
    if (ld->thread_started) {
        pthread_mutex_lock(&ld->lock);
        ld->stop = true;
        pthread_cond_broadcast(&ld->changed);
        pthread_mutex_unlock(&ld->lock);
        pthread_join(ld->thread, NULL);
    }
    if (ld->sync_ready) {
        pthread_cond_destroy(&ld->changed);
        pthread_mutex_destroy(&ld->lock);
    }
    for (int k = 0; k < 2; k++)
        slot_free(&ld->slots[k]);
    free(ld->order);
    free(ld);
}

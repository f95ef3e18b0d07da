/* The batch loader: batches with a worker thread are identical to those
 * made synchronously and to a hand-written iteration; epochs cover every
 * example; drop_last; resuming from a saved data position continues
 * exactly; errors reach the caller and stick; shutting down mid-epoch
 * leaks nothing (run under SANITIZE=1). */
#include "../../test_util.h"
#include "../../../runtime/data/dataset.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* n examples of [1, 6, 6]: pixel k of example i = i + k / 64, label i % 10. */
static dataset *make_dataset(int64_t n)
{
    dataset *ds = NULL;
    data_error err;
    assert_int_equal(dataset_create(n, 3, (int64_t[]){1, 6, 6}, &ds, &err), PLX_OK);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t k = 0; k < 36; k++)
            ds->features[i * 36 + k] = (float)i + (float)k / 64.0f;
        ds->labels[i] = i % 10;
    }
    assert_int_equal(dataset_update_classes(ds, &err), PLX_OK);
    return ds;
}

static const augment_options full_augment = {.crop_padding = 1,
                                             .flip_prob = 0.5f,
                                             .rotate_degrees = 10.0f,
                                             .brightness = 0.2f,
                                             .contrast = 0.2f,
                                             .mixup_alpha = 0.4f,
                                             .cutmix_alpha = 1.0f,
                                             .mix_prob = 0.8f};

static void assert_batches_equal(const data_batch *a, const data_batch *b, int64_t sample_size, bool mixes)
{
    assert_int_equal(a->count, b->count);
    assert_int_equal(a->position.epoch, b->position.epoch);
    assert_int_equal(a->position.batch, b->position.batch);
    assert_int_equal(a->ndim, b->ndim);
    assert_memory_equal(a->shape, b->shape, (size_t)a->ndim * sizeof *a->shape);
    assert_memory_equal(a->indices, b->indices, (size_t)a->count * sizeof *a->indices);
    assert_memory_equal(a->labels, b->labels, (size_t)a->count * sizeof *a->labels);
    assert_memory_equal(a->features, b->features, (size_t)(a->count * sample_size) * sizeof(float));
    if (mixes) {
        assert_memory_equal(a->mix_lambda, b->mix_lambda, (size_t)a->count * sizeof(float));
        assert_memory_equal(a->mix_partner, b->mix_partner, (size_t)a->count * sizeof(int64_t));
        assert_memory_equal(a->mix_labels, b->mix_labels, (size_t)a->count * sizeof(int64_t));
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_prefetch_matches_sync_and_manual(void **state)
{
    (void)state;
    dataset *ds = make_dataset(103);
    loader_options o = {.batch_size = 10, .shuffle = true, .seed = 1234, .augment = &full_augment};
    loader *sync = NULL, *async = NULL;
    data_error err;
    assert_int_equal(loader_create(ds, &o, NULL, &sync, &err), PLX_OK);
    o.prefetch = true;
    assert_int_equal(loader_create(ds, &o, NULL, &async, &err), PLX_OK);
    assert_int_equal(loader_batches_per_epoch(async), 11);

    /* The same batches by hand: epoch order, gather, augment. */
    int64_t order[103], idx[10], partner[10];
    float feats[10 * 36], lambda[10];
    int64_t labels[10];
    int64_t current_epoch = -1;
    for (int step = 0; step < 3 * 11; step++) {
        const data_batch *a = NULL, *b = NULL;
        assert_int_equal(loader_next(sync, &a, &err), PLX_OK);
        if (step % 7 == 3)
            sleep_ms(2); /* let the worker get ahead sometimes */
        assert_int_equal(loader_next(async, &b, &err), PLX_OK);
        assert_batches_equal(a, b, 36, true);

        int64_t epoch = step / 11, batch = step % 11;
        assert_int_equal(b->position.epoch, epoch);
        assert_int_equal(b->position.batch, batch);
        assert_true(b->position.seed == 1234);
        if (epoch != current_epoch) {
            data_epoch_order(103, true, 1234, epoch, order);
            current_epoch = epoch;
        }
        int64_t count = batch < 10 ? 10 : 3;
        assert_int_equal(b->count, count);
        assert_int_equal(b->shape[0], count);
        assert_int_equal(b->label_shape[0], count);
        memcpy(idx, order + batch * 10, (size_t)count * sizeof *idx);
        dataset_gather(ds, idx, count, feats, labels);
        image_batch ib = {
            .data = feats, .n = count, .c = 1, .h = 6, .w = 6, .examples = idx, .epoch = epoch, .seed = 1234};
        assert_int_equal(augment_apply(&full_augment, &ib, lambda, partner, &err), PLX_OK);
        assert_memory_equal(b->indices, idx, (size_t)count * sizeof *idx);
        assert_memory_equal(b->labels, labels, (size_t)count * sizeof *labels);
        assert_memory_equal(b->features, feats, (size_t)(count * 36) * sizeof(float));
        assert_memory_equal(b->mix_lambda, lambda, (size_t)count * sizeof(float));
        assert_memory_equal(b->mix_partner, partner, (size_t)count * sizeof(int64_t));
        for (int64_t i = 0; i < count; i++)
            assert_int_equal(b->mix_labels[i], labels[partner[i]]);

        data_position next = loader_position(async);
        assert_int_equal(next.epoch, (step + 1) / 11);
        assert_int_equal(next.batch, (step + 1) % 11);
    }
    loader_free(sync);
    loader_free(async);
    dataset_free(ds);
}

static void test_epochs_cover_and_drop_last(void **state)
{
    (void)state;
    dataset *ds = make_dataset(53);
    data_error err;
    for (int drop = 0; drop < 2; drop++) {
        loader_options o = {.batch_size = 8, .shuffle = true, .drop_last = drop, .seed = 9, .prefetch = true};
        loader *ld;
        assert_int_equal(loader_create(ds, &o, NULL, &ld, &err), PLX_OK);
        int64_t bpe = loader_batches_per_epoch(ld);
        assert_int_equal(bpe, drop ? 6 : 7);
        int64_t first_epoch[53];
        for (int epoch = 0; epoch < 2; epoch++) {
            int seen[53] = {0};
            int64_t total = 0;
            for (int64_t b = 0; b < bpe; b++) {
                const data_batch *batch;
                assert_int_equal(loader_next(ld, &batch, &err), PLX_OK);
                assert_null(batch->mix_lambda);
                assert_int_equal(batch->count, drop || b < 6 ? 8 : 5);
                for (int64_t i = 0; i < batch->count; i++) {
                    int64_t ex = batch->indices[i];
                    seen[ex]++;
                    /* No augmentation: rows are the dataset's examples. */
                    assert_memory_equal(batch->features + i * 36, ds->features + ex * 36, 36 * sizeof(float));
                    assert_int_equal(batch->labels[i], ex % 10);
                    if (epoch == 0)
                        first_epoch[total] = ex;
                    else if (total < 48 && first_epoch[total] != ex)
                        first_epoch[total] = -1; /* mark: the order changed */
                    total++;
                }
            }
            assert_int_equal(total, drop ? 48 : 53);
            for (int i = 0; i < 53; i++)
                assert_true(seen[i] == 1 || (drop && seen[i] == 0));
        }
        int changed = 0;
        for (int i = 0; i < 48; i++)
            changed += first_epoch[i] == -1;
        assert_true(changed > 20); /* reshuffled each epoch */
        loader_free(ld);
    }
    /* Without shuffling: in order. */
    loader_options o = {.batch_size = 20};
    loader *ld;
    assert_int_equal(loader_create(ds, &o, NULL, &ld, &err), PLX_OK);
    const data_batch *b;
    assert_int_equal(loader_next(ld, &b, &err), PLX_OK);
    for (int64_t i = 0; i < 20; i++)
        assert_int_equal(b->indices[i], i);
    loader_free(ld);
    dataset_free(ds);
}

static void test_resume_from_position(void **state)
{
    (void)state;
    dataset *ds = make_dataset(47);
    loader_options o = {.batch_size = 6, .shuffle = true, .seed = 77, .augment = &full_augment, .prefetch = true};
    data_error err;
    loader *a;
    assert_int_equal(loader_create(ds, &o, NULL, &a, &err), PLX_OK);
    const data_batch *batch;
    for (int i = 0; i < 13; i++)
        assert_int_equal(loader_next(a, &batch, &err), PLX_OK);
    /* Save as a checkpoint would, with a different seed in the options:
     * the position's own seed wins. */
    char text[DATA_POSITION_CAP];
    data_position saved = loader_position(a);
    data_position_format(&saved, text, sizeof text);
    assert_string_equal(text, "epoch=1 batch=5 seed=77");
    data_position pos;
    assert_int_equal(data_position_parse(text, &pos, &err), PLX_OK);
    loader_options o2 = o;
    o2.seed = 999;
    o2.prefetch = false;
    loader *b;
    assert_int_equal(loader_create(ds, &o2, &pos, &b, &err), PLX_OK);
    for (int i = 0; i < 20; i++) {
        const data_batch *x, *y;
        assert_int_equal(loader_next(a, &x, &err), PLX_OK);
        assert_int_equal(loader_next(b, &y, &err), PLX_OK);
        assert_batches_equal(x, y, 36, true);
    }
    loader_free(b);

    /* batch == batches per epoch means the next epoch's first batch. */
    data_position end = {.epoch = 2, .batch = 8, .seed = 77};
    assert_int_equal(loader_create(ds, &o, &end, &b, &err), PLX_OK);
    assert_int_equal(loader_position(b).epoch, 3);
    assert_int_equal(loader_position(b).batch, 0);
    assert_int_equal(loader_next(b, &batch, &err), PLX_OK);
    assert_int_equal(batch->position.epoch, 3);
    assert_int_equal(batch->position.batch, 0);
    loader_free(b);
    end.batch = 9;
    b = NULL;
    assert_int_equal(loader_create(ds, &o, &end, &b, &err), PLX_INVALID_ARGUMENT);
    assert_null(b);
    assert_non_null(strstr(err.message, "does not fit an epoch of 8 batches"));
    loader_free(a);
    dataset_free(ds);
}

static void test_errors_reach_the_caller(void **state)
{
    (void)state;
    dataset *ds = make_dataset(30);
    data_error err;
    for (int prefetch = 0; prefetch < 2; prefetch++) {
        loader_options o = {.batch_size = 7, .seed = 1, .prefetch = prefetch, .debug_fail_at = 3};
        loader *ld;
        assert_int_equal(loader_create(ds, &o, NULL, &ld, &err), PLX_OK);
        const data_batch *b;
        assert_int_equal(loader_next(ld, &b, &err), PLX_OK);
        assert_int_equal(loader_next(ld, &b, &err), PLX_OK);
        const data_batch *kept = b;
        assert_int_equal(loader_next(ld, &b, &err), PLX_INTERNAL);
        assert_ptr_equal(b, kept); /* untouched on failure */
        assert_non_null(strstr(err.message, "batch 2 of epoch 0"));
        assert_non_null(strstr(err.message, "injected"));
        memset(&err, 0, sizeof err);
        assert_int_equal(loader_next(ld, &b, &err), PLX_INTERNAL); /* sticky */
        assert_non_null(strstr(err.message, "batch 2 of epoch 0"));
        assert_int_equal(loader_position(ld).batch, 2);
        loader_free(ld);
    }

    /* Bad options. */
    loader *ld = NULL;
    loader_options o = {.batch_size = 0};
    assert_int_equal(loader_create(ds, &o, NULL, &ld, &err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "batch size 0"));
    o = (loader_options){.batch_size = 31, .drop_last = true};
    assert_int_equal(loader_create(ds, &o, NULL, &ld, &err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "no batches: 30 examples, batch size 31"));
    augment_options bad = {.crop_padding = 6};
    o = (loader_options){.batch_size = 4, .augment = &bad};
    assert_int_equal(loader_create(ds, &o, NULL, &ld, &err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "crop_padding"));
    assert_null(ld);
    loader_free(NULL);
    dataset_free(ds);
}

static void test_shutdown_mid_epoch(void **state)
{
    (void)state;
    dataset *ds = make_dataset(200);
    loader_options o = {.batch_size = 16, .shuffle = true, .seed = 3, .augment = &full_augment, .prefetch = true};
    data_error err;
    /* Freed before any batch, after one, and while the worker is busy. */
    for (int taken = 0; taken < 4; taken++) {
        loader *ld;
        assert_int_equal(loader_create(ds, &o, NULL, &ld, &err), PLX_OK);
        for (int i = 0; i < taken; i++) {
            const data_batch *b;
            assert_int_equal(loader_next(ld, &b, &err), PLX_OK);
        }
        if (taken == 2)
            sleep_ms(5); /* both slots full, worker waiting */
        loader_free(ld);
    }
    /* The augmentation options are copied: the caller's may go away. */
    augment_options *heap = malloc(sizeof *heap);
    *heap = full_augment;
    o.augment = heap;
    loader *ld;
    assert_int_equal(loader_create(ds, &o, NULL, &ld, &err), PLX_OK);
    free(heap);
    const data_batch *b;
    assert_int_equal(loader_next(ld, &b, &err), PLX_OK);
    assert_non_null(b->mix_lambda);
    loader_free(ld);
    dataset_free(ds);
}

static void test_non_image_samples_mixup(void **state)
{
    (void)state;
    dataset *ds = NULL;
    data_error err;
    assert_int_equal(dataset_create(20, 1, (int64_t[]){5}, &ds, &err), PLX_OK);
    for (int i = 0; i < 100; i++)
        ds->features[i] = (float)i;
    for (int i = 0; i < 20; i++)
        ds->labels[i] = i % 4;
    assert_int_equal(dataset_update_classes(ds, &err), PLX_OK);
    augment_options mix = {.mixup_alpha = 0.5f};
    loader_options o = {.batch_size = 8, .seed = 2, .augment = &mix, .prefetch = true};
    loader *ld;
    assert_int_equal(loader_create(ds, &o, NULL, &ld, &err), PLX_OK);
    const data_batch *b;
    assert_int_equal(loader_next(ld, &b, &err), PLX_OK);
    assert_int_equal(b->ndim, 2);
    assert_int_equal(b->shape[1], 5);
    for (int64_t i = 0; i < b->count; i++) {
        int64_t j = b->mix_partner[i];
        float lam = b->mix_lambda[i];
        for (int k = 0; k < 5; k++) {
            float want = lam * ds->features[b->indices[i] * 5 + k] + (1.0f - lam) * ds->features[b->indices[j] * 5 + k];
            assert_true(b->features[i * 5 + k] == want);
        }
        assert_int_equal(b->mix_labels[i], b->labels[j]);
    }
    loader_free(ld);
    dataset_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefetch_matches_sync_and_manual),
        cmocka_unit_test(test_epochs_cover_and_drop_last),
        cmocka_unit_test(test_resume_from_position),
        cmocka_unit_test(test_errors_reach_the_caller),
        cmocka_unit_test(test_shutdown_mid_epoch),
        cmocka_unit_test(test_non_image_samples_mixup),
    };
    return cmocka_run_group_tests_name("runtime/data/loader", tests, NULL, NULL);
}

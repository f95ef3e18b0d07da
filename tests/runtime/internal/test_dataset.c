/* In-memory datasets: creation limits, normalization statistics, subsets
 * and seeded splits, epoch orders, batch counts, the data position text,
 * and the counter-based draw contract everything random relies on. */
#include "../../test_util.h"
#include "../../../runtime/data/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", text, part);
}

/* n examples of [c, 1, k]: value = 100 i + 10 ch + j, label i % classes. */
static dataset *make_dataset(int64_t n, int64_t c, int64_t k, int64_t classes)
{
    dataset *ds = NULL;
    data_error err;
    assert_int_equal(dataset_create(n, 3, (int64_t[]){c, 1, k}, &ds, &err), PLX_OK);
    for (int64_t i = 0; i < n; i++) {
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t j = 0; j < k; j++)
                ds->features[i * c * k + ch * k + j] = (float)(100 * i + 10 * ch + j);
        ds->labels[i] = i % classes;
    }
    assert_int_equal(dataset_update_classes(ds, &err), PLX_OK);
    return ds;
}

static void test_create_limits(void **state)
{
    (void)state;
    dataset *ds = NULL;
    data_error err;
    assert_int_equal(dataset_create(0, 1, (int64_t[]){3}, &ds, &err), PLX_OK); /* empty is fine */
    assert_int_equal(ds->n, 0);
    assert_int_equal(dataset_update_classes(ds, &err), PLX_OK);
    assert_int_equal(ds->n_classes, 0);
    dataset_free(ds);
    dataset_free(NULL);
    ds = NULL;
    assert_int_equal(dataset_create(-1, 1, (int64_t[]){3}, &ds, &err), PLX_INVALID_ARGUMENT);
    assert_int_equal(dataset_create(DATA_MAX_EXAMPLES + 1, 1, (int64_t[]){1}, &ds, &err), PLX_INVALID_ARGUMENT);
    assert_int_equal(dataset_create(4, 0, NULL, &ds, &err), PLX_INVALID_ARGUMENT);
    assert_int_equal(dataset_create(4, 8, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1}, &ds, &err), PLX_INVALID_ARGUMENT);
    assert_int_equal(dataset_create(4, 2, (int64_t[]){3, 0}, &ds, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, "dim 1 is 0");
    assert_int_equal(dataset_create(1 << 20, 2, (int64_t[]){1 << 30, 1 << 30}, &ds, &err), PLX_OVERFLOW);
    assert_null(ds);

    ds = make_dataset(4, 1, 2, 3);
    assert_int_equal(ds->n_classes, 3);
    ds->labels[2] = -5;
    assert_int_equal(dataset_update_classes(ds, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, "example 2 is -5");
    ds->labels[2] = DATA_MAX_CLASSES;
    assert_int_equal(dataset_update_classes(ds, &err), PLX_INVALID_ARGUMENT);
    dataset_free(ds);
}

static void test_stats_and_normalize(void **state)
{
    (void)state;
    /* Two examples, 2 channels of 2 values: channel 0 holds {0, 1, 100,
     * 101}, channel 1 {10, 11, 110, 111}. */
    dataset *ds = make_dataset(2, 2, 2, 2);
    float mean[2], std[2];
    data_error err;
    assert_int_equal(dataset_channel_stats(ds, 2, mean, std, &err), PLX_OK);
    assert_true(mean[0] == 50.5f && mean[1] == 60.5f);
    float s = (float)sqrt((2 * 50.5 * 50.5 + 2 * 49.5 * 49.5) / 4.0);
    assert_true(std[0] == s && std[1] == s);
    float m1, s1;
    assert_int_equal(dataset_channel_stats(ds, 1, &m1, &s1, &err), PLX_OK);
    assert_true(m1 == 55.5f);
    assert_int_equal(dataset_channel_stats(ds, 3, mean, std, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, "3 channels");

    assert_int_equal(dataset_normalize(ds, 2, mean, std, &err), PLX_OK);
    assert_true(ds->features[0] == (0.0f - 50.5f) / s);
    assert_true(ds->features[3] == (11.0f - 60.5f) / s);
    assert_int_equal(dataset_channel_stats(ds, 2, mean, std, &err), PLX_OK);
    assert_true(fabsf(mean[0]) < 1e-6f && fabsf(std[1] - 1.0f) < 1e-6f);
    float bad_std[2] = {1.0f, 0.0f};
    assert_int_equal(dataset_normalize(ds, 2, mean, bad_std, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, "std > 0");
    dataset_free(ds);

    /* A constant feature gets std 1: normalizing only centres it. */
    assert_int_equal(dataset_create(3, 1, (int64_t[]){2}, &ds, &err), PLX_OK);
    for (int i = 0; i < 3; i++) {
        ds->features[2 * i] = 4.0f;
        ds->features[2 * i + 1] = (float)i;
    }
    assert_int_equal(dataset_channel_stats(ds, 2, mean, std, &err), PLX_OK);
    assert_true(mean[0] == 4.0f && std[0] == 1.0f);
    assert_true(mean[1] == 1.0f && std[1] == (float)sqrt(2.0 / 3.0));
    dataset_free(ds);
    assert_int_equal(dataset_create(0, 1, (int64_t[]){2}, &ds, &err), PLX_OK);
    assert_int_equal(dataset_channel_stats(ds, 1, mean, std, &err), PLX_INVALID_ARGUMENT);
    dataset_free(ds);
}

static void test_subset_and_split(void **state)
{
    (void)state;
    dataset *ds = make_dataset(50, 1, 3, 7);
    dataset *sub = NULL;
    data_error err;
    assert_int_equal(dataset_subset(ds, (int64_t[]){4, 4, 0}, 3, &sub, &err), PLX_OK);
    assert_int_equal(sub->n, 3);
    assert_int_equal(sub->n_classes, 7);
    assert_true(sub->features[0] == 400.0f && sub->features[3] == 400.0f && sub->features[8] == 2.0f);
    assert_int_equal(sub->labels[0], 4);
    dataset_free(sub);
    assert_int_equal(dataset_subset(ds, (int64_t[]){50}, 1, &sub, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, "is 50");

    dataset *train, *val, *train2, *val2;
    assert_int_equal(dataset_split(ds, 0.2, 42, &train, &val, &err), PLX_OK);
    assert_int_equal(train->n, 40);
    assert_int_equal(val->n, 10);
    assert_int_equal(train->n_classes, 7);
    assert_int_equal(val->n_classes, 7);
    /* A disjoint cover, each part in the original order. */
    int seen[50] = {0};
    float prev = -1.0f;
    for (int64_t i = 0; i < train->n; i++) {
        float v = train->features[i * 3];
        assert_true(v > prev);
        prev = v;
        int idx = (int)(v / 100.0f);
        seen[idx]++;
        assert_int_equal(train->labels[i], idx % 7);
    }
    prev = -1.0f;
    for (int64_t i = 0; i < val->n; i++) {
        float v = val->features[i * 3];
        assert_true(v > prev);
        prev = v;
        seen[(int)(v / 100.0f)]++;
    }
    for (int i = 0; i < 50; i++)
        assert_int_equal(seen[i], 1);
    /* Same seed, same split; another seed, another. */
    assert_int_equal(dataset_split(ds, 0.2, 42, &train2, &val2, &err), PLX_OK);
    assert_memory_equal(val->features, val2->features, (size_t)(val->n * 3) * sizeof(float));
    dataset_free(train2);
    dataset_free(val2);
    assert_int_equal(dataset_split(ds, 0.2, 43, &train2, &val2, &err), PLX_OK);
    assert_true(memcmp(val->features, val2->features, (size_t)(val->n * 3) * sizeof(float)) != 0);
    dataset_free(train2);
    dataset_free(val2);
    dataset_free(train);
    dataset_free(val);
    /* Edges: nothing or everything to validation. */
    assert_int_equal(dataset_split(ds, 0.0, 1, &train, &val, &err), PLX_OK);
    assert_int_equal(train->n, 50);
    assert_int_equal(val->n, 0);
    assert_memory_equal(train->features, ds->features, 150 * sizeof(float));
    dataset_free(train);
    dataset_free(val);
    assert_int_equal(dataset_split(ds, 1.0, 1, &train, &val, &err), PLX_OK);
    assert_int_equal(train->n, 0);
    assert_int_equal(val->n, 50);
    dataset_free(train);
    dataset_free(val);
    assert_int_equal(dataset_split(ds, 1.5, 1, &train, &val, &err), PLX_INVALID_ARGUMENT);
    assert_int_equal(dataset_split(ds, NAN, 1, &train, &val, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, "not in [0, 1]");
    dataset_free(ds);
}

static void test_epoch_order(void **state)
{
    (void)state;
    enum { N = 1000 };
    int64_t *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    data_epoch_order(N, false, 5, 3, a);
    for (int i = 0; i < N; i++)
        assert_int_equal(a[i], i);
    data_epoch_order(N, true, 5, 3, a);
    data_epoch_order(N, true, 5, 3, b);
    assert_memory_equal(a, b, N * sizeof *a);
    char *hit = calloc(N, 1);
    int fixed = 0;
    for (int i = 0; i < N; i++) {
        assert_true(a[i] >= 0 && a[i] < N);
        assert_int_equal(hit[a[i]], 0);
        hit[a[i]] = 1;
        fixed += a[i] == i;
    }
    assert_true(fixed < 10); /* a shuffle, not the identity (expected ~1) */
    data_epoch_order(N, true, 5, 4, b);
    assert_true(memcmp(a, b, N * sizeof *a) != 0);
    data_epoch_order(N, true, 6, 3, b);
    assert_true(memcmp(a, b, N * sizeof *a) != 0);
    /* The documented draw: the last swap picks data_random_below(seed,
     * SHUFFLE, epoch, 1, 0, 2) for position 1 of a 2-element order. */
    int64_t two[2];
    for (uint64_t seed = 0; seed < 16; seed++) {
        data_epoch_order(2, true, seed, 0, two);
        int64_t k = data_random_below(seed, DATA_STREAM_SHUFFLE, 0, 1, 0, 2);
        assert_int_equal(two[0], k == 0 ? 1 : 0);
    }
    free(hit);
    free(a);
    free(b);

    assert_int_equal(data_batches_per_epoch(103, 10, false), 11);
    assert_int_equal(data_batches_per_epoch(103, 10, true), 10);
    assert_int_equal(data_batches_per_epoch(100, 10, false), 10);
    assert_int_equal(data_batches_per_epoch(5, 10, true), 0);
    assert_int_equal(data_batches_per_epoch(5, 10, false), 1);
    assert_int_equal(data_batches_per_epoch(0, 10, false), 0);
}

static void test_position_text(void **state)
{
    (void)state;
    data_position p = {.epoch = 12, .batch = 345, .seed = UINT64_MAX}, q;
    char buf[DATA_POSITION_CAP];
    int n = data_position_format(&p, buf, sizeof buf);
    assert_true(n > 0 && n < DATA_POSITION_CAP);
    assert_string_equal(buf, "epoch=12 batch=345 seed=18446744073709551615");
    data_error err;
    assert_int_equal(data_position_parse(buf, &q, &err), PLX_OK);
    assert_true(q.epoch == 12 && q.batch == 345 && q.seed == UINT64_MAX);
    p = (data_position){INT64_MAX, INT64_MAX, UINT64_MAX};
    assert_true(data_position_format(&p, buf, sizeof buf) < DATA_POSITION_CAP);
    const char *bad[] = {"",
                         "epoch=1 batch=2",
                         "epoch=1 batch=2 seed=3 ",
                         "epoch=-1 batch=2 seed=3",
                         "epoch=1  batch=2 seed=3",
                         "epoch=1 batch=2 seed=18446744073709551616",
                         "epoch=9223372036854775808 batch=0 seed=0",
                         "epoch=1 batch=x seed=3",
                         "batch=1 epoch=2 seed=3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        q = (data_position){7, 7, 7};
        assert_int_equal(data_position_parse(bad[i], &q, &err), PLX_INVALID_ARGUMENT);
        assert_true(q.epoch == 7 && q.batch == 7 && q.seed == 7);
        assert_contains(err.message, "malformed");
    }
}

static void test_random_contract(void **state)
{
    (void)state;
    /* data_random_u32 is Philox at the counter dataset.h documents. */
    uint64_t seed = 0x0123456789ABCDEFull;
    int64_t example = 0x100000002ll, epoch = 7;
    for (uint32_t draw = 0; draw < 9; draw++) {
        plx_philox_block ctr = {{2u, 1u, 7u, (DATA_STREAM_MIX << 24) | (draw >> 2)}};
        uint32_t want = plx_philox4x32_10(ctr, seed).w[draw & 3];
        assert_int_equal(data_random_u32(seed, DATA_STREAM_MIX, epoch, example, draw), want);
    }
    /* Uniforms in [0, 1), roughly uniform; below() in range. */
    double sum = 0;
    for (int i = 0; i < 4000; i++) {
        float u = data_random_uniform(1, DATA_STREAM_FLIP, 0, i, 0);
        assert_true(u >= 0.0f && u < 1.0f);
        sum += u;
        int64_t k = data_random_below(1, DATA_STREAM_CROP, 0, i, 1, 7);
        assert_true(k >= 0 && k < 7);
    }
    assert_true(fabs(sum / 4000 - 0.5) < 0.03);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_limits),    cmocka_unit_test(test_stats_and_normalize),
        cmocka_unit_test(test_subset_and_split), cmocka_unit_test(test_epoch_order),
        cmocka_unit_test(test_position_text),    cmocka_unit_test(test_random_contract),
    };
    return cmocka_run_group_tests_name("runtime/data/dataset", tests, NULL, NULL);
}

/* Augmentations: exact crops and flips on tiny images, rotations (0 is the
 * identity, 90 and 180 permute pixels), jitter factors from the documented
 * draws, mixup/CutMix contracts (lambda, partners, where pixels come from),
 * and reproducibility: same (seed, epoch, example) => same result, whatever
 * the row order. */
#include "../../test_util.h"
#include "../../../runtime/data/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct test_batch {
    float *data, *orig;
    int64_t *examples;
    image_batch b;
} test_batch;

/* Row i, pixel k (over c*h*w) = 1000 i + k + 1: distinct and non-zero. */
static test_batch make_batch(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed, int64_t epoch)
{
    test_batch t;
    int64_t size = n * c * h * w;
    t.data = malloc((size_t)size * sizeof *t.data);
    t.orig = malloc((size_t)size * sizeof *t.orig);
    t.examples = malloc((size_t)n * sizeof *t.examples);
    for (int64_t i = 0; i < n; i++) {
        t.examples[i] = 3 * i + 5;
        for (int64_t k = 0; k < c * h * w; k++)
            t.data[i * c * h * w + k] = (float)(1000 * i + k + 1);
    }
    memcpy(t.orig, t.data, (size_t)size * sizeof *t.data);
    t.b = (image_batch){
        .data = t.data, .n = n, .c = c, .h = h, .w = w, .examples = t.examples, .epoch = epoch, .seed = seed};
    return t;
}

static void free_batch(test_batch *t)
{
    free(t->data);
    free(t->orig);
    free(t->examples);
}

static size_t batch_bytes(const test_batch *t)
{
    return (size_t)(t->b.n * t->b.c * t->b.h * t->b.w) * sizeof(float);
}

static void test_crop_is_an_exact_shift(void **state)
{
    (void)state;
    const int64_t n = 8, c = 2, h = 4, w = 5, pad = 2;
    bool neg_y = false, pos_y = false, neg_x = false, pos_x = false;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        test_batch t = make_batch(n, c, h, w, seed, 3);
        augment_random_crop(&t.b, pad);
        for (int64_t i = 0; i < n; i++) {
            int64_t oy = data_random_below(seed, DATA_STREAM_CROP, 3, t.examples[i], 0, 2 * pad + 1) - pad;
            int64_t ox = data_random_below(seed, DATA_STREAM_CROP, 3, t.examples[i], 1, 2 * pad + 1) - pad;
            neg_y |= oy < 0;
            pos_y |= oy > 0;
            neg_x |= ox < 0;
            pos_x |= ox > 0;
            for (int64_t ch = 0; ch < c; ch++)
                for (int64_t y = 0; y < h; y++)
                    for (int64_t x = 0; x < w; x++) {
                        int64_t sy = y + oy, sx = x + ox;
                        float want =
                            sy >= 0 && sy < h && sx >= 0 && sx < w ? t.orig[((i * c + ch) * h + sy) * w + sx] : 0.0f;
                        float got = t.data[((i * c + ch) * h + y) * w + x];
                        if (got != want)
                            fail_msg("seed %d row %d shift (%d,%d) at (%d,%d,%d): %g != %g", (int)seed, (int)i, (int)oy,
                                     (int)ox, (int)ch, (int)y, (int)x, got, want);
                    }
        }
        free_batch(&t);
    }
    assert_true(neg_y && pos_y && neg_x && pos_x);
    test_batch t = make_batch(4, 1, 3, 3, 1, 0);
    augment_random_crop(&t.b, 0);
    assert_memory_equal(t.data, t.orig, batch_bytes(&t));
    free_batch(&t);
}

static void test_flip(void **state)
{
    (void)state;
    test_batch t = make_batch(3, 2, 2, 3, 9, 0);
    augment_random_hflip(&t.b, 1.0f);
    for (int64_t r = 0; r < 3 * 2 * 2; r++)
        for (int64_t x = 0; x < 3; x++)
            assert_true(t.data[r * 3 + x] == t.orig[r * 3 + 2 - x]);
    augment_random_hflip(&t.b, 1.0f);
    assert_memory_equal(t.data, t.orig, batch_bytes(&t)); /* twice: identity */
    augment_random_hflip(&t.b, 0.0f);
    assert_memory_equal(t.data, t.orig, batch_bytes(&t));
    free_batch(&t);

    /* p = 0.5: exactly the rows whose draw is below it. */
    t = make_batch(64, 1, 1, 4, 9, 2);
    augment_random_hflip(&t.b, 0.5f);
    int flipped = 0;
    for (int64_t i = 0; i < 64; i++) {
        bool want = data_random_uniform(9, DATA_STREAM_FLIP, 2, t.examples[i], 0) < 0.5f;
        bool got = t.data[i * 4] == t.orig[i * 4 + 3];
        assert_int_equal(got, want);
        flipped += got;
    }
    assert_true(flipped > 16 && flipped < 48);
    free_batch(&t);
}

static void test_rotation(void **state)
{
    (void)state;
    float src[2 * 9], dst[2 * 9];
    for (int i = 0; i < 18; i++)
        src[i] = (float)(i + 1);
    augment_rotate_image(src, dst, 2, 3, 3, 0.0f);
    assert_memory_equal(src, dst, sizeof src);
    /* 90 degrees counter-clockwise: out[y][x] = in[x][2 - y]. */
    augment_rotate_image(src, dst, 2, 3, 3, 90.0f);
    for (int ch = 0; ch < 2; ch++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 3; x++)
                assert_true(fabsf(dst[ch * 9 + y * 3 + x] - src[ch * 9 + x * 3 + 2 - y]) < 1e-5f);
    augment_rotate_image(src, dst, 2, 3, 3, 180.0f);
    for (int k = 0; k < 9; k++)
        assert_true(fabsf(dst[k] - src[8 - k]) < 1e-5f);
    /* 45 degrees on 3x3: the centre stays; corner (0, 0) samples (x 1,
     * y 1 - sqrt 2), between the zero row above and src[0][1]. */
    augment_rotate_image(src, dst, 1, 3, 3, 45.0f);
    assert_true(dst[4] == src[4]);
    assert_true(fabsf(dst[0] - (2.0f - sqrtf(2.0f)) * src[1]) < 1e-5f);

    /* Any angle on a non-square image: against a plain bilinear reference. */
    enum { C = 2, H = 5, W = 7 };
    float img[C * H * W], out[C * H * W];
    for (int i = 0; i < C * H * W; i++)
        img[i] = (float)((i * 37) % 23) - 4.0f;
    const float angles[] = {17.0f, -33.0f, 90.0f, 200.0f, 1e-3f};
    for (size_t a = 0; a < sizeof angles / sizeof angles[0]; a++) {
        augment_rotate_image(img, out, C, H, W, angles[a]);
        double t = angles[a] * 3.14159265358979323846 / 180.0, cx = (W - 1) / 2.0, cy = (H - 1) / 2.0;
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double sx = cx + cos(t) * (x - cx) - sin(t) * (y - cy);
                    double sy = cy + sin(t) * (x - cx) + cos(t) * (y - cy);
                    double x0 = floor(sx), y0 = floor(sy), fx = sx - x0, fy = sy - y0, want = 0;
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++) {
                            int yy = (int)y0 + dy, xx = (int)x0 + dx;
                            if (yy >= 0 && yy < H && xx >= 0 && xx < W)
                                want += (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy) * img[ch * H * W + yy * W + xx];
                        }
                    float got = out[ch * H * W + y * W + x];
                    if (fabs(got - want) > 1e-4)
                        fail_msg("angle %g at (%d,%d,%d): %g, want %g", angles[a], ch, y, x, got, want);
                }
    }

    /* max 0: no-op; otherwise each row is rotated by its documented angle. */
    test_batch t = make_batch(5, 1, 5, 5, 4, 1);
    assert_int_equal(augment_random_rotate(&t.b, 0.0f, NULL), PLX_OK);
    assert_memory_equal(t.data, t.orig, batch_bytes(&t));
    assert_int_equal(augment_random_rotate(&t.b, 15.0f, NULL), PLX_OK);
    for (int64_t i = 0; i < 5; i++) {
        float angle = (2.0f * data_random_uniform(4, DATA_STREAM_ROTATE, 1, t.examples[i], 0) - 1.0f) * 15.0f;
        float want[25];
        augment_rotate_image(t.orig + i * 25, want, 1, 5, 5, angle);
        assert_memory_equal(t.data + i * 25, want, sizeof want);
        assert_true(t.data[i * 25 + 12] == t.orig[i * 25 + 12]); /* the centre pixel is fixed */
    }
    free_batch(&t);
}

static void test_color_jitter(void **state)
{
    (void)state;
    test_batch t = make_batch(6, 3, 2, 2, 11, 0);
    augment_color_jitter(&t.b, 0.4f, 0.0f);
    for (int64_t i = 0; i < 6; i++) {
        float u = data_random_uniform(11, DATA_STREAM_JITTER, 0, t.examples[i], 0);
        float lo = 1.0f - 0.4f, hi = 1.0f + 0.4f, f = lo + u * (hi - lo);
        assert_true(f >= 0.6f && f <= 1.4f);
        for (int k = 0; k < 12; k++)
            assert_true(t.data[i * 12 + k] == t.orig[i * 12 + k] * f);
    }
    free_batch(&t);
    t = make_batch(6, 3, 2, 2, 11, 0);
    augment_color_jitter(&t.b, 0.0f, 0.5f);
    for (int64_t i = 0; i < 6; i++) {
        double m = 0, m2 = 0;
        for (int k = 0; k < 12; k++) {
            m += t.orig[i * 12 + k];
            m2 += t.data[i * 12 + k];
        }
        m /= 12;
        m2 /= 12;
        assert_true(fabs(m - m2) < 1e-3 * fabs(m)); /* contrast keeps the mean */
        float f = 0.5f + data_random_uniform(11, DATA_STREAM_JITTER, 0, t.examples[i], 1) * 1.0f;
        for (int k = 0; k < 12; k++)
            assert_true(fabs((t.data[i * 12 + k] - m) - f * (t.orig[i * 12 + k] - m)) < 1e-3);
    }
    augment_color_jitter(&t.b, 0.0f, 0.0f);
    free_batch(&t);
}

static void test_reproducible_and_row_independent(void **state)
{
    (void)state;
    augment_options o = {
        .crop_padding = 2, .flip_prob = 0.5f, .rotate_degrees = 20.0f, .brightness = 0.3f, .contrast = 0.3f};
    const int64_t n = 9, c = 3, h = 6, w = 7, size = c * h * w;
    test_batch a = make_batch(n, c, h, w, 77, 5), b = make_batch(n, c, h, w, 77, 5);
    assert_int_equal(augment_apply(&o, &a.b, NULL, NULL, NULL), PLX_OK);
    assert_int_equal(augment_apply(&o, &b.b, NULL, NULL, NULL), PLX_OK);
    assert_memory_equal(a.data, b.data, batch_bytes(&a));
    assert_true(memcmp(a.data, a.orig, batch_bytes(&a)) != 0);
    /* Rows reversed (same examples): each example's result follows it. */
    test_batch r = make_batch(n, c, h, w, 77, 5);
    for (int64_t i = 0; i < n; i++) {
        memcpy(r.data + i * size, a.orig + (n - 1 - i) * size, (size_t)size * sizeof(float));
        r.examples[i] = a.examples[n - 1 - i];
    }
    assert_int_equal(augment_apply(&o, &r.b, NULL, NULL, NULL), PLX_OK);
    for (int64_t i = 0; i < n; i++)
        assert_memory_equal(r.data + i * size, a.data + (n - 1 - i) * size, (size_t)size * sizeof(float));
    /* Another seed or epoch: other results. */
    test_batch s = make_batch(n, c, h, w, 78, 5), e = make_batch(n, c, h, w, 77, 6);
    assert_int_equal(augment_apply(&o, &s.b, NULL, NULL, NULL), PLX_OK);
    assert_int_equal(augment_apply(&o, &e.b, NULL, NULL, NULL), PLX_OK);
    assert_true(memcmp(a.data, s.data, batch_bytes(&a)) != 0);
    assert_true(memcmp(a.data, e.data, batch_bytes(&a)) != 0);
    free_batch(&a);
    free_batch(&b);
    free_batch(&r);
    free_batch(&s);
    free_batch(&e);
}

static void test_mixup_contract(void **state)
{
    (void)state;
    const int64_t n = 16, size = 9;
    double sum = 0, sum2 = 0;
    int count = 0;
    for (uint64_t seed = 0; seed < 40; seed++) {
        test_batch t = make_batch(n, 1, 3, 3, seed, 0);
        float lambda[16];
        int64_t partner[16];
        assert_int_equal(augment_mixup(&t.b, 1.0f, lambda, partner, NULL), PLX_OK);
        for (int64_t i = 0; i < n; i++) {
            assert_true(lambda[i] >= 0.0f && lambda[i] <= 1.0f);
            assert_true(partner[i] >= 0 && partner[i] < n && partner[i] != i);
            for (int64_t k = 0; k < size; k++) {
                float want = lambda[i] * t.orig[i * size + k] + (1.0f - lambda[i]) * t.orig[partner[i] * size + k];
                assert_true(fabsf(t.data[i * size + k] - want) <= 1e-6f * fabsf(want));
            }
            sum += lambda[i];
            sum2 += (double)lambda[i] * lambda[i];
            count++;
        }
        /* Reproducible. */
        test_batch u = make_batch(n, 1, 3, 3, seed, 0);
        float lambda2[16];
        int64_t partner2[16];
        assert_int_equal(augment_mixup(&u.b, 1.0f, lambda2, partner2, NULL), PLX_OK);
        assert_memory_equal(lambda, lambda2, sizeof lambda);
        assert_memory_equal(partner, partner2, sizeof partner);
        assert_memory_equal(t.data, u.data, batch_bytes(&t));
        free_batch(&t);
        free_batch(&u);
    }
    /* Beta(1, 1) is uniform: mean 1/2, variance 1/12. */
    double mean = sum / count, var = sum2 / count - mean * mean;
    assert_true(fabs(mean - 0.5) < 0.04);
    assert_true(fabs(var - 1.0 / 12.0) < 0.015);

    /* Small alpha: Beta(0.1, 0.1) piles up at 0 and 1 (and never NaN). */
    test_batch t = make_batch(64, 1, 1, 2, 3, 0);
    float lambda[64];
    int64_t partner[64];
    assert_int_equal(augment_mixup(&t.b, 0.1f, lambda, partner, NULL), PLX_OK);
    int extreme = 0;
    for (int i = 0; i < 64; i++) {
        assert_true(lambda[i] >= 0.0f && lambda[i] <= 1.0f);
        extreme += lambda[i] < 0.05f || lambda[i] > 0.95f;
    }
    assert_true(extreme > 32);
    free_batch(&t);
    /* One row: nothing to mix with. */
    t = make_batch(1, 1, 2, 2, 3, 0);
    assert_int_equal(augment_mixup(&t.b, 0.4f, lambda, partner, NULL), PLX_OK);
    assert_true(lambda[0] == 1.0f && partner[0] == 0);
    assert_memory_equal(t.data, t.orig, batch_bytes(&t));
    data_error err;
    assert_int_equal(augment_mixup(&t.b, 0.0f, lambda, partner, &err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "alpha"));
    free_batch(&t);
}

static void test_cutmix_contract(void **state)
{
    (void)state;
    const int64_t n = 12, c = 3, h = 8, w = 10, plane = h * w;
    int boxes = 0, clipped = 0;
    for (uint64_t seed = 0; seed < 20; seed++) {
        test_batch t = make_batch(n, c, h, w, seed, 1);
        float lambda[12];
        int64_t partner[12];
        assert_int_equal(augment_cutmix(&t.b, 1.0f, lambda, partner, NULL), PLX_OK);
        for (int64_t i = 0; i < n; i++) {
            int64_t j = partner[i];
            assert_true(j >= 0 && j < n && j != i);
            assert_true(lambda[i] >= 0.0f && lambda[i] <= 1.0f);
            /* Every pixel is the row's own or its partner's (same place);
             * the partner's form one rectangle, the same in every channel. */
            int64_t from_partner = 0, y1 = h, y2 = -1, x1 = w, x2 = -1;
            for (int64_t ch = 0; ch < c; ch++)
                for (int64_t y = 0; y < h; y++)
                    for (int64_t x = 0; x < w; x++) {
                        int64_t k = ch * plane + y * w + x;
                        float v = t.data[i * c * plane + k];
                        bool own = v == t.orig[i * c * plane + k];
                        bool other = v == t.orig[j * c * plane + k];
                        assert_true(own || other);
                        if (other) {
                            from_partner++;
                            if (ch == 0) {
                                y1 = y < y1 ? y : y1;
                                y2 = y > y2 ? y : y2;
                                x1 = x < x1 ? x : x1;
                                x2 = x > x2 ? x : x2;
                            }
                        }
                    }
            int64_t box = from_partner > 0 ? (y2 - y1 + 1) * (x2 - x1 + 1) : 0;
            assert_int_equal(from_partner, box * c);
            assert_true(lambda[i] == (float)(1.0 - (double)box / (double)plane));
            boxes += box > 0;
            clipped += box > 0 && (y1 == 0 || x1 == 0 || y2 == h - 1 || x2 == w - 1);
        }
        free_batch(&t);
    }
    assert_true(boxes > 150 && clipped > 50); /* of 240 rows: the test saw real boxes, some at the border */
}

static void test_apply_mixed_and_soft_targets(void **state)
{
    (void)state;
    augment_options o = {.flip_prob = 0.5f, .mixup_alpha = 0.4f, .cutmix_alpha = 1.0f, .mix_prob = 0.6f};
    assert_true(augment_enabled(&o) && augment_mixes(&o));
    const int64_t n = 32, size = 2 * 4 * 4;
    test_batch t = make_batch(n, 2, 4, 4, 5, 0);
    float lambda[32];
    int64_t partner[32];
    assert_int_equal(augment_apply(&o, &t.b, lambda, partner, NULL), PLX_OK);
    int unmixed = 0;
    for (int64_t i = 0; i < n; i++) {
        if (partner[i] == i) {
            assert_true(lambda[i] == 1.0f);
            unmixed++;
        }
        float u = data_random_uniform(5, DATA_STREAM_MIX, 0, t.examples[i], 1);
        assert_int_equal(partner[i] == i, !(u < 0.6f));
    }
    assert_true(unmixed > 4 && unmixed < 24);
    int64_t labels[32];
    for (int64_t i = 0; i < n; i++)
        labels[i] = i % 5;
    float targets[32 * 5];
    augment_soft_targets(labels, lambda, partner, n, 5, targets);
    for (int64_t i = 0; i < n; i++) {
        float s = 0;
        for (int k = 0; k < 5; k++)
            s += targets[i * 5 + k];
        assert_true(fabsf(s - 1.0f) < 1e-6f);
        assert_true(targets[i * 5 + labels[i]] >= lambda[i] - 1e-6f);
    }
    (void)size;
    free_batch(&t);
    augment_options none = {0};
    assert_false(augment_enabled(&none));
    assert_false(augment_enabled(NULL));
}

static void test_validate(void **state)
{
    (void)state;
    data_error err;
    const int64_t img[3] = {1, 28, 28}, vec[1] = {784};
    augment_options o = {.crop_padding = 4};
    assert_int_equal(augment_validate(&o, 3, img, &err), PLX_OK);
    assert_int_equal(augment_validate(&o, 1, vec, &err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "random crop needs image samples [C, H, W]"));
    o = (augment_options){.crop_padding = 28};
    assert_int_equal(augment_validate(&o, 3, img, &err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "smaller than"));
    o = (augment_options){.flip_prob = 1.5f};
    assert_int_equal(augment_validate(&o, 3, img, &err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "flip_prob is 1.5"));
    o = (augment_options){.mixup_alpha = NAN};
    assert_int_equal(augment_validate(&o, 3, img, &err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "mixup_alpha"));
    o = (augment_options){.mixup_alpha = 0.2f};
    assert_int_equal(augment_validate(&o, 1, vec, &err), PLX_OK); /* mixup mixes any shape */
    o = (augment_options){.cutmix_alpha = 1.0f};
    assert_int_equal(augment_validate(&o, 1, vec, &err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "CutMix"));
    o = (augment_options){.crop_padding = -1};
    assert_int_equal(augment_validate(&o, 3, img, &err), PLX_INVALID_ARGUMENT);
    assert_int_equal(augment_validate(NULL, 1, vec, &err), PLX_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crop_is_an_exact_shift),
        cmocka_unit_test(test_flip),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_color_jitter),
        cmocka_unit_test(test_reproducible_and_row_independent),
        cmocka_unit_test(test_mixup_contract),
        cmocka_unit_test(test_cutmix_contract),
        cmocka_unit_test(test_apply_mixed_and_soft_targets),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests_name("runtime/data/augment", tests, NULL, NULL);
}

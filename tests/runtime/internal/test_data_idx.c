/* IDX reading: every element type, raw and gzip, exact values; datasets
 * from image/label pairs; garbage (bad magic, truncation, absurd headers,
 * mismatched counts) refused with messages naming the file and the
 * problem; the real Fashion-MNIST test set when installed. */
#include "../../test_util.h"
#include "../../../runtime/data/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#ifndef FASHION_DIR
#define FASHION_DIR "/usr/share/datasets/fashion-mnist/"
#endif

typedef struct fixture {
    char dir[64];
    char path[8][128];
    int n_paths;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/plx_idx_XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < f->n_paths; i++)
        unlink(f->path[i]);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Writes bytes to dir/name (gzip'd when gz) and returns the path. */
static const char *write_file(fixture *f, const char *name, const void *bytes, size_t len, bool gz)
{
    assert_true(f->n_paths < 8);
    char *path = f->path[f->n_paths++];
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s/%s", f->dir, name);
    memcpy(path, tmp, sizeof tmp);
    if (gz) {
        gzFile g = gzopen(path, "wb");
        assert_non_null(g);
        if (len > 0)
            assert_int_equal(gzwrite(g, bytes, (unsigned)len), (int)len);
        assert_int_equal(gzclose(g), Z_OK);
    } else {
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        if (len > 0)
            assert_int_equal(fwrite(bytes, 1, len, fp), len);
        fclose(fp);
    }
    return path;
}

/* An IDX image: magic, dims, then `data` (already big-endian). */
static size_t make_idx(unsigned char *out, int type, int ndim, const uint32_t *dims, const void *data, size_t data_len)
{
    size_t n = 0;
    out[n++] = 0;
    out[n++] = 0;
    out[n++] = (unsigned char)type;
    out[n++] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        out[n++] = (unsigned char)(dims[i] >> 24);
        out[n++] = (unsigned char)(dims[i] >> 16);
        out[n++] = (unsigned char)(dims[i] >> 8);
        out[n++] = (unsigned char)dims[i];
    }
    if (data_len > 0)
        memcpy(out + n, data, data_len);
    return n + data_len;
}

static void be_store(unsigned char *p, uint64_t v, int size)
{
    for (int k = size - 1; k >= 0; k--) {
        p[k] = (unsigned char)v;
        v >>= 8;
    }
}

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", text, part);
}

static void test_u8_raw_and_gzip(void **state)
{
    fixture *f = *state;
    unsigned char px[2 * 3 * 4];
    for (int i = 0; i < 24; i++)
        px[i] = (unsigned char)(i * 11);
    unsigned char file[64];
    size_t len = make_idx(file, 0x08, 3, (uint32_t[]){2, 3, 4}, px, sizeof px);
    const char *raw = write_file(f, "images-idx3-ubyte", file, len, false);
    const char *gz = write_file(f, "images-idx3-ubyte.gz", file, len, true);
    const char *paths[2] = {raw, gz};
    for (int k = 0; k < 2; k++) {
        idx_array a;
        data_error err;
        assert_int_equal(idx_read(paths[k], 0, &a, &err), PLX_OK);
        assert_int_equal(a.type, IDX_U8);
        assert_int_equal(a.ndim, 3);
        assert_int_equal(a.dims[0], 2);
        assert_int_equal(a.dims[1], 3);
        assert_int_equal(a.dims[2], 4);
        assert_int_equal(a.count, 24);
        assert_memory_equal(a.data, px, sizeof px);
        assert_true(idx_array_get(&a, 23) == 253.0);
        idx_array_free(&a);
        assert_null(a.data);
    }
    idx_array_free(NULL);
}

static void test_every_type_big_endian(void **state)
{
    fixture *f = *state;
    static const struct {
        int type, size;
        const char *name;
    } types[] = {{0x09, 1, "i8"}, {0x0B, 2, "i16"}, {0x0C, 4, "i32"}, {0x0D, 4, "f32"}, {0x0E, 8, "f64"}};
    const double want_int[4] = {-128, -1, 0, 100};
    const double want_float[4] = {-1.5, 0.0, 3.25, 1e-3};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        bool is_float = types[t].type >= 0x0D;
        const double *want = is_float ? want_float : want_int;
        unsigned char data[32];
        for (int i = 0; i < 4; i++) {
            uint64_t bits;
            if (types[t].type == 0x0D) {
                float v = (float)want[i];
                uint32_t u;
                memcpy(&u, &v, 4);
                bits = u;
            } else if (types[t].type == 0x0E) {
                memcpy(&bits, &want[i], 8);
            } else {
                bits = (uint64_t)(int64_t)want[i];
            }
            be_store(data + i * types[t].size, bits, types[t].size);
        }
        unsigned char file[64];
        size_t len = make_idx(file, types[t].type, 2, (uint32_t[]){2, 2}, data, 4 * (size_t)types[t].size);
        char name[32];
        snprintf(name, sizeof name, "t%zu.gz", t);
        const char *path = write_file(f, name, file, len, t % 2 == 0);
        idx_array a;
        data_error err;
        assert_int_equal(idx_read(path, 0, &a, &err), PLX_OK);
        assert_string_equal(idx_type_name(a.type), types[t].name);
        assert_int_equal(a.elem_size, types[t].size);
        for (int i = 0; i < 4; i++) {
            double got = idx_array_get(&a, i);
            double exp = types[t].type == 0x0D ? (double)(float)want[i] : want[i];
            if (got != exp)
                fail_msg("%s element %d: got %g want %g", types[t].name, i, got, exp);
        }
        idx_array_free(&a);
        unlink(path);
        f->n_paths--;
    }
}

/* Expects `st` from idx_read of these bytes, with a message that names the
 * file and contains `what`. */
static void expect_idx_error(fixture *f, const char *name, const void *bytes, size_t len, bool gz, uint64_t max_bytes,
                             plx_status st, const char *what)
{
    const char *path = write_file(f, name, bytes, len, gz);
    idx_array a = {0};
    data_error err = {{0}};
    plx_status got = idx_read(path, max_bytes, &a, &err);
    if (got != st)
        fail_msg("%s: status %s, want %s (%s)", name, plx_status_name(got), plx_status_name(st), err.message);
    assert_null(a.data);
    assert_contains(err.message, path);
    assert_contains(err.message, what);
    unlink(path);
    f->n_paths--;
}

static void test_garbage_is_refused(void **state)
{
    fixture *f = *state;
    unsigned char file[256];
    unsigned char px[16] = {0};
    size_t len;

    expect_idx_error(f, "empty", "", 0, false, 0, PLX_INVALID_ARGUMENT, "empty file");
    expect_idx_error(f, "empty.gz", "", 0, true, 0, PLX_INVALID_ARGUMENT, "empty file");
    expect_idx_error(f, "text", "hello world, not idx", 20, false, 0, PLX_INVALID_ARGUMENT,
                     "bad magic (first bytes 68 65 6c 6c");
    expect_idx_error(f, "short", "\0", 1, false, 0, PLX_INVALID_ARGUMENT, "bad magic");
    len = make_idx(file, 0x07, 1, (uint32_t[]){4}, px, 4);
    expect_idx_error(f, "type", file, len, false, 0, PLX_INVALID_ARGUMENT, "unknown IDX data type 0x07");
    len = make_idx(file, 0x08, 0, NULL, NULL, 0);
    expect_idx_error(f, "ndim0", file, len, false, 0, PLX_INVALID_ARGUMENT, "0 dims");
    len = make_idx(file, 0x08, 9, (uint32_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, px, 1);
    expect_idx_error(f, "ndim9", file, len, false, 0, PLX_INVALID_ARGUMENT, "9 dims");
    len = make_idx(file, 0x08, 3, (uint32_t[]){10, 28, 28}, NULL, 0);
    expect_idx_error(f, "header_cut", file, 9, false, 0, PLX_INVALID_ARGUMENT, "truncated IDX header");
    /* Truncated data, raw and gzip'd: the count is in the message. */
    len = make_idx(file, 0x08, 3, (uint32_t[]){2, 2, 4}, px, 16);
    expect_idx_error(f, "trunc", file, len - 3, false, 0, PLX_INVALID_ARGUMENT, "truncated");
    expect_idx_error(f, "trunc.gz", file, len - 3, true, 0, PLX_INVALID_ARGUMENT, "only 13 bytes follow");
    unsigned char longer[256];
    memcpy(longer, file, len);
    memset(longer + len, 7, 5);
    expect_idx_error(f, "trailing", longer, len + 5, false, 0, PLX_INVALID_ARGUMENT, "5 trailing bytes");
    /* A header claiming 2^40 items: refused from the header, nothing allocated. */
    len = make_idx(file, 0x08, 2, (uint32_t[]){1u << 20, 1u << 20}, px, 16);
    expect_idx_error(f, "huge", file, len, false, 0, PLX_OVERFLOW, "1048576x1048576");
    expect_idx_error(f, "huge.gz", file, len, true, 0, PLX_OVERFLOW, "limit");
    /* 8 dims of 2^32-1: the product overflows 64 bits. */
    len = make_idx(file, 0x0E, 8, (uint32_t[]){~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u, ~0u}, px, 16);
    expect_idx_error(f, "overflow", file, len, false, 0, PLX_OVERFLOW, "corrupt header");
    /* A file larger than the caller's limit. */
    len = make_idx(file, 0x08, 1, (uint32_t[]){16}, px, 16);
    expect_idx_error(f, "limit", file, len, false, 8, PLX_OVERFLOW, "limit");
    expect_idx_error(f, "limit.gz", file, len, true, 8, PLX_OVERFLOW, "limit");

    /* A gzip file cut in the middle, and one corrupted inside. */
    unsigned char big[4096];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7 + (i >> 5));
    unsigned char whole[8192];
    len = make_idx(whole, 0x08, 1, (uint32_t[]){4096}, big, sizeof big);
    const char *gz = write_file(f, "whole.gz", whole, len, true);
    FILE *fp = fopen(gz, "rb");
    unsigned char comp[8192];
    size_t clen = fread(comp, 1, sizeof comp, fp);
    fclose(fp);
    unlink(gz);
    f->n_paths--;
    assert_true(clen > 40);
    expect_idx_error(f, "cut.gz", comp, clen / 2, false, 0, PLX_IO_ERROR, "truncated .gz");
    comp[clen / 2] ^= 0xFF;
    comp[clen / 2 + 1] ^= 0x55;
    expect_idx_error(f, "bad.gz", comp, clen, false, 0, PLX_IO_ERROR, "gzip");

    /* Missing file, and a directory. */
    idx_array a = {0};
    data_error err;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no-such-file", f->dir);
    assert_int_equal(idx_read(missing, 0, &a, &err), PLX_IO_ERROR);
    assert_contains(err.message, missing);
    assert_contains(err.message, "cannot open");
    assert_int_equal(idx_read(f->dir, 0, &a, &err), PLX_IO_ERROR);
    assert_contains(err.message, "not a regular file");
    /* A FIFO is refused at once, not waited on. */
    char fifo[160];
    snprintf(fifo, sizeof fifo, "%s/fifo", f->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(idx_read(fifo, 0, &a, &err), PLX_IO_ERROR);
    assert_contains(err.message, "not a regular file");
    unlink(fifo);
    assert_int_equal(idx_read(NULL, 0, &a, NULL), PLX_INVALID_ARGUMENT); /* err may be NULL */
}

static void test_dataset_from_idx_pair(void **state)
{
    fixture *f = *state;
    unsigned char px[3 * 2 * 2], file[64];
    for (int i = 0; i < 12; i++)
        px[i] = (unsigned char)(i * 23);
    size_t len = make_idx(file, 0x08, 3, (uint32_t[]){3, 2, 2}, px, sizeof px);
    const char *images = write_file(f, "img.gz", file, len, true);
    unsigned char lab[3] = {4, 0, 2}, lfile[32];
    len = make_idx(lfile, 0x08, 1, (uint32_t[]){3}, lab, 3);
    const char *labels = write_file(f, "lab", lfile, len, false);

    dataset *ds = NULL;
    data_error err;
    assert_int_equal(dataset_load_idx(images, labels, NULL, &ds, &err), PLX_OK);
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->sample_ndim, 3);
    assert_int_equal(ds->sample_shape[0], 1);
    assert_int_equal(ds->sample_shape[1], 2);
    assert_int_equal(ds->sample_shape[2], 2);
    assert_int_equal(ds->sample_size, 4);
    assert_int_equal(ds->n_classes, 5);
    for (int i = 0; i < 12; i++)
        assert_true(ds->features[i] == (float)px[i] / 255.0f);
    assert_int_equal(ds->labels[0], 4);
    assert_int_equal(ds->labels[2], 2);
    dataset_free(ds);

    /* An explicit scale. */
    dataset_load_options opts = {.scale = 2.0f};
    assert_int_equal(dataset_load_idx(images, labels, &opts, &ds, &err), PLX_OK);
    assert_true(ds->features[5] == 2.0f * (float)px[5]);
    dataset_free(ds);

    /* Counts that disagree: both files named. */
    unsigned char lab2[2] = {1, 1};
    len = make_idx(lfile, 0x08, 1, (uint32_t[]){2}, lab2, 2);
    const char *labels2 = write_file(f, "lab2", lfile, len, false);
    ds = NULL;
    assert_int_equal(dataset_load_idx(images, labels2, NULL, &ds, &err), PLX_SHAPE_MISMATCH);
    assert_null(ds);
    assert_contains(err.message, images);
    assert_contains(err.message, labels2);
    assert_contains(err.message, "3 examples");
    assert_contains(err.message, "2 labels");

    /* Labels that are not 1-D, negative, or fractional. */
    len = make_idx(lfile, 0x08, 2, (uint32_t[]){3, 1}, lab, 3);
    const char *labels3 = write_file(f, "lab3", lfile, len, false);
    assert_int_equal(dataset_load_idx(images, labels3, NULL, &ds, &err), PLX_SHAPE_MISMATCH);
    assert_contains(err.message, labels3);
    assert_contains(err.message, "1-D");
    unsigned char neg[3] = {1, 0xFF, 2};
    len = make_idx(lfile, 0x09, 1, (uint32_t[]){3}, neg, 3);
    const char *labels4 = write_file(f, "lab4", lfile, len, false);
    assert_int_equal(dataset_load_idx(images, labels4, NULL, &ds, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, labels4);
    assert_contains(err.message, "example 1 is -1");
    unsigned char fl[12];
    float fv[3] = {1.0f, 2.5f, 0.0f};
    for (int i = 0; i < 3; i++) {
        uint32_t u;
        memcpy(&u, &fv[i], 4);
        be_store(fl + 4 * i, u, 4);
    }
    len = make_idx(lfile, 0x0D, 1, (uint32_t[]){3}, fl, 12);
    unlink(labels2);
    const char *labels5 = labels2; /* reuse the slot */
    FILE *fp = fopen(labels5, "wb");
    fwrite(lfile, 1, len, fp);
    fclose(fp);
    assert_int_equal(dataset_load_idx(images, labels5, NULL, &ds, &err), PLX_INVALID_ARGUMENT);
    assert_contains(err.message, "example 1 is 2.5");
    assert_null(ds);
}

/* Random corruptions of a valid file (byte flips, cuts, header bytes set
 * to extremes): every outcome is PLX_OK or an error naming the file; under
 * SANITIZE=1 this also proves no read goes out of bounds. */
static void test_fuzzed_headers_and_bodies(void **state)
{
    fixture *f = *state;
    unsigned char px[3 * 4 * 5], file[128], mutated[128];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (unsigned char)(i * 13);
    size_t len = make_idx(file, 0x08, 3, (uint32_t[]){3, 4, 5}, px, sizeof px);
    uint64_t rng = 12345;
    int ok = 0;
    for (int iter = 0; iter < 400; iter++) {
        memcpy(mutated, file, len);
        size_t n = len;
        int edits = 1 + (int)tu_rand_int(&rng, 0, 3);
        for (int e = 0; e < edits; e++) {
            int64_t kind = tu_rand_int(&rng, 0, 3);
            if (kind == 0)
                n = (size_t)tu_rand_int(&rng, 0, (int64_t)n);
            else if (kind == 1 && n > 0)
                mutated[tu_rand_int(&rng, 0, (int64_t)n - 1)] ^= (unsigned char)tu_rand_int(&rng, 1, 255);
            else if (n > 16)
                mutated[tu_rand_int(&rng, 0, 15)] = kind == 2 ? 0xFF : 0x00;
        }
        const char *path = write_file(f, "fuzz", mutated, n, iter % 3 == 0);
        idx_array a = {0};
        data_error err = {{0}};
        plx_status st = idx_read(path, 1 << 20, &a, &err);
        if (st == PLX_OK) {
            assert_true(a.count * (int64_t)a.elem_size + 4 + 4 * a.ndim == (int64_t)n);
            idx_array_free(&a);
            ok++;
        } else {
            assert_non_null(strstr(err.message, path));
            assert_null(a.data);
        }
        unlink(path);
        f->n_paths--;
    }
    assert_true(ok < 400);
}

static void test_real_fashion_mnist(void **state)
{
    (void)state;
    const char *images = FASHION_DIR "t10k-images-idx3-ubyte.gz";
    const char *labels = FASHION_DIR "t10k-labels-idx1-ubyte.gz";
    if (access(images, R_OK) != 0 || access(labels, R_OK) != 0) {
        print_message("skipping: Fashion-MNIST t10k files not found in " FASHION_DIR "\n");
        skip();
        return;
    }
    dataset *ds = NULL;
    data_error err;
    plx_status st = dataset_load_idx(images, labels, NULL, &ds, &err);
    if (st != PLX_OK)
        fail_msg("%s", err.message);
    assert_int_equal(ds->n, 10000);
    assert_int_equal(ds->sample_shape[0], 1);
    assert_int_equal(ds->sample_shape[1], 28);
    assert_int_equal(ds->sample_shape[2], 28);
    assert_int_equal(ds->n_classes, 10);
    int64_t hist[10] = {0};
    for (int64_t i = 0; i < ds->n; i++)
        hist[ds->labels[i]]++;
    for (int c = 0; c < 10; c++)
        assert_int_equal(hist[c], 1000);
    /* The first labels of the test set: ankle boot, pullover, trouser, ... */
    const int64_t first[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    for (int i = 0; i < 10; i++)
        assert_int_equal(ds->labels[i], first[i]);
    /* Pixels back to bytes: the byte sum of the whole file and of image 0. */
    int64_t sum = 0, sum0 = 0;
    float lo = 1.0f, hi = 0.0f;
    for (int64_t i = 0; i < ds->n * 784; i++) {
        float v = ds->features[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
        int64_t b = (int64_t)lrintf(v * 255.0f);
        sum += b;
        if (i < 784)
            sum0 += b;
    }
    assert_true(lo == 0.0f && hi == 1.0f);
    assert_int_equal(sum, 573469082);
    assert_int_equal(sum0, 33456);
    float mean, std;
    assert_int_equal(dataset_channel_stats(ds, 1, &mean, &std, &err), PLX_OK);
    assert_true(fabsf(mean - 0.286849f) < 1e-5f);
    assert_true(std > 0.34f && std < 0.36f);
    dataset_free(ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_u8_raw_and_gzip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_type_big_endian, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dataset_from_idx_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuzzed_headers_and_bodies, setup, teardown),
        cmocka_unit_test(test_real_fashion_mnist),
    };
    return cmocka_run_group_tests_name("runtime/data/idx", tests, NULL, NULL);
}

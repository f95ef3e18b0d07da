/*
 * test_safetensors.c — runtime/io/safetensors: round trips of every dtype,
 * byte-exact agreement with the reference implementation (its own test
 * vectors and a fixture written by tests/fixtures/safetensors/gen.py),
 * metadata helpers, writer errors, atomic replacement, and a fuzz-style
 * pass (every truncation, seeded header mutations, crafted hostile headers)
 * that must produce errors, never crashes or out-of-bounds reads (run it
 * under `make SANITIZE=1`; buffers are allocated at their exact size so
 * ASan sees any overrun).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../../test_util.h"
#include "../../../runtime/io/safetensors.h"

#define FIXTURE_DIR PLX_TEST_SOURCE_DIR "/tests/fixtures/safetensors"

/* ---- helpers ------------------------------------------------------------ */

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    if (tu_make_temp_dir(fx->dir, sizeof fx->dir, "/tmp/plx-st-")) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    tu_remove_dir(fx->dir);
    free(fx);
    return 0;
}

/* Whole file, malloc'd at its exact size (at least 1 byte allocated). */
static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *size = (size_t)n;
    return buf;
}

static void spit(const char *path, const void *data, size_t size)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, size, fp), size);
    assert_int_equal(fclose(fp), 0);
}

static plx_dtype dtype_named(const char *name)
{
    plx_dtype d;
    if (!st_dtype_from_name(name, &d))
        fail_msg("no dtype %s", name);
    return d;
}

/* Opens a copy of bytes[0..size) made at its exact size, so reading past
 * the end is an ASan error. */
static plx_status open_copy(const void *bytes, size_t size, st_file **out, unsigned char **copy, char *err,
                            size_t cap)
{
    *copy = malloc(size > 0 ? size : 1);
    assert_non_null(*copy);
    if (size > 0)
        memcpy(*copy, bytes, size);
    return st_file_open_memory(size > 0 ? *copy : NULL, size, "crafted.st", out, err, cap);
}

/* Everything an opened file promises, touched byte by byte. */
static void check_invariants(const st_file *f, const unsigned char *base, size_t size)
{
    size_t n = st_tensor_count(f);
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_tensor_at(f, i);
        assert_non_null(t);
        assert_non_null(t->name);
        assert_ptr_equal(st_tensor_find(f, t->name), t);
        assert_true(t->ndim >= 0 && t->ndim <= PLX_MAX_DIMS);
        uint64_t numel = 1;
        bool overflow = false, zero = false;
        for (int32_t d = 0; d < t->ndim; d++) {
            assert_true(t->shape[d] >= 0);
            zero = zero || t->shape[d] == 0;
            overflow = overflow || __builtin_mul_overflow(numel, (uint64_t)t->shape[d], &numel);
        }
        if (zero)
            numel = 0;
        else
            assert_false(overflow);
        assert_int_equal(t->numel, numel);
        assert_int_equal(t->nbytes, (uint64_t)t->numel * plx_dtype_size(t->dtype));
        const unsigned char *p = t->data;
        if (t->nbytes > 0) {
            assert_true(p >= base && p + t->nbytes <= base + size);
            for (uint64_t k = 0; k < t->nbytes; k++)
                sum += p[k];
        }
        for (size_t j = 0; j < i; j++) {
            const st_tensor *u = st_tensor_at(f, j);
            if (t->nbytes > 0 && u->nbytes > 0)
                assert_true(t->offset + t->nbytes <= u->offset || u->offset + u->nbytes <= t->offset);
        }
    }
    for (size_t i = 0; i < st_metadata_count(f); i++) {
        const char *k = NULL, *v = NULL;
        assert_true(st_metadata_at(f, i, &k, &v));
        assert_ptr_equal(st_metadata_get(f, k), v);
        sum += (unsigned)strlen(v);
    }
    (void)sum;
}

/* ---- dtypes ------------------------------------------------------------- */

static const char *const all_dtypes[] = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16",
                                         "I8",  "U64", "U32", "U16", "U8",  "BOOL"};
#define N_DTYPES (sizeof all_dtypes / sizeof all_dtypes[0])

static void test_dtype_names(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_DTYPES; i++) {
        plx_dtype d = dtype_named(all_dtypes[i]);
        assert_string_equal(st_dtype_name(d), all_dtypes[i]);
    }
    assert_true(plx_dtype_equal(dtype_named("F32"), PLX_F32));
    assert_true(plx_dtype_equal(dtype_named("F16"), PLX_F16));
    assert_true(plx_dtype_equal(dtype_named("BF16"), PLX_BF16));
    assert_true(plx_dtype_equal(dtype_named("I32"), PLX_I32));
    assert_true(plx_dtype_equal(dtype_named("I64"), PLX_I64));
    assert_true(plx_dtype_equal(dtype_named("U8"), PLX_U8));
    assert_true(plx_dtype_equal(dtype_named("BOOL"), PLX_BOOL));
    plx_dtype d = PLX_F32;
    assert_false(st_dtype_from_name("F8_E4M3", &d));
    assert_false(st_dtype_from_name("f32", &d));
    assert_false(st_dtype_from_name("", &d));
    assert_false(st_dtype_from_name(NULL, &d));
    assert_true(plx_dtype_equal(d, PLX_F32)); /* untouched */
    plx_dtype odd = {PLX_DTYPE_CODE_FLOAT, 8, 1};
    assert_null(st_dtype_name(odd));
    plx_dtype lanes = {PLX_DTYPE_CODE_FLOAT, 32, 4};
    assert_null(st_dtype_name(lanes));
}

/* ---- round trips -------------------------------------------------------- */

static void test_round_trip_every_dtype(void **state)
{
    fixture *fx = *state;
    static const int64_t shapes[][4] = {{2, 3, 0, 0}, {5, 0, 0, 0}, {1, 1, 7, 0}, {4, 1, 0, 0}};
    static const int32_t ranks[] = {2, 1, 3, 2};
    uint64_t rng = 42;
    st_writer *w = st_writer_new();
    assert_non_null(w);
    unsigned char *data[N_DTYPES];
    size_t sizes[N_DTYPES];
    char names[N_DTYPES][32];
    for (size_t i = 0; i < N_DTYPES; i++) {
        plx_dtype dt = dtype_named(all_dtypes[i]);
        size_t k = i % 4;
        size_t numel = 1;
        for (int32_t d = 0; d < ranks[k]; d++)
            numel *= (size_t)shapes[k][d];
        sizes[i] = numel * plx_dtype_size(dt);
        data[i] = malloc(sizes[i]);
        assert_non_null(data[i]);
        for (size_t b = 0; b < sizes[i]; b++)
            data[i][b] = (unsigned char)tu_rng_next(&rng);
        snprintf(names[i], sizeof names[i], "layer%zu.%s", i, all_dtypes[i]);
        assert_int_equal(st_writer_add_tensor(w, names[i], dt, ranks[k], shapes[k], data[i]), PLX_OK);
    }
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/every.safetensors", fx->dir);
    if (st_writer_write(w, path, err, sizeof err) != PLX_OK)
        fail_msg("%s", err);

    st_file *f = NULL;
    if (st_file_open(path, &f, err, sizeof err) != PLX_OK)
        fail_msg("%s", err);
    assert_string_equal(st_file_path(f), path);
    assert_int_equal(st_tensor_count(f), N_DTYPES);
    assert_int_equal(st_metadata_count(f), 0);
    for (size_t i = 0; i < N_DTYPES; i++) {
        const st_tensor *t = st_tensor_find(f, names[i]);
        assert_non_null(t);
        assert_string_equal(t->name, names[i]);
        assert_true(plx_dtype_equal(t->dtype, dtype_named(all_dtypes[i])));
        assert_int_equal(t->ndim, ranks[i % 4]);
        for (int32_t d = 0; d < t->ndim; d++)
            assert_int_equal(t->shape[d], shapes[i % 4][d]);
        assert_int_equal(t->nbytes, sizes[i]);
        assert_memory_equal(t->data, data[i], sizes[i]);
        assert_true(st_tensor_is_aligned(t));
        assert_int_equal(t->offset % plx_dtype_size(t->dtype), 0);
    }
    /* Header order is data order: alignment descending. */
    for (size_t i = 1; i < N_DTYPES; i++)
        assert_true(plx_dtype_size(st_tensor_at(f, i - 1)->dtype) >= plx_dtype_size(st_tensor_at(f, i)->dtype));
    assert_null(st_tensor_at(f, N_DTYPES));
    assert_null(st_tensor_find(f, "missing"));
    assert_null(st_tensor_find(f, "layer0"));

    /* The memory form is the same bytes. */
    void *mem = NULL;
    size_t mem_size = 0;
    assert_int_equal(st_writer_serialize(w, &mem, &mem_size, err, sizeof err), PLX_OK);
    size_t file_size;
    unsigned char *bytes = slurp(path, &file_size);
    assert_int_equal(mem_size, file_size);
    assert_memory_equal(mem, bytes, file_size);
    st_file *g = NULL;
    assert_int_equal(st_file_open_memory(mem, mem_size, NULL, &g, err, sizeof err), PLX_OK);
    assert_string_equal(st_file_path(g), "<memory>");
    check_invariants(g, mem, mem_size);
    st_file_close(g);
    free(mem);
    free(bytes);

    st_file_close(f);
    st_file_close(NULL);
    st_writer_free(w);
    st_writer_free(NULL);
    for (size_t i = 0; i < N_DTYPES; i++)
        free(data[i]);
}

static void test_scalar_and_empty_tensors(void **state)
{
    (void)state;
    st_writer *w = st_writer_new();
    double pi = 3.141592653589793;
    int64_t zero3[] = {0, 3}, zero[] = {0}, big_empty[] = {3, 0, 1000000};
    uint8_t flag = 1;
    assert_int_equal(st_writer_add_tensor(w, "pi", dtype_named("F64"), 0, NULL, &pi), PLX_OK);
    assert_int_equal(st_writer_add_tensor(w, "flag", PLX_BOOL, 0, NULL, &flag), PLX_OK);
    assert_int_equal(st_writer_add_tensor(w, "none", PLX_F32, 2, zero3, NULL), PLX_OK);
    assert_int_equal(st_writer_add_tensor(w, "nothing", PLX_I64, 1, zero, NULL), PLX_OK);
    assert_int_equal(st_writer_add_tensor(w, "wide", PLX_F16, 3, big_empty, NULL), PLX_OK);
    void *mem = NULL;
    size_t size = 0;
    char err[512] = "";
    assert_int_equal(st_writer_serialize(w, &mem, &size, err, sizeof err), PLX_OK);
    st_file *f = NULL;
    if (st_file_open_memory(mem, size, "scalars", &f, err, sizeof err) != PLX_OK)
        fail_msg("%s", err);
    const st_tensor *t = st_tensor_find(f, "pi");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->numel, 1);
    assert_int_equal(t->nbytes, 8);
    double got;
    memcpy(&got, t->data, sizeof got);
    assert_true(got == pi);
    t = st_tensor_find(f, "flag");
    assert_int_equal(t->ndim, 0);
    assert_int_equal(((const uint8_t *)t->data)[0], 1);
    t = st_tensor_find(f, "none");
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 0);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->nbytes, 0);
    assert_int_equal(st_tensor_find(f, "nothing")->nbytes, 0);
    assert_int_equal(st_tensor_find(f, "wide")->shape[2], 1000000);
    check_invariants(f, mem, size);
    st_file_close(f);
    free(mem);
    st_writer_free(w);

    /* A writer with nothing: exactly the reference's empty file. */
    w = st_writer_new();
    assert_int_equal(st_writer_serialize(w, &mem, &size, err, sizeof err), PLX_OK);
    static const unsigned char empty[] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    assert_int_equal(size, sizeof empty);
    assert_memory_equal(mem, empty, sizeof empty);
    assert_int_equal(st_file_open_memory(mem, size, NULL, &f, err, sizeof err), PLX_OK);
    assert_int_equal(st_tensor_count(f), 0);
    st_file_close(f);
    free(mem);
    st_writer_free(w);
}

/* The reference implementation's own unit-test vectors (tensor.rs:
 * test_serialization, test_serialization_forced_alignement, test_empty). */
static void test_reference_vectors(void **state)
{
    (void)state;
    float values[] = {0, 1, 2, 3, 4, 5};
    static const unsigned char attn_0[] = {
        64,  0,   0,   0,   0,  0,   0,   0,   123, 34,  97,  116, 116, 110, 46,  48,  34,  58,  123, 34,
        100, 116, 121, 112, 101, 34,  58,  34,  70,  51,  50,  34,  44,  34,  115, 104, 97,  112, 101, 34,
        58,  91,  49,  44,  50,  44,  51,  93,  44,  34,  100, 97,  116, 97,  95,  111, 102, 102, 115, 101,
        116, 115, 34,  58,  91,  48,  44,  50,  52,  93,  125, 125, 0,   0,   0,   0,   0,   0,   128, 63,
        0,   0,   0,   64,  0,   0,   64,  64,  0,   0,   128, 64,  0,   0,   160, 64};
    static const unsigned char attn0[] = {
        72,  0,   0,   0,   0,   0,   0,   0,   123, 34,  97,  116, 116, 110, 48,  34,  58,  123, 34,  100,
        116, 121, 112, 101, 34,  58,  34,  70,  51,  50,  34,  44,  34,  115, 104, 97,  112, 101, 34,  58,
        91,  49,  44,  49,  44,  50,  44,  51,  93,  44,  34,  100, 97,  116, 97,  95,  111, 102, 102, 115,
        101, 116, 115, 34,  58,  91,  48,  44,  50,  52,  93,  125, 125, 32,  32,  32,  32,  32,  32,  32,
        0,   0,   0,   0,   0,   0,   128, 63,  0,   0,   0,   64,  0,   0,   64,  64,  0,   0,   128, 64,
        0,   0,   160, 64};
    static const unsigned char framework[] = {
        40,  0,   0,   0,   0,   0,   0,   0,  123, 34,  95,  95,  109, 101, 116, 97,  100, 97,  116, 97, 95,
        95,  34,  58,  123, 34,  102, 114, 97, 109, 101, 119, 111, 114, 107, 34,  58,  34,  112, 116, 34, 125,
        125, 32,  32,  32,  32,  32};
    char err[256] = "";
    void *mem;
    size_t size;

    st_writer *w = st_writer_new();
    assert_int_equal(st_writer_add_tensor(w, "attn.0", PLX_F32, 3, (int64_t[]){1, 2, 3}, values), PLX_OK);
    assert_int_equal(st_writer_serialize(w, &mem, &size, err, sizeof err), PLX_OK);
    assert_int_equal(size, sizeof attn_0);
    assert_memory_equal(mem, attn_0, size);
    free(mem);
    st_writer_free(w);

    w = st_writer_new();
    assert_int_equal(st_writer_add_tensor(w, "attn0", PLX_F32, 4, (int64_t[]){1, 1, 2, 3}, values), PLX_OK);
    assert_int_equal(st_writer_serialize(w, &mem, &size, err, sizeof err), PLX_OK);
    assert_int_equal(size, sizeof attn0);
    assert_memory_equal(mem, attn0, size);
    free(mem);
    st_writer_free(w);

    w = st_writer_new();
    assert_int_equal(st_writer_set_metadata(w, "framework", "pt"), PLX_OK);
    assert_int_equal(st_writer_serialize(w, &mem, &size, err, sizeof err), PLX_OK);
    assert_int_equal(size, sizeof framework);
    assert_memory_equal(mem, framework, size);
    free(mem);
    st_writer_free(w);

    /* And they read back. */
    st_file *f = NULL;
    unsigned char *copy;
    assert_int_equal(open_copy(attn_0, sizeof attn_0, &f, &copy, err, sizeof err), PLX_OK);
    const st_tensor *t = st_tensor_find(f, "attn.0");
    assert_non_null(t);
    assert_memory_equal(t->data, values, sizeof values);
    st_file_close(f);
    free(copy);
    assert_int_equal(open_copy(framework, sizeof framework, &f, &copy, err, sizeof err), PLX_OK);
    assert_string_equal(st_metadata_get(f, "framework"), "pt");
    st_file_close(f);
    free(copy);
}

/* ---- the fixture from another tool -------------------------------------- */

typedef struct fixture_tensor {
    const char *name;
    const char *dtype;
    int32_t ndim;
    int64_t shape[2];
} fixture_tensor;

static const fixture_tensor fixture_tensors[] = {
    {"fc1.weight", "F32", 2, {3, 4}}, {"fc1.bias", "F32", 1, {3}},  {"step_counts", "I64", 2, {2, 2}},
    {"emb.bf16", "BF16", 2, {2, 3}},  {"half", "F16", 1, {4}},      {"scale", "F64", 0, {0}},
    {"ids32", "I32", 1, {3}},         {"ids16", "I16", 2, {2, 1}},  {"small", "I8", 1, {3}},
    {"bytes", "U8", 1, {4}},          {"mask", "BOOL", 1, {3}},     {"empty", "F32", 2, {0, 3}},
};
#define N_FIXTURE (sizeof fixture_tensors / sizeof fixture_tensors[0])

static void test_fixture_from_python(void **state)
{
    (void)state;
    char err[512] = "";
    st_file *f = NULL;
    const char *path = FIXTURE_DIR "/tiny.safetensors";
    if (st_file_open(path, &f, err, sizeof err) != PLX_OK)
        fail_msg("%s", err);
    assert_int_equal(st_tensor_count(f), N_FIXTURE);
    unsigned char *expected[N_FIXTURE];
    size_t expected_size[N_FIXTURE];
    for (size_t i = 0; i < N_FIXTURE; i++) {
        const fixture_tensor *ft = &fixture_tensors[i];
        const st_tensor *t = st_tensor_find(f, ft->name);
        if (t == NULL)
            fail_msg("fixture has no tensor '%s'", ft->name);
        assert_true(plx_dtype_equal(t->dtype, dtype_named(ft->dtype)));
        assert_int_equal(t->ndim, ft->ndim);
        for (int32_t d = 0; d < ft->ndim; d++)
            assert_int_equal(t->shape[d], ft->shape[d]);
        char bin[256];
        snprintf(bin, sizeof bin, FIXTURE_DIR "/expected/%s.bin", ft->name);
        expected[i] = slurp(bin, &expected_size[i]);
        assert_int_equal(t->nbytes, expected_size[i]);
        if (expected_size[i] > 0)
            assert_memory_equal(t->data, expected[i], expected_size[i]);
        assert_true(st_tensor_is_aligned(t));
    }
    /* A few values spelled out, so the expected files are not the only
     * witness. */
    const st_tensor *w = st_tensor_find(f, "fc1.weight");
    float w5;
    memcpy(&w5, (const char *)w->data + 5 * 4, 4);
    assert_true(w5 == 5.0f / 8.0f - 0.75f);
    int64_t c3;
    memcpy(&c3, (const char *)st_tensor_find(f, "step_counts")->data + 3 * 8, 8);
    assert_true(c3 == -((int64_t)1 << 62));
    double e;
    memcpy(&e, st_tensor_find(f, "scale")->data, 8);
    assert_true(e == 2.718281828459045);
    uint16_t bf0;
    memcpy(&bf0, st_tensor_find(f, "emb.bf16")->data, 2);
    assert_int_equal(bf0, 0x3F80); /* bfloat16 1.0 */
    assert_int_equal(((const uint8_t *)st_tensor_find(f, "bytes")->data)[2], 255);

    assert_int_equal(st_metadata_count(f), 3);
    assert_string_equal(st_metadata_get(f, "format"), "pt");
    assert_string_equal(st_metadata_get(f, "note"), "caf\xc3\xa9 \"quoted\"");
    int64_t step = 0;
    assert_int_equal(st_metadata_get_i64(f, "step", &step, err, sizeof err), PLX_OK);
    assert_int_equal(step, 42);

    /* Our writer, given the same tensors and metadata, writes the same
     * bytes as the generator (which follows the reference layout). */
    st_writer *wr = st_writer_new();
    for (size_t i = 0; i < N_FIXTURE; i++) {
        const fixture_tensor *ft = &fixture_tensors[i];
        assert_int_equal(st_writer_add_tensor(wr, ft->name, dtype_named(ft->dtype), ft->ndim, ft->shape,
                                              expected_size[i] > 0 ? expected[i] : NULL),
                         PLX_OK);
    }
    assert_int_equal(st_writer_set_metadata(wr, "step", "42"), PLX_OK);
    assert_int_equal(st_writer_set_metadata(wr, "note", "caf\xc3\xa9 \"quoted\""), PLX_OK);
    assert_int_equal(st_writer_set_metadata(wr, "format", "pt"), PLX_OK);
    void *mem;
    size_t size, fixture_size;
    assert_int_equal(st_writer_serialize(wr, &mem, &size, err, sizeof err), PLX_OK);
    unsigned char *fixture_bytes = slurp(path, &fixture_size);
    assert_int_equal(size, fixture_size);
    assert_memory_equal(mem, fixture_bytes, size);
    free(fixture_bytes);
    free(mem);
    st_writer_free(wr);
    for (size_t i = 0; i < N_FIXTURE; i++)
        free(expected[i]);
    st_file_close(f);
}

/* ---- metadata ----------------------------------------------------------- */

static void test_metadata(void **state)
{
    (void)state;
    st_writer *w = st_writer_new();
    uint8_t rng_state[32];
    for (int i = 0; i < 32; i++)
        rng_state[i] = (uint8_t)(i * 37 + 5);
    assert_int_equal(st_writer_set_metadata(w, "model", "{\"layers\": []}"), PLX_OK);
    assert_int_equal(st_writer_set_metadata(w, "step", "1"), PLX_OK);
    assert_int_equal(st_writer_set_metadata_i64(w, "step", INT64_MIN), PLX_OK); /* replaces */
    assert_int_equal(st_writer_set_metadata_i64(w, "max", INT64_MAX), PLX_OK);
    assert_int_equal(st_writer_set_metadata_u64(w, "seed", UINT64_MAX), PLX_OK);
    assert_int_equal(st_writer_set_metadata_f64(w, "lr", 0.1), PLX_OK);
    assert_int_equal(st_writer_set_metadata_f64(w, "tiny", -1e-300), PLX_OK);
    assert_int_equal(st_writer_set_metadata_f64(w, "inf", INFINITY), PLX_OK);
    assert_int_equal(st_writer_set_metadata_f64(w, "nan", NAN), PLX_OK);
    assert_int_equal(st_writer_set_metadata_bytes(w, "rng", rng_state, sizeof rng_state), PLX_OK);
    assert_int_equal(st_writer_set_metadata_bytes(w, "none", NULL, 0), PLX_OK);
    assert_int_equal(st_writer_set_metadata(w, "", "empty key"), PLX_OK);
    assert_int_equal(st_writer_set_metadata(w, "escapes", "tab\there\nnew \"q\" \\ \x01 end"), PLX_OK);
    cJSON *sched = cJSON_CreateObject();
    cJSON_AddStringToObject(sched, "kind", "cosine");
    cJSON_AddNumberToObject(sched, "epoch", 3);
    assert_int_equal(st_writer_set_metadata_json(w, "scheduler", sched), PLX_OK);
    cJSON_Delete(sched);
    assert_string_equal(st_writer_error(w), "");

    void *mem;
    size_t size;
    char err[512] = "";
    assert_int_equal(st_writer_serialize(w, &mem, &size, err, sizeof err), PLX_OK);
    st_writer_free(w);
    st_file *f = NULL;
    if (st_file_open_memory(mem, size, "meta.st", &f, err, sizeof err) != PLX_OK)
        fail_msg("%s", err);
    assert_int_equal(st_metadata_count(f), 13);
    /* Written in key order. */
    const char *prev = NULL, *key, *value;
    for (size_t i = 0; i < st_metadata_count(f); i++) {
        assert_true(st_metadata_at(f, i, &key, &value));
        if (prev != NULL)
            assert_true(strcmp(prev, key) < 0);
        prev = key;
    }
    assert_false(st_metadata_at(f, 13, &key, &value));
    assert_true(st_metadata_at(f, 0, NULL, NULL));

    assert_string_equal(st_metadata_get(f, "model"), "{\"layers\": []}");
    assert_string_equal(st_metadata_get(f, ""), "empty key");
    assert_string_equal(st_metadata_get(f, "escapes"), "tab\there\nnew \"q\" \\ \x01 end");
    assert_null(st_metadata_get(f, "absent"));
    int64_t i64 = 0;
    uint64_t u64 = 0;
    double f64 = 0;
    assert_int_equal(st_metadata_get_i64(f, "step", &i64, err, sizeof err), PLX_OK);
    assert_true(i64 == INT64_MIN);
    assert_int_equal(st_metadata_get_i64(f, "max", &i64, err, sizeof err), PLX_OK);
    assert_true(i64 == INT64_MAX);
    assert_int_equal(st_metadata_get_u64(f, "seed", &u64, err, sizeof err), PLX_OK);
    assert_true(u64 == UINT64_MAX);
    assert_int_equal(st_metadata_get_f64(f, "lr", &f64, err, sizeof err), PLX_OK);
    assert_true(f64 == 0.1);
    assert_int_equal(st_metadata_get_f64(f, "tiny", &f64, err, sizeof err), PLX_OK);
    assert_true(f64 == -1e-300);
    assert_int_equal(st_metadata_get_f64(f, "inf", &f64, err, sizeof err), PLX_OK);
    assert_true(isinf(f64) && f64 > 0);
    assert_int_equal(st_metadata_get_f64(f, "nan", &f64, err, sizeof err), PLX_OK);
    assert_true(isnan(f64));
    uint8_t back[32];
    assert_int_equal(st_metadata_get_bytes(f, "rng", back, sizeof back, err, sizeof err), PLX_OK);
    assert_memory_equal(back, rng_state, sizeof back);
    assert_int_equal(st_metadata_get_bytes(f, "none", back, 0, err, sizeof err), PLX_OK);
    cJSON *json = NULL;
    assert_int_equal(st_metadata_get_json(f, "scheduler", &json, err, sizeof err), PLX_OK);
    assert_string_equal(cJSON_GetObjectItem(json, "kind")->valuestring, "cosine");
    assert_int_equal(cJSON_GetObjectItem(json, "epoch")->valueint, 3);
    cJSON_Delete(json);

    /* Failures name the file and key and leave *out alone. */
    i64 = 7;
    assert_int_equal(st_metadata_get_i64(f, "absent", &i64, err, sizeof err), PLX_NOT_FOUND);
    assert_non_null(strstr(err, "meta.st"));
    assert_non_null(strstr(err, "'absent'"));
    assert_int_equal(st_metadata_get_i64(f, "model", &i64, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "meta.st: __metadata__ 'model'"));
    assert_int_equal(st_metadata_get_i64(f, "lr", &i64, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_int_equal(st_metadata_get_i64(f, "seed", &i64, err, sizeof err), PLX_INVALID_ARGUMENT); /* > max */
    assert_int_equal(i64, 7);
    assert_int_equal(st_metadata_get_u64(f, "step", &u64, err, sizeof err), PLX_INVALID_ARGUMENT); /* negative */
    assert_int_equal(st_metadata_get_f64(f, "model", &f64, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_int_equal(st_metadata_get_f64(f, "", &f64, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_int_equal(st_metadata_get_bytes(f, "rng", back, 31, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_int_equal(st_metadata_get_bytes(f, "model", back, 7, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_int_equal(st_metadata_get_json(f, "escapes", &json, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_int_equal(st_metadata_get_json(f, "absent", &json, err, sizeof err), PLX_NOT_FOUND);
    st_file_close(f);
    free(mem);

    /* Integer syntax is exact: no '+', spaces, empty or trailing text. */
    static const char *const bad_ints[] = {"+5", " 5", "5 ", "", "-", "0x10", "1e3", "5a", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_ints / sizeof bad_ints[0]; i++) {
        w = st_writer_new();
        assert_int_equal(st_writer_set_metadata(w, "v", bad_ints[i]), PLX_OK);
        assert_int_equal(st_writer_serialize(w, &mem, &size, err, sizeof err), PLX_OK);
        assert_int_equal(st_file_open_memory(mem, size, "ints", &f, err, sizeof err), PLX_OK);
        if (st_metadata_get_i64(f, "v", &i64, err, sizeof err) != PLX_INVALID_ARGUMENT)
            fail_msg("i64 '%s' accepted", bad_ints[i]);
        assert_int_equal(st_metadata_get_u64(f, "v", &u64, err, sizeof err), PLX_INVALID_ARGUMENT);
        st_file_close(f);
        free(mem);
        st_writer_free(w);
    }
}

/* ---- writer errors ------------------------------------------------------ */

static void test_writer_errors(void **state)
{
    fixture *fx = *state;
    float x[4] = {0};
    int64_t shape[PLX_MAX_DIMS + 1] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    struct {
        const char *name;
        plx_dtype dtype;
        int32_t ndim;
        const int64_t *shape;
        const void *data;
        plx_status status;
        const char *message;
    } cases[] = {
        {"", PLX_F32, 1, shape, x, PLX_INVALID_ARGUMENT, "empty name"},
        {NULL, PLX_F32, 1, shape, x, PLX_INVALID_ARGUMENT, "empty name"},
        {"__metadata__", PLX_F32, 1, shape, x, PLX_INVALID_ARGUMENT, "__metadata__"},
        {"bad\xff", PLX_F32, 1, shape, x, PLX_INVALID_ARGUMENT, "UTF-8"},
        {"f8", {PLX_DTYPE_CODE_FLOAT, 8, 1}, 1, shape, x, PLX_INVALID_ARGUMENT, "no safetensors name"},
        {"rank9", PLX_F32, 9, shape, x, PLX_INVALID_ARGUMENT, "rank 9"},
        {"rank-1", PLX_F32, -1, shape, x, PLX_INVALID_ARGUMENT, "rank -1"},
        {"noshape", PLX_F32, 2, NULL, x, PLX_INVALID_ARGUMENT, "rank 2"},
        {"neg", PLX_F32, 2, (int64_t[]){2, -3}, x, PLX_INVALID_ARGUMENT, "dim 1 is -3"},
        {"nodata", PLX_F32, 1, (int64_t[]){4}, NULL, PLX_INVALID_ARGUMENT, "no data for 16 bytes"},
        {"huge", PLX_F32, 3, (int64_t[]){1 << 30, 1 << 30, 1 << 30}, x, PLX_OVERFLOW, "overflows"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_writer *w = st_writer_new();
        assert_int_equal(st_writer_add_tensor(w, cases[i].name, cases[i].dtype, cases[i].ndim, cases[i].shape,
                                              cases[i].data),
                         cases[i].status);
        if (strstr(st_writer_error(w), cases[i].message) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, st_writer_error(w), cases[i].message);
        /* Sticky: a good add still works, but the write fails with the
         * first message and creates nothing. */
        assert_int_equal(st_writer_add_tensor(w, "good", PLX_F32, 1, (int64_t[]){4}, x), PLX_OK);
        char path[128];
        snprintf(path, sizeof path, "%s/never.safetensors", fx->dir);
        assert_int_equal(st_writer_write(w, path, err, sizeof err), cases[i].status);
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, cases[i].message));
        assert_int_equal(tu_count_entries(fx->dir), 0);
        st_writer_free(w);
    }

    /* Names added twice, with the same or another dtype. */
    for (int other = 0; other < 2; other++) {
        st_writer *w = st_writer_new();
        assert_int_equal(st_writer_add_tensor(w, "a", PLX_F32, 1, (int64_t[]){4}, x), PLX_OK);
        assert_int_equal(st_writer_add_tensor(w, "b", PLX_F32, 1, (int64_t[]){4}, x), PLX_OK);
        assert_int_equal(st_writer_add_tensor(w, "a", other ? PLX_U8 : PLX_F32, 1, (int64_t[]){4}, x), PLX_OK);
        void *mem;
        size_t size;
        assert_int_equal(st_writer_serialize(w, &mem, &size, err, sizeof err), PLX_INVALID_ARGUMENT);
        assert_non_null(strstr(err, "tensor 'a' was added twice"));
        st_writer_free(w);
    }

    /* Metadata errors are sticky too. */
    st_writer *w = st_writer_new();
    assert_int_equal(st_writer_set_metadata(w, "k", NULL), PLX_INVALID_ARGUMENT);
    assert_int_equal(st_writer_set_metadata(w, "k2", "\xc0\xaf"), PLX_INVALID_ARGUMENT); /* overlong '/' */
    assert_non_null(strstr(st_writer_error(w), "metadata 'k': no value"));
    void *mem;
    size_t size;
    assert_int_equal(st_writer_serialize(w, &mem, &size, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "<memory>: not written: metadata 'k'"));
    st_writer_free(w);
    assert_int_equal(st_writer_add_tensor(NULL, "a", PLX_F32, 0, NULL, x), PLX_INVALID_ARGUMENT);
}

static void test_copy_and_borrow(void **state)
{
    (void)state;
    float a[3] = {1, 2, 3}, b[3] = {4, 5, 6};
    st_writer *w = st_writer_new();
    assert_int_equal(st_writer_add_tensor_copy(w, "copied", PLX_F32, 1, (int64_t[]){3}, a), PLX_OK);
    assert_int_equal(st_writer_add_tensor(w, "borrowed", PLX_F32, 1, (int64_t[]){3}, b), PLX_OK);
    a[0] = 100; /* the copy is unaffected */
    b[0] = 200; /* the borrow sees it */
    void *mem;
    size_t size;
    char err[256];
    assert_int_equal(st_writer_serialize(w, &mem, &size, err, sizeof err), PLX_OK);
    st_file *f;
    assert_int_equal(st_file_open_memory(mem, size, NULL, &f, err, sizeof err), PLX_OK);
    float got;
    memcpy(&got, st_tensor_find(f, "copied")->data, 4);
    assert_true(got == 1);
    memcpy(&got, st_tensor_find(f, "borrowed")->data, 4);
    assert_true(got == 200);
    st_file_close(f);
    free(mem);
    st_writer_free(w);
}

/* ---- atomic replacement through the writer ------------------------------ */

typedef struct write_faults {
    int calls, fail_at;
} write_faults;

static ssize_t failing_write(void *arg, int fd, const void *buf, size_t n)
{
    write_faults *f = arg;
    if (++f->calls >= f->fail_at) {
        errno = ENOSPC;
        return -1;
    }
    return write(fd, buf, n);
}

static void test_write_replaces_atomically(void **state)
{
    fixture *fx = *state;
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/model.ckpt", fx->dir);
    float v1[4] = {1, 2, 3, 4}, v2[8] = {5, 6, 7, 8, 9, 10, 11, 12};

    st_writer *w = st_writer_new();
    assert_int_equal(st_writer_add_tensor(w, "w", PLX_F32, 1, (int64_t[]){4}, v1), PLX_OK);
    assert_int_equal(st_writer_set_metadata_i64(w, "step", 1), PLX_OK);
    assert_int_equal(st_writer_write(w, path, err, sizeof err), PLX_OK);
    assert_int_equal(st_writer_write(w, path, err, sizeof err), PLX_OK); /* a writer can write again */
    st_writer_free(w);
    size_t old_size;
    unsigned char *old_bytes = slurp(path, &old_size);

    /* An open file keeps its view while a newer checkpoint replaces it. */
    st_file *open_old = NULL;
    assert_int_equal(st_file_open(path, &open_old, err, sizeof err), PLX_OK);

    w = st_writer_new();
    assert_int_equal(st_writer_add_tensor(w, "w", PLX_F32, 2, (int64_t[]){2, 4}, v2), PLX_OK);
    assert_int_equal(st_writer_set_metadata_i64(w, "step", 2), PLX_OK);
    for (int fail_at = 1; fail_at <= 3; fail_at++) { /* length, header, data */
        write_faults faults = {0, fail_at};
        atomic_file_hooks hooks = {failing_write, NULL, NULL, &faults};
        st_writer_set_hooks(w, &hooks);
        assert_int_equal(st_writer_write(w, path, err, sizeof err), PLX_IO_ERROR);
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, strerror(ENOSPC)));
        size_t now_size;
        unsigned char *now = slurp(path, &now_size);
        assert_int_equal(now_size, old_size);
        assert_memory_equal(now, old_bytes, old_size);
        free(now);
        assert_int_equal(tu_count_entries(fx->dir), 1);
    }
    st_writer_set_hooks(w, NULL);
    assert_int_equal(st_writer_write(w, path, err, sizeof err), PLX_OK);
    st_writer_free(w);

    st_file *f = NULL;
    assert_int_equal(st_file_open(path, &f, err, sizeof err), PLX_OK);
    int64_t step;
    assert_int_equal(st_metadata_get_i64(f, "step", &step, err, sizeof err), PLX_OK);
    assert_int_equal(step, 2);
    assert_int_equal(st_tensor_find(f, "w")->nbytes, sizeof v2);
    st_file_close(f);
    assert_int_equal(st_metadata_get_i64(open_old, "step", &step, err, sizeof err), PLX_OK);
    assert_int_equal(step, 1);
    assert_memory_equal(st_tensor_find(open_old, "w")->data, v1, sizeof v1);
    st_file_close(open_old);
    free(old_bytes);

    /* Missing directory: nothing written, status says so. */
    char bad[160];
    snprintf(bad, sizeof bad, "%s/nope/model.ckpt", fx->dir);
    w = st_writer_new();
    assert_int_equal(st_writer_write(w, bad, err, sizeof err), PLX_NOT_FOUND);
    assert_non_null(strstr(err, bad));
    st_writer_free(w);
}

static void test_open_errors(void **state)
{
    fixture *fx = *state;
    char err[512] = "";
    st_file *f = (st_file *)1;
    char path[128];
    snprintf(path, sizeof path, "%s/absent.safetensors", fx->dir);
    assert_int_equal(st_file_open(path, &f, err, sizeof err), PLX_NOT_FOUND);
    assert_null(f);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, strerror(ENOENT)));
    assert_int_equal(st_file_open(fx->dir, &f, err, sizeof err), PLX_IO_ERROR);
    assert_non_null(strstr(err, "not a regular file"));
    snprintf(path, sizeof path, "%s/fifo", fx->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(st_file_open(path, &f, err, sizeof err), PLX_IO_ERROR); /* at once, not blocked */
    assert_non_null(strstr(err, "not a regular file"));
    snprintf(path, sizeof path, "%s/empty.safetensors", fx->dir);
    spit(path, "", 0);
    assert_int_equal(st_file_open(path, &f, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "file is 0 bytes long"));
    assert_int_equal(st_file_open(NULL, &f, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_int_equal(st_file_open(path, &f, NULL, 0), PLX_INVALID_ARGUMENT); /* no message buffer */
    assert_int_equal(st_file_open_memory(NULL, 5, NULL, &f, err, sizeof err), PLX_INVALID_ARGUMENT);
}

/* ---- fuzz-style ---------------------------------------------------------- */

/* A valid file with several dtypes, metadata, a scalar and an empty tensor;
 * its last tensor in data order is non-empty, so every truncation cuts data
 * that the header claims. */
static void *sample_file(size_t *size)
{
    static float w1[12], b1[3];
    static int64_t steps[2] = {5, -6};
    static uint16_t half[5] = {1, 2, 3, 4, 5};
    static uint8_t tail[7] = {9, 8, 7, 6, 5, 4, 3};
    static double scalar = 0.5;
    for (int i = 0; i < 12; i++)
        w1[i] = (float)i * 0.25f;
    st_writer *w = st_writer_new();
    assert_int_equal(st_writer_add_tensor(w, "fc1.weight", PLX_F32, 2, (int64_t[]){3, 4}, w1), PLX_OK);
    assert_int_equal(st_writer_add_tensor(w, "fc1.bias", PLX_F32, 1, (int64_t[]){3}, b1), PLX_OK);
    assert_int_equal(st_writer_add_tensor(w, "steps", PLX_I64, 1, (int64_t[]){2}, steps), PLX_OK);
    assert_int_equal(st_writer_add_tensor(w, "half", PLX_F16, 1, (int64_t[]){5}, half), PLX_OK);
    assert_int_equal(st_writer_add_tensor(w, "scalar", dtype_named("F64"), 0, NULL, &scalar), PLX_OK);
    assert_int_equal(st_writer_add_tensor(w, "empty", PLX_I32, 2, (int64_t[]){0, 4}, NULL), PLX_OK);
    assert_int_equal(st_writer_add_tensor(w, "tail", PLX_U8, 1, (int64_t[]){7}, tail), PLX_OK);
    assert_int_equal(st_writer_set_metadata(w, "model", "{\"name\":\"mlp\",\"layers\":[1,2,3]}"), PLX_OK);
    assert_int_equal(st_writer_set_metadata_u64(w, "step", 1234), PLX_OK);
    void *mem;
    char err[256];
    assert_int_equal(st_writer_serialize(w, &mem, size, err, sizeof err), PLX_OK);
    st_writer_free(w);
    return mem;
}

static void test_fuzz_truncation(void **state)
{
    fixture *fx = *state;
    size_t size;
    unsigned char *good = sample_file(&size);
    char err[512], path[128];
    snprintf(path, sizeof path, "%s/cut.safetensors", fx->dir);
    for (size_t len = 0; len <= size; len++) {
        st_file *f = NULL;
        unsigned char *copy;
        plx_status st = open_copy(good, len, &f, &copy, err, sizeof err);
        if (len < size) {
            if (st == PLX_OK)
                fail_msg("truncated to %zu of %zu bytes, yet accepted", len, size);
            assert_null(f);
            assert_non_null(strstr(err, "crafted.st: "));
        } else {
            assert_int_equal(st, PLX_OK);
            check_invariants(f, copy, len);
            st_file_close(f);
        }
        free(copy);
        /* The same through a real file (the mmap path). */
        spit(path, good, len);
        st = st_file_open(path, &f, err, sizeof err);
        assert_int_equal(st == PLX_OK, len == size);
        if (st == PLX_OK)
            st_file_close(f);
        else
            assert_non_null(strstr(err, path));
    }
    free(good);
}

static void test_fuzz_header_mutations(void **state)
{
    (void)state;
    size_t size;
    unsigned char *good = sample_file(&size);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = (header_len << 8) | good[i];
    static const char alphabet[] = "{}[]\",:0123456789-.eE +\\u\x01\xff\xc3";
    uint64_t rng = 20240601;
    int accepted = 0, refused = 0;
    char err[512];
    unsigned char *mutated = malloc(size);
    assert_non_null(mutated);
    for (int round = 0; round < 600; round++) {
        memcpy(mutated, good, size);
        int edits = 1 + (int)(tu_rng_next(&rng) % 4);
        for (int e = 0; e < edits; e++) {
            /* Mostly the header; now and then the length field. */
            size_t pos = tu_rng_next(&rng) % 16 == 0 ? (size_t)(tu_rng_next(&rng) % 8)
                                                    : 8 + (size_t)(tu_rng_next(&rng) % header_len);
            switch (tu_rng_next(&rng) % 3) {
            case 0:
                mutated[pos] ^= (unsigned char)(1u << (tu_rng_next(&rng) % 8));
                break;
            case 1:
                mutated[pos] = (unsigned char)tu_rng_next(&rng);
                break;
            default:
                mutated[pos] = (unsigned char)alphabet[tu_rng_next(&rng) % (sizeof alphabet - 1)];
            }
        }
        st_file *f = NULL;
        unsigned char *copy;
        plx_status st = open_copy(mutated, size, &f, &copy, err, sizeof err);
        if (st == PLX_OK) {
            accepted++;
            check_invariants(f, copy, size);
            st_file_close(f);
        } else {
            refused++;
            assert_null(f);
            if (strncmp(err, "crafted.st: ", 12) != 0)
                fail_msg("round %d: message \"%s\" does not name the file", round, err);
        }
        free(copy);
    }
    /* Most edits break something; edits inside metadata strings do not. */
    assert_true(refused > 300);
    assert_true(accepted > 0);
    free(mutated);
    free(good);
}

/* A file made of a header text and `data_size` data bytes. */
static unsigned char *craft(const char *header, size_t header_size, size_t data_size, size_t *size)
{
    *size = 8 + header_size + data_size;
    unsigned char *p = malloc(*size);
    assert_non_null(p);
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((uint64_t)header_size >> (8 * i));
    memcpy(p + 8, header, header_size);
    for (size_t i = 0; i < data_size; i++)
        p[8 + header_size + i] = (unsigned char)i;
    return p;
}

#define T(name, dtype, shape, offsets) "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offsets "}"

static void test_crafted_headers(void **state)
{
    (void)state;
    static const struct {
        const char *header;
        size_t data_size;
        const char *message; /* NULL: must be accepted */
    } cases[] = {
        {"{" T("a", "F32", "[2]", "[0,8]") "}", 8, NULL},
        {"{" T("fc1.weight", "F32", "[10,10]", "[0,400]") "}", 256,
         "crafted.st: tensor 'fc1.weight': data_offsets [0, 400] exceed the data section (256 bytes)"},
        {"[]", 0, "header is an array, not a JSON object"},
        {"\"text\"", 0, "not a JSON object"},
        {"42", 0, "header is 42, not a JSON object"},
        {"null", 0, "not a JSON object"},
        {"", 0, "not valid JSON"},
        {"   ", 0, "not valid JSON"},
        {"{", 0, "not valid JSON"},
        {"{\"a\":}", 0, "not valid JSON"},
        {"{} x", 0, "bytes after its JSON object"},
        {"{}{}", 0, "bytes after its JSON object"},
        {"  {}  \n\t", 0, NULL},
        {"{" T("a", "F33", "[2]", "[0,8]") "}", 8, "tensor 'a': unknown dtype 'F33'"},
        {"{" T("a", "f32", "[2]", "[0,8]") "}", 8, "unknown dtype 'f32'"},
        {"{" T("a", "F8_E4M3", "[2]", "[0,2]") "}", 2, "unknown dtype 'F8_E4M3'"},
        {"{\"a\":{\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype is 5, not a string"},
        {"{" T("a", "F32", "[-1]", "[0,8]") "}", 8, "shape[0] is -1, not a non-negative integer"},
        {"{" T("a", "F32", "[2,1.5]", "[0,8]") "}", 8, "shape[1] is 1.5"},
        {"{" T("a", "F32", "[1e300]", "[0,8]") "}", 8, "shape[0] is 1.0000000000000001e+300"},
        {"{" T("a", "F32", "[\"2\"]", "[0,8]") "}", 8, "shape[0] is the string \"2\""},
        {"{" T("a", "F32", "[null]", "[0,8]") "}", 8, "shape[0] is null"},
        {"{" T("a", "F32", "2", "[0,8]") "}", 8, "shape is 2, not an array"},
        {"{" T("a", "F32", "{}", "[0,8]") "}", 8, "shape is an object, not an array"},
        {"{" T("a", "F32", "[1,1,1,1,1,1,1,1,2]", "[0,8]") "}", 8, "shape has 9 dims (at most 8)"},
        {"{" T("a", "F32", "[1,1,1,1,1,1,1,2]", "[0,8]") "}", 8, NULL},
        {"{" T("a", "U8", "[4294967296,4294967296,4294967296]", "[0,0]") "}", 0, "too large"},
        {"{" T("a", "F64", "[9007199254740991,9007199254740991]", "[0,8]") "}", 8, "too large"},
        {"{" T("a", "F64", "[9007199254740992]", "[0,8]") "}", 8, "not a non-negative integer"},
        {"{" T("a", "F64", "[9007199254740993]", "[0,8]") "}", 8, "not a non-negative integer"},
        {"{" T("a", "F32", "[0,9007199254740991]", "[0,0]") "}", 0, NULL},
        {"{" T("a", "F32", "[4294967296,4294967296,0]", "[0,0]") "}", 0, NULL},
        {"{" T("a", "F64", "[9007199254740991]", "[0,8]") "}", 8,
         "data_offsets [0, 8] hold 8 bytes but shape [9007199254740991] of F64 needs 72057594037927928"},
        {"{" T("a", "F32", "[2]", "[0,4]") "}", 8, "hold 4 bytes but shape [2] of F32 needs 8"},
        {"{" T("a", "F32", "[]", "[0,8]") "}", 8, "hold 8 bytes but shape [] of F32 needs 4"},
        {"{" T("a", "F32", "[2]", "[8,4]") "}", 8, "data_offsets [8, 4] end before they begin"},
        {"{" T("a", "F32", "[2]", "[0]") "}", 8, "data_offsets must be [begin, end]"},
        {"{" T("a", "F32", "[2]", "[0,8,16]") "}", 16, "data_offsets must be [begin, end]"},
        {"{" T("a", "F32", "[2]", "[-8,0]") "}", 8, "data_offsets must be [begin, end]"},
        {"{" T("a", "F32", "[2]", "[0.5,8.5]") "}", 16, "data_offsets must be [begin, end]"},
        {"{" T("a", "F32", "[2]", "\"0,8\"") "}", 8, "data_offsets must be [begin, end]"},
        {"{" T("a", "F32", "[2]", "[0,18446744073709551615]") "}", 8, "data_offsets must be [begin, end]"},
        {"{" T("a", "F32", "[2]", "[1e300,1e300]") "}", 8, "data_offsets must be [begin, end]"},
        {"{" T("a", "F32", "[2]", "[4294967296,4294967304]") "}", 8, "exceed the data section (8 bytes)"},
        {"{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[4,12]") "}", 16,
         "tensors 'a' and 'b' overlap (data_offsets [0, 8] and [4, 12])"},
        {"{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[0,8]") "}", 16, "overlap"},
        {"{" T("a", "F32", "[4]", "[0,16]") "," T("b", "F32", "[1]", "[4,8]") "}", 16, "overlap"},
        {"{" T("z", "F32", "[1]", "[12,16]") "," T("a", "F32", "[4]", "[0,16]") "}", 16, "overlap"},
        {"{" T("a", "F32", "[2]", "[0,8]") "," T("e", "F32", "[0]", "[4,4]") "}", 8, NULL},
        {"{" T("a", "F32", "[1]", "[0,4]") "," T("b", "F32", "[1]", "[8,12]") "}", 16, NULL}, /* gap, tail */
        {"{" T("a", "F32", "[2]", "[0,8]") "," T("a", "F32", "[2]", "[8,16]") "}", 16,
         "tensor 'a' appears twice in the header"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__ appears twice"},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "__metadata__ key 'k' appears twice"},
        {"{\"__metadata__\":{\"k\":5}}", 0, "__metadata__ 'k' is 5, not a string"},
        {"{\"__metadata__\":{\"k\":{\"nested\":\"x\"}}}", 0, "__metadata__ 'k' is an object, not a string"},
        {"{\"__metadata__\":[\"k\"]}", 0, "__metadata__ is an array, not an object of strings"},
        {"{\"__metadata__\":null}", 0, "__metadata__ is null"},
        {"{\"__metadata__\":{\"k\":\"v\"}}", 0, NULL},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "tensor 'a': missing 'shape'"},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "missing 'dtype'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "missing 'data_offsets'"},
        {"{\"a\":{}}", 0, "missing 'dtype'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}", 8,
         "tensor 'a': unknown member 'extra'"},
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
         "tensor 'a': 'dtype' appears twice"},
        {"{\"a\":5}", 0, "tensor 'a' is 5, not an object"},
        {"{\"a\":[]}", 0, "tensor 'a' is an array, not an object"},
        {"{\"bad\xff\":{}}", 0, "not valid UTF-8"},
        {"{\"bad\xc0\xaf\":{}}", 0, "not valid UTF-8"},      /* overlong */
        {"{\"bad\xed\xa0\x80\":{}}", 0, "not valid UTF-8"},  /* surrogate */
        {"{\"bad\xf4\x90\x80\x80\":{}}", 0, "not valid UTF-8"}, /* above U+10FFFF */
        {"{\"bad\xe2\x82\":{}}", 0, "not valid UTF-8"},      /* cut short */
        {"{\"a\\u0000b\":{}}", 0, "NUL character"},
        {"{\"__metadata__\":{\"k\":\"v\\u0000\"}}", 0, "NUL character"},
        {"{\"a\x01\":{}}", 0, "raw control character"},
        {"{\"a\\ud800\":{}}", 0, "not valid JSON"}, /* lone surrogate escape */
        {"{\"caf\xc3\xa9\\u00e9\\\\u0000\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, NULL},
    };
    char err[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t size;
        unsigned char *bytes = craft(cases[i].header, strlen(cases[i].header), cases[i].data_size, &size);
        st_file *f = NULL;
        unsigned char *copy;
        err[0] = '\0';
        plx_status st = open_copy(bytes, size, &f, &copy, err, sizeof err);
        if (cases[i].message == NULL) {
            if (st != PLX_OK)
                fail_msg("case %zu (%s): refused: %s", i, cases[i].header, err);
            check_invariants(f, copy, size);
            st_file_close(f);
        } else {
            if (st == PLX_OK)
                fail_msg("case %zu (%s): accepted", i, cases[i].header);
            assert_int_equal(st, PLX_INVALID_ARGUMENT);
            assert_null(f);
            if (strncmp(err, "crafted.st: ", 12) != 0 || strstr(err, cases[i].message) == NULL)
                fail_msg("case %zu (%s): message \"%s\" lacks \"%s\"", i, cases[i].header, err, cases[i].message);
        }
        free(copy);
        free(bytes);
    }
}

static void test_crafted_lengths_and_nesting(void **state)
{
    (void)state;
    char err[512];
    st_file *f = NULL;
    unsigned char *copy;
    /* Shorter than the length field. */
    static const unsigned char short_file[7] = {2, 0, 0, 0, 0, 0, 0};
    for (size_t len = 0; len < 8; len++) {
        assert_int_equal(open_copy(short_file, len, &f, &copy, err, sizeof err), PLX_INVALID_ARGUMENT);
        assert_non_null(strstr(err, "8-byte header length"));
        free(copy);
    }
    /* Length fields: huge, just over the limit, past the end of the file. */
    static const uint64_t lengths[] = {UINT64_MAX, (uint64_t)1 << 63, ST_MAX_HEADER_BYTES + 1ull, 3, 1000};
    static const char *const messages[] = {"exceeds the limit", "exceeds the limit", "exceeds the limit",
                                           "exceeds the 2 bytes after the length field",
                                           "exceeds the 2 bytes after the length field"};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        unsigned char bytes[10] = {0, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
        for (int b = 0; b < 8; b++)
            bytes[b] = (unsigned char)(lengths[i] >> (8 * b));
        assert_int_equal(open_copy(bytes, sizeof bytes, &f, &copy, err, sizeof err), PLX_INVALID_ARGUMENT);
        if (strstr(err, messages[i]) == NULL)
            fail_msg("length %llu: \"%s\"", (unsigned long long)lengths[i], err);
        free(copy);
    }
    /* A NUL byte inside and after the JSON. */
    static const char nul_after[] = "{}\0     ";
    size_t size;
    unsigned char *bytes = craft(nul_after, 8, 0, &size);
    assert_int_equal(open_copy(bytes, size, &f, &copy, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "bytes after its JSON object"));
    free(copy);
    free(bytes);
    static const char nul_inside[] = "{\"a\0b\":{}}";
    bytes = craft(nul_inside, sizeof nul_inside - 1, 0, &size);
    assert_int_equal(open_copy(bytes, size, &f, &copy, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "control character"));
    free(copy);
    free(bytes);
    /* Deep nesting: refused (cJSON's nesting limit), not a stack overflow. */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 64);
    assert_non_null(deep);
    size_t pos = (size_t)sprintf(deep, "{\"__metadata__\":");
    for (size_t i = 0; i < depth; i++)
        deep[pos++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[pos++] = ']';
    deep[pos++] = '}';
    bytes = craft(deep, pos, 0, &size);
    assert_int_equal(open_copy(bytes, size, &f, &copy, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "not valid JSON"));
    free(copy);
    free(bytes);
    free(deep);
    /* Many tensors, all valid: duplicates and overlaps are found by sorting,
     * not by comparing every pair. */
    size_t n = 20000;
    char *many = malloc(n * 80 + 16);
    assert_non_null(many);
    pos = 0;
    many[pos++] = '{';
    for (size_t i = 0; i < n; i++)
        pos += (size_t)sprintf(many + pos, "%s\"t%zu\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[%zu,%zu]}",
                               i > 0 ? "," : "", n - 1 - i, n - 1 - i, n - i);
    many[pos++] = '}';
    bytes = craft(many, pos, n, &size);
    assert_int_equal(open_copy(bytes, size, &f, &copy, err, sizeof err), PLX_OK);
    assert_int_equal(st_tensor_count(f), n);
    assert_int_equal(*(const unsigned char *)st_tensor_find(f, "t300")->data, (unsigned char)300);
    st_file_close(f);
    free(copy);
    free(bytes);
    free(many);
}

/* Headers that end, unfinished, exactly at the end of a mapped file whose
 * size is a whole number of pages: a parser reading one byte too far would
 * fault here even without ASan. */
static void test_unfinished_header_at_page_end(void **state)
{
    fixture *fx = *state;
    long page = sysconf(_SC_PAGESIZE);
    assert_true(page >= 4096);
    size_t size = (size_t)page;
    size_t n = size - 8;
    static const char *const openings[] = {"{", "{\"a", "{\"a\\", "{\"a\":", "{\"a\":[1", "{\"a\":{\"dtype\":\"F3",
                                           "{\"a\":tru", "{\"a\":\"\\u12", "{\"a\":-", "{\"a\":1e"};
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/page.safetensors", fx->dir);
    unsigned char *bytes = malloc(size);
    assert_non_null(bytes);
    for (size_t i = 0; i < sizeof openings / sizeof openings[0]; i++) {
        for (int pad_first = 0; pad_first < 2; pad_first++) {
            /* The opening at the very end (after spaces), or at the start
             * followed by filler that keeps the value unfinished. */
            size_t len = strlen(openings[i]);
            memset(bytes + 8, pad_first ? ' ' : '1', n);
            if (pad_first)
                memcpy(bytes + size - len, openings[i], len);
            else
                memcpy(bytes + 8, openings[i], len);
            for (int b = 0; b < 8; b++)
                bytes[b] = (unsigned char)((uint64_t)n >> (8 * b));
            spit(path, bytes, size);
            st_file *f = NULL;
            assert_int_equal(st_file_open(path, &f, err, sizeof err), PLX_INVALID_ARGUMENT);
            assert_non_null(strstr(err, path));
        }
    }
    free(bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_names),
        cmocka_unit_test_setup_teardown(test_round_trip_every_dtype, setup, teardown),
        cmocka_unit_test(test_scalar_and_empty_tensors),
        cmocka_unit_test(test_reference_vectors),
        cmocka_unit_test(test_fixture_from_python),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test_setup_teardown(test_writer_errors, setup, teardown),
        cmocka_unit_test(test_copy_and_borrow),
        cmocka_unit_test_setup_teardown(test_write_replaces_atomically, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuzz_truncation, setup, teardown),
        cmocka_unit_test(test_fuzz_header_mutations),
        cmocka_unit_test(test_crafted_headers),
        cmocka_unit_test(test_crafted_lengths_and_nesting),
        cmocka_unit_test_setup_teardown(test_unfinished_header_at_page_end, setup, teardown),
    };
    return cmocka_run_group_tests_name("runtime/io/safetensors", tests, NULL, NULL);
}

/* test_layout.c — core.copy, cast, reshape, permute, concat, slice, pad and
 * fill on cpu_blas: every dtype, random odd shapes, strided views made with
 * plx_tensor_wrap (permuted, stepped, broadcast, misaligned), naive
 * element-by-element references, and bad input. */
#include "../../test_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define F64 ((plx_dtype){PLX_DTYPE_CODE_FLOAT, 64, 1})
#define I8 ((plx_dtype){PLX_DTYPE_CODE_INT, 8, 1})
#define I16 ((plx_dtype){PLX_DTYPE_CODE_INT, 16, 1})
#define U16 ((plx_dtype){PLX_DTYPE_CODE_UINT, 16, 1})
#define U32 ((plx_dtype){PLX_DTYPE_CODE_UINT, 32, 1})
#define U64 ((plx_dtype){PLX_DTYPE_CODE_UINT, 64, 1})

static const plx_dtype all_dtypes[] = {PLX_F32, PLX_F16, PLX_BF16, PLX_I32, PLX_I64, PLX_U8, PLX_BOOL,
                                       F64,     I8,      I16,      U16,     U32,     U64};
#define N_DTYPES ((int)(sizeof all_dtypes / sizeof all_dtypes[0]))

static const int64_t odd_sizes[] = {1, 2, 3, 5, 7, 17};

static int64_t pick_size(uint64_t *rng)
{
    return odd_sizes[tu_rand_int(rng, 0, 5)];
}

static int64_t numel_of(int32_t ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int32_t i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

static void random_bytes(void *p, size_t n, uint64_t *rng)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)tu_rng_next(rng);
}

/* Tensor of any dtype with random bytes (data movement is byte exact). */
static plx_tensor *random_tensor(plx_context *ctx, uint64_t *rng, plx_dtype dtype, int32_t ndim, const int64_t *shape)
{
    plx_tensor *t = tu_tensor(ctx, dtype, ndim, shape);
    random_bytes(plx_tensor_data(t), (size_t)plx_tensor_numel(t) * plx_dtype_size(dtype), rng);
    return t;
}

static void assert_elements_equal(const void *got, const void *want, int64_t n, size_t elem, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp((const char *)got + i * (int64_t)elem, (const char *)want + i * (int64_t)elem, elem) != 0)
            fail_msg("%s: element %lld differs (element size %zu)", what, (long long)i, elem);
}

#define expect_failure tu_expect_failure1

/* Row-major multi-index of flat index i. */
static void unflatten(int64_t i, int32_t ndim, const int64_t *shape, int64_t *index)
{
    for (int32_t d = ndim - 1; d >= 0; d--) {
        index[d] = i % shape[d];
        i /= shape[d];
    }
}

static int64_t flatten(int32_t ndim, const int64_t *shape, const int64_t *index)
{
    int64_t i = 0;
    for (int32_t d = 0; d < ndim; d++)
        i = i * shape[d] + index[d];
    return i;
}

/* ---- copy of strided views ------------------------------------------------ */

typedef struct view_spec {
    int32_t ndim;
    int64_t shape[PLX_MAX_DIMS];
    int64_t strides[PLX_MAX_DIMS];
    int64_t offset_elems;
    size_t misalign; /* extra bytes added to the byte offset */
    size_t buffer_bytes;
} view_spec;

/* A random view: dims laid out in a random order, stepped, some broadcast. */
static void random_view(uint64_t *rng, size_t elem, int32_t ndim, const int64_t *shape, bool allow_misalign,
                        view_spec *v)
{
    v->ndim = ndim;
    int32_t order[PLX_MAX_DIMS];
    for (int32_t d = 0; d < ndim; d++) {
        v->shape[d] = shape[d];
        order[d] = d;
    }
    for (int32_t d = ndim - 1; d > 0; d--) {
        int32_t j = (int32_t)tu_rand_int(rng, 0, d);
        int32_t t = order[d];
        order[d] = order[j];
        order[j] = t;
    }
    int64_t acc = 1;
    for (int32_t k = ndim - 1; k >= 0; k--) {
        int32_t d = order[k];
        int64_t step = tu_rand_int(rng, 1, 3);
        bool broadcast = tu_rand_int(rng, 0, 7) == 0;
        v->strides[d] = broadcast ? 0 : acc * step;
        acc *= shape[d] * step + tu_rand_int(rng, 0, 2);
    }
    v->offset_elems = tu_rand_int(rng, 0, 5);
    v->misalign = allow_misalign && elem > 1 && tu_rand_int(rng, 0, 3) == 0 ? 1 : 0;
    v->buffer_bytes = (size_t)(v->offset_elems + acc + 1) * elem + v->misalign;
}

static plx_tensor *wrap_view(plx_context *ctx, plx_dtype dtype, void *buffer, view_spec *v)
{
    plx_tensor_desc d = {.data = buffer,
                         .device = {PLX_DL_CPU, 0},
                         .ndim = v->ndim,
                         .dtype = dtype,
                         .shape = v->shape,
                         .strides = v->strides,
                         .byte_offset = (uint64_t)v->offset_elems * plx_dtype_size(dtype) + v->misalign};
    plx_tensor *t = NULL;
    plx_status st = plx_tensor_wrap(ctx, &d, NULL, NULL, &t);
    if (st != PLX_OK)
        fail_msg("plx_tensor_wrap: %s: %s", plx_status_name(st), plx_last_error(ctx));
    return t;
}

/* The view's elements in row-major order, gathered one by one. */
static void *gather_reference(const void *buffer, const view_spec *v, size_t elem)
{
    int64_t n = numel_of(v->ndim, v->shape);
    char *out = malloc((size_t)(n > 0 ? n : 1) * elem);
    assert_non_null(out);
    const char *first = (const char *)buffer + v->offset_elems * (int64_t)elem + v->misalign;
    int64_t index[PLX_MAX_DIMS];
    for (int64_t i = 0; i < n; i++) {
        unflatten(i, v->ndim, v->shape, index);
        int64_t off = 0;
        for (int32_t d = 0; d < v->ndim; d++)
            off += index[d] * v->strides[d];
        memcpy(out + i * (int64_t)elem, first + off * (int64_t)elem, elem);
    }
    return out;
}

static void check_copy_of_view(plx_context *ctx, uint64_t *rng, plx_dtype dtype, view_spec *v, const char *what)
{
    size_t elem = plx_dtype_size(dtype);
    void *buffer = malloc(v->buffer_bytes);
    assert_non_null(buffer);
    random_bytes(buffer, v->buffer_bytes, rng);
    plx_tensor *x = wrap_view(ctx, dtype, buffer, v), *y = NULL;
    tu_run(ctx, "core.copy", NULL, &x, 1, &y, 1);
    const plx_tensor_desc *yd = plx_tensor_desc_get(y);
    assert_true(plx_dtype_equal(yd->dtype, dtype));
    assert_int_equal(yd->ndim, v->ndim);
    for (int32_t d = 0; d < v->ndim; d++)
        assert_int_equal(yd->shape[d], v->shape[d]);
    void *want = gather_reference(buffer, v, elem);
    assert_elements_equal(plx_tensor_data(y), want, numel_of(v->ndim, v->shape), elem, what);
    free(want);
    plx_tensor_free(y);
    plx_tensor_free(x);
    free(buffer);
}

static void test_copy_random_views(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 11;
    for (int trial = 0; trial < 8 * N_DTYPES; trial++) {
        plx_dtype dtype = all_dtypes[trial % N_DTYPES];
        int32_t ndim = (int32_t)tu_rand_int(&rng, 0, 5);
        int64_t shape[PLX_MAX_DIMS];
        for (int32_t d = 0; d < ndim; d++)
            shape[d] = pick_size(&rng);
        /* Keep buffers small: steps can triple every dim's extent. */
        for (int32_t d = 0; d < ndim && numel_of(ndim, shape) > 3000; d++)
            shape[d] = shape[d] > 3 ? 3 : shape[d];
        view_spec v;
        random_view(&rng, plx_dtype_size(dtype), ndim, shape, false, &v);
        check_copy_of_view(ctx, &rng, dtype, &v, "copy of a random view");
    }
    plx_context_close(ctx);
}

/* Big transposes (the tiled path, split across threads) for every element
 * size, a 3-d permutation, a row slice and a broadcast. */
static void test_copy_large_views(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 12;
    const plx_dtype sizes[] = {PLX_U8, PLX_F16, PLX_F32, PLX_I64};
    for (int k = 0; k < 4; k++) {
        view_spec t = {.ndim = 2, .shape = {517, 301}, .strides = {1, 517}, .buffer_bytes = 517 * 301 * 8};
        check_copy_of_view(ctx, &rng, sizes[k], &t, "transposed 301x517");
        view_spec p3 = {.ndim = 3, .shape = {7, 130, 129}, .strides = {1, 7 * 129, 7}, .buffer_bytes = 7 * 130 * 129 * 8};
        check_copy_of_view(ctx, &rng, sizes[k], &p3, "permuted 3-d");
        view_spec rows = {.ndim = 2, .shape = {200, 300}, .strides = {400, 1}, .offset_elems = 50,
                          .buffer_bytes = (50 + 200 * 400) * 8};
        check_copy_of_view(ctx, &rng, sizes[k], &rows, "row slice");
        view_spec bc = {.ndim = 3, .shape = {64, 33, 70}, .strides = {70, 0, 1}, .buffer_bytes = 64 * 70 * 8};
        check_copy_of_view(ctx, &rng, sizes[k], &bc, "broadcast middle dim");
        /* Memory not aligned to the element size is refused at the door, so
         * no kernel ever reads a misaligned typed pointer. */
        view_spec mis = {.ndim = 2, .shape = {97, 101}, .strides = {1, 97}, .misalign = 1,
                         .buffer_bytes = 97 * 101 * 8 + 1};
        if (plx_dtype_size(sizes[k]) == 1) {
            check_copy_of_view(ctx, &rng, sizes[k], &mis, "byte view at an odd address");
        } else {
            unsigned char *buf = calloc(1, mis.buffer_bytes);
            assert_non_null(buf);
            plx_tensor_desc d = {.data = buf, .device = {PLX_DL_CPU, 0}, .ndim = 2, .dtype = sizes[k],
                                 .shape = mis.shape, .strides = mis.strides, .byte_offset = 1};
            plx_tensor *refused = NULL;
            assert_int_equal(plx_tensor_wrap(ctx, &d, NULL, NULL, &refused), PLX_INVALID_ARGUMENT);
            assert_non_null(strstr(plx_last_error(ctx), "not aligned"));
            assert_null(refused);
            free(buf);
        }
    }
    plx_context_close(ctx);
}

static void test_copy_compact_scalar_empty(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 13;
    plx_tensor *s = random_tensor(ctx, &rng, PLX_I64, 0, NULL), *y = NULL;
    tu_run(ctx, "core.copy", NULL, &s, 1, &y, 1);
    assert_int_equal(plx_tensor_desc_get(y)->ndim, 0);
    assert_elements_equal(plx_tensor_data(y), plx_tensor_data(s), 1, 8, "scalar copy");
    plx_tensor_free(y);
    plx_tensor_free(s);

    int64_t big[1] = {300001};
    plx_tensor *b = random_tensor(ctx, &rng, PLX_F32, 1, big);
    y = NULL;
    tu_run(ctx, "core.copy", NULL, &b, 1, &y, 1);
    assert_elements_equal(plx_tensor_data(y), plx_tensor_data(b), big[0], 4, "compact copy");
    plx_tensor_free(y);
    plx_tensor_free(b);

    int64_t empty[3] = {4, 0, 3};
    plx_tensor *e = tu_tensor(ctx, PLX_U8, 3, empty);
    y = NULL;
    tu_run(ctx, "core.copy", NULL, &e, 1, &y, 1);
    assert_int_equal(plx_tensor_numel(y), 0);
    plx_tensor_free(y);
    plx_tensor_free(e);
    plx_context_close(ctx);
}

/* ---- cast ------------------------------------------------------------------- */

typedef enum { K_FLOAT, K_SIGNED, K_UNSIGNED, K_BOOL } kind;

static kind kind_of(plx_dtype t)
{
    switch (t.code) {
    case PLX_DTYPE_CODE_FLOAT:
    case PLX_DTYPE_CODE_BFLOAT:
        return K_FLOAT;
    case PLX_DTYPE_CODE_INT:
        return K_SIGNED;
    case PLX_DTYPE_CODE_UINT:
        return K_UNSIGNED;
    default:
        return K_BOOL;
    }
}

static double decode_f16(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(m, -24);
    else
        v = ldexp(1024 + m, e - 25);
    return sign ? -v : v;
}

static double decode_bf16(uint16_t h)
{
    int sign = h >> 15, e = (h >> 7) & 255, m = h & 127;
    double v;
    if (e == 255)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp(m, -133);
    else
        v = ldexp(128 + m, e - 134);
    return sign ? -v : v;
}

/* Round-to-nearest-even into a binary format with `mant_bits` stored
 * mantissa bits, exponent bias `bias` and all-ones exponent `emax_field`,
 * by explicit arithmetic (nearbyint rounds half to even). */
static uint16_t encode_small_float(double v, int mant_bits, int bias, int exp_bits)
{
    uint16_t sign = signbit(v) ? (uint16_t)(1u << (mant_bits + exp_bits)) : 0;
    uint16_t inf = (uint16_t)(((1u << exp_bits) - 1) << mant_bits);
    if (isnan(v))
        return sign | inf | (uint16_t)(1u << (mant_bits - 1));
    double a = fabs(v);
    if (isinf(a))
        return sign | inf;
    double min_normal = ldexp(1.0, 1 - bias);
    if (a < min_normal) {
        double q = nearbyint(a / ldexp(1.0, 1 - bias - mant_bits));
        return sign | (uint16_t)q; /* q == 2^mant_bits is the smallest normal */
    }
    int e;
    double m = frexp(a, &e); /* a = m * 2^e, m in [0.5, 1) */
    int exponent = e - 1;
    double q = nearbyint((2.0 * m - 1.0) * ldexp(1.0, mant_bits));
    if (q == ldexp(1.0, mant_bits)) {
        q = 0;
        exponent++;
    }
    if (exponent + bias >= (1 << exp_bits) - 1)
        return sign | inf;
    return sign | (uint16_t)((exponent + bias) << mant_bits) | (uint16_t)q;
}

/* Float to integer: truncate, NaN -> 0, saturate at the int64 range, then
 * wrap into the width (the behaviour documented in the kernel). */
static uint64_t float_to_int_bits(double v, plx_dtype to)
{
    if (isnan(v))
        return 0;
    double t = trunc(v);
    if (to.code == PLX_DTYPE_CODE_UINT && to.bits == 64 && t >= 9223372036854775808.0)
        return t >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)t;
    int64_t i = t >= 9223372036854775808.0 ? INT64_MAX : t < -9223372036854775808.0 ? INT64_MIN : (int64_t)t;
    return (uint64_t)i;
}

typedef struct scalar {
    kind k;
    double f;   /* K_FLOAT */
    int64_t i;  /* K_SIGNED, K_BOOL */
    uint64_t u; /* K_UNSIGNED */
} scalar;

static scalar read_scalar(plx_dtype t, const unsigned char *p)
{
    scalar s = {.k = kind_of(t)};
    uint64_t raw = 0;
    memcpy(&raw, p, plx_dtype_size(t)); /* little endian */
    switch (s.k) {
    case K_FLOAT:
        if (t.code == PLX_DTYPE_CODE_BFLOAT)
            s.f = decode_bf16((uint16_t)raw);
        else if (t.bits == 16)
            s.f = decode_f16((uint16_t)raw);
        else if (t.bits == 32) {
            float f;
            memcpy(&f, p, 4);
            s.f = f;
        } else
            memcpy(&s.f, p, 8);
        break;
    case K_SIGNED: {
        int shift = 64 - t.bits;
        s.i = (int64_t)(raw << shift) >> shift;
        break;
    }
    case K_UNSIGNED:
        s.u = raw;
        break;
    case K_BOOL:
        s.i = p[0] != 0;
        break;
    }
    return s;
}

/* PyTorch routes integers into f16/bf16 through float; so do we. */
static double scalar_as_float_source(const scalar *s)
{
    switch (s->k) {
    case K_FLOAT:
        return s->f;
    case K_UNSIGNED:
        return (double)(float)s->u;
    default:
        return (double)(float)s->i;
    }
}

static void write_scalar(plx_dtype to, const scalar *s, unsigned char *out)
{
    uint64_t bits = 0;
    kind k = kind_of(to);
    if (k == K_BOOL) {
        bits = s->k == K_FLOAT ? s->f != 0.0 : s->k == K_UNSIGNED ? s->u != 0 : s->i != 0;
    } else if (k == K_FLOAT) {
        if (to.code == PLX_DTYPE_CODE_BFLOAT || to.bits == 16) {
            double v = (double)(float)scalar_as_float_source(s);
            bits = to.code == PLX_DTYPE_CODE_BFLOAT ? encode_small_float(v, 7, 127, 8)
                                                    : encode_small_float(v, 10, 15, 5);
        } else if (to.bits == 32) {
            float f = s->k == K_FLOAT ? (float)s->f : s->k == K_UNSIGNED ? (float)s->u : (float)s->i;
            memcpy(&bits, &f, 4);
        } else {
            double d = s->k == K_FLOAT ? s->f : s->k == K_UNSIGNED ? (double)s->u : (double)s->i;
            memcpy(&bits, &d, 8);
        }
    } else {
        bits = s->k == K_FLOAT ? float_to_int_bits(s->f, to) : s->k == K_UNSIGNED ? s->u : (uint64_t)s->i;
    }
    memcpy(out, &bits, plx_dtype_size(to));
}

static bool is_nan_bits(plx_dtype t, const unsigned char *p)
{
    if (kind_of(t) != K_FLOAT)
        return false;
    scalar s = read_scalar(t, p);
    return isnan(s.f);
}

/* Source values: random bit patterns for the 16-bit floats and ints (every
 * class of value), and for f32/f64 a mix of rounding ties, boundaries and
 * ordinary numbers. */
static void cast_source_values(uint64_t *rng, plx_dtype from, unsigned char *p, int64_t n)
{
    static const double specials[] = {0.0,
                                      -0.0,
                                      0.5,
                                      -0.5,
                                      1.5,
                                      -2.5,
                                      1.0 + 0x1p-11,
                                      1.0 + 3 * 0x1p-11,
                                      1.0 + 0x1p-8,
                                      1.0 + 3 * 0x1p-8,
                                      65504.0,
                                      65519.0,
                                      65520.0,
                                      0x1p-25,
                                      3 * 0x1p-25,
                                      1e-8,
                                      3e-8,
                                      0x1p-130,
                                      255.0,
                                      256.0,
                                      -129.7,
                                      3e9,
                                      -3e9,
                                      1e20,
                                      INFINITY,
                                      -INFINITY,
                                      NAN};
    size_t elem = plx_dtype_size(from);
    for (int64_t i = 0; i < n; i++) {
        unsigned char *q = p + i * (int64_t)elem;
        if (from.code == PLX_DTYPE_CODE_BOOL) {
            q[0] = (unsigned char)(tu_rng_next(rng) & 1);
        } else if (kind_of(from) == K_FLOAT && elem >= 4) {
            int64_t pick = tu_rand_int(rng, 0, 3);
            double v = pick == 0 ? specials[tu_rand_int(rng, 0, (int64_t)(sizeof specials / sizeof specials[0]) - 1)]
                       : pick == 1 ? (double)tu_rand_uniform(rng, -300.0f, 300.0f)
                       : pick == 2 ? (double)tu_rand_uniform(rng, -1e6f, 1e6f)
                                   : (double)tu_rand_uniform(rng, -2.0f, 2.0f);
            if (elem == 4) {
                float f = (float)v;
                memcpy(q, &f, 4);
            } else {
                memcpy(q, &v, 8);
            }
        } else {
            random_bytes(q, elem, rng);
        }
    }
}

static void check_cast(plx_context *ctx, uint64_t *rng, plx_dtype from, plx_dtype to, int64_t n)
{
    int64_t shape[2] = {n / 3 > 0 ? 3 : 1, n / 3 > 0 ? n / 3 : n};
    n = shape[0] * shape[1];
    plx_tensor *x = tu_tensor(ctx, from, 2, shape), *y = NULL;
    cast_source_values(rng, from, plx_tensor_data(x), n);
    plx_cast_attrs attrs = {sizeof attrs, to};
    tu_run(ctx, "core.cast", &attrs, &x, 1, &y, 1);
    assert_true(plx_dtype_equal(plx_tensor_desc_get(y)->dtype, to));
    const unsigned char *src = plx_tensor_data(x), *got = plx_tensor_data(y);
    size_t fe = plx_dtype_size(from), te = plx_dtype_size(to);
    for (int64_t i = 0; i < n; i++) {
        unsigned char want[8];
        scalar s = read_scalar(from, src + i * (int64_t)fe);
        write_scalar(to, &s, want);
        const unsigned char *g = got + i * (int64_t)te;
        if (is_nan_bits(to, want) && is_nan_bits(to, g))
            continue;
        if (memcmp(g, want, te) != 0) {
            uint64_t gb = 0, wb = 0, sb = 0;
            memcpy(&gb, g, te);
            memcpy(&wb, want, te);
            memcpy(&sb, src + i * (int64_t)fe, fe);
            fail_msg("cast (code %u, %u bits) -> (code %u, %u bits): element %lld, source bits 0x%llx: got 0x%llx, "
                     "want 0x%llx",
                     from.code, from.bits, to.code, to.bits, (long long)i, (unsigned long long)sb,
                     (unsigned long long)gb, (unsigned long long)wb);
        }
    }
    plx_tensor_free(y);
    plx_tensor_free(x);
}

static void test_cast_every_pair(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 21;
    for (int a = 0; a < N_DTYPES; a++)
        for (int b = 0; b < N_DTYPES; b++)
            check_cast(ctx, &rng, all_dtypes[a], all_dtypes[b], 3 * (int64_t)tu_rand_int(&rng, 1, 200));
    /* Large enough to be split across threads. */
    check_cast(ctx, &rng, PLX_F32, PLX_BF16, 3 * 40001);
    check_cast(ctx, &rng, PLX_F16, PLX_F32, 3 * 40001);
    check_cast(ctx, &rng, PLX_I64, PLX_F16, 3 * 40001);
    plx_context_close(ctx);
}

/* Hand-checked values, independent of the reference encoder above. */
static void test_cast_known_values(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    const float in[8] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65520.0f, 0x1p-25f, -2.75f, NAN, 0.1f, 1e-3f};
    int64_t shape[1] = {8};
    plx_tensor *x = tu_from_f32(ctx, 1, shape, in), *h = NULL, *b = NULL, *i = NULL, *u = NULL, *z = NULL;
    plx_cast_attrs to_f16 = {sizeof to_f16, PLX_F16}, to_bf16 = {sizeof to_bf16, PLX_BF16};
    plx_cast_attrs to_i32 = {sizeof to_i32, PLX_I32}, to_bool = {sizeof to_bool, PLX_BOOL};
    tu_run(ctx, "core.cast", &to_f16, &x, 1, &h, 1);
    tu_run(ctx, "core.cast", &to_bf16, &x, 1, &b, 1);
    tu_run(ctx, "core.cast", &to_i32, &x, 1, &i, 1);
    tu_run(ctx, "core.cast", &to_bool, &x, 1, &z, 1);
    const uint16_t *hv = plx_tensor_data(h), *bv = plx_tensor_data(b);
    const uint16_t want_h[8] = {0x3c00, 0x3c02, 0x7c00, 0x0000, 0xc180, 0x7e00, 0x2e66, 0x1419};
    for (int k = 0; k < 8; k++)
        if (k == 5 ? (hv[k] & 0x7c00) != 0x7c00 || (hv[k] & 0x3ff) == 0 : hv[k] != want_h[k])
            fail_msg("f16 of element %d: got 0x%04x, want 0x%04x", k, hv[k], want_h[k]);
    /* bf16(0.1f): 0x3dcccccd rounds up to 0x3dcd; 1 + 2^-11 rounds to 1. */
    assert_int_equal(bv[0], 0x3f80);
    assert_int_equal(bv[6], 0x3dcd);
    assert_int_equal(bv[4], 0xc030);
    const int32_t *iv = plx_tensor_data(i);
    assert_int_equal(iv[4], -2);
    assert_int_equal(iv[5], 0);
    assert_int_equal(iv[6], 0);
    const uint8_t *zv = plx_tensor_data(z);
    const uint8_t want_z[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert_memory_equal(zv, want_z, 8);
    /* f16 back to f32 is exact. */
    tu_run(ctx, "core.cast", &(plx_cast_attrs){sizeof(plx_cast_attrs), PLX_F32}, &h, 1, &u, 1);
    assert_true(tu_f32(u)[1] == 1.0f + 0x1p-9f);
    assert_true(tu_f32(u)[4] == -2.75f);
    /* Integers wrap into narrower types, as in PyTorch. */
    int64_t wide[3] = {300, -1, 4294967297LL};
    plx_tensor *w = tu_from_i64(ctx, 1, (int64_t[]){3}, wide), *w8 = NULL;
    tu_run(ctx, "core.cast", &(plx_cast_attrs){sizeof(plx_cast_attrs), PLX_U8}, &w, 1, &w8, 1);
    const uint8_t want_w8[3] = {44, 255, 1};
    assert_memory_equal(plx_tensor_data(w8), want_w8, 3);
    plx_tensor_free(w8);
    plx_tensor_free(w);
    plx_tensor_free(u);
    plx_tensor_free(z);
    plx_tensor_free(i);
    plx_tensor_free(b);
    plx_tensor_free(h);
    plx_tensor_free(x);
    plx_context_close(ctx);
}

/* ---- reshape ---------------------------------------------------------------- */

static void test_reshape(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 31;
    for (int trial = 0; trial < 3 * N_DTYPES; trial++) {
        plx_dtype dtype = all_dtypes[trial % N_DTYPES];
        int64_t shape[3] = {pick_size(&rng), pick_size(&rng), pick_size(&rng)};
        plx_tensor *x = random_tensor(ctx, &rng, dtype, 3, shape), *y = NULL;
        plx_reshape_attrs attrs = {sizeof attrs, 2, {shape[0] * shape[1], -1}};
        if (trial % 3 == 1)
            attrs = (plx_reshape_attrs){sizeof attrs, 4, {shape[2], 1, -1, shape[1]}};
        else if (trial % 3 == 2)
            attrs = (plx_reshape_attrs){sizeof attrs, 1, {shape[0] * shape[1] * shape[2]}};
        tu_run(ctx, "core.reshape", &attrs, &x, 1, &y, 1);
        const plx_tensor_desc *yd = plx_tensor_desc_get(y);
        assert_int_equal(yd->ndim, attrs.ndim);
        if (trial % 3 == 0)
            assert_int_equal(yd->shape[1], shape[2]);
        if (trial % 3 == 1)
            assert_int_equal(yd->shape[2], shape[0]);
        assert_int_equal(plx_tensor_numel(y), plx_tensor_numel(x));
        assert_elements_equal(plx_tensor_data(y), plx_tensor_data(x), plx_tensor_numel(x), plx_dtype_size(dtype),
                              "reshape");
        plx_tensor_free(y);
        plx_tensor_free(x);
    }
    /* To and from 0-d. */
    plx_tensor *one = random_tensor(ctx, &rng, PLX_F32, 2, (int64_t[]){1, 1}), *s = NULL;
    plx_reshape_attrs to_scalar = {sizeof to_scalar, 0, {0}};
    tu_run(ctx, "core.reshape", &to_scalar, &one, 1, &s, 1);
    assert_int_equal(plx_tensor_desc_get(s)->ndim, 0);
    assert_true(tu_f32(s)[0] == tu_f32(one)[0] || isnan(tu_f32(one)[0]));
    plx_tensor_free(s);
    plx_tensor_free(one);

    plx_tensor *x = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){4, 6});
    plx_reshape_attrs two_unknown = {sizeof two_unknown, 2, {-1, -1}};
    expect_failure(ctx, "core.reshape", &two_unknown, &x, 1, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"core.reshape", "more than one -1"}, 2);
    plx_reshape_attrs wrong = {sizeof wrong, 2, {5, 5}};
    expect_failure(ctx, "core.reshape", &wrong, &x, 1, PLX_SHAPE_MISMATCH,
                   (const char *const[]){"core.reshape", "f32[4,6]", "[5,5]"}, 3);
    plx_reshape_attrs indivisible = {sizeof indivisible, 2, {5, -1}};
    expect_failure(ctx, "core.reshape", &indivisible, &x, 1, PLX_SHAPE_MISMATCH,
                   (const char *const[]){"f32[4,6]", "[5,-1]"}, 2);
    plx_reshape_attrs negative = {sizeof negative, 2, {-4, -6}};
    expect_failure(ctx, "core.reshape", &negative, &x, 1, PLX_INVALID_ARGUMENT, (const char *const[]){"[-4,-6]"}, 1);
    plx_tensor_free(x);
    plx_context_close(ctx);
}

/* ---- permute ---------------------------------------------------------------- */

static void random_perm(uint64_t *rng, int32_t n, int32_t *perm)
{
    for (int32_t i = 0; i < n; i++)
        perm[i] = i;
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)tu_rand_int(rng, 0, i);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static void check_permute(plx_context *ctx, plx_tensor *x, const int32_t *perm, const char *what)
{
    const plx_tensor_desc *xd = plx_tensor_desc_get(x);
    int32_t ndim = xd->ndim;
    size_t elem = plx_dtype_size(xd->dtype);
    int64_t xshape[PLX_MAX_DIMS];
    memcpy(xshape, xd->shape, sizeof(int64_t) * (size_t)ndim);
    plx_permute_attrs attrs = {sizeof attrs, ndim, {0}};
    for (int32_t d = 0; d < ndim; d++)
        attrs.perm[d] = perm[d] - (d % 2 ? ndim : 0); /* negative entries count from the end */
    plx_tensor *y = NULL;
    tu_run(ctx, "core.permute", &attrs, &x, 1, &y, 1);
    const plx_tensor_desc *yd = plx_tensor_desc_get(y);
    for (int32_t d = 0; d < ndim; d++)
        assert_int_equal(yd->shape[d], xshape[perm[d]]);
    /* x may be a strided view: read it through its strides. */
    int64_t xstrides[PLX_MAX_DIMS];
    if (xd->strides != NULL)
        memcpy(xstrides, xd->strides, sizeof(int64_t) * (size_t)ndim);
    else
        for (int32_t d = ndim - 1, s = 1; d >= 0; d--) {
            xstrides[d] = s;
            s *= (int32_t)xshape[d];
        }
    const char *xbase = plx_tensor_data(x), *ybase = plx_tensor_data(y);
    int64_t n = plx_tensor_numel(y), yi[PLX_MAX_DIMS];
    for (int64_t i = 0; i < n; i++) {
        unflatten(i, ndim, yd->shape, yi);
        int64_t off = 0;
        for (int32_t d = 0; d < ndim; d++)
            off += yi[d] * xstrides[perm[d]];
        if (memcmp(ybase + i * (int64_t)elem, xbase + off * (int64_t)elem, elem) != 0)
            fail_msg("%s: element %lld differs", what, (long long)i);
    }
    plx_tensor_free(y);
}

static void test_permute(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 41;
    for (int trial = 0; trial < 4 * N_DTYPES; trial++) {
        plx_dtype dtype = all_dtypes[trial % N_DTYPES];
        int32_t ndim = (int32_t)tu_rand_int(&rng, 1, 5);
        int64_t shape[PLX_MAX_DIMS];
        for (int32_t d = 0; d < ndim; d++)
            shape[d] = pick_size(&rng);
        int32_t perm[PLX_MAX_DIMS];
        random_perm(&rng, ndim, perm);
        plx_tensor *x = random_tensor(ctx, &rng, dtype, ndim, shape);
        check_permute(ctx, x, perm, "permute");
        plx_tensor_free(x);
    }
    /* A big 2-d transpose and a strided (transposed view) input. */
    plx_tensor *big = random_tensor(ctx, &rng, PLX_F32, 2, (int64_t[]){300, 257});
    check_permute(ctx, big, (const int32_t[]){1, 0}, "big transpose");
    plx_tensor_free(big);
    float mem[7 * 5 * 3];
    random_bytes(mem, sizeof mem, &rng);
    int64_t vshape[3] = {3, 5, 7}, vstrides[3] = {1, 3, 15};
    plx_tensor_desc vd = {.data = mem, .device = {PLX_DL_CPU, 0}, .ndim = 3, .dtype = PLX_F32, .shape = vshape,
                          .strides = vstrides};
    plx_tensor *view = NULL;
    assert_int_equal(plx_tensor_wrap(ctx, &vd, NULL, NULL, &view), PLX_OK);
    check_permute(ctx, view, (const int32_t[]){2, 0, 1}, "permute of a strided view");
    plx_tensor_free(view);

    plx_tensor *x = tu_tensor(ctx, PLX_F32, 3, (int64_t[]){2, 3, 4});
    plx_permute_attrs dup = {sizeof dup, 3, {0, 0, 1}};
    expect_failure(ctx, "core.permute", &dup, &x, 1, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"core.permute", "perm [0,0,1]", "f32[2,3,4]"}, 3);
    plx_permute_attrs out_of_range = {sizeof out_of_range, 3, {0, 3, 1}};
    expect_failure(ctx, "core.permute", &out_of_range, &x, 1, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"perm [0,3,1]", "not a permutation"}, 2);
    plx_permute_attrs short_perm = {sizeof short_perm, 2, {1, 0}};
    expect_failure(ctx, "core.permute", &short_perm, &x, 1, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"attrs.ndim is 2", "f32[2,3,4]"}, 2);
    plx_tensor_free(x);
    plx_context_close(ctx);
}

/* ---- concat ----------------------------------------------------------------- */

static void test_concat(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 51;
    for (int trial = 0; trial < 4 * N_DTYPES; trial++) {
        plx_dtype dtype = all_dtypes[trial % N_DTYPES];
        size_t elem = plx_dtype_size(dtype);
        int32_t ndim = (int32_t)tu_rand_int(&rng, 1, 4);
        int32_t axis = (int32_t)tu_rand_int(&rng, 0, ndim - 1);
        int64_t shape[PLX_MAX_DIMS];
        for (int32_t d = 0; d < ndim; d++)
            shape[d] = pick_size(&rng);
        int n = (int)tu_rand_int(&rng, 1, 4);
        plx_tensor *in[4];
        int64_t total = 0;
        for (int k = 0; k < n; k++) {
            int64_t s[PLX_MAX_DIMS];
            memcpy(s, shape, sizeof s);
            s[axis] = tu_rand_int(&rng, 0, 4);
            total += s[axis];
            in[k] = random_tensor(ctx, &rng, dtype, ndim, s);
        }
        plx_concat_attrs attrs = {sizeof attrs, trial % 2 ? axis - ndim : axis};
        plx_tensor *y = NULL;
        tu_run(ctx, "core.concat", &attrs, in, (size_t)n, &y, 1);
        const plx_tensor_desc *yd = plx_tensor_desc_get(y);
        assert_int_equal(yd->shape[axis], total);
        /* Reference: walk y; find which input and which position along the axis. */
        int64_t index[PLX_MAX_DIMS];
        for (int64_t i = 0; i < plx_tensor_numel(y); i++) {
            unflatten(i, ndim, yd->shape, index);
            int64_t at = index[axis];
            int k = 0;
            while (at >= plx_tensor_desc_get(in[k])->shape[axis]) {
                at -= plx_tensor_desc_get(in[k])->shape[axis];
                k++;
            }
            index[axis] = at;
            int64_t src = flatten(ndim, plx_tensor_desc_get(in[k])->shape, index);
            if (memcmp((char *)plx_tensor_data(y) + i * (int64_t)elem,
                       (char *)plx_tensor_data(in[k]) + src * (int64_t)elem, elem) != 0)
                fail_msg("concat trial %d: element %lld differs", trial, (long long)i);
        }
        plx_tensor_free(y);
        for (int k = 0; k < n; k++)
            plx_tensor_free(in[k]);
    }
    /* A strided input among compact ones. */
    float mem[12];
    for (int i = 0; i < 12; i++)
        mem[i] = (float)i;
    int64_t vshape[2] = {4, 3}, vstrides[2] = {1, 4};
    plx_tensor_desc vd = {.data = mem, .device = {PLX_DL_CPU, 0}, .ndim = 2, .dtype = PLX_F32, .shape = vshape,
                          .strides = vstrides};
    plx_tensor *in2[2] = {NULL, tu_from_f32(ctx, 2, (int64_t[]){1, 3}, (const float[]){-1, -2, -3})}, *y = NULL;
    assert_int_equal(plx_tensor_wrap(ctx, &vd, NULL, NULL, &in2[0]), PLX_OK);
    tu_run(ctx, "core.concat", &(plx_concat_attrs){sizeof(plx_concat_attrs), 0}, in2, 2, &y, 1);
    const float want[15] = {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -2, -3};
    tu_assert_close(tu_f32(y), want, 15, 0, 0, "concat with a transposed view");
    plx_tensor_free(y);

    plx_tensor *a = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){2, 3}), *b = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){4, 5});
    plx_tensor *c = tu_tensor(ctx, PLX_I32, 2, (int64_t[]){2, 3}), *s = tu_tensor(ctx, PLX_F32, 0, NULL);
    expect_failure(ctx, "core.concat", &(plx_concat_attrs){sizeof(plx_concat_attrs), 0}, (plx_tensor *[]){a, b}, 2,
                   PLX_SHAPE_MISMATCH, (const char *const[]){"core.concat", "f32[4,5]", "f32[2,3]"}, 3);
    expect_failure(ctx, "core.concat", &(plx_concat_attrs){sizeof(plx_concat_attrs), 1}, (plx_tensor *[]){a, c}, 2,
                   PLX_DTYPE_MISMATCH, (const char *const[]){"i32[2,3]"}, 1);
    expect_failure(ctx, "core.concat", &(plx_concat_attrs){sizeof(plx_concat_attrs), 2}, (plx_tensor *[]){a, a}, 2,
                   PLX_INVALID_ARGUMENT, (const char *const[]){"axis 2"}, 1);
    expect_failure(ctx, "core.concat", NULL, (plx_tensor *[]){s, s}, 2, PLX_SHAPE_MISMATCH,
                   (const char *const[]){"0-dim"}, 1);
    plx_tensor_free(s);
    plx_tensor_free(c);
    plx_tensor_free(b);
    plx_tensor_free(a);
    plx_tensor_free(in2[1]);
    plx_tensor_free(in2[0]);
    plx_context_close(ctx);
}

/* ---- slice ------------------------------------------------------------------ */

/* Python's range(*slice(start, end, step).indices(n)), listed. */
static int64_t python_slice(int64_t start, int64_t end, int64_t step, int64_t n, int64_t *picked)
{
    if (start < 0)
        start += n;
    if (start < 0)
        start = 0;
    if (start > n)
        start = n;
    if (end < 0)
        end += n;
    if (end < 0)
        end = 0;
    if (end > n)
        end = n;
    int64_t count = 0;
    for (int64_t i = start; i < end; i += step)
        picked[count++] = i;
    return count;
}

static void test_slice(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 61;
    for (int trial = 0; trial < 5 * N_DTYPES; trial++) {
        plx_dtype dtype = all_dtypes[trial % N_DTYPES];
        size_t elem = plx_dtype_size(dtype);
        int32_t ndim = (int32_t)tu_rand_int(&rng, 1, 4);
        int64_t shape[PLX_MAX_DIMS];
        for (int32_t d = 0; d < ndim; d++)
            shape[d] = tu_rand_int(&rng, 1, 9);
        plx_tensor *x = random_tensor(ctx, &rng, dtype, ndim, shape), *y = NULL;
        plx_slice_attrs attrs = {sizeof attrs, 0, {0}, {0}, {0}, {0}};
        int32_t perm[PLX_MAX_DIMS];
        random_perm(&rng, ndim, perm);
        attrs.n_axes = (int32_t)tu_rand_int(&rng, 0, ndim);
        /* picked[d] lists the source indices kept along dim d. */
        int64_t picked[PLX_MAX_DIMS][16], count[PLX_MAX_DIMS];
        for (int32_t d = 0; d < ndim; d++) {
            count[d] = shape[d];
            for (int64_t i = 0; i < shape[d]; i++)
                picked[d][i] = i;
        }
        for (int32_t k = 0; k < attrs.n_axes; k++) {
            int32_t axis = perm[k];
            attrs.axes[k] = tu_rand_int(&rng, 0, 1) ? axis : axis - ndim;
            attrs.starts[k] = tu_rand_int(&rng, -12, 12);
            attrs.ends[k] = tu_rand_int(&rng, 0, 3) == 0 ? INT64_MAX : tu_rand_int(&rng, -12, 12);
            attrs.steps[k] = tu_rand_int(&rng, 0, 3); /* 0 reads as 1 */
            int64_t step = attrs.steps[k] ? attrs.steps[k] : 1;
            count[axis] = python_slice(attrs.starts[k], attrs.ends[k], step, shape[axis], picked[axis]);
        }
        tu_run(ctx, "core.slice", &attrs, &x, 1, &y, 1);
        const plx_tensor_desc *yd = plx_tensor_desc_get(y);
        for (int32_t d = 0; d < ndim; d++)
            assert_int_equal(yd->shape[d], count[d]);
        int64_t index[PLX_MAX_DIMS], src_index[PLX_MAX_DIMS];
        for (int64_t i = 0; i < plx_tensor_numel(y); i++) {
            unflatten(i, ndim, yd->shape, index);
            for (int32_t d = 0; d < ndim; d++)
                src_index[d] = picked[d][index[d]];
            int64_t src = flatten(ndim, shape, src_index);
            if (memcmp((char *)plx_tensor_data(y) + i * (int64_t)elem, (char *)plx_tensor_data(x) + src * (int64_t)elem,
                       elem) != 0)
                fail_msg("slice trial %d: element %lld differs", trial, (long long)i);
        }
        plx_tensor_free(y);
        plx_tensor_free(x);
    }
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){4, 6});
    plx_slice_attrs negative_step = {sizeof negative_step, 1, {1}, {0}, {6}, {-1}};
    expect_failure(ctx, "core.slice", &negative_step, &x, 1, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"core.slice", "step -1", "f32[4,6]"}, 3);
    plx_slice_attrs twice = {sizeof twice, 2, {1, -1}, {0, 0}, {2, 2}, {1, 1}};
    expect_failure(ctx, "core.slice", &twice, &x, 1, PLX_INVALID_ARGUMENT, (const char *const[]){"listed twice"}, 1);
    plx_slice_attrs bad_axis = {sizeof bad_axis, 1, {2}, {0}, {1}, {1}};
    expect_failure(ctx, "core.slice", &bad_axis, &x, 1, PLX_INVALID_ARGUMENT, (const char *const[]){"axis 2"}, 1);
    plx_tensor_free(x);
    plx_context_close(ctx);
}

/* ---- pad -------------------------------------------------------------------- */

/* Source index for padded position p (relative to the first real element),
 * by walking: reflect bounces off the edges, replicate clamps. */
static int64_t pad_reference_index(int64_t p, int64_t n, int32_t mode)
{
    if (p >= 0 && p < n)
        return p;
    if (mode == PLX_PAD_CONSTANT)
        return -1;
    if (mode == PLX_PAD_REPLICATE)
        return p < 0 ? 0 : n - 1;
    int64_t i = 0, dir = p < 0 ? -1 : 1, steps = p < 0 ? -p : p - (n - 1);
    i = p < 0 ? 0 : n - 1;
    for (int64_t s = 0; s < steps; s++) {
        if ((dir < 0 && i == 0) || (dir > 0 && i == n - 1))
            dir = -dir;
        i += dir;
    }
    return i;
}

static void test_pad(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 71;
    for (int trial = 0; trial < 6 * N_DTYPES; trial++) {
        plx_dtype dtype = all_dtypes[trial % N_DTYPES];
        size_t elem = plx_dtype_size(dtype);
        int32_t mode = trial % 3;
        int32_t ndim = (int32_t)tu_rand_int(&rng, 1, 4);
        int64_t shape[PLX_MAX_DIMS];
        plx_pad_attrs attrs = {sizeof attrs, ndim, {0}, {0}, mode, 0.0f};
        attrs.value = dtype.code == PLX_DTYPE_CODE_UINT || dtype.code == PLX_DTYPE_CODE_BOOL ? 7.0f : -3.0f;
        for (int32_t d = 0; d < ndim; d++) {
            shape[d] = tu_rand_int(&rng, 1, 7);
            int64_t limit = mode == PLX_PAD_REFLECT ? shape[d] - 1 : 4;
            attrs.before[d] = tu_rand_int(&rng, 0, limit);
            attrs.after[d] = tu_rand_int(&rng, 0, limit);
        }
        plx_tensor *x = random_tensor(ctx, &rng, dtype, ndim, shape), *y = NULL;
        tu_run(ctx, "core.pad", &attrs, &x, 1, &y, 1);
        const plx_tensor_desc *yd = plx_tensor_desc_get(y);
        for (int32_t d = 0; d < ndim; d++)
            assert_int_equal(yd->shape[d], shape[d] + attrs.before[d] + attrs.after[d]);
        /* The constant, as cast would make it. */
        unsigned char value[8];
        scalar sv = {.k = K_FLOAT, .f = attrs.value};
        write_scalar(dtype, &sv, value);
        int64_t index[PLX_MAX_DIMS], src_index[PLX_MAX_DIMS];
        for (int64_t i = 0; i < plx_tensor_numel(y); i++) {
            unflatten(i, ndim, yd->shape, index);
            bool constant = false;
            for (int32_t d = 0; d < ndim; d++) {
                src_index[d] = pad_reference_index(index[d] - attrs.before[d], shape[d], mode);
                constant = constant || src_index[d] < 0;
            }
            const char *want =
                constant ? (const char *)value
                         : (const char *)plx_tensor_data(x) + flatten(ndim, shape, src_index) * (int64_t)elem;
            if (memcmp((char *)plx_tensor_data(y) + i * (int64_t)elem, want, elem) != 0)
                fail_msg("pad trial %d (mode %d): element %lld differs", trial, (int)mode, (long long)i);
        }
        plx_tensor_free(y);
        plx_tensor_free(x);
    }
    /* Known values: reflect and replicate of [1 2 3] by (2, 2). */
    plx_tensor *r = tu_from_f32(ctx, 1, (int64_t[]){3}, (const float[]){1, 2, 3}), *y = NULL;
    tu_run(ctx, "core.pad", &(plx_pad_attrs){sizeof(plx_pad_attrs), 1, {2}, {2}, PLX_PAD_REFLECT, 0}, &r, 1, &y, 1);
    tu_assert_close(tu_f32(y), (const float[]){3, 2, 1, 2, 3, 2, 1}, 7, 0, 0, "reflect");
    plx_tensor_free(y);
    y = NULL;
    tu_run(ctx, "core.pad", &(plx_pad_attrs){sizeof(plx_pad_attrs), 1, {2}, {1}, PLX_PAD_REPLICATE, 0}, &r, 1, &y, 1);
    tu_assert_close(tu_f32(y), (const float[]){1, 1, 1, 2, 3, 3}, 6, 0, 0, "replicate");
    plx_tensor_free(y);
    y = NULL;
    tu_run(ctx, "core.pad", &(plx_pad_attrs){sizeof(plx_pad_attrs), 1, {1}, {0}, PLX_PAD_CONSTANT, 9.5f}, &r, 1, &y,
           1);
    tu_assert_close(tu_f32(y), (const float[]){9.5f, 1, 2, 3}, 4, 0, 0, "constant");
    plx_tensor_free(y);

    plx_pad_attrs too_far = {sizeof too_far, 1, {3}, {0}, PLX_PAD_REFLECT, 0};
    expect_failure(ctx, "core.pad", &too_far, &r, 1, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"core.pad", "reflect", "f32[3]"}, 3);
    plx_pad_attrs bad_mode = {sizeof bad_mode, 1, {1}, {1}, 7, 0};
    expect_failure(ctx, "core.pad", &bad_mode, &r, 1, PLX_INVALID_ARGUMENT, (const char *const[]){"mode 7"}, 1);
    plx_pad_attrs negative = {sizeof negative, 1, {-1}, {0}, PLX_PAD_CONSTANT, 0};
    expect_failure(ctx, "core.pad", &negative, &r, 1, PLX_INVALID_ARGUMENT, (const char *const[]){"(-1, 0)"}, 1);
    plx_pad_attrs wrong_ndim = {sizeof wrong_ndim, 2, {1, 1}, {1, 1}, PLX_PAD_CONSTANT, 0};
    expect_failure(ctx, "core.pad", &wrong_ndim, &r, 1, PLX_INVALID_ARGUMENT, (const char *const[]){"attrs.ndim is 2"},
                   1);
    plx_tensor_free(r);
    plx_context_close(ctx);
}

/* ---- fill ------------------------------------------------------------------- */

static void test_fill(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    for (int k = 0; k < N_DTYPES; k++) {
        plx_dtype dtype = all_dtypes[k];
        size_t elem = plx_dtype_size(dtype);
        double value = kind_of(dtype) == K_UNSIGNED || kind_of(dtype) == K_BOOL ? 5.75 : -5.75;
        plx_fill_attrs attrs = {sizeof attrs, dtype, 3, {3, 1, 7}, value};
        if (k == 0) /* large enough to split across threads */
            attrs = (plx_fill_attrs){sizeof attrs, dtype, 2, {513, 517}, value};
        plx_tensor *y = NULL;
        tu_run(ctx, "core.fill", &attrs, NULL, 0, &y, 1);
        const plx_tensor_desc *yd = plx_tensor_desc_get(y);
        assert_true(plx_dtype_equal(yd->dtype, dtype));
        assert_int_equal(yd->ndim, attrs.ndim);
        unsigned char want[8];
        scalar s = {.k = K_FLOAT, .f = value};
        write_scalar(dtype, &s, want);
        for (int64_t i = 0; i < plx_tensor_numel(y); i++)
            if (memcmp((char *)plx_tensor_data(y) + i * (int64_t)elem, want, elem) != 0)
                fail_msg("fill dtype %d: element %lld differs", k, (long long)i);
        plx_tensor_free(y);
    }
    /* Known values, and a 0-d fill. */
    plx_tensor *y = NULL;
    tu_run(ctx, "core.fill", &(plx_fill_attrs){sizeof(plx_fill_attrs), PLX_I32, 0, {0}, -2.9}, NULL, 0, &y, 1);
    assert_int_equal(*(int32_t *)plx_tensor_data(y), -2);
    plx_tensor_free(y);
    y = NULL;
    tu_run(ctx, "core.fill", &(plx_fill_attrs){sizeof(plx_fill_attrs), PLX_BF16, 1, {2}, 1.0}, NULL, 0, &y, 1);
    assert_int_equal(((uint16_t *)plx_tensor_data(y))[1], 0x3f80);
    plx_tensor_free(y);

    plx_fill_attrs overflow = {sizeof overflow, PLX_U8, 1, {2}, 300.0};
    expect_failure(ctx, "core.fill", &overflow, NULL, 0, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"core.fill", "300", "u8"}, 3);
    plx_fill_attrs nan_int = {sizeof nan_int, PLX_I32, 1, {2}, NAN};
    expect_failure(ctx, "core.fill", &nan_int, NULL, 0, PLX_INVALID_ARGUMENT, (const char *const[]){"i32"}, 1);
    plx_fill_attrs no_dtype = {sizeof no_dtype, {0, 0, 0}, 1, {2}, 1.0};
    expect_failure(ctx, "core.fill", &no_dtype, NULL, 0, PLX_INVALID_ARGUMENT, (const char *const[]){"attrs.dtype"},
                   1);
    plx_fill_attrs bad_shape = {sizeof bad_shape, PLX_F32, 2, {2, -3}, 1.0};
    expect_failure(ctx, "core.fill", &bad_shape, NULL, 0, PLX_INVALID_ARGUMENT, (const char *const[]){"[2,-3]"}, 1);
    plx_context_close(ctx);
}

static void test_cast_bad_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){2, 3});
    expect_failure(ctx, "core.cast", NULL, &x, 1, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"core.cast", "f32[2,3]", "attrs.dtype"}, 3);
    plx_cast_attrs weird = {sizeof weird, {PLX_DTYPE_CODE_FLOAT, 8, 1}};
    expect_failure(ctx, "core.cast", &weird, &x, 1, PLX_INVALID_ARGUMENT, (const char *const[]){"bits 8"}, 1);
    plx_tensor_free(x);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_random_views),
        cmocka_unit_test(test_copy_large_views),
        cmocka_unit_test(test_copy_compact_scalar_empty),
        cmocka_unit_test(test_cast_every_pair),
        cmocka_unit_test(test_cast_known_values),
        cmocka_unit_test(test_cast_bad_input),
        cmocka_unit_test(test_reshape),
        cmocka_unit_test(test_permute),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_pad),
        cmocka_unit_test(test_fill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* cpu_blas kernels of the layout family: copy (the one kernel that reads
 * arbitrary strides), cast, reshape, permute, concat, slice, pad, fill.
 *
 * Data movement works on every dtype by element size. Elements are moved
 * with fixed-size memcpy, which gcc turns into plain loads and stores while
 * staying correct for wrapped memory that is not aligned to the element. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_blas.h"

/* ---- Helpers ------------------------------------------------------------- */

static size_t elem_size(const plx_tensor_desc *t)
{
    return plx_dtype_size(t->dtype);
}

/* Every dtype the runtime accepted may be moved. */
static bool supports_any_dtype(const plx_op_call *call, char *reason, size_t cap)
{
    (void)call;
    (void)reason;
    (void)cap;
    return true;
}

typedef struct memcpy_job {
    char *dst;
    const char *src;
    size_t bytes;
} memcpy_job;

#define MEMCPY_BLOCK ((size_t)1 << 16)

static void memcpy_range(void *arg, int64_t begin, int64_t end)
{
    const memcpy_job *job = arg;
    size_t from = (size_t)begin * MEMCPY_BLOCK;
    size_t to = (size_t)end * MEMCPY_BLOCK;
    if (to > job->bytes)
        to = job->bytes;
    if (to > from)
        memcpy(job->dst + from, job->src + from, to - from);
}

/* Large copies are memory bound; two threads still help on most hosts. */
static void parallel_memcpy(const cpu_state *st, void *dst, const void *src, size_t bytes)
{
    if (bytes == 0 || dst == src)
        return;
    memcpy_job job = {dst, src, bytes};
    int64_t blocks = (int64_t)((bytes + MEMCPY_BLOCK - 1) / MEMCPY_BLOCK);
    cpu_parallel_for(st, blocks, 8, memcpy_range, &job);
}

/* Repeats one element `count` times. */
static void fill_elements(char *dst, int64_t count, const unsigned char *value, size_t elem)
{
    switch (elem) {
    case 1:
        memset(dst, value[0], (size_t)count);
        break;
    case 2: {
        uint16_t v;
        memcpy(&v, value, 2);
        for (int64_t i = 0; i < count; i++)
            memcpy(dst + i * 2, &v, 2);
        break;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, value, 4);
        for (int64_t i = 0; i < count; i++)
            memcpy(dst + i * 4, &v, 4);
        break;
    }
    case 8: {
        uint64_t v;
        memcpy(&v, value, 8);
        for (int64_t i = 0; i < count; i++)
            memcpy(dst + i * 8, &v, 8);
        break;
    }
    default:
        for (int64_t i = 0; i < count; i++)
            memcpy(dst + (size_t)i * elem, value, elem);
        break;
    }
}

/* ---- Strided gather: the engine behind copy, permute and slice ----------
 * Reads a strided view (base address, dims, strides in elements; strides
 * may be zero or negative) into a compact destination. */

typedef struct strided_view {
    const char *base; /* address of element [0, ..., 0] */
    int32_t ndim;
    int64_t dims[PLX_MAX_DIMS + 1];
    int64_t strides[PLX_MAX_DIMS + 1]; /* in elements */
    size_t elem;
} strided_view;

/* Drops size-1 dims and merges dims that are contiguous with each other, so
 * a compact or row-wise contiguous view becomes one or two dims. Returns
 * false if the view is empty. */
static bool simplify_view(strided_view *v)
{
    int32_t n = 0;
    for (int32_t i = 0; i < v->ndim; i++) {
        if (v->dims[i] == 0)
            return false;
        if (v->dims[i] == 1)
            continue;
        if (n > 0 && v->strides[n - 1] == v->strides[i] * v->dims[i]) {
            v->dims[n - 1] *= v->dims[i];
            v->strides[n - 1] = v->strides[i];
            continue;
        }
        v->dims[n] = v->dims[i];
        v->strides[n] = v->strides[i];
        n++;
    }
    v->ndim = n;
    return true;
}

/* An element size with no typed path (none of the known dtypes today)
 * becomes a row of bytes. */
static void view_as_bytes(strided_view *v)
{
    int64_t elem = (int64_t)v->elem;
    for (int32_t i = 0; i < v->ndim; i++)
        v->strides[i] *= elem;
    v->dims[v->ndim] = elem;
    v->strides[v->ndim] = 1;
    v->ndim++;
    v->elem = 1;
}

typedef struct gather_job {
    strided_view view;
    char *dst;
    /* Tiled (transpose-like) mode: dim `unit_dim` has stride +-1 and the
     * last dim does not. */
    int32_t unit_dim;
    int64_t tiles_per_outer; /* tiles along unit_dim */
} gather_job;

/* Source offset (in elements) of the row `row` of a view whose last dim is
 * the row; also fills `index` with the row's multi-index. */
static int64_t row_offset(const strided_view *v, int64_t row, int64_t *index)
{
    int64_t off = 0;
    for (int32_t d = v->ndim - 2; d >= 0; d--) {
        index[d] = row % v->dims[d];
        row /= v->dims[d];
        off += index[d] * v->strides[d];
    }
    return off;
}

/* Advances the multi-index of dims [0, ndim-1) by one row. */
static int64_t next_row(const strided_view *v, int64_t *index)
{
    int64_t delta = 0;
    for (int32_t d = v->ndim - 2; d >= 0; d--) {
        if (++index[d] < v->dims[d])
            return delta + v->strides[d];
        delta -= (index[d] - 1) * v->strides[d];
        index[d] = 0;
    }
    return delta;
}

#define DEFINE_GATHER_ROWS(bytes, type)                                                                  \
    static void gather_rows_##bytes(const strided_view *v, char *dst, int64_t begin, int64_t end)        \
    {                                                                                                    \
        int64_t index[PLX_MAX_DIMS + 1] = {0};                                                           \
        int64_t len = v->dims[v->ndim - 1], stride = v->strides[v->ndim - 1];                            \
        int64_t off = row_offset(v, begin, index);                                                       \
        char *out = dst + begin * len * (bytes);                                                         \
        for (int64_t r = begin; r < end; r++) {                                                          \
            const char *in = v->base + off * (bytes);                                                    \
            if (stride == 1) {                                                                           \
                memcpy(out, in, (size_t)len * (bytes));                                                  \
            } else {                                                                                     \
                for (int64_t j = 0; j < len; j++) {                                                      \
                    type x;                                                                              \
                    memcpy(&x, in + j * stride * (bytes), (bytes));                                      \
                    memcpy(out + j * (bytes), &x, (bytes));                                              \
                }                                                                                        \
            }                                                                                            \
            out += len * (bytes);                                                                        \
            if (r + 1 < end)                                                                             \
                off += next_row(v, index);                                                               \
        }                                                                                                \
    }
DEFINE_GATHER_ROWS(1, uint8_t)
DEFINE_GATHER_ROWS(2, uint16_t)
DEFINE_GATHER_ROWS(4, uint32_t)
DEFINE_GATHER_ROWS(8, uint64_t)

static void gather_rows_range(void *arg, int64_t begin, int64_t end)
{
    const gather_job *job = arg;
    switch (job->view.elem) {
    case 2:
        gather_rows_2(&job->view, job->dst, begin, end);
        break;
    case 4:
        gather_rows_4(&job->view, job->dst, begin, end);
        break;
    case 8:
        gather_rows_8(&job->view, job->dst, begin, end);
        break;
    default:
        gather_rows_1(&job->view, job->dst, begin, end);
        break;
    }
}

/* Tile edge for the transpose-like case: the staging buffer (edge^2
 * elements, 16 KiB at most) stays in L1 next to the lines it streams. */
#define GATHER_TILE 64
#define GATHER_TILE_WIDE 32 /* for 8-byte elements */

/* One work item = one band: all tiles of the last dim for a block of
 * GATHER_TILE indices along unit_dim, at one combination of the other dims.
 * Each tile is staged through a small local buffer: source segments are
 * read contiguously along unit_dim and output segments written contiguously
 * along the last dim. Touching the tile's strided lines directly would map
 * them all to one cache set whenever the stride is a power of two. */
#define DEFINE_GATHER_TILES(bytes, type, edge)                                                               \
    static void gather_tiles_##bytes(const gather_job *job, int64_t begin, int64_t end)                  \
    {                                                                                                    \
        const strided_view *v = &job->view;                                                              \
        int32_t last = v->ndim - 1, k = job->unit_dim;                                                   \
        int64_t out_strides[PLX_MAX_DIMS + 1];                                                           \
        out_strides[last] = 1;                                                                           \
        for (int32_t d = last - 1; d >= 0; d--)                                                          \
            out_strides[d] = out_strides[d + 1] * v->dims[d + 1];                                        \
        int64_t len = v->dims[last], src_stride_last = v->strides[last];                                 \
        int64_t src_stride_k = v->strides[k], out_stride_k = out_strides[k];                             \
        type tile_buf[edge][edge];                                                                       \
        for (int64_t item = begin; item < end; item++) {                                                 \
            int64_t tile = item % job->tiles_per_outer, outer = item / job->tiles_per_outer;             \
            int64_t src_off = 0, out_off = 0;                                                            \
            for (int32_t d = last - 1; d >= 0; d--) {                                                    \
                if (d == k)                                                                              \
                    continue;                                                                            \
                int64_t i = outer % v->dims[d];                                                          \
                outer /= v->dims[d];                                                                     \
                src_off += i * v->strides[d];                                                            \
                out_off += i * out_strides[d];                                                           \
            }                                                                                            \
            int64_t k0 = tile * (edge);                                                                  \
            int64_t kn = k0 + (edge) < v->dims[k] ? (edge) : v->dims[k] - k0;                            \
            for (int64_t j0 = 0; j0 < len; j0 += (edge)) {                                               \
                int64_t jn = j0 + (edge) < len ? (edge) : len - j0;                                      \
                for (int64_t j = 0; j < jn; j++) {                                                       \
                    const char *in =                                                                     \
                        v->base + (src_off + (j0 + j) * src_stride_last + k0 * src_stride_k) * (bytes);  \
                    for (int64_t kk = 0; kk < kn; kk++)                                                  \
                        memcpy(&tile_buf[j][kk], in + kk * src_stride_k * (bytes), (bytes));             \
                }                                                                                        \
                for (int64_t kk = 0; kk < kn; kk++) {                                                    \
                    char *out = job->dst + (out_off + j0 + (k0 + kk) * out_stride_k) * (bytes);          \
                    for (int64_t j = 0; j < jn; j++)                                                     \
                        memcpy(out + j * (bytes), &tile_buf[j][kk], (bytes));                            \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
    }
DEFINE_GATHER_TILES(1, uint8_t, GATHER_TILE)
DEFINE_GATHER_TILES(2, uint16_t, GATHER_TILE)
DEFINE_GATHER_TILES(4, uint32_t, GATHER_TILE)
DEFINE_GATHER_TILES(8, uint64_t, GATHER_TILE_WIDE)

static void gather_tiles_range(void *arg, int64_t begin, int64_t end)
{
    const gather_job *job = arg;
    switch (job->view.elem) {
    case 2:
        gather_tiles_2(job, begin, end);
        break;
    case 4:
        gather_tiles_4(job, begin, end);
        break;
    case 8:
        gather_tiles_8(job, begin, end);
        break;
    default:
        gather_tiles_1(job, begin, end);
        break;
    }
}

/* Copies the view into compact `dst` (which holds its elements in
 * row-major order of the view's dims). */
static void gather_view(const cpu_state *st, strided_view view, char *dst)
{
    size_t elem = view.elem;
    if (elem != 1 && elem != 2 && elem != 4 && elem != 8)
        view_as_bytes(&view);
    if (!simplify_view(&view))
        return;
    if (view.ndim == 0) {
        memcpy(dst, view.base, view.elem);
        return;
    }
    if (view.ndim == 1 && view.strides[0] == 1) {
        parallel_memcpy(st, dst, view.base, (size_t)view.dims[0] * view.elem);
        return;
    }
    gather_job job = {.view = view, .dst = dst, .unit_dim = -1, .tiles_per_outer = 0};
    int32_t last = view.ndim - 1;
    int64_t numel = 1;
    for (int32_t d = 0; d < view.ndim; d++)
        numel *= view.dims[d];
    /* Transpose-like: the last dim is strided but another one is unit
     * stride and long enough for tiling to pay. */
    if (view.strides[last] != 1 && view.dims[last] >= 4) {
        for (int32_t d = last - 1; d >= 0; d--)
            if ((view.strides[d] == 1 || view.strides[d] == -1) && view.dims[d] >= 4) {
                job.unit_dim = d;
                break;
            }
    }
    if (job.unit_dim >= 0) {
        int64_t edge = view.elem == 8 ? GATHER_TILE_WIDE : GATHER_TILE;
        job.tiles_per_outer = (view.dims[job.unit_dim] + edge - 1) / edge;
        int64_t items = numel / view.dims[job.unit_dim] / view.dims[last] * job.tiles_per_outer;
        int64_t per_item = edge * view.dims[last];
        int64_t grain = 32768 / per_item > 1 ? 32768 / per_item : 1;
        cpu_parallel_for(st, items, grain, gather_tiles_range, &job);
        return;
    }
    int64_t rows = numel / view.dims[last];
    int64_t grain = 32768 / view.dims[last] > 1 ? 32768 / view.dims[last] : 1;
    cpu_parallel_for(st, rows, grain, gather_rows_range, &job);
}

/* Compact row-major strides (in elements) of dims. */
static void compact_strides(const int64_t *dims, int32_t ndim, int64_t *strides)
{
    int64_t s = 1;
    for (int32_t d = ndim - 1; d >= 0; d--) {
        strides[d] = s;
        s *= dims[d];
    }
}

/* ---- copy ------------------------------------------------------------------ */

static plx_status run_copy(cpu_state *st, const plx_op_call *call)
{
    const plx_tensor_desc *x = &call->inputs[0], *y = &call->outputs[0];
    strided_view view;
    view.base = plx_desc_ptr(x);
    view.ndim = x->ndim;
    view.elem = elem_size(x);
    for (int32_t d = 0; d < x->ndim; d++)
        view.dims[d] = x->shape[d];
    if (x->strides != NULL)
        memcpy(view.strides, x->strides, sizeof(int64_t) * (size_t)x->ndim);
    else
        compact_strides(view.dims, view.ndim, view.strides);
    gather_view(st, view, plx_desc_ptr(y));
    return PLX_OK;
}

/* ---- cast ------------------------------------------------------------------
 * Floats go through double (exact for f16/bf16/f32), integers and bool
 * through int64, so every pair needs one load and one store routine. Float
 * to integer truncates toward zero, saturating at the int64 range (NaN -> 0),
 * then wraps into narrower types as PyTorch does on x86; to bool, nonzero
 * (NaN included) is 1. f16 and bf16 round to nearest even. */

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0) {
        float f = (float)mantissa * 0x1p-24f;
        memcpy(&bits, &f, 4);
        bits |= sign;
    } else if (exponent == 31) {
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    }
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

/* Round-to-nearest-even float -> half (after F. Giesen's float_to_half_rtne). */
static uint16_t f32_to_f16(float f)
{
    const uint32_t f32_inf = 255u << 23;
    const uint32_t f16_overflow = (127u + 16u) << 23;
    const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = x & 0x80000000u;
    x ^= sign;
    uint16_t out;
    if (x >= f16_overflow) {
        out = x > f32_inf ? 0x7e00u : 0x7c00u;
    } else if (x < (113u << 23)) {
        /* Subnormal half: let the FPU's round-to-nearest-even do the work by
         * adding a magic number that aligns the mantissa. */
        float fx, magic;
        memcpy(&fx, &x, 4);
        memcpy(&magic, &denorm_magic, 4);
        fx += magic;
        uint32_t r;
        memcpy(&r, &fx, 4);
        out = (uint16_t)(r - denorm_magic);
    } else {
        uint32_t mantissa_odd = (x >> 13) & 1u;
        x += ((uint32_t)(15 - 127) << 23) + 0xfffu;
        x += mantissa_odd;
        out = (uint16_t)(x >> 13);
    }
    return (uint16_t)(out | (sign >> 16));
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float out;
    memcpy(&out, &bits, 4);
    return out;
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u); /* NaN stays NaN (quiet) */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static int64_t double_to_i64(double d)
{
    if (d != d)
        return 0;
    if (d >= 9223372036854775807.0)
        return INT64_MAX;
    if (d <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)d;
}

static uint64_t double_to_u64(double d)
{
    if (d >= 9223372036854775808.0)
        return d >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)d;
    return (uint64_t)double_to_i64(d);
}

typedef enum cast_kind {
    CAST_F16,
    CAST_BF16,
    CAST_F32,
    CAST_F64,
    CAST_I8,
    CAST_I16,
    CAST_I32,
    CAST_I64,
    CAST_U8,
    CAST_U16,
    CAST_U32,
    CAST_U64,
    CAST_BOOL
} cast_kind;

static cast_kind cast_kind_of(plx_dtype t)
{
    switch (t.code) {
    case PLX_DTYPE_CODE_FLOAT:
        return t.bits == 16 ? CAST_F16 : t.bits == 64 ? CAST_F64 : CAST_F32;
    case PLX_DTYPE_CODE_BFLOAT:
        return CAST_BF16;
    case PLX_DTYPE_CODE_INT:
        return t.bits == 8 ? CAST_I8 : t.bits == 16 ? CAST_I16 : t.bits == 32 ? CAST_I32 : CAST_I64;
    case PLX_DTYPE_CODE_UINT:
        return t.bits == 8 ? CAST_U8 : t.bits == 16 ? CAST_U16 : t.bits == 32 ? CAST_U32 : CAST_U64;
    default:
        return CAST_BOOL;
    }
}

static bool cast_kind_is_float(cast_kind k)
{
    return k <= CAST_F64;
}

#define LOAD_LOOP(type, expr)                                                                            \
    for (int64_t i = 0; i < n; i++) {                                                                    \
        type v;                                                                                          \
        memcpy(&v, src + i * (int64_t)sizeof(type), sizeof(type));                                      \
        out[i] = (expr);                                                                                 \
    }

static void load_as_double(cast_kind k, const char *src, int64_t n, double *out)
{
    switch (k) {
    case CAST_F16:
        LOAD_LOOP(uint16_t, (double)f16_to_f32(v));
        break;
    case CAST_BF16:
        LOAD_LOOP(uint16_t, (double)bf16_to_f32(v));
        break;
    case CAST_F32:
        LOAD_LOOP(float, (double)v);
        break;
    default:
        LOAD_LOOP(double, v);
        break;
    }
}

/* u64 is loaded bit for bit; stores into floats read it back as unsigned. */
static void load_as_int64(cast_kind k, const char *src, int64_t n, int64_t *out)
{
    switch (k) {
    case CAST_I8:
        LOAD_LOOP(int8_t, (int64_t)v);
        break;
    case CAST_I16:
        LOAD_LOOP(int16_t, (int64_t)v);
        break;
    case CAST_I32:
        LOAD_LOOP(int32_t, (int64_t)v);
        break;
    case CAST_I64:
        LOAD_LOOP(int64_t, v);
        break;
    case CAST_U8:
        LOAD_LOOP(uint8_t, (int64_t)v);
        break;
    case CAST_U16:
        LOAD_LOOP(uint16_t, (int64_t)v);
        break;
    case CAST_U32:
        LOAD_LOOP(uint32_t, (int64_t)v);
        break;
    case CAST_U64:
        LOAD_LOOP(uint64_t, (int64_t)v);
        break;
    default:
        LOAD_LOOP(uint8_t, v != 0);
        break;
    }
}

#define STORE_LOOP(type, expr)                                                                           \
    for (int64_t i = 0; i < n; i++) {                                                                    \
        type v = (type)(expr);                                                                           \
        memcpy(dst + i * (int64_t)sizeof(type), &v, sizeof(type));                                       \
    }

static void store_from_double(cast_kind k, const double *in, int64_t n, char *dst)
{
    switch (k) {
    case CAST_F16:
        STORE_LOOP(uint16_t, f32_to_f16((float)in[i]));
        break;
    case CAST_BF16:
        STORE_LOOP(uint16_t, f32_to_bf16((float)in[i]));
        break;
    case CAST_F32:
        STORE_LOOP(float, in[i]);
        break;
    case CAST_F64:
        STORE_LOOP(double, in[i]);
        break;
    case CAST_I8:
        STORE_LOOP(int8_t, (uint8_t)double_to_i64(in[i]));
        break;
    case CAST_I16:
        STORE_LOOP(int16_t, (uint16_t)double_to_i64(in[i]));
        break;
    case CAST_I32:
        STORE_LOOP(int32_t, (uint32_t)double_to_i64(in[i]));
        break;
    case CAST_I64:
        STORE_LOOP(int64_t, double_to_i64(in[i]));
        break;
    case CAST_U8:
        STORE_LOOP(uint8_t, double_to_i64(in[i]));
        break;
    case CAST_U16:
        STORE_LOOP(uint16_t, double_to_i64(in[i]));
        break;
    case CAST_U32:
        STORE_LOOP(uint32_t, double_to_i64(in[i]));
        break;
    case CAST_U64:
        STORE_LOOP(uint64_t, double_to_u64(in[i]));
        break;
    case CAST_BOOL:
        STORE_LOOP(uint8_t, in[i] != 0.0);
        break;
    }
}

static void store_from_int64(cast_kind k, bool unsigned_source, const int64_t *in, int64_t n, char *dst)
{
    switch (k) {
    case CAST_F16:
        STORE_LOOP(uint16_t, f32_to_f16(unsigned_source ? (float)(uint64_t)in[i] : (float)in[i]));
        break;
    case CAST_BF16:
        STORE_LOOP(uint16_t, f32_to_bf16(unsigned_source ? (float)(uint64_t)in[i] : (float)in[i]));
        break;
    case CAST_F32:
        STORE_LOOP(float, unsigned_source ? (float)(uint64_t)in[i] : (float)in[i]);
        break;
    case CAST_F64:
        STORE_LOOP(double, unsigned_source ? (double)(uint64_t)in[i] : (double)in[i]);
        break;
    case CAST_I8:
        STORE_LOOP(int8_t, (uint8_t)in[i]);
        break;
    case CAST_I16:
        STORE_LOOP(int16_t, (uint16_t)in[i]);
        break;
    case CAST_I32:
        STORE_LOOP(int32_t, (uint32_t)in[i]);
        break;
    case CAST_I64:
        STORE_LOOP(int64_t, in[i]);
        break;
    case CAST_U8:
        STORE_LOOP(uint8_t, in[i]);
        break;
    case CAST_U16:
        STORE_LOOP(uint16_t, in[i]);
        break;
    case CAST_U32:
        STORE_LOOP(uint32_t, in[i]);
        break;
    case CAST_U64:
        STORE_LOOP(uint64_t, in[i]);
        break;
    case CAST_BOOL:
        STORE_LOOP(uint8_t, in[i] != 0);
        break;
    }
}

typedef struct cast_job {
    const char *src;
    char *dst;
    cast_kind from, to;
    size_t from_size, to_size;
} cast_job;

#define CAST_CHUNK 256

static void cast_range(void *arg, int64_t begin, int64_t end)
{
    const cast_job *job = arg;
    union {
        double f[CAST_CHUNK];
        int64_t i[CAST_CHUNK];
    } buf;
    for (int64_t at = begin; at < end; at += CAST_CHUNK) {
        int64_t n = end - at < CAST_CHUNK ? end - at : CAST_CHUNK;
        const char *src = job->src + at * (int64_t)job->from_size;
        char *dst = job->dst + at * (int64_t)job->to_size;
        if (cast_kind_is_float(job->from)) {
            load_as_double(job->from, src, n, buf.f);
            store_from_double(job->to, buf.f, n, dst);
        } else {
            load_as_int64(job->from, src, n, buf.i);
            store_from_int64(job->to, job->from == CAST_U64, buf.i, n, dst);
        }
    }
}

static plx_status run_cast(cpu_state *st, const plx_op_call *call)
{
    const plx_tensor_desc *x = &call->inputs[0], *y = &call->outputs[0];
    int64_t n = plx_desc_numel(x);
    if (plx_dtype_equal(x->dtype, y->dtype)) {
        parallel_memcpy(st, plx_desc_ptr(y), plx_desc_ptr(x), (size_t)n * elem_size(x));
        return PLX_OK;
    }
    cast_job job = {plx_desc_ptr(x), plx_desc_ptr(y), cast_kind_of(x->dtype), cast_kind_of(y->dtype),
                    elem_size(x), elem_size(y)};
    cpu_parallel_for(st, n, 32768, cast_range, &job);
    return PLX_OK;
}

/* One value converted to `dtype`'s bytes, with cast's rules. */
static void scalar_to_bytes(double value, plx_dtype dtype, unsigned char out[8])
{
    memset(out, 0, 8);
    store_from_double(cast_kind_of(dtype), &value, 1, (char *)out);
}

/* ---- reshape ---------------------------------------------------------------- */

static plx_status run_reshape(cpu_state *st, const plx_op_call *call)
{
    const plx_tensor_desc *x = &call->inputs[0], *y = &call->outputs[0];
    parallel_memcpy(st, plx_desc_ptr(y), plx_desc_ptr(x), (size_t)plx_desc_numel(x) * elem_size(x));
    return PLX_OK;
}

/* ---- permute ---------------------------------------------------------------- */

static plx_status run_permute(cpu_state *st, const plx_op_call *call)
{
    const plx_permute_attrs *attrs = call->attrs;
    const plx_tensor_desc *x = &call->inputs[0], *y = &call->outputs[0];
    int64_t x_strides[PLX_MAX_DIMS];
    compact_strides(x->shape, x->ndim, x_strides);
    strided_view view;
    view.base = plx_desc_ptr(x);
    view.ndim = x->ndim;
    view.elem = elem_size(x);
    for (int32_t d = 0; d < x->ndim; d++) {
        int32_t p = attrs->perm[d] < 0 ? attrs->perm[d] + x->ndim : attrs->perm[d];
        view.dims[d] = x->shape[p];
        view.strides[d] = x_strides[p];
    }
    gather_view(st, view, plx_desc_ptr(y));
    return PLX_OK;
}

/* ---- slice ------------------------------------------------------------------ */

static int64_t slice_start(int64_t v, int64_t dim)
{
    if (v < 0)
        v = v < -dim ? 0 : v + dim;
    return v > dim ? dim : v;
}

static plx_status run_slice(cpu_state *st, const plx_op_call *call)
{
    const plx_slice_attrs *attrs = call->attrs;
    const plx_tensor_desc *x = &call->inputs[0], *y = &call->outputs[0];
    int64_t x_strides[PLX_MAX_DIMS];
    compact_strides(x->shape, x->ndim, x_strides);
    strided_view view;
    view.ndim = x->ndim;
    view.elem = elem_size(x);
    int64_t offset = 0;
    for (int32_t d = 0; d < x->ndim; d++) {
        view.dims[d] = y->shape[d];
        view.strides[d] = x_strides[d];
    }
    for (int32_t k = 0; k < attrs->n_axes; k++) {
        int32_t axis = attrs->axes[k] < 0 ? attrs->axes[k] + x->ndim : attrs->axes[k];
        int64_t step = attrs->steps[k] == 0 ? 1 : attrs->steps[k];
        int64_t start = slice_start(attrs->starts[k], x->shape[axis]);
        if (y->shape[axis] > 0)
            offset += start * x_strides[axis];
        view.strides[axis] = x_strides[axis] * step;
    }
    view.base = (const char *)plx_desc_ptr(x) + offset * (int64_t)view.elem;
    gather_view(st, view, plx_desc_ptr(y));
    return PLX_OK;
}

/* ---- concat ----------------------------------------------------------------- */

typedef struct concat_job {
    const plx_op_call *call;
    const int64_t *chunk_bytes;  /* per input: its bytes in one outer row */
    const int64_t *chunk_offset; /* per input: where they start in an output row */
    int64_t row_bytes;           /* bytes of one output row (all inputs) */
} concat_job;

/* Items are (outer row, input) pairs, so a single huge input still splits
 * when there are several rows. */
static void concat_range(void *arg, int64_t begin, int64_t end)
{
    const concat_job *job = arg;
    const plx_op_call *call = job->call;
    int64_t n = call->n_inputs;
    char *y = plx_desc_ptr(&call->outputs[0]);
    for (int64_t item = begin; item < end; item++) {
        int64_t row = item / n, k = item % n;
        const char *x = plx_desc_ptr(&call->inputs[k]);
        memcpy(y + row * job->row_bytes + job->chunk_offset[k], x + row * job->chunk_bytes[k],
               (size_t)job->chunk_bytes[k]);
    }
}

static plx_status run_concat(cpu_state *st, const plx_op_call *call)
{
    const plx_concat_attrs *attrs = call->attrs;
    const plx_tensor_desc *y = &call->outputs[0];
    int32_t axis = attrs->axis < 0 ? attrs->axis + y->ndim : attrs->axis;
    int64_t outer = 1, inner = 1;
    for (int32_t d = 0; d < axis; d++)
        outer *= y->shape[d];
    for (int32_t d = axis + 1; d < y->ndim; d++)
        inner *= y->shape[d];
    int64_t elem = (int64_t)elem_size(y);
    if (outer == 0 || inner == 0)
        return PLX_OK;
    int64_t *sizes = malloc(sizeof(int64_t) * 2 * (size_t)call->n_inputs);
    if (sizes == NULL)
        return CPU_FAIL(st, PLX_OUT_OF_MEMORY, "no memory for %d input offsets", (int)call->n_inputs);
    concat_job job = {call, sizes, sizes + call->n_inputs, 0};
    for (int32_t k = 0; k < call->n_inputs; k++) {
        sizes[k] = call->inputs[k].shape[axis] * inner * elem;
        sizes[call->n_inputs + k] = job.row_bytes;
        job.row_bytes += sizes[k];
    }
    int64_t items = outer * call->n_inputs;
    int64_t per_item = job.row_bytes / call->n_inputs + 1;
    int64_t grain = 65536 / per_item > 1 ? 65536 / per_item : 1;
    cpu_parallel_for(st, items, grain, concat_range, &job);
    free(sizes);
    return PLX_OK;
}

/* ---- pad -------------------------------------------------------------------- */

/* Source index of output index `i` (already shifted by -before) along a dim
 * of size n, or -1 if it falls into constant padding. */
static int64_t pad_source(int64_t i, int64_t n, int32_t mode)
{
    if (i >= 0 && i < n)
        return i;
    switch (mode) {
    case PLX_PAD_REFLECT:
        return i < 0 ? -i : 2 * (n - 1) - i;
    case PLX_PAD_REPLICATE:
        return i < 0 ? 0 : n - 1;
    default:
        return -1;
    }
}

typedef struct pad_job {
    const plx_pad_attrs *attrs;
    const plx_tensor_desc *x, *y;
    size_t elem;
    unsigned char value[8];
    int64_t x_strides[PLX_MAX_DIMS];
} pad_job;

static void pad_rows(void *arg, int64_t begin, int64_t end)
{
    const pad_job *job = arg;
    const plx_tensor_desc *x = job->x, *y = job->y;
    const plx_pad_attrs *attrs = job->attrs;
    int32_t last = y->ndim - 1;
    size_t elem = job->elem;
    int64_t len = y->shape[last], x_len = x->shape[last];
    int64_t before = attrs->before[last];
    const char *x_base = plx_desc_ptr(x);
    for (int64_t row = begin; row < end; row++) {
        char *out = (char *)plx_desc_ptr(y) + (size_t)(row * len) * elem;
        int64_t src_off = 0, rest = row;
        bool padded = false;
        for (int32_t d = last - 1; d >= 0; d--) {
            int64_t i = rest % y->shape[d];
            rest /= y->shape[d];
            int64_t s = pad_source(i - attrs->before[d], x->shape[d], attrs->mode);
            if (s < 0) {
                padded = true;
                break;
            }
            src_off += s * job->x_strides[d];
        }
        if (padded || x_len == 0) {
            fill_elements(out, len, job->value, elem);
            continue;
        }
        const char *in = x_base + (size_t)src_off * elem;
        for (int64_t j = 0; j < before; j++) {
            int64_t s = pad_source(j - before, x_len, attrs->mode);
            if (s < 0)
                memcpy(out + (size_t)j * elem, job->value, elem);
            else
                memcpy(out + (size_t)j * elem, in + (size_t)s * elem, elem);
        }
        memcpy(out + (size_t)before * elem, in, (size_t)x_len * elem);
        for (int64_t j = before + x_len; j < len; j++) {
            int64_t s = pad_source(j - before, x_len, attrs->mode);
            if (s < 0)
                memcpy(out + (size_t)j * elem, job->value, elem);
            else
                memcpy(out + (size_t)j * elem, in + (size_t)s * elem, elem);
        }
    }
}

static plx_status run_pad(cpu_state *st, const plx_op_call *call)
{
    const plx_pad_attrs *attrs = call->attrs;
    const plx_tensor_desc *x = &call->inputs[0], *y = &call->outputs[0];
    size_t elem = elem_size(x);
    if (y->ndim == 0) {
        memcpy(plx_desc_ptr(y), plx_desc_ptr(x), elem);
        return PLX_OK;
    }
    int64_t numel = plx_desc_numel(y);
    if (numel == 0)
        return PLX_OK;
    pad_job job = {.attrs = attrs, .x = x, .y = y, .elem = elem};
    scalar_to_bytes((double)attrs->value, x->dtype, job.value);
    compact_strides(x->shape, x->ndim, job.x_strides);
    int64_t len = y->shape[y->ndim - 1];
    int64_t rows = numel / len;
    int64_t grain = 32768 / len > 1 ? 32768 / len : 1;
    cpu_parallel_for(st, rows, grain, pad_rows, &job);
    return PLX_OK;
}

/* ---- fill ------------------------------------------------------------------- */

typedef struct fill_job {
    char *dst;
    size_t elem;
    unsigned char value[8];
} fill_job;

static void fill_range(void *arg, int64_t begin, int64_t end)
{
    const fill_job *job = arg;
    fill_elements(job->dst + (size_t)begin * job->elem, end - begin, job->value, job->elem);
}

static plx_status run_fill(cpu_state *st, const plx_op_call *call)
{
    const plx_fill_attrs *attrs = call->attrs;
    const plx_tensor_desc *y = &call->outputs[0];
    fill_job job = {.dst = plx_desc_ptr(y), .elem = elem_size(y)};
    scalar_to_bytes(attrs->value, y->dtype, job.value);
    cpu_parallel_for(st, plx_desc_numel(y), 65536, fill_range, &job);
    return PLX_OK;
}

CPU_FAMILY_TABLE(layout,
                 {PLX_OP_COPY, run_copy, supports_any_dtype},
                 {PLX_OP_CAST, run_cast, supports_any_dtype},
                 {PLX_OP_RESHAPE, run_reshape, supports_any_dtype},
                 {PLX_OP_PERMUTE, run_permute, supports_any_dtype},
                 {PLX_OP_CONCAT, run_concat, supports_any_dtype},
                 {PLX_OP_SLICE, run_slice, supports_any_dtype},
                 {PLX_OP_PAD, run_pad, supports_any_dtype},
                 {PLX_OP_FILL, run_fill, supports_any_dtype});

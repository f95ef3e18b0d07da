/*
 * cpu_blas kernels of the pool family, NCHW. Every (image, channel) plane is
 * independent, so planes are the unit of parallel work.
 *
 * Window rules follow PyTorch's CPU kernels so results match bit for bit
 * where the arithmetic allows: max pooling keeps the first maximum of a
 * window in row-major tap order (a NaN always wins), and its backward routes
 * the gradient to that tap; avg pooling's window is clipped to the padded
 * input and its divisor counts padding or not (count_include_pad).
 */
/* The window maxima are selects over loaded values (x > m ? x : m), which
 * gcc turns into branch-free vector code only without trapping math; no
 * caller reads the FP exception flags, and results are unchanged. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=cheap", "no-trapping-math", "fp-contract=off")
#endif

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_blas.h"

/* Elements touched per parallel chunk. */
#define PLANE_GRAIN_ELEMS ((int64_t)1 << 15)

typedef struct pool_geom {
    int64_t planes; /* N * C */
    int64_t h, w, p, q;
    int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
    bool count_include_pad;
} pool_geom;

static void geom_init(pool_geom *g, const plx_pool2d_attrs *a, bool is_max, const plx_tensor_desc *x,
                      const plx_tensor_desc *y)
{
    g->planes = x->shape[0] * x->shape[1];
    g->h = x->shape[2];
    g->w = x->shape[3];
    g->p = y->shape[2];
    g->q = y->shape[3];
    g->kernel_h = a->kernel[0];
    g->kernel_w = a->kernel[1];
    g->stride_h = a->stride[0] != 0 ? a->stride[0] : a->kernel[0];
    g->stride_w = a->stride[1] != 0 ? a->stride[1] : a->kernel[1];
    g->pad_h = a->padding[0];
    g->pad_w = a->padding[1];
    g->dil_h = is_max ? a->dilation[0] : 1;
    g->dil_w = is_max ? a->dilation[1] : 1;
    g->count_include_pad = a->count_include_pad != 0;
}

static int64_t grain_for(int64_t per_plane)
{
    int64_t grain = PLANE_GRAIN_ELEMS / (per_plane > 0 ? per_plane : 1);
    return grain > 0 ? grain : 1;
}

/* Output positions [*lo, *hi) whose input index o * stride + offset lies in
 * [0, in_len). */
static void valid_range(int64_t out_len, int64_t in_len, int64_t stride, int64_t offset, int64_t *lo, int64_t *hi)
{
    int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int64_t last = in_len - 1 - offset < 0 ? 0 : (in_len - 1 - offset) / stride + 1;
    if (last > out_len)
        last = out_len;
    if (first > last)
        first = last;
    *lo = first;
    *hi = last;
}

typedef struct pool_job {
    const pool_geom *g;
    const float *x, *dy;
    float *y, *dx;
    atomic_int failed; /* a chunk could not get its scratch buffer */
} pool_job;

/* ---- max pooling ------------------------------------------------------------
 * Loops run tap by tap over whole rows of outputs ((r, c) outer, outputs
 * inner), which keeps the inner loops branch-free; every output still sees
 * its window's taps in row-major order, so "first maximum" is preserved. */

/* One tap of a running window maximum: a NaN always wins, and among equal
 * values the earlier tap stays (PyTorch). Two selects, so loops over it
 * vectorize. */
static inline float max_tap(float best, float v)
{
    const float m = v > best ? v : best;
    return v != v ? v : m;
}

/* best[o] = max_tap(best[o], x[o * stride]) for o < n. The usual strides
 * get loops of their own: with a constant stride gcc vectorizes the loads. */
static inline void max_tap_row(float *restrict best, const float *restrict x, int64_t stride, int64_t n)
{
    if (stride == 1) {
        for (int64_t o = 0; o < n; o++)
            best[o] = max_tap(best[o], x[o]);
    } else if (stride == 2) {
        for (int64_t o = 0; o < n; o++)
            best[o] = max_tap(best[o], x[2 * o]);
    } else {
        for (int64_t o = 0; o < n; o++)
            best[o] = max_tap(best[o], x[o * stride]);
    }
}

/* Window maxima of one plane into `best`; with `index` (else NULL), also
 * each one's position in the plane as PyTorch picks it (first maximum,
 * last NaN, the first tap when all are -inf), -1 for a window wholly in
 * the padding. */
static void max_pool_plane(const pool_geom *g, const float *xp, float *best, int64_t *index)
{
    int64_t outputs = g->p * g->q;
    for (int64_t i = 0; i < outputs; i++)
        best[i] = -INFINITY;
    if (index != NULL)
        for (int64_t i = 0; i < outputs; i++)
            index[i] = -1;
    for (int64_t r = 0; r < g->kernel_h; r++) {
        int64_t off_h = r * g->dil_h - g->pad_h, p_lo, p_hi;
        valid_range(g->p, g->h, g->stride_h, off_h, &p_lo, &p_hi);
        for (int64_t c = 0; c < g->kernel_w; c++) {
            int64_t off_w = c * g->dil_w - g->pad_w, q_lo, q_hi;
            valid_range(g->q, g->w, g->stride_w, off_w, &q_lo, &q_hi);
            for (int64_t oh = p_lo; oh < p_hi; oh++) {
                int64_t ih = oh * g->stride_h + off_h;
                const float *xrow = xp + ih * g->w;
                float *brow = best + oh * g->q;
                if (index == NULL) {
                    if (q_hi > q_lo)
                        max_tap_row(brow + q_lo, xrow + q_lo * g->stride_w + off_w, g->stride_w, q_hi - q_lo);
                    continue;
                }
                int64_t *irow = index + oh * g->q;
                for (int64_t ow = q_lo; ow < q_hi; ow++) {
                    int64_t iw = ow * g->stride_w + off_w;
                    float v = xrow[iw];
                    if (v > brow[ow] || v != v || irow[ow] < 0) {
                        /* A -inf first tap only claims the index. */
                        if (v > brow[ow] || v != v)
                            brow[ow] = v;
                        irow[ow] = ih * g->w + iw;
                    }
                }
            }
        }
    }
}

/* Disjoint windows wholly inside the input (stride = kernel, no padding or
 * dilation: the usual 2x2/2 pooling): each output's window is scanned
 * directly, with the same tap order and NaN rule as max_pool_plane. */
static bool windows_disjoint_inside(const pool_geom *g)
{
    return g->stride_h == g->kernel_h && g->stride_w == g->kernel_w && g->pad_h == 0 && g->pad_w == 0 &&
           g->dil_h == 1 && g->dil_w == 1 && g->p * g->kernel_h <= g->h && g->q * g->kernel_w <= g->w;
}

/* ---- 2x2 windows, stride 2 ------------------------------------------------
 * The usual pooling of CNNs, on small images: an output row is often only 7
 * or 14 wide. A vector loop over such a row would leave most of it to a
 * scalar remainder loop (all of it at 16 lanes), and the backward's
 * remainder would branch on the data. So a row goes in groups of
 * POOL_GROUP outputs, each a fixed-count loop that gcc turns into straight
 * vector code, and a last partial group is redone as the full group ending
 * at the row's end: outputs are pure functions of the inputs, so computing
 * a few twice changes nothing. Only rows narrower than a group run scalar.
 * Vectors of 4 lanes fit these rows best, so these loops are not built per
 * CPU (CPU_MULTIVERSION): wider clones measured slower. */

enum { POOL_GROUP = 4 };

/* Window maxima of outputs [o, o + count) of rows x0, x1. */
static inline void max_pool_2x2_outputs(float *restrict y, const float *restrict x0, const float *restrict x1,
                                        int64_t o, int64_t count)
{
    for (int64_t k = o; k < o + count; k++)
        y[k] = max_tap(max_tap(max_tap(x0[2 * k], x0[2 * k + 1]), x1[2 * k]), x1[2 * k + 1]);
}

static void max_pool_2x2_plane(const pool_geom *g, const float *xp, float *yp)
{
    const int64_t n = g->q;
    for (int64_t oh = 0; oh < g->p; oh++) {
        const float *x0 = xp + 2 * oh * g->w, *x1 = x0 + g->w;
        float *y = yp + oh * n;
        if (n < POOL_GROUP) {
            max_pool_2x2_outputs(y, x0, x1, 0, n);
            continue;
        }
        int64_t o = 0;
        for (; o + POOL_GROUP <= n; o += POOL_GROUP)
            max_pool_2x2_outputs(y, x0, x1, o, POOL_GROUP);
        if (o < n)
            max_pool_2x2_outputs(y, x0, x1, n - POOL_GROUP, POOL_GROUP);
    }
}

static void max_pool_range(void *arg, int64_t begin, int64_t end)
{
    pool_job *j = arg;
    const pool_geom *g = j->g;
    const bool two_by_two = windows_disjoint_inside(g) && g->kernel_h == 2 && g->kernel_w == 2;
    for (int64_t plane = begin; plane < end; plane++) {
        const float *xp = j->x + plane * g->h * g->w;
        float *yp = j->y + plane * g->p * g->q;
        if (two_by_two)
            max_pool_2x2_plane(g, xp, yp);
        else
            max_pool_plane(g, xp, yp, NULL);
    }
}

/* Outputs [o, o + count) of rows x0, x1: dy goes to the first maximum of
 * each window in tap order (a later NaN takes it over), 0 to its other
 * three taps. Stored as 0 + dy, the value the general path's scatter-add
 * onto zeros gives (-0 becomes +0). gcc if-converts the ifs. */
static inline void max_unpool_2x2_outputs(float *restrict dx0, float *restrict dx1, const float *restrict x0,
                                          const float *restrict x1, const float *restrict dy, int64_t o, int64_t count)
{
    for (int64_t k = o; k < o + count; k++) {
        const float a = x0[2 * k], b = x0[2 * k + 1], c = x1[2 * k], d = x1[2 * k + 1];
        const float grad = 0.0f + dy[k];
        float best = a, ga = grad, gb = 0.0f, gc = 0.0f, gd = 0.0f;
        if ((b > best) | (b != b)) {
            best = b;
            gb = grad;
            ga = 0.0f;
        }
        if ((c > best) | (c != c)) {
            best = c;
            gc = grad;
            ga = 0.0f;
            gb = 0.0f;
        }
        if ((d > best) | (d != d)) {
            gd = grad;
            ga = 0.0f;
            gb = 0.0f;
            gc = 0.0f;
        }
        dx0[2 * k] = ga;
        dx0[2 * k + 1] = gb;
        dx1[2 * k] = gc;
        dx1[2 * k + 1] = gd;
    }
}

static void max_pool_backward_2x2(const pool_geom *g, const float *xp, const float *dyp, float *dxp)
{
    const int64_t w = g->w, n = g->q;
    for (int64_t oh = 0; oh < g->p; oh++) {
        const float *x0 = xp + 2 * oh * w, *x1 = x0 + w, *dy = dyp + oh * n;
        float *dx0 = dxp + 2 * oh * w, *dx1 = dx0 + w;
        if (n < POOL_GROUP) {
            max_unpool_2x2_outputs(dx0, dx1, x0, x1, dy, 0, n);
        } else {
            int64_t o = 0;
            for (; o + POOL_GROUP <= n; o += POOL_GROUP)
                max_unpool_2x2_outputs(dx0, dx1, x0, x1, dy, o, POOL_GROUP);
            if (o < n)
                max_unpool_2x2_outputs(dx0, dx1, x0, x1, dy, n - POOL_GROUP, POOL_GROUP);
        }
        if (2 * n < w) { /* an odd last column is in no window */
            dx0[2 * n] = 0.0f;
            dx1[2 * n] = 0.0f;
        }
    }
    if (2 * g->p < g->h) /* nor is an odd last row */
        memset(dxp + 2 * g->p * w, 0, (size_t)((g->h - 2 * g->p) * w) * sizeof(float));
}

static void max_pool_backward_disjoint(const pool_geom *g, const float *xp, const float *dyp, float *dxp)
{
    memset(dxp, 0, (size_t)(g->h * g->w) * sizeof(float));
    for (int64_t oh = 0; oh < g->p; oh++)
        for (int64_t ow = 0; ow < g->q; ow++) {
            const float *win = xp + oh * g->kernel_h * g->w + ow * g->kernel_w;
            float best = win[0];
            int64_t at = 0;
            for (int64_t r = 0; r < g->kernel_h; r++)
                for (int64_t c = 0; c < g->kernel_w; c++) {
                    const float v = win[r * g->w + c];
                    const bool take = (v > best) | (v != v);
                    best = take ? v : best;
                    at = take ? r * g->w + c : at;
                }
            dxp[oh * g->kernel_h * g->w + ow * g->kernel_w + at] += dyp[oh * g->q + ow];
        }
}

static void max_pool_backward_range(void *arg, int64_t begin, int64_t end)
{
    pool_job *j = arg;
    const pool_geom *g = j->g;
    int64_t outputs = g->p * g->q;
    if (windows_disjoint_inside(g)) {
        const bool two_by_two = g->kernel_h == 2 && g->kernel_w == 2;
        for (int64_t plane = begin; plane < end; plane++) {
            const float *xp = j->x + plane * g->h * g->w, *dyp = j->dy + plane * outputs;
            float *dxp = j->dx + plane * g->h * g->w;
            if (two_by_two)
                max_pool_backward_2x2(g, xp, dyp, dxp);
            else
                max_pool_backward_disjoint(g, xp, dyp, dxp);
        }
        return;
    }
    int64_t *index = malloc((size_t)outputs * (sizeof(int64_t) + sizeof(float)));
    if (index == NULL) {
        atomic_store(&j->failed, 1);
        return;
    }
    float *best = (float *)(void *)(index + outputs);
    for (int64_t plane = begin; plane < end; plane++) {
        const float *dyp = j->dy + plane * outputs;
        float *dxp = j->dx + plane * g->h * g->w;
        max_pool_plane(g, j->x + plane * g->h * g->w, best, index);
        memset(dxp, 0, (size_t)(g->h * g->w) * sizeof(float));
        for (int64_t i = 0; i < outputs; i++)
            if (index[i] >= 0)
                dxp[index[i]] += dyp[i];
    }
    free(index);
}

/* ---- average pooling ---------------------------------------------------------- */

/* Window of output position o along one axis: the divisor's share (the
 * window clipped to the padded input, or to the input when padding does not
 * count). */
static int64_t avg_count(int64_t o, int64_t stride, int64_t pad, int64_t kernel, int64_t in_len,
                         bool count_include_pad)
{
    int64_t start = o * stride - pad;
    int64_t stop = start + kernel < in_len + pad ? start + kernel : in_len + pad;
    if (count_include_pad)
        return stop - start;
    return (stop < in_len ? stop : in_len) - (start > 0 ? start : 0);
}

/* dst = src / its window's divisor, for every output of a plane. */
static void apply_divisors(const pool_geom *g, const float *src, float *dst)
{
    for (int64_t oh = 0; oh < g->p; oh++) {
        int64_t count_h = avg_count(oh, g->stride_h, g->pad_h, g->kernel_h, g->h, g->count_include_pad);
        for (int64_t ow = 0; ow < g->q; ow++) {
            int64_t count_w = avg_count(ow, g->stride_w, g->pad_w, g->kernel_w, g->w, g->count_include_pad);
            dst[oh * g->q + ow] = src[oh * g->q + ow] / (float)(count_h * count_w);
        }
    }
}

static void avg_pool_range(void *arg, int64_t begin, int64_t end)
{
    pool_job *j = arg;
    const pool_geom *g = j->g;
    for (int64_t plane = begin; plane < end; plane++) {
        const float *xp = j->x + plane * g->h * g->w;
        float *yp = j->y + plane * g->p * g->q;
        memset(yp, 0, (size_t)(g->p * g->q) * sizeof(float));
        for (int64_t r = 0; r < g->kernel_h; r++) {
            int64_t off_h = r - g->pad_h, p_lo, p_hi;
            valid_range(g->p, g->h, g->stride_h, off_h, &p_lo, &p_hi);
            for (int64_t c = 0; c < g->kernel_w; c++) {
                int64_t off_w = c - g->pad_w, q_lo, q_hi;
                valid_range(g->q, g->w, g->stride_w, off_w, &q_lo, &q_hi);
                for (int64_t oh = p_lo; oh < p_hi; oh++) {
                    const float *xrow = xp + (oh * g->stride_h + off_h) * g->w;
                    float *yrow = yp + oh * g->q;
                    for (int64_t ow = q_lo; ow < q_hi; ow++)
                        yrow[ow] += xrow[ow * g->stride_w + off_w];
                }
            }
        }
        apply_divisors(g, yp, yp);
    }
}

static void avg_pool_backward_range(void *arg, int64_t begin, int64_t end)
{
    pool_job *j = arg;
    const pool_geom *g = j->g;
    float *share = malloc((size_t)(g->p * g->q) * sizeof(float));
    if (share == NULL) {
        atomic_store(&j->failed, 1);
        return;
    }
    for (int64_t plane = begin; plane < end; plane++) {
        float *dxp = j->dx + plane * g->h * g->w;
        apply_divisors(g, j->dy + plane * g->p * g->q, share);
        memset(dxp, 0, (size_t)(g->h * g->w) * sizeof(float));
        for (int64_t r = 0; r < g->kernel_h; r++) {
            int64_t off_h = r - g->pad_h, p_lo, p_hi;
            valid_range(g->p, g->h, g->stride_h, off_h, &p_lo, &p_hi);
            for (int64_t c = 0; c < g->kernel_w; c++) {
                int64_t off_w = c - g->pad_w, q_lo, q_hi;
                valid_range(g->q, g->w, g->stride_w, off_w, &q_lo, &q_hi);
                for (int64_t oh = p_lo; oh < p_hi; oh++) {
                    float *dxrow = dxp + (oh * g->stride_h + off_h) * g->w;
                    const float *srow = share + oh * g->q;
                    for (int64_t ow = q_lo; ow < q_hi; ow++)
                        dxrow[ow * g->stride_w + off_w] += srow[ow];
                }
            }
        }
    }
    free(share);
}

/* ---- global average pooling --------------------------------------------------- */

typedef struct global_job {
    int64_t hw;
    const float *x, *dy;
    float *y, *dx;
} global_job;

static void global_avg_pool_range(void *arg, int64_t begin, int64_t end)
{
    const global_job *j = arg;
    for (int64_t plane = begin; plane < end; plane++) {
        const float *xp = j->x + plane * j->hw;
        /* Four float partial sums per block, gathered in double, keep the
         * error small for large planes while the inner loop stays simple. */
        double sum = 0.0;
        int64_t i = 0;
        for (; i + 64 <= j->hw; i += 64) {
            float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int64_t k = 0; k < 64; k += 4)
                for (int l = 0; l < 4; l++)
                    part[l] += xp[i + k + l];
            sum += (double)part[0] + (double)part[1] + (double)part[2] + (double)part[3];
        }
        for (; i < j->hw; i++)
            sum += (double)xp[i];
        j->y[plane] = (float)(sum / (double)j->hw);
    }
}

static void global_avg_pool_backward_range(void *arg, int64_t begin, int64_t end)
{
    const global_job *j = arg;
    for (int64_t plane = begin; plane < end; plane++) {
        float share = j->dy[plane] / (float)j->hw;
        float *dxp = j->dx + plane * j->hw;
        for (int64_t i = 0; i < j->hw; i++)
            dxp[i] = share;
    }
}

/* ---- entry points ------------------------------------------------------------ */

static plx_status scratch_status(cpu_state *st, pool_job *j, const char *op, size_t bytes)
{
    if (atomic_load(&j->failed))
        return CPU_FAIL(st, PLX_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes of scratch", op, bytes);
    return PLX_OK;
}

static plx_status run_max_pool2d(cpu_state *st, const plx_op_call *call)
{
    pool_geom g;
    geom_init(&g, call->attrs, true, &call->inputs[0], &call->outputs[0]);
    pool_job j = {&g, cpu_f32(&call->inputs[0]), NULL, cpu_f32(&call->outputs[0]), NULL, 0};
    cpu_parallel_for(st, g.planes, grain_for(g.p * g.q * g.kernel_h * g.kernel_w), max_pool_range, &j);
    return PLX_OK;
}

static plx_status run_max_pool2d_backward(cpu_state *st, const plx_op_call *call)
{
    pool_geom g;
    geom_init(&g, call->attrs, true, &call->inputs[1], &call->inputs[0]);
    pool_job j = {&g, cpu_f32(&call->inputs[1]), cpu_f32(&call->inputs[0]), NULL, cpu_f32(&call->outputs[0]), 0};
    cpu_parallel_for(st, g.planes, grain_for(g.p * g.q * g.kernel_h * g.kernel_w + g.h * g.w),
                     max_pool_backward_range, &j);
    return scratch_status(st, &j, "max_pool2d_backward", (size_t)(g.p * g.q) * (sizeof(float) + sizeof(int64_t)));
}

static plx_status run_avg_pool2d(cpu_state *st, const plx_op_call *call)
{
    pool_geom g;
    geom_init(&g, call->attrs, false, &call->inputs[0], &call->outputs[0]);
    pool_job j = {&g, cpu_f32(&call->inputs[0]), NULL, cpu_f32(&call->outputs[0]), NULL, 0};
    cpu_parallel_for(st, g.planes, grain_for(g.p * g.q * g.kernel_h * g.kernel_w), avg_pool_range, &j);
    return PLX_OK;
}

static plx_status run_avg_pool2d_backward(cpu_state *st, const plx_op_call *call)
{
    pool_geom g;
    geom_init(&g, call->attrs, false, &call->inputs[1], &call->inputs[0]);
    pool_job j = {&g, NULL, cpu_f32(&call->inputs[0]), NULL, cpu_f32(&call->outputs[0]), 0};
    cpu_parallel_for(st, g.planes, grain_for(g.p * g.q * g.kernel_h * g.kernel_w + g.h * g.w),
                     avg_pool_backward_range, &j);
    return scratch_status(st, &j, "avg_pool2d_backward", (size_t)(g.p * g.q) * sizeof(float));
}

static plx_status run_global_avg_pool2d(cpu_state *st, const plx_op_call *call)
{
    const plx_tensor_desc *x = &call->inputs[0];
    global_job j = {x->shape[2] * x->shape[3], cpu_f32(x), NULL, cpu_f32(&call->outputs[0]), NULL};
    cpu_parallel_for(st, x->shape[0] * x->shape[1], grain_for(j.hw), global_avg_pool_range, &j);
    return PLX_OK;
}

static plx_status run_global_avg_pool2d_backward(cpu_state *st, const plx_op_call *call)
{
    const plx_tensor_desc *x = &call->inputs[1];
    global_job j = {x->shape[2] * x->shape[3], NULL, cpu_f32(&call->inputs[0]), NULL, cpu_f32(&call->outputs[0])};
    cpu_parallel_for(st, x->shape[0] * x->shape[1], grain_for(j.hw), global_avg_pool_backward_range, &j);
    return PLX_OK;
}

CPU_FAMILY_TABLE(pool, {PLX_OP_MAX_POOL2D, run_max_pool2d, NULL},
                 {PLX_OP_MAX_POOL2D_BACKWARD, run_max_pool2d_backward, NULL},
                 {PLX_OP_AVG_POOL2D, run_avg_pool2d, NULL},
                 {PLX_OP_AVG_POOL2D_BACKWARD, run_avg_pool2d_backward, NULL},
                 {PLX_OP_GLOBAL_AVG_POOL2D, run_global_avg_pool2d, NULL},
                 {PLX_OP_GLOBAL_AVG_POOL2D_BACKWARD, run_global_avg_pool2d_backward, NULL});

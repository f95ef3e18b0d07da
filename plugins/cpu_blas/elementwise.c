/*
 * cpu_blas kernels of the elementwise family: unary ops and their gradients,
 * broadcasting arithmetic, comparisons and where.
 *
 * Unary kernels are flat loops over compact memory. Broadcasting kernels
 * first build a plan: every operand's element strides in the output's dims
 * (0 where it broadcasts), size-1 dims dropped and adjacent dims merged
 * wherever every operand stays linear across them. Same-shape operands thus
 * become one long row, a bias [N] added to [M,N] becomes M rows each read
 * with stride 1, and a per-row scalar [M,1] a stride of 0; the inner loops
 * are specialized for those stride pairs so gcc vectorizes them, and only
 * genuinely N-d broadcasts pay for the index walk between rows.
 */
/* gcc -O2 (gcc 12) only vectorizes loops that need no scalar remainder or
 * alias check, and with trapping math it will not turn a select over
 * computed values (x > 0 ? x : a*x) into branch-free code. These kernels are
 * nothing but such loops, and no caller reads the FP exception flags;
 * results (NaN and infinities included) are unchanged. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=cheap", "no-trapping-math", "fp-contract=off")
#endif

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cpu_blas.h"
#include "vec_math.h"

/* Elements per parallel chunk: cheap ops amortize the pool's overhead over
 * more elements than libm-bound ones. */
enum { GRAIN_CHEAP = 32768, GRAIN_LIBM = 4096 };

/* ---- Unary ops and their gradients ------------------------------------ */

typedef void (*unary_loop_fn)(const float *x, float *y, int64_t n, const void *attrs);
typedef void (*grad_loop_fn)(const float *dy, const float *x, float *dx, int64_t n, const void *attrs);

/* Loops that vectorize are built per CPU (CPU_MULTIVERSION, VEC_ suffix);
 * those around a libm call are not, as the call stays scalar anyway. y may
 * be x (in place): each element is read before it is written. */
#define UNARY_LOOP_(ATTR, name, EXPR)                                                                         \
    ATTR static void name##_forward(const float *x, float *y, int64_t n, const void *attrs)                   \
    {                                                                                                         \
        (void)attrs;                                                                                          \
        for (int64_t i = 0; i < n; i++) {                                                                     \
            const float v = x[i];                                                                             \
            y[i] = (EXPR);                                                                                    \
        }                                                                                                     \
    }
#define UNARY_LOOP(name, EXPR) UNARY_LOOP_(, name, EXPR)
#define VEC_UNARY_LOOP(name, EXPR) UNARY_LOOP_(CPU_MULTIVERSION, name, EXPR)

#define GRAD_LOOP_(ATTR, name, EXPR)                                                                          \
    ATTR static void name##_backward(const float *dy, const float *x, float *dx, int64_t n,                   \
                                     const void *attrs)                                                       \
    {                                                                                                         \
        (void)attrs;                                                                                          \
        for (int64_t i = 0; i < n; i++) {                                                                     \
            const float g = dy[i], v = x[i];                                                                  \
            (void)v;                                                                                          \
            dx[i] = (EXPR);                                                                                   \
        }                                                                                                     \
    }
#define GRAD_LOOP(name, EXPR) GRAD_LOOP_(, name, EXPR)
#define VEC_GRAD_LOOP(name, EXPR) GRAD_LOOP_(CPU_MULTIVERSION, name, EXPR)

/* Loops whose expression needs r = sqrt(v). A loop calling sqrtf stays
 * scalar (its errno branch), so the roots of a block come first, from
 * sqrt_in_place, and the expression then runs as a plain vector loop. */
enum { ROOT_BLOCK = 512 };

#define ROOT_UNARY_LOOP(name, EXPR)                                                                           \
    CPU_MULTIVERSION static void name##_forward(const float *x, float *y, int64_t n, const void *attrs)       \
    {                                                                                                         \
        (void)attrs;                                                                                          \
        float root[ROOT_BLOCK];                                                                               \
        for (int64_t lo = 0; lo < n; lo += ROOT_BLOCK) {                                                      \
            const int64_t m = n - lo < ROOT_BLOCK ? n - lo : ROOT_BLOCK;                                      \
            memcpy(root, x + lo, (size_t)m * sizeof(float));                                                  \
            sqrt_in_place(root, m);                                                                           \
            for (int64_t i = 0; i < m; i++) {                                                                 \
                const float v = x[lo + i], r = root[i];                                                       \
                (void)v;                                                                                      \
                y[lo + i] = (EXPR);                                                                           \
            }                                                                                                 \
        }                                                                                                     \
    }

#define ROOT_GRAD_LOOP(name, EXPR)                                                                            \
    CPU_MULTIVERSION static void name##_backward(const float *dy, const float *x, float *dx, int64_t n,       \
                                                 const void *attrs)                                           \
    {                                                                                                         \
        (void)attrs;                                                                                          \
        float root[ROOT_BLOCK];                                                                               \
        for (int64_t lo = 0; lo < n; lo += ROOT_BLOCK) {                                                      \
            const int64_t m = n - lo < ROOT_BLOCK ? n - lo : ROOT_BLOCK;                                      \
            memcpy(root, x + lo, (size_t)m * sizeof(float));                                                  \
            sqrt_in_place(root, m);                                                                           \
            for (int64_t i = 0; i < m; i++) {                                                                 \
                const float g = dy[lo + i], v = x[lo + i], r = root[i];                                       \
                (void)v;                                                                                      \
                dx[lo + i] = (EXPR);                                                                          \
            }                                                                                                 \
        }                                                                                                     \
    }

/* sign() with PyTorch's sgn(0) = sgn(NaN) = 0, so abs'(0) = 0; two plain
 * selects, which gcc vectorizes (a nested ?: it does not). */
static inline float sign_or_zero(float v)
{
    const float s = v > 0.0f ? 1.0f : 0.0f;
    return v < 0.0f ? -1.0f : s;
}

static inline float sigmoidf(float v)
{
    return 1.0f / (1.0f + expf(-v));
}

VEC_UNARY_LOOP(neg, -v)
VEC_UNARY_LOOP(abs, fabsf(v))
UNARY_LOOP(exp, expf(v))
UNARY_LOOP(log, logf(v))
ROOT_UNARY_LOOP(sqrt, r)
ROOT_UNARY_LOOP(rsqrt, 1.0f / r)
VEC_UNARY_LOOP(square, v * v)
/* Written so that NaN passes through, as torch.relu does. */
VEC_UNARY_LOOP(relu, v < 0.0f ? 0.0f : v)
UNARY_LOOP(sigmoid, sigmoidf(v))
UNARY_LOOP(tanh, tanhf(v))

VEC_GRAD_LOOP(neg, -g)
VEC_GRAD_LOOP(abs, g *sign_or_zero(v))
GRAD_LOOP(exp, g *expf(v))
VEC_GRAD_LOOP(log, g / v)
ROOT_GRAD_LOOP(sqrt, g / (2.0f * r))
ROOT_GRAD_LOOP(rsqrt, -0.5f * g / (v * r))
VEC_GRAD_LOOP(square, 2.0f * v * g)
/* PyTorch's threshold_backward: zero where relu(x) <= 0, so relu'(0) = 0. */
VEC_GRAD_LOOP(relu, v <= 0.0f ? 0.0f : g)

/* The libm value is computed once per element: expf may set errno, so gcc
 * would not merge two sigmoidf calls into one. */
static void sigmoid_backward(const float *dy, const float *x, float *dx, int64_t n, const void *attrs)
{
    (void)attrs;
    for (int64_t i = 0; i < n; i++) {
        const float s = sigmoidf(x[i]);
        dx[i] = dy[i] * s * (1.0f - s);
    }
}

static void tanh_backward(const float *dy, const float *x, float *dx, int64_t n, const void *attrs)
{
    (void)attrs;
    for (int64_t i = 0; i < n; i++) {
        const float t = tanhf(x[i]);
        dx[i] = dy[i] * (1.0f - t * t);
    }
}

CPU_MULTIVERSION static void leaky_relu_forward(const float *x, float *y, int64_t n, const void *attrs)
{
    const float slope = ((const plx_leaky_relu_attrs *)attrs)->negative_slope;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
}

CPU_MULTIVERSION static void leaky_relu_backward(const float *dy, const float *x, float *dx, int64_t n,
                                                 const void *attrs)
{
    const float slope = ((const plx_leaky_relu_attrs *)attrs)->negative_slope;
    for (int64_t i = 0; i < n; i++)
        dx[i] = dy[i] * (x[i] > 0.0f ? 1.0f : slope);
}

static void elu_forward(const float *x, float *y, int64_t n, const void *attrs)
{
    const float alpha = ((const plx_elu_attrs *)attrs)->alpha;
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : alpha * expm1f(x[i]);
}

static void elu_backward(const float *dy, const float *x, float *dx, int64_t n, const void *attrs)
{
    const float alpha = ((const plx_elu_attrs *)attrs)->alpha;
    for (int64_t i = 0; i < n; i++)
        dx[i] = x[i] <= 0.0f ? dy[i] * alpha * expf(x[i]) : dy[i];
}

/* sqrt(2/pi) and the cubic coefficient of the tanh approximation. */
#define GELU_TANH_BETA 0.7978845608028654f
#define GELU_TANH_KAPPA 0.044715f
#define INV_SQRT_2PI 0.3989422804014327f

static void gelu_forward(const float *x, float *y, int64_t n, const void *attrs)
{
    if (((const plx_gelu_attrs *)attrs)->approximate_tanh) {
        for (int64_t i = 0; i < n; i++) {
            const float v = x[i];
            y[i] = 0.5f * v * (1.0f + tanhf(GELU_TANH_BETA * (v + GELU_TANH_KAPPA * v * v * v)));
        }
    } else {
        for (int64_t i = 0; i < n; i++)
            y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
    }
}

static void gelu_backward(const float *dy, const float *x, float *dx, int64_t n, const void *attrs)
{
    if (((const plx_gelu_attrs *)attrs)->approximate_tanh) {
        for (int64_t i = 0; i < n; i++) {
            const float v = x[i];
            const float t = tanhf(GELU_TANH_BETA * (v + GELU_TANH_KAPPA * v * v * v));
            const float d_inner = GELU_TANH_BETA * (1.0f + 3.0f * GELU_TANH_KAPPA * v * v);
            dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * d_inner);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            const float v = x[i];
            const float cdf = 0.5f * (1.0f + erff(v * (float)M_SQRT1_2));
            const float pdf = INV_SQRT_2PI * expf(-0.5f * v * v);
            dx[i] = dy[i] * (cdf + v * pdf);
        }
    }
}

/* Linear above the threshold, as torch.nn.functional.softplus. */
static void softplus_forward(const float *x, float *y, int64_t n, const void *attrs)
{
    const plx_softplus_attrs *a = attrs;
    for (int64_t i = 0; i < n; i++) {
        const float bx = a->beta * x[i];
        y[i] = bx > a->threshold ? x[i] : log1pf(expf(bx)) / a->beta;
    }
}

/* d/dx log1p(exp(bx))/b = sigmoid(bx): the same value as PyTorch's
 * z/(z+1) with z = exp(bx), without overflowing for a large threshold. */
static void softplus_backward(const float *dy, const float *x, float *dx, int64_t n, const void *attrs)
{
    const plx_softplus_attrs *a = attrs;
    for (int64_t i = 0; i < n; i++) {
        const float bx = a->beta * x[i];
        dx[i] = bx > a->threshold ? dy[i] : dy[i] * sigmoidf(bx);
    }
}

/* A missing bound is an infinite one; the comparisons are ordered so that
 * NaN passes through and, with min > max, the result is max (PyTorch). */
static void clamp_bounds(const plx_clamp_attrs *a, float *lo, float *hi)
{
    *lo = a->has_min ? a->min_value : -INFINITY;
    *hi = a->has_max ? a->max_value : INFINITY;
}

CPU_MULTIVERSION static void clamp_forward(const float *x, float *y, int64_t n, const void *attrs)
{
    float lo, hi;
    clamp_bounds(attrs, &lo, &hi);
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i] < lo ? lo : x[i];
        y[i] = v > hi ? hi : v;
    }
}

/* The gradient passes where min <= x <= max, bounds included (PyTorch). */
CPU_MULTIVERSION static void clamp_backward(const float *dy, const float *x, float *dx, int64_t n, const void *attrs)
{
    float lo, hi;
    clamp_bounds(attrs, &lo, &hi);
    for (int64_t i = 0; i < n; i++) {
        const float g = dy[i], v = x[i];
        dx[i] = ((v >= lo) & (v <= hi)) ? g : 0.0f;
    }
}

typedef struct unary_entry {
    int32_t op_id; /* forward op */
    unary_loop_fn forward;
    grad_loop_fn backward;
    int64_t grain;
} unary_entry;

/* In catalog order: index = forward op id - PLX_OP_NEG. */
static const unary_entry unary_table[] = {
    {PLX_OP_NEG, neg_forward, neg_backward, GRAIN_CHEAP},
    {PLX_OP_ABS, abs_forward, abs_backward, GRAIN_CHEAP},
    {PLX_OP_EXP, exp_forward, exp_backward, GRAIN_LIBM},
    {PLX_OP_LOG, log_forward, log_backward, GRAIN_LIBM},
    {PLX_OP_SQRT, sqrt_forward, sqrt_backward, GRAIN_CHEAP},
    {PLX_OP_RSQRT, rsqrt_forward, rsqrt_backward, GRAIN_CHEAP},
    {PLX_OP_SQUARE, square_forward, square_backward, GRAIN_CHEAP},
    {PLX_OP_RELU, relu_forward, relu_backward, GRAIN_CHEAP},
    {PLX_OP_LEAKY_RELU, leaky_relu_forward, leaky_relu_backward, GRAIN_CHEAP},
    {PLX_OP_ELU, elu_forward, elu_backward, GRAIN_LIBM},
    {PLX_OP_GELU, gelu_forward, gelu_backward, GRAIN_LIBM},
    {PLX_OP_SIGMOID, sigmoid_forward, sigmoid_backward, GRAIN_LIBM},
    {PLX_OP_TANH, tanh_forward, tanh_backward, GRAIN_LIBM},
    {PLX_OP_SOFTPLUS, softplus_forward, softplus_backward, GRAIN_LIBM},
    {PLX_OP_CLAMP, clamp_forward, clamp_backward, GRAIN_CHEAP},
};

static const unary_entry *unary_lookup(int32_t op_id)
{
    int32_t forward = op_id >= PLX_OP_NEG_GRAD ? op_id - PLX_OP_NEG_GRAD + PLX_OP_NEG : op_id;
    size_t index = (size_t)(forward - PLX_OP_NEG);
    if (forward < PLX_OP_NEG || index >= sizeof(unary_table) / sizeof(unary_table[0]) ||
        unary_table[index].op_id != forward)
        return NULL;
    return &unary_table[index];
}

typedef struct unary_job {
    const unary_entry *entry;
    bool is_grad;
    const float *dy; /* gradients only */
    const float *x;
    float *y;
    const void *attrs;
} unary_job;

static void unary_range(void *arg, int64_t begin, int64_t end)
{
    const unary_job *job = arg;
    if (job->is_grad)
        job->entry->backward(job->dy + begin, job->x + begin, job->y + begin, end - begin, job->attrs);
    else
        job->entry->forward(job->x + begin, job->y + begin, end - begin, job->attrs);
}

static plx_status run_unary(cpu_state *st, const plx_op_call *call)
{
    const unary_entry *entry = unary_lookup(call->op_id);
    if (entry == NULL)
        return CPU_FAIL(st, PLX_INTERNAL, "%s is not a unary elementwise op", call->op_name);
    const bool is_grad = call->op_id >= PLX_OP_NEG_GRAD;
    unary_job job = {
        .entry = entry,
        .is_grad = is_grad,
        .dy = is_grad ? cpu_f32(&call->inputs[0]) : NULL,
        .x = cpu_f32(&call->inputs[is_grad ? 1 : 0]),
        .y = cpu_f32(&call->outputs[0]),
        .attrs = call->attrs,
    };
    cpu_parallel_for(st, plx_desc_numel(&call->outputs[0]), entry->grain, unary_range, &job);
    return PLX_OK;
}

/* ---- Broadcasting ------------------------------------------------------ */

enum { BCAST_MAX_OPERANDS = 4 }; /* the output, then up to three inputs */

typedef struct bcast_plan {
    int32_t ndim; /* >= 1 after simplification */
    int32_t n_operands;
    int64_t shape[PLX_MAX_DIMS];
    int64_t strides[BCAST_MAX_OPERANDS][PLX_MAX_DIMS]; /* elements */
} bcast_plan;

/* The output is compact, so after dropping its size-1 dims the last dim
 * has stride 1 for the output and 0 or 1 for every input. */
static void bcast_plan_make(bcast_plan *plan, const plx_tensor_desc *out, const plx_tensor_desc *inputs,
                            int32_t n_inputs)
{
    const int32_t nd = out->ndim;
    int64_t full[BCAST_MAX_OPERANDS][PLX_MAX_DIMS];
    int64_t step = 1;
    for (int32_t d = nd - 1; d >= 0; d--) {
        full[0][d] = step;
        step *= out->shape[d];
    }
    for (int32_t k = 0; k < n_inputs; k++) {
        const plx_tensor_desc *in = &inputs[k];
        const int32_t lead = nd - in->ndim;
        int64_t in_step = 1;
        for (int32_t d = nd - 1; d >= 0; d--) {
            const int32_t id = d - lead;
            if (id < 0 || in->shape[id] == 1) {
                full[k + 1][d] = 0;
            } else {
                full[k + 1][d] = in_step;
                in_step *= in->shape[id];
            }
        }
    }

    plan->n_operands = n_inputs + 1;
    plan->ndim = 0;
    for (int32_t d = 0; d < nd; d++) {
        if (out->shape[d] == 1)
            continue;
        const int32_t last = plan->ndim - 1;
        bool merge = last >= 0;
        for (int32_t o = 0; merge && o < plan->n_operands; o++)
            merge = plan->strides[o][last] == full[o][d] * out->shape[d];
        if (merge) {
            plan->shape[last] *= out->shape[d];
            for (int32_t o = 0; o < plan->n_operands; o++)
                plan->strides[o][last] = full[o][d];
        } else {
            plan->shape[plan->ndim] = out->shape[d];
            for (int32_t o = 0; o < plan->n_operands; o++)
                plan->strides[o][plan->ndim] = full[o][d];
            plan->ndim++;
        }
    }
    if (plan->ndim == 0) {
        plan->ndim = 1;
        plan->shape[0] = 1;
        for (int32_t o = 0; o < plan->n_operands; o++)
            plan->strides[o][0] = 1;
    }
}

/* One contiguous output run: y[i] = f(a[i*sa], b[i*sb]) for i < n. */
typedef void (*binary_loop_fn)(const void *a, int64_t sa, const void *b, int64_t sb, void *y, int64_t n);
/* y[i] = c[i*sc] ? a[i*sa] : b[i*sb]. */
typedef void (*where_loop_fn)(const uint8_t *c, int64_t sc, const void *a, int64_t sa, const void *b, int64_t sb,
                              void *y, int64_t n);

typedef struct bcast_job {
    const bcast_plan *plan;
    char *base[BCAST_MAX_OPERANDS];
    size_t elem_size[BCAST_MAX_OPERANDS];
    int64_t chunk;         /* elements of the last dim per work item */
    int64_t chunks_per_row;
    binary_loop_fn binary; /* two inputs */
    where_loop_fn where;   /* three inputs */
} bcast_job;

/* Work item i is chunk (i % chunks_per_row) of row (i / chunks_per_row),
 * rows being the index tuples of every dim but the last. */
static void bcast_range(void *arg, int64_t begin, int64_t end)
{
    const bcast_job *job = arg;
    const bcast_plan *plan = job->plan;
    const int32_t last = plan->ndim - 1;
    const int32_t n_ops = plan->n_operands;
    const int64_t inner = plan->shape[last];

    int64_t idx[PLX_MAX_DIMS] = {0};
    int64_t row = begin / job->chunks_per_row;
    int64_t part = begin % job->chunks_per_row;
    for (int32_t d = last - 1; d >= 0; d--) {
        idx[d] = row % plan->shape[d];
        row /= plan->shape[d];
    }
    char *ptr[BCAST_MAX_OPERANDS];
    int64_t byte_step[BCAST_MAX_OPERANDS][PLX_MAX_DIMS];
    for (int32_t o = 0; o < n_ops; o++) {
        int64_t offset = 0;
        for (int32_t d = 0; d < last; d++) {
            byte_step[o][d] = plan->strides[o][d] * (int64_t)job->elem_size[o];
            offset += idx[d] * byte_step[o][d];
        }
        ptr[o] = job->base[o] + offset;
    }

    for (int64_t item = begin; item < end; item++) {
        const int64_t first = part * job->chunk;
        const int64_t n = inner - first < job->chunk ? inner - first : job->chunk;
        char *p[BCAST_MAX_OPERANDS];
        for (int32_t o = 0; o < n_ops; o++)
            p[o] = ptr[o] + first * plan->strides[o][last] * (int64_t)job->elem_size[o];
        if (n_ops == 3)
            job->binary(p[1], plan->strides[1][last], p[2], plan->strides[2][last], p[0], n);
        else
            job->where((const uint8_t *)p[1], plan->strides[1][last], p[2], plan->strides[2][last], p[3],
                       plan->strides[3][last], p[0], n);
        if (++part < job->chunks_per_row)
            continue;
        part = 0;
        for (int32_t d = last - 1; d >= 0; d--) {
            for (int32_t o = 0; o < n_ops; o++)
                ptr[o] += byte_step[o][d];
            if (++idx[d] < plan->shape[d])
                break;
            for (int32_t o = 0; o < n_ops; o++)
                ptr[o] -= byte_step[o][d] * plan->shape[d];
            idx[d] = 0;
        }
    }
}

/* Runs the job over the output; `grain` is in elements. */
static void bcast_execute(cpu_state *st, const plx_op_call *call, bcast_job *job, int64_t grain)
{
    bcast_plan plan;
    const int64_t total = plx_desc_numel(&call->outputs[0]);
    if (total == 0)
        return;
    bcast_plan_make(&plan, &call->outputs[0], call->inputs, call->n_inputs);
    job->plan = &plan;
    job->base[0] = plx_desc_ptr(&call->outputs[0]);
    job->elem_size[0] = plx_dtype_size(call->outputs[0].dtype);
    for (int32_t k = 0; k < call->n_inputs; k++) {
        job->base[k + 1] = plx_desc_ptr(&call->inputs[k]);
        job->elem_size[k + 1] = plx_dtype_size(call->inputs[k].dtype);
    }
    const int64_t inner = plan.shape[plan.ndim - 1];
    job->chunk = inner < grain ? inner : grain;
    job->chunks_per_row = (inner + job->chunk - 1) / job->chunk;
    const int64_t items = (total / inner) * job->chunks_per_row;
    int64_t item_grain = grain / job->chunk;
    cpu_parallel_for(st, items, item_grain < 1 ? 1 : item_grain, bcast_range, job);
}

/* The four stride cases of a run: both operands streaming, or one of them
 * held fixed (scalar, or a broadcast column); the last is the fallback. */
#define BINARY_LOOP_(ATTR, name, TA, TY, EXPR)                                                                \
    ATTR static void name(const void *a_, int64_t sa, const void *b_, int64_t sb, void *y_, int64_t n)        \
    {                                                                                                         \
        const TA *a = a_;                                                                                     \
        const TA *b = b_;                                                                                     \
        TY *y = y_;                                                                                           \
        if (sa == 1 && sb == 1) {                                                                             \
            for (int64_t i = 0; i < n; i++) {                                                                 \
                const TA va = a[i], vb = b[i];                                                                \
                y[i] = (TY)(EXPR);                                                                            \
            }                                                                                                 \
        } else if (sa == 0 && sb == 1) {                                                                      \
            const TA va = a[0];                                                                               \
            for (int64_t i = 0; i < n; i++) {                                                                 \
                const TA vb = b[i];                                                                           \
                y[i] = (TY)(EXPR);                                                                            \
            }                                                                                                 \
        } else if (sa == 1 && sb == 0) {                                                                      \
            const TA vb = b[0];                                                                               \
            for (int64_t i = 0; i < n; i++) {                                                                 \
                const TA va = a[i];                                                                           \
                y[i] = (TY)(EXPR);                                                                            \
            }                                                                                                 \
        } else {                                                                                              \
            for (int64_t i = 0; i < n; i++) {                                                                 \
                const TA va = a[i * sa], vb = b[i * sb];                                                      \
                y[i] = (TY)(EXPR);                                                                            \
            }                                                                                                 \
        }                                                                                                     \
    }

#define BINARY_LOOP(name, TA, TY, EXPR) BINARY_LOOP_(CPU_MULTIVERSION, name, TA, TY, EXPR)

BINARY_LOOP(add_f32, float, float, va + vb)
BINARY_LOOP(sub_f32, float, float, va - vb)
BINARY_LOOP(mul_f32, float, float, va *vb)
BINARY_LOOP(div_f32, float, float, va / vb)
BINARY_LOOP_(, pow_f32, float, float, powf(va, vb)) /* libm: stays scalar */
/* NaN in either operand gives NaN (torch.maximum/minimum propagate it);
 * written as a chain of selects so that gcc vectorizes it. */
static inline float max_nan(float a, float b)
{
    const float m = a > b ? a : b;
    const float m_a = a != a ? a : m;
    return b != b ? b : m_a;
}

static inline float min_nan(float a, float b)
{
    const float m = a < b ? a : b;
    const float m_a = a != a ? a : m;
    return b != b ? b : m_a;
}

BINARY_LOOP(maximum_f32, float, float, max_nan(va, vb))
BINARY_LOOP(minimum_f32, float, float, min_nan(va, vb))

#define COMPARE_LOOPS(suffix, T)                                                                              \
    BINARY_LOOP(eq_##suffix, T, uint8_t, va == vb)                                                            \
    BINARY_LOOP(ne_##suffix, T, uint8_t, va != vb)                                                            \
    BINARY_LOOP(lt_##suffix, T, uint8_t, va < vb)                                                             \
    BINARY_LOOP(le_##suffix, T, uint8_t, va <= vb)                                                            \
    BINARY_LOOP(gt_##suffix, T, uint8_t, va > vb)                                                             \
    BINARY_LOOP(ge_##suffix, T, uint8_t, va >= vb)

COMPARE_LOOPS(f32, float)
COMPARE_LOOPS(i32, int32_t)
COMPARE_LOOPS(i64, int64_t)
COMPARE_LOOPS(u8, uint8_t)

static binary_loop_fn arith_loop(int32_t op_id)
{
    switch (op_id) {
    case PLX_OP_ADD:
        return add_f32;
    case PLX_OP_SUB:
        return sub_f32;
    case PLX_OP_MUL:
        return mul_f32;
    case PLX_OP_DIV:
        return div_f32;
    case PLX_OP_POW:
        return pow_f32;
    case PLX_OP_MAXIMUM:
        return maximum_f32;
    case PLX_OP_MINIMUM:
        return minimum_f32;
    default:
        return NULL;
    }
}

static plx_status run_arith(cpu_state *st, const plx_op_call *call)
{
    bcast_job job = {.binary = arith_loop(call->op_id)};
    if (job.binary == NULL)
        return CPU_FAIL(st, PLX_INTERNAL, "%s is not a binary arithmetic op", call->op_name);
    bcast_execute(st, call, &job, call->op_id == PLX_OP_POW ? GRAIN_LIBM : GRAIN_CHEAP);
    return PLX_OK;
}

/* Comparison loops by dtype, each in catalog order EQ..GE. */
typedef struct compare_entry {
    plx_dtype dtype;
    binary_loop_fn loops[6];
} compare_entry;

static const compare_entry *compare_lookup(plx_dtype dtype)
{
    static const compare_entry table[] = {
        {PLX_DTYPE_INIT_(PLX_DTYPE_CODE_FLOAT, 32), {eq_f32, ne_f32, lt_f32, le_f32, gt_f32, ge_f32}},
        {PLX_DTYPE_INIT_(PLX_DTYPE_CODE_INT, 32), {eq_i32, ne_i32, lt_i32, le_i32, gt_i32, ge_i32}},
        {PLX_DTYPE_INIT_(PLX_DTYPE_CODE_INT, 64), {eq_i64, ne_i64, lt_i64, le_i64, gt_i64, ge_i64}},
        {PLX_DTYPE_INIT_(PLX_DTYPE_CODE_UINT, 8), {eq_u8, ne_u8, lt_u8, le_u8, gt_u8, ge_u8}},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (plx_dtype_equal(table[i].dtype, dtype))
            return &table[i];
    return NULL;
}

static bool supports_compare(const plx_op_call *call, char *reason, size_t cap)
{
    if (compare_lookup(call->inputs[0].dtype) != NULL)
        return true;
    snprintf(reason, cap, "cpu_blas compares f32, i32, i64 and u8 tensors only");
    return false;
}

static plx_status run_compare(cpu_state *st, const plx_op_call *call)
{
    const compare_entry *entry = compare_lookup(call->inputs[0].dtype);
    if (entry == NULL || call->op_id < PLX_OP_EQ || call->op_id > PLX_OP_GE)
        return CPU_FAIL(st, PLX_UNSUPPORTED, "%s: no comparison kernel for these dtypes", call->op_name);
    bcast_job job = {.binary = entry->loops[call->op_id - PLX_OP_EQ]};
    bcast_execute(st, call, &job, GRAIN_CHEAP);
    return PLX_OK;
}

/* where only moves elements, so one loop per element size serves every
 * dtype; bool conditions are read as "non-zero is true". */
#define WHERE_LOOP(name, T)                                                                                   \
    CPU_MULTIVERSION static void name(const uint8_t *c, int64_t sc, const void *a_, int64_t sa, const void *b_, \
                                      int64_t sb, void *y_, int64_t n)                                        \
    {                                                                                                         \
        const T *a = a_;                                                                                      \
        const T *b = b_;                                                                                      \
        T *y = y_;                                                                                            \
        if (sc == 1 && sa == 1 && sb == 1) {                                                                  \
            for (int64_t i = 0; i < n; i++) {                                                                 \
                const T va = a[i], vb = b[i];                                                                 \
                y[i] = c[i] ? va : vb;                                                                        \
            }                                                                                                 \
        } else {                                                                                              \
            for (int64_t i = 0; i < n; i++)                                                                   \
                y[i] = c[i * sc] ? a[i * sa] : b[i * sb];                                                     \
        }                                                                                                     \
    }

WHERE_LOOP(where_8, uint8_t)
WHERE_LOOP(where_16, uint16_t)
WHERE_LOOP(where_32, uint32_t)
WHERE_LOOP(where_64, uint64_t)

static where_loop_fn where_loop(size_t elem_size)
{
    switch (elem_size) {
    case 1:
        return where_8;
    case 2:
        return where_16;
    case 4:
        return where_32;
    case 8:
        return where_64;
    default:
        return NULL;
    }
}

static bool supports_where(const plx_op_call *call, char *reason, size_t cap)
{
    if (where_loop(plx_dtype_size(call->inputs[1].dtype)) != NULL)
        return true;
    snprintf(reason, cap, "cpu_blas selects elements of 1, 2, 4 or 8 bytes only");
    return false;
}

static plx_status run_where(cpu_state *st, const plx_op_call *call)
{
    bcast_job job = {.where = where_loop(plx_dtype_size(call->inputs[1].dtype))};
    if (job.where == NULL)
        return CPU_FAIL(st, PLX_UNSUPPORTED, "%s: no kernel for elements of this size", call->op_name);
    bcast_execute(st, call, &job, GRAIN_CHEAP);
    return PLX_OK;
}

CPU_FAMILY_TABLE(elementwise,
                 {PLX_OP_NEG, run_unary, NULL},
                 {PLX_OP_ABS, run_unary, NULL},
                 {PLX_OP_EXP, run_unary, NULL},
                 {PLX_OP_LOG, run_unary, NULL},
                 {PLX_OP_SQRT, run_unary, NULL},
                 {PLX_OP_RSQRT, run_unary, NULL},
                 {PLX_OP_SQUARE, run_unary, NULL},
                 {PLX_OP_RELU, run_unary, NULL},
                 {PLX_OP_LEAKY_RELU, run_unary, NULL},
                 {PLX_OP_ELU, run_unary, NULL},
                 {PLX_OP_GELU, run_unary, NULL},
                 {PLX_OP_SIGMOID, run_unary, NULL},
                 {PLX_OP_TANH, run_unary, NULL},
                 {PLX_OP_SOFTPLUS, run_unary, NULL},
                 {PLX_OP_CLAMP, run_unary, NULL},
                 {PLX_OP_NEG_GRAD, run_unary, NULL},
                 {PLX_OP_ABS_GRAD, run_unary, NULL},
                 {PLX_OP_EXP_GRAD, run_unary, NULL},
                 {PLX_OP_LOG_GRAD, run_unary, NULL},
                 {PLX_OP_SQRT_GRAD, run_unary, NULL},
                 {PLX_OP_RSQRT_GRAD, run_unary, NULL},
                 {PLX_OP_SQUARE_GRAD, run_unary, NULL},
                 {PLX_OP_RELU_GRAD, run_unary, NULL},
                 {PLX_OP_LEAKY_RELU_GRAD, run_unary, NULL},
                 {PLX_OP_ELU_GRAD, run_unary, NULL},
                 {PLX_OP_GELU_GRAD, run_unary, NULL},
                 {PLX_OP_SIGMOID_GRAD, run_unary, NULL},
                 {PLX_OP_TANH_GRAD, run_unary, NULL},
                 {PLX_OP_SOFTPLUS_GRAD, run_unary, NULL},
                 {PLX_OP_CLAMP_GRAD, run_unary, NULL},
                 {PLX_OP_ADD, run_arith, NULL},
                 {PLX_OP_SUB, run_arith, NULL},
                 {PLX_OP_MUL, run_arith, NULL},
                 {PLX_OP_DIV, run_arith, NULL},
                 {PLX_OP_POW, run_arith, NULL},
                 {PLX_OP_MAXIMUM, run_arith, NULL},
                 {PLX_OP_MINIMUM, run_arith, NULL},
                 {PLX_OP_EQ, run_compare, supports_compare},
                 {PLX_OP_NE, run_compare, supports_compare},
                 {PLX_OP_LT, run_compare, supports_compare},
                 {PLX_OP_LE, run_compare, supports_compare},
                 {PLX_OP_GT, run_compare, supports_compare},
                 {PLX_OP_GE, run_compare, supports_compare},
                 {PLX_OP_WHERE, run_where, supports_where});

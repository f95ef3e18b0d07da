/* cpu_blas kernels of the loss family, forward and backward, following
 * PyTorch 1.13 (torch.nn.functional losses).
 *
 * Reductions are summed in fixed blocks of ITEM_BLOCK items whose partial
 * sums (double) are added in block order, so a result does not depend on
 * the thread count. Class-index losses check every target before computing
 * anything: an out-of-range target other than ignore_index is an error. */
#include <math.h>
#include <stdlib.h>

#include "cpu_blas.h"
#include "vec_math.h"

#define ITEM_BLOCK 4096
#define ELEM_GRAIN 32768

/* Sums block [begin, end) of per-item losses; also writes them to
 * per_item when it is not NULL (reduction none). */
typedef double (*loss_block_fn)(const void *ctx, int64_t begin, int64_t end, float *per_item);

typedef struct reduce_job {
    loss_block_fn fn;
    const void *ctx;
    int64_t n;
    int64_t block;
    float *per_item;
    double *partials;
} reduce_job;

static void reduce_blocks_range(void *arg, int64_t b0, int64_t b1)
{
    const reduce_job *job = arg;
    for (int64_t b = b0; b < b1; b++) {
        int64_t begin = b * job->block;
        int64_t end = begin + job->block < job->n ? begin + job->block : job->n;
        job->partials[b] = job->fn(job->ctx, begin, end, job->per_item);
    }
}

/* Runs fn over n items in blocks of `block` items (<= ITEM_BLOCK; fixed by
 * the shape, never by the thread count) and writes the loss: per item for
 * reduction none, else sum or sum / mean_count (NaN when mean_count is 0,
 * as PyTorch). A task takes at least `grain_blocks` blocks. */
static plx_status reduce_loss(cpu_state *st, const plx_op_call *call, loss_block_fn fn, const void *ctx, int64_t n,
                              int64_t mean_count, int64_t block, int64_t grain_blocks)
{
    const plx_loss_attrs *a = call->attrs;
    float *out = cpu_f32(&call->outputs[0]);
    int64_t blocks = (n + block - 1) / block;
    double one_partial;
    double *partials = blocks <= 1 ? &one_partial : malloc((size_t)blocks * sizeof(double));
    if (partials == NULL)
        return CPU_FAIL(st, PLX_OUT_OF_MEMORY, "partial sums for %lld items", (long long)n);
    reduce_job job = {fn, ctx, n, block, a->reduction == PLX_REDUCTION_NONE ? out : NULL, partials};
    cpu_parallel_for(st, blocks, grain_blocks, reduce_blocks_range, &job);
    if (a->reduction != PLX_REDUCTION_NONE) {
        double total = 0.0;
        for (int64_t b = 0; b < blocks; b++)
            total += partials[b];
        if (a->reduction == PLX_REDUCTION_MEAN)
            total = mean_count > 0 ? total / (double)mean_count : NAN;
        out[0] = (float)total;
    }
    if (partials != &one_partial)
        free(partials);
    return PLX_OK;
}

/* Gradient weight of item i: dloss is per item for reduction none, else a
 * scalar, divided by the mean's count for reduction mean. */
typedef struct grad_weight {
    const float *dloss;
    bool per_item;
    float scalar;
} grad_weight;

static grad_weight make_grad_weight(const plx_op_call *call, int64_t mean_count)
{
    const plx_loss_attrs *a = call->attrs;
    const float *dloss = cpu_f32(&call->inputs[0]);
    grad_weight w = {dloss, a->reduction == PLX_REDUCTION_NONE, 0.0f};
    if (a->reduction == PLX_REDUCTION_SUM)
        w.scalar = dloss[0];
    else if (a->reduction == PLX_REDUCTION_MEAN)
        w.scalar = mean_count > 0 ? (float)((double)dloss[0] / (double)mean_count) : 0.0f;
    return w;
}

static inline float weight_at(const grad_weight *w, int64_t i)
{
    return w->per_item ? w->dloss[i] : w->scalar;
}

/* ---- cross entropy and NLL ---------------------------------------------- */

/* input [N,C,S...] seen as N x C x S; samples are (n, s), N*S of them. */
typedef struct class_loss_ctx {
    const float *x; /* logits or logp */
    const int64_t *target;
    int64_t classes, spatial;
    int64_t ignore_index;
    float smoothing;
    grad_weight weight; /* backward only */
    float *dx;          /* backward only */
} class_loss_ctx;

/* Checks every target and counts those not ignored. */
static plx_status check_targets(cpu_state *st, const class_loss_ctx *c, int64_t samples, int64_t *counted)
{
    int64_t count = 0;
    for (int64_t i = 0; i < samples; i++) {
        int64_t t = c->target[i];
        if (t == c->ignore_index)
            continue;
        if (t < 0 || t >= c->classes)
            return CPU_FAIL(st, PLX_INVALID_ARGUMENT,
                            "target[%lld] = %lld is out of range for %lld classes (ignore_index is %lld)",
                            (long long)i, (long long)t, (long long)c->classes,
                            (long long)c->ignore_index);
        count++;
    }
    *counted = count;
    return PLX_OK;
}

static plx_status class_loss_setup(cpu_state *st, const plx_op_call *call, int32_t x_index, class_loss_ctx *c,
                                   int64_t *samples, int64_t *counted)
{
    const plx_loss_attrs *a = call->attrs;
    const plx_tensor_desc *x = &call->inputs[x_index];
    *c = (class_loss_ctx){0};
    c->x = cpu_f32(x);
    c->target = (const int64_t *)plx_desc_ptr(&call->inputs[x_index + 1]);
    c->classes = x->shape[1];
    c->spatial = 1;
    for (int32_t i = 2; i < x->ndim; i++)
        c->spatial *= x->shape[i];
    c->ignore_index = a->ignore_index;
    c->smoothing = a->label_smoothing;
    *samples = x->shape[0] * c->spatial;
    return check_targets(st, c, *samples, counted);
}

/* log-sum-exp of the C logits of a sample (stride `spatial`). */
static double sample_logsumexp(const class_loss_ctx *c, const float *x0)
{
    const int64_t stride = c->spatial;
    if (stride == 1) {
        const float m = max_f32(x0, c->classes);
        return (double)m + log(sum_exp_shifted(x0, m, c->classes));
    }
    float m = -INFINITY;
    for (int64_t k = 0; k < c->classes; k++)
        m = x0[k * stride] > m ? x0[k * stride] : m;
    double sum = 0.0;
    for (int64_t k = 0; k < c->classes; k++)
        sum += (double)expf(x0[k * stride] - m);
    return (double)m + log(sum);
}

static double sample_sum(const class_loss_ctx *c, const float *x0)
{
    if (c->spatial == 1)
        return sum_f32(x0, c->classes);
    double sum = 0.0;
    for (int64_t k = 0; k < c->classes; k++)
        sum += (double)x0[k * c->spatial];
    return sum;
}

static const float *sample_base(const class_loss_ctx *c, int64_t i)
{
    int64_t n = i / c->spatial, s = i % c->spatial;
    return c->x + n * c->classes * c->spatial + s;
}

/* PyTorch 1.13: (1 - eps) * nll + eps / C * sum_k(-log p_k); ignored
 * samples add nothing. */
static double cross_entropy_block(const void *arg, int64_t begin, int64_t end, float *per_item)
{
    const class_loss_ctx *c = arg;
    const double eps = (double)c->smoothing, classes = (double)c->classes;
    double total = 0.0;
    for (int64_t i = begin; i < end; i++) {
        double loss = 0.0;
        int64_t t = c->target[i];
        if (t != c->ignore_index) {
            const float *x0 = sample_base(c, i);
            double lse = sample_logsumexp(c, x0);
            loss = lse - (double)x0[t * c->spatial];
            if (eps != 0.0)
                loss = (1.0 - eps) * loss + eps / classes * (classes * lse - sample_sum(c, x0));
        }
        if (per_item != NULL)
            per_item[i] = (float)loss;
        total += loss;
    }
    return total;
}

static double nll_block(const void *arg, int64_t begin, int64_t end, float *per_item)
{
    const class_loss_ctx *c = arg;
    double total = 0.0;
    for (int64_t i = begin; i < end; i++) {
        int64_t t = c->target[i];
        double loss = t != c->ignore_index ? -(double)sample_base(c, i)[t * c->spatial] : 0.0;
        if (per_item != NULL)
            per_item[i] = (float)loss;
        total += loss;
    }
    return total;
}

/* Samples per task (and per reduction block): about ELEM_GRAIN logits. */
static int64_t class_grain(const class_loss_ctx *c)
{
    int64_t g = c->classes >= ELEM_GRAIN ? 1 : ELEM_GRAIN / (c->classes > 0 ? c->classes : 1);
    return g < ITEM_BLOCK ? g : ITEM_BLOCK;
}

/* (logits, target) -> loss */
static plx_status run_cross_entropy(cpu_state *st, const plx_op_call *call)
{
    class_loss_ctx c;
    int64_t samples, counted;
    plx_status status = class_loss_setup(st, call, 0, &c, &samples, &counted);
    if (status != PLX_OK)
        return status;
    return reduce_loss(st, call, cross_entropy_block, &c, samples, counted, class_grain(&c), 1);
}

/* (logp, target) -> loss */
static plx_status run_nll_loss(cpu_state *st, const plx_op_call *call)
{
    class_loss_ctx c;
    int64_t samples, counted;
    plx_status status = class_loss_setup(st, call, 0, &c, &samples, &counted);
    if (status != PLX_OK)
        return status;
    return reduce_loss(st, call, nll_block, &c, samples, counted, ITEM_BLOCK, ELEM_GRAIN / ITEM_BLOCK);
}

/* dlogits_k = w * (softmax_k - eps / C - (1 - eps) * [k == t]) */
static void cross_entropy_backward_range(void *arg, int64_t begin, int64_t end)
{
    const class_loss_ctx *c = arg;
    const int64_t stride = c->spatial;
    const double eps = (double)c->smoothing;
    for (int64_t i = begin; i < end; i++) {
        const float *x0 = sample_base(c, i);
        float *dx0 = c->dx + (x0 - c->x);
        int64_t t = c->target[i];
        if (t == c->ignore_index) {
            for (int64_t k = 0; k < c->classes; k++)
                dx0[k * stride] = 0.0f;
            continue;
        }
        const float w = weight_at(&c->weight, i);
        const float lse = (float)sample_logsumexp(c, x0);
        const float uniform = (float)(eps / (double)c->classes);
        if (stride == 1) {
            exp_shifted(x0, lse, dx0, c->classes);
            int64_t k = 0;
            for (; k + VEC_LANES <= c->classes; k += VEC_LANES)
                for (int j = 0; j < VEC_LANES; j++)
                    dx0[k + j] = w * (dx0[k + j] - uniform);
            for (; k < c->classes; k++)
                dx0[k] = w * (dx0[k] - uniform);
        } else {
            for (int64_t k = 0; k < c->classes; k++)
                dx0[k * stride] = w * (expf(x0[k * stride] - lse) - uniform);
        }
        dx0[t * stride] = (float)((double)dx0[t * stride] - (double)w * (1.0 - eps));
    }
}

/* dlogp = -w at the target, 0 elsewhere */
static void nll_backward_range(void *arg, int64_t begin, int64_t end)
{
    const class_loss_ctx *c = arg;
    const int64_t stride = c->spatial;
    for (int64_t i = begin; i < end; i++) {
        const float *x0 = sample_base(c, i);
        float *dx0 = c->dx + (x0 - c->x);
        for (int64_t k = 0; k < c->classes; k++)
            dx0[k * stride] = 0.0f;
        int64_t t = c->target[i];
        if (t != c->ignore_index)
            dx0[t * stride] = -weight_at(&c->weight, i);
    }
}

static plx_status run_class_loss_backward(cpu_state *st, const plx_op_call *call, plx_range_fn fn)
{
    class_loss_ctx c;
    int64_t samples, counted;
    plx_status status = class_loss_setup(st, call, 1, &c, &samples, &counted);
    if (status != PLX_OK)
        return status;
    c.weight = make_grad_weight(call, counted);
    c.dx = cpu_f32(&call->outputs[0]);
    cpu_parallel_for(st, samples, class_grain(&c), fn, &c);
    return PLX_OK;
}

/* (dloss, logits, target) -> dlogits */
static plx_status run_cross_entropy_backward(cpu_state *st, const plx_op_call *call)
{
    return run_class_loss_backward(st, call, cross_entropy_backward_range);
}

/* (dloss, logp, target) -> dlogp */
static plx_status run_nll_loss_backward(cpu_state *st, const plx_op_call *call)
{
    return run_class_loss_backward(st, call, nll_backward_range);
}

/* ---- elementwise losses: (x, target) ----------------------------------- */

typedef struct pointwise_ctx {
    const float *x;
    const float *target;
    float delta;        /* huber */
    grad_weight weight; /* backward only */
    float *dx;          /* backward only */
} pointwise_ctx;

static pointwise_ctx pointwise_setup(const plx_op_call *call, int32_t x_index)
{
    const plx_loss_attrs *a = call->attrs;
    pointwise_ctx c = {cpu_f32(&call->inputs[x_index]), cpu_f32(&call->inputs[x_index + 1]), a->delta,
                       {NULL, false, 0.0f}, NULL};
    return c;
}

/* max(x, 0) - x * t + log(1 + exp(-|x|)): no overflow for any x. */
static inline float bce_with_logits_value(float x, float t)
{
    return (x > 0.0f ? x : 0.0f) - x * t + log1p_unit(exp_nonpositive(-fabsf(x)));
}

static inline float mse_value(float x, float t)
{
    float d = x - t;
    return d * d;
}

static inline float l1_value(float x, float t)
{
    return fabsf(x - t);
}

/* 0.5 z^2 below delta, delta (z - delta / 2) above: both are q (z - q / 2)
 * with q = min(z, delta), which is branch-free. */
static inline float huber_value(float x, float t, float delta)
{
    const float z = fabsf(x - t);
    const float q = z < delta ? z : delta;
    return q * (z - 0.5f * q);
}

/* Writes a block's per-item losses (to the output for reduction none, else
 * to scratch) in a loop gcc -O2 vectorizes (restrict parameters, blocks of
 * VEC_LANES), then sums them. */
#define POINTWISE_BLOCK_FN(name, value_expr)                                                                       \
    static void name##_values(const float *restrict x, const float *restrict t, float *restrict out, int64_t n,  \
                              float delta)                                                                         \
    {                                                                                                              \
        (void)delta;                                                                                               \
        int64_t i = 0;                                                                                             \
        for (; i + VEC_LANES <= n; i += VEC_LANES)                                                                 \
            for (int k = 0; k < VEC_LANES; k++) {                                                                  \
                const float xv = x[i + k], tv = t[i + k];                                                          \
                out[i + k] = (value_expr);                                                                         \
            }                                                                                                      \
        for (; i < n; i++) {                                                                                       \
            const float xv = x[i], tv = t[i];                                                                      \
            out[i] = (value_expr);                                                                                 \
        }                                                                                                          \
    }                                                                                                              \
    static double name(const void *arg, int64_t begin, int64_t end, float *per_item)                              \
    {                                                                                                              \
        const pointwise_ctx *c = arg;                                                                              \
        float scratch[ITEM_BLOCK];                                                                                 \
        float *out = per_item != NULL ? per_item + begin : scratch;                                                \
        name##_values(c->x + begin, c->target + begin, out, end - begin, c->delta);                               \
        return sum_f32(out, end - begin);                                                                          \
    }

POINTWISE_BLOCK_FN(bce_with_logits_block, bce_with_logits_value(xv, tv))
POINTWISE_BLOCK_FN(mse_block, mse_value(xv, tv))
POINTWISE_BLOCK_FN(l1_block, l1_value(xv, tv))
POINTWISE_BLOCK_FN(huber_block, huber_value(xv, tv, delta))

static plx_status run_pointwise_loss(cpu_state *st, const plx_op_call *call, loss_block_fn fn)
{
    pointwise_ctx c = pointwise_setup(call, 0);
    int64_t n = plx_desc_numel(&call->inputs[0]);
    return reduce_loss(st, call, fn, &c, n, n, ITEM_BLOCK, ELEM_GRAIN / ITEM_BLOCK);
}

static plx_status run_bce_with_logits(cpu_state *st, const plx_op_call *call)
{
    return run_pointwise_loss(st, call, bce_with_logits_block);
}

static plx_status run_mse_loss(cpu_state *st, const plx_op_call *call)
{
    return run_pointwise_loss(st, call, mse_block);
}

static plx_status run_l1_loss(cpu_state *st, const plx_op_call *call)
{
    return run_pointwise_loss(st, call, l1_block);
}

static plx_status run_huber_loss(cpu_state *st, const plx_op_call *call)
{
    return run_pointwise_loss(st, call, huber_block);
}

/* 1/(1+e^-x) from e = e^-|x| in (0, 1]: q = e/(1+e) for x < 0, else 1 - q;
 * the choice is made on the sign bit so loops over it vectorize. */
static inline float sigmoid_value(float x)
{
    const float e = exp_nonpositive(-fabsf(x));
    const float q = e / (1.0f + e);
    const uint32_t negative = -(float_bits(x) >> 31);
    return bits_float((float_bits(q) & negative) | (float_bits(1.0f - q) & ~negative));
}

static inline float sign_value(float d)
{
    return (float)((d > 0.0f) - (d < 0.0f));
}

/* As PyTorch's huber backward: clipped to [-delta, delta]. */
static inline float huber_slope(float d, float delta)
{
    return d <= -delta ? -delta : d >= delta ? delta : d;
}

/* dx = weight * slope(x, target) over [begin, end). The loops run in
 * blocks of VEC_LANES with a fixed trip count over restrict parameters
 * (gcc only honours restrict on parameters): what gcc -O2 vectorizes. */
#define POINTWISE_BACKWARD_FN(name, slope_expr)                                                                    \
    static inline float name##_slope(float x, float t, float delta)                                                \
    {                                                                                                              \
        (void)delta;                                                                                               \
        return (slope_expr);                                                                                       \
    }                                                                                                              \
    static void name##_each(const float *restrict x, const float *restrict t, const float *restrict g,            \
                            float *restrict dx, int64_t n, float delta)                                            \
    {                                                                                                              \
        int64_t i = 0;                                                                                             \
        for (; i + VEC_LANES <= n; i += VEC_LANES)                                                                 \
            for (int k = 0; k < VEC_LANES; k++)                                                                    \
                dx[i + k] = g[i + k] * name##_slope(x[i + k], t[i + k], delta);                                    \
        for (; i < n; i++)                                                                                         \
            dx[i] = g[i] * name##_slope(x[i], t[i], delta);                                                        \
    }                                                                                                              \
    static void name##_scalar(const float *restrict x, const float *restrict t, float g, float *restrict dx,      \
                              int64_t n, float delta)                                                              \
    {                                                                                                              \
        int64_t i = 0;                                                                                             \
        for (; i + VEC_LANES <= n; i += VEC_LANES)                                                                 \
            for (int k = 0; k < VEC_LANES; k++)                                                                    \
                dx[i + k] = g * name##_slope(x[i + k], t[i + k], delta);                                           \
        for (; i < n; i++)                                                                                         \
            dx[i] = g * name##_slope(x[i], t[i], delta);                                                           \
    }                                                                                                              \
    static void name(void *arg, int64_t begin, int64_t end)                                                        \
    {                                                                                                              \
        const pointwise_ctx *c = arg;                                                                              \
        if (c->weight.per_item)                                                                                    \
            name##_each(c->x + begin, c->target + begin, c->weight.dloss + begin, c->dx + begin, end - begin,     \
                        c->delta);                                                                                 \
        else                                                                                                       \
            name##_scalar(c->x + begin, c->target + begin, c->weight.scalar, c->dx + begin, end - begin,          \
                          c->delta);                                                                               \
    }

POINTWISE_BACKWARD_FN(bce_with_logits_backward_range, sigmoid_value(x) - t)
POINTWISE_BACKWARD_FN(mse_backward_range, 2.0f * (x - t))
POINTWISE_BACKWARD_FN(l1_backward_range, sign_value(x - t))
POINTWISE_BACKWARD_FN(huber_backward_range, huber_slope(x - t, delta))

static plx_status run_pointwise_backward(cpu_state *st, const plx_op_call *call, plx_range_fn fn)
{
    pointwise_ctx c = pointwise_setup(call, 1);
    int64_t n = plx_desc_numel(&call->inputs[1]);
    c.weight = make_grad_weight(call, n);
    c.dx = cpu_f32(&call->outputs[0]);
    cpu_parallel_for(st, n, ELEM_GRAIN, fn, &c);
    return PLX_OK;
}

static plx_status run_bce_with_logits_backward(cpu_state *st, const plx_op_call *call)
{
    return run_pointwise_backward(st, call, bce_with_logits_backward_range);
}

static plx_status run_mse_loss_backward(cpu_state *st, const plx_op_call *call)
{
    return run_pointwise_backward(st, call, mse_backward_range);
}

static plx_status run_l1_loss_backward(cpu_state *st, const plx_op_call *call)
{
    return run_pointwise_backward(st, call, l1_backward_range);
}

static plx_status run_huber_loss_backward(cpu_state *st, const plx_op_call *call)
{
    return run_pointwise_backward(st, call, huber_backward_range);
}

CPU_FAMILY_TABLE(loss,
                 {PLX_OP_CROSS_ENTROPY, run_cross_entropy, NULL},
                 {PLX_OP_CROSS_ENTROPY_BACKWARD, run_cross_entropy_backward, NULL},
                 {PLX_OP_NLL_LOSS, run_nll_loss, NULL},
                 {PLX_OP_NLL_LOSS_BACKWARD, run_nll_loss_backward, NULL},
                 {PLX_OP_BCE_WITH_LOGITS, run_bce_with_logits, NULL},
                 {PLX_OP_BCE_WITH_LOGITS_BACKWARD, run_bce_with_logits_backward, NULL},
                 {PLX_OP_MSE_LOSS, run_mse_loss, NULL},
                 {PLX_OP_MSE_LOSS_BACKWARD, run_mse_loss_backward, NULL},
                 {PLX_OP_L1_LOSS, run_l1_loss, NULL},
                 {PLX_OP_L1_LOSS_BACKWARD, run_l1_loss_backward, NULL},
                 {PLX_OP_HUBER_LOSS, run_huber_loss, NULL},
                 {PLX_OP_HUBER_LOSS_BACKWARD, run_huber_loss_backward, NULL});

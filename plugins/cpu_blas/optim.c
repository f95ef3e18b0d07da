/* cpu_blas kernels of the optim family. Each update follows torch.optim's
 * single-tensor code (1.13) operation by operation in f32, with the Python
 * scalars (bias corrections, step sizes) computed in double and rounded to
 * f32 where PyTorch does, so results agree to a few ulps.
 *
 * The updates are memory-bound once vectorized, and what kept gcc from
 * vectorizing them was per-element tests of attrs and sqrtf's errno
 * branch. So each range is cut into blocks of OPTIM_BLOCK elements that go
 * through a few branch-free stages (the weight-decayed gradient, the
 * moments, the root, the parameter step), each a restrict loop over the
 * block; attrs are tested once per block to pick a stage's variant, and
 * stage outputs stay in L1. Every element still sees exactly the
 * operations, in the order, of the formula above it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=cheap", "no-trapping-math", "fp-contract=off")
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_blas.h"
#include "vec_math.h"

/* Elementwise updates do ~10 flops per element. */
#define OPTIM_GRAIN 16384
/* Elements per stage pass: the stage buffers (2 KiB each) stay in L1. */
enum { OPTIM_BLOCK = 512 };

/* out = g + wd * p: the L2 term PyTorch adds to the gradient. */
static inline void add_weight_decay(float *restrict out, const float *restrict g, const float *restrict p, float wd,
                                    int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = g[i] + wd * p[i];
}

/* The gradient of a block: g itself, or g + wd * p in `scratch`. */
static inline const float *decayed_grad(float *scratch, const float *g, const float *p, float wd, int64_t n)
{
    if (wd == 0.0f)
        return g;
    add_weight_decay(scratch, g, p, wd, n);
    return scratch;
}

/* ---- SGD ----------------------------------------------------------------- */

typedef struct sgd_job {
    float *param, *buf;
    const float *grad;
    float lr, momentum, dampening_keep, weight_decay;
    bool nesterov, first_step;
} sgd_job;

/* buf = buf * momentum + keep * d */
static inline void sgd_momentum(float *restrict buf, const float *restrict d, float momentum, float keep, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        buf[i] = buf[i] * momentum + keep * d[i];
}

/* out = d + momentum * buf */
static inline void sgd_nesterov(float *restrict out, const float *restrict d, const float *restrict buf, float momentum,
                                int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = d[i] + momentum * buf[i];
}

/* p = p - lr * d */
static inline void sgd_step(float *restrict p, const float *restrict d, float lr, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = p[i] - lr * d[i];
}

CPU_MULTIVERSION static void sgd_range(void *arg, int64_t begin, int64_t end)
{
    const sgd_job *job = arg;
    float grad_buf[OPTIM_BLOCK], dir_buf[OPTIM_BLOCK];
    for (int64_t lo = begin; lo < end; lo += OPTIM_BLOCK) {
        const int64_t n = end - lo < OPTIM_BLOCK ? end - lo : OPTIM_BLOCK;
        float *p = job->param + lo;
        const float *d = decayed_grad(grad_buf, job->grad + lo, p, job->weight_decay, n);
        if (job->buf != NULL) {
            float *buf = job->buf + lo;
            /* On the first step PyTorch starts the buffer at d, undamped. */
            if (job->first_step)
                memcpy(buf, d, (size_t)n * sizeof(float));
            else
                sgd_momentum(buf, d, job->momentum, job->dampening_keep, n);
            if (job->nesterov) {
                sgd_nesterov(dir_buf, d, buf, job->momentum, n);
                d = dir_buf;
            } else {
                d = buf;
            }
        }
        sgd_step(p, d, job->lr, n);
    }
}

static plx_status run_sgd(cpu_state *st, const plx_op_call *call)
{
    const plx_sgd_attrs *a = call->attrs;
    sgd_job job = {cpu_f32(&call->inputs[0]),
                   a->momentum != 0.0f ? cpu_f32(&call->inputs[2]) : NULL,
                   cpu_f32(&call->inputs[1]),
                   a->lr,
                   a->momentum,
                   (float)(1.0 - (double)a->dampening),
                   a->weight_decay,
                   a->nesterov != 0,
                   a->step == 1};
    cpu_parallel_for(st, plx_desc_numel(&call->inputs[0]), OPTIM_GRAIN, sgd_range, &job);
    return PLX_OK;
}

/* ---- Adam / AdamW ---------------------------------------------------------- */

typedef struct adam_job {
    float *param, *exp_avg, *exp_avg_sq, *max_exp_avg_sq;
    const float *grad;
    float param_scale;  /* AdamW: 1 - lr * weight_decay */
    float weight_decay; /* Adam: L2 added to the gradient */
    float beta1, beta1_keep, beta2, beta2_keep;
    float bias_correction2_sqrt, eps, neg_step_size;
} adam_job;

/* m = m * beta1 + (1 - beta1) * g;  v = v * beta2 + (1 - beta2) * g^2 */
static inline void adam_moments(float *restrict m, float *restrict v, const float *restrict g, const adam_job *job,
                                int64_t n)
{
    const float beta1 = job->beta1, beta1_keep = job->beta1_keep;
    const float beta2 = job->beta2, beta2_keep = job->beta2_keep;
    for (int64_t i = 0; i < n; i++) {
        const float grad = g[i];
        m[i] = m[i] * beta1 + beta1_keep * grad;
        v[i] = v[i] * beta2 + beta2_keep * (grad * grad);
    }
}

/* AMSGrad: vmax = max(vmax, v), and that is the second moment used. */
static inline void running_max(float *restrict vmax, const float *restrict v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        vmax[i] = vmax[i] > v[i] ? vmax[i] : v[i];
}

/* p = p * scale + neg_step * (m / (root / bc2_sqrt + eps)), root = sqrt(second
 * moment); `scaled` false leaves out the AdamW factor (it is 1). */
static inline void adam_step(float *restrict p, const float *restrict m, const float *restrict root,
                             const adam_job *job, bool scaled, int64_t n)
{
    const float scale = job->param_scale, bc2_sqrt = job->bias_correction2_sqrt, eps = job->eps;
    const float neg_step = job->neg_step_size;
    if (scaled) {
        for (int64_t i = 0; i < n; i++)
            p[i] = p[i] * scale + neg_step * (m[i] / (root[i] / bc2_sqrt + eps));
    } else {
        for (int64_t i = 0; i < n; i++)
            p[i] = p[i] + neg_step * (m[i] / (root[i] / bc2_sqrt + eps));
    }
}

CPU_MULTIVERSION static void adam_range(void *arg, int64_t begin, int64_t end)
{
    const adam_job *job = arg;
    float grad_buf[OPTIM_BLOCK], root[OPTIM_BLOCK];
    for (int64_t lo = begin; lo < end; lo += OPTIM_BLOCK) {
        const int64_t n = end - lo < OPTIM_BLOCK ? end - lo : OPTIM_BLOCK;
        float *p = job->param + lo, *m = job->exp_avg + lo, *v = job->exp_avg_sq + lo;
        const float *g = decayed_grad(grad_buf, job->grad + lo, p, job->weight_decay, n);
        adam_moments(m, v, g, job, n);
        const float *second = v;
        if (job->max_exp_avg_sq != NULL) {
            running_max(job->max_exp_avg_sq + lo, v, n);
            second = job->max_exp_avg_sq + lo;
        }
        memcpy(root, second, (size_t)n * sizeof(float));
        sqrt_in_place(root, n);
        adam_step(p, m, root, job, job->param_scale != 1.0f, n);
    }
}

static plx_status run_adam(cpu_state *st, const plx_op_call *call)
{
    const plx_adam_attrs *a = call->attrs;
    double step = (double)a->step;
    double bias_correction1 = 1.0 - pow((double)a->beta1, step);
    double bias_correction2 = 1.0 - pow((double)a->beta2, step);
    bool decoupled = a->decoupled_weight_decay != 0;
    adam_job job = {
        .param = cpu_f32(&call->inputs[0]),
        .grad = cpu_f32(&call->inputs[1]),
        .exp_avg = cpu_f32(&call->inputs[2]),
        .exp_avg_sq = cpu_f32(&call->inputs[3]),
        .max_exp_avg_sq = a->amsgrad ? cpu_f32(&call->inputs[4]) : NULL,
        .param_scale = decoupled ? (float)(1.0 - (double)a->lr * (double)a->weight_decay) : 1.0f,
        .weight_decay = decoupled ? 0.0f : a->weight_decay,
        .beta1 = a->beta1,
        .beta1_keep = (float)(1.0 - (double)a->beta1),
        .beta2 = a->beta2,
        .beta2_keep = (float)(1.0 - (double)a->beta2),
        .bias_correction2_sqrt = (float)sqrt(bias_correction2),
        .eps = a->eps,
        .neg_step_size = (float)(-(double)a->lr / bias_correction1),
    };
    cpu_parallel_for(st, plx_desc_numel(&call->inputs[0]), OPTIM_GRAIN, adam_range, &job);
    return PLX_OK;
}

/* ---- RMSprop ----------------------------------------------------------------- */

typedef struct rmsprop_job {
    float *param, *square_avg, *momentum_buf, *grad_avg;
    const float *grad;
    float lr, alpha, alpha_keep, eps, weight_decay, momentum;
} rmsprop_job;

/* sq = sq * alpha + (1 - alpha) * g^2, also copied to `root` (its sqrt comes next). */
static inline void rmsprop_square_avg(float *restrict sq, float *restrict root, const float *restrict g, float alpha,
                                      float keep, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float s = sq[i] * alpha + keep * (g[i] * g[i]);
        sq[i] = s;
        root[i] = s;
    }
}

/* Centered: ga = ga * alpha + (1 - alpha) * g, and root = sq - ga^2. */
static inline void rmsprop_center(float *restrict ga, float *restrict root, const float *restrict g, float alpha,
                                  float keep, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float mean = ga[i] * alpha + keep * g[i];
        ga[i] = mean;
        root[i] = root[i] - mean * mean;
    }
}

/* With momentum: buf = buf * momentum + g / (root + eps); p = p - lr * buf. */
static inline void rmsprop_step_momentum(float *restrict p, float *restrict buf, const float *restrict g,
                                         const float *restrict root, const rmsprop_job *job, int64_t n)
{
    const float eps = job->eps, momentum = job->momentum, lr = job->lr;
    for (int64_t i = 0; i < n; i++) {
        const float b = buf[i] * momentum + g[i] / (root[i] + eps);
        buf[i] = b;
        p[i] = p[i] - lr * b;
    }
}

/* p = p - lr * (g / (root + eps)) */
static inline void rmsprop_step(float *restrict p, const float *restrict g, const float *restrict root,
                                const rmsprop_job *job, int64_t n)
{
    const float eps = job->eps, lr = job->lr;
    for (int64_t i = 0; i < n; i++)
        p[i] = p[i] - lr * (g[i] / (root[i] + eps));
}

CPU_MULTIVERSION static void rmsprop_range(void *arg, int64_t begin, int64_t end)
{
    const rmsprop_job *job = arg;
    float grad_buf[OPTIM_BLOCK], root[OPTIM_BLOCK];
    for (int64_t lo = begin; lo < end; lo += OPTIM_BLOCK) {
        const int64_t n = end - lo < OPTIM_BLOCK ? end - lo : OPTIM_BLOCK;
        float *p = job->param + lo;
        const float *g = decayed_grad(grad_buf, job->grad + lo, p, job->weight_decay, n);
        rmsprop_square_avg(job->square_avg + lo, root, g, job->alpha, job->alpha_keep, n);
        if (job->grad_avg != NULL)
            rmsprop_center(job->grad_avg + lo, root, g, job->alpha, job->alpha_keep, n);
        sqrt_in_place(root, n);
        if (job->momentum_buf != NULL)
            rmsprop_step_momentum(p, job->momentum_buf + lo, g, root, job, n);
        else
            rmsprop_step(p, g, root, job, n);
    }
}

static plx_status run_rmsprop(cpu_state *st, const plx_op_call *call)
{
    const plx_rmsprop_attrs *a = call->attrs;
    bool with_momentum = a->momentum > 0.0f;
    int32_t grad_avg_slot = with_momentum ? 4 : 3;
    rmsprop_job job = {
        .param = cpu_f32(&call->inputs[0]),
        .grad = cpu_f32(&call->inputs[1]),
        .square_avg = cpu_f32(&call->inputs[2]),
        .momentum_buf = with_momentum ? cpu_f32(&call->inputs[3]) : NULL,
        .grad_avg = a->centered ? cpu_f32(&call->inputs[grad_avg_slot]) : NULL,
        .lr = a->lr,
        .alpha = a->alpha,
        .alpha_keep = (float)(1.0 - (double)a->alpha),
        .eps = a->eps,
        .weight_decay = a->weight_decay,
        .momentum = a->momentum,
    };
    cpu_parallel_for(st, plx_desc_numel(&call->inputs[0]), OPTIM_GRAIN, rmsprop_range, &job);
    return PLX_OK;
}

/* ---- Adagrad ---------------------------------------------------------------- */

typedef struct adagrad_job {
    float *param, *state_sum;
    const float *grad;
    float neg_clr, eps, weight_decay;
} adagrad_job;

/* sum = sum + g^2, also copied to `root` (its sqrt comes next). */
static inline void adagrad_sum(float *restrict sum, float *restrict root, const float *restrict g, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float s = sum[i] + g[i] * g[i];
        sum[i] = s;
        root[i] = s;
    }
}

/* p = p + neg_clr * (g / (root + eps)) */
static inline void adagrad_step(float *restrict p, const float *restrict g, const float *restrict root, float neg_clr,
                                float eps, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        p[i] = p[i] + neg_clr * (g[i] / (root[i] + eps));
}

CPU_MULTIVERSION static void adagrad_range(void *arg, int64_t begin, int64_t end)
{
    const adagrad_job *job = arg;
    float grad_buf[OPTIM_BLOCK], root[OPTIM_BLOCK];
    for (int64_t lo = begin; lo < end; lo += OPTIM_BLOCK) {
        const int64_t n = end - lo < OPTIM_BLOCK ? end - lo : OPTIM_BLOCK;
        float *p = job->param + lo;
        const float *g = decayed_grad(grad_buf, job->grad + lo, p, job->weight_decay, n);
        adagrad_sum(job->state_sum + lo, root, g, n);
        sqrt_in_place(root, n);
        adagrad_step(p, g, root, job->neg_clr, job->eps, n);
    }
}

static plx_status run_adagrad(cpu_state *st, const plx_op_call *call)
{
    const plx_adagrad_attrs *a = call->attrs;
    double clr = (double)a->lr / (1.0 + (double)(a->step - 1) * (double)a->lr_decay);
    adagrad_job job = {cpu_f32(&call->inputs[0]), cpu_f32(&call->inputs[2]), cpu_f32(&call->inputs[1]),
                       (float)-clr, a->eps, a->weight_decay};
    cpu_parallel_for(st, plx_desc_numel(&call->inputs[0]), OPTIM_GRAIN, adagrad_range, &job);
    return PLX_OK;
}

/* ---- clip_grad_norm ----------------------------------------------------------
 * Each gradient is cut into fixed blocks whose partial norms (in double) land
 * in their own slots, so the total does not depend on the thread split. */

#define NORM_BLOCK 16384

typedef struct norm_job {
    const float *x;
    int64_t n;
    int norm_kind; /* 1, 2, or 0 for inf */
    double *partial;
} norm_job;

static void norm_blocks(void *arg, int64_t begin, int64_t end)
{
    const norm_job *job = arg;
    for (int64_t b = begin; b < end; b++) {
        int64_t lo = b * NORM_BLOCK, hi = lo + NORM_BLOCK < job->n ? lo + NORM_BLOCK : job->n;
        const float *x = job->x;
        double acc = 0.0;
        if (job->norm_kind == 2) {
            for (int64_t i = lo; i < hi; i++)
                acc += (double)x[i] * (double)x[i];
        } else if (job->norm_kind == 1) {
            for (int64_t i = lo; i < hi; i++)
                acc += fabs((double)x[i]);
        } else {
            float m = 0.0f;
            for (int64_t i = lo; i < hi; i++) {
                float v = fabsf(x[i]);
                /* NaN wins, as in torch.max: once m is NaN no compare is true. */
                if (v > m || v != v)
                    m = v;
            }
            acc = m;
        }
        job->partial[b] = acc;
    }
}

typedef struct scale_job {
    float *x;
    float coef;
} scale_job;

static void scale_range(void *arg, int64_t begin, int64_t end)
{
    const scale_job *job = arg;
    for (int64_t i = begin; i < end; i++)
        job->x[i] *= job->coef;
}

/* Norm of one gradient, rounded to f32 as torch.norm returns it. */
static float tensor_norm(cpu_state *st, const float *x, int64_t n, int norm_kind, double *partial)
{
    int64_t blocks = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    norm_job job = {x, n, norm_kind, partial};
    cpu_parallel_for(st, blocks, 2, norm_blocks, &job);
    double acc = 0.0;
    for (int64_t b = 0; b < blocks; b++) {
        if (norm_kind == 0)
            acc = partial[b] > acc || partial[b] != partial[b] ? partial[b] : acc;
        else
            acc += partial[b];
    }
    return (float)(norm_kind == 2 ? sqrt(acc) : acc);
}

static plx_status run_clip_grad_norm(cpu_state *st, const plx_op_call *call)
{
    const plx_clip_grad_norm_attrs *a = call->attrs;
    int norm_kind = a->norm_type == 1.0f ? 1 : a->norm_type == 2.0f ? 2 : 0;
    int64_t max_blocks = 1;
    for (int32_t k = 0; k < call->n_inputs; k++) {
        int64_t blocks = (plx_desc_numel(&call->inputs[k]) + NORM_BLOCK - 1) / NORM_BLOCK;
        if (blocks > max_blocks)
            max_blocks = blocks;
    }
    double *partial = malloc(sizeof(double) * (size_t)max_blocks);
    if (partial == NULL)
        return CPU_FAIL(st, PLX_OUT_OF_MEMORY, "no memory for %lld partial norms",
                        (long long)max_blocks);
    /* As PyTorch: the total is the norm of the per-tensor norms. */
    double total = 0.0;
    for (int32_t k = 0; k < call->n_inputs; k++) {
        float norm = tensor_norm(st, cpu_f32(&call->inputs[k]), plx_desc_numel(&call->inputs[k]), norm_kind, partial);
        if (norm_kind == 2)
            total += (double)norm * (double)norm;
        else if (norm_kind == 1)
            total += (double)norm;
        else
            total = (double)norm > total || norm != norm ? (double)norm : total;
    }
    free(partial);
    float total_norm = (float)(norm_kind == 2 ? sqrt(total) : total);
    float coef = a->max_norm / (total_norm + 1e-6f);
    if (coef > 1.0f)
        coef = 1.0f;
    *cpu_f32(&call->outputs[0]) = total_norm;
    for (int32_t k = 0; k < call->n_inputs; k++) {
        scale_job job = {cpu_f32(&call->inputs[k]), coef};
        cpu_parallel_for(st, plx_desc_numel(&call->inputs[k]), 65536, scale_range, &job);
    }
    return PLX_OK;
}

CPU_FAMILY_TABLE(optim,
                 {PLX_OP_SGD_UPDATE, run_sgd, NULL},
                 {PLX_OP_ADAM_UPDATE, run_adam, NULL},
                 {PLX_OP_RMSPROP_UPDATE, run_rmsprop, NULL},
                 {PLX_OP_ADAGRAD_UPDATE, run_adagrad, NULL},
                 {PLX_OP_CLIP_GRAD_NORM, run_clip_grad_norm, NULL});

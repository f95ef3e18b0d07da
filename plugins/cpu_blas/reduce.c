/*
 * cpu_blas kernels of the reduce family: sum, mean, max, min over a set of
 * axes, and argmax over one.
 *
 * The input is first simplified: size-1 dims are dropped (reducing over
 * them changes nothing) and neighbouring dims that are both reduced or both
 * kept are merged. When one reduced group remains the tensor is
 * [outer, reduce, inner] and each output block streams contiguous rows;
 * when few outputs share a long reduction, the reduced axis is also split
 * into segments whose partial results are combined afterwards, so a full
 * reduction uses every thread. Other axis sets (e.g. N and HW of NCHW) walk
 * the reduced index space per output element.
 *
 * Sums accumulate in double; max and min propagate NaN as PyTorch does;
 * argmax returns the first index of the maximum, NaN counting as the
 * largest value.
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
#include <stdlib.h>

#include "cpu_blas.h"

enum { REDUCE_SUM, REDUCE_MEAN, REDUCE_MAX, REDUCE_MIN };

/* Elements per parallel work item; outputs per inner block (a block reads
 * one 4 KiB page of each row, long enough for the hardware prefetcher; its
 * accumulators, 8 KiB at most, live on the stack); most pieces the reduced
 * axis is cut into. */
enum { GRAIN = 32768, BLOCK = 1024, MAX_SEGMENTS = 64 };

static int reduce_kind(int32_t op_id)
{
    switch (op_id) {
    case PLX_OP_SUM:
        return REDUCE_SUM;
    case PLX_OP_MEAN:
        return REDUCE_MEAN;
    case PLX_OP_MAX:
        return REDUCE_MAX;
    default:
        return REDUCE_MIN;
    }
}

/* Identity of the combine: a NaN input still wins against it. */
static double reduce_identity(int kind)
{
    return kind == REDUCE_MAX ? -INFINITY : kind == REDUCE_MIN ? INFINITY : 0.0;
}

/* One step of a NaN-propagating max/min. Once acc is NaN both comparisons
 * are false and it stays NaN; written as two selects so loops vectorize. */
static inline float max_step(float acc, float v)
{
    const float m = v > acc ? v : acc;
    return v != v ? v : m;
}

static inline float min_step(float acc, float v)
{
    const float m = v < acc ? v : acc;
    return v != v ? v : m;
}

static inline double combine(int kind, double acc, double v)
{
    switch (kind) {
    case REDUCE_MAX:
        return v != v ? v : v > acc ? v : acc;
    case REDUCE_MIN:
        return v != v ? v : v < acc ? v : acc;
    default:
        return acc + v;
    }
}

/* Eight independent accumulators in registers: gcc vectorizes them without
 * reassociating, and double keeps long sums exact to float precision. */
CPU_MULTIVERSION static double sum_contiguous(const float *x, int64_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 += (double)x[i];
        s1 += (double)x[i + 1];
        s2 += (double)x[i + 2];
        s3 += (double)x[i + 3];
        s4 += (double)x[i + 4];
        s5 += (double)x[i + 5];
        s6 += (double)x[i + 6];
        s7 += (double)x[i + 7];
    }
    double total = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
    for (; i < n; i++)
        total += (double)x[i];
    return total;
}

#define EXTREMUM_CONTIGUOUS(name, step, START)                                                                \
    CPU_MULTIVERSION static double name(const float *x, int64_t n)                                            \
    {                                                                                                         \
        float lane[8];                                                                                        \
        for (int j = 0; j < 8; j++)                                                                           \
            lane[j] = START;                                                                                  \
        int64_t i = 0;                                                                                        \
        for (; i + 8 <= n; i += 8)                                                                            \
            for (int j = 0; j < 8; j++)                                                                       \
                lane[j] = step(lane[j], x[i + j]);                                                            \
        float best = START;                                                                                   \
        for (; i < n; i++)                                                                                    \
            best = step(best, x[i]);                                                                          \
        for (int j = 0; j < 8; j++)                                                                           \
            best = step(best, lane[j]);                                                                       \
        return best;                                                                                          \
    }

EXTREMUM_CONTIGUOUS(max_contiguous, max_step, -INFINITY)
EXTREMUM_CONTIGUOUS(min_contiguous, min_step, INFINITY)

static double reduce_contiguous(int kind, const float *x, int64_t n)
{
    switch (kind) {
    case REDUCE_MAX:
        return max_contiguous(x, n);
    case REDUCE_MIN:
        return min_contiguous(x, n);
    default:
        return sum_contiguous(x, n);
    }
}

static double reduce_strided(int kind, const float *x, int64_t n, int64_t stride)
{
    if (kind == REDUCE_SUM || kind == REDUCE_MEAN) {
        double total = 0.0;
        for (int64_t i = 0; i < n; i++)
            total += (double)x[i * stride];
        return total;
    }
    float best = (float)reduce_identity(kind);
    if (kind == REDUCE_MAX) {
        for (int64_t i = 0; i < n; i++)
            best = max_step(best, x[i * stride]);
    } else {
        for (int64_t i = 0; i < n; i++)
            best = min_step(best, x[i * stride]);
    }
    return best;
}

/* ---- Simplified layout ------------------------------------------------- */

typedef struct reduce_layout {
    int32_t n_groups;
    int64_t size[PLX_MAX_DIMS];
    int64_t stride[PLX_MAX_DIMS]; /* compact input strides of the groups */
    bool reduced[PLX_MAX_DIMS];
    int64_t reduce_count;         /* elements folded into each output */
} reduce_layout;

static void layout_make(reduce_layout *lay, const plx_tensor_desc *x, const bool *reduced)
{
    lay->n_groups = 0;
    lay->reduce_count = 1;
    for (int32_t d = 0; d < x->ndim; d++) {
        if (reduced[d])
            lay->reduce_count *= x->shape[d];
        if (x->shape[d] == 1)
            continue;
        const int32_t last = lay->n_groups - 1;
        if (last >= 0 && lay->reduced[last] == reduced[d]) {
            lay->size[last] *= x->shape[d];
        } else {
            lay->size[lay->n_groups] = x->shape[d];
            lay->reduced[lay->n_groups] = reduced[d];
            lay->n_groups++;
        }
    }
    int64_t step = 1;
    for (int32_t g = lay->n_groups - 1; g >= 0; g--) {
        lay->stride[g] = step;
        step *= lay->size[g];
    }
}

/* ---- [outer, reduce, inner] ------------------------------------------- */

typedef struct fast_job {
    int kind;
    const float *x;
    float *y;
    double *partial; /* [outer, segments, inner] when segments > 1 */
    int64_t outer, reduce, inner;
    int64_t blocks;   /* inner blocks per outer index */
    int64_t segments; /* pieces of the reduced axis */
    int64_t segment_len;
    double count; /* elements per output, for the mean */
} fast_job;

static inline void store_result(const fast_job *job, int64_t o, int64_t segment, int64_t i, double acc)
{
    if (job->segments > 1)
        job->partial[(o * job->segments + segment) * job->inner + i] = acc;
    else
        job->y[o * job->inner + i] = (float)(job->kind == REDUCE_MEAN ? acc / job->count : acc);
}

CPU_MULTIVERSION static void fast_range(void *arg, int64_t begin, int64_t end)
{
    const fast_job *job = arg;
    const int kind = job->kind;
    for (int64_t item = begin; item < end; item++) {
        const int64_t segment = item % job->segments;
        const int64_t block = (item / job->segments) % job->blocks;
        const int64_t o = item / (job->segments * job->blocks);
        const int64_t r0 = segment * job->segment_len;
        const int64_t r1 = r0 + job->segment_len < job->reduce ? r0 + job->segment_len : job->reduce;
        if (job->inner == 1) {
            store_result(job, o, segment, 0, reduce_contiguous(kind, job->x + o * job->reduce + r0, r1 - r0));
            continue;
        }
        const int64_t i0 = block * BLOCK;
        const int64_t len = job->inner - i0 < BLOCK ? job->inner - i0 : BLOCK;
        const float *base = job->x + o * job->reduce * job->inner + i0;
        if (kind == REDUCE_SUM || kind == REDUCE_MEAN) {
            double acc[BLOCK];
            for (int64_t i = 0; i < len; i++)
                acc[i] = 0.0;
            const int64_t inner = job->inner;
            int64_t r = r0;
            /* Four rows per pass over acc: a quarter of the loads/stores of it. */
            for (; r + 4 <= r1; r += 4) {
                const float *row = base + r * inner;
                for (int64_t i = 0; i < len; i++)
                    acc[i] += ((double)row[i] + (double)row[i + inner]) +
                              ((double)row[i + 2 * inner] + (double)row[i + 3 * inner]);
            }
            for (; r < r1; r++) {
                const float *row = base + r * inner;
                for (int64_t i = 0; i < len; i++)
                    acc[i] += (double)row[i];
            }
            for (int64_t i = 0; i < len; i++)
                store_result(job, o, segment, i0 + i, acc[i]);
        } else {
            float acc[BLOCK];
            const float start = (float)reduce_identity(kind);
            for (int64_t i = 0; i < len; i++)
                acc[i] = start;
            for (int64_t r = r0; r < r1; r++) {
                const float *row = base + r * job->inner;
                if (kind == REDUCE_MAX) {
                    for (int64_t i = 0; i < len; i++)
                        acc[i] = max_step(acc[i], row[i]);
                } else {
                    for (int64_t i = 0; i < len; i++)
                        acc[i] = min_step(acc[i], row[i]);
                }
            }
            for (int64_t i = 0; i < len; i++)
                store_result(job, o, segment, i0 + i, acc[i]);
        }
    }
}

static plx_status reduce_fast(cpu_state *st, int kind, const plx_tensor_desc *x, const plx_tensor_desc *y,
                              int64_t outer, int64_t reduce, int64_t inner, double count)
{
    fast_job job = {
        .kind = kind,
        .x = cpu_f32(x),
        .y = cpu_f32(y),
        .outer = outer,
        .reduce = reduce,
        .inner = inner,
        .blocks = (inner + BLOCK - 1) / BLOCK,
        .segments = 1,
        .segment_len = reduce,
        .count = count,
    };
    const int64_t block_len = inner < BLOCK ? inner : BLOCK;
    const int64_t base_items = outer * job.blocks;
    /* Too few outputs to occupy the threads: cut the reduced axis too. */
    if (st->threads > 1 && base_items < 4 * (int64_t)st->threads && reduce * block_len >= 2 * GRAIN) {
        int64_t segments = reduce * block_len / GRAIN;
        if (segments > MAX_SEGMENTS)
            segments = MAX_SEGMENTS;
        if (segments > 1) {
            job.partial = malloc((size_t)(outer * segments * inner) * sizeof(double));
            if (job.partial != NULL) {
                job.segments = segments;
                job.segment_len = (reduce + segments - 1) / segments;
                job.segments = (reduce + job.segment_len - 1) / job.segment_len;
            }
        }
    }
    const int64_t items = base_items * job.segments;
    const int64_t item_elems = job.segment_len * block_len;
    const int64_t grain = item_elems >= GRAIN ? 1 : GRAIN / (item_elems > 0 ? item_elems : 1);
    cpu_parallel_for(st, items, grain, fast_range, &job);

    if (job.segments > 1) {
        float *out = job.y;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                double acc = reduce_identity(kind);
                for (int64_t s = 0; s < job.segments; s++)
                    acc = combine(kind, acc, job.partial[(o * job.segments + s) * inner + i]);
                out[o * inner + i] = (float)(kind == REDUCE_MEAN ? acc / count : acc);
            }
        free(job.partial);
    }
    return PLX_OK;
}

/* ---- Any other set of axes -------------------------------------------- */

typedef struct general_job {
    int kind;
    const float *x;
    float *y;
    int32_t n_kept, n_reduced;
    int64_t kept_size[PLX_MAX_DIMS], kept_stride[PLX_MAX_DIMS];
    int64_t red_size[PLX_MAX_DIMS], red_stride[PLX_MAX_DIMS];
    double count;
} general_job;

static void general_range(void *arg, int64_t begin, int64_t end)
{
    const general_job *job = arg;
    const int kind = job->kind;
    const int32_t innermost = job->n_reduced - 1;
    const int64_t run = job->red_size[innermost];
    const int64_t run_stride = job->red_stride[innermost];
    for (int64_t out = begin; out < end; out++) {
        int64_t base = 0, rest = out;
        for (int32_t g = job->n_kept - 1; g >= 0; g--) {
            base += (rest % job->kept_size[g]) * job->kept_stride[g];
            rest /= job->kept_size[g];
        }
        int64_t idx[PLX_MAX_DIMS] = {0};
        double acc = reduce_identity(kind);
        const float *p = job->x + base;
        for (;;) {
            acc = combine(kind, acc,
                          run_stride == 1 ? reduce_contiguous(kind, p, run) : reduce_strided(kind, p, run, run_stride));
            int32_t g = innermost - 1;
            for (; g >= 0; g--) {
                p += job->red_stride[g];
                if (++idx[g] < job->red_size[g])
                    break;
                p -= job->red_stride[g] * job->red_size[g];
                idx[g] = 0;
            }
            if (g < 0)
                break;
        }
        job->y[out] = (float)(kind == REDUCE_MEAN ? acc / job->count : acc);
    }
}

static plx_status reduce_general(cpu_state *st, int kind, const reduce_layout *lay, const plx_tensor_desc *x,
                                 const plx_tensor_desc *y)
{
    general_job job = {.kind = kind, .x = cpu_f32(x), .y = cpu_f32(y), .count = (double)lay->reduce_count};
    for (int32_t g = 0; g < lay->n_groups; g++) {
        if (lay->reduced[g]) {
            job.red_size[job.n_reduced] = lay->size[g];
            job.red_stride[job.n_reduced++] = lay->stride[g];
        } else {
            job.kept_size[job.n_kept] = lay->size[g];
            job.kept_stride[job.n_kept++] = lay->stride[g];
        }
    }
    const int64_t outputs = plx_desc_numel(y);
    const int64_t per_output = lay->reduce_count > 0 ? lay->reduce_count : 1;
    cpu_parallel_for(st, outputs, per_output >= GRAIN ? 1 : GRAIN / per_output, general_range, &job);
    return PLX_OK;
}

static plx_status run_reduce(cpu_state *st, const plx_op_call *call)
{
    const plx_reduce_attrs *attrs = call->attrs;
    const plx_tensor_desc *x = &call->inputs[0];
    const plx_tensor_desc *y = &call->outputs[0];
    const int kind = reduce_kind(call->op_id);

    bool reduced[PLX_MAX_DIMS] = {false};
    for (int32_t d = 0; d < x->ndim; d++)
        reduced[d] = attrs->n_axes == 0;
    for (int32_t k = 0; k < attrs->n_axes; k++) {
        int32_t a = attrs->axes[k] < 0 ? attrs->axes[k] + x->ndim : attrs->axes[k];
        if (a < 0 || a >= x->ndim)
            return CPU_FAIL(st, PLX_INVALID_ARGUMENT, "%s: axis %d is out of range", call->op_name,
                            (int)attrs->axes[k]);
        reduced[a] = true;
    }
    if (plx_desc_numel(y) == 0)
        return PLX_OK;

    reduce_layout lay;
    layout_make(&lay, x, reduced);
    int32_t n_reduced_groups = 0, first_reduced = -1;
    for (int32_t g = 0; g < lay.n_groups; g++)
        if (lay.reduced[g]) {
            n_reduced_groups++;
            if (first_reduced < 0)
                first_reduced = g;
        }
    if (n_reduced_groups > 1)
        return reduce_general(st, kind, &lay, x, y);

    /* One reduced group (or none: every reduced dim has size 1, and each
     * output is its one input element). */
    int64_t outer = 1, reduce = 1, inner = 1;
    for (int32_t g = 0; g < lay.n_groups; g++) {
        if (g == first_reduced)
            reduce = lay.size[g];
        else if (first_reduced >= 0 && g > first_reduced)
            inner *= lay.size[g];
        else
            outer *= lay.size[g];
    }
    if (first_reduced < 0) {
        inner = outer;
        outer = 1;
    }
    return reduce_fast(st, kind, x, y, outer, reduce, inner, (double)lay.reduce_count);
}

/* ---- argmax ------------------------------------------------------------ */

typedef struct argmax_job {
    const float *x;
    int64_t *y;
    int64_t outer, reduce, inner, blocks;
} argmax_job;

/* The maximum first (a vectorized pass), then its first occurrence. */
static int64_t argmax_contiguous(const float *x, int64_t n)
{
    const float best = (float)max_contiguous(x, n);
    int64_t r = 0;
    if (best != best) {
        while (r < n - 1 && x[r] == x[r])
            r++;
    } else {
        while (r < n - 1 && x[r] != best)
            r++;
    }
    return r;
}

/* Running argmax of `len` columns over `reduce` rows `inner` apart. Indices
 * are kept in 32 bits when they fit, which lets gcc vectorize the update
 * together with the float values. */
#define ARGMAX_BLOCK_LOOP(index_type)                                                                         \
    do {                                                                                                      \
        float best[BLOCK];                                                                                    \
        index_type at[BLOCK];                                                                                 \
        for (int64_t i = 0; i < len; i++) {                                                                   \
            best[i] = base[i];                                                                                \
            at[i] = 0;                                                                                        \
        }                                                                                                     \
        for (int64_t r = 1; r < reduce; r++) {                                                                \
            const float *row = base + r * inner;                                                              \
            const index_type r_index = (index_type)r;                                                         \
            for (int64_t i = 0; i < len; i++) {                                                               \
                const float v = row[i], b = best[i];                                                          \
                const index_type a = at[i];                                                                   \
                const bool take = ((v > b) | (v != v)) & (b == b);                                            \
                best[i] = take ? v : b;                                                                       \
                at[i] = take ? r_index : a;                                                                   \
            }                                                                                                 \
        }                                                                                                     \
        for (int64_t i = 0; i < len; i++)                                                                     \
            out[i] = (int64_t)at[i];                                                                          \
    } while (0)

static void argmax_block(const float *base, int64_t reduce, int64_t inner, int64_t len, int64_t *out)
{
    if (reduce <= INT32_MAX)
        ARGMAX_BLOCK_LOOP(int32_t);
    else
        ARGMAX_BLOCK_LOOP(int64_t);
}

static void argmax_range(void *arg, int64_t begin, int64_t end)
{
    const argmax_job *job = arg;
    for (int64_t item = begin; item < end; item++) {
        const int64_t o = item / job->blocks;
        if (job->inner == 1) {
            job->y[o] = argmax_contiguous(job->x + o * job->reduce, job->reduce);
            continue;
        }
        const int64_t i0 = (item % job->blocks) * BLOCK;
        const int64_t len = job->inner - i0 < BLOCK ? job->inner - i0 : BLOCK;
        const float *base = job->x + o * job->reduce * job->inner + i0;
        argmax_block(base, job->reduce, job->inner, len, job->y + o * job->inner + i0);
    }
}

static plx_status run_argmax(cpu_state *st, const plx_op_call *call)
{
    const plx_argmax_attrs *attrs = call->attrs;
    const plx_tensor_desc *x = &call->inputs[0];
    const int32_t axis = attrs->axis < 0 ? attrs->axis + x->ndim : attrs->axis;
    if (axis < 0 || axis >= x->ndim || x->shape[axis] == 0)
        return CPU_FAIL(st, PLX_INVALID_ARGUMENT, "%s: bad axis %d", call->op_name, (int)attrs->axis);
    argmax_job job = {.x = cpu_f32(x), .y = (int64_t *)plx_desc_ptr(&call->outputs[0]), .outer = 1, .inner = 1};
    for (int32_t d = 0; d < x->ndim; d++) {
        if (d < axis)
            job.outer *= x->shape[d];
        else if (d > axis)
            job.inner *= x->shape[d];
    }
    job.reduce = x->shape[axis];
    if (job.outer * job.inner == 0)
        return PLX_OK;
    job.blocks = (job.inner + BLOCK - 1) / BLOCK;
    const int64_t block_len = job.inner < BLOCK ? job.inner : BLOCK;
    const int64_t item_elems = job.reduce * block_len;
    cpu_parallel_for(st, job.outer * job.blocks, item_elems >= GRAIN ? 1 : GRAIN / item_elems, argmax_range, &job);
    return PLX_OK;
}

CPU_FAMILY_TABLE(reduce,
                 {PLX_OP_SUM, run_reduce, NULL},
                 {PLX_OP_MEAN, run_reduce, NULL},
                 {PLX_OP_MAX, run_reduce, NULL},
                 {PLX_OP_MIN, run_reduce, NULL},
                 {PLX_OP_ARGMAX, run_argmax, NULL});

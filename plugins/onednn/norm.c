/*
 * onednn kernels of the norm family: core.batch_norm, core.layer_norm and
 * their backward ops, f32, through oneDNN's batch and layer normalization
 * primitives with separate scale (gamma) and shift (beta).
 *
 * The catalog's ops and oneDNN's differ in what they carry between
 * forward and backward: Plexus saves mean and invstd = 1/sqrt(var + eps),
 * oneDNN wants mean and the (biased) variance. So:
 *  - forward: the primitive writes the variance into the invstd output,
 *    and a host step turns it into invstd in place; batch norm in training
 *    also updates running_mean / running_var there, exactly as cpu_blas
 *    (PyTorch): running = (1 - m) * running + m * batch, with the unbiased
 *    variance var * n / (n - 1), in double.
 *  - inference batch norm normalizes with running_mean / running_var
 *    (oneDNN's use_global_stats) and a host step writes save_mean =
 *    running_mean and save_invstd = 1/sqrt(running_var + eps).
 *  - backward: a host step first turns invstd back into a variance
 *    temporary, 1/invstd^2 - eps (in double; oneDNN then forms
 *    1/sqrt(var + eps) again, which recovers invstd to float rounding).
 *    Batch norm backward with training = 0 uses oneDNN's use_global_stats
 *    form, dx = dy * gamma * invstd, as cpu_blas does.
 * x [N, C, d...] is seen as [N, C, S, 1] (S the product of d...) for batch
 * norm; layer norm sees x as [rows, cols], cols the normalized dims.
 */
#include <math.h>
#include <stdio.h>

#include "onednn.h"

/* Passes over the call's bytes, measured on one thread: layer norm
 * [2048, 768] forward 533 us (1.0 pass), backward 2022 us (2.2 passes);
 * batch norm, whose only plain-layout implementation in oneDNN 2.6 is the
 * generic ncsp_bnorm, [32, 64, 28, 28] 5.4 passes forward and 5.6 backward
 * (cpu_blas: ~1.7), and far more when the spatial size S is small, every
 * element then costing a cache line: [512, 1024] (S = 1) 32 passes. */
#define LAYER_NORM_FORWARD_PASSES 1.0
#define LAYER_NORM_BACKWARD_PASSES 2.2
#define BATCH_NORM_PASSES 5.5
#define BATCH_NORM_SMALL_SPATIAL 6.0

static bool is_batch(int32_t op_id)
{
    return op_id == PLX_OP_BATCH_NORM || op_id == PLX_OP_BATCH_NORM_BACKWARD;
}

static bool is_backward(int32_t op_id)
{
    return op_id == PLX_OP_BATCH_NORM_BACKWARD || op_id == PLX_OP_LAYER_NORM_BACKWARD;
}

/* x: input 0 forward, input 1 backward. */
static const plx_tensor_desc *x_of(const plx_op_call *call)
{
    return &call->inputs[is_backward(call->op_id) ? 1 : 0];
}

/* ---- shapes ------------------------------------------------------------------- */

static void batch_dims(const plx_tensor_desc *x, int64_t dims[4])
{
    dims[0] = x->shape[0];
    dims[1] = x->shape[1];
    dims[2] = 1;
    dims[3] = 1;
    for (int32_t i = 2; i < x->ndim; i++)
        dims[2] *= x->shape[i];
}

static void layer_dims(const plx_tensor_desc *x, int32_t normalized_ndim, int64_t *rows, int64_t *cols)
{
    *rows = 1;
    *cols = 1;
    for (int32_t i = 0; i < x->ndim; i++) {
        if (i < x->ndim - normalized_ndim)
            *rows *= x->shape[i];
        else
            *cols *= x->shape[i];
    }
}

static bool check_norm(const plx_op_call *call, char *reason, size_t cap)
{
    if (call->attrs == NULL) {
        snprintf(reason, cap, "normalization without attrs");
        return false;
    }
    const plx_tensor_desc *x = x_of(call);
    if (is_batch(call->op_id) && x->ndim < 2) {
        snprintf(reason, cap, "batch norm of a %d-D tensor", (int)x->ndim);
        return false;
    }
    return true;
}

/* ---- host steps ------------------------------------------------------------------ */

static float *f32_of(const plx_tensor_desc *t)
{
    return (float *)plx_desc_ptr(t);
}

/* invstd[i] = 1/sqrt(var[i] + eps), in place. */
static void invstd_in_place(float *v, int64_t n, double eps)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(1.0 / sqrt((double)v[i] + eps));
}

/* var[i] = 1/invstd[i]^2 - eps */
static void variance_of(const float *invstd, float *var, int64_t n, double eps)
{
    for (int64_t i = 0; i < n; i++) {
        double is = (double)invstd[i];
        var[i] = (float)(1.0 / (is * is) - eps);
    }
}

/* Training: outputs 1, 2 hold the batch mean and biased variance. */
static plx_status batch_norm_train_finish(one_state *s, const plx_op_call *call, void *const *temps)
{
    (void)s;
    (void)temps;
    const plx_batch_norm_attrs *a = call->attrs;
    int64_t dims[4];
    batch_dims(&call->inputs[0], dims);
    const int64_t channels = dims[1];
    const double count = (double)(dims[0] * dims[2]);
    const double momentum = (double)a->momentum;
    float *running_mean = f32_of(&call->inputs[3]), *running_var = f32_of(&call->inputs[4]);
    const float *mean = f32_of(&call->outputs[1]);
    float *var = f32_of(&call->outputs[2]);
    for (int64_t c = 0; c < channels; c++) {
        double unbiased = (double)var[c] * count / (count - 1.0);
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * (double)mean[c]);
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
    invstd_in_place(var, channels, (double)a->eps);
    return PLX_OK;
}

static plx_status batch_norm_infer_finish(one_state *s, const plx_op_call *call, void *const *temps)
{
    (void)s;
    (void)temps;
    const plx_batch_norm_attrs *a = call->attrs;
    const int64_t channels = call->inputs[0].shape[1];
    const float *running_mean = f32_of(&call->inputs[3]), *running_var = f32_of(&call->inputs[4]);
    float *save_mean = f32_of(&call->outputs[1]), *save_invstd = f32_of(&call->outputs[2]);
    for (int64_t c = 0; c < channels; c++) {
        save_mean[c] = running_mean[c];
        save_invstd[c] = (float)(1.0 / sqrt((double)running_var[c] + (double)a->eps));
    }
    return PLX_OK;
}

static plx_status batch_norm_backward_prepare(one_state *s, const plx_op_call *call, void *const *temps)
{
    (void)s;
    const plx_batch_norm_attrs *a = call->attrs;
    variance_of(f32_of(&call->inputs[4]), temps[0], call->inputs[1].shape[1], (double)a->eps);
    return PLX_OK;
}

static plx_status layer_norm_finish(one_state *s, const plx_op_call *call, void *const *temps)
{
    (void)s;
    (void)temps;
    const plx_layer_norm_attrs *a = call->attrs;
    invstd_in_place(f32_of(&call->outputs[2]), plx_desc_numel(&call->outputs[2]), (double)a->eps);
    return PLX_OK;
}

static plx_status layer_norm_backward_prepare(one_state *s, const plx_op_call *call, void *const *temps)
{
    (void)s;
    const plx_layer_norm_attrs *a = call->attrs;
    variance_of(f32_of(&call->inputs[4]), temps[0], plx_desc_numel(&call->inputs[4]), (double)a->eps);
    return PLX_OK;
}

/* ---- plans ---------------------------------------------------------------------- */

/* Descriptors: x-shaped data, stats [C] or [rows], params [C] or [cols]. */
enum { MD_DATA, MD_STAT, MD_PARAM, N_MDS };

static dnnl_status_t make_mds(const plx_op_call *call, one_md *m)
{
    const plx_tensor_desc *x = x_of(call);
    dnnl_status_t st;
    if (is_batch(call->op_id)) {
        int64_t dims[4];
        batch_dims(x, dims);
        if ((st = one_md_plain(&m[MD_DATA], 4, dims, dnnl_f32)) != dnnl_success ||
            (st = one_md_plain(&m[MD_STAT], 1, &dims[1], dnnl_f32)) != dnnl_success)
            return st;
        return one_md_plain(&m[MD_PARAM], 1, &dims[1], dnnl_f32);
    }
    const plx_layer_norm_attrs *a = call->attrs;
    int64_t dims[2];
    layer_dims(x, a->normalized_ndim, &dims[0], &dims[1]);
    if ((st = one_md_plain(&m[MD_DATA], 2, dims, dnnl_f32)) != dnnl_success ||
        (st = one_md_plain(&m[MD_STAT], 1, &dims[0], dnnl_f32)) != dnnl_success)
        return st;
    return one_md_plain(&m[MD_PARAM], 1, &dims[1], dnnl_f32);
}

static float eps_of(const plx_op_call *call)
{
    return is_batch(call->op_id) ? ((const plx_batch_norm_attrs *)call->attrs)->eps
                                 : ((const plx_layer_norm_attrs *)call->attrs)->eps;
}

/* Batch norm in inference (training = 0) uses the running statistics. */
static bool global_stats(const plx_op_call *call)
{
    return is_batch(call->op_id) && !((const plx_batch_norm_attrs *)call->attrs)->training;
}

/* Separate scale and shift; with global stats, the running statistics. */
static unsigned flags_of(const plx_op_call *call)
{
    return dnnl_use_scale | dnnl_use_shift | (global_stats(call) ? dnnl_use_global_stats : 0u);
}

#define MD(i) one_ref(&m[i])

static dnnl_status_t forward_pd(const one_state *s, const plx_op_call *call, const one_md *m, dnnl_prop_kind_t prop,
                                dnnl_primitive_desc_t *pd)
{
    if (is_batch(call->op_id))
        return one_bnorm_fwd_pd(pd, s->engine, prop, MD(MD_DATA), MD(MD_DATA), eps_of(call), flags_of(call));
    return one_lnorm_fwd_pd(pd, s->engine, prop, MD(MD_DATA), MD(MD_DATA), MD(MD_STAT), eps_of(call), flags_of(call));
}

static dnnl_status_t backward_pd(const one_state *s, const plx_op_call *call, const one_md *m,
                                 const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd)
{
    if (is_batch(call->op_id))
        return one_bnorm_bwd_pd(pd, s->engine, dnnl_backward, MD(MD_DATA), MD(MD_DATA), MD(MD_DATA), eps_of(call),
                                flags_of(call), hint);
    return one_lnorm_bwd_pd(pd, s->engine, dnnl_backward, MD(MD_DATA), MD(MD_DATA), MD(MD_DATA), MD(MD_STAT),
                            eps_of(call), flags_of(call), hint);
}

/* (x, gamma, beta[, running_mean, running_var]) -> (y, mean, invstd) */
static dnnl_status_t build_forward(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap)
{
    const bool global = global_stats(call);
    one_md m[N_MDS];
    one_mds_clear(m, N_MDS);
    dnnl_primitive_desc_t pd = NULL;
    /* The statistics are outputs only with forward_training (global stats:
     * inputs, with forward_inference). */
    const one_binding args[] = {
        {DNNL_ARG_SRC, ONE_ARG_INPUT, 0, &m[MD_DATA]},
        {DNNL_ARG_SCALE, ONE_ARG_INPUT, 1, &m[MD_PARAM]},
        {DNNL_ARG_SHIFT, ONE_ARG_INPUT, 2, &m[MD_PARAM]},
        {DNNL_ARG_MEAN, global ? ONE_ARG_INPUT : ONE_ARG_OUTPUT, global ? 3 : 1, &m[MD_STAT]},
        {DNNL_ARG_VARIANCE, global ? ONE_ARG_INPUT : ONE_ARG_OUTPUT, global ? 4 : 2, &m[MD_STAT]},
        {DNNL_ARG_DST, ONE_ARG_OUTPUT, 0, &m[MD_DATA]}};
    dnnl_status_t st = make_mds(call, m);
    if (st != dnnl_success)
        one_fail(st, reason, cap, "memory descriptor");
    else if ((st = forward_pd(s, call, m, global ? dnnl_forward_inference : dnnl_forward_training, &pd)) !=
             dnnl_success)
        one_fail(st, reason, cap, "normalization forward descriptor");
    else if ((st = one_plan_add_bound_step(s, plan, pd, args, ONE_COUNT_OF(args), "normalization forward", reason,
                                           cap)) == dnnl_success &&
             (st = one_plan_add_host(plan, !is_batch(call->op_id) ? layer_norm_finish
                                           : global               ? batch_norm_infer_finish
                                                                  : batch_norm_train_finish)) != dnnl_success)
        one_fail(st, reason, cap, "adding the statistics step");
    one_pd_destroy(pd);
    one_mds_release(m, N_MDS);
    return st;
}

/* Inputs of the backward primitive besides the shift: src, diff_dst,
 * scale, mean, variance. */
#define NORM_BACKWARD_INPUTS 5

/* (dy, x, gamma, mean, invstd) -> (dx, dgamma, dbeta) */
static dnnl_status_t build_backward(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap)
{
    one_md m[N_MDS];
    one_mds_clear(m, N_MDS);
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    dnnl_status_t st = make_mds(call, m);
    if (st != dnnl_success)
        one_fail(st, reason, cap, "memory descriptor");
    else if ((st = forward_pd(s, call, m, dnnl_forward_training, &hint)) != dnnl_success)
        one_fail(st, reason, cap, "normalization forward (hint) descriptor");
    else if ((st = backward_pd(s, call, m, hint, &pd)) != dnnl_success)
        one_fail(st, reason, cap, "normalization backward descriptor");
    else if ((st = one_plan_temp(plan, 0, MD(MD_STAT))) != dnnl_success ||
             (st = one_plan_add_host(plan, is_batch(call->op_id) ? batch_norm_backward_prepare
                                                                 : layer_norm_backward_prepare)) != dnnl_success)
        one_fail(st, reason, cap, "adding the variance step");
    else {
        /* With use_shift, oneDNN 2.6 counts the shift among the backward
         * primitive's inputs (3.7 does not, and rejects it) although the
         * gradients do not depend on it, and the op has no beta input:
         * where expected, it gets gamma's memory, unread. */
        const bool takes_shift = one_pd_num_inputs(pd) > NORM_BACKWARD_INPUTS;
        const one_binding args[] = {{DNNL_ARG_DIFF_DST, ONE_ARG_INPUT, 0, &m[MD_DATA]},
                                    {DNNL_ARG_SRC, ONE_ARG_INPUT, 1, &m[MD_DATA]},
                                    {DNNL_ARG_SCALE, ONE_ARG_INPUT, 2, &m[MD_PARAM]},
                                    {takes_shift ? DNNL_ARG_SHIFT : ONE_NO_ARG, ONE_ARG_INPUT, 2, &m[MD_PARAM]},
                                    {DNNL_ARG_MEAN, ONE_ARG_INPUT, 3, &m[MD_STAT]},
                                    {DNNL_ARG_VARIANCE, ONE_ARG_TEMP, 0, NULL},
                                    {DNNL_ARG_DIFF_SRC, ONE_ARG_OUTPUT, 0, &m[MD_DATA]},
                                    {DNNL_ARG_DIFF_SCALE, ONE_ARG_OUTPUT, 1, &m[MD_PARAM]},
                                    {DNNL_ARG_DIFF_SHIFT, ONE_ARG_OUTPUT, 2, &m[MD_PARAM]}};
        st = one_plan_add_bound_step(s, plan, pd, args, ONE_COUNT_OF(args), "normalization backward", reason, cap);
    }
    one_pd_destroy(pd);
    one_pd_destroy(hint);
    one_mds_release(m, N_MDS);
    return st;
}

static double estimate_norm(const one_state *s, const plx_op_call *call)
{
    (void)s;
    if (!is_batch(call->op_id))
        return one_estimate_memory_bound(call, is_backward(call->op_id) ? LAYER_NORM_BACKWARD_PASSES
                                                                        : LAYER_NORM_FORWARD_PASSES);
    int64_t dims[4];
    batch_dims(x_of(call), dims);
    double spatial = (double)dims[2];
    double small = spatial < BATCH_NORM_SMALL_SPATIAL ? BATCH_NORM_SMALL_SPATIAL / spatial : 1.0;
    return one_estimate_memory_bound(call, BATCH_NORM_PASSES * small);
}

ONE_FAMILY_TABLE(
    norm, {PLX_OP_BATCH_NORM, sizeof(plx_batch_norm_attrs), ONE_DT_F32, check_norm, build_forward, estimate_norm},
    {PLX_OP_BATCH_NORM_BACKWARD, sizeof(plx_batch_norm_attrs), ONE_DT_F32, check_norm, build_backward, estimate_norm},
    {PLX_OP_LAYER_NORM, sizeof(plx_layer_norm_attrs), ONE_DT_F32, check_norm, build_forward, estimate_norm},
    {PLX_OP_LAYER_NORM_BACKWARD, sizeof(plx_layer_norm_attrs), ONE_DT_F32, check_norm, build_backward, estimate_norm});

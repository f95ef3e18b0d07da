/* Core ops of the optim family: fused, in-place optimizer updates (as
 * torch.optim, 1.13 semantics) and gradient clipping by total norm. State
 * inputs are present exactly when the attrs need them, so their position is
 * never ambiguous. */
#include <math.h>

#include "../op_catalog.h"

static const plx_sgd_attrs sgd_default = PLX_SGD_ATTRS_DEFAULT;
static const plx_adam_attrs adam_default = PLX_ADAM_ATTRS_DEFAULT;
static const plx_rmsprop_attrs rmsprop_default = PLX_RMSPROP_ATTRS_DEFAULT;
static const plx_adagrad_attrs adagrad_default = PLX_ADAGRAD_ATTRS_DEFAULT;
static const plx_clip_grad_norm_attrs clip_default = PLX_CLIP_GRAD_NORM_ATTRS_DEFAULT;

/* Input bits: param (bit 0) and every state slot (bits 2+) are updated in
 * place; grad (bit 1) is only read. */
#define MUTATES_PARAM_AND_1_SLOT 0x5u
#define MUTATES_PARAM_AND_3_SLOTS 0x1du

/* Checks the input count against what the attrs require, naming each slot. */
static plx_status require_state_count(op_infer_args *args, int32_t expected, const char *slots)
{
    if (args->n_inputs != expected)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "got %d inputs but these attrs need %d: %s", (int)args->n_inputs,
                          (int)expected, slots);
    return PLX_OK;
}

/* param is f32; grad and every state tensor match its dtype and shape. */
static plx_status require_param_like(op_infer_args *args, const char *const *roles)
{
    const tensor_meta *param = &args->inputs[0];
    char sp[128], sx[128];
    plx_status st = infer_require_float(args, 0, roles[0]);
    if (st != PLX_OK)
        return st;
    for (int32_t i = 1; i < args->n_inputs; i++) {
        const tensor_meta *x = &args->inputs[i];
        if (!plx_dtype_equal(x->dtype, param->dtype) || !meta_same_shape(x, param))
            return infer_fail(args, meta_same_shape(x, param) ? PLX_DTYPE_MISMATCH : PLX_SHAPE_MISMATCH,
                              "%s (input %d) %s must match param %s", roles[i], (int)i, meta_format(x, sx, sizeof sx),
                              meta_format(param, sp, sizeof sp));
    }
    return PLX_OK;
}

/* Hyperparameters that torch.optim rejects when negative (or NaN). */
static plx_status require_non_negative(op_infer_args *args, const char *name, double value)
{
    if (!(value >= 0.0))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "%s = %g must be >= 0", name, value);
    return PLX_OK;
}

static plx_status require_step(op_infer_args *args, int64_t step)
{
    if (step < 1)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "step = %lld must be >= 1 (it is 1-based)", (long long)step);
    return PLX_OK;
}

static plx_status infer_sgd(op_infer_args *args)
{
    const plx_sgd_attrs *a = args->attrs;
    plx_status st;
    if ((st = require_non_negative(args, "lr", a->lr)) != PLX_OK ||
        (st = require_non_negative(args, "momentum", a->momentum)) != PLX_OK ||
        (st = require_non_negative(args, "weight_decay", a->weight_decay)) != PLX_OK ||
        (st = require_step(args, a->step)) != PLX_OK)
        return st;
    if (!isfinite(a->dampening))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "dampening = %g must be finite", (double)a->dampening);
    if (a->nesterov != 0 && a->nesterov != 1)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "nesterov must be 0 or 1, got %d", (int)a->nesterov);
    if (a->nesterov && (a->momentum <= 0.0f || a->dampening != 0.0f))
        return infer_fail(args, PLX_INVALID_ARGUMENT,
                          "nesterov momentum requires momentum > 0 and dampening 0 (got momentum %g, dampening %g)",
                          (double)a->momentum, (double)a->dampening);
    bool with_momentum = a->momentum != 0.0f;
    if ((st = require_state_count(args, with_momentum ? 3 : 2,
                                  with_momentum ? "param, grad, momentum_buf (momentum != 0)"
                                                : "param, grad (no momentum_buf when momentum is 0)")) != PLX_OK)
        return st;
    static const char *const roles[] = {"param", "grad", "momentum_buf"};
    return require_param_like(args, roles);
}

static plx_status infer_adam(op_infer_args *args)
{
    const plx_adam_attrs *a = args->attrs;
    plx_status st;
    if ((st = require_non_negative(args, "lr", a->lr)) != PLX_OK ||
        (st = require_non_negative(args, "eps", a->eps)) != PLX_OK ||
        (st = require_non_negative(args, "weight_decay", a->weight_decay)) != PLX_OK ||
        (st = require_step(args, a->step)) != PLX_OK)
        return st;
    if (!(a->beta1 >= 0.0f && a->beta1 < 1.0f) || !(a->beta2 >= 0.0f && a->beta2 < 1.0f))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "betas (%g, %g) must be in [0, 1)", (double)a->beta1,
                          (double)a->beta2);
    if ((a->amsgrad != 0 && a->amsgrad != 1) || (a->decoupled_weight_decay != 0 && a->decoupled_weight_decay != 1))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "amsgrad (%d) and decoupled_weight_decay (%d) must be 0 or 1",
                          (int)a->amsgrad, (int)a->decoupled_weight_decay);
    if ((st = require_state_count(args, a->amsgrad ? 5 : 4,
                                  a->amsgrad ? "param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad)"
                                             : "param, grad, exp_avg, exp_avg_sq (max_exp_avg_sq only with "
                                               "amsgrad)")) != PLX_OK)
        return st;
    static const char *const roles[] = {"param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    return require_param_like(args, roles);
}

static plx_status infer_rmsprop(op_infer_args *args)
{
    const plx_rmsprop_attrs *a = args->attrs;
    plx_status st;
    if ((st = require_non_negative(args, "lr", a->lr)) != PLX_OK ||
        (st = require_non_negative(args, "alpha", a->alpha)) != PLX_OK ||
        (st = require_non_negative(args, "eps", a->eps)) != PLX_OK ||
        (st = require_non_negative(args, "momentum", a->momentum)) != PLX_OK ||
        (st = require_non_negative(args, "weight_decay", a->weight_decay)) != PLX_OK)
        return st;
    if (a->centered != 0 && a->centered != 1)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "centered must be 0 or 1, got %d", (int)a->centered);
    bool with_momentum = a->momentum != 0.0f;
    int32_t expected = 3 + (with_momentum ? 1 : 0) + (a->centered ? 1 : 0);
    const char *slots = with_momentum ? (a->centered ? "param, grad, square_avg, momentum_buf, grad_avg"
                                                     : "param, grad, square_avg, momentum_buf (no grad_avg: not "
                                                       "centered)")
                                      : (a->centered ? "param, grad, square_avg, grad_avg (no momentum_buf: "
                                                       "momentum is 0)"
                                                     : "param, grad, square_avg (no momentum_buf, no grad_avg)");
    if ((st = require_state_count(args, expected, slots)) != PLX_OK)
        return st;
    const char *roles[5] = {"param", "grad", "square_avg", "momentum_buf", "grad_avg"};
    if (!with_momentum)
        roles[3] = "grad_avg";
    return require_param_like(args, roles);
}

static plx_status infer_adagrad(op_infer_args *args)
{
    const plx_adagrad_attrs *a = args->attrs;
    plx_status st;
    if ((st = require_non_negative(args, "lr", a->lr)) != PLX_OK ||
        (st = require_non_negative(args, "lr_decay", a->lr_decay)) != PLX_OK ||
        (st = require_non_negative(args, "weight_decay", a->weight_decay)) != PLX_OK ||
        (st = require_non_negative(args, "eps", a->eps)) != PLX_OK || (st = require_step(args, a->step)) != PLX_OK)
        return st;
    if ((st = require_state_count(args, 3, "param, grad, state_sum")) != PLX_OK)
        return st;
    static const char *const roles[] = {"param", "grad", "state_sum"};
    return require_param_like(args, roles);
}

static plx_status infer_clip_grad_norm(op_infer_args *args)
{
    const plx_clip_grad_norm_attrs *a = args->attrs;
    char s0[128], si[128];
    plx_status st = infer_require_float(args, 0, "g1");
    if (st != PLX_OK)
        return st;
    if (!(a->max_norm >= 0.0f))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "max_norm = %g must be >= 0", (double)a->max_norm);
    if (a->norm_type != 1.0f && a->norm_type != 2.0f && a->norm_type != INFINITY)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "norm_type = %g must be 1, 2 or inf", (double)a->norm_type);
    for (int32_t i = 1; i < args->n_inputs; i++)
        if (!plx_dtype_equal(args->inputs[i].dtype, args->inputs[0].dtype))
            return infer_fail(args, PLX_DTYPE_MISMATCH, "gradient %d %s must have the dtype of gradient 0 %s",
                              (int)i, meta_format(&args->inputs[i], si, sizeof si),
                              meta_format(&args->inputs[0], s0, sizeof s0));
    meta_set(&args->outputs[0], PLX_F32, 0, NULL);
    return PLX_OK;
}

/* A fused update reads and writes each slot once per element. */
static double work_update(const op_infer_args *args)
{
    return 4.0 * (double)args->n_inputs * (double)meta_numel(&args->inputs[0]);
}

static double work_clip(const op_infer_args *args)
{
    double n = 0.0;
    for (int32_t i = 0; i < args->n_inputs; i++)
        n += (double)meta_numel(&args->inputs[i]);
    return 3.0 * n;
}

const op_def op_defs_optim[] = {
    {PLX_OP_SGD_UPDATE, 2, 3, 0, MUTATES_PARAM_AND_1_SLOT, sizeof(plx_sgd_attrs), &sgd_default, infer_sgd, work_update},
    {PLX_OP_ADAM_UPDATE, 4, 5, 0, MUTATES_PARAM_AND_3_SLOTS, sizeof(plx_adam_attrs), &adam_default, infer_adam, work_update},
    {PLX_OP_RMSPROP_UPDATE, 3, 5, 0, MUTATES_PARAM_AND_3_SLOTS, sizeof(plx_rmsprop_attrs), &rmsprop_default, infer_rmsprop,
     work_update},
    {PLX_OP_ADAGRAD_UPDATE, 3, 3, 0, MUTATES_PARAM_AND_1_SLOT, sizeof(plx_adagrad_attrs), &adagrad_default, infer_adagrad,
     work_update},
    {PLX_OP_CLIP_GRAD_NORM, 1, -1, 1, OP_MUTATES_ALL_INPUTS, sizeof(plx_clip_grad_norm_attrs), &clip_default,
     infer_clip_grad_norm, work_clip},
};
const size_t op_defs_optim_count = sizeof(op_defs_optim) / sizeof(op_defs_optim[0]);

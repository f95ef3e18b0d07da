/*
 * plexus_ops.h — the core op catalog: names, stable ids and attribute structs.
 *
 * Ops are named in namespaces ("core.conv2d", "acme.myop"). Core ops have the
 * fixed ids below (append-only: an id never changes meaning, so a plugin built
 * against an older minor sees the same numbers); ops from other namespaces are
 * interned by the runtime at load and get ids >= PLX_OP_CUSTOM_BASE, which are
 * valid only inside one context. Files always store names, never ids.
 *
 * Semantics follow PyTorch where a choice must be made (broadcasting, NCHW,
 * padding, reductions, loss conventions) so results can be checked against it.
 *
 * Each entry's comment gives: inputs -> outputs, and the attribute struct.
 * "(mut)" marks an input the op updates in place. Unless stated otherwise,
 * float ops take f32 and every output has the dtype of the first input.
 * Attribute structs start with struct_size and grow only by appending; the
 * runtime fills a caller's shorter struct with the defaults of the missing
 * fields (PLX_*_ATTRS_DEFAULT) before any backend sees it, so kernels always
 * receive the full current struct. Passing NULL attrs means "all defaults".
 */
#ifndef PLEXUS_OPS_H
#define PLEXUS_OPS_H

#include "plexus_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PLX_OP_CUSTOM_BASE 0x10000

/* X(ID, "name") — the catalog, in id order. */
#define PLX_CORE_OPS(X)                                                     \
    /* Elementwise unary: x -> y, same shape. Attrs: see each. */           \
    X(NEG, "core.neg")                 /* none */                           \
    X(ABS, "core.abs")                 /* none */                           \
    X(EXP, "core.exp")                 /* none */                           \
    X(LOG, "core.log")                 /* none */                           \
    X(SQRT, "core.sqrt")               /* none */                           \
    X(RSQRT, "core.rsqrt")             /* none */                           \
    X(SQUARE, "core.square")           /* none */                           \
    X(RELU, "core.relu")               /* none */                           \
    X(LEAKY_RELU, "core.leaky_relu")   /* plx_leaky_relu_attrs */           \
    X(ELU, "core.elu")                 /* plx_elu_attrs */                  \
    X(GELU, "core.gelu")               /* plx_gelu_attrs */                 \
    X(SIGMOID, "core.sigmoid")         /* none */                           \
    X(TANH, "core.tanh")               /* none */                           \
    X(SOFTPLUS, "core.softplus")       /* plx_softplus_attrs */             \
    X(CLAMP, "core.clamp")             /* plx_clamp_attrs */                \
    /* Unary gradients: (dy, x) -> dx, attrs as the forward op. */          \
    X(NEG_GRAD, "core.neg_grad")                                            \
    X(ABS_GRAD, "core.abs_grad")                                            \
    X(EXP_GRAD, "core.exp_grad")                                            \
    X(LOG_GRAD, "core.log_grad")                                            \
    X(SQRT_GRAD, "core.sqrt_grad")                                          \
    X(RSQRT_GRAD, "core.rsqrt_grad")                                        \
    X(SQUARE_GRAD, "core.square_grad")                                      \
    X(RELU_GRAD, "core.relu_grad")                                          \
    X(LEAKY_RELU_GRAD, "core.leaky_relu_grad")                              \
    X(ELU_GRAD, "core.elu_grad")                                            \
    X(GELU_GRAD, "core.gelu_grad")                                          \
    X(SIGMOID_GRAD, "core.sigmoid_grad")                                    \
    X(TANH_GRAD, "core.tanh_grad")                                          \
    X(SOFTPLUS_GRAD, "core.softplus_grad")                                  \
    X(CLAMP_GRAD, "core.clamp_grad")                                        \
    /* Binary with NumPy/PyTorch broadcasting: (a, b) -> y. No attrs. */    \
    X(ADD, "core.add")                                                      \
    X(SUB, "core.sub")                                                      \
    X(MUL, "core.mul")                                                      \
    X(DIV, "core.div")                                                      \
    X(POW, "core.pow")                                                      \
    X(MAXIMUM, "core.maximum")                                              \
    X(MINIMUM, "core.minimum")                                              \
    /* Comparisons: (a, b) -> bool, broadcasting. No attrs. */              \
    X(EQ, "core.eq")                                                        \
    X(NE, "core.ne")                                                        \
    X(LT, "core.lt")                                                        \
    X(LE, "core.le")                                                        \
    X(GT, "core.gt")                                                        \
    X(GE, "core.ge")                                                        \
    /* (cond: bool, a, b) -> y, all three broadcast. No attrs. */           \
    X(WHERE, "core.where")                                                  \
    /* Reductions: x -> y. plx_reduce_attrs. */                             \
    X(SUM, "core.sum")                                                      \
    X(MEAN, "core.mean")                                                    \
    X(MAX, "core.max")                                                      \
    X(MIN, "core.min")                                                      \
    /* x -> i64 indices. plx_argmax_attrs. Ties: the first index. */        \
    X(ARGMAX, "core.argmax")                                                \
    /* (a [...,M,K], b [...,K,N]) -> [...,M,N]; batch dims broadcast;       \
     * plx_matmul_attrs transposes the last two dims of a or b. */          \
    X(MATMUL, "core.matmul")                                                \
    /* (x [N,C,H,W], w [K,C/g,R,S], bias [K] optional) -> y [N,K,P,Q].      \
     * plx_conv2d_attrs. */                                                 \
    X(CONV2D, "core.conv2d")                                                \
    /* (dy [N,K,P,Q], w) -> dx; plx_conv2d_backward_attrs, out_shape = x */ \
    X(CONV2D_BACKWARD_DATA, "core.conv2d_backward_data")                    \
    /* (dy [N,K,P,Q], x) -> dw; plx_conv2d_backward_attrs, out_shape = w */ \
    X(CONV2D_BACKWARD_WEIGHT, "core.conv2d_backward_weight")                \
    /* Pooling over NCHW. plx_pool2d_attrs. */                              \
    X(MAX_POOL2D, "core.max_pool2d")               /* x -> y */             \
    X(MAX_POOL2D_BACKWARD, "core.max_pool2d_backward") /* (dy, x) -> dx */  \
    X(AVG_POOL2D, "core.avg_pool2d")               /* x -> y */             \
    X(AVG_POOL2D_BACKWARD, "core.avg_pool2d_backward") /* (dy, x) -> dx */  \
    /* x [N,C,H,W] -> [N,C,1,1]; no attrs. */                               \
    X(GLOBAL_AVG_POOL2D, "core.global_avg_pool2d")                          \
    X(GLOBAL_AVG_POOL2D_BACKWARD, "core.global_avg_pool2d_backward")        \
    /* (x [N,C,...], gamma [C], beta [C], running_mean [C] (mut in          \
     * training), running_var [C] (mut in training)) ->                     \
     * (y, save_mean [C], save_invstd [C]). plx_batch_norm_attrs.           \
     * Running stats follow PyTorch (unbiased variance, momentum). In       \
     * inference save_* are the running mean and 1/sqrt(var + eps). */      \
    X(BATCH_NORM, "core.batch_norm")                                        \
    /* (dy, x, gamma, save_mean, save_invstd) -> (dx, dgamma, dbeta). */    \
    X(BATCH_NORM_BACKWARD, "core.batch_norm_backward")                      \
    /* (x, gamma, beta) -> (y, mean, invstd); gamma/beta have the shape of  \
     * the last normalized_ndim dims, mean/invstd the leading dims.         \
     * plx_layer_norm_attrs. */                                             \
    X(LAYER_NORM, "core.layer_norm")                                        \
    /* (dy, x, gamma, mean, invstd) -> (dx, dgamma, dbeta). */              \
    X(LAYER_NORM_BACKWARD, "core.layer_norm_backward")                      \
    /* x -> y along one axis. plx_softmax_attrs. */                         \
    X(SOFTMAX, "core.softmax")                                              \
    X(SOFTMAX_BACKWARD, "core.softmax_backward")         /* (dy, y) -> dx */\
    X(LOG_SOFTMAX, "core.log_softmax")                                      \
    X(LOG_SOFTMAX_BACKWARD, "core.log_softmax_backward") /* (dy, y) -> dx */\
    /* Losses. plx_loss_attrs. Output: scalar (ndim 0) for mean/sum, per-  \
     * element (per-sample for CE/NLL) for none. Backward ops take the      \
     * loss gradient first (shape of the loss) and return d(first input).   \
     * CE: (logits [N,C] or [N,C,d...], target i64 [N] or [N,d...]). */     \
    X(CROSS_ENTROPY, "core.cross_entropy")                                  \
    X(CROSS_ENTROPY_BACKWARD, "core.cross_entropy_backward")                \
    X(NLL_LOSS, "core.nll_loss")                  /* (logp, target i64) */  \
    X(NLL_LOSS_BACKWARD, "core.nll_loss_backward")                          \
    X(BCE_WITH_LOGITS, "core.bce_with_logits")    /* (x, target f32) */     \
    X(BCE_WITH_LOGITS_BACKWARD, "core.bce_with_logits_backward")            \
    X(MSE_LOSS, "core.mse_loss")                  /* (x, target) */         \
    X(MSE_LOSS_BACKWARD, "core.mse_loss_backward")                          \
    X(L1_LOSS, "core.l1_loss")                    /* (x, target) */         \
    X(L1_LOSS_BACKWARD, "core.l1_loss_backward")                            \
    X(HUBER_LOSS, "core.huber_loss")              /* (x, target) */         \
    X(HUBER_LOSS_BACKWARD, "core.huber_loss_backward")                      \
    /* x -> y; zeroes elements with probability p, scales the rest by      \
     * 1/(1-p). The mask is a pure function of (seed, offset + element     \
     * index) through Philox4x32-10, identical on every backend.           \
     * plx_dropout_attrs. Backward: dy -> dx with the same attrs. */        \
    X(DROPOUT, "core.dropout")                                              \
    X(DROPOUT_BACKWARD, "core.dropout_backward")                            \
    /* (weight [V,D], indices i64/i32 [...]) -> [..., D].                  \
     * plx_embedding_attrs. Out-of-range indices are an error. */          \
    X(EMBEDDING, "core.embedding")                                          \
    /* (dy [...,D], indices) -> dweight [V,D] (scatter-add). */             \
    X(EMBEDDING_BACKWARD, "core.embedding_backward")                        \
    /* Layout and data movement. */                                         \
    X(COPY, "core.copy")       /* x (any strides) -> compact y; none */     \
    X(CAST, "core.cast")       /* x -> y of attrs dtype; plx_cast_attrs */  \
    X(RESHAPE, "core.reshape") /* plx_reshape_attrs (one -1 allowed) */     \
    X(PERMUTE, "core.permute") /* plx_permute_attrs */                      \
    X(CONCAT, "core.concat")   /* (x1..xn) -> y; plx_concat_attrs */        \
    X(SLICE, "core.slice")     /* plx_slice_attrs */                        \
    X(PAD, "core.pad")         /* plx_pad_attrs */                          \
    /* Sources: () -> y of attrs dtype/shape. */                            \
    X(FILL, "core.fill")                     /* plx_fill_attrs */           \
    X(RANDOM_UNIFORM, "core.random_uniform") /* plx_random_attrs */         \
    X(RANDOM_NORMAL, "core.random_normal")   /* plx_random_attrs */         \
    /* Optimizer updates, fused, in place (no outputs). */                  \
    /* (param (mut), grad, momentum_buf (mut; needed iff momentum != 0)) */ \
    X(SGD_UPDATE, "core.sgd_update")                                        \
    /* (param (mut), grad, exp_avg (mut), exp_avg_sq (mut),                 \
     *  max_exp_avg_sq (mut; iff amsgrad)) */                               \
    X(ADAM_UPDATE, "core.adam_update")                                      \
    /* (param (mut), grad, square_avg (mut), momentum_buf (mut; iff         \
     *  momentum != 0), grad_avg (mut; iff centered)) */                    \
    X(RMSPROP_UPDATE, "core.rmsprop_update")                                \
    /* (param (mut), grad, state_sum (mut)) */                              \
    X(ADAGRAD_UPDATE, "core.adagrad_update")                                \
    /* (g1 (mut) .. gn (mut)) -> total_norm (f32 scalar, before clipping). \
     * Scales every g by min(1, max_norm / (total_norm + 1e-6)). */         \
    X(CLIP_GRAD_NORM, "core.clip_grad_norm")

typedef enum plx_core_op {
#define PLX_OP_ENUM_(id, name) PLX_OP_##id,
    PLX_CORE_OPS(PLX_OP_ENUM_)
#undef PLX_OP_ENUM_
    PLX_OP_CORE_COUNT_
} plx_core_op;

/* ---- Attribute structs --------------------------------------------------- */

typedef struct plx_leaky_relu_attrs {
    uint32_t struct_size;
    float negative_slope; /* default 0.01 */
} plx_leaky_relu_attrs;
#define PLX_LEAKY_RELU_ATTRS_DEFAULT {sizeof(plx_leaky_relu_attrs), 0.01f}

typedef struct plx_elu_attrs {
    uint32_t struct_size;
    float alpha; /* default 1 */
} plx_elu_attrs;
#define PLX_ELU_ATTRS_DEFAULT {sizeof(plx_elu_attrs), 1.0f}

typedef struct plx_gelu_attrs {
    uint32_t struct_size;
    int32_t approximate_tanh; /* 0: exact erf form (default); 1: tanh form */
} plx_gelu_attrs;
#define PLX_GELU_ATTRS_DEFAULT {sizeof(plx_gelu_attrs), 0}

typedef struct plx_softplus_attrs {
    uint32_t struct_size;
    float beta;      /* default 1 */
    float threshold; /* default 20: linear above beta*x > threshold */
} plx_softplus_attrs;
#define PLX_SOFTPLUS_ATTRS_DEFAULT {sizeof(plx_softplus_attrs), 1.0f, 20.0f}

typedef struct plx_clamp_attrs {
    uint32_t struct_size;
    float min_value; /* used iff has_min */
    float max_value; /* used iff has_max */
    int32_t has_min;
    int32_t has_max;
} plx_clamp_attrs;
#define PLX_CLAMP_ATTRS_DEFAULT {sizeof(plx_clamp_attrs), 0.0f, 0.0f, 0, 0}

typedef struct plx_reduce_attrs {
    uint32_t struct_size;
    int32_t n_axes;              /* 0: reduce over all axes */
    int32_t axes[PLX_MAX_DIMS];  /* negative counts from the end; no repeats */
    int32_t keepdims;            /* keep reduced axes with size 1 */
} plx_reduce_attrs;
#define PLX_REDUCE_ATTRS_DEFAULT {sizeof(plx_reduce_attrs), 0, {0}, 0}

typedef struct plx_argmax_attrs {
    uint32_t struct_size;
    int32_t axis; /* default -1 */
    int32_t keepdims;
} plx_argmax_attrs;
#define PLX_ARGMAX_ATTRS_DEFAULT {sizeof(plx_argmax_attrs), -1, 0}

typedef struct plx_matmul_attrs {
    uint32_t struct_size;
    int32_t trans_a; /* use a's last two dims transposed */
    int32_t trans_b;
} plx_matmul_attrs;
#define PLX_MATMUL_ATTRS_DEFAULT {sizeof(plx_matmul_attrs), 0, 0}

/* Output P = floor((H + 2*pad - dil*(R-1) - 1) / stride) + 1 (PyTorch). */
/* Activations a producer op can apply to its result in the same pass. */
enum { PLX_ACTIVATION_NONE = 0, PLX_ACTIVATION_RELU = 1 };

typedef struct plx_conv2d_attrs {
    uint32_t struct_size;
    int32_t stride[2];   /* default 1,1 */
    int32_t padding[2];  /* default 0,0; zero padding, symmetric */
    int32_t dilation[2]; /* default 1,1 */
    int32_t groups;      /* default 1; C and K divisible by groups */
    /* ABI 1.2: PLX_ACTIVATION_* applied after the bias (default none). The
     * graph executor sets it when it fuses a following core.relu; its
     * gradient is core.relu_grad on the (activated) output first. */
    int32_t activation;
} plx_conv2d_attrs;
#define PLX_CONV2D_ATTRS_DEFAULT {sizeof(plx_conv2d_attrs), {1, 1}, {0, 0}, {1, 1}, 1, PLX_ACTIVATION_NONE}

typedef struct plx_conv2d_backward_attrs {
    uint32_t struct_size;
    int32_t stride[2];
    int32_t padding[2];
    int32_t dilation[2];
    int32_t groups;
    /* Shape of the result: x's [N,C,H,W] for backward_data (H and W are
     * ambiguous from dy when stride > 1), w's [K,C/g,R,S] for
     * backward_weight. Required. */
    int64_t out_shape[4];
} plx_conv2d_backward_attrs;
#define PLX_CONV2D_BACKWARD_ATTRS_DEFAULT                                   \
    {sizeof(plx_conv2d_backward_attrs), {1, 1}, {0, 0}, {1, 1}, 1, {0, 0, 0, 0}}

/* Output size as PyTorch: floor (or ceil with ceil_mode, where the last
 * window must start inside the input or left padding). */
typedef struct plx_pool2d_attrs {
    uint32_t struct_size;
    int32_t kernel[2];   /* required, > 0 */
    int32_t stride[2];   /* 0 means "= kernel" (default) */
    int32_t padding[2];  /* <= kernel/2; max pads with -inf, avg with 0 */
    int32_t dilation[2]; /* max pool only; default 1 */
    int32_t ceil_mode;
    int32_t count_include_pad; /* avg pool only; default 1 as PyTorch */
} plx_pool2d_attrs;
#define PLX_POOL2D_ATTRS_DEFAULT                                            \
    {sizeof(plx_pool2d_attrs), {0, 0}, {0, 0}, {0, 0}, {1, 1}, 0, 1}

typedef struct plx_batch_norm_attrs {
    uint32_t struct_size;
    float eps;        /* default 1e-5 */
    float momentum;   /* default 0.1: running = (1-m)*running + m*batch */
    int32_t training; /* 1: batch statistics, update running stats */
} plx_batch_norm_attrs;
#define PLX_BATCH_NORM_ATTRS_DEFAULT {sizeof(plx_batch_norm_attrs), 1e-5f, 0.1f, 1}

typedef struct plx_layer_norm_attrs {
    uint32_t struct_size;
    float eps;               /* default 1e-5 */
    int32_t normalized_ndim; /* default 1: normalize over the last dim */
} plx_layer_norm_attrs;
#define PLX_LAYER_NORM_ATTRS_DEFAULT {sizeof(plx_layer_norm_attrs), 1e-5f, 1}

typedef struct plx_softmax_attrs {
    uint32_t struct_size;
    int32_t axis; /* default -1 */
} plx_softmax_attrs;
#define PLX_SOFTMAX_ATTRS_DEFAULT {sizeof(plx_softmax_attrs), -1}

enum { PLX_REDUCTION_MEAN = 0, PLX_REDUCTION_SUM = 1, PLX_REDUCTION_NONE = 2 };

typedef struct plx_loss_attrs {
    uint32_t struct_size;
    int32_t reduction;     /* PLX_REDUCTION_*, default mean */
    float label_smoothing; /* cross_entropy only, in [0, 1) */
    int64_t ignore_index;  /* CE/NLL: targets equal to it add nothing; default -100 */
    float delta;           /* huber only, default 1 */
} plx_loss_attrs;
#define PLX_LOSS_ATTRS_DEFAULT {sizeof(plx_loss_attrs), PLX_REDUCTION_MEAN, 0.0f, -100, 1.0f}

typedef struct plx_dropout_attrs {
    uint32_t struct_size;
    float p;         /* drop probability in [0, 1) */
    uint64_t seed;   /* Philox key */
    uint64_t offset; /* counter offset: element i uses counter offset + i */
} plx_dropout_attrs;
#define PLX_DROPOUT_ATTRS_DEFAULT {sizeof(plx_dropout_attrs), 0.5f, 0, 0}

typedef struct plx_embedding_attrs {
    uint32_t struct_size;
    int64_t num_embeddings; /* V: required by embedding_backward */
    int64_t padding_idx;    /* rows at this index get no gradient; -1: none */
} plx_embedding_attrs;
#define PLX_EMBEDDING_ATTRS_DEFAULT {sizeof(plx_embedding_attrs), 0, -1}

typedef struct plx_cast_attrs {
    uint32_t struct_size;
    plx_dtype dtype; /* target */
} plx_cast_attrs;

typedef struct plx_reshape_attrs {
    uint32_t struct_size;
    int32_t ndim;
    int64_t shape[PLX_MAX_DIMS]; /* one entry may be -1 (inferred) */
} plx_reshape_attrs;

typedef struct plx_permute_attrs {
    uint32_t struct_size;
    int32_t ndim;
    int32_t perm[PLX_MAX_DIMS]; /* y.shape[i] = x.shape[perm[i]] */
} plx_permute_attrs;

typedef struct plx_concat_attrs {
    uint32_t struct_size;
    int32_t axis; /* negative counts from the end */
} plx_concat_attrs;
#define PLX_CONCAT_ATTRS_DEFAULT {sizeof(plx_concat_attrs), 0}

/* Python slicing per listed axis: start/end are clamped, negative counts
 * from the end, step > 0. Unlisted axes are kept whole. */
typedef struct plx_slice_attrs {
    uint32_t struct_size;
    int32_t n_axes;
    int32_t axes[PLX_MAX_DIMS];
    int64_t starts[PLX_MAX_DIMS];
    int64_t ends[PLX_MAX_DIMS];
    int64_t steps[PLX_MAX_DIMS]; /* 0 is read as 1 */
} plx_slice_attrs;

enum { PLX_PAD_CONSTANT = 0, PLX_PAD_REFLECT = 1, PLX_PAD_REPLICATE = 2 };

/* Pads every dim i by before[i] and after[i] (>= 0) elements. */
typedef struct plx_pad_attrs {
    uint32_t struct_size;
    int32_t ndim; /* must equal x's ndim */
    int64_t before[PLX_MAX_DIMS];
    int64_t after[PLX_MAX_DIMS];
    int32_t mode; /* PLX_PAD_*; reflect needs pad < dim size */
    float value;  /* constant mode */
} plx_pad_attrs;

typedef struct plx_fill_attrs {
    uint32_t struct_size;
    plx_dtype dtype;
    int32_t ndim;
    int64_t shape[PLX_MAX_DIMS];
    double value;
} plx_fill_attrs;

/* Uniform in [a, b) or normal(mean = a, std = b), f32, counter-based
 * (Philox4x32-10): element i is a pure function of (seed, offset + i). */
typedef struct plx_random_attrs {
    uint32_t struct_size;
    int32_t ndim;
    int64_t shape[PLX_MAX_DIMS];
    float a;
    float b;
    uint64_t seed;
    uint64_t offset;
} plx_random_attrs;

/* As torch.optim.SGD. step is 1-based; on step 1 the momentum buffer is set
 * to the gradient (no dampening), as PyTorch does. */
typedef struct plx_sgd_attrs {
    uint32_t struct_size;
    float lr;
    float momentum;
    float dampening;
    float weight_decay;
    int32_t nesterov;
    int64_t step;
} plx_sgd_attrs;
#define PLX_SGD_ATTRS_DEFAULT {sizeof(plx_sgd_attrs), 0.01f, 0.0f, 0.0f, 0.0f, 0, 1}

/* As torch.optim.Adam (decoupled_weight_decay = 0) and AdamW (= 1). */
typedef struct plx_adam_attrs {
    uint32_t struct_size;
    float lr;
    float beta1;
    float beta2;
    float eps;
    float weight_decay;
    int32_t decoupled_weight_decay;
    int32_t amsgrad;
    int64_t step; /* 1-based, for bias correction */
} plx_adam_attrs;
#define PLX_ADAM_ATTRS_DEFAULT                                              \
    {sizeof(plx_adam_attrs), 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0, 0, 1}

/* As torch.optim.RMSprop. */
typedef struct plx_rmsprop_attrs {
    uint32_t struct_size;
    float lr;
    float alpha;
    float eps;
    float weight_decay;
    float momentum;
    int32_t centered;
} plx_rmsprop_attrs;
#define PLX_RMSPROP_ATTRS_DEFAULT {sizeof(plx_rmsprop_attrs), 1e-2f, 0.99f, 1e-8f, 0.0f, 0.0f, 0}

/* As torch.optim.Adagrad. */
typedef struct plx_adagrad_attrs {
    uint32_t struct_size;
    float lr;
    float lr_decay;
    float weight_decay;
    float eps;
    int64_t step; /* 1-based */
} plx_adagrad_attrs;
#define PLX_ADAGRAD_ATTRS_DEFAULT {sizeof(plx_adagrad_attrs), 1e-2f, 0.0f, 0.0f, 1e-10f, 1}

typedef struct plx_clip_grad_norm_attrs {
    uint32_t struct_size;
    float max_norm;
    float norm_type; /* 2 (default), 1, or INFINITY */
} plx_clip_grad_norm_attrs;
#define PLX_CLIP_GRAD_NORM_ATTRS_DEFAULT {sizeof(plx_clip_grad_norm_attrs), 1.0f, 2.0f}

#ifdef __cplusplus
}
#endif
#endif /* PLEXUS_OPS_H */

/*
 * optimizer.h — internal: optimizers as graph nodes, and learning-rate
 * schedules.
 *
 * optimizer_build appends to the training graph, per trainable parameter:
 * the gradient's regularization (L1) and clipping (by value: core.clamp; by
 * global norm: one core.clip_grad_norm over all gradients), its state slots
 * (named "optimizer.<param>.<slot>", persistent, zero-initialized, saved in
 * checkpoints) and one fused update op (core.sgd_update, core.adam_update,
 * ...) so parameters never leave their device. L2 regularization is the
 * optimizer's weight decay. The learning rate and step number change every
 * step: optimizer_set_step patches them into the update nodes' attrs.
 */
#ifndef PLX_OPTIMIZER_H
#define PLX_OPTIMIZER_H

#include "graph.h"

typedef enum opt_kind { OPT_SGD = 0, OPT_ADAM, OPT_ADAMW, OPT_RMSPROP, OPT_ADAGRAD } opt_kind;

typedef struct optimizer_config {
    opt_kind kind;
    float lr;
    float momentum, dampening; /* sgd, rmsprop (momentum) */
    bool nesterov;             /* sgd */
    float weight_decay;        /* L2 (decoupled for adamw) */
    float beta1, beta2, eps;   /* adam(w); eps also rmsprop, adagrad */
    bool amsgrad;
    float alpha;               /* rmsprop smoothing */
    bool centered;             /* rmsprop */
    float lr_decay;            /* adagrad */
    float clip_norm;           /* > 0: clip the global gradient norm to this */
    float clip_value;          /* > 0: clamp each gradient element to +-this */
    float l1;                  /* > 0: add l1 * sign(param) to the gradient */
    float l2;                  /* > 0: add l2 * param to the gradient (coupled L2, whatever the optimizer) */
} optimizer_config;

/* PyTorch's defaults for the kind. */
void optimizer_config_default(opt_kind kind, optimizer_config *c);
const char *optimizer_kind_name(opt_kind kind);
/* "sgd", "adam", "adamw", "rmsprop", "adagrad"; false if unknown. */
bool optimizer_kind_parse(const char *name, opt_kind *out);

typedef struct optimizer_graph {
    int32_t *update_nodes;
    int32_t n_updates;
    int32_t *state_values;
    int32_t n_state;
    int32_t grad_norm; /* value id of the pre-clipping global norm, or -1 */
} optimizer_graph;

plx_status optimizer_build(plx_graph *g, const optimizer_config *c, const int32_t *params, const int32_t *grads,
                           int32_t n, optimizer_graph *out);
void optimizer_graph_free(optimizer_graph *o);
/* Sets lr and the 1-based step in every update node. */
void optimizer_set_step(plx_graph *g, const optimizer_graph *o, float lr, int64_t step);

/* ---- Learning-rate schedules --------------------------------------------
 * A schedule is a product of parts, each a factor on the base rate:
 *   step:        gamma ^ floor(epoch / step_size)
 *   exponential: gamma ^ epoch
 *   cosine:      annealing to eta_min over t_max epochs (per step, PyTorch's
 *                CosineAnnealingLR formula with fractional epochs)
 *   warmup:      linear from start_factor to 1 over warmup_steps steps
 *   plateau:     times factor whenever the monitored metric has not improved
 *                by threshold (relative) for patience epochs, down to min_lr
 */
typedef enum sched_kind { SCHED_STEP = 0, SCHED_EXPONENTIAL, SCHED_COSINE, SCHED_WARMUP, SCHED_PLATEAU } sched_kind;

typedef struct schedule_part {
    sched_kind kind;
    int64_t step_size;     /* step */
    float gamma;           /* step, exponential */
    int64_t t_max;         /* cosine, in epochs */
    float eta_min;         /* cosine */
    int64_t warmup_steps;  /* warmup */
    float start_factor;    /* warmup */
    float factor;          /* plateau */
    int64_t patience;      /* plateau */
    float threshold;       /* plateau */
    float min_lr;          /* plateau */
    bool maximize;         /* plateau: the metric should go up (accuracy) */
} schedule_part;

#define SCHEDULE_MAX_PARTS 8

typedef struct schedule {
    float base_lr;
    schedule_part parts[SCHEDULE_MAX_PARTS];
    int32_t n_parts;
    /* plateau state (saved in checkpoints) */
    double plateau_scale;
    double plateau_best;
    int64_t plateau_bad_epochs;
    bool plateau_seen;
} schedule;

void schedule_init(schedule *s, float base_lr);
/* Learning rate for global step `step` (0-based) of epoch `epoch`. */
float schedule_lr(const schedule *s, int64_t epoch, int64_t step, int64_t steps_per_epoch);
/* Feeds the epoch's monitored metric to plateau parts. */
void schedule_epoch_end(schedule *s, double metric);
/* Plateau state as "scale best bad seen" and back. */
int schedule_state_format(const schedule *s, char *buf, size_t cap);
bool schedule_state_parse(schedule *s, const char *text);

#endif

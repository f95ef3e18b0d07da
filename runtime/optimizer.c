/* optimizer.c — see optimizer.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optimizer.h"

static const char *const kind_names[] = {"sgd", "adam", "adamw", "rmsprop", "adagrad"};

const char *optimizer_kind_name(opt_kind kind)
{
    return kind >= OPT_SGD && kind <= OPT_ADAGRAD ? kind_names[kind] : "?";
}

bool optimizer_kind_parse(const char *name, opt_kind *out)
{
    for (int k = 0; k <= OPT_ADAGRAD; k++)
        if (strcmp(name, kind_names[k]) == 0) {
            *out = (opt_kind)k;
            return true;
        }
    return false;
}

void optimizer_config_default(opt_kind kind, optimizer_config *c)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->alpha = 0.99f;
    switch (kind) {
    case OPT_SGD:
        c->lr = 0.01f;
        break;
    case OPT_ADAM:
        c->lr = 1e-3f;
        c->eps = 1e-8f;
        break;
    case OPT_ADAMW:
        c->lr = 1e-3f;
        c->eps = 1e-8f;
        c->weight_decay = 1e-2f;
        break;
    case OPT_RMSPROP:
        c->lr = 1e-2f;
        c->eps = 1e-8f;
        break;
    case OPT_ADAGRAD:
        c->lr = 1e-2f;
        c->eps = 1e-10f;
        break;
    }
}

void optimizer_graph_free(optimizer_graph *o)
{
    free(o->update_nodes);
    free(o->state_values);
    memset(o, 0, sizeof *o);
}

static plx_status add_slot(plx_graph *g, optimizer_graph *o, int32_t param, const char *slot, int32_t *out)
{
    char name[320];
    snprintf(name, sizeof name, "optimizer.%s.%s", g->values[param].name, slot);
    tensor_meta m = g->values[param].meta;
    plx_initializer zeros = {sizeof zeros, PLX_INIT_ZEROS, 0, 0, 0};
    plx_status st = graph_add_named(g, VALUE_STATE, name, m.dtype, m.ndim, m.dims, &zeros, out);
    if (st == PLX_OK)
        o->state_values[o->n_state++] = *out;
    return st;
}

plx_status optimizer_build(plx_graph *g, const optimizer_config *c, const int32_t *params, const int32_t *grads,
                           int32_t n, optimizer_graph *out)
{
    memset(out, 0, sizeof *out);
    out->grad_norm = -1;
    out->update_nodes = calloc((size_t)n + 1, sizeof(int32_t));
    out->state_values = calloc((size_t)n * 3 + 1, sizeof(int32_t));
    int32_t *g2 = malloc(sizeof(int32_t) * ((size_t)n + 1));
    if (out->update_nodes == NULL || out->state_values == NULL || g2 == NULL) {
        free(g2);
        optimizer_graph_free(out);
        return ctx_fail(g->ctx, PLX_OUT_OF_MEMORY, "optimizer: out of memory");
    }
    const char *saved = g->scope;
    g->scope = "optimizer";
    plx_status st = PLX_OK;
    memcpy(g2, grads, sizeof(int32_t) * (size_t)n);
    /* L1: grad += l1 * sign(param), as abs_grad(l1 filled like param, param). */
    for (int32_t i = 0; i < n && st == PLX_OK && c->l1 > 0; i++) {
        const tensor_meta *pm = &g->values[params[i]].meta;
        plx_fill_attrs f = {sizeof f, PLX_F32, pm->ndim, {0}, c->l1};
        for (int32_t d = 0; d < pm->ndim; d++)
            f.shape[d] = pm->dims[d];
        int32_t coef, sign, sum;
        st = graph_add_op(g, PLX_OP_FILL, &f, NULL, 0, &coef, 1);
        int32_t in[2] = {coef, params[i]};
        if (st == PLX_OK)
            st = graph_add_op(g, PLX_OP_ABS_GRAD, NULL, in, 2, &sign, 1);
        int32_t add_in[2] = {g2[i], sign};
        if (st == PLX_OK)
            st = graph_add_op(g, PLX_OP_ADD, NULL, add_in, 2, &sum, 1);
        if (st == PLX_OK)
            g2[i] = sum;
    }
    /* L2: grad += l2 * param. */
    for (int32_t i = 0; i < n && st == PLX_OK && c->l2 > 0; i++) {
        plx_fill_attrs f = {sizeof f, PLX_F32, 0, {0}, c->l2};
        int32_t coef, scaled, sum;
        st = graph_add_op(g, PLX_OP_FILL, &f, NULL, 0, &coef, 1);
        int32_t in[2] = {params[i], coef};
        if (st == PLX_OK)
            st = graph_add_op(g, PLX_OP_MUL, NULL, in, 2, &scaled, 1);
        int32_t add_in[2] = {g2[i], scaled};
        if (st == PLX_OK)
            st = graph_add_op(g, PLX_OP_ADD, NULL, add_in, 2, &sum, 1);
        if (st == PLX_OK)
            g2[i] = sum;
    }
    for (int32_t i = 0; i < n && st == PLX_OK && c->clip_value > 0; i++) {
        plx_clamp_attrs a = {sizeof a, -c->clip_value, c->clip_value, 1, 1};
        st = graph_add_op(g, PLX_OP_CLAMP, &a, &g2[i], 1, &g2[i], 1);
    }
    if (st == PLX_OK && c->clip_norm > 0 && n > 0) {
        plx_clip_grad_norm_attrs a = {sizeof a, c->clip_norm, 2.0f};
        st = graph_add_op(g, PLX_OP_CLIP_GRAD_NORM, &a, g2, n, &out->grad_norm, 1);
    }
    for (int32_t i = 0; i < n && st == PLX_OK; i++) {
        int32_t in[5], n_in = 0, s1, s2, s3;
        in[n_in++] = params[i];
        in[n_in++] = g2[i];
        switch (c->kind) {
        case OPT_SGD: {
            plx_sgd_attrs a = {sizeof a, c->lr, c->momentum, c->dampening, c->weight_decay, c->nesterov, 1};
            if (c->momentum != 0.0f) {
                st = add_slot(g, out, params[i], "momentum_buffer", &s1);
                in[n_in++] = s1;
            }
            if (st == PLX_OK)
                st = graph_add_op(g, PLX_OP_SGD_UPDATE, &a, in, n_in, NULL, 0);
            break;
        }
        case OPT_ADAM:
        case OPT_ADAMW: {
            plx_adam_attrs a = {sizeof a, c->lr, c->beta1, c->beta2, c->eps, c->weight_decay,
                                c->kind == OPT_ADAMW, c->amsgrad, 1};
            st = add_slot(g, out, params[i], "exp_avg", &s1);
            if (st == PLX_OK)
                st = add_slot(g, out, params[i], "exp_avg_sq", &s2);
            in[n_in++] = s1;
            in[n_in++] = s2;
            if (st == PLX_OK && c->amsgrad) {
                st = add_slot(g, out, params[i], "max_exp_avg_sq", &s3);
                in[n_in++] = s3;
            }
            if (st == PLX_OK)
                st = graph_add_op(g, PLX_OP_ADAM_UPDATE, &a, in, n_in, NULL, 0);
            break;
        }
        case OPT_RMSPROP: {
            plx_rmsprop_attrs a = {sizeof a, c->lr, c->alpha, c->eps, c->weight_decay, c->momentum, c->centered};
            st = add_slot(g, out, params[i], "square_avg", &s1);
            in[n_in++] = s1;
            if (st == PLX_OK && c->momentum != 0.0f) {
                st = add_slot(g, out, params[i], "momentum_buffer", &s2);
                in[n_in++] = s2;
            }
            if (st == PLX_OK && c->centered) {
                st = add_slot(g, out, params[i], "grad_avg", &s3);
                in[n_in++] = s3;
            }
            if (st == PLX_OK)
                st = graph_add_op(g, PLX_OP_RMSPROP_UPDATE, &a, in, n_in, NULL, 0);
            break;
        }
        case OPT_ADAGRAD: {
            plx_adagrad_attrs a = {sizeof a, c->lr, c->lr_decay, c->weight_decay, c->eps, 1};
            st = add_slot(g, out, params[i], "sum", &s1);
            in[n_in++] = s1;
            if (st == PLX_OK)
                st = graph_add_op(g, PLX_OP_ADAGRAD_UPDATE, &a, in, n_in, NULL, 0);
            break;
        }
        }
        if (st == PLX_OK)
            out->update_nodes[out->n_updates++] = g->n_nodes - 1;
    }
    g->scope = saved;
    free(g2);
    if (st != PLX_OK)
        optimizer_graph_free(out);
    return st;
}

void optimizer_set_step(plx_graph *g, const optimizer_graph *o, float lr, int64_t step)
{
    for (int32_t i = 0; i < o->n_updates; i++) {
        graph_node *n = &g->nodes[o->update_nodes[i]];
        switch (n->op_id) {
        case PLX_OP_SGD_UPDATE: {
            plx_sgd_attrs *a = (plx_sgd_attrs *)n->attrs;
            a->lr = lr;
            a->step = step;
            break;
        }
        case PLX_OP_ADAM_UPDATE: {
            plx_adam_attrs *a = (plx_adam_attrs *)n->attrs;
            a->lr = lr;
            a->step = step;
            break;
        }
        case PLX_OP_RMSPROP_UPDATE:
            ((plx_rmsprop_attrs *)n->attrs)->lr = lr;
            break;
        case PLX_OP_ADAGRAD_UPDATE: {
            plx_adagrad_attrs *a = (plx_adagrad_attrs *)n->attrs;
            a->lr = lr;
            a->step = step;
            break;
        }
        default:
            break;
        }
    }
}

/* ---- schedules ------------------------------------------------------------ */

void schedule_init(schedule *s, float base_lr)
{
    memset(s, 0, sizeof *s);
    s->base_lr = base_lr;
    s->plateau_scale = 1.0;
}

float schedule_lr(const schedule *s, int64_t epoch, int64_t step, int64_t steps_per_epoch)
{
    double lr = s->base_lr;
    for (int32_t i = 0; i < s->n_parts; i++) {
        const schedule_part *p = &s->parts[i];
        switch (p->kind) {
        case SCHED_STEP:
            lr *= pow(p->gamma, (double)(epoch / (p->step_size > 0 ? p->step_size : 1)));
            break;
        case SCHED_EXPONENTIAL:
            lr *= pow(p->gamma, (double)epoch);
            break;
        case SCHED_COSINE: {
            double t = steps_per_epoch > 0 ? (double)step / (double)steps_per_epoch : (double)epoch;
            double tmax = p->t_max > 0 ? (double)p->t_max : 1.0;
            if (t > tmax)
                t = tmax;
            double floor_lr = p->eta_min;
            lr = floor_lr + (lr - floor_lr) * 0.5 * (1.0 + cos(M_PI * t / tmax));
            break;
        }
        case SCHED_WARMUP:
            if (p->warmup_steps > 0 && step < p->warmup_steps)
                lr *= p->start_factor + (1.0 - p->start_factor) * (double)step / (double)p->warmup_steps;
            break;
        case SCHED_PLATEAU:
            break;
        }
    }
    lr *= s->plateau_scale;
    for (int32_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].kind == SCHED_PLATEAU && lr < s->parts[i].min_lr)
            lr = s->parts[i].min_lr;
    return (float)lr;
}

void schedule_epoch_end(schedule *s, double metric)
{
    for (int32_t i = 0; i < s->n_parts; i++) {
        const schedule_part *p = &s->parts[i];
        if (p->kind != SCHED_PLATEAU)
            continue;
        /* PyTorch's "rel" threshold mode. */
        bool better = !s->plateau_seen ||
                      (p->maximize ? metric > s->plateau_best * (1.0 + p->threshold)
                                   : metric < s->plateau_best * (1.0 - p->threshold));
        if (better) {
            s->plateau_best = metric;
            s->plateau_seen = true;
            s->plateau_bad_epochs = 0;
        } else if (++s->plateau_bad_epochs > p->patience) {
            s->plateau_scale *= p->factor;
            s->plateau_bad_epochs = 0;
        }
        return; /* one plateau part drives the shared scale */
    }
}

int schedule_state_format(const schedule *s, char *buf, size_t cap)
{
    return snprintf(buf, cap, "%.17g %.17g %lld %d", s->plateau_scale, s->plateau_best,
                    (long long)s->plateau_bad_epochs, s->plateau_seen ? 1 : 0);
}

bool schedule_state_parse(schedule *s, const char *text)
{
    double scale, best;
    long long bad;
    int seen;
    char tail;
    if (sscanf(text, "%lf %lf %lld %d %c", &scale, &best, &bad, &seen, &tail) != 4 || !(scale > 0) || !isfinite(scale) ||
        bad < 0 || (seen != 0 && seen != 1))
        return false;
    s->plateau_scale = scale;
    s->plateau_best = best;
    s->plateau_bad_epochs = bad;
    s->plateau_seen = seen == 1;
    return true;
}

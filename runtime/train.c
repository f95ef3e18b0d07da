/*
 * train.c — the training loop and evaluation: data from the model file's
 * data section, the training graph (forward, loss, backward, optimizer
 * updates) compiled once, a worker thread preparing batches, learning-rate
 * schedules, validation, early stopping that restores the best weights,
 * checkpoints at every epoch end, metrics as JSON lines, and exact resume.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autodiff.h"
#include "model.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the training plan ----------------------------------------------------- */

static plx_status add_input(plx_graph *g, const char *name, plx_dtype dtype, int32_t ndim, const int64_t *dims,
                            int32_t *id, plx_tensor **t)
{
    plx_status st = graph_add_named(g, VALUE_INPUT, name, dtype, ndim, dims, NULL, id);
    if (st == PLX_OK)
        st = plx_tensor_create(g->ctx, dtype, ndim, dims, t);
    return st;
}

static int32_t op1(plx_graph *g, int32_t op, const void *attrs, const int32_t *in, int32_t n_in, plx_status *st)
{
    int32_t out = -1;
    if (*st == PLX_OK)
        *st = graph_add_op(g, op, attrs, in, n_in, &out, 1);
    return out;
}

static plx_status build_loss(plx_model *m, plx_graph *g, int32_t logits)
{
    const model_spec *s = &m->spec;
    int64_t b = s->batch_size;
    plx_status st = PLX_OK;
    g->scope = "loss";
    if (s->loss == LOSS_CROSS_ENTROPY) {
        plx_loss_attrs la = PLX_LOSS_ATTRS_DEFAULT;
        la.label_smoothing = s->label_smoothing;
        if (!augment_mixes(&s->augment)) {
            int32_t in[2] = {logits, m->ty};
            m->tloss = op1(g, PLX_OP_CROSS_ENTROPY, &la, in, 2, &st);
            return st;
        }
        /* Mixing: lam * CE(y) + (1 - lam) * CE(y2) = (CE(y) - CE(y2)) * lam + CE(y2). */
        st = add_input(g, "labels_mix", PLX_I64, 1, &b, &m->ty2, &m->ty2_t);
        if (st == PLX_OK)
            st = add_input(g, "mix_lambda", PLX_F32, 1, &b, &m->tlam, &m->tlam_t);
        la.reduction = PLX_REDUCTION_NONE;
        int32_t in_a[2] = {logits, m->ty}, in_b[2] = {logits, m->ty2};
        int32_t ca = op1(g, PLX_OP_CROSS_ENTROPY, &la, in_a, 2, &st);
        int32_t cb = op1(g, PLX_OP_CROSS_ENTROPY, &la, in_b, 2, &st);
        int32_t d_in[2] = {ca, cb};
        int32_t d = op1(g, PLX_OP_SUB, NULL, d_in, 2, &st);
        int32_t w_in[2] = {d, m->tlam};
        int32_t w = op1(g, PLX_OP_MUL, NULL, w_in, 2, &st);
        int32_t s_in[2] = {w, cb};
        int32_t per = op1(g, PLX_OP_ADD, NULL, s_in, 2, &st);
        m->tloss = op1(g, PLX_OP_MEAN, NULL, &per, 1, &st);
        return st;
    }
    /* Other losses compare the logits with one-hot targets. */
    int64_t tdims[2] = {b, s->classes};
    st = add_input(g, "targets", PLX_F32, 2, tdims, &m->ttarget, &m->ttarget_t);
    plx_loss_attrs la = PLX_LOSS_ATTRS_DEFAULT;
    la.delta = s->huber_delta;
    int32_t in[2] = {logits, m->ttarget};
    int32_t op = s->loss == LOSS_BCE ? PLX_OP_BCE_WITH_LOGITS
                 : s->loss == LOSS_MSE ? PLX_OP_MSE_LOSS
                 : s->loss == LOSS_MAE ? PLX_OP_L1_LOSS
                                       : PLX_OP_HUBER_LOSS;
    m->tloss = op1(g, op, &la, in, 2, &st);
    return st;
}

plx_status model_train_plan(plx_model *m)
{
    if (m->train_plan != NULL)
        return PLX_OK;
    const model_spec *s = &m->spec;
    plx_graph *g = NULL;
    plx_status st = graph_new(m->ctx, &g);
    if (st != PLX_OK)
        return st;
    m->train_graph = g;
    int64_t dims[PLX_MAX_DIMS];
    dims[0] = s->batch_size;
    for (int32_t d = 0; d < s->input_ndim; d++)
        dims[d + 1] = s->input_shape[d];
    st = add_input(g, "input", PLX_F32, s->input_ndim + 1, dims, &m->tx, &m->tx_t);
    if (st == PLX_OK)
        st = add_input(g, "labels", PLX_I64, 1, dims, &m->ty, &m->ty_t);
    if (st == PLX_OK)
        st = model_build_layers(m, g, 1, m->tx, &m->tlogits);
    if (st == PLX_OK)
        st = build_loss(m, g, m->tlogits);
    /* Gradients of every trainable parameter. */
    int32_t *params = calloc((size_t)g->n_values + 1, sizeof(int32_t));
    int32_t *grads = calloc((size_t)g->n_values + 1, sizeof(int32_t));
    int32_t n_params = 0;
    if (params == NULL || grads == NULL)
        st = ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory");
    for (int32_t v = 0; v < g->n_values && st == PLX_OK; v++) {
        if (g->values[v].kind != VALUE_PARAM)
            continue;
        model_var *var = model_var_find(m, g->values[v].name);
        if (var != NULL && var->trainable)
            params[n_params++] = v;
    }
    if (st == PLX_OK && n_params == 0)
        st = ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "%s: nothing to train: every parameter is frozen", m->origin);
    if (st == PLX_OK)
        st = autodiff(g, m->tloss, params, n_params, grads);
    if (st == PLX_OK)
        st = optimizer_build(g, &s->opt, params, grads, n_params, &m->opt_graph);
    free(params);
    free(grads);
    if (st == PLX_OK)
        st = model_ensure_vars(m, g);
    /* Dropout nodes get a fresh counter offset every step. */
    if (st == PLX_OK) {
        m->dropout_nodes = calloc((size_t)g->n_nodes + 1, sizeof(int32_t));
        if (m->dropout_nodes == NULL)
            st = ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory");
        for (int32_t i = 0; i < g->n_nodes && st == PLX_OK; i++)
            if (g->nodes[i].op_id == PLX_OP_DROPOUT || g->nodes[i].op_id == PLX_OP_DROPOUT_BACKWARD)
                m->dropout_nodes[m->n_dropout_nodes++] = i;
    }
    int32_t keep[2] = {m->tloss, m->tlogits};
    if (st == PLX_OK)
        st = plan_build(g, keep, 2, &m->train_plan);
    if (st == PLX_OK)
        st = plan_bind(m->train_plan, m->tx, m->tx_t);
    if (st == PLX_OK)
        st = plan_bind(m->train_plan, m->ty, m->ty_t);
    if (st == PLX_OK && m->ty2 >= 0)
        st = plan_bind(m->train_plan, m->ty2, m->ty2_t);
    if (st == PLX_OK && m->tlam >= 0)
        st = plan_bind(m->train_plan, m->tlam, m->tlam_t);
    if (st == PLX_OK && m->ttarget >= 0)
        st = plan_bind(m->train_plan, m->ttarget, m->ttarget_t);
    if (st == PLX_OK)
        st = model_bind_vars(m, g, m->train_plan);
    return st;
}

void model_set_step_attrs(plx_model *m, float lr)
{
    optimizer_set_step(m->train_graph, &m->opt_graph, lr, m->global_step + 1);
    /* Masks differ per step and agree between a dropout and its backward. */
    for (int32_t i = 0; i < m->n_dropout_nodes; i++) {
        plx_dropout_attrs *a = (plx_dropout_attrs *)m->train_graph->nodes[m->dropout_nodes[i]].attrs;
        a->offset = (uint64_t)m->global_step << 32;
    }
}

void model_set_batch(plx_model *m, const data_batch *batch)
{
    int64_t B = m->spec.batch_size, C = m->spec.classes;
    size_t per = (size_t)plx_tensor_numel(m->tx_t) / (size_t)B;
    memcpy(plx_tensor_data(m->tx_t), batch->features, sizeof(float) * (size_t)B * per);
    memcpy(plx_tensor_data(m->ty_t), batch->labels, sizeof(int64_t) * (size_t)B);
    if (m->ty2_t != NULL) {
        memcpy(plx_tensor_data(m->ty2_t), batch->mix_labels, sizeof(int64_t) * (size_t)B);
        memcpy(plx_tensor_data(m->tlam_t), batch->mix_lambda, sizeof(float) * (size_t)B);
    }
    if (m->ttarget_t != NULL) {
        float *t = plx_tensor_data(m->ttarget_t);
        memset(t, 0, sizeof(float) * (size_t)(B * C));
        for (int64_t r = 0; r < B; r++)
            t[r * C + batch->labels[r]] = 1.0f;
    }
}

/* ---- data ------------------------------------------------------------------ */

void model_data_free(model_data *d)
{
    dataset_free(d->train);
    dataset_free(d->val);
    dataset_free(d->test);
    memset(d, 0, sizeof *d);
}

static void join_path(char *out, size_t cap, const char *dir, const char *file)
{
    if (dir == NULL || file[0] == '/')
        snprintf(out, cap, "%s", file);
    else
        snprintf(out, cap, "%s/%s", dir, file);
}

/* Keeps the examples whose label is in data.classes, relabelled by position. */
static plx_status keep_classes(plx_model *m, dataset **ds)
{
    const model_spec *s = &m->spec;
    if (s->n_class_subset == 0 || *ds == NULL)
        return PLX_OK;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)((*ds)->n + 1));
    if (idx == NULL)
        return ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory");
    int64_t kept = 0;
    for (int64_t i = 0; i < (*ds)->n; i++)
        for (int32_t c = 0; c < s->n_class_subset; c++)
            if ((*ds)->labels[i] == s->class_subset[c]) {
                idx[kept++] = i;
                break;
            }
    dataset *sub = NULL;
    data_error err;
    plx_status st = dataset_subset(*ds, idx, kept, &sub, &err);
    free(idx);
    if (st != PLX_OK)
        return ctx_fail(m->ctx, st, "%s", err.message);
    for (int64_t i = 0; i < sub->n; i++)
        for (int32_t c = 0; c < s->n_class_subset; c++)
            if (sub->labels[i] == s->class_subset[c]) {
                sub->labels[i] = c;
                break;
            }
    st = dataset_update_classes(sub, &err);
    if (st != PLX_OK) {
        dataset_free(sub);
        return ctx_fail(m->ctx, st, "%s", err.message);
    }
    dataset_free(*ds);
    *ds = sub;
    return PLX_OK;
}

static plx_status load_one(plx_model *m, const char *dir, bool test, dataset **out)
{
    const model_spec *s = &m->spec;
    data_error err;
    plx_status st;
    char a[1024], b[1024];
    if (strcmp(s->data_format, "idx") == 0) {
        join_path(a, sizeof a, dir, test ? s->test_images : s->train_images);
        join_path(b, sizeof b, dir, test ? s->test_labels : s->train_labels);
        st = dataset_load_idx(a, b, NULL, out, &err);
    } else {
        const char *file = test ? s->test_csv : s->train_csv;
        if (file == NULL)
            return PLX_OK;
        join_path(a, sizeof a, dir, file);
        csv_options co;
        memset(&co, 0, sizeof co);
        co.label_name = s->label_column;
        st = dataset_load_csv(a, &co, NULL, out, &err);
    }
    if (st != PLX_OK)
        return ctx_fail(m->ctx, st, "%s", err.message);
    st = keep_classes(m, out);
    if (st != PLX_OK)
        return st;
    /* The data must fit the model. */
    const dataset *ds = *out;
    bool fits = ds->sample_ndim == s->input_ndim;
    for (int32_t d = 0; fits && d < s->input_ndim; d++)
        fits = ds->sample_shape[d] == s->input_shape[d];
    if (!fits) {
        char shape[128] = "";
        size_t used = 0;
        for (int32_t d = 0; d < ds->sample_ndim && used < sizeof shape; d++) {
            int w = snprintf(shape + used, sizeof shape - used, "%s%lld", d ? "," : "", (long long)ds->sample_shape[d]);
            used += w > 0 ? (size_t)w : 0;
        }
        return ctx_fail(m->ctx, PLX_SHAPE_MISMATCH, "%s: examples of %s are [%s], but the model's input is %d-D",
                        m->origin, a, shape, (int)s->input_ndim);
    }
    if (ds->n_classes > s->classes)
        return ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "%s: %s has labels up to %lld, but the model has %lld classes",
                        m->origin, a, (long long)ds->n_classes - 1, (long long)s->classes);
    return PLX_OK;
}

static plx_status limit_to(plx_model *m, dataset **ds, int64_t limit)
{
    if (*ds == NULL || limit <= 0 || limit >= (*ds)->n)
        return PLX_OK;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)limit);
    if (idx == NULL)
        return ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory");
    for (int64_t i = 0; i < limit; i++)
        idx[i] = i;
    dataset *sub = NULL;
    data_error err;
    plx_status st = dataset_subset(*ds, idx, limit, &sub, &err);
    free(idx);
    if (st != PLX_OK)
        return ctx_fail(m->ctx, st, "%s", err.message);
    dataset_free(*ds);
    *ds = sub;
    return PLX_OK;
}

plx_status model_load_data(plx_model *m, const char *dir_override, bool need_train, int64_t limit_train,
                           int64_t limit_test, model_data *d)
{
    const model_spec *s = &m->spec;
    memset(d, 0, sizeof *d);
    if (s->data_format == NULL)
        return ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "%s: $.training.data is missing: nothing to train or evaluate on",
                        m->origin);
    const char *dir = dir_override ? dir_override : s->data_dir;
    plx_status st = PLX_OK;
    dataset *full = NULL;
    data_error err;
    /* Normalization statistics come from the training set even for a test-only run. */
    if (need_train || s->normalize == 2)
        st = load_one(m, dir, false, &full);
    if (st == PLX_OK && full != NULL)
        st = limit_to(m, &full, limit_train);
    if (st == PLX_OK)
        st = load_one(m, dir, true, &d->test);
    if (st == PLX_OK)
        st = limit_to(m, &d->test, limit_test);
    int64_t channels = s->input_ndim == 3 ? s->input_shape[0] : 1;
    float mean[16] = {0}, std[16] = {0};
    if (st == PLX_OK && s->normalize == 2 && full != NULL) {
        if (channels > 16)
            channels = 1;
        st = dataset_channel_stats(full, channels, mean, std, &err);
    } else if (s->normalize == 1) {
        channels = s->n_norm;
        memcpy(mean, s->norm_mean, sizeof mean);
        memcpy(std, s->norm_std, sizeof std);
    }
    if (st == PLX_OK && s->normalize) {
        /* Kept with the model (and its checkpoints) so predict applies them. */
        m->norm_n = (int32_t)channels;
        memcpy(m->norm_mean, mean, sizeof m->norm_mean);
        memcpy(m->norm_std, std, sizeof m->norm_std);
        if (full != NULL)
            st = dataset_normalize(full, channels, mean, std, &err);
        if (st == PLX_OK && d->test != NULL)
            st = dataset_normalize(d->test, channels, mean, std, &err);
        if (st != PLX_OK)
            st = ctx_fail(m->ctx, st, "%s: normalize: %s", m->origin, err.message);
    }
    if (st == PLX_OK && need_train) {
        if (s->val_split > 0) {
            st = dataset_split(full, s->val_split, s->seed, &d->train, &d->val, &err);
            if (st != PLX_OK)
                st = ctx_fail(m->ctx, st, "%s", err.message);
            dataset_free(full);
        } else
            d->train = full;
        full = NULL;
    }
    dataset_free(full);
    if (st != PLX_OK)
        model_data_free(d);
    return st;
}

/* ---- evaluation ------------------------------------------------------------ */

typedef struct eval_stats {
    double loss, accuracy, top5;
    int64_t n;
} eval_stats;

static plx_status evaluate(plx_model *m, const dataset *ds, eval_stats *out, int64_t *confusion)
{
    const model_spec *s = &m->spec;
    int64_t C = s->classes, per = ds->sample_size;
    double loss = 0.0;
    int64_t correct = 0, top5 = 0;
    int64_t batch = s->eval_batch_size;
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)batch);
    int64_t *labels = malloc(sizeof(int64_t) * (size_t)batch);
    if (idx == NULL || labels == NULL) {
        free(idx);
        free(labels);
        return ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory");
    }
    if (confusion != NULL)
        memset(confusion, 0, sizeof(int64_t) * (size_t)(C * C));
    plx_status st = PLX_OK;
    for (int64_t start = 0; start < ds->n && st == PLX_OK; start += batch) {
        int64_t count = ds->n - start < batch ? ds->n - start : batch;
        infer_plan *ip;
        st = model_infer_plan(m, count, &ip);
        if (st != PLX_OK)
            break;
        for (int64_t i = 0; i < count; i++)
            idx[i] = start + i;
        dataset_gather(ds, idx, count, plx_tensor_data(ip->x_tensor), labels);
        (void)per;
        st = plan_run(ip->plan);
        if (st != PLX_OK)
            break;
        const float *logits = plan_value_data(ip->plan, ip->logits);
        for (int64_t r = 0; r < count; r++) {
            const float *row = logits + r * C;
            int64_t best = 0;
            float mx = row[0];
            for (int64_t c = 1; c < C; c++)
                if (row[c] > mx) {
                    mx = row[c];
                    best = c;
                }
            double sum = 0.0;
            for (int64_t c = 0; c < C; c++)
                sum += exp((double)(row[c] - mx));
            int64_t y = labels[r];
            loss += log(sum) - (double)(row[y] - mx);
            correct += best == y;
            int64_t higher = 0;
            for (int64_t c = 0; c < C; c++)
                higher += row[c] > row[y];
            top5 += higher < 5;
            if (confusion != NULL)
                confusion[y * C + best]++;
        }
    }
    free(idx);
    free(labels);
    if (st != PLX_OK)
        return st;
    out->n = ds->n;
    out->loss = ds->n ? loss / (double)ds->n : NAN;
    out->accuracy = ds->n ? (double)correct / (double)ds->n : NAN;
    out->top5 = C > 5 && ds->n ? (double)top5 / (double)ds->n : NAN;
    return PLX_OK;
}

PLX_API plx_status plx_model_evaluate(plx_model *m, const char *data_dir, int64_t limit, plx_eval_result *result)
{
    if (m == NULL || result == NULL || result->struct_size < sizeof(uint32_t))
        return m ? ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "plx_model_evaluate: bad arguments") : PLX_INVALID_ARGUMENT;
    model_data d;
    plx_status st = model_load_data(m, data_dir, false, 0, limit, &d);
    if (st == PLX_OK && d.test == NULL)
        st = ctx_fail(m->ctx, PLX_NOT_FOUND, "%s: the data section names no test set", m->origin);
    free(m->confusion);
    m->confusion = NULL;
    if (st == PLX_OK) {
        m->confusion = calloc((size_t)(m->spec.classes * m->spec.classes), sizeof(int64_t));
        if (m->confusion == NULL)
            st = ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory");
    }
    eval_stats es = {0};
    if (st == PLX_OK)
        st = evaluate(m, d.test, &es, m->confusion);
    model_data_free(&d);
    if (st != PLX_OK)
        return st;
    plx_eval_result full = {.struct_size = (uint32_t)sizeof full, .accuracy = es.accuracy, .loss = es.loss,
                            .top5_accuracy = es.top5, .examples = es.n, .classes = (int32_t)m->spec.classes,
                            .confusion = m->confusion};
    uint32_t caller = result->struct_size;
    memcpy(result, &full, caller < sizeof full ? caller : sizeof full);
    result->struct_size = caller;
    return PLX_OK;
}

/* ---- training -------------------------------------------------------------- */

static void emit_stderr(void *user, const char *line)
{
    (void)user;
    fprintf(stderr, "  %s\n", line);
}

static void metrics_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void metrics_line(FILE *f, const char *fmt, ...)
{
    if (f == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
}

/* JSON has no NaN: write null. */
static const char *jnum(char *buf, size_t cap, double v)
{
    if (isfinite(v))
        snprintf(buf, cap, "%.9g", v);
    else
        snprintf(buf, cap, "null");
    return buf;
}

typedef struct snapshot {
    float **data;
    int32_t n;
} snapshot;

static void snapshot_free(snapshot *s)
{
    for (int32_t i = 0; i < s->n; i++)
        free(s->data[i]);
    free(s->data);
    memset(s, 0, sizeof *s);
}

/* Copies of every non-optimizer variable (the weights early stopping restores). */
static plx_status snapshot_take(plx_model *m, snapshot *s)
{
    if (s->data == NULL) {
        s->data = calloc((size_t)m->n_vars + 1, sizeof *s->data);
        if (s->data == NULL)
            return ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory");
        s->n = m->n_vars;
    }
    for (int32_t i = 0; i < s->n; i++) {
        size_t bytes = (size_t)plx_tensor_numel(m->vars[i].tensor) * sizeof(float);
        if (s->data[i] == NULL && (s->data[i] = malloc(bytes ? bytes : 1)) == NULL)
            return ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory");
        memcpy(s->data[i], plx_tensor_data(m->vars[i].tensor), bytes);
    }
    return PLX_OK;
}

static void snapshot_restore(plx_model *m, const snapshot *s)
{
    for (int32_t i = 0; i < s->n && i < m->n_vars; i++)
        if (strncmp(m->vars[i].name, "optimizer.", 10) != 0)
            memcpy(plx_tensor_data(m->vars[i].tensor), s->data[i],
                   (size_t)plx_tensor_numel(m->vars[i].tensor) * sizeof(float));
}

static uint64_t memory_in_use(plx_model *m)
{
    uint64_t bytes = plan_arena_bytes(m->train_plan);
    for (int32_t i = 0; i < m->n_vars; i++)
        bytes += (uint64_t)plx_tensor_numel(m->vars[i].tensor) * plx_dtype_size(plx_tensor_desc_get(m->vars[i].tensor)->dtype);
    plx_tensor *ins[] = {m->tx_t, m->ty_t, m->ty2_t, m->tlam_t, m->ttarget_t};
    for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++)
        if (ins[i] != NULL)
            bytes += (uint64_t)plx_tensor_numel(ins[i]) * plx_dtype_size(plx_tensor_desc_get(ins[i])->dtype);
    return bytes;
}

PLX_API plx_status plx_model_train(plx_model *m, const plx_train_options *opts_in, plx_train_result *result)
{
    if (m == NULL)
        return PLX_INVALID_ARGUMENT;
    plx_train_options opts;
    memset(&opts, 0, sizeof opts);
    if (opts_in != NULL) {
        if (opts_in->struct_size < sizeof(uint32_t) || opts_in->struct_size > 65536)
            return ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "plx_model_train: options struct_size %u is invalid",
                            (unsigned)opts_in->struct_size);
        memcpy(&opts, opts_in, opts_in->struct_size < sizeof opts ? opts_in->struct_size : sizeof opts);
    }
    const model_spec *s = &m->spec;
    int32_t epochs = opts.epochs > 0 ? opts.epochs : s->epochs;
    plx_status st = model_train_plan(m);
    if (st == PLX_OK && opts.resume_path != NULL)
        st = checkpoint_restore(m, opts.resume_path);
    model_data d = {0};
    if (st == PLX_OK)
        st = model_load_data(m, opts.data_dir, true, opts.limit_train, opts.limit_test, &d);
    if (st == PLX_OK && d.train->n < s->batch_size)
        st = ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "%s: the training set has %lld examples, fewer than one batch (%lld)",
                      m->origin, (long long)d.train->n, (long long)s->batch_size);
    loader *ld = NULL;
    data_error err;
    if (st == PLX_OK) {
        loader_options lo = {.batch_size = s->batch_size, .shuffle = s->shuffle, .drop_last = true,
                             .seed = s->seed, .augment = &s->augment, .prefetch = true};
        data_position start = {0, 0, s->seed};
        st = loader_create(d.train, &lo, m->has_position ? &m->position : &start, &ld, &err);
        if (st != PLX_OK)
            st = ctx_fail(m->ctx, st, "%s", err.message);
    }
    FILE *metrics = NULL;
    if (st == PLX_OK && opts.metrics_path != NULL) {
        metrics = fopen(opts.metrics_path, m->has_position ? "a" : "w");
        if (metrics == NULL)
            st = ctx_fail(m->ctx, PLX_IO_ERROR, "cannot write metrics to %s", opts.metrics_path);
    }
    if (st != PLX_OK) {
        loader_free(ld);
        model_data_free(&d);
        return st;
    }
    /* PLEXUS_PROFILE=1: time every node and report per op at the end. */
    const char *profile_env = getenv("PLEXUS_PROFILE");
    bool profile = profile_env != NULL && strcmp(profile_env, "1") == 0;
    if (profile)
        plan_profile(m->train_plan, true);
    int64_t steps_per_epoch = loader_batches_per_epoch(ld);
    int64_t B = s->batch_size, C = s->classes;
    double train_seconds = 0.0, run_start = now_seconds();
    int64_t trained_examples = 0, steps_run = 0;
    snapshot best = {0};
    double best_metric = NAN, best_val_acc = NAN;
    int64_t bad_epochs = 0;
    bool stopped_early = false, interrupted = false, hit_max = false;
    plx_train_result res = {.struct_size = (uint32_t)sizeof res, .test_accuracy = NAN, .test_loss = NAN,
                            .best_val_accuracy = NAN};
    char nb1[32], nb2[32], nb3[32], nb4[32];
    while (st == PLX_OK && m->epochs_done < epochs && !interrupted && !hit_max) {
        data_position pos = loader_position(ld);
        int32_t epoch = (int32_t)pos.epoch;
        double epoch_start = now_seconds(), loss_sum = 0.0;
        int64_t correct = 0, seen = 0, step_in_epoch = pos.batch;
        int64_t steps_this_epoch = 0;
        while (st == PLX_OK && loader_position(ld).epoch == epoch) {
            const data_batch *batch;
            st = loader_next(ld, &batch, &err);
            if (st != PLX_OK) {
                st = ctx_fail(m->ctx, st, "%s", err.message);
                break;
            }
            model_set_batch(m, batch);
            float lr = schedule_lr(&s->sched, epoch, m->global_step, steps_per_epoch);
            model_set_step_attrs(m, lr);
            double t0 = now_seconds();
            int32_t bad_node = -1;
            st = opts.check_numerics ? plan_run_checked(m->train_plan, &bad_node) : plan_run(m->train_plan);
            train_seconds += now_seconds() - t0;
            if (st != PLX_OK) {
                if (bad_node >= 0) {
                    char msg[PLX_ERROR_CAP];
                    snprintf(msg, sizeof msg, "%s", plx_last_error(m->ctx));
                    st = ctx_fail(m->ctx, st, "training stopped at step %lld (epoch %d): %s",
                                  (long long)m->global_step + 1, epoch + 1, msg);
                }
                break;
            }
            float loss = *(const float *)plan_value_data(m->train_plan, m->tloss);
            if (!isfinite(loss)) {
                st = ctx_fail(m->ctx, PLX_INVALID_ARGUMENT,
                              "training stopped at step %lld (epoch %d): the loss is %s (run with --check-numerics to "
                              "find the first node that produced it)",
                              (long long)m->global_step + 1, epoch + 1, isnan(loss) ? "NaN" : "infinite");
                break;
            }
            const float *logits = plan_value_data(m->train_plan, m->tlogits);
            for (int64_t r = 0; r < B; r++) {
                const float *row = logits + r * C;
                int64_t arg = 0;
                for (int64_t c = 1; c < C; c++)
                    arg = row[c] > row[arg] ? c : arg;
                correct += arg == batch->labels[r];
            }
            m->global_step++;
            step_in_epoch++;
            steps_this_epoch++;
            steps_run++;
            seen += B;
            trained_examples += B;
            loss_sum += (double)loss * (double)B;
            double elapsed = now_seconds() - run_start;
            int64_t total_steps = (int64_t)epochs * steps_per_epoch;
            int64_t remaining = total_steps - m->global_step;
            if (opts.max_steps > 0 && opts.max_steps - steps_run < remaining)
                remaining = opts.max_steps - steps_run;
            plx_train_progress pr = {.struct_size = (uint32_t)sizeof pr, .epoch = epoch + 1, .epochs = epochs,
                                     .step = step_in_epoch, .steps_per_epoch = steps_per_epoch,
                                     .global_step = m->global_step, .loss = loss_sum / (double)seen,
                                     .accuracy = (double)correct / (double)seen,
                                     .examples_per_second = train_seconds > 0 ? (double)trained_examples / train_seconds : 0,
                                     .eta_seconds = steps_run ? elapsed / (double)steps_run * (double)remaining : 0,
                                     .lr = lr, .epoch_done = 0, .val_loss = NAN, .val_accuracy = NAN};
            if (opts.progress != NULL)
                opts.progress(opts.progress_user, &pr);
            metrics_line(metrics, "{\"type\": \"step\", \"epoch\": %d, \"step\": %lld, \"global_step\": %lld, "
                         "\"loss\": %s, \"lr\": %.9g}", epoch + 1, (long long)step_in_epoch,
                         (long long)m->global_step, jnum(nb1, sizeof nb1, loss), (double)lr);
            if (opts.interrupt != NULL && *opts.interrupt) {
                interrupted = true;
                break;
            }
            if (opts.max_steps > 0 && steps_run >= opts.max_steps) {
                hit_max = true;
                break;
            }
        }
        if (st != PLX_OK)
            break;
        m->position = loader_position(ld);
        m->has_position = true;
        if (interrupted || hit_max)
            break;
        /* The epoch is complete. */
        m->epochs_done = (int32_t)m->position.epoch;
        res.epochs++;
        double epoch_seconds = now_seconds() - epoch_start;
        eval_stats vs = {.loss = NAN, .accuracy = NAN};
        if (d.val != NULL && d.val->n > 0)
            st = evaluate(m, d.val, &vs, NULL);
        if (st != PLX_OK)
            break;
        plx_train_progress pr = {.struct_size = (uint32_t)sizeof pr, .epoch = epoch + 1, .epochs = epochs,
                                 .step = steps_per_epoch, .steps_per_epoch = steps_per_epoch,
                                 .global_step = m->global_step,
                                 .loss = seen ? loss_sum / (double)seen : NAN,
                                 .accuracy = seen ? (double)correct / (double)seen : NAN,
                                 .examples_per_second = train_seconds > 0 ? (double)trained_examples / train_seconds : 0,
                                 .lr = schedule_lr(&s->sched, epoch, m->global_step, steps_per_epoch),
                                 .epoch_done = 1, .val_loss = vs.loss, .val_accuracy = vs.accuracy};
        if (opts.progress != NULL)
            opts.progress(opts.progress_user, &pr);
        metrics_line(metrics, "{\"type\": \"epoch\", \"epoch\": %d, \"loss\": %s, \"accuracy\": %s, \"val_loss\": %s, "
                     "\"val_accuracy\": %s, \"seconds\": %.3f}", epoch + 1, jnum(nb1, sizeof nb1, pr.loss),
                     jnum(nb2, sizeof nb2, pr.accuracy), jnum(nb3, sizeof nb3, vs.loss),
                     jnum(nb4, sizeof nb4, vs.accuracy), epoch_seconds);
        if (isfinite(vs.loss)) {
            schedule_epoch_end(&m->spec.sched, s->plateau_on_accuracy ? vs.accuracy : vs.loss);
            if (!isfinite(best_val_acc) || vs.accuracy > best_val_acc)
                best_val_acc = vs.accuracy;
        }
        if (s->early_stopping && isfinite(vs.loss)) {
            double metric = s->early_on_accuracy ? vs.accuracy : vs.loss;
            bool improved = !isfinite(best_metric) || (s->early_on_accuracy ? metric > best_metric + s->early_min_delta
                                                                             : metric < best_metric - s->early_min_delta);
            if (improved) {
                best_metric = metric;
                bad_epochs = 0;
                st = snapshot_take(m, &best);
            } else if (++bad_epochs > s->early_patience) {
                snapshot_restore(m, &best);
                stopped_early = true;
            }
        }
        if (st == PLX_OK && opts.out_path != NULL)
            st = checkpoint_write(m, opts.out_path);
        if (stopped_early)
            break;
        (void)steps_this_epoch;
    }
    loader_free(ld);
    if ((interrupted || hit_max) && st == PLX_OK && opts.out_path != NULL)
        st = checkpoint_write(m, opts.out_path);
    if (st == PLX_OK && d.test != NULL && !interrupted) {
        eval_stats ts;
        free(m->confusion);
        m->confusion = calloc((size_t)(C * C), sizeof(int64_t));
        st = m->confusion == NULL ? ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory")
                                  : evaluate(m, d.test, &ts, m->confusion);
        if (st == PLX_OK) {
            res.test_accuracy = ts.accuracy;
            res.test_loss = ts.loss;
        }
    }
    if (stopped_early && st == PLX_OK && opts.out_path != NULL)
        st = checkpoint_write(m, opts.out_path);
    if (profile) {
        fprintf(stderr, "plexus: time per op of the training step (%lld steps):\n", (long long)steps_run);
        plan_profile_report(m->train_plan, emit_stderr, NULL);
        plan_profile(m->train_plan, false);
    }
    res.steps = steps_run;
    res.seconds_per_epoch = res.epochs > 0 ? train_seconds / (double)steps_run * (double)steps_per_epoch : NAN;
    if (res.epochs == 0 && steps_run > 0)
        res.seconds_per_epoch = train_seconds / (double)steps_run * (double)steps_per_epoch;
    res.examples_per_second = train_seconds > 0 ? (double)trained_examples / train_seconds : 0.0;
    res.peak_memory_bytes = memory_in_use(m);
    res.best_val_accuracy = best_val_acc;
    res.stopped_early = stopped_early;
    snapshot_free(&best);
    model_data_free(&d);
    if (metrics != NULL)
        fclose(metrics);
    if (st == PLX_OK && interrupted)
        st = ctx_fail(m->ctx, PLX_UNAVAILABLE, "interrupted at step %lld%s%s", (long long)m->global_step,
                      opts.out_path ? "; checkpoint written to " : "", opts.out_path ? opts.out_path : "");
    if (result != NULL && result->struct_size >= sizeof(uint32_t)) {
        uint32_t caller = result->struct_size;
        memcpy(result, &res, caller < sizeof res ? caller : sizeof res);
        result->struct_size = caller;
    }
    return st;
}

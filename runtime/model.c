/*
 * model.c — models: loading a model file, building its training and
 * inference graphs from layer plugins, owning its variables, predicting,
 * and listing the placement of its nodes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff.h"
#include "io/safetensors.h"
#include "model.h"
#include "param_init.h"

model_var *model_var_find(plx_model *m, const char *name)
{
    for (int32_t i = 0; i < m->n_vars; i++)
        if (strcmp(m->vars[i].name, name) == 0)
            return &m->vars[i];
    return NULL;
}

static bool frozen(const plx_model *m, const char *param_name)
{
    for (int32_t i = 0; i < m->spec.n_freeze; i++) {
        size_t n = strlen(m->spec.freeze[i]);
        if (strncmp(param_name, m->spec.freeze[i], n) == 0 && param_name[n] == '.')
            return true;
    }
    return false;
}

/* Creates (and initializes) the variable of a persistent graph value the
 * first time a graph declares it; later graphs must agree on its shape. */
static plx_status ensure_var(plx_model *m, const graph_value *v)
{
    model_var *existing = model_var_find(m, v->name);
    if (existing != NULL) {
        tensor_meta have;
        meta_from_desc(&have, plx_tensor_desc_get(existing->tensor));
        if (!meta_same_shape(&have, &v->meta)) {
            char a[160], b[160];
            return ctx_fail(m->ctx, PLX_SHAPE_MISMATCH, "%s: '%s' is %s in one graph and %s in another", m->origin,
                            v->name, meta_format(&have, a, sizeof a), meta_format(&v->meta, b, sizeof b));
        }
        return PLX_OK;
    }
    if (m->n_vars == m->cap_vars) {
        int32_t cap = m->cap_vars ? m->cap_vars * 2 : 64;
        model_var *grown = realloc(m->vars, sizeof *grown * (size_t)cap);
        if (grown == NULL)
            return ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory");
        m->vars = grown;
        m->cap_vars = cap;
    }
    model_var *var = &m->vars[m->n_vars];
    memset(var, 0, sizeof *var);
    plx_status st = plx_tensor_create(m->ctx, v->meta.dtype, v->meta.ndim, v->meta.dims, &var->tensor);
    if (st != PLX_OK)
        return st;
    st = param_init_fill(m->ctx, var->tensor, &v->init, m->spec.seed, param_stream_of(v->name), v->name);
    var->name = strdup(v->name);
    if (st != PLX_OK || var->name == NULL) {
        plx_tensor_free(var->tensor);
        free(var->name);
        return st != PLX_OK ? st : ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory");
    }
    var->kind = v->kind;
    var->trainable = v->kind == VALUE_PARAM && !frozen(m, v->name);
    m->n_vars++;
    return PLX_OK;
}

plx_status model_build_layers(plx_model *m, plx_graph *g, int32_t training, int32_t x, int32_t *logits)
{
    const model_spec *s = &m->spec;
    int32_t *out_of = malloc(sizeof(int32_t) * (size_t)s->n_layers);
    if (out_of == NULL)
        return ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory");
    plx_status st = PLX_OK;
    for (int32_t i = 0; i < s->n_layers && st == PLX_OK; i++) {
        const model_layer *l = &s->layers[i];
        int32_t in[64];
        for (int32_t k = 0; k < l->n_inputs; k++) {
            in[k] = x;
            for (int32_t j = 0; j < i; j++)
                if (strcmp(s->layers[j].name, l->inputs[k]) == 0)
                    in[k] = out_of[j];
        }
        int32_t outs[8], n_out = 0;
        uint64_t seed = s->seed ^ (param_stream_of(l->name) * 0x9E3779B97F4A7C15ull);
        st = layer_build(m->ctx, g, l->type, l->obj, l->name, l->where, in, l->n_inputs, training, seed, outs, 8,
                         &n_out);
        if (st == PLX_OK)
            out_of[i] = outs[0];
    }
    if (st == PLX_OK)
        *logits = out_of[s->output_layer];
    free(out_of);
    if (st != PLX_OK)
        return st;
    const tensor_meta *lm = &g->values[*logits].meta;
    if (lm->ndim != 2 || lm->dims[1] != m->spec.classes) {
        char b[160];
        return ctx_fail(m->ctx, PLX_SHAPE_MISMATCH,
                        "%s: the output layer '%s' gives %s, but the model has %lld classes: it must give [batch, %lld]",
                        m->origin, s->layers[s->output_layer].name, meta_format(lm, b, sizeof b),
                        (long long)m->spec.classes, (long long)m->spec.classes);
    }
    return model_ensure_vars(m, g);
}

plx_status model_ensure_vars(plx_model *m, plx_graph *g)
{
    plx_status st = PLX_OK;
    for (int32_t v = 0; v < g->n_values && st == PLX_OK; v++)
        if (g->values[v].kind == VALUE_PARAM || g->values[v].kind == VALUE_STATE)
            st = ensure_var(m, &g->values[v]);
    return st;
}

plx_status model_bind_vars(plx_model *m, plx_graph *g, exec_plan *p)
{
    for (int32_t v = 0; v < g->n_values; v++) {
        if (g->values[v].kind != VALUE_PARAM && g->values[v].kind != VALUE_STATE)
            continue;
        model_var *var = model_var_find(m, g->values[v].name);
        if (var == NULL)
            continue; /* optimizer slots are created by the training plan */
        plx_status st = plan_bind(p, v, var->tensor);
        if (st != PLX_OK)
            return st;
    }
    return PLX_OK;
}

static void infer_plan_free(infer_plan *ip)
{
    plan_free(ip->plan);
    graph_free(ip->graph);
    plx_tensor_free(ip->x_tensor);
    memset(ip, 0, sizeof *ip);
}

plx_status model_infer_plan(plx_model *m, int64_t n, infer_plan **out)
{
    for (int i = 0; i < 2; i++)
        if (m->infer[i].plan != NULL && m->infer[i].batch == n) {
            *out = &m->infer[i];
            return PLX_OK;
        }
    /* Keep the full-batch plan in slot 0; other sizes take slot 1. */
    infer_plan *ip = m->infer[0].plan == NULL ? &m->infer[0] : &m->infer[1];
    infer_plan_free(ip);
    ip->batch = n;
    int64_t dims[PLX_MAX_DIMS];
    dims[0] = n;
    for (int32_t d = 0; d < m->spec.input_ndim; d++)
        dims[d + 1] = m->spec.input_shape[d];
    plx_status st = graph_new(m->ctx, &ip->graph);
    if (st == PLX_OK)
        st = graph_add_named(ip->graph, VALUE_INPUT, "input", PLX_F32, m->spec.input_ndim + 1, dims, NULL, &ip->x);
    if (st == PLX_OK)
        st = model_build_layers(m, ip->graph, 0, ip->x, &ip->logits);
    if (st == PLX_OK)
        st = plan_build(ip->graph, &ip->logits, 1, &ip->plan);
    if (st == PLX_OK)
        st = plx_tensor_create(m->ctx, PLX_F32, m->spec.input_ndim + 1, dims, &ip->x_tensor);
    if (st == PLX_OK)
        st = plan_bind(ip->plan, ip->x, ip->x_tensor);
    if (st == PLX_OK)
        st = model_bind_vars(m, ip->graph, ip->plan);
    if (st != PLX_OK) {
        infer_plan_free(ip);
        return st;
    }
    *out = ip;
    return PLX_OK;
}

/* ---- public API ----------------------------------------------------------- */

static plx_status model_new(plx_context *ctx, const char *text, const char *origin, bool apply_init_from,
                            plx_model **out)
{
    plx_model *m = calloc(1, sizeof *m);
    if (m == NULL)
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "out of memory");
    m->ctx = ctx;
    m->origin = strdup(origin ? origin : "model");
    m->spec_text = strdup(text);
    m->tx = m->ty = m->ty2 = m->tlam = m->tloss = m->tlogits = m->ttarget = -1;
    if (m->origin == NULL || m->spec_text == NULL) {
        plx_model_free(m);
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "out of memory");
    }
    m->spec_json = cJSON_ParseWithOpts(text, NULL, 1);
    if (m->spec_json == NULL) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1, col = 1;
        for (const char *c = text; at != NULL && c < at && *c; c++) {
            if (*c == '\n') {
                line++;
                col = 1;
            } else
                col++;
        }
        plx_status st = ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s:%d:%d: not valid JSON", m->origin, line, col);
        plx_model_free(m);
        return st;
    }
    plx_status st = model_spec_parse(m);
    if (st == PLX_OK && m->spec.normalize == 1) {
        m->norm_n = m->spec.n_norm;
        memcpy(m->norm_mean, m->spec.norm_mean, sizeof m->norm_mean);
        memcpy(m->norm_std, m->spec.norm_std, sizeof m->norm_std);
    }
    if (st == PLX_OK) {
        /* Build the inference graph once now: validates the whole model
         * (shapes flow, layer configs) and creates every variable. */
        infer_plan *ip;
        st = model_infer_plan(m, 1, &ip);
    }
    /* A checkpoint's own weights replace everything, so rebuilding from one
     * does not need (or read) the init_from file. */
    if (st == PLX_OK && apply_init_from && m->spec.init_from != NULL)
        st = plx_model_load_weights(m, m->spec.init_from, m->spec.init_partial);
    if (st != PLX_OK) {
        plx_model_free(m);
        return st;
    }
    *out = m;
    return PLX_OK;
}

plx_status model_parse_for_checkpoint(plx_context *ctx, const char *json_text, const char *origin, plx_model **out)
{
    return model_new(ctx, json_text, origin, false, out);
}

PLX_API plx_status plx_model_parse(plx_context *ctx, const char *json_text, const char *origin, plx_model **out)
{
    if (ctx == NULL || json_text == NULL || out == NULL)
        return ctx ? ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plx_model_parse: NULL argument") : PLX_INVALID_ARGUMENT;
    return model_new(ctx, json_text, origin, true, out);
}

PLX_API plx_status plx_model_load(plx_context *ctx, const char *path, plx_model **out)
{
    if (ctx == NULL || path == NULL || out == NULL)
        return ctx ? ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plx_model_load: NULL argument") : PLX_INVALID_ARGUMENT;
    unsigned char *text = NULL;
    size_t len = 0;
    data_error err;
    plx_status st = data_read_file(path, 16u << 20, &text, &len, &err);
    if (st != PLX_OK)
        return ctx_fail(ctx, st, "%s", err.message);
    char *z = realloc(text, len + 1);
    if (z == NULL) {
        free(text);
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "out of memory");
    }
    z[len] = '\0';
    if (strlen(z) != len) {
        free(z);
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: contains a NUL byte; not a JSON model file", path);
    }
    st = model_new(ctx, z, path, true, out);
    free(z);
    return st;
}

PLX_API void plx_model_free(plx_model *m)
{
    if (m == NULL)
        return;
    for (int i = 0; i < 2; i++)
        infer_plan_free(&m->infer[i]);
    plan_free(m->train_plan);
    graph_free(m->train_graph);
    optimizer_graph_free(&m->opt_graph);
    plx_tensor *ts[] = {m->tx_t, m->ty_t, m->ty2_t, m->tlam_t, m->ttarget_t};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        plx_tensor_free(ts[i]);
    free(m->dropout_nodes);
    for (int32_t i = 0; i < m->n_vars; i++) {
        free(m->vars[i].name);
        plx_tensor_free(m->vars[i].tensor);
    }
    free(m->vars);
    model_spec_free(&m->spec);
    cJSON_Delete(m->spec_json);
    free(m->confusion);
    free(m->spec_text);
    free(m->origin);
    free(m);
}

PLX_API plx_status plx_model_info_get(const plx_model *m, plx_model_info *info)
{
    if (m == NULL || info == NULL || info->struct_size < sizeof(uint32_t))
        return m ? ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "plx_model_info_get: bad arguments") : PLX_INVALID_ARGUMENT;
    plx_model_info full;
    memset(&full, 0, sizeof full);
    full.struct_size = (uint32_t)sizeof full;
    full.name = m->spec.name;
    full.input_ndim = m->spec.input_ndim;
    for (int32_t d = 0; d < m->spec.input_ndim; d++)
        full.input_shape[d] = m->spec.input_shape[d];
    full.classes = m->spec.classes;
    full.norm_channels = m->norm_n;
    memcpy(full.norm_mean, m->norm_mean, sizeof full.norm_mean);
    memcpy(full.norm_std, m->norm_std, sizeof full.norm_std);
    for (int32_t i = 0; i < m->n_vars; i++)
        if (m->vars[i].kind == VALUE_PARAM)
            full.parameters += plx_tensor_numel(m->vars[i].tensor);
    full.global_step = m->global_step;
    full.epochs_done = m->epochs_done;
    uint32_t caller = info->struct_size;
    memcpy(info, &full, caller < sizeof full ? caller : sizeof full);
    info->struct_size = caller;
    return PLX_OK;
}

PLX_API plx_status plx_model_predict(plx_model *m, const plx_tensor *inputs, plx_tensor **out)
{
    if (m == NULL || inputs == NULL || out == NULL)
        return m ? ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "plx_model_predict: NULL argument") : PLX_INVALID_ARGUMENT;
    const plx_tensor_desc *d = plx_tensor_desc_get(inputs);
    bool ok = plx_dtype_equal(d->dtype, PLX_F32) && d->ndim == m->spec.input_ndim + 1 && d->shape[0] >= 1;
    for (int32_t i = 0; ok && i < m->spec.input_ndim; i++)
        ok = d->shape[i + 1] == m->spec.input_shape[i];
    if (!ok) {
        tensor_meta got;
        meta_from_desc(&got, d);
        char b[160];
        return ctx_fail(m->ctx, PLX_SHAPE_MISMATCH, "%s: predict expects f32 [N, %s], got %s", m->origin,
                        "input shape", meta_format(&got, b, sizeof b));
    }
    int64_t n = d->shape[0], per = 1;
    for (int32_t i = 0; i < m->spec.input_ndim; i++)
        per *= m->spec.input_shape[i];
    plx_tensor *probs = NULL;
    int64_t pshape[2] = {n, m->spec.classes};
    plx_status st = plx_tensor_create(m->ctx, PLX_F32, 2, pshape, &probs);
    if (st != PLX_OK)
        return st;
    /* Compact copy of the input (it may be a strided view). */
    plx_tensor *compact = NULL;
    plx_tensor *src = (plx_tensor *)inputs;
    st = plx_op_run(m->ctx, "core.copy", NULL, &src, 1, &compact, 1);
    int64_t batch = m->spec.eval_batch_size;
    for (int64_t start = 0; start < n && st == PLX_OK; start += batch) {
        int64_t count = n - start < batch ? n - start : batch;
        infer_plan *ip;
        st = model_infer_plan(m, count, &ip);
        if (st != PLX_OK)
            break;
        memcpy(plx_tensor_data(ip->x_tensor), (float *)plx_tensor_data(compact) + start * per,
               sizeof(float) * (size_t)(count * per));
        st = plan_run(ip->plan);
        if (st != PLX_OK)
            break;
        const float *logits = plan_value_data(ip->plan, ip->logits);
        float *p = (float *)plx_tensor_data(probs) + start * m->spec.classes;
        for (int64_t r = 0; r < count; r++) {
            const float *row = logits + r * m->spec.classes;
            float mx = row[0];
            for (int64_t c = 1; c < m->spec.classes; c++)
                mx = row[c] > mx ? row[c] : mx;
            double sum = 0.0;
            for (int64_t c = 0; c < m->spec.classes; c++)
                sum += exp((double)(row[c] - mx));
            for (int64_t c = 0; c < m->spec.classes; c++)
                p[r * m->spec.classes + c] = (float)(exp((double)(row[c] - mx)) / sum);
        }
    }
    plx_tensor_free(compact);
    if (st != PLX_OK) {
        plx_tensor_free(probs);
        return st;
    }
    *out = probs;
    return PLX_OK;
}

typedef struct emit_ctx {
    void (*emit)(void *user, const char *line);
    void *user;
} emit_ctx;

PLX_API plx_status plx_model_plan(plx_model *m, int32_t training, int32_t explain,
                                  void (*emit)(void *user, const char *line), void *user)
{
    if (m == NULL || emit == NULL)
        return m ? ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "plx_model_plan: NULL argument") : PLX_INVALID_ARGUMENT;
    exec_plan *p;
    if (training) {
        plx_status st = model_train_plan(m);
        if (st != PLX_OK)
            return st;
        p = m->train_plan;
    } else {
        infer_plan *ip;
        plx_status st = model_infer_plan(m, m->spec.eval_batch_size, &ip);
        if (st != PLX_OK)
            return st;
        p = ip->plan;
    }
    char line[256];
    snprintf(line, sizeof line, "# %s graph of %s: %d steps, activation arena %.2f MiB", training ? "training" : "inference",
             m->spec.name, (int)p->n_steps, (double)plan_arena_bytes(p) / (1024.0 * 1024.0));
    emit(user, line);
    plan_describe(p, explain, emit, user);
    return PLX_OK;
}

PLX_API plx_status plx_model_load_weights(plx_model *m, const char *path, int32_t partial)
{
    if (m == NULL || path == NULL)
        return m ? ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "plx_model_load_weights: NULL argument") : PLX_INVALID_ARGUMENT;
    st_file *f = NULL;
    char err[1024];
    if (st_file_open(path, &f, err, sizeof err) != PLX_OK)
        return ctx_fail(m->ctx, PLX_IO_ERROR, "%s", err);
    plx_status st = PLX_OK;
    int32_t loaded = 0;
    for (int32_t i = 0; i < m->n_vars && st == PLX_OK; i++) {
        model_var *v = &m->vars[i];
        if (strncmp(v->name, "optimizer.", 10) == 0)
            continue;
        const st_tensor *t = st_tensor_find(f, v->name);
        const plx_tensor_desc *d = plx_tensor_desc_get(v->tensor);
        bool same = t != NULL && plx_dtype_equal(t->dtype, d->dtype) && t->ndim == d->ndim;
        for (int32_t k = 0; same && k < d->ndim; k++)
            same = t->shape[k] == d->shape[k];
        if (!same) {
            if (partial) {
                ctx_log(m->ctx, PLX_LOG_INFO, "%s: '%s' %s; it keeps its initial values", path, v->name,
                        t == NULL ? "is not in the file" : "has another dtype or shape in the file");
                continue;
            }
            st = ctx_fail(m->ctx, PLX_SHAPE_MISMATCH, "%s: '%s' %s (set \"partial\": true to load the rest)", path,
                          v->name, t == NULL ? "is missing" : "has another dtype or shape than the model's");
            break;
        }
        if (t->nbytes > 0)
            memcpy(plx_tensor_data(v->tensor), t->data, t->nbytes);
        loaded++;
    }
    st_file_close(f);
    if (st == PLX_OK && loaded == 0)
        st = ctx_fail(m->ctx, PLX_NOT_FOUND, "%s: no tensor in the file matches a weight of the model", path);
    return st;
}

/*
 * model_spec.c — parsing and validating a model file. Every error names
 * the file, the JSON path and what was expected, e.g.
 *   "cnn.json: $.training.optimizer.lr: expected a positive number, got -1".
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct spec_parser {
    plx_model *m;
    const char *file;
} spec_parser;

static plx_status bad(spec_parser *p, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static plx_status bad(spec_parser *p, const char *path, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ctx_fail(p->m->ctx, PLX_INVALID_ARGUMENT, "%s: %s: %s", p->file, path, msg);
}

/* A short rendering of a JSON value for messages. */
static void show(const cJSON *v, char *buf, size_t cap)
{
    char *text = v ? cJSON_PrintUnformatted(v) : NULL;
    snprintf(buf, cap, "%s", text ? text : "nothing");
    if (strlen(buf) > 60)
        snprintf(buf + 57, cap - 57, "...");
    free(text);
}

/* Fails on members of obj not in allowed[]. */
static plx_status only_keys(spec_parser *p, const cJSON *obj, const char *path, const char *const *allowed)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, it->string) == 0;
        if (!ok) {
            char list[512] = "";
            size_t used = 0;
            for (const char *const *a = allowed; *a && used < sizeof list; a++) {
                int w = snprintf(list + used, sizeof list - used, "%s%s", a == allowed ? "" : ", ", *a);
                used += w > 0 ? (size_t)w : 0;
            }
            return bad(p, path, "unknown key '%s' (expected one of: %s)", it->string, list);
        }
    }
    return PLX_OK;
}

static plx_status get_number(spec_parser *p, const cJSON *obj, const char *path, const char *key, double lo,
                             double hi, double fallback, bool required, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char at[256], got[80];
    snprintf(at, sizeof at, "%s.%s", path, key);
    if (v == NULL) {
        if (required)
            return bad(p, path, "missing required key '%s'", key);
        *out = fallback;
        return PLX_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        show(v, got, sizeof got);
        return bad(p, at, "expected a number in [%g, %g], got %s", lo, hi, got);
    }
    *out = v->valuedouble;
    return PLX_OK;
}

static plx_status get_int(spec_parser *p, const cJSON *obj, const char *path, const char *key, int64_t lo, int64_t hi,
                          int64_t fallback, bool required, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char at[256], got[80];
    snprintf(at, sizeof at, "%s.%s", path, key);
    if (v == NULL) {
        if (required)
            return bad(p, path, "missing required key '%s'", key);
        *out = fallback;
        return PLX_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi) {
        show(v, got, sizeof got);
        return bad(p, at, "expected an integer in [%lld, %lld], got %s", (long long)lo, (long long)hi, got);
    }
    *out = (int64_t)v->valuedouble;
    return PLX_OK;
}

static plx_status get_bool(spec_parser *p, const cJSON *obj, const char *path, const char *key, bool fallback,
                           bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char at[256], got[80];
    snprintf(at, sizeof at, "%s.%s", path, key);
    if (v == NULL) {
        *out = fallback;
        return PLX_OK;
    }
    if (!cJSON_IsBool(v)) {
        show(v, got, sizeof got);
        return bad(p, at, "expected true or false, got %s", got);
    }
    *out = cJSON_IsTrue(v);
    return PLX_OK;
}

static plx_status get_string(spec_parser *p, const cJSON *obj, const char *path, const char *key,
                             const char *fallback, bool required, char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char at[256], got[80];
    snprintf(at, sizeof at, "%s.%s", path, key);
    if (v == NULL) {
        if (required)
            return bad(p, path, "missing required key '%s'", key);
        *out = fallback ? strdup(fallback) : NULL;
        return fallback && *out == NULL ? PLX_OUT_OF_MEMORY : PLX_OK;
    }
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
        show(v, got, sizeof got);
        return bad(p, at, "expected a non-empty string, got %s", got);
    }
    *out = strdup(v->valuestring);
    return *out ? PLX_OK : PLX_OUT_OF_MEMORY;
}

static const cJSON *get_object(spec_parser *p, const cJSON *obj, const char *path, const char *key, bool required,
                               plx_status *st)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *st = PLX_OK;
    if (v == NULL) {
        if (required)
            *st = bad(p, path, "missing required key '%s'", key);
        return NULL;
    }
    if (!cJSON_IsObject(v)) {
        char at[256], got[80];
        snprintf(at, sizeof at, "%s.%s", path, key);
        show(v, got, sizeof got);
        *st = bad(p, at, "expected an object, got %s", got);
        return NULL;
    }
    return v;
}

void model_spec_free(model_spec *s)
{
    for (int32_t i = 0; i < s->n_layers; i++) {
        free(s->layers[i].name);
        free(s->layers[i].where);
        for (int32_t k = 0; k < s->layers[i].n_inputs; k++)
            free(s->layers[i].inputs[k]);
        free(s->layers[i].inputs);
    }
    free(s->layers);
    for (int32_t i = 0; i < s->n_freeze; i++)
        free(s->freeze[i]);
    free(s->freeze);
    free(s->class_subset);
    char **strings[] = {&s->name, &s->data_format, &s->data_dir, &s->train_images, &s->train_labels,
                        &s->test_images, &s->test_labels, &s->train_csv, &s->test_csv, &s->label_column,
                        &s->init_from};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        free(*strings[i]);
    memset(s, 0, sizeof *s);
}

static bool valid_name(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static plx_status parse_layers(spec_parser *p, const cJSON *root)
{
    model_spec *s = &p->m->spec;
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (layers == NULL)
        return bad(p, "$", "missing required key 'layers' (a list of layer objects)");
    if (!cJSON_IsArray(layers) || cJSON_GetArraySize(layers) == 0 || cJSON_GetArraySize(layers) > 4096)
        return bad(p, "$.layers", "expected a non-empty list of at most 4096 layer objects");
    int32_t n = cJSON_GetArraySize(layers);
    s->layers = calloc((size_t)n, sizeof *s->layers);
    if (s->layers == NULL)
        return PLX_OUT_OF_MEMORY;
    const cJSON *l;
    int32_t i = 0;
    cJSON_ArrayForEach(l, layers)
    {
        char path[64];
        snprintf(path, sizeof path, "$.layers[%d]", (int)i);
        model_layer *ml = &s->layers[i];
        s->n_layers = i + 1;
        char where[600];
        snprintf(where, sizeof where, "%s: %s", p->file, path);
        ml->where = strdup(where);
        ml->obj = l;
        if (!cJSON_IsObject(l))
            return bad(p, path, "expected a layer object like {\"type\": \"dense\", \"units\": 10}");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(l, "type");
        if (!cJSON_IsString(type))
            return bad(p, path, "missing \"type\" (a layer type name such as \"conv2d\")");
        ml->type = layer_find(p->m->ctx, type->valuestring);
        if (ml->type == NULL) {
            char known[768] = "";
            size_t used = 0;
            for (size_t k = 0; k < p->m->ctx->n_layers && used < sizeof known; k++) {
                int w = snprintf(known + used, sizeof known - used, "%s%s", k ? ", " : "", p->m->ctx->layers[k].name);
                used += w > 0 ? (size_t)w : 0;
            }
            return bad(p, path, "unknown layer type '%s' (loaded layer types: %s)", type->valuestring,
                       used ? known : "none — is the layers plugin installed?");
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(l, "name");
        char auto_name[96];
        if (name != NULL && !(cJSON_IsString(name) && valid_name(name->valuestring)))
            return bad(p, path, "\"name\" must be a string of [a-z0-9_] (1 to 64 characters)");
        snprintf(auto_name, sizeof auto_name, "%s_%d", ml->type->name, (int)i);
        for (char *c = auto_name; *c; c++)
            if (*c == '.')
                *c = '_';
        ml->name = strdup(name ? name->valuestring : auto_name);
        if (strcmp(ml->name, "input") == 0)
            return bad(p, path, "the name \"input\" is reserved for the model's input");
        for (int32_t k = 0; k < i; k++)
            if (strcmp(s->layers[k].name, ml->name) == 0)
                return bad(p, path, "layer name '%s' is already used by $.layers[%d]", ml->name, (int)k);
        const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(l, "inputs");
        if (inputs == NULL) {
            ml->n_inputs = 1;
            ml->inputs = calloc(1, sizeof *ml->inputs);
            ml->inputs[0] = strdup(i == 0 ? "input" : s->layers[i - 1].name);
        } else {
            if (!cJSON_IsArray(inputs) || cJSON_GetArraySize(inputs) == 0 || cJSON_GetArraySize(inputs) > 64)
                return bad(p, path, "\"inputs\" must be a non-empty list of earlier layer names (or \"input\")");
            ml->n_inputs = cJSON_GetArraySize(inputs);
            ml->inputs = calloc((size_t)ml->n_inputs, sizeof *ml->inputs);
            const cJSON *in;
            int32_t k = 0;
            cJSON_ArrayForEach(in, inputs)
            {
                if (!cJSON_IsString(in))
                    return bad(p, path, "\"inputs\"[%d] must be a layer name", (int)k);
                bool known = strcmp(in->valuestring, "input") == 0;
                for (int32_t j = 0; j < i && !known; j++)
                    known = strcmp(s->layers[j].name, in->valuestring) == 0;
                if (!known)
                    return bad(p, path, "\"inputs\"[%d]: '%s' is not an earlier layer (layers may only read earlier ones)",
                               (int)k, in->valuestring);
                ml->inputs[k++] = strdup(in->valuestring);
            }
        }
        i++;
    }
    s->output_layer = s->n_layers - 1;
    return PLX_OK;
}

static plx_status parse_loss(spec_parser *p, const cJSON *training)
{
    model_spec *s = &p->m->spec;
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(training, "loss");
    const char *names[] = {"cross_entropy", "bce", "mse", "mae", "huber"};
    s->loss = LOSS_CROSS_ENTROPY;
    s->huber_delta = 1.0f;
    if (loss == NULL)
        return PLX_OK;
    const cJSON *type = cJSON_IsString(loss) ? loss : cJSON_GetObjectItemCaseSensitive(loss, "type");
    if (!cJSON_IsString(type))
        return bad(p, "$.training.loss", "expected a loss name or {\"type\": ...}: cross_entropy, bce, mse, mae, huber");
    bool found = false;
    for (int k = 0; k < 5 && !found; k++)
        if (strcmp(type->valuestring, names[k]) == 0) {
            s->loss = (loss_kind)k;
            found = true;
        }
    if (!found)
        return bad(p, "$.training.loss", "unknown loss '%s' (expected cross_entropy, bce, mse, mae or huber)",
                   type->valuestring);
    if (cJSON_IsObject(loss)) {
        static const char *const allowed[] = {"type", "label_smoothing", "delta", NULL};
        plx_status st = only_keys(p, loss, "$.training.loss", allowed);
        double v = 0.0;
        if (st == PLX_OK)
            st = get_number(p, loss, "$.training.loss", "label_smoothing", 0.0, 0.999, 0.0, false, &v);
        s->label_smoothing = (float)v;
        if (st == PLX_OK)
            st = get_number(p, loss, "$.training.loss", "delta", 1e-9, 1e9, 1.0, false, &v);
        s->huber_delta = (float)v;
        if (st != PLX_OK)
            return st;
        if (s->label_smoothing > 0 && s->loss != LOSS_CROSS_ENTROPY)
            return bad(p, "$.training.loss.label_smoothing", "only the cross_entropy loss takes label_smoothing");
    }
    return PLX_OK;
}

static plx_status parse_optimizer(spec_parser *p, const cJSON *training)
{
    model_spec *s = &p->m->spec;
    plx_status st;
    const cJSON *o = get_object(p, training, "$.training", "optimizer", false, &st);
    if (st != PLX_OK)
        return st;
    opt_kind kind = OPT_ADAM;
    const cJSON *type = o ? cJSON_GetObjectItemCaseSensitive(o, "type") : NULL;
    if (o != NULL && !cJSON_IsString(type))
        return bad(p, "$.training.optimizer", "missing \"type\" (sgd, adam, adamw, rmsprop or adagrad)");
    if (o != NULL && !optimizer_kind_parse(type->valuestring, &kind))
        return bad(p, "$.training.optimizer.type", "unknown optimizer '%s' (expected sgd, adam, adamw, rmsprop or adagrad)",
                   type->valuestring);
    optimizer_config_default(kind, &s->opt);
    if (o == NULL)
        return PLX_OK;
    static const char *const allowed[] = {"type", "lr", "momentum", "dampening", "nesterov", "weight_decay", "betas",
                                          "eps", "amsgrad", "alpha", "centered", "lr_decay", NULL};
    const char *path = "$.training.optimizer";
    st = only_keys(p, o, path, allowed);
    double v = 0.0;
    optimizer_config *c = &s->opt;
#define NUM(key, lo, hi, field)                                                                                  \
    if (st == PLX_OK) {                                                                                          \
        st = get_number(p, o, path, key, lo, hi, c->field, false, &v);                                           \
        c->field = (float)v;                                                                                     \
    }
    NUM("lr", 0.0, 1e3, lr)
    NUM("momentum", 0.0, 1.0, momentum)
    NUM("dampening", 0.0, 1.0, dampening)
    NUM("weight_decay", 0.0, 1e3, weight_decay)
    NUM("eps", 0.0, 1.0, eps)
    NUM("alpha", 0.0, 1.0, alpha)
    NUM("lr_decay", 0.0, 1e3, lr_decay)
#undef NUM
    if (st == PLX_OK)
        st = get_bool(p, o, path, "nesterov", false, &c->nesterov);
    if (st == PLX_OK)
        st = get_bool(p, o, path, "amsgrad", false, &c->amsgrad);
    if (st == PLX_OK)
        st = get_bool(p, o, path, "centered", false, &c->centered);
    if (st != PLX_OK)
        return st;
    const cJSON *betas = cJSON_GetObjectItemCaseSensitive(o, "betas");
    if (betas != NULL) {
        if (!cJSON_IsArray(betas) || cJSON_GetArraySize(betas) != 2 ||
            !cJSON_IsNumber(cJSON_GetArrayItem(betas, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(betas, 1)))
            return bad(p, "$.training.optimizer.betas", "expected two numbers in [0, 1)");
        c->beta1 = (float)cJSON_GetArrayItem(betas, 0)->valuedouble;
        c->beta2 = (float)cJSON_GetArrayItem(betas, 1)->valuedouble;
        if (!(c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1))
            return bad(p, "$.training.optimizer.betas", "expected two numbers in [0, 1)");
    }
    if (!(c->lr > 0))
        return bad(p, "$.training.optimizer.lr", "expected a positive learning rate");
    if (c->nesterov && (c->kind != OPT_SGD || c->momentum <= 0 || c->dampening != 0))
        return bad(p, "$.training.optimizer.nesterov", "needs sgd with momentum > 0 and dampening 0");
    return PLX_OK;
}

static plx_status parse_schedule(spec_parser *p, const cJSON *training)
{
    model_spec *s = &p->m->spec;
    schedule_init(&s->sched, s->opt.lr);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(training, "schedule");
    if (list == NULL)
        return PLX_OK;
    if (cJSON_IsObject(list)) {
        /* one part may be given without the list */
    } else if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > SCHEDULE_MAX_PARTS)
        return bad(p, "$.training.schedule", "expected a schedule object or a list of at most %d", SCHEDULE_MAX_PARTS);
    int32_t n = cJSON_IsObject(list) ? 1 : cJSON_GetArraySize(list);
    for (int32_t i = 0; i < n; i++) {
        const cJSON *e = cJSON_IsObject(list) ? list : cJSON_GetArrayItem(list, i);
        char path[64];
        snprintf(path, sizeof path, "$.training.schedule[%d]", (int)i);
        const cJSON *type = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "type") : NULL;
        if (!cJSON_IsString(type))
            return bad(p, path, "expected {\"type\": step|exponential|cosine|warmup|plateau, ...}");
        schedule_part *part = &s->sched.parts[s->sched.n_parts++];
        memset(part, 0, sizeof *part);
        plx_status st = PLX_OK;
        double v = 0.0;
        int64_t k = 0;
        const char *t = type->valuestring;
        if (strcmp(t, "step") == 0) {
            static const char *const allowed[] = {"type", "step_size", "gamma", NULL};
            part->kind = SCHED_STEP;
            st = only_keys(p, e, path, allowed);
            if (st == PLX_OK)
                st = get_int(p, e, path, "step_size", 1, 1000000, 1, true, &part->step_size);
            if (st == PLX_OK)
                st = get_number(p, e, path, "gamma", 0.0, 10.0, 0.1, false, &v);
            part->gamma = (float)v;
        } else if (strcmp(t, "exponential") == 0) {
            static const char *const allowed[] = {"type", "gamma", NULL};
            part->kind = SCHED_EXPONENTIAL;
            st = only_keys(p, e, path, allowed);
            if (st == PLX_OK)
                st = get_number(p, e, path, "gamma", 0.0, 10.0, 0.9, true, &v);
            part->gamma = (float)v;
        } else if (strcmp(t, "cosine") == 0) {
            static const char *const allowed[] = {"type", "epochs", "eta_min", NULL};
            part->kind = SCHED_COSINE;
            st = only_keys(p, e, path, allowed);
            if (st == PLX_OK)
                st = get_int(p, e, path, "epochs", 1, 1000000, 1, true, &part->t_max);
            if (st == PLX_OK)
                st = get_number(p, e, path, "eta_min", 0.0, 1e3, 0.0, false, &v);
            part->eta_min = (float)v;
        } else if (strcmp(t, "warmup") == 0) {
            static const char *const allowed[] = {"type", "steps", "start_factor", NULL};
            part->kind = SCHED_WARMUP;
            st = only_keys(p, e, path, allowed);
            if (st == PLX_OK)
                st = get_int(p, e, path, "steps", 1, 100000000, 1, true, &part->warmup_steps);
            if (st == PLX_OK)
                st = get_number(p, e, path, "start_factor", 0.0, 1.0, 0.1, false, &v);
            part->start_factor = (float)v;
        } else if (strcmp(t, "plateau") == 0) {
            static const char *const allowed[] = {"type", "factor", "patience", "threshold", "min_lr", "metric", NULL};
            part->kind = SCHED_PLATEAU;
            st = only_keys(p, e, path, allowed);
            if (st == PLX_OK)
                st = get_number(p, e, path, "factor", 1e-6, 0.999999, 0.1, false, &v);
            part->factor = (float)v;
            if (st == PLX_OK)
                st = get_int(p, e, path, "patience", 0, 1000000, 10, false, &k);
            part->patience = k;
            if (st == PLX_OK)
                st = get_number(p, e, path, "threshold", 0.0, 1.0, 1e-4, false, &v);
            part->threshold = (float)v;
            if (st == PLX_OK)
                st = get_number(p, e, path, "min_lr", 0.0, 1e3, 0.0, false, &v);
            part->min_lr = (float)v;
            char *metric = NULL;
            if (st == PLX_OK)
                st = get_string(p, e, path, "metric", "val_loss", false, &metric);
            if (st == PLX_OK && strcmp(metric, "val_loss") != 0 && strcmp(metric, "val_accuracy") != 0)
                st = bad(p, path, "\"metric\" must be \"val_loss\" or \"val_accuracy\"");
            part->maximize = st == PLX_OK && strcmp(metric, "val_accuracy") == 0;
            s->plateau_on_accuracy = part->maximize;
            free(metric);
        } else
            return bad(p, path, "unknown schedule type '%s' (expected step, exponential, cosine, warmup or plateau)", t);
        if (st != PLX_OK)
            return st;
    }
    return PLX_OK;
}

static plx_status parse_augmentation(spec_parser *p, const cJSON *training)
{
    model_spec *s = &p->m->spec;
    plx_status st;
    const cJSON *a = get_object(p, training, "$.training", "augmentation", false, &st);
    if (a == NULL)
        return st;
    static const char *const allowed[] = {"random_crop", "horizontal_flip", "rotation", "brightness", "contrast",
                                          "mixup", "cutmix", "cutmix_prob", "mix_prob", NULL};
    const char *path = "$.training.augmentation";
    st = only_keys(p, a, path, allowed);
    double v = 0.0;
    int64_t k = 0;
    augment_options *o = &s->augment;
    if (st == PLX_OK)
        st = get_int(p, a, path, "random_crop", 0, 1024, 0, false, &k);
    o->crop_padding = k;
#define AUG(key, lo, hi, field)                                                                                  \
    if (st == PLX_OK) {                                                                                          \
        st = get_number(p, a, path, key, lo, hi, 0.0, false, &v);                                                \
        o->field = (float)v;                                                                                     \
    }
    AUG("horizontal_flip", 0.0, 1.0, flip_prob)
    AUG("rotation", 0.0, 360.0, rotate_degrees)
    AUG("brightness", 0.0, 10.0, brightness)
    AUG("contrast", 0.0, 10.0, contrast)
    AUG("mixup", 0.0, 100.0, mixup_alpha)
    AUG("cutmix", 0.0, 100.0, cutmix_alpha)
    AUG("cutmix_prob", 0.0, 1.0, cutmix_prob)
    AUG("mix_prob", 0.0, 1.0, mix_prob)
#undef AUG
    if (st != PLX_OK)
        return st;
    data_error err;
    int64_t shape[PLX_MAX_DIMS];
    for (int32_t d = 0; d < s->input_ndim; d++)
        shape[d] = s->input_shape[d];
    if (augment_validate(o, s->input_ndim, shape, &err) != PLX_OK)
        return bad(p, path, "%s", err.message);
    if (augment_mixes(o) && s->loss != LOSS_CROSS_ENTROPY)
        return bad(p, path, "mixup and CutMix need the cross_entropy loss");
    return PLX_OK;
}

static plx_status parse_data(spec_parser *p, const cJSON *training)
{
    model_spec *s = &p->m->spec;
    plx_status st;
    const cJSON *d = get_object(p, training, "$.training", "data", false, &st);
    if (d == NULL)
        return st;
    static const char *const allowed[] = {"format", "dir", "train_images", "train_labels", "test_images", "test_labels",
                                          "train", "test", "label_column", "normalize", "classes", NULL};
    const char *path = "$.training.data";
    st = only_keys(p, d, path, allowed);
    if (st == PLX_OK)
        st = get_string(p, d, path, "format", "idx", false, &s->data_format);
    if (st == PLX_OK && strcmp(s->data_format, "idx") != 0 && strcmp(s->data_format, "csv") != 0)
        st = bad(p, "$.training.data.format", "expected \"idx\" or \"csv\", got \"%s\"", s->data_format);
    if (st == PLX_OK)
        st = get_string(p, d, path, "dir", NULL, false, &s->data_dir);
    bool idx = st == PLX_OK && strcmp(s->data_format, "idx") == 0;
    if (st == PLX_OK)
        st = get_string(p, d, path, "train_images", idx ? "train-images-idx3-ubyte.gz" : NULL, false, &s->train_images);
    if (st == PLX_OK)
        st = get_string(p, d, path, "train_labels", idx ? "train-labels-idx1-ubyte.gz" : NULL, false, &s->train_labels);
    if (st == PLX_OK)
        st = get_string(p, d, path, "test_images", idx ? "t10k-images-idx3-ubyte.gz" : NULL, false, &s->test_images);
    if (st == PLX_OK)
        st = get_string(p, d, path, "test_labels", idx ? "t10k-labels-idx1-ubyte.gz" : NULL, false, &s->test_labels);
    if (st == PLX_OK)
        st = get_string(p, d, path, "train", NULL, false, &s->train_csv);
    if (st == PLX_OK)
        st = get_string(p, d, path, "test", NULL, false, &s->test_csv);
    if (st == PLX_OK)
        st = get_string(p, d, path, "label_column", "label", false, &s->label_column);
    if (st == PLX_OK && !idx && s->train_csv == NULL)
        st = bad(p, path, "csv data needs \"train\" (a CSV file)");
    if (st != PLX_OK)
        return st;
    const cJSON *subset = cJSON_GetObjectItemCaseSensitive(d, "classes");
    if (subset != NULL) {
        int32_t n = cJSON_IsArray(subset) ? cJSON_GetArraySize(subset) : 0;
        if (n < 1 || n > 100000)
            return bad(p, "$.training.data.classes", "expected a non-empty list of the labels to keep");
        if (n != s->classes)
            return bad(p, "$.training.data.classes", "keeps %d classes but the model has %lld", (int)n,
                       (long long)s->classes);
        s->class_subset = calloc((size_t)n, sizeof *s->class_subset);
        if (s->class_subset == NULL)
            return PLX_OUT_OF_MEMORY;
        for (int32_t i = 0; i < n; i++) {
            const cJSON *c = cJSON_GetArrayItem(subset, i);
            if (!cJSON_IsNumber(c) || c->valuedouble != floor(c->valuedouble) || c->valuedouble < 0 ||
                c->valuedouble > 1e6)
                return bad(p, "$.training.data.classes", "entry %d is not a label (a non-negative integer)", (int)i);
            s->class_subset[i] = (int64_t)c->valuedouble;
            for (int32_t j = 0; j < i; j++)
                if (s->class_subset[j] == s->class_subset[i])
                    return bad(p, "$.training.data.classes", "label %lld is listed twice", (long long)s->class_subset[i]);
            s->n_class_subset = i + 1;
        }
    }
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(d, "normalize");
    if (norm == NULL || cJSON_IsFalse(norm))
        return PLX_OK;
    if (cJSON_IsTrue(norm)) {
        s->normalize = 2;
        return PLX_OK;
    }
    if (!cJSON_IsObject(norm))
        return bad(p, "$.training.data.normalize", "expected true (statistics of the training set) or {\"mean\": [...], \"std\": [...]}");
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(norm, "mean"), *std = cJSON_GetObjectItemCaseSensitive(norm, "std");
    if (!cJSON_IsArray(mean) || !cJSON_IsArray(std) || cJSON_GetArraySize(mean) != cJSON_GetArraySize(std) ||
        cJSON_GetArraySize(mean) < 1 || cJSON_GetArraySize(mean) > 16)
        return bad(p, "$.training.data.normalize", "\"mean\" and \"std\" must be lists of 1 to 16 numbers of equal length");
    s->n_norm = cJSON_GetArraySize(mean);
    for (int32_t i = 0; i < s->n_norm; i++) {
        const cJSON *m = cJSON_GetArrayItem(mean, i), *sd = cJSON_GetArrayItem(std, i);
        if (!cJSON_IsNumber(m) || !cJSON_IsNumber(sd) || !(sd->valuedouble > 0))
            return bad(p, "$.training.data.normalize", "entry %d: mean must be a number and std a positive number", (int)i);
        s->norm_mean[i] = (float)m->valuedouble;
        s->norm_std[i] = (float)sd->valuedouble;
    }
    s->normalize = 1;
    return PLX_OK;
}

static plx_status parse_training(spec_parser *p, const cJSON *root)
{
    model_spec *s = &p->m->spec;
    plx_status st;
    const cJSON *t = get_object(p, root, "$", "training", false, &st);
    if (st != PLX_OK)
        return st;
    static const cJSON empty_obj = {.type = cJSON_Object};
    if (t == NULL)
        t = &empty_obj;
    static const char *const allowed[] = {"loss", "optimizer", "schedule", "batch_size", "eval_batch_size", "epochs",
                                          "gradient_clipping", "l1", "l2", "early_stopping", "validation_split",
                                          "shuffle", "augmentation", "data", "freeze", "init_from", NULL};
    const char *path = "$.training";
    st = only_keys(p, t, path, allowed);
    if (st == PLX_OK)
        st = parse_loss(p, t);
    if (st == PLX_OK)
        st = parse_optimizer(p, t);
    if (st == PLX_OK)
        st = parse_schedule(p, t);
    int64_t k = 0;
    double v = 0.0;
    if (st == PLX_OK)
        st = get_int(p, t, path, "batch_size", 1, 1 << 20, 64, false, &s->batch_size);
    if (st == PLX_OK)
        st = get_int(p, t, path, "eval_batch_size", 1, 1 << 20, s->batch_size > 256 ? s->batch_size : 256, false,
                     &s->eval_batch_size);
    if (st == PLX_OK)
        st = get_int(p, t, path, "epochs", 0, 1000000, 1, false, &k);
    s->epochs = (int32_t)k;
    if (st == PLX_OK)
        st = get_number(p, t, path, "validation_split", 0.0, 0.9, 0.0, false, &s->val_split);
    if (st == PLX_OK)
        st = get_bool(p, t, path, "shuffle", true, &s->shuffle);
    if (st == PLX_OK)
        st = get_number(p, t, path, "l1", 0.0, 1e3, 0.0, false, &v);
    s->opt.l1 = (float)v;
    if (st == PLX_OK)
        st = get_number(p, t, path, "l2", 0.0, 1e3, 0.0, false, &v);
    s->opt.l2 = (float)v;
    const cJSON *clip = st == PLX_OK ? get_object(p, t, path, "gradient_clipping", false, &st) : NULL;
    if (clip != NULL) {
        static const char *const callowed[] = {"norm", "value", NULL};
        st = only_keys(p, clip, "$.training.gradient_clipping", callowed);
        if (st == PLX_OK)
            st = get_number(p, clip, "$.training.gradient_clipping", "norm", 0.0, 1e9, 0.0, false, &v);
        s->opt.clip_norm = (float)v;
        if (st == PLX_OK)
            st = get_number(p, clip, "$.training.gradient_clipping", "value", 0.0, 1e9, 0.0, false, &v);
        s->opt.clip_value = (float)v;
    }
    const cJSON *early = st == PLX_OK ? get_object(p, t, path, "early_stopping", false, &st) : NULL;
    if (early != NULL) {
        static const char *const eallowed[] = {"metric", "patience", "min_delta", NULL};
        const char *ep = "$.training.early_stopping";
        st = only_keys(p, early, ep, eallowed);
        char *metric = NULL;
        if (st == PLX_OK)
            st = get_string(p, early, ep, "metric", "val_loss", false, &metric);
        if (st == PLX_OK && strcmp(metric, "val_loss") != 0 && strcmp(metric, "val_accuracy") != 0)
            st = bad(p, "$.training.early_stopping.metric", "expected \"val_loss\" or \"val_accuracy\", got \"%s\"", metric);
        s->early_on_accuracy = st == PLX_OK && strcmp(metric, "val_accuracy") == 0;
        free(metric);
        if (st == PLX_OK)
            st = get_int(p, early, ep, "patience", 0, 1000000, 5, false, &s->early_patience);
        if (st == PLX_OK)
            st = get_number(p, early, ep, "min_delta", 0.0, 1e9, 0.0, false, &s->early_min_delta);
        s->early_stopping = true;
    }
    if (st == PLX_OK)
        st = parse_augmentation(p, t);
    if (st == PLX_OK)
        st = parse_data(p, t);
    const cJSON *freeze = cJSON_GetObjectItemCaseSensitive(t, "freeze");
    if (st == PLX_OK && freeze != NULL) {
        if (!cJSON_IsArray(freeze))
            return bad(p, "$.training.freeze", "expected a list of layer names");
        s->freeze = calloc((size_t)cJSON_GetArraySize(freeze) + 1, sizeof *s->freeze);
        const cJSON *f;
        int32_t i = 0;
        cJSON_ArrayForEach(f, freeze)
        {
            bool known = false;
            for (int32_t j = 0; cJSON_IsString(f) && j < s->n_layers && !known; j++)
                known = strcmp(s->layers[j].name, f->valuestring) == 0;
            if (!known)
                return bad(p, "$.training.freeze", "entry %d is not the name of a layer of this model", (int)i);
            s->freeze[s->n_freeze++] = strdup(f->valuestring);
            i++;
        }
    }
    const cJSON *init = cJSON_GetObjectItemCaseSensitive(t, "init_from");
    if (st == PLX_OK && init != NULL) {
        if (cJSON_IsString(init))
            s->init_from = strdup(init->valuestring);
        else if (cJSON_IsObject(init)) {
            static const char *const iallowed[] = {"path", "partial", NULL};
            st = only_keys(p, init, "$.training.init_from", iallowed);
            if (st == PLX_OK)
                st = get_string(p, init, "$.training.init_from", "path", NULL, true, &s->init_from);
            if (st == PLX_OK)
                st = get_bool(p, init, "$.training.init_from", "partial", false, &s->init_partial);
        } else
            return bad(p, "$.training.init_from", "expected a safetensors path or {\"path\": ..., \"partial\": true}");
    }
    return st;
}

plx_status model_spec_parse(plx_model *m)
{
    spec_parser p = {.m = m, .file = m->origin};
    model_spec *s = &m->spec;
    const cJSON *root = m->spec_json;
    if (!cJSON_IsObject(root))
        return bad(&p, "$", "expected a JSON object");
    static const char *const allowed[] = {"name", "seed", "input", "classes", "layers", "output", "training", NULL};
    plx_status st = only_keys(&p, root, "$", allowed);
    int64_t k = 0;
    if (st == PLX_OK)
        st = get_string(&p, root, "$", "name", "model", false, &s->name);
    if (st == PLX_OK)
        st = get_int(&p, root, "$", "seed", 0, INT64_MAX / 2, 0, false, &k);
    s->seed = (uint64_t)k;
    const cJSON *input = st == PLX_OK ? get_object(&p, root, "$", "input", true, &st) : NULL;
    if (st != PLX_OK)
        return st;
    static const char *const iallowed[] = {"shape", NULL};
    st = only_keys(&p, input, "$.input", iallowed);
    if (st != PLX_OK)
        return st;
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(input, "shape");
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) < 1 || cJSON_GetArraySize(shape) > PLX_MAX_DIMS - 1)
        return bad(&p, "$.input.shape", "expected a list of 1 to %d positive integers (one example's shape, e.g. [1, 28, 28])",
                   PLX_MAX_DIMS - 1);
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape)
    {
        if (!cJSON_IsNumber(dim) || dim->valuedouble != floor(dim->valuedouble) || dim->valuedouble < 1 ||
            dim->valuedouble > 1e7)
            return bad(&p, "$.input.shape", "expected positive integers");
        s->input_shape[s->input_ndim++] = (int64_t)dim->valuedouble;
    }
    st = get_int(&p, root, "$", "classes", 1, 1000000, 0, true, &s->classes);
    if (st == PLX_OK)
        st = parse_layers(&p, root);
    const cJSON *output = cJSON_GetObjectItemCaseSensitive(root, "output");
    if (st == PLX_OK && output != NULL) {
        bool found = false;
        for (int32_t i = 0; cJSON_IsString(output) && i < s->n_layers && !found; i++)
            if (strcmp(s->layers[i].name, output->valuestring) == 0) {
                s->output_layer = i;
                found = true;
            }
        if (!found)
            return bad(&p, "$.output", "expected the name of the layer that gives the logits");
    }
    if (st == PLX_OK)
        st = parse_training(&p, root);
    if (st == PLX_OUT_OF_MEMORY)
        return ctx_fail(m->ctx, st, "%s: out of memory", m->origin);
    return st;
}

/*
 * checkpoint.c — checkpoints as safetensors: every variable (weights, layer
 * state, optimizer slots) by name, and in the metadata the model file, the
 * step, the data position (which is also the RNG state: every draw is
 * counter-based) and the scheduler state, so a resumed run continues
 * exactly. Written atomically (temp file, fsync, rename): a crash or an
 * interrupt never leaves a broken or missing checkpoint.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "model.h"

#define CHECKPOINT_FORMAT "plexus-checkpoint-1"

plx_status checkpoint_write(plx_model *m, const char *path)
{
    st_writer *w = st_writer_new();
    if (w == NULL)
        return ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "out of memory");
    plx_status st = PLX_OK;
    for (int32_t i = 0; i < m->n_vars && st == PLX_OK; i++) {
        const plx_tensor_desc *d = plx_tensor_desc_get(m->vars[i].tensor);
        st = st_writer_add_tensor(w, m->vars[i].name, d->dtype, d->ndim, d->shape, plx_tensor_data(m->vars[i].tensor));
    }
    char pos[DATA_POSITION_CAP], sched[128];
    data_position p = m->has_position ? m->position : (data_position){0, 0, m->spec.seed};
    data_position_format(&p, pos, sizeof pos);
    schedule_state_format(&m->spec.sched, sched, sizeof sched);
    if (st == PLX_OK)
        st = st_writer_set_metadata(w, "format", CHECKPOINT_FORMAT);
    if (st == PLX_OK)
        st = st_writer_set_metadata(w, "model", m->spec_text);
    if (st == PLX_OK)
        st = st_writer_set_metadata(w, "model_origin", m->origin);
    if (st == PLX_OK)
        st = st_writer_set_metadata_i64(w, "global_step", m->global_step);
    if (st == PLX_OK)
        st = st_writer_set_metadata_i64(w, "epochs_done", m->epochs_done);
    if (st == PLX_OK)
        st = st_writer_set_metadata(w, "data_position", pos);
    if (st == PLX_OK)
        st = st_writer_set_metadata(w, "scheduler", sched);
    char norm[16 * 64 + 16];
    int used = snprintf(norm, sizeof norm, "%d", (int)m->norm_n);
    for (int32_t c = 0; c < m->norm_n && used > 0 && (size_t)used < sizeof norm; c++)
        used += snprintf(norm + used, sizeof norm - (size_t)used, " %.9g %.9g", (double)m->norm_mean[c],
                         (double)m->norm_std[c]);
    if (st == PLX_OK)
        st = st_writer_set_metadata(w, "input_normalization", norm);
    char err[1024] = "";
    if (st != PLX_OK)
        snprintf(err, sizeof err, "%s", st_writer_error(w));
    else
        st = st_writer_write(w, path, err, sizeof err);
    st_writer_free(w);
    if (st != PLX_OK)
        return ctx_fail(m->ctx, st, "writing checkpoint %s: %s", path, err);
    return PLX_OK;
}

static plx_status restore_from(plx_model *m, st_file *f, const char *path)
{
    char err[1024];
    const char *format = st_metadata_get(f, "format");
    if (format == NULL || strcmp(format, CHECKPOINT_FORMAT) != 0)
        return ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "%s: not a Plexus checkpoint (metadata \"format\" is %s%s%s)", path,
                        format ? "\"" : "missing", format ? format : "", format ? "\"" : "");
    /* Validate everything before changing anything. */
    for (int32_t i = 0; i < m->n_vars; i++) {
        const st_tensor *t = st_tensor_find(f, m->vars[i].name);
        const plx_tensor_desc *d = plx_tensor_desc_get(m->vars[i].tensor);
        if (t == NULL)
            return ctx_fail(m->ctx, PLX_NOT_FOUND, "%s: the checkpoint has no tensor '%s'", path, m->vars[i].name);
        bool same = plx_dtype_equal(t->dtype, d->dtype) && t->ndim == d->ndim;
        for (int32_t k = 0; same && k < d->ndim; k++)
            same = t->shape[k] == d->shape[k];
        if (!same)
            return ctx_fail(m->ctx, PLX_SHAPE_MISMATCH, "%s: tensor '%s' has another dtype or shape than the model's", path,
                            m->vars[i].name);
    }
    int64_t step = 0, epochs = 0;
    if (st_metadata_get_i64(f, "global_step", &step, err, sizeof err) != PLX_OK || step < 0 ||
        st_metadata_get_i64(f, "epochs_done", &epochs, err, sizeof err) != PLX_OK || epochs < 0 || epochs > INT32_MAX)
        return ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "%s: bad step metadata: %s", path, err);
    const char *pos_text = st_metadata_get(f, "data_position");
    data_position pos;
    data_error derr;
    if (pos_text == NULL || data_position_parse(pos_text, &pos, &derr) != PLX_OK)
        return ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "%s: bad data_position metadata%s%s", path, pos_text ? ": " : "",
                        pos_text ? derr.message : " (missing)");
    const char *sched = st_metadata_get(f, "scheduler");
    schedule restored = m->spec.sched;
    if (sched == NULL || !schedule_state_parse(&restored, sched))
        return ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "%s: bad scheduler metadata", path);
    /* "C m0 s0 m1 s1 ..." (absent in checkpoints of models without it). */
    int32_t norm_n = 0;
    float norm_mean[16] = {0}, norm_std[16] = {0};
    const char *norm = st_metadata_get(f, "input_normalization");
    if (norm != NULL) {
        char *end;
        long c = strtol(norm, &end, 10);
        bool ok = end != norm && c >= 0 && c <= 16;
        for (long i = 0; ok && i < c; i++) {
            norm_mean[i] = strtof(end, &end);
            norm_std[i] = strtof(end, &end);
            ok = norm_std[i] > 0;
        }
        if (!ok)
            return ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "%s: bad input_normalization metadata", path);
        norm_n = (int32_t)c;
    }
    for (int32_t i = 0; i < m->n_vars; i++) {
        const st_tensor *t = st_tensor_find(f, m->vars[i].name);
        if (t->nbytes > 0)
            memcpy(plx_tensor_data(m->vars[i].tensor), t->data, t->nbytes);
    }
    m->global_step = step;
    m->epochs_done = (int32_t)epochs;
    m->position = pos;
    m->has_position = true;
    m->spec.sched = restored;
    if (norm != NULL) {
        m->norm_n = norm_n;
        memcpy(m->norm_mean, norm_mean, sizeof norm_mean);
        memcpy(m->norm_std, norm_std, sizeof norm_std);
    }
    return PLX_OK;
}

plx_status checkpoint_restore(plx_model *m, const char *path)
{
    st_file *f = NULL;
    char err[1024];
    if (st_file_open(path, &f, err, sizeof err) != PLX_OK)
        return ctx_fail(m->ctx, PLX_IO_ERROR, "%s", err);
    const char *spec = st_metadata_get(f, "model");
    if (spec != NULL && strcmp(spec, m->spec_text) != 0)
        ctx_log(m->ctx, PLX_LOG_WARN, "%s: the checkpoint was made with a different model file than %s; resuming anyway",
                path, m->origin);
    plx_status st = restore_from(m, f, path);
    st_file_close(f);
    return st;
}

PLX_API plx_status plx_model_save(plx_model *m, const char *path)
{
    if (m == NULL || path == NULL)
        return m ? ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "plx_model_save: NULL argument") : PLX_INVALID_ARGUMENT;
    return checkpoint_write(m, path);
}

PLX_API plx_status plx_model_load_checkpoint(plx_context *ctx, const char *path, plx_model **out)
{
    if (ctx == NULL || path == NULL || out == NULL)
        return ctx ? ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plx_model_load_checkpoint: NULL argument") : PLX_INVALID_ARGUMENT;
    st_file *f = NULL;
    char err[1024];
    if (st_file_open(path, &f, err, sizeof err) != PLX_OK)
        return ctx_fail(ctx, PLX_IO_ERROR, "%s", err);
    const char *spec = st_metadata_get(f, "model");
    const char *origin = st_metadata_get(f, "model_origin");
    if (spec == NULL) {
        st_file_close(f);
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: no model file in the checkpoint's metadata", path);
    }
    char name[1200];
    snprintf(name, sizeof name, "%s (in %s)", origin ? origin : "model", path);
    plx_model *m = NULL;
    plx_status st = model_parse_for_checkpoint(ctx, spec, name, &m);
    /* Optimizer slots exist only once training is set up; a checkpoint for
     * evaluation needs just the weights. */
    if (st == PLX_OK) {
        st = restore_from(m, f, path);
        if (st != PLX_OK) {
            plx_model_free(m);
            m = NULL;
        }
    }
    st_file_close(f);
    if (st == PLX_OK)
        *out = m;
    return st;
}

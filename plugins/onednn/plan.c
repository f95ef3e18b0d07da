/*
 * plan.c — building and running the onednn plugin's execution plans: up to
 * three steps (a primitive or a host step in C), each primitive with its
 * arguments bound to the call's tensors or to plan temporaries, plus the
 * reorders between the plain layouts the runtime uses and any blocked
 * layout a primitive prefers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include <stddef.h>

#include "onednn.h"

const char *one_status_name(dnnl_status_t st)
{
    const char *name = dnnl_status2str(st);
    return name != NULL ? name : "unknown oneDNN status";
}

dnnl_status_t one_fail(dnnl_status_t st, char *reason, size_t cap, const char *what)
{
    snprintf(reason, cap, "oneDNN %s failed: %s", what, one_status_name(st));
    return st;
}

double one_call_bytes(const plx_op_call *call)
{
    double bytes = 0.0;
    for (int32_t i = 0; i < call->n_inputs; i++)
        bytes += (double)plx_desc_numel(&call->inputs[i]) * (double)plx_dtype_size(call->inputs[i].dtype);
    for (int32_t i = 0; i < call->n_outputs; i++)
        bytes += (double)plx_desc_numel(&call->outputs[i]) * (double)plx_dtype_size(call->outputs[i].dtype);
    return bytes;
}

double one_estimate_memory_bound(const plx_op_call *call, double passes)
{
    return ONE_CALL_NS + passes * one_call_bytes(call) / ONE_BYTES_PER_NS;
}

double one_bf16_speedup(const one_state *s, const plx_op_call *call, double with_amx)
{
    if (!plx_dtype_equal(call->inputs[0].dtype, PLX_BF16))
        return 1.0;
    return s->amx ? with_amx : 1.5;
}

dnnl_data_type_t one_dt(const plx_tensor_desc *t)
{
    return t->dtype.code == PLX_DTYPE_CODE_BFLOAT ? dnnl_bf16 : dnnl_f32;
}

dnnl_status_t one_md_plain(one_md *md, int ndims, const int64_t *dims, dnnl_data_type_t dt)
{
    dnnl_dims_t d, strides;
    int64_t stride = 1;
    if (ndims == 0) {
        d[0] = 1;
        strides[0] = 1;
        return one_md_strides(md, 1, d, dt, strides);
    }
    for (int i = ndims - 1; i >= 0; i--) {
        d[i] = dims[i];
        strides[i] = stride;
        stride *= dims[i];
    }
    return one_md_strides(md, ndims, d, dt, strides);
}

/* Channels per block of the own layout: what oneDNN's JIT convolutions and
 * pooling use on this CPU (16 with AVX-512, 8 with AVX2); 0 for none (older
 * CPUs, where pooling on blocked data has only reference code). The CPU
 * does not change under a process, so neither does the answer. */
static int layout_block(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    if (one_isa_has(isa, dnnl_cpu_isa_avx512_core))
        return 16;
    if (one_isa_has(isa, dnnl_cpu_isa_avx2))
        return 8;
    return 0;
}

bool one_layout_possible(const plx_tensor_desc *t)
{
    int block = layout_block();
    return block > 0 && t->ndim == 4 && t->shape[1] % block == 0 &&
           (plx_dtype_equal(t->dtype, PLX_F32) || plx_dtype_equal(t->dtype, PLX_BF16));
}

bool one_layout_is_own(const plx_op_call *call, int32_t index)
{
#if PLX_ABI_MINOR >= 2
    if (call->struct_size < offsetof(plx_op_call, layouts) + sizeof call->layouts || call->layouts == NULL)
        return false;
    return call->layouts[index] == PLX_LAYOUT_BACKEND;
#else
    (void)call;
    (void)index;
    return false;
#endif
}

static dnnl_status_t md_own(one_md *md, const int64_t *dims, dnnl_data_type_t dt)
{
    dnnl_dims_t d;
    for (int i = 0; i < 4; i++)
        d[i] = dims[i];
    return one_md_tag(md, 4, d, dt, layout_block() == 16 ? dnnl_aBcd16b : dnnl_aBcd8b);
}

dnnl_status_t one_md_user(one_md *md, const plx_op_call *call, int32_t index, int ndims, const int64_t *dims,
                          dnnl_data_type_t dt)
{
    if (ndims == 4 && one_layout_is_own(call, index))
        return md_own(md, dims, dt);
    return one_md_plain(md, ndims, dims, dt);
}

uint64_t one_layout_bytes(void *state, int32_t device, const plx_tensor_desc *t)
{
    (void)state;
    if (device != 0 || !one_layout_possible(t))
        return 0;
    one_md md;
    one_mds_clear(&md, 1);
    if (md_own(&md, t->shape, one_dt(t)) != dnnl_success)
        return 0;
    uint64_t bytes = one_md_size(one_ref(&md));
    one_mds_release(&md, 1);
    return bytes;
}

dnnl_status_t one_md_any(one_md *md, int ndims, const int64_t *dims, dnnl_data_type_t dt)
{
    dnnl_dims_t d;
    for (int i = 0; i < ndims; i++)
        d[i] = dims[i];
    return one_md_tag(md, ndims, d, dt, dnnl_format_tag_any);
}

void one_mds_clear(one_md *mds, int n)
{
    for (int i = 0; i < n; i++)
        one_md_clear(&mds[i]);
}

void one_mds_release(one_md *mds, int n)
{
    for (int i = 0; i < n; i++)
        one_md_release(&mds[i]);
}

bool one_pd_takes(const_dnnl_primitive_desc_t pd, int dnnl_arg)
{
    return one_md_ndims(one_pd_arg_md(pd, dnnl_arg)) > 0;
}

static one_step *next_step(one_plan *plan)
{
    if (plan->n_steps >= ONE_MAX_STEPS)
        return NULL;
    one_step *step = &plan->steps[plan->n_steps];
    memset(step, 0, sizeof *step);
    return step;
}

/* Adds a step running the primitive of pd (pd stays the caller's). */
static dnnl_status_t add_step(one_plan *plan, const_dnnl_primitive_desc_t pd, one_step **out)
{
    one_step *step = next_step(plan);
    if (step == NULL)
        return dnnl_invalid_arguments;
    dnnl_status_t st = dnnl_primitive_create(&step->prim, pd);
    if (st != dnnl_success) {
        step->prim = NULL;
        return st;
    }
    plan->n_steps++;
    *out = step;
    return dnnl_success;
}

dnnl_status_t one_plan_add_host(one_plan *plan, one_host_fn fn)
{
    one_step *step = next_step(plan);
    if (step == NULL)
        return dnnl_invalid_arguments;
    step->host = fn;
    plan->n_steps++;
    return dnnl_success;
}

dnnl_status_t one_plan_temp(one_plan *plan, int index, one_md_ref md)
{
    if (index < 0 || index >= ONE_MAX_TEMPS || index < plan->n_temps)
        return dnnl_invalid_arguments;
    for (int t = plan->n_temps; t < index; t++)
        one_md_clear(&plan->temp_md[t]);
    dnnl_status_t st = one_md_copy(&plan->temp_md[index], md);
    if (st == dnnl_success)
        plan->n_temps = index + 1;
    return st;
}

static dnnl_status_t make_reorder(const one_state *s, one_md_ref from, one_md_ref to, dnnl_primitive_t *out)
{
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = one_reorder_pd(&pd, s->engine, from, to);
    if (st != dnnl_success)
        return st;
    st = dnnl_primitive_create(out, pd);
    if (st != dnnl_success)
        *out = NULL;
    dnnl_primitive_desc_destroy(pd);
    return st;
}

/* Binds argument dnnl_arg of step (made from pd) as one_binding says. */
static dnnl_status_t bind_arg(const one_state *s, one_plan *plan, one_step *step, const_dnnl_primitive_desc_t pd,
                              int dnnl_arg, int kind, int index, one_md_ref user_md)
{
    if (step->n_args >= ONE_MAX_ARGS)
        return dnnl_invalid_arguments;
    one_md_ref prim_md = one_pd_arg_md(pd, dnnl_arg);
    if (one_md_ndims(prim_md) == 0)
        return dnnl_invalid_arguments;
    one_arg *a = &step->args[step->n_args];
    memset(a, 0, sizeof *a);
    one_md_clear(&a->user_md);
    one_md_clear(&a->prim_md);
    a->dnnl_arg = dnnl_arg;
    a->kind = kind;
    a->index = index;
    /* Counted from here on, so one_plan_free releases what is made below. */
    step->n_args++;
    dnnl_status_t st = one_md_copy(&a->prim_md, prim_md);
    if (st != dnnl_success)
        return st;
    if (kind == ONE_ARG_TEMP) {
        if (index < 0 || index >= ONE_MAX_TEMPS)
            return dnnl_invalid_arguments;
        if (index >= plan->n_temps) {
            if ((st = one_plan_temp(plan, index, prim_md)) != dnnl_success)
                return st;
        } else if (!one_md_equal(one_ref(&plan->temp_md[index]), prim_md)) {
            return dnnl_invalid_arguments; /* producer and consumer disagree on the layout */
        }
        return one_md_copy(&a->user_md, prim_md);
    }
    if ((st = one_md_copy(&a->user_md, user_md)) != dnnl_success)
        return st;
    if (!one_md_equal(user_md, prim_md))
        st = kind == ONE_ARG_INPUT ? make_reorder(s, user_md, prim_md, &a->reorder)
                                   : make_reorder(s, prim_md, user_md, &a->reorder);
    return st;
}

dnnl_status_t one_plan_add_bound_step(const one_state *s, one_plan *plan, const_dnnl_primitive_desc_t pd,
                                      const one_binding *args, int n_args, const char *what, char *reason, size_t cap)
{
    one_step *step = NULL;
    dnnl_status_t st = add_step(plan, pd, &step);
    if (st != dnnl_success) {
        snprintf(reason, cap, "oneDNN %s primitive failed: %s", what, one_status_name(st));
        return st;
    }
    for (int i = 0; i < n_args; i++) {
        const one_binding *b = &args[i];
        if (b->dnnl_arg == ONE_NO_ARG)
            continue;
        st = bind_arg(s, plan, step, pd, b->dnnl_arg, b->kind, b->index, one_ref(b->user_md));
        if (st != dnnl_success) {
            snprintf(reason, cap, "oneDNN binding %s arguments failed: %s", what, one_status_name(st));
            return st;
        }
    }
    return dnnl_success;
}

void one_pd_destroy(dnnl_primitive_desc_t pd)
{
    if (pd != NULL)
        dnnl_primitive_desc_destroy(pd);
}

const char *one_plan_reference_impl(const one_plan *plan)
{
    for (int i = 0; i < plan->n_steps; i++) {
        const_dnnl_primitive_desc_t pd = NULL;
        if (plan->steps[i].prim == NULL ||
            dnnl_primitive_get_primitive_desc(plan->steps[i].prim, &pd) != dnnl_success || pd == NULL)
            continue;
        const char *impl = one_pd_impl(pd);
        if (strncmp(impl, "ref", 3) == 0)
            return impl;
    }
    return NULL;
}

void one_plan_free(one_plan *plan)
{
    for (int i = 0; i < ONE_MAX_STEPS; i++) {
        one_step *step = &plan->steps[i];
        for (int j = 0; j < step->n_args && j < ONE_MAX_ARGS; j++) {
            if (step->args[j].reorder != NULL)
                dnnl_primitive_destroy(step->args[j].reorder);
            one_md_release(&step->args[j].user_md);
            one_md_release(&step->args[j].prim_md);
        }
        if (step->prim != NULL)
            dnnl_primitive_destroy(step->prim);
        memset(step, 0, sizeof *step);
    }
    for (int t = 0; t < plan->n_temps && t < ONE_MAX_TEMPS; t++)
        one_md_release(&plan->temp_md[t]);
    plan->n_steps = 0;
    plan->n_temps = 0;
}

/* ---- execution -------------------------------------------------------------- */

/* Buffers one run allocates: reorder targets and plan temporaries. */
typedef struct run_scratch {
    void *buffers[ONE_MAX_STEPS * ONE_MAX_ARGS + ONE_MAX_TEMPS];
    dnnl_memory_t memories[ONE_MAX_STEPS * ONE_MAX_ARGS * 2 + ONE_MAX_TEMPS];
    int n_buffers, n_memories;
} run_scratch;

static void *scratch_alloc(run_scratch *r, size_t bytes)
{
    size_t rounded = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded > 0 ? rounded : 64);
    if (p != NULL)
        r->buffers[r->n_buffers++] = p;
    return p;
}

static dnnl_status_t scratch_memory(const one_state *s, run_scratch *r, one_md_ref md, void *ptr, dnnl_memory_t *out)
{
    dnnl_status_t st = dnnl_memory_create(out, md, s->engine, ptr);
    if (st == dnnl_success)
        r->memories[r->n_memories++] = *out;
    return st;
}

static void scratch_release(run_scratch *r)
{
    for (int i = 0; i < r->n_memories; i++)
        dnnl_memory_destroy(r->memories[i]);
    for (int i = 0; i < r->n_buffers; i++)
        free(r->buffers[i]);
}

static plx_status exec_fail(const one_state *s, const plx_op_call *call, dnnl_status_t st, const char *what)
{
    plx_status code = st == dnnl_out_of_memory ? PLX_OUT_OF_MEMORY : PLX_PLUGIN_ERROR;
    return s->host->set_error(s->host->host, code, "onednn: %s: %s failed: %s", call->op_name, what,
                              one_status_name(st));
}

static dnnl_status_t run_reorder(one_state *s, const_dnnl_primitive_t reorder, dnnl_memory_t from, dnnl_memory_t to)
{
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return dnnl_primitive_execute(reorder, s->stream, 2, args);
}

plx_status one_plan_execute(one_state *s, const one_plan *plan, const plx_op_call *call)
{
    run_scratch r = {.n_buffers = 0, .n_memories = 0};
    plx_status result = PLX_OK;
    dnnl_status_t st = dnnl_success;
    dnnl_memory_t temps[ONE_MAX_TEMPS] = {NULL};
    void *temp_ptrs[ONE_MAX_TEMPS] = {NULL};
    /* oneDNN sizes its OpenMP teams from the calling thread's ICV: set it
     * on whichever thread calls us, as it was when the plan was built. */
    omp_set_num_threads(plan->threads);
    for (int t = 0; t < plan->n_temps; t++) {
        one_md_ref md = one_ref(&plan->temp_md[t]);
        if (one_md_ndims(md) == 0)
            continue; /* an index no step uses */
        void *p = scratch_alloc(&r, one_md_size(md));
        if (p == NULL) {
            result = exec_fail(s, call, dnnl_out_of_memory, "allocating a temporary");
            goto done;
        }
        temp_ptrs[t] = p;
        if ((st = scratch_memory(s, &r, md, p, &temps[t])) != dnnl_success) {
            result = exec_fail(s, call, st, "creating a temporary's memory");
            goto done;
        }
    }
    for (int i = 0; i < plan->n_steps; i++) {
        const one_step *step = &plan->steps[i];
        if (step->prim == NULL) {
            /* Host steps read what earlier primitives wrote. */
            if ((st = dnnl_stream_wait(s->stream)) != dnnl_success) {
                result = exec_fail(s, call, st, "waiting for the stream");
                goto done;
            }
            if ((result = step->host(s, call, temp_ptrs)) != PLX_OK)
                goto done;
            continue;
        }
        dnnl_exec_arg_t args[ONE_MAX_ARGS];
        dnnl_memory_t user[ONE_MAX_ARGS] = {NULL};
        for (int j = 0; j < step->n_args; j++) {
            const one_arg *a = &step->args[j];
            args[j].arg = a->dnnl_arg;
            if (a->kind == ONE_ARG_TEMP) {
                args[j].memory = temps[a->index];
                continue;
            }
            const plx_tensor_desc *t = a->kind == ONE_ARG_INPUT ? &call->inputs[a->index] : &call->outputs[a->index];
            if ((st = scratch_memory(s, &r, one_ref(&a->user_md), plx_desc_ptr(t), &user[j])) != dnnl_success) {
                result = exec_fail(s, call, st, "wrapping a tensor");
                goto done;
            }
            args[j].memory = user[j];
            if (a->reorder == NULL)
                continue;
            void *p = scratch_alloc(&r, one_md_size(one_ref(&a->prim_md)));
            if (p == NULL) {
                result = exec_fail(s, call, dnnl_out_of_memory, "allocating a reorder buffer");
                goto done;
            }
            if ((st = scratch_memory(s, &r, one_ref(&a->prim_md), p, &args[j].memory)) != dnnl_success) {
                result = exec_fail(s, call, st, "creating a reorder buffer's memory");
                goto done;
            }
            if (a->kind == ONE_ARG_INPUT &&
                (st = run_reorder(s, a->reorder, user[j], args[j].memory)) != dnnl_success) {
                result = exec_fail(s, call, st, "reordering an input");
                goto done;
            }
        }
        if ((st = dnnl_primitive_execute(step->prim, s->stream, step->n_args, args)) != dnnl_success) {
            result = exec_fail(s, call, st, "executing the primitive");
            goto done;
        }
        for (int j = 0; j < step->n_args; j++) {
            const one_arg *a = &step->args[j];
            if (a->kind == ONE_ARG_OUTPUT && a->reorder != NULL &&
                (st = run_reorder(s, a->reorder, args[j].memory, user[j])) != dnnl_success) {
                result = exec_fail(s, call, st, "reordering an output");
                goto done;
            }
        }
    }
    if ((st = dnnl_stream_wait(s->stream)) != dnnl_success)
        result = exec_fail(s, call, st, "waiting for the stream");
done:
    if (result != PLX_OK)
        dnnl_stream_wait(s->stream);
    scratch_release(&r);
    return result;
}

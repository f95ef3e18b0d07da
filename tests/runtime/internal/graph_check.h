/*
 * graph_check.h — header-only harness for tests of graphs and gradient
 * rules: builds a graph from a callback, differentiates it, plans and runs it
 * through the executor, and checks every gradient against central finite
 * differences of the same plan.
 *
 * The probed scalar is L = sum(out * w) with a fixed random w, so every
 * element of the callback's output takes part.
 */
#ifndef PLX_TEST_GRAPH_CHECK_H
#define PLX_TEST_GRAPH_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../runtime/autodiff.h"
#include "../../../runtime/executor.h"
#include "../../test_util.h"

typedef struct gc_input {
    plx_dtype dtype;
    int32_t ndim;
    int64_t dims[PLX_MAX_DIMS];
    float lo, hi;  /* values drawn uniformly (integers: [lo, hi] inclusive) */
    bool diff;     /* check the gradient w.r.t. this input */
} gc_input;

/* Adds nodes reading inputs[] and returns the output value id (-1 on error). */
typedef int32_t (*gc_build_fn)(plx_graph *g, const int32_t *inputs, void *arg);

static inline void gc_fill(plx_tensor *t, const gc_input *spec, uint64_t *rng)
{
    int64_t n = plx_tensor_numel(t);
    void *p = plx_tensor_data(t);
    for (int64_t i = 0; i < n; i++) {
        if (spec->dtype.code == PLX_DTYPE_CODE_FLOAT)
            ((float *)p)[i] = tu_rand_uniform(rng, spec->lo, spec->hi);
        else if (spec->dtype.bits == 64)
            ((int64_t *)p)[i] = tu_rand_int(rng, (int64_t)spec->lo, (int64_t)spec->hi);
        else
            ((int32_t *)p)[i] = (int32_t)tu_rand_int(rng, (int64_t)spec->lo, (int64_t)spec->hi);
    }
}

/* Builds, differentiates and checks. eps: finite-difference step; tol:
 * |fd - analytic| <= tol * max(1, |fd|). Probes up to max_points elements
 * per differentiated input. */
static inline void gc_check(const char *what, int32_t n_in, const gc_input *specs, gc_build_fn build, void *arg,
                            float eps, float tol, int max_points)
{
    plx_context *ctx = tu_open();
    plx_graph *g = NULL;
    assert_int_equal(graph_new(ctx, &g), PLX_OK);
    int32_t ids[16], grads[16], wrt[16], n_wrt = 0;
    plx_tensor *tensors[17];
    uint64_t rng = 12345;
    assert_true(n_in <= 16);
    for (int32_t i = 0; i < n_in; i++) {
        char name[32];
        snprintf(name, sizeof name, "in%d", (int)i);
        if (graph_add_named(g, VALUE_INPUT, name, specs[i].dtype, specs[i].ndim, specs[i].dims, NULL, &ids[i]) !=
            PLX_OK)
            fail_msg("%s: %s", what, plx_last_error(ctx));
        tensors[i] = tu_tensor(ctx, specs[i].dtype, specs[i].ndim, specs[i].dims);
        gc_fill(tensors[i], &specs[i], &rng);
        if (specs[i].diff)
            wrt[n_wrt++] = ids[i];
    }
    g->scope = "test";
    int32_t out = build(g, ids, arg);
    if (out < 0)
        fail_msg("%s: build failed: %s", what, plx_last_error(ctx));
    /* L = sum(out * w) */
    const tensor_meta om = g->values[out].meta;
    int32_t w;
    assert_int_equal(graph_add_named(g, VALUE_INPUT, "probe_w", PLX_F32, om.ndim, om.dims, NULL, &w), PLX_OK);
    plx_tensor *wt = tu_tensor(ctx, PLX_F32, om.ndim, om.dims);
    gc_input wspec = {PLX_F32, 0, {0}, -1.0f, 1.0f, false};
    gc_fill(wt, &wspec, &rng);
    int32_t prod, loss, mul_in[2] = {out, w};
    assert_int_equal(graph_add_op(g, PLX_OP_MUL, NULL, mul_in, 2, &prod, 1), PLX_OK);
    assert_int_equal(graph_add_op(g, PLX_OP_SUM, NULL, &prod, 1, &loss, 1), PLX_OK);
    if (autodiff(g, loss, wrt, n_wrt, grads) != PLX_OK)
        fail_msg("%s: autodiff: %s", what, plx_last_error(ctx));
    int32_t keep[17];
    keep[0] = loss;
    for (int32_t i = 0; i < n_wrt; i++)
        keep[1 + i] = grads[i];
    exec_plan *plan = NULL;
    if (plan_build(g, keep, 1 + n_wrt, &plan) != PLX_OK)
        fail_msg("%s: plan: %s", what, plx_last_error(ctx));
    for (int32_t i = 0; i < n_in; i++)
        assert_int_equal(plan_bind(plan, ids[i], tensors[i]), PLX_OK);
    assert_int_equal(plan_bind(plan, w, wt), PLX_OK);
    if (plan_run(plan) != PLX_OK)
        fail_msg("%s: run: %s", what, plx_last_error(ctx));
    /* Analytic gradients, copied before the finite-difference runs. */
    float *analytic[16] = {0};
    int32_t k = 0;
    for (int32_t i = 0; i < n_in; i++) {
        if (!specs[i].diff)
            continue;
        int64_t n = plx_tensor_numel(tensors[i]);
        analytic[k] = malloc(sizeof(float) * (size_t)(n ? n : 1));
        memcpy(analytic[k], plan_value_data(plan, grads[k]), sizeof(float) * (size_t)n);
        k++;
    }
    k = 0;
    for (int32_t i = 0; i < n_in; i++) {
        if (!specs[i].diff)
            continue;
        float *x = tu_f32(tensors[i]);
        int64_t n = plx_tensor_numel(tensors[i]);
        int64_t step = n <= max_points ? 1 : (n + max_points - 1) / max_points;
        for (int64_t e = 0; e < n; e += step) {
            float saved = x[e];
            x[e] = saved + eps;
            assert_int_equal(plan_run(plan), PLX_OK);
            double lp = *(const float *)plan_value_data(plan, loss);
            x[e] = saved - eps;
            assert_int_equal(plan_run(plan), PLX_OK);
            double lm = *(const float *)plan_value_data(plan, loss);
            x[e] = saved;
            double fd = (lp - lm) / (2.0 * (double)eps), an = analytic[k][e];
            double scale = fabs(fd) > 1.0 ? fabs(fd) : 1.0;
            if (!(fabs(fd - an) <= (double)tol * scale))
                fail_msg("%s: d/d in%d[%lld]: finite difference %.7g, autodiff %.7g", what, (int)i, (long long)e, fd,
                         an);
        }
        free(analytic[k]);
        k++;
    }
    plan_free(plan);
    for (int32_t i = 0; i < n_in; i++)
        plx_tensor_free(tensors[i]);
    plx_tensor_free(wt);
    graph_free(g);
    plx_context_close(ctx);
}

/* Shorthand for a one-op build: runs op_id with attrs on all inputs and
 * returns output `out_index`. */
typedef struct gc_one_op {
    int32_t op_id;
    const void *attrs;
    int32_t n_in;
    int32_t n_out;
    int32_t out_index;
} gc_one_op;

static inline int32_t gc_build_one_op(plx_graph *g, const int32_t *inputs, void *arg)
{
    const gc_one_op *o = arg;
    int32_t outs[8];
    if (graph_add_op(g, o->op_id, o->attrs, inputs, o->n_in, outs, o->n_out) != PLX_OK)
        return -1;
    return outs[o->out_index];
}

#endif

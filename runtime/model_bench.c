/*
 * model_bench.c — plx_model_bench: the model's training step and an
 * inference batch, timed on real data, with the time of each (op, backend)
 * from the executor's per-step profile (plan_profile). The data, the
 * training plan and the per-step setup are train.c's, so a benchmarked step
 * is exactly a step of plx_model_train.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

PLX_API void plx_bench_options_init(plx_bench_options *opts)
{
    if (opts == NULL)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = (uint32_t)sizeof *opts;
    opts->warmup_steps = 3;
    opts->steps = 20;
    opts->inference_batch = 256;
    opts->inference_runs = 5;
}

/* One (op, backend) pair of a profiled plan. */
typedef struct op_total {
    int32_t op_id;
    int32_t backend;
    int32_t nodes;
    double ns;
} op_total;

static int by_time_desc(const void *a, const void *b)
{
    double x = ((const op_total *)a)->ns, y = ((const op_total *)b)->ns;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Sums the profile of p per (op, backend), largest first, into the
 * caller's array `out` (cap elements, stride from out[0].struct_size);
 * *n_found receives the number of pairs. */
static plx_status collect_ops(plx_context *ctx, const exec_plan *p, plx_bench_op_time *out, int32_t cap,
                              int32_t *n_found)
{
    *n_found = 0;
    if (p->step_ns == NULL || p->profiled_runs == 0 || p->n_steps == 0)
        return PLX_OK;
    op_total *totals = calloc((size_t)p->n_steps, sizeof *totals);
    if (totals == NULL)
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plx_model_bench: out of memory");
    int32_t n = 0;
    double all = 0.0;
    for (int32_t s = 0; s < p->n_steps; s++) {
        int32_t op = p->graph->nodes[p->steps[s].node].op_id, be = p->steps[s].backend;
        int32_t k = 0;
        while (k < n && (totals[k].op_id != op || totals[k].backend != be))
            k++;
        if (k == n)
            totals[n++] = (op_total){.op_id = op, .backend = be};
        totals[k].nodes++;
        totals[k].ns += p->step_ns[s];
        all += p->step_ns[s];
    }
    qsort(totals, (size_t)n, sizeof *totals, by_time_desc);
    *n_found = n;
    if (out != NULL && cap > 0) {
        uint32_t stride = out[0].struct_size;
        if (stride < sizeof(uint32_t) || stride > 4096) {
            free(totals);
            return ctx_fail(ctx, PLX_INVALID_ARGUMENT,
                            "plx_model_bench: the op-time array's struct_size %u is invalid (set it on every element)",
                            (unsigned)stride);
        }
        for (int32_t k = 0; k < n && k < cap; k++) {
            plx_bench_op_time t = {.struct_size = stride,
                                   .op = op_name_of(ctx, totals[k].op_id),
                                   .backend = ctx->backends[totals[k].backend].name,
                                   .nodes = totals[k].nodes,
                                   .ms = totals[k].ns / 1e6 / (double)p->profiled_runs,
                                   .share = all > 0 ? totals[k].ns / all : 0.0};
            memcpy((unsigned char *)out + (size_t)k * stride, &t, stride < sizeof t ? stride : sizeof t);
        }
    }
    free(totals);
    return PLX_OK;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Training steps: `warmup` untimed, then `steps` timed (profiled), their
 * times in seconds into times[steps]. */
static plx_status run_train_steps(plx_model *m, loader *ld, int64_t steps_per_epoch, int32_t warmup, int32_t steps,
                                  double *times)
{
    const model_spec *s = &m->spec;
    plx_status st = PLX_OK;
    for (int32_t i = 0; i < warmup + steps && st == PLX_OK; i++) {
        if (i == warmup)
            st = plan_profile(m->train_plan, true);
        const data_batch *batch;
        data_error err;
        if (st == PLX_OK && (st = loader_next(ld, &batch, &err)) != PLX_OK)
            st = ctx_fail(m->ctx, st, "%s", err.message);
        if (st != PLX_OK)
            break;
        model_set_batch(m, batch);
        int64_t epoch = batch->position.epoch;
        model_set_step_attrs(m, schedule_lr(&s->sched, epoch, m->global_step, steps_per_epoch));
        double t0 = now_seconds();
        st = plan_run(m->train_plan);
        double dt = now_seconds() - t0;
        if (st != PLX_OK)
            break;
        m->global_step++;
        if (i >= warmup)
            times[i - warmup] = dt;
    }
    return st;
}

PLX_API plx_status plx_model_bench(plx_model *m, const plx_bench_options *opts_in, plx_bench_result *result)
{
    if (m == NULL)
        return PLX_INVALID_ARGUMENT;
    if (result == NULL || result->struct_size < sizeof(uint32_t) || result->struct_size > 65536)
        return ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "plx_model_bench: result is NULL or its struct_size is invalid");
    plx_bench_options opts;
    plx_bench_options_init(&opts);
    if (opts_in != NULL) {
        if (opts_in->struct_size < sizeof(uint32_t) || opts_in->struct_size > 65536)
            return ctx_fail(m->ctx, PLX_INVALID_ARGUMENT, "plx_model_bench: options struct_size %u is invalid",
                            (unsigned)opts_in->struct_size);
        memcpy(&opts, opts_in, opts_in->struct_size < sizeof opts ? opts_in->struct_size : sizeof opts);
        opts.struct_size = (uint32_t)sizeof opts;
    }
    if (opts.steps < 1 || opts.warmup_steps < 0 || opts.limit_train < 0 || opts.inference_batch < 0 ||
        (opts.inference_batch > 0 && opts.inference_runs < 1))
        return ctx_fail(m->ctx, PLX_INVALID_ARGUMENT,
                        "plx_model_bench: steps %d (>= 1), warmup_steps %d (>= 0), limit_train %lld (>= 0), "
                        "inference_batch %lld (>= 0) and inference_runs %d (>= 1) must all be in range",
                        (int)opts.steps, (int)opts.warmup_steps, (long long)opts.limit_train,
                        (long long)opts.inference_batch, (int)opts.inference_runs);
    /* The caller's arrays (in-fields), read within the size it declared. */
    plx_bench_result res;
    memset(&res, 0, sizeof res);
    memcpy(&res, result, result->struct_size < sizeof res ? result->struct_size : sizeof res);
    res.struct_size = (uint32_t)sizeof res;
    if (result->struct_size < offsetof(plx_bench_result, inference_ops_cap) + sizeof res.inference_ops_cap) {
        res.train_ops = res.inference_ops = NULL;
        res.train_ops_cap = res.inference_ops_cap = 0;
    }

    const model_spec *s = &m->spec;
    plx_status st = model_train_plan(m);
    model_data d = {0};
    if (st == PLX_OK) {
        st = model_load_data(m, opts.data_dir, true, opts.limit_train, 1, &d);
        if (st != PLX_OK) {
            char msg[PLX_ERROR_CAP];
            snprintf(msg, sizeof msg, "%s", plx_last_error(m->ctx));
            st = ctx_fail(m->ctx, st, "plx_model_bench: cannot load the training data of %s: %s", m->origin, msg);
        }
    }
    if (st == PLX_OK && d.train->n < s->batch_size)
        st = ctx_fail(m->ctx, PLX_INVALID_ARGUMENT,
                      "%s: the training set has %lld examples, fewer than one batch (%lld)", m->origin,
                      (long long)d.train->n, (long long)s->batch_size);
    loader *ld = NULL;
    if (st == PLX_OK) {
        data_error err;
        loader_options lo = {.batch_size = s->batch_size,
                             .shuffle = s->shuffle,
                             .drop_last = true,
                             .seed = s->seed,
                             .augment = &s->augment,
                             .prefetch = true};
        data_position start = {0, 0, s->seed};
        st = loader_create(d.train, &lo, &start, &ld, &err);
        if (st != PLX_OK)
            st = ctx_fail(m->ctx, st, "%s", err.message);
    }

    /* Training steps. */
    double total_s = 0.0, *times = NULL;
    if (st == PLX_OK && (times = calloc((size_t)opts.steps, sizeof *times)) == NULL)
        st = ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "plx_model_bench: out of memory");
    if (st == PLX_OK) {
        res.batch_size = s->batch_size;
        res.steps_per_epoch = loader_batches_per_epoch(ld);
        res.warmup_steps = opts.warmup_steps;
        res.steps = opts.steps;
        res.train_nodes = m->train_plan->n_steps;
        st = run_train_steps(m, ld, res.steps_per_epoch, opts.warmup_steps, opts.steps, times);
    }
    loader_free(ld);
    if (st == PLX_OK) {
        for (int32_t i = 0; i < opts.steps; i++)
            total_s += times[i];
        qsort(times, (size_t)opts.steps, sizeof *times, by_value);
        int32_t h = opts.steps / 2;
        res.ms_per_step = total_s / opts.steps * 1e3;
        res.ms_per_step_min = times[0] * 1e3;
        res.ms_per_step_median = (opts.steps % 2 ? times[h] : 0.5 * (times[h - 1] + times[h])) * 1e3;
        res.examples_per_second = total_s > 0 ? (double)s->batch_size * opts.steps / total_s : INFINITY;
        st = collect_ops(m->ctx, m->train_plan, res.train_ops, res.train_ops_cap, &res.n_train_ops);
    }
    free(times);
    if (m->train_plan != NULL)
        plan_profile(m->train_plan, false);

    /* Inference: one untimed batch, then inference_runs timed ones. */
    res.inference_ms_per_batch = NAN;
    res.inference_images_per_second = NAN;
    infer_plan *ip = NULL;
    if (st == PLX_OK && opts.inference_batch > 0) {
        int64_t n = opts.inference_batch;
        st = model_infer_plan(m, n, &ip);
        int64_t *idx = NULL, *labels = NULL;
        if (st == PLX_OK) {
            idx = malloc(sizeof(int64_t) * (size_t)n);
            labels = malloc(sizeof(int64_t) * (size_t)n);
            if (idx == NULL || labels == NULL)
                st = ctx_fail(m->ctx, PLX_OUT_OF_MEMORY, "plx_model_bench: out of memory");
        }
        if (st == PLX_OK) {
            for (int64_t i = 0; i < n; i++)
                idx[i] = i % d.train->n;
            dataset_gather(d.train, idx, n, plx_tensor_data(ip->x_tensor), labels);
            st = plan_run(ip->plan);
        }
        free(idx);
        free(labels);
        if (st == PLX_OK)
            st = plan_profile(ip->plan, true);
        double infer_s = 0.0;
        for (int32_t r = 0; r < opts.inference_runs && st == PLX_OK; r++) {
            double t0 = now_seconds();
            st = plan_run(ip->plan);
            infer_s += now_seconds() - t0;
        }
        if (st == PLX_OK) {
            res.inference_batch = n;
            res.inference_runs = opts.inference_runs;
            res.inference_nodes = ip->plan->n_steps;
            res.inference_ms_per_batch = infer_s / opts.inference_runs * 1e3;
            res.inference_images_per_second = infer_s > 0 ? (double)n * opts.inference_runs / infer_s : INFINITY;
            st = collect_ops(m->ctx, ip->plan, res.inference_ops, res.inference_ops_cap, &res.n_inference_ops);
        }
        if (ip != NULL)
            plan_profile(ip->plan, false);
    }
    model_data_free(&d);
    if (st != PLX_OK)
        return st;
    uint32_t caller = result->struct_size;
    memcpy(result, &res, caller < sizeof res ? caller : sizeof res);
    result->struct_size = caller;
    return PLX_OK;
}

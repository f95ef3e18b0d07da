/*
 * dispatch.c — eager op execution through the router.
 *
 * plx_op_run validates the call against the op catalog (counts, dtypes,
 * shapes, attribute values), infers output shapes, picks a backend and
 * device, makes strided inputs compact, moves data to and from devices that
 * have their own memory, and runs the kernel. Routing decisions are cached
 * per (op, input dtypes and shapes, attrs), so a repeated call costs a hash
 * lookup.
 *
 * Routing: candidates are the backends that implement the op and whose
 * supports() accepts the call on some device. With a user ranking, the
 * highest-ranked candidate wins (strict mode: the highest-ranked backend that
 * implements the op must accept it). Without one, the lowest cost wins: the
 * measured time (cost_cache.c), else the backend's estimate (or one from the
 * op's work and bytes), plus the copies its inputs and outputs would need.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define KEY_CAP 4096
#define DEFAULT_NS_PER_WORK 0.05    /* 20 GFLOP/s when a backend gives no estimate */
#define DEFAULT_MEMORY_BYTES_PER_NS 10.0 /* and 10 GB/s of memory traffic */
#define DEFAULT_CALL_NS 200.0
#define DEFAULT_COPY_BYTES_PER_NS 10.0
#define COPY_LATENCY_NS 5000.0

struct route_entry {
    route_entry *next;
    uint64_t hash;
    int32_t backend;
    int32_t device;
    size_t key_len;
    unsigned char key[];
};

void routes_free(plx_context *ctx)
{
    for (size_t i = 0; i < ctx->route_cap; i++) {
        route_entry *e = ctx->routes[i];
        while (e != NULL) {
            route_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(ctx->routes);
    ctx->routes = NULL;
    ctx->route_cap = ctx->route_count = 0;
}

/* Serializes what a routing decision depends on; 0 if it does not fit. */
static size_t route_key(unsigned char *key, int32_t op_id, const void *attrs, size_t attrs_size,
                        const plx_tensor_desc *in, int32_t n_in, const plx_tensor_desc *out, int32_t n_out)
{
    size_t used = 0;
#define PUT(ptr, len)                                                       \
    do {                                                                    \
        if (used + (len) > KEY_CAP)                                         \
            return 0;                                                       \
        memcpy(key + used, (ptr), (len));                                   \
        used += (len);                                                      \
    } while (0)
    PUT(&op_id, sizeof op_id);
    PUT(&n_in, sizeof n_in);
    PUT(&n_out, sizeof n_out);
    for (int32_t i = 0; i < n_in + n_out; i++) {
        const plx_tensor_desc *d = i < n_in ? &in[i] : &out[i - n_in];
        PUT(&d->dtype, sizeof d->dtype);
        PUT(&d->ndim, sizeof d->ndim);
        PUT(d->shape, sizeof(int64_t) * (size_t)d->ndim);
    }
    if (attrs != NULL)
        PUT(attrs, attrs_size);
#undef PUT
    return used;
}

static bool route_cache_find(plx_context *ctx, const unsigned char *key, size_t len, uint64_t h, int32_t *backend,
                             int32_t *device)
{
    bool found = false;
    pthread_mutex_lock(&ctx->route_lock);
    if (ctx->route_cap > 0)
        for (route_entry *e = ctx->routes[h & (ctx->route_cap - 1)]; e != NULL; e = e->next)
            if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) {
                *backend = e->backend;
                *device = e->device;
                found = true;
                break;
            }
    pthread_mutex_unlock(&ctx->route_lock);
    return found;
}

static void route_cache_put(plx_context *ctx, const unsigned char *key, size_t len, uint64_t h, int32_t backend,
                            int32_t device)
{
    route_entry *e = malloc(sizeof *e + len);
    if (e == NULL)
        return; /* the cache is an optimization */
    e->hash = h;
    e->backend = backend;
    e->device = device;
    e->key_len = len;
    memcpy(e->key, key, len);
    pthread_mutex_lock(&ctx->route_lock);
    if (ctx->route_count >= ctx->route_cap) {
        size_t cap = ctx->route_cap ? ctx->route_cap * 2 : 256;
        route_entry **table = calloc(cap, sizeof *table);
        if (table == NULL) {
            pthread_mutex_unlock(&ctx->route_lock);
            free(e);
            return;
        }
        for (size_t i = 0; i < ctx->route_cap; i++)
            for (route_entry *it = ctx->routes[i]; it != NULL;) {
                route_entry *next = it->next;
                it->next = table[it->hash & (cap - 1)];
                table[it->hash & (cap - 1)] = it;
                it = next;
            }
        free(ctx->routes);
        ctx->routes = table;
        ctx->route_cap = cap;
    }
    e->next = ctx->routes[h & (ctx->route_cap - 1)];
    ctx->routes[h & (ctx->route_cap - 1)] = e;
    ctx->route_count++;
    pthread_mutex_unlock(&ctx->route_lock);
}

/* "f32[2,3], i64[2]" */
static void describe_descs(char *buf, size_t cap, const plx_tensor_desc *d, int32_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < n && used < cap; i++) {
        tensor_meta m;
        char b[160];
        meta_from_desc(&m, &d[i]);
        int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", meta_format(&m, b, sizeof b));
        if (w < 0)
            return;
        used += (size_t)w;
    }
}

static size_t desc_bytes(const plx_tensor_desc *d)
{
    return (size_t)plx_desc_numel(d) * plx_dtype_size(d->dtype);
}

typedef struct candidate_cost {
    bool ok;
    double kernel_ns, copy_ns;
    char reason[256];
} candidate_cost;

/* Attribute fields appended in a later ABI minor change what an op
 * computes, so a plugin built before them (which cannot see them) must not
 * get calls that use them. NULL when the backend may take the call. */
static const char *newer_attrs_reason(const plx_context *ctx, const backend_record *b, const plx_op_call *call,
                                      char *buf, size_t cap)
{
    unsigned minor = ctx->plugins[b->plugin_index].abi_minor;
    if (call->op_id == PLX_OP_CONV2D && call->attrs != NULL && minor < 2 &&
        ((const plx_conv2d_attrs *)call->attrs)->activation != PLX_ACTIVATION_NONE) {
        snprintf(buf, cap, "its plugin is built for ABI 1.%u, before conv2d's fused activation (ABI 1.2)", minor);
        return buf;
    }
    return NULL;
}

static void cost_on(const plx_context *ctx, const backend_record *b, int32_t dev, const op_def *def,
                    const plx_op_call *call, const tensor_meta *in_meta, const tensor_meta *out_meta,
                    candidate_cost *c)
{
    c->ok = true;
    c->reason[0] = '\0';
    if (newer_attrs_reason(ctx, b, call, c->reason, sizeof c->reason) != NULL) {
        c->ok = false;
        return;
    }
    if (b->api.supports != NULL) {
        char reason[256] = "";
        int32_t yes = b->api.supports(b->state, dev, call, reason, sizeof reason);
        if (!yes) {
            c->ok = false;
            reason[sizeof reason - 1] = '\0';
            snprintf(c->reason, sizeof c->reason, "%s", reason[0] ? reason : "declined by its support query");
            return;
        }
    }
    double est = b->api.estimate_ns != NULL ? b->api.estimate_ns(b->state, dev, call) : -1.0;
    if (!(est >= 0.0) || !isfinite(est)) {
        double work = 0.0;
        if (def != NULL && def->work != NULL) {
            op_infer_args a = {.def = def, .attrs = call->attrs, .n_inputs = call->n_inputs, .inputs = in_meta,
                               .n_outputs = call->n_outputs, .outputs = (tensor_meta *)out_meta};
            work = def->work(&a);
        } else
            for (int32_t i = 0; i < call->n_outputs; i++)
                work += (double)plx_desc_numel(&call->outputs[i]);
        /* Whichever bounds it: arithmetic or moving its tensors. */
        double bytes = 0.0;
        for (int32_t i = 0; i < call->n_inputs; i++)
            bytes += (double)desc_bytes(&call->inputs[i]);
        for (int32_t i = 0; i < call->n_outputs; i++)
            bytes += (double)desc_bytes(&call->outputs[i]);
        est = DEFAULT_CALL_NS + fmax(work * DEFAULT_NS_PER_WORK, bytes / DEFAULT_MEMORY_BYTES_PER_NS);
    }
    c->kernel_ns = est;
    c->copy_ns = 0.0;
    const plx_device_info *di = &b->devices[dev];
    if ((di->caps & PLX_DEVICE_CAP_HOST_MEMORY) == 0) {
        double bw = di->copy_bytes_per_ns > 0 ? di->copy_bytes_per_ns : DEFAULT_COPY_BYTES_PER_NS;
        for (int32_t i = 0; i < call->n_inputs; i++)
            c->copy_ns += COPY_LATENCY_NS + (double)desc_bytes(&call->inputs[i]) / bw;
        for (int32_t i = 0; i < call->n_outputs; i++)
            c->copy_ns += COPY_LATENCY_NS + (double)desc_bytes(&call->outputs[i]) / bw;
    }
}

typedef struct route_candidate {
    int32_t backend, device, rank;
    bool ok, measured;
    double kernel_ns, copy_ns;
    char reason[256];
} route_candidate;

#define ROUTE_STACK_CANDIDATES 16

/* Picks backend and device. Writes every candidate and the winner to
 * `explain` and a one-line summary of the candidates' costs to `summary`
 * when they are set. */
static plx_status route(plx_context *ctx, const op_def *def, const plx_op_call *call, const tensor_meta *in_meta,
                       const tensor_meta *out_meta, int32_t *out_backend, int32_t *out_device, char *explain,
                       size_t cap, char *summary, size_t scap)
{
    int64_t idx = op_index(call->op_id);
    size_t used = 0, sused = 0;
#define EXPLAIN(...)                                                        \
    do {                                                                    \
        if (explain != NULL && used < cap) {                                \
            int w_ = snprintf(explain + used, cap - used, __VA_ARGS__);     \
            if (w_ > 0)                                                     \
                used += (size_t)w_;                                         \
        }                                                                   \
    } while (0)
#define SUMMARY(...)                                                        \
    do {                                                                    \
        if (summary != NULL && sused < scap) {                              \
            int w_ = snprintf(summary + sused, scap - sused, __VA_ARGS__);  \
            if (w_ > 0)                                                     \
                sused += (size_t)w_;                                        \
        }                                                                   \
    } while (0)
    if (summary != NULL && scap > 0)
        summary[0] = '\0';
    char shapes[512];
    describe_descs(shapes, sizeof shapes, call->inputs, call->n_inputs);
    EXPLAIN("%s(%s)%s\n", call->op_name, shapes, ctx->n_ranking ? " [ranked]" : "");

    /* 1. Every device of every backend that implements the op: support and
     * estimated cost. */
    size_t n_devices = 0;
    for (size_t bi = 0; bi < ctx->n_backends; bi++)
        n_devices += (size_t)ctx->backends[bi].n_devices;
    route_candidate stack[ROUTE_STACK_CANDIDATES];
    route_candidate *cands = n_devices <= ROUTE_STACK_CANDIDATES ? stack : malloc(n_devices * sizeof *cands);
    if (cands == NULL)
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "%s: out of memory while routing", call->op_name);
    size_t n = 0, n_ok = 0;
    for (size_t bi = 0; bi < ctx->n_backends; bi++) {
        const backend_record *b = &ctx->backends[bi];
        if (idx < 0 || !b->implements[idx])
            continue;
        for (int32_t d = 0; d < b->n_devices; d++) {
            route_candidate *c = &cands[n++];
            candidate_cost cc;
            cost_on(ctx, b, d, def, call, in_meta, out_meta, &cc);
            *c = (route_candidate){.backend = (int32_t)bi, .device = d, .ok = cc.ok, .kernel_ns = cc.kernel_ns,
                                   .copy_ns = cc.copy_ns, .rank = b->rank >= 0 ? b->rank : INT32_MAX - 1};
            snprintf(c->reason, sizeof c->reason, "%s", cc.reason);
            n_ok += cc.ok;
        }
    }

    /* 2. Measured times replace estimates; with calibration on, candidates
     * not yet timed are timed now (only when there is a choice to make). */
    char sig[2048];
    bool have_sig = n_ok > 0 && (ctx->cost_count > 0 || (ctx->calibrate && n_ok > 1)) &&
                    cost_signature(call, sig, sizeof sig) > 0;
    size_t n_unmeasured = 0;
    for (size_t i = 0; i < n && have_sig; i++) {
        route_candidate *c = &cands[i];
        if (!c->ok)
            continue;
        double ns;
        if (!cost_lookup(ctx, &ctx->backends[c->backend], c->device, sig, &ns)) {
            n_unmeasured++;
            continue;
        }
        if (ns < 0) {
            snprintf(c->reason, sizeof c->reason, "failed when timed by calibration");
            c->ok = false;
        } else {
            c->kernel_ns = ns;
            c->measured = true;
        }
    }
    if (have_sig && ctx->calibrate && n_ok > 1 && n_unmeasured > 0) {
        cost_candidate *todo = calloc(n_unmeasured, sizeof *todo);
        size_t k = 0;
        for (size_t i = 0; i < n && todo != NULL; i++)
            if (cands[i].ok && !cands[i].measured)
                todo[k++] = (cost_candidate){.backend = &ctx->backends[cands[i].backend], .device = cands[i].device};
        if (todo != NULL)
            cost_measure(ctx, todo, (int32_t)k, call, sig);
        k = 0;
        for (size_t i = 0; i < n && todo != NULL; i++) {
            route_candidate *c = &cands[i];
            if (!c->ok || c->measured)
                continue;
            const cost_candidate *t = &todo[k++];
            if (t->ns == -1.0) {
                snprintf(c->reason, sizeof c->reason, "calibration: %.240s", t->why);
                c->ok = false;
            } else if (t->ns >= 0) {
                c->kernel_ns = t->ns;
                c->measured = true;
            }
        }
        free(todo);
    }

    /* 3. The choice: user ranking first (if any), then the lowest cost. */
    int32_t best = -1, best_rank = INT32_MAX, top_rank_seen = INT32_MAX;
    double best_cost = INFINITY;
    const char *top_declined = NULL;
    char top_reason[256] = "";
    size_t ci = 0;
    for (size_t bi = 0; bi < ctx->n_backends; bi++) {
        const backend_record *b = &ctx->backends[bi];
        if (idx < 0 || !b->implements[idx]) {
            EXPLAIN("  %-12s does not implement %s\n", b->name, call->op_name);
            continue;
        }
        int32_t rank = b->rank >= 0 ? b->rank : INT32_MAX - 1;
        bool any = false;
        for (int32_t d = 0; d < b->n_devices; d++, ci++) {
            const route_candidate *c = &cands[ci];
            if (!c->ok) {
                EXPLAIN("  %-12s %-8s declines: %s\n", b->name, b->devices[d].name, c->reason);
                if (!any && d == b->n_devices - 1 && rank < top_rank_seen) {
                    top_rank_seen = rank;
                    top_declined = b->name;
                    snprintf(top_reason, sizeof top_reason, "%s", c->reason);
                }
                continue;
            }
            any = true;
            double total = c->kernel_ns + c->copy_ns;
            EXPLAIN("  %-12s %-8s cost %.1f us (%s kernel %.1f + copies %.1f)\n", b->name, b->devices[d].name,
                    total / 1000.0, c->measured ? "measured" : "estimated", c->kernel_ns / 1000.0,
                    c->copy_ns / 1000.0);
            bool better = ctx->n_ranking ? (rank < best_rank || (rank == best_rank && total < best_cost))
                                         : total < best_cost;
            if (better) {
                best = (int32_t)ci;
                best_cost = total;
                best_rank = rank;
            }
        }
        if (any && rank < top_rank_seen)
            top_rank_seen = rank;
    }
    for (size_t i = 0; i < n; i++) {
        const route_candidate *c = &cands[i];
        const backend_record *b = &ctx->backends[c->backend];
        const char *dev = b->n_devices > 1 ? b->devices[c->device].name : NULL;
        if (c->ok)
            SUMMARY("%s%s%s%s%s %.3f ms %s", sused ? ", " : "", (int32_t)i == best ? "*" : "", b->name,
                    dev ? ":" : "", dev ? dev : "", (c->kernel_ns + c->copy_ns) / 1e6,
                    c->measured ? "measured" : "est.");
        else
            SUMMARY("%s%s%s%s declines", sused ? ", " : "", b->name, dev ? ":" : "", dev ? dev : "");
    }
    bool measured_win = best >= 0 && cands[best].measured;
    int32_t best_b = best >= 0 ? cands[best].backend : -1, best_d = best >= 0 ? cands[best].device : -1;
    if (cands != stack)
        free(cands);
    if (best_b < 0) {
        EXPLAIN("  -> no backend can run it\n");
        if (explain == NULL && summary == NULL) {
            if (top_declined != NULL)
                return ctx_fail(ctx, PLX_UNSUPPORTED, "%s(%s): no backend can run it (%s: %s)", call->op_name,
                                shapes, top_declined, top_reason);
            return ctx_fail(ctx, PLX_UNSUPPORTED, "%s(%s): no loaded backend implements it", call->op_name,
                            shapes);
        }
        return PLX_UNSUPPORTED;
    }
    const backend_record *w = &ctx->backends[best_b];
    if (ctx->n_ranking && top_declined != NULL && top_rank_seen < best_rank) {
        if (ctx->strict) {
            EXPLAIN("  -> strict mode: %s (ranked first) declines\n", top_declined);
            if (explain == NULL && summary == NULL)
                return ctx_fail(ctx, PLX_UNSUPPORTED, "%s(%s): strict mode: %s declines it (%s); would fall back to %s",
                                call->op_name, shapes, top_declined, top_reason, w->name);
            return PLX_UNSUPPORTED;
        }
        if (explain == NULL)
            ctx_log(ctx, PLX_LOG_INFO, "%s(%s): falls back from %s (%s) to %s", call->op_name, shapes, top_declined,
                    top_reason, w->name);
    }
    EXPLAIN("  -> %s %s (%s)\n", w->name, w->devices[best_d].name,
            ctx->n_ranking ? "highest-ranked backend that takes it"
            : measured_win ? "lowest cost, measured"
                           : "lowest estimated cost");
#undef EXPLAIN
#undef SUMMARY
    *out_backend = best_b;
    *out_device = best_d;
    return PLX_OK;
}

plx_status router_route(plx_context *ctx, const op_def *def, const plx_op_call *call, const tensor_meta *in_meta,
                        const tensor_meta *out_meta, int32_t *out_backend, int32_t *out_device, char *explain,
                        size_t cap)
{
    return route(ctx, def, call, in_meta, out_meta, out_backend, out_device, explain, cap, NULL, 0);
}

plx_status router_cost_of(plx_context *ctx, const op_def *def, const plx_op_call *call, const tensor_meta *in_meta,
                          const tensor_meta *out_meta, int32_t backend, int32_t device, double *ns)
{
    const backend_record *b = &ctx->backends[backend];
    int64_t idx = op_index(call->op_id);
    if (idx < 0 || !b->implements[idx] || device < 0 || device >= b->n_devices)
        return PLX_UNSUPPORTED;
    candidate_cost cc;
    cost_on(ctx, b, device, def, call, in_meta, out_meta, &cc);
    if (!cc.ok)
        return PLX_UNSUPPORTED;
    char sig[2048];
    double measured;
    if (cost_signature(call, sig, sizeof sig) > 0) {
        if (cost_lookup(ctx, b, device, sig, &measured)) {
            if (measured < 0)
                return PLX_UNSUPPORTED;
            cc.kernel_ns = measured;
        } else if (ctx->calibrate) {
            cost_candidate one = {.backend = b, .device = device};
            cost_measure(ctx, &one, 1, call, sig);
            if (one.ns == -1.0)
                return PLX_UNSUPPORTED;
            if (one.ns >= 0)
                cc.kernel_ns = one.ns;
        }
    }
    *ns = cc.kernel_ns + cc.copy_ns;
    return PLX_OK;
}

plx_status router_summarize(plx_context *ctx, const op_def *def, const plx_op_call *call, const tensor_meta *in_meta,
                            const tensor_meta *out_meta, char *summary, size_t cap)
{
    int32_t b, d;
    return route(ctx, def, call, in_meta, out_meta, &b, &d, NULL, 0, summary, cap);
}

/* Everything a call needs between validation and the kernel. */
typedef struct prepared_call {
    const op_def *def;
    int32_t op_id;
    const char *op_name;
    unsigned char attrs[PLX_OP_ATTRS_CAP];
    const void *attrs_ptr;
    size_t attrs_size;
    int32_t n_in, n_out;
    plx_tensor_desc in_stack[16], out_stack[8];
    tensor_meta in_meta_stack[16], out_meta_stack[8];
    plx_tensor_desc *in;
    plx_tensor_desc *out;
    tensor_meta *in_meta;
    tensor_meta *out_meta;
    void *heap; /* for calls with many inputs */
} prepared_call;

static void prepared_free(prepared_call *p)
{
    free(p->heap);
}

static plx_status prepare(plx_context *ctx, int32_t op_id, const void *attrs, plx_tensor *const *inputs,
                          size_t n_inputs, plx_tensor **outputs, size_t n_outputs, prepared_call *p)
{
    memset(p, 0, offsetof(prepared_call, in_stack));
    p->heap = NULL;
    p->op_id = op_id;
    p->op_name = op_name_of(ctx, op_id);
    if (p->op_name == NULL)
        return ctx_fail(ctx, PLX_NOT_FOUND, "unknown op id %d", (int)op_id);
    if (n_inputs > 4096 || n_outputs > 8)
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: too many tensors (%zu inputs, %zu outputs)", p->op_name,
                        n_inputs, n_outputs);
    if ((n_inputs > 0 && inputs == NULL) || (n_outputs > 0 && outputs == NULL))
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: inputs or outputs array is NULL", p->op_name);
    p->def = op_catalog_get(op_id);
    if (op_id < PLX_OP_CORE_COUNT_ && p->def == NULL)
        return ctx_fail(ctx, PLX_UNSUPPORTED, "%s: the op catalog has no entry for it in this build", p->op_name);
    p->n_in = (int32_t)n_inputs;
    p->n_out = (int32_t)n_outputs;
    const op_def *def = p->def;
    char msg[PLX_ERROR_CAP];
    if (def != NULL) {
        plx_status st = op_check_arity(def, p->op_name, p->n_in, p->n_out, msg, sizeof msg);
        if (st == PLX_OK)
            st = op_normalize_attrs(def, p->op_name, attrs, p->attrs, &p->attrs_size, msg, sizeof msg);
        if (st != PLX_OK)
            return ctx_fail(ctx, st, "%s", msg);
        p->attrs_ptr = p->attrs_size ? p->attrs : NULL;
    } else if (attrs != NULL) {
        /* Custom op: attrs are the plugin's business; pass them through. */
        uint32_t given;
        memcpy(&given, attrs, sizeof given);
        if (given < sizeof(uint32_t) || given > sizeof p->attrs)
            return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: attrs struct_size %u is invalid", p->op_name,
                            (unsigned)given);
        memcpy(p->attrs, attrs, given);
        p->attrs_ptr = p->attrs;
        p->attrs_size = given;
    }
    if (n_inputs <= 16) {
        p->in = p->in_stack;
        p->in_meta = p->in_meta_stack;
    } else {
        p->heap = malloc(n_inputs * (sizeof *p->in + sizeof *p->in_meta));
        if (p->heap == NULL)
            return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "%s: out of memory", p->op_name);
        p->in = p->heap;
        p->in_meta = (tensor_meta *)(p->in + n_inputs);
    }
    p->out = p->out_stack;
    p->out_meta = p->out_meta_stack;
    for (size_t i = 0; i < n_inputs; i++) {
        if (inputs[i] == NULL)
            return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: input %zu is NULL", p->op_name, i);
        if (inputs[i]->ctx != ctx)
            return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: input %zu belongs to another context", p->op_name, i);
        p->in[i] = inputs[i]->desc;
        meta_from_desc(&p->in_meta[i], &p->in[i]);
    }
    if (def != NULL) {
        plx_status st = op_infer_outputs(def, p->op_name, p->attrs_ptr, p->in_meta, p->n_in, p->out_meta, p->n_out,
                                         msg, sizeof msg);
        if (st != PLX_OK)
            return ctx_fail(ctx, st, "%s", msg);
        for (int32_t i = 0; i < p->n_in; i++)
            if ((def->mutated_inputs >> (i < 31 ? i : 31)) & 1u) {
                if (!desc_is_compact(&p->in[i]))
                    return ctx_fail(ctx, PLX_INVALID_ARGUMENT,
                                    "%s: input %d is updated in place and must be compact, not strided",
                                    p->op_name, (int)i);
            }
    } else {
        for (int32_t i = 0; i < p->n_out; i++) {
            if (outputs[i] == NULL)
                return ctx_fail(ctx, PLX_INVALID_ARGUMENT,
                                "%s: ops without a catalog entry need caller-made outputs (output %d is NULL)",
                                p->op_name, (int)i);
            meta_from_desc(&p->out_meta[i], &outputs[i]->desc);
        }
    }
    /* Caller-given outputs must match what inference says. */
    for (int32_t i = 0; i < p->n_out; i++) {
        if (outputs[i] == NULL)
            continue;
        tensor_meta got;
        meta_from_desc(&got, &outputs[i]->desc);
        char a[160], b[160];
        if (outputs[i]->ctx != ctx)
            return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: output %d belongs to another context", p->op_name,
                            (int)i);
        if (!plx_dtype_equal(got.dtype, p->out_meta[i].dtype) || !meta_same_shape(&got, &p->out_meta[i]))
            return ctx_fail(ctx, PLX_SHAPE_MISMATCH, "%s: output %d is %s but the result is %s", p->op_name, (int)i,
                            meta_format(&got, a, sizeof a), meta_format(&p->out_meta[i], b, sizeof b));
        if (!desc_is_compact(&outputs[i]->desc))
            return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "%s: output %d must be compact, not strided", p->op_name,
                            (int)i);
    }
    for (int32_t i = 0; i < p->n_out; i++) {
        p->out[i] = (plx_tensor_desc){.data = NULL, .device = {PLX_DL_CPU, 0}, .ndim = p->out_meta[i].ndim,
                                      .dtype = p->out_meta[i].dtype, .shape = p->out_meta[i].dims};
    }
    return PLX_OK;
}

static plx_status choose(plx_context *ctx, prepared_call *p, const plx_op_call *call, int32_t *backend,
                         int32_t *device)
{
    unsigned char key[KEY_CAP];
    size_t len = route_key(key, p->op_id, p->attrs_ptr, p->attrs_size, p->in, p->n_in, p->out, p->n_out);
    uint64_t h = len ? fnv1a(PLX_FNV1A_INIT, key, len) : 0;
    if (len && route_cache_find(ctx, key, len, h, backend, device))
        return PLX_OK;
    /* Support and cost queries see no data, as plexus_plugin.h promises. */
    plx_tensor_desc *shapes_only = malloc(sizeof *shapes_only * (size_t)(p->n_in + p->n_out + 1));
    if (shapes_only == NULL)
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "%s: out of memory", p->op_name);
    for (int32_t i = 0; i < p->n_in + p->n_out; i++) {
        shapes_only[i] = i < p->n_in ? p->in[i] : p->out[i - p->n_in];
        shapes_only[i].data = NULL;
    }
    plx_op_call query = *call;
    query.inputs = shapes_only;
    query.outputs = shapes_only + p->n_in;
    plx_status st = router_route(ctx, p->def, &query, p->in_meta, p->out_meta, backend, device, NULL, 0);
    free(shapes_only);
    if (st == PLX_OK && len)
        route_cache_put(ctx, key, len, h, *backend, *device);
    return st;
}

static plx_status make_compact(plx_context *ctx, plx_tensor *src, plx_tensor **out)
{
    plx_tensor *outs[1] = {NULL};
    plx_status st = plx_op_run_id(ctx, PLX_OP_COPY, NULL, &src, 1, outs, 1);
    if (st == PLX_OK)
        *out = outs[0];
    return st;
}

static plx_status create_uninit(plx_context *ctx, const tensor_meta *m, plx_tensor **out)
{
    return plx_tensor_create(ctx, m->dtype, m->ndim, m->dims, out);
}

/* Runs on a device with its own memory: copy in, run, copy out. */
static plx_status run_on_device(plx_context *ctx, backend_record *b, int32_t dev, plx_op_call *call,
                                plx_tensor_desc *host_in, plx_tensor_desc *host_out, const op_def *def)
{
    int32_t n_in = call->n_inputs, n_out = call->n_outputs;
    plx_tensor_desc *dev_in = calloc((size_t)(n_in + n_out), sizeof *dev_in);
    void **bufs = calloc((size_t)(n_in + n_out), sizeof *bufs);
    plx_status st = PLX_OK;
    if (dev_in == NULL || bufs == NULL) {
        st = ctx_fail(ctx, PLX_OUT_OF_MEMORY, "%s: out of memory", call->op_name);
        goto done;
    }
    plx_tensor_desc *dev_out = dev_in + n_in;
    for (int32_t i = 0; i < n_in + n_out && st == PLX_OK; i++) {
        const plx_tensor_desc *h = i < n_in ? &host_in[i] : &host_out[i - n_in];
        plx_tensor_desc *d = i < n_in ? &dev_in[i] : &dev_out[i - n_in];
        *d = *h;
        d->byte_offset = 0;
        d->strides = NULL;
        d->device = b->devices[dev].dl_device;
        size_t bytes = desc_bytes(h);
        st = b->api.buffer_alloc(b->state, dev, bytes ? bytes : 1, &bufs[i]);
        d->data = bufs[i];
        if (st == PLX_OK && i < n_in && bytes)
            st = b->api.copy(b->state, dev, h, d);
    }
    if (st == PLX_OK) {
        call->inputs = dev_in;
        call->outputs = dev_out;
        st = b->api.run(b->state, dev, call);
    }
    if (st == PLX_OK && b->api.synchronize != NULL)
        st = b->api.synchronize(b->state, dev);
    for (int32_t i = 0; i < n_out && st == PLX_OK; i++)
        if (desc_bytes(&host_out[i]))
            st = b->api.copy(b->state, dev, &dev_out[i], &host_out[i]);
    for (int32_t i = 0; i < n_in && st == PLX_OK && def != NULL; i++)
        if (((def->mutated_inputs >> (i < 31 ? i : 31)) & 1u) && desc_bytes(&host_in[i]))
            st = b->api.copy(b->state, dev, &dev_in[i], &host_in[i]);
done:
    if (bufs != NULL)
        for (int32_t i = 0; i < n_in + n_out; i++)
            if (bufs[i] != NULL)
                b->api.buffer_free(b->state, dev, bufs[i]);
    free(bufs);
    free(dev_in);
    return st;
}

PLX_API plx_status plx_op_run_id(plx_context *ctx, int32_t op_id, const void *attrs, plx_tensor *const *inputs,
                                 size_t n_inputs, plx_tensor **outputs, size_t n_outputs)
{
    if (ctx == NULL)
        return PLX_INVALID_ARGUMENT;
    prepared_call p;
    plx_status st = prepare(ctx, op_id, attrs, inputs, n_inputs, outputs, n_outputs, &p);
    if (st != PLX_OK) {
        prepared_free(&p);
        return st;
    }
    plx_op_call call = {.struct_size = (uint32_t)sizeof call, .op_id = op_id, .op_name = p.op_name,
                        .attrs = p.attrs_ptr, .n_inputs = p.n_in, .inputs = p.in, .n_outputs = p.n_out,
                        .outputs = p.out};
    int32_t bi = -1, dev = -1;
    st = choose(ctx, &p, &call, &bi, &dev);
    if (st != PLX_OK) {
        prepared_free(&p);
        return st;
    }
    backend_record *b = &ctx->backends[bi];

    /* Strided inputs become compact temporaries (core.copy takes any). */
    plx_tensor *temps[16] = {0};
    int32_t n_temps = 0;
    for (int32_t i = 0; i < p.n_in && st == PLX_OK; i++) {
        if (desc_is_compact(&p.in[i])) {
            p.in[i].strides = NULL;
            continue;
        }
        if (op_id == PLX_OP_COPY)
            continue; /* the one kernel that reads any strides */
        plx_tensor *tmp = NULL;
        if (n_temps == 16) {
            st = ctx_fail(ctx, PLX_UNSUPPORTED, "%s: more than 16 strided inputs; make them compact first",
                          p.op_name);
            break;
        }
        st = make_compact(ctx, inputs[i], &tmp);
        if (st == PLX_OK) {
            temps[n_temps++] = tmp;
            p.in[i] = tmp->desc;
        }
    }
    plx_tensor *made[8] = {0};
    for (int32_t i = 0; i < p.n_out && st == PLX_OK; i++) {
        if (outputs[i] != NULL) {
            p.out[i] = outputs[i]->desc;
            p.out[i].strides = NULL;
            continue;
        }
        st = create_uninit(ctx, &p.out_meta[i], &made[i]);
        if (st == PLX_OK)
            p.out[i] = made[i]->desc;
    }
    if (st == PLX_OK) {
        thread_state *ts = thread_state_get(ctx);
        if (ts != NULL)
            ts->error[0] = '\0';
        if (b->devices[dev].caps & PLX_DEVICE_CAP_HOST_MEMORY) {
            st = b->api.run(b->state, dev, &call);
            if (st == PLX_OK && b->api.synchronize != NULL && (b->devices[dev].caps & PLX_DEVICE_CAP_ASYNC))
                st = b->api.synchronize(b->state, dev);
        } else
            st = run_on_device(ctx, b, dev, &call, p.in, p.out, p.def);
        if (st != PLX_OK) {
            char detail[PLX_ERROR_CAP];
            snprintf(detail, sizeof detail, "%s", ts != NULL && ts->error[0] ? ts->error : plx_status_text(st));
            char shapes[512];
            describe_descs(shapes, sizeof shapes, p.in, p.n_in);
            ctx_fail(ctx, st, "%s(%s) on backend %s (plugin %s, device %s): %s", p.op_name, shapes, b->name,
                     ctx->plugins[b->plugin_index].name, b->devices[dev].name, detail);
        } else if (ts != NULL)
            ts->last_backend = b->name;
    }
    for (int32_t i = 0; i < n_temps; i++)
        plx_tensor_free(temps[i]);
    for (int32_t i = 0; i < p.n_out; i++) {
        if (st == PLX_OK && made[i] != NULL)
            outputs[i] = made[i];
        else if (st != PLX_OK)
            plx_tensor_free(made[i]);
    }
    prepared_free(&p);
    return st;
}

PLX_API plx_status plx_op_run(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *inputs,
                              size_t n_inputs, plx_tensor **outputs, size_t n_outputs)
{
    if (ctx == NULL)
        return PLX_INVALID_ARGUMENT;
    if (op == NULL)
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plx_op_run: op name is NULL");
    int32_t id = op_lookup(ctx, op);
    if (id < 0)
        return ctx_fail(ctx, PLX_NOT_FOUND, "unknown op '%s'", op);
    return plx_op_run_id(ctx, id, attrs, inputs, n_inputs, outputs, n_outputs);
}

PLX_API plx_status plx_op_explain(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *inputs,
                                  size_t n_inputs, char *buf, size_t cap)
{
    if (ctx == NULL || buf == NULL || cap == 0)
        return ctx ? ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plx_op_explain: NULL buffer") : PLX_INVALID_ARGUMENT;
    buf[0] = '\0';
    int32_t id = op != NULL ? op_lookup(ctx, op) : -1;
    if (id < 0)
        return ctx_fail(ctx, PLX_NOT_FOUND, "unknown op '%s'", op ? op : "(null)");
    const op_def *def = op_catalog_get(id);
    size_t n_out = def != NULL ? (size_t)def->n_outputs : 0;
    plx_tensor *outs[8] = {0};
    prepared_call p;
    plx_status st = prepare(ctx, id, attrs, inputs, n_inputs, outs, n_out, &p);
    if (st != PLX_OK) {
        snprintf(buf, cap, "%s\n", plx_last_error(ctx));
        prepared_free(&p);
        return st;
    }
    plx_op_call call = {.struct_size = (uint32_t)sizeof call, .op_id = id, .op_name = p.op_name,
                        .attrs = p.attrs_ptr, .n_inputs = p.n_in, .inputs = p.in, .n_outputs = p.n_out,
                        .outputs = p.out};
    for (int32_t i = 0; i < p.n_in; i++)
        p.in[i].data = NULL;
    int32_t b = -1, d = -1;
    st = router_route(ctx, p.def, &call, p.in_meta, p.out_meta, &b, &d, buf, cap);
    prepared_free(&p);
    return st;
}

/* executor.c — planning (pruning, placement, memory) and running; see
 * executor.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executor.h"

#define ALIGN 64

static size_t value_bytes(const exec_plan *p, int32_t id)
{
    const graph_value *v = &p->graph->values[id];
    size_t n = (size_t)meta_numel(&v->meta) * plx_dtype_size(v->meta.dtype);
    if (p->backend_layout_bytes != NULL && p->backend_layout_bytes[id] > n)
        n = (size_t)p->backend_layout_bytes[id];
    return (n + ALIGN - 1) / ALIGN * ALIGN;
}

/* ---- best-fit arena allocation over a sorted free list ------------------- */

typedef struct block {
    size_t off, size;
} block;

typedef struct arena_layout {
    block *free;
    int32_t n_free, cap_free;
    size_t end; /* high-water mark */
} arena_layout;

static bool layout_alloc(arena_layout *a, size_t size, size_t *off)
{
    int32_t best = -1;
    for (int32_t i = 0; i < a->n_free; i++)
        if (a->free[i].size >= size && (best < 0 || a->free[i].size < a->free[best].size))
            best = i;
    if (best >= 0) {
        *off = a->free[best].off;
        a->free[best].off += size;
        a->free[best].size -= size;
        if (a->free[best].size == 0) {
            memmove(&a->free[best], &a->free[best + 1], sizeof(block) * (size_t)(a->n_free - best - 1));
            a->n_free--;
        }
        return true;
    }
    /* Grow from the end, absorbing a free block that touches it. */
    if (a->n_free > 0 && a->free[a->n_free - 1].off + a->free[a->n_free - 1].size == a->end) {
        *off = a->free[a->n_free - 1].off;
        a->n_free--;
        a->end = *off + size;
        return true;
    }
    *off = a->end;
    a->end += size;
    return true;
}

static bool layout_release(arena_layout *a, size_t off, size_t size)
{
    if (size == 0)
        return true;
    if (a->n_free == a->cap_free) {
        int32_t cap = a->cap_free ? a->cap_free * 2 : 32;
        block *grown = realloc(a->free, sizeof *grown * (size_t)cap);
        if (grown == NULL)
            return false;
        a->free = grown;
        a->cap_free = cap;
    }
    int32_t i = 0;
    while (i < a->n_free && a->free[i].off < off)
        i++;
    memmove(&a->free[i + 1], &a->free[i], sizeof(block) * (size_t)(a->n_free - i));
    a->free[i] = (block){off, size};
    a->n_free++;
    /* Coalesce with neighbours. */
    if (i + 1 < a->n_free && a->free[i].off + a->free[i].size == a->free[i + 1].off) {
        a->free[i].size += a->free[i + 1].size;
        memmove(&a->free[i + 1], &a->free[i + 2], sizeof(block) * (size_t)(a->n_free - i - 2));
        a->n_free--;
    }
    if (i > 0 && a->free[i - 1].off + a->free[i - 1].size == a->free[i].off) {
        a->free[i - 1].size += a->free[i].size;
        memmove(&a->free[i], &a->free[i + 1], sizeof(block) * (size_t)(a->n_free - i - 1));
        a->n_free--;
    }
    return true;
}

/* ---- plan ---------------------------------------------------------------- */

void plan_free(exec_plan *p)
{
    if (p == NULL)
        return;
    for (int32_t i = 0; i < p->n_steps; i++) {
        free(p->steps[i].descs);
        free(p->steps[i].layouts);
    }
    free(p->steps);
    free(p->backend_layout_bytes);
    free(p->offset);
    free(p->bound);
    free(p->arena);
    free(p->step_ns);
    free(p);
}

plx_status plan_profile(exec_plan *p, bool on)
{
    free(p->step_ns);
    p->step_ns = NULL;
    p->profiled_runs = 0;
    if (!on)
        return PLX_OK;
    p->step_ns = calloc((size_t)p->n_steps + 1, sizeof *p->step_ns);
    return p->step_ns ? PLX_OK : ctx_fail(p->graph->ctx, PLX_OUT_OF_MEMORY, "plan: out of memory");
}

static double clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

plx_op_call node_call(plx_graph *g, const graph_node *n, const void *attrs, plx_tensor_desc *descs,
                      tensor_meta *metas)
{
    for (int32_t i = 0; i < n->n_in + n->n_out; i++) {
        graph_value *gv = &g->values[i < n->n_in ? n->in[i] : n->out[i - n->n_in]];
        metas[i] = gv->meta;
        descs[i] = (plx_tensor_desc){.data = NULL, .device = {PLX_DL_CPU, 0}, .ndim = gv->meta.ndim,
                                     .dtype = gv->meta.dtype, .shape = gv->meta.dims};
    }
    return (plx_op_call){.struct_size = (uint32_t)sizeof(plx_op_call), .op_id = n->op_id,
                         .op_name = op_name_of(g->ctx, n->op_id), .attrs = attrs, .n_inputs = n->n_in,
                         .inputs = descs, .n_outputs = n->n_out, .outputs = descs + n->n_in};
}

static plx_status place_node(plx_graph *g, int32_t node, exec_step *s)
{
    plx_context *ctx = g->ctx;
    const graph_node *n = &g->nodes[node];
    const op_def *def = op_catalog_get(n->op_id);
    s->node = node;
    s->routed_backend = -1;
    s->descs = calloc((size_t)(n->n_in + n->n_out + 1), sizeof *s->descs);
    tensor_meta *metas = calloc((size_t)(n->n_in + n->n_out + 1), sizeof *metas);
    if (s->descs == NULL || metas == NULL) {
        free(metas);
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plan: out of memory");
    }
    s->call = node_call(g, n, n->attrs, s->descs, metas);
    plx_status st = router_route(ctx, def, &s->call, metas, metas + n->n_in, &s->backend, &s->device, NULL, 0);
    free(metas);
    if (st != PLX_OK) {
        char what[768], msg[PLX_ERROR_CAP];
        graph_describe_node(g, node, what, sizeof what);
        snprintf(msg, sizeof msg, "%s", plx_last_error(ctx));
        return ctx_fail(ctx, st, "node %d (%s): %s", (int)node, what, msg);
    }
    const backend_record *b = &ctx->backends[s->backend];
    if ((b->devices[s->device].caps & PLX_DEVICE_CAP_HOST_MEMORY) == 0) {
        char what[768];
        graph_describe_node(g, node, what, sizeof what);
        return ctx_fail(ctx, PLX_UNSUPPORTED,
                        "node %d (%s) was placed on %s %s, which has its own memory; graph execution with "
                        "device copies is not supported yet (rank a host-memory backend first)",
                        (int)node, what, b->name, b->devices[s->device].name);
    }
    return PLX_OK;
}

/* A data-free copy of the step's call in plain layouts, for support and
 * cost queries (they see no data): its tensors are `shapes` (n_in + n_out
 * entries, the caller's), and `metas`, when not NULL, gets the values'
 * shapes. */
static plx_op_call query_call(const plx_graph *g, const exec_step *step, plx_tensor_desc *shapes, tensor_meta *metas)
{
    const graph_node *n = &g->nodes[step->node];
    for (int32_t i = 0; i < n->n_in + n->n_out; i++) {
        shapes[i] = step->descs[i];
        shapes[i].data = NULL;
        if (metas != NULL)
            metas[i] = g->values[i < n->n_in ? n->in[i] : n->out[i - n->n_in]].meta;
    }
    plx_op_call call = step->call;
    call.inputs = shapes;
    call.outputs = shapes + n->n_in;
    call.layouts = NULL;
    return call;
}

/* Would backend bi (device di) accept the step's call with these layouts? */
static bool backend_accepts(const plx_graph *g, const exec_step *step, int32_t bi, int32_t di, const uint8_t *layouts)
{
    const backend_record *b = &g->ctx->backends[bi];
    if (b->api.supports == NULL)
        return true;
    plx_tensor_desc *shapes = malloc(sizeof *shapes * (size_t)(step->call.n_inputs + step->call.n_outputs + 1));
    if (shapes == NULL)
        return false;
    plx_op_call call = query_call(g, step, shapes, NULL);
    call.layouts = layouts;
    char reason[256];
    bool yes = b->api.supports(b->state, di, &call, reason, sizeof reason) != 0;
    free(shapes);
    return yes;
}



/* The step's layouts (when it runs on backend bi) with `slots` set to
 * bi's own layout: a new array of n_in + n_out entries, NULL when out of
 * memory. */
static uint8_t *layouts_with(const exec_step *step, int32_t bi, const int32_t *slots, int32_t n_slots)
{
    int32_t n = step->call.n_inputs + step->call.n_outputs;
    uint8_t *l = calloc((size_t)n + 1, 1);
    if (l == NULL)
        return NULL;
    if (step->layouts != NULL && step->backend == bi)
        memcpy(l, step->layouts, (size_t)n);
    for (int32_t k = 0; k < n_slots; k++)
        l[slots[k]] = PLX_LAYOUT_BACKEND;
    return l;
}

/* Whether backend bi would take the step's call with tensor `slot` in its
 * own layout too. */
static bool accepts_slot(const plx_graph *g, const exec_step *step, int32_t bi, int32_t di, int32_t slot)
{
    uint8_t *l = layouts_with(step, bi, &slot, 1);
    bool yes = l != NULL && backend_accepts(g, step, bi, di, l);
    free(l);
    return yes;
}

/* The cost of a step's call on backend bi (measured, else estimated). */
static bool step_cost_on(plx_graph *g, const exec_step *step, int32_t bi, int32_t di, double *ns)
{
    int32_t k = step->call.n_inputs + step->call.n_outputs;
    tensor_meta *metas = calloc((size_t)k + 1, sizeof *metas);
    plx_tensor_desc *shapes = calloc((size_t)k + 1, sizeof *shapes);
    bool ok = metas != NULL && shapes != NULL;
    if (ok) {
        plx_op_call call = query_call(g, step, shapes, metas);
        ok = router_cost_of(g->ctx, op_catalog_get(call.op_id), &call, metas, metas + call.n_inputs, bi, di, ns) ==
             PLX_OK;
    }
    free(metas);
    free(shapes);
    return ok;
}

/* Largest own-layout size taken from a plugin: blocked layouts pad a dim
 * to a block (at most 64x for a dim of 1 padded to 64), and a size past
 * that would only be a broken plugin's (or one that overflows the arena). */
#define LAYOUT_MAX_FACTOR 64
#define LAYOUT_MAX_EXTRA 65536

/* Bytes output `slot` of the step takes in backend bi's own layout, or 0
 * when it has none for it. A size beyond any padding is refused with a
 * warning naming the plugin, and the value stays plain. */
static uint64_t own_layout_bytes(const plx_graph *g, const exec_step *step, int32_t bi, int32_t di, int32_t slot)
{
    plx_context *ctx = g->ctx;
    const backend_record *b = &ctx->backends[bi];
    if (b->api.layout_bytes == NULL || ctx->plugins[b->plugin_index].abi_minor < 2)
        return 0;
    plx_tensor_desc shape = step->descs[slot];
    shape.data = NULL;
    uint64_t bytes = b->api.layout_bytes(b->state, di, &shape);
    uint64_t plain = (uint64_t)plx_desc_numel(&shape) * plx_dtype_size(shape.dtype);
    if (bytes > plain * LAYOUT_MAX_FACTOR + LAYOUT_MAX_EXTRA) {
        tensor_meta m;
        char what[160];
        meta_from_desc(&m, &shape);
        ctx_log(ctx, PLX_LOG_WARN,
                "plugin %s: layout_bytes says %llu bytes for %s (%llu plain), more than any padding needs; "
                "the value stays plain",
                ctx->plugins[b->plugin_index].name, (unsigned long long)bytes, meta_format(&m, what, sizeof what),
                (unsigned long long)plain);
        return 0;
    }
    return bytes;
}

/* A reorder between a plain tensor and a backend's own layout reads and
 * writes it once (~0.1 ns per byte here, measured on oneDNN's reorders);
 * a value kept in the layout saves two: the producer's out, the reader's in. */
#define REORDER_NS_PER_BYTE 0.1

/* Layout-aware placement (unranked routing only): a step whose data input
 * comes from a backend that could keep it in its own layout moves to that
 * backend when its cost there, less the two reorders saved, is below its
 * cost where it was placed, and every other reader of the value is on that
 * backend already and takes the layout. Per-op costs alone cannot see this:
 * measured one at a time, each op pays its own reorders. */
static void extend_chains(exec_plan *p, const bool *kept, const int32_t *step_of_node)
{
    plx_graph *g = p->graph;
    plx_context *ctx = g->ctx;
    if (!ctx->backend_layouts || ctx->n_ranking > 0)
        return;
    for (int32_t t = 0; t < p->n_steps; t++) {
        exec_step *step = &p->steps[t];
        const graph_node *tn = &g->nodes[step->node];
        if (tn->n_in < 1)
            continue;
        int32_t v = tn->in[0];
        const graph_value *gv = &g->values[v];
        if (gv->kind != VALUE_TEMP || kept[v] || gv->producer < 0 || step_of_node[gv->producer] < 0)
            continue;
        exec_step *prod = &p->steps[step_of_node[gv->producer]];
        int32_t bi = prod->backend, di = prod->device;
        if (bi == step->backend && di == step->device)
            continue;
        const graph_node *pn = &g->nodes[prod->node];
        int32_t out_slot = -1;
        for (int32_t o = 0; o < pn->n_out; o++)
            if (pn->out[o] == v)
                out_slot = pn->n_in + o;
        if (out_slot < 0)
            continue;
        uint64_t bytes = own_layout_bytes(g, prod, bi, di, out_slot);
        if (bytes == 0 || !accepts_slot(g, prod, bi, di, out_slot) || !accepts_slot(g, step, bi, di, 0))
            continue;
        bool others_ok = true;
        for (int32_t r = 0; r < p->n_steps && others_ok; r++) {
            if (r == t)
                continue;
            const graph_node *rn = &g->nodes[p->steps[r].node];
            for (int32_t i = 0; i < rn->n_in && others_ok; i++)
                if (rn->in[i] == v)
                    others_ok = p->steps[r].backend == bi && p->steps[r].device == di &&
                                accepts_slot(g, &p->steps[r], bi, di, i);
        }
        double here, there;
        if (!others_ok || !step_cost_on(g, step, step->backend, step->device, &here) ||
            !step_cost_on(g, step, bi, di, &there))
            continue;
        double saved = 2.0 * REORDER_NS_PER_BYTE * (double)bytes;
        if (there - saved < here) {
            step->routed_backend = step->backend;
            step->backend = bi;
            step->device = di;
        }
    }
}

/* Sets layouts[i] on step s (allocating its array) when it accepts them. */
static bool try_layout(const plx_graph *g, exec_step *step, const int32_t *slots, int32_t n_slots)
{
    uint8_t *l = layouts_with(step, step->backend, slots, n_slots);
    if (l == NULL || !backend_accepts(g, step, step->backend, step->device, l)) {
        free(l);
        return false;
    }
    free(step->layouts);
    step->layouts = l;
    step->call.layouts = l;
    return true;
}

/* Keeps a temporary in its backend's own layout when that backend produces
 * it and runs every step that reads it, and all of them accept it so. */
static plx_status choose_layouts(exec_plan *p, const bool *kept)
{
    plx_graph *g = p->graph;
    plx_context *ctx = g->ctx;
    p->backend_layout_bytes = calloc((size_t)g->n_values + 1, sizeof *p->backend_layout_bytes);
    if (p->backend_layout_bytes == NULL)
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plan: out of memory");
    if (!ctx->backend_layouts)
        return PLX_OK;
    int32_t *slots = malloc(sizeof(int32_t) * ((size_t)g->n_values + 1));
    if (slots == NULL)
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plan: out of memory");
    for (int32_t s = 0; s < p->n_steps; s++) {
        exec_step *prod = &p->steps[s];
        const graph_node *pn = &g->nodes[prod->node];
        for (int32_t o = 0; o < pn->n_out; o++) {
            int32_t v = pn->out[o];
            if (g->values[v].kind != VALUE_TEMP || kept[v])
                continue;
            uint64_t bytes = own_layout_bytes(g, prod, prod->backend, prod->device, pn->n_in + o);
            if (bytes == 0)
                continue;
            /* Every reader on the same backend and device? */
            bool ok = true, any = false;
            for (int32_t t = s + 1; t < p->n_steps && ok; t++) {
                const graph_node *tn = &g->nodes[p->steps[t].node];
                for (int32_t i = 0; i < tn->n_in && ok; i++)
                    if (tn->in[i] == v) {
                        any = true;
                        ok = p->steps[t].backend == prod->backend && p->steps[t].device == prod->device;
                    }
            }
            if (!ok || !any)
                continue;
            /* Ask the producer, then each reader; undo if any declines
             * (every slot touched held v, so it was plain before). */
            int32_t slot = pn->n_in + o;
            ok = try_layout(g, prod, &slot, 1);
            int32_t done_until = s;
            for (int32_t t = s + 1; t < p->n_steps && ok; t++) {
                const graph_node *tn = &g->nodes[p->steps[t].node];
                int32_t n_slots = 0;
                for (int32_t i = 0; i < tn->n_in; i++)
                    if (tn->in[i] == v)
                        slots[n_slots++] = i;
                if (n_slots > 0) {
                    ok = try_layout(g, &p->steps[t], slots, n_slots);
                    done_until = t;
                }
            }
            if (ok) {
                p->backend_layout_bytes[v] = bytes;
            } else {
                /* Undo: the producer's slot and the readers accepted so far. */
                if (prod->layouts != NULL)
                    prod->layouts[slot] = PLX_LAYOUT_PLAIN;
                for (int32_t t = s + 1; t <= done_until; t++) {
                    exec_step *st = &p->steps[t];
                    const graph_node *tn = &g->nodes[st->node];
                    for (int32_t i = 0; i < tn->n_in && st->layouts != NULL; i++)
                        if (tn->in[i] == v)
                            st->layouts[i] = PLX_LAYOUT_PLAIN;
                }
            }
        }
    }
    free(slots);
    return PLX_OK;
}

plx_status plan_build(plx_graph *g, const int32_t *keep, int32_t n_keep, exec_plan **out)
{
    plx_context *ctx = g->ctx;
    exec_plan *p = calloc(1, sizeof *p);
    bool *needed_value = calloc((size_t)g->n_values + 1, sizeof *needed_value);
    bool *needed_node = calloc((size_t)g->n_nodes + 1, sizeof *needed_node);
    int32_t *last_use = malloc(sizeof(int32_t) * ((size_t)g->n_values + 1));
    arena_layout layout = {0};
    plx_status st = PLX_OK;
    if (p == NULL || needed_value == NULL || needed_node == NULL || last_use == NULL) {
        st = ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plan: out of memory");
        goto fail;
    }
    p->graph = g;
    p->offset = malloc(sizeof(int64_t) * ((size_t)g->n_values + 1));
    p->bound = calloc((size_t)g->n_values + 1, sizeof *p->bound);
    p->steps = calloc((size_t)g->n_nodes + 1, sizeof *p->steps);
    if (p->offset == NULL || p->bound == NULL || p->steps == NULL) {
        st = ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plan: out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < n_keep; i++) {
        if (keep[i] < 0 || keep[i] >= g->n_values) {
            st = ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plan: value %d to keep is not in the graph", (int)keep[i]);
            goto fail;
        }
        needed_value[keep[i]] = true;
    }
    graph_fuse(g, keep, n_keep);
    /* Backwards: a node is needed if it produces a needed value or updates
     * persistent state; its inputs are then needed. */
    for (int32_t ni = g->n_nodes - 1; ni >= 0; ni--) {
        const graph_node *n = &g->nodes[ni];
        const op_def *def = op_catalog_get(n->op_id);
        bool need = def != NULL && def->mutated_inputs != 0;
        for (int32_t o = 0; o < n->n_out && !need; o++)
            need = needed_value[n->out[o]];
        if (!need)
            continue;
        needed_node[ni] = true;
        for (int32_t i = 0; i < n->n_in; i++)
            needed_value[n->in[i]] = true;
    }
    for (int32_t v = 0; v < g->n_values; v++) {
        p->offset[v] = -1;
        last_use[v] = -1;
    }
    for (int32_t ni = 0; ni < g->n_nodes; ni++) {
        if (!needed_node[ni])
            continue;
        const graph_node *n = &g->nodes[ni];
        for (int32_t i = 0; i < n->n_in + n->n_out; i++) {
            int32_t v = i < n->n_in ? n->in[i] : n->out[i - n->n_in];
            last_use[v] = p->n_steps;
        }
        st = place_node(g, ni, &p->steps[p->n_steps]);
        p->n_steps++;
        if (st != PLX_OK)
            goto fail;
    }
    for (int32_t i = 0; i < n_keep; i++)
        last_use[keep[i]] = INT32_MAX;
    {
        bool *kept = calloc((size_t)g->n_values + 1, sizeof *kept);
        if (kept == NULL) {
            st = ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plan: out of memory");
            goto fail;
        }
        for (int32_t i = 0; i < n_keep; i++)
            kept[keep[i]] = true;
        int32_t *step_of_node = malloc(sizeof(int32_t) * ((size_t)g->n_nodes + 1));
        if (step_of_node == NULL) {
            free(kept);
            st = ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plan: out of memory");
            goto fail;
        }
        for (int32_t ni = 0; ni < g->n_nodes; ni++)
            step_of_node[ni] = -1;
        for (int32_t si = 0; si < p->n_steps; si++)
            step_of_node[p->steps[si].node] = si;
        extend_chains(p, kept, step_of_node);
        free(step_of_node);
        st = choose_layouts(p, kept);
        free(kept);
        if (st != PLX_OK)
            goto fail;
    }
    /* Memory: outputs are laid out before the step's dead values are
     * released, so a step never writes over its own inputs. */
    for (int32_t s = 0; s < p->n_steps; s++) {
        const graph_node *n = &g->nodes[p->steps[s].node];
        for (int32_t o = 0; o < n->n_out; o++) {
            int32_t v = n->out[o];
            size_t off;
            layout_alloc(&layout, value_bytes(p, v), &off);
            p->offset[v] = (int64_t)off;
        }
        for (int32_t i = 0; i < n->n_in + n->n_out; i++) {
            int32_t v = i < n->n_in ? n->in[i] : n->out[i - n->n_in];
            if (g->values[v].kind != VALUE_TEMP || last_use[v] != s)
                continue;
            last_use[v] = -2; /* released once even if a node reads it twice */
            if (!layout_release(&layout, (size_t)p->offset[v], value_bytes(p, v))) {
                st = ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plan: out of memory");
                goto fail;
            }
        }
    }
    p->arena_bytes = layout.end;
    p->arena = aligned_alloc(ALIGN, layout.end ? layout.end : ALIGN);
    if (p->arena == NULL) {
        st = ctx_fail(ctx, PLX_OUT_OF_MEMORY, "plan: cannot allocate the %zu-byte arena", layout.end);
        goto fail;
    }
    /* Temps' data pointers are fixed now; persistent ones come with plan_bind. */
    for (int32_t s = 0; s < p->n_steps; s++) {
        const graph_node *n = &g->nodes[p->steps[s].node];
        for (int32_t i = 0; i < n->n_in + n->n_out; i++) {
            int32_t v = i < n->n_in ? n->in[i] : n->out[i - n->n_in];
            if (g->values[v].kind == VALUE_TEMP)
                p->steps[s].descs[i].data = p->arena + p->offset[v];
        }
    }
    free(layout.free);
    free(needed_value);
    free(needed_node);
    free(last_use);
    *out = p;
    return PLX_OK;
fail:
    free(layout.free);
    free(needed_value);
    free(needed_node);
    free(last_use);
    plan_free(p);
    return st;
}

plx_status plan_bind(exec_plan *p, int32_t value, plx_tensor *t)
{
    plx_graph *g = p->graph;
    if (value < 0 || value >= g->n_values || g->values[value].kind == VALUE_TEMP)
        return ctx_fail(g->ctx, PLX_INVALID_ARGUMENT, "plan: value %d is not a persistent value", (int)value);
    const graph_value *gv = &g->values[value];
    tensor_meta m;
    meta_from_desc(&m, &t->desc);
    if (!plx_dtype_equal(m.dtype, gv->meta.dtype) || !meta_same_shape(&m, &gv->meta) || !desc_is_compact(&t->desc)) {
        char a[160], b[160];
        return ctx_fail(g->ctx, PLX_SHAPE_MISMATCH, "'%s' expects a compact %s, got %s", gv->name,
                        meta_format(&gv->meta, a, sizeof a), meta_format(&m, b, sizeof b));
    }
    p->bound[value] = t;
    void *data = plx_desc_ptr(&t->desc);
    for (int32_t s = 0; s < p->n_steps; s++) {
        const graph_node *n = &g->nodes[p->steps[s].node];
        for (int32_t i = 0; i < n->n_in + n->n_out; i++) {
            int32_t v = i < n->n_in ? n->in[i] : n->out[i - n->n_in];
            if (v == value)
                p->steps[s].descs[i].data = data;
        }
    }
    return PLX_OK;
}

plx_status plan_run(exec_plan *p)
{
    plx_graph *g = p->graph;
    plx_context *ctx = g->ctx;
    for (int32_t s = 0; s < p->n_steps; s++) {
        exec_step *step = &p->steps[s];
        const graph_node *n = &g->nodes[step->node];
        for (int32_t i = 0; i < n->n_in; i++)
            if (g->values[n->in[i]].kind != VALUE_TEMP && p->bound[n->in[i]] == NULL)
                return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "plan: '%s' is not bound", g->values[n->in[i]].name);
        backend_record *b = &ctx->backends[step->backend];
        thread_state *ts = thread_state_get(ctx);
        if (ts != NULL)
            ts->error[0] = '\0';
        double t0 = p->step_ns != NULL ? clock_ns() : 0.0;
        plx_status st = b->api.run(b->state, step->device, &step->call);
        if (p->step_ns != NULL)
            p->step_ns[s] += clock_ns() - t0;
        if (st != PLX_OK) {
            char what[768], detail[PLX_ERROR_CAP];
            graph_describe_node(g, step->node, what, sizeof what);
            snprintf(detail, sizeof detail, "%s", ts != NULL && ts->error[0] ? ts->error : plx_status_text(st));
            return ctx_fail(ctx, st, "node %d (%s) on backend %s: %s", (int)step->node, what, b->name, detail);
        }
    }
    p->profiled_runs += p->step_ns != NULL;
    return PLX_OK;
}

/* A value in a backend's own layout is scanned whole (its values are
 * permuted and padded, but they are all there). */
static bool all_finite(const plx_tensor_desc *d, uint64_t backend_bytes)
{
    if (!plx_dtype_equal(d->dtype, PLX_F32) || d->data == NULL)
        return true;
    const float *x = plx_desc_ptr(d);
    int64_t n = backend_bytes > 0 ? (int64_t)(backend_bytes / sizeof(float)) : plx_desc_numel(d);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return false;
    return true;
}

plx_status plan_run_checked(exec_plan *p, int32_t *bad_node)
{
    plx_graph *g = p->graph;
    *bad_node = -1;
    for (int32_t s = 0; s < p->n_steps; s++) {
        /* One step at a time through the same path as plan_run. */
        exec_plan one = *p;
        one.steps = &p->steps[s];
        one.n_steps = 1;
        one.step_ns = p->step_ns != NULL ? p->step_ns + s : NULL;
        plx_status st = plan_run(&one);
        if (st != PLX_OK)
            return st;
        const exec_step *step = &p->steps[s];
        const graph_node *n = &g->nodes[step->node];
        const op_def *def = op_catalog_get(n->op_id);
        bool ok = true;
        for (int32_t o = 0; o < n->n_out && ok; o++)
            ok = all_finite(&step->descs[n->n_in + o], p->backend_layout_bytes[n->out[o]]);
        for (int32_t i = 0; i < n->n_in && ok && def != NULL; i++)
            if ((def->mutated_inputs >> (i < 31 ? i : 31)) & 1u)
                ok = all_finite(&step->descs[i], p->backend_layout_bytes[n->in[i]]);
        if (!ok) {
            char what[768];
            graph_describe_node(g, step->node, what, sizeof what);
            *bad_node = step->node;
            return ctx_fail(g->ctx, PLX_INVALID_ARGUMENT, "node %d (%s) produced NaN or Inf", (int)step->node, what);
        }
    }
    return PLX_OK;
}

void plan_profile_report(const exec_plan *p, void (*emit)(void *user, const char *line), void *user)
{
    if (p->step_ns == NULL || p->profiled_runs == 0)
        return;
    plx_graph *g = p->graph;
    /* Sum by op. */
    int32_t n_ops = (int32_t)op_index_count(g->ctx);
    double *by_op = calloc((size_t)n_ops + 1, sizeof *by_op);
    int32_t *count = calloc((size_t)n_ops + 1, sizeof *count);
    double total = 0.0;
    for (int32_t s = 0; by_op && count && s < p->n_steps; s++) {
        int64_t k = op_index(g->nodes[p->steps[s].node].op_id);
        by_op[k] += p->step_ns[s];
        count[k]++;
        total += p->step_ns[s];
    }
    char line[256];
    snprintf(line, sizeof line, "%-32s %6s %10s %6s", "op", "nodes", "ms/run", "share");
    emit(user, line);
    for (int32_t iter = 0; by_op && count && iter < n_ops; iter++) {
        int32_t best = -1;
        for (int32_t k = 0; k < n_ops; k++)
            if (count[k] > 0 && (best < 0 || by_op[k] > by_op[best]))
                best = k;
        if (best < 0)
            break;
        int32_t id = best < PLX_OP_CORE_COUNT_ ? best : PLX_OP_CUSTOM_BASE + (best - PLX_OP_CORE_COUNT_);
        snprintf(line, sizeof line, "%-32s %6d %10.3f %5.1f%%", op_name_of(g->ctx, id), (int)count[best],
                 by_op[best] / 1e6 / (double)p->profiled_runs, total > 0 ? 100.0 * by_op[best] / total : 0.0);
        emit(user, line);
        count[best] = 0;
    }
    free(by_op);
    free(count);
}

void *plan_value_data(const exec_plan *p, int32_t value)
{
    if (value < 0 || value >= p->graph->n_values)
        return NULL;
    if (p->bound[value] != NULL)
        return plx_desc_ptr(&p->bound[value]->desc);
    if (p->offset[value] >= 0)
        return p->arena + p->offset[value];
    return NULL;
}

size_t plan_arena_bytes(const exec_plan *p)
{
    return p->arena_bytes;
}

void plan_describe(const exec_plan *p, int explain, void (*emit)(void *user, const char *line), void *user)
{
    plx_graph *g = p->graph;
    plx_context *ctx = g->ctx;
    for (int32_t s = 0; s < p->n_steps; s++) {
        const exec_step *step = &p->steps[s];
        char what[768], line[PLX_ERROR_CAP * 2];
        graph_describe_node(g, step->node, what, sizeof what);
        const backend_record *b = &ctx->backends[step->backend];
        char layouts[128] = "";
        if (step->layouts != NULL) {
            size_t used = 0;
            int32_t n_in = step->call.n_inputs;
            for (int32_t i = 0; i < n_in + step->call.n_outputs && used < sizeof layouts; i++)
                if (step->layouts[i] == PLX_LAYOUT_BACKEND) {
                    int w = snprintf(layouts + used, sizeof layouts - used, "%s%s %d", used ? ", " : "",
                                     i < n_in ? "input" : "output", (int)(i < n_in ? i : i - n_in));
                    used += w > 0 ? (size_t)w : 0;
                }
        }
        snprintf(line, sizeof line, "%4d  %-12s %-6s %s%s%s%s%s", (int)s, b->name, b->devices[step->device].name, what,
                 layouts[0] ? "  [" : "", layouts[0] ? b->name : "", layouts[0] ? " layout: " : "",
                 layouts[0] ? layouts : "");
        if (layouts[0])
            snprintf(line + strlen(line), sizeof line - strlen(line), "]");
        if (step->routed_backend >= 0)
            snprintf(line + strlen(line), sizeof line - strlen(line),
                     " (moved from %s: in %s's layout it saves two reorders)",
                     ctx->backends[step->routed_backend].name, b->name);
        emit(user, line);
        {
            char buf[4096];
            tensor_meta metas[24];
            const graph_node *n = &g->nodes[step->node];
            if (n->n_in + n->n_out > 24)
                continue;
            plx_tensor_desc shapes_only[24];
            plx_op_call call = query_call(g, step, shapes_only, metas);
            if (explain) {
                int32_t bi, di;
                router_route(ctx, op_catalog_get(n->op_id), &call, metas, metas + n->n_in, &bi, &di, buf,
                             sizeof buf);
            } else {
                char summary[1024];
                router_summarize(ctx, op_catalog_get(n->op_id), &call, metas, metas + n->n_in, summary,
                                 sizeof summary);
                snprintf(buf, sizeof buf, "      candidates: %s", summary);
            }
            emit(user, buf);
        }
    }
}

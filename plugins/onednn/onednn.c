/*
 * onednn.c — the oneDNN backend: descriptor, probe, device, the primitive
 * cache, support query, cost estimate and dispatch over the op family
 * tables (conv.c, matmul.c, pool.c, eltwise.c, binary.c, norm.c,
 * softmax.c, reduce.c).
 *
 * It computes on host memory (tensors are shared with the runtime, never
 * copied). Each (op, dtypes, shapes, attrs) gets its primitives built once,
 * in the first support query that sees it, and cached in the plugin state;
 * a call oneDNN cannot build a primitive for is declined there, with
 * oneDNN's status as the reason, logged once at WARN level (naming the op
 * and shapes), and that answer is cached too: the router then runs the op
 * on another backend, or fails it in strict mode. A call for which oneDNN
 * has only its reference (non-JIT) implementation is declined the same way
 * (logged at INFO: it is policy, not a failure): that code is 5-100x slower
 * than cpu_blas (measured: dilated max pooling, softmax and sums over a
 * middle axis).
 *
 * dtypes: f32 everywhere; bf16 (every float tensor of the call bf16) for
 * the families that say so, only where oneDNN runs bf16 natively
 * (AVX512-BF16 or AMX, as dnnl_get_effective_cpu_isa reports; that honours
 * ONEDNN_MAX_CPU_ISA).
 *
 * Fault injection, for testing the fallback path: PLEXUS_ONEDNN_FAIL, read
 * at init, is a comma-separated list of op names ("core.conv2d,core.relu")
 * whose primitive creation is made to fail as if oneDNN had returned
 * dnnl_unimplemented. A name that is not an op this plugin implements makes
 * init fail, saying so.
 *
 * Threads: Debian's libdnnl runs on OpenMP (DNNL_CPU_RUNTIME is OMP).
 * oneDNN sizes its parallel regions from omp_get_max_threads() on the
 * calling thread, so before building or running a primitive we call
 * omp_set_num_threads(budget). That setting is OpenMP's per-thread ICV of
 * the calling thread: it also caps any other OpenMP code that thread runs
 * later in the process (none in Plexus itself). Executions are serialized
 * by the state's lock, so two runtime threads never start two OpenMP teams
 * at once. Note that libgomp's idle workers spin for a while after each
 * region (GOMP_SPINCOUNT / OMP_WAIT_POLICY tune that, read at load time).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "onednn.h"

#define ONE_BUCKETS 256
/* Distinct (op, shapes, attrs) kept; past this the cache starts over
 * (a model uses a few dozen). */
#define ONE_CACHE_CAP 512
/* Longest key: op, counts, 8 tensors of up to PLX_MAX_DIMS dims, attrs. */
#define ONE_KEY_WORDS 128
/* Estimated work that justifies one more OpenMP thread. */
#define ONE_NS_PER_THREAD 100000.0
/* Each thread past the first adds this fraction of one thread's speed
 * (bandwidth and fork-join limits; a guess, not measured on an idle
 * machine: the one this was written on was shared). */
#define ONE_PARALLEL_EFFICIENCY 0.8

struct one_cache_entry {
    one_cache_entry *next;
    uint64_t hash;
    bool declined;
    char reason[200];
    one_plan plan;
    size_t key_words;
    int64_t key[];
};

typedef struct family_ref {
    const one_kernel *table;
    const size_t *count;
} family_ref;

static const family_ref families[] = {
    {one_kernels_conv, &one_kernels_conv_count},       {one_kernels_matmul, &one_kernels_matmul_count},
    {one_kernels_pool, &one_kernels_pool_count},       {one_kernels_eltwise, &one_kernels_eltwise_count},
    {one_kernels_binary, &one_kernels_binary_count},   {one_kernels_norm, &one_kernels_norm_count},
    {one_kernels_softmax, &one_kernels_softmax_count}, {one_kernels_reduce, &one_kernels_reduce_count},
};

static const char *const core_names[PLX_OP_CORE_COUNT_] = {
#define NAME_(id, name) name,
    PLX_CORE_OPS(NAME_)
#undef NAME_
};

static const one_kernel *kernel_for(int32_t op_id)
{
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (size_t i = 0; i < *families[f].count; i++)
            if (families[f].table[i].op_id == op_id)
                return &families[f].table[i];
    return NULL;
}

/* ---- the primitive cache ------------------------------------------------------ */

static void put_word(int64_t *key, size_t *n, int64_t v)
{
    if (*n < ONE_KEY_WORDS)
        key[*n] = v;
    (*n)++;
}

static void put_tensor(int64_t *key, size_t *n, const plx_tensor_desc *t)
{
    put_word(key, n, ((int64_t)t->dtype.code << 16) | t->dtype.bits);
    put_word(key, n, t->ndim);
    for (int32_t d = 0; d < t->ndim; d++)
        put_word(key, n, t->shape[d]);
}

/* The cache key of a call: op, tensors' dtypes and shapes, attrs bytes.
 * Returns its length in words, 0 if it does not fit. */
static size_t make_key(const one_kernel *k, const plx_op_call *call, int64_t *key)
{
    size_t n = 0;
    put_word(key, &n, call->op_id);
    put_word(key, &n, ((int64_t)call->n_inputs << 8) | call->n_outputs);
    int64_t own = 0; /* which tensors are in the plugin's own layout */
    for (int32_t i = 0; i < call->n_inputs + call->n_outputs && i < 62; i++)
        own |= (int64_t)one_layout_is_own(call, i) << i;
    put_word(key, &n, own);
    for (int32_t i = 0; i < call->n_inputs; i++)
        put_tensor(key, &n, &call->inputs[i]);
    for (int32_t i = 0; i < call->n_outputs; i++)
        put_tensor(key, &n, &call->outputs[i]);
    size_t attr_words = (k->attrs_size + sizeof(int64_t) - 1) / sizeof(int64_t);
    if (n + attr_words > ONE_KEY_WORDS)
        return 0;
    if (attr_words == 0)
        return n;
    memset(key + n, 0, attr_words * sizeof(int64_t));
    if (call->attrs != NULL)
        memcpy(key + n, call->attrs, k->attrs_size);
    else
        key[n] = -1; /* no attrs: distinct from any struct (struct_size > 0) */
    return n + attr_words;
}

static uint64_t hash_key(const int64_t *key, size_t words)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the bytes */
    const unsigned char *p = (const unsigned char *)key;
    for (size_t i = 0; i < words * sizeof(int64_t); i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void entry_free(one_cache_entry *e)
{
    one_plan_free(&e->plan);
    free(e);
}

static void cache_clear(one_state *s)
{
    for (size_t b = 0; b < ONE_BUCKETS; b++) {
        one_cache_entry *e = s->buckets[b];
        while (e != NULL) {
            one_cache_entry *next = e->next;
            entry_free(e);
            e = next;
        }
        s->buckets[b] = NULL;
    }
    s->n_entries = 0;
}

/* OpenMP threads for a call: one per ONE_NS_PER_THREAD of estimated work,
 * within the budget. A fork-join across threads costs tens of us, and far
 * more on a loaded machine, where a worker may wait a scheduler time slice
 * before it runs its static share: small ops are faster on one thread. */
static int plan_threads(const one_state *s, const one_kernel *k, const plx_op_call *call)
{
    double est = k->estimate != NULL ? k->estimate(s, call) : 0.0;
    double want = est / ONE_NS_PER_THREAD;
    if (!(want >= 1.0))
        return 1;
    return want >= (double)s->threads ? s->threads : (int)want;
}

/* "f32[2,3,7,9], f32[5]" */
static void describe_tensors(char *buf, size_t cap, const plx_tensor_desc *t, int32_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < n && used < cap; i++) {
        const plx_tensor_desc *d = &t[i];
        const char *dt = plx_dtype_equal(d->dtype, PLX_F32)    ? "f32"
                         : plx_dtype_equal(d->dtype, PLX_BF16) ? "bf16"
                         : plx_dtype_equal(d->dtype, PLX_F16)  ? "f16"
                                                               : "?";
        int w = snprintf(buf + used, cap - used, "%s%s[", i ? ", " : "", dt);
        for (int32_t k = 0; w >= 0 && k < d->ndim && used + (size_t)w < cap; k++)
            w += snprintf(buf + used + w, cap - used - (size_t)w, "%s%lld", k ? "," : "", (long long)d->shape[k]);
        if (w < 0 || used + (size_t)w >= cap)
            return;
        used += (size_t)w;
        w = snprintf(buf + used, cap - used, "]");
        if (w < 0)
            return;
        used += (size_t)w;
    }
}

/* A call declined after trying oneDNN (no primitive, or only reference
 * code): said once per cached (op, dtypes, shapes, attrs), since the
 * decline is cached. */
static void log_decline(const one_state *s, const plx_op_call *call, int level, const char *reason)
{
    if (s->host->log == NULL)
        return;
    char in[512], out[256];
    describe_tensors(in, sizeof in, call->inputs, call->n_inputs);
    describe_tensors(out, sizeof out, call->outputs, call->n_outputs);
    s->host->log(s->host->host, level, "onednn", "%s(%s) -> (%s): declined: %s", call->op_name, in, out, reason);
}

/* The cached entry of a call, built on first sight. Caller holds s->lock.
 * NULL only when out of memory or the key is too long (reason written). */
static one_cache_entry *cache_get(one_state *s, const one_kernel *k, const plx_op_call *call, char *reason, size_t cap)
{
    int64_t key[ONE_KEY_WORDS];
    size_t words = make_key(k, call, key);
    if (words == 0) {
        snprintf(reason, cap, "call too large for the primitive cache key");
        return NULL;
    }
    uint64_t h = hash_key(key, words);
    size_t bucket = (size_t)(h % ONE_BUCKETS);
    for (one_cache_entry *e = s->buckets[bucket]; e != NULL; e = e->next)
        if (e->hash == h && e->key_words == words && memcmp(e->key, key, words * sizeof(int64_t)) == 0)
            return e;
    if (s->n_entries >= ONE_CACHE_CAP)
        cache_clear(s);
    one_cache_entry *e = calloc(1, sizeof *e + words * sizeof(int64_t));
    if (e == NULL) {
        snprintf(reason, cap, "out of memory");
        return NULL;
    }
    e->hash = h;
    e->key_words = words;
    memcpy(e->key, key, words * sizeof(int64_t));
    /* Primitives fix their team size and blocking when made. */
    e->plan.threads = plan_threads(s, k, call);
    omp_set_num_threads(e->plan.threads);
    dnnl_status_t st;
    const char *slow = NULL;
    if (s->fail_op[call->op_id]) {
        st = one_fail(dnnl_unimplemented, e->reason, sizeof e->reason,
                      "primitive creation (forced by PLEXUS_ONEDNN_FAIL)");
    } else if ((st = k->build(s, call, &e->plan, e->reason, sizeof e->reason)) == dnnl_success &&
               (slow = one_plan_reference_impl(&e->plan)) != NULL) {
        /* oneDNN's reference code is a plain loop nest, 10-100x slower than
         * its JIT kernels and than cpu_blas (measured: a softmax over a
         * middle axis, a sum over a middle axis): never worth routing to. */
        snprintf(e->reason, sizeof e->reason,
                 "oneDNN has only its reference implementation (%s) for this call, far slower than its JIT "
                 "kernels",
                 slow);
        st = dnnl_unimplemented;
    }
    if (st != dnnl_success) {
        e->declined = true;
        one_plan_free(&e->plan);
        if (e->reason[0] == '\0')
            snprintf(e->reason, sizeof e->reason, "oneDNN has no primitive for this call: %s", one_status_name(st));
        /* A failure is news; choosing not to run reference code is policy. */
        log_decline(s, call, slow != NULL ? PLX_LOG_INFO : PLX_LOG_WARN, e->reason);
    }
    e->next = s->buckets[bucket];
    s->buckets[bucket] = e;
    s->n_entries++;
    return e;
}

/* ---- probe, init, shutdown ------------------------------------------------------ */

static plx_status one_probe(const plx_host_api *host, char *reason, size_t cap)
{
    (void)host;
    const dnnl_version_t *v = dnnl_version();
    if (v == NULL || v->major < 2 || (v->major == 2 && v->minor < 6)) {
        snprintf(reason, cap, "oneDNN %d.%d found, 2.6 or later needed", v != NULL ? v->major : 0,
                 v != NULL ? v->minor : 0);
        return PLX_UNAVAILABLE;
    }
    if (v->major != DNNL_VERSION_MAJOR) {
        snprintf(reason, cap, "built for oneDNN %d.x, the library loaded is %d.%d.%d", DNNL_VERSION_MAJOR, v->major,
                 v->minor, v->patch);
        return PLX_UNAVAILABLE;
    }
    return PLX_OK;
}

static void one_shutdown(void *state)
{
    one_state *s = state;
    if (s == NULL)
        return;
    if (s->buckets != NULL) {
        cache_clear(s);
        free(s->buckets);
    }
    if (s->stream != NULL)
        dnnl_stream_destroy(s->stream);
    if (s->engine != NULL)
        dnnl_engine_destroy(s->engine);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* PLEXUS_ONEDNN_FAIL: comma-separated names of ops this plugin implements. */
static plx_status parse_fail_ops(one_state *s, const char *list)
{
    if (list == NULL || list[0] == '\0')
        return PLX_OK;
    const char *p = list;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        int32_t found = -1;
        for (int32_t id = 0; id < PLX_OP_CORE_COUNT_ && found < 0; id++)
            if (kernel_for(id) != NULL && strlen(core_names[id]) == len && strncmp(core_names[id], p, len) == 0)
                found = id;
        if (found < 0)
            return s->host->set_error(s->host->host, PLX_INVALID_ARGUMENT,
                                      "onednn: PLEXUS_ONEDNN_FAIL=\"%s\": \"%.*s\" is not an op this plugin implements "
                                      "(expected comma-separated names such as core.conv2d)",
                                      list, (int)len, p);
        s->fail_op[found] = true;
        if (s->host->log != NULL)
            s->host->log(s->host->host, PLX_LOG_WARN, "onednn",
                         "PLEXUS_ONEDNN_FAIL: primitive creation for %s will fail (fault injection)",
                         core_names[found]);
        p += len;
        if (*p == ',')
            p++;
    }
    return PLX_OK;
}

static plx_status one_init(const plx_host_api *host, void **state)
{
    if (host->set_error == NULL || host->num_threads == NULL)
        return PLX_ABI_MISMATCH;
    one_state *s = calloc(1, sizeof *s);
    if (s == NULL)
        return host->set_error(host->host, PLX_OUT_OF_MEMORY, "onednn: out of memory");
    s->host = host;
    s->threads = host->num_threads(host->host);
    if (s->threads < 1)
        s->threads = 1;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return host->set_error(host->host, PLX_INTERNAL, "onednn: cannot create a mutex");
    }
    s->buckets = calloc(ONE_BUCKETS, sizeof *s->buckets);
    if (s->buckets == NULL) {
        one_shutdown(s);
        return host->set_error(host->host, PLX_OUT_OF_MEMORY, "onednn: out of memory");
    }
    dnnl_status_t st = dnnl_engine_create(&s->engine, dnnl_cpu, 0);
    if (st != dnnl_success) {
        s->engine = NULL;
        one_shutdown(s);
        return host->set_error(host->host, PLX_UNAVAILABLE, "onednn: creating the CPU engine failed: %s",
                               one_status_name(st));
    }
    st = dnnl_stream_create(&s->stream, s->engine, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        s->stream = NULL;
        one_shutdown(s);
        return host->set_error(host->host, PLX_UNAVAILABLE, "onednn: creating a stream failed: %s",
                               one_status_name(st));
    }
    for (int32_t id = 0; id < PLX_OP_CORE_COUNT_; id++)
        if (kernel_for(id) != NULL)
            s->names[s->n_names++] = core_names[id];
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    s->bf16 = one_isa_has_bf16(isa);
    s->amx = one_isa_has_amx(isa);
    const char *isa_name = one_isa_name(isa);
    if (isa_name != NULL)
        snprintf(s->isa_name, sizeof s->isa_name, "%s", isa_name);
    else
        snprintf(s->isa_name, sizeof s->isa_name, "oneDNN ISA 0x%x", (unsigned)isa);
    plx_status parsed = parse_fail_ops(s, getenv("PLEXUS_ONEDNN_FAIL"));
    if (parsed != PLX_OK) {
        one_shutdown(s);
        return parsed;
    }
    *state = s;
    return PLX_OK;
}

/* ---- backend table ----------------------------------------------------------------- */

static int32_t one_device_count(void *state)
{
    (void)state;
    return 1;
}

static plx_status one_device_info(void *state, int32_t device, plx_device_info *out)
{
    (void)state;
    if (device != 0)
        return PLX_NOT_FOUND;
    out->name = "cpu0";
    out->kind = PLX_DEVICE_KIND_CPU;
    out->dl_device = (plx_dl_device){PLX_DL_CPU, 0};
    out->memory_bytes = 0;
    out->caps = PLX_DEVICE_CAP_HOST_MEMORY;
    out->copy_bytes_per_ns = 0.0;
    return PLX_OK;
}

static const char *const *one_op_names(void *state, size_t *count)
{
    one_state *s = state;
    *count = s->n_names;
    return s->names;
}

static const char *dtype_text(plx_dtype t, char *buf, size_t cap)
{
    const char *prefix = t.code == PLX_DTYPE_CODE_FLOAT    ? "f"
                         : t.code == PLX_DTYPE_CODE_BFLOAT ? "bf"
                         : t.code == PLX_DTYPE_CODE_INT    ? "i"
                         : t.code == PLX_DTYPE_CODE_UINT   ? "u"
                         : t.code == PLX_DTYPE_CODE_BOOL   ? "bool"
                                                           : "code";
    snprintf(buf, cap, "%s%d", prefix, (int)t.bits);
    return buf;
}

/* Checks that need no oneDNN: op known, every tensor of one supported
 * float dtype and non-empty, the family's own attr/shape rules. */
static const one_kernel *precheck(const one_state *s, int32_t device, const plx_op_call *call, char *reason, size_t cap)
{
    const one_kernel *k = device == 0 ? kernel_for(call->op_id) : NULL;
    if (k == NULL) {
        snprintf(reason, cap, "op not implemented");
        return NULL;
    }
    const plx_tensor_desc *first = call->n_inputs > 0 ? &call->inputs[0] : &call->outputs[0];
    const bool bf16 = plx_dtype_equal(first->dtype, PLX_BF16);
    char b[16];
    for (int32_t i = 0; i < call->n_inputs + call->n_outputs; i++) {
        bool is_input = i < call->n_inputs;
        const plx_tensor_desc *d = is_input ? &call->inputs[i] : &call->outputs[i - call->n_inputs];
        int index = is_input ? (int)i : (int)(i - call->n_inputs);
        if (!plx_dtype_equal(d->dtype, PLX_F32) && !plx_dtype_equal(d->dtype, PLX_BF16)) {
            snprintf(reason, cap, "only f32 or bf16 (%s %d is %s)", is_input ? "input" : "output", index,
                     dtype_text(d->dtype, b, sizeof b));
            return NULL;
        }
        if (plx_dtype_equal(d->dtype, PLX_BF16) != bf16) {
            snprintf(reason, cap, "mixed f32 and bf16 tensors (%s %d is %s)", is_input ? "input" : "output", index,
                     dtype_text(d->dtype, b, sizeof b));
            return NULL;
        }
        if (plx_desc_numel(d) == 0) {
            snprintf(reason, cap, "empty %s %d", is_input ? "input" : "output", index);
            return NULL;
        }
    }
    if (bf16 && (k->dtypes & ONE_DT_BF16) == 0) {
        snprintf(reason, cap, "only f32 for %s (bf16 is taken by conv2d, matmul, pooling, eltwise and binary ops)",
                 call->op_name);
        return NULL;
    }
    if (bf16 && !s->bf16) {
        snprintf(reason, cap, "bf16 needs a CPU with AVX512-BF16 (this one: %s)", s->isa_name);
        return NULL;
    }
    if (k->check != NULL && !k->check(call, reason, cap))
        return NULL;
    /* The own layout: only the data tensors of conv2d and pooling forward. */
    for (int32_t i = 0; i < call->n_inputs + call->n_outputs; i++) {
        if (!one_layout_is_own(call, i))
            continue;
        bool data = i == 0 || i == call->n_inputs;
        bool op_ok = call->op_id == PLX_OP_CONV2D || call->op_id == PLX_OP_MAX_POOL2D ||
                     call->op_id == PLX_OP_AVG_POOL2D;
        const plx_tensor_desc *d = i < call->n_inputs ? &call->inputs[i] : &call->outputs[i - call->n_inputs];
        if (!op_ok || !data || !one_layout_possible(d)) {
            snprintf(reason, cap,
                     "its own (blocked) layout only for the data tensors of conv2d and pooling forward, with "
                     "channels a multiple of its block (16 with AVX-512, 8 with AVX2)");
            return NULL;
        }
    }
    return k;
}

static int32_t one_supports(void *state, int32_t device, const plx_op_call *call, char *reason, size_t cap)
{
    one_state *s = state;
    const one_kernel *k = precheck(s, device, call, reason, cap);
    if (k == NULL)
        return 0;
    pthread_mutex_lock(&s->lock);
    one_cache_entry *e = cache_get(s, k, call, reason, cap);
    int32_t yes = e != NULL && !e->declined;
    if (e != NULL && e->declined)
        snprintf(reason, cap, "%s", e->reason);
    pthread_mutex_unlock(&s->lock);
    return yes;
}

/* The family's one-thread estimate, divided by the speed-up of the team
 * the plan runs with. */
static double one_estimate_ns(void *state, int32_t device, const plx_op_call *call)
{
    const one_state *s = state;
    const one_kernel *k = device == 0 ? kernel_for(call->op_id) : NULL;
    if (k == NULL || k->estimate == NULL)
        return -1.0;
    int threads = plan_threads(s, k, call);
    return k->estimate(s, call) / (1.0 + ONE_PARALLEL_EFFICIENCY * (double)(threads - 1));
}

static plx_status one_run(void *state, int32_t device, const plx_op_call *call)
{
    one_state *s = state;
    char reason[256] = "";
    const one_kernel *k = precheck(s, device, call, reason, sizeof reason);
    if (k == NULL)
        return s->host->set_error(s->host->host, PLX_UNSUPPORTED, "onednn: %s: %s", call->op_name, reason);
    pthread_mutex_lock(&s->lock);
    plx_status st;
    one_cache_entry *e = cache_get(s, k, call, reason, sizeof reason);
    if (e == NULL)
        st = s->host->set_error(s->host->host, PLX_OUT_OF_MEMORY, "onednn: %s: %s", call->op_name, reason);
    else if (e->declined)
        st = s->host->set_error(s->host->host, PLX_UNSUPPORTED, "onednn: %s: %s", call->op_name, e->reason);
    else
        st = one_plan_execute(s, &e->plan, call);
    pthread_mutex_unlock(&s->lock);
    return st;
}

static const plx_backend_api one_backend = {
    .struct_size = sizeof(plx_backend_api),
    .name = "onednn",
    .device_count = one_device_count,
    .device_info = one_device_info,
    .buffer_alloc = NULL,
    .buffer_free = NULL,
    .copy = NULL,
    .synchronize = NULL,
    .op_names = one_op_names,
    .supports = one_supports,
    .estimate_ns = one_estimate_ns,
    .run = one_run,
#if PLX_ABI_MINOR >= 2
    .layout_bytes = one_layout_bytes,
#endif
};

/* The plugin's own version, then the oneDNN library's ("0.2.0+onednn-2.6.3"):
 * calibration caches are keyed by it, and a different oneDNN times
 * differently. Filled once, by the first plx_plugin_entry call (the
 * library's version is a constant of the process). */
#define ONE_PLUGIN_VERSION "0.2.0"
static char one_version[48] = ONE_PLUGIN_VERSION;
static pthread_once_t one_version_once = PTHREAD_ONCE_INIT;

static void set_version(void)
{
    const dnnl_version_t *v = dnnl_version();
    if (v != NULL)
        snprintf(one_version, sizeof one_version, "%s+onednn-%d.%d.%d", ONE_PLUGIN_VERSION, v->major, v->minor,
                 v->patch);
}

static const plx_plugin_desc one_plugin = {
    .struct_size = sizeof(plx_plugin_desc),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .name = "onednn",
    .version = one_version,
    .description = "oneDNN CPU backend: convolutions, matmul, pooling, eltwise, binary, batch/layer norm, softmax and "
                   "reductions in f32 (bf16 where the CPU has it), plain layouts at the edges",
    .probe = one_probe,
    .init = one_init,
    .shutdown = one_shutdown,
    .backend = &one_backend,
};

PLX_EXPORT const plx_plugin_desc *plx_plugin_entry(void)
{
    pthread_once(&one_version_once, set_version);
    return &one_plugin;
}

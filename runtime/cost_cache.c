/*
 * cost_cache.c — measured kernel times for routing, and the calibration
 * cache file that keeps them between runs.
 *
 * A backend's own estimate (estimate_ns) is a guess made without running
 * anything; a measurement is what the kernel actually took here. Each
 * measurement is keyed by what it depends on: the backend and its plugin's
 * version, the device, the context's thread budget and the call's signature
 * (op, dtypes, shapes, attribute bytes). The router (dispatch.c) uses a
 * measurement instead of the estimate whenever one exists.
 *
 * Measurements come from calibration (plx_context_options.calibrate,
 * PLEXUS_CALIBRATE=1, `plexus bench --calibrate`): when a call has more than
 * one candidate and some candidate has not been timed, each such candidate
 * runs the call on scratch data (inputs filled with small values; integer
 * inputs with zeros, which are valid indices and labels): one warm-up run
 * (first runs build primitives and caches), then timed runs until enough
 * time has passed, and the fastest is kept. Candidates of one call are
 * timed round-robin, so none is charged for another's lingering threads.
 *
 * The cache file is JSON:
 *   {"format": "plexus-costs", "version": 1, "cpu": "<cpuid brand>",
 *    "entries": [{"backend": "onednn", "plugin_version": "0.2.0+onednn-2.6.3",
 *                 "device": "cpu0", "threads": 2, "op": "<signature>",
 *                 "ns": 12345.6}, ...]}
 * It is read once at context open. A file that cannot be read or parsed, has
 * another format/version, or was measured on another CPU is ignored with a
 * warning (the next save replaces it). Entries with bad values, and entries
 * for a loaded backend whose plugin version differs, are dropped with a
 * warning. Entries for backends not loaded now are kept and written back.
 *
 * Thread safety: the table is guarded by ctx->cost_lock; measuring runs the
 * backend's kernel on the calling thread, outside the lock.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cJSON.h>

#include "data/dataset.h"
#include "internal.h"
#include "io/atomic_file.h"

#define COST_FORMAT "plexus-costs"
#define COST_VERSION 1
#define COST_FILE_MAX (64u << 20)
#define COST_STRING_MAX 4096
/* Scratch data for one timed call; bigger calls keep their estimate. */
#define MEASURE_MAX_BYTES ((size_t)1 << 30)
#define MEASURE_MIN_RUNS 3
#define MEASURE_MAX_RUNS 25
#define MEASURE_MIN_NS 20e6  /* keep timing until 20 ms have passed... */
#define MEASURE_MAX_NS 300e6 /* ...but not past 0.3 s */

struct cost_entry {
    cost_entry *next;
    uint64_t hash;
    double ns; /* < 0: the backend failed the call when timed */
    bool measured_here;
    int32_t threads;
    char *backend, *version, *device, *signature;
};

/* The strings with their terminators, so "ab"+"c" and "a"+"bc" differ. */
static uint64_t key_hash(const char *backend, const char *version, const char *device, int32_t threads,
                         const char *signature)
{
    uint64_t h = fnv1a(PLX_FNV1A_INIT, backend, strlen(backend) + 1);
    h = fnv1a(h, version, strlen(version) + 1);
    h = fnv1a(h, device, strlen(device) + 1);
    h = fnv1a(h, &threads, sizeof threads);
    return fnv1a(h, signature, strlen(signature) + 1);
}

static const char *plugin_version_of(const plx_context *ctx, const backend_record *b)
{
    const char *v = ctx->plugins[b->plugin_index].version;
    return v != NULL ? v : "";
}

/* Finds an entry; caller holds cost_lock. */
static cost_entry *find_locked(const plx_context *ctx, uint64_t h, const char *backend, const char *version,
                               const char *device, int32_t threads, const char *signature)
{
    if (ctx->cost_cap == 0)
        return NULL;
    for (cost_entry *e = ctx->costs[h & (ctx->cost_cap - 1)]; e != NULL; e = e->next)
        if (e->hash == h && e->threads == threads && strcmp(e->signature, signature) == 0 &&
            strcmp(e->backend, backend) == 0 && strcmp(e->version, version) == 0 && strcmp(e->device, device) == 0)
            return e;
    return NULL;
}

static void entry_free(cost_entry *e)
{
    if (e == NULL)
        return;
    free(e->backend);
    free(e->version);
    free(e->device);
    free(e->signature);
    free(e);
}

/* Inserts or updates; caller holds cost_lock. false only when out of memory. */
static bool put_locked(plx_context *ctx, const char *backend, const char *version, const char *device,
                       int32_t threads, const char *signature, double ns, bool measured_here)
{
    uint64_t h = key_hash(backend, version, device, threads, signature);
    cost_entry *e = find_locked(ctx, h, backend, version, device, threads, signature);
    if (e != NULL) {
        e->ns = ns;
        e->measured_here = e->measured_here || measured_here;
        return true;
    }
    if (ctx->cost_count >= ctx->cost_cap / 2) {
        size_t cap = ctx->cost_cap ? ctx->cost_cap * 2 : 256;
        cost_entry **table = calloc(cap, sizeof *table);
        if (table == NULL)
            return false;
        for (size_t i = 0; i < ctx->cost_cap; i++)
            for (cost_entry *it = ctx->costs[i]; it != NULL;) {
                cost_entry *next = it->next;
                it->next = table[it->hash & (cap - 1)];
                table[it->hash & (cap - 1)] = it;
                it = next;
            }
        free(ctx->costs);
        ctx->costs = table;
        ctx->cost_cap = cap;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return false;
    e->hash = h;
    e->ns = ns;
    e->measured_here = measured_here;
    e->threads = threads;
    e->backend = strdup(backend);
    e->version = strdup(version);
    e->device = strdup(device);
    e->signature = strdup(signature);
    if (e->backend == NULL || e->version == NULL || e->device == NULL || e->signature == NULL) {
        entry_free(e);
        return false;
    }
    e->next = ctx->costs[h & (ctx->cost_cap - 1)];
    ctx->costs[h & (ctx->cost_cap - 1)] = e;
    ctx->cost_count++;
    return true;
}

void cost_cache_free(plx_context *ctx)
{
    for (size_t i = 0; i < ctx->cost_cap; i++)
        for (cost_entry *e = ctx->costs[i]; e != NULL;) {
            cost_entry *next = e->next;
            entry_free(e);
            e = next;
        }
    free(ctx->costs);
    ctx->costs = NULL;
    ctx->cost_cap = ctx->cost_count = 0;
    free(ctx->cost_path);
    ctx->cost_path = NULL;
}

/* ---- signatures ------------------------------------------------------------ */

size_t cost_signature(const plx_op_call *call, char *buf, size_t cap)
{
    size_t used = 0;
#define PUT(...)                                                            \
    do {                                                                    \
        int w_ = snprintf(buf + used, cap - used, __VA_ARGS__);             \
        if (w_ < 0 || (size_t)w_ >= cap - used)                             \
            return 0;                                                       \
        used += (size_t)w_;                                                 \
    } while (0)
    if (cap == 0)
        return 0;
    PUT("%s(", call->op_name);
    for (int32_t i = 0; i < call->n_inputs + call->n_outputs; i++) {
        const plx_tensor_desc *d = i < call->n_inputs ? &call->inputs[i] : &call->outputs[i - call->n_inputs];
        tensor_meta m;
        char b[160];
        meta_from_desc(&m, d);
        const char *sep = i == call->n_inputs ? ")->(" : i > 0 ? "," : "";
        PUT("%s%s", sep, meta_format(&m, b, sizeof b));
    }
    if (call->n_outputs == 0)
        PUT(")->(");
    PUT(")");
    if (call->attrs != NULL) {
        uint32_t size;
        memcpy(&size, call->attrs, sizeof size);
        if (size > PLX_OP_ATTRS_CAP)
            return 0;
        PUT(" attrs=");
        const unsigned char *a = call->attrs;
        for (uint32_t i = 0; i < size; i++)
            PUT("%02x", a[i]);
    }
#undef PUT
    return used;
}

/* ---- lookups ------------------------------------------------------------------ */

bool cost_lookup(plx_context *ctx, const backend_record *b, int32_t dev, const char *signature, double *ns)
{
    bool found = false;
    pthread_mutex_lock(&ctx->cost_lock);
    if (ctx->cost_count > 0) {
        const char *version = plugin_version_of(ctx, b), *device = b->devices[dev].name;
        uint64_t h = key_hash(b->name, version, device, ctx->num_threads, signature);
        cost_entry *e = find_locked(ctx, h, b->name, version, device, ctx->num_threads, signature);
        if (e != NULL) {
            *ns = e->ns;
            found = true;
        }
    }
    pthread_mutex_unlock(&ctx->cost_lock);
    return found;
}

static void cost_store(plx_context *ctx, const backend_record *b, int32_t dev, const char *signature, double ns)
{
    pthread_mutex_lock(&ctx->cost_lock);
    if (put_locked(ctx, b->name, plugin_version_of(ctx, b), b->devices[dev].name, ctx->num_threads, signature, ns,
                   true) &&
        ns >= 0)
        ctx->cost_measured++;
    pthread_mutex_unlock(&ctx->cost_lock);
}

/* ---- measuring ------------------------------------------------------------------ */

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Small values, the same on every run (a fixed LCG): float-like dtypes get
 * numbers in [-1, 1), everything else zeros. */
static void fill_scratch(void *data, const plx_tensor_desc *d, size_t bytes)
{
    memset(data, 0, bytes);
    int64_t n = plx_desc_numel(d);
    uint32_t s = 12345u;
    if (d->dtype.code == PLX_DTYPE_CODE_FLOAT && d->dtype.bits == 32) {
        float *f = data;
        for (int64_t i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            f[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
        }
    } else if (d->dtype.bits == 16 && (d->dtype.code == PLX_DTYPE_CODE_FLOAT || d->dtype.code == PLX_DTYPE_CODE_BFLOAT)) {
        uint16_t *u = data;
        /* 0.5 and -0.25 alternate: exact in both f16 and bf16 */
        uint16_t pos = d->dtype.code == PLX_DTYPE_CODE_FLOAT ? 0x3800 : 0x3f00;
        uint16_t neg = d->dtype.code == PLX_DTYPE_CODE_FLOAT ? 0xb400 : 0xbe80;
        for (int64_t i = 0; i < n; i++)
            u[i] = (i & 1) ? neg : pos;
    } else if (d->dtype.code == PLX_DTYPE_CODE_FLOAT && d->dtype.bits == 64) {
        double *f = data;
        for (int64_t i = 0; i < n; i++) {
            s = s * 1664525u + 1013904223u;
            f[i] = (double)(s >> 8) / 8388608.0 - 1.0;
        }
    }
}

static size_t desc_size(const plx_tensor_desc *d)
{
    return (size_t)plx_desc_numel(d) * plx_dtype_size(d->dtype);
}

/* One candidate being timed: its scratch tensors and its runs so far. */
typedef struct probe {
    const backend_record *b;
    int32_t dev;
    bool host, sync, done;
    plx_tensor_desc *descs;
    void **host_bufs, **dev_bufs;
    double times[MEASURE_MAX_RUNS];
    int runs;
    double spent;
    double result; /* ns; -1 failed (why), -2 not timed */
    char why[256];
} probe;

static void probe_release(probe *p, int32_t n)
{
    for (int32_t i = 0; i < n && p->dev_bufs != NULL; i++)
        if (p->dev_bufs[i] != NULL)
            p->b->api.buffer_free(p->b->state, p->dev, p->dev_bufs[i]);
    for (int32_t i = 0; i < n && p->host_bufs != NULL; i++)
        free(p->host_bufs[i]);
    free(p->descs);
    free(p->host_bufs);
    free(p->dev_bufs);
    p->descs = NULL;
    p->host_bufs = p->dev_bufs = NULL;
}

/* Scratch tensors for the call on the probe's device. false (with why and
 * result set) when they cannot be made. */
static bool probe_prepare(plx_context *ctx, probe *p, const plx_op_call *call)
{
    int32_t n = call->n_inputs + call->n_outputs;
    const plx_device_info *di = &p->b->devices[p->dev];
    thread_state *ts = thread_state_get(ctx);
    p->host = (di->caps & PLX_DEVICE_CAP_HOST_MEMORY) != 0;
    p->sync = p->b->api.synchronize != NULL && (!p->host || (di->caps & PLX_DEVICE_CAP_ASYNC));
    p->result = -1.0;
    p->descs = calloc((size_t)n + 1, sizeof *p->descs);
    p->host_bufs = calloc((size_t)n + 1, sizeof *p->host_bufs);
    p->dev_bufs = calloc((size_t)n + 1, sizeof *p->dev_bufs);
    if (p->descs == NULL || p->host_bufs == NULL || p->dev_bufs == NULL) {
        snprintf(p->why, sizeof p->why, "out of memory");
        return false;
    }
    plx_status st = PLX_OK;
    for (int32_t i = 0; i < n && st == PLX_OK; i++) {
        const plx_tensor_desc *src = i < call->n_inputs ? &call->inputs[i] : &call->outputs[i - call->n_inputs];
        size_t bytes = desc_size(src);
        size_t alloc = (bytes + 63) / 64 * 64;
        p->descs[i] = *src;
        p->descs[i].strides = NULL;
        p->descs[i].byte_offset = 0;
        p->host_bufs[i] = aligned_alloc(64, alloc ? alloc : 64);
        if (p->host_bufs[i] == NULL) {
            snprintf(p->why, sizeof p->why, "out of memory for scratch tensors");
            return false;
        }
        if (i < call->n_inputs)
            fill_scratch(p->host_bufs[i], src, bytes);
        else
            memset(p->host_bufs[i], 0, bytes);
        p->descs[i].data = p->host_bufs[i];
        p->descs[i].device = (plx_dl_device){PLX_DL_CPU, 0};
        if (!p->host) {
            plx_tensor_desc h = p->descs[i];
            st = p->b->api.buffer_alloc(p->b->state, p->dev, bytes ? bytes : 1, &p->dev_bufs[i]);
            if (st == PLX_OK) {
                p->descs[i].data = p->dev_bufs[i];
                p->descs[i].device = di->dl_device;
                if (i < call->n_inputs && bytes)
                    st = p->b->api.copy(p->b->state, p->dev, &h, &p->descs[i]);
            }
            if (st != PLX_OK) {
                snprintf(p->why, sizeof p->why, "could not place scratch tensors on the device: %.200s",
                         ts != NULL && ts->error[0] ? ts->error : plx_status_text(st));
                return false;
            }
        }
    }
    return true;
}

/* One run of the probe's kernel; false (why set) if it failed. */
static bool probe_run(plx_context *ctx, probe *p, const plx_op_call *call, bool timed)
{
    thread_state *ts = thread_state_get(ctx);
    plx_op_call c = *call;
    c.inputs = p->descs;
    c.outputs = p->descs + call->n_inputs;
    if (ts != NULL)
        ts->error[0] = '\0';
    double t0 = now_ns();
    plx_status st = p->b->api.run(p->b->state, p->dev, &c);
    if (st == PLX_OK && p->sync)
        st = p->b->api.synchronize(p->b->state, p->dev);
    double dt = now_ns() - t0;
    if (st != PLX_OK) {
        snprintf(p->why, sizeof p->why, "failed when timed: %.200s",
                 ts != NULL && ts->error[0] ? ts->error : plx_status_text(st));
        p->result = -1.0;
        p->done = true;
        return false;
    }
    if (timed) {
        p->times[p->runs++] = dt;
        p->spent += dt;
        if ((p->runs >= MEASURE_MIN_RUNS && p->spent >= MEASURE_MIN_NS) || p->spent >= MEASURE_MAX_NS ||
            p->runs == MEASURE_MAX_RUNS)
            p->done = true;
    }
    return true;
}

/* Times the call on every probe, round-robin: a warm-up round (first runs
 * build primitives and caches), then rounds of one run each until every
 * probe has enough. Interleaving matters: a backend's thread pool can keep
 * the cores busy for a while after its calls (spinning workers), and timing
 * one candidate right after another's whole series would charge it for
 * that. Each probe keeps its fastest run: interference from other
 * processes only ever slows a run down, so on a shared machine the minimum
 * is the steadiest estimate of what the kernel itself costs. */
static void measure_all(plx_context *ctx, probe *probes, int32_t n_probes, const plx_op_call *call)
{
    int32_t n = call->n_inputs + call->n_outputs;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++)
        total += desc_size(i < call->n_inputs ? &call->inputs[i] : &call->outputs[i - call->n_inputs]);
    for (int32_t k = 0; k < n_probes; k++) {
        probe *p = &probes[k];
        if (total > MEASURE_MAX_BYTES) {
            snprintf(p->why, sizeof p->why, "too large to time (%zu MiB of tensors)", total >> 20);
            p->result = -2.0;
            p->done = true;
        } else if (!probe_prepare(ctx, p, call) || !probe_run(ctx, p, call, false))
            p->done = true;
    }
    for (bool any = true; any;) {
        any = false;
        for (int32_t k = 0; k < n_probes; k++)
            if (!probes[k].done) {
                probe_run(ctx, &probes[k], call, true);
                any = true;
            }
    }
    for (int32_t k = 0; k < n_probes; k++) {
        probe *p = &probes[k];
        if (p->runs > 0 && p->result != -2.0) {
            qsort(p->times, (size_t)p->runs, sizeof p->times[0], cmp_double);
            p->result = p->times[0] > 0.0 ? p->times[0] : 1.0; /* below the clock's resolution: 1 ns */
        }
        probe_release(p, n);
    }
    thread_state *ts = thread_state_get(ctx);
    if (ts != NULL)
        ts->error[0] = '\0';
}

void cost_measure(plx_context *ctx, cost_candidate *cands, int32_t n, const plx_op_call *call, const char *signature)
{
    probe stack[8];
    probe *probes = n <= 8 ? stack : calloc((size_t)n, sizeof *probes);
    if (probes == NULL) {
        for (int32_t k = 0; k < n; k++) {
            cands[k].ns = -2.0;
            snprintf(cands[k].why, sizeof cands[k].why, "out of memory");
        }
        return;
    }
    memset(probes, 0, sizeof(probe) * (size_t)n);
    for (int32_t k = 0; k < n; k++) {
        probes[k].b = cands[k].backend;
        probes[k].dev = cands[k].device;
    }
    measure_all(ctx, probes, n, call);
    for (int32_t k = 0; k < n; k++) {
        const backend_record *b = cands[k].backend;
        double ns = probes[k].result;
        cands[k].ns = ns;
        snprintf(cands[k].why, sizeof cands[k].why, "%s", probes[k].why);
        if (ns == -2.0)
            continue; /* not timed: keep the estimate, remember nothing */
        cost_store(ctx, b, cands[k].device, signature, ns);
        if (ns < 0)
            ctx_log(ctx, PLX_LOG_WARN, "calibration: %s on %s %s %s; it is not used for this call", signature,
                    b->name, b->devices[cands[k].device].name, probes[k].why);
        else
            ctx_log(ctx, PLX_LOG_DEBUG, "calibration: %s on %s %s: %.1f us", signature, b->name,
                    b->devices[cands[k].device].name, ns / 1000.0);
    }
    if (probes != stack)
        free(probes);
}

/* ---- the file ------------------------------------------------------------------ */

static void cpu_identity(char *buf, size_t cap)
{
    snprintf(buf, cap, "unknown");
#if defined(__x86_64__) || defined(__i386__)
    unsigned int regs[12];
    if (__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u) {
        for (unsigned int i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &regs[i * 4], &regs[i * 4 + 1], &regs[i * 4 + 2], &regs[i * 4 + 3]);
        char brand[49];
        memcpy(brand, regs, 48);
        brand[48] = '\0';
        char *s = brand;
        while (*s == ' ')
            s++;
        size_t len = strlen(s);
        while (len > 0 && s[len - 1] == ' ')
            s[--len] = '\0';
        unsigned int a, bx, c, d;
        unsigned int fms = __get_cpuid(1, &a, &bx, &c, &d) ? a : 0;
        snprintf(buf, cap, "%s (cpuid %08x)", s, fms);
    }
#endif
}

/* The path from options and environment; NULL for none. */
static char *resolve_path(const plx_context *ctx)
{
    const char *p = ctx->opts.cost_cache;
    bool use_env = !ctx->opts.ignore_env;
    if (p == NULL && use_env)
        p = getenv("PLEXUS_COST_CACHE");
    if (p != NULL)
        return (p[0] == '\0' || strcmp(p, "none") == 0) ? NULL : strdup(p);
    if (!use_env)
        return NULL;
    char buf[4096];
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int w;
    if (xdg != NULL && xdg[0] == '/')
        w = snprintf(buf, sizeof buf, "%s/plexus/costs.json", xdg);
    else if (home != NULL && home[0] == '/')
        w = snprintf(buf, sizeof buf, "%s/.cache/plexus/costs.json", home);
    else
        return NULL;
    return w > 0 && (size_t)w < sizeof buf ? strdup(buf) : NULL;
}

static const backend_record *loaded_backend(const plx_context *ctx, const char *name)
{
    for (size_t i = 0; i < ctx->n_backends; i++)
        if (strcmp(ctx->backends[i].name, name) == 0)
            return &ctx->backends[i];
    return NULL;
}

static const char *json_string(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || v->valuestring == NULL || v->valuestring[0] == '\0' ||
        strlen(v->valuestring) >= COST_STRING_MAX)
        return NULL;
    return v->valuestring;
}

/* Reads the entries of a parsed file; warns about what it drops. */
static void load_entries(plx_context *ctx, const char *path, const cJSON *entries)
{
    int64_t bad = 0, stale = 0;
    char first_bad[256] = "", first_stale[512] = "";
    int64_t index = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, entries)
    {
        const char *backend = json_string(e, "backend"), *version = json_string(e, "plugin_version"),
                   *device = json_string(e, "device"), *op = json_string(e, "op");
        const cJSON *threads = cJSON_GetObjectItemCaseSensitive(e, "threads");
        const cJSON *ns = cJSON_GetObjectItemCaseSensitive(e, "ns");
        const char *what = !cJSON_IsObject(e)                                           ? "is not an object"
                           : backend == NULL                                            ? "has no valid backend"
                           : version == NULL                                            ? "has no valid plugin_version"
                           : device == NULL                                             ? "has no valid device"
                           : op == NULL                                                 ? "has no valid op"
                           : !cJSON_IsNumber(threads) || threads->valuedouble < 1 ||
                                     threads->valuedouble > 4096 ||
                                     threads->valuedouble != (double)(int32_t)threads->valuedouble
                                                                                        ? "has no valid threads"
                           : !cJSON_IsNumber(ns) || !isfinite(ns->valuedouble) || ns->valuedouble <= 0 ||
                                     ns->valuedouble > 1e13
                                                                                        ? "has no valid ns"
                                                                                        : NULL;
        if (what != NULL) {
            if (bad++ == 0)
                snprintf(first_bad, sizeof first_bad, "entries[%lld] %s", (long long)index, what);
            index++;
            continue;
        }
        const backend_record *b = loaded_backend(ctx, backend);
        if (b != NULL && strcmp(plugin_version_of(ctx, b), version) != 0) {
            if (stale++ == 0)
                snprintf(first_stale, sizeof first_stale,
                         "%s was measured with plugin version %s, the loaded one is %s", backend, version,
                         plugin_version_of(ctx, b));
            index++;
            continue;
        }
        if (!put_locked(ctx, backend, version, device, (int32_t)threads->valuedouble, op, ns->valuedouble, false)) {
            ctx_log(ctx, PLX_LOG_WARN, "calibration cache %s: out of memory; the rest is ignored", path);
            break;
        }
        if (b != NULL)
            ctx->cost_loaded++;
        index++;
    }
    ctx->cost_dropped = bad + stale;
    if (bad)
        ctx_log(ctx, PLX_LOG_WARN, "calibration cache %s: %lld entries with bad values ignored (first: %s)", path,
                (long long)bad, first_bad);
    if (stale)
        ctx_log(ctx, PLX_LOG_WARN,
                "calibration cache %s: %lld entries from another plugin version ignored (%s); "
                "recalibrate with `plexus bench --calibrate`",
                path, (long long)stale, first_stale);
}

plx_status cost_cache_open(plx_context *ctx)
{
    ctx->calibrate = ctx->opts.calibrate != 0;
    if (!ctx->calibrate && !ctx->opts.ignore_env) {
        const char *c = getenv("PLEXUS_CALIBRATE");
        if (c != NULL && c[0] != '\0') {
            if (strcmp(c, "1") != 0 && strcmp(c, "0") != 0)
                return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "PLEXUS_CALIBRATE='%s' must be 0 or 1", c);
            ctx->calibrate = c[0] == '1';
        }
    }
    cpu_identity(ctx->cost_cpu, sizeof ctx->cost_cpu);
    ctx->cost_path = resolve_path(ctx);
    if (ctx->cost_path == NULL)
        return PLX_OK;
    const char *path = ctx->cost_path;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT)
            ctx_log(ctx, PLX_LOG_WARN, "calibration cache %s: %s; ignored", path, strerror(errno));
        return PLX_OK;
    }
    unsigned char *text = NULL;
    size_t len = 0;
    data_error err;
    if (data_read_file(path, COST_FILE_MAX, &text, &len, &err) != PLX_OK) {
        ctx_log(ctx, PLX_LOG_WARN, "calibration cache %s ignored: %s", path, err.message);
        return PLX_OK;
    }
    cJSON *root = cJSON_ParseWithLength((const char *)text, len);
    free(text);
    const char *problem = NULL;
    char buf[640];
    const cJSON *fmt = NULL, *ver = NULL, *cpu = NULL, *entries = NULL;
    if (root == NULL)
        problem = "it is not valid JSON (corrupt or truncated)";
    else {
        fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
        ver = cJSON_GetObjectItemCaseSensitive(root, "version");
        cpu = cJSON_GetObjectItemCaseSensitive(root, "cpu");
        entries = cJSON_GetObjectItemCaseSensitive(root, "entries");
        if (!cJSON_IsObject(root) || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, COST_FORMAT) != 0)
            problem = "it is not a Plexus calibration cache (no \"format\": \"" COST_FORMAT "\")";
        else if (!cJSON_IsNumber(ver) || ver->valuedouble != COST_VERSION)
            problem = "it has another format version (this runtime reads version 1)";
        else if (!cJSON_IsString(cpu))
            problem = "it does not say which CPU it was measured on";
        else if (strcmp(cpu->valuestring, ctx->cost_cpu) != 0) {
            snprintf(buf, sizeof buf, "it was measured on another CPU (%.200s; this one is %.200s)", cpu->valuestring,
                     ctx->cost_cpu);
            problem = buf;
        } else if (!cJSON_IsArray(entries))
            problem = "\"entries\" is not an array";
    }
    if (problem != NULL)
        ctx_log(ctx, PLX_LOG_WARN, "calibration cache %s ignored: %s; it will be rebuilt by the next calibration",
                path, problem);
    else {
        pthread_mutex_lock(&ctx->cost_lock);
        load_entries(ctx, path, entries);
        pthread_mutex_unlock(&ctx->cost_lock);
    }
    cJSON_Delete(root);
    return PLX_OK;
}

/* mkdir -p of the file's directory. */
static plx_status make_parent_dirs(const plx_context *ctx, const char *path)
{
    char dir[4096];
    int w = snprintf(dir, sizeof dir, "%s", path);
    if (w < 0 || (size_t)w >= sizeof dir)
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "calibration cache path is too long");
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return PLX_OK;
    *slash = '\0';
    for (char *p = dir + 1; ; p++) {
        bool end = *p == '\0';
        if (*p == '/' || end) {
            char keep = *p;
            *p = '\0';
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                return ctx_fail(ctx, PLX_IO_ERROR, "calibration cache %s: cannot create directory %s: %s", path,
                                dir, strerror(errno));
            *p = keep;
        }
        if (end)
            break;
    }
    return PLX_OK;
}

PLX_API plx_status plx_cost_cache_save(plx_context *ctx)
{
    if (ctx == NULL)
        return PLX_INVALID_ARGUMENT;
    if (ctx->cost_path == NULL)
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT,
                        "plx_cost_cache_save: this context has no calibration cache file "
                        "(options.cost_cache or PLEXUS_COST_CACHE is \"none\", or no HOME)");
    cJSON *root = cJSON_CreateObject(), *entries = NULL;
    bool ok = root != NULL && cJSON_AddStringToObject(root, "format", COST_FORMAT) != NULL &&
              cJSON_AddNumberToObject(root, "version", COST_VERSION) != NULL &&
              cJSON_AddStringToObject(root, "cpu", ctx->cost_cpu) != NULL &&
              (entries = cJSON_AddArrayToObject(root, "entries")) != NULL;
    pthread_mutex_lock(&ctx->cost_lock);
    for (size_t i = 0; i < ctx->cost_cap && ok; i++)
        for (const cost_entry *e = ctx->costs[i]; e != NULL && ok; e = e->next) {
            if (!(e->ns > 0))
                continue; /* failures are not remembered across runs */
            cJSON *o = cJSON_CreateObject();
            ok = o != NULL && cJSON_AddItemToArray(entries, o) && cJSON_AddStringToObject(o, "backend", e->backend) &&
                 cJSON_AddStringToObject(o, "plugin_version", e->version) &&
                 cJSON_AddStringToObject(o, "device", e->device) &&
                 cJSON_AddNumberToObject(o, "threads", e->threads) &&
                 cJSON_AddStringToObject(o, "op", e->signature) && cJSON_AddNumberToObject(o, "ns", e->ns);
        }
    pthread_mutex_unlock(&ctx->cost_lock);
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (text == NULL)
        return ctx_fail(ctx, PLX_OUT_OF_MEMORY, "calibration cache %s: out of memory", ctx->cost_path);
    plx_status st = make_parent_dirs(ctx, ctx->cost_path);
    if (st == PLX_OK) {
        char err[PLX_ERROR_CAP];
        size_t len = strlen(text);
        text[len] = '\n'; /* replaces the terminator: written by length */
        st = atomic_file_write_all(ctx->cost_path, text, len + 1, NULL, err, sizeof err);
        if (st != PLX_OK)
            ctx_fail(ctx, st, "calibration cache: %s", err);
    }
    free(text);
    return st;
}

PLX_API plx_status plx_cost_cache_info_get(const plx_context *ctx, plx_cost_cache_info *info)
{
    if (ctx == NULL || info == NULL || info->struct_size < sizeof(uint32_t))
        return PLX_INVALID_ARGUMENT;
    plx_cost_cache_info v = {.struct_size = (uint32_t)sizeof v};
    pthread_mutex_lock((pthread_mutex_t *)&ctx->cost_lock);
    v.path = ctx->cost_path;
    v.loaded = ctx->cost_loaded;
    v.dropped = ctx->cost_dropped;
    v.measured = ctx->cost_measured;
    v.calibrate = ctx->calibrate;
    pthread_mutex_unlock((pthread_mutex_t *)&ctx->cost_lock);
    size_t n = info->struct_size < sizeof v ? info->struct_size : sizeof v;
    memcpy(info, &v, n);
    info->struct_size = (uint32_t)n;
    return PLX_OK;
}

/* context.c — opening and closing a runtime context: options, environment,
 * thread budget, plugin loading; and the host API table given to plugins. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

PLX_API void plx_context_options_init(plx_context_options *opts)
{
    if (opts == NULL)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = (uint32_t)sizeof *opts;
    opts->log_level = PLX_LOG_WARN;
}

/* Parses an integer environment variable in [lo, hi]; *ok false if malformed. */
static long env_long(const char *name, long lo, long hi, bool *present, bool *ok)
{
    const char *v = getenv(name);
    *present = v != NULL && *v != '\0';
    *ok = true;
    if (!*present)
        return 0;
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi) {
        *ok = false;
        return 0;
    }
    return x;
}

static int parse_log_level(const char *v)
{
    if (v == NULL)
        return -1;
    if (strcmp(v, "debug") == 0)
        return PLX_LOG_DEBUG;
    if (strcmp(v, "info") == 0)
        return PLX_LOG_INFO;
    if (strcmp(v, "warn") == 0 || strcmp(v, "warning") == 0)
        return PLX_LOG_WARN;
    if (strcmp(v, "error") == 0)
        return PLX_LOG_ERROR;
    return -1;
}

/* Splits "a,b,c" into validated backend names. */
static plx_status parse_ranking(plx_context *ctx, const char *spec, const char *source)
{
    ctx->backends_spec = strdup(spec);
    if (ctx->backends_spec == NULL)
        return PLX_OUT_OF_MEMORY;
    size_t cap = 1;
    for (const char *p = spec; *p; p++)
        cap += *p == ',';
    ctx->ranking = calloc(cap, sizeof *ctx->ranking);
    if (ctx->ranking == NULL)
        return PLX_OUT_OF_MEMORY;
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        if (len == 0 || len > 64)
            return open_fail(PLX_INVALID_ARGUMENT, "%s: bad backend list '%s': empty or over-long name", source,
                             spec);
        for (size_t i = 0; i < len; i++)
            if (!(islower((unsigned char)p[i]) || isdigit((unsigned char)p[i]) || p[i] == '_'))
                return open_fail(PLX_INVALID_ARGUMENT,
                                 "%s: bad backend list '%s': names are [a-z0-9_]+, separated by commas", source,
                                 spec);
        char *name = strndup(p, len);
        if (name == NULL)
            return PLX_OUT_OF_MEMORY;
        for (size_t i = 0; i < ctx->n_ranking; i++)
            if (strcmp(ctx->ranking[i], name) == 0) {
                free(name);
                return open_fail(PLX_INVALID_ARGUMENT, "%s: backend '%.*s' is listed twice in '%s'", source,
                                 (int)len, p, spec);
            }
        ctx->ranking[ctx->n_ranking++] = name;
        if (!comma)
            break;
        p = comma + 1;
    }
    return PLX_OK;
}

static plx_status apply_options(plx_context *ctx, const plx_context_options *opts)
{
    plx_context_options_init(&ctx->opts);
    if (opts != NULL) {
        if (opts->struct_size < sizeof(uint32_t) || opts->struct_size > 65536)
            return open_fail(PLX_INVALID_ARGUMENT,
                             "plx_context_open: options struct_size %u is invalid (use plx_context_options_init)",
                             (unsigned)opts->struct_size);
        size_t n = opts->struct_size < sizeof ctx->opts ? opts->struct_size : sizeof ctx->opts;
        memcpy(&ctx->opts, opts, n);
        ctx->opts.struct_size = (uint32_t)sizeof ctx->opts;
    }
    const plx_context_options *o = &ctx->opts;
    if (o->n_plugin_paths > 0 && o->plugin_paths == NULL)
        return open_fail(PLX_INVALID_ARGUMENT, "plx_context_open: n_plugin_paths is %zu but plugin_paths is NULL",
                         o->n_plugin_paths);
    for (size_t i = 0; i < o->n_plugin_paths; i++)
        if (o->plugin_paths[i] == NULL || o->plugin_paths[i][0] == '\0')
            return open_fail(PLX_INVALID_ARGUMENT, "plx_context_open: plugin_paths[%zu] is empty", i);
    if (o->num_threads < 0 || o->num_threads > 4096)
        return open_fail(PLX_INVALID_ARGUMENT, "plx_context_open: num_threads %d out of range [0, 4096]",
                         (int)o->num_threads);
    if (o->log_level < PLX_LOG_DEBUG || o->log_level > PLX_LOG_ERROR + 1)
        return open_fail(PLX_INVALID_ARGUMENT, "plx_context_open: log_level %d out of range", (int)o->log_level);
    ctx->log_level = o->log_level;
    bool use_env = !o->ignore_env;
    bool present, ok;

    if (use_env && getenv("PLEXUS_LOG_LEVEL") != NULL) {
        int lvl = parse_log_level(getenv("PLEXUS_LOG_LEVEL"));
        if (lvl < 0)
            return open_fail(PLX_INVALID_ARGUMENT,
                             "PLEXUS_LOG_LEVEL='%s' is not one of debug, info, warn, error",
                             getenv("PLEXUS_LOG_LEVEL"));
        ctx->log_level = lvl;
    }

    ctx->num_threads = o->num_threads;
    if (ctx->num_threads == 0 && use_env) {
        long t = env_long("PLEXUS_NUM_THREADS", 1, 4096, &present, &ok);
        if (!ok)
            return open_fail(PLX_INVALID_ARGUMENT, "PLEXUS_NUM_THREADS='%s' is not an integer in [1, 4096]",
                             getenv("PLEXUS_NUM_THREADS"));
        if (present)
            ctx->num_threads = (int32_t)t;
    }
    if (ctx->num_threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        ctx->num_threads = cores > 0 ? (int32_t)(cores > 4096 ? 4096 : cores) : 1;
    }

    ctx->strict = o->strict > 0;
    if (o->strict < 0 || (o->strict == 0 && use_env)) {
        long s = env_long("PLEXUS_STRICT", 0, 1, &present, &ok);
        if (!ok)
            return open_fail(PLX_INVALID_ARGUMENT, "PLEXUS_STRICT='%s' must be 0 or 1", getenv("PLEXUS_STRICT"));
        ctx->strict = present && s == 1;
    }

    ctx->fuse = true;
    ctx->backend_layouts = true;
    if (use_env) {
        long f = env_long("PLEXUS_FUSE", 0, 1, &present, &ok);
        if (!ok)
            return open_fail(PLX_INVALID_ARGUMENT, "PLEXUS_FUSE='%s' must be 0 or 1", getenv("PLEXUS_FUSE"));
        if (present)
            ctx->fuse = f == 1;
        f = env_long("PLEXUS_LAYOUTS", 0, 1, &present, &ok);
        if (!ok)
            return open_fail(PLX_INVALID_ARGUMENT, "PLEXUS_LAYOUTS='%s' must be 0 or 1", getenv("PLEXUS_LAYOUTS"));
        if (present)
            ctx->backend_layouts = f == 1;
    }

    ctx->allow_insecure = o->allow_insecure_plugins != 0;
    if (!ctx->allow_insecure && use_env) {
        long a = env_long("PLEXUS_ALLOW_INSECURE_PLUGINS", 0, 1, &present, &ok);
        if (!ok)
            return open_fail(PLX_INVALID_ARGUMENT, "PLEXUS_ALLOW_INSECURE_PLUGINS='%s' must be 0 or 1",
                             getenv("PLEXUS_ALLOW_INSECURE_PLUGINS"));
        ctx->allow_insecure = present && a == 1;
    }

    if (o->backends != NULL)
        return parse_ranking(ctx, o->backends, "options.backends");
    const char *env = use_env ? getenv("PLEXUS_BACKENDS") : NULL;
    if (env != NULL && *env != '\0')
        return parse_ranking(ctx, env, "PLEXUS_BACKENDS");
    return PLX_OK;
}

static void context_free(plx_context *ctx)
{
    loader_unload_all(ctx);
    thread_pool_free(ctx->pool);
    routes_free(ctx);
    pthread_mutex_destroy(&ctx->route_lock);
    cost_cache_free(ctx);
    pthread_mutex_destroy(&ctx->cost_lock);
    for (size_t i = 0; i < ctx->n_custom_ops; i++)
        free(ctx->custom_ops[i]);
    free(ctx->custom_ops);
    for (size_t i = 0; i < ctx->n_ranking; i++)
        free(ctx->ranking[i]);
    free(ctx->ranking);
    free(ctx->backends_spec);
    threads_release(ctx);
    free(ctx);
}

PLX_API plx_status plx_context_open(const plx_context_options *opts, plx_context **out)
{
    if (out == NULL)
        return open_fail(PLX_INVALID_ARGUMENT, "plx_context_open: out is NULL");
    plx_context *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return open_fail(PLX_OUT_OF_MEMORY, "plx_context_open: out of memory");
    threads_init(ctx);
    pthread_mutex_init(&ctx->route_lock, NULL);
    pthread_mutex_init(&ctx->cost_lock, NULL);
    plx_status st = apply_options(ctx, opts);
    if (st != PLX_OK) {
        if (st == PLX_OUT_OF_MEMORY)
            open_fail(st, "plx_context_open: out of memory");
        context_free(ctx);
        return st;
    }
    st = thread_pool_create(ctx->num_threads, &ctx->pool);
    if (st != PLX_OK) {
        open_fail(st, "plx_context_open: cannot start %d threads", (int)ctx->num_threads);
        context_free(ctx);
        return st;
    }
    host_api_init(ctx);
    st = loader_load_all(ctx);
    if (st != PLX_OK) {
        /* loader_load_all wrote the message with ctx_fail; move it to the
         * open error since the caller gets no context. */
        open_fail(st, "%s", plx_last_error(ctx));
        context_free(ctx);
        return st;
    }
    st = cost_cache_open(ctx);
    if (st != PLX_OK) {
        open_fail(st, "%s", plx_last_error(ctx));
        context_free(ctx);
        return st;
    }
    /* Messages from refused plugins are in the plugin list, not an error of
     * this (successful) call. */
    thread_state *ts = thread_state_get(ctx);
    if (ts != NULL)
        ts->error[0] = '\0';
    *out = ctx;
    return PLX_OK;
}

PLX_API void plx_context_close(plx_context *ctx)
{
    if (ctx == NULL)
        return;
    context_free(ctx);
}

PLX_API int32_t plx_context_num_threads(const plx_context *ctx)
{
    return ctx != NULL ? ctx->num_threads : 0;
}

/* ---- The host API table ---------------------------------------------------- */

static void host_log(void *host, int level, const char *plugin, const char *fmt, ...)
{
    plx_context *ctx = host;
    if (level < ctx->log_level)
        return;
    char msg[PLX_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx_log(ctx, level, "%s: %s", plugin != NULL ? plugin : "plugin", msg);
}

static plx_status host_set_error(void *host, plx_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx_failv(host, code, fmt, ap);
    va_end(ap);
    return code;
}

static void host_parallel_for(void *host, int64_t n, int64_t grain, plx_range_fn fn, void *arg)
{
    plx_context *ctx = host;
    thread_pool_run(ctx->pool, n, grain, fn, arg);
}

static int32_t host_num_threads(void *host)
{
    return ((plx_context *)host)->num_threads;
}

static int32_t host_op_intern(void *host, const char *name)
{
    return op_intern(host, name);
}

static const char *host_op_name(void *host, int32_t id)
{
    return op_name_of(host, id);
}

void host_api_init(plx_context *ctx)
{
    plx_host_api *h = &ctx->host_api;
    memset(h, 0, sizeof *h);
    h->struct_size = (uint32_t)sizeof *h;
    h->abi_major = PLX_ABI_MAJOR;
    h->abi_minor = PLX_ABI_MINOR;
    h->host = ctx;
    h->log = host_log;
    h->set_error = host_set_error;
    h->parallel_for = host_parallel_for;
    h->num_threads = host_num_threads;
    h->op_intern = host_op_intern;
    h->op_name = host_op_name;
    host_api_init_layers(h);
}

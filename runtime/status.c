/* status.c — status names and texts, per-thread error messages, logging. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

PLX_API const char *plx_status_name(plx_status status)
{
    switch (status) {
#define PLX_STATUS_NAME_(name, value, text)                                 \
    case PLX_##name:                                                        \
        return "PLX_" #name;
        PLX_STATUS_MAP(PLX_STATUS_NAME_)
#undef PLX_STATUS_NAME_
    default:
        return "PLX_UNKNOWN";
    }
}

PLX_API const char *plx_status_text(plx_status status)
{
    switch (status) {
#define PLX_STATUS_TEXT_(name, value, text)                                 \
    case PLX_##name:                                                        \
        return text;
        PLX_STATUS_MAP(PLX_STATUS_TEXT_)
#undef PLX_STATUS_TEXT_
    default:
        return "unknown status";
    }
}

/* The one piece of thread-local state: why the last plx_context_open on
 * this thread failed (there is no context to hang it on), like errno. */
static _Thread_local char open_error[PLX_ERROR_CAP];

plx_status open_fail(plx_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(open_error, sizeof open_error, fmt, ap);
    va_end(ap);
    return status;
}

static void thread_state_destroy(void *p)
{
    thread_state *ts = p;
    plx_context *ctx = ts->ctx;
    pthread_mutex_lock(&ctx->threads_lock);
    for (thread_state **it = &ctx->threads; *it != NULL; it = &(*it)->next)
        if (*it == ts) {
            *it = ts->next;
            break;
        }
    pthread_mutex_unlock(&ctx->threads_lock);
    free(ts);
}

void threads_init(plx_context *ctx)
{
    pthread_mutex_init(&ctx->threads_lock, NULL);
    pthread_key_create(&ctx->thread_key, thread_state_destroy);
    ctx->threads = NULL;
}

void threads_release(plx_context *ctx)
{
    pthread_key_delete(ctx->thread_key);
    pthread_mutex_lock(&ctx->threads_lock);
    thread_state *ts = ctx->threads;
    ctx->threads = NULL;
    pthread_mutex_unlock(&ctx->threads_lock);
    while (ts != NULL) {
        thread_state *next = ts->next;
        free(ts);
        ts = next;
    }
    pthread_mutex_destroy(&ctx->threads_lock);
}

thread_state *thread_state_get(const plx_context *cctx)
{
    plx_context *ctx = (plx_context *)cctx; /* the per-thread list is not logically part of ctx's value */
    thread_state *ts = pthread_getspecific(ctx->thread_key);
    if (ts != NULL)
        return ts;
    ts = calloc(1, sizeof *ts);
    if (ts == NULL)
        return NULL;
    ts->ctx = ctx;
    ts->last_backend = "";
    pthread_mutex_lock(&ctx->threads_lock);
    ts->next = ctx->threads;
    ctx->threads = ts;
    pthread_mutex_unlock(&ctx->threads_lock);
    pthread_setspecific(ctx->thread_key, ts);
    return ts;
}

plx_status ctx_failv(const plx_context *ctx, plx_status status, const char *fmt, va_list ap)
{
    thread_state *ts = thread_state_get(ctx);
    if (ts != NULL)
        vsnprintf(ts->error, sizeof ts->error, fmt, ap);
    return status;
}

plx_status ctx_fail(const plx_context *ctx, plx_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx_failv(ctx, status, fmt, ap);
    va_end(ap);
    return status;
}

PLX_API const char *plx_last_error(const plx_context *ctx)
{
    if (ctx == NULL)
        return open_error;
    thread_state *ts = thread_state_get(ctx);
    return ts != NULL ? ts->error : "out of memory";
}

PLX_API const char *plx_last_backend(const plx_context *ctx)
{
    if (ctx == NULL)
        return "";
    thread_state *ts = thread_state_get(ctx);
    return ts != NULL ? ts->last_backend : "";
}

static const char *level_name(int level)
{
    switch (level) {
    case PLX_LOG_DEBUG:
        return "debug";
    case PLX_LOG_INFO:
        return "info";
    case PLX_LOG_WARN:
        return "warning";
    default:
        return "error";
    }
}

void ctx_log(const plx_context *ctx, int level, const char *fmt, ...)
{
    if (level < ctx->log_level)
        return;
    char msg[PLX_ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctx->opts.log_fn != NULL)
        ctx->opts.log_fn(ctx->opts.log_user, level, msg);
    else
        fprintf(stderr, "plexus: %s: %s\n", level_name(level), msg);
}

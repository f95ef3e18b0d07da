/*
 * thread_pool.c — the context's worker threads, shared by every backend
 * through the host API's parallel_for, so that the total thread count stays
 * within the context's budget.
 *
 * One job at a time: a caller that finds the pool busy (another application
 * thread, or a nested parallel_for from inside a chunk) runs its loop
 * serially on its own thread instead of waiting. Workers sleep on a
 * condition variable between jobs, so they take no CPU from OpenBLAS or
 * oneDNN threads while those run.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

struct thread_pool {
    int32_t n_workers;
    pthread_t *workers;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_cond_t done;
    pthread_mutex_t submit; /* held by the caller owning the current job */
    uint64_t generation;    /* bumped per job */
    bool stopping;
    /* current job */
    plx_range_fn fn;
    void *arg;
    int64_t n, chunk;
    atomic_int_fast64_t next_chunk;
    int64_t n_chunks;
    int32_t active_workers; /* workers still inside the current job */
};

/* Set while a thread executes pool work, so nested calls go serial. */
static _Thread_local bool inside_pool_work;

static void run_chunks(thread_pool *pool)
{
    for (;;) {
        int64_t c = atomic_fetch_add(&pool->next_chunk, 1);
        if (c >= pool->n_chunks)
            break;
        int64_t begin = c * pool->chunk;
        int64_t end = begin + pool->chunk;
        if (end > pool->n)
            end = pool->n;
        pool->fn(pool->arg, begin, end);
    }
}

static void *worker_main(void *p)
{
    thread_pool *pool = p;
    inside_pool_work = true;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stopping && pool->generation == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stopping)
            break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);
        run_chunks(pool);
        pthread_mutex_lock(&pool->lock);
        if (--pool->active_workers == 0)
            pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

plx_status thread_pool_create(int32_t threads, thread_pool **out)
{
    thread_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return PLX_OUT_OF_MEMORY;
    pool->n_workers = threads > 1 ? threads - 1 : 0;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_mutex_init(&pool->submit, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    if (pool->n_workers > 0) {
        pool->workers = calloc((size_t)pool->n_workers, sizeof *pool->workers);
        if (pool->workers == NULL) {
            thread_pool_free(pool);
            return PLX_OUT_OF_MEMORY;
        }
        for (int32_t i = 0; i < pool->n_workers; i++)
            if (pthread_create(&pool->workers[i], NULL, worker_main, pool) != 0) {
                pool->n_workers = i;
                thread_pool_free(pool);
                return PLX_INTERNAL;
            }
    }
    *out = pool;
    return PLX_OK;
}

void thread_pool_free(thread_pool *pool)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int32_t i = 0; i < pool->n_workers; i++)
        pthread_join(pool->workers[i], NULL);
    free(pool->workers);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->submit);
    free(pool);
}

void thread_pool_run(thread_pool *pool, int64_t n, int64_t grain, plx_range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    if (pool == NULL || pool->n_workers == 0 || n <= grain || inside_pool_work ||
        pthread_mutex_trylock(&pool->submit) != 0) {
        fn(arg, 0, n);
        return;
    }
    int64_t parts = (int64_t)pool->n_workers + 1;
    /* A few chunks per thread balance uneven chunks without much overhead. */
    int64_t chunk = (n + parts * 4 - 1) / (parts * 4);
    if (chunk < grain)
        chunk = grain;
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->n = n;
    pool->chunk = chunk;
    pool->n_chunks = (n + chunk - 1) / chunk;
    atomic_store(&pool->next_chunk, 0);
    pool->active_workers = pool->n_workers;
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    inside_pool_work = true;
    run_chunks(pool);
    inside_pool_work = false;

    pthread_mutex_lock(&pool->lock);
    while (pool->active_workers > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    pthread_mutex_unlock(&pool->submit);
}

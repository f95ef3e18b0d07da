/*
 * onednn_harness.h — shared by the onednn plugin's test files (header-only:
 * each test program links only tests/test_util.c). Contexts ranked
 * "onednn,cpu_blas" and "cpu_blas", random inputs made identically for
 * both, and a comparison of every output (and every input the op updates
 * in place) of the onednn run against cpu_blas's.
 */
#ifndef PLX_TEST_ONEDNN_HARNESS_H
#define PLX_TEST_ONEDNN_HARNESS_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../test_util.h"

#define HARNESS_FN static __attribute__((unused))

/* Under AddressSanitizer the suites run on one thread: GCC 12's
 * LeakSanitizer crashes at exit ("Tracer caught signal 11") reading the
 * dynamic TLS of libgomp's worker threads, which oneDNN starts for calls
 * on two threads. */
#if defined(__SANITIZE_ADDRESS__)
#define SUITE_THREADS 1
#else
#define SUITE_THREADS 2
#endif

#define ONEDNN_SO PLX_TEST_PLUGIN_DIR "/libplexus-onednn.so"

typedef struct contexts {
    plx_context *one; /* "onednn,cpu_blas" */
    plx_context *ref; /* "cpu_blas" */
} contexts;

/* Log lines a context's sink received (WARN and up unless opened lower). */
typedef struct log_capture {
    char text[8192];
    size_t used;
    int lines;
} log_capture;

HARNESS_FN void capture_log(void *user, int level, const char *message)
{
    log_capture *c = user;
    (void)level;
    int w = snprintf(c->text + c->used, sizeof c->text - c->used, "%s\n", message);
    if (w > 0 && c->used + (size_t)w < sizeof c->text)
        c->used += (size_t)w;
    c->lines++;
}

/* Opens a context on the freshly built plugins; strict and log as given. */
HARNESS_FN plx_context *open_with(const char *backends, int32_t strict, log_capture *log)
{
    const char *const paths[] = {PLX_TEST_PLUGIN_DIR};
    plx_context_options o;
    tu_options_init(&o, paths, 1);
    o.backends = backends;
    o.num_threads = SUITE_THREADS;
    o.strict = strict;
    o.cost_cache = "none";
    if (log != NULL) {
        o.log_fn = capture_log;
        o.log_user = log;
    }
    return tu_open_options(&o);
}

HARNESS_FN int harness_setup(void **state)
{
    contexts *c = calloc(1, sizeof *c);
    c->one = open_with("onednn,cpu_blas", 0, NULL);
    c->ref = open_with("cpu_blas", 0, NULL);
    if (!tu_has_backend(c->one, "onednn"))
        fail_msg("the onednn plugin is built but did not load: see plx_plugin_get");
    *state = c;
    return 0;
}

HARNESS_FN int harness_teardown(void **state)
{
    contexts *c = *state;
    plx_context_close(c->one);
    plx_context_close(c->ref);
    free(c);
    return 0;
}

HARNESS_FN void test_onednn_not_built(void **state)
{
    (void)state;
    printf("skipped: %s is not built (opt-in while in progress: make WITH_ONEDNN=1)\n", ONEDNN_SO);
    skip();
}

/* ---- inputs ------------------------------------------------------------------------- */

/* An input: shape, value range, and optionally fixed leading values
 * (boundary cases: zeros, exact clamp bounds) written over the random ones. */
typedef struct in_spec {
    int32_t ndim;
    int64_t d[PLX_MAX_DIMS];
    float lo, hi;
    const float *fixed;
    int n_fixed;
} in_spec;

#define IN(nd, ...)                                                                                                    \
    {                                                                                                                  \
        nd, {__VA_ARGS__}, -1.0f, 1.0f, NULL, 0                                                                        \
    }
#define IN_RANGE(lo_, hi_, nd, ...)                                                                                    \
    {                                                                                                                  \
        nd, {__VA_ARGS__}, lo_, hi_, NULL, 0                                                                           \
    }

HARNESS_FN void fill_values(float *p, int64_t n, const in_spec *s, uint64_t *rng)
{
    for (int64_t k = 0; k < n; k++)
        p[k] = tu_rand_uniform(rng, s->lo, s->hi);
    for (int k = 0; k < s->n_fixed && k < n; k++)
        p[k] = s->fixed[k];
}

/* What one comparison expects. */
typedef struct expect {
    const char *backend; /* that must run the op on the onednn context */
    float atol, rtol;
    uint32_t mutated; /* inputs (bit i) updated in place, compared too */
} expect;

#define EXPECT_ONEDNN                                                                                                  \
    {                                                                                                                  \
        "onednn", 1e-4f, 1e-4f, 0                                                                                      \
    }

/* Runs op on both contexts with the same inputs; checks the backend that
 * ran it on the onednn context and that every output (and mutated input)
 * agrees with cpu_blas's within atol + rtol * |want|. */
HARNESS_FN void compare_op(contexts *c, const char *op, const void *attrs, int n_in, const in_spec *in, int n_out,
                           expect e, const char *what)
{
    plx_tensor *a[6] = {NULL}, *b[6] = {NULL}, *ya[3] = {NULL}, *yb[3] = {NULL};
    uint64_t rng = 42;
    for (int i = 0; i < n_in; i++) {
        a[i] = tu_tensor(c->one, PLX_F32, in[i].ndim, in[i].d);
        b[i] = tu_tensor(c->ref, PLX_F32, in[i].ndim, in[i].d);
        fill_values(tu_f32(a[i]), plx_tensor_numel(a[i]), &in[i], &rng);
        memcpy(tu_f32(b[i]), tu_f32(a[i]), (size_t)plx_tensor_numel(a[i]) * sizeof(float));
    }
    plx_status st = plx_op_run(c->one, op, attrs, a, (size_t)n_in, ya, (size_t)n_out);
    if (st != PLX_OK)
        fail_msg("%s: %s (onednn context) failed: %s", what, op, plx_last_error(c->one));
    if (strcmp(plx_last_backend(c->one), e.backend) != 0)
        fail_msg("%s: %s ran on %s, expected %s", what, op, plx_last_backend(c->one), e.backend);
    tu_run(c->ref, op, attrs, b, (size_t)n_in, yb, (size_t)n_out);
    char label[256];
    for (int i = 0; i < n_out; i++) {
        assert_int_equal(plx_tensor_numel(ya[i]), plx_tensor_numel(yb[i]));
        snprintf(label, sizeof label, "%s: %s output %d", what, op, i);
        tu_assert_close(tu_f32(ya[i]), tu_f32(yb[i]), plx_tensor_numel(yb[i]), e.atol, e.rtol, label);
    }
    for (int i = 0; i < n_in; i++)
        if (e.mutated & (1u << i)) {
            snprintf(label, sizeof label, "%s: %s updated input %d", what, op, i);
            tu_assert_close(tu_f32(a[i]), tu_f32(b[i]), plx_tensor_numel(b[i]), e.atol, e.rtol, label);
        }
    for (int i = 0; i < n_in; i++) {
        plx_tensor_free(a[i]);
        plx_tensor_free(b[i]);
    }
    for (int i = 0; i < n_out; i++) {
        plx_tensor_free(ya[i]);
        plx_tensor_free(yb[i]);
    }
}

/* plx_op_explain on zero tensors of dtype; fails unless it returns want. */
HARNESS_FN void explain(plx_context *ctx, const char *op, const void *attrs, int n_in, const in_spec *in,
                        plx_dtype dtype, plx_status want, char *buf, size_t cap)
{
    plx_tensor *t[6] = {NULL};
    for (int i = 0; i < n_in; i++)
        t[i] = tu_tensor(ctx, dtype, in[i].ndim, in[i].d);
    plx_status st = plx_op_explain(ctx, op, attrs, t, (size_t)n_in, buf, cap);
    for (int i = 0; i < n_in; i++)
        plx_tensor_free(t[i]);
    if (st != want)
        fail_msg("plx_op_explain(%s) returned %d, want %d:\n%s", op, (int)st, (int)want, buf);
}

/* The call is declined by onednn with a reason containing `needle`, and
 * runs on cpu_blas with cpu_blas's results. */
HARNESS_FN void expect_declined(contexts *c, const char *op, const void *attrs, int n_in, const in_spec *in, int n_out,
                                const char *needle, const char *what)
{
    char buf[4096];
    explain(c->one, op, attrs, n_in, in, PLX_F32, PLX_OK, buf, sizeof buf);
    if (strstr(buf, "onednn") == NULL || strstr(buf, "declines") == NULL || strstr(buf, needle) == NULL ||
        strstr(buf, "-> cpu_blas") == NULL)
        fail_msg("%s: onednn should decline %s saying \"%s\":\n%s", what, op, needle, buf);
    expect e = {"cpu_blas", 0.0f, 0.0f, 0};
    compare_op(c, op, attrs, n_in, in, n_out, e, what);
}

#endif

/*
 * test_util.h — shared helpers for the cmocka suites: open a context on the
 * freshly built plugins, make random tensors, compare results, and check
 * gradients by central finite differences.
 */
#ifndef PLX_TEST_UTIL_H
#define PLX_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../abi/plexus.h"

/* Opens a context that loads only build/plugins (no env, no default dirs);
 * fails the test on error. */
plx_context *tu_open(void);
/* Same, restricted/ranked to the given backends ("cpu_blas"). */
plx_context *tu_open_backends(const char *backends);

/* Options for a context that loads only the n_paths plugin files or
 * directories in paths: ignore_env and no_default_dirs set, everything else
 * as plx_context_options_init leaves it. paths is borrowed; it must live
 * until plx_context_open returns. */
void tu_options_init(plx_context_options *opts, const char *const *paths, size_t n_paths);
/* plx_context_open(opts); fails the test, naming the status and
 * plx_last_error, unless it succeeds. */
plx_context *tu_open_options(const plx_context_options *opts);
/* A context on the given plugin paths only (tu_options_init), two threads,
 * restricted/ranked to backends (NULL: every backend loaded). */
plx_context *tu_open_paths(const char *const *paths, size_t n_paths, const char *backends);
/* Whether ctx loaded a backend called name. */
bool tu_has_backend(const plx_context *ctx, const char *name);

/* Deterministic RNG for test data (splitmix64). */
uint64_t tu_rng_next(uint64_t *state);
float tu_rand_uniform(uint64_t *state, float lo, float hi);
int64_t tu_rand_int(uint64_t *state, int64_t lo, int64_t hi_inclusive);

/* New zero-filled tensor; fails the test on error. */
plx_tensor *tu_tensor(plx_context *ctx, plx_dtype dtype, int32_t ndim, const int64_t *shape);
/* New f32 tensor uniform in [lo, hi). */
plx_tensor *tu_uniform(plx_context *ctx, uint64_t *rng, int32_t ndim, const int64_t *shape, float lo,
                       float hi);
/* New f32 tensor from values (copied). */
plx_tensor *tu_from_f32(plx_context *ctx, int32_t ndim, const int64_t *shape, const float *values);
/* New i64 tensor from values (copied). */
plx_tensor *tu_from_i64(plx_context *ctx, int32_t ndim, const int64_t *shape, const int64_t *values);
float *tu_f32(const plx_tensor *t);

/* Runs an op and fails the test (printing plx_last_error) unless PLX_OK. */
void tu_run(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *inputs, size_t n_in,
            plx_tensor **outputs, size_t n_out);

/* Runs op (n_out runtime-made outputs, freed) and fails the test unless it
 * returns `want` with a message naming the op and containing every needle. */
void tu_expect_failure(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *in, size_t n_in,
                       size_t n_out, plx_status want, const char *const *needles, size_t n_needles);
/* The same for an op with one output. */
void tu_expect_failure1(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *in, size_t n_in,
                        plx_status want, const char *const *needles, size_t n_needles);

/* Fails the test at the first i with |got - want| > atol + rtol * |want|
 * (NaNs must match), printing what, i, got and want. */
void tu_assert_close(const float *got, const float *want, int64_t n, float atol, float rtol, const char *what);

/* Checks an analytic gradient by central differences. The scalar probed is
 * L = sum_i out[i] * dy[i], where out is output `out_index` of `op` run on
 * `inputs` (n_out outputs, all created by the runtime). analytic[k] must be
 * dL/d inputs[wrt][k]. Up to `max_points` elements are probed (spread over
 * the tensor). eps is the step; passes when |fd - an| <= tol * max(1, |fd|). */
void tu_check_fd(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *inputs, size_t n_in,
                 size_t n_out, size_t out_index, const float *dy, size_t wrt, const float *analytic,
                 int max_points, float eps, float tol);

/* Temporary directories for tests that write files. tu_make_temp_dir
 * creates a fresh directory named `prefix` + six random characters (via
 * mkdtemp) and writes its path into dir; 0, or -1 when it cannot (path too
 * long for cap included). tu_remove_dir unlinks the entries of a flat
 * directory (no recursion) and removes it; rmdir's result. */
int tu_make_temp_dir(char *dir, size_t cap, const char *prefix);
int tu_remove_dir(const char *dir);
/* Entries of dir besides . and ..; fails the test if it cannot be read. */
int tu_count_entries(const char *dir);

/* Reads a small binary fixture tests/fixtures/<name> written by the
 * generator scripts (raw little-endian f32); returns malloc'd data and sets
 * *count (elements). Fails the test if missing. */
float *tu_fixture_f32(const char *name, size_t *count);

#endif

/*
 * bench_core — the runtime's foundation numbers (BENCHMARKS.md):
 *   1. eager dispatch overhead per op: core.add on 4-element tensors with a
 *      cached routing decision, caller-made output;
 *   2. f32 matmul 1024^3 through plx_op_run vs cblas_sgemm called directly
 *      (same threads, interleaved, best of N);
 *   3. conv2d forward N=64 C=32 28x28 K=64 5x5 pad 2, GFLOP/s.
 * Usage: bench_core [--json] [--reps N]. Plugins come from the directory
 * next to libplexus.so (build/plugins) unless PLEXUS_PLUGIN_PATH says more.
 *
 * OpenBLAS is opened only after the runtime (not linked), so the direct
 * sgemm uses the very library and kernels cpu_blas uses.
 */
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../abi/plexus.h"

typedef void (*sgemm_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const enum CBLAS_TRANSPOSE,
                         const blasint, const blasint, const blasint, const float, const float *, const blasint,
                         const float *, const blasint, const float, float *, const blasint);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void check(plx_context *ctx, plx_status st, const char *what)
{
    if (st != PLX_OK) {
        fprintf(stderr, "bench_core: %s: %s: %s\n", what, plx_status_name(st), plx_last_error(ctx));
        exit(1);
    }
}

static plx_tensor *filled(plx_context *ctx, int32_t ndim, const int64_t *shape, unsigned seed)
{
    plx_tensor *t = NULL;
    check(ctx, plx_tensor_create(ctx, PLX_F32, ndim, shape, &t), "create");
    float *p = plx_tensor_data(t);
    int64_t n = plx_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return t;
}

int main(int argc, char **argv)
{
    int json = 0, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_core [--json] [--reps N]\n");
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;
    plx_context *ctx = NULL;
    if (plx_context_open(NULL, &ctx) != PLX_OK) {
        fprintf(stderr, "bench_core: %s\n", plx_last_error(NULL));
        return 1;
    }
    int threads = plx_context_num_threads(ctx);
    void *blas = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    sgemm_fn sgemm = NULL;
    if (blas != NULL) {
        void *sym = dlsym(blas, "cblas_sgemm");
        memcpy(&sgemm, &sym, sizeof sgemm);
    }
    if (sgemm == NULL) {
        fprintf(stderr, "bench_core: cannot load cblas_sgemm from libopenblas.so.0: %s\n", dlerror());
        return 1;
    }
    const char *(*corename)(void) = NULL;
    void *cn = dlsym(blas, "openblas_get_corename");
    memcpy(&corename, &cn, sizeof corename);

    /* 1. dispatch overhead */
    int64_t small[1] = {4};
    plx_tensor *a = filled(ctx, 1, small, 1), *b = filled(ctx, 1, small, 2), *y = filled(ctx, 1, small, 3);
    plx_tensor *ab[2] = {a, b};
    int32_t add_id;
    check(ctx, plx_op_find(ctx, "core.add", &add_id), "find core.add");
    for (int i = 0; i < 1000; i++)
        check(ctx, plx_op_run_id(ctx, add_id, NULL, ab, 2, &y, 1), "add");
    const int calls = 1000000;
    double best_ns = 1e30, best_named_ns = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        for (int i = 0; i < calls; i++)
            plx_op_run_id(ctx, add_id, NULL, ab, 2, &y, 1);
        double ns = (now_s() - t0) * 1e9 / calls;
        if (ns < best_ns)
            best_ns = ns;
        t0 = now_s();
        for (int i = 0; i < calls; i++)
            plx_op_run(ctx, "core.add", NULL, ab, 2, &y, 1);
        ns = (now_s() - t0) * 1e9 / calls;
        if (ns < best_named_ns)
            best_named_ns = ns;
    }

    /* 2. matmul 1024^3 vs cblas_sgemm */
    const int64_t n = 1024;
    int64_t sq[2] = {n, n};
    plx_tensor *ma = filled(ctx, 2, sq, 4), *mb = filled(ctx, 2, sq, 5), *mc = filled(ctx, 2, sq, 6);
    float *direct = malloc(sizeof(float) * (size_t)(n * n));
    plx_tensor *mab[2] = {ma, mb};
    check(ctx, plx_op_run(ctx, "core.matmul", NULL, mab, 2, &mc, 1), "matmul warm-up");
    sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, plx_tensor_data(ma),
                (int)n, plx_tensor_data(mb), (int)n, 0.0f, direct, (int)n);
    double best_rt = 1e30, best_blas = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        check(ctx, plx_op_run(ctx, "core.matmul", NULL, mab, 2, &mc, 1), "matmul");
        double t = now_s() - t0;
        if (t < best_rt)
            best_rt = t;
        t0 = now_s();
        sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, plx_tensor_data(ma),
                    (int)n, plx_tensor_data(mb), (int)n, 0.0f, direct, (int)n);
        t = now_s() - t0;
        if (t < best_blas)
            best_blas = t;
    }
    float maxdiff = 0;
    const float *rc = plx_tensor_data(mc);
    for (int64_t i = 0; i < n * n; i++) {
        float d = rc[i] - direct[i];
        if (d < 0)
            d = -d;
        if (d > maxdiff)
            maxdiff = d;
    }
    double mm_flops = 2.0 * (double)n * (double)n * (double)n;

    /* 3. conv2d */
    int64_t xs[4] = {64, 32, 28, 28}, ws[4] = {64, 32, 5, 5};
    plx_tensor *cx = filled(ctx, 4, xs, 7), *cw = filled(ctx, 4, ws, 8), *cy = NULL;
    plx_conv2d_attrs conv = PLX_CONV2D_ATTRS_DEFAULT;
    conv.padding[0] = conv.padding[1] = 2;
    plx_tensor *cxw[2] = {cx, cw};
    check(ctx, plx_op_run(ctx, "core.conv2d", &conv, cxw, 2, &cy, 1), "conv2d warm-up");
    double best_conv = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        check(ctx, plx_op_run(ctx, "core.conv2d", &conv, cxw, 2, &cy, 1), "conv2d");
        double t = now_s() - t0;
        if (t < best_conv)
            best_conv = t;
    }
    double conv_flops = 2.0 * 64 * 64 * 32 * 25 * 28 * 28;

    double rt_gflops = mm_flops / best_rt * 1e-9, blas_gflops = mm_flops / best_blas * 1e-9;
    double conv_gflops = conv_flops / best_conv * 1e-9;
    if (json)
        printf("{\"threads\": %d, \"dispatch_ns\": %.1f, \"dispatch_by_name_ns\": %.1f, "
               "\"matmul_1024_ms\": %.3f, \"sgemm_1024_ms\": %.3f, \"matmul_vs_sgemm\": %.4f, "
               "\"matmul_gflops\": %.2f, \"matmul_max_abs_diff\": %g, \"conv2d_ms\": %.3f, "
               "\"conv2d_gflops\": %.2f, \"conv_vs_matmul\": %.4f}\n",
               threads, best_ns, best_named_ns, best_rt * 1e3, best_blas * 1e3, best_blas / best_rt, rt_gflops,
               (double)maxdiff, best_conv * 1e3, conv_gflops, conv_gflops / rt_gflops);
    else {
        printf("| benchmark | result |\n|---|---|\n");
        printf("| threads | %d |\n", threads);
        printf("| OpenBLAS kernels | %s |\n", corename ? corename() : "?");
        printf("| eager dispatch, core.add f32[4], cached route (op id) | %.1f ns/op |\n", best_ns);
        printf("| eager dispatch, same, looked up by name | %.1f ns/op |\n", best_named_ns);
        printf("| matmul 1024^3 via plx_op_run | %.3f ms (%.1f GFLOP/s) |\n", best_rt * 1e3, rt_gflops);
        printf("| cblas_sgemm 1024^3 direct | %.3f ms (%.1f GFLOP/s) |\n", best_blas * 1e3, blas_gflops);
        printf("| runtime / direct throughput | %.1f%% (max abs diff %g) |\n", 100.0 * best_blas / best_rt,
               (double)maxdiff);
        printf("| conv2d N64 C32 28x28 K64 5x5 pad2 | %.3f ms (%.1f GFLOP/s, %.0f%% of matmul's) |\n",
               best_conv * 1e3, conv_gflops, 100.0 * conv_gflops / rt_gflops);
    }
    free(direct);
    dlclose(blas);
    plx_tensor *all[] = {a, b, y, ma, mb, mc, cx, cw, cy};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        plx_tensor_free(all[i]);
    plx_context_close(ctx);
    return 0;
}

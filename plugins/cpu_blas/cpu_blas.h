/*
 * cpu_blas.h — internal to the cpu_blas plugin: the kernel table each op
 * family file contributes, and small helpers shared by the kernels.
 *
 * cpu_blas is the reference backend: it implements every core op in f32 on
 * host memory (plus the integer/bool dtypes the catalog names for indices,
 * comparisons and data movement). Kernels receive calls the runtime already
 * validated (plexus_ops.h semantics): shapes agree, inputs and outputs are
 * compact row-major, attrs is the full current struct.
 */
#ifndef PLX_CPU_BLAS_H
#define PLX_CPU_BLAS_H

#include <stdbool.h>
#include <stdint.h> /* glibc: defines __GLIBC__ for CPU_MULTIVERSION */

#include "../../abi/plexus_plugin.h"

typedef struct cpu_state {
    const plx_host_api *host;
    int32_t threads;
} cpu_state;

typedef plx_status (*cpu_kernel_fn)(cpu_state *st, const plx_op_call *call);
/* Extra support check beyond the default (every float tensor is f32); NULL:
 * default only. Returns true if supported, else writes a reason. */
typedef bool (*cpu_support_fn)(const plx_op_call *call, char *reason, size_t cap);

typedef struct cpu_kernel {
    int32_t op_id;
    cpu_kernel_fn run;
    cpu_support_fn supports;
} cpu_kernel;

/* One table per op family file, gathered by cpu_blas.c. */
#define CPU_DECLARE_FAMILY(family)                                          \
    extern const cpu_kernel cpu_kernels_##family[];                         \
    extern const size_t cpu_kernels_##family##_count
CPU_DECLARE_FAMILY(elementwise);
CPU_DECLARE_FAMILY(reduce);
CPU_DECLARE_FAMILY(matmul);
CPU_DECLARE_FAMILY(conv);
CPU_DECLARE_FAMILY(pool);
CPU_DECLARE_FAMILY(norm);
CPU_DECLARE_FAMILY(softmax);
CPU_DECLARE_FAMILY(loss);
CPU_DECLARE_FAMILY(random);
CPU_DECLARE_FAMILY(embedding);
CPU_DECLARE_FAMILY(layout);
CPU_DECLARE_FAMILY(optim);

#define CPU_FAMILY_TABLE(family, ...)                                       \
    const cpu_kernel cpu_kernels_##family[] = {__VA_ARGS__};                \
    const size_t cpu_kernels_##family##_count =                             \
        sizeof(cpu_kernels_##family) / sizeof(cpu_kernels_##family[0])

/* f32 view of a descriptor's first element. */
static inline float *cpu_f32(const plx_tensor_desc *t)
{
    return (float *)plx_desc_ptr(t);
}

/* Runs fn over [0, n) on the context's pool; serial below `grain` items. */
static inline void cpu_parallel_for(const cpu_state *st, int64_t n, int64_t grain,
                                    plx_range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (n <= grain || st->threads <= 1) {
        fn(arg, 0, n);
        return;
    }
    st->host->parallel_for(st->host->host, n, grain, fn, arg);
}

/* Marks a hot loop function for run-time CPU dispatch: gcc compiles it
 * once per target below and an ifunc resolver (glibc) picks the best one
 * the CPU has when the plugin is loaded. The build has no -march (machines
 * differ), so without this every loop would stay at the SSE2 baseline.
 * Each clone does the same IEEE operations in the same order (no FMA
 * contraction: -std=c11, and the optimize pragma of each file using this
 * says fp-contract=off too), so results do not depend on the CPU.
 * Helpers a clone calls inside its loops must be static inline, so that
 * each clone gets its own copy: calling baseline (SSE) code from an AVX
 * clone made one reduction ten times slower (dirty upper vector state).
 * Loops over short rows can lose with wide vectors (see pool.c), so mark
 * only what measures faster. -DPLX_CPU_NO_MULTIVERSION builds the baseline
 * code only. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) && \
    !defined(PLX_CPU_NO_MULTIVERSION)
#define CPU_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CPU_MULTIVERSION
#endif

/* Reports an error through the host and returns `code`. */
#define CPU_FAIL(st, code, ...) ((st)->host->set_error((st)->host->host, (code), __VA_ARGS__))

#endif

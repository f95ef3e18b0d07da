/*
 * cpu_tune.c — choosing OpenBLAS's kernel family before any plugin loads it.
 *
 * OpenBLAS picks its kernels once, when the library is loaded, from the CPU
 * model it recognizes. Debian 12's OpenBLAS 0.3.21 does not know CPUs newer
 * than it (seen here: an Emerald Rapids Xeon) and falls back to its generic
 * "Prescott" kernels, 5-6x slower at SGEMM than the AVX-512 ones the CPU can
 * run. OPENBLAS_CORETYPE overrides the choice, and must be set before the
 * library loads — i.e. before the first plugin linked against it is opened.
 * So, once per process, when the user has not set it, the runtime sets it to
 * the family the CPU's features support (by cpuid, never by model number).
 * PLEXUS_OPENBLAS_CORETYPE=keep leaves OpenBLAS's own detection alone.
 *
 * OpenMP waiting, for the same reason of timing: libgomp (under oneDNN)
 * reads OMP_WAIT_POLICY when it is loaded. Its default lets a team's idle
 * workers spin for a while after every parallel region, which is fine when
 * OpenMP owns the machine, but here the next op often runs on the runtime's
 * own thread pool (cpu_blas), whose workers then share the cores with
 * spinning OpenMP threads: measured on the 2-core machine, cpu_blas kernels
 * right after oneDNN ones ran several times slower. So, unless the user set
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT, it is set to "passive" (idle OpenMP
 * threads sleep at once) before plugins load, as the PyTorch peer benchmark
 * runs too. It has no effect if the host process loaded libgomp already.
 * OpenBLAS's own workers (cpu_blas's GEMMs) likewise keep yielding in a loop
 * for 2^28 cycles (~0.1 s) after each call; OPENBLAS_THREAD_TIMEOUT=4 (2^4
 * cycles, the smallest it takes) puts them to sleep at once, unless the user
 * set it (or GOTO_THREAD_TIMEOUT). Measured on the ResNet example, a
 * oneDNN convolution timed right after cpu_blas GEMMs ran slower until it
 * was set.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *chosen = NULL;
static pthread_once_t tune_once = PTHREAD_ONCE_INIT;

static void choose_coretype(void)
{
    const char *keep = getenv("PLEXUS_OPENBLAS_CORETYPE");
    if (getenv("OMP_WAIT_POLICY") == NULL && getenv("GOMP_SPINCOUNT") == NULL)
        setenv("OMP_WAIT_POLICY", "passive", 0);
    if (getenv("OPENBLAS_THREAD_TIMEOUT") == NULL && getenv("GOTO_THREAD_TIMEOUT") == NULL)
        setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
    if (getenv("OPENBLAS_CORETYPE") != NULL || (keep != NULL && strcmp(keep, "keep") == 0))
        return;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        chosen = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        chosen = "Haswell";
    if (chosen != NULL)
        setenv("OPENBLAS_CORETYPE", chosen, 0);
#endif
}

void cpu_tune_blas(const plx_context *ctx)
{
    pthread_once(&tune_once, choose_coretype);
    if (chosen != NULL)
        ctx_log(ctx, PLX_LOG_DEBUG, "OPENBLAS_CORETYPE=%s chosen from the CPU's features", chosen);
}

/* cpu_blas kernels of the pool family. */
#include "cpu_blas.h"

const cpu_kernel cpu_kernels_pool[] = {{0}};
const size_t cpu_kernels_pool_count = 0;

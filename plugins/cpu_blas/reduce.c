/* cpu_blas kernels of the reduce family. */
#include "cpu_blas.h"

const cpu_kernel cpu_kernels_reduce[] = {{0}};
const size_t cpu_kernels_reduce_count = 0;

/* cpu_blas kernels of the random family. */
#include "cpu_blas.h"

const cpu_kernel cpu_kernels_random[] = {{0}};
const size_t cpu_kernels_random_count = 0;

/* cpu_blas kernels of the matmul family. */
#include "cpu_blas.h"

const cpu_kernel cpu_kernels_matmul[] = {{0}};
const size_t cpu_kernels_matmul_count = 0;

/* cpu_blas kernels of the norm family. */
#include "cpu_blas.h"

const cpu_kernel cpu_kernels_norm[] = {{0}};
const size_t cpu_kernels_norm_count = 0;

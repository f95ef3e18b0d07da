/* cpu_blas kernels of the optim family. */
#include "cpu_blas.h"

const cpu_kernel cpu_kernels_optim[] = {{0}};
const size_t cpu_kernels_optim_count = 0;

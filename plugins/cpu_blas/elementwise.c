/* cpu_blas kernels of the elementwise family. */
#include "cpu_blas.h"

const cpu_kernel cpu_kernels_elementwise[] = {{0}};
const size_t cpu_kernels_elementwise_count = 0;

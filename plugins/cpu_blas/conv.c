/* cpu_blas kernels of the conv family. */
#include "cpu_blas.h"

const cpu_kernel cpu_kernels_conv[] = {{0}};
const size_t cpu_kernels_conv_count = 0;

/* cpu_blas kernels of the layout family. */
#include "cpu_blas.h"

const cpu_kernel cpu_kernels_layout[] = {{0}};
const size_t cpu_kernels_layout_count = 0;

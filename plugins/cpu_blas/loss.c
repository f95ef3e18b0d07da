/* cpu_blas kernels of the loss family. */
#include "cpu_blas.h"

const cpu_kernel cpu_kernels_loss[] = {{0}};
const size_t cpu_kernels_loss_count = 0;

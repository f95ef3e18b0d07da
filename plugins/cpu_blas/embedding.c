/* cpu_blas kernels of the embedding family. */
#include "cpu_blas.h"

const cpu_kernel cpu_kernels_embedding[] = {{0}};
const size_t cpu_kernels_embedding_count = 0;

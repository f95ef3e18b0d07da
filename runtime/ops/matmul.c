/* Core ops of the matmul family: arity, attrs and shape inference. */
#include "../op_catalog.h"

const op_def op_defs_matmul[] = {{0}};
const size_t op_defs_matmul_count = 0;

/* Core ops of the pool family: arity, attrs and shape inference. */
#include "../op_catalog.h"

const op_def op_defs_pool[] = {{0}};
const size_t op_defs_pool_count = 0;

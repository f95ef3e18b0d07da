/* Core ops of the reduce family: arity, attrs and shape inference. */
#include "../op_catalog.h"

const op_def op_defs_reduce[] = {{0}};
const size_t op_defs_reduce_count = 0;

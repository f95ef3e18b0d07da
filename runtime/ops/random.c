/* Core ops of the random family: arity, attrs and shape inference. */
#include "../op_catalog.h"

const op_def op_defs_random[] = {{0}};
const size_t op_defs_random_count = 0;

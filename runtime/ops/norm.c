/* Core ops of the norm family: arity, attrs and shape inference. */
#include "../op_catalog.h"

const op_def op_defs_norm[] = {{0}};
const size_t op_defs_norm_count = 0;

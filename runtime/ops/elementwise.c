/* Core ops of the elementwise family: arity, attrs and shape inference. */
#include "../op_catalog.h"

const op_def op_defs_elementwise[] = {{0}};
const size_t op_defs_elementwise_count = 0;

/* Core ops of the softmax family: arity, attrs and shape inference. */
#include "../op_catalog.h"

const op_def op_defs_softmax[] = {{0}};
const size_t op_defs_softmax_count = 0;

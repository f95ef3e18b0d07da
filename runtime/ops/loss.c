/* Core ops of the loss family: arity, attrs and shape inference. */
#include "../op_catalog.h"

const op_def op_defs_loss[] = {{0}};
const size_t op_defs_loss_count = 0;

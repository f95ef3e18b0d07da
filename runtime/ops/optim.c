/* Core ops of the optim family: arity, attrs and shape inference. */
#include "../op_catalog.h"

const op_def op_defs_optim[] = {{0}};
const size_t op_defs_optim_count = 0;

/* Core ops of the conv family: arity, attrs and shape inference. */
#include "../op_catalog.h"

const op_def op_defs_conv[] = {{0}};
const size_t op_defs_conv_count = 0;

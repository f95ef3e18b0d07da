/* Core ops of the layout family: arity, attrs and shape inference. */
#include "../op_catalog.h"

const op_def op_defs_layout[] = {{0}};
const size_t op_defs_layout_count = 0;

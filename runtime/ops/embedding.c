/* Core ops of the embedding family: arity, attrs and shape inference. */
#include "../op_catalog.h"

const op_def op_defs_embedding[] = {{0}};
const size_t op_defs_embedding_count = 0;

/*
 * param_init.h — internal: filling parameters and state with their
 * initializers. Draws come from Philox keyed by (seed, a stream per value),
 * so a model initializes identically on every machine and backend.
 */
#ifndef PLX_PARAM_INIT_H
#define PLX_PARAM_INIT_H

#include "internal.h"

/* fan_in / fan_out as PyTorch: dims[1] and dims[0] times the product of
 * dims[2..]; a 1-D shape has fan_in = fan_out = dims[0]. */
void param_fans(const tensor_meta *m, double *fan_in, double *fan_out);

/* Fills an f32 host tensor. `stream` distinguishes values (e.g. a hash of
 * the parameter's name) so each gets independent draws. */
plx_status param_init_fill(plx_context *ctx, plx_tensor *t, const plx_initializer *init, uint64_t seed,
                           uint64_t stream, const char *name);

/* FNV-1a of a string: a stable stream id for a value name. */
uint64_t param_stream_of(const char *name);

#endif

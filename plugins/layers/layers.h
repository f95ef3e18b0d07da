/*
 * layers.h — internal to the built-in layer plugin: the layer types each
 * family file defines, and the helpers they share (reading inputs and keys,
 * failing with a message naming the layer, PyTorch's default initializers).
 *
 * The plugin is loaded exactly like a third party's: it sees only
 * abi/plexus_plugin.h and builds graphs through the host API. Layers never
 * compute; they add core ops, parameters and state.
 */
#ifndef PLX_LAYERS_H
#define PLX_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../abi/plexus_plugin.h"

/* One entry of a layer's key table. */
#define LAYER_KEY(name, type, required, default_json, doc)                                                             \
    {                                                                                                                  \
        sizeof(plx_config_key), (name), (type), (required), (default_json), (doc)                                      \
    }
#define LAYER_KEY_COUNT(keys) ((int32_t)(sizeof(keys) / sizeof((keys)[0])))

/* ---- The layer types, by family file ------------------------------------ */
extern const plx_layer_type layer_dense;      /* dense.c */
extern const plx_layer_type layer_conv2d;     /* conv.c */
extern const plx_layer_type layer_max_pool2d; /* pool.c */
extern const plx_layer_type layer_avg_pool2d;
extern const plx_layer_type layer_global_avg_pool2d;
extern const plx_layer_type layer_batch_norm; /* norm.c */
extern const plx_layer_type layer_layer_norm;
extern const plx_layer_type layer_dropout;   /* dropout.c */
extern const plx_layer_type layer_embedding; /* embedding.c */
extern const plx_layer_type layer_relu;      /* activation.c */
extern const plx_layer_type layer_leaky_relu;
extern const plx_layer_type layer_elu;
extern const plx_layer_type layer_gelu;
extern const plx_layer_type layer_sigmoid;
extern const plx_layer_type layer_tanh;
extern const plx_layer_type layer_softmax;
extern const plx_layer_type layer_log_softmax;
extern const plx_layer_type layer_add; /* merge.c */
extern const plx_layer_type layer_concat;
extern const plx_layer_type layer_flatten; /* shape.c */

/* ---- Shared helpers (layers.c) ------------------------------------------- */

/* dtype and shape of a graph value. */
typedef struct layer_value_info {
    plx_dtype dtype;
    int32_t ndim;
    int64_t shape[PLX_MAX_DIMS];
} layer_value_info;

/* Sets the error "<instance>: <type>: <detail>" and returns `code`. */
plx_status layer_fail(const plx_host_api *host, const plx_layer_build *b, const char *type, plx_status code,
                      const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* Info of input i of the layer being built. */
plx_status layer_input(const plx_host_api *host, const plx_layer_build *b, int32_t i, layer_value_info *out);

/* "f32[2,3,4]" into buf; returns buf. */
const char *layer_format(const layer_value_info *v, char *buf, size_t cap);

/* Requires a floating-point input (the ops check the exact dtypes they
 * take; parameters are f32); fails naming the layer and the input. */
plx_status layer_require_float(const plx_host_api *host, const plx_layer_build *b, const char *type,
                               const layer_value_info *x);

/* Hands back one output value. */
plx_status layer_output(plx_value v, plx_value *outputs, int32_t max_outputs, int32_t *n_outputs);

/* Reads an INTS key holding one value (used for both spatial dims) or two
 * (height, width) into out[2]; each must be >= min. A key declared with
 * default "[]" and left unset yields count 0 and out = fallback. */
plx_status layer_pair(const plx_host_api *host, const plx_layer_build *b, const char *type, const char *key,
                      int64_t min, const int32_t *fallback, int32_t out[2]);

/* Initializers of a weight and its bias from the string key "init":
 * "default" is PyTorch's (kaiming_uniform(a=sqrt(5)), i.e. uniform in
 * +-1/sqrt(fan_in), for weight and bias alike); "xavier_uniform",
 * "xavier_normal", "he_uniform", "he_normal" set the weight's kind and a
 * zero bias; "zeros" zeroes both. */
plx_status layer_weight_init(const plx_host_api *host, const plx_layer_build *b, const char *type, double fan_in,
                             plx_initializer *weight, plx_initializer *bias);

/* Adds core.reshape of x to shape[ndim]. */
plx_status layer_reshape(const plx_host_api *host, const plx_layer_build *b, plx_value x, int32_t ndim,
                         const int64_t *shape, plx_value *out);

/* An initializer of one kind with no arguments (zeros, ones). */
plx_initializer layer_init_of(int32_t kind);

#endif

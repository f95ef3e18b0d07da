/*
 * compat.h — the onednn plugin's shim over the oneDNN C API, so the same
 * sources build against oneDNN 2.6+ (Debian's libdnnl-dev) and 3.x.
 *
 * What changed in 3.0 and how the shim hides it:
 *  - dnnl_memory_desc_t was a plain struct (copied by value, nothing to
 *    free); it is now an opaque handle made by dnnl_memory_desc_create_*
 *    and freed by dnnl_memory_desc_destroy. The plugin holds descriptors
 *    as `one_md` (the struct in 2.x, an owned handle in 3.x), passes them
 *    to oneDNN as `one_md_ref` (a pointer to the struct in 2.x, the
 *    handle in 3.x; that is exactly the parameter type of
 *    dnnl_memory_create, dnnl_memory_desc_equal and dnnl_memory_desc_get_size
 *    in both) and releases each with one_md_release.
 *  - Operation descriptors (dnnl_convolution_desc_t, ...) and their
 *    *_desc_init functions are gone: primitive descriptors are created
 *    directly by dnnl_<primitive>_primitive_desc_create. The shim offers
 *    one function per primitive with the 3.x argument order; in 2.x it
 *    initializes the op descriptor and calls dnnl_primitive_desc_create.
 *  - pooling_v2 became pooling; softmax_v2 became softmax; eltwise forward
 *    takes separate src and dst descriptors; post-op eltwise lost its scale.
 *  - dnnl_use_scaleshift is gone (the plugin only uses dnnl_use_scale and
 *    dnnl_use_shift, which both versions have).
 * Every primitive descriptor is made without primitive attributes except
 * where an eltwise post-op is appended (one_conv_fwd_pd's relu,
 * one_binary_pd's negate).
 *
 * Only what the plugin uses is wrapped. Functions are static inline, so a
 * file pays only for those it calls.
 *
 * To build against a oneDNN 3.x install elsewhere:
 *   make WITH_ONEDNN=1 CFLAGS="-O2 -g -I$PREFIX/include" \
 *        LDFLAGS="-L$PREFIX/lib -Wl,-rpath,$PREFIX/lib"
 * (the plugin links libdnnl.so.3 then; its probe refuses a library whose
 * major version differs from the headers').
 */
#ifndef PLX_ONEDNN_COMPAT_H
#define PLX_ONEDNN_COMPAT_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <oneapi/dnnl/dnnl_version.h>

#if DNNL_VERSION_MAJOR >= 3
#define ONE_DNNL_V3 1
#else
#define ONE_DNNL_V3 0
#if DNNL_VERSION_MAJOR < 2 || (DNNL_VERSION_MAJOR == 2 && DNNL_VERSION_MINOR < 6)
#error "the onednn plugin needs oneDNN 2.6 or later"
#endif
#endif

/* ---- memory descriptors ------------------------------------------------------ */

#if ONE_DNNL_V3
typedef dnnl_memory_desc_t one_md;           /* owned handle; NULL: none */
typedef const_dnnl_memory_desc_t one_md_ref; /* borrowed */
#else
typedef dnnl_memory_desc_t one_md;            /* the descriptor itself; ndims 0: none */
typedef const dnnl_memory_desc_t *one_md_ref; /* borrowed */
#endif

/* The reference oneDNN calls take. NULL for a NULL md pointer. */
static inline one_md_ref one_ref(const one_md *md)
{
#if ONE_DNNL_V3
    return md != NULL ? *md : NULL;
#else
    return md;
#endif
}

/* An empty one_md (safe to release). */
static inline void one_md_clear(one_md *md)
{
#if ONE_DNNL_V3
    *md = NULL;
#else
    memset(md, 0, sizeof *md);
#endif
}

static inline void one_md_release(one_md *md)
{
#if ONE_DNNL_V3
    if (*md != NULL)
        dnnl_memory_desc_destroy(*md);
#endif
    one_md_clear(md);
}

static inline dnnl_status_t one_md_strides(one_md *md, int ndims, const dnnl_dims_t dims, dnnl_data_type_t dt,
                                           const dnnl_dims_t strides)
{
#if ONE_DNNL_V3
    dnnl_status_t st = dnnl_memory_desc_create_with_strides(md, ndims, dims, dt, strides);
    if (st != dnnl_success)
        *md = NULL;
    return st;
#else
    return dnnl_memory_desc_init_by_strides(md, ndims, dims, dt, strides);
#endif
}

static inline dnnl_status_t one_md_tag(one_md *md, int ndims, const dnnl_dims_t dims, dnnl_data_type_t dt,
                                       dnnl_format_tag_t tag)
{
#if ONE_DNNL_V3
    dnnl_status_t st = dnnl_memory_desc_create_with_tag(md, ndims, dims, dt, tag);
    if (st != dnnl_success)
        *md = NULL;
    return st;
#else
    return dnnl_memory_desc_init_by_tag(md, ndims, dims, dt, tag);
#endif
}

/* *dst = an owned copy of src (release it). */
static inline dnnl_status_t one_md_copy(one_md *dst, one_md_ref src)
{
#if ONE_DNNL_V3
    dnnl_status_t st = dnnl_memory_desc_clone(dst, src);
    if (st != dnnl_success)
        *dst = NULL;
    return st;
#else
    *dst = *src;
    return dnnl_success;
#endif
}

/* Number of dims; 0 for none (a NULL or zero descriptor). */
static inline int one_md_ndims(one_md_ref md)
{
    if (md == NULL)
        return 0;
#if ONE_DNNL_V3
    int ndims = 0;
    if (dnnl_memory_desc_query(md, dnnl_query_ndims_s32, &ndims) != dnnl_success)
        return 0;
    return ndims;
#else
    return md->ndims;
#endif
}

static inline bool one_md_equal(one_md_ref a, one_md_ref b)
{
    return dnnl_memory_desc_equal(a, b) != 0;
}

static inline size_t one_md_size(one_md_ref md)
{
    return dnnl_memory_desc_get_size(md);
}

/* The memory descriptor the primitive of pd wants for execution argument
 * dnnl_arg (owned by pd); NULL or zero when it takes none. */
static inline one_md_ref one_pd_arg_md(const_dnnl_primitive_desc_t pd, int dnnl_arg)
{
    return dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, dnnl_arg);
}

/* How many inputs the primitive of pd expects at execution; -1 unknown. */
static inline int one_pd_num_inputs(const_dnnl_primitive_desc_t pd)
{
    int n = -1;
    if (dnnl_primitive_desc_query(pd, dnnl_query_num_of_inputs_s32, 0, &n) != dnnl_success)
        return -1;
    return n;
}

/* oneDNN's name of the implementation pd chose ("jit:avx512_core"). */
static inline const char *one_pd_impl(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || impl == NULL)
        return "?";
    return impl;
}

/* ---- primitive descriptors ----------------------------------------------------- */

#if !ONE_DNNL_V3
/* 2.x: the primitive descriptor of op descriptor *d, which the
 * dnnl_*_desc_init call that filled it returned init for (passed first so
 * a wrapper's 2.x branch is one call: its arguments, that init call
 * among them, are all evaluated before *d is read here). */
static inline dnnl_status_t one_pd_create_(dnnl_status_t init, dnnl_primitive_desc_t *pd, const_dnnl_op_desc_t d,
                                           const_dnnl_primitive_attr_t attr, dnnl_engine_t engine,
                                           const_dnnl_primitive_desc_t hint)
{
    return init != dnnl_success ? init : dnnl_primitive_desc_create(pd, d, attr, engine, hint);
}
#endif

static inline dnnl_status_t one_reorder_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, one_md_ref from,
                                           one_md_ref to)
{
    return dnnl_reorder_primitive_desc_create(pd, from, engine, to, engine, NULL);
}

/* Primitive attributes with one eltwise post-op (alg, alpha, beta) in
 * *attr (destroy it), or NULL when alg is 0. */
static inline dnnl_status_t one_eltwise_post_op(dnnl_primitive_attr_t *attr, dnnl_alg_kind_t alg, float alpha,
                                                float beta)
{
    *attr = NULL;
    if (alg == (dnnl_alg_kind_t)0)
        return dnnl_success;
    dnnl_post_ops_t ops = NULL;
    dnnl_status_t st = dnnl_primitive_attr_create(attr);
    if (st != dnnl_success) {
        *attr = NULL;
        return st;
    }
    if ((st = dnnl_post_ops_create(&ops)) == dnnl_success) {
#if ONE_DNNL_V3
        st = dnnl_post_ops_append_eltwise(ops, alg, alpha, beta);
#else
        st = dnnl_post_ops_append_eltwise(ops, 1.0f, alg, alpha, beta);
#endif
        if (st == dnnl_success)
            st = dnnl_primitive_attr_set_post_ops(*attr, ops);
        dnnl_post_ops_destroy(ops);
    }
    if (st != dnnl_success) {
        dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
    }
    return st;
}

/* Forward convolution; with `relu`, an eltwise relu post-op applied to the
 * result (after the bias). */
static inline dnnl_status_t one_conv_fwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_prop_kind_t prop,
                                            one_md_ref src, one_md_ref weights, one_md_ref bias, one_md_ref dst,
                                            const dnnl_dims_t strides, const dnnl_dims_t dilates,
                                            const dnnl_dims_t pad_l, const dnnl_dims_t pad_r, bool relu)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t st = one_eltwise_post_op(&attr, relu ? dnnl_eltwise_relu : (dnnl_alg_kind_t)0, 0.0f, 0.0f);
    if (st != dnnl_success)
        return st;
#if ONE_DNNL_V3
    st = dnnl_convolution_forward_primitive_desc_create(pd, engine, prop, dnnl_convolution_direct, src, weights, bias,
                                                        dst, strides, dilates, pad_l, pad_r, attr);
#else
    dnnl_convolution_desc_t d;
    st = one_pd_create_(dnnl_dilated_convolution_forward_desc_init(&d, prop, dnnl_convolution_direct, src, weights,
                                                                   bias, dst, strides, dilates, pad_l, pad_r),
                        pd, &d, attr, engine, NULL);
#endif
    if (attr != NULL)
        dnnl_primitive_attr_destroy(attr);
    return st;
}

static inline dnnl_status_t one_conv_bwd_data_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, one_md_ref diff_src,
                                                 one_md_ref weights, one_md_ref diff_dst, const dnnl_dims_t strides,
                                                 const dnnl_dims_t dilates, const dnnl_dims_t pad_l,
                                                 const dnnl_dims_t pad_r, const_dnnl_primitive_desc_t hint)
{
#if ONE_DNNL_V3
    return dnnl_convolution_backward_data_primitive_desc_create(pd, engine, dnnl_convolution_direct, diff_src, weights,
                                                                diff_dst, strides, dilates, pad_l, pad_r, hint, NULL);
#else
    dnnl_convolution_desc_t d;
    return one_pd_create_(dnnl_dilated_convolution_backward_data_desc_init(
                              &d, dnnl_convolution_direct, diff_src, weights, diff_dst, strides, dilates, pad_l, pad_r),
                          pd, &d, NULL, engine, hint);
#endif
}

static inline dnnl_status_t one_conv_bwd_weights_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, one_md_ref src,
                                                    one_md_ref diff_weights, one_md_ref diff_bias, one_md_ref diff_dst,
                                                    const dnnl_dims_t strides, const dnnl_dims_t dilates,
                                                    const dnnl_dims_t pad_l, const dnnl_dims_t pad_r,
                                                    const_dnnl_primitive_desc_t hint)
{
#if ONE_DNNL_V3
    return dnnl_convolution_backward_weights_primitive_desc_create(pd, engine, dnnl_convolution_direct, src,
                                                                   diff_weights, diff_bias, diff_dst, strides, dilates,
                                                                   pad_l, pad_r, hint, NULL);
#else
    dnnl_convolution_desc_t d;
    return one_pd_create_(dnnl_dilated_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct, src,
                                                                              diff_weights, diff_bias, diff_dst,
                                                                              strides, dilates, pad_l, pad_r),
                          pd, &d, NULL, engine, hint);
#endif
}

static inline dnnl_status_t one_pool_fwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_prop_kind_t prop,
                                            dnnl_alg_kind_t alg, one_md_ref src, one_md_ref dst,
                                            const dnnl_dims_t strides, const dnnl_dims_t kernel,
                                            const dnnl_dims_t dilation, const dnnl_dims_t pad_l,
                                            const dnnl_dims_t pad_r)
{
#if ONE_DNNL_V3
    return dnnl_pooling_forward_primitive_desc_create(pd, engine, prop, alg, src, dst, strides, kernel, dilation, pad_l,
                                                      pad_r, NULL);
#else
    dnnl_pooling_v2_desc_t d;
    return one_pd_create_(
        dnnl_pooling_v2_forward_desc_init(&d, prop, alg, src, dst, strides, kernel, dilation, pad_l, pad_r), pd, &d,
        NULL, engine, NULL);
#endif
}

static inline dnnl_status_t one_pool_bwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_alg_kind_t alg,
                                            one_md_ref diff_src, one_md_ref diff_dst, const dnnl_dims_t strides,
                                            const dnnl_dims_t kernel, const dnnl_dims_t dilation,
                                            const dnnl_dims_t pad_l, const dnnl_dims_t pad_r,
                                            const_dnnl_primitive_desc_t hint)
{
#if ONE_DNNL_V3
    return dnnl_pooling_backward_primitive_desc_create(pd, engine, alg, diff_src, diff_dst, strides, kernel, dilation,
                                                       pad_l, pad_r, hint, NULL);
#else
    dnnl_pooling_v2_desc_t d;
    return one_pd_create_(
        dnnl_pooling_v2_backward_desc_init(&d, alg, diff_src, diff_dst, strides, kernel, dilation, pad_l, pad_r), pd,
        &d, NULL, engine, hint);
#endif
}

static inline dnnl_status_t one_matmul_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, one_md_ref src,
                                          one_md_ref weights, one_md_ref bias, one_md_ref dst)
{
#if ONE_DNNL_V3
    return dnnl_matmul_primitive_desc_create(pd, engine, src, weights, bias, dst, NULL);
#else
    dnnl_matmul_desc_t d;
    return one_pd_create_(dnnl_matmul_desc_init(&d, src, weights, bias, dst), pd, &d, NULL, engine, NULL);
#endif
}

/* 2.x eltwise has one data descriptor: src and dst must be the same. */
static inline dnnl_status_t one_eltwise_fwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_prop_kind_t prop,
                                               dnnl_alg_kind_t alg, one_md_ref src, one_md_ref dst, float alpha,
                                               float beta)
{
#if ONE_DNNL_V3
    return dnnl_eltwise_forward_primitive_desc_create(pd, engine, prop, alg, src, dst, alpha, beta, NULL);
#else
    (void)dst;
    dnnl_eltwise_desc_t d;
    return one_pd_create_(dnnl_eltwise_forward_desc_init(&d, prop, alg, src, alpha, beta), pd, &d, NULL, engine, NULL);
#endif
}

static inline dnnl_status_t one_eltwise_bwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_alg_kind_t alg,
                                               one_md_ref diff_src, one_md_ref diff_dst, one_md_ref data, float alpha,
                                               float beta, const_dnnl_primitive_desc_t hint)
{
#if ONE_DNNL_V3
    return dnnl_eltwise_backward_primitive_desc_create(pd, engine, alg, diff_src, diff_dst, data, alpha, beta, hint,
                                                       NULL);
#else
    (void)diff_src;
    dnnl_eltwise_desc_t d;
    return one_pd_create_(dnnl_eltwise_backward_desc_init(&d, alg, diff_dst, data, alpha, beta), pd, &d, NULL, engine,
                          hint);
#endif
}

/* Binary op; with `negate`, an eltwise post-op multiplies the result by -1
 * (exact in IEEE arithmetic). */
static inline dnnl_status_t one_binary_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_alg_kind_t alg,
                                          one_md_ref src0, one_md_ref src1, one_md_ref dst, bool negate)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_status_t st = one_eltwise_post_op(&attr, negate ? dnnl_eltwise_linear : (dnnl_alg_kind_t)0, -1.0f, 0.0f);
    if (st == dnnl_success) {
#if ONE_DNNL_V3
        st = dnnl_binary_primitive_desc_create(pd, engine, alg, src0, src1, dst, attr);
#else
        dnnl_binary_desc_t d;
        st = one_pd_create_(dnnl_binary_desc_init(&d, alg, src0, src1, dst), pd, &d, attr, engine, NULL);
#endif
    }
    if (attr != NULL)
        dnnl_primitive_attr_destroy(attr);
    return st;
}

static inline dnnl_status_t one_bnorm_fwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_prop_kind_t prop,
                                             one_md_ref src, one_md_ref dst, float eps, unsigned flags)
{
#if ONE_DNNL_V3
    return dnnl_batch_normalization_forward_primitive_desc_create(pd, engine, prop, src, dst, eps, flags, NULL);
#else
    (void)dst;
    dnnl_batch_normalization_desc_t d;
    return one_pd_create_(dnnl_batch_normalization_forward_desc_init(&d, prop, src, eps, flags), pd, &d, NULL, engine,
                          NULL);
#endif
}

static inline dnnl_status_t one_bnorm_bwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_prop_kind_t prop,
                                             one_md_ref diff_src, one_md_ref diff_dst, one_md_ref src, float eps,
                                             unsigned flags, const_dnnl_primitive_desc_t hint)
{
#if ONE_DNNL_V3
    return dnnl_batch_normalization_backward_primitive_desc_create(pd, engine, prop, diff_src, diff_dst, src, eps,
                                                                   flags, hint, NULL);
#else
    (void)diff_src;
    dnnl_batch_normalization_desc_t d;
    return one_pd_create_(dnnl_batch_normalization_backward_desc_init(&d, prop, diff_dst, src, eps, flags), pd, &d,
                          NULL, engine, hint);
#endif
}

static inline dnnl_status_t one_lnorm_fwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_prop_kind_t prop,
                                             one_md_ref src, one_md_ref dst, one_md_ref stat, float eps, unsigned flags)
{
#if ONE_DNNL_V3
    return dnnl_layer_normalization_forward_primitive_desc_create(pd, engine, prop, src, dst, stat, eps, flags, NULL);
#else
    (void)dst;
    dnnl_layer_normalization_desc_t d;
    return one_pd_create_(dnnl_layer_normalization_forward_desc_init(&d, prop, src, stat, eps, flags), pd, &d, NULL,
                          engine, NULL);
#endif
}

static inline dnnl_status_t one_lnorm_bwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_prop_kind_t prop,
                                             one_md_ref diff_src, one_md_ref diff_dst, one_md_ref src, one_md_ref stat,
                                             float eps, unsigned flags, const_dnnl_primitive_desc_t hint)
{
#if ONE_DNNL_V3
    return dnnl_layer_normalization_backward_primitive_desc_create(pd, engine, prop, diff_src, diff_dst, src, stat, eps,
                                                                   flags, hint, NULL);
#else
    (void)diff_src;
    dnnl_layer_normalization_desc_t d;
    return one_pd_create_(dnnl_layer_normalization_backward_desc_init(&d, prop, diff_dst, src, stat, eps, flags), pd,
                          &d, NULL, engine, hint);
#endif
}

/* alg: dnnl_softmax_accurate or dnnl_softmax_log (both versions). */
static inline dnnl_status_t one_softmax_fwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_prop_kind_t prop,
                                               dnnl_alg_kind_t alg, one_md_ref src, one_md_ref dst, int axis)
{
#if ONE_DNNL_V3
    return dnnl_softmax_forward_primitive_desc_create(pd, engine, prop, alg, src, dst, axis, NULL);
#else
    dnnl_softmax_v2_desc_t d;
    return one_pd_create_(dnnl_softmax_v2_forward_desc_init(&d, prop, alg, src, dst, axis), pd, &d, NULL, engine, NULL);
#endif
}

static inline dnnl_status_t one_softmax_bwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_alg_kind_t alg,
                                               one_md_ref diff_src, one_md_ref diff_dst, one_md_ref dst, int axis,
                                               const_dnnl_primitive_desc_t hint)
{
#if ONE_DNNL_V3
    return dnnl_softmax_backward_primitive_desc_create(pd, engine, alg, diff_src, diff_dst, dst, axis, hint, NULL);
#else
    dnnl_softmax_v2_desc_t d;
    return one_pd_create_(dnnl_softmax_v2_backward_desc_init(&d, alg, diff_src, diff_dst, dst, axis), pd, &d, NULL,
                          engine, hint);
#endif
}

static inline dnnl_status_t one_reduction_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t engine, dnnl_alg_kind_t alg,
                                             one_md_ref src, one_md_ref dst)
{
#if ONE_DNNL_V3
    return dnnl_reduction_primitive_desc_create(pd, engine, alg, src, dst, 0.0f, 0.0f, NULL);
#else
    dnnl_reduction_desc_t d;
    return one_pd_create_(dnnl_reduction_desc_init(&d, alg, src, dst, 0.0f, 0.0f), pd, &d, NULL, engine, NULL);
#endif
}

/* ---- CPU features ------------------------------------------------------------- */

/* Whether oneDNN will run bf16 natively here (AVX512-BF16 or better; the
 * ISA values are bit sets, each containing the ones below it). */
static inline bool one_isa_has_bf16(dnnl_cpu_isa_t isa)
{
    return ((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

static inline bool one_isa_has(dnnl_cpu_isa_t isa, dnnl_cpu_isa_t want)
{
    return ((unsigned)isa & (unsigned)want) == (unsigned)want;
}

static inline bool one_isa_has_amx(dnnl_cpu_isa_t isa)
{
    return ((unsigned)isa & (unsigned)dnnl_cpu_isa_avx512_core_amx) == (unsigned)dnnl_cpu_isa_avx512_core_amx;
}

/* A name for the ISA oneDNN uses ("avx512_core"), or NULL if unknown. */
static inline const char *one_isa_name(dnnl_cpu_isa_t isa)
{
    if (isa == dnnl_cpu_isa_avx512_core_amx)
        return "avx512_core_amx";
    if (isa == dnnl_cpu_isa_avx512_core_bf16)
        return "avx512_core_bf16";
    if (isa == dnnl_cpu_isa_avx512_core_vnni)
        return "avx512_core_vnni";
    if (isa == dnnl_cpu_isa_avx512_core)
        return "avx512_core";
    if (isa == dnnl_cpu_isa_avx2_vnni)
        return "avx2_vnni";
    if (isa == dnnl_cpu_isa_avx2)
        return "avx2";
    if (isa == dnnl_cpu_isa_avx)
        return "avx";
    if (isa == dnnl_cpu_isa_sse41)
        return "sse41";
    return NULL;
}

#endif

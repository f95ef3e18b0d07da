/*
 * plexus_types.h — the types shared by the host API (plexus.h), the plugin
 * contract (plexus_plugin.h) and the op catalog (plexus_ops.h).
 *
 * Header-only, C11, no dependencies beyond the C standard library. Every
 * struct that may grow starts with `struct_size`; members are only ever
 * appended. Tensor descriptors are layout-compatible with DLPack's DLTensor
 * (dlpack.h v0.6 and later); tests/abi/test_dlpack_layout.c proves it against
 * Debian's dlpack/dlpack.h.
 */
#ifndef PLEXUS_TYPES_H
#define PLEXUS_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version of these headers. A plugin whose major differs is refused
 * before anything but its descriptor's first three fields is read; minors
 * may differ both ways (fields are appended, readers never read past the
 * writer's struct_size). */
#define PLX_ABI_MAJOR 1
/* 1.1: layer types, graph building. 1.2: plx_conv2d_attrs.activation (a
 * fused activation; the runtime gives such calls only to plugins >= 1.2). */
#define PLX_ABI_MINOR 2

/* Largest tensor rank the runtime handles. */
#define PLX_MAX_DIMS 8

/* ---- Status codes --------------------------------------------------------
 * One table, name and text generated together (as libuv's UV_ERRNO_MAP).
 * A status says what kind of failure; the message (plx_last_error, or the
 * host API's set_error for plugins) names the op, node, plugin and shapes. */
#define PLX_STATUS_MAP(X)                                                   \
    X(OK, 0, "ok")                                                          \
    X(INVALID_ARGUMENT, 1, "invalid argument")                              \
    X(OUT_OF_MEMORY, 2, "out of memory")                                    \
    X(NOT_FOUND, 3, "not found")                                            \
    X(UNSUPPORTED, 4, "unsupported")                                        \
    X(SHAPE_MISMATCH, 5, "shape mismatch")                                  \
    X(DTYPE_MISMATCH, 6, "dtype mismatch")                                  \
    X(ABI_MISMATCH, 7, "ABI version mismatch")                              \
    X(PLUGIN_ERROR, 8, "plugin error")                                      \
    X(IO_ERROR, 9, "I/O error")                                             \
    X(UNAVAILABLE, 10, "unavailable here")                                  \
    X(OVERFLOW, 11, "size overflow")                                        \
    X(INTERNAL, 12, "internal error")

typedef enum plx_status {
#define PLX_STATUS_ENUM_(name, value, text) PLX_##name = value,
    PLX_STATUS_MAP(PLX_STATUS_ENUM_)
#undef PLX_STATUS_ENUM_
    PLX_STATUS_COUNT_
} plx_status;

/* ---- Devices (DLPack DLDevice layout) ------------------------------------ */
/* Values are DLPack's DLDeviceType. */
enum {
    PLX_DL_CPU = 1,
    PLX_DL_CUDA = 2,
    PLX_DL_CUDA_HOST = 3,
    PLX_DL_OPENCL = 4,
    PLX_DL_VULKAN = 7,
    PLX_DL_METAL = 8,
    PLX_DL_ROCM = 10,
    PLX_DL_EXT_DEV = 12
};

typedef struct plx_dl_device {
    int32_t device_type; /* PLX_DL_* (DLDeviceType) */
    int32_t device_id;   /* index among devices of that type; 0 for CPU */
} plx_dl_device;

/* ---- Data types (DLPack DLDataType layout) ------------------------------- */
/* Values of plx_dtype.code are DLPack's DLDataTypeCode. */
enum {
    PLX_DTYPE_CODE_INT = 0,
    PLX_DTYPE_CODE_UINT = 1,
    PLX_DTYPE_CODE_FLOAT = 2,
    PLX_DTYPE_CODE_BFLOAT = 4,
    PLX_DTYPE_CODE_BOOL = 6
};

typedef struct plx_dtype {
    uint8_t code;   /* PLX_DTYPE_CODE_* */
    uint8_t bits;   /* 8, 16, 32, 64 */
    uint16_t lanes; /* always 1 in Plexus */
} plx_dtype;

#define PLX_DTYPE_INIT_(c, b) {(uint8_t)(c), (uint8_t)(b), 1u}
/* Compound literals for the dtypes Plexus knows. */
#define PLX_F32 ((plx_dtype)PLX_DTYPE_INIT_(PLX_DTYPE_CODE_FLOAT, 32))
#define PLX_F16 ((plx_dtype)PLX_DTYPE_INIT_(PLX_DTYPE_CODE_FLOAT, 16))
#define PLX_BF16 ((plx_dtype)PLX_DTYPE_INIT_(PLX_DTYPE_CODE_BFLOAT, 16))
#define PLX_I32 ((plx_dtype)PLX_DTYPE_INIT_(PLX_DTYPE_CODE_INT, 32))
#define PLX_I64 ((plx_dtype)PLX_DTYPE_INIT_(PLX_DTYPE_CODE_INT, 64))
#define PLX_U8 ((plx_dtype)PLX_DTYPE_INIT_(PLX_DTYPE_CODE_UINT, 8))
#define PLX_BOOL ((plx_dtype)PLX_DTYPE_INIT_(PLX_DTYPE_CODE_BOOL, 8))

/* True when two dtypes are the same. */
static inline int plx_dtype_equal(plx_dtype a, plx_dtype b)
{
    return a.code == b.code && a.bits == b.bits && a.lanes == b.lanes;
}

/* Bytes per element (lanes included); 0 for a malformed dtype. */
static inline size_t plx_dtype_size(plx_dtype t)
{
    return ((size_t)t.bits * (size_t)t.lanes + 7u) / 8u;
}

/* ---- Tensor descriptor (DLPack DLTensor layout) --------------------------
 * Describes memory; owns nothing. `data + byte_offset` is the first element.
 * `strides` are in elements; NULL means compact row-major. `shape` and
 * `strides` point to ndim entries. Kernels receive descriptors whose inputs
 * and outputs are compact (the runtime makes strided inputs compact first,
 * except for core.copy, which takes any strides). */
typedef struct plx_tensor_desc {
    void *data;
    plx_dl_device device;
    int32_t ndim;
    plx_dtype dtype;
    int64_t *shape;
    int64_t *strides;
    uint64_t byte_offset;
} plx_tensor_desc;

/* DLPack DLManagedTensor layout: a tensor together with whoever owns its
 * memory. The consumer calls `deleter(self)` once when done (if non-NULL). */
typedef struct plx_dl_managed_tensor {
    plx_tensor_desc dl_tensor;
    void *manager_ctx;
    void (*deleter)(struct plx_dl_managed_tensor *self);
} plx_dl_managed_tensor;

/* Number of elements of a descriptor (1 for ndim == 0). Does not check for
 * overflow: validated descriptors (all that reach a kernel) cannot overflow. */
static inline int64_t plx_desc_numel(const plx_tensor_desc *t)
{
    int64_t n = 1;
    for (int32_t i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

/* Address of the first element of a descriptor. */
static inline void *plx_desc_ptr(const plx_tensor_desc *t)
{
    return (void *)((char *)t->data + t->byte_offset);
}

/* Log levels for the host's logger. */
enum { PLX_LOG_DEBUG = 0, PLX_LOG_INFO = 1, PLX_LOG_WARN = 2, PLX_LOG_ERROR = 3 };

#ifdef __cplusplus
}
#endif
#endif /* PLEXUS_TYPES_H */

/*
 * idx.c — the IDX format of the MNIST family (LeCun's MNIST, Fashion-MNIST,
 * EMNIST, KMNIST): a 4-byte magic {0, 0, type, ndim}, ndim big-endian u32
 * dims, then the elements big-endian, row-major. Files may be gzip'd.
 *
 * The file is read whole (bounded by a byte limit) before its header is
 * believed, so a corrupt header claiming 2^40 items costs an error message,
 * not a 2^40-byte allocation.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

#define IDX_HEADER_FIXED 4

const char *idx_type_name(idx_type type)
{
    switch (type) {
    case IDX_U8:
        return "u8";
    case IDX_I8:
        return "i8";
    case IDX_I16:
        return "i16";
    case IDX_I32:
        return "i32";
    case IDX_F32:
        return "f32";
    case IDX_F64:
        return "f64";
    }
    return "?";
}

static size_t idx_type_size(int type)
{
    switch (type) {
    case IDX_U8:
    case IDX_I8:
        return 1;
    case IDX_I16:
        return 2;
    case IDX_I32:
    case IDX_F32:
        return 4;
    case IDX_F64:
        return 8;
    default:
        return 0;
    }
}

static uint32_t read_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Big-endian to host order in place (IDX is big-endian; hosts we run on
 * are little-endian, but the byte-wise decode is right on either). */
static void to_host_order(unsigned char *data, int64_t count, size_t size)
{
    if (size == 1)
        return;
    for (int64_t i = 0; i < count; i++) {
        unsigned char *p = data + (size_t)i * size;
        uint64_t v = 0;
        for (size_t k = 0; k < size; k++)
            v = v << 8 | p[k];
        switch (size) {
        case 2: {
            uint16_t x = (uint16_t)v;
            memcpy(p, &x, 2);
            break;
        }
        case 4: {
            uint32_t x = (uint32_t)v;
            memcpy(p, &x, 4);
            break;
        }
        default:
            memcpy(p, &v, 8);
            break;
        }
    }
}

/* "10000x28x28" into buf. */
static void format_dims(const int64_t *dims, int32_t ndim, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = 0;
    for (int32_t i = 0; i < ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? "x%" PRId64 : "%" PRId64, dims[i]);
}

plx_status idx_read(const char *path, uint64_t max_bytes, idx_array *out, data_error *err)
{
    if (path == NULL || out == NULL)
        return data_fail(err, PLX_INVALID_ARGUMENT, "idx_read: NULL argument");
    if (max_bytes == 0)
        max_bytes = DATA_DEFAULT_MAX_BYTES;
    unsigned char *buf;
    size_t len;
    /* Room for the largest header on top of the data limit. */
    uint64_t header_max = IDX_HEADER_FIXED + 4 * IDX_MAX_DIMS;
    uint64_t file_max = max_bytes > UINT64_MAX - header_max ? max_bytes : max_bytes + header_max;
    plx_status st = data_read_file(path, file_max, &buf, &len, err);
    if (st != PLX_OK)
        return st;
    if (len == 0) {
        free(buf);
        return data_fail(err, PLX_INVALID_ARGUMENT, "%s: empty file (not an IDX file)", path);
    }
    if (len < IDX_HEADER_FIXED || buf[0] != 0 || buf[1] != 0) {
        char got[16] = "";
        for (size_t i = 0, used = 0; i < 4 && i < len; i++)
            used += (size_t)snprintf(got + used, sizeof got - used, i ? " %02x" : "%02x", buf[i]);
        free(buf);
        return data_fail(err, PLX_INVALID_ARGUMENT,
                         "%s: not an IDX file: bad magic (first bytes %s; expected 00 00 <type> <ndim>)", path, got);
    }
    int type = buf[2];
    int32_t ndim = buf[3];
    size_t elem = idx_type_size(type);
    if (elem == 0) {
        free(buf);
        return data_fail(err, PLX_INVALID_ARGUMENT,
                         "%s: unknown IDX data type 0x%02x (known: 08 u8, 09 i8, 0b i16, 0c i32, 0d f32, 0e f64)", path,
                         type);
    }
    if (ndim < 1 || ndim > IDX_MAX_DIMS) {
        free(buf);
        return data_fail(err, PLX_INVALID_ARGUMENT, "%s: IDX header has %d dims (supported: 1..%d)", path, ndim,
                         IDX_MAX_DIMS);
    }
    size_t header = IDX_HEADER_FIXED + 4 * (size_t)ndim;
    if (len < header) {
        free(buf);
        return data_fail(err, PLX_INVALID_ARGUMENT, "%s: truncated IDX header (%zu bytes; %d dims need %zu)", path, len,
                         ndim, header);
    }
    int64_t dims[IDX_MAX_DIMS];
    for (int32_t i = 0; i < ndim; i++)
        dims[i] = read_be32(buf + IDX_HEADER_FIXED + 4 * (size_t)i);
    char shape[160];
    format_dims(dims, ndim, shape, sizeof shape);
    /* Count and bytes in 64-bit with overflow checks: each dim < 2^32, up
     * to 8 dims, so the product can overflow anything. */
    uint64_t count = 1;
    bool overflow = false;
    for (int32_t i = 0; i < ndim; i++) {
        if (dims[i] != 0 && count > UINT64_MAX / (uint64_t)dims[i])
            overflow = true;
        else
            count *= (uint64_t)dims[i];
    }
    bool zero = false;
    for (int32_t i = 0; i < ndim; i++)
        zero = zero || dims[i] == 0;
    if (zero) {
        count = 0;
        overflow = false;
    }
    if (overflow || count > UINT64_MAX / elem || count * elem > max_bytes) {
        free(buf);
        return data_fail(err, PLX_OVERFLOW,
                         "%s: header claims %s %s items, more than the %" PRIu64 "-byte limit for data files (corrupt "
                         "header?)",
                         path, shape, idx_type_name((idx_type)type), max_bytes);
    }
    uint64_t bytes = count * elem;
    uint64_t have = len - header;
    if (have < bytes) {
        free(buf);
        return data_fail(err, PLX_INVALID_ARGUMENT,
                         "%s: truncated: the header says %s %s items (%" PRIu64 " bytes of data) but only %" PRIu64
                         " bytes follow it",
                         path, shape, idx_type_name((idx_type)type), bytes, have);
    }
    if (have > bytes) {
        free(buf);
        return data_fail(err, PLX_INVALID_ARGUMENT,
                         "%s: %" PRIu64 " trailing bytes after the %s %s items the header announces", path,
                         have - bytes, shape, idx_type_name((idx_type)type));
    }
    /* Reuse the file buffer for the elements: no second copy of a large file. */
    memmove(buf, buf + header, (size_t)bytes);
    if (bytes > 0) {
        unsigned char *shrunk = realloc(buf, (size_t)bytes);
        if (shrunk != NULL)
            buf = shrunk;
    }
    to_host_order(buf, (int64_t)count, elem);
    memset(out, 0, sizeof *out);
    out->type = (idx_type)type;
    out->ndim = ndim;
    memcpy(out->dims, dims, (size_t)ndim * sizeof *dims);
    out->count = (int64_t)count;
    out->elem_size = elem;
    out->data = buf;
    return PLX_OK;
}

void idx_array_free(idx_array *a)
{
    if (a == NULL)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

double idx_array_get(const idx_array *a, int64_t i)
{
    const unsigned char *p = (const unsigned char *)a->data + (size_t)i * a->elem_size;
    switch (a->type) {
    case IDX_U8:
        return (double)*p;
    case IDX_I8:
        return (double)(int8_t)*p;
    case IDX_I16: {
        int16_t v;
        memcpy(&v, p, sizeof v);
        return (double)v;
    }
    case IDX_I32: {
        int32_t v;
        memcpy(&v, p, sizeof v);
        return (double)v;
    }
    case IDX_F32: {
        float v;
        memcpy(&v, p, sizeof v);
        return (double)v;
    }
    case IDX_F64: {
        double v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    }
    return 0.0;
}

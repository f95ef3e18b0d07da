/*
 * safetensors.c — the safetensors reader (validate everything, then hand
 * out views into a read-only mapping) and writer (reference layout, through
 * atomic_file). See safetensors.h for the format and the checks.
 */
#include "safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Integers in the header are read through cJSON's doubles, which hold
 * every integer below 2^53 exactly; from 2^53 on, distinct texts may read
 * as one value, so they are refused (no real file has such sizes). */
#define ST_JSON_INT_LIMIT 9007199254740992.0

/* Names in messages are cut to this many bytes. */
#define ST_NAME_IN_MSG 200

static void set_error(char *errbuf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_error(char *errbuf, size_t cap, const char *fmt, ...)
{
    if (errbuf == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, cap, fmt, ap);
    va_end(ap);
}

/* ---- dtypes ------------------------------------------------------------- */

typedef struct dtype_entry {
    const char *name;
    uint8_t code;
    uint8_t bits;
    /* Position in the reference implementation's Dtype enum, which is in
     * increasing alignment order; the writer sorts by it (largest first). */
    uint8_t rank;
} dtype_entry;

static const dtype_entry dtype_table[] = {
    {"BOOL", PLX_DTYPE_CODE_BOOL, 8, 0},    {"U8", PLX_DTYPE_CODE_UINT, 8, 1},
    {"I8", PLX_DTYPE_CODE_INT, 8, 2},       {"I16", PLX_DTYPE_CODE_INT, 16, 5},
    {"U16", PLX_DTYPE_CODE_UINT, 16, 6},    {"F16", PLX_DTYPE_CODE_FLOAT, 16, 7},
    {"BF16", PLX_DTYPE_CODE_BFLOAT, 16, 8}, {"I32", PLX_DTYPE_CODE_INT, 32, 9},
    {"U32", PLX_DTYPE_CODE_UINT, 32, 10},   {"F32", PLX_DTYPE_CODE_FLOAT, 32, 11},
    {"F64", PLX_DTYPE_CODE_FLOAT, 64, 12},  {"I64", PLX_DTYPE_CODE_INT, 64, 13},
    {"U64", PLX_DTYPE_CODE_UINT, 64, 14},
};
#define DTYPE_COUNT (sizeof dtype_table / sizeof dtype_table[0])

static const dtype_entry *dtype_lookup(plx_dtype dtype)
{
    if (dtype.lanes != 1)
        return NULL;
    for (size_t i = 0; i < DTYPE_COUNT; i++)
        if (dtype_table[i].code == dtype.code && dtype_table[i].bits == dtype.bits)
            return &dtype_table[i];
    return NULL;
}

const char *st_dtype_name(plx_dtype dtype)
{
    const dtype_entry *e = dtype_lookup(dtype);
    return e != NULL ? e->name : NULL;
}

bool st_dtype_from_name(const char *name, plx_dtype *out)
{
    if (name == NULL)
        return false;
    for (size_t i = 0; i < DTYPE_COUNT; i++) {
        if (strcmp(dtype_table[i].name, name) == 0) {
            if (out != NULL) {
                out->code = dtype_table[i].code;
                out->bits = dtype_table[i].bits;
                out->lanes = 1;
            }
            return true;
        }
    }
    return false;
}

/* ---- UTF-8 -------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p[0..n), or 0 when invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
static size_t utf8_sequence(const unsigned char *p, size_t n)
{
    unsigned char b = p[0];
    if (b < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3;
        if (b == 0xE0)
            lo = 0xA0;
        else if (b == 0xED)
            hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4;
        if (b == 0xF0)
            lo = 0x90;
        else if (b == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

static bool utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t len = utf8_sequence(p + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

/* Checks the raw header before cJSON sees it: valid UTF-8 throughout, and
 * no raw control character or \u0000 escape inside a string (cJSON would
 * accept the first and cut the string at the second, so two different names
 * could read as one). Multi-byte UTF-8 sequences contain no ASCII bytes, so
 * tracking quotes and backslashes byte by byte is exact. Returns NULL when
 * fine, else the problem, with *at its byte offset. */
static const char *scan_header(const unsigned char *p, size_t n, size_t *at)
{
    bool in_string = false;
    for (size_t i = 0; i < n;) {
        *at = i;
        unsigned char b = p[i];
        if (b >= 0x80) {
            size_t len = utf8_sequence(p + i, n - i);
            if (len == 0)
                return "is not valid UTF-8";
            i += len;
            continue;
        }
        if (in_string) {
            if (b == '"') {
                in_string = false;
            } else if (b < 0x20) {
                return "has a raw control character in a string";
            } else if (b == '\\' && i + 1 < n) {
                if (p[i + 1] == 'u' && i + 5 < n && memcmp(p + i + 2, "0000", 4) == 0)
                    return "has a NUL character (\\u0000) in a string";
                i += 2; /* skip the escaped character (the parser checks it) */
                continue;
            }
        } else if (b == '"') {
            in_string = true;
        }
        i++;
    }
    return NULL;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct st_meta {
    const char *key;
    const char *value;
} st_meta;

struct st_file {
    char *path;
    const unsigned char *bytes; /* the whole file */
    size_t size;
    bool mapped;                /* bytes is our mmap */
    const unsigned char *data;  /* the data section */
    uint64_t data_size;
    cJSON *root;                /* the parsed header; names point into it */
    st_tensor *tensors;
    size_t n_tensors;
    size_t *by_name;            /* tensor indices sorted by name */
    st_meta *meta;              /* header order */
    size_t n_meta;
    size_t *meta_by_key;        /* indices sorted by key */
};

/* A short description of a JSON value for messages. */
static const char *json_kind(const cJSON *item, char *buf, size_t cap)
{
    if (cJSON_IsNumber(item)) {
        snprintf(buf, cap, "%.17g", item->valuedouble);
        return buf;
    }
    if (cJSON_IsString(item)) {
        snprintf(buf, cap, "the string \"%.40s\"", item->valuestring);
        return buf;
    }
    if (cJSON_IsArray(item))
        return "an array";
    if (cJSON_IsObject(item))
        return "an object";
    if (cJSON_IsBool(item))
        return "a boolean";
    if (cJSON_IsNull(item))
        return "null";
    return "invalid";
}

/* A JSON number that is an integer in [0, 2^53). */
static bool json_uint(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double v = item->valuedouble;
    if (!(v >= 0.0 && v < ST_JSON_INT_LIMIT))
        return false;
    uint64_t u = (uint64_t)v;
    if ((double)u != v)
        return false;
    *out = u;
    return true;
}

static const char *file_name_of(const st_file *f)
{
    return f->path;
}

/* Parses one tensor entry into t. Returns false with the message set. */
static bool parse_tensor(const st_file *f, const cJSON *entry, st_tensor *t, char *errbuf, size_t cap)
{
    const char *path = file_name_of(f);
    const char *name = entry->string;
    char kind[80];
    memset(t, 0, sizeof *t);
    t->name = name;
    if (!cJSON_IsObject(entry)) {
        set_error(errbuf, cap, "%s: tensor '%.*s' is %s, not an object", path, ST_NAME_IN_MSG, name,
                  json_kind(entry, kind, sizeof kind));
        return false;
    }
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (const cJSON *m = entry->child; m != NULL; m = m->next) {
        const cJSON **slot = NULL;
        if (strcmp(m->string, "dtype") == 0)
            slot = &dtype;
        else if (strcmp(m->string, "shape") == 0)
            slot = &shape;
        else if (strcmp(m->string, "data_offsets") == 0)
            slot = &offsets;
        if (slot == NULL) {
            set_error(errbuf, cap, "%s: tensor '%.*s': unknown member '%.*s' (expected dtype, shape, data_offsets)",
                      path, ST_NAME_IN_MSG, name, ST_NAME_IN_MSG, m->string);
            return false;
        }
        if (*slot != NULL) {
            set_error(errbuf, cap, "%s: tensor '%.*s': '%s' appears twice", path, ST_NAME_IN_MSG, name, m->string);
            return false;
        }
        *slot = m;
    }
    const char *missing = dtype == NULL ? "dtype" : shape == NULL ? "shape" : offsets == NULL ? "data_offsets" : NULL;
    if (missing != NULL) {
        set_error(errbuf, cap, "%s: tensor '%.*s': missing '%s'", path, ST_NAME_IN_MSG, name, missing);
        return false;
    }

    if (!cJSON_IsString(dtype)) {
        set_error(errbuf, cap, "%s: tensor '%.*s': dtype is %s, not a string", path, ST_NAME_IN_MSG, name,
                  json_kind(dtype, kind, sizeof kind));
        return false;
    }
    if (!st_dtype_from_name(dtype->valuestring, &t->dtype)) {
        set_error(errbuf, cap,
                  "%s: tensor '%.*s': unknown dtype '%.40s' (expected F64, F32, F16, BF16, I64, I32, I16, I8, "
                  "U64, U32, U16, U8 or BOOL)",
                  path, ST_NAME_IN_MSG, name, dtype->valuestring);
        return false;
    }

    if (!cJSON_IsArray(shape)) {
        set_error(errbuf, cap, "%s: tensor '%.*s': shape is %s, not an array", path, ST_NAME_IN_MSG, name,
                  json_kind(shape, kind, sizeof kind));
        return false;
    }
    int rank = cJSON_GetArraySize(shape);
    if (rank > PLX_MAX_DIMS) {
        set_error(errbuf, cap, "%s: tensor '%.*s': shape has %d dims (at most %d)", path, ST_NAME_IN_MSG, name, rank,
                  PLX_MAX_DIMS);
        return false;
    }
    t->ndim = (int32_t)rank;
    uint64_t numel = 1;
    bool numel_overflow = false;
    int d = 0;
    for (const cJSON *dim = shape->child; dim != NULL; dim = dim->next, d++) {
        uint64_t v;
        if (!json_uint(dim, &v)) {
            set_error(errbuf, cap, "%s: tensor '%.*s': shape[%d] is %s, not a non-negative integer", path,
                      ST_NAME_IN_MSG, name, d, json_kind(dim, kind, sizeof kind));
            return false;
        }
        t->shape[d] = (int64_t)v;
        if (__builtin_mul_overflow(numel, v, &numel))
            numel_overflow = true;
    }
    /* A zero dim makes an overflow in the running product harmless. */
    for (int i = 0; i < rank; i++)
        if (t->shape[i] == 0) {
            numel = 0;
            numel_overflow = false;
        }
    uint64_t esize = plx_dtype_size(t->dtype);
    uint64_t nbytes = 0;
    if (numel_overflow || numel > INT64_MAX || __builtin_mul_overflow(numel, esize, &nbytes)) {
        set_error(errbuf, cap, "%s: tensor '%.*s': shape is too large (its byte size overflows)", path,
                  ST_NAME_IN_MSG, name);
        return false;
    }
    t->numel = (int64_t)numel;
    t->nbytes = nbytes;

    uint64_t begin, end;
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 || !json_uint(offsets->child, &begin) ||
        !json_uint(offsets->child->next, &end)) {
        set_error(errbuf, cap, "%s: tensor '%.*s': data_offsets must be [begin, end], two non-negative integers",
                  path, ST_NAME_IN_MSG, name);
        return false;
    }
    if (begin > end) {
        set_error(errbuf, cap, "%s: tensor '%.*s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin",
                  path, ST_NAME_IN_MSG, name, begin, end);
        return false;
    }
    if (end > f->data_size) {
        set_error(errbuf, cap,
                  "%s: tensor '%.*s': data_offsets [%" PRIu64 ", %" PRIu64 "] exceed the data section (%" PRIu64
                  " bytes)",
                  path, ST_NAME_IN_MSG, name, begin, end, f->data_size);
        return false;
    }
    if (end - begin != nbytes) {
        char shape_text[PLX_MAX_DIMS * 21 + 3];
        size_t pos = 0;
        shape_text[pos++] = '[';
        for (int i = 0; i < rank && pos < sizeof shape_text; i++)
            pos += (size_t)snprintf(shape_text + pos, sizeof shape_text - pos, "%s%" PRId64, i > 0 ? ", " : "",
                                    t->shape[i]);
        if (pos < sizeof shape_text)
            snprintf(shape_text + pos, sizeof shape_text - pos, "]");
        set_error(errbuf, cap,
                  "%s: tensor '%.*s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                  " bytes but shape %s of %s needs %" PRIu64,
                  path, ST_NAME_IN_MSG, name, begin, end, end - begin, shape_text, dtype->valuestring, nbytes);
        return false;
    }
    t->offset = begin;
    t->data = f->data + begin;
    return true;
}

static plx_status parse_metadata(st_file *f, const cJSON *obj, char *errbuf, size_t cap)
{
    char kind[80];
    if (!cJSON_IsObject(obj)) {
        set_error(errbuf, cap, "%s: __metadata__ is %s, not an object of strings", f->path,
                  json_kind(obj, kind, sizeof kind));
        return PLX_INVALID_ARGUMENT;
    }
    size_t n = (size_t)cJSON_GetArraySize(obj);
    f->meta = calloc(n > 0 ? n : 1, sizeof *f->meta);
    f->meta_by_key = calloc(n > 0 ? n : 1, sizeof *f->meta_by_key);
    if (f->meta == NULL || f->meta_by_key == NULL) {
        set_error(errbuf, cap, "%s: out of memory", f->path);
        return PLX_OUT_OF_MEMORY;
    }
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        if (!cJSON_IsString(m)) {
            set_error(errbuf, cap, "%s: __metadata__ '%.*s' is %s, not a string", f->path, ST_NAME_IN_MSG, m->string,
                      json_kind(m, kind, sizeof kind));
            return PLX_INVALID_ARGUMENT;
        }
        f->meta[f->n_meta].key = m->string;
        f->meta[f->n_meta].value = m->valuestring;
        f->meta_by_key[f->n_meta] = f->n_meta;
        f->n_meta++;
    }
    return PLX_OK;
}

/* qsort has no context argument; the arrays sorted hold pointers whose
 * first member is the string compared. */
static int compare_tensor_names(const void *a, const void *b)
{
    const st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int compare_meta_keys(const void *a, const void *b)
{
    const st_meta *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

static int compare_offsets(const void *a, const void *b)
{
    const st_tensor *const *x = a, *const *y = b;
    if ((*x)->offset != (*y)->offset)
        return (*x)->offset < (*y)->offset ? -1 : 1;
    if ((*x)->nbytes != (*y)->nbytes)
        return (*x)->nbytes < (*y)->nbytes ? -1 : 1;
    return 0;
}

/* Sorts the name and key indices, refuses duplicates and overlaps. */
static bool check_unique_and_disjoint(st_file *f, char *errbuf, size_t cap)
{
    size_t n = f->n_tensors;
    const st_tensor **order = malloc((n > 0 ? n : 1) * sizeof *order);
    if (order == NULL) {
        set_error(errbuf, cap, "%s: out of memory", f->path);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = &f->tensors[i];
    qsort(order, n, sizeof *order, compare_tensor_names);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            set_error(errbuf, cap, "%s: tensor '%.*s' appears twice in the header", f->path, ST_NAME_IN_MSG,
                      order[i]->name);
            free(order);
            return false;
        }
    }
    for (size_t i = 0; i < n; i++)
        f->by_name[i] = (size_t)(order[i] - f->tensors);

    qsort(order, n, sizeof *order, compare_offsets);
    const st_tensor *last = NULL; /* the non-empty tensor reaching furthest so far */
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = order[i];
        if (t->nbytes == 0)
            continue;
        if (last != NULL && t->offset < last->offset + last->nbytes) {
            set_error(errbuf, cap,
                      "%s: tensors '%.*s' and '%.*s' overlap (data_offsets [%" PRIu64 ", %" PRIu64 "] and [%" PRIu64
                      ", %" PRIu64 "])",
                      f->path, ST_NAME_IN_MSG, last->name, ST_NAME_IN_MSG, t->name, last->offset,
                      last->offset + last->nbytes, t->offset, t->offset + t->nbytes);
            free(order);
            return false;
        }
        if (last == NULL || t->offset + t->nbytes > last->offset + last->nbytes)
            last = t;
    }
    free(order);

    if (f->n_meta > 1) {
        const st_meta **keys = malloc(f->n_meta * sizeof *keys);
        if (keys == NULL) {
            set_error(errbuf, cap, "%s: out of memory", f->path);
            return false;
        }
        for (size_t i = 0; i < f->n_meta; i++)
            keys[i] = &f->meta[i];
        qsort(keys, f->n_meta, sizeof *keys, compare_meta_keys);
        for (size_t i = 1; i < f->n_meta; i++) {
            if (strcmp(keys[i - 1]->key, keys[i]->key) == 0) {
                set_error(errbuf, cap, "%s: __metadata__ key '%.*s' appears twice", f->path, ST_NAME_IN_MSG,
                          keys[i]->key);
                free(keys);
                return false;
            }
        }
        for (size_t i = 0; i < f->n_meta; i++)
            f->meta_by_key[i] = (size_t)(keys[i] - f->meta);
        free(keys);
    }
    return true;
}

static plx_status parse_file(st_file *f, char *errbuf, size_t cap)
{
    const char *path = f->path;
    if (f->size < 8) {
        set_error(errbuf, cap, "%s: file is %zu bytes long; a safetensors file starts with an 8-byte header length",
                  path, f->size);
        return PLX_INVALID_ARGUMENT;
    }
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | f->bytes[i];
    if (n > ST_MAX_HEADER_BYTES) {
        set_error(errbuf, cap, "%s: header length %" PRIu64 " exceeds the limit of %u bytes", path, n,
                  ST_MAX_HEADER_BYTES);
        return PLX_INVALID_ARGUMENT;
    }
    if (n > f->size - 8) {
        set_error(errbuf, cap, "%s: header length %" PRIu64 " exceeds the %zu bytes after the length field", path,
                  n, f->size - 8);
        return PLX_INVALID_ARGUMENT;
    }
    const unsigned char *header = f->bytes + 8;
    f->data = header + n;
    f->data_size = (uint64_t)(f->size - 8 - (size_t)n);

    size_t at = 0;
    const char *problem = scan_header(header, (size_t)n, &at);
    if (problem != NULL) {
        set_error(errbuf, cap, "%s: header %s (at byte %zu of the header)", path, problem, at);
        return PLX_INVALID_ARGUMENT;
    }
    const char *end = NULL;
    f->root = cJSON_ParseWithLengthOpts((const char *)header, (size_t)n, &end, 0);
    if (f->root == NULL) {
        size_t pos = end != NULL && end >= (const char *)header ? (size_t)(end - (const char *)header) : 0;
        set_error(errbuf, cap, "%s: header is not valid JSON (near byte %zu of the header)", path, pos);
        return PLX_INVALID_ARGUMENT;
    }
    for (const char *p = end; p < (const char *)header + n; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            set_error(errbuf, cap, "%s: header has bytes after its JSON object (at byte %zu of the header)", path,
                      (size_t)(p - (const char *)header));
            return PLX_INVALID_ARGUMENT;
        }
    }
    if (!cJSON_IsObject(f->root)) {
        char kind[80];
        set_error(errbuf, cap, "%s: header is %s, not a JSON object", path, json_kind(f->root, kind, sizeof kind));
        return PLX_INVALID_ARGUMENT;
    }

    size_t count = 0;
    const cJSON *metadata = NULL;
    for (const cJSON *m = f->root->child; m != NULL; m = m->next) {
        if (strcmp(m->string, "__metadata__") == 0) {
            if (metadata != NULL) {
                set_error(errbuf, cap, "%s: __metadata__ appears twice in the header", path);
                return PLX_INVALID_ARGUMENT;
            }
            metadata = m;
        } else {
            count++;
        }
    }
    if (metadata != NULL) {
        plx_status status = parse_metadata(f, metadata, errbuf, cap);
        if (status != PLX_OK)
            return status;
    }

    f->tensors = calloc(count > 0 ? count : 1, sizeof *f->tensors);
    f->by_name = calloc(count > 0 ? count : 1, sizeof *f->by_name);
    if (f->tensors == NULL || f->by_name == NULL) {
        set_error(errbuf, cap, "%s: out of memory", path);
        return PLX_OUT_OF_MEMORY;
    }
    for (const cJSON *m = f->root->child; m != NULL; m = m->next) {
        if (m == metadata)
            continue;
        if (!parse_tensor(f, m, &f->tensors[f->n_tensors], errbuf, cap))
            return PLX_INVALID_ARGUMENT;
        f->n_tensors++;
    }
    if (!check_unique_and_disjoint(f, errbuf, cap))
        return PLX_INVALID_ARGUMENT;
    return PLX_OK;
}

static plx_status file_new(const char *name, st_file **out, char *errbuf, size_t cap)
{
    st_file *f = calloc(1, sizeof *f);
    if (f != NULL)
        f->path = strdup(name);
    if (f == NULL || f->path == NULL) {
        free(f);
        set_error(errbuf, cap, "%s: out of memory", name);
        return PLX_OUT_OF_MEMORY;
    }
    *out = f;
    return PLX_OK;
}

plx_status st_file_open_memory(const void *bytes, size_t size, const char *name, st_file **out, char *errbuf,
                               size_t cap)
{
    if (name == NULL)
        name = "<memory>";
    if (out == NULL || (bytes == NULL && size > 0)) {
        set_error(errbuf, cap, "%s: no buffer to read", name);
        return PLX_INVALID_ARGUMENT;
    }
    *out = NULL;
    st_file *f;
    plx_status status = file_new(name, &f, errbuf, cap);
    if (status != PLX_OK)
        return status;
    f->bytes = bytes;
    f->size = size;
    status = parse_file(f, errbuf, cap);
    if (status != PLX_OK) {
        st_file_close(f);
        return status;
    }
    *out = f;
    return PLX_OK;
}

plx_status st_file_open(const char *path, st_file **out, char *errbuf, size_t cap)
{
    if (out == NULL || path == NULL || path[0] == '\0') {
        set_error(errbuf, cap, "safetensors: no file name");
        return PLX_INVALID_ARGUMENT;
    }
    *out = NULL;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
     * refused as not a regular file); it changes nothing for files. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int err = errno;
        set_error(errbuf, cap, "%s: cannot open: %s", path, strerror(err));
        return err == ENOENT ? PLX_NOT_FOUND : PLX_IO_ERROR;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_error(errbuf, cap, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return PLX_IO_ERROR;
    }
    if (!S_ISREG(st.st_mode)) {
        set_error(errbuf, cap, "%s: not a regular file", path);
        close(fd);
        return PLX_IO_ERROR;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        set_error(errbuf, cap, "%s: file too large to map", path);
        close(fd);
        return PLX_IO_ERROR;
    }
    st_file *f;
    plx_status status = file_new(path, &f, errbuf, cap);
    if (status != PLX_OK) {
        close(fd);
        return status;
    }
    f->size = (size_t)st.st_size;
    if (f->size > 0) {
        void *map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            set_error(errbuf, cap, "%s: cannot map %zu bytes: %s", path, f->size, strerror(errno));
            close(fd);
            st_file_close(f);
            return PLX_IO_ERROR;
        }
        f->bytes = map;
        f->mapped = true;
    }
    close(fd); /* the mapping keeps the file */
    status = parse_file(f, errbuf, cap);
    if (status != PLX_OK) {
        st_file_close(f);
        return status;
    }
    *out = f;
    return PLX_OK;
}

void st_file_close(st_file *file)
{
    if (file == NULL)
        return;
    if (file->mapped)
        munmap((void *)file->bytes, file->size);
    cJSON_Delete(file->root);
    free(file->tensors);
    free(file->by_name);
    free(file->meta);
    free(file->meta_by_key);
    free(file->path);
    free(file);
}

const char *st_file_path(const st_file *file)
{
    return file != NULL ? file->path : NULL;
}

size_t st_tensor_count(const st_file *file)
{
    return file != NULL ? file->n_tensors : 0;
}

const st_tensor *st_tensor_at(const st_file *file, size_t i)
{
    if (file == NULL || i >= file->n_tensors)
        return NULL;
    return &file->tensors[i];
}

const st_tensor *st_tensor_find(const st_file *file, const char *name)
{
    if (file == NULL || name == NULL)
        return NULL;
    size_t lo = 0, hi = file->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const st_tensor *t = &file->tensors[file->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

bool st_tensor_is_aligned(const st_tensor *t)
{
    size_t esize = plx_dtype_size(t->dtype);
    return esize == 0 || (uintptr_t)t->data % esize == 0;
}

size_t st_metadata_count(const st_file *file)
{
    return file != NULL ? file->n_meta : 0;
}

bool st_metadata_at(const st_file *file, size_t i, const char **key, const char **value)
{
    if (file == NULL || i >= file->n_meta)
        return false;
    if (key != NULL)
        *key = file->meta[i].key;
    if (value != NULL)
        *value = file->meta[i].value;
    return true;
}

const char *st_metadata_get(const st_file *file, const char *key)
{
    if (file == NULL || key == NULL)
        return NULL;
    size_t lo = 0, hi = file->n_meta;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const st_meta *m = &file->meta[file->meta_by_key[mid]];
        int c = strcmp(key, m->key);
        if (c == 0)
            return m->value;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* The value of key, or NULL with a PLX_NOT_FOUND message. */
static const char *metadata_required(const st_file *file, const char *key, char *errbuf, size_t cap)
{
    const char *value = st_metadata_get(file, key);
    if (value == NULL)
        set_error(errbuf, cap, "%s: __metadata__ has no '%.*s'", file != NULL ? file->path : "safetensors",
                  ST_NAME_IN_MSG, key != NULL ? key : "");
    return value;
}

static plx_status metadata_bad(const st_file *file, const char *key, const char *value, const char *expected,
                               char *errbuf, size_t cap)
{
    set_error(errbuf, cap, "%s: __metadata__ '%.*s' is \"%.64s%s\", not %s", file->path, ST_NAME_IN_MSG, key, value,
              strlen(value) > 64 ? "..." : "", expected);
    return PLX_INVALID_ARGUMENT;
}

static bool all_digits(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

plx_status st_metadata_get_i64(const st_file *file, const char *key, int64_t *out, char *errbuf, size_t cap)
{
    const char *value = metadata_required(file, key, errbuf, cap);
    if (value == NULL)
        return PLX_NOT_FOUND;
    if (!all_digits(value[0] == '-' ? value + 1 : value))
        return metadata_bad(file, key, value, "a decimal integer", errbuf, cap);
    errno = 0;
    long long v = strtoll(value, NULL, 10);
    if (errno == ERANGE)
        return metadata_bad(file, key, value, "a 64-bit integer", errbuf, cap);
    *out = (int64_t)v;
    return PLX_OK;
}

plx_status st_metadata_get_u64(const st_file *file, const char *key, uint64_t *out, char *errbuf, size_t cap)
{
    const char *value = metadata_required(file, key, errbuf, cap);
    if (value == NULL)
        return PLX_NOT_FOUND;
    if (!all_digits(value))
        return metadata_bad(file, key, value, "a decimal unsigned integer", errbuf, cap);
    errno = 0;
    unsigned long long v = strtoull(value, NULL, 10);
    if (errno == ERANGE)
        return metadata_bad(file, key, value, "an unsigned 64-bit integer", errbuf, cap);
    *out = (uint64_t)v;
    return PLX_OK;
}

plx_status st_metadata_get_f64(const st_file *file, const char *key, double *out, char *errbuf, size_t cap)
{
    const char *value = metadata_required(file, key, errbuf, cap);
    if (value == NULL)
        return PLX_NOT_FOUND;
    char *end = NULL;
    /* strtod skips leading spaces; refuse them so the value is exact. */
    double v = value[0] == '\0' || value[0] == ' ' || (value[0] >= '\t' && value[0] <= '\r') ? 0.0
                                                                                               : strtod(value, &end);
    if (end == NULL || end == value || *end != '\0')
        return metadata_bad(file, key, value, "a number", errbuf, cap);
    *out = v;
    return PLX_OK;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

plx_status st_metadata_get_bytes(const st_file *file, const char *key, void *out, size_t size, char *errbuf,
                                 size_t cap)
{
    const char *value = metadata_required(file, key, errbuf, cap);
    if (value == NULL)
        return PLX_NOT_FOUND;
    size_t len = strlen(value);
    if (len % 2 != 0 || len / 2 != size) {
        char expected[64];
        snprintf(expected, sizeof expected, "%zu bytes in hex", size);
        return metadata_bad(file, key, value, expected, errbuf, cap);
    }
    for (size_t i = 0; i < len; i++)
        if (hex_digit(value[i]) < 0)
            return metadata_bad(file, key, value, "hex", errbuf, cap);
    unsigned char *p = out;
    for (size_t i = 0; i < size; i++)
        p[i] = (unsigned char)(hex_digit(value[2 * i]) * 16 + hex_digit(value[2 * i + 1]));
    return PLX_OK;
}

plx_status st_metadata_get_json(const st_file *file, const char *key, struct cJSON **out, char *errbuf, size_t cap)
{
    const char *value = metadata_required(file, key, errbuf, cap);
    if (value == NULL)
        return PLX_NOT_FOUND;
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithOpts(value, &end, 1);
    if (json == NULL) {
        size_t pos = end != NULL && end >= value ? (size_t)(end - value) : 0;
        set_error(errbuf, cap, "%s: __metadata__ '%.*s' is not valid JSON (near byte %zu)", file->path,
                  ST_NAME_IN_MSG, key, pos);
        return PLX_INVALID_ARGUMENT;
    }
    *out = json;
    return PLX_OK;
}

/* ---- writing ------------------------------------------------------------ */

typedef struct writer_tensor {
    char *name;
    const dtype_entry *dtype;
    int32_t ndim;
    int64_t shape[PLX_MAX_DIMS];
    uint64_t nbytes;
    const void *data; /* borrowed, or == owned */
    void *owned;
} writer_tensor;

typedef struct writer_meta {
    char *key;
    char *value;
} writer_meta;

struct st_writer {
    writer_tensor *tensors;
    size_t n_tensors, cap_tensors;
    writer_meta *meta;
    size_t n_meta, cap_meta;
    plx_status failed; /* sticky: first failure */
    char error[512];
    atomic_file_hooks hooks;
    bool has_hooks;
};

static plx_status writer_fail(st_writer *w, plx_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static plx_status writer_fail(st_writer *w, plx_status status, const char *fmt, ...)
{
    if (w->failed == PLX_OK) {
        w->failed = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->error, sizeof w->error, fmt, ap);
        va_end(ap);
    }
    return status;
}

st_writer *st_writer_new(void)
{
    return calloc(1, sizeof(st_writer));
}

void st_writer_free(st_writer *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].owned);
    }
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->tensors);
    free(w->meta);
    free(w);
}

const char *st_writer_error(const st_writer *w)
{
    return w != NULL ? w->error : "no writer";
}

void st_writer_set_hooks(st_writer *w, const atomic_file_hooks *hooks)
{
    if (w == NULL)
        return;
    w->has_hooks = hooks != NULL;
    if (hooks != NULL)
        w->hooks = *hooks;
    else
        memset(&w->hooks, 0, sizeof w->hooks);
}

static plx_status add_tensor(st_writer *w, const char *name, plx_dtype dtype, int32_t ndim, const int64_t *shape,
                             const void *data, bool copy)
{
    if (w == NULL)
        return PLX_INVALID_ARGUMENT;
    if (name == NULL || name[0] == '\0')
        return writer_fail(w, PLX_INVALID_ARGUMENT, "a tensor has an empty name");
    if (!utf8_valid(name))
        return writer_fail(w, PLX_INVALID_ARGUMENT, "tensor name '%.*s' is not valid UTF-8", ST_NAME_IN_MSG, name);
    if (strcmp(name, "__metadata__") == 0)
        return writer_fail(w, PLX_INVALID_ARGUMENT, "a tensor may not be named '__metadata__'");
    const dtype_entry *dt = dtype_lookup(dtype);
    if (dt == NULL)
        return writer_fail(w, PLX_INVALID_ARGUMENT,
                           "tensor '%.*s': dtype (code %u, %u bits, %u lanes) has no safetensors name",
                           ST_NAME_IN_MSG, name, dtype.code, dtype.bits, dtype.lanes);
    if (ndim < 0 || ndim > PLX_MAX_DIMS || (ndim > 0 && shape == NULL))
        return writer_fail(w, PLX_INVALID_ARGUMENT, "tensor '%.*s': rank %d (expected 0..%d with a shape)",
                           ST_NAME_IN_MSG, name, (int)ndim, PLX_MAX_DIMS);
    uint64_t numel = 1;
    bool overflow = false;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return writer_fail(w, PLX_INVALID_ARGUMENT, "tensor '%.*s': dim %d is %" PRId64, ST_NAME_IN_MSG, name,
                               (int)i, shape[i]);
        if ((double)shape[i] >= ST_JSON_INT_LIMIT)
            return writer_fail(w, PLX_OVERFLOW, "tensor '%.*s': dim %d is %" PRId64 " (2^53 or more)", ST_NAME_IN_MSG,
                               name, (int)i, shape[i]);
        if (__builtin_mul_overflow(numel, (uint64_t)shape[i], &numel))
            overflow = true;
    }
    for (int32_t i = 0; i < ndim; i++)
        if (shape[i] == 0) {
            numel = 0;
            overflow = false;
        }
    uint64_t nbytes = 0;
    if (overflow || __builtin_mul_overflow(numel, (uint64_t)plx_dtype_size(dtype), &nbytes) || nbytes > SIZE_MAX ||
        (double)nbytes >= ST_JSON_INT_LIMIT)
        return writer_fail(w, PLX_OVERFLOW, "tensor '%.*s': byte size overflows", ST_NAME_IN_MSG, name);
    if (data == NULL && nbytes > 0)
        return writer_fail(w, PLX_INVALID_ARGUMENT, "tensor '%.*s': no data for %" PRIu64 " bytes", ST_NAME_IN_MSG,
                           name, nbytes);

    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors > 0 ? 2 * w->cap_tensors : 16;
        writer_tensor *grown = realloc(w->tensors, cap * sizeof *grown);
        if (grown == NULL)
            return writer_fail(w, PLX_OUT_OF_MEMORY, "tensor '%.*s': out of memory", ST_NAME_IN_MSG, name);
        w->tensors = grown;
        w->cap_tensors = cap;
    }
    writer_tensor t;
    memset(&t, 0, sizeof t);
    t.name = strdup(name);
    if (t.name == NULL)
        return writer_fail(w, PLX_OUT_OF_MEMORY, "tensor '%.*s': out of memory", ST_NAME_IN_MSG, name);
    if (copy && nbytes > 0) {
        t.owned = malloc((size_t)nbytes);
        if (t.owned == NULL) {
            free(t.name);
            return writer_fail(w, PLX_OUT_OF_MEMORY, "tensor '%.*s': out of memory for %" PRIu64 " bytes",
                               ST_NAME_IN_MSG, name, nbytes);
        }
        memcpy(t.owned, data, (size_t)nbytes);
        data = t.owned;
    }
    t.dtype = dt;
    t.ndim = ndim;
    for (int32_t i = 0; i < ndim; i++)
        t.shape[i] = shape[i];
    t.nbytes = nbytes;
    t.data = data;
    w->tensors[w->n_tensors++] = t;
    return PLX_OK;
}

plx_status st_writer_add_tensor(st_writer *w, const char *name, plx_dtype dtype, int32_t ndim,
                                const int64_t *shape, const void *data)
{
    return add_tensor(w, name, dtype, ndim, shape, data, false);
}

plx_status st_writer_add_tensor_copy(st_writer *w, const char *name, plx_dtype dtype, int32_t ndim,
                                     const int64_t *shape, const void *data)
{
    return add_tensor(w, name, dtype, ndim, shape, data, true);
}

plx_status st_writer_set_metadata(st_writer *w, const char *key, const char *value)
{
    if (w == NULL)
        return PLX_INVALID_ARGUMENT;
    if (key == NULL || value == NULL)
        return writer_fail(w, PLX_INVALID_ARGUMENT, "metadata '%.*s': no %s", ST_NAME_IN_MSG,
                           key != NULL ? key : "", key == NULL ? "key" : "value");
    if (!utf8_valid(key) || !utf8_valid(value))
        return writer_fail(w, PLX_INVALID_ARGUMENT, "metadata '%.*s': key or value is not valid UTF-8",
                           ST_NAME_IN_MSG, key);
    char *copy = strdup(value);
    if (copy == NULL)
        return writer_fail(w, PLX_OUT_OF_MEMORY, "metadata '%.*s': out of memory", ST_NAME_IN_MSG, key);
    for (size_t i = 0; i < w->n_meta; i++) {
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = copy;
            return PLX_OK;
        }
    }
    if (w->n_meta == w->cap_meta) {
        size_t cap = w->cap_meta > 0 ? 2 * w->cap_meta : 8;
        writer_meta *grown = realloc(w->meta, cap * sizeof *grown);
        if (grown == NULL) {
            free(copy);
            return writer_fail(w, PLX_OUT_OF_MEMORY, "metadata '%.*s': out of memory", ST_NAME_IN_MSG, key);
        }
        w->meta = grown;
        w->cap_meta = cap;
    }
    char *key_copy = strdup(key);
    if (key_copy == NULL) {
        free(copy);
        return writer_fail(w, PLX_OUT_OF_MEMORY, "metadata '%.*s': out of memory", ST_NAME_IN_MSG, key);
    }
    w->meta[w->n_meta].key = key_copy;
    w->meta[w->n_meta].value = copy;
    w->n_meta++;
    return PLX_OK;
}

plx_status st_writer_set_metadata_i64(st_writer *w, const char *key, int64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, value);
    return st_writer_set_metadata(w, key, text);
}

plx_status st_writer_set_metadata_u64(st_writer *w, const char *key, uint64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%" PRIu64, value);
    return st_writer_set_metadata(w, key, text);
}

plx_status st_writer_set_metadata_f64(st_writer *w, const char *key, double value)
{
    char text[40];
    snprintf(text, sizeof text, "%.17g", value);
    return st_writer_set_metadata(w, key, text);
}

plx_status st_writer_set_metadata_bytes(st_writer *w, const char *key, const void *data, size_t size)
{
    if (w == NULL)
        return PLX_INVALID_ARGUMENT;
    if (data == NULL && size > 0)
        return writer_fail(w, PLX_INVALID_ARGUMENT, "metadata '%.*s': no data", ST_NAME_IN_MSG, key != NULL ? key : "");
    if (size > (SIZE_MAX - 1) / 2)
        return writer_fail(w, PLX_OVERFLOW, "metadata '%.*s': too large", ST_NAME_IN_MSG, key != NULL ? key : "");
    char *text = malloc(2 * size + 1);
    if (text == NULL)
        return writer_fail(w, PLX_OUT_OF_MEMORY, "metadata '%.*s': out of memory", ST_NAME_IN_MSG,
                           key != NULL ? key : "");
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    for (size_t i = 0; i < size; i++) {
        text[2 * i] = digits[p[i] >> 4];
        text[2 * i + 1] = digits[p[i] & 15];
    }
    text[2 * size] = '\0';
    plx_status status = st_writer_set_metadata(w, key, text);
    free(text);
    return status;
}

plx_status st_writer_set_metadata_json(st_writer *w, const char *key, const struct cJSON *value)
{
    if (w == NULL)
        return PLX_INVALID_ARGUMENT;
    if (value == NULL)
        return writer_fail(w, PLX_INVALID_ARGUMENT, "metadata '%.*s': no JSON value", ST_NAME_IN_MSG,
                           key != NULL ? key : "");
    char *text = cJSON_PrintUnformatted(value);
    if (text == NULL)
        return writer_fail(w, PLX_OUT_OF_MEMORY, "metadata '%.*s': cannot print the JSON value", ST_NAME_IN_MSG,
                           key != NULL ? key : "");
    plx_status status = st_writer_set_metadata(w, key, text);
    cJSON_free(text);
    return status;
}

/* A growable byte buffer for the header. */
typedef struct text_buf {
    char *p;
    size_t len, cap;
    bool oom;
} text_buf;

static void buf_put(text_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *grown = realloc(b->p, cap);
        if (grown == NULL) {
            b->oom = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(text_buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

static void buf_u64(text_buf *b, uint64_t v)
{
    char text[24];
    int n = snprintf(text, sizeof text, "%" PRIu64, v);
    buf_put(b, text, (size_t)n);
}

/* A JSON string, escaped as serde_json does: quote, backslash and control
 * characters (short forms where JSON has them, else \u00xx); UTF-8 as is. */
static void buf_json_string(text_buf *b, const char *s)
{
    buf_put(b, "\"", 1);
    const char *run = s;
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        const char *esc = NULL;
        char hex[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(hex, sizeof hex, "\\u%04x", c);
                esc = hex;
            }
        }
        if (esc != NULL) {
            buf_put(b, run, (size_t)(p - run));
            buf_str(b, esc);
            run = p + 1;
        }
    }
    buf_str(b, run);
    buf_put(b, "\"", 1);
}

/* Data order: largest alignment first, then name (the reference order). */
static int compare_layout(const void *a, const void *b)
{
    const writer_tensor *const *x = a, *const *y = b;
    if ((*x)->dtype->rank != (*y)->dtype->rank)
        return (*x)->dtype->rank > (*y)->dtype->rank ? -1 : 1;
    return strcmp((*x)->name, (*y)->name);
}

static int compare_writer_names(const void *a, const void *b)
{
    const writer_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int compare_meta_out(const void *a, const void *b)
{
    const writer_meta *const *x = a, *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

/* Where the bytes go: an atomic_file or a memory buffer. */
typedef struct sink {
    plx_status (*write)(void *arg, const void *data, size_t n, char *errbuf, size_t cap);
    void *arg;
} sink;

/* Builds the header and writes the whole file to `out`. */
static plx_status writer_emit(const st_writer *w, const char *path, const sink *out, uint64_t *total,
                              char *errbuf, size_t cap)
{
    if (w->failed != PLX_OK) {
        set_error(errbuf, cap, "%s: not written: %s", path, w->error);
        return w->failed;
    }
    size_t n = w->n_tensors;
    const writer_tensor **order = malloc((n > 0 ? n : 1) * sizeof *order);
    const writer_meta **keys = malloc((w->n_meta > 0 ? w->n_meta : 1) * sizeof *keys);
    text_buf header = {0};
    plx_status status = PLX_OK;
    if (order == NULL || keys == NULL) {
        set_error(errbuf, cap, "%s: out of memory", path);
        status = PLX_OUT_OF_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = &w->tensors[i];
    qsort(order, n, sizeof *order, compare_layout);
    /* A name reused with another dtype is not adjacent in data order, so
     * duplicates are found on a copy sorted by name alone. */
    {
        const writer_tensor **names = malloc((n > 0 ? n : 1) * sizeof *names);
        if (names == NULL) {
            set_error(errbuf, cap, "%s: out of memory", path);
            status = PLX_OUT_OF_MEMORY;
            goto done;
        }
        memcpy(names, order, n * sizeof *names);
        qsort(names, n, sizeof *names, compare_writer_names);
        for (size_t i = 1; i < n; i++) {
            if (strcmp(names[i - 1]->name, names[i]->name) == 0) {
                set_error(errbuf, cap, "%s: tensor '%.*s' was added twice", path, ST_NAME_IN_MSG, names[i]->name);
                status = PLX_INVALID_ARGUMENT;
                break;
            }
        }
        free(names);
        if (status != PLX_OK)
            goto done;
    }
    for (size_t i = 0; i < w->n_meta; i++)
        keys[i] = &w->meta[i];
    qsort(keys, w->n_meta, sizeof *keys, compare_meta_out);

    buf_put(&header, "{", 1);
    bool first = true;
    if (w->n_meta > 0) {
        buf_str(&header, "\"__metadata__\":{");
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i > 0)
                buf_put(&header, ",", 1);
            buf_json_string(&header, keys[i]->key);
            buf_put(&header, ":", 1);
            buf_json_string(&header, keys[i]->value);
        }
        buf_put(&header, "}", 1);
        first = false;
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const writer_tensor *t = order[i];
        if (!first)
            buf_put(&header, ",", 1);
        first = false;
        buf_json_string(&header, t->name);
        buf_str(&header, ":{\"dtype\":");
        buf_json_string(&header, t->dtype->name);
        buf_str(&header, ",\"shape\":[");
        for (int32_t d = 0; d < t->ndim; d++) {
            if (d > 0)
                buf_put(&header, ",", 1);
            buf_u64(&header, (uint64_t)t->shape[d]);
        }
        buf_str(&header, "],\"data_offsets\":[");
        buf_u64(&header, offset);
        buf_put(&header, ",", 1);
        if (__builtin_add_overflow(offset, t->nbytes, &offset) || (double)offset >= ST_JSON_INT_LIMIT) {
            set_error(errbuf, cap, "%s: the tensors' total size overflows", path);
            status = PLX_OVERFLOW;
            goto done;
        }
        buf_u64(&header, offset);
        buf_str(&header, "]}");
    }
    buf_put(&header, "}", 1);
    while (header.len % 8 != 0)
        buf_put(&header, " ", 1);
    if (header.oom) {
        set_error(errbuf, cap, "%s: out of memory for the header", path);
        status = PLX_OUT_OF_MEMORY;
        goto done;
    }
    if (header.len > ST_MAX_HEADER_BYTES) {
        set_error(errbuf, cap, "%s: header of %zu bytes exceeds the limit of %u", path, header.len,
                  ST_MAX_HEADER_BYTES);
        status = PLX_OVERFLOW;
        goto done;
    }
    if (__builtin_add_overflow(offset, (uint64_t)(8 + header.len), total) || *total > SIZE_MAX) {
        set_error(errbuf, cap, "%s: the file size overflows", path);
        status = PLX_OVERFLOW;
        goto done;
    }
    if (out == NULL)
        goto done; /* size only */

    unsigned char length[8];
    for (int i = 0; i < 8; i++)
        length[i] = (unsigned char)((uint64_t)header.len >> (8 * i));
    status = out->write(out->arg, length, sizeof length, errbuf, cap);
    if (status == PLX_OK)
        status = out->write(out->arg, header.p, header.len, errbuf, cap);
    for (size_t i = 0; i < n && status == PLX_OK; i++)
        if (order[i]->nbytes > 0)
            status = out->write(out->arg, order[i]->data, (size_t)order[i]->nbytes, errbuf, cap);
done:
    free(order);
    free(keys);
    free(header.p);
    return status;
}

static plx_status sink_file(void *arg, const void *data, size_t n, char *errbuf, size_t cap)
{
    return atomic_file_write(arg, data, n, errbuf, cap);
}

plx_status st_writer_write(const st_writer *w, const char *path, char *errbuf, size_t cap)
{
    if (w == NULL || path == NULL) {
        set_error(errbuf, cap, "%s: no writer", path != NULL ? path : "safetensors");
        return PLX_INVALID_ARGUMENT;
    }
    /* Validate and size first, so a writer in error never creates a temp. */
    uint64_t total = 0;
    plx_status status = writer_emit(w, path, NULL, &total, errbuf, cap);
    if (status != PLX_OK)
        return status;
    atomic_file *f = NULL;
    status = atomic_file_begin(path, w->has_hooks ? &w->hooks : NULL, &f, errbuf, cap);
    if (status != PLX_OK)
        return status;
    sink out = {sink_file, f};
    status = writer_emit(w, path, &out, &total, errbuf, cap);
    if (status != PLX_OK) {
        atomic_file_abort(f);
        return status;
    }
    return atomic_file_commit(f, errbuf, cap);
}

typedef struct memory_sink {
    unsigned char *p;
    size_t len, cap;
} memory_sink;

static plx_status sink_memory(void *arg, const void *data, size_t n, char *errbuf, size_t cap)
{
    memory_sink *m = arg;
    if (n > m->cap - m->len) {
        set_error(errbuf, cap, "<memory>: internal error: size changed while writing");
        return PLX_INTERNAL;
    }
    memcpy(m->p + m->len, data, n);
    m->len += n;
    return PLX_OK;
}

plx_status st_writer_serialize(const st_writer *w, void **out, size_t *size, char *errbuf, size_t cap)
{
    if (w == NULL || out == NULL || size == NULL) {
        set_error(errbuf, cap, "<memory>: no writer or output");
        return PLX_INVALID_ARGUMENT;
    }
    *out = NULL;
    *size = 0;
    uint64_t total = 0;
    plx_status status = writer_emit(w, "<memory>", NULL, &total, errbuf, cap);
    if (status != PLX_OK)
        return status;
    memory_sink m = {malloc((size_t)total), 0, (size_t)total};
    if (m.p == NULL) {
        set_error(errbuf, cap, "<memory>: out of memory for %" PRIu64 " bytes", total);
        return PLX_OUT_OF_MEMORY;
    }
    sink sk = {sink_memory, &m};
    status = writer_emit(w, "<memory>", &sk, &total, errbuf, cap);
    if (status != PLX_OK) {
        free(m.p);
        return status;
    }
    *out = m.p;
    *size = m.len;
    return PLX_OK;
}

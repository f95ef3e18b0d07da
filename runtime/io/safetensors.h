/*
 * safetensors.h — reading and writing safetensors files, the format of
 * Plexus checkpoints (internal to the runtime; not API).
 *
 * Format (https://github.com/huggingface/safetensors):
 *   bytes [0, 8)        N, the header length, unsigned 64-bit little-endian
 *   bytes [8, 8 + N)    the header: a UTF-8 JSON object
 *                         {"__metadata__": {"key": "string value", ...},
 *                          "name": {"dtype": "F32", "shape": [3, 4],
 *                                   "data_offsets": [begin, end]}, ...}
 *   bytes [8 + N, end)  the data section; data_offsets are relative to its
 *                       start; tensors are row-major and little-endian.
 * dtypes and their plx_dtype: F64 F32 F16 (float), BF16 (bfloat), I64 I32
 * I16 I8 (int), U64 U32 U16 U8 (uint), BOOL (bool, one byte). The 8-bit
 * float types (F8_E4M3, F8_E5M2) are refused: Plexus has no such dtype.
 *
 * Reading never trusts the file. st_file_open checks, before anything is
 * used: the file holds the 8-byte length; N <= 100,000,000 (the reference
 * implementation's limit) and 8 + N <= file size; the header is valid UTF-8
 * and one JSON object (spaces may follow it) whose strings hold no NUL or
 * raw control character; "__metadata__" (at most one) is an object of
 * strings; every other member is a tensor: an object with exactly the
 * members dtype (a known name), shape (an array of at most PLX_MAX_DIMS
 * non-negative integers < 2^53) and data_offsets ([begin, end], integers,
 * begin <= end <= data section size), where end - begin equals the number
 * of elements times the element size (computed with overflow checks); no
 * name appears twice, no metadata key appears twice; the byte ranges of
 * non-empty tensors do not overlap. Gaps between tensors and bytes after
 * the last one are accepted (the reference reader refuses them; some other
 * writers align tensors with padding). Nothing in a file is ever executed.
 *
 * Every error message names the file (as given to open) and the problem:
 *   "model.ckpt: tensor 'fc1.weight': data_offsets [0, 400] exceed the
 *    data section (256 bytes)"
 * Messages go to a caller's buffer (errbuf, cap); errbuf may be NULL when
 * cap is 0; longer messages are truncated.
 *
 * Writing produces the same bytes as the reference implementation (up to
 * the order of metadata keys, which it leaves to a hash map and we sort):
 * compact JSON, "__metadata__" first (only when there is metadata), then
 * the tensors in data order; the header is padded with spaces to a multiple
 * of 8 bytes, so the data section starts 8-byte aligned in the file; the
 * tensors are laid out contiguously, sorted by element alignment (largest
 * first) then by name (bytewise), which aligns every tensor to its element
 * size without padding. Files go through atomic_file: a crash or failure
 * never leaves a broken or missing file at the target.
 *
 * Thread safety: an st_file is immutable after st_file_open; any number of
 * threads may read it at once. An st_writer is used by one thread at a time.
 */
#ifndef PLX_IO_SAFETENSORS_H
#define PLX_IO_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../abi/plexus_types.h"
#include "atomic_file.h"

/* The largest header accepted, in bytes (as the reference implementation). */
#define ST_MAX_HEADER_BYTES 100000000u

struct cJSON; /* <cJSON.h>; only the JSON metadata helpers use it */

/* ---- dtypes ------------------------------------------------------------- */

/* The safetensors name of a dtype ("F32", "BF16", ...), or NULL when the
 * format has none. */
const char *st_dtype_name(plx_dtype dtype);
/* The dtype of a safetensors name; false (and *out untouched) when the name
 * is unknown or has no Plexus dtype. */
bool st_dtype_from_name(const char *name, plx_dtype *out);

/* ---- reading ------------------------------------------------------------ */

typedef struct st_file st_file;

/* One tensor of an open file. Everything points into the st_file and lives
 * until st_file_close. */
typedef struct st_tensor {
    const char *name;            /* UTF-8, NUL-terminated, no NUL inside */
    plx_dtype dtype;
    int32_t ndim;                /* 0 for a scalar (one element) */
    int64_t shape[PLX_MAX_DIMS]; /* ndim entries; the rest are 0 */
    int64_t numel;               /* product of shape (1 when ndim == 0) */
    uint64_t nbytes;             /* numel * element size */
    uint64_t offset;             /* data_offsets[0]: from the data section start */
    /* nbytes bytes, row-major, little-endian. Read-only. Aligned to the
     * element size in files written by this module or the reference
     * implementation; a foreign file may place it anywhere, so copy with
     * memcpy unless st_tensor_is_aligned says so. Not to be dereferenced
     * when nbytes == 0. */
    const void *data;
} st_tensor;

/* Opens and validates a file (see the top of this header). The file is
 * mapped read-only (mmap, MAP_PRIVATE); tensor data is not copied. Files
 * written through atomic_file are replaced by rename, never changed in
 * place, so a mapping stays valid while a newer checkpoint is written; but
 * if another program truncates the file in place while it is open, reading
 * tensor data may raise SIGBUS (true of any mmap reader).
 * On success *out must be closed with st_file_close.
 * Fails with PLX_NOT_FOUND (no such file), PLX_IO_ERROR (cannot open, read
 * or map; not a regular file), PLX_INVALID_ARGUMENT (malformed file),
 * PLX_OUT_OF_MEMORY. */
plx_status st_file_open(const char *path, st_file **out, char *errbuf, size_t cap);

/* The same on `size` bytes in memory. The bytes are borrowed: they must
 * stay unchanged until st_file_close. `name` (copied; NULL means
 * "<memory>") stands for the file in messages. */
plx_status st_file_open_memory(const void *bytes, size_t size, const char *name, st_file **out, char *errbuf,
                               size_t cap);

/* Unmaps and frees. st_file_close(NULL) is a no-op. */
void st_file_close(st_file *file);

/* The name given to open (for messages). */
const char *st_file_path(const st_file *file);

/* Number of tensors; st_tensor_at(i) for i < count returns them in header
 * order (for files of this writer and the reference's: data order), NULL
 * when i is out of range. */
size_t st_tensor_count(const st_file *file);
const st_tensor *st_tensor_at(const st_file *file, size_t i);
/* The tensor with this exact name (bytewise), or NULL. O(log n). */
const st_tensor *st_tensor_find(const st_file *file, const char *name);
/* True when t->data is aligned to t's element size. */
bool st_tensor_is_aligned(const st_tensor *t);

/* Metadata ("__metadata__"), in header order. st_metadata_at returns false
 * when i is out of range; otherwise sets *key and *value (either pointer may
 * be NULL), which live until st_file_close. */
size_t st_metadata_count(const st_file *file);
bool st_metadata_at(const st_file *file, size_t i, const char **key, const char **value);
/* The value of a key, or NULL when absent. O(log n). */
const char *st_metadata_get(const st_file *file, const char *key);

/* Typed metadata, as written by the st_writer_set_metadata_* helpers below.
 * Each fails with PLX_NOT_FOUND when the key is absent and with
 * PLX_INVALID_ARGUMENT when the value does not parse exactly (messages name
 * the file and key); *out is untouched on failure.
 *   i64 / u64: decimal, optional '-' for i64, no '+', spaces or overflow;
 *   f64: as strtod reads it, whole string consumed (so "nan", "inf" too);
 *   bytes: hex (either case) of exactly `size` bytes;
 *   json: any JSON value; *out is a new tree the caller frees with
 *   cJSON_Delete. */
plx_status st_metadata_get_i64(const st_file *file, const char *key, int64_t *out, char *errbuf, size_t cap);
plx_status st_metadata_get_u64(const st_file *file, const char *key, uint64_t *out, char *errbuf, size_t cap);
plx_status st_metadata_get_f64(const st_file *file, const char *key, double *out, char *errbuf, size_t cap);
plx_status st_metadata_get_bytes(const st_file *file, const char *key, void *out, size_t size, char *errbuf,
                                 size_t cap);
plx_status st_metadata_get_json(const st_file *file, const char *key, struct cJSON **out, char *errbuf,
                                size_t cap);

/* ---- writing ------------------------------------------------------------ */

typedef struct st_writer st_writer;

/* A new, empty writer; NULL when out of memory. Free with st_writer_free. */
st_writer *st_writer_new(void);
/* Frees the writer and the copies it made; borrowed data is not touched.
 * st_writer_free(NULL) is a no-op. */
void st_writer_free(st_writer *w);

/* Adds a tensor. name (UTF-8, non-empty, not "__metadata__") and shape are
 * copied; ndim is 0..PLX_MAX_DIMS (0: a scalar, one element); shape may be
 * NULL when ndim is 0; dims are >= 0; dtype has a safetensors name. `data`
 * (numel * element size bytes, row-major, in host = little-endian order) is
 * BORROWED: it must stay valid and unchanged until the last
 * st_writer_write/serialize call or st_writer_free; it may be NULL only
 * when the tensor has no bytes. Use st_writer_add_tensor_copy for data that
 * will not live that long (it copies now).
 * Errors are sticky: the first failed add or set is remembered (see
 * st_writer_error) and makes st_writer_write fail, so callers may check
 * only the write. Fails with PLX_INVALID_ARGUMENT (message names the
 * tensor), PLX_OVERFLOW (size does not fit), PLX_OUT_OF_MEMORY. A name
 * added twice is reported by st_writer_write. */
plx_status st_writer_add_tensor(st_writer *w, const char *name, plx_dtype dtype, int32_t ndim,
                                const int64_t *shape, const void *data);
plx_status st_writer_add_tensor_copy(st_writer *w, const char *name, plx_dtype dtype, int32_t ndim,
                                     const int64_t *shape, const void *data);

/* Sets a metadata string (key and value UTF-8; both copied). Setting a key
 * again replaces its value. Sticky errors as above. */
plx_status st_writer_set_metadata(st_writer *w, const char *key, const char *value);
/* Typed helpers, read back by st_metadata_get_*: decimal integers; f64 with
 * 17 significant digits (round-trips exactly); bytes as lowercase hex (for
 * RNG states and other small binary state); json as compact JSON text. */
plx_status st_writer_set_metadata_i64(st_writer *w, const char *key, int64_t value);
plx_status st_writer_set_metadata_u64(st_writer *w, const char *key, uint64_t value);
plx_status st_writer_set_metadata_f64(st_writer *w, const char *key, double value);
plx_status st_writer_set_metadata_bytes(st_writer *w, const char *key, const void *data, size_t size);
plx_status st_writer_set_metadata_json(st_writer *w, const char *key, const struct cJSON *value);

/* The first sticky error ("tensor 'w': dim 1 is -3"), or "" when none. Lives
 * until the next call on w. */
const char *st_writer_error(const st_writer *w);

/* Replaces the system calls used by st_writer_write (fault injection for
 * tests); NULL restores the real ones. The table is copied. */
void st_writer_set_hooks(st_writer *w, const atomic_file_hooks *hooks);

/* Writes the file atomically (see atomic_file.h): on failure the previous
 * file at `path`, if any, is left byte-identical. The writer is unchanged
 * and may be written again. Fails with the sticky status of an earlier add
 * or set, PLX_INVALID_ARGUMENT (a tensor name added twice), PLX_OVERFLOW,
 * PLX_NOT_FOUND (directory missing), PLX_IO_ERROR, PLX_OUT_OF_MEMORY;
 * messages start with the path. */
plx_status st_writer_write(const st_writer *w, const char *path, char *errbuf, size_t cap);

/* The same file as one malloc'd buffer (*out, *size; the caller frees
 * *out). Messages start with "<memory>". */
plx_status st_writer_serialize(const st_writer *w, void **out, size_t *size, char *errbuf, size_t cap);

#endif

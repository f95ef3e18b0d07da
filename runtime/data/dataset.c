/*
 * dataset.c — reading files whole (gzip or raw), in-memory datasets built
 * from IDX or CSV files, normalization, seeded splits and epoch orders,
 * and the data position saved in checkpoints. See dataset.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dataset.h"

plx_status data_fail(data_error *err, plx_status status, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

/* ---- Whole files ---------------------------------------------------------- */

/* gzread takes an unsigned length that must fit an int. */
#define READ_CHUNK ((size_t)1 << 30)

plx_status data_read_file(const char *path, uint64_t max_bytes, unsigned char **out, size_t *len, data_error *err)
{
    if (path == NULL || out == NULL || len == NULL)
        return data_fail(err, PLX_INVALID_ARGUMENT, "data_read_file: NULL argument");
    if (max_bytes == 0)
        max_bytes = DATA_DEFAULT_MAX_BYTES;
    if (max_bytes > SIZE_MAX / 2)
        max_bytes = SIZE_MAX / 2;
    /* O_NONBLOCK: opening a FIFO must not hang waiting for a writer; it is
     * refused below, and regular files ignore the flag. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return data_fail(err, PLX_IO_ERROR, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return data_fail(err, PLX_IO_ERROR, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return data_fail(err, PLX_IO_ERROR, "%s: not a regular file (%s)", path,
                         S_ISDIR(st.st_mode) ? "a directory" : "a device, pipe or socket");
    }
    gzFile gz = gzdopen(fd, "rb");
    if (gz == NULL) {
        close(fd);
        return data_fail(err, PLX_OUT_OF_MEMORY, "%s: out of memory opening the file", path);
    }
    gzbuffer(gz, 1u << 17);

    /* Start at the file's size (exact for raw files, a floor for gzip ones)
     * and double; never past max_bytes + 1, which is how "too large" shows. */
    size_t limit = (size_t)max_bytes + 1;
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
    if (cap > limit)
        cap = limit;
    unsigned char *buf = malloc(cap + 1);
    if (buf == NULL) {
        gzclose(gz);
        return data_fail(err, PLX_OUT_OF_MEMORY, "%s: out of memory reading %zu bytes", path, cap);
    }
    size_t n = 0;
    plx_status status = PLX_OK;
    for (;;) {
        if (n == cap) {
            if (cap >= limit) {
                status = data_fail(err, PLX_OVERFLOW, "%s: larger than the %" PRIu64 "-byte limit for data files", path,
                                   max_bytes);
                break;
            }
            size_t next = cap > limit / 2 ? limit : cap * 2;
            unsigned char *grown = realloc(buf, next + 1);
            if (grown == NULL) {
                status = data_fail(err, PLX_OUT_OF_MEMORY, "%s: out of memory reading %zu bytes", path, next);
                break;
            }
            buf = grown;
            cap = next;
        }
        size_t want = cap - n < READ_CHUNK ? cap - n : READ_CHUNK;
        int got = gzread(gz, buf + n, (unsigned)want);
        if (got < 0) {
            int code;
            const char *msg = gzerror(gz, &code);
            status =
                data_fail(err, PLX_IO_ERROR, "%s: %s: %s", path, code == Z_ERRNO ? "read error" : "corrupt gzip data",
                          code == Z_ERRNO ? strerror(errno) : msg);
            break;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (status == PLX_OK) {
        int code;
        gzerror(gz, &code);
        if (code == Z_BUF_ERROR)
            status = data_fail(err, PLX_IO_ERROR, "%s: gzip data ends early (truncated .gz file)", path);
    }
    int closed = gzclose(gz);
    if (status == PLX_OK && closed != Z_OK && closed != Z_BUF_ERROR)
        status = data_fail(err, PLX_IO_ERROR, "%s: error closing the file (zlib code %d)", path, closed);
    if (status != PLX_OK) {
        free(buf);
        return status;
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return PLX_OK;
}

/* ---- Datasets ------------------------------------------------------------- */

plx_status dataset_create(int64_t n, int32_t sample_ndim, const int64_t *sample_shape, dataset **out, data_error *err)
{
    if (out == NULL || (sample_ndim > 0 && sample_shape == NULL))
        return data_fail(err, PLX_INVALID_ARGUMENT, "dataset_create: NULL argument");
    if (n < 0 || n > DATA_MAX_EXAMPLES)
        return data_fail(err, PLX_INVALID_ARGUMENT, "dataset: %" PRId64 " examples (must be 0..%" PRId64 ")", n,
                         DATA_MAX_EXAMPLES);
    if (sample_ndim < 1 || sample_ndim > DATA_MAX_SAMPLE_DIMS)
        return data_fail(err, PLX_INVALID_ARGUMENT, "dataset: a sample of rank %d (must be 1..%d)", sample_ndim,
                         DATA_MAX_SAMPLE_DIMS);
    int64_t size = 1;
    for (int32_t i = 0; i < sample_ndim; i++) {
        if (sample_shape[i] < 1)
            return data_fail(err, PLX_INVALID_ARGUMENT, "dataset: sample dim %d is %" PRId64 " (must be >= 1)", i,
                             sample_shape[i]);
        if (sample_shape[i] > INT64_MAX / size)
            return data_fail(err, PLX_OVERFLOW, "dataset: sample size overflows");
        size *= sample_shape[i];
    }
    /* Whole feature array in bytes must fit size_t (and int64_t). */
    if (n > 0 && size > (int64_t)(SIZE_MAX / sizeof(float) / 2) / n)
        return data_fail(err, PLX_OVERFLOW, "dataset: %" PRId64 " examples of %" PRId64 " values overflow memory", n,
                         size);
    dataset *ds = calloc(1, sizeof *ds);
    if (ds == NULL)
        return data_fail(err, PLX_OUT_OF_MEMORY, "dataset: out of memory");
    ds->n = n;
    ds->sample_ndim = sample_ndim;
    memcpy(ds->sample_shape, sample_shape, (size_t)sample_ndim * sizeof *sample_shape);
    ds->sample_size = size;
    /* At least one element each, so an empty dataset still has valid pointers. */
    size_t nf = n > 0 ? (size_t)n * (size_t)size : 1;
    ds->features = calloc(nf, sizeof(float));
    ds->labels = calloc(n > 0 ? (size_t)n : 1, sizeof(int64_t));
    if (ds->features == NULL || ds->labels == NULL) {
        dataset_free(ds);
        return data_fail(err, PLX_OUT_OF_MEMORY,
                         "dataset: out of memory for %" PRId64 " examples of %" PRId64 " values", n, size);
    }
    *out = ds;
    return PLX_OK;
}

void dataset_free(dataset *ds)
{
    if (ds == NULL)
        return;
    free(ds->features);
    free(ds->labels);
    free(ds);
}

plx_status dataset_update_classes(dataset *ds, data_error *err)
{
    int64_t top = -1;
    for (int64_t i = 0; i < ds->n; i++) {
        int64_t y = ds->labels[i];
        if (y < 0 || y >= DATA_MAX_CLASSES)
            return data_fail(err, PLX_INVALID_ARGUMENT,
                             "dataset: label of example %" PRId64 " is %" PRId64 " (must be in [0, %" PRId64 "))", i, y,
                             DATA_MAX_CLASSES);
        if (y > top)
            top = y;
    }
    ds->n_classes = top + 1;
    return PLX_OK;
}

/* A label read as a double must be a whole number in [0, DATA_MAX_CLASSES). */
static bool label_valid(double v)
{
    return v >= 0.0 && v < (double)DATA_MAX_CLASSES && v == floor(v);
}

plx_status dataset_load_idx(const char *images_path, const char *labels_path, const dataset_load_options *opts,
                            dataset **out, data_error *err)
{
    if (images_path == NULL || labels_path == NULL || out == NULL)
        return data_fail(err, PLX_INVALID_ARGUMENT, "dataset_load_idx: NULL argument");
    dataset_load_options defaults = {0};
    if (opts == NULL)
        opts = &defaults;
    if (!isfinite(opts->scale))
        return data_fail(err, PLX_INVALID_ARGUMENT, "%s: feature scale is not finite", images_path);
    idx_array images = {0}, labels = {0};
    dataset *ds = NULL;
    plx_status st = idx_read(images_path, opts->max_bytes, &images, err);
    if (st != PLX_OK)
        return st;
    st = idx_read(labels_path, opts->max_bytes, &labels, err);
    if (st != PLX_OK)
        goto done;
    if (labels.ndim != 1) {
        st = data_fail(err, PLX_SHAPE_MISMATCH, "%s: a labels file must be 1-D, this one has %d dims", labels_path,
                       labels.ndim);
        goto done;
    }
    if (images.dims[0] != labels.dims[0]) {
        st = data_fail(err, PLX_SHAPE_MISMATCH,
                       "%s has %" PRId64 " examples but %s has %" PRId64 " labels (counts must match)", images_path,
                       images.dims[0], labels_path, labels.dims[0]);
        goto done;
    }
    int64_t shape[DATA_MAX_SAMPLE_DIMS];
    int32_t rank;
    if (images.ndim == 3) {
        /* [N, H, W] grey images: add the channel dim so samples are NCHW. */
        shape[0] = 1;
        shape[1] = images.dims[1];
        shape[2] = images.dims[2];
        rank = 3;
    } else if (images.ndim == 1) {
        shape[0] = 1;
        rank = 1;
    } else {
        rank = images.ndim - 1;
        for (int32_t i = 0; i < rank; i++)
            shape[i] = images.dims[i + 1];
    }
    for (int32_t i = 0; i < rank; i++)
        if (shape[i] < 1) {
            st = data_fail(err, PLX_INVALID_ARGUMENT, "%s: sample dim %d is 0 (every example would be empty)",
                           images_path, i);
            goto done;
        }
    st = dataset_create(images.dims[0], rank, shape, &ds, err);
    if (st != PLX_OK) {
        /* dataset_create's message does not know the file. */
        if (err != NULL) {
            char why[DATA_ERROR_CAP];
            snprintf(why, sizeof why, "%s", err->message);
            data_fail(err, st, "%s: %s", images_path, why);
        }
        goto done;
    }
    int64_t total = ds->n * ds->sample_size;
    if (images.type == IDX_U8 && opts->scale == 0.0f) {
        const uint8_t *px = images.data;
        for (int64_t i = 0; i < total; i++)
            ds->features[i] = (float)px[i] / 255.0f; /* as torchvision's ToTensor */
    } else {
        double scale = opts->scale == 0.0f ? 1.0 : (double)opts->scale;
        for (int64_t i = 0; i < total; i++) {
            ds->features[i] = (float)(idx_array_get(&images, i) * scale);
            if (!isfinite(ds->features[i])) {
                st = data_fail(err, PLX_INVALID_ARGUMENT, "%s: item %" PRId64 " is %g (features must be finite)",
                               images_path, i, idx_array_get(&images, i) * scale);
                goto done;
            }
        }
    }
    for (int64_t i = 0; i < ds->n; i++) {
        double v = idx_array_get(&labels, i);
        if (!label_valid(v)) {
            st = data_fail(err, PLX_INVALID_ARGUMENT,
                           "%s: label of example %" PRId64 " is %g (labels must be integers in [0, %" PRId64 "))",
                           labels_path, i, v, DATA_MAX_CLASSES);
            goto done;
        }
        ds->labels[i] = (int64_t)v;
    }
    st = dataset_update_classes(ds, err);
done:
    idx_array_free(&images);
    idx_array_free(&labels);
    if (st != PLX_OK) {
        dataset_free(ds);
        return st;
    }
    *out = ds;
    return PLX_OK;
}

plx_status dataset_load_csv(const char *path, const csv_options *opts, const dataset_load_options *load_opts,
                            dataset **out, data_error *err)
{
    if (path == NULL || out == NULL)
        return data_fail(err, PLX_INVALID_ARGUMENT, "dataset_load_csv: NULL argument");
    csv_options copts = {0};
    if (opts != NULL)
        copts = *opts;
    dataset_load_options lopts = {0};
    if (load_opts != NULL)
        lopts = *load_opts;
    if (!isfinite(lopts.scale))
        return data_fail(err, PLX_INVALID_ARGUMENT, "%s: feature scale is not finite", path);
    if (copts.max_bytes == 0)
        copts.max_bytes = lopts.max_bytes;
    csv_table t = {0};
    plx_status st = csv_read(path, &copts, &t, err);
    if (st != PLX_OK)
        return st;
    dataset *ds = NULL;
    int64_t label_col;
    if (copts.label_name != NULL) {
        if (t.names == NULL) {
            st = data_fail(err, PLX_INVALID_ARGUMENT,
                           "%s: label column \"%s\" asked by name, but the file has no header row", path,
                           copts.label_name);
            goto done;
        }
        label_col = -1;
        for (int64_t c = 0; c < t.cols; c++)
            if (strcmp(t.names[c], copts.label_name) == 0) {
                label_col = c;
                break;
            }
        if (label_col < 0) {
            st = data_fail(err, PLX_NOT_FOUND, "%s: no column named \"%s\" in the header row", path, copts.label_name);
            goto done;
        }
    } else {
        label_col = copts.label_index < 0 ? t.cols + copts.label_index : copts.label_index;
        if (label_col < 0 || label_col >= t.cols) {
            st = data_fail(err, PLX_INVALID_ARGUMENT,
                           "%s: label column index %" PRId64 " is out of range (%" PRId64 " columns)", path,
                           copts.label_index, t.cols);
            goto done;
        }
    }
    if (t.cols < 2) {
        st = data_fail(err, PLX_INVALID_ARGUMENT,
                       "%s: %" PRId64 " column: needs a label column and at least one feature", path, t.cols);
        goto done;
    }
    int64_t features = t.cols - 1;
    st = dataset_create(t.rows, 1, &features, &ds, err);
    if (st != PLX_OK)
        goto done;
    double scale = lopts.scale == 0.0f ? 1.0 : (double)lopts.scale;
    for (int64_t r = 0; r < t.rows; r++) {
        const double *row = t.values + r * t.cols;
        float *dst = ds->features + r * features;
        for (int64_t c = 0, k = 0; c < t.cols; c++) {
            if (c == label_col)
                continue;
            dst[k++] = (float)(row[c] * scale);
        }
        double y = row[label_col];
        if (!label_valid(y)) {
            if (t.names != NULL)
                st = data_fail(err, PLX_INVALID_ARGUMENT,
                               "%s:%" PRId64 ":%" PRId64 " (column \"%s\"): label %g is not an integer in [0, %" PRId64
                               ")",
                               path, t.lines[r], label_col + 1, t.names[label_col], y, DATA_MAX_CLASSES);
            else
                st = data_fail(err, PLX_INVALID_ARGUMENT,
                               "%s:%" PRId64 ":%" PRId64 ": label %g is not an integer in [0, %" PRId64 ")", path,
                               t.lines[r], label_col + 1, y, DATA_MAX_CLASSES);
            goto done;
        }
        ds->labels[r] = (int64_t)y;
    }
    st = dataset_update_classes(ds, err);
done:
    csv_table_free(&t);
    if (st != PLX_OK) {
        dataset_free(ds);
        return st;
    }
    *out = ds;
    return PLX_OK;
}

/* Channels as dataset.h defines them: 1 (everything) or sample_shape[0]. */
static plx_status channel_layout(const dataset *ds, int64_t n_channels, int64_t *inner, data_error *err)
{
    if (n_channels == 1) {
        *inner = ds->sample_size;
        return PLX_OK;
    }
    if (n_channels == ds->sample_shape[0]) {
        *inner = ds->sample_size / n_channels;
        return PLX_OK;
    }
    return data_fail(err, PLX_INVALID_ARGUMENT,
                     "dataset: %" PRId64 " channels asked, but samples have %" PRId64
                     " in their first dim (use 1 or %" PRId64 ")",
                     n_channels, ds->sample_shape[0], ds->sample_shape[0]);
}

plx_status dataset_channel_stats(const dataset *ds, int64_t n_channels, float *mean, float *std, data_error *err)
{
    int64_t inner = 1;
    plx_status st = channel_layout(ds, n_channels, &inner, err);
    if (st != PLX_OK)
        return st;
    if (ds->n == 0)
        return data_fail(err, PLX_INVALID_ARGUMENT, "dataset: statistics of an empty dataset");
    /* Two passes in double: the one-pass sum-of-squares formula loses the
     * variance of data far from zero. */
    double count = (double)ds->n * (double)inner;
    for (int64_t c = 0; c < n_channels; c++) {
        double sum = 0.0;
        for (int64_t i = 0; i < ds->n; i++) {
            const float *x = ds->features + i * ds->sample_size + c * inner;
            for (int64_t k = 0; k < inner; k++)
                sum += x[k];
        }
        double m = sum / count;
        double sq = 0.0;
        for (int64_t i = 0; i < ds->n; i++) {
            const float *x = ds->features + i * ds->sample_size + c * inner;
            for (int64_t k = 0; k < inner; k++)
                sq += (x[k] - m) * (x[k] - m);
        }
        double s = sqrt(sq / count);
        mean[c] = (float)m;
        std[c] = s > 0.0 && (float)s > 0.0f ? (float)s : 1.0f;
    }
    return PLX_OK;
}

plx_status dataset_normalize(dataset *ds, int64_t n_channels, const float *mean, const float *std, data_error *err)
{
    int64_t inner = 1;
    plx_status st = channel_layout(ds, n_channels, &inner, err);
    if (st != PLX_OK)
        return st;
    for (int64_t c = 0; c < n_channels; c++)
        if (!isfinite(mean[c]) || !isfinite(std[c]) || !(std[c] > 0.0f))
            return data_fail(err, PLX_INVALID_ARGUMENT,
                             "dataset: normalization mean[%" PRId64 "] = %g, std = %g "
                             "(need finite values and std > 0)",
                             c, mean[c], std[c]);
    for (int64_t i = 0; i < ds->n; i++)
        for (int64_t c = 0; c < n_channels; c++) {
            float *x = ds->features + i * ds->sample_size + c * inner;
            for (int64_t k = 0; k < inner; k++)
                x[k] = (x[k] - mean[c]) / std[c];
        }
    return PLX_OK;
}

void dataset_gather(const dataset *ds, const int64_t *indices, int64_t count, float *features, int64_t *labels)
{
    size_t row = (size_t)ds->sample_size * sizeof(float);
    for (int64_t i = 0; i < count; i++) {
        if (features != NULL)
            memcpy(features + i * ds->sample_size, ds->features + indices[i] * ds->sample_size, row);
        if (labels != NULL)
            labels[i] = ds->labels[indices[i]];
    }
}

plx_status dataset_subset(const dataset *ds, const int64_t *indices, int64_t count, dataset **out, data_error *err)
{
    if (ds == NULL || out == NULL || (count > 0 && indices == NULL))
        return data_fail(err, PLX_INVALID_ARGUMENT, "dataset_subset: NULL argument");
    for (int64_t i = 0; i < count; i++)
        if (indices[i] < 0 || indices[i] >= ds->n)
            return data_fail(err, PLX_INVALID_ARGUMENT,
                             "dataset_subset: index %" PRId64 " is %" PRId64 " (dataset has %" PRId64 " examples)", i,
                             indices[i], ds->n);
    dataset *sub;
    plx_status st = dataset_create(count, ds->sample_ndim, ds->sample_shape, &sub, err);
    if (st != PLX_OK)
        return st;
    dataset_gather(ds, indices, count, sub->features, sub->labels);
    sub->n_classes = ds->n_classes;
    *out = sub;
    return PLX_OK;
}

/* Fisher-Yates driven by counter-based draws: draw for position j is keyed
 * by (seed, stream, epoch, j), so the permutation is a pure function. */
static void permutation(int64_t n, uint64_t seed, uint32_t stream, int64_t epoch, int64_t *order)
{
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    for (int64_t j = n - 1; j > 0; j--) {
        int64_t k = data_random_below(seed, stream, epoch, j, 0, j + 1);
        int64_t t = order[j];
        order[j] = order[k];
        order[k] = t;
    }
}

void data_epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch, int64_t *order)
{
    if (shuffle) {
        permutation(n, seed, DATA_STREAM_SHUFFLE, epoch, order);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
}

int64_t data_batches_per_epoch(int64_t n, int64_t batch_size, bool drop_last)
{
    if (n <= 0 || batch_size <= 0)
        return 0;
    return drop_last ? n / batch_size : (n + batch_size - 1) / batch_size;
}

plx_status dataset_split(const dataset *ds, double val_fraction, uint64_t seed, dataset **train, dataset **val,
                         data_error *err)
{
    if (ds == NULL || train == NULL || val == NULL)
        return data_fail(err, PLX_INVALID_ARGUMENT, "dataset_split: NULL argument");
    if (!(val_fraction >= 0.0 && val_fraction <= 1.0))
        return data_fail(err, PLX_INVALID_ARGUMENT, "dataset_split: validation fraction %g is not in [0, 1]",
                         val_fraction);
    int64_t n = ds->n;
    int64_t n_val = (int64_t)llround((double)n * val_fraction);
    if (n_val > n)
        n_val = n;
    size_t cells = n > 0 ? (size_t)n : 1;
    int64_t *order = malloc(cells * sizeof *order);
    unsigned char *in_val = calloc(cells, 1);
    int64_t *train_idx = malloc(cells * sizeof *train_idx);
    int64_t *val_idx = malloc(cells * sizeof *val_idx);
    plx_status st = PLX_OK;
    dataset *t = NULL, *v = NULL;
    if (order == NULL || in_val == NULL || train_idx == NULL || val_idx == NULL) {
        st = data_fail(err, PLX_OUT_OF_MEMORY, "dataset_split: out of memory");
        goto done;
    }
    permutation(n, seed, DATA_STREAM_SPLIT, 0, order);
    for (int64_t i = 0; i < n_val; i++)
        in_val[order[i]] = 1;
    /* Keep the original order within each part: evaluation order and any
     * order-dependent reading of the parts stay stable and obvious. */
    int64_t nt = 0, nv = 0;
    for (int64_t i = 0; i < n; i++) {
        if (in_val[i])
            val_idx[nv++] = i;
        else
            train_idx[nt++] = i;
    }
    st = dataset_subset(ds, train_idx, nt, &t, err);
    if (st == PLX_OK)
        st = dataset_subset(ds, val_idx, nv, &v, err);
done:
    free(order);
    free(in_val);
    free(train_idx);
    free(val_idx);
    if (st != PLX_OK) {
        dataset_free(t);
        dataset_free(v);
        return st;
    }
    *train = t;
    *val = v;
    return PLX_OK;
}

/* ---- Data position ------------------------------------------------------ */

int data_position_format(const data_position *pos, char *buf, size_t cap)
{
    return snprintf(buf, cap, "epoch=%" PRId64 " batch=%" PRId64 " seed=%" PRIu64, pos->epoch, pos->batch, pos->seed);
}

/* Reads `key` then a decimal number no larger than max; advances *s. */
static bool parse_field(const char **s, const char *key, uint64_t max, uint64_t *value)
{
    size_t k = strlen(key);
    if (strncmp(*s, key, k) != 0)
        return false;
    const char *p = *s + k;
    if (*p < '0' || *p > '9')
        return false;
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *value = v;
    *s = p;
    return true;
}

plx_status data_position_parse(const char *text, data_position *pos, data_error *err)
{
    if (text == NULL || pos == NULL)
        return data_fail(err, PLX_INVALID_ARGUMENT, "data_position_parse: NULL argument");
    const char *s = text;
    uint64_t epoch, batch, seed;
    if (!parse_field(&s, "epoch=", INT64_MAX, &epoch) || !parse_field(&s, " batch=", INT64_MAX, &batch) ||
        !parse_field(&s, " seed=", UINT64_MAX, &seed) || *s != '\0')
        return data_fail(err, PLX_INVALID_ARGUMENT,
                         "data position \"%.200s\" is malformed (expected \"epoch=E batch=B seed=S\", decimal)", text);
    pos->epoch = (int64_t)epoch;
    pos->batch = (int64_t)batch;
    pos->seed = seed;
    return PLX_OK;
}

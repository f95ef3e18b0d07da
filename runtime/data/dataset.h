/*
 * dataset.h — the runtime's data pipeline: reading IDX and CSV files into an
 * in-memory dataset, splitting, seeded shuffling and batching, image
 * augmentation, and a batch loader with one worker thread. Internal (hidden
 * symbols, not API); the training loop builds on it.
 *
 * Conventions, for every function below unless it says otherwise:
 * - Fallible functions return a plx_status. On failure, if `err` is not
 *   NULL, err->message says what went wrong, naming the file (and line and
 *   column for CSV) and the problem; output parameters are left untouched.
 *   Nothing aborts, exits or trusts a size read from a file before checking
 *   it against the file's real length and a byte limit.
 * - Pointers passed in are borrowed for the call. Objects returned through
 *   `**out` are owned by the caller and freed with their *_free function;
 *   *_free(NULL) is a no-op.
 * - No global mutable state. Distinct objects may be used from distinct
 *   threads; one object is used by one thread at a time, except that a
 *   dataset is read-only after loading/normalizing and may then be read from
 *   any number of threads (the loader's worker reads it).
 *
 * Randomness. Every random draw here is a pure function of
 *   (seed, stream, epoch, example, draw)
 * through the Philox4x32-10 of abi/plexus_random.h (data_random_u32 below),
 * never of a generator advanced in some order. So the shuffle of epoch e,
 * the train/validation split, and the crop, flip, angle, jitter, mixing
 * partner and lambda of example i in epoch e are the same whatever thread
 * computes them, whenever, in whatever batch; a resumed run needs only
 * (seed, epoch, batch index) to continue exactly — that triple is the
 * whole "data position".
 */
#ifndef PLX_DATA_DATASET_H
#define PLX_DATA_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../abi/plexus_random.h"
#include "../../abi/plexus_types.h"

/* ---- Errors ------------------------------------------------------------- */

#define DATA_ERROR_CAP 1024

/* Where a failed call explains itself (the caller then copies the text
 * into its context's message, e.g. ctx_fail(ctx, st, "%s", err.message)). */
typedef struct data_error {
    char message[DATA_ERROR_CAP];
} data_error;

/* Writes the printf-style message into err (if not NULL), returns status. */
plx_status data_fail(data_error *err, plx_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- Limits --------------------------------------------------------------- */

/* Default largest file accepted, in bytes after decompression. A header
 * claiming more is refused before anything that large is allocated, and a
 * gzip stream that inflates past it is cut off with an error. */
#define DATA_DEFAULT_MAX_BYTES ((uint64_t)2 << 30)
/* Largest number of examples of a dataset (draws index examples with
 * 32-bit words, see data_random_below). */
#define DATA_MAX_EXAMPLES ((int64_t)INT32_MAX)
/* Largest rank of one example; a batch adds the leading N. */
#define DATA_MAX_SAMPLE_DIMS (PLX_MAX_DIMS - 1)
/* Labels must lie in [0, DATA_MAX_CLASSES): n_classes sizes soft-target
 * buffers and output layers, so a corrupt label must not make it huge. */
#define DATA_MAX_CLASSES ((int64_t)1 << 20)

/* Reads a whole file into a malloc'd buffer (*out, *len; one extra NUL
 * byte is allocated after the data). gzip files are inflated, other files
 * read as they are (zlib's transparent mode), so "x.gz" and "x" both work.
 * max_bytes 0 means DATA_DEFAULT_MAX_BYTES; a longer file fails with
 * PLX_OVERFLOW. Errors: PLX_IO_ERROR (cannot open, read error, corrupt
 * gzip), PLX_OVERFLOW, PLX_OUT_OF_MEMORY. */
plx_status data_read_file(const char *path, uint64_t max_bytes, unsigned char **out, size_t *len, data_error *err);

/* ---- Random draws ------------------------------------------------------- */

/* Streams keep each consumer's draws independent of the others'. New
 * consumers append values; a value never changes meaning (saved runs
 * depend on it). Stream 0 is never used, so the counters below never
 * coincide with those of plexus_random.h's dropout/random ops (whose fourth
 * counter word is 0) under the same seed. */
enum {
    DATA_STREAM_SPLIT = 1,
    DATA_STREAM_SHUFFLE = 2,
    DATA_STREAM_CROP = 3,
    DATA_STREAM_FLIP = 4,
    DATA_STREAM_ROTATE = 5,
    DATA_STREAM_JITTER = 6,
    DATA_STREAM_MIX = 7
};

/* The 32-bit word number `draw` for (seed, stream, epoch, example):
 * Philox4x32-10 keyed by seed on the counter
 *   {lo32(example), hi32(example), lo32(epoch), stream << 24 | draw >> 2},
 * word draw & 3. Draws 0..2^26-1 are distinct; epochs are taken mod 2^32. */
static inline uint32_t data_random_u32(uint64_t seed, uint32_t stream, int64_t epoch, int64_t example, uint32_t draw)
{
    uint64_t ex = (uint64_t)example;
    plx_philox_block ctr = {
        {(uint32_t)ex, (uint32_t)(ex >> 32), (uint32_t)(uint64_t)epoch, (stream << 24) | ((draw >> 2) & 0xFFFFFFu)}};
    return plx_philox4x32_10(ctr, seed).w[draw & 3u];
}

/* Uniform in [0, 1) with 24 bits, as plx_philox_uniform makes them. */
static inline float data_random_uniform(uint64_t seed, uint32_t stream, int64_t epoch, int64_t example, uint32_t draw)
{
    return (float)(data_random_u32(seed, stream, epoch, example, draw) >> 8) * (1.0f / 16777216.0f);
}

/* Integer in [0, n) for 1 <= n <= 2^32 (multiply-shift: bias below n/2^32). */
static inline int64_t data_random_below(uint64_t seed, uint32_t stream, int64_t epoch, int64_t example, uint32_t draw,
                                        int64_t n)
{
    return (int64_t)(((uint64_t)data_random_u32(seed, stream, epoch, example, draw) * (uint64_t)n) >> 32);
}

/* ---- IDX files (MNIST family) ------------------------------------------- */

/* IDX element types: the third magic byte. */
typedef enum idx_type {
    IDX_U8 = 0x08,
    IDX_I8 = 0x09,
    IDX_I16 = 0x0B,
    IDX_I32 = 0x0C,
    IDX_F32 = 0x0D,
    IDX_F64 = 0x0E
} idx_type;

#define IDX_MAX_DIMS PLX_MAX_DIMS

/* A whole IDX file: dims as the header says, data converted from the
 * file's big-endian to host order. */
typedef struct idx_array {
    idx_type type;
    int32_t ndim; /* 1..IDX_MAX_DIMS */
    int64_t dims[IDX_MAX_DIMS];
    int64_t count;    /* product of dims */
    size_t elem_size; /* bytes per element of `type` */
    void *data;       /* count elements, malloc'd; owned by the array */
} idx_array;

/* Reads an IDX file, gzip'd or raw. Checks the magic (two zero bytes, a
 * known type, 1..IDX_MAX_DIMS dims), that the data size implied by the dims
 * neither overflows nor exceeds max_bytes (0: DATA_DEFAULT_MAX_BYTES), and
 * that the file holds exactly that much data (no less: "truncated"; no
 * more: "trailing bytes"). Every message starts with the path.
 * Errors: PLX_IO_ERROR, PLX_INVALID_ARGUMENT (bad magic/type/dims/size),
 * PLX_OVERFLOW, PLX_OUT_OF_MEMORY. Free with idx_array_free. */
plx_status idx_read(const char *path, uint64_t max_bytes, idx_array *out, data_error *err);
/* Frees a->data and zeroes *a. NULL is a no-op. */
void idx_array_free(idx_array *a);
/* "u8", "i8", "i16", "i32", "f32", "f64" or "?". */
const char *idx_type_name(idx_type type);
/* Element i as a double (exact for every IDX type). */
double idx_array_get(const idx_array *a, int64_t i);

/* ---- CSV files ---------------------------------------------------------- */

enum { CSV_HEADER_AUTO = 0, CSV_HEADER_YES = 1, CSV_HEADER_NO = 2 };

typedef struct csv_options {
    /* Field separator; 0 means ','. */
    char delimiter;
    /* CSV_HEADER_AUTO: the first non-blank row is a header iff one of its
     * fields is not a number. */
    int32_t header;
    /* The label column, for dataset_load_csv: by header name when label_name
     * is not NULL (needs a header), else by 0-based index, negative counting
     * from the end (-1: last column). Zero-initialized options therefore
     * take the first column, as in Kaggle's MNIST CSVs. */
    const char *label_name;
    int64_t label_index;
    /* Largest file accepted (after gzip inflation); 0: DATA_DEFAULT_MAX_BYTES. */
    uint64_t max_bytes;
} csv_options;

/* A numeric table. */
typedef struct csv_table {
    int64_t rows, cols;
    double *values; /* [rows, cols], row-major */
    char **names;   /* [cols] header names (unquoted, trimmed), or NULL without header */
    int64_t *lines; /* [rows] 1-based line number of each row, for messages */
} csv_table;

/* Reads a numeric CSV file (gzip'd or raw). Rules: fields are separated by
 * the delimiter and trimmed of blanks; a field may be double-quoted ("" is
 * a quote inside; no line breaks inside quotes); blank lines are skipped;
 * \n and \r\n line ends; a UTF-8 BOM is ignored. Every data field must be a
 * finite number (strtod syntax in the C locale, whatever the process
 * locale is); every row must have as many fields as the first row.
 * Messages read "path:line:column: problem" (1-based; the column's header
 * name in parentheses when known) or "path:line: problem" for row-level
 * ones; an empty file, or one with a header and no rows, is an error.
 * opts may be NULL. Errors: PLX_IO_ERROR, PLX_INVALID_ARGUMENT, PLX_OVERFLOW,
 * PLX_OUT_OF_MEMORY. Free with csv_table_free. */
plx_status csv_read(const char *path, const csv_options *opts, csv_table *out, data_error *err);
/* Frees everything *t owns and zeroes it. NULL is a no-op. */
void csv_table_free(csv_table *t);

/* ---- Datasets ------------------------------------------------------------- */

/* An in-memory labelled dataset: features f32 [n, sample_shape...] and
 * labels i64 [n]. Fields are read directly; change them only through the
 * functions below (they keep them consistent). */
typedef struct dataset {
    int64_t n;                                  /* examples, 0..DATA_MAX_EXAMPLES */
    int32_t sample_ndim;                        /* 1..DATA_MAX_SAMPLE_DIMS */
    int64_t sample_shape[DATA_MAX_SAMPLE_DIMS]; /* images: {C, H, W} */
    int64_t sample_size;                        /* product of sample_shape */
    int64_t n_classes;                          /* 1 + largest label (0 if n == 0); a test set
                                                   loaded on its own may see fewer classes than
                                                   the training set: take the larger */
    float *features;                            /* [n * sample_size] */
    int64_t *labels;                            /* [n], each in [0, n_classes) */
} dataset;

/* A dataset of n zero examples of the given shape (labels 0, n_classes 0:
 * set labels, then call dataset_update_classes). Errors:
 * PLX_INVALID_ARGUMENT (rank, a dim < 1, n < 0 or > DATA_MAX_EXAMPLES),
 * PLX_OVERFLOW, PLX_OUT_OF_MEMORY. */
plx_status dataset_create(int64_t n, int32_t sample_ndim, const int64_t *sample_shape, dataset **out, data_error *err);
void dataset_free(dataset *ds);
/* Checks every label is in [0, DATA_MAX_CLASSES) and sets n_classes to
 * 1 + the largest. PLX_INVALID_ARGUMENT names the first bad example. */
plx_status dataset_update_classes(dataset *ds, data_error *err);

typedef struct dataset_load_options {
    /* Raw feature values are multiplied by this; 0 means 1/255 for u8 IDX
     * images (so pixels land in [0, 1]) and 1 otherwise. */
    float scale;
    /* Largest file accepted, after gzip inflation; 0: DATA_DEFAULT_MAX_BYTES. */
    uint64_t max_bytes;
} dataset_load_options;

/* Loads an images IDX file and its labels IDX file (each gzip'd or raw).
 * The images' first dim is the example count and must equal the labels
 * file's (which must be 1-D, of an integer type, or float holding
 * integers). Sample shape: a 3-D file [N, H, W] gives [1, H, W] (one
 * channel, NCHW-ready); otherwise dims[1:] (a 1-D images file gives [1]).
 * Labels must be in [0, DATA_MAX_CLASSES). opts may be NULL. Errors as
 * idx_read, plus PLX_SHAPE_MISMATCH for count mismatches (naming both files). */
plx_status dataset_load_idx(const char *images_path, const char *labels_path, const dataset_load_options *opts,
                            dataset **out, data_error *err);

/* Loads a numeric CSV file (see csv_read): the label column (csv_options)
 * must hold non-negative integers (below DATA_MAX_CLASSES); the other
 * columns, in file order, are the features: sample shape [cols - 1].
 * load_opts->scale 0 means 1. Either options pointer may be NULL. A bad
 * label is reported as "path:line:column: ...". */
plx_status dataset_load_csv(const char *path, const csv_options *opts, const dataset_load_options *load_opts,
                            dataset **out, data_error *err);

/* Per-channel statistics for normalization. A "channel" is an index of the
 * first sample dim: images [C, H, W] have C channels (each over all H*W
 * positions of all examples), CSV samples [F] have F (one per feature).
 * n_channels must be 1 (one statistic over everything) or sample_shape[0].
 * Computes mean[c] and the population std[c] (in double); a channel with
 * zero variance gets std 1, so normalizing it only centres it. Errors:
 * PLX_INVALID_ARGUMENT (n_channels, empty dataset). */
plx_status dataset_channel_stats(const dataset *ds, int64_t n_channels, float *mean, float *std, data_error *err);
/* x = (x - mean[c]) / std[c] in place, channels as above; statistics of
 * the training split are normally applied to the validation and test sets
 * too. Errors: PLX_INVALID_ARGUMENT (n_channels, a std not finite and > 0). */
plx_status dataset_normalize(dataset *ds, int64_t n_channels, const float *mean, const float *std, data_error *err);

/* A new dataset of examples indices[0..count) of ds, in that order (copied;
 * repeats allowed). n_classes is inherited from ds, so every split of a
 * dataset agrees on it. Errors: PLX_INVALID_ARGUMENT (an index out of
 * range), PLX_OUT_OF_MEMORY. */
plx_status dataset_subset(const dataset *ds, const int64_t *indices, int64_t count, dataset **out, data_error *err);

/* Splits ds into train and validation sets: round(n * val_fraction)
 * examples, chosen by a seeded random permutation (stream
 * DATA_STREAM_SPLIT), go to *val; the rest to *train. Both keep the
 * original relative order of their examples and ds's n_classes; ds itself
 * is untouched (free it if no longer needed). Same (ds, fraction, seed)
 * gives the same split. val_fraction in [0, 1]; either part may be empty.
 * Errors: PLX_INVALID_ARGUMENT, PLX_OUT_OF_MEMORY. */
plx_status dataset_split(const dataset *ds, double val_fraction, uint64_t seed, dataset **train, dataset **val,
                         data_error *err);

/* Copies examples indices[0..count) into features [count * sample_size]
 * and labels [count] (either may be NULL). Indices must be valid (not
 * checked: callers pass permutation entries). Thread-safe on a read-only ds. */
void dataset_gather(const dataset *ds, const int64_t *indices, int64_t count, float *features, int64_t *labels);

/* ---- Epoch order, batching, data position ------------------------------- */

/* The order in which epoch `epoch` visits examples 0..n-1: the identity
 * when !shuffle, else a Fisher-Yates permutation whose j-th draw is
 * data_random_below(seed, DATA_STREAM_SHUFFLE, epoch, j, 0, j + 1) —
 * a pure function of (n, seed, epoch). order has n entries. */
void data_epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch, int64_t *order);

/* Batches per epoch: ceil(n / batch_size), or floor(n / batch_size) when
 * drop_last (the final partial batch is then never produced). */
int64_t data_batches_per_epoch(int64_t n, int64_t batch_size, bool drop_last);

/* Where a run is in its data: the next batch to produce is batch `batch`
 * (0-based) of epoch `epoch`, with every draw keyed by `seed`. Because all
 * draws are counter-based, this is the RNG state too: saving it in a
 * checkpoint and passing it to loader_create resumes the exact sequence
 * of batches, augmentations included. */
typedef struct data_position {
    int64_t epoch;
    int64_t batch;
    uint64_t seed;
} data_position;

/* Writes "epoch=E batch=B seed=S" (decimal) into buf[cap] for checkpoint
 * metadata. Returns the length snprintf would have written; needs at most
 * DATA_POSITION_CAP bytes. */
#define DATA_POSITION_CAP 80
int data_position_format(const data_position *pos, char *buf, size_t cap);
/* Parses data_position_format's text exactly (no missing, extra or
 * negative fields). PLX_INVALID_ARGUMENT quotes the text. */
plx_status data_position_parse(const char *text, data_position *pos, data_error *err);

/* ---- Augmentation ------------------------------------------------------- */

/* A batch of images being augmented in place: data is [n, c, h, w] f32.
 * Row i holds dataset example examples[i]; its draws are keyed by
 * (seed, stream, epoch, examples[i], draw), so they do not depend on the
 * row's position in the batch, on the batch size, nor on the thread.
 * Non-image samples can use the mixing functions as c = h = 1, w = size. */
typedef struct image_batch {
    float *data;
    int64_t n, c, h, w;
    const int64_t *examples;
    int64_t epoch;
    uint64_t seed;
} image_batch;

/* Random crop with zero padding: each image is shifted by (dy, dx), each
 * uniform in [-padding, padding] (draws 0 and 1 of DATA_STREAM_CROP), the
 * uncovered border filled with 0 — the same as cropping h x w at a uniform
 * offset from the image padded by `padding` zeros on every side.
 * padding 0 is a no-op. */
void augment_random_crop(const image_batch *b, int64_t padding);

/* Horizontal flip (reverses w) of each image with probability p (draw 0 of
 * DATA_STREAM_FLIP below p). */
void augment_random_hflip(const image_batch *b, float p);

/* Rotates each image about its centre by an angle uniform in
 * [-max_degrees, max_degrees] (draw 0 of DATA_STREAM_ROTATE),
 * counter-clockwise for positive angles as displayed (row 0 at the top),
 * bilinear, 0 outside the source. An angle of 0 reproduces the image
 * exactly. Errors: PLX_OUT_OF_MEMORY (one image of scratch). */
plx_status augment_random_rotate(const image_batch *b, float max_degrees, data_error *err);
/* Rotates one [c, h, w] image src into dst (distinct buffers) by `degrees`;
 * the deterministic core of augment_random_rotate. */
void augment_rotate_image(const float *src, float *dst, int64_t c, int64_t h, int64_t w, float degrees);

/* Brightness and contrast jitter, as torchvision's ColorJitter: x *= b with
 * b uniform in [max(0, 1 - brightness), 1 + brightness] (draw 0 of
 * DATA_STREAM_JITTER), then x = m + k (x - m) with k uniform in
 * [max(0, 1 - contrast), 1 + contrast] (draw 1) and m the image's mean
 * (over all channels, after the brightness step). No clamping: the data
 * may already be normalized. 0 disables either part. */
void augment_color_jitter(const image_batch *b, float brightness, float contrast);

/*
 * Mixing (mixup, CutMix) and its contract with the loss.
 *
 * Each row i gets a partner row partner[i] of the same batch (uniform among
 * the other rows, drawn per row: not a permutation, so a row may be the
 * partner of several or of none; itself when n == 1) and a weight
 * lambda[i] in [0, 1]. The
 * row's pixels become a mix of its own and its partner's ORIGINAL pixels
 * (taken before any row of the batch was mixed), and its target becomes
 *     lambda[i] * onehot(label[i]) + (1 - lambda[i]) * onehot(label[partner[i]]).
 * Cross-entropy is linear in the target, so the loss of row i is exactly
 *     lambda[i] * CE(logits_i, label[i]) + (1 - lambda[i]) * CE(logits_i, label[partner[i]]),
 * two hard-label CE terms; or use augment_soft_targets to get the dense
 * targets. A row that was not mixed has lambda 1 and partner itself.
 * Draws (DATA_STREAM_MIX): 0 partner, 1 mixup-or-CutMix choice, 2 and 3 the
 * CutMix box centre, 4.. the Beta sample (a bounded rejection loop).
 */

/* mixup (Zhang et al., 2018): lambda ~ Beta(alpha, alpha) per row, pixels
 * x_i = lambda x_i + (1 - lambda) x_partner. alpha > 0. lambda and
 * partner have n entries. Errors: PLX_INVALID_ARGUMENT (alpha),
 * PLX_OUT_OF_MEMORY (a copy of the batch). */
plx_status augment_mixup(const image_batch *b, float alpha, float *lambda, int64_t *partner, data_error *err);

/* CutMix (Yun et al., 2019), its box drawn as the paper's reference code
 * does: lambda0 ~ Beta(alpha, alpha); cut_h = floor(h sqrt(1 - lambda0)),
 * cut_w likewise; centre (cy, cx) a uniform pixel; rows
 * [cy - cut_h/2, cy + cut_h/2) and columns [cx - cut_w/2, cx + cut_w/2)
 * (integer halves), clipped to the image, take the partner's pixels in
 * every channel. lambda is then 1 - box area / (h w): the share of the
 * row's own pixels actually left, which differs from lambda0 (integer box
 * sides, clipping at the border); an empty box leaves lambda 1.
 * Errors as augment_mixup. */
plx_status augment_cutmix(const image_batch *b, float alpha, float *lambda, int64_t *partner, data_error *err);

/* Dense soft targets [n, n_classes] from the mixing contract above.
 * labels are the batch's own labels; every label must be < n_classes. */
void augment_soft_targets(const int64_t *labels, const float *lambda, const int64_t *partner, int64_t n,
                          int64_t n_classes, float *targets);

/* The augmentations of one training configuration, applied by
 * augment_apply in this order: crop, flip, rotate, jitter, then mixing. */
typedef struct augment_options {
    int64_t crop_padding; /* random crop with this zero padding; 0: none */
    float flip_prob;      /* horizontal flip probability; 0: none */
    float rotate_degrees; /* max |angle|; 0: none */
    float brightness;     /* jitter ranges; 0: none */
    float contrast;
    float mixup_alpha;  /* > 0 enables mixup */
    float cutmix_alpha; /* > 0 enables CutMix */
    /* With both enabled, each mixed row uses CutMix with this probability,
     * else mixup; 0 means 0.5. */
    float cutmix_prob;
    /* Probability that a row is mixed at all; 0 means 1 (every row). An
     * unmixed row has lambda 1 and partner itself. Both choices come from
     * draw 1 of DATA_STREAM_MIX, u: mixed iff u < mix_prob, then CutMix iff
     * u / mix_prob < cutmix_prob. */
    float mix_prob;
} augment_options;

/* True if opts enables anything / mixing. NULL opts: false. */
bool augment_enabled(const augment_options *opts);
bool augment_mixes(const augment_options *opts);
/* Checks ranges (padding >= 0 and smaller than the image, probabilities
 * in [0, 1], degrees in [0, 360], jitter and alphas finite and >= 0) and
 * that every augmentation but mixup gets image samples: sample_ndim must
 * be 3 ([C, H, W]) for them (mixup mixes samples of any shape).
 * PLX_INVALID_ARGUMENT says which option and why. */
plx_status augment_validate(const augment_options *opts, int32_t sample_ndim, const int64_t *sample_shape,
                            data_error *err);
/* Applies opts to b. lambda/partner (n entries each) receive the mixing
 * contract when augment_mixes(opts) (they may be NULL otherwise). opts
 * must have passed augment_validate for this shape. Errors:
 * PLX_OUT_OF_MEMORY. */
plx_status augment_apply(const augment_options *opts, const image_batch *b, float *lambda, int64_t *partner,
                         data_error *err);

/* ---- Batches and the loader ------------------------------------------- */

/* One batch, owned by the loader (valid until the next loader_next or
 * loader_free). `shape` and `label_shape` can serve directly as the shape
 * of plx_tensor_desc's wrapping `features` and `labels` (zero copy). */
typedef struct data_batch {
    int64_t count;               /* examples in it (the last batch of an epoch may be short) */
    int32_t ndim;                /* 1 + sample_ndim */
    int64_t shape[PLX_MAX_DIMS]; /* {count, sample_shape...} */
    int64_t label_shape[1];      /* {count} */
    float *features;             /* [count * sample_size], augmented */
    int64_t *labels;             /* [count] */
    int64_t *indices;            /* [count] dataset index of each row */
    /* Mixing contract (see augment_mixup); NULL unless the options mix. */
    float *mix_lambda;      /* [count] weight of labels[i] */
    int64_t *mix_partner;   /* [count] row of the partner */
    int64_t *mix_labels;    /* [count] labels[mix_partner[i]], for the second CE term */
    data_position position; /* which batch this is */
} data_batch;

typedef struct loader_options {
    int64_t batch_size;             /* >= 1 */
    bool shuffle;                   /* reshuffle every epoch (data_epoch_order) */
    bool drop_last;                 /* drop each epoch's final partial batch */
    uint64_t seed;                  /* shuffle and augmentation seed */
    const augment_options *augment; /* copied; NULL: none */
    /* true: one worker thread prepares the next batch (gather + augment)
     * while the caller uses the current one. false: loader_next prepares
     * each batch on the calling thread. Batches are identical either way. */
    bool prefetch;
    /* Testing hook for the error path: k > 0 makes preparing the k-th
     * batch since creation fail with PLX_INTERNAL, as an allocation failure
     * in augmentation would. 0: off. */
    int64_t debug_fail_at;
} loader_options;

typedef struct loader loader;

/* A loader over ds (borrowed: it must outlive the loader and stay
 * unmodified while the loader lives, as the worker reads it). It yields
 * batches endlessly, epoch after epoch, starting at `start` (NULL: epoch
 * 0, batch 0, seed opts->seed). A start position carries its own seed,
 * which then replaces opts->seed: the position is the RNG state.
 * start->batch may equal the batches per epoch (meaning the next epoch's
 * first batch) but not exceed it. Errors: PLX_INVALID_ARGUMENT (options,
 * augmentation for this sample shape, no batch per epoch, a position past
 * the epoch), PLX_OUT_OF_MEMORY, PLX_INTERNAL (thread creation). */
plx_status loader_create(const dataset *ds, const loader_options *opts, const data_position *start, loader **out,
                         data_error *err);

/* The next batch, in order: *out is valid until the next loader_next or
 * loader_free on this loader. Each call hands the previous batch's buffer
 * back to the worker. An error in preparing a batch (out of memory) is
 * returned here, and every later call returns it again. Not thread-safe:
 * one caller thread per loader. */
plx_status loader_next(loader *ld, const data_batch **out, data_error *err);

/* The position of the batch the next loader_next returns, normalized
 * (batch < batches per epoch): whatever the worker has prepared ahead is
 * not counted. Saved in a checkpoint written after training on the batch
 * last returned, it makes a resumed run (loader_create with it as start)
 * continue with exactly the batch that would have come next. */
data_position loader_position(const loader *ld);

int64_t loader_batches_per_epoch(const loader *ld);

/* Stops the worker (waiting for the batch it is preparing, if any, to
 * finish) and frees everything, including the current batch. NULL: no-op. */
void loader_free(loader *ld);

#endif

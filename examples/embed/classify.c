/*
 * classify.c — embedding Plexus in a host program: load a trained model
 * from a checkpoint, read images from an IDX file (the MNIST family's
 * format, gzip'd or not, read with zlib) and print each one's predicted
 * class and its probability.
 *
 *   classify CHECKPOINT IMAGES [--count N] [--first I] [--labels LABELS]
 *            [--mean M --std S] [--plugins DIR]
 *
 * Only the public API (plexus.h, found with `pkg-config plexus`) is used:
 * plx_context_open, plx_model_load_checkpoint, plx_tensor_create,
 * plx_model_predict. Output, one line per image, then a summary line when
 * --labels is given:
 *
 *   image 0: class 9 p=0.982114 label 9
 *   accuracy 0.9000 (9/10)
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <plexus.h>

#define MAX_DIMS 4

/* An IDX file of unsigned bytes: [count, d1, ...]. */
typedef struct idx_file {
    gzFile gz;
    int ndim;
    uint32_t dims[MAX_DIMS];
    uint64_t record_bytes; /* product of dims[1..] */
} idx_file;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Opens an IDX file of u8 with 1 to MAX_DIMS dims; prints why not. */
static int idx_open(const char *path, idx_file *f)
{
    memset(f, 0, sizeof *f);
    f->gz = gzopen(path, "rb"); /* reads gzip'd and plain files alike */
    if (f->gz == NULL) {
        fprintf(stderr, "classify: %s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    unsigned char head[4 + 4 * MAX_DIMS];
    if (gzread(f->gz, head, 4) != 4 || head[0] != 0 || head[1] != 0 || head[2] != 0x08 || head[3] < 1 ||
        head[3] > MAX_DIMS) {
        fprintf(stderr, "classify: %s: not an IDX file of unsigned bytes with 1 to %d dimensions\n", path, MAX_DIMS);
        return -1;
    }
    f->ndim = head[3];
    if (gzread(f->gz, head + 4, (unsigned)(4 * f->ndim)) != 4 * f->ndim) {
        fprintf(stderr, "classify: %s: truncated IDX header\n", path);
        return -1;
    }
    f->record_bytes = 1;
    for (int d = 0; d < f->ndim; d++) {
        f->dims[d] = be32(head + 4 + 4 * d);
        if (d > 0)
            f->record_bytes *= f->dims[d];
    }
    if (f->record_bytes == 0 || f->record_bytes > (1u << 24)) {
        fprintf(stderr, "classify: %s: unusable record size %" PRIu64 " bytes\n", path, f->record_bytes);
        return -1;
    }
    return 0;
}

static void idx_close(idx_file *f)
{
    if (f->gz != NULL)
        gzclose(f->gz);
    f->gz = NULL;
}

/* Reads records [first, first + count) into out (count * record_bytes). */
static int idx_read(idx_file *f, const char *path, int64_t first, int64_t count, unsigned char *out)
{
    z_off_t offset = (z_off_t)(4 + 4 * f->ndim) + (z_off_t)((uint64_t)first * f->record_bytes);
    if (gzseek(f->gz, offset, SEEK_SET) != offset) {
        fprintf(stderr, "classify: %s: cannot seek to record %" PRId64 "\n", path, first);
        return -1;
    }
    uint64_t want = (uint64_t)count * f->record_bytes;
    for (uint64_t done = 0; done < want;) {
        unsigned chunk = want - done > (1u << 30) ? (1u << 30) : (unsigned)(want - done);
        int got = gzread(f->gz, out + done, chunk);
        if (got <= 0) {
            fprintf(stderr, "classify: %s: ends before record %" PRId64 "\n", path, first + count);
            return -1;
        }
        done += (uint64_t)got;
    }
    return 0;
}

typedef struct options {
    const char *checkpoint, *images, *labels, *plugins;
    int64_t count, first;
    int normalize;
    double mean, std;
} options;

static int usage(void)
{
    fprintf(stderr, "usage: classify CHECKPOINT IMAGES [--count N] [--first I] [--labels LABELS]\n"
                    "                [--mean M --std S] [--plugins DIR]\n"
                    "  IMAGES, LABELS: IDX files of unsigned bytes (gzip'd or not), e.g. t10k-images-idx3-ubyte.gz\n"
                    "  --mean/--std:   the model file's \"training.data.normalize\" (pixels are scaled to [0, 1] first)\n"
                    "  --plugins:      a plugin directory searched before the default ones\n");
    return 2;
}

static int parse_number(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    *out = strtod(s, &end);
    return errno == 0 && end != s && *end == '\0' ? 0 : -1;
}

static int parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->count = 10;
    int positional = 0, have_mean = 0, have_std = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        double v = 0.0;
        if (a[0] != '-' || a[1] == '\0') {
            if (positional == 0)
                o->checkpoint = a;
            else if (positional == 1)
                o->images = a;
            else
                return usage();
            positional++;
            continue;
        }
        if (value == NULL)
            return usage();
        i++;
        if (strcmp(a, "--count") == 0 && parse_number(value, &v) == 0 && v >= 1 && v <= 1e7 && v == (int64_t)v)
            o->count = (int64_t)v;
        else if (strcmp(a, "--first") == 0 && parse_number(value, &v) == 0 && v >= 0 && v <= 1e9 && v == (int64_t)v)
            o->first = (int64_t)v;
        else if (strcmp(a, "--mean") == 0 && parse_number(value, &o->mean) == 0)
            have_mean = 1;
        else if (strcmp(a, "--std") == 0 && parse_number(value, &o->std) == 0 && o->std > 0)
            have_std = 1;
        else if (strcmp(a, "--labels") == 0)
            o->labels = value;
        else if (strcmp(a, "--plugins") == 0)
            o->plugins = value;
        else {
            fprintf(stderr, "classify: bad option or value: %s %s\n", a, value);
            return usage();
        }
    }
    if (positional != 2 || have_mean != have_std)
        return usage();
    o->normalize = have_mean;
    return 0;
}

/* The images as an f32 tensor [count, C, H, W] (C = 1 for an IDX file of
 * [N, H, W]), scaled to [0, 1] as training did, then normalized. */
static plx_tensor *read_images(plx_context *ctx, const options *o, int64_t *count)
{
    idx_file f;
    plx_tensor *x = NULL;
    unsigned char *bytes = NULL;
    if (idx_open(o->images, &f) != 0)
        goto done;
    if (f.ndim < 3) {
        fprintf(stderr, "classify: %s: expected images ([N, H, W] or [N, C, H, W]), got %d dimensions\n", o->images,
                f.ndim);
        goto done;
    }
    if ((uint64_t)o->first >= f.dims[0]) {
        fprintf(stderr, "classify: %s has %" PRIu32 " images; --first %" PRId64 " is past the end\n", o->images,
                f.dims[0], o->first);
        goto done;
    }
    int64_t n = (int64_t)f.dims[0] - o->first < o->count ? (int64_t)f.dims[0] - o->first : o->count;
    int64_t shape[4] = {n, f.ndim == 4 ? f.dims[1] : 1, f.dims[f.ndim - 2], f.dims[f.ndim - 1]};
    bytes = malloc((size_t)((uint64_t)n * f.record_bytes));
    if (bytes == NULL) {
        fprintf(stderr, "classify: out of memory\n");
        goto done;
    }
    if (idx_read(&f, o->images, o->first, n, bytes) != 0)
        goto done;
    if (plx_tensor_create(ctx, PLX_F32, 4, shape, &x) != PLX_OK) {
        fprintf(stderr, "classify: %s\n", plx_last_error(ctx));
        goto done;
    }
    float *v = plx_tensor_data(x);
    for (int64_t i = 0; i < plx_tensor_numel(x); i++) {
        v[i] = (float)bytes[i] / 255.0f;
        if (o->normalize)
            v[i] = (float)((v[i] - o->mean) / o->std);
    }
    *count = n;
done:
    free(bytes);
    idx_close(&f);
    return x;
}

/* count labels starting at o->first, or NULL (message printed). */
static unsigned char *read_labels(const options *o, int64_t count)
{
    idx_file f;
    unsigned char *labels = NULL;
    if (idx_open(o->labels, &f) == 0) {
        if (f.ndim != 1 || (uint64_t)(o->first + count) > f.dims[0])
            fprintf(stderr, "classify: %s: expected at least %" PRId64 " labels in a 1-D IDX file\n", o->labels,
                    o->first + count);
        else if ((labels = malloc((size_t)count)) != NULL && idx_read(&f, o->labels, o->first, count, labels) != 0) {
            free(labels);
            labels = NULL;
        }
    }
    idx_close(&f);
    return labels;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc != 0)
        return rc;

    /* The context finds plugins next to libplexus.so, in the install
     * directory and in PLEXUS_PLUGIN_PATH; --plugins is searched first. */
    plx_context_options copts;
    plx_context_options_init(&copts);
    const char *paths[1] = {o.plugins};
    if (o.plugins != NULL) {
        copts.plugin_paths = paths;
        copts.n_plugin_paths = 1;
    }
    plx_context *ctx = NULL;
    if (plx_context_open(&copts, &ctx) != PLX_OK) {
        fprintf(stderr, "classify: %s\n", plx_last_error(NULL));
        return 1;
    }

    plx_model *model = NULL;
    plx_tensor *images = NULL, *probs = NULL;
    unsigned char *labels = NULL;
    int64_t n = 0;
    rc = 1;
    /* The checkpoint holds the model file and the trained weights. */
    if (plx_model_load_checkpoint(ctx, o.checkpoint, &model) != PLX_OK) {
        fprintf(stderr, "classify: %s\n", plx_last_error(ctx));
        goto done;
    }
    if ((images = read_images(ctx, &o, &n)) == NULL)
        goto done;
    if (o.labels != NULL && (labels = read_labels(&o, n)) == NULL)
        goto done;
    /* Class probabilities [n, classes], batched by the model. */
    if (plx_model_predict(model, images, &probs) != PLX_OK) {
        fprintf(stderr, "classify: %s\n", plx_last_error(ctx));
        goto done;
    }
    const plx_tensor_desc *pd = plx_tensor_desc_get(probs);
    int64_t classes = pd->shape[1], correct = 0;
    const float *p = plx_tensor_data(probs);
    for (int64_t i = 0; i < n; i++) {
        const float *row = p + i * classes;
        int64_t best = 0;
        for (int64_t c = 1; c < classes; c++)
            if (row[c] > row[best])
                best = c;
        printf("image %" PRId64 ": class %" PRId64 " p=%.6f", o.first + i, best, (double)row[best]);
        if (labels != NULL) {
            printf(" label %d", labels[i]);
            correct += best == labels[i];
        }
        printf("\n");
    }
    if (labels != NULL)
        printf("accuracy %.4f (%" PRId64 "/%" PRId64 ")\n", (double)correct / (double)n, correct, n);
    rc = 0;
done:
    free(labels);
    plx_tensor_free(probs);
    plx_tensor_free(images);
    plx_model_free(model);
    plx_context_close(ctx);
    return rc;
}

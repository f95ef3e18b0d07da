/*
 * augment.c — image augmentations on NCHW f32 batches, in place: random
 * crop with zero padding, horizontal flip, rotation, brightness/contrast
 * jitter, mixup and CutMix.
 *
 * Every random number is data_random_* of (seed, stream, epoch, example,
 * draw) with the draw numbers dataset.h lists, so an example's augmentation
 * depends on nothing but those: not the thread, not the batch it lands in,
 * not whether the loader's worker ran ahead. Mixing partners are the one
 * thing that depends on the batch (a partner is another row of it), and the
 * batch is itself a pure function of the data position.
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

#define PI_D 3.14159265358979323846

static float row_uniform(const image_batch *b, uint32_t stream, int64_t row, uint32_t draw)
{
    return data_random_uniform(b->seed, stream, b->epoch, b->examples[row], draw);
}

static int64_t row_below(const image_batch *b, uint32_t stream, int64_t row, uint32_t draw, int64_t n)
{
    return data_random_below(b->seed, stream, b->epoch, b->examples[row], draw, n);
}

/* ---- Crop, flip ------------------------------------------------------------ */

/* out[y][x] = in[y + oy][x + ox], 0 where that is outside: in place, rows
 * visited in the order that reads each source row before overwriting it. */
static void shift_plane(float *plane, int64_t h, int64_t w, int64_t oy, int64_t ox)
{
    int64_t ax = ox < 0 ? -ox : ox;
    int64_t keep = ax < w ? w - ax : 0; /* pixels per row that come from the image */
    int64_t x0 = ox < 0 ? -ox : 0;      /* first destination column they land in */
    if (x0 > w)
        x0 = w;
    for (int64_t k = 0; k < h; k++) {
        int64_t y = oy >= 0 ? k : h - 1 - k;
        int64_t sy = y + oy;
        float *dst = plane + y * w;
        if (sy < 0 || sy >= h || keep == 0) {
            memset(dst, 0, (size_t)w * sizeof *dst);
            continue;
        }
        memmove(dst + x0, plane + sy * w + x0 + ox, (size_t)keep * sizeof *dst);
        memset(dst, 0, (size_t)x0 * sizeof *dst);
        memset(dst + x0 + keep, 0, (size_t)(w - x0 - keep) * sizeof *dst);
    }
}

void augment_random_crop(const image_batch *b, int64_t padding)
{
    if (padding <= 0)
        return;
    int64_t plane = b->h * b->w;
    for (int64_t i = 0; i < b->n; i++) {
        int64_t oy = row_below(b, DATA_STREAM_CROP, i, 0, 2 * padding + 1) - padding;
        int64_t ox = row_below(b, DATA_STREAM_CROP, i, 1, 2 * padding + 1) - padding;
        if (oy == 0 && ox == 0)
            continue;
        for (int64_t ch = 0; ch < b->c; ch++)
            shift_plane(b->data + (i * b->c + ch) * plane, b->h, b->w, oy, ox);
    }
}

void augment_random_hflip(const image_batch *b, float p)
{
    if (!(p > 0.0f))
        return;
    for (int64_t i = 0; i < b->n; i++) {
        if (!(row_uniform(b, DATA_STREAM_FLIP, i, 0) < p))
            continue;
        float *img = b->data + i * b->c * b->h * b->w;
        for (int64_t r = 0; r < b->c * b->h; r++) {
            float *row = img + r * b->w;
            for (int64_t x = 0, y = b->w - 1; x < y; x++, y--) {
                float t = row[x];
                row[x] = row[y];
                row[y] = t;
            }
        }
    }
}

/* ---- Rotation ------------------------------------------------------------ */

void augment_rotate_image(const float *src, float *dst, int64_t c, int64_t h, int64_t w, float degrees)
{
    /* Inverse mapping: each output pixel samples the source at the point
     * the rotation takes to it. With y pointing down, a counter-clockwise
     * turn by t on screen samples (cx + cos t dx - sin t dy,
     * cy + sin t dx + cos t dy). At t = 0 the sample points are the pixel
     * centres themselves, so the weights are exactly 1, 0, 0, 0. */
    double t = (double)degrees * (PI_D / 180.0);
    double cs = cos(t), sn = sin(t);
    double cx = (double)(w - 1) / 2.0, cy = (double)(h - 1) / 2.0;
    int64_t plane = h * w;
    for (int64_t y = 0; y < h; y++) {
        double dy = (double)y - cy;
        for (int64_t x = 0; x < w; x++) {
            double dx = (double)x - cx;
            double sx = cx + cs * dx - sn * dy;
            double sy = cy + sn * dx + cs * dy;
            float *out = dst + y * w + x;
            if (!(sx > -1.0 && sy > -1.0 && sx < (double)w && sy < (double)h)) {
                for (int64_t ch = 0; ch < c; ch++)
                    out[ch * plane] = 0.0f; /* all four neighbours outside */
                continue;
            }
            /* floor by truncation of a positive number: no libm call per pixel */
            int64_t x0 = (int64_t)(sx + 1.0) - 1, y0 = (int64_t)(sy + 1.0) - 1;
            float fx = (float)(sx - (double)x0), fy = (float)(sy - (double)y0);
            float w00 = (1.0f - fx) * (1.0f - fy), w01 = fx * (1.0f - fy);
            float w10 = (1.0f - fx) * fy, w11 = fx * fy;
            bool in_x0 = x0 >= 0, in_x1 = x0 + 1 < w && fx != 0.0f;
            bool in_y0 = y0 >= 0, in_y1 = y0 + 1 < h && fy != 0.0f;
            /* An index, not a pointer: x0 or y0 may be -1, and a pointer
             * before the array would be undefined even if never read. */
            int64_t base = y0 * w + x0;
            for (int64_t ch = 0; ch < c; ch++, base += plane) {
                float v = 0.0f;
                if (in_y0 && in_x0)
                    v += w00 * src[base];
                if (in_y0 && in_x1)
                    v += w01 * src[base + 1];
                if (in_y1 && in_x0)
                    v += w10 * src[base + w];
                if (in_y1 && in_x1)
                    v += w11 * src[base + w + 1];
                out[ch * plane] = v;
            }
        }
    }
}

plx_status augment_random_rotate(const image_batch *b, float max_degrees, data_error *err)
{
    if (!(max_degrees > 0.0f))
        return PLX_OK;
    size_t size = (size_t)(b->c * b->h * b->w);
    float *scratch = malloc(size * sizeof *scratch);
    if (scratch == NULL)
        return data_fail(err, PLX_OUT_OF_MEMORY, "augment: out of memory for rotation");
    for (int64_t i = 0; i < b->n; i++) {
        float u = row_uniform(b, DATA_STREAM_ROTATE, i, 0);
        float angle = (2.0f * u - 1.0f) * max_degrees;
        if (angle == 0.0f)
            continue;
        float *img = b->data + (size_t)i * size;
        augment_rotate_image(img, scratch, b->c, b->h, b->w, angle);
        memcpy(img, scratch, size * sizeof *img);
    }
    free(scratch);
    return PLX_OK;
}

/* ---- Colour jitter ---------------------------------------------------------- */

/* Uniform in [max(0, 1 - r), 1 + r] from u in [0, 1). */
static float jitter_factor(float r, float u)
{
    float lo = r < 1.0f ? 1.0f - r : 0.0f, hi = 1.0f + r;
    return lo + u * (hi - lo);
}

void augment_color_jitter(const image_batch *b, float brightness, float contrast)
{
    bool do_b = brightness > 0.0f, do_c = contrast > 0.0f;
    if (!do_b && !do_c)
        return;
    int64_t size = b->c * b->h * b->w;
    for (int64_t i = 0; i < b->n; i++) {
        float *img = b->data + i * size;
        if (do_b) {
            float f = jitter_factor(brightness, row_uniform(b, DATA_STREAM_JITTER, i, 0));
            for (int64_t k = 0; k < size; k++)
                img[k] *= f;
        }
        if (do_c) {
            float f = jitter_factor(contrast, row_uniform(b, DATA_STREAM_JITTER, i, 1));
            double sum = 0.0;
            for (int64_t k = 0; k < size; k++)
                sum += img[k];
            float m = (float)(sum / (double)size);
            for (int64_t k = 0; k < size; k++)
                img[k] = m + f * (img[k] - m);
        }
    }
}

/* ---- mixup, CutMix ---------------------------------------------------------- */

/* First draw of the Beta sample; draws 0..3 are partner, choice, box. */
#define MIX_BETA_DRAW 4u
/* Marsaglia-Tsang accepts > 95% of tries for shape >= 1; 64 failures in a
 * row do not happen, but the loop must be bounded to stay a pure function
 * with a known number of draws. */
#define GAMMA_MAX_TRIES 64

typedef struct mix_draws {
    const image_batch *b;
    int64_t row;
    uint32_t draw; /* next draw number */
} mix_draws;

static double next_uniform(mix_draws *d)
{
    return (double)row_uniform(d->b, DATA_STREAM_MIX, d->row, d->draw++);
}

/* Uniform in (0, 1]: safe under log. */
static double next_uniform_pos(mix_draws *d)
{
    uint32_t w = data_random_u32(d->b->seed, DATA_STREAM_MIX, d->b->epoch, d->b->examples[d->row], d->draw++);
    return ((double)(w >> 8) + 1.0) * (1.0 / 16777216.0);
}

/* log of a Gamma(a, 1) sample (Marsaglia and Tsang, 2000); for a < 1,
 * Gamma(a) = Gamma(a + 1) U^(1/a), kept in logs so tiny alphas cannot
 * underflow to 0/0 in the Beta ratio. */
static double log_gamma_sample(mix_draws *d, double a)
{
    double boost = 0.0;
    if (a < 1.0) {
        boost = log(next_uniform_pos(d)) / a;
        a += 1.0;
    }
    double dd = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * dd);
    for (int tries = 0; tries < GAMMA_MAX_TRIES; tries++) {
        double u1 = next_uniform_pos(d), u2 = next_uniform(d);
        double x = sqrt(-2.0 * log(u1)) * cos(2.0 * PI_D * u2);
        double v = 1.0 + c * x;
        double u = next_uniform_pos(d);
        if (v <= 0.0)
            continue;
        v = v * v * v;
        if (u < 1.0 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + dd * (1.0 - v + log(v)))
            return log(dd * v) + boost;
    }
    return log(dd) + boost;
}

/* Beta(alpha, alpha) = X / (X + Y) with X, Y ~ Gamma(alpha). */
static float beta_sample(mix_draws *d, double alpha)
{
    double lx = log_gamma_sample(d, alpha);
    double ly = log_gamma_sample(d, alpha);
    double lam = 1.0 / (1.0 + exp(ly - lx));
    return (float)lam;
}

typedef struct mix_config {
    float mixup_alpha, cutmix_alpha, cutmix_prob, mix_prob;
} mix_config;

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static plx_status mix_batch(const image_batch *b, const mix_config *cfg, float *lambda, int64_t *partner,
                            data_error *err)
{
    int64_t size = b->c * b->h * b->w, plane = b->h * b->w;
    float *orig = malloc((size_t)(b->n > 0 ? b->n * size : 1) * sizeof *orig);
    if (orig == NULL)
        return data_fail(err, PLX_OUT_OF_MEMORY, "augment: out of memory for mixing a batch of %" PRId64, b->n);
    memcpy(orig, b->data, (size_t)(b->n * size) * sizeof *orig);
    bool use_mixup = cfg->mixup_alpha > 0.0f, use_cutmix = cfg->cutmix_alpha > 0.0f;
    for (int64_t i = 0; i < b->n; i++) {
        mix_draws d = {b, i, MIX_BETA_DRAW};
        int64_t j = i;
        if (b->n > 1) {
            /* Uniform among the other rows: mixing with oneself is a no-op. */
            j = row_below(b, DATA_STREAM_MIX, i, 0, b->n - 1);
            if (j >= i)
                j++;
        }
        float choice = row_uniform(b, DATA_STREAM_MIX, i, 1);
        if (!(choice < cfg->mix_prob) || j == i) {
            lambda[i] = 1.0f;
            partner[i] = i;
            continue;
        }
        bool cutmix = use_cutmix && (!use_mixup || choice / cfg->mix_prob < cfg->cutmix_prob);
        float *row = b->data + i * size;
        const float *other = orig + j * size;
        partner[i] = j;
        if (!cutmix) {
            float lam = beta_sample(&d, cfg->mixup_alpha);
            for (int64_t k = 0; k < size; k++)
                row[k] = lam * row[k] + (1.0f - lam) * other[k];
            lambda[i] = lam;
            continue;
        }
        /* The box as the CutMix paper's reference code draws it: side
         * ratio sqrt(1 - lambda0), centre uniform, half-extents cut / 2
         * either side, clipped to the image. */
        float lam0 = beta_sample(&d, cfg->cutmix_alpha);
        double ratio = sqrt(1.0 - (double)lam0);
        int64_t cut_h = (int64_t)((double)b->h * ratio), cut_w = (int64_t)((double)b->w * ratio);
        int64_t cx = row_below(b, DATA_STREAM_MIX, i, 2, b->w), cy = row_below(b, DATA_STREAM_MIX, i, 3, b->h);
        int64_t x1 = clamp64(cx - cut_w / 2, 0, b->w), x2 = clamp64(cx + cut_w / 2, 0, b->w);
        int64_t y1 = clamp64(cy - cut_h / 2, 0, b->h), y2 = clamp64(cy + cut_h / 2, 0, b->h);
        for (int64_t ch = 0; ch < b->c; ch++)
            for (int64_t y = y1; y < y2; y++)
                memcpy(row + ch * plane + y * b->w + x1, other + ch * plane + y * b->w + x1,
                       (size_t)(x2 - x1) * sizeof *row);
        /* lambda from the box actually pasted, not lambda0: clipping at the
         * border shrinks it, and the target must match the pixels. */
        lambda[i] = (float)(1.0 - (double)((x2 - x1) * (y2 - y1)) / (double)plane);
    }
    free(orig);
    return PLX_OK;
}

plx_status augment_mixup(const image_batch *b, float alpha, float *lambda, int64_t *partner, data_error *err)
{
    if (!(alpha > 0.0f) || !isfinite(alpha))
        return data_fail(err, PLX_INVALID_ARGUMENT, "augment: mixup alpha %g must be finite and > 0", alpha);
    mix_config cfg = {.mixup_alpha = alpha, .cutmix_prob = 0.0f, .mix_prob = 1.0f};
    return mix_batch(b, &cfg, lambda, partner, err);
}

plx_status augment_cutmix(const image_batch *b, float alpha, float *lambda, int64_t *partner, data_error *err)
{
    if (!(alpha > 0.0f) || !isfinite(alpha))
        return data_fail(err, PLX_INVALID_ARGUMENT, "augment: CutMix alpha %g must be finite and > 0", alpha);
    mix_config cfg = {.cutmix_alpha = alpha, .cutmix_prob = 1.0f, .mix_prob = 1.0f};
    return mix_batch(b, &cfg, lambda, partner, err);
}

void augment_soft_targets(const int64_t *labels, const float *lambda, const int64_t *partner, int64_t n,
                          int64_t n_classes, float *targets)
{
    memset(targets, 0, (size_t)(n * n_classes) * sizeof *targets);
    for (int64_t i = 0; i < n; i++) {
        float *t = targets + i * n_classes;
        t[labels[i]] += lambda[i];
        t[labels[partner[i]]] += 1.0f - lambda[i];
    }
}

/* ---- Configurations --------------------------------------------------------- */

bool augment_mixes(const augment_options *opts)
{
    return opts != NULL && (opts->mixup_alpha > 0.0f || opts->cutmix_alpha > 0.0f);
}

bool augment_enabled(const augment_options *opts)
{
    return opts != NULL && (opts->crop_padding > 0 || opts->flip_prob > 0.0f || opts->rotate_degrees > 0.0f ||
                            opts->brightness > 0.0f || opts->contrast > 0.0f || augment_mixes(opts));
}

static plx_status check_range(data_error *err, const char *name, float v, float lo, float hi)
{
    if (!(v >= lo && v <= hi))
        return data_fail(err, PLX_INVALID_ARGUMENT, "augmentation: %s is %g (must be in [%g, %g])", name, v, lo, hi);
    return PLX_OK;
}

plx_status augment_validate(const augment_options *opts, int32_t sample_ndim, const int64_t *sample_shape,
                            data_error *err)
{
    if (opts == NULL)
        return PLX_OK;
    plx_status st;
    const float big = 3.0e38f; /* "finite": every float up to FLT_MAX */
    if ((st = check_range(err, "flip_prob", opts->flip_prob, 0.0f, 1.0f)) != PLX_OK ||
        (st = check_range(err, "rotate_degrees", opts->rotate_degrees, 0.0f, 360.0f)) != PLX_OK ||
        (st = check_range(err, "brightness", opts->brightness, 0.0f, big)) != PLX_OK ||
        (st = check_range(err, "contrast", opts->contrast, 0.0f, big)) != PLX_OK ||
        (st = check_range(err, "mixup_alpha", opts->mixup_alpha, 0.0f, big)) != PLX_OK ||
        (st = check_range(err, "cutmix_alpha", opts->cutmix_alpha, 0.0f, big)) != PLX_OK ||
        (st = check_range(err, "cutmix_prob", opts->cutmix_prob, 0.0f, 1.0f)) != PLX_OK ||
        (st = check_range(err, "mix_prob", opts->mix_prob, 0.0f, 1.0f)) != PLX_OK)
        return st;
    if (opts->crop_padding < 0)
        return data_fail(err, PLX_INVALID_ARGUMENT, "augmentation: crop_padding is %" PRId64 " (must be >= 0)",
                         opts->crop_padding);
    const char *spatial = opts->crop_padding > 0                             ? "random crop"
                          : opts->flip_prob > 0.0f                           ? "flip"
                          : opts->rotate_degrees > 0.0f                      ? "rotation"
                          : opts->brightness > 0.0f || opts->contrast > 0.0f ? "colour jitter"
                          : opts->cutmix_alpha > 0.0f                        ? "CutMix"
                                                                             : NULL;
    if (spatial == NULL)
        return PLX_OK;
    if (sample_ndim != 3)
        return data_fail(err, PLX_INVALID_ARGUMENT,
                         "augmentation: %s needs image samples [C, H, W], these have rank %d", spatial, sample_ndim);
    int64_t h = sample_shape[1], w = sample_shape[2];
    if (opts->crop_padding >= h || opts->crop_padding >= w)
        return data_fail(err, PLX_INVALID_ARGUMENT,
                         "augmentation: crop_padding %" PRId64 " must be smaller than the %" PRId64 "x%" PRId64
                         " image",
                         opts->crop_padding, h, w);
    return PLX_OK;
}

plx_status augment_apply(const augment_options *opts, const image_batch *b, float *lambda, int64_t *partner,
                         data_error *err)
{
    if (opts == NULL)
        return PLX_OK;
    augment_random_crop(b, opts->crop_padding);
    augment_random_hflip(b, opts->flip_prob);
    plx_status st = augment_random_rotate(b, opts->rotate_degrees, err);
    if (st != PLX_OK)
        return st;
    augment_color_jitter(b, opts->brightness, opts->contrast);
    if (!augment_mixes(opts))
        return PLX_OK;
    mix_config cfg = {
        .mixup_alpha = opts->mixup_alpha,
        .cutmix_alpha = opts->cutmix_alpha,
        .cutmix_prob = opts->cutmix_prob > 0.0f ? opts->cutmix_prob : 0.5f,
        .mix_prob = opts->mix_prob > 0.0f ? opts->mix_prob : 1.0f,
    };
    return mix_batch(b, &cfg, lambda, partner, err);
}

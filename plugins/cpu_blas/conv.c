/*
 * cpu_blas kernels of the conv family: conv2d forward and its two backward
 * ops, NCHW.
 *
 * The general path lowers each group to one GEMM over an im2col matrix
 * whose rows are (c, r, s) taps and whose columns are output positions:
 *   forward          y_g  = W_g [K/g, C/g*R*S] x col_g
 *   backward data    dcol = W_g^T x dy_g, then col2im adds dcol into dx
 *   backward weight  dW_g += dy_g x col_g^T, summed over the batch
 * Pointwise convs (1x1, stride 1, no padding) use x itself as the column
 * matrix, one image per GEMM. Depthwise convs (groups == C) are direct
 * loops: their GEMMs would have a single row and spend all their time in
 * im2col.
 *
 * Threads: OpenBLAS is threaded itself, so work is arranged in two ways,
 * never mixed. Small per-image GEMMs (which OpenBLAS runs on the calling
 * thread) are spread over our pool one image at a time, each thread with its
 * own column buffer (and, for dW, its own partial sum over a fixed slice of
 * the batch, so results do not depend on scheduling). Bigger ones are issued from the calling thread only,
 * on column matrices that span several images (or a band of output rows of
 * one large image) so each call is large; im2col, col2im and the layout
 * shuffles around them run on the pool in between.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cpu_blas.h"

/* Floats of column matrix per batched chunk (2 MiB): big enough that each
 * GEMM amortizes OpenBLAS's thread hand-off, small enough that im2col's
 * output is still in L2 when the GEMM reads it. 512K-1M floats measured
 * best (2M and 8M were up to 25% slower on 56x56x64 convs). */
#define COL_BUDGET_FLOATS ((int64_t)1 << 19)
/* OpenBLAS (0.3.x) runs a GEMM with m*n*k up to 4 * 65536 on the
 * calling thread alone. */
#define SMALL_GEMM_MNK ((int64_t)4 * 65536)
/* Elements touched per parallel chunk of memory-bound loops. */
#define COPY_GRAIN ((int64_t)1 << 15)

typedef struct conv_geom {
    int64_t n, c, h, w; /* x */
    int64_t k, r, s;    /* w [K, C/groups, R, S] */
    int64_t p, q;       /* y's spatial dims */
    int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
    int64_t cg, kg;     /* channels per group of x and y */
    int64_t crs, crs_g; /* rows of the column matrix: all of it, one group's */
    int64_t hw, pq;
    bool pointwise;
    bool depthwise;
} conv_geom;

static void geom_init(conv_geom *g, const int64_t *x_shape, const int64_t *w_shape, const int64_t *y_shape,
                      const int32_t *stride, const int32_t *padding, const int32_t *dilation, int32_t groups)
{
    g->n = x_shape[0];
    g->c = x_shape[1];
    g->h = x_shape[2];
    g->w = x_shape[3];
    g->k = w_shape[0];
    g->r = w_shape[2];
    g->s = w_shape[3];
    g->p = y_shape[2];
    g->q = y_shape[3];
    g->stride_h = stride[0];
    g->stride_w = stride[1];
    g->pad_h = padding[0];
    g->pad_w = padding[1];
    g->dil_h = dilation[0];
    g->dil_w = dilation[1];
    g->groups = groups;
    g->cg = g->c / groups;
    g->kg = g->k / groups;
    g->crs_g = g->cg * g->r * g->s;
    g->crs = g->c * g->r * g->s;
    g->hw = g->h * g->w;
    g->pq = g->p * g->q;
    g->pointwise = g->r == 1 && g->s == 1 && g->stride_h == 1 && g->stride_w == 1 && g->pad_h == 0 && g->pad_w == 0;
    g->depthwise = groups > 1 && g->cg == 1;
}

/* Output positions [*lo, *hi) of a length-`out_len` axis whose input index
 * o * stride + offset falls inside [0, in_len). */
static void valid_range(int64_t out_len, int64_t in_len, int64_t stride, int64_t offset, int64_t *lo, int64_t *hi)
{
    int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int64_t last = in_len - 1 - offset < 0 ? 0 : (in_len - 1 - offset) / stride + 1;
    if (last > out_len)
        last = out_len;
    if (first > last)
        first = last;
    *lo = first;
    *hi = last;
}

static void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m,
                (int)n, (int)k, 1.0f, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

/* y[i] += a * x[i]. The main loop's trip count is a multiple of 8 so that
 * gcc's -O2 vectorizer (the "very cheap" cost model, which will not add an
 * epilogue) takes it; restrict rules out the aliasing check. */
static void axpy_row(float *restrict y, const float *restrict x, float a, int64_t n)
{
    int64_t bulk = n & ~(int64_t)7, i;
    for (i = 0; i < bulk; i++)
        y[i] += a * x[i];
    for (; i < n; i++)
        y[i] += a * x[i];
}

/* y[i] += x[i], vectorized as axpy_row. */
static void add_row(float *restrict y, const float *restrict x, int64_t n)
{
    int64_t bulk = n & ~(int64_t)7, i;
    for (i = 0; i < bulk; i++)
        y[i] += x[i];
    for (; i < n; i++)
        y[i] += x[i];
}

/* y[i] = x[i] + b, vectorized as axpy_row. */
static void copy_plus_row(float *restrict y, const float *restrict x, float b, int64_t n)
{
    int64_t bulk = n & ~(int64_t)7, i;
    for (i = 0; i < bulk; i++)
        y[i] = x[i] + b;
    for (; i < n; i++)
        y[i] = x[i] + b;
}

/* y[i] = b, vectorized as axpy_row. */
static void fill_row(float *y, float b, int64_t n)
{
    int64_t bulk = n & ~(int64_t)7, i;
    for (i = 0; i < bulk; i++)
        y[i] = b;
    for (; i < n; i++)
        y[i] = b;
}

/* ---- im2col / col2im ------------------------------------------------------
 * A chunk is `images` whole images starting at b0, or (images == 1) a band
 * of output rows [p0, p0 + rows) of one image. Its column matrix has crs
 * rows and images * rows * Q columns (leading dimension `ld`). */
typedef struct conv_chunk {
    int64_t b0, images;
    int64_t p0, rows;
    int64_t cols;
} conv_chunk;

/* Copies the taps of channel plane `plane` for one image of the chunk into
 * `col` (pointing at row c*R*S, column of the image's first position). */
static void im2col_plane(const conv_geom *g, const float *plane, int64_t p0, int64_t rows, float *col, int64_t ld)
{
    for (int64_t r = 0; r < g->r; r++) {
        for (int64_t s = 0; s < g->s; s++) {
            float *dst = col + (r * g->s + s) * ld;
            int64_t off_w = s * g->dil_w - g->pad_w, q_lo, q_hi;
            valid_range(g->q, g->w, g->stride_w, off_w, &q_lo, &q_hi);
            for (int64_t pi = 0; pi < rows; pi++) {
                float *d = dst + pi * g->q;
                int64_t ih = (p0 + pi) * g->stride_h - g->pad_h + r * g->dil_h;
                if (ih < 0 || ih >= g->h) {
                    memset(d, 0, (size_t)g->q * sizeof(float));
                    continue;
                }
                const float *src = plane + ih * g->w;
                memset(d, 0, (size_t)q_lo * sizeof(float));
                if (g->stride_w == 1) {
                    memcpy(d + q_lo, src + q_lo + off_w, (size_t)(q_hi - q_lo) * sizeof(float));
                } else {
                    for (int64_t q = q_lo; q < q_hi; q++)
                        d[q] = src[q * g->stride_w + off_w];
                }
                memset(d + q_hi, 0, (size_t)(g->q - q_hi) * sizeof(float));
            }
        }
    }
}

/* Adds the taps in `col` back into channel plane `plane` (the transpose of
 * im2col_plane). */
static void col2im_plane(const conv_geom *g, const float *col, int64_t ld, int64_t p0, int64_t rows, float *plane)
{
    for (int64_t r = 0; r < g->r; r++) {
        for (int64_t s = 0; s < g->s; s++) {
            const float *src = col + (r * g->s + s) * ld;
            int64_t off_w = s * g->dil_w - g->pad_w, q_lo, q_hi;
            valid_range(g->q, g->w, g->stride_w, off_w, &q_lo, &q_hi);
            for (int64_t pi = 0; pi < rows; pi++) {
                int64_t ih = (p0 + pi) * g->stride_h - g->pad_h + r * g->dil_h;
                if (ih < 0 || ih >= g->h)
                    continue;
                float *dst = plane + ih * g->w;
                const float *s_row = src + pi * g->q;
                if (g->stride_w == 1) {
                    add_row(dst + off_w + q_lo, s_row + q_lo, q_hi - q_lo);
                } else {
                    for (int64_t q = q_lo; q < q_hi; q++)
                        dst[q * g->stride_w + off_w] += s_row[q];
                }
            }
        }
    }
}

typedef struct chunk_job {
    const conv_geom *g;
    conv_chunk ch;
    const float *src;
    float *dst;
    const float *bias;
} chunk_job;

/* Units are (image of the chunk, channel). */
static void im2col_range(void *arg, int64_t begin, int64_t end)
{
    const chunk_job *j = arg;
    const conv_geom *g = j->g;
    for (int64_t u = begin; u < end; u++) {
        int64_t bi = u / g->c, c = u % g->c;
        const float *plane = j->src + ((j->ch.b0 + bi) * g->c + c) * g->hw;
        im2col_plane(g, plane, j->ch.p0, j->ch.rows, j->dst + c * g->r * g->s * j->ch.cols + bi * j->ch.rows * g->q,
                     j->ch.cols);
    }
}

/* Units are (image of the chunk, channel); the first band of an image
 * clears the plane, later bands add to it. */
static void col2im_range(void *arg, int64_t begin, int64_t end)
{
    const chunk_job *j = arg;
    const conv_geom *g = j->g;
    for (int64_t u = begin; u < end; u++) {
        int64_t bi = u / g->c, c = u % g->c;
        float *plane = j->dst + ((j->ch.b0 + bi) * g->c + c) * g->hw;
        if (j->ch.p0 == 0)
            memset(plane, 0, (size_t)g->hw * sizeof(float));
        col2im_plane(g, j->src + c * g->r * g->s * j->ch.cols + bi * j->ch.rows * g->q, j->ch.cols, j->ch.p0,
                     j->ch.rows, plane);
    }
}

/* Units are (image of the chunk, output channel): [K, images*PQ] -> y's
 * [images, K, PQ], adding the bias. */
static void scatter_y_range(void *arg, int64_t begin, int64_t end)
{
    const chunk_job *j = arg;
    const conv_geom *g = j->g;
    for (int64_t u = begin; u < end; u++) {
        int64_t bi = u / g->k, k = u % g->k;
        const float *src = j->src + k * j->ch.cols + bi * g->pq;
        float *dst = j->dst + ((j->ch.b0 + bi) * g->k + k) * g->pq;
        copy_plus_row(dst, src, j->bias != NULL ? j->bias[k] : 0.0f, g->pq);
    }
}

/* Units are (image of the chunk, output channel): dy's [images, K, PQ] ->
 * [K, images*PQ]. */
static void gather_dy_range(void *arg, int64_t begin, int64_t end)
{
    const chunk_job *j = arg;
    const conv_geom *g = j->g;
    for (int64_t u = begin; u < end; u++) {
        int64_t bi = u / g->k, k = u % g->k;
        memcpy(j->dst + k * j->ch.cols + bi * g->pq, j->src + ((j->ch.b0 + bi) * g->k + k) * g->pq,
               (size_t)g->pq * sizeof(float));
    }
}

static int64_t grain_for(int64_t per_unit)
{
    int64_t grain = COPY_GRAIN / (per_unit > 0 ? per_unit : 1);
    return grain > 0 ? grain : 1;
}

/* How to cut the batch: images per chunk, or bands of rows of one image.
 * Pointwise convs take one image at a time and skip im2col (measured:
 * gathering small planes of several images into one wider GEMM did not pay
 * for the copies, even at 7x7). */
static void plan_chunks(const conv_geom *g, int64_t *images, int64_t *rows)
{
    int64_t per_image = g->crs * g->pq;
    if (g->pointwise || per_image >= COL_BUDGET_FLOATS) {
        *images = 1;
        *rows = g->pointwise ? g->p : COL_BUDGET_FLOATS / (g->crs * g->q);
        if (*rows < 1)
            *rows = 1;
        if (*rows > g->p)
            *rows = g->p;
        return;
    }
    *images = COL_BUDGET_FLOATS / per_image;
    if (*images > g->n)
        *images = g->n;
    *rows = g->p;
}

static conv_chunk make_chunk(const conv_geom *g, int64_t b0, int64_t images, int64_t p0, int64_t rows)
{
    conv_chunk ch = {b0, images, p0, rows, 0};
    if (ch.b0 + ch.images > g->n)
        ch.images = g->n - ch.b0;
    if (ch.p0 + ch.rows > g->p)
        ch.rows = g->p - ch.p0;
    ch.cols = ch.images * ch.rows * g->q;
    return ch;
}

/* Whether one image's GEMM per group is small enough for OpenBLAS to run it
 * single-threaded, so images can go to our threads instead. */
static bool per_image_gemm_is_small(const conv_geom *g)
{
    return g->kg * g->crs_g * g->pq < SMALL_GEMM_MNK;
}

static plx_status out_of_memory(cpu_state *st, const char *op, size_t floats)
{
    return CPU_FAIL(st, PLX_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes of workspace", op,
                    floats * sizeof(float));
}

/* ---- per-image and per-chunk operands ---------------------------------------- */

/* One image's column matrix [C*R*S, PQ] for the per-image paths, or NULL
 * for pointwise convs (which need none). False, with *failed set, when it
 * cannot be allocated. */
static bool alloc_image_col(const conv_geom *g, atomic_int *failed, float **col)
{
    *col = NULL;
    if (!g->pointwise && (*col = malloc((size_t)(g->crs * g->pq) * sizeof(float))) == NULL) {
        atomic_store(failed, 1);
        return false;
    }
    return true;
}

/* im2col of all channels of image xb into col ([C*R*S, PQ]). */
static void im2col_image(const conv_geom *g, const float *xb, float *col)
{
    for (int64_t c = 0; c < g->c; c++)
        im2col_plane(g, xb + c * g->hw, 0, g->p, col + c * g->r * g->s * g->pq, g->pq);
}

/* Workspace of the batched paths, cut as plan_chunks says: one chunk's
 * column matrix (none for pointwise convs) and, for chunks of several
 * images, a [K, images*PQ] matrix for y or dy in column order. */
typedef struct chunk_workspace {
    int64_t images, rows;
    float *col;
    float *k_cols;
} chunk_workspace;

static void workspace_free(chunk_workspace *ws)
{
    free(ws->col);
    free(ws->k_cols);
}

static plx_status workspace_alloc(cpu_state *st, const conv_geom *g, const char *op, chunk_workspace *ws)
{
    plan_chunks(g, &ws->images, &ws->rows);
    size_t col_floats = g->pointwise ? 0 : (size_t)(g->crs * ws->images * ws->rows * g->q);
    size_t k_floats = ws->images > 1 ? (size_t)(g->k * ws->images * g->pq) : 0;
    ws->col = col_floats ? malloc(col_floats * sizeof(float)) : NULL;
    ws->k_cols = k_floats ? malloc(k_floats * sizeof(float)) : NULL;
    if ((col_floats && ws->col == NULL) || (k_floats && ws->k_cols == NULL)) {
        workspace_free(ws);
        return out_of_memory(st, op, col_floats + k_floats);
    }
    return PLX_OK;
}

/* x's column matrix for chunk ch as a GEMM operand: x itself for pointwise
 * convs, else im2col'd into col. *ld gets its leading dimension. */
static const float *chunk_x_cols(cpu_state *st, const conv_geom *g, const conv_chunk *ch, const float *x, float *col,
                                 int64_t *ld)
{
    if (g->pointwise) {
        *ld = g->hw;
        return x + ch->b0 * g->c * g->hw;
    }
    chunk_job job = {g, *ch, x, col, NULL};
    cpu_parallel_for(st, ch->images * g->c, grain_for(g->r * g->s * ch->rows * g->q), im2col_range, &job);
    *ld = ch->cols;
    return col;
}

/* dy's [K, cols] matrix for chunk ch as a GEMM operand: dy itself for a
 * single image (or band), else gathered into k_cols. *ld gets its leading
 * dimension. */
static const float *chunk_dy_cols(cpu_state *st, const conv_geom *g, const conv_chunk *ch, const float *dy,
                                  float *k_cols, int64_t *ld)
{
    if (ch->images == 1) {
        *ld = g->pq;
        return dy + ch->b0 * g->k * g->pq + ch->p0 * g->q;
    }
    chunk_job job = {g, *ch, dy, k_cols, NULL};
    cpu_parallel_for(st, ch->images * g->k, grain_for(g->pq), gather_dy_range, &job);
    *ld = ch->cols;
    return k_cols;
}

/* ---- forward --------------------------------------------------------------- */

typedef struct small_job {
    const conv_geom *g;
    const float *x, *w, *bias, *dy;
    float *y, *dx;
    atomic_int failed;
} small_job;

/* y_b = W x im2col(x_b) (+ bias) per image, on the calling thread. */
static void forward_small_range(void *arg, int64_t begin, int64_t end)
{
    small_job *j = arg;
    const conv_geom *g = j->g;
    float *col;
    if (!alloc_image_col(g, &j->failed, &col))
        return;
    for (int64_t b = begin; b < end; b++) {
        const float *xb = j->x + b * g->c * g->hw, *cols = xb;
        float *yb = j->y + b * g->k * g->pq;
        if (!g->pointwise) {
            im2col_image(g, xb, col);
            cols = col;
        }
        if (j->bias != NULL)
            for (int64_t k = 0; k < g->k; k++)
                fill_row(yb + k * g->pq, j->bias[k], g->pq);
        for (int64_t grp = 0; grp < g->groups; grp++)
            sgemm(false, false, g->kg, g->pq, g->crs_g, j->w + grp * g->kg * g->crs_g, g->crs_g,
                  cols + grp * g->crs_g * g->pq, g->pq, j->bias != NULL ? 1.0f : 0.0f, yb + grp * g->kg * g->pq,
                  g->pq);
    }
    free(col);
}

typedef struct fill_bias_job {
    float *y;
    const float *bias;
    int64_t pq, count; /* rows of y are pq apart; `count` values of each get the bias */
} fill_bias_job;

static void fill_bias_range(void *arg, int64_t begin, int64_t end)
{
    const fill_bias_job *j = arg;
    for (int64_t k = begin; k < end; k++)
        fill_row(j->y + k * j->pq, j->bias[k], j->count);
}

static plx_status forward_batched(cpu_state *st, const conv_geom *g, const float *x, const float *w,
                                  const float *bias, float *y)
{
    chunk_workspace ws;
    plx_status status = workspace_alloc(st, g, "conv2d", &ws);
    if (status != PLX_OK)
        return status;
    for (int64_t b0 = 0; b0 < g->n; b0 += ws.images) {
        for (int64_t p0 = 0; p0 < g->p; p0 += ws.rows) {
            conv_chunk ch = make_chunk(g, b0, ws.images, p0, ws.rows);
            int64_t ld;
            const float *cols_src = chunk_x_cols(st, g, &ch, x, ws.col, &ld);
            if (ch.images == 1) {
                float *yb = y + b0 * g->k * g->pq + p0 * g->q;
                if (bias != NULL) {
                    fill_bias_job fb = {yb, bias, g->pq, ch.rows * g->q};
                    cpu_parallel_for(st, g->k, grain_for(fb.count), fill_bias_range, &fb);
                }
                for (int64_t grp = 0; grp < g->groups; grp++)
                    sgemm(false, false, g->kg, ch.cols, g->crs_g, w + grp * g->kg * g->crs_g, g->crs_g,
                          cols_src + grp * g->crs_g * ld, ld, bias != NULL ? 1.0f : 0.0f, yb + grp * g->kg * g->pq,
                          g->pq);
            } else {
                for (int64_t grp = 0; grp < g->groups; grp++)
                    sgemm(false, false, g->kg, ch.cols, g->crs_g, w + grp * g->kg * g->crs_g, g->crs_g,
                          cols_src + grp * g->crs_g * ld, ld, 0.0f, ws.k_cols + grp * g->kg * ch.cols, ch.cols);
                chunk_job job = {g, ch, ws.k_cols, y, bias};
                cpu_parallel_for(st, ch.images * g->k, grain_for(g->pq), scatter_y_range, &job);
            }
        }
    }
    workspace_free(&ws);
    return PLX_OK;
}

/* ---- depthwise (groups == C): direct loops --------------------------------
 * Output channel k reads input channel k / (K/C). */

typedef struct depthwise_job {
    const conv_geom *g;
    const float *x, *w, *bias, *dy;
    float *y, *dx, *dw;
} depthwise_job;

/* Units are (image, output channel) planes of y. Taps run outermost so the
 * inner loops are whole branch-free rows; a plane stays in cache across
 * the R*S passes. */
static void depthwise_forward_range(void *arg, int64_t begin, int64_t end)
{
    const depthwise_job *j = arg;
    const conv_geom *g = j->g;
    for (int64_t u = begin; u < end; u++) {
        int64_t b = u / g->k, k = u % g->k, c = k / g->kg;
        const float *plane = j->x + (b * g->c + c) * g->hw;
        const float *wk = j->w + k * g->r * g->s;
        float *yp = j->y + u * g->pq;
        fill_row(yp, j->bias != NULL ? j->bias[k] : 0.0f, g->pq);
        for (int64_t r = 0; r < g->r; r++) {
            int64_t off_h = r * g->dil_h - g->pad_h, p_lo, p_hi;
            valid_range(g->p, g->h, g->stride_h, off_h, &p_lo, &p_hi);
            for (int64_t s = 0; s < g->s; s++) {
                float wv = wk[r * g->s + s];
                int64_t off_w = s * g->dil_w - g->pad_w, q_lo, q_hi;
                valid_range(g->q, g->w, g->stride_w, off_w, &q_lo, &q_hi);
                for (int64_t p = p_lo; p < p_hi; p++) {
                    const float *xrow = plane + (p * g->stride_h + off_h) * g->w;
                    float *yrow = yp + p * g->q;
                    if (g->stride_w == 1)
                        axpy_row(yrow + q_lo, xrow + q_lo + off_w, wv, q_hi - q_lo);
                    else
                        for (int64_t q = q_lo; q < q_hi; q++)
                            yrow[q] += wv * xrow[q * g->stride_w + off_w];
                }
            }
        }
    }
}

/* Units are (image, input channel) planes of dx. */
static void depthwise_backward_data_range(void *arg, int64_t begin, int64_t end)
{
    const depthwise_job *j = arg;
    const conv_geom *g = j->g;
    for (int64_t u = begin; u < end; u++) {
        int64_t b = u / g->c, c = u % g->c;
        float *plane = j->dx + u * g->hw;
        memset(plane, 0, (size_t)g->hw * sizeof(float));
        for (int64_t k = c * g->kg; k < (c + 1) * g->kg; k++) {
            const float *dyp = j->dy + (b * g->k + k) * g->pq;
            const float *wk = j->w + k * g->r * g->s;
            for (int64_t r = 0; r < g->r; r++) {
                int64_t off_h = r * g->dil_h - g->pad_h, p_lo, p_hi;
                valid_range(g->p, g->h, g->stride_h, off_h, &p_lo, &p_hi);
                for (int64_t s = 0; s < g->s; s++) {
                    float wv = wk[r * g->s + s];
                    int64_t off_w = s * g->dil_w - g->pad_w, q_lo, q_hi;
                    valid_range(g->q, g->w, g->stride_w, off_w, &q_lo, &q_hi);
                    for (int64_t p = p_lo; p < p_hi; p++) {
                        float *dxrow = plane + (p * g->stride_h + off_h) * g->w;
                        const float *dyrow = dyp + p * g->q;
                        if (g->stride_w == 1)
                            axpy_row(dxrow + q_lo + off_w, dyrow + q_lo, wv, q_hi - q_lo);
                        else
                            for (int64_t q = q_lo; q < q_hi; q++)
                                dxrow[q * g->stride_w + off_w] += wv * dyrow[q];
                    }
                }
            }
        }
    }
}

/* Sum of a[i] * b[i * stride] with independent partial sums (so the loop
 * pipelines without reassociation flags). */
static double strided_dot(const float *a, const float *b, int64_t stride, int64_t n)
{
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int64_t i = 0;
    if (stride == 1) {
        for (; i + 4 <= n; i += 4)
            for (int l = 0; l < 4; l++)
                acc[l] += a[i + l] * b[i + l];
    }
    for (; i < n; i++)
        acc[0] += a[i] * b[i * stride];
    return (double)acc[0] + (double)acc[1] + (double)acc[2] + (double)acc[3];
}

/* Units are output channels k: dw[k] sums over the whole batch. */
static void depthwise_backward_weight_range(void *arg, int64_t begin, int64_t end)
{
    const depthwise_job *j = arg;
    const conv_geom *g = j->g;
    for (int64_t k = begin; k < end; k++) {
        int64_t c = k / g->kg;
        for (int64_t r = 0; r < g->r; r++) {
            for (int64_t s = 0; s < g->s; s++) {
                int64_t off_w = s * g->dil_w - g->pad_w, q_lo, q_hi;
                valid_range(g->q, g->w, g->stride_w, off_w, &q_lo, &q_hi);
                int64_t off_h = r * g->dil_h - g->pad_h, p_lo, p_hi;
                valid_range(g->p, g->h, g->stride_h, off_h, &p_lo, &p_hi);
                double acc = 0.0;
                for (int64_t b = 0; b < g->n && q_hi > q_lo; b++) {
                    const float *plane = j->x + (b * g->c + c) * g->hw;
                    const float *dyp = j->dy + (b * g->k + k) * g->pq;
                    for (int64_t p = p_lo; p < p_hi; p++)
                        acc += strided_dot(dyp + p * g->q + q_lo,
                                           plane + (p * g->stride_h + off_h) * g->w + q_lo * g->stride_w + off_w,
                                           g->stride_w, q_hi - q_lo);
                }
                j->dw[(k * g->r + r) * g->s + s] = (float)acc;
            }
        }
    }
}

/* ---- backward data ---------------------------------------------------------- */

/* dx_b = col2im(W^T x dy_b) per image, on the calling thread. */
static void backward_data_small_range(void *arg, int64_t begin, int64_t end)
{
    small_job *j = arg;
    const conv_geom *g = j->g;
    float *col;
    if (!alloc_image_col(g, &j->failed, &col))
        return;
    for (int64_t b = begin; b < end; b++) {
        const float *dyb = j->dy + b * g->k * g->pq;
        float *dxb = j->dx + b * g->c * g->hw;
        if (g->pointwise) {
            for (int64_t grp = 0; grp < g->groups; grp++)
                sgemm(true, false, g->cg, g->hw, g->kg, j->w + grp * g->kg * g->cg, g->cg, dyb + grp * g->kg * g->pq,
                      g->pq, 0.0f, dxb + grp * g->cg * g->hw, g->hw);
            continue;
        }
        for (int64_t grp = 0; grp < g->groups; grp++)
            sgemm(true, false, g->crs_g, g->pq, g->kg, j->w + grp * g->kg * g->crs_g, g->crs_g,
                  dyb + grp * g->kg * g->pq, g->pq, 0.0f, col + grp * g->crs_g * g->pq, g->pq);
        memset(dxb, 0, (size_t)(g->c * g->hw) * sizeof(float));
        for (int64_t c = 0; c < g->c; c++)
            col2im_plane(g, col + c * g->r * g->s * g->pq, g->pq, 0, g->p, dxb + c * g->hw);
    }
    free(col);
}

static plx_status backward_data_batched(cpu_state *st, const conv_geom *g, const float *dy, const float *w,
                                        float *dx)
{
    chunk_workspace ws;
    plx_status status = workspace_alloc(st, g, "conv2d_backward_data", &ws);
    if (status != PLX_OK)
        return status;
    for (int64_t b0 = 0; b0 < g->n; b0 += ws.images) {
        for (int64_t p0 = 0; p0 < g->p; p0 += ws.rows) {
            conv_chunk ch = make_chunk(g, b0, ws.images, p0, ws.rows);
            int64_t ld_dy;
            const float *dy_src = chunk_dy_cols(st, g, &ch, dy, ws.k_cols, &ld_dy);
            if (g->pointwise) {
                float *dxb = dx + b0 * g->c * g->hw;
                for (int64_t grp = 0; grp < g->groups; grp++)
                    sgemm(true, false, g->cg, g->hw, g->kg, w + grp * g->kg * g->cg, g->cg,
                          dy_src + grp * g->kg * ld_dy, ld_dy, 0.0f, dxb + grp * g->cg * g->hw, g->hw);
                continue;
            }
            for (int64_t grp = 0; grp < g->groups; grp++)
                sgemm(true, false, g->crs_g, ch.cols, g->kg, w + grp * g->kg * g->crs_g, g->crs_g,
                      dy_src + grp * g->kg * ld_dy, ld_dy, 0.0f, ws.col + grp * g->crs_g * ch.cols, ch.cols);
            chunk_job job = {g, ch, ws.col, dx, NULL};
            cpu_parallel_for(st, ch.images * g->c, grain_for(g->r * g->s * ch.rows * g->q), col2im_range, &job);
        }
    }
    workspace_free(&ws);
    return PLX_OK;
}

/* ---- backward weight -------------------------------------------------------- */

/* Each slice of the batch sums its images' dW_g += dy_b x im2col(x_b)^T into
 * its own partial (slice 0's is dw itself), on the calling thread. */
typedef struct weight_small_job {
    const conv_geom *g;
    const float *x, *dy;
    float *dw, *partials; /* partials: slices - 1 of [K, C/g*R*S] */
    int64_t slices;
    atomic_int failed;
} weight_small_job;

static void backward_weight_small_range(void *arg, int64_t begin, int64_t end)
{
    weight_small_job *j = arg;
    const conv_geom *g = j->g;
    float *col;
    if (!alloc_image_col(g, &j->failed, &col))
        return;
    for (int64_t slice = begin; slice < end; slice++) {
        float *part = slice == 0 ? j->dw : j->partials + (slice - 1) * g->k * g->crs_g;
        int64_t b_begin = g->n * slice / j->slices, b_end = g->n * (slice + 1) / j->slices;
        float beta = 0.0f;
        for (int64_t b = b_begin; b < b_end; b++) {
            const float *xb = j->x + b * g->c * g->hw, *cols = xb;
            const float *dyb = j->dy + b * g->k * g->pq;
            if (!g->pointwise) {
                im2col_image(g, xb, col);
                cols = col;
            }
            for (int64_t grp = 0; grp < g->groups; grp++)
                sgemm(false, true, g->kg, g->crs_g, g->pq, dyb + grp * g->kg * g->pq, g->pq,
                      cols + grp * g->crs_g * g->pq, g->pq, beta, part + grp * g->kg * g->crs_g, g->crs_g);
            beta = 1.0f;
        }
        if (b_begin == b_end)
            memset(part, 0, (size_t)(g->k * g->crs_g) * sizeof(float));
    }
    free(col);
}

static plx_status backward_weight_small(cpu_state *st, const conv_geom *g, const float *dy, const float *x,
                                        float *dw)
{
    int64_t slices = st->threads < g->n ? st->threads : g->n;
    if (slices < 1)
        slices = 1;
    size_t part_floats = (size_t)((slices - 1) * g->k * g->crs_g);
    weight_small_job j = {g, x, dy, dw, NULL, slices, 0};
    if (part_floats > 0 && (j.partials = malloc(part_floats * sizeof(float))) == NULL)
        return out_of_memory(st, "conv2d_backward_weight", part_floats);
    cpu_parallel_for(st, slices, 1, backward_weight_small_range, &j);
    if (atomic_load(&j.failed)) {
        free(j.partials);
        return out_of_memory(st, "conv2d_backward_weight", (size_t)(g->crs * g->pq));
    }
    /* Fixed slices and a fixed summation order: the result depends only on
     * the thread budget, never on scheduling. */
    int64_t count = g->k * g->crs_g;
    for (int64_t slice = 1; slice < slices; slice++) {
        const float *part = j.partials + (slice - 1) * count;
        for (int64_t i = 0; i < count; i++)
            dw[i] += part[i];
    }
    free(j.partials);
    return PLX_OK;
}

static plx_status backward_weight_batched(cpu_state *st, const conv_geom *g, const float *dy, const float *x,
                                          float *dw)
{
    if (g->n == 0) {
        memset(dw, 0, (size_t)(g->k * g->crs_g) * sizeof(float));
        return PLX_OK;
    }
    chunk_workspace ws;
    plx_status status = workspace_alloc(st, g, "conv2d_backward_weight", &ws);
    if (status != PLX_OK)
        return status;
    float beta = 0.0f;
    for (int64_t b0 = 0; b0 < g->n; b0 += ws.images) {
        for (int64_t p0 = 0; p0 < g->p; p0 += ws.rows) {
            conv_chunk ch = make_chunk(g, b0, ws.images, p0, ws.rows);
            int64_t ld_dy, ld_col;
            const float *dy_src = chunk_dy_cols(st, g, &ch, dy, ws.k_cols, &ld_dy);
            const float *cols_src = chunk_x_cols(st, g, &ch, x, ws.col, &ld_col);
            for (int64_t grp = 0; grp < g->groups; grp++)
                sgemm(false, true, g->kg, g->crs_g, ch.cols, dy_src + grp * g->kg * ld_dy, ld_dy,
                      cols_src + grp * g->crs_g * ld_col, ld_col, beta, dw + grp * g->kg * g->crs_g, g->crs_g);
            beta = 1.0f;
        }
    }
    workspace_free(&ws);
    return PLX_OK;
}

/* ---- entry points ------------------------------------------------------------ */

static void relu_in_place_range(void *arg, int64_t begin, int64_t end)
{
    float *y = arg;
    for (int64_t i = begin; i < end; i++)
        y[i] = y[i] < 0.0f ? 0.0f : y[i]; /* NaN stays NaN, as core.relu */
}

static plx_status conv2d_forward(cpu_state *st, const conv_geom *g, const float *x, const float *w,
                                 const float *bias, float *y)
{
    if (g->depthwise) {
        depthwise_job j = {g, x, w, bias, NULL, y, NULL, NULL};
        cpu_parallel_for(st, g->n * g->k, grain_for(g->pq * g->r * g->s), depthwise_forward_range, &j);
        return PLX_OK;
    }
    if (per_image_gemm_is_small(g)) {
        small_job j = {g, x, w, bias, NULL, y, NULL, 0};
        cpu_parallel_for(st, g->n, 1, forward_small_range, &j);
        return atomic_load(&j.failed) ? out_of_memory(st, "conv2d", (size_t)(g->crs * g->pq)) : PLX_OK;
    }
    return forward_batched(st, g, x, w, bias, y);
}

/* The fused activation (ABI 1.2) is applied as a pass over y: this is the
 * reference, not the fast path. */
static plx_status run_conv2d(cpu_state *st, const plx_op_call *call)
{
    const plx_conv2d_attrs *a = call->attrs;
    const plx_tensor_desc *x = &call->inputs[0], *w = &call->inputs[1], *y = &call->outputs[0];
    const float *bias = call->n_inputs > 2 ? cpu_f32(&call->inputs[2]) : NULL;
    conv_geom g;
    geom_init(&g, x->shape, w->shape, y->shape, a->stride, a->padding, a->dilation, a->groups);
    if (g.n == 0)
        return PLX_OK;
    plx_status s = conv2d_forward(st, &g, cpu_f32(x), cpu_f32(w), bias, cpu_f32(y));
    if (s == PLX_OK && a->activation == PLX_ACTIVATION_RELU)
        cpu_parallel_for(st, plx_desc_numel(y), 16384, relu_in_place_range, cpu_f32(y));
    return s;
}

static plx_status run_conv2d_backward_data(cpu_state *st, const plx_op_call *call)
{
    const plx_conv2d_backward_attrs *a = call->attrs;
    const plx_tensor_desc *dy = &call->inputs[0], *w = &call->inputs[1], *dx = &call->outputs[0];
    conv_geom g;
    geom_init(&g, dx->shape, w->shape, dy->shape, a->stride, a->padding, a->dilation, a->groups);
    if (g.n == 0)
        return PLX_OK;
    if (g.depthwise) {
        depthwise_job j = {&g, NULL, cpu_f32(w), NULL, cpu_f32(dy), NULL, cpu_f32(dx), NULL};
        cpu_parallel_for(st, g.n * g.c, grain_for(g.pq * g.r * g.s * g.kg), depthwise_backward_data_range, &j);
        return PLX_OK;
    }
    if (per_image_gemm_is_small(&g)) {
        small_job j = {&g, NULL, cpu_f32(w), NULL, cpu_f32(dy), NULL, cpu_f32(dx), 0};
        cpu_parallel_for(st, g.n, 1, backward_data_small_range, &j);
        return atomic_load(&j.failed) ? out_of_memory(st, "conv2d_backward_data", (size_t)(g.crs * g.pq))
                                      : PLX_OK;
    }
    return backward_data_batched(st, &g, cpu_f32(dy), cpu_f32(w), cpu_f32(dx));
}

static plx_status run_conv2d_backward_weight(cpu_state *st, const plx_op_call *call)
{
    const plx_conv2d_backward_attrs *a = call->attrs;
    const plx_tensor_desc *dy = &call->inputs[0], *x = &call->inputs[1], *dw = &call->outputs[0];
    conv_geom g;
    geom_init(&g, x->shape, dw->shape, dy->shape, a->stride, a->padding, a->dilation, a->groups);
    if (g.depthwise) {
        depthwise_job j = {&g, cpu_f32(x), NULL, NULL, cpu_f32(dy), NULL, NULL, cpu_f32(dw)};
        cpu_parallel_for(st, g.k, 1, depthwise_backward_weight_range, &j);
        return PLX_OK;
    }
    if (g.n > 0 && per_image_gemm_is_small(&g))
        return backward_weight_small(st, &g, cpu_f32(dy), cpu_f32(x), cpu_f32(dw));
    return backward_weight_batched(st, &g, cpu_f32(dy), cpu_f32(x), cpu_f32(dw));
}

/* The default f32 check, plus GEMM dims that fit BLAS's int. */
static bool supports_conv(const plx_op_call *call, char *reason, size_t cap)
{
    for (int32_t i = 0; i < call->n_inputs; i++)
        if (!plx_dtype_equal(call->inputs[i].dtype, PLX_F32)) {
            snprintf(reason, cap, "input %d is not f32", (int)i);
            return false;
        }
    for (int32_t i = 0; i < call->n_outputs; i++) {
        const plx_tensor_desc *t = &call->outputs[i];
        if (!plx_dtype_equal(t->dtype, PLX_F32)) {
            snprintf(reason, cap, "output %d is not f32", (int)i);
            return false;
        }
    }
    /* GEMM dims and leading dims are at most K, C/g*R*S, H*W or P*Q, or a
     * column chunk's width (bounded by COL_BUDGET_FLOATS or by P*Q). */
    for (int32_t i = 0; i < call->n_inputs + call->n_outputs; i++) {
        const plx_tensor_desc *t = i < call->n_inputs ? &call->inputs[i] : &call->outputs[i - call->n_inputs];
        if (t->ndim == 4 && (t->shape[0] > INT_MAX || t->shape[1] * t->shape[2] * t->shape[3] > INT_MAX)) {
            snprintf(reason, cap, "a tensor's per-image size exceeds BLAS's int range");
            return false;
        }
    }
    return true;
}

CPU_FAMILY_TABLE(conv, {PLX_OP_CONV2D, run_conv2d, supports_conv},
                 {PLX_OP_CONV2D_BACKWARD_DATA, run_conv2d_backward_data, supports_conv},
                 {PLX_OP_CONV2D_BACKWARD_WEIGHT, run_conv2d_backward_weight, supports_conv});

/* Gradient rules of the layout (copy, cast, reshape, permute, concat, slice,
 * pad), random (dropout) and embedding families, each checked against
 * central finite differences of the executed plan (graph_check.h), on fixed
 * corner cases and on shapes and attrs drawn at random. All these ops are
 * linear in their float input, so the differences are exact up to f32
 * rounding. */
#include "graph_check.h"

#define F32_IN(nd, lo_, hi_, ...) {PLX_F32, nd, {__VA_ARGS__}, lo_, hi_, true}

#define EPS 1e-2f
#define TOL 2e-3f
#define POINTS 96

#define F64 ((plx_dtype)PLX_DTYPE_INIT_(PLX_DTYPE_CODE_FLOAT, 64))

static void check_one(const char *what, int32_t op_id, const void *attrs, int32_t n_in, gc_input *in)
{
    gc_one_op op = {op_id, attrs, n_in, 1, 0};
    gc_check(what, n_in, in, gc_build_one_op, &op, EPS, TOL, POINTS);
}

/* A random shape of `ndim` dims in [lo, hi]. */
static gc_input random_input(uint64_t *rng, int32_t ndim, int64_t lo, int64_t hi)
{
    gc_input in = {PLX_F32, ndim, {0}, -1.0f, 1.0f, true};
    for (int32_t d = 0; d < ndim; d++)
        in.dims[d] = tu_rand_int(rng, lo, hi);
    return in;
}

static int32_t add_op(plx_graph *g, int32_t op_id, const void *attrs, const int32_t *in, int32_t n_in)
{
    int32_t out;
    return graph_add_op(g, op_id, attrs, in, n_in, &out, 1) == PLX_OK ? out : -1;
}

static int32_t flatten(plx_graph *g, int32_t v)
{
    plx_reshape_attrs r = {sizeof r, 1, {-1}};
    return v < 0 ? -1 : add_op(g, PLX_OP_RESHAPE, &r, &v, 1);
}

/* ---- copy, reshape, cast ------------------------------------------------- */

static void test_copy_and_reshape(void **state)
{
    (void)state;
    gc_input a[1] = {F32_IN(3, -1.0f, 1.0f, 3, 5, 2)};
    check_one("copy", PLX_OP_COPY, NULL, 1, a);

    plx_reshape_attrs r1 = {sizeof r1, 2, {5, -1}};
    gc_input b[1] = {F32_IN(3, -1.0f, 1.0f, 2, 3, 5)};
    check_one("reshape [2,3,5] -> [5,-1]", PLX_OP_RESHAPE, &r1, 1, b);

    plx_reshape_attrs r2 = {sizeof r2, 4, {1, 15, 1, 1}};
    gc_input c[1] = {F32_IN(3, -1.0f, 1.0f, 3, 1, 5)};
    check_one("reshape [3,1,5] -> [1,15,1,1]", PLX_OP_RESHAPE, &r2, 1, c);

    plx_reshape_attrs r3 = {sizeof r3, 0, {0}};
    gc_input d[1] = {F32_IN(2, -1.0f, 1.0f, 1, 1)};
    check_one("reshape [1,1] -> scalar", PLX_OP_RESHAPE, &r3, 1, d);
}

static void test_cast_float_to_float(void **state)
{
    (void)state;
    plx_cast_attrs same = {sizeof same, PLX_F32};
    gc_input a[1] = {F32_IN(2, -1.0f, 1.0f, 4, 3)};
    check_one("cast f32 -> f32", PLX_OP_CAST, &same, 1, a);
}

/* y = cast(cast(x, *arg), f32): both directions of a float cast. */
static int32_t build_round_trip(plx_graph *g, const int32_t *in, void *arg)
{
    plx_cast_attrs there = {sizeof there, *(const plx_dtype *)arg}, back = {sizeof back, PLX_F32};
    int32_t w = add_op(g, PLX_OP_CAST, &there, in, 1);
    return w < 0 ? -1 : add_op(g, PLX_OP_CAST, &back, &w, 1);
}

/* y = x * cast(cast(x, i32), f32) + cast(cast(x, bool), f32): the integer
 * and bool detours carry no gradient, so dy/dx = trunc(x) (x kept away
 * from integers). */
static int32_t build_integer_detour(plx_graph *g, const int32_t *in, void *arg)
{
    (void)arg;
    plx_cast_attrs to_i32 = {sizeof to_i32, PLX_I32}, to_bool = {sizeof to_bool, PLX_BOOL};
    plx_cast_attrs to_f32 = {sizeof to_f32, PLX_F32};
    int32_t i = add_op(g, PLX_OP_CAST, &to_i32, in, 1);
    int32_t fi = i < 0 ? -1 : add_op(g, PLX_OP_CAST, &to_f32, &i, 1);
    int32_t b = add_op(g, PLX_OP_CAST, &to_bool, in, 1);
    int32_t fb = b < 0 ? -1 : add_op(g, PLX_OP_CAST, &to_f32, &b, 1);
    if (fi < 0 || fb < 0)
        return -1;
    int32_t mul_in[2] = {in[0], fi};
    int32_t m = add_op(g, PLX_OP_MUL, NULL, mul_in, 2);
    int32_t add_in[2] = {m, fb};
    return m < 0 ? -1 : add_op(g, PLX_OP_ADD, NULL, add_in, 2);
}

static void test_cast_through_other_dtypes(void **state)
{
    (void)state;
    gc_input a[1] = {F32_IN(2, -1.0f, 1.0f, 3, 5)};
    plx_dtype f64 = F64, f16 = PLX_F16, bf16 = PLX_BF16;
    gc_check("cast f32 -> f64 -> f32", 1, a, build_round_trip, &f64, EPS, TOL, POINTS);
    /* Narrow types round x (and dy on the way back): wider steps average
     * the rounding out of the differences. */
    gc_check("cast f32 -> f16 -> f32", 1, a, build_round_trip, &f16, 0.05f, 1e-2f, POINTS);
    gc_check("cast f32 -> bf16 -> f32", 1, a, build_round_trip, &bf16, 0.25f, 2e-2f, POINTS);
    gc_input b[1] = {F32_IN(2, 1.1f, 2.9f, 3, 5)};
    /* in [1.1, 2.9], trunc is 1 or 2 depending on the element */
    gc_check("x * f32(i32(x)) + f32(bool(x))", 1, b, build_integer_detour, NULL, EPS, TOL, POINTS);
    gc_input c[1] = {F32_IN(1, -2.9f, -1.1f, 7)};
    gc_check("integer detour on negatives", 1, c, build_integer_detour, NULL, EPS, TOL, POINTS);
}

/* ---- permute ------------------------------------------------------------- */

static void test_permute(void **state)
{
    (void)state;
    plx_permute_attrs p1 = {sizeof p1, 4, {2, 0, 3, 1}};
    gc_input a[1] = {F32_IN(4, -1.0f, 1.0f, 2, 3, 5, 1)};
    check_one("permute {2,0,3,1}", PLX_OP_PERMUTE, &p1, 1, a);
    plx_permute_attrs p2 = {sizeof p2, 3, {-1, 0, -2}};
    gc_input b[1] = {F32_IN(3, -1.0f, 1.0f, 3, 4, 5)};
    check_one("permute with negative entries {-1,0,-2}", PLX_OP_PERMUTE, &p2, 1, b);

    uint64_t rng = 7;
    for (int trial = 0; trial < 12; trial++) {
        int32_t ndim = (int32_t)tu_rand_int(&rng, 1, 5);
        gc_input in = random_input(&rng, ndim, 1, 5);
        plx_permute_attrs p = {sizeof p, ndim, {0}};
        for (int32_t i = 0; i < ndim; i++)
            p.perm[i] = i;
        for (int32_t i = ndim - 1; i > 0; i--) { /* Fisher-Yates */
            int32_t j = (int32_t)tu_rand_int(&rng, 0, i), t = p.perm[i];
            p.perm[i] = p.perm[j];
            p.perm[j] = t;
        }
        for (int32_t i = 0; i < ndim; i++)
            if (tu_rand_int(&rng, 0, 1))
                p.perm[i] -= ndim;
        check_one("permute (random)", PLX_OP_PERMUTE, &p, 1, &in);
    }
}

/* ---- concat -------------------------------------------------------------- */

static void test_concat(void **state)
{
    (void)state;
    plx_concat_attrs mid = {sizeof mid, 1};
    gc_input a[3] = {F32_IN(3, -1.0f, 1.0f, 2, 3, 4), F32_IN(3, -1.0f, 1.0f, 2, 1, 4),
                     F32_IN(3, -1.0f, 1.0f, 2, 5, 4)};
    check_one("concat axis 1", PLX_OP_CONCAT, &mid, 3, a);
    /* Only some inputs want a gradient. */
    a[1].diff = false;
    check_one("concat axis 1, middle input without gradient", PLX_OP_CONCAT, &mid, 3, a);

    plx_concat_attrs last = {sizeof last, -1};
    gc_input b[2] = {F32_IN(2, -1.0f, 1.0f, 3, 2), F32_IN(2, -1.0f, 1.0f, 3, 7)};
    check_one("concat axis -1", PLX_OP_CONCAT, &last, 2, b);

    plx_concat_attrs first = {sizeof first, 0};
    gc_input c[1] = {F32_IN(2, -1.0f, 1.0f, 3, 2)};
    check_one("concat of one input", PLX_OP_CONCAT, &first, 1, c);

    /* An empty input between two others. */
    gc_input d[3] = {F32_IN(2, -1.0f, 1.0f, 3, 2), F32_IN(2, -1.0f, 1.0f, 0, 2), F32_IN(2, -1.0f, 1.0f, 5, 2)};
    d[1].diff = false;
    check_one("concat with an empty input", PLX_OP_CONCAT, &first, 3, d);

    uint64_t rng = 11;
    for (int trial = 0; trial < 8; trial++) {
        int32_t ndim = (int32_t)tu_rand_int(&rng, 1, 4), n = (int32_t)tu_rand_int(&rng, 2, 4);
        int32_t axis = (int32_t)tu_rand_int(&rng, -ndim, ndim - 1);
        gc_input in[4];
        in[0] = random_input(&rng, ndim, 1, 4);
        for (int32_t k = 1; k < n; k++) {
            in[k] = in[0];
            in[k].dims[axis < 0 ? axis + ndim : axis] = tu_rand_int(&rng, 1, 5);
        }
        plx_concat_attrs c2 = {sizeof c2, axis};
        check_one("concat (random)", PLX_OP_CONCAT, &c2, n, in);
    }
}

/* ---- slice --------------------------------------------------------------- */

/* concat(flatten(slice(x)), flatten(x)): takes empty slices too. */
static int32_t build_slice_flat(plx_graph *g, const int32_t *in, void *arg)
{
    int32_t s = add_op(g, PLX_OP_SLICE, arg, in, 1);
    int32_t parts[2] = {flatten(g, s), flatten(g, in[0])};
    if (parts[0] < 0 || parts[1] < 0)
        return -1;
    plx_concat_attrs c = {sizeof c, 0};
    return add_op(g, PLX_OP_CONCAT, &c, parts, 2);
}

static void test_slice(void **state)
{
    (void)state;
    plx_slice_attrs s1 = {sizeof s1, 1, {1}, {1}, {6}, {1}};
    gc_input a[1] = {F32_IN(2, -1.0f, 1.0f, 5, 7)};
    check_one("slice [:, 1:6]", PLX_OP_SLICE, &s1, 1, a);

    plx_slice_attrs s2 = {sizeof s2, 2, {0, 1}, {-4, 0}, {100, -1}, {2, 3}};
    gc_input b[1] = {F32_IN(3, -1.0f, 1.0f, 5, 7, 3)};
    check_one("slice [-4:100:2, 0:-1:3, :]", PLX_OP_SLICE, &s2, 1, b);

    plx_slice_attrs s3 = {sizeof s3, 1, {0}, {2}, {7}, {10}};
    gc_input c[1] = {F32_IN(1, -1.0f, 1.0f, 7)};
    check_one("slice [2:7:10] (one element)", PLX_OP_SLICE, &s3, 1, c);

    plx_slice_attrs s4 = {sizeof s4, 2, {-1, -3}, {-100, 1}, {4, 3}, {2, 0}};
    gc_input d[1] = {F32_IN(3, -1.0f, 1.0f, 3, 2, 9)};
    check_one("slice negative axes, clamped start, step 0 read as 1", PLX_OP_SLICE, &s4, 1, d);

    plx_slice_attrs s5 = {sizeof s5, 0};
    check_one("slice with no axes", PLX_OP_SLICE, &s5, 1, d);

    /* Steps on the last and first axes of a 3-d tensor, odd sizes. */
    plx_slice_attrs s6 = {sizeof s6, 3, {2, 0, 1}, {1, 0, 2}, {9, 5, 3}, {3, 2, 1}};
    gc_input e[1] = {F32_IN(3, -1.0f, 1.0f, 5, 3, 9)};
    check_one("slice with steps 3 and 2", PLX_OP_SLICE, &s6, 1, e);

    plx_slice_attrs empty = {sizeof empty, 1, {1}, {4}, {2}, {1}};
    gc_input f[1] = {F32_IN(2, -1.0f, 1.0f, 3, 5)};
    gc_check("empty slice [4:2]", 1, f, build_slice_flat, &empty, EPS, TOL, POINTS);

    uint64_t rng = 23;
    for (int trial = 0; trial < 24; trial++) {
        int32_t ndim = (int32_t)tu_rand_int(&rng, 1, 4);
        gc_input in = random_input(&rng, ndim, 1, 8);
        plx_slice_attrs s = {sizeof s, 0};
        for (int32_t axis = 0; axis < ndim; axis++) {
            if (tu_rand_int(&rng, 0, 3) == 0)
                continue;
            int32_t k = s.n_axes++;
            int64_t dim = in.dims[axis];
            s.axes[k] = tu_rand_int(&rng, 0, 1) ? axis : axis - ndim;
            s.starts[k] = tu_rand_int(&rng, -dim - 2, dim + 1);
            s.ends[k] = tu_rand_int(&rng, -dim - 1, dim + 2);
            s.steps[k] = tu_rand_int(&rng, 0, 4);
        }
        /* Listed axes in any order. */
        if (s.n_axes > 1) {
            int32_t j = s.n_axes - 1;
            int32_t ta = s.axes[0];
            int64_t t0 = s.starts[0], t1 = s.ends[0], t2 = s.steps[0];
            s.axes[0] = s.axes[j], s.starts[0] = s.starts[j], s.ends[0] = s.ends[j], s.steps[0] = s.steps[j];
            s.axes[j] = ta, s.starts[j] = t0, s.ends[j] = t1, s.steps[j] = t2;
        }
        gc_check("slice (random)", 1, &in, build_slice_flat, &s, EPS, TOL, POINTS);
    }
}

/* ---- pad ----------------------------------------------------------------- */

static void test_pad_fixed(void **state)
{
    (void)state;
    plx_pad_attrs constant = {sizeof constant, 2, {1, 0}, {2, 3}, PLX_PAD_CONSTANT, 0.5f};
    gc_input a[1] = {F32_IN(2, -1.0f, 1.0f, 3, 4)};
    check_one("pad constant 0.5", PLX_OP_PAD, &constant, 1, a);

    plx_pad_attrs reflect = {sizeof reflect, 2, {2, 1}, {3, 4}, PLX_PAD_REFLECT, 0.0f};
    gc_input b[1] = {F32_IN(2, -1.0f, 1.0f, 4, 5)};
    check_one("pad reflect", PLX_OP_PAD, &reflect, 1, b);

    plx_pad_attrs replicate = {sizeof replicate, 2, {3, 0}, {1, 5}, PLX_PAD_REPLICATE, 0.0f};
    gc_input c[1] = {F32_IN(2, -1.0f, 1.0f, 2, 3)};
    check_one("pad replicate wider than the dim", PLX_OP_PAD, &replicate, 1, c);

    /* A size-1 dim: replicate copies its only entry both ways; reflect
     * leaves it unpadded around padded neighbours. */
    plx_pad_attrs rep1 = {sizeof rep1, 3, {2, 0, 1}, {1, 0, 2}, PLX_PAD_REPLICATE, 0.0f};
    gc_input d[1] = {F32_IN(3, -1.0f, 1.0f, 1, 3, 2)};
    check_one("pad replicate around a size-1 dim", PLX_OP_PAD, &rep1, 1, d);
    plx_pad_attrs ref1 = {sizeof ref1, 3, {0, 2, 1}, {0, 1, 2}, PLX_PAD_REFLECT, 0.0f};
    gc_input e[1] = {F32_IN(3, -1.0f, 1.0f, 1, 3, 4)};
    check_one("pad reflect next to a size-1 dim", PLX_OP_PAD, &ref1, 1, e);

    /* Long reflections: the reversal splits odd lengths unevenly. */
    plx_pad_attrs longref = {sizeof longref, 2, {0, 11}, {1, 12}, PLX_PAD_REFLECT, 0.0f};
    gc_input f[1] = {F32_IN(2, -1.0f, 1.0f, 2, 13)};
    check_one("pad reflect by 11 and 12 on 13", PLX_OP_PAD, &longref, 1, f);

    /* NCHW image padding, as conv layers use it. */
    plx_pad_attrs img = {sizeof img, 4, {0, 0, 1, 2}, {0, 0, 1, 2}, PLX_PAD_REFLECT, 0.0f};
    gc_input g[1] = {F32_IN(4, -1.0f, 1.0f, 2, 3, 4, 5)};
    check_one("pad reflect NCHW", PLX_OP_PAD, &img, 1, g);
    img.mode = PLX_PAD_REPLICATE;
    check_one("pad replicate NCHW", PLX_OP_PAD, &img, 1, g);
    img.mode = PLX_PAD_CONSTANT;
    check_one("pad zeros NCHW", PLX_OP_PAD, &img, 1, g);
}

static void test_pad_random(void **state)
{
    (void)state;
    uint64_t rng = 31;
    for (int trial = 0; trial < 30; trial++) {
        int32_t mode = trial % 3;
        int32_t ndim = (int32_t)tu_rand_int(&rng, 1, 4);
        gc_input in = random_input(&rng, ndim, 1, 6);
        plx_pad_attrs p = {sizeof p, ndim, {0}, {0}, mode, -0.25f};
        for (int32_t d = 0; d < ndim; d++) {
            int64_t most = mode == PLX_PAD_REFLECT ? in.dims[d] - 1 : 4;
            p.before[d] = tu_rand_int(&rng, 0, most);
            p.after[d] = tu_rand_int(&rng, 0, most);
        }
        char what[64];
        snprintf(what, sizeof what, "pad (random, mode %d)", (int)mode);
        check_one(what, PLX_OP_PAD, &p, 1, &in);
    }
}

/* ---- a chain of layout ops, with a value used twice ---------------------- */

/* x [2,3,4] -> permute {2,0,1} -> reshape [4,6] -> slice [::2, 1:] -> pad
 * reflect, concatenated with copy(x) reshaped: x reaches the output on two
 * paths whose gradients add. */
static int32_t build_chain(plx_graph *g, const int32_t *in, void *arg)
{
    (void)arg;
    plx_permute_attrs p = {sizeof p, 3, {2, 0, 1}};
    plx_reshape_attrs r = {sizeof r, 2, {4, 6}};
    plx_slice_attrs s = {sizeof s, 2, {0, 1}, {0, 1}, {4, 6}, {2, 1}};
    plx_pad_attrs pad = {sizeof pad, 2, {1, 2}, {0, 3}, PLX_PAD_REFLECT, 0.0f};
    int32_t v = add_op(g, PLX_OP_PERMUTE, &p, in, 1);
    v = v < 0 ? -1 : add_op(g, PLX_OP_RESHAPE, &r, &v, 1);
    v = v < 0 ? -1 : add_op(g, PLX_OP_SLICE, &s, &v, 1);
    v = v < 0 ? -1 : add_op(g, PLX_OP_PAD, &pad, &v, 1);
    int32_t c = add_op(g, PLX_OP_COPY, NULL, in, 1);
    int32_t parts[2] = {flatten(g, v), flatten(g, c)};
    if (parts[0] < 0 || parts[1] < 0)
        return -1;
    plx_concat_attrs cat = {sizeof cat, 0};
    return add_op(g, PLX_OP_CONCAT, &cat, parts, 2);
}

static void test_layout_chain(void **state)
{
    (void)state;
    gc_input a[1] = {F32_IN(3, -1.0f, 1.0f, 2, 3, 4)};
    gc_check("permute-reshape-slice-pad + copy", 1, a, build_chain, NULL, EPS, TOL, POINTS);
}

/* ---- dropout ------------------------------------------------------------- */

static void test_dropout(void **state)
{
    (void)state;
    plx_dropout_attrs d1 = {sizeof d1, 0.3f, 42, 5};
    gc_input a[1] = {F32_IN(2, -1.0f, 1.0f, 4, 7)};
    check_one("dropout p=0.3", PLX_OP_DROPOUT, &d1, 1, a);
    plx_dropout_attrs d2 = {sizeof d2, 0.75f, 7, 1000};
    gc_input b[1] = {F32_IN(3, -1.0f, 1.0f, 3, 5, 3)};
    check_one("dropout p=0.75 with an offset", PLX_OP_DROPOUT, &d2, 1, b);
    plx_dropout_attrs d3 = {sizeof d3, 0.0f, 1, 0};
    check_one("dropout p=0", PLX_OP_DROPOUT, &d3, 1, b);
    /* Defaults (p = 0.5, seed 0). */
    check_one("dropout with default attrs", PLX_OP_DROPOUT, NULL, 1, a);
}

/* ---- embedding ----------------------------------------------------------- */

static void test_embedding(void **state)
{
    (void)state;
    /* Repeated indices add up in the weight's rows. */
    gc_input a[2] = {F32_IN(2, -1.0f, 1.0f, 7, 4), {PLX_I64, 2, {3, 5}, 0.0f, 6.0f, false}};
    check_one("embedding i64 [3,5]", PLX_OP_EMBEDDING, NULL, 2, a);
    plx_embedding_attrs explicit_v = {sizeof explicit_v, 7, -1};
    check_one("embedding with num_embeddings set", PLX_OP_EMBEDDING, &explicit_v, 2, a);

    gc_input b[2] = {F32_IN(2, -1.0f, 1.0f, 5, 3), {PLX_I32, 3, {2, 3, 2}, 0.0f, 4.0f, false}};
    check_one("embedding i32 [2,3,2]", PLX_OP_EMBEDDING, NULL, 2, b);

    gc_input c[2] = {F32_IN(2, -1.0f, 1.0f, 3, 6), {PLX_I64, 0, {0}, 0.0f, 2.0f, false}};
    check_one("embedding of a scalar index", PLX_OP_EMBEDDING, NULL, 2, c);

    uint64_t rng = 41;
    for (int trial = 0; trial < 6; trial++) {
        int32_t nd = (int32_t)tu_rand_int(&rng, 1, 3);
        gc_input in[2] = {random_input(&rng, 2, 1, 9), random_input(&rng, nd, 1, 5)};
        in[1].dtype = trial % 2 ? PLX_I32 : PLX_I64;
        in[1].lo = 0.0f;
        in[1].hi = (float)(in[0].dims[0] - 1);
        in[1].diff = false;
        check_one("embedding (random)", PLX_OP_EMBEDDING, NULL, 2, in);
    }
}

/* padding_idx: its row is looked up but gets no gradient, so finite
 * differences do not apply to it; the weight gradient is checked against a
 * scatter-add computed here. */
static void test_embedding_padding_idx(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_graph *g = NULL;
    assert_int_equal(graph_new(ctx, &g), PLX_OK);
    const int64_t wdims[2] = {5, 3}, idims[2] = {2, 4};
    const int64_t idx[8] = {2, 0, 2, 4, 1, 2, 4, 4};
    int32_t w, ix, dy;
    assert_int_equal(graph_add_named(g, VALUE_PARAM, "emb.weight", PLX_F32, 2, wdims, NULL, &w), PLX_OK);
    assert_int_equal(graph_add_named(g, VALUE_INPUT, "ids", PLX_I64, 2, idims, NULL, &ix), PLX_OK);
    plx_embedding_attrs a = {sizeof a, 0, 2}; /* num_embeddings left 0 as layers do */
    int32_t in[2] = {w, ix}, y, prod, loss, grad;
    assert_int_equal(graph_add_op(g, PLX_OP_EMBEDDING, &a, in, 2, &y, 1), PLX_OK);
    const int64_t ydims[3] = {2, 4, 3};
    assert_int_equal(graph_add_named(g, VALUE_INPUT, "dy", PLX_F32, 3, ydims, NULL, &dy), PLX_OK);
    int32_t mul_in[2] = {y, dy};
    assert_int_equal(graph_add_op(g, PLX_OP_MUL, NULL, mul_in, 2, &prod, 1), PLX_OK);
    assert_int_equal(graph_add_op(g, PLX_OP_SUM, NULL, &prod, 1, &loss, 1), PLX_OK);
    assert_int_equal(autodiff(g, loss, &w, 1, &grad), PLX_OK);
    exec_plan *plan = NULL;
    assert_int_equal(plan_build(g, &grad, 1, &plan), PLX_OK);
    uint64_t rng = 5;
    plx_tensor *wt = tu_uniform(ctx, &rng, 2, wdims, -1.0f, 1.0f);
    plx_tensor *it = tu_from_i64(ctx, 2, idims, idx);
    plx_tensor *dyt = tu_uniform(ctx, &rng, 3, ydims, -1.0f, 1.0f);
    assert_int_equal(plan_bind(plan, w, wt), PLX_OK);
    assert_int_equal(plan_bind(plan, ix, it), PLX_OK);
    assert_int_equal(plan_bind(plan, dy, dyt), PLX_OK);
    assert_int_equal(plan_run(plan), PLX_OK);
    float want[15] = {0};
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 3 && idx[i] != 2; j++)
            want[idx[i] * 3 + j] += tu_f32(dyt)[i * 3 + j];
    tu_assert_close(plan_value_data(plan, grad), want, 15, 1e-6f, 1e-6f, "embedding dweight with padding_idx 2");
    plan_free(plan);
    plx_tensor_free(wt);
    plx_tensor_free(it);
    plx_tensor_free(dyt);
    graph_free(g);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_and_reshape),
        cmocka_unit_test(test_cast_float_to_float),
        cmocka_unit_test(test_cast_through_other_dtypes),
        cmocka_unit_test(test_permute),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_pad_fixed),
        cmocka_unit_test(test_pad_random),
        cmocka_unit_test(test_layout_chain),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_embedding_padding_idx),
    };
    return cmocka_run_group_tests_name("runtime/grad_layout", tests, NULL, NULL);
}

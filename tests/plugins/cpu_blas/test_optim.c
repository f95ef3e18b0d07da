/* test_optim.c — core.sgd_update, adam_update, rmsprop_update,
 * adagrad_update and clip_grad_norm on cpu_blas: three successive steps
 * against PyTorch 1.13 fixtures (tests/fixtures/optim/gen.py), one step
 * against naive double references on random odd shapes (including sizes
 * that split across threads), and bad input. */
#include "../../test_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_update_failure(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *in,
                                  size_t n_in, size_t n_out, plx_status want, const char *const *needles,
                                  size_t n_needles)
{
    plx_tensor *out[1] = {NULL};
    plx_status st = plx_op_run(ctx, op, attrs, in, n_in, n_out ? out : NULL, n_out);
    plx_tensor_free(out[0]);
    const char *msg = plx_last_error(ctx);
    if (st != want)
        fail_msg("%s: got status %s, want %s (%s)", op, plx_status_name(st), plx_status_name(want), msg);
    for (size_t i = 0; i < n_needles; i++)
        if (strstr(msg, needles[i]) == NULL)
            fail_msg("%s: message \"%s\" does not mention \"%s\"", op, msg, needles[i]);
}

/* ---- PyTorch fixtures ------------------------------------------------------ */

/* Hyperparameters as in tests/fixtures/optim/gen.py. */
typedef struct optim_case {
    const char *name;
    const char *op;
    int n_slots;
    plx_sgd_attrs sgd;
    plx_adam_attrs adam;
    plx_rmsprop_attrs rmsprop;
    plx_adagrad_attrs adagrad;
} optim_case;

#define SGD(lr, momentum, dampening, wd, nesterov) {sizeof(plx_sgd_attrs), lr, momentum, dampening, wd, nesterov, 1}
#define ADAM(lr, b1, b2, eps, wd, decoupled, amsgrad) \
    {sizeof(plx_adam_attrs), lr, b1, b2, eps, wd, decoupled, amsgrad, 1}
#define RMSPROP(lr, alpha, eps, wd, momentum, centered) \
    {sizeof(plx_rmsprop_attrs), lr, alpha, eps, wd, momentum, centered}
#define ADAGRAD(lr, lr_decay, wd, eps) {sizeof(plx_adagrad_attrs), lr, lr_decay, wd, eps, 1}

static const optim_case optim_cases[] = {
    {"sgd_plain", "core.sgd_update", 0, .sgd = SGD(0.1f, 0.0f, 0.0f, 0.1f, 0)},
    {"sgd_momentum", "core.sgd_update", 1, .sgd = SGD(0.05f, 0.9f, 0.3f, 0.01f, 0)},
    {"sgd_nesterov", "core.sgd_update", 1, .sgd = SGD(0.05f, 0.8f, 0.0f, 0.05f, 1)},
    {"adam", "core.adam_update", 2, .adam = ADAM(0.01f, 0.9f, 0.999f, 1e-8f, 0.02f, 0, 0)},
    {"adamw", "core.adam_update", 2, .adam = ADAM(0.01f, 0.8f, 0.99f, 1e-6f, 0.1f, 1, 0)},
    {"adam_amsgrad", "core.adam_update", 3, .adam = ADAM(0.02f, 0.9f, 0.999f, 1e-8f, 0.0f, 0, 1)},
    {"adamw_amsgrad", "core.adam_update", 3, .adam = ADAM(0.02f, 0.9f, 0.99f, 1e-8f, 0.05f, 1, 1)},
    {"rmsprop_plain", "core.rmsprop_update", 1, .rmsprop = RMSPROP(0.01f, 0.99f, 1e-8f, 0.0f, 0.0f, 0)},
    {"rmsprop_momentum", "core.rmsprop_update", 2, .rmsprop = RMSPROP(0.01f, 0.9f, 1e-8f, 0.01f, 0.9f, 0)},
    {"rmsprop_centered", "core.rmsprop_update", 3, .rmsprop = RMSPROP(0.01f, 0.95f, 1e-6f, 0.0f, 0.5f, 1)},
    {"rmsprop_centered_no_momentum", "core.rmsprop_update", 2,
     .rmsprop = RMSPROP(0.02f, 0.9f, 1e-8f, 0.0f, 0.0f, 1)},
    {"adagrad", "core.adagrad_update", 1, .adagrad = ADAGRAD(0.1f, 0.05f, 0.01f, 1e-10f)},
};

/* The attrs for 1-based step `step` of a case. */
static const void *case_attrs(const optim_case *c, int64_t step, optim_case *scratch)
{
    *scratch = *c;
    if (strcmp(c->op, "core.sgd_update") == 0) {
        scratch->sgd.step = step;
        return &scratch->sgd;
    }
    if (strcmp(c->op, "core.adam_update") == 0) {
        scratch->adam.step = step;
        return &scratch->adam;
    }
    if (strcmp(c->op, "core.adagrad_update") == 0) {
        scratch->adagrad.step = step;
        return &scratch->adagrad;
    }
    return &scratch->rmsprop;
}

static void test_optimizers_match_pytorch(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    const int64_t shape[2] = {3, 5};
    const int64_t n = 15;
    for (size_t k = 0; k < sizeof optim_cases / sizeof optim_cases[0]; k++) {
        const optim_case *c = &optim_cases[k];
        char file[128];
        snprintf(file, sizeof file, "optim/%s.f32", c->name);
        size_t count = 0;
        float *data = tu_fixture_f32(file, &count);
        int slots = c->n_slots;
        assert_int_equal(count, (size_t)(n * (1 + slots + 3 + 1 + slots)));
        const float *param_before = data, *state_before = data + n, *grads = state_before + slots * n;
        const float *param_after = grads + 3 * n, *state_after = param_after + n;

        plx_tensor *in[5];
        in[0] = tu_from_f32(ctx, 2, shape, param_before);
        in[1] = tu_tensor(ctx, PLX_F32, 2, shape);
        for (int s = 0; s < slots; s++)
            in[2 + s] = tu_from_f32(ctx, 2, shape, state_before + s * n);
        for (int64_t step = 1; step <= 3; step++) {
            memcpy(tu_f32(in[1]), grads + (step - 1) * n, sizeof(float) * (size_t)n);
            optim_case scratch;
            tu_run(ctx, c->op, case_attrs(c, step, &scratch), in, (size_t)(2 + slots), NULL, 0);
        }
        char what[160];
        snprintf(what, sizeof what, "%s: param after 3 steps", c->name);
        tu_assert_close(tu_f32(in[0]), param_after, n, 2e-6f, 2e-6f, what);
        for (int s = 0; s < slots; s++) {
            snprintf(what, sizeof what, "%s: state slot %d after 3 steps", c->name, s);
            tu_assert_close(tu_f32(in[2 + s]), state_after + s * n, n, 1e-6f, 2e-6f, what);
        }
        /* The gradient is read, never written. */
        assert_memory_equal(tu_f32(in[1]), grads + 2 * n, sizeof(float) * (size_t)n);
        for (int s = 0; s < 2 + slots; s++)
            plx_tensor_free(in[s]);
        free(data);
    }
    plx_context_close(ctx);
}

static void test_clip_grad_norm_matches_pytorch(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    static const struct {
        const char *name;
        float max_norm, norm_type;
    } cases[] = {{"clip_norm2", 1.0f, 2.0f},
                 {"clip_norm2_loose", 100.0f, 2.0f},
                 {"clip_inf", 0.5f, INFINITY},
                 {"clip_norm1", 2.0f, 1.0f}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char file[128];
        snprintf(file, sizeof file, "optim/%s.f32", cases[k].name);
        size_t count = 0;
        float *data = tu_fixture_f32(file, &count);
        assert_int_equal(count, 15 + 7 + 1 + 15 + 7);
        plx_tensor *g[2] = {tu_from_f32(ctx, 2, (int64_t[]){3, 5}, data),
                            tu_from_f32(ctx, 1, (int64_t[]){7}, data + 15)};
        plx_clip_grad_norm_attrs attrs = {sizeof attrs, cases[k].max_norm, cases[k].norm_type};
        plx_tensor *total = NULL;
        tu_run(ctx, "core.clip_grad_norm", &attrs, g, 2, &total, 1);
        assert_int_equal(plx_tensor_desc_get(total)->ndim, 0);
        char what[160];
        snprintf(what, sizeof what, "%s: total norm", cases[k].name);
        tu_assert_close(tu_f32(total), data + 22, 1, 1e-6f, 1e-6f, what);
        snprintf(what, sizeof what, "%s: clipped g1", cases[k].name);
        tu_assert_close(tu_f32(g[0]), data + 23, 15, 1e-7f, 1e-6f, what);
        snprintf(what, sizeof what, "%s: clipped g2", cases[k].name);
        tu_assert_close(tu_f32(g[1]), data + 38, 7, 1e-7f, 1e-6f, what);
        plx_tensor_free(total);
        plx_tensor_free(g[1]);
        plx_tensor_free(g[0]);
        free(data);
    }
    plx_context_close(ctx);
}

/* ---- Naive double references on random shapes ------------------------------- */

typedef struct update_data {
    int64_t n;
    int slots;
    float *param, *grad, *state[3];
} update_data;

static void reference_sgd(const plx_sgd_attrs *a, update_data *u)
{
    for (int64_t i = 0; i < u->n; i++) {
        double p = u->param[i], d = (double)u->grad[i] + (double)a->weight_decay * p;
        if (a->momentum != 0.0f) {
            double b = a->step == 1 ? d : a->momentum * (double)u->state[0][i] + (1.0 - a->dampening) * d;
            u->state[0][i] = (float)b;
            d = a->nesterov ? d + a->momentum * b : b;
        }
        u->param[i] = (float)(p - a->lr * d);
    }
}

static void reference_adam(const plx_adam_attrs *a, update_data *u)
{
    double bc1 = 1.0 - pow(a->beta1, (double)a->step), bc2 = 1.0 - pow(a->beta2, (double)a->step);
    for (int64_t i = 0; i < u->n; i++) {
        double p = u->param[i], g = u->grad[i];
        if (a->decoupled_weight_decay)
            p *= 1.0 - (double)a->lr * a->weight_decay;
        else
            g += (double)a->weight_decay * p;
        double m = a->beta1 * (double)u->state[0][i] + (1.0 - a->beta1) * g;
        double v = a->beta2 * (double)u->state[1][i] + (1.0 - a->beta2) * g * g;
        u->state[0][i] = (float)m;
        u->state[1][i] = (float)v;
        double second = v;
        if (a->amsgrad) {
            second = fmax(u->state[2][i], v);
            u->state[2][i] = (float)second;
        }
        double denom = sqrt(second) / sqrt(bc2) + a->eps;
        u->param[i] = (float)(p - a->lr / bc1 * m / denom);
    }
}

static void reference_rmsprop(const plx_rmsprop_attrs *a, update_data *u)
{
    int grad_avg_slot = a->momentum != 0.0f ? 2 : 1;
    for (int64_t i = 0; i < u->n; i++) {
        double p = u->param[i], g = (double)u->grad[i] + (double)a->weight_decay * p;
        double sq = a->alpha * (double)u->state[0][i] + (1.0 - a->alpha) * g * g;
        u->state[0][i] = (float)sq;
        double avg;
        if (a->centered) {
            double mean = a->alpha * (double)u->state[grad_avg_slot][i] + (1.0 - a->alpha) * g;
            u->state[grad_avg_slot][i] = (float)mean;
            avg = sqrt(sq - mean * mean) + a->eps;
        } else {
            avg = sqrt(sq) + a->eps;
        }
        if (a->momentum != 0.0f) {
            double b = a->momentum * (double)u->state[1][i] + g / avg;
            u->state[1][i] = (float)b;
            u->param[i] = (float)(p - a->lr * b);
        } else {
            u->param[i] = (float)(p - a->lr * g / avg);
        }
    }
}

static void reference_adagrad(const plx_adagrad_attrs *a, update_data *u)
{
    double clr = a->lr / (1.0 + (double)(a->step - 1) * a->lr_decay);
    for (int64_t i = 0; i < u->n; i++) {
        double p = u->param[i], g = (double)u->grad[i] + (double)a->weight_decay * p;
        double s = (double)u->state[0][i] + g * g;
        u->state[0][i] = (float)s;
        u->param[i] = (float)(p - clr * g / (sqrt(s) + a->eps));
    }
}

/* Runs one step of `op` on random tensors of `shape` and compares with the
 * reference run on copies. States are positive where the math needs it. */
static void check_one_step(plx_context *ctx, uint64_t *rng, const char *op, const void *attrs, int slots,
                           int32_t ndim, const int64_t *shape, void (*reference)(const void *, update_data *))
{
    plx_tensor *in[5];
    in[0] = tu_uniform(ctx, rng, ndim, shape, -2.0f, 2.0f);
    in[1] = tu_uniform(ctx, rng, ndim, shape, -1.0f, 1.0f);
    for (int s = 0; s < slots; s++)
        in[2 + s] = tu_uniform(ctx, rng, ndim, shape, 0.05f, 0.5f);
    int64_t n = plx_tensor_numel(in[0]);
    update_data u = {n, slots, NULL, NULL, {NULL, NULL, NULL}};
    u.param = malloc(sizeof(float) * (size_t)n);
    u.grad = malloc(sizeof(float) * (size_t)n);
    memcpy(u.param, tu_f32(in[0]), sizeof(float) * (size_t)n);
    memcpy(u.grad, tu_f32(in[1]), sizeof(float) * (size_t)n);
    for (int s = 0; s < slots; s++) {
        u.state[s] = malloc(sizeof(float) * (size_t)n);
        memcpy(u.state[s], tu_f32(in[2 + s]), sizeof(float) * (size_t)n);
    }
    /* A centered RMSprop needs square_avg >= grad_avg^2. */
    if (strcmp(op, "core.rmsprop_update") == 0 && ((const plx_rmsprop_attrs *)attrs)->centered)
        for (int64_t i = 0; i < n; i++) {
            u.state[slots - 1][i] *= 0.1f;
            tu_f32(in[2 + slots - 1])[i] = u.state[slots - 1][i];
        }
    reference(attrs, &u);
    tu_run(ctx, op, attrs, in, (size_t)(2 + slots), NULL, 0);
    char what[128];
    snprintf(what, sizeof what, "%s: param (%lld elements)", op, (long long)n);
    tu_assert_close(tu_f32(in[0]), u.param, n, 2e-6f, 2e-5f, what);
    for (int s = 0; s < slots; s++) {
        snprintf(what, sizeof what, "%s: state slot %d (%lld elements)", op, s, (long long)n);
        tu_assert_close(tu_f32(in[2 + s]), u.state[s], n, 2e-6f, 2e-5f, what);
    }
    for (int s = 0; s < slots; s++)
        free(u.state[s]);
    free(u.grad);
    free(u.param);
    for (int s = 0; s < 2 + slots; s++)
        plx_tensor_free(in[s]);
}

static void sgd_ref(const void *a, update_data *u)
{
    reference_sgd(a, u);
}
static void adam_ref(const void *a, update_data *u)
{
    reference_adam(a, u);
}
static void rmsprop_ref(const void *a, update_data *u)
{
    reference_rmsprop(a, u);
}
static void adagrad_ref(const void *a, update_data *u)
{
    reference_adagrad(a, u);
}

static void test_updates_against_reference(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 5;
    const int64_t shapes[][3] = {{1, 1, 1}, {3, 7, 1}, {17, 5, 3}, {40001, 1, 1}};
    const int32_t ndims[] = {1, 2, 3, 1};
    for (int k = 0; k < 4; k++) {
        const int64_t *shape = shapes[k];
        int32_t nd = ndims[k];
        for (int64_t step = 1; step <= 3; step += 2) {
            plx_sgd_attrs sgd = {sizeof sgd, 0.1f, 0.9f, 0.2f, 0.01f, 0, step};
            check_one_step(ctx, &rng, "core.sgd_update", &sgd, 1, nd, shape, sgd_ref);
            plx_sgd_attrs nesterov = {sizeof nesterov, 0.1f, 0.7f, 0.0f, 0.0f, 1, step};
            check_one_step(ctx, &rng, "core.sgd_update", &nesterov, 1, nd, shape, sgd_ref);
            plx_sgd_attrs plain = {sizeof plain, 0.3f, 0.0f, 0.0f, 0.1f, 0, step};
            check_one_step(ctx, &rng, "core.sgd_update", &plain, 0, nd, shape, sgd_ref);
            plx_adam_attrs adam = {sizeof adam, 0.01f, 0.9f, 0.999f, 1e-8f, 0.01f, 0, 0, step};
            check_one_step(ctx, &rng, "core.adam_update", &adam, 2, nd, shape, adam_ref);
            plx_adam_attrs adamw = {sizeof adamw, 0.01f, 0.85f, 0.99f, 1e-6f, 0.1f, 1, 1, step};
            check_one_step(ctx, &rng, "core.adam_update", &adamw, 3, nd, shape, adam_ref);
            plx_adagrad_attrs adagrad = {sizeof adagrad, 0.05f, 0.1f, 0.02f, 1e-10f, step};
            check_one_step(ctx, &rng, "core.adagrad_update", &adagrad, 1, nd, shape, adagrad_ref);
        }
        plx_rmsprop_attrs plain = {sizeof plain, 0.01f, 0.99f, 1e-8f, 0.0f, 0.0f, 0};
        check_one_step(ctx, &rng, "core.rmsprop_update", &plain, 1, nd, shape, rmsprop_ref);
        plx_rmsprop_attrs full = {sizeof full, 0.01f, 0.9f, 1e-8f, 0.05f, 0.9f, 1};
        check_one_step(ctx, &rng, "core.rmsprop_update", &full, 3, nd, shape, rmsprop_ref);
        plx_rmsprop_attrs centered = {sizeof centered, 0.02f, 0.8f, 1e-8f, 0.0f, 0.0f, 1};
        check_one_step(ctx, &rng, "core.rmsprop_update", &centered, 2, nd, shape, rmsprop_ref);
    }
    plx_context_close(ctx);
}

/* Norms of several odd-shaped gradients, one big enough to split. */
static void test_clip_grad_norm_against_reference(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 6;
    const float norm_types[] = {2.0f, 1.0f, INFINITY};
    for (int k = 0; k < 3; k++) {
        const int64_t sizes[4] = {1, 17, 7 * 3, 100003};
        plx_tensor *g[4];
        float *before[4];
        double acc = 0.0;
        for (int t = 0; t < 4; t++) {
            g[t] = tu_uniform(ctx, &rng, 1, &sizes[t], -1.0f, 1.0f);
            before[t] = malloc(sizeof(float) * (size_t)sizes[t]);
            memcpy(before[t], tu_f32(g[t]), sizeof(float) * (size_t)sizes[t]);
            for (int64_t i = 0; i < sizes[t]; i++) {
                double v = fabs((double)before[t][i]);
                if (norm_types[k] == 2.0f)
                    acc += v * v;
                else if (norm_types[k] == 1.0f)
                    acc += v;
                else
                    acc = fmax(acc, v);
            }
        }
        double total = norm_types[k] == 2.0f ? sqrt(acc) : acc;
        float max_norm = (float)(total * 0.25);
        plx_clip_grad_norm_attrs attrs = {sizeof attrs, max_norm, norm_types[k]};
        plx_tensor *out = NULL;
        tu_run(ctx, "core.clip_grad_norm", &attrs, g, 4, &out, 1);
        float want_total = (float)total;
        tu_assert_close(tu_f32(out), &want_total, 1, 0.0f, 1e-5f, "total norm");
        double coef = fmin(1.0, (double)max_norm / (total + 1e-6));
        for (int t = 0; t < 4; t++) {
            for (int64_t i = 0; i < sizes[t]; i++)
                before[t][i] = (float)(before[t][i] * coef);
            tu_assert_close(tu_f32(g[t]), before[t], sizes[t], 1e-7f, 2e-5f, "clipped gradient");
            free(before[t]);
            plx_tensor_free(g[t]);
        }
        plx_tensor_free(out);
    }
    plx_context_close(ctx);
}

/* ---- Bad input -------------------------------------------------------------- */

static void test_optim_bad_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *p = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){3, 4});
    plx_tensor *g = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){3, 4});
    plx_tensor *wrong = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){4, 3});
    plx_tensor *ints = tu_tensor(ctx, PLX_I32, 2, (int64_t[]){3, 4});

    plx_sgd_attrs sgd = {sizeof sgd, 0.1f, 0.0f, 0.0f, 0.0f, 0, 1};
    expect_update_failure(ctx, "core.sgd_update", &sgd, (plx_tensor *[]){p, wrong}, 2, 0, PLX_SHAPE_MISMATCH,
                          (const char *const[]){"core.sgd_update", "grad", "f32[4,3]", "f32[3,4]"}, 4);
    plx_sgd_attrs with_momentum = {sizeof with_momentum, 0.1f, 0.9f, 0.0f, 0.0f, 0, 1};
    expect_update_failure(ctx, "core.sgd_update", &with_momentum, (plx_tensor *[]){p, g}, 2, 0, PLX_INVALID_ARGUMENT,
                          (const char *const[]){"momentum_buf", "need 3"}, 2);
    expect_update_failure(ctx, "core.sgd_update", &with_momentum, (plx_tensor *[]){p, g, wrong}, 3, 0,
                          PLX_SHAPE_MISMATCH, (const char *const[]){"momentum_buf (input 2) f32[4,3]"}, 1);
    plx_sgd_attrs bad_nesterov = {sizeof bad_nesterov, 0.1f, 0.9f, 0.5f, 0.0f, 1, 1};
    expect_update_failure(ctx, "core.sgd_update", &bad_nesterov, (plx_tensor *[]){p, g, g}, 3, 0,
                          PLX_INVALID_ARGUMENT, (const char *const[]){"nesterov", "dampening 0"}, 2);
    plx_sgd_attrs negative_lr = {sizeof negative_lr, -0.1f, 0.0f, 0.0f, 0.0f, 0, 1};
    expect_update_failure(ctx, "core.sgd_update", &negative_lr, (plx_tensor *[]){p, g}, 2, 0, PLX_INVALID_ARGUMENT,
                          (const char *const[]){"lr = -0.1"}, 1);
    plx_sgd_attrs step0 = {sizeof step0, 0.1f, 0.0f, 0.0f, 0.0f, 0, 0};
    expect_update_failure(ctx, "core.sgd_update", &step0, (plx_tensor *[]){p, g}, 2, 0, PLX_INVALID_ARGUMENT,
                          (const char *const[]){"step = 0"}, 1);
    expect_update_failure(ctx, "core.sgd_update", &sgd, (plx_tensor *[]){ints, ints}, 2, 0, PLX_DTYPE_MISMATCH,
                          (const char *const[]){"param", "i32[3,4]"}, 2);

    plx_adam_attrs amsgrad = {sizeof amsgrad, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0, 1, 1};
    expect_update_failure(ctx, "core.adam_update", &amsgrad, (plx_tensor *[]){p, g, g, g}, 4, 0,
                          PLX_INVALID_ARGUMENT, (const char *const[]){"core.adam_update", "max_exp_avg_sq"}, 2);
    plx_adam_attrs beta_one = {sizeof beta_one, 1e-3f, 1.0f, 0.999f, 1e-8f, 0.0f, 0, 0, 1};
    expect_update_failure(ctx, "core.adam_update", &beta_one, (plx_tensor *[]){p, g, g, g}, 4, 0,
                          PLX_INVALID_ARGUMENT, (const char *const[]){"betas (1, 0.999)"}, 1);
    expect_update_failure(ctx, "core.adam_update", NULL, (plx_tensor *[]){p, g, g, wrong}, 4, 0, PLX_SHAPE_MISMATCH,
                          (const char *const[]){"exp_avg_sq (input 3) f32[4,3]"}, 1);

    plx_rmsprop_attrs centered = {sizeof centered, 0.01f, 0.99f, 1e-8f, 0.0f, 0.9f, 1};
    expect_update_failure(ctx, "core.rmsprop_update", &centered, (plx_tensor *[]){p, g, g, g}, 4, 0,
                          PLX_INVALID_ARGUMENT, (const char *const[]){"core.rmsprop_update", "grad_avg"}, 2);
    plx_rmsprop_attrs plain = {sizeof plain, 0.01f, 0.99f, 1e-8f, 0.0f, 0.0f, 0};
    expect_update_failure(ctx, "core.rmsprop_update", &plain, (plx_tensor *[]){p, g, g, g}, 4, 0,
                          PLX_INVALID_ARGUMENT, (const char *const[]){"got 4 inputs", "need 3"}, 2);

    plx_adagrad_attrs adagrad = {sizeof adagrad, 0.01f, -1.0f, 0.0f, 1e-10f, 1};
    expect_update_failure(ctx, "core.adagrad_update", &adagrad, (plx_tensor *[]){p, g, g}, 3, 0,
                          PLX_INVALID_ARGUMENT, (const char *const[]){"core.adagrad_update", "lr_decay = -1"}, 2);

    plx_clip_grad_norm_attrs norm3 = {sizeof norm3, 1.0f, 3.0f};
    expect_update_failure(ctx, "core.clip_grad_norm", &norm3, (plx_tensor *[]){p, g}, 2, 1, PLX_INVALID_ARGUMENT,
                          (const char *const[]){"core.clip_grad_norm", "norm_type = 3"}, 2);
    expect_update_failure(ctx, "core.clip_grad_norm", NULL, (plx_tensor *[]){p, ints}, 2, 1, PLX_DTYPE_MISMATCH,
                          (const char *const[]){"i32[3,4]"}, 1);
    plx_clip_grad_norm_attrs negative = {sizeof negative, -1.0f, 2.0f};
    expect_update_failure(ctx, "core.clip_grad_norm", &negative, (plx_tensor *[]){p}, 1, 1, PLX_INVALID_ARGUMENT,
                          (const char *const[]){"max_norm = -1"}, 1);

    /* A parameter updated in place cannot be a strided view. */
    float mem[12] = {0};
    int64_t vshape[2] = {3, 4}, vstrides[2] = {1, 3};
    plx_tensor_desc d = {.data = mem, .device = {PLX_DL_CPU, 0}, .ndim = 2, .dtype = PLX_F32, .shape = vshape,
                         .strides = vstrides};
    plx_tensor *view = NULL;
    assert_int_equal(plx_tensor_wrap(ctx, &d, NULL, NULL, &view), PLX_OK);
    expect_update_failure(ctx, "core.sgd_update", &sgd, (plx_tensor *[]){view, g}, 2, 0, PLX_INVALID_ARGUMENT,
                          (const char *const[]){"compact"}, 1);
    plx_tensor_free(view);
    plx_tensor_free(ints);
    plx_tensor_free(wrong);
    plx_tensor_free(g);
    plx_tensor_free(p);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optimizers_match_pytorch),
        cmocka_unit_test(test_clip_grad_norm_matches_pytorch),
        cmocka_unit_test(test_updates_against_reference),
        cmocka_unit_test(test_clip_grad_norm_against_reference),
        cmocka_unit_test(test_optim_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

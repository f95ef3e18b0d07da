/* param_init.c — see param_init.h. */
#include <math.h>
#include <string.h>

#include "../abi/plexus_random.h"
#include "param_init.h"

void param_fans(const tensor_meta *m, double *fan_in, double *fan_out)
{
    if (m->ndim < 2) {
        double n = m->ndim == 1 ? (double)m->dims[0] : 1.0;
        *fan_in = *fan_out = n;
        return;
    }
    double receptive = 1.0;
    for (int32_t d = 2; d < m->ndim; d++)
        receptive *= (double)m->dims[d];
    *fan_in = (double)m->dims[1] * receptive;
    *fan_out = (double)m->dims[0] * receptive;
}

uint64_t param_stream_of(const char *name)
{
    return fnv1a(PLX_FNV1A_INIT, name, strlen(name));
}

plx_status param_init_fill(plx_context *ctx, plx_tensor *t, const plx_initializer *init, uint64_t seed,
                           uint64_t stream, const char *name)
{
    const plx_tensor_desc *d = plx_tensor_desc_get(t);
    if (!plx_dtype_equal(d->dtype, PLX_F32))
        return ctx_fail(ctx, PLX_DTYPE_MISMATCH, "initializing '%s': only f32 values can be initialized", name);
    float *p = plx_tensor_data(t);
    int64_t n = plx_tensor_numel(t);
    tensor_meta m;
    meta_from_desc(&m, d);
    double fan_in, fan_out;
    param_fans(&m, &fan_in, &fan_out);
    if (fan_in < 1.0)
        fan_in = 1.0;
    if (fan_out < 1.0)
        fan_out = 1.0;
    /* Mix the stream into the key so values draw independently. */
    uint64_t key = seed ^ (stream * 0x9E3779B97F4A7C15ull);
    double lo = 0.0, hi = 0.0, std = 0.0, mean = 0.0;
    bool uniform = false, normal = false;
    switch (init->kind) {
    case PLX_INIT_ZEROS:
        memset(p, 0, sizeof(float) * (size_t)n);
        return PLX_OK;
    case PLX_INIT_ONES:
    case PLX_INIT_CONSTANT: {
        float v = init->kind == PLX_INIT_ONES ? 1.0f : init->a;
        for (int64_t i = 0; i < n; i++)
            p[i] = v;
        return PLX_OK;
    }
    case PLX_INIT_XAVIER_UNIFORM: {
        double gain = init->gain > 0 ? init->gain : 1.0;
        hi = gain * sqrt(6.0 / (fan_in + fan_out));
        lo = -hi;
        uniform = true;
        break;
    }
    case PLX_INIT_XAVIER_NORMAL:
        std = (init->gain > 0 ? init->gain : 1.0) * sqrt(2.0 / (fan_in + fan_out));
        normal = true;
        break;
    case PLX_INIT_HE_UNIFORM:
        hi = (init->gain > 0 ? init->gain : sqrt(2.0)) * sqrt(3.0 / fan_in);
        lo = -hi;
        uniform = true;
        break;
    case PLX_INIT_HE_NORMAL:
        std = (init->gain > 0 ? init->gain : sqrt(2.0)) / sqrt(fan_in);
        normal = true;
        break;
    case PLX_INIT_UNIFORM:
        lo = init->a;
        hi = init->b;
        uniform = true;
        break;
    case PLX_INIT_NORMAL:
        mean = init->a;
        std = init->b;
        normal = true;
        break;
    default:
        return ctx_fail(ctx, PLX_INVALID_ARGUMENT, "initializing '%s': unknown initializer kind %d", name,
                        (int)init->kind);
    }
    if (uniform)
        for (int64_t i = 0; i < n; i++)
            p[i] = (float)(lo + (hi - lo) * (double)plx_philox_uniform(key, (uint64_t)i));
    else if (normal)
        for (int64_t i = 0; i < n; i++)
            p[i] = (float)(mean + std * (double)plx_philox_normal(key, (uint64_t)i));
    return PLX_OK;
}

/*
 * vec_math.h — internal to cpu_blas: small f32 loops written so that gcc -O2
 * vectorizes them, shared by the softmax, loss and norm kernels.
 *
 * At -O2 gcc 12 vectorizes only loops it needs neither alias checks nor
 * scalar peeling for (its "very cheap" cost model). So the loops here run in
 * blocks of 8 with a fixed inner trip count, use restrict pointers, and keep
 * their bodies branch-free; a scalar tail handles the last n % 8 items.
 * Reductions keep 8 float lanes over blocks of SUM_BLOCK items and add the
 * block results in double: close to double accuracy, at float speed.
 */
#ifndef PLX_CPU_VEC_MATH_H
#define PLX_CPU_VEC_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#define VEC_LANES 8
#define SUM_BLOCK 1024

static inline uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* e^x for x <= 0 (NaN stays NaN), within 2 ulp; below -87 the result is 0.
 * libm's expf is a call gcc cannot vectorize; this is branch-free (its
 * selects are done on the bits), so a loop over it vectorizes. Cephes'
 * expf range reduction and polynomial. Positive x up to 88 come out right
 * too but nothing here relies on it. */
static inline float exp_nonpositive(float x)
{
    const uint32_t xb = float_bits(x);
    const uint32_t is_nan = -(uint32_t)((xb & 0x7FFFFFFFu) > 0x7F800000u);
    const uint32_t underflow = -(uint32_t)(xb > 0xC2AE0000u) & ~is_nan; /* x < -87, -inf */
    const uint32_t keep = ~(is_nan | underflow);
    const float xc = bits_float((xb & keep) | (0xC2AE0000u & underflow));
    const float magic = 12582912.0f; /* 1.5 * 2^23: rounds to an integer held in the low mantissa bits */
    float k = xc * 1.44269504088896341f + magic;
    const uint32_t k_bits = float_bits(k);
    k -= magic;
    const float r = xc - k * 0.693359375f + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const float y = p * bits_float((k_bits - 0x4B400000u + 127u) << 23);
    return bits_float((float_bits(y) & keep) | (xb & is_nan));
}

/* log(1 + e) for e in [0, 1] (NaN stays NaN), within 2 ulp, branch-free:
 * Cephes' logf polynomial on u = 1 + e, plus the rounding of u corrected
 * to first order, (e - (u - 1)) / u, so tiny e come out as e. */
static inline float log1p_unit(float e)
{
    const float u = 1.0f + e;
    const uint32_t big = -(uint32_t)(float_bits(u) > 0x3FB504F3u); /* u > sqrt(2): log(u/2) + log(2) */
    const float f = bits_float((float_bits(u * 0.5f - 1.0f) & big) | (float_bits(u - 1.0f) & ~big));
    const float ex = bits_float(0x3F800000u & big); /* 1 or 0 */
    const float z = f * f;
    float y = 7.0376836292e-2f;
    y = y * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    y += -2.12194440e-4f * ex;
    y += -0.5f * z;
    const float log_u = f + y + 0.693359375f * ex;
    return log_u + (e - (u - 1.0f)) / u;
}

/* y = exp(x - shift) where x - shift <= 0. */
static inline void exp_shifted(const float *restrict x, float shift, float *restrict y, int64_t n)
{
    int64_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES)
        for (int k = 0; k < VEC_LANES; k++)
            y[i + k] = exp_nonpositive(x[i + k] - shift);
    for (; i < n; i++)
        y[i] = exp_nonpositive(x[i] - shift);
}

/* y[i] = exp(x[i] - shift[i]) */
static inline void exp_shifted_each(const float *restrict x, const float *restrict shift, float *restrict y,
                                    int64_t n)
{
    int64_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES)
        for (int k = 0; k < VEC_LANES; k++)
            y[i + k] = exp_nonpositive(x[i + k] - shift[i + k]);
    for (; i < n; i++)
        y[i] = exp_nonpositive(x[i] - shift[i]);
}

/* sum of exp(x - shift), x - shift <= 0, without storing the exps. */
static inline double sum_exp_shifted(const float *x, float shift, int64_t n)
{
    double total = 0.0;
    for (int64_t start = 0; start < n; start += SUM_BLOCK) {
        int64_t end = start + SUM_BLOCK < n ? start + SUM_BLOCK : n;
        float lane[VEC_LANES] = {0};
        int64_t i = start;
        for (; i + VEC_LANES <= end; i += VEC_LANES)
            for (int k = 0; k < VEC_LANES; k++)
                lane[k] += exp_nonpositive(x[i + k] - shift);
        for (; i < end; i++)
            lane[0] += exp_nonpositive(x[i] - shift);
        for (int k = 0; k < VEC_LANES; k++)
            total += (double)lane[k];
    }
    return total;
}

static inline double sum_f32(const float *p, int64_t n)
{
    double total = 0.0;
    for (int64_t start = 0; start < n; start += SUM_BLOCK) {
        int64_t end = start + SUM_BLOCK < n ? start + SUM_BLOCK : n;
        float lane[VEC_LANES] = {0};
        int64_t i = start;
        for (; i + VEC_LANES <= end; i += VEC_LANES)
            for (int k = 0; k < VEC_LANES; k++)
                lane[k] += p[i + k];
        for (; i < end; i++)
            lane[0] += p[i];
        for (int k = 0; k < VEC_LANES; k++)
            total += (double)lane[k];
    }
    return total;
}

/* sum of a * b */
static inline double dot_f32(const float *a, const float *b, int64_t n)
{
    double total = 0.0;
    for (int64_t start = 0; start < n; start += SUM_BLOCK) {
        int64_t end = start + SUM_BLOCK < n ? start + SUM_BLOCK : n;
        float lane[VEC_LANES] = {0};
        int64_t i = start;
        for (; i + VEC_LANES <= end; i += VEC_LANES)
            for (int k = 0; k < VEC_LANES; k++)
                lane[k] += a[i + k] * b[i + k];
        for (; i < end; i++)
            lane[0] += a[i] * b[i];
        for (int k = 0; k < VEC_LANES; k++)
            total += (double)lane[k];
    }
    return total;
}

/* Largest element (-inf for n == 0). NaNs are skipped: callers see them
 * through exp(x - max). `x > m ? x : m` is exactly SSE's maxps, so the
 * lanes vectorize. */
static inline float max_f32(const float *x, int64_t n)
{
    float lane[VEC_LANES];
    for (int k = 0; k < VEC_LANES; k++)
        lane[k] = -INFINITY;
    int64_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES)
        for (int k = 0; k < VEC_LANES; k++)
            lane[k] = x[i + k] > lane[k] ? x[i + k] : lane[k];
    for (; i < n; i++)
        lane[0] = x[i] > lane[0] ? x[i] : lane[0];
    float m = lane[0];
    for (int k = 1; k < VEC_LANES; k++)
        m = lane[k] > m ? lane[k] : m;
    return m;
}

/* x[i] = sqrt(x[i]), correctly rounded like sqrtf. A loop calling sqrtf
 * stays scalar: with errno semantics (the default, and the optimize pragma
 * does not change how gcc treats the builtin) every call keeps a branch to
 * libm for negative inputs. Packed sqrtps has no such branch. 4 lanes are
 * enough: on current x86 cores wider sqrts are no faster per element. */
static inline void sqrt_in_place(float *x, int64_t n)
{
    int64_t i = 0;
#if defined(__SSE__)
    for (; i + 4 <= n; i += 4)
        _mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
#endif
    for (; i < n; i++)
        x[i] = sqrtf(x[i]);
}

static inline void scale_in_place(float *y, float factor, int64_t n)
{
    int64_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES)
        for (int k = 0; k < VEC_LANES; k++)
            y[i + k] *= factor;
    for (; i < n; i++)
        y[i] *= factor;
}

#endif

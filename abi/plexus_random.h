/*
 * plexus_random.h — the counter-based random numbers every backend must draw
 * identically (dropout masks, core.random_*): Philox4x32-10 (Salmon et al.,
 * "Parallel random numbers: as easy as 1, 2, 3", SC'11). Header-only, C11.
 *
 * Element c (= attrs offset + element index) of a stream keyed by `seed`:
 *   uniform u(c):  block (c >> 2) -> ctr {lo32(c>>2), hi32(c>>2), 0, 0},
 *                  word (c & 3) of philox(ctr, key {lo32(seed), hi32(seed)}),
 *                  u = (word >> 8) * 2^-24, in [0, 1).
 *   normal n(c):   ctr {lo32(c), hi32(c), 1, 0}; words w0, w1;
 *                  u1 = ((w0 >> 8) + 1) * 2^-24 in (0, 1], u2 = (w1 >> 8) * 2^-24,
 *                  n = sqrt(-2 ln u1) * cos(2 pi u2).
 * Dropout keeps element c iff u(c) >= p.
 */
#ifndef PLEXUS_RANDOM_H
#define PLEXUS_RANDOM_H

#include <math.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct plx_philox_block {
    uint32_t w[4];
} plx_philox_block;

static inline uint32_t plx_mulhilo32_(uint32_t a, uint32_t b, uint32_t *hi)
{
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Philox4x32 with 10 rounds. */
static inline plx_philox_block plx_philox4x32_10(plx_philox_block ctr, uint64_t seed)
{
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = plx_mulhilo32_(0xD2511F53u, ctr.w[0], &hi0);
        uint32_t lo1 = plx_mulhilo32_(0xCD9E8D57u, ctr.w[2], &hi1);
        plx_philox_block next = {{hi1 ^ ctr.w[1] ^ k0, lo1, hi0 ^ ctr.w[3] ^ k1, lo0}};
        ctr = next;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return ctr;
}

/* Four consecutive uniforms u(4b) .. u(4b+3) of block b, in [0, 1). */
static inline void plx_philox_uniform4(uint64_t seed, uint64_t block, float out[4])
{
    plx_philox_block ctr = {{(uint32_t)block, (uint32_t)(block >> 32), 0u, 0u}};
    plx_philox_block r = plx_philox4x32_10(ctr, seed);
    for (int i = 0; i < 4; i++)
        out[i] = (float)(r.w[i] >> 8) * (1.0f / 16777216.0f);
}

/* u(c) in [0, 1). */
static inline float plx_philox_uniform(uint64_t seed, uint64_t c)
{
    float u[4];
    plx_philox_uniform4(seed, c >> 2, u);
    return u[c & 3u];
}

/* n(c), standard normal. */
static inline float plx_philox_normal(uint64_t seed, uint64_t c)
{
    plx_philox_block ctr = {{(uint32_t)c, (uint32_t)(c >> 32), 1u, 0u}};
    plx_philox_block r = plx_philox4x32_10(ctr, seed);
    float u1 = (float)((r.w[0] >> 8) + 1u) * (1.0f / 16777216.0f);
    float u2 = (float)(r.w[1] >> 8) * (1.0f / 16777216.0f);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

#ifdef __cplusplus
}
#endif
#endif

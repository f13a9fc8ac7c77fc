/* train_internal.h: private helpers shared by the trainer's sources.
 *
 * A small counter-free random generator (splitmix64 seeding xoshiro128+-like
 * state) that every trainer component derives from (seed, stream) pairs, so
 * dropout masks and augmentation depend only on the seed and the position
 * in training, never on thread scheduling.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRAIN_TRAIN_INTERNAL_H
#define KWS_TRAIN_TRAIN_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* x86-64 builds compile the trainer's hot loops twice, for the baseline and
 * for AVX2, and pick one at load time (GCC's target_clones). AVX2 without FMA
 * only widens the vectors: every element is the same float operations in the
 * same order, so a seed still gives the same model on any x86-64 machine. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TRAIN_HOT __attribute__((target_clones("avx2", "default")))
#else
#define TRAIN_HOT
#endif

struct train_rng {
    uint64_t s;
};

static inline uint64_t train__mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void train_rng_seed(struct train_rng *r, uint64_t seed, uint64_t stream) {
    r->s = train__mix64(seed + 0x9E3779B97F4A7C15ull * (stream + 1));
}

/* splitmix64 step. */
static inline uint64_t train_rng_next(struct train_rng *r) {
    r->s += 0x9E3779B97F4A7C15ull;
    return train__mix64(r->s);
}

/* Uniform in [0, 1). */
static inline float train_rng_uniform(struct train_rng *r) {
    return (float)(train_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* Standard normal (Box-Muller). */
static inline float train_rng_normal(struct train_rng *r) {
    float u1 = train_rng_uniform(r), u2 = train_rng_uniform(r);
    if (u1 < 1e-7f)
        u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

/* A plain xorshift64 step (13, 7, 17): the generator of the recordings the
 * stream evaluation and the takes' second look make, whose draws depend on
 * their own seed alone. *s must not be 0. */
static inline uint64_t train__xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The next train__xorshift value as a double in [0, 1) (its top 53 bits). */
static inline double train__xorshift_unit(uint64_t *s) {
    return (double)(train__xorshift(s) >> 11) / 9007199254740992.0;
}

/* RMS of x[a, b) (0 when the span is empty), summed in double. */
static inline float train__rms(const float *x, int32_t a, int32_t b) {
    double e = 0.0;
    if (b <= a)
        return 0.0f;
    for (int32_t i = a; i < b; i++)
        e += (double)x[i] * x[i];
    return (float)sqrt(e / (double)(b - a));
}

/* qsort's comparison of floats, ascending (the stream evaluation's
 * latencies and peaks, clip scores' medians, the second look's costs). */
static inline int train__cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Sorted names of a folder's sound files (WAV, FLAC, Ogg) or sub-folders
 * (dataset.c); *out is malloc'd: free each name and it. 0 when dir is no folder. */
size_t dataset__list_sounds(const char *dir, char ***out);
size_t dataset__list_dirs(const char *dir, char ***out);

#endif /* KWS_TRAIN_TRAIN_INTERNAL_H */

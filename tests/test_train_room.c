/* test_train_room.c: the synthetic room of the training augmentation.
 *
 * An impulse through room_reverb gives the room's impulse response: its
 * direct-to-reverberant ratio must be the one asked for, its energy decay
 * (Schroeder's backward integral) must fall at the asked reverberation time,
 * and the same seed must give the same room.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kws/room.h"

enum { RATE = 16000, N = 2 * RATE };

static float *impulse_response(float rt60, float drr_db, uint64_t seed) {
    float *x = calloc(N, sizeof *x);
    cr_assert(not(eq(ptr, x, NULL)));
    x[0] = 0.5f;
    struct room rm = {.rt60 = rt60, .drr_db = drr_db, .seed = seed};
    cr_assert(eq(int, room_reverb(x, N, RATE, &rm), 0));
    return x;
}

static double energy(const float *x, size_t n) {
    double e = 0.0;
    for (size_t i = 0; i < n; i++)
        e += (double)x[i] * x[i];
    return e;
}

Test(room, direct_to_reverberant_ratio_and_energy) {
    const float drr[] = {0.0f, 6.0f, 12.0f};
    for (int k = 0; k < 3; k++) {
        float *h = impulse_response(0.5f, drr[k], 7);
        /* the first echo comes 2 ms after the direct sound at the earliest */
        double direct = (double)h[0] * h[0], rest = energy(h + 1, N - 1);
        cr_expect(epsilon_eq(dbl, 10.0 * log10(direct / rest), drr[k], 0.05),
                  "DRR %.3f dB, asked %.1f", 10.0 * log10(direct / rest), drr[k]);
        cr_expect(epsilon_eq(dbl, direct + rest, 0.25, 1e-4), "energy %.6f, input 0.25",
                  direct + rest);
        free(h);
    }
}

/* The time the backward-integrated energy takes from -10 to -40 dB, times 2
 * (a T30 estimate of the reverberation time, past the early echoes), s. */
static double t30(const float *h) {
    double *edc = malloc(N * sizeof *edc), s = 0.0;
    cr_assert(not(eq(ptr, edc, NULL)));
    for (int i = N - 1; i >= 1; i--)
        edc[i] = (s += (double)h[i] * h[i]);
    int a = -1, b = -1;
    for (int i = 1; i < N && b < 0; i++) {
        double db = 10.0 * log10(edc[i] / edc[1]);
        if (a < 0 && db <= -10.0)
            a = i;
        if (db <= -40.0)
            b = i;
    }
    free(edc);
    cr_assert(a > 0 && b > a);
    return 2.0 * (double)(b - a) / RATE;
}

/* h through four one-pole low-passes at 300 Hz, in place: what is left is
 * the band where the tail lasts rt60 */
static void low_pass(float *h) {
    const float a = expf(-2.0f * (float)M_PI * 300.0f / RATE);
    for (int p = 0; p < 4; p++) {
        float y = 0.0f;
        for (int i = 0; i < N; i++)
            h[i] = y = (1.0f - a) * h[i] + a * y;
    }
}

Test(room, tail_falls_at_the_reverberation_time) {
    const float rt[] = {0.2f, 0.5f, 0.8f};
    for (int k = 0; k < 3; k++) {
        double sum = 0.0;
        for (uint64_t seed = 1; seed <= 4; seed++) {
            float *h = impulse_response(rt[k], 6.0f, seed);
            low_pass(h);
            sum += t30(h);
            free(h);
        }
        double m = sum / 4.0;
        cr_expect(m > 0.9 * rt[k] && m < 1.1 * rt[k], "T30 %.3f s, asked %.2f s", m, rt[k]);
    }
}

Test(room, same_seed_same_room_and_silence_stays_silent) {
    float *a = impulse_response(0.4f, 3.0f, 11), *b = impulse_response(0.4f, 3.0f, 11);
    float *c = impulse_response(0.4f, 3.0f, 12);
    cr_expect(eq(int, memcmp(a, b, N * sizeof *a), 0));
    cr_expect(not(eq(int, memcmp(a, c, N * sizeof *a), 0)));
    for (int i = 0; i < N; i++)
        cr_assert(isfinite(a[i]));
    free(a);
    free(b);
    free(c);
    float z[1000] = {0};
    struct room rm = {.rt60 = 0.4f, .drr_db = 3.0f, .seed = 1};
    cr_expect(eq(int, room_reverb(z, 1000, RATE, &rm), 0));
    for (int i = 0; i < 1000; i++)
        cr_assert(eq(flt, z[i], 0.0f));
}

Test(room, bad_rooms_are_refused) {
    float x[100] = {1.0f};
    struct room rm = {.rt60 = 0.0f, .drr_db = 3.0f, .seed = 1};
    cr_expect(eq(int, room_reverb(x, 100, RATE, &rm), -EINVAL));
    rm.rt60 = 0.3f;
    cr_expect(eq(int, room_reverb(x, 100, 500, &rm), -EINVAL));
    rm.drr_db = NAN;
    cr_expect(eq(int, room_reverb(x, 100, RATE, &rm), -EINVAL));
    cr_expect(eq(flt, x[0], 1.0f));
}

/* room.c: a small synthetic room (kws/room.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/room.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "train_internal.h"

enum { N_EARLY = 8, N_COMB = 6, N_ALLPASS = 2 };

/* How far a comb's gain is below 1 for its tail to fall 60 dB in rt60:
 * each trip round a loop of d samples multiplies by g = 10^(-3 d / (rt60 rate)). */
static float decay_gain(int d, float rt60, int rate) {
    return powf(10.0f, -3.0f * (float)d / (rt60 * (float)rate));
}

static double energy(const float *x, size_t n) {
    double e = 0.0;
    for (size_t i = 0; i < n; i++)
        e += (double)x[i] * x[i];
    return e;
}

/* Single echoes of x into wet: delays 2-40 ms, gains 0.1-0.4 of the
 * tail's envelope (a few echoes; the combs' tail carries most of the energy,
 * as the diffuse field of a room does). */
static void add_early(const float *x, size_t n, float *wet, int rate, float rt60,
                      struct train_rng *rng) {
    for (int k = 0; k < N_EARLY; k++) {
        size_t d = (size_t)((2.0f + 38.0f * train_rng_uniform(rng)) * (float)rate / 1000.0f);
        float a = (0.1f + 0.3f * train_rng_uniform(rng)) * decay_gain((int)d, rt60, rate);
        if (train_rng_uniform(rng) < 0.5f)
            a = -a;
        for (size_t i = d; i < n; i++)
            wet[i] += a * x[i - d];
    }
}

/* The late tail of x into wet: N_COMB low-pass feedback combs (loops of
 * 25-50 ms, one in each sixth of that span, so no two share a delay) in
 * parallel, then N_ALLPASS all-passes (5 and 1.7 ms, gain 0.6) in series.
 * line holds the delay lines (the sum of the loops' lengths). */
static void add_late(const float *x, size_t n, float *wet, int rate, float rt60, float *line,
                     struct train_rng *rng) {
    float ms = (float)rate / 1000.0f;
    float *cl[N_COMB], gc[N_COMB], lp[N_COMB] = {0};
    int dc[N_COMB], pc[N_COMB] = {0};
    float damp[N_COMB];
    /* at the top of the band the tail lasts hf times as long as rt60 */
    float hf = 0.4f + 0.3f * train_rng_uniform(rng);
    for (int c = 0; c < N_COMB; c++) {
        dc[c] = 1 + (int)((25.0f + 25.0f * ((float)c + train_rng_uniform(rng)) / N_COMB) * ms);
        gc[c] = decay_gain(dc[c], rt60, rate);
        /* the loop's low-pass y = (1 - a) x + a y' passes (1 - a) / (1 + a) at
         * the Nyquist frequency; that times gc is the gain for hf * rt60 */
        float r = decay_gain(dc[c], hf * rt60, rate) / gc[c];
        damp[c] = (1.0f - r) / (1.0f + r);
        cl[c] = line;
        line += dc[c];
    }
    static const float ap_ms[N_ALLPASS] = {5.0f, 1.7f};
    float *al[N_ALLPASS];
    int da[N_ALLPASS], pa[N_ALLPASS] = {0};
    for (int a = 0; a < N_ALLPASS; a++) {
        da[a] = 1 + (int)(ap_ms[a] * ms);
        al[a] = line;
        line += da[a];
    }
    const float g = 0.6f;
    for (size_t i = 0; i < n; i++) {
        float s = 0.0f;
        for (int c = 0; c < N_COMB; c++) {
            float o = cl[c][pc[c]];
            lp[c] = o + damp[c] * (lp[c] - o);
            cl[c][pc[c]] = x[i] + gc[c] * lp[c];
            pc[c] = pc[c] + 1 == dc[c] ? 0 : pc[c] + 1;
            s += o;
        }
        for (int a = 0; a < N_ALLPASS; a++) {
            float wd = al[a][pa[a]], w = s + g * wd;
            s = wd - g * w;
            al[a][pa[a]] = w;
            pa[a] = pa[a] + 1 == da[a] ? 0 : pa[a] + 1;
        }
        wet[i] += s;
    }
}

int room_reverb(float *x, size_t n, int rate, const struct room *rm) {
    if (!(rm->rt60 > 0.0f) || rate < 1000 || !isfinite(rm->drr_db))
        return -EINVAL;
    double e_dry = energy(x, n);
    if (e_dry == 0.0)
        return 0;
    /* the delay lines: at most 50 ms per comb, 5 and 1.7 ms per all-pass */
    size_t lines = (size_t)(N_COMB * 51 + 8) * (size_t)rate / 1000 + N_COMB + N_ALLPASS;
    float *wet = calloc(n + lines, sizeof *wet);
    if (!wet)
        return -ENOMEM;
    struct train_rng rng;
    train_rng_seed(&rng, rm->seed, 0x726f6f6dULL); /* "room" */
    add_early(x, n, wet, rate, rm->rt60, &rng);
    add_late(x, n, wet, rate, rm->rt60, wet + n, &rng);
    double e_wet = energy(wet, n);
    float gw = e_wet > 0.0 ? (float)sqrt(e_dry / e_wet) * powf(10.0f, -rm->drr_db / 20.0f) : 0.0f;
    for (size_t i = 0; i < n; i++)
        wet[i] = x[i] + gw * wet[i];
    double e_out = energy(wet, n);
    float s = e_out > 0.0 ? (float)sqrt(e_dry / e_out) : 1.0f;
    for (size_t i = 0; i < n; i++)
        x[i] = s * wet[i];
    free(wet);
    return 0;
}

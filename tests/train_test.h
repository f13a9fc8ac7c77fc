/* train_test.h: helpers shared by the trainer's tests that build data sets at test time.
 *
 * Sound files written with libsndfile, the tone-burst "words" and noise the
 * tiny data sets are made of, and a test folder removed at the end. Builds on
 * kwsd_test.h (kt_path, kt_sh, kt_write_file); each helper fails the calling
 * Criterion test when something it needs does not work. Include after
 * <criterion/criterion.h> and <criterion/new/assert.h>; link libsndfile.
 *
 *     static char root[] = "/tmp/kws-x-XXXXXX";   // mkdtemp'd in the fixture
 *     tt_write_word(kt_path(root, "yes/a0.wav"), 1u, 500.0f, 300, 0); // 500 Hz at 300 ms
 *     static float x[48000];                     // any length, several bursts:
 *     tt_clip(x, 48000, 16000, 7u, 0.002f, 900.0f, 200, 2);
 *     tt_write_wav(kt_path(root, "neg/p0.wav"), x, 48000, 16000, TT_WAV16);
 *     kt_write_file(kt_path(root, "testing_list.txt"), "yes/a0.wav\n");
 *     tt_rmtree(root);
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWSD_TESTS_TRAIN_TEST_H
#define KWSD_TESTS_TRAIN_TEST_H

#include <math.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "kwsd_test.h"

/* The format the data sets are written in: 16-bit WAV. */
#define TT_WAV16 (SF_FORMAT_WAV | SF_FORMAT_PCM_16)

/* Writes n mono samples of x at rate Hz to path in format (SF_FORMAT_*). */
static inline void tt_write_wav(const char *path, const float *x, size_t n, int rate, int format) {
    SF_INFO info = {.samplerate = rate, .channels = 1, .format = format};
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    cr_assert(not(eq(ptr, f, NULL)), "%s: %s", path, sf_strerror(NULL));
    cr_assert(eq(i64, (int64_t)sf_writef_float(f, x, (sf_count_t)n), (int64_t)n), "%s", path);
    sf_close(f);
}

/* x[0..n) at rate Hz: uniform noise of peak-to-peak amplitude amp from a
 * linear congruential generator whose state starts at s, plus n_burst tone
 * bursts of freq Hz at amplitude 0.5, each 400 ms long, the first at
 * start_ms and the next ones 1 s apart. The same arguments give the same
 * samples. */
static inline void tt_clip(float *x, int n, int rate, uint32_t s, float amp, float freq,
                           int start_ms, int n_burst) {
    for (int i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        float noise = ((float)(s >> 8) / 16777216.0f - 0.5f) * amp;
        float tone = 0.0f;
        for (int b = 0; b < n_burst; b++) {
            int a = (start_ms + 1000 * b) * (rate / 1000);
            if (i >= a && i < a + 400 * (rate / 1000))
                tone = 0.5f * sinf(2.0f * 3.14159265f * freq * (float)i / (float)rate);
        }
        x[i] = noise + tone;
    }
}

/* path, a 16-bit WAV of 1 s at 16 kHz: a 400 ms "word" (tt_clip's tone of
 * freq Hz) from start_ms over faint noise (amplitude 0.002), or (noise_only)
 * louder noise alone (0.2); s starts the noise generator. */
static inline void tt_write_word(const char *path, uint32_t s, float freq, int start_ms,
                                 int noise_only) {
    static float x[16000];
    tt_clip(x, 16000, 16000, s, noise_only ? 0.2f : 0.002f, freq, start_ms, !noise_only);
    tt_write_wav(path, x, 16000, 16000, TT_WAV16);
}

/* Removes dir and everything in it. */
static inline void tt_rmtree(const char *dir) {
    kt_sh("rm -rf '%s'", dir);
}

#endif /* KWSD_TESTS_TRAIN_TEST_H */

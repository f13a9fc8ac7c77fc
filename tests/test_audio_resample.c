/* test_audio_resample.c: the streaming resampler against band-limited references.
 *
 * tones_resample.bin (tests/fixtures/audio/gen_frontend.py) holds a two-tone
 * signal at 48, 44.1 and 8 kHz and its ideal band-limited resampling to
 * 16 kHz (numpy FFT resampling of a whole number of periods). The converter
 * must match it within 1e-5 (-100 dB of full scale; measured: under 1e-6)
 * away from the stream's two ends, where the filter lacks history or
 * lookahead.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/audio/audio_fixture.h"
#include "kws/resample.h"

/* Resamples x (n samples) in blocks of `block`, flushes, and returns a
 * malloc'd output of *n_out samples. */
static float *resample_all(int in_rate, int out_rate, const float *x, size_t n, size_t block,
                           size_t *n_out) {
    struct audio_resampler r;
    size_t cap, done = 0, got;
    float *y;

    cr_assert(eq(int, audio_resampler_init(&r, in_rate, out_rate, block), 0));
    cap = audio_resampler_out_max(&r, n) + audio_resampler_out_max(&r, 0);
    y = malloc(cap * sizeof(float));
    for (size_t off = 0; off < n; off += block) {
        size_t k = n - off < block ? n - off : block;
        size_t room = audio_resampler_out_max(&r, k);
        cr_assert(le(sz, done + room, cap));
        cr_assert(eq(int, audio_resampler_process(&r, x + off, k, y + done, room, &got), 0));
        done += got;
    }
    cr_assert(eq(int, audio_resampler_flush(&r, y + done, cap - done, &got), 0));
    done += got;
    audio_resampler_free(&r);
    audio_resampler_free(&r);
    *n_out = done;
    return y;
}

Test(audio_resample, matches_band_limited_reference) {
    size_t len = 0;
    unsigned char *buf = fixture_load("tones_resample.bin", &len);
    struct fx_reader rd = {buf, len};
    int32_t magic, version, n_cases, n_ref;

    cr_assert(not(eq(ptr, buf, NULL)), "missing fixture tones_resample.bin");
    fx_i32(&rd, &magic);
    fx_i32(&rd, &version);
    fx_i32(&rd, &n_cases);
    cr_assert(eq(int, fx_i32(&rd, &n_ref), 0));
    cr_assert(eq(int, memcmp(&magic, "KWRS", 4), 0));
    cr_assert(eq(i32, version, 1));
    for (int c = 0; c < n_cases; c++) {
        int32_t rate, n;
        fx_i32(&rd, &rate);
        cr_assert(eq(int, fx_i32(&rd, &n), 0));
        float *x = fx_f32(&rd, (size_t)n), *ref = fx_f32(&rd, (size_t)n_ref);
        cr_assert(x && ref, "fixture truncated");
        size_t got_n;
        float *y = resample_all(rate, 16000, x, (size_t)n, (size_t)rate / 100, &got_n);
        char label[64];
        snprintf(label, sizeof label, "%d->16000", rate);
        /* Output length: n * ratio, give or take one sample. */
        cr_assert(le(dbl, fabs((double)got_n - (double)n_ref), 1.0), "%s: %zu samples", label,
                  got_n);
        size_t skip = 100; /* 6 ms at each end */
        cr_assert(eq(
            int, check_tensor(y + skip, ref + skip, (size_t)n_ref - 2 * skip, 1e-5f, 0.0f, label),
            0));
        free(y);
        free(x);
        free(ref);
    }
    free(buf);
}

Test(audio_resample, rejects_what_would_alias) {
    /* 10 kHz at 48 kHz is above 16 kHz's Nyquist: it must vanish, not fold
     * down to 6 kHz as sample dropping would make it. */
    size_t n = 48000, got_n;
    float *x = malloc(n * sizeof(float));
    double e = 0.0;

    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.5 * sin(2.0 * M_PI * 10000.0 * (double)i / 48000.0));
    float *y = resample_all(48000, 16000, x, n, 480, &got_n);
    for (size_t i = 200; i < got_n - 200; i++)
        e += (double)y[i] * y[i];
    double rms = sqrt(e / (double)(got_n - 400));
    cr_log_info("10 kHz tone at 0.354 RMS leaves %.2e RMS (%.1f dB)", rms,
                20.0 * log10(rms / 0.3536));
    cr_assert(lt(dbl, rms, 0.3536 * 1e-3), "at least 60 dB down");
    free(x);
    free(y);
}

Test(audio_resample, output_does_not_depend_on_block_sizes) {
    size_t n = 44100, a_n, b_n;
    float *x = malloc(n * sizeof(float));
    uint32_t s = 1;

    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = 0.3f * ((float)(s >> 8) / 16777216.0f - 0.5f);
    }
    float *a = resample_all(44100, 16000, x, n, 4410, &a_n);
    float *b = resample_all(44100, 16000, x, n, 37, &b_n);
    cr_assert(eq(sz, a_n, b_n));
    cr_assert(eq(int, check_tensor(b, a, a_n, 1e-6f, 0.0f, "37-sample blocks"), 0));
    free(x);
    free(a);
    free(b);
}

Test(audio_resample, reset_starts_a_new_stream) {
    struct audio_resampler r;
    float x[480], y1[600], y2[600];
    size_t n1, n2;

    for (int i = 0; i < 480; i++)
        x[i] = (float)sin(0.05 * i);
    cr_assert(eq(int, audio_resampler_init(&r, 48000, 16000, 480), 0));
    cr_assert(eq(int, audio_resampler_process(&r, x, 480, y1, 600, &n1), 0));
    audio_resampler_reset(&r);
    cr_assert(eq(int, audio_resampler_process(&r, x, 480, y2, 600, &n2), 0));
    cr_assert(eq(sz, n1, n2));
    cr_assert(eq(int, memcmp(y1, y2, n1 * sizeof(float)), 0));
    audio_resampler_free(&r);
}

Test(audio_resample, equal_rates_copy) {
    struct audio_resampler r;
    float x[100], y[100];
    size_t n;

    for (int i = 0; i < 100; i++)
        x[i] = (float)i / 100.0f;
    cr_assert(eq(int, audio_resampler_init(&r, 16000, 16000, 0), 0));
    cr_assert(eq(sz, audio_resampler_out_max(&r, 100), 100));
    cr_assert(eq(int, audio_resampler_process(&r, x, 100, y, 100, &n), 0));
    cr_assert(eq(sz, n, 100));
    cr_assert(eq(int, memcmp(x, y, sizeof x), 0));
    cr_assert(eq(int, audio_resampler_process(&r, x, 100, y, 60, &n), -ENOBUFS));
    cr_assert(eq(sz, n, 0));
    cr_assert(eq(int, audio_resampler_flush(&r, y, 100, &n), 0));
    cr_assert(eq(sz, n, 0));
    audio_resampler_free(&r);
}

Test(audio_resample, too_small_output_is_reported) {
    struct audio_resampler r;
    float x[4800] = {0}, y[100];
    size_t n;

    cr_assert(eq(int, audio_resampler_init(&r, 8000, 16000, 4800), 0));
    cr_assert(eq(int, audio_resampler_process(&r, x, 4800, y, 100, &n), -ENOBUFS));
    cr_assert(eq(sz, n, 0));
    cr_assert(gt(sz, audio_resampler_out_max(&r, 4800), 9600));
    audio_resampler_free(&r);
}

Test(audio_resample, bad_rates_are_rejected) {
    struct audio_resampler r;
    cr_assert(eq(int, audio_resampler_init(&r, 0, 16000, 0), -EINVAL));
    cr_assert(eq(int, audio_resampler_init(&r, 16000, 999999, 0), -EINVAL));
    audio_resampler_free(&r);
}

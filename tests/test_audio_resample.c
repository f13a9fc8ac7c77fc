/* test_audio_resample.c: the streaming resampler against band-limited references.
 *
 * tones_resample.bin (tests/fixtures/audio/gen_frontend.py) holds a two-tone
 * signal at 48, 44.1 and 8 kHz and its ideal band-limited resampling to
 * 16 kHz (numpy FFT resampling of a whole number of periods). The converter
 * must match it within 3e-5 (-90 dB of full scale; measured with libspeexdsp
 * at quality 4: 5.3e-6 from 48 kHz, 5.9e-6 from 44.1 kHz, 1.9e-5 from 8 kHz)
 * away from the stream's two ends, where the filter lacks history or
 * lookahead.
 *
 * Tone sweeps at 48 kHz measure the converter as a filter: the amplitude of
 * each tone, or of the alias it would fold to, fitted in the 16 kHz output.
 * Every tone from 8 to 24 kHz must come out at least 70 dB down (measured:
 * 81.6 dB at worst, 8062.5 Hz) and every tone from 20 Hz to 6 kHz within
 * 0.01 dB of its level (measured: 0.0007 dB of ripple).
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
            int, check_tensor(y + skip, ref + skip, (size_t)n_ref - 2 * skip, 3e-5f, 0.0f, label),
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

/* Amplitude of the component at f Hz in y[0..n) (16 kHz): the least-squares
 * fit of a sine and a cosine, its 2x2 normal equations solved exactly. */
static double tone_amplitude(const float *y, size_t n, double f) {
    double ss = 0, cc = 0, sc = 0, ys = 0, yc = 0, w = 2.0 * M_PI * f / 16000.0;

    for (size_t k = 0; k < n; k++) {
        double sn = sin(w * (double)k), cs = cos(w * (double)k);
        ss += sn * sn;
        cc += cs * cs;
        sc += sn * cs;
        ys += y[k] * sn;
        yc += y[k] * cs;
    }
    double det = ss * cc - sc * sc;
    double a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
    return sqrt(a * a + b * b);
}

/* Level in dB of a 0.5-amplitude tone of f Hz at 48 kHz after conversion to
 * 16 kHz, measured at the frequency it lands on, over 0.5 s in the middle
 * of a 1 s stream. */
static double tone_gain_db(double f) {
    size_t n = 48000, got_n;
    float *x = malloc(n * sizeof(float));
    double fa = fmod(f, 16000.0);

    if (fa > 8000.0)
        fa = 16000.0 - fa;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.5 * sin(2.0 * M_PI * f * (double)i / 48000.0));
    float *y = resample_all(48000, 16000, x, n, 960, &got_n);
    cr_assert(ge(sz, got_n, 12000));
    double g = 20.0 * log10(tone_amplitude(y + 4000, 8000, fa) / 0.5);
    free(x);
    free(y);
    return g;
}

Test(audio_resample, tones_above_8khz_are_70db_down) {
    /* Every tone from 8 to 24 kHz folds to somewhere below 8 kHz; a 50 Hz
     * grid offset by 12.5 Hz keeps the alias off 0 Hz and 8 kHz. */
    double worst = -1e9, worst_f = 0.0;

    for (double f = 8012.5; f < 24000.0; f += 50.0) {
        double g = tone_gain_db(f);
        if (g > worst) {
            worst = g;
            worst_f = f;
        }
    }
    cr_log_info("worst alias: %.1f dB (tone at %.1f Hz)", worst, worst_f);
    cr_assert(le(dbl, worst, -70.0), "%.1f Hz comes out at %.1f dB", worst_f, worst);
}

Test(audio_resample, passband_is_flat_to_6khz) {
    double lo = 1e9, hi = -1e9;

    for (double f = 12.5; f < 6000.0; f += 100.0) {
        double g = tone_gain_db(f);
        lo = g < lo ? g : lo;
        hi = g > hi ? g : hi;
    }
    cr_log_info("gain from 12.5 Hz to 5.9 kHz: %.5f to %.5f dB", lo, hi);
    cr_assert(le(dbl, fabs(lo), 0.01));
    cr_assert(le(dbl, fabs(hi), 0.01));
    /* and still within 3 dB at 7 kHz */
    cr_assert(ge(dbl, tone_gain_db(7012.5), -3.0));
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

/* test_audio_file.c: reading sound files with audio_file_read.
 *
 * The tests write their own WAV/FLAC files with libsndfile into a temporary
 * directory, then check samples, channel choice, resampling and errors.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <math.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws/audio_file.h"
#include "kws/err.h"

static char tmpdir[256];

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kws-audio-file-XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(tmpdir), NULL)));
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert(eq(int, system(cmd), 0));
}

/* Sample i of channel 0 (multiples of 2^-15, exact in 16-bit files). */
static float value(size_t i) {
    return (float)((int)((i * 7919u) % 20000u) - 10000) / 32768.0f;
}

/* Writes n frames; channel 0 is value(i) (or a 1 kHz tone with tone != 0),
 * the other channels its negation. */
static void write_file(const char *path, int format, int rate, int channels, size_t n, int tone) {
    SF_INFO info = {.samplerate = rate, .channels = channels, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    float *buf = malloc(n * (size_t)channels * sizeof(float));

    cr_assert(not(eq(ptr, sf, NULL)), "%s: %s", path, sf_strerror(NULL));
    for (size_t i = 0; i < n; i++) {
        float v = tone ? (float)(0.5 * sin(2.0 * M_PI * 1000.0 * (double)i / rate)) : value(i);
        for (int c = 0; c < channels; c++)
            buf[i * (size_t)channels + (size_t)c] = c ? -v : v;
    }
    cr_assert(eq(i64, (int64_t)sf_writef_float(sf, buf, (sf_count_t)n), (int64_t)n));
    sf_close(sf);
    free(buf);
}

Test(audio_file, reads_wav_samples_exactly, .init = setup, .fini = teardown) {
    char path[300], msg[256] = "";
    float *x;
    size_t n;
    int native = 0;

    snprintf(path, sizeof path, "%s/a.wav", tmpdir);
    write_file(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, 12345, 0);
    cr_assert(eq(int, audio_file_read(path, 0, &x, &n, &native, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(int, native, 16000));
    cr_assert(eq(sz, n, 12345));
    for (size_t i = 0; i < n; i++)
        cr_assert(eq(flt, x[i], value(i)), "sample %zu", i);
    free(x);
    /* Asking for the native rate is the same as 0. */
    cr_assert(eq(int, audio_file_read(path, 16000, &x, &n, NULL, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(sz, n, 12345));
    free(x);
}

Test(audio_file, takes_the_first_channel, .init = setup, .fini = teardown) {
    char path[300], msg[256] = "";
    float *x;
    size_t n;

    snprintf(path, sizeof path, "%s/stereo.flac", tmpdir);
    write_file(path, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 8000, 2, 4000, 0);
    cr_assert(eq(int, audio_file_read(path, 0, &x, &n, NULL, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(sz, n, 4000));
    for (size_t i = 0; i < n; i++)
        cr_assert(eq(flt, x[i], value(i)), "sample %zu", i);
    free(x);
}

Test(audio_file, resamples_to_the_requested_rate, .init = setup, .fini = teardown) {
    char path[300], msg[256] = "";
    float *x;
    size_t n;
    int native;

    snprintf(path, sizeof path, "%s/tone48k.wav", tmpdir);
    write_file(path, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 48000, 1, 48000, 1);
    cr_assert(eq(int, audio_file_read(path, 16000, &x, &n, &native, msg, sizeof msg), 0), "%s",
              msg);
    cr_assert(eq(int, native, 48000));
    cr_assert(le(dbl, fabs((double)n - 16000.0), 1.0), "%zu samples for 1 s", n);
    /* Time-aligned: sample i is the tone at i / 16000 s. */
    double worst = 0.0;
    for (size_t i = 200; i < n - 200; i++) {
        double want = 0.5 * sin(2.0 * M_PI * 1000.0 * (double)i / 16000.0);
        worst = fmax(worst, fabs((double)x[i] - want));
    }
    cr_log_info("48 kHz -> 16 kHz tone: max error %.2e", worst);
    cr_assert(lt(dbl, worst, 1e-4));
    free(x);
}

Test(audio_file, missing_file_names_path_and_reason, .init = setup, .fini = teardown) {
    char path[300], msg[256] = "";
    float *x = (float *)1;
    size_t n = 7;

    snprintf(path, sizeof path, "%s/nope.wav", tmpdir);
    cr_assert(eq(int, audio_file_read(path, 16000, &x, &n, NULL, msg, sizeof msg), -ENOENT), "%s",
              msg);
    cr_assert(eq(ptr, x, NULL));
    cr_assert(eq(sz, n, 0));
    cr_assert(eq(int, strncmp(msg, path, strlen(path)), 0), "%s", msg);
    cr_assert(not(eq(ptr, strstr(msg, "No such file"), NULL)), "%s", msg);
}

Test(audio_file, non_audio_file_is_rejected, .init = setup, .fini = teardown) {
    char path[300], msg[256] = "";
    float *x;
    size_t n;
    FILE *f;

    snprintf(path, sizeof path, "%s/notes.txt", tmpdir);
    f = fopen(path, "w");
    fputs("this is not a sound file\n", f);
    fclose(f);
    cr_assert(eq(int, audio_file_read(path, 16000, &x, &n, NULL, msg, sizeof msg), KWS_EFORMAT),
              "%s", msg);
    cr_assert(eq(int, strncmp(msg, path, strlen(path)), 0), "%s", msg);
    cr_log_info("%s", msg);
}

Test(audio_file, empty_file_is_rejected, .init = setup, .fini = teardown) {
    char path[300], msg[256] = "";
    float *x;
    size_t n;

    snprintf(path, sizeof path, "%s/empty.wav", tmpdir);
    write_file(path, SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, 1, 0, 0);
    cr_assert(eq(int, audio_file_read(path, 16000, &x, &n, NULL, msg, sizeof msg), KWS_EFORMAT),
              "%s", msg);
    cr_assert(not(eq(ptr, strstr(msg, "no samples"), NULL)), "%s", msg);
}

/* A float file holding NaN, infinities and 1e30 (a broken file): those
 * samples come back as 0, every other sample as written, and at another
 * rate the resampled output is finite throughout. */
Test(audio_file, broken_float_samples_become_zero, .init = setup, .fini = teardown) {
    char path[300], msg[256];
    const size_t n = 4000;
    const size_t bad_at[] = {10, 11, 2000, 3999};
    const float bad[] = {NAN, INFINITY, -1e30f, 1001.0f};
    float *buf = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        buf[i] = value(i);
    for (size_t k = 0; k < 4; k++)
        buf[bad_at[k]] = bad[k];
    buf[20] = 999.0f; /* loud, but not absurd: kept */
    snprintf(path, sizeof path, "%s/broken.wav", tmpdir);
    SF_INFO info = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_FLOAT};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    cr_assert(not(eq(ptr, sf, NULL)), "%s", sf_strerror(NULL));
    sf_command(sf, SFC_SET_CLIPPING, NULL, SF_FALSE);
    cr_assert(eq(i64, (int64_t)sf_writef_float(sf, buf, (sf_count_t)n), (int64_t)n));
    sf_close(sf);

    float *x;
    size_t got;
    cr_assert(eq(int, audio_file_read(path, 0, &x, &got, NULL, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(sz, got, n));
    for (size_t i = 0; i < n; i++) {
        int is_bad = i == 10 || i == 11 || i == 2000 || i == 3999;
        cr_assert(eq(flt, x[i], is_bad ? 0.0f : buf[i]), "sample %zu", i);
    }
    free(x);

    cr_assert(eq(int, audio_file_read(path, 48000, &x, &got, NULL, msg, sizeof msg), 0), "%s", msg);
    for (size_t i = 0; i < got; i++)
        cr_assert(isfinite(x[i]), "resampled sample %zu is %g", i, (double)x[i]);
    free(x);
    free(buf);
}

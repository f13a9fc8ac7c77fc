/* test_audio_capture.c: ALSA capture in a libuv loop, through real alsa-lib.
 *
 * Every test writes an ALSA configuration to a temporary directory that
 * defines `testmic` as ALSA's file plugin over a null slave, reading a raw
 * input file the test made (DESIGN.md, "Data and tests"), and points
 * ALSA_CONFIG_PATH at it before the process's first ALSA call. Criterion
 * runs each test in its own process, so each gets a fresh alsa-lib.
 *
 * The null slave's descriptor (/dev/full) cannot be watched by epoll, so
 * `testmic` runs on the capture's per-period tick. `pollmic`, a small
 * external ALSA plugin built with the tests (fixtures/audio/
 * alsa_test_plugin.c), has a timerfd descriptor that ticks every period like
 * a sound card, overruns when its reader stalls and fails with -ENODEV while
 * "unplugged": the uv_poll path, real overruns and hot-unplug go through it.
 *
 * The file plugin never reports the end of its input (it repeats the last
 * period), so the tests stop once the known number of samples has arrived.
 *
 * SPDX-License-Identifier: MIT
 */
#include <alsa/asoundlib.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "kws/capture.h"
#include "kws/err.h"

/* ==== Fixture: a temporary ALSA configuration ==== */

static char tmpdir[256];
static char infile[512];
static char unplug[512]; /* pollmic fails while this file exists */

/* pollmic (tests/fixtures/audio/alsa_test_plugin.c) runs this many times
 * faster than real time. */
#define POLLMIC_SPEED 5

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kws-audio-cap-XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(tmpdir), NULL)));
    snprintf(infile, sizeof infile, "%s/in.raw", tmpdir);
    snprintf(unplug, sizeof unplug, "%s/unplugged", tmpdir);
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert(eq(int, system(cmd), 0));
}

/* Writes the configuration (testmic = file plugin over null reading
 * `infile`; testplug = plug over a file plugin pinned to slave_fmt,
 * slave_rate, 2 channels) and makes alsa-lib read it. */
static void alsa_config(const char *slave_fmt, int slave_rate) {
    char path[512];
    FILE *f;

    snprintf(path, sizeof path, "%s/asound.conf", tmpdir);
    f = fopen(path, "w");
    cr_assert(not(eq(ptr, f, NULL)));
    fprintf(f,
            "pcm.testmic { type file slave.pcm null file /dev/null infile \"%s\" format raw }\n"
            "pcm.testplug { type plug slave { pcm testmic format %s rate %d channels 2 } }\n"
            "pcm_type.kwstest { lib \"%s\" }\n"
            "pcm.pollmic { type kwstest infile \"%s\" unplug \"%s\" speed %d }\n",
            infile, slave_fmt ? slave_fmt : "S16_LE", slave_rate ? slave_rate : 48000,
            KWS_ALSA_TEST_PLUGIN, infile, unplug, POLLMIC_SPEED);
    fclose(f);
    char env[600];
    snprintf(env, sizeof env, "/usr/share/alsa/alsa.conf:%s", path);
    cr_assert(eq(int, setenv("ALSA_CONFIG_PATH", env, 1), 0));
    snd_config_update_free_global();
}

/* ==== Test signal and raw files ==== */

/* A deterministic signal in [-0.5, 0.5): noise over a slow sine, so any
 * shift, gap or repeat shows up. Values are multiples of 2^-15 so that every
 * format represents them exactly. */
static float signal_at(size_t i) {
    uint32_t h = (uint32_t)i * 2654435761u;
    h ^= h >> 15;
    double v = 0.3 * sin((double)i * 0.01) + 0.2 * ((double)(h & 0xffff) / 65536.0 - 0.5);
    return (float)(floor(v * 32768.0) / 32768.0);
}

enum fmt { F_S16, F_S32, F_FLOAT };

/* Writes n frames of `channels` channels: channel 0 carries signal_at(i),
 * the others its negation (so taking the wrong channel fails). */
static void write_raw(const char *path, enum fmt fmt, int channels, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(not(eq(ptr, f, NULL)));
    for (size_t i = 0; i < n; i++) {
        for (int ch = 0; ch < channels; ch++) {
            float v = ch == 0 ? signal_at(i) : -signal_at(i);
            if (fmt == F_S16) {
                int16_t s = (int16_t)lrintf(v * 32768.0f);
                fwrite(&s, 2, 1, f);
            } else if (fmt == F_S32) {
                int32_t s = (int32_t)lrint((double)v * 2147483648.0);
                fwrite(&s, 4, 1, f);
            } else {
                fwrite(&v, 4, 1, f);
            }
        }
    }
    fclose(f);
}

/* ==== A capture session ==== */

struct session {
    uv_loop_t loop;
    struct audio_capture cap;
    float *got;
    size_t n, want; /* samples received, samples to collect */
    int rate;       /* rate the callback saw */
    int closed;
    /* fault injection: at sample `at`, run `fault` once */
    size_t at;
    void (*fault)(struct session *s);
    int faulted;
    uv_timer_t restore;    /* used by the vanishing-device test */
    size_t reopen_at;      /* samples received when the device came back */
    uint64_t frames_at_cb; /* stats.frames seen inside the last callback */
};

static void on_closed(struct audio_capture *c) {
    struct session *s = (struct session *)((char *)c - offsetof(struct session, cap));
    s->closed = 1;
}

static void on_audio(void *ctx, const float *x, size_t n, int rate) {
    struct session *s = ctx;
    struct audio_capture_stats st;

    audio_capture_get_stats(&s->cap, &st);
    s->frames_at_cb = st.frames;
    s->rate = rate;
    if (s->reopen_at == 0 && st.reopens > 0)
        s->reopen_at = s->n;
    for (size_t i = 0; i < n && s->n < s->want; i++)
        s->got[s->n++] = x[i];
    if (s->fault && !s->faulted && s->n >= s->at) {
        s->faulted = 1;
        s->fault(s);
    }
    if (s->n >= s->want)
        audio_capture_close(&s->cap, on_closed);
}

static int open_wait; /* cfg.wait for the next session_open */

static int session_open(struct session *s, const char *dev, int rate, int format, int channels,
                        size_t want, char *msg, size_t msglen) {
    struct audio_capture_cfg cc = {.device = dev,
                                   .rate = rate,
                                   .period_ms = 10,
                                   .format = format,
                                   .channels = channels,
                                   .wait = open_wait};

    memset(s, 0, sizeof *s);
    cr_assert(eq(int, uv_loop_init(&s->loop), 0));
    s->want = want;
    s->got = calloc(want ? want : 1, sizeof(float));
    return audio_capture_open(&s->cap, &s->loop, &cc, on_audio, s, msg, msglen);
}

static void session_run(struct session *s) {
    uv_run(&s->loop, UV_RUN_DEFAULT);
    cr_assert(eq(int, s->closed, 1), "on_closed ran");
    cr_assert(eq(int, uv_loop_close(&s->loop), 0), "every handle closed");
}

static void expect_signal(const float *got, size_t n, size_t offset, const char *what) {
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        if (got[i] != signal_at(i + offset)) {
            if (!bad)
                first = i;
            bad++;
        }
    }
    cr_assert(eq(sz, bad, 0), "%s: %zu samples differ, first at %zu (got %g want %g)", what, bad,
              first, bad ? (double)got[first] : 0.0, bad ? (double)signal_at(first + offset) : 0.0);
}

/* ==== Formats, rates and channels ==== */

struct fmt_case {
    int rate;
    enum fmt fmt;
    int channels;
};

ParameterizedTestParameters(audio_capture, captures_the_file_exactly) {
    static struct fmt_case cases[] = {
        {16000, F_S16, 1}, {44100, F_S16, 1}, {48000, F_S16, 1}, {16000, F_S32, 1},
        {44100, F_S32, 2}, {48000, F_S32, 1}, {48000, F_S16, 2}, {16000, F_FLOAT, 1},
    };
    return cr_make_param_array(struct fmt_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct fmt_case *fc, audio_capture, captures_the_file_exactly, .init = setup,
                  .fini = teardown, .timeout = 20) {
    static const int fmts[] = {AUDIO_CAPTURE_FMT_S16_LE, AUDIO_CAPTURE_FMT_S32_LE,
                               AUDIO_CAPTURE_FMT_FLOAT_LE};
    static const char *names[] = {"S16_LE", "S32_LE", "FLOAT_LE"};
    struct session s;
    struct audio_capture_stats st;
    char msg[256] = "";
    size_t n = (size_t)fc->rate / 2; /* 0.5 s */

    write_raw(infile, fc->fmt, fc->channels, n + (size_t)fc->rate); /* + 1 s spare */
    alsa_config(NULL, 0);
    /* S16 uses the automatic choice (S16_LE first); the others force theirs. */
    int format = fc->fmt == F_S16 ? AUDIO_CAPTURE_FMT_AUTO : fmts[fc->fmt];
    cr_assert(
        eq(int, session_open(&s, "testmic", fc->rate, format, fc->channels, n, msg, sizeof msg), 0),
        "%s", msg);
    audio_capture_get_stats(&s.cap, &st);
    cr_assert(eq(int, st.open, 1));
    cr_assert(eq(int, st.rate, fc->rate));
    cr_assert(eq(int, st.channels, fc->channels));
    cr_assert(eq(str, (char *)st.format, (char *)names[fc->fmt]));
    session_run(&s);
    cr_assert(eq(int, s.rate, fc->rate));
    cr_assert(eq(sz, s.n, n));
    expect_signal(s.got, n, 0, "captured samples");
    audio_capture_get_stats(&s.cap, &st);
    cr_assert(eq(u32, st.xruns, 0));
    cr_assert(eq(u32, st.reopens, 0));
    cr_assert(eq(int, st.open, 0), "closed");
    cr_assert(ge(u64, st.frames, (uint64_t)n), "stream time counts every sample delivered");
    cr_assert(eq(u64, s.frames_at_cb, st.frames), "stats include the block being delivered");
    free(s.got);
}

/* plug converts a 2-channel S32_LE device at 48 kHz to what we ask for. */
Test(audio_capture, through_plug_from_a_s32_stereo_device, .init = setup, .fini = teardown,
     .timeout = 20) {
    struct session s;
    struct audio_capture_stats st;
    char msg[256] = "";
    size_t n = 24000;

    write_raw(infile, F_S32, 2, n + 48000);
    alsa_config("S32_LE", 48000);
    cr_assert(eq(int, session_open(&s, "testplug", 48000, 0, 0, n, msg, sizeof msg), 0), "%s", msg);
    audio_capture_get_stats(&s.cap, &st);
    cr_assert(eq(int, st.rate, 48000));
    cr_assert(eq(int, st.channels, 1));
    cr_assert(eq(str, (char *)st.format, "S16_LE"));
    session_run(&s);
    /* plug mixes the two channels (x and -x) down to mono, or takes the
     * first: either way every sample is 0 or x within one S16 step. */
    size_t zero = 0, same = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabsf(s.got[i]) <= 1.0f / 32768.0f)
            zero++;
        else if (fabsf(s.got[i] - signal_at(i)) <= 1.0f / 32768.0f)
            same++;
    }
    cr_assert(eq(sz, zero + same, n), "plug output is a mix or channel 0 of the device");
    free(s.got);
}

/* ==== Faults ==== */

static void fault_drop(struct session *s) {
    /* Stops the stream under the reader's feet, as an overrun does. */
    cr_assert(eq(int, snd_pcm_drop(s->cap.pcm), 0));
}

Test(audio_capture, stopped_stream_is_restarted_and_counted, .init = setup, .fini = teardown,
     .timeout = 20) {
    struct session s;
    struct audio_capture_stats st;
    char msg[256] = "";
    size_t n = 32000;

    write_raw(infile, F_S16, 1, n + 16000);
    alsa_config(NULL, 0);
    cr_assert(eq(int, session_open(&s, "testmic", 16000, 0, 0, n, msg, sizeof msg), 0), "%s", msg);
    s.at = 8000;
    s.fault = fault_drop;
    session_run(&s);
    audio_capture_get_stats(&s.cap, &st);
    cr_assert(eq(int, s.faulted, 1));
    cr_assert(eq(u32, st.xruns, 1), "one stop recovered and counted");
    cr_assert(eq(u32, st.reopens, 0), "recovered in place, not reopened");
    cr_assert(eq(sz, s.n, n));
    expect_signal(s.got, n, 0, "samples across the restart");
    free(s.got);
}

/* Puts the device back once a reopen attempt has failed (checked every
 * 10 ms, so the order of events does not depend on the machine's load). */
static void on_restore(uv_timer_t *t) {
    struct session *s = t->data;
    struct audio_capture_stats st;
    char moved[600];

    audio_capture_get_stats(&s->cap, &st);
    if (st.errors == 0)
        return;
    snprintf(moved, sizeof moved, "%s.away", infile);
    cr_assert(eq(int, rename(moved, infile), 0));
    uv_close((uv_handle_t *)t, NULL);
}

/* The device vanishes: its hardware configuration is torn down under the
 * reader (reads now fail with -EIO and snd_pcm_prepare cannot help, as with
 * an unplugged device) and its input file disappears, so reopening fails
 * until a timer puts the file back. */
static void fault_vanish(struct session *s) {
    char moved[600];

    cr_assert(eq(int, snd_pcm_hw_free(s->cap.pcm), 0));
    snprintf(moved, sizeof moved, "%s.away", infile);
    cr_assert(eq(int, rename(infile, moved), 0));
    uv_timer_init(&s->loop, &s->restore);
    s->restore.data = s;
    uv_timer_start(&s->restore, on_restore, 10, 10);
}

Test(audio_capture, vanished_device_is_reopened_with_backoff, .init = setup, .fini = teardown,
     .timeout = 20) {
    struct session s;
    struct audio_capture_stats st;
    char msg[256] = "";
    size_t n = 24000, at = 8000;

    write_raw(infile, F_S16, 1, 48000);
    alsa_config(NULL, 0);
    cr_assert(eq(int, session_open(&s, "testmic", 16000, 0, 0, n, msg, sizeof msg), 0), "%s", msg);
    s.at = at;
    s.fault = fault_vanish;
    session_run(&s);
    audio_capture_get_stats(&s.cap, &st);
    cr_log_info("after the loss: %u failed reopen attempt(s), %u reopen(s), resumed at sample %zu",
                st.errors, st.reopens, s.reopen_at);
    cr_assert(eq(u32, st.reopens, 1), "reopened once the device was back");
    cr_assert(ge(u32, st.errors, 1), "a failed reopen attempt while it was gone");
    cr_assert(eq(int, st.open, 0), "closed at the end");
    cr_assert(eq(sz, s.n, n));
    /* Before the fault: the file from its start. After the reopen: the file
     * from its start again (a new stream). */
    cr_assert(ge(sz, s.reopen_at, at));
    expect_signal(s.got, at, 0, "before the fault");
    expect_signal(s.got + s.reopen_at, n - s.reopen_at, 0, "after the reopen");
    free(s.got);
}

/* ==== Errors and lifetimes ==== */

Test(audio_capture, unknown_device_gives_a_clear_error, .init = setup, .fini = teardown,
     .timeout = 10) {
    struct session s;
    char msg[256] = "";
    int rc;

    alsa_config(NULL, 0);
    rc = session_open(&s, "nosuchmic", 16000, 0, 0, 10, msg, sizeof msg);
    cr_assert(lt(int, rc, 0));
    cr_assert(not(eq(ptr, strstr(msg, "nosuchmic"), NULL)), "names the device: %s", msg);
    cr_assert(not(eq(ptr, strstr(msg, snd_strerror(rc)), NULL)), "gives the reason: %s", msg);
    cr_log_info("%s", msg);
    /* A failed open leaves nothing on the loop. */
    uv_run(&s.loop, UV_RUN_DEFAULT);
    cr_assert(eq(int, uv_loop_close(&s.loop), 0));
    free(s.got);
}

Test(audio_capture, missing_input_file_gives_a_clear_error, .init = setup, .fini = teardown,
     .timeout = 10) {
    struct session s;
    char msg[256] = "";

    alsa_config(NULL, 0); /* infile never written */
    cr_assert(lt(int, session_open(&s, "testmic", 16000, 0, 0, 10, msg, sizeof msg), 0));
    cr_assert(not(eq(ptr, strstr(msg, "testmic: cannot open for capture: "), NULL)), "%s", msg);
    cr_assert(eq(int, uv_loop_close(&s.loop), 0));
    free(s.got);
}

Test(audio_capture, bad_settings_are_rejected, .timeout = 10) {
    struct session s;
    char msg[256] = "";

    cr_assert(eq(int, session_open(&s, "testmic", -5, 0, 0, 10, msg, sizeof msg), -EINVAL));
    cr_assert(not(eq(ptr, strstr(msg, "testmic"), NULL)), "%s", msg);
    cr_assert(eq(int, uv_loop_close(&s.loop), 0));
    free(s.got);
}

Test(audio_capture, close_right_after_open, .init = setup, .fini = teardown, .timeout = 10) {
    struct session s;
    char msg[256] = "";

    write_raw(infile, F_S16, 1, 16000);
    alsa_config(NULL, 0);
    cr_assert(eq(int, session_open(&s, "testmic", 16000, 0, 0, 16000, msg, sizeof msg), 0), "%s",
              msg);
    audio_capture_close(&s.cap, on_closed);
    session_run(&s);
    cr_assert(eq(sz, s.n, 0), "no audio callback after close");
    free(s.got);
}

/* ==== A device with a pollable descriptor (uv_poll path) ==== */

Test(audio_capture, poll_device_captures_the_file_exactly, .init = setup, .fini = teardown,
     .timeout = 20) {
    static const int rates[] = {16000, 48000};
    for (int k = 0; k < 2; k++) {
        struct session s;
        struct audio_capture_stats st;
        char msg[256] = "";
        size_t n = (size_t)rates[k] / 2;

        write_raw(infile, F_S16, 1, n);
        alsa_config(NULL, 0);
        cr_assert(eq(int, session_open(&s, "pollmic", rates[k], 0, 0, n, msg, sizeof msg), 0), "%s",
                  msg);
        cr_assert(eq(int, s.cap.n_polls, 1), "one uv_poll_t on the timerfd");
        cr_assert(eq(int, s.cap.tick, 0), "no tick: the descriptor is pollable");
        audio_capture_get_stats(&s.cap, &st);
        cr_assert(eq(int, st.rate, rates[k]));
        session_run(&s);
        cr_assert(eq(sz, s.n, n));
        expect_signal(s.got, n, 0, "captured samples");
        audio_capture_get_stats(&s.cap, &st);
        /* A loaded machine may stall the loop for a buffer (20 ms at this
         * speed) and overrun: that is allowed, and loses nothing here. */
        cr_log_info("%d Hz: %u overrun(s)", rates[k], st.xruns);
        free(s.got);
    }
}

static void fault_stall(struct session *s) {
    /* The loop stops serving the device for 3 buffers' worth of periods. */
    struct audio_capture_stats st;
    audio_capture_get_stats(&s->cap, &st);
    uint64_t us = 3ull * s->cap.buffer_frames * 1000000ull / (uint64_t)st.rate / POLLMIC_SPEED;
    usleep((useconds_t)us);
}

Test(audio_capture, stalled_loop_overruns_and_recovers, .init = setup, .fini = teardown,
     .timeout = 20) {
    struct session s;
    struct audio_capture_stats st;
    char msg[256] = "";
    size_t n = 16000;

    write_raw(infile, F_S16, 1, n);
    alsa_config(NULL, 0);
    cr_assert(eq(int, session_open(&s, "pollmic", 16000, 0, 0, n, msg, sizeof msg), 0), "%s", msg);
    s.at = 4000;
    s.fault = fault_stall;
    session_run(&s);
    audio_capture_get_stats(&s.cap, &st);
    cr_assert(ge(u32, st.xruns, 1), "the overrun is counted");
    cr_assert(eq(u32, st.reopens, 0), "and recovered in place");
    cr_assert(eq(sz, s.n, n));
    /* The test device does not skip its file during an overrun. */
    expect_signal(s.got, n, 0, "samples across the overrun");
    free(s.got);
}

/* Plugs the device back once a reopen attempt has failed. */
static void on_replug(uv_timer_t *t) {
    struct session *s = t->data;
    struct audio_capture_stats st;

    audio_capture_get_stats(&s->cap, &st);
    if (st.errors == 0)
        return;
    cr_assert(eq(int, unlink(unplug), 0));
    uv_close((uv_handle_t *)t, NULL);
}

static void fault_unplug(struct session *s) {
    FILE *f = fopen(unplug, "w");
    cr_assert(not(eq(ptr, f, NULL)));
    fclose(f);
    uv_timer_init(&s->loop, &s->restore);
    s->restore.data = s;
    uv_timer_start(&s->restore, on_replug, 10, 10);
}

Test(audio_capture, unplugged_device_is_reopened, .init = setup, .fini = teardown, .timeout = 20) {
    struct session s;
    struct audio_capture_stats st;
    char msg[256] = "";
    size_t n = 12000, at = 4000;

    write_raw(infile, F_S16, 1, n);
    alsa_config(NULL, 0);
    cr_assert(eq(int, session_open(&s, "pollmic", 16000, 0, 0, n, msg, sizeof msg), 0), "%s", msg);
    s.at = at;
    s.fault = fault_unplug;
    session_run(&s);
    audio_capture_get_stats(&s.cap, &st);
    cr_log_info("unplugged: %u failed reopen attempt(s), %u reopen(s), resumed at sample %zu",
                st.errors, st.reopens, s.reopen_at);
    cr_assert(eq(u32, st.reopens, 1));
    cr_assert(ge(u32, st.errors, 1), "opening failed while unplugged");
    cr_assert(eq(sz, s.n, n));
    cr_assert(ge(sz, s.reopen_at, at));
    expect_signal(s.got, at, 0, "before the unplug");
    expect_signal(s.got + s.reopen_at, n - s.reopen_at, 0, "after the reopen");
    free(s.got);
}

/* Plugs the device in once a retry from the backoff timer has failed too
 * (the first failure is the open itself). */
static void on_plug_in(uv_timer_t *t) {
    struct session *s = t->data;
    struct audio_capture_stats st;

    audio_capture_get_stats(&s->cap, &st);
    if (st.errors < 2)
        return;
    cr_assert(eq(int, unlink(unplug), 0));
    uv_close((uv_handle_t *)t, NULL);
}

/* A device that is not plugged in when capture starts (a USB microphone
 * that comes up after the daemon): a plain open fails with -ENODEV; with
 * cfg.wait the open succeeds with the device closed, the backoff timer
 * retries it, and once it is plugged in its input arrives from the start. */
Test(audio_capture, device_missing_at_open_is_waited_for, .init = setup, .fini = teardown,
     .timeout = 20) {
    struct session s;
    struct audio_capture_stats st;
    char msg[256] = "";
    size_t n = 8000;

    write_raw(infile, F_S16, 1, n);
    alsa_config(NULL, 0);
    FILE *f = fopen(unplug, "w");
    cr_assert(not(eq(ptr, f, NULL)));
    fclose(f);

    cr_assert(eq(int, session_open(&s, "pollmic", 16000, 0, 0, n, msg, sizeof msg), -ENODEV), "%s",
              msg);
    cr_assert(eq(int, uv_loop_close(&s.loop), 0), "a failed open leaves nothing");
    free(s.got);

    open_wait = 1;
    cr_assert(eq(int, session_open(&s, "pollmic", 16000, 0, 0, n, msg, sizeof msg), 0), "%s", msg);
    cr_log_info("%s", msg);
    cr_assert(not(eq(ptr, strstr(msg, "pollmic: cannot open for capture: "), NULL)), "%s", msg);
    audio_capture_get_stats(&s.cap, &st);
    cr_assert(eq(int, st.open, 0), "not open yet");
    cr_assert(eq(u32, st.errors, 1), "the failed first attempt is counted");
    uv_timer_init(&s.loop, &s.restore);
    s.restore.data = &s;
    uv_timer_start(&s.restore, on_plug_in, 10, 10);
    session_run(&s);
    audio_capture_get_stats(&s.cap, &st);
    cr_log_info("%u failed attempt(s) before the device appeared", st.errors);
    cr_assert(ge(u32, st.errors, 2), "the backoff timer retried");
    cr_assert(eq(u32, st.reopens, 1), "opened once it was there");
    cr_assert(eq(sz, s.n, n));
    expect_signal(s.got, n, 0, "samples from the late device");
    free(s.got);
}

/* test_daemon_same_audio.c: one recording gives kwsd the same events however it arrives.
 *
 * A fixed recording (espeak-ng words between stretches of low noise) is fed
 * to the built kwsd twice over: once as a file (`kwsd --input`, read in
 * blocks of 4096 samples), and ten times through ALSA's file plugin over a
 * null slave (DESIGN.md) with capture periods from 5 ms to 200 ms, where
 * the samples arrive in periods, at the plugin's pace, after the device's
 * start-up. Every run's events, as a ZeroMQ subscriber receives them, must
 * be identical: keyword, score (as published, 6 decimals), start_ms and
 * end_ms. The network is chaotic enough that one sample lost, repeated or
 * moved shifts a score in its third decimal, so equality here means every
 * sample reached the network once, in order, whatever the block sizes.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "kwsd_test.h"

#define KWSD KWSD_BINARY_DIR "/daemon/kwsd"
#define MODEL KWSD_SOURCE_DIR "/models/commands.kwsm"
#define MAX_EVENTS 64

static char dir[256];
static char endpoint[300];

static const char *dat_path(const char *name) {
    return kt_path(dir, name);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/kwsd-same-XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(dir), NULL)));
    snprintf(endpoint, sizeof endpoint, "ipc://%s/events", dir);
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* dir/speech.wav and dir/audio.raw at rate Hz (kt_make_speech): six words
 * 1 s apart between stretches of low noise, or with digital_silence of
 * exact zeros, as scripts/run's demo makes it (the network then rests,
 * KWS_HOLD_MS). Returns its length in ms. */
static int64_t make_recording(int rate, int digital_silence) {
    static const char *const words[] = {"yes", "stop", "go", "left", "no", "up"};
    return kt_make_speech(dir, words, 6, rate, 1.0, digital_silence ? NULL : "whitenoise vol 0.003");
}

/* kwsd.yaml for ALSA's file plugin (device testmic) at rate Hz with a
 * period of period_ms and a detection threshold, and asound.conf defining
 * testmic over dir/audio.raw. */
static void write_configs(int rate, int period_ms, const char *threshold) {
    char text[2048];
    snprintf(text, sizeof text,
             "audio:\n  device: testmic\n  rate: %d\n  period_ms: %d\n"
             "model:\n  path: %s\n"
             "detection:\n  threshold: %s\n"
             "transport:\n  endpoints: [ \"%s\" ]\n  heartbeat_s: 0.5\n"
             "logging:\n  level: info\n",
             rate, period_ms, MODEL, threshold, endpoint);
    kt_write_file(dat_path("kwsd.yaml"), text);
    kt_write_testmic(dir, "audio.raw");
}

static pid_t start_kwsd(const char *arg1, const char *arg2, const char *arg3, const char *arg4) {
    pid_t pid = fork();
    cr_assert(ge(int, pid, 0));
    if (pid == 0) {
        char alsa[400];
        snprintf(alsa, sizeof alsa, "/usr/share/alsa/alsa.conf:%s", dat_path("asound.conf"));
        setenv("ALSA_CONFIG_PATH", alsa, 1);
        int fd = open(dat_path("kwsd.log"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        execl(KWSD, KWSD, "--config", dat_path("kwsd.yaml"), arg1, arg2, arg3, arg4, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static const char *read_log(void) {
    return kt_read_text(dat_path("kwsd.log"));
}

/* One run's events, each as "keyword score start_ms end_ms". */
struct events {
    int n;
    char line[MAX_EVENTS][96];
};

/* Receives [topic, JSON] messages until the daemon has reported frames
 * covering the recording (heartbeat "frames") or, with until_exit, until
 * pid exits. Events that end after the recording (end_ms > len_ms) are not
 * part of it and are left out. */
static void collect(void *sock, pid_t pid, int64_t len_ms, struct events *ev, int *exited) {
    int64_t end = kt_now_ms() + 90000;
    double frames = 0;
    *exited = 0;
    ev->n = 0;
    while (kt_now_ms() < end && frames * 10.0 < (double)len_ms + 500.0) {
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 200) <= 0) {
            int status;
            if (pid > 0 && waitpid(pid, &status, WNOHANG) == pid) {
                *exited = 1;
                break;
            }
            continue;
        }
        char topic[128], body[4096];
        int n = zmq_recv(sock, topic, sizeof topic - 1, 0);
        cr_assert(gt(int, n, 0));
        topic[n] = '\0';
        n = zmq_recv(sock, body, sizeof body - 1, 0);
        cr_assert(gt(int, n, 0));
        body[n < (int)sizeof body ? n : (int)sizeof body - 1] = '\0';
        json_t *j = json_loads(body, 0, NULL);
        cr_assert(not(eq(ptr, j, NULL)), "JSON: %s", body);
        if (strcmp(topic, "kws.status") == 0) {
            frames = json_number_value(json_object_get(j, "frames"));
        } else {
            json_int_t end_ms = json_integer_value(json_object_get(j, "end_ms"));
            if (end_ms <= len_ms && ev->n < MAX_EVENTS)
                snprintf(ev->line[ev->n++], sizeof ev->line[0], "%s %.6f %lld %lld",
                         json_string_value(json_object_get(j, "keyword")),
                         json_number_value(json_object_get(j, "score")),
                         (long long)json_integer_value(json_object_get(j, "start_ms")),
                         (long long)end_ms);
        }
        json_decref(j);
    }
}

static void *sub_open(void *ctx) {
    void *s = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "kws.", 4);
    cr_assert(eq(int, zmq_connect(s, endpoint), 0));
    return s;
}

static void log_events(const char *what, const struct events *ev) {
    cr_log_info("%s: %d event(s)", what, ev->n);
    for (int i = 0; i < ev->n; i++)
        cr_log_info("  %s", ev->line[i]);
}

/* The recording at rate Hz (with digital_silence, zeros between the words)
 * through `kwsd --input`, then 10 times through ALSA at 5 period sizes;
 * threshold is detection.threshold. */
static void same_events(int rate, int digital_silence, const char *threshold) {
    static const int periods[] = {5, 10, 20, 50, 200};
    struct events want, got;
    int exited;

    int64_t len_ms = make_recording(rate, digital_silence);
    void *ctx = zmq_ctx_new();

    /* The reference: the file itself, after 1 s for the subscriber to join. */
    write_configs(rate, 20, threshold);
    void *sock = sub_open(ctx);
    pid_t pid = start_kwsd("--input", dat_path("speech.wav"), "--input-delay", "1000");
    collect(sock, pid, len_ms, &want, &exited);
    zmq_close(sock);
    int rc = exited ? 0 : kt_wait_exit(pid, 30000);
    cr_assert(eq(int, rc, 0), "kwsd --input; log:\n%s", read_log());
    log_events("kwsd --input", &want);
    cr_assert(ge(int, want.n, 2), "the recording has events to compare; log:\n%s", read_log());

    for (int run = 0; run < 10; run++) {
        int period = periods[run % 5];
        write_configs(rate, period, threshold);
        sock = sub_open(ctx);
        pid = start_kwsd(NULL, NULL, NULL, NULL);
        collect(sock, pid, len_ms, &got, &exited);
        zmq_close(sock);
        cr_assert(not(exited), "kwsd runs; log:\n%s", read_log());
        kill(pid, SIGTERM);
        cr_assert(eq(int, kt_wait_exit(pid, 10000), 0), "log:\n%s", read_log());
        char what[64];
        snprintf(what, sizeof what, "ALSA run %d, period %d ms", run + 1, period);
        log_events(what, &got);
        cr_expect(eq(int, got.n, want.n), "%s: as many events as the file", what);
        for (int i = 0; i < got.n && i < want.n; i++)
            cr_expect(eq(str, got.line[i], want.line[i]), "%s: event %d", what, i);
        if (got.n != want.n)
            cr_log_info("log:\n%s", read_log());
    }
    zmq_ctx_term(ctx);
}

TestSuite(kwsd_same_audio, .init = setup, .fini = teardown, .timeout = 600);

/* 16 kHz with low noise between the words: no resampling, no rest. */
Test(kwsd_same_audio, noise_at_16k) {
    struct stat st;
    if (stat(MODEL, &st) != 0)
        cr_skip_test("no trained model at %s yet", MODEL);
    same_events(16000, 0, "0.3");
}

/* scripts/run's demo: digital silence between the words, so the network
 * rests in the lead-in, and the default threshold. At 48 kHz the samples
 * also pass through the resampler in blocks of every size. */
Test(kwsd_same_audio, digital_silence_at_48k) {
    struct stat st;
    if (stat(MODEL, &st) != 0)
        cr_skip_test("no trained model at %s yet", MODEL);
    same_events(48000, 1, "model");
}

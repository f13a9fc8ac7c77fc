/* test_daemon_kwsd.c: kwsd as a whole process, through real ALSA and ZeroMQ.
 *
 * Each test writes an ALSA configuration whose device "testmic" is ALSA's
 * file plugin over a null slave (DESIGN.md), starts the built kwsd binary
 * with ALSA_CONFIG_PATH pointing at it, and talks to it with a real ZeroMQ
 * subscriber on an ipc:// endpoint in a temporary directory. Speech is made
 * at test time by espeak-ng and sox. Tests that only need a running daemon
 * use a small model with fixed weights written by the test itself; the
 * end-to-end test uses the shipped models/commands.kwsm.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "kws/snn.h"
#include "kws/frontend.h"
#include "kt_model.h"
#include "kwsd_test.h"
#include "model_file_internal.h"

#define KWSD KWSD_BINARY_DIR "/daemon/kwsd"
#define MODEL KWSD_SOURCE_DIR "/models/commands.kwsm"
#define EVAL KWSD_BINARY_DIR "/tools/kwsd-eval"

static char dir[256];
static char endpoint[300];

/* ==== Helpers ==== */

static const char *dat_path(const char *name) {
    return kt_path(dir, name);
}

/* dir/audio.raw (16 kHz): the words between stretches of digital silence
 * (kt_make_speech). Returns seconds. */
static double make_speech(const char *const *words, int n, double gap) {
    return (double)kt_make_speech(dir, words, n, 16000, gap, NULL) / 1000.0;
}

/* Quiet with a little noise, for tests that need audio but no speech. */
static double make_noise(double secs) {
    kt_sh("sox -n -r 16000 -c 1 -b 16 -e signed %s/audio.wav synth %.2f whitenoise vol 0.01", dir,
       secs);
    kt_sh("sox %s/audio.wav -t raw -e signed -b 16 -r 16000 -c 1 %s/audio.raw", dir, dir);
    return secs;
}

static void write_alsa_conf(void) {
    kt_write_testmic(dir, "audio.raw");
}

/* The config every test starts from: device, model, the test's endpoint
 * with a fast heartbeat; transport_extra goes inside the transport section
 * and extra after everything, both verbatim (NULL for none). */
static void write_config_full(const char *model, const char *device, const char *transport_extra,
                              const char *extra) {
    char text[2048], path[300];
    snprintf(text, sizeof text,
             "audio:\n  device: %s\n  rate: 16000\n"
             "model:\n  path: %s\n"
             "transport:\n  endpoints: [ \"%s\" ]\n  heartbeat_s: 0.5\n%s"
             "logging:\n  level: info\n%s",
             device, model, endpoint, transport_extra ? transport_extra : "", extra ? extra : "");
    snprintf(path, sizeof path, "%s/kwsd.yaml", dir);
    kt_write_file(path, text);
}

static void write_config(const char *model, const char *extra) {
    write_config_full(model, "testmic", NULL, extra);
}

/* A small valid model with fixed weights: the default front end, one hidden
 * layer, three classes. It detects nothing in particular; it lets a test run
 * the daemon without a trained model. */
static void write_small_model_bias(const char *path, float b_yes, float b_unknown);

static void write_small_model(const char *path) {
    write_small_model_bias(path, 0.0f, 0.0f);
}

/* The small model with readout biases of its own: with b_yes well above the
 * silence bias, "yes" fires whenever the refractory period allows. */
static void write_small_model_bias(const char *path, float b_yes, float b_unknown) {
    struct snn_cfg cfg;
    struct snn_model m = {0};

    memset(&cfg, 0, sizeof cfg);
    audio_fe_cfg_default(&cfg.fe);
    cfg.n_in = audio_fe_n_out(&cfg.fe);
    cfg.n_layers = 1;
    cfg.layer[0] = (struct snn_layer_cfg){.n = 8,
                                          .rec = SNN_REC_CONV,
                                          .k = 3,
                                          .d_max = 4,
                                          .beta = 0.5f,
                                          .gain = 1.0f,
                                          .thresh = 1.0f};
    cfg.n_classes = 3;
    cfg.out_beta = 0.9f;
    cfg.out_gain = 1.0f;
    strcpy(cfg.labels[0], "_silence_");
    strcpy(cfg.labels[1], "yes");
    strcpy(cfg.labels[2], "_unknown_");
    cr_assert(eq(int, snn_model_init(&m, &cfg), 0));
    for (size_t i = 0; i < m.n_params; i++)
        m.mem[i] = 0.01f * (float)((i * 7919) % 13) - 0.05f;
    for (int i = 0; i < 8; i++)
        m.p.delay[0][i] = (float)(i % 4);
    m.p.b_out[0] = 5.0f; /* silence dominates: nothing fires */
    if (b_yes != 0.0f) {
        m.p.b_out[0] = 0.0f;
        m.p.b_out[1] = b_yes;
    }
    m.p.b_out[2] = b_unknown;
    snn_model_prepare(&m);
    cr_assert(eq(int, snn_model_save(&m, path), 0));
    snn_model_free(&m);
}

/* Rewrites the model at path with the int32 header word at off set to value
 * and the checksum recomputed: a model that only the field checks refuse. */
static void edit_model(const char *path, size_t off, int32_t value) {
    FILE *f = fopen(path, "r+b");
    cr_assert(not(eq(ptr, f, NULL)));
    uint8_t b[1 << 16];
    size_t len = fread(b, 1, sizeof b, f);
    cr_assert(gt(sz, len, off + 4));
    for (int i = 0; i < 4; i++)
        b[off + i] = (uint8_t)((uint32_t)value >> (8 * i));
    uint32_t crc = kwsm__crc32(b, len - 4);
    for (int i = 0; i < 4; i++)
        b[len - 4 + i] = (uint8_t)(crc >> (8 * i));
    rewind(f);
    cr_assert(eq(sz, fwrite(b, 1, len, f), len));
    fclose(f);
}

/* The hostile models of the model loader's reproducers, each with the
 * start of the message that refuses it. */
struct hostile {
    const char *name;
    const char *want;
};

static const struct hostile hostile_models[] = {
    {"rate0.kwsm", "fe.sample_rate: 0 out of range [4000, 96000]"},
    {"fft511.kwsm", "fe.n_fft: 511 must be even and in [16, 8192]"},
    {"mels20.kwsm", "n_in: 160, but the front end makes 80 spike channels per frame"},
    {"deep.kwsm", "file size: 1536 bytes, the header announces"},
    {"fifo.kwsm", "/fifo.kwsm: a FIFO, not a regular file"},
};

/* Writes the hostile models into dir: the small model with sample rate 0,
 * with an odd FFT size, with 20 bands behind its 160 inputs; the header of
 * a network of four recurrent layers with input delays (21 tensors, the
 * stack overflow) without its payload; and a FIFO with no writer. */
static void write_hostile_models(void) {
    write_small_model(dat_path("rate0.kwsm"));
    edit_model(dat_path("rate0.kwsm"), 1184, 0);
    write_small_model(dat_path("fft511.kwsm"));
    edit_model(dat_path("fft511.kwsm"), 1184 + 12, 511);
    write_small_model(dat_path("mels20.kwsm"));
    edit_model(dat_path("mels20.kwsm"), 1184 + 16, 20);

    struct snn_cfg cfg;
    struct snn_model m = {0};
    memset(&cfg, 0, sizeof cfg);
    audio_fe_cfg_default(&cfg.fe);
    cfg.n_in = audio_fe_n_out(&cfg.fe);
    cfg.n_layers = 4;
    for (int l = 0; l < 4; l++)
        cfg.layer[l] = (struct snn_layer_cfg){.n = 8,
                                              .rec = SNN_REC_DENSE,
                                              .d_max = 4,
                                              .beta = 0.5f,
                                              .gain = 1.0f,
                                              .thresh = 1.0f,
                                              .in_d_max = l ? 2 : 0};
    cfg.n_classes = 2;
    cfg.out_beta = 0.9f;
    cfg.out_gain = 1.0f;
    strcpy(cfg.labels[0], "_silence_");
    strcpy(cfg.labels[1], "yes");
    cr_assert(eq(int, snn_model_init(&m, &cfg), 0));
    cr_assert(eq(int, snn_model_save(&m, dat_path("deep.kwsm")), 0));
    snn_model_free(&m);
    cr_assert(eq(int, truncate(dat_path("deep.kwsm"), KWSM_HEADER_BYTES), 0));

    cr_assert(eq(int, mkfifo(dat_path("fifo.kwsm"), 0600), 0));
}

/* Starts kwsd with the test's ALSA config and config file, plus up to two
 * more arguments (NULL for none); stdout and stderr go to dir/kwsd.log. */
static pid_t start_kwsd2(const char *arg1, const char *arg2) {
    return kt_spawn_kwsd(dir, arg1, arg2);
}

static pid_t start_kwsd(const char *extra_arg) {
    return start_kwsd2(extra_arg, NULL);
}

static char *read_log(void) {
    return kt_read_text(dat_path("kwsd.log"));
}

struct sub {
    void *ctx, *sock;
};

static void sub_open(struct sub *s, const char *prefix, int rcvhwm) {
    s->ctx = zmq_ctx_new();
    s->sock = zmq_socket(s->ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger);
    if (rcvhwm)
        zmq_setsockopt(s->sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    zmq_setsockopt(s->sock, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
    cr_assert(eq(int, zmq_connect(s->sock, endpoint), 0));
}

static void sub_close(struct sub *s) {
    zmq_close(s->sock);
    zmq_ctx_term(s->ctx);
}

/* Receives one [topic, json] message within ms; returns the parsed JSON
 * (caller decrefs) and the topic, or NULL on timeout. */
static json_t *sub_recv(struct sub *s, char *topic, size_t topic_len, int ms) {
    zmq_pollitem_t it = {.socket = s->sock, .events = ZMQ_POLLIN};
    char body[4096];
    int more = 0;
    size_t more_len = sizeof more;

    if (zmq_poll(&it, 1, ms) <= 0)
        return NULL;
    int n = zmq_recv(s->sock, topic, topic_len - 1, 0);
    cr_assert(gt(int, n, 0));
    topic[n < (int)topic_len ? n : (int)topic_len - 1] = '\0';
    zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &more_len);
    cr_assert(eq(int, more, 1), "message has a second frame");
    n = zmq_recv(s->sock, body, sizeof body - 1, 0);
    cr_assert(gt(int, n, 0));
    body[n] = '\0';
    json_error_t err;
    json_t *j = json_loads(body, 0, &err);
    cr_assert(not(eq(ptr, j, NULL)), "well-formed JSON: %s (%s)", body, err.text);
    return j;
}

static int has_number(json_t *j, const char *key) {
    return json_is_number(json_object_get(j, key));
}

static int has_integer(json_t *j, const char *key) {
    return json_is_integer(json_object_get(j, key));
}

static int has_string(json_t *j, const char *key) {
    return json_is_string(json_object_get(j, key));
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/kwsd-test-XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(dir), NULL)));
    snprintf(endpoint, sizeof endpoint, "ipc://%s/events", dir);
    write_alsa_conf();
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(kwsd, .init = setup, .fini = teardown, .timeout = 120);

/* ==== End to end with the shipped model ==== */

/* The events kwsd-eval --wav finds in dir/speech.wav (keyword and end time
 * in ms, in order, at most max); the evaluator runs the same front end,
 * network and detector as the daemon. Returns their number. */
static int eval_events(char kw[][SNN_LABEL_LEN], int64_t *end_ms, int max) {
    kt_sh("%s --model %s --wav %s/speech.wav > %s/eval.txt 2>&1", EVAL, MODEL, dir, dir);
    FILE *f = fopen(dat_path("eval.txt"), "r");
    cr_assert(not(eq(ptr, f, NULL)));
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        double t;
        char word[SNN_LABEL_LEN];
        if (sscanf(line, " %lf s: %31s (", &t, word) == 2 && n < max) {
            snprintf(kw[n], SNN_LABEL_LEN, "%s", word);
            end_ms[n++] = (int64_t)llround(t * 1000.0);
        }
    }
    fclose(f);
    return n;
}

/* The spoken words go through ALSA, the front end, the network, the
 * detector and ZeroMQ, and the subscriber gets exactly the events the
 * evaluator computes offline from the same audio: same keywords, same order,
 * same times. How many of the words a model hears is its accuracy, which
 * kwsd-eval measures on thousands of clips (docs/MODELS.md); this test needs
 * the shipped model to hear at least one of them and no word that was not
 * spoken. After the file the plugin feeds digital silence, which no
 * evaluator run covers; one event there is tolerated. */
Test(kwsd, spoken_keywords_reach_a_subscriber) {
    static const char *const words[] = {"yes", "stop", "go"};
    char topic[128], want_kw[16][SNN_LABEL_LEN], got_kw[16][SNN_LABEL_LEN];
    int64_t want_ms[16], got_ms[16];
    int n_got = 0, heartbeats = 0, other = 0, late = 0;
    struct stat st;

    if (stat(MODEL, &st) != 0)
        cr_skip_test("no trained model at %s yet", MODEL);
    if (stat(EVAL, &st) != 0)
        cr_skip_test("kwsd-eval is not built");
    double secs = make_speech(words, 3, 1.2);
    int n_want = eval_events(want_kw, want_ms, 16);
    /* The default detection settings, as a user gets them. */
    write_config(MODEL, NULL);
    struct sub s;
    sub_open(&s, "kws.", 0);
    pid_t pid = start_kwsd(NULL);

    /* Read until kwsd reports it has processed the whole file. */
    int64_t end = kt_now_ms() + 60000;
    double frames = 0;
    while (kt_now_ms() < end && frames < secs * 100.0) {
        json_t *j = sub_recv(&s, topic, sizeof topic, 500);
        if (!j)
            continue;
        if (strcmp(topic, "kws.status") == 0) {
            heartbeats++;
            frames = json_number_value(json_object_get(j, "frames"));
            cr_assert(has_number(j, "uptime_s"), "field %s", "uptime_s");
            cr_assert(has_number(j, "rtf"), "field %s", "rtf");
            cr_assert(has_integer(j, "xruns"), "field %s", "xruns");
        } else {
            const char *kw = json_string_value(json_object_get(j, "keyword"));
            cr_assert(not(eq(ptr, (void *)kw, NULL)));
            cr_assert(eq(str, topic + strlen("kws.detection."), (char *)kw));
            cr_assert(has_number(j, "score"), "field %s", "score");
            cr_assert(has_number(j, "threshold"), "field %s", "threshold");
            cr_assert(has_integer(j, "start_ms"), "field %s", "start_ms");
            cr_assert(has_integer(j, "end_ms"), "field %s", "end_ms");
            cr_assert(has_integer(j, "seq"), "field %s", "seq");
            cr_assert(has_string(j, "time"), "field %s", "time");
            cr_assert(has_string(j, "model"), "field %s", "model");
            /* past the file's end the plugin repeats its last period: the
             * evaluator has no audio there to compare with */
            int64_t at = json_integer_value(json_object_get(j, "end_ms"));
            if ((double)at > secs * 1000.0) {
                late++;
                cr_log_info("kwsd: %s at %lld ms, after the file's end", kw, (long long)at);
            } else if (n_got < 16) {
                snprintf(got_kw[n_got], SNN_LABEL_LEN, "%s", kw);
                got_ms[n_got++] = at;
                int found = 0;
                for (int i = 0; i < 3; i++)
                    found |= strcmp(kw, words[i]) == 0;
                other += !found;
            }
        }
        json_decref(j);
    }
    kill(pid, SIGTERM);
    int rc = kt_wait_exit(pid, 10000);
    sub_close(&s);
    cr_log_info("kwsd log:\n%s", read_log());
    cr_assert(ge(int, heartbeats, 1), "heartbeats arrive");
    for (int i = 0; i < n_got; i++)
        cr_log_info("kwsd: %s at %lld ms", got_kw[i], (long long)got_ms[i]);
    kt_sh("cat %s/eval.txt >&2", dir);
    cr_expect(ge(int, n_want, 1), "the shipped model hears at least one spoken keyword");
    cr_expect(eq(int, n_got, n_want), "kwsd and kwsd-eval find as many events");
    for (int i = 0; i < n_got && i < n_want; i++) {
        cr_expect(eq(str, got_kw[i], want_kw[i]), "event %d", i);
        cr_expect(le(i64, llabs(got_ms[i] - want_ms[i]), 10), "event %d: %lld against %lld ms", i,
                  (long long)got_ms[i], (long long)want_ms[i]);
    }
    cr_expect(eq(int, other, 0), "no event for a word that was not spoken (%d)", other);
    cr_expect(le(int, late, 1), "at most one event in the silence after the file (%d)", late);
    cr_assert(eq(int, rc, 0), "kwsd exits cleanly on SIGTERM");
    /* a recording that is not there is an error that names it */
    int erc = system(EVAL " --model " MODEL " --wav /nonexistent.wav > /dev/null 2>&1");
    cr_expect(eq(int, WEXITSTATUS(erc), 1));
}

/* ==== Daemon behaviour with a small model ==== */

Test(kwsd, runs_without_subscribers_and_stops_on_sigterm) {
    make_noise(2.0);
    write_small_model(dat_path("small.kwsm"));
    write_config(dat_path("small.kwsm"), NULL);
    pid_t pid = start_kwsd(NULL);
    usleep(1500000);
    cr_assert(eq(int, kill(pid, 0), 0), "still running with nobody listening");
    kill(pid, SIGTERM);
    int rc = kt_wait_exit(pid, 10000);
    char *log = read_log();
    cr_assert(eq(int, rc, 0), "exit status; log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "ready"), NULL)), "log:\n%s", log);
}

Test(kwsd, a_subscriber_that_never_reads_does_not_stall_it) {
    char topic[128];
    make_noise(3.0);
    write_small_model(dat_path("small.kwsm"));
    write_config_full(dat_path("small.kwsm"), "testmic", "  queue: 1\n", NULL);
    struct sub stuck, live;
    sub_open(&stuck, "", 1);
    pid_t pid = start_kwsd(NULL);
    usleep(300000);
    sub_open(&live, "kws.status", 0);
    double first = -1, last = -1;
    int n = 0;
    int64_t end = kt_now_ms() + 8000;
    while (kt_now_ms() < end && n < 6) {
        json_t *j = sub_recv(&live, topic, sizeof topic, 1000);
        if (!j)
            continue;
        double f = json_number_value(json_object_get(j, "frames"));
        if (first < 0)
            first = f;
        last = f;
        n++;
        json_decref(j);
    }
    kill(pid, SIGTERM);
    int rc = kt_wait_exit(pid, 10000);
    sub_close(&live);
    sub_close(&stuck);
    cr_assert(ge(int, n, 4), "heartbeats keep coming (%d); log:\n%s", n, read_log());
    cr_assert(gt(dbl, last, first), "audio frames keep advancing (%.0f -> %.0f)", first, last);
    cr_assert(eq(int, rc, 0));
}

Test(kwsd, reload_with_a_broken_file_keeps_the_running_config) {
    char topic[128];
    make_noise(3.0);
    write_small_model(dat_path("small.kwsm"));
    write_config(dat_path("small.kwsm"), NULL);
    struct sub s;
    sub_open(&s, "kws.status", 0);
    pid_t pid = start_kwsd(NULL);
    json_t *j = sub_recv(&s, topic, sizeof topic, 5000);
    cr_assert(not(eq(ptr, j, NULL)), "first heartbeat");
    json_decref(j);

    kt_write_file(dat_path("kwsd.yaml"), "detection:\n  threshold: 7\n  smoothing: 3\n");
    kill(pid, SIGHUP);
    usleep(500000);
    cr_assert(eq(int, kill(pid, 0), 0), "still running after a bad reload");
    /* Still publishing on the old endpoint with the old settings. */
    j = sub_recv(&s, topic, sizeof topic, 3000);
    cr_assert(not(eq(ptr, j, NULL)), "heartbeats continue after the failed reload");
    json_decref(j);

    kt_sh("cp %s %s", dat_path("small.kwsm"), dat_path("other.kwsm"));
    write_config(dat_path("other.kwsm"), "detection:\n  threshold: 0.9\n");
    kill(pid, SIGHUP);
    /* Heartbeats now name the reloaded model. */
    int named = 0;
    int64_t until = kt_now_ms() + 5000;
    while (!named && kt_now_ms() < until) {
        j = sub_recv(&s, topic, sizeof topic, 1000);
        if (!j)
            continue;
        const char *m = json_string_value(json_object_get(j, "model"));
        named = m && strcmp(m, "other.kwsm") == 0;
        json_decref(j);
    }
    cr_expect(named, "a heartbeat names other.kwsm after the reload");
    kill(pid, SIGTERM);
    int rc = kt_wait_exit(pid, 10000);
    sub_close(&s);
    char *log = read_log();
    cr_assert(eq(int, rc, 0), "log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "reload of"), NULL)), "failed reload logged:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "kwsd.yaml:2:14: detection.threshold"), NULL)),
              "the error names file, line, column and key:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "kwsd.yaml:3:3: detection.smoothing"), NULL)),
              "every error is reported:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "reloaded"), NULL)), "the good reload applied:\n%s", log);
}

/* Receives detections until the log holds `until` (NULL: no condition) and
 * at least `more` further events have come, appending their end_ms to t. */
static int collect_end_ms(pid_t pid, struct sub *s, int64_t *t, int n, int max, const char *until,
                          int more) {
    char topic[128];
    int64_t end = kt_now_ms() + 20000;
    int seen = 0, after = 0;

    while (kt_now_ms() < end && n < max && (!seen || after < more)) {
        json_t *j = sub_recv(s, topic, sizeof topic, 500);
        if (!j)
            continue;
        t[n++] = json_integer_value(json_object_get(j, "end_ms"));
        json_decref(j);
        after += seen;
        seen = seen || !until || strstr(read_log(), until);
    }
    if (!seen || after < more)
        kill(pid, SIGKILL);
    cr_assert(seen && after >= more, "\"%s\" then %d events; log:\n%s", until ? until : "", more,
              read_log());
    return n;
}

/* The event clock across reloads. The model fires "yes" on every frame the
 * 200 ms refractory period allows, so events come every 210 ms of stream
 * time. A reload to the same model file keeps the network state and the
 * detector: that rhythm goes on exactly through it. A reload to another
 * model, or to other smoothing, starts a new detector, but on the same
 * clock: end_ms never goes back and the refractory period still holds. */
Test(kwsd, reload_keeps_the_event_clock) {
    static const char det[] = "detection:\n  threshold: 0.5\n  smoothing_ms: 50\n"
                              "  refractory_ms: 200\n";
    static const char det2[] = "detection:\n  threshold: 0.5\n  smoothing_ms: 80\n"
                               "  refractory_ms: 200\n";
    int64_t t[400];
    int n = 0;

    make_noise(3.0);
    write_small_model_bias(dat_path("a.kwsm"), 5.0f, 0.0f);
    write_small_model_bias(dat_path("b.kwsm"), 5.0f, 0.5f);
    write_config(dat_path("a.kwsm"), det);
    struct sub s;
    sub_open(&s, "kws.detection.", 0);
    pid_t pid = start_kwsd(NULL);

    n = collect_end_ms(pid, &s, t, n, 400, NULL, 4);
    kill(pid, SIGHUP); /* the same file */
    n = collect_end_ms(pid, &s, t, n, 400, "same model: network state and detector kept", 4);
    kt_sh("cp %s %s", dat_path("a.kwsm"), dat_path("a2.kwsm")); /* the same contents, another path */
    write_config(dat_path("a2.kwsm"), det);
    kill(pid, SIGHUP);
    n = collect_end_ms(pid, &s, t, n, 400, "a2.kwsm, 3 classes; same model: network state and", 4);
    int same = n; /* events received before the model changed */
    write_config(dat_path("b.kwsm"), det);
    kill(pid, SIGHUP);
    n = collect_end_ms(pid, &s, t, n, 400, "b.kwsm, 3 classes; new model", 4);
    write_config(dat_path("b.kwsm"), det2);
    kill(pid, SIGHUP);
    n = collect_end_ms(pid, &s, t, n, 400, "same model: network state kept, new smoothing", 4);
    kill(pid, SIGTERM);
    int rc = kt_wait_exit(pid, 10000);
    sub_close(&s);
    cr_assert(eq(int, rc, 0), "log:\n%s", read_log());

    for (int i = 1; i < n; i++)
        cr_log_info("end_ms %lld (+%lld)", (long long)t[i], (long long)(t[i] - t[i - 1]));
    for (int i = 1; i < same; i++)
        cr_assert(eq(i64, t[i] - t[i - 1], 210), "event %d: %lld ms after the one before", i,
                  (long long)(t[i] - t[i - 1]));
    for (int i = 1; i < n; i++)
        cr_assert(ge(i64, t[i] - t[i - 1], 210), "event %d: %lld ms after the one before", i,
                  (long long)(t[i] - t[i - 1]));
}

/* Each hostile model, sent by SIGHUP, is refused with its message while the
 * daemon keeps running on the old model (heartbeats, frames advancing);
 * then a good model with another front end is built whole and swapped in. */
Test(kwsd, reload_to_a_hostile_model_keeps_the_old_one) {
    char topic[128];
    make_noise(3.0);
    write_small_model(dat_path("small.kwsm"));
    write_hostile_models();
    write_config(dat_path("small.kwsm"), NULL);
    struct sub s;
    sub_open(&s, "kws.status", 0);
    pid_t pid = start_kwsd(NULL);
    json_t *j = sub_recv(&s, topic, sizeof topic, 5000);
    cr_assert(not(eq(ptr, j, NULL)), "first heartbeat; log:\n%s", read_log());
    double frames = json_number_value(json_object_get(j, "frames"));
    json_decref(j);

    for (size_t i = 0; i < sizeof hostile_models / sizeof hostile_models[0]; i++) {
        write_config(dat_path(hostile_models[i].name), NULL);
        kill(pid, SIGHUP);
        /* Two heartbeats later: one may have been on its way. */
        for (int n = 0; n < 2; n++) {
            j = sub_recv(&s, topic, sizeof topic, 3000);
            cr_assert(not(eq(ptr, j, NULL)), "%s: heartbeats go on; log:\n%s",
                      hostile_models[i].name, read_log());
            const char *model = json_string_value(json_object_get(j, "model"));
            cr_assert(eq(str, (char *)(model ? model : ""), "small.kwsm"), "%s",
                      hostile_models[i].name);
            double f = json_number_value(json_object_get(j, "frames"));
            json_decref(j);
            if (n == 1)
                cr_assert(gt(dbl, f, frames), "%s: the old model still runs (%.0f -> %.0f)",
                          hostile_models[i].name, frames, f);
            frames = f;
        }
        cr_assert(eq(int, kill(pid, 0), 0), "%s: still running", hostile_models[i].name);
        cr_assert(not(eq(ptr, strstr(read_log(), hostile_models[i].want), NULL)),
                  "%s refused with \"%s\"; log:\n%s", hostile_models[i].name,
                  hostile_models[i].want, read_log());
    }

    /* A valid model with 20 bands x 4 levels (80 inputs): its front end is
     * built at the running rate before the swap. */
    struct kws_frontend_cfg fe;
    audio_fe_cfg_default(&fe);
    fe.n_mels = 20;
    kt_save_tiny_model(dat_path("narrow.kwsm"), &fe, "yes", 0);
    write_config(dat_path("narrow.kwsm"), NULL);
    kill(pid, SIGHUP);
    int named = 0;
    double f0 = -1, f1 = -1;
    int64_t until = kt_now_ms() + 6000;
    while (named < 2 && kt_now_ms() < until) {
        j = sub_recv(&s, topic, sizeof topic, 1000);
        if (!j)
            continue;
        const char *model = json_string_value(json_object_get(j, "model"));
        if (model && strcmp(model, "narrow.kwsm") == 0) {
            f1 = json_number_value(json_object_get(j, "frames"));
            if (named++ == 0)
                f0 = f1;
        }
        json_decref(j);
    }
    kill(pid, SIGTERM);
    int rc = kt_wait_exit(pid, 10000);
    sub_close(&s);
    char *log = read_log();
    cr_assert(eq(int, named, 2), "heartbeats name narrow.kwsm; log:\n%s", log);
    cr_assert(gt(dbl, f1, f0), "frames advance on the new front end (%.0f -> %.0f)", f0, f1);
    cr_assert(eq(int, rc, 0), "log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "narrow.kwsm, 2 classes; new model"), NULL)), "log:\n%s",
              log);
}

/* kwsd --check-config --model F refuses each hostile model with its
 * message and exit status 1, at once (the FIFO has no writer). */
Test(kwsd, check_config_refuses_hostile_models) {
    char arg[512];
    write_small_model(dat_path("small.kwsm"));
    write_hostile_models();
    write_config(dat_path("small.kwsm"), NULL);
    for (size_t i = 0; i < sizeof hostile_models / sizeof hostile_models[0]; i++) {
        snprintf(arg, sizeof arg, "--model=%s", dat_path(hostile_models[i].name));
        pid_t pid = start_kwsd2("--check-config", arg);
        int rc = kt_wait_exit(pid, 5000);
        char *log = read_log();
        cr_assert(eq(int, rc, 1), "%s: exit status; log:\n%s", hostile_models[i].name, log);
        cr_assert(not(eq(ptr, strstr(log, hostile_models[i].want), NULL)),
                  "%s refused with \"%s\"; log:\n%s", hostile_models[i].name,
                  hostile_models[i].want, log);
    }
    pid_t pid = start_kwsd("--check-config");
    cr_assert(eq(int, kt_wait_exit(pid, 5000), 0), "the small model passes; log:\n%s", read_log());
}

/* A capture device that is not there at start (a USB microphone that comes
 * up after kwsd; here a name the ALSA configuration does not define yet) is
 * waited for, not fatal: kwsd logs it by name, tells systemd READY=1 and
 * STATUS=waiting..., publishes heartbeats with no frames, retries with
 * backoff, and captures once the configuration gains the device. */
Test(kwsd, a_device_missing_at_start_is_waited_for) {
    char topic[128], sock_path[300], buf[256];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int ready = 0, waiting = 0, listening = 0;

    make_noise(3.0);
    write_small_model(dat_path("small.kwsm"));
    write_config(dat_path("small.kwsm"), NULL);
    kt_write_file(dat_path("asound.conf"), "# testmic is not here yet\n");
    snprintf(sock_path, sizeof sock_path, "%s/notify", dir);
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    cr_assert(ge(int, fd, 0));
    cr_assert(eq(int, bind(fd, (struct sockaddr *)&sa, sizeof sa), 0));
    struct sub s;
    sub_open(&s, "kws.status", 0);
    setenv("NOTIFY_SOCKET", sock_path, 1);
    pid_t pid = start_kwsd(NULL);
    unsetenv("NOTIFY_SOCKET");

    /* Without the device: heartbeats with no audio, until a retry from the
     * backoff timer (not just the first open) has failed. */
    int beats = 0;
    double open_errors = 0; /* the heartbeat's count of failed opens, never falling */
    int64_t end = kt_now_ms() + 10000;
    while (kt_now_ms() < end && (beats < 2 || !strstr(read_log(), "(attempt 3,"))) {
        json_t *j = sub_recv(&s, topic, sizeof topic, 500);
        if (!j)
            continue;
        beats++;
        double oe = json_number_value(json_object_get(j, "capture_open_errors"));
        cr_assert(ge(dbl, oe, open_errors));
        open_errors = oe;
        cr_assert(eq(dbl, json_number_value(json_object_get(j, "frames")), 0.0));
        cr_assert(eq(dbl, json_number_value(json_object_get(j, "rate")), 0.0));
        json_decref(j);
    }
    cr_assert(ge(int, beats, 2), "heartbeats while waiting; log:\n%s", read_log());
    cr_assert(eq(int, kill(pid, 0), 0), "still running; log:\n%s", read_log());

    /* The device appears (written whole, then renamed into place). */
    char tmp[400];
    snprintf(tmp, sizeof tmp, "%s", dat_path("asound.conf"));
    write_alsa_conf();
    kt_sh("mv %s %s.new && mv %s.new %s", tmp, tmp, tmp, tmp);
    double frames = 0;
    end = kt_now_ms() + 15000;
    while (kt_now_ms() < end && frames <= 0) {
        json_t *j = sub_recv(&s, topic, sizeof topic, 500);
        if (!j)
            continue;
        frames = json_number_value(json_object_get(j, "frames"));
        double oe = json_number_value(json_object_get(j, "capture_open_errors"));
        cr_assert(ge(dbl, oe, open_errors));
        open_errors = oe;
        json_decref(j);
    }
    cr_assert(ge(dbl, open_errors, 2.0), "the heartbeat counts the failed opens");
    kill(pid, SIGTERM);
    int rc = kt_wait_exit(pid, 10000);
    sub_close(&s);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (poll(&p, 1, 0) > 0) {
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        if (n <= 0)
            break;
        buf[n] = '\0';
        ready += strcmp(buf, "READY=1") == 0;
        waiting += strcmp(buf, "STATUS=waiting for capture device testmic") == 0 && !listening;
        listening += strcmp(buf, "STATUS=listening on testmic") == 0;
    }
    close(fd);
    char *log = read_log();
    cr_assert(gt(dbl, frames, 0.0), "frames once the device is there; log:\n%s", log);
    cr_assert(eq(int, rc, 0), "log:\n%s", log);
    cr_assert(eq(int, ready, 1), "READY=1 while waiting, once");
    cr_assert(eq(int, waiting, 1), "STATUS says it waits, before it listens");
    cr_assert(eq(int, listening, 1), "STATUS says it listens once the device is there");
    cr_assert(not(eq(ptr, strstr(log, "capture testmic is not there yet"), NULL)), "log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "testmic: cannot open for capture"), NULL)),
              "the reason, naming the device; log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "capture testmic appeared after"), NULL)), "log:\n%s", log);
}

Test(kwsd, check_config_reports_every_error_and_a_corrupt_model) {
    write_small_model(dat_path("small.kwsm"));
    kt_write_file(dat_path("kwsd.yaml"),
               "audio:\n  rate: 441000\n  devcie: x\nmodel:\n  path: /nonexistent.kwsm\n");
    pid_t pid = start_kwsd("--check-config");
    int rc = kt_wait_exit(pid, 10000);
    char *log = read_log();
    cr_assert(eq(int, rc, 1), "log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "kwsd.yaml:2:9: audio.rate"), NULL)), "log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "kwsd.yaml:3:3: audio.devcie"), NULL)), "log:\n%s", log);

    /* A valid config whose model is corrupt. */
    kt_sh("head -c 100 %s > %s", dat_path("small.kwsm"), dat_path("bad.kwsm"));
    write_config(dat_path("bad.kwsm"), NULL);
    pid = start_kwsd("--check-config");
    rc = kt_wait_exit(pid, 10000);
    log = read_log();
    cr_assert(eq(int, rc, 1), "log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "bad.kwsm"), NULL)), "the error names the model:\n%s", log);

    write_config(dat_path("small.kwsm"), NULL);
    pid = start_kwsd("--check-config");
    rc = kt_wait_exit(pid, 10000);
    cr_assert(eq(int, rc, 0), "log:\n%s", read_log());
}

Test(kwsd, input_file_runs_to_its_end_and_exits) {
    make_noise(4.0);
    kt_sh("sox -r 16000 -c 1 -b 16 -e signed %s/audio.wav -r 48000 -c 2 %s/stereo48k.wav", dir, dir);
    write_small_model(dat_path("small.kwsm"));
    write_config(dat_path("small.kwsm"), NULL);
    pid_t pid = start_kwsd2("--input", dat_path("stereo48k.wav"));
    int rc = kt_wait_exit(pid, 30000);
    char *log = read_log();
    cr_assert(eq(int, rc, 0), "log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "end of"), NULL)), "log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "4.0 s of audio"), NULL)), "the whole file:\n%s", log);

    /* A file that breaks off is a decode error, not its end: a FLAC file
     * cut short, and one with 16 bytes overwritten in its middle. */
    kt_sh("sox %s/audio.wav %s/whole.flac", dir, dir);
    kt_sh("head -c 30000 %s/whole.flac > %s/cut.flac", dir, dir);
    kt_sh("cp %s/whole.flac %s/corrupt.flac && printf '\\377\\377\\377\\377\\377\\377\\377\\377"
       "\\377\\377\\377\\377\\377\\377\\377\\377' | dd of=%s/corrupt.flac bs=1 seek=20000 "
       "conv=notrunc 2>/dev/null",
       dir, dir, dir);
    static const char *const broken[] = {"cut.flac", "corrupt.flac"};
    for (int i = 0; i < 2; i++) {
        pid = start_kwsd2("--input", dat_path(broken[i]));
        rc = kt_wait_exit(pid, 30000);
        log = read_log();
        cr_assert(eq(int, rc, 1), "%s: exit status; log:\n%s", broken[i], log);
        cr_assert(not(eq(ptr, strstr(log, "decode error after"), NULL)), "%s: log:\n%s", broken[i],
                  log);
        cr_assert(eq(ptr, strstr(log, "end of"), NULL), "%s: not an end; log:\n%s", broken[i], log);
    }
    pid = start_kwsd2("--input", dat_path("whole.flac"));
    rc = kt_wait_exit(pid, 30000);
    cr_assert(eq(int, rc, 0), "the whole FLAC file; log:\n%s", read_log());

    /* A file that is not audio is a clear error naming it. */
    kt_write_file(dat_path("notaudio.wav"), "hello");
    pid = start_kwsd2("--input", dat_path("notaudio.wav"));
    rc = kt_wait_exit(pid, 10000);
    log = read_log();
    cr_assert(eq(int, rc, 1), "log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "notaudio.wav"), NULL)), "log:\n%s", log);
}

/* A muted input gives exact zeros. After a second of them the network rests
 * (KWS_HOLD_MS) and the log says so; the next sound wakes it. The file is at
 * 48 kHz in stereo, so the zeros also pass through the resampler. */
/* The "detected ..." lines of dir/kwsd.log, one per event, joined. */
static void detections_in_log(char *out, size_t len) {
    const char *p = read_log();
    size_t used = 0;
    out[0] = '\0';
    while ((p = strstr(p, "detected \"")) != NULL) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
        if (used + n < len) {
            memcpy(out + used, p, n);
            used += n;
            out[used] = '\0';
        }
        p += n;
    }
}

/* One NaN sample in a float WAV, in the quiet lead-in before the words,
 * used to poison the front end's PCEN smoother for good: nothing after it
 * was ever detected again. The sample is replaced by 0 at the file
 * boundary, counted and logged once, and the detections are exactly those
 * of the same file with a 0 in its place (keyword, score and time): the
 * network is chaotic enough that any changed sample may move a score in its
 * third decimal, so the clean file itself is not the reference. */
Test(kwsd, one_nan_sample_changes_no_detection_after_it) {
    const char *words[] = {"yes", "stop", "go"};
    char clean[4096], dirty[4096];
    struct stat st;

    if (stat(MODEL, &st) != 0)
        cr_skip_test("no trained model at %s yet", MODEL);
    make_speech(words, 3, 1.2);
    kt_sh("sox %s/speech.wav -e floating-point -b 32 %s/clean.wav", dir, dir);
    write_config(MODEL, NULL);
    pid_t pid = start_kwsd2("--input", dat_path("clean.wav"));
    cr_assert(eq(int, kt_wait_exit(pid, 60000), 0), "log:\n%s", read_log());
    detections_in_log(clean, sizeof clean);
    cr_assert(not(eq(str, clean, "")), "the clean file has detections; log:\n%s", read_log());

    /* The same file with the sample at 1.0 s set to 0, and to NaN. */
    static const uint8_t zero_le[4] = {0, 0, 0, 0}, nan_le[4] = {0x00, 0x00, 0xc0, 0x7f};
    const char *names[2] = {"zero.wav", "nan.wav"};
    const uint8_t *vals[2] = {zero_le, nan_le};
    for (int k = 0; k < 2; k++) {
        kt_sh("cp %s/clean.wav %s/%s", dir, dir, names[k]);
        FILE *f = fopen(dat_path(names[k]), "r+b");
        cr_assert(not(eq(ptr, f, NULL)));
        uint8_t head[4096];
        size_t got = fread(head, 1, sizeof head, f);
        size_t data = 0;
        for (size_t i = 12; i + 8 <= got && !data; i++)
            if (memcmp(head + i, "data", 4) == 0)
                data = i + 8;
        cr_assert(gt(sz, data, 0), "a data chunk");
        cr_assert(eq(int, fseek(f, (long)(data + 4 * 16000), SEEK_SET), 0));
        cr_assert(eq(sz, fwrite(vals[k], 1, 4, f), 4));
        fclose(f);
    }
    pid = start_kwsd2("--input", dat_path("zero.wav"));
    cr_assert(eq(int, kt_wait_exit(pid, 60000), 0), "log:\n%s", read_log());
    detections_in_log(clean, sizeof clean);
    pid = start_kwsd2("--input", dat_path("nan.wav"));
    cr_assert(eq(int, kt_wait_exit(pid, 60000), 0), "log:\n%s", read_log());
    detections_in_log(dirty, sizeof dirty);
    char *log = read_log();
    cr_assert(eq(str, dirty, clean), "log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "input has samples that are NaN, infinite or beyond"), NULL)),
              "logged; log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "1 input samples replaced by 0"), NULL)), "counted; log:\n%s",
              log);
}

Test(kwsd, a_muted_input_rests_the_network_until_sound_returns) {
    kt_sh("sox -n -r 16000 -c 1 -b 16 -e signed %s/n1.wav synth 1.0 whitenoise vol 0.01", dir);
    kt_sh("sox -D -n -r 16000 -c 1 -b 16 -e signed %s/z.wav trim 0 2.5", dir); /* -D: no dither */
    kt_sh("sox -D %s/n1.wav %s/z.wav %s/n1.wav -r 48000 -c 2 %s/muted.wav", dir, dir, dir, dir);
    write_small_model(dat_path("small.kwsm"));
    write_config(dat_path("small.kwsm"), NULL);
    pid_t pid = start_kwsd2("--input", dat_path("muted.wav"));
    int rc = kt_wait_exit(pid, 30000);
    char *log = read_log();
    cr_assert(eq(int, rc, 0), "log:\n%s", log);
    const char *rest = strstr(log, "input is digital silence");
    cr_assert(not(eq(ptr, (void *)rest, NULL)), "log:\n%s", log);
    const char *back = strstr(rest, "sound is back after");
    cr_assert(not(eq(ptr, (void *)back, NULL)), "log:\n%s", log);
    double secs = 0.0;
    cr_assert(eq(int, sscanf(back, "sound is back after %lf s", &secs), 1));
    cr_expect(ge(dbl, secs, 2.0), "the silence lasted %g s", secs);
    cr_expect(le(dbl, secs, 2.5), "the silence lasted %g s", secs);
}

/* SIGHUP from the start. systemd or a user may ask for a reload as soon as
 * the process exists; SIGHUP's default action would end it. kwsd keeps
 * SIGHUP blocked from main's first statement until its handler is in place,
 * so one that comes earlier becomes a reload. The window before main (the
 * dynamic loader) is outside any program's reach, so the signals start at
 * kwsd's first file access, the opening of its configuration (inotify),
 * and go on every 2 ms through start-up, ten times over. */
Test(kwsd, sighup_during_start_up_is_a_reload) {
    write_small_model(dat_path("small.kwsm"));
    make_noise(2.0);
    write_config(dat_path("small.kwsm"), NULL);
    for (int run = 0; run < 10; run++) {
        int in = inotify_init1(IN_CLOEXEC);
        cr_assert(ge(int, in, 0));
        cr_assert(ge(int, inotify_add_watch(in, dat_path("kwsd.yaml"), IN_OPEN), 0));
        pid_t pid = start_kwsd(NULL);
        struct pollfd p = {.fd = in, .events = POLLIN};
        cr_assert(eq(int, poll(&p, 1, 10000), 1), "run %d: kwsd opens its configuration", run);
        int sent = 0, status = 0;
        pid_t gone = 0;
        for (int64_t end = kt_now_ms() + 60; kt_now_ms() < end && !gone; sent++) {
            kill(pid, SIGHUP);
            usleep(2000);
            gone = waitpid(pid, &status, WNOHANG);
        }
        close(in);
        cr_assert(eq(int, gone, 0), "run %d: kwsd ended (status %#x) after %d SIGHUPs; log:\n%s",
                  run, status, sent, read_log());
        int64_t end = kt_now_ms() + 10000;
        while (kt_now_ms() < end && !strstr(read_log(), "reloaded"))
            usleep(10000);
        kill(pid, SIGTERM);
        int rc = kt_wait_exit(pid, 10000);
        char *log = read_log();
        cr_assert(eq(int, rc, 0), "run %d: log:\n%s", run, log);
        cr_assert(not(eq(ptr, strstr(log, "ready"), NULL)), "run %d: started; log:\n%s", run, log);
        cr_assert(not(eq(ptr, strstr(log, "reloaded"), NULL)),
                  "run %d: a SIGHUP reloaded; log:\n%s", run, log);
    }
}

/* systemd's notify protocol over a real AF_UNIX datagram socket: READY=1
 * after start, WATCHDOG=1 while audio flows, STOPPING=1 on SIGTERM. */
Test(kwsd, tells_systemd_ready_watchdog_and_stopping) {
    char sock_path[300], buf[256];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int ready = 0, watchdog = 0, stopping = 0;

    make_noise(3.0);
    write_small_model(dat_path("small.kwsm"));
    write_config(dat_path("small.kwsm"), NULL);
    snprintf(sock_path, sizeof sock_path, "%s/notify", dir);
    cr_assert(lt(sz, strlen(sock_path), sizeof sa.sun_path));
    memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    cr_assert(ge(int, fd, 0));
    cr_assert(eq(int, bind(fd, (struct sockaddr *)&sa, sizeof sa), 0));
    setenv("NOTIFY_SOCKET", sock_path, 1);
    setenv("WATCHDOG_USEC", "200000", 1); /* ask for a tick every 100 ms */
    pid_t pid = start_kwsd(NULL);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");

    int64_t end = kt_now_ms() + 10000;
    int sent_term = 0;
    while (kt_now_ms() < end && !stopping) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 200) > 0) {
            ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
            if (n <= 0)
                continue;
            buf[n] = '\0';
            ready += strcmp(buf, "READY=1") == 0;
            watchdog += strcmp(buf, "WATCHDOG=1") == 0;
            stopping += strcmp(buf, "STOPPING=1") == 0;
        }
        if (ready && watchdog >= 3 && !sent_term) {
            kill(pid, SIGTERM);
            sent_term = 1;
        }
    }
    int rc = kt_wait_exit(pid, 10000);
    close(fd);
    cr_assert(eq(int, ready, 1), "READY=1 once; log:\n%s", read_log());
    cr_assert(ge(int, watchdog, 3), "WATCHDOG=1 while audio flows");
    cr_assert(eq(int, stopping, 1), "STOPPING=1 on SIGTERM");
    cr_assert(eq(int, rc, 0));
}

/* test_transport_wyoming.c: kwsd's Wyoming wake-word server, end to end.
 *
 * Each test starts the built kwsd with transport.wyoming on a free
 * 127.0.0.1 port and its microphone on ALSA's file plugin over a null slave
 * (DESIGN.md), then talks to it with a Wyoming client written here from the
 * protocol's documentation: each event is a JSON header line
 * {"type", "data", "data_length", "payload_length"} and '\n', then
 * data_length bytes of JSON data, then payload_length bytes of payload.
 * Recordings are made at test time by espeak-ng and sox, in formats other
 * than the model's 16 kHz, so the server's resampling is exercised.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "kws/snn.h"
#include "kwsd_test.h"

/* a boolean for criterion/new/assert.h */
#define IS(x) eq(int, !!(x), 1)

#define KWSD KWSD_BINARY_DIR "/daemon/kwsd"
#define MODEL KWSD_SOURCE_DIR "/models/commands.kwsm"
#define DIGITS KWSD_SOURCE_DIR "/models/digits.kwsm" /* a front end of its own */
#define EVAL KWSD_BINARY_DIR "/tools/kwsd-eval"

static char dir[256];
static int port;
static pid_t kwsd_pid;

/* ==== Helpers ==== */

static const char *dat_path(const char *name) {
    return kt_path(dir, name);
}

static char *read_log(void) {
    return kt_read_text(dat_path("kwsd.log"));
}

/* Whether kwsd's log (all of it: read_log keeps only its start) has a line
 * holding s. */
static int log_has(const char *s) {
    return kt_file_has(dat_path("kwsd.log"), s);
}

/* Recordings: kw.raw says "yes" then "go" (48 kHz, 2 channels, 32-bit);
 * none.raw says "house bird happy" (22.05 kHz, mono, 16-bit), which the
 * shipped model hears as no keyword. Each has 1 s of quiet around words.
 * mic.raw, the microphone's input (16 kHz S16_LE mono), says "go" after
 * 4 s of quiet and ends in 3 s of quiet. */
static void make_recordings(void) {
    static const char *const words[] = {"yes", "go", "house", "bird", "happy"};
    for (int i = 0; i < 5; i++)
        kt_sh("espeak-ng -v en-us -s 150 -w %s/w-%s.wav '%s'", dir, words[i], words[i]);
    kt_sh("cd %s && sox -D -n -r 22050 -c 1 -b 16 q.wav trim 0 1.0", dir);
    kt_sh("cd %s && sox -D q.wav w-yes.wav q.wav w-go.wav q.wav q.wav kw.wav", dir);
    kt_sh("cd %s && sox kw.wav -t raw -e signed -b 32 -r 48000 -c 2 kw.raw", dir);
    kt_sh("cd %s && sox kw.wav -t raw -e signed -b 16 kw22.raw", dir);
    kt_sh("cd %s && sox -D q.wav w-house.wav q.wav w-bird.wav q.wav w-happy.wav q.wav none.wav", dir);
    kt_sh("cd %s && sox none.wav -t raw -e signed -b 16 none.raw", dir);
    kt_sh("cd %s && sox -n -r 16000 -c 1 -b 16 lead.wav trim 0 4.0 && "
       "sox w-go.wav -r 16000 -c 1 -b 16 go16.wav norm -3 && "
       "sox -n -r 16000 -c 1 -b 16 tail.wav trim 0 3.0 && "
       "sox lead.wav go16.wav tail.wav -t raw -e signed -b 16 mic.raw",
       dir);
}

/* Starts kwsd: microphone testmic (the file plugin on mic.raw), threshold
 * 0.9 (these tests are about the protocol; the model's accuracy is measured
 * elsewhere), ZeroMQ on ipc, Wyoming on port. Waits until the port accepts
 * and kwsd says it is ready. */
static int two_models; /* start_kwsd loads MODEL and DIGITS, "three" at 0.45 */

static void start_kwsd(void) {
    char text[2048], models[1024];
    kt_write_testmic(dir, "mic.raw");
    port = kt_free_port();
    if (two_models)
        snprintf(models, sizeof models, "  paths: [ %s, %s ]\n", MODEL, DIGITS);
    else
        snprintf(models, sizeof models, "  path: %s\n", MODEL);
    snprintf(text, sizeof text,
             "audio:\n  device: testmic\n  rate: 16000\n"
             "model:\n%s"
             "detection:\n  threshold: 0.9\n%s"
             "transport:\n  endpoints: [ \"ipc://%s/events\" ]\n  heartbeat_s: 0.5\n"
             "  wyoming: \"tcp://127.0.0.1:%d\"\n"
             "logging:\n  level: debug\n",
             models, two_models ? "  keywords:\n    three: 0.45\n" : "", dir, port);
    kt_write_file(dat_path("kwsd.yaml"), text);
    kwsd_pid = kt_spawn_kwsd(dir, NULL, NULL);
    int64_t end = kt_now_ms() + 20000;
    while (kt_now_ms() < end) {
        /* the port opens in kwsd's step 4; its SIGTERM handler comes in
         * step 5, before "ready": a stop sent between them ends it by the
         * signal's default action, not cleanly */
        if (kt_port_open(port) && log_has("notice: ready"))
            return;
        cr_assert(eq(int, waitpid(kwsd_pid, NULL, WNOHANG), 0), "kwsd ended:\n%s", read_log());
        usleep(50000);
    }
    cr_assert(IS(0), "kwsd's Wyoming port %d never accepted, or kwsd never said ready:\n%s", port,
              read_log());
}

static int kwsd_alive(void) {
    return waitpid(kwsd_pid, NULL, WNOHANG) == 0;
}

/* SIGHUP to kwsd, then up to 10 s for its log to say "reloaded". */
static void reload_kwsd(void) {
    kill(kwsd_pid, SIGHUP);
    int64_t end = kt_now_ms() + 10000;
    while (kt_now_ms() < end && !log_has("reloaded"))
        usleep(50000);
    cr_assert(IS(log_has("reloaded")), "kwsd reloads:\n%s", read_log());
}

static void setup(void) {
    signal(SIGPIPE, SIG_IGN); /* a write to a closed peer fails with EPIPE instead */
    snprintf(dir, sizeof dir, "/tmp/kwsd-wyoming-XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(dir), NULL)));
    make_recordings();
    start_kwsd();
}

static void teardown(void);

/* setup with two models: commands.kwsm and digits.kwsm. Criterion runs the
 * suite's .init (setup: one model) before a test's own, so the kwsd it
 * started is stopped first (it was left running before). */
static void setup_two(void) {
    teardown();
    two_models = 1;
    setup();
}

static void teardown(void) {
    char cmd[300];
    if (kwsd_pid > 0) {
        kill(kwsd_pid, SIGTERM);
        int status = 0;
        waitpid(kwsd_pid, &status, 0);
        cr_log_info("kwsd log:\n%s", read_log());
        cr_expect(eq(int, WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0),
                  "kwsd exits cleanly on SIGTERM");
        kwsd_pid = 0;
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(wyoming, .init = setup, .fini = teardown, .timeout = 120);

/* ==== A Wyoming client ==== */

struct wyc {
    int fd;
    char buf[1 << 16]; /* bytes received and not yet parsed */
    size_t len;
    int closed; /* the server closed the connection */
};

static void wyc_open(struct wyc *c) {
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(ge(int, c->fd, 0));
    cr_assert(eq(int, connect(c->fd, (struct sockaddr *)&a, sizeof a), 0), "connect: %s",
              strerror(errno));
}

static void wyc_close(struct wyc *c) {
    close(c->fd);
}

/* Sends raw bytes; returns 0, or -1 if the server has closed. */
static int send_all(struct wyc *c, const void *p, size_t n) {
    const char *b = p;
    while (n) {
        ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends one event: type, data (NULL: none) as additional data after the
 * header, and a payload of n bytes (NULL: none). */
static int wyc_send(struct wyc *c, const char *type, json_t *data, const void *payload, size_t n) {
    char *d = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_t *h = json_pack("{s:s}", "type", type);
    if (d)
        json_object_set_new(h, "data_length", json_integer((json_int_t)strlen(d)));
    if (payload)
        json_object_set_new(h, "payload_length", json_integer((json_int_t)n));
    char *hs = json_dumps(h, JSON_COMPACT);
    int rc = send_all(c, hs, strlen(hs));
    rc = rc ? rc : send_all(c, "\n", 1);
    if (d && !rc)
        rc = send_all(c, d, strlen(d));
    if (payload && !rc)
        rc = send_all(c, payload, n);
    free(hs);
    free(d);
    json_decref(h);
    return rc;
}

/* Reads more bytes within ms; returns 1 if some came, 0 on timeout, -1 if
 * the server closed the connection. */
static int wyc_fill(struct wyc *c, int ms) {
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (c->len == sizeof c->buf || poll(&p, 1, ms) <= 0)
        return 0;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0) {
        c->closed = 1;
        return -1;
    }
    c->len += (size_t)n;
    return 1;
}

/* Receives one event within ms: {"type": ..., "data": {...}} with the
 * additional data merged (caller decrefs), or NULL on timeout or close.
 * Payloads are skipped. */
static json_t *wyc_recv(struct wyc *c, int ms) {
    int64_t end = kt_now_ms() + ms;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t hl = (size_t)(nl - c->buf);
            json_error_t err;
            json_t *h = json_loadb(c->buf, hl, 0, &err);
            cr_assert(IS(json_is_object(h)), "a header line that is a JSON object: %s", err.text);
            size_t dl = (size_t)json_integer_value(json_object_get(h, "data_length"));
            size_t pl = (size_t)json_integer_value(json_object_get(h, "payload_length"));
            cr_assert(lt(sz, hl + 1 + dl + pl, sizeof c->buf));
            if (c->len >= hl + 1 + dl + pl) {
                json_t *data = json_object_get(h, "data");
                json_t *ev = json_pack("{s:O, s:o}", "type", json_object_get(h, "type"), "data",
                                       json_is_object(data) ? json_deep_copy(data) : json_object());
                if (dl) {
                    json_t *more = json_loadb(nl + 1, dl, 0, &err);
                    cr_assert(IS(json_is_object(more)), "data is a JSON object: %s", err.text);
                    json_object_update(json_object_get(ev, "data"), more);
                    json_decref(more);
                }
                memmove(c->buf, c->buf + hl + 1 + dl + pl, c->len - (hl + 1 + dl + pl));
                c->len -= hl + 1 + dl + pl;
                json_decref(h);
                return ev;
            }
            json_decref(h);
        }
        int left = (int)(end - kt_now_ms());
        if (left <= 0 || wyc_fill(c, left) < 0)
            return NULL;
    }
}

static const char *ev_type(json_t *ev) {
    return json_string_value(json_object_get(ev, "type"));
}

/* A recording's bytes and format. */
struct rec {
    char *pcm;
    size_t n;
    int rate, width, channels;
};

static struct rec rec_load(const char *name, int rate, int width, int channels) {
    struct rec r = {.rate = rate, .width = width, .channels = channels};
    FILE *f = fopen(dat_path(name), "rb");
    cr_assert(not(eq(ptr, f, NULL)));
    fseek(f, 0, SEEK_END);
    r.n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    r.pcm = malloc(r.n);
    cr_assert(eq(sz, fread(r.pcm, 1, r.n, f), r.n));
    fclose(f);
    return r;
}

static json_t *fmt(const struct rec *r) {
    return json_pack("{s:i, s:i, s:i}", "rate", r->rate, "width", r->width, "channels",
                     r->channels);
}

/* Sends chunk i (of `bytes` bytes, the last one shorter) of r; returns 0
 * once r has no more. */
static int send_chunk(struct wyc *c, const struct rec *r, size_t i, size_t bytes) {
    size_t off = i * bytes;
    if (off >= r->n)
        return 0;
    size_t n = r->n - off < bytes ? r->n - off : bytes;
    json_t *d = fmt(r);
    json_object_set_new(d, "timestamp",
                        json_integer((json_int_t)(off * 1000 / (size_t)r->rate /
                                                  (size_t)(r->width * r->channels))));
    cr_assert(eq(int, wyc_send(c, "audio-chunk", d, r->pcm + off, n), 0));
    json_decref(d);
    return 1;
}

static void send_start(struct wyc *c, const struct rec *r, const char *name) {
    if (name) {
        json_t *d = json_pack("{s:[s]}", "names", name);
        cr_assert(eq(int, wyc_send(c, "detect", d, NULL, 0), 0));
        json_decref(d);
    }
    json_t *d = fmt(r);
    json_object_set_new(d, "timestamp", json_integer(0));
    cr_assert(eq(int, wyc_send(c, "audio-start", d, NULL, 0), 0));
    json_decref(d);
}

/* Sends r from chunk i (of 2048 bytes) to its end, then audio-stop. */
static void send_rest(struct wyc *c, const struct rec *r, size_t i) {
    while (send_chunk(c, r, i, 2048))
        i++;
    cr_assert(eq(int, wyc_send(c, "audio-stop", NULL, NULL, 0), 0));
}

/* Collects the events that follow audio-stop: detections (names into
 * got, comma-separated, timestamps into ts) and not-detected. It sends a
 * ping and reads up to the pong: the server handles a client's events in
 * order, hearing each chunk whole before the next event, so the pong comes
 * after everything the stream caused, however slow the machine. Returns
 * the number of not-detected events. */
static int collect(struct wyc *c, char *got, size_t got_len, int64_t *ts, int max) {
    int n = 0, nd = 0, pong = 0;
    got[0] = '\0';
    cr_assert(eq(int, wyc_send(c, "ping", NULL, NULL, 0), 0));
    json_t *ev;
    while (!pong && (ev = wyc_recv(c, 60000))) {
        const char *t = ev_type(ev);
        if (strcmp(t, "detection") == 0) {
            json_t *d = json_object_get(ev, "data");
            const char *name = json_string_value(json_object_get(d, "name"));
            cr_assert(not(eq(ptr, (void *)name, NULL)), "a detection has a name");
            cr_assert(IS(json_is_integer(json_object_get(d, "timestamp"))), "and a timestamp");
            if (n < max)
                ts[n] = json_integer_value(json_object_get(d, "timestamp"));
            n++;
            snprintf(got + strlen(got), got_len - strlen(got), "%s%s", got[0] ? "," : "", name);
        } else if (strcmp(t, "not-detected") == 0) {
            nd++;
        } else if (strcmp(t, "pong") == 0) {
            pong = 1;
        } else {
            cr_assert(IS(0), "unexpected event %s", t);
        }
        json_decref(ev);
    }
    cr_assert(IS(pong), "the server answers the ping after the stream's events");
    return nd;
}

/* ==== Tests ==== */

/* describe -> info: one wake program whose models are every label of the
 * loaded model that can fire, each with the fields Home Assistant reads. */
Test(wyoming, describe_lists_the_models) {
    struct snn_model m;
    char msg[256];
    cr_assert(eq(int, snn_model_load(&m, MODEL, msg, sizeof msg), 0), "%s", msg);
    struct wyc c;
    wyc_open(&c);
    cr_assert(eq(int, wyc_send(&c, "describe", NULL, NULL, 0), 0));
    json_t *ev = wyc_recv(&c, 5000);
    cr_assert(not(eq(ptr, ev, NULL)), "an answer to describe");
    cr_assert(eq(str, (char *)ev_type(ev), "info"));
    json_t *wake = json_object_get(json_object_get(ev, "data"), "wake");
    cr_assert(eq(sz, json_array_size(wake), 1));
    json_t *prog = json_array_get(wake, 0);
    cr_expect(eq(str, (char *)json_string_value(json_object_get(prog, "name")), "kwsd"));
    cr_expect(IS(json_is_true(json_object_get(prog, "installed"))));
    cr_expect(IS(json_is_string(json_object_get(prog, "version"))));
    cr_expect(IS(json_is_string(json_object_get(json_object_get(prog, "attribution"), "name"))));
    json_t *models = json_object_get(prog, "models");
    size_t k = 0;
    for (int i = 0; i < m.cfg.n_classes; i++) {
        if (m.cfg.labels[i][0] == '_')
            continue;
        json_t *wm = json_array_get(models, k++);
        cr_assert(not(eq(ptr, wm, NULL)), "a model for label %s", m.cfg.labels[i]);
        cr_expect(eq(str, (char *)json_string_value(json_object_get(wm, "name")), m.cfg.labels[i]));
        cr_expect(IS(json_is_array(json_object_get(wm, "languages"))));
        cr_expect(IS(json_is_true(json_object_get(wm, "installed"))));
        cr_expect(IS(json_is_string(json_object_get(wm, "description"))));
        cr_expect(IS(json_is_object(json_object_get(wm, "attribution"))));
    }
    cr_expect(eq(sz, json_array_size(models), k), "every label that can fire, no other");
    json_decref(ev);
    /* the server answers ping with pong */
    cr_assert(eq(int, wyc_send(&c, "ping", NULL, NULL, 0), 0));
    ev = wyc_recv(&c, 5000);
    cr_assert(not(eq(ptr, ev, NULL)));
    cr_expect(eq(str, (char *)ev_type(ev), "pong"));
    json_decref(ev);
    wyc_close(&c);
    snn_model_free(&m);
}

/* Two models, each with its own front end: describe lists every keyword
 * of both, each description naming its model, and one stream ("yes" then
 * "three", 22.05 kHz) gets the detection of each. */
Test(wyoming, two_models_describe_and_detect, .init = setup_two) {
    const char *const files[] = {MODEL, DIGITS}, *const names[] = {"commands.kwsm", "digits.kwsm"};
    struct wyc c;
    char msg[256], got[256];
    int64_t ts[8];
    size_t k = 0;

    wyc_open(&c);
    cr_assert(eq(int, wyc_send(&c, "describe", NULL, NULL, 0), 0));
    json_t *ev = wyc_recv(&c, 5000);
    cr_assert(not(eq(ptr, ev, NULL)), "an answer to describe");
    json_t *prog = json_array_get(json_object_get(json_object_get(ev, "data"), "wake"), 0);
    json_t *models = json_object_get(prog, "models");
    for (int f = 0; f < 2; f++) {
        struct snn_model m;
        cr_assert(eq(int, snn_model_load(&m, files[f], msg, sizeof msg), 0), "%s", msg);
        for (int i = 0; i < m.cfg.n_classes; i++) {
            if (m.cfg.labels[i][0] == '_')
                continue;
            json_t *wm = json_array_get(models, k++);
            cr_assert(not(eq(ptr, wm, NULL)), "a model for label %s", m.cfg.labels[i]);
            cr_expect(eq(str, (char *)json_string_value(json_object_get(wm, "name")),
                         m.cfg.labels[i]));
            cr_expect(not(eq(ptr, strstr(json_string_value(json_object_get(wm, "description")),
                                         names[f]),
                             NULL)));
        }
        snn_model_free(&m);
    }
    cr_expect(eq(sz, json_array_size(models), k), "every label of both that can fire, no other");
    json_decref(ev);

    kt_sh("espeak-ng -v en-us -s 150 -w %s/w-three.wav three", dir);
    kt_sh("cd %s && sox -D q.wav w-yes.wav q.wav w-three.wav q.wav q.wav -t raw -e signed -b 16 "
          "yt.raw",
          dir);
    struct rec yt = rec_load("yt.raw", 22050, 2, 1);
    send_start(&c, &yt, NULL);
    for (size_t i = 0; send_chunk(&c, &yt, i, 2048); i++)
        ;
    cr_assert(eq(int, wyc_send(&c, "audio-stop", NULL, NULL, 0), 0));
    collect(&c, got, sizeof got, ts, 8);
    cr_expect(eq(str, got, "yes,three"), "detections: %s", got);
    wyc_close(&c);
    free(yt.pcm);
}

/* A recording with "yes" and "go" (48 kHz, stereo, 32-bit) gives those
 * detections, in order, with timestamps inside the recording and no
 * not-detected; a recording of other words (22.05 kHz mono 16-bit) gives
 * not-detected and nothing else. Both on one connection, one after the
 * other, so the second stream starts from rest. */
Test(wyoming, keyword_detected_and_none_not_detected) {
    struct rec kw = rec_load("kw.raw", 48000, 4, 2), none = rec_load("none.raw", 22050, 2, 1);
    char got[256];
    int64_t ts[8];
    struct wyc c;
    wyc_open(&c);
    send_start(&c, &kw, NULL);
    for (size_t i = 0; send_chunk(&c, &kw, i, 4096); i++)
        ;
    cr_assert(eq(int, wyc_send(&c, "audio-stop", NULL, NULL, 0), 0));
    int nd = collect(&c, got, sizeof got, ts, 8);
    cr_expect(eq(str, got, "yes,go"), "detections: %s", got);
    cr_expect(eq(int, nd, 0), "no not-detected after a detection");
    int64_t dur_ms = (int64_t)(kw.n / 8) * 1000 / 48000;
    for (int i = 0; i < 2; i++)
        cr_expect(le(i64, ts[i], dur_ms), "timestamp %lld within %lld ms", (long long)ts[i],
                  (long long)dur_ms);
    cr_expect(lt(i64, ts[0], ts[1]));

    send_start(&c, &none, NULL);
    for (size_t i = 0; send_chunk(&c, &none, i, 2048); i++)
        ;
    cr_assert(eq(int, wyc_send(&c, "audio-stop", NULL, NULL, 0), 0));
    nd = collect(&c, got, sizeof got, ts, 8);
    cr_expect(eq(str, got, ""), "no detection in other words: %s", got);
    cr_expect(eq(int, nd, 1), "not-detected after audio-stop");
    wyc_close(&c);
    free(kw.pcm);
    free(none.pcm);
}

/* Two clients at once, their chunks interleaved: each hears only its own
 * recording (and detect names restrict one of them to "go"), while the
 * microphone's "go" still reaches a ZeroMQ subscriber. */
Test(wyoming, two_clients_and_the_microphone_are_independent) {
    struct rec kw = rec_load("kw.raw", 48000, 4, 2), none = rec_load("none.raw", 22050, 2, 1);
    char got_a[256], got_b[256], got_c[256], ep[300];
    int64_t ts[8];
    void *ctx = zmq_ctx_new(), *sub = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "kws.detection.", 14);
    snprintf(ep, sizeof ep, "ipc://%s/events", dir);
    cr_assert(eq(int, zmq_connect(sub, ep), 0));

    struct wyc a, b, c;
    wyc_open(&a);
    wyc_open(&b);
    wyc_open(&c);
    send_start(&a, &kw, NULL);
    send_start(&b, &none, NULL);
    send_start(&c, &kw, "go");
    int more = 1;
    for (size_t i = 0; more; i++) {
        more = send_chunk(&a, &kw, i, 8192);
        more |= send_chunk(&b, &none, i, 1882); /* about as much audio per chunk */
        more |= send_chunk(&c, &kw, i, 8192);
    }
    cr_assert(eq(int, wyc_send(&a, "audio-stop", NULL, NULL, 0), 0));
    cr_assert(eq(int, wyc_send(&b, "audio-stop", NULL, NULL, 0), 0));
    cr_assert(eq(int, wyc_send(&c, "audio-stop", NULL, NULL, 0), 0));
    int nd_a = collect(&a, got_a, sizeof got_a, ts, 8);
    int nd_b = collect(&b, got_b, sizeof got_b, ts, 8);
    int nd_c = collect(&c, got_c, sizeof got_c, ts, 8);
    cr_expect(eq(str, got_a, "yes,go"));
    cr_expect(eq(int, nd_a, 0));
    cr_expect(eq(str, got_b, ""));
    cr_expect(eq(int, nd_b, 1));
    cr_expect(eq(str, got_c, "go"), "detect names [go]: only go (%s)", got_c);
    cr_expect(eq(int, nd_c, 0));
    wyc_close(&a);
    wyc_close(&b);
    wyc_close(&c);

    /* the microphone said "go" after 4 s of quiet */
    char topic[128] = "";
    zmq_pollitem_t it = {.socket = sub, .events = ZMQ_POLLIN};
    int64_t end = kt_now_ms() + 30000;
    while (kt_now_ms() < end && strcmp(topic, "kws.detection.go") != 0)
        if (zmq_poll(&it, 1, 500) > 0) {
            int n = zmq_recv(sub, topic, sizeof topic - 1, 0);
            topic[n > 0 ? n : 0] = '\0';
            char body[2048];
            zmq_recv(sub, body, sizeof body, 0);
        }
    cr_expect(eq(str, topic, "kws.detection.go"), "the microphone's event arrives");
    zmq_close(sub);
    zmq_ctx_term(ctx);
    free(kw.pcm);
    free(none.pcm);
}

/* Waits up to ms for the server to close c (reads and drops what comes);
 * returns 1 if it did. */
static int closed_by_server(struct wyc *c, int ms) {
    int64_t end = kt_now_ms() + ms;
    while (!c->closed && kt_now_ms() < end) {
        c->len = 0;
        wyc_fill(c, 100);
    }
    return c->closed;
}

/* Hostile clients: each breaks one rule and is closed; the daemon lives on
 * and still serves a well-behaved client. */
Test(wyoming, hostile_clients_are_closed) {
    static const char *const bad[] = {
        "this is not json\n",
        "[1, 2, 3]\n",
        "{\"data\": {}}\n",
        "{\"type\": \"audio-chunk\", \"data_length\": 99999999999}\n",
        "{\"type\": \"describe\", \"payload_length\": -5}\n",
        "{\"type\": \"audio-start\", \"data\": {\"rate\": 0, \"width\": 2, \"channels\": 1}}\n",
        "{\"type\": \"audio-chunk\", \"data\": {\"rate\": 16000, \"width\": 7, \"channels\": 1}}\n",
        "{\"type\": \"detect\", \"data_length\": 4}\nnull",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct wyc c;
        wyc_open(&c);
        send_all(&c, bad[i], strlen(bad[i]));
        cr_expect(IS(closed_by_server(&c, 5000)), "closed after: %s", bad[i]);
        wyc_close(&c);
    }
    /* a header line that never ends */
    struct wyc c;
    wyc_open(&c);
    char junk[4096];
    memset(junk, 'x', sizeof junk);
    for (int i = 0; i < 4 && send_all(&c, junk, sizeof junk) == 0; i++)
        ;
    cr_expect(IS(closed_by_server(&c, 5000)), "closed after 16 KiB without a newline");
    wyc_close(&c);
    /* a client that asks and never reads: its replies pile up until the
     * server closes it */
    wyc_open(&c);
    int rcv = 4096;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    const char *describe = "{\"type\": \"describe\"}\n";
    int sent = 0;
    while (sent < 200000 && send_all(&c, describe, strlen(describe)) == 0)
        sent++;
    int64_t end = kt_now_ms() + 10000;
    while (kt_now_ms() < end && !log_has("leaves its replies unread"))
        usleep(100000);
    cr_expect(IS(log_has("leaves its replies unread")),
              "the server closed the client that does not read (%d describes sent)", sent);
    wyc_close(&c);

    cr_assert(IS(kwsd_alive()), "kwsd survives");
    wyc_open(&c);
    cr_assert(eq(int, wyc_send(&c, "describe", NULL, NULL, 0), 0));
    json_t *ev = wyc_recv(&c, 5000);
    cr_assert(not(eq(ptr, ev, NULL)), "and still answers");
    cr_expect(eq(str, (char *)ev_type(ev), "info"));
    json_decref(ev);
    wyc_close(&c);
    cr_expect(IS(log_has("bad event header")));
}

/* A client that floods audio far ahead of real time (12 s of 8-bit audio at
 * 1 kHz, 12,000 bytes, sent at once) is paused, not closed: the server stops
 * reading it until the clock catches up, then finishes its stream. The
 * whole flood, audio-start to audio-stop, goes out corked as one segment,
 * so the server's first read holds all of it, the case a loaded machine
 * once gave by chance: the pause must not depend on how reads fall. */
Test(wyoming, flood_ahead_of_real_time_is_paused) {
    static char pcm[12000];
    struct rec r = {.pcm = pcm, .n = sizeof pcm, .rate = 1000, .width = 1, .channels = 1};
    struct wyc c;
    int on = 1, off = 0;
    memset(pcm, 0x80, sizeof pcm); /* unsigned 8-bit silence */
    wyc_open(&c);
    int64_t t_send = kt_now_ms();
    cr_assert(eq(int, setsockopt(c.fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on), 0));
    send_start(&c, &r, NULL);
    for (size_t i = 0; send_chunk(&c, &r, i, 500); i++)
        ;
    cr_assert(eq(int, wyc_send(&c, "audio-stop", NULL, NULL, 0), 0));
    cr_assert(eq(int, setsockopt(c.fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off), 0));
    int64_t t0 = kt_now_ms();
    json_t *ev = wyc_recv(&c, 30000);
    cr_assert(not(eq(ptr, ev, NULL)), "the stream ends with an answer");
    cr_expect(eq(str, (char *)ev_type(ev), "not-detected"));
    cr_log_info("not-detected %lld ms after audio-stop", (long long)(kt_now_ms() - t0));
    json_decref(ev);
    /* A server that took 1.5 s or more for the 12 s of audio (a starved
     * emulator) was never the 10 s ahead that pauses; under that, it was
     * ahead by more than 10 s with at least 0.5 s of audio (two turns) to go,
     * and must have paused. */
    int64_t took = kt_now_ms() - t_send;
    cr_expect(log_has("ahead of real time: paused") || took >= 1500,
              "the server paused the client (the stream took %lld ms)", (long long)took);
    wyc_close(&c);
}

/* For a test that needs kwsd-eval: without it, the suite's kwsd is stopped
 * before the skip, as a skipped test's worker ends without the .fini. */
static void need_eval(void) {
    struct stat st;
    if (stat(EVAL, &st) != 0) {
        teardown();
        cr_skip_test("kwsd-eval is not built");
    }
}

/* The same listening path: the events a client gets for a recording are
 * the events kwsd-eval --wav prints for it (same labels, same times), both
 * through the model's front end, the microphone's resampler and a
 * kws_listener. */
Test(wyoming, same_events_as_kwsd_eval, .init = need_eval) {
    kt_sh("%s --model %s --wav %s/kw.wav --threshold 0.9 > %s/eval.txt 2>&1", EVAL, MODEL, dir, dir);
    char want[256] = "", line[512], got[256];
    int64_t want_ms[8], ts[8];
    int n_want = 0;
    FILE *f = fopen(dat_path("eval.txt"), "r");
    cr_assert(not(eq(ptr, f, NULL)));
    while (fgets(line, sizeof line, f)) {
        double t;
        char word[SNN_LABEL_LEN];
        if (sscanf(line, " %lf s: %31s (", &t, word) == 2 && n_want < 8) {
            want_ms[n_want++] = (int64_t)(t * 1000.0 + 0.5);
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s", want[0] ? "," : "",
                     word);
        }
    }
    fclose(f);
    struct rec r = rec_load("kw22.raw", 22050, 2, 1);
    struct wyc c;
    wyc_open(&c);
    send_start(&c, &r, NULL);
    send_rest(&c, &r, 0);
    collect(&c, got, sizeof got, ts, 8);
    cr_expect(ge(int, n_want, 1), "kwsd-eval hears a keyword");
    cr_expect(eq(str, got, want), "kwsd-eval: %s", want);
    for (int i = 0; i < n_want && i < 8; i++)
        cr_expect(eq(i64, ts[i], want_ms[i]), "event %d", i);
    wyc_close(&c);
    free(r.pcm);
}

/* A reload that builds a new listening path (here: a new smoothing window)
 * while a client is mid-stream: the client's stream restarts from rest on
 * the new model, its connection stays, and its next stream hears as
 * before. */
Test(wyoming, reload_mid_stream) {
    struct rec r = rec_load("kw22.raw", 22050, 2, 1);
    char got[256], text[4096];
    int64_t ts[8];
    struct wyc c;
    wyc_open(&c);
    send_start(&c, &r, NULL);
    size_t i = 0;
    for (; i < 20 && send_chunk(&c, &r, i, 2048); i++) /* about 0.9 s */
        ;
    /* the same file with detection.smoothing_ms 200 */
    FILE *f = fopen(dat_path("kwsd.yaml"), "r");
    cr_assert(not(eq(ptr, f, NULL)));
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strstr(text, "  threshold: 0.9\n");
    cr_assert(not(eq(ptr, at, NULL)));
    static const char line[] = "  smoothing_ms: 200\n";
    memmove(at + strlen(line), at, strlen(at) + 1);
    memcpy(at, line, strlen(line));
    kt_write_file(dat_path("kwsd.yaml"), text);
    reload_kwsd();
    send_rest(&c, &r, i);
    collect(&c, got, sizeof got, ts, 8);
    cr_log_info("events of the stream cut by the reload: %s", got);
    cr_assert(IS(kwsd_alive()), "kwsd survives the reload");
    send_start(&c, &r, NULL);
    send_rest(&c, &r, 0);
    int nd = collect(&c, got, sizeof got, ts, 8);
    cr_expect(eq(str, got, "yes,go"), "the next stream: %s", got);
    cr_expect(eq(int, nd, 0));
    wyc_close(&c);
    free(r.pcm);
}

/* A reload that changes nothing the clients hear (the same file again: a
 * new copy of the same model, the same settings) leaves a client's stream
 * alone: the stream cut by the reload hears both words, as without it. */
Test(wyoming, reload_with_nothing_changed_keeps_the_stream) {
    struct rec r = rec_load("kw22.raw", 22050, 2, 1);
    char got[256];
    int64_t ts[8];
    struct wyc c;
    wyc_open(&c);
    send_start(&c, &r, NULL);
    size_t i = 0;
    for (; i < 27 && send_chunk(&c, &r, i, 2048); i++) /* about 1.25 s: within "yes" */
        ;
    reload_kwsd();
    send_rest(&c, &r, i);
    int nd = collect(&c, got, sizeof got, ts, 8);
    cr_expect(eq(str, got, "yes,go"), "the stream across the reload: %s", got);
    cr_expect(eq(int, nd, 0));
    wyc_close(&c);
    free(r.pcm);
}

/* Eight clients fill the server: a ninth is refused at once. Once the
 * silent ones have sent nothing for WYOMING_IDLE_EVICT_MS (10 s), a
 * newcomer takes the slot of one of them, never of the client that kept
 * talking. */
Test(wyoming, full_server_gives_a_silent_slot_to_a_newcomer, .timeout = 60) {
    struct wyc c[8], late;
    /* each one served (a ping answered): a connection closed just before,
     * such as start_kwsd's probe, may still hold its slot for a moment */
    for (int i = 0; i < 8; i++)
        for (int tries = 0;; tries++) {
            cr_assert(lt(int, tries, 20), "client %d is served", i);
            wyc_open(&c[i]);
            json_t *ev = NULL;
            if (wyc_send(&c[i], "ping", NULL, NULL, 0) == 0)
                ev = wyc_recv(&c[i], 2000);
            json_decref(ev);
            if (ev)
                break;
            wyc_close(&c[i]);
            usleep(100000);
        }
    wyc_open(&late);
    cr_expect(IS(closed_by_server(&late, 5000)), "a ninth client is refused");
    wyc_close(&late);
    int64_t end = kt_now_ms() + 10500;
    while (kt_now_ms() < end) { /* c[7] keeps talking */
        cr_assert(eq(int, wyc_send(&c[7], "ping", NULL, NULL, 0), 0));
        json_t *ev = wyc_recv(&c[7], 5000);
        cr_assert(not(eq(ptr, ev, NULL)));
        json_decref(ev);
        usleep(500000);
    }
    wyc_open(&late);
    cr_assert(eq(int, wyc_send(&late, "describe", NULL, NULL, 0), 0));
    json_t *ev = wyc_recv(&late, 5000);
    cr_assert(not(eq(ptr, ev, NULL)), "the newcomer is served");
    cr_expect(eq(str, (char *)ev_type(ev), "info"));
    json_decref(ev);
    int closed = 0;
    for (int i = 0; i < 8; i++) {
        struct pollfd p = {.fd = c[i].fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0 && wyc_fill(&c[i], 0) < 0)
            closed++;
        else
            cr_expect(IS(i < 7 || !c[i].closed), "the talking client stays");
    }
    cr_expect(eq(int, closed, 1), "one silent client gave its slot");
    cr_expect(IS(!c[7].closed), "not the one that kept talking");
    for (int i = 0; i < 8; i++)
        wyc_close(&c[i]);
    wyc_close(&late);
    cr_expect(IS(log_has("closed to make room")));
}

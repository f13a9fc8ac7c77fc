/* test_transport_pub.c: the event publisher against real ZeroMQ subscribers.
 *
 * Subscribers connect over ipc:// (in a temporary folder), tcp://127.0.0.1
 * on a port the kernel picks, and inproc://. Before asserting receipt, each
 * test waits out ZeroMQ's slow joiner: a subscriber subscribes to its topics
 * and then to kws.status, and the publisher sends heartbeats until one
 * arrives; subscriptions travel in order on one pipe, so by then the
 * publisher has applied all of them.
 *
 * SPDX-License-Identifier: MIT
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "kws/err.h"
#include "kws/transport.h"

static char tmpdir[64];
static void *sub_ctx;

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kws_tr_XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(tmpdir), NULL)));
    sub_ctx = zmq_ctx_new();
    cr_assert(not(eq(ptr, sub_ctx, NULL)));
}

static void teardown(void) {
    char cmd[128];
    zmq_ctx_term(sub_ctx);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect(eq(int, system(cmd), 0));
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A SUB socket on ctx (sub_ctx if NULL), subscribed to topics then to
 * kws.status (the sync topic), connected to ep. */
static void *sub_open(void *ctx, const char *ep, const char *const *topics, int n, int rcvhwm) {
    int zero = 0;
    void *s = zmq_socket(ctx ? ctx : sub_ctx, ZMQ_SUB);
    cr_assert(not(eq(ptr, s, NULL)));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (rcvhwm > 0)
        zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    for (int i = 0; i < n; i++)
        cr_assert(eq(int, zmq_setsockopt(s, ZMQ_SUBSCRIBE, topics[i], strlen(topics[i])), 0));
    cr_assert(eq(int, zmq_setsockopt(s, ZMQ_SUBSCRIBE, "kws.status", 10), 0));
    cr_assert(eq(int, zmq_connect(s, ep), 0), "connect %s: %s", ep, zmq_strerror(errno));
    return s;
}

/* Receives one [topic, body] message within timeout_ms. 1 if one came. */
static int recv_msg(void *s, char *topic, size_t tlen, char *body, size_t blen, int timeout_ms) {
    zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return 0;
    int n = zmq_recv(s, topic, tlen - 1, 0);
    cr_assert(ge(int, n, 0));
    topic[n < (int)tlen - 1 ? n : (int)tlen - 1] = '\0';
    int more = 0;
    size_t ml = sizeof more;
    zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
    cr_assert(eq(int, more, 1), "message has one frame only");
    n = zmq_recv(s, body, blen - 1, 0);
    cr_assert(ge(int, n, 0));
    cr_assert(lt(int, n, (int)blen - 1), "body truncated");
    body[n] = '\0';
    zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
    cr_assert(eq(int, more, 0), "message has more than two frames");
    return 1;
}

/* Publishes heartbeats until every subscriber has received one. */
static void sync_subs(struct transport_pub *p, void **subs, int n) {
    char topic[64], body[2048];
    int got[8] = {0}, left = n;
    struct kws_status st = {.device = "sync"};

    for (int tries = 0; left > 0 && tries < 500; tries++) {
        cr_assert(eq(int, transport_pub_status(p, &st), 0));
        for (int i = 0; i < n; i++)
            if (!got[i] && recv_msg(subs[i], topic, sizeof topic, body, sizeof body, 10)) {
                cr_assert(eq(str, topic, "kws.status"));
                got[i] = 1;
                left--;
            }
    }
    cr_assert(eq(int, left, 0), "subscription did not propagate in 5 s");
}

/* Receives the next detection, skipping heartbeats. Returns its JSON or NULL. */
static json_t *next_detection(void *s, char *topic, size_t tlen, int timeout_ms) {
    char body[2048];
    while (recv_msg(s, topic, tlen, body, sizeof body, timeout_ms)) {
        if (strcmp(topic, "kws.status") == 0)
            continue;
        json_error_t err;
        json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, &err);
        cr_assert(not(eq(ptr, j, NULL)), "bad JSON (%s): %s", err.text, body);
        return j;
    }
    return NULL;
}

static const char *jstr(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    int ok = json_is_string(v);
    cr_assert(ok, "\"%s\" missing or not a string", k);
    return json_string_value(v);
}

static json_int_t jint(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    int ok = json_is_integer(v);
    cr_assert(ok, "\"%s\" missing or not an integer", k);
    return json_integer_value(v);
}

static double jnum(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    int ok = json_is_number(v);
    cr_assert(ok, "\"%s\" missing or not a number", k);
    return json_number_value(v);
}

TestSuite(transport, .init = setup, .fini = teardown, .timeout = 60);

Test(transport, detection_over_ipc_has_every_field) {
    char ep[128], msg[256], topic[64];
    struct transport_pub p;
    snprintf(ep, sizeof ep, "ipc://%s/events", tmpdir);
    const char *eps[] = {ep};

    cr_assert(eq(int, transport_pub_open(&p, eps, 1, 100, msg, sizeof msg), 0), "%s", msg);
    cr_expect(eq(int, p.n_bound, 1));
    cr_expect(eq(str, p.bound[0], ep));
    const char *topics[] = {"kws.detection."};
    void *s = sub_open(NULL, ep, topics, 1, 0);
    sync_subs(&p, &s, 1);

    struct kws_detection ev = {.keyword = "yes",
                               .score = 0.93f,
                               .threshold = 0.8f,
                               .start_ms = 1230,
                               .end_ms = 1780,
                               .seq = 7,
                               .model = "commands",
                               .wall_ms = 1700000000123LL};
    cr_assert(eq(int, transport_pub_detection(&p, &ev), 0));
    json_t *j = next_detection(s, topic, sizeof topic, 2000);
    cr_assert(not(eq(ptr, j, NULL)), "no detection received");
    cr_expect(eq(str, topic, "kws.detection.yes"));
    cr_expect(eq(sz, json_object_size(j), 8));
    cr_expect(eq(str, (char *)jstr(j, "keyword"), "yes"));
    cr_expect(epsilon_eq(dbl, jnum(j, "score"), 0.93, 1e-9));
    cr_expect(epsilon_eq(dbl, jnum(j, "threshold"), 0.8, 1e-9));
    cr_expect(eq(i64, jint(j, "start_ms"), 1230));
    cr_expect(eq(i64, jint(j, "end_ms"), 1780));
    cr_expect(eq(str, (char *)jstr(j, "time"), "2023-11-14T22:13:20.123Z"));
    cr_expect(eq(i64, jint(j, "seq"), 7));
    cr_expect(eq(str, (char *)jstr(j, "model"), "commands"));
    json_decref(j);

    /* wall_ms 0 stamps the current time. */
    ev.wall_ms = 0;
    time_t before = time(NULL);
    cr_assert(eq(int, transport_pub_detection(&p, &ev), 0));
    j = next_detection(s, topic, sizeof topic, 2000);
    cr_assert(not(eq(ptr, j, NULL)));
    const char *t = jstr(j, "time");
    struct tm tm = {0};
    char *end = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
    cr_assert(not(eq(ptr, end, NULL)), "time %s", t);
    cr_expect(eq(int, (int)strlen(end), 5), "time %s", t); /* ".mmmZ" */
    cr_expect(eq(chr, end[0], '.'));
    cr_expect(eq(chr, end[4], 'Z'));
    time_t got = timegm(&tm);
    cr_expect(ge(i64, (int64_t)got, (int64_t)before - 1));
    cr_expect(le(i64, (int64_t)got, (int64_t)time(NULL) + 1));
    json_decref(j);

    zmq_close(s);
    transport_pub_close(&p);
}

Test(transport, status_over_tcp_has_every_field) {
    char msg[256], topic[64], body[2048];
    struct transport_pub p;
    const char *eps[] = {"tcp://127.0.0.1:*"};

    cr_assert(eq(int, transport_pub_open(&p, eps, 1, 100, msg, sizeof msg), 0), "%s", msg);
    cr_expect(eq(int, strncmp(p.bound[0], "tcp://127.0.0.1:", 16), 0), "%s", p.bound[0]);
    cr_expect(eq(ptr, strchr(p.bound[0], '*'), NULL), "port not resolved: %s", p.bound[0]);
    void *s = sub_open(NULL, p.bound[0], NULL, 0, 0);
    sync_subs(&p, &s, 1);

    uint64_t sent_before;
    transport_pub_stats(&p, &sent_before, NULL);
    struct kws_status st = {.uptime_s = 12.5,
                            .frames = 12345,
                            .xruns = 2,
                            .open_errors = 4,
                            .rtf = 0.031,
                            .device = "testmic",
                            .rate = 44100,
                            .model = "commands.kwsm",
                            .detections = 3,
                            .wall_ms = 86400000LL + 1,
                            .paused = 1,
                            .suppressed = 4,
                            .mqtt = "connected",
                            .mqtt_dropped = 5};
    cr_assert(eq(int, transport_pub_status(&p, &st), 0));
    json_t *j = NULL;
    while (!j && recv_msg(s, topic, sizeof topic, body, sizeof body, 2000)) {
        cr_assert(eq(str, topic, "kws.status"));
        json_t *x = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
        cr_assert(not(eq(ptr, x, NULL)), "bad JSON: %s", body);
        if (jint(x, "frames") == 12345)
            j = x;
        else
            json_decref(x); /* a sync heartbeat still in flight */
    }
    cr_assert(not(eq(ptr, j, NULL)), "status not received");
    cr_expect(eq(sz, json_object_size(j), 16));
    cr_expect(epsilon_eq(dbl, jnum(j, "uptime_s"), 12.5, 1e-9));
    cr_expect(eq(i64, jint(j, "xruns"), 2));
    cr_expect(eq(i64, jint(j, "capture_open_errors"), 4));
    cr_expect(epsilon_eq(dbl, jnum(j, "rtf"), 0.031, 1e-9));
    cr_expect(eq(i64, jint(j, "events_sent"), (json_int_t)sent_before));
    cr_expect(eq(i64, jint(j, "events_dropped"), 0));
    cr_expect(eq(str, (char *)jstr(j, "time"), "1970-01-02T00:00:00.001Z"));
    cr_expect(eq(str, (char *)jstr(j, "device"), "testmic"));
    cr_expect(eq(i64, jint(j, "rate"), 44100));
    cr_expect(eq(str, (char *)jstr(j, "model"), "commands.kwsm"));
    cr_expect(eq(i64, jint(j, "detections"), 3));
    cr_expect(eq(int, json_is_true(json_object_get(j, "paused")) ? 1 : 0, 1));
    cr_expect(eq(i64, jint(j, "suppressed"), 4));
    cr_expect(eq(str, (char *)jstr(j, "mqtt"), "connected"));
    cr_expect(eq(i64, jint(j, "mqtt_dropped"), 5));
    json_decref(j);

    zmq_close(s);
    transport_pub_close(&p);
}

/* "kws.detection." gets every keyword; "kws.detection.yes" only yes. */
Test(transport, prefix_subscriptions) {
    char ep[128], msg[256], topic[64];
    struct transport_pub p;
    snprintf(ep, sizeof ep, "ipc://%s/events", tmpdir);
    const char *eps[] = {"tcp://127.0.0.1:*", ep};

    cr_assert(eq(int, transport_pub_open(&p, eps, 2, 100, msg, sizeof msg), 0), "%s", msg);
    const char *all[] = {"kws.detection."}, *yes[] = {"kws.detection.yes"};
    void *subs[2] = {sub_open(NULL, p.bound[0], all, 1, 0), sub_open(NULL, ep, yes, 1, 0)};
    sync_subs(&p, subs, 2);

    static const char *const words[] = {"yes", "no", "stop", "yes", "go", "yes"};
    for (int i = 0; i < 6; i++) {
        struct kws_detection ev = {.keyword = words[i], .score = 0.9f, .seq = (uint64_t)i + 1};
        cr_assert(eq(int, transport_pub_detection(&p, &ev), 0));
    }
    /* Everything, in order, on the prefix subscriber (over tcp). */
    for (int i = 0; i < 6; i++) {
        json_t *j = next_detection(subs[0], topic, sizeof topic, 2000);
        cr_assert(not(eq(ptr, j, NULL)), "missing event %d", i + 1);
        cr_expect(eq(str, (char *)jstr(j, "keyword"), (char *)words[i]));
        cr_expect(eq(i64, jint(j, "seq"), i + 1));
        char want[64];
        snprintf(want, sizeof want, "kws.detection.%s", words[i]);
        cr_expect(eq(str, topic, want));
        json_decref(j);
    }
    /* Only yes (1, 4, 6) on the other (over ipc); 6 is the last one sent, so
     * anything else would have arrived before it. */
    static const int yes_seq[] = {1, 4, 6};
    for (int i = 0; i < 3; i++) {
        json_t *j = next_detection(subs[1], topic, sizeof topic, 2000);
        cr_assert(not(eq(ptr, j, NULL)), "missing yes %d", yes_seq[i]);
        cr_expect(eq(str, topic, "kws.detection.yes"));
        cr_expect(eq(i64, jint(j, "seq"), yes_seq[i]));
        json_decref(j);
    }
    cr_expect(eq(ptr, next_detection(subs[1], topic, sizeof topic, 100), NULL));

    zmq_close(subs[0]);
    zmq_close(subs[1]);
    transport_pub_close(&p);
}

/* A subscriber that never reads: every send returns at once, the overflow is
 * dropped (its first refusal counted), what it was given arrives in order, and
 * once it reads again events flow again. */
Test(transport, stalled_subscriber_never_blocks) {
    char msg[256], topic[64];
    struct transport_pub p;
    const char *eps[] = {"tcp://127.0.0.1:*"};
    enum { N = 100000, HWM = 10 };

    cr_assert(eq(int, transport_pub_open(&p, eps, 1, HWM, msg, sizeof msg), 0), "%s", msg);
    const char *all[] = {"kws.detection."};
    void *s = sub_open(NULL, p.bound[0], all, 1, HWM);
    sync_subs(&p, &s, 1);

    uint64_t sent0, dropped0;
    transport_pub_stats(&p, &sent0, &dropped0);
    int ok = 0, again = 0, other = 0;
    for (int i = 0; i < N; i++) {
        struct kws_detection ev = {.keyword = "yes",
                                   .score = 0.9f,
                                   .seq = (uint64_t)i + 1,
                                   .model = "a model name long enough to fill buffers sooner"};
        int rc = transport_pub_detection(&p, &ev);
        if (rc == 0)
            ok++;
        else if (rc == KWS_EAGAIN)
            again++;
        else
            other++;
    }
    uint64_t sent, dropped;
    transport_pub_stats(&p, &sent, &dropped);
    cr_log_info("%d events to a stalled subscriber (queue %d): %d accepted, %d dropped", N, HWM, ok,
                again);
    cr_expect(eq(int, other, 0));
    cr_expect(gt(int, again, 0), "nothing was dropped");
    cr_expect(eq(int, ok + again, N));
    cr_expect(eq(u64, sent - sent0, (uint64_t)ok));
    cr_expect(eq(u64, dropped - dropped0, (uint64_t)again));

    /* The subscriber reads what it was given, in order, with gaps only. */
    int64_t last = 0;
    int got = 0;
    json_t *j;
    while ((j = next_detection(s, topic, sizeof topic, 300))) {
        int64_t seq = jint(j, "seq");
        cr_assert(gt(i64, seq, last), "out of order");
        last = seq;
        got++;
        json_decref(j);
    }
    cr_expect(gt(int, got, 0), "received nothing");
    cr_expect(lt(int, got, N), "the stalled subscriber got all %d", N);

    /* Drained: the next event goes through again. */
    struct kws_detection ev = {.keyword = "go", .seq = N + 1};
    int rc = KWS_EAGAIN;
    for (int tries = 0; tries < 100 && rc == KWS_EAGAIN; tries++) {
        rc = transport_pub_detection(&p, &ev);
        if (rc == KWS_EAGAIN)
            sleep_ms(10);
    }
    cr_assert(eq(int, rc, 0));
    /* queued events the 300 ms read left come first, still in order */
    int64_t seq = 0;
    while (seq != N + 1 && (j = next_detection(s, topic, sizeof topic, 2000))) {
        seq = jint(j, "seq");
        cr_assert(gt(i64, seq, last), "out of order");
        last = seq;
        if (seq == N + 1)
            cr_expect(eq(str, (char *)jstr(j, "keyword"), "go"));
        json_decref(j);
    }
    cr_expect(eq(i64, seq, (int64_t)N + 1), "the event after the drain never came");

    zmq_close(s);
    transport_pub_close(&p);
}

/* A stalled subscriber loses events, counted as dropped, but costs a reading
 * subscriber nothing: it receives every event, in order. */
Test(transport, stalled_subscriber_costs_the_others_nothing) {
    char msg[256], topic[64];
    struct transport_pub p;
    const char *eps[] = {"inproc://kws-two"};

    cr_assert(eq(int, transport_pub_open(&p, eps, 1, 5, msg, sizeof msg), 0), "%s", msg);
    const char *all[] = {"kws.detection."};
    void *subs[2] = {sub_open(p.zctx, eps[0], all, 1, 5), sub_open(p.zctx, eps[0], all, 1, 5)};
    sync_subs(&p, subs, 2);
    /* Drain the reader of the sync heartbeats; the stalled one keeps its. */
    while (next_detection(subs[1], topic, sizeof topic, 50))
        ;

    uint64_t sent0, dropped0, sent, dropped;
    transport_pub_stats(&p, &sent0, &dropped0);
    int n_again = 0;
    int64_t last = 0;
    int got = 0;
    for (int i = 0; i < 200; i++) {
        struct kws_detection ev = {.keyword = "yes", .seq = (uint64_t)i + 1};
        sleep_ms(1); /* events come at a pace a reading subscriber keeps up with */
        int rc = transport_pub_detection(&p, &ev);
        cr_assert(rc == 0 || rc == KWS_EAGAIN, "rc %d", rc);
        n_again += rc == KWS_EAGAIN;
        /* The reader keeps up: read whatever has arrived. */
        json_t *j;
        while ((j = next_detection(subs[1], topic, sizeof topic, 0))) {
            cr_assert(eq(i64, jint(j, "seq"), last + 1), "the reader missed an event");
            last = jint(j, "seq");
            got++;
            json_decref(j);
        }
    }
    json_t *j;
    while ((j = next_detection(subs[1], topic, sizeof topic, 100))) {
        cr_assert(eq(i64, jint(j, "seq"), last + 1), "the reader missed an event");
        last = jint(j, "seq");
        got++;
        json_decref(j);
    }
    transport_pub_stats(&p, &sent, &dropped);
    cr_expect(gt(int, n_again, 0), "the stalled subscriber never filled");
    cr_expect(eq(u64, dropped - dropped0, (uint64_t)n_again));
    cr_expect(eq(u64, sent - sent0 + dropped - dropped0, 200));
    cr_expect(eq(int, got, 200), "the reader got %d of 200", got);
    zmq_close(subs[0]);
    zmq_close(subs[1]);
    transport_pub_close(&p);
}

Test(transport, no_subscriber_is_fine) {
    char msg[256];
    struct transport_pub p;
    const char *eps[] = {"tcp://127.0.0.1:*", "inproc://kws-nobody"};

    cr_assert(eq(int, transport_pub_open(&p, eps, 2, 1, msg, sizeof msg), 0), "%s", msg);
    for (int i = 0; i < 1000; i++) {
        struct kws_detection ev = {.keyword = "yes", .seq = (uint64_t)i + 1};
        cr_assert(eq(int, transport_pub_detection(&p, &ev), 0));
    }
    struct kws_status st = {0};
    cr_assert(eq(int, transport_pub_status(&p, &st), 0));
    uint64_t sent, dropped;
    transport_pub_stats(&p, &sent, &dropped);
    cr_expect(eq(u64, sent, 1001));
    cr_expect(eq(u64, dropped, 0));
    transport_pub_close(&p);
}

/* ==== Hostile peers ==== */

/* A ZMTP 3.0 peer written by hand on a plain TCP socket, so that it can
 * send what no libzmq socket would: it connects to port on 127.0.0.1, sends
 * the 64-byte greeting (signature, version 3.0, mechanism NULL, client) and a
 * READY command for socket type SUB, and reads the publisher's greeting.
 * Returns the connected descriptor. */
static int zmtp_peer_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(ge(int, fd, 0));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(eq(int, connect(fd, (struct sockaddr *)&a, sizeof a), 0), "%s", strerror(errno));

    uint8_t greeting[64] = {0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0, 'N', 'U', 'L', 'L'};
    cr_assert(eq(long, (long)write(fd, greeting, sizeof greeting), 64l));
    /* READY: command flag, size, name "READY", property Socket-Type = SUB. */
    static const uint8_t ready[] = {0x04, 25,  5,   'R', 'E', 'A', 'D', 'Y', 11,
                                    'S',  'o', 'c', 'k', 'e', 't', '-', 'T', 'y',
                                    'p',  'e', 0,   0,   0,   3,   'S', 'U', 'B'};
    cr_assert(eq(long, (long)write(fd, ready, sizeof ready), (long)sizeof ready));
    uint8_t theirs[64];
    size_t got = 0;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    while (got < sizeof theirs && poll(&pfd, 1, 2000) == 1) {
        ssize_t r = read(fd, theirs + got, sizeof theirs - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    cr_assert(eq(sz, got, sizeof theirs), "the publisher's greeting");
    cr_assert(eq(u8, theirs[0], 0xff));
    cr_assert(eq(u8, theirs[10], 3), "ZMTP 3");
    return fd;
}

/* Whether the publisher closes fd within ms (reads and discards what it
 * sends until then: its READY command). */
static int closed_by_peer(int fd, int ms) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    uint8_t buf[4096];
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        int left = ms - (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0 || poll(&pfd, 1, left) != 1)
            return 0;
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return 1;
    }
}

static long peak_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* A peer that announces a 1 GiB frame (and starts sending it) used to make
 * libzmq buffer it; with ZMQ_MAXMSGSIZE it is disconnected at the frame's
 * header, and the publisher goes on serving its real subscribers. A frame
 * just over the limit (a subscription no topic could match) is refused the
 * same way, one at the limit is not. */
Test(transport, oversize_frame_disconnects_the_peer) {
    char msg[256], topic[64];
    struct transport_pub p;
    const char *eps[] = {"tcp://127.0.0.1:*"};

    /* the hand-made peer's writes after a disconnect fail with EPIPE */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGPIPE, &ign, NULL);
    cr_assert(eq(int, transport_pub_open(&p, eps, 1, 100, msg, sizeof msg), 0), "%s", msg);
    const char *colon = strrchr(p.bound[0], ':');
    int port = atoi(colon + 1);
    const char *all[] = {"kws.detection."};
    void *s = sub_open(NULL, p.bound[0], all, 1, 0);
    sync_subs(&p, &s, 1);
    long rss0 = peak_rss_kib();

    /* 1 GiB announced: long-frame flag, 8-byte big-endian size, then 1 MiB of it. */
    int fd = zmtp_peer_open(port);
    uint8_t head[9] = {0x02, 0, 0, 0, 0, 0x40, 0, 0, 0};
    cr_assert(eq(long, (long)write(fd, head, sizeof head), 9l));
    static uint8_t chunk[1 << 16];
    memset(chunk, 1, sizeof chunk);
    /* MSG_NOSIGNAL: once the publisher has closed the connection a write
     * fails with EPIPE instead of ending the test with SIGPIPE */
    for (int i = 0; i < 16; i++)
        if (send(fd, chunk, sizeof chunk, MSG_NOSIGNAL) < 0)
            break; /* already disconnected */
    cr_assert(closed_by_peer(fd, 3000), "a peer announcing 1 GiB is disconnected");
    close(fd);

    /* A subscription of TRANSPORT_MAX_INBOUND + 1 bytes, then one of exactly
     * TRANSPORT_MAX_INBOUND: flag 1 (subscribe), then the prefix. */
    static uint8_t sub[2 + 8 + TRANSPORT_MAX_INBOUND + 1];
    for (int n = TRANSPORT_MAX_INBOUND + 1; n >= TRANSPORT_MAX_INBOUND; n--) {
        fd = zmtp_peer_open(port);
        sub[0] = 0x02; /* long frame: its size in 8 bytes */
        memset(sub + 1, 0, 8);
        sub[7] = (uint8_t)(n >> 8);
        sub[8] = (uint8_t)n;
        sub[9] = 1;
        memset(sub + 10, 'k', (size_t)n - 1);
        cr_assert(eq(long, (long)write(fd, sub, 9 + (size_t)n), 9l + n));
        int closed = closed_by_peer(fd, n > TRANSPORT_MAX_INBOUND ? 3000 : 500);
        cr_assert(eq(int, closed, n > TRANSPORT_MAX_INBOUND), "a %d-byte frame %s", n,
                  n > TRANSPORT_MAX_INBOUND ? "disconnects" : "is accepted");
        close(fd);
    }

    /* The real subscriber still gets events. */
    struct kws_detection ev = {.keyword = "yes", .score = 0.9f, .seq = 1};
    cr_assert(eq(int, transport_pub_detection(&p, &ev), 0));
    json_t *j = next_detection(s, topic, sizeof topic, 2000);
    cr_assert(not(eq(ptr, j, NULL)), "the publisher keeps working");
    cr_expect(eq(str, topic, "kws.detection.yes"));
    json_decref(j);
    long grown = peak_rss_kib() - rss0;
    cr_expect(lt(long, grown, 32l * 1024), "peak RSS grew by %ld KiB", grown);
    zmq_close(s);
    transport_pub_close(&p);
}

Test(transport, inproc_shares_the_publisher_context) {
    char msg[256], topic[64];
    struct transport_pub p;
    const char *eps[] = {"inproc://kws-events"};

    cr_assert(eq(int, transport_pub_open(&p, eps, 1, 100, msg, sizeof msg), 0), "%s", msg);
    const char *all[] = {"kws.detection."};
    void *s = sub_open(p.zctx, "inproc://kws-events", all, 1, 0);
    sync_subs(&p, &s, 1);
    struct kws_detection ev = {.keyword = "stop", .seq = 1};
    cr_assert(eq(int, transport_pub_detection(&p, &ev), 0));
    json_t *j = next_detection(s, topic, sizeof topic, 2000);
    cr_assert(not(eq(ptr, j, NULL)));
    cr_expect(eq(str, topic, "kws.detection.stop"));
    json_decref(j);
    zmq_close(s);
    transport_pub_close(&p);
}

Test(transport, bad_endpoints_say_which_and_why) {
    char msg[256], want[512], ep[128];
    struct transport_pub p, q;

    const char *udp[] = {"udp://127.0.0.1:5"};
    cr_expect(eq(int, transport_pub_open(&p, udp, 1, 10, msg, sizeof msg), -EINVAL));
    cr_expect(
        eq(str, msg,
           "bind udp://127.0.0.1:5: unsupported transport (use tcp://, ipc:// or inproc://)"));
    cr_expect(eq(ptr, p.sock, NULL));
    cr_expect(eq(ptr, p.zctx, NULL));
    const char *foo[] = {"foo://bar"};
    cr_expect(eq(int, transport_pub_open(&p, foo, 1, 10, msg, sizeof msg), -EINVAL));
    cr_expect(
        eq(str, msg, "bind foo://bar: unsupported transport (use tcp://, ipc:// or inproc://)"));

    snprintf(ep, sizeof ep, "ipc://%s/no/such/dir/events", tmpdir);
    const char *ipc[] = {ep};
    cr_expect(eq(int, transport_pub_open(&p, ipc, 1, 10, msg, sizeof msg), -ENOENT));
    snprintf(want, sizeof want, "bind %s: directory %s/no/such/dir: %s", ep, tmpdir,
             strerror(ENOENT));
    cr_expect(eq(str, msg, want));

    const char *noport[] = {"tcp://127.0.0.1"};
    cr_expect(eq(int, transport_pub_open(&p, noport, 1, 10, msg, sizeof msg), -EINVAL));
    cr_expect(eq(str, msg, "bind tcp://127.0.0.1: Invalid argument"));

    /* A port in use: the second publisher names it. */
    const char *any[] = {"tcp://127.0.0.1:*"};
    cr_assert(eq(int, transport_pub_open(&p, any, 1, 10, msg, sizeof msg), 0), "%s", msg);
    char taken[TRANSPORT_ENDPOINT_LEN];
    snprintf(taken, sizeof taken, "%s", p.bound[0]);
    const char *again[] = {taken};
    cr_expect(eq(int, transport_pub_open(&q, again, 1, 10, msg, sizeof msg), -EADDRINUSE));
    snprintf(want, sizeof want, "bind %s: %s", taken, strerror(EADDRINUSE));
    cr_expect(eq(str, msg, want));
    transport_pub_close(&q);
    transport_pub_close(&p);

    /* A later endpoint failing releases the earlier ones. */
    const char *mixed[] = {taken, "udp://x"};
    cr_expect(eq(int, transport_pub_open(&q, mixed, 2, 10, msg, sizeof msg), -EINVAL));
    cr_assert(eq(int, transport_pub_open(&p, again, 1, 10, msg, sizeof msg), 0), "%s", msg);
    transport_pub_close(&p);
    transport_pub_close(&p); /* twice is fine */

    /* Bad arguments. */
    cr_expect(eq(int, transport_pub_open(&p, any, 0, 10, msg, sizeof msg), -EINVAL));
    cr_expect(eq(int, transport_pub_open(&p, any, 9, 10, msg, sizeof msg), -EINVAL));
    cr_expect(eq(int, transport_pub_open(&p, any, 1, 0, msg, sizeof msg), -EINVAL));
    cr_expect(eq(str, msg, "queue must be at least 1, got 0"));
    const char *empty[] = {""};
    cr_expect(eq(int, transport_pub_open(&p, empty, 1, 10, NULL, 0), -EINVAL));
    transport_pub_close(&p);

    /* A zeroed struct closes cleanly. */
    struct transport_pub z;
    memset(&z, 0, sizeof z);
    transport_pub_close(&z);
}

Test(transport, bad_keyword_is_refused_uncounted) {
    char msg[256];
    struct transport_pub p;
    const char *eps[] = {"inproc://kws-kw"};

    cr_assert(eq(int, transport_pub_open(&p, eps, 1, 10, msg, sizeof msg), 0), "%s", msg);
    struct kws_detection ev = {.keyword = NULL};
    cr_expect(eq(int, transport_pub_detection(&p, &ev), -EINVAL));
    ev.keyword = "";
    cr_expect(eq(int, transport_pub_detection(&p, &ev), -EINVAL));
    ev.keyword = "\xff\xfe";
    cr_expect(eq(int, transport_pub_detection(&p, &ev), -EINVAL));
    uint64_t sent = 1, dropped = 1;
    transport_pub_stats(&p, &sent, &dropped);
    cr_expect(eq(u64, sent, 0));
    cr_expect(eq(u64, dropped, 0));
    transport_pub_close(&p);
}

Test(transport, time_format) {
    char buf[32];

    cr_assert(eq(int, transport_time_format(0, buf, sizeof buf), 0));
    cr_expect(eq(str, buf, "1970-01-01T00:00:00.000Z"));
    cr_assert(eq(int, transport_time_format(1700000000123LL, buf, sizeof buf), 0));
    cr_expect(eq(str, buf, "2023-11-14T22:13:20.123Z"));
    cr_assert(eq(int, transport_time_format(-1, buf, sizeof buf), 0));
    cr_expect(eq(str, buf, "1969-12-31T23:59:59.999Z"));
    cr_assert(eq(int, transport_time_format(951782400999LL, buf, sizeof buf), 0));
    cr_expect(eq(str, buf, "2000-02-29T00:00:00.999Z"));
    cr_expect(eq(int, transport_time_format(0, buf, 24), -EINVAL)); /* needs 25 */
}

/* transport.c: the ZeroMQ publisher of keyword events and heartbeats.
 *
 * One ZMQ_PUB socket with ZMQ_XPUB_NODROP set. Why NODROP: a plain PUB socket
 * that meets a full subscriber queue drops the message for that subscriber
 * inside libzmq and still reports success, so the daemon could never count a
 * lost event. With NODROP (libzmq 4.3, xpub_t::xsend), a send first checks the
 * high-water mark of every subscriber pipe the topic matches; if any is full
 * the whole message is refused with EAGAIN (we send with ZMQ_DONTWAIT, so the
 * call returns at once) and we count it, then send it again without NODROP so
 * that the subscribers with room still get it (see pub_send). The check counts
 * whole messages, so
 * once the topic frame of a two-frame message is accepted, its JSON frame is
 * accepted too. On a PUB socket libzmq keeps no queue of subscription
 * messages for the application, so nothing grows when nobody reads them.
 *
 * What a local peer can make kwsd hold is bounded where libzmq can bound it:
 * ZMQ_MAXMSGSIZE disconnects a peer that announces a frame longer than a
 * subscription can usefully be (before, one announcing 1 GiB frames made
 * libzmq allocate them), and ZMQ_HANDSHAKE_IVL drops a connection that never
 * finishes its handshake. libzmq 4.3 has no cap on a socket's connections or
 * on the number of subscriptions a peer sends; the service unit bounds those
 * (LimitNOFILE=, MemoryMax=; docs/SERVICE.md).
 *
 * JSON is built with Jansson into a stack buffer; the only allocations per
 * message are Jansson's object nodes (events are rare: a few per minute, and
 * one heartbeat every few seconds).
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/transport.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#include "kws/err.h"

#define TOPIC_MAX 128
#define JSON_MAX 2048

/* ==== Helpers ==== */

/* libzmq's own errno values (ETERM, EFSM, ...) sit above ZMQ_HAUSNUMERO and
 * mean nothing to strerror; fold them into -EIO. */
static int zmq_err(int e) {
    if (e <= 0 || e >= ZMQ_HAUSNUMERO)
        return -EIO;
    return -e;
}

static int64_t wall_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int transport_time_format(int64_t wall_ms, char *buf, size_t len) {
    int64_t sec = wall_ms / 1000, ms = wall_ms % 1000;
    struct tm tm;

    if (ms < 0) { /* floor division for times before 1970 */
        ms += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    if (!gmtime_r(&t, &tm))
        return -EINVAL;
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    if (n == 0 || n + 6 > len)
        return -EINVAL;
    snprintf(buf + n, len - n, ".%03dZ", (int)ms);
    return 0;
}

/* Scores are floats: round to 1e-6 so JSON shows 0.93, not 0.93000000715. */
static double round_to(double x, double unit) {
    return round(x / unit) * unit;
}

/* The ipc:// path's directory must exist; libzmq would say only "No such
 * file or directory". Abstract sockets (ipc://@name) have no directory. */
static int check_ipc_dir(const char *ep, char *msg, size_t msglen) {
    const char *path = ep + 6;
    char dir[TRANSPORT_ENDPOINT_LEN];
    struct stat st;

    if (path[0] == '@' || path[0] == '\0')
        return 0;
    const char *slash = strrchr(path, '/');
    if (!slash)
        return 0; /* relative to the working directory, which exists */
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    memcpy(dir, path, n);
    dir[n] = '\0';
    if (stat(dir, &st) < 0) {
        int e = errno;
        kws_errmsg(0, msg, msglen, "bind %s: directory %s: %s", ep, dir, strerror(e));
        return -e;
    }
    if (!S_ISDIR(st.st_mode)) {
        kws_errmsg(0, msg, msglen, "bind %s: %s is not a directory", ep, dir);
        return -ENOTDIR;
    }
    return 0;
}

/* ==== Open and close ==== */

int transport_pub_open(struct transport_pub *p, const char *const *endpoints, int n, int queue,
                       char *msg, size_t msglen) {
    int rc, one = 1, zero = 0;

    memset(p, 0, sizeof *p);
    kws_errmsg(0, msg, msglen, "%s", "");
    if (!endpoints || n < 1 || n > TRANSPORT_MAX_ENDPOINTS) {
        kws_errmsg(0, msg, msglen, "need 1 to %d endpoints, got %d", TRANSPORT_MAX_ENDPOINTS, n);
        return -EINVAL;
    }
    if (queue < 1) {
        kws_errmsg(0, msg, msglen, "queue must be at least 1, got %d", queue);
        return -EINVAL;
    }
    for (int i = 0; i < n; i++) {
        if (!endpoints[i] || !endpoints[i][0] || strlen(endpoints[i]) >= TRANSPORT_ENDPOINT_LEN) {
            kws_errmsg(0, msg, msglen, "endpoint %d: empty or longer than %d bytes", i,
                       TRANSPORT_ENDPOINT_LEN - 1);
            return -EINVAL;
        }
    }

    p->zctx = zmq_ctx_new();
    if (!p->zctx) {
        rc = zmq_err(errno);
        kws_errmsg(0, msg, msglen, "zmq_ctx_new: %s", zmq_strerror(errno));
        return rc;
    }
    p->sock = zmq_socket(p->zctx, ZMQ_PUB);
    if (!p->sock) {
        rc = zmq_err(errno);
        kws_errmsg(0, msg, msglen, "zmq_socket: %s", zmq_strerror(errno));
        goto fail;
    }
    /* Options apply to pipes made after them: set all before binding. The
     * last two bound what a peer can make kwsd hold: no inbound frame (a
     * subscription, a handshake command) over TRANSPORT_MAX_INBOUND bytes,
     * and no connection that has not finished its handshake after
     * TRANSPORT_HANDSHAKE_MS; either peer is disconnected. */
    int64_t max_in = TRANSPORT_MAX_INBOUND;
    int handshake_ms = TRANSPORT_HANDSHAKE_MS;
    if (zmq_setsockopt(p->sock, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(p->sock, ZMQ_SNDHWM, &queue, sizeof queue) < 0 ||
        zmq_setsockopt(p->sock, ZMQ_XPUB_NODROP, &one, sizeof one) < 0 ||
        zmq_setsockopt(p->sock, ZMQ_MAXMSGSIZE, &max_in, sizeof max_in) < 0 ||
        zmq_setsockopt(p->sock, ZMQ_HANDSHAKE_IVL, &handshake_ms, sizeof handshake_ms) < 0) {
        rc = zmq_err(errno);
        kws_errmsg(0, msg, msglen, "zmq_setsockopt: %s", zmq_strerror(errno));
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        if (strncmp(endpoints[i], "tcp://[", 7) == 0 &&
            zmq_setsockopt(p->sock, ZMQ_IPV6, &one, sizeof one) < 0) {
            rc = zmq_err(errno);
            kws_errmsg(0, msg, msglen, "zmq_setsockopt(ZMQ_IPV6): %s", zmq_strerror(errno));
            goto fail;
        }
    }

    for (int i = 0; i < n; i++) {
        const char *ep = endpoints[i];
        if (strncmp(ep, "ipc://", 6) == 0 && (rc = check_ipc_dir(ep, msg, msglen)) < 0)
            goto fail;
        if (zmq_bind(p->sock, ep) < 0) {
            int e = errno;
            rc = zmq_err(e);
            /* EPROTONOSUPPORT: unknown scheme; ENOCOMPATPROTO: a scheme such
             * as udp:// that exists but not for PUB sockets. */
            if (e == EPROTONOSUPPORT || e == ENOCOMPATPROTO) {
                kws_errmsg(0, msg, msglen,
                           "bind %s: unsupported transport (use tcp://, ipc:// or inproc://)", ep);
                rc = -EINVAL;
            } else {
                kws_errmsg(0, msg, msglen, "bind %s: %s", ep, zmq_strerror(e));
            }
            goto fail;
        }
        size_t len = sizeof p->bound[i];
        if (zmq_getsockopt(p->sock, ZMQ_LAST_ENDPOINT, p->bound[i], &len) < 0)
            snprintf(p->bound[i], sizeof p->bound[i], "%s", ep);
        p->n_bound = i + 1;
    }
    return 0;

fail:
    transport_pub_close(p);
    return rc;
}

void transport_pub_close(struct transport_pub *p) {
    if (p->sock) {
        zmq_close(p->sock);
        p->sock = NULL;
    }
    if (p->zctx) {
        /* Linger is 0, so this does not wait for subscribers. */
        while (zmq_ctx_term(p->zctx) < 0 && errno == EINTR)
            ;
        p->zctx = NULL;
    }
    p->n_bound = 0;
}

/* ==== Sending ==== */

/* Sends both frames once; returns 0 or the errno of the failed frame. */
static int send_frames(struct transport_pub *p, const char *topic, const char *body, size_t n) {
    if (zmq_send(p->sock, topic, strlen(topic), ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0)
        return errno;
    /* The HWM test counts whole messages, so the second frame of an accepted
     * message is accepted too; a failure here is a hard error. */
    if (zmq_send(p->sock, body, n, ZMQ_DONTWAIT) < 0)
        return errno ? errno : EIO;
    return 0;
}

/* Sends [topic, json] without blocking and counts the outcome.
 *
 * With NODROP on, a full subscriber makes the send fail with EAGAIN for
 * everyone. So that one stalled subscriber cannot silence the others, the
 * message is then sent once more with NODROP off: libzmq delivers it to every
 * subscriber with room and skips the full ones. The message is counted as
 * dropped (some subscriber missed it) and KWS_EAGAIN returned.
 *
 * libzmq then stops offering messages to the full subscriber until it has
 * read part of its queue (dist_t marks its pipe inactive), and those misses
 * are invisible to the sender: "dropped" counts each time a stalled
 * subscriber's queue refused a message, not every message it missed. */
static int pub_send(struct transport_pub *p, const char *topic, json_t *obj) {
    static const int on = 1, off = 0;
    char body[JSON_MAX];
    int e;

    if (!obj)
        return -ENOMEM;
    /* Seven significant digits: a float score prints as 0.93, not 0.930000007152557. */
    size_t n = json_dumpb(obj, body, sizeof body, JSON_COMPACT | JSON_REAL_PRECISION(7));
    json_decref(obj);
    if (n == 0 || n > sizeof body)
        return -ENOMEM;
    if (!p->sock)
        return -EINVAL;

    e = send_frames(p, topic, body, n);
    if (e == 0) {
        p->sent++;
        return 0;
    }
    p->dropped++;
    if (e != EAGAIN) {
        p->failed++;
        return zmq_err(e);
    }
    zmq_setsockopt(p->sock, ZMQ_XPUB_NODROP, &off, sizeof off);
    e = send_frames(p, topic, body, n);
    zmq_setsockopt(p->sock, ZMQ_XPUB_NODROP, &on, sizeof on);
    if (e != 0 && e != EAGAIN) {
        p->failed++;
        return zmq_err(e);
    }
    return KWS_EAGAIN;
}

static int label_ok(const char *s) {
    if (!s || !s[0])
        return 0;
    size_t n = strlen(s);
    return n + sizeof TRANSPORT_TOPIC_DETECTION <= TOPIC_MAX;
}

int transport_pub_detection(struct transport_pub *p, const struct kws_detection *ev) {
    char topic[TOPIC_MAX], when[32];

    if (!label_ok(ev->keyword))
        return -EINVAL;
    snprintf(topic, sizeof topic, "%s%s", TRANSPORT_TOPIC_DETECTION, ev->keyword);
    if (transport_time_format(ev->wall_ms ? ev->wall_ms : wall_now_ms(), when, sizeof when) < 0)
        return -EINVAL;
    json_t *keyword = json_string(ev->keyword);
    if (!keyword)
        return -EINVAL; /* not UTF-8 */
    /* clang-format off */
    json_t *obj = json_pack("{s:o, s:f, s:f, s:I, s:I, s:s, s:I, s:s}",
                            "keyword", keyword,
                            "score", round_to(ev->score, 1e-6),
                            "threshold", round_to(ev->threshold, 1e-6),
                            "start_ms", (json_int_t)ev->start_ms,
                            "end_ms", (json_int_t)ev->end_ms,
                            "time", when,
                            "seq", (json_int_t)ev->seq,
                            "model", ev->model ? ev->model : "");
    /* clang-format on */
    return pub_send(p, topic, obj);
}

int transport_pub_status(struct transport_pub *p, const struct kws_status *st) {
    char when[32];

    if (transport_time_format(st->wall_ms ? st->wall_ms : wall_now_ms(), when, sizeof when) < 0)
        return -EINVAL;
    /* clang-format off */
    json_t *obj = json_pack("{s:f, s:I, s:I, s:I, s:f, s:I, s:I, s:s, s:s, s:i, s:s, s:I, s:b, "
                            "s:I, s:s, s:I}",
                            "uptime_s", round_to(st->uptime_s, 1e-3),
                            "frames", (json_int_t)st->frames,
                            "xruns", (json_int_t)st->xruns,
                            "capture_open_errors", (json_int_t)st->open_errors,
                            "rtf", round_to(st->rtf, 1e-6),
                            "events_sent", (json_int_t)p->sent,
                            "events_dropped", (json_int_t)p->dropped,
                            "time", when,
                            "device", st->device ? st->device : "",
                            "rate", st->rate,
                            "model", st->model ? st->model : "",
                            "detections", (json_int_t)st->detections,
                            "paused", st->paused,
                            "suppressed", (json_int_t)st->suppressed,
                            "mqtt", st->mqtt ? st->mqtt : "off",
                            "mqtt_dropped", (json_int_t)st->mqtt_dropped);
    /* clang-format on */
    return pub_send(p, TRANSPORT_TOPIC_STATUS, obj);
}

void transport_pub_stats(const struct transport_pub *p, uint64_t *sent, uint64_t *dropped) {
    if (sent)
        *sent = p->sent;
    if (dropped)
        *dropped = p->dropped;
}

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
 * CURVE (optional, transport_pub_open_curve): the socket gets
 * ZMQ_CURVE_SERVER and the server's secret key before it binds, and every
 * client's key goes to a ZAP handler (RFC 27), a REP socket on
 * inproc://zeromq.zap.01 in the same context that answers 200 for the
 * allowed keys and 400 for the rest. libzmq 4.3 lets every CURVE client in
 * when no handler is bound, so the handler is bound before the endpoints
 * and closed after the publisher. Its ZMQ_FD (not the publisher's) is
 * polled by the owner's loop; a handshake waits for the answer in libzmq's
 * I/O thread.
 *
 * JSON is built with Jansson into a stack buffer; the only allocations per
 * message are Jansson's object nodes (events are rare: a few per minute, and
 * one heartbeat every few seconds).
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "kws/err.h"
#include "kws/log.h"

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

/* ==== CURVE and its ZAP handler ==== */

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

/* Decodes k, a 40-character Z85 key, into its 32 bytes. Returns 1, or 0
 * for NULL, another length or a character outside Z85. */
static int z85_key(uint8_t out[32], const char *k) {
    return k && strlen(k) == 40 && zmq_z85_decode(out, k) != NULL;
}

/* Decodes the allowed client keys, binds the ZAP handler and turns CURVE on
 * for the endpoints bound after it. */
static int curve_setup(struct transport_pub *p, const struct transport_curve *cv, char *msg,
                       size_t msglen) {
    static const int one = 1, zero = 0;
    uint8_t secret[32];

    if (!zmq_has("curve"))
        return kws_errmsg(
            -ENOTSUP, msg, msglen,
            "transport.curve: this libzmq was built without CURVE (zmq_has(\"curve\") "
            "is false); install one with libsodium or turn CURVE off");
    if (!z85_key(secret, cv->secret_key))
        return kws_errmsg(-EINVAL, msg, msglen, "transport.curve: bad secret key");
    if (zmq_curve_public(p->public_key, cv->secret_key) < 0)
        return kws_errmsg(zmq_err(errno), msg, msglen, "zmq_curve_public: %s", zmq_strerror(errno));
    if (cv->n_clients < 1 || !cv->client_keys)
        return kws_errmsg(-EINVAL, msg, msglen, "transport.curve: no client keys");
    p->client_keys = calloc((size_t)cv->n_clients, sizeof *p->client_keys);
    p->client_names = calloc((size_t)cv->n_clients, sizeof *p->client_names);
    if (!p->client_keys || !p->client_names)
        return kws_errmsg(-ENOMEM, msg, msglen, "transport.curve: %s", strerror(ENOMEM));
    for (int i = 0; i < cv->n_clients; i++) {
        const char *k = cv->client_keys[i];
        if (!z85_key(p->client_keys[i], k))
            return kws_errmsg(-EINVAL, msg, msglen, "transport.curve: client key %d is not Z85", i);
        snprintf(p->client_names[i], sizeof p->client_names[i], "%s",
                 cv->client_names && cv->client_names[i] ? cv->client_names[i] : "");
        p->n_clients = i + 1;
    }
    p->zap = zmq_socket(p->zctx, ZMQ_REP);
    if (!p->zap || zmq_setsockopt(p->zap, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_bind(p->zap, ZAP_ENDPOINT) < 0)
        return kws_errmsg(zmq_err(errno), msg, msglen, "ZAP handler %s: %s", ZAP_ENDPOINT,
                          zmq_strerror(errno));
    if (zmq_setsockopt(p->sock, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
        zmq_setsockopt(p->sock, ZMQ_CURVE_SECRETKEY, secret, sizeof secret) < 0)
        return kws_errmsg(zmq_err(errno), msg, msglen, "zmq_setsockopt(CURVE): %s",
                          zmq_strerror(errno));
    return 0;
}

int transport_curve_client_set(void *sock, const char *server_key, const char *secret_key,
                               char *msg, size_t msglen) {
    uint8_t server[32], secret[32];
    char pub[TRANSPORT_Z85_KEY_LEN];

    if (!zmq_has("curve"))
        return kws_errmsg(-ENOTSUP, msg, msglen,
                          "this libzmq was built without CURVE (zmq_has(\"curve\") is false); "
                          "install one with libsodium");
    if (!z85_key(server, server_key))
        return kws_errmsg(-EINVAL, msg, msglen, "the server's public key is not a Z85 key");
    if (!z85_key(secret, secret_key))
        return kws_errmsg(-EINVAL, msg, msglen, "the client's secret key is not a Z85 key");
    if (zmq_curve_public(pub, secret_key) < 0)
        return kws_errmsg(zmq_err(errno), msg, msglen, "zmq_curve_public: %s", zmq_strerror(errno));
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server, sizeof server) < 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, 40) < 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, sizeof secret) < 0)
        return kws_errmsg(zmq_err(errno), msg, msglen, "zmq_setsockopt(CURVE): %s",
                          zmq_strerror(errno));
    return 0;
}

int transport_pub_zap_fd(const struct transport_pub *p) {
    int fd = -1;
    size_t len = sizeof fd;
    if (!p->zap || zmq_getsockopt(p->zap, ZMQ_FD, &fd, &len) < 0)
        return -1;
    return fd;
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One log line per refused key, at most TRANSPORT_ZAP_LOG_PER_MIN a minute;
 * the first line after a quiet spell says how many went unlogged. */
static void zap_log_refusal(struct transport_pub *p, const char *key, const char *addr) {
    int64_t now = mono_ms();

    if (now - p->zap_log_since_ms >= 60000) {
        p->zap_log_since_ms = now;
        p->zap_log_lines = 0;
    }
    if (p->zap_log_lines >= TRANSPORT_ZAP_LOG_PER_MIN) {
        p->zap_log_skipped++;
        return;
    }
    p->zap_log_lines++;
    if (p->zap_log_skipped)
        KWS_LOG(KWS_LOG_WARNING,
                "curve: %llu more refused client key(s) were not logged (at most %d a minute)",
                (unsigned long long)p->zap_log_skipped, TRANSPORT_ZAP_LOG_PER_MIN);
    p->zap_log_skipped = 0;
    KWS_LOG(KWS_LOG_WARNING,
            "curve: refused client key %s from %s: not in transport.curve.clients_dir", key,
            addr[0] ? addr : "?");
}

/* The index of the allowed client with this binary key, or -1. */
static int zap_find(const struct transport_pub *p, const uint8_t *key) {
    for (int i = 0; i < p->n_clients; i++)
        if (memcmp(p->client_keys[i], key, 32) == 0)
            return i;
    return -1;
}

/* Sends the six frames of a ZAP reply (RFC 27). */
static int zap_reply(void *s, const zmq_msg_t *request_id, const char *status, const char *text,
                     const char *user) {
    const char *rid = zmq_msg_data((zmq_msg_t *)request_id);
    size_t rid_len = zmq_msg_size((zmq_msg_t *)request_id);
    if (zmq_send(s, "1.0", 3, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0 ||
        zmq_send(s, rid, rid_len, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0 ||
        zmq_send(s, status, 3, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0 ||
        zmq_send(s, text, strlen(text), ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0 ||
        zmq_send(s, user, strlen(user), ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0 ||
        zmq_send(s, "", 0, ZMQ_DONTWAIT) < 0)
        return zmq_err(errno);
    return 0;
}

#define ZAP_FRAMES 8 /* version, request id, domain, address, identity, mechanism, credentials */

/* Reads one request (every frame of it) and answers it. Returns 1 if one
 * was answered, 0 if none was waiting, or a negative errno. */
static int zap_answer_one(struct transport_pub *p) {
    zmq_msg_t f[ZAP_FRAMES];
    int n = 0, more = 1, rc;

    for (int i = 0; i < ZAP_FRAMES; i++)
        zmq_msg_init(&f[i]);
    while (more) {
        zmq_msg_t *m = &f[n < ZAP_FRAMES - 1 ? n : ZAP_FRAMES - 1]; /* extra frames: overwrite */
        if (zmq_msg_recv(m, p->zap, ZMQ_DONTWAIT) < 0) {
            rc = errno == EAGAIN && n == 0 ? 0 : zmq_err(errno);
            goto out;
        }
        more = zmq_msg_more(m);
        n++;
    }
    size_t cred_len = n >= 7 ? zmq_msg_size(&f[6]) : 0;
    char addr[64] = "", key[TRANSPORT_Z85_KEY_LEN] = "";
    if (n < 7 || zmq_msg_size(&f[0]) != 3 || memcmp(zmq_msg_data(&f[0]), "1.0", 3) != 0 ||
        zmq_msg_size(&f[5]) != 5 || memcmp(zmq_msg_data(&f[5]), "CURVE", 5) != 0 ||
        cred_len != 32) {
        rc = zap_reply(p->zap, &f[n > 1 ? 1 : 0], "500", "bad ZAP request", "");
        goto out;
    }
    snprintf(addr, sizeof addr, "%.*s", (int)zmq_msg_size(&f[3]), (char *)zmq_msg_data(&f[3]));
    const uint8_t *cred = zmq_msg_data(&f[6]);
    int who = zap_find(p, cred);
    if (who >= 0) {
        p->zap_allowed++;
        KWS_LOG(KWS_LOG_DEBUG, "curve: client %s from %s allowed", p->client_names[who], addr);
        rc = zap_reply(p->zap, &f[1], "200", "OK", p->client_names[who]);
    } else {
        p->zap_refused++;
        zmq_z85_encode(key, cred, 32);
        zap_log_refusal(p, key, addr);
        rc = zap_reply(p->zap, &f[1], "400", "unknown client key", "");
    }
out:
    for (int i = 0; i < ZAP_FRAMES; i++)
        zmq_msg_close(&f[i]);
    return rc < 0 ? rc : (n > 0 ? 1 : 0);
}

int transport_pub_zap_process(struct transport_pub *p) {
    int answered = 0;

    if (!p->zap)
        return 0;
    /* ZMQ_FD is edge-triggered: drain while ZMQ_EVENTS says a request waits. */
    for (;;) {
        int ev = 0;
        size_t len = sizeof ev;
        if (zmq_getsockopt(p->zap, ZMQ_EVENTS, &ev, &len) < 0)
            return zmq_err(errno);
        if (!(ev & ZMQ_POLLIN))
            return answered;
        int rc = zap_answer_one(p);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return answered;
        answered++;
    }
}

/* Writes one line, key, into a new file path (never over an old one). */
static int key_write(const char *path, const char *key, mode_t mode, char *msg, size_t msglen) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return kws_errmsg(-errno, msg, msglen, "%s: %s", path, strerror(errno));
    char line[TRANSPORT_Z85_KEY_LEN + 1];
    int len = snprintf(line, sizeof line, "%s\n", key);
    ssize_t w = write(fd, line, (size_t)len);
    int e = w == len ? 0 : (w < 0 ? errno : EIO);
    if (e == 0 && fsync(fd) < 0)
        e = errno;
    if (close(fd) < 0 && e == 0)
        e = errno;
    if (e) {
        unlink(path);
        return kws_errmsg(-e, msg, msglen, "%s: %s", path, strerror(e));
    }
    return 0;
}

int transport_curve_keygen(const char *dir, const char *client, char *pub, char *msg,
                           size_t msglen) {
    char sec[TRANSPORT_Z85_KEY_LEN], pub_path[600], sec_path[600];
    struct stat st;

    if (client && (!client[0] || strchr(client, '/') || client[0] == '.' ||
                   strlen(client) >= TRANSPORT_CLIENT_NAME_LEN))
        return kws_errmsg(-EINVAL, msg, msglen,
                          "client name \"%s\": 1 to %d bytes, no '/', not starting with '.'",
                          client, TRANSPORT_CLIENT_NAME_LEN - 1);
    if (!zmq_has("curve"))
        return kws_errmsg(-ENOTSUP, msg, msglen, "this libzmq was built without CURVE");
    if (client) {
        snprintf(pub_path, sizeof pub_path, "%s/clients", dir);
        if (mkdir(pub_path, 0755) < 0 && errno != EEXIST)
            return kws_errmsg(-errno, msg, msglen, "%s: %s", pub_path, strerror(errno));
        snprintf(pub_path, sizeof pub_path, "%s/clients/%s.key", dir, client);
        snprintf(sec_path, sizeof sec_path, "%s/%s.key_secret", dir, client);
    } else {
        snprintf(pub_path, sizeof pub_path, "%s/server.key", dir);
        snprintf(sec_path, sizeof sec_path, "%s/server.key_secret", dir);
    }
    if (lstat(pub_path, &st) == 0 || lstat(sec_path, &st) == 0)
        return kws_errmsg(-EEXIST, msg, msglen, "%s exists: not overwritten",
                          lstat(sec_path, &st) == 0 ? sec_path : pub_path);
    if (zmq_curve_keypair(pub, sec) < 0)
        return kws_errmsg(zmq_err(errno), msg, msglen, "zmq_curve_keypair: %s",
                          zmq_strerror(errno));
    int rc = key_write(sec_path, sec, 0600, msg, msglen);
    if (rc == 0 && (rc = key_write(pub_path, pub, 0644, msg, msglen)) < 0)
        unlink(sec_path);
    memset(sec, 0, sizeof sec);
    return rc;
}

/* ==== Open and close ==== */

int transport_pub_open(struct transport_pub *p, const char *const *endpoints, int n, int queue,
                       char *msg, size_t msglen) {
    return transport_pub_open_curve(p, endpoints, n, queue, NULL, msg, msglen);
}

int transport_pub_open_curve(struct transport_pub *p, const char *const *endpoints, int n,
                             int queue, const struct transport_curve *curve, char *msg,
                             size_t msglen) {
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
    if (curve && (rc = curve_setup(p, curve, msg, msglen)) < 0)
        goto fail;
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
    /* After the publisher: while it is bound, a handshake must find the
     * ZAP handler (without one, libzmq lets every CURVE client in). */
    if (p->zap) {
        zmq_close(p->zap);
        p->zap = NULL;
    }
    free(p->client_keys);
    free(p->client_names);
    p->client_keys = NULL;
    p->client_names = NULL;
    p->n_clients = 0;
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

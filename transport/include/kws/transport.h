/* kws/transport.h: kwsd's ZeroMQ publisher of keyword events and heartbeats.
 *
 * One PUB socket, bound to one or more endpoints, sends two-frame messages
 * [topic, JSON] (DESIGN.md "Events"):
 *
 *     kws.detection.<label>  {"keyword","score","threshold","start_ms","end_ms",
 *                             "time","seq","model"}
 *     kws.status {"uptime_s","frames","xruns","capture_open_errors","rtf","events_sent",
 *                             "events_dropped","time","device","rate","model",
 *                             "detections","paused","suppressed","mqtt",
 *                             "mqtt_dropped"}
 *
 * "time" is the UTC wall clock in RFC 3339 with milliseconds
 * ("2026-05-01T12:00:00.123Z"). A subscriber to the prefix "kws.detection."
 * gets every keyword, to "kws.detection.yes" only "yes".
 *
 * Sends never block. The socket has ZMQ_XPUB_NODROP set, so when the queue
 * (ZMQ_SNDHWM messages) of any subscriber the message is for is full, the send
 * is refused at once and counted as dropped; it is then sent again without
 * NODROP, so every subscriber with room still receives it and only the full
 * ones miss it (a plain PUB would drop silently, uncounted). A stalled
 * subscriber therefore loses events but costs the others nothing. libzmq
 * then skips the stalled subscriber silently until it reads again, so
 * "dropped" counts each refusal by a full queue, not each event a stalled
 * subscriber missed. With no
 * subscriber at all a message is accepted (and counted as sent) and goes
 * nowhere.
 *
 * Usage:
 *
 *     struct transport_pub pub;
 *     const char *eps[] = {"tcp://127.0.0.1:5556", "ipc:///run/kwsd/events"};
 *     char msg[256];
 *     if (transport_pub_open(&pub, eps, 2, 1000, msg, sizeof msg) < 0)
 *         fprintf(stderr, "%s\n", msg);           // "bind ipc://...: ..."
 *     struct kws_detection ev = {.keyword = "yes", .score = 0.93f, ...};
 *     transport_pub_detection(&pub, &ev);         // 0 or KWS_EAGAIN (dropped)
 *     transport_pub_close(&pub);
 *
 * CURVE (ZeroMQ RFC 26), optional: transport_pub_open_curve gives the socket
 * a server secret key and the client public keys it lets in. Every endpoint
 * of the socket then requires CURVE; a client with another key, or without
 * CURVE, completes no handshake and receives nothing. Client keys are
 * checked by a ZAP handler (RFC 27): a REP socket on
 * inproc://zeromq.zap.01 in the publisher's context, bound before any
 * endpoint, which the owner serves from its event loop: poll
 * transport_pub_zap_fd for readable (it is edge-triggered) and call
 * transport_pub_zap_process, which answers every request waiting.
 *
 *     struct transport_curve cv = {.secret_key = "...40 Z85 characters...",
 *                                  .n_clients = 1, .client_keys = keys, .client_names = names};
 *     transport_pub_open_curve(&pub, eps, 1, 1000, &cv, msg, sizeof msg);
 *     uv_poll_init(loop, &poll, transport_pub_zap_fd(&pub));   // then, when readable:
 *     transport_pub_zap_process(&pub);
 *
 * A subscriber becomes a CURVE client with transport_curve_client_set
 * (kwsd-listen --curve-server-key/--curve-secret-key use it).
 *
 * Thread-safety: a transport_pub belongs to one thread (ZeroMQ sockets are
 * not thread-safe); kwsd uses it on its loop thread only.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRANSPORT_TRANSPORT_H
#define KWS_TRANSPORT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#define TRANSPORT_MAX_ENDPOINTS 8
#define TRANSPORT_ENDPOINT_LEN 256
#define TRANSPORT_TOPIC_DETECTION "kws.detection."
#define TRANSPORT_TOPIC_STATUS "kws.status"
/* Largest frame a peer may send the publisher, bytes (ZMQ_MAXMSGSIZE); a
 * peer that sends or announces a longer one is disconnected. A subscriber
 * sends only subscriptions (1 + topic prefix: at most 46 bytes for any topic
 * kwsd publishes) and handshake commands (about 30 bytes; a few hundred with
 * CURVE), so this leaves room for them all. */
#define TRANSPORT_MAX_INBOUND 512
/* A connection that has not completed the ZeroMQ handshake after this many
 * ms is closed (ZMQ_HANDSHAKE_IVL; libzmq's default is 30 s). */
#define TRANSPORT_HANDSHAKE_MS 5000

#define TRANSPORT_Z85_KEY_LEN 41     /* a CURVE key in Z85: 40 characters and a NUL */
#define TRANSPORT_CLIENT_NAME_LEN 64 /* a CURVE client's name, NUL included */
#define TRANSPORT_ZAP_LOG_PER_MIN 5  /* refused client keys logged per minute; the rest counted */

/* CURVE settings of a publisher: the server's secret key and the client
 * public keys it accepts. Strings are borrowed for the call. */
struct transport_curve {
    const char *secret_key;          /* server secret key, Z85 (40 characters) */
    int n_clients;                   /* entries in client_keys, >= 1 */
    const char *const *client_keys;  /* allowed client public keys, Z85 */
    const char *const *client_names; /* their names, for logs and the ZAP user id; may be NULL */
};

/* A publisher. The caller allocates it (zeroed or not); open fills it. All
 * fields are private except as read through the functions below; bound[i] may
 * be read directly after a successful open. */
struct transport_pub {
    void *zctx;       /* ZeroMQ context, owned; an inproc:// subscriber must use this one */
    void *sock;       /* PUB socket, owned */
    uint64_t sent;    /* messages the socket accepted */
    uint64_t dropped; /* messages refused because a queue was full */
    uint64_t failed;  /* messages refused for another reason (counted in dropped too) */
    int n_bound;      /* endpoints bound */
    char bound[TRANSPORT_MAX_ENDPOINTS]
              [TRANSPORT_ENDPOINT_LEN]; /* as bound: tcp "*" ports resolved */
    /* CURVE (transport_pub_open_curve); zap is NULL while it is off */
    void *zap;                                       /* ZAP handler: REP socket, owned */
    char public_key[TRANSPORT_Z85_KEY_LEN];          /* the server's public key, Z85 */
    int n_clients;                                   /* allowed client keys */
    uint8_t (*client_keys)[32];                      /* (n_clients, 32) binary keys, owned */
    char (*client_names)[TRANSPORT_CLIENT_NAME_LEN]; /* (n_clients) names, owned */
    uint64_t zap_allowed, zap_refused;               /* handshakes let in and refused */
    int64_t zap_log_since_ms;                        /* start of the refusal log's minute */
    int zap_log_lines;                               /* refusals logged in that minute */
    uint64_t zap_log_skipped;                        /* refusals not logged since the last line */
};

/* One detection, as the detector reports it. Strings are borrowed for the call. */
struct kws_detection {
    const char *keyword; /* label; non-empty, becomes the topic suffix */
    float score;         /* smoothed posterior that crossed the threshold, [0, 1] */
    float threshold;     /* the threshold it crossed */
    int64_t start_ms;    /* start of the keyword, ms of audio since the stream began */
    int64_t end_ms;      /* end (the detection frame), ms of audio since the stream began */
    uint64_t seq;        /* detection sequence number, from 1 */
    const char *model;   /* model name or path; NULL gives "" */
    int64_t wall_ms;     /* wall clock of the detection, ms since the epoch; 0 = now */
};

/* One heartbeat. events_sent/events_dropped come from the publisher itself. */
struct kws_status {
    double uptime_s;       /* seconds since the daemon started */
    uint64_t frames;       /* audio frames (10 ms hops) processed */
    uint32_t xruns;        /* ALSA overruns recovered */
    uint32_t open_errors;  /* failed opens of the capture device (missing at start, lost) */
    double rtf;            /* real-time factor: processing time / audio time */
    const char *device;    /* capture device name; NULL gives "" */
    int rate;              /* capture rate the device gave, Hz */
    const char *model;     /* model name or path; NULL gives "" */
    uint64_t detections;   /* detections made (sent or not) */
    int64_t wall_ms;       /* wall clock, ms since the epoch; 0 = now */
    int paused;            /* 1 while detection is paused (nothing is published) */
    uint64_t suppressed;   /* detections not published because detection was paused */
    const char *mqtt;      /* MQTT connection state (kws/mqtt.h); NULL gives "off" */
    uint64_t mqtt_dropped; /* MQTT messages dropped from a full queue */
};

/* Creates the context and PUB socket (ZMQ_SNDHWM = queue, ZMQ_LINGER 0,
 * ZMQ_XPUB_NODROP 1, ZMQ_MAXMSGSIZE TRANSPORT_MAX_INBOUND, ZMQ_HANDSHAKE_IVL
 * TRANSPORT_HANDSHAKE_MS) and binds it to each of the n endpoints (tcp://,
 * ipc:// or inproc://; "tcp://127.0.0.1:*" picks a free port, see bound[]).
 * An ipc:// endpoint's directory must exist. On failure nothing stays open, a
 * message naming the endpoint and the reason goes to msg (may be NULL), and
 * the return is -EINVAL (bad arguments or endpoint), -ENOENT (no such ipc
 * directory), or another -errno from libzmq (-EADDRINUSE, ...). */
int transport_pub_open(struct transport_pub *p, const char *const *endpoints, int n, int queue,
                       char *msg, size_t msglen);

/* transport_pub_open with CURVE when curve is non-NULL: checks that libzmq
 * has CURVE (zmq_has("curve"); -ENOTSUP and a message if not), decodes the
 * keys (-EINVAL on a bad one), binds the ZAP handler, then sets
 * ZMQ_CURVE_SERVER and ZMQ_CURVE_SECRETKEY before binding the endpoints.
 * public_key then holds the server's public key, for clients. */
int transport_pub_open_curve(struct transport_pub *p, const char *const *endpoints, int n,
                             int queue, const struct transport_curve *curve, char *msg,
                             size_t msglen);

/* The descriptor to poll for readable before transport_pub_zap_process
 * (libzmq's ZMQ_FD of the ZAP socket: edge-triggered, owned by libzmq; do
 * not close it), or -1 while CURVE is off. */
int transport_pub_zap_fd(const struct transport_pub *p);

/* Answers every ZAP request waiting, without blocking: "200" for a client
 * key in the allowed list (its name as the user id), "400" otherwise, with
 * one log line per refused key, at most TRANSPORT_ZAP_LOG_PER_MIN a minute
 * (the others are counted and summed up in the next line). Returns the
 * number of requests answered, or a negative errno from libzmq. */
int transport_pub_zap_process(struct transport_pub *p);

/* Makes a CURVE key pair with zmq_curve_keypair and writes it into dir:
 * with client NULL, dir/server.key_secret (mode 0600) and dir/server.key;
 * with a client name, dir/clients/<client>.key (its public key, for the
 * server's clients_dir; dir/clients is made if missing) and
 * dir/<client>.key_secret (mode 0600, for the client). Each file holds one
 * line, the Z85 key. No file is ever overwritten: if one exists, nothing is
 * written and -EEXIST is returned. The public key goes to pub (41 bytes).
 * Returns 0 or a negative errno with a message naming the file in msg. */
int transport_curve_keygen(const char *dir, const char *client, char *pub, char *msg,
                           size_t msglen);

/* Makes sock (a ZeroMQ socket, e.g. a SUB, before it connects) a CURVE
 * client of a publisher opened with transport_pub_open_curve: server_key is
 * the server's public key, secret_key the client's secret key (both Z85, 40
 * characters; read them with config_key_file_read). The client's public
 * key, the one the server's clients_dir must hold, is derived from the
 * secret key with zmq_curve_public. Returns 0, -ENOTSUP when libzmq has no
 * CURVE, -EINVAL for a key that is not Z85, or another -errno from libzmq,
 * with a message in msg (may be NULL). A server that refuses the key is not
 * an error here: the handshake fails later and the socket receives nothing. */
int transport_curve_client_set(void *sock, const char *server_key, const char *secret_key,
                               char *msg, size_t msglen);

/* Publishes one detection on "kws.detection.<keyword>". Never blocks.
 * Returns 0 when the socket took it, KWS_EAGAIN when a queue was full (the
 * message is dropped and counted), -EINVAL for a missing/too long keyword,
 * -ENOMEM if the JSON could not be built, or another -errno from libzmq
 * (counted as dropped as well). */
int transport_pub_detection(struct transport_pub *p, const struct kws_detection *ev);

/* Publishes one heartbeat on "kws.status". Same returns as above. */
int transport_pub_status(struct transport_pub *p, const struct kws_status *st);

/* Messages accepted and dropped so far (both may be NULL). */
void transport_pub_stats(const struct transport_pub *p, uint64_t *sent, uint64_t *dropped);

/* Closes the socket (pending messages are discarded: linger 0) and the
 * context. Safe on a zeroed struct, on a failed open, and twice. */
void transport_pub_close(struct transport_pub *p);

/* Formats a wall-clock time (ms since the epoch) as RFC 3339 UTC with
 * milliseconds, "YYYY-MM-DDTHH:MM:SS.mmmZ", into buf (at least 25 bytes).
 * Returns 0, or -EINVAL if it does not fit or the time cannot be broken down. */
int transport_time_format(int64_t wall_ms, char *buf, size_t len);

#endif /* KWS_TRANSPORT_TRANSPORT_H */

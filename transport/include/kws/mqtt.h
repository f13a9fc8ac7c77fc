/* kws/mqtt.h: kwsd's MQTT publisher of keyword events (the Hermes hotword topics).
 *
 * One libmosquitto client, driven from a libuv loop without ever blocking it:
 *
 *   - on a detection, `hermes/hotword/<label>/detected` (QoS 0, not retained)
 *     with the Hermes fields
 *         {"siteId","modelId","modelVersion","modelType","currentSensitivity",
 *          "sessionId"}
 *     (sessionId is null: kwsd starts no dialogue session);
 *   - it subscribes to `hermes/hotword/toggleOff` and `hermes/hotword/toggleOn`;
 *     a message whose JSON "siteId" is this client's site id (a message with
 *     no siteId means "default", as in Hermes) calls on_toggle(ctx, 1) or
 *     (ctx, 0). The publisher keeps no paused state of its own: the caller
 *     owns it, so that other sources (signals) share it.
 *
 * How it never blocks: the broker's host name is resolved and the TCP
 * connection started (mosquitto_connect_async / mosquitto_reconnect_async,
 * which call getaddrinfo) on libuv's thread pool, while the loop thread does
 * not touch the client. Once that returns, the client's socket is watched by
 * one uv_poll_t (readable always, writable while libmosquitto has bytes to
 * send) that calls mosquitto_loop_read / mosquitto_loop_write, and a 1 s
 * uv_timer calls mosquitto_loop_misc (keep-alive pings). The socket is
 * non-blocking, so a slow broker only leaves bytes waiting.
 *
 * A broker that is down or refuses: the connection is retried after
 * TRANSPORT_MQTT_RETRY_FIRST_MS, doubling up to TRANSPORT_MQTT_RETRY_MAX_MS, and the delay goes
 * back to the first once a connection is accepted (CONNACK). A connection
 * not accepted within TRANSPORT_MQTT_CONNECT_TIMEOUT_MS is dropped and retried.
 *
 * Messages are never queued without bound. While the client is not
 * connected, or while libmosquitto still holds unsent bytes (a slow broker),
 * a detection goes into a ring of TRANSPORT_MQTT_QUEUE_LEN messages; when it is full
 * the oldest is dropped and counted (stats.dropped). The ring is sent in
 * order once the connection is back and the socket drains.
 *
 * Usage:
 *
 *     struct transport_mqtt m;
 *     struct transport_mqtt_cfg mc = {.host = "127.0.0.1", .port = 1883, .site_id = "default"};
 *     char msg[256];
 *     if (transport_mqtt_open(&m, loop, &mc, on_toggle, ctx, msg, sizeof msg) < 0)
 *         fprintf(stderr, "%s\n", msg);     // "mqtt.password_file: /x: No such file..."
 *     struct transport_mqtt_detection d = {.label = "stop", .model = "commands.kwsm",
 *                                          .threshold = 0.99f};
 *     transport_mqtt_publish(&m, &d);       // 0 (sent or queued), or an error
 *     transport_mqtt_close(&m, on_closed);  // on_closed(&m) once nothing refers to m
 *
 * Handle lifetimes: the struct embeds its uv handles and is referred to by a
 * thread-pool request while a connection attempt runs, so it must stay in
 * place from a successful open until on_closed runs. A failed open leaves
 * nothing behind.
 *
 * Thread-safety: every function must be called on the loop's thread; the
 * callbacks run there too.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRANSPORT_MQTT_H
#define KWS_TRANSPORT_MQTT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TRANSPORT_MQTT_RETRY_FIRST_MS 500       /* first reconnect delay */
#define TRANSPORT_MQTT_RETRY_MAX_MS 30000       /* the delay doubles up to this */
#define TRANSPORT_MQTT_CONNECT_TIMEOUT_MS 10000 /* connect + CONNACK must take less */
#define TRANSPORT_MQTT_KEEPALIVE_S 30           /* MQTT keep-alive */
#define TRANSPORT_MQTT_QUEUE_LEN 32             /* messages held while disconnected */
#define TRANSPORT_MQTT_TOPIC_LEN 160            /* longest topic, NUL included */
#define TRANSPORT_MQTT_PAYLOAD_LEN 512          /* longest payload, bytes */
#define TRANSPORT_MQTT_SITE_ID_LEN 64           /* longest site id, NUL included */
#define TRANSPORT_MQTT_PASSWORD_LEN 256         /* longest password, NUL included */

struct mosquitto; /* libmosquitto's client */

/* Where and how to connect. Strings are copied by open. */
struct transport_mqtt_cfg {
    const char *host;          /* broker host name or address; required */
    int port;                  /* TCP port, 1..65535 (1883; 8883 is usual with TLS) */
    const char *ca_file;       /* TLS: CA certificate file (PEM); NULL or "" = no TLS */
    const char *username;      /* NULL or "" = none */
    const char *password_file; /* file whose first line is the password; NULL or "" = none */
    const char *site_id;       /* Hermes siteId; NULL = "default" */
};

/* Called on the loop thread when a toggle for this site arrives: paused is 1
 * for toggleOff, 0 for toggleOn. */
typedef void (*transport_mqtt_toggle_cb)(void *ctx, int paused);

/* One detection as the Hermes message needs it. Strings are borrowed. */
struct transport_mqtt_detection {
    const char *label; /* keyword; becomes <wakewordId> in the topic; no '/', '+' or '#' */
    const char *model; /* modelId: the model file's name */
    float threshold;   /* the threshold it crossed; currentSensitivity is 1 - threshold */
};

enum transport_mqtt_state {
    TRANSPORT_MQTT_STATE_OFF = 0,      /* not opened, or closed */
    TRANSPORT_MQTT_STATE_CONNECTING,   /* resolving, connecting, waiting for CONNACK */
    TRANSPORT_MQTT_STATE_CONNECTED,    /* CONNACK received */
    TRANSPORT_MQTT_STATE_DISCONNECTED, /* waiting to retry */
};

struct transport_mqtt_stats {
    enum transport_mqtt_state state;
    uint64_t sent;     /* messages handed to the connection */
    uint64_t queued;   /* messages in the ring now */
    uint64_t dropped;  /* messages dropped from a full ring (the oldest) */
    uint32_t connects; /* connections accepted by the broker */
    uint32_t failures; /* failed attempts and lost connections */
};

struct transport_mqtt_msg {
    char topic[TRANSPORT_MQTT_TOPIC_LEN];
    char payload[TRANSPORT_MQTT_PAYLOAD_LEN];
    int len; /* payload bytes */
};

struct transport_mqtt {
    uv_loop_t *loop;
    struct mosquitto *mosq;
    char host[256];
    int port;
    char site_id[TRANSPORT_MQTT_SITE_ID_LEN];
    transport_mqtt_toggle_cb on_toggle;
    void *ctx;
    uv_poll_t poll;      /* the client's socket, while one is open */
    int poll_open;       /* poll initialised and not yet closing */
    int poll_fd;         /* fd poll watches */
    int poll_events;     /* UV_READABLE | UV_WRITABLE as last started */
    uv_timer_t misc;     /* 1 s: loop_misc, connect timeout */
    uv_timer_t retry;    /* reconnect backoff */
    uv_work_t work;      /* connect on the thread pool */
    int working;         /* work queued, its after-callback still to run */
    int work_rc;         /* what the connect call returned (MOSQ_ERR_*) */
    int work_errno;      /* errno after it */
    uint64_t attempt_ms; /* loop time the current attempt started */
    int retry_ms;        /* next reconnect delay */
    int warned;          /* a failure was logged since the last connection */
    int closing;
    int pending; /* uv close callbacks still to come */
    void (*on_closed)(struct transport_mqtt *m);
    struct transport_mqtt_msg ring[TRANSPORT_MQTT_QUEUE_LEN];
    int head, count; /* oldest message and number held */
    struct transport_mqtt_stats stats;
};

/* Checks cfg, reads the password file, creates the client (clean session,
 * client id "kwsd-<site id>-<pid>"), and starts the first connection
 * attempt; returns at once. Returns 0, or a negative error with the reason
 * in msg: -EINVAL (bad settings), -errno for a password file that cannot be
 * read, -ENOMEM, KWS_ETRANSPORT (libmosquitto refused a setting, e.g. a CA
 * file it cannot use). A broker that cannot be reached is not an error:
 * the client keeps retrying. */
int transport_mqtt_open(struct transport_mqtt *m, uv_loop_t *loop,
                        const struct transport_mqtt_cfg *cfg, transport_mqtt_toggle_cb on_toggle,
                        void *ctx, char *msg, size_t msglen);

/* Publishes one detection, or queues it while the connection is down or
 * busy. Never blocks. Returns 0 (sent or queued; a queued message may push
 * the oldest out, counted in stats.dropped), -EINVAL for a label that cannot
 * be a topic level, -ENOMEM if the JSON could not be built. */
int transport_mqtt_publish(struct transport_mqtt *m, const struct transport_mqtt_detection *d);

/* Copies the counters and the connection state. */
void transport_mqtt_get_stats(const struct transport_mqtt *m, struct transport_mqtt_stats *st);

/* "off", "connecting", "connected" or "disconnected". */
const char *transport_mqtt_state_name(enum transport_mqtt_state s);

/* Sends DISCONNECT if connected (best effort, without waiting), closes every
 * handle, frees the client, then calls on_closed(m) (may be NULL) from the
 * loop. Safe on a zeroed struct (on_closed is then not called) and once per
 * open. */
void transport_mqtt_close(struct transport_mqtt *m, void (*on_closed)(struct transport_mqtt *m));

#endif /* KWS_TRANSPORT_MQTT_H */

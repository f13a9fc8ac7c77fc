/* mqtt.c: the MQTT publisher of keyword events (Hermes hotword topics) on a libuv loop.
 *
 * libmosquitto is used in its "external loop" mode: no thread of its own;
 * the loop thread calls mosquitto_loop_read / _write when the socket's
 * uv_poll says so and mosquitto_loop_misc once a second. The one call that
 * may block, the connect (it resolves the host name with getaddrinfo), runs
 * on libuv's thread pool (uv_queue_work) while the loop thread leaves the
 * client alone; everything else on the client happens on the loop thread,
 * so libmosquitto never sees two threads at once.
 *
 * libmosquitto closes the socket itself when a read or write fails (after
 * calling our disconnect callback) or when a keep-alive runs out (before
 * calling it). The poll handle is stopped and closed from that callback,
 * and a new connection is started only from the poll's close callback, so
 * there is never a second poll handle on one descriptor.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/mqtt.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kws/err.h"
#include "kws/log.h"

#define TOPIC_TOGGLE_OFF "hermes/hotword/toggleOff"
#define TOPIC_TOGGLE_ON "hermes/hotword/toggleOn"
#define TOGGLE_MAX_BYTES 4096 /* a toggle payload longer than this is ignored */

static void start_attempt(struct transport_mqtt *m);
static void maybe_finish(struct transport_mqtt *m);

/* ==== Helpers ==== */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_init(void) {
    mosquitto_lib_init();
}

const char *transport_mqtt_state_name(enum transport_mqtt_state s) {
    switch (s) {
    case TRANSPORT_MQTT_STATE_CONNECTING:
        return "connecting";
    case TRANSPORT_MQTT_STATE_CONNECTED:
        return "connected";
    case TRANSPORT_MQTT_STATE_DISCONNECTED:
        return "disconnected";
    case TRANSPORT_MQTT_STATE_OFF:
        break;
    }
    return "off";
}

/* Why a libmosquitto call failed, in words (errno for MOSQ_ERR_ERRNO). */
static const char *mosq_reason(int rc, int err) {
    if (rc == MOSQ_ERR_ERRNO)
        return strerror(err);
    if (rc == MOSQ_ERR_EAI)
        return "host name not found";
    return mosquitto_strerror(rc);
}

/* Reads the password on the first line of path into buf. */
static int read_password(const char *path, char *buf, size_t len, char *msg, size_t msglen) {
    char why[512];
    int rc = kws_first_line_read(path, 0, buf, len, why, sizeof why);
    if (rc < 0)
        return kws_errmsg(rc, msg, msglen, "mqtt.password_file: %s", why);
    if (!rc)
        return kws_errmsg(-EINVAL, msg, msglen, "mqtt.password_file: %s: empty first line", path);
    return 0;
}

/* A label is one topic level: non-empty, no '/', no wildcard. */
static int label_ok(const char *s) {
    if (!s || !s[0] || strpbrk(s, "/+#"))
        return 0;
    return strlen(s) + sizeof "hermes/hotword//detected" <= TRANSPORT_MQTT_TOPIC_LEN;
}

/* ==== The socket's poll handle ==== */

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches readable always, writable while libmosquitto has bytes to send. */
static void poll_update(struct transport_mqtt *m) {
    if (!m->poll_open)
        return;
    int ev = UV_READABLE | (mosquitto_want_write(m->mosq) ? UV_WRITABLE : 0);
    if (ev != m->poll_events) {
        uv_poll_start(&m->poll, ev, on_poll);
        m->poll_events = ev;
    }
}

/* Counts a failed attempt or a lost connection and logs it: the first
 * failure after start-up or after a connection at warning level, the
 * retries that follow at debug level, so a broker that stays away costs
 * one line. */
static void log_failure(struct transport_mqtt *m, const char *why) {
    m->stats.failures++;
    if (m->stats.state == TRANSPORT_MQTT_STATE_CONNECTED)
        KWS_LOG(KWS_LOG_WARNING, "mqtt: connection to %s:%d lost (%s); reconnecting", m->host,
                m->port, why);
    else if (!m->warned)
        KWS_LOG(KWS_LOG_WARNING, "mqtt: cannot connect to %s:%d (%s); retrying every %d s at most",
                m->host, m->port, why, TRANSPORT_MQTT_RETRY_MAX_MS / 1000);
    else
        KWS_LOG(KWS_LOG_DEBUG, "mqtt: connect to %s:%d: %s", m->host, m->port, why);
    m->warned = 1;
}

static void on_retry(uv_timer_t *t) {
    start_attempt(t->data);
}

/* Waits retry_ms, then tries again; the next wait is twice as long. */
static void schedule_retry(struct transport_mqtt *m) {
    m->stats.state = TRANSPORT_MQTT_STATE_DISCONNECTED;
    uv_timer_start(&m->retry, on_retry, (uint64_t)m->retry_ms, 0);
    m->retry_ms = m->retry_ms * 2 > TRANSPORT_MQTT_RETRY_MAX_MS ? TRANSPORT_MQTT_RETRY_MAX_MS
                                                                : m->retry_ms * 2;
}

static void on_poll_closed(uv_handle_t *h) {
    struct transport_mqtt *m = h->data;
    m->pending--;
    if (m->closing)
        maybe_finish(m);
    else
        schedule_retry(m); /* the socket is gone and nothing watches it */
}

/* Stops watching the socket (libmosquitto closes it, or has). */
static void poll_close(struct transport_mqtt *m) {
    if (!m->poll_open)
        return;
    m->poll_open = 0;
    m->pending++;
    uv_close((uv_handle_t *)&m->poll, on_poll_closed);
}

/* The connection failed or was lost: counts and logs it, stops watching;
 * the poll's close callback schedules the retry. A lost connection retries
 * after the first delay. */
static void lost(struct transport_mqtt *m, const char *why) {
    if (!m->poll_open)
        return;
    if (m->stats.state == TRANSPORT_MQTT_STATE_CONNECTED)
        m->retry_ms = TRANSPORT_MQTT_RETRY_FIRST_MS;
    log_failure(m, why);
    m->stats.state = TRANSPORT_MQTT_STATE_DISCONNECTED;
    poll_close(m);
}

/* Sends the ring, oldest first, while the connection takes messages at once. */
static void ring_flush(struct transport_mqtt *m) {
    while (m->count > 0 && m->stats.state == TRANSPORT_MQTT_STATE_CONNECTED && m->poll_open &&
           !mosquitto_want_write(m->mosq)) {
        struct transport_mqtt_msg *q = &m->ring[m->head];
        if (mosquitto_publish(m->mosq, NULL, q->topic, q->len, q->payload, 0, false) !=
            MOSQ_ERR_SUCCESS)
            break;
        m->stats.sent++;
        m->head = (m->head + 1) % TRANSPORT_MQTT_QUEUE_LEN;
        m->count--;
    }
}

static void on_poll(uv_poll_t *h, int status, int events) {
    struct transport_mqtt *m = h->data;
    int rc = MOSQ_ERR_SUCCESS;

    if (status < 0) {
        lost(m, uv_strerror(status));
        return;
    }
    if (events & UV_READABLE)
        rc = mosquitto_loop_read(m->mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS && m->poll_open && mosquitto_socket(m->mosq) >= 0 &&
        (events & UV_WRITABLE))
        rc = mosquitto_loop_write(m->mosq, 1);
    if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(m->mosq) < 0) {
        lost(m, mosq_reason(rc, errno));
        return;
    }
    ring_flush(m);
    poll_update(m);
}

/* ==== libmosquitto's callbacks (run inside loop_read / loop_write / loop_misc) ==== */

static void on_connect(struct mosquitto *mosq, void *obj, int rc) {
    struct transport_mqtt *m = obj;

    if (rc != 0) {
        /* libmosquitto then fails the read, which ends in lost() */
        KWS_LOG(KWS_LOG_WARNING, "mqtt: %s:%d refused the connection: %s", m->host, m->port,
                mosquitto_connack_string(rc));
        return;
    }
    m->stats.state = TRANSPORT_MQTT_STATE_CONNECTED;
    m->stats.connects++;
    m->retry_ms = TRANSPORT_MQTT_RETRY_FIRST_MS;
    m->warned = 0;
    KWS_LOG(KWS_LOG_NOTICE, "mqtt: connected to %s:%d (siteId \"%s\")", m->host, m->port,
            m->site_id);
    mosquitto_subscribe(mosq, NULL, TOPIC_TOGGLE_OFF, 0);
    mosquitto_subscribe(mosq, NULL, TOPIC_TOGGLE_ON, 0);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc) {
    struct transport_mqtt *m = obj;
    (void)mosq;
    if (!m->closing)
        lost(m, rc == MOSQ_ERR_KEEPALIVE ? "no answer to keep-alive" : mosquitto_strerror(rc));
}

/* toggleOff / toggleOn: JSON {"siteId": ...}; no siteId means "default". */
static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg) {
    struct transport_mqtt *m = obj;
    int off = strcmp(msg->topic, TOPIC_TOGGLE_OFF) == 0;
    int on = strcmp(msg->topic, TOPIC_TOGGLE_ON) == 0;
    json_error_t err;
    (void)mosq;

    if ((!off && !on) || msg->payloadlen > TOGGLE_MAX_BYTES)
        return;
    json_t *j = json_loadb(msg->payload, (size_t)msg->payloadlen, 0, &err);
    if (!json_is_object(j)) {
        KWS_LOG(KWS_LOG_INFO, "mqtt: %s: ignored: the payload is not a JSON object", msg->topic);
        json_decref(j);
        return;
    }
    json_t *site = json_object_get(j, "siteId");
    const char *s = json_is_string(site) ? json_string_value(site) : "default";
    int mine = strcmp(s, m->site_id) == 0;
    json_decref(j);
    if (mine && m->on_toggle)
        m->on_toggle(m->ctx, off);
}

/* ==== Connecting ==== */

/* Thread pool: resolve and start the TCP (and TLS) connection. The loop
 * thread does not touch the client while this runs (m->working). */
static void work_connect(uv_work_t *w) {
    struct transport_mqtt *m = w->data;
    errno = 0;
    m->work_rc = mosquitto_connect_async(m->mosq, m->host, m->port, TRANSPORT_MQTT_KEEPALIVE_S);
    m->work_errno = errno;
}

static void after_connect(uv_work_t *w, int status) {
    struct transport_mqtt *m = w->data;

    m->working = 0;
    if (m->closing || status == UV_ECANCELED) {
        maybe_finish(m);
        return;
    }
    int fd = mosquitto_socket(m->mosq);
    if (m->work_rc != MOSQ_ERR_SUCCESS || fd < 0) {
        log_failure(m, mosq_reason(m->work_rc, m->work_errno));
        schedule_retry(m);
        return;
    }
    uv_poll_init_socket(m->loop, &m->poll, fd);
    m->poll.data = m;
    m->poll_open = 1;
    m->poll_fd = fd;
    m->poll_events = 0;
    poll_update(m);
}

/* Starts one connection attempt on the thread pool. */
static void start_attempt(struct transport_mqtt *m) {
    if (m->closing || m->working || m->poll_open)
        return;
    m->stats.state = TRANSPORT_MQTT_STATE_CONNECTING;
    m->attempt_ms = uv_now(m->loop);
    m->working = 1;
    m->work.data = m;
    if (uv_queue_work(m->loop, &m->work, work_connect, after_connect) < 0) {
        m->working = 0;
        schedule_retry(m);
    }
}

/* Once a second: keep-alive pings, and the connect timeout. */
static void on_misc(uv_timer_t *t) {
    struct transport_mqtt *m = t->data;

    if (m->working || !m->poll_open)
        return;
    if (m->stats.state == TRANSPORT_MQTT_STATE_CONNECTING &&
        uv_now(m->loop) - m->attempt_ms > TRANSPORT_MQTT_CONNECT_TIMEOUT_MS) {
        /* The read that follows sees the end of the stream and fails. */
        shutdown(m->poll_fd, SHUT_RDWR);
        lost(m, "no answer within the connect timeout");
        /* lost() closed our poll; libmosquitto still owns the socket: let it
         * close it now, on a read that fails. */
        mosquitto_loop_read(m->mosq, 1);
        return;
    }
    int rc = mosquitto_loop_misc(m->mosq);
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)
        lost(m, mosq_reason(rc, errno));
    else
        poll_update(m);
}

/* ==== Public functions ==== */

int transport_mqtt_open(struct transport_mqtt *m, uv_loop_t *loop,
                        const struct transport_mqtt_cfg *cfg, transport_mqtt_toggle_cb on_toggle,
                        void *ctx, char *msg, size_t msglen) {
    char password[TRANSPORT_MQTT_PASSWORD_LEN], client_id[96];
    int rc;

    memset(m, 0, sizeof *m);
    kws_errmsg(0, msg, msglen, "%s", "");
    const char *site = cfg->site_id ? cfg->site_id : "default";
    if (!cfg->host || !cfg->host[0] || strlen(cfg->host) >= sizeof m->host)
        return kws_errmsg(-EINVAL, msg, msglen, "mqtt.host: empty or too long");
    if (cfg->port < 1 || cfg->port > 65535)
        return kws_errmsg(-EINVAL, msg, msglen, "mqtt.port: %d out of range [1, 65535]", cfg->port);
    if (!site[0] || strlen(site) >= sizeof m->site_id)
        return kws_errmsg(-EINVAL, msg, msglen, "mqtt.site_id: must be 1 to %d bytes",
                          TRANSPORT_MQTT_SITE_ID_LEN - 1);
    password[0] = '\0';
    if (cfg->password_file && cfg->password_file[0] &&
        (rc = read_password(cfg->password_file, password, sizeof password, msg, msglen)) < 0)
        return rc;
    pthread_once(&lib_once, lib_init);

    snprintf(m->host, sizeof m->host, "%s", cfg->host);
    snprintf(m->site_id, sizeof m->site_id, "%s", site);
    m->port = cfg->port;
    m->loop = loop;
    m->on_toggle = on_toggle;
    m->ctx = ctx;
    m->retry_ms = TRANSPORT_MQTT_RETRY_FIRST_MS;
    snprintf(client_id, sizeof client_id, "kwsd-%.40s-%ld", site, (long)getpid());
    m->mosq = mosquitto_new(client_id, true, m);
    if (!m->mosq) {
        memset(password, 0, sizeof password);
        return kws_errmsg(-ENOMEM, msg, msglen, "mqtt: cannot create a client");
    }
    rc = MOSQ_ERR_SUCCESS;
    if (cfg->username && cfg->username[0])
        rc = mosquitto_username_pw_set(m->mosq, cfg->username, password[0] ? password : NULL);
    memset(password, 0, sizeof password);
    if (rc != MOSQ_ERR_SUCCESS) {
        kws_errmsg(0, msg, msglen, "mqtt.username: %s", mosquitto_strerror(rc));
        goto fail;
    }
    if (cfg->ca_file && cfg->ca_file[0] &&
        (rc = mosquitto_tls_set(m->mosq, cfg->ca_file, NULL, NULL, NULL, NULL)) !=
            MOSQ_ERR_SUCCESS) {
        kws_errmsg(0, msg, msglen, "mqtt.tls: %s: %s", cfg->ca_file,
                   rc == MOSQ_ERR_INVAL ? "cannot read it" : mosquitto_strerror(rc));
        goto fail;
    }
    mosquitto_connect_callback_set(m->mosq, on_connect);
    mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
    mosquitto_message_callback_set(m->mosq, on_message);

    uv_timer_init(loop, &m->misc);
    uv_timer_init(loop, &m->retry);
    m->misc.data = m->retry.data = m;
    uv_timer_start(&m->misc, on_misc, 1000, 1000);
    start_attempt(m);
    return 0;

fail:
    mosquitto_destroy(m->mosq);
    m->mosq = NULL;
    return rc == MOSQ_ERR_NOMEM ? -ENOMEM : KWS_ETRANSPORT;
}

int transport_mqtt_publish(struct transport_mqtt *m, const struct transport_mqtt_detection *d) {
    struct transport_mqtt_msg q;

    if (!m->mosq || m->closing)
        return -EINVAL;
    if (!label_ok(d->label))
        return -EINVAL;
    snprintf(q.topic, sizeof q.topic, "hermes/hotword/%s/detected", d->label);
    /* Sensitivity in Hermes grows as detection gets easier: 1 - threshold. */
    double sens = round((1.0 - (double)d->threshold) * 1e6) / 1e6;
    /* clang-format off */
    json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:f, s:n}",
                            "siteId", m->site_id,
                            "modelId", d->model ? d->model : "",
                            "modelVersion", "",
                            "modelType", "personal",
                            "currentSensitivity", sens,
                            "sessionId");
    /* clang-format on */
    if (!obj)
        return -ENOMEM;
    size_t n = json_dumpb(obj, q.payload, sizeof q.payload, JSON_COMPACT | JSON_REAL_PRECISION(7));
    json_decref(obj);
    if (n == 0 || n > sizeof q.payload)
        return -ENOMEM;
    q.len = (int)n;

    if (m->stats.state == TRANSPORT_MQTT_STATE_CONNECTED && !m->working && m->poll_open &&
        m->count == 0 && !mosquitto_want_write(m->mosq) &&
        mosquitto_publish(m->mosq, NULL, q.topic, q.len, q.payload, 0, false) == MOSQ_ERR_SUCCESS) {
        m->stats.sent++;
        poll_update(m);
        return 0;
    }
    if (m->count == TRANSPORT_MQTT_QUEUE_LEN) {
        if (m->stats.dropped == 0)
            KWS_LOG(KWS_LOG_WARNING,
                    "mqtt: %d messages wait for the broker: dropping the oldest (counted in "
                    "kws.status mqtt_dropped; logged once)",
                    TRANSPORT_MQTT_QUEUE_LEN);
        m->stats.dropped++;
        m->head = (m->head + 1) % TRANSPORT_MQTT_QUEUE_LEN;
        m->count--;
    }
    m->ring[(m->head + m->count) % TRANSPORT_MQTT_QUEUE_LEN] = q;
    m->count++;
    return 0;
}

void transport_mqtt_get_stats(const struct transport_mqtt *m, struct transport_mqtt_stats *st) {
    *st = m->stats;
    st->queued = (uint64_t)m->count;
}

static void on_timer_closed(uv_handle_t *h) {
    struct transport_mqtt *m = h->data;
    m->pending--;
    maybe_finish(m);
}

/* Frees the client once no handle and no thread-pool request refer to m. */
static void maybe_finish(struct transport_mqtt *m) {
    if (!m->closing || m->pending > 0 || m->working || !m->mosq)
        return;
    mosquitto_destroy(m->mosq);
    m->mosq = NULL;
    m->stats.state = TRANSPORT_MQTT_STATE_OFF;
    if (m->on_closed)
        m->on_closed(m);
}

void transport_mqtt_close(struct transport_mqtt *m, void (*on_closed)(struct transport_mqtt *m)) {
    if (!m->mosq || m->closing)
        return;
    m->closing = 1;
    m->on_closed = on_closed;
    if (m->working)
        uv_cancel((uv_req_t *)&m->work); /* a running connect finishes; after_connect ends it */
    if (m->stats.state == TRANSPORT_MQTT_STATE_CONNECTED && m->poll_open)
        mosquitto_disconnect(m->mosq); /* one DISCONNECT packet, written without waiting */
    poll_close(m);
    m->pending += 2;
    uv_close((uv_handle_t *)&m->misc, on_timer_closed);
    uv_close((uv_handle_t *)&m->retry, on_timer_closed);
}

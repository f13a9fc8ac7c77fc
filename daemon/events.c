/* events.c: where a detection goes (ZeroMQ, MQTT) and the one paused state.
 *
 * A detection is published on every transport kwsd runs, or on none while
 * detection is paused. Pausing is for a voice assistant that speaks: it
 * mutes kwsd so that its own voice cannot wake it. Two sources pause and
 * resume it, and both set the same flag, k->paused:
 *   - MQTT: `hermes/hotword/toggleOff` / `toggleOn` for kwsd's siteId;
 *   - signals, for ZeroMQ users: SIGUSR1 pauses, SIGUSR2 resumes
 *     (`systemctl kill -s USR1 kwsd`, `kill -USR1 <pid>`).
 * The last message wins, whichever source sent it. While paused, audio keeps
 * flowing: the network and the detector run (so there is no warm-up when
 * detection resumes), frames and detections are counted, and the heartbeat
 * says "paused": true; only the publishing stops.
 *
 * SPDX-License-Identifier: MIT
 */
#include <signal.h>
#include <string.h>

#include "kws/log.h"
#include "kwsd.h"

/* Sets the paused state and logs a change, naming what asked for it. */
static void set_paused(struct kwsd *k, int paused, const char *source) {
    if (k->paused == paused)
        return;
    k->paused = paused;
    KWS_LOG(KWS_LOG_NOTICE, "detection %s (%s)", paused ? "paused" : "resumed", source);
}

static void on_mqtt_toggle(void *ctx, int paused) {
    set_paused(ctx, paused,
               paused ? "MQTT hermes/hotword/toggleOff" : "MQTT hermes/hotword/toggleOn");
}

static void on_pause_signal(uv_signal_t *h, int signum) {
    set_paused(h->data, signum == SIGUSR1, signum == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
}

int kwsd_events_open(struct kwsd *k) {
    char msg[512];

    uv_signal_init(&k->loop, &k->sig_pause);
    uv_signal_init(&k->loop, &k->sig_resume);
    k->sig_pause.data = k->sig_resume.data = k;
    uv_signal_start(&k->sig_pause, on_pause_signal, SIGUSR1);
    uv_signal_start(&k->sig_resume, on_pause_signal, SIGUSR2);
    if (!k->cfg.mqtt.host[0])
        return 0;
    struct transport_mqtt_cfg mc = {
        .host = k->cfg.mqtt.host,
        .port = k->cfg.mqtt.port,
        .ca_file = k->cfg.mqtt.tls,
        .username = k->cfg.mqtt.username,
        .password_file = k->cfg.mqtt.password_file,
        .site_id = k->cfg.mqtt.site_id,
    };
    int rc = transport_mqtt_open(&k->mqtt, &k->loop, &mc, on_mqtt_toggle, k, msg, sizeof msg);
    if (rc < 0) {
        KWS_LOG(KWS_LOG_ERR, "%s", msg);
        return rc;
    }
    k->mqtt_open = 1;
    KWS_LOG(KWS_LOG_INFO, "publishing Hermes hotword events to mqtt://%s:%d%s as siteId \"%s\"",
            mc.host, mc.port, mc.ca_file[0] ? " (TLS)" : "", mc.site_id);
    return 0;
}

static void on_closed(uv_handle_t *h) {
    (void)h;
}

void kwsd_events_close(struct kwsd *k) {
    if (k->sig_pause.loop && !uv_is_closing((uv_handle_t *)&k->sig_pause)) {
        uv_close((uv_handle_t *)&k->sig_pause, on_closed);
        uv_close((uv_handle_t *)&k->sig_resume, on_closed);
    }
    if (k->mqtt_open) {
        transport_mqtt_close(&k->mqtt, NULL);
        k->mqtt_open = 0;
    }
}

void kwsd_publish(struct kwsd *k, const struct kws_detection *ev) {
    if (k->paused) {
        k->suppressed++;
        KWS_LOG(KWS_LOG_INFO, "detection %llu not published: detection is paused",
                (unsigned long long)ev->seq);
        return;
    }
    if (transport_pub_detection(&k->pub, ev) < 0)
        KWS_LOG(KWS_LOG_DEBUG, "detection %llu dropped: no room in a subscriber's queue",
                (unsigned long long)ev->seq);
    if (k->mqtt_open) {
        struct transport_mqtt_detection d = {
            .label = ev->keyword, .model = ev->model, .threshold = ev->threshold};
        if (transport_mqtt_publish(&k->mqtt, &d) < 0)
            KWS_LOG(KWS_LOG_DEBUG, "detection %llu: label \"%s\" cannot be an MQTT topic level",
                    (unsigned long long)ev->seq, ev->keyword);
    }
}

void kwsd_events_status(const struct kwsd *k, struct kws_status *st) {
    struct transport_mqtt_stats ms = {0};

    if (k->mqtt_open)
        transport_mqtt_get_stats(&k->mqtt, &ms);
    st->paused = k->paused;
    st->suppressed = k->suppressed;
    st->mqtt = transport_mqtt_state_name(ms.state);
    st->mqtt_dropped = ms.dropped;
}

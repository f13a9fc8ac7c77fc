/* kwsd.h: the daemon's one context and the pieces main.c wires together.
 *
 * Everything kwsd owns lives in one struct kwsd, created in main() and
 * reached from libuv callbacks through handle->data. One loop thread owns
 * every handle; nothing here is shared with another thread.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWSD_DAEMON_KWSD_H
#define KWSD_DAEMON_KWSD_H

#include <stdint.h>
#include <uv.h>

#include "kws/audio_pipe.h"
#include "kws/capture.h"
#include "kws/config.h"
#include "kws/listener.h"
#include "kws/mqtt.h"
#include "kws/snn.h"
#include "kws/transport.h"
#include "kws/wyoming.h"

struct kwsd;
struct kwsd_set;

/* One front end (resampler -> mel -> encoder) shared by every model of the
 * set whose front end settings are equal: models with another sample rate,
 * mel layout or hop get their own. The pipe is built at the input rate
 * once the first block arrives (k->pipe_rate). */
struct kwsd_front {
    struct kws_frontend_cfg fe;
    struct audio_pipe pipe; /* zeroed until built */
    int built;              /* pipe is built (at k->pipe_rate) */
    struct kwsd *k;         /* for on_frame */
    struct kwsd_set *set;
    int index; /* in set->fronts */
};

/* One loaded model and the microphone's listener on it. The listener
 * borrows model, so a set lives on the heap and never moves. */
struct kwsd_model {
    struct snn_model model;
    struct kws_listener lis;        /* network state, detector and hold */
    char path[KWS_CONFIG_PATH_LEN]; /* the file it came from */
    const char *name;               /* base name of path: MQTT's modelId, Wyoming's info */
    int front;                      /* its front end, in set->fronts */
    int64_t time_base_ms; /* stream time of the listener's frame 0: reloads keep the clock */
};

/* What the model files and the detection settings build, kept together so
 * a reload builds a new set, swaps it in and frees the old (main.c). Every
 * model hears every frame of its front end. Keyword labels are unique
 * across the set, so an event's label names its model. */
struct kwsd_set {
    int n, n_fronts;
    struct kwsd_model m[KWS_CONFIG_MAX_MODELS];
    struct kwsd_front fronts[KWS_CONFIG_MAX_MODELS];
    char names[KWS_CONFIG_MAX_MODELS * 64]; /* "a.kwsm,b.kwsm": the heartbeat's model field */
};

struct kwsd {
    uv_loop_t loop;
    struct kws_config cfg; /* the running configuration */
    char config_path[KWS_CONFIG_PATH_LEN];
    const char *input_file;      /* --input: run on a file instead of a device */
    const char *device_override; /* --device */
    const char *model_override;  /* --model */
    int log_override;            /* --log-level given */
    enum kws_log_level log_level;

    struct kwsd_set *set; /* the models, their listeners and front ends */
    int pipe_rate;        /* input rate the front ends were built for; 0 = not built */

    struct transport_pub pub;
    uv_poll_t zap_poll;         /* transport.curve: the publisher's ZAP handler (pub.zap) */
    struct transport_mqtt mqtt; /* mqtt.host set: Hermes events (events.c) */
    int mqtt_open;
    int paused;                        /* detection paused: nothing is published (events.c) */
    uint64_t suppressed;               /* detections not published while paused */
    uv_signal_t sig_pause, sig_resume; /* SIGUSR1, SIGUSR2 */
    struct wyoming_server wy;          /* transport.wyoming: Home Assistant's wake-word clients */
    struct audio_capture cap;
    int cap_open;    /* audio_capture_open succeeded: cap must be closed */
    int cap_waiting; /* the device has not opened yet since start */

    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t heartbeat;
    uv_timer_t watchdog;
    uv_idle_t file_feed;   /* --input: pushes the file in blocks */
    uv_timer_t file_delay; /* --input-delay: starts file_feed */
    uint64_t input_delay_ms;

    struct sf_private_tag *file; /* --input: the open file (libsndfile SNDFILE) */
    float *file_buf;             /* (FILE_BLOCK, file_channels) */
    int file_rate, file_channels;
    int64_t file_frames; /* frames the file's header announces (SF_COUNT_MAX: unknown) */
    int64_t file_read;   /* frames read so far */

    uint64_t start_ns;           /* uv_hrtime at start */
    uint64_t frames;             /* 10 ms frames processed */
    uint64_t frames_at_watchdog; /* frames at the last watchdog tick */
    uint64_t detections;
    uint64_t bad_samples; /* input samples replaced by 0 (NaN, infinite, absurd) */
    uint64_t busy_ns;     /* time spent processing audio */
    uint64_t audio_ns;    /* audio time processed */
    int stopping;
    int exit_code;
};

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. Returns 1
 * if sent, 0 if not running under systemd, or a negative errno. */
int kwsd_notify(const char *state);

/* events.c: opens MQTT (if configured) and the pause/resume signals;
 * closes them; publishes one detection on every transport unless paused;
 * adds the paused and MQTT fields to a heartbeat. */
int kwsd_events_open(struct kwsd *k);
void kwsd_events_close(struct kwsd *k);
void kwsd_publish(struct kwsd *k, const struct kws_detection *ev);
void kwsd_events_status(const struct kwsd *k, struct kws_status *st);

/* The watchdog interval systemd asked for ($WATCHDOG_USEC), in ms, or 0. */
uint64_t kwsd_watchdog_ms(void);

#endif /* KWSD_DAEMON_KWSD_H */

/* kws/wyoming.h: a Wyoming wake-word server (the protocol Home Assistant uses).
 *
 * A TCP server on the daemon's libuv loop. Each client connection is one
 * Wyoming peer: a stream of events, each a JSON header line
 *
 *     {"type": "...", "data": {...}, "data_length": N, "payload_length": M}\n
 *
 * followed by N bytes of JSON data (merged over the header's "data") and M
 * bytes of payload (PCM audio for audio-chunk). The server answers:
 *
 *     describe                      -> info (one wake program, "kwsd", whose
 *                                      models are the keyword labels of every
 *                                      loaded model)
 *     detect {names}                -> listen only for those labels (none or
 *                                      an empty list: every keyword)
 *     audio-start {rate,width,channels,timestamp}
 *                                   -> a new stream: the client's listener
 *                                      and front end start from rest
 *     audio-chunk {rate,width,channels} + PCM
 *                                   -> resampled to each model's rate by a
 *                                      front end of kws/audio_pipe.h (one per
 *                                      distinct front end of the set; any
 *                                      rate 1000..384000 Hz, width 1..4 bytes,
 *                                      1..16 channels: the first is used)
 *                                      -> detection {name, timestamp} per
 *                                      event (timestamp: ms of stream time
 *                                      at the detecting frame, counted from
 *                                      audio-start's timestamp or 0)
 *     audio-stop                    -> not-detected, if the stream since
 *                                      audio-start had no detection
 *     ping                          -> pong
 *
 * The server serves a set of models (wyoming_server_set_models): each
 * client has its own kws_listener (kws/listener.h) on each shared, borrowed
 * model, and its own front end for each distinct front end among them, so
 * clients and the daemon's microphone hear independently. Keyword labels
 * are unique across the set (the daemon refuses a set where they are not),
 * so a detection's name says which model fired.
 *
 * Bounds (a hostile or slow client can neither block the loop nor grow
 * memory): a header line over WYOMING_MAX_HEADER bytes, data over
 * WYOMING_MAX_DATA, a payload over WYOMING_MAX_PAYLOAD, a header that is
 * not a JSON object with a string "type", or a wrong audio format closes
 * that client with a log line. Payloads are converted as they arrive, never
 * held whole. Replies wait in the kernel and libuv's write queue; a client
 * that lets more than WYOMING_MAX_QUEUED bytes pile up is closed. At most
 * WYOMING_MAX_CLIENTS clients at once: a newcomer then takes the slot of
 * the client silent longest, if it has sent nothing for
 * WYOMING_IDLE_EVICT_MS, else the newcomer is closed at accept. A read
 * holds at most 250 ms of a stream's audio, and a client that sends audio
 * more than WYOMING_MAX_AHEAD_MS ahead of real time is not read until the
 * clock catches up, so clients cost at most about real time each and the
 * microphone's reads always come between theirs.
 *
 *     struct wyoming_server wy = {0};
 *     struct wyoming_cfg c = {.endpoint = "tcp://0.0.0.0:10400", .model = &m,
 *                             .settings = &ls, .model_name = "commands.kwsm",
 *                             .version = "1.0"};
 *     if (wyoming_server_open(&wy, &loop, &c, msg, sizeof msg) < 0) ...;
 *     ...  // several models, or after a reload:
 *     //   wyoming_server_set_models(&wy, models, names, n, &ls);
 *     wyoming_server_close(&wy);             // then run the loop until its
 *                                            // handles have closed
 *
 * Thread-safety: everything runs on the loop's thread.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRANSPORT_WYOMING_H
#define KWS_TRANSPORT_WYOMING_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kws/listener.h"

#define WYOMING_MAX_HEADER 8192       /* bytes of one header line, '\n' included */
#define WYOMING_MAX_DATA 65536        /* bytes of one event's additional data */
#define WYOMING_MAX_PAYLOAD (1 << 22) /* bytes of one event's payload (4 MiB) */
#define WYOMING_MAX_QUEUED (1 << 18)  /* bytes of replies a client may leave unread */
#define WYOMING_MAX_CLIENTS 8
#define WYOMING_IDLE_EVICT_MS 10000 /* silence after which a client's slot may go to another */
#define WYOMING_MAX_AHEAD_MS 10000  /* audio a client may send ahead of real time */
#define WYOMING_MAX_MODELS 8        /* models served at once */

struct wyoming_cfg {
    const char *endpoint;                         /* "tcp://host:port" */
    const struct snn_model *model;                /* borrowed; outlives the server */
    const struct kws_listener_settings *settings; /* copied */
    const char *model_name;                       /* e.g. the file's base name, for info */
    const char *version;                          /* kwsd's version, for info */
};

struct wyoming_client;

struct wyoming_stats {
    uint64_t clients;    /* connections accepted since open */
    uint64_t evicted;    /* silent clients closed to make room for a new one */
    uint64_t refused;    /* connections closed at accept (too many) */
    uint64_t bad;        /* clients closed for breaking the protocol or a bound */
    uint64_t detections; /* detection events sent */
    uint64_t streams;    /* audio-start events handled */
    uint64_t paused;     /* times a client ran WYOMING_MAX_AHEAD_MS ahead and was paused */
};

struct wyoming_server {
    uv_loop_t *loop;
    uv_tcp_t tcp;                          /* the listening socket */
    int open;                              /* tcp is initialised (must be closed) */
    int n_models;
    const struct snn_model *models[WYOMING_MAX_MODELS]; /* borrowed */
    char model_names[WYOMING_MAX_MODELS][128];
    int n_fe;                                       /* distinct front ends among the models */
    struct kws_frontend_cfg fe[WYOMING_MAX_MODELS]; /* copies of their settings */
    int model_fe[WYOMING_MAX_MODELS];               /* each model's, in fe */
    struct kws_listener_settings settings;          /* every client's, before its detect names */
    char version[32];
    char bound[300];                /* "host:port" it listens on */
    struct wyoming_client *clients; /* connected clients, a list */
    int n_clients;
    struct wyoming_stats stats;
};

/* Binds cfg->endpoint and starts accepting on loop. Returns 0, or a negative
 * error with "wyoming: <endpoint>: <reason>" in msg. */
int wyoming_server_open(struct wyoming_server *s, uv_loop_t *loop, const struct wyoming_cfg *cfg,
                        char *msg, size_t msglen);

/* Switches to another set of n models (1..WYOMING_MAX_MODELS; names[i] is
 * models[i]'s name for info) or settings (a reload). The running models
 * must still be alive during the call (free them after it). When the new
 * ones are copies of them (equal headers and parameters, same order) with
 * the same settings, the clients' listeners are only pointed at the new
 * copies and their streams go on; otherwise every client's listeners are
 * rebuilt and its stream starts from rest, and when the front ends differ
 * a client mid-stream must start a new one. Returns 0, -EINVAL (n out of
 * range) or -ENOMEM after closing the clients it could not rebuild. */
int wyoming_server_set_models(struct wyoming_server *s, const struct snn_model *const *models,
                              const char *const *names, int n,
                              const struct kws_listener_settings *settings);

/* wyoming_server_set_models with the one model m. */
int wyoming_server_set_model(struct wyoming_server *s, const struct snn_model *m,
                             const struct kws_listener_settings *settings, const char *model_name);

/* Stops accepting and closes every client; their memory is freed by the
 * handles' close callbacks, so run the loop afterwards (uv_run) before
 * uv_loop_close. Safe on a zeroed server and twice. */
void wyoming_server_close(struct wyoming_server *s);

#endif /* KWS_TRANSPORT_WYOMING_H */

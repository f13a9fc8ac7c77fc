/* wyoming.c: the Wyoming wake-word server (see kws/wyoming.h).
 *
 * Bytes from a client go through a small state machine (header line, then
 * data, then payload); a complete header and data make an event, which is
 * handled at once; an audio-chunk's payload is then converted to mono float
 * as it arrives and pushed through the client's own front ends and listeners,
 * so no payload is ever held whole. Replies are JSON built with jansson and
 * written with uv_write; a client whose replies pile up unread is closed.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/wyoming.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "kws/audio_pipe.h"
#include "kws/err.h"
#include "kws/log.h"

#define READ_BUF 16384    /* bytes per read from a client */
#define CONV_BUF 1024     /* mono samples converted per push into the front end */
#define READ_AUDIO_MS 250 /* audio per read while streaming, at most */

enum wy_state { WY_HEADER, WY_DATA, WY_PAYLOAD };

struct wyoming_client;

/* What on_client_frame needs to know: whose front end sent the frame. */
struct wy_front {
    struct wyoming_client *c;
    int index; /* in the server's fe */
};

struct wyoming_client {
    uv_tcp_t tcp;
    uv_timer_t pace; /* resumes reading a client that ran ahead of real time */
    int handles;     /* of tcp and pace, not yet closed: freed at 0 */
    struct wyoming_server *srv;
    struct wyoming_client *next;
    int closing;
    char peer[64]; /* "address:port", for the log */

    /* the event being read */
    enum wy_state st;
    char line[WYOMING_MAX_HEADER];
    size_t line_len;
    json_t *ev_data;  /* the event's data object (header data, then additional data) */
    char ev_type[32]; /* the event's type (longer types are not ours: ignored) */
    char *data;       /* (data_need) additional data */
    size_t data_len, data_need;
    size_t payload_need; /* payload bytes still to come */
    int payload_audio;   /* 1: the payload is audio to hear; 0: skipped */

    /* audio */
    int active;                /* between audio-start and audio-stop */
    int rate, width, channels; /* the stream's format */
    uint8_t frag[64];          /* bytes of a sample frame split between reads */
    size_t frag_len;
    float conv[CONV_BUF];
    size_t conv_n;
    struct audio_pipe pipe[WYOMING_MAX_MODELS]; /* one per server front end (srv->fe) */
    struct wy_front front[WYOMING_MAX_MODELS];
    int pipe_rate; /* rate the pipes were built for; 0: not built */
    struct kws_listener lis[WYOMING_MAX_MODELS]; /* one per model (srv->models) */
    int lis_stale; /* names or models changed: rebuild at the next stream */
    uint8_t want[WYOMING_MAX_MODELS][SNN_MAX_CLASSES]; /* labels asked for by detect (all when none named) */
    int n_names;                   /* names given by the last detect (0: every keyword) */
    int detected;                  /* a detection since audio-start */
    int64_t t0_ms;                 /* audio-start's timestamp */
    uint64_t start_ms;             /* clock_ms() at audio-start */
    uint64_t bytes;                /* audio payload bytes since audio-start */
    int paced;                     /* reading is stopped until pace fires */
    size_t held;                   /* received bytes not yet fed, at the start of rbuf */
    uint64_t last_ms;              /* loop time of the last bytes received (or of accept) */

    char rbuf[READ_BUF];
};

#define LOGW(...) KWS_LOG(KWS_LOG_WARNING, __VA_ARGS__)
#define LOGN(...) KWS_LOG(KWS_LOG_NOTICE, __VA_ARGS__)
#define LOGI(...) KWS_LOG(KWS_LOG_INFO, __VA_ARGS__)
#define LOGD(...) KWS_LOG(KWS_LOG_DEBUG, __VA_ARGS__)

static void client_close(struct wyoming_client *c);

/* The monotonic clock in ms. The pacing of a client's audio against real
 * time reads it rather than uv_now: the loop's cached time is that of the
 * iteration's start, and one long iteration (a busy or emulated machine)
 * would count its own length as time the client's audio has had. */
static uint64_t clock_ms(void) {
    return uv_hrtime() / 1000000u;
}

/* ==== Replies ==== */

struct wy_write {
    uv_write_t req;
    char buf[];
};

static void on_written(uv_write_t *req, int status) {
    (void)status; /* a failed write shows up as a read error or EOF */
    free(req);
}

/* Sends one event: a header line with type and data_length, then the data
 * (compact JSON). Closes the client if its unread replies pass the bound. */
static void client_send(struct wyoming_client *c, const char *type, json_t *data) {
    char *d = data ? json_dumps(data, JSON_COMPACT) : NULL;
    size_t dl = d ? strlen(d) : 0;
    json_t *h = json_pack("{s:s}", "type", type);
    if (d)
        json_object_set_new(h, "data_length", json_integer((json_int_t)dl));
    char *hs = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    size_t hl = hs ? strlen(hs) : 0, n = hl + 1 + dl;
    struct wy_write *w = hs ? malloc(sizeof *w + n) : NULL;
    if (!w || c->closing) {
        free(w);
        goto out;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + n > WYOMING_MAX_QUEUED) {
        LOGW("wyoming: %s leaves its replies unread (%zu bytes queued): closed", c->peer,
             uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp));
        c->srv->stats.bad++;
        free(w);
        client_close(c);
        goto out;
    }
    memcpy(w->buf, hs, hl);
    w->buf[hl] = '\n';
    if (dl)
        memcpy(w->buf + hl + 1, d, dl);
    uv_buf_t b = uv_buf_init(w->buf, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        free(w);
        client_close(c);
    }
out:
    free(hs);
    free(d);
}

/* The info event: one wake program whose models are the labels that can
 * fire, of every loaded model, as wyoming-openwakeword describes its own. */
static json_t *info_json(const struct wyoming_server *s) {
    json_t *models = json_array();
    for (int m = 0; m < s->n_models; m++) {
        const struct snn_cfg *cfg = &s->models[m]->cfg;
        for (int c = 0; c < cfg->n_classes; c++) {
            if (cfg->labels[c][0] == '_') /* silence, unknown: never fire */
                continue;
            char desc[256];
            snprintf(desc, sizeof desc, "%s (%s)", cfg->labels[c], s->model_names[m]);
            json_array_append_new(
                models, json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:b, s:[], s:n}", "name",
                                  cfg->labels[c], "description", desc, "phrase", cfg->labels[c],
                                  "attribution", "name", "kwsd", "url", "", "installed", 1,
                                  "languages", "version"));
        }
    }
    json_t *prog = json_pack(
        "{s:s, s:s, s:{s:s, s:s}, s:b, s:s, s:o}", "name", "kwsd", "description",
        "kwsd keyword spotter (spiking network with learned delays)", "attribution", "name", "kwsd",
        "url", "", "installed", 1, "version", s->version, "models", models);
    return json_pack("{s:[], s:[], s:[], s:[], s:[o]}", "asr", "tts", "handle", "intent", "wake",
                     prog);
}

/* ==== Listening ==== */

/* The client's listener settings for model m: the server's, with every
 * label the last detect did not name set beyond reach (threshold 2: never
 * fires). */
static void client_settings(const struct wyoming_client *c, int m,
                            struct kws_listener_settings *ls) {
    const struct snn_cfg *cfg = &c->srv->models[m]->cfg;
    *ls = c->srv->settings;
    if (!c->n_names)
        return;
    for (int k = 0; k < cfg->n_classes; k++) {
        if (c->want[m][k])
            continue;
        int i = 0;
        while (i < ls->n_keywords && strcmp(ls->keywords[i].label, cfg->labels[k]) != 0)
            i++;
        if (i == ls->n_keywords) {
            if (ls->n_keywords == SNN_MAX_CLASSES)
                continue;
            ls->n_keywords++;
            snprintf(ls->keywords[i].label, sizeof ls->keywords[i].label, "%s", cfg->labels[k]);
        }
        ls->keywords[i].threshold = 2.0f;
    }
}

/* (Re)builds one listener per model of the server; any failure leaves the
 * client stale (lis_stale) and returns it. */
static int client_build_listener(struct wyoming_client *c) {
    struct kws_listener_settings ls;
    int rc = 0;
    for (int m = 0; m < WYOMING_MAX_MODELS; m++)
        kws_listener_free(&c->lis[m]);
    for (int m = 0; m < c->srv->n_models && rc == 0; m++) {
        client_settings(c, m, &ls);
        rc = kws_listener_init(&c->lis[m], c->srv->models[m], &ls);
    }
    c->lis_stale = rc < 0;
    return rc;
}

static void on_client_frame(void *ctx, const float *feat, const float *spikes) {
    struct wy_front *fr = ctx;
    struct wyoming_client *c = fr->c;
    const struct wyoming_server *s = c->srv;
    struct kws_hit hit;
    for (int m = 0; m < s->n_models && !c->closing; m++) {
        if (s->model_fe[m] != fr->index ||
            !kws_listener_frame(&c->lis[m], feat, spikes, c->pipe[fr->index].fe.zero_run, &hit))
            continue;
        const char *name = s->models[m]->cfg.labels[hit.label];
        if (c->n_names && !c->want[m][hit.label])
            continue;
        json_t *d = json_pack("{s:s, s:I}", "name", name, "timestamp",
                              (json_int_t)(c->t0_ms + hit.end_ms));
        client_send(c, "detection", d);
        json_decref(d);
        c->detected = 1;
        c->srv->stats.detections++;
        LOGI("wyoming: %s: detected \"%s\" (%s) score %.3f at %.2f s of its stream", c->peer, name,
             s->model_names[m], (double)hit.score, (double)hit.end_ms / 1000.0);
    }
}

/* Frees the client's front ends; the next stream builds them again. */
static void client_free_pipes(struct wyoming_client *c) {
    for (int f = 0; f < WYOMING_MAX_MODELS; f++)
        audio_pipe_free(&c->pipe[f]);
    c->pipe_rate = 0;
}

static void flush_conv(struct wyoming_client *c) {
    for (int f = 0; f < c->srv->n_fe && c->conv_n && !c->closing; f++)
        audio_pipe_push(&c->pipe[f], c->conv, c->conv_n, on_client_frame, &c->front[f]);
    c->conv_n = 0;
}

/* One sample frame (width * channels bytes, little-endian PCM) -> its first
 * channel as a float in [-1, 1). */
static float sample_of(const uint8_t *p, int width) {
    switch (width) {
    case 1:
        return ((float)p[0] - 128.0f) / 128.0f;
    case 2:
        return (float)(int16_t)(p[0] | p[1] << 8) / 32768.0f;
    case 3: {
        int32_t v = (int32_t)((uint32_t)p[0] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 24);
        return (float)(v >> 8) / 8388608.0f;
    }
    default: {
        int32_t v = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                              (uint32_t)p[3] << 24);
        return (float)v / 2147483648.0f;
    }
    }
}

/* Hears n payload bytes of the current audio-chunk. */
static void client_audio(struct wyoming_client *c, const uint8_t *p, size_t n) {
    size_t fb = (size_t)c->width * (size_t)c->channels;
    while (n && !c->closing) {
        if (c->frag_len || n < fb) { /* a frame split between reads */
            size_t take = fb - c->frag_len < n ? fb - c->frag_len : n;
            memcpy(c->frag + c->frag_len, p, take);
            c->frag_len += take;
            p += take;
            n -= take;
            if (c->frag_len < fb)
                break;
            c->conv[c->conv_n++] = sample_of(c->frag, c->width);
            c->frag_len = 0;
        } else {
            c->conv[c->conv_n++] = sample_of(p, c->width);
            p += fb;
            n -= fb;
        }
        if (c->conv_n == CONV_BUF)
            flush_conv(c);
    }
    flush_conv(c);
}

/* ==== Events ==== */

/* Reads an integer field of the event's data into *v if present; -1 if it
 * is there but not an integer in [lo, hi]. */
static int data_int(const struct wyoming_client *c, const char *key, long long lo, long long hi,
                    long long *v) {
    json_t *j = c->ev_data ? json_object_get(c->ev_data, key) : NULL;
    if (!j || json_is_null(j))
        return 0;
    if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi)
        return -1;
    *v = json_integer_value(j);
    return 1;
}

/* Takes rate, width and channels from the event; required for audio-start
 * and audio-chunk. Builds or switches the front end for the rate. */
static int client_format(struct wyoming_client *c) {
    long long rate = 0, width = 0, channels = 0;
    if (data_int(c, "rate", 1000, 384000, &rate) != 1 || data_int(c, "width", 1, 4, &width) != 1 ||
        data_int(c, "channels", 1, 16, &channels) != 1) {
        LOGW("wyoming: %s: %s needs rate 1000..384000, width 1..4 and channels 1..16: closed",
             c->peer, c->ev_type);
        return -1;
    }
    if ((int)width != c->width || (int)channels != c->channels)
        c->frag_len = 0;
    c->width = (int)width;
    c->channels = (int)channels;
    c->rate = (int)rate;
    int rc = 0;
    for (int f = 0; f < c->srv->n_fe && rc == 0; f++) {
        c->front[f] = (struct wy_front){.c = c, .index = f};
        if (!c->pipe_rate)
            rc = audio_pipe_init(&c->pipe[f], &c->srv->fe[f], c->rate, CONV_BUF);
        else if (c->rate != c->pipe_rate)
            rc = audio_pipe_set_in_rate(&c->pipe[f], c->rate);
    }
    if (rc < 0) {
        LOGW("wyoming: %s: cannot hear %d Hz: %s: closed", c->peer, c->rate, kws_strerror(rc));
        client_free_pipes(c);
        return -1;
    }
    c->pipe_rate = c->rate;
    return 0;
}

/* A new stream: listener and front end from rest. */
static int client_start(struct wyoming_client *c) {
    long long t0 = 0;
    if (client_format(c) < 0)
        return -1;
    if (c->lis_stale && client_build_listener(c) < 0) {
        LOGW("wyoming: %s: out of memory: closed", c->peer);
        return -1;
    }
    for (int m = 0; m < c->srv->n_models; m++)
        kws_listener_reset(&c->lis[m]);
    for (int f = 0; f < c->srv->n_fe; f++)
        audio_pipe_reset(&c->pipe[f]);
    c->frag_len = 0;
    c->t0_ms = data_int(c, "timestamp", 0, INT64_MAX / 2, &t0) == 1 ? t0 : 0;
    c->active = 1;
    c->start_ms = clock_ms();
    c->bytes = 0;
    c->detected = 0;
    c->srv->stats.streams++;
    LOGD("wyoming: %s: audio %d Hz, %d byte(s), %d channel(s)", c->peer, c->rate, c->width,
         c->channels);
    return 0;
}

/* detect: the labels to listen for from the next stream on. */
static void client_detect(struct wyoming_client *c) {
    const struct wyoming_server *s = c->srv;
    json_t *names = c->ev_data ? json_object_get(c->ev_data, "names") : NULL;
    size_t i;
    json_t *v;
    memset(c->want, 0, sizeof c->want);
    c->n_names = 0;
    json_array_foreach(names, i, v) {
        const char *name = json_string_value(v);
        int found = 0;
        for (int m = 0; m < s->n_models; m++) {
            const struct snn_cfg *cfg = &s->models[m]->cfg;
            for (int k = 0; name && k < cfg->n_classes; k++)
                if (strcmp(cfg->labels[k], name) == 0 && cfg->labels[k][0] != '_') {
                    c->want[m][k] = 1;
                    found = 1;
                }
        }
        c->n_names++;
        if (!found)
            LOGD("wyoming: %s: detect names \"%s\", which no loaded model has", c->peer,
                 name ? name : "(not a string)");
    }
    c->lis_stale = 1;
    if (c->active) /* mid-stream: the new names apply at once, from rest */
        c->lis_stale = client_build_listener(c) < 0;
}

/* A complete header and data: handles the event. Returns -1 to close. */
static int client_event(struct wyoming_client *c) {
    const char *t = c->ev_type;
    c->payload_audio = 0;
    if (strcmp(t, "describe") == 0) {
        json_t *info = info_json(c->srv);
        client_send(c, "info", info);
        json_decref(info);
    } else if (strcmp(t, "detect") == 0) {
        client_detect(c);
    } else if (strcmp(t, "audio-start") == 0) {
        return client_start(c);
    } else if (strcmp(t, "audio-chunk") == 0) {
        if (!c->active ? client_start(c) < 0 : client_format(c) < 0)
            return -1;
        c->payload_audio = 1;
    } else if (strcmp(t, "audio-stop") == 0) {
        if (c->active && !c->detected)
            client_send(c, "not-detected", NULL);
        c->active = 0;
    } else if (strcmp(t, "ping") == 0) {
        client_send(c, "pong", c->ev_data);
    } else {
        LOGD("wyoming: %s: ignored event \"%s\"", c->peer, t);
    }
    return 0;
}

/* Whether j (may be NULL) is absent, null, or an integer in [0, max]. */
static int length_ok(const json_t *j, long long max) {
    return !j || json_is_null(j) ||
           (json_is_integer(j) && json_integer_value(j) >= 0 && json_integer_value(j) <= max);
}

/* Parses the header line (without its '\n'). Returns -1 to close. */
static int client_header(struct wyoming_client *c) {
    json_error_t err;
    json_t *h = json_loadb(c->line, c->line_len, 0, &err);
    json_t *type = json_object_get(h, "type"), *data = json_object_get(h, "data");
    json_t *dl = json_object_get(h, "data_length"), *pl = json_object_get(h, "payload_length");
    char why[160] = "";
    if (!json_is_object(h))
        snprintf(why, sizeof why, "%s", h ? "not a JSON object" : err.text);
    else if (!json_is_string(type))
        snprintf(why, sizeof why, "no string \"type\"");
    else if (data && !json_is_null(data) && !json_is_object(data))
        snprintf(why, sizeof why, "\"data\" is not an object");
    else if (!length_ok(dl, WYOMING_MAX_DATA))
        snprintf(why, sizeof why, "\"data_length\" is not an integer in [0, %d]", WYOMING_MAX_DATA);
    else if (!length_ok(pl, WYOMING_MAX_PAYLOAD))
        snprintf(why, sizeof why, "\"payload_length\" is not an integer in [0, %d]",
                 WYOMING_MAX_PAYLOAD);
    if (why[0]) {
        LOGW("wyoming: %s: bad event header: %s: closed", c->peer, why);
        json_decref(h);
        return -1;
    }
    snprintf(c->ev_type, sizeof c->ev_type, "%s", json_string_value(type));
    json_decref(c->ev_data);
    c->ev_data = json_is_object(data) ? json_incref(data) : json_object();
    c->data_need = json_is_integer(dl) ? (size_t)json_integer_value(dl) : 0;
    c->payload_need = json_is_integer(pl) ? (size_t)json_integer_value(pl) : 0;
    json_decref(h);
    return 0;
}

/* The additional data is complete: merges it over the header's data. */
static int client_data(struct wyoming_client *c) {
    json_error_t err;
    json_t *d = json_loadb(c->data, c->data_len, 0, &err);
    free(c->data);
    c->data = NULL;
    if (!json_is_object(d)) {
        LOGW("wyoming: %s: bad event data: %s: closed", c->peer,
             d ? "not a JSON object" : err.text);
        json_decref(d);
        return -1;
    }
    json_object_update(c->ev_data, d);
    json_decref(d);
    return 0;
}

/* The event's header and data are in: handle it, then read its payload or
 * the next header. */
static int client_ready(struct wyoming_client *c) {
    if (client_event(c) < 0)
        return -1;
    c->st = c->payload_need ? WY_PAYLOAD : WY_HEADER;
    return 0;
}

/* Bytes a second of the client's stream. */
static size_t bytes_per_s(const struct wyoming_client *c) {
    return (size_t)c->rate * (size_t)c->width * (size_t)c->channels;
}

/* Audio bytes one turn of a client may feed: READ_AUDIO_MS of its stream. */
static size_t turn_audio_bytes(const struct wyoming_client *c) {
    size_t cap = bytes_per_s(c) * READ_AUDIO_MS / 1000;
    return cap < 256 ? 256 : cap;
}

/* Runs received bytes through the state machine, one turn: it stops once
 * the turn has fed READ_AUDIO_MS of audio, so that pacing is checked
 * between turns however much one read brought (a flood sent before its
 * audio-start was read arrives in one read of READ_BUF bytes). Returns the
 * bytes used, or -1 to close. */
static long client_feed(struct wyoming_client *c, const char *p, size_t n) {
    size_t n0 = n, fed = 0;
    while (n && !c->closing) {
        if (c->st == WY_HEADER) {
            const char *nl = memchr(p, '\n', n);
            size_t take = nl ? (size_t)(nl - p) : n;
            if (c->line_len + take >= WYOMING_MAX_HEADER) {
                LOGW("wyoming: %s: header line longer than %d bytes: closed", c->peer,
                     WYOMING_MAX_HEADER);
                return -1;
            }
            memcpy(c->line + c->line_len, p, take);
            c->line_len += take;
            p += take;
            n -= take;
            if (!nl)
                break;
            p++, n--;             /* the '\n' */
            if (c->line_len == 0) /* blank line: nothing */
                continue;
            int rc = client_header(c);
            c->line_len = 0;
            if (rc < 0)
                return -1;
            if (c->data_need) {
                c->data = malloc(c->data_need);
                if (!c->data)
                    return -1;
                c->data_len = 0;
                c->st = WY_DATA;
            } else if (client_ready(c) < 0) {
                return -1;
            }
        } else if (c->st == WY_DATA) {
            size_t take = c->data_need - c->data_len < n ? c->data_need - c->data_len : n;
            memcpy(c->data + c->data_len, p, take);
            c->data_len += take;
            p += take;
            n -= take;
            if (c->data_len == c->data_need && (client_data(c) < 0 || client_ready(c) < 0))
                return -1;
        } else {
            size_t take = c->payload_need < n ? c->payload_need : n;
            if (c->payload_audio) {
                size_t cap = turn_audio_bytes(c);
                if (fed >= cap)
                    break;
                take = take < cap - fed ? take : cap - fed;
                client_audio(c, (const uint8_t *)p, take);
                c->bytes += take;
                fed += take;
            }
            c->payload_need -= take;
            p += take;
            n -= take;
            if (!c->payload_need)
                c->st = WY_HEADER;
        }
    }
    return (long)(n0 - n);
}

/* ==== Connections ==== */

static void on_client_closed(uv_handle_t *h) {
    struct wyoming_client *c = h->data;
    struct wyoming_server *s = c->srv;
    if (--c->handles > 0)
        return;
    for (struct wyoming_client **pp = &s->clients; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            s->n_clients--;
            break;
        }
    json_decref(c->ev_data);
    free(c->data);
    client_free_pipes(c);
    for (int m = 0; m < WYOMING_MAX_MODELS; m++)
        kws_listener_free(&c->lis[m]);
    free(c);
}

static void client_close(struct wyoming_client *c) {
    if (c->closing)
        return;
    c->closing = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->pace, on_client_closed);
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

/* While a stream runs, one read holds at most READ_AUDIO_MS of its audio
 * (16 KiB of 8-bit audio at 1 kHz would be 16 s); client_feed bounds a turn
 * the same way when a read brought more before the stream began. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    struct wyoming_client *c = h->data;
    size_t n = sizeof c->rbuf;
    (void)hint;
    if (c->active && turn_audio_bytes(c) < n)
        n = turn_audio_bytes(c);
    *buf = uv_buf_init(c->rbuf, (unsigned)n);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);
static void client_turn(struct wyoming_client *c, const char *p, size_t n);

/* Reading stopped for a pause or for bytes held from the last turn: feed
 * those, then read again unless that turn stopped it once more. */
static void on_pace(uv_timer_t *t) {
    struct wyoming_client *c = t->data;
    c->paced = 0;
    if (c->held)
        client_turn(c, c->rbuf, c->held);
    if (!c->closing && !c->paced)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Stops reading the client for wait_ms; on_pace resumes it. */
static void client_hold(struct wyoming_client *c, uint64_t wait_ms) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->paced = 1;
    uv_timer_start(&c->pace, on_pace, wait_ms, 0);
}

/* A client may send audio faster than real time (a recording), but not
 * more than WYOMING_MAX_AHEAD_MS ahead of the clock since its audio-start:
 * beyond that, reading stops until the clock catches up to half of it. So
 * a flood of audio costs at most real time plus a bounded burst. Returns 1
 * when the client is paused. */
static int client_pace(struct wyoming_client *c) {
    if (!c->active || c->closing)
        return 0;
    uint64_t audio_ms = c->bytes * 1000 / bytes_per_s(c);
    uint64_t wall_ms = clock_ms() - c->start_ms;
    if (audio_ms <= wall_ms + WYOMING_MAX_AHEAD_MS)
        return 0;
    uint64_t wait = audio_ms - wall_ms - WYOMING_MAX_AHEAD_MS / 2;
    LOGD("wyoming: %s is %.1f s ahead of real time: paused for %.1f s", c->peer,
         (double)(audio_ms - wall_ms) / 1000.0, (double)wait / 1000.0);
    c->srv->stats.paused++;
    client_hold(c, wait);
    return 1;
}

/* One turn: feeds n bytes (at most READ_AUDIO_MS of audio, see
 * client_feed), keeps what the turn left at the start of rbuf and, unless
 * the client is paused, comes back for it on the loop's next turn. */
static void client_turn(struct wyoming_client *c, const char *p, size_t n) {
    long used = client_feed(c, p, n);
    if (used < 0) {
        c->srv->stats.bad++;
        client_close(c);
        return;
    }
    c->held = n - (size_t)used;
    if (c->held)
        memmove(c->rbuf, p + used, c->held);
    if (!client_pace(c) && c->held && !c->closing)
        client_hold(c, 0);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
    struct wyoming_client *c = st->data;
    if (n < 0) {
        if (n != UV_EOF)
            LOGD("wyoming: %s: %s", c->peer, uv_strerror((int)n));
        LOGD("wyoming: %s disconnected", c->peer);
        client_close(c);
        return;
    }
    if (n > 0)
        c->last_ms = uv_now(c->srv->loop);
    client_turn(c, buf->base, (size_t)n);
}

static void peer_name(struct wyoming_client *c) {
    struct sockaddr_storage sa;
    int len = sizeof sa;
    char host[48] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) == 0) {
        if (sa.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&sa, host, sizeof host);
            port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&sa, host, sizeof host);
            port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
        }
    }
    snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
}

/* With every slot taken, the client silent longest gives its slot to a new
 * one if it has sent nothing for WYOMING_IDLE_EVICT_MS (a paused client is
 * not silent: it is waiting for the clock). Returns 1 if one was closed. */
static int evict_idle(struct wyoming_server *s, const struct wyoming_client *newcomer) {
    struct wyoming_client *victim = NULL;
    uint64_t now = uv_now(s->loop), idle = 0;
    for (struct wyoming_client *c = s->clients; c; c = c->next)
        if (c != newcomer && !c->closing && !c->paced && now - c->last_ms >= idle) {
            victim = c;
            idle = now - c->last_ms;
        }
    if (!victim || idle < WYOMING_IDLE_EVICT_MS)
        return 0;
    LOGN("wyoming: %s sent nothing for %.0f s: closed to make room for %s", victim->peer,
         (double)idle / 1000.0, newcomer->peer);
    s->stats.evicted++;
    client_close(victim);
    return 1;
}

/* Clients not closing. */
static int live_clients(const struct wyoming_server *s) {
    int n = 0;
    for (const struct wyoming_client *c = s->clients; c; c = c->next)
        n += !c->closing;
    return n;
}

static void on_connection(uv_stream_t *server, int status) {
    struct wyoming_server *s = server->data;
    if (status < 0) {
        LOGW("wyoming: accept: %s", uv_strerror(status));
        return;
    }
    struct wyoming_client *c = calloc(1, sizeof *c);
    if (!c)
        return; /* the connection waits in the backlog */
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->pace);
    c->tcp.data = c->pace.data = c;
    c->handles = 2;
    c->next = s->clients;
    s->clients = c;
    s->n_clients++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        client_close(c);
        return;
    }
    peer_name(c);
    c->last_ms = uv_now(s->loop);
    if (live_clients(s) > WYOMING_MAX_CLIENTS && !evict_idle(s, c)) {
        LOGW("wyoming: %s refused: %d clients already", c->peer, WYOMING_MAX_CLIENTS);
        s->stats.refused++;
        client_close(c);
        return;
    }
    s->stats.clients++;
    uv_tcp_nodelay(&c->tcp, 1);
    if (client_build_listener(c) < 0) {
        LOGW("wyoming: %s: out of memory: closed", c->peer);
        client_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    LOGI("wyoming: %s connected", c->peer);
}

/* ==== Server ==== */

/* Takes the set: the borrowed models, their names, their distinct front
 * ends and the settings. Returns whether the front ends changed. */
static int copy_models(struct wyoming_server *s, const struct snn_model *const *models,
                       const char *const *names, int n, const struct kws_listener_settings *ls) {
    struct kws_frontend_cfg was[WYOMING_MAX_MODELS];
    int n_was = s->n_fe;

    memcpy(was, s->fe, sizeof was);
    s->n_models = n;
    s->n_fe = 0;
    for (int m = 0; m < n; m++) {
        s->models[m] = models[m];
        snprintf(s->model_names[m], sizeof s->model_names[m], "%s",
                 names && names[m] ? names[m] : "");
        int f = 0;
        while (f < s->n_fe && memcmp(&s->fe[f], &models[m]->cfg.fe, sizeof s->fe[f]) != 0)
            f++;
        if (f == s->n_fe)
            s->fe[s->n_fe++] = models[m]->cfg.fe;
        s->model_fe[m] = f;
    }
    s->settings = *ls;
    return n_was != s->n_fe || memcmp(was, s->fe, (size_t)n_was * sizeof was[0]) != 0;
}

int wyoming_server_open(struct wyoming_server *s, uv_loop_t *loop, const struct wyoming_cfg *cfg,
                        char *msg, size_t msglen) {
    char host[256];
    const char *ep = cfg->endpoint;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc;

    memset(s, 0, sizeof *s);
    s->loop = loop;
    copy_models(s, &cfg->model, &cfg->model_name, 1, cfg->settings);
    snprintf(s->version, sizeof s->version, "%s", cfg->version ? cfg->version : "");
    const char *colon = strncmp(ep, "tcp://", 6) == 0 ? strrchr(ep + 6, ':') : NULL;
    if (!colon || colon == ep + 6 || (size_t)(colon - ep - 6) >= sizeof host) {
        snprintf(msg, msglen, "wyoming: %s: expected tcp://host:port", ep);
        return -EINVAL;
    }
    memcpy(host, ep + 6, (size_t)(colon - ep - 6));
    host[colon - ep - 6] = '\0';
    if (host[0] == '[') { /* [v6] */
        size_t hl = strlen(host);
        memmove(host, host + 1, hl);
        if (hl >= 2 && host[hl - 2] == ']')
            host[hl - 2] = '\0';
    }
    rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(msg, msglen, "wyoming: %s: %s", ep, gai_strerror(rc));
        return -EINVAL;
    }
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    s->open = 1;
    rc = uv_tcp_bind(&s->tcp, ai->ai_addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->tcp, 16, on_connection);
    freeaddrinfo(ai);
    if (rc < 0) {
        snprintf(msg, msglen, "wyoming: %s: %s", ep, uv_strerror(rc));
        return rc;
    }
    snprintf(s->bound, sizeof s->bound, "%s", ep + 6);
    return 0;
}

/* Whether models are the running set again (equal headers and parameters,
 * in the same order) with the same settings: a reload that changed
 * nothing the clients hear. */
static int same_models(const struct wyoming_server *s, const struct snn_model *const *models,
                       int n, const struct kws_listener_settings *settings) {
    if (n != s->n_models || memcmp(settings, &s->settings, sizeof *settings) != 0)
        return 0;
    for (int m = 0; m < n; m++)
        if (!snn_model_same(s->models[m], models[m]))
            return 0;
    return 1;
}

int wyoming_server_set_models(struct wyoming_server *s, const struct snn_model *const *models,
                              const char *const *names, int n,
                              const struct kws_listener_settings *settings) {
    int bad = 0;

    if (n < 1 || n > WYOMING_MAX_MODELS)
        return -EINVAL;
    if (same_models(s, models, n, settings)) { /* copies of the running ones: re-point */
        for (int m = 0; m < n; m++) {
            s->models[m] = models[m];
            snprintf(s->model_names[m], sizeof s->model_names[m], "%s",
                     names && names[m] ? names[m] : "");
        }
        for (struct wyoming_client *c = s->clients; c; c = c->next)
            for (int m = 0; m < n; m++)
                if (c->lis[m].model)
                    c->lis[m].model = models[m];
        return 0;
    }
    int new_fe = copy_models(s, models, names, n, settings);
    for (struct wyoming_client *c = s->clients; c; c = c->next) {
        if (c->closing)
            continue;
        if (new_fe) { /* the front ends belong to the models: rebuilt at the next stream */
            client_free_pipes(c);
            c->active = 0;
        }
        if (client_build_listener(c) < 0) {
            bad = 1;
            client_close(c);
        }
    }
    return bad ? -ENOMEM : 0;
}

int wyoming_server_set_model(struct wyoming_server *s, const struct snn_model *m,
                             const struct kws_listener_settings *settings, const char *model_name) {
    return wyoming_server_set_models(s, &m, &model_name, 1, settings);
}

static void on_server_closed(uv_handle_t *h) {
    (void)h;
}

void wyoming_server_close(struct wyoming_server *s) {
    for (struct wyoming_client *c = s->clients; c; c = c->next)
        client_close(c);
    if (s->open && !uv_is_closing((uv_handle_t *)&s->tcp))
        uv_close((uv_handle_t *)&s->tcp, on_server_closed);
    s->open = 0;
}

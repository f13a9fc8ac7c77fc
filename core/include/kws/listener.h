/* kws/listener.h: one listening stream: network state, detector and the hold.
 *
 * A listener is everything that turns one stream's spike frames into keyword
 * events with a loaded model: the network state, the detector, the
 * digital-silence hold counter and the per-frame output buffers. It is built
 * from the model and one settings struct, and the rules that decide how a
 * stream is heard live here once:
 *   - each keyword's threshold (kws_listener_threshold): its own setting,
 *     else the global one, else the threshold calibrated into the model,
 *     else KWS_THRESHOLD_FALLBACK;
 *   - the frame length, from the model's front end (kws_frame_ms);
 *   - the digital-silence hold (KWS_HOLD_MS in kws/detector.h): the network
 *     rests, reset once, while the input is exactly 0;
 *   - an enrolled word's second look (kws/verify.h): when the model holds
 *     its takes, an event of that word waits verify.ahead frames and is
 *     published only if the last frames match the takes.
 * The daemon's microphone, each Wyoming client, kwsd-eval --wav, the
 * stream evaluation and the trainer's hard-negative mining all listen
 * through it, so they hear alike
 * (tests/test_train_same_events.c runs one recording through the daemon,
 * kwsd-eval --wav and the stream metric and compares their events).
 *
 *     struct kws_listener_settings s;
 *     kws_listener_settings_default(&s);       // threshold: the model's
 *     struct kws_listener l = {0};
 *     if (kws_listener_init(&l, &model, &s) < 0) ...;
 *     // per frame from the front end (kws/frontend.h):
 *     struct kws_hit hit;
 *     if (kws_listener_frame(&l, feat, spikes, fe.zero_run, &hit)) publish(hit);
 *     kws_listener_free(&l);
 *
 * Many listeners may share one model (read only). Thread-safety: a listener
 * belongs to one stream and one thread; the model must outlive it.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_CORE_LISTENER_H
#define KWS_CORE_LISTENER_H

#include <stdint.h>

#include "kws/detector.h"
#include "kws/model.h"
#include "kws/snn.h"

/* settings.threshold meaning "the threshold calibrated into the model file",
 * and what that is when the model has none. */
#define KWS_THRESHOLD_MODEL (-1.0f)
#define KWS_THRESHOLD_FALLBACK 0.4f

/* Milliseconds per frame of a front end: its hop at its sample rate
 * (160 samples at 16 kHz: 10 ms). */
static inline int kws_frame_ms(const struct kws_frontend_cfg *fe) {
    return 1000 * fe->hop / fe->sample_rate;
}

/* One keyword's own threshold. */
struct kws_listener_keyword {
    char label[SNN_LABEL_LEN];
    float threshold; /* [0, 1] */
};

/* How a stream is heard. Plain data: copy it with =. */
struct kws_listener_settings {
    float threshold;   /* every keyword's threshold [0, 1], or KWS_THRESHOLD_MODEL */
    int smoothing_ms;  /* posterior smoothing window, ms (>= 1) */
    int refractory_ms; /* quiet time after an event, ms (>= 0) */
    int n_keywords;    /* entries in keywords */
    struct kws_listener_keyword keywords[SNN_MAX_CLASSES]; /* per-keyword overrides */
};

struct kws_listener {
    const struct snn_model *model;         /* borrowed: must outlive the listener */
    struct kws_listener_settings settings; /* what it was built with */
    struct snn_state state;                /* the network's state */
    struct kws_detector det;               /* smoothing, thresholds, refractory period */
    float *v;                              /* (C) readout potentials of the last frame */
    float *scores;                         /* (C) smoothed scores of the last frame */
    uint64_t held;                         /* frames of the current digital-silence hold */
    int frame_ms;                          /* ms per frame (kws_frame_ms of the model) */
    /* The second look (model->verify.n_takes > 0), else all NULL and 0. */
    int8_t *vring;                   /* (span, n_feat) the last span frames (kws_verify_frame) */
    int8_t *vseq;                    /* (span, n_feat) the same in time order, for the match */
    float *vscratch;                 /* kws_verify_scratch_floats(span) */
    int vspan;                       /* verify.back + verify.ahead + 1 */
    int vfill, vpos;                 /* frames in the ring; where the next goes */
    int pending;                     /* frames until the held event is looked at; 0: none */
    struct kws_hit held_hit;         /* the event waiting for its second look */
    float last_cost;                 /* the cost of the last event looked at */
    uint64_t n_verified, n_rejected; /* events looked at; of them dropped */
};

/* Fills s with kwsd's defaults: the model's threshold, smoothing 300 ms,
 * refractory 1000 ms, no per-keyword overrides. */
void kws_listener_settings_default(struct kws_listener_settings *s);

/* The threshold rule, the only copy of it: label's entry in s->keywords if
 * there is one (label may be NULL: none), else s->threshold unless it is
 * KWS_THRESHOLD_MODEL, else model_thr if it is in (0, 1], else
 * KWS_THRESHOLD_FALLBACK. */
float kws_listener_threshold(const struct kws_listener_settings *s, const char *label,
                             float model_thr);

/* Builds a listener for model m with settings s: the network state at rest,
 * a detector whose thresholds come from kws_listener_threshold for each of
 * the model's labels, and the ring for the second look when m holds takes
 * (its refractory period then lasts at least the look's wait, so one event
 * waits at a time). m is borrowed. Returns 0, -EINVAL (settings out of
 * range) or -ENOMEM; on failure l is safe for kws_listener_free. */
int kws_listener_init(struct kws_listener *l, const struct snn_model *m,
                      const struct kws_listener_settings *s);

/* Starts a new stream: the network at rest, the detector's window, times
 * and refractory period cleared, no hold. No allocation. */
void kws_listener_reset(struct kws_listener *l);

/* Frees the state, the detector and the buffers (not the model). Safe on a
 * zeroed or half-built listener and twice. */
void kws_listener_free(struct kws_listener *l);

/* One frame: features (n_mels) and spikes (n_in) from the front end and the
 * front end's zero_run (frames of digital silence in a row). A held frame
 * (kws_hold_frame) rests the network (reset on the first frame of a hold,
 * no step) and empties the detector's window; any other frame steps the
 * network into l->v and the detector. l->scores gets the frame's smoothed
 * scores. Returns 1 and fills *hit when a keyword fires (hit times count
 * frames since init or reset), else 0. An event of the model's enrolled
 * word (kws/verify.h) is returned verify.ahead frames after the detector
 * fired, and only when its cost is within verify.cut (l->last_cost); feat
 * NULL gives the listener no features, and such events are returned when
 * the detector fires, unverified. No allocation. */
int kws_listener_frame(struct kws_listener *l, const float *feat, const float *spikes,
                       uint64_t zero_run, struct kws_hit *hit);

/* The network half of kws_listener_frame alone, for a caller that scores the
 * potentials later under several detector settings (the stream evaluation):
 * held (kws_hold_frame) rests the network and zeroes l->v; otherwise
 * snn_step into l->v. The detector is not touched. */
void kws_listener_step_net(struct kws_listener *l, const float *spikes, int held);

#endif /* KWS_CORE_LISTENER_H */

/* kws/detector.h: turns the readout's potentials into keyword events.
 *
 * Per frame the readout's potentials become per-class posteriors (softmax);
 * each class's posterior is averaged over a sliding window (smoothing); a
 * keyword fires when its smoothed score reaches its threshold, and then every
 * keyword stays quiet for the refractory period, so one spoken word gives one
 * event even when a neighbouring class also rises. Classes marked as
 * non-firing (silence, unknown) never fire. The daemon and kwsd-eval share
 * this code, so the evaluator measures exactly what users get.
 *
 *     struct kws_detector d = {0};
 *     kws_detector_init(&d, &cfg);
 *     for each frame: if (kws_detector_step(&d, v_out, &hit)) publish(hit);
 *     kws_detector_free(&d);
 *
 * Thread-safety: a detector belongs to one stream and one thread.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_CORE_DETECTOR_H
#define KWS_CORE_DETECTOR_H

#include <stdint.h>

#include "kws/snn.h"

struct kws_detector_cfg {
    int n_classes;                     /* readout classes C */
    float threshold[SNN_MAX_CLASSES];  /* per-class score threshold in [0, 1] */
    uint8_t fires[SNN_MAX_CLASSES];    /* 1: a keyword; 0: silence/unknown, never fires */
    int smoothing_frames;              /* averaging window W, frames (>= 1) */
    int refractory_frames;             /* quiet time after an event, frames */
    int frame_ms;                      /* frame hop in ms, for the times reported */
};

struct kws_hit {
    int label;        /* class index */
    float score;      /* smoothed posterior at the moment it fired */
    float threshold;  /* the threshold it passed */
    int64_t start_ms; /* stream time the score began to rise (above threshold / 2) */
    int64_t end_ms;   /* stream time of the frame that fired */
};

struct kws_detector {
    struct kws_detector_cfg cfg;
    float *hist;         /* (W, C) posteriors of the last W frames */
    float *sum;          /* (C) running sums of hist */
    float *post;         /* (C) scratch: this frame's posteriors */
    int64_t *rise;       /* (C) frame at which each class's score last rose above threshold/2, -1 if below */
    int pos;             /* next row of hist to overwrite */
    int filled;          /* rows of hist in use (< W only at the start) */
    int64_t frame;       /* frames seen since reset */
    int64_t quiet_until; /* first frame allowed to fire again */
};

/* Fills cfg with defaults for n_classes classes and the model's labels:
 * threshold, smoothing and refractory given in ms; a label named "_silence_"
 * or "_unknown_" (or starting with '_') never fires. */
void kws_detector_cfg_default(struct kws_detector_cfg *cfg, const struct snn_cfg *model,
                              float threshold, int smoothing_ms, int refractory_ms, int frame_ms);

int kws_detector_init(struct kws_detector *d, const struct kws_detector_cfg *cfg);
void kws_detector_reset(struct kws_detector *d);
void kws_detector_free(struct kws_detector *d);

/* Lets d fire again `after` frames from now (0: from the next frame it
 * steps), whatever is left of its refractory period. The second look
 * (kws/verify.h) calls it when it drops an event, so a dropped event does
 * not keep the same word from firing again once the look is over. */
void kws_detector_rearm(struct kws_detector *d, int after);

/* Feeds one frame of readout potentials v (C). Returns 1 and fills *hit when
 * a keyword fires on this frame, 0 otherwise. Optionally copies the smoothed
 * scores (C) to scores. No allocation. */
int kws_detector_step(struct kws_detector *d, const float *v, struct kws_hit *hit, float *scores);

/* Digital silence. A network fed only zeros sees an input it was never
 * trained on (no noise floor for PCEN to normalise), and its readout drifts:
 * 60 s of zeros after speech took one keyword's score to 0.42. So once the
 * front end has seen KWS_HOLD_MS of frames whose whole window is exactly 0
 * (audio_fe.zero_run), the network is held at rest: its state is reset once
 * and not stepped, and every held frame goes to kws_detector_hold instead of
 * kws_detector_step. The first non-zero sample ends the hold; the network
 * then starts from rest, as at start-up. A live microphone's noise is never
 * exactly 0 for a second, so nothing else is affected. */
#define KWS_HOLD_MS 1000

/* Whether a frame is held, given the front end's zero_run and frame_ms. */
static inline int kws_hold_frame(uint64_t zero_run, int frame_ms) {
    return zero_run * (uint64_t)frame_ms >= KWS_HOLD_MS;
}

/* A held frame: the smoothing window is emptied, every score is 0 (copied
 * to scores if not NULL) and nothing fires; frame times keep counting. */
void kws_detector_hold(struct kws_detector *d, float *scores);

/* One frame of potentials v (C) through the detector, held or not: a held
 * frame (kws_hold_frame) goes to kws_detector_hold, any other to
 * kws_detector_step. Returns 1 and fills *hit when a keyword fires.
 * kws/listener.h adds the network and the hold counter around it. */
int kws_detector_frame(struct kws_detector *d, const float *v, int held, struct kws_hit *hit,
                       float *scores);

#endif /* KWS_CORE_DETECTOR_H */

/* kws/verify.h: a second look at an enrolled word's events, against its takes.
 *
 * A model enrolled from takes (kwsd-enroll) may carry the takes themselves:
 * each take's front-end features over the spoken word, every frame made
 * into the verifier's kind of features (kws_verify_features), scaled to
 * unit length so only the spectrum's shape counts, not the level: the
 * bands with their mean taken away (KWS_VERIFY_SHAPE, the first kind), or
 * the bands' cepstrum c1..cN (KWS_VERIFY_CEPSTRUM: a DCT-II over the bands,
 * c0, the level, left out; the smooth envelope of the spectrum, without the
 * fine detail of single bands that varies from voice to voice). When the
 * detector fires that word, the listener waits `ahead` frames, then matches
 * every take against the last `back + ahead + 1` frames it heard:
 * subsequence dynamic time warping, free to start and end anywhere in that
 * stretch, each take frame matched once, the stretch's frames taken at 1/2
 * to 2 times the take's pace. A take's cost is its summed Euclidean frame
 * distances over its frames; the event's cost is the mean of the `k`
 * lowest. The event is kept when that cost is at most `cut`.
 *
 * The network hears what it learnt from thousands of words, and fires on
 * speech that shares the word's rhythm; the takes say how this word
 * sounds, frame by frame. kws_verify_cut_loo sets the cut from the takes
 * alone: each take against the others, as a spoken word would be.
 *
 *     struct kws_verifier *v = &model.verify;     // n_takes 0: no verifier
 *     float cost = kws_verify_cost(v, frames, n, scratch);   // kws_verify_frame's
 *     if (cost <= v->cut) publish(event);
 *
 * Thread-safety: a verifier is read-only once built; scratch belongs to the
 * caller (kws_verify_scratch_floats floats).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_CORE_VERIFY_H
#define KWS_CORE_VERIFY_H

#include <stddef.h>
#include <stdint.h>

/* Limits a model file may hold. */
#define KWS_VERIFY_MAX_TAKES 64
#define KWS_VERIFY_MAX_TAKE_FRAMES 400 /* 4 s at 10 ms */
#define KWS_VERIFY_MAX_SPAN 1000       /* back + ahead + 1, frames */
#define KWS_VERIFY_MAX_K 16
/* Features per frame: a verifier's n_feat is at most its front end's
 * n_mels, which kws_frontend_cfg_check keeps at most this (so it bounds
 * the model file's size too). */
#define KWS_VERIFY_MAX_FEAT 256

/* The defaults kwsd-enroll writes: 1.2 s back, 300 ms ahead, mean of 3,
 * the cepstrum's first 13 coefficients after c0. */
#define KWS_VERIFY_BACK 120
#define KWS_VERIFY_AHEAD 30
#define KWS_VERIFY_K 3
#define KWS_VERIFY_CEPS 13

/* The kinds of features a verifier keeps of a frame (its `kind`). */
#define KWS_VERIFY_SHAPE 0    /* the bands, mean taken away: n_feat = n_mels */
#define KWS_VERIFY_CEPSTRUM 1 /* cepstrum c1..c(n_feat): 1 <= n_feat < n_mels */

struct kws_verifier {
    int32_t label;   /* the class its takes are of */
    int32_t n_takes; /* 0: no verifier (every other field 0) */
    int32_t kind;    /* KWS_VERIFY_SHAPE or KWS_VERIFY_CEPSTRUM */
    int32_t n_feat;  /* features per frame (n_mels for KWS_VERIFY_SHAPE) */
    int32_t k;       /* costs averaged: the k lowest (1..n_takes) */
    int32_t back;    /* frames heard before the detector's frame */
    int32_t ahead;   /* frames waited after it */
    float cut;       /* an event is kept when its cost <= cut */
    int32_t *len;    /* (n_takes) frames of each take */
    float *feat;     /* (sum of len, n_feat) normalised features, take after take */
    size_t n_frames; /* sum of len */
};

/* Frames the listener keeps for a look: back + ahead + 1. */
static inline int kws_verify_span(const struct kws_verifier *v) {
    return v->back + v->ahead + 1;
}

/* The refractory period a stream with v needs: at least the look's wait
 * (ahead + 1 frames), so one event waits for its look at a time; the
 * listener and the stream evaluation both apply it. v without takes leaves
 * refractory_ms as it is. */
static inline int kws_verify_refractory_ms(const struct kws_verifier *v, int frame_ms,
                                           int refractory_ms) {
    int wait_ms = (v->ahead + 1) * frame_ms;
    return v->n_takes > 0 && refractory_ms < wait_ms ? wait_ms : refractory_ms;
}

/* Normalises one frame of n features in place: the mean taken away, then
 * scaled to unit Euclidean length (a frame of equal features becomes 0). */
void kws_verify_norm(float *f, int n);

/* A frame of n_in front-end features (f) as a verifier of the given kind
 * keeps it: n_feat values in out, unit length (all 0 for a flat frame).
 * KWS_VERIFY_SHAPE is kws_verify_norm (n_feat = n_in); KWS_VERIFY_CEPSTRUM
 * takes out[k - 1] = sum_i f[i] cos(pi k (i + 1/2) / n_in), k = 1..n_feat
 * (n_feat < n_in), then scales them. */
void kws_verify_features(int kind, const float *f, int n_in, int n_feat, float *out);

/* A heard frame as the second look keeps it: kws_verify_features, rounded
 * to steps of 1/KWS_VERIFY_Q in q (n_feat values, n_in <=
 * KWS_VERIFY_MAX_FEAT). The daemon's ring and the stream evaluation both
 * keep frames this way, so they decide alike, at a quarter of the memory.
 * kws_verify_quantize does the rounding alone, for a frame already made. */
#define KWS_VERIFY_Q 127
void kws_verify_frame(int kind, const float *f, int n_in, int n_feat, int8_t *q);
void kws_verify_quantize(const float *x, int n, int8_t *q);

/* Allocates v's arrays for takes of the given lengths (copied), sets n_takes,
 * n_feat, n_frames and the defaults (k = min(KWS_VERIFY_K, n_takes), back,
 * ahead, kind KWS_VERIFY_SHAPE); label, cut and another kind are the
 * caller's. Returns 0, -EINVAL (lengths or
 * counts outside the limits) or -ENOMEM. */
int kws_verifier_alloc(struct kws_verifier *v, int n_takes, const int32_t *len, int n_feat);

/* Frees v's arrays and zeroes it. Safe on a zeroed verifier, and twice. */
void kws_verifier_free(struct kws_verifier *v);

/* Copies src into dst (allocated anew). Returns 0 or -ENOMEM. */
int kws_verifier_copy(struct kws_verifier *dst, const struct kws_verifier *src);

/* Floats of scratch kws_verify_cost needs for a stretch of n frames. */
size_t kws_verify_scratch_floats(size_t n);

/* The cost of the stretch seq (n frames of kws_verify_frame's n_feat values):
 * the mean of the k lowest take costs. skip >= 0 leaves that take out (a
 * take scored against the others). Returns a large value (1e30) when no
 * take fits in n frames. */
float kws_verify_cost_skip(const struct kws_verifier *v, const int8_t *seq, size_t n, int skip,
                           float *scratch);
float kws_verify_cost(const struct kws_verifier *v, const int8_t *seq, size_t n, float *scratch);

/* The cut from the takes alone: every take's cost against the others over
 * its own frames (full[t]: take t's frames with the audio around the word,
 * kws_verify_frame's values, full_len[t] of them), as a spoken word would
 * be looked at; the cut keeps KWS_VERIFY_KEEP of them (rounded up: the
 * highest of up to 19 takes, the second highest of 20 to 39), so one odd
 * take in twenty does not open the gate to everything. each, when not
 * NULL, gets those costs in take order (n_takes of them). Returns the cut,
 * or a negative errno (-EINVAL with fewer than 2 takes, -ENOMEM). */
#define KWS_VERIFY_KEEP 0.95
float kws_verify_cut_loo(const struct kws_verifier *v, const int8_t *const *full,
                         const int32_t *full_len, float *each);

#endif /* KWS_CORE_VERIFY_H */

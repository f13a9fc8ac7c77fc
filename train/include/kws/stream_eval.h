/* kws/stream_eval.h: streaming metrics of a model on a long recording.
 *
 * stream_eval_run joins a split's word clips (keywords and unknown words)
 * into one recording (stream_eval_run_passes: the split several times over),
 * each preceded by 0.5-2 s of the split's _silence_ noise, and runs the
 * model's front end and snn_step over it without any reset, keeping every
 * frame's readout potentials. stream_eval_run_opts adds the false-alarm
 * material: negative phrases between the words, or a recording of negatives
 * alone, and background noise under everything at a chosen SNR.
 * stream_eval_score then runs the daemon's detector (kws/detector.h) over
 * those potentials at a given threshold, so a threshold sweep costs one
 * network pass:
 *
 *     struct stream_eval se = {0};
 *     stream_eval_run(&se, &model, &ds, idx, n, seed, 1.0f);
 *     stream_eval_score(&se, &model.cfg, 0.5f, 300, 1000, &res);
 *     stream_eval_free(&se);
 *
 * A keyword clip counts as hit if an event of its label fires between the
 * word's start and 1 s after its end (an event of a model's enrolled word
 * fires where kwsd would publish it, after its second look); latency is the event's frame end minus
 * the word's end. Every other event is a false alarm; false alarms per hour
 * use the whole recording's duration. False alarms are also split by where
 * they fall: during an unknown word, during a negative phrase, during a
 * keyword, or in the noise.
 *
 * Thread-safety: a stream_eval belongs to one thread; several may run at once.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRAIN_STREAM_EVAL_H
#define KWS_TRAIN_STREAM_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "kws/dataset.h"
#include "kws/snn.h"

struct stream_eval {
    float *v;          /* (nf, n_classes) readout potentials per frame */
    uint8_t *held;     /* (nf) 1 where kwsd would hold the network (digital
                        * silence), or NULL: no frame held */
    size_t nf;         /* frames */
    int n_classes;     /* columns of v */
    int rate, hop;     /* samples per second, per frame */
    size_t n_word;     /* word occurrences in the recording, negatives included */
    int64_t *on, *off; /* (n_word) word start and end, samples, in time order */
    int *lab;          /* (n_word) class of each word */
    uint8_t *neg;      /* (n_word) 1 where the word is a negative phrase (ds_clip.negative),
                        * or NULL: none is */
    double hours;      /* duration of the recording */
    int passes;        /* passes said (a negatives-only recording may say more than asked) */
    /* The model's second look (kws/verify.h), copied; n_takes 0: none. Its
     * word's events are scored as kwsd publishes them: verify.ahead frames
     * after the detector fires, and only when the frames match the takes. */
    struct kws_verifier verify;
    int8_t *vfeat; /* (nf, verify.n_feat) each frame as kws_verify_frame keeps it, or NULL */
    float *vcost;  /* (nf) the second look's cost of an event at each frame, once
                    * computed (a sweep meets the same frames again); < 0: not yet */
};

struct stream_result {
    int n_kw, hits, false_alarms;
    int n_negative;  /* negative phrases said */
    int fa_unknown;  /* false alarms in an unknown word's window [start, end + 1 s] */
    int fa_negative; /* in a negative phrase's window [start, end + 1 s] */
    int fa_keyword;  /* in a keyword's window: another keyword's label, or a second event;
                      * the rest (false_alarms minus these three) fell in the noise */
    double hours, lat_mean_ms, lat_p50_ms, lat_p90_ms;
    double peak_p50; /* median over keyword occurrences of their class's peak smoothed score */
    int kw_n[SNN_MAX_CLASSES], kw_hits[SNN_MAX_CLASSES]; /* occurrences and hits per class */
    int kw_fa[SNN_MAX_CLASSES];                          /* false alarms by the label that fired */
};

/* Most passes stream_eval_run_passes takes. */
#define STREAM_EVAL_MAX_PASSES 16
/* Most passes of a negatives-only recording, after stretching to min_hours. */
#define STREAM_EVAL_MAX_NEG_PASSES 64

/* What a recording holds; stream_eval_opts_default gives stream_eval_run's.
 *
 * Negatives: each clip of neg is said once per pass, after its own gap of
 * 0.5-2 s of the split's _silence_ noise, at a random place between the
 * pass's words (the words keep their order and gaps; each pass draws new
 * places and a new order of the negatives). They count as non-keyword
 * material: any event during one is a false alarm (fa_negative). Clips of idx
 * with ds_clip.negative set stay words but count as negatives too.
 *
 * neg_only: the recording holds the negatives alone, with their gaps (idx
 * gives only the _silence_ clips of the gaps; its words are left out), for
 * false alarms per hour with nothing to find. When `passes` passes of them
 * last under min_hours (estimated with 1.25 s per gap), more passes are said,
 * up to STREAM_EVAL_MAX_NEG_PASSES.
 *
 * Noise: with n_noise recordings, noise is added under the whole recording
 * (gaps, words and negatives). It is read on from a random place in a random
 * recording, recording after recording, each scaled to unit RMS over its whole
 * length (silent ones are skipped). Each word or negative draws an SNR
 * uniform in [snr_lo, snr_hi] dB; the noise under it then has RMS
 * rms(word) / 10^(snr / 20), rms(word) being the clip's RMS from its word
 * start to its word end (ds_clip.on, off). In the gap before a word the
 * noise gain goes linearly from the previous word's to this word's; after
 * the last word it stays. */
struct stream_eval_opts {
    uint64_t seed;     /* gap lengths, later passes' orders, negatives' places, SNRs */
    float noise_gain;  /* scale of the _silence_ gaps: 1 keeps their level, 0.1 is 20 dB quieter */
    int passes;        /* 1..STREAM_EVAL_MAX_PASSES */
    const size_t *neg; /* (n_neg) clips of ds said between the words, or NULL */
    size_t n_neg;
    int neg_only;              /* 1: a recording of the negatives alone */
    double min_hours;          /* neg_only: the shortest recording (passes are added) */
    const float *const *noise; /* (n_noise) noise recordings at the model's rate, or NULL */
    const int32_t *noise_n;    /* (n_noise) their lengths, samples */
    size_t n_noise;
    float snr_lo, snr_hi; /* dB, snr_lo <= snr_hi */
    /* called with the recording's audio a piece at a time, in order, before
     * the front end runs over it (a word or negative with the gap before it,
     * or a pass's tail; pass: the piece's pass; x: n samples, valid during
     * the call; total: samples of the whole recording, all passes), or NULL */
    void (*on_audio)(void *ctx, int pass, const float *x, size_t n, size_t total);
    void *ctx;
};

/* seed 1, noise_gain 1, one pass, no negatives, no noise, snr 10..20 dB,
 * min_hours 1. */
struct stream_eval_opts stream_eval_opts_default(void);

/* Builds the recording that o describes from clips idx[0..n) of ds (silence
 * clips become the gaps, the others the words) and runs model m over it, the
 * network never reset. Pass 0 says the words in idx's order, each later pass
 * in a shuffled order with gap lengths drawn on; the words' orders and gaps
 * depend on the seed alone, so negatives move the words but never reorder
 * them, and noise changes neither. The recording is made and heard an item
 * at a time (a word or negative with its gap): only one item's audio and
 * spikes are held, whatever its length; the potentials of all passes are
 * kept (n_classes floats per 10 ms frame).
 * Returns 0, -ENOMEM, KWS_EDATASET when there is no word (neg_only: no
 * negative) or no noise recording with sound, or KWS_EBADFIELD for passes
 * outside 1..STREAM_EVAL_MAX_PASSES or a bad SNR range. */
int stream_eval_run_opts(struct stream_eval *se, const struct snn_model *m,
                         const struct dataset *ds, const size_t *idx, size_t n,
                         const struct stream_eval_opts *o);

/* One pass with seed and noise_gain (silence clips become the gaps, scaled
 * by noise_gain: 1 keeps their level, 0.1 is 20 dB quieter; seed draws the
 * gap lengths). Returns what stream_eval_run_opts returns. */
int stream_eval_run(struct stream_eval *se, const struct snn_model *m, const struct dataset *ds,
                    const size_t *idx, size_t n, uint64_t seed, float noise_gain);

/* stream_eval_run with the split said `passes` times in a row, the network
 * never reset: pass 0 is stream_eval_run's recording (same order, gaps and
 * noise), each later pass says the same words in a shuffled order with gap
 * lengths drawn on, so a longer recording comes from the same clips.
 * Returns what stream_eval_run_opts returns. */
int stream_eval_run_passes(struct stream_eval *se, const struct snn_model *m,
                           const struct dataset *ds, const size_t *idx, size_t n, uint64_t seed,
                           float noise_gain, int passes);

/* Scores the stored potentials with the detector (threshold for every
 * keyword, smoothing and refractory in ms). Returns 0 or -ENOMEM. */
int stream_eval_score(const struct stream_eval *se, const struct snn_cfg *cfg, float threshold,
                      int smooth_ms, int refr_ms, struct stream_result *res);

/* The thresholds that calibration and sweeps try: 0.20, 0.25, ..., 0.95,
 * then 0.97, 0.98, 0.99, 0.995, 0.998 and 0.999 for a network trained for
 * the stream, whose keyword posteriors saturate (an enrolled word's most of
 * all). */
#define STREAM_EVAL_GRID_N 22
float stream_eval_grid(int i);

/* The lowest threshold on the grid (stream_eval_grid) whose false alarms
 * per hour are at most max_fa_per_hour (the highest hit rate within that
 * budget, as hits fall with the threshold); the grid's highest if none is.
 * Writes that threshold's result to res (may be NULL). Returns the
 * threshold, or a negative value on -ENOMEM. */
float stream_eval_calibrate(const struct stream_eval *se, const struct snn_cfg *cfg, int smooth_ms,
                            int refr_ms, double max_fa_per_hour, struct stream_result *res);

void stream_eval_free(struct stream_eval *se);

#endif /* KWS_TRAIN_STREAM_EVAL_H */

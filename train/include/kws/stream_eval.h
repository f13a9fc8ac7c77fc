/* kws/stream_eval.h: streaming metrics of a model on a long recording.
 *
 * stream_eval_run joins a split's word clips (keywords and unknown words)
 * into one recording (stream_eval_run_passes: the split several times over),
 * each preceded by 0.5-2 s of the split's _silence_ noise, and runs the
 * model's front end and snn_step over it without any reset, keeping every
 * frame's readout potentials. stream_eval_score then
 * runs the daemon's detector (kws/detector.h) over those potentials at a
 * given threshold, so a threshold sweep costs one network pass:
 *
 *     struct stream_eval se = {0};
 *     stream_eval_run(&se, &model, &ds, idx, n, seed, 1.0f);
 *     stream_eval_score(&se, &model.cfg, 0.5f, 300, 1000, &res);
 *     stream_eval_free(&se);
 *
 * A keyword clip counts as hit if an event of its label fires between the
 * word's start and 1 s after its end; latency is the event's frame end minus
 * the word's end. Every other event is a false alarm; false alarms per hour
 * use the whole recording's duration. False alarms are also split by where
 * they fall: during an unknown word, during a keyword, or in the noise.
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
    size_t n_word;     /* word occurrences in the recording */
    int64_t *on, *off; /* (n_word) word start and end, samples */
    int *lab;          /* (n_word) class of each word */
    double hours;      /* duration of the recording */
};

struct stream_result {
    int n_kw, hits, false_alarms;
    int fa_unknown; /* false alarms in an unknown word's window [start, end + 1 s] */
    int fa_keyword; /* in a keyword's window: another keyword's label, or a second event */
    double hours, lat_mean_ms, lat_p50_ms, lat_p90_ms;
    double peak_p50; /* median over keyword occurrences of their class's peak smoothed score */
    int kw_n[SNN_MAX_CLASSES], kw_hits[SNN_MAX_CLASSES]; /* occurrences and hits per class */
    int kw_fa[SNN_MAX_CLASSES];                          /* false alarms by the label that fired */
};

/* Builds the recording from clips idx[0..n) of ds (silence clips become the
 * gaps, scaled by noise_gain: 1 keeps their level, 0.1 is 20 dB quieter;
 * seed draws the gap lengths) and runs model m over it. Returns 0,
 * -ENOMEM, or KWS_EDATASET when the clips hold no word. */
int stream_eval_run(struct stream_eval *se, const struct snn_model *m, const struct dataset *ds,
                    const size_t *idx, size_t n, uint64_t seed, float noise_gain);

/* Most passes stream_eval_run_passes takes. */
#define STREAM_EVAL_MAX_PASSES 16

/* stream_eval_run with the split said `passes` times in a row, the network
 * never reset: pass 0 is stream_eval_run's recording (same order, gaps and
 * noise), each later pass says the same words in a shuffled order with gap
 * lengths drawn on, so a longer recording comes from the same clips. Only one
 * pass of audio and spikes is held at a time; the potentials of all passes
 * are kept (n_classes floats per 10 ms frame). Returns 0, -ENOMEM,
 * KWS_EDATASET, or KWS_EBADFIELD for passes outside 1..STREAM_EVAL_MAX_PASSES. */
int stream_eval_run_passes(struct stream_eval *se, const struct snn_model *m,
                           const struct dataset *ds, const size_t *idx, size_t n, uint64_t seed,
                           float noise_gain, int passes);

/* Scores the stored potentials with the detector (threshold for every
 * keyword, smoothing and refractory in ms). Returns 0 or -ENOMEM. */
int stream_eval_score(const struct stream_eval *se, const struct snn_cfg *cfg, float threshold,
                      int smooth_ms, int refr_ms, struct stream_result *res);

/* The lowest threshold on the grid 0.20, 0.25, ..., 0.95 whose false alarms
 * per hour are at most max_fa_per_hour (the highest hit rate within that
 * budget, as hits fall with the threshold); 0.95 if none is. Writes that
 * threshold's result to res (may be NULL). Returns the threshold, or a
 * negative value on -ENOMEM. */
float stream_eval_calibrate(const struct stream_eval *se, const struct snn_cfg *cfg, int smooth_ms,
                            int refr_ms, double max_fa_per_hour, struct stream_result *res);

void stream_eval_free(struct stream_eval *se);

#endif /* KWS_TRAIN_STREAM_EVAL_H */

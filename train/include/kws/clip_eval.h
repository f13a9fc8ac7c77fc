/* kws/clip_eval.h: clip accuracy, confusion and peak scores of a model (kwsd-eval's clip mode).
 *
 * clip_eval_run renders each clip exactly as the trainer renders its
 * validation clips (the word centred in T frames, no augmentation, 30
 * warm-up frames; dataset_render), runs the model over it with
 * snn_forward, and
 *
 *   - classifies it by the argmax over classes of sum_t softmax(v[t])
 *     (train_clip_predict, the trainer's clip rule), for the accuracy and
 *     the confusion matrix;
 *   - feeds the potentials frame by frame to the daemon's own detector
 *     (kws/detector.h: softmax posterior averaged over smoothing_ms), and
 *     keeps the highest smoothed score of the clip's true class, its peak:
 *     the score a threshold has to stay under for the word to fire.
 *
 *     struct clip_eval_opts o = clip_eval_opts_default();
 *     struct clip_eval_result r;
 *     if (clip_eval_run(&model, &ds, idx, n, &o, &r) == 0)
 *         printf("%.2f %%\n", 100.0 * r.accuracy);
 *
 * Thread-safety: clip_eval_run uses OpenMP over the clips; the model and the
 * data set are only read. The results do not depend on the thread count.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRAIN_CLIP_EVAL_H
#define KWS_TRAIN_CLIP_EVAL_H

#include <stddef.h>

#include "kws/dataset.h"
#include "kws/snn.h"

struct clip_eval_opts {
    int T;         /* frames per clip (100: 1 s) */
    int smooth_ms; /* the detector's smoothing window for the peaks, ms */
};

struct clip_eval_result {
    size_t n;                                  /* clips scored */
    size_t correct;                            /* of them classified right */
    double accuracy;                           /* correct / n (0 without clips) */
    int confusion[SNN_MAX_CLASSES][SNN_MAX_CLASSES]; /* [true][predicted] clip counts */
    float class_peak[SNN_MAX_CLASSES];         /* upper median peak of each true class's clips */
    double keyword_peak;                       /* upper median peak over the clips of keywords
                                                * (labels not starting with '_') */
};

/* T 100 frames, smoothing 300 ms (kwsd.yaml's detection default). */
struct clip_eval_opts clip_eval_opts_default(void);

/* Scores the clips idx[0..n) of ds with model m (see the top of this file)
 * into r. ds's labels must be m's classes, in m's order. Returns 0, -EINVAL
 * for bad options, or -ENOMEM. */
int clip_eval_run(const struct snn_model *m, const struct dataset *ds, const size_t *idx, size_t n,
                  const struct clip_eval_opts *o, struct clip_eval_result *r);

#endif /* KWS_TRAIN_CLIP_EVAL_H */

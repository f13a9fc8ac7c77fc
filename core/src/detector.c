/* detector.c: posterior smoothing, thresholds and the refractory period.
 *
 * See kws/detector.h for the behaviour. The window average is kept as a
 * running sum over a ring of the last W posteriors, so a frame costs O(C)
 * whatever the window length.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/detector.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kws/err.h"

void kws_detector_cfg_default(struct kws_detector_cfg *cfg, const struct snn_cfg *model,
                              float threshold, int smoothing_ms, int refractory_ms, int frame_ms) {
    memset(cfg, 0, sizeof *cfg);
    cfg->n_classes = model->n_classes;
    for (int c = 0; c < model->n_classes && c < SNN_MAX_CLASSES; c++) {
        cfg->threshold[c] = threshold;
        cfg->fires[c] = model->labels[c][0] != '_';
    }
    if (frame_ms <= 0)
        frame_ms = 10;
    cfg->frame_ms = frame_ms;
    cfg->smoothing_frames = (smoothing_ms + frame_ms - 1) / frame_ms;
    if (cfg->smoothing_frames < 1)
        cfg->smoothing_frames = 1;
    cfg->refractory_frames = (refractory_ms + frame_ms - 1) / frame_ms;
}

int kws_detector_init(struct kws_detector *d, const struct kws_detector_cfg *cfg) {
    size_t c, w;

    memset(d, 0, sizeof *d);
    if (cfg->n_classes < 1 || cfg->n_classes > SNN_MAX_CLASSES || cfg->smoothing_frames < 1 ||
        cfg->smoothing_frames > 100000 || cfg->refractory_frames < 0 || cfg->frame_ms < 1)
        return -EINVAL;
    d->cfg = *cfg;
    c = (size_t)cfg->n_classes;
    w = (size_t)cfg->smoothing_frames;
    d->hist = calloc(w * c + 2 * c, sizeof(float));
    d->rise = calloc(c, sizeof(int64_t));
    if (!d->hist || !d->rise) {
        kws_detector_free(d);
        return -ENOMEM;
    }
    d->sum = d->hist + w * c;
    d->post = d->sum + c;
    kws_detector_reset(d);
    return 0;
}

void kws_detector_reset(struct kws_detector *d) {
    size_t c = (size_t)d->cfg.n_classes;

    memset(d->hist, 0, ((size_t)d->cfg.smoothing_frames * c + 2 * c) * sizeof(float));
    for (size_t i = 0; i < c; i++)
        d->rise[i] = -1;
    d->pos = 0;
    d->filled = 0;
    d->frame = 0;
    d->quiet_until = 0;
}

void kws_detector_hold(struct kws_detector *d, float *scores) {
    size_t c = (size_t)d->cfg.n_classes;

    if (d->filled) {
        memset(d->hist, 0, ((size_t)d->cfg.smoothing_frames * c + 2 * c) * sizeof(float));
        for (size_t i = 0; i < c; i++)
            d->rise[i] = -1;
        d->pos = 0;
        d->filled = 0;
    }
    if (scores)
        memset(scores, 0, c * sizeof *scores);
    d->frame++;
}

int kws_detector_frame(struct kws_detector *d, const float *v, int held, struct kws_hit *hit,
                       float *scores) {
    if (held) {
        kws_detector_hold(d, scores);
        return 0;
    }
    return kws_detector_step(d, v, hit, scores);
}

void kws_detector_free(struct kws_detector *d) {
    free(d->hist);
    free(d->rise);
    memset(d, 0, sizeof *d);
}

void kws_detector_rearm(struct kws_detector *d, int after) {
    d->quiet_until = d->frame + after;
}

int kws_detector_step(struct kws_detector *d, const float *v, struct kws_hit *hit, float *scores) {
    const int C = d->cfg.n_classes;
    const int W = d->cfg.smoothing_frames;
    float *row = d->hist + (size_t)d->pos * (size_t)C;
    float vmax = v[0], z = 0.0f;
    int best = -1;
    float best_margin = 0.0f;

    /* Softmax of this frame's potentials. */
    for (int c = 1; c < C; c++)
        if (v[c] > vmax)
            vmax = v[c];
    for (int c = 0; c < C; c++) {
        d->post[c] = expf(v[c] - vmax);
        z += d->post[c];
    }
    /* Slide the window: drop the oldest row from the sums, add this one. */
    for (int c = 0; c < C; c++) {
        float p = d->post[c] / z;
        if (d->filled == W)
            d->sum[c] -= row[c];
        row[c] = p;
        d->sum[c] += p;
    }
    if (d->filled < W)
        d->filled++;
    d->pos = (d->pos + 1) % W;
    if (d->pos == 0) {
        /* Once per window, recompute the sums exactly so float rounding of the
         * running sum cannot drift over hours of audio. */
        for (int c = 0; c < C; c++) {
            float s = 0.0f;
            for (int w = 0; w < W; w++)
                s += d->hist[(size_t)w * (size_t)C + (size_t)c];
            d->sum[c] = s;
        }
    }

    /* A class's score is its mean posterior over a full window; a short
     * history counts the missing frames as zero, so the first frames of a
     * stream cannot fire on a single loud frame. */
    for (int c = 0; c < C; c++) {
        float s = d->sum[c] / (float)W;
        if (s < 0.0f) /* running-sum rounding */
            s = 0.0f;
        if (scores)
            scores[c] = s;
        if (s >= 0.5f * d->cfg.threshold[c]) {
            if (d->rise[c] < 0)
                d->rise[c] = d->frame;
        } else {
            d->rise[c] = -1;
        }
        if (d->cfg.fires[c] && s >= d->cfg.threshold[c] && s - d->cfg.threshold[c] >= best_margin) {
            best = c;
            best_margin = s - d->cfg.threshold[c];
        }
    }

    int fired = 0;
    if (best >= 0 && d->frame >= d->quiet_until) {
        hit->label = best;
        hit->score = d->sum[best] / (float)W;
        hit->threshold = d->cfg.threshold[best];
        hit->start_ms = (d->rise[best] >= 0 ? d->rise[best] : d->frame) * d->cfg.frame_ms;
        hit->end_ms = (d->frame + 1) * d->cfg.frame_ms;
        d->quiet_until = d->frame + 1 + d->cfg.refractory_frames;
        fired = 1;
    }
    d->frame++;
    return fired;
}

/* dataset_mine.c: hard negatives, the training negatives a model fires on.
 *
 * Each negative clip runs alone through the model's front end, network and
 * the daemon's detector (kws/detector.h, its smoothing and refractory rule);
 * a clip on which any keyword reaches the threshold is a hard negative. The
 * trainer draws them more often in the next epochs' stream windows, so the
 * network meets the phrases it confuses with a keyword until it stops.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kws/dataset.h"
#include "kws/detector.h"
#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/listener.h"

/* Highest smoothed keyword score of clip cl, and whether a keyword fired. */
static int mine_one(const struct snn_model *m, const struct ds_clip *cl, struct audio_fe *fe,
                    struct snn_state *st, struct kws_detector *d, float *sp, size_t max_frames,
                    float *peak) {
    audio_fe_reset(fe);
    snn_state_reset(st, m);
    kws_detector_reset(d);
    size_t nf = audio_fe_compute(fe, cl->x, (size_t)cl->n, NULL, sp, max_frames);
    int K = m->cfg.n_classes, fired = 0;
    float v[SNN_MAX_CLASSES], sc[SNN_MAX_CLASSES];
    *peak = 0.0f;
    for (size_t f = 0; f < nf; f++) {
        struct kws_hit hit;
        snn_step(m, st, sp + f * (size_t)fe->n_out, v);
        fired |= kws_detector_step(d, v, &hit, sc);
        for (int c = 0; c < K; c++)
            if (d->cfg.fires[c] && sc[c] > *peak)
                *peak = sc[c];
    }
    return fired;
}

int dataset_mine(const struct snn_model *m, const struct dataset *ds, const size_t *idx, size_t n,
                 float thr, int smooth_ms, size_t *hard, size_t *n_hard, float *peak) {
    int32_t max_n = 0;
    for (size_t i = 0; i < n; i++)
        max_n = ds->clips[idx[i]].n > max_n ? ds->clips[idx[i]].n : max_n;
    int hop = m->cfg.fe.hop, frame_ms = kws_frame_ms(&m->cfg.fe);
    size_t max_frames = (size_t)max_n / (size_t)hop + 2;
    uint8_t *hit = calloc(n ? n : 1, 1);
    int err = 0;
    if (!hit)
        return -ENOMEM;
#pragma omp parallel reduction(| : err)
    {
        struct audio_fe fe = {0};
        struct snn_state st = {0};
        struct kws_detector d = {0};
        struct kws_detector_cfg dc;
        kws_detector_cfg_default(&dc, &m->cfg, thr, smooth_ms, 1000, frame_ms);
        float *sp = NULL;
        if (audio_fe_init(&fe, &m->cfg.fe) < 0 || snn_state_init(&st, m) < 0 ||
            kws_detector_init(&d, &dc) < 0 ||
            !(sp = malloc(max_frames * (size_t)audio_fe_n_out(&m->cfg.fe) * sizeof *sp)))
            err = 1;
#pragma omp for schedule(dynamic, 8)
        for (size_t i = 0; i < n; i++) {
            float pk = 0.0f;
            if (!err)
                hit[i] =
                    (uint8_t)mine_one(m, &ds->clips[idx[i]], &fe, &st, &d, sp, max_frames, &pk);
            if (peak)
                peak[i] = pk;
        }
        free(sp);
        kws_detector_free(&d);
        snn_state_free(&st);
        audio_fe_free(&fe);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (hit[i])
            hard[k++] = idx[i];
    *n_hard = k;
    free(hit);
    return err ? -ENOMEM : 0;
}

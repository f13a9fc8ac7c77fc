/* dataset_mine.c: hard negatives, the training negatives a model fires on.
 *
 * Each negative clip runs alone through the model's front end and a
 * listener (kws/listener.h: the network, the daemon's detector and its
 * digital-silence hold, as kwsd hears a stream); a clip on which any
 * keyword reaches the threshold is a hard negative. The
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

/* One clip heard by a listener: its highest smoothed keyword score, and
 * whether a keyword fired. */
struct mine_ctx {
    struct kws_listener *lis;
    const struct audio_fe *fe;
    int fired;
    float peak;
};

static void mine_frame(void *ctx, const float *feat, const float *spikes) {
    struct mine_ctx *c = ctx;
    struct kws_hit hit;
    c->fired |= kws_listener_frame(c->lis, feat, spikes, c->fe->zero_run, &hit);
    for (int k = 0; k < c->lis->model->cfg.n_classes; k++)
        if (c->lis->det.cfg.fires[k] && c->lis->scores[k] > c->peak)
            c->peak = c->lis->scores[k];
}

/* Runs clip cl through fe and lis from rest; returns whether a keyword
 * fired, its highest score in *peak. */
static int mine_one(const struct ds_clip *cl, struct audio_fe *fe, struct kws_listener *lis,
                    float *peak) {
    struct mine_ctx c = {lis, fe, 0, 0.0f};
    audio_fe_reset(fe);
    kws_listener_reset(lis);
    audio_fe_push(fe, cl->x, (size_t)cl->n, mine_frame, &c);
    *peak = c.peak;
    return c.fired;
}

int dataset_mine(const struct snn_model *m, const struct dataset *ds, const size_t *idx, size_t n,
                 float thr, int smooth_ms, size_t *hard, size_t *n_hard, float *peak) {
    uint8_t *hit = calloc(n ? n : 1, 1);
    int err = 0;
    if (!hit)
        return -ENOMEM;
    struct kws_listener_settings ls;
    kws_listener_settings_default(&ls);
    ls.threshold = thr;
    ls.smoothing_ms = smooth_ms;
#pragma omp parallel reduction(| : err)
    {
        struct audio_fe fe = {0};
        struct kws_listener lis = {0};
        if (audio_fe_init(&fe, &m->cfg.fe) < 0 || kws_listener_init(&lis, m, &ls) < 0)
            err = 1;
#pragma omp for schedule(dynamic, 8)
        for (size_t i = 0; i < n; i++) {
            float pk = 0.0f;
            if (!err)
                hit[i] = (uint8_t)mine_one(&ds->clips[idx[i]], &fe, &lis, &pk);
            if (peak)
                peak[i] = pk;
        }
        kws_listener_free(&lis);
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

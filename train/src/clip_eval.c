/* clip_eval.c: clip accuracy, confusion and the detector's peak score per clip (kws/clip_eval.h).
 *
 * Each thread owns a front end, a network state and a detector; a clip is
 * rendered, run through snn_forward, classified with train_clip_predict,
 * and its potentials are stepped through the detector from a reset, so its
 * peak is the smoothed score the daemon would compute over that second.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/clip_eval.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kws/detector.h"
#include "kws/frontend.h"
#include "kws/listener.h"
#include "kws/train.h"
#include "train_internal.h"

struct clip_eval_opts clip_eval_opts_default(void) {
    struct kws_listener_settings ls; /* kwsd's smoothing */
    kws_listener_settings_default(&ls);
    return (struct clip_eval_opts){.T = 100, .smooth_ms = ls.smoothing_ms};
}

/* The upper median of v[0..n) (sorts v in place); 0 if n is 0. */
static float median_sort(float *v, size_t n) {
    if (!n)
        return 0.0f;
    qsort(v, n, sizeof *v, train__cmp_float);
    return v[n / 2];
}

/* The highest smoothed score of class y over the T frames of potentials vo
 * (T, C), from a reset detector d. */
static float clip_peak(struct kws_detector *d, const float *vo, int T, int C, int y,
                       float *scores) {
    struct kws_hit hit;
    float best = 0.0f;
    kws_detector_reset(d);
    for (int t = 0; t < T; t++) {
        kws_detector_step(d, vo + (size_t)t * C, &hit, scores);
        best = scores[y] > best ? scores[y] : best;
    }
    return best;
}

/* pred[i] and peak[i] of every clip; returns 0 or -ENOMEM. */
static int score_clips(const struct snn_model *m, const struct dataset *ds, const size_t *idx,
                       size_t n, const struct clip_eval_opts *o, int *pred, float *peak) {
    const struct snn_cfg *cfg = &m->cfg;
    int T = o->T, K = cfg->n_classes, err = 0;
    struct kws_detector_cfg dc;
    struct ds_aug none;
    kws_detector_cfg_default(&dc, cfg, 1.0f, o->smooth_ms, 0, kws_frame_ms(&cfg->fe));
    dataset_aug_none(&none);
#pragma omp parallel reduction(| : err)
    {
        struct audio_fe fe = {0};
        struct snn_state st = {0};
        struct kws_detector det = {0};
        float *sp = malloc((size_t)T * (size_t)audio_fe_n_out(&cfg->fe) * sizeof *sp);
        float *vo = malloc((size_t)T * K * sizeof *vo), scores[SNN_MAX_CLASSES];
        if (!sp || !vo || audio_fe_init(&fe, &cfg->fe) < 0 || snn_state_init(&st, m) < 0 ||
            kws_detector_init(&det, &dc) < 0)
            err = 1;
#pragma omp for schedule(dynamic, 8)
        for (size_t i = 0; i < n; i++) {
            if (err || dataset_render(ds, idx[i], &none, 0x5eed, &fe, T, sp, NULL) < 0) {
                err = 1;
                continue;
            }
            snn_forward(m, &st, sp, T, vo);
            pred[i] = train_clip_predict(vo, T, K, NULL);
            peak[i] = clip_peak(&det, vo, T, K, ds->clips[idx[i]].label, scores);
        }
        free(sp);
        free(vo);
        audio_fe_free(&fe);
        snn_state_free(&st);
        kws_detector_free(&det);
    }
    return err ? -ENOMEM : 0;
}

int clip_eval_run(const struct snn_model *m, const struct dataset *ds, const size_t *idx, size_t n,
                  const struct clip_eval_opts *o, struct clip_eval_result *r) {
    const struct snn_cfg *cfg = &m->cfg;
    int K = cfg->n_classes, rc = -ENOMEM;
    memset(r, 0, sizeof *r);
    if (o->T < 1 || o->smooth_ms < 1 || ds->n_classes != K)
        return -EINVAL;
    int *pred = malloc((n + 1) * sizeof *pred);
    float *peak = malloc((n + 1) * sizeof *peak), *tmp = malloc((n + 1) * sizeof *tmp);
    if (!pred || !peak || !tmp || score_clips(m, ds, idx, n, o, pred, peak) < 0)
        goto out;
    r->n = n;
    for (size_t i = 0; i < n; i++) {
        int y = ds->clips[idx[i]].label;
        r->confusion[y][pred[i]]++;
        r->correct += pred[i] == y;
    }
    r->accuracy = n ? (double)r->correct / (double)n : 0.0;
    for (int k = 0; k < K; k++) {
        size_t nk = 0;
        for (size_t i = 0; i < n; i++)
            if (ds->clips[idx[i]].label == k)
                tmp[nk++] = peak[i];
        r->class_peak[k] = median_sort(tmp, nk);
    }
    size_t nk = 0;
    for (size_t i = 0; i < n; i++)
        if (cfg->labels[ds->clips[idx[i]].label][0] != '_')
            tmp[nk++] = peak[i];
    r->keyword_peak = median_sort(tmp, nk);
    rc = 0;
out:
    free(pred);
    free(peak);
    free(tmp);
    return rc;
}

/* listener.c: one listening stream (see kws/listener.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/listener.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void kws_listener_settings_default(struct kws_listener_settings *s) {
    memset(s, 0, sizeof *s);
    s->threshold = KWS_THRESHOLD_MODEL;
    s->smoothing_ms = 300;
    s->refractory_ms = 1000;
}

float kws_listener_threshold(const struct kws_listener_settings *s, const char *label,
                             float model_thr) {
    for (int i = 0; label && i < s->n_keywords; i++)
        if (strcmp(s->keywords[i].label, label) == 0)
            return s->keywords[i].threshold;
    if (s->threshold != KWS_THRESHOLD_MODEL)
        return s->threshold;
    return model_thr > 0.0f && model_thr <= 1.0f ? model_thr : KWS_THRESHOLD_FALLBACK;
}

int kws_listener_init(struct kws_listener *l, const struct snn_model *m,
                      const struct kws_listener_settings *s) {
    const struct snn_cfg *cfg = &m->cfg;
    struct kws_detector_cfg dc;
    int rc;

    memset(l, 0, sizeof *l);
    if (s->smoothing_ms < 1 || s->refractory_ms < 0 || s->n_keywords < 0 ||
        s->n_keywords > SNN_MAX_CLASSES)
        return -EINVAL;
    l->model = m;
    l->settings = *s;
    l->frame_ms = kws_frame_ms(&cfg->fe);
    kws_detector_cfg_default(&dc, cfg, 0.0f, s->smoothing_ms, s->refractory_ms, l->frame_ms);
    for (int c = 0; c < cfg->n_classes && c < SNN_MAX_CLASSES; c++)
        dc.threshold[c] = kws_listener_threshold(s, cfg->labels[c], cfg->threshold);
    rc = kws_detector_init(&l->det, &dc);
    if (rc == 0)
        rc = snn_state_init(&l->state, m);
    l->v = calloc((size_t)cfg->n_classes, sizeof *l->v);
    l->scores = calloc((size_t)cfg->n_classes, sizeof *l->scores);
    if (rc == 0 && (!l->v || !l->scores))
        rc = -ENOMEM;
    if (rc < 0)
        kws_listener_free(l);
    return rc;
}

void kws_listener_reset(struct kws_listener *l) {
    snn_state_reset(&l->state, l->model);
    kws_detector_reset(&l->det);
    l->held = 0;
}

void kws_listener_free(struct kws_listener *l) {
    kws_detector_free(&l->det);
    snn_state_free(&l->state);
    free(l->v);
    free(l->scores);
    memset(l, 0, sizeof *l);
}

void kws_listener_step_net(struct kws_listener *l, const float *spikes, int held) {
    if (held) {
        if (!l->held++)
            snn_state_reset(&l->state, l->model);
        memset(l->v, 0, (size_t)l->model->cfg.n_classes * sizeof *l->v);
        return;
    }
    l->held = 0;
    snn_step(l->model, &l->state, spikes, l->v);
}

int kws_listener_frame(struct kws_listener *l, const float *spikes, uint64_t zero_run,
                       struct kws_hit *hit) {
    int held = kws_hold_frame(zero_run, l->frame_ms);
    kws_listener_step_net(l, spikes, held);
    return kws_detector_frame(&l->det, l->v, held, hit, l->scores);
}

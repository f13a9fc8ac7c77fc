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
    const struct kws_verifier *vf = &m->verify;
    int refractory_ms = kws_verify_refractory_ms(vf, l->frame_ms, s->refractory_ms);
    if (vf->n_takes > 0) {
        l->vspan = kws_verify_span(vf);
        size_t ring = (size_t)l->vspan * (size_t)vf->n_feat;
        l->vring = calloc(ring, sizeof *l->vring);
        l->vseq = calloc(ring, sizeof *l->vseq);
        l->vscratch = calloc(kws_verify_scratch_floats((size_t)l->vspan), sizeof *l->vscratch);
    }
    kws_detector_cfg_default(&dc, cfg, 0.0f, s->smoothing_ms, refractory_ms, l->frame_ms);
    for (int c = 0; c < cfg->n_classes && c < SNN_MAX_CLASSES; c++)
        dc.threshold[c] = kws_listener_threshold(s, cfg->labels[c], cfg->threshold);
    rc = kws_detector_init(&l->det, &dc);
    if (rc == 0)
        rc = snn_state_init(&l->state, m);
    l->v = calloc((size_t)cfg->n_classes, sizeof *l->v);
    l->scores = calloc((size_t)cfg->n_classes, sizeof *l->scores);
    if (rc == 0 && (!l->v || !l->scores))
        rc = -ENOMEM;
    if (rc == 0 && vf->n_takes > 0 && (!l->vring || !l->vseq || !l->vscratch))
        rc = -ENOMEM;
    if (rc < 0)
        kws_listener_free(l);
    return rc;
}

void kws_listener_reset(struct kws_listener *l) {
    snn_state_reset(&l->state, l->model);
    kws_detector_reset(&l->det);
    l->held = 0;
    l->vfill = l->vpos = l->pending = 0;
}

void kws_listener_free(struct kws_listener *l) {
    kws_detector_free(&l->det);
    snn_state_free(&l->state);
    free(l->v);
    free(l->scores);
    free(l->vring);
    free(l->vseq);
    free(l->vscratch);
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

/* Keeps this frame's normalised features in the ring. */
static void verify_push(struct kws_listener *l, const float *feat) {
    const struct kws_verifier *v = &l->model->verify;
    kws_verify_frame(v->kind, feat, l->model->cfg.fe.n_mels, v->n_feat,
                     l->vring + (size_t)l->vpos * (size_t)v->n_feat);
    l->vpos = (l->vpos + 1) % l->vspan;
    if (l->vfill < l->vspan)
        l->vfill++;
}

/* The second look at the held event: the ring's frames in time order
 * against the takes. Returns 1 when the event is kept. */
static int verify_held(struct kws_listener *l) {
    const struct kws_verifier *vf = &l->model->verify;
    size_t nf = (size_t)vf->n_feat, first = (size_t)((l->vpos - l->vfill + l->vspan) % l->vspan);
    for (size_t i = 0; i < (size_t)l->vfill; i++)
        memcpy(l->vseq + i * nf, l->vring + ((first + i) % (size_t)l->vspan) * nf,
               nf * sizeof *l->vseq);
    l->last_cost = kws_verify_cost(vf, l->vseq, (size_t)l->vfill, l->vscratch);
    l->n_verified++;
    if (l->last_cost <= vf->cut)
        return 1;
    l->n_rejected++;
    kws_detector_rearm(&l->det, 0); /* the word may fire again from the next frame */
    return 0;
}

int kws_listener_frame(struct kws_listener *l, const float *feat, const float *spikes,
                       uint64_t zero_run, struct kws_hit *hit) {
    int held = kws_hold_frame(zero_run, l->frame_ms);
    kws_listener_step_net(l, spikes, held);
    int fired = kws_detector_frame(&l->det, l->v, held, hit, l->scores);
    if (!l->vring || !feat)
        return fired;
    verify_push(l, feat);
    if (l->pending && --l->pending == 0 && verify_held(l)) {
        *hit = l->held_hit; /* the refractory period keeps fired 0 here */
        return 1;
    }
    if (fired && hit->label == l->model->verify.label) {
        l->held_hit = *hit;
        l->pending = l->model->verify.ahead;
        return l->pending ? 0 : verify_held(l); /* no wait: look now */
    }
    return fired;
}

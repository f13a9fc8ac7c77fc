/* enroll_verify.c: the takes an enrolled model keeps for its second look
 * (kws/verify.h; enroll_verifier in kws/enroll.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kws/dataset.h"
#include "kws/enroll.h"
#include "kws/frontend.h"
#include "train_internal.h"

/* How a take is heard for its features: ENROLL_VERIFY_LEAD_S of noise
 * before it (the front end's PCEN settles on a room, not on digital
 * silence), ENROLL_VERIFY_TAIL_S after, the noise pink and
 * ENROLL_VERIFY_SNR_DB under the word's level, as the stream will hear a
 * word in a room. */
#define ENROLL_VERIFY_LEAD_S 0.5
#define ENROLL_VERIFY_TAIL_S 0.2
#define ENROLL_VERIFY_SNR_DB 15.0

/* n samples of pink noise at unit RMS: white noise through P. Kellet's
 * economy 1/f filter (three poles), then scaled. */
static void pink_noise(float *y, size_t n, uint64_t *seed) {
    double b0 = 0, b1 = 0, b2 = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
        double w = train__xorshift_unit(seed) * 2.0 - 1.0;
        b0 = 0.99765 * b0 + w * 0.0990460;
        b1 = 0.96300 * b1 + w * 0.2965164;
        b2 = 0.57000 * b2 + w * 1.0526913;
        y[i] = (float)(b0 + b1 + b2 + w * 0.1848);
        ss += (double)y[i] * y[i];
    }
    float g = ss > 0 ? (float)(1.0 / sqrt(ss / (double)n)) : 0.0f;
    for (size_t i = 0; i < n; i++)
        y[i] *= g;
}

struct take_frames {
    int8_t *q; /* (cap, n_feat) kws_verify_frame of every frame */
    float *f;  /* (cap, n_feat) normalised features of every frame */
    int n, cap, n_feat;
};

static void take_frame(void *ctx, const float *feat, const float *spikes) {
    struct take_frames *c = ctx;
    (void)spikes;
    if (c->n < c->cap) {
        size_t o = (size_t)c->n * (size_t)c->n_feat;
        memcpy(c->f + o, feat, (size_t)c->n_feat * sizeof *feat);
        kws_verify_norm(c->f + o, c->n_feat);
        kws_verify_quantize(c->f + o, c->n_feat, c->q + o);
    }
    c->n++;
}

int enroll_verifier(struct kws_verifier *v, const struct kws_frontend_cfg *fe, int label,
                    const struct enroll_take *takes, size_t n_takes,
                    const struct enroll_take_rules *rules, uint64_t seed) {
    int rate = fe->sample_rate, hop = fe->hop, nfe = fe->n_mels, rc = 0;
    size_t lead = (size_t)(ENROLL_VERIFY_LEAD_S * rate),
           tail = (size_t)(ENROLL_VERIFY_TAIL_S * rate);
    struct take_frames tf[KWS_VERIFY_MAX_TAKES];
    int32_t len[KWS_VERIFY_MAX_TAKES], first[KWS_VERIFY_MAX_TAKES];
    uint64_t s = seed * 2654435761u + 1;

    memset(v, 0, sizeof *v);
    memset(tf, 0, sizeof tf);
    if (n_takes > KWS_VERIFY_MAX_TAKES)
        n_takes = KWS_VERIFY_MAX_TAKES;
    if (n_takes < 2)
        return -EINVAL;
    struct audio_fe afe = {0};
    if ((rc = audio_fe_init(&afe, fe)) < 0)
        return rc;
    for (size_t t = 0; t < n_takes && !rc; t++) {
        const struct enroll_take *tk = &takes[t];
        int32_t a, b;
        dataset_find_word(tk->x, (int32_t)tk->n, rate, rules->range_db, rules->max_gap_ms, &a, &b);
        float word_rms = train__rms(tk->x, a, b);
        size_t n = lead + tk->n + tail;
        float *y = malloc(n * sizeof *y);
        tf[t].cap = (int)(n / (size_t)hop) + 2;
        tf[t].n_feat = nfe;
        tf[t].q = malloc((size_t)tf[t].cap * (size_t)nfe * sizeof *tf[t].q);
        tf[t].f = malloc((size_t)tf[t].cap * (size_t)nfe * sizeof *tf[t].f);
        if (!y || !tf[t].q || !tf[t].f) {
            free(y);
            rc = -ENOMEM;
            break;
        }
        pink_noise(y, n, &s);
        float g = word_rms / powf(10.0f, (float)(ENROLL_VERIFY_SNR_DB / 20.0));
        for (size_t i = 0; i < n; i++)
            y[i] = g * y[i] + (i >= lead && i < lead + tk->n ? tk->x[i - lead] : 0.0f);
        audio_fe_reset(&afe);
        audio_fe_push(&afe, y, n, take_frame, &tf[t]);
        free(y);
        if (tf[t].n > tf[t].cap)
            tf[t].n = tf[t].cap;
        /* the word's frames: where its samples fall, within the frames made */
        int32_t f0 = (int32_t)((lead + (size_t)a) / (size_t)hop);
        int32_t f1 = (int32_t)((lead + (size_t)b) / (size_t)hop) + 1;
        if (f1 > tf[t].n)
            f1 = tf[t].n;
        if (f1 - f0 > KWS_VERIFY_MAX_TAKE_FRAMES)
            f1 = f0 + KWS_VERIFY_MAX_TAKE_FRAMES;
        if (f1 <= f0)
            rc = -EINVAL;
        first[t] = f0;
        len[t] = f1 - f0;
    }
    audio_fe_free(&afe);
    if (!rc)
        rc = kws_verifier_alloc(v, (int)n_takes, len, nfe);
    if (!rc) {
        float *dst = v->feat;
        const int8_t *full[KWS_VERIFY_MAX_TAKES];
        int32_t full_len[KWS_VERIFY_MAX_TAKES];
        for (size_t t = 0; t < n_takes; t++) {
            size_t k = (size_t)len[t] * (size_t)nfe;
            memcpy(dst, tf[t].f + (size_t)first[t] * (size_t)nfe, k * sizeof *dst);
            dst += k;
            full[t] = tf[t].q;
            full_len[t] = tf[t].n;
        }
        v->label = label;
        float cut = kws_verify_cut_loo(v, full, full_len);
        if (cut < 0.0f)
            rc = (int)cut;
        v->cut = cut;
    }
    for (size_t t = 0; t < n_takes; t++) {
        free(tf[t].q);
        free(tf[t].f);
    }
    if (rc)
        kws_verifier_free(v);
    return rc;
}

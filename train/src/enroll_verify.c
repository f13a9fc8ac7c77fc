/* enroll_verify.c: the takes an enrolled model keeps for its second look
 * (kws/verify.h; enroll_verifier in kws/enroll.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws/audio_file.h"
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
    float *f;  /* (cap, n_feat) kws_verify_features of every frame */
    int n, cap, n_in, n_feat, kind;
};

static void take_frame(void *ctx, const float *feat, const float *spikes) {
    struct take_frames *c = ctx;
    (void)spikes;
    if (c->n < c->cap) {
        size_t o = (size_t)c->n * (size_t)c->n_feat;
        kws_verify_features(c->kind, feat, c->n_in, c->n_feat, c->f + o);
        kws_verify_quantize(c->f + o, c->n_feat, c->q + o);
    }
    c->n++;
}

/* Hears one take (x, n samples) as enroll_verifier says, into features of
 * the given kind and size: tf gets every frame (tf->cap and the arrays
 * allocated here; tf->n of them made), *first and *len the word's frames
 * among them. Returns 0, -EINVAL (no frame of the word) or -ENOMEM. */
static int hear_take(struct audio_fe *afe, const struct kws_frontend_cfg *fe, int kind, int nfe,
                     const float *x, size_t n_x, const struct enroll_take_rules *rules,
                     uint64_t *seed, struct take_frames *tf, int32_t *first, int32_t *len) {
    int rate = fe->sample_rate, hop = fe->hop;
    size_t lead = (size_t)(ENROLL_VERIFY_LEAD_S * rate),
           tail = (size_t)(ENROLL_VERIFY_TAIL_S * rate);
    int32_t a, b;
    dataset_find_word(x, (int32_t)n_x, rate, rules->range_db, rules->max_gap_ms,
                      rules->max_pause_ms, &a, &b);
    float word_rms = train__rms(x, a, b);
    size_t n = lead + n_x + tail;
    float *y = malloc(n * sizeof *y);
    tf->cap = (int)(n / (size_t)hop) + 2;
    tf->n_in = fe->n_mels;
    tf->n_feat = nfe;
    tf->kind = kind;
    tf->n = 0;
    tf->q = malloc((size_t)tf->cap * (size_t)nfe * sizeof *tf->q);
    tf->f = malloc((size_t)tf->cap * (size_t)nfe * sizeof *tf->f);
    if (!y || !tf->q || !tf->f) {
        free(y);
        return -ENOMEM;
    }
    pink_noise(y, n, seed);
    float g = word_rms / powf(10.0f, (float)(ENROLL_VERIFY_SNR_DB / 20.0));
    for (size_t i = 0; i < n; i++)
        y[i] = g * y[i] + (i >= lead && i < lead + n_x ? x[i - lead] : 0.0f);
    audio_fe_reset(afe);
    audio_fe_push(afe, y, n, take_frame, tf);
    free(y);
    if (tf->n > tf->cap)
        tf->n = tf->cap;
    /* the word's frames: where its samples fall, within the frames made */
    int32_t f0 = (int32_t)((lead + (size_t)a) / (size_t)hop);
    int32_t f1 = (int32_t)((lead + (size_t)b) / (size_t)hop) + 1;
    if (f1 > tf->n)
        f1 = tf->n;
    if (f1 - f0 > KWS_VERIFY_MAX_TAKE_FRAMES)
        f1 = f0 + KWS_VERIFY_MAX_TAKE_FRAMES;
    *first = f0;
    *len = f1 - f0;
    return f1 > f0 ? 0 : -EINVAL;
}

int enroll_verifier(struct kws_verifier *v, const struct kws_frontend_cfg *fe, int label,
                    const struct enroll_take *takes, size_t n_takes,
                    const struct enroll_take_rules *rules, uint64_t seed, float *loo) {
    /* the cepstrum's first KWS_VERIFY_CEPS coefficients after c0 (fewer
     * for a front end of few bands) */
    int kind = fe->n_mels > 1 ? KWS_VERIFY_CEPSTRUM : KWS_VERIFY_SHAPE, rc = 0;
    int nfe = kind == KWS_VERIFY_SHAPE           ? fe->n_mels
              : fe->n_mels - 1 < KWS_VERIFY_CEPS ? fe->n_mels - 1
                                                 : KWS_VERIFY_CEPS;
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
    for (size_t t = 0; t < n_takes && !rc; t++)
        rc = hear_take(&afe, fe, kind, nfe, takes[t].x, takes[t].n, rules, &s, &tf[t], &first[t],
                       &len[t]);
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
        v->kind = kind;
        float cut = kws_verify_cut_loo(v, full, full_len, loo);
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

int enroll_verifier_costs(const struct kws_verifier *v, const struct kws_frontend_cfg *fe,
                          const char *const *dirs, size_t n_dirs,
                          const struct enroll_take_rules *rules, uint64_t seed, int threads,
                          float **costs, size_t *n_costs) {
    size_t n = 0, cap = n_dirs * ENROLL_CUT_PER_WORD;
    char **path = calloc(cap + 1, sizeof *path);
    float *cost = malloc((cap + 1) * sizeof *cost);
    int rc = path && cost ? 0 : -ENOMEM;
    *costs = NULL;
    *n_costs = 0;
    /* up to ENROLL_CUT_PER_WORD of each folder's files, spread over it */
    for (size_t d = 0; d < n_dirs && !rc; d++) {
        char **names;
        size_t m = dataset__list_sounds(dirs[d], &names);
        size_t step = m > ENROLL_CUT_PER_WORD ? m / ENROLL_CUT_PER_WORD : 1;
        for (size_t i = 0, k = 0; i < m && k < ENROLL_CUT_PER_WORD && !rc; i += step, k++) {
            size_t len = strlen(dirs[d]) + strlen(names[i]) + 2;
            if (!(path[n] = malloc(len)))
                rc = -ENOMEM;
            else
                snprintf(path[n++], len, "%s/%s", dirs[d], names[i]);
        }
        for (size_t i = 0; i < m; i++)
            free(names[i]);
        free(names);
    }
    int err = rc; /* each thread's copy starts at INT_MAX (min's identity); rc is shared */
#pragma omp parallel num_threads(threads > 0 ? threads : omp_get_max_threads()) reduction(min : err)
    {
        struct audio_fe afe = {0};
        struct take_frames tf = {0};
        float *scratch = NULL;
        size_t scratch_n = 0;
        int e = rc ? rc : audio_fe_init(&afe, fe);
#pragma omp for schedule(dynamic, 4)
        for (size_t i = 0; i < n; i++) {
            float *x = NULL;
            size_t nx = 0, on, off;
            int32_t first, len;
            char why[256];
            uint64_t s = seed * 2654435761u + 1 + i;
            cost[i] = -1.0f; /* unread or rejected: left out */
            if (e || audio_file_read(path[i], fe->sample_rate, &x, &nx, NULL, why, sizeof why) < 0)
                continue;
            int h = enroll_take_check(x, nx, fe->sample_rate, rules, &on, &off, why, sizeof why);
            if (h == 0)
                h = hear_take(&afe, fe, v->kind, v->n_feat, x + on, off - on, rules, &s, &tf,
                              &first, &len);
            if (h == -ENOMEM)
                e = h;
            if (h == 0) {
                if ((size_t)tf.n > scratch_n) {
                    free(scratch);
                    scratch_n = (size_t)tf.n;
                    scratch = malloc(kws_verify_scratch_floats(scratch_n) * sizeof *scratch);
                }
                if (scratch)
                    cost[i] = kws_verify_cost(v, tf.q, (size_t)tf.n, scratch);
                else
                    e = -ENOMEM;
            }
            free(tf.q);
            free(tf.f);
            memset(&tf, 0, sizeof tf);
            free(x);
        }
        free(scratch);
        audio_fe_free(&afe);
        err = e < err ? e : err;
    }
    rc = err;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (cost && cost[i] >= 0.0f)
            cost[k++] = cost[i];
        free(path[i]);
    }
    free(path);
    if (rc) {
        free(cost);
        return rc;
    }
    qsort(cost, k, sizeof *cost, train__cmp_float);
    *costs = cost;
    *n_costs = k;
    return 0;
}

float enroll_verifier_cut_from(const struct kws_verifier *v, const struct kws_frontend_cfg *fe,
                               const char *const *dirs, size_t n_dirs,
                               const struct enroll_take_rules *rules, double pass, uint64_t seed,
                               int threads, size_t *n_heard) {
    float *cost, cut = v->cut;
    size_t k;
    int rc = enroll_verifier_costs(v, fe, dirs, n_dirs, rules, seed, threads, &cost, &k);
    *n_heard = k;
    if (rc)
        return (float)rc;
    if (k) {
        size_t q = (size_t)(pass * (double)k); /* the first phrase it refuses */
        cut = cost[q < k ? q : k - 1];
        /* just under it, so exactly the share `pass` goes through */
        cut = q > 0 ? 0.5f * (cost[q - 1] + cut) : nextafterf(cut, 0.0f);
        if (cut < ENROLL_CUT_LO * v->cut)
            cut = ENROLL_CUT_LO * v->cut;
        if (cut > ENROLL_CUT_HI * v->cut)
            cut = ENROLL_CUT_HI * v->cut;
    }
    free(cost);
    return cut;
}

int enroll_verifier_odd(struct kws_verifier *v, const struct kws_frontend_cfg *fe, int label,
                        const struct enroll_take *takes, size_t n_takes,
                        const struct enroll_take_rules *rules, uint64_t seed,
                        const char *const *dirs, size_t n_dirs, int threads, char *odd,
                        size_t *n_odd, float *bar) {
    float loo[KWS_VERIFY_MAX_TAKES], *cost = NULL;
    size_t n_cost = 0, n_kept = 0;

    if (n_takes > KWS_VERIFY_MAX_TAKES)
        n_takes = KWS_VERIFY_MAX_TAKES;
    memset(odd, 0, n_takes);
    *n_odd = 0;
    *bar = 0.0f;
    int rc = enroll_verifier(v, fe, label, takes, n_takes, rules, seed, loo);
    if (rc || !n_dirs)
        return rc;
    if ((rc = enroll_verifier_costs(v, fe, dirs, n_dirs, rules, seed, threads, &cost, &n_cost)) < 0)
        goto fail;
    if (!n_cost)
        return 0;
    *bar = cost[n_cost / 2]; /* sorted: the median */
    free(cost);
    for (size_t t = 0; t < n_takes; t++) {
        odd[t] = loo[t] > *bar;
        *n_odd += (size_t)odd[t];
    }
    if (!*n_odd)
        return 0;
    if (n_takes - *n_odd < 2) { /* too few alike to say which are odd */
        memset(odd, 0, n_takes);
        *n_odd = 0;
        return 0;
    }
    struct enroll_take *kept = malloc(n_takes * sizeof *kept);
    if (!kept) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t t = 0; t < n_takes; t++)
        if (!odd[t])
            kept[n_kept++] = takes[t];
    kws_verifier_free(v);
    rc = enroll_verifier(v, fe, label, kept, n_kept, rules, seed, NULL);
    free(kept);
    if (!rc)
        return 0;
fail:
    kws_verifier_free(v);
    memset(odd, 0, n_takes);
    *n_odd = 0;
    return rc;
}

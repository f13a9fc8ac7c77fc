/* dataset_stream.c: streaming metrics on a recording joined from a split
 * (see kws/stream_eval.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kws/detector.h"
#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/stream_eval.h"

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

void stream_eval_free(struct stream_eval *se) {
    free(se->v);
    free(se->on);
    free(se->off);
    free(se->lab);
    free(se->held);
    memset(se, 0, sizeof *se);
}

/* Collects each frame's spikes and whether kwsd would hold it. */
struct frames_ctx {
    const struct audio_fe *fe;
    float *spikes;
    uint8_t *held;
    size_t max, count;
    int frame_ms;
};

static void keep_frame(void *ctx, const float *feat, const float *spikes) {
    struct frames_ctx *c = ctx;
    (void)feat;
    if (c->count < c->max) {
        memcpy(c->spikes + c->count * (size_t)c->fe->n_out, spikes,
               (size_t)c->fe->n_out * sizeof *spikes);
        c->held[c->count] = (uint8_t)kws_hold_frame(c->fe->zero_run, c->frame_ms);
    }
    c->count++;
}

static uint64_t xorshift(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

int stream_eval_run(struct stream_eval *se, const struct snn_model *m, const struct dataset *ds,
                    const size_t *idx, size_t n, uint64_t seed, float noise_gain) {
    return stream_eval_run_passes(se, m, ds, idx, n, seed, noise_gain, 1);
}

int stream_eval_run_passes(struct stream_eval *se, const struct snn_model *m,
                           const struct dataset *ds, const size_t *idx, size_t n, uint64_t seed,
                           float noise_gain, int passes) {
    const struct snn_cfg *cfg = &m->cfg;
    int rate = cfg->fe.sample_rate, hop = cfg->fe.hop, rc = 0;
    memset(se, 0, sizeof *se);
    se->rate = rate;
    se->hop = hop;
    se->n_classes = cfg->n_classes;
    if (passes < 1 || passes > STREAM_EVAL_MAX_PASSES)
        return KWS_EBADFIELD;
    size_t n_sil = 0, n_word = 0;
    for (size_t i = 0; i < n; i++)
        if (ds->clips[idx[i]].label == ds->sil_class)
            n_sil++;
        else
            n_word++;
    if (!n_word)
        return KWS_EDATASET;
    size_t nw_all = n_word * (size_t)passes;
    size_t *sil = malloc((n_sil + 1) * sizeof *sil);
    size_t *word = malloc(nw_all * sizeof *word); /* clip of each occurrence, pass by pass */
    int32_t *gap = malloc(nw_all * sizeof *gap);
    size_t *pass_len = malloc((size_t)passes * sizeof *pass_len);
    se->on = malloc(nw_all * sizeof *se->on);
    se->off = malloc(nw_all * sizeof *se->off);
    se->lab = malloc(nw_all * sizeof *se->lab);
    float *x = NULL, *sp = NULL;
    struct audio_fe fe = {0};
    struct snn_state st = {0};
    if (!sil || !word || !gap || !pass_len || !se->on || !se->off || !se->lab) {
        rc = -ENOMEM;
        goto out;
    }
    size_t ns = 0, w = 0;
    for (size_t i = 0; i < n; i++)
        if (ds->clips[idx[i]].label == ds->sil_class)
            sil[ns++] = idx[i];
        else
            word[w++] = idx[i];
    /* pass 0 keeps the caller's order; later passes shuffle it */
    uint64_t sh = seed * 0xD1B54A32D192ED03ull + 7;
    for (int p = 1; p < passes; p++) {
        size_t *o = word + (size_t)p * n_word;
        memcpy(o, word, n_word * sizeof *o);
        for (size_t i = n_word - 1; i > 0; i--) {
            size_t k = (size_t)(xorshift(&sh) % (uint64_t)(i + 1)), t = o[i];
            o[i] = o[k];
            o[k] = t;
        }
    }
    /* gap lengths 0.5-2 s, drawn in recording order; then each pass's length */
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    size_t total = 0, max_len = 0;
    for (int p = 0; p < passes; p++) {
        size_t len = p == passes - 1 ? (size_t)rate : 0; /* 1 s tail after the last word */
        for (size_t i = 0; i < n_word; i++) {
            size_t k = (size_t)p * n_word + i;
            gap[k] = rate / 2 + (int32_t)(xorshift(&s) % (uint64_t)(rate * 3 / 2));
            len += (size_t)gap[k] + (size_t)ds->clips[word[k]].n;
        }
        pass_len[p] = len;
        total += len;
        max_len = len > max_len ? len : max_len;
    }
    size_t nf_max = total / (size_t)hop + 1, pf_max = max_len / (size_t)hop + 2;
    x = malloc(max_len * sizeof *x);
    if (!x || (rc = audio_fe_init(&fe, &cfg->fe)) < 0 || (rc = snn_state_init(&st, m)) < 0) {
        rc = rc < 0 ? rc : -ENOMEM;
        goto out;
    }
    sp = malloc(pf_max * (size_t)fe.n_out * sizeof *sp);
    se->v = malloc(nf_max * (size_t)cfg->n_classes * sizeof *se->v);
    se->held = calloc(nf_max, 1);
    if (!sp || !se->v || !se->held) {
        rc = -ENOMEM;
        goto out;
    }
    /* each pass: its audio (gaps walk through the silence clips in order),
     * then the front end and the network, never reset between passes */
    size_t si = 0, sil_pos = 0, nf = 0;
    int64_t base = 0;
    for (int p = 0; p < passes; p++) {
        size_t pos = 0;
        memset(x, 0, pass_len[p] * sizeof *x);
        for (size_t i = 0; i < n_word; i++) {
            size_t k = (size_t)p * n_word + i;
            const struct ds_clip *cl = &ds->clips[word[k]];
            for (int32_t g = 0; g < gap[k] && n_sil; g++) {
                const struct ds_clip *nc = &ds->clips[sil[si % n_sil]];
                x[pos + (size_t)g] = noise_gain * nc->x[sil_pos];
                if (++sil_pos >= (size_t)nc->n) {
                    sil_pos = 0;
                    si++;
                }
            }
            pos += (size_t)gap[k];
            memcpy(x + pos, cl->x, (size_t)cl->n * sizeof *x);
            se->on[k] = base + (int64_t)pos + cl->on;
            se->off[k] = base + (int64_t)pos + cl->off;
            se->lab[k] = cl->label;
            pos += (size_t)cl->n;
        }
        struct frames_ctx fc = {&fe,
                                sp,
                                se->held + nf,
                                nf_max - nf < pf_max ? nf_max - nf : pf_max,
                                0,
                                1000 * hop / rate};
        audio_fe_push(&fe, x, pass_len[p], keep_frame, &fc);
        size_t got = fc.count < fc.max ? fc.count : fc.max;
        for (size_t t = 0; t < got; t++, nf++) {
            float *v = se->v + nf * (size_t)cfg->n_classes;
            if (se->held[nf]) { /* digital silence: the network rests, as in kwsd */
                if (nf == 0 || !se->held[nf - 1])
                    snn_state_reset(&st, m);
                memset(v, 0, (size_t)cfg->n_classes * sizeof *v);
                continue;
            }
            snn_step(m, &st, sp + t * (size_t)fe.n_out, v);
        }
        base += (int64_t)pass_len[p];
    }
    se->n_word = nw_all;
    se->hours = (double)total / rate / 3600.0;
    se->nf = nf;
out:
    free(sil);
    free(word);
    free(gap);
    free(pass_len);
    free(x);
    free(sp);
    audio_fe_free(&fe);
    snn_state_free(&st);
    if (rc < 0)
        stream_eval_free(se);
    return rc;
}

int stream_eval_score(const struct stream_eval *se, const struct snn_cfg *cfg, float threshold,
                      int smooth_ms, int refr_ms, struct stream_result *res) {
    memset(res, 0, sizeof *res);
    size_t n_word = se->n_word;
    int rate = se->rate;
    struct kws_detector det = {0};
    struct kws_detector_cfg dc;
    kws_detector_cfg_default(&dc, cfg, threshold, smooth_ms, refr_ms, 1000 * se->hop / rate);
    float *lat = malloc((n_word + 1) * sizeof *lat);
    float *peak = calloc(n_word + 1, sizeof *peak);
    char *got = calloc(n_word + 1, 1);
    int rc = kws_detector_init(&det, &dc);
    if (!rc && (!lat || !peak || !got))
        rc = -ENOMEM;
    if (rc < 0)
        goto out;
    size_t wi = 0, pk = 0;
    int n_lat = 0;
    for (size_t t = 0; t < se->nf; t++) {
        struct kws_hit hit;
        float sc[SNN_MAX_CLASSES];
        int fired = 0;
        if (se->held && se->held[t])
            kws_detector_hold(&det, sc);
        else
            fired = kws_detector_step(&det, se->v + t * (size_t)se->n_classes, &hit, sc);
        int64_t sample = (int64_t)(t + 1) * se->hop;
        /* the peak score of each word's class from its start to 1 s after its end */
        while (pk < n_word && se->off[pk] + rate < sample)
            pk++;
        for (size_t j = pk; j < n_word && se->on[j] <= sample; j++)
            if (sc[se->lab[j]] > peak[j])
                peak[j] = sc[se->lab[j]];
        if (!fired)
            continue;
        /* the occurrence whose window [on, off + 1 s] holds this frame */
        while (wi < n_word && se->off[wi] + rate < sample)
            wi++;
        int matched = 0;
        for (size_t j = wi; j < n_word && se->on[j] <= sample; j++)
            if (sample <= se->off[j] + rate && se->lab[j] == hit.label && !got[j] &&
                dc.fires[se->lab[j]]) {
                got[j] = 1;
                lat[n_lat++] = (float)(sample - se->off[j]) * 1000.0f / (float)rate;
                matched = 1;
                break;
            }
        if (!matched) {
            res->false_alarms++;
            res->kw_fa[hit.label]++;
            /* where it fell: the first word whose window holds the frame */
            for (size_t j = wi; j < n_word && se->on[j] <= sample; j++)
                if (sample <= se->off[j] + rate) {
                    if (dc.fires[se->lab[j]])
                        res->fa_keyword++;
                    else
                        res->fa_unknown++;
                    break;
                }
        }
    }
    int nk = 0;
    for (size_t j = 0; j < n_word; j++)
        if (dc.fires[se->lab[j]]) {
            res->n_kw++;
            res->hits += got[j];
            res->kw_n[se->lab[j]]++;
            res->kw_hits[se->lab[j]] += got[j];
            peak[nk++] = peak[j];
        }
    if (nk) {
        qsort(peak, (size_t)nk, sizeof *peak, cmp_float);
        res->peak_p50 = peak[nk / 2];
    }
    res->hours = se->hours;
    if (n_lat) {
        double sum = 0.0;
        for (int i = 0; i < n_lat; i++)
            sum += lat[i];
        qsort(lat, (size_t)n_lat, sizeof *lat, cmp_float);
        res->lat_mean_ms = sum / n_lat;
        res->lat_p50_ms = lat[n_lat / 2];
        res->lat_p90_ms = lat[(n_lat * 9) / 10];
    }
out:
    free(lat);
    free(peak);
    free(got);
    kws_detector_free(&det);
    return rc;
}

float stream_eval_calibrate(const struct stream_eval *se, const struct snn_cfg *cfg, int smooth_ms,
                            int refr_ms, double max_fa_per_hour, struct stream_result *res) {
    struct stream_result r;
    float thr = 0.95f;
    for (int i = 0; i <= 15; i++) {
        float t = 0.20f + 0.05f * (float)i;
        if (stream_eval_score(se, cfg, t, smooth_ms, refr_ms, &r) < 0)
            return -1.0f;
        if (r.hours > 0.0 && (double)r.false_alarms / r.hours <= max_fa_per_hour) {
            thr = t;
            break;
        }
    }
    if (res && stream_eval_score(se, cfg, thr, smooth_ms, refr_ms, res) < 0)
        return -1.0f;
    return thr;
}

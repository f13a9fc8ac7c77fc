/* dataset_stream.c: streaming metrics on a recording joined from a split
 * (see kws/stream_eval.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kws/detector.h"
#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/listener.h"
#include "kws/stream_eval.h"
#include "train_internal.h"

void stream_eval_free(struct stream_eval *se) {
    kws_verifier_free(&se->verify);
    free(se->vfeat);
    free(se->vcost);
    free(se->v);
    free(se->on);
    free(se->off);
    free(se->lab);
    free(se->held);
    free(se->neg);
    memset(se, 0, sizeof *se);
}

/* Collects each frame's spikes and whether kwsd would hold it. */
struct frames_ctx {
    const struct audio_fe *fe;
    float *spikes;
    uint8_t *held;
    int8_t *vfeat; /* the second look's frames, or NULL */
    const struct kws_verifier *verify;
    size_t max, count;
    int frame_ms;
};

static void keep_frame(void *ctx, const float *feat, const float *spikes) {
    struct frames_ctx *c = ctx;
    if (c->count < c->max) {
        if (c->vfeat)
            kws_verify_frame(c->verify->kind, feat, c->fe->cfg.n_mels, c->verify->n_feat,
                             c->vfeat + c->count * (size_t)c->verify->n_feat);
        memcpy(c->spikes + c->count * (size_t)c->fe->n_out, spikes,
               (size_t)c->fe->n_out * sizeof *spikes);
        c->held[c->count] = (uint8_t)kws_hold_frame(c->fe->zero_run, c->frame_ms);
    }
    c->count++;
}

/* ==== Planning the recording ==== */

/* Every item (word or negative) of every pass, in recording order. */
struct plan {
    int passes;
    size_t n_word, n_neg, per_pass; /* words and negatives in one pass, and their sum */
    size_t n_sil;
    size_t *sil;      /* (n_sil) the gaps' silence clips */
    size_t *clip;     /* (passes * per_pass) clip of each item */
    int32_t *gap;     /* (passes * per_pass) samples of silence before it */
    uint8_t *neg;     /* (passes * per_pass) 1: a negative phrase */
    size_t *pass_len; /* (passes) samples */
    size_t total;
    size_t max_item; /* samples of the longest item with its gap, or of a pass's tail */
};

static void plan_free(struct plan *pl) {
    free(pl->sil);
    free(pl->clip);
    free(pl->gap);
    free(pl->neg);
    free(pl->pass_len);
}

/* Shuffles o[0..n) with the generator state *s. */
static void shuffle(size_t *o, size_t n, uint64_t *s) {
    for (size_t i = n - 1; i > 0 && n > 1; i--) {
        size_t k = (size_t)(train__xorshift(s) % (uint64_t)(i + 1)), t = o[i];
        o[i] = o[k];
        o[k] = t;
    }
}

/* A gap of 0.5-2 s. */
static int32_t draw_gap(uint64_t *s, int rate) {
    return rate / 2 + (int32_t)(train__xorshift(s) % (uint64_t)(rate * 3 / 2));
}

/* Passes of a negatives-only recording: o->passes, or more to last about
 * o->min_hours (1.25 s per gap on average). */
static int neg_only_passes(const struct dataset *ds, const struct stream_eval_opts *o, int rate) {
    double len = 0.0;
    for (size_t j = 0; j < o->n_neg; j++)
        len += (double)ds->clips[o->neg[j]].n + 1.25 * rate;
    int p = o->passes;
    while (p < STREAM_EVAL_MAX_NEG_PASSES && len > 0.0 && p * len < o->min_hours * 3600.0 * rate)
        p++;
    return p;
}

/* Orders, gaps and lengths of the recording. The words' orders and gaps use
 * the generators and draw order they always had, so without negatives the
 * plan is the old one; negatives draw from a generator of their own. */
static int plan_make(struct plan *pl, const struct dataset *ds, const size_t *idx, size_t n,
                     const struct stream_eval_opts *o, int rate) {
    memset(pl, 0, sizeof *pl);
    for (size_t i = 0; i < n; i++)
        if (ds->clips[idx[i]].label == ds->sil_class)
            pl->n_sil++;
        else if (!o->neg_only)
            pl->n_word++;
    pl->n_neg = o->neg ? o->n_neg : 0;
    if (o->neg_only ? !pl->n_neg : !pl->n_word)
        return KWS_EDATASET;
    pl->passes = o->neg_only ? neg_only_passes(ds, o, rate) : o->passes;
    pl->per_pass = pl->n_word + pl->n_neg;
    size_t P = (size_t)pl->passes, n_all = pl->per_pass * P;
    size_t *word = malloc((pl->n_word * P + 1) * sizeof *word);
    int32_t *wgap = malloc((pl->n_word * P + 1) * sizeof *wgap);
    size_t *negs = malloc((pl->n_neg + 1) * sizeof *negs);
    pl->sil = malloc((pl->n_sil + 1) * sizeof *pl->sil);
    pl->clip = malloc(n_all * sizeof *pl->clip);
    pl->gap = malloc(n_all * sizeof *pl->gap);
    pl->neg = malloc(n_all * sizeof *pl->neg);
    pl->pass_len = malloc(P * sizeof *pl->pass_len);
    if (!word || !wgap || !negs || !pl->sil || !pl->clip || !pl->gap || !pl->neg || !pl->pass_len) {
        free(word);
        free(wgap);
        free(negs);
        plan_free(pl);
        return -ENOMEM;
    }
    size_t ns = 0, w = 0;
    for (size_t i = 0; i < n; i++)
        if (ds->clips[idx[i]].label == ds->sil_class)
            pl->sil[ns++] = idx[i];
        else if (!o->neg_only)
            word[w++] = idx[i];
    /* pass 0 keeps the caller's order; later passes shuffle it */
    uint64_t sh = o->seed * 0xD1B54A32D192ED03ull + 7;
    for (size_t p = 1; p < P && pl->n_word; p++) {
        memcpy(word + p * pl->n_word, word, pl->n_word * sizeof *word);
        shuffle(word + p * pl->n_word, pl->n_word, &sh);
    }
    /* the words' gaps, drawn in recording order */
    uint64_t s = o->seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t k = 0; k < pl->n_word * P; k++)
        wgap[k] = draw_gap(&s, rate);
    /* each pass: the negatives in a new order, interleaved at random with
     * the words (each next item is a negative with probability negatives
     * left / items left) */
    uint64_t sn = o->seed * 0xBF58476D1CE4E5B9ull + 11;
    if (pl->n_neg)
        memcpy(negs, o->neg, pl->n_neg * sizeof *negs);
    for (size_t p = 0; p < P; p++) {
        if (pl->n_neg)
            shuffle(negs, pl->n_neg, &sn);
        size_t wi = 0, ni = 0, len = p == P - 1 ? (size_t)rate : 0; /* 1 s after the last */
        pl->max_item = len > pl->max_item ? len : pl->max_item;     /* the pass's tail */
        for (size_t i = 0; i < pl->per_pass; i++) {
            size_t k = p * pl->per_pass + i, left_w = pl->n_word - wi, left_n = pl->n_neg - ni;
            int is_neg = left_n && train__xorshift(&sn) % (uint64_t)(left_w + left_n) < left_n;
            if (is_neg) {
                pl->clip[k] = negs[ni++];
                pl->gap[k] = draw_gap(&sn, rate);
            } else {
                pl->clip[k] = word[p * pl->n_word + wi];
                pl->gap[k] = wgap[p * pl->n_word + wi];
                wi++;
            }
            pl->neg[k] = (uint8_t)(is_neg || ds->clips[pl->clip[k]].negative);
            size_t item = (size_t)pl->gap[k] + (size_t)ds->clips[pl->clip[k]].n;
            pl->max_item = item > pl->max_item ? item : pl->max_item;
            len += item;
        }
        pl->pass_len[p] = len;
        pl->total += len;
    }
    free(word);
    free(wgap);
    free(negs);
    return 0;
}

/* ==== Background noise ==== */

/* Where the background noise is read, and how loud it is laid down. */
struct noise_mix {
    const struct stream_eval_opts *o;
    double *scale; /* (n_noise) 1 / RMS of each recording, 0 for a silent one */
    size_t r, pos; /* the recording read next, and the sample in it */
    uint64_t rng;  /* SNR draws */
    float g_prev;  /* noise gain at the end of the previous item; < 0 before the first */
};

static int noise_init(struct noise_mix *nm, const struct stream_eval_opts *o) {
    memset(nm, 0, sizeof *nm);
    nm->o = o;
    nm->g_prev = -1.0f;
    if (!o->noise || !o->n_noise)
        return 0;
    if (!(o->snr_lo <= o->snr_hi) || !isfinite(o->snr_lo) || !isfinite(o->snr_hi))
        return KWS_EBADFIELD;
    nm->scale = calloc(o->n_noise, sizeof *nm->scale);
    if (!nm->scale)
        return -ENOMEM;
    int any = 0;
    for (size_t r = 0; r < o->n_noise; r++) {
        double e = 0.0;
        for (int32_t i = 0; i < o->noise_n[r]; i++)
            e += (double)o->noise[r][i] * o->noise[r][i];
        if (o->noise_n[r] > 0 && e > 0.0) {
            nm->scale[r] = 1.0 / sqrt(e / o->noise_n[r]);
            any = 1;
        }
    }
    if (!any)
        return KWS_EDATASET;
    nm->rng = o->seed * 0x94D049BB133111EBull + 13;
    nm->r = (size_t)(train__xorshift(&nm->rng) % o->n_noise);
    while (nm->scale[nm->r] == 0.0)
        nm->r = (nm->r + 1) % o->n_noise;
    nm->pos = (size_t)(train__xorshift(&nm->rng) % (uint64_t)o->noise_n[nm->r]);
    return 0;
}

/* The next noise sample at unit RMS. */
static float noise_next(struct noise_mix *nm) {
    const struct stream_eval_opts *o = nm->o;
    float v = (float)(o->noise[nm->r][nm->pos] * nm->scale[nm->r]);
    if (++nm->pos >= (size_t)o->noise_n[nm->r]) {
        nm->pos = 0;
        do
            nm->r = (nm->r + 1) % o->n_noise;
        while (nm->scale[nm->r] == 0.0);
    }
    return v;
}

/* The noise gain under clip cl: its word's RMS at an SNR drawn in range. */
static float noise_gain_for(struct noise_mix *nm, const struct ds_clip *cl) {
    int32_t a = cl->on, b = cl->off;
    if (b <= a || a < 0 || b > cl->n) {
        a = 0;
        b = cl->n;
    }
    double e = 0.0;
    for (int32_t i = a; i < b; i++)
        e += (double)cl->x[i] * cl->x[i];
    double level = b > a ? sqrt(e / (b - a)) : 0.0;
    double u = train__xorshift_unit(&nm->rng);
    double snr = nm->o->snr_lo + (nm->o->snr_hi - nm->o->snr_lo) * u;
    return (float)(level / pow(10.0, snr / 20.0));
}

/* Adds noise to x[at .. at + gap + clip n): over the gap, the gain goes from
 * the previous item's to this one's. */
static void noise_add_item(struct noise_mix *nm, float *x, size_t at, int32_t gap,
                           const struct ds_clip *cl) {
    float g = noise_gain_for(nm, cl), g0 = nm->g_prev < 0.0f ? g : nm->g_prev;
    for (int32_t i = 0; i < gap; i++)
        x[at + (size_t)i] += (g0 + (g - g0) * (float)(i + 1) / (float)gap) * noise_next(nm);
    at += (size_t)gap;
    for (int32_t i = 0; i < cl->n; i++)
        x[at + (size_t)i] += g * noise_next(nm);
    nm->g_prev = g;
}

/* ==== Running the network ==== */

struct stream_eval_opts stream_eval_opts_default(void) {
    return (struct stream_eval_opts){.seed = 1,
                                     .noise_gain = 1.0f,
                                     .passes = 1,
                                     .min_hours = 1.0,
                                     .snr_lo = 10.0f,
                                     .snr_hi = 20.0f};
}

int stream_eval_run(struct stream_eval *se, const struct snn_model *m, const struct dataset *ds,
                    const size_t *idx, size_t n, uint64_t seed, float noise_gain) {
    return stream_eval_run_passes(se, m, ds, idx, n, seed, noise_gain, 1);
}

int stream_eval_run_passes(struct stream_eval *se, const struct snn_model *m,
                           const struct dataset *ds, const size_t *idx, size_t n, uint64_t seed,
                           float noise_gain, int passes) {
    struct stream_eval_opts o = stream_eval_opts_default();
    o.seed = seed;
    o.noise_gain = noise_gain;
    o.passes = passes;
    return stream_eval_run_opts(se, m, ds, idx, n, &o);
}

/* Writes item k's audio into x (its gap of silence, then its clip, the
 * noise under both: gap + clip samples) and its word boundaries into se
 * (base: the item's first sample in the recording). Returns the samples
 * written. The gaps walk through the silence clips in order, *si and
 * *sil_pos carrying on across items. */
static size_t fill_item(struct stream_eval *se, const struct dataset *ds, const struct plan *pl,
                        size_t k, float *x, int64_t base, float noise_gain, size_t *si,
                        size_t *sil_pos, struct noise_mix *nm) {
    const struct ds_clip *cl = &ds->clips[pl->clip[k]];
    size_t gap = (size_t)pl->gap[k];
    for (size_t g = 0; g < gap; g++) {
        if (!pl->n_sil) {
            x[g] = 0.0f;
            continue;
        }
        const struct ds_clip *nc = &ds->clips[pl->sil[*si % pl->n_sil]];
        x[g] = noise_gain * nc->x[*sil_pos];
        if (++*sil_pos >= (size_t)nc->n) {
            *sil_pos = 0;
            ++*si;
        }
    }
    memcpy(x + gap, cl->x, (size_t)cl->n * sizeof *x);
    if (nm->scale)
        noise_add_item(nm, x, 0, pl->gap[k], cl);
    se->on[k] = base + (int64_t)gap + cl->on;
    se->off[k] = base + (int64_t)gap + cl->off;
    se->lab[k] = cl->label;
    se->neg[k] = pl->neg[k];
    return gap + (size_t)cl->n;
}

/* Writes the n samples after a pass's last item into x: silence, or the
 * noise at the last item's gain. */
static void fill_tail(float *x, size_t n, struct noise_mix *nm) {
    for (size_t i = 0; i < n; i++)
        x[i] = nm->scale ? nm->g_prev * noise_next(nm) : 0.0f;
}

/* Runs the front end and the network over the next n samples of the
 * recording, appending their frames to se (v, held, nf; at most nf_max in
 * all); sp holds one piece's spikes. */
static void run_piece(struct stream_eval *se, struct audio_fe *fe, struct kws_listener *lis,
                      float *sp, size_t sp_max, size_t nf_max, const float *x, size_t n) {
    size_t room = nf_max - se->nf;
    struct frames_ctx fc = {.fe = fe,
                            .spikes = sp,
                            .held = se->held + se->nf,
                            .vfeat =
                                se->vfeat ? se->vfeat + se->nf * (size_t)se->verify.n_feat : NULL,
                            .verify = &se->verify,
                            .max = room < sp_max ? room : sp_max,
                            .frame_ms = lis->frame_ms};
    audio_fe_push(fe, x, n, keep_frame, &fc);
    size_t got = fc.count < fc.max ? fc.count : fc.max;
    for (size_t t = 0; t < got; t++, se->nf++) {
        /* the network half of kwsd's listener; the detector runs in
         * stream_eval_score, once per threshold scored */
        kws_listener_step_net(lis, sp + t * (size_t)fe->n_out, se->held[se->nf]);
        memcpy(se->v + se->nf * (size_t)se->n_classes, lis->v,
               (size_t)se->n_classes * sizeof *lis->v);
    }
}

int stream_eval_run_opts(struct stream_eval *se, const struct snn_model *m,
                         const struct dataset *ds, const size_t *idx, size_t n,
                         const struct stream_eval_opts *o) {
    const struct snn_cfg *cfg = &m->cfg;
    int rate = cfg->fe.sample_rate, hop = cfg->fe.hop, rc = 0;
    memset(se, 0, sizeof *se);
    se->rate = rate;
    se->hop = hop;
    se->n_classes = cfg->n_classes;
    if (o->passes < 1 || o->passes > STREAM_EVAL_MAX_PASSES)
        return KWS_EBADFIELD;
    struct plan pl;
    struct noise_mix nm;
    if ((rc = noise_init(&nm, o)) < 0) {
        free(nm.scale);
        return rc;
    }
    if ((rc = plan_make(&pl, ds, idx, n, o, rate)) < 0) {
        free(nm.scale);
        return rc;
    }
    size_t nw_all = pl.per_pass * (size_t)pl.passes;
    se->on = malloc(nw_all * sizeof *se->on);
    se->off = malloc(nw_all * sizeof *se->off);
    se->lab = malloc(nw_all * sizeof *se->lab);
    se->neg = malloc(nw_all * sizeof *se->neg);
    float *x = NULL, *sp = NULL;
    struct audio_fe fe = {0};
    struct kws_listener lis = {0};
    struct kws_listener_settings ls;
    kws_listener_settings_default(&ls);
    if (!se->on || !se->off || !se->lab || !se->neg) {
        rc = -ENOMEM;
        goto out;
    }
    /* the recording is made and heard an item at a time: only one item's
     * audio and spikes are held */
    size_t nf_max = pl.total / (size_t)hop + 1, pf_max = pl.max_item / (size_t)hop + 2;
    x = malloc(pl.max_item * sizeof *x);
    if (!x || (rc = audio_fe_init(&fe, &cfg->fe)) < 0 ||
        (rc = kws_listener_init(&lis, m, &ls)) < 0) {
        rc = rc < 0 ? rc : -ENOMEM;
        goto out;
    }
    sp = malloc(pf_max * (size_t)fe.n_out * sizeof *sp);
    se->v = malloc(nf_max * (size_t)cfg->n_classes * sizeof *se->v);
    se->held = calloc(nf_max, 1);
    if (!sp || !se->v || !se->held || kws_verifier_copy(&se->verify, &m->verify) < 0) {
        rc = -ENOMEM;
        goto out;
    }
    if (se->verify.n_takes > 0) {
        se->vfeat = malloc(nf_max * (size_t)se->verify.n_feat * sizeof *se->vfeat);
        se->vcost = malloc(nf_max * sizeof *se->vcost);
        if (!se->vfeat || !se->vcost) {
            rc = -ENOMEM;
            goto out;
        }
        for (size_t t = 0; t < nf_max; t++)
            se->vcost[t] = -1.0f;
    }
    /* the network is never reset, between items or passes */
    size_t si = 0, sil_pos = 0;
    int64_t base = 0;
    for (int p = 0; p < pl.passes; p++) {
        /* the pass's items, then its tail when it has one */
        size_t done = 0;
        for (size_t i = 0; i <= pl.per_pass; i++) {
            size_t len;
            if (i < pl.per_pass)
                len = fill_item(se, ds, &pl, (size_t)p * pl.per_pass + i, x, base, o->noise_gain,
                                &si, &sil_pos, &nm);
            else if ((len = pl.pass_len[p] - done) > 0)
                fill_tail(x, len, &nm);
            else
                break;
            if (o->on_audio)
                o->on_audio(o->ctx, p, x, len, pl.total);
            run_piece(se, &fe, &lis, sp, pf_max, nf_max, x, len);
            base += (int64_t)len;
            done += len;
        }
    }
    se->n_word = nw_all;
    se->passes = pl.passes;
    se->hours = (double)pl.total / rate / 3600.0;
out:
    plan_free(&pl);
    free(nm.scale);
    free(x);
    free(sp);
    audio_fe_free(&fe);
    kws_listener_free(&lis);
    if (rc < 0)
        stream_eval_free(se);
    return rc;
}

/* The second look's cost of an event published at frame pub: the frames
 * kwsd's ring holds then (verify.back + verify.ahead + 1 up to pub),
 * computed once per frame. */
static float verify_cost_at(const struct stream_eval *se, size_t pub, float *scratch) {
    const struct kws_verifier *vf = &se->verify;
    if (se->vcost[pub] >= 0.0f)
        return se->vcost[pub];
    size_t span = (size_t)kws_verify_span(vf), first = pub + 1 > span ? pub + 1 - span : 0;
    se->vcost[pub] =
        kws_verify_cost(vf, se->vfeat + first * (size_t)vf->n_feat, pub + 1 - first, scratch);
    return se->vcost[pub];
}

int stream_eval_score(const struct stream_eval *se, const struct snn_cfg *cfg, float threshold,
                      int smooth_ms, int refr_ms, struct stream_result *res) {
    memset(res, 0, sizeof *res);
    size_t n_word = se->n_word;
    int rate = se->rate;
    struct kws_detector det = {0};
    struct kws_detector_cfg dc;
    const struct kws_frontend_cfg fe = {.sample_rate = rate, .hop = se->hop};
    const struct kws_verifier *vf = se->vfeat ? &se->verify : NULL;
    float *scratch = NULL;
    if (vf)
        refr_ms = kws_verify_refractory_ms(vf, kws_frame_ms(&fe), refr_ms);
    kws_detector_cfg_default(&dc, cfg, threshold, smooth_ms, refr_ms, kws_frame_ms(&fe));
    float *lat = malloc((n_word + 1) * sizeof *lat);
    float *peak = calloc(n_word + 1, sizeof *peak);
    char *got = calloc(n_word + 1, 1);
    int rc = kws_detector_init(&det, &dc);
    if (vf)
        scratch = malloc(kws_verify_scratch_floats((size_t)kws_verify_span(vf)) * sizeof *scratch);
    if (!rc && (!lat || !peak || !got || (vf && !scratch)))
        rc = -ENOMEM;
    if (rc < 0)
        goto out;
    size_t wi = 0, pk = 0;
    int n_lat = 0;
    for (size_t t = 0; t < se->nf; t++) {
        struct kws_hit hit;
        float sc[SNN_MAX_CLASSES];
        int fired = kws_detector_frame(&det, se->v + t * (size_t)se->n_classes,
                                       se->held && se->held[t], &hit, sc);
        int64_t sample = (int64_t)(t + 1) * se->hop;
        /* the peak score of each word's class from its start to 1 s after its end */
        while (pk < n_word && se->off[pk] + rate < sample)
            pk++;
        for (size_t j = pk; j < n_word && se->on[j] <= sample; j++)
            if (sc[se->lab[j]] > peak[j])
                peak[j] = sc[se->lab[j]];
        if (!fired)
            continue;
        if (vf && hit.label == vf->label) {
            /* kwsd publishes it verify.ahead frames on, if the frames match */
            size_t pub = t + (size_t)vf->ahead < se->nf ? t + (size_t)vf->ahead : se->nf - 1;
            if (!(verify_cost_at(se, pub, scratch) <= vf->cut)) {
                /* dropped at pub: the listener lets the detector fire again
                 * from the frame after it */
                kws_detector_rearm(&det, (int)(pub - t));
                continue;
            }
            sample = (int64_t)(pub + 1) * se->hop;
        }
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
                    if (se->neg && se->neg[j])
                        res->fa_negative++;
                    else if (dc.fires[se->lab[j]])
                        res->fa_keyword++;
                    else
                        res->fa_unknown++;
                    break;
                }
        }
    }
    int nk = 0;
    for (size_t j = 0; j < n_word; j++) {
        res->n_negative += se->neg && se->neg[j];
        if (dc.fires[se->lab[j]]) {
            res->n_kw++;
            res->hits += got[j];
            res->kw_n[se->lab[j]]++;
            res->kw_hits[se->lab[j]] += got[j];
            peak[nk++] = peak[j];
        }
    }
    if (nk) {
        qsort(peak, (size_t)nk, sizeof *peak, train__cmp_float);
        res->peak_p50 = peak[nk / 2];
    }
    res->hours = se->hours;
    if (n_lat) {
        double sum = 0.0;
        for (int i = 0; i < n_lat; i++)
            sum += lat[i];
        qsort(lat, (size_t)n_lat, sizeof *lat, train__cmp_float);
        res->lat_mean_ms = sum / n_lat;
        res->lat_p50_ms = lat[n_lat / 2];
        res->lat_p90_ms = lat[(n_lat * 9) / 10];
    }
out:
    free(scratch);
    free(lat);
    free(peak);
    free(got);
    kws_detector_free(&det);
    return rc;
}

float stream_eval_grid(int i) {
    static const float top[] = {0.97f, 0.98f, 0.99f, 0.995f, 0.998f, 0.999f};
    enum { N_TOP = sizeof top / sizeof top[0] };
    return i < 16 ? 0.20f + 0.05f * (float)i : top[i - 16 < N_TOP ? i - 16 : N_TOP - 1];
}

float stream_eval_calibrate(const struct stream_eval *se, const struct snn_cfg *cfg, int smooth_ms,
                            int refr_ms, double max_fa_per_hour, struct stream_result *res) {
    struct stream_result r;
    float thr = stream_eval_grid(STREAM_EVAL_GRID_N - 1);
    for (int i = 0; i < STREAM_EVAL_GRID_N; i++) {
        float t = stream_eval_grid(i);
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

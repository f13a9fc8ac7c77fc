/* recipe.c: a whole training run (kws/recipe.h): data, network, epochs, choice, calibration.
 *
 * train_run is the recipe docs/MODELS.md "What the trainer does" describes.
 * It keeps its state in one struct run and goes through it in order:
 * run_network_cfg (the topology and front end), run_data (the data set, the
 * windows' pools and the validation stream), run_net (a new, resumed or
 * fine-tuned network), run_buffers (renderers, the teacher, the validation
 * clips, the batch buffers), then run_epoch per epoch and run_calibrate at
 * the end. Every step's random numbers come from the seed, the epoch and
 * the step, so a resumed run renders the batches an uninterrupted one would.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/recipe.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kws/dataset.h"
#include "kws/err.h"
#include "kws/listener.h"
#include "kws/stream_eval.h"
#include "kws/train.h"
#include "recipe_internal.h"
#include "say_internal.h"

/* ==== Defaults ==== */

void train_recipe_default(struct train_recipe *r) {
    struct train_hparams hp;
    struct ds_aug aug;
    struct ds_window win;
    struct kws_frontend_cfg fe;
    struct stream_eval_opts so = stream_eval_opts_default();

    train_hparams_default(&hp);
    dataset_aug_default(&aug);
    dataset_window_default(&win);
    audio_fe_cfg_default(&fe);
    memset(r, 0, sizeof *r);
    r->synth_n = 2;
    r->synth_unk = 2;
    r->synth_rate = 16000;
    r->seed = (int)hp.seed;

    r->n_hidden = r->n_rec = 2;
    r->hidden[0] = r->hidden[1] = 256;
    r->rec[0] = SNN_REC_NONE;
    r->rec[1] = SNN_REC_CONV;
    r->k = 5;
    r->d_max = 40;
    r->beta0 = 0.047619f;
    r->beta_rec = 0.38583f;
    r->out_beta = 0.047619f;
    r->out_gain = 1.0f;
    r->pcen_release = fe.pcen_release;

    r->epochs = 40;
    r->batch = 64;
    r->copies = 1;
    r->T = 100;
    r->lr = 5e-3f;
    r->lr_delay = 5e-2f;
    r->wd = hp.wd;
    r->drop_ff = hp.drop_ff;
    r->drop_rec = hp.drop_rec;
    r->sigma_init = hp.sigma;
    r->sigma_decay = 0.95f;
    r->surrogate = hp.surrogate;
    r->sg_alpha = hp.sg_alpha;
    r->no_detach = !hp.detach_reset;
    r->no_bn = !hp.use_bn;
    r->delay_init[0] = hp.delay_init_lo;
    r->delay_init[1] = hp.delay_init_hi;
    r->bg_weight = hp.bg_weight;
    r->fg_weight = hp.fg_weight;
    r->win_weight = hp.win_weight;
    r->fa_weight = hp.fa_weight;
    r->freeze = hp.freeze;
    r->tie_ch = hp.tie_ch;
    r->tie_half = hp.tie_half;
    r->ema = hp.ema_decay;
    r->kd_weight = hp.kd_weight;
    r->kd_temp = hp.kd_temp;

    r->snr[0] = aug.snr_db_lo;
    r->snr[1] = aug.snr_db_hi;
    r->shift_ms = aug.shift_ms;
    r->speed[0] = aug.speed_lo;
    r->speed[1] = aug.speed_hi;
    r->context_ms = 0.0f;
    r->p_context = aug.p_ctx_word;
    r->p_cold = aug.p_ctx_cold;
    r->tilt = aug.tilt;
    r->trim_ms = aug.trim_ms;
    r->floor_p = aug.floor_p;
    r->floor_db[0] = aug.floor_db_lo;
    r->floor_db[1] = aug.floor_db_hi;
    r->reverb = aug.p_reverb;
    r->rt60[0] = aug.rt60_lo;
    r->rt60[1] = aug.rt60_hi;
    r->fmask[0] = aug.fmask_n;
    r->fmask[1] = aug.fmask_w;
    r->tmask[0] = aug.tmask_n;
    r->tmask[1] = aug.tmask_w;

    r->window_ms = (float)(win.T * kws_frame_ms(&fe));
    r->p_keyword = win.p_keyword;

    r->select = TRAIN_SELECT_CLIP;
    r->calib_fa = 10.0f;
    r->calib_passes = so.passes;
}

/* ==== The run's state ==== */

/* One front end per thread, for rendering. */
struct renderer {
    struct audio_fe fe[64];
    int n;
};

/* A model to distil from, with one network state per thread. */
struct teacher {
    struct snn_model m;
    struct snn_state st[64];
    float *vo; /* (n_st, T, n_classes) readout potentials, one block per thread */
    int n_st, T;
};

struct run {
    const struct train_recipe *r;
    const struct train_progress *p;
    char *msg;
    size_t msglen;
    char ckpt[4096];
    int stream_val; /* score the validation stream every epoch */

    struct snn_cfg cfg;
    struct dataset ds;
    struct ds_window win;
    size_t *pool_mem;             /* the windows' pools */
    struct stream_eval_opts vopt; /* the validation stream */
    size_t *vneg;                 /* its negatives */
    size_t *tr, *va, n_tr, n_va;  /* training and validation clips */

    struct train_net net;
    int have_net, epoch0;
    float best;

    int B, T, n_in, ctx, Ttr; /* batch, clip frames, inputs, context frames, frames trained */
    struct renderer rend;
    struct teacher tch;
    int have_teacher;
    float *kd_p;      /* (B, n_classes) the teacher's clip scores */
    float *xv;        /* (n_va, T, n_in) validation clips, rendered once */
    int32_t *yv;      /* (n_va) their labels */
    size_t per_epoch, steps_per_epoch;
    size_t *order;    /* (per_epoch) training clips in this epoch's order */
    float *x, *bg;    /* (B, Ttr, n_in), (B, Ttr) a batch */
    float *xtmp;      /* (B, T, n_in) a validation batch */
    int32_t *y, *ytmp;
    int16_t *ft;      /* (B, Ttr) window targets */
    struct ds_aug aug;
};

/* Says what went wrong in R's msg; returns rc. */
static int fail(struct run *R, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R->msg, R->msglen, fmt, ap);
    va_end(ap);
    return rc;
}

/* A note line to the progress callback. */
static void note(struct run *R, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    train__vnote(R->p ? R->p->note : NULL, R->p ? R->p->data : NULL, fmt, ap);
    va_end(ap);
}

/* ==== Rendering batches ==== */

static int renderer_init(struct renderer *r, const struct kws_frontend_cfg *fc, int n) {
    memset(r, 0, sizeof *r);
    r->n = n > 64 ? 64 : n;
    for (int i = 0; i < r->n; i++)
        if (audio_fe_init(&r->fe[i], fc) < 0)
            return -ENOMEM;
    return 0;
}

static void renderer_free(struct renderer *r) {
    for (int i = 0; i < r->n; i++)
        audio_fe_free(&r->fe[i]);
}

/* Renders clips idx[0..n) into x (n,T,n_in), bg (n,T), y (n). */
static int render_batch(struct renderer *r, const struct dataset *ds, const size_t *idx, int n,
                        const struct ds_aug *aug, uint64_t seed, int T, int n_in, float *x,
                        float *bg, int32_t *y) {
    int err = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : err)
    for (int b = 0; b < n; b++) {
        int th = omp_get_thread_num() % r->n;
        err |= dataset_render(ds, idx[b], aug, seed, &r->fe[th], T, x + (size_t)b * T * n_in,
                              bg ? bg + (size_t)b * T : NULL) != 0;
        y[b] = ds->clips[idx[b]].label;
    }
    return err ? -ENOMEM : 0;
}

/* Renders B stream windows (kws/dataset.h) into x (B,T,n_in) and their
 * per-frame targets into ft (B,T); window b draws from stream first + b. */
static int render_windows(struct renderer *r, const struct dataset *ds, const struct ds_window *w,
                          const struct ds_aug *aug, uint64_t seed, uint64_t first, int B, int n_in,
                          float *x, int16_t *ft) {
    int err = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : err)
    for (int b = 0; b < B; b++) {
        int th = omp_get_thread_num() % r->n;
        err |= dataset_render_window(ds, w, aug, seed, first + (uint64_t)b, &r->fe[th],
                                     x + (size_t)b * w->T * n_in, ft + (size_t)b * w->T) != 0;
    }
    return err ? -ENOMEM : 0;
}

/* Prerenders a split without augmentation. */
static int prerender(struct renderer *r, const struct dataset *ds, const size_t *idx, size_t n,
                     int T, int n_in, float **x, int32_t **y) {
    struct ds_aug none;
    dataset_aug_none(&none);
    *x = malloc((n ? n : 1) * T * n_in * sizeof(float));
    *y = malloc((n ? n : 1) * sizeof(int32_t));
    if (!*x || !*y)
        return -ENOMEM;
    for (size_t s = 0; s < n; s += 256) {
        int nb = (int)(n - s < 256 ? n - s : 256);
        if (render_batch(r, ds, idx + s, nb, &none, 0x5eed, T, n_in, *x + s * T * n_in, NULL,
                         *y + s))
            return -ENOMEM;
    }
    return 0;
}

/* ==== Stream windows and hard negatives ==== */

/* Fills the window's pools from the training split: keywords (every label
 * that fires), unknown words, and negative phrases; room for hard negatives.
 * Returns 0 or -ENOMEM. */
static int window_pools(const struct dataset *ds, struct ds_window *w, size_t **mem) {
    size_t n = ds->n_clips, *p = malloc((4 * n + 4) * sizeof *p);
    if (!(*mem = p))
        return -ENOMEM;
    size_t *kw = p, *unk = p + n, *neg = p + 2 * n;
    w->n_kw = w->n_unk = w->n_neg = w->n_hard = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ds_clip *c = &ds->clips[i];
        if (c->split != DS_TRAIN || c->label == ds->sil_class)
            continue;
        if (c->negative)
            neg[w->n_neg++] = i;
        else if (c->label == ds->unk_class || ds->labels[c->label][0] == '_')
            unk[w->n_unk++] = i;
        else
            kw[w->n_kw++] = i;
    }
    w->kw = kw;
    w->unk = unk;
    w->neg = neg;
    w->hard = p + 3 * n;
    w->p_hard = 0.5f;
    return 0;
}

/* Mines the training negatives with model m (kws/dataset.h dataset_mine):
 * the ones it fires on at 0.5, smoothed as kwsd smooths, become the
 * windows' hard pool. */
static int mine(struct run *R, const struct snn_model *m) {
    struct ds_window *w = &R->win;
    struct kws_listener_settings ls;
    kws_listener_settings_default(&ls);
    size_t n_hard = 0;
    int rc = dataset_mine(m, &R->ds, w->neg, w->n_neg, 0.5f, ls.smoothing_ms, (size_t *)w->hard,
                          &n_hard, NULL);
    if (rc < 0)
        return rc;
    w->n_hard = n_hard;
    note(R, "mined: the model fired on %zu of %zu training negatives", n_hard, w->n_neg);
    return 0;
}

/* ==== Distillation teacher ==== */

/* Which reading of its inputs or classes the model m and cfg differ in,
 * or NULL. */
static const char *teacher_mismatch(const struct snn_model *m, const struct snn_cfg *cfg) {
    const struct kws_frontend_cfg *a = &m->cfg.fe, *b = &cfg->fe;
    if (a->sample_rate != b->sample_rate || a->hop != b->hop || a->win_len != b->win_len ||
        a->n_fft != b->n_fft)
        return "sample rate, window or hop";
    if (a->n_mels != b->n_mels || a->fmin != b->fmin || a->fmax != b->fmax)
        return "mel bands or edges (--fmax)";
    if (a->pcen != b->pcen || a->pcen_release != b->pcen_release)
        return "PCEN (--pcen-release)";
    if (a->enc_kind != b->enc_kind || a->enc_levels != b->enc_levels ||
        memcmp(a->enc_thresh, b->enc_thresh, sizeof a->enc_thresh) ||
        a->feat_mean != b->feat_mean || a->feat_scale != b->feat_scale)
        return "encoder (--enc)";
    if (m->cfg.n_in != cfg->n_in || m->cfg.n_classes != cfg->n_classes)
        return "input or class count";
    for (int c = 0; c < cfg->n_classes; c++)
        if (strcmp(m->cfg.labels[c], cfg->labels[c]))
            return "labels (names or order)";
    return NULL;
}

static void teacher_free(struct teacher *t) {
    for (int i = 0; i < t->n_st; i++)
        snn_state_free(&t->st[i]);
    free(t->vo);
    snn_model_free(&t->m);
    memset(t, 0, sizeof *t);
}

/* Loads the teacher model at path and checks that it reads the same inputs
 * and names the same classes as cfg. */
static int teacher_init(struct run *R, struct teacher *t, const char *path, int T, int n_threads) {
    char msg[256];
    memset(t, 0, sizeof *t);
    int rc = snn_model_load(&t->m, path, msg, sizeof msg);
    if (rc < 0) {
        teacher_free(t);
        return fail(R, rc, "--teacher: %s", msg);
    }
    const char *diff = teacher_mismatch(&t->m, &R->cfg);
    if (diff) {
        teacher_free(t);
        return fail(R, KWS_EBADFIELD, "--teacher %s: the teacher's %s and this training's differ",
                    path, diff);
    }
    t->n_st = n_threads < 1 ? 1 : n_threads > 64 ? 64 : n_threads;
    t->T = T;
    t->vo = malloc((size_t)t->n_st * T * R->cfg.n_classes * sizeof *t->vo);
    for (int i = 0; rc == 0 && i < t->n_st; i++)
        rc = snn_state_init(&t->st[i], &t->m);
    if (!t->vo || rc < 0) {
        teacher_free(t);
        return fail(R, -ENOMEM, "out of memory");
    }
    return 0;
}

/* The teacher's clip scores P (n, n_classes) of examples x (n, T, n_in),
 * summed from frame t0 on like the student's; returns how many of them it
 * classifies as y. */
static int teacher_scores(struct teacher *t, const float *x, const int32_t *y, int n, int t0,
                          float *P) {
    int K = t->m.cfg.n_classes, n_in = t->m.cfg.n_in, T = t->T, agree = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : agree)
    for (int b = 0; b < n; b++) {
        int th = omp_get_thread_num() % t->n_st;
        float *vo = t->vo + (size_t)th * T * K;
        snn_forward(&t->m, &t->st[th], x + (size_t)b * T * n_in, T, vo);
        agree += train_clip_predict(vo + (size_t)t0 * K, T - t0, K, P + (size_t)b * K) == y[b];
    }
    return agree;
}

/* ==== Validation ==== */

/* Accuracy of net (eval mode, sigma 0) on prerendered examples. */
static float eval_acc(struct train_net *net, const float *x, const int32_t *y, size_t n, int B,
                      int T, int n_in, float *bgz, int32_t *ytmp, float *xtmp) {
    size_t correct = 0;
    int K = net->cfg.n_classes;
    for (size_t s = 0; s < n; s += (size_t)B) {
        int nb = (int)(n - s < (size_t)B ? n - s : (size_t)B);
        memcpy(xtmp, x + s * T * n_in, (size_t)nb * T * n_in * sizeof(float));
        if (nb < B)
            memset(xtmp + (size_t)nb * T * n_in, 0, (size_t)(B - nb) * T * n_in * sizeof(float));
        for (int b = 0; b < B; b++)
            ytmp[b] = b < nb ? y[s + b] : 0;
        train_net_forward(net, xtmp, NULL, bgz, B, T, 0);
        for (int b = 0; b < nb; b++)
            correct += train_clip_predict(net->vo + (size_t)b * T * K, T, K, NULL) == y[s + b];
    }
    return n ? (float)correct / (float)n : 0.0f;
}

/* Copies every layer's recurrent and input delays into buf (save = 1) or
 * back from it (save = 0). */
static void copy_delays(struct train_net *net, float *buf, int save) {
    for (int l = 0; l < net->cfg.n_layers; l++) {
        float *d = net->p.delay[l], *di = net->p.in_delay[l];
        size_t n = (size_t)net->cfg.layer[l].n, ni = l ? (size_t)net->cfg.layer[l - 1].n : 0;
        if (d) {
            memcpy(save ? buf : d, save ? d : buf, n * sizeof *d);
            buf += n;
        }
        if (di) {
            memcpy(save ? buf : di, save ? di : buf, ni * sizeof *di);
            buf += ni;
        }
    }
}

/* Runs model m over the stream joined from the validation clips as vo
 * describes it (passes, the validation negatives between the words, noise
 * under it; kws/stream_eval.h), and finds the lowest threshold with at most
 * max_fa false alarms per hour: *thr and its result r. Returns 0,
 * KWS_EDATASET when the clips hold no word, or -ENOMEM. */
static int stream_val(const struct snn_model *m, const struct dataset *ds, const size_t *va,
                      size_t n_va, const struct stream_eval_opts *vo, float max_fa, float *thr,
                      struct stream_result *r) {
    struct stream_eval se;
    struct kws_listener_settings ls; /* kwsd's smoothing and refractory period */
    kws_listener_settings_default(&ls);
    memset(r, 0, sizeof *r);
    int rc = stream_eval_run_opts(&se, m, ds, va, n_va, vo);
    if (rc < 0)
        return rc == KWS_EDATASET ? rc : -ENOMEM;
    *thr = stream_eval_calibrate(&se, &m->cfg, ls.smoothing_ms, ls.refractory_ms, max_fa, r);
    stream_eval_free(&se);
    return *thr < 0.0f ? -ENOMEM : 0;
}

/* Stores in the model file out the lowest detection threshold that gives at
 * most calib_fa false alarms per hour on the validation stream, so the
 * daemon's default threshold fits this model. Without validation words the
 * model keeps none. */
static int run_calibrate(struct run *R) {
    const struct train_recipe *r = R->r;
    struct snn_model m = {0};
    struct stream_result sr;
    char msg[256];
    int rc = snn_model_load(&m, r->out, msg, sizeof msg);
    if (rc < 0)
        return fail(R, rc, "%s", msg);
    float t = 0.0f;
    rc = stream_val(&m, &R->ds, R->va, R->n_va, &R->vopt, r->calib_fa, &t, &sr);
    if (rc == KWS_EDATASET) {
        note(R,
             "calibration: no validation words; the model has no threshold of its own "
             "(kwsd uses %.2g)",
             (double)KWS_THRESHOLD_FALLBACK);
        snn_model_free(&m);
        return 0;
    }
    if (rc < 0) {
        snn_model_free(&m);
        return fail(R, -ENOMEM, "calibration: out of memory");
    }
    m.cfg.threshold = t;
    rc = snn_model_save(&m, r->out);
    snn_model_free(&m);
    if (rc < 0)
        return fail(R, rc, "cannot write %s: %s", r->out, kws_strerror(rc));
    note(R,
         "calibration: threshold %.3f on a %.2f h validation stream: hit rate %.1f %% "
         "(%d/%d), %.1f false alarms per hour (at most %.1f wanted)",
         (double)t, sr.hours, sr.n_kw ? 100.0 * sr.hits / sr.n_kw : 0.0, sr.hits, sr.n_kw,
         sr.hours > 0 ? sr.false_alarms / sr.hours : 0.0, (double)r->calib_fa);
    return 0;
}

/* ==== Setting up ==== */

/* The network's topology and front end from the recipe. */
static int run_network_cfg(struct run *R) {
    const struct train_recipe *r = R->r;
    struct snn_cfg *cfg = &R->cfg;
    char msg[512];
    if (r->n_rec != r->n_hidden)
        return fail(R, KWS_ECONFIG, "--rec needs one entry per --hidden layer");
    memset(cfg, 0, sizeof *cfg);
    audio_fe_cfg_default(&cfg->fe);
    if (r->enc_kind == KWS_ENC_DELTA)
        audio_fe_cfg_delta(&cfg->fe);
    cfg->fe.enc_kind = r->enc_kind;
    if (r->n_enc) {
        cfg->fe.enc_levels = r->n_enc;
        for (int i = 0; i < r->n_enc; i++)
            cfg->fe.enc_thresh[i] = r->enc[i];
    }
    if (r->fmax > 0.0f)
        cfg->fe.fmax = r->fmax;
    cfg->fe.pcen_release = r->pcen_release;
    if (audio_fe_cfg_check(&cfg->fe, msg, sizeof msg) < 0)
        return fail(R, KWS_ECONFIG, "front end: %s", msg);
    cfg->n_in = audio_fe_n_out(&cfg->fe);
    cfg->n_layers = r->n_hidden;
    for (int l = 0; l < cfg->n_layers; l++) {
        struct snn_layer_cfg *lc = &cfg->layer[l];
        lc->n = r->hidden[l];
        lc->rec = r->rec[l];
        lc->k = lc->rec == SNN_REC_CONV ? r->k : 0;
        lc->ch = lc->rec == SNN_REC_CONV ? r->conv_ch : 0; /* snn_cfg_validate checks it */
        lc->d_max = lc->rec != SNN_REC_NONE ? r->d_max : 0;
        lc->beta = lc->rec != SNN_REC_NONE ? r->beta_rec : r->beta0;
        lc->gain = 1.0f;
        lc->thresh = 1.0f;
        lc->reset = SNN_RESET_HARD;
        lc->in_d_max = l ? r->in_delay : 0;
    }
    cfg->n_classes = r->n_labels;
    cfg->out_beta = r->out_beta;
    cfg->out_gain = r->out_gain > 0.0f ? r->out_gain : 1.0f;
    for (int i = 0; i < r->n_labels; i++)
        snprintf(cfg->labels[i], SNN_LABEL_LEN, "%s", r->labels[i]);
    if (snn_cfg_validate(cfg, msg, sizeof msg) < 0)
        return fail(R, KWS_ECONFIG, "%s", msg);
    /* training examples carry ctx frames of context in front of the T frames */
    R->ctx = (int)(r->context_ms / (float)kws_frame_ms(&cfg->fe) + 0.5f);
    if (R->ctx < 0 || R->ctx > 1000)
        return fail(R, KWS_ECONFIG, "--context-ms out of range");
    return 0;
}

/* Makes the --synth and --flite clips when their folders are new, and loads
 * every source of clips and noise into R->ds. */
static int run_load(struct run *R, size_t *noise0) {
    const struct train_recipe *r = R->r;
    char *labels[SNN_MAX_CLASSES], msg[512];
    struct dataset *ds = &R->ds;
    int rc;
    for (int i = 0; i < r->n_labels; i++)
        labels[i] = (char *)r->labels[i];
    if (dataset_init(ds, (const char *const *)labels, r->n_labels, R->cfg.fe.sample_rate) < 0)
        return fail(R, KWS_ECONFIG, "bad labels");
    if ((rc = dataset_load(ds, r->data, -1, msg, sizeof msg)) < 0)
        return fail(R, rc, "%s", msg);
    if (r->synth) {
        rc = train__synth_generate(r->synth, labels, r->n_labels, r->synth_n, r->synth_unk,
                                   r->synth_rate);
        if (rc < 0)
            return fail(R, rc, "cannot synthesise clips into %s", r->synth);
        if (rc > 0)
            note(R, "synth: %d clips in %s", rc, r->synth);
        if ((rc = dataset_load(ds, r->synth, -1, msg, sizeof msg)) < 0)
            return fail(R, rc, "%s", msg);
    }
    if (r->extra && (rc = dataset_load(ds, r->extra, DS_TRAIN, msg, sizeof msg)) < 0)
        return fail(R, rc, "%s", msg);
    if (r->flite) {
        rc = train__flite_generate(r->flite, labels, r->n_labels, r->synth_rate);
        if (rc < 0)
            return fail(R, rc, "cannot make flite clips in %s (is flite installed?)", r->flite);
        if (rc > 0)
            note(R, "flite: %d clips in %s", rc, r->flite);
        if ((rc = dataset_load(ds, r->flite, DS_TRAIN, msg, sizeof msg)) < 0)
            return fail(R, rc, "%s", msg);
    }
    *noise0 = ds->n_noise; /* the --noise recordings follow the _silence_ clips */
    if (r->noise && (rc = dataset_add_noise(ds, r->noise, msg, sizeof msg)) < 0)
        return fail(R, rc, "%s", msg);
    if (r->negatives && (rc = dataset_load_negatives(ds, r->negatives, -1, msg, sizeof msg)) < 0)
        return fail(R, rc, "--negatives %s", msg);
    return 0;
}

/* The data set, the windows' pools, the validation stream and the splits. */
static int run_data(struct run *R) {
    const struct train_recipe *r = R->r;
    struct dataset *ds = &R->ds;
    double t0 = train__now_s();
    size_t noise0 = 0;
    int rc = run_load(R, &noise0);
    if (rc < 0)
        return rc;
    dataset_window_default(&R->win);
    if (r->windows) {
        R->win.T = (int)(r->window_ms / (float)kws_frame_ms(&R->cfg.fe));
        R->win.p_keyword = r->p_keyword;
        R->win.p_cold = r->p_cold;
        if (window_pools(ds, &R->win, &R->pool_mem) < 0)
            return fail(R, -ENOMEM, "out of memory");
        note(R, "windows: %d per epoch of %d frames; pools: %zu keywords, %zu unknown, "
                "%zu negatives",
             r->windows, R->win.T, R->win.n_kw, R->win.n_unk, R->win.n_neg);
    }
    /* the validation stream: the split's words, its negatives between them
     * and the --noise recordings under it at 10-20 dB */
    R->vopt = stream_eval_opts_default();
    R->vopt.passes = r->calib_passes;
    if (!(R->vneg = malloc((ds->n_clips + 1) * sizeof *R->vneg)))
        return fail(R, -ENOMEM, "out of memory");
    for (size_t i = 0; i < ds->n_clips; i++)
        if (ds->clips[i].negative && ds->clips[i].split == DS_VAL)
            R->vneg[R->vopt.n_neg++] = i;
    R->vopt.neg = R->vneg;
    if (ds->n_noise > noise0) {
        R->vopt.noise = (const float *const *)ds->noise + noise0;
        R->vopt.noise_n = ds->noise_n + noise0;
        R->vopt.n_noise = ds->n_noise - noise0;
    }
    R->n_tr = dataset_split(ds, DS_TRAIN, -1, NULL);
    R->n_va = dataset_split(ds, DS_VAL, 0, NULL);
    R->tr = malloc((R->n_tr + 1) * sizeof *R->tr);
    R->va = malloc((R->n_va + 1) * sizeof *R->va);
    if (!R->tr || !R->va)
        return fail(R, -ENOMEM, "out of memory");
    dataset_split(ds, DS_TRAIN, -1, R->tr);
    dataset_split(ds, DS_VAL, 0, R->va);
    if (r->max_train > 0 && (size_t)r->max_train < R->n_tr)
        R->n_tr = (size_t)r->max_train;
    note(R, "data: %zu clips (%zu train, %zu val), %zu noise, loaded in %.1f s", ds->n_clips,
         R->n_tr, R->n_va, ds->n_noise, train__now_s() - t0);
    return 0;
}

/* The hyper-parameters of the network from the recipe. */
static void run_hparams(const struct run *R, struct train_hparams *hp) {
    const struct train_recipe *r = R->r;
    train_hparams_default(hp);
    hp->surrogate = r->surrogate;
    hp->sg_alpha = r->sg_alpha;
    hp->detach_reset = !r->no_detach;
    hp->use_bn = !r->no_bn;
    hp->drop_ff = r->drop_ff;
    hp->drop_rec = r->drop_rec;
    hp->wd = r->wd;
    hp->delay_init_lo = r->delay_init[0];
    hp->delay_init_hi = r->delay_init[1];
    hp->sigma = r->sigma_init;
    hp->bg_weight = r->bg_weight;
    hp->fg_weight = r->fg_weight;
    hp->win_weight = r->win_weight;
    hp->fa_weight = r->fa_weight;
    hp->freeze = r->freeze;
    hp->tie_ch = r->tie_ch;
    hp->tie_half = r->tie_half;
    hp->ema_decay = r->ema;
    hp->kd_weight = r->teacher ? r->kd_weight : 0.0f;
    hp->kd_temp = r->kd_temp;
    hp->sil_class = R->ds.sil_class;
    hp->seed = (uint64_t)r->seed;
}

/* A new network, the checkpoint's (resume), or one started from another
 * training's checkpoint or a model file (init). */
static int run_net(struct run *R) {
    const struct train_recipe *r = R->r;
    struct train_hparams hp;
    char msg[512];
    int rc;
    run_hparams(R, &hp);
    R->best = -1.0f;
    if (r->resume && access(R->ckpt, F_OK) == 0) {
        rc = train_checkpoint_load(&R->net, &R->epoch0, R->ckpt, msg, sizeof msg);
        if (rc < 0)
            return fail(R, rc, "%s", msg);
        R->have_net = 1;
        R->best = R->net.best;
        note(R, "resumed from %s at epoch %d (best val %.2f %%)", R->ckpt, R->epoch0,
             100.0 * R->best);
    } else {
        rc = train_net_init(&R->net, &R->cfg, &hp);
        if (rc < 0)
            return fail(R, rc, "cannot create the network (%s)", kws_strerror(rc));
        R->have_net = 1;
        if (r->init) {
            size_t il = strlen(r->init);
            int is_model = il > 5 && !strcmp(r->init + il - 5, ".kwsm");
            if (is_model && r->tie_ch > 0)
                return fail(R, KWS_EBADFIELD,
                            "--band-ch with --init %s: a model file's first layer has its "
                            "BatchNorm folded into each row, so it is not shared across bands "
                            "(fine-tune it without --band-ch)",
                            r->init);
            rc = is_model ? train_net_init_from_model(&R->net, r->init, msg, sizeof msg)
                          : train_net_init_from(&R->net, r->init, msg, sizeof msg);
            if (rc < 0)
                return fail(R, rc, "--init %s", msg);
            note(R, "init: %s", msg);
        }
    }
    size_t n_rec = 0;
    for (int l = 0; l < R->cfg.n_layers; l++)
        n_rec += snn_rec_param_count(&R->cfg.layer[l]);
    note(R, "net: %zu trainable parameters (%zu after export, %zu recurrent), %d threads",
         R->net.n_params, snn_param_count(&R->cfg), n_rec, omp_get_max_threads());
    return 0;
}

/* The augmentation of the training examples from the recipe. */
static void run_aug(const struct run *R, struct ds_aug *aug) {
    const struct train_recipe *r = R->r;
    dataset_aug_default(aug);
    aug->snr_db_lo = r->snr[0];
    aug->snr_db_hi = r->snr[1];
    aug->shift_ms = r->shift_ms;
    aug->speed_lo = r->speed[0];
    aug->speed_hi = r->speed[1];
    aug->ctx_frames = R->ctx;
    aug->p_ctx_word = r->p_context;
    aug->p_ctx_cold = r->p_cold;
    aug->tilt = r->tilt;
    aug->floor_p = r->floor_p;
    aug->floor_db_lo = r->floor_db[0];
    aug->floor_db_hi = r->floor_db[1];
    aug->p_reverb = r->reverb;
    aug->rt60_lo = r->rt60[0];
    aug->rt60_hi = r->rt60[1];
    aug->trim_ms = r->trim_ms;
    aug->fmask_n = r->fmask[0];
    aug->fmask_w = r->fmask[1];
    aug->tmask_n = r->tmask[0];
    aug->tmask_w = r->tmask[1];
}

/* Renderers, the teacher, the prerendered validation clips and the batch
 * buffers. */
static int run_buffers(struct run *R) {
    const struct train_recipe *r = R->r;
    int B = R->B = r->batch, T = R->T = r->T, n_in = R->n_in = R->cfg.n_in;
    R->Ttr = r->windows ? R->win.T : T + R->ctx;
    if (renderer_init(&R->rend, &R->cfg.fe, omp_get_max_threads()) < 0)
        return fail(R, -ENOMEM, "front end init failed");
    if (r->teacher) {
        int rc = teacher_init(R, &R->tch, r->teacher, R->Ttr, omp_get_max_threads());
        if (rc < 0)
            return rc;
        R->have_teacher = 1;
        if (!(R->kd_p = malloc((size_t)B * R->cfg.n_classes * sizeof *R->kd_p)))
            return fail(R, -ENOMEM, "out of memory");
        note(R, "teacher: %s (%zu parameters), distillation weight %g, temperature %g",
             r->teacher, R->tch.m.n_params, (double)R->net.hp.kd_weight,
             (double)R->net.hp.kd_temp);
    }
    if (prerender(&R->rend, &R->ds, R->va, R->n_va, T, n_in, &R->xv, &R->yv) < 0)
        return fail(R, -ENOMEM, "out of memory");
    double on = 0.0;
    size_t nx = R->n_va * (size_t)T * n_in;
    for (size_t i = 0; i < nx; i++)
        on += R->xv[i];
    note(R, "input: %.3f spikes per channel and frame (validation clips)",
         nx ? on / (double)nx : 0.0);
    R->per_epoch = r->windows ? (size_t)r->windows : R->n_tr * (size_t)r->copies;
    R->steps_per_epoch = R->per_epoch / (size_t)B;
    R->order = malloc((R->per_epoch + 1) * sizeof *R->order);
    R->x = malloc((size_t)B * R->Ttr * n_in * sizeof *R->x);
    R->bg = malloc((size_t)B * R->Ttr * sizeof *R->bg);
    R->xtmp = malloc((size_t)B * T * n_in * sizeof *R->xtmp);
    R->y = malloc((size_t)B * sizeof *R->y);
    R->ytmp = malloc((size_t)B * sizeof *R->ytmp);
    R->ft = malloc((size_t)B * R->Ttr * sizeof *R->ft);
    if (!R->order || !R->x || !R->bg || !R->y || !R->xtmp || !R->ytmp || !R->ft ||
        R->steps_per_epoch == 0)
        return fail(R, -ENOMEM, "out of memory or fewer clips than one batch");
    run_aug(R, &R->aug);
    return 0;
}

/* ==== An epoch ==== */

/* This epoch's order of the (clip, copy) pairs: a deterministic shuffle. */
static void run_shuffle(struct run *R, int ep) {
    size_t n = R->per_epoch, *order = R->order;
    for (size_t i = 0; i < n; i++)
        order[i] = R->tr[i % R->n_tr];
    uint64_t st = (uint64_t)R->r->seed * 0x9E3779B97F4A7C15ull + (uint64_t)ep * 0xBF58476D1CE4E5B9ull;
    for (size_t i = n - 1; i > 0; i--) {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        size_t j = (size_t)(st % (i + 1));
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* The training steps of epoch ep; fills e's training figures. */
static int run_steps(struct run *R, int ep, struct train_epoch_report *e) {
    const struct train_recipe *r = R->r;
    struct train_net *net = &R->net;
    int B = R->B, windows = r->windows > 0;
    size_t steps = R->steps_per_epoch, correct = 0, seen = 0, agree = 0;
    uint64_t spikes = 0;
    double loss = 0.0;
    for (size_t s = 0; s < steps; s++) {
        double tr0 = train__now_s();
        uint64_t rseed = (uint64_t)r->seed * 1000003ull + (uint64_t)ep * 7919ull + s * 104729ull;
        /* a step: stream windows with per-frame targets, or clips with labels */
        uint64_t first = ((uint64_t)ep * steps + s) * (uint64_t)B;
        int rr = windows ? render_windows(&R->rend, &R->ds, &R->win, &R->aug, (uint64_t)r->seed,
                                          first, B, R->n_in, R->x, R->ft)
                         : render_batch(&R->rend, &R->ds, R->order + s * B, B, &R->aug, rseed,
                                        R->Ttr, R->n_in, R->x, R->bg, R->y);
        if (rr < 0)
            return fail(R, rr, "render failed");
        e->render_seconds += train__now_s() - tr0;
        float frac = ((float)ep * steps + s) / ((float)r->epochs * steps);
        e->lr = train_lr_onecycle(r->lr, frac);
        float lrd = train_lr_cosine(r->lr_delay, frac);
        net->clip_t0 = windows ? 0 : R->ctx;
        net->ftgt = windows ? R->ft : NULL;
        if (R->kd_p && !windows)
            agree += (size_t)teacher_scores(&R->tch, R->x, R->y, B, R->ctx, R->kd_p);
        net->kd_p = windows ? NULL : R->kd_p; /* read by the forward and the backward */
        train_net_forward(net, R->x, windows ? NULL : R->y, windows ? NULL : R->bg, B, R->Ttr, 1);
        train_net_zero_grad(net);
        train_net_backward(net);
        train_net_adamw(net, e->lr, lrd);
        net->kd_p = NULL;
        net->ftgt = NULL;
        loss += net->loss;
        correct += (size_t)net->n_correct;
        seen += windows ? (size_t)net->n_regions : (size_t)B;
        spikes += net->n_spikes;
    }
    size_t hidden = 0;
    for (int l = 0; l < R->cfg.n_layers; l++)
        hidden += (size_t)R->cfg.layer[l].n;
    e->loss = loss / steps;
    e->train_acc = (double)correct / seen;
    e->teacher_agree = R->kd_p ? (double)agree / seen : -1.0;
    e->rate = (double)spikes / ((double)steps * B * R->Ttr * hidden);
    return 0;
}

/* The validation stream's figures of model m into e, and the epoch's score
 * when the stream chooses: hits within the budget, clip accuracy breaking
 * ties; an epoch that no threshold keeps within the budget has no hits to
 * count: the fewer its false alarms, the better. */
static int run_stream_val(struct run *R, const struct snn_model *m, float va_acc,
                          struct train_epoch_report *e, float *score) {
    const struct train_recipe *r = R->r;
    struct stream_result sr;
    float th = 1.0f; /* no validation words: no hits at any threshold */
    int rc = stream_val(m, &R->ds, R->va, R->n_va, &R->vopt, r->calib_fa, &th, &sr);
    if (rc < 0 && rc != KWS_EDATASET)
        return fail(R, rc, "validation stream: out of memory");
    float hit = sr.n_kw ? (float)sr.hits / (float)sr.n_kw : 0.0f;
    double fa_h = sr.hours > 0 ? sr.false_alarms / sr.hours : 0.0;
    e->stream = 1;
    e->stream_hit = hit;
    e->stream_fa_h = fa_h;
    e->stream_thr = th;
    if (r->select == TRAIN_SELECT_STREAM)
        *score = fa_h <= r->calib_fa ? hit + 1e-4f * va_acc : -(float)fa_h * 1e-3f + 1e-6f * va_acc;
    return 0;
}

/* Epoch ep: train, validate (delays rounded, sigma 0: the exported model's
 * kernel; the weight average when there is one), write the model if it is
 * the best, mine, checkpoint, and report. */
static int run_epoch(struct run *R, int ep) {
    const struct train_recipe *r = R->r;
    struct train_net *net = &R->net;
    struct train_epoch_report e = {.epoch = ep + 1, .epochs = r->epochs, .val_weights = -1.0};
    double te = train__now_s();
    float sdec = powf(r->sigma_decay, 100.0f / (float)r->epochs);
    net->hp.sigma = r->sigma_init * powf(sdec, (float)ep);
    run_shuffle(R, ep);
    int rc = run_steps(R, ep, &e);
    if (rc < 0)
        return rc;
    float sig = net->hp.sigma;
    train_net_round_delays(net);
    net->hp.sigma = 0.0f;
    net->clip_t0 = 0;
    float va_acc = eval_acc(net, R->xv, R->yv, R->n_va, R->B, R->T, R->n_in, NULL, R->ytmp,
                            R->xtmp);
    float dsave[2 * SNN_MAX_LAYERS * SNN_MAX_NEURONS];
    if (net->ema) {
        /* the average is what is validated and exported; its own delays stay
         * real-valued (only the copy scored here is rounded) */
        e.val_weights = va_acc;
        train_net_ema_swap(net);
        copy_delays(net, dsave, 1);
        train_net_round_delays(net);
        va_acc = eval_acc(net, R->xv, R->yv, R->n_va, R->B, R->T, R->n_in, NULL, R->ytmp, R->xtmp);
    }
    net->hp.sigma = sig;
    e.val_acc = va_acc;
    e.sigma = sig;
    struct snn_model m = {0};
    if (train_net_export(net, &m) < 0)
        return fail(R, -ENOMEM, "out of memory");
    float score = va_acc;
    if (R->stream_val && (rc = run_stream_val(R, &m, va_acc, &e, &score)) < 0)
        goto out;
    if (r->select == TRAIN_SELECT_LAST) /* each epoch replaces the one before */
        score = (float)(ep + 1);
    e.best = score > R->best;
    if (e.best) {
        R->best = score;
        if ((rc = snn_model_save(&m, r->out)) < 0) {
            fail(R, rc, "cannot write %s", r->out);
            goto out;
        }
    }
    e.seconds = train__now_s() - te;
    if (R->p && R->p->epoch)
        R->p->epoch(R->p->data, &e);
    if (r->windows && r->mine_every && (ep + 1) % r->mine_every == 0 && R->win.n_neg &&
        (rc = mine(R, &m)) < 0) {
        fail(R, rc, "out of memory");
        goto out;
    }
    rc = 0;
out:
    snn_model_free(&m);
    if (rc < 0)
        return rc;
    if (net->ema) {
        copy_delays(net, dsave, 0);
        train_net_ema_swap(net);
    }
    net->best = R->best;
    if ((rc = train_checkpoint_save(net, ep + 1, R->ckpt)) < 0)
        note(R, "checkpoint %s: %s", R->ckpt, kws_strerror(rc));
    return 0;
}

/* A resumed window training's hard negatives: the checkpoint does not hold
 * them, so when the epoch it ends was a mining epoch the same model mines
 * again (the exported average with rounded delays, as run_epoch exported
 * it), and the resumed run draws the windows the uninterrupted one drew.
 * After any other epoch the pool stays empty until the next mining. */
static int run_resume_mining(struct run *R) {
    const struct train_recipe *r = R->r;
    struct train_net *net = &R->net;
    if (!r->windows || !r->mine_every || !R->epoch0 || !R->win.n_neg)
        return 0;
    if (R->epoch0 % r->mine_every) {
        note(R, "mined: no hard negatives until epoch %d (the checkpoint holds none)",
             (R->epoch0 / r->mine_every + 1) * r->mine_every);
        return 0;
    }
    float dsave[2 * SNN_MAX_LAYERS * SNN_MAX_NEURONS];
    if (net->ema) {
        train_net_ema_swap(net);
        copy_delays(net, dsave, 1);
    }
    train_net_round_delays(net);
    struct snn_model m = {0};
    int rc = train_net_export(net, &m);
    if (net->ema) {
        copy_delays(net, dsave, 0);
        train_net_ema_swap(net);
    }
    if (rc == 0)
        rc = mine(R, &m);
    snn_model_free(&m);
    return rc < 0 ? fail(R, rc, "out of memory") : 0;
}

/* ==== The run ==== */

static void run_free(struct run *R) {
    free(R->order);
    free(R->vneg);
    free(R->ft);
    free(R->pool_mem);
    free(R->x);
    free(R->bg);
    free(R->y);
    free(R->xtmp);
    free(R->ytmp);
    free(R->xv);
    free(R->yv);
    free(R->tr);
    free(R->va);
    renderer_free(&R->rend);
    if (R->have_teacher)
        teacher_free(&R->tch);
    free(R->kd_p);
    if (R->have_net)
        train_net_free(&R->net);
    dataset_free(&R->ds);
}

int train_run(const struct train_recipe *r, const struct train_progress *p, char *msg,
              size_t msglen) {
    struct run *R = calloc(1, sizeof *R);
    if (!R) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    R->r = r;
    R->p = p;
    R->msg = msg;
    R->msglen = msglen;
    R->stream_val = r->stream_val || r->select == TRAIN_SELECT_STREAM;
    if (r->threads > 0)
        omp_set_num_threads(r->threads);
    snprintf(R->ckpt, sizeof R->ckpt, "%s%s", r->ckpt ? r->ckpt : r->out, r->ckpt ? "" : ".ckpt");
    int rc = run_network_cfg(R);
    if (rc == 0)
        rc = run_data(R);
    if (rc == 0)
        rc = run_net(R);
    if (rc == 0)
        rc = run_buffers(R);
    if (rc == 0)
        rc = run_resume_mining(R);
    double t_train = train__now_s();
    for (int ep = R->epoch0; rc == 0 && ep < r->epochs; ep++)
        rc = run_epoch(R, ep);
    if (rc == 0) {
        if (r->select == TRAIN_SELECT_LAST)
            note(R, "done: the last epoch kept, training %.1f min, model %s",
                 (train__now_s() - t_train) / 60.0, r->out);
        else
            note(R, "done: best %s %.2f %%, training %.1f min, model %s",
                 R->stream_val && r->select == TRAIN_SELECT_STREAM ? "validation stream hit rate"
                                                                   : "val",
                 100.0 * R->best, (train__now_s() - t_train) / 60.0, r->out);
        rc = run_calibrate(R);
    }
    run_free(R);
    free(R);
    return rc;
}

/* test_train_dataset.c: the folder-per-label loader and the example renderer.
 *
 * Builds a tiny data set at test time (tone bursts as "words", white noise as
 * _silence_, list files naming the validation and test clips), then checks
 * the splits, the word boundaries found from the energy, the background and
 * word-tail frame marks of a render, and that renders depend only on the seed.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kws/dataset.h"
#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/stream_eval.h"
#include "kws/train.h"
#include "train_test.h"

static char root[] = "/tmp/kws-ds-XXXXXX";

/* root/rel, 1 s at 16 kHz: a 400 ms tone burst starting at start_ms over
 * faint noise, or (noise_only) louder noise alone. */
static void write_clip(const char *rel, float freq, int start_ms, int noise_only) {
    tt_write_word(kt_path(root, rel), (uint32_t)(freq * 10) + 1, freq, start_ms, noise_only);
}

static void setup(void) {
    cr_assert(not(eq(ptr, mkdtemp(root), NULL)));
    kt_sh("cd '%s' && mkdir yes no _silence_", root);
    char rel[64];
    for (int i = 0; i < 4; i++) {
        snprintf(rel, sizeof rel, "yes/a%d.wav", i);
        write_clip(rel, 500.0f + 50.0f * i, 300, 0);
        snprintf(rel, sizeof rel, "no/b%d.wav", i);
        write_clip(rel, 1500.0f + 50.0f * i, 200, 0);
        snprintf(rel, sizeof rel, "_silence_/n%d.wav", i);
        write_clip(rel, 0.0f + i, 0, 1);
    }
    kt_write_file(kt_path(root, "validation_list.txt"), "yes/a1.wav\nno/b1.wav\n");
    kt_write_file(kt_path(root, "testing_list.txt"), "yes/a2.wav\n_silence_/n2.wav\n");
}

static void teardown(void) {
    tt_rmtree(root);
}

TestSuite(train_dataset, .init = setup, .fini = teardown, .timeout = 60);

static const char *const labels[] = {"yes", "no", "_silence_"};

Test(train_dataset, splits_and_words) {
    struct dataset ds;
    char msg[256];
    cr_assert(eq(int, dataset_init(&ds, labels, 3, 16000), 0));
    cr_assert(eq(int, dataset_load(&ds, root, -1, msg, sizeof msg), 0), "%s", msg);
    cr_expect(eq(sz, ds.n_clips, 12));
    cr_expect(eq(sz, dataset_split(&ds, DS_VAL, -1, NULL), 2));
    cr_expect(eq(sz, dataset_split(&ds, DS_TEST, -1, NULL), 2));
    cr_expect(eq(sz, dataset_split(&ds, DS_TRAIN, -1, NULL), 8));
    cr_expect(eq(int, ds.sil_class, 2));
    cr_expect(eq(sz, ds.n_noise, 3), "training-split silence clips become noise");
    /* clips are sorted by name inside each label: yes/a0 is first */
    cr_expect(eq(str, ds.clips[0].name, "yes/a0.wav"));
    /* the tone of yes/a0 spans 300..700 ms: boundaries within one 10 ms frame */
    cr_expect(le(int, abs(ds.clips[0].on - 300 * 16), 160));
    cr_expect(le(int, abs(ds.clips[0].off - 700 * 16), 160));
    dataset_free(&ds);
}

/* The tiny data set under root and a default front end to render it. */
static void open_set(struct dataset *ds, struct kws_frontend_cfg *fc, struct audio_fe *fe) {
    char msg[256];
    cr_assert(eq(int, dataset_init(ds, labels, 3, 16000), 0));
    cr_assert(eq(int, dataset_load(ds, root, -1, msg, sizeof msg), 0), "%s", msg);
    audio_fe_cfg_default(fc);
    cr_assert(eq(int, audio_fe_init(fe, fc), 0));
}

Test(train_dataset, render_marks_and_determinism) {
    struct dataset ds;
    struct kws_frontend_cfg fc;
    struct audio_fe fe = {0};
    open_set(&ds, &fc, &fe);
    int T = 100, n_out = fe.n_out;
    float *a = malloc((size_t)T * n_out * sizeof *a), *b = malloc((size_t)T * n_out * sizeof *b);
    float bg[100], bg2[100];
    struct ds_aug aug;
    dataset_aug_none(&aug);
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 1, &fe, T, a, bg), 0));
    /* centred 400 ms word: background before ~30, word 30..70, tail 70..100 */
    cr_expect(eq(flt, bg[0], 1.0f));
    cr_expect(eq(flt, bg[50], 0.0f));
    cr_expect(eq(flt, bg[75], -1.0f));
    int n_tail = 0;
    for (int t = 0; t < T; t++)
        n_tail += bg[t] < 0.0f;
    cr_expect(ge(int, n_tail, 25));
    /* a silence clip is background everywhere */
    size_t sil = 8; /* _silence_/n0.wav */
    cr_assert(eq(int, ds.clips[sil].label, 2));
    cr_assert(eq(int, dataset_render(&ds, sil, &aug, 1, &fe, T, b, bg2), 0));
    for (int t = 0; t < T; t++)
        cr_expect(eq(flt, bg2[t], 1.0f));
    /* augmented renders: same seed, same example; another seed, another one */
    dataset_aug_default(&aug);
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 42, &fe, T, a, bg), 0));
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 42, &fe, T, b, bg2), 0));
    cr_expect(eq(int, memcmp(a, b, (size_t)T * n_out * sizeof *a), 0));
    cr_expect(eq(int, memcmp(bg, bg2, sizeof bg), 0));
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 43, &fe, T, b, bg2), 0));
    cr_expect(not(eq(int, memcmp(a, b, (size_t)T * n_out * sizeof *a), 0)));
    /* a spectral tilt changes the example, the same seed still gives the same one */
    aug.tilt = 0.9f;
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 42, &fe, T, b, bg2), 0));
    cr_expect(not(eq(int, memcmp(a, b, (size_t)T * n_out * sizeof *a), 0)));
    cr_expect(eq(int, memcmp(bg, bg2, sizeof bg), 0), "the tilt moves no word boundary");
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 42, &fe, T, a, bg), 0));
    cr_expect(eq(int, memcmp(a, b, (size_t)T * n_out * sizeof *a), 0));
    /* white hiss: a different example, the same marks, and the same seed
     * gives the same hiss; a silence example gets it too */
    aug.tilt = 0.0f;
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 42, &fe, T, a, bg), 0));
    aug.floor_p = 1.0f;
    aug.floor_db_lo = aug.floor_db_hi = -40.0f;
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 42, &fe, T, b, bg2), 0));
    cr_expect(not(eq(int, memcmp(a, b, (size_t)T * n_out * sizeof *a), 0)));
    cr_expect(eq(int, memcmp(bg, bg2, sizeof bg), 0), "the hiss moves no word boundary");
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 42, &fe, T, a, bg), 0));
    cr_expect(eq(int, memcmp(a, b, (size_t)T * n_out * sizeof *a), 0));
    cr_assert(eq(int, dataset_render(&ds, sil, &aug, 42, &fe, T, b, bg2), 0));
    aug.floor_p = 0.0f;
    cr_assert(eq(int, dataset_render(&ds, sil, &aug, 42, &fe, T, a, bg), 0));
    cr_expect(not(eq(int, memcmp(a, b, (size_t)T * n_out * sizeof *a), 0)));
    /* a muted onset: fewer spikes in the word's first frames, same marks */
    dataset_aug_none(&aug);
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 5, &fe, T, a, bg), 0));
    aug.trim_ms = 200.0f;
    int trimmed = 0;
    for (uint64_t seed = 1; seed < 40 && !trimmed; seed++) {
        cr_assert(eq(int, dataset_render(&ds, 0, &aug, seed, &fe, T, b, bg2), 0));
        cr_expect(eq(int, memcmp(bg, bg2, sizeof bg), 0));
        double sa = 0.0, sb = 0.0;
        for (int i = 30 * n_out; i < 40 * n_out; i++) {
            sa += a[i];
            sb += b[i];
        }
        trimmed = sb < sa;
    }
    cr_expect(trimmed, "some seed mutes the onset (word frames 30..40)");
    free(a);
    free(b);
    audio_fe_free(&fe);
    dataset_free(&ds);
}

/* SpecAugment masks: the masked render is the plain one (same seed) with whole
 * mel bands (every level) and whole frames set to no spikes, nothing else. */
Test(train_dataset, render_spike_masks) {
    struct dataset ds;
    struct kws_frontend_cfg fc;
    struct audio_fe fe = {0};
    open_set(&ds, &fc, &fe);
    int T = 100, F = fc.n_mels, L = fc.enc_levels, n_out = fe.n_out;
    float *a = malloc((size_t)T * n_out * sizeof *a), *b = malloc((size_t)T * n_out * sizeof *b);
    float bg[100], bg2[100];
    struct ds_aug aug;
    dataset_aug_default(&aug);
    int masked_bands = 0, masked_frames = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        aug.fmask_n = aug.tmask_n = 0;
        cr_assert(eq(int, dataset_render(&ds, 0, &aug, seed, &fe, T, a, bg), 0));
        aug.fmask_n = 2;
        aug.fmask_w = 6;
        aug.tmask_n = 2;
        aug.tmask_w = 10;
        cr_assert(eq(int, dataset_render(&ds, 0, &aug, seed, &fe, T, b, bg2), 0));
        cr_expect(eq(int, memcmp(bg, bg2, sizeof bg), 0), "masks move no word boundary");
        int band_zero[64] = {0}, frame_zero[100] = {0};
        for (int f = 0; f < F; f++) {
            double s = 0.0;
            for (int t = 0; t < T; t++)
                for (int k = 0; k < L; k++)
                    s += b[((size_t)t * F + f) * L + k];
            band_zero[f] = s == 0.0;
        }
        for (int t = 0; t < T; t++) {
            double s = 0.0;
            for (int i = 0; i < n_out; i++)
                s += b[(size_t)t * n_out + i];
            frame_zero[t] = s == 0.0;
        }
        for (int t = 0; t < T; t++)
            for (int f = 0; f < F; f++)
                for (int k = 0; k < L; k++) {
                    size_t i = ((size_t)t * F + f) * L + k;
                    if (a[i] != b[i]) {
                        cr_expect(eq(flt, b[i], 0.0f));
                        cr_expect(band_zero[f] || frame_zero[t], "spike %d,%d,%d changed", t, f, k);
                        masked_bands += band_zero[f] && !frame_zero[t];
                        masked_frames += frame_zero[t] && !band_zero[f];
                    }
                }
    }
    cr_expect(gt(int, masked_bands, 0), "some band mask removed spikes");
    cr_expect(gt(int, masked_frames, 0), "some frame mask removed spikes");
    free(a);
    free(b);
    audio_fe_free(&fe);
    dataset_free(&ds);
}

/* With context, the word sits in the last T - ctx frames and another word
 * ends in the context: its frames are neither background nor tail. */
Test(train_dataset, render_with_context_word) {
    struct dataset ds;
    struct kws_frontend_cfg fc;
    struct audio_fe fe = {0};
    open_set(&ds, &fc, &fe);
    enum { CTX = 60, T = 160 };
    float *a = malloc((size_t)T * fe.n_out * sizeof *a);
    float bg[T];
    struct ds_aug aug;
    dataset_aug_none(&aug);
    aug.ctx_frames = CTX;
    aug.p_ctx_word = 1.0f;
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 7, &fe, T, a, bg), 0));
    /* main word centred in 60..160: word ~90..130, tail from ~130 */
    cr_expect(eq(flt, bg[110], 0.0f));
    cr_expect(eq(flt, bg[135], -1.0f));
    int ctx_word = 0, tail_in_ctx = 0;
    for (int t = 0; t < CTX; t++) {
        ctx_word += bg[t] == 0.0f;
        tail_in_ctx += bg[t] < 0.0f;
    }
    cr_expect(ge(int, ctx_word, 40), "a 400 ms context word plus its hold: %d frames", ctx_word);
    cr_expect(eq(int, tail_in_ctx, 0), "only the main word has a tail");
    /* spikes in the context: the other word is really there */
    double on_ctx = 0.0;
    for (int i = 0; i < CTX * fe.n_out; i++)
        on_ctx += a[i];
    cr_expect(gt(dbl, on_ctx, 0.0));
    /* a cold start: nothing at all before the word's own clip */
    aug.p_ctx_cold = 1.0f;
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 7, &fe, T, a, bg), 0));
    double cold = 0.0;
    for (int i = 0; i < CTX * fe.n_out; i++)
        cold += a[i];
    cr_expect(eq(dbl, cold, 0.0), "no spikes in a silent context");
    for (int t = 0; t < CTX; t++)
        cr_expect(eq(flt, bg[t], 1.0f), "frame %d", t);
    aug.p_ctx_cold = 0.0f;
    /* with no context word, the context is background (silence target) */
    aug.p_ctx_word = 0.0f;
    cr_assert(eq(int, dataset_render(&ds, 0, &aug, 7, &fe, T, a, bg), 0));
    for (int t = 0; t < CTX; t++)
        cr_expect(eq(flt, bg[t], 1.0f), "frame %d", t);
    free(a);
    audio_fe_free(&fe);
    dataset_free(&ds);
}

Test(train_dataset, missing_root) {
    struct dataset ds;
    char msg[256] = "";
    cr_assert(eq(int, dataset_init(&ds, labels, 3, 16000), 0));
    cr_expect(lt(int, dataset_load(&ds, "/nonexistent/kws", -1, msg, sizeof msg), 0));
    cr_expect(not(eq(str, msg, "")));
    dataset_free(&ds);
}

/* ==== Streaming metrics (kws/stream_eval.h) ==== */

/* The fixture data set and a small one-layer conv network over the default
 * front end, all weights zero (snn_model_prepare is the caller's). */
static void stream_fixture(struct dataset *ds, struct snn_cfg *cfg, struct snn_model *m) {
    char msg[256];
    cr_assert(eq(int, dataset_init(ds, labels, 3, 16000), 0));
    cr_assert(eq(int, dataset_load(ds, root, -1, msg, sizeof msg), 0), "%s", msg);
    memset(cfg, 0, sizeof *cfg);
    audio_fe_cfg_default(&cfg->fe);
    cfg->n_in = audio_fe_n_out(&cfg->fe);
    cfg->n_layers = 1;
    cfg->layer[0] = (struct snn_layer_cfg){8, SNN_REC_CONV, 3, 4, 0.5f, 1.0f, 1.0f, 0, 0, 0};
    cfg->n_classes = 3;
    cfg->out_beta = 0.5f;
    cfg->out_gain = 1.0f;
    for (int i = 0; i < 3; i++)
        strcpy(cfg->labels[i], labels[i]);
    memset(m, 0, sizeof *m);
    cr_assert(eq(int, snn_model_init(m, cfg), 0));
}

/* The recording holds every word of the split once, in order, between the
 * split's silence clips; the network runs over all of it. */
Test(train_dataset, stream_recording_layout) {
    struct dataset ds;
    struct snn_cfg cfg;
    struct snn_model m;
    stream_fixture(&ds, &cfg, &m); /* zero weights: flat posteriors */
    snn_model_prepare(&m);
    size_t idx[16];
    size_t n = dataset_split(&ds, -1, -1, idx);
    struct stream_eval se;
    cr_assert(eq(int, stream_eval_run(&se, &m, &ds, idx, n, 1, 1.0f), 0));
    cr_expect(eq(sz, se.n_word, 8), "8 words, the 4 silence clips fill the gaps");
    for (size_t w = 0; w < se.n_word; w++) {
        cr_expect(lt(i64, se.on[w], se.off[w]));
        if (w)
            cr_expect(ge(i64, se.on[w] - se.off[w - 1], 8000), "gaps of at least 0.5 s");
    }
    cr_expect(le(dbl, fabs((double)se.nf - se.hours * 3600.0 * 100.0), 3.0), "one frame per 10 ms");
    struct stream_result r;
    cr_assert(eq(int, stream_eval_score(&se, &cfg, 0.5f, 300, 1000, &r), 0));
    cr_expect(eq(int, r.n_kw, 8));
    cr_expect(eq(int, r.hits + r.false_alarms, 0), "flat posteriors (1/3) never reach 0.5");
    stream_eval_free(&se);
    /* a split without words has nothing to score */
    size_t sil[4];
    size_t ns = 0;
    for (size_t i = 0; i < n; i++)
        if (ds.clips[idx[i]].label == ds.sil_class)
            sil[ns++] = idx[i];
    cr_expect(eq(int, stream_eval_run(&se, &m, &ds, sil, ns, 1, 1.0f), KWS_EDATASET));
    snn_model_free(&m);
    dataset_free(&ds);
}

/* Passes: the first is the one-pass recording, potentials and all; each
 * later one says the same words again in a shuffled order, after new gaps. */
Test(train_dataset, stream_passes) {
    struct dataset ds;
    struct snn_cfg cfg;
    struct snn_model m;
    stream_fixture(&ds, &cfg, &m);
    /* weights that make the potentials follow the input */
    for (size_t i = 0; i < m.n_params; i++)
        m.mem[i] = 0.5f * (float)((i * 7919u) % 13u) / 13.0f - 0.1f;
    snn_model_prepare(&m);
    size_t idx[16];
    size_t n = dataset_split(&ds, -1, -1, idx);
    struct stream_eval one, three;
    cr_assert(eq(int, stream_eval_run(&one, &m, &ds, idx, n, 3, 1.0f), 0));
    cr_assert(eq(int, stream_eval_run_passes(&three, &m, &ds, idx, n, 3, 1.0f, 3), 0));
    size_t nw = one.n_word;
    cr_assert(eq(sz, three.n_word, 3 * nw));
    cr_expect(gt(dbl, three.hours, 2.5 * one.hours));
    cr_expect(le(dbl, fabs((double)three.nf - three.hours * 3600.0 * 100.0), 3.0));
    int pass0_same = 1;
    for (size_t w = 0; w < nw; w++)
        pass0_same &=
            three.on[w] == one.on[w] && three.off[w] == one.off[w] && three.lab[w] == one.lab[w];
    cr_expect(pass0_same, "pass 0 is the one-pass recording");
    /* its potentials too, up to the last word's end */
    size_t f_end = (size_t)one.off[nw - 1] / (size_t)one.hop;
    double nz = 0.0;
    for (size_t i = 0; i < f_end * 3; i++)
        nz += fabs(one.v[i]);
    cr_assert(gt(dbl, nz, 0.0), "the test network must move its potentials");
    cr_expect(eq(int, memcmp(one.v, three.v, f_end * 3 * sizeof(float)), 0));
    int ordered = 1, shuffled = 0;
    for (size_t w = 1; w < 3 * nw; w++)
        ordered &= three.on[w] - three.off[w - 1] >= 8000;
    cr_expect(ordered, "words in time order, 0.5 s apart or more");
    for (int p = 1; p < 3; p++) {
        int count[3] = {0};
        for (size_t w = 0; w < nw; w++) {
            count[three.lab[w]]++;
            count[three.lab[p * nw + w]]--;
            shuffled |= three.lab[p * nw + w] != three.lab[w];
        }
        cr_expect(eq(int, count[0] | count[1] | count[2], 0), "pass %d: the same words", p);
    }
    cr_expect(shuffled, "later passes in another order");
    stream_eval_free(&one);
    stream_eval_free(&three);
    cr_expect(eq(int, stream_eval_run_passes(&three, &m, &ds, idx, n, 1, 1.0f, 0), KWS_EBADFIELD));
    cr_expect(eq(
        int, stream_eval_run_passes(&three, &m, &ds, idx, n, 1, 1.0f, STREAM_EVAL_MAX_PASSES + 1),
        KWS_EBADFIELD));
    snn_model_free(&m);
    dataset_free(&ds);
}

/* Hits, false alarms, latency and the calibrated threshold on potentials
 * written by hand: silence has posterior 0.91 throughout, except that "yes"
 * is spoken at 1.0-1.5 s and its posterior is ~1 for 400 ms after, and "no"
 * reaches 0.47 at 5 s with no word there. */
Test(train_dataset, stream_scoring_and_calibration) {
    struct snn_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_classes = 3;
    for (int i = 0; i < 3; i++)
        strcpy(cfg.labels[i], labels[i]);
    enum { NF = 1000 };
    static float v[NF * 3];
    memset(v, 0, sizeof v);
    for (int t = 0; t < NF; t++)
        v[t * 3 + 2] = 3.0f;
    for (int t = 150; t < 190; t++)
        v[t * 3 + 0] = 12.0f;
    for (int t = 500; t < 560; t++)
        v[t * 3 + 1] = logf(0.47f * (1.0f + expf(3.0f)) / 0.53f); /* softmax 0.47 */
    int64_t on = 100 * 160, off = 150 * 160;
    int lab = 0;
    struct stream_eval se = {.v = v,
                             .nf = NF,
                             .n_classes = 3,
                             .rate = 16000,
                             .hop = 160,
                             .n_word = 1,
                             .on = &on,
                             .off = &off,
                             .lab = &lab,
                             .hours = 10.0 / 3600.0};
    struct stream_result r;
    cr_assert(eq(int, stream_eval_score(&se, &cfg, 0.4f, 300, 1000, &r), 0));
    cr_expect(eq(int, r.hits, 1));
    cr_expect(eq(int, r.false_alarms, 1));
    cr_expect(eq(int, r.fa_unknown + r.fa_keyword, 0), "the false alarm falls in the noise");
    cr_expect(eq(int, r.kw_fa[1], 1), "and is \"no\"'s");
    cr_expect(eq(int, r.kw_fa[0] + r.kw_fa[2], 0));
    cr_assert(eq(int, stream_eval_score(&se, &cfg, 0.6f, 300, 1000, &r), 0));
    cr_expect(eq(int, r.hits, 1));
    cr_expect(eq(int, r.false_alarms, 0));
    /* a 300 ms mean of ~1 passes 0.6 after 180 ms */
    cr_expect(ge(dbl, r.lat_p50_ms, 150.0));
    cr_expect(le(dbl, r.lat_p50_ms, 200.0));
    cr_expect(gt(dbl, r.peak_p50, 0.99));
    /* no false alarm allowed: the lowest grid threshold above 0.47 */
    float t = stream_eval_calibrate(&se, &cfg, 300, 1000, 0.0, &r);
    cr_expect(eq(flt, t, 0.20f + 0.05f * 6.0f));
    cr_expect(eq(int, r.hits, 1));
    cr_expect(eq(int, r.false_alarms, 0));
    /* one false alarm in 10 s is 360 per hour: allowed, the grid's lowest threshold */
    t = stream_eval_calibrate(&se, &cfg, 300, 1000, 400.0, &r);
    cr_expect(eq(flt, t, 0.20f));
    /* the same event during a non-keyword word is a false alarm in an unknown word */
    lab = 2;
    cr_assert(eq(int, stream_eval_score(&se, &cfg, 0.6f, 300, 1000, &r), 0));
    cr_expect(eq(int, r.n_kw, 0));
    cr_expect(eq(int, r.false_alarms, 1));
    cr_expect(eq(int, r.fa_unknown, 1));
    cr_expect(eq(int, r.fa_keyword, 0));
}

/* ==== Negatives and stream windows ==== */

static const char *const labels4[] = {"yes", "no", "_silence_", "_unknown_"};

/* root/neg: two negative "words" of two clips each, w2 named a validation word. */
static void write_negatives(void) {
    const char *words[] = {"w1", "w2"};
    kt_sh("mkdir -p '%s/neg/w1' '%s/neg/w2'", root, root);
    for (int w = 0; w < 2; w++) {
        for (int i = 0; i < 2; i++) {
            char rel[64];
            snprintf(rel, sizeof rel, "neg/%s/c%d.wav", words[w], i);
            write_clip(rel, 900.0f + 100.0f * w + 10.0f * i, 100, 0);
        }
    }
    kt_write_file(kt_path(root, "neg/validation_list.txt"), "w2/c0.wav\nw2/c1.wav\n");
}

Test(train_dataset, negatives_by_word) {
    write_negatives();
    struct dataset ds;
    char msg[256], neg[600];
    snprintf(neg, sizeof neg, "%s/neg", root);
    cr_assert(eq(int, dataset_init(&ds, labels, 3, 16000), 0));
    cr_expect(eq(int, dataset_load_negatives(&ds, neg, -1, msg, sizeof msg), KWS_EBADFIELD),
              "negatives need an _unknown_ class");
    dataset_free(&ds);
    cr_assert(eq(int, dataset_init(&ds, labels4, 4, 16000), 0));
    cr_assert(eq(int, dataset_load(&ds, root, -1, msg, sizeof msg), 0), "%s", msg);
    size_t first = ds.n_clips;
    cr_assert(eq(int, dataset_load_negatives(&ds, neg, -1, msg, sizeof msg), 0), "%s", msg);
    cr_expect(eq(sz, ds.n_clips - first, 4));
    for (size_t i = first; i < ds.n_clips; i++) {
        const struct ds_clip *c = &ds.clips[i];
        cr_expect(eq(int, c->label, 3));
        cr_expect(eq(int, c->negative, 1));
        cr_expect(eq(int, c->split, strncmp(c->name, "w2/", 3) ? DS_TRAIN : DS_VAL), "%s", c->name);
        cr_expect(le(int, abs(c->on - 100 * 16), 160), "%s: the phrase is found", c->name);
    }
    snprintf(neg, sizeof neg, "%s/none", root);
    cr_expect(eq(int, dataset_load_negatives(&ds, neg, -1, msg, sizeof msg), -ENOENT));
    dataset_free(&ds);
}

/* A stream window: no targets in the lead, filler elsewhere, and for every
 * keyword in full view a peak region of its class (one run per keyword),
 * preceded by in-word frames; the same seed and stream give the same window. */
Test(train_dataset, stream_window_targets) {
    write_negatives();
    struct dataset ds;
    struct kws_frontend_cfg fc;
    struct audio_fe fe;
    char msg[256], neg[600];
    snprintf(neg, sizeof neg, "%s/neg", root);
    cr_assert(eq(int, dataset_init(&ds, labels4, 4, 16000), 0));
    cr_assert(eq(int, dataset_load(&ds, root, -1, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(int, dataset_load_negatives(&ds, neg, -1, msg, sizeof msg), 0), "%s", msg);
    audio_fe_cfg_default(&fc);
    cr_assert(eq(int, audio_fe_init(&fe, &fc), 0));
    size_t kw[8], negs[4];
    size_t n_kw = 0, n_neg = 0;
    for (size_t i = 0; i < ds.n_clips; i++) {
        const struct ds_clip *c = &ds.clips[i];
        if (c->split != DS_TRAIN)
            continue;
        if (c->negative)
            negs[n_neg++] = i;
        else if (c->label < 2)
            kw[n_kw++] = i;
    }
    struct ds_window w;
    dataset_window_default(&w);
    w.kw = kw;
    w.n_kw = n_kw;
    w.neg = negs;
    w.n_neg = n_neg;
    struct ds_aug aug;
    dataset_aug_default(&aug);
    int T = w.T, F = fe.n_out, regions = 0, fills = 0;
    float *x = malloc((size_t)T * F * sizeof *x), *x2 = malloc((size_t)T * F * sizeof *x);
    int16_t *ft = malloc((size_t)T * sizeof *ft), *ft2 = malloc((size_t)T * sizeof *ft);
    for (uint64_t st = 0; st < 8; st++) {
        cr_assert(eq(int, dataset_render_window(&ds, &w, &aug, 7, st, &fe, x, ft), 0));
        for (int t = 0; t < w.lead; t++)
            cr_expect(eq(int, ft[t], TRAIN_FT_NONE));
        for (int t = w.lead; t < T; t++) {
            fills += ft[t] == TRAIN_FT_FILL;
            if (ft[t] >= 0 && (ft[t] & TRAIN_FT_PEAK) && (t == 0 || ft[t - 1] != ft[t])) {
                regions++;
                cr_expect(lt(int, ft[t] & 0xff, 2), "a keyword's class");
                cr_expect(eq(int, ft[t - 1], ft[t] & 0xff), "in-word frames before the peak");
            }
        }
        cr_assert(eq(int, dataset_render_window(&ds, &w, &aug, 7, st, &fe, x2, ft2), 0));
        cr_expect(eq(int, memcmp(x, x2, (size_t)T * F * sizeof *x), 0));
        cr_expect(eq(int, memcmp(ft, ft2, (size_t)T * sizeof *ft), 0));
    }
    cr_expect(gt(int, regions, 4), "keywords with peak regions in 8 windows");
    cr_expect(gt(int, fills, 8 * (T - w.lead) / 4), "mostly filler");
    w.n_kw = 0;
    cr_expect(eq(int, dataset_render_window(&ds, &w, &aug, 7, 0, &fe, x, ft), KWS_EDATASET));
    free(x);
    free(x2);
    free(ft);
    free(ft2);
    audio_fe_free(&fe);
    dataset_free(&ds);
}

/* Hard negatives: at threshold 0 every keyword score passes, so every clip
 * is hard; above 1 none is; the peaks are the same either way. */
Test(train_dataset, mine_hard_negatives) {
    write_negatives();
    struct dataset ds;
    char msg[256], neg[600];
    snprintf(neg, sizeof neg, "%s/neg", root);
    cr_assert(eq(int, dataset_init(&ds, labels4, 4, 16000), 0));
    cr_assert(eq(int, dataset_load_negatives(&ds, neg, -1, msg, sizeof msg), 0), "%s", msg);
    struct snn_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    audio_fe_cfg_default(&cfg.fe);
    cfg.n_in = audio_fe_n_out(&cfg.fe);
    cfg.n_layers = 1;
    cfg.layer[0] = (struct snn_layer_cfg){
        .n = 8, .rec = SNN_REC_NONE, .beta = 0.5f, .gain = 1.0f, .thresh = 1.0f};
    cfg.n_classes = 4;
    cfg.out_beta = 0.5f;
    cfg.out_gain = 1.0f;
    for (int c = 0; c < 4; c++)
        snprintf(cfg.labels[c], SNN_LABEL_LEN, "%s", labels4[c]);
    struct train_hparams hp;
    train_hparams_default(&hp);
    struct train_net net;
    struct snn_model m = {0};
    cr_assert(eq(int, train_net_init(&net, &cfg, &hp), 0));
    cr_assert(eq(int, train_net_export(&net, &m), 0));
    size_t idx[4] = {0, 1, 2, 3}, hard[4], n_hard = 99;
    float pk0[4], pk1[4];
    cr_assert(eq(int, dataset_mine(&m, &ds, idx, 4, 0.0f, 300, hard, &n_hard, pk0), 0));
    cr_expect(eq(sz, n_hard, 4));
    for (size_t i = 0; i < n_hard; i++)
        cr_expect(eq(sz, hard[i], i), "in the order given");
    cr_assert(eq(int, dataset_mine(&m, &ds, idx, 4, 1.0f, 300, hard, &n_hard, pk1), 0));
    cr_expect(eq(sz, n_hard, 0));
    for (int i = 0; i < 4; i++) {
        cr_expect(eq(flt, pk0[i], pk1[i]));
        cr_expect(gt(flt, pk0[i], 0.0f));
        cr_expect(le(flt, pk0[i], 1.0f));
    }
    snn_model_free(&m);
    train_net_free(&net);
    dataset_free(&ds);
}

/* test_train_stream.c: evaluation streams with negatives and background noise.
 *
 * Builds a tiny data set at test time (tone bursts as "yes" and "no", a
 * third tone as an unknown word, white noise as _silence_, and a folder of
 * two "negative phrases" split by word), then checks that
 * stream_eval_run_opts places the negatives between the words, that a
 * negatives-only recording holds no keyword, that added noise sits at the
 * asked SNR under each word, that an event during a negative counts as a
 * false alarm in a negative, and that one seed gives one recording.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kws/dataset.h"
#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/stream_eval.h"
#include "train_test.h"

static char root[] = "/tmp/kws-stream-XXXXXX";

#define RATE 16000
#define TWO_PI 6.28318530718f

/* root/rel as 16-bit WAV: n samples of faint noise (amplitude amp) with tone
 * bursts of freq Hz at amplitude 0.5: n_burst bursts of 400 ms, the first at
 * 200 ms, 1 s apart. */
static void write_clip(const char *rel, int n, float freq, int n_burst, float amp, uint32_t s) {
    float *x = malloc((size_t)n * sizeof *x);
    cr_assert(not(eq(ptr, x, NULL)));
    tt_clip(x, n, RATE, s, amp, freq, 200, n_burst);
    tt_write_wav(kt_path(root, rel), x, (size_t)n, RATE, TT_WAV16);
    free(x);
}

/* root/set: yes, no (3 clips each), _unknown_ (1), _silence_ (3), all of it
 * test data; root/neg: alpha (2 clips of 2 s, two bursts each: test) and
 * beta (1 clip of 3 s: validation). */
static void setup(void) {
    cr_assert(not(eq(ptr, mkdtemp(root), NULL)));
    kt_sh("cd '%s' && mkdir -p set/yes set/no set/_unknown_ set/_silence_ neg/alpha neg/beta",
          root);
    char rel[64];
    for (int i = 0; i < 3; i++) {
        snprintf(rel, sizeof rel, "set/yes/a%d.wav", i);
        write_clip(rel, RATE, 500.0f + 50.0f * i, 1, 0.002f, 11u + i);
        snprintf(rel, sizeof rel, "set/no/b%d.wav", i);
        write_clip(rel, RATE, 1500.0f + 50.0f * i, 1, 0.002f, 21u + i);
        snprintf(rel, sizeof rel, "set/_silence_/n%d.wav", i);
        write_clip(rel, RATE, 0.0f, 0, 0.2f, 31u + i);
    }
    write_clip("set/_unknown_/u0.wav", RATE, 3000.0f, 1, 0.002f, 41u);
    write_clip("neg/alpha/p0.wav", 2 * RATE, 700.0f, 2, 0.002f, 51u);
    write_clip("neg/alpha/p1.wav", 2 * RATE, 900.0f, 2, 0.002f, 52u);
    write_clip("neg/beta/q0.wav", 3 * RATE, 1100.0f, 2, 0.002f, 53u);
    kt_write_file(kt_path(root, "neg/testing_list.txt"), "alpha/p0.wav\nalpha/p1.wav\n");
    kt_write_file(kt_path(root, "neg/validation_list.txt"), "beta/q0.wav\n");
}

static void teardown(void) {
    tt_rmtree(root);
}

TestSuite(train_stream, .init = setup, .fini = teardown, .timeout = 60);

static const char *const labels[] = {"yes", "no", "_silence_", "_unknown_"};
enum { K = 4, UNK = 3 };

/* The test split: its words and silence in idx, its negatives in neg. */
struct split {
    size_t idx[16], n, neg[4], n_neg;
};

/* Loads root's set and negatives, and a one-layer conv network over the
 * default front end whose weights make the potentials follow the input. */
static void open_set(struct dataset *ds, struct snn_model *m, struct split *sp) {
    char msg[256];
    cr_assert(eq(int, dataset_init(ds, labels, K, RATE), 0));
    char p[512];
    snprintf(p, sizeof p, "%s/set", root);
    cr_assert(eq(int, dataset_load(ds, p, DS_TEST, msg, sizeof msg), 0), "%s", msg);
    snprintf(p, sizeof p, "%s/neg", root);
    cr_assert(eq(int, dataset_load_negatives(ds, p, -1, msg, sizeof msg), 0), "%s", msg);
    size_t all[16];
    size_t n = dataset_split(ds, DS_TEST, -1, all);
    sp->n = sp->n_neg = 0;
    for (size_t i = 0; i < n; i++)
        if (ds->clips[all[i]].negative)
            sp->neg[sp->n_neg++] = all[i];
        else
            sp->idx[sp->n++] = all[i];
    cr_assert(eq(sz, sp->n, 10), "3 yes, 3 no, 1 unknown, 3 silence");
    cr_assert(eq(sz, sp->n_neg, 2), "the test split holds alpha's two clips, not beta's");

    struct snn_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    audio_fe_cfg_default(&cfg.fe);
    cfg.n_in = audio_fe_n_out(&cfg.fe);
    cfg.n_layers = 1;
    cfg.layer[0] = (struct snn_layer_cfg){.n = 8,
                                          .rec = SNN_REC_CONV,
                                          .k = 3,
                                          .d_max = 4,
                                          .beta = 0.5f,
                                          .gain = 1.0f,
                                          .thresh = 1.0f};
    cfg.n_classes = K;
    cfg.out_beta = 0.5f;
    cfg.out_gain = 1.0f;
    for (int i = 0; i < K; i++)
        strcpy(cfg.labels[i], labels[i]);
    memset(m, 0, sizeof *m);
    cr_assert(eq(int, snn_model_init(m, &cfg), 0));
    for (size_t i = 0; i < m->n_params; i++)
        m->mem[i] = 0.5f * (float)((i * 7919u) % 13u) / 13.0f - 0.1f;
    snn_model_prepare(m);
}

/* Collects the recording's audio, piece by piece, into one buffer. */
struct audio_log {
    float *x;
    size_t n, cap;
    int passes; /* passes heard */
};

static void keep_audio(void *ctx, int pass, const float *x, size_t n, size_t total) {
    struct audio_log *a = ctx;
    cr_assert(pass == a->passes - 1 || pass == a->passes, "passes come in order");
    cr_assert(le(sz, a->n + n, total), "no piece beyond the recording's length");
    a->passes = pass + 1;
    if (a->n + n > a->cap) {
        a->cap = (a->n + n) * 2;
        a->x = realloc(a->x, a->cap * sizeof *a->x);
        cr_assert(not(eq(ptr, a->x, NULL)));
    }
    memcpy(a->x + a->n, x, n * sizeof *x);
    a->n += n;
}

static double rms(const float *x, size_t n) {
    double e = 0.0;
    for (size_t i = 0; i < n; i++)
        e += (double)x[i] * x[i];
    return n ? sqrt(e / (double)n) : 0.0;
}

/* ==== Negatives between the words ==== */

/* Each pass says both negatives once, each after its own 0.5-2 s gap, among
 * the words; the words keep their order, and the recording grows by the
 * negatives and their gaps. */
Test(train_stream, negatives_between_words) {
    struct dataset ds;
    struct snn_model m;
    struct split sp;
    open_set(&ds, &m, &sp);
    int P = 3;
    struct stream_eval_opts o = stream_eval_opts_default();
    o.passes = P;
    struct audio_log plain = {0}, with = {0};
    o.on_audio = keep_audio;
    o.ctx = &plain;
    struct stream_eval a, b;
    cr_assert(eq(int, stream_eval_run_opts(&a, &m, &ds, sp.idx, sp.n, &o), 0));
    o.neg = sp.neg;
    o.n_neg = sp.n_neg;
    o.ctx = &with;
    cr_assert(eq(int, stream_eval_run_opts(&b, &m, &ds, sp.idx, sp.n, &o), 0));
    size_t nw = a.n_word / (size_t)P;
    cr_assert(eq(sz, nw, 7), "3 yes, 3 no, 1 unknown word per pass");
    cr_assert(eq(sz, b.n_word, a.n_word + (size_t)P * sp.n_neg));
    cr_expect(eq(int, plain.passes, P));
    cr_expect(eq(int, with.passes, P));

    /* the words, in the same order; the negatives marked, each once a pass */
    size_t w = 0, negs = 0, inside = 0;
    int64_t neg_len = 0;
    for (size_t k = 0; k < b.n_word; k++) {
        if (k)
            cr_expect(ge(i64, b.on[k] - b.off[k - 1], RATE / 2), "in time order, 0.5 s apart");
        if (b.neg[k]) {
            cr_expect(eq(int, b.lab[k], UNK), "a negative is an unknown word");
            negs++;
            inside += k > 0 && k + 1 < b.n_word && !b.neg[k - 1] && !b.neg[k + 1];
            continue;
        }
        cr_expect(eq(int, b.lab[k], a.lab[w]), "word %zu keeps its place in the order", w);
        cr_expect(eq(u8, a.neg[w], 0));
        w++;
    }
    cr_expect(eq(sz, w, a.n_word));
    cr_expect(eq(sz, negs, (size_t)P * sp.n_neg));
    cr_expect(gt(sz, inside, 0), "some negative has a word on either side");
    for (size_t j = 0; j < sp.n_neg; j++)
        neg_len += ds.clips[sp.neg[j]].n;
    neg_len *= P;

    /* longer by the negatives and their gaps of 0.5-2 s */
    cr_expect(eq(sz, plain.n, (size_t)llround(a.hours * 3600.0 * RATE)));
    cr_expect(eq(sz, with.n, (size_t)llround(b.hours * 3600.0 * RATE)));
    int64_t grown = (int64_t)with.n - (int64_t)plain.n;
    cr_expect(ge(i64, grown, neg_len + (int64_t)negs * RATE / 2));
    cr_expect(lt(i64, grown, neg_len + (int64_t)negs * 2 * RATE));
    cr_expect(le(dbl, fabs((double)b.nf - b.hours * 3600.0 * 100.0), 3.0), "one frame per 10 ms");

    /* the keywords to find are the words' alone */
    struct stream_result r;
    cr_assert(eq(int, stream_eval_score(&b, &m.cfg, 0.99f, 300, 1000, &r), 0));
    cr_expect(eq(int, r.n_kw, 6 * P), "negatives are no keywords");
    stream_eval_free(&a);
    stream_eval_free(&b);
    free(plain.x);
    free(with.x);
    snn_model_free(&m);
    dataset_free(&ds);
}

/* An event during a negative phrase is a false alarm in a negative; the same
 * event during a plain unknown word is one in an unknown word. Potentials
 * written by hand: silence 0.91 throughout, "no" reaching 0.8 at 1.5-2 s,
 * while a negative phrase is said from 1.0 to 2.4 s. */
Test(train_stream, false_alarm_in_a_negative) {
    struct snn_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_classes = K;
    for (int i = 0; i < K; i++)
        strcpy(cfg.labels[i], labels[i]);
    enum { NF = 600 };
    static float v[NF * K];
    memset(v, 0, sizeof v);
    for (int t = 0; t < NF; t++)
        v[t * K + 2] = 3.0f;
    for (int t = 150; t < 200; t++)
        v[t * K + 1] = 6.0f;
    int64_t on = 100 * 160, off = 240 * 160;
    int lab = UNK;
    uint8_t neg = 1;
    struct stream_eval se = {.v = v,
                             .nf = NF,
                             .n_classes = K,
                             .rate = RATE,
                             .hop = 160,
                             .n_word = 1,
                             .on = &on,
                             .off = &off,
                             .lab = &lab,
                             .neg = &neg,
                             .hours = 6.0 / 3600.0};
    struct stream_result r;
    cr_assert(eq(int, stream_eval_score(&se, &cfg, 0.8f, 300, 1000, &r), 0));
    cr_expect(eq(int, r.n_kw, 0));
    cr_expect(eq(int, r.false_alarms, 1));
    cr_expect(eq(int, r.fa_negative, 1));
    cr_expect(eq(int, r.fa_unknown + r.fa_keyword, 0));
    cr_expect(eq(int, r.kw_fa[1], 1), "the label that fired");
    neg = 0;
    cr_assert(eq(int, stream_eval_score(&se, &cfg, 0.8f, 300, 1000, &r), 0));
    cr_expect(eq(int, r.fa_negative, 0));
    cr_expect(eq(int, r.fa_unknown, 1));
    se.neg = NULL;
    cr_assert(eq(int, stream_eval_score(&se, &cfg, 0.8f, 300, 1000, &r), 0));
    cr_expect(eq(int, r.fa_unknown, 1), "no flags: no negatives");
}

/* ==== A recording of negatives alone ==== */

Test(train_stream, negatives_only) {
    struct dataset ds;
    struct snn_model m;
    struct split sp;
    open_set(&ds, &m, &sp);
    struct stream_eval_opts o = stream_eval_opts_default();
    o.neg = sp.neg;
    o.n_neg = sp.n_neg;
    o.neg_only = 1;
    o.passes = 2;
    o.min_hours = 0.0;
    struct stream_eval se;
    cr_assert(eq(int, stream_eval_run_opts(&se, &m, &ds, sp.idx, sp.n, &o), 0));
    cr_expect(eq(sz, se.n_word, 2 * sp.n_neg), "each negative once a pass, no word");
    for (size_t k = 0; k < se.n_word; k++) {
        cr_expect(eq(u8, se.neg[k], 1));
        cr_expect(eq(int, se.lab[k], UNK));
        if (k)
            cr_expect(ge(i64, se.on[k] - se.off[k - 1], RATE / 2));
    }
    struct stream_result r;
    cr_assert(eq(int, stream_eval_score(&se, &m.cfg, 0.2f, 300, 1000, &r), 0));
    cr_expect(eq(int, r.n_kw, 0), "nothing to find");
    cr_expect(eq(int, r.fa_unknown + r.fa_keyword, 0), "any event is in a negative or a gap");
    stream_eval_free(&se);

    /* too short for min_hours: more passes. Two 2 s clips with 1.25 s gaps
     * make 6.5 s a pass; 36 s take 6 passes */
    o.passes = 1;
    o.min_hours = 0.01;
    cr_assert(eq(int, stream_eval_run_opts(&se, &m, &ds, sp.idx, sp.n, &o), 0));
    cr_expect(eq(sz, se.n_word, 6 * sp.n_neg));
    cr_expect(gt(dbl, se.hours * 3600.0, 6 * (4.0 + 2 * 0.5)));
    stream_eval_free(&se);

    /* no negatives: nothing to say */
    o.n_neg = 0;
    cr_expect(eq(int, stream_eval_run_opts(&se, &m, &ds, sp.idx, sp.n, &o), KWS_EDATASET));
    snn_model_free(&m);
    dataset_free(&ds);
}

/* ==== Background noise ==== */

/* A 1 kHz tone of amplitude 0.3 as the only noise recording (RMS over
 * whole periods exactly 0.3 / sqrt 2), the gaps' silence muted: the noise
 * under each word, and in the first gap, has RMS rms(word) / 10^(snr/20). */
Test(train_stream, noise_at_the_snr) {
    struct dataset ds;
    struct snn_model m;
    struct split sp;
    open_set(&ds, &m, &sp);
    enum { NN = 24000 };
    static float tone[NN];
    for (int i = 0; i < NN; i++)
        tone[i] = 0.3f * sinf(TWO_PI * 1000.0f * (float)i / RATE);
    const float *noise[1] = {tone};
    int32_t noise_n[1] = {NN};
    struct stream_eval_opts o = stream_eval_opts_default();
    o.noise_gain = 0.0f;
    o.noise = noise;
    o.noise_n = noise_n;
    o.n_noise = 1;
    o.snr_lo = o.snr_hi = 10.0f;
    struct audio_log log = {0};
    o.on_audio = keep_audio;
    o.ctx = &log;
    struct stream_eval se;
    cr_assert(eq(int, stream_eval_run_opts(&se, &m, &ds, sp.idx, sp.n, &o), 0));
    /* pass 0 says the words in idx's order: the k-th word is the k-th
     * non-silence clip */
    size_t k = 0;
    float *diff = malloc(2 * RATE * sizeof *diff);
    cr_assert(not(eq(ptr, diff, NULL)));
    for (size_t i = 0; i < sp.n; i++) {
        const struct ds_clip *cl = &ds.clips[sp.idx[i]];
        if (cl->label == ds.sil_class)
            continue;
        size_t at = (size_t)(se.on[k] - cl->on);
        for (int32_t j = 0; j < cl->n; j++)
            diff[j] = log.x[at + (size_t)j] - cl->x[j];
        double word = rms(cl->x + cl->on, (size_t)(cl->off - cl->on));
        double want = word / pow(10.0, 10.0 / 20.0), got = rms(diff, (size_t)cl->n);
        cr_expect(le(dbl, fabs(got / want - 1.0), 0.02), "%s: noise RMS %.5f, want %.5f", cl->name,
                  got, want);
        if (k == 0) { /* the first gap is the first word's noise alone */
            double gap = rms(log.x, at);
            cr_expect(le(dbl, fabs(gap / want - 1.0), 0.02), "first gap %.5f, want %.5f", gap,
                      want);
        }
        k++;
    }
    cr_expect(eq(sz, k, se.n_word));
    stream_eval_free(&se);

    /* 10-20 dB: each word's noise within that range; the words where they
     * were without noise */
    struct stream_eval quiet;
    struct stream_eval_opts q = stream_eval_opts_default();
    cr_assert(eq(int, stream_eval_run_opts(&quiet, &m, &ds, sp.idx, sp.n, &q), 0));
    o.snr_hi = 20.0f;
    o.noise_gain = 0.0f;
    log.n = 0;
    log.passes = 0;
    cr_assert(eq(int, stream_eval_run_opts(&se, &m, &ds, sp.idx, sp.n, &o), 0));
    cr_expect(eq(int, memcmp(se.on, quiet.on, se.n_word * sizeof *se.on), 0));
    k = 0;
    double lo = 1e9, hi = -1e9;
    for (size_t i = 0; i < sp.n; i++) {
        const struct ds_clip *cl = &ds.clips[sp.idx[i]];
        if (cl->label == ds.sil_class)
            continue;
        size_t at = (size_t)(se.on[k++] - cl->on);
        for (int32_t j = 0; j < cl->n; j++)
            diff[j] = log.x[at + (size_t)j] - cl->x[j];
        double snr = 20.0 * log10(rms(cl->x + cl->on, (size_t)(cl->off - cl->on)) /
                                  rms(diff, (size_t)cl->n));
        lo = snr < lo ? snr : lo;
        hi = snr > hi ? snr : hi;
    }
    cr_expect(ge(dbl, lo, 9.8), "lowest SNR %.2f dB", lo);
    cr_expect(le(dbl, hi, 20.2), "highest SNR %.2f dB", hi);
    cr_expect(gt(dbl, hi - lo, 1.0), "drawn per word: %.2f..%.2f dB", lo, hi);
    stream_eval_free(&se);
    stream_eval_free(&quiet);

    /* a reversed range and a silent recording are refused */
    o.snr_lo = 20.0f;
    o.snr_hi = 10.0f;
    cr_expect(eq(int, stream_eval_run_opts(&se, &m, &ds, sp.idx, sp.n, &o), KWS_EBADFIELD));
    o.snr_lo = 10.0f;
    memset(tone, 0, sizeof tone);
    cr_expect(eq(int, stream_eval_run_opts(&se, &m, &ds, sp.idx, sp.n, &o), KWS_EDATASET));
    free(diff);
    free(log.x);
    snn_model_free(&m);
    dataset_free(&ds);
}

/* ==== Reproducibility ==== */

/* One seed, one recording: negatives, noise, passes and all; another seed
 * gives another. */
Test(train_stream, same_seed_same_potentials) {
    struct dataset ds;
    struct snn_model m;
    struct split sp;
    open_set(&ds, &m, &sp);
    enum { NN = 20000 };
    static float hiss[NN];
    uint32_t s = 7;
    for (int i = 0; i < NN; i++) {
        s = s * 1664525u + 1013904223u;
        hiss[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    const float *noise[1] = {hiss};
    int32_t noise_n[1] = {NN};
    struct stream_eval_opts o = stream_eval_opts_default();
    o.passes = 2;
    o.neg = sp.neg;
    o.n_neg = sp.n_neg;
    o.noise = noise;
    o.noise_n = noise_n;
    o.n_noise = 1;
    struct stream_eval a, b, c;
    cr_assert(eq(int, stream_eval_run_opts(&a, &m, &ds, sp.idx, sp.n, &o), 0));
    cr_assert(eq(int, stream_eval_run_opts(&b, &m, &ds, sp.idx, sp.n, &o), 0));
    cr_assert(eq(sz, a.nf, b.nf));
    cr_assert(eq(sz, a.n_word, b.n_word));
    double nz = 0.0;
    for (size_t i = 0; i < a.nf * K; i++)
        nz += fabs(a.v[i]);
    cr_assert(gt(dbl, nz, 0.0), "the test network must move its potentials");
    cr_expect(eq(int, memcmp(a.v, b.v, a.nf * K * sizeof *a.v), 0));
    cr_expect(eq(int, memcmp(a.on, b.on, a.n_word * sizeof *a.on), 0));
    cr_expect(eq(int, memcmp(a.neg, b.neg, a.n_word), 0));
    o.seed = 2;
    cr_assert(eq(int, stream_eval_run_opts(&c, &m, &ds, sp.idx, sp.n, &o), 0));
    cr_expect(c.nf != a.nf || memcmp(a.v, c.v, a.nf * K * sizeof *a.v) != 0,
              "another seed, another recording");
    stream_eval_free(&a);
    stream_eval_free(&b);
    stream_eval_free(&c);
    snn_model_free(&m);
    dataset_free(&ds);
}

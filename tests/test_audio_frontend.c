/* test_audio_frontend.c: the log-mel + PCEN front end and the spike encoders.
 *
 * Checks the settings validation, the framing contract (n samples -> n / hop
 * frames, independent of how the samples are split), the mel front end
 * against the numpy reference of tests/fixtures/audio/gen_frontend.py, that
 * a 1 kHz tone lands in the band centred nearest 1 kHz, PCEN's level
 * invariance on speech made by espeak-ng, and both encoders.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures/audio/audio_fixture.h"
#include "kws/audio_file.h"
#include "kws/err.h"
#include "kws/frontend.h"

/* ==== Settings ==== */

Test(audio_frontend, defaults) {
    struct kws_frontend_cfg c;
    char msg[128] = "";

    audio_fe_cfg_default(&c);
    cr_assert(eq(i32, c.sample_rate, 16000));
    cr_assert(eq(i32, c.win_len, 400));
    cr_assert(eq(i32, c.hop, 160));
    cr_assert(eq(i32, c.n_fft, 512));
    cr_assert(eq(i32, c.n_mels, 40));
    cr_assert(eq(i32, c.pcen, 1));
    cr_assert(eq(i32, c.enc_kind, KWS_ENC_LEVEL));
    cr_assert(eq(i32, c.enc_levels, 4));
    cr_assert(eq(int, audio_fe_n_out(&c), 160));
    cr_assert(eq(int, audio_fe_cfg_check(&c, msg, sizeof msg), 0), "%s", msg);
    for (int k = 1; k < c.enc_levels; k++)
        cr_assert(gt(flt, c.enc_thresh[k], c.enc_thresh[k - 1]), "thresholds increase");
    audio_fe_cfg_delta(&c);
    cr_assert(eq(int, audio_fe_cfg_check(&c, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(int, audio_fe_n_out(&c), 160));
}

struct bad_cfg {
    int field; /* which field to spoil */
    float value;
    char name[24]; /* expected start of the message */
};

enum {
    B_RATE,
    B_NFFT,
    B_WIN,
    B_HOP,
    B_MELS,
    B_FMAX,
    B_PCEN_S,
    B_KIND,
    B_LEVELS,
    B_DELTA_ODD,
    B_SCALE
};

ParameterizedTestParameters(audio_frontend, rejects_bad_settings) {
    static struct bad_cfg cases[] = {
        {B_RATE, 1000, "sample_rate:"}, {B_NFFT, 511, "n_fft:"},
        {B_WIN, 600, "win_len:"},       {B_HOP, 401, "hop:"},
        {B_MELS, 0, "n_mels:"},         {B_FMAX, 9000, "fmin/fmax:"},
        {B_PCEN_S, 0, "pcen_s:"},       {B_KIND, 7, "enc_kind:"},
        {B_LEVELS, 9, "enc_levels:"},   {B_DELTA_ODD, 3, "enc_levels:"},
        {B_SCALE, 0, "feat_scale:"},    {B_HOP, 170, "hop:"},
    };
    return cr_make_param_array(struct bad_cfg, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(struct bad_cfg *b, audio_frontend, rejects_bad_settings) {
    struct kws_frontend_cfg c;
    struct audio_fe fe;
    char msg[128] = "";

    audio_fe_cfg_default(&c);
    switch (b->field) {
    case B_RATE:
        c.sample_rate = (int32_t)b->value;
        break;
    case B_NFFT:
        c.n_fft = (int32_t)b->value;
        break;
    case B_WIN:
        c.win_len = (int32_t)b->value;
        break;
    case B_HOP:
        c.hop = (int32_t)b->value;
        break;
    case B_MELS:
        c.n_mels = (int32_t)b->value;
        break;
    case B_FMAX:
        c.fmax = b->value;
        break;
    case B_PCEN_S:
        c.pcen_s = b->value;
        break;
    case B_KIND:
        c.enc_kind = (int32_t)b->value;
        break;
    case B_LEVELS:
        c.enc_levels = (int32_t)b->value;
        break;
    case B_DELTA_ODD:
        c.enc_kind = KWS_ENC_DELTA;
        c.enc_levels = (int32_t)b->value;
        break;
    case B_SCALE:
        c.feat_scale = b->value;
        break;
    }
    cr_assert(eq(int, audio_fe_cfg_check(&c, msg, sizeof msg), KWS_EBADFIELD));
    cr_assert(eq(int, strncmp(msg, b->name, strlen(b->name)), 0), "message: %s", msg);
    memset(&fe, 0x5a, sizeof fe);
    cr_assert(eq(int, audio_fe_init(&fe, &c), KWS_EBADFIELD));
    cr_assert(eq(ptr, fe.plan, NULL), "a failed init leaves nothing to free");
    audio_fe_free(&fe);
    audio_fe_free(&fe);
}

/* ==== Framing ==== */

struct frames {
    size_t n, cap, F, S;
    float *feat, *spikes;
};

static void collect(void *ctx, const float *feat, const float *spikes) {
    struct frames *fr = ctx;
    if (fr->n < fr->cap) {
        memcpy(fr->feat + fr->n * fr->F, feat, fr->F * sizeof(float));
        memcpy(fr->spikes + fr->n * fr->S, spikes, fr->S * sizeof(float));
    }
    fr->n++;
}

static void frames_init(struct frames *fr, const struct audio_fe *fe, size_t cap) {
    fr->n = 0;
    fr->cap = cap;
    fr->F = (size_t)fe->cfg.n_mels;
    fr->S = (size_t)fe->n_out;
    fr->feat = calloc(cap * fr->F, sizeof(float));
    fr->spikes = calloc(cap * fr->S, sizeof(float));
    cr_assert(fr->feat && fr->spikes);
}

static void frames_free(struct frames *fr) {
    free(fr->feat);
    free(fr->spikes);
}

/* Deterministic noise plus a tone, at roughly speech level. */
static float *test_signal(size_t n, int rate) {
    float *x = malloc(n * sizeof(float));
    uint32_t s = 7;

    cr_assert(x != NULL);
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(0.1 * sin(2.0 * M_PI * 440.0 * (double)i / rate) *
                           (1.0 + sin(2.0 * M_PI * 3.0 * (double)i / rate)) +
                       0.02 * ((double)(s >> 8) / 16777216.0 - 0.5));
    }
    return x;
}

Test(audio_frontend, frames_do_not_depend_on_block_sizes) {
    struct kws_frontend_cfg c;
    struct audio_fe fe;
    struct frames whole, pieces;
    size_t n = 16000 + 77;
    float *x = test_signal(n, 16000);
    static const size_t sizes[] = {1, 7, 160, 1000, 33, 159, 161};

    audio_fe_cfg_default(&c);
    cr_assert(eq(int, audio_fe_init(&fe, &c), 0));
    frames_init(&whole, &fe, 200);
    frames_init(&pieces, &fe, 200);
    audio_fe_push(&fe, x, n, collect, &whole);
    cr_assert(eq(sz, whole.n, n / 160), "n samples give n / hop frames");
    cr_assert(eq(u64, fe.frames, (uint64_t)(n / 160)));

    audio_fe_reset(&fe);
    for (size_t off = 0, i = 0; off < n; i++) {
        size_t k = sizes[i % 7] < n - off ? sizes[i % 7] : n - off;
        audio_fe_push(&fe, x + off, k, collect, &pieces);
        off += k;
    }
    cr_assert(eq(sz, pieces.n, whole.n));
    cr_assert(eq(int, memcmp(whole.feat, pieces.feat, whole.n * whole.F * sizeof(float)), 0),
              "identical features, bit for bit");
    cr_assert(eq(int, memcmp(whole.spikes, pieces.spikes, whole.n * whole.S * sizeof(float)), 0));

    /* audio_fe_compute stores the same frames and counts beyond max_frames. */
    float *feat = calloc(whole.n * whole.F, sizeof(float));
    audio_fe_reset(&fe);
    cr_assert(eq(sz, audio_fe_compute(&fe, x, n, feat, NULL, 10), whole.n));
    cr_assert(eq(int, memcmp(feat, whole.feat, 10 * whole.F * sizeof(float)), 0));
    cr_assert(eq(flt, feat[10 * whole.F], 0.0f), "nothing stored past max_frames");
    free(feat);

    frames_free(&whole);
    frames_free(&pieces);
    audio_fe_free(&fe);
    free(x);
}

/* ==== Golden reference ==== */

/* Runs the chirp of chirp_frontend.bin through a front end with pcen on or
 * off and no standardisation, and compares with the numpy reference. */
static void check_chirp(int pcen) {
    size_t len = 0;
    unsigned char *buf = fixture_load("chirp_frontend.bin", &len);
    struct fx_reader r = {buf, len};
    int32_t magic, version, T, F, n;
    float *x, *logmel, *ref_pcen, *got;
    struct kws_frontend_cfg c;
    struct audio_fe fe;

    cr_assert(not(eq(ptr, buf, NULL)), "missing fixture chirp_frontend.bin");
    cr_assert(eq(int, fx_i32(&r, &magic), 0));
    fx_i32(&r, &version);
    fx_i32(&r, &T);
    fx_i32(&r, &F);
    cr_assert(eq(int, fx_i32(&r, &n), 0));
    cr_assert(eq(int, memcmp(&magic, "KWFE", 4), 0));
    cr_assert(eq(i32, version, 1));
    x = fx_f32(&r, (size_t)n);
    logmel = fx_f32(&r, (size_t)T * (size_t)F);
    ref_pcen = fx_f32(&r, (size_t)T * (size_t)F);
    cr_assert(x && logmel && ref_pcen, "fixture truncated");

    audio_fe_cfg_default(&c);
    c.pcen = pcen;
    c.feat_mean = 0.0f;
    c.feat_scale = 1.0f;
    cr_assert(eq(i32, F, c.n_mels));
    cr_assert(eq(int, audio_fe_init(&fe, &c), 0));
    got = calloc((size_t)T * (size_t)F, sizeof(float));
    cr_assert(eq(sz, audio_fe_compute(&fe, x, (size_t)n, got, NULL, (size_t)T), (size_t)T));
    if (pcen)
        cr_assert(eq(int, check_tensor(got, ref_pcen, (size_t)T * F, 2e-4f, 2e-4f, "pcen"), 0));
    else
        cr_assert(eq(int, check_tensor(got, logmel, (size_t)T * F, 2e-3f, 1e-4f, "logmel"), 0));
    free(got);
    audio_fe_free(&fe);
    free(x);
    free(logmel);
    free(ref_pcen);
    free(buf);
}

Test(audio_frontend, log_mel_matches_numpy_reference) {
    check_chirp(0);
}

Test(audio_frontend, pcen_matches_numpy_reference) {
    check_chirp(1);
}

Test(audio_frontend, tone_lands_in_its_band) {
    struct kws_frontend_cfg c;
    struct audio_fe fe;
    size_t n = 8000;
    float *x = malloc(n * sizeof(float));
    double mlo, mhi, best_d = 1e9;
    int want = -1, got = 0;

    audio_fe_cfg_default(&c);
    c.pcen = 0;
    c.feat_mean = 0.0f;
    c.feat_scale = 1.0f;
    cr_assert(eq(int, audio_fe_init(&fe, &c), 0));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.5 * sin(2.0 * M_PI * 1000.0 * (double)i / 16000.0));
    audio_fe_push(&fe, x, n, NULL, NULL);
    /* HTK mel centres: band f peaks at mel point f + 1 of n_mels + 2. */
    mlo = 2595.0 * log10(1.0 + c.fmin / 700.0);
    mhi = 2595.0 * log10(1.0 + c.fmax / 700.0);
    for (int f = 0; f < c.n_mels; f++) {
        double ce =
            700.0 * (pow(10.0, (mlo + (mhi - mlo) * (f + 1) / (c.n_mels + 1)) / 2595.0) - 1.0);
        if (fabs(ce - 1000.0) < best_d) {
            best_d = fabs(ce - 1000.0);
            want = f;
        }
        if (fe.feat[f] > fe.feat[got])
            got = f;
    }
    cr_assert(eq(int, got, want), "1 kHz peaks in band %d, expected %d", got, want);
    /* Bands two or more away hold far less energy (ln units). */
    cr_assert(gt(flt, fe.feat[want] - fe.feat[want + 3], 4.0f));
    cr_assert(gt(flt, fe.feat[want] - fe.feat[want - 3], 4.0f));
    audio_fe_free(&fe);
    free(x);
}

/* A loud tone that drops by 40 dB: the rising smoother (0.4 s) still holds
 * the loud level when the quiet part starts, so the quiet tone gives almost
 * no PCEN output for a second or more; with pcen_release 0.2 the smoother
 * follows the level down within a few frames. Before the drop the two agree
 * exactly, since the energy only rises or holds there. */
static float *tone_drop(size_t n, size_t drop) {
    float *x = malloc(n * sizeof *x);
    cr_assert(not(eq(ptr, x, NULL)));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((i < drop ? 0.5 : 0.005) * sin(2.0 * M_PI * 1000.0 * (double)i / 16000.0));
    return x;
}

static float *pcen_feat(const float *x, size_t n, float release, size_t T) {
    struct kws_frontend_cfg c;
    struct audio_fe fe;
    audio_fe_cfg_default(&c);
    c.feat_mean = 0.0f;
    c.feat_scale = 1.0f;
    c.pcen_release = release;
    cr_assert(eq(int, audio_fe_init(&fe, &c), 0));
    float *feat = malloc(T * (size_t)c.n_mels * sizeof *feat);
    cr_assert(eq(sz, audio_fe_compute(&fe, x, n, feat, NULL, T), T));
    audio_fe_free(&fe);
    return feat;
}

Test(audio_frontend, pcen_release_follows_a_falling_level) {
    size_t n = 48000, T = 300, drop = 16000; /* 1 s loud, 2 s quiet */
    float *x = tone_drop(n, drop);
    float *slow = pcen_feat(x, n, 0.0f, T), *fast = pcen_feat(x, n, 0.2f, T);
    int b = 0, F = 40;
    for (int f = 1; f < F; f++) /* the tone's band */
        if (slow[50 * F + f] > slow[50 * F + b])
            b = f;
    for (size_t t = 0; t < 100; t++)
        cr_assert(eq(flt, slow[t * F + b], fast[t * F + b]), "frame %zu: before the drop", t);
    /* 600 ms after the drop, and the steady state for the quiet tone */
    float steady = fast[290 * F + b];
    cr_assert(gt(flt, steady, 0.2f), "the quiet tone is a clear PCEN peak (%g)", steady);
    cr_expect(gt(flt, fast[160 * F + b], 0.9f * steady), "release: %g of %g", fast[160 * F + b],
              steady);
    cr_expect(lt(flt, slow[160 * F + b], 0.25f * steady), "no release: %g of %g", slow[160 * F + b],
              steady);
    /* a range check names the field */
    struct kws_frontend_cfg c;
    char msg[128];
    audio_fe_cfg_default(&c);
    c.pcen_release = 1.5f;
    cr_expect(lt(int, audio_fe_cfg_check(&c, msg, sizeof msg), 0));
    cr_expect(not(eq(ptr, strstr(msg, "pcen_release"), NULL)), "%s", msg);
    free(x);
    free(slow);
    free(fast);
}

/* ==== Level invariance and sparsity on speech ==== */

static char tmpdir[256];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kws-audio-fe-XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(tmpdir), NULL)));
}

static void rm_tmpdir(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert(eq(int, system(cmd), 0));
}

/* Speech from espeak-ng at 16 kHz, between two 0.5 s stretches of low noise. */
static float *speech(size_t *n) {
    char path[512], msg[256];
    float *x, *y;
    size_t m, pad = 8000;
    uint32_t s = 99;

    cr_assert(eq(int, say(tmpdir, "speech.wav", "yes no up down left right", path, sizeof path), 0),
              "espeak-ng is needed (scripts/setup installs it)");
    cr_assert(eq(int, audio_file_read(path, 16000, &x, &m, NULL, msg, sizeof msg), 0), "%s", msg);
    y = malloc((m + 2 * pad) * sizeof(float));
    for (size_t i = 0; i < m + 2 * pad; i++) {
        s = s * 1664525u + 1013904223u;
        y[i] = 1e-3f * ((float)(s >> 8) / 16777216.0f - 0.5f);
        if (i >= pad && i < pad + m)
            y[i] += x[i - pad];
    }
    free(x);
    *n = m + 2 * pad;
    return y;
}

Test(audio_frontend, pcen_makes_quiet_and_loud_alike, .init = make_tmpdir, .fini = rm_tmpdir) {
    struct kws_frontend_cfg c;
    struct audio_fe fe;
    size_t n, T, skip = 30; /* 0.3 s */
    float *x = speech(&n), *q = malloc(n * sizeof(float));
    float *fa, *fb;
    double max_d = 0.0, sum_d = 0.0, log_d = 0.0;
    size_t diff_spk = 0, tot_spk = 0;

    for (size_t i = 0; i < n; i++)
        q[i] = x[i] / 8.0f;
    T = n / 160;
    audio_fe_cfg_default(&c);
    size_t F = (size_t)c.n_mels, S = (size_t)audio_fe_n_out(&c);
    fa = calloc(T * (F + S), sizeof(float));
    fb = calloc(T * (F + S), sizeof(float));
    cr_assert(eq(int, audio_fe_init(&fe, &c), 0));
    audio_fe_compute(&fe, x, n, fa, fa + T * F, T);
    audio_fe_reset(&fe);
    audio_fe_compute(&fe, q, n, fb, fb + T * F, T);
    for (size_t t = skip; t < T; t++) {
        for (size_t f = 0; f < F; f++) {
            double d = fabs((double)fa[t * F + f] - fb[t * F + f]);
            max_d = d > max_d ? d : max_d;
            sum_d += d;
        }
        for (size_t s = 0; s < S; s++) {
            diff_spk += fa[T * F + t * S + s] != fb[T * F + t * S + s];
            tot_spk += fa[T * F + t * S + s] > 0.0f;
        }
    }
    cr_log_info("PCEN, 1/8 level: mean |d| %.4f, max |d| %.4f (standardised units), "
                "%zu of %zu spikes differ",
                sum_d / (double)((T - skip) * F), max_d, diff_spk, tot_spk);
    cr_assert(lt(dbl, sum_d / (double)((T - skip) * F), 0.01), "features nearly the same");
    cr_assert(lt(dbl, max_d, 0.2));
    cr_assert(lt(dbl, (double)diff_spk, 0.02 * (double)tot_spk), "spikes nearly the same");

    /* With the literature's alpha 0.98, PCEN keeps a little of the level:
     * logged for docs/BENCHMARKS.md, asserted only loosely. */
    audio_fe_free(&fe);
    c.pcen_alpha = 0.98f;
    cr_assert(eq(int, audio_fe_init(&fe, &c), 0));
    audio_fe_compute(&fe, x, n, fa, fa + T * F, T);
    audio_fe_reset(&fe);
    audio_fe_compute(&fe, q, n, fb, fb + T * F, T);
    size_t diff98 = 0, tot98 = 0;
    for (size_t t = skip; t < T; t++)
        for (size_t s = 0; s < S; s++) {
            diff98 += fa[T * F + t * S + s] != fb[T * F + t * S + s];
            tot98 += fa[T * F + t * S + s] > 0.0f;
        }
    cr_log_info("PCEN alpha 0.98, 1/8 level: %zu of %zu spikes differ", diff98, tot98);
    cr_assert(lt(dbl, (double)diff98, 0.3 * (double)tot98));

    /* The plain log front end is not level invariant: the same clip moves by
     * ln 64 = 4.16 before standardisation. */
    audio_fe_free(&fe);
    c.pcen = 0;
    c.feat_mean = 0.0f;
    c.feat_scale = 1.0f;
    cr_assert(eq(int, audio_fe_init(&fe, &c), 0));
    audio_fe_compute(&fe, x, n, fa, NULL, T);
    audio_fe_reset(&fe);
    audio_fe_compute(&fe, q, n, fb, NULL, T);
    for (size_t t = skip; t < T; t++)
        for (size_t f = 0; f < F; f++)
            log_d += (double)fa[t * F + f] - fb[t * F + f];
    cr_log_info("log-mel, 1/8 level: mean difference %.3f", log_d / (double)((T - skip) * F));
    cr_assert(gt(dbl, log_d / (double)((T - skip) * F), 3.0));

    audio_fe_free(&fe);
    free(fa);
    free(fb);
    free(x);
    free(q);
}

/* Share of active channels over frames [t0, t1). */
static double active(const float *spk, size_t S, size_t t0, size_t t1) {
    double a = 0.0;
    for (size_t t = t0; t < t1; t++)
        for (size_t s = 0; s < S; s++)
            a += spk[t * S + s] > 0.0f;
    return t1 > t0 ? a / (double)((t1 - t0) * S) : 0.0;
}

Test(audio_frontend, spikes_are_sparse_on_speech_and_absent_in_silence, .init = make_tmpdir,
     .fini = rm_tmpdir) {
    size_t n;
    float *x = speech(&n);
    float *zeros = calloc(16000, sizeof(float));

    for (int kind = 0; kind < 2; kind++) {
        struct kws_frontend_cfg c;
        struct audio_fe fe;
        audio_fe_cfg_default(&c);
        if (kind)
            audio_fe_cfg_delta(&c);
        size_t S = (size_t)audio_fe_n_out(&c), T = n / 160;
        float *spk = calloc(T * S, sizeof(float));
        cr_assert(eq(int, audio_fe_init(&fe, &c), 0));
        audio_fe_compute(&fe, x, n, NULL, spk, T);
        /* Frames 50 .. T-50 hold the speech; the 0.5 s ends are faint noise. */
        double sp = active(spk, S, 50, T - 50), lead = active(spk, S, 30, 50);
        cr_log_info("%s encoder: %.2f %% active on speech, %.2f %% on faint noise",
                    kind ? "delta" : "level", 100 * sp, 100 * lead);
        cr_assert(gt(dbl, sp, 0.02));
        cr_assert(lt(dbl, sp, 0.30));
        cr_assert(lt(dbl, lead, 0.02));

        audio_fe_reset(&fe);
        audio_fe_compute(&fe, zeros, 16000, NULL, spk, 100);
        cr_assert(eq(dbl, active(spk, S, 0, 100), 0.0), "digital silence: no spikes");
        audio_fe_free(&fe);
        free(spk);
    }
    free(zeros);
    free(x);
}

/* ==== Encoders ==== */

/* zero_run counts the frames whose whole window is exactly 0, and a single
 * non-zero sample clears it for as long as it is in the window. */
Test(audio_frontend, zero_run_counts_digital_silence) {
    struct kws_frontend_cfg c;
    struct audio_fe fe;
    audio_fe_cfg_default(&c);
    cr_assert(eq(int, audio_fe_init(&fe, &c), 0));
    float *x = calloc(16000, sizeof *x);
    cr_assert(not(eq(ptr, x, NULL)));
    audio_fe_push(&fe, x, 16000, NULL, NULL); /* 1 s of zeros: 100 frames */
    cr_expect(eq(u64, fe.frames, 100));
    cr_expect(eq(u64, fe.zero_run, 100));
    /* one LSB as the last sample of a hop, then zeros again: it stays in
     * the window of ceil(win_len / hop) frames */
    x[c.hop - 1] = 1.0f / 32768.0f;
    audio_fe_push(&fe, x, (size_t)c.hop, NULL, NULL);
    cr_expect(eq(u64, fe.zero_run, 0));
    size_t frames_with_it = ((size_t)c.win_len + c.hop - 1) / c.hop;
    audio_fe_push(&fe, x + c.hop, (frames_with_it - 1) * (size_t)c.hop, NULL, NULL);
    cr_expect(eq(u64, fe.zero_run, 0), "the sample is still in the window");
    audio_fe_push(&fe, x + c.hop, (size_t)c.hop, NULL, NULL);
    cr_expect(eq(u64, fe.zero_run, 1));
    audio_fe_reset(&fe);
    cr_expect(eq(u64, fe.zero_run, 0));
    free(x);
    audio_fe_free(&fe);
}

Test(audio_frontend, level_encoder_is_a_thermometer) {
    struct kws_frontend_cfg c;
    float feat[40] = {0}, spk[160];

    audio_fe_cfg_default(&c);
    c.enc_thresh[0] = 0.0f;
    c.enc_thresh[1] = 1.0f;
    c.enc_thresh[2] = 2.0f;
    c.enc_thresh[3] = 3.0f;
    feat[0] = -0.5f; /* none */
    feat[1] = 0.0f;  /* >= is inclusive: level 0 */
    feat[2] = 2.5f;  /* levels 0..2 */
    feat[3] = 9.0f;  /* all */
    for (int f = 4; f < 40; f++)
        feat[f] = -1.0f;
    audio_enc_frame(&c, feat, NULL, spk);
    static const float want[16] = {0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1};
    cr_assert(eq(int, memcmp(spk, want, sizeof want), 0));
    for (int s = 16; s < 160; s++)
        cr_assert(eq(flt, spk[s], 0.0f));
}

Test(audio_frontend, ramp_encoder_keeps_the_value_between_thresholds) {
    struct kws_frontend_cfg c;
    float feat[40], spk[160];
    char msg[128];

    audio_fe_cfg_default(&c);
    c.enc_kind = KWS_ENC_RAMP;
    c.enc_thresh[0] = 0.0f; /* half-widths: 0.5 (gap 1 above), 0.5, 0.5, 0.5 */
    c.enc_thresh[1] = 1.0f;
    c.enc_thresh[2] = 2.0f;
    c.enc_thresh[3] = 3.0f;
    cr_assert(eq(int, kws_frontend_cfg_check(&c, msg, sizeof msg), 0), "%s", msg);
    for (int f = 0; f < 40; f++)
        feat[f] = -1.0f;
    feat[0] = -0.5f; /* at the first ramp's foot: nothing */
    feat[1] = 0.0f;  /* at threshold 0: one half */
    feat[2] = 1.25f; /* level 0 full, level 1 at 0.75 */
    feat[3] = 9.0f;  /* all full */
    audio_enc_frame(&c, feat, NULL, spk);
    static const float want[16] = {0, 0, 0, 0, 0.5f, 0, 0, 0, 1, 0.75f, 0, 0, 1, 1, 1, 1};
    for (int s = 0; s < 16; s++)
        cr_assert(ieee_ulp_eq(flt, spk[s], want[s], 4), "channel %d: %g", s, (double)spk[s]);
    for (int s = 16; s < 160; s++)
        cr_assert(eq(flt, spk[s], 0.0f));

    /* The sum of a band's channels rises with its value, and past a ramp's
     * edges (more than h = 0.5 from its threshold) the channel is the level
     * encoder's 0 or 1. */
    struct kws_frontend_cfg lc = c;
    lc.enc_kind = KWS_ENC_LEVEL;
    float prev = -1.0f, spl[160];
    for (int i = 0; i <= 90; i++) {
        feat[0] = -1.0f + 0.05f * (float)i;
        audio_enc_frame(&c, feat, NULL, spk);
        float sum = spk[0] + spk[1] + spk[2] + spk[3];
        cr_assert(ge(flt, sum, prev), "at %g", (double)feat[0]);
        prev = sum;
        audio_enc_frame(&lc, feat, NULL, spl);
        for (int k = 0; k < 4; k++)
            if (fabsf(feat[0] - c.enc_thresh[k]) > 0.51f) /* past ramp k's edges */
                cr_assert(eq(flt, spk[k], spl[k]), "at %g, level %d", (double)feat[0], k);
    }
    c.enc_thresh[2] = 0.5f; /* no longer increasing */
    cr_assert(eq(int, kws_frontend_cfg_check(&c, msg, sizeof msg), KWS_EBADFIELD));
    cr_assert(not(eq(ptr, strstr(msg, "enc_thresh[2]"), NULL)), "%s", msg);
}

Test(audio_frontend, delta_encoder_goes_up_and_down) {
    struct kws_frontend_cfg c;
    float prev[40] = {0}, feat[40] = {0}, spk[160];

    audio_fe_cfg_default(&c);
    audio_fe_cfg_delta(&c); /* up 0.55, 1.1; down 0.55, 1.1 */
    feat[0] = 0.6f;         /* up, small */
    feat[1] = 1.2f;         /* up, both */
    feat[2] = -0.6f;        /* down, small */
    feat[3] = -2.0f;        /* down, both */
    feat[4] = 0.5f;         /* below threshold */
    audio_enc_frame(&c, feat, prev, spk);
    static const float want[20] = {1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0};
    cr_assert(eq(int, memcmp(spk, want, sizeof want), 0));
    /* The first frame of a stream has no reference: no spikes at all. */
    audio_enc_frame(&c, feat, NULL, spk);
    for (int s = 0; s < 160; s++)
        cr_assert(eq(flt, spk[s], 0.0f));
}

Test(audio_frontend, stream_delta_encoder_matches_pure_function) {
    struct kws_frontend_cfg c;
    struct audio_fe fe;
    size_t n = 8000, T = 50;
    float *x = test_signal(n, 16000);
    float *feat = calloc(T * 40, sizeof(float)), *spk = calloc(T * 160, sizeof(float));
    float want[160];

    audio_fe_cfg_default(&c);
    audio_fe_cfg_delta(&c);
    cr_assert(eq(int, audio_fe_init(&fe, &c), 0));
    cr_assert(eq(sz, audio_fe_compute(&fe, x, n, feat, spk, T), T));
    for (size_t t = 0; t < T; t++) {
        audio_enc_frame(&c, feat + t * 40, t ? feat + (t - 1) * 40 : NULL, want);
        cr_assert(eq(int, memcmp(want, spk + t * 160, sizeof want), 0), "frame %zu", t);
    }
    audio_fe_free(&fe);
    free(x);
    free(feat);
    free(spk);
}

/* ==== Threads ==== */

static void *init_many(void *arg) {
    (void)arg;
    for (int i = 0; i < 20; i++) {
        struct kws_frontend_cfg c;
        struct audio_fe fe;
        audio_fe_cfg_default(&c);
        c.n_fft = 256 << (i % 3); /* new plans, not only cached ones */
        c.win_len = c.n_fft < 400 ? c.n_fft : 400;
        if (audio_fe_init(&fe, &c) < 0)
            return (void *)1;
        audio_fe_free(&fe);
    }
    return NULL;
}

Test(audio_frontend, init_and_free_from_several_threads) {
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert(eq(int, pthread_create(&th[i], NULL, init_many, NULL), 0));
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        cr_assert(eq(ptr, ret, NULL));
    }
}

/* test_core_verify.c: the second look against an enrolled word's takes
 * (kws/verify.h) and the listener's use of it (kws/listener.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#include "kws/listener.h"
#include "kws/verify.h"

#define NF 40

/* A frame of a smooth random walk over the bands: neighbouring frames
 * alike, frames far apart not. */
static void walk(float *f, int n_frames, uint64_t seed) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    float x[NF] = {0};
    for (int t = 0; t < n_frames; t++)
        for (int k = 0; k < NF; k++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            x[k] = 0.8f * x[k] + (float)((s >> 11) % 1000) / 1000.0f - 0.5f;
            f[(size_t)t * NF + (size_t)k] = x[k];
        }
}

/* n frames of f as the listener keeps them. */
static void quantise(const float *f, int n, int8_t *q) {
    for (int t = 0; t < n; t++)
        kws_verify_frame(KWS_VERIFY_SHAPE, f + (size_t)t * NF, NF, NF, q + (size_t)t * NF);
}

/* A verifier of takes of the given lengths, each a walk of its own seed. */
static void make(struct kws_verifier *v, int n_takes, const int32_t *len, uint64_t seed0) {
    cr_assert(eq(int, kws_verifier_alloc(v, n_takes, len, NF), 0));
    float *dst = v->feat;
    for (int t = 0; t < n_takes; t++) {
        walk(dst, len[t], seed0 + (uint64_t)t);
        for (int i = 0; i < len[t]; i++)
            kws_verify_norm(dst + (size_t)i * NF, NF);
        dst += (size_t)len[t] * NF;
    }
}

Test(verify, norm_gives_zero_mean_unit_length) {
    float f[NF], g[NF];
    walk(f, 1, 7);
    kws_verify_norm(f, NF);
    double m = 0, ss = 0;
    for (int k = 0; k < NF; k++) {
        m += f[k];
        ss += (double)f[k] * f[k];
    }
    cr_expect(lt(dbl, fabs(m), 1e-5));
    cr_expect(lt(dbl, fabs(ss - 1.0), 1e-5));
    for (int k = 0; k < NF; k++)
        g[k] = 3.0f;
    kws_verify_norm(g, NF);
    for (int k = 0; k < NF; k++)
        cr_expect(eq(flt, g[k], 0.0f), "a flat frame has no shape");
}

/* The cepstrum: a DCT-II over the bands without c0, unit length; the same
 * for a frame scaled or shifted (a level in the log domain), 0 for a flat
 * one; the recurrence agrees with the cosines written out. */
Test(verify, cepstrum_is_the_bands_dct_without_c0) {
    enum { NC = KWS_VERIFY_CEPS };
    float f[NF], g[NF], c[NC], d[NC], ref[NC];
    walk(f, 1, 11);
    kws_verify_features(KWS_VERIFY_CEPSTRUM, f, NF, NC, c);
    double ss = 0;
    for (int k = 1; k <= NC; k++) {
        double a = 0;
        for (int i = 0; i < NF; i++)
            a += f[i] * cos(M_PI * k * (i + 0.5) / NF);
        ref[k - 1] = (float)a;
        ss += a * a;
    }
    for (int k = 0; k < NC; k++)
        cr_expect(lt(dbl, fabs(c[k] - ref[k] / sqrt(ss)), 1e-4), "c%d: %f against %f", k + 1,
                  (double)c[k], ref[k] / sqrt(ss));
    for (int i = 0; i < NF; i++)
        g[i] = 3.0f * f[i] + 5.0f;
    kws_verify_features(KWS_VERIFY_CEPSTRUM, g, NF, NC, d);
    for (int k = 0; k < NC; k++)
        cr_expect(lt(dbl, fabs(c[k] - d[k]), 1e-4), "c%d moved with the level", k + 1);
    for (int i = 0; i < NF; i++)
        g[i] = 2.0f;
    kws_verify_features(KWS_VERIFY_CEPSTRUM, g, NF, NC, d);
    for (int k = 0; k < NC; k++)
        cr_expect(lt(dbl, fabs(d[k]), 1e-6), "a flat frame has no shape");
    /* the shape kind is the norm */
    memcpy(g, f, sizeof g);
    kws_verify_norm(g, NF);
    float h[NF];
    kws_verify_features(KWS_VERIFY_SHAPE, f, NF, NF, h);
    for (int i = 0; i < NF; i++)
        cr_expect(eq(flt, g[i], h[i]));
}

/* The bands' angles are turned from one band to the next, not computed
 * afresh: the cepstrum of the most bands a front end may have still agrees
 * with the cosines written out. */
Test(verify, cepstrum_of_the_most_bands) {
    enum { N = KWS_VERIFY_MAX_FEAT, NC = KWS_VERIFY_CEPS };
    float f[N], c[NC];
    double ref[NC], ss = 0;
    for (int i = 0; i < N; i++)
        f[i] = (float)(sin(0.37 * i) + 0.5 * cos(0.11 * i * i / N));
    kws_verify_features(KWS_VERIFY_CEPSTRUM, f, N, NC, c);
    for (int k = 1; k <= NC; k++) {
        ref[k - 1] = 0;
        for (int i = 0; i < N; i++)
            ref[k - 1] += f[i] * cos(M_PI * k * (i + 0.5) / N);
        ss += ref[k - 1] * ref[k - 1];
    }
    for (int k = 0; k < NC; k++)
        cr_expect(lt(dbl, fabs(c[k] - ref[k] / sqrt(ss)), 1e-4), "c%d: %f against %f", k + 1,
                  (double)c[k], ref[k] / sqrt(ss));
}

Test(verify, alloc_checks_the_limits) {
    struct kws_verifier v;
    int32_t ok[2] = {5, 7}, zero[2] = {5, 0}, huge[1] = {KWS_VERIFY_MAX_TAKE_FRAMES + 1};
    cr_expect(eq(int, kws_verifier_alloc(&v, 2, ok, NF), 0));
    cr_expect(eq(int, v.n_takes, 2));
    cr_expect(eq(sz, v.n_frames, 12));
    cr_expect(eq(int, v.k, 2), "k is at most the takes");
    cr_expect(eq(int, v.back, KWS_VERIFY_BACK));
    cr_expect(eq(int, v.ahead, KWS_VERIFY_AHEAD));
    kws_verifier_free(&v);
    kws_verifier_free(&v); /* twice is safe */
    cr_expect(eq(int, kws_verifier_alloc(&v, 2, zero, NF), -EINVAL));
    cr_expect(eq(int, kws_verifier_alloc(&v, 1, huge, NF), -EINVAL));
    cr_expect(eq(int, kws_verifier_alloc(&v, 0, ok, NF), -EINVAL));
    cr_expect(eq(int, kws_verifier_alloc(&v, KWS_VERIFY_MAX_TAKES + 1, ok, NF), -EINVAL));
}

/* A take found inside a longer stretch costs next to nothing, at its own
 * pace or at half of it; another word costs far more; a word at a third of
 * its pace (beyond the slope 1/2) costs more than at half. */
Test(verify, a_take_is_found_in_a_stretch) {
    struct kws_verifier v;
    int32_t len[1] = {40};
    make(&v, 1, len, 100);
    v.k = 1;
    float raw[40 * NF], seq[150 * NF];
    int8_t q[150 * NF];
    float scratch[5 * 150];
    walk(raw, 40, 100);
    walk(seq, 150, 999); /* other sound around it */
    memcpy(seq + 50 * NF, raw, sizeof raw);
    quantise(seq, 150, q);
    float same = kws_verify_cost(&v, q, 150, scratch);
    cr_expect(lt(flt, same, 0.02f), "cost %g", same);

    for (int i = 0; i < 80; i++) /* each frame twice: half the pace */
        memcpy(seq + (size_t)(20 + i) * NF, raw + (size_t)(i / 2) * NF, NF * sizeof *raw);
    quantise(seq, 150, q);
    float slow = kws_verify_cost(&v, q, 150, scratch);
    cr_expect(lt(flt, slow, 0.02f), "cost %g", slow);

    for (int i = 0; i < 120; i++) /* each frame three times */
        memcpy(seq + (size_t)(10 + i) * NF, raw + (size_t)(i / 3) * NF, NF * sizeof *raw);
    quantise(seq, 150, q);
    float slower = kws_verify_cost(&v, q, 150, scratch);
    cr_expect(gt(flt, slower, slow));

    walk(seq, 150, 12345);
    quantise(seq, 150, q);
    float other = kws_verify_cost(&v, q, 150, scratch);
    cr_expect(gt(flt, other, 0.5f), "cost %g", other);
    cr_expect(gt(flt, kws_verify_cost(&v, q, 10, scratch), 1e29f), "40 frames never fit in 10");
    kws_verifier_free(&v);
}

/* The cost is the mean of the k lowest take costs; skip leaves one out. */
Test(verify, k_lowest_and_skip) {
    struct kws_verifier v;
    int32_t len[3] = {30, 30, 30};
    make(&v, 3, len, 200);
    float raw[30 * NF], scratch[5 * 30];
    int8_t q[30 * NF];
    walk(raw, 30, 201); /* take 1 itself */
    quantise(raw, 30, q);
    v.k = 1;
    float own = kws_verify_cost(&v, q, 30, scratch);
    float without = kws_verify_cost_skip(&v, q, 30, 1, scratch);
    cr_expect(lt(flt, own, 0.02f));
    cr_expect(gt(flt, without, 0.5f), "take 1 left out: the others do not match");
    v.k = 3;
    float mean3 = kws_verify_cost(&v, q, 30, scratch);
    cr_expect(gt(flt, mean3, own));
    cr_expect(lt(flt, mean3, without));
    kws_verifier_free(&v);
}

/* The cut keeps KWS_VERIFY_KEEP of the takes, each against the others
 * (kws_verify_cut_loo also gives those costs take by take). */
Test(verify, cut_from_the_takes_alone) {
    struct kws_verifier v;
    enum { N = 20, L = 25 };
    int32_t len[N], full_len[N];
    const int8_t *full[N];
    static int8_t q[N][L * NF];
    for (int t = 0; t < N; t++)
        len[t] = full_len[t] = L;
    /* every take a noisy copy of one walk, take 19 a different word */
    cr_assert(eq(int, kws_verifier_alloc(&v, N, len, NF), 0));
    float base[L * NF], noisy[L * NF];
    walk(base, L, 300);
    uint64_t s = 5;
    for (int t = 0; t < N; t++) {
        if (t == N - 1)
            walk(noisy, L, 301);
        else
            for (int i = 0; i < L * NF; i++) {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                noisy[i] = base[i] + 0.05f * (float)(t + 1) * ((float)(s % 1000) / 1000.0f - 0.5f);
            }
        quantise(noisy, L, q[t]);
        full[t] = q[t];
        float *dst = v.feat + (size_t)t * L * NF;
        memcpy(dst, noisy, sizeof noisy);
        for (int i = 0; i < L; i++)
            kws_verify_norm(dst + (size_t)i * NF, NF);
    }
    v.k = 1;
    float cut = kws_verify_cut_loo(&v, full, full_len, NULL);
    float scratch[5 * L];
    float odd = kws_verify_cost_skip(&v, q[N - 1], L, N - 1, scratch);
    float worst_copy = kws_verify_cost_skip(&v, q[N - 2], L, N - 2, scratch);
    cr_expect(lt(flt, cut, odd), "the odd take (%g) is the one in twenty left out", odd);
    cr_expect(ge(flt, cut, worst_copy), "every copy is kept (%g > %g)", cut, worst_copy);
    /* each take's own cost, in take order: the odd one the highest, the cut
     * the highest of the others */
    float each[N], top = 0.0f;
    cr_assert(eq(flt, kws_verify_cut_loo(&v, full, full_len, each), cut));
    cr_expect(eq(flt, each[N - 1], odd));
    cr_expect(eq(flt, each[N - 2], worst_copy));
    for (int t = 0; t < N - 1; t++)
        top = each[t] > top ? each[t] : top;
    cr_expect(eq(flt, top, cut), "the cut (%g) is the highest copy's cost (%g)", cut, top);
    v.n_takes = 1;
    cr_expect(eq(flt, kws_verify_cut_loo(&v, full, full_len, NULL), (float)-EINVAL));
    cr_expect(eq(flt, kws_verify_cut_loo(&v, full, full_len, each), (float)-EINVAL));
    v.n_takes = N;
    kws_verifier_free(&v);
}

/* ---- The listener: an event of the verified word waits, then passes or
 * not; other labels are not touched. ---- */

#define MODEL KWSD_SOURCE_DIR "/models/commands.kwsm"
#define N_FRAMES 400

static void spikes_of(float *sp, int n_in, uint64_t seed) {
    uint64_t s = seed;
    for (int t = 0; t < N_FRAMES; t++)
        for (int i = 0; i < n_in; i++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            sp[(size_t)t * (size_t)n_in + (size_t)i] = (s % 100) < (t % 60 < 30 ? 45u : 10u);
        }
}

/* Runs N_FRAMES through a listener; writes each frame's event label (-1: none). */
static void listen(const struct snn_model *m, const float *sp, const float *feat, int *ev) {
    struct kws_listener_settings s;
    struct kws_listener l;
    kws_listener_settings_default(&s);
    s.threshold = 0.2f;
    cr_assert(eq(int, kws_listener_init(&l, m, &s), 0));
    for (int t = 0; t < N_FRAMES; t++) {
        struct kws_hit hit;
        ev[t] = kws_listener_frame(&l, feat + (size_t)t * NF, sp + (size_t)t * (size_t)m->cfg.n_in,
                                   0, &hit)
                    ? hit.label
                    : -1;
    }
    kws_listener_free(&l);
}

Test(verify, the_listener_waits_then_keeps_or_drops) {
    struct snn_model m;
    char msg[256];
    cr_assert(eq(int, snn_model_load(&m, MODEL, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(int, m.cfg.fe.n_mels, NF));
    float *sp = malloc((size_t)N_FRAMES * (size_t)m.cfg.n_in * sizeof *sp);
    float *feat = malloc((size_t)N_FRAMES * NF * sizeof *feat);
    cr_assert(sp && feat);
    spikes_of(sp, m.cfg.n_in, 0x9e3779b97f4a7c15ull);
    walk(feat, N_FRAMES, 77);
    int plain[N_FRAMES], kept[N_FRAMES], dropped[N_FRAMES];
    listen(&m, sp, feat, plain);
    int first = -1;
    for (int t = 0; t < N_FRAMES && first < 0; t++)
        if (plain[t] >= 0)
            first = t;
    cr_assert(ge(int, first, 0), "the network fires on these frames");
    int label = plain[first];

    int32_t len[2] = {10, 12};
    make(&m.verify, 2, len, 1);
    m.verify.label = label;
    m.verify.ahead = 20;
    m.verify.cut = 1e9f; /* every event passes */
    listen(&m, sp, feat, kept);
    cr_expect(eq(int, kept[first], -1), "not published when the detector fires");
    cr_expect(eq(int, kept[first + 20], label), "but 20 frames later");
    m.verify.cut = -1.0f; /* none passes */
    listen(&m, sp, feat, dropped);
    for (int t = 0; t < N_FRAMES; t++) {
        cr_expect(not(eq(int, dropped[t], label)), "frame %d: the word is dropped", t);
        if (plain[t] >= 0 && plain[t] != label && t < first)
            cr_expect(eq(int, dropped[t], plain[t]), "other labels as before");
    }
    /* a cepstrum verifier whose one take is 12 of the heard frames: the
     * listener keeps the cepstra too, so they match all but exactly */
    kws_verifier_free(&m.verify);
    int32_t one = 12;
    cr_assert(ge(int, first, 15));
    cr_assert(eq(int, kws_verifier_alloc(&m.verify, 1, &one, KWS_VERIFY_CEPS), 0));
    m.verify.kind = KWS_VERIFY_CEPSTRUM;
    for (int i = 0; i < one; i++)
        kws_verify_features(KWS_VERIFY_CEPSTRUM, feat + (size_t)(first - 15 + i) * NF, NF,
                            KWS_VERIFY_CEPS, m.verify.feat + (size_t)i * KWS_VERIFY_CEPS);
    m.verify.label = label;
    m.verify.ahead = 20;
    m.verify.cut = 0.05f;
    listen(&m, sp, feat, kept);
    cr_expect(eq(int, kept[first + 20], label), "the take is in the ring: kept");
    m.verify.cut = -1.0f;
    listen(&m, sp, feat, dropped);
    cr_expect(not(eq(int, dropped[first + 20], label)), "none passes: dropped");
    free(sp);
    free(feat);
    snn_model_free(&m);
}

/* test_core_listener.c: the listening path: threshold rule, network and
 * detector per frame, the digital-silence hold, reset, independent streams.
 *
 * Runs the shipped models/commands.kwsm on pseudo-random spike frames and
 * compares each listener frame with the same frame done by hand (snn_step,
 * then the detector), bit for bit.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <string.h>

#include "kws/listener.h"

#define MODEL KWSD_SOURCE_DIR "/models/commands.kwsm"
#define N_FRAMES 400

static struct snn_model model;
static float *frames; /* (N_FRAMES, n_in) spikes */

static void setup(void) {
    char msg[256];
    cr_assert(eq(int, snn_model_load(&model, MODEL, msg, sizeof msg), 0), "%s", msg);
    int n_in = model.cfg.n_in;
    frames = malloc((size_t)N_FRAMES * (size_t)n_in * sizeof *frames);
    cr_assert(not(eq(ptr, frames, NULL)));
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < (size_t)N_FRAMES * (size_t)n_in; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        /* about one channel in four spikes, more in bursts, so scores move */
        frames[i] = (s % 100) < ((i / (size_t)n_in) % 60 < 30 ? 45u : 10u);
    }
}

static void teardown(void) {
    free(frames);
    snn_model_free(&model);
}

TestSuite(listener, .init = setup, .fini = teardown);

static const float *frame(int t) {
    return frames + (size_t)t * (size_t)model.cfg.n_in;
}

/* The one threshold rule, in its order of precedence. */
Test(listener, threshold_rule) {
    struct kws_listener_settings s;
    kws_listener_settings_default(&s);
    cr_expect(eq(flt, s.threshold, KWS_THRESHOLD_MODEL));
    cr_expect(eq(flt, kws_listener_threshold(&s, "stop", 0.55f), 0.55f), "the model's");
    cr_expect(eq(flt, kws_listener_threshold(&s, "stop", 0.0f), KWS_THRESHOLD_FALLBACK),
              "a model without one");
    cr_expect(eq(flt, kws_listener_threshold(&s, "stop", 1.5f), KWS_THRESHOLD_FALLBACK));
    s.threshold = 0.3f;
    cr_expect(eq(flt, kws_listener_threshold(&s, "stop", 0.55f), 0.3f), "global beats model");
    s.threshold = 0.0f;
    cr_expect(eq(flt, kws_listener_threshold(&s, "stop", 0.55f), 0.0f), "0 is a threshold");
    s.n_keywords = 1;
    strcpy(s.keywords[0].label, "stop");
    s.keywords[0].threshold = 0.7f;
    cr_expect(eq(flt, kws_listener_threshold(&s, "stop", 0.55f), 0.7f), "keyword beats global");
    cr_expect(eq(flt, kws_listener_threshold(&s, "go", 0.55f), 0.0f));
    cr_expect(eq(flt, kws_listener_threshold(&s, NULL, 0.55f), 0.0f), "no label: global");
}

/* The detector gets each label's threshold from the rule, the frame length
 * from the model, and smoothing/refractory in frames. */
Test(listener, init_applies_the_settings) {
    struct kws_listener_settings s;
    struct kws_listener l;
    kws_listener_settings_default(&s);
    s.smoothing_ms = 200;
    s.refractory_ms = 500;
    s.n_keywords = 1;
    strcpy(s.keywords[0].label, "stop");
    s.keywords[0].threshold = 0.95f;
    cr_assert(eq(int, kws_listener_init(&l, &model, &s), 0));
    cr_expect(eq(int, l.frame_ms, 10));
    cr_expect(eq(int, kws_frame_ms(&model.cfg.fe), 10));
    cr_expect(eq(int, l.det.cfg.smoothing_frames, 20));
    cr_expect(eq(int, l.det.cfg.refractory_frames, 50));
    float model_thr = model.cfg.threshold > 0.0f ? model.cfg.threshold : KWS_THRESHOLD_FALLBACK;
    for (int c = 0; c < model.cfg.n_classes; c++)
        cr_expect(eq(flt, l.det.cfg.threshold[c],
                     strcmp(model.cfg.labels[c], "stop") == 0 ? 0.95f : model_thr),
                  "%s", model.cfg.labels[c]);
    kws_listener_free(&l);
    kws_listener_free(&l); /* twice is safe */
    s.smoothing_ms = 0;
    cr_expect(eq(int, kws_listener_init(&l, &model, &s), -EINVAL));
    kws_listener_free(&l);
}

/* Without digital silence a listener frame is snn_step then the detector,
 * bit for bit, events included. A low threshold makes events happen. */
Test(listener, frame_is_network_then_detector) {
    struct kws_listener_settings s;
    struct kws_listener l;
    struct kws_detector d;
    struct snn_state st;
    float v[SNN_MAX_CLASSES], sc[SNN_MAX_CLASSES];
    int events = 0;

    kws_listener_settings_default(&s);
    s.threshold = 0.2f;
    cr_assert(eq(int, kws_listener_init(&l, &model, &s), 0));
    cr_assert(eq(int, kws_detector_init(&d, &l.det.cfg), 0));
    cr_assert(eq(int, snn_state_init(&st, &model), 0));
    for (int t = 0; t < N_FRAMES; t++) {
        struct kws_hit a, b;
        int fa = kws_listener_frame(&l, NULL, frame(t), 0, &a);
        snn_step(&model, &st, frame(t), v);
        int fb = kws_detector_step(&d, v, &b, sc);
        cr_assert(eq(int, fa, fb), "frame %d", t);
        cr_assert(eq(int, memcmp(l.v, v, (size_t)model.cfg.n_classes * sizeof *v), 0));
        cr_assert(eq(int, memcmp(l.scores, sc, (size_t)model.cfg.n_classes * sizeof *sc), 0));
        if (fa) {
            events++;
            cr_assert(eq(int, a.label, b.label));
            cr_assert(eq(i64, a.end_ms, b.end_ms));
            cr_assert(eq(i64, a.end_ms, (int64_t)(t + 1) * 10));
        }
    }
    cr_expect(gt(int, events, 0), "the frames make events at threshold 0.2");
    snn_state_free(&st);
    kws_detector_free(&d);
    kws_listener_free(&l);
}

/* Digital silence: from the frame the front end's zero_run reaches
 * KWS_HOLD_MS the network rests (no step, potentials and scores 0) and the
 * hold counter counts; when sound returns the network starts from rest, so
 * it then matches a new listener fed the same frames. */
Test(listener, hold_rests_the_network) {
    struct kws_listener_settings s;
    struct kws_listener l, fresh;
    struct kws_hit hit;
    const int C = model.cfg.n_classes, hold_frames = KWS_HOLD_MS / 10;

    kws_listener_settings_default(&s);
    cr_assert(eq(int, kws_listener_init(&l, &model, &s), 0));
    cr_assert(eq(int, kws_listener_init(&fresh, &model, &s), 0));
    for (int t = 0; t < 100; t++)
        kws_listener_frame(&l, NULL, frame(t), 0, &hit);
    /* zero_run below the hold: still stepped */
    kws_listener_frame(&l, NULL, frame(100), (uint64_t)hold_frames - 1, &hit);
    cr_expect(eq(u64, l.held, 0));
    for (int t = 0; t < 50; t++) {
        cr_assert(
            eq(int, kws_listener_frame(&l, NULL, frame(101 + t), (uint64_t)(hold_frames + t), &hit),
               0));
        cr_assert(eq(u64, l.held, (uint64_t)t + 1));
        for (int c = 0; c < C; c++) {
            cr_assert(eq(flt, l.v[c], 0.0f));
            cr_assert(eq(flt, l.scores[c], 0.0f));
        }
    }
    for (int t = 200; t < 260; t++) {
        kws_listener_frame(&l, NULL, frame(t), 0, &hit);
        kws_listener_frame(&fresh, NULL, frame(t), 0, &hit);
        cr_assert(eq(int, memcmp(l.v, fresh.v, (size_t)C * sizeof *l.v), 0), "frame %d", t);
    }
    cr_expect(eq(u64, l.held, 0));
    kws_listener_free(&fresh);
    kws_listener_free(&l);
}

/* Two listeners on one model are independent streams, and reset makes a
 * used listener hear like a new one. */
Test(listener, streams_are_independent_and_reset) {
    struct kws_listener_settings s;
    struct kws_listener a, b, solo;
    struct kws_hit hit;
    const size_t bytes = (size_t)model.cfg.n_classes * sizeof(float);

    kws_listener_settings_default(&s);
    s.threshold = 0.2f;
    cr_assert(eq(int, kws_listener_init(&a, &model, &s), 0));
    cr_assert(eq(int, kws_listener_init(&b, &model, &s), 0));
    cr_assert(eq(int, kws_listener_init(&solo, &model, &s), 0));
    /* a hears frames 0.., b hears them backwards, interleaved; solo hears
     * a's frames alone */
    for (int t = 0; t < N_FRAMES; t++) {
        int fa = kws_listener_frame(&a, NULL, frame(t), 0, &hit);
        kws_listener_frame(&b, NULL, frame(N_FRAMES - 1 - t), 0, &hit);
        int fs = kws_listener_frame(&solo, NULL, frame(t), 0, &hit);
        cr_assert(eq(int, fa, fs));
        cr_assert(eq(int, memcmp(a.scores, solo.scores, bytes), 0), "frame %d", t);
    }
    kws_listener_reset(&b);
    kws_listener_reset(&solo);
    for (int t = 0; t < N_FRAMES; t++) {
        struct kws_hit hb, hs;
        int fb = kws_listener_frame(&b, NULL, frame(t), 0, &hb);
        int fs = kws_listener_frame(&solo, NULL, frame(t), 0, &hs);
        cr_assert(eq(int, fb, fs));
        cr_assert(eq(int, memcmp(b.scores, solo.scores, bytes), 0), "frame %d", t);
        if (fb)
            cr_assert(eq(i64, hb.end_ms, (int64_t)(t + 1) * 10), "times restart at 0");
    }
    kws_listener_free(&a);
    kws_listener_free(&b);
    kws_listener_free(&solo);
}

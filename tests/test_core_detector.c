/* test_core_detector.c: smoothing, thresholds, refractory period, non-firing classes.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <string.h>

#include "kws/detector.h"

/* Three classes: _silence_, yes, stop. */
static struct snn_cfg model;
static struct kws_detector det;

static void setup(void) {
    struct kws_detector_cfg cfg;
    memset(&model, 0, sizeof model);
    model.n_classes = 3;
    strcpy(model.labels[0], "_silence_");
    strcpy(model.labels[1], "yes");
    strcpy(model.labels[2], "stop");
    kws_detector_cfg_default(&cfg, &model, 0.8f, 100, 500, 10);
    cr_assert(eq(int, cfg.smoothing_frames, 10));
    cr_assert(eq(int, cfg.refractory_frames, 50));
    cr_assert(eq(int, kws_detector_init(&det, &cfg), 0));
}

static void teardown(void) {
    kws_detector_free(&det);
}

/* Potentials that give class c a posterior of about 0.99. */
static void confident(float *v, int c) {
    for (int i = 0; i < 3; i++)
        v[i] = i == c ? 6.0f : 0.0f;
}

TestSuite(detector, .init = setup, .fini = teardown);

Test(detector, sustained_keyword_fires_once_after_window) {
    float v[3];
    struct kws_hit hit;
    int fired_at = -1, n = 0;

    for (int t = 0; t < 30; t++) {
        confident(v, 1);
        if (kws_detector_step(&det, v, &hit, NULL)) {
            n++;
            if (fired_at < 0)
                fired_at = t;
        }
    }
    cr_assert(eq(int, n, 1), "one event inside the refractory period");
    /* Mean over a 10-frame window reaches 0.8 at the 9th confident frame. */
    cr_assert(eq(int, fired_at, 8));
    cr_assert(eq(int, hit.label, 1));
    cr_assert(ge(flt, hit.score, 0.8f));
    cr_assert(eq(i64, hit.end_ms, 90));
    cr_assert(eq(i64, hit.start_ms, 40), "score passed threshold/2 at frame 4");
}

Test(detector, silence_never_fires) {
    float v[3];
    struct kws_hit hit;
    for (int t = 0; t < 200; t++) {
        confident(v, 0);
        cr_assert(eq(int, kws_detector_step(&det, v, &hit, NULL), 0));
    }
}

Test(detector, short_blip_is_smoothed_away) {
    float v[3], scores[3];
    struct kws_hit hit;
    for (int t = 0; t < 100; t++) {
        confident(v, (t >= 50 && t < 53) ? 2 : 0);
        cr_assert(eq(int, kws_detector_step(&det, v, &hit, scores), 0));
    }
    cr_assert(lt(flt, scores[2], 0.1f));
}

Test(detector, refractory_then_fires_again) {
    float v[3];
    struct kws_hit hit;
    int events[2], n = 0;
    int64_t end2 = 0;
    /* "yes" for 20 frames, then "stop" from frame 20 on: stop is held back
     * until the refractory period after yes (frame 8 + 1 + 50) ends. */
    for (int t = 0; t < 200 && n < 2; t++) {
        confident(v, t < 20 ? 1 : 2);
        if (kws_detector_step(&det, v, &hit, NULL)) {
            events[n++] = hit.label;
            end2 = hit.end_ms;
        }
    }
    cr_assert(eq(int, n, 2));
    cr_assert(eq(int, events[0], 1));
    cr_assert(eq(int, events[1], 2));
    cr_assert(eq(i64, end2, 600));
}

/* kws_detector_rearm ends the refractory period: "yes" held on fires at
 * frame 8, then again `after` frames after the rearm at frame 20. */
Test(detector, rearm_ends_the_quiet_time) {
    float v[3];
    struct kws_hit hit;
    int fired[60] = {0};
    confident(v, 1);
    for (int t = 0; t < 60; t++) {
        if (t == 20)
            kws_detector_rearm(&det, 5);
        fired[t] = kws_detector_step(&det, v, &hit, NULL);
    }
    for (int t = 0; t < 60; t++)
        cr_expect(eq(int, fired[t], t == 8 || t == 25), "frame %d", t);
}

Test(detector, per_keyword_threshold) {
    float v[3] = {0.0f, 1.0f, 0.0f}; /* yes at about 0.58 */
    struct kws_hit hit;
    int n = 0;
    for (int t = 0; t < 50; t++)
        n += kws_detector_step(&det, v, &hit, NULL);
    cr_assert(eq(int, n, 0), "0.58 is below the global 0.8");
    det.cfg.threshold[1] = 0.5f;
    kws_detector_reset(&det);
    for (int t = 0; t < 50; t++)
        n += kws_detector_step(&det, v, &hit, NULL);
    cr_assert(eq(int, n, 1));
    cr_assert(eq(flt, hit.threshold, 0.5f));
}

Test(detector, long_stream_sums_stay_exact) {
    float v[3], scores[3];
    struct kws_hit hit;
    for (int t = 0; t < 360000; t++) { /* one hour of frames */
        v[0] = (float)(t % 7);
        v[1] = (float)(t % 5) * 0.5f;
        v[2] = 0.0f;
        kws_detector_step(&det, v, &hit, scores);
    }
    float want[3] = {0};
    for (int t = 360000 - 10; t < 360000; t++) {
        float a = (float)(t % 7), b = (float)(t % 5) * 0.5f, m = a > b ? a : b;
        float ea = expf(a - m), eb = expf(b - m), ec = expf(-m), z = ea + eb + ec;
        want[0] += ea / z / 10.0f;
        want[1] += eb / z / 10.0f;
        want[2] += ec / z / 10.0f;
    }
    for (int c = 0; c < 3; c++)
        cr_assert(epsilon_eq(flt, scores[c], want[c], 1e-5f), "class %d", c);
}

/* A held frame (digital silence) empties the window: scores are 0, nothing
 * fires, and a keyword afterwards needs a full window again, as at start-up.
 * Frame times keep counting through the hold. */
Test(detector, hold_empties_the_window_and_keeps_time) {
    float v[3], sc[3];
    struct kws_hit hit;

    for (int t = 0; t < 5; t++) { /* half a window of "yes": below threshold */
        confident(v, 1);
        cr_assert(eq(int, kws_detector_step(&det, v, &hit, sc), 0));
    }
    cr_assert(gt(flt, sc[1], 0.4f));
    for (int t = 0; t < 20; t++) {
        sc[1] = -1.0f;
        kws_detector_hold(&det, sc);
        cr_assert(eq(flt, sc[0], 0.0f));
        cr_assert(eq(flt, sc[1], 0.0f), "held frame %d", t);
    }
    int fired_at = -1;
    for (int t = 0; t < 20 && fired_at < 0; t++) {
        confident(v, 1);
        if (kws_detector_step(&det, v, &hit, sc))
            fired_at = t;
    }
    /* the five frames before the hold do not count: nine frames as at start */
    cr_assert(eq(int, fired_at, 8));
    cr_assert(eq(i64, hit.end_ms, (5 + 20 + 9) * 10), "frames went on counting");
    cr_assert(eq(i64, hit.start_ms, (5 + 20 + 4) * 10));
}

Test(detector, hold_frame_rule) {
    cr_expect(eq(int, kws_hold_frame(0, 10), 0));
    cr_expect(eq(int, kws_hold_frame(KWS_HOLD_MS / 10 - 1, 10), 0));
    cr_expect(eq(int, kws_hold_frame(KWS_HOLD_MS / 10, 10), 1));
    cr_expect(eq(int, kws_hold_frame(KWS_HOLD_MS / 20, 20), 1));
}

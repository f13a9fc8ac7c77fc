/* test_audio_pipe.c: resampler -> front end in one call (struct audio_pipe).
 *
 * The pipe fed in capture-sized blocks must give exactly the frames of the
 * offline path (resample the whole signal, then run the front end), at the
 * model's rate and at 48 / 44.1 / 8 kHz.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kws/audio_pipe.h"
#include "kws/err.h"

struct frames {
    size_t n, cap, F;
    float *feat;
};

static void collect(void *ctx, const float *feat, const float *spikes) {
    struct frames *fr = ctx;
    (void)spikes;
    if (fr->n < fr->cap)
        memcpy(fr->feat + fr->n * fr->F, feat, fr->F * sizeof(float));
    fr->n++;
}

static float *signal(size_t n, int rate) {
    float *x = malloc(n * sizeof(float));
    uint32_t s = 3;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(0.2 * sin(2.0 * M_PI * 700.0 * (double)i / rate) +
                       0.05 * ((double)(s >> 8) / 16777216.0 - 0.5));
    }
    return x;
}

/* Offline reference: resample everything at once, then the front end. */
static size_t offline(const struct kws_frontend_cfg *cfg, int rate, const float *x, size_t n,
                      float *feat, size_t cap) {
    struct audio_resampler r;
    struct audio_fe fe;
    size_t m = 0, got;
    float *y;

    cr_assert(eq(int, audio_resampler_init(&r, rate, cfg->sample_rate, n), 0));
    y = malloc(audio_resampler_out_max(&r, n) * sizeof(float));
    cr_assert(eq(int, audio_resampler_process(&r, x, n, y, audio_resampler_out_max(&r, n), &m), 0));
    cr_assert(eq(int, audio_fe_init(&fe, cfg), 0));
    got = audio_fe_compute(&fe, y, m, feat, NULL, cap);
    audio_fe_free(&fe);
    audio_resampler_free(&r);
    free(y);
    return got;
}

Test(audio_pipe, blocks_match_the_offline_path) {
    static const int rates[] = {16000, 48000, 44100, 8000};
    struct kws_frontend_cfg cfg;

    audio_fe_cfg_default(&cfg);
    for (size_t k = 0; k < 4; k++) {
        int rate = rates[k];
        size_t n = (size_t)rate, block = (size_t)rate / 50; /* 20 ms periods */
        float *x = signal(n, rate);
        struct frames a = {.cap = 120, .F = 40}, b = {.cap = 120, .F = 40};
        struct audio_pipe p;

        a.feat = calloc(a.cap * 40, sizeof(float));
        b.feat = calloc(b.cap * 40, sizeof(float));
        cr_assert(eq(int, audio_pipe_init(&p, &cfg, rate, block), 0));
        for (size_t off = 0; off < n; off += block)
            audio_pipe_push(&p, x + off, n - off < block ? n - off : block, collect, &a);
        b.n = offline(&cfg, rate, x, n, b.feat, b.cap);
        cr_assert(eq(sz, a.n, b.n), "%d Hz: frames", rate);
        cr_assert(ge(sz, a.n, 98), "%d Hz: about 100 frames for 1 s", rate);
        cr_assert(eq(int, memcmp(a.feat, b.feat, a.n * 40 * sizeof(float)), 0), "%d Hz", rate);

        /* Pushes larger than max_in are split, with the same result. */
        struct frames c = {.cap = 120, .F = 40};
        c.feat = calloc(c.cap * 40, sizeof(float));
        audio_pipe_reset(&p);
        audio_pipe_push(&p, x, n, collect, &c);
        cr_assert(eq(sz, c.n, a.n));
        cr_assert(eq(int, memcmp(a.feat, c.feat, a.n * 40 * sizeof(float)), 0), "%d Hz", rate);

        audio_pipe_free(&p);
        audio_pipe_free(&p);
        free(a.feat);
        free(b.feat);
        free(c.feat);
        free(x);
    }
}

Test(audio_pipe, follows_a_device_rate_change) {
    struct kws_frontend_cfg cfg;
    struct audio_pipe p;
    float *x48 = signal(48000, 48000), *x44 = signal(44100, 44100);
    struct frames a = {.cap = 120, .F = 40}, b = {.cap = 120, .F = 40};

    a.feat = calloc(a.cap * 40, sizeof(float));
    b.feat = calloc(b.cap * 40, sizeof(float));
    audio_fe_cfg_default(&cfg);
    cr_assert(eq(int, audio_pipe_init(&p, &cfg, 48000, 960), 0));
    audio_pipe_push(&p, x48, 24000, NULL, NULL);
    cr_assert(eq(int, audio_pipe_set_in_rate(&p, 48000), 0), "same rate: no-op");
    cr_assert(gt(u64, p.fe.frames, 0));
    cr_assert(eq(int, audio_pipe_set_in_rate(&p, 44100), 0));
    cr_assert(eq(u64, p.fe.frames, 0), "a new rate starts a new stream");
    cr_assert(eq(int, p.in_rate, 44100));
    audio_pipe_push(&p, x44, 44100, collect, &a);
    b.n = offline(&cfg, 44100, x44, 44100, b.feat, b.cap);
    cr_assert(eq(sz, a.n, b.n));
    cr_assert(eq(int, memcmp(a.feat, b.feat, a.n * 40 * sizeof(float)), 0));
    cr_assert(eq(int, audio_pipe_set_in_rate(&p, 12), -EINVAL));
    cr_assert(eq(int, p.in_rate, 44100), "a failed switch keeps the old converter");
    audio_pipe_free(&p);
    free(a.feat);
    free(b.feat);
    free(x48);
    free(x44);
}

Test(audio_pipe, bad_settings_fail_cleanly) {
    struct kws_frontend_cfg cfg;
    struct audio_pipe p;

    audio_fe_cfg_default(&cfg);
    cfg.n_mels = 0;
    cr_assert(eq(int, audio_pipe_init(&p, &cfg, 48000, 960), KWS_EBADFIELD));
    audio_pipe_free(&p);
    audio_fe_cfg_default(&cfg);
    cr_assert(eq(int, audio_pipe_init(&p, &cfg, 0, 960), -EINVAL));
    audio_pipe_free(&p);
}

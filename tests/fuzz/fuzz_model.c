/* fuzz_model.c: fuzz target for the model loader (.kwsm file bytes).
 *
 * Each input is a model file. Its last 4 bytes are overwritten with the
 * CRC-32 of the rest, so mutations get past the checksum and reach the
 * header and field checks. A model the loader accepts must then build and
 * run everything the daemon builds from it: the listener (network state
 * and detector, frame time from the model's hop and rate, kws_frame_ms),
 * and the audio pipe from a 48 kHz device and at the model's own rate, fed
 * one block of sound whose frames step the network.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "kws/audio_pipe.h"
#include "kws/listener.h"
#include "kws/snn.h"
#include "model_file_internal.h"

struct run {
    const struct snn_model *m;
    struct kws_listener lis;
    struct audio_fe *fe;
};

static void on_frame(void *ctx, const float *feat, const float *spikes) {
    struct run *r = ctx;
    struct kws_hit hit;
    kws_listener_frame(&r->lis, feat, spikes, r->fe->zero_run, &hit);
    for (int c = 0; c < r->m->cfg.n_classes; c++)
        FUZZ_CHECK(!isnan(r->lis.v[c]));
}

/* One block of a 440 Hz tone with a little noise at rate Hz through a new
 * pipe: what the daemon's first audio block does. */
static void run_block(struct run *r, int rate) {
    static float x[9600]; /* 100 ms at up to 96 kHz */
    struct audio_pipe p = {0};
    size_t n = (size_t)rate / 10;

    for (size_t i = 0; i < n; i++)
        x[i] = 0.3f * sinf(6.2831853f * 440.0f * (float)i / (float)rate) +
               0.01f * (float)((int)(i * 2654435761u % 201) - 100) / 100.0f;
    FUZZ_CHECK(audio_pipe_init(&p, &r->m->cfg.fe, rate, n) == 0);
    r->fe = &p.fe;
    audio_pipe_push(&p, x, n, on_frame, r);
    audio_pipe_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct snn_model m = {0};
    char msg[512];
    uint8_t *b = malloc(size ? size : 1);
    if (!b)
        return 0;
    memcpy(b, data, size);
    if (size >= 4) {
        uint32_t crc = kwsm__crc32(b, size - 4);
        for (int i = 0; i < 4; i++)
            b[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    }
    int rc = snn_model_load_buffer(&m, b, size, msg, sizeof msg);
    free(b);
    if (rc < 0) {
        FUZZ_CHECK(msg[0] != '\0'); /* every refusal says why */
        return 0;
    }

    struct run r = {.m = &m};
    struct kws_listener_settings ls;
    const struct kws_frontend_cfg *fe = &m.cfg.fe;
    FUZZ_CHECK(kws_frame_ms(fe) > 0);
    FUZZ_CHECK(m.cfg.n_in == kws_frontend_n_out(fe));
    kws_listener_settings_default(&ls);
    ls.threshold = 0.5f;
    FUZZ_CHECK(kws_listener_init(&r.lis, &m, &ls) == 0);
    run_block(&r, 48000);
    if (fe->sample_rate != 48000)
        run_block(&r, fe->sample_rate);
    kws_listener_free(&r.lis);
    snn_model_free(&m);
    return 0;
}

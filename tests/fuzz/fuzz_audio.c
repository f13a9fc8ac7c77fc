/* fuzz_audio.c: fuzz target for the audio path, samples to detections.
 *
 * Each input is one byte of settings, then sound. The low 3 bits pick the
 * input rate (8 kHz to 96 kHz), the next 2 bits what the rest is:
 *   0: S16_LE samples, as ALSA capture delivers them (scaled by 1/32768);
 *   1: float32 samples, as a float device or file may deliver them, NaN,
 *      infinities and 1e30 included (audio_sanitize must catch them);
 *   2: a sound file (WAV, FLAC, ...) read by audio_file_read, which
 *      decodes with libsndfile and resamples to the model's rate;
 *   3: as 1.
 * The samples go the daemon's way: audio_sanitize, then the audio pipe
 * (resampler and front end) in blocks of the size in the settings' top
 * bits, then each frame through a listener (network and detector) of the
 * shipped model (models/commands.kwsm). Every readout potential must stay finite.
 *
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "kws/audio_file.h"
#include "kws/audio_pipe.h"
#include "kws/listener.h"
#include "kws/snn.h"

#ifndef KWSD_FUZZ_MODEL
#define KWSD_FUZZ_MODEL KWSD_SOURCE_DIR "/models/commands.kwsm"
#endif

static const int rates[8] = {8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000};
static const size_t blocks[4] = {1, 160, 441, 4096}; /* samples per push */

static struct snn_model model;
static struct kws_listener lis;
static struct audio_pipe pipes[8]; /* one per input rate, reset per input */
static struct audio_pipe file_pipe;
static struct audio_fe *cur_fe;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    char msg[512];
    struct kws_listener_settings ls;
    (void)argc;
    (void)argv;
    if (snn_model_load(&model, KWSD_FUZZ_MODEL, msg, sizeof msg) < 0) {
        fprintf(stderr, "%s: %s\n", KWSD_FUZZ_MODEL, msg);
        abort();
    }
    const struct kws_frontend_cfg *fe = &model.cfg.fe;
    kws_listener_settings_default(&ls);
    ls.threshold = 0.5f;
    FUZZ_CHECK(kws_listener_init(&lis, &model, &ls) == 0);
    for (int i = 0; i < 8; i++)
        FUZZ_CHECK(audio_pipe_init(&pipes[i], fe, rates[i], 4096) == 0);
    FUZZ_CHECK(audio_pipe_init(&file_pipe, fe, fe->sample_rate, 4096) == 0);
    return 0;
}

static void on_frame(void *ctx, const float *feat, const float *spikes) {
    struct kws_hit hit;
    (void)ctx;
    for (int f = 0; f < model.cfg.fe.n_mels; f++)
        FUZZ_CHECK(isfinite(feat[f]));
    kws_listener_frame(&lis, feat, spikes, cur_fe->zero_run, &hit);
    for (int c = 0; c < model.cfg.n_classes; c++)
        FUZZ_CHECK(isfinite(lis.v[c]));
}

/* Sanitises x (n) and pushes it through p in pieces of block samples. */
static void feed(struct audio_pipe *p, float *x, size_t n, size_t block) {
    audio_sanitize(x, n);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(fabsf(x[i]) <= AUDIO_SAMPLE_ABSURD);
    cur_fe = &p->fe;
    for (size_t i = 0; i < n; i += block)
        audio_pipe_push(p, x + i, n - i < block ? n - i : block, on_frame, NULL);
}

/* Mode 2: the bytes as a file, read the way kwsd-eval --wav reads one. */
static void feed_file(const uint8_t *data, size_t size, size_t block) {
    char path[64], msg[256];
    float *x = NULL;
    size_t n = 0;
    int fd = memfd_create("fuzz-audio", 0);
    if (fd < 0)
        return;
    if (write(fd, data, size) == (ssize_t)size) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        if (audio_file_read(path, model.cfg.fe.sample_rate, &x, &n, NULL, msg, sizeof msg) == 0)
            feed(&file_pipe, x, n, block);
        else
            FUZZ_CHECK(x == NULL && n == 0 && msg[0] != '\0');
    }
    free(x);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    int rate_i = data[0] & 7, mode = (data[0] >> 3) & 3;
    size_t block = blocks[data[0] >> 6];
    data++;
    size--;

    kws_listener_reset(&lis);
    if (mode == 2) {
        audio_pipe_reset(&file_pipe);
        feed_file(data, size, block);
        return 0;
    }
    size_t width = mode == 0 ? 2 : 4, n = size / width;
    float *x = malloc((n ? n : 1) * sizeof *x);
    if (!x)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (mode == 0) {
            int16_t s = (int16_t)(data[2 * i] | data[2 * i + 1] << 8);
            x[i] = (float)s * (1.0f / 32768.0f);
        } else {
            uint32_t u = (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 |
                         (uint32_t)data[4 * i + 2] << 16 | (uint32_t)data[4 * i + 3] << 24;
            memcpy(&x[i], &u, sizeof u);
        }
    }
    audio_pipe_reset(&pipes[rate_i]);
    feed(&pipes[rate_i], x, n, block);
    free(x);
    return 0;
}

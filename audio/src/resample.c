/* resample.c: streaming mono sample-rate conversion with libsamplerate.
 *
 * A thin wrapper over src_process() that keeps one converter per stream,
 * splits large blocks, reports a too-small output buffer instead of losing
 * samples silently, and turns equal rates into a copy. libsamplerate
 * allocates only in src_new(), so processing allocates nothing.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/resample.h"

#include <errno.h>
#include <math.h>
#include <samplerate.h>
#include <string.h>

/* Samples of lookahead the sinc converter may release in one call on top of
 * the block's own share; generous for SRC_SINC_MEDIUM_QUALITY at any ratio we
 * allow. */
#define RS_SLACK 1024

int audio_resampler_init(struct audio_resampler *r, int in_rate, int out_rate, size_t max_in) {
    int err = 0;

    memset(r, 0, sizeof *r);
    if (in_rate < 1000 || in_rate > 384000 || out_rate < 1000 || out_rate > 384000)
        return -EINVAL;
    r->in_rate = in_rate;
    r->out_rate = out_rate;
    r->ratio = (double)out_rate / in_rate;
    r->max_in = max_in ? max_in : 4096;
    if (in_rate == out_rate)
        return 0;
    r->src = src_new(SRC_SINC_MEDIUM_QUALITY, 1, &err);
    if (!r->src)
        return -ENOMEM; /* src_new fails only on allocation for a valid converter */
    return 0;
}

size_t audio_resampler_out_max(const struct audio_resampler *r, size_t n_in) {
    if (!r->src)
        return n_in;
    return (size_t)ceil((double)(n_in + RS_SLACK) * r->ratio) + 16;
}

/* Runs src_process over in (n_in samples, possibly 0 with eoi) until the
 * input is used up (or, with eoi, until the converter has nothing left). */
static int rs_run(struct audio_resampler *r, const float *in, size_t n_in, int eoi, float *out,
                  size_t out_cap, size_t *n_out) {
    size_t done = 0;

    for (;;) {
        size_t chunk = n_in < r->max_in ? n_in : r->max_in;
        SRC_DATA d = {
            .data_in = in,
            .data_out = out + done,
            .input_frames = (long)chunk,
            .output_frames = (long)(out_cap - done),
            .end_of_input = eoi && chunk == n_in,
            .src_ratio = r->ratio,
        };
        if (src_process((SRC_STATE *)r->src, &d) != 0) {
            *n_out = done;
            return -EIO;
        }
        in += d.input_frames_used;
        n_in -= (size_t)d.input_frames_used;
        done += (size_t)d.output_frames_gen;
        if (n_in == 0 && (!eoi || d.output_frames_gen == 0))
            break;
        if (done == out_cap) {
            *n_out = done;
            return -ENOBUFS;
        }
        if (d.input_frames_used == 0 && d.output_frames_gen == 0 && !eoi)
            break; /* no progress possible; cannot happen with room left */
    }
    *n_out = done;
    return n_in ? -ENOBUFS : 0;
}

int audio_resampler_process(struct audio_resampler *r, const float *in, size_t n_in, float *out,
                            size_t out_cap, size_t *n_out) {
    *n_out = 0;
    if (out_cap < audio_resampler_out_max(r, n_in))
        return -ENOBUFS;
    if (!r->src) {
        memcpy(out, in, n_in * sizeof(float));
        *n_out = n_in;
        return 0;
    }
    if (n_in == 0)
        return 0;
    return rs_run(r, in, n_in, 0, out, out_cap, n_out);
}

int audio_resampler_flush(struct audio_resampler *r, float *out, size_t out_cap, size_t *n_out) {
    static const float none[1];

    *n_out = 0;
    if (!r->src)
        return 0;
    return rs_run(r, none, 0, 1, out, out_cap, n_out);
}

void audio_resampler_reset(struct audio_resampler *r) {
    if (r->src)
        src_reset((SRC_STATE *)r->src);
}

void audio_resampler_free(struct audio_resampler *r) {
    if (r->src)
        src_delete((SRC_STATE *)r->src);
    r->src = NULL;
}

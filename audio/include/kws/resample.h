/* kws/resample.h: streaming sample-rate converter (libspeexdsp).
 *
 * Converts a mono stream from any rate to any rate, block by block, keeping
 * the filter state between calls, so a microphone at 48, 44.1, 32 or
 * 22.05 kHz feeds a 16 kHz front end. Uses libspeexdsp's windowed-sinc
 * resampler at AUDIO_RESAMPLER_QUALITY (docs/BENCHMARKS.md, "Resampler",
 * has its measured passband, aliasing rejection and cost). Equal rates are
 * a plain copy. The converter's output is time-aligned with its input: the
 * filter's delay is skipped at the start, and audio_resampler_flush releases
 * the samples it holds back at the end of a stream.
 *
 *     struct audio_resampler rs = {0};
 *     audio_resampler_init(&rs, 48000, 16000, 960);
 *     size_t cap = audio_resampler_out_max(&rs, 960);   // allocate out[cap] once
 *     audio_resampler_process(&rs, in, n_in, out, cap, &n_out);
 *     audio_resampler_free(&rs);
 *
 * Thread-safety: one resampler is used by one thread at a time.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_AUDIO_RESAMPLE_H
#define KWS_AUDIO_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

/* libspeexdsp's quality level (0..10) that audio_resampler_init uses. */
#define AUDIO_RESAMPLER_QUALITY 4

struct audio_resampler {
    void *src;            /* SpeexResamplerState *, NULL when the rates are equal */
    double ratio;         /* out_rate / in_rate */
    int in_rate;          /* Hz */
    int out_rate;         /* Hz */
    size_t max_in;        /* largest block handed to libspeexdsp at once, samples */
    size_t latency_out;   /* the filter's delay, output samples */
    uint64_t n_in_total;  /* input samples converted since init or reset */
    uint64_t n_out_total; /* output samples made since init or reset */
};

/* Sets up a converter from in_rate to out_rate (both 1000..384000 Hz).
 * max_in bounds the block size passed to libspeexdsp per step (larger
 * inputs are processed in pieces). Returns 0, -EINVAL or -ENOMEM. */
int audio_resampler_init(struct audio_resampler *r, int in_rate, int out_rate, size_t max_in);

/* audio_resampler_init at another libspeexdsp quality level (0..10; -EINVAL
 * outside), for measuring the levels against each other. */
int audio_resampler_init_quality(struct audio_resampler *r, int in_rate, int out_rate,
                                 size_t max_in, int quality);

/* Output capacity, in samples, that is always enough for n_in input samples. */
size_t audio_resampler_out_max(const struct audio_resampler *r, size_t n_in);

/* Converts n_in samples from in into out (capacity out_cap samples), setting
 * *n_out. Returns 0; -ENOBUFS, without touching anything, if out_cap is below
 * audio_resampler_out_max(r, n_in); -EIO on a libspeexdsp error. No
 * allocation. */
int audio_resampler_process(struct audio_resampler *r, const float *in, size_t n_in, float *out,
                            size_t out_cap, size_t *n_out);

/* Ends the stream: writes the samples still held back by the filter's
 * lookahead into out (audio_resampler_out_max(r, 0) is enough room) and sets
 * *n_out. Call audio_resampler_reset before reusing the converter. Returns 0,
 * -ENOBUFS if out filled up first, or -EIO. */
int audio_resampler_flush(struct audio_resampler *r, float *out, size_t out_cap, size_t *n_out);

/* Clears the filter state for a new stream. */
void audio_resampler_reset(struct audio_resampler *r);

/* Frees the converter. Safe on a zeroed struct and twice. */
void audio_resampler_free(struct audio_resampler *r);

#endif /* KWS_AUDIO_RESAMPLE_H */

/* resample.c: streaming mono sample-rate conversion with libspeexdsp.
 *
 * A thin wrapper over speex_resampler_process_float() that keeps one
 * converter per stream, aligns its output in time with its input (the
 * filter's delay is skipped at the start and released by a flush of zeros
 * at the end), splits large blocks, reports a too-small output buffer
 * instead of losing samples silently, and turns equal rates into a copy.
 * libspeexdsp allocates only in speex_resampler_init(), so processing
 * allocates nothing.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/resample.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <speex/speex_resampler.h>
#include <string.h>

_Static_assert(AUDIO_RESAMPLER_QUALITY >= SPEEX_RESAMPLER_QUALITY_MIN &&
                   AUDIO_RESAMPLER_QUALITY <= SPEEX_RESAMPLER_QUALITY_MAX,
               "a libspeexdsp quality level");

int audio_resampler_init_quality(struct audio_resampler *r, int in_rate, int out_rate,
                                 size_t max_in, int quality) {
    int err = 0;

    memset(r, 0, sizeof *r);
    if (in_rate < 1000 || in_rate > 384000 || out_rate < 1000 || out_rate > 384000 ||
        quality < SPEEX_RESAMPLER_QUALITY_MIN || quality > SPEEX_RESAMPLER_QUALITY_MAX)
        return -EINVAL;
    r->in_rate = in_rate;
    r->out_rate = out_rate;
    r->ratio = (double)out_rate / in_rate;
    r->max_in = max_in ? max_in : 4096;
    if (r->max_in > UINT32_MAX / 2)
        r->max_in = UINT32_MAX / 2; /* libspeexdsp counts in 32 bits */
    if (in_rate == out_rate)
        return 0;
    r->src = speex_resampler_init(1, (spx_uint32_t)in_rate, (spx_uint32_t)out_rate, quality, &err);
    if (!r->src)
        return err == RESAMPLER_ERR_ALLOC_FAILED ? -ENOMEM : -EINVAL;
    speex_resampler_skip_zeros(r->src);
    r->latency_out = (size_t)speex_resampler_get_output_latency(r->src);
    return 0;
}

int audio_resampler_init(struct audio_resampler *r, int in_rate, int out_rate, size_t max_in) {
    return audio_resampler_init_quality(r, in_rate, out_rate, max_in, AUDIO_RESAMPLER_QUALITY);
}

size_t audio_resampler_out_max(const struct audio_resampler *r, size_t n_in) {
    if (!r->src)
        return n_in;
    /* A block gives at most its own share plus one sample of rounding; the
     * flush gives what the filter's delay held back. */
    return (size_t)ceil((double)n_in * r->ratio) + r->latency_out + 8;
}

/* Runs libspeexdsp over n_in samples of in (NULL: zeros), writing at most
 * out_cap samples; sets *used and *made. */
static int rs_step(struct audio_resampler *r, const float *in, size_t n_in, float *out,
                   size_t out_cap, size_t *used, size_t *made) {
    spx_uint32_t ilen = (spx_uint32_t)n_in;
    spx_uint32_t olen = out_cap > UINT32_MAX ? UINT32_MAX : (spx_uint32_t)out_cap;

    *used = 0;
    *made = 0;
    if (speex_resampler_process_float(r->src, 0, in, &ilen, out, &olen) != RESAMPLER_ERR_SUCCESS)
        return -EIO;
    *used = ilen;
    *made = olen;
    return 0;
}

int audio_resampler_process(struct audio_resampler *r, const float *in, size_t n_in, float *out,
                            size_t out_cap, size_t *n_out) {
    size_t done = 0;

    *n_out = 0;
    if (out_cap < audio_resampler_out_max(r, n_in))
        return -ENOBUFS;
    if (!r->src) {
        memcpy(out, in, n_in * sizeof(float));
        *n_out = n_in;
        return 0;
    }
    while (n_in > 0) {
        size_t chunk = n_in < r->max_in ? n_in : r->max_in, used, made;
        int rc = rs_step(r, in, chunk, out + done, out_cap - done, &used, &made);
        r->n_in_total += used;
        r->n_out_total += made;
        done += made;
        in += used;
        n_in -= used;
        if (rc < 0 || used == 0) { /* used == 0: out of room, which the check above rules out */
            *n_out = done;
            return rc < 0 ? rc : -ENOBUFS;
        }
    }
    *n_out = done;
    return 0;
}

int audio_resampler_flush(struct audio_resampler *r, float *out, size_t out_cap, size_t *n_out) {
    uint64_t want, done = 0;

    *n_out = 0;
    if (!r->src)
        return 0;
    /* Output sample k stands for time k / out_rate: the stream [0, n_in_total
     * / in_rate) holds ceil(n_in_total * out_rate / in_rate) of them. */
    want =
        (r->n_in_total * (uint64_t)r->out_rate + (uint64_t)r->in_rate - 1) / (uint64_t)r->in_rate;
    want = want > r->n_out_total ? want - r->n_out_total : 0;
    while (done < want) {
        size_t room = out_cap - (size_t)done, used, made;
        if (room == 0) {
            *n_out = (size_t)done;
            return -ENOBUFS;
        }
        if (room > want - done)
            room = (size_t)(want - done);
        int rc = rs_step(r, NULL, r->max_in, out + done, room, &used, &made);
        r->n_out_total += made;
        done += made;
        if (rc < 0 || made == 0) {
            *n_out = (size_t)done;
            return rc < 0 ? rc : -EIO;
        }
    }
    *n_out = (size_t)done;
    return 0;
}

void audio_resampler_reset(struct audio_resampler *r) {
    if (!r->src)
        return;
    speex_resampler_reset_mem(r->src);
    speex_resampler_skip_zeros(r->src);
    r->n_in_total = 0;
    r->n_out_total = 0;
}

void audio_resampler_free(struct audio_resampler *r) {
    if (r->src)
        speex_resampler_destroy(r->src);
    r->src = NULL;
}

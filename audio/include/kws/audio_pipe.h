/* kws/audio_pipe.h: resampler -> front end, the daemon's audio path in one call.
 *
 * Takes blocks at the capture device's rate, converts them to the model's
 * cfg->sample_rate with kws/resample.h and feeds the front end of
 * kws/frontend.h, which calls back once per 10 ms frame.
 *
 *     struct audio_pipe p = {0};
 *     audio_pipe_init(&p, &model_fe_cfg, 48000, 960);
 *     // in the capture callback:
 *     audio_pipe_set_in_rate(&p, rate);              // no-op unless the device changed
 *     audio_pipe_push(&p, mono, n, on_frame, ctx);   // on_frame(ctx, feat, spikes)
 *     audio_pipe_free(&p);
 *
 * Thread-safety: one pipe is used by one thread at a time.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_AUDIO_AUDIO_PIPE_H
#define KWS_AUDIO_AUDIO_PIPE_H

#include <stddef.h>

#include "kws/frontend.h"
#include "kws/resample.h"

struct audio_pipe {
    struct audio_resampler rs;
    struct audio_fe fe;
    int in_rate;   /* Hz of the input blocks */
    size_t max_in; /* input samples converted per resampler step */
    float *buf;    /* (buf_cap) resampled samples */
    size_t buf_cap;
};

/* Builds the resampler (in_rate -> cfg->sample_rate) and the front end.
 * max_in is a block size hint (e.g. one capture period); larger pushes are
 * split. Returns 0, -EINVAL, -KWS_EBADFIELD or -ENOMEM; safe to free after a
 * failure. */
int audio_pipe_init(struct audio_pipe *p, const struct kws_frontend_cfg *cfg, int in_rate,
                    size_t max_in);

/* Switches to a new input rate (after a device reopen): rebuilds the
 * resampler and resets the front end. A no-op when in_rate is unchanged.
 * Allocates only when the rate changes. Returns 0, -EINVAL or -ENOMEM. */
int audio_pipe_set_in_rate(struct audio_pipe *p, int in_rate);

/* Pushes n samples at in_rate; cb(ctx, feat, spikes) runs for each completed
 * frame. No allocation. */
void audio_pipe_push(struct audio_pipe *p, const float *x, size_t n, audio_fe_frame_cb cb,
                     void *ctx);

/* Starts a new stream (resampler and front end state cleared). */
void audio_pipe_reset(struct audio_pipe *p);

/* Frees everything. Safe on a zeroed or half-built struct and twice. */
void audio_pipe_free(struct audio_pipe *p);

#endif /* KWS_AUDIO_AUDIO_PIPE_H */

/* audio_pipe.c: the resampler feeding the front end, block by block.
 *
 * Input blocks are cut into pieces of at most max_in samples, each converted
 * into one preallocated buffer and pushed through the front end, so a push
 * of any size allocates nothing.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/audio_pipe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* (Re)builds the resampler and its output buffer for in_rate. */
static int pipe_rs_build(struct audio_pipe *p, int in_rate) {
    struct audio_resampler rs;
    size_t cap;
    float *buf;
    int rc;

    rc = audio_resampler_init(&rs, in_rate, p->fe.cfg.sample_rate, p->max_in);
    if (rc < 0)
        return rc;
    cap = audio_resampler_out_max(&rs, p->max_in);
    if (cap > p->buf_cap) {
        buf = realloc(p->buf, cap * sizeof(float));
        if (!buf) {
            audio_resampler_free(&rs);
            return -ENOMEM;
        }
        p->buf = buf;
        p->buf_cap = cap;
    }
    audio_resampler_free(&p->rs);
    p->rs = rs;
    p->in_rate = in_rate;
    return 0;
}

int audio_pipe_init(struct audio_pipe *p, const struct kws_frontend_cfg *cfg, int in_rate,
                    size_t max_in) {
    int rc;

    memset(p, 0, sizeof *p);
    p->max_in = max_in ? max_in : 4096;
    rc = audio_fe_init(&p->fe, cfg);
    if (rc == 0)
        rc = pipe_rs_build(p, in_rate);
    if (rc < 0)
        audio_pipe_free(p);
    return rc;
}

int audio_pipe_set_in_rate(struct audio_pipe *p, int in_rate) {
    int rc;

    if (in_rate == p->in_rate)
        return 0;
    rc = pipe_rs_build(p, in_rate);
    if (rc == 0)
        audio_fe_reset(&p->fe);
    return rc;
}

void audio_pipe_push(struct audio_pipe *p, const float *x, size_t n, audio_fe_frame_cb cb,
                     void *ctx) {
    if (!p->rs.src) { /* same rate: no conversion, no copy */
        audio_fe_push(&p->fe, x, n, cb, ctx);
        return;
    }
    while (n > 0) {
        size_t chunk = n < p->max_in ? n : p->max_in, got = 0;
        /* The buffer holds audio_resampler_out_max(max_in) samples, so this
         * cannot run out of room; any error leaves got at what was made. */
        (void)audio_resampler_process(&p->rs, x, chunk, p->buf, p->buf_cap, &got);
        audio_fe_push(&p->fe, p->buf, got, cb, ctx);
        x += chunk;
        n -= chunk;
    }
}

void audio_pipe_reset(struct audio_pipe *p) {
    audio_resampler_reset(&p->rs);
    audio_fe_reset(&p->fe);
}

void audio_pipe_free(struct audio_pipe *p) {
    audio_resampler_free(&p->rs);
    audio_fe_free(&p->fe);
    free(p->buf);
    memset(p, 0, sizeof *p);
}

/* capture.c: non-blocking ALSA capture driven by a libuv loop.
 *
 * The PCM is opened with SND_PCM_NONBLOCK; its poll descriptors are watched
 * with one uv_poll_t each (or a per-period uv_timer for descriptors epoll
 * cannot watch). A wake-up translates the events with
 * snd_pcm_poll_descriptors_revents and reads periods until -EAGAIN. Stream
 * stops are recovered in place; anything else closes the device (poll
 * handles first, then the PCM, so no descriptor is closed under libuv) and a
 * backoff timer reopens it. kws/capture.h documents the behaviour.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/capture.h"

#include <alsa/asoundlib.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/log.h"

#define RETRY_FIRST_MS AUDIO_CAPTURE_RETRY_FIRST_MS
#define RETRY_MAX_MS AUDIO_CAPTURE_RETRY_MAX_MS
#define RECOVERIES_PER_WAKEUP 4

static void cap_on_poll(uv_poll_t *h, int status, int events);
static void cap_on_timer(uv_timer_t *t);
static void cap_lost(struct audio_capture *c, int err, const char *what);

/* ==== alsa-lib's own diagnostics ==== */

/* alsa-lib prints its errors to stderr unless told otherwise; a library must
 * not print, so they go to the kwsd log at debug level instead. */
static void cap_alsa_error(const char *file, int line, const char *func, int err, const char *fmt,
                           ...) __attribute__((format(printf, 5, 6)));

static void cap_alsa_error(const char *file, int line, const char *func, int err, const char *fmt,
                           ...) {
    char buf[512];
    va_list ap;

    if (KWS_LOG_DEBUG > kws__log_max)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    kws_log(KWS_LOG_DEBUG, file, line, "alsa-lib: %s: %s%s%s", func, buf, err ? ": " : "",
            err ? snd_strerror(err) : "");
}

/* Logs the first few occurrences of a recurring event, then only powers of
 * two, so a flapping device cannot flood the journal. */
static int cap_log_due(uint32_t count) {
    return count <= 5 || (count & (count - 1)) == 0;
}

/* ==== Opening and configuring the PCM ==== */

static const snd_pcm_format_t cap_formats[] = {SND_PCM_FORMAT_S16_LE, SND_PCM_FORMAT_S32_LE,
                                               SND_PCM_FORMAT_FLOAT_LE};

/* Negotiates access, format, channels, rate, period and buffer. */
static int cap_hw_setup(struct audio_capture *c, snd_pcm_t *pcm, char *msg, size_t msglen) {
    snd_pcm_hw_params_t *hw;
    snd_pcm_sw_params_t *sw;
    snd_pcm_format_t fmt = SND_PCM_FORMAT_UNKNOWN;
    unsigned int rate = (unsigned int)c->req_rate;
    unsigned int channels = c->req_channels ? (unsigned int)c->req_channels : 1;
    unsigned int period_us = (unsigned int)c->req_period_ms * 1000u;
    unsigned int buffer_us = period_us * 10u;
    snd_pcm_uframes_t period = 0, buffer = 0;
    int rc;
    const char *step;

    snd_pcm_hw_params_alloca(&hw);
    snd_pcm_sw_params_alloca(&sw);
    step = "no configurations available";
    if ((rc = snd_pcm_hw_params_any(pcm, hw)) < 0)
        goto fail;
    step = "interleaved access";
    if ((rc = snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_RW_INTERLEAVED)) < 0)
        goto fail;
    for (size_t i = 0; i < KWS_ARRAY_SIZE(cap_formats); i++) {
        if (c->req_format != AUDIO_CAPTURE_FMT_AUTO && (size_t)c->req_format != i + 1)
            continue;
        if (snd_pcm_hw_params_test_format(pcm, hw, cap_formats[i]) == 0) {
            fmt = cap_formats[i];
            break;
        }
    }
    if (fmt == SND_PCM_FORMAT_UNKNOWN) {
        kws_errmsg(0, msg, msglen, "%s: no supported sample format (%s)", c->device,
                   c->req_format == AUDIO_CAPTURE_FMT_AUTO
                       ? "S16_LE, S32_LE or FLOAT_LE"
                       : snd_pcm_format_name(cap_formats[c->req_format - 1]));
        return KWS_EFORMAT;
    }
    step = "format";
    if ((rc = snd_pcm_hw_params_set_format(pcm, hw, fmt)) < 0)
        goto fail;
    step = "channels";
    if (c->req_channels)
        rc = snd_pcm_hw_params_set_channels(pcm, hw, channels);
    else
        rc = snd_pcm_hw_params_set_channels_near(pcm, hw, &channels);
    if (rc < 0)
        goto fail;
    step = "rate";
    if ((rc = snd_pcm_hw_params_set_rate_near(pcm, hw, &rate, NULL)) < 0)
        goto fail;
    step = "period time";
    if ((rc = snd_pcm_hw_params_set_period_time_near(pcm, hw, &period_us, NULL)) < 0)
        goto fail;
    step = "buffer time";
    if ((rc = snd_pcm_hw_params_set_buffer_time_near(pcm, hw, &buffer_us, NULL)) < 0)
        goto fail;
    step = "hardware parameters";
    if ((rc = snd_pcm_hw_params(pcm, hw)) < 0)
        goto fail;
    snd_pcm_hw_params_get_period_size(hw, &period, NULL);
    snd_pcm_hw_params_get_buffer_size(hw, &buffer);
    if (period == 0 || buffer < period) {
        rc = -EINVAL;
        goto fail;
    }

    step = "software parameters";
    if ((rc = snd_pcm_sw_params_current(pcm, sw)) < 0 ||
        (rc = snd_pcm_sw_params_set_avail_min(pcm, sw, period)) < 0 ||
        (rc = snd_pcm_sw_params(pcm, sw)) < 0)
        goto fail;

    c->fmt = (int)fmt;
    c->sample_bytes = fmt == SND_PCM_FORMAT_S16_LE ? 2 : 4;
    c->buffer_frames = buffer;
    c->stats.rate = (int)rate;
    c->stats.channels = (int)channels;
    c->stats.period = (int)period;
    c->stats.format = snd_pcm_format_name(fmt);
    return 0;

fail:
    kws_errmsg(0, msg, msglen, "%s: cannot set %s: %s", c->device, step, snd_strerror(rc));
    return rc;
}

/* Grows the sample buffers to one period of the current configuration. */
static int cap_buffers(struct audio_capture *c) {
    size_t period = (size_t)c->stats.period;
    size_t raw = period * (size_t)c->stats.channels * (size_t)c->sample_bytes;

    if (raw > c->raw_cap) {
        void *p = realloc(c->raw, raw);
        if (!p)
            return -ENOMEM;
        c->raw = p;
        c->raw_cap = raw;
    }
    if (period > c->mono_cap) {
        float *p = realloc(c->mono, period * sizeof(float));
        if (!p)
            return -ENOMEM;
        c->mono = p;
        c->mono_cap = period;
    }
    return 0;
}

/* Starts watching the PCM's descriptors: a uv_poll_t per distinct fd that
 * epoll accepts, the periodic tick if any fd is refused. Cannot fail: the
 * tick serves any device, just with a period's latency. */
static void cap_watch(struct audio_capture *c) {
    struct pollfd *pf = c->pfds;

    c->n_polls = 0;
    c->tick = 0;
    for (int i = 0; i < c->n_pfds; i++) {
        int dup = 0, j;
        for (j = 0; j < c->n_polls; j++)
            dup |= c->poll_fd[j] == pf[i].fd;
        if (dup)
            continue;
        if (c->n_polls == AUDIO_CAPTURE_MAX_FDS ||
            uv_poll_init(c->loop, &c->polls[c->n_polls], pf[i].fd) < 0) {
            c->tick = 1;
            continue;
        }
        c->polls[c->n_polls].data = c;
        c->poll_fd[c->n_polls] = pf[i].fd;
        uv_poll_start(&c->polls[c->n_polls], UV_READABLE, cap_on_poll);
        c->n_polls++;
    }
    if (c->n_polls == 0)
        c->tick = 1;
    if (c->tick) {
        uint64_t ms = (uint64_t)c->stats.period * 1000u / (uint64_t)c->stats.rate;
        uv_timer_start(&c->timer, cap_on_timer, ms ? ms : 1, ms ? ms : 1);
    }
}

/* Opens and starts the PCM; on failure nothing is left open. The loop
 * handles are not touched here except by cap_watch on success. */
static int cap_open_pcm(struct audio_capture *c, char *msg, size_t msglen) {
    snd_pcm_t *pcm = NULL;
    int rc, n;

    rc = snd_pcm_open(&pcm, c->device, SND_PCM_STREAM_CAPTURE, SND_PCM_NONBLOCK);
    if (rc < 0) {
        kws_errmsg(0, msg, msglen, "%s: cannot open for capture: %s", c->device, snd_strerror(rc));
        return rc;
    }
    rc = cap_hw_setup(c, pcm, msg, msglen);
    if (rc < 0)
        goto fail;
    rc = cap_buffers(c);
    if (rc < 0) {
        kws_errmsg(0, msg, msglen, "%s: out of memory", c->device);
        goto fail;
    }
    n = snd_pcm_poll_descriptors_count(pcm);
    if (n <= 0 || n > 64) {
        rc = n < 0 ? n : -EINVAL;
        kws_errmsg(0, msg, msglen, "%s: bad poll descriptor count %d", c->device, n);
        goto fail;
    }
    if (n > c->n_pfds) {
        void *p = realloc(c->pfds, (size_t)n * sizeof(struct pollfd));
        if (!p) {
            rc = -ENOMEM;
            kws_errmsg(0, msg, msglen, "%s: out of memory", c->device);
            goto fail;
        }
        c->pfds = p;
    }
    c->n_pfds = snd_pcm_poll_descriptors(pcm, c->pfds, (unsigned int)n);
    if (c->n_pfds <= 0) {
        rc = c->n_pfds < 0 ? c->n_pfds : -EINVAL;
        c->n_pfds = 0;
        kws_errmsg(0, msg, msglen, "%s: no poll descriptors", c->device);
        goto fail;
    }
    if ((rc = snd_pcm_prepare(pcm)) < 0 || (rc = snd_pcm_start(pcm)) < 0) {
        kws_errmsg(0, msg, msglen, "%s: cannot start capture: %s", c->device, snd_strerror(rc));
        goto fail;
    }
    c->pcm = pcm;
    c->stats.open = 1;
    KWS_LOG(KWS_LOG_DEBUG, "capture %s: %d Hz, %d channel(s), %s, period %d samples, buffer %zu",
            c->device, c->stats.rate, c->stats.channels, c->stats.format, c->stats.period,
            c->buffer_frames);
    return 0;

fail:
    snd_pcm_close(pcm);
    return rc;
}

/* ==== Reading ==== */

/* Converts channel 0 of n interleaved frames in c->raw to floats in c->mono. */
static void cap_convert(struct audio_capture *c, size_t n) {
    size_t ch = (size_t)c->stats.channels;

    switch ((snd_pcm_format_t)c->fmt) {
    case SND_PCM_FORMAT_S16_LE: {
        const int16_t *s = c->raw;
        for (size_t i = 0; i < n; i++)
            c->mono[i] = (float)s[i * ch] * (1.0f / 32768.0f);
        break;
    }
    case SND_PCM_FORMAT_S32_LE: {
        const int32_t *s = c->raw;
        for (size_t i = 0; i < n; i++)
            c->mono[i] = (float)s[i * ch] * (1.0f / 2147483648.0f);
        break;
    }
    default: {
        const float *s = c->raw;
        for (size_t i = 0; i < n; i++)
            c->mono[i] = s[i * ch];
        /* Integers cannot leave [-1, 1); a float driver can send anything. */
        c->stats.bad += audio_sanitize(c->mono, n);
        break;
    }
    }
}

/* Restarts a stopped stream in place. Returns 0, or the error that makes the
 * device count as lost. */
static int cap_recover(struct audio_capture *c, int err) {
    int rc;

    if (err != -EPIPE && err != -ESTRPIPE && err != -EBADFD)
        return err;
    c->stats.xruns++;
    if (cap_log_due(c->stats.xruns))
        KWS_LOG(KWS_LOG_WARNING, "capture %s: %s (%u so far), restarting the stream", c->device,
                err == -EPIPE ? "overrun" : snd_strerror(err), c->stats.xruns);
    if (err == -ESTRPIPE && snd_pcm_resume(c->pcm) == 0)
        return 0;
    if ((rc = snd_pcm_prepare(c->pcm)) < 0 || (rc = snd_pcm_start(c->pcm)) < 0)
        return rc;
    return 0;
}

/* Reads until the device has nothing more (-EAGAIN), at most one buffer, and
 * hands every block to the callback. */
static void cap_drain(struct audio_capture *c) {
    size_t budget = c->buffer_frames;
    int recoveries = 0;

    while (c->stats.open && !c->closing && budget > 0) {
        snd_pcm_uframes_t want = (snd_pcm_uframes_t)c->stats.period;
        snd_pcm_sframes_t got;

        if (want > budget)
            want = budget;
        got = snd_pcm_readi(c->pcm, c->raw, want);
        if (got == -EAGAIN || got == 0)
            return;
        if (got < 0) {
            int rc = ++recoveries > RECOVERIES_PER_WAKEUP ? (int)got : cap_recover(c, (int)got);
            if (rc < 0) {
                cap_lost(c, rc, "read");
                return;
            }
            continue;
        }
        cap_convert(c, (size_t)got);
        c->stats.frames += (uint64_t)got;
        budget -= (size_t)got;
        c->cb(c->ctx, c->mono, (size_t)got, c->stats.rate);
    }
}

static void cap_on_poll(uv_poll_t *h, int status, int events) {
    struct audio_capture *c = h->data;
    struct pollfd *pf = c->pfds;
    unsigned short revents = 0;
    int fd = -1;

    if (!c->stats.open || c->closing)
        return;
    for (int i = 0; i < c->n_polls; i++)
        if (&c->polls[i] == h)
            fd = c->poll_fd[i];
    for (int i = 0; i < c->n_pfds; i++) {
        pf[i].revents = 0;
        if (pf[i].fd != fd)
            continue;
        if (status < 0)
            pf[i].revents = POLLERR; /* libuv stops the handle on POLLERR */
        else
            pf[i].revents = (short)(((events & UV_READABLE) ? POLLIN : 0) |
                                    ((events & UV_WRITABLE) ? POLLOUT : 0));
    }
    if (snd_pcm_poll_descriptors_revents(c->pcm, pf, (unsigned int)c->n_pfds, &revents) < 0)
        revents = POLLERR;
    if (revents & (POLLIN | POLLERR | POLLNVAL))
        cap_drain(c); /* on an error the read reports what happened */
    if (status < 0 && c->stats.open && !c->closing && !uv_is_closing((uv_handle_t *)h))
        uv_poll_start(h, UV_READABLE, cap_on_poll);
}

/* ==== Losing and reopening the device ==== */

static void cap_after_close(struct audio_capture *c);

static void cap_on_handle_closed(uv_handle_t *h) {
    struct audio_capture *c = h->data;

    if (--c->pending == 0)
        cap_after_close(c);
}

/* Closes every poll handle; the PCM is closed once libuv has let go. */
static void cap_close_polls(struct audio_capture *c) {
    for (int i = 0; i < c->n_polls; i++) {
        c->pending++;
        uv_close((uv_handle_t *)&c->polls[i], cap_on_handle_closed);
    }
    c->n_polls = 0;
}

static void cap_close_pcm(struct audio_capture *c) {
    if (c->pcm) {
        snd_pcm_close(c->pcm);
        c->pcm = NULL;
    }
    c->stats.open = 0;
}

/* Runs once no close callback is pending: closes the PCM, then either ends
 * (audio_capture_close) or arms the reopen timer. */
static void cap_after_close(struct audio_capture *c) {
    cap_close_pcm(c);
    if (c->closing) {
        free(c->raw);
        free(c->mono);
        free(c->pfds);
        c->raw = NULL;
        c->mono = NULL;
        c->pfds = NULL;
        c->raw_cap = c->mono_cap = 0;
        c->n_pfds = 0;
        if (c->on_closed)
            c->on_closed(c);
        return;
    }
    uv_timer_start(&c->timer, cap_on_timer, (uint64_t)c->retry_ms, 0);
}

static void cap_lost(struct audio_capture *c, int err, const char *what) {
    KWS_LOG(KWS_LOG_ERR, "capture %s: %s failed: %s; closing and reopening", c->device, what,
            snd_strerror(err));
    uv_timer_stop(&c->timer);
    c->tick = 0;
    c->stats.open = 0;
    c->retry_ms = RETRY_FIRST_MS;
    c->attempts = 0;
    cap_close_polls(c);
    if (c->pending == 0)
        cap_after_close(c);
}

static void cap_on_timer(uv_timer_t *t) {
    struct audio_capture *c = t->data;
    char msg[256];

    if (c->closing)
        return;
    if (c->pcm) { /* the tick of an always-ready device */
        cap_drain(c);
        return;
    }
    if (cap_open_pcm(c, msg, sizeof msg) < 0) {
        c->stats.errors++;
        c->attempts++;
        if (cap_log_due(c->attempts))
            KWS_LOG(KWS_LOG_WARNING, "%s (attempt %u, next in %d ms)", msg, c->attempts,
                    c->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : c->retry_ms * 2);
        c->retry_ms = c->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : c->retry_ms * 2;
        uv_timer_start(&c->timer, cap_on_timer, (uint64_t)c->retry_ms, 0);
        return;
    }
    c->stats.reopens++;
    KWS_LOG(KWS_LOG_NOTICE, "capture %s: %s after %u failed attempt(s): %d Hz, %s", c->device,
            c->opened ? "reopened" : "opened", c->attempts, c->stats.rate, c->stats.format);
    c->opened = 1;
    cap_watch(c);
}

/* ==== Public API ==== */

int audio_capture_open(struct audio_capture *c, uv_loop_t *loop,
                       const struct audio_capture_cfg *cfg, audio_capture_cb cb, void *ctx,
                       char *msg, size_t msglen) {
    const char *dev = cfg->device ? cfg->device : "default";
    int rc;

    memset(c, 0, sizeof *c);
    if (strlen(dev) >= sizeof c->device || cfg->rate < 0 || cfg->rate > 384000 ||
        cfg->period_ms < 0 || cfg->period_ms > 1000 || cfg->format < 0 ||
        cfg->format > AUDIO_CAPTURE_FMT_FLOAT_LE || cfg->channels < 0 || cfg->channels > 64 ||
        !cb) {
        kws_errmsg(0, msg, msglen, "%.64s: invalid capture settings (rate %d, period %d ms)", dev,
                   cfg->rate, cfg->period_ms);
        return -EINVAL;
    }
    snd_lib_error_set_handler(cap_alsa_error);
    snprintf(c->device, sizeof c->device, "%s", dev);
    c->loop = loop;
    c->req_rate = cfg->rate ? cfg->rate : 16000;
    c->req_period_ms = cfg->period_ms ? cfg->period_ms : 20;
    c->req_format = cfg->format;
    c->req_channels = cfg->channels;
    c->cb = cb;
    c->ctx = ctx;
    c->retry_ms = RETRY_FIRST_MS;
    rc = cap_open_pcm(c, msg, msglen);
    if (rc < 0 && !cfg->wait) {
        free(c->raw);
        free(c->mono);
        free(c->pfds);
        memset(c, 0, sizeof *c);
        return rc;
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    if (rc < 0) { /* not there yet: the reopen timer takes over, as after a loss */
        c->stats.errors++;
        c->attempts++;
        KWS_LOG(KWS_LOG_WARNING, "%s; waiting for it (attempt %u, next in %d ms)", msg, c->attempts,
                c->retry_ms);
        uv_timer_start(&c->timer, cap_on_timer, (uint64_t)c->retry_ms, 0);
        return 0;
    }
    c->opened = 1;
    cap_watch(c);
    return 0;
}

void audio_capture_close(struct audio_capture *c, void (*on_closed)(struct audio_capture *c)) {
    if (c->closing)
        return;
    c->closing = 1;
    c->on_closed = on_closed;
    c->pending++;
    uv_close((uv_handle_t *)&c->timer, cap_on_handle_closed);
    cap_close_polls(c);
}

void audio_capture_get_stats(const struct audio_capture *c, struct audio_capture_stats *st) {
    *st = c->stats;
}

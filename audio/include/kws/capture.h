/* kws/capture.h: ALSA capture inside a libuv loop.
 *
 * Opens an ALSA PCM non-blocking, watches each of its poll descriptors with
 * one uv_poll_t, and on readiness reads whole periods until the device has no
 * more (-EAGAIN), handing channel 0 of each block to a callback as floats in
 * [-1, 1). The format is S16_LE if the device offers it, else S32_LE, else
 * FLOAT_LE (or the one cfg->format forces); any channel count; the rate is the one the device
 * grants for cfg->rate (reported to the callback and in the stats: resample it, e.g. with
 * kws/audio_pipe.h).
 *
 * Faults never end the stream:
 *   - an overrun (-EPIPE), a suspend (-ESTRPIPE) or a stream left stopped
 *     (-EBADFD, e.g. after snd_pcm_drop) is recovered with snd_pcm_prepare +
 *     snd_pcm_start, counted in stats.xruns and logged (KWS_LOG);
 *   - any other error (-ENODEV when a USB microphone is unplugged, -EIO, or a
 *     failed recovery) closes the device and reopens it from a uv_timer with
 *     backoff (100 ms, doubling up to 5 s) while the loop keeps running;
 *     stats.open is 0 meanwhile and stats.reopens counts successful reopens;
 *   - with cfg->wait set, a device that cannot be opened at all yet (a USB
 *     microphone not plugged in at boot, a name that alsa-lib does not know
 *     yet) is treated as one lost at once: audio_capture_open succeeds with
 *     stats.open 0 and the reason in msg, and the same backoff timer opens
 *     it when it appears (stats.errors counts the failed attempts, the first
 *     included; stats.reopens becomes 1). Without it such an open fails.
 * Logging: overruns, losses, failed reopens (rate-limited) and reopens go
 * through KWS_LOG; alsa-lib's own error messages, which it would print on
 * stderr, are routed to KWS_LOG at debug level (audio_capture_open installs
 * a handler with snd_lib_error_set_handler).
 * Stream time is counted in samples: stats.frames is the number of samples
 * delivered so far (at the device rate), already including the block being
 * delivered when read from inside the callback.
 *
 *     struct audio_capture cap;
 *     struct audio_capture_cfg cc = { .device = "default", .rate = 16000, .period_ms = 20 };
 *     char msg[256];
 *     if (audio_capture_open(&cap, loop, &cc, on_audio, ctx, msg, sizeof msg) < 0)
 *         fprintf(stderr, "%s\n", msg);      // "default: No such file or directory"
 *     uv_run(loop, UV_RUN_DEFAULT);          // on_audio(ctx, mono, n, rate) per block
 *     audio_capture_close(&cap, on_closed);  // on_closed once every handle is closed
 *
 * Wake-ups: one uv_poll_t per distinct descriptor of snd_pcm_poll_descriptors.
 * A descriptor that epoll refuses (a plain file or a character device without
 * poll support, which poll(2) reports as always ready; ALSA's null plugin
 * uses one) is served by a uv_timer firing every period instead. Each wake-up
 * reads at most one ALSA buffer, so an always-ready device cannot starve the
 * loop.
 *
 * Handle lifetimes: the struct embeds its uv handles, so it must stay valid
 * and in place from audio_capture_open until on_closed runs (or until open
 * fails: a failed open leaves no handle behind and never calls the callback).
 *
 * Thread-safety: everything runs on the loop's thread; the stats may be read
 * only from that thread.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_AUDIO_CAPTURE_H
#define KWS_AUDIO_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define AUDIO_CAPTURE_MAX_FDS 8
#define AUDIO_CAPTURE_DEVICE_LEN 256
#define AUDIO_CAPTURE_RETRY_FIRST_MS 100 /* first reopen delay */
#define AUDIO_CAPTURE_RETRY_MAX_MS 5000  /* the delay doubles up to this */

struct _snd_pcm; /* snd_pcm_t of <alsa/asoundlib.h> */

enum audio_capture_format {
    AUDIO_CAPTURE_FMT_AUTO = 0, /* S16_LE if offered, else S32_LE, else FLOAT_LE */
    AUDIO_CAPTURE_FMT_S16_LE,
    AUDIO_CAPTURE_FMT_S32_LE,
    AUDIO_CAPTURE_FMT_FLOAT_LE,
};

struct audio_capture_cfg {
    const char *device; /* ALSA PCM name, e.g. "plughw:CARD=Device,DEV=0"; NULL = "default" */
    int rate;           /* requested rate, Hz; 0 = 16000 */
    int period_ms;      /* requested period, ms; 0 = 20 */
    int format;         /* enum audio_capture_format; 0 = auto */
    int channels;       /* channels to open (channel 0 is used); 0 = the fewest offered */
    int wait;           /* 1: a device that cannot be opened yet is retried (see below) */
};

struct audio_capture_stats {
    uint64_t frames;    /* mono samples delivered so far (stream time at the device rate) */
    uint32_t xruns;     /* overruns and other recovered stream stops */
    uint32_t reopens;   /* successful opens after a lost device or a waited-for one */
    uint32_t errors;    /* failed open attempts: reopens, and first opens under cfg.wait */
    int open;           /* 1 while the PCM is open and streaming */
    int rate;           /* rate granted by the device, Hz (last open) */
    int channels;       /* channels of the device (only channel 0 is used) */
    int period;         /* period, samples at the device rate */
    const char *format; /* "S16_LE", "S32_LE" or "FLOAT_LE" */
    uint64_t bad;       /* FLOAT_LE samples that were NaN, infinite or absurd, delivered as 0 */
};

/* Receives one block of channel-0 samples in [-1, 1) at the device rate.
 * mono is valid only during the call. */
typedef void (*audio_capture_cb)(void *ctx, const float *mono, size_t n, int rate);

struct audio_capture {
    uv_loop_t *loop;
    struct _snd_pcm *pcm; /* NULL while closed */
    char device[AUDIO_CAPTURE_DEVICE_LEN];
    int req_rate; /* Hz */
    int req_period_ms;
    int req_format;   /* enum audio_capture_format */
    int req_channels; /* 0 = the fewest offered */
    audio_capture_cb cb;
    void *ctx;
    uv_poll_t polls[AUDIO_CAPTURE_MAX_FDS]; /* one per distinct pollable fd */
    int poll_fd[AUDIO_CAPTURE_MAX_FDS];     /* fd watched by polls[i] */
    int n_polls;                            /* polls initialised and not yet closing */
    void *pfds;                             /* struct pollfd[n_pfds] for ALSA */
    int n_pfds;
    uv_timer_t timer;  /* reopen backoff, or the tick below */
    int tick;          /* 1: an fd epoll refuses (null plugin): read every period */
    int retry_ms;      /* next reopen delay */
    uint32_t attempts; /* failed reopen attempts since the loss */
    int opened;        /* 1 once the PCM has been open (a later open is a reopen) */
    int pending;       /* uv close callbacks still to come */
    int closing;       /* audio_capture_close was called */
    void (*on_closed)(struct audio_capture *c);
    int fmt;              /* snd_pcm_format_t */
    int sample_bytes;     /* 2 or 4 */
    size_t buffer_frames; /* ALSA ring size; bounds one wake-up's reads */
    void *raw;            /* (period, channels) device samples */
    float *mono;          /* (period) channel 0 as float */
    size_t raw_cap;       /* bytes of raw */
    size_t mono_cap;      /* samples of mono */
    struct audio_capture_stats stats;
};

/* Opens cfg->device at the requested rate and starts capture on loop; cb(ctx,
 * ...) is then called from the loop for every block read. Returns 0, or a
 * negative error with "device: reason" (snd_strerror's text) in msg:
 * -ENOENT/-ENODEV... from snd_pcm_open, -KWS_EFORMAT if the device offers no
 * usable format, -ENOMEM. A failed open leaves nothing to close.
 * With cfg->wait, only invalid settings (-EINVAL) fail: if the device cannot
 * be opened, the return is still 0, msg says why, stats.open is 0 and the
 * device is retried with backoff (AUDIO_CAPTURE_RETRY_FIRST_MS doubling up to
 * AUDIO_CAPTURE_RETRY_MAX_MS) until it opens or audio_capture_close. */
int audio_capture_open(struct audio_capture *c, uv_loop_t *loop,
                       const struct audio_capture_cfg *cfg, audio_capture_cb cb, void *ctx,
                       char *msg, size_t msglen);

/* Stops capture: closes every uv handle, then the PCM, and calls on_closed(c)
 * (if not NULL) from the loop once nothing refers to c any more. No audio
 * callback runs after this call. Call it once per successful open. */
void audio_capture_close(struct audio_capture *c, void (*on_closed)(struct audio_capture *c));

/* Copies the current counters into *st. */
void audio_capture_get_stats(const struct audio_capture *c, struct audio_capture_stats *st);

#endif /* KWS_AUDIO_CAPTURE_H */

/* audio_file.c: whole-file reading with libsndfile, channel 0, resampled.
 *
 * Reads every frame of a sound file, keeps the first channel (as capture
 * does), and converts it to the requested rate with the same streaming
 * resampler the daemon uses, flushed at the end of the file.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/audio_file.h"

#include <errno.h>
#include <sndfile.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/resample.h"

#define READ_BLOCK 4096 /* frames per sf_readf_float call */
#define FIRST_ALLOC ((size_t)1 << 20) /* samples first allocated (4 MiB: 65 s at 16 kHz) */

static int file_fail(int rc, char *msg, size_t msglen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int file_fail(int rc, char *msg, size_t msglen, const char *path, const char *fmt, ...) {
    va_list ap;
    int n;

    if (!msg || !msglen)
        return rc;
    n = snprintf(msg, msglen, "%s: ", path);
    if (n >= 0 && (size_t)n < msglen) {
        va_start(ap, fmt);
        vsnprintf(msg + n, msglen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Converts x (n samples at in_rate) to out_rate into a new malloc'd array. */
static int file_resample(const float *x, size_t n, int in_rate, int out_rate, float **out,
                         size_t *n_out) {
    struct audio_resampler rs;
    size_t cap, got = 0, tail = 0;
    float *y;
    int rc;

    rc = audio_resampler_init(&rs, in_rate, out_rate, 4096);
    if (rc < 0)
        return rc;
    cap = audio_resampler_out_max(&rs, n) + audio_resampler_out_max(&rs, 0);
    y = malloc((cap ? cap : 1) * sizeof(float));
    if (!y) {
        audio_resampler_free(&rs);
        return -ENOMEM;
    }
    rc = audio_resampler_process(&rs, x, n, y, cap, &got);
    if (rc == 0)
        rc = audio_resampler_flush(&rs, y + got, cap - got, &tail);
    audio_resampler_free(&rs);
    if (rc < 0) {
        free(y);
        return rc;
    }
    *out = y;
    *n_out = got + tail;
    return 0;
}

int audio_file_read(const char *path, int rate, float **out, size_t *n, int *native_rate, char *msg,
                    size_t msglen) {
    SF_INFO info;
    SNDFILE *sf;
    float *x = NULL, *block = NULL;
    size_t total = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (rate < 0 || rate > 384000)
        return file_fail(-EINVAL, msg, msglen, path, "rate %d out of range", rate);
    memset(&info, 0, sizeof info);
    errno = 0;
    sf = sf_open(path, SFM_READ, &info);
    if (!sf) {
        int e = errno;
        rc = sf_error(NULL) == SF_ERR_SYSTEM && e ? -e : KWS_EFORMAT;
        return file_fail(rc, msg, msglen, path, "%s", sf_strerror(NULL));
    }
    if (native_rate)
        *native_rate = info.samplerate;
    if (info.channels < 1 || info.samplerate < 1000 || info.samplerate > 384000) {
        rc = file_fail(KWS_EFORMAT, msg, msglen, path, "unusable stream (%d channels, %d Hz)",
                       info.channels, info.samplerate);
        goto done;
    }
    if (info.frames <= 0 || info.frames > (sf_count_t)1 << 31) {
        rc = file_fail(KWS_EFORMAT, msg, msglen, path, "no samples or too long (%lld frames)",
                       (long long)info.frames);
        goto done;
    }
    /* The header's frame count is a claim, not a size: a 50-byte FLAC file
     * may announce 754 M frames. The buffer grows with the samples that
     * actually arrive (doubling, up to the announced count). */
    size_t cap = (size_t)info.frames < FIRST_ALLOC ? (size_t)info.frames : FIRST_ALLOC;
    x = malloc(cap * sizeof(float));
    block = malloc((size_t)READ_BLOCK * (size_t)info.channels * sizeof(float));
    if (!x || !block) {
        rc = file_fail(-ENOMEM, msg, msglen, path, "out of memory");
        goto done;
    }
    while (total < (size_t)info.frames) {
        sf_count_t want = (sf_count_t)info.frames - (sf_count_t)total;
        if (want > READ_BLOCK)
            want = READ_BLOCK;
        sf_count_t got = sf_readf_float(sf, block, want);
        if (got <= 0)
            break;
        if (total + (size_t)got > cap) {
            size_t grown = cap * 2 < (size_t)info.frames ? cap * 2 : (size_t)info.frames;
            float *nx = realloc(x, grown * sizeof(float));
            if (!nx) {
                rc = file_fail(-ENOMEM, msg, msglen, path, "out of memory");
                goto done;
            }
            x = nx;
            cap = grown;
        }
        for (sf_count_t i = 0; i < got; i++)
            x[total + (size_t)i] = block[(size_t)i * (size_t)info.channels];
        total += (size_t)got;
    }
    if (sf_error(sf) != SF_ERR_NO_ERROR) {
        rc = file_fail(-EIO, msg, msglen, path, "%s", sf_strerror(sf));
        goto done;
    }
    if (total == 0) {
        rc = file_fail(KWS_EFORMAT, msg, msglen, path, "no samples");
        goto done;
    }
    /* A float file can hold NaN, infinities or 1e30: zeroed before the
     * resampler, whose filter would smear them over every later sample. */
    audio_sanitize(x, total);
    if (rate == 0 || rate == info.samplerate) {
        *out = x;
        *n = total;
        x = NULL;
        rc = 0;
        goto done;
    }
    rc = file_resample(x, total, info.samplerate, rate, out, n);
    if (rc < 0)
        file_fail(rc, msg, msglen, path, "resampling %d -> %d Hz failed: %s", info.samplerate, rate,
                  kws_strerror(rc));
done:
    free(x);
    free(block);
    sf_close(sf);
    return rc;
}

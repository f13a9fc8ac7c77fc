/* kws/audio_file.h: reads a whole sound file into mono float samples.
 *
 * Any format libsndfile reads (WAV, FLAC, OGG, AIFF, ...). The first channel
 * is taken, like audio capture does, and the samples are converted to the
 * requested rate with the streaming resampler of kws/resample.h (flushed at
 * the end, so the output has round(n * rate / native_rate) samples, give or
 * take one). Samples that are not finite or absurdly large (a broken float
 * file) are replaced by 0 before resampling (audio_sanitize, kws/frontend.h).
 *
 *     float *x; size_t n; int native; char msg[256];
 *     if (audio_file_read("yes.wav", 16000, &x, &n, &native, msg, sizeof msg) < 0)
 *         fprintf(stderr, "%s\n", msg);
 *     ...
 *     free(x);
 *
 * Thread-safety: reentrant; may be called from several threads at once.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_AUDIO_AUDIO_FILE_H
#define KWS_AUDIO_AUDIO_FILE_H

#include <stddef.h>

/* Reads path, first channel, resampled to rate Hz (0 keeps the native rate).
 * On success *out is a malloc'd array of *n samples in [-1, 1) that the
 * caller frees, and *native_rate (if not NULL) is the file's own rate.
 * Returns 0, -ENOENT/-EIO/... (libsndfile could not open or read the file),
 * -KWS_EFORMAT (no samples or an unusable rate), -EINVAL or -ENOMEM; msg (if
 * not NULL) gets "path: reason". On failure *out is NULL and *n 0. */
int audio_file_read(const char *path, int rate, float **out, size_t *n, int *native_rate, char *msg,
                    size_t msglen);

#endif /* KWS_AUDIO_AUDIO_FILE_H */

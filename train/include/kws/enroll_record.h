/* kws/enroll_record.h: recording the takes of a new word from the capture device.
 *
 * enroll_record opens the ALSA capture device (kws/capture.h, in a libuv
 * loop of its own) and records n_takes takes of the word: for each it asks
 * for the word (a note "say WORD now (3/15)"), shows the input level (the
 * bar callback with stage "level", done = dBFS + 60 of total 60, every
 * 100 ms), waits for sound 15 dB over the room's level, and stops 0.6 s
 * after the word ends (or 4 s after it began). Each take goes through
 * enroll_take_check (kws/enroll.h): a clipped, silent or too quiet take is
 * said (a note naming it and why) and asked for again. Accepted takes are
 * saved, whole (the word with the room around it), as WAV files at the
 * device's rate in dir (made if missing), named take-NNN.wav after the
 * highest number already there, so a folder can grow over several sessions.
 *
 *     struct enroll_record_opts o = {"default", "lights",
 * "/home/me/.local/share/kwsd/takes/lights", 15}; if (enroll_record(&o, &rules, &progress, msg,
 * sizeof msg) < 0) say(msg);
 *
 * Thread-safety: runs its own loop on the calling thread; reentrant.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRAIN_ENROLL_RECORD_H
#define KWS_TRAIN_ENROLL_RECORD_H

#include <stddef.h>

#include "kws/enroll.h"

struct enroll_record_opts {
    const char *device; /* ALSA PCM name; NULL: "default" */
    const char *word;   /* said in the prompts */
    const char *dir;    /* where the takes are saved */
    int n_takes;        /* how many to record */
};

/* Records o->n_takes accepted takes into o->dir. Returns 0; -ENOENT and
 * friends when the device cannot be opened or dir cannot be made or
 * written; -ETIMEDOUT after 3 prompts in a row that heard nothing (msg
 * says so: a muted microphone, or the wrong --device). */
int enroll_record(const struct enroll_record_opts *o, const struct enroll_take_rules *rules,
                  const struct enroll_progress *p, char *msg, size_t msglen);

#endif /* KWS_TRAIN_ENROLL_RECORD_H */

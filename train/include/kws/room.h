/* room.h: a small synthetic room, for augmenting training speech.
 *
 * room_reverb() puts a recording in a room: the direct sound plus early
 * reflections (a few single echoes 2-40 ms after it) and a late tail from
 * a Moorer reverberator (parallel feedback comb filters with a low-pass in
 * each loop, so high frequencies die first, then two all-pass filters that
 * thicken the echoes). At low frequencies the tail falls by 60 dB in rt60
 * seconds, at the top of the band in 0.4-0.7 times that; the wet
 * part is scaled to drr_db below the direct sound (direct-to-reverberant
 * ratio, by energy), and the result to the input's energy, so a mix at a
 * given signal-to-noise ratio stays at it. Everything random (delays, tap
 * gains, damping) comes from seed: the same room for the same seed.
 *
 *     struct room rm = {.rt60 = 0.5f, .drr_db = 6.0f, .seed = 42};
 *     if (room_reverb(x, n, 16000, &rm) < 0) ... out of memory
 *
 * Thread-safety: reentrant (it allocates its own delay lines).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRAIN_ROOM_H
#define KWS_TRAIN_ROOM_H

#include <stddef.h>
#include <stdint.h>

struct room {
    float rt60;   /* seconds for the tail to fall by 60 dB (> 0; 0.2-0.8 for a living room) */
    float drr_db; /* direct-to-reverberant energy ratio, dB (0-12 at 1-3 m from a talker) */
    uint64_t seed;
};

/* Reverberates x (n samples at rate Hz) in place, in room rm. Returns 0,
 * -EINVAL for rt60 <= 0, a rate under 1 kHz or a non-finite drr_db, or
 * -ENOMEM. All-zero input stays zero. */
int room_reverb(float *x, size_t n, int rate, const struct room *rm);

#endif

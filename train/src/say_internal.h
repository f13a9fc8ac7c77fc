/* say_internal.h: how the trainer's recipes talk: progress notes and the clock.
 *
 * train_run, enroll_run and enroll_record each report through a progress
 * struct whose note callback takes one line of text; each formats its notes
 * through train__vnote, so the line buffer and the "no callback" rule live
 * here once. train__now_s is the monotonic clock their timings use.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRAIN_SAY_INTERNAL_H
#define KWS_TRAIN_SAY_INTERNAL_H

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

/* Longest note line, NUL included; a longer one is cut. */
#define TRAIN_NOTE_MAX 1024

/* Formats fmt with ap into one line and hands it to note(data, line);
 * does nothing when note is NULL. */
static inline void train__vnote(void (*note)(void *data, const char *line), void *data,
                                const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
static inline void train__vnote(void (*note)(void *data, const char *line), void *data,
                                const char *fmt, va_list ap) {
    char line[TRAIN_NOTE_MAX];
    if (!note)
        return;
    vsnprintf(line, sizeof line, fmt, ap);
    note(data, line);
}

/* CLOCK_MONOTONIC in seconds. */
static inline double train__now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif /* KWS_TRAIN_SAY_INTERNAL_H */

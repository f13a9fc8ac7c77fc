/* enroll_record.c: takes of a new word from the capture device (kws/enroll_record.h).
 *
 * The capture callback cuts the stream into 10 ms frames and runs a small
 * state machine per take: WAIT (the room; its quietest frame is the floor),
 * WORD (from the first frame 15 dB over the floor, with 300 ms kept from
 * before it) until 600 ms stay below both floor + 10 dB and the take's peak
 * - 30 dB, or 4 s pass. A finished take is checked (enroll_take_check) and
 * saved, or said to be rejected and asked for again.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/enroll_record.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sndfile.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "kws/capture.h"
#include "kws/err.h"
#include "say_internal.h"

#define REC_PREROLL_MS 300 /* audio kept from before the word's start */
#define REC_START_DB 15.0  /* a word starts this far over the room's level */
#define REC_QUIET_DB 10.0  /* and is over when below floor + this ... */
#define REC_PEAK_DB 30.0   /* ... and below its peak - this ... */
#define REC_TAIL_MS 600    /* ... for this long */
#define REC_MAX_WORD_MS 4000
#define REC_WAIT_MS 8000   /* a prompt that hears nothing for this long has failed */
#define REC_MAX_MISSES 3   /* prompts in a row that heard nothing */
#define REC_MAX_REJECTS 10 /* rejected takes in a row */

enum rec_state { REC_WAIT, REC_WORD };

struct rec {
    const struct enroll_record_opts *o;
    const struct enroll_take_rules *rules;
    const struct enroll_progress *p;
    char *msg;
    size_t msglen;
    struct audio_capture cap;
    int rate, hop; /* device rate, samples per 10 ms */
    float *buf;    /* the take so far, device rate */
    size_t n, cap_n;
    float *frame; /* the 10 ms frame being filled */
    int nfr;
    enum rec_state st;
    double floor_db, peak_db;
    int frames;        /* frames since the prompt (WAIT) or since the word began (WORD) */
    int quiet;         /* frames in a row of quiet during WORD */
    int take, next_no; /* takes saved; the next file number */
    int misses, rejects, closing, rc;
    double level_e; /* energy of the meter's 100 ms */
    int level_n;
};

static void note(struct rec *R, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    train__vnote(R->p ? R->p->note : NULL, R->p ? R->p->data : NULL, fmt, ap);
    va_end(ap);
}

static int fail(struct rec *R, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R->msg, R->msglen, fmt, ap);
    va_end(ap);
    return rc;
}

/* The highest NNN of dir's take-NNN.wav, plus one. */
static int next_number(const char *dir) {
    DIR *d = opendir(dir);
    int next = 1;
    struct dirent *e;
    if (!d)
        return next;
    while ((e = readdir(d))) {
        int k;
        if (sscanf(e->d_name, "take-%d.wav", &k) == 1 && k >= next)
            next = k + 1;
    }
    closedir(d);
    return next;
}

/* mkdir -p. */
static int make_dirs(const char *path) {
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) < 0 && errno != EEXIST)
                return -errno;
            *s = '/';
        }
    return mkdir(p, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

static void prompt(struct rec *R) {
    R->st = REC_WAIT;
    R->n = 0;
    R->frames = 0;
    R->quiet = 0;
    R->floor_db = 0.0;
    note(R, "say %s now (%d/%d)", R->o->word, R->take + 1, R->o->n_takes);
}

static void on_closed(struct audio_capture *c) {
    (void)c;
}

static void stop(struct rec *R, int rc) {
    if (R->closing)
        return;
    R->closing = 1;
    R->rc = rc;
    audio_capture_close(&R->cap, on_closed);
}

/* A take is complete: check it, save it or ask again. */
static void take_done(struct rec *R) {
    char why[256], path[4200];
    size_t on, off;
    if (enroll_take_check(R->buf, R->n, R->rate, R->rules, &on, &off, why, sizeof why) < 0) {
        note(R, "take %d/%d: rejected: %s; again", R->take + 1, R->o->n_takes, why);
        if (++R->rejects >= REC_MAX_REJECTS) {
            stop(R, fail(R, KWS_EDATASET, "%d takes in a row rejected (the last: %s)", R->rejects,
                         why));
            return;
        }
        prompt(R);
        return;
    }
    R->rejects = 0;
    snprintf(path, sizeof path, "%s/take-%03d.wav", R->o->dir, R->next_no);
    SF_INFO info = {
        .samplerate = R->rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    int ok = f && sf_writef_float(f, R->buf, (sf_count_t)R->n) == (sf_count_t)R->n;
    if (f && sf_close(f) != 0)
        ok = 0;
    if (!ok) {
        stop(R, fail(R, -EIO, "%s: cannot write", path));
        return;
    }
    note(R, "take %d/%d: %s (%.2f s)", R->take + 1, R->o->n_takes, path, (double)R->n / R->rate);
    R->next_no++;
    if (++R->take == R->o->n_takes) {
        stop(R, 0);
        return;
    }
    prompt(R);
}

/* Appends x (n samples) to the take, keeping only the pre-roll while waiting. */
static int keep(struct rec *R, const float *x, size_t n) {
    if (R->n + n > R->cap_n) {
        size_t cap = R->cap_n ? 2 * R->cap_n : (size_t)R->rate;
        while (cap < R->n + n)
            cap *= 2;
        float *nb = realloc(R->buf, cap * sizeof *nb);
        if (!nb)
            return -ENOMEM;
        R->buf = nb;
        R->cap_n = cap;
    }
    memcpy(R->buf + R->n, x, n * sizeof *x);
    R->n += n;
    size_t pre = (size_t)R->hop * (REC_PREROLL_MS / 10);
    if (R->st == REC_WAIT && R->n > pre) {
        memmove(R->buf, R->buf + R->n - pre, pre * sizeof *R->buf);
        R->n = pre;
    }
    return 0;
}

/* One 10 ms frame through the state machine. */
static void frame(struct rec *R, const float *x) {
    double e = 0.0;
    for (int k = 0; k < R->hop; k++)
        e += (double)x[k] * x[k];
    double lv = 10.0 * log10(e / R->hop + 1e-12);
    R->level_e += e / R->hop;
    if (++R->level_n == 10) {
        double l = 10.0 * log10(R->level_e / 10 + 1e-12);
        if (R->p && R->p->bar)
            R->p->bar(R->p->data, "level", l < -60 ? 0 : l + 60, 60);
        R->level_e = 0.0;
        R->level_n = 0;
    }
    if (keep(R, x, (size_t)R->hop) < 0) {
        stop(R, fail(R, -ENOMEM, "out of memory"));
        return;
    }
    R->frames++;
    if (R->st == REC_WAIT) {
        if (R->frames == 1 || lv < R->floor_db)
            R->floor_db = lv < -90.0 ? -90.0 : lv;
        if (R->frames > 5 && lv > R->floor_db + REC_START_DB) {
            R->st = REC_WORD;
            R->frames = 0;
            R->peak_db = lv;
            R->misses = 0;
        } else if (R->frames * 10 >= REC_WAIT_MS) {
            if (++R->misses >= REC_MAX_MISSES) {
                stop(R, fail(R, -ETIMEDOUT,
                             "heard nothing for %d s, %d times (input at %.0f dBFS): is the "
                             "microphone on, and the right --device?",
                             REC_WAIT_MS / 1000, R->misses, R->floor_db));
                return;
            }
            note(R, "heard nothing; again");
            prompt(R);
        }
        return;
    }
    if (lv > R->peak_db)
        R->peak_db = lv;
    int quiet = lv < R->floor_db + REC_QUIET_DB || lv < R->peak_db - REC_PEAK_DB;
    R->quiet = quiet ? R->quiet + 1 : 0;
    if (R->quiet * 10 >= REC_TAIL_MS || R->frames * 10 >= REC_MAX_WORD_MS)
        take_done(R);
}

static void on_audio(void *ctx, const float *mono, size_t n, int rate) {
    struct rec *R = ctx;
    if (R->closing)
        return;
    if (!R->frame) {
        R->rate = rate;
        R->hop = rate / 100;
        if (!(R->frame = malloc((size_t)R->hop * sizeof *R->frame))) {
            stop(R, fail(R, -ENOMEM, "out of memory"));
            return;
        }
    }
    for (size_t i = 0; i < n && !R->closing; i++) {
        R->frame[R->nfr++] = mono[i];
        if (R->nfr == R->hop) {
            R->nfr = 0;
            frame(R, R->frame);
        }
    }
}

int enroll_record(const struct enroll_record_opts *o, const struct enroll_take_rules *rules,
                  const struct enroll_progress *p, char *msg, size_t msglen) {
    struct rec *R = calloc(1, sizeof *R);
    uv_loop_t loop;
    if (!R) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    R->o = o;
    R->rules = rules;
    R->p = p;
    R->msg = msg;
    R->msglen = msglen;
    int rc = make_dirs(o->dir);
    if (rc < 0) {
        free(R);
        snprintf(msg, msglen, "%s: %s", o->dir, strerror(-rc));
        return rc;
    }
    R->next_no = next_number(o->dir);
    if (uv_loop_init(&loop) < 0) {
        free(R);
        snprintf(msg, msglen, "cannot start an event loop");
        return -ENOMEM;
    }
    struct audio_capture_cfg cc = {.device = o->device, .rate = 16000, .period_ms = 20};
    char m[256];
    rc = audio_capture_open(&R->cap, &loop, &cc, on_audio, R, m, sizeof m);
    if (rc < 0) {
        snprintf(msg, msglen, "cannot record from %s: %s", o->device ? o->device : "default", m);
    } else {
        note(R, "recording %d takes of '%s' from %s into %s", o->n_takes, o->word,
             o->device ? o->device : "default", o->dir);
        prompt(R);
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = R->rc;
    }
    uv_loop_close(&loop);
    free(R->buf);
    free(R->frame);
    free(R);
    return rc;
}

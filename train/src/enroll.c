/* enroll.c: a new word from a few takes (kws/enroll.h): checking, laying out, training,
 * calibrating.
 *
 * enroll_run goes in order: read and check the takes (enroll_takes_load),
 * lay out the data set in a temporary folder (layout_*), train through
 * train_run with the enrol recipe (train_enroll), calibrate on the negative
 * pack (calibrate) and write the model. The temporary folder is removed at
 * the end, whatever happened.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/enroll.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <sndfile.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kws/audio_file.h"
#include "kws/dataset.h"
#include "kws/err.h"
#include "kws/listener.h"
#include "kws/recipe.h"
#include "kws/stream_eval.h"
#include "say_internal.h"
#include "train_internal.h"

/* ==== Defaults ==== */

void enroll_take_rules_default(struct enroll_take_rules *t) {
    t->range_db = 30.0f;
    t->max_gap_ms = 250;
    t->max_pause_ms = 500;
    t->pad_ms = 100;
    t->clip_samples = 20;
    t->min_dbfs = -50.0f;
    t->silent_dbfs = -70.0f;
    t->min_word_ms = 150;
    t->max_word_ms = 2500;
}

void enroll_recipe_default(struct enroll_recipe *r) {
    memset(r, 0, sizeof *r);
    enroll_take_rules_default(&r->rules);
    r->min_takes = 5;
    r->n_val = 4;
    r->seed = 1;
    r->windows = 1024;
    r->epochs = 30;
    r->val_passes = 4;
    r->batch = 64;
    r->mine_every = 2;
    r->train_unknown = 700;        /* the first pack's size; the rest calibrates (docs/ENROLL.md) */
    r->select = TRAIN_SELECT_LAST; /* the weight average at the end (docs/ENROLL.md) */
    r->window_ms = 3000.0f;
    r->p_keyword = 0.3f;
    r->lr = 3e-3f;
    r->lr_delay = 1e-2f;
    r->sigma_init = 1.0f;
    r->win_weight = 2.0f;
    r->ema = 0.999f;
    r->speed[0] = 0.9f;
    r->speed[1] = 1.1f;
    r->snr[0] = 5.0f;
    r->snr[1] = 25.0f;
    r->verify = 1;
    r->cut_pass = 0.0f; /* the takes' own cut (docs/ENROLL.md: 0.02 measured, not kept) */
    r->calib_fa = 1.0f;
    r->calib_hours = 1.0;
    r->calib_words = 0;
    r->snr_cal[0] = 5.0f;
    r->snr_cal[1] = 25.0f;
}

/* ==== Checking takes ==== */

static double db(double power) {
    return power > 0.0 ? 10.0 * log10(power) : -200.0;
}

int enroll_take_check(const float *x, size_t n, int rate, const struct enroll_take_rules *t,
                      size_t *on, size_t *off, char *why, size_t whylen) {
    int hop = rate / 100;
    if (n > INT32_MAX || hop < 1 || n < (size_t)hop) {
        snprintf(why, whylen, "too short (%zu samples)", n);
        return KWS_EDATASET;
    }
    int full = 0;
    double pk = 0.0;
    for (size_t i = 0; i < n; i++)
        full += fabsf(x[i]) >= 0.999f;
    for (size_t f = 0; f + (size_t)hop <= n; f += (size_t)hop) {
        double e = 0.0;
        for (int k = 0; k < hop; k++)
            e += (double)x[f + k] * x[f + k];
        if (e / hop > pk)
            pk = e / hop;
    }
    if (full >= t->clip_samples) {
        snprintf(why, whylen, "clipped: %d samples at full scale (record it quieter)", full);
        return KWS_EDATASET;
    }
    if (db(pk) < t->silent_dbfs) {
        snprintf(why, whylen, "silent (loudest 10 ms at %.0f dBFS)", db(pk));
        return KWS_EDATASET;
    }
    int32_t a, b;
    dataset_find_word(x, (int32_t)n, rate, t->range_db, t->max_gap_ms, t->max_pause_ms, &a, &b);
    double e = 0.0;
    for (int32_t i = a; i < b; i++)
        e += (double)x[i] * x[i];
    double rms_db = db(b > a ? e / (double)(b - a) : 0.0);
    if (rms_db < t->min_dbfs) {
        snprintf(why, whylen, "too quiet: the word is at %.0f dBFS, at least %.0f wanted", rms_db,
                 (double)t->min_dbfs);
        return KWS_EDATASET;
    }
    int ms = (int)((int64_t)(b - a) * 1000 / rate);
    if (ms < t->min_word_ms || ms > t->max_word_ms) {
        snprintf(why, whylen, "the sound found lasts %d ms, not %d-%d ms: %s", ms, t->min_word_ms,
                 t->max_word_ms, ms < t->min_word_ms ? "a click, no word" : "more than one word?");
        return KWS_EDATASET;
    }
    size_t pad = (size_t)t->pad_ms * (size_t)rate / 1000;
    *on = (size_t)a > pad ? (size_t)a - pad : 0;
    *off = (size_t)b + pad < n ? (size_t)b + pad : n;
    return 0;
}

/* ==== Loading takes ==== */

static void say(const struct enroll_progress *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    train__vnote(p ? p->note : NULL, p ? p->data : NULL, fmt, ap);
    va_end(ap);
}

void enroll_takes_free(struct enroll_takes *ts) {
    for (size_t i = 0; i < ts->n; i++)
        free(ts->t[i].x);
    free(ts->t);
    memset(ts, 0, sizeof *ts);
}

int enroll_takes_load(struct enroll_takes *ts, const char *dir, int rate,
                      const struct enroll_take_rules *t, const struct enroll_progress *p, char *msg,
                      size_t msglen) {
    struct stat st;
    memset(ts, 0, sizeof *ts);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(msg, msglen, "%s: no such folder", dir);
        return -ENOENT;
    }
    char **names;
    size_t n = dataset__list_sounds(dir, &names);
    if (n == 0) {
        snprintf(msg, msglen, "%s: no sound files (WAV, FLAC, Ogg)", dir);
        return KWS_EDATASET;
    }
    if (n > ENROLL_MAX_TAKES)
        n = ENROLL_MAX_TAKES;
    int rc = 0;
    if (!(ts->t = calloc(n, sizeof *ts->t)))
        rc = -ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        char path[4096], why[256];
        float *x = NULL;
        size_t nx = 0, on, off;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (audio_file_read(path, rate, &x, &nx, NULL, why, sizeof why) < 0) {
            say(p, "%s: rejected: cannot read it (%s)", path, why);
            ts->n_rejected++;
            continue;
        }
        if (enroll_take_check(x, nx, rate, t, &on, &off, why, sizeof why) < 0) {
            say(p, "%s: rejected: %s", path, why);
            ts->n_rejected++;
            free(x);
            continue;
        }
        struct enroll_take *tk = &ts->t[ts->n];
        tk->n = off - on;
        if (!(tk->x = malloc(tk->n * sizeof *tk->x))) {
            free(x);
            rc = -ENOMEM;
            break;
        }
        memcpy(tk->x, x + on, tk->n * sizeof *tk->x);
        snprintf(tk->file, sizeof tk->file, "%s", names[i]);
        ts->n++;
        free(x);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc)
        snprintf(msg, msglen, "%s: out of memory", dir);
    return rc;
}

/* ==== The temporary data set ==== */

static int write_wav(const char *path, const float *x, size_t n, int rate) {
    SF_INFO info = {.samplerate = rate, .channels = 1, .format = SF_FORMAT_WAV | SF_FORMAT_PCM_16};
    SNDFILE *f = sf_open(path, SFM_WRITE, &info);
    if (!f)
        return -EIO;
    sf_count_t w = sf_writef_float(f, x, (sf_count_t)n);
    int rc = sf_close(f);
    return w == (sf_count_t)n && rc == 0 ? 0 : -EIO;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The state of one enrolment. */
struct enr {
    const struct enroll_recipe *r;
    const struct enroll_progress *p;
    char *msg;
    size_t msglen;
    char tmp[PATH_MAX - 64]; /* the temporary folder */
    char data[PATH_MAX];     /* its data set */
    char calib[PATH_MAX];    /* the single words the calibration hears */
    size_t n_calib;          /* how many (all the pack's, less the new words') */
    char neg[PATH_MAX];      /* its negatives (links to the pack's word folders) */
    char calneg[PATH_MAX];   /* the pack's words only the calibration hears */
    size_t n_calneg;         /* how many (none: it hears neg/'s) */
    char calown[PATH_MAX];   /* the user's own negatives only the calibration hears */
    size_t n_calown;         /* how many recordings */
    char noise[PATH_MAX];
    char model[PATH_MAX]; /* the trained model before calibration */
    struct snn_cfg init;  /* the starting model's configuration */
    int rate;
    struct enroll_takes takes[ENROLL_MAX_WORDS];
    struct enroll_result *res;
    float cut_factor; /* the second look's cut over the takes' own (0: 1) */
    size_t cal_heard; /* samples of the calibration stream heard so far */
    int cal_shown;    /* the last tenth of it shown on the bar */
};

static int efail(struct enr *E, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(E->msg, E->msglen, fmt, ap);
    va_end(ap);
    return rc;
}

/* Whether name is one of the words being enrolled. */
static int is_new_word(const struct enroll_recipe *r, const char *name) {
    for (int w = 0; w < r->n_words; w++)
        if (!strcmp(r->words[w], name))
            return 1;
    return 0;
}

/* How many of each word's n[w] clips the training hears when it takes them
 * in turn from each word (the first of every word, then the second, ...) up
 * to total (0: all of them): q[w]. */
static void unknown_quota(const size_t *n, size_t n_words, size_t total, size_t *q) {
    size_t left = 0;
    for (size_t w = 0; w < n_words; w++) {
        q[w] = total ? 0 : n[w];
        left += n[w];
    }
    for (size_t turn = 0, taken = 0; total && taken < total && taken < left; turn++)
        for (size_t w = 0; w < n_words && taken < total; w++)
            if (turn < n[w]) {
                q[w]++;
                taken++;
            }
}

/* data/_unknown_/<word>_<clip> -> the pack's single words
 * (unknown/<word>/<clip>), less the words being enrolled. Of each word the
 * clips within its training quota (unknown_quota) train, every eighth of
 * them listed in vl for validation. calib/_unknown_/ links to all of them,
 * for the calibration: the training never reads the rest. A pack without
 * unknown/ gives empty classes. Returns 0 or a negative errno. */
static int layout_unknown(struct enr *E, FILE *vl) {
    char root[PATH_MAX + 16], path[PATH_MAX * 2];
    snprintf(root, sizeof root, "%s/unknown", E->r->pack);
    snprintf(path, sizeof path, "%s/_unknown_", E->data);
    if (mkdir(path, 0700) < 0)
        return -errno;
    snprintf(path, sizeof path, "%s/_unknown_", E->calib);
    if (mkdir(E->calib, 0700) < 0 || mkdir(path, 0700) < 0)
        return -errno;
    char **subs;
    size_t n_sub = dataset__list_dirs(root, &subs), n = 0, n_train = 0;
    char ***files = calloc(n_sub + 1, sizeof *files);
    char(*real)[PATH_MAX] = calloc(n_sub + 1, sizeof *real);
    size_t *nf = calloc(n_sub + 1, sizeof *nf), *quota = calloc(n_sub + 1, sizeof *quota);
    int rc = files && real && nf && quota ? 0 : -ENOMEM;
    for (size_t s = 0; s < n_sub && !rc; s++) {
        char dir[PATH_MAX * 2];
        snprintf(dir, sizeof dir, "%s/%s", root, subs[s]);
        if (is_new_word(E->r, subs[s]))
            say(E->p, "pack: %s left out of the unknown words (it is a word being enrolled)",
                subs[s]);
        else if (realpath(dir, real[s]))
            nf[s] = dataset__list_sounds(real[s], &files[s]);
    }
    if (!rc)
        unknown_quota(nf, n_sub, (size_t)E->r->train_unknown, quota);
    for (size_t s = 0; s < n_sub; s++) {
        for (size_t i = 0; !rc && i < nf[s]; i++) {
            char src[PATH_MAX * 2];
            snprintf(src, sizeof src, "%s/%s", real[s], files[s][i]);
            snprintf(path, sizeof path, "%s/_unknown_/%s_%s", E->calib, subs[s], files[s][i]);
            if (!rc && symlink(src, path) < 0)
                rc = -errno;
            snprintf(path, sizeof path, "%s/_unknown_/%s_%s", E->data, subs[s], files[s][i]);
            if (!rc && i < quota[s] && symlink(src, path) < 0)
                rc = -errno;
            if (!rc && i < quota[s] && i % 8 == 7)
                fprintf(vl, "_unknown_/%s_%s\n", subs[s], files[s][i]);
            n += !rc;
            n_train += !rc && i < quota[s];
        }
        for (size_t i = 0; nf && i < nf[s]; i++)
            free(files[s][i]);
        if (files)
            free(files[s]);
        free(subs[s]);
    }
    free(subs);
    free(files);
    free(real);
    free(nf);
    free(quota);
    E->n_calib = n;
    if (!rc)
        say(E->p, "pack: %zu unknown words (%zu of them trained on; all calibrate)", n, n_train);
    return rc;
}

/* data/<word>/NNN.wav for each take, the last n_val of each word listed for
 * validation; data/_silence_/ 1 s cuts of the pack's noise (one in five for
 * validation); data/_unknown_/ the pack's single words within the
 * training's quota, calib/_unknown_/ all of them (layout_unknown). */
static int layout_data(struct enr *E) {
    const struct enroll_recipe *r = E->r;
    char path[PATH_MAX + 64], list[PATH_MAX + 32];
    snprintf(list, sizeof list, "%s/validation_list.txt", E->data);
    if (mkdir(E->data, 0700) < 0)
        return efail(E, -errno, "%s: %s", E->data, strerror(errno));
    FILE *vl = fopen(list, "w");
    if (!vl)
        return efail(E, -errno, "%s: %s", list, strerror(errno));
    int rc = 0;
    for (int w = 0; w < r->n_words && !rc; w++) {
        const struct enroll_takes *ts = &E->takes[w];
        snprintf(path, sizeof path, "%s/%s", E->data, r->words[w]);
        if (mkdir(path, 0700) < 0)
            rc = -errno;
        for (size_t i = 0; i < ts->n && !rc; i++) {
            snprintf(path, sizeof path, "%s/%s/%03zu.wav", E->data, r->words[w], i);
            rc = write_wav(path, ts->t[i].x, ts->t[i].n, E->rate);
            if (i >= ts->n - (size_t)r->n_val)
                fprintf(vl, "%s/%03zu.wav\n", r->words[w], i);
        }
    }
    /* _silence_: 1 s pieces of each noise recording, spread over it */
    char **names = NULL;
    size_t n_noise = rc ? 0 : dataset__list_sounds(E->noise, &names), k = 0;
    snprintf(path, sizeof path, "%s/_silence_", E->data);
    if (!rc && mkdir(path, 0700) < 0)
        rc = -errno;
    for (size_t i = 0; i < n_noise; i++) {
        float *x = NULL;
        size_t n = 0;
        char src[PATH_MAX + 256];
        snprintf(src, sizeof src, "%s/%s", E->noise, names[i]);
        if (!rc && audio_file_read(src, E->rate, &x, &n, NULL, NULL, 0) == 0) {
            size_t len = (size_t)E->rate, pieces = n / len;
            if (pieces > 20) /* at most 20 per recording, spread over all of it */
                pieces = 20;
            for (size_t c = 0; c < pieces && !rc; c++, k++) {
                snprintf(path, sizeof path, "%s/_silence_/%03zu.wav", E->data, k);
                rc = write_wav(path, x + c * (n / pieces), len, E->rate);
                if (k % 5 == 4)
                    fprintf(vl, "_silence_/%03zu.wav\n", k);
            }
        }
        free(x);
        free(names[i]);
    }
    free(names);
    if (!rc)
        rc = layout_unknown(E, vl);
    if (fclose(vl) != 0 && !rc)
        rc = -EIO;
    if (rc)
        return efail(E, rc, "%s: cannot write the data set (%s)", E->data, kws_strerror(rc));
    if (k == 0)
        return efail(E, KWS_EDATASET, "%s: no noise recording of at least 1 s", E->noise);
    return 0;
}

int enroll_check_negatives(const char *dir, char *msg, size_t msglen) {
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    snprintf(msg, msglen, "--negatives %s: no such folder", dir);
    return -ENOENT;
}

/* neg/_own_ -> the user's own recordings that are not the word
 * (r->negatives), less one in ENROLL_OWN_HELD: the training refuses them
 * (every eighth listed in vl for validation, as a pack word's are);
 * calown/_own_ -> the others, which only the calibration hears, so it
 * hears speech of that kind the training did not refuse. Returns 0, or
 * efail's code naming the folder. */
#define ENROLL_OWN_NEG "_own_"
#define ENROLL_OWN_HELD 4
static int own_negatives(struct enr *E, FILE *vl) {
    char real[PATH_MAX], dir[2][PATH_MAX + 16], **files;
    const char *neg = E->r->negatives;
    if (!realpath(neg, real))
        return efail(E, -errno, "--negatives %s: %s", neg, strerror(errno));
    size_t n = dataset__list_sounds(real, &files), k = 0;
    snprintf(dir[0], sizeof dir[0], "%s/%s", E->neg, ENROLL_OWN_NEG);
    snprintf(dir[1], sizeof dir[1], "%s/%s", E->calown, ENROLL_OWN_NEG);
    int rc = n ? 0 : KWS_EDATASET;
    if (!rc && (mkdir(dir[0], 0700) < 0 || mkdir(E->calown, 0700) < 0 || mkdir(dir[1], 0700) < 0))
        rc = -errno;
    for (size_t i = 0; i < n; i++) {
        int held = i % ENROLL_OWN_HELD == ENROLL_OWN_HELD - 1;
        char src[PATH_MAX * 2], dst[PATH_MAX * 3];
        snprintf(src, sizeof src, "%s/%s", real, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir[held], files[i]);
        if (!rc && symlink(src, dst) < 0)
            rc = -errno;
        if (!held && k++ % 8 == 7)
            fprintf(vl, "%s/%s\n", ENROLL_OWN_NEG, files[i]);
        E->n_calown += !rc && held;
        free(files[i]);
    }
    free(files);
    if (rc == KWS_EDATASET)
        return efail(E, rc, "--negatives %s: no sound files (WAV, FLAC or Ogg) in it", neg);
    if (rc)
        return efail(E, rc, "%s: %s", dir[0], kws_strerror(rc));
    say(E->p,
        "negatives: %zu recordings of your own from %s (%zu of them for the calibration alone)", n,
        neg, E->n_calown);
    return 0;
}

/* neg/<word> -> the pack's word folders, less the words being enrolled,
 * every eighth clip of each listed for validation; calneg/<word> -> the
 * calib_words of them with the fewest clips (names breaking ties), which the
 * training never hears: the calibration's phrases are words the model was
 * not taught to refuse, as a user's speech is (docs/ENROLL.md). At least one
 * word always trains; with fewer the calibration hears the trained words. */
static int layout_negatives(struct enr *E) {
    char words[PATH_MAX + 16], list[PATH_MAX + 32];
    snprintf(words, sizeof words, "%s/words", E->r->pack);
    snprintf(list, sizeof list, "%s/validation_list.txt", E->neg);
    if (mkdir(E->neg, 0700) < 0)
        return efail(E, -errno, "%s: %s", E->neg, strerror(errno));
    char **subs;
    size_t n_sub = dataset__list_dirs(words, &subs), used = 0, n_use = 0;
    struct {
        char real[PATH_MAX];
        char **files;
        size_t n; /* its clips (0: not used) */
        int held; /* only the calibration hears it */
    } *w = calloc(n_sub + 1, sizeof *w);
    int rc = w ? 0 : -ENOMEM;
    for (size_t s = 0; s < n_sub && !rc; s++) {
        char src[PATH_MAX * 2];
        snprintf(src, sizeof src, "%s/%s", words, subs[s]);
        if (is_new_word(E->r, subs[s]))
            say(E->p, "pack: %s left out of the negatives (it is a word being enrolled)", subs[s]);
        else if (realpath(src, w[s].real) &&
                 (w[s].n = dataset__list_sounds(w[s].real, &w[s].files)))
            n_use++;
    }
    /* the calibration's words: the smallest, while one is left to train on */
    for (int k = 0; k < E->r->calib_words && n_use > 1 && !rc; k++, n_use--) {
        size_t best = n_sub;
        for (size_t s = 0; s < n_sub; s++)
            if (w[s].n && !w[s].held && (best == n_sub || w[s].n < w[best].n))
                best = s;
        w[best].held = 1;
        E->n_calneg++;
    }
    if (!rc && E->n_calneg && mkdir(E->calneg, 0700) < 0)
        rc = -errno;
    FILE *vl = rc ? NULL : fopen(list, "w");
    if (!rc && !vl)
        rc = -errno;
    for (size_t s = 0; s < n_sub; s++) {
        char dst[PATH_MAX * 2];
        snprintf(dst, sizeof dst, "%s/%s", w && w[s].held ? E->calneg : E->neg, subs[s]);
        if (!rc && w[s].n && symlink(w[s].real, dst) < 0)
            rc = -errno;
        if (!rc && w[s].n && w[s].held)
            say(E->p, "pack: %s kept out of the training for the calibration", subs[s]);
        for (size_t i = 0; w && i < w[s].n; i++) {
            if (!rc && !w[s].held && i % 8 == 7)
                fprintf(vl, "%s/%s\n", subs[s], w[s].files[i]);
            free(w[s].files[i]);
        }
        used += !rc && w[s].n && !w[s].held;
        if (w)
            free(w[s].files);
        free(subs[s]);
    }
    free(subs);
    free(w);
    int own = !rc && E->r->negatives ? own_negatives(E, vl) : 0;
    if (vl && fclose(vl) != 0 && !rc)
        rc = -EIO;
    if (own)
        return own;
    if (rc)
        return efail(E, rc, "%s: %s", E->neg, kws_strerror(rc));
    if (!used)
        return efail(E, KWS_EDATASET, "%s: no word folders of negatives (--pack)", words);
    return 0;
}

/* ==== Training ==== */

static void on_train_note(void *data, const char *line) {
    struct enr *E = data;
    say(E->p, "%s", line);
}

static void on_train_epoch(void *data, const struct train_epoch_report *e) {
    struct enr *E = data;
    say(E->p,
        "epoch %d/%d: loss %.4f, validation stream %.0f %% at %.1f false alarms/h "
        "(threshold %.3f)%s",
        e->epoch, e->epochs, e->loss, 100.0 * e->stream_hit, e->stream_fa_h, (double)e->stream_thr,
        e->best ? ", kept" : "");
    if (E->p && E->p->bar)
        E->p->bar(E->p->data, "training", e->epoch, e->epochs);
}

/* The training recipe: the network and front end of the starting model, the
 * labels (with keep_keywords the model's keywords first), the enrol values. */
static void train_recipe_from(const struct enr *E, struct train_recipe *t) {
    const struct enroll_recipe *r = E->r;
    const struct snn_cfg *c = &E->init;
    train_recipe_default(t);
    t->data = E->data;
    t->out = E->model;
    t->negatives = E->neg;
    t->noise = E->noise;
    t->init = r->init;
    t->threads = r->threads;
    t->seed = r->seed;
    int n = 0;
    if (r->keep_keywords)
        for (int i = 0; i < c->n_classes; i++)
            if (c->labels[i][0] != '_')
                snprintf(t->labels[n++], SNN_LABEL_LEN, "%s", c->labels[i]);
    for (int w = 0; w < r->n_words; w++)
        snprintf(t->labels[n++], SNN_LABEL_LEN, "%s", r->words[w]);
    snprintf(t->labels[n++], SNN_LABEL_LEN, "_silence_");
    snprintf(t->labels[n++], SNN_LABEL_LEN, "_unknown_");
    t->n_labels = n;
    t->n_hidden = t->n_rec = c->n_layers;
    for (int l = 0; l < c->n_layers; l++) {
        const struct snn_layer_cfg *lc = &c->layer[l];
        t->hidden[l] = lc->n;
        t->rec[l] = lc->rec;
        if (lc->rec == SNN_REC_CONV) {
            t->k = lc->k;
            t->conv_ch = lc->ch;
        }
        if (lc->rec != SNN_REC_NONE) {
            t->d_max = lc->d_max;
            t->beta_rec = lc->beta;
        } else {
            t->beta0 = lc->beta;
        }
        if (l > 0)
            t->in_delay = lc->in_d_max;
    }
    t->out_beta = c->out_beta;
    t->out_gain = c->out_gain;
    t->fmax = c->fe.fmax;
    t->pcen_release = c->fe.pcen_release;
    t->enc_kind = c->fe.enc_kind;
    t->n_enc = c->fe.enc_levels;
    for (int i = 0; i < c->fe.enc_levels; i++)
        t->enc[i] = c->fe.enc_thresh[i];
    t->no_bn = 1; /* a model file has its BatchNorm folded in */
    t->windows = r->windows;
    t->epochs = r->epochs;
    t->batch = r->batch;
    t->mine_every = r->mine_every;
    t->select = r->select;
    t->stream_val = 1;
    t->window_ms = r->window_ms;
    t->p_keyword = r->p_keyword;
    t->lr = r->lr;
    t->lr_delay = r->lr_delay;
    t->sigma_init = r->sigma_init;
    t->win_weight = r->win_weight;
    t->fa_weight = r->fa_weight;
    t->ema = r->ema;
    t->speed[0] = r->speed[0];
    t->speed[1] = r->speed[1];
    t->snr[0] = r->snr[0];
    t->snr[1] = r->snr[1];
    t->reverb = r->reverb;
    t->freeze = r->freeze;
    t->calib_fa = r->calib_fa;
    t->calib_passes = r->val_passes;
}

static int train_enroll(struct enr *E) {
    struct train_recipe t;
    train_recipe_from(E, &t);
    const struct train_progress tp = {E, on_train_note, on_train_epoch};
    char m[1024];
    int rc = train_run(&t, &tp, m, sizeof m);
    if (rc < 0)
        return efail(E, rc, "training: %s", m);
    return 0;
}

/* ==== Calibration ==== */

/* The bar counts minutes of the stream heard, shown at each tenth of it. */
static void on_cal_audio(void *ctx, int pass, const float *x, size_t n, size_t total) {
    struct enr *E = ctx;
    (void)pass;
    (void)x;
    E->cal_heard += n;
    int tenth = (int)(10 * E->cal_heard / total);
    if (tenth > E->cal_shown && E->p && E->p->bar) {
        E->cal_shown = tenth;
        double min = 60.0 * E->rate;
        E->p->bar(E->p->data, "calibration", round((double)E->cal_heard / min),
                  round((double)total / min));
    }
}

/* The recorded takes among the first n of ts (synthetic ones,
 * ENROLL_SAY_PREFIX, left out), at most cap of them, into rec, and when at
 * is not NULL their places in ts. Returns how many. */
static size_t recorded_takes(const struct enroll_takes *ts, size_t n, size_t cap,
                             struct enroll_take *rec, size_t *at) {
    const size_t pre = sizeof ENROLL_SAY_PREFIX - 1;
    size_t n_rec = 0;
    for (size_t i = 0; i < n && n_rec < cap; i++)
        if (strncmp(ts->t[i].file, ENROLL_SAY_PREFIX, pre) != 0) {
            if (at)
                at[n_rec] = i;
            rec[n_rec++] = ts->t[i];
        }
    return n_rec;
}

/* m's second look from the recorded takes among the first n of the (one)
 * enrolled word (recorded_takes); none when fewer than 2 are recorded. Its
 * cut is the takes' own times cut_factor (once set_cut has set it). */
static int build_verifier(struct enr *E, struct snn_model *m, size_t n) {
    struct enroll_take *rec = malloc((n + 1) * sizeof *rec);
    int label = -1, rc = 0;
    for (int c = 0; c < m->cfg.n_classes; c++)
        if (!strcmp(m->cfg.labels[c], E->r->words[0]))
            label = c;
    if (label < 0 || !rec) {
        free(rec);
        return label < 0 ? KWS_EDATASET : -ENOMEM;
    }
    size_t n_rec = recorded_takes(&E->takes[0], n, n, rec, NULL);
    kws_verifier_free(&m->verify);
    if (n_rec >= 2)
        rc = enroll_verifier(&m->verify, &m->cfg.fe, label, rec, n_rec, &E->r->rules,
                             (uint64_t)E->r->seed, NULL);
    if (!rc && E->cut_factor > 0.0f)
        m->verify.cut *= E->cut_factor;
    free(rec);
    return rc;
}

/* The threshold from a stream of the pack's negatives alone (>= calib_hours;
 * its phrases and its single words), then the hit rate of the held-out takes
 * between negatives at it. */
static int calibrate(struct enr *E, struct snn_model *m) {
    const struct enroll_recipe *r = E->r;
    struct dataset ds = {0};
    const char *labels[SNN_MAX_CLASSES];
    char msg[512];
    for (int c = 0; c < m->cfg.n_classes; c++)
        labels[c] = m->cfg.labels[c];
    int rc = dataset_init(&ds, labels, m->cfg.n_classes, E->rate);
    if (!rc)
        rc = dataset_load(&ds, E->data, -1, msg, sizeof msg);
    int calib_src = ds.n_sources; /* the single words it hears: calib/'s */
    if (!rc && E->n_calib)
        rc = dataset_load(&ds, E->calib, DS_TEST, msg, sizeof msg);
    if (!rc)
        rc =
            dataset_load_negatives(&ds, E->n_calneg ? E->calneg : E->neg, DS_TEST, msg, sizeof msg);
    if (!rc && E->n_calown)
        rc = dataset_load_negatives(&ds, E->calown, DS_TEST, msg, sizeof msg);
    size_t noise0 = ds.n_noise; /* the pack's recordings follow the _silence_ clips */
    if (!rc)
        rc = dataset_add_noise(&ds, E->noise, msg, sizeof msg);
    if (rc) {
        dataset_free(&ds);
        return efail(E, rc, "calibration: %s", msg);
    }
    size_t n = ds.n_clips, *sil = malloc((n + 1) * sizeof *sil),
           *neg = malloc((n + 1) * sizeof *neg);
    size_t *held = malloc((n + 1) * sizeof *held), n_sil = 0, n_neg = 0, n_held = 0;
    if (!sil || !neg || !held)
        rc = -ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        const struct ds_clip *c = &ds.clips[i];
        if (c->label == ds.sil_class)
            sil[n_sil++] = held[n_held++] = i;
        else if (c->negative || (c->label == ds.unk_class && c->source == calib_src))
            neg[n_neg++] = i;                                    /* phrases and single words */
        else if (c->split == DS_VAL && c->label != ds.unk_class) /* calib/ has data/'s words */
            held[n_held++] = i;
    }
    struct stream_eval_opts o = stream_eval_opts_default();
    o.seed = (uint64_t)r->seed + 17;
    o.neg = neg;
    o.n_neg = n_neg;
    o.neg_only = 1;
    o.min_hours = r->calib_hours;
    o.noise = (const float *const *)ds.noise + noise0;
    o.noise_n = ds.noise_n + noise0;
    o.n_noise = ds.n_noise - noise0;
    o.snr_lo = r->snr_cal[0];
    o.snr_hi = r->snr_cal[1];
    o.on_audio = on_cal_audio;
    o.ctx = E;
    struct stream_eval se = {0};
    struct stream_result sr;
    struct kws_listener_settings ls; /* kwsd's smoothing and refractory period */
    kws_listener_settings_default(&ls);
    if (!rc) {
        E->cal_heard = 0;
        E->cal_shown = 0;
        rc = stream_eval_run_opts(&se, m, &ds, sil, n_sil, &o);
    }
    float thr = 0.0f;
    if (!rc) {
        thr = stream_eval_calibrate(&se, &m->cfg, ls.smoothing_ms, ls.refractory_ms, r->calib_fa,
                                    &sr);
        rc = thr < 0.0f ? -ENOMEM : 0;
        E->res->cal_hours = sr.hours;
        E->res->cal_fa = sr.false_alarms;
        E->res->threshold = thr;
    }
    stream_eval_free(&se);
    if (!rc && n_held > n_sil) {
        /* the held-out takes, 4 passes, between a few of the pack's negatives */
        struct stream_eval_opts h = o;
        h.neg_only = 0;
        h.passes = 4;
        h.on_audio = NULL;
        /* three negatives per take, spread over the pack's words */
        size_t want = 3 * (n_held - n_sil), k = 0;
        for (size_t i = 0; i < n_neg && k<want; i += n_neg / want> 1 ? n_neg / want : 1)
            neg[k++] = neg[i];
        h.n_neg = k;
        /* the held-out takes are looked at with the other takes only */
        struct kws_verifier all = m->verify;
        memset(&m->verify, 0, sizeof m->verify);
        if (all.n_takes)
            rc = build_verifier(E, m, E->takes[0].n - (size_t)r->n_val);
        if (!rc)
            rc = stream_eval_run_opts(&se, m, &ds, held, n_held, &h);
        kws_verifier_free(&m->verify);
        m->verify = all;
        if (!rc)
            rc = stream_eval_score(&se, &m->cfg, thr, ls.smoothing_ms, ls.refractory_ms, &sr);
        if (!rc) {
            E->res->n_held = sr.n_kw;
            E->res->hits = sr.hits;
            E->res->hit_fa_h = sr.hours > 0 ? sr.false_alarms / sr.hours : 0.0;
        }
        stream_eval_free(&se);
    }
    free(sil);
    free(neg);
    free(held);
    dataset_free(&ds);
    if (rc)
        return efail(E, rc, "calibration: %s", kws_strerror(rc));
    return 0;
}

/* ==== The run ==== */

/* Checks the recipe against the starting model before any work. */
static int check_recipe(struct enr *E) {
    const struct enroll_recipe *r = E->r;
    if (r->n_words < 1 || r->n_words > ENROLL_MAX_WORDS)
        return efail(E, KWS_ECONFIG, "no word to enrol (--word)");
    if (!r->init || !r->pack || !r->out)
        return efail(E, KWS_ECONFIG,
                     "the starting model, the negative pack and the output "
                     "file are all needed");
    struct snn_model m = {0};
    char msg[512];
    int rc = snn_model_load(&m, r->init, msg, sizeof msg);
    if (rc < 0)
        return efail(E, rc, "%s", msg);
    E->init = m.cfg;
    E->rate = m.cfg.fe.sample_rate;
    snn_model_free(&m);
    int n_kw = 0;
    for (int i = 0; i < E->init.n_classes; i++)
        n_kw += E->init.labels[i][0] != '_';
    if ((r->keep_keywords ? n_kw : 0) + r->n_words + 2 > SNN_MAX_CLASSES)
        return efail(E, KWS_ECONFIG, "too many classes (at most %d)", SNN_MAX_CLASSES);
    for (int w = 0; w < r->n_words; w++) {
        const char *s = r->words[w];
        if (!s[0] || s[0] == '_' || strchr(s, '/') || !strcmp(s, "."))
            return efail(E, KWS_ECONFIG,
                         "'%s': a word is a name without '/' that does not "
                         "start with '_'",
                         s);
        for (int i = 0; i < E->init.n_classes; i++)
            if (!strcmp(E->init.labels[i], s))
                return efail(E, KWS_ECONFIG, "'%s' is already a label of %s", s, r->init);
        for (int v = 0; v < w; v++)
            if (!strcmp(r->words[v], s))
                return efail(E, KWS_ECONFIG, "'%s' given twice", s);
        if (!r->takes[w])
            return efail(E, KWS_ECONFIG, "'%s': no folder of takes", s);
    }
    snprintf(E->noise, sizeof E->noise, "%s/noise", r->pack);
    struct stat st;
    if (stat(E->noise, &st) != 0 || !S_ISDIR(st.st_mode))
        return efail(E, -ENOENT, "%s: no such folder (is --pack a negative pack?)", E->noise);
    return r->negatives ? enroll_check_negatives(r->negatives, E->msg, E->msglen) : 0;
}

/* Takes of each word an enrolment needs: min_takes, and one more than it
 * holds out. */
static int takes_needed(const struct enroll_recipe *r) {
    return r->min_takes > r->n_val + 1 ? r->min_takes : r->n_val + 1;
}

static int load_takes(struct enr *E) {
    const struct enroll_recipe *r = E->r;
    char msg[512];
    for (int w = 0; w < r->n_words; w++) {
        int rc =
            enroll_takes_load(&E->takes[w], r->takes[w], E->rate, &r->rules, E->p, msg, sizeof msg);
        if (rc < 0)
            return efail(E, rc, "%s", msg);
        E->res->n_takes[w] = (int)E->takes[w].n;
        E->res->n_rejected[w] = (int)E->takes[w].n_rejected;
        say(E->p, "%s: %zu takes accepted, %zu rejected (%s)", r->words[w], E->takes[w].n,
            E->takes[w].n_rejected, r->takes[w]);
        int need = takes_needed(r);
        if ((int)E->takes[w].n < need)
            return efail(E, KWS_ECONFIG, "%s: %zu usable takes of '%s', at least %d needed",
                         r->takes[w], E->takes[w].n, r->words[w], need);
        if (E->takes[w].n < ENROLL_TAKES_WANTED)
            say(E->p,
                "%s: %zu takes: from fewer than %d the model catches fewer of other people's "
                "words; more can be recorded into the folder (kwsd-enroll --word %s --record "
                "--takes-dir %s)",
                r->words[w], E->takes[w].n, ENROLL_TAKES_WANTED, r->words[w], r->takes[w]);
    }
    return 0;
}

/* The folders inside each of tops (n_tops of them), as paths, less any
 * named like a word being enrolled: *dirs (malloc'd, each path too; free
 * with free_dirs), *n_dirs of them. Returns 0 or -ENOMEM. */
static int sub_dirs(struct enr *E, const char *const *tops, int n_tops, char ***dirs,
                    size_t *n_dirs) {
    char **names[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    int rc = 0;
    *n_dirs = 0;
    for (int t = 0; t < n_tops && t < 2; t++)
        n[t] = dataset__list_dirs(tops[t], &names[t]);
    if (!(*dirs = calloc(n[0] + n[1] + 1, sizeof **dirs)))
        rc = -ENOMEM;
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < n[t]; i++) {
            size_t len = strlen(tops[t]) + strlen(names[t][i]) + 2;
            if (!rc && !is_new_word(E->r, names[t][i])) {
                if (((*dirs)[*n_dirs] = malloc(len)))
                    snprintf((*dirs)[(*n_dirs)++], len, "%s/%s", tops[t], names[t][i]);
                else
                    rc = -ENOMEM;
            }
            free(names[t][i]);
        }
        free(names[t]);
    }
    return rc;
}

static void free_dirs(char **dirs, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(dirs[i]);
    free(dirs);
}

/* Leaves out the takes of a one-word enrolment that are unlike the others
 * (enroll_verifier_odd against the pack's phrase words, heard by the
 * starting model's front end): a cough, another word, a word cut in two at
 * a pause longer than max_pause_ms. They would train the word wrongly and,
 * in the second look, raise its cut to where most speech passes. Recorded
 * takes only (--say's are left as they are); none is left out when fewer
 * than the takes the enrolment needs would stay. */
static int drop_odd_takes(struct enr *E) {
    const struct enroll_recipe *r = E->r;
    struct enroll_takes *ts = &E->takes[0];
    if (!r->verify || r->n_words != 1 || !r->pack)
        return 0;
    char words[PATH_MAX], **dirs = NULL, odd[KWS_VERIFY_MAX_TAKES];
    const char *top[1] = {words};
    struct enroll_take rec[KWS_VERIFY_MAX_TAKES];
    size_t at[KWS_VERIFY_MAX_TAKES], n_dirs = 0, n_odd = 0;
    size_t n_rec = recorded_takes(ts, ts->n, KWS_VERIFY_MAX_TAKES, rec, at);
    float bar = 0.0f;
    if (n_rec < 3)
        return 0;
    snprintf(words, sizeof words, "%s/words", r->pack);
    int rc = sub_dirs(E, top, 1, &dirs, &n_dirs);
    struct kws_verifier v = {0};
    if (!rc && n_dirs)
        rc = enroll_verifier_odd(&v, &E->init.fe, 0, rec, n_rec, &r->rules, (uint64_t)r->seed,
                                 (const char *const *)dirs, n_dirs, r->threads, odd, &n_odd, &bar);
    kws_verifier_free(&v);
    free_dirs(dirs, n_dirs);
    if (rc < 0)
        return efail(E, rc, "matching the takes against each other: %s", kws_strerror(rc));
    if (!n_odd)
        return 0;
    int need = takes_needed(r);
    if ((int)(ts->n - n_odd) < need) {
        say(E->p,
            "%zu of the takes are unlike the others (above %.3f, the pack's median), but "
            "fewer than %d would stay: all are kept",
            n_odd, (double)bar, need);
        return 0;
    }
    size_t k = 0;
    for (size_t i = 0, j = 0; i < ts->n; i++) {
        if (j < n_rec && at[j] == i && odd[j++]) {
            say(E->p,
                "%s: left out: it is less like the other takes than most of the pack's "
                "speech is (a cough, another word, a word cut in two at a long pause?); "
                "listen to it, and delete it or record it again",
                ts->t[i].file);
            free(ts->t[i].x);
            continue;
        }
        ts->t[k++] = ts->t[i];
    }
    ts->n = k;
    E->res->n_odd = (int)n_odd;
    E->res->n_takes[0] = (int)k;
    return 0;
}

/* The second look's cut from the pack's phrase words (the training's and
 * the calibration's; enroll_verifier_cut_from), and cut_factor from it. */
static int set_cut(struct enr *E, struct snn_model *m) {
    struct kws_verifier *v = &m->verify;
    const char *top[2] = {E->neg, E->calneg};
    char **dirs = NULL;
    size_t n_dirs = 0, heard = 0;
    int rc = sub_dirs(E, top, E->n_calneg ? 2 : 1, &dirs, &n_dirs);
    float takes = v->cut, cut = (float)rc;
    if (!rc)
        cut =
            enroll_verifier_cut_from(v, &m->cfg.fe, (const char *const *)dirs, n_dirs, &E->r->rules,
                                     E->r->cut_pass, (uint64_t)E->r->seed, E->r->threads, &heard);
    free_dirs(dirs, n_dirs);
    if (cut < 0.0f)
        return efail(E, (int)cut, "the second look's cut: %s", kws_strerror((int)cut));
    v->cut = cut;
    E->cut_factor = takes > 0.0f ? cut / takes : 1.0f;
    E->res->verify_cut_takes = takes;
    E->res->cut_heard = (int)heard;
    say(E->p, "second look: cut %.3f from %zu pack phrases (%g %% pass), the takes' own %.3f",
        (double)cut, heard, 100.0 * E->r->cut_pass, (double)takes);
    return 0;
}

/* Stores the threshold in the trained model and writes it to out. */
static int write_model(struct enr *E) {
    struct snn_model m = {0};
    char msg[512];
    int rc = snn_model_load(&m, E->model, msg, sizeof msg);
    if (rc < 0)
        return efail(E, rc, "%s", msg);
    if (E->r->verify && E->r->n_words == 1) {
        if ((rc = build_verifier(E, &m, E->takes[0].n)) < 0) {
            snn_model_free(&m);
            return efail(E, rc, "the takes' second look: %s", kws_strerror(rc));
        }
        E->res->n_verify = m.verify.n_takes;
        E->res->verify_cut_takes = m.verify.cut;
        if (m.verify.n_takes && E->r->cut_pass > 0.0f && (rc = set_cut(E, &m)) < 0) {
            snn_model_free(&m);
            return rc;
        }
        E->res->verify_cut = m.verify.cut;
        if (m.verify.n_takes)
            say(E->p, "second look: %d takes kept in the model, cut %.3f", m.verify.n_takes,
                (double)m.verify.cut);
        else
            say(E->p, "second look: none (it keeps recorded takes only, and fewer than 2 are)");
    } else if (E->r->verify) {
        say(E->p, "second look: only for a model of one word; %d words have none", E->r->n_words);
    }
    double t0 = train__now_s();
    rc = calibrate(E, &m);
    E->res->cal_s = train__now_s() - t0;
    if (rc == 0) {
        m.cfg.threshold = E->res->threshold;
        if ((rc = snn_model_save(&m, E->r->out)) < 0)
            efail(E, rc, "cannot write %s: %s", E->r->out, kws_strerror(rc));
    }
    snn_model_free(&m);
    return rc;
}

int enroll_run(const struct enroll_recipe *r, const struct enroll_progress *p,
               struct enroll_result *res, char *msg, size_t msglen) {
    struct enr *E = calloc(1, sizeof *E);
    if (!E) {
        snprintf(msg, msglen, "out of memory");
        return -ENOMEM;
    }
    double t0 = train__now_s();
    memset(res, 0, sizeof *res);
    E->r = r;
    E->p = p;
    E->msg = msg;
    E->msglen = msglen;
    E->res = res;
    int rc = check_recipe(E);
    if (!rc)
        rc = load_takes(E);
    if (!rc)
        rc = drop_odd_takes(E);
    if (!rc) {
        const char *td = getenv("TMPDIR");
        snprintf(E->tmp, sizeof E->tmp, "%s/kwsd-enroll-XXXXXX", td && *td ? td : "/tmp");
        if (!mkdtemp(E->tmp)) {
            rc = efail(E, -errno, "%s: %s", E->tmp, strerror(errno));
            E->tmp[0] = 0;
        }
    }
    if (!rc) {
        snprintf(E->data, sizeof E->data, "%s/data", E->tmp);
        snprintf(E->calib, sizeof E->calib, "%s/calib", E->tmp);
        snprintf(E->neg, sizeof E->neg, "%s/negatives", E->tmp);
        snprintf(E->calneg, sizeof E->calneg, "%s/calneg", E->tmp);
        snprintf(E->calown, sizeof E->calown, "%s/calown", E->tmp);
        snprintf(E->model, sizeof E->model, "%s/model.kwsm", E->tmp);
        rc = layout_data(E);
    }
    if (!rc)
        rc = layout_negatives(E);
    double t1 = train__now_s();
    if (!rc)
        rc = train_enroll(E);
    res->train_s = train__now_s() - t1;
    if (!rc)
        rc = write_model(E);
    if (E->tmp[0])
        nftw(E->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (int w = 0; w < ENROLL_MAX_WORDS; w++)
        enroll_takes_free(&E->takes[w]);
    res->total_s = train__now_s() - t0;
    free(E);
    return rc;
}

/* kws/enroll.h: teaching a model a new word from a few takes (the recipe behind kwsd-enroll).
 *
 * A take is one recording of the word, in any format libsndfile reads, at any
 * rate and of any length. enroll_take_check finds the word in it (10 ms
 * frame energies within range_db of the loudest, short pauses bridged:
 * dataset_find_word, the data sets' own rule) and rejects a take that is
 * clipped (many samples at full scale), silent or too quiet, or has no word
 * of a plausible length, with a reason. enroll_takes_load does that for every
 * sound file of a folder, keeping the accepted takes cut to the word with
 * pad_ms of their own audio on each side, at the model's rate.
 *
 * enroll_run then does the whole enrolment:
 *
 *   - lays out a data set in a temporary folder (Speech Commands layout):
 *     the takes as the new words' classes (n_val of each word held out for
 *     validation), 1 s cuts of the negative pack's noise as _silence_, the
 *     pack's single words (unknown/) as _unknown_ and its phrases (words/)
 *     as negatives, both less any word that is being enrolled (an eighth of
 *     each word's clips held out); of the single words, train_unknown
 *     (taken in turn from each word) are trained on, the rest kept for the
 *     calibration alone; the training windows draw their other words half
 *     from the single words, half from the phrases;
 *   - trains through train_run (kws/recipe.h) from the shipped model
 *     (init): its hidden layers, front end and encoder are taken as they
 *     are, and the readout rows of every class it shares with the new model
 *     (_silence_, _unknown_, and with keep_keywords its keywords) start from
 *     the model's; the rest is the enrol recipe below (stream windows,
 *     negatives, hard-negative mining, speed/gain/noise augmentation);
 *   - calibrates: a stream of the pack's phrases and all its single words alone, at
 *     least calib_hours long (the pack said again and again, each pass in a
 *     new order, with the pack's noise under it at 5-25 dB), gives the lowest
 *     threshold with at most calib_fa false alarms per hour; a stream of the
 *     held-out takes between pack negatives, over the same noise, gives the
 *     hit rate expected at that threshold;
 *   - stores the threshold in the model and writes it to out (atomically).
 *
 * The shipped keywords (keep_keywords) have no clips on a board: their rows
 * start from the model's and are trained on the new data only, where they
 * are never the target, so they keep what the model knew only as far as a
 * short fine-tuning leaves it (measure them with kwsd-eval before relying on
 * them).
 *
 *     struct enroll_recipe r;
 *     enroll_recipe_default(&r);
 *     r.n_words = 1; snprintf(r.words[0], SNN_LABEL_LEN, "lights");
 *     r.takes[0] = "/home/me/.local/share/kwsd/takes/lights";
 *     r.pack = "/usr/share/kwsd/negpack"; r.out = "/var/lib/kwsd/models/lights.kwsm";
 *     struct enroll_result res;
 *     if (enroll_run(&r, &progress, &res, msg, sizeof msg) < 0) say(msg);
 *
 * Thread-safety: enroll_run calls train_run (OpenMP, its thread count set
 * from threads): one at a time per process. enroll_take_check is reentrant.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRAIN_ENROLL_H
#define KWS_TRAIN_ENROLL_H

#include <stddef.h>
#include <stdint.h>

#include "kws/snn.h"

/* Most words one enrolment teaches. */
#define ENROLL_MAX_WORDS 8
/* Takes of a word an enrolment asks for (kwsd-enroll --record's default):
 * from fewer, the second look refuses more of other people's words and the
 * enrolment says so (docs/ENROLL.md, "Where it stands"). */
#define ENROLL_TAKES_WANTED 20
/* Most takes of one word that are read. */
#define ENROLL_MAX_TAKES 1000

/* What makes a take usable, and how it is cut. */
struct enroll_take_rules {
    float range_db;    /* a frame within this many dB of the loudest is word (30) */
    int max_gap_ms;    /* quieter runs inside the word bridged up to this long (250) */
    int max_pause_ms;  /* a part of the word after a longer pause, up to this long (500;
                          dataset_find_word) */
    int pad_ms;        /* audio kept on each side of the word (100) */
    int clip_samples;  /* rejected at this many samples at full scale, |x| >= 0.999 (20) */
    float min_dbfs;    /* rejected when the word's RMS is below this, dBFS (-50) */
    float silent_dbfs; /* said to be silent (not just quiet) below this peak frame RMS (-70) */
    int min_word_ms;   /* rejected when the word is shorter (150) */
    int max_word_ms;   /* or longer (2500: more than one word, or a noise) */
};

void enroll_take_rules_default(struct enroll_take_rules *t);

/* Checks a take x (n samples at rate Hz) against t. Returns 0 and the word
 * with its padding in [*on, *off) (samples), or KWS_EDATASET with the reason
 * in why ("clipped: 153 samples at full scale", "silent", "too quiet: the
 * word is at -58 dBFS, at least -50 wanted", ...). */
int enroll_take_check(const float *x, size_t n, int rate, const struct enroll_take_rules *t,
                      size_t *on, size_t *off, char *why, size_t whylen);

/* One accepted take, cut to the word with its padding, at the model's rate. */
struct enroll_take {
    float *x;
    size_t n;
    char file[256]; /* its file name in the folder */
};

struct enroll_takes {
    struct enroll_take *t;
    size_t n;
    size_t n_rejected;
};

/* Where enroll_takes_load and enroll_run report. Any callback may be NULL. */
struct enroll_progress {
    void *data;
    void (*note)(void *data, const char *line); /* a line of text, no '\n' */
    /* a stage's progress: stage is "training" or "calibration", done of total */
    void (*bar)(void *data, const char *stage, double done, double total);
};

/* Reads every sound file of dir (sorted by name) at rate Hz and keeps the
 * takes t accepts; each rejected one is a note "FILE: rejected: WHY".
 * Returns 0, -ENOENT (no such folder), KWS_EDATASET (no sound file in it),
 * or -ENOMEM; msg says what. Zero accepted takes is no error here. */
int enroll_takes_load(struct enroll_takes *ts, const char *dir, int rate,
                      const struct enroll_take_rules *t, const struct enroll_progress *p, char *msg,
                      size_t msglen);
void enroll_takes_free(struct enroll_takes *ts);

/* Takes made by speech synthesis, for a user with no recordings
 * (kwsd-enroll --say). */
struct enroll_say_opts {
    const char *text; /* what is said: the word, a label's '_' read as a space */
    const char *dir;  /* where the takes go (made if missing) */
    int n_takes;
};

/* How a synthetic take's file name begins: the second look (kws/verify.h)
 * keeps only recorded takes, since synthetic voices are alike and a real
 * voice matches none of them well. */
#define ENROLL_SAY_PREFIX "say-"

/* Says o->text n_takes times into o->dir as WAV files named
 * say-NNN-VOICE.wav (the same names and voices every time, so saying
 * again replaces them): espeak-ng's training voices of --synth (six
 * accents, eight variants, four speeds, five pitches), and every fourth
 * take one of flite's four voices when flite is installed. The
 * synthesisers run without a shell. Returns 0; -ENOENT when espeak-ng is
 * not installed, KWS_ECONFIG for an empty or too long text or a count out
 * of [1, ENROLL_MAX_TAKES], KWS_EDATASET when no take was made; msg says
 * which. */
int enroll_say(const struct enroll_say_opts *o, const struct enroll_progress *p, char *msg,
               size_t msglen);

/* Everything an enrolment is given. enroll_recipe_default sets the
 * training values every documented command starts from; the network and
 * the front end always come from init. */
struct enroll_recipe {
    /* ---- what to learn, from where, to where ---- */
    char words[ENROLL_MAX_WORDS][SNN_LABEL_LEN]; /* the new labels */
    const char *takes[ENROLL_MAX_WORDS];         /* a folder of takes per word */
    int n_words;
    const char *pack;  /* the negative pack: words/<word>/..., noise/... */
    const char *negatives; /* a folder of the user's own recordings that are not the
                            * word (speech that fired it): three in four train as one
                            * more of the pack's phrase words, the fourth only
                            * calibrates; NULL: none */
    const char *init;  /* the model to start from (the shipped commands-clip.kwsm) */
    const char *out;   /* the model file to write */
    int keep_keywords; /* 1: the new model also has init's keywords */
    struct enroll_take_rules rules;
    int min_takes; /* fewer accepted takes of a word is an error (5) */
    int n_val;   /* takes of each word held out for the hit rate, and the epoch with --select stream
                    (4) */
    int threads; /* OpenMP threads (0: all cores) */
    int seed;

    /* ---- training (kws/recipe.h fields of the same names) ---- */
    int windows, epochs, batch, mine_every, select;
    int train_unknown; /* the pack's single words the training hears (700), taken in
                        * turn from each word (0: all); calibration hears them all */
    int val_passes;    /* passes of the validation stream each epoch (calib_passes) */
    float window_ms, p_keyword;
    float lr, lr_delay, sigma_init, win_weight, fa_weight, ema;
    float speed[2], snr[2];
    float reverb; /* share of windows put in a synthetic room (kws/room.h) */
    int freeze;   /* hidden layers of init kept as they are (0: all fine-tuned) */

    /* ---- the second look (kws/verify.h) ---- */
    int verify; /* 1: the model keeps the takes and checks each event against
                 * them (one word only; --no-verify: 0) */
    float cut_pass; /* share of the pack's phrases the check's cut lets through
                     * (enroll_verifier_cut_from); 0 (the default): the takes' own cut */

    /* ---- calibration ---- */
    float calib_fa;    /* false alarms per hour the stored threshold allows */
    float calib_hours; /* length of the negatives-only calibration stream */
    int calib_words;   /* the pack's phrase words kept out of the training for it (0) */
    float snr_cal[2];  /* noise under the calibration streams, dB */
};

void enroll_recipe_default(struct enroll_recipe *r);

/* Whether dir can be a recipe's negatives: a folder. Returns 0, or -ENOENT
 * with "--negatives DIR: no such folder" in msg. enroll_run checks it first;
 * kwsd-enroll also before it records any take. */
int enroll_check_negatives(const char *dir, char *msg, size_t msglen);

/* What an enrolment found. */
struct enroll_result {
    int n_takes[ENROLL_MAX_WORDS];    /* accepted takes per word */
    int n_rejected[ENROLL_MAX_WORDS]; /* rejected ones */
    float threshold;                  /* stored in the model */
    double cal_hours;                 /* the negatives-only stream's length */
    int cal_fa;                       /* its false alarms at the threshold */
    int n_held, hits;                 /* held-out takes said, and caught */
    double hit_fa_h;                  /* false alarms per hour of that stream */
    int n_odd; /* takes left out as unlike the others (enroll_verifier_odd) */
    int n_verify;                     /* takes the model keeps for its second look (0: none) */
    float verify_cut;                 /* its cut */
    float verify_cut_takes;           /* the takes' own cut (kws_verify_cut_loo) */
    int cut_heard;                    /* pack phrases the cut was set on (0: the takes') */
    double train_s, cal_s, total_s;   /* seconds */
};

/* The second look for an enrolled word (kws/verify.h): each of the n_takes
 * takes (enroll_takes_load's, trimmed with rules' padding) is heard after
 * 0.5 s of pink noise 15 dB under the word, by a front end fe; the frames
 * of the word (dataset_find_word with rules' range and gap) become its
 * template; the cut comes from the takes alone (kws_verify_cut_loo). The
 * noise is drawn from seed. label is the word's class. Returns 0, -EINVAL
 * (fewer than 2 takes, or a take with no frame) or -ENOMEM; on failure v
 * is zeroed.
 * loo, when not NULL, gets each take's cost against the others
 * (kws_verify_cut_loo's; n_takes of them, at most KWS_VERIFY_MAX_TAKES). */
int enroll_verifier(struct kws_verifier *v, const struct kws_frontend_cfg *fe, int label,
                    const struct enroll_take *takes, size_t n_takes,
                    const struct enroll_take_rules *rules, uint64_t seed, float *loo);

/* The second look's costs of speech: up to ENROLL_CUT_PER_WORD sound files
 * of each folder of dirs (spread over it; trimmed by rules, as takes are;
 * a file that cannot be read or is rejected is left out) are heard as
 * enroll_verifier hears a take and matched against v's takes
 * (kws_verify_cost over all their frames). The noise under each file is
 * drawn from seed and the file's place, so the costs do not depend on the
 * threads it runs on (`threads`; 0: OpenMP's default). *costs: malloc'd,
 * sorted, *n_costs of them (NULL when none). Returns 0, -ENOMEM or the
 * front end's error.
 *
 * enroll_verifier_cut_from sets a cut from them: the share `pass` of
 * them goes through (between the pass-quantile and the next cost up),
 * held within ENROLL_CUT_LO to ENROLL_CUT_HI times v->cut (the takes' own,
 * kws_verify_cut_loo). *n_heard says how many files were heard (0: v->cut
 * is returned). Returns the cut, or a negative errno. */
#define ENROLL_CUT_PER_WORD 100
#define ENROLL_CUT_LO 0.90
#define ENROLL_CUT_HI 1.05
int enroll_verifier_costs(const struct kws_verifier *v, const struct kws_frontend_cfg *fe,
                          const char *const *dirs, size_t n_dirs,
                          const struct enroll_take_rules *rules, uint64_t seed, int threads,
                          float **costs, size_t *n_costs);
float enroll_verifier_cut_from(const struct kws_verifier *v, const struct kws_frontend_cfg *fe,
                               const char *const *dirs, size_t n_dirs,
                               const struct enroll_take_rules *rules, double pass, uint64_t seed,
                               int threads, size_t *n_heard);

/* The second look without the takes that are unlike the others (a cough,
 * another word, a word cut in two at a pause longer than the finder joins): as
 * enroll_verifier, then every take whose cost against the others
 * (kws_verify_cut_loo's) is above *bar, the median cost of the speech in
 * dirs (enroll_verifier_costs), is left out and v is built again from the
 * rest, its cut with it. Such a take matches the other takes less closely
 * than most other speech does; kept, it would raise a cut that keeps every
 * take (any count under 20, KWS_VERIFY_KEEP) to where most speech passes.
 * odd[t] is 1 for each take left out (n_takes entries), *n_odd counts them;
 * none is left out when dirs hold no sound file or fewer than 2 takes would
 * stay. Returns 0, or enroll_verifier's or enroll_verifier_costs' error (v
 * zeroed). */
int enroll_verifier_odd(struct kws_verifier *v, const struct kws_frontend_cfg *fe, int label,
                        const struct enroll_take *takes, size_t n_takes,
                        const struct enroll_take_rules *rules, uint64_t seed,
                        const char *const *dirs, size_t n_dirs, int threads, char *odd,
                        size_t *n_odd, float *bar);

/* Runs the enrolment r describes (see the top of this file). Returns 0 when
 * out is written; KWS_ECONFIG for a recipe that cannot work (no word, a
 * word that is a label of init, too few takes: msg says which); another
 * negative code when a file or the memory fails. */
int enroll_run(const struct enroll_recipe *r, const struct enroll_progress *p,
               struct enroll_result *res, char *msg, size_t msglen);

#endif /* KWS_TRAIN_ENROLL_H */

/* synth.c: keyword clips made by speech synthesisers (espeak-ng + sox, flite).
 *
 * train_run (kws/recipe.h) calls these for --synth and --flite: each fills a
 * folder-per-label set once (a marker file says it is complete) by running
 * the synthesiser for every keyword and some non-keywords at several
 * voices, speeds and pitches. The voices, words and seeds are fixed, so a
 * folder made twice holds the same clips.
 *
 * enroll_say (kws/enroll.h, kwsd-enroll --say) makes the takes of a new word
 * with the same training voices. Its text comes from the user, so it runs
 * the synthesisers with fork and exec, never through a shell, and writes
 * their own WAV files (the takes loader reads any rate).
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kws/enroll.h"
#include "kws/err.h"
#include "recipe_internal.h"

/* ==== Synthetic keyword clips (espeak-ng + sox) ==== */

static const char *const synth_unknown_words[] = {
    "bed",    "bird",  "cat",   "dog",    "happy",    "house",   "marvin", "sheila",
    "tree",   "wow",   "zero",  "one",    "two",      "three",   "four",   "five",
    "six",    "seven", "eight", "nine",   "backward", "forward", "follow", "learn",
    "visual", "hello", "okay",  "yellow", "know",     "top"};

/* More non-keywords for --synth-unknown N > 2: everyday words, and words that
 * sound close to the Speech Commands keywords (yet, now, cup, town, lift, ...),
 * the ones a stream must not fire on. */
static const char *const synth_unknown_more[] = {
    "yet",     "yeah",    "yesterday", "guess",     "less",  "now",      "note",    "nose",
    "snow",    "cup",     "pup",       "upon",      "town",  "brown",    "gown",    "found",
    "lift",    "loft",    "light",     "let",       "write", "bright",   "night",   "ride",
    "own",     "in",      "an",        "of",        "often", "cough",    "shop",    "step",
    "spot",    "stock",   "stuff",     "goat",      "ghost", "dough",    "toe",     "so",
    "show",    "blow",    "though",    "the",       "and",   "this",     "that",    "what",
    "where",   "when",    "time",      "home",      "music", "play",     "turn",    "please",
    "thank",   "water",   "kitchen",   "morning",   "today", "tomorrow", "door",    "window",
    "open",    "close",   "start",     "begin",     "hey",   "hi",       "coffee",  "dinner",
    "garden",  "really",  "maybe",     "people",    "about", "little",   "because", "other",
    "weather", "minute",  "number",    "something", "never", "always",   "around",  "table",
    "listen",  "nothing", "problem",   "lights",    "lemon", "rest",     "test",    "west",
    "bread",   "rain",    "dance",     "phone",     "money", "paper",    "sister",  "brother"};

struct voice {
    const char *name;
    int test;
};

/* Voices: six English accents x five variants for training; other variants
 * (m5, f3, f5, m7) are held out as the synthetic test set. */
static const char *const synth_bases[] = {"en-us",  "en-gb",      "en-gb-scotland",
                                          "en-029", "en-gb-x-rp", "en-us-nyc"};
static const char *const synth_train_var[] = {"",    "+m1", "+m3",    "+f1",
                                              "+f2", "+f4", "+klatt", "+m2"};
static const char *const synth_test_var[] = {"+m5", "+f3", "+f5", "+m7"};
/* espeak-ng's speeds (words per minute) and pitches (0-99) */
static const int synth_speeds[] = {120, 145, 170, 200}, synth_pitches[] = {25, 40, 55, 70, 85};

/* voice ("en-us+m1") as it stands in a file name ("en-us_m1"). */
static void voice_file_name(char *dst, size_t n, const char *voice) {
    snprintf(dst, n, "%s", voice);
    for (char *p = dst; *p; p++)
        if (*p == '+')
            *p = '_';
}

static int synth_one(const char *dir, const char *label, const char *word, const char *voice,
                     int speed, int pitch, int rate, char *rel, size_t rellen) {
    char vname[64];
    voice_file_name(vname, sizeof vname, voice);
    snprintf(rel, rellen, "%s/%s_%s_s%d_p%d.wav", label, vname, word, speed, pitch);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "espeak-ng -v '%s' -s %d -p %d --stdout '%s' 2>/dev/null | "
             "sox -q -t wav - -r %d -c 1 -b 16 '%s/%s' 2>/dev/null",
             voice, speed, pitch, word, rate, dir, rel);
    return system(cmd) == 0 ? 0 : -EIO;
}

/* Fills dir with keyword and unknown-word clips unless it already has a
 * testing_list.txt. Returns how many clips it made (0: dir was complete)
 * or a negative code. */
int train__synth_generate(const char *dir, char **labels, int n_labels, int per_voice,
                          int n_unknown, int rate) {
    char path[4096];
    snprintf(path, sizeof path, "%s/testing_list.txt", dir);
    if (access(path, F_OK) == 0)
        return 0;
    mkdir(dir, 0755);
    for (int c = 0; c < n_labels; c++) {
        snprintf(path, sizeof path, "%s/%s", dir, labels[c]);
        mkdir(path, 0755);
    }
    snprintf(path, sizeof path, "%s/testing_list.txt.tmp", dir);
    FILE *tl = fopen(path, "w");
    if (!tl)
        return -errno;
    int unk = -1;
    for (int c = 0; c < n_labels; c++)
        if (!strcmp(labels[c], "_unknown_"))
            unk = c;
    unsigned seed = 7, seed_more = 11;
    int nclips = 0;
    for (int test = 0; test < 2; test++) {
        int nb = (int)KWS_ARRAY_SIZE(synth_bases);
        int nv = test ? (int)KWS_ARRAY_SIZE(synth_test_var) : (int)KWS_ARRAY_SIZE(synth_train_var);
        for (int b = 0; b < nb; b++)
            for (int v = 0; v < nv; v++) {
                char voice[64];
                snprintf(voice, sizeof voice, "%s%s", synth_bases[b],
                         test ? synth_test_var[v] : synth_train_var[v]);
                if (test && b % 2)
                    continue; /* a smaller held-out set: 3 accents x 4 variants */
                for (int c = 0; c < n_labels; c++) {
                    if (labels[c][0] == '_')
                        continue;
                    for (int r = 0; r < per_voice; r++) {
                        seed = seed * 1103515245u + 12345u;
                        int sp = synth_speeds[(seed >> 8) % 4],
                            pi = synth_pitches[(seed >> 16) % 5];
                        char rel[512];
                        if (synth_one(dir, labels[c], labels[c], voice, sp, pi, rate, rel,
                                      sizeof rel))
                            continue;
                        nclips++;
                        if (test)
                            fprintf(tl, "%s\n", rel);
                    }
                }
                if (unk >= 0) {
                    /* n_unknown words per voice: the first two from the Speech
                     * Commands list, the rest from synth_unknown_more */
                    for (int r = 0; r < n_unknown; r++) {
                        /* the extra words draw from their own sequence, so the
                         * keyword clips and the first two words stay the same */
                        unsigned *sq = r < 2 ? &seed : &seed_more;
                        *sq = *sq * 1103515245u + 12345u;
                        const char *w =
                            r < 2 ? synth_unknown_words[(*sq >> 8) %
                                                        KWS_ARRAY_SIZE(synth_unknown_words)]
                                  : synth_unknown_more[(*sq >> 8) %
                                                       KWS_ARRAY_SIZE(synth_unknown_more)];
                        int sp = synth_speeds[(*sq >> 4) % 4], pi = synth_pitches[(*sq >> 12) % 5];
                        char rel[512];
                        if (synth_one(dir, labels[unk], w, voice, sp, pi, rate, rel, sizeof rel))
                            continue;
                        nclips++;
                        if (test)
                            fprintf(tl, "%s\n", rel);
                    }
                }
            }
    }
    fclose(tl);
    char final[4096];
    snprintf(final, sizeof final, "%s/testing_list.txt", dir);
    if (rename(path, final) < 0)
        return -errno;
    return nclips > 0 ? nclips : KWS_EDATASET;
}

/* ==== Keyword clips from flite's voices ==== */

/* flite's four English voices: diphone (kal16) and statistical parametric
 * (awb, rms, slt) synthesis, unlike espeak-ng's formant voices. */
static const char *const flite_voices[] = {"kal16", "awb", "rms", "slt"};
static const char *const flite_stretch[] = {"0.85", "1.0", "1.2"};
/* int_f0_target_mean (Hz) of the male voices and of slt */
static const int flite_male[] = {80, 95, 110, 125, 140}, flite_female[] = {150, 175, 200, 225, 250};

static int flite_one(const char *dir, const char *label, const char *word, const char *voice,
                     int pitch, const char *stretch, const char *name, int rate) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "flite -voice '%s' -t '%s' -o '%s/.flite.wav' --setf duration_stretch=%s "
             "--setf int_f0_target_mean=%d 2>/dev/null && "
             "sox -q '%s/.flite.wav' -r %d -c 1 -b 16 '%s/%s/%s' 2>/dev/null",
             voice, word, dir, stretch, pitch, dir, rate, dir, label, name);
    return system(cmd) == 0 ? 0 : -EIO;
}

/* Fills dir, unless it holds .complete already, with every keyword label
 * said by each flite voice at five pitches and three speeds (60 clips per
 * keyword), and, when there is an _unknown_ label, the first 25 Speech
 * Commands non-keywords once per voice. All of it trains. Returns how many
 * clips it made (0: dir was complete) or a negative code. */
int train__flite_generate(const char *dir, char **labels, int n_labels, int rate) {
    char path[4096];
    snprintf(path, sizeof path, "%s/.complete", dir);
    if (access(path, F_OK) == 0)
        return 0;
    mkdir(dir, 0755);
    int nclips = 0, unk = -1;
    char name[512];
    for (int c = 0; c < n_labels; c++) {
        if (!strcmp(labels[c], "_unknown_"))
            unk = c;
        if (labels[c][0] == '_' && c != unk)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, labels[c]);
        mkdir(path, 0755);
        if (c == unk)
            continue;
        for (size_t v = 0; v < KWS_ARRAY_SIZE(flite_voices); v++) {
            const int *ps = strcmp(flite_voices[v], "slt") ? flite_male : flite_female;
            for (int p = 0; p < 5; p++)
                for (int k = 0; k < 3; k++) {
                    snprintf(name, sizeof name, "flite_%s_%s_p%d_s%s.wav", flite_voices[v],
                             labels[c], ps[p], flite_stretch[k]);
                    if (flite_one(dir, labels[c], labels[c], flite_voices[v], ps[p],
                                  flite_stretch[k], name, rate) == 0)
                        nclips++;
                }
        }
    }
    /* non-keywords: one pitch and speed per clip, walking the grid */
    for (int w = 0, i = 0; unk >= 0 && w < 25; w++)
        for (size_t v = 0; v < KWS_ARRAY_SIZE(flite_voices); v++) {
            i++;
            int slt = !strcmp(flite_voices[v], "slt");
            int pitch = slt ? 150 + (i * 37) % 100 : 80 + (i * 23) % 60;
            snprintf(name, sizeof name, "flite_%s_%s.wav", flite_voices[v], synth_unknown_words[w]);
            if (flite_one(dir, labels[unk], synth_unknown_words[w], flite_voices[v], pitch,
                          flite_stretch[i % 3], name, rate) == 0)
                nclips++;
        }
    snprintf(path, sizeof path, "%s/.flite.wav", dir);
    unlink(path);
    if (!nclips)
        return KWS_EDATASET;
    snprintf(path, sizeof path, "%s/.complete", dir);
    FILE *f = fopen(path, "w");
    if (!f || fclose(f) != 0)
        return -EIO;
    return nclips;
}

/* ==== Takes of a new word (kwsd-enroll --say) ==== */

/* Runs argv[0] (found on PATH) with argv, its output and errors to
 * /dev/null. Returns 0 when it exits 0, -ENOENT when it cannot be run,
 * -EIO when it fails. */
static int run_quiet(char *const argv[]) {
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return -ENOENT;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* A file that exists and holds more than a WAV header. */
static int has_audio(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 1000;
}

/* Take number take of the word said by espeak-ng in its i-th training
 * voice (accent first), speed and pitch from a fixed sequence. */
static int say_espeak(const char *dir, const char *text, int take, int i, unsigned *seed,
                      char *path, size_t pathlen) {
    int nb = (int)KWS_ARRAY_SIZE(synth_bases), nv = (int)KWS_ARRAY_SIZE(synth_train_var);
    char voice[64], vname[64], sp[16], pi[16];
    snprintf(voice, sizeof voice, "%s%s", synth_bases[i % nb], synth_train_var[(i / nb) % nv]);
    voice_file_name(vname, sizeof vname, voice);
    *seed = *seed * 1103515245u + 12345u;
    snprintf(sp, sizeof sp, "%d", synth_speeds[(*seed >> 8) % 4]);
    snprintf(pi, sizeof pi, "%d", synth_pitches[(*seed >> 16) % 5]);
    snprintf(path, pathlen, "%s/" ENROLL_SAY_PREFIX "%03d-espeak-%s.wav", dir, take, vname);
    char *argv[] = {"espeak-ng", "-v", voice, "-s", sp,           "-p",
                    pi,          "-w", path,  "--", (char *)text, NULL};
    return run_quiet(argv);
}

/* Take number take said by flite, its i-th: four voices, three speeds, five
 * pitches. */
static int say_flite(const char *dir, const char *text, int take, int i, char *path,
                     size_t pathlen) {
    const char *voice = flite_voices[i % KWS_ARRAY_SIZE(flite_voices)];
    const int *ps = strcmp(voice, "slt") ? flite_male : flite_female;
    char stretch[64], pitch[64];
    snprintf(stretch, sizeof stretch, "duration_stretch=%s", flite_stretch[(i / 4) % 3]);
    snprintf(pitch, sizeof pitch, "int_f0_target_mean=%d", ps[(i / 12 + i) % 5]);
    snprintf(path, pathlen, "%s/" ENROLL_SAY_PREFIX "%03d-flite-%s.wav", dir, take, voice);
    char *argv[] = {"flite", "-voice", (char *)voice, "-t",     (char *)text, "-o",
                    path,    "--setf", stretch,       "--setf", pitch,        NULL};
    return run_quiet(argv);
}

int enroll_say(const struct enroll_say_opts *o, const struct enroll_progress *p, char *msg,
               size_t msglen) {
    char text[SNN_LABEL_LEN + 1], path[4096];
    size_t len = strlen(o->text);
    if (len == 0 || len >= sizeof text)
        return kws_errmsg(KWS_ECONFIG, msg, msglen, "the word to say is empty or longer than %d",
                          SNN_LABEL_LEN - 1);
    for (size_t k = 0; k <= len; k++) /* a label's '_' is a space when said */
        text[k] = o->text[k] == '_' ? ' ' : o->text[k];
    if (o->n_takes < 1 || o->n_takes > ENROLL_MAX_TAKES)
        return kws_errmsg(KWS_ECONFIG, msg, msglen, "takes to say: %d, not in [1, %d]", o->n_takes,
                          ENROLL_MAX_TAKES);
    if (mkdir(o->dir, 0755) < 0 && errno != EEXIST) {
        int e = errno;
        return kws_errmsg(-e, msg, msglen, "%s: %s", o->dir, strerror(e));
    }

    unsigned seed = 7;
    int made = 0, flite = 1, n_espeak = 0, n_flite = 0;
    for (int i = 0; i < o->n_takes; i++) {
        int rc = -ENOENT;
        if (flite && i % 4 == 3) { /* one take in four from flite, while it runs */
            rc = say_flite(o->dir, text, i, n_flite++, path, sizeof path);
            if (rc == -ENOENT) {
                flite = 0;
                if (p && p->note)
                    p->note(p->data, "flite is not installed: espeak-ng says every take");
            }
        }
        if (rc != 0) {
            rc = say_espeak(o->dir, text, i, n_espeak++, &seed, path, sizeof path);
            if (rc == -ENOENT)
                return kws_errmsg(-ENOENT, msg, msglen,
                                  "espeak-ng is not installed (apt install espeak-ng; flite "
                                  "adds voices)");
        }
        if (rc == 0 && has_audio(path))
            made++;
        if (p && p->bar)
            p->bar(p->data, "saying", i + 1, o->n_takes);
    }
    if (!made)
        return kws_errmsg(KWS_EDATASET, msg, msglen, "no synthesiser made a take of \"%s\"", text);
    if (p && p->note) {
        char line[256];
        snprintf(line, sizeof line, "%d takes of \"%s\" said by speech synthesis into %s", made,
                 text, o->dir);
        p->note(p->data, line);
    }
    return 0;
}

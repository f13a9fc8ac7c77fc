/* kwsd-enroll: teaches kwsd a new word from 10-20 takes, on the board.
 *
 * Records the takes from the capture device (--record), has speech
 * synthesis say them (--say) or reads them from a folder (--takes DIR),
 * then enroll_run (kws/enroll.h) checks and trims them, fine-tunes the
 * shipped model on them against the installed negative pack, calibrates
 * the threshold on an hour of the pack's negatives and writes the model
 * where the service reads models; this program prints the notes, a
 * progress bar and how to enable the model. Every option lives in one
 * table (enroll_opts, parsed by tools/opt.h); the training values'
 * defaults come from enroll_recipe_default.
 *
 *     kwsd-enroll --word lights --record [--takes 20]
 *     kwsd-enroll --word lights --say [--takes 20]
 *     kwsd-enroll --word lights --takes ~/takes/lights [--out lights.kwsm]
 *
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kws/config.h"
#include "kws/enroll.h"
#include "kws/enroll_record.h"
#include "kws/err.h"
#include "kws/recipe.h"
#include "kws/stream_eval.h"
#include "opt.h"

#ifndef KWSD_DATADIR
#define KWSD_DATADIR "/usr/share/kwsd"
#endif
#ifndef KWSD_MODELDIR
#define KWSD_MODELDIR "/var/lib/kwsd/models"
#endif

/* ==== Options ==== */

struct enroll_opts {
    struct enroll_recipe r;
    const char *takes;     /* DIR of takes; with --record, how many to record */
    const char *takes_dir; /* where --record keeps them */
    int record;
    int say;                /* --say: the takes made by speech synthesis */
    const char *device;     /* capture device (default: the configuration's) */
    const char *config;     /* kwsd.yaml to read the device from */
    const char *words_from; /* a folder of takes folders, one per word */
    int no_verify;          /* --no-verify: the model keeps no takes */
};

static const char *const select_names[] = {"clip", "stream", "last", NULL};

/* The takes --say makes when --takes gives no number (--record makes
 * ENROLL_TAKES_WANTED): synthetic voices need more than recorded ones. */
#define SAY_TAKES 60
#define STR_(x) #x
#define STR(x) STR_(x)

#define O(f) offsetof(struct enroll_opts, f)

static const struct opt enroll_opts_table[] = {
    {"word", OPT_NAMES, O(r.words), .count = O(r.n_words), .min_n = 1, .max_n = 1,
     .size = SNN_LABEL_LEN, .meta = "NAME", .help = "the word to learn (its label)"},
    {"words-from", OPT_PATH, O(words_from), .meta = "DIR",
     .help = "more words: each sub-folder of DIR is a word (its name)\n"
             "holding its takes"},
    {"takes", OPT_PATH, O(takes), .meta = "DIR|N",
     .help = "the folder of takes (WAV/FLAC/Ogg, any rate and length); with\n"
             "--record, how many takes to record (default " STR(ENROLL_TAKES_WANTED) ")"},
    {"record", OPT_FLAG, O(record),
     .help = "record the takes from the capture device first, into\n"
             "--takes-dir (added to what is there)"},
    {"say", OPT_FLAG, O(say),
     .help = "no recordings: espeak-ng and flite say the word --takes N\n"
             "times (default " STR(SAY_TAKES) ") into --takes-dir first"},
    {"takes-dir", OPT_PATH, O(takes_dir), .meta = "DIR",
     .help = "where --record and --say keep the takes (default\n"
             "$XDG_DATA_HOME/kwsd/takes/WORD, ~/.local/share/... without it)"},
    {"device", OPT_PATH, O(device), .meta = "PCM",
     .help = "ALSA capture device (default: audio.device of --config)"},
    {"config", OPT_PATH, O(config), .def = "/etc/kwsd/kwsd.yaml",
     .help = "kwsd's configuration, read for its capture device"},
    {"out", OPT_PATH, O(r.out), .meta = "FILE.kwsm",
     .help = "model to write (default " KWSD_MODELDIR "/WORD.kwsm)"},
    {"pack", OPT_PATH, O(r.pack), .def = KWSD_DATADIR "/negpack",
     .help = "the negative pack (words/<word>/..., unknown/<word>/...,\n"
             "noise/...)"},
    {"negatives", OPT_PATH, O(r.negatives), .meta = "DIR",
     .help = "a folder of your own recordings that are not the word (speech\n"
             "that fired it, the radio): three in four are trained against,\n"
             "the fourth only calibrates the threshold"},
    {"init", OPT_PATH, O(r.init), .def = KWSD_DATADIR "/commands-clip.kwsm",
     .help = "the model to start from: its hidden layers, front end and\n"
             "encoder are kept"},
    {"no-verify", OPT_FLAG, O(no_verify),
     .help = "keep no takes in the model: its events are the network's\n"
             "alone, without the second look against the takes"},
    {"keep-keywords", OPT_FLAG, O(r.keep_keywords),
     .help = "the new model keeps --init's keywords too (their readout\n"
             "rows start from --init's; no clip of them trains)"},
    {"val-takes", OPT_INT, O(r.n_val), .min = 1, .max = 50,
     .help = "takes held out to measure the hit rate (and, with --select\n"
             "stream, to choose the epoch)"},
    {"val-passes", OPT_INT, O(r.val_passes), .min = 1, .max = 100,
     .help = "passes of the held-out stream each epoch (the takes said\n"
             "again, in new orders)"},
    {"min-takes", OPT_INT, O(r.min_takes), .min = 2, .max = ENROLL_MAX_TAKES,
     .help = "fewer usable takes is an error"},
    {"epochs", OPT_INT, O(r.epochs), .min = 1, .max = 1000, .help = "epochs"},
    {"windows", OPT_INT, O(r.windows), .min = 1, .max = 1000000,
     .help = "stream windows per epoch"},
    {"batch", OPT_INT, O(r.batch), .min = 1, .max = 65536, .help = "batch size"},
    {"lr", OPT_FLOAT, O(r.lr), .min = 0, .max = 10, .help = "learning rate"},
    {"lr-delay", OPT_FLOAT, O(r.lr_delay), .min = 0, .max = 100,
     .help = "learning rate of the delays"},
    {"fa-weight", OPT_FLOAT, O(r.fa_weight), .min = 0, .max = 1000,
     .help = "weight of the false-alarm term of the stream loss (0: none)"},
    {"freeze", OPT_INT, O(r.freeze), .min = 0, .max = SNN_MAX_LAYERS,
     .help = "hidden layers of --init kept as they are (0: all fine-tuned;\n"
             "2, with the shipped model: only the readout learns)"},
    {"speed", OPT_PAIR, O(r.speed), .min = 0.5, .max = 2, .meta = "LO,HI",
     .help = "augmentation: speed range of every item of a window"},
    {"p-keyword", OPT_FLOAT, O(r.p_keyword), .min = 0, .max = 1, .open = OPT_OPEN_MIN,
     .help = "share of a training window's items that are takes"},
    {"reverb", OPT_FLOAT, O(r.reverb), .min = 0, .max = 1,
     .help = "share of training windows put in a synthetic room (0: none)"},
    {"mine-every", OPT_INT, O(r.mine_every), .min = 0, .max = 1000,
     .help = "mine hard negatives every this many epochs (0: never)"},
    {"train-unknown", OPT_INT, O(r.train_unknown), .min = 0, .max = INT_MAX,
     .help = "the pack's single words the training hears (taken in turn\n"
             "from each word; 0: all); the calibration hears them all"},
    {"select", OPT_ENUM, O(r.select), .names = select_names,
     .help = "which epoch is kept: the last, or the best held-out stream\n"
             "or clip accuracy"},
    {"cut-pass", OPT_FLOAT, O(r.cut_pass), .min = 0, .max = 1,
     .help = "share of the pack's phrases the second look lets through\n"
             "(its cut; 0: the takes' own)"},
    {"calib-fa", OPT_FLOAT, O(r.calib_fa), .min = 0, .max = 1000,
     .help = "false alarms per hour the stored threshold allows on the\n"
             "pack's negatives"},
    {"calib-hours", OPT_FLOAT, O(r.calib_hours), .min = 0.001, .max = 10,
     .help = "length of that stream (the pack said again and again)"},
    {"calib-words", OPT_INT, O(r.calib_words), .min = 0, .max = 100,
     .help = "the pack's phrase words kept out of the training for the\n"
             "calibration (the smallest; 0: it hears the trained ones)"},
    {"threads", OPT_INT, O(r.threads), .min = 0, .max = 1024, .help = "threads (0: all cores)"},
    {"seed", OPT_INT, O(r.seed), .min = 0, .max = INT_MAX, .help = "random seed"},
    {NULL}};

static const struct opt_tool enroll_tool = {
    "kwsd-enroll",
    "usage: kwsd-enroll --word NAME --takes DIR [options]\n"
    "       kwsd-enroll --word NAME --record [--takes N] [options]\n"
    "       kwsd-enroll --word NAME --say [--takes N] [options]\n"
    "       kwsd-enroll --words-from DIR [--word NAME --takes DIR] [options]\n",
    enroll_opts_table};

/* ==== Progress ==== */

struct out {
    int tty;    /* stderr is a terminal: the bar redraws in place */
    int bar_on; /* a bar is on the current line */
};

static void end_bar(struct out *o) {
    if (o->bar_on)
        fputc('\n', stderr);
    o->bar_on = 0;
}

static void print_note(void *data, const char *line) {
    end_bar(data);
    fprintf(stderr, "%s\n", line);
}

static void print_bar(void *data, const char *stage, double done, double total) {
    struct out *o = data;
    int w = 30, k = total > 0 ? (int)(w * done / total + 0.5) : w;
    char bar[64];
    for (int i = 0; i < w; i++)
        bar[i] = i < k ? '#' : '.';
    bar[w] = 0;
    if (!strcmp(stage, "level")) { /* the input level meter while recording: dBFS + 60 */
        if (o->tty) {
            fprintf(stderr, "\r%-12s [%s] %4.0f dBFS ", stage, bar, done - 60.0);
            o->bar_on = 1;
        }
    } else if (o->tty) {
        fprintf(stderr, "\r%-12s [%s] %.0f/%.0f", stage, bar, done, total);
        o->bar_on = 1;
        if (done >= total)
            end_bar(o);
    } else {
        fprintf(stderr, "%-12s [%s] %.0f/%.0f\n", stage, bar, done, total);
    }
}

/* ==== Paths ==== */

/* The default folder of takes: $XDG_DATA_HOME/kwsd/takes/WORD. */
static void default_takes_dir(char *buf, size_t n, const char *word) {
    const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (x && *x)
        snprintf(buf, n, "%s/kwsd/takes/%s", x, word);
    else
        snprintf(buf, n, "%s/.local/share/kwsd/takes/%s", home ? home : ".", word);
}

/* The capture device: --device, else the configuration's audio.device. */
static const char *capture_device(const struct enroll_opts *o, struct kws_config *cfg) {
    if (o->device)
        return o->device;
    struct config_diags d = {0};
    if (access(o->config, R_OK) == 0 && config_load(cfg, o->config, &d) == 0)
        return cfg->audio.device;
    return "default";
}

/* --takes N with --record or --say: how many takes (3..100; def when not
 * given), or -1. */
static int takes_count(const char *s, int def) {
    if (!s)
        return def;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno || *end || end == s || v < 3 || v > 100 ? -1 : (int)v;
}

/* Whether the folder a file would go to can be written. */
static int writable_folder(const char *file) {
    char d[PATH_MAX];
    snprintf(d, sizeof d, "%s", file);
    char *slash = strrchr(d, '/');
    if (!slash)
        snprintf(d, sizeof d, ".");
    else if (slash == d)
        d[1] = 0;
    else
        *slash = 0;
    return access(d, W_OK) == 0;
}

/* --words-from: each sub-folder of dir (sorted) is one more word and its
 * takes. Returns 0, or -1 after a message. */
static int add_words_from(struct enroll_recipe *r, const char *dir) {
    static char paths[ENROLL_MAX_WORDS][PATH_MAX];
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "kwsd-enroll: --words-from %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        char p[PATH_MAX];
        const char *name = ents[i]->d_name;
        snprintf(p, sizeof p, "%s/%s", dir, name);
        if (!rc && name[0] != '.' && stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (r->n_words == ENROLL_MAX_WORDS || strlen(name) >= SNN_LABEL_LEN) {
                fprintf(stderr, "kwsd-enroll: --words-from %s: %s\n", dir,
                        r->n_words == ENROLL_MAX_WORDS ? "more than 8 words"
                                                       : "a folder name is too long for a label");
                rc = -1;
            } else {
                snprintf(paths[r->n_words], PATH_MAX, "%s", p);
                memcpy(r->words[r->n_words], name, strlen(name) + 1); /* length checked above */
                r->takes[r->n_words] = paths[r->n_words];
                r->n_words++;
            }
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

/* ==== Steps of main ==== */

/* The checks of options together, after the table. Returns 0, or 2 after a
 * message. */
static int check_options(const struct enroll_opts *o) {
    if (!o->r.n_words && !o->words_from) {
        fprintf(stderr, "kwsd-enroll: --word NAME (or --words-from DIR) is needed\n");
        return 2;
    }
    if (o->words_from && (o->record || o->say)) {
        fprintf(stderr, "kwsd-enroll: --%s takes one --word, not --words-from\n",
                o->record ? "record" : "say");
        return 2;
    }
    if (o->record && o->say) {
        fprintf(stderr, "kwsd-enroll: --record or --say, not both\n");
        return 2;
    }
    char msg[PATH_MAX + 64];
    if (o->r.negatives && enroll_check_negatives(o->r.negatives, msg, sizeof msg) < 0) {
        fprintf(stderr, "kwsd-enroll: %s\n", msg); /* before any take is recorded */
        return 2;
    }
    return 0;
}

/* --record or --say: records, or has the synthesisers say, --takes N takes
 * of the word into --takes-dir (default: default_takes_dir) and makes that
 * folder the word's takes. Returns 0, or an exit status after a message. */
static int make_takes(struct enroll_opts *o, const struct enroll_progress *prog) {
    static char takes_dir[PATH_MAX];
    const char *word = o->r.words[0];
    struct kws_config cfg;
    char msg[1024] = "";
    int n = takes_count(o->takes, o->say ? SAY_TAKES : ENROLL_TAKES_WANTED), rc;
    if (n < 0) {
        fprintf(stderr, "kwsd-enroll: --takes: with --%s, a number of takes in [3, 100]\n",
                o->say ? "say" : "record");
        return 2;
    }
    if (o->takes_dir)
        snprintf(takes_dir, sizeof takes_dir, "%s", o->takes_dir);
    else
        default_takes_dir(takes_dir, sizeof takes_dir, word);
    if (o->say) {
        struct enroll_say_opts so = {word, takes_dir, n};
        rc = enroll_say(&so, prog, msg, sizeof msg);
    } else {
        config_defaults(&cfg);
        struct enroll_record_opts ro = {capture_device(o, &cfg), word, takes_dir, n};
        rc = enroll_record(&ro, &o->r.rules, prog, msg, sizeof msg);
    }
    if (rc < 0) {
        fprintf(stderr, "kwsd-enroll: %s\n", msg);
        return 1;
    }
    o->r.takes[0] = takes_dir;
    return 0;
}

/* Where each word's takes come from: recorded now, --takes DIR, and the
 * folders of --words-from. Returns 0, or an exit status after a message. */
static int find_takes(struct enroll_opts *o, const struct enroll_progress *prog) {
    int rc = 0;
    if (o->record || o->say)
        rc = make_takes(o, prog);
    else if (o->r.n_words && !o->takes) {
        fprintf(stderr, "kwsd-enroll: --takes DIR, --record or --say is needed\n");
        rc = 2;
    } else if (o->r.n_words)
        o->r.takes[0] = o->takes;
    if (!rc && o->words_from && add_words_from(&o->r, o->words_from) < 0)
        rc = 2;
    return rc;
}

/* The model file: --out, else KWSD_MODELDIR/WORD.kwsm (the folder made if
 * need be); its folder must be writable. Returns 0, or 1 after a message. */
static int choose_out(struct enroll_opts *o) {
    static char out[PATH_MAX];
    if (!o->r.out) {
        snprintf(out, sizeof out, "%s/%s.kwsm", KWSD_MODELDIR, o->r.words[0]);
        if (mkdir(KWSD_MODELDIR, 0755) < 0 && errno != EEXIST) {
            fprintf(stderr, "kwsd-enroll: %s: %s (run it as root, or give --out)\n", KWSD_MODELDIR,
                    strerror(errno));
            return 1;
        }
        o->r.out = out;
    }
    if (!writable_folder(o->r.out)) {
        fprintf(stderr, "kwsd-enroll: cannot write %s (%s): run it as root, or give --out\n",
                o->r.out, strerror(errno));
        return 1;
    }
    return 0;
}

/* What the enrolment gave, its warnings, and how to use the model. */
static void print_result(const struct enroll_recipe *r, const struct enroll_result *res) {
    printf("threshold %.3f: %d false alarms in %.2f h of negatives (%.1f per hour)\n",
           (double)res->threshold, res->cal_fa, res->cal_hours,
           res->cal_hours > 0 ? res->cal_fa / res->cal_hours : 0.0);
    if (res->cal_hours < 0.99 * r->calib_hours)
        printf("warning: the pack's negatives made only %.2f h of the %.2f h asked for: the "
               "false alarms per hour are a rough estimate\n",
               res->cal_hours, (double)r->calib_hours);
    if (res->cal_hours > 0 && res->cal_fa / res->cal_hours > r->calib_fa)
        printf("warning: no threshold keeps within %g false alarms per hour: at the highest "
               "tried it fires %.1f times an hour on the negatives; more takes, or other "
               "recipe values, may help\n",
               (double)r->calib_fa, res->cal_fa / res->cal_hours);
    if (res->n_verify) {
        printf("second look: %d takes kept in the model; an event is published when the "
               "word matches them within %.3f",
               res->n_verify, (double)res->verify_cut);
        if (res->cut_heard) /* --cut-pass */
            printf(" (set on %d of the pack's phrases; the takes' own %.3f)", res->cut_heard,
                   (double)res->verify_cut_takes);
        printf("\n");
    }
    if (res->threshold <= stream_eval_grid(0)) /* the budget held even at the lowest */
        printf("note: the pack's negatives keep within the budget (%g per hour) even at %.3f, "
               "the lowest threshold tried, so they did not choose it: speech unlike them may "
               "fire the word more often; if it does, record what fires it into a folder and "
               "enrol again with --negatives FOLDER, or give it a higher threshold in "
               "/etc/kwsd/kwsd.yaml (detection.keywords.%s; docs/ENROLL.md, \"Three seeds\")\n",
               (double)r->calib_fa, (double)res->threshold, r->n_words == 1 ? r->words[0] : "WORD");
    printf("caught %d of %d held-out takes (%.0f %%) among negatives at that threshold\n",
           res->hits, res->n_held, res->n_held ? 100.0 * res->hits / res->n_held : 0.0);
    printf("time: %.0f s (training %.0f s, calibration %.0f s)\n", res->total_s, res->train_s,
           res->cal_s);
    printf("model: %s\n", r->out);
    if (r->keep_keywords) { /* it has the shipped keywords: it replaces that model */
        printf("to use it, set in /etc/kwsd/kwsd.yaml\n"
               "  model:\n"
               "    path: %s\n",
               r->out);
    } else { /* kwsd loads it next to the running model (docs/CONFIG.md, "Several models") */
        char abs[PATH_MAX];
        const char *out = realpath(r->out, abs) ? abs : r->out;
        const char *slash = strrchr(out, '/');
        printf("to hear it next to the shipped keywords, set in /etc/kwsd/kwsd.yaml\n"
               "  model:\n"
               "    path: /usr/share/kwsd/commands.kwsm\n"
               "    dir: %.*s\n"
               "(every *.kwsm there loads; or, for the new word alone, path: %s)\n",
               slash ? (slash == out ? 1 : (int)(slash - out)) : 1, slash ? out : ".", out);
    }
    printf("and run `systemctl reload kwsd`\n");
}

int main(int argc, char **argv) {
    struct enroll_opts o = {0};
    enroll_recipe_default(&o.r);
    int rc = opt_parse(&enroll_tool, &o, argc, argv);
    o.r.verify = !o.no_verify;
    if (rc != OPT_OK)
        return rc == OPT_EXIT ? 0 : 2;
    if ((rc = check_options(&o)) != 0)
        return rc;
    struct out so = {isatty(2), 0};
    const struct enroll_progress prog = {&so, print_note, print_bar};
    if ((rc = find_takes(&o, &prog)) != 0 || (rc = choose_out(&o)) != 0)
        return rc;

    struct enroll_result res;
    char msg[1024] = "";
    rc = enroll_run(&o.r, &prog, &res, msg, sizeof msg);
    end_bar(&so);
    if (rc < 0) {
        fprintf(stderr, "kwsd-enroll: %s\n", msg);
        return rc == KWS_ECONFIG ? 2 : 1;
    }
    print_result(&o.r, &res);
    return 0;
}

/* kwsd-train: trains a conv-delay (or dense DelRec) SNN keyword model.
 *
 * Reads a folder-per-label data set (Speech Commands layout), optionally adds
 * keyword clips synthesised with espeak-ng + sox, trains with surrogate-
 * gradient BPTT (kws/train.h) on augmented renders (kws/dataset.h), prints one
 * progress line per epoch, keeps a resumable checkpoint, and writes the model
 * with the best validation accuracy as a .kwsm file. See docs/MODELS.md for
 * the commands that trained the shipped models. Every option, its range,
 * default and help live in one table (train_opts, parsed by tools/opt.h).
 *
 *     kwsd-train --data /data/speech_commands --labels yes,no,...,_silence_,_unknown_ \
 *                --out models/commands.kwsm [--epochs 40] [--resume]
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kws/dataset.h"
#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/stream_eval.h"
#include "kws/train.h"
#include "opt.h"

/* ==== Options ==== */

/* Everything the command line sets (the table below says what each is). */
struct opts {
    const char *data, *out, *ckpt, *synth, *noise, *extra, *flite, *teacher, *init, *negatives;
    char labels[SNN_MAX_CLASSES][SNN_LABEL_LEN];
    int n_labels;
    int hidden[SNN_MAX_LAYERS], n_hidden;
    int rec[SNN_MAX_LAYERS], n_rec; /* indices in rec_names */
    int epochs, batch, copies, T, k, conv_ch, d_max, resume, seed, threads, synth_n, synth_rate;
    float lr, lr_delay, wd, drop_ff, drop_rec, sigma_init, sigma_decay, bg_weight, fg_weight,
        win_weight;
    float beta0, beta_rec, out_beta, sg_alpha, delay_init[2];
    float snr[2], shift_ms, fmax, out_gain, speed[2], context_ms, p_context, p_cold, tilt, calib_fa,
        trim_ms, pcen_release, floor_p, floor_db[2];
    int surrogate; /* index in surrogate_names */
    int no_detach, no_bn;
    float enc[KWS_ENC_MAX_LEVELS];
    int n_enc;
    int max_train;
    int fmask[2], tmask[2]; /* N, W */
    float ema;
    int stream_val, select_stream, synth_unk, in_delay, calib_passes;
    float kd_weight, kd_temp;
    int windows, mine_every;
    float window_ms, p_keyword;
};

static const char *const rec_names[] = {"none", "conv", "dense", NULL};
static const int rec_kinds[] = {SNN_REC_NONE, SNN_REC_CONV, SNN_REC_DENSE};
static const char *const surrogate_names[] = {"atan", "triangle", NULL};
static const int surrogate_kinds[] = {TRAIN_SG_ATAN, TRAIN_SG_TRIANGLE};
static const char *const select_names[] = {"clip", "stream", NULL};

#define O(f) offsetof(struct opts, f)
#define LIST(f) O(f), .count = O(n_##f)

/* The options, in --help's order. Ranges are what the trainer can use; the
 * library checks the network and the front end as a whole (snn_cfg_validate,
 * audio_fe_cfg_check) once the options are combined. */
static const struct opt train_opts[] = {
    {"data", OPT_PATH, O(data), .required = 1, .meta = "DIR",
     .help = "folder-per-label data set (Speech Commands layout)"},
    {"labels", OPT_NAMES, LIST(labels), .min_n = 2, .max_n = SNN_MAX_CLASSES, .size = SNN_LABEL_LEN,
     .required = 1, .meta = "a,b,...", .help = "the model's classes, in order"},
    {"out", OPT_PATH, O(out), .required = 1, .meta = "FILE.kwsm", .help = "model file to write"},
    {"hidden", OPT_INTS, LIST(hidden), .min = 1, .max = SNN_MAX_NEURONS, .min_n = 1,
     .max_n = SNN_MAX_LAYERS, .def = "256,256", .help = "neurons per hidden layer"},
    {"rec", OPT_ENUMS, LIST(rec), .names = rec_names, .min_n = 1, .max_n = SNN_MAX_LAYERS,
     .def = "none,conv", .help = "per layer: none | conv | dense"},
    {"k", OPT_INT, O(k), .min = 1, .max = SNN_MAX_K, .def = "5", .help = "conv taps"},
    {"d-max", OPT_INT, O(d_max), .min = 0, .max = SNN_MAX_DELAY, .def = "40",
     .help = "largest delay (steps)"},
    {"conv-ch", OPT_INT, O(conv_ch), .min = 0, .max = SNN_MAX_CH, .meta = "G",
     .help = "conv channels G (default 1): a conv layer's neurons are G channels\n"
             "of C/G positions, its kernel is (G, G, K)"},
    {"epochs", OPT_INT, O(epochs), .min = 1, .max = 100000, .def = "40", .help = "epochs"},
    {"batch", OPT_INT, O(batch), .min = 1, .max = 65536, .def = "64", .help = "batch size"},
    {"copies", OPT_INT, O(copies), .min = 1, .max = 1000, .def = "1",
     .help = "augmented renders of each clip per epoch"},
    {"frames", OPT_INT, O(T), .min = 1, .max = 10000, .def = "100",
     .help = "frames per example, 10 ms each"},
    {"lr", OPT_FLOAT, O(lr), .min = 0, .max = 10, .def = "5e-3", .help = "learning rate"},
    {"lr-delay", OPT_FLOAT, O(lr_delay), .min = 0, .max = 100, .def = "5e-2",
     .help = "learning rate of the delays"},
    {"wd", OPT_FLOAT, O(wd), .min = 0, .max = 1, .def = "1e-5", .help = "weight decay"},
    {"seed", OPT_INT, O(seed), .min = 0, .max = INT_MAX, .def = "1", .help = "random seed"},
    {"threads", OPT_INT, O(threads), .min = 0, .max = 1024, .def = "0",
     .help = "OpenMP threads (0: all cores)"},
    {"drop-ff", OPT_FLOAT, O(drop_ff), .min = 0, .max = 1, .open = OPT_OPEN_MAX, .def = "0.4",
     .help = "dropout of the feed-forward layers"},
    {"drop-rec", OPT_FLOAT, O(drop_rec), .min = 0, .max = 1, .open = OPT_OPEN_MAX, .def = "0.2",
     .help = "dropout of the recurrent layers"},
    {"sigma-init", OPT_FLOAT, O(sigma_init), .min = 0, .max = 1000, .def = "10",
     .help = "width of the delay-spreading triangle kernel at the start"},
    {"sigma-decay", OPT_FLOAT, O(sigma_decay), .min = 0, .max = 1, .def = "0.95",
     .help = "its decay per epoch"},
    {"beta", OPT_FLOAT, O(beta0), .min = 0, .max = 1, .def = "0.047619",
     .help = "membrane decay of the feed-forward layers"},
    {"beta-rec", OPT_FLOAT, O(beta_rec), .min = 0, .max = 1, .def = "0.38583",
     .help = "membrane decay of the recurrent layers"},
    {"out-beta", OPT_FLOAT, O(out_beta), .min = 0, .max = 1, .def = "0.047619",
     .help = "membrane decay of the readout"},
    {"out-gain", OPT_FLOAT, O(out_gain), .min = 0, .max = 1000, .open = OPT_OPEN_MIN, .def = "1",
     .help = "gain of the readout"},
    {"fmax", OPT_FLOAT, O(fmax), .min = 0, .max = 8000, .meta = "HZ",
     .help = "upper edge of the mel filterbank (default: the front end's)"},
    {"pcen-release", OPT_FLOAT, O(pcen_release), .min = 0, .max = 1, .meta = "S",
     .help = "PCEN smoother coefficient while a band's energy falls (0:\n"
             "the rising one, 0.025); e.g. 0.2 follows the noise floor\n"
             "down within ~0.2 s after a loud noise stops"},
    {"surrogate", OPT_ENUM, O(surrogate), .names = surrogate_names, .def = "atan",
     .help = "surrogate gradient of the spike"},
    {"sg-alpha", OPT_FLOAT, O(sg_alpha), .min = 0, .max = 1000, .open = OPT_OPEN_MIN, .def = "5",
     .help = "its slope"},
    {"no-detach", OPT_FLAG, O(no_detach), .help = "let the gradient flow through the reset"},
    {"no-bn", OPT_FLAG, O(no_bn), .help = "no batch normalisation"},
    {"delay-init", OPT_PAIR, O(delay_init), .min = 0, .max = SNN_MAX_DELAY, .def = "10,30",
     .help = "initial delays (steps)"},
    {"in-delay", OPT_INT, O(in_delay), .min = 0, .max = SNN_MAX_DELAY, .def = "0",
     .help = "> 0: layers after the first also learn one delay per input\n"
             "channel, up to this many steps (they start in [0, 20])"},
    {"bg-weight", OPT_FLOAT, O(bg_weight), .min = 0, .max = 1000, .def = "1",
     .help = "streaming loss weight (silence on background frames)"},
    {"fg-weight", OPT_FLOAT, O(fg_weight), .min = 0, .max = 1000, .def = "1",
     .help = "streaming loss weight (label on the frames after the word)"},
    {"win-weight", OPT_FLOAT, O(win_weight), .min = 0, .max = 1000, .def = "0",
     .help = "streaming loss weight (mean label posterior over those frames)"},
    {"snr", OPT_PAIR, O(snr), .min = -20, .max = 60, .def = "0,25",
     .help = "augmentation: signal-to-noise ratio of the mixed-in noise, dB"},
    {"shift-ms", OPT_FLOAT, O(shift_ms), .min = 0, .max = 1000, .def = "100",
     .help = "augmentation: largest random time shift"},
    {"speed", OPT_PAIR, O(speed), .min = 0, .max = 4,
     .help = "augmentation: speed range, e.g. 0.9,1.1 (default: none)"},
    {"context-ms", OPT_FLOAT, O(context_ms), .min = 0, .max = 10000, .def = "0",
     .help = "frames of context before each example's window"},
    {"p-context", OPT_FLOAT, O(p_context), .min = 0, .max = 1, .def = "0.7",
     .help = "how often another word ends in the context"},
    {"p-cold", OPT_FLOAT, O(p_cold), .min = 0, .max = 1, .def = "0",
     .help = "how often the context (with --windows: the whole window's\n"
             "background) is digital silence (a cold start)"},
    {"tilt", OPT_FLOAT, O(tilt), .min = 0, .max = 1, .def = "0",
     .help = "random spectral tilt y = x[n] - a x[n-1], |a| <= tilt"},
    {"trim-ms", OPT_FLOAT, O(trim_ms), .min = 0, .max = 1000, .def = "0",
     .help = "mute up to this much of half the words' onsets"},
    {"floor", OPT_FLOAT, O(floor_p), .min = 0, .max = 1, .def = "0",
     .help = "how often white hiss is added to an example (at --floor-db)"},
    {"floor-db", OPT_PAIR, O(floor_db), .min = -200, .max = 0, .def = "-100,-50",
     .help = "the hiss level (dBFS RMS): hiss alone must read as silence"},
    {"ema", OPT_FLOAT, O(ema), .min = 0, .max = 1, .open = OPT_OPEN_MAX, .def = "0",
     .help = "> 0: validate and export a moving average of the weights\n"
             "(decay per step, e.g. 0.999) instead of the weights"},
    {"stream-val", OPT_FLAG, O(stream_val),
     .help = "score every epoch on the validation stream too (hit rate\n"
             "within --calib-fa false alarms per hour)"},
    {"select", OPT_ENUM, O(select_stream), .names = select_names, .def = "clip",
     .help = "clip: keep the epoch with the best clip accuracy;\n"
             "stream: the best stream hit rate, and --stream-val"},
    {"freq-mask", OPT_INT_PAIR, O(fmask), .min = 0, .max = 8, .min2 = 0, .max2 = 100, .meta = "N,W",
     .help = "SpecAugment: N masks of up to W mel bands (all levels) with\n"
             "no spikes, per example (default 0,0: none)"},
    {"time-mask", OPT_INT_PAIR, O(tmask), .min = 0, .max = 8, .min2 = 0, .max2 = 100, .meta = "N,W",
     .help = "the same with W frames"},
    {"teacher", OPT_PATH, O(teacher), .meta = "M.kwsm",
     .help = "distil from a trained model (same labels, front end and\n"
             "encoder, e.g. the dense DelRec model): adds --kd-weight\n"
             "* T^2 * KL of the teacher's and the student's clip scores\n"
             "at temperature --kd-temp"},
    {"kd-weight", OPT_FLOAT, O(kd_weight), .min = 0, .max = 100, .def = "1",
     .help = "weight of the distillation term"},
    {"kd-temp", OPT_FLOAT, O(kd_temp), .min = 0, .max = 100, .open = OPT_OPEN_MIN, .def = "4",
     .help = "its temperature"},
    {"calib-fa", OPT_FLOAT, O(calib_fa), .min = 0, .max = 100000, .def = "10",
     .help = "store the detection threshold that gives at most this many\n"
             "false alarms per hour on the validation stream"},
    {"calib-passes", OPT_INT, O(calib_passes), .min = 1, .max = STREAM_EVAL_MAX_PASSES, .def = "1",
     .help = "validation stream: the clips said this many times (each\n"
             "later pass shuffled), for calibration and --stream-val"},
    {"enc", OPT_FLOATS, LIST(enc), .min = -1000, .max = 1000, .min_n = 1,
     .max_n = KWS_ENC_MAX_LEVELS, .meta = "t0,t1,...",
     .help = "level-encoder thresholds (default: the front end's)"},
    {"synth", OPT_PATH, O(synth), .meta = "DIR",
     .help = "espeak-ng keyword clips (generated into DIR if empty)"},
    {"synth-per-voice", OPT_INT, O(synth_n), .min = 1, .max = 100, .def = "2",
     .help = "clips per voice and word"},
    {"synth-rate", OPT_INT, O(synth_rate), .min = 8000, .max = 48000, .def = "16000",
     .help = "the rate --synth and --flite clips are made at"},
    {"synth-unknown", OPT_INT, O(synth_unk), .min = 0, .max = 100, .def = "2",
     .help = "non-keyword clips per voice (> 2 adds everyday and\n"
             "keyword-like words; use a new --synth DIR)"},
    {"noise", OPT_PATH, O(noise), .meta = "DIR", .help = "extra background noise files"},
    {"extra", OPT_PATH, O(extra), .meta = "DIR",
     .help = "another folder-per-label set whose clips all train"},
    {"flite", OPT_PATH, O(flite), .meta = "DIR",
     .help = "flite's voices say the keywords (and, with _unknown_,\n"
             "other words) into DIR if it is new; all of it trains"},
    {"max-train", OPT_INT, O(max_train), .min = 0, .max = INT_MAX, .def = "0",
     .help = "use at most this many training clips (0: all)"},
    {"windows", OPT_INT, O(windows), .min = 0, .max = 1000000, .def = "0",
     .help = "> 0: train for the stream: this many windows per epoch,\n"
             "each --window-ms of keywords, unknown words and\n"
             "negatives over noise, --p-keyword of the items\n"
             "keywords; per-frame filler targets and a max-pooled peak\n"
             "of the smoothed keyword posterior after each keyword\n"
             "(--bg-weight, --win-weight; kws/train.h)"},
    {"window-ms", OPT_FLOAT, O(window_ms), .min = 1000, .max = 10000, .def = "3000",
     .help = "length of a window"},
    {"p-keyword", OPT_FLOAT, O(p_keyword), .min = 0, .max = 1, .open = OPT_OPEN_MIN, .def = "0.5",
     .help = "share of a window's items that are keywords"},
    {"negatives", OPT_PATH, O(negatives), .meta = "DIR",
     .help = "negative phrases, a folder per word split by its lists\n"
             "(the training words go into the windows)"},
    {"mine-every", OPT_INT, O(mine_every), .min = 0, .max = 100000, .def = "0",
     .help = "> 0: every this many epochs, run the model over the\n"
             "training negatives and draw the ones it fired on (at\n"
             "0.5) in half of the next windows' negative items"},
    {"ckpt", OPT_PATH, O(ckpt), .meta = "FILE", .help = "checkpoint path (default OUT.ckpt)"},
    {"resume", OPT_FLAG, O(resume), .help = "resume from the checkpoint"},
    {"init", OPT_PATH, O(init), .meta = "CKPT",
     .help = "start from another training's checkpoint (fine-tuning):\n"
             "its hidden layers, and its readout if the labels match;\n"
             "the layers and front end options must be the same; or\n"
             "from a model file (M.kwsm, e.g. a shipped model), which\n"
             "needs --no-bn (its BatchNorm is folded into its weights)"},
    {NULL}};

static const struct opt_tool train_tool = {
    "kwsd-train", "usage: kwsd-train --data DIR --labels a,b,... --out FILE.kwsm [options]\n",
    train_opts};

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

static int synth_one(const char *dir, const char *label, const char *word, const char *voice,
                     int speed, int pitch, int rate, char *rel, size_t rellen) {
    char vname[64];
    snprintf(vname, sizeof vname, "%s", voice);
    for (char *p = vname; *p; p++)
        if (*p == '+')
            *p = '_';
    snprintf(rel, rellen, "%s/%s_%s_s%d_p%d.wav", label, vname, word, speed, pitch);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "espeak-ng -v '%s' -s %d -p %d --stdout '%s' 2>/dev/null | "
             "sox -q -t wav - -r %d -c 1 -b 16 '%s/%s' 2>/dev/null",
             voice, speed, pitch, word, rate, dir, rel);
    return system(cmd) == 0 ? 0 : -EIO;
}

/* Fills dir with keyword and unknown-word clips unless it already has a
 * testing_list.txt. Returns 0 or a negative code. */
static int synth_generate(const char *dir, char **labels, int n_labels, int per_voice,
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
    const int speeds[] = {120, 145, 170, 200}, pitches[] = {25, 40, 55, 70, 85};
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
                        int sp = speeds[(seed >> 8) % 4], pi = pitches[(seed >> 16) % 5];
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
                        int sp = speeds[(*sq >> 4) % 4], pi = pitches[(*sq >> 12) % 5];
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
    fprintf(stderr, "synth: %d clips in %s\n", nclips, dir);
    return nclips > 0 ? 0 : KWS_EDATASET;
}

/* ==== Rendering batches ==== */

struct renderer {
    struct audio_fe fe[64];
    int n;
};

static int renderer_init(struct renderer *r, const struct kws_frontend_cfg *fc, int n) {
    memset(r, 0, sizeof *r);
    r->n = n > 64 ? 64 : n;
    for (int i = 0; i < r->n; i++)
        if (audio_fe_init(&r->fe[i], fc) < 0)
            return -ENOMEM;
    return 0;
}

static void renderer_free(struct renderer *r) {
    for (int i = 0; i < r->n; i++)
        audio_fe_free(&r->fe[i]);
}

/* Renders clips idx[0..n) into x (n,T,n_in), bg (n,T), y (n). */
static int render_batch(struct renderer *r, const struct dataset *ds, const size_t *idx, int n,
                        const struct ds_aug *aug, uint64_t seed, int T, int n_in, float *x,
                        float *bg, int32_t *y) {
    int err = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : err)
    for (int b = 0; b < n; b++) {
        int th = omp_get_thread_num() % r->n;
        err |= dataset_render(ds, idx[b], aug, seed, &r->fe[th], T, x + (size_t)b * T * n_in,
                              bg ? bg + (size_t)b * T : NULL) != 0;
        y[b] = ds->clips[idx[b]].label;
    }
    return err ? -ENOMEM : 0;
}

/* Renders B stream windows (kws/dataset.h) into x (B,T,n_in) and their
 * per-frame targets into ft (B,T); window b draws from stream first + b. */
static int render_windows(struct renderer *r, const struct dataset *ds, const struct ds_window *w,
                          const struct ds_aug *aug, uint64_t seed, uint64_t first, int B, int n_in,
                          float *x, int16_t *ft) {
    int err = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : err)
    for (int b = 0; b < B; b++) {
        int th = omp_get_thread_num() % r->n;
        err |= dataset_render_window(ds, w, aug, seed, first + (uint64_t)b, &r->fe[th],
                                     x + (size_t)b * w->T * n_in, ft + (size_t)b * w->T) != 0;
    }
    return err ? -ENOMEM : 0;
}

/* Fills the window's pools from the training split: keywords (every label
 * that fires), unknown words, and negative phrases; room for hard negatives.
 * Returns 0 or -ENOMEM. */
static int window_pools(const struct dataset *ds, struct ds_window *w, size_t **mem) {
    size_t n = ds->n_clips, *p = malloc((4 * n + 4) * sizeof *p);
    if (!(*mem = p))
        return -ENOMEM;
    size_t *kw = p, *unk = p + n, *neg = p + 2 * n;
    w->n_kw = w->n_unk = w->n_neg = w->n_hard = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ds_clip *c = &ds->clips[i];
        if (c->split != DS_TRAIN || c->label == ds->sil_class)
            continue;
        if (c->negative)
            neg[w->n_neg++] = i;
        else if (c->label == ds->unk_class || ds->labels[c->label][0] == '_')
            unk[w->n_unk++] = i;
        else
            kw[w->n_kw++] = i;
    }
    w->kw = kw;
    w->unk = unk;
    w->neg = neg;
    w->hard = p + 3 * n;
    w->p_hard = 0.5f;
    return 0;
}

/* Mines the training negatives with model m (kws/dataset.h dataset_mine):
 * the ones it fires on at 0.5 become w's hard pool. */
static int mine(const struct snn_model *m, const struct dataset *ds, struct ds_window *w) {
    size_t n_hard = 0;
    int rc = dataset_mine(m, ds, w->neg, w->n_neg, 0.5f, 300, (size_t *)w->hard, &n_hard, NULL);
    if (rc < 0)
        return rc;
    w->n_hard = n_hard;
    fprintf(stderr, "mined: the model fired on %zu of %zu training negatives\n", n_hard, w->n_neg);
    return 0;
}

/* ==== Keyword clips from flite's voices ==== */

/* flite's four English voices: diphone (kal16) and statistical parametric
 * (awb, rms, slt) synthesis, unlike espeak-ng's formant voices. */
static const char *const flite_voices[] = {"kal16", "awb", "rms", "slt"};
static const char *const flite_stretch[] = {"0.85", "1.0", "1.2"};

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
 * Commands non-keywords once per voice. All of it trains. Returns 0 or a
 * negative code. */
static int flite_generate(const char *dir, char **labels, int n_labels, int rate) {
    char path[4096];
    snprintf(path, sizeof path, "%s/.complete", dir);
    if (access(path, F_OK) == 0)
        return 0;
    mkdir(dir, 0755);
    static const int male[] = {80, 95, 110, 125, 140}, female[] = {150, 175, 200, 225, 250};
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
            const int *ps = strcmp(flite_voices[v], "slt") ? male : female;
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
    fprintf(stderr, "flite: %d clips in %s\n", nclips, dir);
    return 0;
}

/* ==== Distillation teacher ==== */

struct teacher {
    struct snn_model m;
    struct snn_state st[64];
    float *vo; /* (n_st, T, n_classes) readout potentials, one block per thread */
    int n_st, T;
};

/* Loads the teacher model at path and checks that it reads the same inputs
 * and names the same classes as cfg. */
static int teacher_init(struct teacher *t, const char *path, const struct snn_cfg *cfg, int T,
                        int n_threads) {
    char msg[256];
    memset(t, 0, sizeof *t);
    int rc = snn_model_load(&t->m, path, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "kwsd-train: --teacher: %s\n", msg);
        return rc;
    }
    const struct kws_frontend_cfg *a = &t->m.cfg.fe, *b = &cfg->fe;
    const char *diff = NULL;
    if (a->sample_rate != b->sample_rate || a->hop != b->hop || a->win_len != b->win_len ||
        a->n_fft != b->n_fft)
        diff = "sample rate, window or hop";
    else if (a->n_mels != b->n_mels || a->fmin != b->fmin || a->fmax != b->fmax)
        diff = "mel bands or edges (--fmax)";
    else if (a->pcen != b->pcen || a->pcen_release != b->pcen_release)
        diff = "PCEN (--pcen-release)";
    else if (a->enc_kind != b->enc_kind || a->enc_levels != b->enc_levels ||
             memcmp(a->enc_thresh, b->enc_thresh, sizeof a->enc_thresh) ||
             a->feat_mean != b->feat_mean || a->feat_scale != b->feat_scale)
        diff = "encoder (--enc)";
    else if (t->m.cfg.n_in != cfg->n_in || t->m.cfg.n_classes != cfg->n_classes)
        diff = "input or class count";
    for (int c = 0; !diff && c < cfg->n_classes; c++)
        if (strcmp(t->m.cfg.labels[c], cfg->labels[c]))
            diff = "labels (names or order)";
    if (diff) {
        fprintf(stderr, "kwsd-train: --teacher %s: the teacher's %s and this training's differ\n",
                path, diff);
        snn_model_free(&t->m);
        return KWS_EBADFIELD;
    }
    t->n_st = n_threads < 1 ? 1 : n_threads > 64 ? 64 : n_threads;
    t->T = T;
    t->vo = malloc((size_t)t->n_st * T * cfg->n_classes * sizeof *t->vo);
    if (!t->vo)
        return -ENOMEM;
    for (int i = 0; i < t->n_st; i++)
        if (snn_state_init(&t->st[i], &t->m) < 0)
            return -ENOMEM;
    return 0;
}

static void teacher_free(struct teacher *t) {
    for (int i = 0; i < t->n_st; i++)
        snn_state_free(&t->st[i]);
    free(t->vo);
    snn_model_free(&t->m);
}

/* The teacher's clip scores P (n, n_classes) of examples x (n, T, n_in),
 * summed from frame t0 on like the student's; returns how many of them it
 * classifies as y. */
static int teacher_scores(struct teacher *t, const float *x, const int32_t *y, int n, int t0,
                          float *P) {
    int K = t->m.cfg.n_classes, n_in = t->m.cfg.n_in, T = t->T, agree = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : agree)
    for (int b = 0; b < n; b++) {
        int th = omp_get_thread_num() % t->n_st;
        float *vo = t->vo + (size_t)th * T * K;
        snn_forward(&t->m, &t->st[th], x + (size_t)b * T * n_in, T, vo);
        agree += train_clip_predict(vo + (size_t)t0 * K, T - t0, K, P + (size_t)b * K) == y[b];
    }
    return agree;
}

/* Accuracy of net (eval mode, sigma 0) on prerendered examples. */
static float eval_acc(struct train_net *net, const float *x, const int32_t *y, size_t n, int B,
                      int T, int n_in, float *bgz, int32_t *ytmp, float *xtmp) {
    size_t correct = 0;
    int K = net->cfg.n_classes;
    for (size_t s = 0; s < n; s += (size_t)B) {
        int nb = (int)(n - s < (size_t)B ? n - s : (size_t)B);
        memcpy(xtmp, x + s * T * n_in, (size_t)nb * T * n_in * sizeof(float));
        if (nb < B)
            memset(xtmp + (size_t)nb * T * n_in, 0, (size_t)(B - nb) * T * n_in * sizeof(float));
        for (int b = 0; b < B; b++)
            ytmp[b] = b < nb ? y[s + b] : 0;
        train_net_forward(net, xtmp, NULL, bgz, B, T, 0);
        for (int b = 0; b < nb; b++)
            correct += train_clip_predict(net->vo + (size_t)b * T * K, T, K, NULL) == y[s + b];
    }
    return n ? (float)correct / (float)n : 0.0f;
}

/* Copies every layer's recurrent and input delays into buf (save = 1) or
 * back from it (save = 0). */
static void copy_delays(struct train_net *net, float *buf, int save) {
    for (int l = 0; l < net->cfg.n_layers; l++) {
        float *d = net->p.delay[l], *di = net->p.in_delay[l];
        size_t n = (size_t)net->cfg.layer[l].n, ni = l ? (size_t)net->cfg.layer[l - 1].n : 0;
        if (d) {
            memcpy(save ? buf : d, save ? d : buf, n * sizeof *d);
            buf += n;
        }
        if (di) {
            memcpy(save ? buf : di, save ? di : buf, ni * sizeof *di);
            buf += ni;
        }
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Prerenders a split without augmentation. */
static int prerender(struct renderer *r, const struct dataset *ds, const size_t *idx, size_t n,
                     int T, int n_in, float **x, int32_t **y) {
    struct ds_aug none;
    dataset_aug_none(&none);
    *x = malloc((n ? n : 1) * T * n_in * sizeof(float));
    *y = malloc((n ? n : 1) * sizeof(int32_t));
    if (!*x || !*y)
        return -ENOMEM;
    for (size_t s = 0; s < n; s += 256) {
        int nb = (int)(n - s < 256 ? n - s : 256);
        if (render_batch(r, ds, idx + s, nb, &none, 0x5eed, T, n_in, *x + s * T * n_in, NULL,
                         *y + s))
            return -ENOMEM;
    }
    return 0;
}

/* Runs model m over the stream joined from the validation clips as vo
 * describes it (passes, the validation negatives between the words, noise
 * under it; kws/stream_eval.h), and finds the lowest threshold with at most
 * max_fa false alarms per hour: *thr and its result r. Returns 0,
 * KWS_EDATASET when the clips hold no word, or -ENOMEM. */
static int stream_val(const struct snn_model *m, const struct dataset *ds, const size_t *va,
                      size_t n_va, const struct stream_eval_opts *vo, float max_fa, float *thr,
                      struct stream_result *r) {
    struct stream_eval se;
    memset(r, 0, sizeof *r);
    int rc = stream_eval_run_opts(&se, m, ds, va, n_va, vo);
    if (rc < 0)
        return rc == KWS_EDATASET ? rc : -ENOMEM;
    *thr = stream_eval_calibrate(&se, &m->cfg, 300, 1000, max_fa, r);
    stream_eval_free(&se);
    return *thr < 0.0f ? -ENOMEM : 0;
}

/* Stores in the model file at path the lowest detection threshold that gives
 * at most max_fa false alarms per hour on the validation stream, so the
 * daemon's default threshold fits this model. Without validation words the
 * model keeps none. */
static int calibrate(const char *path, const struct dataset *ds, const size_t *va, size_t n_va,
                     const struct stream_eval_opts *vo, float max_fa) {
    struct snn_model m = {0};
    struct stream_result r;
    char msg[256];
    int rc = snn_model_load(&m, path, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "kwsd-train: %s\n", msg);
        return rc;
    }
    float t = 0.0f;
    rc = stream_val(&m, ds, va, n_va, vo, max_fa, &t, &r);
    if (rc == KWS_EDATASET) {
        fprintf(stderr, "calibration: no validation words; the model has no threshold of its own "
                        "(kwsd uses 0.4)\n");
        snn_model_free(&m);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "kwsd-train: calibration: out of memory\n");
        snn_model_free(&m);
        return -ENOMEM;
    }
    m.cfg.threshold = t;
    rc = snn_model_save(&m, path);
    snn_model_free(&m);
    if (rc < 0) {
        fprintf(stderr, "kwsd-train: cannot write %s: %s\n", path, kws_strerror(rc));
        return rc;
    }
    fprintf(stderr,
            "calibration: threshold %.3f on a %.2f h validation stream: hit rate %.1f %% "
            "(%d/%d), %.1f false alarms per hour (at most %.1f wanted)\n",
            (double)t, r.hours, r.n_kw ? 100.0 * r.hits / r.n_kw : 0.0, r.hits, r.n_kw,
            r.hours > 0 ? r.false_alarms / r.hours : 0.0, (double)max_fa);
    return 0;
}

int main(int argc, char **argv) {
    struct opts o = {0};
    int rc = opt_parse(&train_tool, &o, argc, argv);
    if (rc != OPT_OK)
        return rc == OPT_EXIT ? 0 : 2;
    o.stream_val |= o.select_stream;
    if (o.n_rec != o.n_hidden) {
        fprintf(stderr, "kwsd-train: --rec needs one entry per --hidden layer\n");
        return 2;
    }
    if (o.threads > 0)
        omp_set_num_threads(o.threads);
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s", o.ckpt ? o.ckpt : "");
    if (!o.ckpt)
        snprintf(ckpt, sizeof ckpt, "%s.ckpt", o.out);

    /* ---- topology ---- */
    char *labels[SNN_MAX_CLASSES];
    int n_labels = o.n_labels;
    for (int i = 0; i < n_labels; i++)
        labels[i] = o.labels[i];
    struct snn_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    audio_fe_cfg_default(&cfg.fe);
    if (o.n_enc) {
        cfg.fe.enc_levels = o.n_enc;
        for (int i = 0; i < o.n_enc; i++)
            cfg.fe.enc_thresh[i] = o.enc[i];
    }
    if (o.fmax > 0.0f)
        cfg.fe.fmax = o.fmax;
    cfg.fe.pcen_release = o.pcen_release;
    {
        char fmsg[256];
        if (audio_fe_cfg_check(&cfg.fe, fmsg, sizeof fmsg) < 0) {
            fprintf(stderr, "kwsd-train: front end: %s\n", fmsg);
            return 2;
        }
    }
    cfg.n_in = audio_fe_n_out(&cfg.fe);
    cfg.n_layers = o.n_hidden;
    for (int l = 0; l < cfg.n_layers; l++) {
        struct snn_layer_cfg *lc = &cfg.layer[l];
        lc->n = o.hidden[l];
        lc->rec = rec_kinds[o.rec[l]];
        lc->k = lc->rec == SNN_REC_CONV ? o.k : 0;
        lc->ch = lc->rec == SNN_REC_CONV ? o.conv_ch : 0; /* snn_cfg_validate checks it */
        lc->d_max = lc->rec != SNN_REC_NONE ? o.d_max : 0;
        lc->beta = lc->rec != SNN_REC_NONE ? o.beta_rec : o.beta0;
        lc->gain = 1.0f;
        lc->thresh = 1.0f;
        lc->reset = SNN_RESET_HARD;
        lc->in_d_max = l ? o.in_delay : 0;
    }
    cfg.n_classes = n_labels;
    cfg.out_beta = o.out_beta;
    cfg.out_gain = o.out_gain > 0.0f ? o.out_gain : 1.0f;
    for (int i = 0; i < n_labels; i++)
        snprintf(cfg.labels[i], SNN_LABEL_LEN, "%s", labels[i]);
    char msg[512];
    if (snn_cfg_validate(&cfg, msg, sizeof msg) < 0) {
        fprintf(stderr, "kwsd-train: %s\n", msg);
        return 2;
    }

    /* ---- data ---- */
    double t0 = now_s();
    struct dataset ds;
    if (dataset_init(&ds, (const char *const *)labels, n_labels, cfg.fe.sample_rate) < 0) {
        fprintf(stderr, "kwsd-train: bad labels\n");
        return 2;
    }
    rc = dataset_load(&ds, o.data, -1, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "kwsd-train: %s\n", msg);
        return 1;
    }
    int synth_src = -1;
    if (o.synth) {
        if (synth_generate(o.synth, labels, n_labels, o.synth_n, o.synth_unk, o.synth_rate) < 0) {
            fprintf(stderr, "kwsd-train: cannot synthesise clips into %s\n", o.synth);
            return 1;
        }
        synth_src = ds.n_sources;
        if (dataset_load(&ds, o.synth, -1, msg, sizeof msg) < 0) {
            fprintf(stderr, "kwsd-train: %s\n", msg);
            return 1;
        }
    }
    if (o.extra && dataset_load(&ds, o.extra, DS_TRAIN, msg, sizeof msg) < 0) {
        fprintf(stderr, "kwsd-train: %s\n", msg);
        return 1;
    }
    if (o.flite) {
        if (flite_generate(o.flite, labels, n_labels, o.synth_rate) < 0) {
            fprintf(stderr, "kwsd-train: cannot make flite clips in %s (is flite installed?)\n",
                    o.flite);
            return 1;
        }
        if (dataset_load(&ds, o.flite, DS_TRAIN, msg, sizeof msg) < 0) {
            fprintf(stderr, "kwsd-train: %s\n", msg);
            return 1;
        }
    }
    size_t noise0 = ds.n_noise; /* the --noise recordings follow the _silence_ clips */
    if (o.noise && dataset_add_noise(&ds, o.noise, msg, sizeof msg) < 0) {
        fprintf(stderr, "kwsd-train: %s\n", msg);
        return 1;
    }
    if (o.negatives && dataset_load_negatives(&ds, o.negatives, -1, msg, sizeof msg) < 0) {
        fprintf(stderr, "kwsd-train: --negatives %s\n", msg);
        return 1;
    }
    struct ds_window win;
    size_t *pool_mem = NULL;
    dataset_window_default(&win);
    if (o.windows) {
        win.T = (int)(o.window_ms / (1000.0f * (float)cfg.fe.hop / (float)cfg.fe.sample_rate));
        win.p_keyword = o.p_keyword;
        win.p_cold = o.p_cold;
        if (window_pools(&ds, &win, &pool_mem) < 0) {
            fprintf(stderr, "kwsd-train: out of memory\n");
            return 1;
        }
        fprintf(stderr,
                "windows: %d per epoch of %d frames; pools: %zu keywords, %zu unknown, "
                "%zu negatives\n",
                o.windows, win.T, win.n_kw, win.n_unk, win.n_neg);
    }
    /* the validation stream: the split's words, its negatives between them
     * and the --noise recordings under it at 10-20 dB */
    struct stream_eval_opts vopt = stream_eval_opts_default();
    vopt.passes = o.calib_passes;
    size_t *vneg = malloc((ds.n_clips + 1) * sizeof *vneg);
    if (!vneg) {
        fprintf(stderr, "kwsd-train: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < ds.n_clips; i++)
        if (ds.clips[i].negative && ds.clips[i].split == DS_VAL)
            vneg[vopt.n_neg++] = i;
    vopt.neg = vneg;
    if (ds.n_noise > noise0) {
        vopt.noise = (const float *const *)ds.noise + noise0;
        vopt.noise_n = ds.noise_n + noise0;
        vopt.n_noise = ds.n_noise - noise0;
    }
    size_t n_tr = dataset_split(&ds, DS_TRAIN, -1, NULL);
    size_t n_va = dataset_split(&ds, DS_VAL, 0, NULL);
    size_t *tr = malloc((n_tr + 1) * sizeof *tr), *va = malloc((n_va + 1) * sizeof *va);
    dataset_split(&ds, DS_TRAIN, -1, tr);
    dataset_split(&ds, DS_VAL, 0, va);
    if (o.max_train > 0 && (size_t)o.max_train < n_tr)
        n_tr = (size_t)o.max_train;
    fprintf(stderr, "data: %zu clips (%zu train, %zu val), %zu noise, loaded in %.1f s\n",
            ds.n_clips, n_tr, n_va, ds.n_noise, now_s() - t0);

    /* ---- network ---- */
    struct train_hparams hp;
    train_hparams_default(&hp);
    hp.surrogate = surrogate_kinds[o.surrogate];
    hp.sg_alpha = o.sg_alpha;
    hp.detach_reset = !o.no_detach;
    hp.use_bn = !o.no_bn;
    hp.drop_ff = o.drop_ff;
    hp.drop_rec = o.drop_rec;
    hp.wd = o.wd;
    hp.delay_init_lo = o.delay_init[0];
    hp.delay_init_hi = o.delay_init[1];
    hp.sigma = o.sigma_init;
    hp.bg_weight = o.bg_weight;
    hp.fg_weight = o.fg_weight;
    hp.win_weight = o.win_weight;
    hp.ema_decay = o.ema;
    hp.kd_weight = o.teacher ? o.kd_weight : 0.0f;
    hp.kd_temp = o.kd_temp;
    hp.sil_class = ds.sil_class;
    hp.seed = (uint64_t)o.seed;
    struct train_net net;
    int epoch0 = 0;
    float best = -1.0f;
    if (o.resume && access(ckpt, F_OK) == 0) {
        rc = train_checkpoint_load(&net, &epoch0, ckpt, msg, sizeof msg);
        if (rc < 0) {
            fprintf(stderr, "kwsd-train: %s\n", msg);
            return 1;
        }
        best = net.best;
        fprintf(stderr, "resumed from %s at epoch %d (best val %.2f %%)\n", ckpt, epoch0,
                100.0 * best);
    } else {
        rc = train_net_init(&net, &cfg, &hp);
        if (rc < 0) {
            fprintf(stderr, "kwsd-train: cannot create the network (%s)\n", kws_strerror(rc));
            return 1;
        }
        if (o.init) {
            size_t il = strlen(o.init);
            int is_model = il > 5 && !strcmp(o.init + il - 5, ".kwsm");
            rc = is_model ? train_net_init_from_model(&net, o.init, msg, sizeof msg)
                          : train_net_init_from(&net, o.init, msg, sizeof msg);
            if (rc < 0) {
                fprintf(stderr, "kwsd-train: --init %s\n", msg);
                train_net_free(&net);
                return 1;
            }
            fprintf(stderr, "init: %s\n", msg);
        }
    }
    size_t n_rec = 0;
    for (int l = 0; l < cfg.n_layers; l++)
        n_rec += snn_rec_param_count(&cfg.layer[l]);
    fprintf(stderr, "net: %zu trainable parameters (%zu after export, %zu recurrent), %d threads\n",
            net.n_params, snn_param_count(&cfg), n_rec, omp_get_max_threads());

    int B = o.batch, T = o.T, n_in = cfg.n_in;
    /* training examples carry ctx frames of context in front of the T frames */
    int ctx =
        (int)(o.context_ms / (1000.0f * (float)cfg.fe.hop / (float)cfg.fe.sample_rate) + 0.5f);
    if (ctx < 0 || ctx > 1000) {
        fprintf(stderr, "kwsd-train: --context-ms out of range\n");
        return 2;
    }
    int Ttr = o.windows ? win.T : T + ctx;
    struct renderer rend;
    if (renderer_init(&rend, &cfg.fe, omp_get_max_threads()) < 0) {
        fprintf(stderr, "kwsd-train: front end init failed\n");
        return 1;
    }
    struct teacher tch = {0};
    float *kd_p = NULL;
    if (o.teacher) {
        if ((rc = teacher_init(&tch, o.teacher, &cfg, Ttr, omp_get_max_threads())) < 0) {
            if (rc == -ENOMEM)
                fprintf(stderr, "kwsd-train: out of memory\n");
            return 1;
        }
        if (!(kd_p = malloc((size_t)o.batch * cfg.n_classes * sizeof *kd_p))) {
            fprintf(stderr, "kwsd-train: out of memory\n");
            return 1;
        }
        fprintf(stderr, "teacher: %s (%zu parameters), distillation weight %g, temperature %g\n",
                o.teacher, tch.m.n_params, (double)net.hp.kd_weight, (double)net.hp.kd_temp);
    }
    float *xv;
    int32_t *yv;
    if (prerender(&rend, &ds, va, n_va, T, n_in, &xv, &yv) < 0) {
        fprintf(stderr, "kwsd-train: out of memory\n");
        return 1;
    }
    {
        double on = 0.0;
        size_t nx = n_va * (size_t)T * n_in;
        for (size_t i = 0; i < nx; i++)
            on += xv[i];
        fprintf(stderr, "input: %.3f spikes per channel and frame (validation clips)\n",
                nx ? on / (double)nx : 0.0);
    }
    size_t per_epoch = o.windows ? (size_t)o.windows : n_tr * (size_t)o.copies;
    size_t steps_per_epoch = per_epoch / (size_t)B;
    size_t *order = malloc((per_epoch + 1) * sizeof *order);
    float *x = malloc((size_t)B * Ttr * n_in * sizeof *x),
          *bg = malloc((size_t)B * Ttr * sizeof *bg);
    float *xtmp = malloc((size_t)B * T * n_in * sizeof *x);
    int32_t *y = malloc((size_t)B * sizeof *y), *ytmp = malloc((size_t)B * sizeof *y);
    int16_t *ft = malloc((size_t)B * Ttr * sizeof *ft);
    if (!order || !x || !bg || !y || !xtmp || !ytmp || !ft || steps_per_epoch == 0) {
        fprintf(stderr, "kwsd-train: out of memory or fewer clips than one batch\n");
        return 1;
    }
    struct ds_aug aug;
    dataset_aug_default(&aug);
    aug.snr_db_lo = o.snr[0];
    aug.snr_db_hi = o.snr[1];
    aug.shift_ms = o.shift_ms;
    aug.speed_lo = o.speed[0];
    aug.speed_hi = o.speed[1];
    aug.ctx_frames = ctx;
    aug.p_ctx_word = o.p_context;
    aug.p_ctx_cold = o.p_cold;
    aug.tilt = o.tilt;
    aug.floor_p = o.floor_p;
    aug.floor_db_lo = o.floor_db[0];
    aug.floor_db_hi = o.floor_db[1];
    aug.trim_ms = o.trim_ms;
    aug.fmask_n = o.fmask[0];
    aug.fmask_w = o.fmask[1];
    aug.tmask_n = o.tmask[0];
    aug.tmask_w = o.tmask[1];
    double t_train = now_s();
    float sdec = powf(o.sigma_decay, 100.0f / (float)o.epochs);
    for (int ep = epoch0; ep < o.epochs; ep++) {
        double te = now_s();
        net.hp.sigma = o.sigma_init * powf(sdec, (float)ep);
        /* deterministic shuffle of (clip, copy) pairs */
        for (size_t i = 0; i < per_epoch; i++)
            order[i] = tr[i % n_tr];
        uint64_t st =
            (uint64_t)o.seed * 0x9E3779B97F4A7C15ull + (uint64_t)ep * 0xBF58476D1CE4E5B9ull;
        for (size_t i = per_epoch - 1; i > 0; i--) {
            st ^= st << 13;
            st ^= st >> 7;
            st ^= st << 17;
            size_t j = (size_t)(st % (i + 1));
            size_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        double loss = 0.0;
        size_t correct = 0, seen = 0, agree = 0;
        uint64_t spikes = 0;
        float lr = 0.0f;
        double t_render = 0.0;
        for (size_t s = 0; s < steps_per_epoch; s++) {
            double tr0 = now_s();
            uint64_t rseed = (uint64_t)o.seed * 1000003ull + (uint64_t)ep * 7919ull + s * 104729ull;
            /* a step: stream windows with per-frame targets, or clips with labels */
            uint64_t first = ((uint64_t)ep * steps_per_epoch + s) * (uint64_t)B;
            int rr = o.windows ? render_windows(&rend, &ds, &win, &aug, (uint64_t)o.seed, first, B,
                                                n_in, x, ft)
                               : render_batch(&rend, &ds, order + s * B, B, &aug, rseed, Ttr, n_in,
                                              x, bg, y);
            if (rr < 0) {
                fprintf(stderr, "kwsd-train: render failed\n");
                return 1;
            }
            t_render += now_s() - tr0;
            float frac = ((float)ep * steps_per_epoch + s) / ((float)o.epochs * steps_per_epoch);
            lr = train_lr_onecycle(o.lr, frac);
            float lrd = train_lr_cosine(o.lr_delay, frac);
            net.clip_t0 = o.windows ? 0 : ctx;
            net.ftgt = o.windows ? ft : NULL;
            if (kd_p && !o.windows)
                agree += (size_t)teacher_scores(&tch, x, y, B, ctx, kd_p);
            net.kd_p = o.windows ? NULL : kd_p; /* read by the forward and the backward */
            train_net_forward(&net, x, o.windows ? NULL : y, o.windows ? NULL : bg, B, Ttr, 1);
            train_net_zero_grad(&net);
            train_net_backward(&net);
            train_net_adamw(&net, lr, lrd);
            net.kd_p = NULL;
            net.ftgt = NULL;
            loss += net.loss;
            correct += (size_t)net.n_correct;
            seen += o.windows ? (size_t)net.n_regions : (size_t)B;
            spikes += net.n_spikes;
        }
        /* validation: delays rounded in place, sigma 0 (the exported model's kernel) */
        float sig = net.hp.sigma;
        train_net_round_delays(&net);
        net.hp.sigma = 0.0f;
        float *bgz = NULL;
        net.clip_t0 = 0;
        float va_acc = eval_acc(&net, xv, yv, n_va, B, T, n_in, bgz, ytmp, xtmp), va_live = va_acc;
        float dsave[2 * SNN_MAX_LAYERS * SNN_MAX_NEURONS];
        if (net.ema) {
            /* the average is what is validated and exported; its own delays stay
             * real-valued (only the copy scored here is rounded) */
            train_net_ema_swap(&net);
            copy_delays(&net, dsave, 1);
            train_net_round_delays(&net);
            va_acc = eval_acc(&net, xv, yv, n_va, B, T, n_in, bgz, ytmp, xtmp);
        }
        net.hp.sigma = sig;
        size_t hidden = 0;
        for (int l = 0; l < cfg.n_layers; l++)
            hidden += (size_t)cfg.layer[l].n;
        struct snn_model m = {0};
        if (train_net_export(&net, &m) < 0) {
            fprintf(stderr, "kwsd-train: out of memory\n");
            return 1;
        }
        /* the score models are chosen by: clip accuracy, or the validation stream's
         * hit rate within the false-alarm budget (clip accuracy breaks ties) */
        float score = va_acc;
        char vbuf[64] = "", sbuf[96] = "", tbuf[48] = "";
        if (kd_p)
            snprintf(tbuf, sizeof tbuf, " (teacher %.2f %%)", 100.0 * agree / seen);
        if (net.ema)
            snprintf(vbuf, sizeof vbuf, " (weights %.2f %%)", 100.0 * va_live);
        if (o.stream_val) {
            struct stream_result sr;
            float th = 1.0f; /* no validation words: no hits at any threshold */
            int src = stream_val(&m, &ds, va, n_va, &vopt, o.calib_fa, &th, &sr);
            if (src < 0 && src != KWS_EDATASET) {
                fprintf(stderr, "kwsd-train: validation stream: out of memory\n");
                return 1;
            }
            float hit = sr.n_kw ? (float)sr.hits / (float)sr.n_kw : 0.0f;
            double fa_h = sr.hours > 0 ? sr.false_alarms / sr.hours : 0.0;
            snprintf(sbuf, sizeof sbuf, "  stream %.1f %% at %.1f/h (thr %.3f)", 100.0 * hit, fa_h,
                     (double)th);
            /* an epoch that no threshold keeps within the budget has no hits
             * to count: the fewer its false alarms, the better */
            if (o.select_stream)
                score = fa_h <= o.calib_fa ? hit + 1e-4f * va_acc
                                           : -(float)fa_h * 1e-3f + 1e-6f * va_acc;
        }
        fprintf(stderr,
                "epoch %3d/%d  loss %.4f  train %.2f %%%s  val %.2f %%%s%s  sigma %.3f  lr %.2e  "
                "rate %.3f  %.1f s (render %.1f s)%s\n",
                ep + 1, o.epochs, loss / steps_per_epoch, 100.0 * correct / seen, tbuf,
                100.0 * va_acc, vbuf, sbuf, sig, lr,
                (double)spikes / ((double)steps_per_epoch * B * Ttr * hidden), now_s() - te,
                t_render, score > best ? "  *" : "");
        if (score > best) {
            best = score;
            if (snn_model_save(&m, o.out) < 0) {
                fprintf(stderr, "kwsd-train: cannot write %s\n", o.out);
                return 1;
            }
        }
        if (o.windows && o.mine_every && (ep + 1) % o.mine_every == 0 && win.n_neg &&
            mine(&m, &ds, &win) < 0) {
            fprintf(stderr, "kwsd-train: out of memory\n");
            return 1;
        }
        snn_model_free(&m);
        if (net.ema) {
            copy_delays(&net, dsave, 0);
            train_net_ema_swap(&net);
        }
        net.best = best;
        if ((rc = train_checkpoint_save(&net, ep + 1, ckpt)) < 0)
            fprintf(stderr, "kwsd-train: checkpoint %s: %s\n", ckpt, kws_strerror(rc));
    }
    fprintf(stderr, "done: best %s %.2f %%, training %.1f min, model %s\n",
            o.select_stream ? "validation stream hit rate" : "val", 100.0 * best,
            (now_s() - t_train) / 60.0, o.out);
    if (calibrate(o.out, &ds, va, n_va, &vopt, o.calib_fa) < 0)
        return 1;
    (void)synth_src;
    free(order);
    free(vneg);
    free(ft);
    free(pool_mem);
    free(x);
    free(bg);
    free(y);
    free(xtmp);
    free(ytmp);
    free(xv);
    free(yv);
    free(tr);
    free(va);
    renderer_free(&rend);
    if (o.teacher)
        teacher_free(&tch);
    free(kd_p);
    train_net_free(&net);
    dataset_free(&ds);
    return 0;
}

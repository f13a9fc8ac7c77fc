/* kwsd-train: trains a conv-delay (or dense DelRec) SNN keyword model.
 *
 * The options fill a struct train_recipe (kws/recipe.h) and train_run does
 * the rest: it reads a folder-per-label data set (Speech Commands layout),
 * optionally adds keyword clips synthesised with espeak-ng + sox or flite,
 * trains with surrogate-gradient BPTT (kws/train.h) on augmented renders
 * (kws/dataset.h), keeps a resumable checkpoint, and writes the model with
 * the best validation score as a .kwsm file; this program prints its notes
 * and one line per epoch. See docs/MODELS.md for the commands that trained
 * the shipped models. Every option, its range and help live in one table
 * (train_opts, parsed by tools/opt.h), writing into the recipe.
 *
 *     kwsd-train --data /data/speech_commands --labels yes,no,...,_silence_,_unknown_ \
 *                --out models/commands.kwsm [--epochs 40] [--resume]
 *
 * SPDX-License-Identifier: MIT
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>

#include "kws/err.h"
#include "kws/recipe.h"
#include "kws/stream_eval.h"
#include "kws/train.h"
#include "opt.h"

/* ==== Options ==== */

/* The words of the enum options, in the order of the values they stand for. */
static const char *const rec_names[] = {"none", "conv", "dense", NULL};
static const char *const surrogate_names[] = {"atan", "triangle", NULL};
static const char *const select_names[] = {"clip", "stream", "last", NULL};
static const char *const enc_kind_names[] = {"level", "delta", "ramp", NULL};
_Static_assert(SNN_REC_NONE == 0 && SNN_REC_CONV == 1 && SNN_REC_DENSE == 2, "rec_names");
_Static_assert(TRAIN_SG_ATAN == 0 && TRAIN_SG_TRIANGLE == 1, "surrogate_names");
_Static_assert(TRAIN_SELECT_CLIP == 0 && TRAIN_SELECT_STREAM == 1 && TRAIN_SELECT_LAST == 2,
               "select_names");
_Static_assert(KWS_ENC_LEVEL == 0 && KWS_ENC_DELTA == 1 && KWS_ENC_RAMP == 2, "enc_kind_names");

#define O(f) offsetof(struct train_recipe, f)
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
     .max_n = SNN_MAX_LAYERS, .help = "neurons per hidden layer"},
    {"rec", OPT_ENUMS, LIST(rec), .names = rec_names, .min_n = 1, .max_n = SNN_MAX_LAYERS, .help = "per layer: none | conv | dense"},
    {"k", OPT_INT, O(k), .min = 1, .max = SNN_MAX_K, .help = "conv taps"},
    {"d-max", OPT_INT, O(d_max), .min = 0, .max = SNN_MAX_DELAY,
     .help = "largest delay (steps)"},
    {"conv-ch", OPT_INT, O(conv_ch), .min = 0, .max = SNN_MAX_CH, .meta = "G",
     .help = "conv channels G (default 1): a conv layer's neurons are G channels\n"
             "of C/G positions, its kernel is (G, G, K)"},
    {"epochs", OPT_INT, O(epochs), .min = 1, .max = 100000, .help = "epochs"},
    {"batch", OPT_INT, O(batch), .min = 1, .max = 65536, .help = "batch size"},
    {"copies", OPT_INT, O(copies), .min = 1, .max = 1000,
     .help = "augmented renders of each clip per epoch"},
    {"frames", OPT_INT, O(T), .min = 1, .max = 10000,
     .help = "frames per example, 10 ms each"},
    {"lr", OPT_FLOAT, O(lr), .min = 0, .max = 10, .help = "learning rate"},
    {"lr-delay", OPT_FLOAT, O(lr_delay), .min = 0, .max = 100,
     .help = "learning rate of the delays"},
    {"wd", OPT_FLOAT, O(wd), .min = 0, .max = 1, .help = "weight decay"},
    {"seed", OPT_INT, O(seed), .min = 0, .max = INT_MAX, .help = "random seed"},
    {"threads", OPT_INT, O(threads), .min = 0, .max = 1024,
     .help = "OpenMP threads (0: all cores)"},
    {"drop-ff", OPT_FLOAT, O(drop_ff), .min = 0, .max = 1, .open = OPT_OPEN_MAX,
     .help = "dropout of the feed-forward layers"},
    {"drop-rec", OPT_FLOAT, O(drop_rec), .min = 0, .max = 1, .open = OPT_OPEN_MAX,
     .help = "dropout of the recurrent layers"},
    {"sigma-init", OPT_FLOAT, O(sigma_init), .min = 0, .max = 1000,
     .help = "width of the delay-spreading triangle kernel at the start"},
    {"sigma-decay", OPT_FLOAT, O(sigma_decay), .min = 0, .max = 1,
     .help = "its decay per epoch"},
    {"beta", OPT_FLOAT, O(beta0), .min = 0, .max = 1,
     .help = "membrane decay of the feed-forward layers"},
    {"beta-rec", OPT_FLOAT, O(beta_rec), .min = 0, .max = 1,
     .help = "membrane decay of the recurrent layers"},
    {"out-beta", OPT_FLOAT, O(out_beta), .min = 0, .max = 1,
     .help = "membrane decay of the readout"},
    {"out-gain", OPT_FLOAT, O(out_gain), .min = 0, .max = 1000, .open = OPT_OPEN_MIN,
     .help = "gain of the readout"},
    {"fmax", OPT_FLOAT, O(fmax), .min = 0, .max = 8000, .meta = "HZ",
     .help = "upper edge of the mel filterbank (default: the front end's)"},
    {"pcen-release", OPT_FLOAT, O(pcen_release), .min = 0, .max = 1, .meta = "S",
     .help = "PCEN smoother coefficient while a band's energy falls (0:\n"
             "the rising one, 0.025); e.g. 0.2 follows the noise floor\n"
             "down within ~0.2 s after a loud noise stops"},
    {"surrogate", OPT_ENUM, O(surrogate), .names = surrogate_names,
     .help = "surrogate gradient of the spike"},
    {"sg-alpha", OPT_FLOAT, O(sg_alpha), .min = 0, .max = 1000, .open = OPT_OPEN_MIN,
     .help = "its slope"},
    {"no-detach", OPT_FLAG, O(no_detach), .help = "let the gradient flow through the reset"},
    {"no-bn", OPT_FLAG, O(no_bn), .help = "no batch normalisation"},
    {"delay-init", OPT_PAIR, O(delay_init), .min = 0, .max = SNN_MAX_DELAY,
     .help = "initial delays (steps)"},
    {"in-delay", OPT_INT, O(in_delay), .min = 0, .max = SNN_MAX_DELAY,
     .help = "> 0: layers after the first also learn one delay per input\n"
             "channel, up to this many steps (they start in [0, 20])"},
    {"bg-weight", OPT_FLOAT, O(bg_weight), .min = 0, .max = 1000,
     .help = "streaming loss weight (silence on background frames)"},
    {"fg-weight", OPT_FLOAT, O(fg_weight), .min = 0, .max = 1000,
     .help = "streaming loss weight (label on the frames after the word)"},
    {"win-weight", OPT_FLOAT, O(win_weight), .min = 0, .max = 1000,
     .help = "streaming loss weight (mean label posterior over those frames)"},
    {"fa-weight", OPT_FLOAT, O(fa_weight), .min = 0, .max = 1000,
     .help = "--windows: weight of the false-alarm term (each keyword's\n"
             "highest smoothed posterior where it must not fire)"},
    {"freeze", OPT_INT, O(freeze), .min = 0, .max = SNN_MAX_LAYERS,
     .help = "the first N hidden layers are not trained (with --init: kept\n"
             "as loaded; the number of hidden layers: only the readout learns)"},
    {"band-ch", OPT_INT, O(tie_ch), .min = 0, .max = SNN_MAX_NEURONS,
     .help = "> 0: the first layer is a convolution over the mel bands\n"
             "with this many channels (a divisor of its neurons), written\n"
             "into its dense weights (not with --init FILE.kwsm); 0: fully\n"
             "connected"},
    {"band-half", OPT_INT, O(tie_half), .min = 0, .max = TRAIN_TIE_MAX_HALF,
     .help = "with --band-ch: its kernel reaches this many bands each side"},
    {"snr", OPT_PAIR, O(snr), .min = -20, .max = 60,
     .help = "augmentation: signal-to-noise ratio of the mixed-in noise, dB"},
    {"shift-ms", OPT_FLOAT, O(shift_ms), .min = 0, .max = 1000,
     .help = "augmentation: largest random time shift"},
    {"speed", OPT_PAIR, O(speed), .min = 0, .max = 4, .meta = "LO,HI",
     .help = "augmentation: speed range, e.g. 0.9,1.1 (default: none)"},
    {"context-ms", OPT_FLOAT, O(context_ms), .min = 0, .max = 10000,
     .help = "frames of context before each example's window"},
    {"p-context", OPT_FLOAT, O(p_context), .min = 0, .max = 1,
     .help = "how often another word ends in the context"},
    {"p-cold", OPT_FLOAT, O(p_cold), .min = 0, .max = 1,
     .help = "how often the context (with --windows: the whole window's\n"
             "background) is digital silence (a cold start)"},
    {"tilt", OPT_FLOAT, O(tilt), .min = 0, .max = 1,
     .help = "random spectral tilt y = x[n] - a x[n-1], |a| <= tilt"},
    {"trim-ms", OPT_FLOAT, O(trim_ms), .min = 0, .max = 1000,
     .help = "mute up to this much of half the words' onsets"},
    {"floor", OPT_FLOAT, O(floor_p), .min = 0, .max = 1,
     .help = "how often white hiss is added to an example (at --floor-db)"},
    {"reverb", OPT_FLOAT, O(reverb), .min = 0, .max = 1,
     .help = "how often an example's speech is put in a synthetic room"},
    {"rt60", OPT_PAIR, O(rt60), .min = 0.05, .max = 5, .meta = "LO,HI",
     .help = "--reverb: the room's reverberation time range, s"},
    {"floor-db", OPT_PAIR, O(floor_db), .min = -200, .max = 0,
     .help = "the hiss level (dBFS RMS): hiss alone must read as silence"},
    {"ema", OPT_FLOAT, O(ema), .min = 0, .max = 1, .open = OPT_OPEN_MAX,
     .help = "> 0: validate and export a moving average of the weights\n"
             "(decay per step, e.g. 0.999) instead of the weights"},
    {"stream-val", OPT_FLAG, O(stream_val),
     .help = "score every epoch on the validation stream too (hit rate\n"
             "within --calib-fa false alarms per hour)"},
    {"select", OPT_ENUM, O(select), .names = select_names,
     .help = "clip: keep the epoch with the best clip accuracy;\n"
             "stream: the best stream hit rate, and --stream-val;\n"
             "last: the last epoch"},
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
    {"kd-weight", OPT_FLOAT, O(kd_weight), .min = 0, .max = 100,
     .help = "weight of the distillation term"},
    {"kd-temp", OPT_FLOAT, O(kd_temp), .min = 0, .max = 100, .open = OPT_OPEN_MIN,
     .help = "its temperature"},
    {"calib-fa", OPT_FLOAT, O(calib_fa), .min = 0, .max = 100000,
     .help = "store the detection threshold that gives at most this many\n"
             "false alarms per hour on the validation stream"},
    {"calib-passes", OPT_INT, O(calib_passes), .min = 1, .max = STREAM_EVAL_MAX_PASSES,
     .help = "validation stream: the clips said this many times (each\n"
             "later pass shuffled), for calibration and --stream-val"},
    {"enc", OPT_FLOATS, LIST(enc), .min = -1000, .max = 1000, .min_n = 1,
     .max_n = KWS_ENC_MAX_LEVELS, .meta = "t0,t1,...",
     .help = "level-encoder thresholds (default: the front end's)"},
    {"enc-kind", OPT_ENUM, O(enc_kind), .names = enc_kind_names,
     .help = "spike encoder: level (0/1 per threshold), delta (up and\n"
             "down steps), ramp (graded 0..1 around each threshold)"},
    {"synth", OPT_PATH, O(synth), .meta = "DIR",
     .help = "espeak-ng keyword clips (generated into DIR if empty)"},
    {"synth-per-voice", OPT_INT, O(synth_n), .min = 1, .max = 100,
     .help = "clips per voice and word"},
    {"synth-rate", OPT_INT, O(synth_rate), .min = 8000, .max = 48000,
     .help = "the rate --synth and --flite clips are made at"},
    {"synth-unknown", OPT_INT, O(synth_unk), .min = 0, .max = 100,
     .help = "non-keyword clips per voice (> 2 adds everyday and\n"
             "keyword-like words; use a new --synth DIR)"},
    {"noise", OPT_PATH, O(noise), .meta = "DIR", .help = "extra background noise files"},
    {"extra", OPT_PATH, O(extra), .meta = "DIR",
     .help = "another folder-per-label set whose clips all train"},
    {"flite", OPT_PATH, O(flite), .meta = "DIR",
     .help = "flite's voices say the keywords (and, with _unknown_,\n"
             "other words) into DIR if it is new; all of it trains"},
    {"max-train", OPT_INT, O(max_train), .min = 0, .max = INT_MAX,
     .help = "use at most this many training clips (0: all)"},
    {"windows", OPT_INT, O(windows), .min = 0, .max = 1000000,
     .help = "> 0: train for the stream: this many windows per epoch,\n"
             "each --window-ms of keywords, unknown words and\n"
             "negatives over noise, --p-keyword of the items\n"
             "keywords; per-frame filler targets and a max-pooled peak\n"
             "of the smoothed keyword posterior after each keyword\n"
             "(--bg-weight, --win-weight; kws/train.h)"},
    {"window-ms", OPT_FLOAT, O(window_ms), .min = 1000, .max = 10000,
     .help = "length of a window"},
    {"p-keyword", OPT_FLOAT, O(p_keyword), .min = 0, .max = 1, .open = OPT_OPEN_MIN,
     .help = "share of a window's items that are keywords"},
    {"negatives", OPT_PATH, O(negatives), .meta = "DIR",
     .help = "negative phrases, a folder per word split by its lists\n"
             "(the training words go into the windows)"},
    {"mine-every", OPT_INT, O(mine_every), .min = 0, .max = 100000,
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
             "needs --no-bn (its BatchNorm is folded into its weights)\n"
             "and may be widened: --hidden as wide or wider, the new\n"
             "units starting with no outgoing weights"},
    {NULL}};

static const struct opt_tool train_tool = {
    "kwsd-train", "usage: kwsd-train --data DIR --labels a,b,... --out FILE.kwsm [options]\n",
    train_opts};

/* ==== Progress ==== */

static void print_note(void *data, const char *line) {
    (void)data;
    fprintf(stderr, "%s\n", line);
}

static void print_epoch(void *data, const struct train_epoch_report *e) {
    char vbuf[64] = "", sbuf[96] = "", tbuf[48] = "";
    (void)data;
    if (e->teacher_agree >= 0.0)
        snprintf(tbuf, sizeof tbuf, " (teacher %.2f %%)", 100.0 * e->teacher_agree);
    if (e->val_weights >= 0.0)
        snprintf(vbuf, sizeof vbuf, " (weights %.2f %%)", 100.0 * e->val_weights);
    if (e->stream)
        snprintf(sbuf, sizeof sbuf, "  stream %.1f %% at %.1f/h (thr %.3f)", 100.0 * e->stream_hit,
                 e->stream_fa_h, (double)e->stream_thr);
    fprintf(stderr,
            "epoch %3d/%d  loss %.4f  train %.2f %%%s  val %.2f %%%s%s  sigma %.3f  lr %.2e  "
            "rate %.3f  %.1f s (render %.1f s)%s\n",
            e->epoch, e->epochs, e->loss, 100.0 * e->train_acc, tbuf, 100.0 * e->val_acc, vbuf,
            sbuf, (double)e->sigma, (double)e->lr, e->rate, e->seconds, e->render_seconds,
            e->best ? "  *" : "");
}

int main(int argc, char **argv) {
    struct train_recipe r;
    train_recipe_default(&r);
    int rc = opt_parse(&train_tool, &r, argc, argv);
    if (rc != OPT_OK)
        return rc == OPT_EXIT ? 0 : 2;
    const struct train_progress progress = {NULL, print_note, print_epoch};
    char msg[1024] = "";
    rc = train_run(&r, &progress, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "kwsd-train: %s\n", msg);
        return rc == KWS_ECONFIG ? 2 : 1;
    }
    return 0;
}

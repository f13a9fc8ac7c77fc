/* kws/dataset.h: folder-per-label speech data sets and training examples.
 *
 * Reads a data set in the Speech Commands layout: one folder per label with
 * sound files inside, validation_list.txt and testing_list.txt naming the
 * validation and test clips by "label/file" (every other clip is training).
 * All clips are decoded once, resampled to the front end's rate and kept in
 * memory with the word's start and end found from the frame energy.
 *
 * dataset_render turns one clip into one training or evaluation example:
 * the clip placed in a window of T frames at a random shift and gain, mixed
 * with background noise (the training split's _silence_ clips, or any noise
 * folder added with dataset_add_noise) at a random SNR, run through the
 * model's front end (kws/frontend.h) with warm-up frames in front so the
 * PCEN state is that of a running stream; it also marks the background
 * frames (no word) that the streaming loss targets to the silence class.
 * Every random draw comes from (seed, clip, epoch): renders are reproducible.
 *
 *     struct dataset ds = {0};
 *     dataset_init(&ds, labels, n_labels, 16000);
 *     if (dataset_load(&ds, "/data/speech_commands", -1, msg, sizeof msg) < 0) ...;
 *     dataset_render(&ds, i, &aug, seed, &fe, T, spikes, bg);
 *     dataset_free(&ds);
 *
 * Thread-safety: after loading, a dataset is read-only and dataset_render
 * may run on several threads at once, each with its own struct audio_fe.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRAIN_DATASET_H
#define KWS_TRAIN_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "kws/snn.h"

struct audio_fe;

enum ds_split { DS_TRAIN = 0, DS_VAL = 1, DS_TEST = 2 };

struct ds_clip {
    float *x; /* (n) samples at ds->rate */
    int32_t n;
    int16_t label;   /* class index */
    int8_t split;    /* enum ds_split */
    int8_t source;   /* index of the folder it came from (dataset_load call order) */
    int8_t negative; /* 1: a negative phrase (dataset_load_negatives), class _unknown_ */
    int32_t on, off; /* word start and end, samples (whole clip for silence) */
    char name[96];   /* "label/file.wav" */
};

struct dataset {
    int rate; /* Hz of every stored clip */
    int n_classes;
    char labels[SNN_MAX_CLASSES][SNN_LABEL_LEN];
    int sil_class; /* index of "_silence_" or -1 */
    int unk_class; /* index of "_unknown_" or -1 */
    struct ds_clip *clips;
    size_t n_clips, cap;
    float **noise; /* background noise recordings at rate */
    int32_t *noise_n;
    size_t n_noise;
    int n_sources;
};

/* Augmentation of dataset_render; zero fields switch a step off. */
struct ds_aug {
    float shift_ms;               /* word moved by U(-shift, +shift) around its place */
    float gain_db_lo, gain_db_hi; /* word gain, dB */
    float snr_db_lo, snr_db_hi;   /* noise level relative to the word, dB */
    float p_noise;                /* probability of mixing noise in a word example */
    float sil_db_lo, sil_db_hi;   /* gain of silence-class clips, dB */
    int warm_frames; /* frames of background rendered (and dropped) before the window */
    int hold_frames; /* frames after the word's end still counted as word (not background) */
    int center;      /* 1: centre the word in the window; 0: keep the clip's own offset */
    float speed_lo, speed_hi; /* word played at a speed factor U(lo, hi) (pitch and tempo, like
                               * sox speed; linear interpolation); 0 or 1: unchanged */
    int ctx_frames; /* > 0: the first ctx_frames of the T are context: the example's word is
                     * placed in the last T - ctx_frames, and with probability p_ctx_word
                     * another training word (any label but silence) ends in the context's
                     * second half, so the network learns to return to silence after a word */
    float p_ctx_word;
    float p_ctx_cold; /* with this probability the context (and the front end's warm-up) is
                       * digital silence instead: the network starts the word cold, as in a
                       * clip evaluated on its own */
    float trim_ms;    /* > 0: with probability 1/2 the word's first U(0, trim_ms) ms are muted (5 ms
                       * fade-in), as when a recording cuts a word's onset */
    float tilt;    /* > 0: the whole window goes through y[n] = (x[n] - a x[n-1]) / (1 + |a|) with
                    * a = U(-tilt, +tilt): a random spectral tilt (high frequencies up for a > 0,
                    * down for a < 0), as between microphones and voices */
    float floor_p; /* > 0: with this probability white noise at U(floor_db_lo, floor_db_hi) dBFS
                    * RMS is added to the whole window (silence examples too), as a microphone
                    * preamp's hiss or a converter's dither: PCEN lifts any steady noise to the
                    * same level, so the network must learn that hiss alone is silence */
    float floor_db_lo, floor_db_hi;
    float p_reverb; /* > 0: with this probability the speech of an example (before its noise)
                     * is put in a synthetic room (kws/room.h) with a tail of rt60 seconds and
                     * a direct-to-reverberant ratio of drr_db, each drawn from its range */
    float rt60_lo, rt60_hi, drr_db_lo, drr_db_hi;
    int fmask_n, fmask_w; /* SpecAugment on the spikes: fmask_n times, U{0..fmask_w} adjacent
                           * mel bands (all their levels) are silenced for the whole window */
    int tmask_n, tmask_w; /* tmask_n times, U{0..tmask_w} adjacent frames carry no spikes */
};

/* Sets the defaults used for training (shift 100 ms, gain -6..+6 dB, SNR
 * 0..25 dB with probability 0.8, warm-up 30 frames, hold 30 frames). */
void dataset_aug_default(struct ds_aug *aug);
/* No augmentation: no shift, unit gain, no added noise (evaluation). */
void dataset_aug_none(struct ds_aug *aug);

/* Prepares an empty data set for the given class labels; a label spelled
 * "_silence_" or "_unknown_" is recognised as such. */
int dataset_init(struct dataset *ds, const char *const *labels, int n_labels, int rate);

/* Loads every folder under root whose name is one of the labels. Clips named
 * in root/validation_list.txt or root/testing_list.txt go to those splits,
 * the rest to training; force_split >= 0 puts every clip of root in that
 * split instead (used for synthetic sets). Training-split _silence_ clips are
 * also added as background noise. Returns 0 or a negative code with the
 * reason in msg (-ENOENT for a missing root, KWS_EDATASET for no clips). */
int dataset_load(struct dataset *ds, const char *root, int force_split, char *msg, size_t msglen);

/* Loads a folder of negative material: every sub-folder of root is one word
 * or phrase that is no keyword, and its clips join the set as class
 * _unknown_ with ds_clip.negative set (whole phrases, several seconds each;
 * their on/off span all their speech). root/validation_list.txt and
 * root/testing_list.txt split them (by word); force_split >= 0 puts every
 * clip in that split, and a folder without list files goes to training.
 * Needs an _unknown_ label (KWS_EBADFIELD); -ENOENT when root is no folder. */
int dataset_load_negatives(struct dataset *ds, const char *root, int force_split, char *msg,
                           size_t msglen);

/* Adds every sound file in dir as background noise. */
int dataset_add_noise(struct dataset *ds, const char *dir, char *msg, size_t msglen);

void dataset_free(struct dataset *ds);

/* Number of clips in a split (split < 0: all); fills idx (may be NULL) in load order. */
size_t dataset_split(const struct dataset *ds, int split, int source, size_t *idx);

/* Renders clip i into spikes (T, n_out of fe) and bg (T) (may be NULL): 1 on
 * background frames (before the word, and after its end + hold_frames; every
 * frame of a silence clip), -1 on the word's tail (from its end to end +
 * hold_frames), 0 elsewhere (inside the word, and inside a context word and its
 * hold_frames). seed selects the random draws. fe is reset first.
 * Returns 0 or -ENOMEM. */
int dataset_render(const struct dataset *ds, size_t i, const struct ds_aug *aug, uint64_t seed,
                   struct audio_fe *fe, int T, float *spikes, float *bg);

/* A stream window for the stream loss (kws/train.h, TRAIN_FT_*): items (a
 * keyword, an unknown word, a negative phrase) one after another with gaps,
 * over background noise that runs under the whole window. The pools are clip
 * indices of ds; hard holds negatives the model fired on (mined), drawn with
 * probability p_hard whenever a negative is due. */
struct ds_window {
    int T;                      /* frames of the window (after the warm-up) */
    int lead;                   /* first frames without targets: the network settles */
    float gap_lo_ms, gap_hi_ms; /* pause between items, uniform */
    float p_keyword;            /* share of items that are keywords */
    float p_negative;           /* share of the other items that are negative phrases */
    int peak_before;            /* peak region: frames before the keyword's end */
    int peak_after;             /* and after it */
    float p_cold;               /* share of windows over digital silence: no noise, no hiss,
                                 * as from a muted input or a file padded with zeros */
    const size_t *kw, *unk, *neg, *hard;
    size_t n_kw, n_unk, n_neg, n_hard;
    float p_hard;
};

/* Sets a window of 300 frames with a 50-frame lead, gaps of 100-800 ms,
 * 50 % keywords, half of the rest negatives, a peak region from 10 frames
 * before a keyword's end to 40 after it; the pools stay empty. */
void dataset_window_default(struct ds_window *w);

/* Renders one window into spikes (T, n_out of fe) and per-frame targets
 * ftgt (T): TRAIN_FT_NONE in the lead and on a keyword whose peak region the
 * window cuts, TRAIN_FT_FILL on noise, unknown words and negatives, the
 * keyword's class from 3 frames before its start to the region, and class |
 * TRAIN_FT_PEAK on the region (cut short before the next item starts). Word
 * gain, speed, noise SNR, tilt, hiss and masks come from aug (noise under
 * every window). (seed, stream) select the draws. Returns 0, -ENOMEM, or
 * KWS_EDATASET when the keyword pool is empty. */
int dataset_render_window(const struct dataset *ds, const struct ds_window *w,
                          const struct ds_aug *aug, uint64_t seed, uint64_t stream,
                          struct audio_fe *fe, float *spikes, int16_t *ftgt);

/* Hard negatives: runs model m over each clip idx[0..n) on its own (front
 * end and a kws_listener from rest: network, detector and digital-silence
 * hold as kwsd hears a stream; threshold thr, smoothing smooth_ms)
 * and writes the clips on which a keyword fired to hard (room for n), their
 * count to *n_hard, and each clip's highest smoothed keyword score to peak
 * (n; may be NULL). Runs the clips on OpenMP threads. Returns 0 or -ENOMEM. */
int dataset_mine(const struct snn_model *m, const struct dataset *ds, const size_t *idx, size_t n,
                 float thr, int smooth_ms, size_t *hard, size_t *n_hard, float *peak);

/* How far below a clip's loudest 10 ms frame dataset_load still counts a
 * frame as part of its word, dB. */
#define DATASET_WORD_DB 25.0f

/* The spoken part of x (n samples at rate Hz), from 10 ms frame energies:
 * the frames within range_db of the loudest. max_gap_ms > 0: such frames
 * form runs, joined across quieter stretches of at most max_gap_ms, and the
 * word is the run with the most energy, so a click or a cough apart from it
 * is left out (even when louder); a run beside the word, across a pause of
 * at most max_pause_ms, is part of it when it lasts DATASET_PAUSE_RUN_MS or
 * more and holds DATASET_PAUSE_SHARE of the word's run's energy or more
 * ("view ... glass" said with a pause; a click is too short, a hum too
 * quiet), and so on outwards; max_pause_ms <= max_gap_ms joins none.
 * max_gap_ms <= 0: from the first such frame to the last (dataset_load's
 * rule, with DATASET_WORD_DB). Writes the word's start and end in samples
 * (the whole of x when it is silent or shorter than a frame). */
#define DATASET_PAUSE_RUN_MS 100
#define DATASET_PAUSE_SHARE 0.1
void dataset_find_word(const float *x, int32_t n, int rate, float range_db, int max_gap_ms,
                       int max_pause_ms, int32_t *on, int32_t *off);

/* Renders arbitrary audio x (n samples) through fe into at most T frames
 * (zero-padded); returns the frames produced. */
int dataset_features(struct audio_fe *fe, const float *x, size_t n, int T, float *spikes);

#endif /* KWS_TRAIN_DATASET_H */

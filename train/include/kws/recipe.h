/* kws/recipe.h: a whole training run as one call (the recipe behind kwsd-train).
 *
 * struct train_recipe holds everything a training run is given, in the
 * units a person writes (milliseconds, dB, epochs): the data set and the
 * extra sources, the network's shape, the hyper-parameters, the augmentation,
 * the stream windows, the choice of the kept epoch and the calibration.
 * train_recipe_default fills it with the values every documented command
 * starts from; kwsd-train's options write into it and nothing else holds a
 * default. train_run then does what docs/MODELS.md "What the trainer does"
 * describes:
 *
 *   - loads the data set (with --synth clips made by espeak-ng + sox, --flite
 *     clips made by flite, --extra sets, --noise recordings, --negatives);
 *   - builds the network, or resumes it from the checkpoint (resume), or
 *     starts it from another checkpoint or model file (init);
 *   - per epoch: shuffles the (clip, copy) pairs, or draws stream windows,
 *     renders each batch with augmentation, steps AdamW on the one-cycle
 *     schedule (with the teacher's clip scores when there is a teacher),
 *     validates with the delays rounded (the moving average of the weights
 *     when ema > 0), scores the validation stream when asked, writes the
 *     model when the epoch beats the best one, mines hard negatives, and
 *     saves a checkpoint;
 *   - at the end stores in the model the threshold that keeps the validation
 *     stream within calib_fa false alarms per hour.
 *
 * Everything it has to say goes to the progress callbacks: one report per
 * epoch (struct train_epoch_report, kwsd-train prints it as its epoch line)
 * and notes (one line of text each: the data, the network, mining,
 * calibration). Output depends only on the recipe and the files it reads:
 * the same recipe writes the same model bytes, whatever the number of
 * threads.
 *
 *     struct train_recipe r;
 *     train_recipe_default(&r);
 *     r.data = "/data/speech_commands";
 *     r.out = "/tmp/m.kwsm";
 *     r.n_labels = 3;   // and r.labels[0..3): "yes", "no", "_silence_"
 *     struct train_progress p = {ctx, print_note, print_epoch};
 *     char msg[512];
 *     if (train_run(&r, &p, msg, sizeof msg) < 0) say(msg);
 *
 * Thread-safety: train_run uses OpenMP and sets its thread count (threads >
 * 0); run one at a time per process.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRAIN_RECIPE_H
#define KWS_TRAIN_RECIPE_H

#include <stddef.h>

#include "kws/frontend.h"
#include "kws/snn.h"

/* Which epoch's model is kept. */
enum train_select {
    TRAIN_SELECT_CLIP = 0,   /* the best validation clip accuracy */
    TRAIN_SELECT_STREAM = 1, /* the most validation stream hits within calib_fa per hour */
    TRAIN_SELECT_LAST = 2,   /* the last epoch (with ema: the weight average at the end) */
};

struct train_recipe {
    /* ---- data and files ---- */
    const char *data;      /* folder-per-label data set (Speech Commands layout) */
    const char *out;       /* model file to write */
    const char *ckpt;      /* checkpoint path; NULL: OUT.ckpt */
    const char *synth;     /* espeak-ng clips folder (made if it has no testing_list.txt), or NULL */
    const char *flite;     /* flite clips folder (made if it has no .complete), or NULL */
    const char *extra;     /* another folder-per-label set that all trains, or NULL */
    const char *noise;     /* extra background noise recordings, or NULL */
    const char *negatives; /* negative phrases, a folder per phrase, or NULL */
    const char *teacher;   /* model to distil from, or NULL */
    const char *init;      /* checkpoint or .kwsm to start from, or NULL */
    char labels[SNN_MAX_CLASSES][SNN_LABEL_LEN]; /* the model's classes, in order */
    int n_labels;
    int synth_n;    /* synth: clips per voice and word */
    int synth_unk;  /* synth: non-keyword clips per voice */
    int synth_rate; /* synth, flite: sample rate of the clips made, Hz */
    int max_train;  /* at most this many training clips (0: all) */
    int resume;     /* 1: go on from the checkpoint if it exists */
    int threads;    /* OpenMP threads (0: all cores) */
    int seed;

    /* ---- network ---- */
    int hidden[SNN_MAX_LAYERS], n_hidden; /* neurons per hidden layer */
    int rec[SNN_MAX_LAYERS], n_rec;       /* enum snn_rec per layer; n_rec == n_hidden */
    int k, conv_ch, d_max, in_delay;      /* conv taps, conv channels, delays (steps) */
    float beta0, beta_rec, out_beta, out_gain; /* membrane decays; readout gain */
    float fmax;                     /* mel filterbank top, Hz (0: the front end's) */
    float pcen_release;             /* PCEN falling coefficient (0: the rising one) */
    float enc[KWS_ENC_MAX_LEVELS];  /* level-encoder thresholds */
    int n_enc;                      /* 0: the front end's */
    int enc_kind;                   /* enum kws_encoder_kind (level; ramp: graded steps) */

    /* ---- optimisation ---- */
    int epochs, batch, copies, T; /* T: frames per clip example */
    float lr, lr_delay, wd, drop_ff, drop_rec, sigma_init, sigma_decay;
    int surrogate; /* enum train_surrogate */
    float sg_alpha;
    int no_detach, no_bn;
    float delay_init[2]; /* initial delays, steps */
    float bg_weight, fg_weight, win_weight, fa_weight, ema;
    int freeze; /* the first freeze hidden layers are not trained (with init: kept as loaded) */
    int tie_ch, tie_half;     /* > 0: the first layer shared across mel bands (train_net_tie) */
    float kd_weight, kd_temp; /* distillation (with teacher) */

    /* ---- augmentation (kws/dataset.h struct ds_aug) ---- */
    float snr[2], shift_ms, speed[2], context_ms, p_context, p_cold, tilt, trim_ms;
    float floor_p, floor_db[2];
    float reverb, rt60[2]; /* share of examples put in a synthetic room; its tail, s */
    int fmask[2], tmask[2]; /* N masks of up to W bands / frames */

    /* ---- stream windows (kws/dataset.h struct ds_window) ---- */
    int windows;     /* > 0: this many windows per epoch instead of clips */
    float window_ms; /* a window's length */
    float p_keyword; /* share of a window's items that are keywords */
    int mine_every;  /* > 0: mine hard negatives every this many epochs */

    /* ---- choice and calibration ---- */
    int stream_val;   /* 1: score the validation stream every epoch */
    int select;       /* enum train_select (TRAIN_SELECT_STREAM implies stream_val) */
    float calib_fa;   /* false alarms per hour the stored threshold allows */
    int calib_passes; /* passes of the validation stream */
};

/* One epoch's figures, as kwsd-train prints them. */
struct train_epoch_report {
    int epoch, epochs;     /* 1-based epoch, and how many the run has */
    double loss;           /* mean training loss per step */
    double train_acc;      /* training clips (or window peaks) right, fraction */
    double teacher_agree;  /* fraction of the examples the teacher got right; < 0: no teacher */
    double val_acc;        /* validation clip accuracy of the kept weights (the average with ema) */
    double val_weights;    /* with ema: of the live weights; < 0 without */
    int stream;            /* 1: the stream figures below are set */
    double stream_hit;     /* validation stream hit rate within calib_fa, fraction */
    double stream_fa_h;    /* its false alarms per hour */
    float stream_thr;      /* at this threshold */
    float sigma, lr;       /* delay-kernel width and learning rate of the epoch */
    double rate;           /* hidden spikes per neuron and frame */
    double seconds, render_seconds; /* wall time of the epoch, of its rendering */
    int best;              /* 1: the best so far, written to out */
};

/* Where train_run reports. Any callback may be NULL. */
struct train_progress {
    void *data;                                                   /* passed back */
    void (*note)(void *data, const char *line);                   /* a line, no '\n' */
    void (*epoch)(void *data, const struct train_epoch_report *e); /* after each epoch */
};

/* Fills r with the defaults of every documented command (no data, out or
 * labels: those have none). */
void train_recipe_default(struct train_recipe *r);

/* Runs the training r describes (see the top of this file). Returns 0 when
 * the model is written and calibrated; KWS_ECONFIG when the recipe does not
 * make a network, front end or data set (a wrong combination of values);
 * another negative code when a file or the memory fails. On failure msg
 * (msglen bytes) says what and where. */
int train_run(const struct train_recipe *r, const struct train_progress *p, char *msg,
              size_t msglen);

#endif /* KWS_TRAIN_RECIPE_H */

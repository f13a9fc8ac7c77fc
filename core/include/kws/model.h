/* kws/model.h: the settings a model carries besides its weights.
 *
 * A model file records the front end and spike encoder it was trained with,
 * so the daemon, the trainer and the evaluator always build the same front
 * end from the model (DESIGN.md). This header is plain data shared by core/
 * (which stores it in .kwsm files) and audio/ (which builds the front end),
 * with the one range check both run: the model loader refuses a front end
 * that audio/ could not build, and audio/ checks again before building.
 *
 *     char msg[128];
 *     if (kws_frontend_cfg_check(&model.cfg.fe, msg, sizeof msg) < 0) puts(msg);
 *     int n_in = kws_frontend_n_out(&model.cfg.fe); // spike channels per frame
 *
 * Thread-safety: plain data and pure functions, callable from any thread.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_CORE_MODEL_H
#define KWS_CORE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define KWS_ENC_MAX_LEVELS 8

enum kws_encoder_kind {
    KWS_ENC_LEVEL = 0, /* band value crossing level thresholds: one channel per (band, level) */
    KWS_ENC_DELTA = 1, /* up/down channels per band on the frame-to-frame change */
    KWS_ENC_RAMP = 2,  /* the level encoder's channels as soft steps: graded 0..1 around each
                          threshold, so the first layer keeps the feature's value */
};

/* Front end and spike encoder settings (all fields fixed-size, stored verbatim
 * in the model header as little-endian int32/float32). */
struct kws_frontend_cfg {
    int32_t sample_rate;                  /* Hz the network's features are computed at (16000) */
    int32_t win_len;                      /* analysis window, samples (400 = 25 ms Hann) */
    int32_t hop;                          /* frame hop, samples (160 = 10 ms) */
    int32_t n_fft;                        /* FFT size (512) */
    int32_t n_mels;                       /* mel bands F (40) */
    float fmin, fmax;                     /* mel filterbank edges, Hz */
    int32_t pcen;                         /* 1: PCEN gain normalisation, 0: plain log-mel */
    float pcen_s;                         /* PCEN smoother coefficient per frame */
    float pcen_alpha;                     /* PCEN gain exponent */
    float pcen_delta;                     /* PCEN bias */
    float pcen_r;                         /* PCEN root */
    float pcen_eps;                       /* PCEN floor */
    int32_t enc_kind;                     /* enum kws_encoder_kind */
    int32_t enc_levels;                   /* spike channels per band (<= KWS_ENC_MAX_LEVELS) */
    float enc_thresh[KWS_ENC_MAX_LEVELS]; /* per-level thresholds on the normalised feature */
    float feat_mean;                      /* feature standardisation applied before the encoder */
    float feat_scale;
    float pcen_release; /* PCEN smoother coefficient while energy falls; 0: pcen_s */
};

/* Checks every field of cfg for range and consistency (sample rate, FFT
 * size even, window, hop, bands, PCEN, encoder), the fields the front end
 * reads. Returns 0, or KWS_EBADFIELD with "field: reason" in msg (msg may be
 * NULL), naming the first bad field. */
int kws_frontend_cfg_check(const struct kws_frontend_cfg *cfg, char *msg, size_t msglen);

/* Spike channels per frame, the network's input count n_in: n_mels *
 * enc_levels (e.g. 40 * 4 = 160). cfg must pass kws_frontend_cfg_check. */
int kws_frontend_n_out(const struct kws_frontend_cfg *cfg);

#endif /* KWS_CORE_MODEL_H */

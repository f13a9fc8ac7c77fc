/* kws/train.h: surrogate-gradient BPTT training of the conv-delay SNN.
 *
 * The trainer holds the network of kws/snn.h in training form: every hidden
 * layer is Linear -> BatchNorm over (B*T) -> LIF, recurrent layers add a ring
 * of arrivals fed through learned real-valued axonal delays spread by a
 * triangle kernel of half-width s = 1 + sigma (reference/conv-delrec.md
 * section 3.1), and the readout is a non-spiking leaky integrator. The
 * spike's Heaviside is differentiated with a surrogate (ATan or Triangle, see
 * train_surrogate). Parameters, gradients and the AdamW moments share one
 * flat layout (struct train_params); the activations of a (B,T) batch live in
 * a second block allocated on the first forward and locked to that (B,T).
 *
 *     struct train_net net = {0};
 *     train_net_init(&net, &cfg, &hp);          // cfg: topology, hp: hyper-parameters
 *     for each step:
 *         train_net_forward(&net, x, labels, bg, B, T, 1);   // training mode
 *         train_net_zero_grad(&net);
 *         train_net_backward(&net);
 *         train_net_adamw(&net, lr, lr_delay);
 *     train_net_export(&net, &model);          // BN folded, delays rounded
 *     train_net_free(&net);
 *
 * Loss (per sample, averaged over the batch): the clip term of the reference
 * (P = sum_t softmax(v_out[t]) used as logits, -log softmax(P)[y]; the sum
 * starts at frame net->clip_t0, so a caller can put context in front) plus two
 * per-frame terms for streaming: bg_weight * (1/T) * sum over frames with
 * bg[t] > 0 (background, no word) of bg[t] * (-log softmax(v_out[t])[sil]),
 * so the readout stays on the silence class between words, and fg_weight *
 * (1/T) * sum over frames with bg[t] < 0 (just after the word) of
 * -bg[t] * (-log softmax(v_out[t])[y]), so the per-frame posterior that the
 * detector thresholds rises right after the word; and win_weight * -log((1/n)
 * sum over the n frames with bg[t] < 0 of softmax(v_out[t])[y]), the
 * detector's smoothed score itself over the word's tail. With a teacher
 * (net->kd_p, another model's clip scores P for the same examples) a
 * distillation term adds kd_weight * tau^2 * KL(softmax(P_teacher / tau) ||
 * softmax(P / tau)), tau = kd_temp: the student learns the teacher's ranking
 * of the wrong classes, not only the label.
 *
 * Thread-safety: a train_net belongs to one thread; its ops use OpenMP
 * internally. Every reduction runs in a fixed order, so results for a given
 * seed do not depend on the number of threads.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_TRAIN_TRAIN_H
#define KWS_TRAIN_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "kws/snn.h"

enum train_surrogate {
    TRAIN_SG_ATAN = 0,     /* dS/dx = (a/2) / (1 + (pi*a*x/2)^2), x = H - thresh */
    TRAIN_SG_TRIANGLE = 1, /* dS/dx = max(0, a - |x|) / a^2 */
};

/* Training hyper-parameters (defaults from train_hparams_default). */
struct train_hparams {
    int32_t surrogate;    /* enum train_surrogate */
    float sg_alpha;       /* surrogate slope/width a */
    int32_t detach_reset; /* 1: the reset is not differentiated */
    int32_t smooth;       /* 1 (gradient checks only): S = 1/2 + atan(pi a x / 2) / pi instead
                           * of the Heaviside; its exact derivative is the ATan surrogate */
    int32_t use_bn;       /* 1: BatchNorm after each hidden Linear */
    float bn_eps;         /* 1e-5 */
    float bn_momentum;    /* running-statistics momentum, 0.1 */
    float drop_ff;        /* dropout on each hidden layer's spikes */
    float drop_rec;       /* dropout on the recurrent arrivals, fresh mask per step */
    float wd;             /* AdamW weight decay for Linear weights and recurrent weights */
    float beta1, beta2, adam_eps;
    float delay_init_lo, delay_init_hi; /* delays start uniform in [lo, hi] steps */
    float sigma;            /* current triangle spread; the kernel half-width is 1 + sigma */
    float bg_weight;        /* weight of the per-frame silence term (frames with bg > 0) */
    float fg_weight;        /* weight of the per-frame label term (frames with bg < 0) */
    float win_weight;       /* weight of the window term: -log of the mean label posterior over the
                             * frames with bg < 0, the window the daemon's detector averages */
    float fa_weight;        /* weight of the stream loss's false-alarm term (TRAIN_FT_*); 0: none */
    float ema_decay;        /* > 0: keep an exponential moving average of the parameters and BN
                             * running statistics, a <- d a + (1 - d) p after every step with
                             * d = min(ema_decay, (1 + step) / (10 + step)); 0: none */
    float kd_weight;        /* weight of the distillation term (needs net->kd_p): kd_temp^2 *
                             * KL(softmax(P_teacher / kd_temp) || softmax(P / kd_temp)) */
    float kd_temp;          /* its temperature (> 0) */
    float in_delay_init_hi; /* input delays start uniform in [0, this] steps */
    int32_t sil_class;      /* class index the background frames target (-1: none) */
    int32_t freeze;         /* the first freeze hidden layers keep their parameters (their
                             * gradients are computed, never applied); n_layers: only the
                             * readout learns */
    int32_t tie_ch;         /* > 0: the first layer's weights are shared across mel bands
                             * (train_net_tie): tie_ch channels of C_0 / tie_ch positions,
                             * each position reading the bands within tie_half of its own */
    int32_t tie_half;       /* 0..TRAIN_TIE_MAX_HALF bands each side */
    uint64_t seed;
};

void train_hparams_default(struct train_hparams *hp);

/* The widest band-shared kernel (train_hparams.tie_half). */
#define TRAIN_TIE_MAX_HALF 15

/* Pointers into one flat block (params, grads, Adam m and v share it).
 * Order: for each layer l: w_in, b_in, bn_g, bn_b, w_rec, delay; then w_out, b_out. */
struct train_params {
    float *w_in[SNN_MAX_LAYERS];     /* (C_l, C_{l-1}) */
    float *b_in[SNN_MAX_LAYERS];     /* (C_l) */
    float *bn_g[SNN_MAX_LAYERS];     /* (C_l) BN scale (NULL without BN) */
    float *bn_b[SNN_MAX_LAYERS];     /* (C_l) BN shift (NULL without BN) */
    float *w_rec[SNN_MAX_LAYERS];    /* conv (K) or dense (C_l, C_l); NULL if not recurrent */
    float *delay[SNN_MAX_LAYERS];    /* (C_l) real-valued delays; NULL if not recurrent */
    float *in_delay[SNN_MAX_LAYERS]; /* (C_{l-1}) input delays; NULL unless in_d_max > 0 */
    float *w_out;                    /* (n_classes, C_{L-1}) */
    float *b_out;                    /* (n_classes) */
};

/* Activations of one hidden layer for a (B,T) batch. */
struct train_layer_acts {
    const float *x; /* (B,T,C_{l-1}) layer input (l=0: the caller's features) */
    float *xd;      /* (B,T,C_{l-1}) input after its delays (in_d_max > 0), else NULL */
    float *a;       /* (B,T,C) Linear output */
    float *xhat;    /* (B,T,C) BN-normalised a (NULL without BN) */
    float *q;       /* (B,T,C) delayed spike trains (recurrent layers) */
    float *r;       /* (B,T,C) recurrent arrivals W*q (recurrent layers) */
    float *rmask;   /* (B,T,C) recurrent dropout multipliers (0 or 1/(1-p)) */
    float *h;       /* (B,T,C) membrane before reset */
    float *s;       /* (B,T,C) spikes 0/1 */
    float *sd;      /* (B,T,C) spikes after ff dropout: the next layer's input */
    float *smask;   /* (B,T,C) ff dropout multipliers */
    float *bn_mean; /* (C) batch statistics */
    float *bn_istd; /* (C) */
};

struct train_net {
    struct snn_cfg cfg;
    struct train_hparams hp;
    size_t n_params;
    float *mem; /* 4 * n_params: params, grads, m, v */
    struct train_params p, g, m, v;
    float *bn_rmean[SNN_MAX_LAYERS]; /* (C_l) running mean */
    float *bn_rvar[SNN_MAX_LAYERS];  /* (C_l) running variance */
    float *stats_mem;
    float *ema;   /* hp.ema_decay > 0: averaged parameters (n_params) then BN running
                   * statistics; NULL otherwise */
    int64_t step; /* optimizer steps taken */
    float best;   /* best validation accuracy so far (kept in checkpoints) */
    /* Batch state: locked to (B,T) on the first forward. */
    int B, T;
    int train_mode; /* mode of the last forward */
    float *act_mem;
    struct train_layer_acts act[SNN_MAX_LAYERS];
    float *vo;                     /* (B,T,n_classes) readout potentials */
    float *po;                     /* (B,T,n_classes) per-frame softmax */
    float *wt;                     /* scratch: transposed weights */
    float *scratch[4];             /* (B,T,C_max) backward buffers */
    float *part;                   /* (B, C_max + SNN_MAX_K) per-clip gradient partials */
    double *bn_part;               /* BatchNorm sums: (2 C_max) totals + (B*T/64, 2 C_max) chunks */
    float *tap_w[SNN_MAX_LAYERS];  /* (C, ntap_cap) delay kernel taps of each sender */
    float *tap_dw[SNN_MAX_LAYERS]; /* (C, ntap_cap) their derivative w.r.t. the delay */
    int32_t *tap_lo[SNN_MAX_LAYERS]; /* (C) first non-zero tap offset k of each sender */
    int32_t *tap_n[SNN_MAX_LAYERS];  /* (C) its non-zero taps (the rest of the row is 0) */
    float *itap_w[SNN_MAX_LAYERS];   /* (C_{l-1}, ntap_cap) input delay taps */
    float *itap_dw[SNN_MAX_LAYERS];
    int32_t *itap_lo[SNN_MAX_LAYERS];
    int32_t *itap_n[SNN_MAX_LAYERS];
    int ntap_cap;          /* taps per sender the tables can hold */
    int ntap;              /* taps per sender for the current sigma (<= ntap_cap) */
    int clip_t0;           /* the clip term sums frames t >= clip_t0 (set by the caller;
                            * frames before it are context) */
    const int32_t *labels; /* (B) of the last forward */
    const float *bg;       /* (B,T) background-frame flags of the last forward, or NULL */
    const int16_t *ftgt;   /* (B,T) per-frame targets of stream windows (TRAIN_FT_*), read by
                            * the forward and the backward (set by the caller; NULL: the
                            * clip loss with labels) */
    int peak_w;            /* frames the stream loss's peak term averages (the detector's
                            * smoothing window); 0: 30 */
    int n_regions;         /* keyword peak regions in the last stream forward */
    const float *kd_p;     /* (B,n_classes) teacher clip scores P of the batch, read by
                            * the training forward and backward (set by the caller;
                            * NULL: no distillation term) */
    double loss;           /* mean loss of the last forward */
    int n_correct;         /* clips whose argmax P equals the label */
    uint64_t n_spikes;     /* hidden spikes in the last forward */
};

/* Per-frame targets of a stream window (net->ftgt). A frame holds one of:
 * TRAIN_FT_NONE, no loss (the network settles at the window's start);
 * TRAIN_FT_FILL, filler: the posteriors of the classes that never fire
 * (labels starting with '_') should take all the mass; c in [0, n_classes),
 * inside keyword c: c or filler; c | TRAIN_FT_PEAK, keyword c's region around
 * the word's end, a maximal run of equal codes, where c is also allowed and
 * its smoothed posterior must peak. The stream loss, per window and averaged
 * over the batch, is bg_weight * (1/T) * sum over frames of -log(sum of the
 * allowed posteriors), plus win_weight * sum over regions of -log(max over
 * the region of the smoothed posterior of c), smoothed as the detector does:
 * the mean of the last peak_w frames. Max-pooling lets the network choose
 * where in the region it fires, and nothing rewards it for firing anywhere
 * else. With fa_weight > 0 a false-alarm term adds, per window and keyword
 * c, fa_weight * -log(1 - the highest smoothed posterior of c over the
 * frames whose whole smoothing window forbids c): the detector's worst
 * false alarm of c there (during another keyword, an unknown word, a
 * negative or noise), max-pooled as the peak is, where the filler term
 * gives one such moment only 1/T of its weight. Frames that allow c or
 * have no target (the lead, a cut word) never count, nor do the frames
 * whose smoothing window reaches back into them. n_correct counts regions
 * whose peak reaches 0.5. */
#define TRAIN_FT_NONE (-2)
#define TRAIN_FT_FILL (-1)
#define TRAIN_FT_PEAK 0x100

/* Creates the network for cfg (layers, classes, neuron constants) and draws
 * the initial parameters from hp.seed: Linear weights U(+-sqrt(6/fan_in)),
 * biases U(+-1/sqrt(fan_in)), conv taps U(+-1/sqrt(K)), dense recurrent
 * weights orthogonal-like U(+-sqrt(3/C)), delays U[lo, hi], BN g=1, b=0.
 * Returns 0, -ENOMEM or KWS_EBADFIELD. */
int train_net_init(struct train_net *net, const struct snn_cfg *cfg,
                   const struct train_hparams *hp);

/* Band-shared first layer (hp.tie_ch > 0): a 1-D convolution over the mel
 * bands, written into the dense first Linear the engine runs. Neuron i =
 * g P + p (P = C_0 / tie_ch positions) is centred on band c_p = (2p + 1) F /
 * (2P) of the F = n_in / enc_levels bands, and reads band c_p + o, level v
 * (input (c_p + o) * enc_levels + v, the front end's band-major order) with
 * weight k_g[o][v] for |o| <= tie_half, 0 beyond; its bias is channel g's.
 * sum = 1 makes every tied group of w and b (the first layer's Linear
 * weights and biases) hold the group's sum (a gradient, so shared
 * parameters get the sum of their uses' gradients and AdamW keeps the
 * group equal; train_net_backward ends with it); sum = 0 gives each group
 * the value of its first member (drawing the kernel at initialisation).
 * Entries beyond the kernel become 0 either way. No-op without tie_ch. */
void train_net_tie(const struct train_net *net, float *w, float *b, int sum);

void train_net_free(struct train_net *net);

/* Number of trainable floats a configuration has in training form. */
size_t train_param_count(const struct snn_cfg *cfg, int use_bn);

/* Runs the network on a batch.
 * x: (B,T,n_in) input spike counts; labels: (B) class per clip (may be NULL
 * in eval mode, or with net->ftgt set: the stream loss); bg: (B,T) frame weights (> 0 background, <
 * 0 word tail, 0 neither; see the loss above) or NULL. train: 1 uses batch BN statistics (and
 * updates the running ones) and dropout; 0 uses the running statistics, no dropout. x, labels and
 * bg must stay valid until train_net_backward returns. The readout potentials are in net->vo, the
 * per-frame softmax in net->po. Returns 0 or -ENOMEM (first call, or a different B/T:
 * reallocation). */
int train_net_forward(struct train_net *net, const float *x, const int32_t *labels, const float *bg,
                      int B, int T, int train);

void train_net_zero_grad(struct train_net *net);

/* Accumulates the gradients of the last training forward into net->g. */
void train_net_backward(struct train_net *net);

/* One AdamW step: Linear weights and recurrent weights decay by wd, biases,
 * BN and delays do not; delays use lr_delay and are clamped to [0, d_max]. */
void train_net_adamw(struct train_net *net, float lr, float lr_delay);

/* Exchanges the parameters and BN running statistics with their moving
 * average (hp.ema_decay > 0; no-op otherwise). Call again to swap back. */
void train_net_ema_swap(struct train_net *net);

/* Floats of BatchNorm running statistics (mean and variance per hidden neuron). */
size_t train_stat_count(const struct snn_cfg *cfg);

/* Floats in the moving average: n_params + the BN running statistics. */
size_t train_net_ema_count(const struct train_net *net);

/* Rounds the delays to integers in place (reference section 3.3). */
void train_net_round_delays(struct train_net *net);

/* Builds an inference model: BN folded into w_in/b_in, delays rounded, the
 * cfg copied. model must be zeroed; free it with snn_model_free. */
int train_net_export(const struct train_net *net, struct snn_model *model);

/* Class scores of a clip from readout potentials (T, n_classes): P = sum_t
 * softmax(v[t]); writes P to score (n_classes) and returns argmax. */
int train_clip_predict(const float *vo, int T, int n_classes, float *score);

/* Surrogate derivative dS/dH at x = H - thresh (exposed for tests). */
float train_surrogate_grad(int kind, float alpha, float x);

/* Triangle delay kernel weight of tap k for delay d and spread sigma (s = 1 + sigma):
 * max(0, s - |k - 1 - d|) / s^2, and its derivative with respect to d. */
float train_delay_kernel(float d, float sigma, int k);
float train_delay_kernel_dd(float d, float sigma, int k);

/* ==== Checkpoints (trainer state: own magic "KWT1", atomic write) ==== */

/* Writes cfg, hp, parameters, Adam moments, BN statistics, step, best and
 * the caller's epoch counter. */
int train_checkpoint_save(const struct train_net *net, int epoch, const char *path);
/* Restores a checkpoint into a zeroed net. Writes the epoch to *epoch. */
int train_checkpoint_load(struct train_net *net, int *epoch, const char *path, char *msg,
                          size_t msglen);
/* Starts a network made by train_net_init from another training's checkpoint
 * (fine-tuning): copies its hidden layers and BatchNorm statistics (the moving
 * average when the checkpoint keeps one), and its readout too when the labels
 * are the same; the optimizer starts fresh. The input, hidden layers, front
 * end and BatchNorm use must match. Returns 0 (msg then says what was taken),
 * a checkpoint_load error, or KWS_EBADFIELD with msg naming what differs. */
int train_net_init_from(struct train_net *net, const char *path, char *msg, size_t msglen);

/* train_net_init_from with a model file (.kwsm) instead of a checkpoint:
 * its hidden layers (integer delays), and its readout when the labels are
 * the same. A model file has BatchNorm folded into its Linear weights, so
 * the network must be made without it (hp.use_bn = 0). The network may be
 * wider (each hidden layer at least the model's, all else the same; conv
 * channels of one group only): the model's units are then each layer's
 * first, and the new units keep their random input weights while every
 * weight leaving them (the next layer's, a dense recurrence's, the
 * readout's) starts at 0, so they change nothing until they learn (with a
 * conv recurrence, only through the kernel at the boundary). Returns 0,
 * snn_model_load's error, or KWS_EBADFIELD with msg naming what differs. */
int train_net_init_from_model(struct train_net *net, const char *path, char *msg, size_t msglen);

/* Learning-rate schedules, t in [0, 1] the fraction of training done. */
float train_lr_onecycle(float max_lr, float t);
float train_lr_cosine(float lr, float t);

#endif /* KWS_TRAIN_TRAIN_H */

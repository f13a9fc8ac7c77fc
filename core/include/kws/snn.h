/* kws/snn.h: the conv-delay recurrent spiking network, frame by frame.
 *
 * The network of Zebendo, Cicciarella and Rossi (arXiv 2604.15997): hidden
 * layers of LIF neurons fed by a Linear layer, some with recurrent
 * connections that carry learned axonal delays, and a non-spiking leaky
 * readout. A recurrent layer is either
 *   - conv-delay: ONE K-tap kernel w over the neuron axis plus ONE integer
 *     delay per sending neuron: a spike of neuron j at step t adds w[m] to
 *     neuron i = j + (K-1)/2 - m at step t + 1 + d_j. With G > 1 conv
 *     channels the C neurons are G channels of P = C/G positions (neuron
 *     i = g*P + p) and the kernel is (G, G, K): a spike of (g', p') adds
 *     w[g][g'][m] to (g, p' + (K-1)/2 - m) for every g; or
 *   - dense (DelRec): an N x N matrix W[i][j] plus one delay per sender j.
 * Delayed spikes wait in a ring of D = d_max + 2 steps (conv-delay: the
 * summed arrivals per neuron; dense: the list of senders due each step). A
 * layer after the first may also delay its inputs (in_d_max > 0): one
 * integer delay e_j per input channel, so a spike of input j at step t
 * reaches the layer's Linear at step t + e_j (a ring of in_d_max + 1 steps
 * listing the inputs due).
 *
 * Dimension letters, used in every shape comment of kwsd:
 *   B batch, T steps (frames), F mel bins, C channels (neurons of a layer),
 *   K conv kernel taps, G conv channels, P = C/G positions per conv channel,
 *   D ring length (max delay + 2), L layers.
 *
 * Per step, for layer l with input x (spike counts or the previous layer's
 * spikes):  I = W_in x + b_in + (delayed recurrent arrivals);
 * H = beta*V + gain*I;  S = (H >= thresh);  V = H*(1-S) (hard reset) or
 * H - thresh*S (soft); then each spike is sent on into the ring. Readout:
 * v_out = out_beta*v_out + out_gain*(W_out s_L + b_out).
 *
 *     struct snn_model m = {0};
 *     struct snn_state st = {0};
 *     char msg[256];
 *     if (snn_model_load(&m, "commands.kwsm", msg, sizeof msg) < 0) { puts(msg); ... }
 *     snn_state_init(&st, &m);
 *     for each frame: snn_step(&m, &st, spikes, v_out);
 *     snn_state_free(&st); snn_model_free(&m);
 *
 * Thread-safety: a model is immutable after load and may be shared by any
 * number of threads; a state belongs to one stream and one thread.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_CORE_SNN_H
#define KWS_CORE_SNN_H

#include <stddef.h>
#include <stdint.h>

#include "kws/model.h"
#include "kws/verify.h"

#define SNN_MAX_LAYERS 4
#define SNN_MAX_CLASSES 32
#define SNN_LABEL_LEN 32
#define SNN_MAX_NEURONS 4096
#define SNN_MAX_INPUTS 4096
#define SNN_MAX_K 15
#define SNN_MAX_CH 16
#define SNN_MAX_DELAY 255

enum snn_rec_kind {
    SNN_REC_NONE = 0,  /* feed-forward LIF layer */
    SNN_REC_CONV = 1,  /* conv-delay recurrence: K kernel taps + N delays */
    SNN_REC_DENSE = 2, /* DelRec recurrence: N x N weights + N delays */
};

enum snn_reset_kind {
    SNN_RESET_HARD = 0, /* V = 0 after a spike */
    SNN_RESET_SOFT = 1, /* V -= thresh after a spike */
};

/* One hidden layer. */
struct snn_layer_cfg {
    int32_t n;     /* neurons C */
    int32_t rec;   /* enum snn_rec_kind */
    int32_t k;     /* conv taps K (odd); 0 unless rec == SNN_REC_CONV */
    int32_t d_max; /* largest integer delay the ring holds (D = d_max + 2); 0 if rec == NONE */
    float beta;    /* membrane decay per step */
    float gain;    /* input gain */
    float thresh;  /* firing threshold */
    int32_t reset; /* enum snn_reset_kind */
    int32_t ch;    /* conv channels G, a divisor of n (0 or 1: one); 0 unless rec == SNN_REC_CONV */
    int32_t in_d_max; /* largest integer delay of this layer's inputs (axonal delays on the
                         feed-forward connection, one per input channel); 0: none */
};

/* The whole topology, front end and labels: everything but the weights. */
struct snn_cfg {
    int32_t n_in;     /* input channels (encoder output size) */
    int32_t n_layers; /* hidden layers L, 1..SNN_MAX_LAYERS */
    struct snn_layer_cfg layer[SNN_MAX_LAYERS];
    int32_t n_classes;                           /* readout classes */
    float out_beta;                              /* readout decay per step */
    float out_gain;                              /* readout input gain */
    char labels[SNN_MAX_CLASSES][SNN_LABEL_LEN]; /* NUL-terminated class names */
    struct kws_frontend_cfg fe;                  /* front end the model was trained with */
    float threshold; /* detection threshold calibrated for this model, [0, 1]; 0: none */
};

/* Pointers into the one parameter block, in file order: for each layer l,
 * w_in, b_in, then (if recurrent) w_rec, delay, then (if in_d_max > 0)
 * in_delay; then w_out, b_out. */
struct snn_params {
    float *w_in[SNN_MAX_LAYERS];     /* (C_l, C_{l-1}) row-major; C_{-1} = n_in */
    float *b_in[SNN_MAX_LAYERS];     /* (C_l) */
    float *w_rec[SNN_MAX_LAYERS];    /* conv: (G, G, K) as w[g_out][g_in][m]; dense: (C_l, C_l) as
                                        W[i][j], post i, pre j; else NULL */
    float *delay[SNN_MAX_LAYERS];    /* (C_l) real-valued delays in steps; NULL if not recurrent */
    float *in_delay[SNN_MAX_LAYERS]; /* (C_{l-1}) input delays in steps; NULL unless in_d_max */
    float *w_out;                    /* (n_classes, C_{L-1}) */
    float *b_out;                    /* (n_classes) */
};

struct snn_model {
    struct snn_cfg cfg;
    size_t n_params;                       /* floats in mem */
    float *mem;                            /* the one parameter block */
    struct snn_params p;                   /* pointers into mem */
    int32_t *delay_int[SNN_MAX_LAYERS];    /* (C_l) rounded, clamped delays used by snn_step */
    int32_t *in_delay_int[SNN_MAX_LAYERS]; /* (C_{l-1}) rounded, clamped input delays */
    int32_t *idelay_mem;                   /* backing block of delay_int and in_delay_int */
    /* Derived by snn_model_prepare for the event-driven step: transposed
     * copies, so that an input or a spike of channel j adds one contiguous
     * row, each row zero-padded to whole register tiles (C_l rounded up to
     * a multiple of the tile, 32 with SSE or NEON and 8 without, written
     * C'_l; n_classes to a multiple of the vector width, 4 or 1, K').
     * Never written to files. */
    float *w_in_t[SNN_MAX_LAYERS];  /* (C_{l-1}, C'_l) w_in transposed */
    float *w_rec_t[SNN_MAX_LAYERS]; /* dense: (C_l, C'_l) as W^T[j][i], pre j, post i; else NULL */
    float *w_out_t;                 /* (C_{L-1}, K') w_out transposed */
    float *t_mem;                   /* backing block of the transposed copies */
    /* An enrolled word's takes (n_takes 0: none); kws/verify.h. Stored in
     * the file after the parameters; snn_model_free frees it. */
    struct kws_verifier verify;
};

/* Per-stream running state: membranes, rings and a scratch vector. */
struct snn_state {
    float *v[SNN_MAX_LAYERS];        /* (C_l) membrane potentials */
    float *ring[SNN_MAX_LAYERS];     /* (D_l, C'_l) conv: arrival ring, slot-major; dense:
                                        the reference step's spike history */
    float *in_ring[SNN_MAX_LAYERS];  /* (in_d_max + 1, C_{l-1}) the reference step's input history */
    int32_t in_slot[SNN_MAX_LAYERS]; /* in_due (in_ring) slot of layer l's next step */
    float *spk[SNN_MAX_LAYERS];      /* (C_l) last spikes, 0/1 */
    float *v_out;                    /* (n_classes) readout potentials */
    float *cur;                      /* scratch: (max C) input currents */
    int32_t head;    /* steps since reset, modulo 2^30; layer l reads ring slot slot[l] */
    float *mem;      /* backing block */
    uint64_t spikes; /* hidden spikes emitted since reset (for statistics) */
    int32_t slot[SNN_MAX_LAYERS];  /* ring slot layer l reads (then clears) at the next step, in [0,
                                      D_l) */
    int32_t *idx[SNN_MAX_LAYERS];  /* (C_l) indices of the neurons that spiked at the last step */
    int32_t n_idx[SNN_MAX_LAYERS]; /* how many of idx[l] are valid */
    int32_t *in_idx;               /* scratch: (n_in) indices of non-zero inputs */
    /* Delayed arrivals as lists of channels: slot u of a list ring holds
     * the channels whose spikes arrive u - slot steps from now (mod its
     * length), appended as they were sent, so in the order the sums need.
     * Input delays: in_due (in_d_max + 1, C_{l-1}), slot in_slot[l] read
     * this step; dense recurrence: rec_due (D_l, C_l), slot slot[l]. */
    int32_t *in_due[SNN_MAX_LAYERS];
    int32_t *in_due_n[SNN_MAX_LAYERS]; /* (in_d_max + 1) channels listed per slot */
    int32_t *rec_due[SNN_MAX_LAYERS];
    int32_t *rec_due_n[SNN_MAX_LAYERS]; /* (D_l) */
};

/* Conv channels G of a layer: ch, or 1 when ch is 0. */
static inline int32_t snn_layer_ch(const struct snn_layer_cfg *lc) {
    return lc->ch > 1 ? lc->ch : 1;
}

/* Recurrent weights of a layer: G*G*K (conv), C*C (dense) or 0. */
size_t snn_rec_weight_count(const struct snn_layer_cfg *lc);

/* Ring length D of a layer: d_max + 2 if it is recurrent, else 0. */
int32_t snn_layer_ring_len(const struct snn_layer_cfg *lc);

/* Number of float parameters a configuration needs, or 0 if it is invalid. */
size_t snn_param_count(const struct snn_cfg *cfg);

/* Number of recurrent parameters of one layer (weights + delays). */
size_t snn_rec_param_count(const struct snn_layer_cfg *lc);

/* Checks every field of cfg. On failure writes "field: problem" into msg and
 * returns KWS_EBADFIELD. */
int snn_cfg_validate(const struct snn_cfg *cfg, char *msg, size_t msglen);

/* Allocates the parameter block for cfg (zeroed) and points p at it. */
int snn_model_init(struct snn_model *m, const struct snn_cfg *cfg);
void snn_model_free(struct snn_model *m);

/* Whether a and b are the same network: equal header fields (front end,
 * shapes, labels, threshold), equal parameters and equal takes for the
 * second look, as two loads of one file are. A reload uses it to keep a
 * running network's state. */
int snn_model_same(const struct snn_model *a, const struct snn_model *b);

/* Rounds the real-valued delays to the integer taps snn_step uses (round half
 * to even, clamped to [0, d_max]; NaN becomes 0) and refreshes the transposed
 * weight copies snn_step reads. Call after changing anything in m->p (delays
 * or weights) and before the next snn_step; snn_model_init and the loaders
 * call it. */
void snn_model_prepare(struct snn_model *m);

/* Reads a .kwsm file (see DESIGN.md and docs/MODEL_FORMAT.md). Every field
 * is checked before anything is built, the front end settings with
 * kws_frontend_cfg_check (kws/model.h), and n_in must equal the front end's
 * kws_frontend_n_out. snn_model_load reads regular files only (a FIFO or a
 * device is refused at once, without blocking) and reads a file's header
 * before it sizes anything. On failure m is left zeroed, a message naming
 * the field is written to msg, and a negative code returned (KWS_EBADMAGIC,
 * KWS_EBADVERSION, KWS_ETRUNCATED, KWS_EBADCHECKSUM, KWS_EBADFIELD, -errno). */
int snn_model_load(struct snn_model *m, const char *path, char *msg, size_t msglen);
int snn_model_load_buffer(struct snn_model *m, const void *buf, size_t len, char *msg,
                          size_t msglen);

/* Writes m atomically (temp file, fsync, rename, fsync of the directory).
 * Returns KWS_EBADFIELD, writing nothing, for a model snn_model_load would
 * refuse (an invalid field or front end, a non-finite parameter). */
int snn_model_save(const struct snn_model *m, const char *path);

int snn_state_init(struct snn_state *s, const struct snn_model *m);
void snn_state_reset(struct snn_state *s, const struct snn_model *m);
void snn_state_free(struct snn_state *s);

/* Advances the network one frame.
 * in:  (n_in) spike counts of this frame
 * out: (n_classes) readout potentials after this frame (may be NULL) */
void snn_step(const struct snn_model *m, struct snn_state *s, const float *in, float *out);

/* Runs T frames from a reset state; equals snn_state_reset + T snn_step calls.
 * in: (T, n_in)   out: (T, n_classes) */
void snn_forward(const struct snn_model *m, struct snn_state *s, const float *in, int T,
                 float *out);

#endif /* KWS_CORE_SNN_H */

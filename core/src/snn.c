/* snn.c: the conv-delay recurrent spiking network, stepped one frame at a time.
 *
 * A model is one block of float parameters (struct snn_params points into it)
 * plus derived data for inference: integer delays and transposed weights, so
 * that the step is event-driven. A non-zero input j adds x_j times row j of
 * W_in^T, a spike adds one row of the next layer's W_in^T, and a spike of a
 * recurrent neuron j reaches the layer 1 + d_j steps later: a conv-delay
 * layer scatters its K adds into the arrival ring slot it will be read
 * from; a dense DelRec layer, and a layer with input delays, append j to
 * the list of channels due at that step and add their rows (row j of W^T,
 * i.e. column j of W) when the step comes. The rows are summed for 32
 * outputs at a time in registers, from the bias, then LIF runs on them
 * without branches. Nothing is allocated per frame. The naive reference
 * (dense matrix-vector products and a spike history) sits at the end of the
 * file for tests and benchmarks.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/snn.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws/err.h"
#include "snn_internal.h"

#define SNN__ALIGN 64 /* bytes; every sub-array of a block starts on a cache line */
#define SNN__HEAD_MASK ((int32_t)((1u << 30) - 1))
/* snn_step's register tiles (see "The event-driven step"): SNN__V floats
 * per vector, SNN__TILE outputs per tile. With SSE or NEON, 4-float vectors
 * and 8 of them per tile; without a vector unit the compiler may use (as
 * Debian armhf's VFPv3-D16 baseline), 1-float "vectors", i.e. plain
 * scalar registers, fewer per tile. */
#ifndef SNN__V
#if defined(__SSE2__) || defined(__ARM_NEON) || defined(__aarch64__)
#define SNN__V 4
#else
#define SNN__V 1
#endif
#endif
#ifndef SNN__TILE
#define SNN__TILE (SNN__V == 1 ? 8 : 32)
#endif
_Static_assert(SNN__V == 1 || SNN__V == 4, "scalars or 4-float vectors");
_Static_assert(SNN__TILE % SNN__V == 0 && SNN__TILE <= 32, "a tile is whole vectors, <= 32 bits");

/* Rounds a count of floats up so the next array starts on a cache line. */
static size_t snn__round_floats(size_t n) {
    size_t q = SNN__ALIGN / sizeof(float);
    return (n + q - 1) / q * q;
}

/* aligned_alloc needs a size that is a multiple of the alignment. */
static void *snn__alloc(size_t bytes) {
    bytes = (bytes + SNN__ALIGN - 1) / SNN__ALIGN * SNN__ALIGN;
    if (bytes == 0)
        bytes = SNN__ALIGN;
    void *p = aligned_alloc(SNN__ALIGN, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

/* ==== Configuration ==== */

int32_t snn_layer_ring_len(const struct snn_layer_cfg *lc) {
    return lc->rec == SNN_REC_NONE ? 0 : lc->d_max + 2;
}

static int snn__check_layer(const struct snn_layer_cfg *lc, int l, char *msg, size_t msglen) {
    if (lc->n < 1 || lc->n > SNN_MAX_NEURONS)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "layer[%d].n: %d out of range [1, %d]", l,
                          (int)lc->n, SNN_MAX_NEURONS);
    if (lc->rec != SNN_REC_NONE && lc->rec != SNN_REC_CONV && lc->rec != SNN_REC_DENSE)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "layer[%d].rec: %d is not none (0), conv (1) or dense (2)", l,
                          (int)lc->rec);
    if (lc->rec == SNN_REC_CONV) {
        if (lc->k < 1 || lc->k > SNN_MAX_K)
            return kws_errmsg(KWS_EBADFIELD, msg, msglen, "layer[%d].k: %d out of range [1, %d]", l,
                              (int)lc->k, SNN_MAX_K);
        if (lc->k % 2 == 0)
            return kws_errmsg(KWS_EBADFIELD, msg, msglen, "layer[%d].k: %d is even", l, (int)lc->k);
        if (lc->ch < 0 || lc->ch > SNN_MAX_CH)
            return kws_errmsg(KWS_EBADFIELD, msg, msglen, "layer[%d].ch: %d out of range [0, %d]",
                              l, (int)lc->ch, SNN_MAX_CH);
        if (lc->n % snn_layer_ch(lc))
            return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                              "layer[%d].ch: %d conv channels do not divide %d neurons", l,
                              (int)lc->ch, (int)lc->n);
    } else if (lc->k != 0) {
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "layer[%d].k: %d but the layer has no conv recurrence", l, (int)lc->k);
    } else if (lc->ch != 0) {
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "layer[%d].ch: %d but the layer has no conv recurrence", l, (int)lc->ch);
    }
    if (lc->rec == SNN_REC_NONE) {
        if (lc->d_max != 0)
            return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                              "layer[%d].d_max: %d but the layer is not recurrent", l,
                              (int)lc->d_max);
    } else if (lc->d_max < 0 || lc->d_max > SNN_MAX_DELAY) {
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "layer[%d].d_max: %d out of range [0, %d]", l,
                          (int)lc->d_max, SNN_MAX_DELAY);
    }
    if (lc->in_d_max < 0 || lc->in_d_max > SNN_MAX_DELAY)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "layer[%d].in_d_max: %d out of range [0, %d]",
                          l, (int)lc->in_d_max, SNN_MAX_DELAY);
    if (l == 0 && lc->in_d_max != 0)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "layer[0].in_d_max: %d but only layers after the first delay their "
                          "inputs",
                          (int)lc->in_d_max);
    if (!isfinite(lc->beta) || lc->beta < 0.0f || lc->beta > 1.0f)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "layer[%d].beta: %g out of range [0, 1]", l,
                          (double)lc->beta);
    if (!isfinite(lc->gain))
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "layer[%d].gain: %g is not finite", l,
                          (double)lc->gain);
    if (!isfinite(lc->thresh) || lc->thresh <= 0.0f)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "layer[%d].thresh: %g is not a positive number", l, (double)lc->thresh);
    if (lc->reset != SNN_RESET_HARD && lc->reset != SNN_RESET_SOFT)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "layer[%d].reset: %d is not hard (0) or soft (1)", l, (int)lc->reset);
    return 0;
}

int snn_cfg_validate(const struct snn_cfg *cfg, char *msg, size_t msglen) {
    if (cfg->n_in < 1 || cfg->n_in > SNN_MAX_INPUTS)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "n_in: %d out of range [1, %d]",
                          (int)cfg->n_in, SNN_MAX_INPUTS);
    if (cfg->n_layers < 1 || cfg->n_layers > SNN_MAX_LAYERS)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "n_layers: %d out of range [1, %d]",
                          (int)cfg->n_layers, SNN_MAX_LAYERS);
    for (int l = 0; l < cfg->n_layers; l++) {
        int rc = snn__check_layer(&cfg->layer[l], l, msg, msglen);
        if (rc < 0)
            return rc;
    }
    if (cfg->n_classes < 1 || cfg->n_classes > SNN_MAX_CLASSES)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "n_classes: %d out of range [1, %d]",
                          (int)cfg->n_classes, SNN_MAX_CLASSES);
    if (!isfinite(cfg->out_beta) || cfg->out_beta < 0.0f || cfg->out_beta > 1.0f)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "out_beta: %g out of range [0, 1]",
                          (double)cfg->out_beta);
    if (!isfinite(cfg->out_gain))
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "out_gain: %g is not finite",
                          (double)cfg->out_gain);
    if (!isfinite(cfg->threshold) || cfg->threshold < 0.0f || cfg->threshold > 1.0f)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "threshold: %g out of range [0, 1]",
                          (double)cfg->threshold);
    for (int c = 0; c < cfg->n_classes; c++)
        if (!memchr(cfg->labels[c], '\0', SNN_LABEL_LEN))
            return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                              "labels[%d]: not NUL-terminated within %d bytes", c, SNN_LABEL_LEN);
    if (msg && msglen)
        msg[0] = '\0';
    return 0;
}

size_t snn_rec_weight_count(const struct snn_layer_cfg *lc) {
    size_t n = (size_t)lc->n, g = (size_t)snn_layer_ch(lc);
    switch (lc->rec) {
    case SNN_REC_CONV:
        return g * g * (size_t)lc->k;
    case SNN_REC_DENSE:
        return n * n;
    default:
        return 0;
    }
}

size_t snn_rec_param_count(const struct snn_layer_cfg *lc) {
    return lc->rec == SNN_REC_NONE ? 0 : snn_rec_weight_count(lc) + (size_t)lc->n;
}

int snn__tensors(const struct snn_cfg *cfg, struct snn_params *p,
                 struct snn__tensor out[SNN__MAX_TENSORS]) {
    int nt = 0;
    size_t off = 0;
    size_t prev = (size_t)cfg->n_in;
#define SNN__ADD(label, lay, sz, field)                                                            \
    do {                                                                                           \
        KWS_ASSERT(nt < SNN__MAX_TENSORS);                                                         \
        struct snn__tensor *t_ = &out[nt++];                                                       \
        snprintf(t_->name, sizeof t_->name, "%s", label);                                          \
        t_->layer = (lay);                                                                         \
        t_->offset = off;                                                                          \
        t_->size = (sz);                                                                           \
        t_->slot = p ? &p->field : NULL;                                                           \
        off += (sz);                                                                               \
    } while (0)
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        size_t n = (size_t)lc->n;
        char name[32];
        snprintf(name, sizeof name, "layer[%d].w_in", l);
        SNN__ADD(name, l, n * prev, w_in[l]);
        snprintf(name, sizeof name, "layer[%d].b_in", l);
        SNN__ADD(name, l, n, b_in[l]);
        if (lc->rec != SNN_REC_NONE) {
            snprintf(name, sizeof name, "layer[%d].w_rec", l);
            SNN__ADD(name, l, snn_rec_weight_count(lc), w_rec[l]);
            snprintf(name, sizeof name, "layer[%d].delay", l);
            SNN__ADD(name, l, n, delay[l]);
        }
        if (lc->in_d_max > 0) {
            snprintf(name, sizeof name, "layer[%d].in_delay", l);
            SNN__ADD(name, l, prev, in_delay[l]);
        }
        prev = n;
    }
    SNN__ADD("w_out", -1, (size_t)cfg->n_classes * prev, w_out);
    SNN__ADD("b_out", -1, (size_t)cfg->n_classes, b_out);
#undef SNN__ADD
    return nt;
}

size_t snn_param_count(const struct snn_cfg *cfg) {
    struct snn__tensor t[SNN__MAX_TENSORS];
    if (snn_cfg_validate(cfg, NULL, 0) < 0)
        return 0;
    int nt = snn__tensors(cfg, NULL, t);
    return t[nt - 1].offset + t[nt - 1].size;
}

void snn__param_name(const struct snn_cfg *cfg, size_t i, char *buf, size_t buflen) {
    struct snn__tensor t[SNN__MAX_TENSORS];
    int nt = snn__tensors(cfg, NULL, t);
    for (int k = 0; k < nt; k++) {
        if (i >= t[k].offset && i < t[k].offset + t[k].size) {
            snprintf(buf, buflen, "%s[%zu]", t[k].name, i - t[k].offset);
            return;
        }
    }
    snprintf(buf, buflen, "param[%zu]", i);
}

/* ==== Model ==== */

void snn_model_free(struct snn_model *m) {
    free(m->mem);
    free(m->idelay_mem);
    free(m->t_mem);
    kws_verifier_free(&m->verify);
    memset(m, 0, sizeof *m);
}

/* Whether two verifiers are the same: equal fields (the cut bit for bit),
 * equal take lengths and features. */
static bool snn__verifier_same(const struct kws_verifier *a, const struct kws_verifier *b) {
    if (a->label != b->label || a->n_takes != b->n_takes || a->n_feat != b->n_feat ||
        a->k != b->k || a->back != b->back || a->ahead != b->ahead ||
        memcmp(&a->cut, &b->cut, sizeof a->cut) != 0 || a->n_frames != b->n_frames)
        return false;
    if (!a->n_takes)
        return true;
    return memcmp(a->len, b->len, (size_t)a->n_takes * sizeof *a->len) == 0 &&
           memcmp(a->feat, b->feat, a->n_frames * (size_t)a->n_feat * sizeof *a->feat) == 0;
}

int snn_model_same(const struct snn_model *a, const struct snn_model *b) {
    return memcmp(&a->cfg, &b->cfg, sizeof a->cfg) == 0 && a->n_params == b->n_params &&
           memcmp(a->mem, b->mem, a->n_params * sizeof *a->mem) == 0 &&
           snn__verifier_same(&a->verify, &b->verify);
}

/* C'_l: a layer's width rounded up to whole register tiles (snn_step). */
static size_t snn__pad(size_t n) {
    return (n + SNN__TILE - 1) / SNN__TILE * SNN__TILE;
}

/* K': the readout's width rounded up to whole vectors. */
static size_t snn__pad_out(size_t n) {
    return (n + SNN__V - 1) / SNN__V * SNN__V;
}

int snn_model_init(struct snn_model *m, const struct snn_cfg *cfg) {
    struct snn__tensor t[SNN__MAX_TENSORS];
    memset(m, 0, sizeof *m);
    int rc = snn_cfg_validate(cfg, NULL, 0);
    if (rc < 0)
        return rc;
    m->cfg = *cfg;
    int nt = snn__tensors(cfg, &m->p, t);
    m->n_params = t[nt - 1].offset + t[nt - 1].size;
    m->mem = snn__alloc(m->n_params * sizeof(float));
    if (!m->mem)
        goto nomem;
    for (int k = 0; k < nt; k++)
        *t[k].slot = m->mem + t[k].offset;

    /* Derived blocks: integer delays, then the transposed weights. */
    size_t n_delay = 0, n_t = 0, prev = (size_t)cfg->n_in;
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        size_t n = (size_t)lc->n, np = snn__pad(n);
        if (lc->rec != SNN_REC_NONE)
            n_delay += n;
        if (lc->in_d_max > 0)
            n_delay += prev;
        n_t += snn__round_floats(prev * np);
        if (lc->rec == SNN_REC_DENSE)
            n_t += snn__round_floats(n * np);
        prev = n;
    }
    size_t ncp = snn__pad_out((size_t)cfg->n_classes);
    n_t += snn__round_floats(prev * ncp);
    m->idelay_mem = snn__alloc((n_delay ? n_delay : 1) * sizeof(int32_t));
    m->t_mem = snn__alloc(n_t * sizeof(float));
    if (!m->idelay_mem || !m->t_mem)
        goto nomem;
    int32_t *di = m->idelay_mem;
    float *tp = m->t_mem;
    prev = (size_t)cfg->n_in;
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        size_t n = (size_t)lc->n, np = snn__pad(n);
        if (lc->rec != SNN_REC_NONE) {
            m->delay_int[l] = di;
            di += n;
        }
        if (lc->in_d_max > 0) {
            m->in_delay_int[l] = di;
            di += prev;
        }
        m->w_in_t[l] = tp;
        tp += snn__round_floats(prev * np);
        if (lc->rec == SNN_REC_DENSE) {
            m->w_rec_t[l] = tp;
            tp += snn__round_floats(n * np);
        }
        prev = n;
    }
    m->w_out_t = tp;
    snn_model_prepare(m);
    return 0;
nomem:
    snn_model_free(m);
    return -ENOMEM;
}

/* out (cols, ld) = in (rows, cols) transposed, each row of out zero-padded
 * from rows to ld floats. */
static void snn__transpose(float *out, const float *in, size_t rows, size_t cols, size_t ld) {
    for (size_t c = 0; c < cols; c++)
        for (size_t r = rows; r < ld; r++)
            out[c * ld + r] = 0.0f;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            out[c * ld + r] = in[r * cols + c];
}

/* out[j] = d[j] rounded half to even (as torch.round), clamped to [0, hi];
 * NaN becomes 0. */
static void snn__round_delays(int32_t *out, const float *d, size_t n, int32_t hi) {
    for (size_t j = 0; j < n; j++) {
        float r = isnan(d[j]) ? 0.0f : nearbyintf(d[j]);
        if (r < 0.0f)
            r = 0.0f;
        if (r > (float)hi)
            r = (float)hi;
        out[j] = (int32_t)r;
    }
}

void snn_model_prepare(struct snn_model *m) {
    const struct snn_cfg *cfg = &m->cfg;
    size_t prev = (size_t)cfg->n_in;
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        size_t n = (size_t)lc->n, np = snn__pad(n);
        snn__transpose(m->w_in_t[l], m->p.w_in[l], n, prev, np);
        if (lc->rec == SNN_REC_DENSE)
            snn__transpose(m->w_rec_t[l], m->p.w_rec[l], n, n, np);
        if (lc->rec != SNN_REC_NONE)
            snn__round_delays(m->delay_int[l], m->p.delay[l], n, lc->d_max);
        if (lc->in_d_max > 0)
            snn__round_delays(m->in_delay_int[l], m->p.in_delay[l], prev, lc->in_d_max);
        prev = n;
    }
    size_t nc = (size_t)cfg->n_classes, ncp = snn__pad_out(nc);
    snn__transpose(m->w_out_t, m->p.w_out, nc, prev, ncp);
}

/* ==== Stream state ==== */

/* Floats of layer l's input history for the reference step: in_d_max + 1
 * slots of C_{l-1}. */
static size_t snn__in_ring_floats(const struct snn_cfg *cfg, int l) {
    const struct snn_layer_cfg *lc = &cfg->layer[l];
    if (lc->in_d_max <= 0 || l == 0)
        return 0;
    return (size_t)(lc->in_d_max + 1) * (size_t)cfg->layer[l - 1].n;
}

/* Entries of layer l's arrival lists: in_due, then rec_due (dense only). */
static size_t snn__in_due_len(const struct snn_cfg *cfg, int l) {
    const struct snn_layer_cfg *lc = &cfg->layer[l];
    if (lc->in_d_max <= 0 || l == 0)
        return 0;
    return (size_t)(lc->in_d_max + 1) * (size_t)cfg->layer[l - 1].n;
}

static size_t snn__rec_due_len(const struct snn_layer_cfg *lc) {
    if (lc->rec != SNN_REC_DENSE)
        return 0;
    return (size_t)snn_layer_ring_len(lc) * (size_t)lc->n;
}

int snn_state_init(struct snn_state *s, const struct snn_model *m) {
    const struct snn_cfg *cfg = &m->cfg;
    memset(s, 0, sizeof *s);
    size_t ncp = snn__pad_out((size_t)cfg->n_classes);
    size_t n_f = 0, n_i = 0, max_c = ncp;
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        size_t np = snn__pad((size_t)lc->n);
        n_f += 2 * snn__round_floats(np);                              /* v, spk */
        n_f += snn__round_floats((size_t)snn_layer_ring_len(lc) * np); /* ring */
        n_f += snn__round_floats(snn__in_ring_floats(cfg, l));         /* in_ring */
        n_i += snn__round_floats(np);                                  /* idx */
        n_i += snn__round_floats(snn__in_due_len(cfg, l));            /* in_due */
        if (lc->in_d_max > 0)
            n_i += snn__round_floats((size_t)lc->in_d_max + 1);       /* in_due_n */
        if (lc->rec == SNN_REC_DENSE)                                  /* rec_due, rec_due_n */
            n_i += snn__round_floats(snn__rec_due_len(lc)) +
                   snn__round_floats((size_t)snn_layer_ring_len(lc));
        if (np > max_c)
            max_c = np;
    }
    n_f += snn__round_floats(ncp) + snn__round_floats(max_c);
    n_i += snn__round_floats((size_t)cfg->n_in);
    /* One block: the floats, then the int32 index lists (same size, 4 bytes). */
    _Static_assert(sizeof(float) == sizeof(int32_t), "float and int32 share the state block");
    s->mem = snn__alloc((n_f + n_i) * sizeof(float));
    if (!s->mem)
        return -ENOMEM;
    float *f = s->mem;
    int32_t *ip = (int32_t *)(void *)(s->mem + n_f);
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        size_t np = snn__pad((size_t)lc->n);
        size_t d = (size_t)snn_layer_ring_len(lc);
        s->v[l] = f;
        f += snn__round_floats(np);
        s->spk[l] = f;
        f += snn__round_floats(np);
        if (d) {
            s->ring[l] = f;
            f += snn__round_floats(d * np);
        }
        if (lc->in_d_max > 0) {
            s->in_ring[l] = f;
            f += snn__round_floats(snn__in_ring_floats(cfg, l));
            s->in_due[l] = ip;
            ip += snn__round_floats(snn__in_due_len(cfg, l));
            s->in_due_n[l] = ip;
            ip += snn__round_floats((size_t)lc->in_d_max + 1);
        }
        if (lc->rec == SNN_REC_DENSE) {
            s->rec_due[l] = ip;
            ip += snn__round_floats(snn__rec_due_len(lc));
            s->rec_due_n[l] = ip;
            ip += snn__round_floats((size_t)snn_layer_ring_len(lc));
        }
        s->idx[l] = ip;
        ip += snn__round_floats(np);
    }
    s->v_out = f;
    f += snn__round_floats(ncp);
    s->cur = f;
    s->in_idx = ip;
    snn_state_reset(s, m);
    return 0;
}

void snn_state_reset(struct snn_state *s, const struct snn_model *m) {
    const struct snn_cfg *cfg = &m->cfg;
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        size_t np = snn__pad((size_t)lc->n);
        memset(s->v[l], 0, np * sizeof(float));
        memset(s->spk[l], 0, np * sizeof(float));
        if (s->ring[l])
            memset(s->ring[l], 0, (size_t)snn_layer_ring_len(lc) * np * sizeof(float));
        if (s->in_ring[l])
            memset(s->in_ring[l], 0, snn__in_ring_floats(cfg, l) * sizeof(float));
        if (s->in_due_n[l])
            memset(s->in_due_n[l], 0, (size_t)(lc->in_d_max + 1) * sizeof(int32_t));
        if (s->rec_due_n[l])
            memset(s->rec_due_n[l], 0, (size_t)snn_layer_ring_len(lc) * sizeof(int32_t));
        s->slot[l] = 0;
        s->in_slot[l] = 0;
        s->n_idx[l] = 0;
    }
    memset(s->v_out, 0, snn__pad_out((size_t)cfg->n_classes) * sizeof(float));
    s->head = 0;
    s->spikes = 0;
}

void snn_state_free(struct snn_state *s) {
    free(s->mem);
    memset(s, 0, sizeof *s);
}

/* ==== The event-driven step ==== */

/* snn_step works on register tiles of SNN__TILE outputs: eight snn__v (GCC
 * vector extensions; 4 floats, one SSE or NEON register), or eight scalars
 * where there is no vector unit.
 * A tile starts from the bias, adds the rows of the active inputs one by one
 * and goes through LIF without leaving registers. Every output element still
 * adds its terms one at a time in the order of the plain loops (inputs in
 * increasing index; arrivals in the order their spikes were sent, i.e. by
 * decreasing delay, then increasing index), so the results are the same
 * floats as the naive reference's sums in that order. */
#if SNN__V > 1
typedef float snn__v __attribute__((vector_size(SNN__V * sizeof(float))));
typedef int32_t snn__vi __attribute__((vector_size(SNN__V * sizeof(int32_t))));
typedef uint32_t snn__vu __attribute__((vector_size(SNN__V * sizeof(uint32_t))));
#else
typedef float snn__v; /* GCC keeps 1-float vectors on the stack: plain floats instead */
#endif

struct snn__tile {
    snn__v v[SNN__TILE / SNN__V];
};

static inline snn__v snn__ld(const float *p) {
    snn__v v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The same from p on a vector boundary: every derived row, bias and state
 * vector the step reads starts on a cache line and is a whole number of
 * vectors long. */
static inline snn__v snn__lda(const float *p) {
    snn__v v;
    memcpy(&v, __builtin_assume_aligned(p, sizeof(snn__v)), sizeof v);
    return v;
}

static inline void snn__st(float *p, snn__v v) {
    memcpy(p, &v, sizeof v);
}

static inline struct snn__tile snn__tile_ld(const float *p) {
    struct snn__tile t;
    for (int k = 0; k < SNN__TILE / SNN__V; k++)
        t.v[k] = snn__ld(p + k * SNN__V);
    return t;
}

static inline struct snn__tile snn__tile_zero(void) {
    struct snn__tile t;
    for (int k = 0; k < SNN__TILE / SNN__V; k++)
        t.v[k] = (snn__v){0};
    return t;
}

/* a + the rows rows[0..nr) of w (row stride ld), added one row at a time. */
static inline struct snn__tile snn__tile_rows(struct snn__tile a, const float *w, size_t ld,
                                              const int32_t *rows, int32_t nr) {
    for (int32_t r = 0; r < nr; r++) {
        const float *p = w + (size_t)rows[r] * ld;
        for (int k = 0; k < SNN__TILE / SNN__V; k++)
            a.v[k] += snn__lda(p + k * SNN__V);
    }
    return a;
}

/* a + x[rows[r]] times row rows[r] of w, for r = 0..nr, in that order. */
static inline struct snn__tile snn__tile_rows_x(struct snn__tile a, const float *w, size_t ld,
                                                const int32_t *rows, int32_t nr, const float *x) {
    for (int32_t r = 0; r < nr; r++) {
        const float *p = w + (size_t)rows[r] * ld;
        const float xr = x[rows[r]];
        for (int k = 0; k < SNN__TILE / SNN__V; k++)
            a.v[k] += xr * snn__lda(p + k * SNN__V);
    }
    return a;
}

#if SNN__V > 1
/* Bit k of the result is set when lane k of m (0 or -1 per lane, lanes
 * 0..SNN__TILE of the vectors in order) is. */
static inline uint32_t snn__tile_bits(const snn__vi m[SNN__TILE / SNN__V]) {
    const snn__vu w = {1, 2, 4, 8};
    snn__vu b = (snn__vu)m[0] & w;
    for (int k = 1; k < SNN__TILE / SNN__V; k++)
        b |= (snn__vu)m[k] & (w << (SNN__V * k));
#if defined(__clang__)
    b |= __builtin_shufflevector(b, b, 2, 3, 0, 1);
    b |= __builtin_shufflevector(b, b, 1, 0, 3, 2);
#else
    b |= __builtin_shuffle(b, (snn__vu){2, 3, 0, 1});
    b |= __builtin_shuffle(b, (snn__vu){1, 0, 3, 2});
#endif
    return b[0];
}

#endif

/* LIF update of one tile: H = beta V + gain I, S = (H >= thresh), V = H
 * (no spike), 0 (hard reset) or H - thresh (soft), without branches.
 * Writes v and spk (0/1) and returns the spikes as bits. */
static inline uint32_t snn__tile_lif(float *v, float *spk, struct snn__tile cur,
                                     const struct snn_layer_cfg *lc) {
#if SNN__V == 1
    const float beta = lc->beta, gain = lc->gain, th = lc->thresh;
    const bool hard = lc->reset == SNN_RESET_HARD;
    uint32_t bits = 0;
    for (int k = 0; k < SNN__TILE; k++) {
        float h = beta * v[k] + gain * cur.v[k];
        uint32_t f = h >= th;
        v[k] = f ? (hard ? 0.0f : h - th) : h;
        spk[k] = f ? 1.0f : 0.0f;
        bits |= f << k;
    }
    return bits;
#else
    const float beta = lc->beta, gain = lc->gain;
    const snn__v th = (snn__v){0} + lc->thresh, one = (snn__v){0} + 1.0f;
    const bool hard = lc->reset == SNN_RESET_HARD;
    snn__vi f[SNN__TILE / SNN__V];
    for (int k = 0; k < SNN__TILE / SNN__V; k++) {
        snn__v h = beta * snn__ld(v + k * SNN__V) + gain * cur.v[k];
        f[k] = h >= th;
        snn__v nv = hard ? (snn__v)((snn__vi)h & ~f[k]) : h - (snn__v)((snn__vi)th & f[k]);
        snn__st(v + k * SNN__V, nv);
        snn__st(spk + k * SNN__V, (snn__v)((snn__vi)one & f[k]));
    }
    return snn__tile_bits(f);
#endif
}

/* Lists the non-zero inputs in[0..n) into act (increasing index); *ones
 * tells whether every one of them is exactly 1 (the front end's spikes),
 * so that the rows need no multiplication. Returns how many. */
static int32_t snn__active(int32_t *act, const float *in, int32_t n, bool *ones) {
    int32_t na = 0, j = 0;
    bool rest = true;
#if SNN__V > 1
    snn__vi other = {0};
    const snn__v zero = {0}, one = zero + 1.0f;
    for (; j + SNN__TILE <= n; j += SNN__TILE) {
        snn__vi f[SNN__TILE / SNN__V];
        for (int k = 0; k < SNN__TILE / SNN__V; k++) {
            snn__v x = snn__ld(in + j + k * SNN__V);
            f[k] = x != zero;
            other |= f[k] & (x != one);
        }
        for (uint32_t b = snn__tile_bits(f); b; b &= b - 1)
            act[na++] = j + __builtin_ctz(b);
    }
#endif
    for (; j < n; j++) {
        act[na] = j;
        na += in[j] != 0.0f;
        rest &= in[j] == 0.0f || in[j] == 1.0f;
    }
#if SNN__V > 1
    snn__vi none[SNN__TILE / SNN__V] = {other};
    rest = rest && snn__tile_bits(none) == 0;
#endif
    *ones = rest;
    return na;
}

/* Appends the channels idx[0..ns), which spike now, to the arrival lists
 * due (dlen, width) of the steps they reach: slot (slot + lag + d_j) mod
 * dlen, counts in due_n (dlen). */
static void snn__due_push(int32_t *due, int32_t *due_n, int32_t dlen, size_t width, int32_t slot,
                          int32_t lag, const int32_t *d, const int32_t *idx, int32_t ns) {
    for (int32_t a = 0; a < ns; a++) {
        int32_t j = idx[a], t = slot + lag + d[j];
        if (t >= dlen)
            t -= dlen;
        due[(size_t)t * width + (size_t)due_n[t]++] = j;
    }
}

void snn__ring_read(float *restrict cur, float *restrict r, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        cur[i] += r[i];
        r[i] = 0.0f;
    }
}

/* snn__scatter for a conv-delay layer of one channel and k taps: neuron j
 * adds w[tap] to neuron j + pad - tap, all k taps unless j is within pad of
 * an end. Inlined with constant k for the usual kernels. */
static inline __attribute__((always_inline)) void
snn__scatter_conv1(float *ring, size_t ld, int32_t slot, int32_t dlen, const int32_t *dl,
                   const float *w, int32_t n, int32_t k, const int32_t *idx, int32_t ns) {
    const int32_t pad = (k - 1) / 2;
    for (int32_t a = 0; a < ns; a++) {
        int32_t j = idx[a];
        int32_t t = slot + 1 + dl[j];
        if (t >= dlen)
            t -= dlen;
        float *row = ring + (size_t)t * ld + j + pad;
        if (j >= pad && j + pad < n) {
            for (int32_t tap = 0; tap < k; tap++)
                row[-tap] += w[tap];
        } else {
            int32_t lo = j + pad - n + 1 > 0 ? j + pad - n + 1 : 0;
            int32_t hi = j + pad < k - 1 ? j + pad : k - 1;
            for (int32_t tap = lo; tap <= hi; tap++)
                row[-tap] += w[tap];
        }
    }
}

/* Scatters the spikes idx[0..ns) of a recurrent layer into its arrival ring
 * (D, C'): a spike of j at this step is read 1 + d_j steps later, from slot
 * (slot + 1 + d_j) mod D. */
void snn__scatter(const struct snn_model *m, int l, float *ring, int32_t slot, const int32_t *idx,
                  int32_t ns) {
    const struct snn_layer_cfg *lc = &m->cfg.layer[l];
    const int32_t n = lc->n, dlen = snn_layer_ring_len(lc);
    const size_t ld = snn__pad((size_t)n);
    const int32_t *dl = m->delay_int[l];
    if (lc->rec == SNN_REC_CONV && snn_layer_ch(lc) == 1) {
        const float *w = m->p.w_rec[l];
        switch (lc->k) { /* the common kernels unrolled */
        case 3:
            snn__scatter_conv1(ring, ld, slot, dlen, dl, w, n, 3, idx, ns);
            break;
        case 5:
            snn__scatter_conv1(ring, ld, slot, dlen, dl, w, n, 5, idx, ns);
            break;
        case 7:
            snn__scatter_conv1(ring, ld, slot, dlen, dl, w, n, 7, idx, ns);
            break;
        default:
            snn__scatter_conv1(ring, ld, slot, dlen, dl, w, n, lc->k, idx, ns);
        }
    } else if (lc->rec == SNN_REC_CONV) {
        const float *w = m->p.w_rec[l];
        const int32_t k = lc->k, pad = (k - 1) / 2, g = snn_layer_ch(lc), np = n / g;
        for (int32_t a = 0; a < ns; a++) {
            int32_t j = idx[a], gi = g > 1 ? j / np : 0,
                    pj = j - gi * np; /* no division for G = 1 */
            int32_t t = slot + 1 + dl[j];
            if (t >= dlen)
                t -= dlen;
            float *dst = ring + (size_t)t * ld;
            /* Targets (go, pj + pad - tap), tap in [0, k), clipped to [0, np). */
            int32_t lo = pj + pad - np + 1 > 0 ? pj + pad - np + 1 : 0;
            int32_t hi = pj + pad < k - 1 ? pj + pad : k - 1;
            for (int32_t go = 0; go < g; go++) {
                const float *wk = w + ((size_t)go * (size_t)g + (size_t)gi) * (size_t)k;
                float *row = dst + (size_t)go * (size_t)np + pj + pad;
                for (int32_t tap = lo; tap <= hi; tap++)
                    row[-tap] += wk[tap];
            }
        }
    } else {
        const float *wt = m->w_rec_t[l];
        for (int32_t a = 0; a < ns; a++) {
            int32_t j = idx[a];
            int32_t t = slot + 1 + dl[j];
            if (t >= dlen)
                t -= dlen;
            float *restrict dst = ring + (size_t)t * ld;
            const float *restrict col = wt + (size_t)j * ld;
            for (int32_t i = 0; i < n; i++)
                dst[i] += col[i];
        }
    }
}

void snn_step(const struct snn_model *m, struct snn_state *s, const float *in, float *out) {
    const struct snn_cfg *cfg = &m->cfg;
    bool ones;
    int32_t n_act = snn__active(s->in_idx, in, cfg->n_in, &ones);
    const int32_t *act = s->in_idx;

    uint64_t fired = 0;
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        const size_t np = snn__pad((size_t)lc->n);
        const float *wt = m->w_in_t[l];

        /* The rows to add: the active inputs, or those whose delayed spikes
         * arrive now; then a dense layer's own delayed spikes. */
        const int32_t *rows = act, *rec = NULL;
        int32_t n_rows = n_act, n_rec = 0, *in_n = NULL, *rec_n = NULL;
        if (lc->in_d_max > 0) {
            const int32_t hlen = lc->in_d_max + 1, sl = s->in_slot[l];
            const size_t width = (size_t)cfg->layer[l - 1].n;
            snn__due_push(s->in_due[l], s->in_due_n[l], hlen, width, sl, 0, m->in_delay_int[l],
                          act, n_act);
            rows = s->in_due[l] + (size_t)sl * width;
            in_n = s->in_due_n[l] + sl;
            n_rows = *in_n;
            s->in_slot[l] = sl + 1 == hlen ? 0 : sl + 1;
        }
        if (lc->rec == SNN_REC_DENSE) {
            rec = s->rec_due[l] + (size_t)s->slot[l] * (size_t)lc->n;
            rec_n = s->rec_due_n[l] + s->slot[l];
            n_rec = *rec_n;
        }
        float *ring = lc->rec == SNN_REC_CONV ? s->ring[l] + (size_t)s->slot[l] * np : NULL;

        int32_t ns = 0;
        int32_t *idx = s->idx[l];
        /* The bias is read from the parameters themselves; a last, partial
         * tile takes it from a zero-padded copy. */
        float b_tail[SNN__TILE];
        const size_t n_full = (size_t)lc->n / SNN__TILE * SNN__TILE;
        if (n_full < (size_t)lc->n) {
            memset(b_tail, 0, sizeof b_tail);
            memcpy(b_tail, m->p.b_in[l] + n_full, ((size_t)lc->n - n_full) * sizeof(float));
        }
        for (size_t i0 = 0; i0 < np; i0 += SNN__TILE) {
            const float *bias = i0 < n_full ? m->p.b_in[l] + i0 : b_tail;
            struct snn__tile a;
            if (lc->in_d_max > 0) {
                /* b + (arrivals summed from 0), as the arrival ring was */
                a = snn__tile_rows(snn__tile_zero(), wt + i0, np, rows, n_rows);
                struct snn__tile b = snn__tile_ld(bias);
                for (int k = 0; k < SNN__TILE / SNN__V; k++)
                    a.v[k] = b.v[k] + a.v[k];
            } else if (l == 0 && !ones) {
                a = snn__tile_rows_x(snn__tile_ld(bias), wt + i0, np, rows, n_rows, in);
            } else {
                a = snn__tile_rows(snn__tile_ld(bias), wt + i0, np, rows, n_rows);
            }
            if (lc->rec == SNN_REC_DENSE) {
                struct snn__tile r =
                    snn__tile_rows(snn__tile_zero(), m->w_rec_t[l] + i0, np, rec, n_rec);
                for (int k = 0; k < SNN__TILE / SNN__V; k++)
                    a.v[k] += r.v[k];
            } else if (ring) {
                for (int k = 0; k < SNN__TILE / SNN__V; k++) {
                    a.v[k] += snn__ld(ring + i0 + k * SNN__V);
                    snn__st(ring + i0 + k * SNN__V, (snn__v){0});
                }
            }
            uint32_t sb = snn__tile_lif(s->v[l] + i0, s->spk[l] + i0, a, lc);
            for (; sb; sb &= sb - 1)
                idx[ns++] = (int32_t)i0 + __builtin_ctz(sb);
        }
        s->n_idx[l] = ns;
        fired += (uint64_t)ns;
        if (lc->rec == SNN_REC_CONV)
            snn__scatter(m, l, s->ring[l], s->slot[l], idx, ns);
        if (in_n)
            *in_n = 0;
        if (rec_n) {
            *rec_n = 0;
            snn__due_push(s->rec_due[l], s->rec_due_n[l], snn_layer_ring_len(lc), (size_t)lc->n,
                          s->slot[l], 1, m->delay_int[l], idx, ns);
        }
        if (lc->rec != SNN_REC_NONE) {
            int32_t next = s->slot[l] + 1;
            s->slot[l] = next == snn_layer_ring_len(lc) ? 0 : next;
        }
        act = idx;
        n_act = ns;
    }

    /* Readout: a leaky integrator of W_out s + b_out. */
    const size_t nc = (size_t)cfg->n_classes, ncp = snn__pad_out(nc);
    const float ob = cfg->out_beta, og = cfg->out_gain;
    float b_out[SNN_MAX_CLASSES + SNN__V] = {0}; /* b_out, zero-padded to K' */
    memcpy(b_out, m->p.b_out, nc * sizeof(float));
    for (size_t c = 0; c < ncp; c += SNN__V) {
        snn__v acc = snn__ld(b_out + c);
        for (int32_t a = 0; a < n_act; a++)
            acc += snn__lda(m->w_out_t + (size_t)act[a] * ncp + c);
        snn__st(s->v_out + c, ob * snn__ld(s->v_out + c) + og * acc);
    }
    if (out)
        memcpy(out, s->v_out, (size_t)cfg->n_classes * sizeof(float));
    s->head = (s->head + 1) & SNN__HEAD_MASK;
    s->spikes += fired;
}

void snn_forward(const struct snn_model *m, struct snn_state *s, const float *in, int T,
                 float *out) {
    const size_t n_in = (size_t)m->cfg.n_in, nc = (size_t)m->cfg.n_classes;
    snn_state_reset(s, m);
    for (int t = 0; t < T; t++)
        snn_step(m, s, in + (size_t)t * n_in, out ? out + (size_t)t * nc : NULL);
}

/* ==== Naive reference ==== */

/* LIF update of n neurons from input currents cur (n): H = beta V + gain I,
 * spike when H >= thresh, then reset. Writes spk (n) as 0/1 and the indices
 * of the neurons that fired into idx; returns how many fired. */
static int32_t snn__lif(float *v, float *spk, int32_t *idx, const float *cur, int32_t n,
                        const struct snn_layer_cfg *lc) {
    const float beta = lc->beta, gain = lc->gain, th = lc->thresh;
    const bool hard = lc->reset == SNN_RESET_HARD;
    int32_t ns = 0;
    for (int32_t i = 0; i < n; i++) {
        float h = beta * v[i] + gain * cur[i];
        if (h >= th) {
            v[i] = hard ? 0.0f : h - th;
            spk[i] = 1.0f;
            idx[ns++] = i;
        } else {
            v[i] = h;
            spk[i] = 0.0f;
        }
    }
    return ns;
}

/* Weight of the recurrent connection from j to i, whatever the layer kind. */
static float snn__rec_weight(const struct snn_model *m, int l, int32_t i, int32_t j) {
    const struct snn_layer_cfg *lc = &m->cfg.layer[l];
    if (lc->rec == SNN_REC_DENSE)
        return m->p.w_rec[l][(size_t)i * (size_t)lc->n + (size_t)j];
    const int32_t g = snn_layer_ch(lc), np = lc->n / g;
    const int32_t go = i / np, gi = j / np;
    int32_t tap = j - gi * np + (lc->k - 1) / 2 - (i - go * np);
    if (tap < 0 || tap >= lc->k)
        return 0.0f;
    return m->p.w_rec[l][((size_t)go * (size_t)g + (size_t)gi) * (size_t)lc->k + (size_t)tap];
}

void snn__step_naive(const struct snn_model *m, struct snn_state *s, const float *in, float *out) {
    const struct snn_cfg *cfg = &m->cfg;
    const float *x = in;
    int32_t n_prev = cfg->n_in;
    uint64_t fired = 0;
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        const int32_t n = lc->n, dlen = snn_layer_ring_len(lc);
        float xd[SNN_MAX_NEURONS]; /* the delayed inputs (in_d_max > 0) */
        if (lc->in_d_max > 0) {
            /* history: slot (in_slot - e) mod (e_max + 1) holds the inputs of step t - e */
            const int32_t hlen = lc->in_d_max + 1, sl = s->in_slot[l];
            float *hist = s->in_ring[l];
            memcpy(hist + (size_t)sl * (size_t)n_prev, x, (size_t)n_prev * sizeof(float));
            for (int32_t j = 0; j < n_prev; j++) {
                int32_t t = sl - m->in_delay_int[l][j];
                if (t < 0)
                    t += hlen;
                xd[j] = hist[(size_t)t * (size_t)n_prev + (size_t)j];
            }
            s->in_slot[l] = sl + 1 == hlen ? 0 : sl + 1;
        }
        for (int32_t i = 0; i < n; i++) {
            float acc = m->p.b_in[l][i];
            const float *row = m->p.w_in[l] + (size_t)i * (size_t)n_prev;
            const float *xin = lc->in_d_max > 0 ? xd : x;
            for (int32_t j = 0; j < n_prev; j++)
                acc += row[j] * xin[j];
            s->cur[i] = acc;
        }
        if (lc->rec != SNN_REC_NONE) {
            /* hist slot (slot - 1 - d) mod D holds the spikes of step t - 1 - d. */
            const float *hist = s->ring[l];
            for (int32_t i = 0; i < n; i++) {
                float acc = 0.0f;
                for (int32_t j = 0; j < n; j++) {
                    int32_t t = s->slot[l] - 1 - m->delay_int[l][j];
                    if (t < 0)
                        t += dlen;
                    acc += snn__rec_weight(m, l, i, j) * hist[(size_t)t * (size_t)n + (size_t)j];
                }
                s->cur[i] += acc;
            }
        }
        int32_t ns = snn__lif(s->v[l], s->spk[l], s->idx[l], s->cur, n, lc);
        s->n_idx[l] = ns;
        fired += (uint64_t)ns;
        if (lc->rec != SNN_REC_NONE) {
            memcpy(s->ring[l] + (size_t)s->slot[l] * (size_t)n, s->spk[l],
                   (size_t)n * sizeof(float));
            int32_t next = s->slot[l] + 1;
            s->slot[l] = next == dlen ? 0 : next;
        }
        x = s->spk[l];
        n_prev = n;
    }
    for (int32_t c = 0; c < cfg->n_classes; c++) {
        float acc = m->p.b_out[c];
        const float *row = m->p.w_out + (size_t)c * (size_t)n_prev;
        for (int32_t j = 0; j < n_prev; j++)
            acc += row[j] * x[j];
        s->v_out[c] = cfg->out_beta * s->v_out[c] + cfg->out_gain * acc;
    }
    if (out)
        memcpy(out, s->v_out, (size_t)cfg->n_classes * sizeof(float));
    s->head = (s->head + 1) & SNN__HEAD_MASK;
    s->spikes += fired;
}

/* train.c: forward and backward of the conv-delay SNN for BPTT training.
 *
 * The network is run on a whole (B,T) batch one layer at a time, llm.c style:
 * Linear over all B*T frames, BatchNorm over B*T, then the LIF recurrence per
 * clip (sequential in t), then the next layer. Backward walks the same ops in
 * reverse. Work is split over OpenMP threads by clip or by output channel; no
 * two threads ever add into the same gradient entry, and every sum runs in a
 * fixed order, so a seed gives the same model on 1 or 2 cores.
 *
 * Delays: a spike of sender j at step t is spread over future steps t + k
 * (k >= 1) with weights mask[j][k] = max(0, s - |k - 1 - d_j|) / s^2, s = 1 +
 * sigma; q_j[t] = sum_k mask[j][k] s_j[t - k] is the delayed spike train, and
 * the arrivals are r = conv_w(q) (conv) or W q (dense). With sigma = 0 and
 * integer d this is the one-hot tap at 1 + d that snn_step uses.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kws/err.h"
#include "kws/train.h"
#include "train_internal.h"

/* ==== Small helpers ==== */

#define BN_CHUNK 64 /* rows per partial sum of the BatchNorm statistics */

static size_t round_up64(size_t n) {
    return (n + 15) & ~(size_t)15; /* floats: 64-byte multiples */
}

float train_surrogate_grad(int kind, float alpha, float x) {
    if (kind == TRAIN_SG_TRIANGLE) {
        float a = alpha - fabsf(x);
        return a > 0.0f ? a / (alpha * alpha) : 0.0f;
    }
    float u = 0.5f * (float)M_PI * alpha * x;
    return 0.5f * alpha / (1.0f + u * u);
}

float train_delay_kernel(float d, float sigma, int k) {
    float s = 1.0f + sigma;
    float w = s - fabsf((float)k - 1.0f - d);
    return w > 0.0f ? w / (s * s) : 0.0f;
}

float train_delay_kernel_dd(float d, float sigma, int k) {
    float s = 1.0f + sigma;
    float u = (float)k - 1.0f - d;
    if (fabsf(u) >= s)
        return 0.0f;
    return (u > 0.0f ? 1.0f : (u < 0.0f ? -1.0f : 0.0f)) / (s * s);
}

float train_lr_onecycle(float max_lr, float t) {
    /* PyTorch OneCycleLR defaults: 30 % warm-up from max/25 with a cosine,
     * then cosine annealing down to max/(25*1e4). */
    const float pct = 0.3f, lo = max_lr / 25.0f, end = lo / 1e4f;
    if (t < 0.0f)
        t = 0.0f;
    if (t > 1.0f)
        t = 1.0f;
    if (t < pct) {
        float u = t / pct;
        return lo + (max_lr - lo) * 0.5f * (1.0f - cosf((float)M_PI * u));
    }
    float u = (t - pct) / (1.0f - pct);
    return end + (max_lr - end) * 0.5f * (1.0f + cosf((float)M_PI * u));
}

float train_lr_cosine(float lr, float t) {
    if (t < 0.0f)
        t = 0.0f;
    if (t > 1.0f)
        t = 1.0f;
    return lr * 0.5f * (1.0f + cosf((float)M_PI * t));
}

void train_hparams_default(struct train_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    hp->surrogate = TRAIN_SG_ATAN;
    hp->sg_alpha = 5.0f;
    hp->detach_reset = 1;
    hp->use_bn = 1;
    hp->bn_eps = 1e-5f;
    hp->bn_momentum = 0.1f;
    hp->drop_ff = 0.4f;
    hp->drop_rec = 0.2f;
    hp->wd = 1e-5f;
    hp->beta1 = 0.9f;
    hp->beta2 = 0.999f;
    hp->adam_eps = 1e-8f;
    hp->delay_init_lo = 10.0f;
    hp->delay_init_hi = 30.0f;
    hp->sigma = 10.0f;
    hp->bg_weight = 1.0f;
    hp->fg_weight = 1.0f;
    hp->kd_weight = 1.0f; /* counts only with a teacher (net->kd_p) */
    hp->kd_temp = 4.0f;
    hp->in_delay_init_hi = 20.0f;
    hp->sil_class = -1;
    hp->seed = 1;
}

/* Conv-tap partial sums per clip, beside the C delay partials. */
#define TRAIN_PART_W (SNN_MAX_CH * SNN_MAX_CH * SNN_MAX_K)

/* ==== Parameter table ==== */

#define TPL 7 /* tensors per layer: w_in, b_in, bn_g, bn_b, w_rec, delay, in_delay */

/* Fills sizes[i] for every tensor of struct train_params in block order and
 * returns the count; ptr slots follow the same order (see point_params). */
static int param_table(const struct snn_cfg *cfg, int use_bn, size_t *sizes) {
    int n = 0;
    size_t cin = (size_t)cfg->n_in;
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        size_t c = (size_t)lc->n;
        sizes[n++] = c * cin;
        sizes[n++] = c;
        sizes[n++] = use_bn ? c : 0;
        sizes[n++] = use_bn ? c : 0;
        sizes[n++] = snn_rec_weight_count(lc);
        sizes[n++] = lc->rec != SNN_REC_NONE ? c : 0;
        sizes[n++] = lc->in_d_max > 0 ? cin : 0;
        cin = c;
    }
    sizes[n++] = (size_t)cfg->n_classes * cin;
    sizes[n++] = (size_t)cfg->n_classes;
    return n;
}

size_t train_param_count(const struct snn_cfg *cfg, int use_bn) {
    size_t sizes[TPL * SNN_MAX_LAYERS + 2], tot = 0;
    int n = param_table(cfg, use_bn, sizes);
    for (int i = 0; i < n; i++)
        tot += sizes[i];
    return tot;
}

static void point_params(struct train_params *p, const struct snn_cfg *cfg, int use_bn,
                         float *base) {
    size_t sizes[TPL * SNN_MAX_LAYERS + 2];
    int n = param_table(cfg, use_bn, sizes), i = 0;
    memset(p, 0, sizeof *p);
    float **slots[TPL * SNN_MAX_LAYERS + 2];
    for (int l = 0; l < cfg->n_layers; l++) {
        slots[i++] = &p->w_in[l];
        slots[i++] = &p->b_in[l];
        slots[i++] = &p->bn_g[l];
        slots[i++] = &p->bn_b[l];
        slots[i++] = &p->w_rec[l];
        slots[i++] = &p->delay[l];
        slots[i++] = &p->in_delay[l];
    }
    slots[i++] = &p->w_out;
    slots[i++] = &p->b_out;
    KWS_ASSERT(i == n);
    for (i = 0; i < n; i++) {
        *slots[i] = sizes[i] ? base : NULL;
        base += sizes[i];
    }
}

/* ==== Init / free ==== */

int train_net_init(struct train_net *net, const struct snn_cfg *cfg,
                   const struct train_hparams *hp) {
    memset(net, 0, sizeof *net);
    if (cfg->n_layers < 1 || cfg->n_layers > SNN_MAX_LAYERS || cfg->n_in < 1 ||
        cfg->n_classes < 2 || cfg->n_classes > SNN_MAX_CLASSES)
        return KWS_EBADFIELD;
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        if (lc->n < 1 || lc->n > SNN_MAX_NEURONS)
            return KWS_EBADFIELD;
        if (lc->rec == SNN_REC_CONV && (lc->k < 1 || lc->k % 2 == 0 || lc->k > SNN_MAX_K))
            return KWS_EBADFIELD;
        if (lc->rec == SNN_REC_CONV &&
            (lc->ch < 0 || lc->ch > SNN_MAX_CH || lc->n % snn_layer_ch(lc)))
            return KWS_EBADFIELD;
        if (lc->rec != SNN_REC_NONE && (lc->d_max < 0 || lc->d_max > SNN_MAX_DELAY))
            return KWS_EBADFIELD;
        if (lc->in_d_max < 0 || lc->in_d_max > SNN_MAX_DELAY || (l == 0 && lc->in_d_max))
            return KWS_EBADFIELD;
    }
    if (hp->tie_ch < 0 || hp->tie_half < 0 || hp->tie_half > TRAIN_TIE_MAX_HALF ||
        (hp->tie_ch > 0 &&
         (cfg->layer[0].n % hp->tie_ch || cfg->fe.enc_levels < 1 ||
          cfg->fe.enc_levels > KWS_ENC_MAX_LEVELS || cfg->n_in % cfg->fe.enc_levels)))
        return KWS_EBADFIELD;
    if (hp->kd_weight < 0.0f || (hp->kd_weight > 0.0f && !(hp->kd_temp > 0.0f)))
        return KWS_EBADFIELD;
    net->cfg = *cfg;
    net->hp = *hp;
    net->n_params = train_param_count(cfg, hp->use_bn);
    size_t np = round_up64(net->n_params);
    net->mem = aligned_alloc(64, 4 * np * sizeof(float));
    size_t nstat = train_stat_count(cfg);
    net->stats_mem = malloc(nstat * sizeof(float));
    if (!net->mem || !net->stats_mem) {
        train_net_free(net);
        return -ENOMEM;
    }
    if (hp->ema_decay > 0.0f && !(net->ema = malloc((net->n_params + nstat) * sizeof *net->ema))) {
        train_net_free(net);
        return -ENOMEM;
    }
    memset(net->mem, 0, 4 * np * sizeof(float));
    point_params(&net->p, cfg, hp->use_bn, net->mem);
    point_params(&net->g, cfg, hp->use_bn, net->mem + np);
    point_params(&net->m, cfg, hp->use_bn, net->mem + 2 * np);
    point_params(&net->v, cfg, hp->use_bn, net->mem + 3 * np);
    float *st = net->stats_mem;
    for (int l = 0; l < cfg->n_layers; l++) {
        size_t c = (size_t)cfg->layer[l].n;
        net->bn_rmean[l] = st;
        net->bn_rvar[l] = st + c;
        for (size_t i = 0; i < c; i++) {
            st[i] = 0.0f;
            st[c + i] = 1.0f;
        }
        st += 2 * c;
    }

    struct train_rng rng;
    train_rng_seed(&rng, hp->seed, 0x1417);
    size_t cin = (size_t)cfg->n_in;
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        size_t c = (size_t)lc->n;
        float bw = sqrtf(6.0f / (float)cin), bb = 1.0f / sqrtf((float)cin);
        for (size_t i = 0; i < c * cin; i++)
            net->p.w_in[l][i] = bw * (2.0f * train_rng_uniform(&rng) - 1.0f);
        for (size_t i = 0; i < c; i++)
            net->p.b_in[l][i] = bb * (2.0f * train_rng_uniform(&rng) - 1.0f);
        if (hp->use_bn)
            for (size_t i = 0; i < c; i++)
                net->p.bn_g[l][i] = 1.0f;
        if (lc->rec == SNN_REC_CONV) {
            /* U(+-1/sqrt(fan_in)), fan_in = G K, as PyTorch's Conv1d */
            size_t nw = snn_rec_weight_count(lc);
            float bk = 1.0f / sqrtf((float)(snn_layer_ch(lc) * lc->k));
            for (size_t i = 0; i < nw; i++)
                net->p.w_rec[l][i] = bk * (2.0f * train_rng_uniform(&rng) - 1.0f);
        } else if (lc->rec == SNN_REC_DENSE) {
            float bk = sqrtf(3.0f / (float)c);
            for (size_t i = 0; i < c * c; i++)
                net->p.w_rec[l][i] = bk * (2.0f * train_rng_uniform(&rng) - 1.0f);
        }
        if (lc->rec != SNN_REC_NONE) {
            float lo = hp->delay_init_lo, hi = hp->delay_init_hi;
            if (hi > (float)lc->d_max)
                hi = (float)lc->d_max;
            if (lo > hi)
                lo = hi;
            for (size_t i = 0; i < c; i++)
                net->p.delay[l][i] = lo + (hi - lo) * train_rng_uniform(&rng);
        }
        cin = c;
    }
    float bw = sqrtf(6.0f / (float)cin), bb = 1.0f / sqrtf((float)cin);
    for (size_t i = 0; i < (size_t)cfg->n_classes * cin; i++)
        net->p.w_out[i] = bw * (2.0f * train_rng_uniform(&rng) - 1.0f);
    for (int i = 0; i < cfg->n_classes; i++)
        net->p.b_out[i] = bb * (2.0f * train_rng_uniform(&rng) - 1.0f);
    /* input delays last, so nets without them draw what they always drew */
    for (int l = 0; l < cfg->n_layers; l++) {
        int ci = l ? cfg->layer[l - 1].n : cfg->n_in;
        float hi = hp->in_delay_init_hi < (float)cfg->layer[l].in_d_max
                       ? hp->in_delay_init_hi
                       : (float)cfg->layer[l].in_d_max;
        for (int i = 0; net->p.in_delay[l] && i < ci; i++)
            net->p.in_delay[l][i] = hi * train_rng_uniform(&rng);
    }
    if (hp->tie_ch > 0) {
        /* the kernel's draw, at the scale of its own fan-in */
        train_net_tie(net, net->p.w_in[0], net->p.b_in[0], 0);
        float up = sqrtf((float)cfg->n_in / (float)((2 * hp->tie_half + 1) * cfg->fe.enc_levels));
        for (size_t i = 0; i < (size_t)cfg->layer[0].n * (size_t)cfg->n_in; i++)
            net->p.w_in[0][i] *= up;
        for (int i = 0; i < cfg->layer[0].n; i++)
            net->p.b_in[0][i] *= up;
    }
    if (net->ema) {
        memcpy(net->ema, net->mem, net->n_params * sizeof(float));
        memcpy(net->ema + net->n_params, net->stats_mem, nstat * sizeof(float));
    }
    return 0;
}

size_t train_stat_count(const struct snn_cfg *cfg) {
    size_t n = 0;
    for (int l = 0; l < cfg->n_layers; l++)
        n += 2 * (size_t)cfg->layer[l].n;
    return n;
}

size_t train_net_ema_count(const struct train_net *net) {
    return net->n_params + train_stat_count(&net->cfg);
}

TRAIN_HOT static void ema_update(struct train_net *net) {
    float d = (1.0f + (float)net->step) / (10.0f + (float)net->step);
    d = d < net->hp.ema_decay ? d : net->hp.ema_decay;
    size_t np = net->n_params, n = train_net_ema_count(net);
    float *a = net->ema;
    for (size_t i = 0; i < np; i++)
        a[i] = d * a[i] + (1.0f - d) * net->mem[i];
    for (size_t i = np; i < n; i++)
        a[i] = d * a[i] + (1.0f - d) * net->stats_mem[i - np];
}

void train_net_ema_swap(struct train_net *net) {
    if (!net->ema)
        return;
    size_t np = net->n_params, n = train_net_ema_count(net);
    for (size_t i = 0; i < n; i++) {
        float *p = i < np ? net->mem + i : net->stats_mem + (i - np);
        float t = *p;
        *p = net->ema[i];
        net->ema[i] = t;
    }
}

void train_net_free(struct train_net *net) {
    free(net->mem);
    free(net->stats_mem);
    free(net->ema);
    free(net->act_mem);
    memset(net, 0, sizeof *net);
}

void train_net_zero_grad(struct train_net *net) {
    memset(net->mem + round_up64(net->n_params), 0, net->n_params * sizeof(float));
}

/* ==== Activation block ==== */

static int max_taps(float sigma) {
    return 2 * (int)ceilf(1.0f + sigma) + 2;
}

static int acts_alloc(struct train_net *net, int B, int T) {
    const struct snn_cfg *cfg = &net->cfg;
    size_t bt = (size_t)B * (size_t)T, cmax = (size_t)cfg->n_classes, cinmax = (size_t)cfg->n_in;
    size_t tot = 0;
    int ntap = max_taps(net->hp.sigma);
    for (int l = 0; l < cfg->n_layers; l++) {
        size_t c = (size_t)cfg->layer[l].n;
        if (c > cmax)
            cmax = c;
        if (c > cinmax)
            cinmax = c;
        tot += 9 * round_up64(bt * c) + 3 * round_up64(c);
        tot += 2 * round_up64(c * (size_t)ntap) + round_up64(c);
        size_t ci = l ? (size_t)cfg->layer[l - 1].n : (size_t)cfg->n_in;
        if (cfg->layer[l].in_d_max > 0)
            tot += round_up64(bt * ci) + 2 * round_up64(ci * (size_t)ntap) + 2 * round_up64(ci);
    }
    tot += 2 * round_up64(bt * (size_t)cfg->n_classes);
    tot += round_up64(cinmax * cmax > cmax * cmax ? cinmax * cmax : cmax * cmax);
    tot += 4 * round_up64(bt * cmax);
    tot += round_up64((size_t)B * (cmax + TRAIN_PART_W));
    size_t nch = (bt + BN_CHUNK - 1) / BN_CHUNK;
    tot += round_up64(2 * (2 * cmax + nch * 2 * cmax)); /* doubles */
    free(net->act_mem);
    net->act_mem = aligned_alloc(64, tot * sizeof(float));
    if (!net->act_mem)
        return -ENOMEM;
    memset(net->act_mem, 0, tot * sizeof(float));
    float *q = net->act_mem;
#define TAKE(ptr, n)                                                                               \
    do {                                                                                           \
        (ptr) = q;                                                                                 \
        q += round_up64(n);                                                                        \
    } while (0)
    for (int l = 0; l < cfg->n_layers; l++) {
        struct train_layer_acts *a = &net->act[l];
        size_t c = (size_t)cfg->layer[l].n;
        TAKE(a->a, bt * c);
        TAKE(a->xhat, bt * c);
        TAKE(a->q, bt * c);
        TAKE(a->r, bt * c);
        TAKE(a->rmask, bt * c);
        TAKE(a->h, bt * c);
        TAKE(a->s, bt * c);
        TAKE(a->sd, bt * c);
        TAKE(a->smask, bt * c);
        TAKE(a->bn_mean, c);
        TAKE(a->bn_istd, c);
        TAKE(net->tap_w[l], c * (size_t)ntap);
        TAKE(net->tap_dw[l], c * (size_t)ntap);
        net->tap_lo[l] = (int32_t *)q; /* int32 fits a float slot */
        q += round_up64(c);
        net->tap_n[l] = (int32_t *)q;
        q += round_up64(c);
        size_t ci = l ? (size_t)cfg->layer[l - 1].n : (size_t)cfg->n_in;
        a->xd = NULL;
        if (cfg->layer[l].in_d_max > 0) {
            TAKE(a->xd, bt * ci);
            TAKE(net->itap_w[l], ci * (size_t)ntap);
            TAKE(net->itap_dw[l], ci * (size_t)ntap);
            net->itap_lo[l] = (int32_t *)q;
            q += round_up64(ci);
            net->itap_n[l] = (int32_t *)q;
            q += round_up64(ci);
        }
    }
    TAKE(net->vo, bt * (size_t)cfg->n_classes);
    TAKE(net->po, bt * (size_t)cfg->n_classes);
    TAKE(net->wt, cinmax * cmax > cmax * cmax ? cinmax * cmax : cmax * cmax);
    for (int i = 0; i < 4; i++)
        TAKE(net->scratch[i], bt * cmax);
    TAKE(net->part, (size_t)B * (cmax + TRAIN_PART_W));
    net->bn_part = (double *)q; /* 64-byte aligned: every TAKE rounds to 16 floats */
    q += round_up64(2 * (2 * cmax + nch * 2 * cmax));
#undef TAKE
    net->ntap_cap = ntap;
    net->B = B;
    net->T = T;
    return 0;
}

/* Tap tables of n senders with delays d for the current sigma, the first
 * usable tap being k0: a spike is spread over taps k >= k0 by the triangle
 * centred on k0 + d_j (tap k weighs train_delay_kernel(d_j, sigma, k + 1 -
 * k0)). Sender j's non-zero taps are k = lo[j] .. lo[j] + cnt[j] - 1, held
 * in row j of w and dw (ntap floats each, zero past cnt[j]). The loops run
 * over those taps only: a zero tap would add an exact 0 to every sum.
 * Returns ntap. */
static int fill_taps(const float *d, int n, float sigma, int k0, int32_t *lo, int32_t *cnt,
                     float *w, float *dw) {
    int ntap = max_taps(sigma);
    float s = 1.0f + sigma;
    for (int j = 0; j < n; j++) {
        int l0 = (int)floorf((float)k0 + d[j] - s);
        if (l0 < k0)
            l0 = k0;
        float *wj = w + (size_t)j * ntap, *dwj = dw + (size_t)j * ntap;
        int first = -1, last = -1;
        for (int m = 0; m < ntap; m++) {
            wj[m] = train_delay_kernel(d[j], sigma, l0 + m + 1 - k0);
            dwj[m] = train_delay_kernel_dd(d[j], sigma, l0 + m + 1 - k0);
            if (wj[m] != 0.0f || dwj[m] != 0.0f) {
                if (first < 0)
                    first = m;
                last = m;
            }
        }
        if (first < 0)
            first = last = 0;
        int c = last - first + 1;
        memmove(wj, wj + first, (size_t)c * sizeof(float));
        memmove(dwj, dwj + first, (size_t)c * sizeof(float));
        for (int m = c; m < ntap; m++)
            wj[m] = dwj[m] = 0.0f;
        lo[j] = l0 + first;
        cnt[j] = c;
    }
    return ntap;
}

/* Builds the tap table of a recurrent layer for the current sigma: for sender
 * j, taps k = k_lo[j] .. k_lo[j] + ntap - 1 (k >= 1: a spike arrives at the
 * next step at the earliest) with weights tap_w and d/dd tap_dw. */
static void build_taps(struct train_net *net, int l) {
    net->ntap = fill_taps(net->p.delay[l], net->cfg.layer[l].n, net->hp.sigma, 1, net->tap_lo[l],
                          net->tap_n[l], net->tap_w[l], net->tap_dw[l]);
}

/* Input delays of layer l (n inputs): a spike of input j at step t reaches
 * the layer at t + d_j, spread by the triangle kernel centred on d_j (taps
 * k >= 0; k = 0 is the same step). */
static void build_in_taps(struct train_net *net, int l, int n) {
    net->ntap = fill_taps(net->p.in_delay[l], n, net->hp.sigma, 0, net->itap_lo[l], net->itap_n[l],
                          net->itap_w[l], net->itap_dw[l]);
}

/* xd[b,t,j] = sum_m w_jm x[b, t - lo_j - m, j]. One clip per thread; the
 * inputs are spikes, so only the non-zero ones are scattered forward. */
TRAIN_HOT static void in_delay_forward(struct train_net *net, int l, const float *x, float *xd,
                                       int n) {
    int B = net->B, T = net->T, ntap = net->ntap;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *xdb = xd + (size_t)b * T * n;
        const float *xb = x + (size_t)b * T * n;
        memset(xdb, 0, (size_t)T * n * sizeof(float));
        for (int u = 0; u < T; u++)
            for (int j = 0; j < n; j++) {
                float v = xb[(size_t)u * n + j];
                if (v == 0.0f)
                    continue;
                int t0 = u + net->itap_lo[l][j], nt = net->itap_n[l][j];
                const float *w = net->itap_w[l] + (size_t)j * ntap;
                for (int m = 0; m < nt && t0 + m < T; m++)
                    xdb[(size_t)(t0 + m) * n + j] += v * w[m];
            }
    }
}

/* From dxd (gradient w.r.t. xd): dx (if not NULL, overwritten) and the
 * delays' gradient gd (accumulated). One clip per thread; the delay
 * gradient is summed per clip into net->part, then over clips in order. */
TRAIN_HOT static void in_delay_backward(struct train_net *net, int l, const float *x,
                                        const float *dxd, float *dx, float *gd, int n) {
    int B = net->B, T = net->T, ntap = net->ntap;
    size_t pw = (size_t)n; /* net->part holds B x (C_max + TRAIN_PART_W) floats, n <= C_max */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * T * n, *gb = dxd + (size_t)b * T * n;
        float *pg = net->part + (size_t)b * pw;
        memset(pg, 0, (size_t)n * sizeof(float));
        for (int u = 0; u < T; u++)
            for (int j = 0; j < n; j++) {
                int t0 = u + net->itap_lo[l][j], nt = net->itap_n[l][j];
                const float *w = net->itap_w[l] + (size_t)j * ntap;
                const float *dw = net->itap_dw[l] + (size_t)j * ntap;
                float v = xb[(size_t)u * n + j], acc = 0.0f, accd = 0.0f;
                for (int m = 0; m < nt && t0 + m < T; m++) {
                    float g = gb[(size_t)(t0 + m) * n + j];
                    acc += w[m] * g;
                    accd += dw[m] * g;
                }
                if (dx)
                    dx[((size_t)b * T + u) * n + j] = acc;
                pg[j] += v * accd;
            }
    }
    for (int b = 0; b < B; b++)
        for (int j = 0; j < n; j++)
            gd[j] += net->part[(size_t)b * pw + j];
}

/* ==== Linear ==== */

/* The Linear kernels below keep a tile of outputs in registers while they
 * sum (GCC vector extensions: 8 floats, one AVX register or two SSE/NEON
 * ones), and every output element still adds its terms one at a time in
 * increasing order of the summed index: the result is the same float for
 * float as the plain triple loop. */
typedef float lin_v __attribute__((vector_size(32)));
#define LIN_V 8   /* floats per lin_v */
#define LIN_JB 16 /* weight-gradient rows (inputs) per pass over dout */
#define LIN_LD(v, p) memcpy(&(v), (p), sizeof(lin_v))
#define LIN_ST(p, v) memcpy((p), &(v), sizeof(lin_v))

/* out (N, C) = x (N, Cin) W^T + b, W (C, Cin). x is mostly zeros (spike
 * counts), so each row first lists its non-zero inputs, and only their rows
 * of W^T (wt, (Cin, C)) are added. */
TRAIN_HOT static void linear_forward(float *out, const float *x, const float *w, const float *b,
                                     float *wt, size_t N, int Cin, int C) {
    for (int i = 0; i < C; i++)
        for (int j = 0; j < Cin; j++)
            wt[(size_t)j * C + i] = w[(size_t)i * Cin + j];
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        float *o = out + n * C;
        const float *xn = x + n * Cin;
        int idx[SNN_MAX_INPUTS > SNN_MAX_NEURONS ? SNN_MAX_INPUTS : SNN_MAX_NEURONS];
        float val[SNN_MAX_INPUTS > SNN_MAX_NEURONS ? SNN_MAX_INPUTS : SNN_MAX_NEURONS];
        int nz = 0;
        for (int j = 0; j < Cin; j++) { /* branch-free: spikes are unpredictable */
            idx[nz] = j;
            val[nz] = xn[j];
            nz += xn[j] != 0.0f;
        }
        int i = 0;
        for (; i + 4 * LIN_V <= C; i += 4 * LIN_V) {
            lin_v a0, a1, a2, a3;
            LIN_LD(a0, b + i);
            LIN_LD(a1, b + i + LIN_V);
            LIN_LD(a2, b + i + 2 * LIN_V);
            LIN_LD(a3, b + i + 3 * LIN_V);
            for (int z = 0; z < nz; z++) {
                const float *wr = wt + (size_t)idx[z] * C + i;
                float xv = val[z];
                lin_v w0, w1, w2, w3;
                LIN_LD(w0, wr);
                LIN_LD(w1, wr + LIN_V);
                LIN_LD(w2, wr + 2 * LIN_V);
                LIN_LD(w3, wr + 3 * LIN_V);
                a0 += xv * w0;
                a1 += xv * w1;
                a2 += xv * w2;
                a3 += xv * w3;
            }
            LIN_ST(o + i, a0);
            LIN_ST(o + i + LIN_V, a1);
            LIN_ST(o + i + 2 * LIN_V, a2);
            LIN_ST(o + i + 3 * LIN_V, a3);
        }
        for (; i < C; i++) {
            float acc = b[i];
            for (int z = 0; z < nz; z++)
                acc += val[z] * wt[(size_t)idx[z] * C + i];
            o[i] = acc;
        }
    }
}

/* dW (C, Cin) += sum_n dout[n,i] x[n,j]; db (C) += sum_n dout; dx (N, Cin) =
 * dout W (overwritten; skipped when dx is NULL). dwt is a (Cin, C) scratch. */
TRAIN_HOT static void linear_backward(float *dx, float *dw, float *db, float *dwt,
                                      const float *dout, const float *x, const float *w, size_t N,
                                      int Cin, int C) {
    memset(dwt, 0, (size_t)Cin * C * sizeof(float));
    /* dwt row j sums x[n,j] dout[n] over n for the non-zero x[n,j]; a block
     * of LIN_JB rows shares one pass over dout. */
    int nblk = (Cin + LIN_JB - 1) / LIN_JB;
#pragma omp parallel for schedule(static)
    for (int jb = 0; jb < nblk; jb++) {
        int j0 = jb * LIN_JB, j1 = j0 + LIN_JB < Cin ? j0 + LIN_JB : Cin;
        for (size_t n = 0; n < N; n++) {
            const float *xn = x + n * Cin, *dn = dout + n * C;
            if (n + 16 < N) /* x is read down a column: its stride defeats the prefetcher */
                __builtin_prefetch(xn + 16 * (size_t)Cin + j0);
            int idx[LIN_JB], nz = 0;
            for (int j = j0; j < j1; j++) { /* branch-free, as in linear_forward */
                idx[nz] = j;
                nz += xn[j] != 0.0f;
            }
            for (int z = 0; z < nz; z++) {
                float xv = xn[idx[z]], *acc = dwt + (size_t)idx[z] * C;
                for (int i = 0; i < C; i++)
                    acc[i] += xv * dn[i];
            }
        }
    }
    /* db: column sums of dout, 64 columns per pass over its rows */
    int nib = (C + 63) / 64;
#pragma omp parallel for schedule(static)
    for (int ib = 0; ib < nib; ib++) {
        int i0 = ib * 64, i1 = i0 + 64 < C ? i0 + 64 : C;
        float sb[64] = {0};
        for (size_t n = 0; n < N; n++) {
            const float *dn = dout + n * C;
            for (int i = i0; i < i1; i++)
                sb[i - i0] += dn[i];
        }
        for (int i = i0; i < i1; i++) {
            db[i] += sb[i - i0];
            for (int j = 0; j < Cin; j++)
                dw[(size_t)i * Cin + j] += dwt[(size_t)j * C + i];
        }
    }
    if (!dx)
        return;
    /* Four rows by 2 LIN_V columns at a time, summed over i in registers. */
    size_t N4 = N / 4 * 4;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N4; n += 4) {
        const float *d0 = dout + n * C, *d1 = d0 + C, *d2 = d1 + C, *d3 = d2 + C;
        float *o = dx + n * Cin;
        int j = 0;
        for (; j + 2 * LIN_V <= Cin; j += 2 * LIN_V) {
            lin_v a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
            for (int i = 0; i < C; i++) {
                const float *wr = w + (size_t)i * Cin + j;
                lin_v w0, w1;
                LIN_LD(w0, wr);
                LIN_LD(w1, wr + LIN_V);
                float v0 = d0[i], v1 = d1[i], v2 = d2[i], v3 = d3[i];
                a0 += v0 * w0;
                b0 += v0 * w1;
                a1 += v1 * w0;
                b1 += v1 * w1;
                a2 += v2 * w0;
                b2 += v2 * w1;
                a3 += v3 * w0;
                b3 += v3 * w1;
            }
            LIN_ST(o + j, a0);
            LIN_ST(o + j + LIN_V, b0);
            LIN_ST(o + Cin + j, a1);
            LIN_ST(o + Cin + j + LIN_V, b1);
            LIN_ST(o + 2 * (size_t)Cin + j, a2);
            LIN_ST(o + 2 * (size_t)Cin + j + LIN_V, b2);
            LIN_ST(o + 3 * (size_t)Cin + j, a3);
            LIN_ST(o + 3 * (size_t)Cin + j + LIN_V, b3);
        }
        for (; j < Cin; j++)
            for (int r = 0; r < 4; r++) {
                const float *dr = dout + (n + (size_t)r) * C;
                float acc = 0.0f;
                for (int i = 0; i < C; i++)
                    acc += dr[i] * w[(size_t)i * Cin + j];
                o[(size_t)r * Cin + j] = acc;
            }
    }
    for (size_t n = N4; n < N; n++) {
        const float *dn = dout + n * C;
        float *o = dx + n * Cin;
        for (int j = 0; j < Cin; j++) {
            float acc = 0.0f;
            for (int i = 0; i < C; i++)
                acc += dn[i] * w[(size_t)i * Cin + j];
            o[j] = acc;
        }
    }
}

/* ==== BatchNorm over (B*T) ==== */

/* Column sums over rows of a (N, C) matrix in fixed chunks of BN_CHUNK rows:
 * part (n_chunks, 2C) gets sum f and sum g per chunk, so the reduction
 * order never depends on the number of threads. */

/* out_s[c] = sum_n x[n,c], out_sx[c] = sum_n x[n,c]*y[n,c] (y may be NULL);
 * with mean != NULL the first sum is of (x - mean)^2 instead. */
TRAIN_HOT static void col_sums(double *out_s, double *out_sx, const float *x, const float *y,
                               const float *mean, size_t N, int C, double *part) {
    size_t nch = (N + BN_CHUNK - 1) / BN_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t ch = 0; ch < nch; ch++) {
        double *ps = part + ch * 2 * (size_t)C, *px = ps + C;
        for (int c = 0; c < C; c++)
            ps[c] = px[c] = 0.0;
        size_t n1 = (ch + 1) * BN_CHUNK < N ? (ch + 1) * BN_CHUNK : N;
        for (size_t n = ch * BN_CHUNK; n < n1; n++) {
            const float *xr = x + n * C;
            if (mean) {
                for (int c = 0; c < C; c++) {
                    float d = xr[c] - mean[c];
                    ps[c] += (double)(d * d);
                }
            } else {
                for (int c = 0; c < C; c++)
                    ps[c] += (double)xr[c];
            }
            if (y) {
                const float *yr = y + n * C;
                for (int c = 0; c < C; c++)
                    px[c] += (double)(xr[c] * yr[c]);
            }
        }
    }
    for (int c = 0; c < C; c++) {
        double a = 0.0, b = 0.0;
        for (size_t ch = 0; ch < nch; ch++) {
            a += part[ch * 2 * (size_t)C + c];
            b += part[ch * 2 * (size_t)C + C + c];
        }
        out_s[c] = a;
        if (out_sx)
            out_sx[c] = b;
    }
}

/* xhat (N, C) = (a - mean) * istd. In training mode the batch statistics are
 * used and the running ones updated (unbiased variance, like PyTorch). */
TRAIN_HOT static void bn_forward(struct train_net *net, int l, size_t N, int train) {
    struct train_layer_acts *A = &net->act[l];
    int C = net->cfg.layer[l].n;
    float eps = net->hp.bn_eps, mom = net->hp.bn_momentum;
    if (train) {
        double *sum = net->bn_part, *ss = sum + C, *part = sum + 2 * C;
        col_sums(sum, NULL, A->a, NULL, NULL, N, C, part);
        for (int c = 0; c < C; c++)
            A->bn_mean[c] = (float)(sum[c] / (double)N);
        col_sums(ss, NULL, A->a, NULL, A->bn_mean, N, C, part);
        for (int c = 0; c < C; c++) {
            double var = ss[c] / (double)N;
            A->bn_istd[c] = (float)(1.0 / sqrt(var + eps));
            double uvar = N > 1 ? ss[c] / (double)(N - 1) : var;
            net->bn_rmean[l][c] = (1.0f - mom) * net->bn_rmean[l][c] + mom * A->bn_mean[c];
            net->bn_rvar[l][c] = (1.0f - mom) * net->bn_rvar[l][c] + mom * (float)uvar;
        }
    } else {
        for (int c = 0; c < C; c++) {
            A->bn_mean[c] = net->bn_rmean[l][c];
            A->bn_istd[c] = 1.0f / sqrtf(net->bn_rvar[l][c] + eps);
        }
    }
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            A->xhat[n * C + c] = (A->a[n * C + c] - A->bn_mean[c]) * A->bn_istd[c];
}

/* da (N, C) = BN backward of dz (training-mode statistics); dg, db accumulate. */
TRAIN_HOT static void bn_backward(struct train_net *net, float *da, float *dg, float *db,
                                  const float *dz, const float *xhat, const float *g,
                                  const float *istd, size_t N, int C) {
    double *s = net->bn_part, *sx = s + C, *part = s + 2 * C;
    col_sums(s, sx, dz, xhat, NULL, N, C, part);
    float ms[SNN_MAX_NEURONS], msx[SNN_MAX_NEURONS], k[SNN_MAX_NEURONS];
    for (int c = 0; c < C; c++) {
        db[c] += (float)s[c];
        dg[c] += (float)sx[c];
        ms[c] = (float)(s[c] / (double)N);
        msx[c] = (float)(sx[c] / (double)N);
        k[c] = g[c] * istd[c];
    }
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            da[n * C + c] = k[c] * (dz[n * C + c] - ms[c] - xhat[n * C + c] * msx[c]);
}

/* ==== Recurrent mixing ==== */

/* Positions p of a P-position channel whose tap m, p + m - pad, falls inside
 * [0, P): the run [*lo, *hi). */
static inline void conv_run(int m, int pad, int P, int *lo, int *hi) {
    *lo = pad - m > 0 ? pad - m : 0;
    *hi = P + pad - m < P ? P + pad - m : P;
}

/* r (C) = conv_w(q) or W q. */
TRAIN_HOT static void rec_mix(float *r, const float *q, const struct snn_layer_cfg *lc,
                              const float *w, const float *wt) {
    int C = lc->n;
    if (lc->rec == SNN_REC_CONV) {
        /* r[go][p] = sum over gi, then m, of w[go][gi][m] q[gi][p + m - pad];
         * the positions p with p + m - pad inside [0, P) form one run, so
         * the inner loop has no test and vectorises. */
        int K = lc->k, pad = (K - 1) / 2, G = snn_layer_ch(lc), P = C / G;
        memset(r, 0, (size_t)C * sizeof(float));
        for (int go = 0; go < G; go++) {
            float *rg = r + (size_t)go * P;
            for (int gi = 0; gi < G; gi++) {
                const float *wk = w + ((size_t)go * G + gi) * K;
                const float *qg = q + (size_t)gi * P - pad;
                for (int m = 0; m < K; m++) {
                    int lo, hi;
                    conv_run(m, pad, P, &lo, &hi);
                    float wm = wk[m];
                    for (int p = lo; p < hi; p++)
                        rg[p] += wm * qg[p + m];
                }
            }
        }
    } else {
        memset(r, 0, (size_t)C * sizeof(float));
        for (int j = 0; j < C; j++) {
            float qv = q[j];
            if (qv == 0.0f)
                continue;
            const float *wr = wt + (size_t)j * C;
            for (int i = 0; i < C; i++)
                r[i] += qv * wr[i];
        }
    }
}

/* dq (C) = mix^T dr (overwritten). */
TRAIN_HOT static void rec_mix_backward(float *dq, const float *dr, const struct snn_layer_cfg *lc,
                                       const float *w) {
    int C = lc->n;
    if (lc->rec == SNN_REC_CONV) {
        /* dq[gi][j] = sum over go, then p = j - m + pad increasing (m
         * decreasing), of w[go][gi][m] dr[go][p]: the transpose of rec_mix,
         * written as runs over j. */
        int K = lc->k, pad = (K - 1) / 2, G = snn_layer_ch(lc), P = C / G;
        memset(dq, 0, (size_t)C * sizeof(float));
        for (int go = 0; go < G; go++)
            for (int gi = 0; gi < G; gi++) {
                const float *wk = w + ((size_t)go * G + gi) * K;
                const float *dg = dr + (size_t)go * P + pad;
                float *qg = dq + (size_t)gi * P;
                for (int m = K - 1; m >= 0; m--) {
                    int lo = m - pad > 0 ? m - pad : 0, hi = P + m - pad < P ? P + m - pad : P;
                    float wm = wk[m];
                    for (int j = lo; j < hi; j++)
                        qg[j] += wm * dg[j - m];
                }
            }
    } else {
        memset(dq, 0, (size_t)C * sizeof(float));
        for (int i = 0; i < C; i++) {
            float dv = dr[i];
            if (dv == 0.0f)
                continue;
            const float *wr = w + (size_t)i * C;
            for (int j = 0; j < C; j++)
                dq[j] += dv * wr[j];
        }
    }
}

/* ==== LIF layer forward (per clip, sequential in t) ==== */

/* mask (n) = 0 with probability p, else 1/(1-p); four 16-bit draws per call. */
TRAIN_HOT static void dropout_fill(float *mask, int n, float p, struct train_rng *rng) {
    if (p <= 0.0f) {
        for (int i = 0; i < n; i++)
            mask[i] = 1.0f;
        return;
    }
    uint32_t cut = (uint32_t)(p * 65536.0f);
    float keep = 1.0f / (1.0f - p);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        uint64_t r = train_rng_next(rng);
        mask[i] = ((uint32_t)r & 0xFFFFu) < cut ? 0.0f : keep;
        mask[i + 1] = ((uint32_t)(r >> 16) & 0xFFFFu) < cut ? 0.0f : keep;
        mask[i + 2] = ((uint32_t)(r >> 32) & 0xFFFFu) < cut ? 0.0f : keep;
        mask[i + 3] = (uint32_t)(r >> 48) < cut ? 0.0f : keep;
    }
    if (i < n) {
        uint64_t r = train_rng_next(rng);
        for (int k = 0; i + k < n; k++)
            mask[i + k] = ((uint32_t)(r >> (16 * k)) & 0xFFFFu) < cut ? 0.0f : keep;
    }
}

TRAIN_HOT static void lif_forward(struct train_net *net, int l, int train) {
    const struct snn_layer_cfg *lc = &net->cfg.layer[l];
    struct train_layer_acts *A = &net->act[l];
    const struct train_hparams *hp = &net->hp;
    int B = net->B, T = net->T, C = lc->n, rec = lc->rec != SNN_REC_NONE;
    const float *bg = hp->use_bn ? net->p.bn_g[l] : NULL, *bb = hp->use_bn ? net->p.bn_b[l] : NULL;
    float pr = hp->drop_rec, pf = hp->drop_ff;
    if (rec)
        build_taps(net, l);
    int ntap = net->ntap;
    if (rec) {
        if (lc->rec == SNN_REC_DENSE)
            for (int i = 0; i < C; i++)
                for (int j = 0; j < C; j++)
                    net->wt[(size_t)j * C + i] = net->p.w_rec[l][(size_t)i * C + j];
    }
    uint64_t spikes = 0;
#pragma omp parallel for schedule(static) reduction(+ : spikes)
    for (int b = 0; b < B; b++) {
        struct train_rng rng;
        train_rng_seed(&rng, hp->seed ^ ((uint64_t)net->step * 0x9E3779B97F4A7C15ull),
                       (uint64_t)(l * 65536 + b) + 7);
        size_t base = (size_t)b * T * C;
        if (rec)
            memset(A->q + base, 0, (size_t)T * C * sizeof(float));
        float v[SNN_MAX_NEURONS];
        memset(v, 0, (size_t)C * sizeof(float));
        for (int t = 0; t < T; t++) {
            size_t o = base + (size_t)t * C;
            float *h = A->h + o, *s = A->s + o;
            const float *z = hp->use_bn ? A->xhat + o : A->a + o;
            if (rec) {
                rec_mix(A->r + o, A->q + o, lc, net->p.w_rec[l], net->wt);
                dropout_fill(A->rmask + o, C, train ? pr : 0.0f, &rng);
            }
            const float *rr = A->r + o, *rmk = A->rmask + o;
            float beta = lc->beta, gain = lc->gain, th = lc->thresh;
            int hard = lc->reset == SNN_RESET_HARD, smooth = hp->smooth;
            for (int i = 0; i < C; i++) { /* vectorised unless smooth */
                float cur = bg ? bg[i] * z[i] + bb[i] : z[i];
                if (rec)
                    cur += rmk[i] * rr[i];
                float hv = beta * v[i] + gain * cur;
                float sv = hv >= th ? 1.0f : 0.0f;
                if (smooth)
                    sv = 0.5f + atanf(0.5f * (float)M_PI * hp->sg_alpha * (hv - th)) / (float)M_PI;
                h[i] = hv;
                s[i] = sv;
                v[i] = hard ? hv * (1.0f - sv) : hv - th * sv;
            }
            /* the spiking neurons, listed branch-free (spikes are unpredictable) */
            int fired[SNN_MAX_NEURONS], nf = 0;
            for (int i = 0; i < C; i++) {
                fired[nf] = i;
                nf += s[i] != 0.0f;
            }
            spikes += (uint64_t)nf;
            for (int f = 0; rec && f < nf; f++) {
                int i = fired[f], lo = net->tap_lo[l][i], nt = net->tap_n[l][i];
                const float *tw = net->tap_w[l] + (size_t)i * ntap;
                if (nt > T - t - lo)
                    nt = T - t - lo;
                if (nt <= 0)
                    continue;
                float *qi = A->q + base + (size_t)(t + lo) * C + i;
                for (int n = 0; n < nt; n++)
                    qi[(size_t)n * C] += s[i] * tw[n];
            }
            dropout_fill(A->smask + o, C, train ? pf : 0.0f, &rng);
            for (int i = 0; i < C; i++)
                A->sd[o + i] = s[i] * A->smask[o + i];
        }
    }
    net->n_spikes += spikes;
}

/* ==== Readout and loss ==== */

int train_clip_predict(const float *vo, int T, int K, float *score) {
    float tmp[SNN_MAX_CLASSES];
    float *P = score ? score : tmp;
    for (int c = 0; c < K; c++)
        P[c] = 0.0f;
    for (int t = 0; t < T; t++) {
        const float *v = vo + (size_t)t * K;
        float mx = v[0], z = 0.0f;
        for (int c = 1; c < K; c++)
            mx = v[c] > mx ? v[c] : mx;
        float e[SNN_MAX_CLASSES];
        for (int c = 0; c < K; c++) {
            e[c] = expf(v[c] - mx);
            z += e[c];
        }
        for (int c = 0; c < K; c++)
            P[c] += e[c] / z;
    }
    int best = 0;
    for (int c = 1; c < K; c++)
        if (P[c] > P[best])
            best = c;
    return best;
}

static void softmax_row(float *out, const float *v, int K) {
    float mx = v[0], z = 0.0f;
    for (int c = 1; c < K; c++)
        mx = v[c] > mx ? v[c] : mx;
    for (int c = 0; c < K; c++) {
        out[c] = expf(v[c] - mx);
        z += out[c];
    }
    for (int c = 0; c < K; c++)
        out[c] /= z;
}

TRAIN_HOT static void readout_forward(struct train_net *net) {
    const struct snn_cfg *cfg = &net->cfg;
    int B = net->B, T = net->T, K = cfg->n_classes, L = cfg->n_layers;
    int C = cfg->layer[L - 1].n;
    size_t N = (size_t)B * T;
    linear_forward(net->vo, net->act[L - 1].sd, net->p.w_out, net->p.b_out, net->wt, N, C, K);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *v = net->vo + (size_t)b * T * K;
        for (int c = 0; c < K; c++)
            v[c] *= cfg->out_gain;
        for (int t = 1; t < T; t++)
            for (int c = 0; c < K; c++)
                v[(size_t)t * K + c] = cfg->out_beta * v[(size_t)(t - 1) * K + c] +
                                       cfg->out_gain * v[(size_t)t * K + c];
        for (int t = 0; t < T; t++)
            softmax_row(net->po + ((size_t)b * T + t) * K, v + (size_t)t * K, K);
    }
}

/* Distillation term of one clip: tau^2 KL(softmax(pt/tau) || softmax(p/tau)).
 * With dp != NULL also writes its gradient w.r.t. p: tau (qs - qt). */
static double kd_loss(const float *pt, const float *p, int K, float tau, float *dp) {
    float at[SNN_MAX_CLASSES], as[SNN_MAX_CLASSES], qt[SNN_MAX_CLASSES], qs[SNN_MAX_CLASSES];
    for (int c = 0; c < K; c++) {
        at[c] = pt[c] / tau;
        as[c] = p[c] / tau;
    }
    softmax_row(qt, at, K);
    softmax_row(qs, as, K);
    double kl = 0.0;
    for (int c = 0; c < K; c++) {
        if (qt[c] > 0.0f)
            kl += (double)qt[c] * (log((double)qt[c]) - log((double)qs[c] + 1e-30));
        if (dp)
            dp[c] = tau * (qs[c] - qt[c]);
    }
    return (double)tau * tau * kl;
}

/* ==== Stream loss (per-frame targets, max-pooled keyword peaks) ==== */

/* Bit c set for every class that never fires (labels starting with '_'). */
static uint32_t filler_mask(const struct snn_cfg *cfg) {
    uint32_t m = 0;
    for (int c = 0; c < cfg->n_classes; c++)
        if (cfg->labels[c][0] == '_')
            m |= 1u << c;
    return m;
}

/* Allowed classes of a frame code (see TRAIN_FT_*), as a bit mask. */
static uint32_t frame_allowed(int code, uint32_t fill) {
    return code >= 0 ? fill | 1u << (code & 0xff) : fill;
}

/* Smoothed posterior of class c at frame t: the mean of p over the last w frames. */
static float smoothed(const float *po, int K, int t, int c, int w) {
    int u0 = t - w + 1 < 0 ? 0 : t - w + 1;
    float s = 0.0f;
    for (int u = u0; u <= t; u++)
        s += po[(size_t)u * K + c];
    return s / (float)(t - u0 + 1);
}

/* Adds g * d(smoothed posterior of c at frame t1, over frames t0..t1)/dv
 * to d: through the softmax, g * p_c(u) * ([k == c] - p_k(u)) for each
 * frame u of the window and class k. g is dL/dp_c(u), the same for every u. */
static void add_smoothed_grad(float *d, const float *po, int K, int c, int t0, int t1, float g) {
    for (int u = t0; u <= t1; u++) {
        const float *p = po + (size_t)u * K;
        for (int k = 0; k < K; k++)
            d[(size_t)u * K + k] += g * p[c] * ((k == c ? 1.0f : 0.0f) - p[k]);
    }
}

/* The false-alarm term of the stream loss for window b (see TRAIN_FT_*),
 * with its gradient w.r.t. the readout potentials added to d (scaled by
 * 1/B) when d != NULL. */
static double false_alarm_term(const struct train_net *net, int b, float *d, uint32_t fill, int W) {
    int T = net->T, K = net->cfg.n_classes;
    const int16_t *ft = net->ftgt + (size_t)b * T;
    const float *po = net->po + (size_t)b * T * K;
    float B = (float)net->B, wt = net->hp.fa_weight;
    double loss = 0.0;
    for (int c = 0; c < K; c++) {
        if (fill >> c & 1u)
            continue;
        int last_ok = -1, best = -1; /* the last frame that allows c or has no target */
        float m = -1.0f;
        for (int t = 0; t < T; t++) {
            if (ft[t] == TRAIN_FT_NONE || frame_allowed(ft[t], fill) >> c & 1u)
                last_ok = t;
            else if (t - last_ok >= W) {
                float sm = smoothed(po, K, t, c, W);
                if (sm > m) {
                    m = sm;
                    best = t;
                }
            }
        }
        if (best < 0)
            continue;
        m = m < 1.0f - 1e-6f ? m : 1.0f - 1e-6f;
        loss += wt * -log(1.0 - (double)m);
        if (d) /* dL/dp_c(u) = wt / ((1 - m) W) */
            add_smoothed_grad(d, po, K, c, best - W + 1, best, wt / ((1.0f - m) * (float)W * B));
    }
    return loss;
}

/* Loss of window b under net->ftgt; with d != NULL also adds its gradient
 * w.r.t. the readout potentials (T,K) scaled by 1/B. Counts hit regions. */
static double stream_loss(const struct train_net *net, int b, float *d, int *n_reg, int *n_hit) {
    int T = net->T, K = net->cfg.n_classes, W = net->peak_w > 0 ? net->peak_w : 30;
    const int16_t *ft = net->ftgt + (size_t)b * T;
    const float *po = net->po + (size_t)b * T * K;
    uint32_t fill = filler_mask(&net->cfg);
    float wf = net->hp.bg_weight / (float)T, B = (float)net->B;
    double loss = 0.0;
    for (int t = 0; t < T; t++) {
        if (ft[t] == TRAIN_FT_NONE)
            continue;
        uint32_t a = frame_allowed(ft[t], fill);
        const float *p = po + (size_t)t * K;
        float S = 0.0f;
        for (int c = 0; c < K; c++)
            S += a >> c & 1u ? p[c] : 0.0f;
        S = S > 1e-30f ? S : 1e-30f;
        loss += wf * -log((double)S);
        if (d) /* d(-log S)/dv_k = p_k - [k allowed] p_k / S */
            for (int c = 0; c < K; c++)
                d[(size_t)t * K + c] += wf / B * (p[c] - (a >> c & 1u ? p[c] / S : 0.0f));
    }
    if (net->hp.fa_weight > 0.0f)
        loss += false_alarm_term(net, b, d, fill, W);
    for (int t = 0; t < T;) {
        if (ft[t] < 0 || !(ft[t] & TRAIN_FT_PEAK)) {
            t++;
            continue;
        }
        int code = ft[t], c = code & 0xff, t1 = t;
        int best = t;
        float m = -1.0f;
        for (; t1 < T && ft[t1] == code; t1++) {
            float sm = smoothed(po, K, t1, c, W);
            if (sm > m) {
                m = sm;
                best = t1;
            }
        }
        (*n_reg)++;
        *n_hit += m >= 0.5f;
        m = m > 1e-30f ? m : 1e-30f;
        loss += net->hp.win_weight * -log((double)m);
        if (d && net->hp.win_weight > 0.0f) {
            int u0 = best - W + 1 < 0 ? 0 : best - W + 1;
            float g = -net->hp.win_weight / (m * (float)(best - u0 + 1) * B); /* dL/dp_c(u) */
            add_smoothed_grad(d, po, K, c, u0, best, g);
        }
        t = t1;
    }
    return loss;
}

TRAIN_HOT static void loss_forward(struct train_net *net) {
    if (net->ftgt) {
        double loss = 0.0;
        int n_reg = 0, n_hit = 0;
        for (int b = 0; b < net->B; b++)
            loss += stream_loss(net, b, NULL, &n_reg, &n_hit);
        net->loss = loss / net->B;
        net->n_correct = n_hit;
        net->n_regions = n_reg;
        return;
    }
    int B = net->B, T = net->T, K = net->cfg.n_classes, sil = net->hp.sil_class;
    double loss = 0.0;
    int correct = 0;
    for (int b = 0; b < B; b++) {
        float P[SNN_MAX_CLASSES], sp[SNN_MAX_CLASSES];
        int t0 = net->clip_t0 > 0 && net->clip_t0 < T ? net->clip_t0 : 0;
        int pred = train_clip_predict(net->vo + ((size_t)b * T + t0) * K, T - t0, K, P);
        softmax_row(sp, P, K);
        int y = net->labels[b];
        loss += -log((double)sp[y] + 1e-30);
        correct += pred == y;
        if (net->kd_p && net->hp.kd_weight > 0.0f)
            loss +=
                kd_loss(net->kd_p + (size_t)b * K, P, K, net->hp.kd_temp, NULL) * net->hp.kd_weight;
        if (net->bg) {
            double lb = 0.0;
            for (int t = 0; t < T; t++) {
                float w = net->bg[(size_t)b * T + t];
                const float *p = net->po + ((size_t)b * T + t) * K;
                if (w > 0.0f && sil >= 0)
                    lb += net->hp.bg_weight * w * -log((double)p[sil] + 1e-30);
                else if (w < 0.0f)
                    lb += net->hp.fg_weight * -w * -log((double)p[y] + 1e-30);
            }
            loss += lb / T;
            if (net->hp.win_weight > 0.0f) {
                double m = 0.0;
                int nt = 0;
                for (int t = 0; t < T; t++)
                    if (net->bg[(size_t)b * T + t] < 0.0f) {
                        m += net->po[((size_t)b * T + t) * K + y];
                        nt++;
                    }
                if (nt)
                    loss += net->hp.win_weight * -log(m / nt + 1e-30);
            }
        }
    }
    net->loss = loss / B;
    net->n_correct = correct;
}

int train_net_forward(struct train_net *net, const float *x, const int32_t *labels, const float *bg,
                      int B, int T, int train) {
    if (B != net->B || T != net->T || !net->act_mem || max_taps(net->hp.sigma) > net->ntap_cap) {
        int rc = acts_alloc(net, B, T);
        if (rc < 0)
            return rc;
    }
    const struct snn_cfg *cfg = &net->cfg;
    size_t N = (size_t)B * T;
    net->labels = labels;
    net->bg = bg;
    net->train_mode = train;
    net->n_spikes = 0;
    const float *in = x;
    int cin = cfg->n_in;
    for (int l = 0; l < cfg->n_layers; l++) {
        struct train_layer_acts *A = &net->act[l];
        int C = cfg->layer[l].n;
        A->x = in;
        if (cfg->layer[l].in_d_max > 0) {
            build_in_taps(net, l, cin);
            in_delay_forward(net, l, in, A->xd, cin);
            in = A->xd;
        }
        linear_forward(A->a, in, net->p.w_in[l], net->p.b_in[l], net->wt, N, cin, C);
        if (net->hp.use_bn)
            bn_forward(net, l, N, train);
        lif_forward(net, l, train);
        in = A->sd;
        cin = C;
    }
    readout_forward(net);
    if (labels || net->ftgt)
        loss_forward(net);
    return 0;
}

/* ==== Backward ==== */

/* BPTT through the LIF recurrence of layer l for every clip.
 * ds: (B,T,C) gradient w.r.t. the layer's spikes s (ff dropout applied).
 * Writes dz (B,T,C) = dL/d(BN output), dr (B,T,C) = dL/d r (masked), dq
 * (B,C,T) = dL/dq, time-minor so that the delay taps of a neuron read
 * consecutive floats; accumulates the recurrent weight and delay gradients. */
TRAIN_HOT static void lif_backward(struct train_net *net, int l, const float *ds, float *dz,
                                   float *dr, float *dq) {
    const struct snn_layer_cfg *lc = &net->cfg.layer[l];
    struct train_layer_acts *A = &net->act[l];
    const struct train_hparams *hp = &net->hp;
    int B = net->B, T = net->T, C = lc->n, rec = lc->rec != SNN_REC_NONE;
    int ntap = net->ntap, K = lc->k;
    float *part = net->part; /* (B, C + K): per-clip delay and conv-tap partial sums */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        size_t base = (size_t)b * T * C;
        float dv[SNN_MAX_NEURONS];
        float *pd = part + (size_t)b * (C + TRAIN_PART_W);
        memset(dv, 0, (size_t)C * sizeof(float));
        memset(pd, 0, (size_t)(C + TRAIN_PART_W) * sizeof(float));
        for (int t = T - 1; t >= 0; t--) {
            size_t o = base + (size_t)t * C;
            /* two passes over the neurons: the delay taps, then the
             * element-wise LIF backward, which the compiler vectorises */
            float g[SNN_MAX_NEURONS];
            for (int i = 0; i < C; i++) {
                g[i] = ds[o + i];
                if (rec) {
                    /* gradient through the delayed copies of this spike train */
                    float sv = A->s[o + i];
                    int lo = net->tap_lo[l][i];
                    const float *tw = net->tap_w[l] + (size_t)i * ntap;
                    const float *tdw = net->tap_dw[l] + (size_t)i * ntap;
                    float acc = 0.0f, accd = 0.0f;
                    const float *dqi = dq + base + (size_t)i * T + t + lo;
                    int nt = T - t - lo < net->tap_n[l][i] ? T - t - lo : net->tap_n[l][i];
                    for (int n = 0; n < nt; n++)
                        acc += tw[n] * dqi[n];
                    g[i] += acc;
                    if (sv != 0.0f) { /* the delay's gradient needs the spike */
                        for (int n = 0; n < nt; n++)
                            accd += tdw[n] * dqi[n];
                        pd[i] += sv * accd;
                    }
                }
            }
            const float *hs = A->h + o, *ss = A->s + o, *rm = A->rmask + o;
            float th = lc->thresh, beta = lc->beta, gain = lc->gain;
            int hard = lc->reset == SNN_RESET_HARD, detach = hp->detach_reset;
            for (int i = 0; i < C; i++) {
                float sg = train_surrogate_grad(hp->surrogate, hp->sg_alpha, hs[i] - th);
                float keep = hard ? (1.0f - ss[i]) - (detach ? 0.0f : hs[i] * sg)
                                  : 1.0f - (detach ? 0.0f : th * sg);
                float dh = g[i] * sg + dv[i] * keep;
                dv[i] = beta * dh;
                dz[o + i] = gain * dh;
            }
            if (rec) {
                for (int i = 0; i < C; i++)
                    dr[o + i] = dz[o + i] * rm[i];
                float dqrow[SNN_MAX_NEURONS];
                rec_mix_backward(dqrow, dr + o, lc, net->p.w_rec[l]);
                for (int i = 0; i < C; i++)
                    dq[base + (size_t)i * T + t] = dqrow[i];
            }
        }
        if (lc->rec == SNN_REC_CONV) {
            /* tap m of (go, gi) sums dr[go][p] q[gi][p + m - pad] over p in
             * increasing order. All K sums run side by side in the lanes of
             * two vectors, over a copy of the q row with pad zeros on either
             * side: the terms outside the row add an exact 0. */
            int pad = (K - 1) / 2, G = snn_layer_ch(lc), P = C / G;
            float *pk = pd + C;
            float qz[SNN_MAX_NEURONS + 2 * SNN_MAX_K + 2 * LIN_V];
            for (int t = 0; t < T; t++) {
                size_t o = base + (size_t)t * C;
                for (int gi = 0; gi < G; gi++) {
                    memset(qz, 0, (size_t)(P + 2 * pad + 2 * LIN_V) * sizeof(float));
                    memcpy(qz + pad, A->q + o + (size_t)gi * P, (size_t)P * sizeof(float));
                    for (int go = 0; go < G; go++) {
                        const float *dg = dr + o + (size_t)go * P;
                        lin_v a0 = {0}, a1 = {0};
                        for (int p = 0; p < P; p++) {
                            lin_v q0, q1;
                            LIN_LD(q0, qz + p);
                            LIN_LD(q1, qz + p + LIN_V);
                            a0 += dg[p] * q0;
                            a1 += dg[p] * q1;
                        }
                        float lanes[2 * LIN_V];
                        LIN_ST(lanes, a0);
                        LIN_ST(lanes + LIN_V, a1);
                        float *pkk = pk + ((size_t)go * G + gi) * K;
                        for (int m = 0; m < K; m++)
                            pkk[m] += lanes[m];
                    }
                }
            }
        }
    }
    if (!rec)
        return;
    /* fixed-order reduction of the per-clip partials */
    size_t nw_conv = lc->rec == SNN_REC_CONV ? snn_rec_weight_count(lc) : 0;
    for (int b = 0; b < B; b++) {
        const float *pd = part + (size_t)b * (C + TRAIN_PART_W);
        for (int i = 0; i < C; i++)
            net->g.delay[l][i] += pd[i];
        if (lc->rec == SNN_REC_CONV)
            for (size_t m = 0; m < nw_conv; m++)
                net->g.w_rec[l][m] += pd[C + m];
    }
    if (lc->rec == SNN_REC_DENSE) {
        size_t N = (size_t)B * T;
        float *dw = net->g.w_rec[l];
#pragma omp parallel for schedule(static)
        for (int i = 0; i < C; i++) {
            float *row = dw + (size_t)i * C;
            for (size_t n = 0; n < N; n++) {
                float dv = dr[n * C + i];
                if (dv == 0.0f)
                    continue;
                const float *qn = A->q + n * C;
                for (int j = 0; j < C; j++)
                    row[j] += dv * qn[j];
            }
        }
    }
}

/* Leaky integrator backward over one window's (T,K) gradient, in place:
 * dy[t] = gain * sum_{u>=t} beta^(u-t) dvo[u]. */
static void integrator_backward(const struct snn_cfg *cfg, float *dvo, int T) {
    int K = cfg->n_classes;
    float acc[SNN_MAX_CLASSES] = {0};
    for (int t = T - 1; t >= 0; t--) {
        float *d = dvo + (size_t)t * K;
        for (int c = 0; c < K; c++) {
            acc[c] = d[c] + cfg->out_beta * acc[c];
            d[c] = cfg->out_gain * acc[c];
        }
    }
}

TRAIN_HOT void train_net_backward(struct train_net *net) {
    const struct snn_cfg *cfg = &net->cfg;
    const struct train_hparams *hp = &net->hp;
    int B = net->B, T = net->T, K = cfg->n_classes, L = cfg->n_layers, sil = hp->sil_class;
    size_t N = (size_t)B * T;
    KWS_ASSERT((net->labels || net->ftgt) && net->train_mode);
    float *dvo = net->scratch[0], *dsd = net->scratch[1], *dz = net->scratch[2];
    float *dr = net->scratch[3];
    /* loss -> dvo */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        if (net->ftgt) {
            int nr = 0, nh = 0;
            memset(dvo + (size_t)b * T * K, 0, (size_t)T * K * sizeof *dvo);
            stream_loss(net, b, dvo + (size_t)b * T * K, &nr, &nh);
            integrator_backward(cfg, dvo + (size_t)b * T * K, T);
            continue;
        }
        float P[SNN_MAX_CLASSES], sp[SNN_MAX_CLASSES], dP[SNN_MAX_CLASSES];
        int t0 = net->clip_t0 > 0 && net->clip_t0 < T ? net->clip_t0 : 0;
        train_clip_predict(net->vo + ((size_t)b * T + t0) * K, T - t0, K, P);
        softmax_row(sp, P, K);
        for (int c = 0; c < K; c++)
            dP[c] = (sp[c] - (c == net->labels[b] ? 1.0f : 0.0f)) / (float)B;
        if (net->kd_p && hp->kd_weight > 0.0f) {
            float dk[SNN_MAX_CLASSES];
            kd_loss(net->kd_p + (size_t)b * K, P, K, hp->kd_temp, dk);
            for (int c = 0; c < K; c++)
                dP[c] += hp->kd_weight * dk[c] / (float)B;
        }
        for (int t = 0; t < T; t++) {
            const float *p = net->po + ((size_t)b * T + t) * K;
            float *d = dvo + ((size_t)b * T + t) * K;
            float dot = 0.0f;
            for (int c = 0; c < K; c++)
                dot += p[c] * dP[c];
            for (int c = 0; c < K; c++)
                d[c] = t >= t0 ? p[c] * (dP[c] - dot) : 0.0f;
            if (net->bg) {
                float w = net->bg[(size_t)b * T + t];
                int tgt = -1;
                if (w > 0.0f && sil >= 0) {
                    w *= hp->bg_weight;
                    tgt = sil;
                } else if (w < 0.0f) {
                    w = -w * hp->fg_weight;
                    tgt = net->labels[b];
                }
                w /= (float)(T * B);
                if (tgt >= 0 && w != 0.0f)
                    for (int c = 0; c < K; c++)
                        d[c] += w * (p[c] - (c == tgt ? 1.0f : 0.0f));
            }
        }
        if (net->bg && hp->win_weight > 0.0f) {
            /* window term: -log m, m = mean over tail frames of p_y */
            int y = net->labels[b], nt = 0;
            float m = 0.0f;
            for (int t = 0; t < T; t++)
                if (net->bg[(size_t)b * T + t] < 0.0f) {
                    m += net->po[((size_t)b * T + t) * K + y];
                    nt++;
                }
            if (nt && m > 0.0f) {
                float k = -hp->win_weight / (m * (float)B);
                for (int t = 0; t < T; t++) {
                    if (net->bg[(size_t)b * T + t] >= 0.0f)
                        continue;
                    const float *p = net->po + ((size_t)b * T + t) * K;
                    float *d = dvo + ((size_t)b * T + t) * K;
                    for (int c = 0; c < K; c++)
                        d[c] += k * p[y] * ((c == y ? 1.0f : 0.0f) - p[c]);
                }
            }
        }
        integrator_backward(cfg, dvo + (size_t)b * T * K, T);
    }
    int Clast = cfg->layer[L - 1].n;
    linear_backward(dsd, net->g.w_out, net->g.b_out, net->wt, dvo, net->act[L - 1].sd, net->p.w_out,
                    N, Clast, K);
    for (int l = L - 1; l >= 0; l--) {
        struct train_layer_acts *A = &net->act[l];
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        int C = lc->n, cin = l ? cfg->layer[l - 1].n : cfg->n_in;
        /* ff dropout backward, in place: d s = d sd * mask */
#pragma omp parallel for schedule(static)
        for (size_t n = 0; n < N * C; n++)
            dsd[n] *= A->smask[n];
        float *dq = dvo; /* dvo is consumed; reuse it as dq (B,T,C) */
        lif_backward(net, l, dsd, dz, dr, dq);
        float *da = dz;
        if (hp->use_bn) {
            bn_backward(net, dr, net->g.bn_g[l], net->g.bn_b[l], dz, A->xhat, net->p.bn_g[l],
                        A->bn_istd, N, C);
            da = dr;
        }
        if (A->xd) {
            /* dvo (reused as dq) is consumed: it takes the gradient w.r.t. xd */
            float *dxd = dvo;
            linear_backward(dxd, net->g.w_in[l], net->g.b_in[l], net->wt, da, A->xd, net->p.w_in[l],
                            N, cin, C);
            in_delay_backward(net, l, A->x, dxd, l ? dsd : NULL, net->g.in_delay[l], cin);
        } else {
            linear_backward(l ? dsd : NULL, net->g.w_in[l], net->g.b_in[l], net->wt, da, A->x,
                            net->p.w_in[l], N, cin, C);
        }
        (void)dq;
    }
    /* a band-shared first layer: each shared weight's gradient is the sum
     * over its uses */
    train_net_tie(net, net->g.w_in[0], net->g.b_in[0], 1);
}

/* ==== Band-shared first layer ==== */

/* The band position p of P (over F bands) is centred on. */
static int tie_centre(int p, int P, int F) {
    return (2 * p + 1) * F / (2 * P);
}

void train_net_tie(const struct train_net *net, float *w, float *b, int sum) {
    const struct snn_cfg *cfg = &net->cfg;
    int G = net->hp.tie_ch, R = net->hp.tie_half;
    if (G <= 0)
        return;
    int C = cfg->layer[0].n, nin = cfg->n_in, L = cfg->fe.enc_levels;
    int P = C / G, F = nin / L;
    float k[(2 * TRAIN_TIE_MAX_HALF + 1) * KWS_ENC_MAX_LEVELS];
    uint8_t seen[(2 * TRAIN_TIE_MAX_HALF + 1) * KWS_ENC_MAX_LEVELS];
    for (int g = 0; g < G; g++) {
        float bias = 0.0f;
        memset(k, 0, sizeof k);
        memset(seen, 0, sizeof seen);
        for (int p = 0; p < P; p++) {
            const float *row = w + (size_t)(g * P + p) * nin;
            int c = tie_centre(p, P, F);
            for (int o = -R; o <= R; o++)
                for (int v = 0; c + o >= 0 && c + o < F && v < L; v++) {
                    int q = (o + R) * L + v;
                    float x = row[(c + o) * L + v];
                    k[q] = sum ? k[q] + x : seen[q] ? k[q] : x;
                    seen[q] = 1;
                }
            bias = sum ? bias + b[g * P + p] : p ? bias : b[g * P];
        }
        for (int p = 0; p < P; p++) {
            float *row = w + (size_t)(g * P + p) * nin;
            int c = tie_centre(p, P, F);
            for (int j = 0; j < nin; j++) {
                int o = j / L - c;
                row[j] = o >= -R && o <= R ? k[(o + R) * L + j % L] : 0.0f;
            }
            b[g * P + p] = bias;
        }
    }
}

/* ==== Optimizer ==== */

TRAIN_HOT void train_net_adamw(struct train_net *net, float lr, float lr_delay) {
    const struct train_hparams *hp = &net->hp;
    const struct snn_cfg *cfg = &net->cfg;
    net->step++;
    float bc1 = 1.0f - powf(hp->beta1, (float)net->step);
    float bc2 = 1.0f - powf(hp->beta2, (float)net->step);
    size_t sizes[TPL * SNN_MAX_LAYERS + 2];
    int nt = param_table(cfg, hp->use_bn, sizes);
    size_t np = round_up64(net->n_params), off = 0;
    for (int i = 0; i < nt; i++) {
        int l = i / TPL, kind = i % TPL;
        int is_out = i >= TPL * cfg->n_layers;
        if (!is_out && l < hp->freeze) {
            off += sizes[i];
            continue;
        }
        int decay = is_out ? (i == TPL * cfg->n_layers) : (kind == 0 || kind == 4);
        int is_delay = !is_out && (kind == 5 || kind == 6);
        float a = is_delay ? lr_delay : lr, wd = decay ? hp->wd : 0.0f;
        float *p = net->mem + off, *g = net->mem + np + off;
        float *m = net->mem + 2 * np + off, *v = net->mem + 3 * np + off;
        for (size_t k = 0; k < sizes[i]; k++) {
            m[k] = hp->beta1 * m[k] + (1.0f - hp->beta1) * g[k];
            v[k] = hp->beta2 * v[k] + (1.0f - hp->beta2) * g[k] * g[k];
            float mh = m[k] / bc1, vh = v[k] / bc2;
            p[k] -= a * (mh / (sqrtf(vh) + hp->adam_eps) + wd * p[k]);
        }
        if (is_delay) {
            float hi = (float)(kind == 5 ? cfg->layer[l].d_max : cfg->layer[l].in_d_max);
            for (size_t k = 0; k < sizes[i]; k++)
                p[k] = p[k] < 0.0f ? 0.0f : p[k] > hi ? hi : p[k];
        }
        off += sizes[i];
    }
    if (net->ema)
        ema_update(net);
}

/* dst[i] = src[i] rounded and clamped to [0, hi] (dst may be src). */
static void round_clamp(float *dst, const float *src, int n, int hi) {
    for (int i = 0; i < n; i++) {
        float r = roundf(src[i]);
        dst[i] = r < 0.0f ? 0.0f : r > (float)hi ? (float)hi : r;
    }
}

void train_net_round_delays(struct train_net *net) {
    for (int l = 0; l < net->cfg.n_layers; l++) {
        const struct snn_layer_cfg *lc = &net->cfg.layer[l];
        if (net->p.in_delay[l])
            round_clamp(net->p.in_delay[l], net->p.in_delay[l],
                        l ? net->cfg.layer[l - 1].n : net->cfg.n_in, lc->in_d_max);
        if (net->p.delay[l])
            round_clamp(net->p.delay[l], net->p.delay[l], lc->n, lc->d_max);
    }
}

/* ==== Export ==== */

int train_net_export(const struct train_net *net, struct snn_model *model) {
    const struct snn_cfg *cfg = &net->cfg;
    int rc = snn_model_init(model, cfg);
    if (rc < 0)
        return rc;
    int cin = cfg->n_in;
    for (int l = 0; l < cfg->n_layers; l++) {
        const struct snn_layer_cfg *lc = &cfg->layer[l];
        int C = lc->n;
        for (int i = 0; i < C; i++) {
            float k = 1.0f, sh = 0.0f;
            if (net->hp.use_bn) {
                k = net->p.bn_g[l][i] / sqrtf(net->bn_rvar[l][i] + net->hp.bn_eps);
                sh = net->p.bn_b[l][i] - k * net->bn_rmean[l][i];
            }
            for (int j = 0; j < cin; j++)
                model->p.w_in[l][(size_t)i * cin + j] = k * net->p.w_in[l][(size_t)i * cin + j];
            model->p.b_in[l][i] = k * net->p.b_in[l][i] + sh;
        }
        if (lc->rec != SNN_REC_NONE) {
            size_t nw = snn_rec_weight_count(lc);
            memcpy(model->p.w_rec[l], net->p.w_rec[l], nw * sizeof(float));
            round_clamp(model->p.delay[l], net->p.delay[l], C, lc->d_max);
        }
        if (lc->in_d_max > 0)
            round_clamp(model->p.in_delay[l], net->p.in_delay[l], cin, lc->in_d_max);
        cin = C;
    }
    memcpy(model->p.w_out, net->p.w_out, (size_t)cfg->n_classes * cin * sizeof(float));
    memcpy(model->p.b_out, net->p.b_out, (size_t)cfg->n_classes * sizeof(float));
    snn_model_prepare(model);
    return 0;
}

/* test_train_grad.c: the trainer's analytic gradients against finite differences.
 *
 * The Heaviside spike has no useful derivative, so the network is checked in
 * its smooth relaxation (hp.smooth: S = 1/2 + atan(pi a x / 2) / pi, whose
 * exact derivative is the ATan surrogate the trainer uses); the surrogate
 * itself is checked against its formula. Every other op - Linear, BatchNorm
 * over (B*T), LIF leak and reset, dropout, the delay kernel (w.r.t. weights
 * and delays), the conv and dense recurrence, the leaky readout and every loss
 * term (clip, per-frame, window, distillation) - is checked by central differences on tiny sizes.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kws/err.h"
#include "kws/train.h"

#define B_ 2
#define T_ 12
#define NIN 5

/* Conv channels of the recurrent layers in tiny_cfg (0: one, 7 + l neurons;
 * G: G x 3 neurons); each test runs in its own process, so a test may set it. */
static int conv_ch;

/* Teacher clip scores for the distillation term (NULL: no term); a test may set it. */
static const float *kd_teacher;

/* Largest input delay of the layers after the first (0: none); a test may set it. */
static int in_dmax;

/* Per-frame stream targets (B_, T_) instead of the clip labels (NULL: clip
 * loss); a test may set it. */
static const int16_t *stream_tgt;

static void tiny_cfg(struct snn_cfg *cfg, int rec, int n_layers) {
    memset(cfg, 0, sizeof *cfg);
    cfg->n_in = NIN;
    cfg->n_layers = n_layers;
    for (int l = 0; l < n_layers; l++) {
        struct snn_layer_cfg *lc = &cfg->layer[l];
        lc->n = 6 + l;
        lc->rec = l == 0 ? SNN_REC_NONE : rec;
        lc->k = rec == SNN_REC_CONV && l ? 3 : 0;
        lc->ch = rec == SNN_REC_CONV && l ? conv_ch : 0;
        if (lc->ch > 1)
            lc->n = 3 * lc->ch;
        lc->d_max = l ? 8 : 0;
        lc->beta = l ? 0.6f : 0.3f;
        lc->gain = l ? 1.0f : 0.8f;
        lc->thresh = 1.0f;
        lc->reset = l == 2 ? SNN_RESET_SOFT : SNN_RESET_HARD;
        lc->in_d_max = l ? in_dmax : 0;
    }
    cfg->n_classes = 3;
    cfg->out_beta = 0.5f;
    cfg->out_gain = 1.0f;
}

struct fixture {
    float x[B_ * T_ * NIN];
    float bg[B_ * T_];
    int32_t y[B_];
};

static void make_batch(struct fixture *f) {
    uint32_t s = 12345;
    for (int i = 0; i < B_ * T_ * NIN; i++) {
        s = s * 1664525u + 1013904223u;
        int v = (int)(s >> 29); /* 0..7 */
        f->x[i] = v < 4 ? 0.0f : (float)(v - 3) * 0.5f;
    }
    for (int b = 0; b < B_; b++)
        for (int t = 0; t < T_; t++)
            f->bg[b * T_ + t] = (t < 3 || (b == 1 && t > 9)) ? 1.0f
                                : (t >= 6 && t < 9)          ? -1.0f
                                                             : 0.0f;
    f->y[0] = 1;
    f->y[1] = 2;
}

static double loss_of(struct train_net *net, const struct fixture *f) {
    if (stream_tgt) {
        cr_assert(eq(int, train_net_forward(net, f->x, NULL, NULL, B_, T_, 1), 0));
        return net->loss;
    }
    cr_assert(eq(int, train_net_forward(net, f->x, f->y, f->bg, B_, T_, 1), 0));
    return net->loss;
}

/* Checks n entries of a parameter tensor (all if n >= len). */
static void check_tensor(struct train_net *net, const struct fixture *f, float *p, const float *g,
                         size_t len, size_t n, const char *label) {
    const float eps = 1e-3f;
    double max_err = 0.0;
    size_t stride = n >= len ? 1 : len / n;
    int bad = 0;
    for (size_t i = 0; i < len; i += stride) {
        float keep = p[i];
        p[i] = keep + eps;
        double lp = loss_of(net, f);
        p[i] = keep - eps;
        double lm = loss_of(net, f);
        p[i] = keep;
        double num = (lp - lm) / (2.0 * eps);
        double err = fabs(num - g[i]);
        double tol = 2e-3 + 2e-2 * fabs(num);
        if (err > max_err)
            max_err = err;
        if (err > tol && bad++ < 5)
            cr_log_error("%s[%zu]: analytic %.6g numeric %.6g", label, i, (double)g[i], num);
    }
    cr_log_info("%s: max abs error %.3g", label, max_err);
    cr_expect(eq(int, bad, 0), "%s: %d mismatches", label, bad);
}

static void run_check_ctx(int rec, int n_layers, int use_bn, float drop, int detach, int t0) {
    struct snn_cfg cfg;
    tiny_cfg(&cfg, rec, n_layers);
    struct train_hparams hp;
    train_hparams_default(&hp);
    hp.smooth = 1;
    hp.sg_alpha = 2.0f;
    hp.use_bn = use_bn;
    hp.drop_ff = drop;
    hp.drop_rec = drop;
    hp.detach_reset = detach;
    hp.sigma = 0.5f;
    hp.sil_class = 0;
    hp.bg_weight = 0.7f;
    hp.fg_weight = 0.4f;
    hp.win_weight = 0.6f;
    hp.fa_weight = stream_tgt ? 0.5f : 0.0f;
    hp.delay_init_lo = 0.0f;
    hp.delay_init_hi = 4.0f;
    hp.seed = 3;
    hp.kd_weight = kd_teacher ? 0.8f : 0.0f;
    hp.kd_temp = 2.0f;
    if (stream_tgt) {
        snprintf(cfg.labels[0], SNN_LABEL_LEN, "_silence_");
        snprintf(cfg.labels[1], SNN_LABEL_LEN, "a");
        snprintf(cfg.labels[2], SNN_LABEL_LEN, "b");
    }
    struct train_net net;
    cr_assert(eq(int, train_net_init(&net, &cfg, &hp), 0));
    net.clip_t0 = t0;
    net.kd_p = kd_teacher;
    net.ftgt = stream_tgt;
    net.peak_w = 3;
    /* delays away from the kernel's kinks (k - 1 - d in {0, +-s}) */
    for (int l = 0; l < n_layers; l++)
        if (net.p.delay[l])
            for (int i = 0; i < cfg.layer[l].n; i++)
                net.p.delay[l][i] = 0.2f + 0.61f * (float)i + 0.13f * (float)l;
    for (int l = 1; l < n_layers; l++)
        if (net.p.in_delay[l])
            for (int i = 0; i < cfg.layer[l - 1].n; i++)
                net.p.in_delay[l][i] = 0.3f + 0.57f * (float)i + 0.11f * (float)l;
    /* larger weights so the smooth spikes move through their whole range */
    for (int l = 0; l < n_layers; l++) {
        for (int i = 0; i < cfg.layer[l].n * (l ? cfg.layer[l - 1].n : NIN); i++)
            net.p.w_in[l][i] *= 2.0f;
        if (use_bn)
            for (int i = 0; i < cfg.layer[l].n; i++) {
                net.p.bn_g[l][i] = 1.0f + 0.1f * (float)i;
                net.p.bn_b[l][i] = 0.9f - 0.05f * (float)i;
            }
    }
    struct fixture f;
    make_batch(&f);
    loss_of(&net, &f);
    train_net_zero_grad(&net);
    train_net_backward(&net);
    /* copy the analytic grads: the finite differences overwrite activations, not grads */
    int cin = NIN;
    char label[64];
    for (int l = 0; l < n_layers; l++) {
        int C = cfg.layer[l].n;
        snprintf(label, sizeof label, "w_in[%d]", l);
        check_tensor(&net, &f, net.p.w_in[l], net.g.w_in[l], (size_t)C * cin, 40, label);
        snprintf(label, sizeof label, "b_in[%d]", l);
        check_tensor(&net, &f, net.p.b_in[l], net.g.b_in[l], (size_t)C, 99, label);
        if (use_bn) {
            snprintf(label, sizeof label, "bn_g[%d]", l);
            check_tensor(&net, &f, net.p.bn_g[l], net.g.bn_g[l], (size_t)C, 99, label);
            snprintf(label, sizeof label, "bn_b[%d]", l);
            check_tensor(&net, &f, net.p.bn_b[l], net.g.bn_b[l], (size_t)C, 99, label);
        }
        if (net.p.w_rec[l]) {
            size_t nw = snn_rec_weight_count(&cfg.layer[l]);
            snprintf(label, sizeof label, "w_rec[%d]", l);
            check_tensor(&net, &f, net.p.w_rec[l], net.g.w_rec[l], nw, 40, label);
            snprintf(label, sizeof label, "delay[%d]", l);
            check_tensor(&net, &f, net.p.delay[l], net.g.delay[l], (size_t)C, 99, label);
        }
        if (net.p.in_delay[l]) {
            snprintf(label, sizeof label, "in_delay[%d]", l);
            check_tensor(&net, &f, net.p.in_delay[l], net.g.in_delay[l], (size_t)cin, 99, label);
        }
        cin = C;
    }
    check_tensor(&net, &f, net.p.w_out, net.g.w_out, (size_t)cfg.n_classes * cin, 99, "w_out");
    check_tensor(&net, &f, net.p.b_out, net.g.b_out, (size_t)cfg.n_classes, 99, "b_out");
    train_net_free(&net);
}

static void run_check(int rec, int n_layers, int use_bn, float drop, int detach) {
    run_check_ctx(rec, n_layers, use_bn, drop, detach, 0);
}

Test(train_grad, conv_bn_dropout) {
    run_check(SNN_REC_CONV, 2, 1, 0.25f, 0);
}

Test(train_grad, conv_no_bn_reset_differentiated) {
    run_check(SNN_REC_CONV, 2, 0, 0.0f, 0);
}

/* 2 conv channels of 3 positions, (2, 2, 3) kernel. */
Test(train_grad, conv_channels_bn_dropout) {
    conv_ch = 2;
    run_check(SNN_REC_CONV, 2, 1, 0.25f, 0);
}

Test(train_grad, dense_bn) {
    run_check(SNN_REC_DENSE, 2, 1, 0.2f, 0);
}

Test(train_grad, three_layers_soft_reset) {
    run_check(SNN_REC_CONV, 3, 1, 0.0f, 0);
}

/* The clip term over frames 4..T-1 only: the first frames are context. */
/* Input (feed-forward) delays on the second and third layers. */
Test(train_grad, conv_input_delays) {
    in_dmax = 8;
    run_check(SNN_REC_CONV, 3, 1, 0.2f, 0);
}

/* The distillation term, with the clip scores summed after 3 context frames. */
Test(train_grad, conv_distillation) {
    static const float teacher[B_ * 3] = {1.0f, 6.5f, 1.5f, 2.0f, 0.5f, 7.0f};
    kd_teacher = teacher;
    run_check_ctx(SNN_REC_CONV, 2, 1, 0.0f, 0, 3);
}

/* KL(teacher || student) is zero when the teacher's scores are the student's
 * own, positive otherwise. */
Test(train_grad, distillation_term_value) {
    struct snn_cfg cfg;
    tiny_cfg(&cfg, SNN_REC_CONV, 2);
    struct train_hparams hp;
    train_hparams_default(&hp);
    hp.kd_weight = 0.5f;
    hp.kd_temp = 3.0f;
    hp.drop_ff = 0.0f; /* the same loss from one forward to the next */
    hp.drop_rec = 0.0f;
    struct train_net net;
    cr_assert(eq(int, train_net_init(&net, &cfg, &hp), 0));
    struct fixture f;
    make_batch(&f);
    float own[B_ * 3], other[B_ * 3];
    double plain = loss_of(&net, &f);
    for (int b = 0; b < B_; b++)
        train_clip_predict(net.vo + (size_t)b * T_ * 3, T_, 3, own + b * 3);
    for (int i = 0; i < B_ * 3; i++)
        other[i] = own[(i + 1) % (B_ * 3)];
    net.kd_p = own;
    cr_expect(ieee_ulp_eq(dbl, loss_of(&net, &f), plain, 64));
    net.kd_p = other;
    cr_expect(gt(dbl, loss_of(&net, &f), plain + 1e-4));
    struct train_hparams bad = hp;
    bad.kd_temp = 0.0f;
    struct train_net n2;
    cr_expect(eq(int, train_net_init(&n2, &cfg, &bad), KWS_EBADFIELD));
    train_net_free(&net);
}

Test(train_grad, conv_clip_term_after_context) {
    run_check_ctx(SNN_REC_CONV, 2, 1, 0.0f, 0, 4);
}

/* The stream loss: filler frames, in-word frames and max-pooled peak regions
 * of the smoothed posterior (window 3), with dropout and input delays. */
Test(train_grad, conv_stream_loss) {
    enum { N = TRAIN_FT_NONE, F = TRAIN_FT_FILL, P1 = 1 | TRAIN_FT_PEAK, P2 = 2 | TRAIN_FT_PEAK };
    static const int16_t tgt[B_ * T_] = {N, N, F, F, 1, 1, P1, P1, P1, F,  F,  F,
                                         N, F, F, F, F, 2, 2,  P2, P2, P2, P2, F};
    stream_tgt = tgt;
    in_dmax = 4;
    run_check(SNN_REC_CONV, 2, 1, 0.2f, 0);
}

/* Its value: a peak region's term is -log of the best smoothed posterior. */
Test(train_grad, stream_loss_value) {
    enum { N = TRAIN_FT_NONE, P1 = 1 | TRAIN_FT_PEAK };
    int16_t tgt[B_ * T_];
    for (int i = 0; i < B_ * T_; i++)
        tgt[i] = N;
    for (int t = 5; t < 9; t++)
        tgt[t] = P1;
    struct snn_cfg cfg;
    tiny_cfg(&cfg, SNN_REC_CONV, 2);
    struct train_hparams hp;
    train_hparams_default(&hp);
    hp.drop_ff = hp.drop_rec = 0.0f;
    hp.win_weight = 1.0f;
    hp.bg_weight = 0.0f; /* the peak term alone */
    struct train_net net;
    cr_assert(eq(int, train_net_init(&net, &cfg, &hp), 0));
    net.ftgt = tgt;
    net.peak_w = 2;
    struct fixture f;
    make_batch(&f);
    cr_assert(eq(int, train_net_forward(&net, f.x, NULL, NULL, B_, T_, 1), 0));
    double best = 0.0;
    for (int t = 5; t < 9; t++) {
        double sm = 0.5 * (net.po[(size_t)t * 3 + 1] + net.po[(size_t)(t - 1) * 3 + 1]);
        best = sm > best ? sm : best;
    }
    cr_expect(epsilon_eq(dbl, net.loss, -log(best) / B_, 1e-5));
    cr_expect(eq(int, net.n_regions, 1));
    cr_expect(eq(int, net.n_correct, best >= 0.5));
    train_net_free(&net);
}

/* The false-alarm term's value: for each keyword, -log(1 - its highest
 * smoothed posterior over the frames whose smoothing window lies wholly on
 * frames that forbid it (here: window 0's filler frames 4-11 and, for "b",
 * its frames 2-11 inside keyword "a"; the lead and "a"'s own frames never). */
Test(train_grad, stream_false_alarm_value) {
    enum { N = TRAIN_FT_NONE, F = TRAIN_FT_FILL };
    int16_t tgt[B_ * T_];
    for (int i = 0; i < B_ * T_; i++)
        tgt[i] = i < T_ ? (i < 2 ? N : i < 4 ? 1 : F) : N;
    struct snn_cfg cfg;
    tiny_cfg(&cfg, SNN_REC_CONV, 2);
    snprintf(cfg.labels[0], SNN_LABEL_LEN, "_silence_");
    snprintf(cfg.labels[1], SNN_LABEL_LEN, "a");
    snprintf(cfg.labels[2], SNN_LABEL_LEN, "b");
    struct train_hparams hp;
    train_hparams_default(&hp);
    hp.drop_ff = hp.drop_rec = 0.0f;
    hp.bg_weight = hp.win_weight = 0.0f; /* the false-alarm term alone */
    hp.fa_weight = 1.0f;
    struct train_net net;
    cr_assert(eq(int, train_net_init(&net, &cfg, &hp), 0));
    net.ftgt = tgt;
    net.peak_w = 2;
    struct fixture f;
    make_batch(&f);
    cr_assert(eq(int, train_net_forward(&net, f.x, NULL, NULL, B_, T_, 1), 0));
    double want = 0.0;
    for (int c = 1; c < 3; c++) {
        double m = 0.0;
        for (int t = c == 1 ? 5 : 3; t < T_; t++) { /* "a" is allowed up to frame 3 */
            double sm = 0.5 * (net.po[(size_t)t * 3 + c] + net.po[(size_t)(t - 1) * 3 + c]);
            m = sm > m ? sm : m;
        }
        want += -log(1.0 - m);
    }
    cr_expect(epsilon_eq(dbl, net.loss, want / B_, 1e-5), "%g against %g", net.loss, want / B_);
    train_net_free(&net);
}

/* ==== Surrogate and delay kernel against their formulas ==== */

Test(train_grad, surrogate_formulas) {
    for (float x = -3.0f; x <= 3.0f; x += 0.37f) {
        float a = 5.0f;
        float want = (a / 2.0f) / (1.0f + powf((float)M_PI * a * x / 2.0f, 2.0f));
        cr_expect(ieee_ulp_eq(flt, train_surrogate_grad(TRAIN_SG_ATAN, a, x), want, 8));
        float tri = fmaxf(0.0f, 1.0f - fabsf(x));
        cr_expect(epsilon_eq(flt, train_surrogate_grad(TRAIN_SG_TRIANGLE, 1.0f, x), tri, 1e-6f));
        /* the ATan surrogate is the exact derivative of the smooth spike */
        float h = 1e-3f;
        double sp = 0.5 + atan(M_PI * 2.0 * (x + h) / 2.0) / M_PI;
        double sm = 0.5 + atan(M_PI * 2.0 * (x - h) / 2.0) / M_PI;
        cr_expect(epsilon_eq(dbl, (sp - sm) / (2.0 * h),
                             (double)train_surrogate_grad(TRAIN_SG_ATAN, 2.0f, x), 1e-3));
    }
    cr_expect(epsilon_eq(flt, train_surrogate_grad(TRAIN_SG_ATAN, 5.0f, 0.0f), 2.5f, 1e-6f));
}

Test(train_grad, delay_kernel) {
    /* sigma = 0 and an integer delay: one-hot at tap 1 + d */
    for (int k = 0; k < 8; k++)
        cr_expect(epsilon_eq(flt, train_delay_kernel(3.0f, 0.0f, k), k == 4 ? 1.0f : 0.0f, 1e-7f));
    /* unit area for a spread kernel, and d/dd against central differences */
    float d = 4.45f, sigma = 1.7f, area = 0.0f;
    for (int k = -10; k < 20; k++) {
        area += train_delay_kernel(d, sigma, k);
        float h = 1e-3f;
        float num = (train_delay_kernel(d + h, sigma, k) - train_delay_kernel(d - h, sigma, k)) /
                    (2.0f * h);
        cr_expect(epsilon_eq(flt, train_delay_kernel_dd(d, sigma, k), num, 2e-3f), "k=%d", k);
    }
    cr_expect(epsilon_eq(flt, area, 1.0f, 0.05f));
}

Test(train_grad, schedules) {
    cr_expect(epsilon_eq(flt, train_lr_onecycle(1.0f, 0.0f), 0.04f, 1e-6f));
    cr_expect(epsilon_eq(flt, train_lr_onecycle(1.0f, 0.3f), 1.0f, 1e-6f));
    cr_expect(lt(flt, train_lr_onecycle(1.0f, 1.0f), 1e-5f));
    cr_expect(epsilon_eq(flt, train_lr_cosine(2.0f, 0.5f), 1.0f, 1e-6f));
}

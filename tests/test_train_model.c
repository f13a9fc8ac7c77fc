/* test_train_model.c: what the trainer hands over to the engine and to itself.
 *
 * - An exported model (BN folded, delays rounded) run by snn_forward gives
 *   the trainer's own eval-mode forward (sigma 0) frame for frame, for the
 *   conv-delay and the dense DelRec variants.
 * - A checkpoint round trip restores parameters, moments and statistics
 *   exactly, and rejects a corrupted file.
 * - The moving average of the weights follows its formula, swaps in and out
 *   exactly and survives a checkpoint.
 * - Fine-tuning (train_net_init_from) takes a checkpoint's averaged hidden
 *   layers and statistics, keeps its own readout when the labels differ, takes
 *   the readout when they match, and names what differs when the layers or
 *   the front end do.
 * - Training is deterministic for a seed: two runs give identical weights.
 * - A band-shared first layer (hp.tie_ch) starts and stays shared while it
 *   learns: its weights are their own tying's fixed point.
 * - A few optimizer steps on a fixed batch lower the loss.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kws/err.h"
#include "kws/train.h"

#define NIN 12
#define B_ 3
#define T_ 40

/* Conv channels of the recurrent layer in small_cfg (0: one); each test runs in
 * its own process, so a test may set it. */
static int conv_ch;
/* hp.ema_decay of init_net */
static float ema_decay;
/* in_d_max of the second layer in small_cfg (0: no input delays) */
static int in_dmax;
/* hp.tie_ch of init_net, with a kernel of one band each side (0: none) */
static int tie_ch;

static void small_cfg(struct snn_cfg *cfg, int rec) {
    memset(cfg, 0, sizeof *cfg);
    cfg->n_in = NIN;
    cfg->n_layers = 2;
    cfg->layer[0] = (struct snn_layer_cfg){.n = 16,
                                           .rec = SNN_REC_NONE,
                                           .beta = 0.3f,
                                           .gain = 1.0f,
                                           .thresh = 1.0f,
                                           .reset = SNN_RESET_HARD};
    cfg->layer[1] = (struct snn_layer_cfg){.n = 20,
                                           .rec = rec,
                                           .k = rec == SNN_REC_CONV ? 5 : 0,
                                           .d_max = 9,
                                           .beta = 0.6f,
                                           .gain = 1.0f,
                                           .thresh = 1.0f,
                                           .reset = SNN_RESET_HARD,
                                           .ch = rec == SNN_REC_CONV ? conv_ch : 0,
                                           .in_d_max = in_dmax};
    cfg->n_classes = 4;
    cfg->out_beta = 0.7f;
    cfg->out_gain = 1.0f;
    for (int i = 0; i < 4; i++)
        snprintf(cfg->labels[i], SNN_LABEL_LEN, "c%d", i);
    cfg->fe.sample_rate = 16000;
    cfg->fe.win_len = 400;
    cfg->fe.hop = 160;
    cfg->fe.n_fft = 512;
    cfg->fe.n_mels = 3;
    cfg->fe.fmin = 20.0f;
    cfg->fe.fmax = 8000.0f;
    cfg->fe.enc_levels = 4;
    cfg->fe.enc_thresh[0] = 0.5f;
    cfg->fe.enc_thresh[1] = 1.0f;
    cfg->fe.enc_thresh[2] = 1.5f;
    cfg->fe.enc_thresh[3] = 2.0f;
    cfg->fe.feat_scale = 1.0f;
}

static void make_input(float *x, int32_t *y, float *bg) {
    uint32_t s = 99;
    for (int i = 0; i < B_ * T_ * NIN; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (s >> 28) < 6 ? 1.0f : 0.0f;
    }
    for (int b = 0; b < B_; b++) {
        y[b] = b % 4;
        for (int t = 0; t < T_; t++)
            bg[b * T_ + t] = t < 5 ? 1.0f : 0.0f;
    }
}

static void init_net(struct train_net *net, int rec, uint64_t seed) {
    struct snn_cfg cfg;
    small_cfg(&cfg, rec);
    struct train_hparams hp;
    train_hparams_default(&hp);
    hp.delay_init_lo = 0.0f;
    hp.delay_init_hi = 9.0f;
    hp.sigma = 2.0f;
    hp.sil_class = 0;
    hp.seed = seed;
    hp.ema_decay = ema_decay;
    hp.tie_ch = tie_ch;
    hp.tie_half = 1;
    cr_assert(eq(int, train_net_init(net, &cfg, &hp), 0));
}

static void train_steps(struct train_net *net, int n, double *first, double *last) {
    float x[B_ * T_ * NIN], bg[B_ * T_];
    int32_t y[B_];
    make_input(x, y, bg);
    for (int i = 0; i < n; i++) {
        cr_assert(eq(int, train_net_forward(net, x, y, bg, B_, T_, 1), 0));
        if (i == 0 && first)
            *first = net->loss;
        if (last)
            *last = net->loss;
        train_net_zero_grad(net);
        train_net_backward(net);
        train_net_adamw(net, 5e-3f, 5e-2f);
    }
}

static void check_export(int rec) {
    struct train_net net;
    init_net(&net, rec, 5);
    train_steps(&net, 5, NULL, NULL);
    train_net_round_delays(&net);
    net.hp.sigma = 0.0f;
    float x[B_ * T_ * NIN], bg[B_ * T_];
    int32_t y[B_];
    make_input(x, y, bg);
    cr_assert(eq(int, train_net_forward(&net, x, NULL, NULL, B_, T_, 0), 0));
    cr_assert(gt(u64, net.n_spikes, 0), "the test network must spike");
    struct snn_model m = {0};
    cr_assert(eq(int, train_net_export(&net, &m), 0));
    struct snn_state st = {0};
    cr_assert(eq(int, snn_state_init(&st, &m), 0));
    int K = net.cfg.n_classes;
    float out[T_ * 4];
    double max_err = 0.0;
    for (int b = 0; b < B_; b++) {
        snn_forward(&m, &st, x + (size_t)b * T_ * NIN, T_, out);
        for (int i = 0; i < T_ * K; i++) {
            double e = fabs(out[i] - net.vo[(size_t)b * T_ * K + i]);
            max_err = e > max_err ? e : max_err;
        }
    }
    cr_log_info("export (rec %d): max |snn_forward - trainer| = %.3g", rec, max_err);
    cr_expect(lt(dbl, max_err, 1e-3));
    snn_state_free(&st);
    snn_model_free(&m);
    train_net_free(&net);
}

Test(train_model, export_conv_matches_snn_forward) {
    check_export(SNN_REC_CONV);
}

/* 4 conv channels of 5 positions: the trainer's channel mixing and snn_step's
 * scatter agree. */
Test(train_model, export_conv_channels_matches_snn_forward) {
    conv_ch = 4;
    check_export(SNN_REC_CONV);
}

/* Input delays on the conv layer: the trainer's delayed inputs and
 * snn_step's input ring agree. */
Test(train_model, export_input_delays_matches_snn_forward) {
    in_dmax = 7;
    check_export(SNN_REC_CONV);
}

Test(train_model, export_dense_matches_snn_forward) {
    check_export(SNN_REC_DENSE);
}

Test(train_model, checkpoint_round_trip) {
    struct train_net a, b;
    init_net(&a, SNN_REC_CONV, 11);
    train_steps(&a, 3, NULL, NULL);
    a.best = 0.5f;
    char path[] = "/tmp/kws-train-ckpt-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(ge(int, fd, 0));
    close(fd);
    cr_assert(eq(int, train_checkpoint_save(&a, 7, path), 0));
    int epoch = 0;
    char msg[256];
    cr_assert(eq(int, train_checkpoint_load(&b, &epoch, path, msg, sizeof msg), 0), "%s", msg);
    cr_expect(eq(int, epoch, 7));
    cr_expect(eq(i64, b.step, a.step));
    cr_expect(eq(flt, b.best, 0.5f));
    cr_assert(eq(sz, b.n_params, a.n_params));
    cr_expect(eq(int, memcmp(b.p.w_in[0], a.p.w_in[0], a.n_params * sizeof(float)), 0));
    cr_expect(eq(int, memcmp(b.m.w_in[0], a.m.w_in[0], a.n_params * sizeof(float)), 0));
    cr_expect(eq(int, memcmp(b.v.w_in[0], a.v.w_in[0], a.n_params * sizeof(float)), 0));
    cr_expect(eq(flt, b.bn_rvar[1][3], a.bn_rvar[1][3]));
    train_net_free(&b);
    /* flip one payload byte: the checksum must catch it */
    FILE *f = fopen(path, "r+b");
    cr_assert(not(eq(ptr, f, NULL)));
    fseek(f, 600, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 600, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
    cr_expect(eq(int, train_checkpoint_load(&b, &epoch, path, msg, sizeof msg), KWS_EBADCHECKSUM));
    unlink(path);
    train_net_free(&a);
}

Test(train_model, ema_formula_swap_and_checkpoint) {
    ema_decay = 0.5f;
    struct train_net a, b;
    init_net(&a, SNN_REC_CONV, 13);
    cr_assert(not(eq(ptr, a.ema, NULL)));
    size_t n = a.n_params, ns = train_net_ema_count(&a) - n;
    cr_assert(gt(sz, ns, 0));
    float *want = malloc((n + ns) * sizeof *want);
    cr_assert(not(eq(ptr, want, NULL)));
    memcpy(want, a.p.w_in[0], n * sizeof(float));
    memcpy(want + n, a.bn_rmean[0], ns * sizeof(float));
    for (int s = 1; s <= 3; s++) {
        train_steps(&a, 1, NULL, NULL);
        float d = (1.0f + (float)s) / (10.0f + (float)s);
        d = d < 0.5f ? d : 0.5f;
        for (size_t i = 0; i < n; i++)
            want[i] = d * want[i] + (1.0f - d) * a.p.w_in[0][i];
        for (size_t i = 0; i < ns; i++)
            want[n + i] = d * want[n + i] + (1.0f - d) * a.bn_rmean[0][i];
    }
    double err = 0.0;
    for (size_t i = 0; i < n + ns; i++)
        err = fmax(err, fabs((double)want[i] - (double)a.ema[i]));
    cr_expect(lt(dbl, err, 1e-6), "moving average off by %g", err);
    float *live = malloc(n * sizeof *live);
    cr_assert(not(eq(ptr, live, NULL)));
    memcpy(live, a.p.w_in[0], n * sizeof(float));
    train_net_ema_swap(&a);
    err = 0.0;
    for (size_t i = 0; i < n; i++)
        err = fmax(err, fabs((double)want[i] - (double)a.p.w_in[0][i]));
    cr_expect(lt(dbl, err, 1e-6), "swapped-in parameters off by %g", err);
    train_net_ema_swap(&a);
    cr_expect(eq(int, memcmp(a.p.w_in[0], live, n * sizeof(float)), 0));

    char path[] = "/tmp/kws-train-ema-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(ge(int, fd, 0));
    close(fd);
    cr_assert(eq(int, train_checkpoint_save(&a, 3, path), 0));
    int epoch = 0;
    char msg[256];
    cr_assert(eq(int, train_checkpoint_load(&b, &epoch, path, msg, sizeof msg), 0), "%s", msg);
    cr_assert(not(eq(ptr, b.ema, NULL)));
    cr_expect(eq(int, memcmp(b.ema, a.ema, (n + ns) * sizeof(float)), 0));
    unlink(path);
    free(live);
    free(want);
    train_net_free(&b);
    train_net_free(&a);
}

Test(train_model, init_from_checkpoint) {
    ema_decay = 0.9f;
    struct train_net a;
    init_net(&a, SNN_REC_CONV, 17);
    train_steps(&a, 3, NULL, NULL);
    char path[] = "/tmp/kws-train-init-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(ge(int, fd, 0));
    close(fd);
    cr_assert(eq(int, train_checkpoint_save(&a, 3, path), 0));
    size_t n = a.n_params, n_hidden = (size_t)(a.p.w_out - a.mem);
    size_t ns = train_net_ema_count(&a) - n;
    cr_assert(gt(sz, n_hidden, 0));
    cr_assert(lt(sz, n_hidden, n));

    /* other labels, one class more: the hidden layers come over, the readout stays */
    struct snn_cfg cfg;
    small_cfg(&cfg, SNN_REC_CONV);
    cfg.n_classes = 5;
    snprintf(cfg.labels[4], SNN_LABEL_LEN, "c4");
    struct train_hparams hp;
    train_hparams_default(&hp);
    hp.sigma = 2.0f;
    hp.seed = 3;
    hp.ema_decay = 0.9f;
    struct train_net b;
    cr_assert(eq(int, train_net_init(&b, &cfg, &hp), 0));
    float *out0 = malloc((b.n_params - n_hidden) * sizeof *out0);
    cr_assert(not(eq(ptr, out0, NULL)));
    memcpy(out0, b.p.w_out, (b.n_params - n_hidden) * sizeof(float));
    char msg[512];
    cr_assert(eq(int, train_net_init_from(&b, path, msg, sizeof msg), 0), "%s", msg);
    cr_expect(not(eq(ptr, strstr(msg, "hidden layers from epoch 3"), NULL)), "%s", msg);
    /* the averaged weights (a.ema), not the last step's */
    cr_expect(eq(int, memcmp(b.p.w_in[0], a.ema, n_hidden * sizeof(float)), 0));
    cr_expect(not(eq(int, memcmp(a.p.w_in[0], a.ema, n_hidden * sizeof(float)), 0)));
    cr_expect(eq(int, memcmp(b.bn_rmean[0], a.ema + n, ns * sizeof(float)), 0));
    cr_expect(eq(int, memcmp(b.p.w_out, out0, (b.n_params - n_hidden) * sizeof(float)), 0));
    /* the optimizer starts fresh, the moving average from the new weights */
    cr_expect(eq(i64, b.step, 0));
    cr_expect(eq(flt, b.m.w_in[0][0], 0.0f));
    cr_expect(eq(int, memcmp(b.ema, b.mem, b.n_params * sizeof(float)), 0));
    train_net_free(&b);
    free(out0);

    /* the same labels: the readout comes over too */
    init_net(&b, SNN_REC_CONV, 99);
    cr_assert(eq(int, train_net_init_from(&b, path, msg, sizeof msg), 0), "%s", msg);
    cr_expect(not(eq(ptr, strstr(msg, "and readout"), NULL)), "%s", msg);
    cr_expect(eq(int, memcmp(b.mem, a.ema, n * sizeof(float)), 0));
    train_net_free(&b);

    /* a wider hidden layer, another front end: refused, saying which */
    small_cfg(&cfg, SNN_REC_CONV);
    cfg.layer[1].n = 24;
    cr_assert(eq(int, train_net_init(&b, &cfg, &hp), 0));
    cr_expect(eq(int, train_net_init_from(&b, path, msg, sizeof msg), KWS_EBADFIELD));
    cr_expect(not(eq(ptr, strstr(msg, "hidden layers"), NULL)), "%s", msg);
    train_net_free(&b);
    small_cfg(&cfg, SNN_REC_CONV);
    cfg.fe.fmax = 4000.0f;
    cr_assert(eq(int, train_net_init(&b, &cfg, &hp), 0));
    cr_expect(eq(int, train_net_init_from(&b, path, msg, sizeof msg), KWS_EBADFIELD));
    cr_expect(not(eq(ptr, strstr(msg, "front end"), NULL)), "%s", msg);
    train_net_free(&b);

    unlink(path);
    train_net_free(&a);
}

Test(train_model, deterministic_and_learns) {
    struct train_net a, b;
    double first = 0.0, last = 0.0;
    init_net(&a, SNN_REC_CONV, 21);
    init_net(&b, SNN_REC_CONV, 21);
    train_steps(&a, 30, &first, &last);
    train_steps(&b, 30, NULL, NULL);
    cr_expect(eq(int, memcmp(a.p.w_in[0], b.p.w_in[0], a.n_params * sizeof(float)), 0));
    cr_log_info("loss %.4f -> %.4f", first, last);
    cr_expect(lt(dbl, last, 0.8 * first));
    train_net_free(&a);
    train_net_free(&b);
}

/* hp.tie_ch (kwsd-train --band-ch): 4 channels of 4 positions over the 3
 * bands, a kernel of one band each side. Tying the trained weights again
 * (each group to its first member) changes nothing, so every group is equal
 * and the weights beyond the kernel are 0; the layer learns and the network
 * exports as any other. */
Test(train_model, band_shared_first_layer_stays_shared) {
    tie_ch = 4;
    struct train_net net;
    init_net(&net, SNN_REC_CONV, 5);
    size_t nw = (size_t)net.cfg.layer[0].n * NIN;
    float w0[16 * NIN], again[16 * NIN], b[16];
    cr_assert(eq(sz, nw, 16 * NIN));
    memcpy(w0, net.p.w_in[0], sizeof w0);
    double first = 0.0, last = 0.0;
    train_steps(&net, 20, &first, &last);
    memcpy(again, net.p.w_in[0], sizeof again);
    memcpy(b, net.p.b_in[0], sizeof b);
    train_net_tie(&net, again, b, 0);
    cr_expect(eq(int, memcmp(again, net.p.w_in[0], sizeof again), 0), "groups stay equal");
    cr_expect(eq(int, memcmp(b, net.p.b_in[0], sizeof b), 0), "biases stay per channel");
    size_t zero = 0, moved = 0;
    for (size_t i = 0; i < nw; i++) {
        zero += net.p.w_in[0][i] == 0.0f;
        moved += net.p.w_in[0][i] != w0[i];
    }
    /* position p of 4 is centred on band (2p + 1) 3 / 8: 0, 1, 1, 2; the
     * kernel misses one band at positions 0 and 3 (4 levels each), per channel */
    cr_expect(eq(sz, zero, 4 * 2 * 4), "weights beyond the kernel are 0");
    cr_expect(gt(sz, moved, nw / 2), "the shared weights learn (%zu of %zu moved)", moved, nw);
    cr_expect(lt(dbl, last, first));
    struct train_net bad;
    net.hp.tie_ch = 5; /* no divisor of the 16 neurons */
    cr_expect(eq(int, train_net_init(&bad, &net.cfg, &net.hp), KWS_EBADFIELD));
    train_net_free(&net);
    check_export(SNN_REC_CONV);
}

/* hp.freeze (kwsd-train --freeze): the frozen hidden layers keep every
 * parameter while the layers after them and the readout learn. */
Test(train_model, frozen_layers_keep_their_parameters) {
    for (int f = 1; f <= 2; f++) {
        struct train_net a, ref;
        init_net(&a, SNN_REC_CONV, 21);
        init_net(&ref, SNN_REC_CONV, 21);
        a.hp.freeze = f;
        train_steps(&a, 5, NULL, NULL);
        /* one flat block: layer 0's tensors, layer 1's, then the readout's */
        size_t frozen = (size_t)((f == 1 ? a.p.w_in[1] : a.p.w_out) - a.p.w_in[0]);
        size_t rest = a.n_params - frozen;
        cr_expect(eq(int, memcmp(a.p.w_in[0], ref.p.w_in[0], frozen * sizeof(float)), 0),
                  "freeze %d: the frozen layers did not move", f);
        const float *pa = a.p.w_in[0] + frozen, *pr = ref.p.w_in[0] + frozen;
        size_t moved = 0;
        for (size_t i = 0; i < rest; i++)
            moved += pa[i] != pr[i];
        cr_expect(gt(sz, moved, rest / 2), "freeze %d: %zu of %zu others moved", f, moved, rest);
        train_net_free(&a);
        train_net_free(&ref);
    }
}

/* Fine-tuning from a model file: a network without BatchNorm started from
 * an exported model exports the same parameters; with BatchNorm it is
 * refused, saying why. */
/* A small network (recurrence rec) trained 3 steps into a, exported to ma
 * and saved in path, a "/tmp/kws-train-model-XXXXXX" template. */
static void saved_model(int rec, struct train_net *a, struct snn_model *ma, char *path) {
    init_net(a, rec, 5);
    train_steps(a, 3, NULL, NULL);
    cr_assert(eq(int, train_net_export(a, ma), 0));
    int fd = mkstemp(path);
    cr_assert(ge(int, fd, 0));
    close(fd);
    cr_assert(eq(int, snn_model_save(ma, path), 0));
}

Test(train_model, init_from_model_file) {
    struct train_net a;
    struct snn_model ma = {0}, mb = {0};
    char path[] = "/tmp/kws-train-model-XXXXXX";
    saved_model(SNN_REC_CONV, &a, &ma, path);
    struct snn_cfg cfg;
    small_cfg(&cfg, SNN_REC_CONV);
    struct train_hparams hp;
    train_hparams_default(&hp);
    hp.sigma = 0.0f;
    hp.seed = 8;
    hp.use_bn = 0;
    struct train_net b;
    char msg[512];
    cr_assert(eq(int, train_net_init(&b, &cfg, &hp), 0));
    cr_assert(eq(int, train_net_init_from_model(&b, path, msg, sizeof msg), 0), "%s", msg);
    cr_expect(not(eq(ptr, strstr(msg, "and readout"), NULL)), "%s", msg);
    cr_assert(eq(int, train_net_export(&b, &mb), 0));
    cr_assert(eq(sz, mb.n_params, ma.n_params));
    cr_expect(eq(int, memcmp(mb.mem, ma.mem, ma.n_params * sizeof(float)), 0));
    train_net_free(&b);
    /* the same channels read as graded steps (--enc-kind ramp): accepted;
     * another encoder's channels (delta) are not */
    cfg.fe.enc_kind = KWS_ENC_RAMP;
    cr_assert(eq(int, train_net_init(&b, &cfg, &hp), 0));
    cr_assert(eq(int, train_net_init_from_model(&b, path, msg, sizeof msg), 0), "%s", msg);
    snn_model_free(&mb);
    cr_assert(eq(int, train_net_export(&b, &mb), 0));
    cr_expect(eq(int, mb.cfg.fe.enc_kind, KWS_ENC_RAMP));
    cr_expect(eq(int, memcmp(mb.mem, ma.mem, ma.n_params * sizeof(float)), 0));
    train_net_free(&b);
    cfg.fe.enc_kind = KWS_ENC_DELTA;
    cr_assert(eq(int, train_net_init(&b, &cfg, &hp), 0));
    cr_expect(eq(int, train_net_init_from_model(&b, path, msg, sizeof msg), KWS_EBADFIELD));
    cr_expect(not(eq(ptr, strstr(msg, "--enc-kind"), NULL)), "%s", msg);
    train_net_free(&b);
    cfg.fe.enc_kind = KWS_ENC_LEVEL;
    hp.use_bn = 1;
    cr_assert(eq(int, train_net_init(&b, &cfg, &hp), 0));
    cr_expect(eq(int, train_net_init_from_model(&b, path, msg, sizeof msg), KWS_EBADFIELD));
    cr_expect(not(eq(ptr, strstr(msg, "BatchNorm"), NULL)), "%s", msg);
    train_net_free(&b);
    unlink(path);
    snn_model_free(&ma);
    snn_model_free(&mb);
    train_net_free(&a);
}

/* Runs models a and b over the same 60 frames of random input spikes and
 * returns the largest difference of their readout potentials. */
static float readout_gap(const struct snn_model *a, const struct snn_model *b) {
    struct snn_state sa = {0}, sb = {0};
    cr_assert(eq(int, snn_state_init(&sa, a), 0));
    cr_assert(eq(int, snn_state_init(&sb, b), 0));
    float x[NIN], va[SNN_MAX_CLASSES], vb[SNN_MAX_CLASSES], gap = 0.0f;
    uint64_t r = 99;
    for (int t = 0; t < 60; t++) {
        for (int i = 0; i < NIN; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (r >> 60) < 6 ? 1.0f : 0.0f;
        }
        snn_step(a, &sa, x, va);
        snn_step(b, &sb, x, vb);
        for (int c = 0; c < a->cfg.n_classes; c++)
            gap = fmaxf(gap, fabsf(va[c] - vb[c]));
    }
    snn_state_free(&sa);
    snn_state_free(&sb);
    return gap;
}

/* Widening: a model's units become the first units of a wider network's
 * layers, whose new units feed nothing yet (their outgoing weights start at
 * 0), so with a dense recurrence the widened model hears exactly as the
 * model did; a conv recurrence keeps its kernel. A narrower layer is
 * refused. */
Test(train_model, init_from_model_file_widens) {
    const int recs[2] = {SNN_REC_DENSE, SNN_REC_CONV};
    for (int ri = 0; ri < 2; ri++) {
        struct train_net a, b;
        struct snn_model ma = {0}, mb = {0};
        char path[] = "/tmp/kws-train-model-XXXXXX", msg[512];
        saved_model(recs[ri], &a, &ma, path);

        struct snn_cfg cfg;
        small_cfg(&cfg, recs[ri]);
        cfg.layer[0].n = 24;
        cfg.layer[1].n = 30;
        struct train_hparams hp;
        train_hparams_default(&hp);
        hp.sigma = 0.0f;
        hp.seed = 8;
        hp.use_bn = 0;
        cr_assert(eq(int, train_net_init(&b, &cfg, &hp), 0));
        cr_assert(eq(int, train_net_init_from_model(&b, path, msg, sizeof msg), 0), "%s", msg);
        cr_expect(not(eq(ptr, strstr(msg, "widened from 16,20 to 24,30"), NULL)), "%s", msg);
        cr_assert(eq(int, train_net_export(&b, &mb), 0));
        for (int c = 0; c < 4; c++) /* the readout's columns of new units are 0 */
            for (int j = 20; j < 30; j++)
                cr_expect(eq(flt, mb.p.w_out[c * 30 + j], 0.0f));
        for (int j = 0; j < NIN; j++) /* an old unit's first-layer weights are the model's */
            cr_expect(eq(flt, mb.p.w_in[0][3 * NIN + j], ma.p.w_in[0][3 * NIN + j]));
        if (recs[ri] == SNN_REC_DENSE)
            cr_expect(le(flt, readout_gap(&ma, &mb), 1e-6f));
        train_net_free(&b);

        cfg.layer[1].n = 10; /* narrower: refused */
        cr_assert(eq(int, train_net_init(&b, &cfg, &hp), 0));
        cr_expect(eq(int, train_net_init_from_model(&b, path, msg, sizeof msg), KWS_EBADFIELD));
        cr_expect(not(eq(ptr, strstr(msg, "hidden layers"), NULL)), "%s", msg);
        train_net_free(&b);
        unlink(path);
        snn_model_free(&ma);
        snn_model_free(&mb);
        train_net_free(&a);
    }
}

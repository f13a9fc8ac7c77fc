/* test_core_snn.c: invariants of the SNN engine.
 *
 * Configuration checks and parameter counts; snn_forward equals T calls of
 * snn_step; the event-driven step equals the naive dense reference on random
 * spikes, for every layer kind; the arrival ring wraps correctly at D, D + 1
 * and 2D; delays round half to even and clamp to [0, d_max]. Input delays
 * (in_d_max) are in the equality tests too.
 *
 * Weights in the equality tests are multiples of 1/64 and inputs are small
 * integers, so every current is an exact float sum whatever the order of the
 * additions: the two implementations must then agree bit for bit.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kws/err.h"
#include "kws/snn.h"
#include "snn_internal.h"

/* ==== Helpers ==== */

/* A small deterministic generator (xorshift64*), so tests do not depend on rand(). */
static uint64_t rng_state = 88172645463325252ull;

static uint32_t rng_u32(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}

/* Uniform integer in [0, n). */
static int rng_int(int n) {
    return (int)(rng_u32() % (uint32_t)n);
}

/* A dyadic weight in [-lim, lim], a multiple of 1/64. */
static float rng_dyadic(float lim) {
    int q = (int)(lim * 64.0f);
    return (float)(rng_int(2 * q + 1) - q) / 64.0f;
}

static struct snn_layer_cfg layer(int n, int rec, int k, int d_max, int reset) {
    struct snn_layer_cfg lc = {.n = n,
                               .rec = rec,
                               .k = k,
                               .d_max = d_max,
                               .beta = 0.5f,
                               .gain = 1.0f,
                               .thresh = 1.0f,
                               .reset = reset};
    return lc;
}

/* A config with n_in inputs, the given layers and 3 classes. */
static struct snn_cfg make_cfg(int n_in, int n_layers, const struct snn_layer_cfg *ls) {
    struct snn_cfg c;
    memset(&c, 0, sizeof c);
    c.n_in = n_in;
    c.n_layers = n_layers;
    for (int l = 0; l < n_layers; l++)
        c.layer[l] = ls[l];
    c.n_classes = 3;
    c.out_beta = 0.75f;
    c.out_gain = 1.0f;
    strcpy(c.labels[0], "yes");
    strcpy(c.labels[1], "no");
    strcpy(c.labels[2], "_silence_");
    return c;
}

/* Fills every parameter with dyadic values and delays with integers in [0, d_max]. */
static void fill_random(struct snn_model *m) {
    for (size_t i = 0; i < m->n_params; i++)
        m->mem[i] = rng_dyadic(0.75f);
    for (int l = 0; l < m->cfg.n_layers; l++)
        if (m->p.delay[l])
            for (int j = 0; j < m->cfg.layer[l].n; j++)
                m->p.delay[l][j] = (float)rng_int(m->cfg.layer[l].d_max + 1);
    for (int l = 1; l < m->cfg.n_layers; l++)
        if (m->p.in_delay[l])
            for (int j = 0; j < m->cfg.layer[l - 1].n; j++)
                m->p.in_delay[l][j] = (float)rng_int(m->cfg.layer[l].in_d_max + 1);
    snn_model_prepare(m);
}

/* (T, n_in) random spike counts in {0,1,2,3}, about a third of them non-zero. */
static float *random_input(int T, int n_in) {
    float *x = calloc((size_t)T * (size_t)n_in, sizeof(float));
    for (int i = 0; i < T * n_in; i++)
        x[i] = rng_int(3) == 0 ? (float)(1 + rng_int(3)) : 0.0f;
    return x;
}

/* ==== Configuration ==== */

Test(core_snn, param_counts) {
    struct snn_layer_cfg ls[3] = {layer(6, SNN_REC_NONE, 0, 0, SNN_RESET_HARD),
                                  layer(5, SNN_REC_CONV, 3, 4, SNN_RESET_HARD),
                                  layer(4, SNN_REC_DENSE, 0, 2, SNN_RESET_SOFT)};
    struct snn_cfg c = make_cfg(7, 3, ls);
    size_t want = (6 * 7 + 6) + (5 * 6 + 5 + 3 + 5) + (4 * 5 + 4 + 16 + 4) + (3 * 4 + 3);
    cr_assert(eq(sz, snn_param_count(&c), want));
    cr_assert(eq(sz, snn_rec_param_count(&ls[0]), 0));
    cr_assert(eq(sz, snn_rec_param_count(&ls[1]), 3 + 5));
    cr_assert(eq(sz, snn_rec_param_count(&ls[2]), 16 + 4));
    /* The paper's SHD layer: 256 neurons, K = 3 vs dense. */
    struct snn_layer_cfg conv = layer(256, SNN_REC_CONV, 3, 30, 0);
    struct snn_layer_cfg dense = layer(256, SNN_REC_DENSE, 0, 30, 0);
    cr_assert(eq(sz, snn_rec_param_count(&conv), 259));
    cr_assert(eq(sz, snn_rec_param_count(&dense), 65792));
    cr_assert(eq(int, snn_layer_ring_len(&conv), 32));
    cr_assert(eq(int, snn_layer_ring_len(&ls[0]), 0));
}

struct bad_case {
    const char *field; /* expected message prefix */
    int what;
};

static void break_cfg(struct snn_cfg *c, int what) {
    switch (what) {
    case 0:
        c->n_in = 0;
        break;
    case 1:
        c->n_in = SNN_MAX_INPUTS + 1;
        break;
    case 2:
        c->n_layers = 0;
        break;
    case 3:
        c->n_layers = 99;
        break;
    case 4:
        c->layer[1].k = 4;
        break;
    case 5:
        c->layer[1].d_max = 100000;
        break;
    case 6:
        c->layer[0].n = 1 << 30;
        break;
    case 7:
        c->layer[0].d_max = 3;
        break;
    case 8:
        c->layer[1].rec = 7;
        break;
    case 9:
        c->layer[1].beta = NAN;
        break;
    case 10:
        c->layer[0].thresh = 0.0f;
        break;
    case 11:
        c->layer[1].reset = 2;
        break;
    case 12:
        c->n_classes = 0;
        break;
    case 13:
        c->n_classes = 33;
        break;
    case 14:
        c->out_beta = 2.0f;
        break;
    case 15:
        memset(c->labels[1], 'x', SNN_LABEL_LEN);
        break;
    case 16:
        c->layer[0].k = 3;
        break;
    case 17:
        c->layer[1].k = 17;
        break;
    case 18:
        c->out_gain = INFINITY;
        break;
    case 19:
        c->layer[1].ch = 2;
        break;
    case 20:
        c->layer[0].ch = 2;
        break;
    case 21:
        c->layer[1].ch = SNN_MAX_CH + 1;
        break;
    }
}

Test(core_snn, validate_names_the_field) {
    static const char *want[] = {
        "n_in: 0 out of range",        "n_in: 4097 out of range",
        "n_layers: 0 out of range",    "n_layers: 99 out of range",
        "layer[1].k: 4 is even",       "layer[1].d_max: 100000 out of range",
        "layer[0].n: 1073741824 out",  "layer[0].d_max: 3 but the layer is not recurrent",
        "layer[1].rec: 7 is not",      "layer[1].beta: nan out of range",
        "layer[0].thresh: 0 is not",   "layer[1].reset: 2 is not",
        "n_classes: 0 out of range",   "n_classes: 33 out of range",
        "out_beta: 2 out of range",    "labels[1]: not NUL-terminated",
        "layer[0].k: 3 but",           "layer[1].k: 17 out of range",
        "out_gain: inf is not finite", "layer[1].ch: 2 conv channels do not divide 5 neurons",
        "layer[0].ch: 2 but",          "layer[1].ch: 17 out of range",
    };
    struct snn_layer_cfg ls[2] = {layer(6, SNN_REC_NONE, 0, 0, 0), layer(5, SNN_REC_CONV, 3, 4, 0)};
    for (int w = 0; w < (int)KWS_ARRAY_SIZE(want); w++) {
        struct snn_cfg c = make_cfg(7, 2, ls);
        char msg[128];
        cr_assert(eq(int, snn_cfg_validate(&c, msg, sizeof msg), 0));
        break_cfg(&c, w);
        cr_assert(eq(int, snn_cfg_validate(&c, msg, sizeof msg), KWS_EBADFIELD), "case %d", w);
        cr_assert(eq(int, strncmp(msg, want[w], strlen(want[w])), 0), "case %d: got \"%s\"", w,
                  msg);
        cr_assert(eq(sz, snn_param_count(&c), 0), "case %d", w);
        struct snn_model m;
        cr_assert(eq(int, snn_model_init(&m, &c), KWS_EBADFIELD), "case %d", w);
        cr_assert(eq(ptr, m.mem, NULL));
    }
}

Test(core_snn, init_points_params_in_file_order) {
    struct snn_layer_cfg ls[2] = {layer(4, SNN_REC_NONE, 0, 0, 0),
                                  layer(3, SNN_REC_DENSE, 0, 2, 0)};
    struct snn_cfg c = make_cfg(5, 2, ls);
    struct snn_model m;
    cr_assert(eq(int, snn_model_init(&m, &c), 0));
    cr_assert(eq(ptr, m.p.w_in[0], m.mem));
    cr_assert(eq(ptr, m.p.b_in[0], m.mem + 20));
    cr_assert(eq(ptr, m.p.w_rec[0], NULL));
    cr_assert(eq(ptr, m.p.delay[0], NULL));
    cr_assert(eq(ptr, m.p.w_in[1], m.mem + 24));
    cr_assert(eq(ptr, m.p.b_in[1], m.mem + 36));
    cr_assert(eq(ptr, m.p.w_rec[1], m.mem + 39));
    cr_assert(eq(ptr, m.p.delay[1], m.mem + 48));
    cr_assert(eq(ptr, m.p.w_out, m.mem + 51));
    cr_assert(eq(ptr, m.p.b_out, m.mem + 60));
    cr_assert(eq(sz, m.n_params, 63));
    char name[64];
    snn__param_name(&c, 40, name, sizeof name);
    cr_assert(eq(str, name, "layer[1].w_rec[1]"));
    snn__param_name(&c, 62, name, sizeof name);
    cr_assert(eq(str, name, "b_out[2]"));
    snn_model_free(&m);
    snn_model_free(&m); /* safe on a zeroed struct */
}

Test(core_snn, delays_round_half_even_and_clamp) {
    struct snn_layer_cfg ls[1] = {layer(8, SNN_REC_CONV, 3, 5, 0)};
    struct snn_cfg c = make_cfg(2, 1, ls);
    struct snn_model m;
    cr_assert(eq(int, snn_model_init(&m, &c), 0));
    const float d[8] = {-3.0f, 0.49f, 0.5f, 1.5f, 2.5f, 4.6f, 9.0f, NAN};
    const int32_t want[8] = {0, 0, 0, 2, 2, 5, 5, 0};
    memcpy(m.p.delay[0], d, sizeof d);
    snn_model_prepare(&m);
    for (int j = 0; j < 8; j++)
        cr_assert(eq(i32, m.delay_int[0][j], want[j]), "delay %g", (double)d[j]);
    snn_model_free(&m);
}

/* ==== Streaming invariants ==== */

/* The three hidden layer kinds and both resets, in a few stacks. */
static const struct snn_layer_cfg stacks[][3] = {
    {{6, SNN_REC_NONE, 0, 0, 0.5f, 1.0f, 1.0f, SNN_RESET_HARD, 0, 0}},
    {{7, SNN_REC_CONV, 3, 4, 0.5f, 1.0f, 1.0f, SNN_RESET_SOFT, 0, 0}},
    {{5, SNN_REC_DENSE, 0, 3, 0.25f, 1.0f, 0.75f, SNN_RESET_HARD, 0, 0}},
    {{8, SNN_REC_NONE, 0, 0, 0.5f, 1.0f, 1.0f, SNN_RESET_HARD, 0, 0},
     {8, SNN_REC_CONV, 5, 6, 0.375f, 1.0f, 1.0f, SNN_RESET_HARD, 0, 0},
     {6, SNN_REC_DENSE, 0, 2, 0.5f, 0.5f, 1.0f, SNN_RESET_SOFT, 0, 0}},
    {{3, SNN_REC_CONV, 7, 0, 0.5f, 1.0f, 1.0f, SNN_RESET_HARD, 0, 0}}, /* K > C, d_max 0 */
    /* conv channels: 3 channels of 4 positions, then 2 channels of 4 */
    {{12, SNN_REC_CONV, 3, 5, 0.5f, 1.0f, 0.75f, SNN_RESET_HARD, 3, 0},
     {8, SNN_REC_CONV, 5, 3, 0.375f, 1.0f, 1.0f, SNN_RESET_SOFT, 2, 0}},
    /* input delays: on a conv layer after a wider one, then on a feed-forward
     * and a dense layer after narrower ones (the ring is as wide as the wider side) */
    {{10, SNN_REC_NONE, 0, 0, 0.5f, 1.0f, 1.0f, SNN_RESET_HARD, 0, 0},
     {7, SNN_REC_CONV, 3, 4, 0.5f, 1.0f, 0.75f, SNN_RESET_HARD, 0, 5}},
    {{4, SNN_REC_NONE, 0, 0, 0.5f, 1.0f, 0.5f, SNN_RESET_HARD, 0, 0},
     {6, SNN_REC_NONE, 0, 0, 0.5f, 1.0f, 0.75f, SNN_RESET_SOFT, 0, 3},
     {9, SNN_REC_DENSE, 0, 2, 0.5f, 1.0f, 1.0f, SNN_RESET_HARD, 0, 1}},
};
static const int stack_layers[] = {1, 1, 1, 3, 1, 2, 2, 3};

Test(core_snn, forward_equals_steps) {
    for (size_t sidx = 0; sidx < KWS_ARRAY_SIZE(stacks); sidx++) {
        struct snn_cfg c = make_cfg(9, stack_layers[sidx], stacks[sidx]);
        struct snn_model m;
        struct snn_state s;
        cr_assert(eq(int, snn_model_init(&m, &c), 0));
        fill_random(&m);
        cr_assert(eq(int, snn_state_init(&s, &m), 0));
        const int T = 40;
        float *x = random_input(T, 9);
        float *a = calloc((size_t)T * 3, sizeof(float));
        float *b = calloc((size_t)T * 3, sizeof(float));
        snn_step(&m, &s, x, NULL); /* dirty the state: forward must reset it */
        snn_forward(&m, &s, x, T, a);
        uint64_t spikes = s.spikes;
        snn_state_reset(&s, &m);
        for (int t = 0; t < T; t++)
            snn_step(&m, &s, x + t * 9, b + t * 3);
        cr_assert(eq(u64, s.spikes, spikes));
        cr_assert(eq(int, memcmp(a, b, (size_t)T * 3 * sizeof(float)), 0), "stack %zu", sidx);
        free(x);
        free(a);
        free(b);
        snn_state_free(&s);
        snn_model_free(&m);
    }
}

Test(core_snn, optimized_equals_naive) {
    for (int rep = 0; rep < 20; rep++) {
        size_t sidx = (size_t)rep % KWS_ARRAY_SIZE(stacks);
        struct snn_cfg c = make_cfg(9, stack_layers[sidx], stacks[sidx]);
        struct snn_model m;
        struct snn_state s, sn;
        cr_assert(eq(int, snn_model_init(&m, &c), 0));
        fill_random(&m);
        cr_assert(eq(int, snn_state_init(&s, &m), 0));
        cr_assert(eq(int, snn_state_init(&sn, &m), 0));
        const int T = 64;
        float *x = random_input(T, 9);
        float a[3], b[3];
        for (int t = 0; t < T; t++) {
            snn_step(&m, &s, x + t * 9, a);
            snn__step_naive(&m, &sn, x + t * 9, b);
            for (int l = 0; l < c.n_layers; l++) {
                cr_assert(eq(int, memcmp(s.spk[l], sn.spk[l], (size_t)c.layer[l].n * 4), 0),
                          "rep %d t %d layer %d spikes", rep, t, l);
                cr_assert(eq(int, memcmp(s.v[l], sn.v[l], (size_t)c.layer[l].n * 4), 0),
                          "rep %d t %d layer %d membranes", rep, t, l);
            }
            cr_assert(eq(int, memcmp(a, b, sizeof a), 0), "rep %d t %d readout", rep, t);
        }
        cr_assert(gt(u64, s.spikes, 0), "the test must exercise spikes");
        cr_assert(eq(u64, s.spikes, sn.spikes));
        free(x);
        snn_state_free(&s);
        snn_state_free(&sn);
        snn_model_free(&m);
    }
}

/* Two neurons and a known delay: the input drives neuron 0 to fire exactly
 * once, at step `fire`; with the kernel w = [1, 0, 0] (tap 0 reaches
 * i = j + pad - 0 = j + 1) its spike makes neuron 1 fire 1 + d steps later.
 * The fire steps straddle D, D + 1 and 2D, so every ring offset and the wrap
 * are exercised, for every delay in [0, d_max]. */
Test(core_snn, ring_wraps_at_D_D1_2D) {
    const int d_max = 5, D = d_max + 2;
    const int fires[] = {0, D - 1, D, D + 1, 2 * D - 1, 2 * D, 2 * D + 1, 3 * D + 2};
    for (int dl = 0; dl <= d_max; dl++) {
        for (size_t f = 0; f < KWS_ARRAY_SIZE(fires); f++) {
            struct snn_layer_cfg ls[1] = {layer(2, SNN_REC_CONV, 3, d_max, SNN_RESET_HARD)};
            ls[0].beta = 0.0f;
            struct snn_cfg c = make_cfg(1, 1, ls);
            struct snn_model m;
            struct snn_state s;
            cr_assert(eq(int, snn_model_init(&m, &c), 0));
            m.p.w_in[0][0] = 1.0f; /* input -> neuron 0 only */
            m.p.w_in[0][1] = 0.0f;
            /* Spike of j reaches i = j + 1 - tap: tap 0 -> j + 1, tap 1 -> j itself. */
            m.p.w_rec[0][0] = 1.0f;
            m.p.delay[0][0] = (float)dl;
            m.p.delay[0][1] = 0.0f;
            snn_model_prepare(&m);
            cr_assert(eq(int, snn_state_init(&s, &m), 0));
            int arrived = -1;
            const int T = fires[f] + d_max + 4;
            for (int t = 0; t < T; t++) {
                float x = t == fires[f] ? 1.0f : 0.0f;
                snn_step(&m, &s, &x, NULL);
                if (s.spk[0][1] == 1.0f) {
                    cr_assert(eq(int, arrived, -1), "neuron 1 fires once");
                    arrived = t;
                }
                cr_assert(eq(flt, s.spk[0][0], t == fires[f] ? 1.0f : 0.0f), "t %d", t);
            }
            cr_assert(eq(int, arrived, fires[f] + 1 + dl), "d %d fire %d", dl, fires[f]);
            snn_state_free(&s);
            snn_model_free(&m);
        }
    }
}

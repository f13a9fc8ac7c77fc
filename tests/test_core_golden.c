/* test_core_golden.c: snn_step against golden outputs of an independent reference.
 *
 * tests/golden/gen_snn.py (numpy, run by hand) computes small networks the way
 * the paper's training code does (a (C, D) buffer per recurrent layer, one-hot
 * delay masks, X = W Y or a conv1d over the neuron axis) and writes each model
 * with its own .kwsm writer. Here each model is read with snn_model_load and
 * stepped frame by frame; every layer's spikes must match exactly and its
 * membranes and the readout to float rounding. Cases: Linear alone, LIF with
 * hard and soft reset, a conv-delay layer, a dense delay layer, the readout,
 * and a whole three-layer network, each with B = 2 sequences of T = 16 frames.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws/err.h"
#include "kws/snn.h"

/* A golden fixture: inputs and expected outputs (layout in gen_snn.py). */
struct golden {
    uint32_t B, T, n_in, n_layers, C[SNN_MAX_LAYERS], n_classes;
    float *in;                  /* (B, T, n_in) */
    float *spk[SNN_MAX_LAYERS]; /* (B, T, C_l) */
    float *v[SNN_MAX_LAYERS];   /* (B, T, C_l) */
    float *out;                 /* (B, T, n_classes) */
    float *mem;
};

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void golden_read(struct golden *g, const char *path) {
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    cr_assert(ne(ptr, f, NULL), "cannot open %s", path);
    uint8_t h[24 + 4 * SNN_MAX_LAYERS + 4];
    cr_assert(eq(sz, fread(h, 1, 24, f), 24));
    cr_assert(eq(int, memcmp(h, "KWSG", 4), 0));
    cr_assert(eq(u32, get_u32(h + 4), 1));
    g->B = get_u32(h + 8);
    g->T = get_u32(h + 12);
    g->n_in = get_u32(h + 16);
    g->n_layers = get_u32(h + 20);
    cr_assert(le(u32, g->n_layers, SNN_MAX_LAYERS));
    size_t rest = 4 * g->n_layers + 4;
    cr_assert(eq(sz, fread(h + 24, 1, rest, f), rest));
    for (uint32_t l = 0; l < g->n_layers; l++)
        g->C[l] = get_u32(h + 24 + 4 * l);
    g->n_classes = get_u32(h + 24 + 4 * g->n_layers);
    size_t bt = (size_t)g->B * g->T, total = bt * g->n_in + bt * g->n_classes;
    for (uint32_t l = 0; l < g->n_layers; l++)
        total += 2 * bt * g->C[l];
    g->mem = malloc(total * sizeof(float));
    uint8_t *raw = malloc(total * 4);
    cr_assert(eq(sz, fread(raw, 4, total, f), total), "%s is short", path);
    cr_assert(eq(int, fgetc(f), EOF), "%s has trailing bytes", path);
    fclose(f);
    for (size_t i = 0; i < total; i++) {
        uint32_t u = get_u32(raw + 4 * i);
        memcpy(&g->mem[i], &u, 4);
    }
    free(raw);
    float *p = g->mem;
    g->in = p;
    p += bt * g->n_in;
    for (uint32_t l = 0; l < g->n_layers; l++) {
        g->spk[l] = p;
        p += bt * g->C[l];
        g->v[l] = p;
        p += bt * g->C[l];
    }
    g->out = p;
}

/* Compares n floats with |got - want| <= tol * max(1, |want|); logs the
 * largest error and the first 5 mismatches (llm.c check_tensor). */
static bool check_tensor(const float *got, const float *want, size_t n, float tol,
                         const char *label) {
    int bad = 0;
    float max_err = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float err = fabsf(got[i] - want[i]);
        float lim = tol * fmaxf(1.0f, fabsf(want[i]));
        if (err > max_err)
            max_err = err;
        if (!(err <= lim)) {
            if (bad < 5)
                cr_log_error("%s[%zu]: got %.9g want %.9g", label, i, (double)got[i],
                             (double)want[i]);
            bad++;
        }
    }
    if (bad)
        cr_log_error("%s: %d of %zu mismatched, max error %g", label, bad, n, (double)max_err);
    return bad == 0;
}

struct golden_case {
    char name[32]; /* inline: Criterion runs each parameter in a fresh process */
};

static const struct golden_case cases[] = {
    {"snn_linear"},      {"snn_lif_hard"}, {"snn_lif_soft"}, {"snn_conv_delay"},
    {"snn_dense_delay"}, {"snn_readout"},  {"snn_network"},
};

ParameterizedTestParameters(core_golden, matches_reference) {
    return cr_make_param_array(struct golden_case, cases, sizeof cases / sizeof cases[0]);
}

ParameterizedTest(const struct golden_case *gc, core_golden, matches_reference) {
    char path[512], msg[256];
    struct snn_model m;
    struct snn_state s;
    struct golden g;
    snprintf(path, sizeof path, "%s/tests/golden/%s.kwsm", KWSD_SOURCE_DIR, gc->name);
    int rc = snn_model_load(&m, path, msg, sizeof msg);
    cr_assert(eq(int, rc, 0), "%s: %s (%s)", path, msg, kws_err_name(rc));
    snprintf(path, sizeof path, "%s/tests/golden/%s.bin", KWSD_SOURCE_DIR, gc->name);
    golden_read(&g, path);
    cr_assert(eq(u32, g.n_in, (uint32_t)m.cfg.n_in));
    cr_assert(eq(u32, g.n_layers, (uint32_t)m.cfg.n_layers));
    cr_assert(eq(u32, g.n_classes, (uint32_t)m.cfg.n_classes));
    for (uint32_t l = 0; l < g.n_layers; l++)
        cr_assert(eq(u32, g.C[l], (uint32_t)m.cfg.layer[l].n));
    cr_assert(eq(int, snn_state_init(&s, &m), 0));

    bool ok = true;
    float out[SNN_MAX_CLASSES];
    for (uint32_t b = 0; b < g.B; b++) {
        snn_state_reset(&s, &m);
        for (uint32_t t = 0; t < g.T && ok; t++) {
            size_t bt = (size_t)b * g.T + t;
            snn_step(&m, &s, g.in + bt * g.n_in, out);
            char label[64];
            for (uint32_t l = 0; l < g.n_layers; l++) {
                size_t c = g.C[l];
                snprintf(label, sizeof label, "b%u t%u layer[%u] spikes", b, t, l);
                ok &= check_tensor(s.spk[l], g.spk[l] + bt * c, c, 0.0f, label);
                snprintf(label, sizeof label, "b%u t%u layer[%u] v", b, t, l);
                ok &= check_tensor(s.v[l], g.v[l] + bt * c, c, 1e-5f, label);
            }
            snprintf(label, sizeof label, "b%u t%u readout", b, t);
            ok &= check_tensor(out, g.out + bt * g.n_classes, g.n_classes, 1e-5f, label);
        }
    }
    cr_assert(ok, "%s differs from the reference (see the log above)", gc->name);
    snn_state_free(&s);
    snn_model_free(&m);
    free(g.mem);
}

/* The reference labels survive the Python writer and the C reader. */
Test(core_golden, labels_and_front_end_from_python_writer) {
    char path[512], msg[256];
    struct snn_model m;
    snprintf(path, sizeof path, "%s/tests/golden/snn_network.kwsm", KWSD_SOURCE_DIR);
    cr_assert(eq(int, snn_model_load(&m, path, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(str, m.cfg.labels[3], "_unknown_"));
    cr_assert(eq(int, m.cfg.layer[1].rec, SNN_REC_CONV));
    cr_assert(eq(int, m.cfg.layer[1].k, 5));
    cr_assert(eq(int, m.cfg.fe.sample_rate, 16000));
    /* The front end makes the network's 7 inputs: 7 bands, one level each. */
    cr_assert(eq(int, m.cfg.fe.n_mels, 7));
    cr_assert(eq(int, m.cfg.fe.enc_levels, 1));
    cr_assert(eq(flt, m.cfg.fe.enc_thresh[0], 0.5f));
    /* Delay 0.5 rounds to 0, 1.5 to 2 (half to even), d_max + 3 clamps to d_max. */
    cr_assert(eq(i32, m.delay_int[1][0], 0));
    cr_assert(eq(i32, m.delay_int[1][1], 2));
    cr_assert(eq(i32, m.delay_int[1][2], 7));
    snn_model_free(&m);
}

/* kwsd-bench-step: snn_step alone on real spike frames, for callgrind and for
 * checking that a change of the step keeps its outputs bit for bit.
 *
 * Reads sound files at the model's rate, runs the model's front end over
 * each (a fresh stream per file) and keeps every frame's spikes; then resets
 * the network state and runs snn_step over the frames of all files in a row,
 * as the daemon does, timing nothing. It prints the number of frames, the
 * hidden spikes per frame of each layer, and an FNV-1a hash of every output
 * byte (the readout potentials of every frame and every layer's spikes), so
 * two builds can be compared by their last line; before it, a hash of the
 * front end's output (features and input spikes of every frame). --dump
 * FILE writes the readout potentials (T, n_classes) as raw floats,
 * --dump-fe FILE the features and input spikes (T, n_mels + n_in).
 * Instructions per frame of the step alone:
 *
 *     valgrind --tool=callgrind --toggle-collect=snn_step \
 *         build/bench/kwsd-bench-step --model models/commands.kwsm FILE...
 *
 * then the total Ir divided by the frames printed.
 *
 *     kwsd-bench-step --model FILE [--dump FILE] [--dump-fe FILE] [--repeat N] SOUND...
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws/audio_file.h"
#include "kws/frontend.h"
#include "kws/snn.h"

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Appends the features (T, F) and spike frames (T, n_in) of one file to
 * *feat and *spk, growing them. */
static int read_frames(const char *path, const struct snn_model *m, float **feat, float **spk,
                       size_t *t, size_t *cap) {
    char msg[256];
    float *x = NULL;
    size_t n = 0;
    int rc = audio_file_read(path, m->cfg.fe.sample_rate, &x, &n, NULL, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "kwsd-bench-step: %s\n", msg);
        return rc;
    }
    struct audio_fe fe = {0};
    rc = audio_fe_init(&fe, &m->cfg.fe);
    if (rc < 0) {
        fprintf(stderr, "kwsd-bench-step: %s: front end: %d\n", path, rc);
        free(x);
        return rc;
    }
    const size_t n_in = (size_t)m->cfg.n_in, nf = (size_t)m->cfg.fe.n_mels;
    size_t want = n / (size_t)m->cfg.fe.hop + 1; /* frames this file can give */
    if (*t + want > *cap) {
        *cap = (*t + want) * 2;
        float *g = realloc(*spk, *cap * n_in * sizeof(float));
        if (g)
            *spk = g;
        float *h = realloc(*feat, *cap * nf * sizeof(float));
        if (h)
            *feat = h;
        if (!g || !h) {
            audio_fe_free(&fe);
            free(x);
            return -1;
        }
    }
    *t += audio_fe_compute(&fe, x, n, *feat + *t * nf, *spk + *t * n_in, want);
    audio_fe_free(&fe);
    free(x);
    return 0;
}

int main(int argc, char **argv) {
    const char *model = NULL, *dump = NULL, *dump_fe = NULL;
    int repeat = 1, first = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
            dump = argv[++i];
        else if (!strcmp(argv[i], "--dump-fe") && i + 1 < argc)
            dump_fe = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: kwsd-bench-step --model FILE [--dump FILE] [--dump-fe FILE] "
                            "[--repeat N] SOUND...\n");
            return 2;
        } else {
            first = i;
            break;
        }
    }
    if (!model || !first || repeat < 1) {
        fprintf(stderr, "usage: kwsd-bench-step --model FILE [--dump FILE] [--dump-fe FILE] "
                        "[--repeat N] SOUND...\n");
        return 2;
    }
    struct snn_model m = {0};
    char msg[256];
    if (snn_model_load(&m, model, msg, sizeof msg) < 0) {
        fprintf(stderr, "kwsd-bench-step: %s\n", msg);
        return 1;
    }
    for (int l = 0; l < m.cfg.n_layers; l++) {
        const struct snn_layer_cfg *lc = &m.cfg.layer[l];
        printf("layer %d: %d neurons, rec %d, k %d, ch %d, d_max %d, in_d_max %d\n", l,
               (int)lc->n, (int)lc->rec, (int)lc->k, (int)lc->ch, (int)lc->d_max,
               (int)lc->in_d_max);
    }
    float *spk = NULL, *feat = NULL;
    size_t t_all = 0, cap = 0;
    for (int i = first; i < argc; i++)
        if (read_frames(argv[i], &m, &feat, &spk, &t_all, &cap) < 0)
            return 1;
    const size_t nf = (size_t)m.cfg.fe.n_mels;
    uint64_t hf = 1469598103934665603ull, active = 0;
    FILE *ffe = dump_fe ? fopen(dump_fe, "wb") : NULL;
    if (dump_fe && !ffe) {
        perror(dump_fe);
        return 1;
    }
    for (size_t t = 0; t < t_all; t++) {
        hf = fnv1a(hf, feat + t * nf, nf * sizeof(float));
        hf = fnv1a(hf, spk + t * (size_t)m.cfg.n_in, (size_t)m.cfg.n_in * sizeof(float));
        for (size_t j = 0; j < (size_t)m.cfg.n_in; j++)
            active += spk[t * (size_t)m.cfg.n_in + j] != 0.0f;
        if (ffe) {
            fwrite(feat + t * nf, sizeof(float), nf, ffe);
            fwrite(spk + t * (size_t)m.cfg.n_in, sizeof(float), (size_t)m.cfg.n_in, ffe);
        }
    }
    if (ffe)
        fclose(ffe);
    printf("front end: %.2f active inputs per frame, hash %016llx\n",
           (double)active / (double)(t_all ? t_all : 1), (unsigned long long)hf);

    const size_t nc = (size_t)m.cfg.n_classes, n_in = (size_t)m.cfg.n_in;
    struct snn_state s = {0};
    if (snn_state_init(&s, &m) < 0)
        return 1;
    FILE *f = dump ? fopen(dump, "wb") : NULL;
    if (dump && !f) {
        perror(dump);
        return 1;
    }
    uint64_t h = 1469598103934665603ull, per_layer[SNN_MAX_LAYERS] = {0};
    float out[SNN_MAX_CLASSES];
    for (int r = 0; r < repeat; r++) {
        for (size_t t = 0; t < t_all; t++) {
            snn_step(&m, &s, spk + t * n_in, out);
            h = fnv1a(h, out, nc * sizeof(float));
            for (int l = 0; l < m.cfg.n_layers; l++) {
                h = fnv1a(h, s.spk[l], (size_t)m.cfg.layer[l].n * sizeof(float));
                per_layer[l] += (uint64_t)s.n_idx[l];
            }
            if (f && r == 0)
                fwrite(out, sizeof(float), nc, f);
        }
    }
    if (f)
        fclose(f);
    printf("frames %zu\n", t_all * (size_t)repeat);
    for (int l = 0; l < m.cfg.n_layers; l++)
        printf("layer %d: %.2f spikes per frame\n", l,
               (double)per_layer[l] / (double)(t_all * (size_t)repeat));
    printf("hash %016llx\n", (unsigned long long)h);
    snn_state_free(&s);
    snn_model_free(&m);
    free(spk);
    free(feat);
    return 0;
}

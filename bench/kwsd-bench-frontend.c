/* kwsd-bench-frontend: speed and spike statistics of the audio front end.
 *
 * Speed mode (default): pushes a synthetic signal (a gliding tone plus
 * noise) through resampler + front end + encoder (struct audio_pipe) in
 * capture-sized blocks, at 48 kHz and at 16 kHz input, and prints the
 * median wall and process CPU time per 10 ms frame and the share of one core
 * that real time needs (CPU time / audio time).
 *
 * Stats mode (--stats FILE...): runs the front end over sound files and
 * prints the distribution of the features before standardisation (so
 * feat_mean and feat_scale can be chosen) and the share of spike channels
 * active in speech frames and in quiet frames (frame energy more than 30 dB
 * below the loudest frame of its clip).
 *
 *     kwsd-bench-frontend [--seconds 60] [--block-ms 20] [--repeat 5]
 *     kwsd-bench-frontend --stats [--enc level|delta] [--log] [--mean M] [--scale S]
 *                         [--thresh a,b,...] FILE...
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kws/audio_file.h"
#include "kws/audio_pipe.h"
#include "kws/frontend.h"

static double now_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ==== Speed ==== */

struct count_ctx {
    uint64_t frames;
    double sink;
};

static void count_cb(void *ctx, const float *feat, const float *spikes) {
    struct count_ctx *cc = ctx;
    cc->frames++;
    cc->sink += (double)feat[0] + (double)spikes[0];
}

/* A deterministic test signal: a tone gliding 100 Hz..6 kHz and back every
 * 2 s, plus white noise from a small LCG, at about -12 dBFS. */
static void make_signal(float *x, size_t n, int rate) {
    uint32_t s = 12345;
    double ph = 0.0;

    for (size_t i = 0; i < n; i++) {
        double t = (double)i / rate, u = fmod(t, 2.0);
        double f = 100.0 + 5900.0 * (u < 1.0 ? u : 2.0 - u);
        ph += 2.0 * M_PI * f / rate;
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(0.2 * sin(ph) + 0.05 * ((double)(s >> 8) / 16777216.0 - 0.5));
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int bench_rate(int rate, double seconds, int block_ms, int repeat) {
    struct kws_frontend_cfg cfg;
    struct audio_pipe p;
    size_t n = (size_t)(seconds * rate), block = (size_t)rate * (size_t)block_ms / 1000;
    float *x = malloc(n * sizeof(float));
    double *wall = calloc((size_t)repeat, sizeof(double)),
           *cpu = calloc((size_t)repeat, sizeof(double));
    uint64_t frames = 0;

    if (!x || !wall || !cpu || block == 0) {
        free(x);
        free(wall);
        free(cpu);
        return -ENOMEM;
    }
    make_signal(x, n, rate);
    audio_fe_cfg_default(&cfg);
    if (audio_pipe_init(&p, &cfg, rate, block) < 0) {
        free(x);
        free(wall);
        free(cpu);
        return -EINVAL;
    }
    for (int r = 0; r < repeat; r++) {
        struct count_ctx cc = {0};
        audio_pipe_reset(&p);
        double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
        for (size_t off = 0; off < n; off += block)
            audio_pipe_push(&p, x + off, off + block <= n ? block : n - off, count_cb, &cc);
        wall[r] = now_s(CLOCK_MONOTONIC) - w0;
        cpu[r] = now_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        frames = cc.frames;
        if (cc.sink == 12345.678) /* keeps the work observable */
            putchar(' ');
    }
    double w = median(wall, repeat), c = median(cpu, repeat);
    printf("input %5d Hz: %8.0f ns/frame wall, %8.0f ns/frame cpu, %.3f %% of one core for "
           "real time (%llu frames, %.0f s audio, median of %d)\n",
           rate, 1e9 * w / (double)frames, 1e9 * c / (double)frames, 100.0 * c / seconds,
           (unsigned long long)frames, seconds, repeat);
    audio_pipe_free(&p);
    free(x);
    free(wall);
    free(cpu);
    return 0;
}

/* ==== Spike statistics ==== */

struct stats {
    double y_sum, y_sq; /* features before standardisation, speech frames */
    double y_min, y_max;
    uint64_t n_y;
    uint64_t speech_frames, quiet_frames;
    double speech_active, quiet_active; /* sums of per-frame active fractions */
};

static int parse_list(const char *s, float *out, int max) {
    int n = 0;
    char *end;

    while (*s && n < max) {
        errno = 0;
        out[n++] = strtof(s, &end);
        if (errno || end == s)
            return -1;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static void stats_file(const char *path, const struct kws_frontend_cfg *cfg, struct stats *st) {
    float *x, *feat, *spk, *energy;
    size_t n, T, F = (size_t)cfg->n_mels, S = (size_t)audio_fe_n_out(cfg);
    char msg[256];
    struct audio_fe fe;
    double emax = 0.0;

    if (audio_file_read(path, cfg->sample_rate, &x, &n, NULL, msg, sizeof msg) < 0) {
        fprintf(stderr, "%s\n", msg);
        return;
    }
    T = n / (size_t)cfg->hop;
    feat = malloc(T * F * sizeof(float));
    spk = malloc(T * S * sizeof(float));
    energy = malloc(T * sizeof(float));
    if (!feat || !spk || !energy || audio_fe_init(&fe, cfg) < 0) {
        fprintf(stderr, "%s: out of memory\n", path);
        goto out;
    }
    for (size_t t = 0; t < T; t++) {
        double e = 0.0;
        for (size_t i = 0; i < (size_t)cfg->hop; i++)
            e += (double)x[t * (size_t)cfg->hop + i] * x[t * (size_t)cfg->hop + i];
        energy[t] = (float)e;
        if (e > emax)
            emax = e;
    }
    audio_fe_compute(&fe, x, n, feat, spk, T);
    for (size_t t = 0; t < T; t++) {
        double act = 0.0;
        for (size_t s = 0; s < S; s++)
            act += spk[t * S + s] > 0.0f;
        act /= (double)S;
        if (energy[t] >= emax * 1e-3) {
            st->speech_frames++;
            st->speech_active += act;
            for (size_t f = 0; f < F; f++) {
                double y = (double)feat[t * F + f] / cfg->feat_scale + cfg->feat_mean;
                st->y_sum += y;
                st->y_sq += y * y;
                if (y < st->y_min)
                    st->y_min = y;
                if (y > st->y_max)
                    st->y_max = y;
                st->n_y++;
            }
        } else {
            st->quiet_frames++;
            st->quiet_active += act;
        }
    }
    audio_fe_free(&fe);
out:
    free(x);
    free(feat);
    free(spk);
    free(energy);
}

static int run_stats(int argc, char **argv) {
    struct kws_frontend_cfg cfg;
    struct stats st = {.y_min = 1e30, .y_max = -1e30};
    int i, files = 0;
    char msg[256];

    audio_fe_cfg_default(&cfg);
    for (i = 0; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--enc") && i + 1 < argc) {
            i++;
            if (!strcmp(argv[i], "delta")) {
                audio_fe_cfg_delta(&cfg);
            } else if (strcmp(argv[i], "level")) {
                fprintf(stderr, "--enc: level or delta\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--log")) {
            cfg.pcen = 0;
        } else if (!strcmp(argv[i], "--mean") && i + 1 < argc) {
            cfg.feat_mean = strtof(argv[++i], NULL);
        } else if (!strcmp(argv[i], "--scale") && i + 1 < argc) {
            cfg.feat_scale = strtof(argv[++i], NULL);
        } else if (!strcmp(argv[i], "--thresh") && i + 1 < argc) {
            int k = parse_list(argv[++i], cfg.enc_thresh, KWS_ENC_MAX_LEVELS);
            if (k <= 0) {
                fprintf(stderr, "--thresh: bad list\n");
                return 2;
            }
            cfg.enc_levels = k;
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (audio_fe_cfg_check(&cfg, msg, sizeof msg) < 0) {
        fprintf(stderr, "%s\n", msg);
        return 2;
    }
    for (; i < argc; i++, files++)
        stats_file(argv[i], &cfg, &st);
    double mean = st.n_y ? st.y_sum / (double)st.n_y : 0.0;
    double sd = st.n_y ? sqrt(st.y_sq / (double)st.n_y - mean * mean) : 0.0;
    printf("files %d, frames: %llu speech, %llu quiet (< -30 dB of the clip's peak)\n", files,
           (unsigned long long)st.speech_frames, (unsigned long long)st.quiet_frames);
    printf("features before standardisation, speech frames: mean %.4f sd %.4f min %.4f max "
           "%.4f\n",
           mean, sd, st.y_min, st.y_max);
    printf("spike channels active: speech %.2f %%, quiet %.2f %% (%s encoder, %d channels)\n",
           st.speech_frames ? 100.0 * st.speech_active / (double)st.speech_frames : 0.0,
           st.quiet_frames ? 100.0 * st.quiet_active / (double)st.quiet_frames : 0.0,
           cfg.enc_kind == KWS_ENC_DELTA ? "delta" : "level", audio_fe_n_out(&cfg));
    return 0;
}

/* Parses a whole decimal int in [lo, hi]; returns 0 or -1. */
static int parse_int(const char *s, int lo, int hi, int *out) {
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv) {
    double seconds = 60.0;
    int block_ms = 20, repeat = 5;

    if (argc > 1 && !strcmp(argv[1], "--stats"))
        return run_stats(argc - 2, argv + 2);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--block-ms") && i + 1 < argc &&
                 parse_int(argv[i + 1], 1, 1000, &block_ms) == 0)
            i++;
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc &&
                 parse_int(argv[i + 1], 1, 100, &repeat) == 0)
            i++;
        else {
            fprintf(stderr,
                    "usage: %s [--seconds S] [--block-ms MS] [--repeat N]\n"
                    "       %s --stats [--enc level|delta] [--log] [--mean M] "
                    "[--scale S] [--thresh a,b,..] FILE...\n",
                    argv[0], argv[0]);
            return 2;
        }
    }
    if (!(seconds > 0.0 && seconds < 1e5)) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    if (bench_rate(48000, seconds, block_ms, repeat) < 0 ||
        bench_rate(16000, seconds, block_ms, repeat) < 0)
        return 1;
    return 0;
}

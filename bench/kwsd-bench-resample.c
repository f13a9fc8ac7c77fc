/* kwsd-bench-resample: passband, aliasing rejection and cost of the resampler.
 *
 * Feeds pure tones at an input rate (48 kHz by default) through
 * struct audio_resampler to 16 kHz and measures, in the output, the
 * amplitude of the tone (below 8 kHz) or of the alias it folds to (above
 * 8 kHz), by a least-squares fit of a sine and a cosine at that frequency over
 * one second away from the stream's ends. From these it prints the
 * passband's ripple and its -0.1 dB and -3 dB edges, and the aliasing
 * rejection: how far below the input every tone above 8 kHz comes out.
 * Tones lie on a 25 Hz grid offset by 12.5 Hz, so none sits at 0 Hz or at
 * the 8 kHz Nyquist frequency, where a sine cannot be fitted.
 *
 * --cost pushes --seconds of white noise through the converter in 20 ms
 * blocks, as the daemon does with capture periods, and prints nothing else;
 * run it under callgrind to count its instructions:
 *
 *     valgrind --tool=callgrind --toggle-collect=audio_resampler_process \
 *         build/bench/kwsd-bench-resample --cost --rate 48000 --quality 4
 *
 * Usage: kwsd-bench-resample [--rate HZ] [--quality Q|all] [--table] [--cost [--seconds S]]
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws/resample.h"

#define OUT_RATE 16000
#define AMP 0.5

/* Resamples in_rate Hz x (n samples) to 16 kHz in 20 ms blocks into y
 * (capacity cap), flushed; returns the number of output samples, or -1. */
static long run(struct audio_resampler *r, const float *x, size_t n, float *y, size_t cap) {
    size_t block = (size_t)r->in_rate / 50, done = 0, got;

    for (size_t off = 0; off < n; off += block) {
        size_t k = n - off < block ? n - off : block;
        if (audio_resampler_process(r, x + off, k, y + done, cap - done, &got) < 0)
            return -1;
        done += got;
    }
    if (audio_resampler_flush(r, y + done, cap - done, &got) < 0)
        return -1;
    return (long)(done + got);
}

/* Amplitude of the component at f Hz in y[0..n) (16 kHz), by least squares
 * on sin and cos: the 2x2 normal equations solved exactly. */
static double amplitude(const float *y, size_t n, double f) {
    double ss = 0, cc = 0, sc = 0, ys = 0, yc = 0, w = 2.0 * M_PI * f / OUT_RATE;

    for (size_t k = 0; k < n; k++) {
        double s = sin(w * (double)k), c = cos(w * (double)k);
        ss += s * s;
        cc += c * c;
        sc += s * c;
        ys += y[k] * s;
        yc += y[k] * c;
    }
    double det = ss * cc - sc * sc;
    double a = (ys * cc - yc * sc) / det, b = (yc * ss - ys * sc) / det;
    return sqrt(a * a + b * b);
}

/* Where f Hz lands after sampling at 16 kHz. */
static double fold(double f) {
    double m = fmod(f, OUT_RATE);
    return m > OUT_RATE / 2 ? OUT_RATE - m : m;
}

struct result {
    double ripple_db;   /* max - min gain over 20 Hz .. 6 kHz */
    double edge01;      /* first tone below -0.1 dB, Hz */
    double edge3;       /* first tone below -3 dB, Hz */
    double alias_db;    /* worst (highest) level of a tone >= 8 kHz, dB re input */
    double alias_at;    /* that tone, Hz */
    double alias_7k_db; /* the same over tones whose alias lands below 7 kHz */
};

static int measure(int rate, int quality, int table, struct result *res) {
    size_t n = (size_t)rate * 3 / 2, cap;
    float *x = malloc(n * sizeof(float)), *y;
    struct audio_resampler r;
    double gmax = -1e9, gmin = 1e9;
    int rc = audio_resampler_init_quality(&r, rate, OUT_RATE, (size_t)rate / 50, quality);

    if (rc < 0 || !x) {
        free(x);
        return rc < 0 ? rc : -ENOMEM;
    }
    cap = audio_resampler_out_max(&r, n) + audio_resampler_out_max(&r, 0);
    y = malloc(cap * sizeof(float));
    if (!y) {
        free(x);
        audio_resampler_free(&r);
        return -ENOMEM;
    }
    memset(res, 0, sizeof *res);
    res->alias_db = res->alias_7k_db = -1e9;
    for (double f = 12.5; f < rate / 2.0; f += 25.0) {
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(AMP * sin(2.0 * M_PI * f * (double)i / rate));
        audio_resampler_reset(&r);
        long got = run(&r, x, n, y, cap);
        if (got < OUT_RATE * 5 / 4) {
            rc = -EIO;
            break;
        }
        double fa = fold(f), db = 20.0 * log10(amplitude(y + OUT_RATE / 4, OUT_RATE, fa) / AMP);
        if (table)
            printf("%d\t%d\t%.1f\t%.1f\t%.4f\n", rate, quality, f, fa, db);
        if (f < OUT_RATE / 2) {
            if (f >= 20.0 && f <= 6000.0) {
                gmax = db > gmax ? db : gmax;
                gmin = db < gmin ? db : gmin;
            }
            if (db < -0.1 && res->edge01 == 0.0)
                res->edge01 = f;
            if (db < -3.0 && res->edge3 == 0.0)
                res->edge3 = f;
        } else {
            if (db > res->alias_db) {
                res->alias_db = db;
                res->alias_at = f;
            }
            if (fa < 7000.0 && db > res->alias_7k_db)
                res->alias_7k_db = db;
        }
    }
    res->ripple_db = gmax - gmin;
    audio_resampler_free(&r);
    free(x);
    free(y);
    return rc;
}

static int cost(int rate, int quality, double seconds) {
    size_t n = (size_t)(seconds * rate), block = (size_t)rate / 50, got;
    struct audio_resampler r;
    float *x = malloc(block * sizeof(float)), *y;
    unsigned s = 1;
    int rc = audio_resampler_init_quality(&r, rate, OUT_RATE, block, quality);

    if (rc < 0 || !x) {
        free(x);
        return rc < 0 ? rc : -ENOMEM;
    }
    y = malloc(audio_resampler_out_max(&r, block) * sizeof(float));
    for (size_t off = 0; y && off < n; off += block) {
        for (size_t i = 0; i < block; i++) {
            s = s * 1664525u + 1013904223u;
            x[i] = 0.25f * ((float)(s >> 8) / 16777216.0f - 0.5f);
        }
        rc = audio_resampler_process(&r, x, block, y, audio_resampler_out_max(&r, block), &got);
        if (rc < 0)
            break;
    }
    audio_resampler_free(&r);
    free(x);
    free(y);
    return y ? rc : -ENOMEM;
}

int main(int argc, char **argv) {
    int rate = 48000, q_lo = AUDIO_RESAMPLER_QUALITY, q_hi = AUDIO_RESAMPLER_QUALITY;
    int table = 0, do_cost = 0;
    double seconds = 60.0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--table")) {
            table = 1;
        } else if (!strcmp(a, "--cost")) {
            do_cost = 1;
        } else if (!strcmp(a, "--rate") && v) {
            long l = strtol(v, &end, 10);
            if (*end || l < 16000 || l > 384000) {
                fprintf(stderr, "kwsd-bench-resample: --rate: %s not in [16000, 384000]\n", v);
                return 2;
            }
            rate = (int)l;
            i++;
        } else if (!strcmp(a, "--quality") && v) {
            if (!strcmp(v, "all")) {
                q_lo = 0;
                q_hi = 10;
            } else {
                long l = strtol(v, &end, 10);
                if (*end || l < 0 || l > 10) {
                    fprintf(stderr, "kwsd-bench-resample: --quality: %s not in [0, 10] or all\n",
                            v);
                    return 2;
                }
                q_lo = q_hi = (int)l;
            }
            i++;
        } else if (!strcmp(a, "--seconds") && v) {
            seconds = strtod(v, &end);
            if (*end || !(seconds > 0.0 && seconds <= 3600.0)) {
                fprintf(stderr, "kwsd-bench-resample: --seconds: %s not in (0, 3600]\n", v);
                return 2;
            }
            i++;
        } else {
            fprintf(stderr, "usage: kwsd-bench-resample [--rate HZ] [--quality Q|all] [--table] "
                            "[--cost [--seconds S]]\n");
            return 2;
        }
    }
    if (do_cost) {
        int rc = cost(rate, q_lo, seconds);
        if (rc < 0)
            fprintf(stderr, "kwsd-bench-resample: %s\n", strerror(-rc));
        return rc < 0;
    }
    if (!table)
        printf("rate   q | ripple 20 Hz-6 kHz | -0.1 dB at | -3 dB at | worst alias (tone >= 8 "
               "kHz) | worst alias landing < 7 kHz\n");
    for (int q = q_lo; q <= q_hi; q++) {
        struct result res;
        int rc = measure(rate, q, table, &res);
        if (rc < 0) {
            fprintf(stderr, "kwsd-bench-resample: %d Hz, quality %d: %s\n", rate, q, strerror(-rc));
            return 1;
        }
        if (!table)
            printf("%-6d %2d | %15.4f dB | %7.0f Hz | %5.0f Hz | %8.1f dB at %7.1f Hz | %8.1f dB\n",
                   rate, q, res.ripple_db, res.edge01, res.edge3, res.alias_db, res.alias_at,
                   res.alias_7k_db);
    }
    return 0;
}

/* frontend.c: streaming log-mel + PCEN front end and the spike encoders.
 *
 * Samples go into a win_len history; every hop samples the history is
 * windowed, transformed with one fftw3f r2c plan, reduced to a power
 * spectrum and a sparse HTK mel filterbank, gain-normalised with PCEN (or
 * logged), standardised and encoded into spikes. All buffers are allocated
 * by audio_fe_init; the per-frame path allocates nothing. kws/frontend.h
 * states the exact conventions.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/frontend.h"

#include <errno.h>
#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws/err.h"

/* FFTW's planner (and plan destruction) is not thread-safe; fftwf_execute is. */
static pthread_mutex_t fft_plan_lock = PTHREAD_MUTEX_INITIALIZER;

/* ==== Settings ==== */

void audio_fe_cfg_default(struct kws_frontend_cfg *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->sample_rate = 16000;
    cfg->win_len = 400;
    cfg->hop = 160;
    cfg->n_fft = 512;
    cfg->n_mels = 40;
    cfg->fmin = 20.0f;
    cfg->fmax = 8000.0f;
    cfg->pcen = 1;
    cfg->pcen_s = 0.025f;
    cfg->pcen_alpha = 1.0f;
    cfg->pcen_delta = 2.0f;
    cfg->pcen_r = 0.5f;
    cfg->pcen_eps = 1e-8f;
    cfg->enc_kind = KWS_ENC_LEVEL;
    cfg->enc_levels = 4;
    /* Measured on Speech Commands speech frames (docs/BENCHMARKS.md): PCEN
     * output mean 0.88, sd 1.2; these thresholds make about 11 % of the
     * channels fire on speech and under 1 % on background noise. */
    cfg->enc_thresh[0] = 0.6f;
    cfg->enc_thresh[1] = 1.25f;
    cfg->enc_thresh[2] = 1.9f;
    cfg->enc_thresh[3] = 2.8f;
    cfg->feat_mean = 0.88f;
    cfg->feat_scale = 0.83f;
}

void audio_fe_cfg_delta(struct kws_frontend_cfg *cfg) {
    cfg->enc_kind = KWS_ENC_DELTA;
    cfg->enc_levels = 4;
    memset(cfg->enc_thresh, 0, sizeof cfg->enc_thresh);
    cfg->enc_thresh[0] = cfg->enc_thresh[2] = 0.55f; /* up, down */
    cfg->enc_thresh[1] = cfg->enc_thresh[3] = 1.1f;
}

int audio_fe_cfg_check(const struct kws_frontend_cfg *c, char *msg, size_t msglen) {
    return kws_frontend_cfg_check(c, msg, msglen);
}

int audio_fe_n_out(const struct kws_frontend_cfg *cfg) {
    return kws_frontend_n_out(cfg);
}

size_t audio_sanitize(float *x, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        /* NaN fails every comparison, so !(|x| <= limit) catches it too.
         * Branch-free, so that the compiler vectorises it. */
        float v = x[i];
        int ok = fabsf(v) <= AUDIO_SAMPLE_ABSURD;
        x[i] = ok ? v : 0.0f;
        bad += (size_t)!ok;
    }
    return bad;
}

/* ==== Mel filterbank ==== */

static double hz_to_mel(double f) {
    return 2595.0 * log10(1.0 + f / 700.0);
}

static double mel_to_hz(double m) {
    return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
}

/* Builds the sparse triangles: band f covers bins mel_lo[f] .. mel_lo[f] +
 * mel_len[f] - 1 with weights mel_w[mel_off[f] + i]. A band too narrow to
 * contain any bin centre gets the bin nearest its centre with weight 1, so
 * no band is identically zero. */
static int mel_build(struct audio_fe *fe) {
    const struct kws_frontend_cfg *c = &fe->cfg;
    int F = c->n_mels, nb = fe->n_bins;
    double mlo = hz_to_mel(c->fmin), mhi = hz_to_mel(c->fmax);
    double bin_hz = (double)c->sample_rate / c->n_fft;
    int total = 0;

    fe->mel_lo = calloc((size_t)F, sizeof(int));
    fe->mel_len = calloc((size_t)F, sizeof(int));
    fe->mel_off = calloc((size_t)F, sizeof(int));
    fe->mel_w = calloc((size_t)F * (size_t)nb, sizeof(float)); /* upper bound, trimmed below */
    if (!fe->mel_lo || !fe->mel_len || !fe->mel_off || !fe->mel_w)
        return -ENOMEM;
    for (int f = 0; f < F; f++) {
        double lo = mel_to_hz(mlo + (mhi - mlo) * f / (F + 1));
        double ce = mel_to_hz(mlo + (mhi - mlo) * (f + 1) / (F + 1));
        double hi = mel_to_hz(mlo + (mhi - mlo) * (f + 2) / (F + 1));
        int first = -1, n = 0;

        fe->mel_off[f] = total;
        for (int k = 0; k < nb; k++) {
            double hz = k * bin_hz, w = 0.0;
            if (hz > lo && hz <= ce)
                w = (hz - lo) / (ce - lo);
            else if (hz > ce && hz < hi)
                w = (hi - hz) / (hi - ce);
            if (w <= 0.0)
                continue;
            if (first < 0)
                first = k;
            /* Triangles are convex, so the bins with w > 0 are contiguous. */
            fe->mel_w[total + (k - first)] = (float)w;
            n = k - first + 1;
        }
        if (n == 0) {
            int k = (int)lround(ce / bin_hz);
            first = k < nb ? k : nb - 1;
            fe->mel_w[total] = 1.0f;
            n = 1;
        }
        fe->mel_lo[f] = first;
        fe->mel_len[f] = n;
        total += n;
    }
    float *w = realloc(fe->mel_w, (size_t)total * sizeof(float));
    if (w)
        fe->mel_w = w;
    return 0;
}

/* ==== Lifecycle ==== */

int audio_fe_init(struct audio_fe *fe, const struct kws_frontend_cfg *cfg) {
    struct kws_frontend_cfg copy = *cfg; /* cfg may point into fe */
    int rc = audio_fe_cfg_check(&copy, NULL, 0);
    const struct kws_frontend_cfg *c = &fe->cfg;

    memset(fe, 0, sizeof *fe);
    if (rc < 0)
        return rc;
    fe->cfg = copy;
    fe->n_bins = c->n_fft / 2 + 1;
    fe->n_out = audio_fe_n_out(c);

    size_t F = (size_t)c->n_mels;
    fe->window = malloc((size_t)c->win_len * sizeof(float));
    fe->hist = calloc((size_t)c->win_len, sizeof(float));
    fe->fft_in = fftwf_malloc((size_t)c->n_fft * sizeof(float));
    fe->fft_out = fftwf_malloc((size_t)fe->n_bins * sizeof(fftwf_complex));
    fe->power = malloc((size_t)fe->n_bins * sizeof(float));
    fe->energy = calloc(F, sizeof(float));
    fe->pcen_m = calloc(F, sizeof(float));
    fe->feat = calloc(F, sizeof(float));
    fe->prev = calloc(F, sizeof(float));
    fe->spikes = calloc((size_t)fe->n_out, sizeof(float));
    if (!fe->window || !fe->hist || !fe->fft_in || !fe->fft_out || !fe->power || !fe->energy ||
        !fe->pcen_m || !fe->feat || !fe->prev || !fe->spikes)
        goto nomem;
    if (mel_build(fe) < 0)
        goto nomem;

    /* Periodic Hann: w[i] = 0.5 - 0.5 cos(2 pi i / N). */
    for (int i = 0; i < c->win_len; i++)
        fe->window[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / c->win_len));
    memset(fe->fft_in, 0, (size_t)c->n_fft * sizeof(float));

    pthread_mutex_lock(&fft_plan_lock);
    fe->plan =
        fftwf_plan_dft_r2c_1d(c->n_fft, fe->fft_in, (fftwf_complex *)fe->fft_out, FFTW_ESTIMATE);
    pthread_mutex_unlock(&fft_plan_lock);
    if (!fe->plan)
        goto nomem;
    audio_fe_reset(fe);
    return 0;

nomem:
    audio_fe_free(fe);
    return -ENOMEM;
}

void audio_fe_reset(struct audio_fe *fe) {
    size_t F = (size_t)fe->cfg.n_mels;

    memset(fe->hist, 0, (size_t)fe->cfg.win_len * sizeof(float));
    memset(fe->pcen_m, 0, F * sizeof(float));
    memset(fe->feat, 0, F * sizeof(float));
    memset(fe->prev, 0, F * sizeof(float));
    memset(fe->spikes, 0, (size_t)fe->n_out * sizeof(float));
    fe->fill = 0;
    fe->frames = 0;
    fe->zero_run = 0;
}

void audio_fe_free(struct audio_fe *fe) {
    if (fe->plan) {
        pthread_mutex_lock(&fft_plan_lock);
        fftwf_destroy_plan((fftwf_plan)fe->plan);
        pthread_mutex_unlock(&fft_plan_lock);
    }
    fftwf_free(fe->fft_in);
    fftwf_free(fe->fft_out);
    free(fe->window);
    free(fe->hist);
    free(fe->power);
    free(fe->mel_lo);
    free(fe->mel_len);
    free(fe->mel_off);
    free(fe->mel_w);
    free(fe->energy);
    free(fe->pcen_m);
    free(fe->feat);
    free(fe->prev);
    free(fe->spikes);
    memset(fe, 0, sizeof *fe);
}

/* ==== Spike encoders ==== */

/* The ramp encoder's half-width of level k of the L increasing thresholds
 * th (L >= 2): half the gap to the nearest neighbour. */
static float enc_ramp_half(const float *th, int L, int k) {
    float below = k > 0 ? th[k] - th[k - 1] : th[k + 1] - th[k];
    float above = k + 1 < L ? th[k + 1] - th[k] : th[k] - th[k - 1];
    return 0.5f * (below < above ? below : above);
}

void audio_enc_frame(const struct kws_frontend_cfg *cfg, const float *feat, const float *prev,
                     float *spikes) {
    int F = cfg->n_mels, L = cfg->enc_levels;
    float th[KWS_ENC_MAX_LEVELS]; /* a copy: the stores below cannot change it */
    memcpy(th, cfg->enc_thresh, sizeof th);

    if (cfg->enc_kind == KWS_ENC_DELTA) {
        int half = L / 2;
        for (int f = 0; f < F; f++) {
            float d = prev ? feat[f] - prev[f] : 0.0f;
            float *s = spikes + (size_t)f * L;
            for (int k = 0; k < half; k++)
                s[k] = d >= th[k] ? 1.0f : 0.0f;
            for (int k = half; k < L; k++)
                s[k] = -d >= th[k] ? 1.0f : 0.0f;
        }
        return;
    }
    if (cfg->enc_kind == KWS_ENC_RAMP) {
        float lo[KWS_ENC_MAX_LEVELS], inv[KWS_ENC_MAX_LEVELS];
        for (int k = 0; k < L; k++) {
            float h = enc_ramp_half(th, L, k);
            lo[k] = th[k] - h;
            inv[k] = 0.5f / h;
        }
        for (int f = 0; f < F; f++) {
            float v = feat[f];
            float *s = spikes + (size_t)f * L;
            for (int k = 0; k < L; k++) {
                float r = (v - lo[k]) * inv[k];
                s[k] = r <= 0.0f ? 0.0f : r >= 1.0f ? 1.0f : r;
            }
        }
        return;
    }
    if (L == 4) { /* the usual count, unrolled so that the compiler vectorises it */
        for (int f = 0; f < F; f++)
            for (int k = 0; k < 4; k++)
                spikes[(size_t)f * 4 + (size_t)k] = feat[f] >= th[k] ? 1.0f : 0.0f;
        return;
    }
    for (int f = 0; f < F; f++) {
        float v = feat[f];
        float *s = spikes + (size_t)f * L;
        for (int k = 0; k < L; k++)
            s[k] = v >= th[k] ? 1.0f : 0.0f;
    }
}

/* ==== Frame computation ==== */

/* The per-frame loops on their own, with restrict pointers so that the
 * compiler vectorises them (each output element is computed exactly as in
 * a plain loop; the mel sums keep their order). */
static void fe_window(float *restrict out, const float *restrict x, const float *restrict w, int n) {
    for (int i = 0; i < n; i++)
        out[i] = x[i] * w[i];
}

/* p (nb) = |X|^2 of the interleaved re/im spectrum c (nb, 2). */
static void fe_power(float *restrict p, const float *restrict c, int nb) {
    for (int k = 0; k < nb; k++)
        p[k] = c[2 * k] * c[2 * k] + c[2 * k + 1] * c[2 * k + 1];
}

/* e (F) = the sparse triangles applied to the power spectrum p. */
static void fe_mel(float *restrict e, const float *restrict p, const float *restrict w,
                   const int *lo, const int *len, const int *off, int F) {
    for (int f = 0; f < F; f++) {
        const float *wf = w + off[f], *pf = p + lo[f];
        const int n = len[f];
        float acc = 0.0f;
        int i = 0;
        /* In order, four at a time: a vectorised in-order sum would pay a
         * shuffle per term. */
        for (; i + 4 <= n; i += 4) {
            acc += wf[i] * pf[i];
            acc += wf[i + 1] * pf[i + 1];
            acc += wf[i + 2] * pf[i + 2];
            acc += wf[i + 3] * pf[i + 3];
        }
        for (; i < n; i++)
            acc += wf[i] * pf[i];
        e[f] = acc;
    }
}

/* PCEN of one frame: M = (1 - k) M + k E (k = pcen_s, or pcen_release
 * when the energy falls; M = E on a stream's first frame), then
 * y = (E / (eps + M)^alpha + delta)^r - delta^r, standardised into feat.
 * alpha 1 and r 1/2 (every shipped model) take 1/x and sqrtf instead of
 * expf(-alpha logf(x)) and powf(x, r): a tenth of the instructions, and
 * closer to the exact value (docs/BENCHMARKS.md, "Front end"). */
static void pcen_frame(float *restrict feat, float *restrict pm, const float *restrict energy,
                       const struct kws_frontend_cfg *c, int F, int first) {
    const float s = c->pcen_s, sr = c->pcen_release > 0.0f ? c->pcen_release : s;
    const float eps = c->pcen_eps, delta = c->pcen_delta, mean = c->feat_mean,
                scale = c->feat_scale;
    const int fast = c->pcen_alpha == 1.0f && c->pcen_r == 0.5f;
    const float dr = fast ? sqrtf(delta) : powf(delta, c->pcen_r);
    for (int f = 0; f < F; f++) {
        float e = energy[f], k = e < pm[f] ? sr : s;
        float m = first ? e : (1.0f - k) * pm[f] + k * e;
        pm[f] = m;
        float y;
        if (fast)
            y = sqrtf(e * (1.0f / (eps + m)) + delta) - dr;
        else
            y = powf(e * expf(-c->pcen_alpha * logf(eps + m)) + delta, c->pcen_r) - dr;
        feat[f] = (y - mean) * scale;
    }
}

/* Computes one frame from the full history: features into fe->feat, spikes
 * into fe->spikes (the previous features move to fe->prev first). */
static void fe_frame(struct audio_fe *fe) {
    const struct kws_frontend_cfg *c = &fe->cfg;
    int F = c->n_mels, nb = fe->n_bins;
    float *tmp;

    int zero = 1;
    for (int i = 0; i < c->win_len && zero; i++)
        zero = fe->hist[i] == 0.0f;
    fe->zero_run = zero ? fe->zero_run + 1 : 0;
    fe_window(fe->fft_in, fe->hist, fe->window, c->win_len);
    fftwf_execute((fftwf_plan)fe->plan);
    fe_power(fe->power, fe->fft_out, nb);
    fe_mel(fe->energy, fe->power, fe->mel_w, fe->mel_lo, fe->mel_len, fe->mel_off, F);

    /* The features of the last frame become the delta encoder's reference. */
    tmp = fe->prev;
    fe->prev = fe->feat;
    fe->feat = tmp;

    if (c->pcen) {
        pcen_frame(fe->feat, fe->pcen_m, fe->energy, c, F, fe->frames == 0);
    } else {
        for (int f = 0; f < F; f++) {
            float y = logf(fe->energy[f] + 1e-6f);
            fe->feat[f] = (y - c->feat_mean) * c->feat_scale;
        }
    }
    audio_enc_frame(c, fe->feat, fe->frames ? fe->prev : NULL, fe->spikes);
    fe->frames++;
}

void audio_fe_push(struct audio_fe *fe, const float *x, size_t n, audio_fe_frame_cb cb, void *ctx) {
    int win = fe->cfg.win_len, hop = fe->cfg.hop, keep = win - hop;

    while (n > 0) {
        size_t take = (size_t)(hop - fe->fill);
        if (take > n)
            take = n;
        memcpy(fe->hist + keep + fe->fill, x, take * sizeof(float));
        fe->fill += (int)take;
        x += take;
        n -= take;
        if (fe->fill < hop)
            break;
        fe_frame(fe);
        if (cb)
            cb(ctx, fe->feat, fe->spikes);
        memmove(fe->hist, fe->hist + hop, (size_t)keep * sizeof(float));
        fe->fill = 0;
    }
}

struct compute_ctx {
    const struct audio_fe *fe;
    float *feat, *spikes;
    size_t max, count;
};

static void compute_cb(void *ctx, const float *feat, const float *spikes) {
    struct compute_ctx *cc = ctx;
    size_t F = (size_t)cc->fe->cfg.n_mels, S = (size_t)cc->fe->n_out;

    if (cc->count < cc->max) {
        if (cc->feat)
            memcpy(cc->feat + cc->count * F, feat, F * sizeof(float));
        if (cc->spikes)
            memcpy(cc->spikes + cc->count * S, spikes, S * sizeof(float));
    }
    cc->count++;
}

size_t audio_fe_compute(struct audio_fe *fe, const float *x, size_t n, float *feat, float *spikes,
                        size_t max_frames) {
    struct compute_ctx cc = {.fe = fe, .feat = feat, .spikes = spikes, .max = max_frames};

    audio_fe_push(fe, x, n, compute_cb, &cc);
    return cc.count;
}

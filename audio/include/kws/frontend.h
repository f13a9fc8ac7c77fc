/* kws/frontend.h: streaming log-mel + PCEN front end and spike encoder.
 *
 * Turns mono audio at cfg->sample_rate (16 kHz) into one frame every hop
 * (10 ms): a 25 ms Hann window, a real FFT (fftw3f), the power spectrum, a
 * 40-band mel filterbank, then either PCEN gain normalisation or a plain log,
 * then standardisation feat = (x - feat_mean) * feat_scale. The spike encoder
 * turns each frame's F features into n_out spike counts, the SNN's input.
 *
 * Conventions (the trainer and the daemon rely on them):
 *   - Framing: the window starts filled with win_len - hop zeros, so every
 *     hop samples pushed complete exactly one frame; n samples give n / hop
 *     frames, and frame t covers samples [(t+1)*hop - win_len, (t+1)*hop).
 *   - Power spectrum: |X_k|^2 of the Hann-windowed frame (samples in [-1, 1),
 *     no scaling), bins k = 0..n_fft/2; the frame is zero-padded to n_fft.
 *   - Mel scale: HTK, mel(f) = 2595 log10(1 + f / 700); triangles between
 *     n_mels + 2 equally spaced mel points from fmin to fmax, peak 1 (no area
 *     normalisation), evaluated at each bin's centre frequency.
 *   - PCEN (Wang et al. 2017), per band, per frame:
 *         M = (1 - s) M + s E          (M starts at the first frame's E;
 *                                       s = pcen_release instead while
 *                                       E < M, if pcen_release > 0)
 *         y = (E / (eps + M)^alpha + delta)^r - delta^r
 *     Plain log (pcen = 0): y = ln(E + 1e-6).
 *   - Level encoder (KWS_ENC_LEVEL): spikes[f * L + k] = feat[f] >= enc_thresh[k]
 *     (L = enc_levels; a thermometer code when thresholds increase).
 *   - Delta encoder (KWS_ENC_DELTA): d = feat[f] - previous frame's feat[f]
 *     (0 on the first frame of a stream); for k < L/2 (up channels)
 *     spikes[f * L + k] = d >= enc_thresh[k]; for k >= L/2 (down channels)
 *     spikes[f * L + k] = -d >= enc_thresh[k]. L must be even.
 *   - Ramp encoder (KWS_ENC_RAMP): the level encoder's channels as soft
 *     steps, spikes[f * L + k] = clamp(1/2 + (feat[f] - enc_thresh[k]) / (2 h_k),
 *     0, 1), h_k half the gap from threshold k to its nearest neighbour:
 *     1/2 at the threshold, 0 and 1 at h_k either
 *     side, so neighbouring ramps never overlap and their sum rises with the
 *     feature from enc_thresh[0] - h_0 to enc_thresh[L-1] + h_{L-1}.
 *     Thresholds must increase and L >= 2. A channel is non-zero where the
 *     feature is above its threshold lowered by h_k;
 *     the first layer weighs the value instead of adding a row.
 *   Spike counts are 0 or 1 with the level and delta encoders, in [0, 1]
 *   with the ramp; n_out = n_mels * enc_levels.
 *
 *     struct kws_frontend_cfg cfg;
 *     struct audio_fe fe = {0};
 *     audio_fe_cfg_default(&cfg);
 *     if (audio_fe_init(&fe, &cfg) < 0) ...;
 *     audio_fe_push(&fe, samples, n, on_frame, ctx);   // on_frame(ctx, feat, spikes)
 *     audio_fe_free(&fe);
 *
 * Thread-safety: audio_fe_init and audio_fe_free may be called from any
 * thread (FFTW planning is serialised by an internal mutex); one audio_fe is
 * used by one thread at a time. Different audio_fe may run in parallel.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_AUDIO_FRONTEND_H
#define KWS_AUDIO_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#include "kws/model.h"

/* Fills cfg with the defaults: 16 kHz, win 400, hop 160, n_fft 512, 40 mels
 * from 20 Hz to 8 kHz; PCEN on with s 0.025 (a 0.4 s smoother), alpha 1,
 * delta 2, r 0.5, eps 1e-8; level encoder with 4 levels; thresholds and
 * feat_mean/feat_scale as measured on speech (docs/BENCHMARKS.md).
 * alpha 1 makes PCEN fully level invariant: a clip at 1/8 of its level gives
 * the same spikes (with the literature's 0.98 about 10 % of them flip). */
void audio_fe_cfg_default(struct kws_frontend_cfg *cfg);

/* Switches cfg to the delta encoder with its measured default thresholds:
 * 4 channels per band, up at d >= 0.55 and d >= 1.1, down likewise. */
void audio_fe_cfg_delta(struct kws_frontend_cfg *cfg);

/* Checks every field of cfg for range and consistency: kws_frontend_cfg_check
 * of kws/model.h, the check the model loader runs too. Returns 0, or
 * KWS_EBADFIELD with "field: reason" in msg (msg may be NULL). */
int audio_fe_cfg_check(const struct kws_frontend_cfg *cfg, char *msg, size_t msglen);

/* A sample whose magnitude exceeds this is broken input, not sound: audio is
 * in [-1, 1), and a float source may overshoot a little, never 1000-fold. */
#define AUDIO_SAMPLE_ABSURD 1e3f

/* Guards the input convention at the boundary where samples enter kwsd (a
 * file's decoder, a float capture device): replaces every sample of x (n)
 * that is NaN, infinite or larger in magnitude than AUDIO_SAMPLE_ABSURD by 0
 * and returns how many it replaced. One such sample would otherwise poison
 * the resampler's filter, PCEN's smoother and the network state for good.
 * No allocation; a compare per sample. */
size_t audio_sanitize(float *x, size_t n);

/* Spike channels per frame: n_mels * enc_levels (e.g. 40 * 4 = 160), as
 * kws_frontend_n_out. */
int audio_fe_n_out(const struct kws_frontend_cfg *cfg);

/* One front end stream. The caller allocates the struct (zeroed); every
 * buffer is allocated by audio_fe_init, nothing afterwards. */
struct audio_fe {
    struct kws_frontend_cfg cfg;
    int n_bins;      /* n_fft / 2 + 1 */
    int n_out;       /* spike channels per frame */
    float *window;   /* (win_len) Hann window */
    float *hist;     /* (win_len) the latest win_len samples, oldest first */
    int fill;        /* samples of the current hop received so far */
    void *plan;      /* fftwf_plan, r2c of n_fft */
    float *fft_in;   /* (n_fft) fftwf_malloc'd */
    float *fft_out;  /* (n_bins, 2) interleaved re/im, fftwf_malloc'd */
    float *power;    /* (n_bins) */
    int *mel_lo;     /* (F) first bin of each mel triangle */
    int *mel_len;    /* (F) bins in each triangle */
    int *mel_off;    /* (F) offset of each triangle's weights in mel_w */
    float *mel_w;    /* packed triangle weights */
    float *energy;   /* (F) mel energies E */
    float *pcen_m;   /* (F) PCEN smoother M */
    float *feat;     /* (F) normalised features of the last frame */
    float *prev;     /* (F) features of the frame before (delta encoder) */
    float *spikes;   /* (n_out) spike counts of the last frame */
    uint64_t frames; /* frames completed since init/reset */
    /* frames in a row whose whole window was digital silence (every sample
     * exactly 0, e.g. a muted input); see KWS_HOLD_MS in kws/detector.h */
    uint64_t zero_run;
};

/* Builds a front end for cfg (validated with audio_fe_cfg_check). Returns 0,
 * -KWS_EBADFIELD or -ENOMEM. On failure fe is left safe for audio_fe_free. */
int audio_fe_init(struct audio_fe *fe, const struct kws_frontend_cfg *cfg);

/* Starts a new stream: clears the window, PCEN and encoder state. */
void audio_fe_reset(struct audio_fe *fe);

/* Frees every buffer. Safe on a zeroed or half-initialised struct, and twice. */
void audio_fe_free(struct audio_fe *fe);

/* Called once per completed frame: feat is (F) normalised features, spikes is
 * (n_out) spike counts. Both point into the front end and are valid only
 * during the call. */
typedef void (*audio_fe_frame_cb)(void *ctx, const float *feat, const float *spikes);

/* Feeds n mono samples in [-1, 1) at cfg->sample_rate; calls cb (if not NULL)
 * once per completed 10 ms frame. No allocation. */
void audio_fe_push(struct audio_fe *fe, const float *x, size_t n, audio_fe_frame_cb cb, void *ctx);

/* Offline helper for the trainer and evaluator: pushes n samples and stores
 * up to max_frames frames into feat (T, F) and spikes (T, n_out); either may
 * be NULL. Returns the number of frames completed by this call (which may
 * exceed max_frames; only max_frames are stored). Does not reset first. */
size_t audio_fe_compute(struct audio_fe *fe, const float *x, size_t n, float *feat, float *spikes,
                        size_t max_frames);

/* The spike encoder alone, as a pure function of one frame: feat (F) this
 * frame's normalised features, prev (F) the previous frame's (NULL on a
 * stream's first frame; only the delta encoder reads it), spikes (n_out) out.
 * Lets the trainer re-encode stored features under other thresholds. */
void audio_enc_frame(const struct kws_frontend_cfg *cfg, const float *feat, const float *prev,
                     float *spikes);

#endif /* KWS_AUDIO_FRONTEND_H */

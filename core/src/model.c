/* model.c: the range checks of the front end settings a model carries.
 *
 * One check serves every place that meets a struct kws_frontend_cfg: the
 * model loader refuses a file whose front end could not be built, and the
 * front end (kws_audio) runs the same check before it builds one, so a
 * model that loads is a model whose front end builds. The checks are pure:
 * no allocation, no state.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/model.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kws/err.h"

int kws_frontend_cfg_check(const struct kws_frontend_cfg *c, char *msg, size_t msglen) {
    if (c->sample_rate < 4000 || c->sample_rate > 96000)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "sample_rate: %d out of range [4000, 96000]",
                          (int)c->sample_rate);
    if (c->n_fft < 16 || c->n_fft > 8192 || (c->n_fft & 1))
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "n_fft: %d must be even and in [16, 8192]",
                          (int)c->n_fft);
    if (c->win_len < 2 || c->win_len > c->n_fft)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "win_len: %d out of range [2, n_fft=%d]",
                          (int)c->win_len, (int)c->n_fft);
    if (c->hop < 1 || c->hop > c->win_len)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "hop: %d out of range [1, win_len=%d]",
                          (int)c->hop, (int)c->win_len);
    /* The detector, the digital-silence hold and every event time count
     * frames in whole milliseconds (1000 * hop / sample_rate): a frame of
     * 0.3 ms would be counted as 0 ms, one of 10.06 ms drift 0.6 % a frame. */
    if ((int64_t)c->hop * 1000 % c->sample_rate != 0)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "hop: %d samples at %d Hz is not a whole number of milliseconds",
                          (int)c->hop, (int)c->sample_rate);
    if (c->n_mels < 1 || c->n_mels > 256)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "n_mels: %d out of range [1, 256]",
                          (int)c->n_mels);
    if (!(c->fmin >= 0.0f) || !(c->fmax > c->fmin) || c->fmax > 0.5f * (float)c->sample_rate)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "fmin/fmax: need 0 <= fmin (%g) < fmax (%g) <= sample_rate/2",
                          (double)c->fmin, (double)c->fmax);
    if (c->pcen != 0 && c->pcen != 1)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "pcen: %d must be 0 or 1", (int)c->pcen);
    if (c->pcen) {
        if (!(c->pcen_s > 0.0f && c->pcen_s <= 1.0f))
            return kws_errmsg(KWS_EBADFIELD, msg, msglen, "pcen_s: %g out of range (0, 1]",
                              (double)c->pcen_s);
        if (!(c->pcen_alpha >= 0.0f && c->pcen_alpha <= 2.0f))
            return kws_errmsg(KWS_EBADFIELD, msg, msglen, "pcen_alpha: %g out of range [0, 2]",
                              (double)c->pcen_alpha);
        if (!(c->pcen_delta >= 0.0f && c->pcen_delta <= 1e3f))
            return kws_errmsg(KWS_EBADFIELD, msg, msglen, "pcen_delta: %g out of range [0, 1000]",
                              (double)c->pcen_delta);
        if (!(c->pcen_r > 0.0f && c->pcen_r <= 1.0f))
            return kws_errmsg(KWS_EBADFIELD, msg, msglen, "pcen_r: %g out of range (0, 1]",
                              (double)c->pcen_r);
        if (!(c->pcen_release >= 0.0f && c->pcen_release <= 1.0f))
            return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                              "pcen_release: %g out of range [0, 1] (0: pcen_s)",
                              (double)c->pcen_release);
        if (!(c->pcen_eps > 0.0f && c->pcen_eps <= 1.0f))
            return kws_errmsg(KWS_EBADFIELD, msg, msglen, "pcen_eps: %g out of range (0, 1]",
                              (double)c->pcen_eps);
    }
    if (c->enc_kind != KWS_ENC_LEVEL && c->enc_kind != KWS_ENC_DELTA && c->enc_kind != KWS_ENC_RAMP)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "enc_kind: %d is none of level (0), delta (1), ramp (2)",
                          (int)c->enc_kind);
    if (c->enc_levels < 1 || c->enc_levels > KWS_ENC_MAX_LEVELS)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "enc_levels: %d out of range [1, %d]",
                          (int)c->enc_levels, KWS_ENC_MAX_LEVELS);
    if (c->enc_kind == KWS_ENC_DELTA && (c->enc_levels & 1))
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "enc_levels: %d must be even for the delta encoder", (int)c->enc_levels);
    for (int k = 0; k < c->enc_levels; k++)
        if (!isfinite(c->enc_thresh[k]))
            return kws_errmsg(KWS_EBADFIELD, msg, msglen, "enc_thresh[%d]: not a finite number", k);
    if (c->enc_kind == KWS_ENC_RAMP) {
        if (c->enc_levels < 2)
            return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                              "enc_levels: %d, the ramp encoder needs at least 2",
                              (int)c->enc_levels);
        for (int k = 1; k < c->enc_levels; k++)
            if (!(c->enc_thresh[k] > c->enc_thresh[k - 1]))
                return kws_errmsg(
                    KWS_EBADFIELD, msg, msglen,
                    "enc_thresh[%d]: %g, the ramp encoder needs increasing thresholds", k,
                    (double)c->enc_thresh[k]);
    }
    if (!isfinite(c->feat_mean))
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "feat_mean: not a finite number");
    if (!isfinite(c->feat_scale) || c->feat_scale == 0.0f)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "feat_scale: must be finite and non-zero");
    return 0;
}

int kws_frontend_n_out(const struct kws_frontend_cfg *cfg) {
    return cfg->n_mels * cfg->enc_levels;
}

/* verify.c: a second look at an enrolled word's events (see kws/verify.h).
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/verify.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define VERIFY_BIG 1e30f

void kws_verify_norm(float *f, int n) {
    float mean = 0.0f, ss = 0.0f;

    for (int i = 0; i < n; i++)
        mean += f[i];
    mean /= (float)n;
    for (int i = 0; i < n; i++) {
        f[i] -= mean;
        ss += f[i] * f[i];
    }
    float scale = ss > 1e-12f ? 1.0f / sqrtf(ss) : 0.0f;
    for (int i = 0; i < n; i++)
        f[i] *= scale;
}

void kws_verify_quantize(const float *x, int n, int8_t *q) {
    for (int i = 0; i < n; i++) /* |x| <= 1 after the norm */
        q[i] = (int8_t)lrintf(x[i] * (float)KWS_VERIFY_Q);
}

void kws_verify_features(int kind, const float *f, int n_in, int n_feat, float *out) {
    if (kind != KWS_VERIFY_CEPSTRUM) {
        memcpy(out, f, (size_t)n_in * sizeof *out);
        kws_verify_norm(out, n_in);
        return;
    }
    /* cos(k t_i) for k = 1, 2, ... by the recurrence cos((k+1)t) =
     * 2 cos(t) cos(kt) - cos((k-1)t); cos(t_i) itself, t_i = (i + 1/2) d
     * with d = pi / n_in, by turning (cos t_i, sin t_i) through d from one
     * band to the next: four sines and cosines a frame, not one a term or
     * a band */
    float ss = 0.0f, mean = 0.0f, var = 0.0f;
    for (int k = 0; k < n_feat; k++)
        out[k] = 0.0f;
    for (int i = 0; i < n_in; i++)
        mean += f[i];
    mean /= (float)n_in;
    for (int i = 0; i < n_in; i++)
        var += (f[i] - mean) * (f[i] - mean);
    if (var <= 1e-12f) /* a flat frame: no shape, only rounding in its cepstrum */
        return;
    const float d = 3.14159265358979f / (float)n_in, cd = cosf(d), sd = sinf(d);
    float ct = cosf(0.5f * d), st = sinf(0.5f * d);
    for (int i = 0; i < n_in; i++) {
        float c1 = ct, prev = 1.0f, cur = c1;
        for (int k = 0; k < n_feat; k++) {
            out[k] += f[i] * cur;
            float next = 2.0f * c1 * cur - prev;
            prev = cur;
            cur = next;
        }
        float c_next = ct * cd - st * sd;
        st = st * cd + ct * sd;
        ct = c_next;
    }
    for (int k = 0; k < n_feat; k++)
        ss += out[k] * out[k];
    float scale = ss > 1e-12f ? 1.0f / sqrtf(ss) : 0.0f;
    for (int k = 0; k < n_feat; k++)
        out[k] *= scale;
}

void kws_verify_frame(int kind, const float *f, int n_in, int n_feat, int8_t *q) {
    float x[KWS_VERIFY_MAX_FEAT];

    kws_verify_features(kind, f, n_in, n_feat, x);
    kws_verify_quantize(x, n_feat, q);
}

int kws_verifier_alloc(struct kws_verifier *v, int n_takes, const int32_t *len, int n_feat) {
    size_t frames = 0;

    memset(v, 0, sizeof *v);
    if (n_takes < 1 || n_takes > KWS_VERIFY_MAX_TAKES || n_feat < 1 || n_feat > KWS_VERIFY_MAX_FEAT)
        return -EINVAL;
    for (int t = 0; t < n_takes; t++) {
        if (len[t] < 1 || len[t] > KWS_VERIFY_MAX_TAKE_FRAMES)
            return -EINVAL;
        frames += (size_t)len[t];
    }
    v->len = malloc((size_t)n_takes * sizeof *v->len);
    v->feat = malloc(frames * (size_t)n_feat * sizeof *v->feat);
    if (!v->len || !v->feat) {
        kws_verifier_free(v);
        return -ENOMEM;
    }
    memcpy(v->len, len, (size_t)n_takes * sizeof *len);
    v->n_takes = n_takes;
    v->n_feat = n_feat;
    v->n_frames = frames;
    v->k = n_takes < KWS_VERIFY_K ? n_takes : KWS_VERIFY_K;
    v->back = KWS_VERIFY_BACK;
    v->ahead = KWS_VERIFY_AHEAD;
    return 0;
}

void kws_verifier_free(struct kws_verifier *v) {
    free(v->len);
    free(v->feat);
    memset(v, 0, sizeof *v);
}

int kws_verifier_copy(struct kws_verifier *dst, const struct kws_verifier *src) {
    if (!src->n_takes) {
        memset(dst, 0, sizeof *dst);
        return 0;
    }
    int rc = kws_verifier_alloc(dst, src->n_takes, src->len, src->n_feat);
    if (rc < 0)
        return rc;
    memcpy(dst->feat, src->feat, src->n_frames * (size_t)src->n_feat * sizeof *src->feat);
    dst->label = src->label;
    dst->kind = src->kind;
    dst->k = src->k;
    dst->back = src->back;
    dst->ahead = src->ahead;
    dst->cut = src->cut;
    return 0;
}

size_t kws_verify_scratch_floats(size_t n) {
    return 5 * (n ? n : 1);
}

static float frame_dist(const float *a, const int8_t *b, int n) {
    const float step = 1.0f / (float)KWS_VERIFY_Q;
    float s = 0.0f;
    for (int i = 0; i < n; i++) {
        float d = a[i] - step * (float)b[i];
        s += d * d;
    }
    return sqrtf(s);
}

/* One take (m frames at t) against the stretch seq (w frames): open begin,
 * open end; steps (1,1), (1,2) and (2,1), the last paying for the take frame
 * it passes, so every take frame is counted once. Rows rotate through s:
 * distances of the previous and this take frame, costs of the two before
 * and this one; low is the lowest cost of the last row. Costs only grow
 * down the rows and no path skips two rows, so once two rows in a row are
 * all above bound (a mean cost per frame) the take cannot come under it:
 * VERIFY_BIG is returned without the rest. */
static float take_cost(const float *t, int m, const int8_t *seq, size_t w, int nf, float *s,
                       float bound) {
    float limit = bound < VERIFY_BIG / (float)m ? bound * (float)m : VERIFY_BIG;
    float low = VERIFY_BIG, low_prev;
    float *d_prev = s, *d_cur = s + w, *c2 = s + 2 * w, *c1 = s + 3 * w, *c0 = s + 4 * w;

    for (size_t j = 0; j < w; j++) {
        c0[j] = d_cur[j] = frame_dist(t, seq + j * (size_t)nf, nf);
        if (c0[j] < low)
            low = c0[j];
    }
    for (int i = 1; i < m; i++) {
        float *tmp = c2;
        c2 = c1;
        c1 = c0;
        c0 = tmp;
        tmp = d_prev;
        d_prev = d_cur;
        d_cur = tmp;
        const float *ti = t + (size_t)i * (size_t)nf;
        low_prev = low;
        low = VERIFY_BIG;
        for (size_t j = 0; j < w; j++) {
            float d = frame_dist(ti, seq + j * (size_t)nf, nf), best = VERIFY_BIG;
            d_cur[j] = d;
            if (j >= 1 && c1[j - 1] < best)
                best = c1[j - 1];
            if (j >= 2 && c1[j - 2] < best)
                best = c1[j - 2];
            if (i >= 2 && j >= 1 && c2[j - 1] + d_prev[j] < best)
                best = c2[j - 1] + d_prev[j];
            c0[j] = best >= VERIFY_BIG ? VERIFY_BIG : best + d;
            if (c0[j] < low)
                low = c0[j];
        }
        if (low > limit && low_prev > limit)
            return VERIFY_BIG;
    }
    return low >= VERIFY_BIG ? VERIFY_BIG : low / (float)m;
}

float kws_verify_cost_skip(const struct kws_verifier *v, const int8_t *seq, size_t n, int skip,
                           float *scratch) {
    float low[KWS_VERIFY_MAX_K];
    int n_low = 0, k = v->k < 1 ? 1 : v->k > KWS_VERIFY_MAX_K ? KWS_VERIFY_MAX_K : v->k;
    const float *t = v->feat;

    if (!n)
        return VERIFY_BIG;
    for (int i = 0; i < v->n_takes; t += (size_t)v->len[i++] * (size_t)v->n_feat) {
        if (i == skip)
            continue;
        float c = take_cost(t, v->len[i], seq, n, v->n_feat, scratch,
                            n_low == k ? low[k - 1] : VERIFY_BIG);
        if (n_low == k && c >= low[k - 1])
            continue;
        int p = n_low < k ? n_low++ : k - 1; /* insertion into the k lowest */
        while (p > 0 && low[p - 1] > c) {
            low[p] = low[p - 1];
            p--;
        }
        low[p] = c;
    }
    if (!n_low)
        return VERIFY_BIG;
    float sum = 0.0f;
    for (int i = 0; i < n_low; i++) {
        if (low[i] >= VERIFY_BIG)
            return VERIFY_BIG;
        sum += low[i];
    }
    return sum / (float)n_low;
}

float kws_verify_cost(const struct kws_verifier *v, const int8_t *seq, size_t n, float *scratch) {
    return kws_verify_cost_skip(v, seq, n, -1, scratch);
}

static int cmp_cost(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

float kws_verify_cut_loo(const struct kws_verifier *v, const int8_t *const *full,
                         const int32_t *full_len, float *each) {
    float cost[KWS_VERIFY_MAX_TAKES];
    size_t most = 0;

    if (v->n_takes < 2)
        return -EINVAL;
    for (int t = 0; t < v->n_takes; t++)
        if ((size_t)full_len[t] > most)
            most = (size_t)full_len[t];
    float *scratch = malloc(kws_verify_scratch_floats(most) * sizeof *scratch);
    if (!scratch)
        return -ENOMEM;
    for (int t = 0; t < v->n_takes; t++)
        cost[t] = kws_verify_cost_skip(v, full[t], (size_t)full_len[t], t, scratch);
    free(scratch);
    if (each)
        memcpy(each, cost, (size_t)v->n_takes * sizeof *cost);
    qsort(cost, (size_t)v->n_takes, sizeof *cost, cmp_cost);
    int keep = (int)ceil(KWS_VERIFY_KEEP * v->n_takes - 1e-9);
    return cost[(keep < 1 ? 1 : keep) - 1];
}

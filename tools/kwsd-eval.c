/* kwsd-eval: accuracy, confusion matrix and streaming metrics of a model.
 *
 * Clip mode (always): every clip of the chosen split is rendered exactly as
 * the trainer renders validation clips (word centred in T frames, no
 * augmentation, 30 warm-up frames), run through the exported network with
 * snn_forward, and classified by argmax over classes of sum_t softmax(v[t]).
 *
 * Streaming mode (--stream): the split's word clips (keywords and _unknown_
 * words) are joined into one long recording, each preceded by 0.5-2 s of the
 * split's _silence_ noise; the front end, snn_step and the daemon's detector
 * (kws/detector.h: softmax posterior, mean over smoothing_ms, threshold,
 * refractory_ms; silence/unknown never fire) run over it without any reset.
 * A keyword clip counts as hit if an event of its label fires between the
 * word's start and 1 s after its end; latency is event time minus word end.
 * Every other event is a false alarm; false alarms per hour use the whole
 * recording's duration.
 *
 *     kwsd-eval --model models/commands.kwsm --data /data/speech_commands \
 *               [--split test] [--stream] [--threshold 0.4] [--json]
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws/dataset.h"
#include "kws/detector.h"
#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/snn.h"
#include "kws/train.h"

struct stream_result {
    int n_kw, hits, false_alarms;
    double hours, lat_mean_ms, lat_p50_ms, lat_p90_ms;
    double peak_p50; /* median over keyword occurrences of their class's peak smoothed score */
};

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    fprintf(
        stderr,
        "usage: kwsd-eval --model FILE.kwsm --data DIR [options]\n"
        "  --split test|val|train|all   clips to score (default test)\n"
        "  --frames 100                 frames per clip\n"
        "  --stream                     streaming metrics on a long recording\n"
        "  --threshold 0.4 --smoothing-ms 300 --refractory-ms 1000\n"
        "  --seed 1                     gap lengths of the recording\n"
        "  --json                       one JSON object on stdout\n"
        "  --gain-scale X               multiply the readout gain by X (softmax temperature 1/X)\n"
        "  --save-model FILE            write the model with the scaled readout gain\n");
}

/* Streaming evaluation over the split's word clips (see the file comment). */
static int run_stream(const struct snn_model *m, const struct dataset *ds, const size_t *idx,
                      size_t n, float threshold, int smooth_ms, int refr_ms, uint64_t seed,
                      struct stream_result *res) {
    memset(res, 0, sizeof *res);
    const struct snn_cfg *cfg = &m->cfg;
    int rate = cfg->fe.sample_rate, hop = cfg->fe.hop;
    /* noise: the split's silence clips (or none) */
    size_t n_sil = 0, n_word = 0;
    for (size_t i = 0; i < n; i++)
        if (ds->clips[idx[i]].label == ds->sil_class)
            n_sil++;
        else
            n_word++;
    size_t total = 0;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    /* first pass: length */
    int32_t *gap = malloc((n_word + 1) * sizeof *gap);
    if (!gap)
        return -ENOMEM;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ds_clip *cl = &ds->clips[idx[i]];
        if (cl->label == ds->sil_class)
            continue;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        gap[w] = rate / 2 + (int32_t)(s % (uint64_t)(rate * 3 / 2));
        total += (size_t)gap[w] + (size_t)cl->n;
        w++;
    }
    total += (size_t)rate; /* tail */
    float *x = calloc(total, sizeof *x);
    int64_t *on = malloc((n_word + 1) * sizeof *on), *off = malloc((n_word + 1) * sizeof *off);
    int *lab = malloc((n_word + 1) * sizeof *lab);
    if (!x || !on || !off || !lab) {
        free(gap);
        free(x);
        free(on);
        free(off);
        free(lab);
        return -ENOMEM;
    }
    size_t pos = 0, si = 0, sil_pos = 0;
    w = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ds_clip *cl = &ds->clips[idx[i]];
        if (cl->label == ds->sil_class)
            continue;
        for (int32_t k = 0; k < gap[w]; k++, pos++) {
            if (!n_sil)
                break;
            /* walk through the silence clips in order */
            const struct ds_clip *nc = NULL;
            size_t c = 0;
            for (size_t j = 0; j < n; j++)
                if (ds->clips[idx[j]].label == ds->sil_class && c++ == si % n_sil) {
                    nc = &ds->clips[idx[j]];
                    break;
                }
            x[pos] = nc->x[sil_pos];
            if (++sil_pos >= (size_t)nc->n) {
                sil_pos = 0;
                si++;
            }
        }
        if (!n_sil)
            pos += (size_t)gap[w];
        memcpy(x + pos, cl->x, (size_t)cl->n * sizeof *x);
        on[w] = (int64_t)pos + cl->on;
        off[w] = (int64_t)pos + cl->off;
        lab[w] = cl->label;
        pos += (size_t)cl->n;
        w++;
    }
    struct audio_fe fe = {0};
    struct snn_state st = {0};
    struct kws_detector det = {0};
    struct kws_detector_cfg dc;
    kws_detector_cfg_default(&dc, cfg, threshold, smooth_ms, refr_ms, 1000 * hop / rate);
    int rc = audio_fe_init(&fe, &cfg->fe);
    rc = rc ? rc : snn_state_init(&st, m);
    rc = rc ? rc : kws_detector_init(&det, &dc);
    size_t nf = total / (size_t)hop;
    float *sp = malloc(nf * (size_t)fe.n_out * sizeof *sp);
    float *lat = malloc((n_word + 1) * sizeof *lat);
    char *got = calloc(n_word + 1, 1);
    if (rc || !sp || !lat || !got) {
        rc = rc ? rc : -ENOMEM;
        goto out;
    }
    nf = audio_fe_compute(&fe, x, total, NULL, sp, nf);
    float v[SNN_MAX_CLASSES];
    size_t wi = 0;
    int n_lat = 0;
    float *peak = calloc(n_word + 1, sizeof *peak);
    if (!peak) {
        rc = -ENOMEM;
        goto out;
    }
    size_t pk = 0;
    for (size_t t = 0; t < nf; t++) {
        snn_step(m, &st, sp + t * (size_t)fe.n_out, v);
        struct kws_hit hit;
        float sc[SNN_MAX_CLASSES];
        int fired = kws_detector_step(&det, v, &hit, sc);
        int64_t sample = (int64_t)(t + 1) * hop;
        while (pk < n_word && off[pk] + rate < sample)
            pk++;
        for (size_t j = pk; j < n_word && on[j] <= sample; j++)
            if (sc[lab[j]] > peak[j])
                peak[j] = sc[lab[j]];
        if (!fired)
            continue;
        /* the occurrence whose window [on, off + 1 s] holds this frame */
        while (wi < n_word && off[wi] + rate < sample)
            wi++;
        int matched = 0;
        for (size_t j = wi; j < n_word && on[j] <= sample; j++)
            if (sample <= off[j] + rate && lab[j] == hit.label && !got[j] && dc.fires[lab[j]]) {
                got[j] = 1;
                lat[n_lat++] = (float)(sample - off[j]) * 1000.0f / (float)rate;
                matched = 1;
                break;
            }
        if (!matched)
            res->false_alarms++;
    }
    for (size_t j = 0; j < n_word; j++)
        if (dc.fires[lab[j]]) {
            res->n_kw++;
            res->hits += got[j];
        }
    {
        float *kp = malloc((n_word + 1) * sizeof *kp);
        int nk = 0;
        for (size_t j = 0; kp && j < n_word; j++)
            if (dc.fires[lab[j]])
                kp[nk++] = peak[j];
        if (nk) {
            qsort(kp, (size_t)nk, sizeof *kp, cmp_f);
            res->peak_p50 = kp[nk / 2];
        }
        free(kp);
    }
    free(peak);
    res->hours = (double)total / rate / 3600.0;
    if (n_lat) {
        double sum = 0.0;
        for (int i = 0; i < n_lat; i++)
            sum += lat[i];
        qsort(lat, (size_t)n_lat, sizeof *lat, cmp_f);
        res->lat_mean_ms = sum / n_lat;
        res->lat_p50_ms = lat[n_lat / 2];
        res->lat_p90_ms = lat[(n_lat * 9) / 10];
    }
out:
    free(sp);
    free(lat);
    free(got);
    free(gap);
    free(x);
    free(on);
    free(off);
    free(lab);
    audio_fe_free(&fe);
    snn_state_free(&st);
    kws_detector_free(&det);
    return rc;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *data = NULL, *split_s = "test";
    int T = 100, stream = 0, json = 0, smooth_ms = 300, refr_ms = 1000;
    float threshold = 0.4f, gain_scale = 1.0f;
    const char *save_path = NULL;
    long seed = 1;
    enum {
        O_MODEL = 256,
        O_DATA,
        O_SPLIT,
        O_FRAMES,
        O_STREAM,
        O_THR,
        O_SMOOTH,
        O_REFR,
        O_JSON,
        O_SEED,
        O_GAIN,
        O_SAVE
    };
    static const struct option lopts[] = {{"model", 1, 0, O_MODEL},
                                          {"data", 1, 0, O_DATA},
                                          {"split", 1, 0, O_SPLIT},
                                          {"frames", 1, 0, O_FRAMES},
                                          {"stream", 0, 0, O_STREAM},
                                          {"threshold", 1, 0, O_THR},
                                          {"smoothing-ms", 1, 0, O_SMOOTH},
                                          {"refractory-ms", 1, 0, O_REFR},
                                          {"json", 0, 0, O_JSON},
                                          {"seed", 1, 0, O_SEED},
                                          {"gain-scale", 1, 0, O_GAIN},
                                          {"save-model", 1, 0, O_SAVE},
                                          {"help", 0, 0, 'h'},
                                          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case O_MODEL:
            model_path = optarg;
            break;
        case O_DATA:
            data = optarg;
            break;
        case O_SPLIT:
            split_s = optarg;
            break;
        case O_FRAMES:
            T = (int)strtol(optarg, &end, 10);
            break;
        case O_STREAM:
            stream = 1;
            break;
        case O_THR:
            threshold = strtof(optarg, &end);
            break;
        case O_SMOOTH:
            smooth_ms = (int)strtol(optarg, &end, 10);
            break;
        case O_REFR:
            refr_ms = (int)strtol(optarg, &end, 10);
            break;
        case O_JSON:
            json = 1;
            break;
        case O_SEED:
            seed = strtol(optarg, &end, 10);
            break;
        case O_GAIN:
            gain_scale = strtof(optarg, &end);
            break;
        case O_SAVE:
            save_path = optarg;
            break;
        default:
            usage();
            return c == 'h' ? 0 : 2;
        }
        if (end && *end) {
            fprintf(stderr, "kwsd-eval: bad number '%s'\n", optarg);
            return 2;
        }
    }
    if (!model_path || !data || T < 1) {
        usage();
        return 2;
    }
    int split = !strcmp(split_s, "test")    ? DS_TEST
                : !strcmp(split_s, "val")   ? DS_VAL
                : !strcmp(split_s, "train") ? DS_TRAIN
                                            : -1;
    char msg[512];
    struct snn_model m = {0};
    int rc = snn_model_load(&m, model_path, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "kwsd-eval: %s (%s)\n", msg, kws_strerror(rc));
        return 1;
    }
    if (gain_scale != 1.0f) {
        /* the readout is linear in its input: scaling out_gain scales every
         * potential, i.e. sets the softmax temperature of the posteriors */
        m.cfg.out_gain *= gain_scale;
        snn_model_prepare(&m);
    }
    if (save_path && (rc = snn_model_save(&m, save_path)) < 0) {
        fprintf(stderr, "kwsd-eval: %s: %s\n", save_path, kws_strerror(rc));
        return 1;
    }
    const struct snn_cfg *cfg = &m.cfg;
    int K = cfg->n_classes;
    const char *labels[SNN_MAX_CLASSES];
    for (int i = 0; i < K; i++)
        labels[i] = cfg->labels[i];
    struct dataset ds;
    dataset_init(&ds, labels, K, cfg->fe.sample_rate);
    rc = dataset_load(&ds, data, -1, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "kwsd-eval: %s\n", msg);
        return 1;
    }
    size_t n = dataset_split(&ds, split, -1, NULL);
    size_t *idx = malloc((n + 1) * sizeof *idx);
    dataset_split(&ds, split, -1, idx);
    int nt = omp_get_max_threads();
    int *pred = malloc((n + 1) * sizeof *pred);
    float *peak = malloc((n + 1) * sizeof *peak),
          *post = malloc((n + 1) * (size_t)T * sizeof *post);
    if (!pred || !peak || !post) {
        fprintf(stderr, "kwsd-eval: out of memory\n");
        return 1;
    }
    int err = 0;
    struct ds_aug none;
    dataset_aug_none(&none);
#pragma omp parallel reduction(| : err)
    {
        struct audio_fe fe = {0};
        struct snn_state st = {0};
        float *sp = malloc((size_t)T * (size_t)audio_fe_n_out(&cfg->fe) * sizeof *sp);
        float *vo = malloc((size_t)T * K * sizeof *vo);
        if (!sp || !vo || audio_fe_init(&fe, &cfg->fe) < 0 || snn_state_init(&st, &m) < 0)
            err = 1;
#pragma omp for schedule(dynamic, 8)
        for (size_t i = 0; i < n; i++) {
            if (err || dataset_render(&ds, idx[i], &none, 0x5eed, &fe, T, sp, NULL) < 0) {
                err = 1;
                continue;
            }
            snn_forward(&m, &st, sp, T, vo);
            pred[i] = train_clip_predict(vo, T, K, NULL);
            /* peak over t of the true class's posterior averaged over smoothing_ms */
            int y = ds.clips[idx[i]].label,
                W = smooth_ms * cfg->fe.sample_rate / 1000 / cfg->fe.hop;
            W = W < 1 ? 1 : W;
            float acc = 0.0f, best = 0.0f;
            for (int t = 0; t < T; t++) {
                float e[SNN_MAX_CLASSES], z = 0.0f, mx = vo[(size_t)t * K];
                for (int k = 1; k < K; k++)
                    mx = vo[(size_t)t * K + k] > mx ? vo[(size_t)t * K + k] : mx;
                for (int k = 0; k < K; k++)
                    z += e[k] = expf(vo[(size_t)t * K + k] - mx);
                post[(size_t)i * T + t] = e[y] / z;
                acc += post[(size_t)i * T + t];
                if (t >= W)
                    acc -= post[(size_t)i * T + t - W];
                best = acc / (float)W > best ? acc / (float)W : best;
            }
            peak[i] = best;
        }
        free(sp);
        free(vo);
        audio_fe_free(&fe);
        snn_state_free(&st);
    }
    (void)nt;
    if (err) {
        fprintf(stderr, "kwsd-eval: out of memory\n");
        return 1;
    }
    int conf[SNN_MAX_CLASSES][SNN_MAX_CLASSES] = {{0}};
    size_t correct = 0;
    for (size_t i = 0; i < n; i++) {
        int y = ds.clips[idx[i]].label;
        conf[y][pred[i]]++;
        correct += pred[i] == y;
    }
    double acc = n ? (double)correct / (double)n : 0.0;
    /* median clip peak over keyword clips */
    double clip_peak = 0.0;
    {
        size_t nk = 0;
        for (size_t i = 0; i < n; i++)
            if (cfg->labels[ds.clips[idx[i]].label][0] != '_')
                peak[nk++] = peak[i];
        if (nk) {
            qsort(peak, nk, sizeof *peak, cmp_f);
            clip_peak = peak[nk / 2];
        }
    }
    struct stream_result sr;
    int have_stream = 0;
    if (stream) {
        rc = run_stream(&m, &ds, idx, n, threshold, smooth_ms, refr_ms, (uint64_t)seed, &sr);
        if (rc < 0) {
            fprintf(stderr, "kwsd-eval: streaming: %s\n", kws_strerror(rc));
            return 1;
        }
        have_stream = 1;
    }
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "model", json_string(model_path));
        json_object_set_new(o, "data", json_string(data));
        json_object_set_new(o, "split", json_string(split_s));
        json_object_set_new(o, "clips", json_integer((json_int_t)n));
        json_object_set_new(o, "accuracy", json_real(acc));
        json_object_set_new(o, "clip_peak_score_p50", json_real(clip_peak));
        json_t *lab = json_array(), *cm = json_array();
        for (int i = 0; i < K; i++) {
            json_array_append_new(lab, json_string(cfg->labels[i]));
            json_t *row = json_array();
            for (int j = 0; j < K; j++)
                json_array_append_new(row, json_integer(conf[i][j]));
            json_array_append_new(cm, row);
        }
        json_object_set_new(o, "labels", lab);
        json_object_set_new(o, "confusion", cm);
        if (have_stream) {
            json_t *so = json_object();
            json_object_set_new(so, "threshold", json_real(threshold));
            json_object_set_new(so, "smoothing_ms", json_integer(smooth_ms));
            json_object_set_new(so, "refractory_ms", json_integer(refr_ms));
            json_object_set_new(so, "keywords", json_integer(sr.n_kw));
            json_object_set_new(so, "hits", json_integer(sr.hits));
            json_object_set_new(so, "hit_rate", json_real(sr.n_kw ? (double)sr.hits / sr.n_kw : 0));
            json_object_set_new(so, "false_alarms", json_integer(sr.false_alarms));
            json_object_set_new(so, "hours", json_real(sr.hours));
            json_object_set_new(so, "false_alarms_per_hour",
                                json_real(sr.hours > 0 ? sr.false_alarms / sr.hours : 0));
            json_object_set_new(so, "latency_mean_ms", json_real(sr.lat_mean_ms));
            json_object_set_new(so, "latency_p50_ms", json_real(sr.lat_p50_ms));
            json_object_set_new(so, "latency_p90_ms", json_real(sr.lat_p90_ms));
            json_object_set_new(so, "peak_score_p50", json_real(sr.peak_p50));
            json_object_set_new(o, "stream", so);
        }
        char *txt = json_dumps(o, JSON_COMPACT);
        puts(txt);
        free(txt);
        json_decref(o);
    } else {
        printf("%s on %s (%s split): %zu clips, accuracy %.2f %%; median peak %d ms score of "
               "the true keyword %.2f\n",
               model_path, data, split_s, n, 100.0 * acc, smooth_ms, clip_peak);
        printf("confusion (rows: true, columns: predicted)\n%10s", "");
        for (int j = 0; j < K; j++)
            printf(" %5.5s", cfg->labels[j]);
        printf("\n");
        for (int i = 0; i < K; i++) {
            printf("%10.10s", cfg->labels[i]);
            for (int j = 0; j < K; j++)
                printf(" %5d", conf[i][j]);
            printf("\n");
        }
        if (have_stream)
            printf("streaming (threshold %.2f, smoothing %d ms, refractory %d ms): %.2f h, "
                   "hit rate %.2f %% (%d/%d), false alarms %d (%.1f per hour), latency from "
                   "word end mean %.0f ms, p50 %.0f ms, p90 %.0f ms; median peak score of the "
                   "spoken keyword %.2f\n",
                   threshold, smooth_ms, refr_ms, sr.hours,
                   sr.n_kw ? 100.0 * sr.hits / sr.n_kw : 0.0, sr.hits, sr.n_kw, sr.false_alarms,
                   sr.hours > 0 ? sr.false_alarms / sr.hours : 0.0, sr.lat_mean_ms, sr.lat_p50_ms,
                   sr.lat_p90_ms, sr.peak_p50);
    }
    free(pred);
    free(peak);
    free(post);
    free(idx);
    dataset_free(&ds);
    snn_model_free(&m);
    return 0;
}

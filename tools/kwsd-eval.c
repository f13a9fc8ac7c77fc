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
 * refractory_ms; silence/unknown never fire) run over it without any reset
 * (kws/stream_eval.h has the rules for hits, false alarms and latency).
 * --negatives DIR puts the split's negative phrases (a folder per phrase,
 * split by its own list files) between the words, --noise DIR mixes long
 * background recordings under the whole recording at --snr LO,HI dB from
 * each word's level, and --negatives-only makes a recording of the
 * negatives alone: false alarms per hour with nothing to find.
 * --sweep prints hit rate and false alarms for thresholds 0.20..0.995;
 * --calibrate F picks the lowest of those thresholds with at most F false
 * alarms per hour, and --save-model stores it in the model file, where the
 * daemon takes it as its default threshold.
 *
 * Recording mode (--wav FILE, no --data): one sound file runs through the
 * front end, snn_step and the detector as the daemon runs its microphone;
 * the events are printed, then each keyword's highest smoothed score.
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
#include <sys/stat.h>

#include "kws/audio_file.h"
#include "kws/dataset.h"
#include "kws/detector.h"
#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/snn.h"
#include "kws/stream_eval.h"
#include "kws/train.h"

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* The upper median of v[0..n) (sorts v in place); 0 if n is 0. */
static float median_sort(float *v, size_t n) {
    if (!n)
        return 0.0f;
    qsort(v, n, sizeof *v, cmp_f);
    return v[n / 2];
}

/* --wav: one recording through the front end, snn_step and the detector, as
 * the daemon runs them. */
struct wav_run {
    const struct snn_model *m;
    struct snn_state st;
    struct kws_detector det;
    float *v, *scores;
    float best[SNN_MAX_CLASSES]; /* highest smoothed score of each class */
    int64_t best_ms[SNN_MAX_CLASSES];
    int64_t frame;
    int frame_ms, events;
    const struct audio_fe *fe; /* the front end, for its zero_run */
    uint64_t held;             /* frames of the current digital-silence hold */
    FILE *trace;               /* --trace: every frame's smoothed scores as CSV, or NULL */
};

static void wav_frame(void *ctx, const float *feat, const float *spikes) {
    struct wav_run *r = ctx;
    struct kws_hit hit;
    (void)feat;
    int fired = kws_detect_frame(r->m, &r->st, &r->det, r->fe->zero_run, &r->held, spikes, r->v,
                                 &hit, r->scores);
    for (int k = 0; k < r->m->cfg.n_classes; k++)
        if (r->scores[k] > r->best[k]) {
            r->best[k] = r->scores[k];
            r->best_ms[k] = (r->frame + 1) * r->frame_ms;
        }
    if (r->trace) {
        fprintf(r->trace, "%.2f", (double)(r->frame + 1) * r->frame_ms / 1000.0);
        for (int k = 0; k < r->m->cfg.n_classes; k++)
            fprintf(r->trace, ",%.4f", (double)r->scores[k]);
        fputc('\n', r->trace);
    }
    r->frame++;
    if (fired) {
        printf("%8.2f s: %s (score %.3f, threshold %.2f, rose at %.2f s)\n",
               (double)hit.end_ms / 1000.0, r->m->cfg.labels[hit.label], (double)hit.score,
               (double)hit.threshold, (double)hit.start_ms / 1000.0);
        r->events++;
    }
}

/* Prints the events of the recording at path, then each keyword's highest
 * smoothed score and when it came. Returns the exit status. */
static int run_wav(const struct snn_model *m, const char *path, float threshold, int smooth_ms,
                   int refr_ms, const char *trace_path) {
    const struct snn_cfg *cfg = &m->cfg;
    struct audio_fe fe = {0};
    struct wav_run r = {.m = m, .fe = &fe};
    struct kws_detector_cfg dc;
    char msg[512];
    float *x = NULL;
    size_t n = 0;
    int native = 0, status = 1;

    int rc = audio_file_read(path, cfg->fe.sample_rate, &x, &n, &native, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "kwsd-eval: %s\n", msg);
        return 1;
    }
    r.frame_ms = 1000 * cfg->fe.hop / cfg->fe.sample_rate;
    kws_detector_cfg_default(&dc, cfg, threshold, smooth_ms, refr_ms, r.frame_ms);
    r.v = malloc((size_t)cfg->n_classes * sizeof *r.v);
    r.scores = malloc((size_t)cfg->n_classes * sizeof *r.scores);
    if (!r.v || !r.scores || audio_fe_init(&fe, &cfg->fe) < 0 || snn_state_init(&r.st, m) < 0 ||
        kws_detector_init(&r.det, &dc) < 0) {
        fprintf(stderr, "kwsd-eval: out of memory\n");
        goto out;
    }
    if (trace_path) {
        r.trace = fopen(trace_path, "w");
        if (!r.trace) {
            fprintf(stderr, "kwsd-eval: %s: %s\n", trace_path, strerror(errno));
            goto out;
        }
        fprintf(r.trace, "time_s");
        for (int k = 0; k < cfg->n_classes; k++)
            fprintf(r.trace, ",%s", cfg->labels[k]);
        fputc('\n', r.trace);
    }
    printf("%s: %.2f s at %d Hz; threshold %.2f, smoothing %d ms, refractory %d ms\n", path,
           (double)n / cfg->fe.sample_rate, native, (double)threshold, smooth_ms, refr_ms);
    audio_fe_push(&fe, x, n, wav_frame, &r);
    printf("%d events; each keyword's highest smoothed score:\n", r.events);
    for (int k = 0; k < cfg->n_classes; k++)
        if (dc.fires[k])
            printf("  %-12s %.3f at %.2f s\n", cfg->labels[k], (double)r.best[k],
                   (double)r.best_ms[k] / 1000.0);
    status = 0;
out:
    if (r.trace && fclose(r.trace) != 0) {
        fprintf(stderr, "kwsd-eval: %s: %s\n", trace_path, strerror(errno));
        status = 1;
    }
    free(x);
    free(r.v);
    free(r.scores);
    audio_fe_free(&fe);
    snn_state_free(&r.st);
    kws_detector_free(&r.det);
    return status;
}

/* ==== Streaming ==== */

/* --snr LO,HI: two numbers in dB, LO <= HI, within [SNR_MIN, SNR_MAX].
 * Returns 0, or -1 after saying what is wrong. */
#define SNR_MIN -20.0f
#define SNR_MAX 60.0f
static int parse_snr(const char *arg, float *lo, float *hi) {
    char *end;
    errno = 0;
    *lo = strtof(arg, &end);
    if (end == arg || *end != ',' || errno) {
        fprintf(stderr, "kwsd-eval: --snr: '%s' is not LO,HI (dB, e.g. 10,20)\n", arg);
        return -1;
    }
    const char *b = end + 1;
    *hi = strtof(b, &end);
    if (end == b || *end || errno) {
        fprintf(stderr, "kwsd-eval: --snr: '%s' is not LO,HI (dB, e.g. 10,20)\n", arg);
        return -1;
    }
    if (!(*lo >= SNR_MIN && *hi <= SNR_MAX)) {
        fprintf(stderr, "kwsd-eval: --snr: %s out of range [%g, %g] dB\n", arg, (double)SNR_MIN,
                (double)SNR_MAX);
        return -1;
    }
    if (*lo > *hi) {
        fprintf(stderr, "kwsd-eval: --snr: LO %g is above HI %g\n", (double)*lo, (double)*hi);
        return -1;
    }
    return 0;
}

/* Loads the negative phrases of dir into ds. A set with list files is split
 * by them; one without puts every phrase in the chosen split. Returns 0 or
 * -1 after saying what is wrong. */
static int load_negatives(struct dataset *ds, const char *dir, int split) {
    char path[4096], msg[512];
    struct stat st;
    int lists = 0;
    snprintf(path, sizeof path, "%s/validation_list.txt", dir);
    lists |= stat(path, &st) == 0;
    snprintf(path, sizeof path, "%s/testing_list.txt", dir);
    lists |= stat(path, &st) == 0;
    int rc = dataset_load_negatives(ds, dir, lists ? -1 : split, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "kwsd-eval: --negatives: %s\n", msg);
        return -1;
    }
    return 0;
}

/* Moves the negative phrases out of idx[0..*n) into neg (in order), so that
 * the clip scores and the stream's words are the data set's own; returns
 * how many there were. */
static size_t take_negatives(const struct dataset *ds, size_t *idx, size_t *n, size_t *neg) {
    size_t k = 0, n_neg = 0;
    for (size_t i = 0; i < *n; i++)
        if (ds->clips[idx[i]].negative)
            neg[n_neg++] = idx[i];
        else
            idx[k++] = idx[i];
    *n = k;
    return n_neg;
}

/* Loads the recordings of dir into a data set of their own (noise_ds), so
 * that they never join the gaps' _silence_ clips, and points o at them.
 * Returns 0 or -1 after saying what is wrong. */
static int load_noise(struct dataset *noise_ds, const struct snn_cfg *cfg, const char *dir,
                      struct stream_eval_opts *o) {
    const char *labels[SNN_MAX_CLASSES];
    char msg[512] = "";
    for (int i = 0; i < cfg->n_classes; i++)
        labels[i] = cfg->labels[i];
    dataset_init(noise_ds, labels, cfg->n_classes, cfg->fe.sample_rate);
    int rc = dataset_add_noise(noise_ds, dir, msg, sizeof msg);
    if (rc < 0 || !noise_ds->n_noise) {
        fprintf(stderr, "kwsd-eval: --noise: %s\n", rc < 0 ? msg : "no sound file could be read");
        return -1;
    }
    o->noise = (const float *const *)noise_ds->noise;
    o->noise_n = noise_ds->noise_n;
    o->n_noise = noise_ds->n_noise;
    return 0;
}

/* --stream: what the recording holds and how it is scored. */
struct stream_args {
    struct stream_eval_opts o;
    int sweep, smooth_ms, refr_ms;
    float calib_fa;  /* < 0: no calibration */
    float threshold; /* the threshold scored at (the calibrated one after --calibrate) */
    const char *split_s;
    int passes; /* passes said */
};

/* False alarms in the noise between the words: none of the counted places. */
static int fa_in_noise(const struct stream_result *r) {
    return r->false_alarms - r->fa_unknown - r->fa_negative - r->fa_keyword;
}

/* Sets kw[k] to 1 for each class the detector can fire (not silence or
 * unknown): the columns of the per-keyword figures, also on a recording of
 * negatives alone where no keyword is said. */
static void keyword_mask(const struct snn_cfg *cfg, uint8_t *kw) {
    struct kws_detector_cfg dc;
    kws_detector_cfg_default(&dc, cfg, 0.5f, 300, 1000, 10);
    memcpy(kw, dc.fires, sizeof dc.fires);
}

/* --sweep: every grid threshold's figures, then each keyword's. */
static int print_sweep(const struct stream_eval *se, const struct snn_cfg *cfg, int smooth_ms,
                       int refr_ms) {
    struct stream_result sr, sweep_kw[STREAM_EVAL_GRID_N];
    uint8_t kw[SNN_MAX_CLASSES];
    keyword_mask(cfg, kw);
    fprintf(stderr, "threshold  hit rate  false alarms/h (unknown word, negative, keyword, noise)  "
                    "latency p50  peak p50\n");
    for (int i = 0; i < STREAM_EVAL_GRID_N; i++) {
        float t = stream_eval_grid(i);
        if (stream_eval_score(se, cfg, t, smooth_ms, refr_ms, &sr) < 0)
            return -1;
        fprintf(stderr, "%9.3f  %7.2f %%  %14.1f (%d, %d, %d, %d)  %8.0f ms  %8.2f\n", t,
                sr.n_kw ? 100.0 * sr.hits / sr.n_kw : 0.0,
                sr.hours > 0 ? sr.false_alarms / sr.hours : 0.0, sr.fa_unknown, sr.fa_negative,
                sr.fa_keyword, fa_in_noise(&sr), sr.lat_p50_ms, sr.peak_p50);
        sweep_kw[i] = sr;
    }
    /* each keyword alone, as a subscriber to one topic sees it */
    fprintf(stderr, "per keyword: hit rate %% / false alarms per hour with its label\n"
                    "threshold");
    for (int k = 0; k < cfg->n_classes; k++)
        if (kw[k])
            fprintf(stderr, " %11s", cfg->labels[k]);
    fprintf(stderr, "\n");
    for (int i = 0; i < STREAM_EVAL_GRID_N; i++) {
        const struct stream_result *r = &sweep_kw[i];
        fprintf(stderr, "%9.3f", (double)stream_eval_grid(i));
        for (int k = 0; k < cfg->n_classes; k++) {
            double fa_h = r->hours > 0 ? r->kw_fa[k] / r->hours : 0.0;
            if (kw[k] && r->kw_n[k])
                fprintf(stderr, " %5.1f/%5.1f", 100.0 * r->kw_hits[k] / r->kw_n[k], fa_h);
            else if (kw[k]) /* nothing to find: false alarms only */
                fprintf(stderr, "     -/%5.1f", fa_h);
        }
        fprintf(stderr, "\n");
    }
    return 0;
}

/* Builds the recording, runs m over it, prints the sweep and calibrates when
 * asked, and scores it at a->threshold into sr. Returns 0, or 1 after saying
 * what went wrong. */
static int run_stream(struct snn_model *m, const struct dataset *ds, const size_t *idx, size_t n,
                      struct stream_args *a, struct stream_result *sr) {
    const struct snn_cfg *cfg = &m->cfg;
    struct stream_eval se;
    int rc = stream_eval_run_opts(&se, m, ds, idx, n, &a->o);
    if (rc < 0) {
        fprintf(stderr, "kwsd-eval: streaming: %s\n", kws_strerror(rc));
        return 1;
    }
    a->passes = se.passes;
    if (a->sweep && print_sweep(&se, cfg, a->smooth_ms, a->refr_ms) < 0)
        rc = -ENOMEM;
    if (rc == 0 && a->calib_fa >= 0.0f) {
        float t = stream_eval_calibrate(&se, cfg, a->smooth_ms, a->refr_ms, a->calib_fa, NULL);
        if (t < 0.0f)
            rc = -ENOMEM;
        else {
            fprintf(stderr,
                    "calibrated threshold %.2f (at most %.1f false alarms per hour on %s)\n",
                    (double)t, (double)a->calib_fa, a->split_s);
            a->threshold = t;
            m->cfg.threshold = t;
        }
    }
    if (rc == 0)
        rc = stream_eval_score(&se, cfg, a->threshold, a->smooth_ms, a->refr_ms, sr);
    stream_eval_free(&se);
    if (rc < 0) {
        fprintf(stderr, "kwsd-eval: streaming: %s\n", kws_strerror(rc));
        return 1;
    }
    return 0;
}

/* The "stream" object of --json. */
static json_t *stream_json(const struct stream_result *sr, const struct snn_cfg *cfg,
                           const struct stream_args *a) {
    json_t *so = json_object();
    json_object_set_new(so, "threshold", json_real(a->threshold));
    json_object_set_new(so, "smoothing_ms", json_integer(a->smooth_ms));
    json_object_set_new(so, "refractory_ms", json_integer(a->refr_ms));
    json_object_set_new(so, "keywords", json_integer(sr->n_kw));
    json_object_set_new(so, "hits", json_integer(sr->hits));
    json_object_set_new(so, "hit_rate", json_real(sr->n_kw ? (double)sr->hits / sr->n_kw : 0));
    json_object_set_new(so, "negatives", json_integer(sr->n_negative));
    json_object_set_new(so, "negatives_only", json_boolean(a->o.neg_only));
    if (a->o.n_noise) {
        json_t *snr = json_array();
        json_array_append_new(snr, json_real(a->o.snr_lo));
        json_array_append_new(snr, json_real(a->o.snr_hi));
        json_object_set_new(so, "noise_snr_db", snr);
    }
    json_object_set_new(so, "false_alarms", json_integer(sr->false_alarms));
    json_object_set_new(so, "false_alarms_in_unknown_words", json_integer(sr->fa_unknown));
    json_object_set_new(so, "false_alarms_in_negatives", json_integer(sr->fa_negative));
    json_object_set_new(so, "false_alarms_in_keywords", json_integer(sr->fa_keyword));
    json_object_set_new(so, "false_alarms_in_noise", json_integer(fa_in_noise(sr)));
    json_object_set_new(so, "hours", json_real(sr->hours));
    json_object_set_new(so, "passes", json_integer(a->passes));
    json_object_set_new(so, "false_alarms_per_hour",
                        json_real(sr->hours > 0 ? sr->false_alarms / sr->hours : 0));
    json_object_set_new(so, "latency_mean_ms", json_real(sr->lat_mean_ms));
    json_object_set_new(so, "latency_p50_ms", json_real(sr->lat_p50_ms));
    json_object_set_new(so, "latency_p90_ms", json_real(sr->lat_p90_ms));
    json_object_set_new(so, "peak_score_p50", json_real(sr->peak_p50));
    json_t *pk = json_object(), *hk = json_object();
    uint8_t kw[SNN_MAX_CLASSES];
    keyword_mask(cfg, kw);
    for (int k = 0; k < cfg->n_classes; k++) {
        if (!kw[k])
            continue;
        json_t *e = json_object();
        json_object_set_new(e, "keywords", json_integer(sr->kw_n[k]));
        json_object_set_new(e, "hits", json_integer(sr->kw_hits[k]));
        json_object_set_new(e, "false_alarms", json_integer(sr->kw_fa[k]));
        json_object_set_new(pk, cfg->labels[k], e);
        if (sr->kw_n[k]) /* a hit rate where the keyword was said */
            json_object_set_new(hk, cfg->labels[k],
                                json_real((double)sr->kw_hits[k] / sr->kw_n[k]));
    }
    json_object_set_new(so, "per_keyword", pk);
    json_object_set_new(so, "hits_per_keyword", hk);
    return so;
}

/* The streaming lines of the text report. */
static void print_stream(const struct stream_result *sr, const struct snn_cfg *cfg,
                         const struct stream_args *a) {
    printf("streaming (threshold %.2f, smoothing %d ms, refractory %d ms): %.2f h, "
           "hit rate %.2f %% (%d/%d), false alarms %d (%.1f per hour; %d in unknown words, "
           "%d in negatives, %d in keywords, %d in noise), latency from "
           "word end mean %.0f ms, p50 %.0f ms, p90 %.0f ms; median peak score of the "
           "spoken keyword %.2f\n",
           a->threshold, a->smooth_ms, a->refr_ms, sr->hours,
           sr->n_kw ? 100.0 * sr->hits / sr->n_kw : 0.0, sr->hits, sr->n_kw, sr->false_alarms,
           sr->hours > 0 ? sr->false_alarms / sr->hours : 0.0, sr->fa_unknown, sr->fa_negative,
           sr->fa_keyword, fa_in_noise(sr), sr->lat_mean_ms, sr->lat_p50_ms, sr->lat_p90_ms,
           sr->peak_p50);
    if (sr->n_negative)
        printf("negative phrases said: %d\n", sr->n_negative);
    printf("hits per keyword:");
    for (int k = 0; k < cfg->n_classes; k++)
        if (sr->kw_n[k])
            printf(" %s %d/%d", cfg->labels[k], sr->kw_hits[k], sr->kw_n[k]);
    uint8_t kw[SNN_MAX_CLASSES];
    keyword_mask(cfg, kw);
    printf("\nfalse alarms per keyword (the label that fired):");
    for (int k = 0; k < cfg->n_classes; k++)
        if (kw[k])
            printf(" %s %d", cfg->labels[k], sr->kw_fa[k]);
    printf("\n");
}

static void usage(void) {
    fprintf(
        stderr,
        "usage: kwsd-eval --model FILE.kwsm --data DIR [options]\n"
        "       kwsd-eval --model FILE.kwsm --wav FILE [--threshold T ...]\n"
        "  --split test|val|train|all   clips to score (default test)\n"
        "  --frames 100                 frames per clip\n"
        "  --stream                     streaming metrics on a long recording\n"
        "  --threshold T --smoothing-ms 300 --refractory-ms 1000\n"
        "                               (default T: the model's calibrated threshold, else 0.4)\n"
        "  --sweep                      streaming metrics for thresholds 0.20, 0.25, ..., 0.995\n"
        "  --calibrate F                threshold for at most F false alarms per hour (stream)\n"
        "  --seed 1                     gap lengths of the recording\n"
        "  --passes 1                   the clips said this many times (later passes shuffled)\n"
        "  --noise-gain 1               scale the noise between the words (0.1: 20 dB quieter)\n"
        "  --negatives DIR              negative phrases (a folder per phrase) between the\n"
        "                               words, the split's phrases by DIR's list files\n"
        "  --negatives-only             a recording of the negative phrases alone (at least 1 h)\n"
        "  --noise DIR                  background recordings mixed under the whole stream\n"
        "  --snr LO,HI                  their level below each word, dB (default 10,20)\n"
        "  --json                       one JSON object on stdout\n"
        "  --gain-scale X               multiply the readout gain by X (softmax temperature 1/X)\n"
        "  --save-model FILE            write the model with the scaled readout gain and the\n"
        "                               calibrated threshold\n"
        "  --wav FILE                   run one recording as the daemon would: print its\n"
        "                               events and each keyword's highest score\n"
        "  --trace FILE                 with --wav: every frame's smoothed scores as CSV\n");
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *data = NULL, *split_s = "test";
    int T = 100, stream = 0, json = 0, smooth_ms = 300, refr_ms = 1000;
    float threshold = -1.0f, gain_scale = 1.0f, calib_fa = -1.0f, noise_gain = 1.0f;
    int sweep = 0;
    const char *save_path = NULL, *wav = NULL, *trace_path = NULL, *neg_dir = NULL,
               *noise_dir = NULL;
    long seed = 1, passes = 1;
    int neg_only = 0, snr_set = 0;
    float snr_lo = 10.0f, snr_hi = 20.0f;
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
        O_PASSES,
        O_GAIN,
        O_SAVE,
        O_SWEEP,
        O_CALIB,
        O_WAV,
        O_NOISE_GAIN,
        O_TRACE,
        O_NEG,
        O_NEG_ONLY,
        O_NOISE,
        O_SNR
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
                                          {"passes", 1, 0, O_PASSES},
                                          {"gain-scale", 1, 0, O_GAIN},
                                          {"save-model", 1, 0, O_SAVE},
                                          {"sweep", 0, 0, O_SWEEP},
                                          {"calibrate", 1, 0, O_CALIB},
                                          {"wav", 1, 0, O_WAV},
                                          {"noise-gain", 1, 0, O_NOISE_GAIN},
                                          {"trace", 1, 0, O_TRACE},
                                          {"negatives", 1, 0, O_NEG},
                                          {"negatives-only", 0, 0, O_NEG_ONLY},
                                          {"noise", 1, 0, O_NOISE},
                                          {"snr", 1, 0, O_SNR},
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
        case O_PASSES:
            passes = strtol(optarg, &end, 10);
            break;
        case O_GAIN:
            gain_scale = strtof(optarg, &end);
            break;
        case O_SAVE:
            save_path = optarg;
            break;
        case O_SWEEP:
            sweep = stream = 1;
            break;
        case O_TRACE:
            trace_path = optarg;
            break;
        case O_NOISE_GAIN:
            noise_gain = strtof(optarg, &end);
            stream = 1;
            break;
        case O_WAV:
            wav = optarg;
            break;
        case O_CALIB:
            calib_fa = strtof(optarg, &end);
            stream = 1;
            break;
        case O_NEG:
            neg_dir = optarg;
            stream = 1;
            break;
        case O_NEG_ONLY:
            neg_only = stream = 1;
            break;
        case O_NOISE:
            noise_dir = optarg;
            stream = 1;
            break;
        case O_SNR:
            if (parse_snr(optarg, &snr_lo, &snr_hi) < 0)
                return 2;
            snr_set = 1;
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
    if (!model_path || (!data && !wav) || T < 1 || !(noise_gain >= 0.0f)) {
        usage();
        return 2;
    }
    if (passes < 1 || passes > STREAM_EVAL_MAX_PASSES) {
        fprintf(stderr, "kwsd-eval: --passes: %ld is not in 1..%d\n", passes,
                STREAM_EVAL_MAX_PASSES);
        return 2;
    }
    if ((neg_only && !neg_dir) || (snr_set && !noise_dir)) {
        fprintf(stderr, "kwsd-eval: %s\n",
                neg_only && !neg_dir ? "--negatives-only: needs --negatives DIR"
                                     : "--snr: needs --noise DIR");
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
    if (threshold < 0.0f)
        threshold = m.cfg.threshold > 0.0f ? m.cfg.threshold : 0.4f;
    if (wav) {
        rc = run_wav(&m, wav, threshold, smooth_ms, refr_ms, trace_path);
        snn_model_free(&m);
        return rc;
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
    if (neg_dir && load_negatives(&ds, neg_dir, split) < 0)
        return 1;
    size_t n = dataset_split(&ds, split, -1, NULL);
    size_t *idx = malloc((n + 1) * sizeof *idx), *neg = malloc((n + 1) * sizeof *neg);
    if (!idx || !neg) {
        fprintf(stderr, "kwsd-eval: out of memory\n");
        return 1;
    }
    dataset_split(&ds, split, -1, idx);
    size_t n_neg = take_negatives(&ds, idx, &n, neg);
    if (neg_dir && !n_neg) {
        fprintf(stderr, "kwsd-eval: --negatives: %s has no phrase in the %s split\n", neg_dir,
                split_s);
        return 1;
    }
    struct dataset noise_ds = {0};
    struct stream_args sa = {.o = stream_eval_opts_default(),
                             .sweep = sweep,
                             .smooth_ms = smooth_ms,
                             .refr_ms = refr_ms,
                             .calib_fa = calib_fa,
                             .threshold = threshold,
                             .split_s = split_s};
    sa.o.seed = (uint64_t)seed;
    sa.o.noise_gain = noise_gain;
    sa.o.passes = (int)passes;
    sa.o.neg = neg;
    sa.o.n_neg = n_neg;
    sa.o.neg_only = neg_only;
    sa.o.snr_lo = snr_lo;
    sa.o.snr_hi = snr_hi;
    if (noise_dir && load_noise(&noise_ds, cfg, noise_dir, &sa.o) < 0)
        return 1;
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
    /* median clip peak of each class, and over all keyword clips */
    float cls_peak[SNN_MAX_CLASSES] = {0};
    double clip_peak = 0.0;
    {
        float *tmp = malloc((n + 1) * sizeof *tmp);
        if (!tmp) {
            fprintf(stderr, "kwsd-eval: out of memory\n");
            return 1;
        }
        for (int k = 0; k < K; k++) {
            size_t nk = 0;
            for (size_t i = 0; i < n; i++)
                if (ds.clips[idx[i]].label == k)
                    tmp[nk++] = peak[i];
            cls_peak[k] = median_sort(tmp, nk);
        }
        size_t nk = 0;
        for (size_t i = 0; i < n; i++)
            if (cfg->labels[ds.clips[idx[i]].label][0] != '_')
                tmp[nk++] = peak[i];
        clip_peak = median_sort(tmp, nk);
        free(tmp);
    }
    struct stream_result sr;
    if (stream && run_stream(&m, &ds, idx, n, &sa, &sr) != 0)
        return 1;
    if (save_path && (rc = snn_model_save(&m, save_path)) < 0) {
        fprintf(stderr, "kwsd-eval: %s: %s\n", save_path, kws_strerror(rc));
        return 1;
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
        json_t *cp = json_array();
        for (int i = 0; i < K; i++)
            json_array_append_new(cp, json_real(cls_peak[i]));
        json_object_set_new(o, "clip_peak_score_p50_per_label", cp);
        json_object_set_new(o, "confusion", cm);
        if (stream)
            json_object_set_new(o, "stream", stream_json(&sr, cfg, &sa));
        char *txt = json_dumps(o, JSON_COMPACT);
        puts(txt);
        free(txt);
        json_decref(o);
    } else {
        printf("%s on %s (%s split): %zu clips, accuracy %.2f %%; median peak %d ms score of "
               "the true keyword %.2f\n",
               model_path, data, split_s, n, 100.0 * acc, smooth_ms, clip_peak);
        printf("confusion (rows: true, columns: predicted; peak: the row's median peak score)\n"
               "%10s",
               "");
        for (int j = 0; j < K; j++)
            printf(" %5.5s", cfg->labels[j]);
        printf("   peak\n");
        for (int i = 0; i < K; i++) {
            printf("%10.10s", cfg->labels[i]);
            for (int j = 0; j < K; j++)
                printf(" %5d", conf[i][j]);
            printf("   %.2f\n", (double)cls_peak[i]);
        }
        if (stream)
            print_stream(&sr, cfg, &sa);
    }
    free(pred);
    free(peak);
    free(post);
    free(idx);
    free(neg);
    dataset_free(&ds);
    dataset_free(&noise_ds);
    snn_model_free(&m);
    return 0;
}

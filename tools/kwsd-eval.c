/* kwsd-eval: accuracy, confusion matrix and streaming metrics of a model.
 *
 * Clip mode (always; clip_eval_run, kws/clip_eval.h): every clip of the
 * chosen split is rendered exactly as the trainer renders validation clips
 * (word centred in T frames, no augmentation, 30 warm-up frames), run
 * through the exported network with snn_forward, classified by argmax over
 * classes of sum_t softmax(v[t]), and stepped through the daemon's detector
 * for its true class's peak smoothed score.
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
 * --sweep prints hit rate and false alarms for thresholds 0.20..0.999;
 * --calibrate F picks the lowest of those thresholds with at most F false
 * alarms per hour, and --save-model stores it in the model file, where the
 * daemon takes it as its default threshold.
 *
 * Recording mode (--wav FILE, no --data): one sound file runs through the
 * front end, snn_step and the detector as the daemon runs its microphone;
 * the events are printed, then each keyword's highest smoothed score.
 *
 * Second-look mode (--verify-pass DIR, no --data): a model enrolled with
 * its takes matches up to 100 sound files of DIR against them, each heard
 * as the enrolment hears a take, with no network in the way
 * (enroll_verifier_costs), and prints the share it lets through at its cut
 * and at 0.90-1.10 of it: how close that speech comes to the word.
 *
 *     kwsd-eval --model models/commands.kwsm --data /data/speech_commands \
 *               [--split test] [--stream] [--threshold 0.4] [--json]
 *
 * Every option, its range and help live in one table (eval_opts, parsed by
 * tools/opt.h); the defaults are clip_eval_opts_default's and
 * stream_eval_opts_default's (eval_defaults), the table's only where no
 * library holds one.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kws/audio_file.h"
#include "kws/clip_eval.h"
#include "kws/enroll.h"
#include "kws/dataset.h"
#include "kws/detector.h"
#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/listener.h"
#include "kws/snn.h"
#include "kws/stream_eval.h"
#include "opt.h"

/* --wav: one recording through the front end and a listener, as the daemon
 * runs them. */
struct wav_run {
    struct kws_listener lis;
    float best[SNN_MAX_CLASSES]; /* highest smoothed score of each class */
    int64_t best_ms[SNN_MAX_CLASSES];
    int64_t frame;
    int events;
    const struct audio_fe *fe; /* the front end, for its zero_run */
    FILE *trace;               /* --trace: every frame's smoothed scores as CSV, or NULL */
    uint64_t looked;           /* the listener's second looks printed so far */
};

static void wav_frame(void *ctx, const float *feat, const float *spikes) {
    struct wav_run *r = ctx;
    const struct snn_cfg *cfg = &r->lis.model->cfg;
    const float *scores = r->lis.scores;
    struct kws_hit hit;
    int fired = kws_listener_frame(&r->lis, feat, spikes, r->fe->zero_run, &hit);
    for (int k = 0; k < cfg->n_classes; k++)
        if (scores[k] > r->best[k]) {
            r->best[k] = scores[k];
            r->best_ms[k] = (r->frame + 1) * r->lis.frame_ms;
        }
    if (r->trace) {
        fprintf(r->trace, "%.2f", (double)(r->frame + 1) * r->lis.frame_ms / 1000.0);
        for (int k = 0; k < cfg->n_classes; k++)
            fprintf(r->trace, ",%.4f", (double)scores[k]);
        fputc('\n', r->trace);
    }
    r->frame++;
    if (fired) {
        printf("%8.2f s: %s (score %.3f, threshold %.2f, rose at %.2f s)\n",
               (double)hit.end_ms / 1000.0, cfg->labels[hit.label], (double)hit.score,
               (double)hit.threshold, (double)hit.start_ms / 1000.0);
        r->events++;
    }
    /* the second look at an enrolled word: said whether it kept the event or not */
    if (r->lis.n_verified > r->looked) {
        const struct kws_verifier *v = &r->lis.model->verify;
        printf("%8.2f s: %s checked against %d takes: cost %.3f, cut %.3f: %s\n",
               (double)r->frame * r->lis.frame_ms / 1000.0, cfg->labels[v->label], (int)v->n_takes,
               (double)r->lis.last_cost, (double)v->cut,
               r->lis.last_cost <= v->cut ? "kept" : "dropped");
        r->looked = r->lis.n_verified;
    }
}

/* Prints the events of the recording at path heard with settings ls, then
 * each keyword's highest smoothed score and when it came. Returns the exit
 * status. */
static int run_wav(const struct snn_model *m, const char *path,
                   const struct kws_listener_settings *ls, const char *trace_path) {
    const struct snn_cfg *cfg = &m->cfg;
    struct audio_fe fe = {0};
    struct wav_run r = {.fe = &fe};
    char msg[512];
    float *x = NULL;
    size_t n = 0;
    int native = 0, status = 1;

    int rc = audio_file_read(path, cfg->fe.sample_rate, &x, &n, &native, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "kwsd-eval: %s\n", msg);
        return 1;
    }
    if (audio_fe_init(&fe, &cfg->fe) < 0 || kws_listener_init(&r.lis, m, ls) < 0) {
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
           (double)n / cfg->fe.sample_rate, native,
           (double)kws_listener_threshold(ls, NULL, cfg->threshold), ls->smoothing_ms,
           ls->refractory_ms);
    audio_fe_push(&fe, x, n, wav_frame, &r);
    printf("%d events; each keyword's highest smoothed score:\n", r.events);
    for (int k = 0; k < cfg->n_classes; k++)
        if (r.lis.det.cfg.fires[k])
            printf("  %-12s %.3f at %.2f s\n", cfg->labels[k], (double)r.best[k],
                   (double)r.best_ms[k] / 1000.0);
    status = 0;
out:
    if (r.trace && fclose(r.trace) != 0) {
        fprintf(stderr, "kwsd-eval: %s: %s\n", trace_path, strerror(errno));
        status = 1;
    }
    free(x);
    audio_fe_free(&fe);
    kws_listener_free(&r.lis);
    return status;
}

/* ==== Streaming ==== */

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
    kws_detector_cfg_default(&dc, cfg, 0.5f, 300, 1000, kws_frame_ms(&cfg->fe));
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

/* --verify-pass: how much of a folder of speech the model's second look
 * lets through (enroll_verifier_costs), at its cut and around it. */
static int run_verify_pass(const struct snn_model *m, const char *dir) {
    const struct kws_verifier *v = &m->verify;
    if (!v->n_takes) {
        fprintf(stderr, "kwsd-eval: --verify-pass: the model keeps no takes for a second look\n");
        return 2;
    }
    struct enroll_take_rules rules;
    enroll_take_rules_default(&rules);
    float *cost;
    size_t n;
    const char *dirs[] = {dir};
    int rc = enroll_verifier_costs(v, &m->cfg.fe, dirs, 1, &rules, 1, 0, &cost, &n);
    if (rc < 0) {
        fprintf(stderr, "kwsd-eval: --verify-pass: %s: %s\n", dir, kws_strerror(rc));
        return 1;
    }
    if (!n) {
        fprintf(stderr, "kwsd-eval: --verify-pass: %s: no sound file it could hear\n", dir);
        return 1;
    }
    printf("%s: %zu files, cost median %.3f; let through at these times the cut %.3f:", dir, n,
           (double)cost[n / 2], (double)v->cut);
    for (int i = 0; i <= 8; i++) {
        double f = 0.90 + 0.025 * i;
        size_t k = 0;
        while (k < n && cost[k] <= (float)(f * v->cut))
            k++;
        printf(" %.3f: %.1f %%%s", f, 100.0 * (double)k / (double)n, i < 8 ? "," : "\n");
    }
    free(cost);
    return 0;
}

/* ==== Options ==== */

/* Everything the command line sets (the table below says what each is). */
struct opts {
    const char *model, *data, *save, *wav, *trace, *neg_dir, *noise_dir, *verify_dir;
    int split; /* index in split_names */
    int T, stream, json, smooth_ms, refr_ms, sweep, seed, passes, neg_only;
    float threshold, gain_scale, calib_fa, noise_gain, snr[2], cut;
    int thr_set, calib_set, noise_gain_set, snr_set, cut_set; /* given on the command line */
};

static const char *const split_names[] = {"test", "val", "train", "all", NULL};
static const int split_ids[] = {DS_TEST, DS_VAL, DS_TRAIN, -1};

#define O(f) offsetof(struct opts, f)
#define SET(f) OPT_SET(struct opts, f)

/* The options, in --help's order. --smoothing-ms and --refractory-ms take
 * the ranges of kwsd.yaml's detection keys; --snr those of kws/stream_eval.h.
 * Options with a library default have no .def: eval_defaults fills them. */
static const struct opt eval_opts[] = {
    {"model", OPT_PATH, O(model), .required = 1, .meta = "FILE.kwsm", .help = "the model file"},
    {"data", OPT_PATH, O(data), .meta = "DIR", .help = "the data set (needed unless --wav)"},
    {"split", OPT_ENUM, O(split), .names = split_names, .def = "test", .help = "clips to score"},
    {"frames", OPT_INT, O(T), .min = 1, .max = 10000, .help = "frames per clip"},
    {"stream", OPT_FLAG, O(stream), .help = "streaming metrics on a long recording"},
    {"threshold", OPT_FLOAT, O(threshold), .min = 0, .max = 1, .set = SET(thr_set), .meta = "T",
     .help = "detector threshold (default T: the model's calibrated\n"
             "threshold, else 0.4)"},
    {"smoothing-ms", OPT_INT, O(smooth_ms), .min = 10, .max = 3000,
     .help = "posterior smoothing window"},
    {"refractory-ms", OPT_INT, O(refr_ms), .min = 0, .max = 60000, .def = "1000",
     .help = "quiet time after a detection"},
    {"sweep", OPT_FLAG, O(sweep),
     .help = "streaming metrics for thresholds 0.20, 0.25, ..., 0.999"},
    {"calibrate", OPT_FLOAT, O(calib_fa), .min = 0, .max = 100000, .set = SET(calib_set),
     .meta = "F", .help = "threshold for at most F false alarms per hour (stream)"},
    {"seed", OPT_INT, O(seed), .min = 0, .max = INT_MAX, .help = "gap lengths of the recording"},
    {"passes", OPT_INT, O(passes), .min = 1, .max = STREAM_EVAL_MAX_PASSES,
     .help = "the clips said this many times (later passes shuffled)"},
    {"noise-gain", OPT_FLOAT, O(noise_gain), .min = 0, .max = 1000, .set = SET(noise_gain_set),
     .help = "scale the noise between the words (0.1: 20 dB quieter)"},
    {"negatives", OPT_PATH, O(neg_dir), .meta = "DIR",
     .help = "negative phrases (a folder per phrase) between the\n"
             "words, the split's phrases by DIR's list files"},
    {"negatives-only", OPT_FLAG, O(neg_only),
     .help = "a recording of the negative phrases alone (at least 1 h)"},
    {"noise", OPT_PATH, O(noise_dir), .meta = "DIR",
     .help = "background recordings mixed under the whole stream"},
    {"snr", OPT_PAIR, O(snr), .min = -20, .max = 60, .set = SET(snr_set),
     .help = "their level below each word, dB"},
    {"json", OPT_FLAG, O(json), .help = "one JSON object on stdout"},
    {"gain-scale", OPT_FLOAT, O(gain_scale), .min = 0, .max = 1000, .open = OPT_OPEN_MIN,
     .def = "1", .help = "scale the readout gain by this (softmax temperature 1/it)"},
    {"verify-cut", OPT_FLOAT, O(cut), .min = 0, .max = 1000, .set = SET(cut_set), .meta = "C",
     .help = "the second look keeps an event whose cost is at most C\n"
             "(instead of the model's cut; stored by --save-model)"},
    {"verify-pass", OPT_PATH, O(verify_dir), .meta = "DIR",
     .help = "the share of DIR's sound files (up to 100) the second\n"
             "look lets through, each heard as a take is, at its cut\n"
             "and at 0.90-1.10 of it"},
    {"save-model", OPT_PATH, O(save), .meta = "FILE",
     .help = "write the model with the scaled readout gain and the\n"
             "calibrated threshold"},
    {"wav", OPT_PATH, O(wav), .meta = "FILE",
     .help = "run one recording as the daemon would: print its\n"
             "events and each keyword's highest score"},
    {"trace", OPT_PATH, O(trace), .meta = "FILE",
     .help = "with --wav: every frame's smoothed scores as CSV"},
    {NULL}};

/* What the command line changes in the model: the readout gain, the cut. */
static int override(struct snn_model *m, const struct opts *o) {
    if (o->gain_scale != 1.0f) {
        /* the readout is linear in its input: scaling out_gain scales every
         * potential, i.e. sets the softmax temperature of the posteriors */
        m->cfg.out_gain *= o->gain_scale;
        snn_model_prepare(m);
    }
    if (o->cut_set && m->verify.n_takes == 0) {
        fprintf(stderr, "kwsd-eval: --verify-cut: %s keeps no takes for a second look\n", o->model);
        return -1;
    }
    if (o->cut_set)
        m->verify.cut = o->cut;
    return 0;
}

static const struct opt_tool eval_tool = {
    "kwsd-eval",
    "usage: kwsd-eval --model FILE.kwsm --data DIR [options]\n"
    "       kwsd-eval --model FILE.kwsm --wav FILE [--threshold T ...]\n"
    "       kwsd-eval --model FILE.kwsm --verify-pass DIR\n",
    eval_opts};

/* ==== Clip scores ==== */

/* The clips of the chosen split (with the negative phrases moved out to
 * their own list) and the noise recordings of --noise. */
struct eval_data {
    struct dataset ds, noise_ds;
    size_t *idx, n, *neg, n_neg;
};

static void eval_data_free(struct eval_data *d) {
    free(d->idx);
    free(d->neg);
    dataset_free(&d->ds);
    dataset_free(&d->noise_ds);
}

/* Loads the data set of --data with m's labels, the phrases of --negatives
 * and the recordings of --noise (into sa's options), and lists the split's
 * clips. Returns 0, or -1 after saying what is wrong. */
static int load_data(struct eval_data *d, const struct snn_cfg *cfg, const struct opts *o,
                     int split, struct stream_args *sa) {
    const char *labels[SNN_MAX_CLASSES];
    char msg[512];
    for (int i = 0; i < cfg->n_classes; i++)
        labels[i] = cfg->labels[i];
    dataset_init(&d->ds, labels, cfg->n_classes, cfg->fe.sample_rate);
    if (dataset_load(&d->ds, o->data, -1, msg, sizeof msg) < 0) {
        fprintf(stderr, "kwsd-eval: %s\n", msg);
        return -1;
    }
    if (o->neg_dir && load_negatives(&d->ds, o->neg_dir, split) < 0)
        return -1;
    d->n = dataset_split(&d->ds, split, -1, NULL);
    d->idx = malloc((d->n + 1) * sizeof *d->idx);
    d->neg = malloc((d->n + 1) * sizeof *d->neg);
    if (!d->idx || !d->neg) {
        fprintf(stderr, "kwsd-eval: out of memory\n");
        return -1;
    }
    dataset_split(&d->ds, split, -1, d->idx);
    d->n_neg = take_negatives(&d->ds, d->idx, &d->n, d->neg);
    if (o->neg_dir && !d->n_neg) {
        fprintf(stderr, "kwsd-eval: --negatives: %s has no phrase in the %s split\n", o->neg_dir,
                split_names[o->split]);
        return -1;
    }
    sa->o.neg = d->neg;
    sa->o.n_neg = d->n_neg;
    if (o->noise_dir && load_noise(&d->noise_ds, cfg, o->noise_dir, &sa->o) < 0)
        return -1;
    return 0;
}

/* The --json report: the clip scores, and the stream's when sr is not NULL. */
static void print_json(const struct opts *o, const struct snn_cfg *cfg,
                       const struct clip_eval_result *ce, const struct stream_result *sr,
                       const struct stream_args *sa) {
    int K = cfg->n_classes;
    json_t *jo = json_object();
    json_object_set_new(jo, "model", json_string(o->model));
    json_object_set_new(jo, "data", json_string(o->data));
    json_object_set_new(jo, "split", json_string(split_names[o->split]));
    json_object_set_new(jo, "clips", json_integer((json_int_t)ce->n));
    json_object_set_new(jo, "accuracy", json_real(ce->accuracy));
    json_object_set_new(jo, "clip_peak_score_p50", json_real(ce->keyword_peak));
    json_t *lab = json_array(), *cm = json_array(), *cp = json_array();
    for (int i = 0; i < K; i++) {
        json_array_append_new(lab, json_string(cfg->labels[i]));
        json_t *row = json_array();
        for (int j = 0; j < K; j++)
            json_array_append_new(row, json_integer(ce->confusion[i][j]));
        json_array_append_new(cm, row);
        json_array_append_new(cp, json_real(ce->class_peak[i]));
    }
    json_object_set_new(jo, "labels", lab);
    json_object_set_new(jo, "clip_peak_score_p50_per_label", cp);
    json_object_set_new(jo, "confusion", cm);
    if (sr)
        json_object_set_new(jo, "stream", stream_json(sr, cfg, sa));
    char *txt = json_dumps(jo, JSON_COMPACT);
    puts(txt);
    free(txt);
    json_decref(jo);
}

/* The text report: accuracy, the confusion matrix with each row's median
 * peak, and the stream's lines when sr is not NULL. */
static void print_text(const struct opts *o, const struct snn_cfg *cfg,
                       const struct clip_eval_result *ce, const struct stream_result *sr,
                       const struct stream_args *sa) {
    int K = cfg->n_classes;
    printf("%s on %s (%s split): %zu clips, accuracy %.2f %%; median peak %d ms score of "
           "the true keyword %.2f\n",
           o->model, o->data, split_names[o->split], ce->n, 100.0 * ce->accuracy, o->smooth_ms,
           ce->keyword_peak);
    printf("confusion (rows: true, columns: predicted; peak: the row's median peak score)\n"
           "%10s",
           "");
    for (int j = 0; j < K; j++)
        printf(" %5.5s", cfg->labels[j]);
    printf("   peak\n");
    for (int i = 0; i < K; i++) {
        printf("%10.10s", cfg->labels[i]);
        for (int j = 0; j < K; j++)
            printf(" %5d", ce->confusion[i][j]);
        printf("   %.2f\n", (double)ce->class_peak[i]);
    }
    if (sr)
        print_stream(sr, cfg, sa);
}

/* The defaults the libraries hold: clip scoring's (clip_eval_opts_default)
 * and the stream's (stream_eval_opts_default). */
static void eval_defaults(struct opts *o) {
    struct clip_eval_opts co = clip_eval_opts_default();
    struct stream_eval_opts so = stream_eval_opts_default();
    memset(o, 0, sizeof *o);
    o->T = co.T;
    o->smooth_ms = co.smooth_ms;
    o->seed = (int)so.seed;
    o->passes = so.passes;
    o->noise_gain = so.noise_gain;
    o->snr[0] = so.snr_lo;
    o->snr[1] = so.snr_hi;
}

int main(int argc, char **argv) {
    struct opts o;
    eval_defaults(&o);
    int rc = opt_parse(&eval_tool, &o, argc, argv);
    if (rc != OPT_OK)
        return rc == OPT_EXIT ? 0 : 2;
    o.stream |=
        o.sweep || o.calib_set || o.noise_gain_set || o.neg_dir || o.neg_only || o.noise_dir;
    if (!o.data && !o.wav && !o.verify_dir) {
        fprintf(stderr, "kwsd-eval: --data DIR, --wav FILE or --verify-pass DIR is required "
                        "(--help lists the options)\n");
        return 2;
    }
    if ((o.neg_only && !o.neg_dir) || (o.snr_set && !o.noise_dir)) {
        fprintf(stderr, "kwsd-eval: %s\n",
                o.neg_only && !o.neg_dir ? "--negatives-only: needs --negatives DIR"
                                         : "--snr: needs --noise DIR");
        return 2;
    }
    char msg[512];
    struct snn_model m = {0};
    rc = snn_model_load(&m, o.model, msg, sizeof msg);
    if (rc < 0) {
        fprintf(stderr, "kwsd-eval: %s (%s)\n", msg, kws_strerror(rc));
        return 1;
    }
    if (override(&m, &o) < 0) {
        snn_model_free(&m);
        return 2;
    }
    struct kws_listener_settings ls;
    kws_listener_settings_default(&ls);
    ls.threshold = o.thr_set ? o.threshold : KWS_THRESHOLD_MODEL;
    ls.smoothing_ms = o.smooth_ms;
    ls.refractory_ms = o.refr_ms;
    o.threshold = kws_listener_threshold(&ls, NULL, m.cfg.threshold);
    if (o.wav || o.verify_dir) {
        rc = o.wav ? run_wav(&m, o.wav, &ls, o.trace) : run_verify_pass(&m, o.verify_dir);
        snn_model_free(&m);
        return rc;
    }
    struct stream_args sa = {.o = stream_eval_opts_default(),
                             .sweep = o.sweep,
                             .smooth_ms = o.smooth_ms,
                             .refr_ms = o.refr_ms,
                             .calib_fa = o.calib_set ? o.calib_fa : -1.0f,
                             .threshold = o.threshold,
                             .split_s = split_names[o.split]};
    sa.o.seed = (uint64_t)o.seed;
    sa.o.noise_gain = o.noise_gain;
    sa.o.passes = o.passes;
    sa.o.neg_only = o.neg_only;
    sa.o.snr_lo = o.snr[0];
    sa.o.snr_hi = o.snr[1];
    struct eval_data d = {0};
    if (load_data(&d, &m.cfg, &o, split_ids[o.split], &sa) < 0)
        return 1;
    struct clip_eval_opts co = {.T = o.T, .smooth_ms = o.smooth_ms};
    struct clip_eval_result ce;
    if ((rc = clip_eval_run(&m, &d.ds, d.idx, d.n, &co, &ce)) < 0) {
        fprintf(stderr, "kwsd-eval: clip scores: %s\n", kws_strerror(rc));
        return 1;
    }
    struct stream_result sr;
    if (o.stream && run_stream(&m, &d.ds, d.idx, d.n, &sa, &sr) != 0)
        return 1;
    if (o.save && (rc = snn_model_save(&m, o.save)) < 0) {
        fprintf(stderr, "kwsd-eval: %s: %s\n", o.save, kws_strerror(rc));
        return 1;
    }
    if (o.json)
        print_json(&o, &m.cfg, &ce, o.stream ? &sr : NULL, &sa);
    else
        print_text(&o, &m.cfg, &ce, o.stream ? &sr : NULL, &sa);
    eval_data_free(&d);
    snn_model_free(&m);
    return 0;
}

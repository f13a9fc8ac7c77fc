/* test_train_same_events.c: the daemon, kwsd-eval --wav and the stream metric hear alike.
 *
 * All three listen through one struct kws_listener (kws/listener.h): the
 * daemon's microphone, `kwsd-eval --wav` and the stream evaluation
 * (stream_eval_run_opts, then stream_eval_score). This test builds one
 * recording the way the stream evaluation does, from a small data set made
 * at test time (espeak-ng keywords, and digital silence as the gaps, so the
 * network rests in the longer gaps: the hold rule), keeps its audio through
 * the on_audio hook and writes it to a float WAV file. Then:
 *   - `kwsd --input FILE` (the daemon, its events in its log) and
 *     `kwsd-eval --wav FILE` give the same events: labels, end times and
 *     scores;
 *   - those events, matched to the words the way stream_eval_score matches
 *     them, give the stream metric's own hits, false alarms per label and
 *     mean latency.
 * All at one threshold, 0.3, low enough that the shipped models/commands.kwsm
 * both finds words and fires where it should not (seen: 3 hits, 2 false
 * alarms, 242 held frames). A stream path that ignored the hold fails it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kws/dataset.h"
#include "kws/listener.h"
#include "kws/snn.h"
#include "kws/stream_eval.h"
#include "train_test.h"

#define MODEL KWSD_SOURCE_DIR "/models/commands.kwsm"
#define EVAL KWSD_BINARY_DIR "/tools/kwsd-eval"
#define THRESHOLD "0.3"
#define MAX_EVENTS 64

static char root[] = "/tmp/kws-same-XXXXXX";

/* root/set: five keywords said by espeak-ng, at 16 kHz, and 4 s of digital
 * silence as _silence_ (every gap of the recording is exact zeros). */
static void setup(void) {
    static const char *const words[] = {"yes", "stop", "go", "left", "down"};
    cr_assert(not(eq(ptr, mkdtemp(root), NULL)));
    kt_sh("mkdir -p '%s/set/_silence_'", root);
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        kt_sh("cd '%s' && mkdir -p set/%s && espeak-ng -v en-us -s 150 -w w.wav %s && "
              "sox -D w.wav -r 16000 -b 16 -c 1 set/%s/w.wav",
              root, words[i], words[i], words[i]);
    kt_sh("sox -D -n -r 16000 -b 16 -c 1 '%s/set/_silence_/z.wav' trim 0 4", root);
}

static void teardown(void) {
    tt_rmtree(root);
}

TestSuite(same_events, .init = setup, .fini = teardown, .timeout = 120);

/* ==== The three listeners ==== */

struct event {
    char word[SNN_LABEL_LEN];
    int64_t end_ms; /* the frame the event fired on, its end, from the start */
    float score;
};

/* The recording's audio, from stream_eval_opts.on_audio (one pass, piece
 * by piece). */
struct audio {
    float *x;
    size_t n;
};

static void keep_audio(void *ctx, int pass, const float *x, size_t n, size_t total) {
    struct audio *a = ctx;
    cr_assert(eq(int, pass, 0));
    cr_assert(le(sz, a->n + n, total), "no piece beyond the recording's length");
    a->x = realloc(a->x, (a->n + n) * sizeof *x);
    cr_assert(not(eq(ptr, a->x, NULL)));
    memcpy(a->x + a->n, x, n * sizeof *x);
    a->n += n;
}

/* kwsd-eval --wav's events: "  12.34 s: yes (score 0.812, ...". */
static int eval_events(const char *wav, struct event *ev) {
    kt_sh("%s --model %s --wav '%s' --threshold " THRESHOLD " > '%s' 2>&1", EVAL, MODEL, wav,
          kt_path(root, "eval.txt"));
    FILE *f = fopen(kt_path(root, "eval.txt"), "r");
    cr_assert(not(eq(ptr, f, NULL)));
    char line[512];
    int n = 0;
    double t;
    while (fgets(line, sizeof line, f) && n < MAX_EVENTS)
        if (sscanf(line, " %lf s: %31s (score %f", &t, ev[n].word, &ev[n].score) == 3) {
            ev[n].end_ms = llround(t * 1000.0);
            n++;
        }
    fclose(f);
    return n;
}

/* The daemon's events on the file, from its log: 'detected "yes" score
 * 0.812 at 12.34 s'. */
static int daemon_events(const char *wav, struct event *ev) {
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "audio:\n  device: default\n  rate: 16000\n"
             "model:\n  path: %s\n"
             "detection:\n  threshold: " THRESHOLD "\n"
             "transport:\n  endpoints: [ \"ipc://%s/events\" ]\n"
             "logging:\n  level: info\n",
             MODEL, root);
    kt_write_file(kt_path(root, "kwsd.yaml"), yaml);
    kt_write_file(kt_path(root, "asound.conf"), "");
    pid_t pid = kt_spawn_kwsd(root, "--input", wav);
    int st = 0;
    cr_assert(eq(int, waitpid(pid, &st, 0), pid));
    const char *log = kt_read_text(kt_path(root, "kwsd.log"));
    cr_assert(eq(int, WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0), "kwsd --input; log:\n%s", log);
    cr_assert(not(eq(ptr, strstr(log, "end of"), NULL)), "the whole file; log:\n%s", log);
    int n = 0;
    double t;
    for (const char *p = log; (p = strstr(p, "detected \"")) != NULL && n < MAX_EVENTS; p++) {
        char fmt[64];
        snprintf(fmt, sizeof fmt, "detected \"%%%d[^\"]\" score %%f at %%lf s", SNN_LABEL_LEN - 1);
        if (sscanf(p, fmt, ev[n].word, &ev[n].score, &t) == 3) {
            ev[n].end_ms = llround(t * 1000.0);
            n++;
        }
    }
    return n;
}

/* The recording the stream evaluation builds from root/set (one pass,
 * seed 1), its potentials in se, its audio in a. */
static void stream_recording(struct snn_model *m, struct dataset *ds, struct stream_eval *se,
                             struct audio *a) {
    char msg[256];
    cr_assert(eq(int, snn_model_load(m, MODEL, msg, sizeof msg), 0), "%s", msg);
    const char *labels[SNN_MAX_CLASSES];
    for (int c = 0; c < m->cfg.n_classes; c++)
        labels[c] = m->cfg.labels[c];
    cr_assert(eq(int, dataset_init(ds, labels, m->cfg.n_classes, m->cfg.fe.sample_rate), 0));
    cr_assert(eq(int, dataset_load(ds, kt_path(root, "set"), DS_TEST, msg, sizeof msg), 0), "%s",
              msg);
    size_t idx[16];
    size_t n = dataset_split(ds, DS_TEST, -1, idx);
    cr_assert(eq(sz, n, 6), "five words and the silence");
    struct stream_eval_opts o = stream_eval_opts_default();
    o.on_audio = keep_audio;
    o.ctx = a;
    cr_assert(eq(int, stream_eval_run_opts(se, m, ds, idx, n, &o), 0));
    cr_assert(not(eq(ptr, a->x, NULL)));
}

/* What the stream metric makes of events: each event of a word's label in
 * [start, end + 1 s] of a word not yet found is a hit (latency: its end
 * minus the word's end), any other is a false alarm of its label. */
static void score_events(const struct stream_eval *se, const struct snn_cfg *cfg,
                         const struct event *ev, int n, struct stream_result *r) {
    char got[64] = {0};
    double lat = 0.0;
    memset(r, 0, sizeof *r);
    for (int i = 0; i < n; i++) {
        int c = 0;
        while (c < cfg->n_classes && strcmp(cfg->labels[c], ev[i].word))
            c++;
        cr_assert(lt(int, c, cfg->n_classes), "%s is a label", ev[i].word);
        int64_t sample = ev[i].end_ms * se->rate / 1000;
        int hit = 0;
        for (size_t j = 0; j < se->n_word && j < sizeof got && !hit; j++)
            if (se->lab[j] == c && !got[j] && se->on[j] <= sample &&
                sample <= se->off[j] + se->rate) {
                got[j] = hit = 1;
                lat += (double)(sample - se->off[j]) * 1000.0 / se->rate;
            }
        r->hits += hit;
        r->kw_hits[c] += hit;
        r->false_alarms += !hit;
        r->kw_fa[c] += !hit;
    }
    r->lat_mean_ms = r->hits ? lat / r->hits : 0.0;
}

/* ==== One recording, three listeners ==== */

Test(same_events, daemon_kwsd_eval_and_stream_metric) {
    struct snn_model m = {0};
    struct dataset ds;
    struct stream_eval se;
    struct audio a = {0};
    stream_recording(&m, &ds, &se, &a);
    size_t held = 0;
    for (size_t t = 0; t < se.nf; t++)
        held += se.held[t];
    cr_expect(gt(sz, held, 0), "a gap long enough to rest the network");

    char wav[512]; /* kt_path's buffers are reused */
    snprintf(wav, sizeof wav, "%s/rec.wav", root);
    tt_write_wav(wav, a.x, a.n, se.rate, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    static struct event ev_eval[MAX_EVENTS], ev_kwsd[MAX_EVENTS];
    int n_eval = eval_events(wav, ev_eval);
    int n_kwsd = daemon_events(wav, ev_kwsd);

    /* the daemon and kwsd-eval --wav */
    cr_assert(ge(int, n_eval, 2), "kwsd-eval hears the keywords:\n%s",
              kt_read_text(kt_path(root, "eval.txt")));
    cr_expect(eq(int, n_kwsd, n_eval), "kwsd log:\n%s", kt_read_text(kt_path(root, "kwsd.log")));
    for (int i = 0; i < n_eval && i < n_kwsd; i++) {
        cr_expect(eq(str, ev_kwsd[i].word, ev_eval[i].word), "event %d", i);
        cr_expect(eq(i64, ev_kwsd[i].end_ms, ev_eval[i].end_ms), "event %d", i);
        cr_expect(eq(flt, ev_kwsd[i].score, ev_eval[i].score), "event %d", i);
    }

    /* kwsd-eval's events and the stream metric */
    struct stream_result want, got;
    struct kws_listener_settings ls; /* the daemon's and kwsd-eval's smoothing and refractory */
    kws_listener_settings_default(&ls);
    cr_assert(eq(int,
                 stream_eval_score(&se, &m.cfg, strtof(THRESHOLD, NULL), ls.smoothing_ms,
                                   ls.refractory_ms, &got),
                 0));
    score_events(&se, &m.cfg, ev_eval, n_eval, &want);
    cr_expect(eq(int, got.hits, want.hits));
    cr_expect(eq(int, got.false_alarms, want.false_alarms));
    for (int c = 0; c < m.cfg.n_classes; c++) {
        cr_expect(eq(int, got.kw_hits[c], want.kw_hits[c]), "hits of %s", m.cfg.labels[c]);
        cr_expect(eq(int, got.kw_fa[c], want.kw_fa[c]), "false alarms of %s", m.cfg.labels[c]);
    }
    cr_expect(le(dbl, fabs(got.lat_mean_ms - want.lat_mean_ms), 1e-6), "latency %g ms, want %g",
              got.lat_mean_ms, want.lat_mean_ms);
    cr_log_info("%d events, %d hits, %d false alarms, %zu held frames", n_eval, got.hits,
                got.false_alarms, held);

    free(a.x);
    stream_eval_free(&se);
    dataset_free(&ds);
    snn_model_free(&m);
}

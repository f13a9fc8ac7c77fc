/* test_daemon_models.c: kwsd with several models at once (model.paths, model.dir).
 *
 * The shipped models/commands.kwsm and models/digits.kwsm (a front end of
 * its own) run side by side on espeak-ng speech through ALSA's file plugin:
 * each model's events reach a ZeroMQ subscriber with its own labels and its
 * own name, and they are exactly the events kwsd-eval finds with that model
 * alone, so stepping two networks per frame changes neither; a model at
 * 8 kHz gets a resampler and front end of its own from the same 16 kHz
 * input. A reload whose
 * second model file is corrupt is refused and the running set keeps
 * detecting with both; a reload that adds a model keeps the running one's
 * state; --check-config names a bad file, a label two models
 * share, and model.path given with model.paths. A word enrolled by
 * kwsd-enroll (a tiny recipe: seconds) into a models directory loads next
 * to the shipped model, with the threshold calibrated into it and its takes
 * for the second look.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "kws/frontend.h"
#include "kws/snn.h"
#include "kt_model.h"
#include "kwsd_test.h"

#define COMMANDS KWSD_SOURCE_DIR "/models/commands.kwsm"
#define DIGITS KWSD_SOURCE_DIR "/models/digits.kwsm"
#define EVAL KWSD_BINARY_DIR "/tools/kwsd-eval"
#define ENROLL KWSD_BINARY_DIR "/tools/kwsd-enroll"

static char dir[256];
static char endpoint[300];

/* ==== Helpers ==== */

static const char *at(const char *name) {
    return kt_path(dir, name);
}

/* dir/audio.raw (16 kHz): the words, 1.2 s apart, between stretches of
 * digital silence (kt_make_speech). Returns seconds. */
static double make_speech(const char *const *words, int n) {
    return (double)kt_make_speech(dir, words, n, 16000, 1.2, NULL) / 1000.0;
}

/* dir/kwsd.yaml: the test's device and endpoint, the model lines given
 * (indented under model:), a fast heartbeat. */
static void write_config(const char *model_lines) {
    char text[4096];
    snprintf(text, sizeof text,
             "audio:\n  device: testmic\n  rate: 16000\n"
             "model:\n%s"
             "transport:\n  endpoints: [ \"%s\" ]\n  heartbeat_s: 0.5\n"
             "logging:\n  level: info\n",
             model_lines, endpoint);
    kt_write_file(at("kwsd.yaml"), text);
}

/* How many lines of the log hold both a and b. */
static int log_count(const char *a, const char *b) {
    char line[4096];
    int n = 0;
    FILE *f = fopen(at("kwsd.log"), "r");
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, a) && (!b || strstr(line, b));
    if (f)
        fclose(f);
    return n;
}

/* Starts kwsd on dir/speech.wav, its input 6 s after start-up, and waits
 * up to 5 s for its "ready". */
static pid_t start_delayed(void) {
    char input[400];
    snprintf(input, sizeof input, "--input=%s", at("speech.wav"));
    pid_t pid = kt_spawn_kwsd(dir, input, "--input-delay=6000");
    int64_t end = kt_now_ms() + 5000;
    while (kt_now_ms() < end && !log_count("notice: ready", NULL))
        usleep(20000);
    cr_assert(eq(int, log_count("notice: ready", NULL), 1), "%s", kt_read_text(at("kwsd.log")));
    return pid;
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/kwsd-models-XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(dir), NULL)));
    snprintf(endpoint, sizeof endpoint, "ipc://%s/events", dir);
    kt_write_testmic(dir, "audio.raw");
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static void need_models(void) {
    struct stat st;
    if (stat(COMMANDS, &st) != 0 || stat(DIGITS, &st) != 0)
        cr_skip_test("models/commands.kwsm or models/digits.kwsm is missing");
}

TestSuite(models, .init = setup, .fini = teardown, .timeout = 240);

/* ==== Two models on one microphone ==== */

struct event {
    char kw[SNN_LABEL_LEN];
    int64_t end_ms;
};

/* The events kwsd-eval --wav finds in dir/speech.wav with one model. */
static int eval_events(const char *model, struct event *ev, int max) {
    kt_sh("%s --model %s --wav %s/speech.wav > %s/eval.txt 2>&1", EVAL, model, dir, dir);
    FILE *f = fopen(at("eval.txt"), "r");
    cr_assert(not(eq(ptr, f, NULL)));
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        double t;
        char word[SNN_LABEL_LEN];
        if (sscanf(line, " %lf s: %31s (", &t, word) == 2 && n < max) {
            snprintf(ev[n].kw, SNN_LABEL_LEN, "%s", word);
            ev[n++].end_ms = (int64_t)llround(t * 1000.0);
        }
    }
    fclose(f);
    return n;
}

/* Compares kwsd's events of one model with kwsd-eval's for it. */
static void expect_same(const char *name, const struct event *got, int n_got,
                        const struct event *want, int n_want) {
    for (int i = 0; i < n_got; i++)
        cr_log_info("kwsd %s: %s at %lld ms", name, got[i].kw, (long long)got[i].end_ms);
    for (int i = 0; i < n_want; i++)
        cr_log_info("kwsd-eval %s: %s at %lld ms", name, want[i].kw, (long long)want[i].end_ms);
    cr_expect(ge(int, n_want, 1), "%s alone hears at least one of the words", name);
    cr_expect(eq(int, n_got, n_want), "%s: kwsd and kwsd-eval find as many events", name);
    for (int i = 0; i < n_got && i < n_want; i++) {
        cr_expect(eq(str, (char *)got[i].kw, (char *)want[i].kw), "%s: event %d", name, i);
        cr_expect(le(i64, llabs(got[i].end_ms - want[i].end_ms), 10),
                  "%s: event %d at %lld against %lld ms", name, i, (long long)got[i].end_ms,
                  (long long)want[i].end_ms);
    }
}

Test(models, two_models_publish_their_own_labels_through_alsa) {
    static const char *const words[] = {"yes", "three", "go", "seven"};
    struct event want_c[16], want_d[16], got_c[16], got_d[16];
    int n_c = 0, n_d = 0, heartbeats_with_both = 0;
    char topic[128], body[4096], lines[2048];
    struct stat st;

    need_models();
    if (stat(EVAL, &st) != 0)
        cr_skip_test("kwsd-eval is not built");
    double secs = make_speech(words, 4);
    int nw_c = eval_events(COMMANDS, want_c, 16);
    int nw_d = eval_events(DIGITS, want_d, 16);
    snprintf(lines, sizeof lines, "  paths:\n    - %s\n    - %s\n", COMMANDS, DIGITS);
    write_config(lines);

    void *ctx = zmq_ctx_new(), *sock = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "kws.", 4);
    cr_assert(eq(int, zmq_connect(sock, endpoint), 0));
    pid_t pid = kt_spawn_kwsd(dir, NULL, NULL);
    int64_t end = kt_now_ms() + 60000;
    double frames = 0;
    while (kt_now_ms() < end && frames < secs * 100.0) {
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 500) <= 0)
            continue;
        int n = zmq_recv(sock, topic, sizeof topic - 1, 0);
        cr_assert(gt(int, n, 0));
        topic[n] = '\0';
        n = zmq_recv(sock, body, sizeof body - 1, 0);
        cr_assert(gt(int, n, 0));
        body[n] = '\0';
        json_t *j = json_loads(body, 0, NULL);
        cr_assert(not(eq(ptr, j, NULL)), "%s", body);
        const char *model = json_string_value(json_object_get(j, "model"));
        cr_assert(not(eq(ptr, (void *)model, NULL)), "%s", body);
        if (strcmp(topic, "kws.status") == 0) {
            frames = json_number_value(json_object_get(j, "frames"));
            heartbeats_with_both += strcmp(model, "commands.kwsm,digits.kwsm") == 0;
        } else {
            const char *kw = json_string_value(json_object_get(j, "keyword"));
            int64_t t = json_integer_value(json_object_get(j, "end_ms"));
            cr_assert(eq(str, topic + strlen("kws.detection."), (char *)kw));
            /* past the file's end the plugin repeats its last period */
            if ((double)t <= secs * 1000.0) {
                int c = strcmp(model, "commands.kwsm") == 0;
                cr_assert(c || strcmp(model, "digits.kwsm") == 0, "model %s", model);
                struct event *e = c ? &got_c[n_c < 16 ? n_c++ : 15] : &got_d[n_d < 16 ? n_d++ : 15];
                snprintf(e->kw, SNN_LABEL_LEN, "%s", kw);
                e->end_ms = t;
            }
        }
        json_decref(j);
    }
    kill(pid, SIGTERM);
    int rc = kt_wait_exit(pid, 10000);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    cr_log_info("kwsd log:\n%s", kt_read_text(at("kwsd.log")));
    cr_expect(eq(int, rc, 0), "kwsd exits cleanly");
    cr_expect(ge(int, heartbeats_with_both, 1), "the heartbeat lists both models");
    cr_expect(eq(int, log_count("(front end 2 of 2)", "digits.kwsm"), 1),
              "digits.kwsm's front end differs from commands.kwsm's: it has its own");
    expect_same("commands.kwsm", got_c, n_c, want_c, nw_c);
    expect_same("digits.kwsm", got_d, n_d, want_d, nw_d);
}

/* A model at 8 kHz (window 200, hop 80, FFT 256, mel bands to 4 kHz), one
 * hidden layer, whose "beep" fires whenever its refractory period allows
 * (a large readout bias): it detects nothing, but its events prove its
 * front end runs. */
static void write_8k_model(const char *path) {
    struct kws_frontend_cfg fe;
    audio_fe_cfg_default(&fe);
    fe.sample_rate = 8000;
    fe.win_len = 200;
    fe.hop = 80;
    fe.n_fft = 256;
    fe.fmax = 4000.0f;
    fe.n_mels = 20;
    kt_save_tiny_model(path, &fe, "beep", 1);
}

/* commands.kwsm (16 kHz) and an 8 kHz model on one 16 kHz input: two
 * resamplers and front ends from one capture; each model's events come,
 * and commands.kwsm's are still exactly kwsd-eval's. */
Test(models, a_model_at_8_khz_next_to_one_at_16_khz) {
    static const char *const words[] = {"yes", "go"};
    struct event want[16];
    char lines[2048], input[400];
    struct stat st;

    need_models();
    if (stat(EVAL, &st) != 0)
        cr_skip_test("kwsd-eval is not built");
    make_speech(words, 2);
    int n_want = eval_events(COMMANDS, want, 16);
    write_8k_model(at("beep8k.kwsm"));
    snprintf(lines, sizeof lines, "  paths: [ %s, %s ]\n", COMMANDS, at("beep8k.kwsm"));
    write_config(lines);
    snprintf(input, sizeof input, "--input=%s", at("speech.wav"));
    pid_t pid = kt_spawn_kwsd(dir, input, NULL);
    int rc = kt_wait_exit(pid, 60000);
    cr_log_info("kwsd log:\n%s", kt_read_text(at("kwsd.log")));
    cr_assert(eq(int, rc, 0));
    cr_expect(eq(int,
                 log_count("beep8k.kwsm: ", "front end 8000 Hz / 20 mels to 4000 Hz (front "
                                            "end 2 of 2)"),
                 1));
    cr_expect(ge(int, log_count("detected \"beep\"", "(beep8k.kwsm)"), 2),
              "the 8 kHz model hears its frames");
    cr_expect(eq(int, log_count("detected", "(commands.kwsm)"), n_want),
              "commands.kwsm finds what kwsd-eval finds (%d)", n_want);
}

/* ==== Reloads and checks ==== */

/* kwsd on dir/speech.wav (--input, starting 6 s after start-up), with the
 * set {commands, dir/models/digits.kwsm}; the second file is corrupted and
 * kwsd reloaded before the audio starts: the reload is refused, naming the
 * file, and both models of the running set still detect. */
Test(models, a_reload_with_a_corrupt_second_model_keeps_the_running_set) {
    static const char *const words[] = {"yes", "three", "go", "seven"};
    char lines[2048];

    need_models();
    make_speech(words, 4);
    kt_sh("mkdir -p %s/models && cp %s %s/models/digits.kwsm", dir, DIGITS, dir);
    snprintf(lines, sizeof lines, "  path: %s\n  dir: %s/models\n", COMMANDS, dir);
    write_config(lines);
    pid_t pid = start_delayed();
    kt_sh("truncate -s 100 %s/models/digits.kwsm", dir);
    kill(pid, SIGHUP);
    int rc = kt_wait_exit(pid, 60000);
    cr_log_info("kwsd log:\n%s", kt_read_text(at("kwsd.log")));
    cr_assert(eq(int, rc, 0), "kwsd runs the file to its end");
    cr_expect(
        eq(int, log_count("reload of", "failed; the running configuration and models stay"), 1));
    cr_expect(ge(int, log_count(at("models/digits.kwsm"), "error"), 1),
              "the refusal names the corrupt file");
    cr_expect(ge(int, log_count("detected", "(commands.kwsm)"), 1), "commands.kwsm still hears");
    cr_expect(ge(int, log_count("detected", "(digits.kwsm)"), 1), "digits.kwsm still hears");
}

/* A reload that adds a model: the running one keeps its network state and
 * detector, the new one starts from rest, and both detect in the audio
 * that follows (--input starting 6 s after start-up, the reload before). */
Test(models, a_reload_adds_a_model_next_to_the_running_one) {
    static const char *const words[] = {"yes", "three", "go", "seven"};
    char lines[2048];

    need_models();
    make_speech(words, 4);
    snprintf(lines, sizeof lines, "  path: %s\n", COMMANDS);
    write_config(lines);
    pid_t pid = start_delayed();
    snprintf(lines, sizeof lines, "  paths: [ %s, %s ]\n", COMMANDS, DIGITS);
    write_config(lines);
    kill(pid, SIGHUP);
    int rc = kt_wait_exit(pid, 60000);
    cr_log_info("kwsd log:\n%s", kt_read_text(at("kwsd.log")));
    cr_assert(eq(int, rc, 0), "kwsd runs the file to its end");
    cr_expect(eq(int,
                 log_count("commands.kwsm, 12 classes; same model: network state and "
                           "detector kept",
                           NULL),
                 1));
    cr_expect(eq(int, log_count("digits.kwsm, 10 classes; added", NULL), 1));
    cr_expect(eq(int, log_count("reloaded", "(2 model(s): commands.kwsm,digits.kwsm)"), 1));
    cr_expect(ge(int, log_count("detected", "(commands.kwsm)"), 1));
    cr_expect(ge(int, log_count("detected", "(digits.kwsm)"), 1));
}

Test(models, check_config_names_a_bad_file_a_shared_label_and_path_with_paths) {
    char out[8192], lines[2048];

    need_models();
    kt_sh("mkdir -p %s/models && cp %s %s/models/a.kwsm && head -c 200 %s > %s/models/b.kwsm", dir,
          DIGITS, dir, DIGITS, dir);
    snprintf(lines, sizeof lines, "  path: %s\n  dir: %s/models\n", COMMANDS, dir);
    write_config(lines);
    int st = kt_run(out, sizeof out, "%s/daemon/kwsd -c %s --check-config", KWSD_BINARY_DIR,
                    at("kwsd.yaml"));
    cr_expect(eq(int, st, 1), "%s", out);
    cr_expect(not(eq(ptr, strstr(out, at("models/b.kwsm")), NULL)), "names the bad file: %s", out);

    /* the good ones alone: both listed */
    kt_sh("rm %s/models/b.kwsm", dir);
    st = kt_run(out, sizeof out, "%s/daemon/kwsd -c %s --check-config", KWSD_BINARY_DIR,
                at("kwsd.yaml"));
    cr_expect(eq(int, st, 0), "%s", out);
    cr_expect(not(eq(ptr, strstr(out, "ok (2 model(s))"), NULL)), "%s", out);
    cr_expect(not(eq(ptr, strstr(out, at("models/a.kwsm")), NULL)), "%s", out);

    /* a keyword in two models */
    kt_sh("cp %s %s/models/c.kwsm", COMMANDS, dir);
    st = kt_run(out, sizeof out, "%s/daemon/kwsd -c %s --check-config", KWSD_BINARY_DIR,
                at("kwsd.yaml"));
    cr_expect(eq(int, st, 1), "%s", out);
    cr_expect(not(eq(ptr, strstr(out, "keyword \"yes\" is also in " COMMANDS), NULL)), "%s", out);

    /* model.path and model.paths together */
    snprintf(lines, sizeof lines, "  path: %s\n  paths: [ %s ]\n", COMMANDS, DIGITS);
    write_config(lines);
    st = kt_run(out, sizeof out, "%s/daemon/kwsd -c %s --check-config", KWSD_BINARY_DIR,
                at("kwsd.yaml"));
    cr_expect(eq(int, st, 1), "%s", out);
    cr_expect(
        not(eq(ptr, strstr(out, "model.path: give model.path (one model) or model.paths"), NULL)),
        "%s", out);

    /* a models directory that is not there */
    snprintf(lines, sizeof lines, "  dir: %s/nowhere\n", dir);
    write_config(lines);
    st = kt_run(out, sizeof out, "%s/daemon/kwsd -c %s --check-config", KWSD_BINARY_DIR,
                at("kwsd.yaml"));
    cr_expect(eq(int, st, 1), "%s", out);
    cr_expect(not(eq(ptr, strstr(out, "nowhere: model.dir: "), NULL)), "%s", out);
}

/* ==== An enrolled word next to the shipped model ==== */

/* Issue 20's check: kwsd-enroll makes a model of a new word (six espeak-ng
 * takes against a small pack made here, a tiny recipe), writes it into a
 * models directory, and kwsd loads it next to the shipped model with the
 * threshold calibrated into it. */
Test(models, an_enrolled_word_loads_next_to_the_shipped_model, .timeout = 300) {
    static const char *const voices[] = {"en-us",    "en-gb", "en-us+f3",
                                         "en-gb+m3", "en+f4", "en-us+m7"};
    static const char *const phrases[] = {"turn it up",     "what time is it", "good morning",
                                          "play something", "open the door",   "the weather"};
    static char out[32768];
    char lines[2048], msg[256], want[128];
    struct stat st;

    need_models();
    if (stat(ENROLL, &st) != 0)
        cr_skip_test("kwsd-enroll is not built");
    kt_sh("mkdir -p %s/takes %s/pack/words/other %s/pack/noise %s/models", dir, dir, dir, dir);
    for (int i = 0; i < 6; i++) {
        kt_sh("espeak-ng -v %s -s %d -w %s/t.wav lights && sox -q %s/t.wav -r 22050 "
              "%s/takes/%d.wav pad 1 1",
              voices[i], 140 + 10 * i, dir, dir, dir, i);
        kt_sh("espeak-ng -v %s -w %s/pack/words/other/%d.wav '%s'", voices[i], dir, i, phrases[i]);
    }
    kt_sh("sox -q -n -r 16000 -b 16 -c 1 %s/pack/noise/white.wav synth 4 whitenoise vol 0.05", dir);
    int rc = kt_run(out, sizeof out,
                    "%s --word lights --takes %s/takes --pack %s/pack --init %s --out "
                    "%s/models/lights.kwsm --epochs 1 --windows 8 --batch 4 --mine-every 0 "
                    "--val-takes 2 --min-takes 4 --calib-hours 0.01 --threads 1",
                    ENROLL, dir, dir, COMMANDS, dir);
    cr_assert(eq(int, rc, 0), "%s", out);

    struct snn_model m = {0};
    cr_assert(eq(int, snn_model_load(&m, at("models/lights.kwsm"), msg, sizeof msg), 0), "%s", msg);
    cr_expect(eq(str, m.cfg.labels[0], "lights"));
    cr_expect(m.cfg.threshold > 0.0f && m.cfg.threshold <= 1.0f, "%f", (double)m.cfg.threshold);
    snprintf(want, sizeof want, "lights.kwsm: detection threshold %.2f (calibrated into the model)",
             (double)m.cfg.threshold);
    snn_model_free(&m);

    /* the shipped model and the models directory, as docs/ENROLL.md says */
    snprintf(lines, sizeof lines, "  path: %s\n  dir: %s/models\n", COMMANDS, dir);
    write_config(lines);
    rc = kt_run(out, sizeof out, "%s/daemon/kwsd -c %s --check-config", KWSD_BINARY_DIR,
                at("kwsd.yaml"));
    cr_expect(eq(int, rc, 0), "%s", out);
    cr_expect(not(eq(ptr, strstr(out, "ok (2 model(s))"), NULL)), "%s", out);
    cr_expect(not(eq(ptr, strstr(out, want), NULL)), "%s\nwant: %s", out, want);
    cr_expect(not(eq(ptr,
                     strstr(out, "lights.kwsm: \"lights\" is checked against 6 takes before it "
                                 "is published (300 ms later)"),
                     NULL)),
              "%s", out);

    /* and runs both on a recording to its end */
    static const char *const words[] = {"yes", "lights"};
    make_speech(words, 2);
    char input[400];
    snprintf(input, sizeof input, "--input=%s", at("speech.wav"));
    pid_t pid = kt_spawn_kwsd(dir, input, NULL);
    rc = kt_wait_exit(pid, 60000);
    cr_log_info("kwsd log:\n%s", kt_read_text(at("kwsd.log")));
    cr_expect(eq(int, rc, 0));
    cr_expect(eq(int, log_count("model ", "lights.kwsm: "), 1), "kwsd loads lights.kwsm");
    cr_expect(eq(int, log_count("(front end 1 of 1)", NULL), 2),
              "the enrolled model copies the shipped front end: one is shared");
}

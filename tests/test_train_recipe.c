/* test_train_recipe.c: train_run end to end on a tiny data set, and clip_eval_run.
 *
 * Builds a three-class set at test time (two tone "words" that differ in
 * pitch, white noise as _silence_, list files naming the validation and
 * test clips) and trains a small network on it for a few epochs, one
 * thread. Checks that the progress callback reports every epoch in order,
 * that the loss falls, that the model file is written, loads and carries
 * the labels and a calibrated threshold; that a run resumed from the
 * checkpoint of its second epoch ends with the same model and checkpoint
 * bytes as the uninterrupted run; that a recipe that makes no network is
 * KWS_ECONFIG with a message; and that clip_eval_run's peaks are the
 * detector's own smoothed scores.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kws/clip_eval.h"
#include "kws/dataset.h"
#include "kws/detector.h"
#include "kws/err.h"
#include "kws/recipe.h"
#include "kws/snn.h"
#include "kws/train.h"
#include "train_test.h"

static char root[] = "/tmp/kws-recipe-XXXXXX";
#define EPOCHS 5

/* root/rel, 1 s at 16 kHz: a 400 ms tone at freq from start_ms over faint
 * noise, or (noise_only) louder noise alone. */
static void write_clip(const char *rel, float freq, int start_ms, int noise_only, uint32_t seed) {
    tt_write_word(kt_path(root, rel), seed * 2654435761u + 1, freq, start_ms, noise_only);
}

/* 16 clips of each word (300-700 Hz and 1.5-1.9 kHz), 8 of noise. */
static void setup(void) {
    cr_assert(not(eq(ptr, mkdtemp(root), NULL)));
    kt_sh("cd '%s' && mkdir yes no _silence_", root);
    char rel[64];
    for (int i = 0; i < 16; i++) {
        snprintf(rel, sizeof rel, "yes/a%d.wav", i);
        write_clip(rel, 300.0f + 25.0f * (float)i, 200 + 20 * i, 0, (uint32_t)i);
        snprintf(rel, sizeof rel, "no/b%d.wav", i);
        write_clip(rel, 1500.0f + 25.0f * (float)i, 400 - 15 * i, 0, 100u + (uint32_t)i);
        if (i < 8) {
            snprintf(rel, sizeof rel, "_silence_/n%d.wav", i);
            write_clip(rel, 0.0f, 0, 1, 200u + (uint32_t)i);
        }
    }
    kt_write_file(kt_path(root, "validation_list.txt"),
                  "yes/a1.wav\nyes/a5.wav\nno/b1.wav\nno/b5.wav\n_silence_/n1.wav\n");
    kt_write_file(kt_path(root, "testing_list.txt"), "yes/a2.wav\nno/b2.wav\n_silence_/n2.wav\n");
}

static void teardown(void) {
    tt_rmtree(root);
}

TestSuite(train_recipe, .init = setup, .fini = teardown, .timeout = 120);

/* A small, fast recipe writing root/NAME.kwsm. */
static void tiny_recipe(struct train_recipe *r, const char *name, char *out, size_t len) {
    train_recipe_default(r);
    snprintf(out, len, "%s/%s.kwsm", root, name);
    r->data = root;
    r->out = out;
    static const char *const labels[] = {"yes", "no", "_silence_"};
    r->n_labels = 3;
    for (int i = 0; i < 3; i++)
        snprintf(r->labels[i], SNN_LABEL_LEN, "%s", labels[i]);
    r->hidden[0] = r->hidden[1] = 24;
    r->d_max = 10;
    r->delay_init[0] = 1.0f;
    r->delay_init[1] = 5.0f;
    r->epochs = EPOCHS;
    r->batch = 8;
    r->copies = 2;
    r->threads = 1;
    r->lr = 1e-2f;
    r->ema = 0.9f;
}

/* What the callbacks saw. */
struct seen {
    int n_epochs, last_epoch, in_order, n_notes, data_note;
    double loss[EPOCHS];
    char copy_at; /* run_copy: the epoch whose report starts the copies */
    char ckpt_src[600], out_src[600], ckpt_dst[600], out_dst[600];
};

static void on_note(void *data, const char *line) {
    struct seen *s = data;
    s->n_notes++;
    s->data_note |= !strncmp(line, "data: ", 6);
    cr_expect(eq(ptr, strchr(line, '\n'), NULL), "a note is one line: %s", line);
}

static void copy_file(const char *from, const char *to) {
    kt_sh("cp '%s' '%s'", from, to);
}

static void on_epoch(void *data, const struct train_epoch_report *e) {
    struct seen *s = data;
    s->in_order &= e->epoch == s->last_epoch + 1 && e->epochs == EPOCHS;
    s->last_epoch = e->epoch;
    if (e->epoch >= 1 && e->epoch <= EPOCHS)
        s->loss[e->epoch - 1] = e->loss;
    s->n_epochs++;
    cr_expect(ge(dbl, e->val_acc, 0.0));
    cr_expect(le(dbl, e->val_acc, 1.0));
    cr_expect(ge(dbl, e->val_weights, 0.0), "with ema the live weights are scored too");
    cr_expect(lt(dbl, e->teacher_agree, 0.0), "no teacher");
    /* The state of an interrupted run: the model file as it stood after
     * epoch copy_at (reported after it is written) and the checkpoint of
     * that epoch (saved after its report, so still on disk at the next). */
    if (s->copy_at && e->epoch == s->copy_at)
        copy_file(s->out_src, s->out_dst);
    if (s->copy_at && e->epoch == s->copy_at + 1)
        copy_file(s->ckpt_src, s->ckpt_dst);
}

static int files_equal(const char *a, const char *b) {
    char cmd[1500];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

Test(train_recipe, runs_reports_and_writes_a_model) {
    struct train_recipe r;
    char out[512], msg[512] = "";
    tiny_recipe(&r, "m", out, sizeof out);
    struct seen s = {.in_order = 1};
    struct train_progress p = {&s, on_note, on_epoch};
    int rc = train_run(&r, &p, msg, sizeof msg);
    cr_assert(eq(int, rc, 0), "%s", msg);
    cr_expect(eq(int, s.n_epochs, EPOCHS));
    cr_expect(s.in_order, "epochs 1..%d in order", EPOCHS);
    cr_expect(s.data_note, "a data: note");
    cr_expect(lt(dbl, s.loss[EPOCHS - 1], s.loss[0]), "loss %g -> %g", s.loss[0],
              s.loss[EPOCHS - 1]);

    struct snn_model m = {0};
    rc = snn_model_load(&m, out, msg, sizeof msg);
    cr_assert(eq(int, rc, 0), "%s", msg);
    cr_expect(eq(int, m.cfg.n_classes, 3));
    cr_expect(eq(str, m.cfg.labels[1], "no"));
    cr_expect(gt(flt, m.cfg.threshold, 0.0f), "calibrated");
    snn_model_free(&m);
}

Test(train_recipe, resume_gives_the_uninterrupted_bytes) {
    struct train_recipe r;
    char out[512], msg[512] = "";
    tiny_recipe(&r, "full", out, sizeof out);
    struct seen s = {.in_order = 1, .copy_at = 2};
    snprintf(s.out_src, sizeof s.out_src, "%s", out);
    snprintf(s.ckpt_src, sizeof s.ckpt_src, "%s.ckpt", out);
    snprintf(s.out_dst, sizeof s.out_dst, "%s/half.kwsm", root);
    snprintf(s.ckpt_dst, sizeof s.ckpt_dst, "%s/half.kwsm.ckpt", root);
    struct train_progress p = {&s, NULL, on_epoch};
    cr_assert(eq(int, train_run(&r, &p, msg, sizeof msg), 0), "%s", msg);

    /* go on from epoch 2 with the same recipe */
    struct seen s2 = {.in_order = 1, .last_epoch = 2};
    struct train_progress p2 = {&s2, NULL, on_epoch};
    char out2[512];
    tiny_recipe(&r, "half", out2, sizeof out2);
    r.resume = 1;
    cr_assert(eq(int, train_run(&r, &p2, msg, sizeof msg), 0), "%s", msg);
    cr_expect(eq(int, s2.n_epochs, EPOCHS - 2), "epochs 3..%d only", EPOCHS);
    cr_expect(s2.in_order);
    cr_expect(files_equal(out, out2), "the model files differ");
    char c1[700], c2[700];
    snprintf(c1, sizeof c1, "%s.ckpt", out);
    snprintf(c2, sizeof c2, "%s.ckpt", out2);
    cr_expect(files_equal(c1, c2), "the last checkpoints differ");
}

/* --select last: every epoch replaces the model before it. */
struct kept {
    int n, best[EPOCHS], last_note;
};

static void on_epoch_kept(void *data, const struct train_epoch_report *e) {
    struct kept *k = data;
    if (e->epoch >= 1 && e->epoch <= EPOCHS)
        k->best[e->epoch - 1] = e->best;
    k->n++;
}

static void on_note_kept(void *data, const char *line) {
    struct kept *k = data;
    k->last_note |= !strncmp(line, "done: the last epoch kept", 25);
}

Test(train_recipe, select_last_keeps_every_epoch_in_turn) {
    struct train_recipe r;
    char out[512], msg[512] = "";
    tiny_recipe(&r, "last", out, sizeof out);
    r.select = TRAIN_SELECT_LAST;
    struct kept k = {0};
    struct train_progress p = {&k, on_note_kept, on_epoch_kept};
    int rc = train_run(&r, &p, msg, sizeof msg);
    cr_assert(eq(int, rc, 0), "%s", msg);
    cr_assert(eq(int, k.n, EPOCHS));
    for (int i = 0; i < EPOCHS; i++)
        cr_expect(k.best[i], "epoch %d kept", i + 1);
    cr_expect(k.last_note, "the done note names the last epoch");
    struct snn_model m = {0};
    cr_assert(eq(int, snn_model_load(&m, out, msg, sizeof msg), 0), "%s", msg);
    snn_model_free(&m);
}

Test(train_recipe, a_recipe_without_a_network_is_a_config_error) {
    struct train_recipe r;
    char out[512], msg[512] = "";
    tiny_recipe(&r, "bad", out, sizeof out);
    r.n_rec = 1; /* two hidden layers, one recurrence kind */
    cr_expect(eq(int, train_run(&r, NULL, msg, sizeof msg), KWS_ECONFIG));
    cr_expect(not(eq(ptr, strstr(msg, "--rec"), NULL)), "%s", msg);
    tiny_recipe(&r, "bad", out, sizeof out);
    r.data = "/nonexistent/kws-recipe";
    int rc = train_run(&r, NULL, msg, sizeof msg);
    cr_expect(lt(int, rc, 0));
    cr_expect(not(eq(int, rc, KWS_ECONFIG)));
    cr_expect(not(eq(ptr, strstr(msg, "/nonexistent/kws-recipe"), NULL)), "%s", msg);

    /* a model file's rows carry their folded BatchNorm: not shared across bands */
    tiny_recipe(&r, "bad", out, sizeof out);
    r.tie_ch = 4;
    r.tie_half = 1;
    r.init = "/nonexistent/start.kwsm";
    cr_expect(eq(int, train_run(&r, NULL, msg, sizeof msg), KWS_EBADFIELD));
    cr_expect(not(eq(ptr, strstr(msg, "--band-ch with --init /nonexistent/start.kwsm"), NULL)),
              "%s", msg);
}

Test(train_recipe, clip_peaks_are_the_detectors_scores) {
    struct train_recipe r;
    char out[512], msg[512] = "";
    tiny_recipe(&r, "ce", out, sizeof out);
    r.epochs = 1;
    cr_assert(eq(int, train_run(&r, NULL, msg, sizeof msg), 0), "%s", msg);
    struct snn_model m = {0};
    cr_assert(eq(int, snn_model_load(&m, out, msg, sizeof msg), 0), "%s", msg);
    const char *labels[] = {"yes", "no", "_silence_"};
    struct dataset ds;
    cr_assert(eq(int, dataset_init(&ds, labels, 3, 16000), 0));
    cr_assert(eq(int, dataset_load(&ds, root, -1, msg, sizeof msg), 0), "%s", msg);
    size_t idx[64];
    size_t n = dataset_split(&ds, DS_TEST, -1, idx);
    cr_assert(eq(sz, n, 3));
    struct clip_eval_opts o = clip_eval_opts_default();
    struct clip_eval_result res;
    cr_assert(eq(int, clip_eval_run(&m, &ds, idx, n, &o, &res), 0));
    cr_expect(eq(sz, res.n, 3));
    int total = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            total += res.confusion[i][j];
    cr_expect(eq(int, total, 3));
    cr_expect(epsilon_eq(dbl, res.accuracy, (double)res.correct / 3.0, 1e-12));

    /* each class has one test clip: its peak is the detector's highest
     * smoothed score of that class over the clip */
    struct ds_aug none;
    struct audio_fe fe = {0};
    struct snn_state st = {0};
    struct kws_detector det = {0};
    struct kws_detector_cfg dc;
    dataset_aug_none(&none);
    kws_detector_cfg_default(&dc, &m.cfg, 1.0f, o.smooth_ms, 0, 10);
    cr_assert(eq(int, audio_fe_init(&fe, &m.cfg.fe), 0));
    cr_assert(eq(int, snn_state_init(&st, &m), 0));
    cr_assert(eq(int, kws_detector_init(&det, &dc), 0));
    static float sp[100 * 256], vo[100 * 3];
    cr_assert(le(int, audio_fe_n_out(&m.cfg.fe) * 100, (int)(sizeof sp / sizeof *sp)));
    for (size_t i = 0; i < n; i++) {
        int y = ds.clips[idx[i]].label;
        cr_assert(eq(int, dataset_render(&ds, idx[i], &none, 0x5eed, &fe, 100, sp, NULL), 0));
        snn_forward(&m, &st, sp, 100, vo);
        kws_detector_reset(&det);
        float best = 0.0f, sc[3];
        struct kws_hit hit;
        for (int t = 0; t < 100; t++) {
            kws_detector_step(&det, vo + t * 3, &hit, sc);
            best = sc[y] > best ? sc[y] : best;
        }
        cr_expect(eq(flt, res.class_peak[y], best), "class %d", y);
    }
    kws_detector_free(&det);
    snn_state_free(&st);
    audio_fe_free(&fe);
    dataset_free(&ds);
    snn_model_free(&m);
}

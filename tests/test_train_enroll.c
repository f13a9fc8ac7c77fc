/* test_train_enroll.c: enrolment of a new word (kws/enroll.h, kws/enroll_record.h).
 *
 * Checking takes: a word with 2 s of room on each side is cut to the word
 * and its padding; a clipped, a silent and a too quiet take are rejected
 * with their reason; a folder of takes at 44.1 kHz is read at 16 kHz with
 * the rejected ones named. Enrolment: a word from six espeak-ng takes
 * against a small pack made at test time (espeak-ng phrases, white noise,
 * and a pack folder named like the word, which must be left out) and four
 * recordings of the user's own (--negatives; one only calibrates), with a
 * tiny recipe (seconds), from the shipped models/commands.kwsm: the model
 * file loads, has the new label, _silence_ and _unknown_, the threshold
 * enroll_run reports and the four recorded takes (of six: two are named as
 * --say names its takes) for the second look; kwsd itself accepts it
 * (--check-config). A take unlike the others (a whistle among the takes)
 * is left out by name before the training, and by enroll_verifier_odd
 * against speech that is not the word, which keeps the other takes.
 * Recording: enroll_record takes three words from ALSA's file plugin
 * (DESIGN.md) and saves them as take-NNN.wav files that enroll_takes_load
 * accepts.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <sndfile.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kws/dataset.h"
#include "kws/enroll.h"
#include "kws/enroll_record.h"
#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/snn.h"
#include "kws/verify.h"
#include "train_test.h"

#define MODEL KWSD_SOURCE_DIR "/models/commands.kwsm"
#define KWSD KWSD_BINARY_DIR "/daemon/kwsd"

static char root[] = "/tmp/kws-enroll-XXXXXX";

static void setup(void) {
    cr_assert(not(eq(ptr, mkdtemp(root), NULL)));
}

static void teardown(void) {
    tt_rmtree(root);
}

/* n samples: room noise at -70 dBFS, a "word" (a buzz at f0 Hz with
 * harmonics, amplitude amp, faded in and out over 20 ms) from a to b. */
static float *buzz(size_t n, size_t a, size_t b, float amp, float f0) {
    float *x = malloc(n * sizeof *x);
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.0011f;
        if (i >= a && i < b) {
            float t = (float)i / 16000.0f, fade = 1.0f;
            size_t r = 320;
            if (i - a < r)
                fade = (float)(i - a) / r;
            if (b - i < r)
                fade = (float)(b - i) / r;
            float v = 0.0f;
            for (int h = 1; h <= 5; h++)
                v += sinf(2.0f * 3.14159265f * f0 * h * t) / h;
            v *= amp * fade;
            x[i] += v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v;
        }
    }
    return x;
}

/* The same at 220 Hz: a take of the word. */
static float *take(size_t n, size_t a, size_t b, float amp) {
    return buzz(n, a, b, amp, 220.0f);
}

/* ==== Checking takes ==== */

Test(enroll_take, word_with_two_seconds_of_room_around_it) {
    struct enroll_take_rules t;
    enroll_take_rules_default(&t);
    size_t n = 16000 * 9 / 2, on, off; /* 2 s room, 0.5 s word, 2 s room */
    float *x = take(n, 32000, 40000, 0.3f);
    char why[256] = "";
    cr_assert(eq(int, enroll_take_check(x, n, 16000, &t, &on, &off, why, sizeof why), 0), "%s",
              why);
    /* the word and 100 ms on each side, to within a 10 ms frame and the fades */
    cr_expect(on >= 32000 - 1600 - 480 && on <= 32000 - 1600 + 480, "on %zu", on);
    cr_expect(off >= 40000 + 1600 - 480 && off <= 40000 + 1600 + 480, "off %zu", off);
    free(x);
}

Test(enroll_take, a_click_far_from_the_word_is_left_out_even_when_louder) {
    struct enroll_take_rules t;
    enroll_take_rules_default(&t);
    size_t n = 16000 * 4, on, off;
    float *x = take(n, 24000, 32000, 0.3f);
    for (size_t i = 2000; i < 2160; i++) /* a 10 ms click 1.4 s before the word, louder */
        x[i] += 0.9f * ((i & 1) ? 1.0f : -1.0f);
    for (size_t i = 56000; i < 56160; i++) /* and a quieter one 1.5 s after it */
        x[i] += 0.2f * ((i & 1) ? 1.0f : -1.0f);
    char why[256] = "";
    cr_assert(eq(int, enroll_take_check(x, n, 16000, &t, &on, &off, why, sizeof why), 0), "%s",
              why);
    cr_expect(on > 24000 - 1600 - 480, "on %zu: the first click was taken for the word", on);
    cr_expect(off < 32000 + 1600 + 480, "off %zu: the second click was taken for the word", off);
    free(x);
}

/* A 3 s take of a word at 1.0-1.4 s (the buzz of take() at 0.3) and a
 * second sound at samples a..b (the same buzz at amp): the word's start and
 * end as enroll_take_check finds them with the default rules, the pause
 * bridged up to max_pause_ms (< 0: the default's). */
static void word_with_part(size_t a, size_t b, float amp, int max_pause_ms, size_t *on,
                           size_t *off) {
    struct enroll_take_rules t;
    enroll_take_rules_default(&t);
    if (max_pause_ms >= 0)
        t.max_pause_ms = max_pause_ms;
    size_t n = 16000 * 3;
    float *x = take(n, 16000, 22400, 0.3f), *p = take(n, a, b, amp), *room = take(n, n, n, amp);
    for (size_t i = a; i < b; i++)
        x[i] += p[i] - room[i]; /* the part alone, not the room noise twice */
    char why[256] = "";
    cr_assert(eq(int, enroll_take_check(x, n, 16000, &t, on, off, why, sizeof why), 0), "%s", why);
    free(x);
    free(p);
    free(room);
}

Test(enroll_take, a_word_said_with_a_pause_is_kept_whole) {
    size_t on, off;
    /* "view" 0.4 s, a 0.4 s pause, "glass" 0.35 s a little quieter */
    word_with_part(28800, 34400, 0.2f, -1, &on, &off);
    cr_expect(on <= 16000 - 1600 + 480 && off >= 34400 + 1600 - 480,
              "%zu..%zu: the word's second part was left out", on, off);
    /* with the pause bridged no further than the gap (250 ms), the louder part alone */
    word_with_part(28800, 34400, 0.2f, 250, &on, &off);
    cr_expect(off < 28800, "off %zu: a pause past the gap was bridged", off);
}

Test(enroll_take, a_short_or_faint_sound_after_a_pause_is_no_part_of_the_word) {
    static const struct {
        size_t a, b;
        float amp;
        const char *what;
    } cases[] = {
        {28800, 29600, 0.3f, "a knock (50 ms, 0.4 s after the word): too short for a syllable"},
        {28800, 35200, 0.03f, "a hum (0.4 s, 20 dB under the word): under a tenth of its energy"},
        {32000, 37600, 0.3f, "a part of the word 0.6 s after it: past max_pause_ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t on, off;
        word_with_part(cases[i].a, cases[i].b, cases[i].amp, -1, &on, &off);
        cr_expect(off < cases[i].a, "off %zu: taken for a part of the word: %s", off,
                  cases[i].what);
    }
}

/* Whatever the sound, the word found lies inside it: shorter than a frame,
 * silent, noise, and a loud frame every other frame (as many runs as a
 * take can hold: with a gap under a frame, each is its own), with and
 * without the pause rule. */
Test(enroll_take, the_word_found_lies_inside_any_sound) {
    static const size_t lens[] = {0, 1, 159, 160, 161, 16000, 48000};
    static const int gaps[][2] = {{250, 500}, {250, 250}, {5, 500}, {5, 5}, {0, 500}};
    uint32_t s = 1;
    for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
        size_t n = lens[l];
        float *x = malloc((n ? n : 1) * sizeof *x);
        for (int kind = 0; kind < 3; kind++) {
            for (size_t i = 0; i < n; i++) {
                s = s * 1664525u + 1013904223u;
                float r = (float)(s >> 8) / 16777216.0f - 0.5f;
                x[i] = kind == 0 ? 0.0f : kind == 1 ? r : (i / 160) % 2 ? 0.0f : 2.0f * r;
            }
            for (size_t g = 0; g < sizeof gaps / sizeof *gaps; g++) {
                int32_t on = -1, off = -1;
                dataset_find_word(x, (int32_t)n, 16000, 30.0f, gaps[g][0], gaps[g][1], &on, &off);
                cr_expect(on >= 0 && on <= off && (size_t)off <= n,
                          "%zu samples, sound %d, gap %d, pause %d: %d..%d", n, kind, gaps[g][0],
                          gaps[g][1], on, off);
            }
        }
        free(x);
    }
}

Test(enroll_take, clipped_silent_and_quiet_takes_are_rejected) {
    struct enroll_take_rules t;
    enroll_take_rules_default(&t);
    size_t n = 32000, on, off;
    char why[256];
    float *x = take(n, 8000, 16000, 3.0f); /* driven far past full scale */
    cr_expect(
        eq(int, enroll_take_check(x, n, 16000, &t, &on, &off, why, sizeof why), KWS_EDATASET));
    cr_expect(not(eq(ptr, strstr(why, "clipped"), NULL)), "%s", why);
    free(x);
    x = calloc(n, sizeof *x); /* digital silence */
    cr_expect(
        eq(int, enroll_take_check(x, n, 16000, &t, &on, &off, why, sizeof why), KWS_EDATASET));
    cr_expect(not(eq(ptr, strstr(why, "silent"), NULL)), "%s", why);
    free(x);
    x = take(n, 8000, 16000, 0.002f); /* the word at about -60 dBFS */
    cr_expect(
        eq(int, enroll_take_check(x, n, 16000, &t, &on, &off, why, sizeof why), KWS_EDATASET));
    cr_expect(not(eq(ptr, strstr(why, "too quiet"), NULL)), "%s", why);
    free(x);
}

/* A note collector for the progress callbacks. */
struct notes {
    char text[16384];
};

static void add_note(void *data, const char *line) {
    struct notes *n = data;
    strncat(n->text, line, sizeof n->text - strlen(n->text) - 2);
    strcat(n->text, "\n");
}

Test(enroll_take, a_folder_at_44k_is_read_at_16k_and_rejects_are_named, .init = setup,
     .fini = teardown) {
    char path[512];
    size_t n = 44100 * 2;
    float *good = malloc(n * sizeof *good), *bad = calloc(n, sizeof *bad);
    float *src = take(32000, 8000, 16000, 0.3f);
    for (size_t i = 0; i < n; i++) /* the 16 kHz take played at 44.1 kHz (held samples) */
        good[i] = src[(size_t)((double)i * 16000.0 / 44100.0) % 32000];
    snprintf(path, sizeof path, "%s/a.flac", root);
    tt_write_wav(path, good, n, 44100, SF_FORMAT_FLAC | SF_FORMAT_PCM_16);
    snprintf(path, sizeof path, "%s/b.wav", root);
    tt_write_wav(path, bad, n, 44100, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    struct enroll_take_rules t;
    enroll_take_rules_default(&t);
    struct enroll_takes ts;
    struct notes nt = {""};
    const struct enroll_progress p = {&nt, add_note, NULL};
    char msg[256];
    cr_assert(eq(int, enroll_takes_load(&ts, root, 16000, &t, &p, msg, sizeof msg), 0), "%s", msg);
    cr_expect(eq(sz, ts.n, 1));
    cr_expect(eq(sz, ts.n_rejected, 1));
    cr_expect(eq(str, ts.t[0].file, "a.flac"));
    cr_expect(ts.t[0].n > 16000 * 6 / 10 && ts.t[0].n < 16000 * 8 / 10, "%zu samples", ts.t[0].n);
    cr_expect(not(eq(ptr, strstr(nt.text, "b.wav: rejected: silent"), NULL)), "%s", nt.text);
    enroll_takes_free(&ts);
    free(good);
    free(bad);
    free(src);
}

/* ==== The second look's cut from speech that is not the word ==== */

/* Five buzz takes; a folder of the same buzz (its 2 % must pass: the cut
 * goes down, not below its floor), one of pure tones far from it (the cut
 * goes up to its ceiling), a folder with no sound file (the takes' own
 * cut). The noise under each file depends on the seed and the file, not
 * on the threads. */
Test(enroll_verify, the_cut_follows_the_speech_it_must_refuse, .init = setup, .fini = teardown) {
    struct enroll_take tk[5];
    for (int i = 0; i < 5; i++) {
        tk[i].n = 24000;
        tk[i].x = take(tk[i].n, 4000, 12000 + 800 * (size_t)i, 0.3f);
    }
    struct kws_frontend_cfg fe;
    audio_fe_cfg_default(&fe);
    struct enroll_take_rules rules;
    enroll_take_rules_default(&rules);
    struct kws_verifier v;
    cr_assert(eq(int, enroll_verifier(&v, &fe, 0, tk, 5, &rules, 1, NULL), 0));
    float own = v.cut;
    char same[512], tone[512], none[512], path[600];
    snprintf(same, sizeof same, "%s/same", root);
    snprintf(tone, sizeof tone, "%s/tone", root);
    snprintf(none, sizeof none, "%s/none", root);
    kt_sh("mkdir -p %s %s %s", same, tone, none);
    for (int i = 0; i < 6; i++) {
        float *x = take(24000, 4000, 11000 + 1000 * (size_t)i, 0.25f);
        snprintf(path, sizeof path, "%s/%d.wav", same, i);
        tt_write_wav(path, x, 24000, 16000, TT_WAV16);
        free(x);
        snprintf(path, sizeof path, "%s/%d.wav", tone, i);
        tt_write_word(path, 7u + (uint32_t)i, 1500.0f + 100.0f * (float)i, 300, 0);
    }
    size_t heard = 0;
    const char *d_same[] = {same}, *d_tone[] = {tone}, *d_none[] = {none}, *d_both[] = {same, tone};
    float c = enroll_verifier_cut_from(&v, &fe, d_same, 1, &rules, 0.02, 1, 1, &heard);
    cr_expect(eq(sz, heard, 6));
    cr_expect(c < own && c >= (float)ENROLL_CUT_LO * own, "%f against the takes' %f", (double)c,
              (double)own);
    c = enroll_verifier_cut_from(&v, &fe, d_tone, 1, &rules, 0.02, 1, 1, &heard);
    cr_expect(eq(sz, heard, 6));
    cr_expect(eq(flt, c, (float)(ENROLL_CUT_HI * own)), "%f against the takes' %f", (double)c,
              (double)own);
    c = enroll_verifier_cut_from(&v, &fe, d_none, 1, &rules, 0.02, 1, 1, &heard);
    cr_expect(eq(sz, heard, 0));
    cr_expect(eq(flt, c, own));
    float one = enroll_verifier_cut_from(&v, &fe, d_both, 2, &rules, 0.4, 5, 1, &heard);
    cr_expect(eq(sz, heard, 12));
    float two = enroll_verifier_cut_from(&v, &fe, d_both, 2, &rules, 0.4, 5, 2, &heard);
    cr_expect(eq(sz, heard, 12));
    cr_expect(eq(flt, one, two), "1 thread %f, 2 threads %f (own %f)", (double)one, (double)two,
              (double)own);
    kws_verifier_free(&v);
    for (int i = 0; i < 5; i++)
        free(tk[i].x);
}

/* Six takes of the word and one of a whistle, and speech that is not the
 * word: the whistle is further from the takes than most of that speech, so
 * it is left out and the verifier is the six takes' own; with the six alone
 * nothing is left out; with no speech to compare, nothing either. */
Test(enroll_verify, a_take_unlike_the_others_is_left_out, .init = setup, .fini = teardown) {
    struct enroll_take tk[7];
    for (int i = 0; i < 7; i++) {
        tk[i].n = 24000;
        tk[i].x = i < 6 ? take(tk[i].n, 4000, 12000 + 600 * (size_t)i, 0.3f)
                        : buzz(tk[i].n, 4000, 12000, 0.3f, 1900.0f);
    }
    struct kws_frontend_cfg fe;
    audio_fe_cfg_default(&fe);
    struct enroll_take_rules rules;
    enroll_take_rules_default(&rules);
    char other[512], none[512], path[600];
    snprintf(other, sizeof other, "%s/other", root);
    snprintf(none, sizeof none, "%s/none", root);
    kt_sh("mkdir -p %s %s", other, none);
    for (int i = 0; i < 8; i++) { /* other words: buzzes at other pitches */
        float *x = buzz(24000, 4000, 11000 + 500 * (size_t)i, 0.3f, 240.0f + 10.0f * (float)i);
        snprintf(path, sizeof path, "%s/%d.wav", other, i);
        tt_write_wav(path, x, 24000, 16000, TT_WAV16);
        free(x);
    }
    const char *d_other[] = {other}, *d_none[] = {none};
    struct kws_verifier v, six;
    float loo[7], bar;
    char odd[7];
    size_t n_odd;
    cr_assert(eq(int, enroll_verifier(&six, &fe, 0, tk, 6, &rules, 1, NULL), 0));
    cr_assert(eq(int, enroll_verifier(&v, &fe, 0, tk, 7, &rules, 1, loo), 0));
    cr_expect(eq(flt, v.cut, loo[6]), "with seven takes the cut keeps them all: the whistle's");
    kws_verifier_free(&v);
    cr_assert(
        eq(int, enroll_verifier_odd(&v, &fe, 0, tk, 7, &rules, 1, d_other, 1, 1, odd, &n_odd, &bar),
           0));
    cr_expect(eq(sz, n_odd, 1));
    cr_expect(eq(int, odd[6], 1), "the whistle (%g against the others; the speech's median %g)",
              (double)loo[6], (double)bar);
    for (int i = 0; i < 6; i++)
        cr_expect(eq(int, odd[i], 0), "take %d (%g) is kept", i, (double)loo[i]);
    cr_expect(eq(int, v.n_takes, 6));
    cr_expect(eq(flt, v.cut, six.cut), "the cut is the six takes' own");
    cr_expect(lt(flt, v.cut, loo[6]));
    kws_verifier_free(&v);
    cr_assert(
        eq(int, enroll_verifier_odd(&v, &fe, 0, tk, 6, &rules, 1, d_other, 1, 1, odd, &n_odd, &bar),
           0));
    cr_expect(eq(sz, n_odd, 0));
    cr_expect(eq(int, v.n_takes, 6));
    kws_verifier_free(&v);
    cr_assert(eq(int,
                 enroll_verifier_odd(&v, &fe, 0, tk, 7, &rules, 1, d_none, 1, 1, odd, &n_odd, &bar),
                 0));
    cr_expect(eq(sz, n_odd, 0), "no speech heard: nothing to compare with");
    cr_expect(eq(int, v.n_takes, 7));
    kws_verifier_free(&v);
    kws_verifier_free(&six);
    for (int i = 0; i < 7; i++)
        free(tk[i].x);
}

/* ==== Takes said by speech synthesis ==== */

/* enroll_say's takes pass the take checks, each voice named in its file,
 * and its text reaches the synthesiser as text, never through a shell. */
Test(enroll_say, takes_that_pass_the_checks_and_text_that_stays_text, .init = setup,
     .fini = teardown, .timeout = 60) {
    char dir[512], msg[256] = "", mark[512];
    snprintf(dir, sizeof dir, "%s/say", root);
    struct enroll_say_opts o = {"view_glass", dir, 5};
    struct notes nt = {""};
    const struct enroll_progress p = {&nt, add_note, NULL};
    cr_assert(eq(int, enroll_say(&o, &p, msg, sizeof msg), 0), "%s", msg);
    cr_expect(not(eq(ptr, strstr(nt.text, "5 takes of \"view glass\""), NULL)), "%s", nt.text);
    struct enroll_take_rules t;
    enroll_take_rules_default(&t);
    struct enroll_takes ts;
    cr_assert(eq(int, enroll_takes_load(&ts, dir, 16000, &t, NULL, msg, sizeof msg), 0), "%s", msg);
    cr_expect(eq(sz, ts.n, 5), "%zu takes accepted", ts.n);
    cr_expect(eq(str, ts.t[0].file, "say-000-espeak-en-us.wav"));
    enroll_takes_free(&ts);

    /* the same names again: saying twice replaces the takes, adds none */
    cr_assert(eq(int, enroll_say(&o, NULL, msg, sizeof msg), 0), "%s", msg);
    kt_sh("test $(ls %s | wc -l) -eq 5", dir);

    /* through a shell, this text would make root/x */
    cr_assert(eq(int, chdir(root), 0));
    snprintf(mark, sizeof mark, "%s/x", root);
    snprintf(dir, sizeof dir, "%s/say2", root);
    struct enroll_say_opts bad = {"a';touch x;'$(touch x)", dir, 1};
    cr_expect(eq(int, enroll_say(&bad, NULL, msg, sizeof msg), 0), "%s", msg);
    cr_expect(not(eq(int, access(mark, F_OK), 0)), "the text ran as a command");

    struct enroll_say_opts none = {"", dir, 1};
    cr_expect(eq(int, enroll_say(&none, NULL, msg, sizeof msg), KWS_ECONFIG));
    cr_expect(not(eq(ptr, strstr(msg, "empty"), NULL)), "%s", msg);
}

/* ==== Enrolment ==== */

/* Six espeak-ng takes of "lights" (with room noise around them), and a pack:
 * words/{other,lights}/ phrases, unknown/{door,lights}/ single words,
 * noise/ white noise. */
static void make_takes_and_pack(void) {
    static const char *const voices[] = {"en-us",    "en-gb", "en-us+f3",
                                         "en-gb+m3", "en+f4", "en-us+m7"};
    kt_sh("mkdir -p %s/takes %s/pack/words/other %s/pack/words/lights %s/pack/noise "
          "%s/pack/unknown/door %s/pack/unknown/lights",
          root, root, root, root, root, root);
    for (int i = 0; i < 2; i++)
        kt_sh("espeak-ng -v %s -w %s/pack/unknown/door/%d.wav door", voices[i], root, i);
    kt_sh("espeak-ng -w %s/pack/unknown/lights/0.wav lights", root);
    /* the last two named as --say names its takes: the second look leaves them out */
    for (int i = 0; i < 6; i++)
        kt_sh("espeak-ng -v %s -s %d -w %s/t.wav lights && sox -q %s/t.wav -r 22050 "
              "%s/takes/%s%d.wav pad 1 1",
              voices[i], 140 + 10 * i, root, root, root, i < 4 ? "" : ENROLL_SAY_PREFIX "00", i);
    static const char *const phrases[] = {"turn it up",     "what time is it", "good morning",
                                          "play something", "open the door",   "the weather"};
    for (int i = 0; i < 6; i++)
        kt_sh("espeak-ng -v %s -w %s/pack/words/other/%d.wav '%s'", voices[i], root, i, phrases[i]);
    kt_sh("espeak-ng -w %s/pack/words/lights/0.wav 'lights'", root);
    kt_sh("sox -q -n -r 16000 -b 16 -c 1 %s/pack/noise/white.wav synth 4 whitenoise vol 0.05",
          root);
}

/* The paths of make_takes_and_pack's word and pack, and the model to write. */
struct lights {
    char takes[512], pack[512], out[512], own[512];
};

/* Makes the takes and the pack; r: the default recipe for "lights" from those takes
 * (four or more of them, two held out), one thread. */
static void lights_recipe(struct enroll_recipe *r, struct lights *L) {
    make_takes_and_pack();
    snprintf(L->takes, sizeof L->takes, "%s/takes", root);
    snprintf(L->pack, sizeof L->pack, "%s/pack", root);
    snprintf(L->out, sizeof L->out, "%s/lights.kwsm", root);
    snprintf(L->own, sizeof L->own, "%s/own", root);
    enroll_recipe_default(r);
    r->n_words = 1;
    snprintf(r->words[0], SNN_LABEL_LEN, "lights");
    r->takes[0] = L->takes;
    r->pack = L->pack;
    r->init = MODEL;
    r->out = L->out;
    r->min_takes = 4;
    r->n_val = 2;
    r->threads = 1;
}

/* A recipe that runs in seconds: one epoch of a few windows, no mining, a
 * short calibration. */
static void tiny_recipe(struct enroll_recipe *r) {
    r->epochs = 1;
    r->windows = 8;
    r->batch = 4;
    r->mine_every = 0;
    r->val_passes = 1;
    r->calib_hours = 0.01f;
}

Test(enroll, a_word_from_six_synthetic_takes, .init = setup, .fini = teardown, .timeout = 240) {
    struct lights L;
    struct enroll_recipe r;
    char msg[1024] = "";
    lights_recipe(&r, &L);
    tiny_recipe(&r);
    r.train_unknown = 1; /* one "door" trains, both calibrate */
    r.cut_pass = 0.02f; /* the check's cut from the pack's phrases (not the default) */
    /* four recordings of the user's own: three train, one only calibrates */
    static const char *const own[] = {"light rain", "the night", "right now", "bright lines"};
    for (int i = 0; i < 4; i++)
        kt_sh("mkdir -p %s && espeak-ng -v %s -w %s/%d.wav '%s'", L.own, i % 2 ? "en-gb" : "en-us",
              L.own, i, own[i]);
    r.negatives = L.own;
    struct notes nt = {""};
    const struct enroll_progress p = {&nt, add_note, NULL};
    struct enroll_result res;
    cr_assert(eq(int, enroll_run(&r, &p, &res, msg, sizeof msg), 0), "%s\n%s", msg, nt.text);
    cr_expect(eq(int, res.n_takes[0], 6), "%s", nt.text);
    cr_expect(not(eq(ptr, strstr(nt.text, "lights: 6 takes: from fewer than 20"), NULL)), "%s",
              nt.text);
    cr_expect(not(eq(ptr, strstr(nt.text, "pack: lights left out of the negatives"), NULL)), "%s",
              nt.text);
    cr_expect(not(eq(ptr, strstr(nt.text, "pack: lights left out of the unknown words"), NULL)),
              "%s", nt.text);
    cr_expect(not(eq(ptr, strstr(nt.text, "pack: 2 unknown words (1 of them trained on"), NULL)),
              "%s", nt.text);
    cr_expect(res.cal_hours > 0.0);
    cr_expect(eq(int, res.n_held, 2 * 4), "two held-out takes, four passes");

    struct snn_model m = {0};
    cr_assert(eq(int, snn_model_load(&m, L.out, msg, sizeof msg), 0), "%s", msg);
    cr_expect(eq(int, m.cfg.n_classes, 3));
    cr_expect(eq(str, m.cfg.labels[0], "lights"));
    cr_expect(eq(str, m.cfg.labels[1], "_silence_"));
    cr_expect(eq(str, m.cfg.labels[2], "_unknown_"));
    cr_expect(m.cfg.threshold > 0.0f && m.cfg.threshold <= 1.0f, "%f", (double)m.cfg.threshold);
    cr_expect(eq(flt, m.cfg.threshold, res.threshold));
    /* the second look: the four recorded takes, the word's label, the cut printed */
    cr_expect(eq(int, m.verify.n_takes, 4));
    cr_expect(eq(int, res.n_verify, 4));
    cr_expect(eq(int, m.verify.label, 0));
    cr_expect(eq(int, m.verify.kind, KWS_VERIFY_CEPSTRUM));
    cr_expect(eq(int, m.verify.n_feat, KWS_VERIFY_CEPS));
    cr_expect(gt(flt, m.verify.cut, 0.0f));
    cr_expect(eq(flt, m.verify.cut, res.verify_cut));
    cr_expect(not(eq(ptr, strstr(nt.text, "negatives: 4 recordings of your own from"), NULL)), "%s",
              nt.text);
    cr_expect(not(eq(ptr, strstr(nt.text, "(1 of them for the calibration alone)"), NULL)), "%s",
              nt.text);
    /* its cut from the pack's six "other" phrases ("lights" is left out) and
     * the three of the user's the training hears */
    cr_expect(eq(int, res.cut_heard, 9), "%s", nt.text);
    cr_expect(res.verify_cut >= (float)ENROLL_CUT_LO * res.verify_cut_takes * 0.999f &&
                  res.verify_cut <= (float)ENROLL_CUT_HI * res.verify_cut_takes * 1.001f,
              "cut %f, the takes' %f", (double)res.verify_cut, (double)res.verify_cut_takes);
    cr_expect(not(eq(ptr, strstr(nt.text, "from 9 pack phrases"), NULL)), "%s", nt.text);
    snn_model_free(&m);

    /* kwsd loads it as its model */
    if (access(KWSD, X_OK) == 0) {
        char yaml[600];
        snprintf(yaml, sizeof yaml, "%s/kwsd.yaml", root);
        FILE *f = fopen(yaml, "w");
        cr_assert(not(eq(ptr, f, NULL)));
        fprintf(f, "model:\n  path: %s\n", L.out);
        fclose(f);
        kt_sh("%s --config %s --check-config >/dev/null 2>&1", KWSD, yaml);
    }
}

/* A whistle among the takes is left out before the training, by name, and
 * the second look keeps the four recorded takes of the word. */
Test(enroll, a_take_unlike_the_others_is_left_out_by_name, .init = setup, .fini = teardown,
     .timeout = 240) {
    struct lights L;
    struct enroll_recipe r;
    char msg[1024] = "";
    lights_recipe(&r, &L);
    kt_sh("sox -q -n -r 16000 -b 16 -c 1 %s/whistle.wav synth 0.5 sine 1900 vol 0.3 pad 1 1",
          L.takes);
    tiny_recipe(&r);
    struct notes nt = {""};
    const struct enroll_progress p = {&nt, add_note, NULL};
    struct enroll_result res;
    cr_assert(eq(int, enroll_run(&r, &p, &res, msg, sizeof msg), 0), "%s\n%s", msg, nt.text);
    cr_expect(eq(int, res.n_odd, 1), "%s", nt.text);
    cr_expect(eq(int, res.n_takes[0], 6), "seven accepted, the whistle left out\n%s", nt.text);
    cr_expect(not(eq(ptr, strstr(nt.text, "whistle.wav: left out"), NULL)), "%s", nt.text);
    cr_expect(eq(int, res.n_verify, 4), "%s", nt.text);
}

/* --negatives: a folder that is not there, or holds no sound, is named
 * before any training. */
Test(enroll, own_negatives_missing_or_empty_are_named, .init = setup, .fini = teardown) {
    struct lights L;
    struct enroll_recipe r;
    char msg[1024] = "";
    lights_recipe(&r, &L);
    r.negatives = L.own;
    struct enroll_result res;
    cr_expect(lt(int, enroll_run(&r, NULL, &res, msg, sizeof msg), 0));
    cr_expect(not(eq(ptr, strstr(msg, "--negatives "), NULL)), "%s", msg);
    cr_expect(not(eq(ptr, strstr(msg, "no such folder"), NULL)), "%s", msg);
    kt_sh("mkdir -p %s && echo not a sound > %s/notes.txt", L.own, L.own);
    cr_expect(eq(int, enroll_run(&r, NULL, &res, msg, sizeof msg), KWS_EDATASET));
    cr_expect(not(eq(ptr, strstr(msg, "no sound files (WAV, FLAC or Ogg) in it"), NULL)), "%s",
              msg);
    cr_expect(not(eq(ptr, strstr(msg, L.own), NULL)), "%s", msg);
    cr_expect(eq(int, access(L.out, F_OK), -1), "no model written");
}

Test(enroll, a_word_of_the_starting_model_is_refused, .init = setup, .fini = teardown) {
    struct enroll_recipe r;
    enroll_recipe_default(&r);
    r.n_words = 1;
    snprintf(r.words[0], SNN_LABEL_LEN, "yes");
    r.takes[0] = root;
    r.pack = root;
    r.init = MODEL;
    r.out = "/nonexistent/x.kwsm";
    struct enroll_result res;
    char msg[512] = "";
    cr_expect(eq(int, enroll_run(&r, NULL, &res, msg, sizeof msg), KWS_ECONFIG));
    cr_expect(not(eq(ptr, strstr(msg, "'yes' is already a label"), NULL)), "%s", msg);
}

/* ==== Recording ==== */

Test(enroll_record, three_takes_through_alsa_file_plugin, .init = setup, .fini = teardown,
     .timeout = 120) {
    /* three words, 1.5 s apart, then 4 s of quiet: 16 kHz s16 raw */
    kt_sh("cd %s && espeak-ng -v en-us -w a.wav lights && espeak-ng -v en-gb -w b.wav lights && "
          "espeak-ng -v en-us+f3 -w c.wav lights && "
          "sox -q -n -r 22050 -c 1 -b 16 s.wav trim 0 1.5 && sox -q -n -r 22050 -c 1 -b 16 e.wav "
          "trim 0 4 && sox -q s.wav a.wav s.wav b.wav s.wav c.wav e.wav -r 16000 -t raw "
          "-e signed -b 16 audio.raw",
          root);
    char conf[600], path[700];
    snprintf(conf, sizeof conf, "%s/asound.conf", root);
    kt_write_testmic(root, "audio.raw");
    snprintf(path, sizeof path, "/usr/share/alsa/alsa.conf:%s", conf);
    setenv("ALSA_CONFIG_PATH", path, 1);

    char dir[600], msg[512] = "";
    snprintf(dir, sizeof dir, "%s/takes/lights", root);
    struct enroll_take_rules t;
    enroll_take_rules_default(&t);
    struct notes nt = {""};
    const struct enroll_progress p = {&nt, add_note, NULL};
    const struct enroll_record_opts o = {"testmic", "lights", dir, 3};
    cr_assert(eq(int, enroll_record(&o, &t, &p, msg, sizeof msg), 0), "%s\n%s", msg, nt.text);
    cr_expect(not(eq(ptr, strstr(nt.text, "say lights now (3/3)"), NULL)), "%s", nt.text);
    for (int i = 1; i <= 3; i++) {
        snprintf(path, sizeof path, "%s/take-%03d.wav", dir, i);
        cr_expect(eq(int, access(path, R_OK), 0), "%s missing\n%s", path, nt.text);
    }
    struct enroll_takes ts;
    cr_assert(eq(int, enroll_takes_load(&ts, dir, 16000, &t, &p, msg, sizeof msg), 0), "%s", msg);
    cr_expect(eq(sz, ts.n, 3), "%s", nt.text);
    for (size_t i = 0; i < ts.n; i++) /* each take holds one word, not two */
        cr_expect(ts.t[i].n < 16000 * 3 / 2, "take %zu: %zu samples", i, ts.t[i].n);
    enroll_takes_free(&ts);
}

/* ==== The program ==== */

#define ENROLL_BIN KWSD_BINARY_DIR "/tools/kwsd-enroll"

Test(enroll_tool, defaults_come_from_the_library) {
    static char out[8192];
    cr_assert(eq(int, kt_run(out, sizeof out, "%s --print-defaults", ENROLL_BIN), 0), "%s", out);
    struct enroll_recipe r;
    enroll_recipe_default(&r);
    char line[64];
    snprintf(line, sizeof line, "--epochs %d\n", r.epochs);
    cr_expect(not(eq(ptr, strstr(out, line), NULL)), "%s", out);
    snprintf(line, sizeof line, "--windows %d\n", r.windows);
    cr_expect(not(eq(ptr, strstr(out, line), NULL)), "%s", out);
    snprintf(line, sizeof line, "--val-takes %d\n", r.n_val);
    cr_expect(not(eq(ptr, strstr(out, line), NULL)), "%s", out);
    cr_expect(eq(int, kt_run(out, sizeof out, "%s --takes /tmp", ENROLL_BIN), 2));
    cr_expect(not(eq(ptr, strstr(out, "--word NAME (or --words-from DIR) is needed"), NULL)), "%s",
              out);
    cr_expect(eq(int, kt_run(out, sizeof out, "%s --word x --record --takes 1000", ENROLL_BIN), 2));
    cr_expect(
        not(eq(ptr, strstr(out, "--takes: with --record, a number of takes in [3, 100]"), NULL)),
        "%s", out);
    /* a --negatives folder that is not there is named before any take is recorded */
    cr_expect(eq(
        int,
        kt_run(out, sizeof out, "%s --word x --record --negatives /nonexistent/fired", ENROLL_BIN),
        2));
    cr_expect(not(eq(ptr, strstr(out, "--negatives /nonexistent/fired: no such folder"), NULL)),
              "%s", out);
}

Test(enroll_tool, two_words_from_a_folder, .init = setup, .fini = teardown, .timeout = 240) {
    make_takes_and_pack();
    static const char *const voices[] = {"en-us",    "en-gb", "en-us+f3",
                                         "en-gb+m3", "en+f4", "en-us+m7"};
    kt_sh("mkdir -p %s/words/music && mv %s/takes %s/words/lights", root, root, root);
    for (int i = 0; i < 6; i++)
        kt_sh("espeak-ng -v %s -s %d -w %s/words/music/%d.wav music", voices[i], 140 + 10 * i, root,
              i);
    static char out[32768];
    int st =
        kt_run(out, sizeof out,
               "%s --words-from %s/words --pack %s/pack --init %s --out %s/two.kwsm --epochs 1 "
               "--windows 8 --batch 4 --mine-every 0 --val-takes 2 --val-passes 1 --min-takes 4 "
               "--calib-hours 0.01 --threads 1",
               ENROLL_BIN, root, root, MODEL, root);
    cr_assert(eq(int, st, 0), "%s", out);
    cr_expect(not(eq(ptr, strstr(out, "    path: "), NULL)), "%s", out);
    cr_expect(not(eq(ptr, strstr(out, "held-out takes"), NULL)), "%s", out);
    /* a threshold the pack did not choose (the lowest tried) says so */
    cr_expect(eq(int, !strstr(out, "threshold 0.200: "),
                 !strstr(out, "note: the pack's negatives keep within the budget (1 per hour) "
                              "even at 0.200, the lowest threshold tried")),
              "%s", out);
    char path[600], msg[256];
    snprintf(path, sizeof path, "%s/two.kwsm", root);
    struct snn_model m = {0};
    cr_assert(eq(int, snn_model_load(&m, path, msg, sizeof msg), 0), "%s", msg);
    cr_expect(eq(int, m.cfg.n_classes, 4));
    cr_expect(eq(str, m.cfg.labels[0], "lights"));
    cr_expect(eq(str, m.cfg.labels[1], "music"));
    snn_model_free(&m);
}

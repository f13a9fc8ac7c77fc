/* test_tools_options.c: kwsd-train's, kwsd-eval's and kwsd-enroll's option tables, through
 * the programs.
 *
 * Each test runs the built program with its stdout and stderr in files. Bad
 * values (an unknown enum word, a number out of range or not a number, a
 * missing value, an unknown option, a list of the wrong length) must end it
 * with status 2 and one line on stderr that names the option and the values
 * it accepts. --print-defaults must give the defaults of the library
 * (train_recipe_default, and below it train_hparams_default,
 * dataset_aug_default, dataset_window_default, stream_eval_opts_default,
 * audio_fe_cfg_default; config_defaults for kwsd-eval) wherever the library
 * has one, and the tools' own values elsewhere; the documented option
 * values must pass the tables.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kws/clip_eval.h"
#include "kws/config.h"
#include "kws/dataset.h"
#include "kws/frontend.h"
#include "kws/recipe.h"
#include "kws/stream_eval.h"
#include "kws/train.h"

#define TRAIN_BIN KWSD_BINARY_DIR "/tools/kwsd-train"
#define EVAL_BIN KWSD_BINARY_DIR "/tools/kwsd-eval"
#define ENROLL_BIN KWSD_BINARY_DIR "/tools/kwsd-enroll"
#define MAX_ARGS 64

extern char **environ;

/* ==== Running a tool ==== */

struct run {
    int status;      /* exit status, or -1 when it did not exit */
    char out[16384]; /* stdout */
    char err[16384]; /* stderr */
    int err_lines;   /* lines on stderr */
};

static char tmpdir[64];

static void tmp_setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kws_opts_XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(tmpdir), NULL)));
}

static void tmp_teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect(eq(int, system(cmd), 0));
}

static void slurp(const char *path, char *buf, size_t len) {
    FILE *f = fopen(path, "r");
    cr_assert(not(eq(ptr, f, NULL)), "%s", path);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Runs bin with the NULL-terminated lists a and then b as its arguments. */
static void run_tool(struct run *r, const char *bin, const char *const *a, const char *const *b) {
    char *argv[MAX_ARGS], out[128], err[128];
    int n = 0;
    argv[n++] = (char *)bin;
    for (; a && *a && n < MAX_ARGS - 1; a++)
        argv[n++] = (char *)*a;
    for (; b && *b && n < MAX_ARGS - 1; b++)
        argv[n++] = (char *)*b;
    argv[n] = NULL;
    snprintf(out, sizeof out, "%s/out", tmpdir);
    snprintf(err, sizeof err, "%s/err", tmpdir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert(eq(int, rc, 0), "spawn %s: %s", bin, strerror(rc));
    int st = 0;
    cr_assert(eq(int, waitpid(pid, &st, 0), pid));
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    slurp(out, r->out, sizeof r->out);
    slurp(err, r->err, sizeof r->err);
    r->err_lines = 0;
    for (const char *c = r->err; *c; c++)
        r->err_lines += *c == '\n';
}

/* Arguments that pass both tables but name nothing that exists. */
static const char *const train_base[] = {"--data", "/nonexistent/kwsd-data", "--labels", "yes,no",
                                         "--out",  "/nonexistent/kwsd.kwsm", NULL};
static const char *const eval_base[] = {"--model", "/nonexistent/kwsd.kwsm", "--data",
                                        "/nonexistent/kwsd-data", NULL};
static const char *const enroll_base[] = {
    "--word", "hey", "--takes", "/nonexistent/takes", "--out", "/nonexistent/hey.kwsm", NULL};

/* The programs under test, by the number a case names them with. */
enum tool { TRAIN, EVAL, ENROLL };
static const char *const tool_bin[] = {TRAIN_BIN, EVAL_BIN, ENROLL_BIN};
static const char *const *const tool_base[] = {train_base, eval_base, enroll_base};

/* ==== Bad values ==== */

/* Arrays rather than pointers: Criterion hands each case to a new process,
 * where a pointer into this one's data need not hold. */
struct bad_case {
    int tool;         /* enum tool */
    char args[6][32]; /* after the base arguments */
    char want[4][96]; /* each must be on stderr */
};

static const struct bad_case bad_cases[] = {
    /* unknown enum words */
    {0, {"--surrogate", "foo"}, {"kwsd-train: --surrogate: 'foo'", "atan, triangle"}},
    {0, {"--rec", "conv,foo"}, {"kwsd-train: --rec: 'foo'", "none, conv, dense"}},
    {0, {"--select", "foo"}, {"kwsd-train: --select: 'foo'", "clip, stream"}},
    {1, {"--split", "tset"}, {"kwsd-eval: --split: 'tset'", "test, val, train, all"}},
    /* numbers out of range */
    {0, {"--epochs", "0"}, {"kwsd-train: --epochs: 0 out of range [1, 100000]"}},
    {0, {"--ema", "1"}, {"kwsd-train: --ema: 1 out of range [0, 1)"}},
    {0, {"--kd-temp", "0"}, {"kwsd-train: --kd-temp: 0 out of range (0, 100]"}},
    {0, {"--calib-passes", "17"}, {"kwsd-train: --calib-passes: 17 out of range [1, 16]"}},
    {0, {"--threads", "-1"}, {"kwsd-train: --threads: -1 out of range [0, 1024]"}},
    {0, {"--floor-db=-10,5"}, {"kwsd-train: --floor-db: HI 5 out of range [-200, 0]"}},
    {0, {"--snr", "30,20"}, {"kwsd-train: --snr: LO 30 is above HI 20"}},
    {0, {"--hidden", "0,256"}, {"kwsd-train: --hidden: 0 out of range [1, 4096]"}},
    {0, {"--freq-mask", "9,2"}, {"kwsd-train: --freq-mask: N 9 out of range [0, 8]"}},
    {0, {"--epochs", "99999999999"}, {"kwsd-train: --epochs:", "[1, 100000]"}},
    {1, {"--passes", "0"}, {"kwsd-eval: --passes: 0 out of range [1, 16]"}},
    {1, {"--threshold", "1.5"}, {"kwsd-eval: --threshold: 1.5 out of range [0, 1]"}},
    {1, {"--snr", "70,80"}, {"kwsd-eval: --snr: LO 70 out of range [-20, 60]"}},
    {1, {"--gain-scale", "0"}, {"kwsd-eval: --gain-scale: 0 out of range (0, 1000]"}},
    /* missing values: at the end, and before the next option */
    {0, {"--epochs"}, {"kwsd-train: --epochs: needs a value", "an integer in [1, 100000]"}},
    {0, {"--epochs", "--batch", "4"}, {"kwsd-train: --epochs: needs a value", "[1, 100000]"}},
    {0, {"--surrogate"}, {"kwsd-train: --surrogate: needs a value", "one of atan, triangle"}},
    {0, {"--out="}, {"kwsd-train: --out: needs a value"}},
    {1, {"--noise-gain"}, {"kwsd-eval: --noise-gain: needs a value", "[0, 1000]"}},
    {1, {"--split"}, {"kwsd-eval: --split: needs a value", "test, val, train, all"}},
    /* not numbers, malformed pairs and lists */
    {0, {"--lr", "fast"}, {"kwsd-train: --lr: 'fast' is not a number in [0, 10]"}},
    {0, {"--snr", "10"}, {"kwsd-train: --snr: '10' is not LO,HI", "[-20, 60]"}},
    {0, {"--time-mask", "2,x"}, {"kwsd-train: --time-mask: W 'x'", "[0, 100]"}},
    {0, {"--hidden", "8,8,8,8,8"}, {"kwsd-train: --hidden:", "1 to 4", "[1, 4096]"}},
    {0, {"--labels", "yes"}, {"kwsd-train: --labels:", "2 to 32"}},
    {0, {"--enc", "0.5,,1"}, {"kwsd-train: --enc:", "empty item", "[-1000, 1000]"}},
    {1, {"--smoothing-ms", "abc"}, {"kwsd-eval: --smoothing-ms: 'abc'", "[10, 3000]"}},
    /* options that do not exist or take no value, stray words */
    {0, {"--no-such-option"}, {"kwsd-train: unknown option '--no-such-option'"}},
    {0, {"--resume=yes"}, {"kwsd-train: --resume: takes no value"}},
    {0, {"--s", "1"}, {"kwsd-train: option '--s' is ambiguous", "--seed", "--snr"}},
    {0, {"stray"}, {"kwsd-train: 'stray' is not an option"}},
    {1, {"--bogus"}, {"kwsd-eval: unknown option '--bogus'"}},
    /* the checks of two options together, after the tables */
    {0, {"--rec", "none"}, {"kwsd-train: --rec needs one entry per --hidden layer"}},
    {1, {"--negatives-only"}, {"kwsd-eval: --negatives-only: needs --negatives DIR"}},
    {1, {"--snr", "5,15"}, {"kwsd-eval: --snr: needs --noise DIR"}},
    /* kwsd-enroll: each kind of value its table holds */
    {2, {"--select", "foo"}, {"kwsd-enroll: --select: 'foo'", "clip, stream"}},
    {2, {"--epochs", "0"}, {"kwsd-enroll: --epochs: 0 out of range [1, 1000]"}},
    {2, {"--val-takes", "51"}, {"kwsd-enroll: --val-takes: 51 out of range [1, 50]"}},
    {2, {"--min-takes", "1"}, {"kwsd-enroll: --min-takes: 1 out of range [2, "}},
    {2, {"--calib-hours", "0"}, {"kwsd-enroll: --calib-hours: 0 out of range [0.001, 10]"}},
    {2, {"--calib-fa", "2000"}, {"kwsd-enroll: --calib-fa: 2000 out of range [0, 1000]"}},
    {2, {"--seed", "-1"}, {"kwsd-enroll: --seed: -1 out of range [0, 2147483647]"}},
    {2, {"--windows", "0"}, {"kwsd-enroll: --windows: 0 out of range [1, 1000000]"}},
    {2, {"--lr", "fast"}, {"kwsd-enroll: --lr: 'fast' is not a number in [0, 10]"}},
    {2, {"--epochs"}, {"kwsd-enroll: --epochs: needs a value", "an integer in [1, 1000]"}},
    {2, {"--select"}, {"kwsd-enroll: --select: needs a value", "one of clip, stream"}},
    {2, {"--takes"}, {"kwsd-enroll: --takes: needs a value", "a file or folder name"}},
    {2, {"--word", "a,b"}, {"kwsd-enroll: --word: 'a,b'", "one item", "1 to 31 bytes"}},
    {2, {"--record=yes"}, {"kwsd-enroll: --record: takes no value"}},
    {2, {"--bogus"}, {"kwsd-enroll: unknown option '--bogus'"}},
    {2, {"--words-from", "/nonexistent", "--record"}, {"kwsd-enroll: --record takes one --word"}},
    {2, {"--words-from", "/nonexistent", "--say"}, {"kwsd-enroll: --say takes one --word"}},
    {2, {"--record", "--say"}, {"kwsd-enroll: --record or --say, not both"}},
    {2, {"--say"}, {"kwsd-enroll: --takes: with --say, a number of takes in [3, 100]"}},
};

ParameterizedTestParameters(options, bad_value) {
    return cr_make_param_array(struct bad_case, bad_cases, sizeof bad_cases / sizeof *bad_cases);
}

ParameterizedTest(const struct bad_case *c, options, bad_value, .init = tmp_setup,
                  .fini = tmp_teardown, .timeout = 60) {
    static struct run r;
    const char *args[7] = {NULL};
    for (int i = 0; i < 6 && c->args[i][0]; i++)
        args[i] = c->args[i];
    run_tool(&r, tool_bin[c->tool], tool_base[c->tool], args);
    cr_expect(eq(int, r.status, 2), "%s: exit %d, stderr: %s", c->args[0], r.status, r.err);
    cr_expect(eq(int, r.err_lines, 1), "%s: want one line, got: %s", c->args[0], r.err);
    cr_expect(eq(str, r.out, ""), "%s: stdout: %s", c->args[0], r.out);
    for (int i = 0; i < 4 && c->want[i][0]; i++)
        cr_expect(not(eq(ptr, strstr(r.err, c->want[i]), NULL)), "%s: want \"%s\" in: %s",
                  c->args[0], c->want[i], r.err);
}

/* A required option left out is named, and nothing is read. */
Test(options, required_options, .init = tmp_setup, .fini = tmp_teardown, .timeout = 60) {
    static struct run r;
    static const char *const no_out[] = {"--data", "/nonexistent", "--labels", "a,b", NULL};
    static const char *const no_model[] = {"--data", "/nonexistent", NULL};
    static const char *const no_data[] = {"--model", "/nonexistent/m.kwsm", NULL};
    run_tool(&r, TRAIN_BIN, no_out, NULL);
    cr_expect(eq(int, r.status, 2));
    cr_expect(eq(str, r.err,
                 "kwsd-train: --out FILE.kwsm is required (--help lists the "
                 "options)\n"));
    run_tool(&r, EVAL_BIN, no_model, NULL);
    cr_expect(eq(int, r.status, 2));
    cr_expect(not(eq(ptr, strstr(r.err, "--model FILE.kwsm is required"), NULL)), "%s", r.err);
    run_tool(&r, EVAL_BIN, no_data, NULL);
    cr_expect(eq(int, r.status, 2));
    cr_expect(not(eq(ptr, strstr(r.err, "--data DIR, --wav FILE or --verify-pass DIR is required"),
                     NULL)),
              "%s", r.err);
    /* the second look's options need a model that keeps its takes */
    static const char *const no_takes[] = {"--model", KWSD_SOURCE_DIR "/models/commands.kwsm",
                                           "--verify-pass", "/tmp", NULL};
    run_tool(&r, EVAL_BIN, no_takes, NULL);
    cr_expect(eq(int, r.status, 2));
    cr_expect(not(eq(ptr, strstr(r.err, "keeps no takes for a second look"), NULL)), "%s", r.err);
}

/* ==== Good values ==== */

/* Values the documentation uses (docs/MODELS.md, the man pages) pass the
 * tables and the checks after them: the programs go on to read the data or
 * the model, which do not exist (status 1). A unique prefix still names its
 * option (--thresh). */
Test(options, documented_values_pass, .init = tmp_setup, .fini = tmp_teardown, .timeout = 60) {
    static struct run r;
    static const char *const train_args[] = {"--epochs",
                                             "60",
                                             "--copies",
                                             "4",
                                             "--enc=-0.35,-0.15,0.15,0.6",
                                             "--hidden",
                                             "8,8,8,8",
                                             "--rec",
                                             "dense,dense,dense,dense",
                                             "--in-delay",
                                             "30",
                                             "--speed",
                                             "0.85,1.15",
                                             "--p-cold",
                                             "1.0",
                                             "--tilt",
                                             "0.9",
                                             "--trim-ms",
                                             "150",
                                             "--floor",
                                             "0.3",
                                             "--floor-db=-90,-60",
                                             "--freq-mask",
                                             "2,6",
                                             "--time-mask",
                                             "2,10",
                                             "--ema",
                                             "0.999",
                                             "--select",
                                             "stream",
                                             "--synth-unknown",
                                             "10",
                                             "--context-ms",
                                             "500",
                                             "--beta",
                                             "0.8",
                                             "--beta-rec",
                                             "0.7",
                                             "--out-beta",
                                             "0.9",
                                             "--out-gain",
                                             "0.2",
                                             "--sigma-init",
                                             "1",
                                             "--lr",
                                             "1e-3",
                                             "--lr-delay",
                                             "1e-2",
                                             "--drop-rec",
                                             "0",
                                             "--bg-weight",
                                             "4",
                                             "--fg-weight",
                                             "2",
                                             "--win-weight",
                                             "2",
                                             "--kd-temp",
                                             "10",
                                             "--pcen-release",
                                             "0.2",
                                             "--fmax",
                                             "4000",
                                             "--surrogate",
                                             "triangle",
                                             "--windows",
                                             "64",
                                             "--threads",
                                             "1",
                                             "--synth-rate",
                                             "8000",
                                             "--labels",
                                             "yes,no,up,down,left,right,on,off,stop,go,_silence_,"
                                             "_unknown_",
                                             NULL};
    run_tool(&r, TRAIN_BIN, train_base, train_args);
    cr_expect(eq(int, r.status, 1), "exit %d: %s", r.status, r.err);
    cr_expect(not(eq(ptr, strstr(r.err, "/nonexistent/kwsd-data"), NULL)), "%s", r.err);

    static const char *const eval_args[] = {"--split",
                                            "val",
                                            "--passes",
                                            "4",
                                            "--calibrate",
                                            "40",
                                            "--gain-scale",
                                            "2",
                                            "--noise-gain",
                                            "0.1",
                                            "--thresh",
                                            "0.8",
                                            "--snr",
                                            "10,20",
                                            "--noise",
                                            "/nonexistent",
                                            "--smoothing-ms",
                                            "200",
                                            "--refractory-ms",
                                            "800",
                                            "--sweep",
                                            "--json",
                                            NULL};
    run_tool(&r, EVAL_BIN, eval_base, eval_args);
    cr_expect(eq(int, r.status, 1), "exit %d: %s", r.status, r.err);
    cr_expect(not(eq(ptr, strstr(r.err, "/nonexistent/kwsd.kwsm"), NULL)), "%s", r.err);
}

/* ==== Defaults ==== */

/* The value --print-defaults gives name ("" for none); fails if absent. */
static const char *value_of(const char *out, const char *name) {
    static char v[256];
    char key[80];
    snprintf(key, sizeof key, "--%s", name);
    for (const char *l = out; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
        size_t n = strcspn(l, " \n");
        if (n == strlen(key) && !strncmp(l, key, n)) {
            const char *s = l[n] == ' ' ? l + n + 1 : l + n;
            snprintf(v, sizeof v, "%.*s", (int)strcspn(s, "\n"), s);
            return v;
        }
    }
    cr_fatal("--print-defaults does not list --%s", name);
    return NULL;
}

/* The float --print-defaults gives name (printed with all its digits). */
static float float_of(const char *out, const char *name) {
    return strtof(value_of(out, name), NULL);
}

static void expect_pair(const char *out, const char *name, float lo, float hi) {
    char want[64];
    snprintf(want, sizeof want, "%.9g,%.9g", (double)lo, (double)hi);
    cr_expect(eq(str, (char *)value_of(out, name), want), "--%s", name);
}

static void expect_int_pair(const char *out, const char *name, int a, int b) {
    char want[64];
    snprintf(want, sizeof want, "%d,%d", a, b);
    cr_expect(eq(str, (char *)value_of(out, name), want), "--%s", name);
}

/* Every option --print-defaults lists is in --help. */
static void expect_help_lists(const char *bin, const char *defaults) {
    static struct run h;
    static const char *const help[] = {"--help", NULL};
    run_tool(&h, bin, help, NULL);
    cr_expect(eq(int, h.status, 0));
    int n = 0;
    for (const char *l = defaults; *l; l = strchr(l, '\n') + 1, n++) {
        char key[96];
        snprintf(key, sizeof key, "\n  %.*s", (int)strcspn(l, " \n"), l);
        cr_expect(not(eq(ptr, strstr(h.err, key), NULL)), "--help lacks%s", key + 1);
    }
    cr_expect(gt(int, n, 10), "%s", defaults);
}

Test(options, train_defaults, .init = tmp_setup, .fini = tmp_teardown, .timeout = 60) {
    static struct run r;
    static const char *const args[] = {"--print-defaults", NULL};
    run_tool(&r, TRAIN_BIN, args, NULL);
    cr_assert(eq(int, r.status, 0), "%s", r.err);
    const char *o = r.out;

    /* the trainer's hyper-parameters */
    struct train_hparams hp;
    train_hparams_default(&hp);
    cr_expect(eq(str, (char *)value_of(o, "surrogate"), "atan"));
    cr_expect(eq(int, hp.surrogate, TRAIN_SG_ATAN));
    cr_expect(eq(flt, float_of(o, "sg-alpha"), hp.sg_alpha));
    cr_expect(eq(int, atoi(value_of(o, "no-detach")), !hp.detach_reset));
    cr_expect(eq(int, atoi(value_of(o, "no-bn")), !hp.use_bn));
    cr_expect(eq(flt, float_of(o, "drop-ff"), hp.drop_ff));
    cr_expect(eq(flt, float_of(o, "drop-rec"), hp.drop_rec));
    cr_expect(eq(flt, float_of(o, "wd"), hp.wd));
    expect_pair(o, "delay-init", hp.delay_init_lo, hp.delay_init_hi);
    cr_expect(eq(flt, float_of(o, "sigma-init"), hp.sigma));
    cr_expect(eq(flt, float_of(o, "bg-weight"), hp.bg_weight));
    cr_expect(eq(flt, float_of(o, "fg-weight"), hp.fg_weight));
    cr_expect(eq(flt, float_of(o, "kd-weight"), hp.kd_weight));
    cr_expect(eq(flt, float_of(o, "win-weight"), hp.win_weight));
    cr_expect(eq(flt, float_of(o, "fa-weight"), hp.fa_weight));
    cr_expect(eq(flt, float_of(o, "ema"), hp.ema_decay));
    cr_expect(eq(flt, float_of(o, "kd-temp"), hp.kd_temp));
    cr_expect(eq(u64, (uint64_t)atoi(value_of(o, "seed")), hp.seed));

    /* augmentation */
    struct ds_aug aug;
    dataset_aug_default(&aug);
    expect_pair(o, "snr", aug.snr_db_lo, aug.snr_db_hi);
    cr_expect(eq(flt, float_of(o, "shift-ms"), aug.shift_ms));
    expect_pair(o, "speed", aug.speed_lo, aug.speed_hi);
    cr_expect(eq(flt, float_of(o, "context-ms"), 0.0f));
    cr_expect(eq(int, aug.ctx_frames, 0));
    cr_expect(eq(flt, float_of(o, "p-context"), aug.p_ctx_word));
    cr_expect(eq(flt, float_of(o, "p-cold"), aug.p_ctx_cold));
    expect_pair(o, "floor-db", aug.floor_db_lo, aug.floor_db_hi);
    cr_expect(eq(flt, float_of(o, "tilt"), aug.tilt));
    cr_expect(eq(flt, float_of(o, "floor"), aug.floor_p));
    cr_expect(eq(flt, float_of(o, "trim-ms"), aug.trim_ms));
    expect_int_pair(o, "freq-mask", aug.fmask_n, aug.fmask_w);
    expect_int_pair(o, "time-mask", aug.tmask_n, aug.tmask_w);

    /* stream windows: window_ms is the library's T frames of the front end's hop */
    struct ds_window win;
    struct kws_frontend_cfg fe;
    dataset_window_default(&win);
    audio_fe_cfg_default(&fe);
    cr_expect(eq(flt, float_of(o, "p-keyword"), win.p_keyword));
    cr_expect(eq(flt, float_of(o, "window-ms"),
                 (float)win.T * 1000.0f * (float)fe.hop / (float)fe.sample_rate));
    cr_expect(eq(int, atoi(value_of(o, "windows")), 0));

    /* the validation stream and the front end */
    struct stream_eval_opts so = stream_eval_opts_default();
    cr_expect(eq(int, atoi(value_of(o, "calib-passes")), so.passes));
    cr_expect(eq(flt, float_of(o, "pcen-release"), fe.pcen_release));
    cr_expect(eq(flt, float_of(o, "fmax"), 0.0f));      /* 0: the front end's own */
    cr_expect(eq(str, (char *)value_of(o, "enc"), "")); /* none: the front end's own */

    /* The recipe's own choices, which no lower default holds: the table has
     * no defaults, so these are train_recipe_default's values; the values
     * every documented command used (fg-weight 1, kd-weight 1, p-context
     * 0.7 and floor-db -100,-50 were the tool's alone until they moved into
     * train_hparams_default and dataset_aug_default). */
    struct train_recipe rd;
    train_recipe_default(&rd);
    static const struct {
        const char *name, *value;
    } own[] = {{"hidden", "256,256"},
               {"rec", "none,conv"},
               {"k", "5"},
               {"d-max", "40"},
               {"conv-ch", "0"},
               {"epochs", "40"},
               {"batch", "64"},
               {"copies", "1"},
               {"frames", "100"},
               {"threads", "0"},
               {"synth-per-voice", "2"},
               {"synth-rate", "16000"},
               {"synth-unknown", "2"},
               {"max-train", "0"},
               {"mine-every", "0"},
               {"select", "clip"},
               {"stream-val", "0"},
               {"resume", "0"},
               {"fg-weight", "1"},
               {"kd-weight", "1"},
               {"p-context", "0.699999988"},
               {"floor-db", "-100,-50"},
               {"out-gain", "1"},
               {"in-delay", "0"},
               {"data", ""},
               {"out", ""}};
    for (size_t i = 0; i < sizeof own / sizeof *own; i++)
        cr_expect(eq(str, (char *)value_of(o, own[i].name), (char *)own[i].value), "--%s",
                  own[i].name);
    const struct {
        const char *name;
        float value, lib;
    } own_f[] = {{"lr", 5e-3f, rd.lr},
                 {"lr-delay", 5e-2f, rd.lr_delay},
                 {"sigma-decay", 0.95f, rd.sigma_decay},
                 {"beta", 0.047619f, rd.beta0},
                 {"beta-rec", 0.38583f, rd.beta_rec},
                 {"out-beta", 0.047619f, rd.out_beta},
                 {"calib-fa", 10.0f, rd.calib_fa}};
    for (size_t i = 0; i < sizeof own_f / sizeof *own_f; i++) {
        cr_expect(eq(flt, float_of(o, own_f[i].name), own_f[i].value), "--%s", own_f[i].name);
        cr_expect(eq(flt, own_f[i].lib, own_f[i].value), "train_recipe_default: %s", own_f[i].name);
    }
    cr_expect(eq(int, rd.epochs, 40));
    cr_expect(eq(int, rd.batch, 64));
    cr_expect(eq(int, rd.n_hidden, 2));
    cr_expect(eq(int, rd.rec[1], SNN_REC_CONV));

    expect_help_lists(TRAIN_BIN, o);
}

Test(options, eval_defaults, .init = tmp_setup, .fini = tmp_teardown, .timeout = 60) {
    static struct run r, t;
    static const char *const args[] = {"--print-defaults", NULL};
    run_tool(&r, EVAL_BIN, args, NULL);
    cr_assert(eq(int, r.status, 0), "%s", r.err);
    const char *o = r.out;

    struct stream_eval_opts so = stream_eval_opts_default();
    cr_expect(eq(u64, (uint64_t)atoi(value_of(o, "seed")), so.seed));
    cr_expect(eq(int, atoi(value_of(o, "passes")), so.passes));
    cr_expect(eq(flt, float_of(o, "noise-gain"), so.noise_gain));
    expect_pair(o, "snr", so.snr_lo, so.snr_hi);

    /* the detector runs as kwsd runs it by default */
    struct kws_config cfg;
    config_defaults(&cfg);
    cr_expect(eq(int, atoi(value_of(o, "smoothing-ms")), cfg.detection.smoothing_ms));
    cr_expect(eq(int, atoi(value_of(o, "refractory-ms")), cfg.detection.refractory_ms));

    /* clip scoring's own defaults */
    struct clip_eval_opts co = clip_eval_opts_default();
    cr_expect(eq(int, atoi(value_of(o, "frames")), co.T));
    cr_expect(eq(int, atoi(value_of(o, "smoothing-ms")), co.smooth_ms));

    /* clips are rendered as the trainer renders its validation clips */
    char frames[64];
    run_tool(&t, TRAIN_BIN, args, NULL);
    snprintf(frames, sizeof frames, "%s", value_of(t.out, "frames"));
    cr_expect(eq(str, (char *)value_of(o, "frames"), frames));

    cr_expect(eq(str, (char *)value_of(o, "split"), "test"));
    cr_expect(eq(flt, float_of(o, "gain-scale"), 1.0f));
    cr_expect(eq(int, atoi(value_of(o, "stream")), 0));
    cr_expect(eq(str, (char *)value_of(o, "model"), ""));

    expect_help_lists(EVAL_BIN, o);
}

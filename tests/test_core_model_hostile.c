/* test_core_model_hostile.c: model files made to crash or starve a loader, refused or survived.
 *
 * Each reproducer of a model loader failure gets a test here: a header
 * whose tensor table outgrew a fixed array (four recurrent layers with input
 * delays), a network whose input count is not what its front end makes, a
 * front end with sample rate 0 or an odd FFT size, a file far larger than
 * its header announces, a FIFO or a device given as the model path, a
 * verifier (an enrolled word's takes) with damaged fields or a short block.
 * A sweep over every header word then checks the property the daemon relies
 * on: a model that loads has a front end that builds and makes exactly the
 * network's inputs; a second sweep over the verifier's words checks that a
 * verifier that loads is whole. Run under ASan/UBSan, an over-read or a
 * stack overflow fails the test even where the result looks right.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kws/err.h"
#include "kws/frontend.h"
#include "kws/snn.h"
#include "model_file_internal.h"
#include "snn_internal.h"

/* Byte offsets of the header fields these tests edit (docs/MODEL_FORMAT.md). */
enum {
    OFF_N_IN = 12,
    OFF_FE = 1184, /* sample_rate, win_len, hop, n_fft, n_mels, ... */
    OFF_FE_N_FFT = OFF_FE + 4 * 3,
    OFF_FE_N_MELS = OFF_FE + 4 * 4,
    OFF_FE_SAMPLE_RATE = OFF_FE,
    OFF_VERIFY = 1332, /* label, n_takes, n_feat, k, back, ahead, cut, n_frames, kind */
    OFF_VERIFY_LABEL = OFF_VERIFY,
    OFF_VERIFY_N_TAKES = OFF_VERIFY + 4,
    OFF_VERIFY_N_FEAT = OFF_VERIFY + 8,
    OFF_VERIFY_K = OFF_VERIFY + 12,
    OFF_VERIFY_BACK = OFF_VERIFY + 16,
    OFF_VERIFY_AHEAD = OFF_VERIFY + 20,
    OFF_VERIFY_CUT = OFF_VERIFY + 24,
    OFF_VERIFY_N_FRAMES = OFF_VERIFY + 28,
    OFF_PAD = 1368, /* zero padding to the end of the header */
};

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(p, u);
}

static void fix_crc(uint8_t *b, size_t len) {
    put_u32(b + len - 4, kwsm__crc32(b, len - 4));
}

/* A network as kwsd-train makes it: the default front end (40 bands x 4
 * levels = 160 inputs), hidden layers of 8 neurons with the given
 * recurrences, input delays of up to in_d_max steps on every layer after
 * the first, three classes; weights fixed and non-zero. */
static void make_model(struct snn_model *m, int n_layers, int rec, int in_d_max) {
    struct snn_cfg c;
    memset(&c, 0, sizeof c);
    audio_fe_cfg_default(&c.fe);
    c.n_in = audio_fe_n_out(&c.fe);
    c.n_layers = n_layers;
    for (int l = 0; l < n_layers; l++)
        c.layer[l] = (struct snn_layer_cfg){.n = 8,
                                            .rec = rec,
                                            .k = rec == SNN_REC_CONV ? 3 : 0,
                                            .d_max = rec == SNN_REC_NONE ? 0 : 5,
                                            .beta = 0.5f,
                                            .gain = 1.0f,
                                            .thresh = 1.0f,
                                            .in_d_max = l > 0 ? in_d_max : 0};
    c.n_classes = 3;
    c.out_beta = 0.9f;
    c.out_gain = 1.0f;
    strcpy(c.labels[0], "_silence_");
    strcpy(c.labels[1], "yes");
    strcpy(c.labels[2], "_unknown_");
    cr_assert(eq(int, snn_model_init(m, &c), 0));
    for (size_t i = 0; i < m->n_params; i++)
        m->mem[i] = 0.3f * sinf((float)i * 0.61f);
    for (int l = 1; l < n_layers && in_d_max; l++)
        for (int j = 0; j < 8; j++)
            m->p.in_delay[l][j] = (float)(j % (in_d_max + 1));
    snn_model_prepare(m);
}

/* Gives m a verifier of "yes" (class 1): three takes of 2, 5 and 3 frames
 * over the front end's 40 bands, k 2, the default back and ahead. */
static void add_verifier(struct snn_model *m) {
    static const int32_t len[3] = {2, 5, 3};
    struct kws_verifier *v = &m->verify;
    cr_assert(eq(int, kws_verifier_alloc(v, 3, len, m->cfg.fe.n_mels), 0));
    for (size_t i = 0; i < v->n_frames * (size_t)v->n_feat; i++)
        v->feat[i] = 0.2f * sinf((float)i * 0.41f);
    v->label = 1;
    v->k = 2;
    v->cut = 0.6f;
}

/* The encoded bytes of a 1-layer conv-delay model with a verifier; *len
 * gets the size, *block the offset of the verifier's block. */
static uint8_t *encoded_verifier(size_t *len, size_t *block) {
    struct snn_model m;
    make_model(&m, 1, SNN_REC_CONV, 0);
    add_verifier(&m);
    *len = kwsm__encoded_size(&m);
    *block = KWSM_HEADER_BYTES + 4 * m.n_params;
    cr_assert(eq(sz, *len, *block + 4 * 3 + 4 * 10 * 40 + 4));
    uint8_t *b = malloc(*len);
    cr_assert(eq(int, kwsm__encode(&m, b), 0));
    snn_model_free(&m);
    return b;
}

/* The encoded bytes of make_model(n_layers, rec, in_d_max); *len gets the size. */
static uint8_t *encoded(int n_layers, int rec, int in_d_max, size_t *len) {
    struct snn_model m;
    make_model(&m, n_layers, rec, in_d_max);
    *len = kwsm__encoded_size(&m);
    uint8_t *b = malloc(*len);
    cr_assert(eq(int, kwsm__encode(&m, b), 0));
    snn_model_free(&m);
    return b;
}

/* Loads len bytes (a fresh heap copy of exactly len, so ASan sees any
 * over-read) and checks the code and the start of the message. */
static void expect_refused(const uint8_t *b, size_t len, int code, const char *want) {
    uint8_t *p = malloc(len);
    memcpy(p, b, len);
    struct snn_model m;
    char msg[256] = "unset";
    int rc = snn_model_load_buffer(&m, p, len, msg, sizeof msg);
    free(p);
    cr_assert(eq(int, rc, code), "got %s (%s), want %s", kws_err_name(rc), msg, kws_err_name(code));
    cr_assert(eq(int, strncmp(msg, want, strlen(want)), 0), "message \"%s\" should start \"%s\"",
              msg, want);
    cr_assert(eq(ptr, m.mem, NULL), "m left zeroed");
}

static char tmpdir[64];

static const char *tmp_path(const char *name) {
    static char buf[2][160];
    static int i;
    i ^= 1;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kws-test-hostile-XXXXXX");
    cr_assert(ne(ptr, mkdtemp(tmpdir), NULL));
}

static void remove_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert(eq(int, system(cmd), 0));
}

/* .timeout: a loader that blocks (on a FIFO) fails instead of hanging. */
TestSuite(core_model_hostile, .init = make_tmpdir, .fini = remove_tmpdir, .timeout = 60);

/* ==== The tensor table ==== */

/* Four recurrent layers, each after the first with input delays (kwsd-train
 * --hidden 8,8,8,8 --rec dense,dense,dense,dense --in-delay 2): 21 tensors,
 * more than a table of 4 per layer + 2 could hold. The header alone used to
 * overflow the loader's stack array before the checksum was looked at. */
Test(core_model_hostile, four_recurrent_layers_with_input_delays) {
    struct snn_model a;
    make_model(&a, 4, SNN_REC_DENSE, 2);
    struct snn__tensor t[SNN__MAX_TENSORS];
    cr_assert(eq(int, snn__tensors(&a.cfg, NULL, t), 4 * 5 - 1 + 2), "in_delay on layers 1..3");
    cr_assert(eq(int, SNN__MAX_TENSORS, 5 * SNN_MAX_LAYERS + 2));
    cr_assert(eq(str, t[18].name, "layer[3].in_delay"));
    /* 160 inputs, 8 neurons: w_in, b_in, w_rec, delay per layer, in_delay
     * (8) from layer 1 on, then the readout. */
    size_t want = (8 * 160 + 8 + 64 + 8) + 3 * (8 * 8 + 8 + 64 + 8 + 8) + 3 * 8 + 3;
    cr_assert(eq(sz, a.n_params, want));
    cr_assert(eq(sz, snn_param_count(&a.cfg), want));

    /* The file loads whole, bit for bit. */
    size_t len = kwsm__encoded_size(&a);
    uint8_t *b = malloc(len);
    cr_assert(eq(int, kwsm__encode(&a, b), 0));
    struct snn_model c;
    char msg[256];
    cr_assert(eq(int, snn_model_load_buffer(&c, b, len, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(int, memcmp(a.mem, c.mem, a.n_params * sizeof(float)), 0));
    cr_assert(eq(i32, c.in_delay_int[3][2], 2));
    snn_model_free(&c);

    /* The header alone: refused as truncated, after the tensor table was built. */
    expect_refused(b, KWSM_HEADER_BYTES, KWS_ETRUNCATED, "file size: 1536 bytes, the header");
    /* A name lookup walks the whole table, in_delay of the last layer included. */
    char name[64];
    snn__param_name(&a.cfg, a.n_params - 3 * 8 - 3 - 1, name, sizeof name);
    cr_assert(eq(str, name, "layer[3].in_delay[7]"));
    free(b);
    snn_model_free(&a);
}

/* ==== The front end the model carries ==== */

struct fe_case {
    size_t off;     /* header word to set */
    int32_t value;  /* int32 value */
    char want[128]; /* start of the message (inline: Criterion copies the case) */
};

static const struct fe_case fe_cases[] = {
    /* A network taking 160 inputs behind a front end of 20 bands x 4 levels
     * (80 spike channels): snn_step would read past the front end's buffer. */
    {OFF_FE_N_MELS, 20,
     "n_in: 160, but the front end makes 80 spike channels per frame (fe.n_mels 20 x "
     "fe.enc_levels 4)"},
    /* Divided by in the daemon and kwsd-eval. */
    {OFF_FE_SAMPLE_RATE, 0, "fe.sample_rate: 0 out of range [4000, 96000]"},
    {OFF_FE_SAMPLE_RATE, -16000, "fe.sample_rate: -16000 out of range [4000, 96000]"},
    /* Accepted before, then fatal at the daemon's first audio block. */
    {OFF_FE_N_FFT, 511, "fe.n_fft: 511 must be even and in [16, 8192]"},
    {OFF_FE_N_FFT, 0, "fe.n_fft: 0 must be even and in [16, 8192]"},
    {OFF_FE + 4 * 1, 0, "fe.win_len: 0 out of range [2, n_fft=512]"},
    {OFF_FE + 4 * 1, 1000, "fe.win_len: 1000 out of range [2, n_fft=512]"},
    {OFF_FE + 4 * 2, 0, "fe.hop: 0 out of range [1, win_len=400]"},
    {OFF_FE + 4 * 2, 401, "fe.hop: 401 out of range [1, win_len=400]"},
    /* Frames of 0.3125 ms (counted as 0 ms) and 10.0625 ms (counted as 10). */
    {OFF_FE + 4 * 2, 5, "fe.hop: 5 samples at 16000 Hz is not a whole number of milliseconds"},
    {OFF_FE + 4 * 2, 161, "fe.hop: 161 samples at 16000 Hz is not a whole number of milliseconds"},
    {OFF_FE + 4 * 13, 3, "fe.enc_kind: 3 is none of level (0), delta (1), ramp (2)"},
    {OFF_FE + 4 * 14, 0, "fe.enc_levels: 0 out of range [1, 8]"},
};

ParameterizedTestParameters(core_model_hostile, front_end_refused) {
    return cr_make_param_array(struct fe_case, fe_cases, sizeof fe_cases / sizeof fe_cases[0]);
}

/* Each is refused by the header check, with the checksum recomputed so the
 * field check itself is what refuses, and through a file as the daemon
 * loads it. */
ParameterizedTest(const struct fe_case *fc, core_model_hostile, front_end_refused) {
    size_t len;
    uint8_t *b = encoded(1, SNN_REC_CONV, 0, &len);
    put_u32(b + fc->off, (uint32_t)fc->value);
    fix_crc(b, len);
    expect_refused(b, len, KWS_EBADFIELD, fc->want);
    FILE *f = fopen(tmp_path("bad.kwsm"), "wb");
    cr_assert(eq(sz, fwrite(b, 1, len, f), len));
    fclose(f);
    struct snn_model m;
    char msg[256];
    cr_assert(eq(int, snn_model_load(&m, tmp_path("bad.kwsm"), msg, sizeof msg), KWS_EBADFIELD));
    cr_assert(eq(int, strncmp(msg, fc->want, strlen(fc->want)), 0), "%s", msg);
    free(b);
}

/* Neither is such a model ever written. */
Test(core_model_hostile, never_written) {
    struct snn_model m;
    make_model(&m, 1, SNN_REC_CONV, 0);
    m.cfg.fe.n_mels = 20;
    cr_assert(eq(int, snn_model_save(&m, tmp_path("m.kwsm")), KWS_EBADFIELD));
    m.cfg.fe.n_mels = 40;
    m.cfg.fe.sample_rate = 0;
    cr_assert(eq(int, snn_model_save(&m, tmp_path("m.kwsm")), KWS_EBADFIELD));
    cr_assert(ne(int, access(tmp_path("m.kwsm"), F_OK), 0));
    snn_model_free(&m);
}

/* ==== The verifier ==== */

struct verify_case {
    bool in_block;  /* off counts from the verifier's block, else from the file's start */
    size_t off;     /* word to set */
    bool is_float;  /* float32, else int32 */
    double value;   /* its new value */
    int code;       /* refused with */
    char want[128]; /* start of the message (inline: Criterion copies the case) */
};

static const struct verify_case verify_cases[] = {
    {false, OFF_VERIFY_N_TAKES, false, 70, KWS_EBADFIELD,
     "verify.n_takes: 70 out of range [0, 64]"},
    {false, OFF_VERIFY_N_TAKES, false, -1, KWS_EBADFIELD,
     "verify.n_takes: -1 out of range [0, 64]"},
    {false, OFF_VERIFY_N_TAKES, false, 0, KWS_EBADFIELD,
     "verify.label: 1, but verify.n_takes is 0 (no verifier)"},
    {false, OFF_VERIFY_LABEL, false, 0, KWS_EBADFIELD,
     "verify.label: 0 is \"_silence_\", a class that never fires"},
    {false, OFF_VERIFY_LABEL, false, 2, KWS_EBADFIELD,
     "verify.label: 2 is \"_unknown_\", a class that never fires"},
    {false, OFF_VERIFY_LABEL, false, 3, KWS_EBADFIELD,
     "verify.label: 3 out of range [0, 2] (n_classes 3)"},
    {false, OFF_VERIFY_LABEL, false, -1, KWS_EBADFIELD, "verify.label: -1 out of range [0, 2]"},
    {false, OFF_VERIFY_N_FEAT, false, 20, KWS_EBADFIELD, "verify.n_feat: 20, but fe.n_mels is 40"},
    {false, OFF_VERIFY_K, false, 0, KWS_EBADFIELD,
     "verify.k: 0 out of range [1, 3] (n_takes 3, at most 16)"},
    {false, OFF_VERIFY_K, false, 4, KWS_EBADFIELD, "verify.k: 4 out of range [1, 3]"},
    {false, OFF_VERIFY_BACK, false, -1, KWS_EBADFIELD, "verify.back: -1 is negative"},
    {false, OFF_VERIFY_AHEAD, false, -5, KWS_EBADFIELD, "verify.ahead: -5 is negative"},
    {false, OFF_VERIFY_AHEAD, false, 900, KWS_EBADFIELD,
     "verify.back + verify.ahead + 1: 1021 frames, at most 1000"},
    {false, OFF_VERIFY_BACK, false, 0x7fffffff, KWS_EBADFIELD,
     "verify.back + verify.ahead + 1: 2147483678 frames, at most 1000"},
    {false, OFF_VERIFY_CUT, true, NAN, KWS_EBADFIELD, "verify.cut: nan must be finite and >= 0"},
    {false, OFF_VERIFY_CUT, true, -0.25, KWS_EBADFIELD, "verify.cut: -0.25 must be finite"},
    {false, OFF_VERIFY_CUT, true, INFINITY, KWS_EBADFIELD, "verify.cut: inf must be finite"},
    {false, OFF_VERIFY_N_FRAMES, false, 0, KWS_EBADFIELD,
     "verify.n_frames: 0 out of range [3, 1200] (3 takes of 1..400 frames)"},
    {false, OFF_VERIFY_N_FRAMES, false, 1201, KWS_EBADFIELD, "verify.n_frames: 1201 out of range"},
    {false, OFF_VERIFY_N_FRAMES, false, -1, KWS_EBADFIELD,
     "verify.n_frames: 4294967295 out of range"},
    /* Within range, but the block it announces is not the file's. */
    {false, OFF_VERIFY_N_FRAMES, false, 11, KWS_ETRUNCATED,
     "file size: 8456 bytes, the header announces 8616 (1326 parameters and a verifier of 3 takes, "
     "11 frames)"},
    {false, OFF_VERIFY_N_FRAMES, false, 9, KWS_EBADFIELD,
     "file size: 8456 bytes, 160 more than the header announces"},
    /* The block: lengths, then features. */
    {true, 4, false, 0, KWS_EBADFIELD, "verify.len[1]: 0 out of range [1, 400]"},
    {true, 8, false, 401, KWS_EBADFIELD, "verify.len[2]: 401 out of range [1, 400]"},
    {true, 0, false, -2, KWS_EBADFIELD, "verify.len[0]: -2 out of range [1, 400]"},
    {true, 0, false, 3, KWS_EBADFIELD, "verify.n_frames: 10, but the 3 takes' lengths sum to 11"},
    {true, 12 + 4 * (2 * 40 + 7), true, NAN, KWS_EBADFIELD,
     "verify.feat[87]: nan is not finite (take 1, frame 0, band 7)"},
    {true, 12 + 4 * (10 * 40 - 1), true, -INFINITY, KWS_EBADFIELD,
     "verify.feat[399]: -inf is not finite (take 2, frame 2, band 39)"},
};

ParameterizedTestParameters(core_model_hostile, verifier_refused) {
    return cr_make_param_array(struct verify_case, verify_cases,
                               sizeof verify_cases / sizeof verify_cases[0]);
}

/* Each damaged verifier is refused (checksum recomputed) from a buffer and
 * from a file, and the model is left zeroed: nothing of a half-read
 * verifier leaks (ASan). */
ParameterizedTest(const struct verify_case *vc, core_model_hostile, verifier_refused) {
    size_t len, block;
    uint8_t *b = encoded_verifier(&len, &block);
    cr_assert(eq(sz, len, 8456), "the sizes in the messages above");
    uint8_t *p = b + (vc->in_block ? block : 0) + vc->off;
    if (vc->is_float)
        put_f32(p, (float)vc->value);
    else
        put_u32(p, (uint32_t)(int32_t)(int64_t)vc->value);
    fix_crc(b, len);
    expect_refused(b, len, vc->code, vc->want);
    FILE *f = fopen(tmp_path("bad.kwsm"), "wb");
    cr_assert(eq(sz, fwrite(b, 1, len, f), len));
    fclose(f);
    struct snn_model m;
    char msg[256];
    cr_assert(eq(int, snn_model_load(&m, tmp_path("bad.kwsm"), msg, sizeof msg), vc->code), "%s",
              msg);
    cr_assert(eq(int, strncmp(msg, vc->want, strlen(vc->want)), 0), "%s", msg);
    cr_assert(eq(ptr, m.verify.len, NULL));
    cr_assert(eq(i32, m.verify.n_takes, 0));
    free(b);
}

/* A cepstrum verifier's bad feature is named by its coefficient, c1 first. */
Test(core_model_hostile, cepstrum_feature_named_by_its_coefficient) {
    struct snn_model m;
    make_model(&m, 1, SNN_REC_CONV, 0);
    static const int32_t len[2] = {2, 3};
    struct kws_verifier *v = &m.verify;
    cr_assert(eq(int, kws_verifier_alloc(v, 2, len, KWS_VERIFY_CEPS), 0));
    for (size_t i = 0; i < v->n_frames * (size_t)v->n_feat; i++)
        v->feat[i] = 0.2f * sinf((float)i * 0.41f);
    v->label = 1;
    v->kind = KWS_VERIFY_CEPSTRUM;
    v->cut = 0.6f;
    size_t len_b = kwsm__encoded_size(&m), block = KWSM_HEADER_BYTES + 4 * m.n_params;
    uint8_t *b = malloc(len_b);
    cr_assert(eq(int, kwsm__encode(&m, b), 0));
    snn_model_free(&m);
    /* take 1, frame 1, its 5th value: c5 */
    put_f32(b + block + 4 * 2 + 4 * ((2 + 1) * KWS_VERIFY_CEPS + 4), NAN);
    fix_crc(b, len_b);
    expect_refused(b, len_b, KWS_EBADFIELD,
                   "verify.feat[43]: nan is not finite (take 1, frame 1, c5)");
    free(b);
}

/* The verifier's block is checked like the parameters: every prefix of the
 * file is truncated, and a header that announces one frame fewer, in a file
 * that lost those bytes, is refused for lengths that do not add up. */
Test(core_model_hostile, verifier_block_truncated) {
    size_t len, block;
    uint8_t *b = encoded_verifier(&len, &block);
    for (size_t n = block - 8; n < len; n++)
        expect_refused(b, n, KWS_ETRUNCATED, "file size: ");
    expect_refused(b, block + 12, KWS_ETRUNCATED,
                   "file size: 6852 bytes, the header announces 8456 (1326 parameters and a "
                   "verifier of 3 takes, 10 frames)");
    /* Whole, bit for bit, from a buffer of exactly its size. */
    uint8_t *p = malloc(len);
    memcpy(p, b, len);
    struct snn_model m;
    char msg[256];
    cr_assert(eq(int, snn_model_load_buffer(&m, p, len, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(sz, m.verify.n_frames, 10));
    snn_model_free(&m);
    free(p);
    /* n_frames 9 with the last frame cut out of the file: the sizes agree, the lengths do not. */
    size_t short_len = len - 4 * 40;
    uint8_t *s = malloc(short_len);
    memcpy(s, b, short_len - 4);
    put_u32(s + OFF_VERIFY_N_FRAMES, 9);
    fix_crc(s, short_len);
    expect_refused(s, short_len, KWS_EBADFIELD,
                   "verify.n_frames: 9, but the 3 takes' lengths sum to 10");
    free(s);
    free(b);
}

/* A few hostile values for a header word: small counts, the largest ones,
 * sign bits, 0.5f, NaN and 1e30f. */
static const uint32_t sweep_values[] = {
    0,          1,          2,          3,          7,          511,        4096,
    0x7fffffff, 0x80000000, 0xffffffff, 0x3f000000, 0x7fc00000, 0x7149f2ca,
};

/* Sets each 4-byte word of the encoded model base (len bytes) from offset lo
 * up to hi to each of sweep_values, checksum fixed: a variant that is
 * refused must say why, one that loads goes to check (which frees it).
 * Counts both. */
static void word_sweep(const uint8_t *base, size_t len, size_t lo, size_t hi,
                       void (*check)(struct snn_model *m, size_t off, uint32_t value), int *loaded,
                       int *refused) {
    uint8_t *b = malloc(len);
    cr_assert(not(eq(ptr, b, NULL)));
    for (size_t off = lo; off < hi; off += 4)
        for (size_t i = 0; i < sizeof sweep_values / sizeof sweep_values[0]; i++) {
            memcpy(b, base, len);
            put_u32(b + off, sweep_values[i]);
            fix_crc(b, len);
            struct snn_model m;
            char msg[256] = "";
            if (snn_model_load_buffer(&m, b, len, msg, sizeof msg) < 0) {
                cr_assert(ne(str, msg, ""), "offset %zu value 0x%x: refused without a message", off,
                          (unsigned)sweep_values[i]);
                (*refused)++;
                continue;
            }
            (*loaded)++;
            check(&m, off, sweep_values[i]);
        }
    free(b);
}

/* A model with a verifier that loaded has a whole verifier. */
static void check_verifier(struct snn_model *m, size_t off, uint32_t value) {
    const struct kws_verifier *v = &m->verify;
    cr_assert(eq(i32, v->n_takes, 3), "offset %zu value 0x%x", off, (unsigned)value);
    cr_assert(eq(i32, v->n_feat, m->cfg.fe.n_mels));
    cr_assert(eq(i32, v->label, 1));
    cr_assert(v->k >= 1 && v->k <= v->n_takes);
    cr_assert(v->back >= 0 && v->ahead >= 0 && v->back + v->ahead + 1 <= KWS_VERIFY_MAX_SPAN);
    cr_assert(isfinite(v->cut) && v->cut >= 0.0f);
    size_t sum = 0;
    for (int t = 0; t < v->n_takes; t++)
        sum += (size_t)v->len[t];
    cr_assert(eq(sz, sum, v->n_frames));
    for (size_t j = 0; j < v->n_frames * (size_t)v->n_feat; j++)
        cr_assert(isfinite(v->feat[j]), "feature %zu", j);
    snn_model_free(m);
}

/* Every verifier word of a model with a verifier set to each of a few
 * hostile values (checksum fixed): whatever loads has a whole verifier
 * (lengths in range summing to n_frames, k within the takes, a span within
 * the limit, n_frames x n_feat finite features, read without an over-read). */
Test(core_model_hostile, verifier_word_sweep) {
    size_t len, block;
    uint8_t *base = encoded_verifier(&len, &block);
    int loaded = 0, refused = 0;
    word_sweep(base, len, OFF_VERIFY, OFF_PAD, check_verifier, &loaded, &refused);
    cr_log_info("verifier sweep: %d variants loaded, %d refused", loaded, refused);
    cr_assert(gt(int, loaded, 0));
    cr_assert(gt(int, refused, 0));
    free(base);
}

/* A model that loaded builds its front end, makes exactly n_in inputs and
 * steps. */
static void check_steps(struct snn_model *m, size_t off, uint32_t value) {
    struct audio_fe fe = {0};
    int rc = audio_fe_init(&fe, &m->cfg.fe);
    cr_assert(eq(int, rc, 0), "offset %zu value 0x%x: loads, but its front end fails: %s", off,
              (unsigned)value, kws_strerror(rc));
    cr_assert(eq(int, fe.n_out, m->cfg.n_in), "offset %zu value 0x%x", off, (unsigned)value);
    /* Three frames of a tone through the front end and the network. */
    size_t n = 3 * (size_t)m->cfg.fe.hop;
    float *x = malloc(n * sizeof *x);
    float *spikes = malloc(3 * (size_t)fe.n_out * sizeof *spikes);
    float out[SNN_MAX_CLASSES];
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * sinf(0.3f * (float)i);
    cr_assert(eq(sz, audio_fe_compute(&fe, x, n, NULL, spikes, 3), 3));
    struct snn_state s = {0};
    cr_assert(eq(int, snn_state_init(&s, m), 0));
    for (int t = 0; t < 3; t++)
        snn_step(m, &s, spikes + (size_t)t * (size_t)fe.n_out, out);
    snn_state_free(&s);
    free(spikes);
    free(x);
    audio_fe_free(&fe);
    snn_model_free(m);
}

/* Every header word set to each of a few hostile values (checksum fixed):
 * whatever loads must build its front end and make exactly n_in inputs,
 * and must step; everything else is refused with a message. */
Test(core_model_hostile, header_word_sweep) {
    size_t len;
    uint8_t *base = encoded(2, SNN_REC_CONV, 0, &len);
    int loaded = 0, refused = 0;
    word_sweep(base, len, OFF_N_IN, OFF_PAD, check_steps, &loaded, &refused);
    cr_log_info("header sweep: %d variants loaded, %d refused", loaded, refused);
    cr_assert(gt(int, refused, 0));
    free(base);
}

/* ==== What a path can name ==== */

/* Peak resident memory of this process, KiB (each Criterion test runs in a
 * process of its own). */
static long peak_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* A FIFO with no writer used to block the loader (and the daemon's loop)
 * until one appeared; a device is no model either. Both are refused at
 * once, naming what they are. */
Test(core_model_hostile, fifo_and_device_refused_without_blocking, .timeout = 10) {
    struct snn_model m;
    char msg[256];
    cr_assert(eq(int, mkfifo(tmp_path("fifo.kwsm"), 0600), 0));
    cr_assert(eq(int, snn_model_load(&m, tmp_path("fifo.kwsm"), msg, sizeof msg), -EINVAL));
    cr_assert(ne(ptr, strstr(msg, "fifo.kwsm: a FIFO, not a regular file"), NULL), "%s", msg);
    cr_assert(eq(ptr, m.mem, NULL));
    cr_assert(eq(int, snn_model_load(&m, "/dev/null", msg, sizeof msg), -EINVAL));
    cr_assert(eq(str, msg, "/dev/null: a character device, not a regular file"));
    cr_assert(eq(int, snn_model_load(&m, tmpdir, msg, sizeof msg), -EISDIR));
    cr_assert(ne(ptr, strstr(msg, "a directory, not a regular file"), NULL), "%s", msg);
}

/* A 600 MB file was read whole (600 MB of memory) before its header was
 * looked at. Now a file larger than any header can announce (564 MB) is
 * refused from its size alone; otherwise the header is read first and the
 * file's size must be the one it announces. The files are sparse: they cost no disk. */
Test(core_model_hostile, large_files_refused_from_header_and_size) {
    struct snn_model m;
    char msg[256];
    size_t len;
    uint8_t *b = encoded(1, SNN_REC_CONV, 0, &len);
    long rss0 = peak_rss_kib();

    /* A valid model with 400 MB of trailing bytes (below the largest model). */
    int fd = open(tmp_path("big.kwsm"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(ge(int, fd, 0));
    cr_assert(eq(long, (long)write(fd, b, len), (long)len));
    cr_assert(eq(int, ftruncate(fd, 400l << 20), 0));
    close(fd);
    cr_assert(eq(int, snn_model_load(&m, tmp_path("big.kwsm"), msg, sizeof msg), KWS_EBADFIELD));
    char want[128];
    snprintf(want, sizeof want, "file size: %ld bytes, %zu more than the header announces",
             400l << 20, (size_t)(400l << 20) - len);
    cr_assert(eq(str, msg, want));

    /* 400 MB whose header is not a model's. */
    fd = open(tmp_path("junk.kwsm"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(eq(long, (long)write(fd, "JUNK", 4), 4l));
    cr_assert(eq(int, ftruncate(fd, 400l << 20), 0));
    close(fd);
    cr_assert(eq(int, snn_model_load(&m, tmp_path("junk.kwsm"), msg, sizeof msg), KWS_EBADMAGIC));

    /* Larger than any header can announce (4 dense layers of 4096 neurons,
     * and 64 takes of 400 frames of 256 bands: the largest verifier, so long
     * as a front end has at most 256 bands). */
    struct kws_frontend_cfg fe;
    audio_fe_cfg_default(&fe);
    fe.n_mels = KWS_VERIFY_MAX_FEAT + 1;
    cr_assert(lt(int, kws_frontend_cfg_check(&fe, NULL, 0), 0), "n_mels bounds n_feat");
    fd = open(tmp_path("huge.kwsm"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(eq(long, (long)write(fd, b, len), (long)len));
    cr_assert(eq(int, ftruncate(fd, 1l << 30), 0));
    close(fd);
    cr_assert(eq(int, snn_model_load(&m, tmp_path("huge.kwsm"), msg, sizeof msg), KWS_EBADFIELD));
    cr_assert(
        eq(str, msg, "file size: 1073741824 bytes, more than the largest model (563808132 bytes)"));

    /* A file that is shorter than its header announces, from the file system. */
    fd = open(tmp_path("short.kwsm"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(eq(long, (long)write(fd, b, len - 8), (long)len - 8));
    close(fd);
    cr_assert(eq(int, snn_model_load(&m, tmp_path("short.kwsm"), msg, sizeof msg), KWS_ETRUNCATED));
    cr_assert(eq(int, strncmp(msg, "file size: ", 11), 0), "%s", msg);

    long grown = peak_rss_kib() - rss0;
    cr_assert(lt(long, grown, 16l * 1024), "peak RSS grew by %ld KiB", grown);
    free(b);
}

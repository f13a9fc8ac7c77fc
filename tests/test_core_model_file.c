/* test_core_model_file.c: .kwsm save/load and every way a file can be damaged.
 *
 * A round trip keeps the configuration and every parameter bit for bit and
 * leaves a model that steps identically. Damaged files are refused with the
 * right code and a message naming the field: every prefix of a valid file,
 * bad magic, version, header size, checksum, trailing bytes, absurd sizes,
 * invalid topology fields (with the checksum recomputed, so that the field
 * check itself is exercised), a NaN parameter, unterminated labels. A
 * verifier (an enrolled word's takes) survives the round trip too, and a
 * model without one encodes exactly as before it existed.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kws/err.h"
#include "kws/snn.h"
#include "model_file_internal.h"

/* Byte offsets of a few header fields (docs/MODEL_FORMAT.md). */
enum {
    OFF_VERSION = 4,
    OFF_HEADER_BYTES = 8,
    OFF_N_IN = 12,
    OFF_N_LAYERS = 16,
    OFF_LAYER = 20, /* + 32 * l: n, rec, k, d_max, beta, gain, thresh, reset */
    OFF_N_CLASSES = 148,
    OFF_LABELS = 160,
    OFF_FE = 1184,
    OFF_N_PARAMS = 1284,
    OFF_VERIFY = 1332, /* label, n_takes, n_feat, k, back, ahead, cut, n_frames, kind */
    OFF_PAD = 1368,
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

/* A small model: 2 hidden layers (LIF, conv-delay), 3 classes, and a front
 * end that makes its 6 inputs (3 bands x 2 levels). */
static void make_model(struct snn_model *m) {
    struct snn_cfg c;
    memset(&c, 0, sizeof c);
    c.n_in = 6;
    c.n_layers = 2;
    c.layer[0] = (struct snn_layer_cfg){5, SNN_REC_NONE, 0, 0, 0.047619f, 1.0f, 1.0f, 0, 0, 0};
    c.layer[1] = (struct snn_layer_cfg){4, SNN_REC_CONV, 3, 7, 0.38583f, 1.0f, 1.0f, 0, 0, 0};
    c.n_classes = 3;
    c.out_beta = 0.047619f;
    c.out_gain = 1.0f;
    c.threshold = 0.55f;
    strcpy(c.labels[0], "yes");
    strcpy(c.labels[1], "no");
    strcpy(c.labels[2], "_unknown_");
    c.fe = (struct kws_frontend_cfg){.sample_rate = 16000,
                                     .win_len = 400,
                                     .hop = 160,
                                     .n_fft = 512,
                                     .n_mels = 3,
                                     .fmin = 20.0f,
                                     .fmax = 7600.0f,
                                     .pcen = 1,
                                     .pcen_s = 0.025f,
                                     .pcen_alpha = 0.98f,
                                     .pcen_delta = 2.0f,
                                     .pcen_r = 0.5f,
                                     .pcen_eps = 1e-6f,
                                     .enc_kind = KWS_ENC_LEVEL,
                                     .enc_levels = 2,
                                     .enc_thresh = {0.5f, 1.0f},
                                     .feat_mean = 0.25f,
                                     .feat_scale = 1.5f,
                                     .pcen_release = 0.2f};
    cr_assert(eq(int, snn_model_init(m, &c), 0));
    for (size_t i = 0; i < m->n_params; i++)
        m->mem[i] = sinf((float)i * 0.37f) * 0.9f;
    for (int j = 0; j < 4; j++)
        m->p.delay[1][j] = (float)(j * 2) + 0.25f;
    snn_model_prepare(m);
}

/* Gives m a verifier of three takes (2, 5 and 3 frames) of the word "yes"
 * over the front end's bands, each frame normalised as enrolment does. */
static void add_verifier(struct snn_model *m) {
    static const int32_t len[3] = {2, 5, 3};
    struct kws_verifier *v = &m->verify;
    cr_assert(eq(int, kws_verifier_alloc(v, 3, len, m->cfg.fe.n_mels), 0));
    for (size_t i = 0; i < v->n_frames * (size_t)v->n_feat; i++)
        v->feat[i] = cosf((float)i * 0.77f) + 0.1f * (float)(i % 5);
    for (size_t f = 0; f < v->n_frames; f++)
        kws_verify_norm(v->feat + f * (size_t)v->n_feat, v->n_feat);
    v->label = 0;
    v->k = 2;
    v->back = 40;
    v->ahead = 10;
    v->cut = 0.75f;
}

/* make_model with add_verifier, encoded: the bytes (malloc'd), *len of them. */
static uint8_t *encoded_verified(struct snn_model *m, size_t *len) {
    make_model(m);
    add_verifier(m);
    *len = kwsm__encoded_size(m);
    uint8_t *b = malloc(*len);
    cr_assert(not(eq(ptr, b, NULL)));
    cr_assert(eq(int, kwsm__encode(m, b), 0));
    return b;
}

/* The encoded bytes of the small model; *len receives the size. */
static uint8_t *encoded(size_t *len) {
    struct snn_model m;
    make_model(&m);
    *len = kwsm__encoded_size(&m);
    uint8_t *b = malloc(*len);
    cr_assert(eq(int, kwsm__encode(&m, b), 0));
    snn_model_free(&m);
    return b;
}

/* Recomputes the trailing CRC after a test edited the bytes. */
static void fix_crc(uint8_t *b, size_t len) {
    put_u32(b + len - 4, kwsm__crc32(b, len - 4));
}

/* Loads b and checks the code and that the message starts with want. */
static void expect_refused(const uint8_t *b, size_t len, int code, const char *want) {
    struct snn_model m;
    char msg[256] = "unset";
    int rc = snn_model_load_buffer(&m, b, len, msg, sizeof msg);
    cr_assert(eq(int, rc, code), "len %zu: got %s (%s), want %s", len, kws_err_name(rc), msg,
              kws_err_name(code));
    cr_assert(eq(int, strncmp(msg, want, strlen(want)), 0), "message \"%s\" should start \"%s\"",
              msg, want);
    cr_assert(eq(ptr, m.mem, NULL), "m left zeroed");
    cr_assert(eq(sz, m.n_params, 0));
}

static char tmpdir[64];

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kws-test-model-XXXXXX");
    cr_assert(ne(ptr, mkdtemp(tmpdir), NULL));
}

static void remove_tmpdir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert(eq(int, system(cmd), 0));
}

TestSuite(core_model_file, .init = make_tmpdir, .fini = remove_tmpdir);

/* ==== Round trip ==== */

Test(core_model_file, save_load_round_trip) {
    struct snn_model a, b;
    make_model(&a);
    char path[128];
    snprintf(path, sizeof path, "%s/m.kwsm", tmpdir);
    cr_assert(eq(int, snn_model_save(&a, path), 0));
    struct stat st;
    cr_assert(eq(int, stat(path, &st), 0));
    cr_assert(eq(sz, (size_t)st.st_size, KWSM_HEADER_BYTES + 4 * a.n_params + 4));
    char msg[256];
    cr_assert(eq(int, snn_model_load(&b, path, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(int, memcmp(&a.cfg, &b.cfg, sizeof a.cfg), 0), "cfg survives field by field");
    cr_assert(eq(flt, b.cfg.threshold, 0.55f), "the calibrated threshold too");
    cr_assert(eq(flt, b.cfg.fe.pcen_release, 0.2f), "and the PCEN release");
    cr_assert(eq(sz, a.n_params, b.n_params));
    cr_assert(eq(int, memcmp(a.mem, b.mem, a.n_params * sizeof(float)), 0));
    cr_assert(eq(int, memcmp(a.delay_int[1], b.delay_int[1], 4 * sizeof(int32_t)), 0));
    cr_assert(eq(i32, b.delay_int[1][3], 6));

    /* Same outputs frame by frame. */
    struct snn_state sa, sb;
    cr_assert(eq(int, snn_state_init(&sa, &a), 0));
    cr_assert(eq(int, snn_state_init(&sb, &b), 0));
    for (int t = 0; t < 20; t++) {
        float x[6] = {0}, oa[3], ob[3];
        x[t % 6] = 2.0f;
        x[(t * 5) % 6] += 1.0f;
        snn_step(&a, &sa, x, oa);
        snn_step(&b, &sb, x, ob);
        cr_assert(eq(int, memcmp(oa, ob, sizeof oa), 0));
    }

    /* Saving again replaces the file atomically and leaves no temp file. */
    a.p.b_out[0] = 42.0f;
    cr_assert(eq(int, snn_model_save(&a, path), 0));
    snn_state_free(&sb);
    snn_model_free(&b);
    cr_assert(eq(int, snn_model_load(&b, path, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(flt, b.p.b_out[0], 42.0f));
    char cmd[160];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", tmpdir);
    cr_assert(eq(int, system(cmd), 0), "only m.kwsm in the directory");
    snn_state_free(&sa);
    snn_model_free(&a);
    snn_model_free(&b);
}

/* Conv channels live at 1296 + 4 l and change the kernel's size to G*G*K. */
Test(core_model_file, conv_channels_round_trip) {
    struct snn_model a, b;
    make_model(&a);
    struct snn_cfg c = a.cfg;
    snn_model_free(&a);
    c.layer[1].ch = 2;
    cr_assert(eq(int, snn_model_init(&a, &c), 0));
    cr_assert(eq(sz, snn_rec_weight_count(&a.cfg.layer[1]), 12));
    for (size_t i = 0; i < a.n_params; i++)
        a.mem[i] = cosf((float)i * 0.21f);
    snn_model_prepare(&a);
    size_t len = kwsm__encoded_size(&a);
    uint8_t *buf = malloc(len);
    cr_assert(eq(int, kwsm__encode(&a, buf), 0));
    cr_assert(eq(u8, buf[1296 + 4], 2));
    char msg[256];
    cr_assert(eq(int, snn_model_load_buffer(&b, buf, len, msg, sizeof msg), 0), "%s", msg);
    cr_assert(eq(int, b.cfg.layer[1].ch, 2));
    cr_assert(eq(int, b.cfg.layer[0].ch, 0));
    cr_assert(eq(sz, b.n_params, a.n_params));
    cr_assert(eq(int, memcmp(a.mem, b.mem, a.n_params * sizeof(float)), 0));
    free(buf);
    snn_model_free(&a);
    snn_model_free(&b);
}

/* A verifier's fields live at 1332..1363 and its block after the
 * parameters; it loads field by field and bit for bit, and re-saves to the
 * same bytes. */
Test(core_model_file, verifier_round_trip) {
    struct snn_model a, b;
    make_model(&a);
    add_verifier(&a);
    char path[128], path2[128], msg[256];
    snprintf(path, sizeof path, "%s/v.kwsm", tmpdir);
    snprintf(path2, sizeof path2, "%s/v2.kwsm", tmpdir);
    cr_assert(eq(int, snn_model_save(&a, path), 0));
    struct stat st;
    cr_assert(eq(int, stat(path, &st), 0));
    cr_assert(
        eq(sz, (size_t)st.st_size, KWSM_HEADER_BYTES + 4 * a.n_params + 4 * 3 + 4 * 10 * 3 + 4));
    cr_assert(eq(sz, (size_t)st.st_size, kwsm__encoded_size(&a)));

    cr_assert(eq(int, snn_model_load(&b, path, msg, sizeof msg), 0), "%s", msg);
    const struct kws_verifier *v = &b.verify;
    cr_assert(eq(i32, v->label, 0));
    cr_assert(eq(i32, v->n_takes, 3));
    cr_assert(eq(i32, v->n_feat, 3));
    cr_assert(eq(i32, v->k, 2));
    cr_assert(eq(i32, v->back, 40));
    cr_assert(eq(i32, v->ahead, 10));
    cr_assert(eq(flt, v->cut, 0.75f));
    cr_assert(eq(sz, v->n_frames, 10));
    cr_assert(eq(int, memcmp(v->len, a.verify.len, 3 * sizeof *v->len), 0));
    cr_assert(eq(int, memcmp(v->feat, a.verify.feat, 30 * sizeof *v->feat), 0));
    cr_assert(eq(int, memcmp(a.mem, b.mem, a.n_params * sizeof(float)), 0));
    cr_assert(snn_model_same(&a, &b));

    /* Saved again from what was loaded: the same bytes. */
    cr_assert(eq(int, snn_model_save(&b, path2), 0));
    char cmd[320];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", path, path2);
    cr_assert(eq(int, system(cmd), 0), "re-saved file differs");

    /* snn_model_same sees every part of the verifier. */
    b.verify.feat[29] += 1e-3f;
    cr_assert(not(snn_model_same(&a, &b)), "a feature");
    b.verify.feat[29] = a.verify.feat[29];
    b.verify.cut = 0.5f;
    cr_assert(not(snn_model_same(&a, &b)), "the cut");
    b.verify.cut = a.verify.cut;
    b.verify.len[0] = 3;
    b.verify.len[1] = 4;
    cr_assert(not(snn_model_same(&a, &b)), "the lengths");
    b.verify.len[0] = 2;
    b.verify.len[1] = 5;
    cr_assert(snn_model_same(&a, &b));
    struct snn_model c;
    make_model(&c);
    cr_assert(not(snn_model_same(&a, &c)), "a model without a verifier");
    snn_model_free(&c);
    snn_model_free(&a);
    snn_model_free(&b);
}

Test(core_model_file, verifier_fields_little_endian) {
    struct snn_model a;
    size_t len;
    uint8_t *b = encoded_verified(&a, &len);
    static const uint8_t want[32] = {0,  0, 0, 0, 3,  0, 0, 0, 3, 0, 0,    0,    2,  0, 0, 0,
                                     40, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0x40, 0x3f, 10, 0, 0, 0};
    cr_assert(eq(int, memcmp(b + OFF_VERIFY, want, sizeof want), 0), "0.75f = 0x3f400000");
    for (size_t i = OFF_PAD; i < KWSM_HEADER_BYTES; i++)
        cr_assert(eq(u8, b[i], 0), "padding byte %zu", i);
    const uint8_t *vb = b + KWSM_HEADER_BYTES + 4 * a.n_params;
    cr_assert(eq(u8, vb[0], 2));
    cr_assert(eq(u8, vb[4], 5));
    cr_assert(eq(u8, vb[8], 3));
    float f;
    memcpy(&f, vb + 12 + 4 * 7, 4);
    cr_assert(eq(flt, f, a.verify.feat[7]), "features follow the lengths, frame after frame");
    free(b);
    snn_model_free(&a);
}

/* A model without a verifier encodes as before: the verifier fields are
 * padding, zero, and no block follows the parameters. The shipped models
 * and the golden ones load and re-encode to their own bytes. */
Test(core_model_file, no_verifier_encodes_as_before) {
    size_t len;
    uint8_t *b = encoded(&len);
    struct snn_model m;
    make_model(&m);
    cr_assert(eq(sz, len, KWSM_HEADER_BYTES + 4 * m.n_params + 4));
    for (size_t i = OFF_VERIFY; i < KWSM_HEADER_BYTES; i++)
        cr_assert(eq(u8, b[i], 0), "byte %zu", i);
    snn_model_free(&m);
    free(b);

    static const char *const dirs[] = {KWSD_SOURCE_DIR "/models", KWSD_SOURCE_DIR "/tests/golden"};
    int n_files = 0;
    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
        DIR *dir = opendir(dirs[d]);
        cr_assert(ne(ptr, dir, NULL), "%s", dirs[d]);
        struct dirent *e;
        while ((e = readdir(dir))) {
            size_t n = strlen(e->d_name);
            if (n < 5 || strcmp(e->d_name + n - 5, ".kwsm") != 0)
                continue;
            char path[512], msg[256];
            snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
            FILE *f = fopen(path, "rb");
            cr_assert(ne(ptr, f, NULL), "%s", path);
            fseek(f, 0, SEEK_END);
            size_t flen = (size_t)ftell(f);
            rewind(f);
            uint8_t *file = malloc(flen);
            cr_assert(eq(sz, fread(file, 1, flen, f), flen));
            fclose(f);
            cr_assert(eq(int, snn_model_load(&m, path, msg, sizeof msg), 0), "%s: %s", path, msg);
            cr_assert(eq(i32, m.verify.n_takes, 0), "%s", path);
            cr_assert(eq(sz, kwsm__encoded_size(&m), flen), "%s", path);
            uint8_t *again = malloc(flen);
            cr_assert(eq(int, kwsm__encode(&m, again), 0));
            cr_assert(eq(int, memcmp(file, again, flen), 0), "%s re-encodes to other bytes", path);
            free(again);
            free(file);
            snn_model_free(&m);
            n_files++;
        }
        closedir(dir);
    }
    cr_assert(ge(int, n_files, 5), "found %d model files", n_files);
}

/* Nor is a verifier that breaks the reader's rules ever written. */
Test(core_model_file, bad_verifier_never_written) {
    struct snn_model m;
    size_t len;
    uint8_t *b = encoded_verified(&m, &len);
    struct kws_verifier *v = &m.verify;
    struct {
        int32_t *field;
        int32_t bad;
    } ints[] = {
        {&v->label, 2},                   /* "_unknown_" never fires */
        {&v->label, 3},                   /* no such class */
        {&v->k, 0},                       /* k in 1..n_takes */
        {&v->k, 4},                       /* more than the takes */
        {&v->n_feat, 4},                  /* not fe.n_mels */
        {&v->kind, 2},                    /* no such kind of features */
        {&v->kind, -1},   {&v->back, -1}, /* negative */
        {&v->ahead, 995},                 /* span 40 + 995 + 1 > 1000 */
        {&v->len[1], 0},                  /* an empty take */
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int32_t keep = *ints[i].field;
        *ints[i].field = ints[i].bad;
        cr_assert(eq(int, kwsm__encode(&m, b), KWS_EBADFIELD), "case %zu", i);
        *ints[i].field = keep;
    }
    /* the cepstrum of fe.n_mels bands has at most n_mels - 1 coefficients after c0 */
    {
        v->kind = KWS_VERIFY_CEPSTRUM;
        cr_assert(eq(int, kwsm__encode(&m, b), KWS_EBADFIELD), "cepstrum of n_mels values");
        v->kind = KWS_VERIFY_SHAPE;
    }
    v->len[1] = 6; /* the lengths no longer sum to n_frames */
    cr_assert(eq(int, kwsm__encode(&m, b), KWS_EBADFIELD));
    v->len[1] = 5;
    v->cut = NAN;
    cr_assert(eq(int, kwsm__encode(&m, b), KWS_EBADFIELD));
    v->cut = -0.5f;
    cr_assert(eq(int, kwsm__encode(&m, b), KWS_EBADFIELD));
    v->cut = 0.75f;
    v->feat[17] = INFINITY;
    char path[128];
    snprintf(path, sizeof path, "%s/bad-verifier.kwsm", tmpdir);
    cr_assert(eq(int, snn_model_save(&m, path), KWS_EBADFIELD), "an inf feature");
    cr_assert(ne(int, access(path, F_OK), 0));
    v->feat[17] = 0.0f;
    cr_assert(eq(int, kwsm__encode(&m, b), 0));
    free(b);
    snn_model_free(&m);

    /* No takes, but a field left behind. */
    make_model(&m);
    m.verify.k = 3;
    len = kwsm__encoded_size(&m);
    b = malloc(len);
    cr_assert(eq(int, kwsm__encode(&m, b), KWS_EBADFIELD));
    m.verify.k = 0;
    cr_assert(eq(int, kwsm__encode(&m, b), 0));
    free(b);
    snn_model_free(&m);
}

Test(core_model_file, header_is_little_endian_field_by_field) {
    size_t len;
    uint8_t *b = encoded(&len);
    cr_assert(eq(int, memcmp(b, "KWS1", 4), 0));
    cr_assert(eq(u8, b[OFF_VERSION], 1));
    cr_assert(eq(u8, b[OFF_HEADER_BYTES], 0x00));
    cr_assert(eq(u8, b[OFF_HEADER_BYTES + 1], 0x06)); /* 1536 = 0x600 */
    cr_assert(eq(u8, b[OFF_N_IN], 6));
    cr_assert(eq(u8, b[OFF_N_LAYERS], 2));
    cr_assert(eq(u8, b[OFF_LAYER + 32 + 4], SNN_REC_CONV));
    cr_assert(eq(u8, b[OFF_LAYER + 32 + 8], 3));
    cr_assert(eq(u8, b[OFF_N_CLASSES], 3));
    cr_assert(eq(str, (char *)b + OFF_LABELS + 2 * 32, "_unknown_"));
    cr_assert(eq(u8, b[OFF_FE], 0x80)); /* 16000 = 0x3e80 */
    cr_assert(eq(u8, b[OFF_FE + 1], 0x3e));
    cr_assert(eq(u8, b[OFF_N_PARAMS], (uint8_t)((len - 1540) / 4)));
    free(b);
}

/* ==== Damaged files ==== */

Test(core_model_file, every_prefix_is_truncated) {
    size_t len;
    uint8_t *b = encoded(&len);
    for (size_t n = 0; n < len; n++) {
        /* A fresh heap copy of exactly n bytes, so ASan catches any over-read. */
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, b, n);
        struct snn_model m;
        char msg[256];
        int rc = snn_model_load_buffer(&m, p, n, msg, sizeof msg);
        cr_assert(eq(int, rc, KWS_ETRUNCATED), "prefix %zu: %s (%s)", n, kws_err_name(rc), msg);
        cr_assert(eq(int, strncmp(msg, "file size: ", 11), 0), "%s", msg);
        free(p);
    }
    free(b);
}

Test(core_model_file, bad_magic_version_header_size) {
    size_t len;
    uint8_t *b = encoded(&len);
    b[0] = 'X';
    expect_refused(b, len, KWS_EBADMAGIC, "magic: 0x3153575");
    b[0] = 'K';
    put_u32(b + OFF_VERSION, 2);
    fix_crc(b, len);
    expect_refused(b, len, KWS_EBADVERSION, "version: 2, this build reads version 1");
    put_u32(b + OFF_VERSION, 1);
    put_u32(b + OFF_HEADER_BYTES, 256);
    fix_crc(b, len);
    expect_refused(b, len, KWS_EBADFIELD, "header_bytes: 256");
    free(b);
}

Test(core_model_file, bad_checksum_and_trailing_bytes) {
    size_t len;
    uint8_t *b = encoded(&len);
    b[KWSM_HEADER_BYTES + 5] ^= 0x10; /* one flipped bit in a parameter */
    expect_refused(b, len, KWS_EBADCHECKSUM, "checksum: stored 0x");
    b[KWSM_HEADER_BYTES + 5] ^= 0x10;
    b[len - 1] ^= 0xff; /* damaged checksum itself */
    expect_refused(b, len, KWS_EBADCHECKSUM, "checksum: stored 0x");
    b[len - 1] ^= 0xff;
    uint8_t *longer = calloc(len + 8, 1);
    memcpy(longer, b, len);
    expect_refused(longer, len + 8, KWS_EBADFIELD, "file size: ");
    free(longer);
    free(b);
}

struct field_case {
    size_t off;
    int kind; /* 0: int32, 1: float32, 2: fill 32 label bytes with 'x' */
    double value;
    int code;
    char want[64]; /* inline: Criterion runs each parameter in a fresh process */
};

static const struct field_case field_cases[] = {
    {OFF_N_IN, 0, 0, KWS_EBADFIELD, "n_in: 0 out of range"},
    {OFF_N_IN, 0, 1 << 30, KWS_EBADFIELD, "n_in: 1073741824 out of range"},
    {OFF_N_LAYERS, 0, 0, KWS_EBADFIELD, "n_layers: 0 out of range"},
    {OFF_N_LAYERS, 0, 99, KWS_EBADFIELD, "n_layers: 99 out of range"},
    {OFF_N_LAYERS, 0, -1, KWS_EBADFIELD, "n_layers: -1 out of range"},
    {OFF_N_LAYERS, 0, 3, KWS_EBADFIELD, "layer[2].n: 0 out of range"},
    {OFF_N_LAYERS, 0, 1, KWS_EBADFIELD, "layer[1]: unused (n_layers is 1) but not zero"},
    {OFF_LAYER + 0, 0, 1 << 24, KWS_EBADFIELD, "layer[0].n: 16777216 out of range"},
    {OFF_LAYER + 32 + 8, 0, 4, KWS_EBADFIELD, "layer[1].k: 4 is even"},
    {OFF_LAYER + 32 + 12, 0, 1 << 20, KWS_EBADFIELD, "layer[1].d_max: 1048576 out of range"},
    {OFF_LAYER + 32 + 12, 0, -2, KWS_EBADFIELD, "layer[1].d_max: -2 out of range"},
    {OFF_LAYER + 32 + 4, 0, 9, KWS_EBADFIELD, "layer[1].rec: 9 is not"},
    {OFF_LAYER + 32 + 16, 1, NAN, KWS_EBADFIELD, "layer[1].beta: nan"},
    {OFF_LAYER + 24, 1, -1.0, KWS_EBADFIELD, "layer[0].thresh: -1 is not"},
    {OFF_LAYER + 28, 0, 5, KWS_EBADFIELD, "layer[0].reset: 5 is not"},
    {OFF_N_CLASSES, 0, 0, KWS_EBADFIELD, "n_classes: 0 out of range"},
    {OFF_N_CLASSES, 0, 1000, KWS_EBADFIELD, "n_classes: 1000 out of range"},
    {OFF_N_CLASSES, 0, 2, KWS_EBADFIELD, "labels[2]: unused (n_classes is 2) but not zero"},
    {OFF_LABELS + 32, 2, 0, KWS_EBADFIELD, "labels[1]: not NUL-terminated"},
    {OFF_FE + 4 * 7, 0, 3, KWS_EBADFIELD, "fe.pcen: 3 must be 0 or 1"},
    {OFF_FE + 4 * 14, 0, 9, KWS_EBADFIELD, "fe.enc_levels: 9 out of range [1, 8]"},
    {OFF_FE + 4 * 6, 1, INFINITY, KWS_EBADFIELD, "fe.fmax: inf is not finite"},
    {OFF_N_PARAMS, 0, 7, KWS_EBADFIELD, "n_params: 7 but the topology needs"},
    {1292, 1, 1.5, KWS_EBADFIELD, "threshold: 1.5 out of range [0, 1]"},
    {1292, 1, NAN, KWS_EBADFIELD, "threshold: nan out of range [0, 1]"},
    {1296, 0, 2, KWS_EBADFIELD, "layer[0].ch: 2 but the layer has no conv recurrence"},
    {1296 + 4, 0, 3, KWS_EBADFIELD, "layer[1].ch: 3 conv channels do not divide 4 neurons"},
    {1296 + 4, 0, 2, KWS_EBADFIELD, "n_params: 81 but the topology needs 90"},
    {1296 + 8, 0, 1, KWS_EBADFIELD, "layer[2]: unused (n_layers is 2) but not zero"},
    {1312, 0, 3, KWS_EBADFIELD, "layer[0].in_d_max: 3 but only layers after the first"},
    {1312 + 4, 0, 300, KWS_EBADFIELD, "layer[1].in_d_max: 300 out of range [0, 255]"},
    {1312 + 4, 0, 2, KWS_EBADFIELD, "n_params: 81 but the topology needs"},
    {1312 + 8, 0, 1, KWS_EBADFIELD, "layer[2]: unused (n_layers is 2) but not zero"},
    {1328, 1, 1.5, KWS_EBADFIELD, "pcen_release: 1.5 out of range [0, 1]"},
    {1328, 1, -0.1, KWS_EBADFIELD, "pcen_release: -0.1 out of range [0, 1]"},
    {1328, 1, NAN, KWS_EBADFIELD, "pcen_release: nan out of range [0, 1]"},
    {1400, 0, 1, KWS_EBADFIELD, "header padding: bytes 1368..1535"},
    /* Without a verifier (n_takes 0), every verifier field must be zero. */
    {OFF_VERIFY, 0, 1, KWS_EBADFIELD, "verify.label: 1, but verify.n_takes is 0 (no verifier)"},
    {OFF_VERIFY + 12, 0, 3, KWS_EBADFIELD, "verify.k: 3, but verify.n_takes is 0"},
    {OFF_VERIFY + 24, 1, 0.5, KWS_EBADFIELD, "verify.cut: 0.5, but verify.n_takes is 0"},
    {OFF_VERIFY + 28, 0, 10, KWS_EBADFIELD, "verify.n_frames: 10, but verify.n_takes is 0"},
    {OFF_VERIFY + 32, 0, 1, KWS_EBADFIELD, "verify.kind: 1, but verify.n_takes is 0"},
    /* One take announced, its other fields still zero. */
    {OFF_VERIFY + 4, 0, 1, KWS_EBADFIELD, "verify.n_feat: 0, but fe.n_mels is 3"},
    /* The first parameter, layer[0].w_in[0], then one inside the conv kernel. */
    {KWSM_HEADER_BYTES, 1, NAN, KWS_EBADFIELD, "layer[0].w_in[0]: nan is not finite"},
    {KWSM_HEADER_BYTES + 4 * (30 + 5 + 20 + 4 + 1), 1, -INFINITY, KWS_EBADFIELD,
     "layer[1].w_rec[1]: -inf is not finite"},
};

ParameterizedTestParameters(core_model_file, bad_field) {
    return cr_make_param_array(struct field_case, field_cases,
                               sizeof field_cases / sizeof field_cases[0]);
}

ParameterizedTest(const struct field_case *fc, core_model_file, bad_field) {
    size_t len;
    uint8_t *b = encoded(&len);
    if (fc->kind == 0)
        put_u32(b + fc->off, (uint32_t)(int32_t)fc->value);
    else if (fc->kind == 1)
        put_f32(b + fc->off, (float)fc->value);
    else
        memset(b + fc->off, 'x', 32);
    fix_crc(b, len);
    expect_refused(b, len, fc->code, fc->want);
    free(b);
}

Test(core_model_file, huge_sizes_never_allocate_or_overread) {
    /* A header announcing the largest topology, in a file of header size:
     * refused as truncated before any payload is read or allocated. The
     * widest front end makes 256 bands x 8 levels = 2048 inputs. */
    size_t len;
    uint8_t *b = encoded(&len);
    uint8_t *h = malloc(KWSM_HEADER_BYTES);
    memcpy(h, b, KWSM_HEADER_BYTES);
    put_u32(h + OFF_FE + 4 * 4, 256);
    put_u32(h + OFF_FE + 4 * 14, 8);
    put_u32(h + OFF_N_IN, 256 * 8);
    put_u32(h + OFF_N_LAYERS, 2);
    put_u32(h + OFF_LAYER + 0, SNN_MAX_NEURONS);
    put_u32(h + OFF_LAYER + 32 + 0, SNN_MAX_NEURONS);
    put_u32(h + OFF_LAYER + 32 + 4, SNN_REC_DENSE);
    put_u32(h + OFF_LAYER + 32 + 8, 0);
    put_u32(h + OFF_LAYER + 32 + 12, SNN_MAX_DELAY);
    uint64_t n = 4096ull * 2048 + 4096ull * 4096 * 2 + 3 * 4096 + 3 * 4096 + 3;
    put_u32(h + OFF_N_PARAMS, (uint32_t)n);
    put_u32(h + OFF_N_PARAMS + 4, (uint32_t)(n >> 32));
    expect_refused(h, KWSM_HEADER_BYTES, KWS_ETRUNCATED, "file size: 1536 bytes, the header");
    /* n_params with the high word set cannot match any topology. */
    put_u32(h + OFF_N_PARAMS + 4, 1);
    expect_refused(h, KWSM_HEADER_BYTES, KWS_EBADFIELD, "n_params: ");
    free(h);
    free(b);
}

Test(core_model_file, load_errors_from_the_file_system) {
    struct snn_model m;
    char msg[256], path[128];
    snprintf(path, sizeof path, "%s/missing.kwsm", tmpdir);
    cr_assert(eq(int, snn_model_load(&m, path, msg, sizeof msg), -ENOENT));
    cr_assert(ne(ptr, strstr(msg, "missing.kwsm"), NULL));
    cr_assert(eq(int, snn_model_load(&m, tmpdir, msg, sizeof msg), -EISDIR));
    snprintf(path, sizeof path, "%s/empty.kwsm", tmpdir);
    FILE *f = fopen(path, "wb");
    fclose(f);
    cr_assert(eq(int, snn_model_load(&m, path, msg, sizeof msg), KWS_ETRUNCATED));
    snprintf(path, sizeof path, "%s/no/such/dir/x.kwsm", tmpdir);
    make_model(&m);
    cr_assert(eq(int, snn_model_save(&m, path), -ENOENT));
    m.p.w_out[1] = NAN;
    snprintf(path, sizeof path, "%s/nan.kwsm", tmpdir);
    cr_assert(eq(int, snn_model_save(&m, path), KWS_EBADFIELD), "a NaN is never written");
    cr_assert(ne(int, access(path, F_OK), 0));
    snn_model_free(&m);
}

Test(core_model_file, crc32_check_value) {
    cr_assert(eq(u32, kwsm__crc32("123456789", 9), 0xCBF43926u));
    cr_assert(eq(u32, kwsm__crc32("", 0), 0u));
}

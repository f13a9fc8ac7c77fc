/* test_core_model_file.c: .kwsm save/load and every way a file can be damaged.
 *
 * A round trip keeps the configuration and every parameter bit for bit and
 * leaves a model that steps identically. Damaged files are refused with the
 * right code and a message naming the field: every prefix of a valid file,
 * bad magic, version, header size, checksum, trailing bytes, absurd sizes,
 * invalid topology fields (with the checksum recomputed, so that the field
 * check itself is exercised), a NaN parameter, unterminated labels.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <criterion/parameterized.h>
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
    {1400, 0, 1, KWS_EBADFIELD, "header padding: bytes 1332..1535"},
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

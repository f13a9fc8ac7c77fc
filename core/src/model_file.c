/* model_file.c: reading and writing .kwsm model files.
 *
 * Layout (docs/MODEL_FORMAT.md): a fixed 1536-byte little-endian header
 * (magic "KWS1", version, header size, every struct snn_cfg field written one
 * by one, labels, front end settings, parameter count, the verifier's
 * fields, zero padding), the float32 parameters in struct snn_params order,
 * the optional verifier's take lengths and features, then a CRC-32 of
 * everything before it. Fields are encoded and decoded byte by byte, never by dumping a
 * struct, so the file does not depend on the host's padding or byte order.
 * The reader checks every field and every size before it touches the payload
 * and names the offending field in its message; it never reads past the
 * buffer. The front end settings pass the same check the front end runs
 * before it builds (kws_frontend_cfg_check), and the network's input count
 * must be what that front end makes. From a path, only a regular file is
 * read, and only its header until the header has been checked and its size
 * matches the file's. Writes are atomic: temp file in the same directory, fsync, rename,
 * fsync of the directory.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kws/err.h"
#include "kws/snn.h"
#include "model_file_internal.h"
#include "snn_internal.h"

/* Offsets of the header fields, in bytes. */
enum {
    KWSM_OFF_MAGIC = 0,
    KWSM_OFF_VERSION = 4,
    KWSM_OFF_HEADER_BYTES = 8,
    KWSM_OFF_N_IN = 12,
    KWSM_OFF_N_LAYERS = 16,
    KWSM_OFF_LAYERS = 20, /* SNN_MAX_LAYERS x 8 fields x 4 bytes */
    KWSM_LAYER_BYTES = 32,
    KWSM_OFF_N_CLASSES = KWSM_OFF_LAYERS + SNN_MAX_LAYERS * KWSM_LAYER_BYTES, /* 148 */
    KWSM_OFF_OUT_BETA = KWSM_OFF_N_CLASSES + 4,
    KWSM_OFF_OUT_GAIN = KWSM_OFF_OUT_BETA + 4,
    KWSM_OFF_LABELS = KWSM_OFF_OUT_GAIN + 4,                         /* 160 */
    KWSM_OFF_FE = KWSM_OFF_LABELS + SNN_MAX_CLASSES * SNN_LABEL_LEN, /* 1184 */
    KWSM_FE_BYTES = (15 + KWS_ENC_MAX_LEVELS + 2) * 4,               /* 100 */
    KWSM_OFF_N_PARAMS = KWSM_OFF_FE + KWSM_FE_BYTES,                 /* 1284, uint64 */
    KWSM_OFF_THRESHOLD = KWSM_OFF_N_PARAMS + 8,                      /* 1292, float32 */
    KWSM_OFF_CONV_CH = KWSM_OFF_THRESHOLD + 4,                /* 1296, SNN_MAX_LAYERS x int32 */
    KWSM_OFF_IN_DMAX = KWSM_OFF_CONV_CH + SNN_MAX_LAYERS * 4, /* 1312, SNN_MAX_LAYERS x int32 */
    KWSM_OFF_PCEN_RELEASE = KWSM_OFF_IN_DMAX + SNN_MAX_LAYERS * 4, /* 1328, float32 */
    KWSM_OFF_VERIFY_LABEL = KWSM_OFF_PCEN_RELEASE + 4,             /* 1332, int32 */
    KWSM_OFF_VERIFY_N_TAKES = KWSM_OFF_VERIFY_LABEL + 4,           /* 1336, int32 */
    KWSM_OFF_VERIFY_N_FEAT = KWSM_OFF_VERIFY_N_TAKES + 4,          /* 1340, int32 */
    KWSM_OFF_VERIFY_K = KWSM_OFF_VERIFY_N_FEAT + 4,                /* 1344, int32 */
    KWSM_OFF_VERIFY_BACK = KWSM_OFF_VERIFY_K + 4,                  /* 1348, int32 */
    KWSM_OFF_VERIFY_AHEAD = KWSM_OFF_VERIFY_BACK + 4,              /* 1352, int32 */
    KWSM_OFF_VERIFY_CUT = KWSM_OFF_VERIFY_AHEAD + 4,               /* 1356, float32 */
    KWSM_OFF_VERIFY_N_FRAMES = KWSM_OFF_VERIFY_CUT + 4,            /* 1360, uint32 */
    KWSM_OFF_VERIFY_KIND = KWSM_OFF_VERIFY_N_FRAMES + 4,           /* 1364, int32 */
    KWSM_OFF_PAD = KWSM_OFF_VERIFY_KIND + 4,                       /* 1368 */
};

_Static_assert(KWSM_OFF_N_CLASSES == 148, "layer block moved");
_Static_assert(KWSM_OFF_FE == 1184, "labels moved");
_Static_assert(KWSM_OFF_PAD == 1368, "verifier fields moved");
_Static_assert(KWSM_OFF_PAD <= KWSM_HEADER_BYTES, "header fields overflow the header");
_Static_assert(KWSM_HEADER_BYTES % 64 == 0, "header keeps the payload aligned");
_Static_assert(SNN_MAX_LAYERS == 4 && SNN_MAX_CLASSES == 32 && SNN_LABEL_LEN == 32 &&
                   KWS_ENC_MAX_LEVELS == 8,
               "these limits are part of format version 1; bump KWSM_VERSION to change them");
_Static_assert(sizeof(float) == 4, "float32 payload");

/* ==== Little-endian encoding ==== */

static uint32_t kwsm__get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int32_t kwsm__get_i32(const uint8_t *p) {
    uint32_t u = kwsm__get_u32(p);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static float kwsm__get_f32(const uint8_t *p) {
    uint32_t u = kwsm__get_u32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint64_t kwsm__get_u64(const uint8_t *p) {
    return (uint64_t)kwsm__get_u32(p) | (uint64_t)kwsm__get_u32(p + 4) << 32;
}

static void kwsm__put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void kwsm__put_i32(uint8_t *p, int32_t v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    kwsm__put_u32(p, u);
}

static void kwsm__put_f32(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    kwsm__put_u32(p, u);
}

static void kwsm__put_u64(uint8_t *p, uint64_t v) {
    kwsm__put_u32(p, (uint32_t)v);
    kwsm__put_u32(p + 4, (uint32_t)(v >> 32));
}

uint32_t kwsm__crc32(const void *buf, size_t len) {
    /* CRC-32/ISO-HDLC (zlib, PNG): reflected polynomial 0xEDB88320, init and
     * final xor 0xFFFFFFFF. The table is rebuilt per call (256 entries, far
     * cheaper than reading a model), so there is no shared mutable state. */
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    const uint8_t *p = buf;
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* ==== Header fields ==== */

/* The front end fields in file order: name, kind (int32 or float32) and
 * where they live in the struct. Their ranges are checked afterwards, all
 * at once, by kws_frontend_cfg_check: the check the front end runs before
 * it builds itself, so a model that loads has a front end that builds. */
struct kwsm__fe_field {
    const char *name;
    bool is_float;
    size_t offset; /* into struct kws_frontend_cfg */
};

#define FE_I(f)                                                                                    \
    { "fe." #f, false, offsetof(struct kws_frontend_cfg, f) }
#define FE_F(f)                                                                                    \
    { "fe." #f, true, offsetof(struct kws_frontend_cfg, f) }
static const struct kwsm__fe_field kwsm__fe_fields[] = {
    FE_I(sample_rate),   FE_I(win_len),       FE_I(hop),           FE_I(n_fft),
    FE_I(n_mels),        FE_F(fmin),          FE_F(fmax),          FE_I(pcen),
    FE_F(pcen_s),        FE_F(pcen_alpha),    FE_F(pcen_delta),    FE_F(pcen_r),
    FE_F(pcen_eps),      FE_I(enc_kind),      FE_I(enc_levels),    FE_F(enc_thresh[0]),
    FE_F(enc_thresh[1]), FE_F(enc_thresh[2]), FE_F(enc_thresh[3]), FE_F(enc_thresh[4]),
    FE_F(enc_thresh[5]), FE_F(enc_thresh[6]), FE_F(enc_thresh[7]), FE_F(feat_mean),
    FE_F(feat_scale),
};
#undef FE_I
#undef FE_F
_Static_assert(sizeof kwsm__fe_fields / sizeof kwsm__fe_fields[0] * 4 == KWSM_FE_BYTES,
               "front end field table and KWSM_FE_BYTES disagree");
/* pcen_release came later and lives at KWSM_OFF_PCEN_RELEASE, after the table */
_Static_assert(sizeof(struct kws_frontend_cfg) == KWSM_FE_BYTES + 4 &&
                   offsetof(struct kws_frontend_cfg, pcen_release) == KWSM_FE_BYTES,
               "struct kws_frontend_cfg changed: update the field table and the format version");

/* Encodes the header of m into h (KWSM_HEADER_BYTES, zeroed by the caller). */
static void kwsm__encode_header(uint8_t *h, const struct snn_model *m) {
    const struct snn_cfg *c = &m->cfg;
    memcpy(h + KWSM_OFF_MAGIC, KWSM_MAGIC, 4);
    kwsm__put_u32(h + KWSM_OFF_VERSION, KWSM_VERSION);
    kwsm__put_u32(h + KWSM_OFF_HEADER_BYTES, KWSM_HEADER_BYTES);
    kwsm__put_i32(h + KWSM_OFF_N_IN, c->n_in);
    kwsm__put_i32(h + KWSM_OFF_N_LAYERS, c->n_layers);
    for (int l = 0; l < c->n_layers; l++) { /* unused layers stay zero */
        const struct snn_layer_cfg *lc = &c->layer[l];
        uint8_t *p = h + KWSM_OFF_LAYERS + l * KWSM_LAYER_BYTES;
        kwsm__put_i32(p + 0, lc->n);
        kwsm__put_i32(p + 4, lc->rec);
        kwsm__put_i32(p + 8, lc->k);
        kwsm__put_i32(p + 12, lc->d_max);
        kwsm__put_f32(p + 16, lc->beta);
        kwsm__put_f32(p + 20, lc->gain);
        kwsm__put_f32(p + 24, lc->thresh);
        kwsm__put_i32(p + 28, lc->reset);
        kwsm__put_i32(h + KWSM_OFF_CONV_CH + 4 * l, lc->ch);
        kwsm__put_i32(h + KWSM_OFF_IN_DMAX + 4 * l, lc->in_d_max);
    }
    kwsm__put_i32(h + KWSM_OFF_N_CLASSES, c->n_classes);
    kwsm__put_f32(h + KWSM_OFF_OUT_BETA, c->out_beta);
    kwsm__put_f32(h + KWSM_OFF_OUT_GAIN, c->out_gain);
    for (int k = 0; k < c->n_classes; k++) /* up to the NUL; the rest stays zero */
        memcpy(h + KWSM_OFF_LABELS + k * SNN_LABEL_LEN, c->labels[k], strlen(c->labels[k]));
    for (size_t i = 0; i < KWS_ARRAY_SIZE(kwsm__fe_fields); i++) {
        const struct kwsm__fe_field *f = &kwsm__fe_fields[i];
        const uint8_t *src = (const uint8_t *)&c->fe + f->offset;
        uint8_t *dst = h + KWSM_OFF_FE + 4 * i;
        if (f->is_float) {
            float v;
            memcpy(&v, src, 4);
            kwsm__put_f32(dst, v);
        } else {
            int32_t v;
            memcpy(&v, src, 4);
            kwsm__put_i32(dst, v);
        }
    }
    kwsm__put_u64(h + KWSM_OFF_N_PARAMS, (uint64_t)m->n_params);
    kwsm__put_f32(h + KWSM_OFF_THRESHOLD, c->threshold);
    kwsm__put_f32(h + KWSM_OFF_PCEN_RELEASE, c->fe.pcen_release);
    const struct kws_verifier *v = &m->verify; /* all zero without a verifier */
    kwsm__put_i32(h + KWSM_OFF_VERIFY_LABEL, v->label);
    kwsm__put_i32(h + KWSM_OFF_VERIFY_N_TAKES, v->n_takes);
    kwsm__put_i32(h + KWSM_OFF_VERIFY_N_FEAT, v->n_feat);
    kwsm__put_i32(h + KWSM_OFF_VERIFY_K, v->k);
    kwsm__put_i32(h + KWSM_OFF_VERIFY_BACK, v->back);
    kwsm__put_i32(h + KWSM_OFF_VERIFY_AHEAD, v->ahead);
    kwsm__put_f32(h + KWSM_OFF_VERIFY_CUT, v->cut);
    kwsm__put_u32(h + KWSM_OFF_VERIFY_N_FRAMES, (uint32_t)v->n_frames);
    kwsm__put_i32(h + KWSM_OFF_VERIFY_KIND, v->kind);
}

static bool kwsm__all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* ==== The verifier ==== */

/* An enrolled word's takes (kws/verify.h) are optional: their fields sit in
 * the header at KWSM_OFF_VERIFY_*, all zero without a verifier, and their
 * block follows the parameters: n_takes int32 lengths, then n_frames x
 * n_feat float32 features, take after take. The rules below are the
 * reader's and the writer's alike. */

/* Bytes of v's block after the parameters: 0 without a verifier, and 0 for
 * counts outside the limits (kwsm__check_verify refuses those), so the sum
 * is bounded by the limits and cannot overflow. */
static size_t kwsm__verify_bytes(const struct kws_verifier *v) {
    if (v->n_takes < 1 || v->n_takes > KWS_VERIFY_MAX_TAKES || v->n_feat < 1 ||
        v->n_feat > KWS_VERIFY_MAX_FEAT ||
        v->n_frames > (size_t)v->n_takes * KWS_VERIFY_MAX_TAKE_FRAMES)
        return 0;
    return 4 * (size_t)v->n_takes + 4 * v->n_frames * (size_t)v->n_feat;
}

/* Checks v's scalar fields against the valid configuration c they belong
 * to: n_takes 0 with every other field 0, or a verifier of a class that
 * fires, of a kind of features the front end's bands give, within the limits
 * of kws/verify.h. */
static int kwsm__check_verify(const struct kws_verifier *v, const struct snn_cfg *c, char *msg,
                              size_t msglen) {
    if (v->n_takes == 0) {
        const struct {
            const char *name;
            int32_t value;
        } f[] = {{"label", v->label}, {"kind", v->kind}, {"n_feat", v->n_feat},
                 {"k", v->k},         {"back", v->back}, {"ahead", v->ahead}};
        for (size_t i = 0; i < KWS_ARRAY_SIZE(f); i++)
            if (f[i].value)
                return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                                  "verify.%s: %d, but verify.n_takes is 0 (no verifier)", f[i].name,
                                  (int)f[i].value);
        uint32_t cut_bits;
        memcpy(&cut_bits, &v->cut, sizeof cut_bits);
        if (cut_bits)
            return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                              "verify.cut: %g, but verify.n_takes is 0 (no verifier)",
                              (double)v->cut);
        if (v->n_frames)
            return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                              "verify.n_frames: %zu, but verify.n_takes is 0 (no verifier)",
                              v->n_frames);
        return 0;
    }
    if (v->n_takes < 0 || v->n_takes > KWS_VERIFY_MAX_TAKES)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "verify.n_takes: %d out of range [0, %d]",
                          (int)v->n_takes, KWS_VERIFY_MAX_TAKES);
    if (v->label < 0 || v->label >= c->n_classes)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "verify.label: %d out of range [0, %d] (n_classes %d)", (int)v->label,
                          (int)c->n_classes - 1, (int)c->n_classes);
    if (c->labels[v->label][0] == '_')
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "verify.label: %d is \"%s\", a class that never fires", (int)v->label,
                          c->labels[v->label]);
    if (v->kind != KWS_VERIFY_SHAPE && v->kind != KWS_VERIFY_CEPSTRUM)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "verify.kind: %d out of range [0, 1] (0 the bands' shape, 1 their "
                          "cepstrum)",
                          (int)v->kind);
    if (v->kind == KWS_VERIFY_SHAPE && v->n_feat != c->fe.n_mels)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "verify.n_feat: %d, but fe.n_mels is %d (verify.kind 0, the bands)",
                          (int)v->n_feat, (int)c->fe.n_mels);
    if (v->kind == KWS_VERIFY_CEPSTRUM && (v->n_feat < 1 || v->n_feat >= c->fe.n_mels))
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "verify.n_feat: %d out of range [1, %d] (verify.kind 1, the cepstrum "
                          "of fe.n_mels %d bands)",
                          (int)v->n_feat, (int)c->fe.n_mels - 1, (int)c->fe.n_mels);
    int k_max = v->n_takes < KWS_VERIFY_MAX_K ? v->n_takes : KWS_VERIFY_MAX_K;
    if (v->k < 1 || v->k > k_max)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "verify.k: %d out of range [1, %d] (n_takes %d, at most %d)", (int)v->k,
                          k_max, (int)v->n_takes, KWS_VERIFY_MAX_K);
    if (v->back < 0 || v->ahead < 0)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "verify.%s: %d is negative",
                          v->back < 0 ? "back" : "ahead", (int)(v->back < 0 ? v->back : v->ahead));
    int64_t span = (int64_t)v->back + v->ahead + 1;
    if (span > KWS_VERIFY_MAX_SPAN)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "verify.back + verify.ahead + 1: %lld frames, at most %d",
                          (long long)span, KWS_VERIFY_MAX_SPAN);
    if (!(isfinite(v->cut) && v->cut >= 0.0f))
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "verify.cut: %g must be finite and >= 0",
                          (double)v->cut);
    size_t most = (size_t)v->n_takes * KWS_VERIFY_MAX_TAKE_FRAMES;
    if (v->n_frames < (size_t)v->n_takes || v->n_frames > most)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "verify.n_frames: %zu out of range [%d, %zu] (%d takes of 1..%d frames)",
                          v->n_frames, (int)v->n_takes, most, (int)v->n_takes,
                          KWS_VERIFY_MAX_TAKE_FRAMES);
    return 0;
}

/* Checks the n_takes take lengths at len: each 1..KWS_VERIFY_MAX_TAKE_FRAMES,
 * summing to n_frames. */
static int kwsm__check_verify_len(const int32_t *len, int n_takes, size_t n_frames, char *msg,
                                  size_t msglen) {
    size_t sum = 0;
    for (int t = 0; t < n_takes; t++) {
        if (len[t] < 1 || len[t] > KWS_VERIFY_MAX_TAKE_FRAMES)
            return kws_errmsg(KWS_EBADFIELD, msg, msglen, "verify.len[%d]: %d out of range [1, %d]",
                              t, (int)len[t], KWS_VERIFY_MAX_TAKE_FRAMES);
        sum += (size_t)len[t];
    }
    if (sum != n_frames)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "verify.n_frames: %zu, but the %d takes' lengths sum to %zu", n_frames,
                          n_takes, sum);
    return 0;
}

/* Names feature i of v (a flat index into v->feat) by its take, frame and
 * feature: a band (KWS_VERIFY_SHAPE), or a cepstral coefficient c1.. */
static int kwsm__verify_feat_error(const struct kws_verifier *v, size_t i, float f, char *msg,
                                   size_t msglen) {
    size_t frame = i / (size_t)v->n_feat, b = i % (size_t)v->n_feat;
    int t = 0;
    while (t < v->n_takes - 1 && frame >= (size_t)v->len[t])
        frame -= (size_t)v->len[t++];
    int ceps = v->kind == KWS_VERIFY_CEPSTRUM;
    return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                      "verify.feat[%zu]: %g is not finite (take %d, frame %zu, %s%zu)", i,
                      (double)f, t, frame, ceps ? "c" : "band ", b + (size_t)ceps);
}

/* Decodes the verifier's header fields into v (its arrays NULL) and checks
 * them against the valid configuration c. */
static int kwsm__decode_verify(struct kws_verifier *v, const struct snn_cfg *c, const uint8_t *h,
                               char *msg, size_t msglen) {
    memset(v, 0, sizeof *v);
    v->label = kwsm__get_i32(h + KWSM_OFF_VERIFY_LABEL);
    v->n_takes = kwsm__get_i32(h + KWSM_OFF_VERIFY_N_TAKES);
    v->n_feat = kwsm__get_i32(h + KWSM_OFF_VERIFY_N_FEAT);
    v->k = kwsm__get_i32(h + KWSM_OFF_VERIFY_K);
    v->back = kwsm__get_i32(h + KWSM_OFF_VERIFY_BACK);
    v->ahead = kwsm__get_i32(h + KWSM_OFF_VERIFY_AHEAD);
    v->cut = kwsm__get_f32(h + KWSM_OFF_VERIFY_CUT);
    v->n_frames = kwsm__get_u32(h + KWSM_OFF_VERIFY_N_FRAMES);
    v->kind = kwsm__get_i32(h + KWSM_OFF_VERIFY_KIND);
    return kwsm__check_verify(v, c, msg, msglen);
}

/* Reads the verifier block at p into v, which must be zeroed. vh holds the
 * header fields kwsm__decode_verify checked, and the caller has checked
 * that the block's kwsm__verify_bytes(vh) bytes are in the buffer. On an
 * error v may be half built: kws_verifier_free (snn_model_free) frees it. */
static int kwsm__read_verify(struct kws_verifier *v, const struct kws_verifier *vh,
                             const uint8_t *p, char *msg, size_t msglen) {
    int32_t len[KWS_VERIFY_MAX_TAKES];

    if (!vh->n_takes)
        return 0;
    for (int t = 0; t < vh->n_takes; t++)
        len[t] = kwsm__get_i32(p + 4 * t);
    int rc = kwsm__check_verify_len(len, vh->n_takes, vh->n_frames, msg, msglen);
    if (rc < 0)
        return rc;
    rc = kws_verifier_alloc(v, vh->n_takes, len, vh->n_feat);
    if (rc < 0)
        return kws_errmsg(rc, msg, msglen, "verify: %s", kws_strerror(rc));
    KWS_ASSERT(v->n_frames == vh->n_frames);
    v->label = vh->label;
    v->kind = vh->kind;
    v->k = vh->k;
    v->back = vh->back;
    v->ahead = vh->ahead;
    v->cut = vh->cut;
    const uint8_t *fp = p + 4 * (size_t)vh->n_takes;
    size_t n = v->n_frames * (size_t)v->n_feat;
    for (size_t i = 0; i < n; i++) {
        float f = kwsm__get_f32(fp + 4 * i);
        if (!isfinite(f))
            return kwsm__verify_feat_error(v, i, f, msg, msglen);
        v->feat[i] = f;
    }
    return 0;
}

/* ==== Decoding the header ==== */

/* Decodes and checks the header fields into cfg and the verifier's fields
 * into vh (arrays NULL). Needs len >= KWSM_HEADER_BYTES. */
static int kwsm__decode_header(struct snn_cfg *c, uint64_t *n_params, struct kws_verifier *vh,
                               const uint8_t *h, char *msg, size_t msglen) {
    memset(c, 0, sizeof *c);
    c->n_in = kwsm__get_i32(h + KWSM_OFF_N_IN);
    c->n_layers = kwsm__get_i32(h + KWSM_OFF_N_LAYERS);
    if (c->n_layers < 1 || c->n_layers > SNN_MAX_LAYERS) /* before indexing layer[] */
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "n_layers: %d out of range [1, %d]",
                          (int)c->n_layers, SNN_MAX_LAYERS);
    for (int l = 0; l < SNN_MAX_LAYERS; l++) {
        const uint8_t *p = h + KWSM_OFF_LAYERS + l * KWSM_LAYER_BYTES;
        if (l >= c->n_layers) {
            if (!kwsm__all_zero(p, KWSM_LAYER_BYTES) ||
                !kwsm__all_zero(h + KWSM_OFF_CONV_CH + 4 * l, 4) ||
                !kwsm__all_zero(h + KWSM_OFF_IN_DMAX + 4 * l, 4))
                return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                                  "layer[%d]: unused (n_layers is %d) but not zero", l,
                                  (int)c->n_layers);
            continue;
        }
        struct snn_layer_cfg *lc = &c->layer[l];
        lc->n = kwsm__get_i32(p + 0);
        lc->rec = kwsm__get_i32(p + 4);
        lc->k = kwsm__get_i32(p + 8);
        lc->d_max = kwsm__get_i32(p + 12);
        lc->beta = kwsm__get_f32(p + 16);
        lc->gain = kwsm__get_f32(p + 20);
        lc->thresh = kwsm__get_f32(p + 24);
        lc->reset = kwsm__get_i32(p + 28);
        lc->ch = kwsm__get_i32(h + KWSM_OFF_CONV_CH + 4 * l);
        lc->in_d_max = kwsm__get_i32(h + KWSM_OFF_IN_DMAX + 4 * l);
    }
    c->n_classes = kwsm__get_i32(h + KWSM_OFF_N_CLASSES);
    c->out_beta = kwsm__get_f32(h + KWSM_OFF_OUT_BETA);
    c->out_gain = kwsm__get_f32(h + KWSM_OFF_OUT_GAIN);
    c->threshold = kwsm__get_f32(h + KWSM_OFF_THRESHOLD);
    int nc = c->n_classes >= 0 && c->n_classes <= SNN_MAX_CLASSES ? c->n_classes : 0;
    for (int k = 0; k < SNN_MAX_CLASSES; k++) {
        const uint8_t *p = h + KWSM_OFF_LABELS + k * SNN_LABEL_LEN;
        if (k >= nc) {
            if (nc && !kwsm__all_zero(p, SNN_LABEL_LEN))
                return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                                  "labels[%d]: unused (n_classes is %d) but not zero", k, nc);
            continue;
        }
        if (!memchr(p, '\0', SNN_LABEL_LEN))
            return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                              "labels[%d]: not NUL-terminated within %d bytes", k, SNN_LABEL_LEN);
        memcpy(c->labels[k], p, SNN_LABEL_LEN);
    }
    int rc = snn_cfg_validate(c, msg, msglen);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < KWS_ARRAY_SIZE(kwsm__fe_fields); i++) {
        const struct kwsm__fe_field *f = &kwsm__fe_fields[i];
        const uint8_t *src = h + KWSM_OFF_FE + 4 * i;
        uint8_t *dst = (uint8_t *)&c->fe + f->offset;
        if (f->is_float) {
            float v = kwsm__get_f32(src);
            if (!isfinite(v))
                return kws_errmsg(KWS_EBADFIELD, msg, msglen, "%s: %g is not finite", f->name,
                                  (double)v);
            memcpy(dst, &v, 4);
        } else {
            int32_t v = kwsm__get_i32(src);
            memcpy(dst, &v, 4);
        }
    }
    c->fe.pcen_release = kwsm__get_f32(h + KWSM_OFF_PCEN_RELEASE);
    if (!(c->fe.pcen_release >= 0.0f && c->fe.pcen_release <= 1.0f))
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "pcen_release: %g out of range [0, 1]",
                          (double)c->fe.pcen_release);
    /* The front end must be one kws_audio can build (a sample rate of 0 or an
     * odd FFT size would only fail, or divide by zero, once audio arrives),
     * and the network must take exactly the spikes it makes: snn_step reads
     * n_in values from the front end's (n_mels * enc_levels) buffer. */
    char femsg[200];
    if (kws_frontend_cfg_check(&c->fe, femsg, sizeof femsg) < 0)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "fe.%s", femsg);
    int fe_out = kws_frontend_n_out(&c->fe);
    if (c->n_in != fe_out)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "n_in: %d, but the front end makes %d spike channels per frame "
                          "(fe.n_mels %d x fe.enc_levels %d)",
                          (int)c->n_in, fe_out, (int)c->fe.n_mels, (int)c->fe.enc_levels);
    *n_params = kwsm__get_u64(h + KWSM_OFF_N_PARAMS);
    size_t want = snn_param_count(c);
    if (*n_params != (uint64_t)want)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "n_params: %llu but the topology needs %zu",
                          (unsigned long long)*n_params, want);
    rc = kwsm__decode_verify(vh, c, h, msg, msglen);
    if (rc < 0)
        return rc;
    if (!kwsm__all_zero(h + KWSM_OFF_PAD, KWSM_HEADER_BYTES - KWSM_OFF_PAD))
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "header padding: bytes %d..%d must be zero in version %d", KWSM_OFF_PAD,
                          KWSM_HEADER_BYTES - 1, KWSM_VERSION);
    return 0;
}

/* ==== Reading ==== */

/* Checks the len bytes at b as far as the header goes: magic, version,
 * header size, then every header field. On success fills cfg, the
 * verifier's header fields vh (arrays NULL) and the file size the header
 * announces (*want: header, parameters, verifier block and checksum). Reads
 * nothing past b + len and nothing past the header. */
static int kwsm__check_header(const uint8_t *b, size_t len, struct snn_cfg *cfg,
                              struct kws_verifier *vh, size_t *want, char *msg, size_t msglen) {
    uint64_t n_params = 0;

    memset(vh, 0, sizeof *vh);
    if (len < 4)
        return kws_errmsg(KWS_ETRUNCATED, msg, msglen,
                          "file size: %zu bytes, too short for the magic", len);
    if (memcmp(b + KWSM_OFF_MAGIC, KWSM_MAGIC, 4) != 0)
        return kws_errmsg(KWS_EBADMAGIC, msg, msglen,
                          "magic: 0x%08x, expected 0x%08x (\"%s\"); HINT: not a .kwsm model file",
                          (unsigned)kwsm__get_u32(b),
                          (unsigned)kwsm__get_u32((const uint8_t *)KWSM_MAGIC), KWSM_MAGIC);
    if (len < KWSM_OFF_N_IN)
        return kws_errmsg(KWS_ETRUNCATED, msg, msglen,
                          "file size: %zu bytes, too short for the version", len);
    uint32_t version = kwsm__get_u32(b + KWSM_OFF_VERSION);
    if (version != KWSM_VERSION)
        return kws_errmsg(KWS_EBADVERSION, msg, msglen,
                          "version: %u, this build reads version %d; HINT: re-export the model "
                          "with a matching kwsd-train",
                          (unsigned)version, KWSM_VERSION);
    uint32_t header_bytes = kwsm__get_u32(b + KWSM_OFF_HEADER_BYTES);
    if (header_bytes != KWSM_HEADER_BYTES)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen, "header_bytes: %u, version %d needs %d",
                          (unsigned)header_bytes, KWSM_VERSION, KWSM_HEADER_BYTES);
    if (len < KWSM_HEADER_BYTES)
        return kws_errmsg(KWS_ETRUNCATED, msg, msglen,
                          "file size: %zu bytes, shorter than the %d-byte header", len,
                          KWSM_HEADER_BYTES);
    int rc = kwsm__decode_header(cfg, &n_params, vh, b, msg, msglen);
    if (rc < 0)
        return rc;
    /* n_params is bounded by the validated topology and the verifier's
     * block by its validated fields, so this cannot overflow. */
    *want = KWSM_HEADER_BYTES + (size_t)n_params * 4 + kwsm__verify_bytes(vh) + 4;
    return 0;
}

/* Compares a file's size len with the size want its header announces for
 * the configuration cfg and the verifier vh. */
static int kwsm__check_size(size_t len, size_t want, const struct snn_cfg *cfg,
                            const struct kws_verifier *vh, char *msg, size_t msglen) {
    if (len < want && vh->n_takes)
        return kws_errmsg(KWS_ETRUNCATED, msg, msglen,
                          "file size: %zu bytes, the header announces %zu (%zu parameters and a "
                          "verifier of %d takes, %zu frames)",
                          len, want, snn_param_count(cfg), (int)vh->n_takes, vh->n_frames);
    if (len < want)
        return kws_errmsg(KWS_ETRUNCATED, msg, msglen,
                          "file size: %zu bytes, the header announces %zu (%zu parameters)", len,
                          want, snn_param_count(cfg));
    if (len > want)
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "file size: %zu bytes, %zu more than the header announces", len,
                          len - want);
    return 0;
}

int snn_model_load_buffer(struct snn_model *m, const void *buf, size_t len, char *msg,
                          size_t msglen) {
    const uint8_t *b = buf;
    struct snn_cfg cfg;
    struct kws_verifier vh;
    size_t want = 0;
    int rc;

    memset(m, 0, sizeof *m);
    if (msg && msglen)
        msg[0] = '\0';
    rc = kwsm__check_header(b, len, &cfg, &vh, &want, msg, msglen);
    if (rc < 0)
        return rc;
    rc = kwsm__check_size(len, want, &cfg, &vh, msg, msglen);
    if (rc < 0)
        return rc;
    uint32_t stored = kwsm__get_u32(b + want - 4);
    uint32_t computed = kwsm__crc32(b, want - 4);
    if (stored != computed)
        return kws_errmsg(KWS_EBADCHECKSUM, msg, msglen,
                          "checksum: stored 0x%08x computed 0x%08x; HINT: the file is damaged",
                          (unsigned)stored, (unsigned)computed);
    rc = snn_model_init(m, &cfg);
    if (rc < 0)
        return kws_errmsg(rc, msg, msglen, "model: %s", kws_strerror(rc));
    KWS_ASSERT(KWSM_HEADER_BYTES + m->n_params * 4 + kwsm__verify_bytes(&vh) + 4 == want);
    const uint8_t *pp = b + KWSM_HEADER_BYTES;
    for (size_t i = 0; i < m->n_params; i++) {
        float v = kwsm__get_f32(pp + 4 * i);
        if (!isfinite(v)) {
            char name[64];
            snn__param_name(&cfg, i, name, sizeof name);
            snn_model_free(m);
            return kws_errmsg(KWS_EBADFIELD, msg, msglen, "%s: %g is not finite", name, (double)v);
        }
        m->mem[i] = v;
    }
    rc = kwsm__read_verify(&m->verify, &vh, pp + 4 * m->n_params, msg, msglen);
    if (rc < 0) {
        snn_model_free(m);
        return rc;
    }
    snn_model_prepare(m);
    return 0;
}

/* The largest file any header within the format's limits can announce:
 * every layer at SNN_MAX_NEURONS neurons with the widest input, a dense
 * recurrence, its delays and input delays, then the widest readout, and
 * the largest verifier (every take at its longest, over the most bands). */
static uint64_t kwsm__max_file_size(void) {
    const uint64_t n = SNN_MAX_NEURONS;
    const uint64_t in = SNN_MAX_INPUTS > SNN_MAX_NEURONS ? SNN_MAX_INPUTS : SNN_MAX_NEURONS;
    const uint64_t layer = n * in + n + n * n + n + in;
    const uint64_t floats = SNN_MAX_LAYERS * layer + SNN_MAX_CLASSES * n + SNN_MAX_CLASSES;
    const uint64_t takes = KWS_VERIFY_MAX_TAKES;
    const uint64_t verify = takes + takes * KWS_VERIFY_MAX_TAKE_FRAMES * KWS_VERIFY_MAX_FEAT;
    return KWSM_HEADER_BYTES + 4 * floats + 4 * verify + 4;
}

/* Reads up to n bytes from fd into buf; returns the bytes read (fewer only
 * at end of file) or -errno. */
static ssize_t kwsm__read_full(int fd, uint8_t *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int snn_model_load(struct snn_model *m, const char *path, char *msg, size_t msglen) {
    uint8_t head[KWSM_HEADER_BYTES];
    uint8_t *buf = NULL;
    struct snn_cfg cfg;
    struct kws_verifier vh;
    struct stat st;
    size_t want = 0;
    int rc;

    memset(m, 0, sizeof *m);
    int fd = kws_open_regular(path, &st);
    if (fd == -EISDIR || fd == -EINVAL)
        return kws_errmsg(fd, msg, msglen, "%s: %s, not a regular file", path,
                          kws_file_kind(st.st_mode));
    if (fd < 0)
        return kws_errmsg(fd, msg, msglen, "%s: %s", path, strerror(-fd));
    if ((uint64_t)st.st_size > kwsm__max_file_size()) {
        close(fd);
        return kws_errmsg(KWS_EBADFIELD, msg, msglen,
                          "file size: %lld bytes, more than the largest model (%llu bytes)",
                          (long long)st.st_size, (unsigned long long)kwsm__max_file_size());
    }
    /* The header first: a file is sized and allocated only once its header
     * is valid and announces exactly the file's size. */
    ssize_t got = kwsm__read_full(fd, head, sizeof head);
    if (got < 0)
        goto read_error;
    if ((size_t)got < sizeof head) { /* short file: the buffer check names what is missing */
        close(fd);
        return snn_model_load_buffer(m, head, (size_t)got, msg, msglen);
    }
    rc = kwsm__check_header(head, sizeof head, &cfg, &vh, &want, msg, msglen);
    if (rc == 0)
        rc = kwsm__check_size((size_t)st.st_size, want, &cfg, &vh, msg, msglen);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    buf = malloc(want + 1); /* one byte more tells a file that grew since fstat */
    if (!buf) {
        close(fd);
        return kws_errmsg(-ENOMEM, msg, msglen, "%s: out of memory for %zu bytes", path, want);
    }
    memcpy(buf, head, sizeof head);
    got = kwsm__read_full(fd, buf + sizeof head, want + 1 - sizeof head);
    if (got < 0)
        goto read_error;
    close(fd);
    rc = snn_model_load_buffer(m, buf, sizeof head + (size_t)got, msg, msglen);
    free(buf);
    return rc;
read_error:
    rc = (int)got;
    close(fd);
    free(buf);
    return kws_errmsg(rc, msg, msglen, "%s: read error: %s", path, strerror(-rc));
}

/* ==== Writing ==== */

size_t kwsm__encoded_size(const struct snn_model *m) {
    return KWSM_HEADER_BYTES + m->n_params * 4 + kwsm__verify_bytes(&m->verify) + 4;
}

/* Whether m's verifier follows the reader's rules: its fields, its lengths
 * and every feature finite. */
static bool kwsm__verify_ok(const struct snn_model *m) {
    const struct kws_verifier *v = &m->verify;
    if (kwsm__check_verify(v, &m->cfg, NULL, 0) < 0)
        return false;
    if (!v->n_takes)
        return true;
    if (!v->len || !v->feat || kwsm__check_verify_len(v->len, v->n_takes, v->n_frames, NULL, 0) < 0)
        return false;
    for (size_t i = 0; i < v->n_frames * (size_t)v->n_feat; i++)
        if (!isfinite(v->feat[i]))
            return false;
    return true;
}

int kwsm__encode(const struct snn_model *m, uint8_t *out) {
    /* Never write what snn_model_load would refuse. */
    if (snn_cfg_validate(&m->cfg, NULL, 0) < 0 || snn_param_count(&m->cfg) != m->n_params ||
        kws_frontend_cfg_check(&m->cfg.fe, NULL, 0) < 0 ||
        m->cfg.n_in != kws_frontend_n_out(&m->cfg.fe))
        return KWS_EBADFIELD;
    for (size_t i = 0; i < m->n_params; i++)
        if (!isfinite(m->mem[i]))
            return KWS_EBADFIELD;
    if (!kwsm__verify_ok(m))
        return KWS_EBADFIELD;
    memset(out, 0, KWSM_HEADER_BYTES);
    kwsm__encode_header(out, m);
    uint8_t *pp = out + KWSM_HEADER_BYTES;
    for (size_t i = 0; i < m->n_params; i++)
        kwsm__put_f32(pp + 4 * i, m->mem[i]);
    const struct kws_verifier *v = &m->verify; /* no block when n_takes is 0 */
    uint8_t *vp = pp + 4 * m->n_params;
    for (int t = 0; t < v->n_takes; t++)
        kwsm__put_i32(vp + 4 * t, v->len[t]);
    vp += 4 * (size_t)v->n_takes;
    for (size_t i = 0; i < v->n_frames * (size_t)v->n_feat; i++)
        kwsm__put_f32(vp + 4 * i, v->feat[i]);
    size_t body = KWSM_HEADER_BYTES + m->n_params * 4 + kwsm__verify_bytes(v);
    kwsm__put_u32(out + body, kwsm__crc32(out, body));
    return 0;
}

/* fsyncs the directory that holds path, so a rename into it is durable. */
static int kwsm__fsync_dir(const char *path) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    /* Some file systems refuse fsync on directories; the data itself is safe. */
    return rc == -EINVAL ? 0 : rc;
}

int snn_model_save(const struct snn_model *m, const char *path) {
    size_t len = kwsm__encoded_size(m);
    uint8_t *buf = malloc(len);
    if (!buf)
        return -ENOMEM;
    int rc = kwsm__encode(m, buf);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) {
        free(buf);
        return -ENAMETOOLONG;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = -errno;
        free(buf);
        return rc;
    }
    (void)fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        rc = -errno;
        close(fd);
        goto fail;
    }
    if (fwrite(buf, 1, len, f) != len || fflush(f) != 0) {
        rc = errno ? -errno : -EIO;
        fclose(f);
        goto fail;
    }
    if (fsync(fileno(f)) < 0) {
        rc = -errno;
        fclose(f);
        goto fail;
    }
    if (fclose(f) != 0) {
        rc = -errno;
        goto fail;
    }
    if (rename(tmp, path) < 0) {
        rc = -errno;
        goto fail;
    }
    free(buf);
    return kwsm__fsync_dir(path);
fail:
    unlink(tmp);
    free(buf);
    return rc;
}

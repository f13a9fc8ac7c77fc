/* config.c: kwsd's YAML configuration: the key table, the parser, diagnostics.
 *
 * Every key lives in one table (config_keys[] below): its dotted name, type,
 * range, default written as YAML text, offset into struct kws_config and an
 * optional extra check. Defaults are applied by parsing their text through
 * the same setters as a file's values, so a default can never be out of its
 * own range. A file is loaded into a libyaml document first (so a syntax error
 * anywhere stops everything before any key is judged), then walked mapping by
 * mapping; every problem becomes one "path:line:col: key: message" line and
 * the walk goes on, so one run reports them all. The result is built in a
 * temporary and copied out only when there were no errors.
 *
 * SPDX-License-Identifier: MIT
 */
#include "kws/config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "kws/err.h"

/* Files larger than this are refused: a config is a few hundred bytes. */
#define CONFIG_FILE_MAX (1 << 20)

/* ==== The key table ==== */

enum cfg_type {
    CFG_STRING,    /* char[size] at off; min/max bound the length in bytes */
    CFG_INT,       /* int at off, [min, max] */
    CFG_FLOAT,     /* float at off, [min, max] */
    CFG_THRESHOLD, /* float at off, [min, max], or the word "model": KWS_THRESHOLD_MODEL */
    CFG_DOUBLE,    /* double at off, [min, max] */
    CFG_LOGLEVEL,  /* enum kws_log_level at off */
    CFG_ENDPOINTS, /* sequence of strings into transport.endpoints; min/max bound the count */
    CFG_PATHS,     /* sequence of strings into model.paths; min/max bound the count */
    CFG_KEYWORDS,  /* mapping label -> number into detection.keywords; [min, max] per value */
};

/* An extra check on a string value; writes why it fails into why. */
typedef int (*cfg_check_fn)(const char *s, char *why, size_t whylen);

struct cfg_key {
    const char *name; /* dotted key, e.g. "audio.rate" */
    enum cfg_type type;
    double min, max;    /* range (numbers), length or count bounds (strings, sequences) */
    const char *def;    /* default, as YAML scalar text ("" = none for keywords) */
    size_t off;         /* offset into struct kws_config */
    size_t size;        /* bytes at off (strings: buffer size incl. NUL) */
    cfg_check_fn check; /* optional: strings and each endpoint */
    const char *doc;    /* one line for docs/CONFIG.md */
};

static int check_endpoint(const char *s, char *why, size_t whylen);
static int check_printable(const char *s, char *why, size_t whylen);
static int check_wyoming(const char *s, char *why, size_t whylen);

#define CFG_FIELD(f) offsetof(struct kws_config, f), sizeof(((struct kws_config *)0)->f)

static const struct cfg_key config_keys[] = {
    {"audio.device", CFG_STRING, 1, KWS_CONFIG_DEVICE_LEN - 1, "default", CFG_FIELD(audio.device),
     check_printable, "ALSA PCM name, e.g. `plughw:CARD=Device,DEV=0`"},
    {"audio.rate", CFG_INT, 8000, 192000, "16000", CFG_FIELD(audio.rate), NULL,
     "requested capture rate, Hz; the device may give another (kwsd resamples)"},
    {"audio.period_ms", CFG_INT, 5, 200, "20", CFG_FIELD(audio.period_ms), NULL, "ALSA period, ms"},
    {"model.path", CFG_STRING, 1, KWS_CONFIG_PATH_LEN - 1, "/usr/share/kwsd/commands.kwsm",
     CFG_FIELD(model.path), check_printable,
     "model file (`.kwsm`); give it or `model.paths`, not both"},
    {"model.paths", CFG_PATHS, 0, KWS_CONFIG_MAX_MODELS, "", CFG_FIELD(model.paths),
     check_printable,
     "several model files loaded at once, instead of `model.path`; no two models may share a "
     "keyword label"},
    {"model.dir", CFG_STRING, 0, KWS_CONFIG_PATH_LEN - 1, "", CFG_FIELD(model.dir), check_printable,
     "directory whose `*.kwsm` files are loaded too, by name, after `model.path(s)` (e.g. "
     "`/var/lib/kwsd/models`, where `kwsd-enroll` writes); empty: none; at most 8 models in "
     "all"},
    {"detection.threshold", CFG_THRESHOLD, 0.0, 1.0, "model", CFG_FIELD(detection.threshold), NULL,
     "global score threshold; `model`: the threshold calibrated into the model file (0.4 if it "
     "has none)"},
    {"detection.smoothing_ms", CFG_INT, 10, 3000, "300", CFG_FIELD(detection.smoothing_ms), NULL,
     "posterior smoothing window, ms"},
    {"detection.refractory_ms", CFG_INT, 0, 60000, "1000", CFG_FIELD(detection.refractory_ms), NULL,
     "quiet time after a detection, ms"},
    {"detection.keywords", CFG_KEYWORDS, 0.0, 1.0, "", CFG_FIELD(detection.keywords), NULL,
     "per-keyword threshold overrides, a mapping `label: threshold`; each label must be one of "
     "a loaded model's (labels are unique across models)"},
    {"transport.endpoints", CFG_ENDPOINTS, 1, KWS_CONFIG_MAX_ENDPOINTS, "tcp://127.0.0.1:5556",
     CFG_FIELD(transport.endpoints), check_endpoint,
     "ZeroMQ endpoints the publisher binds: `tcp://host:port`, `ipc:///path` (its directory "
     "must exist) or `inproc://name`"},
    {"transport.heartbeat_s", CFG_DOUBLE, 0.5, 3600, "5", CFG_FIELD(transport.heartbeat_s), NULL,
     "status heartbeat period, s"},
    {"transport.queue", CFG_INT, 1, 1000000, "1000", CFG_FIELD(transport.queue), NULL,
     "per-subscriber queue, messages (ZMQ_SNDHWM); beyond it events are dropped and counted"},
    {"transport.wyoming", CFG_STRING, 0, KWS_CONFIG_ENDPOINT_LEN - 1, "",
     CFG_FIELD(transport.wyoming), check_wyoming,
     "Wyoming wake-word server for Home Assistant, `tcp://host:port` (e.g. "
     "`tcp://0.0.0.0:10400`); empty: off (docs/HOME_ASSISTANT.md)"},
    {"transport.curve.secret_key_file", CFG_STRING, 0, KWS_CONFIG_PATH_LEN - 1, "",
     CFG_FIELD(transport.curve.secret_key_file), check_printable,
     "file whose first line is the server's CURVE secret key (Z85, 40 characters; not readable "
     "by others), e.g. from `kwsd --curve-keygen`; empty: CURVE off (docs/SECURITY.md)"},
    {"transport.curve.clients_dir", CFG_STRING, 0, KWS_CONFIG_PATH_LEN - 1, "",
     CFG_FIELD(transport.curve.clients_dir), check_printable,
     "folder of the client public keys allowed to subscribe, one `*.key` file each (first line: "
     "the Z85 key); required with `secret_key_file`"},
    {"logging.level", CFG_LOGLEVEL, 0, 0, "info", CFG_FIELD(logging.level), NULL,
     "most verbose level logged: `error`, `warning`, `notice`, `info` or `debug`"},
    {"mqtt.host", CFG_STRING, 0, KWS_CONFIG_HOST_LEN - 1, "", CFG_FIELD(mqtt.host), check_printable,
     "MQTT broker to publish Hermes hotword events to; empty: no MQTT"},
    {"mqtt.port", CFG_INT, 1, 65535, "1883", CFG_FIELD(mqtt.port), NULL, "MQTT broker port"},
    {"mqtt.tls", CFG_STRING, 0, KWS_CONFIG_PATH_LEN - 1, "", CFG_FIELD(mqtt.tls), check_printable,
     "CA certificate file (PEM) to verify the broker with over TLS; empty: plain TCP"},
    {"mqtt.username", CFG_STRING, 0, KWS_CONFIG_USER_LEN - 1, "", CFG_FIELD(mqtt.username),
     check_printable, "MQTT user name; empty: none"},
    {"mqtt.password_file", CFG_STRING, 0, KWS_CONFIG_PATH_LEN - 1, "",
     CFG_FIELD(mqtt.password_file), check_printable,
     "file whose first line is the MQTT password; empty: none"},
    {"mqtt.site_id", CFG_STRING, 1, KWS_CONFIG_SITE_LEN - 1, "default", CFG_FIELD(mqtt.site_id),
     check_printable,
     "Hermes `siteId` sent with each detection; `hermes/hotword/toggleOff` and `toggleOn` for "
     "it pause and resume detection"},
};

static const struct cfg_key *key_find(const char *name) {
    for (size_t i = 0; i < KWS_ARRAY_SIZE(config_keys); i++)
        if (strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

/* True if name is a section: a proper prefix of some key, up to a dot. */
static int key_is_section(const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < KWS_ARRAY_SIZE(config_keys); i++)
        if (strncmp(config_keys[i].name, name, n) == 0 && config_keys[i].name[n] == '.')
            return 1;
    return 0;
}

/* ==== Checks and number parsing ==== */

/* transport.wyoming: empty (off) or tcp://host:port with a port 1..65535. */
static int check_wyoming(const char *s, char *why, size_t whylen) {
    if (!s[0])
        return 0;
    if (strncmp(s, "tcp://", 6) != 0) {
        snprintf(why, whylen, "expected tcp://host:port (or empty: off)");
        return -1;
    }
    const char *colon = strrchr(s, ':');
    if (colon && strcmp(colon, ":*") == 0) {
        snprintf(why, whylen, "needs a fixed port: Home Assistant is given host and port");
        return -1;
    }
    return check_endpoint(s, why, whylen);
}

/* tcp://host:port (port 1..65535 or "*", host non-empty, "[v6]" allowed),
 * ipc://path or inproc://name, both non-empty. */
static int check_endpoint(const char *s, char *why, size_t whylen) {
    if (strncmp(s, "tcp://", 6) == 0) {
        const char *host = s + 6;
        const char *colon = strrchr(host, ':');
        if (!colon || colon == host) {
            snprintf(why, whylen, "expected tcp://host:port");
            return -1;
        }
        if (host[0] == '[' && colon[-1] != ']') {
            snprintf(why, whylen, "unterminated [ in IPv6 host");
            return -1;
        }
        const char *port = colon + 1;
        if (strcmp(port, "*") == 0)
            return 0;
        char *end;
        errno = 0;
        long v = strtol(port, &end, 10);
        if (port[0] < '0' || port[0] > '9' || *end != '\0' || errno || v < 1 || v > 65535) {
            snprintf(why, whylen, "bad port \"%s\" (expected 1..65535 or *)", port);
            return -1;
        }
        return 0;
    }
    if (strncmp(s, "ipc://", 6) == 0 || strncmp(s, "inproc://", 9) == 0) {
        const char *rest = strstr(s, "://") + 3;
        if (*rest == '\0') {
            snprintf(why, whylen, "empty %s", s[0] == 'i' && s[1] == 'p' ? "path" : "name");
            return -1;
        }
        return 0;
    }
    snprintf(why, whylen, "unsupported transport (expected tcp://, ipc:// or inproc://)");
    return -1;
}

/* Device names and paths: no control characters (they would garble logs). */
static int check_printable(const char *s, char *why, size_t whylen) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            snprintf(why, whylen, "control character 0x%02x not allowed", *p);
            return -1;
        }
    }
    return 0;
}

/* A decimal integer: optional sign, digits, nothing else. 0 or -1. */
static int parse_long(const char *s, long *out) {
    char *end;
    if (!((s[0] >= '0' && s[0] <= '9') ||
          ((s[0] == '-' || s[0] == '+') && s[1] >= '0' && s[1] <= '9')))
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* A finite decimal number. 0 or -1. */
static int parse_double(const char *s, double *out) {
    char *end;
    if (!((s[0] >= '0' && s[0] <= '9') || s[0] == '.' || s[0] == '-' || s[0] == '+'))
        return -1;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* ==== Diagnostics ==== */

void config_diags_add(struct config_diags *d, const char *fmt, ...) {
    va_list ap;

    if (!d)
        return;
    if (d->n >= KWS_CONFIG_DIAG_MAX) {
        d->truncated++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(d->msg[d->n], sizeof d->msg[d->n], fmt, ap);
    va_end(ap);
    d->n++;
}

void config_diags_print(const struct config_diags *d, FILE *f) {
    if (!d)
        return;
    for (int i = 0; i < d->n && i < KWS_CONFIG_DIAG_MAX; i++)
        fprintf(f, "%s\n", d->msg[i]);
    if (d->truncated)
        fprintf(f, "(%d more error%s)\n", d->truncated, d->truncated == 1 ? "" : "s");
}

static void diags_reset(struct config_diags *d) {
    if (d) {
        d->n = 0;
        d->truncated = 0;
    }
}

/* ==== Walking the document ==== */

struct walk {
    const char *name;                                /* file name for messages */
    const yaml_node_t *model_path;                   /* model.path's value, if the file gives it */
    const yaml_node_t *curve_secret, *curve_clients; /* transport.curve's values, if given */
    int curve_bad;          /* one of them was refused already: its files are not read */
    struct config_diags *d; /* may be NULL */
    yaml_document_t *doc;
    struct kws_config *cfg; /* the temporary being filled */
    int errors;
};

/* Reports a problem at node's position (1-based) for key. */
__attribute__((format(printf, 4, 5))) static void walk_err(struct walk *w, const yaml_node_t *node,
                                                           const char *key, const char *fmt, ...) {
    char msg[KWS_CONFIG_DIAG_LEN];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    config_diags_add(w->d, "%s:%zu:%zu: %s: %s", w->name, node->start_mark.line + 1,
                     node->start_mark.column + 1, key, msg);
    w->errors++;
}

static int node_is_null(const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)n->data.scalar.value;
    return !strcmp(s, "") || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* Describes a node for "got ..." messages: a scalar quoted and shortened,
 * unprintable bytes as '?'; other nodes by kind. */
static const char *node_show(const yaml_node_t *n, char *buf, size_t len) {
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a sequence";
    if (node_is_null(n))
        return "nothing";
    const unsigned char *s = n->data.scalar.value;
    size_t o = 0, max = len > 48 ? 40 : len - 8;
    buf[o++] = '"';
    for (size_t i = 0; s[i] && o < max; i++)
        buf[o++] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : (char)s[i];
    if (strlen((const char *)s) > max - 1)
        o += (size_t)snprintf(buf + o, len - o, "...");
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* Applies one scalar to a string, number or enum key. Reports and returns -1
 * on a bad value. at is the key name to report (may carry an index). */
static int set_scalar(struct walk *w, const struct cfg_key *k, const char *at, const yaml_node_t *v,
                      void *dst) {
    char show[64], why[160];

    if (v->type != YAML_SCALAR_NODE || node_is_null(v)) {
        const char *what = k->type == CFG_STRING || k->type == CFG_ENDPOINTS || k->type == CFG_PATHS
                               ? "a string"
                           : k->type == CFG_INT      ? "an integer"
                           : k->type == CFG_LOGLEVEL ? "a level name"
                                                     : "a number";
        walk_err(w, v, at, "expected %s, got %s", what, node_show(v, show, sizeof show));
        return -1;
    }
    const char *s = (const char *)v->data.scalar.value;
    size_t slen = v->data.scalar.length;

    switch (k->type) {
    case CFG_STRING:
    case CFG_ENDPOINTS:
    case CFG_PATHS: {
        size_t cap = k->type == CFG_STRING  ? k->size
                     : k->type == CFG_PATHS ? KWS_CONFIG_PATH_LEN
                                            : KWS_CONFIG_ENDPOINT_LEN;
        if (strlen(s) != slen) {
            walk_err(w, v, at, "NUL byte not allowed");
            return -1;
        }
        if (slen == 0 && (k->min > 0 || k->type == CFG_PATHS)) {
            walk_err(w, v, at, "must not be empty");
            return -1;
        }
        if (slen >= cap) {
            walk_err(w, v, at, "too long (%zu bytes, at most %zu)", slen, cap - 1);
            return -1;
        }
        if (k->check && k->check(s, why, sizeof why) < 0) {
            walk_err(w, v, at, "%s: %s", node_show(v, show, sizeof show), why);
            return -1;
        }
        memset(dst, 0, cap); /* no stale tail: configs compare with memcmp */
        memcpy(dst, s, slen + 1);
        return 0;
    }
    case CFG_INT: {
        long x;
        if (parse_long(s, &x) < 0) {
            double dx;
            if (parse_double(s, &dx) == 0 && (dx < k->min || dx > k->max))
                walk_err(w, v, at, "%s out of range [%.0f, %.0f]", s, k->min, k->max);
            else
                walk_err(w, v, at, "expected an integer, got %s", node_show(v, show, sizeof show));
            return -1;
        }
        if (x < (long)k->min || x > (long)k->max) {
            walk_err(w, v, at, "%s out of range [%.0f, %.0f]", s, k->min, k->max);
            return -1;
        }
        *(int *)dst = (int)x;
        return 0;
    }
    case CFG_THRESHOLD:
        if (strcmp(s, "model") == 0) {
            *(float *)dst = KWS_THRESHOLD_MODEL;
            return 0;
        }
        /* fall through */
    case CFG_FLOAT:
    case CFG_DOUBLE:
    case CFG_KEYWORDS: {
        double x;
        if (parse_double(s, &x) < 0) {
            walk_err(w, v, at, "expected a number%s, got %s",
                     k->type == CFG_THRESHOLD ? " or model" : "", node_show(v, show, sizeof show));
            return -1;
        }
        if (x < k->min || x > k->max) {
            walk_err(w, v, at, "%s out of range [%g, %g]", s, k->min, k->max);
            return -1;
        }
        if (k->type == CFG_DOUBLE)
            *(double *)dst = x;
        else
            *(float *)dst = (float)x;
        return 0;
    }
    case CFG_LOGLEVEL: {
        enum kws_log_level lv;
        if (kws_log_level_parse(s, &lv) < 0) {
            walk_err(w, v, at, "bad value %s: expected one of error, warning, notice, info, debug",
                     node_show(v, show, sizeof show));
            return -1;
        }
        *(enum kws_log_level *)dst = lv;
        return 0;
    }
    }
    return -1;
}

/* transport.endpoints or model.paths: a sequence of min..max distinct
 * strings. */
static void set_strings(struct walk *w, const struct cfg_key *k, const yaml_node_t *v) {
    char show[64], at[64];
    struct kws_config *c = w->cfg;
    int is_paths = k->type == CFG_PATHS;
    const char *what = is_paths ? "model files" : "endpoints";
    int *count = is_paths ? &c->model.n_paths : &c->transport.n_endpoints;
    char(*item)[KWS_CONFIG_PATH_LEN] = c->model.paths;
    char(*ep)[KWS_CONFIG_ENDPOINT_LEN] = c->transport.endpoints;

    if (v->type != YAML_SEQUENCE_NODE) {
        walk_err(w, v, k->name, "expected a sequence of %s, got %s", what,
                 node_show(v, show, sizeof show));
        return;
    }
    int n = (int)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n < (int)k->min || n > (int)k->max) {
        walk_err(w, v, k->name, "%d %s, expected %.0f to %.0f", n, what, k->min, k->max);
        return;
    }
    *count = 0;
    memset((char *)c + k->off, 0, k->size);
    for (int i = 0; i < n; i++) {
        const yaml_node_t *it = yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
        char *s = is_paths ? item[i] : ep[i];
        snprintf(at, sizeof at, "%s[%d]", k->name, i);
        if (set_scalar(w, k, at, it, s) < 0)
            continue;
        for (int j = 0; j < i; j++) {
            if (strcmp(is_paths ? item[j] : ep[j], s) == 0) {
                walk_err(w, it, at, "duplicate %s \"%s\" (also %s[%d])",
                         is_paths ? "model file" : "endpoint", s, k->name, j);
                break;
            }
        }
    }
    *count = n;
}

/* ==== Duplicate keys ==== */

/* A mapping's keys sorted by text, then by position, so that equal keys sit
 * together with the first one first: O(n log n) for the whole mapping
 * where comparing each key with every earlier one took O(n^2) (100,000
 * keys: over a minute). */
struct key_ref {
    const unsigned char *text;
    size_t len;
    size_t pos; /* index of the pair in the mapping */
};

static int key_ref_cmp(const void *a, const void *b) {
    const struct key_ref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->text, y->text, n);

    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* For each pair of map, the key node of the first earlier pair whose
 * scalar key has the same text, or NULL: a malloc'd array of one entry per
 * pair (the caller frees it), or NULL if memory runs out. */
static const yaml_node_t **dup_keys(yaml_document_t *doc, const yaml_node_t *map) {
    const yaml_node_pair_t *pairs = map->data.mapping.pairs.start;
    size_t n = (size_t)(map->data.mapping.pairs.top - pairs), m = 0;
    const yaml_node_t **first = calloc(n ? n : 1, sizeof *first);
    struct key_ref *refs = malloc((n ? n : 1) * sizeof *refs);

    if (!first || !refs) {
        free(first);
        free(refs);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *k = yaml_document_get_node(doc, pairs[i].key);
        if (k->type == YAML_SCALAR_NODE)
            refs[m++] = (struct key_ref){k->data.scalar.value, k->data.scalar.length, i};
    }
    qsort(refs, m, sizeof *refs, key_ref_cmp);
    for (size_t i = 1, head = 0; i < m; i++) {
        if (refs[i].len == refs[head].len &&
            memcmp(refs[i].text, refs[head].text, refs[i].len) == 0)
            first[refs[i].pos] = yaml_document_get_node(doc, pairs[refs[head].pos].key);
        else
            head = i;
    }
    free(refs);
    return first;
}

/* The position of an earlier pair in map whose key equals pair's key, or
 * NULL, by comparing with each earlier key: the fallback when dup_keys has
 * no memory. */
static const yaml_node_t *dup_key_scan(yaml_document_t *doc, const yaml_node_t *map,
                                       const yaml_node_pair_t *pair) {
    const yaml_node_t *k = yaml_document_get_node(doc, pair->key);
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < pair; p++) {
        const yaml_node_t *pk = yaml_document_get_node(doc, p->key);
        if (pk->type == YAML_SCALAR_NODE && pk->data.scalar.length == k->data.scalar.length &&
            memcmp(pk->data.scalar.value, k->data.scalar.value, k->data.scalar.length) == 0)
            return pk;
    }
    return NULL;
}

/* Checks a mapping key: a scalar, not seen before in this mapping (dups
 * from dup_keys, or NULL to scan). Fills full with prefix.key. Returns the
 * key node, or NULL after reporting. */
static const yaml_node_t *map_key(struct walk *w, const yaml_node_t *map,
                                  const yaml_node_pair_t *pair, const yaml_node_t **dups,
                                  const char *prefix, char *full, size_t fulllen) {
    char show[64];
    const yaml_node_t *k = yaml_document_get_node(w->doc, pair->key);

    if (k->type != YAML_SCALAR_NODE) {
        walk_err(w, k, *prefix ? prefix : "(top level)", "expected a key name, got %s",
                 node_show(k, show, sizeof show));
        return NULL;
    }
    if (*prefix)
        snprintf(full, fulllen, "%s.%s", prefix, (const char *)k->data.scalar.value);
    else
        snprintf(full, fulllen, "%s", (const char *)k->data.scalar.value);
    const yaml_node_t *first =
        dups ? dups[pair - map->data.mapping.pairs.start] : dup_key_scan(w->doc, map, pair);
    if (first) {
        walk_err(w, k, full, "duplicate key (first at line %zu:%zu)", first->start_mark.line + 1,
                 first->start_mark.column + 1);
        return NULL;
    }
    return k;
}

/* detection.keywords: a mapping label -> threshold. */
static void set_keywords(struct walk *w, const struct cfg_key *k, const yaml_node_t *v) {
    char show[64], full[128];
    struct kws_config *c = w->cfg;

    c->detection.n_keywords = 0;
    memset(c->detection.keywords, 0, sizeof c->detection.keywords);
    if (node_is_null(v))
        return;
    if (v->type != YAML_MAPPING_NODE) {
        walk_err(w, v, k->name, "expected a mapping of label: threshold, got %s",
                 node_show(v, show, sizeof show));
        return;
    }
    const yaml_node_t **dups = dup_keys(w->doc, v);
    for (const yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *kn = map_key(w, v, p, dups, k->name, full, sizeof full);
        if (!kn)
            continue;
        const char *label = (const char *)kn->data.scalar.value;
        size_t len = kn->data.scalar.length;
        if (len == 0 || len >= KWS_CONFIG_LABEL_LEN || strlen(label) != len) {
            walk_err(w, kn, full, "label must be 1 to %d bytes", KWS_CONFIG_LABEL_LEN - 1);
            continue;
        }
        if (c->detection.n_keywords >= KWS_CONFIG_MAX_KEYWORDS) {
            walk_err(w, kn, full, "more than %d keyword overrides", KWS_CONFIG_MAX_KEYWORDS);
            continue;
        }
        struct config_keyword *kw = &c->detection.keywords[c->detection.n_keywords];
        if (set_scalar(w, k, full, yaml_document_get_node(w->doc, p->value), &kw->threshold) < 0)
            continue;
        memcpy(kw->label, label, len + 1);
        kw->line = (int)kn->start_mark.line + 1;
        kw->col = (int)kn->start_mark.column + 1;
        c->detection.n_keywords++;
    }
    free(dups);
}

static void walk_value(struct walk *w, const struct cfg_key *k, const yaml_node_t *v) {
    char *base = (char *)w->cfg;

    if (k->type == CFG_ENDPOINTS || k->type == CFG_PATHS)
        set_strings(w, k, v);
    else if (k->type == CFG_KEYWORDS)
        set_keywords(w, k, v);
    else if (set_scalar(w, k, k->name, v, base + k->off) < 0 &&
             strncmp(k->name, "transport.curve.", 16) == 0)
        w->curve_bad = 1;
    if (k->off == offsetof(struct kws_config, model.path))
        w->model_path = v;
    if (k->off == offsetof(struct kws_config, transport.curve.secret_key_file))
        w->curve_secret = v;
    if (k->off == offsetof(struct kws_config, transport.curve.clients_dir))
        w->curve_clients = v;
}

/* Walks one mapping whose keys are under prefix ("" at the top level). */
static void walk_mapping(struct walk *w, const yaml_node_t *map, const char *prefix) {
    char full[128], show[64];
    const yaml_node_t **dups = dup_keys(w->doc, map);

    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *kn = map_key(w, map, p, dups, prefix, full, sizeof full);
        if (!kn)
            continue;
        const yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
        const struct cfg_key *k = key_find(full);
        if (k) {
            walk_value(w, k, v);
        } else if (key_is_section(full)) {
            if (v->type == YAML_MAPPING_NODE)
                walk_mapping(w, v, full);
            else if (!node_is_null(v)) /* "audio:" alone is an empty section */
                walk_err(w, v, full, "expected a mapping of keys, got %s",
                         node_show(v, show, sizeof show));
        } else {
            walk_err(w, kn, full, "unknown key");
        }
    }
    free(dups);
}

/* ==== CURVE keys ==== */

/* Z85's alphabet (ZeroMQ RFC 32), in digit order. */
static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                ".-:+=^!/*?&<>()[]{}@%$#";

/* Whether s (40 characters) is a Z85-encoded 32-byte key: every character
 * from the alphabet and every group of five worth less than 2^32. Writes
 * why not into why. */
static int z85_key_ok(const char *s, char *why, size_t whylen) {
    for (int g = 0; g < 8; g++) {
        uint64_t v = 0;
        for (int i = 0; i < 5; i++) {
            unsigned char c = (unsigned char)s[g * 5 + i];
            const char *at = c ? strchr(z85_chars, c) : NULL;
            if (!at) {
                if (c < 0x20 || c >= 0x7f)
                    snprintf(why, whylen, "not a Z85 key: character %d is byte 0x%02x",
                             g * 5 + i + 1, c);
                else
                    snprintf(why, whylen, "not a Z85 key: character %d is '%c'", g * 5 + i + 1, c);
                return -1;
            }
            v = v * 85 + (uint64_t)(at - z85_chars);
        }
        if (v > 0xffffffffu) {
            snprintf(why, whylen, "not a Z85 key: characters %d-%d are out of range", g * 5 + 1,
                     g * 5 + 5);
            return -1;
        }
    }
    return 0;
}

int config_key_file_read(const char *path, int secret, char *key, char *why, size_t whylen) {
    char buf[256];
    int rc = kws_first_line_read(path, secret, buf, sizeof buf, why, whylen);
    if (rc < 0)
        return rc;
    size_t len = (size_t)rc;
    if (len != KWS_CONFIG_Z85_LEN - 1) {
        snprintf(why, whylen, "%s: first line is %zu characters, expected a %d-character Z85 key",
                 path, len, KWS_CONFIG_Z85_LEN - 1);
        return -EINVAL;
    }
    char zwhy[96];
    if (z85_key_ok(buf, zwhy, sizeof zwhy) < 0) {
        snprintf(why, whylen, "%s: %s", path, zwhy);
        return -EINVAL;
    }
    memcpy(key, buf, KWS_CONFIG_Z85_LEN);
    return 0;
}

static int client_cmp(const void *a, const void *b) {
    return strcmp(((const struct config_curve_client *)a)->name,
                  ((const struct config_curve_client *)b)->name);
}

/* Reads every "*.key" regular file of clients_dir into the config's
 * clients, sorted by name; reports each bad one at v. */
static void curve_clients_load(struct walk *w, const yaml_node_t *v) {
    const char *key = "transport.curve.clients_dir", *dir = w->cfg->transport.curve.clients_dir;
    struct config_curve_client *cl = w->cfg->transport.curve.clients;
    char path[KWS_CONFIG_PATH_LEN + 256], why[KWS_CONFIG_DIAG_LEN];
    struct dirent *e;
    int n = 0, errors = w->errors;
    DIR *dp = opendir(dir);

    if (!dp) {
        walk_err(w, v, key, "%s: %s", dir, strerror(errno));
        return;
    }
    while ((e = readdir(dp)) != NULL) {
        size_t len = strlen(e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".key") != 0)
            continue;
        snprintf(path, sizeof path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
                 e->d_name);
        if (stat(path, &st) < 0 || S_ISDIR(st.st_mode))
            continue; /* a dangling link or a folder */
        if (len - 4 >= KWS_CONFIG_CLIENT_LEN) {
            walk_err(w, v, key, "%s: name longer than %d bytes", path, KWS_CONFIG_CLIENT_LEN - 1);
            continue;
        }
        if (n == KWS_CONFIG_MAX_CLIENTS) {
            walk_err(w, v, key, "%s: more than %d client keys", dir, KWS_CONFIG_MAX_CLIENTS);
            break;
        }
        if (config_key_file_read(path, 0, cl[n].key, why, sizeof why) < 0) {
            walk_err(w, v, key, "%s", why);
            continue;
        }
        memcpy(cl[n].name, e->d_name, len - 4);
        n++;
    }
    closedir(dp);
    if (n == 0 && w->errors == errors)
        walk_err(w, v, key, "%s: no client keys (*.key files) in it", dir);
    qsort(cl, (size_t)n, sizeof *cl, client_cmp);
    w->cfg->transport.curve.n_clients = n;
}

/* transport.curve: both keys or neither; reads the secret key and the
 * allowed client keys. An open CURVE server (no client list) would let in
 * anyone who has its public key, which is no secret, so it is refused. */
static void curve_load(struct walk *w) {
    struct kws_config *c = w->cfg;
    char why[KWS_CONFIG_DIAG_LEN];
    const char *secret = c->transport.curve.secret_key_file;
    const char *clients = c->transport.curve.clients_dir;

    if (!secret[0] && !clients[0])
        return;
    if (!secret[0]) {
        walk_err(w, w->curve_clients, "transport.curve.clients_dir",
                 "needs transport.curve.secret_key_file (the server's key): without it CURVE is "
                 "off and anyone may subscribe");
        return;
    }
    if (!clients[0]) {
        walk_err(w, w->curve_clients ? w->curve_clients : w->curve_secret,
                 "transport.curve.clients_dir",
                 "empty: with a secret key, give the folder of allowed client keys (CURVE "
                 "without it would let anyone with the server's public key subscribe)");
        return;
    }
    if (config_key_file_read(secret, 1, c->transport.curve.secret_key, why, sizeof why) < 0)
        walk_err(w, w->curve_secret, "transport.curve.secret_key_file", "%s", why);
    curve_clients_load(w, w->curve_clients);
}

/* ==== Loading ==== */

/* 1-based line and column of a byte offset in text (for reader errors,
 * which carry an offset rather than a mark). */
static void offset_pos(const char *text, size_t len, size_t off, size_t *line, size_t *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

static void syntax_err(const yaml_parser_t *ps, const char *name, const char *text, size_t len,
                       struct config_diags *d) {
    size_t line = ps->problem_mark.line + 1, col = ps->problem_mark.column + 1;
    const char *problem = ps->problem ? ps->problem : "unknown error";

    if (ps->error == YAML_READER_ERROR) {
        offset_pos(text, len, ps->problem_offset, &line, &col);
        config_diags_add(d, "%s:%zu:%zu: syntax error: %s", name, line, col, problem);
    } else if (ps->context) {
        config_diags_add(d, "%s:%zu:%zu: syntax error: %s (%s at line %zu column %zu)", name, line,
                         col, problem, ps->context, ps->context_mark.line + 1,
                         ps->context_mark.column + 1);
    } else {
        config_diags_add(d, "%s:%zu:%zu: syntax error: %s", name, line, col, problem);
    }
}

/* Parses len bytes of YAML text over the defaults into *cfg. */
static int parse_text(struct kws_config *cfg, const char *name, const char *text, size_t len,
                      struct config_diags *d) {
    struct kws_config tmp;
    yaml_parser_t parser;
    yaml_document_t doc, next;
    int rc = 0;

    diags_reset(d);
    config_defaults(&tmp);
    snprintf(tmp.source, sizeof tmp.source, "%s", name);

    if (!yaml_parser_initialize(&parser))
        return -ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        if (parser.error == YAML_MEMORY_ERROR) {
            rc = -ENOMEM;
        } else {
            syntax_err(&parser, name, text, len, d);
            rc = KWS_ECONFIG;
        }
        yaml_parser_delete(&parser);
        return rc;
    }
    /* A syntax error in a later document also stops before any key is judged. */
    int have_next = 0;
    if (yaml_document_get_root_node(&doc)) {
        if (!yaml_parser_load(&parser, &next)) {
            rc = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : KWS_ECONFIG;
            if (rc == KWS_ECONFIG)
                syntax_err(&parser, name, text, len, d);
            goto out;
        }
        have_next = 1;
    }

    struct walk w = {.name = name, .d = d, .doc = &doc, .cfg = &tmp};
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type == YAML_MAPPING_NODE) {
        walk_mapping(&w, root, "");
    } else if (root && !node_is_null(root)) {
        char show[64];
        walk_err(&w, root, "(top level)", "expected a mapping of sections, got %s",
                 node_show(root, show, sizeof show));
    }
    if (!w.curve_bad) /* other keys' errors do not hide the key files' */
        curve_load(&w);
    if (w.model_path && tmp.model.n_paths > 0)
        walk_err(&w, w.model_path, "model.path",
                 "give model.path (one model) or model.paths (several), not both");
    const yaml_node_t *extra = have_next ? yaml_document_get_root_node(&next) : NULL;
    if (extra)
        walk_err(&w, extra, "(top level)", "only one YAML document is allowed");
    rc = w.errors ? KWS_ECONFIG : 0;

out:
    if (have_next)
        yaml_document_delete(&next);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc == 0)
        memcpy(cfg, &tmp, sizeof tmp); /* padding too, so memcmp stays meaningful */
    return rc;
}

void config_defaults(struct kws_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < KWS_ARRAY_SIZE(config_keys); i++) {
        const struct cfg_key *k = &config_keys[i];
        yaml_node_t n;
        struct walk w = {.name = "(defaults)", .cfg = cfg};

        if (k->type == CFG_KEYWORDS || k->type == CFG_PATHS)
            continue; /* no overrides, no model.paths by default */
        memset(&n, 0, sizeof n);
        n.type = YAML_SCALAR_NODE;
        n.data.scalar.value = (yaml_char_t *)k->def;
        n.data.scalar.length = strlen(k->def);
        n.data.scalar.style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        if (k->type == CFG_ENDPOINTS) {
            KWS_ASSERT(set_scalar(&w, k, k->name, &n, cfg->transport.endpoints[0]) == 0);
            cfg->transport.n_endpoints = 1;
        } else {
            KWS_ASSERT(set_scalar(&w, k, k->name, &n, (char *)cfg + k->off) == 0);
        }
    }
}

int config_parse_string(struct kws_config *cfg, const char *name, const char *yaml,
                        struct config_diags *d) {
    return parse_text(cfg, name ? name : "(string)", yaml, strlen(yaml), d);
}

/* Reads a whole regular file into a NUL-terminated heap buffer. Anything
 * else is refused at once (-EISDIR for a directory, -EINVAL otherwise) with
 * *mode set to what it is (kws_open_regular). */
static int read_file(const char *path, char **out, size_t *outlen, mode_t *mode) {
    struct stat st = {0};
    int fd = kws_open_regular(path, &st);
    if (fd == -EISDIR || fd == -EINVAL)
        *mode = st.st_mode;
    if (fd < 0)
        return fd;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= CONFIG_FILE_MAX) {
                free(buf);
                close(fd);
                return -EFBIG;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                close(fd);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            free(buf);
            close(fd);
            return e;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

int config_load(struct kws_config *cfg, const char *path, struct config_diags *d) {
    char *text = NULL;
    size_t len = 0;

    diags_reset(d);
    if (!path) {
        config_defaults(cfg);
        return 0;
    }
    mode_t mode = S_IFREG;
    int rc = read_file(path, &text, &len, &mode);
    if (rc < 0) {
        if (!S_ISREG(mode))
            config_diags_add(d, "%s: %s, not a regular file", path, kws_file_kind(mode));
        else
            config_diags_add(d, "%s: %s", path, rc == -EFBIG ? "file too large" : kws_strerror(rc));
        return rc;
    }
    rc = parse_text(cfg, path, text, len, d);
    free(text);
    return rc;
}

/* ==== The model set ==== */

/* Whether path names the same file as one of files[0..n): by realpath when
 * both exist, else by spelling. */
static int model_listed(char files[][KWS_CONFIG_PATH_LEN], int n, const char *path) {
    char a[PATH_MAX], b[PATH_MAX];
    int have_a = realpath(path, a) != NULL;

    for (int i = 0; i < n; i++) {
        if (strcmp(files[i], path) == 0)
            return 1;
        if (have_a && realpath(files[i], b) && strcmp(a, b) == 0)
            return 1;
    }
    return 0;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends dir's *.kwsm files (regular files, by name) to files[*n]. */
static int model_dir_files(const char *dir, char files[][KWS_CONFIG_PATH_LEN], int *n,
                           struct config_diags *d) {
    char *names[256];
    int n_names = 0, rc = 0;
    struct dirent *e;
    DIR *dp = opendir(dir);

    if (!dp) {
        rc = -errno;
        config_diags_add(d, "%s: model.dir: %s", dir, kws_strerror(rc));
        return rc;
    }
    while ((e = readdir(dp)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".kwsm") != 0)
            continue;
        if (n_names == (int)KWS_ARRAY_SIZE(names)) {
            config_diags_add(d, "%s: model.dir: more than %d model files", dir, n_names);
            rc = KWS_ECONFIG;
            break;
        }
        if (!(names[n_names] = strdup(e->d_name))) {
            rc = -ENOMEM;
            break;
        }
        n_names++;
    }
    closedir(dp);
    if (rc == 0)
        qsort(names, (size_t)n_names, sizeof names[0], name_cmp);
    for (int i = 0; i < n_names && rc == 0; i++) {
        char path[KWS_CONFIG_PATH_LEN];
        struct stat st;
        int len = snprintf(path, sizeof path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
                           names[i]);
        if (len >= (int)sizeof path) {
            config_diags_add(d, "%s: model.dir: path of %s too long", dir, names[i]);
            rc = KWS_ECONFIG;
        } else if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || model_listed(files, *n, path)) {
            continue; /* a dangling link, a directory or a file listed already */
        } else if (*n == KWS_CONFIG_MAX_MODELS) {
            config_diags_add(d, "%s: model.dir: more than %d models in all (at %s)", dir,
                             KWS_CONFIG_MAX_MODELS, names[i]);
            rc = KWS_ECONFIG;
        } else {
            snprintf(files[(*n)++], KWS_CONFIG_PATH_LEN, "%s", path);
        }
    }
    for (int i = 0; i < n_names; i++)
        free(names[i]);
    return rc;
}

int config_model_files(const struct kws_config *cfg,
                       char files[KWS_CONFIG_MAX_MODELS][KWS_CONFIG_PATH_LEN],
                       struct config_diags *d) {
    int n = 0;

    if (cfg->model.n_paths == 0) {
        snprintf(files[n++], KWS_CONFIG_PATH_LEN, "%s", cfg->model.path);
    } else {
        for (int i = 0; i < cfg->model.n_paths; i++)
            if (!model_listed(files, n, cfg->model.paths[i]))
                snprintf(files[n++], KWS_CONFIG_PATH_LEN, "%s", cfg->model.paths[i]);
    }
    if (cfg->model.dir[0]) {
        int rc = model_dir_files(cfg->model.dir, files, &n, d);
        if (rc < 0)
            return rc;
    }
    return n;
}

/* ==== After the model is loaded ==== */

int config_check_labels(const struct kws_config *cfg, const char *const *labels, int n,
                        struct config_diags *d) {
    int bad = 0;
    const char *src = cfg->source[0] ? cfg->source : "(config)";

    for (int i = 0; i < cfg->detection.n_keywords; i++) {
        const struct config_keyword *kw = &cfg->detection.keywords[i];
        int found = 0;
        for (int j = 0; j < n && !found; j++)
            found = labels[j] && strcmp(labels[j], kw->label) == 0;
        if (!found) {
            config_diags_add(d, "%s:%d:%d: detection.keywords.%s: no such label in model", src,
                             kw->line, kw->col, kw->label);
            bad++;
        }
    }
    return bad ? KWS_ECONFIG : 0;
}

void config_listener_settings(const struct kws_config *cfg, struct kws_listener_settings *s) {
    kws_listener_settings_default(s);
    s->threshold = cfg->detection.threshold;
    s->smoothing_ms = cfg->detection.smoothing_ms;
    s->refractory_ms = cfg->detection.refractory_ms;
    s->n_keywords = cfg->detection.n_keywords;
    for (int i = 0; i < cfg->detection.n_keywords; i++) {
        snprintf(s->keywords[i].label, sizeof s->keywords[i].label, "%s",
                 cfg->detection.keywords[i].label);
        s->keywords[i].threshold = cfg->detection.keywords[i].threshold;
    }
}

/* ==== Writing it out ==== */

/* A YAML double-quoted string. */
static void put_quoted(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        /* libyaml hands over valid UTF-8; decode a sequence's code point */
        int len = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc0 ? 2 : 1, got = 1;
        unsigned cp = len == 1 ? *p : *p & (0x3fu >> (len - 1));
        for (; got < len && (p[got] & 0xc0) == 0x80; got++)
            cp = cp << 6 | (p[got] & 0x3fu);
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else if (len > 1 && got == len &&
                 ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfffe ||
                  cp == 0xffff)) {
            /* C1 controls, NEL and the line and paragraph separators would
             * be read back as line breaks or refused: escape them too */
            fprintf(f, "\\u%04x", cp);
            p += len - 1;
        } else
            fputc(*p, f);
    }
    fputc('"', f);
}

void config_dump(const struct kws_config *cfg, FILE *f) {
    fputs("audio:\n  device: ", f);
    put_quoted(f, cfg->audio.device);
    fprintf(f, "\n  rate: %d\n  period_ms: %d\n", cfg->audio.rate, cfg->audio.period_ms);
    fputs("model:\n", f);
    if (cfg->model.n_paths == 0) {
        fputs("  path: ", f);
        put_quoted(f, cfg->model.path);
    } else {
        fputs("  paths:", f);
        for (int i = 0; i < cfg->model.n_paths; i++) {
            fputs("\n    - ", f);
            put_quoted(f, cfg->model.paths[i]);
        }
    }
    fputs("\n  dir: ", f);
    put_quoted(f, cfg->model.dir);
    if (cfg->detection.threshold == KWS_THRESHOLD_MODEL)
        fputs("\ndetection:\n  threshold: model\n", f);
    else
        fprintf(f, "\ndetection:\n  threshold: %.9g\n", cfg->detection.threshold);
    fprintf(f, "  smoothing_ms: %d\n  refractory_ms: %d\n", cfg->detection.smoothing_ms,
            cfg->detection.refractory_ms);
    if (cfg->detection.n_keywords == 0)
        fputs("  keywords: {}\n", f);
    else
        fputs("  keywords:\n", f);
    for (int i = 0; i < cfg->detection.n_keywords; i++) {
        fputs("    ", f);
        put_quoted(f, cfg->detection.keywords[i].label);
        fprintf(f, ": %.9g\n", cfg->detection.keywords[i].threshold);
    }
    fputs("transport:\n  endpoints:\n", f);
    for (int i = 0; i < cfg->transport.n_endpoints; i++) {
        fputs("    - ", f);
        put_quoted(f, cfg->transport.endpoints[i]);
        fputc('\n', f);
    }
    fprintf(f, "  heartbeat_s: %.17g\n  queue: %d\n", cfg->transport.heartbeat_s,
            cfg->transport.queue);
    fputs("  wyoming: ", f);
    put_quoted(f, cfg->transport.wyoming);
    fputs("\n  curve:\n    secret_key_file: ", f);
    put_quoted(f, cfg->transport.curve.secret_key_file);
    fputs("\n    clients_dir: ", f);
    put_quoted(f, cfg->transport.curve.clients_dir);
    fputc('\n', f);
    fprintf(f, "logging:\n  level: %s\n", kws_log_level_name(cfg->logging.level));
    fputs("mqtt:\n  host: ", f);
    put_quoted(f, cfg->mqtt.host);
    fprintf(f, "\n  port: %d\n  tls: ", cfg->mqtt.port);
    put_quoted(f, cfg->mqtt.tls);
    fputs("\n  username: ", f);
    put_quoted(f, cfg->mqtt.username);
    fputs("\n  password_file: ", f);
    put_quoted(f, cfg->mqtt.password_file);
    fputs("\n  site_id: ", f);
    put_quoted(f, cfg->mqtt.site_id);
    fputc('\n', f);
}

void config_keys_markdown(FILE *f) {
    fputs("| key | type | range | default | meaning |\n", f);
    fputs("|---|---|---|---|---|\n", f);
    for (size_t i = 0; i < KWS_ARRAY_SIZE(config_keys); i++) {
        const struct cfg_key *k = &config_keys[i];
        fprintf(f, "| `%s` | ", k->name);
        switch (k->type) {
        case CFG_STRING:
            fprintf(f, "string | %.0f..%.0f bytes | `%s`", k->min, k->max,
                    k->def[0] ? k->def : "\"\"");
            break;
        case CFG_INT:
            fprintf(f, "integer | [%.0f, %.0f] | `%s`", k->min, k->max, k->def);
            break;
        case CFG_FLOAT:
        case CFG_DOUBLE:
            fprintf(f, "number | [%g, %g] | `%s`", k->min, k->max, k->def);
            break;
        case CFG_THRESHOLD:
            fprintf(f, "number or `model` | [%g, %g] | `%s`", k->min, k->max, k->def);
            break;
        case CFG_LOGLEVEL:
            fprintf(f, "enum | error, warning, notice, info, debug | `%s`", k->def);
            break;
        case CFG_ENDPOINTS:
        case CFG_PATHS:
            fprintf(f, "sequence of strings | %.0f..%.0f items | `[%s]`", k->min, k->max, k->def);
            break;
        case CFG_KEYWORDS:
            fprintf(f, "mapping label: number | [%g, %g] each, at most %d | `{}`", k->min, k->max,
                    KWS_CONFIG_MAX_KEYWORDS);
            break;
        }
        fprintf(f, " | %s |\n", k->doc);
    }
}

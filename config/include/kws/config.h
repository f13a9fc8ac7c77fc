/* kws/config.h: kwsd's YAML configuration, its defaults and its diagnostics.
 *
 * The configuration is one plain struct of fixed-size fields (no heap), so a
 * daemon can parse a new file into a temporary, and swap it in by copy only
 * when it is valid. Every key has a type, a range and a default, all held in
 * one table inside config.c; docs/CONFIG.md lists the same table (a test
 * checks that they agree). Errors read `path:line:col: key: message` with
 * 1-based positions, one line per problem:
 *
 *     kwsd.yaml:12:5: audio.rate: 441000 out of range [8000, 192000]
 *
 * Usage:
 *
 *     struct kws_config cfg;
 *     struct config_diags d;
 *     config_defaults(&cfg);
 *     if (config_load(&cfg, "/etc/kwsd/kwsd.yaml", &d) < 0) {
 *         config_diags_print(&d, stderr);   // cfg still holds the defaults
 *         return 1;
 *     }
 *     // after the model is loaded, check the per-keyword overrides:
 *     if (config_check_labels(&cfg, labels, n_labels, &d) < 0)
 *         config_diags_print(&d, stderr);
 *
 * Thread-safety: no global state; functions may run on any thread as long as
 * each struct is used by one thread at a time.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWS_CONFIG_CONFIG_H
#define KWS_CONFIG_CONFIG_H

#include <stdio.h>

#include "kws/listener.h"
#include "kws/log.h"

#define KWS_CONFIG_NAME_LEN 256   /* file name kept for diagnostics */
#define KWS_CONFIG_DEVICE_LEN 128 /* ALSA PCM name, NUL included */
#define KWS_CONFIG_PATH_LEN 512   /* model path, NUL included */
#define KWS_CONFIG_MAX_ENDPOINTS 8
#define KWS_CONFIG_ENDPOINT_LEN 256 /* one ZeroMQ endpoint, NUL included */
#define KWS_CONFIG_MAX_MODELS 8     /* models loaded at once (model.paths and model.dir) */
#define KWS_CONFIG_MAX_KEYWORDS 32  /* per-keyword overrides (= SNN_MAX_CLASSES) */
#define KWS_CONFIG_LABEL_LEN 32     /* keyword label, NUL included (= SNN_LABEL_LEN) */
#define KWS_CONFIG_HOST_LEN 256     /* MQTT broker host, NUL included */
#define KWS_CONFIG_USER_LEN 128     /* MQTT user name, NUL included */
#define KWS_CONFIG_SITE_LEN 64      /* Hermes siteId, NUL included */
#define KWS_CONFIG_Z85_LEN 41       /* a CURVE key in Z85 (40 characters), NUL included */
#define KWS_CONFIG_MAX_CLIENTS 64   /* allowed CURVE client keys (transport.curve.clients_dir) */
#define KWS_CONFIG_CLIENT_LEN 64    /* a client's name: its key file's name without ".key" */

#define KWS_CONFIG_DIAG_MAX 32
#define KWS_CONFIG_DIAG_LEN 256

/* A caller-owned list of diagnostics. config_load and config_parse_string
 * reset it; config_check_labels and config_diags_add append. When more than
 * KWS_CONFIG_DIAG_MAX lines arrive, the extra ones are counted in truncated. */
struct config_diags {
    int n;                                              /* lines in msg */
    char msg[KWS_CONFIG_DIAG_MAX][KWS_CONFIG_DIAG_LEN]; /* "path:line:col: key: message" */
    int truncated;                                      /* lines that did not fit */
};

/* One detection.keywords entry: a threshold for one label, and where it was
 * written, so the daemon can report a label the model does not have. */
struct config_keyword {
    char label[KWS_CONFIG_LABEL_LEN];
    float threshold; /* [0, 1] */
    int line, col;   /* 1-based position of the label in the file; 0 if not from a file */
};

/* The whole configuration. Plain data: copy it with = or memcpy. Every byte is
 * defined (config_defaults zeroes the struct first), so memcmp compares two
 * configs and a section (e.g. cfg.audio) can be compared on its own. */
struct kws_config {
    char source[KWS_CONFIG_NAME_LEN]; /* file it was read from; "" for built-in defaults */
    struct {
        char device[KWS_CONFIG_DEVICE_LEN]; /* ALSA PCM name ("default") */
        int rate;                           /* requested capture rate, Hz [8000, 192000] */
        int period_ms;                      /* ALSA period, ms [5, 200] */
    } audio;
    struct {
        char path[KWS_CONFIG_PATH_LEN]; /* .kwsm model file (when n_paths is 0) */
        int n_paths;                    /* entries in paths: 0 = use path */
        char paths[KWS_CONFIG_MAX_MODELS][KWS_CONFIG_PATH_LEN]; /* model.paths, instead of path */
        char dir[KWS_CONFIG_PATH_LEN]; /* every *.kwsm in it is loaded too; "" = none */
    } model;
    struct {
        float threshold;   /* global score threshold [0, 1], or KWS_THRESHOLD_MODEL */
        int smoothing_ms;  /* posterior smoothing window, ms [10, 3000] */
        int refractory_ms; /* quiet time after a detection, ms [0, 60000] */
        int n_keywords;    /* entries in keywords */
        struct config_keyword keywords[KWS_CONFIG_MAX_KEYWORDS];
    } detection;
    struct {
        int n_endpoints; /* 1..KWS_CONFIG_MAX_ENDPOINTS */
        char endpoints[KWS_CONFIG_MAX_ENDPOINTS][KWS_CONFIG_ENDPOINT_LEN];
        double heartbeat_s; /* status heartbeat period, s [0.5, 3600] */
        int queue;          /* per-subscriber queue, messages (ZMQ_SNDHWM) [1, 1000000] */
        char wyoming[KWS_CONFIG_ENDPOINT_LEN]; /* Wyoming server "tcp://host:port"; "" = off */
        struct { /* CURVE on the publisher; off while secret_key_file is "" */
            char secret_key_file[KWS_CONFIG_PATH_LEN]; /* first line: the server's Z85 secret key */
            char clients_dir[KWS_CONFIG_PATH_LEN];     /* *.key files: allowed client public keys */
            /* Read from those files by config_load, so a reload sees a changed key: */
            char secret_key[KWS_CONFIG_Z85_LEN]; /* the server's secret key, Z85 */
            int n_clients;                       /* entries in clients, by name */
            struct config_curve_client {
                char name[KWS_CONFIG_CLIENT_LEN]; /* file name without ".key" */
                char key[KWS_CONFIG_Z85_LEN];     /* public key, Z85 */
            } clients[KWS_CONFIG_MAX_CLIENTS];
        } curve;
    } transport;
    struct {
        enum kws_log_level level; /* most verbose level logged */
    } logging;
    struct {                                     /* MQTT (Hermes) publisher; off while host is "" */
        char host[KWS_CONFIG_HOST_LEN];          /* broker host name or address */
        int port;                                /* broker TCP port [1, 65535] */
        char tls[KWS_CONFIG_PATH_LEN];           /* CA file: "" = plain TCP, else TLS */
        char username[KWS_CONFIG_USER_LEN];      /* "" = none */
        char password_file[KWS_CONFIG_PATH_LEN]; /* first line is the password; "" = none */
        char site_id[KWS_CONFIG_SITE_LEN];       /* Hermes siteId ("default") */
    } mqtt;
};

/* Fills *cfg with the built-in defaults (every key's default from the table;
 * one endpoint, tcp://127.0.0.1:5556; no keyword overrides). Never fails. */
void config_defaults(struct kws_config *cfg);

/* Reads the YAML file at path, applying it over the built-in defaults (an
 * empty file gives the defaults). path NULL means "no file": *cfg gets the
 * defaults and 0 is returned. d (may be NULL) is reset, then receives one line
 * per problem. Stops at the first YAML syntax error; otherwise reports every
 * unknown, duplicate, mistyped or out-of-range key.
 *
 * Returns 0 and fills *cfg on success. On failure *cfg is left untouched and
 * the return is KWS_ECONFIG (the file is invalid; negative, like every kwsd
 * error code), or -errno when the file cannot be read (-ENOENT, -EACCES,
 * -EISDIR, -EFBIG over 1 MiB; d then holds "path: <reason>").
 *
 * transport.curve's files are read here too (the secret key file and every
 * `*.key` in clients_dir): a file that cannot be read, a key that is not 40
 * Z85 characters, a secret key file that others may read or write, a folder
 * with no key, or one of the two keys given without the other is an error at
 * the key's position, so `kwsd --check-config` reports it. */
int config_load(struct kws_config *cfg, const char *path, struct config_diags *d);

/* Reads the CURVE key on the first line of the regular file path (40 Z85
 * characters; trailing blanks and the line end are ignored) into key
 * (KWS_CONFIG_Z85_LEN bytes). With secret set, the file must not be open to
 * others (no bit of mode & 007), as ssh requires of a private key. This is
 * the one reader of key files: config_load uses it for transport.curve, and
 * clients such as kwsd-listen for their own keys. Returns 0, or a negative
 * error with the reason, naming path ("path: ..."), in why (whylen bytes):
 * -errno when it cannot be opened or read, -EINVAL when it is not a regular
 * file or its first line is not a Z85 key, -EPERM for a secret key file
 * that others may read or write. */
int config_key_file_read(const char *path, int secret, char *key, char *why, size_t whylen);

/* Same as config_load, for YAML text already in memory. name is what
 * diagnostics print as the file name (and what cfg->source records). */
int config_parse_string(struct kws_config *cfg, const char *name, const char *yaml,
                        struct config_diags *d);

/* The model files cfg names, in load order: model.paths (or model.path when
 * it has none), then every regular file ending in ".kwsm" in model.dir,
 * sorted by name. A file named twice is loaded once. Writes up to
 * KWS_CONFIG_MAX_MODELS paths into files and returns how many, or a
 * negative error with a "dir: reason" line in d (model.dir unreadable, or
 * more than KWS_CONFIG_MAX_MODELS models in all). */
int config_model_files(const struct kws_config *cfg,
                       char files[KWS_CONFIG_MAX_MODELS][KWS_CONFIG_PATH_LEN],
                       struct config_diags *d);

/* Checks every detection.keywords label against the labels of every loaded
 * model (n of them in all). Appends `source:line:col: detection.keywords.<label>: no such label in
 * model` for each unknown one. Returns 0, or KWS_ECONFIG if any is unknown. */
int config_check_labels(const struct kws_config *cfg, const char *const *labels, int n,
                        struct config_diags *d);

/* detection.threshold: model is KWS_THRESHOLD_MODEL (kws/listener.h): the
 * threshold calibrated into the model file, or KWS_THRESHOLD_FALLBACK when
 * the model has none. */

/* The detection section as a listener's settings (kws/listener.h), whose
 * kws_listener_threshold is the one threshold rule: a label's
 * detection.keywords override, else detection.threshold, else the model's. */
void config_listener_settings(const struct kws_config *cfg, struct kws_listener_settings *s);

/* Appends one printf-formatted line to d (d may be NULL). */
void config_diags_add(struct config_diags *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes each line of d to f, then "(N more errors)" if some were cut. */
void config_diags_print(const struct config_diags *d, FILE *f);

/* Writes the configuration as YAML that config_load reads back unchanged
 * (what `kwsd --check-config` can show as the effective config). */
void config_dump(const struct kws_config *cfg, FILE *f);

/* Writes the key table (key, type, range, default, meaning) as a Markdown
 * table: the source of docs/CONFIG.md's table. */
void config_keys_markdown(FILE *f);

#endif /* KWS_CONFIG_CONFIG_H */

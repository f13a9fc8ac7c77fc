/* kwsd-listen: print a running kwsd's events, one JSON line each.
 *
 * Subscribes to kwsd's ZeroMQ publisher and writes each message's JSON to
 * stdout with its topic added as the first field, flushing every line, so
 * the output can be piped into jq, a log or a shell loop:
 *
 *     kwsd-listen --keyword yes --keyword no --count 1 --timeout 30
 *     {"topic":"kws.detection.yes","keyword":"yes","score":0.93,...}
 *
 * ZeroMQ matches subscriptions by prefix (kws.detection.yes would also match
 * a label "yesterday"); kwsd-listen compares the whole topic, so --keyword
 * yes prints yes only.
 *
 * With --curve-server-key and --curve-secret-key it is a CURVE client
 * (docs/SECURITY.md) of a kwsd whose transport.curve is on: the key files are
 * read by config_key_file_read, the same reader kwsd uses for its own, and
 * the socket is set up by transport_curve_client_set.
 *
 * Exit status: 0 when --count events arrived (or --timeout ran out with no
 * --count, or on SIGINT/SIGTERM), 1 when --count was not reached within
 * --timeout, 2 on a usage or socket error.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "kws/config.h"
#include "kws/err.h"
#include "kws/transport.h"

#ifndef KWSD_VERSION
#define KWSD_VERSION "unknown"
#endif

#define LISTEN_MAX_KEYWORDS 32
#define LISTEN_MAX_ENDPOINTS 8
#define LISTEN_TOPIC_MAX 256
#define LISTEN_BODY_MAX 65536

static const char usage[] =
    "Usage: kwsd-listen [OPTION]...\n"
    "Print the events of a running kwsd, one JSON line each.\n"
    "\n"
    "  -e, --endpoint E   ZeroMQ endpoint to connect to (default tcp://127.0.0.1:5556);\n"
    "                     repeat to listen to several\n"
    "  -k, --keyword K    print only detections of keyword K (repeatable; default: all)\n"
    "  -s, --status       also print kws.status heartbeats (they do not count)\n"
    "  -n, --count N      exit 0 after N detections\n"
    "  -t, --timeout S    with --count: exit 1 if N detections did not come within S\n"
    "                     seconds; without: listen for S seconds, then exit 0\n"
    "      --curve-server-key FILE\n"
    "                     CURVE: the server's public key (kwsd's server.key)\n"
    "      --curve-secret-key FILE\n"
    "                     CURVE: this client's secret key (NAME.key_secret, mode 0600);\n"
    "                     kwsd's transport.curve.clients_dir must hold its public key.\n"
    "                     Give both or neither\n"
    "  -h, --help         show this help and exit\n"
    "  -V, --version      show the version and exit\n"
    "\n"
    "Each line is the event's JSON with \"topic\" added first, e.g.\n"
    "  {\"topic\":\"kws.detection.yes\",\"keyword\":\"yes\",\"score\":0.93,...}\n"
    "Exit status: 0 done, 1 --count not reached in time, 2 usage or socket error.\n";

struct listen_opts {
    const char *endpoints[LISTEN_MAX_ENDPOINTS];
    int n_endpoints;
    const char *keywords[LISTEN_MAX_KEYWORDS];
    int n_keywords;
    int status;                            /* print heartbeats */
    long count;                            /* 0: no limit */
    double timeout_s;                      /* < 0: none */
    const char *curve_server_file;         /* --curve-server-key; NULL: CURVE off */
    const char *curve_secret_file;         /* --curve-secret-key */
    char curve_server[KWS_CONFIG_Z85_LEN]; /* the server's public key, Z85 */
    char curve_secret[KWS_CONFIG_Z85_LEN]; /* this client's secret key, Z85 */
};

enum { OPT_CURVE_SERVER = 256, OPT_CURVE_SECRET };

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse_count(const char *s, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno || v < 1)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno || !isfinite(v) || v < 0 || v > 1e7)
        return -1;
    *out = v;
    return 0;
}

/* Reads the CURVE key files the options name, both or neither. Returns 0,
 * or 2 after an error naming the option and the file ("file: what"). */
static int curve_keys_load(struct listen_opts *o) {
    char why[KWS_CONFIG_DIAG_LEN];

    if (!o->curve_server_file != !o->curve_secret_file) {
        fprintf(stderr, "kwsd-listen: %s needs %s too (CURVE takes both keys, or neither)\n",
                o->curve_server_file ? "--curve-server-key" : "--curve-secret-key",
                o->curve_server_file ? "--curve-secret-key" : "--curve-server-key");
        return 2;
    }
    if (!o->curve_server_file)
        return 0;
    if (config_key_file_read(o->curve_server_file, 0, o->curve_server, why, sizeof why) < 0) {
        fprintf(stderr, "kwsd-listen: --curve-server-key: %s\n", why);
        return 2;
    }
    if (config_key_file_read(o->curve_secret_file, 1, o->curve_secret, why, sizeof why) < 0) {
        fprintf(stderr, "kwsd-listen: --curve-secret-key: %s\n", why);
        return 2;
    }
    return 0;
}

/* Parses argv. Returns -1 to exit 0 (help, version), 0 to run, 2 on error. */
static int parse_args(int argc, char **argv, struct listen_opts *o) {
    static const struct option longopts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"keyword", required_argument, NULL, 'k'},
        {"status", no_argument, NULL, 's'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"curve-server-key", required_argument, NULL, OPT_CURVE_SERVER},
        {"curve-secret-key", required_argument, NULL, OPT_CURVE_SECRET},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof *o);
    o->timeout_s = -1;
    while ((c = getopt_long(argc, argv, "e:k:sn:t:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'e':
            if (o->n_endpoints >= LISTEN_MAX_ENDPOINTS) {
                fprintf(stderr, "kwsd-listen: at most %d endpoints\n", LISTEN_MAX_ENDPOINTS);
                return 2;
            }
            o->endpoints[o->n_endpoints++] = optarg;
            break;
        case 'k':
            if (o->n_keywords >= LISTEN_MAX_KEYWORDS) {
                fprintf(stderr, "kwsd-listen: at most %d keywords\n", LISTEN_MAX_KEYWORDS);
                return 2;
            }
            if (!optarg[0] || strlen(optarg) > 64) {
                fprintf(stderr, "kwsd-listen: --keyword: bad keyword \"%s\"\n", optarg);
                return 2;
            }
            o->keywords[o->n_keywords++] = optarg;
            break;
        case 's':
            o->status = 1;
            break;
        case 'n':
            if (parse_count(optarg, &o->count) < 0) {
                fprintf(stderr, "kwsd-listen: --count: expected a whole number >= 1, got \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case 't':
            if (parse_seconds(optarg, &o->timeout_s) < 0) {
                fprintf(stderr, "kwsd-listen: --timeout: expected seconds >= 0, got \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_CURVE_SERVER:
            o->curve_server_file = optarg;
            break;
        case OPT_CURVE_SECRET:
            o->curve_secret_file = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        case 'V':
            printf("kwsd-listen %s\n", KWSD_VERSION);
            return -1;
        default:
            fputs("Try 'kwsd-listen --help'.\n", stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kwsd-listen: unexpected argument \"%s\"\nTry 'kwsd-listen --help'.\n",
                argv[optind]);
        return 2;
    }
    if (o->n_endpoints == 0)
        o->endpoints[o->n_endpoints++] = "tcp://127.0.0.1:5556";
    return curve_keys_load(o);
}

/* True if topic is one the options ask for (exact match, not prefix). */
static int wanted(const struct listen_opts *o, const char *topic, int *is_detection) {
    static const char det[] = "kws.detection.";

    *is_detection = 0;
    if (strcmp(topic, "kws.status") == 0)
        return o->status;
    if (strncmp(topic, det, sizeof det - 1) != 0)
        return 0;
    *is_detection = 1;
    if (o->n_keywords == 0)
        return 1;
    for (int i = 0; i < o->n_keywords; i++)
        if (strcmp(topic + sizeof det - 1, o->keywords[i]) == 0)
            return 1;
    return 0;
}

/* Writes {"topic": topic, ...body's fields} as one line. 0, or -1 if the
 * body is not a JSON object (reported on stderr, not printed). */
static int print_event(const char *topic, const char *body, size_t len) {
    json_error_t err;
    json_t *in = json_loadb(body, len, 0, &err);
    if (!in || !json_is_object(in)) {
        fprintf(stderr, "kwsd-listen: %s: payload is not a JSON object (%s)\n", topic,
                in ? "other JSON" : err.text);
        json_decref(in);
        return -1;
    }
    json_t *out = json_object();
    json_object_set_new(out, "topic", json_string(topic));
    json_object_update(out, in);
    char *line = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(7));
    json_decref(out);
    json_decref(in);
    if (!line)
        return -1;
    puts(line);
    fflush(stdout);
    free(line);
    return 0;
}

/* Receives one [topic, body] message that zmq_poll said is ready. Returns
 * 1 with topic/body filled, 0 for a malformed message (skipped), -1 on error. */
static int recv_event(void *sock, char *topic, size_t tlen, char *body, size_t blen,
                      size_t *bodylen) {
    int more = 0;
    size_t ml = sizeof more;
    int n = zmq_recv(sock, topic, tlen - 1, ZMQ_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    topic[(size_t)n < tlen - 1 ? (size_t)n : tlen - 1] = '\0';
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
    if (!more)
        return 0;
    n = zmq_recv(sock, body, blen, 0);
    if (n < 0)
        return -1;
    *bodylen = (size_t)n < blen ? (size_t)n : blen;
    /* Discard any further frames of an unexpected message. */
    int truncated = (size_t)n > blen;
    for (;;) {
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
        if (!more)
            break;
        char skip[16];
        truncated = 1;
        if (zmq_recv(sock, skip, sizeof skip, 0) < 0)
            return -1;
    }
    return truncated ? 0 : 1;
}

static int subscribe(void *sock, const char *topic) {
    if (zmq_setsockopt(sock, ZMQ_SUBSCRIBE, topic, strlen(topic)) < 0) {
        fprintf(stderr, "kwsd-listen: subscribe %s: %s\n", topic, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* Opens the SUB socket: CURVE if the options have keys, the subscriptions,
 * then a connection to each endpoint. Returns 0, or 2 after a message
 * (*ctx and *sock, possibly NULL, are for listen_close either way). */
static int listen_open(const struct listen_opts *o, void **ctx, void **sock) {
    char sub[LISTEN_TOPIC_MAX], msg[256];
    int zero = 0;

    *ctx = zmq_ctx_new();
    *sock = *ctx ? zmq_socket(*ctx, ZMQ_SUB) : NULL;
    if (!*sock) {
        fprintf(stderr, "kwsd-listen: cannot create a ZeroMQ socket: %s\n", zmq_strerror(errno));
        return 2;
    }
    zmq_setsockopt(*sock, ZMQ_LINGER, &zero, sizeof zero);
    if (o->curve_server_file &&
        transport_curve_client_set(*sock, o->curve_server, o->curve_secret, msg, sizeof msg) < 0) {
        fprintf(stderr, "kwsd-listen: curve: %s\n", msg);
        return 2;
    }
    if (o->n_keywords == 0 && subscribe(*sock, "kws.detection.") < 0)
        return 2;
    for (int i = 0; i < o->n_keywords; i++) {
        snprintf(sub, sizeof sub, "kws.detection.%s", o->keywords[i]);
        if (subscribe(*sock, sub) < 0)
            return 2;
    }
    if (o->status && subscribe(*sock, "kws.status") < 0)
        return 2;
    for (int i = 0; i < o->n_endpoints; i++) {
        if (zmq_connect(*sock, o->endpoints[i]) < 0) {
            fprintf(stderr, "kwsd-listen: connect %s: %s\n", o->endpoints[i],
                    errno == EPROTONOSUPPORT || errno == ENOCOMPATPROTO
                        ? "unsupported transport (use tcp://, ipc:// or inproc://)"
                        : zmq_strerror(errno));
            return 2;
        }
    }
    return 0;
}

/* Prints the wanted events until --count, --timeout or a signal. Returns
 * the exit status: 0 done, 1 --count not reached in time, 2 on an error. */
static int listen_run(const struct listen_opts *o, void *sock) {
    char topic[LISTEN_TOPIC_MAX];
    static char body[LISTEN_BODY_MAX];
    long got = 0;
    double deadline = o->timeout_s >= 0 ? now_s() + o->timeout_s : 0;

    for (;;) {
        long wait_ms = -1;
        if (o->timeout_s >= 0) {
            double left = deadline - now_s();
            if (left <= 0) {
                if (o->count == 0)
                    return 0;
                fprintf(stderr, "kwsd-listen: timeout: %ld of %ld events in %g s\n", got, o->count,
                        o->timeout_s);
                return 1;
            }
            wait_ms = (long)ceil(left * 1000.0);
        }
        if (stop_requested)
            return 0;
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        int n = zmq_poll(&it, 1, wait_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "kwsd-listen: poll: %s\n", zmq_strerror(errno));
            return 2;
        }
        if (n == 0)
            continue;
        size_t len = 0;
        int r = recv_event(sock, topic, sizeof topic, body, sizeof body, &len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "kwsd-listen: receive: %s\n", zmq_strerror(errno));
            return 2;
        }
        int is_detection;
        if (r == 0 || !wanted(o, topic, &is_detection))
            continue;
        if (print_event(topic, body, len) == 0 && is_detection && o->count > 0 && ++got >= o->count)
            return 0;
    }
}

static void listen_close(void *ctx, void *sock) {
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
}

int main(int argc, char **argv) {
    struct listen_opts o;
    void *ctx, *sock;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: zmq_poll returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    rc = listen_open(&o, &ctx, &sock);
    if (rc == 0)
        rc = listen_run(&o, sock);
    listen_close(ctx, sock);
    return rc;
}

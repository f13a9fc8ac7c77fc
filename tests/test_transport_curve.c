/* test_transport_curve.c: the publisher with CURVE and its ZAP handler, and the key generator.
 *
 * The publisher binds tcp://127.0.0.1 on a port the kernel picks; the test
 * serves its ZAP handler itself (transport_pub_zap_process whenever it
 * waits for a message, as kwsd's loop does when the handler's descriptor
 * is readable). An allowed subscriber receives heartbeats; one with an
 * unknown key receives nothing, is counted, and is logged, at most
 * TRANSPORT_ZAP_LOG_PER_MIN lines a minute. transport_curve_keygen writes
 * its files with the right modes and never overwrites one.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "kws/log.h"
#include "kws/transport.h"

static char tmpdir[64];
static void *ctx;
static int refused_lines;

static void on_log(void *c, enum kws_log_level level, const char *file, int line, const char *msg) {
    (void)c;
    (void)level;
    (void)file;
    (void)line;
    if (strstr(msg, "curve: refused client key"))
        refused_lines++;
}

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kws_trc_XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(tmpdir), NULL)));
    ctx = zmq_ctx_new();
    refused_lines = 0;
    kws_log_set(on_log, NULL, KWS_LOG_DEBUG);
}

static void teardown(void) {
    char cmd[128];
    kws_log_set(NULL, NULL, KWS_LOG_ERR);
    zmq_ctx_term(ctx);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect(eq(int, system(cmd), 0));
}

TestSuite(transport_curve, .init = setup, .fini = teardown, .timeout = 30);

static void *sub_open(const char *ep, const char *server, const char *pub, const char *sec) {
    int zero = 0;
    void *s = zmq_socket(ctx, ZMQ_SUB);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    cr_assert(eq(int, zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, 40), 0));
    cr_assert(eq(int, zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40), 0));
    cr_assert(eq(int, zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40), 0));
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "kws.status", 10);
    cr_assert(eq(int, zmq_connect(s, ep), 0));
    return s;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sends heartbeats and serves the ZAP handler for ms; counts what each of
 * the n subscribers received into got[]. */
static void run_for(struct transport_pub *p, void **subs, int n, int *got, int ms) {
    struct kws_status st = {.device = "curve"};
    char buf[2048];
    int fd = transport_pub_zap_fd(p);
    cr_assert(ge(int, fd, 0));
    for (int64_t end = now_ms() + ms; now_ms() < end;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        poll(&pfd, 1, 20);
        cr_assert(ge(int, transport_pub_zap_process(p), 0));
        cr_assert(eq(int, transport_pub_status(p, &st), 0));
        for (int i = 0; i < n; i++)
            while (zmq_recv(subs[i], buf, sizeof buf, ZMQ_DONTWAIT) >= 0) {
                int more = 0;
                size_t len = sizeof more;
                zmq_getsockopt(subs[i], ZMQ_RCVMORE, &more, &len);
                got[i] += !more; /* count messages, not frames */
            }
    }
}

/* Opens p on a free 127.0.0.1 port with CURVE on: a new server key pair
 * (its public key into spub, checked against p's) and one allowed client,
 * "allowed", whose new pair goes into apub and asec. */
static void open_curve_server(struct transport_pub *p, char *spub, char *apub, char *asec) {
    char ssec[41], msg[256];
    cr_assert(eq(int, zmq_curve_keypair(spub, ssec), 0));
    cr_assert(eq(int, zmq_curve_keypair(apub, asec), 0));
    const char *keys[] = {apub}, *names[] = {"allowed"};
    struct transport_curve cv = {
        .secret_key = ssec, .n_clients = 1, .client_keys = keys, .client_names = names};
    const char *eps[] = {"tcp://127.0.0.1:*"};
    cr_assert(eq(int, transport_pub_open_curve(p, eps, 1, 100, &cv, msg, sizeof msg), 0), "%s",
              msg);
    cr_expect(eq(str, p->public_key, spub), "the public key is derived from the secret one");
}

Test(transport_curve, allowed_key_in_unknown_keys_out) {
    char spub[41], apub[41], asec[41];
    struct transport_pub p;
    open_curve_server(&p, spub, apub, asec);

    enum { N = 1 + 2 * TRANSPORT_ZAP_LOG_PER_MIN };
    void *subs[N];
    int got[N] = {0};
    subs[0] = sub_open(p.bound[0], spub, apub, asec);
    for (int i = 1; i < N; i++) {
        char bpub[41], bsec[41];
        cr_assert(eq(int, zmq_curve_keypair(bpub, bsec), 0));
        subs[i] = sub_open(p.bound[0], spub, bpub, bsec);
    }
    run_for(&p, subs, N, got, 1500);
    cr_expect(gt(int, got[0], 0), "the allowed client received nothing");
    for (int i = 1; i < N; i++)
        cr_expect(eq(int, got[i], 0), "unknown client %d received %d messages", i, got[i]);
    cr_expect(eq(u64, p.zap_allowed, 1));
    cr_expect(eq(u64, p.zap_refused, N - 1));
    cr_expect(eq(int, refused_lines, TRANSPORT_ZAP_LOG_PER_MIN), "refusals logged: %d",
              refused_lines);
    cr_expect(eq(u64, p.zap_log_skipped, N - 1 - TRANSPORT_ZAP_LOG_PER_MIN));
    for (int i = 0; i < N; i++)
        zmq_close(subs[i]);
    transport_pub_close(&p);
    cr_expect(eq(ptr, p.zap, NULL));
}

Test(transport_curve, bad_keys_are_refused) {
    char msg[256];
    const char *good[] = {"MfeuTER{K68L)-04Nbks2}A%K*DGtC9&T&rO]J!e"};
    const char *bad[] = {"MfeuTER{K68L)-04Nbks2}A%K*DGtC9&T&rO]J!"};
    const char *eps[] = {"tcp://127.0.0.1:*"};
    struct transport_pub p;
    struct transport_curve cv = {.secret_key = "short", .n_clients = 1, .client_keys = good};

    cr_expect(eq(int, transport_pub_open_curve(&p, eps, 1, 10, &cv, msg, sizeof msg), -EINVAL));
    cr_expect(eq(str, msg, "transport.curve: bad secret key"));
    cv.secret_key = good[0];
    cv.client_keys = bad;
    cr_expect(eq(int, transport_pub_open_curve(&p, eps, 1, 10, &cv, msg, sizeof msg), -EINVAL));
    cr_expect(eq(str, msg, "transport.curve: client key 0 is not Z85"));
    cv.n_clients = 0;
    cr_expect(eq(int, transport_pub_open_curve(&p, eps, 1, 10, &cv, msg, sizeof msg), -EINVAL));
    cr_expect(eq(ptr, p.zap, NULL));
    cr_expect(eq(int, transport_pub_zap_fd(&p), -1));
}

/* transport_curve_client_set: given only the client's secret key, a SUB
 * socket gets in (its public key is derived), and bad keys are refused
 * before anything is set. */
Test(transport_curve, client_set_from_the_secret_key_alone) {
    char spub[41], apub[41], asec[41], msg[256];
    struct transport_pub p;
    open_curve_server(&p, spub, apub, asec);

    int zero = 0;
    void *s = zmq_socket(ctx, ZMQ_SUB);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    cr_expect(eq(int, transport_curve_client_set(s, "short", asec, msg, sizeof msg), -EINVAL));
    cr_expect(eq(str, msg, "the server's public key is not a Z85 key"));
    cr_expect(eq(int, transport_curve_client_set(s, spub, "short", msg, sizeof msg), -EINVAL));
    cr_expect(eq(str, msg, "the client's secret key is not a Z85 key"));
    cr_assert(eq(int, transport_curve_client_set(s, spub, asec, msg, sizeof msg), 0), "%s", msg);
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "kws.status", 10);
    cr_assert(eq(int, zmq_connect(s, p.bound[0]), 0));
    int got = 0;
    run_for(&p, &s, 1, &got, 1000);
    cr_expect(gt(int, got, 0), "the client received nothing");
    cr_expect(eq(u64, p.zap_allowed, 1));
    cr_expect(eq(u64, p.zap_refused, 0));
    zmq_close(s);
    transport_pub_close(&p);
}

static void expect_key_file(const char *path, mode_t mode, const char *key) {
    struct stat st;
    char line[128] = "";
    cr_assert(eq(int, stat(path, &st), 0), "%s missing", path);
    cr_expect(eq(int, (int)(st.st_mode & 0777), (int)mode), "%s: mode %o", path,
              (unsigned)(st.st_mode & 0777));
    FILE *f = fopen(path, "r");
    cr_assert(not(eq(ptr, f, NULL)));
    cr_assert(not(eq(ptr, fgets(line, sizeof line, f), NULL)));
    fclose(f);
    cr_expect(eq(sz, strlen(line), 41), "%s: %s", path, line);
    if (key) {
        char want[64];
        snprintf(want, sizeof want, "%s\n", key);
        cr_expect(eq(str, line, want));
    }
}

Test(transport_curve, keygen_writes_pairs_and_never_overwrites) {
    char pub[41], pub2[41], msg[700], path[256], sec[64];
    umask(022);
    cr_assert(eq(int, transport_curve_keygen(tmpdir, NULL, pub, msg, sizeof msg), 0), "%s", msg);
    snprintf(path, sizeof path, "%s/server.key", tmpdir);
    expect_key_file(path, 0644, pub);
    snprintf(path, sizeof path, "%s/server.key_secret", tmpdir);
    expect_key_file(path, 0600, NULL);
    FILE *f = fopen(path, "r");
    cr_assert(not(eq(ptr, fgets(sec, sizeof sec, f), NULL)));
    fclose(f);
    sec[40] = '\0';
    char derived[41];
    cr_assert(eq(int, zmq_curve_public(derived, sec), 0));
    cr_expect(eq(str, derived, pub), "the two files are one pair");

    cr_expect(eq(int, transport_curve_keygen(tmpdir, NULL, pub2, msg, sizeof msg), -EEXIST));
    cr_expect(not(eq(ptr, strstr(msg, "exists: not overwritten"), NULL)), "%s", msg);
    snprintf(path, sizeof path, "%s/server.key", tmpdir);
    expect_key_file(path, 0644, pub);

    cr_assert(eq(int, transport_curve_keygen(tmpdir, "laptop", pub2, msg, sizeof msg), 0), "%s",
              msg);
    snprintf(path, sizeof path, "%s/clients/laptop.key", tmpdir);
    expect_key_file(path, 0644, pub2);
    snprintf(path, sizeof path, "%s/laptop.key_secret", tmpdir);
    expect_key_file(path, 0600, NULL);
    cr_expect(eq(int, transport_curve_keygen(tmpdir, "laptop", pub2, msg, sizeof msg), -EEXIST));
    cr_expect(eq(int, transport_curve_keygen(tmpdir, "../x", pub2, msg, sizeof msg), -EINVAL));
    cr_expect(eq(int, transport_curve_keygen(tmpdir, ".hidden", pub2, msg, sizeof msg), -EINVAL));
    cr_expect(eq(int, transport_curve_keygen(tmpdir, "", pub2, msg, sizeof msg), -EINVAL));
    snprintf(path, sizeof path, "%s/none", tmpdir);
    cr_expect(eq(int, transport_curve_keygen(path, NULL, pub2, msg, sizeof msg), -ENOENT), "%s",
              msg);
}

/* test_daemon_curve.c: kwsd's event endpoint with transport.curve, through real ZeroMQ.
 *
 * kwsd runs as a process on ALSA's file plugin (the "testmic" device of
 * DESIGN.md, a little noise) with a tiny model whose "yes" wins on every
 * frame, so it detects once per refractory period. Key pairs are made by
 * zmq_curve_keypair in the test; subscribers connect to tcp://127.0.0.1 on
 * a free port. A client whose key is in clients_dir receives heartbeats and
 * detections; one with another key, and one without CURVE, receive nothing
 * while the allowed one receives several heartbeats, and the refused key is
 * logged. A reload that adds a client key keeps the running keys and says
 * so; --check-config reports a bad key file. kwsd-listen with the allowed
 * client's secret key and the server's public key prints the events; with
 * an unknown key it prints nothing and exits 1 at --timeout.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "kt_model.h"
#include "kwsd_test.h"

static char dir[256];
static char endpoint[64];
static char server_pub[41], server_sec[41];
static char ok_pub[41], ok_sec[41];

static const char *p(const char *name) {
    return kt_path(dir, name);
}

static void write_key(const char *path, const char *key, mode_t mode) {
    char line[64];
    snprintf(line, sizeof line, "%s\n", key);
    kt_write_file(path, line);
    cr_assert(eq(int, chmod(path, mode), 0));
}

/* dir: the testmic over 3 s of quiet noise, the tiny model, the server's
 * key pair, clients/ok.key and ok.key_secret, and kwsd.yaml with CURVE on. */
static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/kwsd-curve-XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(dir), NULL)));
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", kt_free_port());
    kt_write_testmic(dir, "audio.raw");
    kt_sh("sox -R -n -r 16000 -c 1 -b 16 -e signed -t raw %s synth 3 whitenoise vol 0.01",
          p("audio.raw"));
    struct kws_frontend_cfg fe;
    audio_fe_cfg_default(&fe);
    kt_save_tiny_model(p("tiny.kwsm"), &fe, "yes", 1);

    cr_assert(eq(int, zmq_curve_keypair(server_pub, server_sec), 0));
    cr_assert(eq(int, zmq_curve_keypair(ok_pub, ok_sec), 0));
    write_key(p("server.key_secret"), server_sec, 0600);
    write_key(p("server.key"), server_pub, 0644);
    write_key(p("ok.key_secret"), ok_sec, 0600);
    cr_assert(eq(int, mkdir(p("clients"), 0755), 0));
    write_key(p("clients/ok.key"), ok_pub, 0644);

    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "audio:\n  device: testmic\n  rate: 16000\n"
             "model:\n  path: %s\n"
             "transport:\n  endpoints: [\"%s\"]\n  heartbeat_s: 0.5\n"
             "  curve:\n    secret_key_file: %s\n    clients_dir: %s\n",
             p("tiny.kwsm"), endpoint, p("server.key_secret"), p("clients"));
    kt_write_file(p("kwsd.yaml"), yaml);
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

TestSuite(kwsd_curve, .init = setup, .fini = teardown, .timeout = 60);

/* Starts kwsd and waits until it logs "ready". */
static pid_t start_kwsd(void) {
    pid_t pid = kt_spawn_kwsd(dir, NULL, NULL);
    int64_t end = kt_now_ms() + 10000;
    while (!kt_file_has(p("kwsd.log"), "notice: ready") && kt_now_ms() < end) {
        cr_assert(eq(int, waitpid(pid, NULL, WNOHANG), 0), "kwsd ended:\n%s",
                  kt_read_text(p("kwsd.log")));
        usleep(20000);
    }
    cr_assert(kt_file_has(p("kwsd.log"), "notice: ready"), "%s", kt_read_text(p("kwsd.log")));
    return pid;
}

static void stop_kwsd(pid_t pid) {
    cr_assert(eq(int, waitpid(pid, NULL, WNOHANG), 0), "kwsd still runs:\n%s",
              kt_read_text(p("kwsd.log")));
    kill(pid, SIGTERM);
    cr_expect(eq(int, kt_wait_exit(pid, 10000), 0), "%s", kt_read_text(p("kwsd.log")));
}

/* A SUB socket subscribed to "kws.", with CURVE when pub/sec are given. */
static void *sub_open(void *ctx, const char *pub, const char *sec) {
    int zero = 0;
    void *s = zmq_socket(ctx, ZMQ_SUB);
    cr_assert(not(eq(ptr, s, NULL)));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (pub) {
        cr_assert(eq(int, zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_pub, 40), 0));
        cr_assert(eq(int, zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40), 0));
        cr_assert(eq(int, zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40), 0));
    }
    zmq_setsockopt(s, ZMQ_SUBSCRIBE, "kws.", 4);
    cr_assert(eq(int, zmq_connect(s, endpoint), 0));
    return s;
}

/* Reads every message waiting on s within ms; counts heartbeats and
 * detections into *hb and *det. */
static void drain(void *s, int ms, int *hb, int *det) {
    zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
    char topic[64], body[2048];
    while (zmq_poll(&it, 1, ms) > 0) {
        int n = zmq_recv(s, topic, sizeof topic - 1, 0);
        cr_assert(gt(int, n, 0));
        topic[n < (int)sizeof topic - 1 ? n : (int)sizeof topic - 1] = '\0';
        cr_assert(ge(int, zmq_recv(s, body, sizeof body, 0), 0));
        if (strcmp(topic, "kws.status") == 0)
            (*hb)++;
        else if (strcmp(topic, "kws.detection.yes") == 0)
            (*det)++;
        ms = 0;
    }
}

Test(kwsd_curve, allowed_client_receives_heartbeats_and_detections) {
    pid_t pid = start_kwsd();
    cr_expect(kt_file_has(p("kwsd.log"), server_pub), "the log gives the server's public key");
    void *ctx = zmq_ctx_new();
    void *ok = sub_open(ctx, ok_pub, ok_sec);
    int hb = 0, det = 0;
    for (int64_t end = kt_now_ms() + 10000; (hb < 2 || det < 1) && kt_now_ms() < end;)
        drain(ok, 100, &hb, &det);
    cr_expect(ge(int, hb, 2), "heartbeats: %d\n%s", hb, kt_read_text(p("kwsd.log")));
    cr_expect(ge(int, det, 1), "detections: %d", det);
    zmq_close(ok);
    zmq_ctx_term(ctx);
    stop_kwsd(pid);
}

Test(kwsd_curve, unknown_key_and_plain_subscriber_receive_nothing) {
    char bad_pub[41], bad_sec[41];
    cr_assert(eq(int, zmq_curve_keypair(bad_pub, bad_sec), 0));
    pid_t pid = start_kwsd();
    void *ctx = zmq_ctx_new();
    void *bad = sub_open(ctx, bad_pub, bad_sec);
    void *plain = sub_open(ctx, NULL, NULL);
    void *ok = sub_open(ctx, ok_pub, ok_sec);
    int hb = 0, det = 0, bad_n = 0, plain_n = 0;
    /* Four heartbeats (2 s) reach the allowed client meanwhile. */
    for (int64_t end = kt_now_ms() + 10000; hb < 4 && kt_now_ms() < end;) {
        drain(ok, 50, &hb, &det);
        drain(bad, 0, &bad_n, &bad_n);
        drain(plain, 0, &plain_n, &plain_n);
    }
    cr_expect(ge(int, hb, 4), "the allowed client got %d heartbeats", hb);
    cr_expect(eq(int, bad_n, 0), "a client with an unknown key got %d messages", bad_n);
    cr_expect(eq(int, plain_n, 0), "a subscriber without CURVE got %d messages", plain_n);
    char want[128];
    snprintf(want, sizeof want, "curve: refused client key %s from 127.0.0.1", bad_pub);
    cr_expect(kt_file_has(p("kwsd.log"), want), "%s", kt_read_text(p("kwsd.log")));
    zmq_close(bad);
    zmq_close(plain);
    zmq_close(ok);
    zmq_ctx_term(ctx);
    stop_kwsd(pid);
}

/* A reload that changes transport.curve's keys keeps the running keys
 * (like every transport setting) and logs why. */
Test(kwsd_curve, reload_with_new_keys_keeps_the_running_ones) {
    char new_pub[41], new_sec[41];
    cr_assert(eq(int, zmq_curve_keypair(new_pub, new_sec), 0));
    pid_t pid = start_kwsd();
    write_key(p("clients/new.key"), new_pub, 0644);
    kill(pid, SIGHUP);
    int64_t end = kt_now_ms() + 10000;
    while (!kt_file_has(p("kwsd.log"), "reloaded ") && kt_now_ms() < end)
        usleep(20000);
    cr_expect(kt_file_has(p("kwsd.log"), "transport.curve or its key files changed since"), "%s",
              kt_read_text(p("kwsd.log")));
    void *ctx = zmq_ctx_new();
    void *ok = sub_open(ctx, ok_pub, ok_sec);
    void *fresh = sub_open(ctx, new_pub, new_sec);
    int hb = 0, det = 0, fresh_n = 0;
    for (end = kt_now_ms() + 10000; hb < 3 && kt_now_ms() < end;) {
        drain(ok, 50, &hb, &det);
        drain(fresh, 0, &fresh_n, &fresh_n);
    }
    cr_expect(ge(int, hb, 3), "the running key still works: %d heartbeats", hb);
    cr_expect(eq(int, fresh_n, 0), "the new key waits for a restart: %d messages", fresh_n);
    zmq_close(ok);
    zmq_close(fresh);
    zmq_ctx_term(ctx);
    stop_kwsd(pid);
}

Test(kwsd_curve, check_config_reports_a_bad_key) {
    char out[4096], want[512];
    kt_write_file(p("clients/short.key"), "abc\n");
    int rc = kt_run(out, sizeof out, KWSD_BINARY_DIR "/daemon/kwsd --config %s --check-config",
                    p("kwsd.yaml"));
    cr_expect(eq(int, rc, 1), "%s", out);
    snprintf(want, sizeof want,
             "%s:11:18: transport.curve.clients_dir: %s: first line is 3 characters, "
             "expected a 40-character Z85 key",
             p("kwsd.yaml"), p("clients/short.key"));
    cr_expect(not(eq(ptr, strstr(out, want), NULL)), "%s", out);
}

/* Runs kwsd-listen with the server's public key, the secret key file
 * secret and args; its stdout goes to out, its stderr to dir/listen.err.
 * Returns its exit status. */
static int run_listen(char *out, size_t n, const char *secret, const char *args) {
    return kt_run(out, n,
                  "(" KWSD_BINARY_DIR "/tools/kwsd-listen --endpoint %s --curve-server-key %s "
                  "--curve-secret-key %s %s 2>%s)",
                  endpoint, p("server.key"), secret, args, p("listen.err"));
}

Test(kwsd_curve, kwsd_listen_with_the_client_key_prints_events) {
    char out[8192];
    pid_t pid = start_kwsd();
    int rc = run_listen(out, sizeof out, p("ok.key_secret"), "--status --count 1 --timeout 20");
    cr_expect(eq(int, rc, 0), "stdout: %s\nstderr: %s", out, kt_read_text(p("listen.err")));
    cr_expect(
        not(eq(ptr, strstr(out, "{\"topic\":\"kws.detection.yes\",\"keyword\":\"yes\""), NULL)),
        "%s", out);
    stop_kwsd(pid);
}

Test(kwsd_curve, kwsd_listen_with_an_unknown_key_gets_nothing_and_exits_1) {
    char bad_pub[41], bad_sec[41], out[8192];
    cr_assert(eq(int, zmq_curve_keypair(bad_pub, bad_sec), 0));
    write_key(p("bad.key_secret"), bad_sec, 0600);
    pid_t pid = start_kwsd();
    /* 2 s: four heartbeats, and a detection, for an allowed client. */
    int rc = run_listen(out, sizeof out, p("bad.key_secret"), "--status --count 1 --timeout 2");
    cr_expect(eq(int, rc, 1), "stdout: %s\nstderr: %s", out, kt_read_text(p("listen.err")));
    cr_expect(eq(str, out, ""));
    cr_expect(kt_file_has(p("listen.err"), "kwsd-listen: timeout: 0 of 1 events in 2 s"), "%s",
              kt_read_text(p("listen.err")));
    char want[128];
    snprintf(want, sizeof want, "curve: refused client key %s from 127.0.0.1", bad_pub);
    cr_expect(kt_file_has(p("kwsd.log"), want), "%s", kt_read_text(p("kwsd.log")));
    stop_kwsd(pid);
}

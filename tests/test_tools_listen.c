/* test_tools_listen.c: the kwsd-listen program against a real publisher.
 *
 * Each test spawns the built binary with its stdout and stderr on pipes and
 * publishes with kws_transport on tcp://127.0.0.1 (a port the kernel picks).
 * Slow joiner: kwsd-listen runs with --status, the test sends heartbeats
 * until the first line appears (heartbeats do not count towards --count),
 * and only then publishes the detections the test is about. The CURVE
 * options' usage errors are checked here; kwsd-listen against a kwsd with
 * CURVE on is in test_daemon_curve.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kws/err.h"
#include "kws/transport.h"

#define LISTEN_BIN KWSD_BINARY_DIR "/tools/kwsd-listen"

extern char **environ;

struct child {
    pid_t pid;
    int out, err; /* read ends */
    char obuf[65536], ebuf[4096];
    size_t olen, elen;
    int out_eof, err_eof;
};

static void child_spawn(struct child *c, const char *const *args) {
    int op[2], ep[2];
    char *argv[32];
    int n = 0;

    memset(c, 0, sizeof *c);
    argv[n++] = (char *)LISTEN_BIN;
    for (; args[n - 1] && n < 31; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    cr_assert(eq(int, pipe2(op, O_CLOEXEC), 0));
    cr_assert(eq(int, pipe2(ep, O_CLOEXEC), 0));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, op[1], 1);
    posix_spawn_file_actions_adddup2(&fa, ep[1], 2);
    int rc = posix_spawn(&c->pid, LISTEN_BIN, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert(eq(int, rc, 0), "spawn %s: %s", LISTEN_BIN, strerror(rc));
    close(op[1]);
    close(ep[1]);
    c->out = op[0];
    c->err = ep[0];
}

/* Reads whatever the child wrote within timeout_ms. */
static void child_pump(struct child *c, int timeout_ms) {
    struct pollfd pf[2] = {{.fd = c->out_eof ? -1 : c->out, .events = POLLIN},
                           {.fd = c->err_eof ? -1 : c->err, .events = POLLIN}};
    if (poll(pf, 2, timeout_ms) <= 0)
        return;
    if (pf[0].revents) {
        ssize_t r = read(c->out, c->obuf + c->olen, sizeof c->obuf - 1 - c->olen);
        if (r <= 0)
            c->out_eof = 1;
        else
            c->olen += (size_t)r;
        c->obuf[c->olen] = '\0';
    }
    if (pf[1].revents) {
        ssize_t r = read(c->err, c->ebuf + c->elen, sizeof c->ebuf - 1 - c->elen);
        if (r <= 0)
            c->err_eof = 1;
        else
            c->elen += (size_t)r;
        c->ebuf[c->elen] = '\0';
    }
}

/* Reads to end of output and reaps the child; returns its exit status. */
static int child_wait(struct child *c) {
    for (int i = 0; i < 2000 && !(c->out_eof && c->err_eof); i++)
        child_pump(c, 10);
    int st = 0;
    if (!(c->out_eof && c->err_eof))
        kill(c->pid, SIGKILL);
    cr_assert(eq(int, waitpid(c->pid, &st, 0), c->pid));
    close(c->out);
    close(c->err);
    int exited = WIFEXITED(st);
    cr_assert(exited, "kwsd-listen did not exit (status 0x%x)", st);
    return WEXITSTATUS(st);
}

/* Sends heartbeats until kwsd-listen has printed a line: it is subscribed. */
static void sync_child(struct transport_pub *p, struct child *c) {
    struct kws_status st = {.device = "sync"};
    for (int i = 0; i < 500 && !strchr(c->obuf, '\n') && !c->out_eof; i++) {
        cr_assert(eq(int, transport_pub_status(p, &st), 0));
        child_pump(c, 10);
    }
    cr_assert(not(eq(ptr, strchr(c->obuf, '\n'), NULL)), "no output; stderr: %s", c->ebuf);
}

/* The detection lines of the output (heartbeat lines checked and skipped). */
static int detection_lines(struct child *c, json_t **out, int max) {
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r(c->obuf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        cr_assert(not(eq(ptr, j, NULL)), "not JSON: %s", line);
        const char *topic = json_string_value(json_object_get(j, "topic"));
        cr_assert(not(eq(ptr, (void *)topic, NULL)), "no topic: %s", line);
        if (strcmp(topic, "kws.status") == 0) {
            cr_expect(not(eq(ptr, json_object_get(j, "uptime_s"), NULL)));
            json_decref(j);
            continue;
        }
        cr_assert(lt(int, n, max));
        out[n++] = j;
    }
    return n;
}

static void publish(struct transport_pub *p, const char *kw, uint64_t seq) {
    struct kws_detection ev = {.keyword = kw,
                               .score = 0.9f,
                               .threshold = 0.8f,
                               .start_ms = 100,
                               .end_ms = 600,
                               .seq = seq,
                               .model = "m"};
    cr_assert(eq(int, transport_pub_detection(p, &ev), 0));
}

static void pub_open(struct transport_pub *p) {
    char msg[256];
    const char *eps[] = {"tcp://127.0.0.1:*"};
    cr_assert(eq(int, transport_pub_open(p, eps, 1, 1000, msg, sizeof msg), 0), "%s", msg);
}

TestSuite(listen, .timeout = 60);

Test(listen, keywords_filter_exactly_and_count_ends_it) {
    struct transport_pub p;
    struct child c;
    json_t *lines[16];

    pub_open(&p);
    const char *args[] = {"--endpoint", p.bound[0], "--keyword", "yes",       "-k", "stop",
                          "--status",   "--count",  "3",         "--timeout", "30", NULL};
    child_spawn(&c, args);
    sync_child(&p, &c);
    static const char *const words[] = {"no", "yesterday", "stop", "go", "yes", "stop", "yes"};
    for (int i = 0; i < 7; i++)
        publish(&p, words[i], (uint64_t)i + 1);
    cr_expect(eq(int, child_wait(&c), 0), "stderr: %s", c.ebuf);

    int n = detection_lines(&c, lines, 16);
    static const int want_seq[] = {3, 5, 6};
    cr_assert(eq(int, n, 3));
    for (int i = 0; i < n; i++) {
        json_t *j = lines[i];
        const char *kw = words[want_seq[i] - 1];
        char topic[64];
        snprintf(topic, sizeof topic, "kws.detection.%s", kw);
        cr_expect(eq(str, (char *)json_string_value(json_object_get(j, "topic")), topic));
        cr_expect(eq(str, (char *)json_string_value(json_object_get(j, "keyword")), (char *)kw));
        cr_expect(eq(i64, json_integer_value(json_object_get(j, "seq")), want_seq[i]));
        /* The payload's fields all come through, after "topic". */
        cr_expect(eq(sz, json_object_size(j), 9));
        cr_expect(eq(str, (char *)json_object_iter_key(json_object_iter(j)), "topic"));
        json_decref(j);
    }
    transport_pub_close(&p);
}

Test(listen, all_keywords_by_default) {
    struct transport_pub p;
    struct child c;
    json_t *lines[16];

    pub_open(&p);
    const char *args[] = {"-e", p.bound[0], "-s", "-n", "2", "-t", "30", NULL};
    child_spawn(&c, args);
    sync_child(&p, &c);
    publish(&p, "on", 1);
    publish(&p, "off", 2);
    publish(&p, "never printed", 3);
    cr_expect(eq(int, child_wait(&c), 0), "stderr: %s", c.ebuf);
    int n = detection_lines(&c, lines, 16);
    cr_assert(eq(int, n, 2));
    cr_expect(eq(str, (char *)json_string_value(json_object_get(lines[0], "keyword")), "on"));
    cr_expect(eq(str, (char *)json_string_value(json_object_get(lines[1], "keyword")), "off"));
    json_decref(lines[0]);
    json_decref(lines[1]);
    transport_pub_close(&p);
}

Test(listen, timeout_without_enough_events_exits_1) {
    struct child c;
    const char *args[] = {"--endpoint", "tcp://127.0.0.1:1", "--count", "5", "--timeout", "0.3",
                          NULL};
    child_spawn(&c, args);
    cr_expect(eq(int, child_wait(&c), 1));
    cr_expect(eq(sz, c.olen, 0));
    cr_expect(not(eq(ptr, strstr(c.ebuf, "timeout"), NULL)), "stderr: %s", c.ebuf);
}

Test(listen, timeout_alone_listens_then_exits_0) {
    struct child c;
    const char *args[] = {"--endpoint", "tcp://127.0.0.1:1", "--timeout", "0.2", NULL};
    child_spawn(&c, args);
    cr_expect(eq(int, child_wait(&c), 0), "stderr: %s", c.ebuf);
    cr_expect(eq(sz, c.olen, 0));
}

Test(listen, sigterm_exits_0) {
    struct child c;
    const char *args[] = {"--endpoint", "tcp://127.0.0.1:1", NULL};
    child_spawn(&c, args);
    child_pump(&c, 200); /* let it reach its poll */
    kill(c.pid, SIGTERM);
    cr_expect(eq(int, child_wait(&c), 0), "stderr: %s", c.ebuf);
}

Test(listen, help_version_and_usage_errors) {
    struct child c;

    const char *help[] = {"--help", NULL};
    child_spawn(&c, help);
    cr_expect(eq(int, child_wait(&c), 0));
    cr_expect(eq(int, strncmp(c.obuf, "Usage: kwsd-listen", 18), 0), "%s", c.obuf);

    const char *version[] = {"--version", NULL};
    child_spawn(&c, version);
    cr_expect(eq(int, child_wait(&c), 0));
    cr_expect(eq(int, strncmp(c.obuf, "kwsd-listen ", 12), 0), "%s", c.obuf);

    static const char *const bad[][4] = {
        {"--count", "x", NULL},  {"--count", "0", NULL}, {"--timeout", "-1", NULL},
        {"--bogus", NULL},       {"extra", NULL},        {"-e", "udp://1.2.3.4:5", NULL},
        {"--keyword", "", NULL},
    };
    for (size_t i = 0; i < KWS_ARRAY_SIZE(bad); i++) {
        child_spawn(&c, bad[i]);
        cr_expect(eq(int, child_wait(&c), 2), "args %s %s", bad[i][0], bad[i][1]);
        cr_expect(gt(sz, c.elen, 0), "no message for %s", bad[i][0]);
        cr_expect(eq(sz, c.olen, 0));
    }
}

/* Writes text to dir/name with mode; returns the path (static, one of 4). */
static const char *key_file(const char *dir, const char *name, const char *text, mode_t mode) {
    static char paths[4][300];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, sizeof paths[0], "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert(not(eq(ptr, f, NULL)), "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
    cr_assert(eq(int, chmod(path, mode), 0));
    return path;
}

/* The CURVE options: both or neither, and every key file error names the
 * option and the file; each is a usage error (exit 2) with no output. */
Test(listen, curve_key_errors) {
    char dir[] = "/tmp/kwsd-listen-curve-XXXXXX", want[512];
    struct child c;
    cr_assert(not(eq(ptr, mkdtemp(dir), NULL)));
    const char *z85 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\n"; /* a valid key */
    const char *server = key_file(dir, "server.key", z85, 0644);
    const char *secret = key_file(dir, "me.key_secret", z85, 0600);
    const char *open_secret = key_file(dir, "open.key_secret", z85, 0644);
    const char *bad = key_file(dir, "bad.key", "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf~\n", 0644);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing.key", dir);

    struct {
        const char *args[6];
        const char *file; /* the message is "kwsd-listen: <option>: <file>: <what>" */
        const char *what; /* or, with no file, "kwsd-listen: <what>" */
    } cases[] = {
        {{"--curve-server-key", server, NULL},
         NULL,
         "--curve-server-key needs --curve-secret-key too"},
        {{"--curve-secret-key", secret, NULL},
         NULL,
         "--curve-secret-key needs --curve-server-key too"},
        {{"--curve-server-key", missing, "--curve-secret-key", secret, NULL},
         missing,
         "No such file or directory"},
        {{"--curve-server-key", bad, "--curve-secret-key", secret, NULL},
         bad,
         "not a Z85 key: character 40 is '~'"},
        {{"--curve-server-key", server, "--curve-secret-key", open_secret, NULL},
         open_secret,
         "others may read or write it (mode 0644)"},
        {{"--curve-server-key", server, "--curve-secret-key", dir, NULL},
         dir,
         "a directory, not a regular file"},
    };
    for (size_t i = 0; i < KWS_ARRAY_SIZE(cases); i++) {
        child_spawn(&c, cases[i].args);
        cr_expect(eq(int, child_wait(&c), 2), "case %zu: %s", i, c.ebuf);
        if (cases[i].file)
            snprintf(want, sizeof want, "kwsd-listen: %s: %s: %s",
                     cases[i].file == missing || cases[i].file == bad ? "--curve-server-key"
                                                                      : "--curve-secret-key",
                     cases[i].file, cases[i].what);
        else
            snprintf(want, sizeof want, "kwsd-listen: %s", cases[i].what);
        cr_expect(not(eq(ptr, strstr(c.ebuf, want), NULL)), "case %zu: want %s\ngot %s", i, want,
                  c.ebuf);
        cr_expect(eq(sz, c.olen, 0));
    }

    /* Good keys: it connects (to nothing here) and times out as usual. */
    const char *good[] = {"-e",
                          "tcp://127.0.0.1:1",
                          "--curve-server-key",
                          server,
                          "--curve-secret-key",
                          secret,
                          "-n",
                          "1",
                          "-t",
                          "0.2",
                          NULL};
    child_spawn(&c, good);
    cr_expect(eq(int, child_wait(&c), 1), "stderr: %s", c.ebuf);
    cr_expect(not(eq(ptr, strstr(c.ebuf, "timeout"), NULL)), "stderr: %s", c.ebuf);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect(eq(int, system(cmd), 0));
}

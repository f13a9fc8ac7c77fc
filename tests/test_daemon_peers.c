/* test_daemon_peers.c: peers of the event endpoint cannot take a reload away.
 *
 * libzmq accepts every connection a local peer opens until the process is
 * out of descriptors (the unit's LimitNOFILE=). A reload then used to fail
 * with "Too many open files", since it must open the configuration and the
 * model. kwsd now builds a reload on a thread with its own emptied copy of
 * the descriptor table. Here kwsd runs with a limit of 64 descriptors and a
 * peer opens 200 connections to its tcp://127.0.0.1 endpoint (plain
 * sockets that never finish the ZeroMQ handshake, so they stay for its
 * 5 s); a SIGHUP in that state must reload, and kwsd must go on running.
 * (Not ipc://: libzmq 4.3.4 aborts when accept() on an ipc:// endpoint
 * fails with EMFILE; docs/SERVICE.md.)
 * bench/kwsd-bench-peers measures the same with 2,000 ZeroMQ peers.
 *
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "kt_proc.h"
#include "kwsd_test.h"

#define MODEL KWSD_SOURCE_DIR "/models/commands.kwsm"
#define NOFILE 64
#define PEERS 200

static char dir[256];

static const char *dat_path(const char *name) {
    return kt_path(dir, name);
}

static const char *read_log(void) {
    return kt_read_text(dat_path("kwsd.log"));
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/kwsd-peers-XXXXXX");
    cr_assert(not(eq(ptr, mkdtemp(dir), NULL)));
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

Test(kwsd_peers, reload_works_when_peers_hold_every_descriptor, .init = setup, .fini = teardown,
     .timeout = 60) {
    char text[1024];
    int socks[PEERS];
    struct rlimit rl = {1024, 1024};

    setrlimit(RLIMIT_NOFILE, &rl); /* the test's own sockets */
    int port = kt_free_port();
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* No capture device: kwsd waits for it and runs on (heartbeats, reloads). */
    kt_write_file(dat_path("asound.conf"), "# no device\n");
    snprintf(text, sizeof text,
             "audio:\n  device: testmic\nmodel:\n  path: %s\n"
             "transport:\n  endpoints: [ \"tcp://127.0.0.1:%d\" ]\n  heartbeat_s: 0.5\n",
             MODEL, port);
    kt_write_file(dat_path("kwsd.yaml"), text);
    /* kwsd inherits a limit of NOFILE descriptors; the test keeps its own. */
    struct rlimit lim = {NOFILE, rl.rlim_max};
    setrlimit(RLIMIT_NOFILE, &lim);
    pid_t pid = kt_spawn_kwsd(dir, NULL, NULL);
    setrlimit(RLIMIT_NOFILE, &rl);
    for (int i = 0; i < 100 && !strstr(read_log(), "publishing on"); i++)
        usleep(50000);

    int opened = 0;
    for (int i = 0; i < PEERS; i++) {
        socks[i] = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert(ge(int, socks[i], 0));
        opened += connect(socks[i], (struct sockaddr *)&sa, sizeof sa) == 0;
    }
    int fds = 0;
    for (int i = 0; i < 40 && fds < NOFILE; i++) {
        usleep(50000);
        fds = kt_proc_fds(pid);
    }
    cr_log_info("%d peers connected; kwsd holds %d of its %d descriptors", opened, fds, NOFILE);
    cr_assert(eq(int, fds, NOFILE), "the peers hold every descriptor; log:\n%s", read_log());

    kill(pid, SIGHUP);
    const char *log = read_log();
    for (int i = 0; i < 60 && !strstr(log, "reloaded ") && !strstr(log, "reload of "); i++) {
        usleep(50000);
        log = read_log();
    }
    cr_expect(not(eq(ptr, strstr(log, "reloaded "), NULL)), "reloaded; log:\n%s", log);
    cr_expect(eq(ptr, strstr(log, "Too many open files"), NULL), "log:\n%s", log);
    cr_expect(eq(int, kill(pid, 0), 0), "still running");

    for (int i = 0; i < PEERS; i++)
        close(socks[i]);
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    cr_expect(eq(int, clean, 1), "clean exit; log:\n%s", read_log());
}

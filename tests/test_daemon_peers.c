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
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KWSD KWSD_BINARY_DIR "/daemon/kwsd"
#define MODEL KWSD_SOURCE_DIR "/models/commands.kwsm"
#define NOFILE 64
#define PEERS 200

static char dir[256];

static const char *dat_path(const char *name) {
    static char buf[4][400];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(not(eq(ptr, f, NULL)), "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static const char *read_log(void) {
    static char buf[65536];
    FILE *f = fopen(dat_path("kwsd.log"), "r");
    size_t n = 0;
    if (f) {
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    return buf;
}

static int count_fds(pid_t pid) {
    char path[64];
    int n = 0;
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
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
    /* A free port: bound to 0 by the kernel, then released for kwsd. */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(eq(int, bind(probe, (struct sockaddr *)&sa, sizeof sa), 0));
    cr_assert(eq(int, getsockname(probe, (struct sockaddr *)&sa, &sl), 0));
    close(probe);
    /* No capture device: kwsd waits for it and runs on (heartbeats, reloads). */
    write_file(dat_path("asound.conf"), "# no device\n");
    snprintf(text, sizeof text,
             "audio:\n  device: testmic\nmodel:\n  path: %s\n"
             "transport:\n  endpoints: [ \"tcp://127.0.0.1:%d\" ]\n  heartbeat_s: 0.5\n",
             MODEL, ntohs(sa.sin_port));
    write_file(dat_path("kwsd.yaml"), text);
    pid_t pid = fork();
    cr_assert(ge(int, pid, 0));
    if (pid == 0) {
        char alsa[400];
        snprintf(alsa, sizeof alsa, "/usr/share/alsa/alsa.conf:%s", dat_path("asound.conf"));
        setenv("ALSA_CONFIG_PATH", alsa, 1);
        struct rlimit lim = {NOFILE, NOFILE};
        setrlimit(RLIMIT_NOFILE, &lim);
        int fd = open(dat_path("kwsd.log"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(KWSD, KWSD, "--config", dat_path("kwsd.yaml"), (char *)NULL);
        _exit(127);
    }
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
        fds = count_fds(pid);
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

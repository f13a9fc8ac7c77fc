/* kwsd_test.h: helpers shared by the tests that run kwsd as a process.
 *
 * Files in a test's temporary folder, shell commands that must succeed,
 * the monotonic clock, child processes, and free TCP ports of 127.0.0.1. Each helper fails
 * the calling Criterion test (cr_assert) when something it needs does not
 * work. Include after <criterion/criterion.h> and <criterion/new/assert.h>.
 *
 *     static char dir[256];                       // the test's folder
 *     kt_sh("sox -n %s trim 0 1", kt_path(dir, "q.wav"));
 *     int port = kt_free_port();
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef KWSD_TESTS_KWSD_TEST_H
#define KWSD_TESTS_KWSD_TEST_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* dir/name in one of four rotating buffers, so a call may use a few at once. */
static inline const char *kt_path(const char *dir, const char *name) {
    static char buf[4][400];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

/* CLOCK_MONOTONIC in ms. */
static inline int64_t kt_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void kt_write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(not(eq(ptr, f, NULL)), "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* dir/asound.conf defining the ALSA device "testmic": the file plugin
 * reading dir/raw as raw samples, over a null slave. */
static inline void kt_write_testmic(const char *dir, const char *raw) {
    char text[1024];
    snprintf(text, sizeof text,
             "pcm.testmic {\n type file\n slave.pcm null\n file /dev/null\n"
             " infile \"%s/%s\"\n format raw\n}\n",
             dir, raw);
    kt_write_file(kt_path(dir, "asound.conf"), text);
}

/* Runs a shell command, which must exit 0. */
static inline void kt_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void kt_sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    cr_assert(eq(int, rc, 0), "command failed: %s", cmd);
}

/* Writes dir/speech.wav and dir/audio.raw (the same S16_LE mono samples
 * at rate Hz): 4 s of quiet (ALSA's file plugin over a null slave runs
 * faster than real time, so this gives a subscriber time to join), each of
 * the n words said by espeak-ng's en-us voice at -3 dBFS and followed by
 * gap_s of quiet, then 3 s of quiet (past the file's end the plugin
 * repeats its last period). Quiet is digital silence, or with noise a sox
 * synth effect (e.g. "whitenoise vol 0.003"). sox runs with a fixed seed
 * (-R), so every run hears the same recording. Returns its length in ms. */
static inline int64_t kt_make_speech(const char *dir, const char *const *words, int n, int rate,
                                     double gap_s, const char *noise) {
    static const char *const names[] = {"lead", "gap", "tail"};
    const double secs[] = {4.0, gap_s, 3.0};
    char list[2048] = "";
    size_t used = 0;

    for (int i = 0; i < 3; i++)
        kt_sh("sox -R -n -r %d -c 1 -b 16 %s/%s.wav %s %.2f %s", rate, dir, names[i],
              noise ? "synth" : "trim 0", secs[i], noise ? noise : "");
    used += (size_t)snprintf(list + used, sizeof list - used, "%s/lead.wav ", dir);
    for (int i = 0; i < n; i++) {
        kt_sh("espeak-ng -v en-us -s 150 -w %s/w%d.22k.wav '%s'", dir, i, words[i]);
        kt_sh("sox -R %s/w%d.22k.wav -r %d -c 1 -b 16 %s/w%d.wav norm -3", dir, i, rate, dir, i);
        used += (size_t)snprintf(list + used, sizeof list - used, "%s/w%d.wav %s/gap.wav ", dir, i,
                                 dir);
    }
    snprintf(list + used, sizeof list - used, "%s/tail.wav", dir);
    kt_sh("sox -R %s %s/speech.wav", list, dir);
    kt_sh("sox -R %s/speech.wav -t raw -e signed -b 16 -c 1 %s/audio.raw", dir, dir);
    struct stat st;
    cr_assert(eq(int, stat(kt_path(dir, "audio.raw"), &st), 0));
    return (int64_t)st.st_size * 1000 / (2 * rate);
}

/* Runs a shell command with its stderr joined to its stdout, which it puts
 * (the first n - 1 bytes) in out. Returns its exit status, -1 if it did not
 * exit. */
static inline int kt_run(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int kt_run(char *out, size_t n, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *p = popen(cmd, "r");
    cr_assert(not(eq(ptr, p, NULL)), "cannot run %s", cmd);
    size_t got = fread(out, 1, n - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Waits up to ms for pid; returns its exit status (128 + the signal if a
 * signal ended it), or -1 on timeout, after killing it. */
static inline int kt_wait_exit(pid_t pid, int ms) {
    int64_t end = kt_now_ms() + ms;
    int status;
    while (kt_now_ms() < end) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* The first 64 KiB of a text file ("" if it cannot be read), in a static
 * buffer. */
static inline char *kt_read_text(const char *path) {
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    size_t n = 0;
    if (f) {
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    return buf;
}

/* Whether a line of the file at path (all of it) holds s. */
static inline int kt_file_has(const char *path, const char *s) {
    char line[4096];
    int found = 0;
    FILE *f = fopen(path, "r");
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, s) != NULL;
    if (f)
        fclose(f);
    return found;
}

/* A TCP port of 127.0.0.1 that nothing listens on right now. */
static inline int kt_free_port(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(ge(int, fd, 0));
    cr_assert(eq(int, bind(fd, (struct sockaddr *)&a, sizeof a), 0));
    cr_assert(eq(int, getsockname(fd, (struct sockaddr *)&a, &len), 0));
    close(fd);
    return ntohs(a.sin_port);
}

/* Whether something accepts connections on 127.0.0.1:port. */
static inline int kt_port_open(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* Starts the built kwsd with dir/kwsd.yaml, ALSA's configuration plus
 * dir/asound.conf (where a test defines its "testmic"), and up to two more
 * arguments (NULL for none); its stdout and stderr go to dir/kwsd.log.
 * Returns its pid. */
static inline pid_t kt_spawn_kwsd(const char *dir, const char *arg1, const char *arg2) {
    pid_t pid = fork();
    cr_assert(ge(int, pid, 0));
    if (pid == 0) {
        char alsa[400];
        snprintf(alsa, sizeof alsa, "/usr/share/alsa/alsa.conf:%s", kt_path(dir, "asound.conf"));
        setenv("ALSA_CONFIG_PATH", alsa, 1);
        int fd = open(kt_path(dir, "kwsd.log"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        execl(KWSD_BINARY_DIR "/daemon/kwsd", "kwsd", "--config", kt_path(dir, "kwsd.yaml"), arg1,
              arg2, (char *)NULL);
        _exit(127);
    }
    return pid;
}

#endif /* KWSD_TESTS_KWSD_TEST_H */
